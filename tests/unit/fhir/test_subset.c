/*
 * Unit tests for src/fhir/subset.c: the _summary and _elements result
 * parameters (parsing, errors) and vl_fhir_subset(), the pure function that
 * trims a stored body to the served copy (kept members, their order and
 * number text, the SUBSETTED tag), plus the generated element tables of
 * src/fhir/summary_elements.c; then every HL7 R4 example of a served type
 * in tests/data/hl7-r4-examples through every subset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/fhir/fhir_internal.h"

#define SUBSETTED                                                                                  \
    "{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\",\"code\":"          \
    "\"SUBSETTED\",\"display\":\"subsetted\"}"

/* A stored Observation: resourceType, id, meta first, then the rest. */
static const char OBS[] =
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"3\","
    "\"lastUpdated\":\"2024-05-06T10:00:00.000Z\"},"
    "\"text\":{\"status\":\"generated\",\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">"
    "x</div>\"},"
    "\"status\":\"final\",\"_status\":{\"extension\":[{\"url\":\"http://"
    "x\",\"valueString\":\"s\"}]},"
    "\"category\":[{\"text\":\"vital-signs\"}],\"code\":{\"text\":\"heart rate\"},"
    "\"subject\":{\"reference\":\"Patient/p1\"},\"effectiveDateTime\":\"2024-05-06\","
    "\"valueQuantity\":{\"value\":61.00,\"unit\":\"/min\"},\"note\":[{\"text\":\"n\"}],"
    "\"referenceRange\":[{\"low\":{\"value\":1E-2}}]}";

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

/* The subset of `qs` (parsed as a query string), or a failure. */
static int subset_of(const char *qs, int search, vl_params_t *p, vl_subset_t *s, vl_error_t *err)
{
    vl_params_init(p);
    assert_int_equal(vl_params_parse_form(p, qs, strlen(qs)), 0);
    return vl_fhir_subset_params(p, search, s, err);
}

/* Trims `body` of `type` as the search `qs` asks and compares the result
 * with `want` (NULL: the stored bytes are served unchanged). */
static void trims(const char *type, const char *qs, const char *body, const char *want)
{
    vl_params_t p;
    vl_subset_t s;
    vl_error_t err = VL_ERROR_INIT;
    char *out;
    size_t len;
    if (subset_of(qs, 1, &p, &s, &err) != 0)
        fail_msg("%s: %s", qs, vl_error_message(&err));
    assert_int_equal(vl_fhir_subset(type, &s, body, strlen(body), &out, &len), 0);
    if (!want) {
        assert_null(out);
    } else {
        assert_non_null(out);
        if (strcmp(out, want) != 0)
            fail_msg("%s\n got: %s\nwant: %s", qs, out, want);
        assert_int_equal(len, strlen(want));
    }
    free(out);
    vl_params_free(&p);
}

/* Expects the parameters to be refused with 400 and an issue code. */
static void refused(const char *qs, int search, const char *code)
{
    vl_params_t p;
    vl_subset_t s;
    vl_error_t err = VL_ERROR_INIT;
    if (subset_of(qs, search, &p, &s, &err) == 0)
        fail_msg("%s was accepted", qs);
    assert_int_equal(err.status, 400);
    const char *got = json_string_value(json_object_get(json_array_get(err.issues, 0), "code"));
    if (!got || strcmp(got, code) != 0)
        fail_msg("%s: issue code %s, want %s (%s)", qs, got ? got : "(none)", code,
                 vl_error_message(&err));
    assert_true(strlen(vl_error_message(&err)) > 0);
    vl_error_clear(&err);
    vl_params_free(&p);
}

/* ------------------------------------------------------------------------
 * Parameters
 * ---------------------------------------------------------------------- */

