/*
 * The authorization hook's contract in this version: every caller is
 * anonymous and every interaction is allowed, whatever the Authorization
 * header says. When tokens arrive these expectations change on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/auth.h"

static void test_identify_is_anonymous(void **state)
{
    const char *headers[] = {NULL, "", "Bearer abc", "Basic dXNlcjpwYXNz", "garbage"};
    (void)state;
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        vl_principal_t who;
        vl_error_t err = VL_ERROR_INIT;
        memset(&who, 0x5a, sizeof who);
        assert_int_equal(vl_auth_identify(headers[i], &who, &err), 0);
        assert_int_equal(who.role, VL_ROLE_ANONYMOUS);
        assert_string_equal(who.subject, "");
        assert_int_equal(err.status, 0);
    }
}

static void test_everything_allowed(void **state)
{
    const char *interactions[] = {"read",   "vread",  "search-type",      "create",
                                  "update", "delete", "history-instance", "history-type",
                                  "capabilities"};
    vl_principal_t who = {VL_ROLE_ANONYMOUS, ""};
    (void)state;
    for (size_t i = 0; i < sizeof interactions / sizeof interactions[0]; i++) {
        vl_access_t what = {interactions[i], "Observation", "x"};
        vl_error_t err = VL_ERROR_INIT;
        assert_int_equal(vl_auth_authorize(&who, &what, &err), 0);
        assert_int_equal(err.status, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identify_is_anonymous),
        cmocka_unit_test(test_everything_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
