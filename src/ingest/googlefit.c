/*
 * vitalog — ingest/googlefit.c: Google Fit REST API datasets normalized
 * into readings.
 *
 * DESIGN NOTES
 *
 * 1. Facts. The shapes are those of the real samples that Open mHealth's
 *    shimmer maps (tests/data/ingest/vendors/googlefit/ and older/,
 *    github.com/openmhealth/shimmer 9c1430d) and of the Fitness REST API
 *    reference (developers.google.com/fit/rest): a dataset
 *    (users.dataSources.datasets.get) is {"minStartTimeNs", "maxEndTimeNs",
 *    "dataSourceId", "point": [{"startTimeNanos", "endTimeNanos",
 *    "dataTypeName", "originDataSourceId", "value": [{"fpVal" | "intVal" |
 *    "mapVal" ...}], "modifiedTimeMillis"}]}; an aggregate response
 *    (users.dataset.aggregate) is {"bucket": [{"dataset": [DATASET...]}]}.
 *    A document is a dataset when it has "point" or "dataSourceId", an
 *    aggregate when it has "bucket"; shimmer's envelope {"shim", "body"}
 *    is unwrapped. Anything else is not Google Fit (-1, 400). A dataset
 *    without points (no "point", or []) has no readings: 0.
 *
 * 2. Times are epoch nanoseconds as decimal strings, converted exactly
 *    (vl_ingest_epoch_time, scale 1e9; microseconds are kept when
 *    present, nanoseconds below them are cut). A point whose start equals
 *    its end is an instant, otherwise a period [start, end].
 *
 * 3. Data types (table vl_ingest_googlefit_map, units those Google
 *    defines for each type): com.google.heart_rate.bpm fpVal /min,
 *    com.google.step_count.delta intVal {steps}, com.google.weight fpVal kg,
 *    com.google.height fpVal m, com.google.calories.expended fpVal kcal,
 *    com.google.blood_pressure value[0] systolic and value[1] diastolic
 *    mmHg, com.google.oxygen_saturation value[0] %,
 *    com.google.body.temperature value[0] Cel. A value is read from
 *    fpVal, else intVal, as the text Google sent ("72.0999984741211").
 *    Sleep: com.google.activity.segment points whose activity (intVal) is
 *    72 sleeping, 109 light, 110 deep or 111 REM sleep, and
 *    com.google.sleep.segment points of stage 2 sleeping, 4 light, 5 deep,
 *    6 REM, are sleep-duration readings: end - start in seconds (exact
 *    decimal from the nanoseconds, unit s), over the segment's period.
 *    Awake and out-of-bed sleep stages (1, 3) are part of a sleep session
 *    but no sleep: skipped. Every other data type or activity (a walking
 *    segment, location samples, speed, blood glucose, whose specimen
 *    decides between two measures) is a real reading vitalog does not map:
 *    rejected, naming the type.
 *
 * 4. Identity and origin. Points have no id of their own: record_id stays
 *    "". A merged dataset (the merge_* streams) has at most one point per
 *    data type and time, so the time tells its points apart. The origin
 *    is the point's originDataSourceId, else the dataset's dataSourceId,
 *    a data stream id "type:dataType:app[:manufacturer:model:uid]:stream":
 *    source_name is that id when it fits (95 bytes), else its application
 *    package; a stream with a device gives the device (manufacturer,
 *    model, serial = uid).
 */
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

const vl_ingest_mapping_t vl_ingest_googlefit_map[] = {
    {"com.google.heart_rate.bpm", "heart-rate", "bpm", "/min", "epoch-ns"},
    {"com.google.step_count.delta", "step-count", "steps", "{steps}", "epoch-ns"},
    {"com.google.weight", "body-weight", "kg", "kg", "epoch-ns"},
    {"com.google.height", "body-height", "m", "m", "epoch-ns"},
    {"com.google.calories.expended", "calories-burned", "kcal", "kcal", "epoch-ns"},
    {"com.google.blood_pressure", "blood-pressure", "mmHg", "mm[Hg]", "epoch-ns"},
    {"com.google.oxygen_saturation", "oxygen-saturation", "percent", "%", "epoch-ns"},
    {"com.google.body.temperature", "body-temperature", "Celsius", "Cel", "epoch-ns"},
    {"com.google.activity.segment/sleep", "sleep-duration", "s", "s", "epoch-ns"},
    {"com.google.sleep.segment", "sleep-duration", "s", "s", "epoch-ns"},
    {.source = NULL},
};

