/*
 * Shared by unit tests: opening a store with a throwaway ledger key (stores
 * refuse writes without one), reading files, and the store tests' helpers
 * (tstore_*): units that put one version, synchronous put/delete, a gate
 * that holds the writer thread so that later units form one batch, a
 * completion counter, temporary directories and raw SQL on a data
 * directory's database.
 *
 * Helpers that cannot fail in a working store report failures with
 * cmocka's fail_msg(); the others return the store's result.
 */
#ifndef VL_TEST_SUPPORT_H
#define VL_TEST_SUPPORT_H

/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "vitalog/store.h"

/** The ledger key of this process's test stores, generated once. */
static inline const vl_ledger_key_t *test_store_key(void)
{
    static vl_ledger_key_t key;
    static int ready;
    vl_error_t err = VL_ERROR_INIT;
    if (!ready) {
        if (sodium_init() < 0 || vl_ledger_key_generate("test.invalid/log", &key, &err) < 0)
            abort();
        ready = 1;
    }
    return &key;
}

/** `base` (may be NULL) plus the ledger key of test_store_key(). */
static inline const vl_store_options_t *test_store_options(const vl_store_options_t *base)
{
    static vl_store_options_t opts;
    const vl_ledger_key_t *key = test_store_key();
    opts = base ? *base : (vl_store_options_t){0};
    opts.key = key;
    opts.origin = key->name;
    return &opts;
}

/** Runs a command, `fn(argc, argv)` with argv[0] = `name` and the
 *  NULL-terminated arguments in `args` (at most 14; e.g. vl_cli_verify,
 *  "verify"), with its stdout and stderr redirected to the files
 *  DIR/stdout and DIR/stderr, then reads them back into out/err
 *  (truncated to fit). Returns the command's exit code. */
static inline int test_run_captured(int (*fn)(int, char **), const char *name, const char *dir,
                                    char *out, size_t outlen, char *err, size_t errlen,
                                    va_list args)
{
    char *argv[16], opath[512], epath[512];
    int argc = 0, rc, so, se;
    FILE *f;
    size_t n;
    argv[argc++] = (char *)name;
    while (argc < 15 && (argv[argc] = va_arg(args, char *)) != NULL)
        argc++;
    argv[argc] = NULL;
    snprintf(opath, sizeof opath, "%s/stdout", dir);
    snprintf(epath, sizeof epath, "%s/stderr", dir);
    fflush(stdout);
    fflush(stderr);
    so = dup(1);
    se = dup(2);
    assert_non_null(freopen(opath, "w", stdout));
    assert_non_null(freopen(epath, "w", stderr));
    rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    f = fopen(opath, "r");
    n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    f = fopen(epath, "r");
    n = fread(err, 1, errlen - 1, f);
    err[n] = '\0';
    fclose(f);
    return rc;
}

/** Reads a whole file, NUL-terminated (caller frees); NULL if it cannot be
 *  opened or read. `len` (may be NULL) receives its length. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (len)
        *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            if (len)
                *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------------
 * Store tests: directories, opening, raw SQL
 * ---------------------------------------------------------------------- */

/** Creates a fresh directory from `tmpl` ("/tmp/vl-xxx-XXXXXX", changed in place). */
static inline void tstore_mkdtemp(char *tmpl)
{
    if (!mkdtemp(tmpl))
        fail_msg("mkdtemp %s failed", tmpl);
}

