/*
 * vitalog — fhir/search.c: query-string parameters and their translation
 * into a store query (vl_query_t).
 *
 * DESIGN NOTES
 *
 * 1. Memory. Everything a vl_search_t points to (conditions, values,
 *    strings, self_query) lives in one arena (`_mem`), released at once by
 *    vl_search_free(). On a parse error the arena is released before
 *    returning and *out is left zeroed, so vl_search_free() is always safe.
 *
 * 2. Form decoding (vl_params_parse_form): pairs split on '&', name and value
 *    on the first '='; '+' is a space; %XX is decoded; a '%' not followed by
 *    two hex digits, or an encoded NUL (%00), makes the whole call fail
 *    (-1). Empty pairs ("a=1&&b=2") are skipped; a pair without '=' has the
 *    value "".
 *
 * 3. Combining: a comma inside a value separates alternatives (OR); a
 *    repeated parameter adds a condition (AND). "\," "\|" "\$" and "\\"
 *    escape those characters in values. A parameter with an empty value is
 *    ignored (and left out of self_query); an empty alternative ("a,,b") is
 *    a 400.
 *
 * 4. Values per kind (vl_query_value_t):
 *    token      "[system]|[code]": "s|c" -> system s, code c; "|c" -> system
 *               "" (the code has no system); "s|" -> system s, text NULL (any
 *               code); "c" -> system NULL (any), code c. A lone "|" is a 400.
 *    string     default and :contains: text = vl_index_normalize(value), the
 *               store compares it with the rows' `norm` (starts-with /
 *               substring); :exact: text = the value as given, compared with
 *               the row's `text` exactly.
 *    reference  "Type/id" (Type an R4 type, id a valid FHIR id), optionally
 *               with "/_history/n" (stripped); an absolute URL under this
 *               server's FHIR base is that relative reference
 *               (vl_fhir_local_reference; index.c does the same to stored
 *               ones); another absolute URL ("scheme://..." or "urn:...")
 *               as given (history stripped), matching only references
 *               stored with the same URL; a bare "id": with a type modifier (subject:Patient=1)
 *               or a parameter target (patient=1) -> "Type/id"; otherwise it
 *               expands to one alternative "T/id" per R4 resource type T, so
 *               it matches a reference to any type with that id. The store
 *               thus only ever does exact comparisons on references.
 *               A type modifier or value type that conflicts with the
 *               parameter's target is a 400.
 *    date       "[prefix]date": cmp from the prefix (default eq), lo/hi = the
 *               range the value denotes (vl_time_parse_range, or to the
 *               minute: parse_minutes; no zone = UTC); ap widens it by 10%
 *               of its distance from now on each side.
 *    quantity   "[prefix]number[|system|code]" or "number||code": number;
 *               [lo_num, hi_num) its implicit precision (half a unit of the
 *               last digit; ap: 10% of the number if wider); system NULL
 *               when empty or absent (any system); text = code or unit, or
 *               NULL (any unit). A UCUM unit ucum.c knows becomes two
 *               alternatives in the canonical unit: canon rows, and rows
 *               sent in the canonical unit.
 *    composite  "[system|]code$<quantity>": system/text the token; unit the
 *               canonical UCUM unit, a UCUM code as given, or "|" + the code
 *               of another system (index.c's composite rows); no system:
 *               two alternatives.
 *
 * 5. Date prefixes (FHIR R4 search §3.1.1.4.2). Let [lo,hi) be the search
 *    value's range (stored in the query value) and [rlo,rhi) an index row's
 *    range. The store must match a row when:
 *      eq   rlo >= lo && rhi <= hi       the search range contains the row's
 *      ne   !(rlo >= lo && rhi <= hi)    not contained
 *      gt   rhi > hi                     the row reaches past the search range
 *      lt   rlo < lo                     the row starts before the search range
 *      ge   rhi > hi || (rlo >= lo && rhi <= hi)
 *      le   rlo < lo || (rlo >= lo && rhi <= hi)
 *      sa   rlo >= hi                    starts after the search range
 *      eb   rhi <= lo                    ends before it
 *      ap   rlo < hi && rhi > lo         overlaps the widened range
 *    (open Period ends are INT64_MIN / INT64_MAX).
 *    Quantities: eq/ne/ap compare the row's value with [lo_num, hi_num);
 *    lt/le/gt/ge/sa/eb with the number itself (R4: these prefixes ignore
 *    the implicit precision), plus system and code when given.
 *
 * 6. Modifiers: :missing=true|false on every kind (cond.missing 1/0, no
 *    values; presence rows make it follow the R4 expression); :exact and
 *    :contains on strings; a resource type on references (subject:Patient);
 *    on tokens :not (cond.negate), :text (a string condition on the rows of
 *    sp->text_name) and, on identifiers, :of-type (sp->of_type_name, text
 *    "system|code|value"). Everything else (:above, :below, :in, :not-in,
 *    :identifier, ...) is a 400 not-supported, even when lenient (a
 *    modifier changes the meaning; ignoring it would widen the result).
 *    A parameter with rows_of (patient) searches that parameter's rows
 *    (cond.ref_type for :missing); one with union_of (combo-*) the rows of
 *    both (cond.param, cond.also).
 *
 * 7. Common and result parameters:
 *    _id          comma list allowed. The first _id with one value sets
 *                 query.id; any other _id (several values, or repeated)
 *                 becomes a condition with param "_id", kind TOKEN, text = id,
 *                 system NULL, which the store must match against the id.
 *    _lastUpdated a condition with param "_lastUpdated", kind DATE, same
 *                 prefixes as dates; the store compares the version's
 *                 lastUpdated as the one-microsecond range [t, t+1).
 *    _count       0..VL_SEARCH_COUNT_MAX (larger values are clamped; 0 asks
 *                 for the total only); default VL_SEARCH_COUNT_DEFAULT.
 *    _offset      >= 0.
 *    _sort        up to VL_QUERY_SORT_MAX keys: _lastUpdated, _id, or a
 *                 parameter with sp->sortable, '-' for descending.
 *    _total       none, accurate -> VL_TOTAL_NONE, _ACCURATE; estimate and
 *                 the default -> VL_TOTAL_BOUNDED; _summary=count accurate.
 *    _summary     "count" -> _count=0; "false" -> no effect; "true", "text",
 *                 "data" are checked here (vl_fhir_subset_add) and trim each
 *                 entry's resource (fhir/subset.c, applied by fhir/rest.c);
 *                 other values 400 invalid; at most once.
 *    _elements    a comma list of top-level element names, checked here
 *                 (vl_fhir_subset_add) and applied like _summary; at most
 *                 once; together with _summary a 400 not-supported (R4
 *                 does not define the combination).
 *    _format, _pretty  accepted and ignored here (the http layer reads them).
 *    _cursor      a page cursor (fhir/rest.c note 2), kept as given and
 *                 left out of self_query.
 *    _include, _revinclude (:iterate) and _has: note 10.
 *    Other "_" parameters (_tag, _profile, ...) are unknown.
 *    Unknown parameters: 400 not-supported, unless `lenient`, then skipped.
 *
 * 8. Plan hints, after parsing (plan_series, plan_composite): one patient
 *    and one code of Observation become query.series (the conditions are
 *    taken out; date conditions stay and apply to the series' time); code
 *    with a converted UCUM value-quantity becomes code-value-quantity.
 *
 * 9. self_query: every parameter that was used, in the order given,
 *    re-encoded (name=value joined by '&'), except _count and _offset, which
 *    the http layer appends itself when it builds self/next/previous links.
 *    Unreserved characters and ":/," stay literal, everything else ('|' too) is %XX.
 *
 * 10. Chains, _has and includes (R4 search.html 3.1.1.4.13-15, 3.1.1.5.4).
 *    A chain "ref:Type.param=v" (or "ref.param=v" when exactly one served
 *    type that `ref` may refer to has `param`; otherwise a 400 asks for the
 *    type) is a condition on `ref`'s rows with a sub-query of Type for
 *    param=v (parsed by this same parser: modifiers and prefixes work; a
 *    chain inside it is a 400: one level). "_has:Type:ref:param=v" is a
 *    condition whose sub-query of Type must refer to the resource by
 *    `ref`. The store reads sub-queries in the caller's scope, so a chain
 *    or _has through a patient the caller may not see matches nothing.
 *    _include / _revinclude "Source:param[:Target]" are checked (served
 *    source, reference parameter, a target it may refer to; a plain
 *    _include's source is the searched type, a plain _revinclude's
 *    parameter may refer to it; "*" is not supported) and kept in
 *    vl_search_t.includes for fhir/rest.c; at most VL_SEARCH_INCLUDE_MAX.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vitalog/fhir.h"

#include "ucum.h"

#define UCUM "http://unitsofmeasure.org"
/* ap: a date within 10% of its distance from now, a quantity within 10% of
 * its value (R4 leaves the tolerance to the server; this is what it
 * suggests) */
