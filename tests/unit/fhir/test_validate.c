/*
 * Unit tests of vl_fhir_validate() and vl_fhir_id_valid().
 *
 * Three corpora:
 *   1. the official HL7 R4 examples (tests/data/hl7-r4-examples, from the
 *      npm package hl7.fhir.r4.examples 4.0.1, see SOURCE.txt): every
 *      Observation (64) and every Patient, Practitioner, Organization and
 *      Device example must be accepted;
 *   2. the HL7 Java validator's own cases (tests/data/
 *      validator-cases): for the cases of a type vitalog serves, the ones
 *      with errors must be rejected (by vl_json_parse or
 *      vl_fhir_validate), the ones without accepted;
 *   3. targeted cases below, each asserting the status and the
 *      issue.expression of the offending element.
 *
 * JSON in this file is written with single quotes for readability; q()
 * turns them into double quotes (no test needs a literal ').
 *
 * Relaxations the HL7 examples required (see validate.c, LENIENCY):
 *   - Observation-f202: vital-signs category, status entered-in-error, no
 *     effective[x]: the profile is not inferred from the category for
 *     entered-in-error records.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/fhir.h"
#include "vitalog/util.h"

#include "../support.h"

#define EXAMPLES_DIR VL_TEST_DATA "/hl7-r4-examples"
#define CASES_DIR VL_TEST_DATA "/validator-cases"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static char *q(const char *s)
{
    char *out = strdup(s);
    assert_non_null(out);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

static json_t *parse_q(const char *s)
{
    vl_error_t err = VL_ERROR_INIT;
    char *text = q(s);
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", vl_error_message(&err), text);
    free(text);
    vl_error_clear(&err);
    return j;
}

static void print_issues(const char *what, const vl_error_t *err)
{
    char *dump = err->issues ? json_dumps(err->issues, JSON_INDENT(1)) : NULL;
    print_message("%s: status %d issues %s\n", what, err->status, dump ? dump : "none");
    free(dump);
}

/* True if some issue has exactly this expression. */
static int has_expr(const vl_error_t *err, const char *expr)
{
    size_t i;
    json_t *issue;
    if (!err->issues)
        return 0;
    json_array_foreach (err->issues, i, issue) {
        json_t *e = json_array_get(json_object_get(issue, "expression"), 0);
        if (json_is_string(e) && strcmp(json_string_value(e), expr) == 0)
            return 1;
    }
    return 0;
}

/* Validates `res` (jansson tree) as `type`; returns rc, fills err. */
static int validate_as(const char *type, const json_t *res, vl_error_t *err)
{
    const vl_fhir_type_t *t = vl_fhir_type_find(type);
    assert_non_null(t);
    return vl_fhir_validate(t, res, err);
}

/* Asserts that JSON text `json` (single quotes) is accepted as `type`. */
static void accept_(const char *type, const char *json, int line)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *res = parse_q(json);
    int rc = validate_as(type, res, &err);
    if (rc != 0) {
        print_issues("unexpected rejection", &err);
        fail_msg("line %d: valid %s rejected", line, type);
    }
    assert_int_equal(vl_error_count(&err), 0);
    json_decref(res);
    vl_error_clear(&err);
}
#define accept(type, json) accept_(type, json, __LINE__)

/* Asserts rejection with `status` and an issue at `expr`. */
static void reject_(const char *type, const char *json, int status, const char *expr, int line)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *res = parse_q(json);
    int rc = validate_as(type, res, &err);
    if (rc == 0)
        fail_msg("line %d: invalid %s accepted (expected issue at %s)", line, type, expr);
    if (err.status != status || (expr && !has_expr(&err, expr))) {
        print_issues("wrong issues", &err);
        fail_msg("line %d: expected status %d and an issue at '%s'", line, status,
                 expr ? expr : "(any)");
    }
    json_decref(res);
    vl_error_clear(&err);
}
#define reject(type, json, status, expr) reject_(type, json, status, expr, __LINE__)

/* A valid Observation with `fields` (a JSON object body without braces,
 * may be empty) added after the required elements. */
static char *obs(const char *fields)
{
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "{'resourceType':'Observation','status':'final',"
             "'code':{'coding':[{'system':'http://loinc.org','code':'1234-5'}]}%s%s}",
             fields[0] ? "," : "", fields);
    return buf;
}

/* A valid vital-signs heart rate with the fields replaced as given. */
#define VS_CAT                                                                                     \
    "'category':[{'coding':[{'system':'http://terminology.hl7.org/CodeSystem/"                     \
    "observation-category','code':'vital-signs'}]}]"
#define HR_CODE "'code':{'coding':[{'system':'http://loinc.org','code':'8867-4'}]}"
#define SUBJ "'subject':{'reference':'Patient/p1'}"
#define EFF "'effectiveDateTime':'2024-05-06T10:00:00Z'"
#define HR_VALUE                                                                                   \
    "'valueQuantity':{'value':72,'unit':'beats/minute','system':'http://unitsofmeasure.org',"      \
    "'code':'/min'}"

/* ------------------------------------------------------------------------
 * Corpus: HL7 R4 examples
 * ---------------------------------------------------------------------- */

static int validate_file(const char *type, const char *path, vl_error_t *err)
{
    size_t len;
    char *text = test_read_file(path, &len);
    json_t *res;
    int rc;
    if (!text)
        fail_msg("cannot read %s", path);
    res = vl_json_parse(text, len, NULL, err);
    free(text);
    if (!res)
        return -2;
    rc = validate_as(type, res, err);
    json_decref(res);
    return rc;
}

