/*
 * Unit tests for src/ingest/healthconnect.c: Android Health Connect records
 * in the JSON form of the Jetpack record classes.
 *
 *   - the samples in tests/data/ingest/healthconnect (written from the
 *     Android reference pages, see SOURCE.txt): exact counts of readings and
 *     rejections, and every reading's measure, value, unit, time, record id,
 *     device and source checked by hand against the file;
 *   - times: the instant written in the record's zone offset across days,
 *     years and a leap day, fractions kept, no offset kept as sent, instants
 *     without a zone and bad offsets rejected;
 *   - units: exactly one unit property per value, unknown ones rejected;
 *   - SleepSession: sums of sleeping stages (min when exact, else s), bad,
 *     overlapping and outlying stages rejected;
 *   - documents that are not of the format (-1, 400), records that are not
 *     records, metadata ids that do not fit, and emit stopping the walk;
 *   - every mapping row names a known measure and a unit of its dimension.
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

/* ------------------------------------------------------------------------
 * Helpers: run a document, collect what it emits
 * ---------------------------------------------------------------------- */

typedef struct got {
    vl_ingest_reading_t r[64];
    char why[64][256]; /* "" for a reading */
    size_t n, readings, rejections;
    size_t stop_at; /* emit returns -1 at this call (1-based); 0 never */
} got_t;

