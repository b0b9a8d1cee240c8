/*
 * The SQLite backend's writes, on the writer connection inside the
 * writer's transaction (backend.h). Nothing here decides: the core checked
 * the version and made the ledger entry; this file stores rows.
 *
 *   resource          one row per (type, id): current version, deleted flag
 *   resource_version  every version, with its salt and ledger index
 *   idx_*             the current version's search index rows
 *   version_patient   the patient compartments of every version (a delete
 *                     keeps those of the version it deletes)
 *   version_code,     the consent facets of every version: its codes and
 *   version_time      its data time (a delete keeps those it deletes)
 *   ledger_*          entries, Merkle nodes, checkpoints, key rotations
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

#define W(b, i, sql, err) vl_sqlite_stmt(&(b)->writer, i, sql, err)

static int step_done(vl_backend_t *b, sqlite3_stmt *st, const char *what, vl_store_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, b->writer.db, what);
    return 0;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

int vl_sqlite_head(vl_backend_t *b, const char *type, const char *id, vl_bhead_t *out,
                   vl_store_err_t *err)
{
    sqlite3_stmt *st =
        W(b, ST_LOOKUP,
          "SELECT rid, version, deleted, last_updated FROM resource WHERE type = ?1 AND id = ?2",
          err);
    int rc;
    memset(out, 0, sizeof *out);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->rid = sqlite3_column_int64(st, 0);
        out->head.exists = 1;
        out->head.version = sqlite3_column_int64(st, 1);
        out->head.deleted = sqlite3_column_int(st, 2);
        out->head.last_updated_us = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return vl_sqlite_error(err, b->writer.db, "looking up a resource");
    return 0;
}

/* A version is no longer current: its index rows stop matching. */
static int supersede(vl_backend_t *b, int64_t rid, int64_t version, vl_store_err_t *err)
{
    sqlite3_stmt *st = W(b, ST_SUPERSEDE,
                         "INSERT OR IGNORE INTO superseded (seq) SELECT seq FROM resource_version"
                         " WHERE rid = ?1 AND version = ?2",
                         err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, version);
    return step_done(b, st, "superseding a version", err);
}

/* pid of "<type>.<param>" and sid of a system URI (0: none), interned */
static int param_id(vl_backend_t *b, const char *type, const char *param, int64_t *pid,
                    vl_store_err_t *err)
{
    char name[160];
    if (!param)
        return vl_store_fail(err, VL_STORE_INVALID, "an index row without a parameter");
    if ((size_t)snprintf(name, sizeof name, "%s.%s", type, param) >= sizeof name)
        return vl_store_fail(err, VL_STORE_INVALID, "a parameter name too long");
    return vl_intern_id(&b->writer, VL_INTERN_PARAM, name, 1, pid, err);
}

static int system_id(vl_backend_t *b, const char *system, int64_t *sid, vl_store_err_t *err)
{
    *sid = 0;
    if (!system || !*system)
        return 0;
    return vl_intern_id(&b->writer, VL_INTERN_SYSTEM, system, 1, sid, err);
}