static void check_examples(const char *type, size_t expected_count)
{
    DIR *d = opendir(EXAMPLES_DIR);
    struct dirent *de;
    size_t n = 0, failed = 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s-", type);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[1024];
        vl_error_t err = VL_ERROR_INIT;
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || l < 5 ||
            strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        n++;
        snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, de->d_name);
        if (validate_file(type, path, &err) != 0) {
            failed++;
            print_issues(de->d_name, &err);
        }
        vl_error_clear(&err);
    }
    closedir(d);
    if (expected_count)
        assert_int_equal(n, expected_count);
    assert_true(n > 0);
    assert_int_equal(failed, 0);
}

static void test_hl7_observation_examples(void **state)
{
    (void)state;
    check_examples("Observation", 64);
}

static void test_hl7_other_examples(void **state)
{
    (void)state;
    check_examples("Patient", 0);
    check_examples("Practitioner", 0);
    check_examples("Organization", 0);
    check_examples("Device", 0);
    check_examples("Consent", 12);
}

/* Mutation sweep: in each HL7 Observation example, every value at every
 * depth is replaced in turn by {}, [], "" and (for object members) null.
 * Each of those is invalid FHIR wherever it appears, so every mutant must
 * be rejected with 400 and an issue path inside the resource, and nothing
 * may crash (the sanitizer build runs this too). */
static size_t mutants;

static void expect_mutant_rejected(const json_t *root, const char *name)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *first;
    const char *expr;
    if (validate_as("Observation", root, &err) == 0)
        fail_msg("%s: a mutant was accepted", name);
    assert_int_equal(err.status, 400);
    first = json_array_get(err.issues, 0);
    expr = json_string_value(json_array_get(json_object_get(first, "expression"), 0));
    assert_non_null(expr);
    assert_true(strncmp(expr, "Observation", 11) == 0);
    vl_error_clear(&err);
    mutants++;
}

static void mutate(json_t *root, json_t *node, const char *name)
{
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(node)) {
        json_object_foreach (node, key, v) {
            json_t *junk[4] = {json_object(), json_array(), json_string(""), json_null()};
            json_incref(v);
            for (int k = 0; k < 4; k++) {
                json_object_set_new(node, key, junk[k]);
                expect_mutant_rejected(root, name);
            }
            json_object_set_new(node, key, v);
            mutate(root, v, name);
        }
    } else if (json_is_array(node)) {
        json_array_foreach (node, i, v) {
            json_t *junk[3] = {json_object(), json_array(), json_string("")};
            json_incref(v);
            for (int k = 0; k < 3; k++) {
                json_array_set_new(node, i, junk[k]);
                expect_mutant_rejected(root, name);
            }
            json_array_set_new(node, i, v);
            mutate(root, v, name);
        }
    }
}

static void test_hl7_observation_mutants(void **state)
{
    DIR *d = opendir(EXAMPLES_DIR);
    struct dirent *de;
    (void)state;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[1024];
        size_t len;
        char *text;
        json_t *res;
        vl_error_t err = VL_ERROR_INIT;
        if (strncmp(de->d_name, "Observation-", 12) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, de->d_name);
        text = test_read_file(path, &len);
        assert_non_null(text);
        res = vl_json_parse(text, len, NULL, &err);
        free(text);
        assert_non_null(res);
        mutate(res, res, de->d_name);
        json_decref(res);
    }
    closedir(d);
    print_message("%zu mutants rejected\n", mutants);
    assert_true(mutants > 1000);
}

/* ------------------------------------------------------------------------
 * Corpus: the Java validator's cases
 * ---------------------------------------------------------------------- */

static void test_validator_cases(void **state)
{
    size_t len, i, checked = 0;
    char *text;
    json_t *manifest, *c;
    json_error_t jerr;
    (void)state;

    text = test_read_file(CASES_DIR "/manifest.json", &len);
    assert_non_null(text);
    manifest = json_loadb(text, len, 0, &jerr);
    free(text);
    assert_non_null(manifest);
    json_array_foreach (json_object_get(manifest, "cases"), i, c) {
        const char *rt = json_string_value(json_object_get(c, "resourceType"));
        const char *file = json_string_value(json_object_get(c, "file"));
        json_int_t errors = json_integer_value(json_object_get(c, "errors"));
        char path[1024];
        vl_error_t err = VL_ERROR_INIT;
        int rc;
        /* Cases of types vitalog does not serve (DocumentReference,
         * QuestionnaireResponse), of no type ("None") and the pure-JSON
         * syntax cases ("(not JSON)": they test comment/lenient parsing
         * modes of the Java validator, which a FHIR server does not
         * offer) are skipped. */
        if (!rt || !vl_fhir_type_find(rt))
            continue;
        snprintf(path, sizeof path, "%s/%s", CASES_DIR, file);
        rc = validate_file(rt, path, &err);
        if ((errors > 0) != (rc != 0)) {
            print_issues(file, &err);
            fail_msg("validator case %s: expected %lld errors, got rc %d",
                     json_string_value(json_object_get(c, "name")), (long long)errors, rc);
        }
        vl_error_clear(&err);
        checked++;
    }
    json_decref(manifest);
    assert_true(checked >= 9);
}

/* ------------------------------------------------------------------------
 * Valid resources
 * ---------------------------------------------------------------------- */

