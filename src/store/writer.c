/*
 * The writer thread: group commit.
 *
 * STATES
 *
 *     idle ──(writes queued)──▶ batch ──(COMMIT ok)──▶ complete ──▶ idle
 *                                  │
 *                                  └──(COMMIT fails)──▶ complete, every
 *                                        write of the batch failed (503)
 *
 * INVARIANTS
 *   1. Only this thread writes to the database.
 *   2. A write is completed (done() called) only after the transaction that
 *      holds it committed, or with result -1 and nothing of it persisted.
 *   3. Each write runs in its own SAVEPOINT: a write that fails its checks
 *      (412, 404, 409) rolls back to it and leaves its neighbours intact.
 *   4. The rows of a version (resource, resource_version, idx_*) and its
 *      ledger entry (and any Merkle nodes it completes) are written together
 *      in that savepoint (src/store/ledger.c).
 *
 * Batching: the thread takes everything queued (up to batch_max) at once.
 * While one batch commits (fsync), new writes queue up and form the next
 * batch, so throughput grows with concurrency while each write waits at
 * most about two fsyncs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "store_internal.h"

#define W(s, i, sql, err) vl_store_stmt((s)->wdb, &(s)->wstmts[i], sql, err)

void vl_store_write_release(vl_store_write_t *w)
{
    free(w->body);
    w->body = NULL;
    free(w->_tail);
    free(w->_meta_rest);
    w->_tail = w->_meta_rest = NULL;
    vl_error_clear(&w->err);
    vl_index_free(&w->index);
}

/* Looks up (type, id): *rid, *version, *deleted; returns 1 found, 0 not, -1 error. */
static int lookup(vl_store_t *s, const char *type, const char *id, int64_t *rid, int64_t *version,
                  int *deleted, vl_error_t *err)
{
    sqlite3_stmt *st = W(s, VL_WSTMT_LOOKUP,
                         "SELECT rid, version, deleted FROM resource WHERE type = ?1 AND id = ?2",
                         err);
    int rc;
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *rid = sqlite3_column_int64(st, 0);
        *version = sqlite3_column_int64(st, 1);
        *deleted = sqlite3_column_int(st, 2);
        sqlite3_reset(st);
        return 1;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return vl_store_sql_error(err, s->wdb, "looking up a resource");
    return 0;
}

static int step_done(vl_store_t *s, sqlite3_stmt *st, const char *what, vl_error_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return vl_store_sql_error(err, s->wdb, what);
    return 0;
}

