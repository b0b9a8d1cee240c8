/*
 * Unit tests for src/fhir/types.c (type and parameter tables, the R4 type
 * list), the generated src/fhir/search_params.c and src/fhir/capability.c
 * (the CapabilityStatement).
 *
 * r4_search_parameters.json (next to this file) holds the url, code, type
 * and base of the R4 SearchParameters of the served types and Resource, as
 * scripts/gen-search-params.py copies them from the R4 package; the ctest
 * fhir_search_params_generated keeps it equal to the package.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/fhir.h"

const char *const *vl_fhir_r4_type_list(size_t *n);

static void test_type_find(void **state)
{
    (void)state;
    static const char *const served[] = {"Observation", "Patient", "Device", "Organization",
                                         "Practitioner"};
    for (size_t i = 0; i < 5; i++) {
        const vl_fhir_type_t *t = vl_fhir_type_find(served[i]);
        assert_non_null(t);
        assert_string_equal(t->name, served[i]);
        assert_true(t->interactions & VL_INT_SEARCH);
        assert_true(t->interactions & VL_INT_READ);
        assert_true(t->interactions & VL_INT_CREATE);
        assert_non_null(t->profile);
    }
    assert_null(vl_fhir_type_find("observation"));
    assert_null(vl_fhir_type_find("Encounter"));
    assert_null(vl_fhir_type_find(""));
    assert_null(vl_fhir_type_find(NULL));
}

static void test_param_find(void **state)
{
    (void)state;
    const vl_fhir_type_t *obs = vl_fhir_type_find("Observation");
    const vl_search_param_t *p = vl_fhir_param_find(obs, "patient");
    assert_non_null(p);
    assert_int_equal(p->kind, VL_INDEX_REFERENCE);
    assert_string_equal(p->target, "Patient");
    assert_string_equal(p->paths[0], "subject");
    p = vl_fhir_param_find(obs, "date");
    assert_int_equal(p->kind, VL_INDEX_DATE);
    assert_string_equal(p->paths[0], "effectiveDateTime");
    assert_int_equal(vl_fhir_param_find(obs, "value-quantity")->kind, VL_INDEX_QUANTITY);
    assert_int_equal(vl_fhir_param_find(obs, "code")->kind, VL_INDEX_TOKEN);
    assert_null(vl_fhir_param_find(obs, "_id"));
    assert_null(vl_fhir_param_find(obs, "nope"));
    const vl_fhir_type_t *pat = vl_fhir_type_find("Patient");
    assert_int_equal(vl_fhir_param_find(pat, "name")->kind, VL_INDEX_STRING);
    assert_int_equal(vl_fhir_param_find(pat, "birthdate")->kind, VL_INDEX_DATE);
    assert_null(vl_fhir_param_find(NULL, "code"));
}

/* Table hygiene: unique names, NULL-terminated paths, descriptions. */
static void test_tables_consistent(void **state)
{
    (void)state;
    for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++) {
        assert_true(vl_fhir_is_r4_type(t->name));
        for (const vl_search_param_t *p = t->params; p->name; p++) {
            assert_non_null(p->paths[0]);
            assert_null(p->paths[5]);
            assert_non_null(p->description);
            assert_non_null(p->url);
            assert_non_null(p->expression);
            assert_true(p->name[0] != '_');
            if (p->target) {
                assert_int_equal(p->kind, VL_INDEX_REFERENCE);
                assert_true(vl_fhir_is_r4_type(p->target));
            }
            for (const vl_search_param_t *q = p + 1; q->name; q++)
                if (strcmp(p->name, q->name) == 0)
                    fail_msg("%s: duplicate parameter %s", t->name, p->name);
        }
    }
}