#define AP_FRACTION 0.1

#include "fhir_internal.h" /* vl_subset_t: _summary and _elements */

/* Defined in store/index_rows.c (requested for store.h). */

#define MAX_VALUES_PER_QUERY 4096 /* after bare-id expansion */
#define MAX_ID_LEN 64

/* ------------------------------------------------------------------------
 * Parameters
 * ---------------------------------------------------------------------- */

void vl_params_init(vl_params_t *p)
{
    p->items = NULL;
    p->n = 0;
    p->cap = 0;
}

void vl_params_free(vl_params_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].name);
        free(p->items[i].value);
    }
    free(p->items);
    vl_params_init(p);
}

static int params_push(vl_params_t *p, char *name, char *value)
{
    if (vl_grow(&p->items, &p->cap, p->n + 1, sizeof *p->items) < 0)
        return -1;
    p->items[p->n].name = name;
    p->items[p->n].value = value;
    p->n++;
    return 0;
}

int vl_params_add(vl_params_t *p, const char *name, const char *value)
{
    char *n = strdup(name);
    char *v = strdup(value ? value : "");
    if (!n || !v || params_push(p, n, v) != 0) {
        free(n);
        free(v);
        return -1;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into a new string; NULL on a malformed escape, an encoded
 * NUL or out of memory. */
static char *form_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

int vl_params_parse_form(vl_params_t *p, const char *form, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && form[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(form + i, '=', j - i);
            size_t nlen = eq ? (size_t)(eq - (form + i)) : j - i;
            char *name = form_decode(form + i, nlen);
            char *value = eq ? form_decode(eq + 1, (size_t)(form + j - eq - 1)) : strdup("");
            /* decoded text must be UTF-8 without control characters */
            if (!name || !value || !vl_text_valid(name) || !vl_text_valid(value) ||
                params_push(p, name, value) != 0) {
                free(name);
                free(value);
                return -1;
            }
        }
        i = j + 1;
    }
    return 0;
}

const char *vl_params_get(const vl_params_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0)
            return p->items[i].value;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Search parsing: helpers
 * ---------------------------------------------------------------------- */

/* From fhir/types.c: every R4 resource type name. */

typedef struct parser {
    const vl_fhir_type_t *type;
    const char *base; /* this server's FHIR base, or NULL */
    int64_t now_us;   /* for ap on dates */
    vl_arena_t *arena;
    vl_search_t *out;
    vl_error_t *err;
    size_t nvalues; /* values so far, all conditions */
    size_t cap;     /* room in the values array of the condition being filled */
    vl_buf_t sq;    /* self_query being built */
    int oom;
    int seen_count, seen_offset, seen_sort, seen_total;
    int id_in_query;    /* query.id already used */
    vl_subset_t subset; /* _summary, _elements (fhir/subset.c) */
} parser_t;

static int oom(parser_t *ps)
{
    return vl_error_set(ps->err, 500, "exception", NULL, "Out of memory while parsing the search");
}

static int bad(parser_t *ps, const char *name, const char *value, const char *why)
{
    return vl_error_set(ps->err, 400, "invalid", NULL,
                        "Invalid value '%s' for search parameter '%s': %s", value, name, why);
}

static int id_valid(const char *s, size_t n)
{
    if (n == 0 || n > MAX_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* Index of the first unescaped `ch` in s, or -1. */
static long find_unescaped(const char *s, char ch)
{
    for (long i = 0; s[i]; i++) {
        if (s[i] == '\\' && s[i + 1]) {
            i++;
            continue;
        }
        if (s[i] == ch)
            return i;
    }
    return -1;
}

/* Copies s[0..n) without its backslash escapes into the arena. */
static char *unescape(vl_arena_t *a, const char *s, size_t n)
{
    char *d = vl_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            i++;
        d[o++] = s[i];
    }
    d[o] = '\0';
    return d;
}

/* Splits a value on unescaped commas; the pieces keep their escapes. */
static int split_alternatives(vl_arena_t *a, const char *value, char ***items, size_t *n)
{
    size_t count = 1;
    for (const char *p = value; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == ',')
            count++;
    }
    char **v = vl_arena_alloc(a, count * sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    const char *start = value;
    for (const char *p = value;; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == ',' || *p == '\0') {
            if (!(v[k++] = vl_arena_strndup(a, start, (size_t)(p - start))))
                return -1;
            if (*p == '\0')
                break;
            start = p + 1;
        }
    }
    *items = v;
    *n = k;
    return 0;
}

/* Strict decimal: -?digits(.digits)?([eE][+-]?digits)? */
static int parse_number(const char *s, double *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p != '\0')
        return -1;
    double d = strtod(s, NULL);
    if (!isfinite(d))
        return -1;
    *out = d;
    return 0;
}

/* Reads a comparison prefix; *rest points after it. Returns -1 (with the
 * error set) for the prefixes vitalog does not support. */
static int parse_prefix(parser_t *ps, const char *name, const char *s, vl_cmp_t *cmp,
                        const char **rest)
{
    static const struct {
        const char *p;
        vl_cmp_t c;
    } prefixes[] = {{"eq", VL_CMP_EQ}, {"ne", VL_CMP_NE}, {"lt", VL_CMP_LT},
                    {"le", VL_CMP_LE}, {"gt", VL_CMP_GT}, {"ge", VL_CMP_GE},
                    {"sa", VL_CMP_SA}, {"eb", VL_CMP_EB}, {"ap", VL_CMP_AP}};
    *cmp = VL_CMP_EQ;
    *rest = s;
    if (!islower((unsigned char)s[0]) || !islower((unsigned char)s[1]))
        return 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (strncmp(s, prefixes[i].p, 2) == 0) {
            *cmp = prefixes[i].c;
            *rest = s + 2;
            return 0;
        }
    }
    (void)ps;
    (void)name;
    return 0; /* not a prefix: the value itself will be judged */
}

/* ------------------------------------------------------------------------
 * self_query
 * ---------------------------------------------------------------------- */

