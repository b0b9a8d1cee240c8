/*
 * Unit tests for page cursors (src/fhir/cursor.c): a sealed state opens
 * only unchanged, for the search it was sealed for, with the key that
 * sealed it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/fhir/fhir_internal.h"

static void make(vl_fhir_t *f, const unsigned char *ingest_key)
{
    memset(f, 0, sizeof *f);
    f->opts.ingest_key = ingest_key;
    vl_cursor_key_init(f);
}

static void test_round_trip(void **state)
{
    (void)state;
    static const unsigned char key[32] = {1, 2, 3};
    vl_fhir_t f;
    unsigned char st[VL_CURSOR_STATE_MAX], back[VL_CURSOR_STATE_MAX];
    vl_buf_t b = VL_BUF_INIT(0);
    size_t len = 0;
    make(&f, key);
    for (size_t i = 0; i < sizeof st; i++)
        st[i] = (unsigned char)(i * 7);
    assert_int_equal(vl_cursor_seal(&f, "Observation?code=x&_count=5", st, 40, &b), 0);
    assert_null(strpbrk(b.data, "+/=&%")); /* base64url, no padding: safe in a query */
    assert_int_equal(
        vl_cursor_open(&f, "Observation?code=x&_count=5", b.data, back, sizeof back, &len), 0);
    assert_int_equal(len, 40);
    assert_memory_equal(back, st, 40);
    /* the same key derived again (a restart) opens it too */
    {
        vl_fhir_t g;
        make(&g, key);
        assert_int_equal(
            vl_cursor_open(&g, "Observation?code=x&_count=5", b.data, back, sizeof back, &len), 0);
    }
    /* the largest state */
    vl_buf_reset(&b);
    assert_int_equal(vl_cursor_seal(&f, "", st, sizeof st, &b), 0);
    assert_int_equal(vl_cursor_open(&f, "", b.data, back, sizeof back, &len), 0);
    assert_int_equal(len, sizeof st);
    assert_int_equal(vl_cursor_seal(&f, "", st, sizeof st + 1, &b), -1);
    vl_buf_free(&b);
}

static void test_refused(void **state)
{
    (void)state;
    static const unsigned char key[32] = {9};
    static const unsigned char other[32] = {8};
    vl_fhir_t f, g;
    unsigned char st[64] = {1, 2, 3, 4}, back[64];
    vl_buf_t b = VL_BUF_INIT(0);
    size_t len;
    char *text;
    make(&f, key);
    make(&g, other);
    assert_int_equal(vl_cursor_seal(&f, "Patient?name=a", st, sizeof st, &b), 0);
    text = b.data;
    /* another search, another key */
    assert_int_equal(vl_cursor_open(&f, "Patient?name=b", text, back, sizeof back, &len), -1);
    assert_int_equal(vl_cursor_open(&g, "Patient?name=a", text, back, sizeof back, &len), -1);
    /* every single character changed */
    for (size_t i = 0; text[i]; i++) {
        char saved = text[i];
        text[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(vl_cursor_open(&f, "Patient?name=a", text, back, sizeof back, &len), -1);
        text[i] = saved;
    }
    /* cut, extended, not base64url, too small a buffer, empty */
    text[strlen(text) - 1] = '\0';
    assert_int_equal(vl_cursor_open(&f, "Patient?name=a", text, back, sizeof back, &len), -1);
    assert_int_equal(vl_cursor_open(&f, "Patient?name=a", "AAAA*AAA", back, sizeof back, &len), -1);
    assert_int_equal(vl_cursor_open(&f, "Patient?name=a", "", back, sizeof back, &len), -1);
    assert_int_equal(vl_cursor_open(&f, "Patient?name=a", NULL, back, sizeof back, &len), -1);
    vl_buf_reset(&b);
    assert_int_equal(vl_cursor_seal(&f, "Patient?name=a", st, sizeof st, &b), 0);
    assert_int_equal(vl_cursor_open(&f, "Patient?name=a", b.data, back, 10, &len), -1);
    vl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
