/*
 * vitalog — fhir/subset.c: the result parameters _summary and _elements
 * (FHIR R4 search.html#summary, #elements): which top-level elements of a
 * resource are served, for searches and for read/vread.
 *
 * DESIGN NOTES
 *
 * 1. Only the served copy is trimmed. The stored bytes, the ledger entry,
 *    ETag and meta.versionId stay those of the version; vl_fhir_subset()
 *    parses a copy of the stored body, trims it and serializes it again
 *    (numbers keep their text, the members their order). A FULL or COUNT
 *    subset serves the stored bytes themselves.
 *
 * 2. What is kept, per top-level member of the resource (a primitive's
 *    "_name" companion goes with "name"); resourceType, id and meta always:
 *      _summary=true   elements with isSummary in the R4 definition, and
 *                      the mandatory (min >= 1) ones (AuditEvent agent and
 *                      source are mandatory but not summary);
 *      _summary=text   text and the mandatory elements;
 *      _summary=data   everything except text;
 *      _elements=a,b   the elements named, and the mandatory ones; a choice
 *                      element is named without its type ("value" keeps
 *                      valueQuantity, valueString, ...) or with it
 *                      ("valueQuantity"); a name that is no element of the
 *                      type keeps nothing (R4 lets servers ignore it);
 *      _summary=false  the full resource; _summary=count is the search's
 *                      total only (fhir/search.c sets _count=0), and a 400
 *                      on a read.
 *    The flags come from the generated table (fhir/summary_elements.c,
 *    scripts/gen-summary-elements.py, R4 4.0.1 snapshots). Nothing below
 *    the top level is trimmed.
 *
 * 3. Every resource served in a subset (true, text, data, _elements) gets
 *    the meta.tag {system v3-ObservationValue, code SUBSETTED}, appended
 *    to the tags it has (and not twice), so that a client does not take it
 *    for the whole resource (R4 search.html#summary). It is added even when
 *    nothing happened to be removed: the tag says what was asked for.
 *
 * 4. Syntax. _summary takes true, text, data, count or false; anything
 *    else is a 400. _elements takes a comma list of element names (a
 *    letter, then letters and digits, at most 64); an empty name or any
 *    other text is a 400 invalid, a path (name.given) a 400 not-supported.
 *    Each may appear once. Both together are a 400 not-supported: R4
 *    does not define what the combination returns, and neither "first
 *    wins" nor "both apply" would be a guess a client could rely on.
 *    Empty values are not given to vl_fhir_subset_add (ignored, as every
 *    empty search parameter is).
 */
#include <ctype.h>
#include <string.h>

#include "fhir_internal.h"

#define ELEMENT_NAME_MAX 64

static const char SUBSETTED_SYSTEM[] = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/* ------------------------------------------------------------------------
 * The element table
 * ---------------------------------------------------------------------- */

const vl_fhir_element_t *vl_fhir_elements_of(const char *type)
{
    for (const vl_fhir_type_elements_t *t = vl_fhir_type_elements; t->type; t++)
        if (strcmp(t->type, type) == 0)
            return t->elements;
    return NULL;
}