static void sq_put(parser_t *ps, const char *s, size_t n)
{
    if (vl_buf_append(&ps->sq, s, n) < 0)
        ps->oom = 1;
}

static void sq_encode(parser_t *ps, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* RFC 3986 query characters that need no escaping ('|' does) */
        if (isalnum(*p) || strchr("-._~:/,", *p)) {
            sq_put(ps, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sq_put(ps, e, 3);
        }
    }
}

static void sq_add(parser_t *ps, const vl_param_t *prm)
{
    if (ps->sq.len)
        sq_put(ps, "&", 1);
    sq_encode(ps, prm->name);
    sq_put(ps, "=", 1);
    sq_encode(ps, prm->value);
}

/* ------------------------------------------------------------------------
 * Conditions
 * ---------------------------------------------------------------------- */

static vl_query_cond_t *new_cond(parser_t *ps, const char *param, vl_index_kind_t kind)
{
    vl_query_t *q = &ps->out->query;
    vl_query_cond_t *c = &q->conds[q->n++];
    memset(c, 0, sizeof *c);
    c->param = param;
    c->kind = kind;
    c->match = VL_MATCH_DEFAULT;
    c->missing = -1;
    return c;
}

static int reserve_values(parser_t *ps, vl_query_cond_t *c, size_t n)
{
    if (ps->nvalues + n > MAX_VALUES_PER_QUERY)
        return vl_error_set(ps->err, 400, "too-costly", NULL,
                            "The search has too many values (at most %d)", MAX_VALUES_PER_QUERY);
    c->values = vl_arena_alloc(ps->arena, (n ? n : 1) * sizeof *c->values);
    if (!c->values)
        return oom(ps);
    memset(c->values, 0, (n ? n : 1) * sizeof *c->values);
    ps->cap = n ? n : 1;
    return 0;
}

/* The next free value of the condition being filled. reserve_values()
 * sizes the array from the raw alternatives; a value can still expand into
 * more (a bare reference id after unescaping), so the array grows here
 * instead of trusting the estimate. NULL (error recorded) past the per-query
 * limit or out of memory. */
static vl_query_value_t *next_value(parser_t *ps, vl_query_cond_t *c)
{
    vl_query_value_t *v;
    if (ps->nvalues >= MAX_VALUES_PER_QUERY) {
        vl_error_set(ps->err, 400, "too-costly", NULL,
                     "The search has too many values (at most %d)", MAX_VALUES_PER_QUERY);
        return NULL;
    }
    if (c->n >= ps->cap) {
        size_t ncap = ps->cap ? ps->cap * 2 : 8;
        vl_query_value_t *grown = vl_arena_alloc(ps->arena, ncap * sizeof *grown);
        if (!grown) {
            oom(ps);
            return NULL;
        }
        memset(grown, 0, ncap * sizeof *grown);
        if (c->n)
            memcpy(grown, c->values, c->n * sizeof *grown);
        c->values = grown;
        ps->cap = ncap;
    }
    ps->nvalues++;
    v = &c->values[c->n++];
    v->cmp = VL_CMP_EQ;
    return v;
}

static int parse_token(parser_t *ps, const char *name, const char *raw, vl_query_cond_t *c)
{
    vl_query_value_t *v = next_value(ps, c);
    if (!v)
        return -1;
    long bar = find_unescaped(raw, '|');
    if (bar < 0) {
        v->system = NULL;
        if (!(v->text = unescape(ps->arena, raw, strlen(raw))))
            return oom(ps);
        return 0;
    }
    if (bar == 0 && raw[1] == '\0')
        return bad(ps, name, raw, "a token needs a system or a code");
    char *sys = unescape(ps->arena, raw, (size_t)bar);
    char *code = unescape(ps->arena, raw + bar + 1, strlen(raw + bar + 1));
    if (!sys || !code)
        return oom(ps);
    v->system = sys;               /* "" means: no system */
    v->text = *code ? code : NULL; /* NULL means: any code of the system */
    return 0;
}

/* identifier:of-type "system|code|value": the rows made for it hold
 * "<type system>|<type code>|<value>" (fhir/index.c). */
static int parse_of_type(parser_t *ps, const char *name, const char *raw, vl_query_cond_t *c)
{
    long b1 = find_unescaped(raw, '|'), b2 = b1 < 0 ? -1 : find_unescaped(raw + b1 + 1, '|');
    vl_query_value_t *v;
    char *sys, *code, *value, *text;
    if (b1 < 0 || b2 < 0)
        return bad(ps, name, raw, ":of-type takes system|code|value");
    sys = unescape(ps->arena, raw, (size_t)b1);
    code = unescape(ps->arena, raw + b1 + 1, (size_t)b2);
    value = unescape(ps->arena, raw + b1 + b2 + 2, strlen(raw + b1 + b2 + 2));
    if (!sys || !code || !value)
        return oom(ps);
    if (!*code || !*value)
        return bad(ps, name, raw, ":of-type needs a type code and a value");
    if (!(v = next_value(ps, c)) ||
        !(text = vl_arena_alloc(ps->arena, strlen(sys) + strlen(code) + strlen(value) + 3)))
        return v ? oom(ps) : -1;
    sprintf(text, "%s|%s|%s", sys, code, value);
    v->text = text;
    return 0;
}

static int parse_string(parser_t *ps, const char *raw, vl_query_cond_t *c)
{
    vl_query_value_t *v = next_value(ps, c);
    if (!v)
        return -1;
    char *s = unescape(ps->arena, raw, strlen(raw));
    if (!s)
        return oom(ps);
    if (c->match == VL_MATCH_EXACT) {
        v->text = s;
        return 0;
    }
    char *norm = vl_index_normalize(s);
    if (!norm)
        return oom(ps);
    v->text = vl_arena_strdup(ps->arena, norm);
    free(norm);
    return v->text ? 0 : oom(ps);
}

static int add_reference_value(parser_t *ps, vl_query_cond_t *c, const char *type, const char *id)
{
    vl_query_value_t *v = next_value(ps, c);
    if (!v)
        return -1;
    size_t tl = strlen(type), il = strlen(id);
    char *t = vl_arena_alloc(ps->arena, tl + il + 2);
    if (!t)
        return oom(ps);
    memcpy(t, type, tl);
    t[tl] = '/';
    memcpy(t + tl + 1, id, il + 1);
    v->text = t;
    return 0;
}

static int parse_reference(parser_t *ps, const vl_search_param_t *sp, const char *name,
                           const char *type_mod, const char *raw, vl_query_cond_t *c)
{
    char *s = unescape(ps->arena, raw, strlen(raw));
    if (!s)
        return oom(ps);
    char *h = strstr(s, "/_history/");
    if (h)
        *h = '\0';
    {
        /* an absolute URL of this server is its relative reference */
        const char *local = vl_fhir_local_reference(s, ps->base);
        if (local != s)
            memmove(s, local, strlen(local) + 1);
    }
    if (strstr(s, "://") || strncmp(s, "urn:", 4) == 0) {
        vl_query_value_t *v = next_value(ps, c);
        if (!v)
            return -1;
        v->text = s;
        return 0;
    }
    char *slash = strchr(s, '/');
    if (slash) {
        *slash = '\0';
        const char *type = s, *id = slash + 1;
        if (!vl_fhir_is_r4_type(type) || !id_valid(id, strlen(id)))
            return bad(ps, name, raw, "expected Type/id, an id or an absolute URL");
        if (sp->target && strcmp(type, sp->target) != 0)
            return bad(ps, name, raw, "the parameter only refers to another resource type");
        if (type_mod && strcmp(type, type_mod) != 0)
            return bad(ps, name, raw, "the type in the value differs from the type modifier");
        return add_reference_value(ps, c, type, id);
    }
    if (!id_valid(s, strlen(s)))
        return bad(ps, name, raw, "expected Type/id, an id or an absolute URL");
    if (type_mod)
        return add_reference_value(ps, c, type_mod, s);
    if (sp->target)
        return add_reference_value(ps, c, sp->target, s);
    /* bare id, any type: one alternative per R4 type */
    size_t n;
    const char *const *types = vl_fhir_r4_type_list(&n);
    for (size_t i = 0; i < n; i++)
        if (add_reference_value(ps, c, types[i], s) != 0)
            return -1;
    return 0;
}

