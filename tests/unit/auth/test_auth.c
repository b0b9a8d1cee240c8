/*
 * auth: tokens (issue, identify, revoke, expiry, bootstrap, the key file)
 * and the role table of the server's policy (docs/security.md "Roles"),
 * against a real store in a temporary directory.
 */
#include "../support.h"

#include <sys/stat.h>

#include "vitalog/auth.h"

typedef struct fixture {
    char dir[64];
    vl_store_t *store;
    unsigned char key[32];
    vl_auth_t *auth;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    vl_error_t err = VL_ERROR_INIT;
    vl_auth_options_t o = {NULL, NULL, NULL};
    snprintf(f->dir, sizeof f->dir, "/tmp/vl-auth-XXXXXX");
    tstore_mkdtemp(f->dir);
    f->store = tstore_open(f->dir, NULL);
    assert_int_equal(vl_auth_token_key_load(f->dir, f->key, &err), 0);
    o.store = f->store;
    o.token_key = f->key;
    f->auth = vl_auth_new(&o, &err);
    assert_non_null(f->auth);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    vl_auth_free(f->auth);
    vl_store_close(f->store);
    tstore_rmtree(f->dir);
    free(f);
    return 0;
}

/* Issues a token; returns "Bearer <token>" in `header`. */
static void issue(fixture_t *f, vl_role_t role, const char *subject, int64_t expires_us,
                  char header[80], vl_token_row_t *row)
{
    vl_token_request_t req = {role, subject, NULL, "test", expires_us};
    char secret[VL_TOKEN_TEXT_LEN];
    vl_token_row_t ignored;
    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(
        vl_auth_token_issue(f->store, f->key, &req, secret, row ? row : &ignored, &err), 0);
    snprintf(header, 80, "Bearer %s", secret);
}

static int identify(fixture_t *f, const char *header, vl_principal_t *who, int *status)
{
    const vl_policy_t *p = vl_auth_policy(f->auth);
    vl_error_t err = VL_ERROR_INIT;
    int rc = p->identify(p->ctx, header, who, &err);
    *status = err.status;
    vl_error_clear(&err);
    return rc;
}

