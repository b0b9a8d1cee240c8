/*
 * vitalog — fhir/index.c: extraction of search index rows from a resource.
 *
 * DESIGN NOTES
 *
 * 1. For each search parameter of the type, each of its paths is walked from
 *    the resource root, one element name per step; an array met at any step
 *    (including the last) is iterated, so "name.given" reaches every given
 *    name of every HumanName. What is found at the end is indexed by its
 *    JSON shape and the parameter's kind; anything of an unexpected shape is
 *    skipped silently (validation is a separate step; index extraction never
 *    fails on content, only on memory).
 *
 * 2. Shapes per kind:
 *    TOKEN      CodeableConcept {coding:[...]} -> one row per coding
 *               (system, code); Coding {system?, code} -> (system, code);
 *               Identifier / ContactPoint {system?, value} -> (system, value);
 *               string (code, id, uri) -> (NULL, text); boolean ->
 *               (NULL, "true"|"false"). A coding without code gives no row.
 *    STRING     string -> itself; HumanName -> family, each given, text, each
 *               prefix, each suffix; Address -> each line, city, district,
 *               state, postalCode, country, text. One row per string; `norm`
 *               is computed by vl_index_add (see store/index_rows.c).
 *    REFERENCE  Reference {reference} -> text: a relative "Type/id" (Type an
 *               R4 resource type) or an absolute URL ("scheme://..." or
 *               "urn:..."), either with any "/_history/n" suffix removed.
 *               Fragments ("#x"), other relative forms and references
 *               longer than 1023 bytes are not indexed.
 *               A parameter with a target type keeps only references whose
 *               type (the segment before the id) is that target.
 *    DATE       date/dateTime/instant string -> its range
 *               (vl_time_parse_range); Period -> [start.lo, end.hi), with
 *               INT64_MIN / INT64_MAX for a missing start / end.
 *    QUANTITY   Quantity {value, system?, code?|unit?} -> number = value,
 *               system, text = code, or unit when there is no code.
 *
 * 3. Numbers in resources are tagged strings (util.h): vl_json_is_string()
 *    and vl_json_number_value() are used, never json_is_string() alone.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vitalog/fhir.h"

#define MAX_SEGMENTS 8
#define MAX_SEGMENT_LEN 64

/* One extraction in progress. */
typedef struct ctx {
    const vl_search_param_t *param;
    vl_index_t *ix;
    int failed; /* out of memory */
} ctx_t;

static const char *str_member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

static void add(ctx_t *c, const char *system, const char *text, double number, int64_t lo,
                int64_t hi)
{
    if (c->failed)
        return;
    if (vl_index_add(c->ix, c->param->name, c->param->kind, system, text, number, lo, hi) != 0)
        c->failed = 1;
}

/* ------------------------------------------------------------------------
 * Per kind
 * ---------------------------------------------------------------------- */

static void index_coding(ctx_t *c, const json_t *coding)
{
    const char *code = str_member(coding, "code");
    if (code)
        add(c, str_member(coding, "system"), code, 0, 0, 0);
}

static void index_token(ctx_t *c, const json_t *v)
{
    if (json_is_boolean(v)) {
        add(c, NULL, json_is_true(v) ? "true" : "false", 0, 0, 0);
    } else if (vl_json_is_string(v)) {
        add(c, NULL, json_string_value(v), 0, 0, 0);
    } else if (json_is_object(v)) {
        const json_t *codings = json_object_get(v, "coding");
        if (json_is_array(codings)) { /* CodeableConcept */
            size_t i;
            const json_t *coding;
            json_array_foreach (codings, i, coding) {
                if (json_is_object(coding))
                    index_coding(c, coding);
            }
        } else if (str_member(v, "code")) { /* Coding */
            index_coding(c, v);
        } else if (str_member(v, "value")) { /* Identifier, ContactPoint */
            add(c, str_member(v, "system"), str_member(v, "value"), 0, 0, 0);
        }
    }
}

static void add_string_member(ctx_t *c, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (vl_json_is_string(v)) {
        add(c, NULL, json_string_value(v), 0, 0, 0);
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach (v, i, e) {
            if (vl_json_is_string(e))
                add(c, NULL, json_string_value(e), 0, 0, 0);
        }
    }
}