static void test_r4_types(void **state)
{
    (void)state;
    size_t n;
    const char *const *list = vl_fhir_r4_type_list(&n);
    assert_int_equal(n, 146);
    for (size_t i = 1; i < n; i++)
        if (strcmp(list[i - 1], list[i]) >= 0)
            fail_msg("not sorted: %s before %s", list[i - 1], list[i]);
    for (size_t i = 0; i < n; i++)
        assert_true(vl_fhir_is_r4_type(list[i]));
    assert_true(vl_fhir_is_r4_type("Account"));
    assert_true(vl_fhir_is_r4_type("VisionPrescription"));
    assert_true(vl_fhir_is_r4_type("Observation"));
    assert_true(vl_fhir_is_r4_type("Consent"));
    assert_false(vl_fhir_is_r4_type("observation"));
    assert_false(vl_fhir_is_r4_type("Resource"));
    assert_false(vl_fhir_is_r4_type("DomainResource"));
    assert_false(vl_fhir_is_r4_type("DeviceUseStatementX"));
    assert_false(vl_fhir_is_r4_type(""));
    assert_false(vl_fhir_is_r4_type(NULL));
}

static json_t *find_resource(json_t *cs, const char *type)
{
    json_t *res = json_object_get(json_array_get(json_object_get(cs, "rest"), 0), "resource");
    size_t i;
    json_t *r;
    json_array_foreach (res, i, r) {
        if (strcmp(json_string_value(json_object_get(r, "type")), type) == 0)
            return r;
    }
    return NULL;
}

