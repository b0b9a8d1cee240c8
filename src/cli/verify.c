/*
 * vitalog — cli: `vitalog verify`, the offline ledger verifier.
 *
 * Two sources, one engine (vl_ledger_verifier_*, shared with the server):
 *
 *   export mode  an export file (or stdin) read line by line with a bounded
 *                reader: memory is O(log n) for the tree plus one line,
 *                however long the export.
 *   data mode    a data directory: the store's ledger scan feeds the same
 *                verifier, and every stored record version is checked
 *                against its entry's commitment.
 *
 * Records (--records FILE, or the store's records in data mode) are checked
 * in lockstep with the entries: both are in ledger order, so one pending
 * record is held while the entry stream advances to the entry with its
 * ref. Memory stays bounded; a record whose entry does not follow is a
 * failure.
 *
 * Every failure is reported once, the first one found, as
 *   vitalog verify: FAILED at <where>: <what>
 * with <where> exactly one of "entry N", "checkpoint at size N", "line L
 * (after N entries)" (export lines that are neither) and "records line L";
 * usage_verify documents each, and tests/unit/cli/test_verify_forms.c
 * produces each. Messages from elsewhere (the verifier, the line readers,
 * the store's open-time check) are put into these forms here.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <sodium.h>

#include "vitalog/cli.h"
#include "vitalog/store.h"

#define PROGRESS_EVERY 100000

static const char usage_verify[] =
    "usage: vitalog verify --key KEY [--records FILE] EXPORT\n"
    "       vitalog verify --keys FILE [--key KEY] [--records FILE] EXPORT\n"
    "       vitalog verify [--key KEY | --keys FILE] --data DIR\n"
    "\n"
    "Verifies a ledger offline: every entry's form, index and hash chain, every\n"
    "key rotation, and every signed checkpoint (C2SP signed note, Ed25519) against\n"
    "the RFC 9162 Merkle root of the entries before it; the last checkpoint must\n"
    "cover every entry. Exits 0 only if everything holds.\n"
    "\n"
    "EXPORT is an export as written by GET /ledger/export or `vitalog export`\n"
    "(NDJSON: entry lines and {\"checkpoint\":...} lines); - reads standard input.\n"
    "It is streamed: memory does not grow with its size.\n"
    "\n"
    "options:\n"
    "  -k, --key KEY        trusted verifier key (C2SP vkey, as served by GET\n"
    "                       /ledger/key), or a file holding one per line;\n"
    "                       repeatable. Keys rotated in by a trusted key are\n"
    "                       trusted from their rotation entry on.\n"
    "      --keys FILE      the log's keys list (GET /ledger/keys, `vitalog key\n"
    "                       list`, docs/ledger.md 5.1): trusts its first key\n"
    "                       (\"from\":0) for the log's beginning, and requires\n"
    "                       every key rotation in the log to introduce exactly\n"
    "                       the next listed key at the listed index, and every\n"
    "                       listed key to be introduced. Each later key still\n"
    "                       needs its rotation entry signed by the key before.\n"
    "                       With --key as well, the list's first key must be a\n"
    "                       --key key (the one you trust for the beginning).\n"
    "  -r, --records FILE   also check stored record bytes: FILE is the NDJSON of\n"
    "                       `vitalog export --records` ({\"ref\",\"salt\",\"bytes\"}\n"
    "                       in ledger order); SHA-256(salt || bytes) must equal the\n"
    "                       commitment of the entry with that ref\n"
    "  -d, --data DIR       verify a data directory instead of an export: its\n"
    "                       ledger, its checkpoints and every stored record\n"
    "                       version (KEY defaults to the log's first key: the\n"
    "                       first line of DIR/ledger.vkey.history after a key\n"
    "                       rotation, else DIR/ledger.vkey)\n"
    "  -h, --help           show this help\n"
    "\n"
    "On success prints one line to stdout: entries, checkpoints, and the size,\n"
    "root and origin of the last checkpoint. With --data while a server runs on\n"
    "DIR, entries newer than its latest checkpoint (signed within a second) are\n"
    "left out and counted in that line.\n"
    "\n"
    "Exit status: 0 everything holds; 1 a failure (below), or an input that\n"
    "cannot be read (a message without \"FAILED\"); 2 bad usage, or a key or keys\n"
    "list that cannot be read or parsed.\n"
    "\n"
    "Failures. The first failure found is printed to stderr as one line\n"
    "  vitalog verify: FAILED at <where>: <what>\n"
    "where <where> is one of:\n"
    "  entry N\n"
    "      Ledger entry N (its index, from 0) is wrong or missing: not in\n"
    "      canonical form; another index where N was due (entries missing,\n"
    "      duplicated or reordered); altered (its hash or its prev breaks the\n"
    "      chain: the altered one of the two is named when the next entry or\n"
    "      checkpoint tells); a key rotation not signed by the trusted key; not\n"
    "      covered by a signed checkpoint; its record does not match its\n"
    "      commitment (--records, --data); or not what the keys list says\n"
    "      (--keys). In an export the line ends with \"(line L)\", the line of\n"
    "      the file it was found on; with --data, \"(found by the store when\n"
    "      opening DIR)\" means the store's own check of the newest 1,024\n"
    "      entries found it.\n"
    "  checkpoint at size N\n"
    "      The signed checkpoint covering entries 0..N-1 does not hold: no\n"
    "      signature by the key trusted at that point, a bad signature by it,\n"
    "      another origin, a size other than the number of entries before it,\n"
    "      or a root other than their Merkle root; \"missing\" when there is no\n"
    "      checkpoint at all. Also ends with \"(line L)\" in an export.\n"
    "  line L (after N entries)\n"
    "      Export only: line L of the file is no entry or checkpoint line at all\n"
    "      (blank, another shape, malformed checkpoint JSON, longer than 64 KiB,\n"
    "      or unreadable); N entries were read before it.\n"
    "  records line L\n"
    "      --records only: line L of the records file is malformed, or no entry\n"
    "      with its ref follows in the export (records are in ledger order).\n"
    "Entries before the failure are proven only as far as a checkpoint that\n"
    "verified before it covers them; nothing from the failure on is.\n"
    "\n"
    "What to do:\n"
    "  entry N         fetch entry N again (GET /ledger/entries?start=N&end=N+1,\n"
    "                  or an export you kept) and compare: a different server copy\n"
    "                  means yours was damaged, the same one that the log was\n"
    "                  altered: keep the export and report this line to the\n"
    "                  operator. \"reading the ledger\" or \"reading the records\"\n"
    "                  (--data) is an I/O error, not evidence: fix it, run again.\n"
    "                  A keys-list failure: fetch the list, then the export, and\n"
    "                  run again; if it persists the list is false: report it.\n"
    "  checkpoint      check the key first: after a key rotation use the log's\n"
    "                  first key (or --keys); another log's key fails here. With\n"
    "                  the right key the checkpoint or the entries before it were\n"
    "                  altered: compare with checkpoints you kept (GET\n"
    "                  /ledger/proof/consistency) and report it.\n"
    "  line L          the file is truncated, damaged or not an export (the\n"
    "                  records file?): download it again.\n"
    "  records line L  export the records of this log again (`vitalog export\n"
    "                  --records`) and run again.\n";

typedef struct verify_state {
    vl_ledger_verifier_t *v;
    uint64_t entries, checkpoints, records;
    /* last checkpoint, for the summary */
    char origin[256];
    uint64_t cp_size;
    unsigned char root[VL_HASH_LEN];
    int have_cp;
    int progress;
    int progress_shown;
    /* the record waiting for its entry */
    int rec_pending;
    char rec_ref[256];
    unsigned char rec_commit[VL_HASH_LEN];
    uint64_t rec_line;      /* export mode: line in the records file */
    uint64_t unsigned_tail; /* data mode, live server: newest entries not checked */
    /* the first failure (text after "FAILED at ") */
    char fail[1024];
} verify_state_t;

