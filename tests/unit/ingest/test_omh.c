/*
 * Unit tests for src/ingest/omh.c: Open mHealth data points and bodies.
 *
 *   - every shouldPass document of the 14 measure schemas
 *     (tests/data/ingest/omh/<schema>/<version>/shouldPass, 120 files) gives
 *     exactly its expected reading (measure, LOINC, values, units, time,
 *     statistic) or, for the documents a FHIR Observation cannot come from
 *     (no time, an interval that ends before it starts, a date without a
 *     zone), exactly one rejection naming why; every shouldFail document
 *     (120 files) gives no reading, each rejected for the reason it fails;
 *     a directory walk checks that both tables list every file;
 *   - hand spot checks of several files (panel components, notes,
 *     specimens, steps per day);
 *   - data points (header ids, source names, modality, the header and
 *     data-point test documents), arrays, every unit of the mapping
 *     table, time intervals (durations, calendar days, part of day with
 *     a zone), statistics, glucose specimens and broken documents.
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

#include "vitalog/ingest.h"
#include "vitalog/util.h"

#include "../support.h"

#define OMH_DATA VL_TEST_DATA "/ingest/omh/"

/* ------------------------------------------------------------------------
 * Helpers: run a document, collect what it emits
 * ---------------------------------------------------------------------- */

#define MAX_GOT 16

typedef struct got {
    vl_ingest_reading_t r;
    char why[256]; /* "" for a reading */
} got_t;

typedef struct sink {
    got_t items[MAX_GOT];
    size_t n, readings, rejections;
    int stop_after; /* return -1 after this many emits (0: never) */
} sink_t;

static int collect(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    sink_t *s = ctx;
    assert_non_null(r);
    assert_true(s->n < MAX_GOT);
    s->items[s->n].r = *r;
    snprintf(s->items[s->n].why, sizeof s->items[s->n].why, "%s", why ? why : "");
    s->n++;
    if (why) {
        s->rejections++;
        assert_non_null(r->path);
        assert_true(r->path[0] == '/');
    } else {
        s->readings++;
        assert_non_null(r->measure);
    }
    return s->stop_after && s->n >= (size_t)s->stop_after ? -1 : 0;
}

static json_t *parse(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, vl_error_message(&err));
    return j;
}

/* Runs a parsed document; returns the normalizer's result. */
static int run_json(const json_t *doc, const char *tz, sink_t *s, vl_error_t *err)
{
    vl_ingest_options_t o = {tz};
    memset(s, 0, sizeof *s);
    return vl_ingest_omh(doc, &o, collect, s, err);
}

static int run_text(const char *text, const char *tz, sink_t *s)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = parse(text);
    int rc = run_json(doc, tz, s, &err);
    if (rc < 0)
        assert_int_equal(err.status, 400);
    vl_error_clear(&err);
    json_decref(doc);
    return rc;
}

static json_t *load(const char *rel)
{
    char path[512];
    size_t len;
    char *text;
    json_t *doc;
    vl_error_t err = VL_ERROR_INIT;
    snprintf(path, sizeof path, OMH_DATA "%s", rel);
    text = test_read_file(path, &len);
    if (!text)
        fail_msg("cannot read %s", path);
    doc = vl_json_parse(text, len, NULL, &err);
    if (!doc)
        fail_msg("cannot parse %s: %s", path, vl_error_message(&err));
    free(text);
    return doc;
}

static int run_file(const char *rel, const char *tz, sink_t *s)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = load(rel);
    int rc = run_json(doc, tz, s, &err);
    if (rc < 0)
        assert_int_equal(err.status, 400);
    vl_error_clear(&err);
    json_decref(doc);
    return rc;
}

/* The one reading a document gave. */
static const vl_ingest_reading_t *one_reading(const sink_t *s, const char *what)
{
    if (s->n != 1 || s->readings != 1)
        fail_msg("%s: %zu emits, %zu readings (first why: %s)", what, s->n, s->readings,
                 s->n ? s->items[0].why : "-");
    return &s->items[0].r;
}

/* The one rejection a document gave; its why must contain `part`. */
static const vl_ingest_reading_t *one_rejection(const sink_t *s, const char *part, const char *what)
{
    if (s->n != 1 || s->rejections != 1)
        fail_msg("%s: %zu emits, %zu rejections", what, s->n, s->rejections);
    if (!strstr(s->items[0].why, part))
        fail_msg("%s: why \"%s\" lacks \"%s\"", what, s->items[0].why, part);
    return &s->items[0].r;
}

static void check_value(const vl_ingest_reading_t *r, size_t i, const char *loinc,
                        const char *value, const char *unit, const char *source_unit)
{
    assert_true(i < r->n_values);
    assert_string_equal(r->values[i].loinc, loinc);
    assert_string_equal(r->values[i].value, value);
    assert_string_equal(r->values[i].unit, unit);
    assert_string_equal(r->values[i].source_unit, source_unit);
}

/* ------------------------------------------------------------------------
 * The test documents, every one
 * ---------------------------------------------------------------------- */

typedef struct pass {
    const char *file;
    const char *measure; /* NULL: rejected, `why` names the reason */
    const char *value, *unit, *source_unit;
    const char *value2; /* blood pressure: the diastolic */
    const char *start, *end, *statistic;
    const char *why;
} pass_t;

typedef struct fail {
    const char *file;
    const char *why; /* NULL: not an OMH document at all (-1) */
} fail_t;

#define READING(f, m, v, u, su, s, e, st)                                                          \
    {                                                                                              \
        f, m, v, u, su, NULL, s, e, st, NULL                                                       \
    }
#define BP(f, sys, dia, s, e, st)                                                                  \
    {                                                                                              \
        f, "blood-pressure", sys, "mm[Hg]", "mmHg", dia, s, e, st, NULL                            \
    }
#define REJECT(f, w)                                                                               \
    {                                                                                              \
        f, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, w                                       \
    }

/* Expected by hand from each file (values as their exact JSON text). The
 * 1.x documents without effective_time_frame are rejected: a reading
 * needs a time (their 2.x twins are shouldFail). Three documents end
 * before they start (a FHIR Period cannot), two use date + part_of_day
 * (needs a zone; with one, see test_part_of_day). */
