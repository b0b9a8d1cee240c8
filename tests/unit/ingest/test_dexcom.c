/*
 * Unit tests for src/ingest/dexcom.c: Dexcom API v3 egvs responses.
 *
 *   - the sample tests/data/ingest/dexcom/egvs.json (written from the
 *     Dexcom docs, see SOURCE.txt): 10 records, 9 readings and 1 rejection
 *     (a null value), every reading checked by hand: measure, value, unit,
 *     UTC time ("Z" added to receiver times, app offsets kept), record id,
 *     device, source and the trend note; "high" and "low" readings carry no
 *     value and interpretation H / L, never the 400 the record holds;
 *   - per-record rejections: unit unknown, bad or missing systemTime,
 *     unlisted status, non-numeric value, a record that is not an object;
 *   - documents that are not egvs v3 responses (-1, 400): calibrations,
 *     events, v2, no records; and emit stopping the walk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitalog/ingest.h"
#include "vitalog/util.h"

#include "../support.h"

typedef struct got {
    vl_ingest_reading_t r[32];
    char why[32][256]; /* "" for a reading */
    size_t n, readings, rejections;
    size_t stop_at; /* emit returns -1 at this call (1-based); 0 never */
} got_t;

static int collect(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    got_t *g = ctx;
    if (g->n >= 32)
        fail_msg("more than 32 readings");
    g->r[g->n] = *r;
    snprintf(g->why[g->n], sizeof g->why[g->n], "%s", why ? why : "");
    if (why)
        g->rejections++;
    else
        g->readings++;
    g->n++;
    return g->stop_at && g->n == g->stop_at ? -1 : 0;
}

static json_t *parse(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    if (!j)
        fail_msg("does not parse: %s", vl_error_message(&err));
    return j;
}

static json_t *load_sample(void)
{
    char *text = test_read_file(VL_TEST_DATA "/ingest/dexcom/egvs.json", NULL);
    json_t *j;
    if (!text)
        fail_msg("cannot read egvs.json");
    j = parse(text);
    free(text);
    return j;
}

static int run_doc(json_t *doc, got_t *g, vl_error_t *err)
{
    int rc = vl_ingest_document(VL_INGEST_DEXCOM, doc, NULL, collect, g, err);
    json_decref(doc);
    return rc;
}

static const vl_ingest_reading_t *at(const got_t *g, const char *path)
{
    for (size_t i = 0; i < g->n; i++)
        if (!strcmp(g->r[i].path, path))
            return &g->r[i];
    fail_msg("no reading at %s", path);
    return NULL;
}

static void expect_reading(const vl_ingest_reading_t *r, const char *measure, const char *value,
                           const char *unit, const char *start, const char *record_id,
                           const char *note)
{
    assert_non_null(r->measure);
    assert_string_equal(r->measure->key, measure);
    if (value) {
        assert_int_equal(r->n_values, 1);
        assert_string_equal(r->values[0].loinc, r->measure->loinc);
        assert_string_equal(r->values[0].value, value);
        assert_string_equal(r->values[0].unit, unit);
        assert_string_equal(r->values[0].source_unit, unit);
        assert_null(r->interpretation);
    } else {
        assert_int_equal(r->n_values, 0);
    }
    assert_string_equal(r->start, start);
    assert_string_equal(r->end, "");
    assert_string_equal(r->record_id, record_id);
    assert_string_equal(r->note, note);
    assert_string_equal(r->statistic, "");
}

static void expect_device(const vl_ingest_reading_t *r, const char *model, const char *serial,
                          const char *name, const char *source)
{
    assert_string_equal(r->device.manufacturer, "Dexcom");
    assert_string_equal(r->device.model, model);
    assert_string_equal(r->device.serial, serial);
    assert_string_equal(r->device.name, name);
    assert_string_equal(r->source_name, source);
}

/* ------------------------------------------------------------------------
 * The sample
 * ---------------------------------------------------------------------- */

