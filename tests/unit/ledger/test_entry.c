/*
 * Unit tests for src/ledger/entry.c: the canonical entry line (golden
 * bytes, round trips, every single-byte change, insertion and deletion),
 * rotation signatures, and the cost of formatting and hashing a line.
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

#define MS INT64_C(1000)

static void sample(vl_ledger_entry_t *e)
{
    memset(e, 0, sizeof *e);
    e->index = 42;
    e->time_us = INT64_C(1795341600123) * MS + 456; /* 2026-11-22T10:00:00.123456Z */
    e->kind = VL_ENTRY_UPDATE;
    strcpy(e->ref, "Observation/0a1b-2c.3d/_history/7");
    for (int i = 0; i < 32; i++) {
        e->commitment[i] = (unsigned char)(0xa0 + i);
        e->prev[i] = (unsigned char)i;
    }
}

static void test_golden(void **state)
{
    (void)state;
    vl_ledger_entry_t e, p;
    size_t len;
    char *line;
    sample(&e);
    line = vl_ledger_entry_format(&e, &len);
    assert_non_null(line);
    assert_string_equal(
        line, "{\"index\":42,\"time\":\"2026-11-22T10:00:00.123Z\",\"kind\":\"update\","
              "\"ref\":\"Observation/0a1b-2c.3d/_history/7\",\"commitment\":"
              "\"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\",\"prev\":"
              "\"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"}");
    assert_int_equal(len, strlen(line));
    assert_int_equal(vl_ledger_entry_parse(line, len, &p, NULL), 0);
    assert_int_equal(p.index, 42);
    assert_true(p.time_us == INT64_C(1795341600123) * MS); /* milliseconds kept */
    assert_int_equal(p.kind, VL_ENTRY_UPDATE);
    assert_string_equal(p.ref, e.ref);
    assert_memory_equal(p.commitment, e.commitment, 32);
    assert_memory_equal(p.prev, e.prev, 32);
    /* the entry hash is the RFC 9162 leaf hash of the line */
    unsigned char h[32], want[32];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)"\0", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)line, len);
    crypto_hash_sha256_final(&st, want);
    vl_ledger_leaf_hash(line, len, h);
    assert_memory_equal(h, want, 32);
    free(line);
    /* JSON parsers read the same values */
    e.kind = VL_ENTRY_DELETE;
    e.index = 0;
    line = vl_ledger_entry_format(&e, &len);
    json_t *j = json_loadb(line, len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "delete");
    assert_int_equal(json_integer_value(json_object_get(j, "index")), 0);
    json_decref(j);
    free(line);
}

/* Every changed, inserted or deleted byte: refused, or a different entry
 * whose canonical line is exactly the changed line. */
static void mutations(const char *line, size_t len, int *tried)
{
    char *buf = malloc(len + 2);
    vl_ledger_entry_t p;
    for (size_t i = 0; i <= len; i++) {
        for (int v = 0; v < 10; v++) {
            size_t n = len;
            if (i == len && v < 8)
                continue;
            memcpy(buf, line, len);
            if (v < 8) {
                buf[i] ^= (char)(1 << v);
            } else if (v == 8) { /* insert a byte */
                memmove(buf + i + 1, line + i, len - i);
                buf[i] = line[i < len ? i : len - 1];
                n = len + 1;
            } else { /* delete a byte */
                if (i == len)
                    continue;
                memmove(buf + i, line + i + 1, len - i - 1);
                n = len - 1;
            }
            (*tried)++;
            if (vl_ledger_entry_parse(buf, n, &p, NULL) == 0) {
                size_t alen;
                char *again = vl_ledger_entry_format(&p, &alen);
                assert_non_null(again);
                assert_int_equal(alen, n);
                assert_memory_equal(again, buf, n);
                assert_false(n == len && memcmp(buf, line, len) == 0);
                free(again);
            }
        }
    }
    free(buf);
}

static void test_every_byte(void **state)
{
    (void)state;
    vl_ledger_entry_t e, r;
    vl_ledger_key_t old, nk;
    size_t len;
    char *line;
    int tried = 0;
    sample(&e);
    line = vl_ledger_entry_format(&e, &len);
    mutations(line, len, &tried);
    free(line);
    assert_int_equal(vl_ledger_key_generate("vitalog.example/a", &old, NULL), 0);
    assert_int_equal(vl_ledger_key_generate("vitalog.example/a", &nk, NULL), 0);
    memset(&r, 0, sizeof r);
    r.index = 1000;
    r.time_us = 0;
    r.kind = VL_ENTRY_KEY_ROTATION;
    assert_int_equal(vl_ledger_key_vkey(&nk, r.key, sizeof r.key), 0);
    assert_int_equal(vl_ledger_rotation_sign(&old, &r), 0);
    line = vl_ledger_entry_format(&r, &len);
    assert_non_null(line);
    mutations(line, len, &tried);
    free(line);
    print_message("%d mutated lines checked\n", tried);
}

