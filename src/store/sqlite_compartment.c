/*
 * vitalog — store/sqlite_compartment.c: pages of a patient's compartment
 * as of a snapshot (vl_store_compartment_page), for Patient/{id}/$everything.
 *
 * DESIGN NOTES
 *
 * 1. Members. A version is a member of Patient/p's compartment when
 *    version_patient has the row (seq, p) for it (schemas/003: the fhir
 *    module's R4 CompartmentDefinition, kept per version; a delete keeps
 *    the compartments of the version it deletes). A page lists members
 *    that are current as of the snapshot, not deleted, pass the query's
 *    filters (type, lastUpdated, facet time) and are visible in the scope
 *    (vl_sqlq_scope on v.seq, the same condition every read takes; for
 *    the compartment of one of the scope's own patients that condition
 *    holds for every member, and only the scope's categories are added).
 *
 * 2. The snapshot. Current "as of S" means: version v counts when
 *    v.seq <= S and its resource has no later version with seq <= S. Two
 *    invariants of the writer make this exact and cheap:
 *      (a) seq, the INTEGER PRIMARY KEY of resource_version, grows with
 *          commit order: the single writer inserts at max(seq) + 1 and no
 *          version row is ever deleted, so every version committed after
 *          a reader saw max(seq) = S has a seq > S;
 *      (b) a resource's versions are 1, 2, 3, ... in the order they are
 *          written (vl_store_txn_put takes head.version + 1 only), so
 *          "a later version with seq <= S" is "version v + 1 with
 *          seq <= S": one probe of the UNIQUE (rid, version) index.
 *    S itself is the highest committed seq when the first page was read
 *    (vl_sqlite_snapshot_seq, in the read transaction of that page). Every later
 *    page of the same S reads the same members, whatever was written in
 *    between: a write makes a version with a seq > S, which no page of S
 *    lists, and the version it replaces stays current as of S.
 *
 * 3. Order and keys. The patient's own Patient resource comes first, with
 *    key VL_COMPARTMENT_SELF_KEY (0); every other member follows in the
 *    order of its version's seq, which is its key (>= 1). A forward page
 *    holds the q->count members with key > q->key, a backward page the
 *    q->count members with key < q->key nearest to it; both are returned
 *    in ascending order. The other members are read through the index
 *    version_patient_by_patient (patient, seq): a key range in key order
 *    that the LIMIT stops after count + 1 rows, never an OFFSET; the
 *    Patient itself through resource (type, id).
 *
 *      forward  (key K):  [self if K < 0] [others seq > K, ascending]
 *      backward (key K):  [self if K > 0 and room] [others seq < K, the
 *                          nearest read descending, then reversed]
 *
 * 4. `more` is exact: once a page is full (count records, or max_bytes of
 *    bodies), one more row is stepped in the direction read (for a
 *    backward page that ends at the others, the Patient itself is
 *    probed).
 *
 * 5. The total (with_total) counts every member of the query, any key:
 *    the Patient itself (0 or 1) plus the others, the latter bounded by
 *    VL_TOTAL_BOUND under VL_TOTAL_BOUNDED (beyond it: -1, unknown).
 *
 * 6. One read transaction (on a reader: BEGIN ... COMMIT around the
 *    snapshot, the count and the page), so that the parts of the scope
 *    that look at current rows (the Consents that name a clinic) answer
 *    from one state. Every statement is reset before the COMMIT.
 */
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

/* The conditions every member of the query meets, on the version `v` of
 * resource `r` (design notes 1 and 2): " AND ..." appended. */
