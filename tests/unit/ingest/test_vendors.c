/*
 * Unit tests for src/ingest/fitbit.c, withings.c and googlefit.c: the
 * vendors' Web API responses.
 *
 *   - every sample in tests/data/ingest/vendors/{fitbit,withings,googlefit,
 *     older}: the exact numbers of readings and rejections (or the refusal
 *     of the document), Fitbit with tz America/Los_Angeles;
 *   - values spot-checked by hand against the samples: value text, UCUM
 *     unit, start/end, measure, record_id, device, note;
 *   - Fitbit without tz: every reading rejected, asking for a tz;
 *   - Withings value x 10^unit exact (negative values, unit > 0), the goal
 *     group and ambiguous attributions skipped, status != 0 refused;
 *   - Google Fit nanosecond strings exact, devices from data stream ids,
 *     sleep segments, unsupported types rejected;
 *   - for every sample: the same document gives the same readings twice,
 *     and no two readings of one document share an identity (measure,
 *     device, time, record_id);
 *   - small inline documents for the edge cases, and a walk stopped by emit.
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

#include "../support.h"

#define LA "America/Los_Angeles"
#define VENDORS VL_TEST_DATA "/ingest/vendors/"

/* ------------------------------------------------------------------------
 * Collecting readings
 * ---------------------------------------------------------------------- */

typedef struct got {
    vl_ingest_reading_t *r;
    char (*why)[256]; /* "" for a reading */
    size_t n, cap, ok, rejected;
    size_t stop_after; /* return -1 after this many emits (0 never) */
} got_t;

static int collect(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    got_t *g = ctx;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->r = realloc(g->r, g->cap * sizeof *g->r);
        g->why = realloc(g->why, g->cap * sizeof *g->why);
        assert_non_null(g->r);
        assert_non_null(g->why);
    }
    g->r[g->n] = *r;
    snprintf(g->why[g->n], sizeof g->why[g->n], "%s", why ? why : "");
    g->n++;
    if (why)
        g->rejected++;
    else
        g->ok++;
    if (!why) {
        assert_non_null(r->measure);
        assert_true(r->n_values > 0);
        assert_true(r->start[0]);
        assert_true(r->path[0] == '/');
    }
    return g->stop_after && g->n >= g->stop_after ? -1 : 0;
}

static void got_free(got_t *g)
{
    free(g->r);
    free(g->why);
    memset(g, 0, sizeof *g);
}

static int run_doc(vl_ingest_format_t f, json_t *doc, const char *tz, got_t *g, vl_error_t *err)
{
    vl_ingest_options_t o = {tz};
    memset(g, 0, sizeof *g);
    return vl_ingest_document(f, doc, &o, collect, g, err);
}

static json_t *parse_text(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = vl_json_parse(text, strlen(text), NULL, &err);
    if (!doc)
        fail_msg("bad test JSON: %s", vl_error_message(&err));
    return doc;
}

static json_t *parse_file(const char *rel)
{
    char path[512];
    size_t len = 0;
    char *text;
    json_t *doc;
    vl_error_t err = VL_ERROR_INIT;
    snprintf(path, sizeof path, "%s%s", VENDORS, rel);
    text = test_read_file(path, &len);
    if (!text)
        fail_msg("cannot read %s", path);
    doc = vl_json_parse(text, len, NULL, &err);
    free(text);
    if (!doc)
        fail_msg("%s: %s", rel, vl_error_message(&err));
    return doc;
}

/* runs a sample; returns the normalizer's result, readings in g */
static int run_file(vl_ingest_format_t f, const char *rel, const char *tz, got_t *g)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = parse_file(rel);
    int rc = run_doc(f, doc, tz, g, &err);
    if (rc < 0)
        assert_int_equal(err.status, 400);
    else
        assert_int_equal(err.status, 0);
    vl_error_clear(&err);
    json_decref(doc);
    return rc;
}

static int run_text(vl_ingest_format_t f, const char *text, const char *tz, got_t *g,
                    vl_error_t *err)
{
    json_t *doc = parse_text(text);
    int rc = run_doc(f, doc, tz, g, err);
    json_decref(doc);
    return rc;
}

/* the reading (not a rejection) at `path` of `measure` */
static const vl_ingest_reading_t *find(const got_t *g, const char *path, const char *measure)
{
    for (size_t i = 0; i < g->n; i++)
        if (!g->why[i][0] && !strcmp(g->r[i].path, path) && !strcmp(g->r[i].measure->key, measure))
            return &g->r[i];
    fail_msg("no %s reading at %s", measure, path);
    return NULL;
}

/* the why of the rejection at `path` */
static const char *rejected_at(const got_t *g, const char *path)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->why[i][0] && !strcmp(g->r[i].path, path))
            return g->why[i];
    fail_msg("no rejection at %s", path);
    return NULL;
}

static void check_value(const vl_ingest_reading_t *r, size_t i, const char *value, const char *unit)
{
    assert_true(i < r->n_values);
    assert_string_equal(r->values[i].value, value);
    assert_string_equal(r->values[i].unit, unit);
}

static void check_time(const vl_ingest_reading_t *r, const char *start, const char *end)
{
    assert_string_equal(r->start, start);
    assert_string_equal(r->end, end);
}

/* ------------------------------------------------------------------------
 * Every sample: counts, determinism, identities
 * ---------------------------------------------------------------------- */

typedef struct sample {
    vl_ingest_format_t f;
    const char *file;
    int rc;
    size_t ok, rejected;
} sample_t;

#define FB VL_INGEST_FITBIT
#define WI VL_INGEST_WITHINGS
#define GF VL_INGEST_GOOGLEFIT

