/*
 * vitalog — fhir: the FHIR R4 vital-signs profiles.
 *
 * Source: the R4 (4.0.1) StructureDefinitions in
 * shared/data/fhir/r4-vitalsigns/ (the R4 publication) (vitalsigns, vitalspanel, resprate,
 * heartrate, oxygensat, bodytemp, bodyheight, headcircum, bodyweight, bmi,
 * bp) and their UCUM value sets.
 *
 * When it applies: the Observation claims one of those profiles in
 * meta.profile (a "|version" suffix is ignored), or it carries the
 * category observation-category#vital-signs. Then the rules of the base
 * "vitalsigns" profile apply:
 *
 *   - category: one CodeableConcept with the vital-signs coding (VSCat 1..1)
 *   - subject 1..1, Reference(Patient)
 *   - effective[x] 1..1, dateTime or Period; vs-1: a dateTime has at
 *     least 8 characters ("($this as dateTime).toString().length() >= 8")
 *   - vs-2: (component.empty() and hasMember.empty()) implies
 *           (dataAbsentReason.exists() or value.exists())
 *   - vs-3: each component: value.exists() or dataAbsentReason.exists()
 *
 * and, for each specific profile that is claimed or whose LOINC code is in
 * Observation.code.coding, the rows of vs_specific[]: the LOINC code is
 * required (when claimed), value[x] is only valueQuantity and its value,
 * unit, system (http://unitsofmeasure.org) and code (from the UCUM list)
 * are all present; bmi requires the value; bp has no value[x] and needs
 * the systolic (8480-6) and diastolic (8462-4) components, each with an
 * mm[Hg] valueQuantity when it has a value; vitalspanel has no value[x]
 * and at least one hasMember.
 *
 * Every issue is 422 (the resource is valid FHIR but breaks the profile).
 */
#include <string.h>

#include "validate_internal.h"

#define VS_BASE "http://hl7.org/fhir/StructureDefinition/"
#define LOINC "http://loinc.org"
#define UCUM "http://unitsofmeasure.org"
#define OBS_CATEGORY "http://terminology.hl7.org/CodeSystem/observation-category"

typedef enum { VS_QUANTITY, VS_BP, VS_PANEL } vs_kind_t;

typedef struct vs_profile {
    const char *name;  /* StructureDefinition id (URL is VS_BASE + name) */
    const char *loinc; /* the "magic value" in Observation.code */
    vs_kind_t kind;
    int value_required;         /* value[x]:valueQuantity min 1 (bmi) */
    const char *const units[4]; /* allowed UCUM codes, NULL-terminated */
} vs_profile_t;

static const vs_profile_t vs_specific[] = {
    {"vitalspanel", "85353-1", VS_PANEL, 0, {NULL}},
    {"resprate", "9279-1", VS_QUANTITY, 0, {"/min", NULL}},
    {"heartrate", "8867-4", VS_QUANTITY, 0, {"/min", NULL}},
    {"oxygensat", "2708-6", VS_QUANTITY, 0, {"%", NULL}},
    {"bodytemp", "8310-5", VS_QUANTITY, 0, {"Cel", "[degF]", NULL}},
    {"bodyheight", "8302-2", VS_QUANTITY, 0, {"cm", "[in_i]", NULL}},
    {"headcircum", "9843-4", VS_QUANTITY, 0, {"cm", "[in_i]", NULL}},
    {"bodyweight", "29463-7", VS_QUANTITY, 0, {"g", "kg", "[lb_av]", NULL}},
    {"bmi", "39156-5", VS_QUANTITY, 1, {"kg/m2", NULL}},
    {"bp", "85354-9", VS_BP, 0, {"mm[Hg]", NULL}},
};

#define VS_N (sizeof vs_specific / sizeof vs_specific[0])

static const vs_profile_t bp_systolic = {"bp", "8480-6", VS_QUANTITY, 0, {"mm[Hg]", NULL}};
static const vs_profile_t bp_diastolic = {"bp", "8462-4", VS_QUANTITY, 0, {"mm[Hg]", NULL}};

/* True if canonical `url` (optionally "|version") is VS_BASE + name. */
static int canonical_is(const char *url, const char *name)
{
    size_t b = strlen(VS_BASE), n = strlen(name);
    return strncmp(url, VS_BASE, b) == 0 && strncmp(url + b, name, n) == 0 &&
           (url[b + n] == '\0' || url[b + n] == '|');
}