static void test_rotation(void **state)
{
    (void)state;
    vl_ledger_key_t old, nk, other;
    vl_ledger_entry_t r, p;
    char msg[512], *line;
    size_t len;
    assert_int_equal(vl_ledger_key_generate("vitalog.example/log", &old, NULL), 0);
    assert_int_equal(vl_ledger_key_generate("vitalog.example/log", &nk, NULL), 0);
    assert_int_equal(vl_ledger_key_generate("vitalog.example/log", &other, NULL), 0);
    memset(&r, 0, sizeof r);
    r.index = 7;
    r.time_us = INT64_C(1700000000000) * MS;
    assert_int_equal(vl_ledger_key_vkey(&nk, r.key, sizeof r.key), 0);
    assert_int_equal(vl_ledger_rotation_sign(&old, &r), 0);
    assert_int_equal(r.kind, VL_ENTRY_KEY_ROTATION);
    /* independent check of the signed message */
    int n = snprintf(msg, sizeof msg, "vitalog key rotation\n%s\n", r.key);
    assert_int_equal(
        crypto_sign_verify_detached(r.signature, (unsigned char *)msg, (size_t)n, old.pk), 0);
    assert_int_not_equal(
        crypto_sign_verify_detached(r.signature, (unsigned char *)msg, (size_t)n, other.pk), 0);
    line = vl_ledger_entry_format(&r, &len);
    assert_non_null(line);
    assert_non_null(strstr(line, "\"kind\":\"key-rotation\",\"key\":\"vitalog.example/log+"));
    assert_int_equal(vl_ledger_entry_parse(line, len, &p, NULL), 0);
    assert_int_equal(p.kind, VL_ENTRY_KEY_ROTATION);
    assert_string_equal(p.key, r.key);
    assert_memory_equal(p.signature, r.signature, 64);
    free(line);
    /* no secret, bad key: refused */
    vl_ledger_key_t pub = old;
    pub.has_secret = 0;
    assert_int_not_equal(vl_ledger_rotation_sign(&pub, &r), 0);
    strcpy(r.key, "not a key");
    assert_int_not_equal(vl_ledger_rotation_sign(&old, &r), 0);
    assert_null(vl_ledger_entry_format(&r, &len));
}

static void test_format_refuses(void **state)
{
    (void)state;
    static const char *const bad_refs[] = {
        "",
        "Observation/1",
        "observation/1/_history/1",
        "Observation/a\"b/_history/1",
        "Observation/a b/_history/1",
        "Observation//_history/1",
        "Observation/1/_history/",
        "Observation/1/_history/1/x",
        "Obs\\ervation/1/_history/1",
        "Observation/1/history/1",
    };
    vl_ledger_entry_t e;
    size_t len;
    for (size_t i = 0; i < sizeof bad_refs / sizeof *bad_refs; i++) {
        sample(&e);
        strcpy(e.ref, bad_refs[i]);
        if (vl_ledger_entry_format(&e, &len))
            fail_msg("formatted ref %s", bad_refs[i]);
    }
    sample(&e);
    e.kind = (vl_entry_kind_t)9;
    assert_null(vl_ledger_entry_format(&e, &len));
    /* ids of 64 characters are fine, 65 are not */
    sample(&e);
    snprintf(e.ref, sizeof e.ref, "Patient/%064d/_history/1", 7);
    char *line = vl_ledger_entry_format(&e, &len);
    assert_non_null(line);
    free(line);
    snprintf(e.ref, sizeof e.ref, "Patient/%065d/_history/1", 7);
    assert_null(vl_ledger_entry_format(&e, &len));
    /* parse refuses non-canonical spellings of a valid entry */
    static const char *const bad_lines[] = {
        "{\"index\":01,\"time\":\"2026-11-21T10:00:00.123Z\",\"kind\":\"create\",\"ref\":\"A/1/"
        "_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"index\":1,\"time\":\"2026-11-21T10:00:00.123Z\",\"kind\":\"create\",\"ref\":\"A/1/"
        "_history/"
        "1\",\"commitment\":\"000000000000000000000000000000000000000000000000000000000000000A\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"index\":1,\"time\":\"2026-11-21T10:00:00.12Z\",\"kind\":\"create\",\"ref\":\"A/1/"
        "_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"index\":1,\"time\":\"2026-02-29T10:00:00.123Z\",\"kind\":\"create\",\"ref\":\"A/1/"
        "_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"index\":1,\"time\":\"2026-11-21T10:00:60.123Z\",\"kind\":\"create\",\"ref\":\"A/1/"
        "_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"index\":1, "
        "\"time\":\"2026-11-21T10:00:00.123Z\",\"kind\":\"create\",\"ref\":\"A/1/_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"index\":1,\"time\":\"2026-11-21T10:00:00.123Z\",\"kind\":\"create\",\"ref\":\"A/1/"
        "_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}\n",
        "{\"index\":18446744073709551616,\"time\":\"2026-11-21T10:00:00.123Z\",\"kind\":\"create\","
        "\"ref\":\"A/1/_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"index\":1,\"time\":\"2026-11-21T10:00:00.123Z\",\"kind\":\"create\",\"ref\":\"A\\/1/"
        "_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
    };
    const char *good =
        "{\"index\":1,\"time\":\"2024-02-29T10:00:00.123Z\",\"kind\":\"create\",\"ref\":\"A/1/"
        "_history/"
        "1\",\"commitment\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}";
    assert_int_equal(vl_ledger_entry_parse(good, strlen(good), &e, NULL), 0);
    for (size_t i = 0; i < sizeof bad_lines / sizeof *bad_lines; i++) {
        vl_error_t err = VL_ERROR_INIT;
        if (vl_ledger_entry_parse(bad_lines[i], strlen(bad_lines[i]), &e, &err) == 0)
            fail_msg("parsed %s", bad_lines[i]);
        assert_int_equal(err.status, 422);
        vl_error_clear(&err);
    }
}