static const sample_t samples[] = {
    {FB, "fitbit/fitbit-activities-date-empty-activities-list.json", 0, 0, 0},
    {FB, "fitbit/fitbit-activities-date-multiple-in-activities-list.json", 0, 4, 1},
    {FB, "fitbit/fitbit-activities-date-single-in-activities-list.json", 0, 2, 0},
    {FB, "fitbit/fitbit-activities-heart-1d-1m-intraday.json", 0, 5, 0},
    {FB, "fitbit/fitbit-activities-steps-1d-1m-intraday.json", 0, 4, 0},
    {FB, "fitbit/fitbit-activities-steps-timeseries.json", 0, 3, 0},
    {FB, "fitbit/fitbit-body-log-weight.json", 0, 8, 0},
    {FB, "fitbit/fitbit-sleep-date-empty-sleep-list.json", 0, 0, 0},
    {FB, "fitbit/fitbit-sleep-date-range-empty-sleep-list.json", 0, 0, 0},
    {FB, "fitbit/fitbit-sleep-date-range.json", 0, 2, 0},
    {FB, "fitbit/fitbit-sleep-date.json", 0, 2, 0},
    {FB, "older/fitbit-activity-catalog.json", -1, 0, 0},
    {FB, "older/fitbit-activity.json", 0, 1, 0},
    {FB, "older/fitbit-bp.json", 0, 3, 0},
    {FB, "older/fitbit-get-user-info.json", -1, 0, 0},
    {FB, "older/fitbit-glucose.json", 0, 3, 0},
    {FB, "older/fitbit-heart-count-1m.json", 0, 0, 5}, /* dateTime "today" */
    {FB, "older/fitbit-heart.json", 0, 12, 0},
    {FB, "older/fitbit-sleep-date-multiple-in-sleep-list.json", 0, 2, 0},
    {FB, "older/fitbit-step-count-1m.json", 0, 2 + 1440 + 869, 0},
    {FB, "older/fitbit-step-count.json", 0, 1, 0},
    {FB, "older/fitbit-time-series-steps.json", 0, 3, 0},
    {FB, "older/fitbit-weight-multi.json", 0, 6, 0},
    {FB, "older/fitbit-weight.json", 0, 6, 0},
    {WI, "withings/withings-activity-measures.json", 0, 8, 0},
    {WI, "withings/withings-body-measures-only-goal.json", 0, 0, 0},
    {WI, "withings/withings-body-measures.json", 0, 8, 3}, /* 3 x type 18 */
    {WI, "withings/withings-intraday-activity.json", 0, 8, 0},
    {WI, "withings/withings-sleep-measures.json", 0, 0, 0}, /* state segments only */
    {WI, "withings/withings-sleep-summary.json", 0, 2, 0},
    {WI, "older/withings-body.json", 0, 5, 0},
    {WI, "older/withings-intraday-activity.json", 0, 142, 0}, /* 71 x steps, calories */
    {GF, "googlefit/googlefit-empty.json", 0, 0, 0},
    {GF, "googlefit/googlefit-merge-activity-segments-only-sleep.json", 0, 1, 0},
    {GF, "googlefit/googlefit-merge-activity-segments-only-stationary-activity.json", 0, 0, 1},
    {GF, "googlefit/googlefit-merge-activity-segments.json", 0, 0, 3},
    {GF, "googlefit/googlefit-merge-calories-expended.json", 0, 3, 0},
    {GF, "googlefit/googlefit-merge-heart-rate.json", 0, 2, 0},
    {GF, "googlefit/googlefit-merge-height.json", 0, 2, 0},
    {GF, "googlefit/googlefit-merge-location-samples.json", 0, 0, 2},
    {GF, "googlefit/googlefit-merge-speed.json", 0, 0, 2},
    {GF, "googlefit/googlefit-merge-step-deltas.json", 0, 4, 0},
    {GF, "googlefit/googlefit-merge-weight.json", 0, 3, 0},
    {GF, "older/googlefit-body-height.json", 0, 3, 0},
    {GF, "older/googlefit-empty.json", 0, 0, 0},
    {GF, "older/googlefit-step-count.json", 0, 1, 0},
};

static void test_sample_counts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const sample_t *s = &samples[i];
        got_t g;
        int rc = run_file(s->f, s->file, LA, &g);
        if (rc != s->rc || g.ok != s->ok || g.rejected != s->rejected)
            fail_msg("%s: rc %d, %zu readings, %zu rejections; want %d, %zu, %zu", s->file, rc,
                     g.ok, g.rejected, s->rc, s->ok, s->rejected);
        for (size_t k = 0; k < g.n; k++)
            if (!g.why[k][0] && g.r[k].measure->components[0].loinc == NULL)
                assert_string_equal(g.r[k].values[0].loinc, g.r[k].measure->loinc);
        got_free(&g);
    }
}

static int same_identity(const vl_ingest_reading_t *a, const vl_ingest_reading_t *b)
{
    return a->measure == b->measure && !strcmp(a->start, b->start) && !strcmp(a->end, b->end) &&
           !strcmp(a->record_id, b->record_id) && !strcmp(a->device.serial, b->device.serial) &&
           !strcmp(a->device.model, b->device.model) &&
           !strcmp(a->device.manufacturer, b->device.manufacturer);
}

/* the same document twice: the same readings; within one: no identity twice */
static void test_sample_identities(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const sample_t *s = &samples[i];
        got_t a, b;
        if (s->rc < 0)
            continue;
        run_file(s->f, s->file, LA, &a);
        run_file(s->f, s->file, LA, &b);
        assert_int_equal(a.n, b.n);
        for (size_t k = 0; k < a.n; k++) {
            assert_memory_equal(&a.r[k], &b.r[k], sizeof a.r[k]);
            assert_string_equal(a.why[k], b.why[k]);
        }
        for (size_t k = 0; k < a.n; k++)
            for (size_t j = k + 1; j < a.n && !a.why[k][0]; j++)
                if (!a.why[j][0] && same_identity(&a.r[k], &a.r[j]))
                    fail_msg("%s: %s and %s have one identity", s->file, a.r[k].path, a.r[j].path);
        got_free(&a);
        got_free(&b);
    }
}

/* every row of the three mapping tables names a measure and a unit */
static void test_mapping_tables(void **state)
{
    static const vl_ingest_format_t fs[3] = {FB, WI, GF};
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        const vl_ingest_mapping_t *m = vl_ingest_mappings(fs[i]);
        size_t n = 0;
        assert_non_null(m);
        for (; m->source; m++, n++) {
            assert_non_null(vl_ingest_measure(m->measure));
            assert_true(m->ucum[0]);
            assert_non_null(m->source_unit);
            assert_true(!strcmp(m->time_rule, "local+tz") || !strcmp(m->time_rule, "date+tz") ||
                        !strcmp(m->time_rule, "epoch-s") || !strcmp(m->time_rule, "epoch-ns"));
        }
        assert_true(n >= 10);
    }
}

/* ------------------------------------------------------------------------
 * Fitbit
 * ---------------------------------------------------------------------- */

