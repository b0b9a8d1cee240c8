/*
 * docs/ledger.md section 8 computed with vitalog's own code: the worked
 * example's commitment, entry lines, entry hashes and root must be exactly
 * what the page prints, so the spec cannot drift from the implementation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "vitalog/ledger.h"

static const char BODY[] =
    "{\"resourceType\":\"Observation\",\"id\":\"0123456789abcdef0123456789abcdef\",\"meta\":{"
    "\"versionId\":\"1\",\"lastUpdated\":\"2026-11-21T10:00:00.000Z\"},\"status\":\"final\","
    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},"
    "\"valueQuantity\":{\"value\":72.00,\"unit\":\"/min\",\"system\":\"http://unitsofmeasure.org\","
    "\"code\":\"/min\"}}";

static const char LINE0[] =
    "{\"index\":0,\"time\":\"2026-11-21T10:00:00.000Z\",\"kind\":\"create\",\"ref\":"
    "\"Observation/0123456789abcdef0123456789abcdef/_history/1\",\"commitment\":"
    "\"a0352804d1862698d9473d53536f9f7d1a54dad7801da9c533e80b925d11f886\",\"prev\":"
    "\"0000000000000000000000000000000000000000000000000000000000000000\"}";

static const char LINE1[] =
    "{\"index\":1,\"time\":\"2026-11-21T10:00:01.000Z\",\"kind\":\"delete\",\"ref\":"
    "\"Observation/0123456789abcdef0123456789abcdef/_history/2\",\"commitment\":"
    "\"69c55c9002eb8c7a4e75d0b49629c4cf83d12cfb56670a8cd6e2db1491a996c4\",\"prev\":"
    "\"9a8de51bad11d7714b9ffca4bf6cec830b3b58c7f063a0ed3e63281ea268967c\"}";

static void hex(const unsigned char *b, char out[65])
{
    sodium_bin2hex(out, 65, b, 32);
}

static void test_worked_example(void **state)
{
    unsigned char salt0[32], salt1[32], h0[32], h1[32], root[32];
    char x[65], *line, b64[64];
    size_t len;
    vl_ledger_entry_t e;
    vl_ledger_range_t r;
    int64_t lo, hi;
    (void)state;
    assert_int_equal(strlen(BODY), 316);
    for (int i = 0; i < 32; i++) {
        salt0[i] = (unsigned char)i;
        salt1[i] = (unsigned char)(31 - i);
    }
    memset(&e, 0, sizeof e);
    assert_int_equal(vl_time_parse_range("2026-11-21T10:00:00.000Z", &lo, &hi, NULL), 0);
    e.index = 0;
    e.time_us = lo;
    e.kind = VL_ENTRY_CREATE;
    strcpy(e.ref, "Observation/0123456789abcdef0123456789abcdef/_history/1");
    vl_ledger_commitment(salt0, BODY, strlen(BODY), e.commitment);
    hex(e.commitment, x);
    assert_string_equal(x, "a0352804d1862698d9473d53536f9f7d1a54dad7801da9c533e80b925d11f886");
    line = vl_ledger_entry_format(&e, &len);
    assert_non_null(line);
    assert_string_equal(line, LINE0);
    vl_ledger_leaf_hash(line, len, h0);
    free(line);
    hex(h0, x);
    assert_string_equal(x, "9a8de51bad11d7714b9ffca4bf6cec830b3b58c7f063a0ed3e63281ea268967c");

    assert_int_equal(vl_time_parse_range("2026-11-21T10:00:01.000Z", &lo, &hi, NULL), 0);
    e.index = 1;
    e.time_us = lo;
    e.kind = VL_ENTRY_DELETE;
    strcpy(e.ref, "Observation/0123456789abcdef0123456789abcdef/_history/2");
    vl_ledger_commitment(salt1, "", 0, e.commitment);
    memcpy(e.prev, h0, 32);
    line = vl_ledger_entry_format(&e, &len);
    assert_non_null(line);
    assert_string_equal(line, LINE1);
    vl_ledger_leaf_hash(line, len, h1);
    free(line);
    hex(h1, x);
    assert_string_equal(x, "a969b1e2e9c851c6f2eb8041fe90c92f8b8423f929f37b0b88f0dc20a063b85e");

    vl_ledger_range_init(&r);
    vl_ledger_range_append(&r, h0, NULL, NULL);
    vl_ledger_range_append(&r, h1, NULL, NULL);
    vl_ledger_range_root(&r, root);
    hex(root, x);
    assert_string_equal(x, "2bb9b84e00385c315e67b4820316b4e827be536db18f2303038a437fcb207938");
    sodium_bin2base64(b64, sizeof b64, root, 32, sodium_base64_VARIANT_ORIGINAL);
    assert_string_equal(b64, "K7m4TgA4XDFeZ7SCAxa06Ce+U22xjyMDA4pDf8sgeTg=");
    line = vl_ledger_checkpoint_text("vitalog.local/example", 2, root);
    assert_string_equal(line,
                        "vitalog.local/example\n2\nK7m4TgA4XDFeZ7SCAxa06Ce+U22xjyMDA4pDf8sgeTg=\n");
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_worked_example)};
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
