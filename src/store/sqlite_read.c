/*
 * The SQLite backend's reads (backend.h): records, history, the records
 * export and the ledger. Each runs on the connection it is given: a
 * thread's reader (committed state) or the writer (a unit's own view).
 *
 * Scopes: a read under VL_SCOPE_ALL uses cached statements; any other
 * scope adds the visibility condition of vl_sqlq_scope() on the version
 * (sqlite_query.c) to a statement built for the call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

/* ------------------------------------------------------------------------
 * Records
 * ---------------------------------------------------------------------- */

static int read_one(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                    int64_t version, vl_record_t *out, vl_store_err_t *err);

static int read_scoped(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                       int64_t version, sqlite3_stmt **out, vl_store_err_t *err)
{
    vl_sqlq_t *q = vl_sqlq_new(c);
    int rc;
    vl_sqlq_sql(q, "SELECT " VL_SQLITE_RECORD_COLUMNS " FROM resource r JOIN resource_version v"
                   " ON v.rid = r.rid");
    if (version <= 0)
        vl_sqlq_sql(q, " AND v.version = r.version");
    vl_sqlq_sql(q, " WHERE r.type = ");
    vl_sqlq_text(q, type);
    vl_sqlq_sql(q, " AND r.id = ");
    vl_sqlq_text(q, id);
    if (version > 0) {
        vl_sqlq_sql(q, " AND v.version = ");
        vl_sqlq_int(q, version);
    }
    vl_sqlq_scope(q, scope, "v.seq");
    rc = vl_sqlq_prepare(q, out, err);
    vl_sqlq_free(q);
    return rc;
}

/* The rules of `scope` that can matter for one version: those of the
 * patients in whose compartments it is (a clinic's scope holds a rule per
 * consenting patient; a read by id needs those of one or two). The
 * compartments are read first, in the same read transaction as the record
 * (vl_sqlite_read), so both see one state. Fills `kept` (malloc'd, caller
 * frees) and returns the pruned scope; on failure the scope unchanged. */
static vl_scope_t prune_rules(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                              int64_t version, vl_scope_rule_t **kept)
{
    const char *patients[8];
    size_t n = 0, k = 0;
    vl_store_err_t ignored = VL_STORE_ERR_INIT;
    sqlite3_stmt *st =
        version > 0 ? vl_sqlite_stmt(c, ST_READ_COMPARTMENTS_VERSION,
                                     "SELECT vp.patient FROM resource r JOIN resource_version v"
                                     " ON v.rid = r.rid AND v.version = ?3 JOIN version_patient vp"
                                     " ON vp.seq = v.seq WHERE r.type = ?1 AND r.id = ?2",
                                     &ignored)
                    : vl_sqlite_stmt(c, ST_READ_COMPARTMENTS_CURRENT,
                                     "SELECT vp.patient FROM resource r JOIN resource_version v"
                                     " ON v.rid = r.rid AND v.version = r.version JOIN"
                                     " version_patient vp ON vp.seq = v.seq WHERE r.type = ?1 AND"
                                     " r.id = ?2 AND ?3 = 0",
                                     &ignored);
    char *copies[8];
    int rc;
    *kept = NULL;
    if (!st)
        return scope;
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, version > 0 ? version : 0);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 8) {
        copies[n] = strdup((const char *)sqlite3_column_text(st, 0));
        if (!copies[n])
            break;
        patients[n] = copies[n];
        n++;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW || (rc != SQLITE_DONE && rc != SQLITE_ROW) ||
        !(*kept = malloc((scope.n_rules ? scope.n_rules : 1) * sizeof **kept))) {
        /* more compartments than we keep, or a failure: all the rules */
        for (size_t i = 0; i < n; i++)
            free(copies[i]);
        free(*kept);
        *kept = NULL;
        return scope;
    }
    for (size_t r = 0; r < scope.n_rules; r++)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(scope.rules[r].patient, patients[i])) {
                (*kept)[k++] = scope.rules[r];
                break;
            }
    /* the kept rules point at the caller's strings, not at the copies */
    for (size_t i = 0; i < n; i++)
        free(copies[i]);
    scope.rules = *kept;
    scope.n_rules = k;
    return scope;
}