static void test_fitbit_values(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;

    run_file(FB, "fitbit/fitbit-activities-heart-1d-1m-intraday.json", LA, &g);
    r = find(&g, "/activities-heart-intraday/dataset/2", "heart-rate");
    check_value(r, 0, "64", "/min");
    assert_string_equal(r->values[0].loinc, "8867-4");
    check_time(r, "2015-08-21T00:03:00-07:00", "");
    assert_string_equal(r->record_id, "");
    got_free(&g);

    run_file(FB, "fitbit/fitbit-activities-steps-1d-1m-intraday.json", LA, &g);
    r = find(&g, "/activities-steps/0", "steps-day");
    check_value(r, 0, "3212", "/d"); /* a string in the source */
    check_time(r, "2015-08-21T00:00:00-07:00", "2015-08-22T00:00:00-07:00");
    r = find(&g, "/activities-steps-intraday/dataset/1", "step-count");
    check_value(r, 0, "0", "{steps}"); /* zero is a reading */
    check_time(r, "2015-08-21T14:27:00-07:00", "2015-08-21T14:28:00-07:00");
    r = find(&g, "/activities-steps-intraday/dataset/2", "step-count");
    check_value(r, 0, "52", "{steps}");
    got_free(&g);

    run_file(FB, "fitbit/fitbit-activities-steps-timeseries.json", LA, &g);
    r = find(&g, "/activities-steps/2", "steps-day");
    check_value(r, 0, "0", "/d");
    check_time(r, "2015-08-25T00:00:00-07:00", "2015-08-26T00:00:00-07:00");
    got_free(&g);

    run_file(FB, "fitbit/fitbit-body-log-weight.json", LA, &g);
    r = find(&g, "/weight/1", "body-weight");
    check_value(r, 0, "55.9", "kg");
    check_time(r, "2015-05-14T11:51:57-07:00", "");
    assert_string_equal(r->record_id, "1431604317000");
    r = find(&g, "/weight/1", "body-mass-index");
    check_value(r, 0, "21.17", "kg/m2");
    assert_string_equal(r->record_id, "1431604317000");
    got_free(&g);

    run_file(FB, "older/fitbit-weight.json", LA, &g); /* November: PST */
    r = find(&g, "/weight/0", "body-weight");
    check_value(r, 0, "49.4", "kg");
    check_time(r, "2014-11-12T23:59:59-08:00", "");
    got_free(&g);

    run_file(FB, "fitbit/fitbit-sleep-date.json", LA, &g);
    r = find(&g, "/sleep/0", "sleep-duration");
    check_value(r, 0, "63", "min");
    check_time(r, "2016-12-13T09:59:00.000-08:00", "2016-12-13T11:02:30.000-08:00");
    assert_string_equal(r->record_id, "13214029456");
    r = find(&g, "/sleep/1", "sleep-duration");
    check_value(r, 0, "112", "min");
    assert_string_equal(r->record_id, "13211507000");
    got_free(&g);

    /* no endTime: startTime + duration (28800000 ms) */
    run_file(FB, "older/fitbit-sleep-date-multiple-in-sleep-list.json", LA, &g);
    r = find(&g, "/sleep/1", "sleep-duration");
    check_value(r, 0, "480", "min");
    check_time(r, "2015-06-07T22:00:00.000-07:00", "2015-06-08T06:00:00.000-07:00");
    got_free(&g);

    run_file(FB, "older/fitbit-bp.json", LA, &g);
    r = find(&g, "/result/content/bp/1", "blood-pressure");
    assert_int_equal(r->n_values, 2);
    check_value(r, 0, "122", "mm[Hg]");
    assert_string_equal(r->values[0].loinc, "8480-6");
    check_value(r, 1, "75", "mm[Hg]");
    assert_string_equal(r->values[1].loinc, "8462-4");
    check_time(r, "2014-07-13T12:30:00-07:00", "");
    assert_string_equal(r->record_id, "437206449");
    got_free(&g);

    run_file(FB, "older/fitbit-glucose.json", LA, &g);
    r = find(&g, "/result/content/glucose/1", "blood-glucose-molar");
    check_value(r, 0, "5.1", "mmol/L");
    assert_string_equal(r->record_id, "Afternoon");
    check_time(r, "2014-07-13T12:30:00-07:00", "");
    got_free(&g);

    run_file(FB, "older/fitbit-heart.json", LA, &g);
    r = find(&g, "/result/content/heart/0", "resting-heart-rate"); /* no time: its day */
    check_value(r, 0, "50", "/min");
    check_time(r, "2014-07-13T00:00:00-07:00", "2014-07-14T00:00:00-07:00");
    r = find(&g, "/result/content/heart/6", "heart-rate");
    check_value(r, 0, "61", "/min");
    check_time(r, "2014-07-13T05:50:00-07:00", "");
    assert_string_equal(r->record_id, "438204159");
    got_free(&g);

    run_file(FB, "fitbit/fitbit-activities-date-multiple-in-activities-list.json", LA, &g);
    r = find(&g, "/activities/0/calories", "calories-burned"); /* 1440000 ms */
    check_value(r, 0, "150", "kcal");
    check_time(r, "2015-06-23T11:55:00-07:00", "2015-06-23T12:19:00-07:00");
    assert_string_equal(r->record_id, "253202765");
    assert_string_equal(r->note, "Run");
    r = find(&g, "/activities/2/steps", "step-count"); /* hasStartTime false: its day */
    check_value(r, 0, "8481", "{steps}");
    check_time(r, "2015-06-23T00:00:00-07:00", "2015-06-24T00:00:00-07:00");
    assert_non_null(strstr(rejected_at(&g, "/activities/1/steps"), "duration"));
    got_free(&g);

    run_file(FB, "older/fitbit-step-count-1m.json", LA, &g);
    r = find(&g, "/0/result/content/activities-steps-intraday/dataset/26", "step-count");
    check_value(r, 0, "7", "{steps}");
    check_time(r, "2014-08-20T00:26:00-07:00", "2014-08-20T00:27:00-07:00");
    r = find(&g, "/1/result/content/activities-steps/0", "steps-day");
    check_value(r, 0, "1944", "/d");
    got_free(&g);

    run_file(FB, "older/fitbit-heart-count-1m.json", LA, &g);
    assert_non_null(strstr(rejected_at(&g, "/activities-heart-intraday/dataset/0"), "today"));
    got_free(&g);
}