static void test_sample_counts(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(run_doc(load_sample(), &g, &err), 0);
    assert_int_equal(g.n, 10);
    assert_int_equal(g.readings, 9);
    assert_int_equal(g.rejections, 1);
    /* records[3]: value null, status null */
    assert_string_equal(g.r[3].path, "/records/3");
    assert_string_equal(g.r[3].measure->key, "cgm-glucose");
    assert_string_equal(g.why[3], "value is null and status is not high or low");
    for (size_t i = 0; i < g.n; i++) {
        char path[32];
        snprintf(path, sizeof path, "/records/%zu", i);
        assert_string_equal(g.r[i].path, path);
    }
}

static void test_sample_receiver(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(run_doc(load_sample(), &g, &err), 0);
    /* receiver records: systemTime has no offset and is UTC (the docs) */
    r = at(&g, "/records/0");
    expect_reading(r, "cgm-glucose", "112", "mg/dL", "2024-03-01T08:00:00Z",
                   "0d2f4a6c-8e1b-4c3d-95f7-1a3c5e7a9b01", "trend flat, 0.3 mg/dL/min");
    assert_string_equal(r->values[0].loinc, "99504-3");
    expect_device(r, "G6", "8GM7TD", "Dexcom G6 (receiver)", "receiver");
    r = at(&g, "/records/1");
    expect_reading(r, "cgm-glucose", "118", "mg/dL", "2024-03-01T08:05:00Z",
                   "1e3a5b7c-9d2f-4e4a-a6b8-2c4e6f8a0b12", "trend fortyFiveUp, 1.2 mg/dL/min");
    r = at(&g, "/records/2");
    expect_reading(r, "cgm-glucose", "131", "mg/dL", "2024-03-01T08:10:00Z",
                   "2f4b6c8d-0e3a-4f5b-b7c9-3d5f7a9b1c23", "trend singleUp, 2.6 mg/dL/min");
}

static void test_sample_high_low(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(run_doc(load_sample(), &g, &err), 0);
    /* "high" with value 400: the limit is not stored as a number */
    r = at(&g, "/records/4");
    expect_reading(r, "cgm-glucose", NULL, NULL, "2024-03-01T12:30:00Z",
                   "4b6d8e0f-2a5c-4b7d-99e1-5f7b9c1d3e45", "trend singleUp, 2.1 mg/dL/min");
    assert_non_null(r->interpretation);
    assert_string_equal(r->interpretation, "H");
    assert_string_equal(r->values[0].value, "");
    expect_device(r, "G6", "8GM7TD", "Dexcom G6 (receiver)", "receiver");
    /* "low" with value null */
    r = at(&g, "/records/5");
    expect_reading(r, "cgm-glucose", NULL, NULL, "2024-03-01T15:45:00Z",
                   "5c7e9f1a-3b6d-4c8e-8af2-6a8c0d2e4f56", "trend doubleDown, -3.4 mg/dL/min");
    assert_string_equal(r->interpretation, "L");
}

static void test_sample_app_mmol(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(run_doc(load_sample(), &g, &err), 0);
    /* iOS app records: systemTime with its UTC offset, kept as sent */
    r = at(&g, "/records/6");
    expect_reading(r, "cgm-glucose-molar", "6.2", "mmol/L", "2024-03-02T07:00:00+00:00",
                   "6d8f0a2b-4c7e-4d9f-9b03-7b9d1e3f5a67", "trend singleDown, -0.11 mmol/L/min");
    assert_string_equal(r->values[0].loinc, "105272-9");
    expect_device(r, "G7", "3K8F2N", "Dexcom G7 (iOS)", "Dexcom G7");
    r = at(&g, "/records/7"); /* trend unknown, no rate */
    expect_reading(r, "cgm-glucose-molar", "5.8", "mmol/L", "2024-03-02T07:05:00+00:00",
                   "7e9a1b3c-5d8f-4e0a-8c14-8c0e2f4a6b78", "trend unknown");
    r = at(&g, "/records/8"); /* status unknown with a value; trend none */
    expect_reading(r, "cgm-glucose-molar", "5.6", "mmol/L", "2024-03-02T07:10:00+00:00",
                   "8f0b2c4d-6e9a-4f1b-9d25-9d1f3a5b7c89", "");
    r = at(&g, "/records/9");
    expect_reading(r, "cgm-glucose-molar", "5.5", "mmol/L", "2024-03-02T07:15:00+00:00",
                   "9a1c3d5e-7f0b-4a2c-8e36-0e2a4b6c8d9a", "trend flat, -0.02 mmol/L/min");
}

