/*
 * vitalog — fhir/types.c: the served resource types, their interactions and
 * search parameters, and the list of every FHIR R4 resource type.
 *
 * DESIGN NOTES
 *
 * 1. vl_fhir_types[] is the single source of truth: routing, index
 *    extraction (fhir/index.c), query parsing (fhir/search.c) and the
 *    CapabilityStatement (fhir/capability.c) all read it. A parameter is
 *    listed only when index extraction handles every one of its paths.
 *
 * 2. The search-parameter tables are generated from the FHIR R4 (4.0.1)
 *    SearchParameter definitions into fhir/search_params.c by
 *    scripts/gen-search-params.py (run by hand; see its header). Names,
 *    kinds, canonical URLs, expressions and descriptions are R4's; paths
 *    are derived from the expressions as element names as they appear in
 *    JSON, so a choice element is spelled out per type
 *    (Observation.effective -> effectiveDateTime, effectivePeriod,
 *    effectiveInstant). Arrays are iterated at every level by the
 *    extractor. Deviations from R4 (the generator checks the first list and
 *    records both in the generated file's header):
 *      - offered with part of the expression not indexed: Observation
 *        "date" does not index effectiveTiming (no single range);
 *        "value-quantity" and "component-value-quantity" do not index
 *        SampledData;
 *      - not offered: "combo-*" parameters; R4 parameters of kind uri,
 *        number, composite and special (e.g. Device "url", Observation
 *        "code-value-quantity"); Patient/Practitioner "phone"/"email"
 *        (telecom filtered by system; "telecom" is offered); Patient
 *        "deceased" (not an element path); "phonetic" (phonetic matching);
 *        the common parameters other than _id and _lastUpdated.
 *
 * 3. `_id` and `_lastUpdated` are common to all types and are handled by
 *    the search parser itself; they are not in the tables
 *    (vl_fhir_params_common holds their R4 definitions for the
 *    CapabilityStatement).
 *
 * 4. A reference parameter with `target` (e.g. Observation "patient")
 *    indexes only references to that type and accepts only that type in a
 *    search value. The target is the type of `where(resolve() is Type)` in
 *    the expression, or else the parameter's only R4 target type.
 */
#include <stdlib.h>
#include <string.h>

#include "vitalog/fhir.h"

#define ALL_INTERACTIONS                                                                           \
    (VL_INT_READ | VL_INT_VREAD | VL_INT_UPDATE | VL_INT_DELETE | VL_INT_HISTORY_INSTANCE |        \
     VL_INT_HISTORY_TYPE | VL_INT_CREATE | VL_INT_SEARCH)

/* Generated: fhir/search_params.c (scripts/gen-search-params.py). */
extern const vl_search_param_t vl_fhir_params_observation[];
extern const vl_search_param_t vl_fhir_params_patient[];
extern const vl_search_param_t vl_fhir_params_device[];
extern const vl_search_param_t vl_fhir_params_organization[];
extern const vl_search_param_t vl_fhir_params_practitioner[];
extern const vl_search_param_t vl_fhir_params_consent[];
extern const vl_search_param_t vl_fhir_params_auditevent[];

/* ------------------------------------------------------------------------
 * Served types
 * ---------------------------------------------------------------------- */

const vl_fhir_type_t vl_fhir_types[] = {
    {"Observation", ALL_INTERACTIONS, vl_fhir_params_observation,
     "http://hl7.org/fhir/StructureDefinition/Observation"},
    {"Patient", ALL_INTERACTIONS, vl_fhir_params_patient,
     "http://hl7.org/fhir/StructureDefinition/Patient"},
    {"Device", ALL_INTERACTIONS, vl_fhir_params_device,
     "http://hl7.org/fhir/StructureDefinition/Device"},
    {"Organization", ALL_INTERACTIONS, vl_fhir_params_organization,
     "http://hl7.org/fhir/StructureDefinition/Organization"},
    {"Practitioner", ALL_INTERACTIONS, vl_fhir_params_practitioner,
     "http://hl7.org/fhir/StructureDefinition/Practitioner"},
    {"Consent", ALL_INTERACTIONS, vl_fhir_params_consent,
     "http://hl7.org/fhir/StructureDefinition/Consent"},
    /* written by the server only (accounting of disclosures): nobody may
     * create, update or delete one */
    {"AuditEvent",
     VL_INT_READ | VL_INT_VREAD | VL_INT_HISTORY_INSTANCE | VL_INT_HISTORY_TYPE | VL_INT_SEARCH,
     vl_fhir_params_auditevent, "http://hl7.org/fhir/StructureDefinition/AuditEvent"},
    {NULL, 0, NULL, NULL},
};

