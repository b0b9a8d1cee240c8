/*
 * vitalog — ingest/fitbit.c: Fitbit Web API responses normalized into
 * readings.
 *
 * DESIGN NOTES
 *
 * 1. Facts. The response shapes are those of the real samples that Open
 *    mHealth's shimmer maps (tests/data/ingest/vendors/fitbit/ and older/,
 *    github.com/openmhealth/shimmer 9c1430d) and of the Fitbit Web API
 *    reference (dev.fitbit.com): heart rate and step time series with their
 *    intraday datasets, the body weight log, sleep logs, activity logs and
 *    the retired blood pressure, glucose and heart rate logs. A response is
 *    recognized by its top-level keys (table `handlers`): a document with
 *    none of them is not a Fitbit response (-1, 400), and so is a known key
 *    holding the wrong JSON type. The user profile (GET /profile.json,
 *    {"user": ...}) and the activity catalog ({"categories": ...}) hold no
 *    readings and are refused the same way.
 *
 * 2. Envelopes. shimmer stored the older responses wrapped: {"result":
 *    {"date": D, "content": RESPONSE}}, lists of those, and {"shim": ...,
 *    "timeStamp": ..., "body": ...}. Each is unwrapped; D is the day of the
 *    request (Fitbit puts it in the URL, not in the response) and is the
 *    day of the logs that carry a time only (bp, glucose, heart). Without
 *    it such a log is rejected: its day is unknown.
 *
 * 3. Times are local with no zone, always: each one goes through
 *    vl_ingest_local_time() with the `tz` option; without `tz` (or when it
 *    does not resolve) every reading is rejected, saying a tz parameter or
 *    the patient's zone is needed. Never UTC. A day ("date+tz") is the
 *    period [D T00:00, D+1 T00:00) in the zone, the ends resolved each on
 *    its own (a DST day is 23 or 25 h). An end computed from a duration
 *    (an intraday interval, a sleep log without endTime, an activity log)
 *    is the start instant plus the duration, written with the start's
 *    offset: the instant is exact, the offset is the one the start had.
 *
 * 4. Units. Fitbit does not name units in its responses: they follow the
 *    unit system of the request's Accept-Language header, and without one
 *    (the API default) are METRIC. vitalog assumes METRIC: weight in kg,
 *    BMI in kg/m2, glucose in mmol/L (the METRIC glucose unit, which the
 *    sample's 5.1 and 5.5 confirm), heart rate /min, steps, kcal, sleep in
 *    minutes. A client that asks Fitbit for en_US units must not send them
 *    here (documented in docs/ingest.md). source_unit is "" (none given).
 *
 * 5. What becomes a reading (table vl_ingest_fitbit_map):
 *    - activities-heart-intraday dataset {time, value}: heart-rate
 *      instants on the day of activities-heart[0].dateTime (or the
 *      envelope's day when that is not a date: the sample's "today" is
 *      not one, and without an envelope those readings are rejected);
 *    - activities-heart[] value.restingHeartRate: resting-heart-rate of
 *      that day. The daily entry's other content (heart rate zones, the
 *      old string "value" of the samples, undocumented) is not read;
 *    - activities-steps[] / activities-calories[] {dateTime, value as a
 *      string}: steps-day / calories-burned of that day;
 *    - activities-steps-intraday / activities-calories-intraday dataset:
 *      step-count / calories-burned over [t, t + datasetInterval x
 *      datasetType) (second, minute, hour). Zero values are readings:
 *      "0 steps in that minute" is data, and dropping them would make a
 *      day's readings disagree with its total;
 *    - weight[] {weight, bmi, date, time, logId, source}: body-weight (kg)
 *      and body-mass-index (kg/m2) at date T time, record_id logId (one
 *      log id, two measures), source_name the log's source ("API", "Aria");
 *    - sleep[] {startTime, endTime, duration, minutesAsleep, logId}:
 *      sleep-duration minutesAsleep min over [startTime, endTime] (or
 *      startTime + duration ms), record_id logId; the minute and level data
 *      are not read;
 *    - bp[] {systolic, diastolic, time, logId}: blood-pressure; the
 *      "average" of the day is not read (it is the logs' mean);
 *    - glucose[] {glucose, tracker, time}: blood-glucose-molar. These logs
 *      have no logId: the tracker name ("Morning") is their record_id, as
 *      a day has one entry per tracker and time ("hba1c" is not read);
 *    - heart[] {heartRate, tracker, time, logId}: resting-heart-rate for
 *      the "Resting Heart Rate" tracker, heart-rate for the others;
 *    - activities[] (activity logs) {calories, steps, startDate, startTime,
 *      hasStartTime, duration, logId, name}: calories-burned and
 *      step-count over [start, start + duration], record_id logId, note the
 *      activity's name. A log with hasStartTime false has no real start
 *      time: its readings cover its whole day. A log with a start time but
 *      no duration cannot be placed: its readings are rejected. The daily
 *      "summary" and "goals" are not read: the summary has no date in the
 *      response, and its totals are the time series' (activities-steps).
 *    Logs (bp, heart) without a time cover their day (date+tz).
 *
 * 6. Identity: record_id is the log's logId where Fitbit has one; series
 *    and intraday points have none and are told apart by their time.
 *    Paths are JSON pointers into the document as sent
 *    ("/activities-heart-intraday/dataset/17", "/0/result/content/bp/2").
 */
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

