/*
 * Search: vl_query_t to SQL.
 *
 * Each condition becomes `r.rid IN (SELECT rid FROM idx_<kind> WHERE param =
 * ? AND (<value> OR <value> ...))`; conditions are AND'd. Every value is
 * bound, never spliced into the SQL text.
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
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

typedef enum { B_TEXT, B_INT, B_REAL } bind_kind_t;

typedef struct binding {
    bind_kind_t kind;
    const char *text;
    int64_t i;
    double d;
} binding_t;

typedef struct builder {
    sqlite3_str *sql;
    binding_t *b;
    size_t n, cap;
    int oom;
} builder_t;

static void bind_text(builder_t *bd, const char *t)
{
    if (bd->n == bd->cap) {
        size_t ncap = bd->cap ? bd->cap * 2 : 16;
        binding_t *p = realloc(bd->b, ncap * sizeof *p);
        if (!p) {
            bd->oom = 1;
            return;
        }
        bd->b = p;
        bd->cap = ncap;
    }
    bd->b[bd->n++] = (binding_t){B_TEXT, t, 0, 0};
    sqlite3_str_appendall(bd->sql, "?");
}

static void bind_int(builder_t *bd, int64_t v)
{
    bind_text(bd, NULL);
    if (!bd->oom)
        bd->b[bd->n - 1] = (binding_t){B_INT, NULL, v, 0};
}

static void bind_real(builder_t *bd, double v)
{
    bind_text(bd, NULL);
    if (!bd->oom)
        bd->b[bd->n - 1] = (binding_t){B_REAL, NULL, 0, v};
}

static void date_value(builder_t *bd, const char *lo, const char *hi, const vl_query_value_t *v)
{
    sqlite3_str *s = bd->sql;
    /* eq: inside */
#define EQ()                                                                                      \
    do {                                                                                          \
        sqlite3_str_appendf(s, "(%s >= ", lo);                                                    \
        bind_int(bd, v->lo);                                                                      \
        sqlite3_str_appendf(s, " AND %s <= ", hi);                                                \
        bind_int(bd, v->hi);                                                                      \
        sqlite3_str_appendall(s, ")");                                                            \
    } while (0)
    switch (v->cmp) {
    case VL_CMP_EQ:
        EQ();
        break;
    case VL_CMP_NE:
        sqlite3_str_appendall(s, "NOT ");
        EQ();
        break;
    case VL_CMP_LT:
    case VL_CMP_LE:
        sqlite3_str_appendf(s, "(%s < ", lo);
        bind_int(bd, v->lo);
        if (v->cmp == VL_CMP_LE) {
            sqlite3_str_appendall(s, " OR ");
            EQ();
        }
        sqlite3_str_appendall(s, ")");
        break;
    case VL_CMP_GT:
    case VL_CMP_GE:
        sqlite3_str_appendf(s, "(%s > ", hi);
        bind_int(bd, v->hi);
        if (v->cmp == VL_CMP_GE) {
            sqlite3_str_appendall(s, " OR ");
            EQ();
        }
        sqlite3_str_appendall(s, ")");
        break;
    }
#undef EQ
}

static void quantity_value(builder_t *bd, const vl_query_value_t *v)
{
    static const char *const ops[] = {"=", "<>", "<", "<=", ">", ">="};
    sqlite3_str *s = bd->sql;
    sqlite3_str_appendall(s, "(");
    if (v->cmp == VL_CMP_EQ || v->cmp == VL_CMP_NE) {
        double tol = fabs(v->number) * 1e-9;
        sqlite3_str_appendall(s, v->cmp == VL_CMP_EQ ? "value BETWEEN " : "value NOT BETWEEN ");
        bind_real(bd, v->number - tol);
        sqlite3_str_appendall(s, " AND ");
        bind_real(bd, v->number + tol);
    } else {
        sqlite3_str_appendf(s, "value %s ", ops[v->cmp]);
        bind_real(bd, v->number);
    }
    if (v->system && v->system[0]) {
        sqlite3_str_appendall(s, " AND system = ");
        bind_text(bd, v->system);
    }
    if (v->text && v->text[0]) {
        sqlite3_str_appendall(s, " AND code = ");
        bind_text(bd, v->text);
    }
    sqlite3_str_appendall(s, ")");
}

