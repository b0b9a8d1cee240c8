/*
 * Unit tests for src/store/index_rows.c: the index row list, the patient
 * compartments of a version, and the string normalization shared by
 * indexing and search.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/store.h"

char *vl_index_normalize(const char *text);

static void expect_norm(const char *in, const char *want)
{
    char *got = vl_index_normalize(in);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("normalize(\"%s\") = \"%s\", want \"%s\"", in, got, want);
    free(got);
}

static void test_normalize(void **state)
{
    (void)state;
    expect_norm("", "");
    expect_norm("Smith", "smith");
    expect_norm("O'BRIEN-Jones 42", "o'brien-jones 42");
    expect_norm("Ch\xc3\xa2lmers", "chalmers"); /* â */
    expect_norm("\xc3\x89LODIE", "elodie");     /* É */
    expect_norm("M\xc3\xbcller", "muller");     /* ü */
    expect_norm("Stra\xc3\x9f"
                "e",
                "strasse");                                  /* ß */
    expect_norm("\xc3\x86sir \xc5\x92uvre", "aesir oeuvre"); /* Æ Œ */
    expect_norm("\xc5\x81\xc3\xb3"
                "d\xc5\xba",
                "lodz");                           /* Łódź */
    expect_norm("\xc3\x9e\xc3\xb3r", "thor");      /* Þór */
    expect_norm("Dvo\xc5\x99\xc3\xa1k", "dvorak"); /* ř á */
    expect_norm("\xc5\xb8vonne", "yvonne");        /* Ÿ */
    expect_norm("2\xc3\x97"
                "3",
                "2\xc3\x97"
                "3");                                       /* × kept */
    expect_norm("e\xcc\x81te\xcc\x81", "ete");              /* NFD: combining acute dropped */
    expect_norm("\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1", /* Greek kept */
                "\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1");
    expect_norm("\xe6\x9d\xb1\xe4\xba\xac", "\xe6\x9d\xb1\xe4\xba\xac"); /* CJK kept */
    expect_norm("a\xff"
                "B",
                "a\xff"
                "b");                    /* invalid byte copied */
    expect_norm("\xc3", "\xc3");         /* truncated sequence */
    expect_norm("\xc0\x80", "\xc0\x80"); /* overlong: copied as bytes */
}

static void test_rows(void **state)
{
    (void)state;
    vl_index_t ix;
    vl_index_init(&ix);
    assert_int_equal(ix.n, 0);
    for (int i = 0; i < 100; i++) {
        char code[16];
        snprintf(code, sizeof code, "c%d", i);
        const char *sys = i % 2 ? "http://loinc.org" : NULL;
        assert_int_equal(vl_index_add(&ix, "code", VL_INDEX_TOKEN, sys, code, 0, 0, 0), 0);
    }
    assert_int_equal(vl_index_add(&ix, "name", VL_INDEX_STRING, NULL, "J\xc3\xb6rg", 0, 0, 0), 0);
    assert_int_equal(vl_index_add(&ix, "date", VL_INDEX_DATE, NULL, NULL, 0, -5, 7), 0);
    assert_int_equal(vl_index_add(&ix, "value-quantity", VL_INDEX_QUANTITY,
                                  "http://unitsofmeasure.org", "kg", 72.5, 0, 0),
                     0);
    assert_int_equal(ix.n, 103);
    assert_true(ix.cap >= ix.n);
    assert_null(ix.rows[0].system);
    assert_string_equal(ix.rows[1].system, "http://loinc.org");
    assert_string_equal(ix.rows[99].text, "c99");
    assert_null(ix.rows[99].norm); /* only strings get norm */
    assert_string_equal(ix.rows[100].param, "name");
    assert_string_equal(ix.rows[100].text, "J\xc3\xb6rg");
    assert_string_equal(ix.rows[100].norm, "jorg");
    assert_int_equal(ix.rows[101].kind, VL_INDEX_DATE);
    assert_null(ix.rows[101].text);
    assert_true(ix.rows[101].lo == -5 && ix.rows[101].hi == 7);
    assert_true(ix.rows[102].number == 72.5);
    vl_index_free(&ix);
    assert_int_equal(ix.n, 0);
    assert_null(ix.rows);
    vl_index_free(&ix); /* twice is harmless */
    vl_index_free(NULL);
}

static void test_patients(void **state)
{
    (void)state;
    vl_index_t ix;
    char id[8] = "p1";
    vl_index_init(&ix);
    assert_int_equal(ix.n_patients, 0);
    assert_null(ix.patients);
    assert_int_equal(vl_index_add_patient(&ix, id), 0);
    id[1] = '9'; /* copied, not borrowed */
    assert_string_equal(ix.patients[0], "p1");
    assert_int_equal(vl_index_add_patient(&ix, "p1"), 0); /* duplicates kept once */
    assert_int_equal(ix.n_patients, 1);
    for (int i = 0; i < 40; i++) {
        char p[16];
        snprintf(p, sizeof p, "q%d", i % 20);
        assert_int_equal(vl_index_add_patient(&ix, p), 0);
    }
    assert_int_equal(ix.n_patients, 21);
    assert_true(ix.cap_patients >= ix.n_patients);
    assert_string_equal(ix.patients[20], "q19");
    assert_int_equal(vl_index_add_patient(&ix, "P1"), 0); /* ids are case-sensitive */
    assert_int_equal(ix.n_patients, 22);
    /* rows and patients are independent */
    assert_int_equal(vl_index_add(&ix, "code", VL_INDEX_TOKEN, NULL, "x", 0, 0, 0), 0);
    assert_int_equal(ix.n, 1);
    assert_int_equal(ix.n_patients, 22);
    vl_index_free(&ix);
    assert_int_equal(ix.n_patients, 0);
    assert_int_equal(ix.cap_patients, 0);
    assert_null(ix.patients);
    assert_int_equal(ix.n, 0);
    vl_index_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_patients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