static int collect(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    got_t *g = ctx;
    if (g->n >= 64)
        fail_msg("more than 64 readings");
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

static json_t *load(const char *name)
{
    char path[512];
    char *text;
    json_t *j;
    snprintf(path, sizeof path, "%s/ingest/healthconnect/%s", VL_TEST_DATA, name);
    text = test_read_file(path, NULL);
    if (!text)
        fail_msg("cannot read %s", path);
    j = parse(text);
    free(text);
    return j;
}

/* Runs `doc` (consumed) through vl_ingest_document; returns its result. */
static int run_doc(json_t *doc, got_t *g, vl_error_t *err)
{
    int rc = vl_ingest_document(VL_INGEST_HEALTHCONNECT, doc, NULL, collect, g, err);
    json_decref(doc);
    return rc;
}

/* Runs an inline document that must be accepted as a whole. */
static void run_ok(const char *text, got_t *g)
{
    vl_error_t err = VL_ERROR_INIT;
    memset(g, 0, sizeof *g);
    if (run_doc(parse(text), g, &err) != 0)
        fail_msg("rejected as a whole: %s", vl_error_message(&err));
}

/* The one rejection of an inline document, whose why must contain `part`. */
static void expect_rejected(const char *text, const char *part)
{
    got_t g;
    run_ok(text, &g);
    assert_int_equal(g.readings, 0);
    assert_int_equal(g.rejections, 1);
    if (!strstr(g.why[0], part))
        fail_msg("why \"%s\" does not say \"%s\"", g.why[0], part);
}

static const vl_ingest_reading_t *at(const got_t *g, const char *path)
{
    for (size_t i = 0; i < g->n; i++)
        if (!strcmp(g->r[i].path, path))
            return &g->r[i];
    fail_msg("no reading at %s", path);
    return NULL;
}

/* A one-value reading: measure key, value text, UCUM, source unit, times. */
static void expect_one(const vl_ingest_reading_t *r, const char *measure, const char *value,
                       const char *ucum, const char *source_unit, const char *start,
                       const char *end)
{
    assert_non_null(r->measure);
    assert_string_equal(r->measure->key, measure);
    assert_int_equal(r->n_values, 1);
    assert_string_equal(r->values[0].loinc, r->measure->loinc);
    assert_string_equal(r->values[0].value, value);
    assert_string_equal(r->values[0].unit, ucum);
    assert_string_equal(r->values[0].source_unit, source_unit);
    assert_string_equal(r->start, start);
    assert_string_equal(r->end, end);
    assert_null(r->interpretation);
}

static void expect_device(const vl_ingest_reading_t *r, const char *man, const char *model,
                          const char *name)
{
    assert_string_equal(r->device.manufacturer, man);
    assert_string_equal(r->device.model, model);
    assert_string_equal(r->device.name, name);
    assert_string_equal(r->device.serial, "");
}

/* An inline instant record of `type` with `fields` (JSON members). */
#define REC(type, fields)                                                                          \
    "{\"recordType\": \"" type "\", \"metadata\": {\"id\": \"m1\"}, " fields "}"

/* ------------------------------------------------------------------------
 * The samples
 * ---------------------------------------------------------------------- */

static void test_records_counts(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(run_doc(load("records.json"), &g, &err), 0);
    /* 14 records: HeartRate 3 samples + 12 single readings, Nutrition rejected */
    assert_int_equal(g.readings, 15);
    assert_int_equal(g.rejections, 1);
    assert_string_equal(g.r[15].path, "/records/13");
    assert_null(g.r[15].measure);
    assert_non_null(strstr(g.why[15], "unknown recordType \"Nutrition\""));
}

static void test_records_heart_rate(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(run_doc(load("records.json"), &g, &err), 0);
    r = at(&g, "/records/0/samples/0");
    expect_one(r, "heart-rate", "72", "/min", "", "2024-03-01T14:00:00+01:00", "");
    assert_string_equal(r->values[0].loinc, "8867-4");
    assert_string_equal(r->record_id, "c3a5e0a2-6f1d-4b8e-9d2a-1f0e5b7c9a10#2024-03-01T13:00:00Z");
    assert_string_equal(r->source_name, "com.google.android.apps.fitness");
    expect_device(r, "Google", "Pixel Watch 2", "Google Pixel Watch 2 (watch)");
    r = at(&g, "/records/0/samples/1");
    expect_one(r, "heart-rate", "75", "/min", "", "2024-03-01T14:00:05+01:00", "");
    r = at(&g, "/records/0/samples/2");
    expect_one(r, "heart-rate", "78", "/min", "", "2024-03-01T14:00:10.500+01:00", "");
    assert_string_equal(r->record_id,
                        "c3a5e0a2-6f1d-4b8e-9d2a-1f0e5b7c9a10#2024-03-01T13:00:10.500Z");
}

static void test_records_values(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(run_doc(load("records.json"), &g, &err), 0);

    r = at(&g, "/records/1");
    expect_one(r, "step-count", "1234", "{steps}", "", "2024-03-01T14:00:00+01:00",
               "2024-03-01T15:00:00+01:00");
    assert_string_equal(r->record_id, "8f6a2d4e-1b3c-4e5f-a6b7-c8d9e0f1a2b3");
    expect_device(r, "Google", "Pixel 8", "Google Pixel 8 (phone)");

    r = at(&g, "/records/2");
    assert_string_equal(r->measure->key, "blood-pressure");
    assert_int_equal(r->n_values, 2);
    assert_string_equal(r->values[0].loinc, "8480-6");
    assert_string_equal(r->values[0].value, "128.0");
    assert_string_equal(r->values[0].unit, "mm[Hg]");
    assert_string_equal(r->values[0].source_unit, "inMillimetersOfMercury");
    assert_string_equal(r->values[1].loinc, "8462-4");
    assert_string_equal(r->values[1].value, "82.0");
    assert_string_equal(r->start, "2024-03-01T02:30:00-05:00");
    assert_string_equal(r->end, "");
    assert_string_equal(r->note, "body position sitting down; measured at left upper arm");
    expect_device(r, "OMRON", "HEM-7361T", "OMRON HEM-7361T");
    assert_string_equal(r->source_name, "com.omronhealthcare.omronconnect");

    r = at(&g, "/records/3");
    expect_one(r, "blood-glucose", "94.0", "mg/dL", "inMilligramsPerDeciliter",
               "2024-03-01T07:45:00+01:00", "");
    assert_string_equal(r->values[0].loinc, "41653-7");
    assert_string_equal(r->note,
                        "specimen capillary blood; relation to meal fasting; meal breakfast");
    expect_device(r, "Roche", "Accu-Chek Guide", "Roche Accu-Chek Guide (consumer medical device)");

    r = at(&g, "/records/4"); /* interstitial fluid: a CGM sensor reading */
    expect_one(r, "cgm-glucose-molar", "6.4", "mmol/L", "inMillimolesPerLiter",
               "2024-03-01T13:00:00+01:00", "");
    assert_string_equal(r->values[0].loinc, "105272-9");
    assert_string_equal(r->note, "specimen interstitial fluid");
    expect_device(r, "Abbott", "FreeStyle Libre 3", "Abbott FreeStyle Libre 3");

    r = at(&g, "/records/5");
    expect_one(r, "oxygen-saturation", "97.5", "%", "value", "2024-03-01T04:12:00+01:00", "");

    r = at(&g, "/records/6");
    expect_one(r, "body-temperature", "98.6", "[degF]", "inFahrenheit", "2024-03-01T10:20:00-08:00",
               "");
    assert_string_equal(r->note, "measured at mouth");

    r = at(&g, "/records/7");
    expect_one(r, "body-weight", "70.45", "kg", "inKilograms", "2024-03-01T07:05:00+01:00", "");
    expect_device(r, "Withings", "Body+", "Withings Body+ (scale)");

    r = at(&g, "/records/8"); /* no zoneOffset, no id, no device */
    expect_one(r, "body-height", "1.78", "m", "inMeters", "2024-02-15T09:00:00Z", "");
    assert_string_equal(r->record_id, "height-2024-02-15");
    expect_device(r, "", "", "");
    assert_string_equal(r->source_name, "com.example.patientapp");

    r = at(&g, "/records/9");
    expect_one(r, "respiratory-rate", "14.5", "/min", "", "2024-03-01T03:00:00+01:00", "");

    r = at(&g, "/records/10");
    expect_one(r, "resting-heart-rate", "58", "/min", "", "2024-03-01T06:00:00+01:00", "");
    expect_device(r, "Google", "Fitbit Charge 6", "Google Fitbit Charge 6 (fitness band)");
    assert_string_equal(r->source_name, "com.fitbit.FitbitMobile");
}

static void test_records_sleep(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(run_doc(load("records.json"), &g, &err), 0);
    /* 65 + 50 + 30 + 136 + 50 + 75 + 55 min asleep; awake, awake in bed and
     * out of bed not counted; -08:00 takes the start back to the leap day */
    r = at(&g, "/records/11");
    expect_one(r, "sleep-duration", "461", "min", "min", "2024-02-29T22:30:00-08:00",
               "2024-03-01T06:45:00-08:00");
    assert_string_equal(r->values[0].loinc, "93832-4");
    expect_device(r, "Oura", "Ring Gen3", "Oura Ring Gen3 (ring)");
    /* no stages: the session, 40 min 30 s */
    r = at(&g, "/records/12");
    expect_one(r, "sleep-duration", "40.5", "min", "min", "2024-03-02T22:00:00+09:00",
               "2024-03-02T22:40:30+09:00");
}

static void test_single_and_array(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(run_doc(load("single.json"), &g, &err), 0);
    assert_int_equal(g.readings, 1);
    assert_int_equal(g.rejections, 0);
    /* the class name as recordType; 23:30Z + 01:00 is the next year */
    expect_one(&g.r[0], "body-weight", "155.2", "[lb_av]", "inPounds", "2024-01-01T00:30:00+01:00",
               "");
    assert_string_equal(g.r[0].path, "/");

    memset(&g, 0, sizeof g);
    assert_int_equal(run_doc(load("array.json"), &g, &err), 0);
    assert_int_equal(g.readings, 1); /* the HeartRate has no samples */
    assert_int_equal(g.rejections, 0);
    expect_one(&g.r[0], "step-count", "412", "{steps}", "", "2024-03-03T19:30:00-03:30",
               "2024-03-03T20:30:00-03:30");
    assert_string_equal(g.r[0].path, "/0");
}

/* The same document twice gives the same readings, byte for byte. */
static void test_deterministic(void **state)
{
    got_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(run_doc(load("records.json"), a, &err), 0);
    assert_int_equal(run_doc(load("records.json"), b, &err), 0);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->r[i].start, b->r[i].start);
        assert_string_equal(a->r[i].record_id, b->r[i].record_id);
        assert_string_equal(a->r[i].values[0].value, b->r[i].values[0].value);
    }
    /* and no two readings share measure, time and record id */
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = i + 1; j < a->n; j++)
            assert_false(a->r[i].measure && a->r[i].measure == a->r[j].measure &&
                         !strcmp(a->r[i].start, a->r[j].start) &&
                         !strcmp(a->r[i].record_id, a->r[j].record_id));
    free(a);
    free(b);
}