static void test_valid_minimal(void **state)
{
    (void)state;
    accept("Observation", obs(""));
    accept("Observation", obs("'id':'a.b-C9','valueString':'x','_valueString':{'id':'v'}"));
    accept("Observation",
           obs("'_status':{'extension':[{'url':'http://x.org/e','valueBoolean':true}]}"));
    accept("Observation", obs("'valueQuantity':{'value':1E-22,'unit':'g'}"));
    accept("Observation", obs("'valueQuantity':{'value':-1.000000000000000000E+245}"));
    accept("Observation", obs("'valueInteger':-2147483648"));
    accept("Observation", obs("'effectiveDateTime':'2024'"));
    accept("Observation", obs("'effectiveDateTime':'2024-02'"));
    accept("Observation", obs("'effectiveDateTime':'2024-02-29'"));
    accept("Observation", obs("'effectiveDateTime':'2024-02-29T23:59:60.123+14:00'"));
    accept("Observation", obs("'effectiveInstant':'2024-02-29T01:02:03Z'"));
    accept("Observation", obs("'valueTime':'23:59:59.5'"));
    accept("Observation", obs("'valuePeriod':{'start':'2024-01-01','end':'2024-01-01T10:00:00Z'}"));
    accept("Observation", obs("'valueRatio':{'numerator':{'value':1},'denominator':{'value':2}}"));
    accept("Observation", obs("'valueRange':{'low':{'value':1},'high':{'value':2}}"));
    accept("Observation", obs("'valueSampledData':{'origin':{'value':0},'period':10,'dimensions':1,"
                              "'data':'1 2 3'}"));
    accept("Observation",
           obs("'effectiveTiming':{'repeat':{'frequency':1,'period':1,'periodUnit':'d',"
               "'boundsPeriod':{'start':'2024'}}}"));
    accept("Observation",
           obs("'note':[{'authorString':'me','text':'hello'}],'language':'en-US',"
               "'implicitRules':'http://x.org/rules','meta':{'versionId':'1',"
               "'lastUpdated':'2024-01-01T00:00:00.000Z','profile':['http://x.org/p'],"
               "'tag':[{'code':'t'}]},'text':{'status':'generated',"
               "'div':'<div xmlns=\\u0027http://www.w3.org/1999/xhtml\\u0027>hi</div>'}"));
}

static void test_valid_references(void **state)
{
    (void)state;
    accept("Observation", obs("'subject':{'reference':'Patient/p1'}"));
    accept("Observation", obs("'subject':{'reference':'Patient/p1/_history/2'}"));
    accept("Observation", obs("'subject':{'reference':'https://ex.org/fhir/Patient/p1'}"));
    accept("Observation",
           obs("'subject':{'reference':'urn:uuid:5b3e4f4c-8c1a-4d9e-9d3e-6a3f3c1b2a10'}"));
    accept("Observation", obs("'subject':{'reference':'urn:oid:1.2.840.113619.1'}"));
    accept("Observation", obs("'subject':{'identifier':{'system':'http://x.org','value':'1'}}"));
    accept("Observation", obs("'contained':[{'resourceType':'Patient','id':'p1','gender':'male'}],"
                              "'subject':{'reference':'#p1'}"));
}

static void test_valid_primitive_arrays(void **state)
{
    (void)state;
    /* a null in a primitive array is allowed when "_x" has extensions there */
    accept("Patient",
           "{'resourceType':'Patient','name':[{'given':['A',null],"
           "'_given':[null,{'extension':[{'url':'http://x.org/e','valueString':'b'}]}]}]}");
    reject("Patient", "{'resourceType':'Patient','name':[{'given':['A',null]}]}", 400,
           "Patient.name[0].given[1]");
}

static void test_valid_vital_signs(void **state)
{
    (void)state;
    accept("Observation", obs(VS_CAT "," SUBJ "," EFF "," HR_VALUE));
    /* code with the LOINC code (replace the default code) */
    accept("Observation",
           "{'resourceType':'Observation','status':'final'," VS_CAT "," HR_CODE "," SUBJ "," EFF
           "," HR_VALUE ",'meta':{'profile':['http://hl7.org/fhir/StructureDefinition/"
           "heartrate|4.0.1']}}");
    accept("Observation", "{'resourceType':'Observation','status':'final'," VS_CAT "," HR_CODE
                          "," SUBJ "," EFF ",'dataAbsentReason':{'text':'asked but declined'}}");
    accept("Observation",
           "{'resourceType':'Observation','status':'final'," VS_CAT
           ",'code':{'coding':[{'system':'http://loinc.org','code':'8310-5'}]}," SUBJ "," EFF
           ",'valueQuantity':{'value':99.5,'unit':'F','system':'http://unitsofmeasure.org',"
           "'code':'[degF]'}}");
    accept("Observation",
           "{'resourceType':'Observation','status':'final'," VS_CAT
           ",'code':{'coding':[{'system':'http://loinc.org','code':'85354-9'}]}," SUBJ
           ",'effectivePeriod':{'start':'2024-05-06'},'component':["
           "{'code':{'coding':[{'system':'http://loinc.org','code':'8480-6'}]},"
           "'valueQuantity':{'value':120,'unit':'mmHg','system':'http://unitsofmeasure.org',"
           "'code':'mm[Hg]'}},"
           "{'code':{'coding':[{'system':'http://loinc.org','code':'8462-4'}]},"
           "'dataAbsentReason':{'text':'failed'}}]}");
}

/* ------------------------------------------------------------------------
 * Base-spec violations (400)
 * ---------------------------------------------------------------------- */

