/*
 * The clinical operations on SQLite: $lastn (vl_store_lastn) and $stats
 * (vl_store_series_stats), both answered from a patient's series
 * (ix_series, schemas/007) and, for $stats, the values of its versions
 * (ix_quantity and ix_composite through their (seq, pid) indexes,
 * schemas/008).
 *
 * DESIGN NOTES
 *
 * 1. One read transaction. Each call runs every statement it needs inside
 *    one BEGIN ... COMMIT on its reader (none when it already runs inside
 *    one), so the groups, their pages and the statistics all describe one
 *    committed state: a write that lands between two statements changes
 *    none of them.
 *
 * 2. $lastn groups. A group is (patient, code, system) of the rows of
 *    q->series.code_param in ix_series, whose key is (pid, patient, code,
 *    sid, hi, seq). Groups are enumerated by seeks, never by reading the
 *    series: "the next (code, sid) of this patient after the last one"
 *    (a row value comparison on the key: one B-tree descent each), and
 *    without a patient "the next patient after the last one". Which
 *    patients: q->series.patient; else those the scope names (its
 *    patients, its permit rules' patients: a clinic looks at the series of
 *    the patients whose Consents name it, never at the others'); else,
 *    under VL_SCOPE_ALL, every patient. Which codes: q->series.code when
 *    set, else the codes of the first plain condition on code_param whose
 *    values all have one (each looked up directly: a seek over the sids of
 *    that code), else every code of the patient; every plain condition on
 *    code_param (and q->series.code/system) then keeps only the groups one
 *    of its values matches (token semantics: system NULL any, "" none, a
 *    code NULL any code of the system). Those conditions are taken out of
 *    each group's search: its series rows are of that code and system, so
 *    they hold by construction. Bounds: at most VL_LASTN_SEEKS_MAX seeks,
 *    VL_LASTN_GROUPS_MAX groups and VL_LASTN_RECORDS_MAX (groups x max)
 *    records; beyond any of them the call is TOO_COSTLY before it reads a
 *    single record.
 *
 * 3. $lastn pages. Each group is vl_sqlite_search() of q with the group as
 *    its series and the sort date_param descending, count = max: the
 *    series read backwards from its latest key (undated rows, hi =
 *    VL_SERIES_UNDATED, come last), ties on the time decided by the
 *    version, the one written later first (versions are numbered in
 *    commit order, so this is the later lastUpdated first, and within one
 *    transaction the later entry), so the order is total and repeatable
 *    and a group's page is an index read of `max` rows. (A sort on
 *    _lastUpdated and _id after the time made SQLite read and sort the
 *    whole series: 5 ms for a patient's vital signs on the 10,000,000
 *    database, against 0.3 ms.) The
 *    search applies the scope, the other conditions (date_param ones on the
 *    series' time) and the current-version check, exactly as a search.
 *    Groups are sorted by (patient, code, system URI) and their pages
 *    concatenated; a version already given by an earlier group (a
 *    multi-coded Observation) is left out of the later ones (a set of
 *    "type/id" keys).
 *
 * 4. $stats values. A result is computed over a set of rows (seq, t, x,
 *    unit, sent), the union of its "arms": one arm per series, each the
 *    patient's current, visible versions of one (code, sid) whose time
 *    lies in the period, [lo, hi) containing [s.lo, s.hi) (s.hi > lo
 *    excludes the undated), not of status `exclude_status`, with
 *      own        x the version's value-quantity: the canonical row
 *                 (canon 1) when there is one, else the row as sent; unit
 *                 its UCUM code, or "|" + code for a unit of no UCUM
 *                 system (the composite rows' convention, index.c); sent
 *                 the UCUM code it was sent in;
 *      component  x a composite row of component_param with the
 *                 component's code: its value and unit (canonical when it
 *                 has one; index.c), sent unknown.
 *    An arm of the code asked for joins its values with LEFT JOIN (a
 *    version without a value is a row with x NULL: counted in `total`,
 *    not in `n`); an arm of another series that carries the code as a
 *    component joins them with JOIN (only its versions with such a value
 *    count). The set is one MATERIALIZED common table expression, so each
 *    statement reads the rows once.
 *
 * 5. $stats statements, per result: one for count(DISTINCT seq), count,
 *    sum, min, max, avg, the distinct units and, with VL_STATS_MOMENTS, a
 *    second pass over the same materialized rows for the sums of
 *    (x - mean)^2, ^3, ^4 (two passes: no cancellation of large power
 *    sums); one per rank, `ORDER BY x LIMIT 2 OFFSET k` where k =
 *    floor((n - 1) num / den) in integers, the fraction ((n - 1) num mod
 *    den) / den interpolating between the two values read (R-7, Excel
 *    PERCENTILE.INC, Python statistics.quantiles(method='inclusive'));
 *    one for the sources. Values in more than one unit (two canonical
 *    units: two dimensions, or a unit ucum.c does not know) make the
 *    result `mixed`, and nothing but the counts is computed.
 *
 * 6. $stats arms of a code C (system S): the components of C's versions
 *    in the period (one query, code and system order, at most
 *    VL_STATS_COMPONENTS_MAX) each give a result of one component arm
 *    over C's series; C's own result has the own arm over C's series and
 *    one component arm per other series of the patient whose versions in
 *    the period carry a component coded C. Those are found cheaply: one
 *    seek of ix_composite's key tells whether any version of the store
 *    has such a component (body weight never is one: nothing more is
 *    read); only then are the patient's codes enumerated by seeks (note
 *    2), at most VL_STATS_CODES_MAX, and each probed with one EXISTS over
 *    its rows in the period, the composite probed right after each series
 *    row (a covering probe of ix_composite_seq) before its version is
 *    read. C's own result is left out when C has components and no value
 *    of its own (a panel).
 *
 * 7. Plans (EXPLAIN QUERY PLAN, checked on a database of the bench):
 *    every arm is "SEARCH s USING PRIMARY KEY (pid=? AND patient=? AND
 *    code=? AND sid=? AND hi>? AND hi<?)", then the version and resource
 *    rows by their keys, and "SEARCH q0/q1/k USING COVERING INDEX
 *    ix_quantity_seq / ix_composite_seq (seq=? AND pid=? ...)"; the group
 *    seeks "SEARCH s USING PRIMARY KEY (pid=? AND patient=? AND (code,
 *    sid)>(?,?))". The status exclusion is a probe of ix_token's whole
 *    key. VL_DEBUG_SQL in the environment prints each statement with its
 *    values on stderr, to EXPLAIN by hand.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

#define UCUM "http://unitsofmeasure.org"

/* $lastn: seeks of one call, before it is TOO_COSTLY (design note 2) */
#define VL_LASTN_SEEKS_MAX (10 * VL_LASTN_GROUPS_MAX)
/* $stats: component codes of one code, codes of one patient (note 6) */
#define VL_STATS_COMPONENTS_MAX 64
#define VL_STATS_CODES_MAX 1000