/* ------------------------------------------------------------------------
 * Times
 * ---------------------------------------------------------------------- */

static void expect_time(const char *time, const char *zone, const char *want)
{
    char text[256];
    got_t g;
    snprintf(
        text, sizeof text,
        REC("Weight", "\"time\": \"%s\", \"zoneOffset\": %s, \"weight\": {\"inGrams\": 70500}"),
        time, zone);
    run_ok(text, &g);
    if (g.readings != 1)
        fail_msg("%s %s rejected: %s", time, zone, g.why[0]);
    assert_string_equal(g.r[0].start, want);
    assert_string_equal(g.r[0].values[0].unit, "g");
}

static void test_times(void **state)
{
    (void)state;
    expect_time("2024-03-01T13:00:00Z", "\"+01:00\"", "2024-03-01T14:00:00+01:00");
    expect_time("2024-03-01T13:00:00Z", "\"Z\"", "2024-03-01T13:00:00Z");
    expect_time("2024-03-01T13:00:00Z", "\"+00:00\"", "2024-03-01T13:00:00+00:00");
    expect_time("2024-03-01T13:00:00Z", "null", "2024-03-01T13:00:00Z");
    expect_time("2024-03-01T02:00:00Z", "\"-05:30\"", "2024-02-29T20:30:00-05:30");
    expect_time("2023-02-28T20:00:00Z", "\"+05:45\"", "2023-03-01T01:45:00+05:45");
    expect_time("2024-12-31T10:30:00Z", "\"+14:00\"", "2025-01-01T00:30:00+14:00");
    expect_time("2024-01-01T05:00:00.123456789Z", "\"-12:00\"",
                "2023-12-31T17:00:00.123456789-12:00");
    expect_time("1969-12-31T23:59:59.5Z", "\"+01:00\"", "1970-01-01T00:59:59.5+01:00");
    /* an instant sent with an offset is the same instant */
    expect_time("2024-03-01T14:00:00+01:00", "\"-01:00\"", "2024-03-01T12:00:00-01:00");
    expect_time("2024-03-01T14:00:00+01:00", "null", "2024-03-01T14:00:00+01:00");
}