static void test_capability(void **state)
{
    (void)state;
    json_t *cs = vl_fhir_capability("https://example.org/fhir", NULL);
    assert_non_null(cs);
    assert_string_equal(json_string_value(json_object_get(cs, "resourceType")),
                        "CapabilityStatement");
    assert_string_equal(json_string_value(json_object_get(cs, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(cs, "kind")), "instance");
    assert_string_equal(json_string_value(json_object_get(cs, "fhirVersion")), "4.0.1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cs, "software"), "name")),
                        "vitalog");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cs, "software"), "version")), VL_VERSION);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cs, "implementation"), "url")),
        "https://example.org/fhir");
    assert_non_null(json_string_value(json_object_get(cs, "date")));
    json_t *fmt = json_object_get(cs, "format");
    assert_int_equal(json_array_size(fmt), 2);
    json_t *rest = json_array_get(json_object_get(cs, "rest"), 0);
    assert_string_equal(json_string_value(json_object_get(rest, "mode")), "server");
    assert_int_equal(json_array_size(json_object_get(rest, "resource")), 7);

    json_t *obs = find_resource(cs, "Observation");
    assert_non_null(obs);
    assert_int_equal(json_array_size(json_object_get(obs, "interaction")), 9); /* patch too */
    assert_string_equal(json_string_value(json_object_get(obs, "versioning")), "versioned");
    assert_true(json_is_true(json_object_get(obs, "readHistory")));
    assert_true(json_is_true(json_object_get(obs, "updateCreate")));
    assert_true(json_is_true(json_object_get(obs, "conditionalCreate")));
    assert_true(json_is_true(json_object_get(obs, "conditionalUpdate")));
    assert_string_equal(json_string_value(json_object_get(obs, "conditionalDelete")), "single");
    /* the operation table (in its order): $ledger on versions, $lastn and
     * $stats on Observation, $validate on every type, $ingest on
     * Observation, each once (a GET
     * and a POST row are one operation), the standard ones with their
     * HL7 canonical; Bundles and $export at the base */
    {
        json_t *ops = json_object_get(obs, "operation");
        json_t *ri = json_object_get(rest, "interaction");
        static const char *const want[][2] = {
            {"ledger", "http://vitalog.local/fhir/OperationDefinition/ledger"},
            {"lastn", "http://hl7.org/fhir/OperationDefinition/Observation-lastn"},
            {"stats", "http://hl7.org/fhir/OperationDefinition/Observation-stats"},
            {"validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
            {"ingest", "http://vitalog.local/fhir/OperationDefinition/ingest"},
        };
        json_t *pat = json_object_get(find_resource(cs, "Patient"), "operation"), *o;
        json_t *sys = json_object_get(rest, "operation");
        size_t k;
        int everything = 0, export = 0;
        assert_int_equal(json_array_size(ops), 5);
        for (k = 0; k < 5; k++) {
            assert_string_equal(json_string_value(json_object_get(json_array_get(ops, k), "name")),
                                want[k][0]);
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(ops, k), "definition")),
                want[k][1]);
        }
        json_array_foreach (pat, k, o) {
            const char *def = json_string_value(json_object_get(o, "definition"));
            everything +=
                !strcmp(def, "http://hl7.org/fhir/OperationDefinition/Patient-everything");
            export += !strcmp(def, "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
                                   "patient-export");
        }
        assert_int_equal(everything, 1);
        assert_int_equal(export, 1);
        assert_int_equal(json_array_size(sys), 1);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(sys, 0), "definition")),
            "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export");
        /* includes: the reference parameters, and those that may refer here */
        {
            json_t *inc = json_object_get(obs, "searchInclude");
            json_t *rev = json_object_get(find_resource(cs, "Patient"), "searchRevInclude");
            int subject = 0, device = 0, obs_subject = 0, obs_device = 0;
            json_array_foreach (inc, k, o) {
                subject += !strcmp(json_string_value(o), "Observation:subject");
                device += !strcmp(json_string_value(o), "Observation:device");
            }
            json_array_foreach (rev, k, o) {
                obs_subject += !strcmp(json_string_value(o), "Observation:subject");
                obs_device += !strcmp(json_string_value(o), "Observation:device");
            }
            assert_true(subject == 1 && device == 1 && obs_subject == 1 && obs_device == 0);
        }
        assert_int_equal(json_array_size(ri), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(ri, 0), "code")),
                            "transaction");
        assert_string_equal(json_string_value(json_object_get(json_array_get(ri, 1), "code")),
                            "batch");
    }
    json_t *sp = json_object_get(obs, "searchParam");
    size_t nparams = 0;
    const vl_fhir_type_t *t = vl_fhir_type_find("Observation");
    for (const vl_search_param_t *p = t->params; p->name; p++)
        nparams++;
    assert_int_equal(json_array_size(sp), nparams + 2);
    int seen_id = 0, seen_lu = 0, seen_vq = 0;
    size_t i;
    json_t *e;
    json_array_foreach (sp, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *type = json_string_value(json_object_get(e, "type"));
        if (strcmp(name, "_id") == 0 && strcmp(type, "token") == 0)
            seen_id = 1;
        if (strcmp(name, "_lastUpdated") == 0 && strcmp(type, "date") == 0)
            seen_lu = 1;
        if (strcmp(name, "value-quantity") == 0 && strcmp(type, "quantity") == 0)
            seen_vq = 1;
        assert_non_null(json_string_value(json_object_get(e, "documentation")));
    }
    assert_true(seen_id && seen_lu && seen_vq);
    json_decref(cs);

    cs = vl_fhir_capability(NULL, NULL); /* no base URL: no implementation.url */
    assert_null(json_object_get(json_object_get(cs, "implementation"), "url"));
    json_decref(cs);
}

/* ------------------------------------------------------------------------
 * The tables and the CapabilityStatement against the R4 definitions
 * ---------------------------------------------------------------------- */

#define R4_REFERENCE VL_TEST_DATA "/../unit/fhir/r4_search_parameters.json"

static json_t *r4_reference(void)
{
    json_error_t jerr;
    json_t *ref = json_load_file(R4_REFERENCE, 0, &jerr);
    if (!json_is_array(ref) || json_array_size(ref) < 50)
        fail_msg("%s: %s", R4_REFERENCE, jerr.text);
    return ref;
}

static const char *kind_code(vl_index_kind_t kind)
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
    return "?";
}

/* Fails unless R4 defines `url` as a SearchParameter with code `name` and
 * type `type` whose base includes `type_name` (or Resource). */