/* ------------------------------------------------------------------------
 * Shared helpers
 * ---------------------------------------------------------------------- */

/* The interned id of "<type>.<param>" (-1: never written, matches no row). */
static int param_id(vl_bconn_t *c, const char *type, const char *param, int64_t *id,
                    vl_store_err_t *err)
{
    char name[160];
    *id = -1;
    if (!param)
        return 0;
    if ((size_t)snprintf(name, sizeof name, "%s.%s", type, param) >= sizeof name)
        return 0;
    return vl_intern_id(c, VL_INTERN_PARAM, name, 0, id, err);
}

/* The sid of a system URI: "" none (0), -1 unknown (matches no row). */
static int system_id(vl_bconn_t *c, const char *system, int64_t *id, vl_store_err_t *err)
{
    *id = 0;
    if (!system || !system[0])
        return 0;
    return vl_intern_id(c, VL_INTERN_SYSTEM, system, 0, id, err);
}

static char *dup_text(const unsigned char *s)
{
    return strdup(s ? (const char *)s : "");
}

/* vl_sqlq_prepare(), and with VL_DEBUG_SQL set in the environment the
 * statement with its values on stderr (for EXPLAIN QUERY PLAN by hand). */
static int prepare(vl_sqlq_t *q, sqlite3_stmt **st, vl_store_err_t *err)
{
    char *sql;
    if (vl_sqlq_prepare(q, st, err) < 0)
        return -1;
    if (getenv("VL_DEBUG_SQL") && (sql = sqlite3_expanded_sql(*st))) {
        fprintf(stderr, "%s;\n", sql);
        sqlite3_free(sql);
    }
    return 0;
}

/* Begins the call's read transaction (design note 1): 1 when it did. */
static int begin_read(vl_bconn_t *c)
{
    return sqlite3_get_autocommit(c->db) &&
           sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
}

static void end_read(vl_bconn_t *c, int began)
{
    if (began)
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
}

/* A scope that skips the per-row visibility probe when the patient's own
 * series is read by a scope naming that patient (every row of
 * "Patient/<id>" is in its compartment), as a search of a series does;
 * categories still apply. */
static vl_scope_t series_scope(vl_scope_t scope, const char *patient)
{
    if (strncmp(patient, "Patient/", 8) != 0)
        return scope;
    for (size_t i = 0; i < scope.n_patients && scope.patients; i++)
        if (!strcmp(scope.patients[i], patient + 8)) {
            scope.flags |= VL_SCOPE_ALL;
            break;
        }
    return scope;
}

/* ------------------------------------------------------------------------
 * Series codes: seeks over ix_series (design note 2)
 * ---------------------------------------------------------------------- */

typedef struct group {
    char *patient; /* "Patient/<id>" */
    char *code;
    int64_t sid;
    char *system; /* its URI, "" for none */
} group_t;

typedef struct groups {
    group_t *items;
    size_t n, cap;
    size_t seeks; /* statements stepped so far */
} groups_t;

static void groups_free(groups_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->items[i].patient);
        free(g->items[i].code);
        free(g->items[i].system);
    }
    free(g->items);
    memset(g, 0, sizeof *g);
}

static int groups_add(groups_t *g, const char *patient, const unsigned char *code, int64_t sid,
                      const unsigned char *uri, vl_store_err_t *err)
{
    group_t *x;
    if (vl_grow(&g->items, &g->cap, g->n + 1, sizeof *g->items) < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    x = &g->items[g->n];
    x->patient = strdup(patient);
    x->code = dup_text(code);
    x->system = dup_text(uri);
    x->sid = sid;
    if (!x->patient || !x->code || !x->system) {
        free(x->patient);
        free(x->code);
        free(x->system);
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    }
    g->n++;
    return 0;
}

/* One seek: the first (code, sid) of `patient`'s series after (code,
 * sid), or with `fixed` the first sid after `sid` of that code. 1 found
 * (into *code, *sid, *uri: malloc'd), 0 none, -1 error. */
static int seek_code(vl_bconn_t *c, int64_t pid, const char *patient, const char *code, int64_t sid,
                     int fixed, char **out_code, int64_t *out_sid, char **out_uri,
                     vl_store_err_t *err)
{
    vl_sqlq_t *q = vl_sqlq_new(c);
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;
    vl_sqlq_sql(q, "SELECT s.code, s.sid, cs.uri FROM ix_series s LEFT JOIN code_system cs"
                   " ON cs.sid = s.sid WHERE s.pid = ");
    vl_sqlq_int(q, pid);
    vl_sqlq_sql(q, " AND s.patient = ");
    vl_sqlq_text(q, patient);
    if (fixed) {
        vl_sqlq_sql(q, " AND s.code = ");
        vl_sqlq_text(q, code);
        vl_sqlq_sql(q, " AND s.sid > ");
        vl_sqlq_int(q, sid);
        vl_sqlq_sql(q, " ORDER BY s.sid LIMIT 1");
    } else {
        vl_sqlq_sql(q, " AND (s.code, s.sid) > (");
        vl_sqlq_text(q, code);
        vl_sqlq_sql(q, ", ");
        vl_sqlq_int(q, sid);
        vl_sqlq_sql(q, ") ORDER BY s.code, s.sid LIMIT 1");
    }
    if (prepare(q, &st, err) < 0)
        goto out;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out_code = dup_text(sqlite3_column_text(st, 0));
        *out_sid = sqlite3_column_int64(st, 1);
        *out_uri = dup_text(sqlite3_column_text(st, 2));
        if (!*out_code || !*out_uri) {
            free(*out_code);
            free(*out_uri);
            vl_store_fail(err, VL_STORE_FAILED, "out of memory");
            goto out;
        }
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        vl_sqlite_error(err, c->db, "reading a series");
    }
out:
    vl_sqlq_release(c, st);
    vl_sqlq_free(q);
    return ret;
}