static void cond_sql(builder_t *bd, const vl_query_cond_t *c)
{
    static const char *const tables[] = {"idx_token", "idx_string", "idx_reference", "idx_date",
                                         "idx_quantity"};
    sqlite3_str *s = bd->sql;

    if (strcmp(c->param, "_id") == 0) { /* any of several ids */
        sqlite3_str_appendall(s, " AND r.id IN (");
        for (size_t i = 0; i < c->n; i++) {
            if (i)
                sqlite3_str_appendall(s, ", ");
            bind_text(bd, c->values[i].text ? c->values[i].text : "");
        }
        sqlite3_str_appendall(s, ")");
        return;
    }
    if (strcmp(c->param, "_lastUpdated") == 0) {
        sqlite3_str_appendall(s, " AND (");
        for (size_t i = 0; i < c->n; i++) {
            vl_query_value_t v = c->values[i];
            if (i)
                sqlite3_str_appendall(s, " OR ");
            date_value(bd, "r.last_updated", "(r.last_updated + 1)", &v);
        }
        sqlite3_str_appendall(s, ")");
        return;
    }
    if (c->missing >= 0) {
        sqlite3_str_appendf(s, " AND r.rid %s (SELECT rid FROM %s WHERE param = ",
                            c->missing ? "NOT IN" : "IN", tables[c->kind]);
        bind_text(bd, c->param);
        sqlite3_str_appendall(s, ")");
        return;
    }
    sqlite3_str_appendf(s, " AND r.rid IN (SELECT rid FROM %s WHERE param = ", tables[c->kind]);
    bind_text(bd, c->param);
    sqlite3_str_appendall(s, " AND (");
    for (size_t i = 0; i < c->n; i++) {
        const vl_query_value_t *v = &c->values[i];
        if (i)
            sqlite3_str_appendall(s, " OR ");
        switch (c->kind) {
        case VL_INDEX_TOKEN:
            sqlite3_str_appendall(s, "(1");
            if (v->text) {
                sqlite3_str_appendall(s, " AND code = ");
                bind_text(bd, v->text);
            }
            if (v->system && v->system[0] == '\0') {
                sqlite3_str_appendall(s, " AND system IS NULL");
            } else if (v->system) {
                sqlite3_str_appendall(s, " AND system = ");
                bind_text(bd, v->system);
            }
            sqlite3_str_appendall(s, ")");
            break;
        case VL_INDEX_STRING:
            if (c->match == VL_MATCH_EXACT) {
                sqlite3_str_appendall(s, "value = ");
                bind_text(bd, v->text);
            } else if (c->match == VL_MATCH_CONTAINS) {
                sqlite3_str_appendall(s, "instr(norm, ");
                bind_text(bd, v->text);
                sqlite3_str_appendall(s, ") > 0");
            } else {
                sqlite3_str_appendall(s, "substr(norm, 1, length(");
                bind_text(bd, v->text);
                sqlite3_str_appendall(s, ")) = ");
                bind_text(bd, v->text);
            }
            break;
        case VL_INDEX_REFERENCE:
            sqlite3_str_appendall(s, "ref = ");
            bind_text(bd, v->text);
            break;
        case VL_INDEX_DATE:
            date_value(bd, "lo", "hi", v);
            break;
        case VL_INDEX_QUANTITY:
            quantity_value(bd, v);
            break;
        }
    }
    sqlite3_str_appendall(s, "))");
}

static int bind_all(sqlite3_stmt *st, const builder_t *bd)
{
    for (size_t i = 0; i < bd->n; i++) {
        const binding_t *b = &bd->b[i];
        int rc = b->kind == B_TEXT  ? sqlite3_bind_text(st, (int)i + 1, b->text, -1, SQLITE_STATIC)
                 : b->kind == B_INT ? sqlite3_bind_int64(st, (int)i + 1, b->i)
                                    : sqlite3_bind_double(st, (int)i + 1, b->d);
        if (rc != SQLITE_OK)
            return -1;
    }
    return 0;
}