const vl_ingest_mapping_t vl_ingest_fitbit_map[] = {
    {"activities-heart-intraday", "heart-rate", "", "/min", "local+tz"},
    {"activities-heart/restingHeartRate", "resting-heart-rate", "", "/min", "date+tz"},
    {"activities-steps", "steps-day", "", "/d", "date+tz"},
    {"activities-steps-intraday", "step-count", "", "{steps}", "local+tz"},
    {"activities-calories", "calories-burned", "", "kcal", "date+tz"},
    {"activities-calories-intraday", "calories-burned", "", "kcal", "local+tz"},
    {"weight", "body-weight", "", "kg", "local+tz"},
    {"weight/bmi", "body-mass-index", "", "kg/m2", "local+tz"},
    {"sleep", "sleep-duration", "", "min", "local+tz"},
    {"bp", "blood-pressure", "", "mm[Hg]", "local+tz"},
    {"glucose", "blood-glucose-molar", "", "mmol/L", "local+tz"},
    {"heart", "heart-rate", "", "/min", "local+tz"},
    {"heart/Resting Heart Rate", "resting-heart-rate", "", "/min", "local+tz"},
    {"activities/calories", "calories-burned", "", "kcal", "local+tz"},
    {"activities/steps", "step-count", "", "{steps}", "local+tz"},
    {.source = NULL},
};

typedef struct fb {
    const vl_ingest_options_t *o;
    vl_ingest_emit_fn emit;
    void *ctx;
    vl_error_t *err;
    const char *day; /* the envelope's day (note 2), NULL none */
} fb_t;

/* the effective time of a reading, or why there is none */
typedef struct fb_when {
    char start[40], end[40];
    char why[200];
} fb_when_t;

/* what a reading has besides its value and time */
typedef struct fb_extra {
    const char *record_id, *note, *source_name;
} fb_extra_t;

/* ------------------------------------------------------------------------
 * JSON and calendar helpers
 * ---------------------------------------------------------------------- */

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* a logId (number or string) as text, NULL none */
static const char *id_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    const char *s = vl_json_number_text(v);
    return s ? s : vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* a whole number (at most 15 digits) of a JSON number or string */
