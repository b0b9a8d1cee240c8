/*
 * Unit tests for src/fhir/index.c: index rows extracted from resources
 * parsed with vl_json_parse() (numbers are tagged strings).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/fhir.h"

#define S INT64_C(1000000)

static json_t *parse(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    if (!j)
        fail_msg("parse: %s", vl_error_message(&err));
    vl_error_clear(&err);
    return j;
}

static void index_of(const char *type, const char *text, vl_index_t *ix)
{
    json_t *res = parse(text);
    vl_error_t err = VL_ERROR_INIT;
    vl_index_init(ix);
    assert_int_equal(vl_fhir_index(vl_fhir_type_find(type), res, ix, &err), 0);
    assert_int_equal(vl_error_count(&err), 0);
    json_decref(res);
}

/* A row that a search value can match: not a presence row (an element
 * without a searchable value: empty text) nor a series row. */
static int searchable(const vl_index_row_t *r)
{
    return r->kind != VL_INDEX_SERIES &&
           !((r->kind == VL_INDEX_TOKEN || r->kind == VL_INDEX_STRING ||
              r->kind == VL_INDEX_REFERENCE) &&
             r->text && !r->text[0]);
}

static size_t count(const vl_index_t *ix, const char *param)
{
    size_t n = 0;
    for (size_t i = 0; i < ix->n; i++)
        if (strcmp(ix->rows[i].param, param) == 0 && searchable(&ix->rows[i]))
            n++;
    return n;
}

static size_t count_searchable(const vl_index_t *ix)
{
    size_t n = 0;
    for (size_t i = 0; i < ix->n; i++)
        n += searchable(&ix->rows[i]) != 0;
    return n;
}

/* Whether `param` has a presence row (the element is there, with nothing
 * to search by: :missing=false matches it). */
static int present_only(const vl_index_t *ix, const char *param)
{
    for (size_t i = 0; i < ix->n; i++)
        if (strcmp(ix->rows[i].param, param) == 0 && !searchable(&ix->rows[i]) &&
            ix->rows[i].kind != VL_INDEX_SERIES)
            return 1;
    return 0;
}

/* The row of `param` whose text is `text` (and system `system` unless
 * system is "*"), or NULL. */
static const vl_index_row_t *find(const vl_index_t *ix, const char *param, const char *system,
                                  const char *text)
{
    for (size_t i = 0; i < ix->n; i++) {
        const vl_index_row_t *r = &ix->rows[i];
        if (strcmp(r->param, param) != 0)
            continue;
        if ((text == NULL) != (r->text == NULL) || (text && strcmp(text, r->text) != 0))
            continue;
        if (system && strcmp(system, "*") == 0)
            return r;
        if ((system == NULL) != (r->system == NULL) || (system && strcmp(system, r->system) != 0))
            continue;
        return r;
    }
    return NULL;
}

static const char bp[] =
    "{\"resourceType\":\"Observation\",\"id\":\"bp1\",\"status\":\"final\","
    "\"identifier\":[{\"system\":\"urn:ietf:rfc:3986\",\"value\":\"urn:uuid:1\"}],"
    "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
    "observation-category\",\"code\":\"vital-signs\"}]}],"
    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"85354-9\"},"
    "{\"system\":\"http://snomed.info/sct\",\"code\":\"75367002\"},{\"display\":\"no code\"}],"
    "\"text\":\"BP\"},"
    "\"subject\":{\"reference\":\"Patient/p1/_history/3\"},"
    "\"encounter\":{\"reference\":\"#contained\"},"
    "\"performer\":[{\"reference\":\"Practitioner/dr1\"},{\"reference\":\"https://other.example/"
    "fhir/Organization/o9\"},{\"identifier\":{\"value\":\"x\"}}],"
    "\"device\":{\"reference\":\"Device/d1\"},"
    "\"effectiveDateTime\":\"2024-05-06T10:00:00+02:00\","
    "\"component\":["
    "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]},"
    "\"valueQuantity\":{\"value\":120,\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\","
    "\"code\":\"mm[Hg]\"}},"
    "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8462-4\"}]},"
    "\"valueQuantity\":{\"value\":80.50,\"unit\":\"mmHg\"}}]}";