/* One seek: the first patient of the series after `after`. 1, 0, -1. */
static int seek_patient(vl_bconn_t *c, int64_t pid, const char *after, char **out,
                        vl_store_err_t *err)
{
    vl_sqlq_t *q = vl_sqlq_new(c);
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;
    vl_sqlq_sql(q, "SELECT s.patient FROM ix_series s WHERE s.pid = ");
    vl_sqlq_int(q, pid);
    vl_sqlq_sql(q, " AND s.patient > ");
    vl_sqlq_text(q, after);
    vl_sqlq_sql(q, " ORDER BY s.patient LIMIT 1");
    if (prepare(q, &st, err) < 0)
        goto out;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (!(*out = dup_text(sqlite3_column_text(st, 0)))) {
            vl_store_fail(err, VL_STORE_FAILED, "out of memory");
            goto out;
        }
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        vl_sqlite_error(err, c->db, "reading a series");
    }
out:
    vl_sqlq_release(c, st);
    vl_sqlq_free(q);
    return ret;
}

/* Decides whether a group is kept (a filter over (code, system)). */
typedef int (*group_filter_fn)(const void *ctx, const char *code, int64_t sid, const char *uri);

/* Appends the groups of `patient`: every (code, sid) of its series, or
 * with `codes` those of these codes, that `keep` keeps. Counts seeks; -1
 * (TOO_COSTLY) beyond `max_seeks` seeks or `max_groups` groups. */