/* without tz every reading is rejected, asking for one */
static void test_fitbit_without_tz(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const sample_t *s = &samples[i];
        got_t g;
        if (s->f != FB || s->rc < 0 || !strcmp(s->file, "older/fitbit-heart-count-1m.json"))
            continue;
        assert_int_equal(run_file(FB, s->file, NULL, &g), 0);
        assert_int_equal(g.ok, 0);
        assert_int_equal(g.rejected, s->ok + s->rejected);
        for (size_t k = 0; k < g.n; k++)
            if (!strstr(g.why[k], "tz parameter") && !strstr(g.why[k], "duration"))
                fail_msg("%s %s: %s", s->file, g.r[k].path, g.why[k]);
        got_free(&g);
    }
}

static void test_fitbit_zones(void **state)
{
    got_t g;
    vl_error_t err = VL_ERROR_INIT;
    const char *doc = "{\"activities-steps\":[{\"dateTime\":\"2024-03-31\",\"value\":\"10\"}],"
                      "\"activities-steps-intraday\":{\"dataset\":[{\"time\":\"01:45:00\","
                      "\"value\":3},{\"time\":\"02:30:00\",\"value\":4}],"
                      "\"datasetInterval\":15,\"datasetType\":\"minute\"}}";
    (void)state;
    /* a fixed offset */
    assert_int_equal(run_text(FB, doc, "+05:30", &g, &err), 0);
    check_time(find(&g, "/activities-steps/0", "steps-day"), "2024-03-31T00:00:00+05:30",
               "2024-04-01T00:00:00+05:30");
    check_time(find(&g, "/activities-steps-intraday/dataset/0", "step-count"),
               "2024-03-31T01:45:00+05:30", "2024-03-31T02:00:00+05:30");
    got_free(&g);
    /* the spring day in Berlin (23 h); 01:45 + 15 min keeps the start's offset;
     * 02:30 does not exist: the offset before the change */
    assert_int_equal(run_text(FB, doc, "Europe/Berlin", &g, &err), 0);
    check_time(find(&g, "/activities-steps/0", "steps-day"), "2024-03-31T00:00:00+01:00",
               "2024-04-01T00:00:00+02:00");
    check_time(find(&g, "/activities-steps-intraday/dataset/0", "step-count"),
               "2024-03-31T01:45:00+01:00", "2024-03-31T02:00:00+01:00");
    check_time(find(&g, "/activities-steps-intraday/dataset/1", "step-count"),
               "2024-03-31T02:30:00+01:00", "2024-03-31T02:45:00+01:00");
    got_free(&g);
    /* an unknown zone: rejected, saying so */
    assert_int_equal(run_text(FB, doc, "Nope/Zone", &g, &err), 0);
    assert_int_equal(g.ok, 0);
    assert_int_equal(g.rejected, 3);
    assert_non_null(strstr(g.why[0], "Nope/Zone"));
    got_free(&g);
    assert_int_equal(err.status, 0);
}

static void test_fitbit_edges(void **state)
{
    got_t g;
    vl_error_t err = VL_ERROR_INIT;
    (void)state;
    assert_int_equal(
        run_text(FB,
                 "{\"weight\":[{\"date\":\"2015-05-13\",\"time\":\"18:28:59\",\"weight\":\"abc\"},"
                 "{\"date\":\"2015-05-13\",\"weight\":56.7},"
                 "{\"date\":\"2015-02-30\",\"time\":\"10:00\",\"weight\":56.7},"
                 "{\"date\":\"2015-05-13\",\"time\":\"25:00\",\"weight\":56.7},"
                 "{\"date\":\"2015-05-13\",\"time\":\"10:00\"}, 7,"
                 "{\"date\":\"2015-05-13\",\"time\":\"10:00\",\"weight\":56.7,\"bmi\":null,"
                 "\"source\":\"Aria\",\"logId\":\"x1\"}],"
                 "\"bp\":[{\"systolic\":120,\"time\":\"10:00\",\"date\":\"2015-05-13\"}],"
                 "\"sleep\":[{\"startTime\":\"2015-05-13T22:00:00\",\"minutesAsleep\":5}],"
                 "\"activities-heart-intraday\":{\"dataset\":[{\"time\":\"00:01:00\","
                 "\"value\":60}]},"
                 "\"activities-steps\":[{\"dateTime\":\"2015-05-13\",\"value\":\"1\"}],"
                 "\"activities-steps-intraday\":{\"dataset\":[{\"time\":\"00:01:00\","
                 "\"value\":6}],\"datasetType\":\"fortnight\"}}",
                 LA, &g, &err),
        0);
    assert_non_null(strstr(rejected_at(&g, "/weight/0"), "not a number"));
    assert_non_null(strstr(rejected_at(&g, "/weight/1"), "no time"));
    assert_non_null(strstr(rejected_at(&g, "/weight/2"), "not a date"));
    assert_non_null(strstr(rejected_at(&g, "/weight/3"), "cannot be resolved"));
    assert_non_null(strstr(rejected_at(&g, "/weight/4"), "no value"));
    assert_non_null(strstr(rejected_at(&g, "/weight/5"), "not an object"));
    assert_non_null(strstr(rejected_at(&g, "/weight/6"), "not a number")); /* bmi null */
    assert_string_equal(find(&g, "/weight/6", "body-weight")->source_name, "Aria");
    assert_string_equal(find(&g, "/weight/6", "body-weight")->record_id, "x1");
    assert_non_null(strstr(rejected_at(&g, "/bp/0"), "diastolic"));
    assert_non_null(strstr(rejected_at(&g, "/sleep/0"), "duration"));
    /* no activities-heart: the dataset's day is unknown */
    assert_non_null(strstr(rejected_at(&g, "/activities-heart-intraday/dataset/0"), "day"));
    assert_non_null(strstr(rejected_at(&g, "/activities-steps-intraday/dataset/0"), "interval"));
    assert_int_equal(g.ok, 2);
    assert_int_equal(g.rejected, 11);
    got_free(&g);

    /* modern daily heart entries: value.restingHeartRate */
    assert_int_equal(run_text(FB,
                              "{\"activities-heart\":[{\"dateTime\":\"2019-01-01\",\"value\":"
                              "{\"heartRateZones\":[],\"restingHeartRate\":68}},"
                              "{\"dateTime\":\"2019-01-02\",\"value\":{\"heartRateZones\":[]}}]}",
                              "Z", &g, &err),
                     0);
    assert_int_equal(g.ok, 1);
    check_value(find(&g, "/activities-heart/0/value/restingHeartRate", "resting-heart-rate"), 0,
                "68", "/min");
    check_time(find(&g, "/activities-heart/0/value/restingHeartRate", "resting-heart-rate"),
               "2019-01-01T00:00:00Z", "2019-01-02T00:00:00Z");
    got_free(&g);
    assert_int_equal(err.status, 0);
}