static void test_sample_twice(void **state)
{
    got_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(run_doc(load_sample(), a, &err), 0);
    assert_int_equal(run_doc(load_sample(), b, &err), 0);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->r[i].start, b->r[i].start);
        assert_string_equal(a->r[i].record_id, b->r[i].record_id);
        assert_string_equal(a->r[i].device.serial, b->r[i].device.serial);
        assert_string_equal(a->r[i].values[0].value, b->r[i].values[0].value);
    }
    free(a);
    free(b);
}

/* ------------------------------------------------------------------------
 * Records
 * ---------------------------------------------------------------------- */

/* One record with `fields` (JSON members) in an egvs response. */
#define DOC(fields)                                                                                \
    "{\"recordType\": \"egv\", \"recordVersion\": \"3.0\", \"userId\": \"u\", \"records\": "       \
    "[{" fields "}]}"
#define OK_FIELDS "\"recordId\": \"r1\", \"systemTime\": \"2024-03-01T08:00:00\", "

static void run_one(const char *text, got_t *g)
{
    vl_error_t err = VL_ERROR_INIT;
    memset(g, 0, sizeof *g);
    if (run_doc(parse(text), g, &err) != 0)
        fail_msg("rejected as a whole: %s", vl_error_message(&err));
    assert_int_equal(g->n, 1);
}

static void expect_rejected(const char *text, const char *why)
{
    got_t g;
    run_one(text, &g);
    assert_int_equal(g.rejections, 1);
    if (!strstr(g.why[0], why))
        fail_msg("why \"%s\" does not say \"%s\"", g.why[0], why);
}

static void test_records(void **state)
{
    got_t g;
    (void)state;
    /* the bare minimum: no device fields, no trend */
    run_one(DOC(OK_FIELDS "\"value\": 99, \"unit\": \"mg/dL\""), &g);
    expect_reading(&g.r[0], "cgm-glucose", "99", "mg/dL", "2024-03-01T08:00:00Z", "r1", "");
    expect_device(&g.r[0], "", "", "Dexcom", "");
    /* a fraction of a second and an explicit Z are kept */
    run_one(DOC("\"systemTime\": \"2024-03-01T08:00:00.250Z\", \"value\": 99, \"unit\": "
                "\"mg/dL\", \"transmitterGeneration\": \"g6+\", \"displayDevice\": \"android\""),
            &g);
    assert_string_equal(g.r[0].start, "2024-03-01T08:00:00.250Z");
    assert_string_equal(g.r[0].record_id, "");
    expect_device(&g.r[0], "G6+", "", "Dexcom G6+ (android)", "");
    /* an offset is kept as sent: the same instant */
    run_one(DOC("\"systemTime\": \"2024-03-01T00:00:00-08:00\", \"value\": 99, \"unit\": "
                "\"mg/dL\""),
            &g);
    assert_string_equal(g.r[0].start, "2024-03-01T00:00:00-08:00");
}

