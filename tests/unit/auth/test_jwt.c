/*
 * auth: JWT bearer tokens (jwt.c) and their SMART scopes (policy.c), with
 * RSA and EC keys and tokens made here with OpenSSL: what verifies, every
 * way a token must fail (alg none, HS256 keyed with the public key, unknown
 * or mismatched kid, bad signature, expired, not yet valid, wrong issuer or
 * audience), the clock skew, and how claims and scopes map onto roles.
 */
#include "../support.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "vitalog/auth.h"

#define ISS "https://idp.example.org"
#define AUD "https://fhir.example.org/fhir"

static EVP_PKEY *g_rsa, *g_ec;
static char g_jwks[4096];

static void b64url(const unsigned char *bin, size_t n, char *out, size_t outlen)
{
    sodium_bin2base64(out, outlen, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void bn_b64(EVP_PKEY *k, const char *name, size_t pad, char *out, size_t outlen)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    int n;
    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    b64url(buf, (size_t)n, out, outlen);
    BN_free(bn);
}

static int group_setup(void **state)
{
    char n[400], e[16], x[64], y[64];
    (void)state;
    assert_int_equal(sodium_init() >= 0, 1);
    g_rsa = EVP_RSA_gen(2048);
    g_ec = EVP_EC_gen("P-256");
    assert_non_null(g_rsa);
    assert_non_null(g_ec);
    bn_b64(g_rsa, OSSL_PKEY_PARAM_RSA_N, 0, n, sizeof n);
    bn_b64(g_rsa, OSSL_PKEY_PARAM_RSA_E, 0, e, sizeof e);
    bn_b64(g_ec, OSSL_PKEY_PARAM_EC_PUB_X, 32, x, sizeof x);
    bn_b64(g_ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y, sizeof y);
    snprintf(g_jwks, sizeof g_jwks,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa-1\",\"use\":\"sig\",\"n\":\"%s\","
             "\"e\":\"%s\"},{\"kty\":\"EC\",\"kid\":\"ec-1\",\"crv\":\"P-256\",\"x\":\"%s\","
             "\"y\":\"%s\"},{\"kty\":\"oct\",\"kid\":\"skip-me\",\"k\":\"AAAA\"}]}",
             n, e, x, y);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g_rsa);
    EVP_PKEY_free(g_ec);
    return 0;
}

/* A compact JWS of header and claims (JSON texts), signed as `alg` with
 * `key` (RS256, ES256), HS256 with `hmac_key`, or not at all ("none"). */
static char *jws(const char *header, const char *claims, const char *alg, EVP_PKEY *key,
                 const unsigned char *hmac_key, size_t hmac_len)
{
    static char out[8192];
    char h[1024], c[2048], sig64[1024] = "";
    unsigned char sig[512];
    size_t siglen = sizeof sig, n;
    b64url((const unsigned char *)header, strlen(header), h, sizeof h);
    b64url((const unsigned char *)claims, strlen(claims), c, sizeof c);
    n = (size_t)snprintf(out, sizeof out, "%s.%s", h, c);
    if (!strcmp(alg, "RS256") || !strcmp(alg, "ES256")) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)out, n), 1);
        EVP_MD_CTX_free(md);
        if (!strcmp(alg, "ES256")) { /* DER to r || s */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
            unsigned char rs[64];
            assert_non_null(es);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
            ECDSA_SIG_free(es);
            memcpy(sig, rs, 64);
            siglen = 64;
        }
        b64url(sig, siglen, sig64, sizeof sig64);
    } else if (!strcmp(alg, "HS256")) {
        unsigned int l = 0;
        HMAC(EVP_sha256(), hmac_key, (int)hmac_len, (unsigned char *)out, n, sig, &l);
        b64url(sig, l, sig64, sizeof sig64);
    }
    snprintf(out + n, sizeof out - n, ".%s", sig64);
    return out;
}

static char *claims(int64_t exp, const char *extra)
{
    static char c[1024];
    snprintf(c, sizeof c,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u1\",\"exp\":%lld%s%s}",
             (long long)exp, extra ? "," : "", extra ? extra : "");
    return c;
}

