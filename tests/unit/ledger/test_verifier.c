/*
 * Unit tests for src/ledger/verifier.c: a ledger of 100 entries with a
 * checkpoint every 10 verifies; every kind of tampering (a changed byte of
 * an entry, of a checkpoint or of its signature; deleted, reordered,
 * duplicated, truncated entries; foreign keys; wrong roots and sizes; key
 * rotation) fails and names the index where it happened. Also measures
 * the verifier's throughput.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "vitalog/ledger.h"

#define ORIGIN "vitalog.example/ledger"
#define MAXITEMS 4096

/* An export: entry lines and checkpoint notes in order. */
typedef struct item {
    char *text;
    size_t len;
    int checkpoint;
} item_t;

typedef struct export
{
    item_t it[MAXITEMS];
    int n;
}
export_t;

static vl_ledger_key_t g_key, g_new, g_other;
static const vl_ledger_key_t *g_rot_signer; /* signs rotations; NULL: the current key */

static void push(export_t *x, char *text, size_t len, int cp)
{
    assert_true(x->n < MAXITEMS);
    x->it[x->n].text = text;
    x->it[x->n].len = len;
    x->it[x->n].checkpoint = cp;
    x->n++;
}

static void push_checkpoint(export_t *x, const vl_ledger_key_t *k, uint64_t size,
                            const unsigned char root[32])
{
    char *t = vl_ledger_checkpoint_text(ORIGIN, size, root), *note;
    note = vl_ledger_note_sign(k, t);
    assert_non_null(note);
    free(t);
    push(x, note, strlen(note), 1);
}

/* n entries, a checkpoint after every `every` and at the end; a key
 * rotation to g_new at index `rot` (-1: none); checkpoints after it are
 * signed by `after` (g_new normally). */
static void build(export_t *x, int n, int every, int rot, const vl_ledger_key_t *after)
{
    vl_ledger_range_t r;
    unsigned char prev[32] = {0}, root[32];
    const vl_ledger_key_t *signer = &g_key;
    vl_ledger_range_init(&r);
    x->n = 0;
    for (int i = 0; i < n; i++) {
        vl_ledger_entry_t e;
        size_t len;
        char *line;
        memset(&e, 0, sizeof e);
        e.index = (uint64_t)i;
        e.time_us = INT64_C(1700000000000000) + (int64_t)i * 1000;
        memcpy(e.prev, prev, 32);
        if (i == rot) {
            assert_int_equal(vl_ledger_key_vkey(&g_new, e.key, sizeof e.key), 0);
            assert_int_equal(vl_ledger_rotation_sign(g_rot_signer ? g_rot_signer : signer, &e), 0);
            signer = after;
        } else {
            e.kind = i % 3 == 0 ? VL_ENTRY_CREATE : i % 3 == 1 ? VL_ENTRY_UPDATE : VL_ENTRY_DELETE;
            snprintf(e.ref, sizeof e.ref, "Observation/obs-%d/_history/%d", i / 3, i % 3 + 1);
            vl_ledger_leaf_hash(e.ref, strlen(e.ref), e.commitment);
        }
        line = vl_ledger_entry_format(&e, &len);
        assert_non_null(line);
        vl_ledger_leaf_hash(line, len, prev);
        vl_ledger_range_append(&r, prev, NULL, NULL);
        push(x, line, len, 0);
        if ((i + 1) % every == 0 || i == n - 1) {
            vl_ledger_range_root(&r, root);
            push_checkpoint(x, signer, (uint64_t)i + 1, root);
        }
    }
}

/* Entries of the given kinds, versions and commitment seeds, then one
 * checkpoint (for the consent entries of docs/ledger.md 2.1). */
typedef struct spec {
    vl_entry_kind_t kind;
    int version, seed;
} spec_t;

