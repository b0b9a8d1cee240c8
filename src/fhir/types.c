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
 * 2. Names, kinds and paths follow the FHIR R4 (4.0.1) SearchParameter
 *    definitions. Paths are element names as they appear in JSON, so a
 *    choice element is spelled out per type (Observation.effective[x] ->
 *    effectiveDateTime, effectivePeriod, effectiveInstant). Arrays are
 *    iterated at every level by the extractor. Deviations from R4:
 *      - Observation "date" does not index effectiveTiming (no single
 *        range); "combo-*" parameters are not offered;
 *      - R4 parameters of kind uri, number, composite and special are not
 *        offered (e.g. Device "url", Observation "code-value-quantity");
 *      - Patient/Practitioner "phone"/"email" (telecom filtered by system)
 *        are not offered; "telecom" is.
 *
 * 3. `_id` and `_lastUpdated` are common to all types and are handled by
 *    the search parser itself; they are not in the tables.
 *
 * 4. A reference parameter with `target` (e.g. Observation "patient")
 *    indexes only references to that type and accepts only that type in a
 *    search value.
 */
#include <stdlib.h>
#include <string.h>

#include "vitalog/fhir.h"

#define ALL_INTERACTIONS                                                                         \
    (VL_INT_READ | VL_INT_VREAD | VL_INT_UPDATE | VL_INT_DELETE | VL_INT_HISTORY_INSTANCE |     \
     VL_INT_HISTORY_TYPE | VL_INT_CREATE | VL_INT_SEARCH)

#define TOKEN VL_INDEX_TOKEN
#define STRING VL_INDEX_STRING
#define REF VL_INDEX_REFERENCE
#define DATE VL_INDEX_DATE
#define QTY VL_INDEX_QUANTITY

/* ------------------------------------------------------------------------
 * Observation
 * ---------------------------------------------------------------------- */

static const vl_search_param_t observation_params[] = {
    {"based-on", REF, {"basedOn"}, NULL, "Reference to the service request."},
    {"category", TOKEN, {"category"}, NULL, "The classification of the type of observation"},
    {"code", TOKEN, {"code"}, NULL, "The code of the observation type"},
    {"component-code", TOKEN, {"component.code"}, NULL,
     "The component code of the observation type"},
    {"component-data-absent-reason", TOKEN, {"component.dataAbsentReason"}, NULL,
     "The reason why the expected value in the element Observation.component.value[x] is missing."},
    {"component-value-concept", TOKEN, {"component.valueCodeableConcept"}, NULL,
     "The value of the component observation, if the value is a CodeableConcept"},
    {"component-value-quantity", QTY, {"component.valueQuantity"}, NULL,
     "The value of the component observation, if the value is a Quantity, or a SampledData "
     "(just search on the bounds of the values in sampled data)"},
    {"data-absent-reason", TOKEN, {"dataAbsentReason"}, NULL,
     "The reason why the expected value in the element Observation.value[x] is missing."},
    {"date", DATE, {"effectiveDateTime", "effectivePeriod", "effectiveInstant"}, NULL,
     "Obtained date/time. If the obtained element is a period, a date that falls in the period"},
    {"derived-from", REF, {"derivedFrom"}, NULL,
     "Related measurements the observation is made from"},
    {"device", REF, {"device"}, NULL, "The Device that generated the observation data."},
    {"encounter", REF, {"encounter"}, NULL, "Encounter related to the observation"},
    {"focus", REF, {"focus"}, NULL,
     "The focus of an observation when the focus is not the patient of record."},
    {"has-member", REF, {"hasMember"}, NULL,
     "Related resource that belongs to the Observation group"},
    {"identifier", TOKEN, {"identifier"}, NULL, "The unique id for a particular observation"},
    {"method", TOKEN, {"method"}, NULL, "The method used for the observation"},
    {"part-of", REF, {"partOf"}, NULL, "Part of referenced event"},
    {"patient", REF, {"subject"}, "Patient",
     "The subject that the observation is about (if patient)"},
    {"performer", REF, {"performer"}, NULL, "Who performed the observation"},
    {"specimen", REF, {"specimen"}, NULL, "Specimen used for this observation"},
    {"status", TOKEN, {"status"}, NULL, "The status of the observation"},
    {"subject", REF, {"subject"}, NULL, "The subject that the observation is about"},
    {"value-concept", TOKEN, {"valueCodeableConcept"}, NULL,
     "The value of the observation, if the value is a CodeableConcept"},
    {"value-date", DATE, {"valueDateTime", "valuePeriod"}, NULL,
     "The value of the observation, if the value is a date or period of time"},
    {"value-quantity", QTY, {"valueQuantity"}, NULL,
     "The value of the observation, if the value is a Quantity, or a SampledData (just search on "
     "the bounds of the values in sampled data)"},
    {"value-string", STRING, {"valueString"}, NULL,
     "The value of the observation, if the value is a string, and also searches in "
     "CodeableConcept.text"},
    {NULL, 0, {NULL}, NULL, NULL},
};

