/*
 * Unit tests for src/ledger/keys.c and the verifier's keys-list mode: the
 * document's exact bytes, parse/format round trips, every malformed
 * document the parser must refuse (fail closed: nothing is left in the
 * output), building a list from a log's rotation entries, and a log
 * checked against right and wrong lists.
 */
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

#define ORIGIN "vitalog.example/keys"

static vl_ledger_key_t g_k[4];     /* g_k[0] the log's first key; 1..3 rotated in */
static char g_v[4][256];           /* their verifier keys */
static vl_ledger_key_t g_stranger; /* same name, never rotated in */
static char g_vs[256];
static vl_ledger_key_t g_othername; /* another origin */
static char g_vo[256];

static int starts(const char *msg, const char *prefix)
{
    return strncmp(msg, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------------------
 * Format
 * ---------------------------------------------------------------------- */

static void test_format_bytes(void **state)
{
    (void)state;
    vl_ledger_rotation_t rot[2];
    char want[2048];
    size_t len = 0;
    char *doc;
    rot[0].index = 5;
    snprintf(rot[0].key, sizeof rot[0].key, "%s", g_v[1]);
    rot[1].index = 12;
    snprintf(rot[1].key, sizeof rot[1].key, "%s", g_v[2]);
    doc = vl_ledger_keys_format(ORIGIN, g_v[0], rot, 2, &len);
    assert_non_null(doc);
    snprintf(want, sizeof want,
             "{\"origin\":\"%s\",\"keys\":[{\"key\":\"%s\",\"from\":0},"
             "{\"key\":\"%s\",\"from\":6,\"rotation\":5},"
             "{\"key\":\"%s\",\"from\":13,\"rotation\":12}]}\n",
             ORIGIN, g_v[0], g_v[1], g_v[2]);
    assert_string_equal(doc, want);
    assert_int_equal(len, strlen(want));
    free(doc);
    /* a log that never rotated: the first key alone */
    doc = vl_ledger_keys_format(ORIGIN, g_v[0], NULL, 0, NULL);
    snprintf(want, sizeof want, "{\"origin\":\"%s\",\"keys\":[{\"key\":\"%s\",\"from\":0}]}\n",
             ORIGIN, g_v[0]);
    assert_non_null(doc);
    assert_string_equal(doc, want);
    free(doc);
    /* a rotation at entry 0, and the largest index whose from still fits */
    rot[0].index = 0;
    rot[1].index = UINT64_MAX - 1;
    doc = vl_ledger_keys_format(ORIGIN, g_v[0], rot, 2, NULL);
    assert_non_null(doc);
    assert_non_null(strstr(doc, "\"from\":1,\"rotation\":0}"));
    assert_non_null(
        strstr(doc, "\"from\":18446744073709551615,\"rotation\":18446744073709551614}"));
    free(doc);
}

static void test_format_refuses(void **state)
{
    (void)state;
    vl_ledger_rotation_t rot[3];
    rot[0].index = 5;
    snprintf(rot[0].key, sizeof rot[0].key, "%s", g_v[1]);
    rot[1].index = 9;
    snprintf(rot[1].key, sizeof rot[1].key, "%s", g_v[2]);
    rot[2] = rot[1];
    assert_null(vl_ledger_keys_format(NULL, g_v[0], rot, 1, NULL));
    assert_null(vl_ledger_keys_format(ORIGIN, NULL, rot, 1, NULL));
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], NULL, 1, NULL));
    assert_null(vl_ledger_keys_format("other.example", g_v[0], rot, 1, NULL)); /* origin */
    assert_null(vl_ledger_keys_format(ORIGIN, g_vo, NULL, 0, NULL));           /* name */
    assert_null(vl_ledger_keys_format(ORIGIN, "not a key", NULL, 0, NULL));
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, NULL)); /* 9 twice */
    rot[2].index = 10;
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, NULL)); /* key twice */
    snprintf(rot[2].key, sizeof rot[2].key, "%s", g_v[0]);
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, NULL)); /* first again */
    snprintf(rot[2].key, sizeof rot[2].key, "%s", g_vo);
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, NULL)); /* name */
    snprintf(rot[2].key, sizeof rot[2].key, "%s", g_v[3]);
    rot[2].index = 3;
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, NULL)); /* order */
    rot[2].index = UINT64_MAX;
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, NULL)); /* from overflows */
    rot[2].index = 10;
    char *doc = vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, NULL);
    assert_non_null(doc);
    free(doc);
    assert_null(vl_ledger_keys_format(ORIGIN, g_v[0], rot, VL_LEDGER_KEYS_MAX, NULL));
}

