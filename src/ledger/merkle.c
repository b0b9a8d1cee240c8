/*
 * vitalog — ledger: RFC 9162 Merkle trees (compact range, subtree hashes,
 * inclusion and consistency proofs and their verification).
 *
 * NOTES ON THE DESIGN OF THE LEDGER
 *
 * The ledger is a sequence of entry lines L[0], L[1], ... (entry.c). Every
 * module that writes or checks it relies on these invariants:
 *
 *  1. Entry i's hash is H(i) = SHA-256(0x00 || L[i]), the RFC 9162 leaf hash;
 *     the ledger's Merkle tree is the RFC 9162 tree over H(0..n-1).
 *  2. L[i] carries "index":i and "prev":hex(H(i-1)), 64 zeros for i = 0:
 *     the hash chain. A line is valid only in its canonical form (entry.c):
 *     one text per entry, so H(i) is a function of the entry's content.
 *  3. A compact range of size n holds exactly popcount(n) peaks: the roots
 *     of the perfect subtrees given by the set bits of n, largest first
 *     (vl__range_valid() checks this in debug builds).
 *  4. Node (level L, index k), L >= 1, is the root of the perfect subtree
 *     over leaves [k*2^L, (k+1)*2^L). It is reported exactly once, when its
 *     last leaf is appended, and never changes afterwards: the store may
 *     keep it forever and proofs read it back through a vl_ledger_node_fn.
 *  5. A checkpoint is the signed note of "origin\nsize\nbase64(root)\n"
 *     where root = MTH(H(0..size-1)); the server signs only roots of its
 *     own compact range, so two checkpoints of one origin are always
 *     consistent (a consistency proof exists between them).
 *  6. A key rotation is entry r, signed by a key trusted before r; from
 *     r+1 on, only the new key signs checkpoints (verifier.c).
 *  7. Verification fails closed: a verify function that returns non-zero
 *     leaves no output (note text NULL), and a verifier that failed once
 *     stays failed and repeats its first error.
 *
 * The streaming verifier (verifier.c):
 *
 *      vl_ledger_verifier_new()
 *              |
 *              v        vl_ledger_verifier_entry()       (next index, chain,
 *        +-----------+ <-------------------------------+  rotation, append)
 *        | ACCEPTING |                                  |
 *        +-----------+ --------------------------------+
 *           |     |         vl_ledger_verifier_checkpoint() (signature,
 *           |     |         origin, size, root)
 *   any check fails \
 *           |        vl_ledger_verifier_finish()
 *           v                 v
 *      +--------+       +----------+
 *      | FAILED |       | FINISHED | (0: a checkpoint covers every entry)
 *      +--------+       +----------+
 *   (sticky: every later call returns the first error)
 *
 * A chain break between entries i and i+1 cannot say by itself which of
 * the two lines was altered; the verifier holds the error until the next
 * entry or checkpoint decides it (verifier.c, "pending break").
 */
#include <assert.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

/* ------------------------------------------------------------------------
 * Compact range
 * ---------------------------------------------------------------------- */

#ifndef NDEBUG
/* Invariant 3. */
static int vl__range_valid(const vl_ledger_range_t *r)
{
    return r->npeaks >= 0 && r->npeaks <= 64 && r->npeaks == __builtin_popcountll(r->size);
}
#endif
#define VL_ASSERT_RANGE(r) assert(vl__range_valid(r))

void vl_ledger_range_init(vl_ledger_range_t *r)
{
    r->size = 0;
    r->npeaks = 0;
}

void vl_ledger_range_append(vl_ledger_range_t *r, const unsigned char leaf[VL_HASH_LEN],
                            vl_ledger_node_cb cb, void *ctx)
{
    unsigned char h[VL_HASH_LEN];
    uint64_t index = r->size;
    int level = 0;
    VL_ASSERT_RANGE(r);
    if (r->size == UINT64_MAX)
        return; /* 2^64 - 1 leaves: the tree cannot grow (never reached) */
    memcpy(h, leaf, VL_HASH_LEN);
    /* Each set low bit of size is a peak of that level waiting for a
     * sibling: merge while the lowest peak has the level of h. */
    while ((r->size >> level) & 1) {
        vl_ledger_node_hash(r->peaks[--r->npeaks], h, h);
        level++;
        index >>= 1;
        if (cb)
            cb(ctx, level, index, h);
    }
    memcpy(r->peaks[r->npeaks++], h, VL_HASH_LEN);
    r->size++;
    VL_ASSERT_RANGE(r);
}

