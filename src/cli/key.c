/*
 * vitalog — cli: `vitalog key show|list|rotate`, the ledger signing key of
 * a data directory.
 *
 * `key list` prints the keys list (docs/ledger.md 5.1), the same bytes as
 * GET /ledger/keys: the log's first verifier key (vl_cli_first_vkey) and
 * every key-rotation entry of the ledger, each checked to be signed by the
 * key before it (vl_ledger_keys_add_entry), so a list that would not
 * verify is never printed.
 *
 * Rotation, and what a crash at each step leaves behind:
 *
 *   1. lock DIR/vitalog.lock (a running server holds it: refuse)
 *   2. write the new signer key to DIR/ledger.key.next (0600, fsync)
 *        crash here: .next exists, no rotation entry names it
 *   3. append the rotation entry (signed by the old key) and commit
 *        crash here: .next exists and the last rotation entry names it
 *   4. append the old verifier key to DIR/ledger.vkey.history, rename
 *      ledger.key.next -> ledger.key, rewrite DIR/ledger.vkey (temp file,
 *      fsync, rename)
 *
 * A later `key rotate` that finds ledger.key.next looks for it in the
 * ledger: named by the last rotation entry, the rotation committed and only
 * step 4 is redone; otherwise .next is discarded and rotation starts
 * over.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <sodium.h>

#include "vitalog/cli.h"
#include "vitalog/store.h"

#define VKEY_MAX 512
#define SKEY_MAX 512

static const char usage_key[] =
    "usage: vitalog key show [--data DIR]\n"
    "       vitalog key list [--data DIR]\n"
    "       vitalog key rotate [--data DIR]\n"
    "\n"
    "The ledger signing key of a data directory: DIR/ledger.key (signer key,\n"
    "mode 0600, never leaves the machine) and DIR/ledger.vkey (the C2SP verifier\n"
    "key auditors pass to `vitalog verify --key`). Rotation keeps the earlier\n"
    "verifier keys, oldest first, in DIR/ledger.vkey.history.\n"
    "\n"
    "  show     print the current verifier key\n"
    "  list     print the log's keys list, the document GET /ledger/keys serves\n"
    "           (docs/ledger.md 5.1): every verifier key, oldest first, with the\n"
    "           tree sizes it signs, {\"origin\":...,\"keys\":[{\"key\":...,\"from\":0},\n"
    "           {\"key\":...,\"from\":R+1,\"rotation\":R},...]}, R the index of the\n"
    "           key-rotation entry that introduced the key. The first key comes\n"
    "           from DIR/ledger.vkey.history (else DIR/ledger.vkey), the others\n"
    "           from the ledger, each checked against the one before. For\n"
    "           `vitalog verify --keys`. May run while the server serves.\n"
    "  rotate   generate a new key with the same name and append a key-rotation\n"
    "           entry signed by the old key; later checkpoints are signed by the\n"
    "           new key, which verifiers trust through that entry. The server\n"
    "           must be stopped (DIR/vitalog.lock). Prints the new verifier key.\n"
    "\n"
    "options:\n"
    "  -d, --data DIR   data directory (default: ./data)\n"
    "  -h, --help       show this help\n";

static int parse_data(const char *cmd, int argc, char **argv, const char **data)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': *data = optarg; break;
        case 'h': fputs(usage_key, stdout); return 0;
        default: fputs(usage_key, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", cmd, argv[optind]);
        return 2;
    }
    return -1; /* go on */
}