static inline int tstore_rm_entry(const char *path, const struct stat *st, int flag,
                                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/** Removes a directory tree. */
static inline void tstore_rmtree(const char *dir)
{
    nftw(dir, tstore_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/** Opens the store in `dir` with the test key and `base` options (may be NULL). */
static inline vl_store_t *tstore_open(const char *dir, const vl_store_options_t *base)
{
    vl_store_t *s = NULL;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_open(dir, test_store_options(base), &s, &err) != 0)
        fail_msg("vl_store_open %s: %s: %s", dir, vl_store_kind_name(err.kind), err.message);
    return s;
}

/** Runs `sql` on DIR/vitalog.db over a connection of its own. */
static inline void tstore_sql(const char *dir, const char *sql)
{
    char path[512], *msg = NULL;
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql on %s: %s (%s)", path, msg ? msg : sqlite3_errmsg(db), sql);
    sqlite3_close(db);
}

/** The first column of the first row of `sql` on DIR/vitalog.db, as an integer. */
static inline int64_t tstore_sql_int(const char *dir, const char *sql)
{
    char path[512];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("sql on %s: %s (%s)", path, sqlite3_errmsg(db), sql);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ------------------------------------------------------------------------
 * Store tests: a unit that puts one version
 * ---------------------------------------------------------------------- */

/** The argument of tstore_apply_put(). */
typedef struct tstore_put {
    vl_store_put_t put; /* put.version 0: the next one (head.version + 1) */
    int auto_method;    /* method from the head: POST first, PUT after, DELETE without body */
    vl_store_receipt_t receipt;
    vl_store_err_t err; /* why the put failed (the unit itself fails as ABORTED) */
} tstore_put_t;

/** An apply callback: the one put of a tstore_put_t. */
static inline int tstore_apply_put(vl_store_txn_t *txn, void *arg)
{
    tstore_put_t *a = arg;
    if (a->put.version == 0 || a->auto_method) {
        vl_store_head_t h;
        if (vl_store_txn_head(txn, a->put.type, a->put.id, &h, &a->err) < 0)
            return -1;
        if (a->put.version == 0)
            a->put.version = h.version + 1;
        if (a->auto_method)
            a->put.method = !a->put.body ? VL_METHOD_DELETE
                            : h.exists   ? VL_METHOD_PUT
                                         : VL_METHOD_POST;
    }
    return vl_store_txn_put(txn, &a->put, &a->receipt, &a->err);
}

/** A put of `body` (NUL-terminated; NULL with VL_METHOD_DELETE). */
static inline tstore_put_t tstore_put_of(const char *type, const char *id, int64_t version,
                                         vl_method_t method, const char *body, const vl_index_t *ix)
{
    tstore_put_t a;
    memset(&a, 0, sizeof a);
    a.put.type = type;
    a.put.id = id;
    a.put.version = version;
    a.put.method = method;
    a.put.body = body;
    a.put.body_len = body ? strlen(body) : 0;
    a.put.index = ix;
    a.err = (vl_store_err_t)VL_STORE_ERR_INIT;
    return a;
}

/** Runs one put as a unit and waits. Returns the unit's result; `err`
 *  (may be NULL) receives the put's own error when the put failed, else
 *  the unit's. */
static inline int tstore_run_put(vl_store_t *s, tstore_put_t *a, vl_store_err_t *err)
{
    vl_store_unit_t u;
    int rc;
    memset(&u, 0, sizeof u);
    u.apply = tstore_apply_put;
    u.arg = a;
    rc = vl_store_run(s, &u);
    if (err)
        *err = a->err.kind != VL_STORE_OK ? a->err : u.err;
    return rc;
}

/** Puts the next version of type/id (POST when new, else PUT) with `body`
 *  and `ix` (may be NULL); fails the test unless it commits. */
static inline vl_store_receipt_t tstore_put_ok(vl_store_t *s, const char *type, const char *id,
                                               const char *body, const vl_index_t *ix)
{
    tstore_put_t a = tstore_put_of(type, id, 0, VL_METHOD_POST, body, ix);
    vl_store_err_t err = VL_STORE_ERR_INIT;
    a.auto_method = 1;
    if (tstore_run_put(s, &a, &err) != 0)
        fail_msg("put %s/%s: %s: %s", type, id, vl_store_kind_name(err.kind), err.message);
    return a.receipt;
}

/** Deletes type/id (writes its next version as a delete); fails the test
 *  unless it commits. */
static inline vl_store_receipt_t tstore_delete_ok(vl_store_t *s, const char *type, const char *id)
{
    tstore_put_t a = tstore_put_of(type, id, 0, VL_METHOD_DELETE, NULL, NULL);
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (tstore_run_put(s, &a, &err) != 0)
        fail_msg("delete %s/%s: %s: %s", type, id, vl_store_kind_name(err.kind), err.message);
    return a.receipt;
}

/** Index rows holding one token, and optionally one patient compartment. */
static inline void tstore_index_token(vl_index_t *ix, const char *param, const char *system,
                                      const char *code, const char *patient)
{
    vl_index_init(ix);
    if (vl_index_add(ix, param, VL_INDEX_TOKEN, system, code, 0, 0, 0) < 0 ||
        (patient && vl_index_add_patient(ix, patient) < 0))
        fail_msg("out of memory");
}

/* ------------------------------------------------------------------------
 * Store tests: reads
 * ---------------------------------------------------------------------- */

/** vl_store_read(); returns the error kind (VL_STORE_OK: `rec` holds the
 *  record, or it is freed when `rec` is NULL). */
static inline vl_store_kind_t tstore_read(vl_store_t *s, vl_scope_t scope, const char *type,
                                          const char *id, int64_t version, vl_record_t *rec)
{
    vl_record_t tmp;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_record_t *out = rec ? rec : &tmp;
    if (vl_store_read(s, scope, type, id, version, out, &err) != 0) {
        if (err.kind == VL_STORE_OK)
            fail_msg("read %s/%s failed without a kind", type, id);
        return err.kind;
    }
    if (!rec)
        vl_record_free(&tmp);
    return VL_STORE_OK;
}

/** Committed ledger entries. */
static inline uint64_t tstore_ledger_size(vl_store_t *s)
{
    uint64_t n = 0;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_ledger_size(s, vl_scope_everything(), &n, &err) != 0)
        fail_msg("ledger size: %s", err.message);
    return n;
}

/* ------------------------------------------------------------------------
 * Store tests: holding the writer, counting completions
 *
 * A gate unit's apply blocks the writer thread (test only: apply must not
 * block) until tstore_gate_open(). The writer took the gate's batch before
 * running it, so every unit submitted while it is held queues up and forms
 * the next batch (up to batch_max units).
 * ---------------------------------------------------------------------- */

typedef struct tstore_gate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int entered, open;
    tstore_put_t *put; /* optional: a put the gate unit makes once released */
    vl_store_unit_t unit;
    int done;
} tstore_gate_t;

#define TSTORE_GATE_INIT                                                                           \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL, {0}, 0                    \
    }