void vl_ledger_range_root(const vl_ledger_range_t *r, unsigned char out[VL_HASH_LEN])
{
    unsigned char h[VL_HASH_LEN];
    VL_ASSERT_RANGE(r);
    if (r->npeaks == 0) {
        vl_ledger_empty_root(out);
        return;
    }
    memcpy(h, r->peaks[r->npeaks - 1], VL_HASH_LEN);
    for (int i = r->npeaks - 2; i >= 0; i--)
        vl_ledger_node_hash(r->peaks[i], h, h);
    memcpy(out, h, VL_HASH_LEN);
}

/* ------------------------------------------------------------------------
 * Subtree hashes and proofs (RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1)
 * ---------------------------------------------------------------------- */

/* Largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

/* Largest power of two <= n (n >= 1). */
static uint64_t floor_pow2(uint64_t n)
{
    return UINT64_C(1) << (63 - __builtin_clzll(n));
}

int vl_ledger_subtree_hash(vl_ledger_node_fn fn, void *ctx, uint64_t start, uint64_t end,
                           unsigned char out[VL_HASH_LEN])
{
    uint64_t n, p;
    if (end < start || !fn)
        return -1;
    n = end - start;
    if (n == 0) {
        if (start != 0)
            return -1;
        vl_ledger_empty_root(out);
        return 0;
    }
    p = floor_pow2(n);
    if (start % p != 0)
        return -1; /* not a range that occurs in a proof: no stored nodes */
    if (p == n) {
        int level = __builtin_ctzll(n);
        return fn(ctx, level, start >> level, out) == 0 ? 0 : -1;
    }
    /* n is not a power of two: left part is the perfect [start, start+p),
     * right part [start+p, end) is shorter than p and aligned to it. */
    unsigned char left[VL_HASH_LEN], right[VL_HASH_LEN];
    int level = __builtin_ctzll(p);
    if (fn(ctx, level, start >> level, left) != 0)
        return -1;
    if (vl_ledger_subtree_hash(fn, ctx, start + p, end, right) != 0)
        return -1;
    vl_ledger_node_hash(left, right, out);
    return 0;
}

/* Appends MTH(D[start:end]) to proof[*n]. */
static int proof_push(vl_ledger_node_fn fn, void *ctx, uint64_t start, uint64_t end,
                      unsigned char proof[][VL_HASH_LEN], size_t *n)
{
    if (*n >= VL_LEDGER_MAX_PROOF)
        return -1;
    if (vl_ledger_subtree_hash(fn, ctx, start, end, proof[*n]) != 0)
        return -1;
    (*n)++;
    return 0;
}

/* PATH(index - start, D[start:end]); index in [start, end). */
static int path(vl_ledger_node_fn fn, void *ctx, uint64_t index, uint64_t start, uint64_t end,
                unsigned char proof[][VL_HASH_LEN], size_t *n)
{
    uint64_t k;
    if (end - start == 1)
        return 0; /* PATH(0, {d}) = {} */
    k = split_point(end - start);
    if (index < start + k) {
        if (path(fn, ctx, index, start, start + k, proof, n) != 0)
            return -1;
        return proof_push(fn, ctx, start + k, end, proof, n);
    }
    if (path(fn, ctx, index, start + k, end, proof, n) != 0)
        return -1;
    return proof_push(fn, ctx, start, start + k, proof, n);
}

int vl_ledger_inclusion_proof(vl_ledger_node_fn fn, void *ctx, uint64_t index, uint64_t size,
                              unsigned char proof[][VL_HASH_LEN], size_t *n)
{
    *n = 0;
    if (!fn || index >= size)
        return -1;
    if (path(fn, ctx, index, 0, size, proof, n) != 0) {
        *n = 0;
        return -1;
    }
    return 0;
}