static int fail(verify_state_t *st, const char *fmt, ...) VL_PRINTF(2, 3);

static int fail(verify_state_t *st, const char *fmt, ...)
{
    va_list ap;
    if (st->fail[0])
        return -1;
    va_start(ap, fmt);
    vsnprintf(st->fail, sizeof st->fail, fmt, ap);
    va_end(ap);
    return -1;
}

static void progress(verify_state_t *st)
{
    if (st->progress && st->entries % PROGRESS_EVERY == 0) {
        fprintf(stderr, "\r%llu entries", (unsigned long long)st->entries);
        st->progress_shown = 1;
    }
}

static void progress_clear(verify_state_t *st)
{
    if (st->progress_shown)
        fprintf(stderr, "\r%40s\r", "");
}

/* A line reader's error without its leading "line N: " (the caller says
 * which line). */
static const char *reason_of(const char *error)
{
    const char *p = error;
    if (strncmp(p, "line ", 5) != 0)
        return error;
    p += 5;
    if (*p < '0' || *p > '9')
        return error;
    while (*p >= '0' && *p <= '9')
        p++;
    return p[0] == ':' && p[1] == ' ' ? p + 2 : error;
}

/* " (line N)" for export mode, "" for data mode */
static const char *where(char *buf, size_t n, uint64_t lineno)
{
    if (lineno == 0)
        return "";
    snprintf(buf, n, " (line %llu)", (unsigned long long)lineno);
    return buf;
}