static void test_bad_times(void **state)
{
    static const char *const bad_instants[] = {
        "2024-03-01T13:00:00", /* no zone: never read as UTC */
        "2024-03-01 13:00:00Z",
        "2024-03-01T13:00Z",
        "2024-02-30T13:00:00Z",
        "2024-03-01T24:00:00Z",
        "2024-03-01T13:00:00.Z",
        "2024-03-01T13:00:00.1234567890Z",
        "2024-03-01",
        "1709298000",
        "2024-03-01T13:00:00+1:00",
        "2024-03-01T13:00:00+15:00",
    };
    static const char *const bad_zones[] = {
        "\"+1:00\"", "\"+01:00:30\"", "\"+15:00\"", "\"+14:30\"", "\"UTC\"", "3600", "\"01:00\"",
    };
    char text[256];
    (void)state;
    for (size_t i = 0; i < sizeof bad_instants / sizeof bad_instants[0]; i++) {
        snprintf(text, sizeof text,
                 REC("Weight", "\"time\": \"%s\", \"weight\": {\"inKilograms\": 70}"),
                 bad_instants[i]);
        expect_rejected(text, "is not an ISO 8601 instant with a zone");
    }
    for (size_t i = 0; i < sizeof bad_zones / sizeof bad_zones[0]; i++) {
        snprintf(text, sizeof text,
                 REC("Weight", "\"time\": \"2024-03-01T13:00:00Z\", \"zoneOffset\": %s, "
                               "\"weight\": {\"inKilograms\": 70}"),
                 bad_zones[i]);
        expect_rejected(text, "zoneOffset is not a zone offset");
    }
    expect_rejected(REC("Weight", "\"weight\": {\"inKilograms\": 70}"), "time is missing");
    expect_rejected(REC("Steps", "\"startTime\": \"2024-03-01T14:00:00Z\", \"endTime\": "
                                 "\"2024-03-01T13:00:00Z\", \"count\": 5"),
                    "endTime is not after startTime");
    expect_rejected(REC("Steps", "\"startTime\": \"2024-03-01T14:00:00Z\", \"endTime\": "
                                 "\"2024-03-01T14:00:00Z\", \"count\": 5"),
                    "endTime is not after startTime");
    expect_rejected(REC("Steps", "\"startTime\": \"2024-03-01T13:00:00Z\", \"count\": 5"),
                    "endTime is missing");
    expect_rejected(REC("Steps", "\"startTime\": \"2024-03-01T13:00:00Z\", \"endTime\": "
                                 "\"2024-03-01T14:00:00Z\", \"endZoneOffset\": \"+25:00\", "
                                 "\"count\": 5"),
                    "endZoneOffset is not a zone offset");
}

/* ------------------------------------------------------------------------
 * Units and values
 * ---------------------------------------------------------------------- */

#define T "\"time\": \"2024-03-01T13:00:00Z\", "

