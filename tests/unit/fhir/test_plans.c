/*
 * The plans of the hot searches (issue 8, docs/performance.md): each query
 * string is parsed by the fhir module and its statements explained by the
 * store (vl_store_explain, SQLite's EXPLAIN QUERY PLAN) over a store with
 * some rows, so that a change of the index design, of the parser's plan
 * hints or of the SQL that makes one of them read more than its page fails
 * here instead of showing up as a slow benchmark.
 *
 * What each plan must hold, and must not:
 *   - the lookups read a key range (SEARCH ... USING PRIMARY KEY) of the
 *     table meant, never SCAN a table of rows (a scan reads every row);
 *   - no "USE TEMP B-TREE FOR ORDER BY" where the order is the key order
 *     (the page stops after _count rows only then).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../support.h"
#include "vitalog/fhir.h"

static char root[64];
static vl_store_t *store;

static void put_json(const char *type, const char *id, const char *json)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *res = vl_json_parse(json, strlen(json), NULL, &err);
    vl_index_t ix;
    assert_non_null(res);
    vl_index_init(&ix);
    assert_int_equal(vl_fhir_index(vl_fhir_type_find(type), res, &ix, &err), 0);
    tstore_put_ok(store, type, id, json, &ix);
    vl_index_free(&ix);
    json_decref(res);
}

static int setup(void **state)
{
    char dir[96];
    (void)state;
    vl_log_set_level(VL_LOG_WARN);
    snprintf(root, sizeof root, "/tmp/vl-plans-XXXXXX");
    tstore_mkdtemp(root);
    snprintf(dir, sizeof dir, "%s/data", root);
    store = tstore_open(dir, NULL);
    for (int i = 0; i < 20; i++) {
        char id[16], json[1024];
        snprintf(id, sizeof id, "o%d", i);
        snprintf(json, sizeof json,
                 "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":\"final\","
                 "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
                 "CodeSystem/observation-category\",\"code\":\"vital-signs\"}]}],"
                 "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"%s\"}]},"
                 "\"subject\":{\"reference\":\"Patient/p%d\"},"
                 "\"effectiveDateTime\":\"2025-03-%02dT10:00:00Z\","
                 "\"valueQuantity\":{\"value\":%d,\"unit\":\"/min\","
                 "\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}}",
                 id, i % 2 ? "8867-4" : "9279-1", i % 3, i + 1, 60 + i);
        put_json("Observation", id, json);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vl_store_close(store);
    tstore_rmtree(root);
    return 0;
}

/* The plan of `qs` (Observation) with the admin's scope, or a patient's. */
static char *plan_of(const char *qs, const char *patient)
{
    vl_params_t p;
    vl_search_t s;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_buf_t plan = {0};
    const char *pats[1] = {patient};
    vl_scope_t scope = vl_scope_everything();
    if (patient) {
        memset(&scope, 0, sizeof scope);
        scope.n_patients = 1;
        scope.patients = pats;
    }
    vl_params_init(&p);
    assert_int_equal(vl_params_parse_form(&p, qs, strlen(qs)), 0);
    if (vl_fhir_search_parse(vl_fhir_type_find("Observation"), &p, 0, &s, &err) != 0)
        fail_msg("%s: %s", qs, vl_error_message(&err));
    if (vl_store_explain(store, scope, &s.query, s.total_mode, &plan, &serr) != 0)
        fail_msg("%s: %s", qs, serr.message);
    vl_search_free(&s);
    vl_params_free(&p);
    return plan.data;
}

static void expect_plan(const char *qs, const char *patient, const char *const *must,
                        const char *const *never)
{
    char *plan = plan_of(qs, patient);
    for (; must && *must; must++)
        if (!strstr(plan, *must))
            fail_msg("%s: the plan lacks \"%s\":\n%s", qs, *must, plan);
    for (; never && *never; never++)
        if (strstr(plan, *never))
            fail_msg("%s: the plan has \"%s\":\n%s", qs, *never, plan);
    free(plan);
}

/* "SCAN (subquery-N)" reads the rows a subquery made, not a table */
static const char *const no_scan[] = {"SCAN ix_", "SCAN v",          "SCAN r", "SCAN s",
                                      "SCAN d",   "USE TEMP B-TREE", NULL};

