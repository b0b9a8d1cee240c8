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

#include "ucum.h"

#define MAX_SEGMENTS 8
#define MAX_SEGMENT_LEN 64

/* One extraction in progress. */
typedef struct ctx {
    const vl_search_param_t *param;
    vl_index_t *ix;
    const char *base; /* this server's FHIR base ("http://h/fhir"), or NULL */
    size_t found;     /* elements met for the param (rows or not) */
    int failed;       /* out of memory */
} ctx_t;

#define UCUM "http://unitsofmeasure.org"

static const char *str_member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

static vl_index_row_t *add_row(ctx_t *c, vl_index_row_t *r)
{
    vl_index_row_t *out;
    if (c->failed)
        return NULL;
    r->param = c->param->name;
    r->sort = c->param->sortable;
    if (!(out = vl_index_add_row(c->ix, r)))
        c->failed = 1;
    return out;
}

static void add(ctx_t *c, const char *system, const char *text, double number, int64_t lo,
                int64_t hi)
{
    vl_index_row_t r = {.kind = c->param->kind,
                        .system = (char *)system,
                        .text = (char *)text,
                        .number = number,
                        .lo = lo,
                        .hi = hi};
    add_row(c, &r);
}

/* ------------------------------------------------------------------------
 * Per kind
 * ---------------------------------------------------------------------- */

/* A row of another name than the param's (:text, :of-type rows). */
static void add_named(ctx_t *c, const char *param, vl_index_kind_t kind, const char *text)
{
    /* :text rows are searched by their normalized form only */
    vl_index_row_t r = {
        .param = param, .kind = kind, .text = (char *)text, .norm_only = kind == VL_INDEX_STRING};
    if (c->failed || !param || !text || !*text)
        return;
    if (!vl_index_add_row(c->ix, &r))
        c->failed = 1;
}

static void index_coding(ctx_t *c, const json_t *coding)
{
    const char *code = str_member(coding, "code");
    if (code)
        add(c, str_member(coding, "system"), code, 0, 0, 0);
    add_named(c, c->param->text_name, VL_INDEX_STRING, str_member(coding, "display"));
}

/* identifier:of-type: "<type system>|<type code>|<value>" per coding of
 * Identifier.type. */
static void index_of_type(ctx_t *c, const json_t *ident)
{
    const json_t *type = json_object_get(ident, "type");
    const json_t *codings = json_is_object(type) ? json_object_get(type, "coding") : NULL, *cd;
    const char *value = str_member(ident, "value");
    size_t i;
    if (!c->param->of_type_name || !value || !json_is_array(codings))
        return;
    json_array_foreach (codings, i, cd) {
        const char *sys = str_member(cd, "system"), *code = str_member(cd, "code");
        char buf[1024];
        if (code &&
            (size_t)snprintf(buf, sizeof buf, "%s|%s|%s", sys ? sys : "", code, value) < sizeof buf)
            add_named(c, c->param->of_type_name, VL_INDEX_TOKEN, buf);
    }
}