static void test_unknown_elements(void **state)
{
    (void)state;
    reject("Observation", obs("'foo':1"), 400, "Observation.foo");
    reject("Observation", obs("'code2':{'text':'x'}"), 400, "Observation.code2");
    reject("Observation", obs("'valueQuantity':{'value':1,'units':'g'}"), 400,
           "Observation.valueQuantity.units");
    reject("Observation", obs("'subject':{'ref':'Patient/1'}"), 400, "Observation.subject.ref");
    reject("Observation", obs("'valueFoo':'x'"), 400, "Observation.valueFoo");
    reject("Observation", obs("'effectiveString':'x'"), 400, "Observation.effectiveString");
    reject("Observation", obs("'valuestring':'x'"), 400, "Observation.valuestring");
    reject("Observation",
           obs("'component':[{'code':{'text':'a'},'valueQuantity':{'value':1},"
               "'subject':{'reference':'Patient/1'}}]"),
           400, "Observation.component[0].subject");
    reject("Observation", obs("'_foo':{'id':'x'}"), 400, "Observation._foo");
    /* "_x" is only for primitives */
    reject("Observation", obs("'_code':{'id':'x'}"), 400, "Observation._code");
}

static void test_cardinality(void **state)
{
    (void)state;
    reject("Observation", "{'resourceType':'Observation','status':'final','code':[{'text':'x'}]}",
           400, "Observation.code");
    reject("Observation", obs("'category':{'text':'x'}"), 400, "Observation.category");
    reject("Observation", obs("'category':[]"), 400, "Observation.category");
    reject("Observation", obs("'identifier':[{}]"), 400, "Observation.identifier[0]");
    reject("Observation", obs("'valueString':''"), 400, "Observation.valueString");
    reject("Observation", obs("'valueString':null"), 400, "Observation.valueString");
    reject("Observation", obs("'category':[null]"), 400, "Observation.category[0]");
    reject("Observation", obs("'subject':{}"), 400, "Observation.subject");
    reject("Observation", obs("'valueString':['a']"), 400, "Observation.valueString");
    reject("Observation", "{'resourceType':'Observation','code':{'text':'x'}}", 400,
           "Observation.status");
    reject("Observation", "{'resourceType':'Observation','status':'final'}", 400,
           "Observation.code");
    reject("Observation", obs("'component':[{'valueString':'x'},{'code':{'text':'x'}}]"), 400,
           "Observation.component[0].code");
    reject("Observation",
           obs("'component':[{'code':{'text':'x'}},{'code':{'coding':[{'system':'a b'}]}}]"), 400,
           "Observation.component[1].code.coding[0].system");
}

static void test_codes(void **state)
{
    (void)state;
    reject("Observation", "{'resourceType':'Observation','status':'done','code':{'text':'x'}}", 400,
           "Observation.status");
    reject("Observation", "{'resourceType':'Observation','status':'Final','code':{'text':'x'}}",
           400, "Observation.status");
    reject("Observation", "{'resourceType':'Observation','status':1,'code':{'text':'x'}}", 400,
           "Observation.status");
    reject("Observation", obs("'valueQuantity':{'value':1,'comparator':'=='}"), 400,
           "Observation.valueQuantity.comparator");
    reject("Observation", obs("'language':' en'"), 400, "Observation.language");
    reject("Observation",
           obs("'text':{'status':'made-up','div':'<div "
               "xmlns=\\u0027http://www.w3.org/1999/xhtml\\u0027>x</div>'}"),
           400, "Observation.text.status");
    /* a missing status that only has an extension still counts as present */
    accept("Observation",
           "{'resourceType':'Observation','_status':{'extension':[{'url':'http://x.org/e',"
           "'valueCode':'unknown'}]},'code':{'text':'x'}}");
}

static void test_choice(void **state)
{
    (void)state;
    reject("Observation", obs("'valueString':'a','valueBoolean':true"), 400, NULL);
    reject("Observation", obs("'effectiveDateTime':'2024','effectivePeriod':{'start':'2024'}"), 400,
           NULL);
    reject("Observation", obs("'valueString':'a','_valueBoolean':{'id':'x'}"), 400, NULL);
    /* a value and its own "_" companion are one choice */
    accept("Observation", obs("'valueString':'a','_valueString':{'id':'x'}"));
    /* Extension.value[x] admits the open type list, not resources */
    accept("Observation",
           obs("'extension':[{'url':'http://x.org/e','valueAddress':{'city':'X'}}]"));
    reject("Observation", obs("'extension':[{'url':'http://x.org/e','valuePatient':{'id':'x'}}]"),
           400, "Observation.extension[0].valuePatient");
}