int vl_sqlite_read(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                   int64_t version, vl_record_t *out, vl_store_err_t *err)
{
    vl_scope_rule_t *kept = NULL;
    int began = 0, ret;
    if (!(scope.flags & VL_SCOPE_ALL) && scope.n_rules > 1) {
        /* one read transaction for the compartments and the record (on a
         * reader; the writer is inside its own already) */
        began = sqlite3_get_autocommit(c->db) &&
                sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
        scope = prune_rules(c, scope, type, id, version, &kept);
    }
    ret = read_one(c, scope, type, id, version, out, err);
    if (began)
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    free(kept);
    return ret;
}

static int read_one(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                    int64_t version, vl_record_t *out, vl_store_err_t *err)
{
    sqlite3_stmt *st;
    int rc, cached = (scope.flags & VL_SCOPE_ALL) != 0 && !scope.n_categories && !scope.n_types;
    /* one patient's compartment (a patient's own reads): cached statements
     * too, with the patient bound */
    int one_patient = !cached && scope.n_patients == 1 && scope.patients && !scope.n_rules &&
                      !scope.n_refs && !scope.n_categories && !scope.n_types;
#define ONE_PATIENT                                                                                \
    " AND (EXISTS (SELECT 1 FROM version_patient vp WHERE vp.seq = v.seq AND vp.patient = ?4)"     \
    " OR (?5 AND NOT EXISTS (SELECT 1 FROM version_patient vp WHERE vp.seq = v.seq)))"
    memset(out, 0, sizeof *out);
    if (one_patient) {
        st = version > 0 ? vl_sqlite_stmt(c, ST_READ_PATIENT_VERSION,
                                          "SELECT " VL_SQLITE_RECORD_COLUMNS
                                          " FROM resource r JOIN resource_version v"
                                          " ON v.rid = r.rid WHERE r.type = ?1 AND r.id = ?2"
                                          " AND v.version = ?3" ONE_PATIENT,
                                          err)
                         : vl_sqlite_stmt(c, ST_READ_PATIENT_CURRENT,
                                          "SELECT " VL_SQLITE_RECORD_COLUMNS
                                          " FROM resource r JOIN resource_version v"
                                          " ON v.rid = r.rid AND v.version = r.version"
                                          " WHERE r.type = ?1 AND r.id = ?2 AND ?3 = 0" ONE_PATIENT,
                                          err);
        if (!st)
            return -1;
        sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, version > 0 ? version : 0);
        sqlite3_bind_text(st, 4, scope.patients[0], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, (scope.flags & VL_SCOPE_SHARED) != 0);
        cached = 1;
    } else if (cached) {
        st = version > 0 ? vl_sqlite_stmt(c, ST_READ_VERSION,
                                          "SELECT " VL_SQLITE_RECORD_COLUMNS
                                          " FROM resource r JOIN resource_version v"
                                          " ON v.rid = r.rid WHERE r.type = ?1 AND r.id = ?2"
                                          " AND v.version = ?3",
                                          err)
                         : vl_sqlite_stmt(c, ST_READ_CURRENT,
                                          "SELECT " VL_SQLITE_RECORD_COLUMNS
                                          " FROM resource r JOIN resource_version v"
                                          " ON v.rid = r.rid AND v.version = r.version"
                                          " WHERE r.type = ?1 AND r.id = ?2",
                                          err);
        if (!st)
            return -1;
        sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        if (version > 0)
            sqlite3_bind_int64(st, 3, version);
    } else if (read_scoped(c, scope, type, id, version, &st, err) < 0) {
        return -1;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = vl_sqlite_row_to_record(st, out) < 0 ? SQLITE_NOMEM : SQLITE_ROW;
    if (cached)
        sqlite3_reset(st);
    else
        vl_sqlq_release(c, st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_NOMEM)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, c->db, "reading a resource");
    if (version > 0)
        return vl_store_fail(err, VL_STORE_NOT_FOUND, "%s/%s has no version %lld", type, id,
                             (long long)version);
    return vl_store_fail(err, VL_STORE_NOT_FOUND, "%s/%s is not known", type, id);