static int int_at(const json_t *o, const char *key, int64_t *out)
{
    const char *s = vl_ingest_number_text(json_object_get(o, key));
    int64_t v = 0;
    size_t n = s ? strlen(s) : 0;
    if (!n || n > 15)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int num2(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

/* "YYYY-MM-DD" into days since 1970-01-01; -1 if it is not a real date */
static int parse_date(const char *s, int64_t *days)
{
    int c, y2, m, d;
    int64_t y;
    unsigned mm, dd;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || num2(s, &c) < 0 ||
        num2(s + 2, &y2) < 0 || num2(s + 5, &m) < 0 || num2(s + 8, &d) < 0 || m < 1 || m > 12 ||
        d < 1)
        return -1;
    *days = vl_time_days_from_civil(c * 100 + y2, (unsigned)m, (unsigned)d);
    vl_time_civil_from_days(*days, &y, &mm, &dd);
    return (int)mm == m && (int)dd == d ? 0 : -1; /* 2015-02-30 does not come back */
}

/* A resolved time "YYYY-MM-DDThh:mm:ss[.f]<zone>" plus `ms` milliseconds,
 * written with the same zone suffix (note 3). */
static int add_ms(const char *t, int64_t ms, char out[40])
{
    int64_t days, total, y;
    unsigned mo, d;
    int h, mi, s, frac = 0, nfrac = 0;
    const char *p = t + 19;
    char date[11];
    if (strlen(t) < 20 || t[10] != 'T' || num2(t + 11, &h) < 0 || num2(t + 14, &mi) < 0 ||
        num2(t + 17, &s) < 0)
        return -1;
    memcpy(date, t, 10);
    date[10] = '\0';
    if (parse_date(date, &days) < 0)
        return -1;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, nfrac++)
            if (nfrac < 3)
                frac = frac * 10 + (*p - '0');
    for (int k = nfrac; k < 3; k++)
        frac *= 10;
    total = ((days * 86400 + h * 3600 + mi * 60 + s) * 1000 + frac) + ms;
    vl_time_civil_from_days(total / 86400000, &y, &mo, &d);
    s = (int)(total % 86400000 / 1000);
    frac = (int)(total % 1000);
    if (nfrac || frac)
        snprintf(out, 40, "%04d-%02u-%02uT%02d:%02d:%02d.%03d%s", (int)y, mo, d, s / 3600,
                 s / 60 % 60, s % 60, frac, p);
    else
        snprintf(out, 40, "%04d-%02u-%02uT%02d:%02d:%02d%s", (int)y, mo, d, s / 3600, s / 60 % 60,
                 s % 60, p);
    return 0;
}

/* ------------------------------------------------------------------------
 * Times (note 3)
 * ---------------------------------------------------------------------- */

static int resolve(const fb_t *f, const char *local, char out[40], fb_when_t *w)
{
    if (!f->o->tz)
        snprintf(w->why, sizeof w->why,
                 "Fitbit times are local (\"%s\" has no zone): a tz parameter (or the "
                 "patient's zone) is needed",
                 local);
    else if (vl_ingest_local_time(local, f->o->tz, out) < 0)
        snprintf(w->why, sizeof w->why, "local time \"%s\" cannot be resolved in zone \"%s\"",
                 local, f->o->tz);
    else
        return 0;
    return -1;
}

/* the day `date` in the zone: [date T00:00, next day T00:00) */
static void when_day(const fb_t *f, const char *date, fb_when_t *w)
{
    char local[40];
    int64_t days, y;
    unsigned m, d;
    memset(w, 0, sizeof *w);
    if (parse_date(date, &days) < 0) {
        snprintf(w->why, sizeof w->why, "\"%s\" is not a date (YYYY-MM-DD)",
                 date ? date : "(none)");
        return;
    }
    snprintf(local, sizeof local, "%sT00:00:00", date);
    if (resolve(f, local, w->start, w) < 0)
        return;
    vl_time_civil_from_days(days + 1, &y, &m, &d);
    snprintf(local, sizeof local, "%04d-%02u-%02uT00:00:00", (int)y, m, d);
    resolve(f, local, w->end, w);
}