/* A search date with hours and minutes but no seconds
 * ("2024-03-15T10:00Z", "...T10:00+02:00", "...T10:00"): the minute it
 * names, [hh:mm:00, hh:mm+1:00). R4 search allows the precision; the
 * dateTime data type itself does not, so vl_time_parse_range refuses it. */
static int parse_minutes(const char *s, int64_t *lo, int64_t *hi)
{
    char buf[48];
    size_t n = strlen(s);
    if (n < 16 || n > 22 || s[10] != 'T' || s[13] != ':' || !isdigit((unsigned char)s[14]) ||
        !isdigit((unsigned char)s[15]) || (s[16] && s[16] != 'Z' && s[16] != '+' && s[16] != '-'))
        return -1;
    memcpy(buf, s, 16);
    memcpy(buf + 16, ":00", 3);
    memcpy(buf + 19, s + 16, n - 16 + 1);
    if (vl_time_parse_range(buf, lo, hi, NULL) != 0)
        return -1;
    *hi = *lo + 60 * INT64_C(1000000);
    return 0;
}

static int parse_date(parser_t *ps, const char *name, const char *raw, vl_query_cond_t *c)
{
    vl_cmp_t cmp;
    const char *rest;
    if (parse_prefix(ps, name, raw, &cmp, &rest) != 0)
        return -1;
    vl_query_value_t *v = next_value(ps, c);
    if (!v)
        return -1;
    v->cmp = cmp;
    if (vl_time_parse_range(rest, &v->lo, &v->hi, NULL) != 0 &&
        parse_minutes(rest, &v->lo, &v->hi) != 0)
        return bad(ps, name, raw, "expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.sss]][Z|+hh:mm]]]]");
    if (cmp == VL_CMP_AP) { /* widen by 10% of the distance from now */
        double gap = fabs((double)ps->now_us - (double)v->lo) * AP_FRACTION;
        v->lo = (double)v->lo - gap < (double)INT64_MIN ? INT64_MIN : v->lo - (int64_t)gap;
        v->hi = (double)v->hi + gap > (double)INT64_MAX ? INT64_MAX : v->hi + (int64_t)gap;
    }
    return 0;
}

/* The implicit precision of a decimal as written (R4 search 3.1.1.4.6):
 * half a unit of its last digit, so "100" is [99.5, 100.5) and "99.5" is
 * [99.45, 99.55); with an exponent one digit more, as R4's own example
 * has it: "1e2" is [95, 105). */
static double half_unit(const char *num)
{
    int decimals = 0, exp = 0;
    const char *dot = strchr(num, '.'), *e = strpbrk(num, "eE");
    if (dot)
        decimals = (int)((e ? e : num + strlen(num)) - dot - 1);
    if (e)
        exp = atoi(e + 1) - 1;
    return 0.5 * pow(10.0, (double)(exp - decimals));
}

/* Fills the range of v (lo_num, hi_num) from its number and prefix. */
static void quantity_range(vl_query_value_t *v, double half)
{
    double tol = half;
    if (v->cmp == VL_CMP_AP && fabs(v->number) * AP_FRACTION > tol)
        tol = fabs(v->number) * AP_FRACTION;
    v->lo_num = v->number - tol;
    v->hi_num = v->number + tol;
}

/* A UCUM search value in its canonical unit (ucum.c), as the store keeps
 * canonical rows: 0, or -1 if the unit is not known. */
static int to_canonical(vl_query_value_t *v, const char **canon)
{
    double n, lo, hi;
    if (vl_ucum_to_canonical(v->text, v->number, canon, &n) != 0 ||
        vl_ucum_to_canonical(v->text, v->lo_num, canon, &lo) != 0 ||
        vl_ucum_to_canonical(v->text, v->hi_num, canon, &hi) != 0)
        return -1;
    v->number = n;
    v->lo_num = lo;
    v->hi_num = hi;
    return 0;
}

/* "[prefix]number[|system|code]" into v: number and range; system NULL
 * when empty or absent (any), text the code or NULL (any unit). */
static int quantity_part(parser_t *ps, const char *name, const char *raw, vl_query_value_t *v)
{
    vl_cmp_t cmp;
    const char *rest;
    if (parse_prefix(ps, name, raw, &cmp, &rest) != 0)
        return -1;
    v->cmp = cmp;
    long b1 = find_unescaped(rest, '|');
    char *num;
    if (b1 < 0) {
        num = vl_arena_strdup(ps->arena, rest);
    } else {
        long b2 = find_unescaped(rest + b1 + 1, '|');
        if (b2 < 0 || find_unescaped(rest + b1 + 1 + b2 + 1, '|') >= 0)
            return bad(ps, name, raw, "expected [prefix]number or [prefix]number|system|code");
        num = vl_arena_strndup(ps->arena, rest, (size_t)b1);
        char *sys = unescape(ps->arena, rest + b1 + 1, (size_t)b2);
        const char *cs = rest + b1 + 1 + b2 + 1;
        char *code = unescape(ps->arena, cs, strlen(cs));
        if (!sys || !code)
            return oom(ps);
        v->system = *sys ? sys : NULL;
        v->text = *code ? code : NULL;
    }
    if (!num)
        return oom(ps);
    if (parse_number(num, &v->number) != 0)
        return bad(ps, name, raw, "expected [prefix]number or [prefix]number|system|code");
    quantity_range(v, half_unit(num));
    return 0;
}

/* Quantity values (ix_quantity): a UCUM unit that converts is searched in
 * its canonical unit, among the canonical rows of other units (canon 1)
 * and the rows sent in the canonical unit itself (canon 0): two
 * alternatives. Otherwise the rows as sent: "number|system|code" with that
 * system and code, "number||code" with that code or unit in any system,
 * "number" any. */
static int parse_quantity(parser_t *ps, const char *name, const char *raw, vl_query_cond_t *c)
{
    vl_query_value_t *v = next_value(ps, c);
    const char *canon;
    if (!v || quantity_part(ps, name, raw, v) != 0)
        return -1;
    if (v->system && v->text && !strcmp(v->system, UCUM) && to_canonical(v, &canon) == 0) {
        vl_query_value_t *alt = next_value(ps, c);
        if (!alt)
            return -1;
        v = &c->values[c->n - 2]; /* next_value may have moved the array */
        v->text = canon;
        v->canon = 1;
        *alt = *v;
        alt->canon = 0;
    }
    return 0;
}

/* "[system]|[code]$[prefix]number[|system|code]": a token $ quantity
 * composite (ix_composite rows hold the quantity in its canonical UCUM unit
 * when it has one, else the code or unit as sent). */
