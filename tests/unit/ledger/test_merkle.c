/*
 * Unit tests for src/ledger/hash.c and merkle.c: RFC 9162 roots, the
 * compact range and the nodes it reports, subtree hashes, proof generation
 * and verification against the transparency-dev/merkle vectors
 * (tests/data/ledger/rfc9162, see its README.md) and exhaustively over
 * synthetic trees up to 64 leaves.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "vitalog/ledger.h"

#include "../support.h"

#define MAXN 64
#define H VL_HASH_LEN

/* Every node a range reports, by (level, index); level 0 = leaves. */
typedef struct store {
    unsigned char node[8][MAXN][H];
    int have[8][MAXN];
    int reports;
} store_t;

static void on_node(void *ctx, int level, uint64_t index, const unsigned char hash[H])
{
    store_t *s = ctx;
    assert_true(level >= 1 && level < 8);
    assert_true(index < MAXN);
    assert_false(s->have[level][index]); /* reported once */
    memcpy(s->node[level][index], hash, H);
    s->have[level][index] = 1;
    s->reports++;
}

static int get_node(void *ctx, int level, uint64_t index, unsigned char out[H])
{
    store_t *s = ctx;
    if (level < 0 || level >= 8 || index >= MAXN || !s->have[level][index])
        return -1;
    memcpy(out, s->node[level][index], H);
    return 0;
}

/* Reference MTH straight from RFC 9162 2.1.1, over leaf hashes. */
static void mth(unsigned char leaves[][H], uint64_t start, uint64_t end, unsigned char out[H])
{
    uint64_t n = end - start, k = 1;
    unsigned char l[H], r[H];
    if (n == 0) {
        vl_ledger_empty_root(out);
        return;
    }
    if (n == 1) {
        memcpy(out, leaves[start], H);
        return;
    }
    while (k * 2 < n)
        k *= 2;
    mth(leaves, start, start + k, l);
    mth(leaves, start + k, end, r);
    vl_ledger_node_hash(l, r, out);
}

static void build(store_t *s, unsigned char leaves[][H], size_t n)
{
    vl_ledger_range_t r;
    memset(s, 0, sizeof *s);
    vl_ledger_range_init(&r);
    for (size_t i = 0; i < n; i++) {
        memcpy(s->node[0][i], leaves[i], H);
        s->have[0][i] = 1;
        vl_ledger_range_append(&r, leaves[i], on_node, s);
    }
}

static void synthetic(unsigned char leaves[MAXN][H])
{
    for (int i = 0; i < MAXN; i++) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "leaf %d", i);
        vl_ledger_leaf_hash(buf, (size_t)n, leaves[i]);
    }
}

static void unhex(const char *hex, unsigned char *out, size_t *len)
{
    size_t n = 0;
    assert_int_equal(sodium_hex2bin(out, 64, hex, strlen(hex), NULL, &n, NULL), 0);
    *len = n;
}

/* ------------------------------------------------------------------------ */

static void test_hashes(void **state)
{
    (void)state;
    unsigned char h[H], want[H], salt[32] = {0};
    size_t n;
    vl_ledger_empty_root(h);
    unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, &n);
    assert_memory_equal(h, want, H);
    vl_ledger_leaf_hash("", 0, h); /* RFC 6962 empty leaf */
    unhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", want, &n);
    assert_memory_equal(h, want, H);
    /* commitment = SHA-256(salt || bytes), checked against libsodium */
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, salt, 32);
    crypto_hash_sha256_update(&st, (const unsigned char *)"{}", 2);
    crypto_hash_sha256_final(&st, want);
    vl_ledger_commitment(salt, "{}", 2, h);
    assert_memory_equal(h, want, H);
}

