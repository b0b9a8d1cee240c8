/*
 * vitalog — fhir: the element tables of the validator.
 *
 * One static table per FHIR R4 (4.0.1) complex type: each row is an
 * element with its JSON name, cardinality (min 0/1, max 1 or *), and either
 * its type or, for a choice element "x[x]", the list of allowed types. A
 * row may carry the codes of a required binding. The walker in validate.c
 * reads nothing but these tables; adding an element or a type is a data
 * change.
 *
 * The implicit elements every type inherits (Element.id, .extension,
 * BackboneElement.modifierExtension, Resource.id/meta/implicitRules/
 * language, DomainResource.text/contained/extension/modifierExtension) are
 * not repeated here: the walker adds them by the type's kind.
 *
 * Sources: the R4 StructureDefinitions (hl7.org/fhir/R4/<type>.profile.json);
 * the Observation rows were checked against the snapshot in
 * shared/data/fhir/r4-vitalsigns/ (the R4 publication)vitalsigns.profile.json (its "base"
 * cardinalities are the base resource's).
 *
 * The invariants at the end of the file implement the FHIRPath constraints
 * named in their comments; issue.expression is the element they concern.
 */
#include <string.h>

#include "validate_internal.h"
#include "vitalog/fhir.h"

/* Row helpers: E(name, min, many, type), C(name, min, choices), B(...codes) */
#define E(n, mn, mx, t)                                                                            \
    {                                                                                              \
        n, mn, mx, t, NULL, NULL                                                                   \
    }
#define C(n, mn, ch)                                                                               \
    {                                                                                              \
        n, mn, 0, VT_NONE, ch, NULL                                                                \
    }
#define B(n, mn, mx, codes)                                                                        \
    {                                                                                              \
        n, mn, mx, VT_CODE, NULL, codes                                                            \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, 0, 0, VT_NONE, NULL, NULL                                                            \
    }
#define ONE 0  /* max 1 */
#define MANY 1 /* max * */

/* ------------------------------------------------------------------------
 * Required value sets
 * ---------------------------------------------------------------------- */

static const char *const obs_status[] = {"registered",       "preliminary", "final",
                                         "amended",          "corrected",   "cancelled",
                                         "entered-in-error", "unknown",     NULL};
static const char *const narrative_status[] = {"generated", "extensions", "additional", "empty",
                                               NULL};
static const char *const quantity_comparator[] = {"<", "<=", ">=", ">", NULL};
static const char *const identifier_use[] = {"usual", "official", "temp", "secondary", "old", NULL};
static const char *const name_use[] = {"usual",     "official", "temp",   "nickname",
                                       "anonymous", "old",      "maiden", NULL};
static const char *const address_use[] = {"home", "work", "temp", "old", "billing", NULL};
static const char *const address_type[] = {"postal", "physical", "both", NULL};
static const char *const contact_system[] = {"phone", "fax", "email", "pager",
                                             "url",   "sms", "other", NULL};
static const char *const contact_use[] = {"home", "work", "temp", "old", "mobile", NULL};
static const char *const gender[] = {"male", "female", "other", "unknown", NULL};
static const char *const link_type[] = {"replaced-by", "replaces", "refer", "seealso", NULL};
static const char *const device_status[] = {"active", "inactive", "entered-in-error", "unknown",
                                            NULL};
static const char *const device_name_type[] = {"udi-label-name",
                                               "user-friendly-name",
                                               "patient-reported-name",
                                               "manufacturer-name",
                                               "model-name",
                                               "other",
                                               NULL};
static const char *const udi_entry_type[] = {"barcode",       "rfid",    "manual", "card",
                                             "self-reported", "unknown", NULL};