static void index_token(ctx_t *c, const json_t *v)
{
    if (json_is_boolean(v)) {
        add(c, NULL, json_is_true(v) ? "true" : "false", 0, 0, 0);
    } else if (vl_json_is_string(v)) {
        add(c, NULL, json_string_value(v), 0, 0, 0);
    } else if (json_is_object(v)) {
        const json_t *codings = json_object_get(v, "coding");
        if (json_is_array(codings) || str_member(v, "text")) { /* CodeableConcept */
            size_t i;
            const json_t *coding;
            json_array_foreach (codings, i, coding) {
                if (json_is_object(coding))
                    index_coding(c, coding);
            }
            add_named(c, c->param->text_name, VL_INDEX_STRING, str_member(v, "text"));
        } else if (str_member(v, "code")) { /* Coding */
            index_coding(c, v);
        } else if (str_member(v, "value")) { /* Identifier, ContactPoint */
            add(c, str_member(v, "system"), str_member(v, "value"), 0, 0, 0);
            index_of_type(c, v);
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

/* "<base>/Type/id..." of this server's FHIR base -> "Type/id...". */
const char *vl_fhir_local_reference(const char *ref, const char *base)
{
    size_t n = base ? strlen(base) : 0;
    if (n && strncmp(ref, base, n) == 0 && ref[n] == '/' && ref[n + 1])
        return ref + n + 1;
    return ref;
}

static void index_reference(ctx_t *c, const json_t *v)
{
    if (!json_is_object(v))
        return;
    const char *ref = str_member(v, "reference");
    char buf[1024];
    if (ref && normalize_reference(vl_fhir_local_reference(ref, c->base), c->param->target, buf,
                                   sizeof buf) == 0)
        add(c, NULL, buf, 0, 0, 0);
}

/* A Timing by its outer limits: from the earliest event or the start of
 * repeat.boundsPeriod to the latest event or the end of the bounds. */
static void index_timing(ctx_t *c, const json_t *v)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN, l, h;
    const json_t *events = json_object_get(v, "event"), *e;
    const json_t *repeat = json_object_get(v, "repeat");
    const json_t *bounds = json_is_object(repeat) ? json_object_get(repeat, "boundsPeriod") : NULL;
    size_t i;
    if (json_is_array(events))
        json_array_foreach (events, i, e) {
            if (vl_json_is_string(e) &&
                vl_time_parse_range(json_string_value(e), &l, &h, NULL) == 0) {
                lo = l < lo ? l : lo;
                hi = h > hi ? h : hi;
            }
        }
    if (json_is_object(bounds)) {
        const char *start = str_member(bounds, "start"), *end = str_member(bounds, "end");
        if (start && vl_time_parse_range(start, &l, &h, NULL) == 0 && l < lo)
            lo = l;
        if (end && vl_time_parse_range(end, &l, &h, NULL) == 0 && h > hi)
            hi = h;
        if (!start && end)
            lo = INT64_MIN;
        if (start && !end)
            hi = INT64_MAX;
    }
    if (lo < hi)
        add(c, NULL, NULL, 0, lo, hi);
}

static void index_date(ctx_t *c, const json_t *v)
{
    int64_t lo, hi, l2, h2;
    if (vl_json_is_string(v)) {
        if (vl_time_parse_range(json_string_value(v), &lo, &hi, NULL) == 0)
            add(c, NULL, NULL, 0, lo, hi);
    } else if (json_is_object(v) && (json_object_get(v, "event") || json_object_get(v, "repeat") ||
                                     json_object_get(v, "code"))) { /* Timing */
        index_timing(c, v);
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

/* A Quantity's value, system and code (or unit when it has no code); 0,
 * or -1 when it has no finite value. */
static int quantity_of(const json_t *v, double *number, const char **system, const char **code,
                       const char **unit)
{
    const json_t *value = json_is_object(v) ? json_object_get(v, "value") : NULL;
    if (!vl_json_is_number(value) || !isfinite(*number = vl_json_number_value(value)))
        return -1;
    *system = str_member(v, "system");
    *unit = str_member(v, "unit");
    *code = str_member(v, "code");
    if (!*code)
        *code = *unit;
    return 0;
}

/* The canonical form of a UCUM quantity (ucum.c): 0 with its unit and
 * value, or -1 when the quantity is not UCUM or its unit not known. */
static int canonical_of(const char *system, const char *code, double number, const char **canon,
                        double *value)
{
    if (!system || !code || strcmp(system, UCUM) != 0)
        return -1;
    return vl_ucum_to_canonical(code, number, canon, value);
}

/* Rows of a quantity (schemas/007, ix_quantity): as sent (code, or unit),
 * with the human unit when it differs from the code, so that
 * "[number]||[unit]" finds it; the value in its canonical UCUM unit when
 * that differs. */
static void index_quantity(ctx_t *c, const json_t *v)
{
    double number, canon_value;
    const char *system, *code, *unit, *canon;
    if (quantity_of(v, &number, &system, &code, &unit) < 0)
        return;
    {
        vl_index_row_t r = {.kind = VL_INDEX_QUANTITY,
                            .system = (char *)system,
                            .text = (char *)code,
                            .unit = unit && code && strcmp(unit, code) != 0 ? (char *)unit : NULL,
                            .number = number};
        add_row(c, &r);
    }
    if (canonical_of(system, code, number, &canon, &canon_value) == 0 &&
        (strcmp(canon, code) != 0 || canon_value != number)) {
        vl_index_row_t r = {.kind = VL_INDEX_QUANTITY,
                            .system = UCUM,
                            .text = (char *)canon,
                            .number = canon_value,
                            .canon = 1};
        add_row(c, &r);
    }
}

static void index_value(ctx_t *c, const json_t *v)
{
    c->found++;
    switch (c->param->kind) {
    case VL_INDEX_TOKEN: index_token(c, v); break;
    case VL_INDEX_STRING: index_string(c, v); break;
    case VL_INDEX_REFERENCE: index_reference(c, v); break;
    case VL_INDEX_DATE: index_date(c, v); break;
    case VL_INDEX_QUANTITY: index_quantity(c, v); break;
    case VL_INDEX_COMPOSITE:
    case VL_INDEX_SERIES: break; /* not walked to a leaf: see below */
    }
}

/* ------------------------------------------------------------------------
 * Path walking
 * ---------------------------------------------------------------------- */

typedef void (*leaf_fn)(ctx_t *c, const json_t *leaf, void *arg);

static void walk(ctx_t *c, const json_t *node, char segs[][MAX_SEGMENT_LEN], size_t nseg, size_t at,
                 leaf_fn fn, void *arg)
{
    if (c->failed || !node)
        return;
    if (json_is_array(node)) {
        size_t i;
        const json_t *e;
        json_array_foreach (node, i, e)
            walk(c, e, segs, nseg, at, fn, arg);
        return;
    }
    if (at == nseg) {
        fn(c, node, arg);
        return;
    }
    if (json_is_object(node))
        walk(c, json_object_get(node, segs[at]), segs, nseg, at + 1, fn, arg);
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

static void walk_path(ctx_t *c, const json_t *from, const char *path, leaf_fn fn, void *arg)
{
    char segs[MAX_SEGMENTS][MAX_SEGMENT_LEN];
    walk(c, from, segs, split_path(path, segs), 0, fn, arg);
}

static void leaf_value(ctx_t *c, const json_t *leaf, void *arg)
{
    (void)arg;
    index_value(c, leaf);
}

/* Composites (token $ quantity): within each element of the param's paths,
 * every coding of the token part paired with the quantity part, the
 * quantity in its canonical UCUM unit when it has one, else as sent (UCUM
 * codes as they are, others as "|" + code or unit). */
typedef struct pair {
    const json_t *quantity;
} pair_t;

static void leaf_pair_token(ctx_t *c, const json_t *tok, void *arg)
{
    const pair_t *p = arg;
    double number, cv;
    const char *system, *code, *unit, *canon;
    const json_t *codings = json_is_object(tok) ? json_object_get(tok, "coding") : NULL, *coding;
    size_t i;
    char marked[256];
    if (quantity_of(p->quantity, &number, &system, &code, &unit) < 0 || !json_is_array(codings))
        return;
    if (canonical_of(system, code, number, &canon, &cv) == 0) {
        code = canon;
        number = cv;
    } else if (code && (!system || strcmp(system, UCUM) != 0)) {
        /* not UCUM: "|" + code, which no UCUM unit is (composite rows keep
         * no system; a search in UCUM must not find "g" sent without one) */
        if ((size_t)snprintf(marked, sizeof marked, "|%s", code) >= sizeof marked)
            return;
        code = marked;
    }
    json_array_foreach (codings, i, coding) {
        const char *tcode = str_member(coding, "code");
        vl_index_row_t r = {.kind = VL_INDEX_COMPOSITE,
                            .system = (char *)str_member(coding, "system"),
                            .text = (char *)tcode,
                            .unit = (char *)(code ? code : ""),
                            .number = number};
        if (tcode)
            add_row(c, &r);
    }
}

static void leaf_pair_quantity(ctx_t *c, const json_t *q, void *arg)
{
    pair_t p = {q};
    walk_path(c, (const json_t *)arg, c->param->parts[0], leaf_pair_token, &p);
}

static void leaf_composite_base(ctx_t *c, const json_t *base, void *arg)
{
    (void)arg;
    walk_path(c, base, c->param->parts[1], leaf_pair_quantity, (void *)base);
}

int vl_fhir_param_references(const vl_fhir_type_t *type, const char *param, const json_t *res,
                             const char *fhir_base, vl_index_t *ix)
{
    const vl_search_param_t *sp = vl_fhir_param_find(type, param);
    ctx_t c = {sp, ix, fhir_base, 0, 0};
    if (!sp || sp->kind != VL_INDEX_REFERENCE)
        return -1;
    if (sp->rows_of && !(c.param = vl_fhir_param_find(type, sp->rows_of)))
        return -1;
    for (size_t i = 0; i < sizeof c.param->paths / sizeof c.param->paths[0] && c.param->paths[i];
         i++)
        walk_path(&c, res, c.param->paths[i], leaf_value, NULL);
    return c.failed ? -1 : 0;
}

static void index_param(ctx_t *c, const json_t *res)
{
    const vl_search_param_t *p = c->param;
    size_t before = c->ix->n;
    if (p->union_of[0] || p->rows_of)
        return; /* searched as the rows of the two it unites, or of rows_of */
    c->found = 0;
    for (size_t i = 0; i < sizeof p->paths / sizeof p->paths[0] && p->paths[i]; i++) {
        if (p->kind == VL_INDEX_COMPOSITE) {
            if (!p->paths[i][0])
                leaf_composite_base(c, res, NULL);
            else
                walk_path(c, res, p->paths[i], leaf_composite_base, NULL);
        } else {
            walk_path(c, res, p->paths[i], leaf_value, NULL);
        }
    }
    /* present without a searchable value (a CodeableConcept with text
     * only, a contained reference): a row that no value matches, so that
     * :missing follows the R4 expression (the element exists) */
    int own = 0;
    for (size_t i = before; i < c->ix->n && !own; i++)
        own = c->ix->rows[i].param == p->name; /* not its :text, :of-type rows */
    if (c->found && !own &&
        (p->kind == VL_INDEX_TOKEN || p->kind == VL_INDEX_STRING ||
         p->kind == VL_INDEX_REFERENCE)) {
        vl_index_row_t r = {.kind = p->kind, .text = ""};
        vl_index_row_t *added = add_row(c, &r);
        if (added)
            added->sort = 0; /* no key to sort by */
    }
}

/* The series rows (schemas/007, ix_series) of an Observation: for each
 * Patient its subject is (relative "Patient/<id>") and each coding of its code, the range of its
 * effective[x] (the "date" rows), or VL_SERIES_UNDATED. */
static int series(const vl_fhir_type_t *type, vl_index_t *ix)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    size_t n = ix->n;
    if (strcmp(type->name, "Observation") != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const vl_index_row_t *r = &ix->rows[i];
        if (r->kind == VL_INDEX_DATE && !strcmp(r->param, "date")) {
            lo = r->lo < lo ? r->lo : lo;
            hi = r->hi > hi ? r->hi : hi;
        }
    }
    if (lo >= hi)
        lo = hi = VL_SERIES_UNDATED;
    for (size_t i = 0; i < n; i++) {
        if (ix->rows[i].kind != VL_INDEX_REFERENCE || strcmp(ix->rows[i].param, "subject") != 0 ||
            strncmp(ix->rows[i].text, "Patient/", 8) != 0)
            continue;
        for (size_t k = 0; k < n; k++) {
            /* copies: adding may move the rows */
            vl_index_row_t code = ix->rows[k], r;
            if (code.kind != VL_INDEX_TOKEN || strcmp(code.param, "code") != 0 || !code.text[0])
                continue;
            r = (vl_index_row_t){.param = "code",
                                 .kind = VL_INDEX_SERIES,
                                 .system = code.system,
                                 .text = code.text,
                                 .unit = ix->rows[i].text,
                                 .lo = lo,
                                 .hi = hi};
            if (!vl_index_add_row(ix, &r))
                return -1;
        }
    }
    return 0;
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
        if (r->kind == VL_INDEX_TOKEN && !r->text[0])
            continue; /* a presence row */
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

int vl_fhir_index_at(const vl_fhir_type_t *type, const json_t *res, const char *fhir_base,
                     vl_index_t *ix, vl_error_t *err)
{
    if (!type || !json_is_object(res))
        return 0;
    ctx_t c = {.ix = ix, .base = fhir_base};
    for (const vl_search_param_t *p = type->params; p->name; p++) {
        c.param = p;
        index_param(&c, res);
        if (c.failed)
            return vl_error_set(err, 500, "exception", NULL, "Out of memory while indexing %s",
                                type->name);
    }
    if (vl_fhir_compartments_at(type, res, fhir_base, ix) < 0 ||
        (strcmp(type->name, "Patient") != 0 && ix->n_patients == 0 &&
         vl_fhir_compartment_member_type(type) && vl_index_add_patient(ix, VL_NO_PATIENT) < 0) ||
        facets(type, ix) < 0 || series(type, ix) < 0)
        return vl_error_set(err, 500, "exception", NULL, "Out of memory while indexing %s",
                            type->name);
    return 0;
}

int vl_fhir_index(const vl_fhir_type_t *type, const json_t *res, vl_index_t *ix, vl_error_t *err)
{
    return vl_fhir_index_at(type, res, NULL, ix, err);
}

int vl_fhir_facets_of(void *ctx, const char *type, const char *body, size_t len, vl_index_t *ix)
{
    const vl_fhir_type_t *t = vl_fhir_type_find(type);
    vl_error_t err = VL_ERROR_INIT;
    json_t *res;
    int rc;
    if (!t) /* a type no longer served: it has no facets */
        return 0;
    res = vl_json_parse(body, len, NULL, &err);
    vl_error_clear(&err);
    if (!res)
        return -1;
    rc = vl_fhir_index_at(t, res, ctx, ix, &err); /* ctx: the FHIR base, or NULL */
    vl_error_clear(&err);
    json_decref(res);
    return rc;
}