static int parse_composite(parser_t *ps, const char *name, const char *raw, vl_query_cond_t *c)
{
    long dollar = find_unescaped(raw, '$'), bar = find_unescaped(raw, '|');
    char *system = NULL, *code;
    const char *canon;
    vl_query_value_t *v;
    size_t first = c->n;
    if (dollar <= 0 || !raw[dollar + 1])
        return bad(ps, name, raw, "expected [system|]code$[prefix]number[|system|code]");
    if (bar >= 0 && bar < dollar) {
        system = unescape(ps->arena, raw, (size_t)bar);
        code = unescape(ps->arena, raw + bar + 1, (size_t)(dollar - bar - 1));
        if (!system)
            return oom(ps);
    } else {
        code = unescape(ps->arena, raw, (size_t)dollar);
    }
    if (!code)
        return oom(ps);
    if (!*code)
        return bad(ps, name, raw, "the token part needs a code");
    if (!(v = next_value(ps, c)) || quantity_part(ps, name, raw + dollar + 1, v) != 0)
        return -1;
    /* the units the rows hold (fhir/index.c): the canonical UCUM unit, a
     * UCUM code as sent, or "|" + the code of another system; a unit
     * without a system is either of the last two */
    v->unit = v->text;
    if (v->system && v->text && !strcmp(v->system, UCUM) && to_canonical(v, &canon) == 0) {
        v->unit = canon;
    } else if (v->text && (!v->system || strcmp(v->system, UCUM) != 0)) {
        char *marked = vl_arena_alloc(ps->arena, strlen(v->text) + 2);
        if (!marked)
            return oom(ps);
        sprintf(marked, "|%s", v->text);
        if (v->system) {
            v->unit = marked;
        } else {
            vl_query_value_t *alt = next_value(ps, c);
            if (!alt)
                return -1;
            *alt = c->values[first]; /* next_value may have moved the array */
            alt->unit = marked;
        }
    }
    for (size_t i = first; i < c->n; i++) {
        c->values[i].system = system; /* "" : no system */
        c->values[i].text = code;
    }
    return 0;
}

/* A search parameter of the type (not one of the "_" ones). */
static int parse_param(parser_t *ps, const vl_search_param_t *sp, const char *name,
                       const char *modifier, const char *value)
{
    const char *type_mod = NULL;
    vl_match_t match = VL_MATCH_DEFAULT;
    int missing = -1, negate = 0, text_mod = 0, of_type = 0;

    if (modifier) {
        if (strcmp(modifier, "missing") == 0) {
            if (strcmp(value, "true") == 0)
                missing = 1;
            else if (strcmp(value, "false") == 0)
                missing = 0;
            else
                return bad(ps, name, value, ":missing takes true or false");
        } else if (sp->kind == VL_INDEX_STRING && strcmp(modifier, "exact") == 0) {
            match = VL_MATCH_EXACT;
        } else if (sp->kind == VL_INDEX_STRING && strcmp(modifier, "contains") == 0) {
            match = VL_MATCH_CONTAINS;
        } else if (sp->kind == VL_INDEX_TOKEN && strcmp(modifier, "not") == 0) {
            negate = 1;
        } else if (sp->kind == VL_INDEX_TOKEN && strcmp(modifier, "text") == 0 && sp->text_name) {
            /* CodeableConcept.text and Coding.display, as strings */
            text_mod = 1;
        } else if (sp->kind == VL_INDEX_TOKEN && strcmp(modifier, "of-type") == 0 &&
                   sp->of_type_name) {
            of_type = 1;
        } else if (sp->kind == VL_INDEX_REFERENCE && vl_fhir_is_r4_type(modifier)) {
            if (sp->target && strcmp(modifier, sp->target) != 0)
                return vl_error_set(ps->err, 400, "invalid", NULL,
                                    "Search parameter '%s' only refers to %s, not %s", sp->name,
                                    sp->target, modifier);
            type_mod = modifier;
        } else {
            return vl_error_set(ps->err, 400, "not-supported", NULL,
                                "The modifier ':%s' is not supported on search parameter '%s'",
                                modifier, sp->name);
        }
    }

    vl_query_cond_t *c = new_cond(ps,
                                  text_mod  ? sp->text_name
                                  : of_type ? sp->of_type_name
                                            : sp->name,
                                  text_mod ? VL_INDEX_STRING : sp->kind);
    if (sp->rows_of) { /* patient: the subject rows that refer to a Patient */
        c->param = sp->rows_of;
        c->ref_type = sp->target;
    }
    if (sp->union_of[0]) { /* combo-*: the rows of both parameters it unites */
        const vl_search_param_t *a = vl_fhir_param_find(ps->type, sp->union_of[0]);
        const vl_search_param_t *b = vl_fhir_param_find(ps->type, sp->union_of[1]);
        if (!a || !b)
            return vl_error_set(ps->err, 500, "exception", NULL, "search parameter table");
        c->param = text_mod ? a->text_name : a->name;
        c->also = text_mod ? b->text_name : b->name;
        if (!c->param || !c->also)
            return vl_error_set(ps->err, 400, "not-supported", NULL,
                                "The modifier ':%s' is not supported on search parameter '%s'",
                                modifier, sp->name);
    }
    c->match = match;
    c->missing = missing;
    c->negate = negate;
    if (missing >= 0)
        return 0;

    char **items;
    size_t n;
    if (split_alternatives(ps->arena, value, &items, &n) != 0)
        return oom(ps);
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i][0] == '\0')
            return bad(ps, name, value, "empty alternative");
        int bare_any = sp->kind == VL_INDEX_REFERENCE && !type_mod && !sp->target &&
                       !strchr(items[i], '/') && !strchr(items[i], ':');
        size_t nt;
        vl_fhir_r4_type_list(&nt);
        need += bare_any                                                          ? nt
                : sp->kind == VL_INDEX_QUANTITY || sp->kind == VL_INDEX_COMPOSITE ? 2
                                                                                  : 1;
    }
    if (reserve_values(ps, c, need) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int rc = 0;
        switch (text_mod ? VL_INDEX_STRING : sp->kind) {
        case VL_INDEX_TOKEN:
            rc =
                of_type ? parse_of_type(ps, name, items[i], c) : parse_token(ps, name, items[i], c);
            break;
        case VL_INDEX_STRING: rc = parse_string(ps, items[i], c); break;
        case VL_INDEX_REFERENCE: rc = parse_reference(ps, sp, name, type_mod, items[i], c); break;
        case VL_INDEX_DATE: rc = parse_date(ps, name, items[i], c); break;
        case VL_INDEX_QUANTITY: rc = parse_quantity(ps, name, items[i], c); break;
        case VL_INDEX_COMPOSITE: rc = parse_composite(ps, name, items[i], c); break;
        case VL_INDEX_SERIES: rc = bad(ps, name, items[i], "not a search parameter"); break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Common and result parameters
 * ---------------------------------------------------------------------- */

static int parse_int(const char *s, int *out)
{
    if (!*s || strlen(s) > 9)
        return -1;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0'); /* at most 9 digits: cannot overflow */
    }
    *out = v;
    return 0;
}

static int once(parser_t *ps, int *seen, const char *name)
{
    if ((*seen)++)
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "The search parameter '%s' may appear only once", name);
    return 0;
}

