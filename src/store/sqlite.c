/*
 * The SQLite backend: connections, migrations, transactions, and the
 * table of operations the store core calls (backend.h).
 *
 * DESIGN
 *   - One database file, DIR/vitalog.db, in WAL mode with synchronous=FULL:
 *     a commit returns only after the WAL is fsync'd, so an acknowledged
 *     write survives kill -9 and power loss.
 *   - The file and its -wal and -shm companions are mode 0600 on every
 *     open, whatever mode a restore left them with.
 *   - One writer connection, used by the writer thread only.
 *   - One read connection per calling thread, created on first use and
 *     kept in a pthread key; WAL lets readers run beside the writer and see
 *     the last committed state. All read connections close with the store.
 *   - Migrations: schemas/NNN_*.sql compiled in (vl_migrations); PRAGMA
 *     user_version records the last applied, each applied in its own
 *     transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlite_internal.h"

/* ------------------------------------------------------------------------
 * Errors and statements
 * ---------------------------------------------------------------------- */

int vl_sqlite_error(vl_store_err_t *err, sqlite3 *db, const char *what)
{
    int code = db ? sqlite3_errcode(db) : SQLITE_ERROR;
    int transient = code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_FULL ||
                    code == SQLITE_IOERR || code == SQLITE_READONLY;
    vl_logf(VL_LOG_ERROR, "store: %s: %s", what, db ? sqlite3_errmsg(db) : "no database");
    if (code == SQLITE_NOMEM)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory while %s", what);
    return vl_store_fail(err, transient ? VL_STORE_UNAVAILABLE : VL_STORE_FAILED,
                         "storage error while %s", what);
}

int vl_sqlite_exec(sqlite3 *db, const char *sql, vl_store_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = sqlite3_errcode(db);
        vl_logf(VL_LOG_ERROR, "store: %s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return vl_store_fail(err,
                             code == SQLITE_BUSY || code == SQLITE_FULL || code == SQLITE_IOERR
                                 ? VL_STORE_UNAVAILABLE
                                 : VL_STORE_FAILED,
                             "storage error");
    }
    return 0;
}

sqlite3_stmt *vl_sqlite_stmt(vl_bconn_t *c, int i, const char *sql, vl_store_err_t *err)
{
    sqlite3_stmt **cache = &c->stmts[i];
    if (*cache) {
        sqlite3_reset(*cache);
        sqlite3_clear_bindings(*cache);
        return *cache;
    }
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, cache, NULL) != SQLITE_OK) {
        vl_sqlite_error(err, c->db, "preparing a statement");
        return NULL;
    }
    return *cache;
}

const char *vl_sqlite_method_name(vl_method_t m)
{
    return m == VL_METHOD_POST ? "POST" : m == VL_METHOD_PUT ? "PUT" : "DELETE";
}

/* Columns: VL_SQLITE_RECORD_COLUMNS */
int vl_sqlite_row_to_record(sqlite3_stmt *st, vl_record_t *rec)
{
    const void *body = sqlite3_column_blob(st, 6);
    int blen = sqlite3_column_bytes(st, 6);
    const char *method = (const char *)sqlite3_column_text(st, 5);
    memset(rec, 0, sizeof *rec);
    snprintf(rec->type, sizeof rec->type, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(rec->id, sizeof rec->id, "%s", (const char *)sqlite3_column_text(st, 1));
    rec->version = sqlite3_column_int64(st, 2);
    rec->deleted = sqlite3_column_int(st, 3);
    rec->last_updated_us = sqlite3_column_int64(st, 4);
    rec->method = !method || !strcmp(method, "DELETE") ? VL_METHOD_DELETE
                  : !strcmp(method, "PUT")             ? VL_METHOD_PUT
                                                       : VL_METHOD_POST;
    if (body) {
        rec->body = malloc((size_t)blen + 1);
        if (!rec->body)
            return -1;
        memcpy(rec->body, body, (size_t)blen);
        rec->body[blen] = '\0';
        rec->body_len = (size_t)blen;
    }
    return 0;
}

int vl_sqlite_collect(sqlite3 *db, sqlite3_stmt *st, size_t max_bytes, vl_records_t *out,
                      vl_store_err_t *err)
{
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (vl_grow(&out->items, &out->cap, out->n + 1, sizeof *out->items) < 0)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        if (vl_sqlite_row_to_record(st, &out->items[out->n]) < 0)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        bytes += out->items[out->n].body_len;
        out->n++;
        if (max_bytes && bytes >= max_bytes)
            return 0;
    }
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, db, "reading results");
    return 0;
}