/* ------------------------------------------------------------------------
 * Parse
 * ---------------------------------------------------------------------- */

static void test_parse_round_trip(void **state)
{
    (void)state;
    vl_ledger_rotation_t rot[3];
    vl_ledger_keys_t k;
    vl_error_t err = VL_ERROR_INIT;
    char *doc, *again, loose[4096];
    size_t len, alen;
    for (int i = 0; i < 3; i++) {
        rot[i].index = (uint64_t)(i * 7 + 3);
        snprintf(rot[i].key, sizeof rot[i].key, "%s", g_v[i + 1]);
    }
    doc = vl_ledger_keys_format(ORIGIN, g_v[0], rot, 3, &len);
    assert_non_null(doc);
    assert_int_equal(vl_ledger_keys_parse(doc, len, &k, &err), 0);
    assert_string_equal(k.origin, ORIGIN);
    assert_string_equal(k.first, g_v[0]);
    assert_int_equal(k.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(k.rotations[i].index, rot[i].index);
        assert_string_equal(k.rotations[i].key, rot[i].key);
    }
    again = vl_ledger_keys_format(k.origin, k.first, k.rotations, k.n, &alen);
    assert_non_null(again);
    assert_int_equal(alen, len);
    assert_memory_equal(again, doc, len);
    free(again);
    vl_ledger_keys_clear(&k);
    vl_ledger_keys_clear(&k); /* twice is fine */
    /* the same list written by hand: whitespace, members in another order,
     * no final newline, a JSON escape in a key */
    snprintf(loose, sizeof loose,
             " {\n  \"keys\": [\n    {\"from\": 0, \"key\": \"%s\"},\n"
             "    {\"rotation\": 3, \"from\": 4, \"key\": \"%s\"}\n  ],\n"
             "  \"origin\": \"vitalog.example\\/keys\"\n}",
             g_v[0], g_v[1]);
    assert_int_equal(vl_ledger_keys_parse(loose, strlen(loose), &k, &err), 0);
    assert_string_equal(k.origin, ORIGIN);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.rotations[0].index, 3);
    again = vl_ledger_keys_format(k.origin, k.first, k.rotations, k.n, &alen);
    assert_non_null(again);
    assert_non_null(strstr(again, "{\"origin\":\"vitalog.example/keys\",\"keys\":[{\"key\":"));
    free(again);
    vl_ledger_keys_clear(&k);
    free(doc);
}

/* Each document must be refused with a message starting "keys list: ",
 * leaving nothing in the output. `%0`..`%3` stand for g_v[0..3], `%s` for
 * the stranger, `%o` for the key of another name. */
