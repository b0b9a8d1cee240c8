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
                "3");                                        /* × kept */
    expect_norm("e\xcc\x81te\xcc\x81", "ete");               /* NFD: combining acute dropped */
    expect_norm("\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1",  /* Greek folded too */
                "\xce\xb1\xce\xb8\xce\xb7\xce\xbd\xce\xb1"); /* Αθήνα -> αθηνα */
    expect_norm("\xe6\x9d\xb1\xe4\xba\xac", "\xe6\x9d\xb1\xe4\xba\xac"); /* CJK kept */
    expect_norm("a\xff"
                "B",
                "a\xff"
                "b");                    /* invalid byte copied */
    expect_norm("\xc3", "\xc3");         /* truncated sequence */
    expect_norm("\xc0\x80", "\xc0\x80"); /* overlong: copied as bytes */
}

/* Case and marks fold in every script (note 2a). */
static void test_normalize_scripts(void **state)
{
    (void)state;
    /* Vietnamese: stacked marks (ễ = e + circumflex + tilde, ị = i + dot below) */
    expect_norm("Nguy\xe1\xbb\x85n", "nguyen");               /* Nguyễn */
    expect_norm("Th\xe1\xbb\x8b", "thi");                     /* Thị */
    expect_norm("\xc4\x90\xe1\xbb\x97 V\xc4\x83n", "do van"); /* Đỗ Văn: Đ via note 2b */
    /* Greek: case, tonos and final sigma */
    expect_norm("\xce\x95\xce\xbb\xce\xad\xce\xbd\xce\xb7",
                "\xce\xb5\xce\xbb\xce\xb5\xce\xbd\xce\xb7"); /* Ελένη -> ελενη */
    expect_norm("\xce\x95\xce\xbb", "\xce\xb5\xce\xbb");     /* a search value ελ / Ελ */
    expect_norm("\xce\xa3\xce\xbf\xcf\x86\xce\xaf\xce\xb1\xcf\x82",
                "\xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1\xcf\x83"); /* Σοφίας -> σοφιασ */
    /* Cyrillic: Ё -> е (diaeresis dropped), Й -> и (breve dropped) */
    expect_norm("\xd0\x81\xd0\xbb\xd0\xba\xd0\xb0", "\xd0\xb5\xd0\xbb\xd0\xba\xd0\xb0"); /* Ёлка */
    expect_norm("\xd0\x99\xd0\x9e\xd0\x93", "\xd0\xb8\xd0\xbe\xd0\xb3"); /* ЙОГ */
    /* Turkish dotted capital I: I + combining dot above -> i */
    expect_norm("\xc4\xb0stanbul", "istanbul"); /* İstanbul */
    /* German capital sharp s folds like ß */
    expect_norm("STRA\xe1\xba\x9e"
                "E",
                "strasse"); /* STRAẞE */
    /* Hebrew points dropped */
    expect_norm("\xd7\xa9\xd7\x81\xd6\xb8\xd7\x9c\xd7\x95\xd6\xb9\xd7\x9d",
                "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d");     /* שָׁלוֹם -> שלום */
    expect_norm("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"); /* emoji kept */
}

/* Decomposed (NFD) input normalizes like composed (NFC) input (note 2a). */
static void test_normalize_nfd(void **state)
{
    (void)state;
    expect_norm("Nguye\xcc\x82\xcc\x83n", "nguyen");                /* e + U+0302 + U+0303 */
    expect_norm("Nguye\xcc\x83\xcc\x82n", "nguyen");                /* marks in the other order */
    expect_norm("Thi\xcc\xa3", "thi");                              /* i + U+0323 */
    expect_norm("\xce\x95\xce\xbb\xce\xb5\xcc\x81\xce\xbd\xce\xb7", /* Ελε + U+0301 νη */
                "\xce\xb5\xce\xbb\xce\xb5\xce\xbd\xce\xb7");
    expect_norm("\xd0\x95\xcc\x88\xd0\xbb\xd0\xba\xd0\xb0", /* Е + U+0308 лка */
                "\xd0\xb5\xd0\xbb\xd0\xba\xd0\xb0");
    expect_norm("Mu\xcc\x88ller", "muller");
}