static int parse_id(parser_t *ps, const char *value)
{
    char **items;
    size_t n;
    if (split_alternatives(ps->arena, value, &items, &n) != 0)
        return oom(ps);
    for (size_t i = 0; i < n; i++)
        if (!id_valid(items[i], strlen(items[i])))
            return bad(ps, "_id", value, "not a valid resource id");
    if (n == 1 && !ps->id_in_query) {
        ps->id_in_query = 1;
        ps->out->query.id = items[0];
        return 0;
    }
    vl_query_cond_t *c = new_cond(ps, "_id", VL_INDEX_TOKEN);
    if (reserve_values(ps, c, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        vl_query_value_t *v = next_value(ps, c);
        if (!v)
            return -1;
        v->text = items[i];
    }
    return 0;
}

static int parse_last_updated(parser_t *ps, const char *value)
{
    char **items;
    size_t n;
    if (split_alternatives(ps->arena, value, &items, &n) != 0)
        return oom(ps);
    vl_query_cond_t *c = new_cond(ps, "_lastUpdated", VL_INDEX_DATE);
    if (reserve_values(ps, c, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (items[i][0] == '\0')
            return bad(ps, "_lastUpdated", value, "empty alternative");
        if (parse_date(ps, "_lastUpdated", items[i], c) != 0)
            return -1;
    }
    return 0;
}

/* _sort=key[,key...]: each "_lastUpdated", "_id" or a sortable parameter
 * (sort keys kept per version), '-' for descending; ties are broken by the
 * version, so the order is total and repeatable. */
static int parse_sort(parser_t *ps, const char *value)
{
    char **items;
    size_t n;
    vl_query_t *q = &ps->out->query;
    if (split_alternatives(ps->arena, value, &items, &n) != 0)
        return oom(ps);
    if (n > VL_QUERY_SORT_MAX)
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "Sorting by more than %d keys is not supported", VL_QUERY_SORT_MAX);
    for (size_t i = 0; i < n; i++) {
        int desc = items[i][0] == '-';
        const char *key = items[i] + desc;
        vl_query_sort_t *k = &q->sort[q->n_sort];
        if (!*key)
            return bad(ps, "_sort", value, "empty sort key");
        if (strcmp(key, "_lastUpdated") == 0 || strcmp(key, "_id") == 0) {
            k->param = strcmp(key, "_id") == 0 ? "_id" : "_lastUpdated";
        } else {
            const vl_search_param_t *sp = vl_fhir_param_find(ps->type, key);
            if (!sp || !sp->sortable)
                return vl_error_set(ps->err, 400, "not-supported", NULL,
                                    "Sorting by '%s' is not supported (the sortable parameters "
                                    "of %s are listed in the CapabilityStatement)",
                                    key, ps->type->name);
            k->param = sp->name;
        }
        k->desc = desc;
        q->n_sort++;
    }
    return 0;
}

/* The plan hints the store reads (vl_query_t.series): a search of one
 * patient's Observations of one code reads the series index. The patient
 * condition (patient=, or subject= with a Patient reference) and the code
 * condition (one code) are taken out of the list; date conditions stay
 * and the store applies them to the series' time. */
/* A condition the plans may rewrite: no modifier, not a union. */
static int plain(const vl_query_cond_t *c)
{
    return !c->negate && c->missing < 0 && c->match == VL_MATCH_DEFAULT && !c->also;
}

/* Takes conditions a and b (b may be -1) out of the list. */
static void drop_conds(vl_query_t *q, long a, long b)
{
    size_t k = 0;
    for (size_t i = 0; i < q->n; i++)
        if ((long)i != a && (long)i != b)
            q->conds[k++] = q->conds[i];
    q->n = k;
}

static void plan_series(vl_query_t *q)
{
    long pat = -1, code = -1;
    if (strcmp(q->type, "Observation") != 0)
        return;
    for (size_t i = 0; i < q->n; i++) {
        const vl_query_cond_t *c = &q->conds[i];
        int single = c->n == 1 && plain(c);
        if (single && c->kind == VL_INDEX_REFERENCE &&
            (!strcmp(c->param, "patient") || !strcmp(c->param, "subject")) &&
            !strncmp(c->values[0].text, "Patient/", 8) && pat < 0)
            pat = (long)i;
        else if (single && c->kind == VL_INDEX_TOKEN && !strcmp(c->param, "code") &&
                 c->values[0].text && code < 0)
            code = (long)i;
    }
    if (pat < 0 || code < 0)
        return;
    q->series.patient = q->conds[pat].values[0].text;
    q->series.system = q->conds[code].values[0].system;
    q->series.code = q->conds[code].values[0].text;
    q->series.code_param = "code";
    q->series.date_param = "date";
    drop_conds(q, pat, code);
}

/* code=s|c with value-quantity=[prefix]n|UCUM|unit, each once, is the
 * composite code-value-quantity=s|c$[prefix]n|UCUM|unit (Observation.value
 * has one value, so the pair is the same Observation's): one range read of
 * ix_composite instead of two lookups. */
static void plan_composite(parser_t *ps, vl_query_t *q)
{
    long code = -1, qty = -1;
    const vl_search_param_t *sp = vl_fhir_param_find(ps->type, "code-value-quantity");
    if (strcmp(q->type, "Observation") != 0 || !sp || q->series.patient)
        return;
    for (size_t i = 0; i < q->n; i++) {
        const vl_query_cond_t *c = &q->conds[i];
        if (c->n == 1 && plain(c) && c->kind == VL_INDEX_TOKEN && !strcmp(c->param, "code") &&
            c->values[0].text && c->values[0].system && code < 0)
            code = (long)i;
    }
    for (size_t i = 0; i < q->n; i++) {
        const vl_query_cond_t *c = &q->conds[i];
        /* a converted UCUM value: its two alternatives, canonical rows and
         * rows in the canonical unit */
        if (c->kind == VL_INDEX_QUANTITY && !strcmp(c->param, "value-quantity") && c->n == 2 &&
            c->values[0].canon && plain(c) && qty < 0)
            qty = (long)i;
    }
    if (code < 0 || qty < 0)
        return;
    vl_query_cond_t *c = &q->conds[qty];
    vl_query_value_t *v = &c->values[0];
    v->unit = v->text;
    v->text = q->conds[code].values[0].text;
    v->system = q->conds[code].values[0].system;
    v->canon = 0;
    c->n = 1;
    c->param = sp->name;
    c->kind = VL_INDEX_COMPOSITE;
    c->unique = 1; /* one value, one coding with this system and code */
    drop_conds(q, code, -1);
}

/* Returns 1 if the parameter was used, 0 if skipped, -1 on error. */
/* ------------------------------------------------------------------------
 * Chains, _has, _include and _revinclude (note 10)
 * ---------------------------------------------------------------------- */

static void free_sub(void *ctx)
{
    vl_search_free(ctx);
    free(ctx);
}

/* Parses "name=value" as a search of `type` into a sub-query that lives as
 * long as the outer search. NULL (error recorded) when it is not valid. */
static const vl_query_t *sub_query(parser_t *ps, const vl_fhir_type_t *type, const char *name,
                                   const char *value)
{
    vl_params_t one;
    vl_search_t *sub = calloc(1, sizeof *sub);
    int rc;
    if (!sub) {
        oom(ps);
        return NULL;
    }
    vl_params_init(&one);
    if (vl_params_add(&one, name, value) < 0) {
        vl_params_free(&one);
        free(sub);
        oom(ps);
        return NULL;
    }
    rc = vl_fhir_search_parse_at(type, &one, 0, ps->base, sub, ps->err);
    vl_params_free(&one);
    if (rc < 0 || vl_arena_defer(ps->arena, free_sub, sub) < 0) {
        if (rc == 0)
            oom(ps);
        vl_search_free(sub);
        free(sub);
        return NULL;
    }
    return &sub->query;
}

static int targets(const vl_search_param_t *sp, const char *type)
{
    return vl_fhir_param_targets(sp, type);
}

/* Whether `type` has search parameter `name` (the common _id and
 * _lastUpdated included). */
static int has_param(const vl_fhir_type_t *type, const char *name)
{
    return !strcmp(name, "_id") || !strcmp(name, "_lastUpdated") ||
           vl_fhir_param_find(type, name) != NULL;
}

/* The parameter whose rows hold `sp`'s references (patient -> subject). */
static const char *rows_name(const vl_search_param_t *sp)
{
    return sp->rows_of ? sp->rows_of : sp->name;
}

/* "ref[:Type].param[:modifier]=value": the resources whose `ref` refers to
 * a resource of Type matching param=value. Without a type, the one served
 * type that `ref` may refer to and that has `param`. */
static int parse_chain(parser_t *ps, const char *full, const char *value)
{
    const char *dot = strchr(full, '.');
    char left[128];
    const char *colon, *rest = dot + 1, *target = NULL;
    const vl_search_param_t *sp;
    const vl_fhir_type_t *tt = NULL;
    char rest_base[128];
    const vl_query_t *sub;
    vl_query_cond_t *c;
    size_t n = (size_t)(dot - full);
    if (n >= sizeof left || !*rest)
        return vl_error_set(ps->err, 400, "invalid", NULL, "Invalid chained parameter '%s'", full);
    memcpy(left, full, n);
    left[n] = '\0';
    if ((colon = strchr(left, ':')) != NULL) {
        left[colon - left] = '\0';
        target = colon + 1;
    }
    snprintf(rest_base, sizeof rest_base, "%.*s", (int)strcspn(rest, ":"), rest);
    if (strchr(rest_base, '.') || !strncmp(rest_base, "_has", 4))
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "'%s': chains are supported one level deep", full);
    sp = vl_fhir_param_find(ps->type, left);
    if (!sp || sp->kind != VL_INDEX_REFERENCE)
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "'%s': '%s' is not a reference parameter of %s", full, left,
                            ps->type->name);
    if (target) {
        if (!(tt = vl_fhir_type_find(target)) || !targets(sp, target))
            return vl_error_set(ps->err, 400, "invalid", NULL,
                                "'%s': %s cannot refer to a %s this server serves", full, left,
                                target);
    } else {
        for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++)
            if (targets(sp, t->name) && has_param(t, rest_base)) {
                if (tt)
                    return vl_error_set(ps->err, 400, "invalid", NULL,
                                        "'%s' is ambiguous (%s or %s): name the type, e.g. "
                                        "%s:%s.%s",
                                        full, tt->name, t->name, left, tt->name, rest);
                tt = t;
            }
        if (!tt)
            return vl_error_set(ps->err, 400, "not-supported", NULL,
                                "'%s': no type %s refers to has the parameter '%s'", full, left,
                                rest_base);
    }
    if (!has_param(tt, rest_base))
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "'%s': unknown search parameter '%s' for resource type %s", full,
                            rest_base, tt->name);
    if (!(sub = sub_query(ps, tt, rest, value)))
        return -1;
    c = new_cond(ps, rows_name(sp), VL_INDEX_REFERENCE);
    c->sub = sub;
    return 0;
}

