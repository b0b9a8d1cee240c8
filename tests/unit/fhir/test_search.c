/*
 * Unit tests for src/fhir/search.c: form decoding and search parsing into
 * a vl_query_t (values, modifiers, prefixes, result parameters, errors,
 * self_query).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/fhir.h"

#define S INT64_C(1000000)

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* Parses `qs` as a query string and runs the search parser. */
static int run(const char *type, const char *qs, int lenient, vl_search_t *s, vl_error_t *err)
{
    vl_params_t p;
    vl_params_init(&p);
    assert_int_equal(vl_params_parse_form(&p, qs, strlen(qs)), 0);
    int rc = vl_fhir_search_parse(vl_fhir_type_find(type), &p, lenient, s, err);
    vl_params_free(&p);
    return rc;
}

static void ok(const char *type, const char *qs, vl_search_t *s)
{
    vl_error_t err = VL_ERROR_INIT;
    if (run(type, qs, 0, s, &err) != 0)
        fail_msg("%s?%s failed: %s", type, qs, vl_error_message(&err));
    vl_error_clear(&err);
}

/* Expects a failure with `status` and an issue code; returns nothing. */
static void fails(const char *type, const char *qs, int lenient, int status, const char *code)
{
    vl_search_t s;
    vl_error_t err = VL_ERROR_INIT;
    if (run(type, qs, lenient, &s, &err) == 0)
        fail_msg("%s?%s was accepted", type, qs);
    assert_int_equal(err.status, status);
    json_t *issue = json_array_get(err.issues, 0);
    const char *got = json_string_value(json_object_get(issue, "code"));
    if (!got || strcmp(got, code) != 0)
        fail_msg("%s?%s: issue code %s, want %s (%s)", type, qs, got ? got : "(none)", code,
                 vl_error_message(&err));
    assert_true(strlen(vl_error_message(&err)) > 0);
    /* a failed parse leaves a freeable, empty search */
    assert_null(s._mem);
    assert_int_equal(s.query.n, 0);
    vl_search_free(&s);
    vl_error_clear(&err);
}

/* ------------------------------------------------------------------------
 * Form decoding
 * ---------------------------------------------------------------------- */

