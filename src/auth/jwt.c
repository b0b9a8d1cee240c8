/*
 * vitalog — auth/jwt.c: JWT bearer tokens from an identity provider
 * (RFC 7519, RFC 7515 compact form, RFC 7517 JWKS, RFC 7518 RS256/ES256),
 * verified with OpenSSL, mapped onto vitalog's roles (docs/security.md
 * "Tokens from an identity provider").
 *
 * What is accepted: a header with "alg" RS256 or ES256 and a "kid" that
 * names a key of the JWKS file of the same kind (RSA for RS256, EC P-256
 * for ES256); a signature that verifies; "iss" equal to the configured
 * issuer; "aud" equal to (or, as an array, containing) the configured
 * audience; "exp" after now and, when present, "nbf" and "iat" not after
 * now, each with VL_JWT_SKEW seconds of clock skew. Everything else is 401:
 * "alg":"none", HS256 (whatever its key: a public key is no HMAC secret),
 * unknown kid, a kid of the other kind, a bad signature, expired,
 * not-yet-valid, another issuer or audience.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include "vitalog/auth.h"

#define VL_JWT_MAX_KEYS 32
#define VL_JWT_MAX_LEN 8192

typedef struct jwk {
    char kid[128];
    int ec; /* 0 RSA, 1 EC P-256 */
    EVP_PKEY *key;
} jwk_t;

struct vl_jwt {
    jwk_t keys[VL_JWT_MAX_KEYS];
    size_t n;
    char issuer[256], audience[256];
};

/* ------------------------------------------------------------------------
 * base64url
 * ---------------------------------------------------------------------- */

/* Decodes unpadded base64url text into a malloc'd buffer (+NUL). */
static unsigned char *b64url(const char *s, size_t len, size_t *out_len)
{
    unsigned char *out = malloc(len + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    if (sodium_base642bin(out, len + 1, s, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ------------------------------------------------------------------------
 * Keys (JWKS)
 * ---------------------------------------------------------------------- */

static BIGNUM *bn_b64(const char *s)
{
    size_t n;
    unsigned char *bin = s ? b64url(s, strlen(s), &n) : NULL;
    BIGNUM *bn = bin ? BN_bin2bn(bin, (int)n, NULL) : NULL;
    free(bin);
    return bn;
}

static EVP_PKEY *rsa_key(const json_t *k)
{
    BIGNUM *n = bn_b64(jstr(k, "n")), *e = bn_b64(jstr(k, "e"));
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *p = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    if (n && e && b && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e) && (p = OSSL_PARAM_BLD_to_param(b)) &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) && EVP_PKEY_fromdata_init(ctx) > 0)
        if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, p) <= 0)
            key = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(p);
    OSSL_PARAM_BLD_free(b);
    BN_free(n);
    BN_free(e);
    if (key && EVP_PKEY_get_bits(key) < 2048) { /* RFC 7518 3.3: 2048 bits or more */
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

static EVP_PKEY *ec_key(const json_t *k)
{
    size_t xn = 0, yn = 0;
    const char *crv = jstr(k, "crv");
    unsigned char *x = jstr(k, "x") ? b64url(jstr(k, "x"), strlen(jstr(k, "x")), &xn) : NULL;
    unsigned char *y = jstr(k, "y") ? b64url(jstr(k, "y"), strlen(jstr(k, "y")), &yn) : NULL;
    unsigned char point[65];
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    if (crv && !strcmp(crv, "P-256") && x && y && xn == 32 && yn == 32) {
        point[0] = 0x04;
        memcpy(point + 1, x, 32);
        memcpy(point + 33, y, 32);
        params[0] =
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point);
        params[2] = OSSL_PARAM_construct_end();
        if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) &&
            EVP_PKEY_fromdata_init(ctx) > 0 &&
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
            key = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    free(x);
    free(y);
    return key;
}

vl_jwt_t *vl_jwt_new(const char *jwks_text, size_t len, const char *issuer, const char *audience,
                     vl_error_t *err)
{
    vl_jwt_t *j;
    json_error_t jerr;
    json_t *doc, *keys, *k;
    size_t i;
    if (!issuer || !*issuer || !audience || !*audience || strlen(issuer) >= 256 ||
        strlen(audience) >= 256) {
        vl_error_set(err, 400, "invalid", NULL, "a JWT issuer and audience are both needed");
        return NULL;
    }
    doc = json_loadb(jwks_text, len, JSON_REJECT_DUPLICATES, &jerr);
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        vl_error_set(err, 400, "invalid", NULL, "the JWKS is not {\"keys\":[...]}: %s",
                     doc ? "no keys array" : jerr.text);
        return NULL;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(doc);
        vl_error_set(err, 500, "exception", NULL, "out of memory");
        return NULL;
    }
    snprintf(j->issuer, sizeof j->issuer, "%s", issuer);
    snprintf(j->audience, sizeof j->audience, "%s", audience);
    json_array_foreach (keys, i, k) {
        const char *kty = jstr(k, "kty"), *kid = jstr(k, "kid"), *use = jstr(k, "use");
        jwk_t *slot;
        if (j->n == VL_JWT_MAX_KEYS || !kty || !kid || strlen(kid) >= sizeof slot->kid ||
            (use && strcmp(use, "sig") != 0))
            continue; /* keys vitalog cannot use are skipped, not fatal */
        slot = &j->keys[j->n];
        slot->ec = !strcmp(kty, "EC");
        slot->key = !strcmp(kty, "RSA") ? rsa_key(k) : slot->ec ? ec_key(k) : NULL;
        if (!slot->key)
            continue;
        snprintf(slot->kid, sizeof slot->kid, "%s", kid);
        j->n++;
    }
    json_decref(doc);
    if (!j->n) {
        free(j);
        vl_error_set(err, 400, "invalid", NULL,
                     "the JWKS holds no usable key (RSA of 2048 bits or more, EC P-256, with a "
                     "kid)");
        return NULL;
    }
    return j;
}