static int patient_groups(vl_bconn_t *c, int64_t pid, const char *patient, size_t n_codes,
                          const char *const *codes, group_filter_fn keep, const void *ctx,
                          size_t max_seeks, size_t max_groups, groups_t *g, vl_store_err_t *err)
{
    size_t k = 0;
    int all = n_codes == 0;
    char *code = strdup(all ? "" : codes[0]), *uri = NULL;
    int64_t sid = -1;
    int rc = 0;
    if (!code)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    for (;;) {
        char *next_code = NULL, *next_uri = NULL;
        int64_t next_sid = 0;
        if (++g->seeks > max_seeks) {
            rc = vl_store_fail(err, VL_STORE_TOO_COSTLY,
                               "the series are too many to look at: name a patient or a code");
            break;
        }
        rc = seek_code(c, pid, patient, code, sid, !all, &next_code, &next_sid, &next_uri, err);
        if (rc < 0)
            break;
        if (rc == 0) { /* this code has no more systems: the next code asked */
            if (all || ++k >= n_codes)
                break;
            free(code);
            if (!(code = strdup(codes[k]))) {
                rc = vl_store_fail(err, VL_STORE_FAILED, "out of memory");
                break;
            }
            sid = -1;
            continue;
        }
        free(code);
        free(uri);
        code = next_code;
        uri = next_uri;
        sid = next_sid;
        if (keep && !keep(ctx, code, sid, uri))
            continue;
        if (g->n >= max_groups) {
            rc = vl_store_fail(err, VL_STORE_TOO_COSTLY, "more than %zu series", max_groups);
            break;
        }
        if ((rc = groups_add(g, patient, (const unsigned char *)code, sid,
                             (const unsigned char *)uri, err)) < 0)
            break;
    }
    free(code);
    free(uri);
    return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * $lastn
 * ---------------------------------------------------------------------- */

/* A condition on the code parameter that the groups answer (note 2). */
static int group_cond(const vl_query_t *q, const vl_query_cond_t *cond)
{
    return !strcmp(cond->param, q->series.code_param) && cond->kind == VL_INDEX_TOKEN &&
           !cond->negate && cond->missing < 0 && cond->match == VL_MATCH_DEFAULT && !cond->also &&
           cond->n > 0;
}

/* Token semantics of one value against a group's (code, system). */
static int value_matches(const char *system, const char *text, const char *code, int64_t sid,
                         const char *uri)
{
    if (text && strcmp(text, code) != 0)
        return 0;
    if (!system)
        return 1;
    if (!system[0])
        return sid == 0;
    return sid != 0 && uri && !strcmp(uri, system);
}

static int lastn_keep(const void *ctx, const char *code, int64_t sid, const char *uri)
{
    const vl_query_t *q = ctx;
    if (q->series.code && !value_matches(q->series.system, q->series.code, code, sid, uri))
        return 0;
    for (size_t i = 0; i < q->n; i++) {
        const vl_query_cond_t *cond = &q->conds[i];
        int any = 0;
        if (!group_cond(q, cond))
            continue;
        for (size_t k = 0; k < cond->n && !any; k++)
            any = value_matches(cond->values[k].system, cond->values[k].text, code, sid, uri);
        if (!any)
            return 0;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_group(const void *a, const void *b)
{
    const group_t *x = a, *y = b;
    int d = strcmp(x->patient, y->patient);
    if (!d)
        d = strcmp(x->code, y->code);
    if (!d)
        d = strcmp(x->system, y->system);
    return d;
}

/* The codes to look up directly (note 2), or none (every code): borrowed
 * from the query; *n how many (distinct, sorted). -1 out of memory. */
static int direct_codes(const vl_query_t *q, const char ***codes, size_t *n)
{
    const vl_query_cond_t *pick = NULL;
    const char **list;
    size_t k = 0;
    *codes = NULL;
    *n = 0;
    if (q->series.code) {
        if (!(list = malloc(sizeof *list)))
            return -1;
        list[0] = q->series.code;
        *codes = list;
        *n = 1;
        return 0;
    }
    for (size_t i = 0; i < q->n && !pick; i++) {
        const vl_query_cond_t *cond = &q->conds[i];
        int all = group_cond(q, cond);
        for (size_t v = 0; all && v < cond->n; v++)
            all = cond->values[v].text != NULL;
        if (all)
            pick = cond;
    }
    if (!pick)
        return 0;
    if (!(list = malloc(pick->n * sizeof *list)))
        return -1;
    for (size_t v = 0; v < pick->n; v++)
        list[v] = pick->values[v].text;
    qsort(list, pick->n, sizeof *list, cmp_str);
    for (size_t v = 0; v < pick->n; v++)
        if (!k || strcmp(list[k - 1], list[v]) != 0)
            list[k++] = list[v];
    *codes = list;
    *n = k;
    return 0;
}

/* The patients whose groups are read when the query names none (note 2):
 * "Patient/<id>" strings (malloc'd, sorted, distinct) into *out. */
static int scope_patients(vl_scope_t scope, char ***out, size_t *n, vl_store_err_t *err)
{
    size_t cap = scope.n_patients + scope.n_rules, k = 0;
    char **list = cap ? calloc(cap, sizeof *list) : NULL;
    int oom = cap && !list;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; !oom && i < cap; i++) {
        const char *id = i < scope.n_patients ? (scope.patients ? scope.patients[i] : NULL)
                         : scope.rules && !scope.rules[i - scope.n_patients].deny
                             ? scope.rules[i - scope.n_patients].patient
                             : NULL;
        if (!id)
            continue;
        if (!(list[k] = malloc(strlen(id) + 9)))
            oom = 1;
        else
            sprintf(list[k++], "Patient/%s", id);
    }
    if (oom) {
        for (size_t i = 0; i < k; i++)
            free(list[i]);
        free(list);
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    }
    if (k)
        qsort(list, k, sizeof *list, cmp_str);
    *n = 0;
    for (size_t i = 0; i < k; i++) {
        if (*n && !strcmp(list[*n - 1], list[i]))
            free(list[i]);
        else
            list[(*n)++] = list[i];
    }
    *out = list;
    return 0;
}

/* Every group of the query (note 2), sorted. */
static int lastn_groups(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int max, groups_t *g,
                        vl_store_err_t *err)
{
    int64_t pid;
    const char **codes = NULL;
    size_t n_codes = 0, max_groups = VL_LASTN_GROUPS_MAX;
    int ret = -1;
    if ((size_t)max * max_groups > VL_LASTN_RECORDS_MAX)
        max_groups = VL_LASTN_RECORDS_MAX / (size_t)max;
    if (param_id(c, q->type, q->series.code_param, &pid, err) < 0)
        return -1;
    if (pid < 0)
        return 0; /* no series rows at all */
    if (direct_codes(q, &codes, &n_codes) < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    if (q->series.patient && !(scope.flags & VL_SCOPE_ALL)) {
        /* a patient outside the scope's patients has no group the caller
         * may know of: not even how many (a too-costly refusal would say) */
        char **pats = NULL;
        size_t n = 0;
        int mine = 0;
        ret = scope_patients(scope, &pats, &n, err);
        for (size_t i = 0; i < n; i++) {
            mine |= !strcmp(pats[i], q->series.patient);
            free(pats[i]);
        }
        free(pats);
        if (ret == 0 && mine)
            ret = patient_groups(c, pid, q->series.patient, n_codes, codes, lastn_keep, q,
                                 VL_LASTN_SEEKS_MAX, max_groups, g, err);
    } else if (q->series.patient) {
        ret = patient_groups(c, pid, q->series.patient, n_codes, codes, lastn_keep, q,
                             VL_LASTN_SEEKS_MAX, max_groups, g, err);
    } else if (!(scope.flags & VL_SCOPE_ALL)) {
        char **pats = NULL;
        size_t n = 0;
        ret = scope_patients(scope, &pats, &n, err);
        for (size_t i = 0; ret == 0 && i < n; i++)
            ret = patient_groups(c, pid, pats[i], n_codes, codes, lastn_keep, q, VL_LASTN_SEEKS_MAX,
                                 max_groups, g, err);
        for (size_t i = 0; i < n; i++)
            free(pats[i]);
        free(pats);
    } else {
        char *patient = strdup("");
        ret = patient ? 0 : vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        while (ret == 0) {
            char *next = NULL;
            int rc;
            if (++g->seeks > VL_LASTN_SEEKS_MAX) {
                ret = vl_store_fail(err, VL_STORE_TOO_COSTLY,
                                    "the series are too many to look at: name a patient");
                break;
            }
            if ((rc = seek_patient(c, pid, patient, &next, err)) <= 0) {
                ret = rc;
                break;
            }
            free(patient);
            patient = next;
            ret = patient_groups(c, pid, patient, n_codes, codes, lastn_keep, q, VL_LASTN_SEEKS_MAX,
                                 max_groups, g, err);
        }
        free(patient);
    }
    free(codes);
    if (ret == 0 && g->n > 1)
        qsort(g->items, g->n, sizeof *g->items, cmp_group);
    return ret;
}

/* A set of "type/id" keys (open addressing, FNV-1a), for note 3. */
typedef struct idset {
    char **slots;
    size_t n, cap; /* cap a power of two */
} idset_t;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void idset_free(idset_t *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* Adds "type/id": 1 added, 0 there already, -1 out of memory. */
static int idset_add(idset_t *s, const vl_record_t *r)
{
    char key[200];
    size_t i;
    snprintf(key, sizeof key, "%s/%s", r->type, r->id);
    if ((s->n + 1) * 2 > s->cap) {
        idset_t big = {calloc(s->cap ? s->cap * 2 : 64, sizeof(char *)), 0,
                       s->cap ? s->cap * 2 : 64};
        if (!big.slots)
            return -1;
        for (size_t k = 0; k < s->cap; k++)
            if (s->slots[k]) {
                for (i = fnv(s->slots[k]) & (big.cap - 1); big.slots[i];
                     i = (i + 1) & (big.cap - 1))
                    ;
                big.slots[i] = s->slots[k];
                big.n++;
            }
        free(s->slots);
        *s = big;
    }
    for (i = fnv(key) & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
        if (!strcmp(s->slots[i], key))
            return 0;
    if (!(s->slots[i] = strdup(key)))
        return -1;
    s->n++;
    return 1;
}

/* The page of one group (note 3), appended to `out` without the versions
 * of `seen`. */
static int lastn_group(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int max,
                       const group_t *grp, vl_query_cond_t *conds, idset_t *seen, vl_records_t *out,
                       vl_store_err_t *err)
{
    vl_query_t g = *q;
    vl_records_t got;
    size_t n = 0;
    int ret = 0;
    for (size_t i = 0; i < q->n; i++)
        if (!group_cond(q, &q->conds[i]))
            conds[n++] = q->conds[i];
    g.conds = conds;
    g.n = n;
    g.series.patient = grp->patient;
    g.series.system = grp->system;
    g.series.code = grp->code;
    /* the series' own key order read backwards: time, then the version
     * (written later first: seq follows lastUpdated); no sort step, so a
     * group's page reads `max` rows, not the whole series */
    g.n_sort = 1;
    g.sort[0] = (vl_query_sort_t){q->series.date_param, 1};
    g.count = max;
    g.offset = 0;
    if (vl_sqlite_search(c, scope, &g, VL_TOTAL_NONE, 0, &got, err) < 0)
        return -1;
    for (size_t i = 0; i < got.n && ret == 0; i++) {
        int added = idset_add(seen, &got.items[i]);
        if (added < 0 ||
            (added && vl_grow(&out->items, &out->cap, out->n + 1, sizeof *out->items) < 0)) {
            ret = vl_store_fail(err, VL_STORE_FAILED, "out of memory");
            break;
        }
        if (added) { /* moved: the list below no longer owns its body */
            out->items[out->n++] = got.items[i];
            got.items[i].body = NULL;
        }
    }
    vl_records_free(&got);
    return ret;
}

int vl_sqlite_lastn(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int max,
                    vl_records_t *out, vl_store_err_t *err)
{
    groups_t g = {0};
    idset_t seen = {0};
    vl_query_cond_t *conds = NULL;
    int began = begin_read(c), ret = -1;
    memset(out, 0, sizeof *out);
    if (lastn_groups(c, scope, q, max, &g, err) < 0)
        goto out;
    if (q->n && !(conds = malloc(q->n * sizeof *conds))) {
        vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        goto out;
    }
    ret = 0;
    for (size_t i = 0; i < g.n && ret == 0; i++)
        ret = lastn_group(c, scope, q, max, &g.items[i], conds, &seen, out, err);
out:
    end_read(c, began);
    free(conds);
    idset_free(&seen);
    groups_free(&g);
    if (ret < 0)
        vl_records_free(out);
    out->total = (int64_t)out->n;
    return ret;
}

/* ------------------------------------------------------------------------
 * $stats: the value set of a result (design notes 4 to 6)
 * ---------------------------------------------------------------------- */

enum { ARM_OWN, ARM_COMPONENT, ARM_ANY_COMPONENT };

typedef struct arm {
    const char *code; /* the series' code */
    int64_t sid;
    int component; /* ARM_OWN: own values; ARM_COMPONENT: of the component
                      (ccode, csid); ARM_ANY_COMPONENT: a row per component
                      (k.code, k.sid, cs.uri), for stats_components() */
    const char *ccode;
    int64_t csid;
    int required; /* JOIN: only versions with such a value count */
} arm_t;

typedef struct stats_ctx {
    vl_bconn_t *c;
    vl_scope_t scope; /* series_scope() of the query's */
    const vl_stats_query_t *q;
    int64_t code_pid, value_pid, comp_pid, status_pid, ucum_sid;
    int excluded_somewhere; /* some version has the excluded status (else no probe per row) */
} stats_ctx_t;

/* " FROM ... WHERE ..." of one arm (note 4). A required component is
 * probed right after the series row (CROSS JOIN keeps that order): a
 * version without it costs one covering probe, not the reads of its
 * version and resource rows. */
/* A scope that sees every version of the series (the admin's, or the
 * patient's own after series_scope): only currentness is left to
 * check, one probe of `superseded` instead of the version and resource
 * rows (a series row is never a delete). */
static int plain_scope(vl_scope_t scope, const char *type)
{
    int typed = !scope.n_types;
    for (size_t i = 0; !typed && i < scope.n_types; i++)
        typed = !strcmp(scope.types[i], type); /* the types a JWT may read include it */
    return (scope.flags & VL_SCOPE_ALL) && !scope.n_categories && typed;
}

static void arm_from(vl_sqlq_t *s, const stats_ctx_t *x, const arm_t *a)
{
    const vl_stats_query_t *q = x->q;
    int first = a->component == ARM_ANY_COMPONENT || (a->component == ARM_COMPONENT && a->required);
    vl_sqlq_sql(s, " FROM ix_series s");
    if (first) {
        vl_sqlq_sql(s, " CROSS JOIN ix_composite k ON k.seq = s.seq AND k.pid = ");
        vl_sqlq_int(s, x->comp_pid);
        if (a->component == ARM_COMPONENT) {
            vl_sqlq_sql(s, " AND k.code = ");
            vl_sqlq_text(s, a->ccode);
            vl_sqlq_sql(s, " AND k.sid = ");
            vl_sqlq_int(s, a->csid);
        }
    }
    if (!plain_scope(x->scope, x->q->type))
        vl_sqlq_sql(s, " JOIN resource_version v ON v.seq = s.seq JOIN resource r"
                       " ON r.rid = v.rid AND r.version = v.version");
    if (a->component == ARM_OWN) {
        vl_sqlq_sql(s, " LEFT JOIN ix_quantity q0 ON q0.seq = s.seq AND q0.pid = ");
        vl_sqlq_int(s, x->value_pid);
        vl_sqlq_sql(s,
                    " AND q0.canon = 0 LEFT JOIN ix_quantity q1 ON q1.seq = s.seq AND q1.pid = ");
        vl_sqlq_int(s, x->value_pid);
        vl_sqlq_sql(s, " AND q1.canon = 1");
    } else if (a->component == ARM_COMPONENT && !first) {
        vl_sqlq_sql(s, " LEFT JOIN ix_composite k ON k.seq = s.seq AND k.pid = ");
        vl_sqlq_int(s, x->comp_pid);
        vl_sqlq_sql(s, " AND k.code = ");
        vl_sqlq_text(s, a->ccode);
        vl_sqlq_sql(s, " AND k.sid = ");
        vl_sqlq_int(s, a->csid);
    } else if (a->component == ARM_ANY_COMPONENT) {
        vl_sqlq_sql(s, " LEFT JOIN code_system cs ON cs.sid = k.sid");
    }
    vl_sqlq_sql(s, " WHERE s.pid = ");
    vl_sqlq_int(s, x->code_pid);
    vl_sqlq_sql(s, " AND s.patient = ");
    vl_sqlq_text(s, q->patient);
    vl_sqlq_sql(s, " AND s.code = ");
    vl_sqlq_text(s, a->code);
    vl_sqlq_sql(s, " AND s.sid = ");
    vl_sqlq_int(s, a->sid);
    /* the time lies in [lo, hi): a key range on hi, and lo from the row */
    vl_sqlq_sql(s, " AND s.hi > ");
    vl_sqlq_int(s, q->lo);
    vl_sqlq_sql(s, " AND s.hi <= ");
    vl_sqlq_int(s, q->hi);
    vl_sqlq_sql(s, " AND s.lo >= ");
    vl_sqlq_int(s, q->lo);
    if (q->status_param && x->excluded_somewhere) {
        /* a code without a system: the whole key of ix_token, one probe */
        vl_sqlq_sql(s, " AND NOT EXISTS (SELECT 1 FROM ix_token t WHERE t.pid = ");
        vl_sqlq_int(s, x->status_pid);
        vl_sqlq_sql(s, " AND t.code = ");
        vl_sqlq_text(s, q->exclude_status);
        vl_sqlq_sql(s, " AND t.sid = 0 AND t.seq = s.seq)");
    }
    if (plain_scope(x->scope, x->q->type))
        vl_sqlq_sql(s, " AND NOT EXISTS (SELECT 1 FROM superseded z WHERE z.seq = s.seq)");
    else
        vl_sqlq_scope(s, x->scope, "s.seq");
}

/* The rows of one arm: (seq, t, x, unit, sent). */
static void arm_sql(vl_sqlq_t *s, const stats_ctx_t *x, const arm_t *a)
{
    if (a->component == ARM_OWN) {
        vl_sqlq_sql(s, "SELECT s.seq AS seq, s.hi AS t, coalesce(q1.value, q0.value) AS x,"
                       " CASE WHEN q1.value IS NOT NULL THEN q1.code WHEN q0.sid = ");
        vl_sqlq_int(s, x->ucum_sid);
        vl_sqlq_sql(s, " THEN q0.code ELSE '|' || q0.code END AS unit, CASE WHEN q0.sid = ");
        vl_sqlq_int(s, x->ucum_sid);
        vl_sqlq_sql(s, " THEN q0.code END AS sent");
    } else {
        vl_sqlq_sql(s, "SELECT s.seq AS seq, s.hi AS t, k.value AS x, k.unit AS unit,"
                       " NULL AS sent");
    }
    arm_from(s, x, a);
}

/* "WITH vals(seq, t, x, unit, sent) AS MATERIALIZED (arm UNION ALL ...) " */
static void vals_sql(vl_sqlq_t *s, const stats_ctx_t *x, const arm_t *arms, size_t n)
{
    vl_sqlq_sql(s, "WITH vals(seq, t, x, unit, sent) AS MATERIALIZED (");
    for (size_t i = 0; i < n; i++) {
        if (i)
            vl_sqlq_sql(s, " UNION ALL ");
        arm_sql(s, x, &arms[i]);
    }
    vl_sqlq_sql(s, ") ");
}

static int step_error(vl_bconn_t *c, vl_store_err_t *err)
{
    return vl_sqlite_error(err, c->db, "computing statistics");
}

/* The counts, the first moments and the units (note 5). */
static int stats_aggregate(const stats_ctx_t *x, const arm_t *arms, size_t n, vl_stats_t *out,
                           vl_store_err_t *err)
{
    vl_sqlq_t *s = vl_sqlq_new(x->c);
    sqlite3_stmt *st = NULL;
    int ret = -1, moments = (x->q->what & VL_STATS_MOMENTS) != 0;
    vals_sql(s, x, arms, n);
    vl_sqlq_sql(s, ", a AS (SELECT count(DISTINCT seq) AS total, count(x) AS n, sum(x) AS sum,"
                   " min(x) AS lo, max(x) AS hi, avg(x) AS mean,"
                   " count(DISTINCT CASE WHEN x IS NOT NULL THEN unit END) AS units,"
                   " min(CASE WHEN x IS NOT NULL THEN unit END) AS unit,"
                   " count(sent) AS n_sent, min(sent) AS sent, max(sent) AS sent_hi FROM vals)"
                   " SELECT a.total, a.n, a.sum, a.lo, a.hi, a.mean, a.units, a.unit, a.n_sent,"
                   " a.sent, a.sent_hi");
    if (moments)
        vl_sqlq_sql(s, ", (SELECT sum((x - a.mean) * (x - a.mean)) FROM vals WHERE x IS NOT NULL),"
                       " (SELECT sum((x - a.mean) * (x - a.mean) * (x - a.mean)) FROM vals"
                       " WHERE x IS NOT NULL), (SELECT sum((x - a.mean) * (x - a.mean) *"
                       " (x - a.mean) * (x - a.mean)) FROM vals WHERE x IS NOT NULL)");
    vl_sqlq_sql(s, " FROM a");
    if (prepare(s, &st, err) < 0)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        step_error(x->c, err);
        goto out;
    }
    out->total = sqlite3_column_int64(st, 0);
    out->n = sqlite3_column_int64(st, 1);
    if (out->n > 0) {
        const unsigned char *sent = sqlite3_column_text(st, 9);
        const unsigned char *sent_hi = sqlite3_column_text(st, 10);
        out->sum = sqlite3_column_double(st, 2);
        out->min = sqlite3_column_double(st, 3);
        out->max = sqlite3_column_double(st, 4);
        out->mean = sqlite3_column_double(st, 5);
        out->mixed = sqlite3_column_int64(st, 6) > 1;
        if (!(out->unit = dup_text(sqlite3_column_text(st, 7)))) {
            vl_store_fail(err, VL_STORE_FAILED, "out of memory");
            goto out;
        }
        if (sqlite3_column_int64(st, 8) == out->n && sent && sent_hi &&
            !strcmp((const char *)sent, (const char *)sent_hi) &&
            !(out->sent_unit = dup_text(sent))) {
            vl_store_fail(err, VL_STORE_FAILED, "out of memory");
            goto out;
        }
        if (moments) {
            out->m2 = sqlite3_column_double(st, 11);
            out->m3 = sqlite3_column_double(st, 12);
            out->m4 = sqlite3_column_double(st, 13);
        }
    }
    ret = 0;
out:
    vl_sqlq_release(x->c, st);
    vl_sqlq_free(s);
    return ret;
}

/* One quantile (note 5): between the order statistics k and k + 1. */
static int stats_rank(const stats_ctx_t *x, const arm_t *arms, size_t n, int64_t count,
                      vl_stats_rank_t rank, double *out, vl_store_err_t *err)
{
    vl_sqlq_t *s = vl_sqlq_new(x->c);
    sqlite3_stmt *st = NULL;
    int64_t pos = (count - 1) * (int64_t)rank.num, k = pos / rank.den;
    double frac = (double)(pos % rank.den) / rank.den, lo = 0, hi = 0;
    int rc, got = 0, ret = -1;
    vals_sql(s, x, arms, n);
    vl_sqlq_sql(s, "SELECT x FROM vals WHERE x IS NOT NULL ORDER BY x LIMIT 2 OFFSET ");
    vl_sqlq_int(s, k);
    if (prepare(s, &st, err) < 0)
        goto out;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (got++)
            hi = sqlite3_column_double(st, 0);
        else
            lo = sqlite3_column_double(st, 0);
    }
    if (rc != SQLITE_DONE) {
        step_error(x->c, err);
        goto out;
    }
    if (!got) { /* the values changed under the count: not in one read */
        vl_store_fail(err, VL_STORE_FAILED, "the values changed while they were read");
        goto out;
    }
    *out = got == 1 || frac == 0 ? lo : lo + frac * (hi - lo);
    ret = 0;
out:
    vl_sqlq_release(x->c, st);
    vl_sqlq_free(s);
    return ret;
}

/* The versions that gave a value, by time, then version (note 5). */
static int stats_sources(const stats_ctx_t *x, const arm_t *arms, size_t n, vl_records_t *out,
                         vl_store_err_t *err)
{
    vl_sqlq_t *s = vl_sqlq_new(x->c);
    sqlite3_stmt *st = NULL;
    int ret = -1;
    vals_sql(s, x, arms, n);
    vl_sqlq_sql(s, "SELECT " VL_SQLITE_RECORD_COLUMNS " FROM (SELECT seq, min(t) AS t FROM vals"
                   " WHERE x IS NOT NULL GROUP BY seq ORDER BY t, seq LIMIT ");
    vl_sqlq_int(s, (int64_t)x->q->max_sources);
    vl_sqlq_sql(s, ") z JOIN resource_version v ON v.seq = z.seq JOIN resource r ON r.rid = v.rid"
                   " ORDER BY z.t, z.seq");
    if (prepare(s, &st, err) < 0)
        goto out;
    ret = vl_sqlite_collect(x->c->db, st, 0, out, err);
out:
    vl_sqlq_release(x->c, st);
    vl_sqlq_free(s);
    if (ret < 0)
        vl_records_free(out);
    return ret;
}

/* One result over `arms` (notes 4, 5) appended to `list`. */
static int stats_result(const stats_ctx_t *x, const arm_t *arms, size_t n, int component,
                        const char *system, const char *code, vl_stats_list_t *list,
                        vl_store_err_t *err)
{
    const vl_stats_query_t *q = x->q;
    vl_stats_t *r;
    if (vl_grow(&list->items, &list->cap, list->n + 1, sizeof *list->items) < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    r = &list->items[list->n++]; /* owned by the list from here: freed with it */
    memset(r, 0, sizeof *r);
    r->component = component;
    r->system = strdup(system);
    r->code = strdup(code);
    if (!r->system || !r->code)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    if (stats_aggregate(x, arms, n, r, err) < 0)
        return -1;
    if (r->n == 0 || r->mixed)
        return 0;
    if (q->n_ranks && !(r->ranks = calloc(q->n_ranks, sizeof *r->ranks)))
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    for (size_t i = 0; i < q->n_ranks; i++) {
        size_t same = i; /* one statement per distinct rank */
        for (size_t k = 0; k < i && same == i; k++)
            if ((int64_t)q->ranks[k].num * q->ranks[i].den ==
                (int64_t)q->ranks[i].num * q->ranks[k].den)
                same = k;
        if (same < i)
            r->ranks[i] = r->ranks[same];
        else if (stats_rank(x, arms, n, r->n, q->ranks[i], &r->ranks[i], err) < 0)
            return -1;
    }
    if ((q->what & VL_STATS_SOURCES) && q->max_sources &&
        stats_sources(x, arms, n, &r->sources, err) < 0)
        return -1;
    return 0;
}

typedef struct code_list {
    struct code_item {
        char *code;
        int64_t sid;
        char *system;
    } * items;
    size_t n, cap;
} code_list_t;

static void code_list_free(code_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].code);
        free(l->items[i].system);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* The component codes of the code's versions in the period (note 6). */
static int stats_components(const stats_ctx_t *x, int64_t sid, code_list_t *out,
                            vl_store_err_t *err)
{
    const vl_stats_query_t *q = x->q;
    vl_sqlq_t *s = vl_sqlq_new(x->c);
    sqlite3_stmt *st = NULL;
    arm_t all = {q->code, sid, ARM_ANY_COMPONENT, NULL, 0, 0};
    int rc, ret = -1;
    vl_sqlq_sql(s, "SELECT DISTINCT k.code, k.sid, cs.uri");
    arm_from(s, x, &all);
    vl_sqlq_sql(s, " ORDER BY k.code, cs.uri LIMIT ");
    vl_sqlq_int(s, VL_STATS_COMPONENTS_MAX + 1);
    if (prepare(s, &st, err) < 0)
        goto out;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct code_item *it;
        if (out->n == VL_STATS_COMPONENTS_MAX) {
            vl_store_fail(err, VL_STORE_TOO_COSTLY, "more than %d component codes",
                          VL_STATS_COMPONENTS_MAX);
            goto out;
        }
        if (vl_grow(&out->items, &out->cap, out->n + 1, sizeof *out->items) < 0) {
            vl_store_fail(err, VL_STORE_FAILED, "out of memory");
            goto out;
        }
        it = &out->items[out->n];
        it->code = dup_text(sqlite3_column_text(st, 0));
        it->sid = sqlite3_column_int64(st, 1);
        it->system = dup_text(sqlite3_column_text(st, 2));
        out->n++;
        if (!it->code || !it->system) {
            vl_store_fail(err, VL_STORE_FAILED, "out of memory");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        step_error(x->c, err);
        goto out;
    }
    ret = 0;
out:
    vl_sqlq_release(x->c, st);
    vl_sqlq_free(s);
    return ret;
}

/* Whether a version of series (code, sid) in the period carries a
 * component coded (q->code, csid): 1, 0, -1 (note 6). */
static int carries(const stats_ctx_t *x, const char *code, int64_t sid, int64_t csid,
                   vl_store_err_t *err)
{
    vl_sqlq_t *s = vl_sqlq_new(x->c);
    sqlite3_stmt *st = NULL;
    arm_t arm = {code, sid, ARM_COMPONENT, x->q->code, csid, 1};
    int rc, ret = -1;
    vl_sqlq_sql(s, "SELECT EXISTS (SELECT 1");
    arm_from(s, x, &arm);
    vl_sqlq_sql(s, ")");
    if (prepare(s, &st, err) < 0)
        goto out;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        step_error(x->c, err);
        goto out;
    }
    ret = sqlite3_column_int(st, 0) != 0;
out:
    vl_sqlq_release(x->c, st);
    vl_sqlq_free(s);
    return ret;
}

/* Whether any version of the store has a component coded (q->code,
 * csid): one seek of ix_composite's key. 1, 0, -1 (note 6). */
static int component_anywhere(const stats_ctx_t *x, int64_t csid, vl_store_err_t *err)
{
    vl_sqlq_t *s = vl_sqlq_new(x->c);
    sqlite3_stmt *st = NULL;
    int ret = -1;
    vl_sqlq_sql(s, "SELECT EXISTS (SELECT 1 FROM ix_composite WHERE pid = ");
    vl_sqlq_int(s, x->comp_pid);
    vl_sqlq_sql(s, " AND code = ");
    vl_sqlq_text(s, x->q->code);
    vl_sqlq_sql(s, " AND sid = ");
    vl_sqlq_int(s, csid);
    vl_sqlq_sql(s, ")");
    if (prepare(s, &st, err) < 0)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        step_error(x->c, err);
        goto out;
    }
    ret = sqlite3_column_int(st, 0) != 0;
out:
    vl_sqlq_release(x->c, st);
    vl_sqlq_free(s);
    return ret;
}

/* The arms of the code's own result (note 6): its own series, and every
 * other series of the patient that carries it as a component. */
static int own_arms(const stats_ctx_t *x, int64_t sid, arm_t **arms, size_t *n, groups_t *codes,
                    vl_store_err_t *err)
{
    const vl_stats_query_t *q = x->q;
    size_t cap = 0;
    int rc;
    *arms = NULL;
    *n = 0;
    if (vl_grow(arms, &cap, 1, sizeof **arms) < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    (*arms)[(*n)++] = (arm_t){q->code, sid, ARM_OWN, NULL, 0, 0};
    if ((rc = component_anywhere(x, sid, err)) <= 0)
        return rc; /* no such component at all: nothing to look for */
    if (patient_groups(x->c, x->code_pid, q->patient, 0, NULL, NULL, NULL, VL_STATS_CODES_MAX + 1,
                       VL_STATS_CODES_MAX, codes, err) < 0)
        return -1;
    for (size_t i = 0; i < codes->n; i++) {
        const group_t *g = &codes->items[i];
        if (!strcmp(g->code, q->code) && g->sid == sid)
            continue;
        if ((rc = carries(x, g->code, g->sid, sid, err)) < 0)
            return -1;
        if (!rc)
            continue;
        if (vl_grow(arms, &cap, *n + 1, sizeof **arms) < 0)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        (*arms)[(*n)++] = (arm_t){g->code, g->sid, ARM_COMPONENT, q->code, sid, 1};
    }
    return 0;
}

static int stats_run(const stats_ctx_t *x, vl_stats_list_t *out, vl_store_err_t *err)
{
    const vl_stats_query_t *q = x->q;
    code_list_t comps = {0};
    groups_t codes = {0};
    arm_t *arms = NULL;
    size_t n_arms = 0;
    int64_t sid;
    int ret = -1;
    if (system_id(x->c, q->system, &sid, err) < 0)
        return -1;
    if (stats_components(x, sid, &comps, err) < 0 ||
        own_arms(x, sid, &arms, &n_arms, &codes, err) < 0)
        goto out;
    if (stats_result(x, arms, n_arms, 0, q->system, q->code, out, err) < 0)
        goto out;
    if (comps.n && out->items[out->n - 1].n == 0) { /* a panel: no value of its own */
        vl_stats_t *own = &out->items[--out->n];
        free(own->system);
        free(own->code);
        free(own->unit);
        free(own->sent_unit);
        free(own->ranks);
        vl_records_free(&own->sources);
    }
    for (size_t i = 0; i < comps.n; i++) {
        arm_t arm = {q->code, sid, ARM_COMPONENT, comps.items[i].code, comps.items[i].sid, 0};
        if (stats_result(x, &arm, 1, 1, comps.items[i].system, comps.items[i].code, out, err) < 0)
            goto out;
    }
    ret = 0;
out:
    free(arms);
    groups_free(&codes);
    code_list_free(&comps);
    return ret;
}

/* Whether any version of the store (current or not) has status `code`:
 * one seek of ix_token's key. When none has, no row needs the probe that
 * leaves such versions out (in the same read transaction as the rows). */
static int excluded_anywhere(vl_bconn_t *c, int64_t pid, const char *code, int *out,
                             vl_store_err_t *err)
{
    vl_sqlq_t *s = vl_sqlq_new(c);
    sqlite3_stmt *st = NULL;
    int ret = -1;
    *out = 1;
    if (pid < 0 || !code) {
        vl_sqlq_free(s);
        *out = 0;
        return 0;
    }
    vl_sqlq_sql(s, "SELECT EXISTS (SELECT 1 FROM ix_token WHERE pid = ");
    vl_sqlq_int(s, pid);
    vl_sqlq_sql(s, " AND code = ");
    vl_sqlq_text(s, code);
    vl_sqlq_sql(s, " AND sid = 0)");
    if (prepare(s, &st, err) < 0)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        step_error(c, err);
        goto out;
    }
    *out = sqlite3_column_int(st, 0) != 0;
    ret = 0;
out:
    vl_sqlq_release(c, st);
    vl_sqlq_free(s);
    return ret;
}

int vl_sqlite_series_stats(vl_bconn_t *c, vl_scope_t scope, const vl_stats_query_t *q,
                           vl_stats_list_t *out, vl_store_err_t *err)
{
    stats_ctx_t x = {c, series_scope(scope, q->patient), q, -1, -1, -1, -1, -1, 1};
    int began = begin_read(c), ret = -1;
    memset(out, 0, sizeof *out);
    if (param_id(c, q->type, q->code_param, &x.code_pid, err) < 0 ||
        param_id(c, q->type, q->value_param, &x.value_pid, err) < 0 ||
        param_id(c, q->type, q->component_param, &x.comp_pid, err) < 0 ||
        param_id(c, q->type, q->status_param, &x.status_pid, err) < 0 ||
        system_id(c, UCUM, &x.ucum_sid, err) < 0 ||
        (q->status_param &&
         excluded_anywhere(c, x.status_pid, q->exclude_status, &x.excluded_somewhere, err) < 0))
        goto out;
    ret = stats_run(&x, out, err);
out:
    end_read(c, began);
    if (ret < 0)
        vl_stats_list_free(out);
    return ret;
}
