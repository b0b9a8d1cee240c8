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

/* The stored name of a search parameter of `type`: index rows carry
 * "<type>.<param>" (schemas/006), so one type's rows never crowd another's
 * lookups (AuditEvent "patient" against Observation "patient"). */
static void param_name(vl_sqlq_t *q, const char *type, const char *param)
{
    sqlite3_str_appendall(q->sql, "(");
    vl_sqlq_text(q, type ? type : "");
    sqlite3_str_appendall(q->sql, " || '.' || ");
    vl_sqlq_text(q, param);
    sqlite3_str_appendall(q->sql, ")");
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
        sqlite3_str_appendall(q->sql, " AND r.type IN (");
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
                sqlite3_str_appendall(q->sql, " AND c.system = ");
                vl_sqlq_text(q, r->codes[i].system);
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
    sqlite3_str_appendall(q->sql, " AND (r.type != ");
    vl_sqlq_text(q, scope.category_type);
    sqlite3_str_appendf(q->sql,
                        " OR EXISTS (SELECT 1 FROM version_code c WHERE c.seq = %s AND c.kind = 1"
                        " AND (",
                        seq_col);
    for (size_t i = 0; i < scope.n_categories; i++) {
        sqlite3_str_appendall(q->sql, i ? " OR (c.code = " : "(c.code = ");
        vl_sqlq_text(q, scope.categories[i].code);
        if (scope.categories[i].system) {
            sqlite3_str_appendall(q->sql, " AND c.system = ");
            vl_sqlq_text(q, scope.categories[i].system);
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
        sqlite3_str_appendall(q->sql, parts ? " OR (r.type = " : "(r.type = ");
        vl_sqlq_text(q, scope.ref_type);
        sqlite3_str_appendall(q->sql, " AND EXISTS (SELECT 1 FROM idx_reference x WHERE x.rid ="
                                      " r.rid AND x.param = ");
        param_name(q, scope.ref_type, scope.ref_param);
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
    if (!sql || q->oom) {
        sqlite3_free(sql);
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    }
    rc = cached_prepare(q->conn, sql, st);
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
    return 0;
}

/* ------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

static void date_eq(vl_sqlq_t *q, const char *lo, const char *hi, const vl_query_value_t *v)
{
    sqlite3_str_appendf(q->sql, "(%s >= ", lo);
    vl_sqlq_int(q, v->lo);
    sqlite3_str_appendf(q->sql, " AND %s <= ", hi);
    vl_sqlq_int(q, v->hi);
    sqlite3_str_appendall(q->sql, ")");
}

static void date_value(vl_sqlq_t *q, const char *lo, const char *hi, const vl_query_value_t *v)
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
    }
}

static void quantity_value(vl_sqlq_t *q, const vl_query_value_t *v)
{
    static const char *const ops[] = {"=", "<>", "<", "<=", ">", ">="};
    sqlite3_str_appendall(q->sql, "(");
    if (v->cmp == VL_CMP_EQ || v->cmp == VL_CMP_NE) {
        double tol = fabs(v->number) * 1e-9;
        sqlite3_str_appendall(q->sql,
                              v->cmp == VL_CMP_EQ ? "value BETWEEN " : "value NOT BETWEEN ");
        bind_real(q, v->number - tol);
        sqlite3_str_appendall(q->sql, " AND ");
        bind_real(q, v->number + tol);
    } else {
        sqlite3_str_appendf(q->sql, "value %s ", ops[v->cmp]);
        bind_real(q, v->number);
    }
    if (v->system && v->system[0]) {
        sqlite3_str_appendall(q->sql, " AND system = ");
        vl_sqlq_text(q, v->system);
    }
    if (v->text && v->text[0]) {
        sqlite3_str_appendall(q->sql, " AND code = ");
        vl_sqlq_text(q, v->text);
    }
    sqlite3_str_appendall(q->sql, ")");
}

static void index_value(vl_sqlq_t *q, const vl_query_cond_t *c, const vl_query_value_t *v)
{
    switch (c->kind) {
    case VL_INDEX_TOKEN:
        sqlite3_str_appendall(q->sql, "(1");
        if (v->text) {
            sqlite3_str_appendall(q->sql, " AND code = ");
            vl_sqlq_text(q, v->text);
        }
        if (v->system && v->system[0] == '\0') {
            sqlite3_str_appendall(q->sql, " AND system IS NULL");
        } else if (v->system) {
            sqlite3_str_appendall(q->sql, " AND system = ");
            vl_sqlq_text(q, v->system);
        }
        sqlite3_str_appendall(q->sql, ")");
        break;
    case VL_INDEX_STRING:
        if (c->match == VL_MATCH_EXACT) {
            sqlite3_str_appendall(q->sql, "value = ");
            vl_sqlq_text(q, v->text);
        } else if (c->match == VL_MATCH_CONTAINS) {
            sqlite3_str_appendall(q->sql, "instr(norm, ");
            vl_sqlq_text(q, v->text);
            sqlite3_str_appendall(q->sql, ") > 0");
        } else {
            sqlite3_str_appendall(q->sql, "substr(norm, 1, length(");
            vl_sqlq_text(q, v->text);
            sqlite3_str_appendall(q->sql, ")) = ");
            vl_sqlq_text(q, v->text);
        }
        break;
    case VL_INDEX_REFERENCE:
        sqlite3_str_appendall(q->sql, "ref = ");
        vl_sqlq_text(q, v->text);
        break;
    case VL_INDEX_DATE: date_value(q, "lo", "hi", v); break;
    case VL_INDEX_QUANTITY: quantity_value(q, v); break;
    }
}

/* Emits values [lo, hi) of `c` OR'd as a balanced tree (depth log2 n). */
static void or_values(vl_sqlq_t *q, const vl_query_cond_t *c, size_t lo, size_t hi,
                      int last_updated)
{
    if (hi - lo == 1) {
        if (last_updated)
            date_value(q, "r.last_updated", "(r.last_updated + 1)", &c->values[lo]);
        else
            index_value(q, c, &c->values[lo]);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    sqlite3_str_appendall(q->sql, "(");
    or_values(q, c, lo, mid, last_updated);
    sqlite3_str_appendall(q->sql, " OR ");
    or_values(q, c, mid, hi, last_updated);
    sqlite3_str_appendall(q->sql, ")");
}

static const char *const tables[] = {"idx_token", "idx_string", "idx_reference", "idx_date",
                                     "idx_quantity"};

/* One condition as a boolean expression (no leading AND). */
static void cond_sql(vl_sqlq_t *q, const vl_query_cond_t *c)
{
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
        or_values(q, c, 0, c->n, 1);
        return;
    }
    if (c->missing >= 0) {
        sqlite3_str_appendf(q->sql, "r.rid %s (SELECT rid FROM %s WHERE param = ",
                            c->missing ? "NOT IN" : "IN", tables[c->kind]);
        param_name(q, q->type, c->param);
        sqlite3_str_appendall(q->sql, ")");
        return;
    }
    sqlite3_str_appendf(q->sql, "r.rid IN (SELECT rid FROM %s WHERE param = ", tables[c->kind]);
    param_name(q, q->type, c->param);
    sqlite3_str_appendall(q->sql, " AND ");
    or_values(q, c, 0, c->n, 0);
    sqlite3_str_appendall(q->sql, ")");
}

/* Conditions [lo, hi) AND'd as a balanced tree. */
static void and_conds(vl_sqlq_t *q, const vl_query_t *query, size_t lo, size_t hi)
{
    if (hi - lo == 1) {
        cond_sql(q, &query->conds[lo]);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    sqlite3_str_appendall(q->sql, "(");
    and_conds(q, query, lo, mid);
    sqlite3_str_appendall(q->sql, " AND ");
    and_conds(q, query, mid, hi);
    sqlite3_str_appendall(q->sql, ")");
}

/* The FROM/WHERE part shared by the count and the page query. */
static void where_sql(vl_sqlq_t *q, const vl_query_t *query, vl_scope_t scope)
{
    if (q)
        q->type = query->type;
    vl_sqlq_sql(q, " FROM resource r JOIN resource_version v ON v.rid = r.rid"
                   " AND v.version = r.version WHERE r.deleted = 0 AND r.type = ");
    vl_sqlq_text(q, query->type);
    if (query->id) {
        vl_sqlq_sql(q, " AND r.id = ");
        vl_sqlq_text(q, query->id);
    }
    if (query->n) {
        vl_sqlq_sql(q, " AND ");
        and_conds(q, query, 0, query->n);
    }
    vl_sqlq_scope(q, scope, "v.seq");
}

int vl_sqlite_search(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *query, int with_total,
                     size_t max_bytes, vl_records_t *out, vl_store_err_t *err)
{
    vl_sqlq_t *q = NULL;
    sqlite3_stmt *st = NULL;
    int ret = -1;
    memset(out, 0, sizeof *out);

    if (with_total) {
        q = vl_sqlq_new(c);
        if (!q)
            return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
        vl_sqlq_sql(q, "SELECT count(*)");
        where_sql(q, query, scope);
        if (vl_sqlq_prepare(q, &st, err) < 0)
            goto out;
        if (sqlite3_step(st) == SQLITE_ROW)
            out->total = sqlite3_column_int64(st, 0);
        else {
            vl_sqlite_error(err, c->db, "counting matches");
            goto out;
        }
        vl_sqlq_release(c, st);
        st = NULL;
        vl_sqlq_free(q);
        q = NULL;
        if (query->count == 0) {
            ret = 0;
            goto out;
        }
    }

    q = vl_sqlq_new(c);
    if (!q)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    vl_sqlq_sql(q, "SELECT " VL_SQLITE_RECORD_COLUMNS);
    where_sql(q, query, scope);
    if (query->sort_param && strcmp(query->sort_param, "_lastUpdated") == 0) {
        sqlite3_str_appendf(q->sql, " ORDER BY r.last_updated %s, r.rid",
                            query->sort_desc ? "DESC" : "ASC");
    } else if (query->sort_param) {
        /* by the earliest (ascending) or latest (descending) date of the param */
        sqlite3_str_appendf(q->sql,
                            " ORDER BY (SELECT %s FROM idx_date d WHERE d.rid = r.rid AND"
                            " d.param = ",
                            query->sort_desc ? "max(hi)" : "min(lo)");
        param_name(q, query->type, query->sort_param);
        sqlite3_str_appendf(q->sql, ") %s NULLS LAST, r.rid", query->sort_desc ? "DESC" : "ASC");
    } else {
        sqlite3_str_appendall(q->sql, " ORDER BY r.rid");
    }
    vl_sqlq_sql(q, " LIMIT ");
    vl_sqlq_int(q, query->count > 0 ? query->count : 50);
    vl_sqlq_sql(q, " OFFSET ");
    vl_sqlq_int(q, query->offset > 0 ? query->offset : 0);
    if (vl_sqlq_prepare(q, &st, err) < 0)
        goto out;
    ret = vl_sqlite_collect(c->db, st, max_bytes, out, err);
out:
    vl_sqlq_free(q);
    vl_sqlq_release(c, st);
    if (ret < 0)
        vl_records_free(out);
    return ret;
}
