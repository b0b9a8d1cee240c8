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
 * 2. Rest level: transaction and batch when the table has POST /fhir.
 *    Operations name their definition under VL_FHIR_OPERATION_BASE (a
 *    canonical that identifies vitalog's operations; docs/api.md documents
 *    them).
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
        char doc[1024];
        snprintf(doc, sizeof doc, "%s%s%s%s%s%s%s", sp->description,
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

/* Operation rows at the type, instance or version level. */
static json_t *operations(const vl_fhir_type_t *t)
{
    json_t *arr = json_array();
    char own[80];
    snprintf(own, sizeof own, "/fhir/%s/", t->name);
    for (const vl_route_t *r = vl_routes; r->pattern; r++) {
        char def[128];
        /* every type's ({type}), or this type's own (/fhir/Observation/$ingest) */
        if (!r->operation ||
            (!strstr(r->pattern, "{type}") && strncmp(r->pattern, own, strlen(own)) != 0))
            continue;
        snprintf(def, sizeof def, "%s/%s", VL_FHIR_OPERATION_BASE, r->operation + 1);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "name", r->operation + 1,
                                             "definition", def, "documentation", r->pattern));
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
    json_t *rests = json_array();
    json_array_append_new(rests, rest);
    json_object_set_new(cs, "rest", rests);
    return cs;
}