static void test_observation(void **state)
{
    (void)state;
    vl_index_t ix;
    index_of("Observation", bp, &ix);

    assert_non_null(find(&ix, "status", NULL, "final"));
    assert_non_null(find(&ix, "identifier", "urn:ietf:rfc:3986", "urn:uuid:1"));
    assert_non_null(find(&ix, "category",
                         "http://terminology.hl7.org/CodeSystem/observation-category",
                         "vital-signs"));
    assert_int_equal(count(&ix, "code"), 2); /* a coding without code gives nothing */
    assert_non_null(find(&ix, "code", "http://loinc.org", "85354-9"));
    assert_non_null(find(&ix, "code", "http://snomed.info/sct", "75367002"));
    assert_int_equal(count(&ix, "component-code"), 2);
    assert_non_null(find(&ix, "component-code", "http://loinc.org", "8462-4"));

    /* references: history stripped; fragments and identifier-only skipped */
    assert_non_null(find(&ix, "subject", NULL, "Patient/p1"));
    /* patient is subject.where(resolve() is Patient): no rows of its own */
    assert_int_equal(count(&ix, "patient"), 0);
    assert_int_equal(count(&ix, "encounter"), 0);
    assert_int_equal(count(&ix, "performer"), 2);
    assert_non_null(find(&ix, "performer", NULL, "Practitioner/dr1"));
    assert_non_null(find(&ix, "performer", NULL, "https://other.example/fhir/Organization/o9"));
    assert_non_null(find(&ix, "device", NULL, "Device/d1"));

    /* date: one second in UTC */
    const vl_index_row_t *d = find(&ix, "date", NULL, NULL);
    assert_non_null(d);
    assert_int_equal(count(&ix, "date"), 1);
    assert_true(d->lo == 1714982400 * S && d->hi == d->lo + S);

    /* quantities */
    assert_int_equal(count(&ix, "value-quantity"), 0);
    /* as sent, with the human unit "mmHg" (it differs from the code) */
    assert_int_equal(count(&ix, "component-value-quantity"), 2);
    const vl_index_row_t *q =
        find(&ix, "component-value-quantity", "http://unitsofmeasure.org", "mm[Hg]");
    assert_non_null(q);
    assert_true(q->number == 120.0);
    assert_string_equal(q->unit, "mmHg");
    int unit_only = 0; /* no code: the unit, 80.50 */
    for (size_t i = 0; i < ix.n; i++)
        unit_only |= !strcmp(ix.rows[i].param, "component-value-quantity") &&
                     !strcmp(ix.rows[i].text, "mmHg") && ix.rows[i].number == 80.5;
    assert_true(unit_only);
    /* composites: canonical UCUM, or "|" + the unit of a quantity without UCUM */
    int ucum = 0, other = 0;
    for (size_t i = 0; i < ix.n; i++) {
        const vl_index_row_t *r = &ix.rows[i];
        if (strcmp(r->param, "component-code-value-quantity") != 0)
            continue;
        ucum |= !strcmp(r->text, "8480-6") && !strcmp(r->unit, "mm[Hg]") && r->number == 120.0;
        other |= !strcmp(r->text, "8462-4") && !strcmp(r->unit, "|mmHg") && r->number == 80.5;
    }
    assert_true(ucum && other);
    vl_index_free(&ix);
}