static void index_string(ctx_t *c, const json_t *v)
{
    static const char *const human_name[] = {"family", "given", "text", "prefix", "suffix", NULL};
    static const char *const address[] = {"line",       "city",    "district", "state",
                                          "postalCode", "country", "text",     NULL};
    if (vl_json_is_string(v)) {
        add(c, NULL, json_string_value(v), 0, 0, 0);
        return;
    }
    if (!json_is_object(v))
        return;
    /* HumanName and Address share only "text" (and use, period); pick the
     * field list by a member only one of them has. */
    int is_address = json_object_get(v, "line") || json_object_get(v, "city") ||
                     json_object_get(v, "district") || json_object_get(v, "state") ||
                     json_object_get(v, "postalCode") || json_object_get(v, "country");
    const char *const *keys = is_address ? address : human_name;
    for (size_t i = 0; keys[i]; i++)
        add_string_member(c, v, keys[i]);
}

/* Writes the indexable form of a reference into out (size `cap`), or
 * returns -1 if it is not indexed. */
static int normalize_reference(const char *ref, const char *target, char *out, size_t cap)
{
    size_t len = strlen(ref);
    if (len == 0 || len >= cap || ref[0] == '#')
        return -1;
    memcpy(out, ref, len + 1);
    /* strip "/_history/<version>" */
    char *h = strstr(out, "/_history/");
    if (h)
        *h = '\0';
    len = strlen(out);
    if (len == 0)
        return -1;

    int absolute = strstr(out, "://") != NULL || strncmp(out, "urn:", 4) == 0;
    /* the last two segments: Type/id */
    char *slash = strrchr(out, '/');
    const char *type = NULL;
    size_t type_len = 0;
    if (slash && slash != out && slash[1] != '\0') {
        const char *t = slash;
        while (t > out && t[-1] != '/')
            t--;
        type = t;
        type_len = (size_t)(slash - t);
    }
    if (!absolute) {
        /* relative: exactly "Type/id" with an R4 type */
        if (!type || type != out || type_len >= 64)
            return -1;
        char tname[64];
        memcpy(tname, type, type_len);
        tname[type_len] = '\0';
        if (!vl_fhir_is_r4_type(tname) || strchr(slash + 1, '/'))
            return -1;
    }
    if (target) {
        if (!type || type_len != strlen(target) || strncmp(type, target, type_len) != 0)
            return -1;
    }
    return 0;
}

static void index_reference(ctx_t *c, const json_t *v)
{
    if (!json_is_object(v))
        return;
    const char *ref = str_member(v, "reference");
    char buf[1024];
    if (ref && normalize_reference(ref, c->param->target, buf, sizeof buf) == 0)
        add(c, NULL, buf, 0, 0, 0);
}

static void index_date(ctx_t *c, const json_t *v)
{
    int64_t lo, hi, l2, h2;
    if (vl_json_is_string(v)) {
        if (vl_time_parse_range(json_string_value(v), &lo, &hi, NULL) == 0)
            add(c, NULL, NULL, 0, lo, hi);
    } else if (json_is_object(v)) { /* Period */
        const char *start = str_member(v, "start");
        const char *end = str_member(v, "end");
        if (!start && !end)
            return;
        lo = INT64_MIN;
        hi = INT64_MAX;
        if (start) {
            if (vl_time_parse_range(start, &lo, &h2, NULL) != 0)
                return;
        }
        if (end) {
            if (vl_time_parse_range(end, &l2, &hi, NULL) != 0)
                return;
        }
        if (lo < hi)
            add(c, NULL, NULL, 0, lo, hi);
    }
}

static void index_quantity(ctx_t *c, const json_t *v)
{
    if (!json_is_object(v))
        return;
    const json_t *value = json_object_get(v, "value");
    if (!vl_json_is_number(value))
        return;
    double number = vl_json_number_value(value);
    if (!isfinite(number))
        return;
    const char *code = str_member(v, "code");
    if (!code)
        code = str_member(v, "unit");
    add(c, str_member(v, "system"), code, number, 0, 0);
}

