/*
 * Unit tests for src/util/error.c: vl_error_t as a list of OperationOutcome
 * issues with one HTTP status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/util.h"

static json_t *issue_at(const vl_error_t *err, size_t i)
{
    json_t *issue = json_array_get(err->issues, i);
    assert_non_null(issue);
    assert_true(json_is_object(issue));
    return issue;
}

static const char *field(json_t *issue, const char *key)
{
    return json_string_value(json_object_get(issue, key));
}

static int add(vl_error_t *err, int status, const char *severity, const char *code,
               const char *expression, const char *fmt, ...) VL_PRINTF(6, 7);
static int add(vl_error_t *err, int status, const char *severity, const char *code,
               const char *expression, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = vl_error_addv(err, status, severity, code, expression, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_empty(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(err.status, 0);
    assert_null(err.issues);
    assert_int_equal(vl_error_count(&err), 0);
    assert_string_equal(vl_error_message(&err), "");
    assert_int_equal(vl_error_count(NULL), 0);
    assert_string_equal(vl_error_message(NULL), "");
    vl_error_clear(&err); /* clearing an empty error is fine */
    vl_error_clear(NULL);
    assert_int_equal(err.status, 0);
    /* a NULL err is allowed: the call still reports failure */
    assert_int_equal(vl_error_set(NULL, 400, "invalid", NULL, "x"), -1);
}

static void test_set_one(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    json_t *issue;
    assert_int_equal(vl_error_set(&err, 404, "not-found", NULL, "Patient/%s is not known", "p1"),
                     -1);
    assert_int_equal(err.status, 404);
    assert_int_equal(vl_error_count(&err), 1);
    assert_string_equal(vl_error_message(&err), "Patient/p1 is not known");
    issue = issue_at(&err, 0);
    assert_string_equal(field(issue, "severity"), "error");
    assert_string_equal(field(issue, "code"), "not-found");
    assert_string_equal(field(issue, "diagnostics"), "Patient/p1 is not known");
    /* no expression given: no expression member at all */
    assert_null(json_object_get(issue, "expression"));
    assert_int_equal(json_object_size(issue), 3);
    vl_error_clear(&err);
    assert_int_equal(err.status, 0);
    assert_null(err.issues);
    assert_int_equal(vl_error_count(&err), 0);
    assert_string_equal(vl_error_message(&err), "");
}

static void test_first_status_wins(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    vl_error_set(&err, 422, "value", "Observation.status", "bad status");
    vl_error_set(&err, 400, "structure", NULL, "second");
    vl_error_set(&err, 500, "exception", NULL, "third");
    add(&err, 409, "warning", "conflict", NULL, "fourth %d", 4);
    assert_int_equal(err.status, 422);
    assert_int_equal(vl_error_count(&err), 4);
    /* the message is the first issue's */
    assert_string_equal(vl_error_message(&err), "bad status");
    /* issues accumulate in order */
    assert_string_equal(field(issue_at(&err, 0), "code"), "value");
    assert_string_equal(field(issue_at(&err, 1), "code"), "structure");
    assert_string_equal(field(issue_at(&err, 1), "diagnostics"), "second");
    assert_string_equal(field(issue_at(&err, 2), "code"), "exception");
    assert_string_equal(field(issue_at(&err, 3), "severity"), "warning");
    assert_string_equal(field(issue_at(&err, 3), "diagnostics"), "fourth 4");
    vl_error_clear(&err);

    /* after clear the next status wins again */
    vl_error_set(&err, 412, "conflict", NULL, "x");
    assert_int_equal(err.status, 412);
    assert_int_equal(vl_error_count(&err), 1);
    vl_error_clear(&err);
}

static void test_addv_severity(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(add(&err, 200, "information", "informational", NULL, "note %s", "n"), -1);
    assert_int_equal(err.status, 200);
    assert_string_equal(field(issue_at(&err, 0), "severity"), "information");
    assert_string_equal(field(issue_at(&err, 0), "code"), "informational");
    assert_string_equal(field(issue_at(&err, 0), "diagnostics"), "note n");
    vl_error_clear(&err);
}

static void test_expression(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    json_t *expr;
    vl_error_set(&err, 400, "required", "Observation.code.coding[0].system", "missing");
    expr = json_object_get(issue_at(&err, 0), "expression");
    assert_true(json_is_array(expr));
    assert_int_equal(json_array_size(expr), 1);
    assert_string_equal(json_string_value(json_array_get(expr, 0)),
                        "Observation.code.coding[0].system");
    vl_error_clear(&err);
}

static void test_format_and_truncation(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    char big[2000];
    const char *msg;
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* a % in an argument is not re-interpreted */
    vl_error_set(&err, 400, "invalid", NULL, "bad value '%s' (%d%%)", "100%s", 5);
    assert_string_equal(vl_error_message(&err), "bad value '100%s' (5%)");
    /* a huge message is cut, never overflows, stays valid */
    vl_error_set(&err, 400, "invalid", NULL, "%s", big);
    msg = field(issue_at(&err, 1), "diagnostics");
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
    assert_true(strlen(msg) < sizeof big - 1);
    assert_true(strspn(msg, "x") == strlen(msg));
    vl_error_clear(&err);
}