/* date T time, an instant (span_ms < 0) or [t, t + span_ms] */
static void when_at(const fb_t *f, const char *date, const char *time, int64_t span_ms,
                    fb_when_t *w)
{
    char local[40];
    int64_t days;
    memset(w, 0, sizeof *w);
    if (!date) {
        snprintf(w->why, sizeof w->why, "the day of this reading is not in the document");
        return;
    }
    if (parse_date(date, &days) < 0) {
        snprintf(w->why, sizeof w->why, "the day of this reading is unknown (\"%s\" is not a date)",
                 date);
        return;
    }
    if (!time || strlen(time) > 12) {
        snprintf(w->why, sizeof w->why, "no time (hh:mm[:ss]) on %s", date);
        return;
    }
    snprintf(local, sizeof local, "%sT%s", date, time);
    if (resolve(f, local, w->start, w) < 0)
        return;
    if (span_ms >= 0 && add_ms(w->start, span_ms, w->end) < 0)
        snprintf(w->why, sizeof w->why, "bad time \"%s\"", local);
}

/* a log with a date and maybe a time: its instant, or its whole day */
static void when_log(const fb_t *f, const char *date, const char *time, fb_when_t *w)
{
    if (time)
        when_at(f, date, time, -1, w);
    else
        when_day(f, date, w);
}

/* ------------------------------------------------------------------------
 * Emitting
 * ---------------------------------------------------------------------- */

static const vl_ingest_mapping_t *row(const char *source)
{
    return vl_ingest_map_find(vl_ingest_fitbit_map, source, NULL);
}

static void finish(vl_ingest_reading_t *r, const fb_when_t *w, const fb_extra_t *x)
{
    snprintf(r->start, sizeof r->start, "%s", w->start);
    snprintf(r->end, sizeof r->end, "%s", w->end);
    if (x) {
        snprintf(r->record_id, sizeof r->record_id, "%s", x->record_id ? x->record_id : "");
        snprintf(r->note, sizeof r->note, "%s", x->note ? x->note : "");
        snprintf(r->source_name, sizeof r->source_name, "%s", x->source_name ? x->source_name : "");
    }
}

/* one reading of `source` (a row of the map) from a value */
static int emit_one(fb_t *f, const char *source, const char *path, const json_t *value,
                    const fb_when_t *w, const fb_extra_t *x)
{
    const vl_ingest_mapping_t *m = row(source);
    const char *text = vl_ingest_number_text(value);
    vl_ingest_reading_t r;
    if (w->why[0])
        return vl_ingest_reject(f->emit, f->ctx, m->measure, path, "%s", w->why);
    if (!value)
        return vl_ingest_reject(f->emit, f->ctx, m->measure, path, "no value");
    vl_ingest_reading_init(&r, m->measure, path);
    if (!text || vl_ingest_set_value(&r, 0, text, m->ucum, m->source_unit) < 0)
        return vl_ingest_reject(f->emit, f->ctx, m->measure, path, "the value is not a number");
    finish(&r, w, x);
    return f->emit(f->ctx, &r, NULL);
}

static int not_object(fb_t *f, const char *path)
{
    return vl_ingest_reject(f->emit, f->ctx, NULL, path, "not an object");
}

/* ------------------------------------------------------------------------
 * Series and intraday datasets
 * ---------------------------------------------------------------------- */

/* activities-steps[], activities-calories[]: {dateTime, value} per day */
static int on_daily(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *arr = json_object_get(doc, key), *e;
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        fb_when_t w;
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        when_day(f, str_at(e, "dateTime"), &w);
        if (emit_one(f, key, path, json_object_get(e, "value"), &w, NULL) < 0)
            return -1;
    }
    return 0;
}

/* activities-heart[]: the day's resting heart rate, when Fitbit has one */
static int on_heart_days(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *arr = json_object_get(doc, key), *e;
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        const json_t *v = json_object_get(e, "value"),
                     *rest = json_object_get(v, "restingHeartRate");
        fb_when_t w;
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        if (!rest)
            continue; /* zones only, or the old string value (note 5) */
        snprintf(path, sizeof path, "%s/%s/%zu/value/restingHeartRate", base, key, i);
        when_day(f, str_at(e, "dateTime"), &w);
        if (emit_one(f, "activities-heart/restingHeartRate", path, rest, &w, NULL) < 0)
            return -1;
    }
    return 0;
}