static void test_fitbit_not_fitbit(void **state)
{
    static const char *const docs[] = {
        "{}",
        "[]",
        "{\"user\":{\"weight\":55.4}}",
        "{\"weight\":\"x\"}",
        "{\"activities-heart-intraday\":[]}",
        "[{\"weight\":[]},{\"nope\":1}]",
        "{\"result\":{\"date\":\"2014-01-01\",\"content\":{\"categories\":[]}}}",
        "{\"activities-heart-intraday\":{\"dataset\":{}}}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        got_t g;
        vl_error_t err = VL_ERROR_INIT;
        if (run_text(FB, docs[i], LA, &g, &err) != -1 || err.status != 400)
            fail_msg("%s: not refused (%d)", docs[i], err.status);
        assert_non_null(strstr(vl_error_message(&err), "fitbit"));
        vl_error_clear(&err);
        got_free(&g);
    }
}

/* emit returning -1 stops the walk: -1 with no error */
static void test_emit_stops(void **state)
{
    static const struct {
        vl_ingest_format_t f;
        const char *file;
    } files[] = {{FB, "older/fitbit-step-count-1m.json"},
                 {WI, "withings/withings-body-measures.json"},
                 {GF, "googlefit/googlefit-merge-step-deltas.json"}};
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        json_t *doc = parse_file(files[i].file);
        vl_ingest_options_t o = {LA};
        vl_error_t err = VL_ERROR_INIT;
        got_t g;
        memset(&g, 0, sizeof g);
        g.stop_after = 2;
        assert_int_equal(vl_ingest_document(files[i].f, doc, &o, collect, &g, &err), -1);
        assert_int_equal(err.status, 0);
        assert_int_equal(g.n, 2);
        got_free(&g);
        json_decref(doc);
    }
}

/* ------------------------------------------------------------------------
 * Withings
 * ---------------------------------------------------------------------- */

static void test_withings_values(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;

    run_file(WI, "withings/withings-body-measures.json", NULL, &g);
    r = find(&g, "/body/measuregrps/0", "blood-pressure"); /* types 10 and 9 */
    assert_int_equal(r->n_values, 2);
    check_value(r, 0, "104", "mm[Hg]");
    check_value(r, 1, "68", "mm[Hg]");
    check_time(r, "2015-05-31T06:06:23.000Z", "");
    assert_string_equal(r->record_id, "366956482");
    r = find(&g, "/body/measuregrps/0/measures/4", "body-weight"); /* 74126 x 10^-3 */
    check_value(r, 0, "74.126", "kg");
    assert_string_equal(r->record_id, "366956482/1");
    r = find(&g, "/body/measuregrps/0/measures/2", "heart-rate");
    check_value(r, 0, "41", "/min");
    assert_string_equal(r->record_id, "366956482/11");
    r = find(&g, "/body/measuregrps/3/measures/0", "heart-rate");
    check_value(r, 0, "47", "/min");
    assert_string_equal(r->note, "a few minutes after a walk");
    check_time(r, "2015-02-26T21:57:17.000Z", "");
    r = find(&g, "/body/measuregrps/4/measures/0", "body-height"); /* 1930 x 10^-3 m */
    check_value(r, 0, "1.930", "m");
    r = find(&g, "/body/measuregrps/4/measures/1", "body-temperature");
    check_value(r, 0, "37", "Cel");
    assert_non_null(strstr(rejected_at(&g, "/body/measuregrps/0/measures/3"), "type 18"));
    got_free(&g);

    run_file(WI, "older/withings-body.json", NULL, &g);
    r = find(&g, "/body/measuregrps/1/measures/0", "body-weight"); /* 7257 x 10^-2 */
    check_value(r, 0, "72.57", "kg");
    r = find(&g, "/body/measuregrps/0", "blood-pressure");
    check_value(r, 0, "133", "mm[Hg]");
    check_value(r, 1, "75", "mm[Hg]");
    assert_string_equal(r->note, "August yo.");
    got_free(&g);

    run_file(WI, "withings/withings-activity-measures.json", NULL, &g); /* their own zone */
    r = find(&g, "/body/activities/0/steps", "steps-day");
    check_value(r, 0, "2934", "/d");
    check_time(r, "2015-06-18T00:00:00-07:00", "2015-06-19T00:00:00-07:00");
    r = find(&g, "/body/activities/3/calories", "calories-burned"); /* February: PST */
    check_value(r, 0, "99", "kcal");
    check_time(r, "2015-02-21T00:00:00-08:00", "2015-02-22T00:00:00-08:00");
    got_free(&g);

    run_file(WI, "withings/withings-intraday-activity.json", NULL, &g);
    r = find(&g, "/body/series/1434758640/steps", "step-count");
    check_value(r, 0, "21", "{steps}");
    check_time(r, "2015-06-20T00:04:00.000Z", "2015-06-20T00:05:00.000Z");
    r = find(&g, "/body/series/1434760860/calories", "calories-burned");
    check_value(r, 0, "7", "kcal");
    got_free(&g);

    run_file(WI, "withings/withings-sleep-summary.json", NULL, &g);
    r = find(&g, "/body/series/0", "sleep-duration"); /* 3360 + 7800 s */
    check_value(r, 0, "11160", "s");
    check_time(r, "2017-09-01T23:15:00.000Z", "2017-09-02T02:25:00.000Z");
    assert_string_equal(r->record_id, "123");
    r = find(&g, "/body/series/1", "sleep-duration"); /* 15900 + 13800 s */
    check_value(r, 0, "29700", "s");
    got_free(&g);
}

static const char *wi_group(const char *measures, char *buf, size_t n)
{
    snprintf(buf, n,
             "{\"status\":0,\"body\":{\"measuregrps\":[{\"grpid\":1,\"attrib\":0,"
             "\"category\":1,\"date\":1433052383,\"measures\":[%s]}]}}",
             measures);
    return buf;
}