static void test_cap(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    json_t *last;
    for (int i = 0; i < 100; i++)
        assert_int_equal(
            vl_error_set(&err, i == 0 ? 422 : 400, "value", "Patient.name", "issue %d", i), -1);
    assert_int_equal(vl_error_count(&err), 100);
    assert_string_equal(field(issue_at(&err, 99), "diagnostics"), "issue 99");
    /* the 101st becomes "too many", later ones are dropped */
    vl_error_set(&err, 400, "value", NULL, "issue 100");
    assert_int_equal(vl_error_count(&err), 101);
    for (int i = 0; i < 50; i++)
        vl_error_set(&err, 400, "value", NULL, "issue %d", 101 + i);
    add(&err, 400, "warning", "value", NULL, "warning");
    assert_int_equal(vl_error_count(&err), 101);
    last = issue_at(&err, 100);
    assert_string_equal(field(last, "severity"), "error");
    assert_string_equal(field(last, "code"), "too-costly");
    assert_non_null(strstr(field(last, "diagnostics"), "too many"));
    assert_null(json_object_get(last, "expression"));
    for (size_t i = 0; i < 100; i++) {
        char want[32];
        snprintf(want, sizeof want, "issue %zu", i);
        assert_string_equal(field(issue_at(&err, i), "diagnostics"), want);
    }
    assert_int_equal(err.status, 422);
    vl_error_clear(&err);
    assert_int_equal(vl_error_count(&err), 0);
    /* and the cap resets with clear */
    for (int i = 0; i < 100; i++)
        vl_error_set(&err, 400, "value", NULL, "again %d", i);
    assert_int_equal(vl_error_count(&err), 100);
    vl_error_clear(&err);
}

static void test_outcome(void **state)
{
    (void)state;
    vl_error_t err = VL_ERROR_INIT;
    json_t *oo, *issues, *i0, *i1;
    vl_error_set(&err, 422, "value", "Observation.valueQuantity.value", "not a decimal");
    add(&err, 422, "warning", "code-invalid", NULL, "unknown code %s", "x");
    oo = vl_error_outcome(&err);
    assert_non_null(oo);
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    assert_int_equal(json_object_size(oo), 2);
    issues = json_object_get(oo, "issue");
    assert_true(json_is_array(issues));
    assert_int_equal(json_array_size(issues), 2);
    i0 = json_array_get(issues, 0);
    i1 = json_array_get(issues, 1);
    assert_string_equal(field(i0, "severity"), "error");
    assert_string_equal(field(i0, "code"), "value");
    assert_string_equal(field(i0, "diagnostics"), "not a decimal");
    assert_string_equal(json_string_value(json_array_get(json_object_get(i0, "expression"), 0)),
                        "Observation.valueQuantity.value");
    assert_string_equal(field(i1, "severity"), "warning");
    assert_string_equal(field(i1, "code"), "code-invalid");
    /* the outcome is a copy: clearing the error does not change it */
    assert_true(issues != err.issues);
    vl_error_clear(&err);
    assert_string_equal(field(i0, "diagnostics"), "not a decimal");
    /* and it serializes */
    {
        char *d = vl_json_dump(oo, NULL);
        assert_non_null(d);
        assert_non_null(strstr(d, "\"resourceType\":\"OperationOutcome\""));
        free(d);
    }
    json_decref(oo);

    /* with no issue recorded: a generic exception outcome */
    oo = vl_error_outcome(&err);
    assert_non_null(oo);
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    issues = json_object_get(oo, "issue");
    assert_int_equal(json_array_size(issues), 1);
    assert_string_equal(field(json_array_get(issues, 0), "severity"), "error");
    assert_string_equal(field(json_array_get(issues, 0), "code"), "exception");
    json_decref(oo);
    oo = vl_error_outcome(NULL);
    assert_non_null(oo);
    json_decref(oo);
}

static void test_outcome_new(void **state)
{
    (void)state;
    json_t *oo = vl_outcome_new("information", "informational", "Patient/p1 created");
    json_t *issues = json_object_get(oo, "issue");
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    assert_int_equal(json_array_size(issues), 1);
    assert_string_equal(field(json_array_get(issues, 0), "severity"), "information");
    assert_string_equal(field(json_array_get(issues, 0), "code"), "informational");
    assert_string_equal(field(json_array_get(issues, 0), "diagnostics"), "Patient/p1 created");
    json_decref(oo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_set_one),
        cmocka_unit_test(test_first_status_wins),
        cmocka_unit_test(test_addv_severity),
        cmocka_unit_test(test_expression),
        cmocka_unit_test(test_format_and_truncation),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_outcome),
        cmocka_unit_test(test_outcome_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