static void test_roles_and_subjects(void **state)
{
    vl_role_t r;
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(vl_auth_role_parse("clinic", &r), 0);
    assert_int_equal(r, VL_ROLE_CLINIC);
    assert_int_equal(vl_auth_role_parse("anonymous", &r), -1);
    assert_int_equal(vl_auth_role_parse("Admin", &r), -1);
    assert_int_equal(vl_auth_subject_check(VL_ROLE_PATIENT, "Patient/p-1", &err), 0);
    assert_int_equal(vl_auth_subject_check(VL_ROLE_DEVICE, "Patient/p.1", &err), 0);
    assert_int_equal(vl_auth_subject_check(VL_ROLE_CLINIC, "Organization/o1", &err), 0);
    assert_int_equal(vl_auth_subject_check(VL_ROLE_CLINIC, "Practitioner/d1", &err), 0);
    assert_int_equal(vl_auth_subject_check(VL_ROLE_AUDITOR, "auditor@example.org", &err), 0);
    const struct {
        vl_role_t role;
        const char *subject;
    } bad[] = {
        {VL_ROLE_PATIENT, "Organization/o1"},
        {VL_ROLE_PATIENT, "Patient/"},
        {VL_ROLE_PATIENT, "Patient/a b"},
        {VL_ROLE_PATIENT, "Patient/.."},
        {VL_ROLE_DEVICE, "Device/d1"},
        {VL_ROLE_CLINIC, "Patient/p1"},
        {VL_ROLE_ADMIN, ""},
        {VL_ROLE_AUDITOR, "tab\there"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(vl_auth_subject_check(bad[i].role, bad[i].subject, &err), -1);
        assert_int_equal(err.status, 400);
        vl_error_clear(&err);
    }
}

static void test_token_key_file(void **state)
{
    fixture_t *f = *state;
    unsigned char again[32];
    char path[128];
    struct stat st;
    vl_error_t err = VL_ERROR_INIT;
    snprintf(path, sizeof path, "%s/%s", f->dir, VL_TOKEN_KEY_FILE);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    assert_int_equal(vl_auth_token_key_load(f->dir, again, &err), 0);
    assert_memory_equal(again, f->key, 32);
}

static void test_issue_and_identify(void **state)
{
    fixture_t *f = *state;
    char header[80];
    vl_token_row_t row;
    vl_principal_t who;
    int status;
    unsigned char raw_hash[VL_TOKEN_HASH_LEN];
    issue(f, VL_ROLE_PATIENT, "Patient/p1", 0, header, &row);
    /* vl1_ + 43 base64url characters = 256 bits */
    assert_int_equal(strlen(header + 7), VL_TOKEN_TEXT_LEN - 1);
    assert_memory_equal(header + 7, VL_TOKEN_PREFIX, 4);
    assert_int_equal(strspn(header + 11, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789-_"),
                     43);
    assert_int_equal(identify(f, header, &who, &status), 0);
    assert_int_equal(who.role, VL_ROLE_PATIENT);
    assert_string_equal(who.subject, "Patient/p1");
    assert_string_equal(who.patient, "p1");
    assert_string_equal(who.token_id, row.id);
    /* stored as the keyed hash, not as the token nor its plain hash */
    crypto_generichash(raw_hash, sizeof raw_hash, (const unsigned char *)header + 7,
                       strlen(header + 7), NULL, 0);
    assert_int_equal(tstore_sql_int(f->dir, "SELECT count(*) FROM token WHERE length(hash) != 32 "
                                            "OR instr(CAST(hash AS TEXT), 'vl1_')"),
                     0);
    assert_memory_not_equal(row.hash, raw_hash, sizeof raw_hash);
    /* the scheme is case-insensitive (RFC 7235) */
    header[0] = 'b';
    assert_int_equal(identify(f, header, &who, &status), 0);
}

static void test_bad_credentials_are_401(void **state)
{
    fixture_t *f = *state;
    char header[80];
    vl_principal_t who;
    int status;
    const char *bad[] = {
        "Bearer",     "Bearer ", "Basic dXNlcjpwYXNz",
        "Bearer a b", "vl1_abc", "Bearer vl1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    issue(f, VL_ROLE_ADMIN, "ops", 0, header, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(identify(f, bad[i], &who, &status), -1);
        assert_int_equal(status, 401);
    }
    /* one character changed */
    header[20] = header[20] == 'A' ? 'B' : 'A';
    assert_int_equal(identify(f, header, &who, &status), -1);
    assert_int_equal(status, 401);
    /* no header: anonymous, not an error */
    assert_int_equal(identify(f, NULL, &who, &status), 0);
    assert_int_equal(who.role, VL_ROLE_ANONYMOUS);
}

static void test_revoked_token_fails_on_the_next_request(void **state)
{
    fixture_t *f = *state;
    char header[80];
    vl_token_row_t row;
    vl_principal_t who;
    vl_error_t err = VL_ERROR_INIT;
    int status;
    issue(f, VL_ROLE_CLINIC, "Organization/o1", 0, header, &row);
    assert_int_equal(identify(f, header, &who, &status), 0);
    assert_int_equal(vl_auth_token_revoke(f->store, row.id, &err), 0);
    assert_int_equal(identify(f, header, &who, &status), -1);
    assert_int_equal(status, 401);
    /* revoking twice is fine; an unknown id is 404 */
    assert_int_equal(vl_auth_token_revoke(f->store, row.id, &err), 0);
    assert_int_equal(vl_auth_token_revoke(f->store, "0000000000000000", &err), -1);
    assert_int_equal(err.status, 404);
    vl_error_clear(&err);
}

static void test_expiry(void **state)
{
    fixture_t *f = *state;
    char header[80], secret[VL_TOKEN_TEXT_LEN];
    vl_principal_t who;
    vl_token_row_t row;
    vl_error_t err = VL_ERROR_INIT;
    int status;
    vl_token_request_t past = {VL_ROLE_ADMIN, "ops", NULL, NULL, 1000};
    /* an expiry in the past is refused when issuing */
    assert_int_equal(vl_auth_token_issue(f->store, f->key, &past, secret, &row, &err), -1);
    assert_int_equal(err.status, 400);
    vl_error_clear(&err);
    /* a token that expires in an hour works; moved into the past, it does not */
    issue(f, VL_ROLE_ADMIN, "ops", vl_time_now_us() + 3600ll * 1000000, header, &row);
    assert_int_equal(identify(f, header, &who, &status), 0);
    tstore_sql(f->dir, "UPDATE token SET expires = 1000");
    assert_int_equal(identify(f, header, &who, &status), -1);
    assert_int_equal(status, 401);
}

static int count_row(void *ctx, const vl_token_row_t *t)
{
    json_t *j = vl_auth_token_json(t, vl_time_now_us());
    assert_non_null(j);
    assert_null(json_object_get(j, "hash"));
    json_decref(j);
    ++*(int *)ctx;
    return 0;
}

static void test_bootstrap_once(void **state)
{
    fixture_t *f = *state;
    char path[128], header[80];
    char *text;
    struct stat st;
    vl_principal_t who;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    int status, n = 0;
    assert_int_equal(vl_auth_bootstrap(f->store, f->key, f->dir, &err), 1);
    snprintf(path, sizeof path, "%s/admin.token", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    text = test_read_file(path, NULL);
    assert_non_null(text);
    text[strcspn(text, "\n")] = '\0';
    snprintf(header, sizeof header, "Bearer %s", text);
    free(text);
    assert_int_equal(identify(f, header, &who, &status), 0);
    assert_int_equal(who.role, VL_ROLE_ADMIN);
    /* a second start issues nothing */
    unlink(path);
    assert_int_equal(vl_auth_bootstrap(f->store, f->key, f->dir, &err), 0);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(vl_store_token_list(f->store, count_row, &n, &serr), 0);
    assert_int_equal(n, 1);
}

/* ------------------------------------------------------------------------
 * The role table
 * ---------------------------------------------------------------------- */

enum { ALLOW, DENY, LOGIN };

typedef struct rule_case {
    vl_role_t role;
    const char *interaction, *type, *operation, *route;
    int expect;
    unsigned flags; /* expected scope flags when allowed */
    int patients;   /* expected patient count */
} rule_case_t;

#define EV (VL_SCOPE_ALL | VL_SCOPE_SHARED | VL_SCOPE_LEDGER | VL_SCOPE_RECORDS)

static const rule_case_t cases[] = {
    /* anonymous: metadata and health only */
    {VL_ROLE_ANONYMOUS, "capabilities", NULL, NULL, "/fhir/metadata", ALLOW, 0, 0},
    {VL_ROLE_ANONYMOUS, "health", NULL, NULL, "/healthz", ALLOW, 0, 0},
    {VL_ROLE_ANONYMOUS, "read", "Observation", NULL, "/fhir/{type}/{id}", LOGIN, 0, 0},
    {VL_ROLE_ANONYMOUS, "search-type", "Patient", NULL, "/fhir/{type}", LOGIN, 0, 0},
    {VL_ROLE_ANONYMOUS, "create", "Observation", NULL, "/fhir/{type}", LOGIN, 0, 0},
    {VL_ROLE_ANONYMOUS, "ledger", NULL, NULL, "/ledger/checkpoint", LOGIN, 0, 0},
    {VL_ROLE_ANONYMOUS, "metrics", NULL, NULL, "/metrics", LOGIN, 0, 0},
    {VL_ROLE_ANONYMOUS, "transaction", NULL, NULL, "/fhir", LOGIN, 0, 0},
    /* admin: everything, whole store */
    {VL_ROLE_ADMIN, "read", "Observation", NULL, "/fhir/{type}/{id}", ALLOW, EV, 0},
    {VL_ROLE_ADMIN, "delete", "Patient", NULL, "/fhir/{type}/{id}", ALLOW, EV, 0},
    {VL_ROLE_ADMIN, "ledger", NULL, NULL, "/ledger/export", ALLOW, EV, 0},
    {VL_ROLE_ADMIN, "metrics", NULL, NULL, "/metrics", ALLOW, EV, 0},
    /* auditor: the ledger, never records */
    {VL_ROLE_AUDITOR, "ledger", NULL, NULL, "/ledger/export", ALLOW, VL_SCOPE_LEDGER, 0},
    {VL_ROLE_AUDITOR, "ledger", NULL, NULL, "/ledger/entries", ALLOW, VL_SCOPE_LEDGER, 0},
    {VL_ROLE_AUDITOR, "ledger", NULL, NULL, "/ledger/record", ALLOW, VL_SCOPE_LEDGER, 0},
    {VL_ROLE_AUDITOR, "read", "Observation", NULL, "/fhir/{type}/{id}", DENY, 0, 0},
    {VL_ROLE_AUDITOR, "search-type", "Patient", NULL, "/fhir/{type}", DENY, 0, 0},
    {VL_ROLE_AUDITOR, "operation", "Observation", "$ledger", "x", DENY, 0, 0},
    {VL_ROLE_AUDITOR, "transaction", NULL, NULL, "/fhir", DENY, 0, 0},
    {VL_ROLE_AUDITOR, "metrics", NULL, NULL, "/metrics", DENY, 0, 0},
    /* patient: own compartment (+ shared records to read) */
    {VL_ROLE_PATIENT, "read", "Observation", NULL, "/fhir/{type}/{id}", ALLOW, VL_SCOPE_SHARED, 1},
    {VL_ROLE_PATIENT, "search-type", "Observation", NULL, "/fhir/{type}", ALLOW, VL_SCOPE_SHARED,
     1},
    {VL_ROLE_PATIENT, "history-type", "Observation", NULL, "x", ALLOW, VL_SCOPE_SHARED, 1},
    {VL_ROLE_PATIENT, "create", "Observation", NULL, "/fhir/{type}", ALLOW, 0, 1},
    {VL_ROLE_PATIENT, "delete", "Observation", NULL, "/fhir/{type}/{id}", ALLOW, 0, 1},
    {VL_ROLE_PATIENT, "operation", "Observation", "$ledger", "x", ALLOW,
     VL_SCOPE_SHARED | VL_SCOPE_LEDGER, 1},
    {VL_ROLE_PATIENT, "ledger", NULL, NULL, "/ledger/checkpoint", ALLOW, VL_SCOPE_LEDGER, 0},
    {VL_ROLE_PATIENT, "ledger", NULL, NULL, "/ledger/proof/inclusion", ALLOW, VL_SCOPE_LEDGER, 0},
    {VL_ROLE_PATIENT, "ledger", NULL, NULL, "/ledger/export", DENY, 0, 0},
    {VL_ROLE_PATIENT, "ledger", NULL, NULL, "/ledger/entries", DENY, 0, 0},
    {VL_ROLE_PATIENT, "metrics", NULL, NULL, "/metrics", DENY, 0, 0},
    /* device: writes of its patient's Observations and Devices */
    {VL_ROLE_DEVICE, "create", "Observation", NULL, "/fhir/{type}", ALLOW, 0, 1},
    {VL_ROLE_DEVICE, "update", "Device", NULL, "/fhir/{type}/{id}", ALLOW, 0, 1},
    {VL_ROLE_DEVICE, "create", "Patient", NULL, "/fhir/{type}", DENY, 0, 0},
    {VL_ROLE_DEVICE, "delete", "Observation", NULL, "/fhir/{type}/{id}", DENY, 0, 0},
    {VL_ROLE_DEVICE, "read", "Observation", NULL, "/fhir/{type}/{id}", DENY, 0, 0},
    {VL_ROLE_DEVICE, "search-type", "Observation", NULL, "/fhir/{type}", DENY, 0, 0},
    {VL_ROLE_DEVICE, "transaction", NULL, NULL, "/fhir", ALLOW, 0, 0},
    {VL_ROLE_DEVICE, "ledger", NULL, NULL, "/ledger/export", DENY, 0, 0},
    /* clinic, without consent: shared records only, no patient writes */
    {VL_ROLE_CLINIC, "search-type", "Observation", NULL, "/fhir/{type}", ALLOW, VL_SCOPE_SHARED, 0},
    {VL_ROLE_CLINIC, "create", "Observation", NULL, "/fhir/{type}", DENY, 0, 0},
    {VL_ROLE_CLINIC, "ledger", NULL, NULL, "/ledger/export", DENY, 0, 0},
    {VL_ROLE_CLINIC, "metrics", NULL, NULL, "/metrics", DENY, 0, 0},
};

static void test_role_table(void **state)
{
    fixture_t *f = *state;
    const vl_policy_t *p = vl_auth_policy(f->auth);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const rule_case_t *c = &cases[i];
        vl_principal_t who;
        vl_access_t what = {c->interaction, c->type, NULL, NULL, c->operation, 0, c->route};
        vl_arena_t *arena = vl_arena_new();
        vl_scope_t scope;
        vl_error_t err = VL_ERROR_INIT;
        int rc;
        memset(&who, 0, sizeof who);
        who.role = c->role;
        if (c->role == VL_ROLE_PATIENT || c->role == VL_ROLE_DEVICE) {
            snprintf(who.subject, sizeof who.subject, "Patient/p1");
            snprintf(who.patient, sizeof who.patient, "p1");
        }
        memset(&scope, 0x5a, sizeof scope);
        rc = p->authorize(p->ctx, &who, &what, arena, &scope, &err);
        if (c->expect == ALLOW) {
            if (rc != 0)
                fail_msg("case %zu (%s %s %s): denied: %s", i, vl_auth_role_name(c->role),
                         c->interaction, c->route, vl_error_message(&err));
            assert_int_equal(scope.flags, c->flags);
            assert_int_equal(scope.n_patients, (size_t)c->patients);
            if (c->patients)
                assert_string_equal(scope.patients[0], "p1");
        } else {
            if (rc != -1 || err.status != (c->expect == LOGIN ? 401 : 403))
                fail_msg("case %zu (%s %s %s): rc %d status %d", i,
                         vl_auth_role_name(c->role) ? vl_auth_role_name(c->role) : "anonymous",
                         c->interaction, c->route, rc, err.status);
            assert_int_equal(scope.flags, 0); /* a denial leaves nothing in scope */
        }
        vl_error_clear(&err);
        vl_arena_free(arena);
    }
}

static void test_open_policy(void **state)
{
    const vl_policy_t *p = &vl_auth_open_policy;
    vl_principal_t who;
    vl_access_t what = {"read", "Observation", "x", NULL, NULL, 0, "/fhir/{type}/{id}"};
    vl_scope_t scope;
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(p->identify(p->ctx, "Bearer whatever", &who, &err), 0);
    assert_int_equal(who.role, VL_ROLE_ANONYMOUS);
    assert_int_equal(p->authorize(p->ctx, &who, &what, NULL, &scope, &err), 0);
    assert_true(scope.flags & VL_SCOPE_ALL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_and_subjects),
        cmocka_unit_test_setup_teardown(test_token_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_and_identify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_credentials_are_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_token_fails_on_the_next_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_table, setup, teardown),
        cmocka_unit_test(test_open_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
