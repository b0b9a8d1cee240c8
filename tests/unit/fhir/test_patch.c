/*
 * Unit tests for the document changes of PATCH: src/fhir/patch.c's JSON
 * Patch (every example of RFC 6902 appendix A, the pointers of RFC 6901
 * section 5, the errors and bounds) and src/fhir/fhirpath.c's FHIRPath
 * subset and FHIRPath Patch (the examples of the R4 fhirpatch.html page,
 * each operation, primitives' companions, choices, the errors). Documents
 * are parsed with vl_json_parse, as request bodies and stored versions
 * are, so numbers are tagged strings throughout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/fhir/fhirpath.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static json_t *parse(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *v = vl_json_parse(text, strlen(text), NULL, &err);
    if (!v)
        fail_msg("test JSON does not parse: %s\n%s", vl_error_message(&err), text);
    return v;
}

static void assert_same(const json_t *got, const char *want)
{
    json_t *w = parse(want);
    if (!vl_patch_json_equal(got, w)) {
        size_t n;
        char *text = vl_json_dump(got, &n);
        print_error("got  %s\nwant %s\n", text ? text : "?", want);
        free(text);
        json_decref(w);
        fail();
    }
    json_decref(w);
}

/* JSON Patch `patch` on `doc` gives `want`. */
static void jp_ok(const char *doc, const char *patch, const char *want)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *d = parse(doc), *p = parse(patch);
    if (vl_patch_json_apply(&d, p, NULL, &err) < 0)
        fail_msg("patch failed (%d): %s\n%s", err.status, vl_error_message(&err), patch);
    assert_same(d, want);
    json_decref(d);
    json_decref(p);
}

/* JSON Patch `patch` on `doc` fails with `status`, its message holding
 * `part`. */
static void jp_fails(const char *doc, const char *patch, int status, const char *part)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *d = parse(doc), *p = parse(patch);
    if (vl_patch_json_apply(&d, p, NULL, &err) == 0)
        fail_msg("patch did not fail: %s", patch);
    if (err.status != status || !strstr(vl_error_message(&err), part))
        fail_msg("expected %d with '%s', got %d: %s", status, part, err.status,
                 vl_error_message(&err));
    vl_error_clear(&err);
    json_decref(d);
    json_decref(p);
}

/* A Parameters of one FHIRPath Patch operation; `rest` holds the parts
 * after type and path, as JSON text (may be ""). */
static char *op1(const char *type, const char *path, const char *rest)
{
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"operation\",\"part\":["
             "{\"name\":\"type\",\"valueCode\":\"%s\"},{\"name\":\"path\",\"valueString\":\"%s\"}"
             "%s%s]}]}",
             type, path, *rest ? "," : "", rest);
    return buf;
}

static void fp_ok(const char *res, const char *params, const char *want)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *r = parse(res), *p = parse(params);
    if (vl_patch_fhirpath_apply(r, p, NULL, &err) < 0)
        fail_msg("FHIRPath Patch failed (%d): %s\n%s", err.status, vl_error_message(&err), params);
    assert_same(r, want);
    json_decref(r);
    json_decref(p);
}

static void fp_fails(const char *res, const char *params, int status, const char *part)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *r = parse(res), *p = parse(params);
    if (vl_patch_fhirpath_apply(r, p, NULL, &err) == 0)
        fail_msg("FHIRPath Patch did not fail: %s", params);
    if (err.status != status || !strstr(vl_error_message(&err), part))
        fail_msg("expected %d with '%s', got %d: %s", status, part, err.status,
                 vl_error_message(&err));
    vl_error_clear(&err);
    json_decref(r);
    json_decref(p);
}

/* ------------------------------------------------------------------------
 * RFC 6902 appendix A, every example
 * ---------------------------------------------------------------------- */

static void test_rfc6902_appendix_a(void **state)
{
    (void)state;
    /* A.1 adding an object member */
    jp_ok("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]",
          "{\"baz\":\"qux\",\"foo\":\"bar\"}");
    /* A.2 adding an array element */
    jp_ok("{\"foo\":[\"bar\",\"baz\"]}", "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
          "{\"foo\":[\"bar\",\"qux\",\"baz\"]}");
    /* A.3 removing an object member */
    jp_ok("{\"baz\":\"qux\",\"foo\":\"bar\"}", "[{\"op\":\"remove\",\"path\":\"/baz\"}]",
          "{\"foo\":\"bar\"}");
    /* A.4 removing an array element */
    jp_ok("{\"foo\":[\"bar\",\"qux\",\"baz\"]}", "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]",
          "{\"foo\":[\"bar\",\"baz\"]}");
    /* A.5 replacing a value */
    jp_ok("{\"baz\":\"qux\",\"foo\":\"bar\"}",
          "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
          "{\"baz\":\"boo\",\"foo\":\"bar\"}");
    /* A.6 moving a value */
    jp_ok("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
          "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]",
          "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}");
    /* A.7 moving an array element */
    jp_ok("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
          "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
          "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}");
    /* A.8 testing a value: success */
    jp_ok("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
          "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
          "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
          "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}");
    /* A.9 testing a value: error */
    jp_fails("{\"baz\":\"qux\"}", "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", 422,
             "test failed");
    /* A.10 adding a nested member object */
    jp_ok("{\"foo\":\"bar\"}",
          "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]",
          "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}");
    /* A.11 ignoring unrecognized elements */
    jp_ok("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}]",
          "{\"foo\":\"bar\",\"baz\":\"qux\"}");
    /* A.12 adding to a nonexistent target */
    jp_fails("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", 422,
             "does not exist");
    /* A.14 ~ escape ordering */
    jp_ok("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]",
          "{\"/\":9,\"~1\":10}");
    /* A.15 comparing strings and numbers */
    jp_fails("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", 422,
             "not equal");
    /* A.16 adding an array value */
    jp_ok("{\"foo\":[\"bar\"]}",
          "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]",
          "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}");
}

