/*
 * Unit tests for src/fhir/types.c (type and parameter tables, the R4 type
 * list) and src/fhir/capability.c (the CapabilityStatement).
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
    json_array_foreach(res, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "type")), type) == 0)
            return r;
    }
    return NULL;
}

static void test_capability(void **state)
{
    (void)state;
    json_t *cs = vl_fhir_capability("https://example.org/fhir");
    assert_non_null(cs);
    assert_string_equal(json_string_value(json_object_get(cs, "resourceType")),
                        "CapabilityStatement");
    assert_string_equal(json_string_value(json_object_get(cs, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(cs, "kind")), "instance");
    assert_string_equal(json_string_value(json_object_get(cs, "fhirVersion")), "4.0.1");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cs, "software"), "name")), "vitalog");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cs, "software"), "version")),
        VL_VERSION);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cs, "implementation"), "url")),
        "https://example.org/fhir");
    assert_non_null(json_string_value(json_object_get(cs, "date")));
    json_t *fmt = json_object_get(cs, "format");
    assert_int_equal(json_array_size(fmt), 2);
    json_t *rest = json_array_get(json_object_get(cs, "rest"), 0);
    assert_string_equal(json_string_value(json_object_get(rest, "mode")), "server");
    assert_int_equal(json_array_size(json_object_get(rest, "resource")), 5);

    json_t *obs = find_resource(cs, "Observation");
    assert_non_null(obs);
    assert_int_equal(json_array_size(json_object_get(obs, "interaction")), 8);
    assert_string_equal(json_string_value(json_object_get(obs, "versioning")), "versioned");
    assert_true(json_is_true(json_object_get(obs, "readHistory")));
    assert_true(json_is_true(json_object_get(obs, "updateCreate")));
    assert_true(json_is_true(json_object_get(obs, "conditionalCreate")));
    assert_true(json_is_false(json_object_get(obs, "conditionalUpdate")));
    assert_string_equal(json_string_value(json_object_get(obs, "conditionalDelete")),
                        "not-supported");
    json_t *sp = json_object_get(obs, "searchParam");
    size_t nparams = 0;
    const vl_fhir_type_t *t = vl_fhir_type_find("Observation");
    for (const vl_search_param_t *p = t->params; p->name; p++)
        nparams++;
    assert_int_equal(json_array_size(sp), nparams + 2);
    int seen_id = 0, seen_lu = 0, seen_vq = 0;
    size_t i;
    json_t *e;
    json_array_foreach(sp, i, e)
    {
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

    cs = vl_fhir_capability(NULL); /* no base URL: no implementation.url */
    assert_null(json_object_get(json_object_get(cs, "implementation"), "url"));
    json_decref(cs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_find),   cmocka_unit_test(test_param_find),
        cmocka_unit_test(test_tables_consistent), cmocka_unit_test(test_r4_types),
        cmocka_unit_test(test_capability),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