/* ------------------------------------------------------------------------
 * Patient
 * ---------------------------------------------------------------------- */

static const vl_search_param_t patient_params[] = {
    {"active", TOKEN, {"active"}, NULL, "Whether the patient record is active"},
    {"address", STRING, {"address"}, NULL,
     "A server defined search that may match any of the string fields in the Address, including "
     "line, city, district, state, country, postalCode, and/or text"},
    {"address-city", STRING, {"address.city"}, NULL, "A city specified in an address"},
    {"address-country", STRING, {"address.country"}, NULL, "A country specified in an address"},
    {"address-postalcode", STRING, {"address.postalCode"}, NULL,
     "A postalCode specified in an address"},
    {"address-state", STRING, {"address.state"}, NULL, "A state specified in an address"},
    {"address-use", TOKEN, {"address.use"}, NULL, "A use code specified in an address"},
    {"birthdate", DATE, {"birthDate"}, NULL, "The patient's date of birth"},
    {"family", STRING, {"name.family"}, NULL, "A portion of the family name of the patient"},
    {"gender", TOKEN, {"gender"}, NULL, "Gender of the patient"},
    {"general-practitioner", REF, {"generalPractitioner"}, NULL,
     "Patient's nominated general practitioner, not the organization that manages the record"},
    {"given", STRING, {"name.given"}, NULL, "A portion of the given name of the patient"},
    {"identifier", TOKEN, {"identifier"}, NULL, "A patient identifier"},
    {"language", TOKEN, {"communication.language"}, NULL,
     "Language code (irrespective of use value)"},
    {"link", REF, {"link.other"}, NULL, "All patients linked to the given patient"},
    {"name", STRING, {"name"}, NULL,
     "A server defined search that may match any of the string fields in the HumanName, "
     "including family, give, prefix, suffix, suffix, and/or text"},
    {"organization", REF, {"managingOrganization"}, NULL,
     "The organization that is the custodian of the patient record"},
    {"telecom", TOKEN, {"telecom"}, NULL,
     "The value in any kind of telecom details of the patient"},
    {NULL, 0, {NULL}, NULL, NULL},
};

/* ------------------------------------------------------------------------
 * Device
 * ---------------------------------------------------------------------- */

static const vl_search_param_t device_params[] = {
    {"device-name", STRING, {"deviceName.name", "type.text", "type.coding.display"}, NULL,
     "A server defined search that may match any of the string fields in Device.deviceName or "
     "Device.type."},
    {"identifier", TOKEN, {"identifier"}, NULL, "Instance id from manufacturer, owner, and others"},
    {"location", REF, {"location"}, NULL, "A location, where the resource is found"},
    {"manufacturer", STRING, {"manufacturer"}, NULL, "The manufacturer of the device"},
    {"model", STRING, {"modelNumber"}, NULL, "The model of the device"},
    {"organization", REF, {"owner"}, NULL,
     "The organization responsible for the device"},
    {"patient", REF, {"patient"}, "Patient",
     "Patient information, if the resource is affixed to a person"},
    {"status", TOKEN, {"status"}, NULL, "active | inactive | entered-in-error | unknown"},
    {"type", TOKEN, {"type"}, NULL, "The type of the device"},
    {"udi-carrier", STRING, {"udiCarrier.carrierHRF"}, NULL,
     "UDI Barcode (RFID or other technology) string in *HRF* format."},
    {"udi-di", STRING, {"udiCarrier.deviceIdentifier"}, NULL, "The udi Device Identifier (DI)"},
    {NULL, 0, {NULL}, NULL, NULL},
};