static void assert_r4_defines(const json_t *ref, const char *url, const char *name,
                              const char *type, const char *type_name)
{
    size_t i;
    const json_t *e;
    json_array_foreach (ref, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "url")), url) != 0)
            continue;
        if (strcmp(json_string_value(json_object_get(e, "code")), name) != 0)
            fail_msg("%s %s: R4 %s has code %s", type_name, name, url,
                     json_string_value(json_object_get(e, "code")));
        if (strcmp(json_string_value(json_object_get(e, "type")), type) != 0)
            fail_msg("%s %s: R4 %s has type %s, not %s", type_name, name, url,
                     json_string_value(json_object_get(e, "type")), type);
        size_t j;
        const json_t *b;
        json_array_foreach (json_object_get(e, "base"), j, b) {
            if (strcmp(json_string_value(b), type_name) == 0 ||
                strcmp(json_string_value(b), "Resource") == 0)
                return;
        }
        fail_msg("%s %s: R4 %s is not defined for %s", type_name, name, url, type_name);
    }
    fail_msg("%s %s: %s is not an R4 SearchParameter", type_name, name, url);
}

static void test_tables_r4(void **state)
{
    (void)state;
    json_t *ref = r4_reference();
    for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++) {
        size_t n = strlen(t->name);
        for (const vl_search_param_t *p = t->params; p->name; p++) {
            assert_r4_defines(ref, p->url, p->name, kind_code(p->kind), t->name);
            /* the part of the expression for this type, and only it */
            const char *x = p->expression;
            if (x[0] == '(')
                x++;
            if (strncmp(x, t->name, n) != 0 ||
                (x[n] != '.' && !(p->kind == VL_INDEX_COMPOSITE && (!x[n] || x[n] == ' '))))
                fail_msg("%s %s: expression %s", t->name, p->name, p->expression);
        }
    }
    json_decref(ref);
}

static const vl_search_param_t *param(const char *type, const char *name)
{
    const vl_search_param_t *p = vl_fhir_param_find(vl_fhir_type_find(type), name);
    if (!p)
        fail_msg("%s has no parameter %s", type, name);
    return p;
}

#define SP "http://hl7.org/fhir/SearchParameter/"

