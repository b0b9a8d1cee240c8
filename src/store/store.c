/*
 * The SQLite store: connections, migrations, reads and history.
 *
 * DESIGN
 *   - One database file, DIR/vitalog.db, in WAL mode with synchronous=FULL:
 *     a commit returns only after the WAL is fsync'd, so an acknowledged
 *     write survives kill -9 and power loss.
 *   - One writer connection, owned by the writer thread (writer.c). Nothing
 *     else writes.
 *   - One read connection per calling thread, created on first use and
 *     kept in a pthread key; WAL lets readers run beside the writer and see
 *     the last committed state. All read connections are closed with the
 *     store.
 *   - Migrations: schemas/NNN_*.sql compiled in (vl_migrations); PRAGMA
 *     user_version records the last applied, each applied in its own
 *     transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "store_internal.h"

/* ------------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------- */

int vl_store_sql_error(vl_error_t *err, sqlite3 *db, const char *what)
{
    int code = db ? sqlite3_errcode(db) : SQLITE_ERROR;
    int busy = code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_FULL ||
               code == SQLITE_IOERR;
    vl_logf(VL_LOG_ERROR, "store: %s: %s", what, db ? sqlite3_errmsg(db) : "no database");
    return vl_error_set(err, busy ? 503 : 500, busy ? "transient" : "exception", NULL,
                        "storage error while %s", what);
}

int vl_store_exec(sqlite3 *db, const char *sql, vl_error_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        vl_logf(VL_LOG_ERROR, "store: %s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return vl_error_set(err, 500, "exception", NULL, "storage error");
    }
    return 0;
}

int vl_store_connect(vl_store_t *s, int readonly, sqlite3 **out, vl_error_t *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(s->path, &db, flags, NULL) != SQLITE_OK) {
        vl_store_sql_error(err, db, "opening the database");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 0);
    if (vl_store_exec(db, readonly ? "PRAGMA query_only=ON;" :
                                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                     "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=4000;",
                      err) < 0) {
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

static void reader_destroy(void *p)
{
    vl_reader_t *r = p;
    vl_store_t *s = r->store;
    pthread_mutex_lock(&s->readers_mu);
    for (vl_reader_t **pp = &s->readers; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->readers_mu);
    for (int i = 0; i < VL_RSTMT_COUNT; i++)
        sqlite3_finalize(r->stmts[i]);
    sqlite3_close(r->db);
    free(r);
}

vl_reader_t *vl_store_reader(vl_store_t *s, vl_error_t *err)
{
    vl_reader_t *r = pthread_getspecific(s->reader_key);
    if (r)
        return r;
    r = calloc(1, sizeof *r);
    if (!r) {
        vl_error_set(err, 500, "exception", NULL, "out of memory");
        return NULL;
    }
    r->store = s;
    if (vl_store_connect(s, 1, &r->db, err) < 0) {
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&s->readers_mu);
    r->next = s->readers;
    s->readers = r;
    pthread_mutex_unlock(&s->readers_mu);
    pthread_setspecific(s->reader_key, r);
    return r;
}

sqlite3_stmt *vl_store_stmt(sqlite3 *db, sqlite3_stmt **cache, const char *sql, vl_error_t *err)
{
    if (*cache) {
        sqlite3_reset(*cache);
        sqlite3_clear_bindings(*cache);
        return *cache;
    }
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, cache, NULL) != SQLITE_OK) {
        vl_store_sql_error(err, db, "preparing a statement");
        return NULL;
    }
    return *cache;
}

/* ------------------------------------------------------------------------
 * Migrations
 * ---------------------------------------------------------------------- */

