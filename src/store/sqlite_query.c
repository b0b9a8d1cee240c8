/*
 * Search on SQLite: vl_query_t to SQL, and the statement builder that
 * scoped reads share.
 *
 * Each condition becomes `r.rid IN (SELECT rid FROM idx_<kind> WHERE param =
 * ? AND (<value> OR <value> ...))`; conditions are AND'd. Every value is
 * bound, never spliced into the SQL text. Lists of ORs and ANDs are emitted
 * as balanced trees, so thousands of alternatives stay far below SQLite's
 * expression depth limit (1000).
 *
 * Date semantics (FHIR R4 search, 3.1.1.4.3): the resource's range is
 * [lo, hi), the search value's [plo, phi):
 *   eq  lo >= plo AND hi <= phi          (resource range inside the value's)
 *   ne  NOT eq
 *   lt  lo < plo                          (some part of it before the value)
 *   gt  hi > phi                          (some part of it after the value)
 *   le  lt OR eq
 *   ge  gt OR eq
 * Quantity compares the stored value with the search number (eq within a
 * relative 1e-9); a given system/code must match too.
 *
 * Scopes (vl_sqlq_scope): a version is visible under VL_SCOPE_ALL; else
 * when version_patient names one of the scope's patients for it; else,
 * with VL_SCOPE_SHARED, when version_patient has no row for it; else when
 * a permit rule covers it (its patient's compartment, type, facet codes in
 * version_code, facet time in version_time) and no deny rule does; else
 * by the scope's reference list. Every query that takes a scope names the
 * version `v` and its resource `r` (r.type, r.rid are used here).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

typedef enum { B_TEXT, B_INT, B_REAL } bind_kind_t;

typedef struct binding {
    bind_kind_t kind;
    const char *text;
    int64_t i;
    double d;
} binding_t;

struct vl_sqlq {
    vl_bconn_t *conn;
    sqlite3 *db;
    const char *type; /* the searched type: index rows are named "<type>.<param>" */
    sqlite3_str *sql;
    binding_t *b;
    size_t n, cap;
    int oom;
    int failed;         /* a name lookup failed: err holds why */
    vl_store_err_t err; /* of a failed lookup */
    char **owned;       /* strings made for bindings, freed with the query */
    size_t n_owned, cap_owned;
    int64_t as_of; /* the snapshot of the search being built (chains read it too) */
};

vl_sqlq_t *vl_sqlq_new(vl_bconn_t *c)
{
    vl_sqlq_t *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->conn = c;
    q->db = c->db;
    q->sql = sqlite3_str_new(c->db);
    return q;
}

void vl_sqlq_free(vl_sqlq_t *q)
{
    if (!q)
        return;
    if (q->sql)
        sqlite3_free(sqlite3_str_finish(q->sql));
    free(q->b);
    for (size_t i = 0; i < q->n_owned; i++)
        free(q->owned[i]);
    free(q->owned);
    free(q);
}

void vl_sqlq_sql(vl_sqlq_t *q, const char *sql)
{
    if (q)
        sqlite3_str_appendall(q->sql, sql);
}

static void bind(vl_sqlq_t *q, binding_t b)
{
    if (!q)
        return;
    if (vl_grow(&q->b, &q->cap, q->n + 1, sizeof *q->b) < 0) {
        q->oom = 1;
        return;
    }
    q->b[q->n++] = b;
    sqlite3_str_appendall(q->sql, "?");
}

void vl_sqlq_text(vl_sqlq_t *q, const char *text)
{
    bind(q, (binding_t){B_TEXT, text, 0, 0});
}

void vl_sqlq_int(vl_sqlq_t *q, int64_t v)
{
    bind(q, (binding_t){B_INT, NULL, v, 0});
}

static void bind_real(vl_sqlq_t *q, double v)
{
    bind(q, (binding_t){B_REAL, NULL, 0, v});
}

/* The pid of a search parameter of `type`: index rows are keyed by the
 * interned "<type>.<param>" (schemas/007), so one type's rows never crowd
 * another's lookups (AuditEvent "patient" against Observation "patient").
 * -1 when no row was ever written for it (matches nothing). */
static int64_t param_id(vl_sqlq_t *q, const char *type, const char *param)
{
    char name[160];
    int64_t id = -1;
    if (q->failed)
        return -1;
    if ((size_t)snprintf(name, sizeof name, "%s.%s", type ? type : "", param) >= sizeof name)
        return -1;
    if (vl_intern_id(q->conn, VL_INTERN_PARAM, name, 0, &id, &q->err) < 0)
        q->failed = 1;
    return id;
}

static void bind_param(vl_sqlq_t *q, const char *type, const char *param)
{
    vl_sqlq_int(q, param_id(q, type, param));
}

/* The sid of a code system URI; "" means none (0); -1 when unknown. */
static int64_t system_id(vl_sqlq_t *q, const char *system)
{
    int64_t id = -1;
    if (!system[0])
        return 0;
    if (!q->failed && vl_intern_id(q->conn, VL_INTERN_SYSTEM, system, 0, &id, &q->err) < 0)
        q->failed = 1;
    return id;
}

/* A string the query owns until it is freed (NULL: out of memory). */
static const char *own(vl_sqlq_t *q, char *s)
{
    if (!s || vl_grow(&q->owned, &q->cap_owned, q->n_owned + 1, sizeof *q->owned) < 0) {
        free(s);
        q->oom = 1;
        return NULL;
    }
    q->owned[q->n_owned++] = s;
    return s;
}

/* The type of the version being checked: the searched type, bound, when
 * the query is a search (its index rows are of that type alone), else the
 * resource row's. */
static void type_expr(vl_sqlq_t *q)
{
    if (q->type)
        vl_sqlq_text(q, q->type);
    else
        sqlite3_str_appendall(q->sql, "r.type");
}

/* Whether two rules restrict alike (all but their patients). */
static int same_shape(const vl_scope_rule_t *a, const vl_scope_rule_t *b)
{
    if (a->deny != b->deny || a->n_types != b->n_types || a->n_codes != b->n_codes ||
        a->has_period != b->has_period || (a->has_period && (a->lo != b->lo || a->hi != b->hi)))
        return 0;
    for (size_t i = 0; i < a->n_types; i++)
        if (strcmp(a->types[i], b->types[i]) != 0)
            return 0;
    for (size_t i = 0; i < a->n_codes; i++)
        if (strcmp(a->codes[i].code, b->codes[i].code) != 0 ||
            !a->codes[i].system != !b->codes[i].system ||
            (a->codes[i].system && strcmp(a->codes[i].system, b->codes[i].system) != 0))
            return 0;
    return 1;
}

/* The condition that rule rules[first] covers the version `seq_col` (of
 * resource r), for its patient and the patients of every later rule of
 * the same shape (`done` marks them: one condition serves them all, so the
 * SQL grows with the shapes, not with the Consents). */
static void rule_sql(vl_sqlq_t *q, const vl_scope_rule_t *rules, size_t n, size_t first, char *done,
                     const char *seq_col)
{
    const vl_scope_rule_t *r = &rules[first];
    sqlite3_str_appendf(q->sql,
                        "(EXISTS (SELECT 1 FROM version_patient vp WHERE vp.seq = %s"
                        " AND vp.patient IN (",
                        seq_col);
    vl_sqlq_text(q, r->patient);
    for (size_t k = first + 1; k < n; k++)
        if (!done[k] && same_shape(r, &rules[k])) {
            done[k] = 1;
            sqlite3_str_appendall(q->sql, ", ");
            vl_sqlq_text(q, rules[k].patient);
        }
    sqlite3_str_appendall(q->sql, "))");
    if (r->n_types) {
        sqlite3_str_appendall(q->sql, " AND ");
        type_expr(q);
        sqlite3_str_appendall(q->sql, " IN (");
        for (size_t i = 0; i < r->n_types; i++) {
            if (i)
                sqlite3_str_appendall(q->sql, ", ");
            vl_sqlq_text(q, r->types[i]);
        }
        sqlite3_str_appendall(q->sql, ")");
    }
    if (r->n_codes) {
        sqlite3_str_appendf(
            q->sql,
            " AND EXISTS (SELECT 1 FROM version_code c WHERE c.seq = %s AND c.kind = 0 AND (",
            seq_col);
        for (size_t i = 0; i < r->n_codes; i++) {
            sqlite3_str_appendall(q->sql, i ? " OR (c.code = " : "(c.code = ");
            vl_sqlq_text(q, r->codes[i].code);
            if (r->codes[i].system) {
                sqlite3_str_appendall(q->sql, " AND c.sid = ");
                vl_sqlq_int(q, system_id(q, r->codes[i].system));
            }
            sqlite3_str_appendall(q->sql, ")");
        }
        sqlite3_str_appendall(q->sql, "))");
    }
    if (r->has_period) {
        sqlite3_str_appendf(
            q->sql, " AND EXISTS (SELECT 1 FROM version_time t WHERE t.seq = %s AND ", seq_col);
        /* a permit covers data inside its period; a deny any that overlaps */
        sqlite3_str_appendall(q->sql, r->deny ? "t.lo < " : "t.lo >= ");
        vl_sqlq_int(q, r->deny ? r->hi : r->lo);
        sqlite3_str_appendall(q->sql, r->deny ? " AND t.hi > " : " AND t.hi <= ");
        vl_sqlq_int(q, r->deny ? r->lo : r->hi);
        sqlite3_str_appendall(q->sql, ")");
    }
    sqlite3_str_appendall(q->sql, ")");
}