static int delete_index(vl_store_t *s, int64_t rid, vl_error_t *err)
{
    static const char *const sql[] = {
        "DELETE FROM idx_token WHERE rid = ?1",     "DELETE FROM idx_string WHERE rid = ?1",
        "DELETE FROM idx_reference WHERE rid = ?1", "DELETE FROM idx_date WHERE rid = ?1",
        "DELETE FROM idx_quantity WHERE rid = ?1",
    };
    for (int i = 0; i < 5; i++) {
        sqlite3_stmt *st = W(s, VL_WSTMT_DELETE_TOKEN + i, sql[i], err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 1, rid);
        if (step_done(s, st, "clearing index rows", err) < 0)
            return -1;
    }
    return 0;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int insert_index(vl_store_t *s, int64_t rid, const vl_index_t *ix, vl_error_t *err)
{
    for (size_t i = 0; i < ix->n; i++) {
        const vl_index_row_t *row = &ix->rows[i];
        sqlite3_stmt *st = NULL;
        switch (row->kind) {
        case VL_INDEX_TOKEN:
            st = W(s, VL_WSTMT_INSERT_TOKEN,
                   "INSERT INTO idx_token (rid, param, system, code) VALUES (?1, ?2, ?3, ?4)", err);
            if (!st)
                return -1;
            bind_text_or_null(st, 3, row->system);
            bind_text_or_null(st, 4, row->text ? row->text : "");
            break;
        case VL_INDEX_STRING:
            st = W(s, VL_WSTMT_INSERT_STRING,
                   "INSERT INTO idx_string (rid, param, value, norm) VALUES (?1, ?2, ?3, ?4)", err);
            if (!st)
                return -1;
            bind_text_or_null(st, 3, row->text ? row->text : "");
            bind_text_or_null(st, 4, row->norm ? row->norm : (row->text ? row->text : ""));
            break;
        case VL_INDEX_REFERENCE:
            st = W(s, VL_WSTMT_INSERT_REFERENCE,
                   "INSERT INTO idx_reference (rid, param, ref) VALUES (?1, ?2, ?3)", err);
            if (!st)
                return -1;
            bind_text_or_null(st, 3, row->text ? row->text : "");
            break;
        case VL_INDEX_DATE:
            st = W(s, VL_WSTMT_INSERT_DATE,
                   "INSERT INTO idx_date (rid, param, lo, hi) VALUES (?1, ?2, ?3, ?4)", err);
            if (!st)
                return -1;
            sqlite3_bind_int64(st, 3, row->lo);
            sqlite3_bind_int64(st, 4, row->hi);
            break;
        case VL_INDEX_QUANTITY:
            st = W(s, VL_WSTMT_INSERT_QUANTITY,
                   "INSERT INTO idx_quantity (rid, param, value, system, code)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
                   err);
            if (!st)
                return -1;
            sqlite3_bind_double(st, 3, row->number);
            bind_text_or_null(st, 4, row->system);
            bind_text_or_null(st, 5, row->text);
            break;
        }
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_text(st, 2, row->param, -1, SQLITE_STATIC);
        if (step_done(s, st, "writing index rows", err) < 0)
            return -1;
    }
    return 0;
}

/*
 * Serialization is split so the writer thread does no JSON work:
 * prerender() runs in vl_store_submit(), on the caller's thread, and renders
 * every member except id and meta.versionId/lastUpdated (which only the
 * writer knows); finalize_body() splices those in. The served body is
 *
 *   {"resourceType":T,"id":ID,"meta":{"versionId":V,"lastUpdated":L<meta_rest>}<tail>}
 *
 * with resourceType, id and meta first (FHIR element order is free).
 */

/* Renders the members of `obj` except those named in `skip`, as
 * ',"k":v,...' ("" when none). Returns malloc'd text or NULL. */
static char *render_members(json_t *obj, const char *const *skip)
{
    json_t *copy = json_object();
    const char *key;
    json_t *value;
    char *text, *out;
    size_t n;
    if (!copy)
        return NULL;
    json_object_foreach(obj, key, value)
    {
        int skipped = 0;
        for (const char *const *k = skip; *k; k++)
            skipped |= strcmp(key, *k) == 0;
        if (!skipped)
            json_object_set(copy, key, value);
    }
    text = vl_json_dump(copy, &n);
    json_decref(copy);
    if (!text)
        return NULL;
    /* "{...}" -> ",..." ; "{}" -> "" */
    if (n <= 2) {
        text[0] = '\0';
        return text;
    }
    out = text;
    out[0] = ',';
    out[n - 1] = '\0';
    return out;
}

static int prerender(vl_store_write_t *w, vl_error_t *err)
{
    static const char *const top_skip[] = {"resourceType", "id", "meta", NULL};
    static const char *const meta_skip[] = {"versionId", "lastUpdated", NULL};
    json_t *meta = json_object_get(w->resource, "meta");
    const char *rt = json_string_value(json_object_get(w->resource, "resourceType"));
    if (!rt || strcmp(rt, w->type) != 0)
        return vl_error_set(err, 400, "invalid", "resourceType", "resourceType must be %s",
                            w->type);
    w->_tail = render_members(w->resource, top_skip);
    w->_meta_rest = json_is_object(meta) ? render_members(meta, meta_skip) : strdup("");
    if (!w->_tail || !w->_meta_rest)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    return 0;
}

static int finalize_body(vl_store_write_t *w, int64_t version, int64_t now, vl_error_t *err)
{
    char ts[32];
    size_t tail = strlen(w->_tail), meta = strlen(w->_meta_rest);
    size_t cap = 128 + strlen(w->type) + strlen(w->id) + tail + meta;
    int n;
    vl_time_format(now, ts);
    free(w->body);
    w->body = malloc(cap);
    if (!w->body)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    n = snprintf(w->body, cap,
                 "{\"resourceType\":\"%s\",\"id\":\"%s\",\"meta\":{\"versionId\":\"%lld\","
                 "\"lastUpdated\":\"%s\"%s}%s}",
                 w->type, w->id, (long long)version, ts, w->_meta_rest, w->_tail);
    if (n < 0 || (size_t)n >= cap)
        return vl_error_set(err, 500, "exception", NULL, "body rendering failed");
    w->body_len = (size_t)n;
    return 0;
}

/* Applies one write inside the open transaction. */
static int apply(vl_store_t *s, vl_store_write_t *w, int64_t now, vl_error_t *err)
{
    int64_t rid = 0, version = 0;
    int deleted = 0, found;
    const char *method = w->op == VL_WRITE_CREATE ? "POST" : w->op == VL_WRITE_UPDATE ? "PUT" : "DELETE";
    unsigned char salt[32];
    sqlite3_stmt *st;

    if (w->op == VL_WRITE_CHECKPOINT)
        return 0; /* run_batch signs */
    if (!s->has_key)
        return vl_error_set(err, 503, "transient", NULL,
                            "the store is open without its ledger key: writes are refused");
    if (w->op == VL_WRITE_ROTATE) {
        vl_ledger_entry_t e;
        memset(&e, 0, sizeof e);
        e.time_us = now;
        e.kind = VL_ENTRY_KEY_ROTATION;
        if (vl_ledger_key_vkey(w->next_key, e.key, sizeof e.key) < 0 ||
            vl_ledger_rotation_sign(&s->key, &e) < 0)
            return vl_error_set(err, 500, "exception", NULL, "signing the key rotation failed");
        if (vl_store_ledger_append(s, &e, w->ledger_hash, err) < 0)
            return -1;
        w->ledger_index = e.index;
        s->key = *w->next_key; /* checkpoints from here on: the new key */
        return 0;
    }
    if (w->op == VL_WRITE_CREATE && w->if_none_exist) {
        vl_records_t hits = {0};
        vl_query_t q = *w->if_none_exist;
        q.count = 2;
        q.offset = 0;
        if (vl_store_query_run(s->wdb, &q, 0, &hits, err) < 0)
            return -1;
        if (hits.n > 1) {
            vl_records_free(&hits);
            return vl_error_set(err, 412, "duplicate", NULL,
                                "If-None-Exist matches more than one resource");
        }
        if (hits.n == 1) {
            vl_record_t *h = &hits.items[0];
            w->noop = 1;
            snprintf(w->id, sizeof w->id, "%s", h->id);
            w->version = h->version;
            w->last_updated_us = h->last_updated_us;
            w->body = h->body;
            w->body_len = h->body_len;
            h->body = NULL;
            vl_records_free(&hits);
            return 0;
        }
        vl_records_free(&hits);
    }
    if (w->op == VL_WRITE_CREATE && w->id[0] == '\0')
        vl_id_new(w->id);

    found = lookup(s, w->type, w->id, &rid, &version, &deleted, err);
    if (found < 0)
        return -1;
    if (w->op == VL_WRITE_CREATE && found)
        return vl_error_set(err, 409, "duplicate", NULL, "%s/%s already exists", w->type, w->id);
    if (w->if_match && (!found || w->if_match != version))
        return vl_error_set(err, 412, "conflict", NULL,
                            "If-Match names version %lld but the current version is %lld",
                            (long long)w->if_match, (long long)version);
    if (w->op == VL_WRITE_DELETE) {
        if (!found)
            return vl_error_set(err, 404, "not-found", NULL, "%s/%s is not known", w->type, w->id);
        if (deleted) { /* deleting a deleted resource changes nothing */
            w->noop = 1;
            w->version = version;
            return 0;
        }
    }
    w->created = !found;
    w->version = version + 1;
    w->last_updated_us = now;

    if (w->op != VL_WRITE_DELETE && finalize_body(w, w->version, now, err) < 0)
        return -1;

    if (!found) {
        st = W(s, VL_WSTMT_INSERT_RESOURCE,
               "INSERT INTO resource (type, id, version, deleted, last_updated)"
               " VALUES (?1, ?2, ?3, ?4, ?5)",
               err);
        if (!st)
            return -1;
        sqlite3_bind_text(st, 1, w->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, w->id, -1, SQLITE_STATIC);
    } else {
        st = W(s, VL_WSTMT_UPDATE_RESOURCE,
               "UPDATE resource SET version = ?3, deleted = ?4, last_updated = ?5 WHERE rid = ?6",
               err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 6, rid);
    }
    sqlite3_bind_int64(st, 3, w->version);
    sqlite3_bind_int(st, 4, w->op == VL_WRITE_DELETE);
    sqlite3_bind_int64(st, 5, now);
    if (step_done(s, st, "writing a resource", err) < 0)
        return -1;
    if (!found)
        rid = sqlite3_last_insert_rowid(s->wdb);

    randombytes_buf(salt, sizeof salt);
    st = W(s, VL_WSTMT_INSERT_VERSION,
           "INSERT INTO resource_version (rid, version, last_updated, method, deleted, body, salt,"
           " ledger_idx) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
           err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, w->version);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_text(st, 4, method, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, w->op == VL_WRITE_DELETE);
    if (w->body)
        sqlite3_bind_blob(st, 6, w->body, (int)w->body_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_blob(st, 7, salt, sizeof salt, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)s->ledger.size);
    if (step_done(s, st, "writing a version", err) < 0)
        return -1;
    {
        /* the version's ledger entry, in the same savepoint (ledger.c) */
        vl_ledger_entry_t e;
        memset(&e, 0, sizeof e);
        e.time_us = now;
        e.kind = w->op == VL_WRITE_DELETE ? VL_ENTRY_DELETE
                 : w->created             ? VL_ENTRY_CREATE
                                          : VL_ENTRY_UPDATE;
        snprintf(e.ref, sizeof e.ref, "%s/%s/_history/%lld", w->type, w->id, (long long)w->version);
        vl_ledger_commitment(salt, w->body, w->body ? w->body_len : 0, e.commitment);
        if (vl_store_ledger_append(s, &e, w->ledger_hash, err) < 0)
            return -1;
        w->ledger_index = e.index;
    }

    if (found && delete_index(s, rid, err) < 0)
        return -1;
    if (w->op != VL_WRITE_DELETE && insert_index(s, rid, &w->index, err) < 0)
        return -1;
    return 0;
}

/* Everything run_batch() must put back when writes do not commit
 * (invariant 2 of ledger.c). */
typedef struct snapshot {
    vl_ledger_state_t ledger;
    vl_ledger_key_t key;
    uint64_t cp_size;
    int64_t cp_time_us;
} snapshot_t;

static void snapshot_take(const vl_store_t *s, snapshot_t *snap)
{
    snap->ledger = s->ledger;
    snap->key = s->key;
    snap->cp_size = s->cp_size;
    snap->cp_time_us = s->cp_time_us;
}

static void snapshot_restore(vl_store_t *s, const snapshot_t *snap)
{
    s->ledger = snap->ledger;
    s->key = snap->key;
    s->cp_size = snap->cp_size;
    s->cp_time_us = snap->cp_time_us;
}

/* A checkpoint is due when entries are uncovered and the last one is
 * checkpoint_ms old, or when a write asks for one. */
static int checkpoint_due(const vl_store_t *s, int64_t mono, int asked)
{
    if (!s->has_key || s->ledger.size == s->cp_size)
        return 0;
    return asked || mono - s->cp_time_us >= (int64_t)s->cp_ms * 1000;
}

int64_t vl_store_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Runs one batch (NULL: a checkpoint only). */
static void run_batch(vl_store_t *s, vl_store_write_t *batch)
{
    vl_error_t err = VL_ERROR_INIT;
    int64_t now = vl_time_now_us(), mono = vl_store_mono_us();
    int committed = 0, asked = batch == NULL, lost = 0, sign_failed = 0;
    uint64_t n = 0, failed = 0;
    snapshot_t at_start, before_write;

    snapshot_take(s, &at_start);
    memset(&before_write, 0, sizeof before_write);
    if (vl_store_exec(s->wdb, "BEGIN IMMEDIATE;", &err) == 0) {
        for (vl_store_write_t *w = batch; w; w = w->_next) {
            asked |= w->op == VL_WRITE_CHECKPOINT || w->op == VL_WRITE_ROTATE;
            if (vl_store_exec(s->wdb, "SAVEPOINT w;", &w->err) < 0) {
                w->result = -1;
                continue;
            }
            snapshot_take(s, &before_write);
            w->result = apply(s, w, now, &w->err);
            if (w->result < 0) {
                /* SQLite may have rolled back the whole transaction (some
                 * I/O, full-disk and memory errors do): then nothing of
                 * this batch stands, and it must not go on outside one */
                if (sqlite3_get_autocommit(s->wdb) ||
                    vl_store_exec(s->wdb, "ROLLBACK TO w;", NULL) < 0) {
                    lost = 1;
                    break;
                }
                snapshot_restore(s, &before_write);
                free(w->body);
                w->body = NULL;
            }
            if (vl_store_exec(s->wdb, "RELEASE w;", NULL) < 0 || sqlite3_get_autocommit(s->wdb)) {
                lost = 1;
                break;
            }
        }
        if (!lost && checkpoint_due(s, mono, asked)) {
            if (vl_store_ledger_sign(s, &err) == 0) {
                s->cp_time_us = mono;
            } else {
                /* entries stay uncovered; retry one interval later, not in
                 * a loop. The writes stand; checkpoint requests fail. */
                vl_logf(VL_LOG_ERROR, "ledger: %s", vl_error_message(&err));
                vl_error_clear(&err);
                s->cp_time_us = mono;
                sign_failed = 1;
                lost = sqlite3_get_autocommit(s->wdb);
            }
        }
        if (lost) {
            if (!sqlite3_get_autocommit(s->wdb))
                vl_store_exec(s->wdb, "ROLLBACK;", NULL);
            vl_logf(VL_LOG_ERROR, "store: a batch's transaction was rolled back; its writes "
                                  "fail with 503");
        } else {
            committed = vl_store_exec(s->wdb, "COMMIT;", &err) == 0;
            if (!committed)
                vl_store_exec(s->wdb, "ROLLBACK;", NULL);
        }
        if (!committed) {
            snapshot_restore(s, &at_start);
            if (sign_failed)
                s->cp_time_us = mono;
        }
    }
    /* the snapshots hold a copy of the secret key */
    sodium_memzero(&at_start, sizeof at_start);
    sodium_memzero(&before_write, sizeof before_write);
    /* /readyz reports not ready while commits fail */
    pthread_mutex_lock(&s->mu);
    s->failed = !committed;
    pthread_mutex_unlock(&s->mu);
    vl_error_clear(&err);

    for (vl_store_write_t *w = batch; w; w = w->_next) {
        if (sign_failed && w->result == 0 &&
            (w->op == VL_WRITE_CHECKPOINT || w->op == VL_WRITE_ROTATE)) {
            w->result = w->op == VL_WRITE_CHECKPOINT ? -1 : 0; /* a rotation stands */
            if (w->result < 0)
                vl_error_set(&w->err, 503, "transient", NULL,
                             "the checkpoint could not be signed; retry later");
        }
        if (!committed && w->result == 0) {
            w->result = -1;
            free(w->body);
            w->body = NULL;
            vl_error_set(&w->err, 503, "transient", NULL,
                         "the write could not be committed; retry later");
        }
        n++;
        failed += w->result < 0;
    }
    /* counters first: whoever sees a write complete sees it counted */
    pthread_mutex_lock(&s->mu);
    s->stats.commits += committed;
    s->stats.writes += n;
    s->stats.write_failures += failed;
    pthread_mutex_unlock(&s->mu);
    for (vl_store_write_t *w = batch, *next; w; w = next) {
        next = w->_next;
        w->done(w, w->done_arg); /* may free w: do not touch it after */
    }
}

static void *writer_main(void *arg)
{
    vl_store_t *s = arg;
    for (;;) {
        vl_store_write_t *batch, *last;
        int n = 0;
        int timed_out = 0;
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->stopping && !timed_out) {
            if (s->has_key && s->ledger.size > s->cp_size) {
                /* uncovered entries: wake when their checkpoint is due */
                int64_t due = s->cp_time_us + (int64_t)s->cp_ms * 1000;
                struct timespec ts = {(time_t)(due / 1000000), (long)(due % 1000000) * 1000};
                timed_out = pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT;
            } else {
                pthread_cond_wait(&s->cond, &s->mu);
            }
        }
        if (!s->head) { /* a checkpoint is due, or stopping and drained */
            pthread_mutex_unlock(&s->mu);
            if (s->has_key && s->ledger.size > s->cp_size)
                run_batch(s, NULL); /* on stop too: leave every entry covered */
            if (timed_out)
                continue;
            break;
        }
        batch = last = s->head;
        for (n = 1; n < s->batch_max && last->_next; n++)
            last = last->_next;
        s->head = last->_next;
        if (!s->head)
            s->tail = NULL;
        last->_next = NULL;
        s->queued -= (uint64_t)n;
        pthread_mutex_unlock(&s->mu);
        run_batch(s, batch);
    }
    return NULL;
}

