/*
 * vitalog — fhir: resource validation.
 *
 * DESIGN
 *
 * Validation is one generic walk driven by data. Every FHIR type the
 * validator knows is a row of vl_vdefs[] (validate_types.c): a name, a
 * kind and, for complex types, a table of elements (JSON name, min 0 or 1,
 * max 1 or many, type or list of choice types, required codes) and an optional
 * invariant hook. vl_vwalk_object() checks one JSON object against one
 * table:
 *
 *   1. every key must be an element of the table or of the implicit base
 *      elements the type's kind brings (Element: id, extension;
 *      BackboneElement: + modifierExtension; Resource/DomainResource: id,
 *      meta, implicitRules, language, text, contained, extension,
 *      modifierExtension), a choice "name[x]" spelled name+Type with Type
 *      in the allowed list, or "_name", the JSON companion carrying a
 *      primitive's id/extensions;
 *   2. at most one type of each choice element is present;
 *   3. the value has the shape of its cardinality: max 1 is not an array,
 *      max * is a non-empty array; null only inside a primitive array
 *      whose "_name" companion has an entry at that index;
 *   4. primitives are checked by format (validate_prim.c), complex values
 *      recursively, contained resources by their own resourceType;
 *   5. elements with min 1 are present (as "name" or "_name");
 *   6. the type's invariant hook runs (ext-1, ref-1, obs-6, obs-7, ...).
 *
 * Types that are known but not modelled (Signature, Dosage, resources
 * other than the five modelled ones...) get vl_vwalk_generic(): no empty
 * object/array/string, no null, no control characters, and reference
 * syntax wherever an object has a "reference" string.
 *
 * After the base walk, Observation gets the vital-signs profiles
 * (validate_vitals.c). Base-spec issues are 400 and profile issues 422;
 * the base walk runs first, so a resource that breaks both gets 400 (the
 * first issue decides the status, see vl_error_set()).
 *
 * Every issue carries a FHIRPath-style expression built while walking
 * (Observation.component[1].valueQuantity.code). The walk never stops at
 * the first issue; it stops recording after VISSUES_MAX issues.
 *
 * LENIENCY (each one forced by an official HL7 R4 example, see
 * tests/unit/fhir/test_validate.c):
 *   - the vital-signs profile is not inferred from the category alone for
 *     an Observation with status entered-in-error (Observation-f202 has
 *     the category but no effective[x]; a retracted record is not a
 *     measurement). A resource that claims the profile in meta.profile
 *     is always checked.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"
#include "vitalog/fhir.h"

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

const json_t *vl_vget(const json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

const char *vl_vstr(const json_t *obj, const char *key)
{
    const json_t *v = vl_vget(obj, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

int vl_vcc_has(const json_t *cc, const char *system, const char *code)
{
    const json_t *codings = vl_vget(cc, "coding"), *c;
    size_t i;
    if (!json_is_array(codings))
        return 0;
    json_array_foreach (codings, i, c) {
        const char *s = vl_vstr(c, "system"), *k = vl_vstr(c, "code");
        if (s && k && strcmp(s, system) == 0 && strcmp(k, code) == 0)
            return 1;
    }
    return 0;
}

/* True if key is prefix + a capitalised type name (valueQuantity). */
static vt_t choice_match(const char *key, const char *prefix, const vt_t *choices)
{
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0)
        return VT_NONE;
    key += n;
    for (const vt_t *t = choices; *t != VT_NONE; t++) {
        const char *tn = vl_vdefs[*t].name;
        if (key[0] == toupper((unsigned char)tn[0]) && strcmp(key + 1, tn + 1) == 0)
            return *t;
    }
    return VT_NONE;
}

const char *vl_vchoice_key(const json_t *obj, const char *prefix)
{
    const char *key;
    const json_t *v;
    size_t n = strlen(prefix);
    if (!json_is_object(obj))
        return NULL;
    json_object_foreach ((json_t *)obj, key, v) {
        if (strncmp(key, prefix, n) == 0 && key[n] >= 'A' && key[n] <= 'Z')
            return key;
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Path and issues
 * ---------------------------------------------------------------------- */

size_t vpath_push(vctx_t *c, const char *name)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "%s%s", c->plen ? "." : "", name);
    if (n > 0)
        c->plen += (size_t)n < sizeof c->path - c->plen ? (size_t)n : sizeof c->path - c->plen - 1;
    return old;
}

