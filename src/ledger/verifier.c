/*
 * vitalog — ledger: the streaming verifier (state diagram and invariants
 * in merkle.c). O(log n) memory: the next index, the previous entry hash,
 * the compact range, the trusted keys and the origin.
 *
 * Keys: the verifier starts with the keys it is given. A key-rotation
 * entry at index r must be signed by one of the keys trusted at that point;
 * from then on the new key is the only trusted key, so every checkpoint of
 * size > r must be signed by it and older keys no longer count.
 *
 * Naming the altered entry: when entry i+1's prev differs from the hash of
 * entry i, either line was altered. One altered line k breaks the links
 * k-1 -> k (only if its prev changed) and k -> k+1 (always: its hash
 * changed). So the verifier holds a "pending break" and decides on the next
 * event: if entry i+2 links to entry i+1, entry i was altered, otherwise
 * entry i+1 was; if a checkpoint comes first, it is entry i when the root
 * with leaf i replaced by the recorded prev matches the signed root, and
 * entry i+1 otherwise. With no further evidence the error names entry i.
 * Likewise a signed root that differs from the entries' (chain intact) is
 * either entry size-1 altered or a bad checkpoint: the next entry's prev
 * decides ("pend_root"), and without one the checkpoint is named.
 *
 * So a failure may surface one call late (at the next entry, checkpoint or
 * vl_ledger_verifier_finish()), never later: callers must call finish.
 *
 * With a keys list (vl_ledger_verifier_new_keys, docs/ledger.md 5.1) the
 * verifier also holds the listed rotations and a cursor into them: a
 * key-rotation entry must be the one under the cursor (same index, same
 * key; its signature is checked as always), an entry at the cursor's index
 * must be a rotation, and finish fails while the cursor has not reached
 * the end. The list adds checks, never trust: only its first key is
 * trusted, and every later one still needs its signed rotation entry.
 *
 * Every error message starts with "entry N:" or "checkpoint at size N:".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

#define VL_ORIGIN_MAX 1024

struct vl_ledger_verifier {
    uint64_t next;                   /* entries accepted so far = next index */
    unsigned char prev[VL_HASH_LEN]; /* entry hash of entry next-1 */
    vl_ledger_range_t range;         /* tree over entries [0, next) */
    vl_ledger_range_t before_last;   /* tree over entries [0, next-1) */
    vl_ledger_key_t *keys;           /* trusted for checkpoints and rotations */
    size_t nkeys;
    char origin[VL_ORIGIN_MAX + 1];
    int have_origin;
    uint64_t checkpoints;     /* checkpoints accepted */
    uint64_t last_checkpoint; /* size of the last one */
    int failed;               /* FAILED state: errmsg repeats */
    char errmsg[1024];
    int pending;                             /* chain break between next-2 and next-1 */
    unsigned char pend_claimed[VL_HASH_LEN]; /* prev recorded in entry next-1 */
    vl_ledger_range_t pend_base;             /* tree over entries [0, next-2) */
    int pend_root;                           /* checkpoint at size next had another root */
    int listed;                              /* checking against a keys list */
    vl_ledger_rotation_t *expect;            /* its rotations, index order */
    size_t nexpect, expect_next;             /* how many; the next one due */
    vl_ledger_entry_t last;                  /* entry next-1 (for consent entries) */
};

static void range_copy(vl_ledger_range_t *dst, const vl_ledger_range_t *src)
{
    dst->size = src->size;
    dst->npeaks = src->npeaks;
    memcpy(dst->peaks, src->peaks, (size_t)src->npeaks * VL_HASH_LEN);
}

vl_ledger_verifier_t *vl_ledger_verifier_new(const vl_ledger_key_t *trusted, size_t n,
                                             const char *origin)
{
    vl_ledger_verifier_t *v;
    if (origin && strlen(origin) > VL_ORIGIN_MAX)
        return NULL;
    v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (n > 0) {
        v->keys = calloc(n, sizeof *v->keys);
        if (!v->keys) {
            free(v);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            v->keys[i] = trusted[i];
            /* the verifier never signs: do not keep secrets */
            memset(v->keys[i].sk, 0, sizeof v->keys[i].sk);
            v->keys[i].has_secret = 0;
        }
    }
    v->nkeys = n;
    vl_ledger_range_init(&v->range);
    vl_ledger_range_init(&v->before_last);
    if (origin) {
        strcpy(v->origin, origin);
        v->have_origin = 1;
    }
    return v;
}