static void member_conds(vl_sqlq_t *q, vl_scope_t scope, const vl_compartment_query_t *cq,
                         int64_t snap)
{
    vl_sqlq_sql(q, " AND v.deleted = 0");
    vl_sqlq_snapshot(q, "v.seq", snap);
    if (cq->n_types) {
        vl_sqlq_sql(q, " AND r.type IN (");
        for (size_t i = 0; i < cq->n_types; i++) {
            if (i)
                vl_sqlq_sql(q, ", ");
            vl_sqlq_text(q, cq->types[i]);
        }
        vl_sqlq_sql(q, ")");
    }
    if (cq->since_us) {
        vl_sqlq_sql(q, " AND v.last_updated >= ");
        vl_sqlq_int(q, cq->since_us);
    }
    if (cq->has_period) {
        /* a version with a facet time that does not overlap [lo, hi) is
         * left out; one without is kept (version_time: at most one row) */
        vl_sqlq_sql(q, " AND NOT EXISTS (SELECT 1 FROM version_time t WHERE t.seq = v.seq"
                       " AND (t.lo >= ");
        vl_sqlq_int(q, cq->hi);
        vl_sqlq_sql(q, " OR t.hi <= ");
        vl_sqlq_int(q, cq->lo);
        vl_sqlq_sql(q, "))");
    }
    vl_sqlq_scope(q, scope, "v.seq");
}

/* The statement of the Patient itself as of the snapshot (0 or 1 row):
 * the record columns and the seq. */
static int self_stmt(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *cq,
                     int64_t snap, sqlite3_stmt **st, vl_store_err_t *err)
{
    vl_sqlq_t *q = vl_sqlq_new(c);
    int rc;
    vl_sqlq_sql(q, "SELECT " VL_SQLITE_RECORD_COLUMNS ", v.seq FROM resource r JOIN"
                   " resource_version v ON v.rid = r.rid WHERE r.type = 'Patient' AND r.id = ");
    vl_sqlq_text(q, cq->patient);
    vl_sqlq_sql(q, " AND v.seq <= ");
    vl_sqlq_int(q, snap);
    vl_sqlq_sql(q, " AND EXISTS (SELECT 1 FROM version_patient vp WHERE vp.seq = v.seq"
                   " AND vp.patient = ");
    vl_sqlq_text(q, cq->patient);
    vl_sqlq_sql(q, ")");
    member_conds(q, scope, cq, snap);
    vl_sqlq_sql(q, " LIMIT 1");
    rc = vl_sqlq_prepare(q, st, err);
    vl_sqlq_free(q);
    return rc;
}

/* The members other than the Patient itself: with `counting`, the count
 * of all of them (bounded by `bound` + 1 when bound > 0); else the rows
 * with seq > key (seq < key when `desc`, read descending), at most
 * `limit`. */
static int others_stmt(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *cq,
                       int64_t snap, int counting, int64_t bound, int desc, int64_t key,
                       int64_t limit, sqlite3_stmt **st, vl_store_err_t *err)
{
    vl_sqlq_t *q = vl_sqlq_new(c);
    int rc;
    vl_sqlq_sql(q, counting ? "SELECT count(*) FROM (SELECT 1"
                            : "SELECT " VL_SQLITE_RECORD_COLUMNS ", v.seq");
    vl_sqlq_sql(q, " FROM version_patient vp JOIN resource_version v ON v.seq = vp.seq"
                   " JOIN resource r ON r.rid = v.rid WHERE vp.patient = ");
    vl_sqlq_text(q, cq->patient);
    vl_sqlq_sql(q, " AND vp.seq <= ");
    vl_sqlq_int(q, snap);
    if (!counting) {
        vl_sqlq_sql(q, desc ? " AND vp.seq < " : " AND vp.seq > ");
        vl_sqlq_int(q, key);
    }
    vl_sqlq_sql(q, " AND NOT (r.type = 'Patient' AND r.id = ");
    vl_sqlq_text(q, cq->patient);
    vl_sqlq_sql(q, ")");
    member_conds(q, scope, cq, snap);
    if (counting) {
        if (bound > 0) {
            vl_sqlq_sql(q, " LIMIT ");
            vl_sqlq_int(q, bound + 1);
        }
        vl_sqlq_sql(q, ")");
    } else {
        vl_sqlq_sql(q, desc ? " ORDER BY vp.seq DESC LIMIT " : " ORDER BY vp.seq LIMIT ");
        vl_sqlq_int(q, limit);
    }
    rc = vl_sqlq_prepare(q, st, err);
    vl_sqlq_free(q);
    return rc;
}