static void test_observation_variants(void **state)
{
    (void)state;
    vl_index_t ix;
    /* Period with open end; subject not a Patient; valueQuantity; bad date */
    index_of("Observation",
             "{\"resourceType\":\"Observation\",\"status\":\"final\","
             "\"code\":{\"text\":\"only text\"},"
             "\"subject\":{\"reference\":\"Group/g1\"},"
             "\"effectivePeriod\":{\"start\":\"2024-01\"},"
             "\"valueDateTime\":\"2024-13-01\","
             "\"valueQuantity\":{\"value\":1e2,\"system\":\"http://unitsofmeasure.org\","
             "\"code\":\"/min\"}}",
             &ix);
    assert_int_equal(count(&ix, "code"), 0);
    assert_true(present_only(&ix, "code")); /* text only: not :missing (R4 expression) */
    assert_non_null(find(&ix, "subject", NULL, "Group/g1"));
    assert_int_equal(count(&ix, "patient"), 0); /* searched as the subject rows */
    const vl_index_row_t *d = find(&ix, "date", NULL, NULL);
    assert_non_null(d);
    assert_true(d->lo == 1704067200 * S && d->hi == INT64_MAX);
    assert_int_equal(count(&ix, "value-date"), 0); /* invalid date skipped */
    const vl_index_row_t *q = find(&ix, "value-quantity", "http://unitsofmeasure.org", "/min");
    assert_non_null(q);
    assert_true(q->number == 100.0);
    vl_index_free(&ix);

    index_of("Observation",
             "{\"resourceType\":\"Observation\",\"effectivePeriod\":{\"end\":\"2024-01-31\"},"
             "\"subject\":{\"reference\":\"https://x.example/fhir/Patient/p2/_history/1\"},"
             "\"valuePeriod\":{\"start\":\"2024-02-01\",\"end\":\"2024-01-01\"}}",
             &ix);
    d = find(&ix, "date", NULL, NULL);
    assert_non_null(d);
    assert_true(d->lo == INT64_MIN && d->hi == (1706659200 + 86400) * S);
    assert_int_equal(count(&ix, "value-date"), 0); /* start after end: not indexed */
    assert_non_null(find(&ix, "subject", NULL, "https://x.example/fhir/Patient/p2"));
    vl_index_free(&ix);

    index_of("Observation",
             "{\"resourceType\":\"Observation\",\"effectiveInstant\":\"2024-05-06T08:00:00.123Z\","
             "\"subject\":{\"reference\":\"NotAType/1\"},"
             "\"basedOn\":[{\"reference\":\"ServiceRequest/a/b\"}],"
             "\"hasMember\":[{\"reference\":\"urn:uuid:abc\"}],"
             "\"valueString\":\"Lightly Sweaty\"}",
             &ix);
    d = find(&ix, "date", NULL, NULL);
    assert_true(d->lo == 1714982400 * S + 123000 && d->hi == d->lo + 1000);
    assert_int_equal(count(&ix, "subject"), 0);
    assert_int_equal(count(&ix, "based-on"), 0);
    assert_non_null(find(&ix, "has-member", NULL, "urn:uuid:abc"));
    const vl_index_row_t *s = find(&ix, "value-string", NULL, "Lightly Sweaty");
    assert_non_null(s);
    assert_string_equal(s->norm, "lightly sweaty");
    vl_index_free(&ix);
}

