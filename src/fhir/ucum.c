/*
 * vitalog — fhir/ucum.c: the UCUM units quantity search converts between.
 *
 * DESIGN NOTES
 *
 * 1. One static table, sorted by code in strcmp (byte) order and searched
 *    with bsearch. Each row maps a UCUM code to the canonical unit of its
 *    dimension: value_in_canonical = value * factor + offset. Invariants,
 *    checked by tests/unit/fhir/test_ucum.c:
 *      (a) codes are unique and strictly increasing;
 *      (b) each canonical unit is itself a row, with factor 1 and offset 0;
 *      (c) one canonical per dimension: two codes are convertible into one
 *          another exactly when their canonical units are the same string;
 *      (d) factor > 0; only temperatures have an offset.
 *    Units are not parsed: no prefix or product is derived from the rows,
 *    and a code not in the table (after note 5) is unknown (NULL / -1).
 *
 * 2. The canonical unit of a dimension is the R4 vital-signs profiles'
 *    unit where one exists (Cel, kg, cm, mm[Hg], /min, %, kg/m2), else
 *    the HL7 CGM guide's (mg/dL, mmol/L) or Physical Activity guide's
 *    (min, kcal); speed, in none of them, is in SI m/s. Mass is in kg (the
 *    body-weight unit of most vital-signs data), not UCUM's base unit g.
 *
 * 3. Factors are UCUM's definitions, exact: [lb_av] = 0.45359237 kg,
 *    [oz_av] = [lb_av]/16, [in_i] = 2.54 cm, [ft_i] = 12 [in_i],
 *    [mi_i] = 5280 [ft_i], mm[Hg] = 133.322 Pa, cal = cal_th = 4.184 J,
 *    [Cal] = kcal_th, x [degF] = (x + 459.67) * 5/9 K, x Cel = x + 273.15 K.
 *    Each is written as a decimal literal when its exact value is a finite
 *    decimal, else as a quotient of exact numbers (5.0 / 9, 1.0 / 1440), so
 *    every double is within an ulp or two of the exact value. The ctest
 *    ucum_reference (tests/interop/ucum_factors.mjs) converts 1 and 100 of
 *    every row with the reference implementation @lhncbc/ucum-lhc and
 *    requires a relative error below 1e-12, and checks that no two
 *    canonical units are convertible in it (invariant c).
 *
 *    dimension              code       canonical  factor              offset
 *    ---------------------  ---------  ---------  ------------------  -------
 *    temperature            Cel        Cel        1                   0
 *                           K          Cel        1                   -273.15
 *                           [degF]     Cel        5/9                 -160/9
 *    mass                   kg         kg         1
 *                           g          kg         0.001
 *                           mg         kg         1e-6
 *                           ug         kg         1e-9
 *                           [lb_av]    kg         0.45359237
 *                           [oz_av]    kg         0.028349523125
 *                           ng         kg         1e-12
 *                           pg         kg         1e-15
 *                           t          kg         1000
 *                           [ston_av]  kg         907.18474 (short ton, 2000 [lb_av])
 *                           [stone_av] kg         6.35029318 (stone, 14 [lb_av])
 *    length                 cm         cm         1
 *                           mm         cm         0.1
 *                           m          cm         100
 *                           km         cm         100000
 *                           [in_i]     cm         2.54
 *                           [ft_i]     cm         30.48
 *                           [mi_i]     cm         160934.4
 *                           [yd_i]     cm         91.44
 *                           um         cm         1e-4
 *                           nm         cm         1e-7
 *    pressure               mm[Hg]     mm[Hg]     1
 *                           Pa         mm[Hg]     1/133.322
 *                           kPa        mm[Hg]     1000/133.322
 *    rate (frequency)       /min       /min       1
 *                           /s         /min       60
 *                           /h         /min       1/60
 *                           /d         /min       1/1440
 *                           /wk        /min       1/10080
 *    dimensionless          %          %          1
 *                           1          %          100
 *    mass concentration     mg/dL      mg/dL      1
 *                           g/dL       mg/dL      1000
 *                           g/L        mg/dL      100
 *                           mg/L       mg/dL      0.1
 *                           mg/mL      mg/dL      100
 *                           ug/dL      mg/dL      0.001
 *                           ug/L       mg/dL      0.0001
 *                           ug/mL      mg/dL      0.1
 *                           ng/mL      mg/dL      0.0001
 *    molar concentration    mmol/L     mmol/L     1
 *                           mol/L      mmol/L     1000
 *                           umol/L     mmol/L     0.001
 *                           nmol/L     mmol/L     1e-6
 *      (each of the 13 codes above with L, the litre, is also a row
 *      spelt with l, UCUM's other symbol for it: mg/dl, g/l, mmol/l...,
 *      same canonical and factor; "mg/dl", often written, is valid UCUM)
 *    mass per area (BMI)    kg/m2      kg/m2      1
 *    time                   min        min        1
 *                           us         min        1/60000000
 *                           ms         min        1/60000
 *                           s          min        1/60
 *                           h          min        60
 *                           d          min        1440
 *                           wk         min        10080
 *    energy                 kcal       kcal       1
 *                           [Cal]      kcal       1
 *                           cal        kcal       0.001
 *                           J          kcal       1/4184
 *                           kJ         kcal       1000/4184
 *    speed                  m/s        m/s        1
 *                           km/h       m/s        5/18
 *                           [mi_i]/h   m/s        0.44704
 *
 * 4. Molar concentration is a dimension of its own: mmol/L, umol/L, mol/L
 *    and nmol/L convert among themselves only, never to mg/dL (that needs
 *    the substance's molecular weight, which a unit does not carry; ucum-lhc
 *    refuses it too).
 *
 * 5. Annotations ("{steps}", "{beats}") are unity in UCUM. vl_ucum_find()
 *    first looks a code up as written; if it is not there, it removes every
 *    annotation and looks again: "{steps}/d" is "/d", "{beats}/min" is
 *    "/min", "mg{glucose}/dL" is "mg/dL". An annotation standing alone is 1:
 *    "{steps}" (nothing left) is "1", and a trailing "/{x}" (divided by 1)
 *    goes, so "{x}/{y}" is "1" and "mg/{x}" is "mg". As in UCUM's grammar,
 *    an annotation holds ASCII 33-126 but no brace (so no space) and follows
 *    a unit or stands alone: an unclosed or nested brace, two annotations in
 *    a row, or a code of more than VL_UCUM_MAX_CODE bytes is unknown.
 *
 * 6. "1" is 100 %, so a count ("{steps}", "1") is canonically 100 times its
 *    value in %: odd to read, but the same on the index and the search side,
 *    and exact for any integer count below 2^46.
 *
 * 7. The inverse is (canonical_value - offset) / factor: a round trip is
 *    exact to a few ulps, not always bit for bit (1/1440 is not a double).
 */