static void test_primitive_formats(void **state)
{
    (void)state;
    reject("Observation", obs("'effectiveDateTime':'2024-13-01'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'2024-01-01T10:00'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'2024-01-01T10:00:00'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'2023-02-29'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'2024-01-01T24:00:00Z'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'2024-01-01T10:00:00+15:00'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'0000'"), 400, "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'2024-1-1'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'effectiveDateTime':'2024-01T10:00:00Z'"), 400,
           "Observation.effectiveDateTime");
    reject("Observation", obs("'issued':'2024-01-01'"), 400, "Observation.issued");
    reject("Observation", obs("'issued':'2024-01-01T10:00:00'"), 400, "Observation.issued");
    reject("Observation", obs("'valueTime':'10:00'"), 400, "Observation.valueTime");
    reject("Observation", obs("'valueTime':'25:00:00'"), 400, "Observation.valueTime");
    reject("Observation", obs("'valueBoolean':'true'"), 400, "Observation.valueBoolean");
    reject("Observation", obs("'valueInteger':1.5"), 400, "Observation.valueInteger");
    reject("Observation", obs("'valueInteger':1e3"), 400, "Observation.valueInteger");
    reject("Observation", obs("'valueInteger':2147483648"), 400, "Observation.valueInteger");
    reject("Observation", obs("'valueInteger':'12'"), 400, "Observation.valueInteger");
    reject("Observation", obs("'valueQuantity':{'value':'1.0'}"), 400,
           "Observation.valueQuantity.value");
    reject("Observation",
           obs("'valueSampledData':{'origin':{'value':0},'period':1,"
               "'dimensions':0}"),
           400, "Observation.valueSampledData.dimensions");
    reject("Observation", obs("'valueSampledData':{'period':1,'dimensions':1}"), 400,
           "Observation.valueSampledData.origin");
    reject("Observation", obs("'id':'bad_id'"), 400, "Observation.id");
    reject("Observation", obs("'meta':{'lastUpdated':'2024-01-01T10:00:00'}"), 400,
           "Observation.meta.lastUpdated");
    reject("Observation", obs("'meta':{'profile':'http://x.org/p'}"), 400,
           "Observation.meta.profile");
    reject("Observation", obs("'implicitRules':'http://x.org/a b'"), 400,
           "Observation.implicitRules");
    /* vl_json_parse() already refuses control characters; the validator
     * checks trees built in code too */
    {
        vl_error_t err = VL_ERROR_INIT;
        json_t *res = parse_q(obs(""));
        json_object_set_new(res, "valueString", json_string("tab\tok but bell \x07"));
        assert_int_not_equal(validate_as("Observation", res, &err), 0);
        assert_true(has_expr(&err, "Observation.valueString"));
        json_decref(res);
        vl_error_clear(&err);
    }
    reject("Observation", obs("'valueCodeableConcept':{'coding':[{'code':'a  b'}]}"), 400,
           "Observation.valueCodeableConcept.coding[0].code");
}

static void test_references(void **state)
{
    (void)state;
    reject("Observation", obs("'subject':{'reference':'Patient'}"), 400,
           "Observation.subject.reference");
    reject("Observation", obs("'subject':{'reference':'Foo/123'}"), 400,
           "Observation.subject.reference");
    reject("Observation", obs("'subject':{'reference':'Patient/a_b'}"), 400,
           "Observation.subject.reference");
    reject("Observation", obs("'subject':{'reference':'Patient/1 2'}"), 400,
           "Observation.subject.reference");
    reject("Observation", obs("'subject':{'reference':'Patient/1/_history'}"), 400,
           "Observation.subject.reference");
    reject("Observation", obs("'subject':{'reference':'Patient/1/history/2'}"), 400,
           "Observation.subject.reference");
    reject("Observation", obs("'subject':{'reference':'urn:uuid:1234'}"), 400,
           "Observation.subject.reference");
    reject("Observation", obs("'subject':{'reference':'ftp://x.org/Patient/1'}"), 400,
           "Observation.subject.reference");
    reject("Observation",
           obs("'performer':[{'reference':'Practitioner/1'},"
               "{'reference':'#missing'}]"),
           400, "Observation.performer[1].reference");
}

static void test_invariants(void **state)
{
    (void)state;
    /* obs-6 */
    reject("Observation", obs("'valueString':'x','dataAbsentReason':{'text':'n/a'}"), 400,
           "Observation.dataAbsentReason");
    /* obs-7: the component repeats Observation.code while there is a value */
    reject("Observation",
           obs("'valueString':'x','component':[{'code':{'coding':[{'system':'http://loinc.org',"
               "'code':'1234-5'}]},'valueString':'y'}]"),
           400, "Observation.component[0].code");
    accept("Observation", obs("'component':[{'code':{'coding':[{'system':'http://loinc.org',"
                              "'code':'1234-5'}]},'valueString':'y'}]"));
    /* obs-3 */
    reject("Observation", obs("'referenceRange':[{'type':{'text':'normal'}}]"), 400,
           "Observation.referenceRange[0]");
    /* sqty-1: referenceRange.low is a SimpleQuantity */
    reject("Observation", obs("'referenceRange':[{'low':{'value':1,'comparator':'<'}}]"), 400,
           "Observation.referenceRange[0].low.comparator");
    /* ext-1 and Extension.url 1..1 */
    reject("Observation", obs("'extension':[{'valueString':'x'}]"), 400,
           "Observation.extension[0].url");
    reject("Observation", obs("'extension':[{'url':'http://x.org/e'}]"), 400,
           "Observation.extension[0]");
    reject("Observation",
           obs("'extension':[{'url':'http://x.org/e','valueString':'x','extension':"
               "[{'url':'http://x.org/f','valueString':'y'}]}]"),
           400, "Observation.extension[0]");
    /* rng-2, rat-1, per-1, qty-3 */
    reject("Observation", obs("'valueRange':{'low':{'value':3},'high':{'value':2}}"), 400,
           "Observation.valueRange");
    reject("Observation", obs("'valueRatio':{'numerator':{'value':1}}"), 400,
           "Observation.valueRatio");
    reject("Observation", obs("'effectivePeriod':{'start':'2024-02-01','end':'2024-01-01'}"), 400,
           "Observation.effectivePeriod");
    reject("Observation", obs("'valueQuantity':{'value':1,'code':'g'}"), 400,
           "Observation.valueQuantity");
    /* Narrative */
    reject("Observation", obs("'text':{'status':'generated'}"), 400, "Observation.text.div");
    reject("Observation", obs("'text':{'status':'generated','div':'<p>x</p>'}"), 400,
           "Observation.text.div");
    /* Annotation.text 1..1 */
    reject("Observation", obs("'note':[{'authorString':'me'}]"), 400, "Observation.note[0].text");
}