/* One entry line, as stored. Then the pending record, if it is this
 * entry's. */
static int on_entry(verify_state_t *st, const char *line, size_t len, const unsigned char *leaf,
                    uint64_t lineno)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_ledger_entry_t e;
    char w[48];
    if ((leaf ? vl_ledger_verifier_entry_hashed(st->v, line, len, leaf, &err)
              : vl_ledger_verifier_entry(st->v, line, len, &err)) < 0) {
        fail(st, "%s%s", vl_error_message(&err), where(w, sizeof w, lineno));
        vl_error_clear(&err);
        return -1;
    }
    st->entries++;
    progress(st);
    if (!st->rec_pending)
        return 0;
    if (vl_ledger_entry_parse(line, len, &e, &err) < 0) {
        /* the verifier accepted it, so this cannot happen; fail closed */
        fail(st, "entry %llu: %s", (unsigned long long)(st->entries - 1), vl_error_message(&err));
        vl_error_clear(&err);
        return -1;
    }
    if (e.kind == VL_ENTRY_KEY_ROTATION || strcmp(e.ref, st->rec_ref) != 0)
        return 0;
    if (sodium_memcmp(e.commitment, st->rec_commit, VL_HASH_LEN) != 0)
        fail(st,
             "entry %llu: record %s: SHA-256(salt || bytes) does not match the entry's "
             "commitment (the stored bytes or salt were changed)",
             (unsigned long long)e.index, st->rec_ref);
    st->rec_pending = 0;
    st->records++;
    return 0;
}

static int on_checkpoint(verify_state_t *st, const char *note, size_t len, uint64_t lineno)
{
    vl_error_t err = VL_ERROR_INIT;
    char w[48];
    if (vl_ledger_verifier_checkpoint(st->v, note, len, &err) < 0) {
        fail(st, "%s%s", vl_error_message(&err), where(w, sizeof w, lineno));
        vl_error_clear(&err);
        return -1;
    }
    st->checkpoints++;
    if (vl_cli_note_checkpoint(note, len, st->origin, sizeof st->origin, &st->cp_size, st->root) ==
        0)
        st->have_cp = 1;
    return 0;
}