static void expect_refused(const char *tmpl, const char *why)
{
    char doc[8192], *p = doc;
    vl_ledger_keys_t k;
    vl_error_t err = VL_ERROR_INIT;
    for (const char *t = tmpl; *t; t++) {
        const char *sub = NULL;
        if (t[0] == '%' && t[1] >= '0' && t[1] <= '3')
            sub = g_v[t[1] - '0'];
        else if (t[0] == '%' && t[1] == 's')
            sub = g_vs;
        else if (t[0] == '%' && t[1] == 'o')
            sub = g_vo;
        if (sub) {
            p += snprintf(p, sizeof doc - (size_t)(p - doc), "%s", sub);
            t++;
        } else {
            *p++ = *t;
        }
        assert_true(p < doc + sizeof doc - 300);
    }
    *p = '\0';
    memset(&k, 0x55, sizeof k);
    if (vl_ledger_keys_parse(doc, (size_t)(p - doc), &k, &err) == 0)
        fail_msg("accepted (%s): %s", why, doc);
    if (!starts(vl_error_message(&err), "keys list: "))
        fail_msg("%s: message \"%s\"", why, vl_error_message(&err));
    if (getenv("VL_TEST_VERBOSE"))
        print_message("%-40s %s\n", why, vl_error_message(&err));
    assert_int_equal(err.status, 422);
    /* fail closed: nothing left behind */
    assert_string_equal(k.origin, "");
    assert_string_equal(k.first, "");
    assert_null(k.rotations);
    assert_int_equal(k.n, 0);
    vl_error_clear(&err);
}

#define OK0 "{\"key\":\"%0\",\"from\":0}"
#define DOC(keys) "{\"origin\":\"" ORIGIN "\",\"keys\":[" keys "]}"