static void test_contained(void **state)
{
    (void)state;
    /* dom-3: not referenced */
    reject("Observation", obs("'contained':[{'resourceType':'Patient','id':'p1'}]"), 400,
           "Observation.contained[0]");
    /* dom-2: nested contained */
    reject("Observation",
           obs("'contained':[{'resourceType':'Patient','id':'p1','contained':[{'resourceType':"
               "'Patient','id':'p2'}]}],'subject':{'reference':'#p1'}"),
           400, "Observation.contained[0].contained");
    /* dom-4 */
    reject("Observation",
           obs("'contained':[{'resourceType':'Patient','id':'p1','meta':{'versionId':'1'}}],"
               "'subject':{'reference':'#p1'}"),
           400, "Observation.contained[0].meta");
    /* contained resources are validated by their own type */
    reject("Observation",
           obs("'contained':[{'resourceType':'Patient','id':'p1','birthDate':'1980-02-30'}],"
               "'subject':{'reference':'#p1'}"),
           400, "Observation.contained[0].birthDate");
    reject("Observation",
           obs("'contained':[{'resourceType':'Bogus','id':'p1'}],'subject':{'reference':'#p1'}"),
           400, "Observation.contained[0]");
    /* an unmodelled type gets the generic checks */
    accept("Observation",
           obs("'contained':[{'resourceType':'Specimen','id':'s1','type':{'text':'blood'}}],"
               "'specimen':{'reference':'#s1'}"));
    reject("Observation",
           obs("'contained':[{'resourceType':'Specimen','id':'s1','type':{}}],"
               "'specimen':{'reference':'#s1'}"),
           400, "Observation.contained[0].type");
}

static void test_resource_type(void **state)
{
    (void)state;
    reject("Observation", "{'resourceType':'Patient'}", 400, "Observation");
    reject("Observation", "{'status':'final','code':{'text':'x'}}", 400, "Observation");
    reject("Patient", "{'resourceType':'Observation','status':'final','code':{'text':'x'}}", 400,
           "Patient");
    {
        vl_error_t err = VL_ERROR_INIT;
        json_t *arr = json_array();
        assert_int_not_equal(validate_as("Observation", arr, &err), 0);
        json_decref(arr);
        vl_error_clear(&err);
    }
}

/* ------------------------------------------------------------------------
 * Vital-signs profile (422)
 * ---------------------------------------------------------------------- */

static void test_vitals_required(void **state)
{
    (void)state;
    /* by category */
    reject("Observation", obs(VS_CAT "," EFF "," HR_VALUE), 422, "Observation.subject");
    reject("Observation", obs(VS_CAT "," SUBJ "," HR_VALUE), 422, "Observation.effective[x]");
    reject("Observation", obs(VS_CAT "," SUBJ ",'effectiveDateTime':'2024-05'," HR_VALUE), 422,
           "Observation.effectiveDateTime");
    reject("Observation",
           obs(VS_CAT "," SUBJ ",'effectiveInstant':'2024-05-06T10:00:00Z'," HR_VALUE), 422,
           "Observation.effectiveInstant");
    reject("Observation", obs(VS_CAT ",'subject':{'reference':'Group/g1'}," EFF "," HR_VALUE), 422,
           "Observation.subject.reference");
    /* vs-2 */
    reject("Observation", obs(VS_CAT "," SUBJ "," EFF), 422, "Observation");
    /* by profile claim: the category becomes required */
    reject("Observation",
           obs(SUBJ "," EFF "," HR_VALUE ",'meta':{'profile':['http://hl7.org/fhir/"
                    "StructureDefinition/vitalsigns']}"),
           422, "Observation.category");
    /* claiming heartrate needs its LOINC code */
    reject("Observation",
           obs(VS_CAT "," SUBJ "," EFF "," HR_VALUE ",'meta':{'profile':['http://hl7.org/fhir/"
                      "StructureDefinition/heartrate']}"),
           422, "Observation.code");
    /* base errors come first: 400 */
    reject("Observation", obs(VS_CAT "," EFF "," HR_VALUE ",'bogus':1"), 400,
           "Observation.subject");
    /* a generic vital sign with any value type */
    accept("Observation", obs(VS_CAT "," SUBJ "," EFF ",'valueString':'fine'"));
}

#define HR(value)                                                                                  \
    "{'resourceType':'Observation','status':'final'," VS_CAT "," HR_CODE "," SUBJ "," EFF          \
    "," value "}"

static void test_vitals_units(void **state)
{
    (void)state;
    reject("Observation",
           HR("'valueQuantity':{'value':1.2,'unit':'Hz','system':'http://unitsofmeasure.org',"
              "'code':'Hz'}"),
           422, "Observation.valueQuantity.code");
    reject("Observation",
           HR("'valueQuantity':{'value':72,'unit':'/min','system':'http://snomed.info/sct',"
              "'code':'/min'}"),
           422, "Observation.valueQuantity.system");
    reject("Observation", HR("'valueQuantity':{'value':72,'unit':'/min'}"), 422,
           "Observation.valueQuantity.code");
    reject("Observation",
           HR("'valueQuantity':{'unit':'/min','system':'http://unitsofmeasure.org',"
              "'code':'/min'}"),
           422, "Observation.valueQuantity.value");
    reject("Observation", HR("'valueString':'72'"), 422, "Observation.valueString");
    /* weight in pounds is fine, in stones not */
    accept("Observation",
           "{'resourceType':'Observation','status':'final'," VS_CAT
           ",'code':{'coding':[{'system':'http://loinc.org','code':'29463-7'}]}," SUBJ "," EFF
           ",'valueQuantity':{'value':185,'unit':'lbs','system':'http://unitsofmeasure.org',"
           "'code':'[lb_av]'}}");
    reject("Observation",
           "{'resourceType':'Observation','status':'final'," VS_CAT
           ",'code':{'coding':[{'system':'http://loinc.org','code':'29463-7'}]}," SUBJ "," EFF
           ",'valueQuantity':{'value':13,'unit':'st','system':'http://unitsofmeasure.org',"
           "'code':'[stone_av]'}}",
           422, "Observation.valueQuantity.code");
    /* BMI needs its value */
    reject("Observation",
           "{'resourceType':'Observation','status':'final'," VS_CAT
           ",'code':{'coding':[{'system':'http://loinc.org','code':'39156-5'}]}," SUBJ "," EFF
           ",'dataAbsentReason':{'text':'x'}}",
           422, "Observation.valueQuantity");
}