/* Applies pending migrations. */
static int migrate(sqlite3 *db, vl_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int current = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, db, "reading the schema version");
    if (sqlite3_step(st) == SQLITE_ROW)
        current = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    for (const vl_migration_t *m = vl_migrations; m->sql; m++) {
        char pragma[64];
        if (m->number <= current)
            continue;
        vl_logf(VL_LOG_INFO, "store: applying migration %s", m->name);
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d;", m->number);
        if (vl_store_exec(db, "BEGIN IMMEDIATE;", err) < 0)
            return -1;
        if (vl_store_exec(db, m->sql, err) < 0 || vl_store_exec(db, pragma, err) < 0) {
            vl_store_exec(db, "ROLLBACK;", NULL);
            return -1;
        }
        if (vl_store_exec(db, "COMMIT;", err) < 0)
            return -1;
        current = m->number;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Open / close
 * ---------------------------------------------------------------------- */

int vl_store_open(const char *dir, const vl_store_options_t *opts, vl_store_t **out,
                  vl_error_t *err)
{
    vl_store_t *s;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return vl_error_set(err, 500, "exception", NULL, "cannot create %s: %s", dir,
                            strerror(errno));
    s = calloc(1, sizeof *s);
    if (!s)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    snprintf(s->path, sizeof s->path, "%s/vitalog.db", dir);
    s->batch_max = opts && opts->batch_max > 0 ? opts->batch_max : 256;
    s->cp_ms = opts && opts->checkpoint_ms ? opts->checkpoint_ms : 1000;
    if (opts && opts->key) {
        s->key = *opts->key;
        s->has_key = s->key.has_secret;
        snprintf(s->origin, sizeof s->origin, "%s", opts->origin ? opts->origin : s->key.name);
    }
    pthread_mutex_init(&s->readers_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    {
        /* the writer's checkpoint timer waits on CLOCK_MONOTONIC */
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (pthread_key_create(&s->reader_key, reader_destroy) != 0) {
        free(s);
        return vl_error_set(err, 500, "exception", NULL, "pthread_key_create failed");
    }
    s->key_created = 1;
    {
        /* create the file 0600 before SQLite does (its -wal and -shm files
         * take the database file's mode), never looser even for a moment */
        int fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            vl_error_set(err, 500, "exception", NULL, "cannot create %s: %s", s->path,
                         strerror(errno));
            goto fail;
        }
        close(fd);
    }
    if (vl_store_connect(s, 0, &s->wdb, err) < 0)
        goto fail;
    if (migrate(s->wdb, err) < 0)
        goto fail;
    if (vl_store_ledger_open(s, err) < 0)
        goto fail;
    if (vl_store_writer_start(s, err) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    vl_store_close(s);
    return -1;
}

int vl_store_has_ledger(const char *dir, vl_error_t *err)
{
    char path[4096];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int found = 0;
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    if (access(path, F_OK) != 0)
        return 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        vl_store_sql_error(err, db, "opening the database");
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

void vl_store_close(vl_store_t *s)
{
    if (!s)
        return;
    vl_store_writer_stop(s);
    /* Close every reader connection, including those of threads that are
     * still alive (their key slot is cleared first). */
    pthread_mutex_lock(&s->readers_mu);
    vl_reader_t *r = s->readers;
    s->readers = NULL;
    pthread_mutex_unlock(&s->readers_mu);
    while (r) {
        vl_reader_t *next = r->next;
        for (int i = 0; i < VL_RSTMT_COUNT; i++)
            sqlite3_finalize(r->stmts[i]);
        sqlite3_close(r->db);
        free(r);
        r = next;
    }
    if (s->key_created) {
        pthread_setspecific(s->reader_key, NULL);
        pthread_key_delete(s->reader_key);
    }
    for (int i = 0; i < VL_WSTMT_COUNT; i++)
        sqlite3_finalize(s->wstmts[i]);
    if (s->wdb)
        sqlite3_close(s->wdb);
    sodium_memzero(&s->key, sizeof s->key);
    pthread_mutex_destroy(&s->readers_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int vl_store_ready(vl_store_t *s)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_reader_t *r;
    int running;
    pthread_mutex_lock(&s->mu);
    running = s->writer_running && !s->stopping && !s->failed;
    pthread_mutex_unlock(&s->mu);
    r = running ? vl_store_reader(s, &err) : NULL;
    vl_error_clear(&err);
    if (!r)
        return -1;
    return sqlite3_exec(r->db, "SELECT 1 FROM resource LIMIT 1", NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : -1;
}

void vl_store_stats(vl_store_t *s, vl_store_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->queue_depth = s->queued;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------
 * Reading
 * ---------------------------------------------------------------------- */

void vl_record_free(vl_record_t *rec)
{
    if (!rec)
        return;
    free(rec->body);
    rec->body = NULL;
}

void vl_records_free(vl_records_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        vl_record_free(&list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

/* Columns: type, id, version, deleted, last_updated, method, body */
int vl_store_row_to_record(sqlite3_stmt *st, vl_record_t *rec)
{
    const void *body = sqlite3_column_blob(st, 6);
    int blen = sqlite3_column_bytes(st, 6);
    memset(rec, 0, sizeof *rec);
    snprintf(rec->type, sizeof rec->type, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(rec->id, sizeof rec->id, "%s", (const char *)sqlite3_column_text(st, 1));
    rec->version = sqlite3_column_int64(st, 2);
    rec->deleted = sqlite3_column_int(st, 3);
    rec->last_updated_us = sqlite3_column_int64(st, 4);
    snprintf(rec->method, sizeof rec->method, "%s", (const char *)sqlite3_column_text(st, 5));
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

#define RECORD_COLUMNS "r.type, r.id, v.version, v.deleted, v.last_updated, v.method, v.body"

int vl_store_read(vl_store_t *s, const char *type, const char *id, int64_t version,
                  vl_record_t *out, vl_error_t *err)
{
    vl_reader_t *r = vl_store_reader(s, err);
    sqlite3_stmt *st;
    int rc;
    if (!r)
        return -1;
    if (version > 0)
        st = vl_store_stmt(r->db, &r->stmts[VL_RSTMT_READ_VERSION],
                           "SELECT " RECORD_COLUMNS " FROM resource r JOIN resource_version v"
                           " ON v.rid = r.rid WHERE r.type = ?1 AND r.id = ?2 AND v.version = ?3",
                           err);
    else
        st = vl_store_stmt(r->db, &r->stmts[VL_RSTMT_READ_CURRENT],
                           "SELECT " RECORD_COLUMNS " FROM resource r JOIN resource_version v"
                           " ON v.rid = r.rid AND v.version = r.version"
                           " WHERE r.type = ?1 AND r.id = ?2",
                           err);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (version > 0)
        sqlite3_bind_int64(st, 3, version);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = vl_store_row_to_record(st, out);
        sqlite3_reset(st);
        return rc < 0 ? vl_error_set(err, 500, "exception", NULL, "out of memory") : 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return vl_store_sql_error(err, r->db, "reading a resource");
    if (version > 0)
        return vl_error_set(err, 404, "not-found", NULL, "%s/%s has no version %lld", type, id,
                            (long long)version);
    return vl_error_set(err, 404, "not-found", NULL, "%s/%s is not known", type, id);
}

int vl_store_collect(sqlite3 *db, sqlite3_stmt *st, vl_records_t *out, vl_error_t *err)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == out->cap) {
            size_t ncap = out->cap ? out->cap * 2 : 16;
            vl_record_t *p = realloc(out->items, ncap * sizeof *p);
            if (!p)
                return vl_error_set(err, 500, "exception", NULL, "out of memory");
            out->items = p;
            out->cap = ncap;
        }
        if (vl_store_row_to_record(st, &out->items[out->n]) < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        out->n++;
    }
    if (rc != SQLITE_DONE)
        return vl_store_sql_error(err, db, "reading results");
    return 0;
}

int vl_store_history(vl_store_t *s, const char *type, const char *id, int64_t since_us,
                     int count, int offset, vl_records_t *out, vl_error_t *err)
{
    vl_reader_t *r = vl_store_reader(s, err);
    sqlite3_stmt *st = NULL;
    int ret = -1;
    const char *where = id ? " WHERE r.type = ?1 AND r.id = ?2 AND v.last_updated >= ?3"
                           : " WHERE r.type = ?1 AND v.last_updated >= ?3";
    char sql[512];
    memset(out, 0, sizeof *out);
    if (!r)
        return -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM resource r JOIN resource_version v ON v.rid = r.rid%s",
             where);
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, r->db, "counting history");
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    if (id)
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, since_us);
    if (sqlite3_step(st) == SQLITE_ROW)
        out->total = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (id && out->total == 0) { /* unknown resource (404), or nothing since _since */
        int exists = 0;
        if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM resource WHERE type = ?1 AND id = ?2", -1,
                               &st, NULL) != SQLITE_OK)
            return vl_store_sql_error(err, r->db, "reading history");
        sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        exists = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        st = NULL;
        if (!exists)
            return vl_error_set(err, 404, "not-found", NULL, "%s/%s is not known", type, id);
        return 0;
    }
    snprintf(sql, sizeof sql,
             "SELECT " RECORD_COLUMNS " FROM resource r JOIN resource_version v ON v.rid = r.rid%s"
             " ORDER BY v.seq DESC LIMIT ?4 OFFSET ?5",
             where);
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, r->db, "reading history");
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    if (id)
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, since_us);
    sqlite3_bind_int(st, 4, count);
    sqlite3_bind_int(st, 5, offset);
    ret = vl_store_collect(r->db, st, out, err);
    sqlite3_finalize(st);
    if (ret < 0)
        vl_records_free(out);
    return ret;
}