static void test_patient(void **state)
{
    (void)state;
    vl_index_t ix;
    index_of("Patient",
             "{\"resourceType\":\"Patient\",\"active\":true,\"gender\":\"female\","
             "\"birthDate\":\"1980-02\","
             "\"identifier\":[{\"system\":\"urn:oid:1.2.36.146.595.217.0.1\",\"value\":\"12345\"},"
             "{\"value\":\"nosys\"}],"
             "\"name\":[{\"use\":\"official\",\"family\":\"Ch\xc3\xa2lmers\",\"given\":[\"Peter\","
             "\"James\"],\"prefix\":[\"Mr.\"]},{\"text\":\"Jim\"}],"
             "\"telecom\":[{\"system\":\"phone\",\"value\":\"(03) 5555 6473\"}],"
             "\"address\":[{\"line\":[\"534 Erewhon St\"],\"city\":\"PleasantVille\","
             "\"postalCode\":\"3999\",\"country\":\"AU\"}],"
             "\"managingOrganization\":{\"reference\":\"Organization/1\"},"
             "\"generalPractitioner\":[{\"reference\":\"Practitioner/gp\"}]}",
             &ix);
    assert_non_null(find(&ix, "active", NULL, "true"));
    assert_non_null(find(&ix, "gender", NULL, "female"));
    const vl_index_row_t *b = find(&ix, "birthdate", NULL, NULL);
    assert_true(b->lo == 318211200 * S && b->hi == 320716800 * S);
    assert_non_null(find(&ix, "identifier", "urn:oid:1.2.36.146.595.217.0.1", "12345"));
    assert_non_null(find(&ix, "identifier", NULL, "nosys"));
    assert_int_equal(count(&ix, "name"), 5); /* family, 2 given, prefix, text */
    const vl_index_row_t *f = find(&ix, "family", NULL, "Ch\xc3\xa2lmers");
    assert_non_null(f);
    assert_string_equal(f->norm, "chalmers");
    assert_int_equal(count(&ix, "family"), 1);
    assert_int_equal(count(&ix, "given"), 2);
    assert_non_null(find(&ix, "name", NULL, "Mr."));
    assert_non_null(find(&ix, "name", NULL, "Jim"));
    assert_non_null(find(&ix, "telecom", "phone", "(03) 5555 6473"));
    assert_int_equal(count(&ix, "address"), 4);
    assert_non_null(find(&ix, "address-city", NULL, "PleasantVille"));
    assert_non_null(find(&ix, "address-postalcode", NULL, "3999"));
    assert_non_null(find(&ix, "organization", NULL, "Organization/1"));
    assert_non_null(find(&ix, "general-practitioner", NULL, "Practitioner/gp"));
    vl_index_free(&ix);
}

static void test_other_types(void **state)
{
    (void)state;
    vl_index_t ix;
    index_of("Device",
             "{\"resourceType\":\"Device\",\"status\":\"active\",\"manufacturer\":\"Acme\","
             "\"modelNumber\":\"X-1\",\"patient\":{\"reference\":\"Patient/p1\"},"
             "\"type\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"706767009\","
             "\"display\":\"Patient data recorder\"}],\"text\":\"Watch\"},"
             "\"deviceName\":[{\"name\":\"Acme Watch\",\"type\":\"user-friendly-name\"}]}",
             &ix);
    assert_non_null(find(&ix, "status", NULL, "active"));
    assert_non_null(find(&ix, "manufacturer", NULL, "Acme"));
    assert_non_null(find(&ix, "model", NULL, "X-1"));
    assert_non_null(find(&ix, "patient", NULL, "Patient/p1"));
    assert_non_null(find(&ix, "type", "http://snomed.info/sct", "706767009"));
    assert_int_equal(count(&ix, "device-name"), 3);
    assert_non_null(find(&ix, "device-name", NULL, "Patient data recorder"));
    vl_index_free(&ix);

    index_of("Organization",
             "{\"resourceType\":\"Organization\",\"active\":false,\"name\":\"St. \xc3\x89lise\","
             "\"alias\":[\"SE\"],\"partOf\":{\"reference\":\"Organization/root\"},"
             "\"type\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
             "organization-type\",\"code\":\"prov\"}]}]}",
             &ix);
    assert_non_null(find(&ix, "active", NULL, "false"));
    assert_int_equal(count(&ix, "name"), 2);
    assert_string_equal(find(&ix, "name", NULL, "St. \xc3\x89lise")->norm, "st. elise");
    assert_non_null(find(&ix, "partof", NULL, "Organization/root"));
    assert_non_null(find(&ix, "type", "*", "prov"));
    vl_index_free(&ix);

    index_of("Practitioner",
             "{\"resourceType\":\"Practitioner\",\"name\":[{\"family\":\"Careful\","
             "\"given\":[\"Adam\"],\"suffix\":[\"MD\"]}],\"gender\":\"male\","
             "\"communication\":[{\"coding\":[{\"system\":\"urn:ietf:bcp:47\",\"code\":\"en\"}]}]}",
             &ix);
    assert_int_equal(count(&ix, "name"), 3);
    assert_non_null(find(&ix, "family", NULL, "Careful"));
    assert_non_null(find(&ix, "given", NULL, "Adam"));
    assert_non_null(find(&ix, "communication", "urn:ietf:bcp:47", "en"));
    vl_index_free(&ix);
}