/* Compatibility characters (NFKD, note 2a): fullwidth, ligatures, digits. */
static void test_normalize_compat(void **state)
{
    (void)state;
    expect_norm("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3", "abc"); /* ＡＢＣ fullwidth */
    expect_norm("\xef\xbd\x8e\xef\xbd\x87\xef\xbd\x95\xef\xbd\x99\xef\xbd\x85\xef\xbd\x8e",
                "nguyen");                         /* ｎｇｕｙｅｎ */
    expect_norm("\xef\xac\x81le", "file");         /* ﬁ ligature */
    expect_norm("\xc4\xb2sselmeer", "ijsselmeer"); /* Ĳ */
    expect_norm("a\xc2\xa0"
                "b",
                "a b");             /* no-break space -> space */
    expect_norm("x\xc2\xb2", "x2"); /* superscript two */
    expect_norm("2\xc3\xb7"
                "3",
                "2\xc3\xb7"
                "3"); /* ÷ kept */
}

/* Letters with no decomposition that still fold to ASCII (note 2b). */
static void test_normalize_extra(void **state)
{
    (void)state;
    expect_norm("\xc3\x86\xc3\xa6", "aeae"); /* Æ æ */
    expect_norm("\xc3\x98\xc3\xb8", "oo");   /* Ø ø */
    expect_norm("\xc5\x92\xc5\x93", "oeoe"); /* Œ œ */
    expect_norm("\xc5\x81\xc5\x82", "ll");   /* Ł ł */
    expect_norm("\xc4\x90\xc4\x91", "dd");   /* Đ đ */
    expect_norm("\xc3\x90\xc3\xb0", "dd");   /* Ð ð */
    expect_norm("\xc3\x9e\xc3\xbe", "thth"); /* Þ þ */
    expect_norm("\xc3\x9f", "ss");           /* ß (by case folding) */
    expect_norm("\xc4\xb1", "i");            /* ı dotless i */
    expect_norm("\xc4\xb8", "k");            /* ĸ kra */
    expect_norm("\xc5\xa6\xc5\xa7", "tt");   /* Ŧ ŧ */
    expect_norm("\xc4\xa6\xc4\xa7", "hh");   /* Ħ ħ */
    expect_norm("S\xc3\xb8ren Kierkeg\xc3\xa5rd", "soren kierkegard");
    expect_norm("Wa\xc5\x82\xc4\x99sa", "walesa"); /* Wałęsa */
    expect_norm("Tr\xc3\xbe", "trth");             /* a rewrite mid-string */
}

/* Text that is not valid UTF-8 never fails: only ASCII A-Z change (note 2c). */
static void test_normalize_invalid(void **state)
{
    (void)state;
    expect_norm("a\xff"
                "B",
                "a\xff"
                "b");                              /* stray byte */
    expect_norm("\xc3", "\xc3");                   /* truncated sequence */
    expect_norm("AB\xe1\xbb", "ab\xe1\xbb");       /* truncated 3-byte sequence */
    expect_norm("\xc0\x80", "\xc0\x80");           /* overlong */
    expect_norm("\xed\xa0\x80X", "\xed\xa0\x80x"); /* a surrogate (CESU-8) */
    expect_norm("\x80\x80\x80", "\x80\x80\x80");   /* continuation bytes only */
    /* the whole text falls back: valid letters beside a bad byte keep
     * their accents and case */
    expect_norm("J\xc3\x96RG\xff", "j\xc3\x96rg\xff");
    expect_norm("", "");
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
        cmocka_unit_test(test_normalize_scripts),
        cmocka_unit_test(test_normalize_nfd),
        cmocka_unit_test(test_normalize_compat),
        cmocka_unit_test(test_normalize_extra),
        cmocka_unit_test(test_normalize_invalid),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_patients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