int vl_store_writer_start(vl_store_t *s, vl_error_t *err)
{
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
        return vl_error_set(err, 500, "exception", NULL, "cannot start the writer thread");
    s->writer_running = 1;
    return 0;
}

void vl_store_writer_stop(vl_store_t *s)
{
    if (!s->writer_running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    s->writer_running = 0;
}

/* Type names and ids are spliced into bodies and keys unescaped: only
 * [A-Za-z] types and FHIR ids ([A-Za-z0-9.-]{1,64}) get that far. */
static int name_ok(const char *s, int id)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (id && ((c >= '0' && c <= '9') || c == '-' || c == '.'));
        if (!ok)
            return 0;
    }
    return n > 0 && n <= 64;
}

int vl_store_submit(vl_store_t *s, vl_store_write_t *w, vl_error_t *err)
{
    int record = w->op == VL_WRITE_CREATE || w->op == VL_WRITE_UPDATE || w->op == VL_WRITE_DELETE;
    if (record && (!name_ok(w->type, 0) || ((w->op != VL_WRITE_CREATE || w->id[0]) &&
                                            !name_ok(w->id, 1))))
        return vl_error_set(err, 400, "invalid", NULL, "invalid resource type or id");
    if (w->op == VL_WRITE_ROTATE && (!w->next_key || !w->next_key->has_secret))
        return vl_error_set(err, 400, "invalid", NULL, "a rotation needs the new secret key");
    w->_next = NULL;
    w->result = 0;
    w->noop = w->created = 0;
    if ((w->op == VL_WRITE_CREATE || w->op == VL_WRITE_UPDATE) && prerender(w, err) < 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    if (s->stopping || !s->writer_running) {
        pthread_mutex_unlock(&s->mu);
        return vl_error_set(err, 503, "transient", NULL, "the server is shutting down");
    }
    if (s->tail)
        s->tail->_next = w;
    else
        s->head = w;
    s->tail = w;
    s->queued++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Synchronous wrapper: a condition variable per call. */
typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
} sync_wait_t;

static void sync_done(vl_store_write_t *w, void *arg)
{
    sync_wait_t *sw = arg;
    (void)w;
    pthread_mutex_lock(&sw->mu);
    sw->done = 1;
    pthread_cond_signal(&sw->cond);
    pthread_mutex_unlock(&sw->mu);
}

int vl_store_write_sync(vl_store_t *s, vl_store_write_t *w)
{
    sync_wait_t sw = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    w->done = sync_done;
    w->done_arg = &sw;
    if (vl_store_submit(s, w, &w->err) < 0) {
        w->result = -1;
        return -1;
    }
    pthread_mutex_lock(&sw.mu);
    while (!sw.done)
        pthread_cond_wait(&sw.cond, &sw.mu);
    pthread_mutex_unlock(&sw.mu);
    pthread_mutex_destroy(&sw.mu);
    pthread_cond_destroy(&sw.cond);
    return w->result;
}