/* A.13: an operation with "op" twice is not even JSON the server takes. */
static void test_rfc6902_a13_duplicate_member(void **state)
{
    static const char text[] = "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"op\":"
                               "\"remove\"}]";
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_null(vl_json_parse(text, strlen(text), NULL, &err));
    assert_int_equal(err.status, 400);
    vl_error_clear(&err);
}

/* RFC 6901 section 5: every pointer of the example, through "test". */
static void test_rfc6901_pointers(void **state)
{
    static const char doc[] = "{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,"
                              "\"g|h\":4,\"i\\\\j\":5,\"k\\\"l\":6,\" \":7,\"m~n\":8}";
    static const struct {
        const char *pointer, *value;
    } cases[] = {
        {"", NULL},
        {"/foo", "[\"bar\",\"baz\"]"},
        {"/foo/0", "\"bar\""},
        {"/", "0"},
        {"/a~1b", "1"},
        {"/c%d", "2"},
        {"/e^f", "3"},
        {"/g|h", "4"},
        {"/i\\\\j", "5"},
        {"/k\\\"l", "6"},
        {"/ ", "7"},
        {"/m~0n", "8"},
    };
    char patch[4096];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(patch, sizeof patch, "[{\"op\":\"test\",\"path\":\"%s\",\"value\":%s}]",
                 cases[i].pointer, cases[i].value ? cases[i].value : doc);
        jp_ok(doc, patch, doc);
    }
}

/* ------------------------------------------------------------------------
 * JSON Patch: more operations, equality, errors, bounds
 * ---------------------------------------------------------------------- */

static void test_json_patch_operations(void **state)
{
    (void)state;
    /* add replaces an existing member; "-" appends; index == size appends */
    jp_ok("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":2}]", "{\"a\":2}");
    jp_ok("{\"a\":[1]}", "[{\"op\":\"add\",\"path\":\"/a/1\",\"value\":2}]", "{\"a\":[1,2]}");
    /* the whole document: add and replace */
    jp_ok("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"b\":2}}]", "{\"b\":2}");
    jp_ok("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"\",\"value\":{\"c\":3}}]", "{\"c\":3}");
    /* copy is deep: changing the copy leaves the source */
    jp_ok("{\"a\":{\"x\":1}}",
          "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"},"
          "{\"op\":\"replace\",\"path\":\"/b/x\",\"value\":2}]",
          "{\"a\":{\"x\":1},\"b\":{\"x\":2}}");
    /* move onto itself changes nothing; each op sees the previous one */
    jp_ok("{\"a\":1}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]", "{\"a\":1}");
    jp_ok("{\"a\":[1,2,3]}",
          "[{\"op\":\"remove\",\"path\":\"/a/0\"},{\"op\":\"test\",\"path\":\"/a/0\",\"value\":2}]",
          "{\"a\":[2,3]}");
    /* null is a value */
    jp_ok("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/b\",\"value\":null}]", "{\"a\":1,\"b\":null}");
    /* numbers keep their text */
    {
        vl_error_t err = VL_ERROR_INIT;
        json_t *d = parse("{\"v\":1}"),
               *p = parse("[{\"op\":\"replace\",\"path\":\"/v\",\"value\":1.50}]");
        size_t n;
        char *text;
        assert_int_equal(vl_patch_json_apply(&d, p, NULL, &err), 0);
        text = vl_json_dump(d, &n);
        assert_string_equal(text, "{\"v\":1.50}");
        free(text);
        json_decref(d);
        json_decref(p);
    }
}