#include <stdlib.h>
#include <string.h>

#include "ucum.h"

/* The longest code vl_ucum_find() looks at, in bytes (annotations included). */
#define VL_UCUM_MAX_CODE 128

/* Sorted by code in strcmp order (DESIGN NOTES 1a). */
static const vl_ucum_unit_t units[] = {
    {"%", "%", 1, 0},
    {"/d", "/min", 1.0 / 1440, 0},
    {"/h", "/min", 1.0 / 60, 0},
    {"/min", "/min", 1, 0},
    {"/s", "/min", 60, 0},
    {"/wk", "/min", 1.0 / 10080, 0},
    {"1", "%", 100, 0},
    {"Cel", "Cel", 1, 0},
    {"J", "kcal", 1.0 / 4184, 0},
    {"K", "Cel", 1, -273.15},
    {"Pa", "mm[Hg]", 1.0 / 133.322, 0},
    {"[Cal]", "kcal", 1, 0},
    {"[degF]", "Cel", 5.0 / 9, -160.0 / 9},
    {"[ft_i]", "cm", 30.48, 0},
    {"[in_i]", "cm", 2.54, 0},
    {"[lb_av]", "kg", 0.45359237, 0},
    {"[mi_i]", "cm", 160934.4, 0},
    {"[mi_i]/h", "m/s", 0.44704, 0},
    {"[oz_av]", "kg", 0.028349523125, 0},
    {"[ston_av]", "kg", 907.18474, 0},
    {"[stone_av]", "kg", 6.35029318, 0},
    {"[yd_i]", "cm", 91.44, 0},
    {"cal", "kcal", 0.001, 0},
    {"cm", "cm", 1, 0},
    {"d", "min", 1440, 0},
    {"g", "kg", 0.001, 0},
    {"g/L", "mg/dL", 100, 0},
    {"g/dL", "mg/dL", 1000, 0},
    {"g/dl", "mg/dL", 1000, 0},
    {"g/l", "mg/dL", 100, 0},
    {"h", "min", 60, 0},
    {"kJ", "kcal", 1000.0 / 4184, 0},
    {"kPa", "mm[Hg]", 1000 / 133.322, 0},
    {"kcal", "kcal", 1, 0},
    {"kg", "kg", 1, 0},
    {"kg/m2", "kg/m2", 1, 0},
    {"km", "cm", 100000, 0},
    {"km/h", "m/s", 5.0 / 18, 0},
    {"m", "cm", 100, 0},
    {"m/s", "m/s", 1, 0},
    {"mg", "kg", 1e-6, 0},
    {"mg/L", "mg/dL", 0.1, 0},
    {"mg/dL", "mg/dL", 1, 0},
    {"mg/dl", "mg/dL", 1, 0},
    {"mg/l", "mg/dL", 0.1, 0},
    {"mg/mL", "mg/dL", 100, 0},
    {"mg/ml", "mg/dL", 100, 0},
    {"min", "min", 1, 0},
    {"mm", "cm", 0.1, 0},
    {"mm[Hg]", "mm[Hg]", 1, 0},
    {"mmol/L", "mmol/L", 1, 0},
    {"mmol/l", "mmol/L", 1, 0},
    {"mol/L", "mmol/L", 1000, 0},
    {"mol/l", "mmol/L", 1000, 0},
    {"ms", "min", 1.0 / 60000, 0},
    {"ng", "kg", 1e-12, 0},
    {"ng/mL", "mg/dL", 0.0001, 0},
    {"ng/ml", "mg/dL", 0.0001, 0},
    {"nm", "cm", 1e-7, 0},
    {"nmol/L", "mmol/L", 1e-6, 0},
    {"nmol/l", "mmol/L", 1e-6, 0},
    {"pg", "kg", 1e-15, 0},
    {"s", "min", 1.0 / 60, 0},
    {"t", "kg", 1000, 0},
    {"ug", "kg", 1e-9, 0},
    {"ug/L", "mg/dL", 0.0001, 0},
    {"ug/dL", "mg/dL", 0.001, 0},
    {"ug/dl", "mg/dL", 0.001, 0},
    {"ug/l", "mg/dL", 0.0001, 0},
    {"ug/mL", "mg/dL", 0.1, 0},
    {"ug/ml", "mg/dL", 0.1, 0},
    {"um", "cm", 1e-4, 0},
    {"umol/L", "mmol/L", 0.001, 0},
    {"umol/l", "mmol/L", 0.001, 0},
    {"us", "min", 1.0 / 60000000, 0},
    {"wk", "min", 10080, 0},
};