static void test_params_form(void **state)
{
    (void)state;
    vl_params_t p;
    vl_params_init(&p);
    const char *f = "a=1&b=x+y%20z&&c&d=%2B%26%3d&code:text=%C3%A9&e=";
    assert_int_equal(vl_params_parse_form(&p, f, strlen(f)), 0);
    assert_int_equal(p.n, 6);
    assert_string_equal(p.items[0].name, "a");
    assert_string_equal(p.items[0].value, "1");
    assert_string_equal(vl_params_get(&p, "b"), "x y z");
    assert_string_equal(vl_params_get(&p, "c"), "");
    assert_string_equal(vl_params_get(&p, "d"), "+&=");
    assert_string_equal(vl_params_get(&p, "code:text"), "\xc3\xa9");
    assert_string_equal(vl_params_get(&p, "e"), "");
    assert_null(vl_params_get(&p, "zz"));
    /* length is honoured: only "a=1" */
    vl_params_free(&p);
    assert_int_equal(vl_params_parse_form(&p, "a=1&b=2", 3), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(vl_params_add(&p, "x", "y"), 0);
    assert_int_equal(vl_params_add(&p, "x", NULL), 0);
    assert_string_equal(vl_params_get(&p, "x"), "y");
    assert_string_equal(p.items[2].value, "");
    vl_params_free(&p);
    assert_int_equal(vl_params_parse_form(&p, "", 0), 0);
    assert_int_equal(p.n, 0);

    static const char *const bad[] = {"a=%", "a=%4", "a=%G1", "a=%4g", "%zz=1", "a=%00", "a=1&b=%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vl_params_init(&p);
        if (vl_params_parse_form(&p, bad[i], strlen(bad[i])) != -1)
            fail_msg("accepted %s", bad[i]);
        vl_params_free(&p);
    }
}

/* ------------------------------------------------------------------------
 * Kinds
 * ---------------------------------------------------------------------- */

static void test_token(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation", "code=http://loinc.org|8867-4,|abc,http://snomed.info/sct|,xyz", &s);
    assert_string_equal(s.query.type, "Observation");
    assert_int_equal(s.query.n, 1);
    const vl_query_cond_t *c = &s.query.conds[0];
    assert_string_equal(c->param, "code");
    assert_int_equal(c->kind, VL_INDEX_TOKEN);
    assert_int_equal(c->missing, -1);
    assert_int_equal(c->n, 4);
    assert_string_equal(c->values[0].system, "http://loinc.org");
    assert_string_equal(c->values[0].text, "8867-4");
    assert_string_equal(c->values[1].system, ""); /* no system */
    assert_string_equal(c->values[1].text, "abc");
    assert_string_equal(c->values[2].system, "http://snomed.info/sct");
    assert_null(c->values[2].text);   /* any code */
    assert_null(c->values[3].system); /* any system */
    assert_string_equal(c->values[3].text, "xyz");
    vl_search_free(&s);

    /* escapes: \, and \| are literal */
    ok("Observation", "identifier=a\\|b|c\\,d", &s);
    c = &s.query.conds[0];
    assert_int_equal(c->n, 1);
    assert_string_equal(c->values[0].system, "a|b");
    assert_string_equal(c->values[0].text, "c,d");
    vl_search_free(&s);

    /* repeated parameter: AND */
    ok("Observation", "category=vital-signs&code=1&code=2", &s);
    assert_int_equal(s.query.n, 3);
    assert_string_equal(s.query.conds[1].values[0].text, "1");
    assert_string_equal(s.query.conds[2].values[0].text, "2");
    vl_search_free(&s);

    fails("Observation", "code=|", 0, 400, "invalid");
    fails("Observation", "code=a,,b", 0, 400, "invalid");
    fails("Observation", "code:in=http://x", 0, 400, "not-supported");
    fails("Observation", "code:exact=1", 0, 400, "not-supported");
    fails("Observation", "code:below=1", 1, 400, "not-supported");         /* even lenient */
    fails("Observation", "status:of-type=a|b|c", 0, 400, "not-supported"); /* not an Identifier */
    fails("Patient", "identifier:of-type=a|b", 0, 400, "invalid");
    fails("Patient", "identifier:of-type=a||v", 0, 400, "invalid");
}

/* :not, :text, :of-type (R4 search 3.1.1.5.x) */
static void test_token_modifiers(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation", "code:not=http://loinc.org|8867-4", &s);
    assert_int_equal(s.query.n, 1);
    assert_int_equal(s.query.conds[0].negate, 1);
    assert_string_equal(s.query.conds[0].param, "code");
    assert_string_equal(s.query.conds[0].values[0].text, "8867-4");
    vl_search_free(&s);
    /* :text: CodeableConcept.text and Coding.display, as strings */
    ok("Observation", "code:text=Heart%20R%C3%A2te", &s);
    assert_string_equal(s.query.conds[0].param, "code:text");
    assert_int_equal(s.query.conds[0].kind, VL_INDEX_STRING);
    assert_string_equal(s.query.conds[0].values[0].text, "heart rate");
    vl_search_free(&s);
    ok("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", &s);
    assert_string_equal(s.query.conds[0].param, "identifier:of-type");
    assert_string_equal(s.query.conds[0].values[0].text,
                        "http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053");
    vl_search_free(&s);
}

static void test_string(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Patient", "name=Ch%C3%A2LMERS,Jim&family:exact=Ch%C3%A2lmers&given:contains=ET", &s);
    assert_int_equal(s.query.n, 3);
    const vl_query_cond_t *c = &s.query.conds[0];
    assert_int_equal(c->kind, VL_INDEX_STRING);
    assert_int_equal(c->match, VL_MATCH_DEFAULT);
    assert_string_equal(c->values[0].text, "chalmers");
    assert_string_equal(c->values[1].text, "jim");
    c = &s.query.conds[1];
    assert_int_equal(c->match, VL_MATCH_EXACT);
    assert_string_equal(c->values[0].text, "Ch\xc3\xa2lmers");
    c = &s.query.conds[2];
    assert_int_equal(c->match, VL_MATCH_CONTAINS);
    assert_string_equal(c->values[0].text, "et");
    vl_search_free(&s);

    fails("Patient", "name:text=x", 0, 400, "not-supported");
    fails("Patient", "name:Patient=x", 0, 400, "not-supported");
}

static void test_reference(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation",
       "subject=Patient/p1,Group/g1/_history/2,https://x.example/fhir/Patient/9,urn:uuid:abc", &s);
    const vl_query_cond_t *c = &s.query.conds[0];
    assert_int_equal(c->kind, VL_INDEX_REFERENCE);
    assert_int_equal(c->n, 4);
    assert_string_equal(c->values[0].text, "Patient/p1");
    assert_string_equal(c->values[1].text, "Group/g1");
    assert_string_equal(c->values[2].text, "https://x.example/fhir/Patient/9");
    assert_string_equal(c->values[3].text, "urn:uuid:abc");
    vl_search_free(&s);

    /* patient has target Patient: a bare id gets the type */
    ok("Observation", "patient=p1", &s);
    assert_int_equal(s.query.conds[0].n, 1);
    /* Observation.subject.where(resolve() is Patient): the subject rows */
    assert_string_equal(s.query.conds[0].param, "subject");
    assert_string_equal(s.query.conds[0].ref_type, "Patient");
    assert_string_equal(s.query.conds[0].values[0].text, "Patient/p1");
    vl_search_free(&s);

    /* type modifier */
    ok("Observation", "subject:Patient=p1", &s);
    assert_int_equal(s.query.conds[0].n, 1);
    assert_string_equal(s.query.conds[0].values[0].text, "Patient/p1");
    assert_string_equal(s.self_query, "subject:Patient=p1");
    vl_search_free(&s);

    /* bare id, no target: one alternative per R4 type */
    ok("Observation", "subject=p1,Device/d1", &s);
    c = &s.query.conds[0];
    assert_int_equal(c->n, 147);
    int seen_patient = 0, seen_account = 0;
    for (size_t i = 0; i < 146; i++) {
        if (strcmp(c->values[i].text, "Patient/p1") == 0)
            seen_patient = 1;
        if (strcmp(c->values[i].text, "Account/p1") == 0)
            seen_account = 1;
    }
    assert_true(seen_patient && seen_account);
    assert_string_equal(c->values[146].text, "Device/d1");
    vl_search_free(&s);

    fails("Observation", "patient=Group/g1", 0, 400, "invalid");
    fails("Observation", "patient:Group=g1", 0, 400, "invalid");
    fails("Observation", "subject:Patient=Group/g1", 0, 400, "invalid");
    fails("Observation", "subject=NotAType/1", 0, 400, "invalid");
    fails("Observation", "subject=Patient/", 0, 400, "invalid");
    fails("Observation", "subject=bad%20id", 0, 400, "invalid");
    fails("Observation", "subject:identifier=x|1", 0, 400, "not-supported");
    fails("Observation", "subject:Nope=1", 0, 400, "not-supported");
}