vl_ledger_verifier_t *vl_ledger_verifier_new_keys(const vl_ledger_keys_t *list)
{
    vl_ledger_verifier_t *v;
    vl_ledger_key_t first;
    if (!list || (list->n > 0 && !list->rotations) ||
        vl_ledger_key_parse_vkey(list->first, &first, NULL) != 0)
        return NULL;
    v = vl_ledger_verifier_new(&first, 1, list->origin[0] ? list->origin : first.name);
    if (!v)
        return NULL;
    v->listed = 1;
    if (list->n > 0) {
        v->expect = malloc(list->n * sizeof *v->expect);
        if (!v->expect) {
            vl_ledger_verifier_free(v);
            return NULL;
        }
        memcpy(v->expect, list->rotations, list->n * sizeof *v->expect);
    }
    v->nexpect = list->n;
    return v;
}

void vl_ledger_verifier_free(vl_ledger_verifier_t *v)
{
    if (!v)
        return;
    free(v->keys);
    free(v->expect);
    free(v);
}

static const char *kind_name(vl_entry_kind_t k)
{
    return k == VL_ENTRY_CREATE            ? "create"
           : k == VL_ENTRY_UPDATE          ? "update"
           : k == VL_ENTRY_DELETE          ? "delete"
           : k == VL_ENTRY_CONSENT_GRANT   ? "consent.grant"
           : k == VL_ENTRY_CONSENT_REVOKE  ? "consent.revoke"
           : k == VL_ENTRY_ACCESS_DISCLOSE ? "access.disclose"
                                           : "key-rotation";
}

/* The keys list's next rotation, if one is due. */
static const vl_ledger_rotation_t *listed_next(const vl_ledger_verifier_t *v)
{
    return v->expect_next < v->nexpect ? &v->expect[v->expect_next] : NULL;
}

uint64_t vl_ledger_verifier_size(const vl_ledger_verifier_t *v)
{
    return v ? v->next : 0;
}

/* Enters FAILED with this message; returns -1. */
static int fail(vl_ledger_verifier_t *v, vl_error_t *err, const char *fmt, ...) VL_PRINTF(3, 4);
static int fail(vl_ledger_verifier_t *v, vl_error_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->errmsg, sizeof v->errmsg, fmt, ap);
    va_end(ap);
    v->failed = 1;
    return vl_error_set(err, 422, "invalid", NULL, "%s", v->errmsg);
}

static int replay(const vl_ledger_verifier_t *v, vl_error_t *err)
{
    return vl_error_set(err, 422, "invalid", NULL, "%s", v->errmsg);
}

enum evidence { EV_NONE, EV_FIRST_ALTERED, EV_SECOND_ALTERED };

/* Reports the pending break between entries b-1 and b (b = next-1 when
 * the evidence comes from a checkpoint, next-2 after another entry). */
static int resolve(vl_ledger_verifier_t *v, vl_error_t *err, uint64_t b, enum evidence ev)
{
    unsigned long long a = (unsigned long long)(b - 1), bb = (unsigned long long)b;
    switch (ev) {
    case EV_FIRST_ALTERED:
        return fail(v, err,
                    "entry %llu: altered: its hash does not match the prev recorded in "
                    "entry %llu",
                    a, bb);
    case EV_SECOND_ALTERED:
        return fail(v, err,
                    "entry %llu: altered: its prev does not match the hash of entry %llu "
                    "and its own hash does not match what follows",
                    bb, a);
    default:
        return fail(v, err,
                    "entry %llu: its hash does not match the prev recorded in entry %llu "
                    "(one of the two was altered)",
                    a, bb);
    }
}

int vl_ledger_verifier_entry(vl_ledger_verifier_t *v, const char *line, size_t len, vl_error_t *err)
{
    return vl_ledger_verifier_entry_hashed(v, line, len, NULL, err);
}