/* (permit OR permit ...) AND NOT (deny OR deny ...) */
static void rules_sql(vl_sqlq_t *q, vl_scope_t scope, const char *seq_col)
{
    char *done = calloc(scope.n_rules, 1);
    int any = 0;
    if (!done) {
        q->oom = 1;
        return;
    }
    sqlite3_str_appendall(q->sql, "((");
    for (size_t i = 0; i < scope.n_rules; i++)
        if (!scope.rules[i].deny && !done[i]) {
            if (any++)
                sqlite3_str_appendall(q->sql, " OR ");
            rule_sql(q, scope.rules, scope.n_rules, i, done, seq_col);
        }
    sqlite3_str_appendall(q->sql, any ? ")" : "0)");
    for (size_t i = 0; i < scope.n_rules; i++)
        if (scope.rules[i].deny && !done[i]) {
            sqlite3_str_appendall(q->sql, " AND NOT ");
            rule_sql(q, scope.rules, scope.n_rules, i, done, seq_col);
        }
    sqlite3_str_appendall(q->sql, ")");
    free(done);
}

/* " AND (r.type != T OR <a category facet in the list>)" */
static void categories_sql(vl_sqlq_t *q, vl_scope_t scope, const char *seq_col)
{
    sqlite3_str_appendall(q->sql, " AND (");
    type_expr(q);
    sqlite3_str_appendall(q->sql, " != ");
    vl_sqlq_text(q, scope.category_type);
    sqlite3_str_appendf(q->sql,
                        " OR EXISTS (SELECT 1 FROM version_code c WHERE c.seq = %s AND c.kind = 1"
                        " AND (",
                        seq_col);
    for (size_t i = 0; i < scope.n_categories; i++) {
        sqlite3_str_appendall(q->sql, i ? " OR (c.code = " : "(c.code = ");
        vl_sqlq_text(q, scope.categories[i].code);
        if (scope.categories[i].system) {
            sqlite3_str_appendall(q->sql, " AND c.sid = ");
            vl_sqlq_int(q, system_id(q, scope.categories[i].system));
        }
        sqlite3_str_appendall(q->sql, ")");
    }
    sqlite3_str_appendall(q->sql, ")))");
}

void vl_sqlq_scope(vl_sqlq_t *q, vl_scope_t scope, const char *seq_col)
{
    int parts = 0;
    if (!q)
        return;
    if (scope.n_categories && scope.categories && scope.category_type)
        categories_sql(q, scope, seq_col);
    if (scope.n_types && scope.types) {
        sqlite3_str_appendall(q->sql, " AND ");
        type_expr(q);
        sqlite3_str_appendall(q->sql, " IN (");
        for (size_t i = 0; i < scope.n_types; i++) {
            if (i)
                sqlite3_str_appendall(q->sql, ", ");
            vl_sqlq_text(q, scope.types[i]);
        }
        sqlite3_str_appendall(q->sql, ")");
    }
    if (scope.flags & VL_SCOPE_ALL)
        return;
    sqlite3_str_appendall(q->sql, " AND (");
    if (scope.n_patients && scope.patients) {
        /* a probe of the (seq, patient) key per candidate row: an IN over
         * the patient's versions would list them all for every query */
        sqlite3_str_appendf(q->sql,
                            "EXISTS (SELECT 1 FROM version_patient vp WHERE vp.seq = %s AND"
                            " vp.patient IN (",
                            seq_col);
        for (size_t i = 0; i < scope.n_patients; i++) {
            if (i)
                sqlite3_str_appendall(q->sql, ", ");
            vl_sqlq_text(q, scope.patients[i]);
        }
        sqlite3_str_appendall(q->sql, "))");
        parts++;
    }
    if (scope.flags & VL_SCOPE_SHARED) {
        sqlite3_str_appendf(q->sql,
                            "%sNOT EXISTS (SELECT 1 FROM version_patient vp WHERE vp.seq = %s)",
                            parts ? " OR " : "", seq_col);
        parts++;
    }
    if (scope.n_rules && scope.rules) {
        if (parts)
            sqlite3_str_appendall(q->sql, " OR ");
        rules_sql(q, scope, seq_col);
        parts++;
    }
    if (scope.n_refs && scope.refs && scope.ref_type && scope.ref_param) {
        /* the current version of the resource names one of the refs */
        sqlite3_str_appendall(q->sql, parts ? " OR (r.type = " : "(r.type = ");
        vl_sqlq_text(q, scope.ref_type);
        sqlite3_str_appendall(q->sql,
                              " AND EXISTS (SELECT 1 FROM ix_reference x JOIN resource_version cv"
                              " ON cv.seq = x.seq WHERE cv.rid = r.rid AND cv.version = r.version"
                              " AND x.pid = ");
        bind_param(q, scope.ref_type, scope.ref_param);
        sqlite3_str_appendall(q->sql, " AND x.ref IN (");
        for (size_t i = 0; i < scope.n_refs; i++) {
            if (i)
                sqlite3_str_appendall(q->sql, ", ");
            vl_sqlq_text(q, scope.refs[i]);
        }
        sqlite3_str_appendall(q->sql, ")))");
        parts++;
    }
    if (!parts)
        sqlite3_str_appendall(q->sql, "0");
    sqlite3_str_appendall(q->sql, ")");
}

/* A statement for `sql`: a free cached one with this text, else a new one
 * (kept in a free or the least recently used idle slot). */
static int cached_prepare(vl_bconn_t *c, const char *sql, sqlite3_stmt **st)
{
    int slot = -1, rc;
    for (int i = 0; i < VL_SQLQ_CACHE; i++) {
        if (c->qcache[i].sql && !c->qcache[i].busy && !strcmp(c->qcache[i].sql, sql)) {
            c->qcache[i].busy = 1;
            c->qcache[i].used = ++c->qtick;
            *st = c->qcache[i].st;
            sqlite3_clear_bindings(*st);
            return SQLITE_OK;
        }
        if (!c->qcache[i].busy &&
            (slot < 0 || !c->qcache[i].sql ||
             (c->qcache[slot].sql && c->qcache[i].used < c->qcache[slot].used)))
            slot = i;
    }
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK || slot < 0)
        return rc;
    if (c->qcache[slot].sql) {
        sqlite3_finalize(c->qcache[slot].st);
        free(c->qcache[slot].sql);
    }
    c->qcache[slot].sql = strdup(sql);
    c->qcache[slot].st = c->qcache[slot].sql ? *st : NULL;
    c->qcache[slot].busy = c->qcache[slot].sql != NULL;
    c->qcache[slot].used = ++c->qtick;
    return SQLITE_OK;
}

void vl_sqlq_release(vl_bconn_t *c, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (int i = 0; i < VL_SQLQ_CACHE; i++)
        if (c->qcache[i].st == st && c->qcache[i].busy) {
            sqlite3_reset(st);
            c->qcache[i].busy = 0;
            return;
        }
    sqlite3_finalize(st);
}

