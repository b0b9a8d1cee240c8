/*
 * vitalog — fhir/compartment.c: which patient compartments a resource is
 * in (R4 CompartmentDefinition "patient"), for access scopes.
 *
 * A resource is in Patient/x's compartment when one of the elements below
 * holds a reference "Patient/x" (or "Patient/x/_history/v"); a Patient is
 * also in its own. Relative references count, and absolute URLs under this
 * server's FHIR base (vl_fhir_local_reference: "<base>/Patient/x" is
 * "Patient/x"); any other absolute URL may name another server's patient.
 * schemas/003_compartments_rotations.sql backfilled earlier versions with
 * the rules for relative references.
 *
 *   Observation   subject, performer         (R4: subject, performer)
 *   Device        patient                    (R4: patient)
 *   Patient       link.other, and itself     (R4: link)
 *   Consent       patient                    (R4: patient)
 *   AuditEvent    agent.who, entity.what     (R4: patient, whose expression
 *                                             is these two, Patient targets)
 *   Organization, Practitioner: in no patient compartment
 *
 * A resource of a type above that names none of this server's patients
 * (an Observation of Group/g1, or of another server's patient) is not
 * shared data: vl_fhir_index gives it the compartment "" (VL_NO_PATIENT),
 * which no access scope names, so that only the store's owner reads it.
 */
#include <string.h>

#include "vitalog/fhir.h"

static const struct {
    const char *type;
    const char *elements[3]; /* element names; arrays are walked */
} members[] = {
    {"Observation", {"subject", "performer", NULL}},
    {"Device", {"patient", NULL, NULL}},
    {"Patient", {"link", NULL, NULL}},
    {"Consent", {"patient", NULL, NULL}},
    {"AuditEvent", {"agent", "entity", NULL}},
};

/* The id of a relative Patient reference, copied into out (65 bytes). */
static int patient_id(const char *ref, char out[65])
{
    const char *id, *end;
    size_t n;
    if (!ref || strncmp(ref, "Patient/", 8) != 0)
        return 0;
    id = ref + 8;
    end = strchr(id, '/');
    if (end && strncmp(end, "/_history/", 10) != 0)
        return 0;
    n = end ? (size_t)(end - id) : strlen(id);
    if (n == 0 || n > 64)
        return 0;
    memcpy(out, id, n);
    out[n] = '\0';
    return vl_fhir_id_valid(out);
}

static int add_reference(const json_t *ref, const char *base, vl_index_t *ix)
{
    char id[65];
    const char *s =
        json_is_object(ref) ? json_string_value(json_object_get(ref, "reference")) : NULL;
    if (s && patient_id(vl_fhir_local_reference(s, base), id))
        return vl_index_add_patient(ix, id);
    return 0;
}

/* An element's value(s): a Reference, an array of them, or BackboneElements
 * whose "other" (Patient.link), "who" (AuditEvent.agent) or "what"
 * (AuditEvent.entity) is the reference. */
static int add_element(const json_t *v, const char *base, vl_index_t *ix)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach (v, i, item) {
            if (add_element(item, base, ix) < 0)
                return -1;
        }
        return 0;
    }
    if (json_is_object(json_object_get(v, "other")))
        return add_reference(json_object_get(v, "other"), base, ix);
    if (json_is_object(json_object_get(v, "who"))) /* AuditEvent.agent */
        return add_reference(json_object_get(v, "who"), base, ix);
    if (json_is_object(json_object_get(v, "what"))) /* AuditEvent.entity */
        return add_reference(json_object_get(v, "what"), base, ix);
    return add_reference(v, base, ix);
}

int vl_fhir_compartments_at(const vl_fhir_type_t *type, const json_t *res, const char *base,
                            vl_index_t *ix)
{
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        if (strcmp(members[i].type, type->name) != 0)
            continue;
        for (int k = 0; k < 3 && members[i].elements[k]; k++)
            if (add_element(json_object_get(res, members[i].elements[k]), base, ix) < 0)
                return -1;
    }
    return 0;
}

int vl_fhir_compartment_member_type(const vl_fhir_type_t *type)
{
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        if (strcmp(members[i].type, type->name) == 0)
            return 1;
    return 0;
}

int vl_fhir_compartments(const vl_fhir_type_t *type, const json_t *res, vl_index_t *ix)
{
    return vl_fhir_compartments_at(type, res, NULL, ix);
}

int vl_fhir_compartment_self(const vl_fhir_type_t *type, const char *id, vl_index_t *ix)
{
    if (strcmp(type->name, "Patient") != 0)
        return 0;
    return vl_index_add_patient(ix, id);
}