const vl_fhir_type_t *vl_fhir_type_find(const char *name)
{
    if (!name)
        return NULL;
    for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

const vl_search_param_t *vl_fhir_param_find(const vl_fhir_type_t *t, const char *name)
{
    if (!t || !name)
        return NULL;
    for (const vl_search_param_t *p = t->params; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

int vl_fhir_param_targets(const vl_search_param_t *sp, const char *type)
{
    if (sp->target)
        return !strcmp(sp->target, type);
    for (size_t i = 0; i < sizeof sp->targets / sizeof sp->targets[0] && sp->targets[i]; i++)
        if (!strcmp(sp->targets[i], type))
            return 1;
    return !sp->targets[0]; /* no list: any type */
}

/* ------------------------------------------------------------------------
 * Every R4 (4.0.1) resource type, sorted by strcmp (checked by the unit
 * test): the 146 names of the R4 resource list.
 * ---------------------------------------------------------------------- */

/* packed as in the R4 resource list */
/* clang-format off */
static const char *const r4_types[] = {
    "Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance", "Appointment",
    "AppointmentResponse", "AuditEvent", "Basic", "Binary", "BiologicallyDerivedProduct",
    "BodyStructure", "Bundle", "CapabilityStatement", "CarePlan", "CareTeam", "CatalogEntry",
    "ChargeItem", "ChargeItemDefinition", "Claim", "ClaimResponse", "ClinicalImpression",
    "CodeSystem", "Communication", "CommunicationRequest", "CompartmentDefinition", "Composition",
    "ConceptMap", "Condition", "Consent", "Contract", "Coverage", "CoverageEligibilityRequest",
    "CoverageEligibilityResponse", "DetectedIssue", "Device", "DeviceDefinition", "DeviceMetric",
    "DeviceRequest", "DeviceUseStatement", "DiagnosticReport", "DocumentManifest",
    "DocumentReference", "EffectEvidenceSynthesis", "Encounter", "Endpoint", "EnrollmentRequest",
    "EnrollmentResponse", "EpisodeOfCare", "EventDefinition", "Evidence", "EvidenceVariable",
    "ExampleScenario", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal",
    "GraphDefinition", "Group", "GuidanceResponse", "HealthcareService", "ImagingStudy",
    "Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide",
    "InsurancePlan", "Invoice", "Library", "Linkage", "List", "Location", "Measure",
    "MeasureReport", "Media", "Medication", "MedicationAdministration", "MedicationDispense",
    "MedicationKnowledge", "MedicationRequest", "MedicationStatement", "MedicinalProduct",
    "MedicinalProductAuthorization", "MedicinalProductContraindication",
    "MedicinalProductIndication", "MedicinalProductIngredient", "MedicinalProductInteraction",
    "MedicinalProductManufactured", "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect", "MessageDefinition", "MessageHeader",
    "MolecularSequence", "NamingSystem", "NutritionOrder", "Observation", "ObservationDefinition",
    "OperationDefinition", "OperationOutcome", "Organization", "OrganizationAffiliation",
    "Parameters", "Patient", "PaymentNotice", "PaymentReconciliation", "Person", "PlanDefinition",
    "Practitioner", "PractitionerRole", "Procedure", "Provenance", "Questionnaire",
    "QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchDefinition",
    "ResearchElementDefinition", "ResearchStudy", "ResearchSubject", "RiskAssessment",
    "RiskEvidenceSynthesis", "Schedule", "SearchParameter", "ServiceRequest", "Slot", "Specimen",
    "SpecimenDefinition", "StructureDefinition", "StructureMap", "Subscription", "Substance",
    "SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein",
    "SubstanceReferenceInformation", "SubstanceSourceMaterial", "SubstanceSpecification",
    "SupplyDelivery", "SupplyRequest", "Task", "TerminologyCapabilities", "TestReport",
    "TestScript", "ValueSet", "VerificationResult", "VisionPrescription",
};
/* clang-format on */

/* Exposed for the unit test (sortedness check); not in fhir.h. */
const char *const *vl_fhir_r4_type_list(size_t *n)
{
    *n = sizeof r4_types / sizeof r4_types[0];
    return r4_types;
}

static int cmp_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

int vl_fhir_is_r4_type(const char *name)
{
    if (!name)
        return 0;
    return bsearch(name, r4_types, sizeof r4_types / sizeof r4_types[0], sizeof r4_types[0],
                   cmp_name) != NULL;
}