int vl_ledger_verifier_entry_hashed(vl_ledger_verifier_t *v, const char *line, size_t len,
                                    const unsigned char leaf[VL_HASH_LEN], vl_error_t *err)
{
    vl_ledger_entry_t e;
    unsigned char h[VL_HASH_LEN];
    const char *why = NULL;
    unsigned long long i = (unsigned long long)v->next;
    int scanned;
    if (v->failed)
        return replay(v, err);
    scanned = vl__entry_scan(line, len, &e, &why) == 0;
    if (v->pend_root) {
        /* the signed root at size next differed: if this entry does not
         * link to entry next-1 either, entry next-1 was altered */
        if (scanned && e.index == v->next && v->next > 0 &&
            CRYPTO_memcmp(e.prev, v->prev, VL_HASH_LEN) != 0)
            return fail(v, err,
                        "entry %llu: altered: its hash matches neither the signed checkpoint at "
                        "size %llu nor the prev recorded in entry %llu",
                        i - 1, i, i);
        return fail(v, err, "checkpoint at size %llu: signed root does not match the entries", i);
    }
    if (v->pending) {
        /* the break is between next-2 and next-1; this line decides */
        if (!scanned || e.index != v->next)
            return resolve(v, err, v->next - 1, EV_NONE);
        return resolve(v, err, v->next - 1,
                       CRYPTO_memcmp(e.prev, v->prev, VL_HASH_LEN) == 0 ? EV_FIRST_ALTERED
                                                                        : EV_SECOND_ALTERED);
    }
    if (!scanned)
        return fail(v, err, "entry %llu: not a canonical ledger line: %s", i, why);
    if (e.index != v->next)
        return fail(v, err, "entry %llu: found index %llu instead (%s)", i,
                    (unsigned long long)e.index,
                    e.index > v->next ? "entries missing or out of order"
                                      : "entry duplicated or out of order");
    if (v->next == 0) {
        static const unsigned char zeros[VL_HASH_LEN];
        if (memcmp(e.prev, zeros, VL_HASH_LEN) != 0)
            return fail(v, err, "entry 0: prev must be 64 zeros");
    } else if (CRYPTO_memcmp(e.prev, v->prev, VL_HASH_LEN) != 0) {
        v->pending = 1;
        memcpy(v->pend_claimed, e.prev, VL_HASH_LEN);
        range_copy(&v->pend_base, &v->before_last); /* [0, next-1) now */
    }
    if (e.kind == VL_ENTRY_CONSENT_GRANT || e.kind == VL_ENTRY_CONSENT_REVOKE) {
        /* section 2.1: right after the version's own entry (a grant may
         * follow that version's revoke), with its ref and commitment */
        int after_record =
            v->next > 0 && (v->last.kind == VL_ENTRY_CREATE || v->last.kind == VL_ENTRY_UPDATE ||
                            v->last.kind == VL_ENTRY_DELETE);
        int after_revoke = v->next > 0 && e.kind == VL_ENTRY_CONSENT_GRANT &&
                           v->last.kind == VL_ENTRY_CONSENT_REVOKE;
        if ((!after_record && !after_revoke) || strcmp(v->last.ref, e.ref) != 0 ||
            CRYPTO_memcmp(v->last.commitment, e.commitment, VL_HASH_LEN) != 0)
            return fail(v, err,
                        "entry %llu: %s of %s does not directly follow that version's own entry "
                        "with the same ref and commitment",
                        i, kind_name(e.kind), e.ref);
    }
    if (e.kind == VL_ENTRY_KEY_ROTATION) {
        vl_ledger_key_t nk;
        size_t k;
        for (k = 0; k < v->nkeys; k++)
            if (vl__rotation_verify(&v->keys[k], &e) == 0)
                break;
        if (k == v->nkeys)
            return fail(v, err, "entry %llu: key rotation is not signed by a trusted key", i);
        if (vl_ledger_key_parse_vkey(e.key, &nk, NULL) != 0)
            return fail(v, err, "entry %llu: key rotation names an invalid key", i);
        if (v->listed) {
            const vl_ledger_rotation_t *x = listed_next(v);
            if (!x)
                return fail(v, err,
                            "entry %llu: key rotation to %s is not in the keys list (it lists "
                            "no further key)",
                            i, e.key);
            if (x->index != e.index)
                return fail(v, err,
                            "entry %llu: key rotation to %s is not in the keys list (its next "
                            "key, %s, is listed with rotation %llu)",
                            i, e.key, x->key, (unsigned long long)x->index);
            if (strcmp(x->key, e.key) != 0)
                return fail(v, err,
                            "entry %llu: key rotation introduces %s, but the keys list names %s "
                            "for this rotation",
                            i, e.key, x->key);
            v->expect_next++;
        }
        if (v->nkeys == 0) {
            vl_ledger_key_t *nkeys = realloc(v->keys, sizeof *nkeys);
            if (!nkeys)
                return fail(v, err, "entry %llu: out of memory", i);
            v->keys = nkeys;
        }
        v->keys[0] = nk; /* the new key alone signs from here on */
        v->nkeys = 1;
    } else if (v->listed && listed_next(v) && listed_next(v)->index == e.index) {
        return fail(v, err,
                    "entry %llu: the keys list names a key rotation here (to %s), but this "
                    "entry is a %s",
                    i, listed_next(v)->key, kind_name(e.kind));
    }
    if (leaf)
        memcpy(h, leaf, VL_HASH_LEN);
    else
        vl_ledger_leaf_hash(line, len, h);
    range_copy(&v->before_last, &v->range);
    vl_ledger_range_append(&v->range, h, NULL, NULL);
    memcpy(v->prev, h, VL_HASH_LEN);
    v->last = e;
    v->next++;
    return 0;
}

