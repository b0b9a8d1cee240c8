/*
 * Unit tests for src/fhir/ucum.c: the table's invariants (DESIGN NOTES 1),
 * the units the vital-signs profiles and the CGM and Physical Activity
 * guides use, round trips of every row, the search examples (98.6 [degF]
 * finds 37 Cel, 154 [lb_av] finds 70 kg), annotations, and unknown codes.
 * The factors themselves are checked against ucum-lhc by the ctest
 * ucum_reference (tests/interop/ucum_factors.mjs).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/fhir/ucum.h"

/* |a - b| <= tol * max(|a|, |b|), or both within tol of 0. */
static int close_rel(double a, double b, double tol)
{
    double m = fmax(fabs(a), fabs(b));
    return fabs(a - b) <= tol * (m > 1 ? m : 1);
}

#define assert_close(a, b, tol)                                                                    \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!close_rel(a_, b_, tol))                                                               \
            fail_msg("%s = %.17g, expected %.17g (tolerance %g)", #a, a_, b_, (double)(tol));      \
    } while (0)

static double to_canon(const char *code, double v, const char *want_canonical)
{
    const char *canonical = NULL;
    double out = NAN;
    assert_int_equal(vl_ucum_to_canonical(code, v, &canonical, &out), 0);
    assert_non_null(canonical);
    if (want_canonical)
        assert_string_equal(canonical, want_canonical);
    return out;
}

static double from_canon(const char *code, double v)
{
    double out = NAN;
    assert_int_equal(vl_ucum_from_canonical(code, v, &out), 0);
    return out;
}

/* DESIGN NOTES 1: sorted and unique, every canonical a row of its own with
 * factor 1 and offset 0, factors positive, offsets only for temperatures. */
static void test_invariants(void **state)
{
    size_t n;
    const vl_ucum_unit_t *t = vl_ucum_table(&n);
    assert_true(n >= 50);
    for (size_t i = 0; i < n; i++) {
        const vl_ucum_unit_t *c;
        if (i > 0 && strcmp(t[i - 1].code, t[i].code) >= 0)
            fail_msg("table not sorted at %s, %s", t[i - 1].code, t[i].code);
        assert_true(t[i].factor > 0 && isfinite(t[i].factor));
        assert_true(isfinite(t[i].offset));
        if (t[i].offset != 0)
            assert_string_equal(t[i].canonical, "Cel");
        c = vl_ucum_find(t[i].canonical);
        if (!c)
            fail_msg("canonical %s of %s is not a row", t[i].canonical, t[i].code);
        assert_string_equal(c->canonical, t[i].canonical);
        assert_true(c->factor == 1 && c->offset == 0);
        assert_ptr_equal(vl_ucum_find(t[i].code), &t[i]);
    }
}

/* Every unit the brief's profiles and guides name, with its canonical. */
static void test_coverage(void **state)
{
    static const char *const rows[][2] = {
        /* R4 vital signs */
        {"/min", "/min"},
        {"Cel", "Cel"},
        {"[degF]", "Cel"},
        {"kg", "kg"},
        {"g", "kg"},
        {"[lb_av]", "kg"},
        {"[oz_av]", "kg"},
        {"cm", "cm"},
        {"m", "cm"},
        {"mm", "cm"},
        {"[in_i]", "cm"},
        {"[ft_i]", "cm"},
        {"kg/m2", "kg/m2"},
        {"mm[Hg]", "mm[Hg]"},
        {"kPa", "mm[Hg]"},
        {"%", "%"},
        /* CGM (l is the litre as L is) */
        {"mg/dl", "mg/dL"},
        {"mmol/l", "mmol/L"},
        {"mg/dL", "mg/dL"},
        {"g/dL", "mg/dL"},
        {"mg/L", "mg/dL"},
        {"g/L", "mg/dL"},
        {"ug/dL", "mg/dL"},
        {"mmol/L", "mmol/L"},
        {"umol/L", "mmol/L"},
        {"mol/L", "mmol/L"},
        /* Physical Activity */
        {"/d", "/min"},
        {"{steps}/d", "/min"},
        {"min", "min"},
        {"h", "min"},
        {"s", "min"},
        {"d", "min"},
        {"wk", "min"},
        {"kcal", "kcal"},
        {"cal", "kcal"},
        {"J", "kcal"},
        {"kJ", "kcal"},
        {"km", "cm"},
        {"[mi_i]", "cm"},
        {"m/s", "m/s"},
        {"km/h", "m/s"},
        {"1", "%"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const vl_ucum_unit_t *u = vl_ucum_find(rows[i][0]);
        if (!u)
            fail_msg("%s is not in the table", rows[i][0]);
        assert_string_equal(u->canonical, rows[i][1]);
    }
}

/* Every row, both ways, over a spread of values. */
static void test_round_trips(void **state)
{
    static const double values[] = {0, 1, -1, 0.1, 37, 98.6, 154, -40, 1e-6, 12345.678, 1e9};
    size_t n;
    const vl_ucum_unit_t *t = vl_ucum_table(&n);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
            double v = values[k];
            double c = to_canon(t[i].code, v, t[i].canonical);
            assert_close(c, v * t[i].factor + t[i].offset, 1e-15);
            assert_close(from_canon(t[i].code, c), v, 1e-12);
            assert_close(to_canon(t[i].code, from_canon(t[i].code, v), NULL), v, 1e-12);
        }
    }
}