void vl_sqlq_cache_clear(vl_bconn_t *c)
{
    for (int i = 0; i < VL_SQLQ_CACHE; i++) {
        sqlite3_finalize(c->qcache[i].st);
        free(c->qcache[i].sql);
    }
    memset(c->qcache, 0, sizeof c->qcache);
}

int vl_sqlq_prepare(vl_sqlq_t *q, sqlite3_stmt **st, vl_store_err_t *err)
{
    char *sql;
    int rc;
    *st = NULL;
    if (!q)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    sql = sqlite3_str_finish(q->sql);
    q->sql = NULL;
    if (q->failed) {
        sqlite3_free(sql);
        *err = q->err;
        return -1;
    }
    if (!sql || q->oom) {
        sqlite3_free(sql);
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    }
    rc = cached_prepare(q->conn, sql, st);
    if (rc == SQLITE_OK && getenv("VL_DEBUG_SQL")) /* every statement, bound values after it */
        fprintf(stderr, "%s\n", sqlite3_expanded_sql(*st) ? sqlite3_expanded_sql(*st) : sql);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_ERROR && strstr(sqlite3_errmsg(q->db), "too"))
            return vl_store_fail(err, VL_STORE_TOO_COSTLY, "the search is too complex");
        return vl_sqlite_error(err, q->db, "preparing a search");
    }
    for (size_t i = 0; i < q->n; i++) {
        const binding_t *b = &q->b[i];
        int brc = b->kind == B_TEXT ? sqlite3_bind_text(*st, (int)i + 1, b->text, -1, SQLITE_STATIC)
                  : b->kind == B_INT ? sqlite3_bind_int64(*st, (int)i + 1, b->i)
                                     : sqlite3_bind_double(*st, (int)i + 1, b->d);
        if (brc != SQLITE_OK) {
            vl_sqlq_release(q->conn, *st);
            *st = NULL;
            return vl_sqlite_error(err, q->db, "binding a search");
        }
    }
    if (getenv("VL_DEBUG_SQL")) { /* every statement with its values, for reading plans */
        char *text = sqlite3_expanded_sql(*st);
        fprintf(stderr, "%s;\n", text ? text : "");
        sqlite3_free(text);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

/* Column names of the row a value is compared with: `a` is the alias of
 * the index table ("x" in a subquery, "d" for the driver, "s" for the
 * series). */
static void col(vl_sqlq_t *q, const char *a, const char *name)
{
    sqlite3_str_appendf(q->sql, "%s.%s", a, name);
}

static void date_eq(vl_sqlq_t *q, const char *lo, const char *hi, const vl_query_value_t *v)
{
    /* hi > lo >= v->lo: the bound on hi lets the series read a range */
    sqlite3_str_appendf(q->sql, "(%s >= ", lo);
    vl_sqlq_int(q, v->lo);
    sqlite3_str_appendf(q->sql, " AND %s <= ", hi);
    vl_sqlq_int(q, v->hi);
    sqlite3_str_appendf(q->sql, " AND %s > ", hi);
    vl_sqlq_int(q, v->lo);
    sqlite3_str_appendall(q->sql, ")");
}

/* FHIR R4 search 3.1.1.4.3, the row's range [lo, hi) (column expressions)
 * against the value's [v->lo, v->hi) (see search.c, design note 5). */
static void date_cmp(vl_sqlq_t *q, const char *lo, const char *hi, const vl_query_value_t *v)
{
    switch (v->cmp) {
    case VL_CMP_EQ: date_eq(q, lo, hi, v); break;
    case VL_CMP_NE:
        sqlite3_str_appendall(q->sql, "NOT ");
        date_eq(q, lo, hi, v);
        break;
    case VL_CMP_LT:
    case VL_CMP_LE:
        sqlite3_str_appendf(q->sql, "(%s < ", lo);
        vl_sqlq_int(q, v->lo);
        if (v->cmp == VL_CMP_LE) {
            sqlite3_str_appendall(q->sql, " OR ");
            date_eq(q, lo, hi, v);
        }
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_CMP_GT:
    case VL_CMP_GE:
        sqlite3_str_appendf(q->sql, "(%s > ", hi);
        vl_sqlq_int(q, v->hi);
        if (v->cmp == VL_CMP_GE) {
            sqlite3_str_appendall(q->sql, " OR ");
            date_eq(q, lo, hi, v);
        }
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_CMP_SA: /* starts after the value ends */
        sqlite3_str_appendf(q->sql, "(%s >= ", lo);
        vl_sqlq_int(q, v->hi);
        sqlite3_str_appendf(q->sql, " AND %s > ", hi);
        vl_sqlq_int(q, v->hi);
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_CMP_EB: /* ends before the value starts */
        sqlite3_str_appendf(q->sql, "(%s <= ", hi);
        vl_sqlq_int(q, v->lo);
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_CMP_AP: /* overlaps the (widened) value */
        sqlite3_str_appendf(q->sql, "(%s < ", lo);
        vl_sqlq_int(q, v->hi);
        sqlite3_str_appendf(q->sql, " AND %s > ", hi);
        vl_sqlq_int(q, v->lo);
        sqlite3_str_appendall(q->sql, ")");
        break;
    }
}

static void date_value(vl_sqlq_t *q, const char *a, const vl_query_value_t *v)
{
    char lo[16], hi[16];
    snprintf(lo, sizeof lo, "%s.lo", a);
    snprintf(hi, sizeof hi, "%s.hi", a);
    date_cmp(q, lo, hi, v);
}

/* value compared as R4 says for quantities: eq, ne, ap against the range
 * the search value denotes ([lo_num, hi_num), its implicit precision or
 * the ap tolerance), the others against the number. */
static void number_value(vl_sqlq_t *q, const char *a, const vl_query_value_t *v)
{
    static const char *const ops[] = {"", "", "<", "<=", ">", ">="};
    switch (v->cmp) {
    case VL_CMP_EQ:
    case VL_CMP_AP:
    case VL_CMP_NE:
        sqlite3_str_appendf(q->sql, "%s(%s.value >= ", v->cmp == VL_CMP_NE ? "NOT " : "", a);
        bind_real(q, v->lo_num);
        sqlite3_str_appendf(q->sql, " AND %s.value < ", a);
        bind_real(q, v->hi_num);
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_CMP_SA: /* R4: with sa and eb the implicit precision is ignored */
        sqlite3_str_appendf(q->sql, "%s.value > ", a);
        bind_real(q, v->number);
        break;
    case VL_CMP_EB:
        sqlite3_str_appendf(q->sql, "%s.value < ", a);
        bind_real(q, v->number);
        break;
    default:
        sqlite3_str_appendf(q->sql, "%s.value %s ", a, ops[v->cmp]);
        bind_real(q, v->number);
        break;
    }
}

/* " AND a.sid = <sid of system>" unless any system matches (NULL). */
static void system_cond(vl_sqlq_t *q, const char *a, const char *system)
{
    if (!system)
        return;
    sqlite3_str_appendf(q->sql, " AND %s.sid = ", a);
    vl_sqlq_int(q, system_id(q, system));
}

/* The starts-with of string search as a key range: norm in
 * [prefix, prefix || 0xFF), so the lookup reads only the matches. */
static void prefix_range(vl_sqlq_t *q, const char *a, const char *prefix)
{
    size_t n = strlen(prefix);
    char *upper = malloc(n + 2);
    if (upper) {
        memcpy(upper, prefix, n);
        upper[n] = (char)0xFF;
        upper[n + 1] = '\0';
    }
    sqlite3_str_appendf(q->sql, "(%s.norm >= ", a);
    vl_sqlq_text(q, prefix);
    sqlite3_str_appendf(q->sql, " AND %s.norm < ", a);
    vl_sqlq_text(q, own(q, upper));
    sqlite3_str_appendall(q->sql, ")");
}

static void index_value(vl_sqlq_t *q, const char *a, const vl_query_cond_t *c,
                        const vl_query_value_t *v)
{
    switch (c->kind) {
    case VL_INDEX_TOKEN:
        sqlite3_str_appendall(q->sql, "(1");
        if (v->text) {
            sqlite3_str_appendf(q->sql, " AND %s.code = ", a);
            vl_sqlq_text(q, v->text);
        }
        system_cond(q, a, v->system);
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_INDEX_STRING:
        if (c->match == VL_MATCH_EXACT) {
            col(q, a, "value");
            sqlite3_str_appendall(q->sql, " = ");
            vl_sqlq_text(q, v->text);
        } else if (c->match == VL_MATCH_CONTAINS) {
            sqlite3_str_appendf(q->sql, "instr(%s.norm, ", a);
            vl_sqlq_text(q, v->text);
            sqlite3_str_appendall(q->sql, ") > 0");
        } else {
            prefix_range(q, a, v->text);
        }
        break;
    case VL_INDEX_REFERENCE:
        col(q, a, "ref");
        sqlite3_str_appendall(q->sql, " = ");
        vl_sqlq_text(q, v->text);
        break;
    case VL_INDEX_DATE:
    case VL_INDEX_SERIES: date_value(q, a, v); break;
    case VL_INDEX_QUANTITY:
        sqlite3_str_appendf(q->sql, "(%s.canon = %d", a, v->canon ? 1 : 0);
        system_cond(q, a, v->system);
        if (v->text && !v->system) { /* N||code: the code or the human unit */
            sqlite3_str_appendf(q->sql, " AND (%s.code = ", a);
            vl_sqlq_text(q, v->text);
            sqlite3_str_appendf(q->sql, " OR %s.unit = ", a);
            vl_sqlq_text(q, v->text);
            sqlite3_str_appendall(q->sql, ")");
        } else if (v->text) {
            sqlite3_str_appendf(q->sql, " AND %s.code = ", a);
            vl_sqlq_text(q, v->text);
        }
        sqlite3_str_appendall(q->sql, " AND ");
        number_value(q, a, v);
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_INDEX_COMPOSITE:
        sqlite3_str_appendall(q->sql, "(1");
        if (v->text) {
            sqlite3_str_appendf(q->sql, " AND %s.code = ", a);
            vl_sqlq_text(q, v->text);
        }
        system_cond(q, a, v->system);
        if (v->unit) {
            sqlite3_str_appendf(q->sql, " AND %s.unit = ", a);
            vl_sqlq_text(q, v->unit);
        }
        sqlite3_str_appendall(q->sql, " AND ");
        number_value(q, a, v);
        sqlite3_str_appendall(q->sql, ")");
        break;
    }
}

/* Emits values [lo, hi) of `c` OR'd as a balanced tree (depth log2 n). */
static void or_values(vl_sqlq_t *q, const char *a, const vl_query_cond_t *c, size_t lo, size_t hi)
{
    if (hi - lo == 1) {
        if (!strcmp(c->param, "_lastUpdated")) /* the range [t, t + 1) */
            date_cmp(q, "v.last_updated", "(v.last_updated + 1)", &c->values[lo]);
        else {
            index_value(q, a, c, &c->values[lo]);
        }
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    sqlite3_str_appendall(q->sql, "(");
    or_values(q, a, c, lo, mid);
    sqlite3_str_appendall(q->sql, " OR ");
    or_values(q, a, c, mid, hi);
    sqlite3_str_appendall(q->sql, ")");
}

static const char *const tables[] = {"ix_token",    "ix_string",    "ix_reference", "ix_date",
                                     "ix_quantity", "ix_composite", "ix_series"};

/* " AND x.ref is a reference to `type`": relative "Type/..." (a key
 * range) or an absolute URL with "/Type/" before its id. */
static void ref_type_sql(vl_sqlq_t *q, const char *type)
{
    size_t n = strlen(type);
    char *lo = malloc(n + 2), *hi = malloc(n + 2), *mid = malloc(n + 3);
    if (lo && hi && mid) {
        snprintf(lo, n + 2, "%s/", type);
        snprintf(hi, n + 2, "%s0", type); /* '0' follows '/' */
        snprintf(mid, n + 3, "/%s/", type);
    }
    sqlite3_str_appendall(q->sql, " AND ((x.ref >= ");
    vl_sqlq_text(q, own(q, lo));
    sqlite3_str_appendall(q->sql, " AND x.ref < ");
    vl_sqlq_text(q, own(q, hi));
    sqlite3_str_appendall(q->sql, ") OR instr(x.ref, ");
    vl_sqlq_text(q, own(q, mid));
    sqlite3_str_appendall(q->sql, ") > 0)");
}

/* "= pid" or, for a union, "IN (pid, pid)" */
static void cond_pids(vl_sqlq_t *q, const vl_query_cond_t *c)
{
    if (!c->also) {
        sqlite3_str_appendall(q->sql, "= ");
        bind_param(q, q->type, c->param);
        return;
    }
    sqlite3_str_appendall(q->sql, "IN (");
    bind_param(q, q->type, c->param);
    sqlite3_str_appendall(q->sql, ", ");
    bind_param(q, q->type, c->also);
    sqlite3_str_appendall(q->sql, ")");
}

typedef struct plan plan_t;
struct plan {
    int series;                    /* drive by ix_series */
    const vl_query_cond_t *driver; /* else drive by this condition's table */
    const char *seq;               /* the version column conditions test */
};
static plan_t make_plan(const vl_query_t *query);
static void from_where(vl_sqlq_t *q, const vl_query_t *query, vl_scope_t scope, const plan_t *p,
                       int rows);

/* A chain or _has (vl_query_cond_t.sub): the sub-query's matches, read in
 * the same scope and snapshot, as an expression on the outer version `seq`
 * (a chain) or the outer resource `r` (_has). The sub-query's aliases
 * shadow the outer ones inside its parentheses; the outer type is restored
 * after it (pids are looked up by type). */
static void sub_sql(vl_sqlq_t *q, const vl_query_cond_t *c, const char *seq, vl_scope_t scope)
{
    vl_query_t sub = *c->sub;
    const char *outer = q->type;
    plan_t sp;
    size_t n = strlen(c->has ? outer : sub.type);
    char *prefix = malloc(n + 2);
    sub.as_of = q->as_of;
    sub.n_sort = 0;
    if (prefix)
        snprintf(prefix, n + 2, "%s/", c->has ? outer : sub.type);
    sp = make_plan(&sub);
    if (!c->has) {
        sqlite3_str_appendf(q->sql, "%s IN (SELECT x.seq FROM ix_reference x WHERE x.pid ", seq);
        cond_pids(q, c);
        sqlite3_str_appendall(q->sql, " AND x.ref IN (SELECT ");
        vl_sqlq_text(q, own(q, prefix));
        sqlite3_str_appendall(q->sql, " || r.id");
        from_where(q, &sub, scope, &sp, 1);
        sqlite3_str_appendall(q->sql, "))");
    } else {
        char *hi = prefix ? strdup(prefix) : NULL;
        if (hi)
            hi[n] = '0'; /* '0' follows '/' */
        sqlite3_str_appendf(q->sql,
                            "r.id IN (SELECT substr(x.ref, %d) FROM ix_reference x"
                            " WHERE x.pid = ",
                            (int)n + 2);
        bind_param(q, sub.type, c->has_param);
        sqlite3_str_appendall(q->sql, " AND x.ref >= ");
        vl_sqlq_text(q, own(q, prefix));
        sqlite3_str_appendall(q->sql, " AND x.ref < ");
        vl_sqlq_text(q, own(q, hi));
        sqlite3_str_appendf(q->sql, " AND x.seq IN (SELECT %s", sp.seq);
        from_where(q, &sub, scope, &sp, 1);
        sqlite3_str_appendall(q->sql, "))");
    }
    q->type = outer;
}

/* Whether every value of condition c fixes every key column of its index
 * but the version (a token with its system and code, a reference): then
 * "the version has such a row" is one primary-key lookup per value. */
static int probes(const vl_query_cond_t *c)
{
    if (c->kind != VL_INDEX_TOKEN && c->kind != VL_INDEX_REFERENCE)
        return 0;
    for (size_t i = 0; i < c->n; i++)
        if (!c->values[i].text || (c->kind == VL_INDEX_TOKEN && !c->values[i].system))
            return 0;
    return c->n > 0 && c->n <= 8;
}

/* One condition as a boolean expression on the version `seq` (no leading
 * AND): the version has (or, negated / :missing=true, has not) a row of
 * the parameter matching one of the values. */
static void cond_sql(vl_sqlq_t *q, const vl_query_cond_t *c, const char *seq, vl_scope_t scope)
{
    if (c->sub) {
        sub_sql(q, c, seq, scope);
        return;
    }
    if (strcmp(c->param, "_id") == 0) { /* any of several ids */
        sqlite3_str_appendall(q->sql, "r.id IN (");
        for (size_t i = 0; i < c->n; i++) {
            if (i)
                sqlite3_str_appendall(q->sql, ", ");
            vl_sqlq_text(q, c->values[i].text ? c->values[i].text : "");
        }
        sqlite3_str_appendall(q->sql, ")");
        return;
    }
    if (c->n == 0 && c->missing < 0) {
        sqlite3_str_appendall(q->sql, "0");
        return;
    }
    if (strcmp(c->param, "_lastUpdated") == 0) {
        if (c->negate)
            sqlite3_str_appendall(q->sql, "NOT ");
        or_values(q, NULL, c, 0, c->n);
        return;
    }
    if (c->missing >= 0) {
        sqlite3_str_appendf(q->sql, "%s %s (SELECT x.seq FROM %s x WHERE x.pid ", seq,
                            c->missing ? "NOT IN" : "IN", tables[c->kind]);
        cond_pids(q, c);
        if (c->ref_type && c->kind == VL_INDEX_REFERENCE)
            ref_type_sql(q, c->ref_type);
        sqlite3_str_appendall(q->sql, ")");
        return;
    }
    if (!c->negate && probes(c)) {
        /* a key lookup per candidate version, instead of collecting every
         * matching row of the index first (which, for a common category
         * or code, is millions of rows for a page of a few) */
        sqlite3_str_appendf(q->sql, "EXISTS (SELECT 1 FROM %s x WHERE x.pid ", tables[c->kind]);
        cond_pids(q, c);
        sqlite3_str_appendall(q->sql, " AND ");
        or_values(q, "x", c, 0, c->n);
        sqlite3_str_appendf(q->sql, " AND x.seq = %s)", seq);
        return;
    }
    sqlite3_str_appendf(q->sql, "%s %s (SELECT x.seq FROM %s x WHERE x.pid ", seq,
                        c->negate ? "NOT IN" : "IN", tables[c->kind]);
    cond_pids(q, c);
    sqlite3_str_appendall(q->sql, " AND ");
    or_values(q, "x", c, 0, c->n);
    sqlite3_str_appendall(q->sql, ")");
}

/* ------------------------------------------------------------------------
 * The plan: which index drives the query
 *
 * A search reads one index in its key order (the driver) and checks the
 * other conditions per row, so a page stops after `count` matches instead
 * of collecting them all:
 *   series   the query's series (vl_query_t.series): this patient's rows
 *            of this code, by time; its date conditions bound the range
 *   index    the first positive condition with one value, of a kind whose
 *            rows a lookup reads as a range: a reference, a token with a
 *            code, a composite, a string (starts-with or exact), a date
 *   none     the type's resources in id order
 * Without _sort, results come in the driver's key order (R4 defines no
 * default order; this one is stable and repeatable). With _sort, by the
 * keys, then by version.
 * ---------------------------------------------------------------------- */

static int drivable(const vl_query_cond_t *c)
{
    if (c->negate || c->missing >= 0 || c->n != 1 || c->param[0] == '_' || c->also || c->sub)
        return 0;
    switch (c->kind) {
    case VL_INDEX_REFERENCE: return 1;
    case VL_INDEX_TOKEN: return c->values[0].text != NULL;
    case VL_INDEX_COMPOSITE: return c->values[0].text != NULL;
    case VL_INDEX_STRING: return c->match != VL_MATCH_CONTAINS;
    default: return 0;
    }
}

/* Whether condition c applies to the series' time instead of its rows. */
static int on_series(const vl_query_t *query, const vl_query_cond_t *c)
{
    return query->series.patient && query->series.date_param &&
           !strcmp(c->param, query->series.date_param) && c->kind == VL_INDEX_DATE && c->n == 1 &&
           !c->negate && c->missing < 0;
}

static plan_t make_plan(const vl_query_t *query)
{
    plan_t p = {0, NULL, "v.seq"};
    if (query->series.patient && query->series.code && query->series.code_param) {
        p.series = 1;
        p.seq = "s.seq";
        return p;
    }
    for (int pass = 0; pass < 2 && !p.driver; pass++)
        for (size_t i = 0; i < query->n && !p.driver; i++) {
            const vl_query_cond_t *c = &query->conds[i];
            /* references first: one patient's rows are the fewest */
            if (drivable(c) && (pass == 1 || c->kind == VL_INDEX_REFERENCE))
                p.driver = c;
        }
    if (p.driver)
        p.seq = "d.seq";
    return p;
}

/* Bounds on the series' key (hi) that a date value implies, so that the
 * lookup reads a key range: hi > lo always holds, and a row that starts
 * before T ends before T + the longest span of the series (series_span). */
static void span_bound(vl_sqlq_t *q, const vl_query_t *query, int64_t t)
{
    /* hi <= t + span, saturated at INT64_MAX (an open end's span is
     * INT64_MAX; t may be negative, before 1970) */
    sqlite3_str_appendall(q->sql,
                          " AND s.hi <= (SELECT CASE WHEN x.span >= 9223372036854775807 - ");
    vl_sqlq_int(q, t > 0 ? t : 0);
    sqlite3_str_appendall(q->sql, " THEN 9223372036854775807 ELSE x.span + ");
    vl_sqlq_int(q, t);
    sqlite3_str_appendall(q->sql, " END FROM (SELECT coalesce((SELECT span FROM series_span"
                                  " WHERE pid = ");
    bind_param(q, query->type, query->series.code_param);
    sqlite3_str_appendall(q->sql, "), 0) AS span) x)");
}

static void series_bounds(vl_sqlq_t *q, const vl_query_t *query, const vl_query_value_t *v)
{
    switch (v->cmp) {
    case VL_CMP_GE: /* gt or eq: hi > v->lo either way */
    case VL_CMP_AP:
        sqlite3_str_appendall(q->sql, " AND s.hi > ");
        vl_sqlq_int(q, v->lo);
        if (v->cmp == VL_CMP_AP)
            span_bound(q, query, v->hi);
        break;
    case VL_CMP_SA:
        sqlite3_str_appendall(q->sql, " AND s.hi > ");
        vl_sqlq_int(q, v->hi);
        break;
    case VL_CMP_LT: span_bound(q, query, v->lo); break;
    case VL_CMP_LE: /* lt, or eq (hi <= v->hi) */
        span_bound(q, query, v->lo > v->hi ? v->lo : v->hi);
        break;
    default: break; /* eq, gt, eb bound hi themselves; ne cannot */
    }
}

/* The driver's rows: "FROM <table> <alias>" and its lookup. */
static void driver_sql(vl_sqlq_t *q, const vl_query_t *query, const plan_t *p)
{
    if (p->series) {
        sqlite3_str_appendall(q->sql, " FROM ix_series s");
        return;
    }
    if (p->driver)
        sqlite3_str_appendf(q->sql, " FROM %s d", tables[p->driver->kind]);
}

static void driver_where(vl_sqlq_t *q, const vl_query_t *query, const plan_t *p)
{
    if (p->series) {
        sqlite3_str_appendall(q->sql, " s.pid = ");
        bind_param(q, query->type, query->series.code_param);
        sqlite3_str_appendall(q->sql, " AND s.patient = ");
        vl_sqlq_text(q, query->series.patient);
        sqlite3_str_appendall(q->sql, " AND s.code = ");
        vl_sqlq_text(q, query->series.code);
        system_cond(q, "s", query->series.system);
        for (size_t i = 0; i < query->n; i++)
            if (on_series(query, &query->conds[i])) {
                sqlite3_str_appendall(q->sql, " AND s.hi <> ");
                vl_sqlq_int(q, VL_SERIES_UNDATED);
                sqlite3_str_appendall(q->sql, " AND ");
                date_value(q, "s", &query->conds[i].values[0]);
                series_bounds(q, query, &query->conds[i].values[0]);
            }
        return;
    }
    sqlite3_str_appendall(q->sql, " d.pid = ");
    bind_param(q, query->type, p->driver->param);
    sqlite3_str_appendall(q->sql, " AND ");
    index_value(q, "d", p->driver, &p->driver->values[0]);
}

/* The conditions the driver does not answer, AND'd. */
static void other_conds(vl_sqlq_t *q, const vl_query_t *query, const plan_t *p, vl_scope_t scope)
{
    for (size_t i = 0; i < query->n; i++) {
        const vl_query_cond_t *c = &query->conds[i];
        if (c == p->driver || (p->series && on_series(query, c)))
            continue;
        sqlite3_str_appendall(q->sql, " AND ");
        cond_sql(q, c, p->seq, scope);
    }
}

/* Whether every series row of the query is visible by the scope's
 * patients: a series row of "Patient/x" is a version in x's compartment
 * (its subject), so a scope of x needs no probe per row. */
static int series_visible(const vl_query_t *query, vl_scope_t scope)
{
    const char *id = query->series.patient + 8; /* after "Patient/" */
    if (strncmp(query->series.patient, "Patient/", 8) != 0)
        return 0;
    for (size_t i = 0; i < scope.n_patients && scope.patients; i++)
        if (!strcmp(scope.patients[i], id))
            return 1;
    return 0;
}

/* Whether the conditions or sort keys read the resource or version row. */
static int needs_rows(const vl_query_t *query, vl_scope_t scope)
{
    if (query->id || (!(scope.flags & VL_SCOPE_ALL) && scope.n_refs))
        return 1;
    if (query->as_of)
        return 1; /* a snapshot reads which version was current then */
    for (size_t i = 0; i < query->n; i++)
        if (query->conds[i].param[0] == '_' || (query->conds[i].sub && query->conds[i].has))
            return 1;
    return 0;
}

/* " AND <seq> is the version of its resource `r` current as of the
 * snapshot": written at or before it, and either still current or replaced
 * only after it (resource_version (rid, version) is unique, so the probe
 * is one index lookup). Deletes have no index rows and are never a driver
 * row; without a driver, v.deleted = 0 says it. */
void vl_sqlq_snapshot(vl_sqlq_t *q, const char *seq, int64_t as_of)
{
    sqlite3_str_appendf(q->sql, " AND %s <= ", seq);
    vl_sqlq_int(q, as_of);
    sqlite3_str_appendall(q->sql, " AND (v.version = r.version OR NOT EXISTS (SELECT 1 FROM"
                                  " resource_version w WHERE w.rid = v.rid AND w.version ="
                                  " v.version + 1 AND w.seq <= ");
    vl_sqlq_int(q, as_of);
    sqlite3_str_appendall(q->sql, "))");
}

/* FROM ... WHERE ...: the driver, joined with the version and resource
 * rows (`rows`), or alone with the superseded check (counts). */
static void from_where(vl_sqlq_t *q, const vl_query_t *query, vl_scope_t scope, const plan_t *p,
                       int rows)
{
    q->type = query->type;
    q->as_of = query->as_of;
    if (!p->series && !p->driver) {
        if (query->as_of) {
            vl_sqlq_sql(q, " FROM resource r JOIN resource_version v ON v.rid = r.rid"
                           " WHERE v.deleted = 0 AND r.type = ");
            vl_sqlq_text(q, query->type);
            vl_sqlq_snapshot(q, "v.seq", query->as_of);
        } else {
            vl_sqlq_sql(q, " FROM resource r JOIN resource_version v ON v.rid = r.rid"
                           " AND v.version = r.version WHERE r.deleted = 0 AND r.type = ");
            vl_sqlq_text(q, query->type);
        }
    } else {
        driver_sql(q, query, p);
        if (rows)
            sqlite3_str_appendf(q->sql,
                                " JOIN resource_version v ON v.seq = %s JOIN resource r"
                                " ON r.rid = v.rid%s",
                                p->seq, query->as_of ? "" : " AND r.version = v.version");
        sqlite3_str_appendall(q->sql, " WHERE");
        driver_where(q, query, p);
        if (!rows)
            sqlite3_str_appendf(q->sql, " AND %s NOT IN (SELECT seq FROM superseded)", p->seq);
        else if (query->as_of)
            vl_sqlq_snapshot(q, p->seq, query->as_of);
    }
    if (query->id) {
        vl_sqlq_sql(q, " AND r.id = ");
        vl_sqlq_text(q, query->id);
    }
    other_conds(q, query, p, scope);
    if (p->series && series_visible(query, scope))
        scope.flags |= VL_SCOPE_ALL; /* categories still apply (vl_sqlq_scope) */
    vl_sqlq_scope(q, scope, p->seq);
}

/* ------------------------------------------------------------------------
 * Order keys and keyset positions
 *
 * A page's order is a list of keys ending with the version (the
 * tie-breaker, unique): with _sort, the sort keys then the version, in the
 * direction of the first key; without, the driver's key order (the
 * columns its index is sorted by), which a lookup reads without sorting.
 * Plans that group rows by version (may_repeat: a version can match
 * through several rows) order by version only, or for the series by time
 * and version: columns that may differ between a version's rows cannot be
 * keys, or one version could sort at two positions.
 *
 * A keyset position is the values of the keys at one row, serialized
 * (type byte 'n' null, 'i' integer, 'r' real, 't' text with a 2-byte
 * length) into at most VL_QUERY_KEY_MAX bytes. "After it" is, in the
 * page's order (ix_sort keys are NULL for resources without one, which
 * come last either way): the row whose first differing key comes later. For
 * keys of one direction that are never NULL (every order without _sort)
 * it is one row-value comparison, which SQLite answers by seeking the
 * driver's index: a deep page costs what the first does.
 * ---------------------------------------------------------------------- */

#define MAX_KEYS (VL_QUERY_SORT_MAX + 6)

typedef struct okey {
    const char *col;   /* a column or NULL: the ix_sort key of `param` */
    const char *param; /* ix_sort */
    int desc;
    int nullable;
} okey_t;

static int may_repeat(const plan_t *p);

static size_t order_keys(const vl_query_t *query, const plan_t *p, int distinct, okey_t *k)
{
    size_t n = 0;
    int desc = query->n_sort ? query->sort[0].desc : 0;
    if (query->n_sort) {
        for (size_t i = 0; i < query->n_sort; i++) {
            const vl_query_sort_t *s = &query->sort[i];
            if (!strcmp(s->param, "_lastUpdated"))
                k[n++] = (okey_t){"v.last_updated", NULL, s->desc, 0};
            else if (!strcmp(s->param, "_id"))
                k[n++] = (okey_t){"r.id", NULL, s->desc, 0};
            else if (i == 0 && p->series && s->desc && query->series.date_param &&
                     !strcmp(s->param, query->series.date_param))
                /* the series' key order, read backwards: the latest first,
                 * the undated (VL_SERIES_UNDATED) last */
                k[n++] = (okey_t){"s.hi", NULL, 1, 0};
            else
                k[n++] = (okey_t){NULL, s->param, s->desc, 1};
        }
    } else if (p->series) {
        if (!distinct) {
            k[n++] = (okey_t){"s.code", NULL, 0, 0};
            k[n++] = (okey_t){"s.sid", NULL, 0, 0};
        }
        k[n++] = (okey_t){"s.hi", NULL, 0, 0};
    } else if (p->driver && !distinct) {
        switch (p->driver->kind) {
        case VL_INDEX_TOKEN:
            k[n++] = (okey_t){"d.code", NULL, 0, 0};
            k[n++] = (okey_t){"d.sid", NULL, 0, 0};
            break;
        case VL_INDEX_STRING:
            k[n++] = (okey_t){"d.norm", NULL, 0, 0};
            k[n++] = (okey_t){"d.value", NULL, 0, 0};
            break;
        case VL_INDEX_REFERENCE: k[n++] = (okey_t){"d.ref", NULL, 0, 0}; break;
        case VL_INDEX_COMPOSITE:
            k[n++] = (okey_t){"d.code", NULL, 0, 0};
            k[n++] = (okey_t){"d.sid", NULL, 0, 0};
            k[n++] = (okey_t){"d.unit", NULL, 0, 0};
            k[n++] = (okey_t){"d.value", NULL, 0, 0};
            break;
        default: break;
        }
    } else if (!p->driver) {
        /* ids are unique within the type: the id alone is the key (and
         * the type's (type, id) index reads it in order) */
        k[n++] = (okey_t){"r.id", NULL, 0, 0};
        return n;
    }
    k[n++] = (okey_t){p->seq, NULL, desc, 0};
    return n;
}

static void key_sql(vl_sqlq_t *q, const vl_query_t *query, const plan_t *p, const okey_t *k)
{
    if (k->col) {
        sqlite3_str_appendall(q->sql, k->col);
        return;
    }
    sqlite3_str_appendf(q->sql, "(SELECT k.%s FROM ix_sort k WHERE k.seq = %s AND k.pid = ",
                        k->desc ? "hi" : "lo", p->seq);
    bind_param(q, query->type, k->param);
    sqlite3_str_appendall(q->sql, ")");
}

static void order_sql(vl_sqlq_t *q, const vl_query_t *query, const plan_t *p, const okey_t *k,
                      size_t n)
{
    sqlite3_str_appendall(q->sql, " ORDER BY ");
    for (size_t i = 0; i < n; i++) {
        int desc = k[i].desc != query->backward; /* read backwards: every key reversed */
        if (i)
            sqlite3_str_appendall(q->sql, ", ");
        key_sql(q, query, p, &k[i]);
        sqlite3_str_appendall(q->sql, desc ? " DESC" : " ASC");
        if (k[i].nullable)
            sqlite3_str_appendall(q->sql, query->backward ? " NULLS FIRST" : " NULLS LAST");
    }
}

/* A decoded key value (pointing into the position's bytes). */
typedef struct kval {
    char type; /* 'n', 'i', 'r', 't' */
    int64_t i;
    double d;
    const char *t;
    size_t tlen;
} kval_t;

static int decode_keys(const unsigned char *b, size_t len, kval_t *v, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (at >= len)
            return -1;
        v[i].type = (char)b[at++];
        switch (v[i].type) {
        case 'n': break;
        case 'i':
        case 'r': {
            uint64_t u = 0;
            if (len - at < 8)
                return -1;
            for (int k = 0; k < 8; k++)
                u |= (uint64_t)b[at + (size_t)k] << (8 * k);
            at += 8;
            if (v[i].type == 'i')
                v[i].i = (int64_t)u;
            else
                memcpy(&v[i].d, &u, sizeof u);
            break;
        }
        case 't':
            if (len - at < 2)
                return -1;
            v[i].tlen = (size_t)b[at] | (size_t)b[at + 1] << 8;
            at += 2;
            if (len - at < v[i].tlen)
                return -1;
            v[i].t = (const char *)b + at;
            at += v[i].tlen;
            break;
        default: return -1;
        }
    }
    return at == len ? 0 : -1;
}

static void bind_kval(vl_sqlq_t *q, const kval_t *v)
{
    switch (v->type) {
    case 'i': vl_sqlq_int(q, v->i); break;
    case 'r': bind_real(q, v->d); break;
    case 't': vl_sqlq_text(q, own(q, strndup(v->t, v->tlen))); break;
    default: sqlite3_str_appendall(q->sql, "NULL"); break;
    }
}

/* " AND (the row comes after the position)" (before it when backward). */
static void keyset_sql(vl_sqlq_t *q, const vl_query_t *query, const plan_t *p, const okey_t *k,
                       size_t n, const kval_t *v)
{
    int simple = 1;
    for (size_t i = 0; i < n; i++)
        simple &= !k[i].nullable && k[i].desc == k[0].desc && v[i].type != 'n';
    sqlite3_str_appendall(q->sql, " AND ");
    if (simple) {
        int later = k[0].desc == query->backward; /* ascending and forward: greater */
        sqlite3_str_appendall(q->sql, "(");
        for (size_t i = 0; i < n; i++) {
            if (i)
                sqlite3_str_appendall(q->sql, ", ");
            key_sql(q, query, p, &k[i]);
        }
        sqlite3_str_appendall(q->sql, later ? ") > (" : ") < (");
        for (size_t i = 0; i < n; i++) {
            if (i)
                sqlite3_str_appendall(q->sql, ", ");
            bind_kval(q, &v[i]);
        }
        sqlite3_str_appendall(q->sql, ")");
        return;
    }
    /* OR over i of (keys before i equal AND key i beyond), NULLs last */
    sqlite3_str_appendall(q->sql, "(");
    for (size_t i = 0; i < n; i++) {
        int greater = k[i].desc == query->backward;
        sqlite3_str_appendall(q->sql, i ? " OR (" : "(");
        for (size_t j = 0; j < i; j++) {
            key_sql(q, query, p, &k[j]);
            if (v[j].type == 'n') {
                sqlite3_str_appendall(q->sql, " IS NULL AND ");
            } else {
                sqlite3_str_appendall(q->sql, " = ");
                bind_kval(q, &v[j]);
                sqlite3_str_appendall(q->sql, " AND ");
            }
        }
        if (v[i].type == 'n') {
            /* nothing comes after NULL; before it: every non-NULL */
            if (query->backward) {
                key_sql(q, query, p, &k[i]);
                sqlite3_str_appendall(q->sql, " IS NOT NULL)");
            } else {
                sqlite3_str_appendall(q->sql, "0)");
            }
            continue;
        }
        sqlite3_str_appendall(q->sql, "(");
        key_sql(q, query, p, &k[i]);
        sqlite3_str_appendall(q->sql, greater ? " > " : " < ");
        bind_kval(q, &v[i]);
        if (k[i].nullable && !query->backward) {
            sqlite3_str_appendall(q->sql, " OR ");
            key_sql(q, query, p, &k[i]);
            sqlite3_str_appendall(q->sql, " IS NULL");
        }
        sqlite3_str_appendall(q->sql, "))");
    }
    sqlite3_str_appendall(q->sql, ")");
}

/* Serializes the key columns [first, first + n) of the current row. 0, or
 * -1 when out of memory; *len 0 when they do not fit. */
static int encode_keys(sqlite3_stmt *st, int first, size_t n, unsigned char **out, size_t *len)
{
    unsigned char b[VL_QUERY_KEY_MAX];
    size_t at = 0;
    *out = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        int col = first + (int)i;
        switch (sqlite3_column_type(st, col)) {
        case SQLITE_INTEGER:
        case SQLITE_FLOAT: {
            int is_int = sqlite3_column_type(st, col) == SQLITE_INTEGER;
            uint64_t u;
            if (at + 9 > sizeof b)
                return 0;
            if (is_int) {
                u = (uint64_t)sqlite3_column_int64(st, col);
            } else {
                double d = sqlite3_column_double(st, col);
                memcpy(&u, &d, sizeof u);
            }
            b[at++] = is_int ? 'i' : 'r';
            for (int k = 0; k < 8; k++)
                b[at++] = (unsigned char)(u >> (8 * k));
            break;
        }
        case SQLITE_NULL:
            if (at + 1 > sizeof b)
                return 0;
            b[at++] = 'n';
            break;
        default: {
            const unsigned char *t = sqlite3_column_text(st, col);
            size_t tl = (size_t)sqlite3_column_bytes(st, col);
            if (!t || at + 3 + tl > sizeof b)
                return 0;
            b[at++] = 't';
            b[at++] = (unsigned char)(tl & 0xff);
            b[at++] = (unsigned char)(tl >> 8);
            memcpy(b + at, t, tl);
            at += tl;
            break;
        }
        }
    }
    if (!(*out = malloc(at ? at : 1)))
        return -1;
    memcpy(*out, b, at);
    *len = at;
    return 0;
}