#define N_UNITS (sizeof units / sizeof units[0])

static int cmp_code(const void *key, const void *elem)
{
    return strcmp(key, ((const vl_ucum_unit_t *)elem)->code);
}

static const vl_ucum_unit_t *lookup(const char *code)
{
    return bsearch(code, units, N_UNITS, sizeof units[0], cmp_code);
}

/* Copies code into out without its annotations (DESIGN NOTES 5), and
 * without a '/' they leave at the end; "1" when nothing else is left.
 * Returns 0, or -1 for a malformed annotation or a code too long. */
static int strip_annotations(const char *code, char out[VL_UCUM_MAX_CODE + 1])
{
    size_t n = 0;
    const char *p;
    if (strlen(code) > VL_UCUM_MAX_CODE)
        return -1;
    for (p = code; *p; p++) {
        if (*p == '}')
            return -1;
        if (*p != '{') {
            out[n++] = *p;
            continue;
        }
        for (p++; *p != '}'; p++)
            if (*p == '\0' || *p == '{' || *p < 0x21 || *p > 0x7e)
                return -1;
        if (p[1] == '{')
            return -1; /* an annotation directly after another one */
    }
    if (n > 0 && out[n - 1] == '/')
        n--; /* "x/{y}" is x/1 */
    if (n == 0)
        out[n++] = '1';
    out[n] = '\0';
    return 0;
}

const vl_ucum_unit_t *vl_ucum_find(const char *code)
{
    const vl_ucum_unit_t *u;
    char bare[VL_UCUM_MAX_CODE + 1];
    if (!code)
        return NULL;
    u = lookup(code);
    if (u || !strchr(code, '{'))
        return u;
    if (strip_annotations(code, bare) != 0)
        return NULL;
    return lookup(bare);
}

int vl_ucum_to_canonical(const char *code, double value, const char **canonical, double *out)
{
    const vl_ucum_unit_t *u = vl_ucum_find(code);
    if (!u)
        return -1;
    if (canonical)
        *canonical = u->canonical;
    *out = value * u->factor + u->offset;
    return 0;
}

int vl_ucum_from_canonical(const char *code, double canonical_value, double *out)
{
    const vl_ucum_unit_t *u = vl_ucum_find(code);
    if (!u)
        return -1;
    *out = (canonical_value - u->offset) / u->factor;
    return 0;
}

const vl_ucum_unit_t *vl_ucum_table(size_t *n)
{
    *n = N_UNITS;
    return units;
}