/* ------------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------- */

static int connect_db(vl_backend_t *b, int readonly, sqlite3 **out, vl_store_err_t *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    /* the writer gathers its WAL writes (sqlite_vfs.c) */
    if (!readonly && vl_sqlite_writer_vfs() < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "cannot register the writer's VFS");
    if (sqlite3_open_v2(b->path, &db, flags, readonly ? NULL : VL_SQLITE_WRITER_VFS) != SQLITE_OK) {
        vl_sqlite_error(err, db, "opening the database");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 0);
    /* 8 MiB page caches, the writer's and each reader's: with checkpoints
     * on their own thread (below), a larger writer cache made transaction
     * Bundles no faster (measured: docs/performance.md) while a server kept
     * it all once filled. */
    if (vl_sqlite_exec(db,
                       readonly ? "PRAGMA query_only=ON; PRAGMA cache_size=-8192;"
                                : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                  "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=0;"
                                  "PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY;",
                       err) < 0) {
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

static void conn_close(vl_bconn_t *c)
{
    vl_sqlq_cache_clear(c);
    for (int i = 0; i < VL_INTERN_KINDS; i++)
        vl_intern_free(&c->intern[i]);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    memset(c->stmts, 0, sizeof c->stmts);
    if (c->db)
        sqlite3_close(c->db);
    c->db = NULL;
}

static void reader_destroy(void *p)
{
    vl_bconn_t *r = p;
    vl_backend_t *b = r->b;
    int mine = 0;
    pthread_mutex_lock(&b->readers_mu);
    for (vl_bconn_t **pp = &b->readers; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            mine = 1;
            break;
        }
    }
    pthread_mutex_unlock(&b->readers_mu);
    if (!mine) /* sqlite_close() took the list and closes it */
        return;
    conn_close(r);
    free(r);
}

static vl_bconn_t *sqlite_reader(vl_backend_t *b, vl_store_err_t *err)
{
    vl_bconn_t *r = pthread_getspecific(b->reader_key);
    if (r)
        return r;
    r = calloc(1, sizeof *r);
    if (!r) {
        vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        return NULL;
    }
    r->b = b;
    if (connect_db(b, 1, &r->db, err) < 0) {
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&b->readers_mu);
    r->next = b->readers;
    b->readers = r;
    pthread_mutex_unlock(&b->readers_mu);
    pthread_setspecific(b->reader_key, r);
    return r;
}

static vl_bconn_t *sqlite_writer(vl_backend_t *b)
{
    return &b->writer;
}

/* ------------------------------------------------------------------------
 * Migrations
 * ---------------------------------------------------------------------- */

static int migrate(sqlite3 *db, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int current = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, db, "reading the schema version");
    if (sqlite3_step(st) == SQLITE_ROW)
        current = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    for (const vl_migration_t *m = vl_migrations; m->sql; m++) {
        char pragma[64];
        if (m->number <= current)
            continue;
        vl_logf(VL_LOG_INFO, "store: applying migration %s", m->name);
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d;", m->number);
        if (vl_sqlite_exec(db, "BEGIN IMMEDIATE;", err) < 0)
            return -1;
        if (vl_sqlite_exec(db, m->sql, err) < 0 || vl_sqlite_exec(db, pragma, err) < 0) {
            vl_sqlite_exec(db, "ROLLBACK;", NULL);
            return -1;
        }
        if (vl_sqlite_exec(db, "COMMIT;", err) < 0)
            return -1;
        current = m->number;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Open / close
 * ---------------------------------------------------------------------- */

/* The database and its -wal and -shm files: 0600, however they were restored. */
static int restrict_modes(const char *path, vl_store_err_t *err)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        if (chmod(p, 0600) < 0 && errno != ENOENT)
            return vl_store_fail(err, VL_STORE_FAILED, "cannot restrict %s to mode 0600: %s", p,
                                 strerror(errno));
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The checkpointer
 *
 * The writer connection has no automatic checkpoints (wal_autocheckpoint=0):
 * after each commit, the WAL hook tells the checkpointer thread when the
 * WAL holds VL_SQLITE_CHECKPOINT_PAGES pages or more, and that thread runs
 * a PASSIVE checkpoint on its own connection, which blocks neither the
 * writer nor readers. SQLite restarts the WAL from its beginning only once
 * a checkpoint copied all of it, which under steady writes a concurrent
 * one never does: past 4x the threshold the writer copies the short
 * remaining tail itself, right after its commit.
 * ---------------------------------------------------------------------- */

#define VL_SQLITE_CHECKPOINT_PAGES 4000

static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
    vl_backend_t *b = arg;
    (void)name;
    /* the tail, from the writer itself between two batches: the background
     * checkpoints copied nearly all of it, and this one completing lets the
     * next transaction restart the WAL from its beginning */
    if (pages >= 4 * VL_SQLITE_CHECKPOINT_PAGES)
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    /* a checkpoint per half threshold of new frames, not per commit: the
     * pages every commit dirties again (the last leaf of each index, the
     * ledger's tail) are then copied into the database once per checkpoint
     * instead of once per commit */
    if (pages < b->ckpt_signalled)
        b->ckpt_signalled = 0; /* the WAL restarted */
    if (pages >= VL_SQLITE_CHECKPOINT_PAGES &&
        pages >= b->ckpt_signalled + VL_SQLITE_CHECKPOINT_PAGES / 2) {
        b->ckpt_signalled = pages;
        pthread_mutex_lock(&b->ckpt_mu);
        b->ckpt_due = 1;
        pthread_cond_signal(&b->ckpt_cond);
        pthread_mutex_unlock(&b->ckpt_mu);
    }
    return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
    vl_backend_t *b = arg;
    pthread_mutex_lock(&b->ckpt_mu);
    for (;;) {
        while (!b->ckpt_due && !b->ckpt_stop)
            pthread_cond_wait(&b->ckpt_cond, &b->ckpt_mu);
        if (b->ckpt_stop)
            break;
        b->ckpt_due = 0;
        pthread_mutex_unlock(&b->ckpt_mu);
        {
            int log = 0, done = 0;
            int rc =
                sqlite3_wal_checkpoint_v2(b->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
            (void)log;
            (void)done;
            if (rc != SQLITE_OK && rc != SQLITE_BUSY)
                vl_logf(VL_LOG_WARN, "store: checkpoint: %s", sqlite3_errmsg(b->ckpt_db));
        }
        pthread_mutex_lock(&b->ckpt_mu);
    }
    pthread_mutex_unlock(&b->ckpt_mu);
    return NULL;
}

static int checkpointer_start(vl_backend_t *b, vl_store_err_t *err)
{
    if (sqlite3_open_v2(b->path, &b->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return vl_sqlite_error(err, b->ckpt_db, "opening the checkpoint connection");
    sqlite3_busy_timeout(b->ckpt_db, 5000);
    /* a connection knows the database is in WAL mode only once it read it */
    if (vl_sqlite_exec(b->ckpt_db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err) < 0)
        return -1;
    if (pthread_create(&b->ckpt, NULL, checkpointer_main, b) != 0)
        return vl_store_fail(err, VL_STORE_FAILED, "cannot start the checkpoint thread");
    b->ckpt_running = 1;
    sqlite3_wal_hook(b->writer.db, on_wal, b);
    return 0;
}

static void checkpointer_stop(vl_backend_t *b)
{
    if (b->writer.db)
        sqlite3_wal_hook(b->writer.db, NULL, NULL);
    if (b->ckpt_running) {
        pthread_mutex_lock(&b->ckpt_mu);
        b->ckpt_stop = 1;
        pthread_cond_signal(&b->ckpt_cond);
        pthread_mutex_unlock(&b->ckpt_mu);
        pthread_join(b->ckpt, NULL);
        b->ckpt_running = 0;
    }
    if (b->ckpt_db) {
        /* leave a small WAL behind: copy what the last commits added */
        sqlite3_wal_checkpoint_v2(b->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close(b->ckpt_db);
        b->ckpt_db = NULL;
    }
}

static void sqlite_close(vl_backend_t *b)
{
    vl_bconn_t *r;
    if (!b)
        return;
    checkpointer_stop(b);
    /* every reader, including those of threads still alive */
    pthread_mutex_lock(&b->readers_mu);
    r = b->readers;
    b->readers = NULL;
    pthread_mutex_unlock(&b->readers_mu);
    while (r) {
        vl_bconn_t *next = r->next;
        conn_close(r);
        free(r);
        r = next;
    }
    if (b->key_created) {
        pthread_setspecific(b->reader_key, NULL);
        pthread_key_delete(b->reader_key);
    }
    conn_close(&b->writer);
    pthread_mutex_destroy(&b->readers_mu);
    pthread_mutex_destroy(&b->ckpt_mu);
    pthread_cond_destroy(&b->ckpt_cond);
    free(b);
}

/* Process-wide settings, before SQLite initializes: no memory statistics
 * (they take a global mutex on every allocation). */
static void configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int sqlite_open(const char *dir, vl_backend_t **out, vl_store_err_t *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    vl_backend_t *b;
    int fd;
    pthread_once(&once, configure);
    b = calloc(1, sizeof *b);
    if (!b)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    snprintf(b->path, sizeof b->path, "%s/vitalog.db", dir);
    b->writer.b = b;
    pthread_mutex_init(&b->readers_mu, NULL);
    pthread_mutex_init(&b->ckpt_mu, NULL);
    pthread_cond_init(&b->ckpt_cond, NULL);
    if (pthread_key_create(&b->reader_key, reader_destroy) != 0) {
        pthread_mutex_destroy(&b->readers_mu);
        free(b);
        return vl_store_fail(err, VL_STORE_FAILED, "pthread_key_create failed");
    }
    b->key_created = 1;
    /* create the file 0600 before SQLite does (its -wal and -shm files take
     * the database file's mode), never looser even for a moment */
    fd = open(b->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        vl_store_fail(err, VL_STORE_FAILED, "cannot create %s: %s", b->path, strerror(errno));
        goto fail;
    }
    close(fd);
    if (restrict_modes(b->path, err) < 0 || connect_db(b, 0, &b->writer.db, err) < 0 ||
        restrict_modes(b->path, err) < 0 || migrate(b->writer.db, err) < 0 ||
        checkpointer_start(b, err) < 0)
        goto fail;
    *out = b;
    return 0;
fail:
    sqlite_close(b);
    return -1;
}

static int sqlite_ready(vl_backend_t *b)
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_bconn_t *r = sqlite_reader(b, &err);
    if (!r)
        return -1;
    return sqlite3_exec(r->db, "SELECT 1 FROM resource LIMIT 1", NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : -1;
}

/* ------------------------------------------------------------------------
 * The writer's transaction
 * ---------------------------------------------------------------------- */

static int sqlite_begin(vl_backend_t *b, vl_store_err_t *err)
{
    return vl_sqlite_exec(b->writer.db, "BEGIN IMMEDIATE;", err);
}

static int sqlite_commit(vl_backend_t *b, vl_store_err_t *err)
{
    if (vl_sqlite_exec(b->writer.db, "COMMIT;", err) < 0)
        return -1;
    vl_intern_commit(&b->writer);
    return 0;
}

static void sqlite_rollback(vl_backend_t *b)
{
    if (!sqlite3_get_autocommit(b->writer.db))
        vl_sqlite_exec(b->writer.db, "ROLLBACK;", NULL);
    for (int i = 0; i < VL_INTERN_KINDS; i++)
        vl_intern_rollback(&b->writer.intern[i]);
}

static int sqlite_savepoint(vl_backend_t *b, vl_store_err_t *err)
{
    return vl_sqlite_exec(b->writer.db, "SAVEPOINT w;", err);
}

static int sqlite_savepoint_rollback(vl_backend_t *b, vl_store_err_t *err)
{
    if (vl_sqlite_exec(b->writer.db, "ROLLBACK TO w;", err) < 0)
        return -1;
    return vl_sqlite_exec(b->writer.db, "RELEASE w;", err);
}

static int sqlite_savepoint_release(vl_backend_t *b, vl_store_err_t *err)
{
    return vl_sqlite_exec(b->writer.db, "RELEASE w;", err);
}

static int sqlite_in_transaction(vl_backend_t *b)
{
    return !sqlite3_get_autocommit(b->writer.db);
}

/* ------------------------------------------------------------------------
 * Has a ledger (read-only peek, for `serve` before it creates a key)
 * ---------------------------------------------------------------------- */

static int sqlite_has_ledger(const char *dir, vl_store_err_t *err)
{
    char path[4096];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int found = 0;
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    if (access(path, F_OK) != 0)
        return 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        vl_sqlite_error(err, db, "opening the database");
        sqlite3_close(db);
        return -1;
    }
    /* before migration 002 there is no ledger_entry table: no ledger */
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM ledger_entry LIMIT 1", -1, &st, NULL) == SQLITE_OK)
        found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return found;
}

/* ------------------------------------------------------------------------
 * The table of operations
 * ---------------------------------------------------------------------- */

const vl_backend_ops_t vl_backend_sqlite = {
    .name = "sqlite",
    .has_ledger = sqlite_has_ledger,
    .open = sqlite_open,
    .close = sqlite_close,
    .ready = sqlite_ready,
    .writer = sqlite_writer,
    .reader = sqlite_reader,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .savepoint = sqlite_savepoint,
    .savepoint_rollback = sqlite_savepoint_rollback,
    .savepoint_release = sqlite_savepoint_release,
    .in_transaction = sqlite_in_transaction,
    .head = vl_sqlite_head,
    .write_version = vl_sqlite_write_version,
    .append_entry = vl_sqlite_append_entry,
    .put_node = vl_sqlite_put_node,
    .put_checkpoint = vl_sqlite_put_checkpoint,
    .put_rotation = vl_sqlite_put_rotation,
    .unanchored = vl_sqlite_unanchored,
    .anchor = vl_sqlite_anchor,
    .read = vl_sqlite_read,
    .history = vl_sqlite_history,
    .search = vl_sqlite_search,
    .explain = vl_sqlite_explain,
    .records_scan = vl_sqlite_records_scan,
    .ledger_size = vl_sqlite_ledger_size,
    .ledger_node = vl_sqlite_ledger_node,
    .ledger_entries = vl_sqlite_ledger_entries,
    .ledger_scan = vl_sqlite_ledger_scan,
    .ledger_checkpoint = vl_sqlite_ledger_checkpoint,
    .ledger_record = vl_sqlite_ledger_record,
    .ledger_rotations = vl_sqlite_ledger_rotations,
    .pending = vl_sqlite_pending,
    .facets_backfill = vl_sqlite_facets_backfill,
    .token_find = vl_sqlite_token_find,
    .token_list = vl_sqlite_token_list,
    .token_add = vl_sqlite_token_add,
    .token_revoke = vl_sqlite_token_revoke,
    .compartment_page = vl_sqlite_compartment_page,
    .lastn = vl_sqlite_lastn,
    .series_stats = vl_sqlite_series_stats,
    .export_reads = &vl_backend_sqlite_export,
};