static void test_parse_malformed(void **state)
{
    (void)state;
    vl_ledger_keys_t k;
    vl_error_t err = VL_ERROR_INIT;
    char doc[4096];
    /* the valid baseline the cases below break one way each */
    snprintf(doc, sizeof doc,
             "{\"origin\":\"%s\",\"keys\":[{\"key\":\"%s\",\"from\":0},"
             "{\"key\":\"%s\",\"from\":4,\"rotation\":3}]}",
             ORIGIN, g_v[0], g_v[1]);
    assert_int_equal(vl_ledger_keys_parse(doc, strlen(doc), &k, &err), 0);
    vl_ledger_keys_clear(&k);

    /* a NUL byte after a valid document */
    {
        size_t n = strlen(doc);
        memcpy(doc + n, "\0x", 3);
        assert_int_not_equal(vl_ledger_keys_parse(doc, n + 2, &k, &err), 0);
        assert_true(starts(vl_error_message(&err), "keys list: not JSON"));
        vl_error_clear(&err);
        assert_null(k.rotations);
    }
    /* not JSON, not an object */
    expect_refused("", "empty");
    expect_refused("{", "truncated");
    expect_refused(DOC(OK0) "x", "trailing bytes");
    expect_refused(DOC(OK0) DOC(OK0), "two documents");
    expect_refused("[" DOC(OK0) "]", "an array");
    expect_refused("\"" ORIGIN "\"", "a string");
    expect_refused("{\"origin\":\"" ORIGIN "\",\"keys\":[{\"key\":\"%0\",\"from\":0}]", "unclosed");
    expect_refused("{\"origin\":\"" ORIGIN "\",\"keys\":[[[{\"key\":\"%0\",\"from\":0}]]]}",
                   "too deep");
    /* members of the document */
    expect_refused("{\"keys\":[" OK0 "]}", "no origin");
    expect_refused("{\"origin\":\"" ORIGIN "\"}", "no keys");
    expect_refused("{\"origin\":\"" ORIGIN "\",\"keys\":[" OK0 "],\"extra\":1}", "extra member");
    expect_refused("{\"origin\":\"" ORIGIN "\",\"origin\":\"" ORIGIN "\",\"keys\":[" OK0 "]}",
                   "duplicate member");
    expect_refused("{\"origin\":7,\"keys\":[" OK0 "]}", "origin a number");
    expect_refused("{\"origin\":\"\",\"keys\":[" OK0 "]}", "empty origin");
    expect_refused("{\"origin\":\"a b\",\"keys\":[" OK0 "]}", "origin with a space");
    expect_refused("{\"origin\":\"a\\u0000b\",\"keys\":[" OK0 "]}", "origin with a NUL");
    expect_refused("{\"origin\":\"other.example\",\"keys\":[" OK0 "]}", "another origin");
    expect_refused("{\"origin\":\"" ORIGIN "\",\"keys\":{}}", "keys an object");
    expect_refused(DOC(""), "no keys at all");
    expect_refused(DOC("\"%0\""), "a key as a bare string");
    /* the first key */
    expect_refused(DOC("{\"key\":\"%0\"}"), "first without from");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":1}"), "first from 1");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":0,\"rotation\":0}"), "first with rotation");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":0,\"note\":\"x\"}"), "unknown member");
    expect_refused(DOC("{\"key\":\"%o\",\"from\":0}"), "key of another name");
    expect_refused(DOC("{\"key\":\"not+a+key\",\"from\":0}"), "not a vkey");
    expect_refused(DOC("{\"key\":\"PRIVATE+KEY+" ORIGIN "+00000000+AAAA\",\"from\":0}"),
                   "a private key");
    expect_refused(DOC("{\"key\":7,\"from\":0}"), "key a number");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":\"0\"}"), "from a string");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":0.0}"), "from with a fraction");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":-0}"), "from -0");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":0e0}"), "from with an exponent");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":null}"), "from null");
    expect_refused(DOC("{\"key\":\"%0\",\"from\":false}"), "from false");
    /* later keys */
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":4}"), "no rotation");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"rotation\":3}"), "no from");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":3,\"rotation\":3}"), "from = rotation");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":5,\"rotation\":3}"), "from = rotation + 2");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":0,\"rotation\":3}"), "from 0 again");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":-2,\"rotation\":-3}"), "negative");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":4,\"rotation\":3,\"x\":1}"), "extra member");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":18446744073709551616,"
                           "\"rotation\":18446744073709551615}"),
                   "rotation UINT64_MAX: from overflows");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":0,\"rotation\":18446744073709551615}"),
                   "rotation UINT64_MAX");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":4,\"rotation\":03}"), "leading zero");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":4,\"rotation\":3},"
                           "{\"key\":\"%2\",\"from\":4,\"rotation\":3}"),
                   "two rotations at one index");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":9,\"rotation\":8},"
                           "{\"key\":\"%2\",\"from\":4,\"rotation\":3}"),
                   "newest first");
    expect_refused(DOC(OK0 ",{\"key\":\"%0\",\"from\":4,\"rotation\":3}"), "first key again");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\",\"from\":4,\"rotation\":3},"
                           "{\"key\":\"%1\",\"from\":9,\"rotation\":8}"),
                   "a key twice");
    expect_refused(DOC(OK0 ",{\"key\":\"%o\",\"from\":4,\"rotation\":3}"), "another name");
    expect_refused(DOC(OK0 ",{\"key\":\"%1x\",\"from\":4,\"rotation\":3}"), "key with a byte more");
    expect_refused(DOC(OK0 ",{\"key\":\"%1\\\"\",\"from\":4,\"rotation\":3}"), "key with a quote");
}

/* Length and count bounds: one byte over the length cap, one key over the
 * key cap; both exactly at the cap parse. */