/* The scanner's instant reader agrees with vl_time_format everywhere. */
static void test_times(void **state)
{
    (void)state;
    vl_ledger_entry_t e, p;
    size_t len;
    static const int64_t edges[] = {0,
                                    -1,
                                    1,
                                    999,
                                    1000,
                                    -999,
                                    -1000,
                                    -1001,
                                    INT64_C(-62135596800000000),
                                    INT64_C(253402300799999999),
                                    INT64_C(951782400000000),
                                    INT64_C(4107542400000000)};
    sample(&e);
    for (int i = 0; i < 200000; i++) {
        int64_t t;
        char want[32];
        randombytes_buf(&t, sizeof t);
        t %= INT64_C(253402300800000000); /* +-9999 years */
        if (t < INT64_C(-62135596800000000))
            t = -t;
        if (i < (int)(sizeof edges / sizeof *edges))
            t = edges[i];
        e.time_us = t;
        char *line = vl_ledger_entry_format(&e, &len);
        /* the same text as vl_time_format */
        vl_time_format(t, want);
        assert_memory_equal(strstr(line, "\"time\":\"") + 8, want, 24);
        assert_int_equal(vl_ledger_entry_parse(line, len, &p, NULL), 0);
        int64_t floor_ms = t - ((t % 1000 + 1000) % 1000);
        if (p.time_us != floor_ms)
            fail_msg("%lld -> %lld, want %lld", (long long)t, (long long)p.time_us,
                     (long long)floor_ms);
        free(line);
    }
}

/* Out-of-range times are clamped like vl_time_format does. */
static void test_time_clamp(void **state)
{
    (void)state;
    vl_ledger_entry_t e;
    size_t len;
    char want[32];
    static const int64_t far[] = {INT64_MIN, INT64_MAX, INT64_C(-62135596800000001),
                                  INT64_C(253402300800000000)};
    sample(&e);
    for (size_t i = 0; i < 4; i++) {
        e.time_us = far[i];
        char *line = vl_ledger_entry_format(&e, &len);
        vl_time_format(far[i], want);
        assert_memory_equal(strstr(line, "\"time\":\"") + 8, want, 24);
        free(line);
    }
}

static void test_speed(void **state)
{
    (void)state;
    vl_ledger_entry_t e, p;
    size_t len, total = 0;
    unsigned char h[32];
    struct timespec a, b;
    const int n = 200000;
    sample(&e);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        e.index = (uint64_t)i;
        char *line = vl_ledger_entry_format(&e, &len);
        vl_ledger_leaf_hash(line, len, h);
        total += len + h[0];
        free(line);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s1 = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    char *line = vl_ledger_entry_format(&e, &len);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++)
        total += (size_t)vl_ledger_entry_parse(line, len, &p, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s2 = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    free(line);
    print_message("format+leaf hash: %.0f lines/s; parse: %.0f lines/s (%zu)\n", n / s1, n / s2,
                  total % 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),   cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_rotation), cmocka_unit_test(test_format_refuses),
        cmocka_unit_test(test_times),    cmocka_unit_test(test_time_clamp),
        cmocka_unit_test(test_speed),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
