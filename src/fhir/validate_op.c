/*
 * vitalog — fhir/validate_op.c: POST [base]/[type]/$validate (R4
 * OperationDefinition Resource-validate).
 *
 * DESIGN NOTES
 *
 * 1. The same checks as a write, nothing stored. The resource (the body,
 *    or the `resource` parameter of a Parameters body) goes through what a
 *    create or update runs before it reaches the store: resourceType
 *    against the URL, vl_fhir_validate (R4 structure, primitives,
 *    invariants, the vital-signs profile) and the extraction of its index
 *    rows and compartments (vl_fhir_index_at). Nothing is read from or
 *    written to the store; the ledger does not move.
 *
 * 2. The answer is 200 with an OperationOutcome whether or not the
 *    resource is valid (R4: a 4xx means the validation itself could not be
 *    performed): its issues are those a write would have refused the
 *    resource with, each with severity, code and expression, or one
 *    information issue when there are none. Bodies that are not FHIR JSON,
 *    a resource of another type, an unknown `mode` or a `profile` this
 *    server does not check are 400.
 *
 * 3. Modes: none (general validation) and create run the same checks
 *    (ids are assigned by the server, so a create's id is ignored as a
 *    create would); update also requires an id (an update must carry it);
 *    delete is an instance-level mode, and this server routes $validate at
 *    the type level only: 400.
 */
#include <string.h>

#include "fhir_internal.h"

#define VITAL_SIGNS_PROFILE "http://hl7.org/fhir/StructureDefinition/vitalsigns"

/* The profiles $validate checks against: the type's base definition, and
 * for Observation the R4 vital-signs profile. */
static int profile_known(const vl_fhir_type_t *t, const char *profile)
{
    if (t->profile && !strcmp(profile, t->profile))
        return 1;
    size_t n = strlen(VITAL_SIGNS_PROFILE);
    return !strcmp(t->name, "Observation") && !strncmp(profile, VITAL_SIGNS_PROFILE, n) &&
           (profile[n] == '\0' || profile[n] == '|');
}

/* The parameters of a Parameters body: resource, mode, profile. */
static int unpack(const json_t *body, const json_t **resource, const char **mode,
                  const char **profile, vl_error_t *err)
{
    const json_t *params = json_object_get(body, "parameter"), *p;
    size_t i;
    if (params && !json_is_array(params))
        return vl_error_set(err, 400, "structure", "Parameters.parameter",
                            "Parameters.parameter must be an array");
    json_array_foreach (params, i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));
        if (!name)
            return vl_error_set(err, 400, "required", "Parameters.parameter.name",
                                "a parameter without a name");
        if (!strcmp(name, "resource") && json_is_object(json_object_get(p, "resource")) &&
            !*resource)
            *resource = json_object_get(p, "resource");
        else if (!strcmp(name, "mode") && json_is_string(json_object_get(p, "valueCode")) && !*mode)
            *mode = json_string_value(json_object_get(p, "valueCode"));
        else if (!strcmp(name, "profile") &&
                 (json_is_string(json_object_get(p, "valueCanonical")) ||
                  json_is_string(json_object_get(p, "valueUri"))) &&
                 !*profile)
            *profile = json_string_value(json_object_get(p, "valueCanonical"))
                           ? json_string_value(json_object_get(p, "valueCanonical"))
                           : json_string_value(json_object_get(p, "valueUri"));
        else
            return vl_error_set(err, 400, "not-supported", "Parameters.parameter",
                                "$validate takes one resource, mode and profile; not '%.64s' "
                                "(or not of its type)",
                                name);
    }
    return 0;
}

/* The checks of a write (note 1): 0 valid, -1 with every issue in err. */
static int check(vl_fhir_exchange_t *x, const json_t *resource, const char *mode, vl_error_t *err)
{
    vl_index_t ix;
    int rc;
    if (mode && !strcmp(mode, "update") && !json_is_string(json_object_get(resource, "id")))
        vl_error_set(err, 400, "required", "id", "an update must carry the resource id");
    if (vl_fhir_validate(x->type, resource, err) < 0 || err->status)
        return -1;
    vl_index_init(&ix);
    rc = vl_fhir_index_at(x->type, resource, vl_x_fhir_base(x), &ix, err);
    vl_index_free(&ix);
    return rc;
}

int vl_h_validate(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    const json_t *resource = NULL;
    const char *mode = vl_params_get(&x->params, "mode");
    const char *profile = vl_params_get(&x->params, "profile");
    const char *rt = json_string_value(json_object_get(x->body, "resourceType"));
    int rc;
    if (rt && !strcmp(rt, "Parameters") && strcmp(x->type->name, "Parameters") != 0) {
        if (unpack(x->body, &resource, &mode, &profile, &err) < 0)
            return vl_x_error(res, &err);
        if (!resource)
            return vl_x_fail(res, 400, "required",
                             "the Parameters carry no resource to validate (parameter "
                             "'resource')");
    } else {
        resource = x->body;
    }
    /* what is validated must be a resource of the URL's type (note 2) */
    rt = json_string_value(json_object_get(resource, "resourceType"));
    if (!rt)
        return vl_x_fail(res, 400, "required", "the resource to validate has no resourceType");
    if (strcmp(rt, x->type->name) != 0)
        return vl_x_fail(res, 400, "invalid",
                         "resourceType '%.64s' does not match the URL's type %s: validate it at "
                         "/fhir/%.64s/$validate",
                         rt, x->type->name, rt);
    if (mode && strcmp(mode, "create") && strcmp(mode, "update"))
        return vl_x_fail(res, 400, "not-supported",
                         "mode '%.32s' is not supported: $validate runs at the type level "
                         "(none, create or update)",
                         mode);
    if (profile && !profile_known(x->type, profile))
        return vl_x_fail(res, 400, "not-supported",
                         "this server validates %s against its base definition%s only, not "
                         "'%.200s'",
                         x->type->name,
                         strcmp(x->type->name, "Observation") ? "" : " and the vital-signs profile",
                         profile);
    if (profile && strcmp(profile, x->type->profile ? x->type->profile : "") != 0) {
        /* checked against the vital-signs profile as if it claimed it */
        json_t *copy = json_deep_copy(resource), *meta;
        if (!copy)
            return vl_x_fail(res, 500, "exception", "out of memory");
        meta = json_object_get(copy, "meta");
        if (!json_is_object(meta))
            json_object_set_new(copy, "meta", meta = json_object());
        if (!json_is_array(json_object_get(meta, "profile")))
            json_object_set_new(meta, "profile", json_array());
        json_array_append_new(json_object_get(meta, "profile"), json_string(VITAL_SIGNS_PROFILE));
        rc = check(x, copy, mode, &err);
        json_decref(copy);
    } else {
        rc = check(x, resource, mode, &err);
    }
    if (rc < 0) {
        vl_x_error(res, &err);
        res->status = 200; /* note 2: the validation was performed */
        return 0;
    }
    return vl_x_json(res, 200,
                     json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "resourceType", "OperationOutcome",
                               "issue", "severity", "information", "code", "informational",
                               "diagnostics", "the resource is valid: a write would accept it"));
}