/* The statement inserting one row of `kind` (bound but for pid, seq). */
static sqlite3_stmt *row_stmt(vl_backend_t *b, const vl_index_row_t *row, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t sid = 0;
    const char *text = row->text ? row->text : "";
    if ((row->kind == VL_INDEX_TOKEN || row->kind == VL_INDEX_QUANTITY ||
         row->kind == VL_INDEX_COMPOSITE || row->kind == VL_INDEX_SERIES) &&
        system_id(b, row->system, &sid, err) < 0)
        return NULL;
    switch (row->kind) {
    case VL_INDEX_TOKEN:
        if ((st = W(b, ST_INSERT_TOKEN,
                    "INSERT OR IGNORE INTO ix_token (pid, seq, code, sid) VALUES (?1, ?2, ?3, ?4)",
                    err))) {
            sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, sid);
        }
        break;
    case VL_INDEX_STRING:
        if ((st = W(
                 b, ST_INSERT_STRING,
                 "INSERT OR IGNORE INTO ix_string (pid, seq, value, norm) VALUES (?1, ?2, ?3, ?4)",
                 err))) {
            sqlite3_bind_text(st, 3, row->norm_only ? "" : text, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, row->norm ? row->norm : text, -1, SQLITE_STATIC);
        }
        break;
    case VL_INDEX_REFERENCE:
        if ((st = W(b, ST_INSERT_REFERENCE,
                    "INSERT OR IGNORE INTO ix_reference (pid, seq, ref) VALUES (?1, ?2, ?3)", err)))
            sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
        break;
    case VL_INDEX_DATE:
        if ((st = W(b, ST_INSERT_DATE,
                    "INSERT OR IGNORE INTO ix_date (pid, seq, lo, hi) VALUES (?1, ?2, ?3, ?4)",
                    err))) {
            sqlite3_bind_int64(st, 3, row->lo);
            sqlite3_bind_int64(st, 4, row->hi);
        }
        break;
    case VL_INDEX_QUANTITY:
        if ((st = W(b, ST_INSERT_QUANTITY,
                    "INSERT OR IGNORE INTO ix_quantity (pid, seq, value, sid, code, canon, unit)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    err))) {
            sqlite3_bind_double(st, 3, row->number);
            sqlite3_bind_int64(st, 4, sid);
            sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 6, row->canon != 0);
            bind_text_or_null(st, 7, row->unit);
        }
        break;
    case VL_INDEX_COMPOSITE:
        if ((st = W(b, ST_INSERT_COMPOSITE,
                    "INSERT OR IGNORE INTO ix_composite (pid, seq, code, sid, unit, value)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    err))) {
            sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, sid);
            sqlite3_bind_text(st, 5, row->unit ? row->unit : "", -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 6, row->number);
        }
        break;
    case VL_INDEX_SERIES:
        if ((st = W(b, ST_INSERT_SERIES,
                    "INSERT OR IGNORE INTO ix_series (pid, seq, patient, code, sid, lo, hi)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    err))) {
            sqlite3_bind_text(st, 3, row->unit ? row->unit : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, sid);
            sqlite3_bind_int64(st, 6, row->lo);
            sqlite3_bind_int64(st, 7, row->hi);
        }
        break;
    }
    return st;
}

/* The sort keys of param `p` (rows flagged sort): the smallest and the
 * largest value, for ascending and descending order. Dates sort by their
 * range (lo ascending, hi descending), quantities by their canonical
 * value when they have one, tokens by code, strings by their norm. */
static int insert_sort_key(vl_backend_t *b, int64_t seq, int64_t pid, const vl_index_t *ix,
                           size_t first, vl_store_err_t *err)
{
    const vl_index_row_t *r0 = &ix->rows[first];
    int any_canon = 0, have = 0;
    const vl_index_row_t *min = NULL, *max = NULL;
    sqlite3_stmt *st;
    for (size_t i = first; i < ix->n; i++)
        if (ix->rows[i].param == r0->param && ix->rows[i].kind == r0->kind && ix->rows[i].canon)
            any_canon = 1;
    for (size_t i = first; i < ix->n; i++) {
        const vl_index_row_t *r = &ix->rows[i];
        if (r->param != r0->param || r->kind != r0->kind || (any_canon && !r->canon))
            continue;
        if (!have++) {
            min = max = r;
            continue;
        }
        switch (r->kind) {
        case VL_INDEX_DATE:
            if (r->lo < min->lo)
                min = r;
            if (r->hi > max->hi)
                max = r;
            break;
        case VL_INDEX_QUANTITY:
            if (r->number < min->number)
                min = r;
            if (r->number > max->number)
                max = r;
            break;
        case VL_INDEX_STRING:
        case VL_INDEX_TOKEN: {
            const char *a = r->kind == VL_INDEX_STRING ? r->norm : r->text;
            const char *lo = min->kind == VL_INDEX_STRING ? min->norm : min->text;
            const char *hi = max->kind == VL_INDEX_STRING ? max->norm : max->text;
            if (a && (!lo || strcmp(a, lo) < 0))
                min = r;
            if (a && (!hi || strcmp(a, hi) > 0))
                max = r;
            break;
        }
        default: break;
        }
    }
    if (!have)
        return 0;
    st = W(b, ST_INSERT_SORT,
           "INSERT OR REPLACE INTO ix_sort (seq, pid, lo, hi) VALUES (?1, ?2, ?3, ?4)", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, pid);
    switch (r0->kind) {
    case VL_INDEX_DATE:
        sqlite3_bind_int64(st, 3, min->lo);
        sqlite3_bind_int64(st, 4, max->hi);
        break;
    case VL_INDEX_QUANTITY:
        sqlite3_bind_double(st, 3, min->number);
        sqlite3_bind_double(st, 4, max->number);
        break;
    default:
        bind_text_or_null(st, 3, min->kind == VL_INDEX_STRING ? min->norm : min->text);
        bind_text_or_null(st, 4, max->kind == VL_INDEX_STRING ? max->norm : max->text);
        break;
    }
    return step_done(b, st, "writing sort keys", err);
}

/* series_span: the longest span of pid's series rows (only ever grows;
 * an upsert that changes nothing writes nothing). */
static int widen_span(vl_backend_t *b, int64_t pid, const vl_index_row_t *row, vl_store_err_t *err)
{
    sqlite3_stmt *st = W(b, ST_SERIES_SPAN,
                         "INSERT INTO series_span (pid, span) VALUES (?1, ?2) ON CONFLICT (pid)"
                         " DO UPDATE SET span = excluded.span WHERE excluded.span > span",
                         err);
    /* an open end counts as the longest span there is */
    double span = (double)row->hi - (double)row->lo;
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, pid);
    sqlite3_bind_int64(st, 2, span >= 9.2e18 ? INT64_MAX : (int64_t)span);
    return step_done(b, st, "writing the series span", err);
}

/* The index rows of version `seq`, keyed by interned names (schemas/007). */
static int insert_index(vl_backend_t *b, const char *type, int64_t seq, const vl_index_t *ix,
                        vl_store_err_t *err)
{
    const char *last_param = NULL;
    int64_t pid = -1;
    for (size_t i = 0; i < ix->n; i++) {
        const vl_index_row_t *row = &ix->rows[i];
        sqlite3_stmt *st;
        int first_of_param = 1;
        if (row->param != last_param || i == 0) {
            /* rows of one param are adjacent as extracted; a param met
             * again later is found in the intern cache */
            if (param_id(b, type, row->param, &pid, err) < 0)
                return -1;
            last_param = row->param;
        }
        for (size_t k = 0; k < i && first_of_param; k++)
            if (ix->rows[k].param == row->param && ix->rows[k].kind == row->kind &&
                ix->rows[k].sort)
                first_of_param = 0;
        if (!(st = row_stmt(b, row, err)))
            return -1;
        sqlite3_bind_int64(st, 1, pid);
        sqlite3_bind_int64(st, 2, seq);
        if (step_done(b, st, "writing index rows", err) < 0)
            return -1;
        if (row->kind == VL_INDEX_SERIES && row->hi != VL_SERIES_UNDATED &&
            widen_span(b, pid, row, err) < 0)
            return -1;
        if (row->sort && first_of_param && row->kind != VL_INDEX_SERIES &&
            row->kind != VL_INDEX_COMPOSITE && insert_sort_key(b, seq, pid, ix, i, err) < 0)
            return -1;
    }
    return 0;
}

/* The compartments the index lists, for version `seq` (each once). */
static int insert_patient_ids(vl_backend_t *b, int64_t seq, const vl_index_t *ix,
                              vl_store_err_t *err)
{
    for (size_t i = 0; i < ix->n_patients; i++) {
        sqlite3_stmt *st =
            W(b, ST_INSERT_PATIENT,
              "INSERT OR IGNORE INTO version_patient (seq, patient) VALUES (?1, ?2)", err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_text(st, 2, ix->patients[i], -1, SQLITE_STATIC);
        if (step_done(b, st, "writing compartments", err) < 0)
            return -1;
    }
    return 0;
}

/* The compartments of version `seq`: the listed patients, or for a delete
 * those of the version it deletes. */
static int insert_patients(vl_backend_t *b, int64_t seq, const vl_store_put_t *p, int64_t rid,
                           vl_store_err_t *err)
{
    sqlite3_stmt *st;
    if (p->method == VL_METHOD_DELETE) {
        st = W(b, ST_COPY_PATIENTS,
               "INSERT INTO version_patient (seq, patient) SELECT ?1, vp.patient"
               " FROM resource_version v JOIN version_patient vp ON vp.seq = v.seq"
               " WHERE v.rid = ?2 AND v.version = ?3",
               err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, rid);
        sqlite3_bind_int64(st, 3, p->version - 1);
        return step_done(b, st, "writing compartments", err);
    }
    return p->index ? insert_patient_ids(b, seq, p->index, err) : 0;
}

/* The facets of version `seq` (codes and data time): those of the index,
 * or for a delete those of the version it deletes. */
int vl_sqlite_insert_facets(vl_backend_t *b, int64_t seq, const vl_index_t *ix, int64_t rid,
                            int64_t prev_version, vl_store_err_t *err)
{
    sqlite3_stmt *st;
    if (!ix) {
        st = W(b, ST_COPY_CODES,
               "INSERT INTO version_code (seq, sid, code, kind) SELECT ?1, c.sid, c.code,"
               " c.kind"
               " FROM resource_version v JOIN version_code c ON c.seq = v.seq"
               " WHERE v.rid = ?2 AND v.version = ?3",
               err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, rid);
        sqlite3_bind_int64(st, 3, prev_version);
        if (step_done(b, st, "writing facets", err) < 0)
            return -1;
        st = W(b, ST_COPY_TIME,
               "INSERT INTO version_time (seq, lo, hi) SELECT ?1, t.lo, t.hi"
               " FROM resource_version v JOIN version_time t ON t.seq = v.seq"
               " WHERE v.rid = ?2 AND v.version = ?3",
               err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, rid);
        sqlite3_bind_int64(st, 3, prev_version);
        return step_done(b, st, "writing facets", err);
    }
    for (size_t i = 0; i < ix->n_codes; i++) {
        st = W(b, ST_INSERT_CODE,
               "INSERT OR IGNORE INTO version_code (seq, sid, code, kind) VALUES (?1, ?2, ?3, ?4)",
               err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 1, seq);
        int64_t sid;
        if (system_id(b, ix->codes[i].system, &sid, err) < 0)
            return -1;
        sqlite3_bind_int64(st, 2, sid);
        sqlite3_bind_text(st, 3, ix->codes[i].code, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, ix->codes[i].kind);
        if (step_done(b, st, "writing facets", err) < 0)
            return -1;
    }
    if (ix->has_time) {
        st = W(b, ST_INSERT_TIME,
               "INSERT OR REPLACE INTO version_time (seq, lo, hi) VALUES (?1, ?2, ?3)", err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, ix->time_lo);
        sqlite3_bind_int64(st, 3, ix->time_hi);
        if (step_done(b, st, "writing facets", err) < 0)
            return -1;
    }
    return 0;
}

int vl_sqlite_write_version(vl_backend_t *b, const vl_store_put_t *p, const vl_bhead_t *head,
                            int64_t time_us, const unsigned char salt[32], uint64_t ledger_index,
                            vl_store_err_t *err)
{
    int deleted = p->method == VL_METHOD_DELETE;
    int64_t rid = head->rid, seq;
    sqlite3_stmt *st;

    if (!head->head.exists) {
        st = W(b, ST_INSERT_RESOURCE,
               "INSERT INTO resource (type, id, version, deleted, last_updated)"
               " VALUES (?1, ?2, ?3, ?4, ?5)",
               err);
        if (!st)
            return -1;
        sqlite3_bind_text(st, 1, p->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p->id, -1, SQLITE_STATIC);
    } else {
        st = W(b, ST_UPDATE_RESOURCE,
               "UPDATE resource SET version = ?3, deleted = ?4, last_updated = ?5 WHERE rid = ?6",
               err);
        if (!st)
            return -1;
        sqlite3_bind_int64(st, 6, rid);
    }
    sqlite3_bind_int64(st, 3, p->version);
    sqlite3_bind_int(st, 4, deleted);
    sqlite3_bind_int64(st, 5, time_us);
    if (step_done(b, st, "writing a resource", err) < 0)
        return -1;
    if (!head->head.exists)
        rid = sqlite3_last_insert_rowid(b->writer.db);

    st = W(b, ST_INSERT_VERSION,
           "INSERT INTO resource_version (rid, version, last_updated, method, deleted, body, salt,"
           " ledger_idx) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
           err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, p->version);
    sqlite3_bind_int64(st, 3, time_us);
    sqlite3_bind_text(st, 4, vl_sqlite_method_name(p->method), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, deleted);
    if (!deleted)
        sqlite3_bind_blob(st, 6, p->body, (int)p->body_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_blob(st, 7, salt, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)ledger_index);
    if (step_done(b, st, "writing a version", err) < 0)
        return -1;
    seq = sqlite3_last_insert_rowid(b->writer.db);
    if (insert_patients(b, seq, p, rid, err) < 0 ||
        ((deleted || p->index) &&
         vl_sqlite_insert_facets(b, seq, deleted ? NULL : p->index, rid, p->version - 1, err) < 0))
        return -1;
    if (head->head.exists && supersede(b, rid, head->head.version, err) < 0)
        return -1;
    if (!deleted && p->index && insert_index(b, p->type, seq, p->index, err) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------
 * Ledger rows
 * ---------------------------------------------------------------------- */

int vl_sqlite_append_entry(vl_backend_t *b, uint64_t index, const char *line, size_t len,
                           const unsigned char hash[VL_HASH_LEN], vl_store_err_t *err)
{
    sqlite3_stmt *st = W(b, ST_LEDGER_ENTRY,
                         "INSERT INTO ledger_entry (idx, line, hash) VALUES (?1, ?2, ?3)", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)index);
    sqlite3_bind_text(st, 2, line, (int)len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, hash, VL_HASH_LEN, SQLITE_STATIC);
    return step_done(b, st, "appending a ledger entry", err);
}

int vl_sqlite_put_node(vl_backend_t *b, int level, uint64_t index,
                       const unsigned char hash[VL_HASH_LEN], vl_store_err_t *err)
{
    sqlite3_stmt *st = W(b, ST_LEDGER_PUT_NODE,
                         "INSERT INTO ledger_node (level, idx, hash) VALUES (?1, ?2, ?3)", err);
    if (!st)
        return -1;
    sqlite3_bind_int(st, 1, level);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
    sqlite3_bind_blob(st, 3, hash, VL_HASH_LEN, SQLITE_STATIC);
    return step_done(b, st, "storing a ledger node", err);
}

int vl_sqlite_put_checkpoint(vl_backend_t *b, uint64_t size, const char *note, size_t len,
                             vl_store_err_t *err)
{
    sqlite3_stmt *st =
        W(b, ST_LEDGER_CHECKPOINT,
          "INSERT OR REPLACE INTO ledger_checkpoint (size, note) VALUES (?1, ?2)", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
    sqlite3_bind_text(st, 2, note, (int)len, SQLITE_STATIC);
    return step_done(b, st, "storing a checkpoint", err);
}

int vl_sqlite_put_rotation(vl_backend_t *b, uint64_t index, const char *vkey, vl_store_err_t *err)
{
    sqlite3_stmt *st =
        W(b, ST_LEDGER_ROTATION, "INSERT INTO ledger_rotation (idx, vkey) VALUES (?1, ?2)", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)index);
    sqlite3_bind_text(st, 2, vkey, -1, SQLITE_STATIC);
    return step_done(b, st, "storing a key rotation", err);
}

/* ------------------------------------------------------------------------
 * Anchoring versions written before the ledger existed
 * ---------------------------------------------------------------------- */

int vl_sqlite_unanchored(vl_backend_t *b, vl_bunanchored_fn fn, void *ctx, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;
    if (sqlite3_prepare_v2(
            b->writer.db,
            "SELECT v.seq, r.type, r.id, v.version, v.method, v.body, v.salt,"
            " v.last_updated FROM resource_version v JOIN resource r ON r.rid = v.rid"
            " WHERE +v.ledger_idx IS NULL ORDER BY v.seq",
            -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, b->writer.db, "reading unanchored versions");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *method = (const char *)sqlite3_column_text(st, 4);
        vl_bunanchored_t v = {
            .seq = sqlite3_column_int64(st, 0),
            .type = (const char *)sqlite3_column_text(st, 1),
            .id = (const char *)sqlite3_column_text(st, 2),
            .version = sqlite3_column_int64(st, 3),
            .method = !strcmp(method, "DELETE") ? VL_METHOD_DELETE
                      : !strcmp(method, "PUT")  ? VL_METHOD_PUT
                                                : VL_METHOD_POST,
            .body = sqlite3_column_blob(st, 5),
            .body_len = (size_t)sqlite3_column_bytes(st, 5),
            .salt = sqlite3_column_blob(st, 6),
            .time_us = sqlite3_column_int64(st, 7),
        };
        if (sqlite3_column_bytes(st, 6) != 32) {
            vl_store_fail(err, VL_STORE_FAILED, "a version has no 32-byte salt");
            goto out;
        }
        if (fn(ctx, &v) != 0)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        vl_sqlite_error(err, b->writer.db, "reading unanchored versions");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int vl_sqlite_anchor(vl_backend_t *b, int64_t seq, uint64_t index, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(b->writer.db,
                           "UPDATE resource_version SET ledger_idx = ?1 WHERE seq = ?2", -1, &st,
                           NULL) != SQLITE_OK)
        return vl_sqlite_error(err, b->writer.db, "anchoring a version");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)index);
    sqlite3_bind_int64(st, 2, seq);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, b->writer.db, "anchoring a version");
    return 0;
}

/* ------------------------------------------------------------------------
 * Facets of versions written before migration 005, and index rows of the
 * current versions written before migration 007
 * ---------------------------------------------------------------------- */

/* A current version indexed again (migration 007): its index rows, and any
 * patient compartment the fhir module now finds that it did not then (an
 * absolute reference under this server's base). */
static int reindex(vl_backend_t *b, const char *type, int64_t seq, const vl_index_t *ix,
                   vl_store_err_t *err)
{
    return insert_index(b, type, seq, ix, err) < 0 ? -1 : insert_patient_ids(b, seq, ix, err);
}

int vl_sqlite_pending(vl_backend_t *b, uint64_t *n, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(b->writer.db,
                           "SELECT (SELECT count(*) FROM facets_pending) +"
                           " (SELECT count(*) FROM reindex_pending)",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, b->writer.db, "counting pending versions");
    if (sqlite3_step(st) == SQLITE_ROW)
        *n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

int vl_sqlite_facets_backfill(vl_backend_t *b, vl_store_facets_fn fn, void *ctx, size_t max,
                              size_t *n, vl_store_err_t *err)
{
    static const char *const pick[] = {
        "SELECT p.seq, r.type, v.body, v.rid FROM facets_pending p"
        " JOIN resource_version v ON v.seq = p.seq"
        " JOIN resource r ON r.rid = v.rid ORDER BY p.seq LIMIT ?1",
        "SELECT p.seq, r.type, v.body, v.rid FROM reindex_pending p"
        " JOIN resource_version v ON v.seq = p.seq"
        " JOIN resource r ON r.rid = v.rid ORDER BY p.seq LIMIT ?1",
    };
    static const char *const done_sql[] = {"DELETE FROM facets_pending WHERE seq = ?1",
                                           "DELETE FROM reindex_pending WHERE seq = ?1"};
    sqlite3 *db = b->writer.db;
    sqlite3_stmt *st = NULL, *del = NULL;
    int rc = -1, step, mode;
    *n = 0;
    /* the batch is read whole before anything is written: no table is
     * changed while a statement scans it */
    typedef struct pending {
        int64_t seq;
        char *type, *body;
        size_t len;
    } pending_t;
    pending_t *list = calloc(max, sizeof *list);
    size_t count = 0;
    if (!list)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    for (mode = 0; mode < 2 && count == 0; mode++) {
        sqlite3_finalize(st);
        st = NULL;
        if (sqlite3_prepare_v2(db, pick[mode], -1, &st, NULL) != SQLITE_OK) {
            vl_sqlite_error(err, db, "reading versions to index");
            goto out;
        }
        sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
        while (count < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
            pending_t *p = &list[count++];
            const void *body = sqlite3_column_blob(st, 2);
            p->seq = sqlite3_column_int64(st, 0);
            p->type = strdup((const char *)sqlite3_column_text(st, 1));
            p->len = (size_t)sqlite3_column_bytes(st, 2);
            p->body = malloc(p->len + 1);
            if (!p->type || !p->body) {
                vl_store_fail(err, VL_STORE_FAILED, "out of memory");
                goto out;
            }
            if (p->len)
                memcpy(p->body, body, p->len);
            p->body[p->len] = '\0';
        }
    }
    mode--; /* the table the batch came from */
    sqlite3_finalize(st);
    st = NULL;
    if (count && sqlite3_prepare_v2(db, done_sql[mode], -1, &del, NULL) != SQLITE_OK) {
        vl_sqlite_error(err, db, "marking versions indexed");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        vl_index_t ix;
        int bad;
        vl_index_init(&ix);
        bad = list[i].len && fn(ctx, list[i].type, list[i].body, list[i].len, &ix) < 0;
        if (!bad && (mode == 0 ? vl_sqlite_insert_facets(b, list[i].seq, &ix, 0, 0, err)
                               : reindex(b, list[i].type, list[i].seq, &ix, err)) < 0) {
            vl_index_free(&ix);
            goto out;
        }
        vl_index_free(&ix);
        if (bad) {
            vl_store_fail(err, VL_STORE_FAILED, "indexing %s version %lld failed", list[i].type,
                          (long long)list[i].seq);
            goto out;
        }
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, list[i].seq);
        if (sqlite3_step(del) != SQLITE_DONE) {
            vl_sqlite_error(err, db, "marking versions indexed");
            goto out;
        }
    }
    *n = count;
    rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_finalize(del);
    for (size_t i = 0; i < count; i++) {
        free(list[i].type);
        free(list[i].body);
    }
    free(list);
    return rc;
}