void vl_jwt_free(vl_jwt_t *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        EVP_PKEY_free(j->keys[i].key);
    free(j);
}

/* ------------------------------------------------------------------------
 * Verification
 * ---------------------------------------------------------------------- */

static int verify_sig(const jwk_t *k, const char *signed_part, size_t signed_len,
                      const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[80];
    const unsigned char *use = sig;
    size_t use_len = sig_len;
    int ok = 0;
    if (!md)
        return 0;
    if (k->ec) { /* JWS ES256 is r || s, 32 bytes each; OpenSSL wants DER */
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r, *s;
        unsigned char *p = der;
        int n;
        if (sig_len != 64 || !es) {
            ECDSA_SIG_free(es);
            EVP_MD_CTX_free(md);
            return 0;
        }
        r = BN_bin2bn(sig, 32, NULL);
        s = BN_bin2bn(sig + 32, 32, NULL);
        if (!r || !s || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            EVP_MD_CTX_free(md);
            return 0;
        }
        n = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        if (n <= 0) {
            EVP_MD_CTX_free(md);
            return 0;
        }
        use = der;
        use_len = (size_t)n;
    }
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->key) == 1 &&
         EVP_DigestVerify(md, use, use_len, (const unsigned char *)signed_part, signed_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static int bad(vl_error_t *err, const char *why)
{
    return vl_error_set(err, 401, "login", NULL, "the JWT is not accepted: %s", why);
}

static int aud_ok(const json_t *aud, const char *want)
{
    size_t i;
    const json_t *a;
    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), want);
    json_array_foreach (aud, i, a)
        if (json_is_string(a) && !strcmp(json_string_value(a), want))
            return 1;
    return 0;
}

/* A time claim in seconds; -1 absent, -2 malformed. */
static json_int_t time_claim(const json_t *claims, const char *name)
{
    const json_t *v = json_object_get(claims, name);
    if (!v)
        return -1;
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) >= 0)
        return (json_int_t)json_real_value(v);
    return -2;
}

int vl_jwt_verify(const vl_jwt_t *j, const char *token, size_t len, int64_t now_s,
                  json_t **claims_out, vl_error_t *err)
{
    const char *dot1 = memchr(token, '.', len), *dot2;
    unsigned char *hbin = NULL, *pbin = NULL, *sig = NULL;
    size_t hn, pn, sn;
    json_t *header = NULL, *claims = NULL;
    const char *alg, *kid;
    const jwk_t *k = NULL;
    json_int_t exp, nbf, iat;
    int rc = -1;
    *claims_out = NULL;
    if (len > VL_JWT_MAX_LEN || !dot1 ||
        !(dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))))
        return bad(err, "not a compact JWS (header.payload.signature)");
    if (!(hbin = b64url(token, (size_t)(dot1 - token), &hn)) ||
        !(pbin = b64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), &pn)) ||
        !(sig = b64url(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sn))) {
        bad(err, "not base64url");
        goto out;
    }
    header = json_loadb((const char *)hbin, hn, JSON_REJECT_DUPLICATES, NULL);
    claims = json_loadb((const char *)pbin, pn, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(header) || !json_is_object(claims)) {
        bad(err, "the header or the claims are not a JSON object");
        goto out;
    }
    alg = jstr(header, "alg");
    kid = jstr(header, "kid");
    if (!alg || (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0)) {
        bad(err, "alg must be RS256 or ES256");
        goto out;
    }
    if (json_object_get(header, "crit")) {
        bad(err, "crit header parameters are not understood");
        goto out;
    }
    for (size_t i = 0; kid && i < j->n; i++)
        if (!strcmp(j->keys[i].kid, kid) && j->keys[i].ec == !strcmp(alg, "ES256"))
            k = &j->keys[i];
    if (!k) {
        bad(err, "no key of the JWKS has this kid for this alg");
        goto out;
    }
    if (!verify_sig(k, token, (size_t)(dot2 - token), sig, sn)) {
        bad(err, "the signature does not verify");
        goto out;
    }
    if (!jstr(claims, "iss") || strcmp(jstr(claims, "iss"), j->issuer) != 0) {
        bad(err, "another issuer");
        goto out;
    }
    if (!aud_ok(json_object_get(claims, "aud"), j->audience)) {
        bad(err, "another audience");
        goto out;
    }
    exp = time_claim(claims, "exp");
    nbf = time_claim(claims, "nbf");
    iat = time_claim(claims, "iat");
    if (exp < 0 || nbf == -2 || iat == -2) {
        bad(err, "exp is required; exp, nbf and iat are NumericDates");
        goto out;
    }
    if (exp + VL_JWT_SKEW <= now_s) {
        bad(err, "expired");
        goto out;
    }
    if ((nbf >= 0 && nbf > now_s + VL_JWT_SKEW) || (iat >= 0 && iat > now_s + VL_JWT_SKEW)) {
        bad(err, "not valid yet");
        goto out;
    }
    *claims_out = claims;
    claims = NULL;
    rc = 0;
out:
    json_decref(header);
    json_decref(claims);
    free(hbin);
    free(pbin);
    free(sig);
    return rc;
}