/* "_has:Type:ref:param[:modifier]=value": the resources that some
 * resource of Type matching param=value refers to by `ref`. */
static int parse_has(parser_t *ps, const char *full, const char *value)
{
    char type[65], ref[65];
    const char *p, *rest;
    const vl_fhir_type_t *t;
    const vl_search_param_t *sp;
    const vl_query_t *sub;
    vl_query_cond_t *c;
    size_t n, m;
    if (strncmp(full, "_has:", 5) != 0) /* "_has" alone: nothing after it to read */
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "'%s': _has is _has:<type>:<reference>:<parameter>", full);
    p = full + 5;
    n = strcspn(p, ":");
    if (n == 0 || n >= sizeof type || !p[n])
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "'%s': _has is _has:<type>:<reference>:<parameter>", full);
    memcpy(type, p, n);
    type[n] = '\0';
    p += n + 1;
    m = strcspn(p, ":");
    if (m == 0 || m >= sizeof ref || !p[m] || !p[m + 1])
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "'%s': _has is _has:<type>:<reference>:<parameter>", full);
    memcpy(ref, p, m);
    ref[m] = '\0';
    rest = p + m + 1;
    if (!strncmp(rest, "_has", 4) || strchr(rest, '.'))
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "'%s': _has is supported one level deep, without chains", full);
    if (!(t = vl_fhir_type_find(type)))
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "'%s': %s is not a type this server serves", full, type);
    sp = vl_fhir_param_find(t, ref);
    if (!sp || sp->kind != VL_INDEX_REFERENCE || !targets(sp, ps->type->name))
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "'%s': '%s' is not a reference parameter of %s that may refer to %s",
                            full, ref, type, ps->type->name);
    if (!(sub = sub_query(ps, t, rest, value)))
        return -1;
    c = new_cond(ps, "_has", VL_INDEX_REFERENCE);
    c->sub = sub;
    c->has = 1;
    c->has_param = rows_name(sp);
    return 0;
}

/* "_include[:iterate]=Source:param[:Target]", and _revinclude. */
static int parse_include(parser_t *ps, const char *base, const char *modifier, const char *value)
{
    vl_search_include_t *in;
    const vl_fhir_type_t *src;
    const vl_search_param_t *sp;
    char buf[200];
    char *param, *target;
    int rev = !strcmp(base, "_revinclude");
    if (modifier && strcmp(modifier, "iterate") && strcmp(modifier, "recurse"))
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "The modifier ':%s' is not supported on '%s' (only :iterate)", modifier,
                            base);
    if (ps->out->n_includes == VL_SEARCH_INCLUDE_MAX)
        return vl_error_set(ps->err, 400, "too-costly", NULL,
                            "At most %d _include and _revinclude parameters",
                            VL_SEARCH_INCLUDE_MAX);
    if (strlen(value) >= sizeof buf || !strcmp(value, "*"))
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "%s=%s: name the source type and its reference parameter "
                            "(Type:param), wildcards are not supported",
                            base, value);
    snprintf(buf, sizeof buf, "%s", value);
    if (!(param = strchr(buf, ':')))
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "%s=%s: expected Type:param or Type:param:TargetType", base, value);
    *param++ = '\0';
    if ((target = strchr(param, ':')) != NULL)
        *target++ = '\0';
    if (!(src = vl_fhir_type_find(buf)))
        return vl_error_set(ps->err, 400, "not-supported", NULL,
                            "%s=%s: %s is not a type this server serves", base, value, buf);
    sp = vl_fhir_param_find(src, param);
    if (!sp || sp->kind != VL_INDEX_REFERENCE)
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "%s=%s: '%s' is not a reference parameter of %s", base, value, param,
                            buf);
    if (target && (!vl_fhir_type_find(target) || !targets(sp, target)))
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "%s=%s: %s cannot refer to a %s this server serves", base, value, param,
                            target);
    if (!modifier && !rev && strcmp(src->name, ps->type->name) != 0)
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "_include=%s: the source of an _include is the searched type %s "
                            "(use _include:iterate for included resources)",
                            value, ps->type->name);
    if (!modifier && rev &&
        (!targets(sp, ps->type->name) || (target && strcmp(target, ps->type->name) != 0)))
        return vl_error_set(ps->err, 400, "invalid", NULL,
                            "_revinclude=%s: %s.%s cannot refer to a %s", value, src->name, param,
                            ps->type->name);
    in = &ps->out->includes[ps->out->n_includes++];
    in->source = src->name;
    in->param = sp->name;
    in->rows = rows_name(sp);
    in->target = target ? vl_fhir_type_find(target)->name : sp->target;
    in->rev = rev;
    in->iterate = modifier != NULL;
    return 0;
}