int vl_ledger_verifier_checkpoint(vl_ledger_verifier_t *v, const char *note, size_t len,
                                  vl_error_t *err)
{
    vl_error_t e2 = VL_ERROR_INIT;
    char *text = NULL, origin[VL_ORIGIN_MAX + 1];
    unsigned char root[VL_HASH_LEN], ours[VL_HASH_LEN];
    uint64_t size = 0;
    unsigned long long s = (unsigned long long)v->next;
    int rc = -1;
    if (v->failed)
        return replay(v, err);
    if (v->pend_root)
        return fail(v, err,
                    "checkpoint at size %llu: signed root does not match the entries (entry %llu "
                    "or the checkpoint was altered)",
                    s, s - 1);
    if (vl_ledger_note_verify(note, len, v->keys, v->nkeys, &text, &e2) != 0 ||
        vl_ledger_checkpoint_parse(text, origin, sizeof origin, &size, root, &e2) != 0) {
        if (v->pending)
            rc = resolve(v, err, v->next - 1, EV_NONE);
        else
            rc = fail(v, err, "checkpoint at size %llu: %s", s, vl_error_message(&e2));
        goto out;
    }
    if (v->pending) {
        /* Was entry next-2 altered? Then its true hash is the prev recorded
         * in entry next-1, and the signed root is that of the tree with
         * this leaf in its place. */
        enum evidence ev = EV_NONE;
        if (size == v->next) {
            vl_ledger_range_t alt;
            unsigned char alt_root[VL_HASH_LEN];
            range_copy(&alt, &v->pend_base);
            vl_ledger_range_append(&alt, v->pend_claimed, NULL, NULL);
            vl_ledger_range_append(&alt, v->prev, NULL, NULL);
            vl_ledger_range_root(&alt, alt_root);
            ev = CRYPTO_memcmp(alt_root, root, VL_HASH_LEN) == 0 ? EV_FIRST_ALTERED
                                                                 : EV_SECOND_ALTERED;
        }
        rc = resolve(v, err, v->next - 1, ev);
        goto out;
    }
    if (v->have_origin && strcmp(origin, v->origin) != 0) {
        rc = fail(v, err, "checkpoint at size %llu: origin \"%s\" is not \"%s\"", s, origin,
                  v->origin);
        goto out;
    }
    if (size != v->next) {
        rc = fail(v, err, "checkpoint at size %llu: it claims %llu entries but %llu precede it", s,
                  (unsigned long long)size, s);
        goto out;
    }
    vl_ledger_range_root(&v->range, ours);
    if (CRYPTO_memcmp(root, ours, VL_HASH_LEN) != 0) {
        if (v->next > 0) {
            /* entry next-1 or this checkpoint: the next entry decides */
            v->pend_root = 1;
            rc = 0;
        } else
            rc = fail(v, err, "checkpoint at size 0: signed root is not the empty tree's root");
        goto out;
    }
    if (!v->have_origin) {
        strcpy(v->origin, origin);
        v->have_origin = 1;
    }
    v->checkpoints++;
    v->last_checkpoint = v->next;
    rc = 0;
out:
    free(text);
    vl_error_clear(&e2);
    return rc;
}

int vl_ledger_verifier_finish(vl_ledger_verifier_t *v, vl_error_t *err)
{
    if (v->failed)
        return replay(v, err);
    if (v->pending)
        return resolve(v, err, v->next - 1, EV_NONE);
    if (v->pend_root)
        return fail(v, err,
                    "checkpoint at size %llu: signed root does not match the entries (entry %llu "
                    "or the checkpoint was altered)",
                    (unsigned long long)v->next, (unsigned long long)v->next - 1);
    if (v->checkpoints == 0)
        return fail(v, err, "checkpoint at size %llu: missing: no signed checkpoint in the ledger",
                    (unsigned long long)v->next);
    if (v->last_checkpoint != v->next)
        return fail(v, err,
                    "entry %llu: not covered by a signed checkpoint (the last one is at size %llu "
                    "of %llu entries)",
                    (unsigned long long)v->last_checkpoint, (unsigned long long)v->last_checkpoint,
                    (unsigned long long)v->next);
    if (v->listed && listed_next(v))
        return fail(v, err,
                    "entry %llu: the keys list names a key rotation here (to %s), but the log "
                    "has only %llu entries",
                    (unsigned long long)listed_next(v)->index, listed_next(v)->key,
                    (unsigned long long)v->next);
    return 0;
}