static void test_parse_bounds(void **state)
{
    (void)state;
    vl_ledger_rotation_t *rot = calloc(VL_LEDGER_KEYS_MAX, sizeof *rot);
    vl_ledger_key_t k;
    vl_ledger_keys_t list;
    vl_error_t err = VL_ERROR_INIT;
    char *doc, *big;
    size_t len;
    assert_non_null(rot);
    for (int i = 0; i < VL_LEDGER_KEYS_MAX - 1; i++) {
        assert_int_equal(vl_ledger_key_generate(ORIGIN, &k, NULL), 0);
        assert_int_equal(vl_ledger_key_vkey(&k, rot[i].key, sizeof rot[i].key), 0);
        rot[i].index = (uint64_t)i * 1000;
    }
    doc = vl_ledger_keys_format(ORIGIN, g_v[0], rot, VL_LEDGER_KEYS_MAX - 1, &len);
    assert_non_null(doc);
    assert_true(len < VL_LEDGER_KEYS_MAX_LEN);
    assert_int_equal(vl_ledger_keys_parse(doc, len, &list, &err), 0);
    assert_int_equal(list.n, VL_LEDGER_KEYS_MAX - 1);
    vl_ledger_keys_clear(&list);
    /* one key more: built by hand, since the formatter refuses it too */
    big = malloc(len + 512);
    assert_non_null(big);
    assert_int_equal(vl_ledger_key_generate(ORIGIN, &k, NULL), 0);
    {
        char vk[256];
        assert_int_equal(vl_ledger_key_vkey(&k, vk, sizeof vk), 0);
        memcpy(big, doc, len - 3); /* without "]}\n" */
        len = (size_t)(len - 3) +
              (size_t)sprintf(big + len - 3,
                              ",{\"key\":\"%s\",\"from\":999999999,\"rotation\":999999998}]}", vk);
    }
    assert_int_not_equal(vl_ledger_keys_parse(big, len, &list, &err), 0);
    assert_non_null(strstr(vl_error_message(&err), "1 to 1024 keys"));
    assert_null(list.rotations);
    vl_error_clear(&err);
    free(big);
    free(doc);
    /* the byte cap: a valid document padded with whitespace to the cap
     * parses, one byte more does not */
    doc = vl_ledger_keys_format(ORIGIN, g_v[0], NULL, 0, &len);
    big = malloc(VL_LEDGER_KEYS_MAX_LEN + 2);
    assert_non_null(big);
    memset(big, ' ', VL_LEDGER_KEYS_MAX_LEN + 1);
    big[VL_LEDGER_KEYS_MAX_LEN + 1] = '\0';
    memcpy(big, doc, len);
    assert_int_equal(vl_ledger_keys_parse(big, VL_LEDGER_KEYS_MAX_LEN, &list, &err), 0);
    vl_ledger_keys_clear(&list);
    assert_int_not_equal(vl_ledger_keys_parse(big, VL_LEDGER_KEYS_MAX_LEN + 1, &list, &err), 0);
    assert_non_null(strstr(vl_error_message(&err), "longer than"));
    vl_error_clear(&err);
    assert_int_not_equal(vl_ledger_keys_parse(NULL, 0, &list, &err), 0);
    vl_error_clear(&err);
    free(big);
    free(doc);
    free(rot);
}

/* ------------------------------------------------------------------------
 * A log with rotations: building its list, verifying against lists
 * ---------------------------------------------------------------------- */

typedef struct item {
    char *text;
    size_t len;
    int checkpoint;
} item_t;

typedef struct logx {
    item_t it[256];
    int n;
} logx_t;

static void push(logx_t *x, char *text, size_t len, int cp)
{
    assert_true(x->n < 256);
    x->it[x->n].text = text;
    x->it[x->n].len = len;
    x->it[x->n].checkpoint = cp;
    x->n++;
}

static void release(logx_t *x)
{
    for (int i = 0; i < x->n; i++)
        free(x->it[i].text);
    x->n = 0;
}

/* n entries; entry rot[j] (ascending, -1 ends) rotates to g_k[j+1],
 * signed by `signer` (NULL: the current key); a checkpoint by the current
 * key after every 4th entry, after each rotation and at the end. */
