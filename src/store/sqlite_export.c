/*
 * Bulk export on SQLite: the store as of one version sequence number
 * (include/vitalog/store.h, "Bulk export: snapshots"; fhir/export.c is
 * the caller).
 *
 * DESIGN NOTES
 *
 * 1. A snapshot is a number S: the seq (resource_version's INTEGER
 *    PRIMARY KEY) of the last version committed when it was taken. Seqs
 *    only grow (the single writer appends rows, never deletes one, and a
 *    rolled-back seq is reused only by a later commit), and the rows of a
 *    version with seq <= S (its body, version_patient, version_code,
 *    version_time) never change once committed. So any statement bounded
 *    by S reads the same answer whenever it runs: pages read minutes
 *    apart, in separate read transactions, are one consistent export.
 *
 * 2. "Current as of S": version v of a resource is the one a reader at S
 *    saw when v.seq <= S and the resource has no later version with
 *    seq <= S. Versions of a resource are numbered 1, 2, 3 ... and each is
 *    written after the one before (a put must be head.version + 1), so
 *    "no later version" is "no version v.version + 1 with seq <= S": one
 *    probe of UNIQUE (rid, version) per candidate row. A version that is
 *    a delete is current but exported as nothing.
 *
 * 3. Plans (EXPLAIN QUERY PLAN, checked on a generated database):
 *      SEARCH v USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)
 *      CORRELATED SCALAR SUBQUERY: SEARCH n USING COVERING INDEX
 *          sqlite_autoindex_resource_version_1 (rid=? AND version=?)
 *      SEARCH r USING INTEGER PRIMARY KEY (rowid=?)
 *    The versions are the outer loop (CROSS JOIN keeps SQLite from
 *    driving the join from resource's (type, id) index, which would sort
 *    a whole type for every page), read in seq order, so a page is a key
 *    range "seq > last" (never OFFSET) and stops after its LIMIT. A
 *    snapshot of one patient is driven by version_patient_by_patient
 *    (patient, seq) instead: a range of that patient's versions only.
 *    A type's scan reads the versions of every type (resource_version has
 *    no type): an export of a rare type in a large store reads the table
 *    once; a count of all types reads it once for all of them.
 *
 * 4. Scopes: vl_sqlq_scope() on v.seq, the version as of S: its
 *    compartments and consent facets are those of that version. The
 *    scope's reference list (a clinic's Consents that name it) is matched
 *    on the current version, as in every read.
 */
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

/* FROM and WHERE of the snapshot's versions of `types` (n_types > 0) with
 * seq in (from, to], in the scope; `join` (or "") joins more tables. */
static void snapshot_from(vl_sqlq_t *q, vl_scope_t scope, const vl_export_query_t *snap,
                          const char *const *types, size_t n_types, int64_t from, int64_t to,
                          const char *join)
{
    const char *seq = snap->patient ? "pc.seq" : "v.seq";
    if (snap->patient)
        vl_sqlq_sql(q, " FROM version_patient pc CROSS JOIN resource_version v ON v.seq = pc.seq"
                       " CROSS JOIN resource r ON r.rid = v.rid");
    else
        vl_sqlq_sql(q, " FROM resource_version v CROSS JOIN resource r ON r.rid = v.rid");
    vl_sqlq_sql(q, join);
    vl_sqlq_sql(q, " WHERE ");
    if (snap->patient) {
        vl_sqlq_sql(q, "pc.patient = ");
        vl_sqlq_text(q, snap->patient);
        vl_sqlq_sql(q, " AND ");
    }
    vl_sqlq_sql(q, seq);
    vl_sqlq_sql(q, " > ");
    vl_sqlq_int(q, from);
    vl_sqlq_sql(q, " AND ");
    vl_sqlq_sql(q, seq);
    vl_sqlq_sql(q, " <= ");
    vl_sqlq_int(q, to < snap->seq ? to : snap->seq);
    vl_sqlq_sql(q, " AND v.deleted = 0");
    vl_sqlq_snapshot(q, "v.seq", snap->seq);
    if (snap->since_us) {
        vl_sqlq_sql(q, " AND v.last_updated >= ");
        vl_sqlq_int(q, snap->since_us);
    }
    vl_sqlq_sql(q, n_types == 1 ? " AND r.type = " : " AND r.type IN (");
    for (size_t i = 0; i < n_types; i++) {
        if (i)
            vl_sqlq_sql(q, ", ");
        vl_sqlq_text(q, types[i]);
    }
    if (n_types > 1)
        vl_sqlq_sql(q, ")");
    if (snap->compartments && !snap->patient)
        vl_sqlq_sql(q, " AND EXISTS (SELECT 1 FROM version_patient vc WHERE vc.seq = v.seq"
                       " AND vc.patient <> '')");
    vl_sqlq_scope(q, scope, "v.seq");
}