/* ------------------------------------------------------------------------
 * Organization
 * ---------------------------------------------------------------------- */

static const vl_search_param_t organization_params[] = {
    {"active", TOKEN, {"active"}, NULL, "Is the Organization record active"},
    {"address", STRING, {"address"}, NULL,
     "A server defined search that may match any of the string fields in the Address, including "
     "line, city, district, state, country, postalCode, and/or text"},
    {"address-city", STRING, {"address.city"}, NULL, "A city specified in an address"},
    {"address-country", STRING, {"address.country"}, NULL, "A country specified in an address"},
    {"address-postalcode", STRING, {"address.postalCode"}, NULL,
     "A postal code specified in an address"},
    {"address-state", STRING, {"address.state"}, NULL, "A state specified in an address"},
    {"endpoint", REF, {"endpoint"}, NULL,
     "Technical endpoints providing access to services operated for the organization"},
    {"identifier", TOKEN, {"identifier"}, NULL,
     "Any identifier for the organization (not the accreditation issuer's identifier)"},
    {"name", STRING, {"name", "alias"}, NULL, "A portion of the organization's name or alias"},
    {"partof", REF, {"partOf"}, "Organization",
     "An organization of which this organization forms a part"},
    {"type", TOKEN, {"type"}, NULL, "A code for the type of organization"},
    {NULL, 0, {NULL}, NULL, NULL},
};

/* ------------------------------------------------------------------------
 * Practitioner
 * ---------------------------------------------------------------------- */

static const vl_search_param_t practitioner_params[] = {
    {"active", TOKEN, {"active"}, NULL, "Whether the practitioner record is active"},
    {"address", STRING, {"address"}, NULL,
     "A server defined search that may match any of the string fields in the Address, including "
     "line, city, district, state, country, postalCode, and/or text"},
    {"address-city", STRING, {"address.city"}, NULL, "A city specified in an address"},
    {"address-country", STRING, {"address.country"}, NULL, "A country specified in an address"},
    {"address-postalcode", STRING, {"address.postalCode"}, NULL,
     "A postalCode specified in an address"},
    {"address-state", STRING, {"address.state"}, NULL, "A state specified in an address"},
    {"communication", TOKEN, {"communication"}, NULL,
     "One of the languages that the practitioner can communicate with"},
    {"family", STRING, {"name.family"}, NULL, "A portion of the family name"},
    {"gender", TOKEN, {"gender"}, NULL, "Gender of the practitioner"},
    {"given", STRING, {"name.given"}, NULL, "A portion of the given name"},
    {"identifier", TOKEN, {"identifier"}, NULL, "A practitioner's Identifier"},
    {"name", STRING, {"name"}, NULL,
     "A server defined search that may match any of the string fields in the HumanName, "
     "including family, give, prefix, suffix, suffix, and/or text"},
    {"telecom", TOKEN, {"telecom"}, NULL, "The value in any kind of contact"},
    {NULL, 0, {NULL}, NULL, NULL},
};

/* ------------------------------------------------------------------------
 * Served types
 * ---------------------------------------------------------------------- */

const vl_fhir_type_t vl_fhir_types[] = {
    {"Observation", ALL_INTERACTIONS, observation_params,
     "http://hl7.org/fhir/StructureDefinition/Observation"},
    {"Patient", ALL_INTERACTIONS, patient_params,
     "http://hl7.org/fhir/StructureDefinition/Patient"},
    {"Device", ALL_INTERACTIONS, device_params, "http://hl7.org/fhir/StructureDefinition/Device"},
    {"Organization", ALL_INTERACTIONS, organization_params,
     "http://hl7.org/fhir/StructureDefinition/Organization"},
    {"Practitioner", ALL_INTERACTIONS, practitioner_params,
     "http://hl7.org/fhir/StructureDefinition/Practitioner"},
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

/* ------------------------------------------------------------------------
 * Every R4 (4.0.1) resource type, sorted by strcmp (checked by the unit
 * test): the 146 names of the R4 resource list.
 * ---------------------------------------------------------------------- */

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