static int verify(const char *token, int64_t now, int *status)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_jwt_t *j = vl_jwt_new(g_jwks, strlen(g_jwks), ISS, AUD, &err);
    json_t *c = NULL;
    int rc;
    assert_non_null(j);
    rc = vl_jwt_verify(j, token, strlen(token), now, &c, &err);
    *status = err.status;
    json_decref(c);
    vl_error_clear(&err);
    vl_jwt_free(j);
    return rc;
}

static void test_good_tokens_verify(void **state)
{
    int64_t now = 1800000000;
    int st;
    (void)state;
    assert_int_equal(verify(jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}",
                                claims(now + 300, NULL), "RS256", g_rsa, NULL, 0),
                            now, &st),
                     0);
    assert_int_equal(verify(jws("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", claims(now + 300, NULL),
                                "ES256", g_ec, NULL, 0),
                            now, &st),
                     0);
    /* aud as an array holding ours; exp just past, within the skew */
    assert_int_equal(
        verify(jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
                   "{\"iss\":\"" ISS "\",\"aud\":[\"other\",\"" AUD "\"],\"exp\":1800000000}",
                   "RS256", g_rsa, NULL, 0),
               now + VL_JWT_SKEW - 1, &st),
        0);
    /* nbf and iat slightly ahead, within the skew */
    assert_int_equal(verify(jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
                                claims(now + 300, "\"nbf\":1800000030,\"iat\":1800000030"), "RS256",
                                g_rsa, NULL, 0),
                            now, &st),
                     0);
}

static void test_bad_tokens_are_401(void **state)
{
    int64_t now = 1800000000;
    unsigned char pub[1024];
    size_t publen = 0;
    const char *ok_claims;
    char tampered[8192];
    EVP_PKEY *other = EVP_EC_gen("P-256");
    struct {
        const char *what;
        char *token;
    } cases[16];
    size_t n = 0;
    (void)state;
    /* the RSA public key as bytes: an HS256 "secret" an attacker has */
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(g_ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &publen),
        1);
#define CASE(w, t) (cases[n].what = (w), cases[n++].token = strdup(t))
    ok_claims = claims(now + 300, NULL);
    CASE("alg none", jws("{\"alg\":\"none\",\"kid\":\"rsa-1\"}", ok_claims, "none", NULL, NULL, 0));
    CASE("HS256 with the public key",
         jws("{\"alg\":\"HS256\",\"kid\":\"ec-1\"}", ok_claims, "HS256", NULL, pub, publen));
    CASE("HS256 with the JWKS text",
         jws("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", ok_claims, "HS256", NULL,
             (const unsigned char *)g_jwks, strlen(g_jwks)));
    CASE("unknown kid",
         jws("{\"alg\":\"RS256\",\"kid\":\"nope\"}", ok_claims, "RS256", g_rsa, NULL, 0));
    CASE("no kid", jws("{\"alg\":\"RS256\"}", ok_claims, "RS256", g_rsa, NULL, 0));
    CASE("RS256 naming the EC key",
         jws("{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", ok_claims, "RS256", g_rsa, NULL, 0));
    CASE("ES256 signed by another key",
         jws("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", ok_claims, "ES256", other, NULL, 0));
    CASE("expired", jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
                        claims(now - VL_JWT_SKEW - 1, NULL), "RS256", g_rsa, NULL, 0));
    CASE("no exp", jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
                       "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}", "RS256", g_rsa, NULL, 0));
    CASE("not yet valid", jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
                              claims(now + 900, "\"nbf\":1800000300"), "RS256", g_rsa, NULL, 0));
    CASE("issued in the future",
         jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", claims(now + 900, "\"iat\":1800000300"),
             "RS256", g_rsa, NULL, 0));
    CASE("another issuer",
         jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
             "{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\",\"exp\":1900000000}", "RS256",
             g_rsa, NULL, 0));
    CASE("another audience",
         jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
             "{\"iss\":\"" ISS "\",\"aud\":\"https://other\",\"exp\":1900000000}", "RS256", g_rsa,
             NULL, 0));
    /* a claim changed after signing */
    snprintf(tampered, sizeof tampered, "%s",
             jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", ok_claims, "RS256", g_rsa, NULL, 0));
    {
        char *dot = strchr(tampered, '.');
        dot[3] = dot[3] == 'A' ? 'B' : 'A';
    }
    CASE("tampered claims", tampered);
    CASE("not a JWS", "abc.def");
    for (size_t i = 0; i < n; i++) {
        int st = 0;
        if (verify(cases[i].token, now, &st) == 0)
            fail_msg("accepted: %s", cases[i].what);
        assert_int_equal(st, 401);
        free(cases[i].token);
    }
    EVP_PKEY_free(other);
#undef CASE
}