static void test_units(void **state)
{
    got_t g;
    (void)state;
    run_ok(REC("Height", T "\"height\": {\"inInches\": 70.1}"), &g);
    expect_one(&g.r[0], "body-height", "70.1", "[in_i]", "inInches", "2024-03-01T13:00:00Z", "");
    run_ok(REC("Height", T "\"height\": {\"inFeet\": 5.75}"), &g);
    expect_one(&g.r[0], "body-height", "5.75", "[ft_i]", "inFeet", "2024-03-01T13:00:00Z", "");
    run_ok(REC("Weight", T "\"weight\": {\"inOunces\": 2480}"), &g);
    expect_one(&g.r[0], "body-weight", "2480", "[oz_av]", "inOunces", "2024-03-01T13:00:00Z", "");
    run_ok(REC("BodyTemperature", T "\"temperature\": {\"inCelsius\": 36.85}, "
                                    "\"measurementLocation\": 0"),
           &g);
    expect_one(&g.r[0], "body-temperature", "36.85", "Cel", "inCelsius", "2024-03-01T13:00:00Z",
               "");
    assert_string_equal(g.r[0].note, "");
    run_ok(REC("BloodGlucose", T "\"level\": {\"inMillimolesPerLiter\": 5.3}"), &g);
    expect_one(&g.r[0], "blood-glucose-molar", "5.3", "mmol/L", "inMillimolesPerLiter",
               "2024-03-01T13:00:00Z", "");
    run_ok(REC("BloodGlucose", T "\"level\": {\"inMilligramsPerDeciliter\": 180}, "
                                 "\"specimenSource\": 1, \"relationToMeal\": 4"),
           &g);
    expect_one(&g.r[0], "cgm-glucose", "180", "mg/dL", "inMilligramsPerDeciliter",
               "2024-03-01T13:00:00Z", "");
    assert_string_equal(g.r[0].note, "specimen interstitial fluid; relation to meal after meal");
    /* an unlisted constant is noted by number */
    run_ok(REC("BloodPressure", T "\"systolic\": {\"inMillimetersOfMercury\": 120}, "
                                  "\"diastolic\": {\"inMillimetersOfMercury\": 80}, "
                                  "\"bodyPosition\": 9"),
           &g);
    assert_int_equal(g.readings, 1);
    assert_string_equal(g.r[0].note, "bodyPosition 9");
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_rejected(REC("Weight", T "\"weight\": {\"inStones\": 11}"),
                    "unknown unit property \"inStones\" (one of inKilograms, inGrams, inPounds, "
                    "inOunces)");
    expect_rejected(REC("Weight", T "\"weight\": {\"inKilograms\": 70, \"inPounds\": 154.3}"),
                    "weight must be an object with one unit property");
    expect_rejected(REC("Weight", T "\"weight\": 70.5"),
                    "weight must be an object with one unit property");
    expect_rejected(REC("Weight", T "\"weight\": {}"), "one unit property");
    expect_rejected(REC("Weight", T "\"weight\": {\"inKilograms\": \"heavy\"}"),
                    "weight.inKilograms is not a number");
    expect_rejected(REC("Weight", T "\"weight\": {\"inKilograms\": null}"),
                    "weight.inKilograms is not a number");
    expect_rejected(REC("Weight", T "\"mass\": {\"inKilograms\": 70}"), "weight must be an object");
    expect_rejected(REC("OxygenSaturation", T "\"percentage\": 98"),
                    "percentage must be an object with one unit property (one of value)");
    expect_rejected(REC("RestingHeartRate", T "\"beatsPerMinute\": {\"value\": 60}"),
                    "beatsPerMinute is missing or not a number");
    expect_rejected(REC("RespiratoryRate", T "\"rate\": null"), "rate is missing or not a number");
    expect_rejected(REC("BodyTemperature", T "\"temperature\": {\"inKelvin\": 310}"),
                    "(one of inCelsius, inFahrenheit)");
    expect_rejected(REC("BloodGlucose", T "\"level\": {\"inMilligramsPerDeciliter\": 90}, "
                                          "\"specimenSource\": \"blood\""),
                    "specimenSource must be an integer constant");
    expect_rejected(REC("BloodPressure", T "\"systolic\": {\"inMillimetersOfMercury\": 120}"),
                    "diastolic must be an object");
    expect_rejected(REC("BloodPressure", T "\"systolic\": {\"inKilopascals\": 16}, "
                                           "\"diastolic\": {\"inMillimetersOfMercury\": 80}"),
                    "unknown unit property \"inKilopascals\"");
    expect_rejected(REC("BloodPressure", T "\"systolic\": {\"inMillimetersOfMercury\": 120}, "
                                           "\"diastolic\": {\"inMillimetersOfMercury\": 80}, "
                                           "\"measurementLocation\": -1"),
                    "measurementLocation must be an integer constant");
}