static void test_json_equality(void **state)
{
    static const struct {
        const char *a, *b;
        int equal;
    } cases[] = {
        {"1", "1.0", 1},
        {"100", "1e2", 1},
        {"1E+2", "100.000", 1},
        {"0.5", "5e-1", 1},
        {"-0", "0", 1},
        {"0.0e10", "0", 1},
        {"12.30", "1.23e1", 1},
        {"1", "2", 0},
        {"-1", "1", 0},
        {"10", "\"10\"", 0},
        {"0.1", "0.10000000000000001", 0}, /* exact, not by double */
        {"{\"a\":1,\"b\":[1,2]}", "{\"b\":[1.0,2],\"a\":1}", 1},
        {"[1,2]", "[2,1]", 0},
        {"{\"a\":1}", "{\"a\":1,\"b\":2}", 0},
        {"null", "false", 0},
        {"true", "true", 1},
        {"\"a\"", "\"a\"", 1},
        {"\"\\u00e9\"", "\"\xc3\xa9\"", 1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *a = parse(cases[i].a), *b = parse(cases[i].b);
        if (vl_patch_json_equal(a, b) != cases[i].equal)
            fail_msg("%s vs %s: expected %s", cases[i].a, cases[i].b,
                     cases[i].equal ? "equal" : "different");
        json_decref(a);
        json_decref(b);
    }
}

static void test_json_patch_errors(void **state)
{
    static const char doc[] = "{\"a\":[1,2],\"o\":{\"k\":1}}";
    (void)state;
    /* malformed documents and operations: 400, nothing applied */
    jp_fails(doc, "{\"op\":\"add\"}", 400, "array of operations");
    jp_fails(doc, "[1]", 400, "not an object");
    jp_fails(doc, "[{\"path\":\"/a\"}]", 400, "'op'");
    jp_fails(doc, "[{\"op\":\"frobnicate\",\"path\":\"/a\"}]", 400, "'op'");
    jp_fails(doc, "[{\"op\":\"remove\"}]", 400, "'path'");
    jp_fails(doc, "[{\"op\":\"add\",\"path\":\"/x\"}]", 400, "'value'");
    jp_fails(doc, "[{\"op\":\"copy\",\"path\":\"/x\"}]", 400, "'from'");
    jp_fails(doc, "[{\"op\":\"remove\",\"path\":\"a\"}]", 400, "JSON Pointer");
    jp_fails(doc, "[{\"op\":\"remove\",\"path\":\"/a~2\"}]", 400, "JSON Pointer");
    jp_fails(doc, "[{\"op\":\"remove\",\"path\":\"/a/0\"},{\"op\":\"remove\",\"path\":\"x\"}]", 400,
             "operation 1");
    /* operations that cannot be applied: 422, with the index and path */
    jp_fails(doc, "[{\"op\":\"remove\",\"path\":\"/zz\"}]", 422,
             "operation 0 (remove '/zz'): the target does not exist");
    jp_fails(doc,
             "[{\"op\":\"test\",\"path\":\"/a/0\",\"value\":1},{\"op\":\"remove\",\"path\":"
             "\"/a/5\"}]",
             422, "operation 1");
    jp_fails(doc, "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":1}]", 422, "does not exist");
    jp_fails(doc, "[{\"op\":\"add\",\"path\":\"/a/3\",\"value\":1}]", 422, "not an index");
    jp_fails(doc, "[{\"op\":\"add\",\"path\":\"/a/01\",\"value\":1}]", 422, "not an index");
    jp_fails(doc, "[{\"op\":\"remove\",\"path\":\"/a/-\"}]", 422, "does not exist");
    jp_fails(doc, "[{\"op\":\"add\",\"path\":\"/a/0/x\",\"value\":1}]", 422, "not an object");
    jp_fails(doc, "[{\"op\":\"move\",\"from\":\"/o\",\"path\":\"/o/k2\"}]", 422,
             "its own children");
    jp_fails(doc, "[{\"op\":\"move\",\"from\":\"/nope\",\"path\":\"/x\"}]", 422, "does not exist");
    jp_fails(doc, "[{\"op\":\"copy\",\"from\":\"/nope\",\"path\":\"/x\"}]", 422, "does not exist");
    jp_fails(doc, "[{\"op\":\"remove\",\"path\":\"\"}]", 422, "whole document");
    jp_fails(doc, "[{\"op\":\"test\",\"path\":\"/nope\",\"value\":1}]", 422, "does not exist");
}

static void test_json_patch_bounds(void **state)
{
    char *patch;
    size_t len = 0, cap = 64 * 1024;
    vl_patch_limits_t lim = {5};
    vl_error_t err = VL_ERROR_INIT;
    json_t *d, *p;
    (void)state;
    /* copies that double the document run out of budget */
    patch = malloc(cap);
    assert_non_null(patch);
    len += (size_t)snprintf(patch + len, cap - len, "[");
    for (int i = 0; i < 40; i++)
        len +=
            (size_t)snprintf(patch + len, cap - len,
                             "%s{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/a/-\"}", i ? "," : "");
    snprintf(patch + len, cap - len, "]");
    jp_fails("{\"a\":[1,2,3,4]}", patch, 422, "copies may add");
    free(patch);
    /* too many operations */
    patch = malloc(cap);
    assert_non_null(patch);
    len = (size_t)snprintf(patch, cap, "[");
    for (int i = 0; i <= VL_PATCH_MAX_OPS; i++)
        len += (size_t)snprintf(patch + len, cap - len,
                                "%s{\"op\":\"test\",\"path\":\"\",\"value\":{}}", i ? "," : "");
    snprintf(patch + len, cap - len, "]");
    jp_fails("{}", patch, 400, "at most 1000 operations");
    free(patch);
    /* the depth limit: the location's depth plus the value's */
    d = parse("{\"a\":{\"b\":{}}}");
    p = parse("[{\"op\":\"add\",\"path\":\"/a/b/c\",\"value\":{\"d\":{}}}]");
    assert_int_equal(vl_patch_json_apply(&d, p, &lim, &err), 0); /* 3 + 2 = 5 */
    json_decref(p);
    p = parse("[{\"op\":\"add\",\"path\":\"/a/b/c/d/e\",\"value\":{}}]");
    assert_int_equal(vl_patch_json_apply(&d, p, &lim, &err), -1); /* 5 + 1 */
    assert_int_equal(err.status, 422);
    assert_non_null(strstr(vl_error_message(&err), "deeper than 5"));
    vl_error_clear(&err);
    json_decref(p);
    json_decref(d);
    assert_int_equal(vl_patch_depth(json_null(), 3), 0);
}