static void build_spec(export_t *x, const spec_t *sp, int n)
{
    vl_ledger_range_t r;
    unsigned char prev[32] = {0}, root[32];
    vl_ledger_range_init(&r);
    x->n = 0;
    for (int i = 0; i < n; i++) {
        vl_ledger_entry_t e;
        size_t len;
        char *line, seed[16];
        memset(&e, 0, sizeof e);
        e.index = (uint64_t)i;
        e.time_us = INT64_C(1700000000000000) + (int64_t)i * 1000;
        memcpy(e.prev, prev, 32);
        e.kind = sp[i].kind;
        snprintf(e.ref, sizeof e.ref, "Consent/c1/_history/%d", sp[i].version);
        snprintf(seed, sizeof seed, "%d", sp[i].seed);
        vl_ledger_leaf_hash(seed, strlen(seed), e.commitment);
        line = vl_ledger_entry_format(&e, &len);
        assert_non_null(line);
        vl_ledger_leaf_hash(line, len, prev);
        vl_ledger_range_append(&r, prev, NULL, NULL);
        push(x, line, len, 0);
    }
    vl_ledger_range_root(&r, root);
    push_checkpoint(x, &g_key, (uint64_t)n, root);
}

static void release(export_t *x)
{
    for (int i = 0; i < x->n; i++)
        free(x->it[i].text);
    x->n = 0;
}

/* 0, or -1 with the message in msg. */
static int run(const export_t *x, const vl_ledger_key_t *keys, size_t nkeys, const char *origin,
               char msg[512])
{
    vl_ledger_verifier_t *v = vl_ledger_verifier_new(keys, nkeys, origin);
    vl_error_t err = VL_ERROR_INIT;
    int rc = 0;
    assert_non_null(v);
    msg[0] = '\0';
    for (int i = 0; i < x->n && rc == 0; i++)
        rc = x->it[i].checkpoint
                 ? vl_ledger_verifier_checkpoint(v, x->it[i].text, x->it[i].len, &err)
                 : vl_ledger_verifier_entry(v, x->it[i].text, x->it[i].len, &err);
    if (rc == 0)
        rc = vl_ledger_verifier_finish(v, &err);
    if (rc != 0) {
        snprintf(msg, 512, "%s", vl_error_message(&err));
        assert_int_equal(err.status, 422);
        /* FAILED is sticky */
        vl_error_t again = VL_ERROR_INIT;
        assert_int_not_equal(vl_ledger_verifier_finish(v, &again), 0);
        assert_string_equal(vl_error_message(&again), msg);
        vl_error_clear(&again);
    }
    vl_error_clear(&err);
    vl_ledger_verifier_free(v);
    return rc;
}

static int starts(const char *msg, const char *prefix)
{
    return strncmp(msg, prefix, strlen(prefix)) == 0;
}

#define EXPECT_FAIL(x, prefix)                                                                     \
    do {                                                                                           \
        char m_[512];                                                                              \
        if (run((x), &g_key, 1, ORIGIN, m_) == 0)                                                  \
            fail_msg("verified; expected \"%s\"", (prefix));                                       \
        if (!starts(m_, (prefix)))                                                                 \
            fail_msg("got \"%s\", expected \"%s...\"", m_, (prefix));                              \
    } while (0)

/* Position in the export of entry k / of the checkpoint at size s. */
static int entry_pos(const export_t *x, int k)
{
    for (int i = 0, e = 0; i < x->n; i++)
        if (!x->it[i].checkpoint && e++ == k)
            return i;
    fail_msg("no entry %d", k);
    return -1;
}

static int cp_pos(const export_t *x, int size)
{
    for (int i = 0, e = 0; i < x->n; i++) {
        if (x->it[i].checkpoint && e == size)
            return i;
        e += !x->it[i].checkpoint;
    }
    fail_msg("no checkpoint at %d", size);
    return -1;
}

static void remove_at(export_t *x, int pos)
{
    free(x->it[pos].text);
    memmove(&x->it[pos], &x->it[pos + 1], sizeof(item_t) * (size_t)(x->n - pos - 1));
    x->n--;
}