static const char *const time_unit[] = {"s", "min", "h", "d", "wk", "mo", "a", NULL};
static const char *const days_of_week[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun", NULL};

/* ------------------------------------------------------------------------
 * Choice type lists
 * ---------------------------------------------------------------------- */

static const vt_t ch_obs_value[] = {VT_QUANTITY, VT_CODEABLECONCEPT, VT_STRING, VT_BOOLEAN,
                                    VT_INTEGER,  VT_RANGE,           VT_RATIO,  VT_SAMPLEDDATA,
                                    VT_TIME,     VT_DATETIME,        VT_PERIOD, VT_NONE};
static const vt_t ch_obs_effective[] = {VT_DATETIME, VT_PERIOD, VT_TIMING, VT_INSTANT, VT_NONE};
static const vt_t ch_annotation_author[] = {VT_REFERENCE, VT_STRING, VT_NONE};
static const vt_t ch_timing_bounds[] = {VT_DURATION, VT_RANGE, VT_PERIOD, VT_NONE};
static const vt_t ch_pat_deceased[] = {VT_BOOLEAN, VT_DATETIME, VT_NONE};
static const vt_t ch_pat_multiple_birth[] = {VT_BOOLEAN, VT_INTEGER, VT_NONE};
/* Extension.value[x]: the R4 "open" type list. */
static const vt_t ch_open[] = {VT_BASE64BINARY,
                               VT_BOOLEAN,
                               VT_CANONICAL,
                               VT_CODE,
                               VT_DATE,
                               VT_DATETIME,
                               VT_DECIMAL,
                               VT_ID,
                               VT_INSTANT,
                               VT_INTEGER,
                               VT_MARKDOWN,
                               VT_OID,
                               VT_POSITIVEINT,
                               VT_STRING,
                               VT_TIME,
                               VT_UNSIGNEDINT,
                               VT_URI,
                               VT_URL,
                               VT_UUID,
                               VT_ADDRESS,
                               VT_AGE,
                               VT_ANNOTATION,
                               VT_ATTACHMENT,
                               VT_CODEABLECONCEPT,
                               VT_CODING,
                               VT_CONTACTPOINT,
                               VT_COUNT,
                               VT_DISTANCE,
                               VT_DURATION,
                               VT_HUMANNAME,
                               VT_IDENTIFIER,
                               VT_MONEY,
                               VT_PERIOD,
                               VT_QUANTITY,
                               VT_RANGE,
                               VT_RATIO,
                               VT_REFERENCE,
                               VT_SAMPLEDDATA,
                               VT_SIGNATURE,
                               VT_TIMING,
                               VT_CONTACTDETAIL,
                               VT_CONTRIBUTOR,
                               VT_DATAREQUIREMENT,
                               VT_EXPRESSION,
                               VT_PARAMETERDEFINITION,
                               VT_RELATEDARTIFACT,
                               VT_TRIGGERDEFINITION,
                               VT_USAGECONTEXT,
                               VT_DOSAGE,
                               VT_META,
                               VT_NONE};

/* ------------------------------------------------------------------------
 * General-purpose datatypes
 * ---------------------------------------------------------------------- */

static const vdef_elem_t el_element[] = {END};

static const vdef_elem_t el_extension[] = {
    E("url", 1, ONE, VT_URI),
    C("value", 0, ch_open),
    END,
};

static const vdef_elem_t el_coding[] = {
    E("system", 0, ONE, VT_URI),
    E("version", 0, ONE, VT_STRING),
    E("code", 0, ONE, VT_CODE),
    E("display", 0, ONE, VT_STRING),
    E("userSelected", 0, ONE, VT_BOOLEAN),
    END,
};

static const vdef_elem_t el_codeable_concept[] = {
    E("coding", 0, MANY, VT_CODING),
    E("text", 0, ONE, VT_STRING),
    END,
};

/* Quantity and its profiles (SimpleQuantity, Age, Count, Distance,
 * Duration) share one element list. */
static const vdef_elem_t el_quantity[] = {
    E("value", 0, ONE, VT_DECIMAL), B("comparator", 0, ONE, quantity_comparator),
    E("unit", 0, ONE, VT_STRING),   E("system", 0, ONE, VT_URI),
    E("code", 0, ONE, VT_CODE),     END,
};

static const vdef_elem_t el_money[] = {
    E("value", 0, ONE, VT_DECIMAL),
    E("currency", 0, ONE, VT_CODE),
    END,
};

static const vdef_elem_t el_range[] = {
    E("low", 0, ONE, VT_SIMPLEQUANTITY),
    E("high", 0, ONE, VT_SIMPLEQUANTITY),
    END,
};

static const vdef_elem_t el_ratio[] = {
    E("numerator", 0, ONE, VT_QUANTITY),
    E("denominator", 0, ONE, VT_QUANTITY),
    END,
};

static const vdef_elem_t el_period[] = {
    E("start", 0, ONE, VT_DATETIME),
    E("end", 0, ONE, VT_DATETIME),
    END,
};

static const vdef_elem_t el_sampled_data[] = {
    E("origin", 1, ONE, VT_SIMPLEQUANTITY), E("period", 1, ONE, VT_DECIMAL),
    E("factor", 0, ONE, VT_DECIMAL),        E("lowerLimit", 0, ONE, VT_DECIMAL),
    E("upperLimit", 0, ONE, VT_DECIMAL),    E("dimensions", 1, ONE, VT_POSITIVEINT),
    E("data", 0, ONE, VT_STRING),           END,
};

static const vdef_elem_t el_identifier[] = {
    B("use", 0, ONE, identifier_use),
    E("type", 0, ONE, VT_CODEABLECONCEPT),
    E("system", 0, ONE, VT_URI),
    E("value", 0, ONE, VT_STRING),
    E("period", 0, ONE, VT_PERIOD),
    E("assigner", 0, ONE, VT_REFERENCE),
    END,
};

static const vdef_elem_t el_reference[] = {
    E("reference", 0, ONE, VT_STRING),
    E("type", 0, ONE, VT_URI),
    E("identifier", 0, ONE, VT_IDENTIFIER),
    E("display", 0, ONE, VT_STRING),
    END,
};

static const vdef_elem_t el_annotation[] = {
    C("author", 0, ch_annotation_author),
    E("time", 0, ONE, VT_DATETIME),
    E("text", 1, ONE, VT_MARKDOWN),
    END,
};

static const vdef_elem_t el_attachment[] = {
    E("contentType", 0, ONE, VT_CODE),
    E("language", 0, ONE, VT_CODE),
    E("data", 0, ONE, VT_BASE64BINARY),
    E("url", 0, ONE, VT_URL),
    E("size", 0, ONE, VT_UNSIGNEDINT),
    E("hash", 0, ONE, VT_BASE64BINARY),
    E("title", 0, ONE, VT_STRING),
    E("creation", 0, ONE, VT_DATETIME),
    END,
};

static const vdef_elem_t el_human_name[] = {
    B("use", 0, ONE, name_use),      E("text", 0, ONE, VT_STRING),
    E("family", 0, ONE, VT_STRING),  E("given", 0, MANY, VT_STRING),
    E("prefix", 0, MANY, VT_STRING), E("suffix", 0, MANY, VT_STRING),
    E("period", 0, ONE, VT_PERIOD),  END,
};

static const vdef_elem_t el_address[] = {
    B("use", 0, ONE, address_use),
    B("type", 0, ONE, address_type),
    E("text", 0, ONE, VT_STRING),
    E("line", 0, MANY, VT_STRING),
    E("city", 0, ONE, VT_STRING),
    E("district", 0, ONE, VT_STRING),
    E("state", 0, ONE, VT_STRING),
    E("postalCode", 0, ONE, VT_STRING),
    E("country", 0, ONE, VT_STRING),
    E("period", 0, ONE, VT_PERIOD),
    END,
};

static const vdef_elem_t el_contact_point[] = {
    B("system", 0, ONE, contact_system), E("value", 0, ONE, VT_STRING),
    B("use", 0, ONE, contact_use),       E("rank", 0, ONE, VT_POSITIVEINT),
    E("period", 0, ONE, VT_PERIOD),      END,
};

static const vdef_elem_t el_timing[] = {
    E("event", 0, MANY, VT_DATETIME),
    E("repeat", 0, ONE, VT_TIMING_REPEAT),
    E("code", 0, ONE, VT_CODEABLECONCEPT),
    END,
};

static const vdef_elem_t el_timing_repeat[] = {
    C("bounds", 0, ch_timing_bounds),       E("count", 0, ONE, VT_POSITIVEINT),
    E("countMax", 0, ONE, VT_POSITIVEINT),  E("duration", 0, ONE, VT_DECIMAL),
    E("durationMax", 0, ONE, VT_DECIMAL),   B("durationUnit", 0, ONE, time_unit),
    E("frequency", 0, ONE, VT_POSITIVEINT), E("frequencyMax", 0, ONE, VT_POSITIVEINT),
    E("period", 0, ONE, VT_DECIMAL),        E("periodMax", 0, ONE, VT_DECIMAL),
    B("periodUnit", 0, ONE, time_unit),     B("dayOfWeek", 0, MANY, days_of_week),
    E("timeOfDay", 0, MANY, VT_TIME),       E("when", 0, MANY, VT_CODE),
    E("offset", 0, ONE, VT_UNSIGNEDINT),    END,
};

static const vdef_elem_t el_meta[] = {
    E("versionId", 0, ONE, VT_ID),
    E("lastUpdated", 0, ONE, VT_INSTANT),
    E("source", 0, ONE, VT_URI),
    E("profile", 0, MANY, VT_CANONICAL),
    E("security", 0, MANY, VT_CODING),
    E("tag", 0, MANY, VT_CODING),
    END,
};

static const vdef_elem_t el_narrative[] = {
    B("status", 1, ONE, narrative_status),
    E("div", 1, ONE, VT_XHTML),
    END,
};

/* ------------------------------------------------------------------------
 * Observation
 * ---------------------------------------------------------------------- */

static const vdef_elem_t el_observation[] = {
    E("identifier", 0, MANY, VT_IDENTIFIER),
    E("basedOn", 0, MANY, VT_REFERENCE),
    E("partOf", 0, MANY, VT_REFERENCE),
    B("status", 1, ONE, obs_status),
    E("category", 0, MANY, VT_CODEABLECONCEPT),
    E("code", 1, ONE, VT_CODEABLECONCEPT),
    E("subject", 0, ONE, VT_REFERENCE),
    E("focus", 0, MANY, VT_REFERENCE),
    E("encounter", 0, ONE, VT_REFERENCE),
    C("effective", 0, ch_obs_effective),
    E("issued", 0, ONE, VT_INSTANT),
    E("performer", 0, MANY, VT_REFERENCE),
    C("value", 0, ch_obs_value),
    E("dataAbsentReason", 0, ONE, VT_CODEABLECONCEPT),
    E("interpretation", 0, MANY, VT_CODEABLECONCEPT),
    E("note", 0, MANY, VT_ANNOTATION),
    E("bodySite", 0, ONE, VT_CODEABLECONCEPT),
    E("method", 0, ONE, VT_CODEABLECONCEPT),
    E("specimen", 0, ONE, VT_REFERENCE),
    E("device", 0, ONE, VT_REFERENCE),
    E("referenceRange", 0, MANY, VT_OBS_REFERENCERANGE),
    E("hasMember", 0, MANY, VT_REFERENCE),
    E("derivedFrom", 0, MANY, VT_REFERENCE),
    E("component", 0, MANY, VT_OBS_COMPONENT),
    END,
};

static const vdef_elem_t el_obs_reference_range[] = {
    E("low", 0, ONE, VT_SIMPLEQUANTITY),
    E("high", 0, ONE, VT_SIMPLEQUANTITY),
    E("type", 0, ONE, VT_CODEABLECONCEPT),
    E("appliesTo", 0, MANY, VT_CODEABLECONCEPT),
    E("age", 0, ONE, VT_RANGE),
    E("text", 0, ONE, VT_STRING),
    END,
};

static const vdef_elem_t el_obs_component[] = {
    E("code", 1, ONE, VT_CODEABLECONCEPT),
    C("value", 0, ch_obs_value),
    E("dataAbsentReason", 0, ONE, VT_CODEABLECONCEPT),
    E("interpretation", 0, MANY, VT_CODEABLECONCEPT),
    E("referenceRange", 0, MANY, VT_OBS_REFERENCERANGE),
    END,
};

/* ------------------------------------------------------------------------
 * Patient, Practitioner, Organization, Device
 * ---------------------------------------------------------------------- */

static const vdef_elem_t el_patient[] = {
    E("identifier", 0, MANY, VT_IDENTIFIER),
    E("active", 0, ONE, VT_BOOLEAN),
    E("name", 0, MANY, VT_HUMANNAME),
    E("telecom", 0, MANY, VT_CONTACTPOINT),
    B("gender", 0, ONE, gender),
    E("birthDate", 0, ONE, VT_DATE),
    C("deceased", 0, ch_pat_deceased),
    E("address", 0, MANY, VT_ADDRESS),
    E("maritalStatus", 0, ONE, VT_CODEABLECONCEPT),
    C("multipleBirth", 0, ch_pat_multiple_birth),
    E("photo", 0, MANY, VT_ATTACHMENT),
    E("contact", 0, MANY, VT_PAT_CONTACT),
    E("communication", 0, MANY, VT_PAT_COMMUNICATION),
    E("generalPractitioner", 0, MANY, VT_REFERENCE),
    E("managingOrganization", 0, ONE, VT_REFERENCE),
    E("link", 0, MANY, VT_PAT_LINK),
    END,
};

static const vdef_elem_t el_pat_contact[] = {
    E("relationship", 0, MANY, VT_CODEABLECONCEPT),
    E("name", 0, ONE, VT_HUMANNAME),
    E("telecom", 0, MANY, VT_CONTACTPOINT),
    E("address", 0, ONE, VT_ADDRESS),
    B("gender", 0, ONE, gender),
    E("organization", 0, ONE, VT_REFERENCE),
    E("period", 0, ONE, VT_PERIOD),
    END,
};

static const vdef_elem_t el_pat_communication[] = {
    E("language", 1, ONE, VT_CODEABLECONCEPT),
    E("preferred", 0, ONE, VT_BOOLEAN),
    END,
};

static const vdef_elem_t el_pat_link[] = {
    E("other", 1, ONE, VT_REFERENCE),
    B("type", 1, ONE, link_type),
    END,
};

static const vdef_elem_t el_practitioner[] = {
    E("identifier", 0, MANY, VT_IDENTIFIER),
    E("active", 0, ONE, VT_BOOLEAN),
    E("name", 0, MANY, VT_HUMANNAME),
    E("telecom", 0, MANY, VT_CONTACTPOINT),
    E("address", 0, MANY, VT_ADDRESS),
    B("gender", 0, ONE, gender),
    E("birthDate", 0, ONE, VT_DATE),
    E("photo", 0, MANY, VT_ATTACHMENT),
    E("qualification", 0, MANY, VT_PRAC_QUALIFICATION),
    E("communication", 0, MANY, VT_CODEABLECONCEPT),
    END,
};

static const vdef_elem_t el_prac_qualification[] = {
    E("identifier", 0, MANY, VT_IDENTIFIER),
    E("code", 1, ONE, VT_CODEABLECONCEPT),
    E("period", 0, ONE, VT_PERIOD),
    E("issuer", 0, ONE, VT_REFERENCE),
    END,
};

static const vdef_elem_t el_organization[] = {
    E("identifier", 0, MANY, VT_IDENTIFIER),
    E("active", 0, ONE, VT_BOOLEAN),
    E("type", 0, MANY, VT_CODEABLECONCEPT),
    E("name", 0, ONE, VT_STRING),
    E("alias", 0, MANY, VT_STRING),
    E("telecom", 0, MANY, VT_CONTACTPOINT),
    E("address", 0, MANY, VT_ADDRESS),
    E("partOf", 0, ONE, VT_REFERENCE),
    E("contact", 0, MANY, VT_ORG_CONTACT),
    E("endpoint", 0, MANY, VT_REFERENCE),
    END,
};

static const vdef_elem_t el_org_contact[] = {
    E("purpose", 0, ONE, VT_CODEABLECONCEPT),
    E("name", 0, ONE, VT_HUMANNAME),
    E("telecom", 0, MANY, VT_CONTACTPOINT),
    E("address", 0, ONE, VT_ADDRESS),
    END,
};

static const vdef_elem_t el_device[] = {
    E("identifier", 0, MANY, VT_IDENTIFIER),
    E("definition", 0, ONE, VT_REFERENCE),
    E("udiCarrier", 0, MANY, VT_DEV_UDICARRIER),
    B("status", 0, ONE, device_status),
    E("statusReason", 0, MANY, VT_CODEABLECONCEPT),
    E("distinctIdentifier", 0, ONE, VT_STRING),
    E("manufacturer", 0, ONE, VT_STRING),
    E("manufactureDate", 0, ONE, VT_DATETIME),
    E("expirationDate", 0, ONE, VT_DATETIME),
    E("lotNumber", 0, ONE, VT_STRING),
    E("serialNumber", 0, ONE, VT_STRING),
    E("deviceName", 0, MANY, VT_DEV_DEVICENAME),
    E("modelNumber", 0, ONE, VT_STRING),
    E("partNumber", 0, ONE, VT_STRING),
    E("type", 0, ONE, VT_CODEABLECONCEPT),
    E("specialization", 0, MANY, VT_DEV_SPECIALIZATION),
    E("version", 0, MANY, VT_DEV_VERSION),
    E("property", 0, MANY, VT_DEV_PROPERTY),
    E("patient", 0, ONE, VT_REFERENCE),
    E("owner", 0, ONE, VT_REFERENCE),
    E("contact", 0, MANY, VT_CONTACTPOINT),
    E("location", 0, ONE, VT_REFERENCE),
    E("url", 0, ONE, VT_URI),
    E("note", 0, MANY, VT_ANNOTATION),
    E("safety", 0, MANY, VT_CODEABLECONCEPT),
    E("parent", 0, ONE, VT_REFERENCE),
    END,
};

static const vdef_elem_t el_dev_udi_carrier[] = {
    E("deviceIdentifier", 0, ONE, VT_STRING),
    E("issuer", 0, ONE, VT_URI),
    E("jurisdiction", 0, ONE, VT_URI),
    E("carrierAIDC", 0, ONE, VT_BASE64BINARY),
    E("carrierHRF", 0, ONE, VT_STRING),
    B("entryType", 0, ONE, udi_entry_type),
    END,
};

static const vdef_elem_t el_dev_device_name[] = {
    E("name", 1, ONE, VT_STRING),
    B("type", 1, ONE, device_name_type),
    END,
};

static const vdef_elem_t el_dev_specialization[] = {
    E("systemType", 1, ONE, VT_CODEABLECONCEPT),
    E("version", 0, ONE, VT_STRING),
    END,
};

static const vdef_elem_t el_dev_version[] = {
    E("type", 0, ONE, VT_CODEABLECONCEPT),
    E("component", 0, ONE, VT_IDENTIFIER),
    E("value", 1, ONE, VT_STRING),
    END,
};

/* Not a choice: R4 names these two repeating elements valueQuantity and
 * valueCode. */
static const vdef_elem_t el_dev_property[] = {
    E("type", 1, ONE, VT_CODEABLECONCEPT),
    E("valueQuantity", 0, MANY, VT_QUANTITY),
    E("valueCode", 0, MANY, VT_CODEABLECONCEPT),
    END,
};

/* ------------------------------------------------------------------------
 * Invariants
 * ---------------------------------------------------------------------- */

/* ext-1: extension.exists() != value.exists() */
static void check_extension(vctx_t *c, const json_t *obj)
{
    int has_ext = vl_vget(obj, "extension") != NULL;
    int has_value = vl_vchoice_key(obj, "value") != NULL;
    if (has_ext == has_value)
        vfail(c, 400, "invariant", NULL,
              "ext-1: an extension must have either extensions or value[x], not both");
}

/* qty-3: code.empty() or system.exists() */
static void check_quantity(vctx_t *c, const json_t *obj)
{
    if (vl_vget(obj, "code") && !vl_vget(obj, "system"))
        vfail(c, 400, "invariant", NULL,
              "qty-3: if a code for the unit is present, the system must also be present");
}

/* sqty-1: comparator.empty(), plus the Quantity rules */
static void check_simple_quantity(vctx_t *c, const json_t *obj)
{
    if (vl_vget(obj, "comparator"))
        vfail(c, 400, "invariant", "comparator",
              "sqty-1: a SimpleQuantity must not have a comparator");
    check_quantity(c, obj);
}

/* rng-2: low.empty() or high.empty() or (low <= high) */
static void check_range(vctx_t *c, const json_t *obj)
{
    const json_t *lo = vl_vget(vl_vget(obj, "low"), "value");
    const json_t *hi = vl_vget(vl_vget(obj, "high"), "value");
    if (lo && hi && vl_vdecimal_cmp(lo, hi) == 1)
        vfail(c, 400, "invariant", NULL, "rng-2: the low limit must not exceed the high limit");
}

/* rat-1: (numerator.empty() xor denominator.exists()) and
 *        (numerator.exists() or extension.exists()) */
static void check_ratio(vctx_t *c, const json_t *obj)
{
    int n = vl_vget(obj, "numerator") != NULL, d = vl_vget(obj, "denominator") != NULL;
    if (n != d || (!n && !vl_vget(obj, "extension")))
        vfail(c, 400, "invariant", NULL,
              "rat-1: numerator and denominator must both be present, or both absent "
              "with an extension");
}

/* per-1: start <= end (compared on the instants they denote) */
static void check_period(vctx_t *c, const json_t *obj)
{
    const char *s = vl_vstr(obj, "start"), *e = vl_vstr(obj, "end");
    int64_t slo, shi, elo, ehi;
    if (s && e && vl_vdatetime_valid(s) && vl_vdatetime_valid(e) &&
        vl_time_parse_range(s, &slo, &shi, NULL) == 0 &&
        vl_time_parse_range(e, &elo, &ehi, NULL) == 0 && slo >= ehi)
        vfail(c, 400, "invariant", NULL, "per-1: the period's start must not be after its end");
}

/* att-1: data.empty() or contentType.exists() */
static void check_attachment(vctx_t *c, const json_t *obj)
{
    if (vl_vget(obj, "data") && !vl_vget(obj, "contentType"))
        vfail(c, 400, "invariant", NULL, "att-1: an attachment with data must have a contentType");
}

/* cpt-2: value.empty() or system.exists() */
static void check_contact_point(vctx_t *c, const json_t *obj)
{
    if (vl_vget(obj, "value") && !vl_vget(obj, "system"))
        vfail(c, 400, "invariant", NULL, "cpt-2: a contact point with a value must have a system");
}

/* Reference.reference syntax, and ref-1: a local reference "#id" must
 * resolve to a contained resource ("#" alone is the container itself). */
static void check_reference(vctx_t *c, const json_t *obj)
{
    const char *ref = vl_vstr(obj, "reference");
    char type[64];
    int local = 0;
    if (!ref)
        return;
    if (!vl_vref_parse(ref, type, sizeof type, &local)) {
        vfail(c, 400, "value", "reference",
              "Invalid reference '%.80s': expected Type/id[/_history/vid], an absolute URL, "
              "#contained-id, urn:uuid: or urn:oid:",
              ref);
        return;
    }
    if (local && ref[1] != '\0' && !vl_vcontained_has(c, ref + 1))
        vfail(c, 400, "invariant", "reference",
              "ref-1: local reference '%.80s' does not match a contained resource", ref);
}

/* txt-1/txt-2, shallowly: the div is an XHTML div element. */
static void check_narrative(vctx_t *c, const json_t *obj)
{
    const char *div = vl_vstr(obj, "div");
    size_t n;
    if (!div)
        return;
    n = strlen(div);
    if (strncmp(div, "<div", 4) != 0 ||
        (div[4] != ' ' && div[4] != '>' && div[4] != '\t' && div[4] != '\n' && div[4] != '\r' &&
         div[4] != '/') ||
        n < 6 || (strcmp(div + n - 6, "</div>") != 0 && strcmp(div + n - 2, "/>") != 0))
        vfail(c, 400, "invariant", "div", "txt-1: the narrative must be an XHTML <div> element");
    else if (!strstr(div, "http://www.w3.org/1999/xhtml"))
        vfail(c, 400, "invariant", "div",
              "txt-1: the narrative <div> must be in the XHTML namespace "
              "(xmlns=\"http://www.w3.org/1999/xhtml\")");
}

/* obs-3: low.exists() or high.exists() or text.exists() */
static void check_obs_reference_range(vctx_t *c, const json_t *obj)
{
    if (!vl_vget(obj, "low") && !vl_vget(obj, "high") && !vl_vget(obj, "text"))
        vfail(c, 400, "invariant", NULL,
              "obs-3: a reference range must have at least a low, a high or a text");
}

/* True if CodeableConcepts a and b share a Coding (FHIRPath intersect:
 * equal Codings, all properties compared). */
static int codings_intersect(const json_t *a, const json_t *b)
{
    const json_t *ca = vl_vget(a, "coding"), *cb = vl_vget(b, "coding");
    const json_t *x, *y;
    size_t i, j;
    if (!json_is_array(ca) || !json_is_array(cb))
        return 0;
    json_array_foreach (ca, i, x) {
        json_array_foreach (cb, j, y) {
            if (json_equal((json_t *)x, (json_t *)y))
                return 1;
        }
    }
    return 0;
}

/* Observation: obs-6 and obs-7. */
static void check_observation(vctx_t *c, const json_t *obj)
{
    const json_t *comp = vl_vget(obj, "component"), *item;
    size_t i;

    /* obs-6: dataAbsentReason.empty() or value.empty() */
    if (vl_vget(obj, "dataAbsentReason") && vl_vchoice_key(obj, "value"))
        vfail(c, 400, "invariant", "dataAbsentReason",
              "obs-6: dataAbsentReason must only be present if value[x] is not present");

    /* obs-7: value.empty() or
     * component.code.where(coding.intersect(%resource.code.coding)
     * .exists()).empty() */
    if (vl_vchoice_key(obj, "value") && json_is_array(comp)) {
        json_array_foreach (comp, i, item) {
            if (codings_intersect(vl_vget(item, "code"), vl_vget(obj, "code"))) {
                size_t old = vpath_push(c, "component");
                vpath_push_index(c, i);
                vfail(c, 400, "invariant", "code",
                      "obs-7: if Observation.code is the same as a component code, "
                      "the Observation must not have a value[x]");
                vpath_pop(c, old);
            }
        }
    }
}

/* pat-1: name.exists() or telecom.exists() or address.exists() or
 *        organization.exists() */
static void check_pat_contact(vctx_t *c, const json_t *obj)
{
    if (!vl_vget(obj, "name") && !vl_vget(obj, "telecom") && !vl_vget(obj, "address") &&
        !vl_vget(obj, "organization"))
        vfail(c, 400, "invariant", NULL,
              "pat-1: a contact must have a name, telecom, address or organization");
}

/* ------------------------------------------------------------------------
 * Consent (R4: hl7.org/fhir/R4/consent.html)
 * ---------------------------------------------------------------------- */

static const char *const consent_status[] = {"draft",    "proposed",         "active", "rejected",
                                             "inactive", "entered-in-error", NULL};
static const char *const consent_provision_type[] = {"deny", "permit", NULL};
static const char *const consent_data_meaning[] = {"instance", "related", "dependents",
                                                   "authoredby", NULL};
static const vt_t ch_consent_source[] = {VT_ATTACHMENT, VT_REFERENCE, VT_NONE};

static const vdef_elem_t el_consent[] = {
    E("identifier", 0, MANY, VT_IDENTIFIER),
    B("status", 1, ONE, consent_status),
    E("scope", 1, ONE, VT_CODEABLECONCEPT),
    E("category", 1, MANY, VT_CODEABLECONCEPT),
    E("patient", 0, ONE, VT_REFERENCE),
    E("dateTime", 0, ONE, VT_DATETIME),
    E("performer", 0, MANY, VT_REFERENCE),
    E("organization", 0, MANY, VT_REFERENCE),
    C("source", 0, ch_consent_source),
    E("policy", 0, MANY, VT_CONSENT_POLICY),
    E("policyRule", 0, ONE, VT_CODEABLECONCEPT),
    E("verification", 0, MANY, VT_CONSENT_VERIFICATION),
    E("provision", 0, ONE, VT_CONSENT_PROVISION),
    END,
};

static const vdef_elem_t el_consent_policy[] = {
    E("authority", 0, ONE, VT_URI),
    E("uri", 0, ONE, VT_URI),
    END,
};

static const vdef_elem_t el_consent_verification[] = {
    E("verified", 1, ONE, VT_BOOLEAN),
    E("verifiedWith", 0, ONE, VT_REFERENCE),
    E("verificationDate", 0, ONE, VT_DATETIME),
    END,
};

/* Consent.provision; provision.provision is the same element (R4
 * contentReference #Consent.provision), to any depth */
static const vdef_elem_t el_consent_provision[] = {
    B("type", 0, ONE, consent_provision_type),
    E("period", 0, ONE, VT_PERIOD),
    E("actor", 0, MANY, VT_CONSENT_ACTOR),
    E("action", 0, MANY, VT_CODEABLECONCEPT),
    E("securityLabel", 0, MANY, VT_CODING),
    E("purpose", 0, MANY, VT_CODING),
    E("class", 0, MANY, VT_CODING),
    E("code", 0, MANY, VT_CODEABLECONCEPT),
    E("dataPeriod", 0, ONE, VT_PERIOD),
    E("data", 0, MANY, VT_CONSENT_DATA),
    E("provision", 0, MANY, VT_CONSENT_PROVISION),
    END,
};

static const vdef_elem_t el_consent_actor[] = {
    E("role", 1, ONE, VT_CODEABLECONCEPT),
    E("reference", 1, ONE, VT_REFERENCE),
    END,
};

static const vdef_elem_t el_consent_data[] = {
    B("meaning", 1, ONE, consent_data_meaning),
    E("reference", 1, ONE, VT_REFERENCE),
    END,
};

/* Whether some coding of the CodeableConcept `cc` has code `code` in the
 * consent-scope code system (or no system). */
static int scope_is(const json_t *cc, const char *code)
{
    const json_t *codings = vl_vget(cc, "coding"), *item;
    size_t i;
    json_array_foreach (codings, i, item) {
        const char *sys = json_string_value(vl_vget(item, "system"));
        const char *c = json_string_value(vl_vget(item, "code"));
        if (c && !strcmp(c, code) &&
            (!sys || !strcmp(sys, "http://terminology.hl7.org/CodeSystem/consentscope")))
            return 1;
    }
    return 0;
}

/* ppc-1: policy.exists() or policyRule.exists()
 * ppc-2..5: patient.exists() when the scope is patient-privacy, research,
 * adr or treatment. R4 writes these four with system='something' (an error
 * of the publication that makes them never fire); they are checked here
 * with the consent-scope code system the scope is bound to. */
static void check_consent(vctx_t *c, const json_t *obj)
{
    static const struct {
        const char *id, *code;
    } scoped[] = {{"ppc-2", "patient-privacy"},
                  {"ppc-3", "research"},
                  {"ppc-4", "adr"},
                  {"ppc-5", "treatment"}};
    const json_t *scope = vl_vget(obj, "scope");
    if (!vl_vget(obj, "policy") && !vl_vget(obj, "policyRule"))
        vfail(c, 400, "invariant", NULL,
              "ppc-1: a Consent needs a policy or a policyRule (Consent.policy, "
              "Consent.policyRule)");
    if (vl_vget(obj, "patient"))
        return;
    for (size_t i = 0; scope && i < sizeof scoped / sizeof scoped[0]; i++)
        if (scope_is(scope, scoped[i].code))
            vfail(c, 400, "invariant", "patient", "%s: a Consent of scope %s needs a patient",
                  scoped[i].id, scoped[i].code);
}

/* org-1: (identifier.count() + name.count()) > 0 */
static void check_organization(vctx_t *c, const json_t *obj)
{
    if (!vl_vget(obj, "identifier") && !vl_vget(obj, "name"))
        vfail(c, 400, "invariant", NULL,
              "org-1: an organization must have at least a name or an identifier");
}

/* ------------------------------------------------------------------------
 * The type registry
 * ---------------------------------------------------------------------- */

#define PRIM(t, n) [t] = {n, VK_PRIMITIVE, NULL, NULL}
#define DT(t, n, el, chk) [t] = {n, VK_DATATYPE, el, chk}
#define BB(t, n, el, chk) [t] = {n, VK_BACKBONE, el, chk}
#define OPAQUE(t, n) [t] = {n, VK_OPAQUE, NULL, NULL}
#define RES(t, n, el, chk) [t] = {n, VK_RESOURCE, el, chk}

const vdef_type_t vl_vdefs[VT__COUNT] = {
    PRIM(VT_BOOLEAN, "boolean"),
    PRIM(VT_INTEGER, "integer"),
    PRIM(VT_POSITIVEINT, "positiveInt"),
    PRIM(VT_UNSIGNEDINT, "unsignedInt"),
    PRIM(VT_DECIMAL, "decimal"),
    PRIM(VT_STRING, "string"),
    PRIM(VT_MARKDOWN, "markdown"),
    PRIM(VT_CODE, "code"),
    PRIM(VT_ID, "id"),
    PRIM(VT_URI, "uri"),
    PRIM(VT_URL, "url"),
    PRIM(VT_CANONICAL, "canonical"),
    PRIM(VT_OID, "oid"),
    PRIM(VT_UUID, "uuid"),
    PRIM(VT_BASE64BINARY, "base64Binary"),
    PRIM(VT_DATE, "date"),
    PRIM(VT_DATETIME, "dateTime"),
    PRIM(VT_INSTANT, "instant"),
    PRIM(VT_TIME, "time"),
    PRIM(VT_XHTML, "xhtml"),

    DT(VT_ELEMENT, "Element", el_element, NULL),
    DT(VT_EXTENSION, "Extension", el_extension, check_extension),
    DT(VT_CODING, "Coding", el_coding, NULL),
    DT(VT_CODEABLECONCEPT, "CodeableConcept", el_codeable_concept, NULL),
    DT(VT_QUANTITY, "Quantity", el_quantity, check_quantity),
    DT(VT_SIMPLEQUANTITY, "SimpleQuantity", el_quantity, check_simple_quantity),
    DT(VT_AGE, "Age", el_quantity, check_quantity),
    DT(VT_COUNT, "Count", el_quantity, check_quantity),
    DT(VT_DISTANCE, "Distance", el_quantity, check_quantity),
    DT(VT_DURATION, "Duration", el_quantity, check_quantity),
    DT(VT_MONEY, "Money", el_money, NULL),
    DT(VT_RANGE, "Range", el_range, check_range),
    DT(VT_RATIO, "Ratio", el_ratio, check_ratio),
    DT(VT_PERIOD, "Period", el_period, check_period),
    DT(VT_SAMPLEDDATA, "SampledData", el_sampled_data, NULL),
    DT(VT_IDENTIFIER, "Identifier", el_identifier, NULL),
    DT(VT_REFERENCE, "Reference", el_reference, check_reference),
    DT(VT_ANNOTATION, "Annotation", el_annotation, NULL),
    DT(VT_ATTACHMENT, "Attachment", el_attachment, check_attachment),
    DT(VT_HUMANNAME, "HumanName", el_human_name, NULL),
    DT(VT_ADDRESS, "Address", el_address, NULL),
    DT(VT_CONTACTPOINT, "ContactPoint", el_contact_point, check_contact_point),
    DT(VT_TIMING, "Timing", el_timing, NULL),
    DT(VT_TIMING_REPEAT, "Element", el_timing_repeat, NULL),
    DT(VT_META, "Meta", el_meta, NULL),
    DT(VT_NARRATIVE, "Narrative", el_narrative, check_narrative),

    OPAQUE(VT_SIGNATURE, "Signature"),
    OPAQUE(VT_CONTACTDETAIL, "ContactDetail"),
    OPAQUE(VT_CONTRIBUTOR, "Contributor"),
    OPAQUE(VT_DATAREQUIREMENT, "DataRequirement"),
    OPAQUE(VT_EXPRESSION, "Expression"),
    OPAQUE(VT_PARAMETERDEFINITION, "ParameterDefinition"),
    OPAQUE(VT_RELATEDARTIFACT, "RelatedArtifact"),
    OPAQUE(VT_TRIGGERDEFINITION, "TriggerDefinition"),
    OPAQUE(VT_USAGECONTEXT, "UsageContext"),
    OPAQUE(VT_DOSAGE, "Dosage"),

    BB(VT_OBS_REFERENCERANGE, "BackboneElement", el_obs_reference_range, check_obs_reference_range),
    BB(VT_OBS_COMPONENT, "BackboneElement", el_obs_component, NULL),
    BB(VT_PAT_CONTACT, "BackboneElement", el_pat_contact, check_pat_contact),
    BB(VT_PAT_COMMUNICATION, "BackboneElement", el_pat_communication, NULL),
    BB(VT_PAT_LINK, "BackboneElement", el_pat_link, NULL),
    BB(VT_PRAC_QUALIFICATION, "BackboneElement", el_prac_qualification, NULL),
    BB(VT_ORG_CONTACT, "BackboneElement", el_org_contact, NULL),
    BB(VT_DEV_UDICARRIER, "BackboneElement", el_dev_udi_carrier, NULL),
    BB(VT_DEV_DEVICENAME, "BackboneElement", el_dev_device_name, NULL),
    BB(VT_DEV_SPECIALIZATION, "BackboneElement", el_dev_specialization, NULL),
    BB(VT_DEV_VERSION, "BackboneElement", el_dev_version, NULL),
    BB(VT_DEV_PROPERTY, "BackboneElement", el_dev_property, NULL),
    BB(VT_CONSENT_POLICY, "BackboneElement", el_consent_policy, NULL),
    BB(VT_CONSENT_VERIFICATION, "BackboneElement", el_consent_verification, NULL),
    BB(VT_CONSENT_PROVISION, "BackboneElement", el_consent_provision, NULL),
    BB(VT_CONSENT_ACTOR, "BackboneElement", el_consent_actor, NULL),
    BB(VT_CONSENT_DATA, "BackboneElement", el_consent_data, NULL),

    RES(VT_RESOURCE, "Resource", NULL, NULL),
    RES(VT_OBSERVATION, "Observation", el_observation, check_observation),
    RES(VT_PATIENT, "Patient", el_patient, NULL),
    RES(VT_PRACTITIONER, "Practitioner", el_practitioner, NULL),
    RES(VT_ORGANIZATION, "Organization", el_organization, check_organization),
    RES(VT_DEVICE, "Device", el_device, NULL),
    RES(VT_CONSENT, "Consent", el_consent, check_consent),
    RES(VT_OTHER_RESOURCE, "Resource", NULL, NULL),
};