static void test_heart_rate_samples(void **state)
{
    got_t g;
    (void)state;
    run_ok(REC("HeartRate", "\"startTime\": \"2024-03-01T13:00:00Z\", \"endTime\": "
                            "\"2024-03-01T13:10:00Z\", \"samples\": ["
                            "{\"time\": \"2024-03-01T13:00:00Z\", \"beatsPerMinute\": 61},"
                            "{\"time\": \"2024-03-01T13:01:00\", \"beatsPerMinute\": 62},"
                            "{\"time\": \"2024-03-01T13:02:00Z\", \"beatsPerMinute\": \"x\"},"
                            "7,"
                            "{\"time\": \"2024-03-01T13:04:00Z\", \"beatsPerMinute\": 64}]"),
           &g);
    assert_int_equal(g.readings, 2);
    assert_int_equal(g.rejections, 3);
    expect_one(at(&g, "/samples/0"), "heart-rate", "61", "/min", "", "2024-03-01T13:00:00Z", "");
    expect_one(at(&g, "/samples/4"), "heart-rate", "64", "/min", "", "2024-03-01T13:04:00Z", "");
    assert_string_equal(at(&g, "/samples/4")->record_id, "m1#2024-03-01T13:04:00Z");
    assert_string_equal(at(&g, "/samples/1")->measure->key, "heart-rate");
    assert_non_null(strstr(g.why[1], "time \"2024-03-01T13:01:00\" is not an ISO 8601 instant"));
    assert_non_null(strstr(g.why[2], "beatsPerMinute is missing or not a number"));
    assert_non_null(strstr(g.why[3], "a sample is an object"));

    expect_rejected(REC("HeartRate", "\"startTime\": \"2024-03-01T13:00:00Z\", \"endTime\": "
                                     "\"2024-03-01T13:10:00Z\""),
                    "HeartRate without a samples array");
}

/* ------------------------------------------------------------------------
 * SleepSession
 * ---------------------------------------------------------------------- */

#define SESSION(stages)                                                                            \
    REC("SleepSession", "\"startTime\": \"2024-03-01T22:00:00Z\", \"endTime\": "                   \
                        "\"2024-03-02T06:00:00Z\", \"stages\": [" stages "]")
#define STAGE(a, b, k)                                                                             \
    "{\"startTime\": \"2024-03-0" a "Z\", \"endTime\": \"2024-03-0" b "Z\", \"stage\": " #k "}"

static void expect_sleep(const char *text, const char *value, const char *unit)
{
    got_t g;
    run_ok(text, &g);
    if (g.readings != 1)
        fail_msg("rejected: %s", g.why[0]);
    expect_one(&g.r[0], "sleep-duration", value, unit, unit, "2024-03-01T22:00:00Z",
               "2024-03-02T06:00:00Z");
}

static void test_sleep(void **state)
{
    (void)state;
    expect_sleep(SESSION(), "480", "min");
    expect_sleep(REC("SleepSession", "\"startTime\": \"2024-03-01T22:00:00Z\", \"endTime\": "
                                     "\"2024-03-02T06:00:00Z\""),
                 "480", "min");
    /* unsorted stages are summed all the same; awake (1) is not sleep */
    expect_sleep(SESSION(STAGE("2T01:00:00", "2T02:00:00", 5) "," STAGE(
                     "1T22:00:00", "1T22:30:00", 1) "," STAGE("1T23:00:00", "2T01:00:00", 2)),
                 "180", "min");
    /* 90 s is exactly 1.5 min; 61 s has no finite decimal in min */
    expect_sleep(SESSION(STAGE("1T23:00:00", "1T23:01:30", 4)), "1.5", "min");
    expect_sleep(SESSION(STAGE("1T23:00:00", "1T23:01:01", 4)), "61", "s");
    expect_sleep(SESSION(STAGE("1T23:00:00", "1T23:00:00.001", 6)), "0.001", "s");
    expect_sleep(SESSION(STAGE("1T23:00:00", "1T23:00:00.003", 6)), "0.00005", "min");
    /* only awake stages: no sleep */
    expect_sleep(SESSION(STAGE("1T22:00:00", "2T06:00:00", 7)), "0", "min");
    /* unknown (0) stages are not counted */
    expect_sleep(SESSION(STAGE("1T22:00:00", "2T06:00:00", 0)), "0", "min");
}