static void test_r4_urls(void **state)
{
    (void)state;
    /* shared definitions have the shared URL, not <Type>-<name> */
    assert_string_equal(param("Observation", "code")->url, SP "clinical-code");
    assert_string_equal(param("Observation", "code")->expression, "Observation.code");
    assert_string_equal(param("Observation", "date")->url, SP "clinical-date");
    assert_string_equal(param("Observation", "patient")->url, SP "clinical-patient");
    assert_string_equal(param("Observation", "patient")->expression,
                        "Observation.subject.where(resolve() is Patient)");
    assert_string_equal(param("Observation", "identifier")->url, SP "clinical-identifier");
    assert_string_equal(param("Patient", "given")->url, SP "individual-given");
    assert_string_equal(param("Practitioner", "given")->url, SP "individual-given");
    assert_string_equal(param("Practitioner", "given")->expression, "Practitioner.name.given");
    assert_string_equal(param("Patient", "birthdate")->url, SP "individual-birthdate");
    assert_string_equal(param("Patient", "identifier")->url, SP "Patient-identifier");
    assert_string_equal(param("Device", "model")->url, SP "Device-model");
    /* paths derived from the expression */
    const vl_search_param_t *p = param("Observation", "value-quantity");
    assert_string_equal(p->url, SP "Observation-value-quantity");
    assert_string_equal(p->expression,
                        "(Observation.value as Quantity) | (Observation.value as SampledData)");
    assert_string_equal(p->paths[0], "valueQuantity");
    assert_null(p->paths[1]);
    p = param("Observation", "value-string");
    assert_string_equal(p->paths[0], "valueString");
    assert_string_equal(p->paths[1], "valueCodeableConcept.text");
    assert_null(p->paths[2]);
    p = param("Observation", "date");
    assert_string_equal(p->paths[0], "effectiveDateTime");
    assert_string_equal(p->paths[1], "effectivePeriod");
    assert_string_equal(p->paths[2], "effectiveTiming"); /* by its outer limits */
    assert_string_equal(p->paths[3], "effectiveInstant");
    assert_null(p->paths[4]);
    assert_string_equal(param("Patient", "death-date")->paths[0], "deceasedDateTime");
    /* targets: where(resolve() is T), or the only R4 target */
    assert_string_equal(param("Observation", "patient")->target, "Patient");
    assert_null(param("Observation", "subject")->target);
    assert_string_equal(param("Device", "patient")->target, "Patient");
    assert_string_equal(param("Patient", "organization")->target, "Organization");
    /* not offered (design note 2 of fhir/types.c) */
    assert_non_null(vl_fhir_param_find(vl_fhir_type_find("Observation"), "combo-code"));
    /* composites of a token and a quantity, with the paths of both parts */
    p = param("Observation", "component-code-value-quantity");
    assert_int_equal(p->kind, VL_INDEX_COMPOSITE);
    assert_string_equal(p->paths[0], "component");
    assert_string_equal(p->parts[0], "code");
    assert_string_equal(p->parts[1], "valueQuantity");
    p = param("Observation", "combo-code-value-quantity");
    assert_string_equal(p->paths[0], "");
    assert_string_equal(p->paths[1], "component");
    assert_null(vl_fhir_param_find(vl_fhir_type_find("Observation"), "code-value-concept"));
    /* sortable: dates and the listed ones */
    assert_true(param("Observation", "date")->sortable);
    assert_true(param("Observation", "code")->sortable);
    assert_true(param("Observation", "value-quantity")->sortable);
    assert_false(param("Observation", "status")->sortable);
    assert_null(vl_fhir_param_find(vl_fhir_type_find("Patient"), "phone"));
    assert_null(vl_fhir_param_find(vl_fhir_type_find("Device"), "url"));
}

/* Every searchParam.definition of the CapabilityStatement is the R4
 * SearchParameter of that name and type, for that resource type. */
static void test_capability_r4(void **state)
{
    (void)state;
    json_t *ref = r4_reference();
    json_t *cs = vl_fhir_capability(NULL, NULL);
    json_t *res = json_object_get(json_array_get(json_object_get(cs, "rest"), 0), "resource");
    size_t i, j, n = 0;
    json_t *r, *e;
    json_array_foreach (res, i, r) {
        const char *type = json_string_value(json_object_get(r, "type"));
        json_array_foreach (json_object_get(r, "searchParam"), j, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            const char *def = json_string_value(json_object_get(e, "definition"));
            if (!def)
                fail_msg("%s %s: no definition", type, name);
            assert_r4_defines(ref, def, name, json_string_value(json_object_get(e, "type")), type);
            if (strcmp(name, "_id") == 0)
                assert_string_equal(def, SP "Resource-id");
            if (strcmp(name, "_lastUpdated") == 0)
                assert_string_equal(def, SP "Resource-lastUpdated");
            if (strcmp(type, "Observation") == 0 && strcmp(name, "code") == 0)
                assert_string_equal(def, SP "clinical-code");
            if (strcmp(type, "Patient") == 0 && strcmp(name, "given") == 0)
                assert_string_equal(def, SP "individual-given");
            n++;
        }
    }
    assert_true(n > 80);
    json_decref(cs);
    json_decref(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_find),         cmocka_unit_test(test_param_find),
        cmocka_unit_test(test_tables_consistent), cmocka_unit_test(test_r4_types),
        cmocka_unit_test(test_capability),        cmocka_unit_test(test_tables_r4),
        cmocka_unit_test(test_r4_urls),           cmocka_unit_test(test_capability_r4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