typedef struct gf {
    vl_ingest_emit_fn emit;
    void *ctx;
    vl_error_t *err;
} gf_t;

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* the text of value[i]: fpVal, else intVal; NULL none */
static const char *value_at(const json_t *p, size_t i)
{
    const json_t *v = json_array_get(json_object_get(p, "value"), i);
    const char *s = vl_ingest_number_text(json_object_get(v, "fpVal"));
    return s ? s : vl_ingest_number_text(json_object_get(v, "intVal"));
}

/* nanoseconds text as int64 (at most 19 digits) */
static int nanos(const char *s, int64_t *out)
{
    size_t n = s ? strlen(s) : 0;
    int64_t v = 0;
    if (!n || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* the origin (note 4) */
static void origin(const char *id, vl_ingest_reading_t *r)
{
    char parts[8][96];
    size_t n = 0, len = 0;
    if (!id)
        return;
    for (const char *p = id;; p++) {
        if (*p == ':' || *p == '\0') {
            if (n < 8) {
                parts[n][len < 95 ? len : 95] = '\0';
                n++;
            }
            len = 0;
            if (!*p)
                break;
        } else {
            if (n < 8 && len < 95)
                parts[n][len] = *p;
            len++;
        }
    }
    if (strlen(id) < sizeof r->source_name)
        snprintf(r->source_name, sizeof r->source_name, "%s", id);
    else if (n >= 3)
        snprintf(r->source_name, sizeof r->source_name, "%s", parts[2]);
    if (n == 7) {
        snprintf(r->device.manufacturer, sizeof r->device.manufacturer, "%.63s", parts[3]);
        snprintf(r->device.model, sizeof r->device.model, "%.63s", parts[4]);
        snprintf(r->device.serial, sizeof r->device.serial, "%s", parts[5]);
    }
}

/* sleep activities and stages (note 3): 1 sleep, 0 skipped, -1 not sleep */
static int sleep_kind(const char *type, const char *v)
{
    static const char *const activities[] = {"72", "109", "110", "111"};
    static const char *const stages[] = {"2", "4", "5", "6"};
    int segment = !strcmp(type, "com.google.activity.segment");
    if (!v)
        return -1;
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(v, segment ? activities[i] : stages[i]))
            return 1;
    return !segment && (!strcmp(v, "1") || !strcmp(v, "3")) ? 0 : -1;
}

/* end - start in seconds, exact */
static void seconds_text(int64_t ns, char out[40])
{
    int64_t s = ns / 1000000000, f = ns % 1000000000;
    int n = snprintf(out, 40, "%lld", (long long)s);
    if (f) {
        int w = 9;
        while (f % 10 == 0) {
            f /= 10;
            w--;
        }
        snprintf(out + n, 40 - (size_t)n, ".%0*lld", w, (long long)f);
    }
}

/* the value(s) of a point into r; why on failure */
static const char *point_values(const json_t *p, const char *type, const vl_ingest_mapping_t *m,
                                int64_t ns, vl_ingest_reading_t *r)
{
    if (!strcmp(m->measure, "sleep-duration")) {
        char secs[40];
        seconds_text(ns, secs);
        return vl_ingest_set_value(r, 0, secs, m->ucum, m->source_unit) < 0 ? "bad duration" : NULL;
    }
    if (vl_ingest_set_value(r, 0, value_at(p, 0), m->ucum, m->source_unit) < 0)
        return "value[0] has no number (fpVal or intVal)";
    if (!strcmp(type, "com.google.blood_pressure") &&
        vl_ingest_set_value(r, 1, value_at(p, 1), m->ucum, m->source_unit) < 0)
        return "value[1] (diastolic) has no number (fpVal)";
    return NULL;
}

static int on_point(gf_t *g, const json_t *p, const char *path, const char *source)
{
    const char *type = str_at(p, "dataTypeName"), *why = NULL;
    const char *st = str_at(p, "startTimeNanos"), *et = str_at(p, "endTimeNanos");
    const vl_ingest_mapping_t *m;
    vl_ingest_reading_t r;
    int64_t s, e;
    if (!json_is_object(p) || !type)
        return vl_ingest_reject(g->emit, g->ctx, NULL, path, "a point needs a dataTypeName");
    m = vl_ingest_map_find(vl_ingest_googlefit_map, type, NULL);
    if (!strcmp(type, "com.google.activity.segment") || !strcmp(type, "com.google.sleep.segment")) {
        int k = sleep_kind(type, value_at(p, 0));
        if (k == 0)
            return 0; /* awake or out of bed during a sleep session (note 3) */
        m = k > 0 ? vl_ingest_map_find(vl_ingest_googlefit_map,
                                       m ? type : "com.google.activity.segment/sleep", NULL)
                  : NULL;
        if (!m)
            return vl_ingest_reject(g->emit, g->ctx, NULL, path,
                                    "unsupported Google Fit data type %s (activity %s): only "
                                    "sleep segments are mapped",
                                    type, value_at(p, 0) ? value_at(p, 0) : "none");
    }
    if (!m)
        return vl_ingest_reject(g->emit, g->ctx, NULL, path, "unsupported Google Fit data type %s",
                                type);
    vl_ingest_reading_init(&r, m->measure, path);
    if (nanos(st, &s) < 0 || nanos(et, &e) < 0 || e < s ||
        vl_ingest_epoch_time(st, 1000000000, r.start) < 0 ||
        (e != s && vl_ingest_epoch_time(et, 1000000000, r.end) < 0))
        return vl_ingest_reject(g->emit, g->ctx, m->measure, path,
                                "startTimeNanos and endTimeNanos must be epoch nanoseconds "
                                "(strings), start <= end");
    if ((why = point_values(p, type, m, e - s, &r)) != NULL)
        return vl_ingest_reject(g->emit, g->ctx, m->measure, path, "%s", why);
    origin(str_at(p, "originDataSourceId") ? str_at(p, "originDataSourceId") : source, &r);
    return g->emit(g->ctx, &r, NULL);
}

static int on_dataset(gf_t *g, const json_t *ds, const char *base)
{
    const json_t *points = json_object_get(ds, "point"), *p;
    const char *source = str_at(ds, "dataSourceId");
    size_t i;
    if (points && !json_is_array(points))
        return vl_error_set(g->err, 400, "structure", NULL, "googlefit: %s/point is not an array",
                            base);
    json_array_foreach (points, i, p) {
        char path[128];
        snprintf(path, sizeof path, "%s/point/%zu", base, i);
        if (on_point(g, p, path, source) < 0)
            return -1;
    }
    return 0;
}

static int not_googlefit(gf_t *g)
{
    return vl_error_set(g->err, 400, "structure", NULL,
                        "googlefit: not a Google Fit dataset ({\"dataSourceId\", \"point\": "
                        "[...]}) or aggregate ({\"bucket\": [...]})");
}

static int on_buckets(gf_t *g, const json_t *buckets, const char *prefix)
{
    const json_t *b, *ds;
    size_t i, j;
    if (!json_is_array(buckets))
        return not_googlefit(g);
    json_array_foreach (buckets, i, b) {
        const json_t *sets = json_object_get(b, "dataset");
        if (sets && !json_is_array(sets))
            return not_googlefit(g);
        json_array_foreach (sets, j, ds) {
            char base[64];
            snprintf(base, sizeof base, "%s/bucket/%zu/dataset/%zu", prefix, i, j);
            if (!json_is_object(ds))
                return not_googlefit(g);
            if (on_dataset(g, ds, base) < 0)
                return -1;
        }
    }
    return 0;
}

int vl_ingest_googlefit(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                        void *ctx, vl_error_t *err)
{
    gf_t g = {emit, ctx, err};
    const json_t *body = json_object_get(doc, "body");
    const char *prefix = "";
    (void)o; /* Google Fit times are absolute: no zone needed */
    if (json_object_get(doc, "shim") && json_is_object(body)) {
        doc = body; /* shimmer's envelope (note 1) */
        prefix = "/body";
    }
    if (!json_is_object(doc))
        return not_googlefit(&g);
    if (json_object_get(doc, "bucket"))
        return on_buckets(&g, json_object_get(doc, "bucket"), prefix);
    if (json_object_get(doc, "point") || vl_json_is_string(json_object_get(doc, "dataSourceId")))
        return on_dataset(&g, doc, prefix);
    return not_googlefit(&g);
}