/* value x 10^unit on the text */
static void test_withings_scaling(void **state)
{
    static const struct {
        const char *value, *unit, *want, *type, *ucum;
    } cases[] = {
        {"7263", "-2", "72.63", "1", "kg"},
        {"7250", "-2", "72.50", "1", "kg"},
        {"74128", "-3", "74.128", "1", "kg"},
        {"5", "2", "500", "1", "kg"},
        {"0", "2", "0", "1", "kg"},
        {"12", "-4", "0.0012", "1", "kg"},
        {"-1000", "-3", "-1.000", "71", "Cel"},
        {"-5", "-3", "-0.005", "71", "Cel"},
        {"-75", "1", "-750", "71", "Cel"},
        {"-0", "-1", "0.0", "71", "Cel"},
        {"\"007\"", "0", "7", "11", "/min"},
        {"98", "0", "98", "54", "%"},
        {"1", "-20", "0.00000000000000000001", "4", "m"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char m[160], doc[512];
        got_t g;
        vl_error_t err = VL_ERROR_INIT;
        snprintf(m, sizeof m, "{\"type\":%s,\"unit\":%s,\"value\":%s}", cases[i].type,
                 cases[i].unit, cases[i].value);
        assert_int_equal(run_text(WI, wi_group(m, doc, sizeof doc), NULL, &g, &err), 0);
        if (g.ok != 1 || strcmp(g.r[0].values[0].value, cases[i].want))
            fail_msg("%s x 10^%s: %s, want %s", cases[i].value, cases[i].unit,
                     g.ok ? g.r[0].values[0].value : g.why[0], cases[i].want);
        assert_string_equal(g.r[0].values[0].unit, cases[i].ucum);
        got_free(&g);
    }
    /* not integers */
    static const char *const bad[] = {
        "{\"type\":1,\"unit\":-2,\"value\":72.5}",
        "{\"type\":1,\"unit\":-2.5,\"value\":7}",
        "{\"type\":1,\"unit\":-21,\"value\":7}",
        "{\"type\":1,\"unit\":-2}",
        "{\"type\":1,\"value\":7}",
        "{\"type\":1,\"unit\":-2,\"value\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[512];
        got_t g;
        vl_error_t err = VL_ERROR_INIT;
        assert_int_equal(run_text(WI, wi_group(bad[i], doc, sizeof doc), NULL, &g, &err), 0);
        if (g.ok != 0 || g.rejected != 1)
            fail_msg("%s: accepted", bad[i]);
        got_free(&g);
    }
}

static void test_withings_groups(void **state)
{
    got_t g;
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(
        run_text(WI,
                 "{\"status\":0,\"body\":{\"measuregrps\":["
                 /* 0: a goal: skipped */
                 "{\"grpid\":10,\"attrib\":0,\"category\":2,\"date\":1,\"measures\":"
                 "[{\"type\":1,\"unit\":0,\"value\":70}]},"
                 /* 1, 2: ambiguous attributions: skipped */
                 "{\"grpid\":11,\"attrib\":1,\"category\":1,\"date\":1,\"measures\":"
                 "[{\"type\":1,\"unit\":0,\"value\":70}]},"
                 "{\"grpid\":12,\"attrib\":4,\"category\":1,\"date\":1,\"measures\":"
                 "[{\"type\":1,\"unit\":0,\"value\":70}]},"
                 /* 3: unknown attrib, 4: unknown category, 5: bad date: rejected */
                 "{\"grpid\":13,\"attrib\":99,\"category\":1,\"date\":1,\"measures\":[]},"
                 "{\"grpid\":14,\"attrib\":0,\"category\":3,\"date\":1,\"measures\":[]},"
                 "{\"grpid\":15,\"attrib\":0,\"category\":1,\"date\":\"x\",\"measures\":[]},"
                 /* 6: a device, systolic without diastolic, SpO2 */
                 "{\"grpid\":16,\"attrib\":8,\"category\":1,\"date\":1712722953,"
                 "\"deviceid\":14546187,\"hash_deviceid\":\"7df35c\",\"model\":\"BPM Core\","
                 "\"measures\":[{\"type\":10,\"unit\":0,\"value\":120},"
                 "{\"type\":54,\"unit\":0,\"value\":97}]},"
                 /* 7: not a group */
                 "5]}}",
                 NULL, &g, &err),
        0);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.rejected, 5);
    assert_non_null(strstr(rejected_at(&g, "/body/measuregrps/3"), "attrib"));
    assert_non_null(strstr(rejected_at(&g, "/body/measuregrps/4"), "category"));
    assert_non_null(strstr(rejected_at(&g, "/body/measuregrps/5"), "epoch"));
    assert_non_null(strstr(rejected_at(&g, "/body/measuregrps/6"), "diastolic"));
    assert_non_null(strstr(rejected_at(&g, "/body/measuregrps/7"), "group"));
    r = find(&g, "/body/measuregrps/6/measures/1", "oxygen-saturation");
    check_value(r, 0, "97", "%");
    assert_string_equal(r->device.manufacturer, "Withings");
    assert_string_equal(r->device.serial, "14546187");
    assert_string_equal(r->device.model, "BPM Core");
    check_time(r, "2024-04-10T04:22:33.000Z", "");
    got_free(&g);
}