#undef ONE_PATIENT
}

/* FROM/WHERE of a history: versions of a type or of one resource. */
static void history_where(vl_sqlq_t *q, vl_scope_t scope, const char *type, const char *id,
                          int64_t since_us)
{
    vl_sqlq_sql(q, " FROM resource r JOIN resource_version v ON v.rid = r.rid WHERE r.type = ");
    vl_sqlq_text(q, type);
    if (id) {
        vl_sqlq_sql(q, " AND r.id = ");
        vl_sqlq_text(q, id);
    }
    if (since_us) {
        vl_sqlq_sql(q, " AND v.last_updated >= ");
        vl_sqlq_int(q, since_us);
    }
    vl_sqlq_scope(q, scope, "v.seq");
}

static int count_rows(vl_bconn_t *c, vl_sqlq_t *q, int64_t *n, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (vl_sqlq_prepare(q, &st, err) < 0)
        return -1;
    rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    vl_sqlq_release(c, st);
    if (rc != SQLITE_ROW)
        return vl_sqlite_error(err, c->db, "counting");
    return 0;
}

int vl_sqlite_history(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                      const vl_page_t *page, vl_records_t *out, vl_store_err_t *err)
{
    vl_sqlq_t *q;
    sqlite3_stmt *st = NULL;
    int ret = -1;
    memset(out, 0, sizeof *out);

    q = vl_sqlq_new(c);
    vl_sqlq_sql(q, "SELECT count(*)");
    history_where(q, scope, type, id, page->since_us);
    ret = count_rows(c, q, &out->total, err);
    vl_sqlq_free(q);
    if (ret < 0)
        return -1;
    if (id && out->total == 0) {
        /* unknown (or invisible) resource: 404; known but nothing since _since: empty */
        int64_t any = 0;
        q = vl_sqlq_new(c);
        vl_sqlq_sql(q, "SELECT count(*)");
        history_where(q, scope, type, id, 0);
        ret = count_rows(c, q, &any, err);
        vl_sqlq_free(q);
        if (ret < 0)
            return -1;
        if (!any)
            return vl_store_fail(err, VL_STORE_NOT_FOUND, "%s/%s is not known", type, id);
        return 0;
    }
    if (page->count <= 0)
        return 0;
    q = vl_sqlq_new(c);
    vl_sqlq_sql(q, "SELECT " VL_SQLITE_RECORD_COLUMNS);
    history_where(q, scope, type, id, page->since_us);
    vl_sqlq_sql(q, " ORDER BY v.seq DESC LIMIT ");
    vl_sqlq_int(q, page->count);
    vl_sqlq_sql(q, " OFFSET ");
    vl_sqlq_int(q, page->offset > 0 ? page->offset : 0);
    ret = vl_sqlq_prepare(q, &st, err);
    vl_sqlq_free(q);
    if (ret == 0)
        ret = vl_sqlite_collect(c->db, st, page->max_bytes, out, err);
    vl_sqlq_release(c, st);
    if (ret < 0)
        vl_records_free(out);
    return ret;
}