static inline int tstore_gate_apply(vl_store_txn_t *txn, void *arg)
{
    tstore_gate_t *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return g->put ? tstore_apply_put(txn, g->put) : 0;
}

static inline void tstore_gate_done(vl_store_unit_t *u, void *arg)
{
    tstore_gate_t *g = arg;
    (void)u;
    pthread_mutex_lock(&g->mu);
    g->done = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
}

/** Submits the gate unit and returns once its apply holds the writer. */
static inline void tstore_gate_hold(vl_store_t *s, tstore_gate_t *g)
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    memset(&g->unit, 0, sizeof g->unit);
    g->unit.apply = tstore_gate_apply;
    g->unit.arg = g;
    g->unit.done = tstore_gate_done;
    g->unit.done_arg = g;
    if (vl_store_submit(s, &g->unit, &err) != 0)
        fail_msg("submit the gate: %s", err.message);
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cond, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static inline void tstore_gate_open(tstore_gate_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
}

/** Waits until the gate unit completed. */
static inline void tstore_gate_wait(tstore_gate_t *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->done)
        pthread_cond_wait(&g->cond, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/** Completions of asynchronous units (done_arg of tstore_count_done). */
typedef struct tstore_counter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done, ok;
} tstore_counter_t;

#define TSTORE_COUNTER_INIT                                                                        \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0                                  \
    }

static inline void tstore_count_done(vl_store_unit_t *u, void *arg)
{
    tstore_counter_t *c = arg;
    pthread_mutex_lock(&c->mu);
    c->done++;
    c->ok += u->result == 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/** Submits `u` (apply and arg set) to complete into `c`. */
static inline void tstore_submit(vl_store_t *s, vl_store_unit_t *u, tstore_counter_t *c)
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    u->done = tstore_count_done;
    u->done_arg = c;
    if (vl_store_submit(s, u, &err) != 0)
        fail_msg("submit: %s", err.message);
}

/** Waits until `n` units completed into `c`. */
static inline void tstore_wait(tstore_counter_t *c, int n)
{
    pthread_mutex_lock(&c->mu);
    while (c->done < n)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------------
 * Store tests: the ledger as stored
 * ---------------------------------------------------------------------- */

/** One parsed ledger entry with its stored leaf hash. */
typedef struct tstore_entry {
    vl_ledger_entry_t e;
    unsigned char hash[VL_HASH_LEN];
} tstore_entry_t;

typedef struct tstore_chain {
    uint64_t next;                   /* index expected next */
    unsigned char prev[VL_HASH_LEN]; /* leaf hash of the entry before it */
    tstore_entry_t *items;
    size_t n, cap;
    char why[200]; /* the first break found, "" if none */
} tstore_chain_t;

static inline int tstore_chain_entry(void *ctx, uint64_t index, const char *line, size_t len,
                                     const char *note, size_t note_len)
{
    tstore_chain_t *c = ctx;
    tstore_entry_t *it;
    vl_error_t err = VL_ERROR_INIT;
    (void)note;
    (void)note_len;
    if (!line || c->why[0])
        return 0; /* a checkpoint note, or already broken */
    if (vl_grow(&c->items, &c->cap, c->n + 1, sizeof *c->items) < 0)
        abort();
    it = &c->items[c->n];
    if (vl_ledger_entry_parse(line, len, &it->e, &err) < 0) {
        snprintf(c->why, sizeof c->why, "entry %llu does not parse: %s", (unsigned long long)index,
                 vl_error_message(&err));
        vl_error_clear(&err);
        return 0;
    }
    if (index != c->next || it->e.index != index || memcmp(it->e.prev, c->prev, VL_HASH_LEN) != 0) {
        snprintf(c->why, sizeof c->why, "entry %llu (want %llu) does not chain",
                 (unsigned long long)index, (unsigned long long)c->next);
        return 0;
    }
    vl_ledger_leaf_hash(line, len, it->hash);
    memcpy(c->prev, it->hash, VL_HASH_LEN);
    c->n++;
    c->next++;
    return 0;
}

/** Reads ledger entries [start, end) and checks that they are all there,
 *  parse, and chain (each entry's prev is the leaf hash of the one before). */
static inline void tstore_chain_read(vl_store_t *s, uint64_t start, uint64_t end, tstore_chain_t *c)
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    memset(c, 0, sizeof *c);
    c->next = start;
    if (start > 0 && vl_store_ledger_node(s, vl_scope_everything(), 0, start - 1, c->prev) < 0)
        fail_msg("ledger entry %llu is missing", (unsigned long long)(start - 1));
    if (vl_store_ledger_scan(s, vl_scope_everything(), start, end, tstore_chain_entry, c, &err) !=
        0)
        fail_msg("ledger scan: %s", err.message);
    if (c->why[0])
        fail_msg("ledger: %s", c->why);
    if (c->next != end)
        fail_msg("ledger: %llu entries in [%llu, %llu)", (unsigned long long)(c->next - start),
                 (unsigned long long)start, (unsigned long long)end);
}