#define BP(components)                                                                             \
    "{'resourceType':'Observation','status':'final'," VS_CAT                                       \
    ",'code':{'coding':[{'system':'http://loinc.org','code':'85354-9'}]}," SUBJ "," EFF            \
    ",'component':[" components "]}"
#define SYS(v)                                                                                     \
    "{'code':{'coding':[{'system':'http://loinc.org','code':'8480-6'}]},'valueQuantity':{"         \
    "'value':" v ",'unit':'mmHg','system':'http://unitsofmeasure.org','code':'mm[Hg]'}}"
#define DIA(unit)                                                                                  \
    "{'code':{'coding':[{'system':'http://loinc.org','code':'8462-4'}]},'valueQuantity':{"         \
    "'value':80,'unit':'mmHg','system':'http://unitsofmeasure.org','code':'" unit "'}}"

static void test_vitals_bp(void **state)
{
    (void)state;
    accept("Observation", BP(SYS("120") "," DIA("mm[Hg]")));
    reject("Observation", BP(SYS("120")), 422, "Observation.component");
    reject("Observation", BP(SYS("120") "," DIA("kPa")), 422,
           "Observation.component[1].valueQuantity.code");
    reject("Observation", BP(SYS("120") "," SYS("121") "," DIA("mm[Hg]")), 422,
           "Observation.component");
    /* vs-3 */
    reject("Observation", BP(SYS("120") "," DIA("mm[Hg]") ",{'code':{'text':'cuff size'}}"), 422,
           "Observation.component[2]");
}

/* ------------------------------------------------------------------------
 * Other types, ids, limits
 * ---------------------------------------------------------------------- */