static const vl_fhir_element_t *element_find(const vl_fhir_element_t *els, const char *name)
{
    for (const vl_fhir_element_t *e = els; e && e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Parameters
 * ---------------------------------------------------------------------- */

static int both(vl_error_t *err)
{
    return vl_error_set(err, 400, "not-supported", NULL,
                        "_summary and _elements cannot be used together: FHIR R4 does not define "
                        "what their combination returns; use one of them");
}

static int twice(vl_error_t *err, const char *name)
{
    return vl_error_set(err, 400, "invalid", NULL, "The parameter '%s' may appear only once", name);
}

/* Checks an _elements list (design note 4). */
static int elements_check(const char *value, vl_error_t *err)
{
    const char *p = value;
    for (;;) {
        size_t n = strcspn(p, ","), i;
        int ok = n > 0 && n <= ELEMENT_NAME_MAX && isalpha((unsigned char)p[0]);
        for (i = 1; ok && i < n; i++)
            ok = isalnum((unsigned char)p[i]) != 0;
        if (!ok && n > 0 && memchr(p, '.', n))
            return vl_error_set(err, 400, "not-supported", NULL,
                                "_elements takes top-level element names only, not the path "
                                "'%.*s'",
                                (int)(n > 200 ? 200 : n), p);
        if (!ok)
            return vl_error_set(err, 400, "invalid", NULL,
                                "Invalid value '%.200s' for '_elements': '%.*s' is not an element "
                                "name (a letter, then letters and digits, at most %d)",
                                value, (int)(n > 200 ? 200 : n), p, ELEMENT_NAME_MAX);
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

int vl_fhir_subset_add(vl_subset_t *s, const char *name, const char *value, vl_error_t *err)
{
    static const struct {
        const char *value;
        vl_subset_mode_t mode;
    } modes[] = {{"true", VL_SUBSET_SUMMARY},
                 {"text", VL_SUBSET_TEXT},
                 {"data", VL_SUBSET_DATA},
                 {"count", VL_SUBSET_COUNT},
                 {"false", VL_SUBSET_FULL}};
    if (strcmp(name, "_summary") == 0) {
        if (s->seen_summary++)
            return twice(err, name);
        if (s->seen_elements)
            return both(err);
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            if (strcmp(value, modes[i].value) == 0) {
                s->mode = modes[i].mode;
                return 0;
            }
        }
        return vl_error_set(err, 400, "invalid", NULL,
                            "Invalid value '%.200s' for '_summary': expected true, text, data, "
                            "count or false",
                            value);
    }
    if (strcmp(name, "_elements") == 0) {
        if (s->seen_elements++)
            return twice(err, name);
        if (s->seen_summary)
            return both(err);
        if (elements_check(value, err) != 0)
            return -1;
        s->mode = VL_SUBSET_ELEMENTS;
        s->elements = value;
    }
    return 0;
}

int vl_fhir_subset_params(const vl_params_t *params, int search, vl_subset_t *out, vl_error_t *err)
{
    *out = (vl_subset_t)VL_SUBSET_INIT;
    for (size_t i = 0; params && i < params->n; i++) {
        const vl_param_t *p = &params->items[i];
        if (p->value[0] && vl_fhir_subset_add(out, p->name, p->value, err) != 0)
            return -1;
    }
    if (!search && out->mode == VL_SUBSET_COUNT)
        return vl_error_set(err, 400, "invalid", NULL,
                            "_summary=count applies to searches only (use true, text, data or "
                            "false on a read)");
    return 0;
}

int vl_fhir_subset_active(const vl_subset_t *s)
{
    return s && s->mode != VL_SUBSET_FULL && s->mode != VL_SUBSET_COUNT;
}

/* ------------------------------------------------------------------------
 * Trimming
 * ---------------------------------------------------------------------- */

/* Whether `name` is one of the comma list `list`. */
static int listed(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; p;) {
        size_t n = strcspn(p, ",");
        if (n == len && strncmp(p, name, n) == 0)
            return 1;
        p = p[n] ? p + n + 1 : NULL;
    }
    return 0;
}

/* Whether the top-level member `key` stays (design note 2). */
static int keep(const vl_fhir_element_t *els, const vl_subset_t *s, const char *key)
{
    const char *name = key[0] == '_' ? key + 1 : key;
    const vl_fhir_element_t *e;
    unsigned flags;
    if (!strcmp(name, "resourceType") || !strcmp(name, "id") || !strcmp(name, "meta"))
        return 1;
    e = element_find(els, name);
    flags = e ? e->flags : 0;
    switch (s->mode) {
    case VL_SUBSET_SUMMARY: return (flags & (VL_ELEMENT_SUMMARY | VL_ELEMENT_MANDATORY)) != 0;
    case VL_SUBSET_TEXT: return !strcmp(name, "text") || (flags & VL_ELEMENT_MANDATORY);
    case VL_SUBSET_DATA: return strcmp(name, "text") != 0;
    case VL_SUBSET_ELEMENTS:
        return (flags & VL_ELEMENT_MANDATORY) || listed(s->elements, name) ||
               (e && (flags & VL_ELEMENT_CHOICE) && listed(s->elements, e->base));
    case VL_SUBSET_FULL:
    case VL_SUBSET_COUNT: break;
    }
    return 1;
}

/* Appends the SUBSETTED tag to meta.tag unless it is there. */
static int tag_subsetted(json_t *res)
{
    json_t *meta = json_object_get(res, "meta"), *tags, *t;
    size_t i;
    if (!json_is_object(meta)) {
        meta = json_object();
        if (json_object_set_new(res, "meta", meta) != 0) /* steals meta */
            return -1;
    }
    tags = json_object_get(meta, "tag");
    if (!json_is_array(tags)) {
        tags = json_array();
        if (json_object_set_new(meta, "tag", tags) != 0)
            return -1;
    }
    json_array_foreach (tags, i, t) {
        const char *sys = json_string_value(json_object_get(t, "system"));
        const char *code = json_string_value(json_object_get(t, "code"));
        if (sys && code && !strcmp(sys, SUBSETTED_SYSTEM) && !strcmp(code, "SUBSETTED"))
            return 0;
    }
    return json_array_append_new(tags, json_pack("{s:s,s:s,s:s}", "system", SUBSETTED_SYSTEM,
                                                 "code", "SUBSETTED", "display", "subsetted"));
}

int vl_fhir_subset_json(const char *type, const vl_subset_t *s, json_t *res)
{
    const vl_fhir_element_t *els;
    void *it;
    if (!vl_fhir_subset_active(s))
        return 0;
    if (!json_is_object(res))
        return -1;
    els = vl_fhir_elements_of(type);
    it = json_object_iter(res);
    while (it) {
        const char *key = json_object_iter_key(it);
        void *next = json_object_iter_next(res, it);
        if (!keep(els, s, key) && json_object_del(res, key) != 0)
            return -1;
        it = next;
    }
    return tag_subsetted(res);
}

int vl_fhir_subset(const char *type, const vl_subset_t *s, const char *body, size_t len, char **out,
                   size_t *out_len)
{
    /* the stored body passed the writer's limits: its own length bounds it */
    vl_json_limits_t lim = {len ? len : 1};
    vl_error_t err = VL_ERROR_INIT;
    json_t *res;
    int rc = -1;
    *out = NULL;
    *out_len = 0;
    if (!vl_fhir_subset_active(s))
        return 0;
    res = vl_json_parse(body, len, &lim, &err);
    vl_error_clear(&err);
    if (!res)
        goto out;
    if (vl_fhir_subset_json(type, s, res) != 0)
        goto out;
    *out = vl_json_dump(res, out_len);
    rc = *out ? 0 : -1;
out:
    json_decref(res);
    return rc;
}
