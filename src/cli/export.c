/*
 * vitalog — cli: `vitalog export`, the ledger (or records) of a data
 * directory as NDJSON.
 *
 * The ledger export is the same format GET /ledger/export serves (see
 * cli.h): entry lines as stored, each stored checkpoint right after the
 * entry that completes it, and a last checkpoint covering every entry. To
 * get that last checkpoint the store is opened with the signing key and
 * asked for a fresh one; without a readable DIR/ledger.key the export ends
 * at the latest stored checkpoint instead.
 *
 * Output goes to a temporary file renamed into place on success (-o), so
 * a failed export never leaves a file that looks whole.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "vitalog/cli.h"
#include "vitalog/store.h"

static const char usage_export[] =
    "usage: vitalog export [--data DIR] [--records] [-o FILE]\n"
    "\n"
    "Writes the ledger export of a data directory: NDJSON, one entry line per\n"
    "ledger entry exactly as stored, each signed checkpoint as\n"
    "{\"checkpoint\":\"<signed note>\"} right after the entry that completes it,\n"
    "and last a checkpoint covering every entry (signed now with DIR/ledger.key).\n"
    "The same format as GET /ledger/export; check it with `vitalog verify`.\n"
    "\n"
    "With --records, writes instead every stored record version in ledger order,\n"
    "one {\"ref\":\"Type/id/_history/v\",\"salt\":\"<hex>\",\"bytes\":\"<base64>\"} per\n"
    "line: the exact stored bytes, which hold PHI (the ledger export holds none).\n"
    "`vitalog verify --records FILE EXPORT` checks them against the commitments.\n"
    "\n"
    "A running server may keep serving while this reads the same directory.\n"
    "\n"
    "options:\n"
    "  -d, --data DIR    data directory (default: ./data)\n"
    "  -r, --records     export the records instead of the ledger\n"
    "  -o, --output FILE write to FILE (default: standard output)\n"
    "  -h, --help        show this help\n";

typedef struct export_ctx {
    FILE *out;
    uint64_t entries, checkpoints, records;
    uint64_t last_cp_size; /* size of the last checkpoint written */
    int last_was_cp;
    char *buf; /* records: base64 scratch */
    size_t buf_cap;
    int failed;
} export_ctx_t;

static int write_checkpoint(export_ctx_t *x, const char *note, size_t len)
{
    json_t *doc = json_object();
    json_t *s = json_stringn(note, len);
    char *line = NULL;
    if (!doc || !s || json_object_set_new(doc, "checkpoint", s) < 0) {
        json_decref(doc);
        return -1;
    }
    line = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!line)
        return -1;
    fputs(line, x->out);
    putc('\n', x->out);
    free(line);
    x->checkpoints++;
    x->last_was_cp = 1;
    return 0;
}

static int ledger_cb(void *ctx, uint64_t index, const char *line, size_t line_len, const char *note,
                     size_t note_len)
{
    export_ctx_t *x = ctx;
    if (line) {
        fwrite(line, 1, line_len, x->out);
        putc('\n', x->out);
        x->entries++;
        x->last_was_cp = 0;
    } else if (note) {
        uint64_t size;
        char origin[256];
        unsigned char root[VL_HASH_LEN];
        if (write_checkpoint(x, note, note_len) < 0) {
            x->failed = 1;
            return 1;
        }
        if (vl_cli_note_checkpoint(note, note_len, origin, sizeof origin, &size, root) == 0)
            x->last_cp_size = size;
    }
    return ferror(x->out) ? (x->failed = 1) : 0;
}

/* A JSON string of `s` (refs are plain ASCII; escape anyway). */
static void put_json_string(FILE *out, const char *s)
{
    putc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            putc(c, out);
    }
    putc('"', out);
}

static int record_cb(void *ctx, uint64_t index, const char *ref, const unsigned char salt[32],
                     const char *bytes, size_t len)
{
    export_ctx_t *x = ctx;
    char hex[65];
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if (vl_grow(&x->buf, &x->buf_cap, need, 1) < 0) {
        x->failed = 1;
        return 1;
    }
    sodium_bin2hex(hex, sizeof hex, salt, 32);
    sodium_bin2base64(x->buf, need, (const unsigned char *)bytes, len,
                      sodium_base64_VARIANT_ORIGINAL);
    fputs("{\"ref\":", x->out);
    put_json_string(x->out, ref);
    fprintf(x->out, ",\"salt\":\"%s\",\"bytes\":\"%s\"}\n", hex, x->buf);
    x->records++;
    return ferror(x->out) ? (x->failed = 1) : 0;
}