static int key_show(int argc, char **argv)
{
    const char *cmd = "vitalog key show", *data = "./data";
    char path[PATH_MAX], vkey[VKEY_MAX];
    vl_ledger_key_t key;
    int rc = parse_data(cmd, argc, argv, &data);
    if (rc >= 0)
        return rc;
    memset(&key, 0, sizeof key);
    snprintf(path, sizeof path, "%s/ledger.key", data);
    if (access(path, F_OK) == 0) {
        char *stored;
        if (vl_cli_load_skey(cmd, path, &key) < 0)
            return 1;
        rc = vl_ledger_key_vkey(&key, vkey, sizeof vkey);
        sodium_memzero(&key, sizeof key);
        if (rc < 0) {
            fprintf(stderr, "%s: cannot render the verifier key\n", cmd);
            return 1;
        }
        snprintf(path, sizeof path, "%s/ledger.vkey", data);
        stored = vl_cli_read_small(path, VKEY_MAX);
        if (stored && strcmp(stored, vkey) != 0)
            fprintf(stderr,
                    "%s: warning: %s does not match ledger.key (run `vitalog key "
                    "rotate` to finish an interrupted rotation)\n",
                    cmd, path);
        free(stored);
    } else {
        size_t n = 0;
        vl_ledger_key_t vk[VL_CLI_MAX_KEYS];
        snprintf(path, sizeof path, "%s/ledger.vkey", data);
        if (access(path, F_OK) != 0) {
            fprintf(stderr, "%s: neither %s/ledger.key nor %s exists\n", cmd, data, path);
            return 1;
        }
        if (vl_cli_load_vkeys(cmd, path, vk, &n) < 0)
            return 1;
        if (vl_ledger_key_vkey(&vk[n - 1], vkey, sizeof vkey) < 0) {
            fprintf(stderr, "%s: cannot render the verifier key\n", cmd);
            return 1;
        }
    }
    snprintf(path, sizeof path, "%s/ledger.key.next", data);
    if (access(path, F_OK) == 0)
        fprintf(stderr,
                "%s: warning: %s exists: a rotation was interrupted; run `vitalog key "
                "rotate` with the server stopped to finish it\n",
                cmd, path);
    printf("%s\n", vkey);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * The keys list
 * ---------------------------------------------------------------------- */

typedef struct list_ctx {
    vl_ledger_keys_t *keys;
    vl_error_t err;
} list_ctx_t;

static int list_cb(void *ctx, uint64_t index, const char *line, size_t line_len, const char *note,
                   size_t note_len)
{
    list_ctx_t *lc = ctx;
    (void)index;
    (void)note;
    (void)note_len;
    if (!line)
        return 0; /* a checkpoint */
    return vl_ledger_keys_add_entry(lc->keys, line, line_len, &lc->err) == 0 ? 0 : 1;
}

static int key_list(int argc, char **argv)
{
    const char *cmd = "vitalog key list", *data = "./data";
    char first[VKEY_MAX], path[PATH_MAX], *doc = NULL, *current;
    vl_ledger_keys_t keys;
    list_ctx_t lc;
    vl_store_options_t opts;
    vl_store_t *store = NULL;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    uint64_t size = 0;
    size_t len = 0;
    int rc = parse_data(cmd, argc, argv, &data);
    if (rc >= 0)
        return rc;
    rc = 1;
    memset(&keys, 0, sizeof keys);
    memset(&lc, 0, sizeof lc);
    lc.keys = &keys;
    if (vl_cli_check_data(cmd, data) < 0 || vl_cli_first_vkey(cmd, data, first, sizeof first) < 0)
        return 1;
    if (vl_ledger_keys_init(&keys, first, &lc.err) < 0) {
        fprintf(stderr, "%s: %s\n", cmd, vl_error_message(&lc.err));
        goto out;
    }
    vl_log_set_level(VL_LOG_WARN);
    memset(&opts, 0, sizeof opts); /* read-only for the ledger */
    if (vl_store_open(data, &opts, &store, &serr) < 0) {
        fprintf(stderr, "%s: cannot open the store in %s: %s\n", cmd, data, serr.message);
        goto out;
    }
    if (vl_store_ledger_size(store, vl_scope_everything(), &size, &serr) < 0 ||
        (size > 0 &&
         vl_store_ledger_scan(store, vl_scope_everything(), 0, size, list_cb, &lc, &serr) != 0)) {
        fprintf(stderr, "%s: %s: %s\n", cmd, data,
                lc.err.status ? vl_error_message(&lc.err)
                : serr.kind   ? serr.message
                              : "cannot read the ledger");
        if (lc.err.status && strstr(vl_error_message(&lc.err), "not signed by the key before"))
            fprintf(stderr,
                    "%s: the first key (%s) is not the one this log began with, or the "
                    "ledger was altered; check with `vitalog verify --data %s`\n",
                    cmd, first, data);
        goto out;
    }
    doc = vl_ledger_keys_format(keys.origin, keys.first, keys.rotations, keys.n, &len);
    if (!doc) {
        fprintf(stderr, "%s: cannot render the keys list\n", cmd);
        goto out;
    }
    /* the last listed key signs now: ledger.vkey should be it */
    snprintf(path, sizeof path, "%s/ledger.vkey", data);
    current = vl_cli_read_small(path, VKEY_MAX);
    if (current && strcmp(current, keys.n ? keys.rotations[keys.n - 1].key : keys.first) != 0)
        fprintf(stderr,
                "%s: warning: %s is not the last key the ledger rotated to (an "
                "interrupted rotation? run `vitalog key rotate` with the server stopped "
                "to finish it)\n",
                cmd, path);
    free(current);
    rc = fwrite(doc, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
out:
    free(doc);
    vl_store_close(store);
    vl_ledger_keys_clear(&keys);
    vl_error_clear(&lc.err);
    return rc;
}

/* ------------------------------------------------------------------------
 * Rotation
 * ---------------------------------------------------------------------- */

/* Writes a signer key to `path` (must not exist), 0600, durably. */
static int write_skey(const char *cmd, const char *path, const vl_ledger_key_t *k)
{
    char text[SKEY_MAX + 1];
    size_t len;
    int fd, e;
    if (vl_ledger_key_skey(k, text, sizeof text - 1) < 0) {
        fprintf(stderr, "%s: cannot render the signer key\n", cmd);
        return -1;
    }
    len = strlen(text);
    text[len++] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
        e = errno ? errno : EIO;
        close(fd);
        unlink(path);
        errno = e;
        goto fail;
    }
    if (close(fd) < 0 || vl_cli_fsync_dir_of(path) < 0) {
        e = errno;
        unlink(path);
        errno = e;
        goto fail;
    }
    sodium_memzero(text, sizeof text);
    return 0;
fail:
    sodium_memzero(text, sizeof text);
    fprintf(stderr, "%s: cannot write %s: %s\n", cmd, path, strerror(errno));
    return -1;
}

/* The verifier key named by the ledger's last rotation entry. */
static int last_rotation(void *ctx, uint64_t index, const char *vkey)
{
    char *last = ctx;
    (void)index;
    snprintf(last, VKEY_MAX, "%s", vkey);
    return 0;
}

/* 1 if the ledger's last rotation entry names `next`, 0 if not, -1 error. */
static int rotation_committed(const char *cmd, const char *data, const vl_ledger_key_t *next)
{
    vl_store_options_t opts;
    vl_store_t *store = NULL;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    char vkey[VKEY_MAX], last[VKEY_MAX] = "";
    int rc = -1;
    memset(&opts, 0, sizeof opts);
    if (vl_ledger_key_vkey(next, vkey, sizeof vkey) < 0)
        return -1;
    if (vl_store_open(data, &opts, &store, &err) < 0) {
        fprintf(stderr, "%s: cannot open the store in %s: %s\n", cmd, data, err.message);
        goto out;
    }
    if (vl_store_ledger_rotations(store, vl_scope_everything(), last_rotation, last, &err) != 0) {
        fprintf(stderr, "%s: cannot read the ledger: %s\n", cmd, err.message);
        goto out;
    }
    rc = strcmp(last, vkey) == 0;
out:
    vl_store_close(store);
    return rc;
}

/* Appends the old verifier key to DIR/ledger.vkey.history (oldest first;
 * `verify --data` trusts its first line: later keys are learnt from the
 * rotation entries). Idempotent: a key already last is not repeated. */
static int append_history(const char *cmd, const char *data, const vl_ledger_key_t *old)
{
    char path[PATH_MAX], vkey[VKEY_MAX + 1];
    char *text;
    const char *last;
    size_t len;
    int fd;
    snprintf(path, sizeof path, "%s/ledger.vkey.history", data);
    if (vl_ledger_key_vkey(old, vkey, sizeof vkey - 1) < 0) {
        fprintf(stderr, "%s: cannot render the verifier key\n", cmd);
        return -1;
    }
    text = vl_cli_read_small(path, 1024 * 1024);
    if (text) {
        last = strrchr(text, '\n');
        last = last ? last + 1 : text;
        if (!strcmp(last, vkey)) {
            free(text);
            return 0;
        }
        free(text);
    }
    len = strlen(vkey);
    vkey[len++] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, vkey, len) != (ssize_t)len || fsync(fd) < 0) {
        fprintf(stderr, "%s: cannot append to %s: %s\n", cmd, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Steps 4 and 5: .next becomes ledger.key, ledger.vkey follows. */
static int install_key(const char *cmd, const char *data, const vl_ledger_key_t *old,
                       const vl_ledger_key_t *next)
{
    char path[PATH_MAX], nextpath[PATH_MAX], vkey[VKEY_MAX + 1];
    size_t len;
    if (append_history(cmd, data, old) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/ledger.key", data);
    snprintf(nextpath, sizeof nextpath, "%s/ledger.key.next", data);
    if (rename(nextpath, path) < 0 || vl_cli_fsync_dir_of(path) < 0) {
        fprintf(stderr, "%s: cannot rename %s to %s: %s\n", cmd, nextpath, path, strerror(errno));
        return -1;
    }
    if (vl_ledger_key_vkey(next, vkey, sizeof vkey - 1) < 0) {
        fprintf(stderr, "%s: cannot render the verifier key\n", cmd);
        return -1;
    }
    len = strlen(vkey);
    vkey[len++] = '\n';
    snprintf(path, sizeof path, "%s/ledger.vkey", data);
    if (vl_cli_write_atomic(path, vkey, len, 0644) < 0) {
        fprintf(stderr,
                "%s: the new key is installed in ledger.key but %s could not be written "
                "(%s); write it with `vitalog key show --data %s > %s`\n",
                cmd, path, strerror(errno), data, path);
        return -2;
    }
    fwrite(vkey, 1, len, stdout);
    return fflush(stdout) == 0 ? 0 : -1;
}

static int key_rotate(int argc, char **argv)
{
    const char *cmd = "vitalog key rotate", *data = "./data";
    char path[PATH_MAX], nextpath[PATH_MAX];
    vl_ledger_key_t old, next;
    vl_store_options_t opts;
    vl_store_t *store = NULL;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    int lockfd = -1, rc = parse_data(cmd, argc, argv, &data);
    if (rc >= 0)
        return rc;
    rc = 1;
    memset(&old, 0, sizeof old);
    memset(&next, 0, sizeof next);
    if (vl_cli_check_data(cmd, data) < 0)
        return 1;
    lockfd = vl_cli_lock_data(cmd, data);
    if (lockfd < 0)
        return 1;
    vl_log_set_level(VL_LOG_WARN);
    snprintf(path, sizeof path, "%s/ledger.key", data);
    snprintf(nextpath, sizeof nextpath, "%s/ledger.key.next", data);
    if (vl_cli_load_skey(cmd, path, &old) < 0)
        goto out;

    if (access(nextpath, F_OK) == 0) {
        int committed;
        if (vl_cli_load_skey(cmd, nextpath, &next) < 0) {
            fprintf(stderr,
                    "%s: %s is left from an interrupted rotation and unreadable; "
                    "inspect it and remove it\n",
                    cmd, nextpath);
            goto out;
        }
        committed = rotation_committed(cmd, data, &next);
        if (committed < 0)
            goto out;
        if (committed) {
            fprintf(stderr, "%s: finishing an interrupted rotation (its entry is committed)\n",
                    cmd);
            rc = install_key(cmd, data, &old, &next) == 0 ? 0 : 1;
            goto out;
        }
        fprintf(stderr, "%s: discarding %s from an interrupted rotation that never committed\n",
                cmd, nextpath);
        if (unlink(nextpath) < 0) {
            fprintf(stderr, "%s: cannot remove %s: %s\n", cmd, nextpath, strerror(errno));
            goto out;
        }
        sodium_memzero(&next, sizeof next);
    }

    if (vl_ledger_key_generate(old.name, &next, &err) < 0) {
        fprintf(stderr, "%s: cannot generate a key: %s\n", cmd, vl_error_message(&err));
        goto out;
    }
    if (write_skey(cmd, nextpath, &next) < 0)
        goto out;
    memset(&opts, 0, sizeof opts);
    opts.key = &old;
    opts.origin = old.name;
    if (vl_store_open(data, &opts, &store, &serr) < 0) {
        fprintf(stderr, "%s: cannot open the store in %s: %s\n", cmd, data, serr.message);
        unlink(nextpath);
        goto out;
    }
    if (vl_store_ledger_rotate(store, &next, &serr) < 0) {
        fprintf(stderr, "%s: the rotation entry was not committed: %s\n", cmd, serr.message);
        vl_store_close(store);
        store = NULL;
        unlink(nextpath);
        goto out;
    }
    vl_store_close(store); /* `next` is borrowed until here */
    store = NULL;
    switch (install_key(cmd, data, &old, &next)) {
    case 0: rc = 0; break;
    case -1:
        fprintf(stderr,
                "%s: the rotation is committed; run `vitalog key rotate` again to "
                "finish installing the new key\n",
                cmd);
        break;
    default: break; /* -2: the key is installed, ledger.vkey was not (said why) */
    }
out:
    vl_error_clear(&err);
    vl_store_close(store);
    sodium_memzero(&old, sizeof old);
    sodium_memzero(&next, sizeof next);
    if (lockfd >= 0)
        close(lockfd);
    return rc;
}

int vl_cli_key(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_key, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage_key, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "show"))
        return key_show(argc - 1, argv + 1);
    if (!strcmp(argv[1], "list"))
        return key_list(argc - 1, argv + 1);
    if (!strcmp(argv[1], "rotate"))
        return key_rotate(argc - 1, argv + 1);
    fprintf(stderr, "vitalog key: unknown subcommand '%s'\n\n%s", argv[1], usage_key);
    return 2;
}