/* ------------------------------------------------------------------------ */

static void test_valid(void **state)
{
    (void)state;
    export_t *x = calloc(1, sizeof *x);
    char msg[512];
    build(x, 100, 10, -1, NULL);
    if (run(x, &g_key, 1, ORIGIN, msg) != 0)
        fail_msg("%s", msg);
    assert_int_equal(run(x, &g_key, 1, NULL, msg), 0); /* origin from the first checkpoint */
    vl_ledger_key_t both[2] = {g_other, g_key};
    assert_int_equal(run(x, both, 2, ORIGIN, msg), 0);
    /* wrong origin, foreign key */
    assert_int_not_equal(run(x, &g_key, 1, "other.example/log", msg), 0);
    assert_true(starts(msg, "checkpoint at size 10: origin"));
    assert_int_not_equal(run(x, &g_other, 1, ORIGIN, msg), 0);
    assert_true(starts(msg, "checkpoint at size 10:"));
    release(x);
    /* the empty ledger with its checkpoint at size 0 */
    unsigned char root[32];
    vl_ledger_empty_root(root);
    push_checkpoint(x, &g_key, 0, root);
    assert_int_equal(run(x, &g_key, 1, ORIGIN, msg), 0);
    release(x);
    assert_int_not_equal(run(x, &g_key, 1, ORIGIN, msg), 0); /* nothing at all */
    assert_true(starts(msg, "checkpoint at size 0: missing"));
    free(x);
}

/* Every bit of every byte of chosen entries: fails, naming that entry. */
static void test_entry_bytes(void **state)
{
    (void)state;
    static const int which[] = {0, 1, 9, 10, 37, 50, 98, 99};
    export_t *x = calloc(1, sizeof *x);
    int tried = 0;
    build(x, 100, 10, -1, NULL);
    for (size_t w = 0; w < sizeof which / sizeof *which; w++) {
        int k = which[w], pos = entry_pos(x, k);
        char want[64], alt[64];
        snprintf(want, sizeof want, "entry %d:", k);
        snprintf(alt, sizeof alt, "checkpoint at size %d:", k + 1);
        for (size_t b = 0; b < x->it[pos].len; b++)
            for (int bit = 0; bit < 8; bit += 3) {
                char m[512];
                x->it[pos].text[b] ^= (char)(1 << bit);
                if (run(x, &g_key, 1, ORIGIN, m) == 0)
                    fail_msg("entry %d byte %zu bit %d: verified", k, b, bit);
                /* the last entry has no successor: only the signed root
                 * catches it, and the checkpoint is named with it */
                if (!starts(m, want) && !(k == 99 && starts(m, alt) && strstr(m, "entry 99")))
                    fail_msg("entry %d byte %zu bit %d: \"%s\"", k, b, bit, m);
                x->it[pos].text[b] ^= (char)(1 << bit);
                tried++;
            }
    }
    print_message("%d altered entries caught and named\n", tried);
    release(x);
    free(x);
}

static void test_checkpoint_bytes(void **state)
{
    (void)state;
    export_t *x = calloc(1, sizeof *x);
    int tried = 0;
    build(x, 100, 10, -1, NULL);
    static const int sizes[] = {10, 50, 100};
    for (size_t w = 0; w < 3; w++) {
        int pos = cp_pos(x, sizes[w]);
        char want[64];
        snprintf(want, sizeof want, "checkpoint at size %d:", sizes[w]);
        for (size_t b = 0; b < x->it[pos].len; b++)
            for (int bit = 0; bit < 8; bit++) {
                char m[512];
                x->it[pos].text[b] ^= (char)(1 << bit);
                if (run(x, &g_key, 1, ORIGIN, m) == 0)
                    fail_msg("checkpoint %d byte %zu bit %d: verified", sizes[w], b, bit);
                if (!starts(m, want))
                    fail_msg("checkpoint %d byte %zu bit %d: \"%s\"", sizes[w], b, bit, m);
                x->it[pos].text[b] ^= (char)(1 << bit);
                tried++;
            }
    }
    print_message("%d altered checkpoints caught\n", tried);
    release(x);
    free(x);
}