static void test_jwks_must_hold_a_usable_key(void **state)
{
    vl_error_t err = VL_ERROR_INIT;
    const char *bad[] = {
        "{}", "not json", "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"small\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(vl_jwt_new(bad[i], strlen(bad[i]), ISS, AUD, &err));
        vl_error_clear(&err);
    }
    assert_null(vl_jwt_new(g_jwks, strlen(g_jwks), "", AUD, &err));
    vl_error_clear(&err);
}

/* ------------------------------------------------------------------------
 * Claims and scopes through the policy
 * ---------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    vl_store_t *store;
    vl_auth_t *auth;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    unsigned char key[32];
    vl_error_t err = VL_ERROR_INIT;
    vl_auth_options_t o = {NULL, NULL, NULL};
    snprintf(f->dir, sizeof f->dir, "/tmp/vl-jwt-XXXXXX");
    tstore_mkdtemp(f->dir);
    f->store = tstore_open(f->dir, NULL);
    randombytes_buf(key, sizeof key);
    o.store = f->store;
    o.token_key = key;
    o.jwt = vl_jwt_new(g_jwks, strlen(g_jwks), ISS, AUD, &err);
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

/* identify "Bearer <a fresh RS256 token with these extra claims>" */
static int identify(fixture_t *f, const char *extra, vl_principal_t *who)
{
    const vl_policy_t *p = vl_auth_policy(f->auth);
    char header[9000];
    vl_error_t err = VL_ERROR_INIT;
    int rc;
    snprintf(header, sizeof header, "Bearer %s",
             jws("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
                 claims(vl_time_now_us() / 1000000 + 300, extra), "RS256", g_rsa, NULL, 0));
    rc = p->identify(p->ctx, header, who, &err);
    vl_error_clear(&err);
    return rc;
}

/* authorize `interaction` on `type`: 0 allowed, else the status */
static int decide(fixture_t *f, const vl_principal_t *who, const char *interaction,
                  const char *type)
{
    const vl_policy_t *p = vl_auth_policy(f->auth);
    vl_access_t what = {interaction, type, NULL, NULL, NULL, 0, "/fhir/{type}"};
    vl_arena_t *a = vl_arena_new();
    vl_scope_t scope;
    vl_error_t err = VL_ERROR_INIT;
    int rc = p->authorize(p->ctx, who, &what, a, &scope, &err), st = err.status;
    vl_error_clear(&err);
    vl_arena_free(a);
    return rc == 0 ? 0 : st;
}

static void test_claims_map_onto_roles(void **state)
{
    fixture_t *f = *state;
    vl_principal_t who;
    (void)state;
    assert_int_equal(
        identify(f, "\"fhirUser\":\"" AUD "/Patient/p1\",\"scope\":\"patient/*.rs\"", &who), 0);
    assert_int_equal(who.role, VL_ROLE_PATIENT);
    assert_string_equal(who.subject, "Patient/p1");
    assert_string_equal(who.patient, "p1");
    assert_true(who.scoped);
    assert_int_equal(identify(f,
                              "\"fhirUser\":\"Practitioner/d1\",\"patient\":\"p7\",\"scope\":"
                              "\"user/Observation.rs\"",
                              &who),
                     0);
    assert_int_equal(who.role, VL_ROLE_CLINIC);
    assert_string_equal(who.subject, "Practitioner/d1");
    assert_string_equal(who.patient, "p7");
    /* no fhirUser: nobody vitalog knows */
    assert_int_equal(identify(f, "\"scope\":\"system/*.rs\"", &who), -1);
    /* a patient's token naming another launch patient */
    assert_int_equal(identify(f, "\"fhirUser\":\"Patient/p1\",\"patient\":\"p2\"", &who), -1);
}