/* Steps the page statement: records (columns 0-6) and, with want_keys,
 * each row's position (the key columns after them). Once the bodies hold
 * max_bytes, one more row is read (if there is one), so that the caller
 * knows whether the page it cuts there is the last. */
static int collect_page(sqlite3 *db, sqlite3_stmt *st, size_t nkeys, int want_keys,
                        size_t max_bytes, vl_records_t *out, vl_store_err_t *err)
{
    size_t bytes = 0, cap_keys = 0;
    int rc, probe = 0;
    if (!want_keys)
        return vl_sqlite_collect(db, st, max_bytes, out, err);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t *lens;
        if (vl_grow(&out->items, &out->cap, out->n + 1, sizeof *out->items) < 0 ||
            vl_grow(&out->keys, &cap_keys, out->n + 1, sizeof *out->keys) < 0 ||
            !(lens = realloc(out->key_lens, cap_keys * sizeof *out->key_lens)))
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        out->key_lens = lens;
        out->keys[out->n] = NULL;
        if (vl_sqlite_row_to_record(st, &out->items[out->n]) < 0)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        bytes += out->items[out->n].body_len;
        out->n++;
        if (encode_keys(st, 7, nkeys, &out->keys[out->n - 1], &out->key_lens[out->n - 1]) < 0)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        if (probe)
            return 0; /* the row after the bytes: the caller knows more follow */
        if (max_bytes && bytes >= max_bytes)
            probe = 1;
    }
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, db, "reading results");
    return 0;
}