static void build(logx_t *x, int n, const int *rot, const vl_ledger_key_t *signer)
{
    vl_ledger_range_t r;
    unsigned char prev[32] = {0}, root[32];
    int cur = 0, j = 0;
    vl_ledger_range_init(&r);
    x->n = 0;
    for (int i = 0; i < n; i++) {
        vl_ledger_entry_t e;
        size_t len;
        char *line;
        int rotated = 0;
        memset(&e, 0, sizeof e);
        e.index = (uint64_t)i;
        e.time_us = INT64_C(1700000000000000) + (int64_t)i * 1000;
        memcpy(e.prev, prev, 32);
        if (rot[j] == i) {
            snprintf(e.key, sizeof e.key, "%s", g_v[j + 1]);
            assert_int_equal(vl_ledger_rotation_sign(signer ? signer : &g_k[cur], &e), 0);
            cur = ++j;
            rotated = 1;
        } else {
            e.kind = VL_ENTRY_CREATE;
            snprintf(e.ref, sizeof e.ref, "Observation/o%d/_history/1", i);
        }
        line = vl_ledger_entry_format(&e, &len);
        assert_non_null(line);
        vl_ledger_leaf_hash(line, len, prev);
        vl_ledger_range_append(&r, prev, NULL, NULL);
        push(x, line, len, 0);
        if (rotated || (i + 1) % 4 == 0 || i == n - 1) {
            char *t, *note;
            vl_ledger_range_root(&r, root);
            t = vl_ledger_checkpoint_text(ORIGIN, (uint64_t)i + 1, root);
            note = vl_ledger_note_sign(&g_k[cur], t);
            assert_non_null(note);
            free(t);
            push(x, note, strlen(note), 1);
        }
    }
}

/* Position in x of entry k. */
static int entry_index(const logx_t *x, int k)
{
    for (int i = 0, e = 0; i < x->n; i++)
        if (!x->it[i].checkpoint && e++ == k)
            return i;
    fail_msg("no entry %d", k);
    return -1;
}

/* Verifies x against `list`: 0, or -1 with the message in msg. */
static int run_list(const logx_t *x, const vl_ledger_keys_t *list, char msg[1024])
{
    vl_ledger_verifier_t *v = vl_ledger_verifier_new_keys(list);
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
    if (rc != 0)
        snprintf(msg, 1024, "%s", vl_error_message(&err));
    vl_error_clear(&err);
    vl_ledger_verifier_free(v);
    return rc;
}

/* A list from a first key and (index, key number) pairs, -1 ended. */
static void make_list(vl_ledger_keys_t *k, int first, const int *pairs)
{
    vl_error_t err = VL_ERROR_INIT;
    memset(k, 0, sizeof *k);
    snprintf(k->origin, sizeof k->origin, "%s", ORIGIN);
    snprintf(k->first, sizeof k->first, "%s", first < 0 ? g_vs : g_v[first]);
    k->rotations = calloc(8, sizeof *k->rotations);
    assert_non_null(k->rotations);
    for (; pairs[0] >= 0; pairs += 2, k->n++) {
        k->rotations[k->n].index = (uint64_t)pairs[0];
        snprintf(k->rotations[k->n].key, sizeof k->rotations[k->n].key, "%s",
                 pairs[1] < 0 ? g_vs : g_v[pairs[1]]);
    }
    vl_error_clear(&err);
}

#define EXPECT_LIST_FAIL(x, list, prefix)                                                          \
    do {                                                                                           \
        char m_[1024];                                                                             \
        if (run_list((x), (list), m_) == 0)                                                        \
            fail_msg("verified; expected \"%s\"", (prefix));                                       \
        if (!starts(m_, (prefix)))                                                                 \
            fail_msg("got \"%s\", expected \"%s...\"", m_, (prefix));                              \
    } while (0)