/* What a page has taken so far. */
typedef struct acc {
    vl_records_t *out;
    int room;                    /* records it may still take */
    size_t max_bytes;            /* 0: none */
    size_t bytes;                /* of the bodies taken */
    int64_t first_seq, last_seq; /* of the rows taken by take() in the order read (-1: none) */
} acc_t;

static int full(const acc_t *a)
{
    return a->room <= 0 || (a->max_bytes && a->bytes >= a->max_bytes);
}

/* Steps `st` (columns RECORD_COLUMNS, then the seq), appending records
 * until the page is full or the rows end; *more: a further row exists. */
static int take(sqlite3 *db, sqlite3_stmt *st, acc_t *a, int *more, vl_store_err_t *err)
{
    int rc;
    vl_records_t *out = a->out;
    *more = 0;
    while (!full(a)) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return vl_sqlite_error(err, db, "reading a compartment page");
        /* a record whose body could not be copied holds nothing to free */
        if (vl_grow(&out->items, &out->cap, out->n + 1, sizeof *out->items) < 0 ||
            vl_sqlite_row_to_record(st, &out->items[out->n]) < 0)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        a->bytes += out->items[out->n].body_len;
        out->n++;
        a->room--;
        a->last_seq = sqlite3_column_int64(st, 7);
        if (a->first_seq < 0)
            a->first_seq = a->last_seq;
    }
    rc = sqlite3_step(st); /* full: is there one more? */
    if (rc == SQLITE_ROW)
        *more = 1;
    else if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, db, "reading a compartment page");
    return 0;
}

/* The Patient itself onto the page (if it is a member of the query and
 * the page has room): *found whether it exists at all, *taken whether it
 * went onto the page. */
static int take_self(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *cq,
                     int64_t snap, acc_t *a, int *found, int *taken, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, room = a->room;
    int64_t first = a->first_seq, last = a->last_seq;
    *found = *taken = 0;
    if (self_stmt(c, scope, cq, snap, &st, err) < 0)
        return -1;
    if (full(a)) {
        int step = sqlite3_step(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE) {
            vl_sqlite_error(err, c->db, "reading a compartment page");
            goto out;
        }
        *found = step == SQLITE_ROW;
        rc = 0;
        goto out;
    }
    if (take(c->db, st, a, found, err) < 0)
        goto out;
    *taken = a->room < room;
    *found = *found || *taken;
    /* the Patient's seq is not a key: keep the others' */
    a->first_seq = first;
    a->last_seq = last;
    rc = 0;
out:
    vl_sqlq_release(c, st);
    return rc;
}

/* The others from `key` on in the direction of the page onto it. */
static int take_others(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *cq,
                       int64_t snap, int desc, int64_t key, acc_t *a, int *more,
                       vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (others_stmt(c, scope, cq, snap, 0, 0, desc, key, (int64_t)a->room + 1, &st, err) < 0)
        return -1;
    rc = take(c->db, st, a, more, err);
    vl_sqlq_release(c, st);
    return rc;
}