int vl_sqlite_records_scan(vl_bconn_t *c, vl_store_record_fn fn, void *ctx, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT v.ledger_idx, r.type, r.id, v.version, v.salt, v.body"
                           " FROM resource_version v JOIN resource r ON r.rid = v.rid"
                           " ORDER BY v.ledger_idx IS NULL, v.ledger_idx",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "reading records");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char ref[256];
        unsigned char salt[32] = {0};
        int stop;
        snprintf(ref, sizeof ref, "%s/%s/_history/%lld", sqlite3_column_text(st, 1),
                 sqlite3_column_text(st, 2), (long long)sqlite3_column_int64(st, 3));
        if (sqlite3_column_bytes(st, 4) == 32)
            memcpy(salt, sqlite3_column_blob(st, 4), 32);
        stop = fn(ctx,
                  sqlite3_column_type(st, 0) == SQLITE_NULL ? UINT64_MAX
                                                            : (uint64_t)sqlite3_column_int64(st, 0),
                  ref, salt, (const char *)sqlite3_column_blob(st, 5),
                  (size_t)sqlite3_column_bytes(st, 5));
        if (stop) {
            ret = stop;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        vl_sqlite_error(err, c->db, "reading records");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

/* ------------------------------------------------------------------------
 * The ledger
 * ---------------------------------------------------------------------- */

int vl_sqlite_ledger_size(vl_bconn_t *c, uint64_t *size, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(c->db, "SELECT max(idx) FROM ledger_entry", -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "reading the ledger");
    *size = 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *size = (uint64_t)sqlite3_column_int64(st, 0) + 1;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return vl_sqlite_error(err, c->db, "reading the ledger");
    return 0;
}

int vl_sqlite_ledger_node(vl_bconn_t *c, int level, uint64_t index, unsigned char out[VL_HASH_LEN])
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    sqlite3_stmt *st;
    int ok = 0;
    st = level == 0
             ? vl_sqlite_stmt(c, ST_LEDGER_LEAF, "SELECT hash FROM ledger_entry WHERE idx = ?2",
                              &err)
             : vl_sqlite_stmt(c, ST_LEDGER_NODE,
                              "SELECT hash FROM ledger_node WHERE level = ?1 AND idx = ?2", &err);
    if (!st)
        return -1;
    if (level)
        sqlite3_bind_int(st, 1, level);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == VL_HASH_LEN) {
        memcpy(out, sqlite3_column_blob(st, 0), VL_HASH_LEN);
        ok = 1;
    }
    sqlite3_reset(st);
    return ok ? 0 : -1;
}

