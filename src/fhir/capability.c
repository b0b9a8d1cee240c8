/*
 * vitalog — fhir/capability.c: the CapabilityStatement served at
 * GET /fhir/metadata, generated from vl_fhir_types[] so that it never claims
 * more than the server does.
 *
 * DESIGN NOTES
 *
 * 1. Per type: the interactions of the route table (interaction.c) that
 *    its bit set allows, versioning "versioned", readHistory true,
 *    updateCreate true (PUT to a new id creates the resource with that
 *    id), conditionalCreate true (If-None-Exist), conditionalUpdate true
 *    and conditionalDelete "single" when the table has PUT and DELETE on
 *    /fhir/{type}, the table's operations, and one searchParam per table
 *    entry plus the common _id and _lastUpdated.
 *    Each searchParam's definition is the R4 canonical URL of its
 *    SearchParameter (vl_search_param_t.url, from the generated tables),
 *    its documentation the R4 description.
 *
 * 2. Rest level: transaction and batch when the table has POST /fhir, and
 *    the system-level operations (/fhir/$export). Operations name their
 *    OperationDefinition: the HL7 canonical for the standard ones ($lastn,
 *    $stats, $everything, $validate: R4; $export: the Bulk Data IG v2),
 *    vitalog's own under VL_FHIR_OPERATION_BASE otherwise ($ingest,
 *    $ledger; docs/api.md documents them). A GET and a POST row of one
 *    operation are one entry.
 *
 * 4. Includes: searchInclude lists "Type:param" for each reference
 *    parameter of the type, searchRevInclude those of every served type
 *    that may refer to it (both also with :iterate); reference parameters
 *    say in their documentation that they chain one level deep, and _has
 *    is listed as a special parameter of the rest level (R4 has no
 *    SearchParameter resource for it).
 *
 * 3. Only plain jansson values are used (no tagged numbers): the document
 *    is built by code, not parsed.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "fhir_internal.h"

/* Generated: fhir/search_params.c (scripts/gen-search-params.py). */
extern const vl_search_param_t vl_fhir_params_common[];

static const char *kind_name(vl_index_kind_t kind)
{
    switch (kind) {
    case VL_INDEX_TOKEN: return "token";
    case VL_INDEX_STRING: return "string";
    case VL_INDEX_REFERENCE: return "reference";
    case VL_INDEX_DATE: return "date";
    case VL_INDEX_QUANTITY: return "quantity";
    case VL_INDEX_COMPOSITE: return "composite";
    case VL_INDEX_SERIES: break;
    }
    return "special";
}

static json_t *search_param(const vl_search_param_t *sp)
{
    json_t *p = json_object();
    json_object_set_new(p, "name", json_string(sp->name));
    if (sp->url)
        json_object_set_new(p, "definition", json_string(sp->url));
    json_object_set_new(p, "type", json_string(kind_name(sp->kind)));
    if (sp->description) {
        /* what R4's searchParam has no element for: _sort, the modifiers
         * beyond the R4 defaults, unions */
        char doc[1536];
        snprintf(doc, sizeof doc, "%s%s%s%s%s%s%s%s", sp->description,
                 sp->kind == VL_INDEX_REFERENCE
                     ? " Modifiers: :missing, a type (:Patient). Chains one level deep "
                       "(name:Type.param, or name.param when one served type fits), and the "
                       "target of _has:Type:name:param."
                     : "",
                 sp->sortable ? " Sortable (_sort)." : "",
                 sp->text_name ? " Modifiers: :missing, :not, :text." : "",
                 sp->of_type_name ? " Also :of-type." : "",
                 sp->union_of[0] ? " Searched as the union of " : "",
                 sp->union_of[0] ? sp->union_of[0] : "",
                 sp->union_of[0] ? " and its component- twin." : "");
        json_object_set_new(p, "documentation", json_string(doc));
    }
    return p;
}

/* The type-level and instance-level interactions of the route table that
 * the type's bit set allows, each once, in the R4 value set's order. */
static json_t *interactions(const vl_fhir_type_t *t)
{
    static const struct {
        unsigned bit;
        const char *code;
    } map[] = {
        {VL_INT_READ, "read"},
        {VL_INT_VREAD, "vread"},
        {VL_INT_UPDATE, "update"},
        {VL_INT_UPDATE, "patch"},
        {VL_INT_DELETE, "delete"},
        {VL_INT_HISTORY_INSTANCE, "history-instance"},
        {VL_INT_HISTORY_TYPE, "history-type"},
        {VL_INT_CREATE, "create"},
        {VL_INT_SEARCH, "search-type"},
    };
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (!(t->interactions & map[i].bit))
            continue;
        for (const vl_route_t *r = vl_routes; r->pattern; r++) {
            if (strstr(r->pattern, "{type}") && !strcmp(r->interaction, map[i].code)) {
                json_array_append_new(arr, json_pack("{s:s}", "code", map[i].code));
                break;
            }
        }
    }
    return arr;
}