/* Reverses a page read backwards into the query's order. */
static void reverse_page(vl_records_t *out)
{
    for (size_t i = 0, j = out->n ? out->n - 1 : 0; i < j; i++, j--) {
        vl_record_t r = out->items[i];
        out->items[i] = out->items[j];
        out->items[j] = r;
        if (out->keys) {
            unsigned char *k = out->keys[i];
            size_t l = out->key_lens[i];
            out->keys[i] = out->keys[j];
            out->key_lens[i] = out->key_lens[j];
            out->keys[j] = k;
            out->key_lens[j] = l;
        }
    }
}

/* A driver row per (version, matching value): a version whose several
 * values match (two codings of one code) would come twice. */
static int may_repeat(const plan_t *p)
{
    return p->driver && !p->driver->unique &&
           (p->driver->kind == VL_INDEX_STRING || p->driver->kind == VL_INDEX_COMPOSITE ||
            (p->driver->kind == VL_INDEX_TOKEN && !p->driver->values[0].system));
}

/* Appends to `plan` what SQLite's EXPLAIN QUERY PLAN says of the statement
 * `q` holds, one line per step ("| " before the steps inside another). */
static int explain(vl_bconn_t *c, vl_sqlq_t *q, vl_buf_t *plan, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    sqlite3_str *x = sqlite3_str_new(c->db);
    sqlite3_str_appendall(x, "EXPLAIN QUERY PLAN ");
    if (sqlite3_str_value(q->sql))
        sqlite3_str_appendall(x, sqlite3_str_value(q->sql));
    sqlite3_free(sqlite3_str_finish(q->sql));
    q->sql = x;
    if (getenv("VL_DEBUG_SQL"))
        fprintf(stderr, "%s\n", sqlite3_str_value(x));
    if (vl_sqlq_prepare(q, &st, err) < 0)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        vl_buf_printf(plan, "%s%s\n", sqlite3_column_int(st, 1) ? "| " : "",
                      (const char *)sqlite3_column_text(st, 3));
    vl_sqlq_release(c, st);
    if (rc != SQLITE_DONE)
        return vl_sqlite_error(err, c->db, "explaining a search");
    return 0;
}