size_t vpath_push_index(vctx_t *c, size_t i)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%zu]", i);
    if (n > 0)
        c->plen += (size_t)n < sizeof c->path - c->plen ? (size_t)n : sizeof c->path - c->plen - 1;
    return old;
}

void vpath_pop(vctx_t *c, size_t len)
{
    c->plen = len;
    c->path[len] = '\0';
}

void vfail(vctx_t *c, int status, const char *code, const char *sub, const char *fmt, ...)
{
    va_list ap;
    size_t old = c->plen;
    c->issues++;
    if (c->issues > VISSUES_MAX)
        return; /* still counted: the resource is invalid */
    if (sub)
        vpath_push(c, sub);
    va_start(ap, fmt);
    vl_error_addv(c->err, status, "error", code, c->path, fmt, ap);
    va_end(ap);
    vpath_pop(c, old);
}

/* ------------------------------------------------------------------------
 * Implicit base elements
 * ---------------------------------------------------------------------- */

static const vdef_elem_t base_element[] = {
    {"id", 0, 0, VT_STRING, NULL, NULL},
    {"extension", 0, 1, VT_EXTENSION, NULL, NULL},
    {NULL, 0, 0, VT_NONE, NULL, NULL},
};

static const vdef_elem_t base_backbone[] = {
    {"id", 0, 0, VT_STRING, NULL, NULL},
    {"extension", 0, 1, VT_EXTENSION, NULL, NULL},
    {"modifierExtension", 0, 1, VT_EXTENSION, NULL, NULL},
    {NULL, 0, 0, VT_NONE, NULL, NULL},
};

static const vdef_elem_t base_resource[] = {
    {"id", 0, 0, VT_ID, NULL, NULL},
    {"meta", 0, 0, VT_META, NULL, NULL},
    {"implicitRules", 0, 0, VT_URI, NULL, NULL},
    {"language", 0, 0, VT_CODE, NULL, NULL},
    {"text", 0, 0, VT_NARRATIVE, NULL, NULL},
    {"contained", 0, 1, VT_RESOURCE, NULL, NULL},
    {"extension", 0, 1, VT_EXTENSION, NULL, NULL},
    {"modifierExtension", 0, 1, VT_EXTENSION, NULL, NULL},
    {NULL, 0, 0, VT_NONE, NULL, NULL},
};

const vdef_elem_t *vl_vbase_of(vkind_t k)
{
    switch (k) {
    case VK_BACKBONE: return base_backbone;
    case VK_RESOURCE: return base_resource;
    default: return base_element;
    }
}

/* Finds the element a JSON key (without "_") names; *type gets the type
 * (for a choice, the one spelled in the key). */