/* Paths and targets that the R4 expressions give (the tables are generated
 * by scripts/gen-search-params.py). */
static void test_r4_paths(void **state)
{
    (void)state;
    vl_index_t ix;
    /* value-string: (Observation.value as string) |
     * (Observation.value as CodeableConcept).text */
    index_of("Observation",
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
             "\"valueCodeableConcept\":{\"coding\":[{\"system\":\"http://snomed.info/sct\","
             "\"code\":\"260385009\"}],\"text\":\"Negative\"}}",
             &ix);
    assert_non_null(find(&ix, "value-string", NULL, "Negative"));
    assert_int_equal(count(&ix, "value-string"), 1);
    assert_non_null(find(&ix, "value-concept", "http://snomed.info/sct", "260385009"));
    vl_index_free(&ix);

    /* death-date: (Patient.deceased as dateTime); a boolean gives no row */
    index_of("Patient",
             "{\"resourceType\":\"Patient\",\"deceasedDateTime\":\"2020-01-02\","
             "\"address\":[{\"use\":\"home\",\"city\":\"X\"}],"
             "\"managingOrganization\":{\"reference\":\"Practitioner/not-an-org\"}}",
             &ix);
    const vl_index_row_t *d = find(&ix, "death-date", NULL, NULL);
    assert_non_null(d);
    assert_true(d->lo == 1577923200 * S && d->hi == 1578009600 * S);
    assert_non_null(find(&ix, "address-use", NULL, "home"));
    /* organization: Reference(Organization) only (its one R4 target) */
    assert_int_equal(count(&ix, "organization"), 0);
    vl_index_free(&ix);
    index_of("Patient", "{\"resourceType\":\"Patient\",\"deceasedBoolean\":true}", &ix);
    assert_int_equal(count(&ix, "death-date"), 0);
    vl_index_free(&ix);

    /* address-use on Organization and Practitioner too */
    index_of("Organization", "{\"resourceType\":\"Organization\",\"address\":[{\"use\":\"work\"}]}",
             &ix);
    assert_non_null(find(&ix, "address-use", NULL, "work"));
    vl_index_free(&ix);
    index_of("Practitioner", "{\"resourceType\":\"Practitioner\",\"address\":[{\"use\":\"work\"}]}",
             &ix);
    assert_non_null(find(&ix, "address-use", NULL, "work"));
    vl_index_free(&ix);
}

/* Wrong shapes everywhere: nothing crashes, nothing is indexed. */
static void test_odd_shapes(void **state)
{
    (void)state;
    vl_index_t ix;
    index_of("Observation",
             "{\"resourceType\":\"Observation\",\"status\":42,\"code\":\"not-a-cc\","
             "\"category\":[1,null,[],{\"coding\":{}}],\"subject\":\"Patient/1\","
             "\"effectiveDateTime\":12,\"effectivePeriod\":{},\"valueQuantity\":{\"value\":\"5\"},"
             "\"component\":{\"code\":{\"coding\":[{\"code\":7}]}},"
             "\"identifier\":[{\"system\":\"s\"}]}",
             &ix);
    /* "code" is a plain string: indexed as a code without system */
    assert_non_null(find(&ix, "code", NULL, "not-a-cc"));
    assert_int_equal(count(&ix, "combo-code"), 0); /* code | component-code: their rows */
    assert_int_equal(count_searchable(&ix), 1);
    vl_index_free(&ix);

    vl_error_t err = VL_ERROR_INIT;
    vl_index_init(&ix);
    json_t *arr = json_array();
    assert_int_equal(vl_fhir_index(vl_fhir_type_find("Patient"), arr, &ix, &err), 0);
    assert_int_equal(ix.n, 0);
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observation), cmocka_unit_test(test_observation_variants),
        cmocka_unit_test(test_patient),     cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_r4_paths),    cmocka_unit_test(test_odd_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