static void test_build_from_log(void **state)
{
    (void)state;
    static const int rot[] = {5, 12, -1};
    logx_t *x = calloc(1, sizeof *x);
    vl_ledger_keys_t k;
    vl_error_t err = VL_ERROR_INIT;
    char *doc, want[2048];
    build(x, 20, rot, NULL);
    assert_int_equal(vl_ledger_keys_init(&k, g_v[0], &err), 0);
    assert_string_equal(k.origin, ORIGIN);
    for (int i = 0; i < x->n; i++)
        if (!x->it[i].checkpoint)
            assert_int_equal(vl_ledger_keys_add_entry(&k, x->it[i].text, x->it[i].len, &err), 0);
    assert_int_equal(k.n, 2);
    doc = vl_ledger_keys_format(k.origin, k.first, k.rotations, k.n, NULL);
    snprintf(want, sizeof want,
             "{\"origin\":\"%s\",\"keys\":[{\"key\":\"%s\",\"from\":0},"
             "{\"key\":\"%s\",\"from\":6,\"rotation\":5},"
             "{\"key\":\"%s\",\"from\":13,\"rotation\":12}]}\n",
             ORIGIN, g_v[0], g_v[1], g_v[2]);
    assert_non_null(doc);
    assert_string_equal(doc, want);
    free(doc);
    /* the same rotation fed again: not after the last one */
    assert_int_not_equal(vl_ledger_keys_add_entry(&k, x->it[entry_index(x, 12)].text,
                                                  x->it[entry_index(x, 12)].len, &err),
                         0);
    assert_true(starts(vl_error_message(&err), "keys list: entry 12: key rotation after"));
    vl_error_clear(&err);
    assert_int_equal(k.n, 2); /* unchanged */
    vl_ledger_keys_clear(&k);

    /* started from the wrong first key: rotation 5 is not signed by it */
    assert_int_equal(vl_ledger_keys_init(&k, g_vs, &err), 0);
    int failed = 0;
    for (int i = 0; i < x->n && !failed; i++)
        if (!x->it[i].checkpoint &&
            vl_ledger_keys_add_entry(&k, x->it[i].text, x->it[i].len, &err) != 0)
            failed = 1;
    assert_true(failed);
    assert_true(starts(vl_error_message(&err),
                       "keys list: entry 5: key rotation is not signed by the key before it"));
    vl_error_clear(&err);
    vl_ledger_keys_clear(&k);

    /* a non-canonical rotation line */
    assert_int_equal(vl_ledger_keys_init(&k, g_v[0], &err), 0);
    {
        int p = entry_index(x, 5);
        char *bent = malloc(x->it[p].len + 2);
        memcpy(bent, x->it[p].text, x->it[p].len);
        memcpy(bent + x->it[p].len, " ", 2);
        assert_int_not_equal(vl_ledger_keys_add_entry(&k, bent, x->it[p].len + 1, &err), 0);
        assert_true(starts(vl_error_message(&err), "keys list: a key-rotation line is not"));
        vl_error_clear(&err);
        free(bent);
    }
    /* other lines are skipped, whatever they hold */
    assert_int_equal(vl_ledger_keys_add_entry(&k, "garbage", 7, &err), 0);
    assert_int_equal(k.n, 0);
    vl_ledger_keys_clear(&k);
    assert_int_not_equal(vl_ledger_keys_init(&k, "nonsense", &err), 0);
    vl_error_clear(&err);
    release(x);

    /* a rotation signed by a key that is not the one before it */
    build(x, 20, rot, &g_stranger);
    assert_int_equal(vl_ledger_keys_init(&k, g_v[0], &err), 0);
    failed = 0;
    for (int i = 0; i < x->n && !failed; i++)
        if (!x->it[i].checkpoint &&
            vl_ledger_keys_add_entry(&k, x->it[i].text, x->it[i].len, &err) != 0)
            failed = 1;
    assert_true(failed);
    assert_true(starts(vl_error_message(&err), "keys list: entry 5:"));
    vl_error_clear(&err);
    vl_ledger_keys_clear(&k);
    release(x);
    free(x);
}