static void test_date(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation",
       "date=2024&date=ge2024-05-06T10:00:00%2B02:00&date=lt2024-02,ne2024-03-01&date=eq2024&"
       "date=le2024&date=gt2024",
       &s);
    assert_int_equal(s.query.n, 6);
    const vl_query_cond_t *c = &s.query.conds[0];
    assert_int_equal(c->kind, VL_INDEX_DATE);
    assert_int_equal(c->values[0].cmp, VL_CMP_EQ);
    assert_true(c->values[0].lo == 1704067200 * S && c->values[0].hi == 1735689600 * S);
    c = &s.query.conds[1];
    assert_int_equal(c->values[0].cmp, VL_CMP_GE);
    assert_true(c->values[0].lo == 1714982400 * S && c->values[0].hi == 1714982401 * S);
    c = &s.query.conds[2];
    assert_int_equal(c->n, 2);
    assert_int_equal(c->values[0].cmp, VL_CMP_LT);
    assert_true(c->values[0].lo == 1706745600 * S && c->values[0].hi == 1709251200 * S);
    assert_int_equal(c->values[1].cmp, VL_CMP_NE);
    assert_int_equal(s.query.conds[3].values[0].cmp, VL_CMP_EQ);
    assert_int_equal(s.query.conds[4].values[0].cmp, VL_CMP_LE);
    assert_int_equal(s.query.conds[5].values[0].cmp, VL_CMP_GT);
    vl_search_free(&s);

    ok("Patient", "birthdate=1980-02-29", &s);
    assert_int_equal(s.query.conds[0].values[0].hi - s.query.conds[0].values[0].lo, 86400 * S);
    vl_search_free(&s);

    ok("Observation", "date=sa2024&date=eb2030", &s);
    assert_int_equal(s.query.conds[0].values[0].cmp, VL_CMP_SA);
    assert_int_equal(s.query.conds[1].values[0].cmp, VL_CMP_EB);
    vl_search_free(&s);
    /* ap: widened by 10% of the distance from now on each side */
    ok("Observation", "date=ap2000-01-01", &s);
    {
        const vl_query_value_t *v = &s.query.conds[0].values[0];
        int64_t lo, hi, now = vl_time_now_us();
        vl_time_parse_range("2000-01-01", &lo, &hi, NULL);
        int64_t gap = (int64_t)((double)(now - lo) * 0.1);
        assert_int_equal(v->cmp, VL_CMP_AP);
        assert_true(llabs((long long)(lo - gap - v->lo)) < 10 * 1000000LL);
        assert_true(llabs((long long)(hi + gap - v->hi)) < 10 * 1000000LL);
    }
    vl_search_free(&s);
    /* hours and minutes without seconds: the minute */
    ok("Observation", "date=2024-03-15T10:00Z", &s);
    assert_true(s.query.conds[0].values[0].lo == 1710496800 * S);
    assert_true(s.query.conds[0].values[0].hi == 1710496860 * S);
    vl_search_free(&s);
    ok("Observation", "date=ge2024-03-15T10:00%2B02:00", &s);
    assert_true(s.query.conds[0].values[0].lo == (1710496800 - 7200) * S);
    vl_search_free(&s);
    fails("Observation", "date=2024-03-15T10Z", 0, 400, "invalid");
    fails("Observation", "date=2024-03-15T10:60Z", 0, 400, "invalid");
    fails("Observation", "date=xx2024", 0, 400, "invalid");
    fails("Observation", "date=2024-02-30", 0, 400, "invalid");
    fails("Observation", "date=2024-01-01T25:00:00Z", 0, 400, "invalid");
    fails("Observation", "date=ge", 0, 400, "invalid");
    fails("Observation", "date:exact=2024", 0, 400, "not-supported");
}