static void test_reference_roots(void **state)
{
    (void)state;
    char path[512];
    json_t *doc;
    unsigned char inputs[8][16], leaves[8][H], want[H], got[H];
    size_t ilen[8], n;
    snprintf(path, sizeof path, "%s/ledger/rfc9162/leaves-and-roots.json", VL_TEST_DATA);
    doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    json_t *li = json_object_get(doc, "leaf_inputs_hex"),
           *roots = json_object_get(doc, "root_hashes_hex_by_tree_size");
    assert_int_equal(json_array_size(li), 8);
    assert_int_equal(json_array_size(roots), 9);
    for (size_t i = 0; i < 8; i++) {
        unhex(json_string_value(json_array_get(li, i)), inputs[i], &ilen[i]);
        vl_ledger_leaf_hash(inputs[i], ilen[i], leaves[i]);
    }
    for (size_t size = 0; size <= 8; size++) {
        store_t s;
        vl_ledger_range_t r;
        unhex(json_string_value(json_array_get(roots, size)), want, &n);
        assert_int_equal(n, H);
        vl_ledger_range_init(&r);
        for (size_t i = 0; i < size; i++)
            vl_ledger_range_append(&r, leaves[i], NULL, NULL);
        vl_ledger_range_root(&r, got);
        assert_memory_equal(got, want, H);
        build(&s, leaves, size);
        assert_int_equal(vl_ledger_subtree_hash(get_node, &s, 0, size, got), 0);
        assert_memory_equal(got, want, H);
    }
    json_decref(doc);
}

/* Nodes reported by the range are exactly the perfect subtrees. */
static void test_range_nodes(void **state)
{
    (void)state;
    unsigned char leaves[MAXN][H], want[H];
    store_t s;
    synthetic(leaves);
    build(&s, leaves, MAXN);
    assert_int_equal(s.reports, MAXN - 1); /* a perfect tree of 64 has 63 inner nodes */
    for (int level = 1; level < 7; level++)
        for (uint64_t k = 0; k < (uint64_t)(MAXN >> level); k++) {
            assert_true(s.have[level][k]);
            mth(leaves, k << level, (k + 1) << level, want);
            assert_memory_equal(s.node[level][k], want, H);
        }
    /* roots of every size, and subtree hashes of proof ranges */
    for (uint64_t size = 0; size <= MAXN; size++) {
        vl_ledger_range_t r;
        unsigned char got[H];
        vl_ledger_range_init(&r);
        for (uint64_t i = 0; i < size; i++)
            vl_ledger_range_append(&r, leaves[i], NULL, NULL);
        assert_int_equal(r.npeaks, __builtin_popcountll(size));
        vl_ledger_range_root(&r, got);
        mth(leaves, 0, size, want);
        assert_memory_equal(got, want, H);
    }
    /* misaligned ranges do not occur in proofs and are refused */
    unsigned char out[H];
    assert_int_not_equal(vl_ledger_subtree_hash(get_node, &s, 1, 3, out), 0);
    assert_int_not_equal(vl_ledger_subtree_hash(get_node, &s, 3, 2, out), 0);
    assert_int_equal(vl_ledger_subtree_hash(get_node, &s, 8, 13, out), 0);
    mth(leaves, 8, 13, want);
    assert_memory_equal(out, want, H);
}