static void test_withings_series(void **state)
{
    got_t g;
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    /* Sleep v2 Get: hr and rr per epoch; state segments alone skipped */
    assert_int_equal(run_text(WI,
                              "{\"status\":0,\"body\":{\"series\":["
                              "{\"startdate\":1,\"enddate\":2,\"state\":0},"
                              "{\"startdate\":1662866460,\"enddate\":1662867180,\"state\":1,"
                              "\"hr\":{\"1662866491\":45,\"1662867098\":46},"
                              "\"rr\":{\"1662866491\":14,\"x\":3}}]}}",
                              NULL, &g, &err),
                     0);
    assert_int_equal(g.ok, 3);
    assert_int_equal(g.rejected, 1);
    r = find(&g, "/body/series/1/hr/1662867098", "heart-rate");
    check_value(r, 0, "46", "/min");
    check_time(r, "2022-09-11T03:31:38.000Z", "");
    check_value(find(&g, "/body/series/1/rr/1662866491", "respiratory-rate"), 0, "14", "/min");
    assert_non_null(strstr(rejected_at(&g, "/body/series/1/rr/x"), "epoch"));
    got_free(&g);

    /* sleep summary with rem sleep; intraday heart rate; an activity without a zone */
    assert_int_equal(run_text(WI,
                              "{\"status\":0,\"body\":{\"series\":[{\"id\":7,\"startdate\":0,"
                              "\"enddate\":600,\"data\":{\"deepsleepduration\":60,"
                              "\"lightsleepduration\":120,\"remsleepduration\":30}},"
                              "{\"id\":8,\"startdate\":0,\"enddate\":600,\"data\":{}}]}}",
                              NULL, &g, &err),
                     0);
    check_value(find(&g, "/body/series/0", "sleep-duration"), 0, "210", "s");
    assert_non_null(strstr(rejected_at(&g, "/body/series/1"), "no sleep"));
    got_free(&g);

    assert_int_equal(run_text(WI,
                              "{\"status\":0,\"body\":{\"series\":{\"1434758640\":"
                              "{\"heart_rate\":71,\"steps\":5},\"abc\":{\"steps\":1,"
                              "\"duration\":60}}}}",
                              NULL, &g, &err),
                     0);
    r = find(&g, "/body/series/1434758640/heart_rate", "heart-rate");
    check_value(r, 0, "71", "/min");
    check_time(r, "2015-06-20T00:04:00.000Z", "");
    assert_non_null(strstr(rejected_at(&g, "/body/series/1434758640/steps"), "duration"));
    assert_non_null(strstr(rejected_at(&g, "/body/series/abc/steps"), "epoch"));
    got_free(&g);

    static const char *act = "{\"status\":0,\"body\":{\"activities\":[{\"date\":\"2015-06-18\","
                             "\"steps\":10},{\"date\":\"2015-06-31\",\"steps\":10}]}}";
    assert_int_equal(run_text(WI, act, NULL, &g, &err), 0);
    assert_non_null(strstr(rejected_at(&g, "/body/activities/0/steps"), "tz parameter"));
    assert_non_null(strstr(rejected_at(&g, "/body/activities/1/steps"), "date"));
    got_free(&g);
    assert_int_equal(run_text(WI, act, "Europe/Berlin", &g, &err), 0);
    check_time(find(&g, "/body/activities/0/steps", "steps-day"), "2015-06-18T00:00:00+02:00",
               "2015-06-19T00:00:00+02:00");
    assert_int_equal(g.rejected, 1);
    got_free(&g);
    assert_int_equal(err.status, 0);
}

static void test_withings_not_withings(void **state)
{
    static const char *const docs[] = {
        "{\"status\":401,\"body\":{},\"error\":\"invalid_token\"}",
        "{\"status\":0}",
        "{\"status\":0,\"body\":{}}",
        "{\"status\":0,\"body\":{\"measuregrps\":{}}}",
        "{\"status\":\"0\",\"body\":[]}",
        "[]",
        "{\"measuregrps\":[]}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        got_t g;
        vl_error_t err = VL_ERROR_INIT;
        if (run_text(WI, docs[i], NULL, &g, &err) != -1 || err.status != 400)
            fail_msg("%s: not refused", docs[i]);
        if (i == 0)
            assert_non_null(strstr(vl_error_message(&err), "401: invalid_token"));
        vl_error_clear(&err);
        got_free(&g);
    }
}

/* ------------------------------------------------------------------------
 * Google Fit
 * ---------------------------------------------------------------------- */

static void test_googlefit_values(void **state)
{
    got_t g;
    const vl_ingest_reading_t *r;
    (void)state;

    run_file(GF, "googlefit/googlefit-merge-heart-rate.json", NULL, &g);
    r = find(&g, "/point/0", "heart-rate"); /* start == end: an instant */
    check_value(r, 0, "54", "/min");
    check_time(r, "2015-01-30T15:37:48.186Z", "");
    assert_string_equal(r->source_name,
                        "raw:com.google.heart_rate.bpm:com.azumio.instantheartrate.full:");
    assert_string_equal(r->record_id, "");
    r = find(&g, "/point/1", "heart-rate");
    check_value(r, 0, "58.0", "/min");
    check_time(r, "2015-07-10T14:34:32.914Z", "2015-07-10T14:34:33.915Z");
    got_free(&g);

    run_file(GF, "googlefit/googlefit-merge-step-deltas.json", NULL, &g);
    r = find(&g, "/point/0", "step-count");
    check_value(r, 0, "4146", "{steps}");
    check_time(r, "2015-02-02T22:49:39.811Z", "2015-02-02T23:25:20.811Z");
    r = find(&g, "/point/2", "step-count"); /* ...687316406 ns: microseconds kept */
    check_value(r, 0, "17", "{steps}");
    check_time(r, "2015-07-10T21:58:17.687316Z", "2015-07-10T21:59:17.687316Z");
    assert_string_equal(r->device.manufacturer, "samsung");
    assert_string_equal(r->device.model, "Galaxy Nexus");
    assert_string_equal(r->device.serial, "32b1bd9e");
    assert_string_equal(r->source_name, "derived:com.google.step_count.cumulative:com.google."
                                        "android.gms:samsung:Galaxy Nexus:32b1bd9e:soft_step_"
                                        "counter");
    r = find(&g, "/point/3", "step-count");
    check_time(r, "2015-07-10T22:05:21.162Z", "2015-07-10T22:07:18.006058Z");
    got_free(&g);

    run_file(GF, "googlefit/googlefit-merge-weight.json", NULL, &g);
    check_value(find(&g, "/point/0", "body-weight"), 0, "72.0999984741211", "kg");
    check_value(find(&g, "/point/1", "body-weight"), 0, "72", "kg");
    got_free(&g);

    run_file(GF, "googlefit/googlefit-merge-height.json", NULL, &g);
    r = find(&g, "/point/0", "body-height");
    check_value(r, 0, "1.8287990093231201", "m");
    check_time(r, "2015-07-08T03:17:06.030Z", "");
    got_free(&g);

    run_file(GF, "googlefit/googlefit-merge-calories-expended.json", NULL, &g);
    r = find(&g, "/point/1", "calories-burned");
    check_value(r, 0, "1672.50634765625", "kcal");
    check_time(r, "2015-07-07T14:00:00.000Z", "2015-07-08T14:00:00.000Z");
    assert_string_equal(r->source_name,
                        "derived:com.google.calories.expended:com.google.android.gms:from_bmr");
    got_free(&g);

    run_file(GF, "googlefit/googlefit-merge-activity-segments-only-sleep.json", NULL, &g);
    r = find(&g, "/point/0", "sleep-duration"); /* activity 72, sleeping: 1800 s */
    check_value(r, 0, "1800", "s");
    check_time(r, "2015-07-07T13:30:00.000Z", "2015-07-07T14:00:00.000Z");
    got_free(&g);

    run_file(GF, "googlefit/googlefit-merge-speed.json", NULL, &g);
    assert_non_null(strstr(rejected_at(&g, "/point/0"), "com.google.speed"));
    got_free(&g);

    run_file(GF, "older/googlefit-empty.json", NULL, &g); /* shimmer's envelope */
    assert_int_equal(g.n, 0);
    got_free(&g);
}