static void index_value(ctx_t *c, const json_t *v)
{
    switch (c->param->kind) {
    case VL_INDEX_TOKEN: index_token(c, v); break;
    case VL_INDEX_STRING: index_string(c, v); break;
    case VL_INDEX_REFERENCE: index_reference(c, v); break;
    case VL_INDEX_DATE: index_date(c, v); break;
    case VL_INDEX_QUANTITY: index_quantity(c, v); break;
    }
}

/* ------------------------------------------------------------------------
 * Path walking
 * ---------------------------------------------------------------------- */

static void walk(ctx_t *c, const json_t *node, char segs[][MAX_SEGMENT_LEN], size_t nseg, size_t at)
{
    if (c->failed || !node)
        return;
    if (json_is_array(node)) {
        size_t i;
        const json_t *e;
        json_array_foreach (node, i, e)
            walk(c, e, segs, nseg, at);
        return;
    }
    if (at == nseg) {
        index_value(c, node);
        return;
    }
    if (json_is_object(node))
        walk(c, json_object_get(node, segs[at]), segs, nseg, at + 1);
}

static size_t split_path(const char *path, char segs[][MAX_SEGMENT_LEN])
{
    size_t n = 0;
    const char *p = path;
    while (*p && n < MAX_SEGMENTS) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len >= MAX_SEGMENT_LEN)
            len = MAX_SEGMENT_LEN - 1;
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        if (!dot)
            break;
        p = dot + 1;
    }
    return n;
}

/* The consent facets (docs/consent.md): for an Observation, the codings of
 * Observation.code (its "code" rows), those of Observation.category (its
 * "category" rows, for granular SMART scopes) and the range of
 * effective[x] (its "date" rows: dateTime, instant, Period); other types
 * have none. */
static int facets(const vl_fhir_type_t *type, vl_index_t *ix)
{
    if (strcmp(type->name, "Observation") != 0)
        return 0;
    for (size_t i = 0; i < ix->n; i++) {
        const vl_index_row_t *r = &ix->rows[i];
        if (r->kind == VL_INDEX_TOKEN && !strcmp(r->param, "code") &&
            vl_index_add_code(ix, r->system, r->text) < 0)
            return -1;
        if (r->kind == VL_INDEX_TOKEN && !strcmp(r->param, "category") &&
            vl_index_add_category(ix, r->system, r->text) < 0)
            return -1;
        if (r->kind == VL_INDEX_DATE && !strcmp(r->param, "date"))
            vl_index_add_time(ix, r->lo, r->hi);
    }
    return 0;
}

int vl_fhir_index(const vl_fhir_type_t *type, const json_t *res, vl_index_t *ix, vl_error_t *err)
{
    if (!type || !json_is_object(res))
        return 0;
    ctx_t c = {.ix = ix};
    for (const vl_search_param_t *p = type->params; p->name; p++) {
        c.param = p;
        for (size_t i = 0; i < sizeof p->paths / sizeof p->paths[0] && p->paths[i]; i++) {
            char segs[MAX_SEGMENTS][MAX_SEGMENT_LEN];
            size_t n = split_path(p->paths[i], segs);
            walk(&c, res, segs, n, 0);
        }
        if (c.failed)
            return vl_error_set(err, 500, "exception", NULL, "Out of memory while indexing %s",
                                type->name);
    }
    if (vl_fhir_compartments(type, res, ix) < 0 || facets(type, ix) < 0)
        return vl_error_set(err, 500, "exception", NULL, "Out of memory while indexing %s",
                            type->name);
    return 0;
}

int vl_fhir_facets_of(void *ctx, const char *type, const char *body, size_t len, vl_index_t *ix)
{
    const vl_fhir_type_t *t = vl_fhir_type_find(type);
    vl_error_t err = VL_ERROR_INIT;
    json_t *res;
    int rc;
    (void)ctx;
    if (!t) /* a type no longer served: it has no facets */
        return 0;
    res = vl_json_parse(body, len, NULL, &err);
    vl_error_clear(&err);
    if (!res)
        return -1;
    rc = vl_fhir_index(t, res, ix, &err);
    vl_error_clear(&err);
    json_decref(res);
    return rc;
}