/* ------------------------------------------------------------------------
 * The FHIRPath subset
 * ---------------------------------------------------------------------- */

static const char PATIENT[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"},{\"system\":\"urn:b\",\"value\":\"2\"},"
    "{\"system\":\"urn:a\",\"value\":\"3\"}],"
    "\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"],"
    "\"_given\":[null,{\"extension\":[{\"url\":\"urn:x\",\"valueString\":\"j\"}]}]},"
    "{\"use\":\"usual\",\"given\":[\"Jim\"]}],"
    "\"telecom\":[{\"system\":\"phone\",\"value\":\"1\",\"use\":\"home\"},"
    "{\"system\":\"phone\",\"value\":\"2\",\"use\":\"work\",\"rank\":1}],"
    "\"gender\":\"male\",\"birthDate\":\"1974-12-25\","
    "\"_birthDate\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
    "patient-birthTime\",\"valueDateTime\":\"1974-12-25T14:35:45-05:00\"}]},"
    "\"contact\":[{\"gender\":\"female\",\"name\":{\"family\":\"du Marche\"}}]}";

static size_t count(const char *res, const char *expr)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_fp_nodes_t nodes;
    json_t *r = parse(res);
    size_t n;
    if (vl_fhirpath_select(r, expr, &nodes, &err) < 0)
        fail_msg("'%s' failed: %s", expr, vl_error_message(&err));
    n = nodes.n;
    vl_fp_nodes_free(&nodes);
    json_decref(r);
    return n;
}

static void unsupported(const char *expr, const char *part)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_fp_nodes_t nodes;
    json_t *r = parse(PATIENT);
    if (vl_fhirpath_select(r, expr, &nodes, &err) == 0)
        fail_msg("'%s' did not fail", expr);
    if (err.status != 422 || !strstr(vl_error_message(&err), part) ||
        !strstr(vl_error_message(&err), expr))
        fail_msg("'%s': expected 422 with '%s', got %d: %s", expr, part, err.status,
                 vl_error_message(&err));
    vl_error_clear(&err);
    vl_fp_nodes_free(&nodes);
    json_decref(r);
}

static void test_fhirpath_select(void **state)
{
    static const char OBS[] =
        "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\","
        "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},"
        "\"valueQuantity\":{\"value\":72,\"unit\":\"/min\"},"
        "\"component\":[{\"code\":{\"text\":\"a\"},\"valueString\":\"x\"},"
        "{\"code\":{\"text\":\"b\"},\"valueQuantity\":{\"value\":1.0}}]}";
    (void)state;
    assert_int_equal(count(PATIENT, "Patient"), 1);
    assert_int_equal(count(PATIENT, "Patient.identifier"), 3);
    assert_int_equal(count(PATIENT, "identifier"), 3); /* the type may be left out */
    assert_int_equal(count(PATIENT, "Patient.identifier[1]"), 1);
    assert_int_equal(count(PATIENT, "Patient.identifier[3]"), 0);
    assert_int_equal(count(PATIENT, "Patient.identifier.where(system = 'urn:a')"), 2);
    assert_int_equal(count(PATIENT, "Patient.identifier.where(system = 'urn:a' and value='3')"), 1);
    assert_int_equal(count(PATIENT, "Patient.identifier.where(system = 'urn:a').last()"), 1);
    assert_int_equal(count(PATIENT, "Patient.identifier.first().value"), 1);
    assert_int_equal(count(PATIENT, "Patient.name.given"), 3);
    assert_int_equal(count(PATIENT, "Patient.name.where(use = 'official').given[1].extension"), 1);
    assert_int_equal(count(PATIENT, "Patient.telecom.where(rank = 1)"), 1);
    assert_int_equal(count(PATIENT, "Patient.telecom.where(rank = 1.0)"), 1);
    assert_int_equal(count(PATIENT, "Patient.birthDate.extension"), 1);
    assert_int_equal(count(PATIENT,
                           "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/"
                           "patient-birthTime')"),
                     1);
    assert_int_equal(count(PATIENT, "Patient.contact.name.family"), 1);
    assert_int_equal(count(PATIENT, "Patient.name.given.where($this = 'James')"), 1);
    assert_int_equal(count(PATIENT, "Patient.active.where($this = true)"), 1);
    assert_int_equal(count(PATIENT, "Patient.active.where($this = 'true')"), 0);
    assert_int_equal(count(PATIENT, "Patient.nosuch"), 0);        /* not an element */
    assert_int_equal(count(PATIENT, "Observation.status"), 0);    /* another type */
    assert_int_equal(count(PATIENT, "Patient.`gender`"), 1);      /* delimited */
    assert_int_equal(count(OBS, "Observation.value"), 1);         /* a choice by its name */
    assert_int_equal(count(OBS, "Observation.valueQuantity"), 1); /* and by its JSON name */
    assert_int_equal(count(OBS, "Observation.valueString"), 0);
    assert_int_equal(count(OBS, "Observation.component.value"), 2);
    assert_int_equal(count(OBS, "Observation.component.value.ofType(Quantity)"), 1);
    assert_int_equal(count(OBS, "Observation.component.value.ofType(string)"), 1);
    assert_int_equal(count(OBS, "Observation.value.ofType(CodeableConcept)"), 0);
    assert_int_equal(count(OBS, "Observation.component.where(value = 'x')"), 1);
    assert_int_equal(count(OBS, "Observation.component.where(code.text = 'b').value.value"), 1);
    assert_int_equal(count(OBS, "Observation.code.where(coding.code = '8867-4')"), 1);
}