static void test_structure(void **state)
{
    (void)state;
    export_t *x = calloc(1, sizeof *x);
    item_t tmp;
    char m[512];

    /* delete entry 37 */
    build(x, 100, 10, -1, NULL);
    remove_at(x, entry_pos(x, 37));
    EXPECT_FAIL(x, "entry 37: found index 38");
    release(x);

    /* swap entries 37 and 38 */
    build(x, 100, 10, -1, NULL);
    int p = entry_pos(x, 37);
    tmp = x->it[p];
    x->it[p] = x->it[p + 1];
    x->it[p + 1] = tmp;
    EXPECT_FAIL(x, "entry 37: found index 38");
    release(x);

    /* duplicate entry 37 */
    build(x, 100, 10, -1, NULL);
    p = entry_pos(x, 37);
    memmove(&x->it[p + 1], &x->it[p], sizeof(item_t) * (size_t)(x->n - p));
    x->n++;
    x->it[p + 1].text = strdup(x->it[p].text);
    EXPECT_FAIL(x, "entry 38: found index 37");
    release(x);

    /* truncated: last 5 entries gone, final checkpoint kept */
    build(x, 100, 10, -1, NULL);
    for (int k = 0; k < 5; k++)
        remove_at(x, entry_pos(x, 95));
    EXPECT_FAIL(x, "checkpoint at size 95: it claims 100");
    release(x);

    /* truncated: the final checkpoint and 5 entries gone */
    build(x, 100, 10, -1, NULL);
    x->n--;
    free(x->it[x->n].text);
    for (int k = 0; k < 5; k++)
        remove_at(x, entry_pos(x, 95));
    EXPECT_FAIL(x, "entry 90: not covered");
    release(x);

    /* truncated in the middle of the last line */
    build(x, 100, 10, -1, NULL);
    x->n--;
    free(x->it[x->n].text);
    x->it[x->n - 1].len /= 2;
    EXPECT_FAIL(x, "entry 99: not a canonical");
    release(x);

    /* a prefix that ends on a checkpoint is a valid (shorter) ledger */
    build(x, 100, 10, -1, NULL);
    while (x->n > cp_pos(x, 50) + 1) {
        x->n--;
        free(x->it[x->n].text);
    }
    assert_int_equal(run(x, &g_key, 1, ORIGIN, m), 0);
    release(x);

    /* an entry's prev pointing elsewhere, re-hashed so the rest is
     * consistent: the chain names it */
    build(x, 100, 10, -1, NULL);
    p = entry_pos(x, 0);
    x->it[p].text[strlen(x->it[p].text) - 3] = '1';
    EXPECT_FAIL(x, "entry 0: prev must be 64 zeros");
    release(x);
    free(x);
}