static void test_proofs_exhaustive(void **state)
{
    (void)state;
    unsigned char leaves[MAXN][H], roots[MAXN + 1][H];
    unsigned char proof[VL_LEDGER_MAX_PROOF][H];
    size_t n;
    store_t s;
    int checked = 0;
    synthetic(leaves);
    build(&s, leaves, MAXN);
    for (uint64_t size = 0; size <= MAXN; size++)
        mth(leaves, 0, size, roots[size]);
    for (uint64_t size = 1; size <= MAXN; size++) {
        for (uint64_t i = 0; i < size; i++) {
            assert_int_equal(vl_ledger_inclusion_proof(get_node, &s, i, size, proof, &n), 0);
            assert_int_equal(vl_ledger_verify_inclusion(i, size, leaves[i], proof, n, roots[size]),
                             0);
            /* wrong index, size, leaf, root, or a flipped bit: rejected */
            if (size > 1)
                assert_int_not_equal(vl_ledger_verify_inclusion((i + 1) % size, size, leaves[i],
                                                                proof, n, roots[size]),
                                     0);
            if (size < MAXN)
                assert_int_not_equal(
                    vl_ledger_verify_inclusion(i, size + 1, leaves[i], proof, n, roots[size + 1]),
                    0);
            assert_int_not_equal(
                vl_ledger_verify_inclusion(i, size, leaves[(i + 1) % MAXN], proof, n, roots[size]),
                0);
            for (size_t k = 0; k < n; k++) {
                proof[k][k % H] ^= 0x10;
                assert_int_not_equal(
                    vl_ledger_verify_inclusion(i, size, leaves[i], proof, n, roots[size]), 0);
                proof[k][k % H] ^= 0x10;
            }
            if (n > 0)
                assert_int_not_equal(
                    vl_ledger_verify_inclusion(i, size, leaves[i], proof, n - 1, roots[size]), 0);
            checked++;
        }
        assert_int_not_equal(vl_ledger_inclusion_proof(get_node, &s, size, size, proof, &n), 0);
    }
    for (uint64_t m = 1; m <= MAXN; m++)
        for (uint64_t sz = m; sz <= MAXN; sz++) {
            assert_int_equal(vl_ledger_consistency_proof(get_node, &s, m, sz, proof, &n), 0);
            assert_int_equal(vl_ledger_verify_consistency(m, sz, roots[m], roots[sz], proof, n), 0);
            if (m < sz) {
                assert_int_not_equal(
                    vl_ledger_verify_consistency(m, sz, roots[m - 1], roots[sz], proof, n), 0);
                assert_int_not_equal(
                    vl_ledger_verify_consistency(m, sz, roots[m], roots[sz - 1], proof, n), 0);
                for (size_t k = 0; k < n; k++) {
                    proof[k][0] ^= 1;
                    assert_int_not_equal(
                        vl_ledger_verify_consistency(m, sz, roots[m], roots[sz], proof, n), 0);
                    proof[k][0] ^= 1;
                }
                assert_int_not_equal(
                    vl_ledger_verify_consistency(m, sz, roots[m], roots[sz], proof, n - 1), 0);
            } else {
                assert_int_equal(n, 0);
            }
            checked++;
        }
    assert_int_not_equal(vl_ledger_consistency_proof(get_node, &s, 0, 5, proof, &n), 0);
    assert_int_not_equal(vl_ledger_consistency_proof(get_node, &s, 6, 5, proof, &n), 0);
    assert_int_equal(checked, 64 * 65 / 2 * 2);
}

/* ---- RFC 9162 vectors ------------------------------------------------- */

/* A root or leaf hash from a vector: the API takes 32-byte values, so an
 * empty or longer value is not representable (counts as rejected) and a
 * shorter non-empty placeholder ("don't care") is zero-padded, which keeps
 * equal placeholders equal and different ones different. */