/* SUBPROOF(m, D[start:end], b), m leaves of the old tree inside the range. */
static int subproof(vl_ledger_node_fn fn, void *ctx, uint64_t m, uint64_t start, uint64_t end,
                    int b, unsigned char proof[][VL_HASH_LEN], size_t *n)
{
    uint64_t k;
    if (m == end - start) {
        if (b)
            return 0;
        return proof_push(fn, ctx, start, end, proof, n);
    }
    k = split_point(end - start);
    if (m <= k) {
        if (subproof(fn, ctx, m, start, start + k, b, proof, n) != 0)
            return -1;
        return proof_push(fn, ctx, start + k, end, proof, n);
    }
    if (subproof(fn, ctx, m - k, start + k, end, 0, proof, n) != 0)
        return -1;
    return proof_push(fn, ctx, start, start + k, proof, n);
}

int vl_ledger_consistency_proof(vl_ledger_node_fn fn, void *ctx, uint64_t first, uint64_t second,
                                unsigned char proof[][VL_HASH_LEN], size_t *n)
{
    *n = 0;
    /* RFC 9162 defines PROOF(m, D[n]) for 0 < m <= n (m = n: empty). */
    if (!fn || first == 0 || first > second)
        return -1;
    if (subproof(fn, ctx, first, 0, second, 1, proof, n) != 0) {
        *n = 0;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Verification (RFC 9162 2.1.3.2, 2.1.4.2)
 * ---------------------------------------------------------------------- */

static int hash_eq(const unsigned char a[VL_HASH_LEN], const unsigned char b[VL_HASH_LEN])
{
    return CRYPTO_memcmp(a, b, VL_HASH_LEN) == 0;
}

int vl_ledger_verify_inclusion(uint64_t index, uint64_t size, const unsigned char leaf[VL_HASH_LEN],
                               const unsigned char proof[][VL_HASH_LEN], size_t n,
                               const unsigned char root[VL_HASH_LEN])
{
    unsigned char r[VL_HASH_LEN];
    uint64_t fn, sn;
    if (index >= size || n > VL_LEDGER_MAX_PROOF) /* step 1 */
        return -1;
    fn = index; /* step 2 */
    sn = size - 1;
    memcpy(r, leaf, VL_HASH_LEN);    /* step 3 */
    for (size_t i = 0; i < n; i++) { /* step 4 */
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn) {
            vl_ledger_node_hash(proof[i], r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            vl_ledger_node_hash(r, proof[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && hash_eq(r, root) ? 0 : -1; /* step 5 */
}

int vl_ledger_verify_consistency(uint64_t first, uint64_t second,
                                 const unsigned char root1[VL_HASH_LEN],
                                 const unsigned char root2[VL_HASH_LEN],
                                 const unsigned char proof[][VL_HASH_LEN], size_t n)
{
    unsigned char fr[VL_HASH_LEN], sr[VL_HASH_LEN];
    uint64_t fn, sn;
    size_t i = 0;
    /* RFC 9162 2.1.4 proves 0 < first <= second; equal sizes need an empty
     * proof and equal roots. A size-0 tree proves nothing: rejected. */
    if (first == 0 || first > second || n > VL_LEDGER_MAX_PROOF)
        return -1;
    if (first == second)
        return n == 0 && hash_eq(root1, root2) ? 0 : -1;
    if (n == 0) /* step 1 */
        return -1;
    fn = first - 1; /* step 3 */
    sn = second - 1;
    while (fn & 1) { /* step 4 */
        fn >>= 1;
        sn >>= 1;
    }
    /* steps 2 and 5: the first value is root1 itself when first is a
     * power of two (prepended), else the first proof element. */
    if ((first & (first - 1)) == 0) {
        memcpy(fr, root1, VL_HASH_LEN);
    } else {
        memcpy(fr, proof[0], VL_HASH_LEN);
        i = 1;
    }
    memcpy(sr, fr, VL_HASH_LEN);
    for (; i < n; i++) { /* step 6 */
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn) {
            vl_ledger_node_hash(proof[i], fr, fr);
            vl_ledger_node_hash(proof[i], sr, sr);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            vl_ledger_node_hash(sr, proof[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    /* step 7 */
    return sn == 0 && hash_eq(fr, root1) && hash_eq(sr, root2) ? 0 : -1;
}