static void test_params(void **state)
{
    (void)state;
    vl_params_t p;
    vl_subset_t s;
    vl_error_t err = VL_ERROR_INIT;
    static const struct {
        const char *qs;
        vl_subset_mode_t mode;
        int active;
    } cases[] = {
        {"", VL_SUBSET_FULL, 0},
        {"code=x&_count=3", VL_SUBSET_FULL, 0},
        {"_summary=false", VL_SUBSET_FULL, 0},
        {"_summary=", VL_SUBSET_FULL, 0}, /* empty: ignored */
        {"_summary=count", VL_SUBSET_COUNT, 0},
        {"_summary=true", VL_SUBSET_SUMMARY, 1},
        {"_summary=text", VL_SUBSET_TEXT, 1},
        {"_summary=data", VL_SUBSET_DATA, 1},
        {"_elements=status", VL_SUBSET_ELEMENTS, 1},
        {"_elements=status,value,nosuchelement", VL_SUBSET_ELEMENTS, 1},
        {"_summary=&_elements=code", VL_SUBSET_ELEMENTS, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (subset_of(cases[i].qs, 1, &p, &s, &err) != 0)
            fail_msg("%s: %s", cases[i].qs, vl_error_message(&err));
        assert_int_equal(s.mode, cases[i].mode);
        assert_int_equal(vl_fhir_subset_active(&s), cases[i].active);
        if (s.mode == VL_SUBSET_ELEMENTS)
            assert_non_null(s.elements);
        else
            assert_null(s.elements);
        vl_params_free(&p);
    }
    /* a read takes every mode but count */
    assert_int_equal(subset_of("_summary=true", 0, &p, &s, &err), 0);
    assert_int_equal(s.mode, VL_SUBSET_SUMMARY);
    vl_params_free(&p);
    refused("_summary=count", 0, "invalid");

    refused("_summary=bogus", 1, "invalid");
    refused("_summary=TRUE", 1, "invalid");
    refused("_summary=true&_summary=false", 1, "invalid");
    refused("_elements=a&_elements=b", 1, "invalid");
    refused("_elements=a,,b", 1, "invalid");
    refused("_elements=a,", 1, "invalid");
    refused("_elements=-text", 1, "invalid");
    refused("_elements=*", 1, "invalid");
    refused("_elements=1st", 1, "invalid");
    refused("_elements=val%20ue", 1, "invalid");
    refused("_elements=name.given", 1, "not-supported");
    refused("_summary=true&_elements=status", 1, "not-supported");
    refused("_elements=status&_summary=false", 1, "not-supported");

    /* at most 64 characters per name */
    char qs[128] = "_elements=";
    memset(qs + 10, 'a', 64);
    qs[74] = '\0';
    assert_int_equal(subset_of(qs, 1, &p, &s, &err), 0);
    vl_params_free(&p);
    strcat(qs, "a");
    refused(qs, 1, "invalid");
}

/* ------------------------------------------------------------------------
 * Trimming
 * ---------------------------------------------------------------------- */

static void test_summary_true(void **state)
{
    (void)state;
    /* isSummary in R4: status, code, subject, effective[x], value[x]; not
     * text, category, note, referenceRange; "_status" goes with status;
     * numbers keep their text; the tag joins meta */
    trims("Observation", "_summary=true", OBS,
          "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"3\","
          "\"lastUpdated\":\"2024-05-06T10:00:00.000Z\",\"tag\":[" SUBSETTED "]},"
          "\"status\":\"final\",\"_status\":{\"extension\":[{\"url\":\"http://x\","
          "\"valueString\":\"s\"}]},\"code\":{\"text\":\"heart rate\"},"
          "\"subject\":{\"reference\":\"Patient/p1\"},\"effectiveDateTime\":\"2024-05-06\","
          "\"valueQuantity\":{\"value\":61.00,\"unit\":\"/min\"}}");
    /* mandatory but not summary: AuditEvent agent and source stay */
    trims("AuditEvent", "_summary=true",
          "{\"resourceType\":\"AuditEvent\",\"id\":\"a\",\"meta\":{\"versionId\":\"1\"},"
          "\"type\":{\"code\":\"rest\"},\"period\":{\"start\":\"2024\"},"
          "\"recorded\":\"2024-01-01T00:00:00Z\",\"agent\":[{\"requestor\":true}],"
          "\"source\":{\"observer\":{\"display\":\"x\"}},\"entity\":[{\"name\":\"e\"}]}",
          "{\"resourceType\":\"AuditEvent\",\"id\":\"a\",\"meta\":{\"versionId\":\"1\","
          "\"tag\":[" SUBSETTED "]},\"type\":{\"code\":\"rest\"},"
          "\"recorded\":\"2024-01-01T00:00:00Z\",\"agent\":[{\"requestor\":true}],"
          "\"source\":{\"observer\":{\"display\":\"x\"}}}");
    /* Patient: multipleBirth[x] and contact are not summary, deceased[x] is */
    trims("Patient", "_summary=true",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{},\"extension\":[{\"url\":\"u\","
          "\"valueBoolean\":true}],\"birthDate\":\"1970\",\"deceasedBoolean\":false,"
          "\"multipleBirthInteger\":2,\"contact\":[{\"gender\":\"male\"}]}",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"tag\":[" SUBSETTED "]},"
          "\"birthDate\":\"1970\",\"deceasedBoolean\":false}");
}

static void test_summary_text_data(void **state)
{
    (void)state;
    trims("Observation", "_summary=text", OBS,
          "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"3\","
          "\"lastUpdated\":\"2024-05-06T10:00:00.000Z\",\"tag\":[" SUBSETTED "]},"
          "\"text\":{\"status\":\"generated\",\"div\":\"<div "
          "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">x</div>\"},"
          "\"status\":\"final\",\"_status\":{\"extension\":[{\"url\":\"http://x\","
          "\"valueString\":\"s\"}]},\"code\":{\"text\":\"heart rate\"}}");
    trims("Observation", "_summary=data", OBS,
          "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"3\","
          "\"lastUpdated\":\"2024-05-06T10:00:00.000Z\",\"tag\":[" SUBSETTED "]},"
          "\"status\":\"final\",\"_status\":{\"extension\":[{\"url\":\"http://x\","
          "\"valueString\":\"s\"}]},\"category\":[{\"text\":\"vital-signs\"}],"
          "\"code\":{\"text\":\"heart rate\"},\"subject\":{\"reference\":\"Patient/p1\"},"
          "\"effectiveDateTime\":\"2024-05-06\",\"valueQuantity\":{\"value\":61.00,"
          "\"unit\":\"/min\"},\"note\":[{\"text\":\"n\"}],"
          "\"referenceRange\":[{\"low\":{\"value\":1E-2}}]}");
}

static void test_elements(void **state)
{
    (void)state;
    static const char HEAD[] =
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"3\","
        "\"lastUpdated\":\"2024-05-06T10:00:00.000Z\",\"tag\":[" SUBSETTED "]},"
        "\"status\":\"final\",\"_status\":{\"extension\":[{\"url\":\"http://x\","
        "\"valueString\":\"s\"}]}";
    char want[2048];
    /* status asked; code is mandatory; value absent */
    snprintf(want, sizeof want, "%s,\"code\":{\"text\":\"heart rate\"}}", HEAD);
    trims("Observation", "_elements=status", OBS, want);
    /* unknown names are ignored; id and meta asked for change nothing */
    trims("Observation", "_elements=status,nosuchelement,id,meta", OBS, want);
    /* a choice element by its name or by its typed name */
    snprintf(want, sizeof want,
             "%s,\"code\":{\"text\":\"heart rate\"},\"valueQuantity\":{\"value\":61.00,"
             "\"unit\":\"/min\"}}",
             HEAD);
    trims("Observation", "_elements=value", OBS, want);
    trims("Observation", "_elements=valueQuantity", OBS, want);
    /* valueString is no member of OBS; the type must match the member */
    snprintf(want, sizeof want, "%s,\"code\":{\"text\":\"heart rate\"}}", HEAD);
    trims("Observation", "_elements=valueString", OBS, want);
    /* non-summary elements may be asked for; order is the resource's */
    snprintf(want, sizeof want,
             "%s,\"code\":{\"text\":\"heart rate\"},\"note\":[{\"text\":\"n\"}],"
             "\"referenceRange\":[{\"low\":{\"value\":1E-2}}]}",
             HEAD);
    trims("Observation", "_elements=referenceRange,note", OBS, want);
    /* text by name */
    trims("Patient", "_elements=text",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"versionId\":\"1\"},"
          "\"text\":{\"status\":\"empty\",\"div\":\"<div>x</div>\"},\"gender\":\"male\"}",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"versionId\":\"1\","
          "\"tag\":[" SUBSETTED "]},\"text\":{\"status\":\"empty\",\"div\":\"<div>x</div>\"}}");
}

static void test_tags(void **state)
{
    (void)state;
    /* appended after the tags there are */
    trims("Patient", "_summary=true",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"versionId\":\"1\","
          "\"tag\":[{\"system\":\"urn:s\",\"code\":\"c\"}],\"profile\":[\"urn:p\"]}}",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"versionId\":\"1\","
          "\"tag\":[{\"system\":\"urn:s\",\"code\":\"c\"}," SUBSETTED "],"
          "\"profile\":[\"urn:p\"]}}");
    /* not twice */
    trims("Patient", "_summary=data",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"tag\":[{\"system\":"
          "\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\",\"code\":"
          "\"SUBSETTED\"}]}}",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"tag\":[{\"system\":"
          "\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\",\"code\":"
          "\"SUBSETTED\"}]}}");
    /* a SUBSETTED code of another system is another tag */
    trims("Patient", "_summary=data",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"tag\":[{\"system\":"
          "\"urn:other\",\"code\":\"SUBSETTED\"}]}}",
          "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"tag\":[{\"system\":"
          "\"urn:other\",\"code\":\"SUBSETTED\"}," SUBSETTED "]}}");
    /* no meta at all: one is added */
    trims("Device", "_summary=true", "{\"resourceType\":\"Device\",\"id\":\"d\"}",
          "{\"resourceType\":\"Device\",\"id\":\"d\",\"meta\":{\"tag\":[" SUBSETTED "]}}");
}

static void test_full_and_errors(void **state)
{
    (void)state;
    vl_subset_t s = VL_SUBSET_INIT;
    char *out = (char *)"x";
    size_t len = 7;
    /* full and count serve the stored bytes */
    trims("Observation", "", OBS, NULL);
    trims("Observation", "_summary=false", OBS, NULL);
    trims("Observation", "_summary=count", OBS, NULL);
    assert_int_equal(vl_fhir_subset("Observation", &s, "not json", 8, &out, &len), 0);
    assert_null(out);
    assert_int_equal(len, 0);
    /* a body that is not a JSON object */
    s.mode = VL_SUBSET_SUMMARY;
    assert_int_equal(vl_fhir_subset("Observation", &s, "not json", 8, &out, &len), -1);
    assert_null(out);
    assert_int_equal(vl_fhir_subset("Observation", &s, "[1]", 3, &out, &len), -1);
    assert_null(out);
    /* a type without a table keeps only resourceType, id and meta */
    trims("Basic", "_summary=true", "{\"resourceType\":\"Basic\",\"id\":\"b\",\"code\":{}}",
          "{\"resourceType\":\"Basic\",\"id\":\"b\",\"meta\":{\"tag\":[" SUBSETTED "]}}");
}

/* ------------------------------------------------------------------------
 * The generated tables
 * ---------------------------------------------------------------------- */

static unsigned flags_of(const char *type, const char *name)
{
    const vl_fhir_element_t *e = vl_fhir_elements_of(type);
    assert_non_null(e);
    for (; e->name; e++)
        if (!strcmp(e->name, name))
            return e->flags;
    fail_msg("%s.%s is not in the table", type, name);
    return 0;
}

static void test_tables(void **state)
{
    (void)state;
    size_t n = 0;
    /* every served type has one, with the inherited elements */
    for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++, n++) {
        const vl_fhir_element_t *e = vl_fhir_elements_of(t->name);
        if (!e)
            fail_msg("no element table for the served type %s", t->name);
        assert_int_equal(flags_of(t->name, "id"), VL_ELEMENT_SUMMARY);
        assert_int_equal(flags_of(t->name, "meta"), VL_ELEMENT_SUMMARY);
        assert_int_equal(flags_of(t->name, "text"), 0);
        for (; e->name; e++)
            assert_true(!strcmp(e->name, e->base) == !(e->flags & VL_ELEMENT_CHOICE));
    }
    size_t m = 0;
    for (const vl_fhir_type_elements_t *t = vl_fhir_type_elements; t->type; t++)
        m++;
    assert_int_equal(m, n);
    assert_null(vl_fhir_elements_of("Basic"));
    /* spot checks against the R4 definitions */
    assert_int_equal(flags_of("Observation", "status"), VL_ELEMENT_SUMMARY | VL_ELEMENT_MANDATORY);
    assert_int_equal(flags_of("Observation", "code"), VL_ELEMENT_SUMMARY | VL_ELEMENT_MANDATORY);
    assert_int_equal(flags_of("Observation", "valueQuantity"),
                     VL_ELEMENT_SUMMARY | VL_ELEMENT_CHOICE);
    assert_int_equal(flags_of("Observation", "note"), 0);
    assert_int_equal(flags_of("Observation", "referenceRange"), 0);
    assert_int_equal(flags_of("Observation", "category"), 0);
    assert_int_equal(flags_of("Consent", "scope"), VL_ELEMENT_SUMMARY | VL_ELEMENT_MANDATORY);
    assert_int_equal(flags_of("AuditEvent", "agent"), VL_ELEMENT_MANDATORY);
    assert_int_equal(flags_of("Patient", "multipleBirthBoolean"), VL_ELEMENT_CHOICE);
}