static void test_quantity(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation",
       "value-quantity=5.4,gt100|http://unitsofmeasure.org|mm[Hg],le-1e2||mg,7|http://u.org|", &s);
    const vl_query_cond_t *c = &s.query.conds[0];
    assert_int_equal(c->kind, VL_INDEX_QUANTITY);
    /* the UCUM value is two alternatives: canonical rows and rows sent in
     * the canonical unit (mm[Hg] is canonical itself) */
    assert_int_equal(c->n, 5);
    assert_int_equal(c->values[0].cmp, VL_CMP_EQ);
    assert_true(c->values[0].number == 5.4);
    assert_true(fabs(c->values[0].lo_num - 5.35) < 1e-12 &&
                fabs(c->values[0].hi_num - 5.45) < 1e-12);
    assert_null(c->values[0].system);
    assert_null(c->values[0].text);
    assert_int_equal(c->values[1].cmp, VL_CMP_GT);
    assert_true(c->values[1].number == 100);
    assert_string_equal(c->values[1].system, "http://unitsofmeasure.org");
    assert_string_equal(c->values[1].text, "mm[Hg]");
    assert_int_equal(c->values[1].canon, 1);
    assert_int_equal(c->values[2].canon, 0);
    assert_string_equal(c->values[2].text, "mm[Hg]");
    assert_int_equal(c->values[3].cmp, VL_CMP_LE);
    assert_true(c->values[3].number == -100);
    assert_null(c->values[3].system);
    assert_string_equal(c->values[3].text, "mg");
    assert_string_equal(c->values[4].system, "http://u.org");
    assert_null(c->values[4].text);
    vl_search_free(&s);

    /* implicit precision (R4 search 3.1.1.4.6) */
    static const struct {
        const char *v;
        double lo, hi;
    } prec[] = {{"72", 71.5, 72.5}, {"100", 99.5, 100.5},   {"99.5", 99.45, 99.55},
                {"1e2", 95, 105},   {"1.00", 0.995, 1.005}, {"-5", -5.5, -4.5},
                {"ap100", 90, 110}};
    for (size_t i = 0; i < sizeof prec / sizeof prec[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "value-quantity=%s", prec[i].v);
        ok("Observation", q, &s);
        const vl_query_value_t *v = &s.query.conds[0].values[0];
        if (fabs(v->lo_num - prec[i].lo) > 1e-9 || fabs(v->hi_num - prec[i].hi) > 1e-9)
            fail_msg("%s: [%g, %g)", prec[i].v, v->lo_num, v->hi_num);
        vl_search_free(&s);
    }
    /* convertible units: searched in the canonical unit */
    ok("Observation", "value-quantity=98.6|http://unitsofmeasure.org|[degF]", &s);
    c = &s.query.conds[0];
    assert_int_equal(c->n, 2);
    assert_string_equal(c->values[0].text, "Cel");
    assert_true(fabs(c->values[0].number - 37) < 1e-9);
    assert_true(c->values[0].lo_num < 37 && c->values[0].hi_num > 37);
    vl_search_free(&s);
    ok("Observation", "value-quantity=0.1|http://unitsofmeasure.org|g/dL", &s);
    assert_string_equal(s.query.conds[0].values[0].text, "mg/dL");
    assert_true(fabs(s.query.conds[0].values[0].number - 100) < 1e-9);
    vl_search_free(&s);
    /* mmol/L stays molar (no molar mass) */
    ok("Observation", "value-quantity=5.5|http://unitsofmeasure.org|mmol/L", &s);
    assert_string_equal(s.query.conds[0].values[0].text, "mmol/L");
    vl_search_free(&s);
    /* the human unit, any system */
    ok("Observation", "value-quantity=72||beats/minute", &s);
    assert_int_equal(s.query.conds[0].n, 1);
    assert_null(s.query.conds[0].values[0].system);
    assert_string_equal(s.query.conds[0].values[0].text, "beats/minute");
    vl_search_free(&s);

    fails("Observation", "value-quantity=abc", 0, 400, "invalid");
    fails("Observation", "value-quantity=5|http://u.org", 0, 400, "invalid");
    fails("Observation", "value-quantity=5|a|b|c", 0, 400, "invalid");
    fails("Observation", "value-quantity=1e999", 0, 400, "invalid");
    fails("Observation", "value-quantity=.5", 0, 400, "invalid");
    ok("Observation", "value-quantity=sa5&value-quantity=eb9", &s);
    assert_int_equal(s.query.conds[0].values[0].cmp, VL_CMP_SA);
    assert_int_equal(s.query.conds[1].values[0].cmp, VL_CMP_EB);
    vl_search_free(&s);
}