/* True if meta.profile claims `name`. */
static int claims(const json_t *obs, const char *name)
{
    const json_t *profiles = vl_vget(vl_vget(obs, "meta"), "profile"), *p;
    size_t i;
    if (!json_is_array(profiles))
        return 0;
    json_array_foreach (profiles, i, p) {
        if (vl_json_is_string(p) && canonical_is(json_string_value(p), name))
            return 1;
    }
    return 0;
}

static int has_vs_category(const json_t *obs)
{
    const json_t *cats = vl_vget(obs, "category"), *cc;
    size_t i;
    if (!json_is_array(cats))
        return 0;
    json_array_foreach (cats, i, cc) {
        if (vl_vcc_has(cc, OBS_CATEGORY, "vital-signs"))
            return 1;
    }
    return 0;
}

static int is_in(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* The valueQuantity rules of a specific profile, at the current path (the
 * Observation or a component). */
static void check_quantity_value(vctx_t *c, const json_t *obj, const vs_profile_t *p)
{
    const char *key = vl_vchoice_key(obj, "value");
    const json_t *q;
    const char *system, *code;
    size_t old;

    if (!key) {
        if (p->value_required)
            vfail(c, 422, "required", "valueQuantity", "Profile %s: valueQuantity is required",
                  p->name);
        return;
    }
    if (strcmp(key, "valueQuantity") != 0) {
        vfail(c, 422, "structure", key, "Profile %s: value[x] must be a valueQuantity", p->name);
        return;
    }
    q = vl_vget(obj, key);
    if (!json_is_object(q))
        return; /* reported by the base walk */
    old = vpath_push(c, "valueQuantity");
    if (!vl_vget(q, "value"))
        vfail(c, 422, "required", "value", "Profile %s: valueQuantity.value is required", p->name);
    if (!vl_vget(q, "unit"))
        vfail(c, 422, "required", "unit", "Profile %s: valueQuantity.unit is required", p->name);
    system = vl_vstr(q, "system");
    if (!system)
        vfail(c, 422, "required", "system",
              "Profile %s: valueQuantity.system is required (" UCUM ")", p->name);
    else if (strcmp(system, UCUM) != 0)
        vfail(c, 422, "value", "system", "Profile %s: valueQuantity.system must be " UCUM, p->name);
    code = vl_vstr(q, "code");
    if (!code) {
        vfail(c, 422, "required", "code", "Profile %s: valueQuantity.code is required", p->name);
    } else if (!is_in(code, p->units)) {
        char allowed[64] = "";
        for (const char *const *u = p->units; *u; u++) {
            if (u != p->units)
                strncat(allowed, ", ", sizeof allowed - strlen(allowed) - 1);
            strncat(allowed, *u, sizeof allowed - strlen(allowed) - 1);
        }
        vfail(c, 422, "code-invalid", "code",
              "Profile %s: unit '%.40s' is not allowed for LOINC %s (UCUM %s)", p->name, code,
              p->loinc, allowed);
    }
    vpath_pop(c, old);
}

static void check_no_value(vctx_t *c, const json_t *obs, const vs_profile_t *p)
{
    const char *key = vl_vchoice_key(obs, "value");
    if (key)
        vfail(c, 422, "structure", key, "Profile %s: the Observation must not have a value[x]",
              p->name);
}

static void check_bp(vctx_t *c, const json_t *obs, const vs_profile_t *p)
{
    const json_t *comps = vl_vget(obs, "component"), *comp;
    const vs_profile_t *parts[2] = {&bp_systolic, &bp_diastolic};
    size_t i;

    check_no_value(c, obs, p);
    if (!json_is_array(comps) || json_array_size(comps) < 2)
        vfail(c, 422, "required", "component",
              "Profile bp: at least two components (systolic 8480-6 and diastolic 8462-4) "
              "are required");
    for (int k = 0; k < 2; k++) {
        int count = 0;
        if (json_is_array(comps)) {
            json_array_foreach (comps, i, comp) {
                if (vl_vcc_has(vl_vget(comp, "code"), LOINC, parts[k]->loinc)) {
                    size_t old = vpath_push(c, "component");
                    vpath_push_index(c, i);
                    count++;
                    check_quantity_value(c, comp, parts[k]);
                    vpath_pop(c, old);
                }
            }
        }
        if (count != 1)
            vfail(c, 422, count ? "structure" : "required", "component",
                  "Profile bp: exactly one component with code " LOINC "#%s is required "
                  "(found %d)",
                  parts[k]->loinc, count);
    }
}

void vl_vvitals_check(vctx_t *c, const json_t *obs)
{
    const json_t *comps = vl_vget(obs, "component"), *comp;
    const char *eff, *status = vl_vstr(obs, "status");
    int claimed_any = 0, applies;
    size_t i;

    claimed_any = claims(obs, "vitalsigns");
    for (i = 0; i < VS_N; i++)
        claimed_any |= claims(obs, vs_specific[i].name);
    applies = claimed_any || has_vs_category(obs);
    /* Leniency (Observation-f202): a retracted record that only carries
     * the category is not held to the profile. */
    if (!claimed_any && status && strcmp(status, "entered-in-error") == 0)
        applies = 0;
    if (!applies)
        return;

    if (!has_vs_category(obs))
        vfail(c, 422, "required", "category",
              "Vital-signs profile: a category with " OBS_CATEGORY "#vital-signs is required");

    if (!vl_vget(obs, "subject")) {
        vfail(c, 422, "required", "subject", "Vital-signs profile: subject is required");
    } else {
        const json_t *subj = vl_vget(obs, "subject");
        const char *ref = vl_vstr(subj, "reference"), *type = vl_vstr(subj, "type");
        char rtype[64];
        int local;
        if (ref && vl_vref_parse(ref, rtype, sizeof rtype, &local) && rtype[0] &&
            strcmp(rtype, "Patient") != 0)
            vfail(c, 422, "value", "subject.reference",
                  "Vital-signs profile: subject must reference a Patient, not %s", rtype);
        else if (type && strcmp(type, "Patient") != 0 && strcmp(type, VS_BASE "Patient") != 0)
            vfail(c, 422, "value", "subject.type",
                  "Vital-signs profile: subject must reference a Patient");
    }

    eff = vl_vchoice_key(obs, "effective");
    if (!eff) {
        vfail(c, 422, "required", "effective[x]",
              "Vital-signs profile: effective[x] (effectiveDateTime or effectivePeriod) is "
              "required");
    } else if (strcmp(eff, "effectiveDateTime") != 0 && strcmp(eff, "effectivePeriod") != 0) {
        vfail(c, 422, "structure", eff,
              "Vital-signs profile: effective[x] must be effectiveDateTime or effectivePeriod");
    } else if (strcmp(eff, "effectiveDateTime") == 0) {
        const char *dt = vl_vstr(obs, eff);
        if (dt && strlen(dt) < 8)
            vfail(c, 422, "invariant", eff,
                  "vs-1: effectiveDateTime must be precise to at least the day");
    }

    if (!comps && !vl_vget(obs, "hasMember") && !vl_vget(obs, "dataAbsentReason") &&
        !vl_vchoice_key(obs, "value"))
        vfail(c, 422, "invariant", NULL,
              "vs-2: without component or hasMember, the Observation must have a value[x] "
              "or a dataAbsentReason");

    if (json_is_array(comps)) {
        json_array_foreach (comps, i, comp) {
            if (!vl_vget(comp, "dataAbsentReason") && !vl_vchoice_key(comp, "value")) {
                size_t old = vpath_push(c, "component");
                vpath_push_index(c, i);
                vfail(c, 422, "invariant", NULL,
                      "vs-3: a component must have a value[x] or a dataAbsentReason");
                vpath_pop(c, old);
            }
        }
    }

    for (i = 0; i < VS_N; i++) {
        const vs_profile_t *p = &vs_specific[i];
        int claimed = claims(obs, p->name);
        int coded = vl_vcc_has(vl_vget(obs, "code"), LOINC, p->loinc);
        if (!claimed && !coded)
            continue;
        if (claimed && !coded)
            vfail(c, 422, "required", "code",
                  "Profile %s: Observation.code must have the coding " LOINC "#%s", p->name,
                  p->loinc);
        switch (p->kind) {
        case VS_QUANTITY: check_quantity_value(c, obs, p); break;
        case VS_BP: check_bp(c, obs, p); break;
        case VS_PANEL:
            check_no_value(c, obs, p);
            if (!vl_vget(obs, "hasMember"))
                vfail(c, 422, "required", "hasMember",
                      "Profile vitalspanel: at least one hasMember is required");
            break;
        }
    }
}