static void test_other_types(void **state)
{
    (void)state;
    accept("Patient", "{'resourceType':'Patient','id':'p1','gender':'female',"
                      "'birthDate':'1970','deceasedBoolean':false}");
    reject("Patient", "{'resourceType':'Patient','birthDate':'not a date'}", 400,
           "Patient.birthDate");
    reject("Patient", "{'resourceType':'Patient','birthDate':'1970-01-01T10:00:00Z'}", 400,
           "Patient.birthDate");
    reject("Patient", "{'resourceType':'Patient','gender':'m'}", 400, "Patient.gender");
    reject("Patient", "{'resourceType':'Patient','name':[{'given':'A'}]}", 400,
           "Patient.name[0].given");
    reject("Patient", "{'resourceType':'Patient','managingOrganization':{'reference':'x y'}}", 400,
           "Patient.managingOrganization.reference");
    reject("Patient", "{'resourceType':'Patient','contact':[{'gender':'male'}]}", 400,
           "Patient.contact[0]");
    accept("Device", "{'resourceType':'Device','status':'active','deviceName':[{'name':'W1',"
                     "'type':'model-name'}],'patient':{'reference':'Patient/p1'}}");
    reject("Device", "{'resourceType':'Device','deviceName':[{'name':'W1'}]}", 400,
           "Device.deviceName[0].type");
    accept("Organization", "{'resourceType':'Organization','name':'Clinic'}");
    reject("Organization", "{'resourceType':'Organization','active':true}", 400, "Organization");
    accept("Practitioner", "{'resourceType':'Practitioner','name':[{'family':'Who'}]}");
    reject("Practitioner", "{'resourceType':'Practitioner','meta':{'versionId':''}}", 400,
           "Practitioner.meta.versionId");
    /* Consent: the R4 element tables and ppc-1..5 */
#define CONSENT_HEAD                                                                               \
    "'resourceType':'Consent','status':'active','scope':{'coding':[{'system':"                     \
    "'http://terminology.hl7.org/CodeSystem/consentscope','code':'patient-privacy'}]},"            \
    "'category':[{'coding':[{'system':'http://loinc.org','code':'59284-0'}]}]"
    accept("Consent", "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'},'policyRule':{"
                      "'coding':[{'system':'http://terminology.hl7.org/CodeSystem/v3-ActCode',"
                      "'code':'OPTIN'}]},'provision':{'type':'permit','period':{'start':"
                      "'2024-01-01','end':'2025-01-01'},'actor':[{'role':{'coding':[{'system':"
                      "'http://terminology.hl7.org/CodeSystem/v3-ParticipationType','code':"
                      "'PRCP'}]},'reference':{'reference':'Organization/o1'}}],'action':[{"
                      "'coding':[{'code':'access'}]}],'class':[{'system':"
                      "'http://hl7.org/fhir/resource-types','code':'Observation'}],'code':[{"
                      "'coding':[{'system':'http://loinc.org','code':'8867-4'}]}],'dataPeriod':"
                      "{'start':'2024-01-01'},'provision':[{'type':'deny','code':[{'coding':[{"
                      "'system':'http://loinc.org','code':'8480-6'}]}],'provision':[{'type':"
                      "'permit'}]}]}}");
    /* ppc-1: a policy or a policyRule */
    reject("Consent", "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'}}", 400, "Consent");
    accept("Consent", "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'},'policy':[{'uri':"
                      "'https://example.org/policy'}]}");
    /* ppc-2..5: a patient for the patient-privacy, research, adr and treatment scopes */
    reject("Consent", "{" CONSENT_HEAD ",'policy':[{'uri':'https://example.org/p'}]}", 400,
           "Consent.patient");
    reject("Consent",
           "{'resourceType':'Consent','status':'active','scope':{'coding':[{'code':'research'}]},"
           "'category':[{'text':'x'}],'policyRule':{'text':'r'}}",
           400, "Consent.patient");
    reject("Consent",
           "{'resourceType':'Consent','status':'active','scope':{'coding':[{'system':"
           "'http://terminology.hl7.org/CodeSystem/consentscope','code':'adr'}]},"
           "'category':[{'text':'x'}],'policyRule':{'text':'r'}}",
           400, "Consent.patient");
    reject("Consent",
           "{'resourceType':'Consent','status':'active','scope':{'coding':[{'system':"
           "'http://terminology.hl7.org/CodeSystem/consentscope','code':'treatment'}]},"
           "'category':[{'text':'x'}],'policyRule':{'text':'r'}}",
           400, "Consent.patient");
    /* another scope system does not need one */
    accept("Consent", "{'resourceType':'Consent','status':'active','scope':{'coding':[{'system':"
                      "'https://example.org/scopes','code':'treatment'}]},'category':[{'text':"
                      "'x'}],'policyRule':{'text':'r'}}");
    /* required elements, codes and structure */
    reject("Consent", "{'resourceType':'Consent','patient':{'reference':'Patient/p1'}}", 400,
           "Consent.status");
    reject("Consent",
           "{'resourceType':'Consent','status':'revoked','scope':{'text':'s'},'category':[{"
           "'text':'x'}],'policyRule':{'text':'r'}}",
           400, "Consent.status");
    reject("Consent",
           "{'resourceType':'Consent','status':'active','category':[{'text':'x'}],"
           "'policyRule':{'text':'r'}}",
           400, "Consent.scope");
    reject("Consent",
           "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'},'policyRule':{'text':'r'},"
           "'provision':{'type':'maybe'}}",
           400, "Consent.provision.type");
    reject("Consent",
           "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'},'policyRule':{'text':'r'},"
           "'provision':{'actor':[{'reference':{'reference':'Organization/o1'}}]}}",
           400, "Consent.provision.actor[0].role");
    reject("Consent",
           "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'},'policyRule':{'text':'r'},"
           "'provision':{'provision':[{'dataPeriod':{'start':'2024-13-01'}}]}}",
           400, "Consent.provision.provision[0].dataPeriod.start");
    reject("Consent",
           "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'},'policyRule':{'text':'r'},"
           "'provision':{'actor':[]}}",
           400, "Consent.provision.actor");
    reject("Consent",
           "{" CONSENT_HEAD ",'patient':{'reference':'Patient/p1'},'policyRule':{'text':'r'},"
           "'anything':1}",
           400, NULL);
    reject("Consent", "{'resourceType':'Consent','id':'a b'}", 400, "Consent.id");
#undef CONSENT_HEAD
}

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(vl_fhir_id_valid("a"));
    assert_true(vl_fhir_id_valid("A-Za-z0-9.-"));
    assert_true(
        vl_fhir_id_valid("0123456789012345678901234567890123456789012345678901234567890123"));
    assert_false(
        vl_fhir_id_valid("01234567890123456789012345678901234567890123456789012345678901234"));
    assert_false(vl_fhir_id_valid(""));
    assert_false(vl_fhir_id_valid(NULL));
    assert_false(vl_fhir_id_valid("a_b"));
    assert_false(vl_fhir_id_valid("a b"));
    assert_false(vl_fhir_id_valid("a/b"));
    assert_false(vl_fhir_id_valid("é"));
}

static void test_issue_cap(void **state)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *res = parse_q(obs(""));
    char key[32];
    (void)state;
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "bogus%d", i);
        json_object_set_new(res, key, json_true());
    }
    assert_int_not_equal(validate_as("Observation", res, &err), 0);
    assert_true(vl_error_count(&err) >= 100);
    assert_true(vl_error_count(&err) <= 102);
    assert_int_equal(err.status, 400);
    json_decref(res);
    vl_error_clear(&err);
}

static void test_all_issues_collected(void **state)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *res = parse_q(obs("'foo':1,'issued':'2024','category':[]"));
    (void)state;
    assert_int_not_equal(validate_as("Observation", res, &err), 0);
    assert_true(has_expr(&err, "Observation.foo"));
    assert_true(has_expr(&err, "Observation.issued"));
    assert_true(has_expr(&err, "Observation.category"));
    assert_int_equal(vl_error_count(&err), 3);
    json_decref(res);
    vl_error_clear(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hl7_observation_examples),
        cmocka_unit_test(test_hl7_other_examples),
        cmocka_unit_test(test_hl7_observation_mutants),
        cmocka_unit_test(test_validator_cases),
        cmocka_unit_test(test_valid_minimal),
        cmocka_unit_test(test_valid_references),
        cmocka_unit_test(test_valid_primitive_arrays),
        cmocka_unit_test(test_valid_vital_signs),
        cmocka_unit_test(test_unknown_elements),
        cmocka_unit_test(test_cardinality),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_choice),
        cmocka_unit_test(test_primitive_formats),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_contained),
        cmocka_unit_test(test_resource_type),
        cmocka_unit_test(test_vitals_required),
        cmocka_unit_test(test_vitals_units),
        cmocka_unit_test(test_vitals_bp),
        cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_issue_cap),
        cmocka_unit_test(test_all_issues_collected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