/* composites: token $ quantity */
static void test_composite(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation",
       "code-value-quantity=http://loinc.org|8867-4$gt100|http://unitsofmeasure.org|/s", &s);
    const vl_query_value_t *v = &s.query.conds[0].values[0];
    assert_int_equal(s.query.conds[0].kind, VL_INDEX_COMPOSITE);
    assert_string_equal(v->system, "http://loinc.org");
    assert_string_equal(v->text, "8867-4");
    assert_string_equal(v->unit, "/min"); /* canonical */
    assert_true(fabs(v->number - 6000) < 1e-9);
    assert_int_equal(v->cmp, VL_CMP_GT);
    vl_search_free(&s);
    ok("Observation", "component-code-value-quantity=8480-6$lt140", &s);
    v = &s.query.conds[0].values[0];
    assert_null(v->system);
    assert_null(v->unit);
    vl_search_free(&s);
    /* a unit without a system: as a UCUM code, or another system's ("|" + code) */
    ok("Observation", "combo-code-value-quantity=8480-6$lt140||mm[Hg]", &s);
    assert_int_equal(s.query.conds[0].n, 2);
    assert_string_equal(s.query.conds[0].values[0].unit, "mm[Hg]");
    assert_string_equal(s.query.conds[0].values[1].unit, "|mm[Hg]");
    assert_string_equal(s.query.conds[0].values[1].text, "8480-6");
    vl_search_free(&s);
    ok("Observation", "code-value-quantity=x$5|http://other.org|g", &s);
    assert_string_equal(s.query.conds[0].values[0].unit, "|g");
    vl_search_free(&s);
    /* combo-*: the rows of the two parameters whose union it is */
    ok("Observation", "combo-code=http://loinc.org|8480-6&combo-code:text=sys", &s);
    assert_string_equal(s.query.conds[0].param, "code");
    assert_string_equal(s.query.conds[0].also, "component-code");
    assert_string_equal(s.query.conds[1].param, "code:text");
    assert_string_equal(s.query.conds[1].also, "component-code:text");
    vl_search_free(&s);
    ok("Observation", "combo-code-value-quantity=8480-6$120", &s);
    assert_string_equal(s.query.conds[0].param, "code-value-quantity");
    assert_string_equal(s.query.conds[0].also, "component-code-value-quantity");
    vl_search_free(&s);
    fails("Observation", "code-value-quantity=8867-4", 0, 400, "invalid");
    fails("Observation", "code-value-quantity=$5", 0, 400, "invalid");
    fails("Observation", "code-value-quantity=8867-4$x", 0, 400, "invalid");
}