int vl_sqlite_ledger_entries(vl_bconn_t *c, uint64_t start, vl_bentry_fn fn, void *ctx,
                             vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT idx, line, hash FROM ledger_entry WHERE idx >= ?1 ORDER BY idx",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "reading the ledger");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)start);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        unsigned char hash[VL_HASH_LEN] = {0};
        int stop;
        if (sqlite3_column_bytes(st, 2) == VL_HASH_LEN)
            memcpy(hash, sqlite3_column_blob(st, 2), VL_HASH_LEN);
        else
            hash[0] = 1, hash[1] = 1; /* never a SHA-256 the core will match by chance */
        stop =
            fn(ctx, (uint64_t)sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
               (size_t)sqlite3_column_bytes(st, 1), hash);
        if (stop) {
            ret = stop;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        vl_sqlite_error(err, c->db, "reading the ledger");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int vl_sqlite_ledger_scan(vl_bconn_t *c, uint64_t start, uint64_t end, vl_store_ledger_fn fn,
                          void *ctx, vl_store_err_t *err)
{
    sqlite3_stmt *es = NULL, *cs = NULL;
    int rc, ret = -1, have_cp;
    int own_txn = sqlite3_get_autocommit(c->db);
    if (own_txn && vl_sqlite_exec(c->db, "BEGIN;", err) < 0) /* one snapshot for both cursors */
        return -1;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT idx, line FROM ledger_entry WHERE idx >= ?1 AND idx < ?2"
                           " ORDER BY idx",
                           -1, &es, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "SELECT size, note FROM ledger_checkpoint WHERE size > ?1 AND size <= ?2"
                           " ORDER BY size",
                           -1, &cs, NULL) != SQLITE_OK) {
        vl_sqlite_error(err, c->db, "reading the ledger");
        goto out;
    }
    sqlite3_bind_int64(es, 1, (sqlite3_int64)start);
    sqlite3_bind_int64(es, 2, (sqlite3_int64)end);
    sqlite3_bind_int64(cs, 1, (sqlite3_int64)start);
    sqlite3_bind_int64(cs, 2, (sqlite3_int64)end);
    have_cp = sqlite3_step(cs) == SQLITE_ROW;
    while ((rc = sqlite3_step(es)) == SQLITE_ROW) {
        uint64_t idx = (uint64_t)sqlite3_column_int64(es, 0);
        int stop = fn(ctx, idx, (const char *)sqlite3_column_text(es, 1),
                      (size_t)sqlite3_column_bytes(es, 1), NULL, 0);
        if (stop) {
            ret = stop;
            goto out;
        }
        while (have_cp && (uint64_t)sqlite3_column_int64(cs, 0) == idx + 1) {
            stop = fn(ctx, idx, NULL, 0, (const char *)sqlite3_column_text(cs, 1),
                      (size_t)sqlite3_column_bytes(cs, 1));
            if (stop) {
                ret = stop;
                goto out;
            }
            have_cp = sqlite3_step(cs) == SQLITE_ROW;
        }
    }
    if (rc != SQLITE_DONE) {
        vl_sqlite_error(err, c->db, "reading the ledger");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(es);
    sqlite3_finalize(cs);
    if (own_txn)
        vl_sqlite_exec(c->db, "COMMIT;", NULL);
    return ret;
}

int vl_sqlite_ledger_checkpoint(vl_bconn_t *c, char **note, uint64_t *size, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    *note = NULL;
    *size = 0;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT size, note FROM ledger_checkpoint ORDER BY size DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "reading checkpoints");
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return vl_sqlite_error(err, c->db, "reading checkpoints");
        return vl_store_fail(err, VL_STORE_NOT_FOUND, "the ledger has no checkpoint yet");
    }
    *size = (uint64_t)sqlite3_column_int64(st, 0);
    *note = strdup((const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    if (!*note)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    return 0;
}

int vl_sqlite_ledger_record(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                            int64_t version, uint64_t *index, unsigned char salt[32], char **bytes,
                            size_t *len, vl_store_err_t *err)
{
    vl_sqlq_t *q = vl_sqlq_new(c);
    sqlite3_stmt *st = NULL;
    int ret = -1, rc;
    *bytes = NULL;
    *len = 0;
    vl_sqlq_sql(q, "SELECT v.ledger_idx, v.salt, v.body FROM resource r JOIN resource_version v"
                   " ON v.rid = r.rid WHERE r.type = ");
    vl_sqlq_text(q, type);
    vl_sqlq_sql(q, " AND r.id = ");
    vl_sqlq_text(q, id);
    vl_sqlq_sql(q, " AND v.version = ");
    vl_sqlq_int(q, version);
    vl_sqlq_scope(q, scope, "v.seq");
    rc = vl_sqlq_prepare(q, &st, err);
    vl_sqlq_free(q);
    if (rc < 0)
        return -1;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc != SQLITE_DONE)
            vl_sqlite_error(err, c->db, "reading a record's ledger entry");
        else
            vl_store_fail(err, VL_STORE_NOT_FOUND, "%s/%s has no version %lld", type, id,
                          (long long)version);
        goto out;
    }
    if (sqlite3_column_type(st, 0) == SQLITE_NULL || sqlite3_column_bytes(st, 1) != 32) {
        vl_store_fail(err, VL_STORE_NOT_FOUND, "%s/%s/_history/%lld has no ledger entry", type, id,
                      (long long)version);
        goto out;
    }
    *index = (uint64_t)sqlite3_column_int64(st, 0);
    memcpy(salt, sqlite3_column_blob(st, 1), 32);
    *len = (size_t)sqlite3_column_bytes(st, 2);
    *bytes = malloc(*len + 1);
    if (!*bytes) {
        vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        goto out;
    }
    if (*len)
        memcpy(*bytes, sqlite3_column_blob(st, 2), *len);
    (*bytes)[*len] = '\0';
    ret = 0;
out:
    vl_sqlq_release(c, st);
    return ret;
}

int vl_sqlite_ledger_rotations(vl_bconn_t *c, vl_store_rotation_fn fn, void *ctx,
                               vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;
    if (sqlite3_prepare_v2(c->db, "SELECT idx, vkey FROM ledger_rotation ORDER BY idx", -1, &st,
                           NULL) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "reading key rotations");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int stop = fn(ctx, (uint64_t)sqlite3_column_int64(st, 0),
                      (const char *)sqlite3_column_text(st, 1));
        if (stop) {
            ret = stop;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        vl_sqlite_error(err, c->db, "reading key rotations");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}