static void test_bad_sleep(void **state)
{
    (void)state;
    expect_rejected(
        SESSION(STAGE("1T23:00:00", "2T01:00:00", 4) "," STAGE("2T00:30:00", "2T02:00:00", 5)),
        "stages overlap");
    expect_rejected(SESSION(STAGE("1T21:00:00", "1T23:00:00", 4)), "stage 0 lies outside");
    expect_rejected(SESSION(STAGE("2T05:00:00", "2T06:00:01", 4)), "stage 0 lies outside");
    expect_rejected(
        SESSION(STAGE("1T23:00:00", "1T23:30:00", 4) "," STAGE("1T23:30:00", "1T23:40:00", 8)),
        "stage 1: stage must be a SleepSessionRecord stage type");
    expect_rejected(SESSION(STAGE("1T23:30:00", "1T23:00:00", 4)),
                    "stage 0: endTime is not after startTime");
    expect_rejected(SESSION("{\"startTime\": \"2024-03-01T23:00:00\", \"endTime\": "
                            "\"2024-03-01T23:30:00Z\", \"stage\": 4}"),
                    "stage 0: startTime and endTime must be ISO 8601 instants");
    expect_rejected(SESSION("{\"startTime\": \"2024-03-01T23:00:00Z\", \"endTime\": "
                            "\"2024-03-01T23:30:00Z\", \"stage\": \"deep\"}"),
                    "stage 0: stage must be");
    expect_rejected(REC("SleepSession", "\"startTime\": \"2024-03-01T22:00:00Z\", \"endTime\": "
                                        "\"2024-03-02T06:00:00Z\", \"stages\": {}"),
                    "stages must be an array");
}

/* ------------------------------------------------------------------------
 * Documents and records
 * ---------------------------------------------------------------------- */