static void test_scopes_narrow_never_widen(void **state)
{
    fixture_t *f = *state;
    vl_principal_t who;
    (void)state;
    /* v2 patient/Observation.rs: read and search Observations, nothing else */
    assert_int_equal(
        identify(f, "\"fhirUser\":\"Patient/p1\",\"scope\":\"patient/Observation.rs\"", &who), 0);
    assert_int_equal(decide(f, &who, "read", "Observation"), 0);
    assert_int_equal(decide(f, &who, "search-type", "Observation"), 0);
    assert_int_equal(decide(f, &who, "create", "Observation"), 403);
    assert_int_equal(decide(f, &who, "read", "Patient"), 403);
    // v1 patient/*.read: reads and searches of every type
    assert_int_equal(identify(f, "\"fhirUser\":\"Patient/p1\",\"scope\":\"patient/*.read\"", &who),
                     0);
    assert_int_equal(decide(f, &who, "read", "Patient"), 0);
    assert_int_equal(decide(f, &who, "search-type", "Device"), 0);
    assert_int_equal(decide(f, &who, "update", "Patient"), 403);
    // user/*.cruds: everything the role allows, and no more
    assert_int_equal(identify(f, "\"fhirUser\":\"Patient/p1\",\"scope\":\"user/*.cruds\"", &who),
                     0);
    assert_int_equal(decide(f, &who, "create", "Observation"), 0);
    assert_int_equal(decide(f, &who, "metrics", NULL), 403); /* still a patient */
    /* a granular scope grants Observations of its category only */
    assert_int_equal(identify(f,
                              "\"fhirUser\":\"Patient/p1\",\"scope\":\"patient/Observation.rs?"
                              "category=http://terminology.hl7.org/CodeSystem/"
                              "observation-category|vital-signs\"",
                              &who),
                     0);
    {
        const vl_policy_t *p = vl_auth_policy(f->auth);
        vl_access_t what = {"search-type", "Observation", NULL, NULL, NULL, 0, "/fhir/{type}"};
        vl_arena_t *a = vl_arena_new();
        vl_scope_t scope;
        vl_error_t err = VL_ERROR_INIT;
        assert_int_equal(p->authorize(p->ctx, &who, &what, a, &scope, &err), 0);
        assert_int_equal(scope.n_categories, 1);
        assert_string_equal(scope.category_type, "Observation");
        assert_string_equal(scope.categories[0].code, "vital-signs");
        assert_string_equal(scope.categories[0].system,
                            "http://terminology.hl7.org/CodeSystem/observation-category");
        vl_arena_free(a);
    }
    assert_int_equal(decide(f, &who, "read", "Patient"), 403);
    assert_int_equal(decide(f, &who, "create", "Observation"), 403);
    /* a broader scope beside it lifts the narrowing; other queries grant nothing */
    assert_int_equal(identify(f,
                              "\"fhirUser\":\"Patient/p1\",\"scope\":\"patient/Observation.rs?"
                              "code=x|y patient/Device.rs?category=a|b\"",
                              &who),
                     0);
    assert_int_equal(decide(f, &who, "search-type", "Observation"), 403);
    assert_int_equal(decide(f, &who, "search-type", "Device"), 403);
    /* malformed permissions grant nothing */
    assert_int_equal(identify(f,
                              "\"fhirUser\":\"Patient/p1\",\"scope\":\"patient/Observation.sr "
                              "patient/Observation.x openid fhirUser\"",
                              &who),
                     0);
    assert_int_equal(decide(f, &who, "read", "Observation"), 403);
    /* patient/ scopes of a practitioner need a launch patient */
    assert_int_equal(
        identify(f, "\"fhirUser\":\"Practitioner/d1\",\"scope\":\"patient/*.rs\"", &who), 0);
    assert_int_equal(decide(f, &who, "read", "Observation"), 403);
    assert_int_equal(
        identify(f,
                 "\"fhirUser\":\"Practitioner/d1\",\"patient\":\"p1\",\"scope\":\"patient/*.rs\"",
                 &who),
        0);
    assert_int_equal(decide(f, &who, "read", "Observation"), 0);
    /* no scopes at all: nothing */
    assert_int_equal(identify(f, "\"fhirUser\":\"Patient/p1\"", &who), 0);
    assert_int_equal(decide(f, &who, "read", "Observation"), 403);
    /* metadata and health need no scope */
    assert_int_equal(decide(f, &who, "capabilities", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_tokens_verify),
        cmocka_unit_test(test_bad_tokens_are_401),
        cmocka_unit_test(test_jwks_must_hold_a_usable_key),
        cmocka_unit_test_setup_teardown(test_claims_map_onto_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes_narrow_never_widen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