static void test_verify_with_list(void **state)
{
    (void)state;
    static const int rot[] = {5, 12, -1};
    logx_t *x = calloc(1, sizeof *x);
    vl_ledger_keys_t k;
    char m[1024];
    build(x, 20, rot, NULL);

    make_list(&k, 0, (const int[]){5, 1, 12, 2, -1});
    if (run_list(x, &k, m) != 0)
        fail_msg("%s", m);
    vl_ledger_keys_clear(&k);
    /* keys 1 and 2 swapped (indices kept) */
    make_list(&k, 0, (const int[]){5, 2, 12, 1, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 5: key rotation introduces");
    vl_ledger_keys_clear(&k);
    /* key 1 listed one entry late: entry 5 is an unlisted rotation */
    make_list(&k, 0, (const int[]){6, 1, 12, 2, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 5: key rotation to");
    vl_ledger_keys_clear(&k);
    /* ... one entry early: entry 4 is a create */
    make_list(&k, 0, (const int[]){4, 1, 12, 2, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 4: the keys list names a key rotation here");
    vl_ledger_keys_clear(&k);
    /* key 1 missing */
    make_list(&k, 0, (const int[]){12, 2, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 5: key rotation to");
    vl_ledger_keys_clear(&k);
    /* the last key missing */
    make_list(&k, 0, (const int[]){5, 1, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 12: key rotation to");
    vl_ledger_keys_clear(&k);
    /* an extra key past the end of the log */
    make_list(&k, 0, (const int[]){5, 1, 12, 2, 30, 3, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 30: the keys list names a key rotation here");
    vl_ledger_keys_clear(&k);
    /* an extra key at an ordinary entry */
    make_list(&k, 0, (const int[]){5, 1, 12, 2, 15, 3, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 15: the keys list names a key rotation here");
    vl_ledger_keys_clear(&k);
    /* a key the log never had, listed for rotation 12 */
    make_list(&k, 0, (const int[]){5, 1, 12, -1, -1});
    EXPECT_LIST_FAIL(x, &k, "entry 12: key rotation introduces");
    vl_ledger_keys_clear(&k);
    /* another first key: the first checkpoint fails */
    make_list(&k, -1, (const int[]){5, 1, 12, 2, -1});
    EXPECT_LIST_FAIL(x, &k, "checkpoint at size 4:");
    vl_ledger_keys_clear(&k);
    /* the list starts with key 1: it is not trusted before its rotation */
    make_list(&k, 1, (const int[]){12, 2, -1});
    EXPECT_LIST_FAIL(x, &k, "checkpoint at size 4:");
    vl_ledger_keys_clear(&k);
    /* a list whose first key does not parse: no verifier */
    memset(&k, 0, sizeof k);
    snprintf(k.first, sizeof k.first, "nonsense");
    assert_null(vl_ledger_verifier_new_keys(&k));
    assert_null(vl_ledger_verifier_new_keys(NULL));
    release(x);

    /* a log without rotations against a list with none */
    build(x, 9, (const int[]){-1}, NULL);
    make_list(&k, 0, (const int[]){-1});
    if (run_list(x, &k, m) != 0)
        fail_msg("%s", m);
    vl_ledger_keys_clear(&k);
    release(x);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_bytes),     cmocka_unit_test(test_format_refuses),
        cmocka_unit_test(test_parse_round_trip), cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_bounds),     cmocka_unit_test(test_build_from_log),
        cmocka_unit_test(test_verify_with_list),
    };
    if (sodium_init() < 0)
        return 1;
    for (int i = 0; i < 4; i++)
        if (vl_ledger_key_generate(ORIGIN, &g_k[i], NULL) != 0 ||
            vl_ledger_key_vkey(&g_k[i], g_v[i], sizeof g_v[i]) != 0)
            return 1;
    if (vl_ledger_key_generate(ORIGIN, &g_stranger, NULL) != 0 ||
        vl_ledger_key_vkey(&g_stranger, g_vs, sizeof g_vs) != 0 ||
        vl_ledger_key_generate("other.example", &g_othername, NULL) != 0 ||
        vl_ledger_key_vkey(&g_othername, g_vo, sizeof g_vo) != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