static const vdef_elem_t *find_elem(const vdef_type_t *def, const char *name, vt_t *type)
{
    const vdef_elem_t *tables[2] = {vl_vbase_of(def->kind), def->elems};
    for (int k = 0; k < 2; k++) {
        if (!tables[k])
            continue;
        for (const vdef_elem_t *e = tables[k]; e->name; e++) {
            if (!e->choices && strcmp(e->name, name) == 0) {
                *type = e->type;
                return e;
            }
            if (e->choices && (*type = choice_match(name, e->name, e->choices)) != VT_NONE)
                return e;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

static void walk_resource(vctx_t *c, const json_t *v, const char *expected);

static int is_code_in(const char *s, const char *const *codes)
{
    for (; *codes; codes++)
        if (strcmp(*codes, s) == 0)
            return 1;
    return 0;
}

/* One value (not an array) of element e with type t. */
static void walk_single(vctx_t *c, const vdef_elem_t *e, vt_t t, const json_t *v)
{
    const vdef_type_t *def = &vl_vdefs[t];
    if (json_is_null(v)) {
        vfail(c, 400, "structure", NULL, "null is not allowed here (omit the element)");
        return;
    }
    switch (def->kind) {
    case VK_PRIMITIVE: {
        unsigned before = c->issues;
        vl_vcheck_primitive(c, t, v);
        if (c->issues == before && e->codes && vl_json_is_string(v) &&
            !is_code_in(json_string_value(v), e->codes))
            vfail(c, 400, "code-invalid", NULL,
                  "'%.60s' is not in the required value set of this element", json_string_value(v));
        break;
    }
    case VK_OPAQUE:
        if (!json_is_object(v))
            vfail(c, 400, "structure", NULL, "%s must be a JSON object", def->name);
        else
            vl_vwalk_generic(c, v);
        break;
    case VK_RESOURCE: walk_resource(c, v, NULL); break;
    default: vl_vwalk_object(c, t, v); break;
    }
}

/* The "_name" companion of a primitive element: an Element (id,
 * extension) for max 1, an array of Element-or-null for max *, as long as
 * the value array when both exist. */
static void walk_primitive_ext(vctx_t *c, const vdef_elem_t *e, const json_t *ext,
                               const json_t *value)
{
    size_t i;
    const json_t *item;
    int any = 0;
    if (!e->many) {
        if (json_is_array(ext))
            vfail(c, 400, "structure", NULL, "must not be an array (max cardinality 1)");
        else if (!json_is_object(ext))
            vfail(c, 400, "structure", NULL, "a primitive's extension must be a JSON object");
        else
            vl_vwalk_object(c, VT_ELEMENT, ext);
        return;
    }
    if (!json_is_array(ext)) {
        vfail(c, 400, "structure", NULL, "must be an array (max cardinality *)");
        return;
    }
    if (json_is_array(value) && json_array_size(value) != json_array_size(ext))
        vfail(c, 400, "structure", NULL,
              "the array of primitive extensions must have as many entries as the values");
    json_array_foreach (ext, i, item) {
        size_t old;
        if (json_is_null(item))
            continue;
        any = 1;
        old = vpath_push_index(c, i);
        if (!json_is_object(item))
            vfail(c, 400, "structure", NULL, "must be a JSON object or null");
        else
            vl_vwalk_object(c, VT_ELEMENT, item);
        vpath_pop(c, old);
    }
    if (!any)
        vfail(c, 400, "structure", NULL, "an array of primitive extensions must not be all null");
}

/* An element's JSON value: shape for its cardinality, then each value. */
static void walk_element(vctx_t *c, const vdef_elem_t *e, vt_t t, const json_t *v,
                         const json_t *ext)
{
    size_t i;
    const json_t *item;
    if (!e->many) {
        if (json_is_array(v))
            vfail(c, 400, "structure", NULL, "must not be an array (max cardinality 1)");
        else
            walk_single(c, e, t, v);
        return;
    }
    if (!json_is_array(v)) {
        vfail(c, 400, "structure", NULL, "must be an array (max cardinality *)");
        return;
    }
    if (json_array_size(v) == 0) {
        vfail(c, 400, "structure", NULL, "empty arrays are not allowed (omit the element)");
        return;
    }
    json_array_foreach (v, i, item) {
        size_t old = vpath_push_index(c, i);
        if (json_is_null(item) && vl_vdefs[t].kind == VK_PRIMITIVE && json_is_array(ext) &&
            i < json_array_size(ext) && json_is_object(json_array_get(ext, i)))
            ; /* a value-less primitive that only has extensions */
        else
            walk_single(c, e, t, item);
        vpath_pop(c, old);
    }
}

void vl_vwalk_object(vctx_t *c, vt_t t, const json_t *obj)
{
    const vdef_type_t *def = &vl_vdefs[t];
    const char *key;
    const json_t *v;
    const vdef_elem_t *tables[2];
    /* the first key seen for each choice element of def->elems */
    const char *choice_seen[64] = {0};
    vt_t choice_type[64] = {0};

    if (!json_is_object(obj)) {
        vfail(c, 400, "structure", NULL, "%s must be a JSON object", def->name);
        return;
    }
    if (json_object_size(obj) == 0) {
        vfail(c, 400, "structure", NULL, "empty objects are not allowed (omit the element)");
        return;
    }

    json_object_foreach ((json_t *)obj, key, v) {
        int is_ext = key[0] == '_';
        const char *name = is_ext ? key + 1 : key;
        vt_t et = VT_NONE;
        const vdef_elem_t *e;
        size_t old;

        if (def->kind == VK_RESOURCE && strcmp(key, "resourceType") == 0)
            continue; /* checked by walk_resource() */
        e = find_elem(def, name, &et);
        if (!e) {
            vfail(c, 400, "structure", key, "Unknown element '%.60s' in %s", key, def->name);
            continue;
        }
        if (e->choices && def->elems && e >= def->elems) {
            size_t idx = (size_t)(e - def->elems);
            if (idx < 64) {
                if (choice_seen[idx] && choice_type[idx] != et)
                    vfail(c, 400, "structure", key,
                          "Only one %s[x] is allowed: both '%s' and '%s' are present", e->name,
                          choice_seen[idx], key);
                else if (!choice_seen[idx]) {
                    choice_seen[idx] = key;
                    choice_type[idx] = et;
                }
            }
        }
        old = vpath_push(c, key);
        if (is_ext) {
            if (vl_vdefs[et].kind != VK_PRIMITIVE)
                vfail(c, 400, "structure", NULL,
                      "'%.60s': only primitive elements have a '_' companion", key);
            else
                walk_primitive_ext(c, e, v, json_object_get(obj, name));
        } else {
            char ext_key[128];
            snprintf(ext_key, sizeof ext_key, "_%s", key);
            walk_element(c, e, et, v, json_object_get(obj, ext_key));
        }
        vpath_pop(c, old);
    }

    /* required elements (min 1), present as "name", "_name" or a choice */
    tables[0] = vl_vbase_of(def->kind);
    tables[1] = def->elems;
    for (int k = 0; k < 2; k++) {
        if (!tables[k])
            continue;
        for (const vdef_elem_t *e = tables[k]; e->name; e++) {
            char ext_key[128];
            int present;
            if (e->min == 0)
                continue;
            snprintf(ext_key, sizeof ext_key, "_%s", e->name);
            if (e->choices)
                present =
                    vl_vchoice_key(obj, e->name) != NULL || vl_vchoice_key(obj, ext_key) != NULL;
            else
                present = json_object_get(obj, e->name) || json_object_get(obj, ext_key);
            if (!present)
                vfail(c, 400, "required", e->choices ? NULL : e->name,
                      "Missing required element '%s%s' (min cardinality 1)", e->name,
                      e->choices ? "[x]" : "");
        }
    }

    if (def->check)
        def->check(c, obj);
}

/* ------------------------------------------------------------------------
 * Generic structural walk
 * ---------------------------------------------------------------------- */

static int key_valid(const char *k)
{
    if (!k[0])
        return 0;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '-'))
            return 0;
    return 1;
}

/* Nulls inside arrays are allowed only where the "_key" companion array
 * has an object at the same index (a primitive with only extensions). */
static void walk_generic_array(vctx_t *c, const json_t *arr, const json_t *ext)
{
    const json_t *item;
    size_t i;
    if (json_array_size(arr) == 0)
        vfail(c, 400, "structure", NULL, "empty arrays are not allowed (omit the element)");
    json_array_foreach (arr, i, item) {
        size_t old = vpath_push_index(c, i);
        if (!json_is_null(item))
            vl_vwalk_generic(c, item);
        else if (!json_is_object(json_array_get(ext, i)))
            vfail(c, 400, "structure", NULL, "null is not allowed here");
        vpath_pop(c, old);
    }
}

void vl_vwalk_generic(vctx_t *c, const json_t *v)
{
    const char *key;
    const json_t *item;

    if (json_is_array(v)) {
        walk_generic_array(c, v, NULL);
        return;
    }
    if (!json_is_object(v)) {
        if (vl_json_is_string(v))
            (void)vl_vstring_ok(c, json_string_value(v));
        return;
    }
    if (json_object_size(v) == 0) {
        vfail(c, 400, "structure", NULL, "empty objects are not allowed (omit the element)");
        return;
    }
    json_object_foreach ((json_t *)v, key, item) {
        size_t old = vpath_push(c, key);
        char ext_key[128];
        if (!key_valid(key)) {
            vfail(c, 400, "structure", NULL, "Invalid property name");
        } else if (json_is_null(item)) {
            vfail(c, 400, "structure", NULL, "null is not allowed here (omit the element)");
        } else if (json_is_array(item) && key[0] == '_') {
            /* "_key" of a primitive array: entries are objects or null */
            walk_generic_array(c, item, item);
        } else if (json_is_array(item)) {
            snprintf(ext_key, sizeof ext_key, "_%s", key);
            walk_generic_array(c, item, json_object_get(v, ext_key));
        } else if (strcmp(key, "resourceType") == 0 && vl_json_is_string(item)) {
            if (vl_vstring_ok(c, json_string_value(item)) &&
                !vl_fhir_is_r4_type(json_string_value(item)))
                vfail(c, 400, "not-supported", NULL, "Unknown resource type '%.60s'",
                      json_string_value(item));
        } else if (strcmp(key, "reference") == 0 && vl_json_is_string(item)) {
            char type[64];
            int local;
            if (vl_vstring_ok(c, json_string_value(item)) &&
                !vl_vref_parse(json_string_value(item), type, sizeof type, &local))
                vfail(c, 400, "value", NULL,
                      "Invalid reference '%.80s': expected Type/id[/_history/vid], an absolute "
                      "URL, #contained-id, urn:uuid: or urn:oid:",
                      json_string_value(item));
        } else {
            vl_vwalk_generic(c, item);
        }
        vpath_pop(c, old);
    }
}

/* ------------------------------------------------------------------------
 * Resources
 * ---------------------------------------------------------------------- */

/* The table of a resource type: one of the modelled ones, any other R4
 * type (generic walk of its own elements), or VT_NONE. */
static vt_t resource_vt(const char *name)
{
    static const vt_t modelled[] = {VT_OBSERVATION, VT_PATIENT, VT_PRACTITIONER, VT_ORGANIZATION,
                                    VT_DEVICE,      VT_CONSENT, VT_NONE};
    for (const vt_t *t = modelled; *t != VT_NONE; t++)
        if (strcmp(vl_vdefs[*t].name, name) == 0)
            return *t;
    return vl_fhir_is_r4_type(name) ? VT_OTHER_RESOURCE : VT_NONE;
}

/* Adds every string of `v` that starts with '#' to the set `refs`. */
static void collect_local_refs(const json_t *v, json_t *refs)
{
    const char *key;
    const json_t *item;
    size_t i;
    if (vl_json_is_string(v)) {
        const char *s = json_string_value(v);
        if (s[0] == '#')
            json_object_set_new(refs, s, json_true());
    } else if (json_is_object(v)) {
        json_object_foreach ((json_t *)v, key, item) {
            collect_local_refs(item, refs);
        }
    } else if (json_is_array(v)) {
        json_array_foreach (v, i, item) {
            collect_local_refs(item, refs);
        }
    }
}

/* True if some string in the root resource equals `s` (a "#..." text).
 * The set is built once per validation, so the check stays linear. */
static int root_has_local_ref(vctx_t *c, const char *s)
{
    if (!c->local_refs) {
        c->local_refs = json_object();
        if (!c->local_refs)
            return 1; /* out of memory: do not invent an issue */
        collect_local_refs(c->root, c->local_refs);
    }
    return json_object_get(c->local_refs, s) != NULL;
}

int vl_vcontained_has(vctx_t *c, const char *id)
{
    if (!c->contained_ids) {
        const json_t *contained = vl_vget(c->root, "contained"), *r;
        size_t i;
        c->contained_ids = json_object();
        if (!c->contained_ids)
            return 1;
        if (json_is_array(contained))
            json_array_foreach (contained, i, r) {
                const char *rid = vl_vstr(r, "id");
                if (rid)
                    json_object_set_new(c->contained_ids, rid, json_true());
            }
    }
    return json_object_get(c->contained_ids, id) != NULL;
}

/* The DomainResource rules on contained resources: dom-2 (no nested
 * contained), dom-3 (referenced from elsewhere in the resource by "#id"),
 * dom-4 (no meta.versionId / meta.lastUpdated), dom-5 (no meta.security). */
static void check_contained(vctx_t *c, const json_t *res)
{
    const json_t *meta = vl_vget(res, "meta");
    const char *id = vl_vstr(res, "id");
    if (vl_vget(res, "contained"))
        vfail(c, 400, "invariant", "contained",
              "dom-2: a contained resource must not contain resources");
    if (vl_vget(meta, "versionId") || vl_vget(meta, "lastUpdated"))
        vfail(c, 400, "invariant", "meta",
              "dom-4: a contained resource must not have meta.versionId or meta.lastUpdated");
    if (vl_vget(meta, "security"))
        vfail(c, 400, "invariant", "meta.security",
              "dom-5: a contained resource must not have security labels");
    if (!id) {
        vfail(c, 400, "required", "id", "A contained resource must have an id");
    } else {
        char ref[80];
        snprintf(ref, sizeof ref, "#%s", id);
        if (!root_has_local_ref(c, ref) && !root_has_local_ref(c, "#"))
            vfail(c, 400, "invariant", NULL,
                  "dom-3: contained resource '%.64s' is not referenced from the resource "
                  "(by '#%.64s')",
                  id, id);
    }
}

/* A resource object at the current path; `expected` is the required
 * resourceType or NULL (contained: any R4 type). */
static void walk_resource(vctx_t *c, const json_t *v, const char *expected)
{
    const char *rt;
    vt_t t;
    if (!json_is_object(v)) {
        vfail(c, 400, "structure", NULL, "A resource must be a JSON object");
        return;
    }
    rt = vl_vstr(v, "resourceType");
    if (!rt) {
        vfail(c, 400, "required", NULL, "Missing resourceType");
        return;
    }
    if (expected && strcmp(rt, expected) != 0) {
        vfail(c, 400, "invalid", NULL, "resourceType is '%.60s', expected '%s'", rt, expected);
        return;
    }
    t = resource_vt(rt);
    if (t == VT_NONE) {
        vfail(c, 400, "not-supported", NULL, "Unknown resource type '%.60s'", rt);
        return;
    }
    if (t == VT_OTHER_RESOURCE) {
        /* the Resource/DomainResource elements by table, the rest by shape */
        const char *key;
        const json_t *item;
        json_t *base = json_object();
        json_t *rest = json_object();
        if (!base || !rest) {
            json_decref(base);
            json_decref(rest);
            vfail(c, 500, "exception", NULL, "Out of memory");
            return;
        }
        json_object_foreach ((json_t *)v, key, item) {
            vt_t et;
            const char *name = key[0] == '_' ? key + 1 : key;
            if (find_elem(&vl_vdefs[VT_OTHER_RESOURCE], name, &et) ||
                strcmp(key, "resourceType") == 0)
                json_object_set((json_t *)base, key, (json_t *)item);
            else
                json_object_set((json_t *)rest, key, (json_t *)item);
        }
        if (json_object_size(base) > 1)
            vl_vwalk_object(c, VT_OTHER_RESOURCE, base);
        if (json_object_size(rest) > 0)
            vl_vwalk_generic(c, rest);
        json_decref(base);
        json_decref(rest);
    } else {
        vl_vwalk_object(c, t, v);
    }
    if (!expected)
        check_contained(c, v);
}

/* ------------------------------------------------------------------------
 * Entry point
 * ---------------------------------------------------------------------- */

int vl_fhir_validate(const vl_fhir_type_t *type, const json_t *res, vl_error_t *err)
{
    vctx_t c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.root = res;
    if (!type || !type->name) {
        vl_error_set(err, 400, "not-supported", NULL, "Unsupported resource type");
        return -1;
    }
    vpath_push(&c, type->name);
    walk_resource(&c, res, type->name);
    if (strcmp(type->name, "Observation") == 0 && json_is_object(res) &&
        strcmp(vl_vstr(res, "resourceType") ? vl_vstr(res, "resourceType") : "", "Observation") ==
            0)
        vl_vvitals_check(&c, res);
    json_decref(c.contained_ids);
    json_decref(c.local_refs);
    return c.issues ? -1 : 0;
}