static void test_examples(void **state)
{
    /* temperature */
    assert_close(to_canon("[degF]", 98.6, "Cel"), 37, 1e-9);
    assert_close(to_canon("[degF]", 32, "Cel"), 0, 1e-12);
    assert_close(to_canon("[degF]", -40, "Cel"), -40, 1e-12);
    assert_close(from_canon("[degF]", 37), 98.6, 1e-12);
    assert_close(to_canon("K", 310.15, "Cel"), 37, 1e-12);
    /* mass: 70 kg and 70000 g are both 154 [lb_av] to three figures */
    assert_close(to_canon("[lb_av]", 154, "kg"), 69.85322498, 1e-12);
    assert_close(to_canon("g", 70000, "kg"), 70, 1e-12);
    assert_close(to_canon("[oz_av]", 16, "kg"), 0.45359237, 1e-12);
    assert_close(from_canon("[lb_av]", 70), 154.3235835294143, 1e-12);
    /* length */
    assert_close(to_canon("[in_i]", 12, "cm"), to_canon("[ft_i]", 1, "cm"), 1e-15);
    assert_close(from_canon("m", to_canon("[mi_i]", 1, "cm")), 1609.344, 1e-12);
    assert_close(to_canon("mm", 1755, "cm"), to_canon("m", 1.755, "cm"), 1e-12);
    /* pressure: 1 mm[Hg] = 133.322 Pa */
    assert_close(from_canon("kPa", 1), 0.133322, 1e-12);
    assert_close(from_canon("Pa", 120), 120 * 133.322, 1e-12);
    assert_close(to_canon("kPa", 16, "mm[Hg]"), 16 / 0.133322, 1e-12);
    /* mass concentration; l is the litre as L is */
    assert_close(to_canon("mg/dl", 100, "mg/dL"), 100, 1e-15);
    assert_close(to_canon("g/l", 1, "mg/dL"), 100, 1e-12);
    assert_close(to_canon("mmol/l", 5.5, "mmol/L"), 5.5, 1e-15);
    assert_close(to_canon("g/dL", 0.1, "mg/dL"), 100, 1e-12);
    assert_close(to_canon("g/L", 1, "mg/dL"), 100, 1e-12);
    assert_close(to_canon("mg/L", 1000, "mg/dL"), 100, 1e-12);
    assert_close(to_canon("ug/dL", 100000, "mg/dL"), 100, 1e-12);
    /* molar concentration */
    assert_close(to_canon("umol/L", 5500, "mmol/L"), 5.5, 1e-12);
    assert_close(to_canon("mol/L", 0.0055, "mmol/L"), 5.5, 1e-12);
    /* rates, time, energy, speed */
    assert_close(to_canon("/d", 1440, "/min"), 1, 1e-12);
    assert_close(to_canon("/s", 1, "/min"), 60, 1e-12);
    assert_close(to_canon("h", 1.5, "min"), 90, 1e-12);
    assert_close(to_canon("wk", 1, "min"), to_canon("d", 7, "min"), 1e-15);
    assert_close(to_canon("J", 4184, "kcal"), 1, 1e-12);
    assert_close(to_canon("kJ", 4.184, "kcal"), 1, 1e-12);
    assert_close(to_canon("cal", 1000, "kcal"), to_canon("[Cal]", 1, "kcal"), 1e-15);
    assert_close(to_canon("km/h", 3.6, "m/s"), 1, 1e-12);
    assert_close(to_canon("[mi_i]/h", 1, "m/s"), 1609.344 / 3600, 1e-12);
    /* dimensionless: 1 = 100 % */
    assert_close(to_canon("1", 0.97, "%"), 97, 1e-12);
    assert_close(to_canon("%", 97, "%"), 97, 1e-15);
}