/* ------------------------------------------------------------------------
 * The HL7 R4 examples through every subset
 * ---------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* What design note 2 of subset.c keeps, written again from the table. */
static int kept(const char *type, const char *qs, const char *key)
{
    const char *name = key[0] == '_' ? key + 1 : key;
    unsigned f = 0;
    const char *base = name;
    if (!strcmp(name, "resourceType") || !strcmp(name, "id") || !strcmp(name, "meta"))
        return 1;
    for (const vl_fhir_element_t *e = vl_fhir_elements_of(type); e && e->name; e++)
        if (!strcmp(e->name, name)) {
            f = e->flags;
            base = e->base;
        }
    if (!strcmp(qs, "_summary=true"))
        return (f & (VL_ELEMENT_SUMMARY | VL_ELEMENT_MANDATORY)) != 0;
    if (!strcmp(qs, "_summary=text"))
        return !strcmp(name, "text") || (f & VL_ELEMENT_MANDATORY);
    if (!strcmp(qs, "_summary=data"))
        return strcmp(name, "text") != 0;
    /* _elements=status,value,identifier */
    return (f & VL_ELEMENT_MANDATORY) || !strcmp(name, "status") || !strcmp(base, "value") ||
           !strcmp(name, "identifier");
}

static void test_examples(void **state)
{
    (void)state;
    static const char *const modes[] = {"_summary=true", "_summary=text", "_summary=data",
                                        "_elements=status,value,identifier"};
    glob_t g;
    size_t checked = 0;
    assert_int_equal(glob(VL_TEST_DATA "/hl7-r4-examples/*.json", 0, NULL, &g), 0);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        size_t len = 0;
        char *body = slurp(g.gl_pathv[i], &len);
        vl_error_t err = VL_ERROR_INIT;
        assert_non_null(body);
        json_t *orig = vl_json_parse(body, len, NULL, &err);
        assert_non_null(orig);
        const char *type = json_string_value(json_object_get(orig, "resourceType"));
        assert_non_null(vl_fhir_elements_of(type));
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            vl_params_t p;
            vl_subset_t s;
            char *out;
            size_t out_len;
            const char *key;
            json_t *v;
            assert_int_equal(subset_of(modes[m], 1, &p, &s, &err), 0);
            assert_int_equal(vl_fhir_subset(type, &s, body, len, &out, &out_len), 0);
            assert_non_null(out);
            json_t *got = vl_json_parse(out, out_len, NULL, &err);
            if (!got)
                fail_msg("%s %s: not JSON: %s", g.gl_pathv[i], modes[m], out);
            /* exactly the members design note 2 keeps, unchanged */
            json_object_foreach (orig, key, v) {
                json_t *w = json_object_get(got, key);
                if (!kept(type, modes[m], key)) {
                    if (w)
                        fail_msg("%s %s: %s was kept", g.gl_pathv[i], modes[m], key);
                } else if (!w) {
                    fail_msg("%s %s: %s was removed", g.gl_pathv[i], modes[m], key);
                } else if (strcmp(key, "meta") && !json_equal(v, w)) {
                    fail_msg("%s %s: %s changed", g.gl_pathv[i], modes[m], key);
                }
            }
            json_object_foreach (got, key, v)
                if (strcmp(key, "meta") && !json_object_get(orig, key))
                    fail_msg("%s %s: %s was added", g.gl_pathv[i], modes[m], key);
            /* the SUBSETTED tag, once, after the example's own tags */
            json_t *tags = json_object_get(json_object_get(got, "meta"), "tag");
            json_t *old = json_object_get(json_object_get(orig, "meta"), "tag");
            size_t nold = json_array_size(old);
            assert_int_equal(json_array_size(tags), nold + 1);
            for (size_t k = 0; k < nold; k++)
                assert_true(json_equal(json_array_get(tags, k), json_array_get(old, k)));
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(tags, nold), "code")),
                "SUBSETTED");
            json_decref(got);
            free(out);
            vl_params_free(&p);
            checked++;
        }
        json_decref(orig);
        free(body);
    }
    globfree(&g);
    assert_true(checked >= 4 * 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_summary_true),
        cmocka_unit_test(test_summary_text_data),
        cmocka_unit_test(test_elements),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_full_and_errors),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