/* The total of the query (design note 5), or -1 beyond the bound. */
static int count_members(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *cq,
                         int64_t snap, int64_t *total, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t bound = cq->with_total == VL_TOTAL_BOUNDED ? VL_TOTAL_BOUND : 0, others = 0;
    int rc, self = 0;
    *total = -1;
    if (others_stmt(c, scope, cq, snap, 1, bound, 0, 0, 0, &st, err) < 0)
        return -1;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        others = sqlite3_column_int64(st, 0);
    vl_sqlq_release(c, st);
    st = NULL;
    if (rc != SQLITE_ROW)
        return vl_sqlite_error(err, c->db, "counting a compartment");
    if (self_stmt(c, scope, cq, snap, &st, err) < 0)
        return -1;
    rc = sqlite3_step(st);
    self = rc == SQLITE_ROW;
    vl_sqlq_release(c, st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return vl_sqlite_error(err, c->db, "counting a compartment");
    *total = bound && others > bound ? -1 : others + self;
    return 0;
}

/* Reverses the records of a backward page into ascending order. */
static void reverse(vl_records_t *r)
{
    for (size_t i = 0, j = r->n; i + 1 < j; i++, j--) {
        vl_record_t t = r->items[i];
        r->items[i] = r->items[j - 1];
        r->items[j - 1] = t;
    }
}

static int read_page(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *cq,
                     int64_t snap, vl_compartment_page_t *out, vl_store_err_t *err)
{
    acc_t a = {&out->records, cq->count, cq->max_bytes, 0, -1, -1};
    int found = 0, taken = 0, more = 0;
    if (cq->with_total && count_members(c, scope, cq, snap, &out->records.total, err) < 0)
        return -1;
    if (!cq->backward) {
        if (cq->key < VL_COMPARTMENT_SELF_KEY &&
            take_self(c, scope, cq, snap, &a, &found, &taken, err) < 0)
            return -1;
        if (take_others(c, scope, cq, snap, 0, cq->key < 1 ? 0 : cq->key, &a, &more, err) < 0)
            return -1;
        out->more = more;
        out->first_key = taken ? VL_COMPARTMENT_SELF_KEY : a.first_seq;
        out->last_key = a.last_seq >= 0 ? a.last_seq : taken ? VL_COMPARTMENT_SELF_KEY : -1;
        return 0;
    }
    if (cq->key <= VL_COMPARTMENT_SELF_KEY)
        return 0; /* nothing comes before the Patient itself */
    if (take_others(c, scope, cq, snap, 1, cq->key, &a, &more, err) < 0)
        return -1;
    /* read nearest first: the first row read is the page's last */
    out->last_key = a.first_seq;
    out->first_key = a.last_seq;
    if (!more) { /* the others before the page are used up: the Patient */
        if (take_self(c, scope, cq, snap, &a, &found, &taken, err) < 0)
            return -1;
        more = found && !taken;
        if (taken) {
            out->first_key = VL_COMPARTMENT_SELF_KEY;
            if (out->last_key < 0)
                out->last_key = VL_COMPARTMENT_SELF_KEY;
        }
    }
    out->more = more;
    reverse(&out->records);
    return 0;
}

int vl_sqlite_compartment_page(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *q,
                               vl_compartment_page_t *out, vl_store_err_t *err)
{
    int began, ret = -1;
    int64_t snap = q->snapshot;
    memset(out, 0, sizeof *out);
    out->records.total = -1;
    out->first_key = out->last_key = -1;
    /* the compartment of one of the scope's own patients (a patient's own
     * record): every member is visible through that patient, so only what
     * holds whatever else (the categories) is left to check */
    for (size_t i = 0; scope.patients && i < scope.n_patients; i++)
        if (!strcmp(scope.patients[i], q->patient)) {
            scope.flags |= VL_SCOPE_ALL;
            break;
        }
    /* one read transaction (design note 6); a reader is in none between
     * calls */
    began = sqlite3_get_autocommit(c->db) &&
            sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    if (!snap && vl_sqlite_snapshot_seq(c, &snap, err) < 0)
        goto out;
    out->snapshot = snap;
    ret = read_page(c, scope, q, snap, out, err);
out:
    if (began)
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    if (ret < 0) {
        vl_records_free(&out->records);
        memset(out, 0, sizeof *out);
        out->records.total = -1;
        out->first_key = out->last_key = -1;
    }
    return ret;
}