static void test_fhirpath_unsupported(void **state)
{
    (void)state;
    unsupported("Patient.name.exists()", "the function exists()");
    unsupported("Patient.identifier.where(system != 'a')", "compares with '=' only");
    unsupported("Patient.identifier.where(system = 'a' or value = 'b')", "'or'");
    unsupported("Patient.name | Patient.telecom", "operator '|'");
    unsupported("Patient.identifier[-1]", "whole number");
    unsupported("Patient.identifier.where(system.exists())", "inside where()");
    unsupported("Patient.identifier.where(system = %x)", "literal");
    unsupported("'text'", "starts with");
    unsupported("Patient.identifier.where(system = 'unterminated)", "unterminated");
    unsupported("Patient.name.where(given.$this = 'x')", "$this after");
    unsupported("Patient.$this", "a name expected");
}

/* ------------------------------------------------------------------------
 * FHIRPath Patch: the spec page's examples, then each operation
 * ---------------------------------------------------------------------- */

static void test_fhirpatch_spec_examples(void **state)
{
    (void)state;
    /* adding an element: a primitive given as value[x] */
    fp_ok("{\"resourceType\":\"Patient\",\"id\":\"p\"}",
          op1("add", "Patient",
              "{\"name\":\"name\",\"valueString\":\"birthDate\"},"
              "{\"name\":\"value\",\"valueDate\":\"1930-01-01\"}"),
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"birthDate\":\"1930-01-01\"}");
    /* adding an anonymous element: nested parts (Patient.contact) */
    fp_ok("{\"resourceType\":\"Patient\",\"id\":\"p\"}",
          op1("add", "Patient",
              "{\"name\":\"name\",\"valueString\":\"contact\"},"
              "{\"name\":\"value\",\"part\":[{\"name\":\"name\",\"valueHumanName\":"
              "{\"text\":\"a name\"}}]}"),
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"contact\":[{\"name\":{\"text\":\"a "
          "name\"}}]}");
}