static const pass_t should_pass[] = {
    REJECT("heart-rate/1.0/shouldPass/heart-rate-only.json", "effective_time_frame is missing"),
    READING("heart-rate/1.0/shouldPass/with-everything.json", "heart-rate", "50", "/min",
            "beats/min", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("heart-rate/1.0/shouldPass/with-temporal-relationship-to-physical-activity.json",
            "heart-rate", "50", "/min", "beats/min", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("heart-rate/1.0/shouldPass/with-time-frame.json", "heart-rate", "60", "/min",
            "beats/min", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("heart-rate/1.0/shouldPass/with-user-notes.json", "heart-rate", "50", "/min",
            "beats/min", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("heart-rate/1.1/shouldPass/with-temporal-relationship-to-sleep.json", "heart-rate",
            "50", "/min", "beats/min", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("heart-rate/2.0/shouldPass/with-descriptive-statistic.json", "heart-rate", "50.0",
            "/min", "beats/min", "2020-02-05T06:00:00+01:00", "2020-02-06T06:00:00+01:00",
            "minimum"),
    READING("heart-rate/2.0/shouldPass/with-temporal-relationship-to-sleep.json", "heart-rate",
            "67.5", "/min", "beats/min", "2020-02-05T07:25:00-08:00", NULL, NULL),
    REJECT("blood-pressure/1.0/shouldPass/blood-pressure-only.json",
           "effective_time_frame is missing"),
    BP("blood-pressure/1.0/shouldPass/with-date-time-time-frame.json", "160", "60",
       "2013-02-05T07:25:00Z", NULL, NULL),
    BP("blood-pressure/1.0/shouldPass/with-descriptive-statistic.json", "160", "60",
       "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "maximum"),
    BP("blood-pressure/1.0/shouldPass/with-everything.json", "100", "60", "2013-02-05T07:25:00Z",
       "2013-06-05T07:25:00Z", "minimum"),
    REJECT("blood-pressure/1.0/shouldPass/with-position.json", "effective_time_frame is missing"),
    REJECT("blood-pressure/1.0/shouldPass/with-time-frame.json", "needs a zone: give a tz"),
    REJECT("blood-pressure/1.0/shouldPass/with-user-notes.json", "effective_time_frame is missing"),
    REJECT("blood-pressure/2.0/shouldPass/blood-pressure-only.json",
           "effective_time_frame is missing"),
    BP("blood-pressure/2.0/shouldPass/with-descriptive-statistic.json", "160", "60",
       "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "maximum"),
    REJECT("blood-pressure/2.0/shouldPass/with-posture.json", "effective_time_frame is missing"),
    BP("blood-pressure/3.0/shouldPass/blood-pressure-only.json", "115", "60",
       "2020-02-05T07:25:00-08:00", NULL, NULL),
    BP("blood-pressure/3.0/shouldPass/with-descriptive-statistic.json", "160", "60",
       "2020-02-05T07:00:00-08:00", "2020-02-12T07:00:00-08:00", "maximum"),
    BP("blood-pressure/3.0/shouldPass/with-posture-and-location.json", "140", "60",
       "2020-02-05T07:25:00-08:00", NULL, NULL),
    BP("blood-pressure/3.1/shouldPass/with-posture-location-pa-relation.json", "125", "60",
       "2020-02-05T07:25:00-08:00", NULL, NULL),
    BP("blood-pressure/4.0/shouldPass/blood-pressure-only.json", "115", "60",
       "2020-02-05T07:25:00-08:00", NULL, NULL),
    BP("blood-pressure/4.0/shouldPass/with-descriptive-statistic.json", "160", "60",
       "2020-02-05T07:00:00-08:00", "2020-02-12T07:00:00-08:00", "maximum"),
    BP("blood-pressure/4.0/shouldPass/with-posture-and-location.json", "140", "60",
       "2020-02-05T07:25:00-08:00", NULL, NULL),
    BP("blood-pressure/4.0/shouldPass/with-posture-location-relation.json", "125", "60",
       "2020-02-05T07:25:00-08:00", NULL, NULL),
    READING("body-temperature/1.0/shouldPass/valid-temperature-with-statistic.json",
            "body-temperature", "96.5", "[degF]", "F", "2015-02-05T06:00:00Z",
            "2015-02-06T06:00:00Z", "average"),
    READING("body-temperature/1.0/shouldPass/valid-temperature.json", "body-temperature", "97",
            "[degF]", "F", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("body-temperature/2.0/shouldPass/basal-temperature.json", "body-temperature", "96.5",
            "[degF]", "F", "2013-02-05T06:25:00Z", NULL, NULL),
    READING("body-temperature/2.0/shouldPass/valid-temperature-with-statistic.json",
            "body-temperature", "96.5", "[degF]", "F", "2015-02-05T06:00:00Z",
            "2015-02-06T06:00:00Z", "maximum"),
    READING("body-temperature/2.0/shouldPass/valid-temperature.json", "body-temperature", "97",
            "[degF]", "F", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("body-temperature/3.0/shouldPass/basal-temperature.json", "body-temperature", "96.5",
            "[degF]", "F", "2013-02-05T06:25:00Z", NULL, NULL),
    READING("body-temperature/3.0/shouldPass/valid-temperature-with-statistic.json",
            "body-temperature", "96.5", "[degF]", "F", "2020-02-05T06:00:00-08:00",
            "2020-02-06T06:00:00-08:00", "maximum"),
    READING("body-temperature/3.0/shouldPass/valid-temperature.json", "body-temperature", "97",
            "[degF]", "F", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("body-temperature/4.0/shouldPass/basal-temperature.json", "body-temperature", "96.5",
            "[degF]", "F", "2023-02-05T06:25:00Z", NULL, NULL),
    REJECT("body-temperature/4.0/shouldPass/valid-temperature-with-statistic.json",
           "ends (2020-03-06T06:00:00-08:00) before it starts (2023-02-05T06:00:00-08:00)"),
    READING("body-temperature/4.0/shouldPass/valid-temperature.json", "body-temperature", "97",
            "[degF]", "F", "2023-02-05T07:25:00+01:00", NULL, NULL),
    READING("oxygen-saturation/1.0/shouldPass/saturation-only.json", "oxygen-saturation", "95", "%",
            "%", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("oxygen-saturation/1.0/shouldPass/with-oxygen.json", "oxygen-saturation", "95", "%",
            "%", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("oxygen-saturation/2.0/shouldPass/saturation-only.json", "oxygen-saturation", "95", "%",
            "%", "2013-02-05T07:25:00-08:00", NULL, NULL),
    READING("oxygen-saturation/2.0/shouldPass/saturation-with-statistics.json", "oxygen-saturation",
            "93", "%", "%", "2020-02-05T06:00:00+01:00", "2020-02-06T06:00:00+01:00", "minimum"),
    READING("oxygen-saturation/2.0/shouldPass/with-oxygen.json", "oxygen-saturation", "95", "%",
            "%", "2013-02-05T07:25:00Z", NULL, NULL),
    REJECT("blood-glucose/1.0/shouldPass/blood-glucose-only.json",
           "effective_time_frame is missing"),
    REJECT("blood-glucose/1.0/shouldPass/with-blood-specimen-type.json",
           "effective_time_frame is missing"),
    READING("blood-glucose/1.0/shouldPass/with-date-time-time-frame.json", "blood-glucose", "95",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("blood-glucose/1.0/shouldPass/with-descriptive-statistic.json", "blood-glucose", "120",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    READING("blood-glucose/1.0/shouldPass/with-everything.json", "blood-glucose", "120", "mg/dL",
            "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    REJECT("blood-glucose/1.0/shouldPass/with-temporal-relationship-to-meal.json",
           "effective_time_frame is missing"),
    REJECT("blood-glucose/1.0/shouldPass/with-temporal-relationship-to-sleep.json",
           "effective_time_frame is missing"),
    READING("blood-glucose/1.0/shouldPass/with-time-interval-time-frame.json", "blood-glucose",
            "95", "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", NULL),
    REJECT("blood-glucose/1.0/shouldPass/with-user-notes.json", "effective_time_frame is missing"),
    REJECT("blood-glucose/2.0/shouldPass/blood-glucose-only.json",
           "effective_time_frame is missing"),
    READING("blood-glucose/2.0/shouldPass/with-date-time-time-frame.json", "blood-glucose", "95",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("blood-glucose/2.0/shouldPass/with-descriptive-statistic.json", "blood-glucose", "120",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    READING("blood-glucose/2.0/shouldPass/with-everything.json", "cgm-glucose", "120", "mg/dL",
            "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    REJECT("blood-glucose/2.0/shouldPass/with-specimen-source.json",
           "effective_time_frame is missing"),
    READING("blood-glucose/2.0/shouldPass/with-temporal-relationship-to-meal.json", "blood-glucose",
            "95", "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("blood-glucose/2.0/shouldPass/with-temporal-relationship-to-sleep.json",
            "blood-glucose", "95", "mg/dL", "mg/dL", "2013-02-05T20:25:00Z", NULL, NULL),
    READING("blood-glucose/3.0/shouldPass/with-date-time-time-frame.json", "blood-glucose", "95",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("blood-glucose/3.0/shouldPass/with-descriptive-statistic.json", "blood-glucose", "120",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    READING("blood-glucose/3.0/shouldPass/with-everything.json", "blood-glucose", "95", "mg/dL",
            "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    READING("blood-glucose/3.0/shouldPass/with-temporal-relationship-to-meal.json", "blood-glucose",
            "95", "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("blood-glucose/3.0/shouldPass/with-temporal-relationship-to-sleep.json",
            "blood-glucose", "95", "mg/dL", "mg/dL", "2013-02-05T20:25:00Z", NULL, NULL),
    READING("blood-glucose/4.0/shouldPass/with-date-time-time-frame.json", "blood-glucose", "95",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("blood-glucose/4.0/shouldPass/with-descriptive-statistic.json", "blood-glucose", "120",
            "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    READING("blood-glucose/4.0/shouldPass/with-everything.json", "blood-glucose", "95", "mg/dL",
            "mg/dL", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    READING("blood-glucose/4.0/shouldPass/with-temporal-relationship-to-meal.json", "blood-glucose",
            "95", "mg/dL", "mg/dL", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("blood-glucose/4.0/shouldPass/with-temporal-relationship-to-sleep.json",
            "blood-glucose", "95", "mg/dL", "mg/dL", "2013-02-05T20:25:00Z", NULL, NULL),
    REJECT("body-weight/1.0/shouldPass/body-weight-only.json", "effective_time_frame is missing"),
    READING("body-weight/1.0/shouldPass/date-time-time-frame.json", "body-weight", "50", "kg", "kg",
            "2013-02-05T07:25:00Z", NULL, NULL),
    READING("body-weight/1.0/shouldPass/time-interval-time-frame.json", "body-weight", "50", "kg",
            "kg", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", NULL),
    READING("body-weight/1.0/shouldPass/with-descriptive-statistic.json", "body-weight", "50", "kg",
            "kg", "2013-02-05T07:25:00Z", "2013-06-05T07:25:00Z", "minimum"),
    READING("body-weight/2.0/shouldPass/body-weight-only.json", "body-weight", "50", "kg", "kg",
            "2020-02-05T09:45:00-08:00", NULL, NULL),
    READING("body-weight/2.0/shouldPass/with-descriptive-statistic.json", "body-weight", "49.5",
            "kg", "kg", "2020-02-05T09:45:00-08:00", "2020-03-05T10:40:00-08:00", "minimum"),
    READING("body-weight/3.0/shouldPass/body-weight-only.json", "body-weight", "50", "kg", "kg",
            "2020-02-05T09:45:00-08:00", NULL, NULL),
    READING("body-weight/3.0/shouldPass/with-descriptive-statistic.json", "body-weight", "49.5",
            "kg", "kg", "2020-02-05T09:45:00-08:00", "2020-03-05T10:40:00-08:00", "minimum"),
    REJECT("body-height/1.0/shouldPass/body-height-only.json", "effective_time_frame is missing"),
    READING("body-height/1.0/shouldPass/with-descriptive-statistic.json", "body-height", "180",
            "cm", "cm", "2013-01-01T00:00:00Z", "2013-12-31T23:59:59Z", "maximum"),
    REJECT("body-height/1.0/shouldPass/with-time-frame.json", "needs a zone: give a tz"),
    READING("body-height/2.0/shouldPass/body-height-only.json", "body-height", "180", "cm", "cm",
            "2023-02-05T07:25:00Z", NULL, NULL),
    READING("body-height/2.0/shouldPass/with-descriptive-statistic.json", "body-height", "180",
            "cm", "cm", "2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z", "maximum"),
    REJECT("body-mass-index/1.0/shouldPass/body-mass-index-only.json",
           "effective_time_frame is missing"),
    READING("body-mass-index/1.0/shouldPass/with-everything.json", "body-mass-index", "16", "kg/m2",
            "kg/m2", "2013-01-01T00:00:00Z", "2013-12-31T23:59:59Z", "maximum"),
    READING("body-mass-index/2.0/shouldPass/valid-body-mass-index.json", "body-mass-index", "16",
            "kg/m2", "kg/m^2", "2013-01-01T00:00:00Z", NULL, NULL),
    READING("body-mass-index/2.0/shouldPass/with-everything.json", "body-mass-index", "16", "kg/m2",
            "kg/m^2", "2013-01-01T00:00:00Z", "2013-12-31T23:59:59Z", "maximum"),
    READING("body-mass-index/3.0/shouldPass/valid-body-mass-index.json", "body-mass-index", "16",
            "kg/m2", "kg/m^2", "2024-01-01T00:00:00Z", NULL, NULL),
    READING("body-mass-index/3.0/shouldPass/with-everything.json", "body-mass-index", "16", "kg/m2",
            "kg/m^2", "2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z", "maximum"),
    REJECT("respiratory-rate/1.0/shouldPass/respiratory-rate-only.json",
           "effective_time_frame is missing"),
    READING("respiratory-rate/1.0/shouldPass/with-statistic.json", "respiratory-rate", "10", "/min",
            "breaths/min", "2013-02-05T07:25:00Z", "2013-02-06T07:25:00Z", "minimum"),
    READING("respiratory-rate/1.0/shouldPass/with-temporal-relationship-to-physical-activity.json",
            "respiratory-rate", "12", "/min", "breaths/min", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("respiratory-rate/1.0/shouldPass/with-time-frame.json", "respiratory-rate", "12",
            "/min", "breaths/min", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("respiratory-rate/2.0/shouldPass/respiratory-rate-only.json", "respiratory-rate", "12",
            "/min", "breaths/min", "2020-02-05T07:25:00-08:00", NULL, NULL),
    READING("respiratory-rate/2.0/shouldPass/with-statistic.json", "respiratory-rate", "10", "/min",
            "breaths/min", "2020-02-05T07:05:00-08:00", "2020-02-05T08:05:00-08:00", "minimum"),
    READING("respiratory-rate/2.0/shouldPass/with-temporal-relationship-to-physical-activity.json",
            "respiratory-rate", "11", "/min", "breaths/min", "2020-02-05T07:25:00-08:00", NULL,
            NULL),
    REJECT("step-count/1.0/shouldPass/step-count-only.json", "effective_time_frame is missing"),
    READING("step-count/1.0/shouldPass/with-time-frame.json", "step-count", "6000", "{steps}", "",
            "2013-02-05T06:25:00Z", "2013-02-05T07:25:00Z", NULL),
    READING("step-count/2.0/shouldPass/valid-step-count.json", "step-count", "6000", "{steps}", "",
            "2016-02-05T06:25:00Z", "2016-02-05T07:25:00Z", NULL),
    READING("step-count/2.0/shouldPass/with-average.json", "steps-day", "12000", "/d", "",
            "2016-05-05T07:00:00Z", "2016-06-05T07:00:00Z", "average"),
    READING("step-count/2.0/shouldPass/with-maximum.json", "steps-day", "20000", "/d", "",
            "2016-02-05T07:00:00Z", "2016-06-05T07:00:00Z", "maximum"),
    READING("step-count/2.0/shouldPass/with-session.json", "step-count", "20000", "{steps}", "",
            "2016-02-05T07:00:00Z", "2016-06-05T07:00:00Z", "maximum"),
    READING("step-count/3.0/shouldPass/valid-step-count.json", "step-count", "10600", "{steps}",
            "steps", "2016-02-05T06:25:00Z", "2016-02-05T07:25:00Z", NULL),
    READING("step-count/3.0/shouldPass/with-average.json", "steps-day", "12500", "/d", "steps",
            "2016-05-05T07:00:00Z", "2016-06-05T07:00:00Z", "average"),
    READING("step-count/3.0/shouldPass/with-maximum.json", "steps-day", "20500", "/d", "steps",
            "2016-02-05T07:00:00Z", "2016-06-05T07:00:00Z", "maximum"),
    READING("step-count/3.0/shouldPass/with-session.json", "step-count", "26000", "{steps}",
            "steps", "2016-02-05T07:00:00Z", "2016-06-05T07:00:00Z", "maximum"),
    REJECT("rr-interval/1.0/shouldPass/rr-interval-only.json", "effective_time_frame is missing"),
    READING("rr-interval/1.0/shouldPass/with-statistic.json", "rr-interval", "30", "ms", "ms",
            "2013-02-05T07:25:00Z", "2013-02-06T07:25:00Z", "average"),
    READING("rr-interval/1.0/shouldPass/with-temporal-relationship-to-physical-activity.json",
            "rr-interval", "30", "ms", "ms", "2013-02-05T07:25:00Z", NULL, NULL),
    READING("rr-interval/1.0/shouldPass/with-time-frame.json", "rr-interval", "30", "ms", "ms",
            "2013-02-05T07:25:00Z", NULL, NULL),
    READING("sleep-duration/1.0/shouldPass/duration-longer-than-time-frame.json", "sleep-duration",
            "16", "h", "h", "2013-02-05T20:35:00Z", "2013-02-06T06:35:00Z", NULL),
    READING("sleep-duration/1.0/shouldPass/duration-shorter-than-time-frame.json", "sleep-duration",
            "6", "h", "h", "2013-02-05T20:35:00Z", "2013-02-06T06:35:00Z", NULL),
    READING("sleep-duration/1.0/shouldPass/with-user-notes.json", "sleep-duration", "6", "h", "h",
            "2013-02-05T20:35:00Z", "2013-02-06T06:35:00Z", NULL),
    READING("sleep-duration/2.0/shouldPass/valid-sleep-duration.json", "sleep-duration", "7.5", "h",
            "h", "2016-02-05T20:35:00Z", "2016-02-06T06:35:00Z", NULL),
    REJECT("sleep-duration/2.0/shouldPass/with-descriptive-statistic.json",
           "ends (2013-06-06T07:00:00Z) before it starts (2016-02-05T07:00:00Z)"),
    READING("total-sleep-time/1.0/shouldPass/valid-total-sleep-time.json", "sleep-duration", "465",
            "min", "min", "2016-02-05T20:35:00-08:00", "2016-02-06T06:35:00-08:00", NULL),
    READING("total-sleep-time/1.0/shouldPass/with-descriptive-statistic.json", "sleep-duration",
            "7.25", "h", "h", "2016-02-05T07:00:00-08:00", "2016-06-06T07:00:00-08:00", "average"),
    REJECT("calories-burned/1.0/shouldPass/calories-burned-only.json",
           "effective_time_frame is missing"),
    REJECT("calories-burned/1.0/shouldPass/with-activity.json", "effective_time_frame is missing"),
    READING("calories-burned/1.0/shouldPass/with-time-frame.json", "calories-burned", "160", "kcal",
            "kcal", "2013-02-05T06:25:00Z", "2013-02-05T07:25:00Z", NULL),
    READING("calories-burned/2.0/shouldPass/valid-calories-burned.json", "calories-burned", "1600",
            "kcal", "kcal", "2016-02-05T06:00:00Z", "2016-02-05T23:00:00Z", NULL),
    REJECT("calories-burned/2.0/shouldPass/with-descriptive-statistic.json",
           "ends (2013-06-06T07:00:00Z) before it starts (2016-02-05T07:00:00Z)"),
};

#undef REJECT
#undef BP
#undef READING

#define DOC(f)                                                                                     \
    {                                                                                              \
        f, NULL                                                                                    \
    }
#define WHY(f, w)                                                                                  \
    {                                                                                              \
        f, w                                                                                       \
    }
static const fail_t should_fail[] = {
    DOC("heart-rate/1.0/shouldFail/empty-document.json"),
    WHY("heart-rate/1.0/shouldFail/incorrect-unit.json",
        "heart_rate.unit \"beat/min\" is not a unit"),
    DOC("heart-rate/2.0/shouldFail/empty-document.json"),
    WHY("heart-rate/2.0/shouldFail/incorrect-unit.json",
        "heart_rate.unit \"beat/min\" is not a unit"),
    WHY("heart-rate/2.0/shouldFail/missing-effective-time-frame.json",
        "effective_time_frame is missing"),
    DOC("blood-pressure/1.0/shouldFail/empty-document.json"),
    DOC("blood-pressure/2.0/shouldFail/empty-document.json"),
    WHY("blood-pressure/2.0/shouldFail/invalid-unit.json", "systolic_blood_pressure.unit \"mmH\""),
    DOC("blood-pressure/3.0/shouldFail/empty-document.json"),
    WHY("blood-pressure/3.0/shouldFail/invalid-unit.json", "systolic_blood_pressure.unit \"mmH\""),
    WHY("blood-pressure/3.1/shouldFail/invalid-pa-value.json",
        "temporal_relationship_to_physical_activity \"rest\""),
    DOC("blood-pressure/4.0/shouldFail/empty-document.json"),
    WHY("blood-pressure/4.0/shouldFail/invalid-pa-value.json",
        "temporal_relationship_to_physical_activity \"rest\""),
    /* a bare body does not say it is 4.0 (whose IEEE time frame has no
     * date + part_of_day): without a zone it cannot be resolved either */
    WHY("blood-pressure/4.0/shouldFail/invalid-timeframe-format.json", "needs a zone: give a tz"),
    WHY("blood-pressure/4.0/shouldFail/invalid-unit.json", "systolic_blood_pressure.unit \"mmH\""),
    DOC("body-temperature/1.0/shouldFail/empty-document.json"),
    WHY("body-temperature/1.0/shouldFail/invalid-unit.json", "body_temperature.unit \"G\""),
    DOC("body-temperature/2.0/shouldFail/empty-document.json"),
    WHY("body-temperature/2.0/shouldFail/invalid-unit.json", "body_temperature.unit \"G\""),
    DOC("body-temperature/3.0/shouldFail/empty-document.json"),
    WHY("body-temperature/3.0/shouldFail/invalid-unit.json", "body_temperature.unit \"G\""),
    WHY("body-temperature/3.0/shouldFail/missing-effective-time-frame.json",
        "effective_time_frame is missing"),
    DOC("body-temperature/4.0/shouldFail/empty-document.json"),
    WHY("body-temperature/4.0/shouldFail/invalid-unit.json", "body_temperature.unit \"G\""),
    WHY("body-temperature/4.0/shouldFail/missing-effective-time-frame.json",
        "effective_time_frame is missing"),
    WHY("oxygen-saturation/1.0/shouldFail/invalid-oxygen-unit.json",
        "supplemental_oxygen_flow_rate.unit \"dL/min\""),
    WHY("oxygen-saturation/1.0/shouldFail/invalid-unit.json", "oxygen_saturation.unit \"g\""),
    WHY("oxygen-saturation/2.0/shouldFail/invalid-oxygen-unit.json",
        "supplemental_oxygen_flow_rate.unit \"dL/min\""),
    WHY("oxygen-saturation/2.0/shouldFail/invalid-unit.json", "oxygen_saturation.unit \"g\""),
    WHY("oxygen-saturation/2.0/shouldFail/missing-effective-time-frame.json",
        "effective_time_frame is missing"),
    DOC("blood-glucose/1.0/shouldFail/empty-document.json"),
    WHY("blood-glucose/1.0/shouldFail/invalid-blood-specimen-type.json",
        "blood_specimen_type \"plsma\""),
    WHY("blood-glucose/1.0/shouldFail/invalid-descriptive-statistic.json",
        "descriptive_statistic \"minmum\""),
    WHY("blood-glucose/1.0/shouldFail/invalid-temporal-relationship-to-meal.json",
        "temporal_relationship_to_meal \"fsting\""),
    WHY("blood-glucose/1.0/shouldFail/invalid-temporal-relationship-to-sleep.json",
        "temporal_relationship_to_sleep \"bfore sleeping\""),
    WHY("blood-glucose/1.0/shouldFail/invalid-time-frame.json",
        "exactly one of date_time and time_interval"),
    WHY("blood-glucose/1.0/shouldFail/invalid-time-interval.json",
        "time_interval needs start_date_time and end_date_time"),
    DOC("blood-glucose/2.0/shouldFail/empty-document.json"),
    WHY("blood-glucose/2.0/shouldFail/invalid-descriptive-statistic.json",
        "descriptive_statistic \"minmum\""),
    WHY("blood-glucose/2.0/shouldFail/invalid-specimen-source.json", "specimen_source \"fluid\""),
    WHY("blood-glucose/2.0/shouldFail/invalid-temporal-relationship-to-meal.json",
        "temporal_relationship_to_meal \"fsting\""),
    WHY("blood-glucose/2.0/shouldFail/invalid-temporal-relationship-to-sleep.json",
        "temporal_relationship_to_sleep \"bfore sleeping\""),
    WHY("blood-glucose/2.0/shouldFail/invalid-time-frame.json",
        "exactly one of date_time and time_interval"),
    WHY("blood-glucose/2.0/shouldFail/invalid-time-interval.json",
        "time_interval needs start_date_time and end_date_time"),
    DOC("blood-glucose/3.0/shouldFail/empty-document.json"),
    WHY("blood-glucose/3.0/shouldFail/invalid-descriptive-statistic.json",
        "descriptive_statistic \"minmum\""),
    WHY("blood-glucose/3.0/shouldFail/invalid-specimen-source.json", "specimen_source \"fluid\""),
    WHY("blood-glucose/3.0/shouldFail/invalid-temporal-relationship-to-meal.json",
        "temporal_relationship_to_meal \"fsting\""),
    WHY("blood-glucose/3.0/shouldFail/invalid-temporal-relationship-to-sleep.json",
        "temporal_relationship_to_sleep \"bfore sleeping\""),
    WHY("blood-glucose/3.0/shouldFail/invalid-time-interval.json",
        "time_interval needs start_date_time and end_date_time"),
    WHY("blood-glucose/3.0/shouldFail/missing-time-frame.json", "effective_time_frame is missing"),
    DOC("blood-glucose/4.0/shouldFail/empty-document.json"),
    WHY("blood-glucose/4.0/shouldFail/invalid-descriptive-statistic.json",
        "descriptive_statistic \"minmum\""),
    WHY("blood-glucose/4.0/shouldFail/invalid-specimen-source.json", "specimen_source \"fluid\""),
    WHY("blood-glucose/4.0/shouldFail/invalid-temporal-relationship-to-meal.json",
        "temporal_relationship_to_meal \"fsting\""),
    WHY("blood-glucose/4.0/shouldFail/invalid-temporal-relationship-to-sleep.json",
        "temporal_relationship_to_sleep \"bfore sleeping\""),
    WHY("blood-glucose/4.0/shouldFail/invalid-time-interval.json",
        "time_interval needs start_date_time and end_date_time"),
    WHY("blood-glucose/4.0/shouldFail/missing-time-frame.json", "effective_time_frame is missing"),
    DOC("body-weight/1.0/shouldFail/empty-document.json"),
    /* 1.0's copy also has the unit "km": the value is read first */
    WHY("body-weight/1.0/shouldFail/invalid-descriptive-statistic.json", "body_weight.unit \"km\""),
    WHY("body-weight/1.0/shouldFail/invalid-time-frame.json",
        "exactly one of date_time and time_interval"),
    WHY("body-weight/1.0/shouldFail/invalid-time-interval.json",
        "time_interval needs start_date_time and end_date_time"),
    WHY("body-weight/1.0/shouldFail/invalid-unit.json", "body_weight.unit \"km\""),
    WHY("body-weight/1.0/shouldFail/missing-body-weight-unit.json", "body_weight.unit is missing"),
    WHY("body-weight/1.0/shouldFail/missing-body-weight-value.json",
        "body_weight.value is missing"),
    DOC("body-weight/2.0/shouldFail/empty-document.json"),
    WHY("body-weight/2.0/shouldFail/invalid-descriptive-statistic.json",
        "descriptive_statistic \"minmum\""),
    WHY("body-weight/2.0/shouldFail/invalid-time-frame.json",
        "exactly one of date_time and time_interval"),
    WHY("body-weight/2.0/shouldFail/invalid-time-interval.json",
        "time_interval needs start_date_time and end_date_time"),
    WHY("body-weight/2.0/shouldFail/invalid-unit.json", "body_weight.unit \"km\""),
    WHY("body-weight/2.0/shouldFail/missing-body-weight-unit.json", "body_weight.unit is missing"),
    WHY("body-weight/2.0/shouldFail/missing-body-weight-value.json",
        "body_weight.value is missing"),
    DOC("body-weight/3.0/shouldFail/empty-document.json"),
    WHY("body-weight/3.0/shouldFail/invalid-descriptive-statistic.json",
        "descriptive_statistic \"minmum\""),
    WHY("body-weight/3.0/shouldFail/invalid-time-frame.json",
        "exactly one of date_time and time_interval"),
    WHY("body-weight/3.0/shouldFail/invalid-time-interval.json",
        "time_interval needs start_date_time and end_date_time"),
    WHY("body-weight/3.0/shouldFail/invalid-unit.json", "body_weight.unit \"km\""),
    WHY("body-weight/3.0/shouldFail/missing-body-weight-unit.json", "body_weight.unit is missing"),
    WHY("body-weight/3.0/shouldFail/missing-body-weight-value.json",
        "body_weight.value is missing"),
    DOC("body-height/1.0/shouldFail/empty-document.json"),
    DOC("body-height/2.0/shouldFail/empty-document.json"),
    WHY("body-height/2.0/shouldFail/missing-time-frame.json", "effective_time_frame is missing"),
    WHY("body-height/2.0/shouldFail/with-part-of-day.json", "needs a zone: give a tz"),
    DOC("body-mass-index/1.0/shouldFail/empty-document.json"),
    DOC("body-mass-index/2.0/shouldFail/empty-document.json"),
    DOC("body-mass-index/3.0/shouldFail/empty-document.json"),
    WHY("body-mass-index/3.0/shouldFail/missing-time-frame.json",
        "effective_time_frame is missing"),
    DOC("respiratory-rate/1.0/shouldFail/empty-document.json"),
    WHY("respiratory-rate/1.0/shouldFail/invalid-respiratory-rate.json",
        "respiratory_rate.unit \"breath/min\""),
    DOC("respiratory-rate/2.0/shouldFail/empty-document.json"),
    WHY("respiratory-rate/2.0/shouldFail/invalid-respiratory-rate.json",
        "respiratory_rate.unit \"breath/min\""),
    DOC("step-count/1.0/shouldFail/empty-document.json"),
    WHY("step-count/1.0/shouldFail/string-step-count-value.json", "step_count is not a number"),
    DOC("step-count/2.0/shouldFail/empty-document.json"),
    WHY("step-count/2.0/shouldFail/step-count-only.json", "effective_time_frame is missing"),
    WHY("step-count/2.0/shouldFail/string-step-count-value.json", "step_count is not a number"),
    WHY("step-count/2.0/shouldFail/with-date-time.json", "is measured over a time_interval"),
    DOC("step-count/3.0/shouldFail/empty-document.json"),
    WHY("step-count/3.0/shouldFail/invalid-unit-step-count.json",
        "step_count.value is not a JSON number"),
    WHY("step-count/3.0/shouldFail/step-count-only.json", "effective_time_frame is missing"),
    WHY("step-count/3.0/shouldFail/string-step-count-value.json",
        "step_count.value is not a JSON number"),
    WHY("step-count/3.0/shouldFail/with-date-time.json", "is measured over a time_interval"),
    DOC("rr-interval/1.0/shouldFail/empty-document.json"),
    WHY("rr-interval/1.0/shouldFail/invalid-rr-interval.json", "rr_interval.unit \"mm\""),
    DOC("sleep-duration/1.0/shouldFail/empty-document.json"),
    WHY("sleep-duration/1.0/shouldFail/invalid-sleep-duration-unit.json",
        "sleep_duration.unit \"s\""),
    /* no sleep_duration: nothing says it is an OMH body at all */
    DOC("sleep-duration/1.0/shouldFail/missing-sleep-duration.json"),
    DOC("sleep-duration/2.0/shouldFail/empty-document.json"),
    WHY("sleep-duration/2.0/shouldFail/invalid-unit.json", "sleep_duration.unit \"s\""),
    WHY("sleep-duration/2.0/shouldFail/sleep-duration-only.json",
        "effective_time_frame is missing"),
    WHY("sleep-duration/2.0/shouldFail/with-date-time.json", "is measured over a time_interval"),
    DOC("total-sleep-time/1.0/shouldFail/empty-document.json"),
    WHY("total-sleep-time/1.0/shouldFail/invalid-unit.json", "total_sleep_time.unit \"s\""),
    WHY("total-sleep-time/1.0/shouldFail/total-sleep-time-only.json",
        "effective_time_frame is missing"),
    WHY("total-sleep-time/1.0/shouldFail/with-date-time.json", "is measured over a time_interval"),
    DOC("calories-burned/1.0/shouldFail/empty-document.json"),
    WHY("calories-burned/2.0/shouldFail/calories-burned-only.json",
        "effective_time_frame is missing"),
    DOC("calories-burned/2.0/shouldFail/empty-document.json"),
    WHY("calories-burned/2.0/shouldFail/invalid-unit.json", "kcal_burned.unit \"kcalories\""),
    WHY("calories-burned/2.0/shouldFail/with-date-time.json", "is measured over a time_interval"),
};
#undef WHY
#undef DOC

/* The 14 measure schemas whose test documents are checked. */
static const char *const measure_dirs[] = {
    "heart-rate",  "blood-pressure", "body-temperature", "oxygen-saturation", "blood-glucose",
    "body-weight", "body-height",    "body-mass-index",  "respiratory-rate",  "step-count",
    "rr-interval", "sleep-duration", "total-sleep-time", "calories-burned",   NULL};

static void check_pass(const pass_t *p)
{
    sink_t s;
    const vl_ingest_measure_t *m = p->measure ? vl_ingest_measure(p->measure) : NULL;
    const vl_ingest_reading_t *r;
    assert_int_equal(run_file(p->file, NULL, &s), 0);
    if (!p->measure) {
        one_rejection(&s, p->why, p->file);
        return;
    }
    if (!m) { /* rr-interval before measures.c has its row */
        assert_string_equal(p->measure, "rr-interval");
        r = one_rejection(&s, "rr-interval: no LOINC mapping", p->file);
        assert_null(r->measure);
        return;
    }
    r = one_reading(&s, p->file);
    assert_ptr_equal(r->measure, m);
    assert_string_equal(r->path, "/");
    if (p->value2) {
        assert_int_equal(r->n_values, 2);
        check_value(r, 0, "8480-6", p->value, p->unit, p->source_unit);
        check_value(r, 1, "8462-4", p->value2, p->unit, p->source_unit);
    } else {
        assert_int_equal(r->n_values, 1);
        check_value(r, 0, m->loinc, p->value, p->unit, p->source_unit);
    }
    assert_string_equal(r->start, p->start);
    assert_string_equal(r->end, p->end ? p->end : "");
    assert_string_equal(r->statistic, p->statistic ? p->statistic : "");
    assert_string_equal(r->record_id, ""); /* a bare body has no id */
    assert_string_equal(r->source_name, "");
    assert_string_equal(r->device.name, "");
    assert_null(r->interpretation);
}

static void check_fail(const fail_t *f)
{
    sink_t s;
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = load(f->file);
    int rc = run_json(doc, NULL, &s, &err);
    json_decref(doc);
    if (!f->why) {
        if (rc != -1 || s.n != 0)
            fail_msg("%s: rc %d, %zu emits (first: %s)", f->file, rc, s.n,
                     s.n ? s.items[0].why : "-");
        assert_int_equal(err.status, 400);
    } else {
        assert_int_equal(rc, 0);
        one_rejection(&s, f->why, f->file);
    }
    assert_int_equal(s.readings, 0);
    vl_error_clear(&err);
}

/* Every file of <schema>/<version>/<kind>/ is in the table (by name). */
static size_t check_listed(const char *kind, int (*listed)(const char *rel))
{
    size_t count = 0;
    for (const char *const *m = measure_dirs; *m; m++) {
        char dir[512];
        DIR *vd, *fd;
        struct dirent *v, *e;
        snprintf(dir, sizeof dir, OMH_DATA "%s", *m);
        vd = opendir(dir);
        assert_non_null(vd);
        while ((v = readdir(vd)) != NULL) {
            char sub[800];
            if (v->d_name[0] == '.')
                continue;
            snprintf(sub, sizeof sub, "%s/%s/%s", dir, v->d_name, kind);
            if (!(fd = opendir(sub)))
                continue;
            while ((e = readdir(fd)) != NULL) {
                char rel[800];
                if (!strstr(e->d_name, ".json"))
                    continue;
                snprintf(rel, sizeof rel, "%s/%s/%s/%s", *m, v->d_name, kind, e->d_name);
                if (!listed(rel))
                    fail_msg("%s is not in the expectations", rel);
                count++;
            }
            closedir(fd);
        }
        closedir(vd);
    }
    return count;
}

static int pass_listed(const char *rel)
{
    for (size_t i = 0; i < sizeof should_pass / sizeof should_pass[0]; i++)
        if (!strcmp(should_pass[i].file, rel))
            return 1;
    return 0;
}

static int fail_listed(const char *rel)
{
    for (size_t i = 0; i < sizeof should_fail / sizeof should_fail[0]; i++)
        if (!strcmp(should_fail[i].file, rel))
            return 1;
    return 0;
}

static void test_should_pass_all(void **state)
{
    size_t n = sizeof should_pass / sizeof should_pass[0], readings = 0;
    (void)state;
    assert_int_equal(n, 120);
    assert_int_equal(check_listed("shouldPass", pass_listed), n);
    for (size_t i = 0; i < n; i++) {
        check_pass(&should_pass[i]);
        readings += should_pass[i].measure != NULL;
    }
    assert_int_equal(readings, 94); /* 21 without a time, 3 reversed, 2 date + part_of_day */
}

static void test_should_fail_all(void **state)
{
    size_t n = sizeof should_fail / sizeof should_fail[0];
    (void)state;
    assert_int_equal(n, 120);
    assert_int_equal(check_listed("shouldFail", fail_listed), n);
    for (size_t i = 0; i < n; i++)
        check_fail(&should_fail[i]);
}

/* ------------------------------------------------------------------------
 * Spot checks by hand
 * ---------------------------------------------------------------------- */

static void test_spot_checks(void **state)
{
    sink_t s;
    const vl_ingest_reading_t *r;
    (void)state;

    /* blood-pressure 4.0: 115/60 mmHg at 07:25 -08:00 */
    run_file("blood-pressure/4.0/shouldPass/blood-pressure-only.json", NULL, &s);
    r = one_reading(&s, "bp 4.0");
    assert_string_equal(r->measure->loinc, "85354-9");
    assert_int_equal(r->n_values, 2);
    check_value(r, 0, "8480-6", "115", "mm[Hg]", "mmHg");
    check_value(r, 1, "8462-4", "60", "mm[Hg]", "mmHg");
    assert_string_equal(r->start, "2020-02-05T07:25:00-08:00");
    assert_string_equal(r->end, "");
    assert_string_equal(r->note, "");

    /* blood-pressure 1.0 with-everything: minimum over four months, a note */
    run_file("blood-pressure/1.0/shouldPass/with-everything.json", NULL, &s);
    r = one_reading(&s, "bp with-everything");
    check_value(r, 0, "8480-6", "100", "mm[Hg]", "mmHg");
    assert_string_equal(r->statistic, "minimum");
    assert_string_equal(r->start, "2013-02-05T07:25:00Z");
    assert_string_equal(r->end, "2013-06-05T07:25:00Z");
    assert_string_equal(r->note, "I felt quite dizzy");

    /* heart-rate 2.0: the decimal text 50.0 is kept, offsets too */
    run_file("heart-rate/2.0/shouldPass/with-descriptive-statistic.json", NULL, &s);
    r = one_reading(&s, "hr 2.0");
    check_value(r, 0, "8867-4", "50.0", "/min", "beats/min");
    assert_string_equal(r->start, "2020-02-05T06:00:00+01:00");
    assert_string_equal(r->end, "2020-02-06T06:00:00+01:00");

    /* body-temperature 1.0: 97 F */
    run_file("body-temperature/1.0/shouldPass/valid-temperature.json", NULL, &s);
    r = one_reading(&s, "temp");
    check_value(r, 0, "8310-5", "97", "[degF]", "F");

    /* glucose 1.0 with-everything: plasma, fasting, minimum, a user note */
    run_file("blood-glucose/1.0/shouldPass/with-everything.json", NULL, &s);
    r = one_reading(&s, "glucose 1.0");
    assert_string_equal(r->measure->key, "blood-glucose");
    check_value(r, 0, "41653-7", "120", "mg/dL", "mg/dL");
    assert_string_equal(r->note, "feeling fine; specimen: plasma");

    /* glucose 2.0 with-everything: interstitial fluid is a CGM reading */
    run_file("blood-glucose/2.0/shouldPass/with-everything.json", NULL, &s);
    r = one_reading(&s, "glucose 2.0");
    assert_string_equal(r->measure->key, "cgm-glucose");
    check_value(r, 0, "99504-3", "120", "mg/dL", "mg/dL");
    assert_string_equal(r->note, "");

    /* step-count 3.0 with-average: 12500 steps per day on average */
    run_file("step-count/3.0/shouldPass/with-average.json", NULL, &s);
    r = one_reading(&s, "steps average");
    assert_string_equal(r->measure->key, "steps-day");
    check_value(r, 0, "41950-7", "12500", "/d", "steps");
    assert_string_equal(r->statistic, "average");
    assert_string_equal(r->note, "");

    /* step-count 2.0 with-session: a maximum per session stays {steps} */
    run_file("step-count/2.0/shouldPass/with-session.json", NULL, &s);
    r = one_reading(&s, "steps session");
    check_value(r, 0, "55423-8", "20000", "{steps}", "");
    assert_string_equal(r->note, "descriptive_statistic_denominator: session");

    /* total-sleep-time: 465 min over a night at -08:00 */
    run_file("total-sleep-time/1.0/shouldPass/valid-total-sleep-time.json", NULL, &s);
    r = one_reading(&s, "tst");
    check_value(r, 0, "93832-4", "465", "min", "min");
    assert_string_equal(r->start, "2016-02-05T20:35:00-08:00");
    assert_string_equal(r->end, "2016-02-06T06:35:00-08:00");

    /* sleep-duration 1.0 with-user-notes */
    run_file("sleep-duration/1.0/shouldPass/with-user-notes.json", NULL, &s);
    r = one_reading(&s, "sleep");
    check_value(r, 0, "93832-4", "6", "h", "h");
    assert_string_equal(r->note, "slept well");

    /* body-mass-index 2.0: kg/m^2 is kg/m2 */
    run_file("body-mass-index/2.0/shouldPass/valid-body-mass-index.json", NULL, &s);
    r = one_reading(&s, "bmi");
    check_value(r, 0, "39156-5", "16", "kg/m2", "kg/m^2");

    /* rr-interval: 30 ms (a reading once measures.c has the row) */
    run_file("rr-interval/1.0/shouldPass/with-time-frame.json", NULL, &s);
    if (vl_ingest_measure("rr-interval")) {
        r = one_reading(&s, "rr");
        check_value(r, 0, vl_ingest_measure("rr-interval")->loinc, "30", "ms", "ms");
        assert_string_equal(r->start, "2013-02-05T07:25:00Z");
    } else {
        r = one_rejection(&s, "rr-interval: no LOINC mapping", "rr");
        assert_string_equal(r->path, "/");
    }
}

/* ------------------------------------------------------------------------
 * Data points and headers
 * ---------------------------------------------------------------------- */

#define HR_BODY                                                                                    \
    "{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},"                                       \
    "\"effective_time_frame\":{\"date_time\":\"2024-03-01T08:00:00-05:00\"}}"

static const char *const data_point =
    "{\"header\":{\"id\":\"123e4567-e89b-12d3-a456-426655440000\","
    "\"creation_date_time\":\"2024-03-01T08:01:00Z\","
    "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"heart-rate\",\"version\":\"2.0\"},"
    "\"acquisition_provenance\":{\"source_name\":\"Acme Watch\",\"modality\":\"sensed\"}},"
    "\"body\":" HR_BODY "}";

static void test_data_point(void **state)
{
    sink_t s, again;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(run_text(data_point, NULL, &s), 0);
    r = one_reading(&s, "data point");
    assert_string_equal(r->measure->key, "heart-rate");
    check_value(r, 0, "8867-4", "72", "/min", "beats/min");
    assert_string_equal(r->start, "2024-03-01T08:00:00-05:00");
    assert_string_equal(r->record_id, "123e4567-e89b-12d3-a456-426655440000");
    assert_string_equal(r->source_name, "Acme Watch");
    assert_string_equal(r->path, "/body");
    assert_string_equal(r->note, "");
    assert_string_equal(r->device.name, "");
    /* deterministic: the same document gives the same reading */
    run_text(data_point, NULL, &again);
    assert_memory_equal(&s.items[0].r, &again.items[0].r, sizeof s.items[0].r);
}

/* A data point with a body and a header edited by `edit` (a JSON path
 * key=value of the header, applied with jansson). */
static void run_with_header(json_t *header, sink_t *s)
{
    json_t *dp = json_object(), *body = parse(HR_BODY);
    vl_error_t err = VL_ERROR_INIT;
    json_object_set(dp, "header", header);
    json_object_set_new(dp, "body", body);
    assert_int_equal(run_json(dp, NULL, s, &err), 0);
    json_decref(dp);
}

static void test_header_documents(void **state)
{
    static const struct {
        const char *file, *why; /* why NULL: valid */
    } cases[] = {
        {"header/1.0/shouldPass/valid-header.json", NULL},
        {"header/1.1/shouldPass/with-user-id.json", NULL},
        {"header/1.2/shouldPass/with-source-data-point-id.json", NULL},
        {"header/1.0/shouldFail/empty-document.json", "header.id is missing"},
        {"header/1.0/shouldFail/invalid-creation-date-time-value.json", "creation_date_time"},
        {"header/1.0/shouldFail/invalid-modality.json", "modality is not sensed or self-reported"},
        {"header/1.0/shouldFail/missing-id.json", "header.id is missing"},
        {"header/1.1/shouldFail/invalid-user-id.json", "header.user_id is not a string"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sink_t s;
        json_t *h = load(cases[i].file);
        json_t *sid = json_object_get(h, "schema_id");
        if (sid) /* the documents name physical-activity: make it a heart rate */
            json_object_set_new(sid, "name", json_string("heart-rate"));
        run_with_header(h, &s);
        json_decref(h);
        if (cases[i].why) {
            const vl_ingest_reading_t *r = one_rejection(&s, cases[i].why, cases[i].file);
            assert_string_equal(r->path, "/body");
        } else {
            const vl_ingest_reading_t *r = one_reading(&s, cases[i].file);
            assert_string_equal(r->record_id, "123e4567-e89b-12d3-a456-426655440000");
            assert_string_equal(r->source_name, "RunKeeper");
        }
    }
}

static void test_data_point_documents(void **state)
{
    static const struct {
        const char *file, *why; /* why NULL: -1 */
    } cases[] = {
        /* valid data points, but of a schema that is not a measure */
        {"data-point/1.0/shouldPass/valid-data-point.json",
         "schema omh:physical-activity is not a measure"},
        {"data-point/1.0/shouldPass/empty-body.json", "schema omh:physical-activity"},
        {"data-point/1.0/shouldFail/empty-document.json", NULL},
        {"data-point/1.0/shouldFail/invalid-header.json", "header.id is missing"},
        {"data-point/1.0/shouldFail/missing-body.json", "a data point needs a body object"},
        {"data-point/1.0/shouldFail/missing-header.json", "needs a header"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sink_t s;
        int rc = run_file(cases[i].file, NULL, &s);
        if (!cases[i].why) {
            assert_int_equal(rc, -1);
            assert_int_equal(s.n, 0);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(one_rejection(&s, cases[i].why, cases[i].file)->path, "/body");
        }
    }
}

static void test_header_rules(void **state)
{
    sink_t s;
    const vl_ingest_reading_t *r;
    char buf[1200];
    (void)state;
    /* self-reported: said in the note, after the user's own */
    snprintf(buf, sizeof buf,
             "{\"header\":{\"id\":\"x1\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"body-weight\",\"version\":\"2.0\"},"
             "\"acquisition_provenance\":{\"source_name\":\"app\",\"modality\":\"self-reported\"}"
             "},\"body\":{\"body_weight\":{\"value\":70.25,\"unit\":\"kg\"},\"user_notes\":"
             "\"after breakfast\",\"effective_time_frame\":{\"date_time\":"
             "\"2024-03-01T08:00:00Z\"}}}");
    run_text(buf, NULL, &s);
    r = one_reading(&s, "self-reported");
    check_value(r, 0, "29463-7", "70.25", "kg", "kg");
    assert_string_equal(r->note, "after breakfast; modality: self-reported");
    assert_string_equal(r->record_id, "x1");

    /* the header decides: a heart-rate header on a weight body */
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"heart-rate\",\"version\":\"1.0\"}},"
             "\"body\":{\"body_weight\":{\"value\":70,\"unit\":\"kg\"}}}",
             NULL, &s);
    assert_string_equal(one_rejection(&s, "heart_rate is missing", "header decides")->path,
                        "/body");
    assert_string_equal(s.items[0].r.measure->key, "heart-rate");

    /* another namespace; an unknown name; a schema_id without version */
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"ieee\",\"name\":\"heart-rate\",\"version\":\"1.0\"}},"
             "\"body\":" HR_BODY "}",
             NULL, &s);
    one_rejection(&s, "schema ieee:heart-rate is not a measure", "ieee");
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"heart-rate\"}},\"body\":" HR_BODY "}",
             NULL, &s);
    one_rejection(&s, "schema_id needs namespace, name and version", "no version");
    /* acquisition_provenance without source_name; a bad source date */
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"heart-rate\",\"version\":\"2.0\"},"
             "\"acquisition_provenance\":{\"modality\":\"sensed\"}},\"body\":" HR_BODY "}",
             NULL, &s);
    one_rejection(&s, "source_name is missing", "no source_name");
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"heart-rate\",\"version\":\"2.0\"},"
             "\"acquisition_provenance\":{\"source_name\":\"a\",\"source_creation_date_time\":"
             "\"yesterday\"}},\"body\":" HR_BODY "}",
             NULL, &s);
    one_rejection(&s, "source date-time", "bad source date");
    /* an id too long for record_id */
    {
        char id[200];
        memset(id, 'a', 150);
        id[150] = '\0';
        snprintf(buf, sizeof buf,
                 "{\"header\":{\"id\":\"%s\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
                 "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"heart-rate\",\"version\":"
                 "\"2.0\"}},\"body\":" HR_BODY "}",
                 id);
        run_text(buf, NULL, &s);
        one_rejection(&s, "longer than 127 bytes", "long id");
    }
    /* a body that is not an object */
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"heart-rate\",\"version\":\"2.0\"}},"
             "\"body\":[1]}",
             NULL, &s);
    one_rejection(&s, "needs a body object", "body array");
}

/* ------------------------------------------------------------------------
 * Arrays and documents that are not OMH
 * ---------------------------------------------------------------------- */

static void test_arrays(void **state)
{
    sink_t s;
    (void)state;
    assert_int_equal(
        run_text("[" HR_BODY ",5,{},[]," HR_BODY ",{\"header\":{}},{\"a\":1}]", NULL, &s), 0);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.readings, 2);
    assert_string_equal(s.items[0].r.path, "/0");
    assert_string_equal(s.items[0].why, "");
    assert_string_equal(s.items[1].r.path, "/1");
    assert_non_null(strstr(s.items[1].why, "not an Open mHealth data point or body"));
    assert_string_equal(s.items[2].r.path, "/2");
    assert_string_equal(s.items[3].r.path, "/3");
    assert_string_equal(s.items[4].r.path, "/4");
    assert_string_equal(s.items[4].why, "");
    assert_string_equal(s.items[5].r.path, "/5/body");
    assert_non_null(strstr(s.items[5].why, "a data point needs a body object"));
    assert_string_equal(s.items[6].r.path, "/6");
    /* an empty array is nothing */
    assert_int_equal(run_text("[]", NULL, &s), 0);
    assert_int_equal(s.n, 0);
    /* a data point in an array */
    {
        char buf[1200];
        snprintf(buf, sizeof buf, "[%s]", data_point);
        assert_int_equal(run_text(buf, NULL, &s), 0);
        assert_string_equal(one_reading(&s, "array dp")->path, "/0/body");
    }
    /* the minimum and maximum of one interval are two readings */
    assert_int_equal(
        run_text("[{\"heart_rate\":{\"value\":50,\"unit\":\"beats/min\"},\"descriptive_statistic\":"
                 "\"minimum\",\"effective_time_frame\":{\"time_interval\":{\"start_date_time\":"
                 "\"2024-03-01T00:00:00Z\",\"end_date_time\":\"2024-03-02T00:00:00Z\"}}},"
                 "{\"heart_rate\":{\"value\":150,\"unit\":\"beats/min\"},\"descriptive_statistic\":"
                 "\"maximum\",\"effective_time_frame\":{\"time_interval\":{\"start_date_time\":"
                 "\"2024-03-01T00:00:00Z\",\"end_date_time\":\"2024-03-02T00:00:00Z\"}}}]",
                 NULL, &s),
        0);
    assert_int_equal(s.readings, 2);
    assert_string_equal(s.items[0].r.statistic, "minimum");
    assert_string_equal(s.items[1].r.statistic, "maximum");
}

static void test_not_omh(void **state)
{
    sink_t s;
    vl_error_t err = VL_ERROR_INIT;
    json_t *str = json_string("heart_rate");
    (void)state;
    assert_int_equal(run_text("{}", NULL, &s), -1);
    assert_int_equal(run_text("{\"value\":72,\"unit\":\"beats/min\"}", NULL, &s), -1);
    assert_int_equal(s.n, 0);
    assert_int_equal(run_json(str, NULL, &s, &err), -1);
    assert_int_equal(err.status, 400);
    vl_error_clear(&err);
    json_decref(str);
    /* through the dispatcher */
    {
        json_t *doc = parse(HR_BODY);
        memset(&s, 0, sizeof s);
        assert_int_equal(vl_ingest_document(VL_INGEST_OMH, doc, NULL, collect, &s, &err), 0);
        assert_int_equal(s.readings, 1);
        json_decref(doc);
    }
    /* the values of two measures in one body */
    assert_int_equal(
        run_text("{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"body_weight\":{\"value\":"
                 "70,\"unit\":\"kg\"},\"effective_time_frame\":{\"date_time\":"
                 "\"2024-03-01T08:00:00Z\"}}",
                 NULL, &s),
        0);
    one_rejection(&s, "several OMH measures", "two measures");
    /* only half of a blood pressure */
    run_text("{\"systolic_blood_pressure\":{\"value\":120,\"unit\":\"mmHg\"},"
             "\"effective_time_frame\":{\"date_time\":\"2024-03-01T08:00:00Z\"}}",
             NULL, &s);
    one_rejection(&s, "diastolic_blood_pressure is missing", "half bp");
}

static void test_emit_stops(void **state)
{
    sink_t s;
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = parse("[" HR_BODY "," HR_BODY "," HR_BODY "]");
    vl_ingest_options_t o = {NULL};
    (void)state;
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    assert_int_equal(vl_ingest_omh(doc, &o, collect, &s, &err), -1);
    assert_int_equal(s.n, 2);
    assert_int_equal(err.status, 0);
    json_decref(doc);
}

/* ------------------------------------------------------------------------
 * Values and units
 * ---------------------------------------------------------------------- */

/* Every row of the mapping table: a body in that unit gives that UCUM. */
static void test_every_unit(void **state)
{
    size_t rows = 0;
    (void)state;
    for (const vl_ingest_mapping_t *m = vl_ingest_mappings(VL_INGEST_OMH); m->source; m++) {
        static const char *const keys[][2] = {{"heart-rate", "heart_rate"},
                                              {"body-temperature", "body_temperature"},
                                              {"oxygen-saturation", "oxygen_saturation"},
                                              {"blood-glucose", "blood_glucose"},
                                              {"body-weight", "body_weight"},
                                              {"body-height", "body_height"},
                                              {"body-mass-index", "body_mass_index"},
                                              {"respiratory-rate", "respiratory_rate"},
                                              {"rr-interval", "rr_interval"},
                                              {"step-count", "step_count"},
                                              {"calories-burned", "kcal_burned"},
                                              {"sleep-duration", "sleep_duration"},
                                              {"total-sleep-time", "total_sleep_time"},
                                              {NULL, NULL}};
        const char *key = NULL;
        char value[128], buf[640];
        const char *time = strstr(m->time_rule, "instant")
                               ? "{\"date_time\":\"2024-03-01T08:00:00Z\"}"
                               : "{\"time_interval\":{\"start_date_time\":\"2024-03-01T08:00:00Z\","
                                 "\"end_date_time\":\"2024-03-01T09:00:00Z\"}}";
        sink_t s;
        assert_true(!strcmp(m->time_rule, "instant-or-period") || !strcmp(m->time_rule, "period"));
        assert_true(m->ucum[0] != '\0');
        if (strchr(m->source, '/'))
            continue; /* variants, checked elsewhere */
        rows++;
        if (!strcmp(m->source, "blood-pressure")) {
            snprintf(buf, sizeof buf,
                     "{\"systolic_blood_pressure\":{\"value\":121,\"unit\":\"%s\"},"
                     "\"diastolic_blood_pressure\":{\"value\":81,\"unit\":\"%s\"},"
                     "\"effective_time_frame\":%s}",
                     m->source_unit, m->source_unit, time);
        } else {
            for (size_t k = 0; keys[k][0]; k++)
                if (!strcmp(keys[k][0], m->source))
                    key = keys[k][1];
            assert_non_null(key);
            if (m->source_unit[0])
                snprintf(value, sizeof value, "{\"value\":12.5,\"unit\":\"%s\"}", m->source_unit);
            else
                snprintf(value, sizeof value, "125");
            snprintf(buf, sizeof buf, "{\"%s\":%s,\"effective_time_frame\":%s}", key, value, time);
        }
        assert_int_equal(run_text(buf, NULL, &s), 0);
        if (!vl_ingest_measure(m->measure)) {
            assert_string_equal(m->measure, "rr-interval");
            one_rejection(&s, "rr-interval: no LOINC mapping", buf);
            continue;
        }
        {
            const vl_ingest_reading_t *r = one_reading(&s, buf);
            assert_string_equal(r->measure->key, m->measure);
            assert_string_equal(r->values[0].unit, m->ucum);
            assert_string_equal(r->values[0].source_unit, m->source_unit);
            assert_string_equal(r->values[0].value, !m->source_unit[0] ? "125"
                                                    : !strcmp(m->source, "blood-pressure")
                                                        ? "121"
                                                        : "12.5");
        }
    }
    assert_int_equal(rows, 53);
}

static void test_mapping_table(void **state)
{
    static const char *const ucum_of[][3] = {
        /* source, OMH unit, UCUM: the non-obvious ones, by hand */
        {"heart-rate", "beats/min", "/min"},
        {"blood-pressure", "mmHg", "mm[Hg]"},
        {"body-temperature", "F", "[degF]"},
        {"body-temperature", "C", "Cel"},
        {"body-weight", "lb", "[lb_av]"},
        {"body-weight", "oz", "[oz_av]"},
        {"body-weight", "Metric Ton", "t"},
        {"body-weight", "Ton", "[ston_av]"},
        {"body-weight", "gr", "[gr]"},
        {"body-height", "in", "[in_i]"},
        {"body-height", "ft", "[ft_i]"},
        {"body-height", "yd", "[yd_i]"},
        {"body-height", "mi", "[mi_i]"},
        {"body-mass-index", "kg/m^2", "kg/m2"},
        {"respiratory-rate", "breaths/min", "/min"},
        {"step-count", "steps", "{steps}"},
        {"step-count/day", "steps", "/d"},
        {"total-sleep-time", "sec", "s"},
        {"total-sleep-time", "Mo", "mo"},
        {"total-sleep-time", "yr", "a"},
        {"blood-glucose", "mmol/L", "mmol/L"},
    };
    const vl_ingest_mapping_t *map = vl_ingest_mappings(VL_INGEST_OMH);
    size_t n = 0;
    (void)state;
    for (size_t i = 0; i < sizeof ucum_of / sizeof ucum_of[0]; i++) {
        const vl_ingest_mapping_t *row = NULL;
        for (const vl_ingest_mapping_t *m = map; m->source; m++)
            if (!strcmp(m->source, ucum_of[i][0]) && !strcmp(m->source_unit, ucum_of[i][1]))
                row = m;
        if (!row)
            fail_msg("no row %s %s", ucum_of[i][0], ucum_of[i][1]);
        assert_string_equal(row->ucum, ucum_of[i][2]);
    }
    for (const vl_ingest_mapping_t *m = map; m->source; m++, n++)
        if (strcmp(m->measure, "rr-interval"))
            assert_non_null(vl_ingest_measure(m->measure));
    assert_int_equal(n, 57);
}

static void test_values(void **state)
{
    sink_t s;
    char buf[600];
    (void)state;
#define TF "\"effective_time_frame\":{\"date_time\":\"2024-03-01T08:00:00Z\"}"
    run_text("{\"heart_rate\":{\"value\":\"72\",\"unit\":\"beats/min\"}," TF "}", NULL, &s);
    one_rejection(&s, "heart_rate.value is not a JSON number", "string value");
    run_text("{\"heart_rate\":72," TF "}", NULL, &s);
    one_rejection(&s,
                  "heart_rate is a bare number: omh:heart-rate needs {value, unit} "
                  "(\"beats/min\")",
                  "bare number");
    run_text("{\"heart_rate\":{\"value\":72,\"unit\":7}," TF "}", NULL, &s);
    one_rejection(&s, "heart_rate.unit is not a string", "unit number");
    run_text("{\"body_weight\":{\"value\":72,\"unit\":\"stone\"}," TF "}", NULL, &s);
    one_rejection(&s, "(\"kg\", \"g\", \"lb\"", "unit list");
    run_text("{\"heart_rate\":{\"value\":1.5E+2,\"unit\":\"beats/min\"}," TF "}", NULL, &s);
    assert_string_equal(one_reading(&s, "exponent")->values[0].value, "1.5E+2");
    run_text("{\"heart_rate\":{\"value\":-0.0,\"unit\":\"beats/min\"}," TF "}", NULL, &s);
    assert_string_equal(one_reading(&s, "negative zero")->values[0].value, "-0.0");
    /* a value too long for a reading */
    run_text("{\"heart_rate\":{\"value\":1234567890123456789012345678901234567890,\"unit\":"
             "\"beats/min\"}," TF "}",
             NULL, &s);
    one_rejection(&s, "not a decimal of at most 32 characters", "long value");
    /* optional fields: types and enums */
    run_text("{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"user_notes\":5," TF "}", NULL,
             &s);
    one_rejection(&s, "user_notes is not a string", "notes");
    run_text("{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},"
             "\"temporal_relationship_to_sleep\":1," TF "}",
             NULL, &s);
    one_rejection(&s, "temporal_relationship_to_sleep is not a string", "enum type");
    run_text("{\"body_temperature\":{\"value\":37,\"unit\":\"C\"},\"measurement_location\":"
             "\"left wrist\"," TF "}",
             NULL, &s);
    one_rejection(&s, "measurement_location \"left wrist\"", "temp location");
    run_text("{\"systolic_blood_pressure\":{\"value\":120,\"unit\":\"mmHg\"},"
             "\"diastolic_blood_pressure\":{\"value\":80,\"unit\":\"mmHg\"},"
             "\"measurement_location\":\"left wrist\",\"body_posture\":\"semi-recumbent\"," TF "}",
             NULL, &s);
    one_reading(&s, "bp location");
    run_text(
        "{\"oxygen_saturation\":{\"value\":97,\"unit\":\"%\"},\"supplemental_oxygen_flow_rate\":"
        "{\"value\":\"2\",\"unit\":\"L/min\"}," TF "}",
        NULL, &s);
    one_rejection(&s, "supplemental_oxygen_flow_rate needs a number", "flow");
    run_text("{\"kcal_burned\":{\"value\":100,\"unit\":\"kcal\"},\"activity_name\":7,"
             "\"effective_time_frame\":{\"time_interval\":{\"start_date_time\":"
             "\"2024-03-01T08:00:00Z\",\"end_date_time\":\"2024-03-01T09:00:00Z\"}}}",
             NULL, &s);
    one_rejection(&s, "activity_name is not a string", "activity");
    /* a long user note is cut on a character boundary */
    {
        char note[400] = "";
        for (int i = 0; i < 100; i++)
            strcat(note, "é");
        snprintf(buf, sizeof buf,
                 "{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"user_notes\":\"%s\"," TF
                 "}",
                 note);
        run_text(buf, NULL, &s);
        assert_int_equal(strlen(one_reading(&s, "long note")->note), 158); /* 79 x 2 bytes */
    }
#undef TF
}

static void test_statistics(void **state)
{
    static const struct {
        const char *stat, *why; /* why NULL: accepted */
    } cases[] = {
        {"average", NULL},
        {"median", NULL},
        {"sum", NULL},
        {"80th percentile", NULL},
        {"4th quintile", NULL},
        {"count", "a statistic about the measurements"},
        {"variance", "a statistic about the measurements"},
        {"standard deviation", "a statistic about the measurements"},
        {"quartile deviation", "a statistic about the measurements"},
        {"mean", "is not an OMH descriptive statistic"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[400];
        sink_t s;
        snprintf(buf, sizeof buf,
                 "{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"descriptive_statistic\":"
                 "\"%s\",\"effective_time_frame\":{\"date_time\":\"2024-03-01T08:00:00Z\"}}",
                 cases[i].stat);
        run_text(buf, NULL, &s);
        if (cases[i].why)
            one_rejection(&s, cases[i].why, cases[i].stat);
        else
            assert_string_equal(one_reading(&s, cases[i].stat)->statistic, cases[i].stat);
    }
    {
        sink_t s;
        run_text("{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"descriptive_statistic\":"
                 "1,\"effective_time_frame\":{\"date_time\":\"2024-03-01T08:00:00Z\"}}",
                 NULL, &s);
        one_rejection(&s, "descriptive_statistic is not a string", "stat type");
    }
}

static void test_glucose_specimens(void **state)
{
    static const struct {
        const char *field, *specimen, *unit, *measure, *loinc, *note, *why;
    } cases[] = {
        {"specimen_source", "capillary blood", "mg/dL", "blood-glucose", "41653-7", "", NULL},
        {"specimen_source", "interstitial fluid", "mmol/L", "cgm-glucose-molar", "105272-9", "",
         NULL},
        {NULL, NULL, "mmol/L", "blood-glucose-molar", "14743-9", "", NULL},
        {"blood_specimen_type", "serum", "mg/dL", "blood-glucose", "41653-7", "specimen: serum",
         NULL},
        {"specimen_source", "whole blood", "mg/dL", "blood-glucose", "41653-7",
         "specimen: whole blood", NULL},
        {"specimen_source", "urine", "mg/dL", NULL, NULL, NULL, "glucose in urine"},
        {"specimen_source", "tears", "mg/dL", NULL, NULL, NULL, "glucose in tears"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[400], spec[80] = "";
        sink_t s;
        if (cases[i].field)
            snprintf(spec, sizeof spec, "\"%s\":\"%s\",", cases[i].field, cases[i].specimen);
        snprintf(buf, sizeof buf,
                 "{\"blood_glucose\":{\"value\":5.4,\"unit\":\"%s\"},%s\"effective_time_frame\":"
                 "{\"date_time\":\"2024-03-01T08:00:00+01:00\"}}",
                 cases[i].unit, spec);
        run_text(buf, NULL, &s);
        if (cases[i].why) {
            assert_string_equal(one_rejection(&s, cases[i].why, buf)->measure->key,
                                "blood-glucose");
        } else {
            const vl_ingest_reading_t *r = one_reading(&s, buf);
            assert_string_equal(r->measure->key, cases[i].measure);
            check_value(r, 0, cases[i].loinc, "5.4", cases[i].unit, cases[i].unit);
            assert_string_equal(r->note, cases[i].note);
        }
    }
    {
        sink_t s;
        run_text("{\"blood_glucose\":{\"value\":5.4,\"unit\":\"mmol/L\"},\"specimen_source\":"
                 "\"plasma\",\"blood_specimen_type\":\"serum\",\"effective_time_frame\":"
                 "{\"date_time\":\"2024-03-01T08:00:00Z\"}}",
                 NULL, &s);
        one_rejection(&s, "disagree", "two specimens");
    }
}

/* ------------------------------------------------------------------------
 * Time frames
 * ---------------------------------------------------------------------- */

/* A step count over `interval` (the members of time_interval). */
static void steps(const char *interval, const char *tz, sink_t *s)
{
    char buf[600];
    snprintf(buf, sizeof buf,
             "{\"step_count\":{\"value\":9000,\"unit\":\"steps\"},\"effective_time_frame\":"
             "{\"time_interval\":{%s}}}",
             interval);
    assert_int_equal(run_text(buf, tz, s), 0);
}

static void expect_steps(const char *interval, const char *measure, const char *start,
                         const char *end)
{
    sink_t s;
    const vl_ingest_reading_t *r;
    steps(interval, NULL, &s);
    r = one_reading(&s, interval);
    assert_string_equal(r->measure->key, measure);
    assert_string_equal(r->values[0].unit, strcmp(measure, "steps-day") ? "{steps}" : "/d");
    assert_string_equal(r->start, start);
    assert_string_equal(r->end, end);
}

static void expect_steps_rejected(const char *interval, const char *why)
{
    sink_t s;
    steps(interval, NULL, &s);
    one_rejection(&s, why, interval);
}

static void test_intervals(void **state)
{
    (void)state;
    /* start + end as sent; one calendar day is steps per day */
    expect_steps("\"start_date_time\":\"2016-02-05T00:00:00Z\",\"end_date_time\":"
                 "\"2016-02-06T00:00:00Z\"",
                 "steps-day", "2016-02-05T00:00:00Z", "2016-02-06T00:00:00Z");
    expect_steps("\"start_date_time\":\"2016-02-05T00:00:00-05:00\",\"end_date_time\":"
                 "\"2016-02-06T00:00:00-05:00\"",
                 "steps-day", "2016-02-05T00:00:00-05:00", "2016-02-06T00:00:00-05:00");
    /* a day of a DST change (23 h): still one calendar date */
    expect_steps("\"start_date_time\":\"2024-03-10T00:00:00-05:00\",\"end_date_time\":"
                 "\"2024-03-11T00:00:00-04:00\"",
                 "steps-day", "2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00");
    /* 24 h not from midnight, two days, midnight to 23:59:59: not a day */
    expect_steps("\"start_date_time\":\"2016-02-05T06:00:00Z\",\"end_date_time\":"
                 "\"2016-02-06T06:00:00Z\"",
                 "step-count", "2016-02-05T06:00:00Z", "2016-02-06T06:00:00Z");
    expect_steps("\"start_date_time\":\"2016-02-05T00:00:00Z\",\"end_date_time\":"
                 "\"2016-02-07T00:00:00Z\"",
                 "step-count", "2016-02-05T00:00:00Z", "2016-02-07T00:00:00Z");
    expect_steps("\"start_date_time\":\"2016-02-05T00:00:00Z\",\"end_date_time\":"
                 "\"2016-02-05T23:59:59Z\"",
                 "step-count", "2016-02-05T00:00:00Z", "2016-02-05T23:59:59Z");
    expect_steps("\"start_date_time\":\"2016-02-05T00:00:00.5Z\",\"end_date_time\":"
                 "\"2016-02-06T00:00:00.5Z\"",
                 "step-count", "2016-02-05T00:00:00.5Z", "2016-02-06T00:00:00.5Z");
    /* start + duration: exact, in the start's offset */
    expect_steps("\"start_date_time\":\"2016-02-05T00:00:00+01:00\",\"duration\":{\"value\":1,"
                 "\"unit\":\"d\"}",
                 "steps-day", "2016-02-05T00:00:00+01:00", "2016-02-06T00:00:00+01:00");
    expect_steps("\"start_date_time\":\"2016-02-05T00:00:00Z\",\"duration\":{\"value\":24,"
                 "\"unit\":\"h\"}",
                 "steps-day", "2016-02-05T00:00:00Z", "2016-02-06T00:00:00Z");
    expect_steps("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":10.2,"
                 "\"unit\":\"d\"}",
                 "step-count", "2013-02-05T07:25:00Z", "2013-02-15T12:13:00Z");
    expect_steps("\"start_date_time\":\"2013-02-05T23:59:59.750-08:00\",\"duration\":{\"value\":"
                 "500,\"unit\":\"ms\"}",
                 "step-count", "2013-02-05T23:59:59.750-08:00", "2013-02-06T00:00:00.25-08:00");
    expect_steps("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":2000,"
                 "\"unit\":\"ps\"}",
                 "step-count", "2013-02-05T07:25:00Z", "2013-02-05T07:25:00.000000002Z");
    expect_steps("\"start_date_time\":\"2013-12-31T23:00:00Z\",\"duration\":{\"value\":1.5E1,"
                 "\"unit\":\"min\"}",
                 "step-count", "2013-12-31T23:00:00Z", "2013-12-31T23:15:00Z");
    expect_steps("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":0,"
                 "\"unit\":\"wk\"}",
                 "step-count", "2013-02-05T07:25:00Z", "2013-02-05T07:25:00Z");
    /* end - duration, across midnight and a year, in the end's offset */
    expect_steps("\"end_date_time\":\"2014-01-01T00:30:00+05:30\",\"duration\":{\"value\":1,"
                 "\"unit\":\"h\"}",
                 "step-count", "2013-12-31T23:30:00+05:30", "2014-01-01T00:30:00+05:30");
    expect_steps("\"end_date_time\":\"2013-02-05T07:35:00Z\",\"duration\":{\"value\":7.6,"
                 "\"unit\":\"d\"}",
                 "step-count", "2013-01-28T17:11:00Z", "2013-02-05T07:35:00Z");
    /* refused */
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":"
                          "1,\"unit\":\"Mo\"}",
                          "in Mo has no exact length");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":"
                          "-1,\"unit\":\"h\"}",
                          "not a whole number of nanoseconds, negative");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":"
                          "1500,\"unit\":\"ps\"}",
                          "not a whole number of nanoseconds");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":"
                          "1,\"unit\":\"s\"}",
                          "unit \"s\" is not a duration unit");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"duration\":{\"value\":"
                          "\"1\",\"unit\":\"h\"}",
                          "duration needs a number value");
    expect_steps_rejected("\"start_date_time\":\"9999-12-31T23:00:00Z\",\"duration\":{\"value\":"
                          "2,\"unit\":\"h\"}",
                          "beyond year 9999");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00.1234567891Z\",\"duration\":"
                          "{\"value\":2,\"unit\":\"h\"}",
                          "finer than a nanosecond");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"end_date_time\":"
                          "\"2013-02-05T08:25:00Z\",\"duration\":{\"value\":1,\"unit\":\"h\"}",
                          "time_interval needs start_date_time and end_date_time");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"end_date_time\":"
                          "\"2013-02-05T07:24:59.999Z\"",
                          "before it starts");
    expect_steps_rejected("\"start_date_time\":\"2013-02-05T07:25:00Z\",\"end_date_time\":5",
                          "end_date_time (not a string) is not an RFC 3339 date-time");
}

static void test_date_times(void **state)
{
    static const struct {
        const char *text, *why; /* why NULL: accepted as sent */
    } cases[] = {
        {"2013-02-05T07:25:00Z", NULL},
        {"2013-02-05T07:25:00.123Z", NULL},
        {"2013-02-05T07:25:00+03:00", NULL},
        {"2013-02-05T07:25:00-00:00", NULL},
        {"2016-12-31T23:59:60Z", NULL}, /* a leap second */
        {"2013-02-05T07:25:00", "zone offset"},
        {"2013-02-05", "zone offset"},
        {"07:25:00", "zone offset"},
        {"", "zone offset"},
        {"foo", "zone offset"},
        {"2013-02-30T07:25:00Z", "zone offset"},
        {"2013-02-05t07:25:00z", "zone offset"},
        {"2013-02-05T24:00:00Z", "zone offset"},
        {"2013-02-05T07:25:00+15:00", "zone offset"},
        {"2013-02-05T07:25:00+0300", "zone offset"},
        {"2013-02-05T07:25:00.Z", "zone offset"},
        {"201-02-05T07:25:00Z", "zone offset"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[400];
        sink_t s;
        snprintf(buf, sizeof buf,
                 "{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"effective_time_frame\":"
                 "{\"date_time\":\"%s\"}}",
                 cases[i].text);
        /* a tz does not make a time without offset acceptable (DESIGN NOTES 4) */
        run_text(buf, "+01:00", &s);
        if (cases[i].why) {
            one_rejection(&s, cases[i].why, cases[i].text);
        } else {
            const vl_ingest_reading_t *r = one_reading(&s, cases[i].text);
            assert_string_equal(r->start, cases[i].text);
            assert_string_equal(r->end, "");
        }
    }
    {
        sink_t s;
        run_text("{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"effective_time_frame\":"
                 "{\"date_time\":\"2013-02-05T07:25:00Z\",\"time_interval\":{\"start_date_time\":"
                 "\"2013-02-05T07:25:00Z\",\"end_date_time\":\"2013-02-05T07:35:00Z\"}}}",
                 NULL, &s);
        one_rejection(&s, "exactly one of date_time and time_interval", "both");
        run_text("{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"effective_time_frame\":"
                 "\"2013-02-05T07:25:00Z\"}",
                 NULL, &s);
        one_rejection(&s, "exactly one of date_time and time_interval", "string frame");
        run_text("{\"heart_rate\":{\"value\":72,\"unit\":\"beats/min\"},\"effective_time_frame\":"
                 "{\"time_interval\":[]}}",
                 NULL, &s);
        one_rejection(&s, "time_interval is not an object", "interval array");
    }
}

static void test_part_of_day(void **state)
{
    char probe[40];
    sink_t s;
    const vl_ingest_reading_t *r;
    int zones = vl_ingest_local_time("2013-02-05T00:00:00", "+01:00", probe) == 0;
    (void)state;
    /* without a zone: rejected, the why says what is needed */
    run_file("blood-pressure/1.0/shouldPass/with-time-frame.json", NULL, &s);
    r = one_rejection(&s, "needs a zone: give a tz parameter (or set the patient's zone)", "bp");
    assert_string_equal(r->measure->key, "blood-pressure");
    /* bad parts and dates, checked before the zone */
    steps("\"date\":\"2013-02-05\",\"part_of_day\":\"noon\"", "+01:00", &s);
    one_rejection(&s, "part_of_day \"noon\" is not morning", "noon");
    steps("\"date\":\"2013-02-30\",\"part_of_day\":\"morning\"", "+01:00", &s);
    one_rejection(&s, "date \"2013-02-30\" is not a full date", "bad date");
    steps("\"date\":\"2013-02-05T00:00:00Z\",\"part_of_day\":\"morning\"", "+01:00", &s);
    one_rejection(&s, "is not a full date", "date-time as date");
    if (!zones)
        return; /* zone.c not there yet: the rest needs vl_ingest_local_time */
    /* with a zone: the whole date, part_of_day in the note */
    run_file("blood-pressure/1.0/shouldPass/with-time-frame.json", "+01:00", &s);
    r = one_reading(&s, "bp with tz");
    assert_string_equal(r->start, "2013-02-05T00:00:00+01:00");
    assert_string_equal(r->end, "2013-02-06T00:00:00+01:00");
    assert_string_equal(r->note, "part_of_day: evening");
    check_value(r, 0, "8480-6", "160", "mm[Hg]", "mmHg");
    run_file("body-height/1.0/shouldPass/with-time-frame.json", "-05:00", &s);
    r = one_reading(&s, "height with tz");
    check_value(r, 0, "8302-2", "180", "cm", "cm");
    assert_string_equal(r->start, "2013-02-05T00:00:00-05:00");
    /* night may run past midnight: two dates */
    steps("\"date\":\"2013-12-31\",\"part_of_day\":\"night\"", "Z", &s);
    r = one_reading(&s, "night");
    assert_string_equal(r->start, "2013-12-31T00:00:00Z");
    assert_string_equal(r->end, "2014-01-02T00:00:00Z");
    /* an IANA zone: the date of a DST change has two offsets */
    if (vl_ingest_local_time("2024-03-31T00:00:00", "Europe/Berlin", probe) == 0) {
        steps("\"date\":\"2024-03-31\",\"part_of_day\":\"afternoon\"", "Europe/Berlin", &s);
        r = one_reading(&s, "berlin");
        assert_string_equal(r->start, "2024-03-31T00:00:00+01:00");
        assert_string_equal(r->end, "2024-04-01T00:00:00+02:00");
        assert_string_equal(r->note, "part_of_day: afternoon");
    }
    /* an unknown zone */
    steps("\"date\":\"2024-03-31\",\"part_of_day\":\"afternoon\"", "Mars/Olympus", &s);
    one_rejection(&s, "cannot be resolved in zone Mars/Olympus", "mars");
    /* steps in part of a day are not steps per day */
    steps("\"date\":\"2013-02-05\",\"part_of_day\":\"morning\"", "+01:00", &s);
    assert_string_equal(one_reading(&s, "morning steps")->measure->key, "step-count");
    /* a header naming a version on the IEEE time frame refuses it */
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"body-height\",\"version\":\"2.0\"}},"
             "\"body\":{\"body_height\":{\"value\":180,\"unit\":\"cm\"},\"effective_time_frame\":"
             "{\"time_interval\":{\"date\":\"2023-02-05\",\"part_of_day\":\"morning\"}}}}",
             "+01:00", &s);
    one_rejection(&s, "omh:body-height 2.x takes no date with part_of_day", "ieee frame");
    /* 1.0 takes it */
    run_text("{\"header\":{\"id\":\"x\",\"creation_date_time\":\"2024-03-01T08:01:00Z\","
             "\"schema_id\":{\"namespace\":\"omh\",\"name\":\"body-height\",\"version\":\"1.0\"}},"
             "\"body\":{\"body_height\":{\"value\":180,\"unit\":\"cm\"},\"effective_time_frame\":"
             "{\"time_interval\":{\"date\":\"2023-02-05\",\"part_of_day\":\"morning\"}}}}",
             "+01:00", &s);
    one_reading(&s, "1.0 frame");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_should_pass_all),
        cmocka_unit_test(test_should_fail_all),
        cmocka_unit_test(test_spot_checks),
        cmocka_unit_test(test_data_point),
        cmocka_unit_test(test_header_documents),
        cmocka_unit_test(test_data_point_documents),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_not_omh),
        cmocka_unit_test(test_emit_stops),
        cmocka_unit_test(test_every_unit),
        cmocka_unit_test(test_mapping_table),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_glucose_specimens),
        cmocka_unit_test(test_intervals),
        cmocka_unit_test(test_date_times),
        cmocka_unit_test(test_part_of_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