static int parse_one(parser_t *ps, const vl_param_t *prm, int lenient)
{
    const char *full = prm->name, *value = prm->value;
    if (value[0] == '\0')
        return 0; /* empty value: ignored (FHIR search) */
    char base[128];
    const char *colon = strchr(full, ':');
    size_t blen = colon ? (size_t)(colon - full) : strlen(full);
    if (blen >= sizeof base)
        blen = sizeof base - 1;
    memcpy(base, full, blen);
    base[blen] = '\0';
    const char *modifier = colon ? colon + 1 : NULL;

    if (!strcmp(base, "_has"))
        return parse_has(ps, full, value) == 0 ? 1 : -1;
    if (!strcmp(base, "_include") || !strcmp(base, "_revinclude"))
        return parse_include(ps, base, modifier, value) == 0 ? 1 : -1;
    if (!strcmp(base, "_cursor")) {
        if (modifier || ps->out->cursor)
            return vl_error_set(ps->err, 400, "invalid", NULL, "_cursor is given once, as is");
        ps->out->cursor = value;
        return 2; /* used, not part of the canonical query */
    }
    if (base[0] != '_' && strchr(full, '.'))
        return parse_chain(ps, full, value) == 0 ? 1 : -1;

    if (base[0] == '_') {
        vl_query_t *q = &ps->out->query;
        int known = 1;
        if (modifier && (strcmp(base, "_id") == 0 || strcmp(base, "_lastUpdated") == 0 ||
                         strcmp(base, "_count") == 0 || strcmp(base, "_offset") == 0 ||
                         strcmp(base, "_sort") == 0 || strcmp(base, "_total") == 0 ||
                         strcmp(base, "_summary") == 0 || strcmp(base, "_format") == 0 ||
                         strcmp(base, "_pretty") == 0 || strcmp(base, "_elements") == 0))
            return vl_error_set(ps->err, 400, "not-supported", NULL,
                                "The modifier ':%s' is not supported on '%s'", modifier, base);
        if (strcmp(base, "_id") == 0) {
            if (parse_id(ps, value) != 0)
                return -1;
        } else if (strcmp(base, "_lastUpdated") == 0) {
            if (parse_last_updated(ps, value) != 0)
                return -1;
        } else if (strcmp(base, "_count") == 0) {
            int n;
            if (once(ps, &ps->seen_count, base) != 0)
                return -1;
            if (parse_int(value, &n) != 0)
                return bad(ps, base, value, "expected a non-negative integer");
            q->count = n > VL_SEARCH_COUNT_MAX ? VL_SEARCH_COUNT_MAX : n;
        } else if (strcmp(base, "_offset") == 0) {
            int n;
            if (once(ps, &ps->seen_offset, base) != 0)
                return -1;
            if (parse_int(value, &n) != 0)
                return bad(ps, base, value, "expected a non-negative integer");
            q->offset = n;
        } else if (strcmp(base, "_sort") == 0) {
            if (once(ps, &ps->seen_sort, base) != 0 || parse_sort(ps, value) != 0)
                return -1;
        } else if (strcmp(base, "_total") == 0) {
            if (once(ps, &ps->seen_total, base) != 0)
                return -1;
            if (strcmp(value, "none") == 0)
                ps->out->total_mode = VL_TOTAL_NONE;
            else if (strcmp(value, "accurate") == 0)
                ps->out->total_mode = VL_TOTAL_ACCURATE;
            else if (strcmp(value, "estimate") == 0)
                ps->out->total_mode = VL_TOTAL_BOUNDED;
            else
                return bad(ps, base, value, "expected none, estimate or accurate");
        } else if (strcmp(base, "_summary") == 0 || strcmp(base, "_elements") == 0) {
            /* checked here, applied to the entries by fhir/rest.c */
            if (vl_fhir_subset_add(&ps->subset, base, value, ps->err) != 0)
                return -1;
        } else if (strcmp(base, "_format") == 0 || strcmp(base, "_pretty") == 0) {
            /* read by the http layer */
        } else {
            known = 0;
        }
        if (known)
            return 1;
    } else {
        const vl_search_param_t *sp = vl_fhir_param_find(ps->type, base);
        if (sp)
            return parse_param(ps, sp, full, modifier, value) == 0 ? 1 : -1;
    }
    if (lenient)
        return 0;
    return vl_error_set(ps->err, 400, "not-supported", NULL,
                        "Unknown search parameter '%s' for resource type %s", base, ps->type->name);
}

/* ------------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------- */

int vl_fhir_search_parse(const vl_fhir_type_t *type, const vl_params_t *params, int lenient,
                         vl_search_t *out, vl_error_t *err)
{
    return vl_fhir_search_parse_at(type, params, lenient, NULL, out, err);
}

int vl_fhir_search_parse_at(const vl_fhir_type_t *type, const vl_params_t *params, int lenient,
                            const char *fhir_base, vl_search_t *out, vl_error_t *err)
{
    memset(out, 0, sizeof *out);
    parser_t ps = {
        .type = type, .out = out, .err = err, .base = fhir_base, .now_us = vl_time_now_us()};
    vl_arena_t *a = vl_arena_new();
    if (!a)
        return oom(&ps);
    ps.arena = a;
    out->_mem = a;
    out->total_mode = VL_TOTAL_BOUNDED;
    vl_query_t *q = &out->query;
    q->type = type->name;
    q->count = VL_SEARCH_COUNT_DEFAULT;

    size_t np = params ? params->n : 0;
    if (np) {
        /* at most one condition per parameter */
        q->conds = vl_arena_alloc(a, np * sizeof *q->conds);
        if (!q->conds) {
            oom(&ps);
            goto fail;
        }
    }
    for (size_t i = 0; i < np; i++) {
        const vl_param_t *prm = &params->items[i];
        int used = parse_one(&ps, prm, lenient);
        if (used < 0)
            goto fail;
        if (used == 1 && strcmp(prm->name, "_count") != 0 && strcmp(prm->name, "_offset") != 0)
            sq_add(&ps, prm);
    }
    if (ps.subset.mode == VL_SUBSET_COUNT) {
        q->count = 0;
        out->total_mode = VL_TOTAL_ACCURATE;
    }
    plan_series(q);
    plan_composite(&ps, q);
    out->self_query = vl_arena_strdup(a, ps.sq.data ? ps.sq.data : "");
    if (ps.oom || !out->self_query) {
        oom(&ps);
        goto fail;
    }
    vl_buf_free(&ps.sq);
    return 0;
fail:
    vl_buf_free(&ps.sq);
    vl_arena_free(a);
    memset(out, 0, sizeof *out);
    return -1;
}

void vl_search_free(vl_search_t *s)
{
    if (!s)
        return;
    vl_arena_free(s->_mem);
    memset(s, 0, sizeof *s);
}