static void expect_not_format(const char *text)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(run_doc(parse(text), &g, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(g.n, 0);
    vl_error_clear(&err);
}

static void test_documents(void **state)
{
    got_t g;
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc;
    (void)state;
    expect_not_format("{}");
    expect_not_format("{\"records\": {}}");
    expect_not_format("{\"type\": \"HeartRate\"}");
    expect_not_format("\"HeartRate\"");
    expect_not_format("42");
    /* called directly with a non-object */
    doc = parse("null");
    memset(&g, 0, sizeof g);
    assert_int_equal(vl_ingest_healthconnect(doc, NULL, collect, &g, &err), -1);
    assert_int_equal(err.status, 400);
    vl_error_clear(&err);
    json_decref(doc);

    run_ok("[]", &g);
    assert_int_equal(g.n, 0);
    run_ok("{\"records\": []}", &g);
    assert_int_equal(g.n, 0);

    run_ok("[1, {\"time\": \"2024-03-01T13:00:00Z\"}, {\"recordType\": 7}, "
           "{\"recordType\": \"ExerciseSession\"}, {\"recordType\": \"Record\"}]",
           &g);
    assert_int_equal(g.readings, 0);
    assert_int_equal(g.rejections, 5);
    assert_string_equal(g.r[0].path, "/0");
    assert_non_null(strstr(g.why[0], "a Health Connect record is a JSON object"));
    assert_non_null(strstr(g.why[1], "names its class in recordType"));
    assert_non_null(strstr(g.why[2], "names its class in recordType"));
    assert_non_null(strstr(g.why[3], "unknown recordType \"ExerciseSession\""));
    assert_non_null(strstr(g.why[4], "unknown recordType \"Record\""));
}

static void test_metadata(void **state)
{
    char text[1024], id[200];
    got_t g;
    (void)state;
    /* an id that fills record_id exactly fits; one more character does not */
    memset(id, 'a', 127);
    id[127] = '\0';
    snprintf(text, sizeof text,
             "{\"recordType\": \"Weight\", " T "\"weight\": {\"inKilograms\": 70}, "
             "\"metadata\": {\"id\": \"%s\"}}",
             id);
    run_ok(text, &g);
    assert_int_equal(g.readings, 1);
    assert_string_equal(g.r[0].record_id, id);
    id[127] = 'a';
    id[128] = '\0';
    snprintf(text, sizeof text,
             "{\"recordType\": \"Weight\", " T "\"weight\": {\"inKilograms\": 70}, "
             "\"metadata\": {\"id\": \"%s\"}}",
             id);
    expect_rejected(text, "metadata.id is too long");
    /* a heart-rate sample's id needs room for "#" and the time */
    id[110] = '\0';
    snprintf(text, sizeof text,
             "{\"recordType\": \"HeartRate\", \"startTime\": \"2024-03-01T13:00:00Z\", "
             "\"endTime\": \"2024-03-01T13:10:00Z\", \"samples\": [{\"time\": "
             "\"2024-03-01T13:00:00Z\", \"beatsPerMinute\": 60}], \"metadata\": {\"id\": \"%s\"}}",
             id);
    expect_rejected(text, "metadata.id is too long");
    /* no metadata at all; a device with only a type names none */
    run_ok("{\"recordType\": \"Weight\", " T "\"weight\": {\"inKilograms\": 70}}", &g);
    assert_int_equal(g.readings, 1);
    assert_string_equal(g.r[0].record_id, "");
    assert_string_equal(g.r[0].source_name, "");
    run_ok("{\"recordType\": \"Weight\", " T "\"weight\": {\"inKilograms\": 70}, \"metadata\": "
           "{\"id\": \"\", \"clientRecordId\": \"c7\", \"device\": {\"type\": 3}}}",
           &g);
    assert_string_equal(g.r[0].record_id, "c7");
    expect_device(&g.r[0], "", "", "");
    run_ok("{\"recordType\": \"Weight\", " T "\"weight\": {\"inKilograms\": 70}, \"metadata\": "
           "{\"device\": {\"model\": \"Index\", \"type\": 42}}}",
           &g);
    expect_device(&g.r[0], "", "Index", "Index");
}

static void test_emit_stops(void **state)
{
    got_t g = {0};
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    g.stop_at = 2; /* the second heart-rate sample */
    assert_int_equal(run_doc(load("records.json"), &g, &err), -1);
    assert_int_equal(err.status, 0);
    assert_int_equal(g.n, 2);
    memset(&g, 0, sizeof g);
    g.stop_at = 16; /* the Nutrition rejection, the last */
    assert_int_equal(run_doc(load("records.json"), &g, &err), -1);
    assert_int_equal(g.n, 16);
    memset(&g, 0, sizeof g);
    g.stop_at = 1;
    assert_int_equal(run_doc(load("single.json"), &g, &err), -1);
}

/* Every row names a measure whose storage unit its UCUM unit converts to
 * (the same dimension): checked by the storage unit of the measure. */
static void test_mapping(void **state)
{
    static const struct {
        const char *ucum, *storage;
    } dims[] = {
        {"/min", "/min"},   {"{steps}", "{steps}"}, {"mm[Hg]", "mm[Hg]"},
        {"mg/dL", "mg/dL"}, {"mmol/L", "mmol/L"},   {"%", "%"},
        {"Cel", "Cel"},     {"[degF]", "Cel"},      {"kg", "kg"},
        {"g", "kg"},        {"[lb_av]", "kg"},      {"[oz_av]", "kg"},
        {"m", "cm"},        {"[in_i]", "cm"},       {"[ft_i]", "cm"},
        {"min", "min"},     {"s", "min"},
    };
    const vl_ingest_mapping_t *map = vl_ingest_mappings(VL_INGEST_HEALTHCONNECT);
    size_t rows = 0;
    (void)state;
    for (; map->source; map++, rows++) {
        const vl_ingest_measure_t *m = vl_ingest_measure(map->measure);
        const char *storage = NULL;
        assert_non_null(m);
        for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
            if (!strcmp(dims[i].ucum, map->ucum))
                storage = dims[i].storage;
        if (!storage)
            fail_msg("%s: unit %s not listed", map->source, map->ucum);
        assert_string_equal(storage, m->components[0].loinc ? m->components[0].unit : m->unit);
        assert_true(!strcmp(map->time_rule, "instant") || !strcmp(map->time_rule, "period"));
    }
    assert_int_equal(rows, 22);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_counts),
        cmocka_unit_test(test_records_heart_rate),
        cmocka_unit_test(test_records_values),
        cmocka_unit_test(test_records_sleep),
        cmocka_unit_test(test_single_and_array),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_bad_times),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_heart_rate_samples),
        cmocka_unit_test(test_sleep),
        cmocka_unit_test(test_bad_sleep),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_emit_stops),
        cmocka_unit_test(test_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