static void test_generations(void **state)
{
    static const struct {
        const char *gen, *model, *name;
    } cases[] = {
        {"g4", "G4", "Dexcom G4 (receiver)"},          {"g7", "G7", "Dexcom G7 (receiver)"},
        {"dexcomPro", "Pro", "Dexcom Pro (receiver)"}, {"unknown", "", "Dexcom (receiver)"},
        {"g8x", "G8x", "Dexcom G8x (receiver)"},
    };
    char text[512];
    got_t g;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text,
                 DOC(OK_FIELDS "\"value\": 99, \"unit\": \"mg/dL\", \"transmitterId\": null, "
                               "\"transmitterGeneration\": \"%s\", \"displayDevice\": "
                               "\"receiver\""),
                 cases[i].gen);
        run_one(text, &g);
        expect_device(&g.r[0], cases[i].model, "", cases[i].name, "");
    }
}

static void test_bad_records(void **state)
{
    (void)state;
    expect_rejected(DOC(OK_FIELDS "\"value\": 99, \"unit\": \"unknown\""),
                    "unit \"unknown\" is not mg/dL or mmol/L");
    expect_rejected(DOC(OK_FIELDS "\"value\": 99"), "unit \"(none)\" is not mg/dL or mmol/L");
    expect_rejected(DOC(OK_FIELDS "\"value\": 99, \"unit\": \"mg/dl/min\""), "is not mg/dL");
    expect_rejected(DOC("\"value\": 99, \"unit\": \"mg/dL\""), "systemTime is missing");
    expect_rejected(DOC("\"systemTime\": \"2024-03-01\", \"value\": 99, \"unit\": \"mg/dL\""),
                    "not an ISO 8601 date-time");
    expect_rejected(DOC("\"systemTime\": \"2024-02-30T08:00:00\", \"value\": 99, \"unit\": "
                        "\"mg/dL\""),
                    "not an ISO 8601 date-time");
    expect_rejected(DOC("\"systemTime\": 1709280000, \"value\": 99, \"unit\": \"mg/dL\""),
                    "systemTime is missing or not");
    expect_rejected(DOC(OK_FIELDS "\"value\": 99, \"unit\": \"mg/dL\", \"status\": \"HIGH\""),
                    "status is not null");
    expect_rejected(DOC(OK_FIELDS "\"value\": 99, \"unit\": \"mg/dL\", \"status\": 1"),
                    "status is not null");
    expect_rejected(DOC(OK_FIELDS "\"value\": \"high\", \"unit\": \"mg/dL\""),
                    "value is not a number");
    expect_rejected(DOC(OK_FIELDS "\"value\": true, \"unit\": \"mg/dL\""), "value is not a number");
    expect_rejected(DOC(OK_FIELDS "\"unit\": \"mmol/L\", \"status\": \"ok\""),
                    "value is null and status is not high or low");
    expect_rejected(DOC(OK_FIELDS "\"value\": null, \"unit\": \"mmol/L\", \"status\": "
                                  "\"unknown\""),
                    "value is null and status is not high or low");
    expect_rejected("{\"recordType\": \"egv\", \"recordVersion\": \"3.0\", \"records\": [7]}",
                    "an EGV record is a JSON object");
}

static void test_high_low_any_value(void **state)
{
    got_t g;
    (void)state;
    /* high/low: no value whatever `value` holds, mmol/L too */
    run_one(DOC(OK_FIELDS "\"value\": null, \"unit\": \"mmol/L\", \"status\": \"high\", "
                          "\"trend\": \"none\""),
            &g);
    expect_reading(&g.r[0], "cgm-glucose-molar", NULL, NULL, "2024-03-01T08:00:00Z", "r1", "");
    assert_string_equal(g.r[0].interpretation, "H");
    run_one(DOC(OK_FIELDS "\"value\": 2.2, \"unit\": \"mmol/L\", \"status\": \"low\", \"trend\": "
                          "\"rateOutOfRange\", \"trendRate\": null, \"rateUnit\": \"mmol/L/min\""),
            &g);
    expect_reading(&g.r[0], "cgm-glucose-molar", NULL, NULL, "2024-03-01T08:00:00Z", "r1",
                   "trend rateOutOfRange");
    assert_string_equal(g.r[0].interpretation, "L");
    /* a rate without a known unit is noted bare; an unlisted trend not at all */
    run_one(DOC(OK_FIELDS "\"value\": 140, \"unit\": \"mg/dL\", \"trend\": \"doubleUp\", "
                          "\"trendRate\": 3.5, \"rateUnit\": \"unknown\""),
            &g);
    assert_string_equal(g.r[0].note, "trend doubleUp, 3.5");
    run_one(DOC(OK_FIELDS "\"value\": 140, \"unit\": \"mg/dL\", \"trend\": \"sideways\", "
                          "\"trendRate\": 3.5"),
            &g);
    assert_string_equal(g.r[0].note, "");
}