/* patient + code + date range: the series, its time as a key range */
static void test_patient_code_range(void **state)
{
    (void)state;
    static const char *const must[] = {
        "SEARCH s USING PRIMARY KEY (pid=? AND patient=? AND code=? AND sid=? AND hi>? AND hi<?)",
        NULL};
    expect_plan("patient=Patient/p1&code=http://loinc.org|8867-4&date=ge2025-03-01T00:00Z"
                "&date=lt2025-03-08T00:00Z&_count=100",
                NULL, must, no_scan);
    /* the same for the patient herself (a scope probe per row, no scan) */
    expect_plan("patient=Patient/p1&code=http://loinc.org|8867-4&date=ge2025-03-01T00:00Z"
                "&date=lt2025-03-08T00:00Z&_count=100",
                "p1", must, no_scan);
}

/* the latest reading: the series read backwards, one row */
static void test_latest(void **state)
{
    (void)state;
    static const char *const must[] = {
        "SEARCH s USING PRIMARY KEY (pid=? AND patient=? AND code=? AND sid=?)", NULL};
    expect_plan("patient=Patient/p1&code=http://loinc.org|8867-4&_sort=-date&_count=1", NULL, must,
                no_scan);
}

/* a month's count: a key range of the series, counted without the rows */
static void test_month_count(void **state)
{
    (void)state;
    static const char *const must[] = {
        "count:",
        "SEARCH s USING PRIMARY KEY (pid=? AND patient=? AND code=? AND sid=? AND "
        "hi>? AND hi<?)",
        NULL};
    static const char *const never[] = {"SCAN s", "SCAN ix_", "SEARCH v", NULL};
    char *plan = plan_of("patient=Patient/p1&code=http://loinc.org|8867-4&date=ge2025-03-01"
                         "&date=lt2025-04-01&_summary=count",
                         NULL);
    /* only the count statement reads; the page of _count=0 is not run */
    char *page = strstr(plan, "page:");
    if (page)
        *page = '\0';
    for (const char *const *m = must; *m; m++)
        if (!strstr(plan, *m))
            fail_msg("month count: the plan lacks \"%s\":\n%s", *m, plan);
    for (const char *const *n = never; *n; n++)
        if (strstr(plan, *n))
            fail_msg("month count: the plan has \"%s\":\n%s", *n, plan);
    free(plan);
    /* the patient herself: her series rows are all in her compartment, so
     * no probe of version_patient per row */
    plan = plan_of("patient=Patient/p1&code=http://loinc.org|8867-4&date=ge2025-03-01"
                   "&date=lt2025-04-01&_summary=count",
                   "p1");
    if (strstr(plan, "SEARCH vp"))
        fail_msg("month count as the patient probes compartments:\n%s", plan);
    free(plan);
    /* another patient's scope does probe (and finds nothing) */
    plan = plan_of("patient=Patient/p1&code=http://loinc.org|8867-4&_summary=count", "p2");
    if (!strstr(plan, "SEARCH vp"))
        fail_msg("month count as another patient does not check compartments:\n%s", plan);
    free(plan);
}

/* clinic-wide code + value range: the composite, a value range of one code */
static void test_code_value_range(void **state)
{
    (void)state;
    static const char *const must[] = {
        "SEARCH d USING PRIMARY KEY (pid=? AND code=? AND sid=? AND unit=? AND value>?)", NULL};
    expect_plan("code=http://loinc.org|8867-4&value-quantity=gt120|http://unitsofmeasure.org|/min"
                "&_count=50",
                NULL, must, no_scan);
}

/* one patient's Observations: her references, in version order */
static void test_patient(void **state)
{
    (void)state;
    static const char *const must[] = {"SEARCH d USING PRIMARY KEY (pid=? AND ref=?)", NULL};
    expect_plan("patient=Patient/p1&_count=50", NULL, must, no_scan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patient_code_range),
        cmocka_unit_test(test_latest),
        cmocka_unit_test(test_month_count),
        cmocka_unit_test(test_code_value_range),
        cmocka_unit_test(test_patient),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
