/*
 * The default policy's contract in this version: every caller is
 * anonymous and every request is allowed with the whole store in scope,
 * whatever the Authorization header says. When tokens arrive these
 * expectations change on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/auth.h"

static void test_identify_is_anonymous(void **state)
{
    const vl_policy_t *p = &vl_auth_default_policy;
    const char *headers[] = {NULL, "", "Bearer abc", "Basic dXNlcjpwYXNz", "garbage"};
    (void)state;
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        vl_principal_t who;
        vl_error_t err = VL_ERROR_INIT;
        memset(&who, 0x5a, sizeof who);
        assert_int_equal(p->identify(p->ctx, headers[i], &who, &err), 0);
        assert_int_equal(who.role, VL_ROLE_ANONYMOUS);
        assert_string_equal(who.subject, "");
        assert_int_equal(err.status, 0);
    }
}

static void test_everything_allowed_with_the_whole_store(void **state)
{
    const vl_policy_t *p = &vl_auth_default_policy;
    const char *interactions[] = {"read",
                                  "vread",
                                  "search-type",
                                  "create",
                                  "update",
                                  "delete",
                                  "history-instance",
                                  "history-type",
                                  "capabilities",
                                  "transaction",
                                  "batch",
                                  "operation",
                                  "ledger",
                                  "metrics",
                                  "health"};
    vl_principal_t who = {VL_ROLE_ANONYMOUS, ""};
    vl_arena_t *arena = vl_arena_new();
    (void)state;
    for (size_t i = 0; i < sizeof interactions / sizeof interactions[0]; i++) {
        vl_access_t what = {interactions[i], "Observation", "x", NULL, NULL, 0};
        vl_scope_t scope;
        vl_error_t err = VL_ERROR_INIT;
        memset(&scope, 0, sizeof scope);
        assert_int_equal(p->authorize(p->ctx, &who, &what, arena, &scope, &err), 0);
        assert_int_equal(err.status, 0);
        assert_true(scope.flags & VL_SCOPE_ALL);
        assert_true(scope.flags & VL_SCOPE_LEDGER);
        assert_true(scope.flags & VL_SCOPE_RECORDS);
    }
    vl_arena_free(arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identify_is_anonymous),
        cmocka_unit_test(test_everything_allowed_with_the_whole_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