int vl_sqlite_export_seq(vl_bconn_t *c, int64_t *seq, int64_t *time_us, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    *seq = 0;
    *time_us = 0;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT seq, last_updated FROM resource_version ORDER BY seq DESC"
                           " LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "preparing the snapshot");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
        *time_us = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return vl_sqlite_error(err, c->db, "taking the snapshot");
    return 0;
}

int vl_sqlite_export_count(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *snap,
                           const char *const *types, size_t n_types, int64_t from, int64_t to,
                           int64_t *counts, vl_store_err_t *err)
{
    vl_sqlq_t *q;
    sqlite3_stmt *st = NULL;
    int rc;
    if (!n_types || from >= to || from >= snap->seq)
        return 0;
    q = vl_sqlq_new(c);
    vl_sqlq_sql(q, "SELECT r.type, count(*)");
    snapshot_from(q, scope, snap, types, n_types, from, to, "");
    vl_sqlq_sql(q, " GROUP BY r.type");
    rc = vl_sqlq_prepare(q, &st, err);
    vl_sqlq_free(q);
    if (rc < 0)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        for (size_t i = 0; type && i < n_types; i++)
            if (!strcmp(types[i], type))
                counts[i] += sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE)
        vl_sqlite_error(err, c->db, "counting a snapshot");
    vl_sqlq_release(c, st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int vl_sqlite_export_page(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *snap,
                          const char *type, int64_t after, size_t max, size_t max_bytes,
                          vl_records_t *out, int64_t *last, vl_store_err_t *err)
{
    vl_sqlq_t *q;
    sqlite3_stmt *st = NULL;
    size_t bytes = 0;
    int rc;
    *last = after;
    if (!max || after >= snap->seq)
        return 0;
    q = vl_sqlq_new(c);
    vl_sqlq_sql(q, "SELECT " VL_SQLITE_RECORD_COLUMNS ", v.seq");
    snapshot_from(q, scope, snap, &type, 1, after, snap->seq, "");
    vl_sqlq_sql(q, snap->patient ? " ORDER BY pc.seq LIMIT " : " ORDER BY v.seq LIMIT ");
    vl_sqlq_int(q, (int64_t)max);
    rc = vl_sqlq_prepare(q, &st, err);
    vl_sqlq_free(q);
    if (rc < 0)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (vl_grow(&out->items, &out->cap, out->n + 1, sizeof *out->items) < 0 ||
            vl_sqlite_row_to_record(st, &out->items[out->n]) < 0) {
            vl_sqlq_release(c, st);
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        }
        bytes += out->items[out->n++].body_len;
        *last = sqlite3_column_int64(st, 7);
        if (max_bytes && bytes >= max_bytes) {
            rc = SQLITE_DONE; /* the next page goes on after *last */
            break;
        }
    }
    if (rc != SQLITE_DONE)
        vl_sqlite_error(err, c->db, "reading a snapshot");
    vl_sqlq_release(c, st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int vl_sqlite_export_patients(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *snap,
                              const char *type, vl_store_patient_fn fn, void *ctx,
                              vl_store_err_t *err)
{
    vl_sqlq_t *q;
    sqlite3_stmt *st = NULL;
    int rc, stop = 0;
    if (snap->seq <= 0)
        return 0;
    q = vl_sqlq_new(c);
    /* every compartment of each version: a record of one patient's that
     * names another is in both */
    vl_sqlq_sql(q, "SELECT DISTINCT p.patient");
    snapshot_from(q, scope, snap, &type, 1, 0, snap->seq,
                  " CROSS JOIN version_patient p ON p.seq = v.seq");
    vl_sqlq_sql(q, " AND p.patient <> ''");
    rc = vl_sqlq_prepare(q, &st, err);
    vl_sqlq_free(q);
    if (rc < 0)
        return -1;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW)
        stop = fn(ctx, (const char *)sqlite3_column_text(st, 0));
    if (!stop && rc != SQLITE_DONE)
        vl_sqlite_error(err, c->db, "reading the patients of a snapshot");
    vl_sqlq_release(c, st);
    return stop ? stop : rc == SQLITE_DONE ? 0 : -1;
}

const vl_backend_export_ops_t vl_backend_sqlite_export = {
    .seq = vl_sqlite_export_seq,
    .count = vl_sqlite_export_count,
    .page = vl_sqlite_export_page,
    .patients = vl_sqlite_export_patients,
};