static void test_fhirpatch_add(void **state)
{
    static const char OBS[] = "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\","
                              "\"code\":{\"text\":\"hr\"}}";
    (void)state;
    /* a repeating element is appended to (and made when absent) */
    fp_ok(OBS,
          op1("add", "Observation",
              "{\"name\":\"name\",\"valueString\":\"note\"},"
              "{\"name\":\"value\",\"valueAnnotation\":{\"text\":\"n\"}}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"note\":[{\"text\":\"n\"}]}");
    {
        vl_error_t err = VL_ERROR_INIT;
        json_t *r = parse(PATIENT),
               *p = parse(op1("add", "Patient.name[1]",
                              "{\"name\":\"name\",\"valueString\":\"given\"},{\"name\":"
                              "\"value\",\"valueString\":\"Jimmy\"}"));
        assert_int_equal(vl_patch_fhirpath_apply(r, p, NULL, &err), 0);
        assert_same(json_object_get(json_array_get(json_object_get(r, "name"), 1), "given"),
                    "[\"Jim\",\"Jimmy\"]");
        json_decref(p);
        json_decref(r);
    }
    /* a choice by its name takes its JSON name from the value's type */
    fp_ok(OBS,
          op1("add", "Observation",
              "{\"name\":\"name\",\"valueString\":\"value\"},{\"name\":\"value\","
              "\"valueQuantity\":{\"value\":72,\"unit\":\"/min\"}}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"valueQuantity\":{\"value\":72,\"unit\":\"/min\"}}");
    /* a complex value in nested parts, with a choice and a list inside */
    fp_ok(OBS,
          op1("add", "Observation",
              "{\"name\":\"name\",\"valueString\":\"component\"},{\"name\":\"value\",\"part\":["
              "{\"name\":\"code\",\"valueCodeableConcept\":{\"text\":\"sys\"}},"
              "{\"name\":\"value\",\"valueQuantity\":{\"value\":120}},"
              "{\"name\":\"interpretation\",\"valueCodeableConcept\":{\"text\":\"H\"}}]}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"component\":[{\"code\":{\"text\":\"sys\"},\"valueQuantity\":{\"value\":120},"
          "\"interpretation\":[{\"text\":\"H\"}]}]}");
    /* an extension on a primitive goes into its companion */
    fp_ok("{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\"}",
          op1("add", "Observation.status",
              "{\"name\":\"name\",\"valueString\":\"extension\"},{\"name\":\"value\",\"part\":["
              "{\"name\":\"url\",\"valueUri\":\"urn:e\"},{\"name\":\"value\",\"valueCode\":"
              "\"x\"}]}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"_status\":{"
          "\"extension\":[{\"url\":\"urn:e\",\"valueCode\":\"x\"}]}}");
    /* errors */
    fp_fails(OBS,
             op1("add", "Observation",
                 "{\"name\":\"name\",\"valueString\":\"status\"},"
                 "{\"name\":\"value\",\"valueCode\":\"amended\"}"),
             422, "already present");
    fp_fails(OBS,
             op1("add", "Observation",
                 "{\"name\":\"name\",\"valueString\":\"colour\"},"
                 "{\"name\":\"value\",\"valueCode\":\"red\"}"),
             422, "Observation has no element 'colour'");
    fp_fails(OBS,
             op1("add", "Observation",
                 "{\"name\":\"name\",\"valueString\":\"subject\"},"
                 "{\"name\":\"value\",\"valueQuantity\":{\"value\":1}}"),
             422, "the value is a Quantity, but the element is a Reference");
    fp_fails(OBS,
             op1("add", "Observation",
                 "{\"name\":\"name\",\"valueString\":\"value\"},"
                 "{\"name\":\"value\",\"valueReference\":{\"reference\":"
                 "\"Patient/p\"}}"),
             422, "'value[x]' of Observation takes a value[x] of one of its types");
    fp_fails(OBS,
             op1("add", "Observation.nothing",
                 "{\"name\":\"name\",\"valueString\":\"note\"},"
                 "{\"name\":\"value\",\"valueString\":\"x\"}"),
             422, "selects nothing");
    fp_fails(PATIENT,
             op1("add", "Patient.identifier",
                 "{\"name\":\"name\",\"valueString\":\"use\"},"
                 "{\"name\":\"value\",\"valueCode\":\"old\"}"),
             422, "selects 3 elements");
    fp_fails(OBS,
             op1("add", "Observation.status",
                 "{\"name\":\"name\",\"valueString\":\"text\"},"
                 "{\"name\":\"value\",\"valueString\":\"x\"}"),
             422, "primitive");
}

static void test_fhirpatch_insert_move(void **state)
{
    static const char P[] = "{\"resourceType\":\"Patient\",\"id\":\"p\",\"identifier\":[{"
                            "\"value\":\"a\"},{\"value\":\"b\"},{\"value\":\"c\"}]}";
    (void)state;
    fp_ok(P,
          op1("insert", "Patient.identifier",
              "{\"name\":\"value\",\"valueIdentifier\":{\"value\":\"x\"}},{\"name\":\"index\","
              "\"valueInteger\":1}"),
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"identifier\":[{\"value\":\"a\"},{"
          "\"value\":\"x\"},{\"value\":\"b\"},{\"value\":\"c\"}]}");
    fp_ok(P,
          op1("insert", "Patient.identifier",
              "{\"name\":\"value\",\"valueIdentifier\":{\"value\":\"z\"}},{\"name\":\"index\","
              "\"valueInteger\":3}"),
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"identifier\":[{\"value\":\"a\"},{"
          "\"value\":\"b\"},{\"value\":\"c\"},{\"value\":\"z\"}]}");
    /* into an absent list */
    fp_ok("{\"resourceType\":\"Patient\",\"id\":\"p\"}",
          op1("insert", "Patient.identifier",
              "{\"name\":\"value\",\"valueIdentifier\":{\"value\":\"x\"}},{\"name\":\"index\","
              "\"valueInteger\":0}"),
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"identifier\":[{\"value\":\"x\"}]}");
    fp_ok(P,
          op1("move", "Patient.identifier",
              "{\"name\":\"source\",\"valueInteger\":0},{\"name\":\"destination\","
              "\"valueInteger\":2}"),
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"identifier\":[{\"value\":\"b\"},{"
          "\"value\":\"c\"},{\"value\":\"a\"}]}");
    fp_ok(P,
          op1("move", "Patient.identifier",
              "{\"name\":\"source\",\"valueInteger\":2},{\"name\":\"destination\","
              "\"valueInteger\":0}"),
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"identifier\":[{\"value\":\"c\"},{"
          "\"value\":\"a\"},{\"value\":\"b\"}]}");
    /* a list of primitives keeps its companion aligned */
    {
        vl_error_t err = VL_ERROR_INIT;
        json_t *r = parse(PATIENT),
               *p = parse(op1("insert", "Patient.name[0].given",
                              "{\"name\":\"value\",\"valueString\":\"Jr\"},{\"name\":\"index\","
                              "\"valueInteger\":0}"));
        json_t *name0 = json_array_get(json_object_get(r, "name"), 0);
        assert_int_equal(vl_patch_fhirpath_apply(r, p, NULL, &err), 0);
        assert_same(json_object_get(name0, "given"), "[\"Jr\",\"Peter\",\"James\"]");
        assert_same(json_object_get(name0, "_given"),
                    "[null,null,{\"extension\":[{\"url\":\"urn:x\",\"valueString\":\"j\"}]}]");
        json_decref(p);
        p = parse(op1("move", "Patient.name[0].given",
                      "{\"name\":\"source\",\"valueInteger\":2},{\"name\":\"destination\","
                      "\"valueInteger\":0}"));
        assert_int_equal(vl_patch_fhirpath_apply(r, p, NULL, &err), 0);
        assert_same(json_object_get(name0, "given"), "[\"James\",\"Jr\",\"Peter\"]");
        assert_same(json_object_get(name0, "_given"),
                    "[{\"extension\":[{\"url\":\"urn:x\",\"valueString\":\"j\"}]},null,null]");
        json_decref(p);
        json_decref(r);
    }
    /* errors */
    fp_fails(P,
             op1("insert", "Patient.identifier",
                 "{\"name\":\"value\",\"valueIdentifier\":{\"value\":\"x\"}},{\"name\":\"index\","
                 "\"valueInteger\":4}"),
             422, "beyond the end");
    fp_fails(P,
             op1("insert", "Patient.identifier[0]",
                 "{\"name\":\"value\",\"valueIdentifier\":{\"value\":\"x\"}},{\"name\":\"index\","
                 "\"valueInteger\":0}"),
             422, "whole list");
    fp_fails("{\"resourceType\":\"Patient\",\"id\":\"p\"}",
             op1("insert", "Patient.gender",
                 "{\"name\":\"value\",\"valueCode\":\"male\"},{\"name\":\"index\","
                 "\"valueInteger\":0}"),
             422, "not a list");
    fp_fails(P,
             op1("move", "Patient.identifier",
                 "{\"name\":\"source\",\"valueInteger\":3},{\"name\":\"destination\","
                 "\"valueInteger\":0}"),
             422, "must be indexes");
}

static void test_fhirpatch_delete_replace(void **state)
{
    static const char OBS[] = "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\","
                              "\"code\":{\"text\":\"hr\"},\"valueQuantity\":{\"value\":72},"
                              "\"note\":[{\"text\":\"a\"},{\"text\":\"b\"}]}";
    (void)state;
    /* delete: one element; none is no change; a list item; the last item
     * takes the list with it */
    fp_ok(OBS, op1("delete", "Observation.note[0]", ""),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"valueQuantity\":{\"value\":72},\"note\":[{\"text\":\"b\"}]}");
    fp_ok(OBS, op1("delete", "Observation.note.where(text = 'zz')", ""), OBS);
    fp_ok(OBS, op1("delete", "Observation.value", ""),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"note\":[{\"text\":\"a\"},{\"text\":\"b\"}]}");
    fp_fails(OBS, op1("delete", "Observation.note", ""), 422, "selects 2 elements");
    fp_fails(OBS, op1("delete", "Observation", ""), 422, "resource itself");
    /* a primitive goes with its extensions; an extension of it alone */
    {
        vl_error_t err = VL_ERROR_INIT;
        json_t *r = parse(PATIENT), *p = parse(op1("delete", "Patient.birthDate", ""));
        assert_int_equal(vl_patch_fhirpath_apply(r, p, NULL, &err), 0);
        assert_null(json_object_get(r, "birthDate"));
        assert_null(json_object_get(r, "_birthDate"));
        json_decref(p);
        json_decref(r);
        r = parse(PATIENT);
        p = parse(op1("delete", "Patient.name[0].given[1].extension", ""));
        assert_int_equal(vl_patch_fhirpath_apply(r, p, NULL, &err), 0);
        /* the companion emptied out: gone */
        assert_null(json_object_get(json_array_get(json_object_get(r, "name"), 0), "_given"));
        json_decref(p);
        p = parse(op1("delete", "Patient.name[0].given[0]", ""));
        assert_int_equal(vl_patch_fhirpath_apply(r, p, NULL, &err), 0);
        assert_same(json_object_get(json_array_get(json_object_get(r, "name"), 0), "given"),
                    "[\"James\"]");
        json_decref(p);
        json_decref(r);
    }
    /* replace: a primitive, a complex value, a choice by another type */
    fp_ok(OBS,
          op1("replace", "Observation.status", "{\"name\":\"value\",\"valueCode\":\"amended\"}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"amended\",\"code\":{"
          "\"text\":\"hr\"},\"valueQuantity\":{\"value\":72},\"note\":[{\"text\":\"a\"},{"
          "\"text\":\"b\"}]}");
    fp_ok(OBS,
          op1("replace", "Observation.note.where(text = 'b')",
              "{\"name\":\"value\",\"valueAnnotation\":{\"text\":\"B\"}}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"valueQuantity\":{\"value\":72},\"note\":[{\"text\":\"a\"},{\"text\":"
          "\"B\"}]}");
    fp_ok(OBS, op1("replace", "Observation.value", "{\"name\":\"value\",\"valueString\":\"high\"}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"valueString\":\"high\",\"note\":[{\"text\":\"a\"},{\"text\":\"b\"}]}");
    fp_ok(OBS,
          op1("replace", "Observation.value.value", "{\"name\":\"value\",\"valueDecimal\":73.50}"),
          "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\",\"code\":{\"text\":"
          "\"hr\"},\"valueQuantity\":{\"value\":73.50},\"note\":[{\"text\":\"a\"},{\"text\":"
          "\"b\"}]}");
    fp_fails(OBS,
             op1("replace", "Observation.issued",
                 "{\"name\":\"value\",\"valueInstant\":"
                 "\"2024-01-01T00:00:00Z\"}"),
             422, "selects nothing");
    fp_fails(
        OBS,
        op1("replace", "Observation.code", "{\"name\":\"value\",\"valueQuantity\":{\"value\":1}}"),
        422, "the value is a Quantity, but the element is a CodeableConcept");
    fp_fails(OBS, op1("replace", "Observation.value", "{\"name\":\"value\",\"valueUri\":\"u\"}"),
             422, "takes a value[x] of one of its types");
}

static void test_fhirpatch_malformed(void **state)
{
    static const char OBS[] =
        "{\"resourceType\":\"Observation\",\"id\":\"o\",\"status\":\"final\"}";
    (void)state;
    fp_fails(OBS, "{\"resourceType\":\"Observation\"}", 400, "Parameters resource");
    fp_fails(OBS, "{\"resourceType\":\"Parameters\",\"parameter\":{}}", 400, "must be a list");
    fp_fails(OBS, "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"op\"}]}", 400,
             "must be an 'operation'");
    fp_fails(OBS, "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"operation\"}]}", 400,
             "has no parts");
    fp_fails(OBS, op1("frob", "Observation", ""), 400, "unknown type 'frob'");
    fp_fails(OBS, op1("add", "Observation", "{\"name\":\"value\",\"valueString\":\"x\"}"), 400,
             "needs a 'name' part");
    fp_fails(OBS, op1("replace", "Observation.status", ""), 400, "needs a 'value' part");
    fp_fails(OBS, op1("insert", "Observation.note", "{\"name\":\"value\",\"valueString\":\"x\"}"),
             400, "needs a 'index' part");
    fp_fails(OBS,
             op1("insert", "Observation.note",
                 "{\"name\":\"value\",\"valueString\":\"x\"},{\"name\":\"index\","
                 "\"valueInteger\":-1}"),
             400, "at least 0");
    fp_fails(OBS,
             op1("delete", "Observation.status", "{\"name\":\"colour\",\"valueString\":\"x\"}"),
             400, "unknown part 'colour'");
    fp_fails(OBS, op1("delete", "Observation.status", "{\"name\":\"path\",\"valueString\":\"x\"}"),
             400, "given twice");
    fp_fails(OBS,
             op1("replace", "Observation.status",
                 "{\"name\":\"value\",\"valueCode\":\"a\",\"valueString\":\"b\"}"),
             400, "more than one value[x]");
    fp_fails(OBS, op1("replace", "Observation.status", "{\"name\":\"value\"}"), 400,
             "(this one has none)");
    fp_fails(OBS,
             op1("replace", "Observation.status",
                 "{\"name\":\"value\",\"valueCode\":\"a\",\"_valueCode\":{\"id\":\"x\"}}"),
             422, "extensions on a primitive value");
    fp_fails(
        OBS,
        op1("replace", "Observation.status.exists()", "{\"name\":\"value\",\"valueCode\":\"a\"}"),
        422, "operation 0 (replace)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6902_appendix_a),
        cmocka_unit_test(test_rfc6902_a13_duplicate_member),
        cmocka_unit_test(test_rfc6901_pointers),
        cmocka_unit_test(test_json_patch_operations),
        cmocka_unit_test(test_json_equality),
        cmocka_unit_test(test_json_patch_errors),
        cmocka_unit_test(test_json_patch_bounds),
        cmocka_unit_test(test_fhirpath_select),
        cmocka_unit_test(test_fhirpath_unsupported),
        cmocka_unit_test(test_fhirpatch_spec_examples),
        cmocka_unit_test(test_fhirpatch_add),
        cmocka_unit_test(test_fhirpatch_insert_move),
        cmocka_unit_test(test_fhirpatch_delete_replace),
        cmocka_unit_test(test_fhirpatch_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