/* The plans the parser prepares for the store */
static void test_plans(void **state)
{
    (void)state;
    vl_search_t s;
    /* one patient's readings of one code: the series */
    ok("Observation", "patient=p1&code=http://loinc.org|8867-4&date=ge2024&_sort=-date", &s);
    assert_string_equal(s.query.series.patient, "Patient/p1");
    assert_string_equal(s.query.series.code, "8867-4");
    assert_string_equal(s.query.series.system, "http://loinc.org");
    assert_int_equal(s.query.n, 1); /* the date stays, for the series' time */
    assert_string_equal(s.query.conds[0].param, "date");
    vl_search_free(&s);
    ok("Observation", "subject=Patient/p1&code=8867-4", &s);
    assert_string_equal(s.query.series.patient, "Patient/p1");
    assert_null(s.query.series.system);
    vl_search_free(&s);
    /* not when the patient or the code is a choice, or negated */
    ok("Observation", "patient=p1,p2&code=8867-4", &s);
    assert_null(s.query.series.patient);
    vl_search_free(&s);
    ok("Observation", "patient=p1&code:not=8867-4", &s);
    assert_null(s.query.series.patient);
    vl_search_free(&s);
    ok("Observation", "subject=Group/g&code=8867-4", &s);
    assert_null(s.query.series.patient);
    vl_search_free(&s);
    /* code with a UCUM value-quantity: the composite */
    ok("Observation",
       "code=http://loinc.org|8867-4&value-quantity=gt120|http://unitsofmeasure.org|/min", &s);
    assert_int_equal(s.query.n, 1);
    assert_string_equal(s.query.conds[0].param, "code-value-quantity");
    assert_string_equal(s.query.conds[0].values[0].unit, "/min");
    assert_string_equal(s.query.conds[0].values[0].text, "8867-4");
    vl_search_free(&s);
    /* without a unit the rows as sent are meant: no composite */
    ok("Observation", "code=http://loinc.org|8867-4&value-quantity=gt120", &s);
    assert_int_equal(s.query.n, 2);
    vl_search_free(&s);
}

/* An absolute URL of this server is its relative reference */
static void test_local_base(void **state)
{
    (void)state;
    vl_search_t s;
    vl_params_t p;
    vl_error_t err = VL_ERROR_INIT;
    vl_params_init(&p);
    assert_int_equal(vl_params_add(&p, "subject", "http://h:8080/fhir/Patient/p1"), 0);
    assert_int_equal(vl_params_add(&p, "performer", "https://elsewhere/fhir/Practitioner/x"), 0);
    assert_int_equal(vl_fhir_search_parse_at(vl_fhir_type_find("Observation"), &p, 0,
                                             "http://h:8080/fhir", &s, &err),
                     0);
    assert_string_equal(s.query.conds[0].values[0].text, "Patient/p1");
    assert_string_equal(s.query.conds[1].values[0].text, "https://elsewhere/fhir/Practitioner/x");
    vl_search_free(&s);
    vl_params_free(&p);
    assert_string_equal(vl_fhir_local_reference("http://h/fhir/Patient/1", "http://h/fhir"),
                        "Patient/1");
    assert_string_equal(vl_fhir_local_reference("http://h/fhirx/Patient/1", "http://h/fhir"),
                        "http://h/fhirx/Patient/1");
    assert_string_equal(vl_fhir_local_reference("http://h/fhir/", "http://h/fhir"),
                        "http://h/fhir/");
}

static void test_missing(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation", "device:missing=true&date:missing=false&value-quantity:missing=true", &s);
    assert_int_equal(s.query.n, 3);
    assert_int_equal(s.query.conds[0].missing, 1);
    assert_int_equal(s.query.conds[0].n, 0);
    assert_int_equal(s.query.conds[0].kind, VL_INDEX_REFERENCE);
    assert_int_equal(s.query.conds[1].missing, 0);
    assert_int_equal(s.query.conds[2].missing, 1);
    vl_search_free(&s);
    ok("Patient", "name:missing=true", &s);
    assert_int_equal(s.query.conds[0].missing, 1);
    vl_search_free(&s);
    fails("Observation", "device:missing=yes", 0, 400, "invalid");
}

/* ------------------------------------------------------------------------
 * Common and result parameters
 * ---------------------------------------------------------------------- */