/* Whether the table has a row for `method` on `pattern`. */
static int has_row(const char *pattern, const char *method)
{
    for (const vl_route_t *r = vl_routes; r->pattern; r++)
        if (!strcmp(r->pattern, pattern) && !strcmp(r->method, method))
            return 1;
    return 0;
}

/* The OperationDefinition of an operation row: the HL7 canonical of the
 * standard ones (R4 and the Bulk Data IG v2), vitalog's own otherwise. */
static void definition_of(const vl_route_t *r, char *out, size_t cap)
{
    static const struct {
        const char *operation, *prefix, *url;
    } std[] = {
        {"$lastn", NULL, "http://hl7.org/fhir/OperationDefinition/Observation-lastn"},
        {"$stats", NULL, "http://hl7.org/fhir/OperationDefinition/Observation-stats"},
        {"$everything", NULL, "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
        {"$validate", NULL, "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
        {"$export", "/fhir/$", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
        {"$export", "/fhir/Patient/",
         "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
         "patient-export"},
    };
    for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
        if (!strcmp(r->operation, std[i].operation) &&
            (!std[i].prefix || !strncmp(r->pattern, std[i].prefix, strlen(std[i].prefix)))) {
            snprintf(out, cap, "%s", std[i].url);
            return;
        }
    snprintf(out, cap, "%s/%s", VL_FHIR_OPERATION_BASE, r->operation + 1);
}

/* Appends an operation once per name (a GET and a POST row are one
 * operation; their patterns are listed together in the documentation). */
static void add_operation(json_t *arr, const vl_route_t *r)
{
    char def[160];
    size_t i;
    json_t *op;
    json_array_foreach (arr, i, op) {
        if (!strcmp(json_string_value(json_object_get(op, "name")), r->operation + 1)) {
            const char *doc = json_string_value(json_object_get(op, "documentation"));
            if (!strstr(doc, r->pattern)) {
                char more[600];
                snprintf(more, sizeof more, "%s, %s", doc, r->pattern);
                json_object_set_new(op, "documentation", json_string(more));
            }
            return;
        }
    }
    definition_of(r, def, sizeof def);
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "name", r->operation + 1, "definition",
                                         def, "documentation", r->pattern));
}

/* Operation rows at the type, instance or version level. */
static json_t *operations(const vl_fhir_type_t *t)
{
    json_t *arr = json_array();
    char own[80];
    snprintf(own, sizeof own, "/fhir/%s/", t->name);
    for (const vl_route_t *r = vl_routes; r->pattern; r++) {
        /* every type's ({type}), or this type's own (/fhir/Observation/$ingest) */
        if (!r->operation ||
            (!strstr(r->pattern, "{type}") && strncmp(r->pattern, own, strlen(own)) != 0))
            continue;
        add_operation(arr, r);
    }
    return arr;
}

/* searchInclude: "Type:param" of each reference parameter of the type;
 * searchRevInclude: those of every served type that may refer to it. */
static json_t *includes(const vl_fhir_type_t *t, int rev)
{
    json_t *arr = json_array();
    for (const vl_fhir_type_t *s = rev ? vl_fhir_types : t; s->name; s++) {
        for (const vl_search_param_t *p = s->params; p && p->name; p++) {
            char inc[160];
            if (p->kind != VL_INDEX_REFERENCE || (rev && !vl_fhir_param_targets(p, t->name)))
                continue;
            snprintf(inc, sizeof inc, "%s:%s", s->name, p->name);
            json_array_append_new(arr, json_string(inc));
        }
        if (!rev)
            break;
    }
    return arr;
}

static json_t *resource_entry(const vl_fhir_type_t *t)
{
    json_t *r = json_object();
    json_t *ops = operations(t);
    json_object_set_new(r, "type", json_string(t->name));
    if (t->profile)
        json_object_set_new(r, "profile", json_string(t->profile));
    json_object_set_new(r, "interaction", interactions(t));
    json_object_set_new(r, "versioning", json_string("versioned"));
    json_object_set_new(r, "readHistory", json_true());
    json_object_set_new(r, "updateCreate", json_true());
    json_object_set_new(r, "conditionalCreate", json_true());
    json_object_set_new(
        r, "conditionalUpdate",
        json_boolean(has_row("/fhir/{type}", "PUT") && (t->interactions & VL_INT_UPDATE)));
    json_object_set_new(
        r, "conditionalDelete",
        json_string(has_row("/fhir/{type}", "DELETE") && (t->interactions & VL_INT_DELETE)
                        ? "single"
                        : "not-supported"));

    if (t->interactions & VL_INT_SEARCH) {
        json_t *params = json_array();
        for (const vl_search_param_t *p = vl_fhir_params_common; p->name; p++)
            json_array_append_new(params, search_param(p));
        for (const vl_search_param_t *p = t->params; p && p->name; p++)
            json_array_append_new(params, search_param(p));
        json_object_set_new(r, "searchParam", params);
        json_object_set_new(r, "searchInclude", includes(t, 0));
        json_object_set_new(r, "searchRevInclude", includes(t, 1));
    }
    if (json_array_size(ops))
        json_object_set_new(r, "operation", ops);
    else
        json_decref(ops);
    return r;
}

/* rest.security: what the server's policy and transport do. */
static json_t *security(const vl_fhir_options_t *opts)
{
    int smart = opts && opts->smart_issuer;
    json_t *sec = json_pack(
        "{s:b,s:s}", "cors", opts && opts->cors, "description",
        smart ? "Every interaction except capabilities needs Authorization: Bearer <token> (RFC "
                "6750; 401 with WWW-Authenticate otherwise): an opaque token issued by the "
                "server's administrators (vitalog token, /auth/tokens) for the roles admin, "
                "clinic, patient, device and auditor, or a JWT (RS256, ES256) of the "
                "configured identity provider whose fhirUser names a Patient or a "
                "Practitioner and whose SMART App Launch scopes (v1 and v2, patient/, user/, "
                "system/) narrow what the role allows. A patient reaches only their own "
                "compartment, a clinic what the patients' Consents permit, and what a caller "
                "may not see is answered as missing. See /.well-known/smart-configuration."
              : "Every interaction except capabilities needs Authorization: Bearer <token> "
                "(RFC 6750; 401 with WWW-Authenticate otherwise). Tokens are opaque, issued "
                "by the server's administrators (vitalog token, /auth/tokens) for the roles "
                "admin, clinic, patient, device and auditor; a patient reaches only their "
                "own compartment, a clinic what the patients' Consents permit, and what a "
                "caller may not see is answered as missing.");
    if (smart) {
        json_t *service =
            json_pack("[{s:[{s:s,s:s}],s:s}]", "coding", "system",
                      "http://terminology.hl7.org/CodeSystem/restful-security-service", "code",
                      "SMART-on-FHIR", "text",
                      "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)");
        json_object_set_new(sec, "service", service);
        if (opts->smart_authorize && opts->smart_token)
            json_object_set_new(
                sec, "extension",
                json_pack("[{s:s,s:[{s:s,s:s},{s:s,s:s}]}]", "url",
                          "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                          "extension", "url", "authorize", "valueUri", opts->smart_authorize, "url",
                          "token", "valueUri", opts->smart_token));
    }
    return sec;
}

json_t *vl_fhir_capability(const char *base_url, const vl_fhir_options_t *opts)
{
    char date[32];
    vl_time_format(vl_time_now_us(), date);

    json_t *cs = json_object();
    json_object_set_new(cs, "resourceType", json_string("CapabilityStatement"));
    json_object_set_new(cs, "status", json_string("active"));
    json_object_set_new(cs, "date", json_string(date));
    json_object_set_new(cs, "publisher", json_string("vitalog"));
    json_object_set_new(cs, "kind", json_string("instance"));

    json_t *software = json_object();
    json_object_set_new(software, "name", json_string("vitalog"));
    json_object_set_new(software, "version", json_string(VL_VERSION));
    json_object_set_new(cs, "software", software);

    json_t *impl = json_object();
    json_object_set_new(impl, "description", json_string("vitalog FHIR R4 server"));
    if (base_url)
        json_object_set_new(impl, "url", json_string(base_url));
    json_object_set_new(cs, "implementation", impl);

    json_object_set_new(cs, "fhirVersion", json_string(VL_FHIR_VERSION));
    json_t *formats = json_array();
    json_array_append_new(formats, json_string("json"));
    json_array_append_new(formats, json_string("application/fhir+json"));
    json_object_set_new(cs, "format", formats);

    json_t *rest = json_object();
    json_object_set_new(rest, "mode", json_string("server"));
    json_object_set_new(rest, "security", security(opts));
    json_t *resources = json_array();
    for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++)
        json_array_append_new(resources, resource_entry(t));
    json_object_set_new(rest, "resource", resources);
    if (has_row("/fhir", "POST"))
        json_object_set_new(rest, "interaction",
                            json_pack("[{s:s},{s:s}]", "code", "transaction", "code", "batch"));
    /* _has applies to every type; R4 defines it in search.html, with no
     * SearchParameter resource (so no definition) */
    json_object_set_new(
        rest, "searchParam",
        json_pack("[{s:s,s:s,s:s}]", "name", "_has", "type", "special", "documentation",
                  "Reverse chaining one level deep on every type: _has:Type:reference:param=value "
                  "(the referring resources are read in the caller's scope)."));
    {
        /* system-level operations (/fhir/$export) */
        json_t *ops = json_array();
        for (const vl_route_t *r = vl_routes; r->pattern; r++)
            if (r->operation && !strncmp(r->pattern, "/fhir/$", 7))
                add_operation(ops, r);
        if (json_array_size(ops))
            json_object_set_new(rest, "operation", ops);
        else
            json_decref(ops);
    }
    json_t *rests = json_array();
    json_array_append_new(rests, rest);
    json_object_set_new(cs, "rest", rests);
    return cs;
}
