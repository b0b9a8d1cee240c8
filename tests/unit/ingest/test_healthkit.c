/*
 * Unit tests for src/ingest/healthkit.c (HealthKit samples as JSON) and
 * src/ingest/healthkit_xml.c (the Apple Health export.xml reader).
 *
 *   - every mapped quantity type and unit: measure, value text, UCUM and
 *     source unit, times (export dates rewritten, offsets kept, instant vs
 *     period), record id, source and device (object and export string);
 *   - oxygen saturation's fraction moved to percent exactly;
 *   - sleep: exact durations in min (or s), stages, in bed / awake skipped;
 *   - blood pressure: one reading per correlation, components outside a
 *     correlation rejected;
 *   - rejections (unknown type, unit, value, dates, local time without a
 *     zone) and documents that are not HealthKit at all (400);
 *   - the mapping table: every UCUM code converts to its measure's unit;
 *   - export.xml: the real excerpt (15 records: 10 StepCount readings, 5
 *     DistanceWalkingRunning rejections), an inline export with
 *     correlations before and after their top-level copies (each blood
 *     pressure counted once), skipped elements, malformed and foreign
 *     documents (400 with the line), external entities not loaded, stop,
 *     and a generated 200,000-record export (counts and progress).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vitalog/ingest.h"
#include "vitalog/util.h"

#include "../../../src/fhir/ucum.h"
#include "../support.h"

#define HKQ "HKQuantityTypeIdentifier"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

#define MAX_GOT 64

/* What a normalization emitted. */
typedef struct got {
    vl_ingest_reading_t r[MAX_GOT]; /* readings and rejections in order */
    char why[MAX_GOT][256];         /* "" for a reading */
    size_t n, readings, rejections;
    size_t stop_at; /* emit returns -1 at this call (1-based), 0 never */
} got_t;

static int collect(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    got_t *g = ctx;
    if (g->n < MAX_GOT) {
        g->r[g->n] = *r;
        snprintf(g->why[g->n], sizeof g->why[g->n], "%s", why ? why : "");
    }
    g->n++;
    if (why)
        g->rejections++;
    else
        g->readings++;
    return g->stop_at && g->n == g->stop_at ? -1 : 0;
}

/* emit (or the export's sample callback) returns -1 at this call, 0 never */
static size_t stop_next;

static json_t *parse(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    if (!j)
        fail_msg("does not parse: %s: %s", text, vl_error_message(&err));
    return j;
}

/* Normalizes `text` into g (cleared first); returns the normalizer's result. */
static int run_tz(const char *text, const char *tz, got_t *g)
{
    vl_ingest_options_t o = {tz};
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = parse(text);
    int rc;
    memset(g, 0, sizeof *g);
    g->stop_at = stop_next;
    rc = vl_ingest_document(VL_INGEST_HEALTHKIT, doc, &o, collect, g, &err);
    if (rc == 0)
        assert_int_equal(err.status, 0);
    vl_error_clear(&err);
    json_decref(doc);
    return rc;
}

static int run(const char *text, got_t *g)
{
    return run_tz(text, NULL, g);
}

/* The one reading of a document of one sample. */
static const vl_ingest_reading_t *one(const char *text, got_t *g)
{
    assert_int_equal(run(text, g), 0);
    if (g->n != 1 || g->why[0][0])
        fail_msg("%s: %zu emitted, first: %s", text, g->n, g->n ? g->why[0] : "-");
    return &g->r[0];
}

/* The why of the one rejection of a document of one sample. */
static const char *rejected(const char *text, got_t *g)
{
    assert_int_equal(run(text, g), 0);
    if (g->n != 1 || !g->why[0][0])
        fail_msg("%s: %zu emitted, %zu rejections", text, g->n, g->rejections);
    return g->why[0];
}

static void assert_value(const vl_ingest_reading_t *r, size_t i, const char *value,
                         const char *ucum, const char *source_unit)
{
    assert_true(r->n_values > i);
    assert_string_equal(r->values[i].value, value);
    assert_string_equal(r->values[i].unit, ucum);
    assert_string_equal(r->values[i].source_unit, source_unit);
}

/* A quantity sample of `type` in `unit` with `value` (JSON text). */
static const vl_ingest_reading_t *quantity(const char *type, const char *unit, const char *value,
                                           got_t *g)
{
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"type\": \"%s\", \"unit\": \"%s\", \"value\": %s, \"startDate\": "
             "\"2024-03-01T08:00:00-05:00\", \"endDate\": \"2024-03-01T08:00:00-05:00\"}",
             type, unit, value);
    return one(doc, g);
}

static const char *quantity_rejected(const char *type, const char *unit, const char *value,
                                     got_t *g)
{
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"type\": \"%s\", \"unit\": \"%s\", \"value\": %s, \"startDate\": "
             "\"2024-03-01T08:00:00-05:00\", \"endDate\": \"2024-03-01T08:00:00-05:00\"}",
             type, unit, value);
    return rejected(doc, g);
}

/* A sample with these dates (JSON text of each, or "" for no endDate). */
static const vl_ingest_reading_t *dated(const char *start, const char *end, got_t *g)
{
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"type\": \"" HKQ "StepCount\", \"unit\": \"count\", \"value\": 5, "
             "\"startDate\": %s%s%s}",
             start, end[0] ? ", \"endDate\": " : "", end);
    return one(doc, g);
}

static const char *dated_rejected(const char *start, const char *end, const char *tz, got_t *g)
{
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"type\": \"" HKQ "StepCount\", \"unit\": \"count\", \"value\": 5, "
             "\"startDate\": %s, \"endDate\": %s}",
             start, end);
    assert_int_equal(run_tz(doc, tz, g), 0);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->rejections, 1);
    return g->why[0];
}

/* ------------------------------------------------------------------------
 * JSON samples
 * ---------------------------------------------------------------------- */

static void test_heart_rate_sample(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;
    r = one("{\"type\": \"HKQuantityTypeIdentifierHeartRate\", \"unit\": \"count/min\","
            " \"value\": 72, \"startDate\": \"2024-03-01T08:00:00-05:00\","
            " \"endDate\": \"2024-03-01T08:00:00-05:00\","
            " \"uuid\": \"5D6F1B7A-1C2B-4C3D-9E8F-0A1B2C3D4E5F\","
            " \"sourceName\": \"Alice's Apple Watch\", \"sourceVersion\": \"10.3\","
            " \"device\": {\"name\": \"Apple Watch\", \"manufacturer\": \"Apple Inc.\","
            " \"model\": \"Watch\", \"hardwareVersion\": \"Watch6,2\","
            " \"softwareVersion\": \"10.3\", \"localIdentifier\": \"L-1\","
            " \"udiDeviceIdentifier\": \"(01)00888\"},"
            " \"metadata\": {\"HKMetadataKeyHeartRateMotionContext\": 1}}",
            &g);
    assert_non_null(r->measure);
    assert_string_equal(r->measure->key, "heart-rate");
    assert_value(r, 0, "72", "/min", "count/min");
    assert_string_equal(r->values[0].loinc, "8867-4");
    assert_int_equal(r->n_values, 1);
    assert_string_equal(r->start, "2024-03-01T08:00:00-05:00");
    assert_string_equal(r->end, ""); /* start == end: an instant */
    assert_string_equal(r->record_id, "5D6F1B7A-1C2B-4C3D-9E8F-0A1B2C3D4E5F");
    assert_string_equal(r->source_name, "Alice's Apple Watch");
    assert_string_equal(r->device.name, "Apple Watch");
    assert_string_equal(r->device.manufacturer, "Apple Inc.");
    assert_string_equal(r->device.model, "Watch6,2"); /* the hardware version */
    assert_string_equal(r->device.version, "10.3");
    assert_string_equal(r->device.serial, "(01)00888"); /* the UDI over the local id */
    assert_string_equal(r->path, "/");
    assert_string_equal(r->note, "");
    assert_null(r->interpretation);

    /* a device object with a model only, and a local identifier */
    r = one("{\"type\": \"HKQuantityTypeIdentifierHeartRate\", \"unit\": \"count/min\","
            " \"value\": 60.5, \"startDate\": \"2024-03-01T08:00:00Z\","
            " \"device\": {\"model\": \"Watch\", \"localIdentifier\": \"L-1\","
            " \"firmwareVersion\": \"3\", \"name\": 7}}",
            &g);
    assert_value(r, 0, "60.5", "/min", "count/min");
    assert_string_equal(r->start, "2024-03-01T08:00:00Z"); /* no endDate: an instant */
    assert_string_equal(r->device.model, "Watch");
    assert_string_equal(r->device.serial, "L-1");
    assert_string_equal(r->device.version, "3");
    assert_string_equal(r->device.name, ""); /* not a string */
    assert_string_equal(r->record_id, "");
}