static void test_common(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation", "", &s);
    assert_null(s.query.id);
    assert_int_equal(s.query.n, 0);
    assert_int_equal(s.query.count, VL_SEARCH_COUNT_DEFAULT);
    assert_int_equal(s.query.offset, 0);
    assert_int_equal(s.query.n_sort, 0);
    assert_int_equal(s.total_mode, VL_TOTAL_BOUNDED);
    assert_string_equal(s.self_query, "");
    vl_search_free(&s);

    ok("Observation", "_id=abc", &s);
    assert_string_equal(s.query.id, "abc");
    assert_int_equal(s.query.n, 0);
    vl_search_free(&s);

    ok("Observation", "_id=a,b&_id=c", &s);
    assert_string_equal(s.query.id, "c"); /* the first single-valued _id */
    assert_int_equal(s.query.n, 1);
    assert_string_equal(s.query.conds[0].param, "_id");
    assert_int_equal(s.query.conds[0].n, 2);
    assert_string_equal(s.query.conds[0].values[1].text, "b");
    assert_null(s.query.conds[0].values[1].system);
    vl_search_free(&s);

    ok("Observation", "_id=a&_id=b", &s);
    assert_string_equal(s.query.id, "a");
    assert_int_equal(s.query.n, 1);
    assert_string_equal(s.query.conds[0].values[0].text, "b");
    vl_search_free(&s);

    ok("Observation", "_lastUpdated=gt2024-01-01T00:00:00Z", &s);
    assert_string_equal(s.query.conds[0].param, "_lastUpdated");
    assert_int_equal(s.query.conds[0].kind, VL_INDEX_DATE);
    assert_int_equal(s.query.conds[0].values[0].cmp, VL_CMP_GT);
    assert_true(s.query.conds[0].values[0].lo == 1704067200 * S);
    vl_search_free(&s);

    ok("Observation", "_count=10&_offset=20&_sort=-date&_total=none&_format=json&_pretty=true", &s);
    assert_int_equal(s.query.count, 10);
    assert_int_equal(s.query.offset, 20);
    assert_int_equal(s.query.n_sort, 1);
    assert_string_equal(s.query.sort[0].param, "date");
    assert_int_equal(s.query.sort[0].desc, 1);
    assert_int_equal(s.total_mode, VL_TOTAL_NONE);
    vl_search_free(&s);

    ok("Observation", "_count=0&_sort=_lastUpdated&_total=estimate", &s);
    assert_int_equal(s.query.count, 0);
    assert_string_equal(s.query.sort[0].param, "_lastUpdated");
    assert_int_equal(s.query.sort[0].desc, 0);
    assert_int_equal(s.total_mode, VL_TOTAL_BOUNDED);
    vl_search_free(&s);

    /* several keys, ties broken by the version (the store) */
    ok("Observation", "_sort=code,-date,value-quantity,-_lastUpdated", &s);
    assert_int_equal(s.query.n_sort, 4);
    assert_string_equal(s.query.sort[0].param, "code");
    assert_int_equal(s.query.sort[0].desc, 0);
    assert_string_equal(s.query.sort[1].param, "date");
    assert_int_equal(s.query.sort[1].desc, 1);
    assert_string_equal(s.query.sort[2].param, "value-quantity");
    assert_string_equal(s.query.sort[3].param, "_lastUpdated");
    assert_int_equal(s.query.sort[3].desc, 1);
    vl_search_free(&s);

    ok("Observation", "_count=999999999", &s);
    assert_int_equal(s.query.count, VL_SEARCH_COUNT_MAX);
    vl_search_free(&s);

    ok("Observation", "_summary=count&_count=5", &s);
    assert_int_equal(s.query.count, 0);
    vl_search_free(&s);
    ok("Observation", "_summary=false", &s);
    assert_int_equal(s.query.count, VL_SEARCH_COUNT_DEFAULT);
    vl_search_free(&s);
    /* the subsets are checked here and applied by fhir/rest.c; self keeps them */
    ok("Observation", "_summary=true&code=x", &s);
    assert_int_equal(s.query.count, VL_SEARCH_COUNT_DEFAULT);
    assert_string_equal(s.self_query, "_summary=true&code=x");
    vl_search_free(&s);
    ok("Observation", "_summary=text", &s);
    vl_search_free(&s);
    ok("Observation", "_summary=data", &s);
    vl_search_free(&s);
    ok("Observation", "_elements=id,code,value", &s);
    assert_int_equal(s.query.count, VL_SEARCH_COUNT_DEFAULT);
    assert_string_equal(s.self_query, "_elements=id,code,value");
    vl_search_free(&s);

    ok("Patient", "_sort=birthdate", &s);
    assert_string_equal(s.query.sort[0].param, "birthdate");
    vl_search_free(&s);

    fails("Observation", "_id=bad%20id", 0, 400, "invalid");
    fails("Observation", "_id=a,,b", 0, 400, "invalid");
    fails("Observation", "_lastUpdated=yesterday", 0, 400, "invalid");
    fails("Observation", "_count=-1", 0, 400, "invalid");
    fails("Observation", "_count=ten", 0, 400, "invalid");
    fails("Observation", "_count=1234567890", 0, 400, "invalid");
    fails("Observation", "_count=1&_count=2", 0, 400, "invalid");
    fails("Observation", "_offset=x", 0, 400, "invalid");
    fails("Observation", "_sort=status", 0, 400, "not-supported");
    fails("Observation", "_sort=date,,code", 0, 400, "invalid");
    fails("Observation", "_sort=a,b,c,d,e", 0, 400, "not-supported");
    fails("Observation", "_sort=nope", 0, 400, "not-supported");
    fails("Observation", "_total=all", 0, 400, "invalid");
    fails("Observation", "_summary=bogus", 0, 400, "invalid");
    fails("Observation", "_summary=true&_summary=data", 0, 400, "invalid");
    fails("Observation", "_elements=id,,code", 0, 400, "invalid");
    fails("Observation", "_summary=true&_elements=id,code", 0, 400, "not-supported");
    fails("Observation", "_summary:text=true", 0, 400, "not-supported");
    fails("Observation", "_id:exact=a", 0, 400, "not-supported");
}

