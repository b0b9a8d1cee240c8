/*
 * vitalog — ledger: SHA-256 (RFC 9162 leaf and node hashes, commitments)
 * and the strict hex/base64 codecs every ledger format uses.
 *
 * Hashing is on the write path (one leaf hash per accepted write) and on
 * the verifier's path (one leaf hash and about one node hash per entry), so
 * each thread keeps one EVP_MD_CTX for its lifetime instead of allocating
 * one per digest; the SHA-256 implementation is fetched once per process.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "internal.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_ctx_key;
static int g_key_ok;
static EVP_MD *g_sha256;

static void ctx_free(void *p)
{
    EVP_MD_CTX_free(p);
}

static void sha_init_once(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    g_key_ok = pthread_key_create(&g_ctx_key, ctx_free) == 0;
}

/* This thread's digest context, or NULL (then libsodium computes). */
static EVP_MD_CTX *thread_ctx(void)
{
    EVP_MD_CTX *ctx;
    pthread_once(&g_once, sha_init_once);
    if (!g_sha256 || !g_key_ok)
        return NULL;
    ctx = pthread_getspecific(g_ctx_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        if (ctx && pthread_setspecific(g_ctx_key, ctx) != 0) {
            EVP_MD_CTX_free(ctx);
            ctx = NULL;
        }
    }
    return ctx;
}

void vl__sha256(unsigned char out[VL_HASH_LEN], size_t n, const void *const parts[],
                const size_t lens[])
{
    EVP_MD_CTX *ctx = thread_ctx();
    size_t i;
    if (ctx && EVP_DigestInit_ex2(ctx, g_sha256, NULL) == 1) {
        int ok = 1;
        unsigned int outlen = 0;
        for (i = 0; i < n && ok; i++)
            ok = EVP_DigestUpdate(ctx, parts[i], lens[i]) == 1;
        if (ok && EVP_DigestFinal_ex(ctx, out, &outlen) == 1 && outlen == VL_HASH_LEN)
            return;
    }
    /* Fallback: same digest, portable code, no allocation. */
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (i = 0; i < n; i++)
        crypto_hash_sha256_update(&st, parts[i], lens[i]);
    crypto_hash_sha256_final(&st, out);
}

void vl_ledger_leaf_hash(const void *data, size_t len, unsigned char out[VL_HASH_LEN])
{
    static const unsigned char zero = 0x00;
    const void *parts[2] = {&zero, data ? data : ""};
    size_t lens[2] = {1, data ? len : 0};
    vl__sha256(out, 2, parts, lens);
}

void vl_ledger_node_hash(const unsigned char left[VL_HASH_LEN],
                         const unsigned char right[VL_HASH_LEN], unsigned char out[VL_HASH_LEN])
{
    static const unsigned char one = 0x01;
    const void *parts[3] = {&one, left, right};
    size_t lens[3] = {1, VL_HASH_LEN, VL_HASH_LEN};
    vl__sha256(out, 3, parts, lens);
}

void vl_ledger_empty_root(unsigned char out[VL_HASH_LEN])
{
    /* SHA-256("") */
    static const unsigned char empty[VL_HASH_LEN] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
        0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
        0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    memcpy(out, empty, VL_HASH_LEN);
}

void vl_ledger_commitment(const unsigned char salt[32], const void *bytes, size_t len,
                          unsigned char out[VL_HASH_LEN])
{
    const void *parts[2] = {salt, bytes ? bytes : ""};
    size_t lens[2] = {32, bytes ? len : 0};
    vl__sha256(out, 2, parts, lens);
}

/* ------------------------------------------------------------------------
 * Hex and base64
 * ---------------------------------------------------------------------- */

void vl__hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* Digit value + 1 of each lowercase hex digit, 0 for every other byte
 * (uppercase is not canonical). A table: this runs twice per entry on the
 * verifier's path. */
static const unsigned char hexval1[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

int vl__unhex(const char *in, size_t len, unsigned char *out)
{
    const unsigned char *s = (const unsigned char *)in;
    unsigned bad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned hi = hexval1[s[2 * i]], lo = hexval1[s[2 * i + 1]];
        bad |= (hi == 0) | (lo == 0);
        out[i] = (unsigned char)((hi - 1) << 4 | ((lo - 1) & 15));
    }
    return bad ? -1 : 0;
}

int vl__b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap, size_t *outlen)
{
    size_t n = 0;
    /* libsodium rejects missing padding, stray characters (no `ignore`
     * set, no end pointer) and non-zero trailing bits: one text per value. */
    if (inlen % 4 != 0)
        return -1;
    if (sodium_base642bin(out, cap, in, inlen, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    *outlen = n;
    return 0;
}

int vl__b64_decode_exact(const char *in, size_t inlen, unsigned char *out, size_t want)
{
    size_t n = 0;
    if (inlen != (want + 2) / 3 * 4)
        return -1;
    if (vl__b64_decode(in, inlen, out, want, &n) != 0 || n != want)
        return -1;
    return 0;
}

size_t vl__b64_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if (cap < need)
        return 0;
    sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_ORIGINAL);
    return need - 1;
}