int vl_cli_export(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"records", no_argument, NULL, 'r'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = "./data", *output = NULL;
    char keypath[PATH_MAX], tmp[PATH_MAX];
    int records = 0, opt, rc = 1, have_key = 0;
    vl_ledger_key_t key;
    vl_store_options_t opts;
    vl_store_t *store = NULL;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    export_ctx_t x;
    char *note = NULL;
    uint64_t size = 0;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "d:ro:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': data = optarg; break;
        case 'r': records = 1; break;
        case 'o': output = optarg; break;
        case 'h': fputs(usage_export, stdout); return 0;
        default: fputs(usage_export, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vitalog export: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (vl_cli_check_data("vitalog export", data) < 0)
        return 1;
    vl_log_set_level(VL_LOG_WARN);
    memset(&x, 0, sizeof x);
    memset(&key, 0, sizeof key);
    memset(&opts, 0, sizeof opts);
    tmp[0] = '\0';

    if (!records) {
        snprintf(keypath, sizeof keypath, "%s/ledger.key", data);
        if (access(keypath, F_OK) == 0) {
            if (vl_cli_load_skey("vitalog export", keypath, &key) < 0)
                return 1;
            have_key = 1;
            opts.key = &key;
            opts.origin = key.name;
        } else {
            fprintf(stderr,
                    "vitalog export: no %s; the export ends at the latest stored checkpoint\n",
                    keypath);
        }
    }
    if (vl_store_open(data, &opts, &store, &err) < 0) {
        fprintf(stderr, "vitalog export: cannot open the store in %s: %s\n", data, err.message);
        goto out;
    }

    if (output && strcmp(output, "-") != 0) {
        if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", output, (long)getpid()) >= (int)sizeof tmp) {
            fprintf(stderr, "vitalog export: output path too long\n");
            tmp[0] = '\0';
            goto out;
        }
        x.out = fopen(tmp, "wx");
        if (!x.out) {
            fprintf(stderr, "vitalog export: cannot create %s: %s\n", tmp, strerror(errno));
            tmp[0] = '\0';
            goto out;
        }
    } else {
        x.out = stdout;
    }

    if (records) {
        if (vl_store_records_scan(store, vl_scope_everything(), record_cb, &x, &err) != 0 ||
            x.failed) {
            fprintf(stderr, "vitalog export: reading the records failed after %llu: %s\n",
                    (unsigned long long)x.records,
                    err.kind ? err.message : (ferror(x.out) ? strerror(errno) : "out of memory"));
            goto out;
        }
    } else {
        if (vl_store_ledger_checkpoint(store, vl_scope_everything(), have_key, &note, &size, &err) <
            0) {
            fprintf(stderr, "vitalog export: %s a checkpoint failed: %s\n",
                    have_key ? "signing" : "reading", err.message);
            goto out;
        }
        if (!note) {
            fputs("vitalog export: the ledger has no checkpoint yet\n", stderr);
            goto out;
        }
        if (size > 0 && (vl_store_ledger_scan(store, vl_scope_everything(), 0, size, ledger_cb, &x,
                                              &err) != 0 ||
                         x.failed)) {
            fprintf(stderr, "vitalog export: reading the ledger failed after %llu entries: %s\n",
                    (unsigned long long)x.entries,
                    err.kind ? err.message : (ferror(x.out) ? strerror(errno) : "out of memory"));
            goto out;
        }
        if (x.entries != size) {
            fprintf(stderr, "vitalog export: the store returned %llu entries, expected %llu\n",
                    (unsigned long long)x.entries, (unsigned long long)size);
            goto out;
        }
        /* the last line must be a checkpoint covering everything */
        if (!x.last_was_cp || x.last_cp_size != size) {
            if (write_checkpoint(&x, note, strlen(note)) < 0) {
                fputs("vitalog export: out of memory\n", stderr);
                goto out;
            }
        }
    }
    if (fflush(x.out) != 0 || ferror(x.out)) {
        fprintf(stderr, "vitalog export: write error: %s\n", strerror(errno));
        goto out;
    }
    if (x.out != stdout) {
        if (fsync(fileno(x.out)) < 0 || fclose(x.out) != 0) {
            x.out = NULL;
            fprintf(stderr, "vitalog export: write error: %s\n", strerror(errno));
            goto out;
        }
        x.out = NULL;
        if (rename(tmp, output) < 0) {
            fprintf(stderr, "vitalog export: cannot rename %s to %s: %s\n", tmp, output,
                    strerror(errno));
            goto out;
        }
        tmp[0] = '\0';
        vl_cli_fsync_dir_of(output);
    }
    if (records)
        fprintf(stderr, "vitalog export: %llu records\n", (unsigned long long)x.records);
    else
        fprintf(stderr, "vitalog export: %llu entries, %llu checkpoints\n",
                (unsigned long long)x.entries, (unsigned long long)x.checkpoints);
    rc = 0;
out:
    if (x.out && x.out != stdout)
        fclose(x.out);
    if (tmp[0])
        unlink(tmp);
    free(note);
    free(x.buf);
    vl_store_close(store);
    sodium_memzero(&key, sizeof key);
    return rc;
}