/* Appends the FROM/WHERE part shared by the count and the page query. */
static void where_sql(builder_t *bd, const vl_query_t *q)
{
    sqlite3_str_appendall(bd->sql, " FROM resource r JOIN resource_version v ON v.rid = r.rid"
                                   " AND v.version = r.version WHERE r.deleted = 0 AND r.type = ");
    bind_text(bd, q->type);
    if (q->id) {
        sqlite3_str_appendall(bd->sql, " AND r.id = ");
        bind_text(bd, q->id);
    }
    for (size_t i = 0; i < q->n; i++)
        cond_sql(bd, &q->conds[i]);
}

static int run(sqlite3 *db, builder_t *bd, sqlite3_stmt **st, vl_error_t *err)
{
    char *sql = sqlite3_str_finish(bd->sql);
    int rc;
    bd->sql = NULL;
    if (!sql || bd->oom) {
        sqlite3_free(sql);
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    }
    rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return vl_store_sql_error(err, db, "preparing a search");
    if (bind_all(*st, bd) < 0) {
        sqlite3_finalize(*st);
        *st = NULL;
        return vl_store_sql_error(err, db, "binding a search");
    }
    return 0;
}

int vl_store_query_run(sqlite3 *db, const vl_query_t *q, int with_total, vl_records_t *out,
                       vl_error_t *err)
{
    builder_t bd = {0};
    sqlite3_stmt *st = NULL;
    int ret = -1;
    memset(out, 0, sizeof *out);

    if (with_total) {
        bd.sql = sqlite3_str_new(db);
        sqlite3_str_appendall(bd.sql, "SELECT count(*)");
        where_sql(&bd, q);
        if (run(db, &bd, &st, err) < 0)
            goto out;
        if (sqlite3_step(st) == SQLITE_ROW)
            out->total = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        st = NULL;
        bd.n = 0;
        if (q->count == 0) {
            ret = 0;
            goto out;
        }
    }

    bd.sql = sqlite3_str_new(db);
    sqlite3_str_appendall(bd.sql, "SELECT r.type, r.id, v.version, v.deleted, v.last_updated,"
                                  " v.method, v.body");
    where_sql(&bd, q);
    if (q->sort_param && strcmp(q->sort_param, "_lastUpdated") == 0) {
        sqlite3_str_appendf(bd.sql, " ORDER BY r.last_updated %s, r.rid",
                            q->sort_desc ? "DESC" : "ASC");
    } else if (q->sort_param) {
        /* by the earliest (ascending) or latest (descending) date of the param */
        sqlite3_str_appendf(bd.sql, " ORDER BY (SELECT %s FROM idx_date d WHERE d.rid = r.rid AND d.param = ",
                            q->sort_desc ? "max(hi)" : "min(lo)");
        bind_text(&bd, q->sort_param);
        sqlite3_str_appendf(bd.sql, ") %s NULLS LAST, r.rid", q->sort_desc ? "DESC" : "ASC");
    } else {
        sqlite3_str_appendall(bd.sql, " ORDER BY r.rid");
    }
    sqlite3_str_appendall(bd.sql, " LIMIT ");
    bind_int(&bd, q->count > 0 ? q->count : 50);
    sqlite3_str_appendall(bd.sql, " OFFSET ");
    bind_int(&bd, q->offset > 0 ? q->offset : 0);
    if (run(db, &bd, &st, err) < 0)
        goto out;
    ret = vl_store_collect(db, st, out, err);
out:
    if (bd.sql)
        sqlite3_free(sqlite3_str_finish(bd.sql));
    sqlite3_finalize(st);
    free(bd.b);
    if (ret < 0)
        vl_records_free(out);
    return ret;
}

int vl_store_search(vl_store_t *s, const vl_query_t *q, vl_records_t *out, vl_error_t *err)
{
    vl_reader_t *r = vl_store_reader(s, err);
    if (!r)
        return -1;
    return vl_store_query_run(r->db, q, 1, out, err);
}