int vl_sqlite_snapshot_seq(vl_bconn_t *c, int64_t *seq, vl_store_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (cached_prepare(c, "SELECT coalesce(max(seq), 0) FROM resource_version", &st) != SQLITE_OK)
        return vl_sqlite_error(err, c->db, "preparing the snapshot");
    rc = sqlite3_step(st);
    *seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    vl_sqlq_release(c, st);
    if (rc != SQLITE_ROW)
        return vl_sqlite_error(err, c->db, "taking a snapshot");
    return 0;
}

int vl_sqlite_search(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *query, int with_total,
                     size_t max_bytes, vl_records_t *out, vl_store_err_t *err)
{
    return vl_sqlite_search_plan(c, scope, query, with_total, max_bytes, out, NULL, err);
}

int vl_sqlite_search_plan(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *query, int with_total,
                          size_t max_bytes, vl_records_t *out, vl_buf_t *plan, vl_store_err_t *err)
{
    vl_sqlq_t *q = NULL;
    sqlite3_stmt *st = NULL;
    int ret = -1;
    plan_t p = make_plan(query);
    int distinct = may_repeat(&p) || (p.series && !query->series.system);
    vl_query_t snap;
    okey_t keys[MAX_KEYS];
    kval_t after[MAX_KEYS];
    size_t nkeys = order_keys(query, &p, distinct, keys);
    memset(out, 0, sizeof *out);
    out->total = -1;
    if (query->as_of < 0) { /* a snapshot of now: the highest committed version */
        snap = *query;
        if (vl_sqlite_snapshot_seq(c, &snap.as_of, err) < 0)
            return -1;
        if (snap.as_of == 0)
            snap.as_of = 1; /* an empty store: nothing is visible either way */
        query = &snap;
    }
    out->as_of = query->as_of;
    if (query->after && decode_keys(query->after, query->after_len, after, nkeys) < 0)
        return vl_store_fail(err, VL_STORE_INVALID, "a page position of another search");

    if (with_total || query->count == 0) {
        if (!with_total) { /* _count=0 without a total: nothing to read */
            out->total = -1;
            return 0;
        }
        q = vl_sqlq_new(c);
        if (!q)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        int rows = needs_rows(query, scope) || (!p.series && !p.driver);
        /* distinct versions before the bound: a version with two matching
         * rows counts once, and the bound counts versions */
        vl_sqlq_sql(q, "SELECT count(*) FROM (SELECT ");
        if (distinct)
            vl_sqlq_sql(q, "DISTINCT ");
        vl_sqlq_sql(q, p.seq);
        vl_sqlq_sql(q, " AS seq");
        from_where(q, query, scope, &p, rows);
        if (with_total == VL_TOTAL_BOUNDED) {
            vl_sqlq_sql(q, " LIMIT ");
            vl_sqlq_int(q, VL_TOTAL_BOUND + 1);
        }
        vl_sqlq_sql(q, ")");
        if (plan) {
            vl_buf_printf(plan, "count:\n");
            if (explain(c, q, plan, err) < 0)
                goto out;
            vl_sqlq_free(q);
            q = NULL;
            goto page;
        }
        if (vl_sqlq_prepare(q, &st, err) < 0)
            goto out;
        if (sqlite3_step(st) == SQLITE_ROW)
            out->total = sqlite3_column_int64(st, 0);
        else {
            vl_sqlite_error(err, c->db, "counting matches");
            goto out;
        }
        if (with_total == VL_TOTAL_BOUNDED && out->total > VL_TOTAL_BOUND)
            out->total = -1; /* more than the bound: unknown */
        vl_sqlq_release(c, st);
        st = NULL;
        vl_sqlq_free(q);
        q = NULL;
        if (query->count == 0) {
            ret = 0;
            goto out;
        }
    }

page:
    q = vl_sqlq_new(c);
    if (!q)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    vl_sqlq_sql(q, "SELECT " VL_SQLITE_RECORD_COLUMNS);
    for (size_t i = 0; query->want_keys && i < nkeys; i++) {
        vl_sqlq_sql(q, ", ");
        key_sql(q, query, &p, &keys[i]);
    }
    from_where(q, query, scope, &p, 1);
    if (query->after)
        keyset_sql(q, query, &p, keys, nkeys, after);
    if (distinct)
        sqlite3_str_appendf(q->sql, " GROUP BY %s", p.seq);
    order_sql(q, query, &p, keys, nkeys);
    vl_sqlq_sql(q, " LIMIT ");
    vl_sqlq_int(q, query->count > 0 ? query->count : 50);
    vl_sqlq_sql(q, " OFFSET ");
    vl_sqlq_int(q, query->offset > 0 ? query->offset : 0);
    if (plan) {
        vl_buf_printf(plan, "page:\n");
        ret = explain(c, q, plan, err);
        goto out;
    }
    if (vl_sqlq_prepare(q, &st, err) < 0)
        goto out;
    ret = collect_page(c->db, st, nkeys, query->want_keys, max_bytes, out, err);
    if (ret == 0 && query->backward)
        reverse_page(out);
out:
    vl_sqlq_free(q);
    vl_sqlq_release(c, st);
    if (ret < 0)
        vl_records_free(out);
    return ret;
}

int vl_sqlite_explain(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int with_total,
                      vl_buf_t *plan, vl_store_err_t *err)
{
    vl_records_t none;
    int rc = vl_sqlite_search_plan(c, scope, q, with_total, 0, &none, plan, err);
    vl_records_free(&none);
    return rc;
}