/* the day of an intraday dataset: its series' first dateTime, or the
 * envelope's day (note 5) */
static const char *intraday_day(const fb_t *f, const json_t *doc, const char *key)
{
    char series[64];
    const char *d;
    int64_t days;
    size_t n = strlen(key) - strlen("-intraday");
    snprintf(series, sizeof series, "%.*s", (int)n, key);
    d = str_at(json_array_get(json_object_get(doc, series), 0), "dateTime");
    return parse_date(d, &days) == 0 ? d : f->day ? f->day : d;
}

/* the length of a dataset's intervals in ms, -1 if unknown */
static int64_t interval_ms(const json_t *set)
{
    const char *type = str_at(set, "datasetType");
    int64_t n = 1, unit;
    if (json_object_get(set, "datasetInterval") && int_at(set, "datasetInterval", &n) < 0)
        return -1;
    if (!type)
        return -1;
    if (!strcmp(type, "second"))
        unit = 1000;
    else if (!strcmp(type, "minute"))
        unit = 60000;
    else if (!strcmp(type, "hour"))
        unit = 3600000;
    else
        return -1;
    return n > 0 && n <= 1440 ? n * unit : -1;
}

/* activities-*-intraday: {dataset [{time, value}], datasetInterval, datasetType} */
static int on_intraday(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *set = json_object_get(doc, key), *data = json_object_get(set, "dataset"), *e;
    const char *day = intraday_day(f, doc, key);
    int instants = !strcmp(key, "activities-heart-intraday");
    int64_t span = instants ? -1 : interval_ms(set);
    size_t i;
    if (data && !json_is_array(data))
        return vl_error_set(f->err, 400, "structure", NULL, "fitbit: %s.dataset is not an array",
                            key);
    json_array_foreach (data, i, e) {
        char path[128];
        fb_when_t w;
        snprintf(path, sizeof path, "%s/%s/dataset/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        when_at(f, day, str_at(e, "time"), instants ? -1 : span < 0 ? 0 : span, &w);
        if (!instants && span < 0 && !w.why[0])
            snprintf(w.why, sizeof w.why,
                     "the dataset's interval is unknown (datasetType second, minute or hour)");
        if (emit_one(f, key, path, json_object_get(e, "value"), &w, NULL) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Logs
 * ---------------------------------------------------------------------- */

/* weight[]: body-weight and body-mass-index of one log */
static int on_weight(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *arr = json_object_get(doc, key), *e;
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        fb_when_t w;
        fb_extra_t x = {id_at(e, "logId"), NULL, str_at(e, "source")};
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        when_at(f, str_at(e, "date") ? str_at(e, "date") : f->day, str_at(e, "time"), -1, &w);
        if (emit_one(f, "weight", path, json_object_get(e, "weight"), &w, &x) < 0)
            return -1;
        if (json_object_get(e, "bmi") &&
            emit_one(f, "weight/bmi", path, json_object_get(e, "bmi"), &w, &x) < 0)
            return -1;
    }
    return 0;
}

/* sleep[]: minutes asleep over [startTime, endTime] */
static int on_sleep(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *arr = json_object_get(doc, key), *e;
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        const char *start = str_at(e, "startTime"), *end = str_at(e, "endTime");
        int64_t ms;
        fb_when_t w;
        fb_extra_t x = {id_at(e, "logId"), NULL, NULL};
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        memset(&w, 0, sizeof w);
        if (!start)
            snprintf(w.why, sizeof w.why, "no startTime");
        else if (resolve(f, start, w.start, &w) == 0) {
            if (end)
                resolve(f, end, w.end, &w);
            else if (int_at(e, "duration", &ms) < 0 || add_ms(w.start, ms, w.end) < 0)
                snprintf(w.why, sizeof w.why, "no endTime and no duration (ms)");
        }
        if (emit_one(f, key, path, json_object_get(e, "minutesAsleep"), &w, &x) < 0)
            return -1;
    }
    return 0;
}

/* the day of a log: its own "date", else the envelope's (note 2) */
static const char *log_day(const fb_t *f, const json_t *e)
{
    const char *d = str_at(e, "date");
    return d ? d : f->day;
}

/* bp[]: one blood pressure panel per log */
static int on_bp(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *arr = json_object_get(doc, key), *e;
    const vl_ingest_mapping_t *m = row("bp");
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        const char *sys = vl_ingest_number_text(json_object_get(e, "systolic"));
        const char *dia = vl_ingest_number_text(json_object_get(e, "diastolic"));
        fb_when_t w;
        fb_extra_t x = {id_at(e, "logId"), NULL, NULL};
        vl_ingest_reading_t r;
        int rc;
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        when_log(f, log_day(f, e), str_at(e, "time"), &w);
        vl_ingest_reading_init(&r, m->measure, path);
        if (w.why[0])
            rc = vl_ingest_reject(f->emit, f->ctx, m->measure, path, "%s", w.why);
        else if (!sys || !dia || vl_ingest_set_value(&r, 0, sys, m->ucum, "") < 0 ||
                 vl_ingest_set_value(&r, 1, dia, m->ucum, "") < 0)
            rc = vl_ingest_reject(f->emit, f->ctx, m->measure, path,
                                  "systolic and diastolic must both be numbers");
        else {
            finish(&r, &w, &x);
            rc = f->emit(f->ctx, &r, NULL);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* glucose[]: {glucose, tracker, time}; the tracker names the log (note 5) */
static int on_glucose(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *arr = json_object_get(doc, key), *e;
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        const char *id = id_at(e, "logId");
        fb_when_t w;
        fb_extra_t x = {id ? id : str_at(e, "tracker"), NULL, NULL};
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        when_log(f, log_day(f, e), str_at(e, "time"), &w);
        if (emit_one(f, key, path, json_object_get(e, "glucose"), &w, &x) < 0)
            return -1;
    }
    return 0;
}

/* heart[]: {heartRate, tracker, time, logId} */
static int on_heart_logs(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    const json_t *arr = json_object_get(doc, key), *e;
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        const char *tracker = str_at(e, "tracker");
        fb_when_t w;
        fb_extra_t x = {id_at(e, "logId"), NULL, NULL};
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        when_log(f, log_day(f, e), str_at(e, "time"), &w);
        if (emit_one(f,
                     tracker && !strcmp(tracker, "Resting Heart Rate") ? "heart/Resting Heart Rate"
                                                                       : "heart",
                     path, json_object_get(e, "heartRate"), &w, &x) < 0)
            return -1;
    }
    return 0;
}

/* the period of an activity log (note 5) */
static void activity_when(const fb_t *f, const json_t *e, fb_when_t *w)
{
    const char *date = str_at(e, "startDate");
    int64_t ms;
    if (json_is_false(json_object_get(e, "hasStartTime"))) {
        when_day(f, date, w);
        return;
    }
    if (int_at(e, "duration", &ms) < 0) {
        memset(w, 0, sizeof *w);
        snprintf(w->why, sizeof w->why, "an activity log without a duration cannot be placed");
        return;
    }
    when_at(f, date, str_at(e, "startTime"), ms, w);
}

/* activities[]: the calories and steps of each activity log */
static int on_activities(fb_t *f, const json_t *doc, const char *key, const char *base)
{
    static const char *const fields[2][2] = {{"calories", "activities/calories"},
                                             {"steps", "activities/steps"}};
    const json_t *arr = json_object_get(doc, key), *e;
    size_t i;
    json_array_foreach (arr, i, e) {
        char path[128];
        fb_when_t w;
        fb_extra_t x = {id_at(e, "logId"), str_at(e, "name"), NULL};
        snprintf(path, sizeof path, "%s/%s/%zu", base, key, i);
        if (!json_is_object(e)) {
            if (not_object(f, path) < 0)
                return -1;
            continue;
        }
        activity_when(f, e, &w);
        for (size_t k = 0; k < 2; k++) {
            const json_t *v = json_object_get(e, fields[k][0]);
            char vpath[sizeof path + 16];
            snprintf(vpath, sizeof vpath, "%s/%s", path, fields[k][0]);
            if (v && emit_one(f, fields[k][1], vpath, v, &w, &x) < 0)
                return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Documents (notes 1 and 2)
 * ---------------------------------------------------------------------- */

typedef int (*handler_fn)(fb_t *, const json_t *, const char *, const char *);

static const struct {
    const char *key;
    int array; /* 1 an array, 0 an object */
    handler_fn fn;
} handlers[] = {
    {"activities-heart", 1, on_heart_days},
    {"activities-heart-intraday", 0, on_intraday},
    {"activities-steps", 1, on_daily},
    {"activities-steps-intraday", 0, on_intraday},
    {"activities-calories", 1, on_daily},
    {"activities-calories-intraday", 0, on_intraday},
    {"weight", 1, on_weight},
    {"sleep", 1, on_sleep},
    {"bp", 1, on_bp},
    {"glucose", 1, on_glucose},
    {"heart", 1, on_heart_logs},
    {"activities", 1, on_activities},
};

static int not_fitbit(fb_t *f, const char *base)
{
    return vl_error_set(f->err, 400, "structure", NULL,
                        "fitbit: %s%s is not a Fitbit Web API readings response (none of "
                        "activities-heart, activities-steps, activities-calories and their "
                        "-intraday, weight, sleep, bp, glucose, heart, activities)",
                        base[0] ? "" : "the document", base);
}

static int on_response(fb_t *f, const json_t *doc, const char *base)
{
    size_t known = 0;
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        const json_t *v = json_object_get(doc, handlers[i].key);
        if (!v)
            continue;
        if (handlers[i].array ? !json_is_array(v) : !json_is_object(v))
            return vl_error_set(f->err, 400, "structure", NULL, "fitbit: %s/%s is not an %s", base,
                                handlers[i].key, handlers[i].array ? "array" : "object");
        known++;
    }
    if (!known)
        return not_fitbit(f, base);
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (json_object_get(doc, handlers[i].key) &&
            handlers[i].fn(f, doc, handlers[i].key, base) < 0)
            return -1;
    return 0;
}

static int on_document(fb_t *f, const json_t *doc, const char *base, int depth)
{
    const json_t *result = json_object_get(doc, "result"), *el;
    char path[128];
    size_t i;
    if (depth > 4)
        return not_fitbit(f, base);
    if (json_is_array(doc)) {
        if (!json_array_size(doc))
            return not_fitbit(f, base);
        json_array_foreach (doc, i, el) {
            snprintf(path, sizeof path, "%s/%zu", base, i);
            if (on_document(f, el, path, depth + 1) < 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_object(doc))
        return not_fitbit(f, base);
    if (json_object_get(doc, "shim") && json_object_get(doc, "body")) {
        snprintf(path, sizeof path, "%s/body", base);
        return on_document(f, json_object_get(doc, "body"), path, depth + 1);
    }
    if (json_is_object(result) && json_is_object(json_object_get(result, "content"))) {
        const char *outer = f->day;
        int rc;
        f->day = str_at(result, "date");
        snprintf(path, sizeof path, "%s/result/content", base);
        rc = on_response(f, json_object_get(result, "content"), path);
        f->day = outer;
        return rc;
    }
    return on_response(f, doc, base);
}

int vl_ingest_fitbit(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                     void *ctx, vl_error_t *err)
{
    static const vl_ingest_options_t none = {NULL};
    fb_t f = {o ? o : &none, emit, ctx, err, NULL};
    return on_document(&f, doc, "", 0);
}