static void test_quantity_types(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;
    static const struct {
        const char *type, *unit, *value, *measure, *want, *ucum;
    } cases[] = {
        {HKQ "RestingHeartRate", "count/min", "55", "resting-heart-rate", "55", "/min"},
        {HKQ "RespiratoryRate", "count/min", "\"16\"", "respiratory-rate", "16", "/min"},
        {HKQ "BodyTemperature", "degC", "36.60", "body-temperature", "36.60", "Cel"},
        {HKQ "BodyTemperature", "degF", "98.6", "body-temperature", "98.6", "[degF]"},
        {HKQ "BodyMass", "kg", "70.25", "body-weight", "70.25", "kg"},
        {HKQ "BodyMass", "g", "3500", "body-weight", "3500", "g"},
        {HKQ "BodyMass", "lb", "154.9", "body-weight", "154.9", "[lb_av]"},
        {HKQ "BodyMass", "oz", "120", "body-weight", "120", "[oz_av]"},
        {HKQ "Height", "cm", "180", "body-height", "180", "cm"},
        {HKQ "Height", "m", "1.80", "body-height", "1.80", "m"},
        {HKQ "Height", "mm", "1800", "body-height", "1800", "mm"},
        {HKQ "Height", "in", "70.9", "body-height", "70.9", "[in_i]"},
        {HKQ "Height", "ft", "5.9", "body-height", "5.9", "[ft_i]"},
        {HKQ "BodyMassIndex", "count", "22.4", "body-mass-index", "22.4", "kg/m2"},
        {HKQ "BloodGlucose", "mg/dL", "104", "blood-glucose", "104", "mg/dL"},
        {HKQ "BloodGlucose", "mmol<180.1558800000541>/L", "5.8", "blood-glucose-molar", "5.8",
         "mmol/L"},
        {HKQ "BloodGlucose", "mmol<180.15588000005408>/l", "5.8", "blood-glucose-molar", "5.8",
         "mmol/L"},
        {HKQ "BloodGlucose", "mmol/L", "5.8", "blood-glucose-molar", "5.8", "mmol/L"},
        {HKQ "StepCount", "count", "1234", "step-count", "1234", "{steps}"},
        {HKQ "ActiveEnergyBurned", "kcal", "0.512", "calories-burned", "0.512", "kcal"},
        {HKQ "ActiveEnergyBurned", "Cal", "12", "calories-burned", "12", "[Cal]"},
        {HKQ "ActiveEnergyBurned", "kJ", "50.2", "calories-burned", "50.2", "kJ"},
        {HKQ "HeartRateVariabilitySDNN", "ms", "48.3", "heart-rate-variability", "48.3", "ms"},
        {HKQ "OxygenSaturation", "%", "0.97", "oxygen-saturation", "97", "%"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = quantity(cases[i].type, cases[i].unit, cases[i].value, &g);
        assert_non_null(r->measure);
        assert_string_equal(r->measure->key, cases[i].measure);
        assert_value(r, 0, cases[i].want, cases[i].ucum, cases[i].unit);
        assert_string_equal(r->values[0].loinc, r->measure->loinc);
    }
}

static void test_oxygen_saturation_fraction(void **state)
{
    got_t g;
    (void)state;
    static const char *const cases[][2] = {
        {"0.97", "97"},     {"0.955", "95.5"}, {"1", "100"},       {"0.9", "90"},
        {"0.970", "97.0"},  {"9.7e-1", "97"},  {"0.0005", "0.05"}, {"0", "0"},
        {"\"0.98\"", "98"}, {"97", "9700"}, /* already percent: implausible downstream */
        {"-0.5", "-50"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_value(quantity(HKQ "OxygenSaturation", "%", cases[i][0], &g), 0, cases[i][1], "%",
                     "%");
}

static void test_dates(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;
    /* export.xml's form, offset kept */
    r = dated("\"2016-05-31 23:44:56 +0100\"", "\"2016-05-31 23:49:56 +0100\"", &g);
    assert_string_equal(r->start, "2016-05-31T23:44:56+01:00");
    assert_string_equal(r->end, "2016-05-31T23:49:56+01:00");
    /* basic offsets, fractions, Z */
    r = dated("\"2024-03-01T08:00:00.250-0530\"", "\"2024-03-01T08:10:00.5-05:30\"", &g);
    assert_string_equal(r->start, "2024-03-01T08:00:00.250-05:30");
    assert_string_equal(r->end, "2024-03-01T08:10:00.5-05:30");
    /* the same instant in two offsets: an instant */
    r = dated("\"2024-03-01T13:00:00Z\"", "\"2024-03-01T08:00:00-05:00\"", &g);
    assert_string_equal(r->start, "2024-03-01T13:00:00Z");
    assert_string_equal(r->end, "");
    assert_int_equal(r->n_values, 1);
    assert_string_equal(r->values[0].value, "5");

    assert_non_null(
        strstr(dated_rejected("\"2024-03-01T08:00:00\"", "\"2024-03-01T08:00:00\"", NULL, &g),
               "a tz parameter"));
    assert_non_null(
        strstr(dated_rejected("\"2024-03-01T08:00:00Z\"", "\"2024-03-01T08:00:05\"", NULL, &g),
               "endDate"));
    assert_non_null(
        strstr(dated_rejected("\"2024-03-01T09:00:00Z\"", "\"2024-03-01T08:00:00Z\"", NULL, &g),
               "before startDate"));
    assert_non_null(
        strstr(dated_rejected("\"2024-02-30T08:00:00Z\"", "\"2024-03-01T08:00:00Z\"", NULL, &g),
               "not an ISO 8601"));
    assert_non_null(
        strstr(dated_rejected("\"2024-03-01\"", "\"2024-03-01\"", NULL, &g), "not an ISO 8601"));
    assert_non_null(strstr(dated_rejected("1709280000", "1709280000", NULL, &g),
                           "startDate \"(missing or not a string)\""));
    assert_non_null(strstr(dated_rejected("\"2024-03-01T08:00:00Z\"", "1709280000", NULL, &g),
                           "endDate \"(missing or not a string)\""));
    assert_non_null(strstr(
        dated_rejected("\"2024-03-01T08:00:00+25:00\"", "\"2024-03-01T08:00:00Z\"", NULL, &g),
        "startDate"));
    assert_non_null(
        strstr(dated_rejected("\"2024-03-01T08:00:00 +01\"", "\"2024-03-01T08:00:00Z\"", NULL, &g),
               "startDate"));
    /* a local time with an unknown zone: still rejected */
    assert_non_null(strstr(dated_rejected("\"2024-03-01T08:00:00\"", "\"2024-03-01T08:00:00\"",
                                          "Nowhere/Atlantis", &g),
                           "a tz parameter"));
}

static void test_local_time_with_tz(void **state)
{
    got_t g;
    vl_ingest_options_t o = {"+01:00"};
    char want[40];
    (void)state;
    /* resolved through vl_ingest_local_time (zone.c): whatever it gives */
    if (vl_ingest_local_time("2024-03-01T08:00:00", "+01:00", want) < 0) {
        assert_non_null(
            strstr(dated_rejected("\"2024-03-01T08:00:00\"", "\"2024-03-01T08:00:00\"", o.tz, &g),
                   "a tz parameter"));
        return;
    }
    assert_int_equal(run_tz("{\"type\": \"" HKQ "StepCount\", \"unit\": \"count\", \"value\": 5,"
                            " \"startDate\": \"2024-03-01T08:00:00\","
                            " \"endDate\": \"2024-03-01T08:00:00\"}",
                            o.tz, &g),
                     0);
    assert_int_equal(g.readings, 1);
    assert_string_equal(g.r[0].start, want);
}

static void test_sleep(void **state)
{
    got_t g;
    (void)state;
    assert_int_equal(
        run("[{\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\","
            "  \"value\": \"HKCategoryValueSleepAnalysisInBed\","
            "  \"startDate\": \"2024-03-01 22:30:00 +0100\", \"endDate\": \"2024-03-02 07:00:00 "
            "+0100\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\","
            "  \"value\": \"HKCategoryValueSleepAnalysisAsleepCore\", \"uuid\": \"S1\","
            "  \"startDate\": \"2024-03-01 23:00:00 +0100\", \"endDate\": \"2024-03-02 00:30:00 "
            "+0100\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\","
            "  \"value\": \"HKCategoryValueSleepAnalysisAwake\","
            "  \"startDate\": \"2024-03-02T00:30:00+01:00\", \"endDate\": "
            "\"2024-03-02T00:35:00+01:00\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\", \"value\": 4,"
            "  \"startDate\": \"2024-03-02T00:35:00+01:00\", \"endDate\": "
            "\"2024-03-02T00:36:30+01:00\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\","
            "  \"value\": \"HKCategoryValueSleepAnalysisAsleepREM\","
            "  \"startDate\": \"2024-03-02T00:36:30+01:00\", \"endDate\": "
            "\"2024-03-02T00:38:10+01:00\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\","
            "  \"value\": \"HKCategoryValueSleepAnalysisAsleep\","
            "  \"startDate\": \"2024-03-02T00:38:10.5+01:00\", \"endDate\": "
            "\"2024-03-02T00:38:11+01:00\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\", \"value\": 1,"
            "  \"startDate\": \"2024-03-02T01:00:00+01:00\", \"endDate\": "
            "\"2024-03-02T01:00:01.2+01:00\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\","
            "  \"value\": \"HKCategoryValueSleepAnalysisDreaming\","
            "  \"startDate\": \"2024-03-02T01:00:00+01:00\", \"endDate\": "
            "\"2024-03-02T01:00:01+01:00\"},"
            " {\"type\": \"HKCategoryTypeIdentifierSleepAnalysis\","
            "  \"startDate\": \"2024-03-02T01:00:00+01:00\", \"endDate\": "
            "\"2024-03-02T01:00:01+01:00\"}]",
            &g),
        0);
    /* in bed and awake skipped: 5 readings, 2 rejections */
    assert_int_equal(g.readings, 5);
    assert_int_equal(g.rejections, 2);
    assert_string_equal(g.r[0].measure->key, "sleep-duration");
    assert_string_equal(g.r[0].path, "/1");
    assert_value(&g.r[0], 0, "90", "min", "");
    assert_string_equal(g.r[0].values[0].loinc, "93832-4");
    assert_string_equal(g.r[0].start, "2024-03-01T23:00:00+01:00");
    assert_string_equal(g.r[0].end, "2024-03-02T00:30:00+01:00");
    assert_string_equal(g.r[0].record_id, "S1");
    assert_string_equal(g.r[0].note, "sleep stage: core");
    assert_value(&g.r[1], 0, "1.5", "min", ""); /* 90 s, raw value 4 */
    assert_string_equal(g.r[1].note, "sleep stage: deep");
    assert_value(&g.r[2], 0, "100", "s", ""); /* 100 s = 1.666... min */
    assert_string_equal(g.r[2].note, "sleep stage: REM");
    assert_value(&g.r[3], 0, "0.5", "s", ""); /* 0.5 s */
    assert_string_equal(g.r[3].note, "sleep stage: asleep");
    assert_value(&g.r[4], 0, "0.02", "min", ""); /* 1.2 s */
    assert_non_null(strstr(g.why[5], "HKCategoryValueSleepAnalysisDreaming"));
    assert_string_equal(g.r[5].path, "/7");
    assert_non_null(strstr(g.why[6], "without a value"));
}

static void test_blood_pressure(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;
    r = one("{\"type\": \"HKCorrelationTypeIdentifierBloodPressure\","
            " \"startDate\": \"2024-03-01T08:00:00-05:00\","
            " \"endDate\": \"2024-03-01T08:00:00-05:00\", \"uuid\": \"BP-1\","
            " \"objects\": ["
            "  {\"type\": \"HKQuantityTypeIdentifierBloodPressureDiastolic\", \"unit\": \"mmHg\","
            "   \"value\": 80, \"uuid\": \"D-1\", \"startDate\": \"2024-03-01T08:00:00-05:00\","
            "   \"endDate\": \"2024-03-01T08:00:00-05:00\"},"
            "  {\"type\": \"HKQuantityTypeIdentifierBloodPressureSystolic\", \"unit\": \"mmHg\","
            "   \"value\": 120, \"uuid\": \"S-1\", \"sourceName\": \"Omron\","
            "   \"device\": \"<<HKDevice: 0x1>, name:BP7000, manufacturer:Omron>\","
            "   \"startDate\": \"2024-03-01T08:00:00-05:00\","
            "   \"endDate\": \"2024-03-01T08:00:00-05:00\"},"
            "  {\"type\": \"HKQuantityTypeIdentifierHeartRate\", \"unit\": \"count/min\","
            "   \"value\": 70}]}",
            &g);
    assert_string_equal(r->measure->key, "blood-pressure");
    assert_int_equal(r->n_values, 2);
    assert_value(r, 0, "120", "mm[Hg]", "mmHg");
    assert_string_equal(r->values[0].loinc, "8480-6");
    assert_value(r, 1, "80", "mm[Hg]", "mmHg");
    assert_string_equal(r->values[1].loinc, "8462-4");
    assert_string_equal(r->record_id, "BP-1"); /* the correlation's */
    assert_string_equal(r->start, "2024-03-01T08:00:00-05:00");
    assert_string_equal(r->end, "");
    assert_string_equal(r->source_name, "Omron"); /* the systolic sample's */
    assert_string_equal(r->device.name, "BP7000");
    assert_string_equal(r->device.manufacturer, "Omron");

    /* the correlation's own device and source win; its dates may be absent */
    r = one("{\"type\": \"HKCorrelationTypeIdentifierBloodPressure\", \"sourceName\": \"Cuff\","
            " \"device\": {\"name\": \"Cuff 1\"}, \"objects\": ["
            "  {\"type\": \"HKQuantityTypeIdentifierBloodPressureSystolic\", \"unit\": \"mmHg\","
            "   \"value\": 131, \"sourceName\": \"x\", \"device\": {\"name\": \"y\"},"
            "   \"startDate\": \"2024-03-01T08:00:00Z\", \"endDate\": \"2024-03-01T08:00:30Z\"},"
            "  {\"type\": \"HKQuantityTypeIdentifierBloodPressureDiastolic\", \"unit\": \"mmHg\","
            "   \"value\": \"85\"}]}",
            &g);
    assert_value(r, 0, "131", "mm[Hg]", "mmHg");
    assert_value(r, 1, "85", "mm[Hg]", "mmHg");
    assert_string_equal(r->source_name, "Cuff");
    assert_string_equal(r->device.name, "Cuff 1");
    assert_string_equal(r->start, "2024-03-01T08:00:00Z");
    assert_string_equal(r->end, "2024-03-01T08:00:30Z");

    /* broken correlations */
    assert_non_null(strstr(rejected("{\"type\": \"HKCorrelationTypeIdentifierBloodPressure\","
                                    " \"startDate\": \"2024-03-01T08:00:00Z\", \"objects\": ["
                                    "  {\"type\": \"" HKQ "BloodPressureSystolic\","
                                    "   \"unit\": \"mmHg\", \"value\": 120}]}",
                                    &g),
                           "without its " HKQ "BloodPressureDiastolic sample"));
    assert_string_equal(g.r[0].measure->key, "blood-pressure");
    assert_non_null(strstr(rejected("{\"type\": \"HKCorrelationTypeIdentifierBloodPressure\","
                                    " \"startDate\": \"2024-03-01T08:00:00Z\"}",
                                    &g),
                           "\"objects\""));
    assert_non_null(strstr(
        rejected("{\"type\": \"HKCorrelationTypeIdentifierBloodPressure\","
                 " \"startDate\": \"2024-03-01T08:00:00Z\", \"objects\": ["
                 "  {\"type\": \"" HKQ "BloodPressureSystolic\", \"unit\": \"mmHg\", \"value\": 1},"
                 "  {\"type\": \"" HKQ "BloodPressureSystolic\", \"unit\": \"mmHg\", \"value\": 2},"
                 "  {\"type\": \"" HKQ "BloodPressureDiastolic\", \"unit\": \"mmHg\", \"value\": "
                 "3}]}",
                 &g),
        "two " HKQ "BloodPressureSystolic"));
    assert_non_null(strstr(
        rejected("{\"type\": \"HKCorrelationTypeIdentifierBloodPressure\","
                 " \"startDate\": \"2024-03-01T08:00:00Z\", \"objects\": ["
                 "  {\"type\": \"" HKQ "BloodPressureSystolic\", \"unit\": \"kPa\", \"value\": 16},"
                 "  {\"type\": \"" HKQ "BloodPressureDiastolic\", \"unit\": \"mmHg\", \"value\": "
                 "80}]}",
                 &g),
        "unit \"kPa\""));
    assert_non_null(strstr(
        rejected("{\"type\": \"HKCorrelationTypeIdentifierBloodPressure\", \"objects\": ["
                 "  {\"type\": \"" HKQ "BloodPressureSystolic\", \"unit\": \"mmHg\", \"value\": 1},"
                 "  {\"type\": \"" HKQ "BloodPressureDiastolic\", \"unit\": \"mmHg\", \"value\": "
                 "3}]}",
                 &g),
        "startDate"));

    /* a component on its own */
    assert_non_null(strstr(quantity_rejected(HKQ "BloodPressureSystolic", "mmHg", "120", &g),
                           "a blood pressure component outside its correlation"));
    assert_string_equal(g.r[0].measure->key, "blood-pressure");
    assert_non_null(strstr(quantity_rejected(HKQ "BloodPressureDiastolic", "mmHg", "80", &g),
                           "outside its correlation"));
}

static void test_rejections(void **state)
{
    got_t g;
    (void)state;
    assert_non_null(strstr(quantity_rejected(HKQ "DistanceWalkingRunning", "km", "1.2", &g),
                           "unknown HealthKit type " HKQ "DistanceWalkingRunning"));
    assert_null(g.r[0].measure);
    assert_string_equal(g.r[0].path, "/");
    assert_non_null(strstr(quantity_rejected(HKQ "HeartRate", "bpm", "72", &g),
                           "unit \"bpm\" is not a unit of " HKQ "HeartRate"));
    assert_string_equal(g.r[0].measure->key, "heart-rate");
    assert_non_null(strstr(quantity_rejected(HKQ "BodyMass", "st", "11", &g), "unit \"st\""));
    assert_non_null(
        strstr(quantity_rejected(HKQ "HeartRate", "count/min", "\"fast\"", &g), "not a number"));
    assert_non_null(
        strstr(quantity_rejected(HKQ "HeartRate", "count/min", "null", &g), "not a number"));
    assert_non_null(
        strstr(quantity_rejected(HKQ "HeartRate", "count/min", "[72]", &g), "not a number"));
    assert_non_null(strstr(rejected("{\"type\": \"" HKQ "HeartRate\", \"unit\": \"count/min\","
                                    " \"startDate\": \"2024-03-01T08:00:00Z\"}",
                                    &g),
                           "without a value"));
    assert_non_null(strstr(rejected("{\"type\": \"" HKQ "HeartRate\", \"value\": 72,"
                                    " \"startDate\": \"2024-03-01T08:00:00Z\"}",
                                    &g),
                           "unit \"(none)\""));
    assert_non_null(strstr(
        rejected("{\"type\": \"" HKQ "HeartRate\", \"unit\": \"count/min\", \"value\": 72}", &g),
        "startDate \"(missing or not a string)\""));
    assert_non_null(strstr(rejected("{\"type\": 5}", &g), "without a \"type\""));
    assert_non_null(strstr(
        quantity_rejected(HKQ "HeartRate", "count/min", "123456789012345678901234567890123456", &g),
        "not a finite decimal"));
    assert_non_null(
        strstr(quantity_rejected(HKQ "OxygenSaturation", "%",
                                 "0.123456789012345678901234567890123456789012345678901", &g),
               "too long"));

    /* list elements that are not samples; the walk goes on */
    assert_int_equal(run("[1, \"x\", {\"type\": \"" HKQ "StepCount\", \"unit\": \"count\","
                         " \"value\": 3, \"startDate\": \"2024-03-01T08:00:00Z\"}, null]",
                         &g),
                     0);
    assert_int_equal(g.readings, 1);
    assert_int_equal(g.rejections, 3);
    assert_string_equal(g.r[0].path, "/0");
    assert_non_null(strstr(g.why[0], "is an object"));
    assert_string_equal(g.r[2].path, "/2");
    assert_string_equal(g.r[3].path, "/3");
}

static void test_documents(void **state)
{
    got_t g;
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc;
    (void)state;
    assert_int_equal(run("{\"samples\": [{\"type\": \"" HKQ "StepCount\", \"unit\": \"count\","
                         " \"value\": 3, \"startDate\": \"2024-03-01T08:00:00Z\","
                         " \"endDate\": \"2024-03-01T08:10:00Z\"},"
                         " {\"type\": \"" HKQ "Nope\"}], \"exportDate\": \"x\"}",
                         &g),
                     0);
    assert_int_equal(g.readings, 1);
    assert_int_equal(g.rejections, 1);
    assert_string_equal(g.r[0].path, "/samples/0");
    assert_string_equal(g.r[0].end, "2024-03-01T08:10:00Z");
    assert_string_equal(g.r[1].path, "/samples/1");

    assert_int_equal(run("[]", &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(run("{\"samples\": []}", &g), 0);
    assert_int_equal(g.n, 0);

    /* not HealthKit at all */
    static const char *const bad[] = {"{\"foo\": 1}", "{\"samples\": 3}", "{\"samples\": {}}",
                                      "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = parse(bad[i]);
        memset(&g, 0, sizeof g);
        assert_int_equal(vl_ingest_healthkit(doc, NULL, collect, &g, &err), -1);
        assert_int_equal(err.status, 400);
        assert_int_equal(g.n, 0);
        vl_error_clear(&err);
        json_decref(doc);
    }
    doc = parse("\"HKQuantityTypeIdentifierHeartRate\"");
    assert_int_equal(vl_ingest_document(VL_INGEST_HEALTHKIT, doc, NULL, collect, &g, &err), -1);
    assert_int_equal(err.status, 400);
    vl_error_clear(&err);
    json_decref(doc);

    /* emit stops the walk: -1 without an error */
    stop_next = 2;
    assert_int_equal(run("[{\"type\": \"x\"}, {\"type\": \"y\"}, {\"type\": \"z\"}]", &g), -1);
    assert_int_equal(g.n, 2);
    stop_next = 0;
}

static void test_device_strings(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;
    r = one("{\"type\": \"" HKQ "HeartRate\", \"unit\": \"count/min\", \"value\": 72,"
            " \"startDate\": \"2019-01-01 08:00:00 +0000\", \"device\": \"<<HKDevice: "
            "0x283c0d7c0>, name:Apple Watch, manufacturer:Apple, model:Watch, hardware:Watch3,4, "
            "software:5.1.2>\"}",
            &g);
    assert_string_equal(r->device.name, "Apple Watch");
    assert_string_equal(r->device.manufacturer, "Apple");
    assert_string_equal(r->device.model, "Watch3,4");
    assert_string_equal(r->device.version, "5.1.2");
    assert_string_equal(r->device.serial, "");
    assert_string_equal(r->start, "2019-01-01T08:00:00+00:00");

    r = one("{\"type\": \"" HKQ "BodyMass\", \"unit\": \"kg\", \"value\": 72,"
            " \"startDate\": \"2019-01-01 08:00:00 +0000\", \"device\": \"<<HKDevice: "
            "0x2806fa940>, name:Body Cardio, manufacturer:Withings, model:Body Cardio, "
            "firmware:1100, localIdentifier:00:24:e4:aa:bb:cc>\"}",
            &g);
    assert_string_equal(r->device.name, "Body Cardio");
    assert_string_equal(r->device.manufacturer, "Withings");
    assert_string_equal(r->device.model, "Body Cardio");
    assert_string_equal(r->device.version, "1100");
    assert_string_equal(r->device.serial, "00:24:e4:aa:bb:cc");

    /* a name with a comma; a plain string; a broken one */
    r = one("{\"type\": \"" HKQ "BodyMass\", \"unit\": \"kg\", \"value\": 72,"
            " \"startDate\": \"2019-01-01 08:00:00 +0000\","
            " \"device\": \"<<HKDevice: 0x1>, name:Scale, kitchen, manufacturer:Acme>\"}",
            &g);
    assert_string_equal(r->device.name, "Scale, kitchen");
    assert_string_equal(r->device.manufacturer, "Acme");
    r = one("{\"type\": \"" HKQ "BodyMass\", \"unit\": \"kg\", \"value\": 72,"
            " \"startDate\": \"2019-01-01 08:00:00 +0000\", \"device\": \"Omron HN-289\"}",
            &g);
    assert_string_equal(r->device.name, "Omron HN-289");
    r = one("{\"type\": \"" HKQ "BodyMass\", \"unit\": \"kg\", \"value\": 72,"
            " \"startDate\": \"2019-01-01 08:00:00 +0000\", \"device\": \"<<HKDevice: 0x1\"}",
            &g);
    assert_string_equal(r->device.name, "");
}

/* Every row: a known measure, and a UCUM code of its measure's dimension. */
static void test_mapping_table(void **state)
{
    const vl_ingest_mapping_t *m = vl_ingest_mappings(VL_INGEST_HEALTHKIT);
    size_t n = 0;
    (void)state;
    for (; m->source; m++, n++) {
        const vl_ingest_measure_t *me = vl_ingest_measure(m->measure);
        const char *want;
        const vl_ucum_unit_t *u, *w;
        assert_non_null(me);
        assert_true(!strcmp(m->time_rule, "instant") || !strcmp(m->time_rule, "period"));
        if (!m->ucum[0]) {
            assert_string_equal(m->source, "HKCorrelationTypeIdentifierBloodPressure");
            continue;
        }
        want = me->components[0].loinc ? me->components[0].unit : me->unit;
        u = vl_ucum_find(m->ucum);
        w = vl_ucum_find(want);
        if (!w && !strcmp(m->ucum, want))
            continue; /* ms: not (yet) in src/fhir/ucum.c; the storage unit itself */
        if (!u || !w || strcmp(u->canonical, w->canonical))
            fail_msg("%s %s: %s is not convertible to %s", m->source, m->source_unit, m->ucum,
                     want);
    }
    assert_int_equal(n, 33);
}

/* ------------------------------------------------------------------------
 * export.xml
 * ---------------------------------------------------------------------- */

/* What an export read passed: each sample normalized into `got` (the
 * first MAX_GOT kept) and counted by type. */
typedef struct xread {
    size_t samples;
    got_t got;
    json_t *first; /* a copy of the first sample passed */
    size_t stop_at;
    uint64_t progress[64];
    size_t n_progress;
} xread_t;

static int on_sample(void *ctx, json_t *sample)
{
    xread_t *x = ctx;
    vl_error_t err = VL_ERROR_INIT;
    x->samples++;
    if (!x->first)
        x->first = json_deep_copy(sample);
    assert_int_equal(vl_ingest_healthkit(sample, NULL, collect, &x->got, &err), 0);
    return x->stop_at && x->samples == x->stop_at ? -1 : 0;
}

static void on_progress(void *ctx, uint64_t bytes)
{
    xread_t *x = ctx;
    if (x->n_progress < 64)
        x->progress[x->n_progress] = bytes;
    x->n_progress++;
}

static int read_export_fd(int fd, xread_t *x, vl_error_t *err)
{
    memset(x, 0, sizeof *x);
    x->stop_at = stop_next;
    return vl_ingest_healthkit_xml(fd, on_sample, x, on_progress, x, err);
}

static int read_export(const char *path, xread_t *x, vl_error_t *err)
{
    int fd = open(path, O_RDONLY), rc;
    assert_true(fd >= 0);
    rc = read_export_fd(fd, x, err);
    close(fd);
    return rc;
}

/* Writes `text` to a new temporary file; its path goes into `path`. */
static void write_temp(const char *text, char path[64])
{
    int fd;
    snprintf(path, 64, "/tmp/vl-healthkit-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int read_text(const char *text, xread_t *x, vl_error_t *err)
{
    char path[64];
    int rc;
    write_temp(text, path);
    rc = read_export(path, x, err);
    unlink(path);
    return rc;
}

static void xread_free(xread_t *x)
{
    json_decref(x->first);
    x->first = NULL;
}

static void test_export_sample_file(void **state)
{
    xread_t x;
    vl_error_t err = VL_ERROR_INIT;
    long sum = 0;
    (void)state;
    assert_int_equal(
        read_export(VL_TEST_DATA "/ingest/healthkit/apple-export6s3sample.xml", &x, &err), 0);
    /* 10 StepCount and 5 DistanceWalkingRunning records; ExportDate, Me,
     * 2 ActivitySummary and 1 Workout skipped */
    assert_int_equal(x.samples, 15);
    assert_int_equal(x.got.readings, 10);
    assert_int_equal(x.got.rejections, 5);
    for (size_t i = 0; i < 10; i++) {
        assert_string_equal(x.got.r[i].measure->key, "step-count");
        assert_string_equal(x.got.r[i].source_name, "Health");
        assert_string_equal(x.got.r[i].values[0].unit, "{steps}");
        assert_string_equal(x.got.r[i].values[0].source_unit, "count");
        assert_string_equal(x.got.r[i].record_id, "");
        assert_string_equal(x.got.r[i].device.name, "");
        sum += atol(x.got.r[i].values[0].value);
    }
    assert_int_equal(sum, 2517);
    assert_string_equal(x.got.r[0].values[0].value, "329");
    assert_string_equal(x.got.r[0].start, "2014-09-13T10:27:54+01:00");
    assert_string_equal(x.got.r[0].end, "2014-09-13T10:27:59+01:00");
    assert_string_equal(x.got.r[9].values[0].value, "282");
    assert_string_equal(x.got.r[9].start, "2014-09-13T11:33:24+01:00");
    assert_string_equal(x.got.r[9].end, "2014-09-13T11:33:29+01:00");
    for (size_t i = 10; i < 15; i++)
        assert_non_null(strstr(x.got.why[i], "HKQuantityTypeIdentifierDistanceWalkingRunning"));
    /* the sample as passed: attributes as written, the value a tagged number */
    assert_non_null(x.first);
    assert_string_equal(json_string_value(json_object_get(x.first, "type")),
                        "HKQuantityTypeIdentifierStepCount");
    assert_string_equal(vl_json_number_text(json_object_get(x.first, "value")), "329");
    assert_string_equal(json_string_value(json_object_get(x.first, "creationDate")),
                        "2014-09-21 07:08:47 +0100");
    assert_string_equal(json_string_value(json_object_get(x.first, "startDate")),
                        "2014-09-13 10:27:54 +0100");
    assert_null(json_object_get(x.first, "metadata"));
    assert_int_equal(json_object_size(x.first), 7);
    /* progress: once, at the end (7002 bytes) */
    assert_int_equal(x.n_progress, 1);
    assert_int_equal(x.progress[0], 7002);
    xread_free(&x);
}

#define EXPORT_HEAD                                                                                \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<!DOCTYPE HealthData [\n"                                                                     \
    "<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>\n"        \
    "<!ATTLIST HealthData locale CDATA #REQUIRED>\n"                                               \
    "]>\n"                                                                                         \
    "<HealthData locale=\"en_US\">\n"                                                              \
    " <ExportDate value=\"2019-01-10 09:00:00 -0800\"/>\n"                                         \
    " <Me HKCharacteristicTypeIdentifierDateOfBirth=\"\"/>\n"

#define DEVICE                                                                                     \
    "&lt;&lt;HKDevice: 0x283c0d7c0&gt;, name:Apple Watch, manufacturer:Apple, model:Watch, "       \
    "hardware:Watch3,4, software:5.1.2&gt;"

#define BP_RECORD(kind, value, start)                                                              \
    "<Record type=\"HKQuantityTypeIdentifierBloodPressure" kind "\" sourceName=\"Omron\" "         \
    "unit=\"mmHg\" creationDate=\"" start "\" startDate=\"" start "\" endDate=\"" start            \
    "\" value=\"" value "\"/>\n"

static const char export_doc[] = EXPORT_HEAD
    /* blood pressure 1: its top-level copies first, then the correlation */
    " " BP_RECORD("Systolic", "121", "2019-01-02 07:30:00 -0800") " " BP_RECORD(
        "Diastolic", "79",
        "2019-01-02 07:30:00 -0800") " <Record type=\"HKQuantityTypeIdentifierHeartRate\" "
                                     "sourceName=\"NJR Apple Watch\" "
                                     "sourceVersion=\"5.1.2\" device=\"" DEVICE
                                     "\" unit=\"count/min\" "
                                     "creationDate=\"2019-01-02 07:31:05 -0800\" "
                                     "startDate=\"2019-01-02 07:31:00 -0800\" "
                                     "endDate=\"2019-01-02 07:31:00 -0800\" value=\"72\">\n"
                                     "  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" "
                                     "value=\"0\"/>\n"
                                     "  <HeartRateVariabilityMetadataList>\n"
                                     "   <InstantaneousBeatsPerMinute bpm=\"71\" time=\"7:31:00.12 "
                                     "AM\"/>\n"
                                     "  </HeartRateVariabilityMetadataList>\n"
                                     " </Record>\n"
                                     " <Correlation "
                                     "type=\"HKCorrelationTypeIdentifierBloodPressure\" "
                                     "sourceName=\"Omron\" "
                                     "sourceVersion=\"7.2\" creationDate=\"2019-01-02 07:30:00 "
                                     "-0800\" "
                                     "startDate=\"2019-01-02 07:30:00 -0800\" endDate=\"2019-01-02 "
                                     "07:30:00 -0800\">\n"
                                     "  <MetadataEntry key=\"HKWasUserEntered\" value=\"1\"/>\n"
                                     "  " BP_RECORD("Diastolic", "79", "2019-01-02 07:30:00 -0800") "  " BP_RECORD(
                                         "Systolic", "121",
                                         "2019-01-02 07:30:00 -0800") " </Correlation>\n"
                                                                      /* blood pressure 2: the
                                                                         correlation first, then its
                                                                         copies */
                                                                      " <Correlation "
                                                                      "type="
                                                                      "\"HKCorrelationTypeIdentifie"
                                                                      "rBloodPressure\" "
                                                                      "sourceName=\"Omron\" "
                                                                      "startDate=\"2019-01-03 "
                                                                      "07:30:00 -0800\" "
                                                                      "endDate=\"2019-01-03 "
                                                                      "07:30:00 -0800\">\n"
                                                                      "  " BP_RECORD("Systolic", "133", "2019-01-03 07:30:00 -0800") "  " BP_RECORD(
                                                                          "Diastolic", "88",
                                                                          "2019-01-03 07:30:00 "
                                                                          "-0800") " </"
                                                                                   "Correlation>\n"
                                                                                   " " BP_RECORD(
                                                                                       "Systolic",
                                                                                       "133",
                                                                                       "2019-01-03 "
                                                                                       "07:30:00 "
                                                                                       "-0800") " " BP_RECORD("Diastolic",
                                                                                                              "88",
                                                                                                              "2019-01-03 07:30:00 -0800")
    /* a food correlation: skipped, its member also at top level */
    " <Correlation type=\"HKCorrelationTypeIdentifierFood\" sourceName=\"MyFitnessPal\" "
    "startDate=\"2019-01-03 12:00:00 -0800\" endDate=\"2019-01-03 12:00:00 -0800\">\n"
    "  <Record type=\"HKQuantityTypeIdentifierDietaryEnergyConsumed\" sourceName=\"MyFitnessPal\" "
    "unit=\"kcal\" startDate=\"2019-01-03 12:00:00 -0800\" endDate=\"2019-01-03 12:00:00 -0800\" "
    "value=\"540\"/>\n"
    " </Correlation>\n"
    " <Record type=\"HKQuantityTypeIdentifierDietaryEnergyConsumed\" sourceName=\"MyFitnessPal\" "
    "unit=\"kcal\" startDate=\"2019-01-03 12:00:00 -0800\" endDate=\"2019-01-03 12:00:00 -0800\" "
    "value=\"540\"/>\n"
    " <Record type=\"HKQuantityTypeIdentifierOxygenSaturation\" sourceName=\"NJR Apple Watch\" "
    "unit=\"%\" startDate=\"2019-01-04 03:10:00 -0800\" endDate=\"2019-01-04 03:10:00 -0800\" "
    "value=\"0.97\"/>\n"
    " <Record type=\"HKCategoryTypeIdentifierSleepAnalysis\" sourceName=\"Sleep++\" "
    "startDate=\"2019-01-03 23:00:00 -0800\" endDate=\"2019-01-04 07:00:00 -0800\" "
    "value=\"HKCategoryValueSleepAnalysisInBed\"/>\n"
    " <Record type=\"HKCategoryTypeIdentifierSleepAnalysis\" sourceName=\"Sleep++\" "
    "startDate=\"2019-01-03 23:15:00 -0800\" endDate=\"2019-01-04 06:45:00 -0800\" "
    "value=\"HKCategoryValueSleepAnalysisAsleepCore\"/>\n"
    " <Workout workoutActivityType=\"HKWorkoutActivityTypeWalking\" duration=\"30\" "
    "durationUnit=\"min\" sourceName=\"W\" startDate=\"2019-01-04 08:00:00 -0800\" "
    "endDate=\"2019-01-04 08:30:00 -0800\">\n"
    "  <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"W\" unit=\"count/min\" "
    "startDate=\"2019-01-04 08:00:00 -0800\" endDate=\"2019-01-04 08:00:00 -0800\" value=\"99\"/>\n"
    "  <WorkoutEvent type=\"HKWorkoutEventTypePause\" date=\"2019-01-04 08:10:00 -0800\"/>\n"
    " </Workout>\n"
    " <ActivitySummary dateComponents=\"2019-01-04\" activeEnergyBurned=\"300\"/>\n"
    "</HealthData>\n";

static void test_export_correlations(void **state)
{
    xread_t x;
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    const json_t *meta;
    (void)state;
    assert_int_equal(read_text(export_doc, &x, &err), 0);
    /* HR, BP 1, BP 2, dietary energy (top level), SpO2, in bed, asleep */
    assert_int_equal(x.samples, 7);
    assert_int_equal(x.got.readings, 5);   /* HR, BP 1, BP 2, SpO2, sleep */
    assert_int_equal(x.got.rejections, 1); /* dietary energy: unknown type */

    r = &x.got.r[0];
    assert_string_equal(r->measure->key, "heart-rate");
    assert_value(r, 0, "72", "/min", "count/min");
    assert_string_equal(r->start, "2019-01-02T07:31:00-08:00");
    assert_string_equal(r->end, "");
    assert_string_equal(r->source_name, "NJR Apple Watch");
    assert_string_equal(r->device.name, "Apple Watch");
    assert_string_equal(r->device.manufacturer, "Apple");
    assert_string_equal(r->device.model, "Watch3,4");
    assert_string_equal(r->device.version, "5.1.2");
    /* the HR sample as passed: metadata, the device string unparsed */
    meta = json_object_get(x.first, "metadata");
    assert_int_equal(json_object_size(meta), 1);
    assert_string_equal(
        json_string_value(json_object_get(meta, "HKMetadataKeyHeartRateMotionContext")), "0");
    assert_string_equal(json_string_value(json_object_get(x.first, "device")),
                        "<<HKDevice: 0x283c0d7c0>, name:Apple Watch, manufacturer:Apple, "
                        "model:Watch, hardware:Watch3,4, software:5.1.2>");

    r = &x.got.r[1];
    assert_string_equal(r->measure->key, "blood-pressure");
    assert_int_equal(r->n_values, 2);
    assert_value(r, 0, "121", "mm[Hg]", "mmHg");
    assert_value(r, 1, "79", "mm[Hg]", "mmHg");
    assert_string_equal(r->start, "2019-01-02T07:30:00-08:00");
    assert_string_equal(r->end, "");
    assert_string_equal(r->source_name, "Omron");
    r = &x.got.r[2];
    assert_string_equal(r->measure->key, "blood-pressure");
    assert_value(r, 0, "133", "mm[Hg]", "mmHg");
    assert_value(r, 1, "88", "mm[Hg]", "mmHg");
    assert_string_equal(r->start, "2019-01-03T07:30:00-08:00");

    assert_non_null(strstr(x.got.why[3], "HKQuantityTypeIdentifierDietaryEnergyConsumed"));
    r = &x.got.r[4];
    assert_string_equal(r->measure->key, "oxygen-saturation");
    assert_value(r, 0, "97", "%", "%");
    r = &x.got.r[5];
    assert_string_equal(r->measure->key, "sleep-duration");
    assert_value(r, 0, "450", "min", "");
    assert_string_equal(r->start, "2019-01-03T23:15:00-08:00");
    assert_string_equal(r->end, "2019-01-04T06:45:00-08:00");
    assert_int_equal(x.n_progress, 1);
    assert_int_equal(x.progress[0], strlen(export_doc));
    xread_free(&x);
}

/* The correlation as passed: attributes, metadata, objects. */
static int on_correlation(void *ctx, json_t *sample)
{
    int *seen = ctx;
    const char *type = json_string_value(json_object_get(sample, "type"));
    const json_t *objects = json_object_get(sample, "objects");
    if (strcmp(type, "HKCorrelationTypeIdentifierBloodPressure") != 0)
        return 0;
    if (++*seen == 1) {
        assert_int_equal(json_array_size(objects), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(objects, 0), "type")),
                            "HKQuantityTypeIdentifierBloodPressureDiastolic");
        assert_string_equal(
            vl_json_number_text(json_object_get(json_array_get(objects, 1), "value")), "121");
        assert_string_equal(json_string_value(json_object_get(json_object_get(sample, "metadata"),
                                                              "HKWasUserEntered")),
                            "1");
        assert_string_equal(json_string_value(json_object_get(sample, "sourceVersion")), "7.2");
    }
    return 0;
}

static void test_export_correlation_sample(void **state)
{
    char path[64];
    int seen = 0, fd;
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    write_temp(export_doc, path);
    fd = open(path, O_RDONLY);
    assert_int_equal(vl_ingest_healthkit_xml(fd, on_correlation, &seen, NULL, NULL, &err), 0);
    assert_int_equal(seen, 2);
    close(fd);
    unlink(path);
}

static void expect_400(const char *text, const char *want)
{
    xread_t x;
    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(read_text(text, &x, &err), -1);
    assert_int_equal(err.status, 400);
    if (!strstr(vl_error_message(&err), want))
        fail_msg("%s: got \"%s\", want \"%s\"", text, vl_error_message(&err), want);
    vl_error_clear(&err);
    xread_free(&x);
}

static void test_export_errors(void **state)
{
    xread_t x;
    vl_error_t err = VL_ERROR_INIT;
    char *text;
    (void)state;
    expect_400("<?xml version=\"1.0\"?>\n<HealthData>\n <Record type=\"a\"\n</HealthData>\n",
               "line 4: not well-formed XML");
    expect_400("<HealthData>\n <Record type=\"a\">\n</HealthData>\n", "line 3");
    expect_400("<?xml version=\"1.0\"?>\n<Bundle><entry/></Bundle>\n",
               "line 2: not an Apple Health export (the root element is <Bundle>");
    expect_400("", "not");
    expect_400("{\"resourceType\": \"Bundle\"}", "line 1: not well-formed XML");
    expect_400("<?xml version=\"1.0\"?>\n<!-- nothing -->\n", "not");
    /* cut off in the middle of a record: a 400 after the samples before it */
    text = malloc(sizeof export_doc);
    memcpy(text, export_doc, sizeof export_doc);
    text[strstr(export_doc, "HKCorrelationTypeIdentifierFood") - export_doc] = '\0';
    assert_int_equal(read_text(text, &x, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(x.samples, 3); /* HR, BP 1, BP 2 */
    vl_error_clear(&err);
    xread_free(&x);
    free(text);

    /* the callback stops the read: -1, no error */
    stop_next = 2;
    assert_int_equal(read_text(export_doc, &x, &err), -1);
    assert_int_equal(err.status, 0);
    assert_int_equal(x.samples, 2);
    xread_free(&x);
    stop_next = 0;

    /* a read error: 500 */
    assert_int_equal(read_export_fd(-1, &x, &err), -1);
    assert_int_equal(err.status, 500);
    vl_error_clear(&err);
    xread_free(&x);
}

/* An external entity is neither fetched nor substituted; an entity bomb
 * stops with a 400. */
static void test_export_entities(void **state)
{
    char inner[64], doc[1024];
    xread_t x;
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    write_temp(
        "<Record type=\"HKQuantityTypeIdentifierStepCount\" sourceName=\"evil\" unit=\"count\" "
        "startDate=\"2019-01-01 00:00:00 +0000\" endDate=\"2019-01-01 00:00:00 +0000\" "
        "value=\"1\"/>",
        inner);
    snprintf(doc, sizeof doc,
             "<?xml version=\"1.0\"?>\n<!DOCTYPE HealthData [\n<!ENTITY ext SYSTEM \"file://%s\">\n"
             "<!ENTITY net SYSTEM \"http://192.0.2.1/x.xml\">\n]>\n"
             "<HealthData>&ext;&net;</HealthData>\n",
             inner);
    assert_int_equal(read_text(doc, &x, &err), 0);
    assert_int_equal(x.samples, 0);
    xread_free(&x);
    unlink(inner);

    expect_400("<?xml version=\"1.0\"?>\n<!DOCTYPE HealthData [\n"
               "<!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n"
               "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
               "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
               "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
               "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
               "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\n"
               "<!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">\n"
               "]>\n<HealthData><Record type=\"&g;\"/></HealthData>\n",
               "not well-formed XML");
}

static const char big_correlation[] =
    " <Correlation type=\"HKCorrelationTypeIdentifierBloodPressure\" sourceName=\"Omron\" "
    "startDate=\"2019-01-%02d %02d:%02d:%02d +0000\" endDate=\"2019-01-%02d %02d:%02d:%02d "
    "+0000\">\n"
    "  " BP_RECORD("Systolic", "120", "2019-01-01 00:00:00 +0000") "  " BP_RECORD(
        "Diastolic", "80", "2019-01-01 00:00:00 +0000") " </Correlation>\n";

/* A generated export of 200,000 records (about 50 MB) in /tmp: every one
 * passed and normalized, progress every 4 MiB. */
static void test_export_big(void **state)
{
    char path[64];
    FILE *f;
    int fd;
    xread_t x;
    vl_error_t err = VL_ERROR_INIT;
    long size;
    (void)state;
    write_temp(EXPORT_HEAD, path);
    f = fopen(path, "a");
    assert_non_null(f);
    for (int i = 0; i < 200000; i++) {
        int s = i % 60, m = (i / 60) % 60, h = (i / 3600) % 24, d = 1 + i / 86400;
        if (i % 1000 == 999)
            fprintf(f, big_correlation, d, h, m, s, d, h, m, s);
        else
            fprintf(f,
                    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Watch\" "
                    "device=\"" DEVICE "\" unit=\"count/min\" "
                    "creationDate=\"2019-01-%02d %02d:%02d:%02d +0000\" "
                    "startDate=\"2019-01-%02d %02d:%02d:%02d +0000\" "
                    "endDate=\"2019-01-%02d %02d:%02d:%02d +0000\" value=\"%d\">\n"
                    "  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" value=\"1\"/>\n"
                    " </Record>\n",
                    d, h, m, s, d, h, m, s, d, h, m, s, 50 + i % 100);
    }
    fputs("</HealthData>\n", f);
    size = ftell(f);
    fclose(f);
    fd = open(path, O_RDONLY);
    assert_int_equal(read_export_fd(fd, &x, &err), 0);
    close(fd);
    unlink(path);
    assert_int_equal(x.samples, 200000);
    assert_int_equal(x.got.readings, 200000);
    assert_int_equal(x.got.rejections, 0);
    /* one call per 4 MiB boundary crossed, then one at the end */
    assert_int_equal(x.n_progress, (size_t)(size / (4 << 20)) + 1);
    for (size_t i = 1; i < x.n_progress && i < 64; i++)
        assert_true(x.progress[i] > x.progress[i - 1]);
    assert_int_equal(x.progress[x.n_progress - 1], (uint64_t)size);
    assert_string_equal(x.got.r[0].start, "2019-01-01T00:00:00+00:00");
    xread_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heart_rate_sample),
        cmocka_unit_test(test_quantity_types),
        cmocka_unit_test(test_oxygen_saturation_fraction),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_local_time_with_tz),
        cmocka_unit_test(test_sleep),
        cmocka_unit_test(test_blood_pressure),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_device_strings),
        cmocka_unit_test(test_mapping_table),
        cmocka_unit_test(test_export_sample_file),
        cmocka_unit_test(test_export_correlations),
        cmocka_unit_test(test_export_correlation_sample),
        cmocka_unit_test(test_export_errors),
        cmocka_unit_test(test_export_entities),
        cmocka_unit_test(test_export_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