static inline void tstore_chain_free(tstore_chain_t *c)
{
    free(c->items);
    memset(c, 0, sizeof *c);
}

/** Asserts that entries [start, end) chain and name, in order, the refs in
 *  `want` joined by "," ("key-rotation" for a rotation). */
static inline void tstore_expect_ledger(vl_store_t *s, uint64_t start, uint64_t end,
                                        const char *want)
{
    tstore_chain_t c;
    char got[4096] = "";
    size_t len = 0;
    tstore_chain_read(s, start, end, &c);
    for (size_t i = 0; i < c.n && len < sizeof got; i++)
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%s", i ? "," : "",
                                c.items[i].e.kind == VL_ENTRY_KEY_ROTATION ? "key-rotation"
                                                                           : c.items[i].e.ref);
    tstore_chain_free(&c);
    if (strcmp(got, want) != 0)
        fail_msg("ledger [%llu, %llu): got [%s], want [%s]", (unsigned long long)start,
                 (unsigned long long)end, got, want);
}

/** Asserts that a put's receipt names the stored entry of type/id at its
 *  version: the version's ledger index, the entry's hash, its ref and kind,
 *  and its commitment SHA-256(salt || stored bytes). */
static inline void tstore_expect_anchored(vl_store_t *s, const vl_store_receipt_t *r,
                                          const char *type, const char *id, vl_entry_kind_t kind)
{
    unsigned char salt[32], want[VL_HASH_LEN];
    char *bytes = NULL, ref[256];
    size_t len = 0;
    uint64_t index = 0;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    tstore_chain_t c;
    if (vl_store_ledger_record(s, vl_scope_everything(), type, id, r->version, &index, salt, &bytes,
                               &len, &err) != 0)
        fail_msg("ledger record %s/%s v%lld: %s", type, id, (long long)r->version, err.message);
    vl_ledger_commitment(salt, bytes, len, want);
    free(bytes);
    if (index != r->ledger_index)
        fail_msg("%s/%s v%lld: stored at entry %llu, its receipt says %llu", type, id,
                 (long long)r->version, (unsigned long long)index,
                 (unsigned long long)r->ledger_index);
    tstore_chain_read(s, index, index + 1, &c);
    snprintf(ref, sizeof ref, "%s/%s/_history/%lld", type, id, (long long)r->version);
    if (strcmp(c.items[0].e.ref, ref) != 0 || c.items[0].e.kind != kind ||
        c.items[0].e.time_us != r->time_us - r->time_us % 1000) /* entries keep ms */
        fail_msg("entry %llu is %s (kind %d), want %s (kind %d)", (unsigned long long)index,
                 c.items[0].e.ref, (int)c.items[0].e.kind, ref, (int)kind);
    if (memcmp(c.items[0].hash, r->ledger_hash, VL_HASH_LEN) != 0)
        fail_msg("%s: the receipt's hash is not entry %llu's", ref, (unsigned long long)index);
    if (memcmp(c.items[0].e.commitment, want, VL_HASH_LEN) != 0)
        fail_msg("%s: entry %llu does not commit to the stored bytes", ref,
                 (unsigned long long)index);
    tstore_chain_free(&c);
}

#endif