/* mmol/L is its own dimension: never convertible to mg/dL. */
static void test_molar_is_separate(void **state)
{
    const vl_ucum_unit_t *molar = vl_ucum_find("mmol/L"), *mass = vl_ucum_find("mg/dL");
    assert_non_null(molar);
    assert_non_null(mass);
    assert_string_not_equal(molar->canonical, mass->canonical);
    assert_string_equal(vl_ucum_find("umol/L")->canonical, "mmol/L");
    assert_string_equal(vl_ucum_find("mol/L")->canonical, "mmol/L");
    assert_string_equal(vl_ucum_find("nmol/L")->canonical, "mmol/L");
    assert_string_equal(vl_ucum_find("g/dL")->canonical, "mg/dL");
    /* nor is BMI a mass or a mass concentration */
    assert_string_not_equal(vl_ucum_find("kg/m2")->canonical, vl_ucum_find("kg")->canonical);
}

/* DESIGN NOTES 5: annotations are unity. */
static void test_annotations(void **state)
{
    static const char *const ok[][2] = {
        {"{steps}/d", "/d"},
        {"{steps}/min", "/min"},
        {"{beats}/min", "/min"},
        {"{breaths}/min", "/min"},
        {"{steps}", "1"},
        {"{score}", "1"},
        {"mg{glucose}/dL", "mg/dL"},
        {"kg{body}", "kg"},
        {"{}/d", "/d"},
        {"{x}/{y}", "1"},
        {"mg/{x}", "mg"},
    };
    static const char *const bad[] = {
        "{steps/d",     "steps}/d", "{a{b}}/d",    "mg/{x}/dL", "{steps}/D",
        "{\xc3\xa9}/d", "{\t}/d",   "{steps}/day", "{a b}/d",   "{steps}{x}",
    };
    char longcode[300];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const vl_ucum_unit_t *u = vl_ucum_find(ok[i][0]);
        if (!u)
            fail_msg("%s not found", ok[i][0]);
        assert_string_equal(u->code, ok[i][1]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (vl_ucum_find(bad[i]))
            fail_msg("%s found", bad[i]);
    assert_close(to_canon("{steps}/d", 10080, "/min"), 7, 1e-12);
    assert_close(from_canon("{steps}/d", 7), 10080, 1e-12);
    assert_close(to_canon("{steps}", 5000, "%"), 500000, 1e-15);
    /* a code too long is unknown, annotation or not */
    memset(longcode, 0, sizeof longcode);
    longcode[0] = '{';
    memset(longcode + 1, 'x', 200);
    strcpy(longcode + 201, "}/d");
    assert_null(vl_ucum_find(longcode));
}

/* Unknown and wrongly cased codes: NULL / -1, and nothing written. */
static void test_unknown(void **state)
{
    static const char *const codes[] = {
        "MG/DL", "mg/DL", "KG", "Kg",  "cel",      "CEL",  "[DEGF]",  "[lb_av", "lb",      "lbs",
        "kg ",   " kg",   "",   "foo", "mg/100mL", "mmHg", "[lb_ap]", "mm[hg]", "10*3/uL", "%{x}y",
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *canonical = "untouched";
        double out = 42;
        if (vl_ucum_find(codes[i]))
            fail_msg("%s found", codes[i]);
        assert_int_equal(vl_ucum_to_canonical(codes[i], 1, &canonical, &out), -1);
        assert_string_equal(canonical, "untouched");
        assert_int_equal(vl_ucum_from_canonical(codes[i], 1, &out), -1);
        assert_true(out == 42);
    }
    assert_null(vl_ucum_find(NULL));
    {
        double out = 42;
        assert_int_equal(vl_ucum_to_canonical(NULL, 1, NULL, &out), -1);
        assert_int_equal(vl_ucum_from_canonical(NULL, 1, &out), -1);
        assert_true(out == 42);
    }
}

/* canonical may be NULL. */
static void test_canonical_optional(void **state)
{
    double out = 0;
    assert_int_equal(vl_ucum_to_canonical("g/dL", 0.1, NULL, &out), 0);
    assert_close(out, 100, 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invariants),        cmocka_unit_test(test_coverage),
        cmocka_unit_test(test_round_trips),       cmocka_unit_test(test_examples),
        cmocka_unit_test(test_molar_is_separate), cmocka_unit_test(test_annotations),
        cmocka_unit_test(test_unknown),           cmocka_unit_test(test_canonical_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