static void test_unknown_and_lenient(void **state)
{
    (void)state;
    vl_search_t s;
    fails("Observation", "foo=1", 0, 400, "not-supported");
    fails("Observation", "_include=*", 0, 400, "not-supported");
    fails("Observation", "_include=Observation:code", 0, 400, "invalid");
    fails("Observation", "_include=Patient:organization", 0, 400, "invalid");
    fails("Observation", "_include:deep=Observation:subject", 0, 400, "not-supported");
    fails("Patient", "_revinclude=Observation:performer:Organization", 0, 400, "invalid");
    fails("Observation", "patient.organization.name=x", 0, 400, "not-supported");
    fails("Patient", "_has:Observation:patient:_has:Observation:patient:code=x", 0, 400,
          "not-supported");
    fails("Patient", "_has:Nope:patient:code=x", 0, 400, "not-supported");
    fails("Patient", "_has=y", 0, 400, "invalid"); /* no ':' after it (found by fuzz_search) */
    fails("Patient", "_has:=y", 0, 400, "invalid");
    fails("Patient", "_has:Observation=y", 0, 400, "invalid");
    fails("Patient", "_has:Observation:patient=y", 0, 400, "invalid");
    fails("Patient", "code=1", 0, 400, "not-supported");

    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(run("Observation", "foo=1&code=x&_tag=y&bar:missing=true", 1, &s, &err), 0);
    assert_int_equal(s.query.n, 1);
    assert_string_equal(s.self_query, "code=x"); /* skipped parameters are not echoed */
    vl_search_free(&s);
    vl_error_clear(&err);

    /* empty values are ignored */
    ok("Observation", "code=&date=&status=final", &s);
    assert_int_equal(s.query.n, 1);
    assert_string_equal(s.self_query, "status=final");
    vl_search_free(&s);
}

static void test_self_query(void **state)
{
    (void)state;
    vl_search_t s;
    ok("Observation",
       "code=http%3A%2F%2Floinc.org%7C8867-4&_count=5&date=ge2024-05-06T10:00:00%2B02:00&"
       "_offset=10&subject:Patient=p1&value-string=a+b%26c&_sort=-date",
       &s);
    assert_string_equal(s.self_query,
                        /* '|' is not a URI character (RFC 3986): strict parsers
                         * such as java.net.URI reject a link holding it */
                        "code=http://loinc.org%7C8867-4&date=ge2024-05-06T10:00:00%2B02:00&"
                        "subject:Patient=p1&value-string=a%20b%26c&_sort=-date");
    vl_search_free(&s);
    vl_search_free(&s); /* twice is harmless */
}

/* Many values: the cap on values per query is a 400, not a huge query. */
static void test_limits(void **state)
{
    (void)state;
    char qs[4096] = "subject=";
    for (int i = 0; i < 40; i++)
        strcat(qs, i ? ",x" : "x"); /* 40 bare ids x 146 types */
    fails("Observation", qs, 0, 400, "too-costly");

    /* a long list of ordinary values is fine */
    static char big[40000];
    strcpy(big, "code=");
    for (int i = 0; i < 2000; i++) {
        char v[16];
        snprintf(v, sizeof v, "%sc%d", i ? "," : "", i);
        strcat(big, v);
    }
    vl_search_t s;
    ok("Observation", big, &s);
    assert_int_equal(s.query.conds[0].n, 2000);
    assert_string_equal(s.query.conds[0].values[1999].text, "c1999");
    vl_search_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_form),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_quantity),
        cmocka_unit_test(test_token_modifiers),
        cmocka_unit_test(test_composite),
        cmocka_unit_test(test_plans),
        cmocka_unit_test(test_local_base),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_common),
        cmocka_unit_test(test_unknown_and_lenient),
        cmocka_unit_test(test_self_query),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