static void test_googlefit_edges(void **state)
{
    got_t g;
    vl_error_t err = VL_ERROR_INIT;
    const vl_ingest_reading_t *r;
    (void)state;
    assert_int_equal(
        run_text(GF,
                 "{\"shim\":\"googlefit\",\"body\":{\"bucket\":[{\"dataset\":[{"
                 "\"dataSourceId\":\"raw:com.google.blood_pressure:com.app:Omron:M7:u1:bp\","
                 "\"point\":["
                 "{\"startTimeNanos\":\"1\",\"endTimeNanos\":\"1\",\"dataTypeName\":"
                 "\"com.google.blood_pressure\",\"value\":[{\"fpVal\":120.5},{\"fpVal\":80}]},"
                 "{\"startTimeNanos\":\"0\",\"endTimeNanos\":\"1500000000\",\"dataTypeName\":"
                 "\"com.google.sleep.segment\",\"value\":[{\"intVal\":4}]},"
                 "{\"startTimeNanos\":\"0\",\"endTimeNanos\":\"1500000000\",\"dataTypeName\":"
                 "\"com.google.sleep.segment\",\"value\":[{\"intVal\":1}]},"
                 "{\"startTimeNanos\":\"5\",\"endTimeNanos\":\"4\",\"dataTypeName\":"
                 "\"com.google.heart_rate.bpm\",\"value\":[{\"fpVal\":60}]},"
                 "{\"startTimeNanos\":\"1e9\",\"endTimeNanos\":\"1e9\",\"dataTypeName\":"
                 "\"com.google.heart_rate.bpm\",\"value\":[{\"fpVal\":60}]},"
                 "{\"startTimeNanos\":\"1\",\"endTimeNanos\":\"1\",\"dataTypeName\":"
                 "\"com.google.heart_rate.bpm\",\"value\":[{\"mapVal\":[]}]},"
                 "{\"startTimeNanos\":\"1\",\"endTimeNanos\":\"1\",\"dataTypeName\":"
                 "\"com.google.blood_pressure\",\"value\":[{\"fpVal\":120}]},"
                 "{\"startTimeNanos\":\"1\",\"endTimeNanos\":\"1\",\"dataTypeName\":"
                 "\"com.google.blood_glucose\",\"value\":[{\"fpVal\":5.5}]},"
                 "{\"startTimeNanos\":\"1\",\"endTimeNanos\":\"1\"},"
                 "{\"startTimeNanos\":\"99999999999999999999\",\"endTimeNanos\":\"1\","
                 "\"dataTypeName\":\"com.google.heart_rate.bpm\",\"value\":[{\"fpVal\":60}]}"
                 "]}]}]}}",
                 NULL, &g, &err),
        0);
    r = find(&g, "/body/bucket/0/dataset/0/point/0", "blood-pressure");
    check_value(r, 0, "120.5", "mm[Hg]");
    check_value(r, 1, "80", "mm[Hg]");
    check_time(r, "1970-01-01T00:00:00.000Z", ""); /* 1 ns: below a microsecond */
    assert_string_equal(r->device.manufacturer, "Omron");
    assert_string_equal(r->device.model, "M7");
    assert_string_equal(r->device.serial, "u1");
    r = find(&g, "/body/bucket/0/dataset/0/point/1", "sleep-duration"); /* light sleep */
    check_value(r, 0, "1.5", "s");
    check_time(r, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:01.500Z");
    /* point 2 (awake) skipped; 3..9 rejected */
    assert_non_null(strstr(rejected_at(&g, "/body/bucket/0/dataset/0/point/3"), "start <= end"));
    assert_non_null(strstr(rejected_at(&g, "/body/bucket/0/dataset/0/point/4"), "nanoseconds"));
    assert_non_null(strstr(rejected_at(&g, "/body/bucket/0/dataset/0/point/5"), "fpVal"));
    assert_non_null(strstr(rejected_at(&g, "/body/bucket/0/dataset/0/point/6"), "diastolic"));
    assert_non_null(
        strstr(rejected_at(&g, "/body/bucket/0/dataset/0/point/7"), "com.google.blood_glucose"));
    assert_non_null(strstr(rejected_at(&g, "/body/bucket/0/dataset/0/point/8"), "dataTypeName"));
    assert_non_null(strstr(rejected_at(&g, "/body/bucket/0/dataset/0/point/9"), "nanoseconds"));
    assert_int_equal(g.ok, 2);
    assert_int_equal(g.rejected, 7);
    got_free(&g);
    assert_int_equal(err.status, 0);

    static const char *const docs[] = {
        "{}",
        "[]",
        "{\"point\":{}}",
        "{\"bucket\":{}}",
        "{\"bucket\":[{\"dataset\":[5]}]}",
        "{\"minStartTimeNs\":\"1\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        vl_error_t e = VL_ERROR_INIT;
        if (run_text(GF, docs[i], NULL, &g, &e) != -1 || e.status != 400)
            fail_msg("%s: not refused", docs[i]);
        vl_error_clear(&e);
        got_free(&g);
    }
    assert_int_equal(run_text(GF, "{\"dataSourceId\":\"x\",\"point\":[]}", NULL, &g, &err), 0);
    assert_int_equal(g.n, 0);
    got_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_counts),     cmocka_unit_test(test_sample_identities),
        cmocka_unit_test(test_mapping_tables),    cmocka_unit_test(test_fitbit_values),
        cmocka_unit_test(test_fitbit_without_tz), cmocka_unit_test(test_fitbit_zones),
        cmocka_unit_test(test_fitbit_edges),      cmocka_unit_test(test_fitbit_not_fitbit),
        cmocka_unit_test(test_emit_stops),        cmocka_unit_test(test_withings_values),
        cmocka_unit_test(test_withings_scaling),  cmocka_unit_test(test_withings_groups),
        cmocka_unit_test(test_withings_series),   cmocka_unit_test(test_withings_not_withings),
        cmocka_unit_test(test_googlefit_values),  cmocka_unit_test(test_googlefit_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