static int vec_hash(json_t *v, unsigned char out[H])
{
    unsigned char buf[128];
    size_t n = 0;
    const char *s = json_string_value(v);
    memset(out, 0, H);
    if (!s || !*s)
        return -1;
    if (sodium_base642bin(buf, sizeof buf, s, strlen(s), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n == 0 || n > H)
        return -1;
    memcpy(out, buf, n);
    return 0;
}

/* Proof elements must be exactly 32 bytes. */
static int vec_proof(json_t *arr, unsigned char proof[][H], size_t *n)
{
    *n = 0;
    if (json_is_null(arr) || !arr)
        return 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        unsigned char buf[128];
        size_t len = 0;
        const char *s = json_string_value(json_array_get(arr, i));
        if (i >= VL_LEDGER_MAX_PROOF || !s ||
            sodium_base642bin(buf, sizeof buf, s, strlen(s), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            len != H)
            return -1;
        memcpy(proof[i], buf, H);
        (*n)++;
    }
    return 0;
}

typedef struct vec_ctx {
    store_t s;
    int files, accepted, happy_compared;
} vec_ctx_t;

/* Integers straight from the text: some vectors hold 2^64-1, which
 * jansson cannot represent as an integer. */
static uint64_t vec_uint(const char *text, const char *field)
{
    char key[64];
    const char *p;
    snprintf(key, sizeof key, "\"%s\":", field);
    p = strstr(text, key);
    assert_non_null(p);
    return strtoull(p + strlen(key), NULL, 10);
}

static void run_vector(vec_ctx_t *c, const char *path, int inclusion)
{
    json_error_t jerr;
    char *text = test_read_file(path, NULL);
    json_t *doc = text ? json_loads(text, JSON_DECODE_INT_AS_REAL, &jerr) : NULL;
    unsigned char a[H], b[H], proof[VL_LEDGER_MAX_PROOF][H], gen[VL_LEDGER_MAX_PROOF][H];
    size_t n = 0, gn = 0;
    int ok, want_err;
    if (!doc)
        fail_msg("%s: %s", path, jerr.text);
    want_err = json_is_true(json_object_get(doc, "wantErr"));
    if (inclusion) {
        uint64_t idx = vec_uint(text, "leafIdx"), size = vec_uint(text, "treeSize");
        ok = vec_hash(json_object_get(doc, "leafHash"), a) == 0 &&
             vec_hash(json_object_get(doc, "root"), b) == 0 &&
             vec_proof(json_object_get(doc, "proof"), proof, &n) == 0 &&
             vl_ledger_verify_inclusion(idx, size, a, proof, n, b) == 0;
        if (!want_err && size <= 8 && strstr(path, "happy-path")) {
            assert_int_equal(vl_ledger_inclusion_proof(get_node, &c->s, idx, size, gen, &gn), 0);
            assert_int_equal(gn, n);
            assert_memory_equal(gen, proof, n * H);
            c->happy_compared++;
        }
    } else {
        uint64_t s1 = vec_uint(text, "size1"), s2 = vec_uint(text, "size2");
        ok = vec_hash(json_object_get(doc, "root1"), a) == 0 &&
             vec_hash(json_object_get(doc, "root2"), b) == 0 &&
             vec_proof(json_object_get(doc, "proof"), proof, &n) == 0 &&
             vl_ledger_verify_consistency(s1, s2, a, b, proof, n) == 0;
        if (!want_err && s2 <= 8 && strstr(path, "happy-path")) {
            assert_int_equal(vl_ledger_consistency_proof(get_node, &c->s, s1, s2, gen, &gn), 0);
            assert_int_equal(gn, n);
            assert_memory_equal(gen, proof, n * H);
            c->happy_compared++;
        }
    }
    if (ok == want_err)
        fail_msg("%s: %s, want %s", path, ok ? "accepted" : "rejected",
                 want_err ? "rejected" : "accepted");
    c->files++;
    c->accepted += ok;
    json_decref(doc);
    free(text);
}

static void walk(vec_ctx_t *c, const char *dir, int inclusion)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d))) {
        char path[1024];
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0)
            run_vector(c, path, inclusion);
        else
            walk(c, path, inclusion);
    }
    closedir(d);
}

static void test_rfc9162_vectors(void **state)
{
    (void)state;
    static vec_ctx_t c;
    char path[512], *doc;
    unsigned char leaves[8][H];
    json_t *j, *li;
    memset(&c, 0, sizeof c);
    snprintf(path, sizeof path, "%s/ledger/rfc9162/leaves-and-roots.json", VL_TEST_DATA);
    doc = test_read_file(path, NULL);
    assert_non_null(doc);
    j = json_loads(doc, 0, NULL);
    li = json_object_get(j, "leaf_inputs_hex");
    for (size_t i = 0; i < 8; i++) {
        unsigned char in[16];
        size_t n;
        unhex(json_string_value(json_array_get(li, i)), in, &n);
        vl_ledger_leaf_hash(in, n, leaves[i]);
    }
    build(&c.s, leaves, 8);
    snprintf(path, sizeof path, "%s/ledger/rfc9162/inclusion", VL_TEST_DATA);
    walk(&c, path, 1);
    int inc = c.files, inc_ok = c.accepted;
    snprintf(path, sizeof path, "%s/ledger/rfc9162/consistency", VL_TEST_DATA);
    walk(&c, path, 0);
    print_message("rfc9162: %d inclusion files (%d accepted), %d consistency files (%d accepted), "
                  "%d generated proofs equal to the vectors'\n",
                  inc, inc_ok, c.files - inc, c.accepted - inc_ok, c.happy_compared);
    assert_int_equal(c.accepted, 12);       /* the files whose wantErr is false */
    assert_int_equal(c.files, 196);         /* every inclusion/ and consistency/ file */
    assert_int_equal(c.happy_compared, 10); /* inclusion/0..4, consistency/0..4 */
    json_decref(j);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hashes),          cmocka_unit_test(test_reference_roots),
        cmocka_unit_test(test_range_nodes),     cmocka_unit_test(test_proofs_exhaustive),
        cmocka_unit_test(test_rfc9162_vectors),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