/* ------------------------------------------------------------------------
 * Documents
 * ---------------------------------------------------------------------- */

static void expect_not_format(const char *text, const char *why)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(run_doc(parse(text), &g, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(g.n, 0);
    if (!strstr(vl_error_message(&err), why))
        fail_msg("\"%s\" does not say \"%s\"", vl_error_message(&err), why);
    vl_error_clear(&err);
}

static void test_documents(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    expect_not_format(
        "{\"recordType\": \"calibration\", \"recordVersion\": \"3.0\", "
        "\"records\": [{\"recordId\": \"c\", \"value\": 123, \"unit\": \"mg/dL\"}]}",
        "Dexcom \"calibration\" records are not taken: only estimated glucose values");
    expect_not_format("{\"recordType\": \"event\", \"recordVersion\": \"3.0\", \"records\": []}",
                      "only estimated glucose values");
    expect_not_format("{\"recordType\": \"egv\", \"recordVersion\": \"2.0\", \"records\": []}",
                      "recordVersion \"2.0\" is not taken: only 3.x");
    expect_not_format("{\"recordType\": \"egv\", \"recordVersion\": \"30\", \"records\": []}",
                      "only 3.x");
    expect_not_format("{\"recordType\": \"egv\", \"records\": []}", "recordVersion \"(none)\"");
    expect_not_format("{\"recordType\": \"egv\", \"recordVersion\": \"3.0\"}",
                      "a dexcom document is a Dexcom API v3 egvs response");
    expect_not_format("{\"unit\": \"mg/dL\", \"egvs\": []}", "egvs response");
    expect_not_format("[{\"recordType\": \"egv\"}]", "egvs response");
    /* 3.1 and an empty list: fine, nothing */
    assert_int_equal(
        run_doc(parse("{\"recordType\": \"egv\", \"recordVersion\": \"3.1\", \"records\": []}"), &g,
                &err),
        0);
    assert_int_equal(g.n, 0);
}

static void test_emit_stops(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    g.stop_at = 4; /* the rejection of records[3] */
    assert_int_equal(run_doc(load_sample(), &g, &err), -1);
    assert_int_equal(err.status, 0);
    assert_int_equal(g.n, 4);
}

static void test_mapping(void **state)
{
    const vl_ingest_mapping_t *map = vl_ingest_mappings(VL_INGEST_DEXCOM);
    size_t rows = 0;
    (void)state;
    for (; map->source; map++, rows++) {
        const vl_ingest_measure_t *m = vl_ingest_measure(map->measure);
        assert_non_null(m);
        assert_string_equal(m->unit, map->ucum);
        assert_int_equal(m->category, VL_CAT_LABORATORY);
        assert_string_equal(map->time_rule, "instant");
    }
    assert_int_equal(rows, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_counts),      cmocka_unit_test(test_sample_receiver),
        cmocka_unit_test(test_sample_high_low),    cmocka_unit_test(test_sample_app_mmol),
        cmocka_unit_test(test_sample_twice),       cmocka_unit_test(test_records),
        cmocka_unit_test(test_generations),        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_high_low_any_value), cmocka_unit_test(test_documents),
        cmocka_unit_test(test_emit_stops),         cmocka_unit_test(test_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