static void test_bad_checkpoints(void **state)
{
    (void)state;
    export_t *x = calloc(1, sizeof *x);
    unsigned char root[32];
    int p;

    /* signed by another key */
    build(x, 100, 10, -1, NULL);
    p = cp_pos(x, 40);
    free(x->it[p].text);
    {
        char *t, *note;
        /* right root, wrong key */
        vl_ledger_range_t r;
        vl_ledger_range_init(&r);
        for (int i = 0, e = 0; e < 40; i++)
            if (!x->it[i].checkpoint) {
                unsigned char h[32];
                vl_ledger_leaf_hash(x->it[i].text, x->it[i].len, h);
                vl_ledger_range_append(&r, h, NULL, NULL);
                e++;
            }
        vl_ledger_range_root(&r, root);
        t = vl_ledger_checkpoint_text(ORIGIN, 40, root);
        note = vl_ledger_note_sign(&g_other, t);
        x->it[p].text = note;
        x->it[p].len = strlen(note);
        EXPECT_FAIL(x, "checkpoint at size 40: signed note has no signature by a trusted key");
        /* the same checkpoint by the right key passes again */
        free(note);
        note = vl_ledger_note_sign(&g_key, t);
        x->it[p].text = note;
        x->it[p].len = strlen(note);
        char m[512];
        assert_int_equal(run(x, &g_key, 1, ORIGIN, m), 0);
        free(note);
        /* wrong size, properly signed */
        free(t);
        t = vl_ledger_checkpoint_text(ORIGIN, 41, root);
        note = vl_ledger_note_sign(&g_key, t);
        x->it[p].text = note;
        x->it[p].len = strlen(note);
        EXPECT_FAIL(x, "checkpoint at size 40: it claims 41");
        free(note);
        /* wrong root, properly signed: the checkpoint is named, since
         * entry 40 still links to entry 39 */
        free(t);
        root[0] ^= 1;
        t = vl_ledger_checkpoint_text(ORIGIN, 40, root);
        note = vl_ledger_note_sign(&g_key, t);
        x->it[p].text = note;
        x->it[p].len = strlen(note);
        EXPECT_FAIL(x, "checkpoint at size 40: signed root does not match");
        free(t);
    }
    release(x);

    /* wrong root at the very end */
    build(x, 100, 10, -1, NULL);
    p = cp_pos(x, 100);
    free(x->it[p].text);
    memset(root, 7, 32);
    push_checkpoint(x, &g_key, 100, root);
    x->it[p] = x->it[x->n - 1];
    x->n--;
    EXPECT_FAIL(x, "checkpoint at size 100: signed root does not match");
    release(x);
    free(x);
}

static void test_rotation(void **state)
{
    (void)state;
    export_t *x = calloc(1, sizeof *x);
    char m[512];
    /* rotation at 45: checkpoints 50.. by the new key */
    build(x, 100, 10, 45, &g_new);
    if (run(x, &g_key, 1, ORIGIN, m) != 0)
        fail_msg("%s", m);
    release(x);
    /* ... by the old key: no longer trusted */
    build(x, 100, 10, 45, &g_key);
    EXPECT_FAIL(x, "checkpoint at size 50: signed note has no signature by a trusted key");
    release(x);
    /* the new key is not trusted before the rotation */
    build(x, 100, 10, 45, &g_new);
    assert_int_not_equal(run(x, &g_new, 1, ORIGIN, m), 0);
    assert_true(starts(m, "checkpoint at size 10:"));
    release(x);
    /* a rotation signed by an untrusted key */
    g_rot_signer = &g_other;
    build(x, 100, 10, 45, &g_new);
    g_rot_signer = NULL;
    EXPECT_FAIL(x, "entry 45: key rotation is not signed by a trusted key");
    /* ... which is fine for a verifier that trusts both */
    vl_ledger_key_t both[2] = {g_key, g_other};
    assert_int_equal(run(x, both, 2, ORIGIN, m), 0);
    release(x);
    /* a rotation whose signature was altered (entry re-chained): named */
    build(x, 100, 10, 45, &g_new);
    int p = entry_pos(x, 45);
    char *sig = strstr(x->it[p].text, "\"signature\":\"") + 13;
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    EXPECT_FAIL(x, "entry 45:");
    release(x);
    free(x);
}