static int finish(verify_state_t *st)
{
    vl_error_t err = VL_ERROR_INIT;
    if (vl_ledger_verifier_finish(st->v, &err) < 0) {
        fail(st, "%s", vl_error_message(&err));
        vl_error_clear(&err);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Records
 * ---------------------------------------------------------------------- */

/* Sets the pending record from its parts. */
static int set_record(verify_state_t *st, const char *ref, const unsigned char salt[32],
                      const void *bytes, size_t len)
{
    if (strlen(ref) >= sizeof st->rec_ref)
        return -1;
    snprintf(st->rec_ref, sizeof st->rec_ref, "%s", ref);
    vl_ledger_commitment(salt, bytes, len, st->rec_commit);
    st->rec_pending = 1;
    return 0;
}

/* Reads the next line of the records file into the pending record.
 * 0 (rec_pending says whether there was one) or -1 (failure recorded). */
static int next_record(verify_state_t *st, vl_cli_lines_t *rec)
{
    char *line;
    size_t len, b64len, binlen = 0, saltlen = 0;
    json_t *doc = NULL, *jref, *jsalt, *jbytes;
    json_error_t jerr;
    unsigned char salt[32], *bytes = NULL;
    const char *b64, *end = NULL;
    int rc;

    st->rec_pending = 0;
    rc = vl_cli_lines_next(rec, &line, &len);
    if (rc == 0)
        return 0;
    if (rc < 0)
        return fail(st, "records line %llu: %s", (unsigned long long)rec->lineno + 1,
                    reason_of(rec->error));
    st->rec_line = rec->lineno;
    doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc)) {
        fail(st, "records line %llu: not a JSON object%s%s", (unsigned long long)rec->lineno,
             doc ? "" : ": ", doc ? "" : jerr.text);
        goto out;
    }
    jref = json_object_get(doc, "ref");
    jsalt = json_object_get(doc, "salt");
    jbytes = json_object_get(doc, "bytes");
    if (!json_is_string(jref) || !json_is_string(jsalt) || !json_is_string(jbytes)) {
        fail(st, "records line %llu: needs string members ref, salt and bytes",
             (unsigned long long)rec->lineno);
        goto out;
    }
    if (json_string_length(jsalt) != 64 ||
        sodium_hex2bin(salt, sizeof salt, json_string_value(jsalt), 64, NULL, &saltlen, &end) !=
            0 ||
        saltlen != 32) {
        fail(st, "records line %llu: %s: salt is not 64 hex digits",
             (unsigned long long)rec->lineno, json_string_value(jref));
        goto out;
    }
    b64 = json_string_value(jbytes);
    b64len = json_string_length(jbytes);
    bytes = malloc(b64len / 4 * 3 + 3);
    if (!bytes) {
        fail(st, "records line %llu: out of memory", (unsigned long long)rec->lineno);
        goto out;
    }
    end = NULL;
    if (sodium_base642bin(bytes, b64len / 4 * 3 + 3, b64, b64len, NULL, &binlen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b64 + b64len) {
        fail(st, "records line %llu: %s: bytes is not base64", (unsigned long long)rec->lineno,
             json_string_value(jref));
        goto out;
    }
    if (set_record(st, json_string_value(jref), salt, bytes, binlen) < 0)
        fail(st, "records line %llu: ref too long", (unsigned long long)rec->lineno);
out:
    free(bytes);
    json_decref(doc);
    return st->fail[0] ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Export mode
 * ---------------------------------------------------------------------- */

static int verify_export(verify_state_t *st, const char *path, const char *records)
{
    vl_cli_pipe_t *in; /* leaf hashes computed on a second thread */
    vl_cli_lines_t rec;
    int rc, rec_open = 0;
    char *line;
    size_t len;
    const unsigned char *leaf;

    if (!(in = vl_cli_pipe_open(path, VL_CLI_MAX_LINE))) {
        fprintf(stderr, "vitalog verify: cannot open %s: %s\n", path, strerror(errno));
        return -2;
    }
    if (records) {
        if (!strcmp(records, "-") && !strcmp(path, "-")) {
            fprintf(stderr, "vitalog verify: the export and --records cannot both be stdin\n");
            vl_cli_pipe_close(in);
            return -2;
        }
        if (vl_cli_lines_open(&rec, records, VL_CLI_MAX_RECORD_LINE) < 0) {
            fprintf(stderr, "vitalog verify: cannot open %s: %s\n", records, strerror(errno));
            vl_cli_pipe_close(in);
            return -2;
        }
        rec_open = 1;
        if (next_record(st, &rec) < 0)
            goto out;
    }

    while ((rc = vl_cli_pipe_next(in, &line, &len, &leaf)) > 0) {
        uint64_t n = vl_cli_pipe_lineno(in);
        if (len == 0) {
            fail(st, "line %llu (after %llu entries): blank line", (unsigned long long)n,
                 (unsigned long long)st->entries);
            goto out;
        }
        if (len >= 9 && !memcmp(line, "{\"index\":", 9)) {
            if (on_entry(st, line, len, leaf, n) < 0)
                goto out;
            if (rec_open && !st->rec_pending && next_record(st, &rec) < 0)
                goto out;
        } else if (len >= 14 && !memcmp(line, "{\"checkpoint\":", 14)) {
            json_error_t jerr;
            json_t *doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
            json_t *note = json_object_get(doc, "checkpoint");
            if (!doc || json_object_size(doc) != 1 || !json_is_string(note)) {
                fail(st,
                     "line %llu (after %llu entries): malformed checkpoint line (want "
                     "{\"checkpoint\":\"<signed note>\"})%s%s",
                     (unsigned long long)n, (unsigned long long)st->entries, doc ? "" : ": ",
                     doc ? "" : jerr.text);
                json_decref(doc);
                goto out;
            }
            rc = on_checkpoint(st, json_string_value(note), json_string_length(note), n);
            json_decref(doc);
            if (rc < 0)
                goto out;
        } else {
            fail(st, "line %llu (after %llu entries): neither an entry nor a checkpoint line",
                 (unsigned long long)n, (unsigned long long)st->entries);
            goto out;
        }
    }
    if (rc < 0) {
        fail(st, "line %llu (after %llu entries): %s",
             (unsigned long long)vl_cli_pipe_lineno(in) + 1, (unsigned long long)st->entries,
             reason_of(vl_cli_pipe_error(in)));
        goto out;
    }
    if (finish(st) < 0)
        goto out;
    if (st->rec_pending)
        fail(st,
             "records line %llu: record %s: no entry with this ref follows in the export "
             "(records must be in ledger order)",
             (unsigned long long)st->rec_line, st->rec_ref);
out:
    vl_cli_pipe_close(in);
    if (rec_open)
        vl_cli_lines_close(&rec);
    return st->fail[0] ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Data mode
 * ---------------------------------------------------------------------- */

typedef struct data_ctx {
    verify_state_t *st;
    vl_store_t *store;
    uint64_t pos;  /* next entry to feed */
    uint64_t size; /* entries committed when the check started */
    int beyond;    /* a record past `size` (written meanwhile): stop there */
    vl_store_err_t err;
    /* the stored tree (entry hashes and perfect-subtree nodes that proofs
     * are built from) must be the tree of the stored lines */
    vl_ledger_range_t range;
    int node_bad;
    int node_level;
    uint64_t node_index;
} data_ctx_t;

static void data_node_cb(void *ctx, int level, uint64_t index,
                         const unsigned char hash[VL_HASH_LEN])
{
    data_ctx_t *d = ctx;
    unsigned char stored[VL_HASH_LEN];
    if (d->node_bad)
        return;
    if (vl_store_ledger_node(d->store, vl_scope_everything(), level, index, stored) < 0 ||
        memcmp(stored, hash, VL_HASH_LEN) != 0) {
        d->node_bad = 1;
        d->node_level = level;
        d->node_index = index;
    }
}

/* The stored hash of entry `index` and the tree nodes it completes. */
static int data_check_tree(data_ctx_t *d, uint64_t index, const char *line, size_t len)
{
    unsigned char leaf[VL_HASH_LEN], stored[VL_HASH_LEN];
    vl_ledger_leaf_hash(line, len, leaf);
    if (vl_store_ledger_node(d->store, vl_scope_everything(), 0, index, stored) < 0 ||
        memcmp(stored, leaf, VL_HASH_LEN) != 0)
        return fail(d->st, "entry %llu: the stored entry hash is not the hash of its line",
                    (unsigned long long)index);
    vl_ledger_range_append(&d->range, leaf, data_node_cb, d);
    if (d->node_bad)
        return fail(d->st,
                    "entry %llu: the stored Merkle tree node (level %d, index %llu) does not "
                    "match the entries it covers (proofs built from it would be wrong)",
                    (unsigned long long)index, d->node_level, (unsigned long long)d->node_index);
    return 0;
}

static int data_ledger_cb(void *ctx, uint64_t index, const char *line, size_t line_len,
                          const char *note, size_t note_len)
{
    data_ctx_t *d = ctx;
    if (line) {
        if (index != d->pos) {
            fail(d->st, "entry %llu: the store returned entry %llu out of order",
                 (unsigned long long)d->pos, (unsigned long long)index);
            return 1;
        }
        if (on_entry(d->st, line, line_len, NULL, 0) < 0 ||
            data_check_tree(d, index, line, line_len) < 0)
            return 1;
        d->pos = index + 1;
        return 0;
    }
    if (note)
        return on_checkpoint(d->st, note, note_len, 0) < 0 ? 1 : 0;
    return 0;
}

/* Advances the ledger to `end` (exclusive). */
static int data_advance(data_ctx_t *d, uint64_t end)
{
    int rc;
    if (end <= d->pos)
        return 0;
    rc = vl_store_ledger_scan(d->store, vl_scope_everything(), d->pos, end, data_ledger_cb, d,
                              &d->err);
    if (d->st->fail[0])
        return -1;
    if (rc != 0 || d->err.kind)
        return fail(d->st, "entry %llu: reading the ledger: %s", (unsigned long long)d->pos,
                    d->err.kind ? d->err.message : "scan failed");
    if (d->pos != end)
        return fail(d->st, "entry %llu: missing from the store (ledger size %llu)",
                    (unsigned long long)d->pos, (unsigned long long)d->size);
    return 0;
}

static int data_record_cb(void *ctx, uint64_t index, const char *ref, const unsigned char salt[32],
                          const char *bytes, size_t len)
{
    data_ctx_t *d = ctx;
    verify_state_t *st = d->st;
    if (index == UINT64_MAX) { /* a stored version that no entry anchors */
        fail(st, "entry %llu: record %s has no ledger entry (every accepted write must have one)",
             (unsigned long long)d->size, ref);
        return 1;
    }
    if (index >= d->size) {
        /* written after the check started, or pointing past the ledger */
        uint64_t now = 0;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        int rc = vl_store_ledger_size(d->store, vl_scope_everything(), &now, &err);
        if (rc == 0 && index >= now) {
            fail(st, "entry %llu: record %s names an entry past the end of the ledger (size %llu)",
                 (unsigned long long)index, ref, (unsigned long long)now);
            return 1;
        }
        d->beyond = 1;
        return 1;
    }
    if (index < d->pos) {
        fail(st, "entry %llu: record %s is not in ledger order (already past entry %llu)",
             (unsigned long long)index, ref, (unsigned long long)d->pos);
        return 1;
    }
    if (set_record(st, ref, salt, bytes, len) < 0) {
        fail(st, "entry %llu: record ref too long", (unsigned long long)index);
        return 1;
    }
    if (data_advance(d, index + 1) < 0)
        return 1;
    if (st->rec_pending) {
        fail(st,
             "entry %llu: record %s is stored for this entry, but the entry is for "
             "another ref",
             (unsigned long long)index, ref);
        return 1;
    }
    return 0;
}

/* What the store found wrong when it opened (its message after "ledger: ",
 * from its check of the newest entries and the latest checkpoint), put in
 * the forms above: "entry N is missing" -> "entry N: missing", "the
 * checkpoint at size N ..." -> "checkpoint at size N: ...", "the tree node
 * (level L, index I) is missing" -> "entry I*2^L: ...". -1 with the
 * failure recorded; -2 if the message has none of these shapes (then it is
 * no verification result, and the caller reports it as an open error). */
static int store_open_failure(verify_state_t *st, const char *msg, const char *dir)
{
    unsigned long long n, idx;
    int level, off = 0;
    if (sscanf(msg, "entry %llu %n", &n, &off) == 1 && off > 0) {
        const char *rest = msg + off;
        if (!strncmp(rest, "is ", 3))
            rest += 3;
        return fail(st, "entry %llu: %s (found by the store when opening %s)", n, rest, dir);
    }
    if (sscanf(msg, "the checkpoint at size %llu %n", &n, &off) == 1 && off > 0)
        return fail(st, "checkpoint at size %llu: %s (found by the store when opening %s)", n,
                    msg + off, dir);
    if (sscanf(msg, "the tree node (level %d, index %llu) is missing%n", &level, &idx, &off) == 2 &&
        off > 0 && msg[off] == '\0' && level >= 0 && level < 64 && idx <= UINT64_MAX >> level)
        return fail(st,
                    "entry %llu: the stored Merkle tree node (level %d, index %llu) is missing "
                    "(found by the store when opening %s)",
                    idx << level, level, idx, dir);
    return -2;
}

/* True when a server holds DIR/vitalog.lock right now. */
static int server_running(const char *dir)
{
    char path[PATH_MAX];
    int fd, busy;
    snprintf(path, sizeof path, "%s/vitalog.lock", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd); /* releases a lock taken here */
    return busy;
}

static int verify_data(verify_state_t *st, const char *dir)
{
    vl_store_options_t opts;
    vl_store_t *store = NULL;
    data_ctx_t d;
    int rc;

    memset(&d, 0, sizeof d);
    d.st = st;
    if (vl_cli_check_data("vitalog verify", dir) < 0)
        return -2;
    memset(&opts, 0, sizeof opts);
    opts.key = NULL; /* read-only for the ledger */
    if (vl_store_open(dir, &opts, &store, &d.err) < 0) {
        const char *msg = d.err.message;
        /* the store checks the tail of the chain and the latest checkpoint
         * when it opens: what it finds there is a verification result */
        if (!strncmp(msg, "ledger: ", 8) && store_open_failure(st, msg + 8, dir) == -1) {
            return -1;
        }
        fprintf(stderr, "vitalog verify: cannot open the store in %s: %s\n", dir, msg);
        return -2;
    }
    d.store = store;
    vl_ledger_range_init(&d.range);
    if (vl_store_ledger_size(store, vl_scope_everything(), &d.size, &d.err) < 0) {
        fail(st, "entry 0: reading the ledger size: %s", d.err.message);
        goto out;
    }
    if (server_running(dir)) {
        /* a live server signs new entries within a second: check up to its
         * latest checkpoint, not the entries it has yet to sign */
        char *note = NULL;
        uint64_t cp = 0;
        if (vl_store_ledger_checkpoint(store, vl_scope_everything(), 0, &note, &cp, &d.err) == 0 &&
            cp < d.size) {
            st->unsigned_tail = d.size - cp;
            d.size = cp;
        }
        d.err = (vl_store_err_t)VL_STORE_ERR_INIT;
        free(note);
    }
    rc = vl_store_records_scan(store, vl_scope_everything(), data_record_cb, &d, &d.err);
    if (st->fail[0])
        goto out;
    if (rc != 0 && !d.beyond) {
        fail(st, "entry %llu: reading the records: %s", (unsigned long long)d.pos,
             d.err.kind ? d.err.message : "scan failed");
        goto out;
    }
    d.err = (vl_store_err_t)VL_STORE_ERR_INIT;
    if (data_advance(&d, d.size) < 0)
        goto out;
    finish(st);
out:
    vl_store_close(store);
    return st->fail[0] ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * The command
 * ---------------------------------------------------------------------- */

/* With --key and --keys: 0 if the list's first key is one of the --key
 * keys, else the failure (the list does not start where the auditor's
 * trust does). */
static int check_pinned(verify_state_t *st, const vl_ledger_keys_t *list,
                        const vl_ledger_key_t *keys, size_t nkeys)
{
    vl_ledger_key_t first;
    if (vl_ledger_key_parse_vkey(list->first, &first, NULL) == 0)
        for (size_t i = 0; i < nkeys; i++)
            if (!strcmp(keys[i].name, first.name) && !memcmp(keys[i].pk, first.pk, 32))
                return 0;
    return fail(st,
                "entry 0: the keys list begins with %s, which is not a --key key (the list "
                "does not start from the key you trust for the log's beginning)",
                list->first);
}

int vl_cli_verify(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, 'k'},     {"keys", required_argument, NULL, 'K'},
        {"records", required_argument, NULL, 'r'}, {"data", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    vl_ledger_key_t keys[VL_CLI_MAX_KEYS];
    vl_ledger_keys_t list;
    size_t nkeys = 0, i;
    const char *records = NULL, *data = NULL, *keys_path = NULL, *origin;
    const char *key_args[VL_CLI_MAX_KEYS];
    size_t nkey_args = 0;
    verify_state_t *st = NULL;
    int opt, rc = 1;

    memset(&list, 0, sizeof list);
    optind = 0;
    while ((opt = getopt_long(argc, argv, "k:r:d:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'k':
            if (nkey_args == VL_CLI_MAX_KEYS) {
                fprintf(stderr, "vitalog verify: at most %d --key options\n", VL_CLI_MAX_KEYS);
                return 2;
            }
            key_args[nkey_args++] = optarg;
            break;
        case 'K':
            if (keys_path) {
                fprintf(stderr, "vitalog verify: at most one --keys list\n");
                return 2;
            }
            keys_path = optarg;
            break;
        case 'r': records = optarg; break;
        case 'd': data = optarg; break;
        case 'h': fputs(usage_verify, stdout); return 0;
        default: fputs(usage_verify, stderr); return 2;
        }
    }
    if (data) {
        if (optind < argc) {
            fprintf(stderr, "vitalog verify: give either --data DIR or an EXPORT, not both\n");
            return 2;
        }
        if (records) {
            fprintf(stderr, "vitalog verify: --records is for exports; with --data every "
                            "stored record is checked\n");
            return 2;
        }
    } else {
        if (optind + 1 != argc) {
            fprintf(stderr, "vitalog verify: %s\n\n%s",
                    optind == argc ? "missing EXPORT (or --data DIR)" : "more than one EXPORT",
                    usage_verify);
            return 2;
        }
        if (nkey_args == 0 && !keys_path) {
            fprintf(stderr,
                    "vitalog verify: --key KEY or --keys FILE is required to verify an export\n");
            return 2;
        }
    }

    memset(keys, 0, sizeof keys);
    for (i = 0; i < nkey_args; i++)
        if (vl_cli_load_vkeys("vitalog verify", key_args[i], keys, &nkeys) < 0)
            return 2;
    if (keys_path) {
        if (vl_cli_load_keys_list("vitalog verify", keys_path, &list) < 0)
            return 2;
    } else if (nkey_args == 0) {
        /* the log's first key: later ones are learnt from rotation entries */
        char first[512];
        vl_error_t err = VL_ERROR_INIT;
        if (vl_cli_first_vkey("vitalog verify", data, first, sizeof first) < 0) {
            fprintf(stderr,
                    "vitalog verify: give --key or --keys, or keep the log's verifier "
                    "keys in %s\n",
                    data);
            return 2;
        }
        if (vl_ledger_key_parse_vkey(first, &keys[0], &err) < 0) { /* checked: cannot fail */
            vl_error_clear(&err);
            return 2;
        }
        nkeys = 1;
    }
    /* checkpoints are named like their key; with keys of one name, insist
     * on that origin */
    origin = keys[0].name;
    for (i = 1; i < nkeys; i++)
        if (strcmp(keys[i].name, keys[0].name) != 0)
            origin = NULL;

    st = calloc(1, sizeof *st);
    if (!st) {
        fputs("vitalog verify: out of memory\n", stderr);
        goto out;
    }
    st->v = keys_path ? vl_ledger_verifier_new_keys(&list)
                      : vl_ledger_verifier_new(keys, nkeys, origin);
    if (!st->v) {
        fputs("vitalog verify: out of memory\n", stderr);
        goto out;
    }
    st->progress = isatty(STDERR_FILENO);
    vl_log_set_level(VL_LOG_WARN); /* the store's start-up chatter */

    if (keys_path && nkeys > 0 && check_pinned(st, &list, keys, nkeys) < 0)
        rc = -1;
    else
        rc = data ? verify_data(st, data) : verify_export(st, argv[optind], records);
    progress_clear(st);
    if (rc == -2) {
        rc = 1;
    } else if (rc < 0 || st->fail[0]) {
        fprintf(stderr, "vitalog verify: FAILED at %s\n", st->fail);
        rc = 1;
    } else {
        char root[sodium_base64_ENCODED_LEN(VL_HASH_LEN, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(root, sizeof root, st->root, VL_HASH_LEN, sodium_base64_VARIANT_ORIGINAL);
        printf("vitalog verify: OK: %llu entries, %llu checkpoints, size %llu, root %s, "
               "origin %s",
               (unsigned long long)st->entries, (unsigned long long)st->checkpoints,
               (unsigned long long)(st->have_cp ? st->cp_size : st->entries),
               st->have_cp ? root : "-", st->have_cp ? st->origin : "-");
        if (records || data)
            printf(", %llu records", (unsigned long long)st->records);
        if (keys_path)
            printf(", %zu listed keys", list.n + 1);
        if (st->unsigned_tail)
            printf(" (a server is running: %llu newer entries not signed yet, not checked)",
                   (unsigned long long)st->unsigned_tail);
        putchar('\n');
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
out:
    if (st)
        vl_ledger_verifier_free(st->v);
    free(st);
    vl_ledger_keys_clear(&list);
    return rc;
}