/* Throughput of vl_ledger_verifier_entry over 1M entries (one core). */
static void test_consent_entries(void **state)
{
    static export_t x;
    char msg[512];
    const vl_entry_kind_t C = VL_ENTRY_CREATE, U = VL_ENTRY_UPDATE, D = VL_ENTRY_DELETE,
                          G = VL_ENTRY_CONSENT_GRANT, R = VL_ENTRY_CONSENT_REVOKE;
    const spec_t good[] = {{C, 1, 1}, {G, 1, 1}, {U, 2, 2}, {R, 2, 2}, {G, 2, 2}, {U, 3, 3},
                           {U, 4, 4}, {R, 4, 4}, {U, 5, 5}, {G, 5, 5}, {D, 6, 6}, {R, 6, 6}};
    const struct {
        spec_t sp[3];
        int n;
        const char *why;
    } bad[] = {
        {{{G, 1, 1}}, 1, "a grant first"},
        {{{C, 1, 1}, {G, 2, 1}}, 2, "another ref"},
        {{{C, 1, 1}, {G, 1, 9}}, 2, "another commitment"},
        {{{C, 1, 1}, {G, 1, 1}, {R, 1, 1}}, 3, "a revoke after a grant"},
        {{{C, 1, 1}, {G, 1, 1}, {G, 1, 1}}, 3, "two grants"},
        {{{C, 1, 1}, {U, 2, 2}, {G, 1, 1}}, 3, "not right after its version"},
    };
    (void)state;
    build_spec(&x, good, (int)(sizeof good / sizeof good[0]));
    assert_int_equal(run(&x, &g_key, 1, ORIGIN, msg), 0);
    release(&x);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        build_spec(&x, bad[i].sp, bad[i].n);
        if (run(&x, &g_key, 1, ORIGIN, msg) == 0)
            fail_msg("accepted: %s", bad[i].why);
        assert_non_null(strstr(msg, "does not directly follow"));
        release(&x);
    }
}

static void test_speed(void **state)
{
    (void)state;
    const int n = 1000000;
    char **lines = malloc(sizeof(char *) * (size_t)n);
    size_t *lens = malloc(sizeof(size_t) * (size_t)n);
    unsigned char prev[32] = {0}, root[32];
    vl_ledger_range_t r;
    struct timespec a, b;
    vl_error_t err = VL_ERROR_INIT;
    vl_ledger_range_init(&r);
    for (int i = 0; i < n; i++) {
        vl_ledger_entry_t e;
        memset(&e, 0, sizeof e);
        e.index = (uint64_t)i;
        e.time_us = INT64_C(1700000000000000) + (int64_t)i * 1000;
        e.kind = VL_ENTRY_CREATE;
        snprintf(e.ref, sizeof e.ref, "Observation/%032x/_history/1", (unsigned)i * 2654435761u);
        memcpy(e.commitment, prev, 32);
        memcpy(e.prev, prev, 32);
        lines[i] = vl_ledger_entry_format(&e, &lens[i]);
        vl_ledger_leaf_hash(lines[i], lens[i], prev);
        vl_ledger_range_append(&r, prev, NULL, NULL);
    }
    vl_ledger_range_root(&r, root);
    char *t = vl_ledger_checkpoint_text(ORIGIN, (uint64_t)n, root);
    char *note = vl_ledger_note_sign(&g_key, t);
    vl_ledger_verifier_t *v = vl_ledger_verifier_new(&g_key, 1, ORIGIN);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++)
        if (vl_ledger_verifier_entry(v, lines[i], lens[i], &err) != 0)
            fail_msg("%s", vl_error_message(&err));
    assert_int_equal(vl_ledger_verifier_checkpoint(v, note, strlen(note), &err), 0);
    assert_int_equal(vl_ledger_verifier_finish(v, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    print_message("verifier: %d entries (%zu-byte lines) in %.3f s = %.0f entries/s\n", n, lens[0],
                  s, n / s);
    assert_int_equal(vl_ledger_verifier_size(v), n);
    vl_ledger_verifier_free(v);
    free(t);
    free(note);
    for (int i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(lens);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_entry_bytes),
        cmocka_unit_test(test_checkpoint_bytes),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_bad_checkpoints),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_consent_entries),
        cmocka_unit_test(test_speed),
    };
    if (sodium_init() < 0)
        return 1;
    if (vl_ledger_key_generate(ORIGIN, &g_key, NULL) != 0 ||
        vl_ledger_key_generate(ORIGIN, &g_new, NULL) != 0 ||
        vl_ledger_key_generate("mallory.example", &g_other, NULL) != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
