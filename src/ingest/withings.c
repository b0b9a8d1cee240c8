/*
 * vitalog — ingest/withings.c: Withings API responses normalized into
 * readings.
 *
 * DESIGN NOTES
 *
 * 1. Facts. The shapes are those of the real samples that Open mHealth's
 *    shimmer maps (tests/data/ingest/vendors/withings/ and older/,
 *    github.com/openmhealth/shimmer 9c1430d) and of the Withings API
 *    reference (developer.withings.com: Measure - Getmeas, Measure v2 -
 *    Getactivity and Getintradayactivity, Sleep v2 - Get and Getsummary).
 *    Every response is {"status": N, "body": {...}}: a status other than 0
 *    is an error reply (-1, 400 naming the status and its "error" text), a
 *    document without an object "body" is not a Withings response, and
 *    neither is a body with none of measuregrps, activities, series.
 *
 * 2. Measure groups (body.measuregrps[]: grpid, attrib, date in epoch
 *    seconds, category, measures[] {value, type, unit}, and in newer
 *    replies deviceid, hash_deviceid, model, comment). The real value is
 *    value x 10^unit, done on the decimal text (7263, -2 -> "72.63"; 5, 2 ->
 *    "500"; -1000, -3 -> "-1.000": the digits Withings sent are kept,
 *    trailing zeros too). The unit of each type is the SI unit Withings
 *    documents: type 1 weight kg, 4 height m, 9 diastolic and 10 systolic
 *    mm[Hg] (one blood-pressure reading per group; a group with only one
 *    of them is rejected), 11 heart pulse /min, 54 SpO2 %, 71 body
 *    temperature Cel. Every other type is rejected as not mapped: among
 *    them 12 ("temperature", not said to be the body's) and 73 (skin
 *    temperature, which is not a body temperature, LOINC 8310-5), body
 *    composition (5, 6, 8, 76, 77, 88...), and the undocumented 18 the
 *    samples carry (always value -1000, unit -3).
 *    - category 1 is a real measure; category 2 is a goal: skipped, not a
 *      reading and not an error. Other categories are rejected.
 *    - attrib (the API reference's list): 0 and 8 a device, the user's for
 *      sure; 2 entered by the user; 5 the blood pressure monitor's
 *      computed best value; 7 confirmed by the user; 15 guided conditions:
 *      all readings. 1 (a device reading that may be another user's) and 4
 *      (entered when the account was created, "may not be accurate") are
 *      ambiguous: the group is skipped, not a reading of this patient for
 *      sure. Values not in the list are rejected.
 *    - record_id: the grpid for the blood-pressure panel (it is the group),
 *      "grpid/type" for the other readings of a group; the device: serial
 *      deviceid (else hash_deviceid), model, manufacturer "Withings";
 *      the group's comment is the note.
 * 3. Activity (body.activities[]: date YYYY-MM-DD, the local day, steps,
 *    calories, timezone): steps-day and calories-burned ("calories" is the
 *    active energy; totalcalories is not read) over that day in the
 *    activity's own timezone, else the body's, else the tz option, else
 *    rejected. distance, elevation, soft/moderate/intense are not read.
 * 4. Intraday activity (body.series: {epoch: {steps, calories, duration,
 *    heart_rate, ...}}): step-count and calories-burned over [epoch, epoch
 *    + duration], heart-rate at the epoch. An entry with none of these
 *    (e.g. {"duration": 1440}) holds no reading: skipped.
 * 5. Sleep. body.series[] of Getsummary (an object "data"): sleep-duration
 *    = deepsleepduration + lightsleepduration + remsleepduration (those
 *    present; else total_sleep_time) in seconds, unit s (the source's; s is
 *    convertible into the measure's min exactly, while seconds/60 is not
 *    always a finite decimal), over [startdate, enddate], record_id its id.
 *    body.series[] of Sleep v2 Get (no "data"): the state segments
 *    {startdate, enddate, state} are a hypnogram, not readings of a
 *    measure here (skipped); its per-epoch series hr {epoch: value} and rr
 *    become heart-rate and respiratory-rate instants. The sample
 *    withings-sleep-measures.json has state segments only.
 * 6. Times: epoch seconds through vl_ingest_epoch_time() (UTC, "Z"); a day
 *    (date+tz) is [D T00:00, D+1 T00:00) resolved in the zone.
 *    source_unit is "" everywhere: Withings names no units, only powers of
 *    ten.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

const vl_ingest_mapping_t vl_ingest_withings_map[] = {
    {"type 1", "body-weight", "", "kg", "epoch-s"},
    {"type 4", "body-height", "", "m", "epoch-s"},
    {"type 10", "blood-pressure", "", "mm[Hg]", "epoch-s"}, /* systolic */
    {"type 9", "blood-pressure", "", "mm[Hg]", "epoch-s"},  /* diastolic */
    {"type 11", "heart-rate", "", "/min", "epoch-s"},
    {"type 54", "oxygen-saturation", "", "%", "epoch-s"},
    {"type 71", "body-temperature", "", "Cel", "epoch-s"},
    {"activities/steps", "steps-day", "", "/d", "date+tz"},
    {"activities/calories", "calories-burned", "", "kcal", "date+tz"},
    {"series/steps", "step-count", "", "{steps}", "epoch-s"},
    {"series/calories", "calories-burned", "", "kcal", "epoch-s"},
    {"series/heart_rate", "heart-rate", "", "/min", "epoch-s"},
    {"sleep/deep+light+rem", "sleep-duration", "s", "s", "epoch-s"},
    {"sleep/hr", "heart-rate", "", "/min", "epoch-s"},
    {"sleep/rr", "respiratory-rate", "", "/min", "epoch-s"},
    {.source = NULL},
};

typedef struct wi {
    vl_ingest_emit_fn emit;
    void *ctx;
    const vl_ingest_options_t *o;
    const char *body_tz; /* body.timezone, NULL none */
} wi_t;

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* a number or string as text */
static const char *text_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    const char *s = vl_json_number_text(v);
    return s ? s : vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* an optionally signed integer of at most 15 digits */
static int int_text(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t i = s && s[0] == '-', n = s ? strlen(s) : 0;
    if (n <= i || n - i > 15)
        return -1;
    for (size_t k = i; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return -1;
        v = v * 10 + (s[k] - '0');
    }
    *out = i ? -v : v;
    return 0;
}

static int int_at(const json_t *o, const char *key, int64_t *out)
{
    return int_text(vl_ingest_number_text(json_object_get(o, key)), out);
}

/**
 * value x 10^unit on the text (note 2). `value` an integer ("-1000"),
 * `unit` an integer exponent in [-20, 20]. 0, or -1.
 */
static int scale_text(const char *value, const char *unit, char out[40])
{
    int64_t e;
    const char *d;
    size_t n, k, o = 0;
    int neg, zero = 1;
    if (!value || int_text(unit, &e) < 0 || e < -20 || e > 20)
        return -1;
    neg = value[0] == '-';
    d = value + neg;
    n = strlen(d);
    if (!n || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        zero &= d[i] == '0';
    }
    while (n > 1 && d[0] == '0') { /* leading zeros say nothing */
        d++;
        n--;
    }
    if (neg && !zero)
        out[o++] = '-';
    if (e >= 0) {
        memcpy(out + o, d, n);
        o += n;
        for (int64_t i = 0; i < e && !zero; i++)
            out[o++] = '0';
    } else {
        k = (size_t)-e;
        if (n > k) {
            memcpy(out + o, d, n - k);
            o += n - k;
            out[o++] = '.';
            memcpy(out + o, d + n - k, k);
            o += k;
        } else {
            out[o++] = '0';
            out[o++] = '.';
            memset(out + o, '0', k - n);
            o += k - n;
            memcpy(out + o, d, n);
            o += n;
        }
    }
    out[o] = '\0';
    return 0;
}

/* the day after "YYYY-MM-DD"; -1 if that is not a real date */
static int next_day(const char *date, char out[16])
{
    int v[8], y, m, d, last;
    if (!date || strlen(date) != 10 || date[4] != '-' || date[7] != '-')
        return -1;
    for (size_t i = 0, k = 0; i < 10; i++) {
        if (i == 4 || i == 7)
            continue;
        if (date[i] < '0' || date[i] > '9')
            return -1;
        v[k++] = date[i] - '0';
    }
    y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
    m = v[4] * 10 + v[5];
    d = v[6] * 10 + v[7];
    if (y < 1 || m < 1 || m > 12)
        return -1;
    last = (int)vl_time_days_in_month(y, (unsigned)m);
    if (d < 1 || d > last)
        return -1;
    if (++d > last) {
        d = 1;
        if (++m > 12) {
            m = 1;
            y++;
        }
    }
    snprintf(out, 16, "%04d-%02d-%02d", y % 10000, m % 100, d % 100);
    return 0;
}

/* epoch seconds text (+ delta) as an instant; -1 if not an epoch */
static int epoch_plus(const char *secs, int64_t delta, char out[40])
{
    int64_t t;
    char buf[24];
    if (int_text(secs, &t) < 0 || t < 0 || delta < 0)
        return -1;
    snprintf(buf, sizeof buf, "%lld", (long long)(t + delta));
    return vl_ingest_epoch_time(buf, 1, out);
}

static void device_of(const json_t *o, vl_ingest_reading_t *r)
{
    const char *id = text_at(o, "deviceid"), *hash = str_at(o, "hash_deviceid");
    const char *model = str_at(o, "model");
    if (!id)
        id = hash;
    if (!id && !model)
        return;
    snprintf(r->device.manufacturer, sizeof r->device.manufacturer, "Withings");
    snprintf(r->device.serial, sizeof r->device.serial, "%s", id ? id : "");
    snprintf(r->device.model, sizeof r->device.model, "%s", model ? model : "");
}

static const vl_ingest_mapping_t *row(const char *source)
{
    return vl_ingest_map_find(vl_ingest_withings_map, source, NULL);
}

/* One reading of a map row: value text `v`, [start, end] (end may be NULL);
 * `from` is the object it comes from (its device fields and comment). */
static int emit_value(wi_t *w, const char *source, const char *path, const char *v,
                      const char *start, const char *end, const json_t *from, const char *record_id)
{
    const vl_ingest_mapping_t *m = row(source);
    vl_ingest_reading_t r;
    vl_ingest_reading_init(&r, m->measure, path);
    if (!v || vl_ingest_set_value(&r, 0, v, m->ucum, m->source_unit) < 0)
        return vl_ingest_reject(w->emit, w->ctx, m->measure, path, "the value is not a number");
    snprintf(r.start, sizeof r.start, "%s", start);
    snprintf(r.end, sizeof r.end, "%s", end ? end : "");
    snprintf(r.record_id, sizeof r.record_id, "%s", record_id ? record_id : "");
    snprintf(r.note, sizeof r.note, "%s", str_at(from, "comment") ? str_at(from, "comment") : "");
    device_of(from, &r);
    return w->emit(w->ctx, &r, NULL);
}

/* ------------------------------------------------------------------------
 * Measure groups (note 2)
 * ---------------------------------------------------------------------- */

/* 1 a reading, 0 skipped (ambiguous), -1 unknown */
static int attrib_kind(int64_t a)
{
    switch (a) {
    case 0:
    case 2:
    case 5:
    case 7:
    case 8:
    case 15: return 1;
    case 1:
    case 4: return 0;
    default: return -1;
    }
}

static int group_bp(wi_t *w, const json_t *g, const char *path, const char *when, const char *sys,
                    const char *dia, const char *grpid)
{
    const vl_ingest_mapping_t *m = row("type 10");
    vl_ingest_reading_t r;
    vl_ingest_reading_init(&r, m->measure, path);
    if (!sys || !dia)
        return vl_ingest_reject(w->emit, w->ctx, m->measure, path,
                                "a blood pressure group needs both type 10 (systolic) and type 9 "
                                "(diastolic)");
    if (vl_ingest_set_value(&r, 0, sys, m->ucum, "") < 0 ||
        vl_ingest_set_value(&r, 1, dia, m->ucum, "") < 0)
        return vl_ingest_reject(w->emit, w->ctx, m->measure, path, "bad blood pressure value");
    snprintf(r.start, sizeof r.start, "%s", when);
    snprintf(r.record_id, sizeof r.record_id, "%s", grpid ? grpid : "");
    snprintf(r.note, sizeof r.note, "%s", str_at(g, "comment") ? str_at(g, "comment") : "");
    device_of(g, &r);
    return w->emit(w->ctx, &r, NULL);
}

/* the measures of one group: every type but 9/10 on its own */
static int group_measures(wi_t *w, const json_t *g, const char *gpath, const char *when)
{
    const json_t *ms = json_object_get(g, "measures"), *m;
    const char *grpid = text_at(g, "grpid");
    char sys[40] = "", dia[40] = "";
    int bp = 0;
    size_t i;
    json_array_foreach (ms, i, m) {
        char path[160], src[32], value[40], id[128];
        const char *type = text_at(m, "type");
        const vl_ingest_mapping_t *r;
        snprintf(path, sizeof path, "%s/measures/%zu", gpath, i);
        snprintf(src, sizeof src, "type %s", type ? type : "");
        r = type ? row(src) : NULL;
        if (!r) {
            if (vl_ingest_reject(w->emit, w->ctx, NULL, path,
                                 "Withings measure type %s is not mapped",
                                 type ? type : "(none)") < 0)
                return -1;
            continue;
        }
        if (scale_text(text_at(m, "value"), text_at(m, "unit"), value) < 0) {
            if (vl_ingest_reject(w->emit, w->ctx, r->measure, path,
                                 "value and unit must be integers (value x 10^unit)") < 0)
                return -1;
            continue;
        }
        if (!strcmp(r->measure, "blood-pressure")) {
            bp = 1;
            snprintf(!strcmp(type, "10") ? sys : dia, 40, "%s", value);
            continue;
        }
        snprintf(id, sizeof id, "%s/%s", grpid ? grpid : "", type);
        if (emit_value(w, src, path, value, when, NULL, g, id) < 0)
            return -1;
    }
    if (bp && group_bp(w, g, gpath, when, sys[0] ? sys : NULL, dia[0] ? dia : NULL, grpid) < 0)
        return -1;
    return 0;
}

static int on_groups(wi_t *w, const json_t *body)
{
    const json_t *gs = json_object_get(body, "measuregrps"), *g;
    size_t i;
    json_array_foreach (gs, i, g) {
        char path[64], when[40];
        int64_t cat = 0, attrib = 0;
        int kind, has_cat;
        snprintf(path, sizeof path, "/body/measuregrps/%zu", i);
        if (!json_is_object(g) || !json_is_array(json_object_get(g, "measures"))) {
            if (vl_ingest_reject(w->emit, w->ctx, NULL, path, "not a measure group") < 0)
                return -1;
            continue;
        }
        has_cat = int_at(g, "category", &cat) == 0;
        if (has_cat && cat == 2)
            continue; /* a goal (note 2) */
        kind = int_at(g, "attrib", &attrib) < 0 ? -1 : attrib_kind(attrib);
        if (kind == 0)
            continue; /* ambiguous attribution (note 2) */
        if (!has_cat || cat != 1) {
            if (vl_ingest_reject(w->emit, w->ctx, NULL, path,
                                 "category is not 1 (a measure) or 2 (a goal)") < 0)
                return -1;
            continue;
        }
        if (kind < 0 || epoch_plus(text_at(g, "date"), 0, when) < 0) {
            if (vl_ingest_reject(w->emit, w->ctx, NULL, path,
                                 kind < 0 ? "unknown attrib (who the measure belongs to)"
                                          : "date is not an epoch time (seconds)") < 0)
                return -1;
            continue;
        }
        if (group_measures(w, g, path, when) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Activity, intraday activity (notes 3 and 4)
 * ---------------------------------------------------------------------- */

static int on_activities(wi_t *w, const json_t *body)
{
    static const char *const fields[2][2] = {{"steps", "activities/steps"},
                                             {"calories", "activities/calories"}};
    const json_t *as = json_object_get(body, "activities"), *a;
    size_t i;
    json_array_foreach (as, i, a) {
        char path[64], local[32], next[16], start[40], end[40];
        const char *date = str_at(a, "date"), *tz = str_at(a, "timezone");
        const char *why = NULL;
        if (!tz)
            tz = w->body_tz ? w->body_tz : w->o->tz;
        snprintf(path, sizeof path, "/body/activities/%zu", i);
        if (!date || next_day(date, next) < 0)
            why = "date is not a day (YYYY-MM-DD)";
        else if (!tz)
            why = "the activity has no timezone: a tz parameter (or the patient's zone) is needed";
        else {
            snprintf(local, sizeof local, "%sT00:00:00", date);
            if (vl_ingest_local_time(local, tz, start) < 0)
                why = "the day cannot be resolved in its timezone";
            snprintf(local, sizeof local, "%sT00:00:00", next);
            if (!why && vl_ingest_local_time(local, tz, end) < 0)
                why = "the day cannot be resolved in its timezone";
        }
        for (size_t k = 0; k < 2; k++) {
            char vpath[80];
            const vl_ingest_mapping_t *m = row(fields[k][1]);
            int rc;
            if (!json_object_get(a, fields[k][0]))
                continue;
            snprintf(vpath, sizeof vpath, "%s/%s", path, fields[k][0]);
            rc = why ? vl_ingest_reject(w->emit, w->ctx, m->measure, vpath, "%s", why)
                     : emit_value(w, fields[k][1], vpath, text_at(a, fields[k][0]), start, end, a,
                                  NULL);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

static int on_intraday(wi_t *w, const json_t *series)
{
    static const char *const spans[2][2] = {{"steps", "series/steps"},
                                            {"calories", "series/calories"}};
    const char *epoch;
    const json_t *e;
    json_object_foreach ((json_t *)series, epoch, e) {
        char path[64], start[40], end[40];
        int64_t dur = 0;
        int has_dur = int_at(e, "duration", &dur) == 0;
        snprintf(path, sizeof path, "/body/series/%s", epoch);
        if (!json_is_object(e))
            continue;
        for (size_t k = 0; k < 3; k++) {
            const char *src = k < 2 ? spans[k][1] : "series/heart_rate";
            const char *field = k < 2 ? spans[k][0] : "heart_rate";
            const vl_ingest_mapping_t *m = row(src);
            char vpath[96];
            int rc;
            if (!json_object_get(e, field))
                continue;
            snprintf(vpath, sizeof vpath, "%s/%s", path, field);
            if (epoch_plus(epoch, 0, start) < 0)
                rc = vl_ingest_reject(w->emit, w->ctx, m->measure, vpath,
                                      "the key is not an epoch time (seconds)");
            else if (k < 2 && (!has_dur || epoch_plus(epoch, dur, end) < 0))
                rc = vl_ingest_reject(w->emit, w->ctx, m->measure, vpath,
                                      "no duration (seconds) for the interval");
            else
                rc = emit_value(w, src, vpath, text_at(e, field), start, k < 2 ? end : NULL, e,
                                NULL);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Sleep (note 5)
 * ---------------------------------------------------------------------- */

static int sleep_summary(wi_t *w, const json_t *s, const char *path)
{
    static const char *const stages[3] = {"deepsleepduration", "lightsleepduration",
                                          "remsleepduration"};
    const json_t *data = json_object_get(s, "data");
    const vl_ingest_mapping_t *m = row("sleep/deep+light+rem");
    int64_t total = 0, v;
    int found = 0;
    char start[40], end[40], text[24];
    for (size_t k = 0; k < 3; k++)
        if (json_object_get(data, stages[k])) {
            if (int_at(data, stages[k], &v) < 0 || v < 0)
                return vl_ingest_reject(w->emit, w->ctx, m->measure, path,
                                        "%s is not a number of seconds", stages[k]);
            total += v;
            found = 1;
        }
    if (!found && int_at(data, "total_sleep_time", &total) == 0 && total >= 0)
        found = 1;
    if (!found)
        return vl_ingest_reject(w->emit, w->ctx, m->measure, path,
                                "no sleep durations (deep, light, rem sleep)");
    if (epoch_plus(text_at(s, "startdate"), 0, start) < 0 ||
        epoch_plus(text_at(s, "enddate"), 0, end) < 0)
        return vl_ingest_reject(w->emit, w->ctx, m->measure, path,
                                "startdate and enddate must be epoch times (seconds)");
    snprintf(text, sizeof text, "%lld", (long long)total);
    return emit_value(w, "sleep/deep+light+rem", path, text, start, end, s, text_at(s, "id"));
}

/* hr / rr of Sleep v2 Get: {epoch: value} */
static int sleep_series(wi_t *w, const json_t *s, const char *path)
{
    static const char *const fields[2] = {"hr", "rr"};
    for (size_t k = 0; k < 2; k++) {
        const json_t *obj = json_object_get(s, fields[k]), *v;
        const char *epoch;
        char src[16];
        snprintf(src, sizeof src, "sleep/%s", fields[k]);
        if (!json_is_object(obj))
            continue;
        json_object_foreach ((json_t *)obj, epoch, v) {
            char vpath[160], when[40];
            int rc;
            snprintf(vpath, sizeof vpath, "%s/%s/%s", path, fields[k], epoch);
            if (epoch_plus(epoch, 0, when) < 0)
                rc = vl_ingest_reject(w->emit, w->ctx, row(src)->measure, vpath,
                                      "the key is not an epoch time (seconds)");
            else
                rc = emit_value(w, src, vpath, vl_ingest_number_text(v), when, NULL, s, NULL);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

static int on_sleep(wi_t *w, const json_t *series)
{
    const json_t *s;
    size_t i;
    json_array_foreach (series, i, s) {
        char path[64];
        int rc = 0;
        snprintf(path, sizeof path, "/body/series/%zu", i);
        if (!json_is_object(s))
            rc = vl_ingest_reject(w->emit, w->ctx, NULL, path, "not an object");
        else if (json_is_object(json_object_get(s, "data")))
            rc = sleep_summary(w, s, path);
        else
            rc = sleep_series(w, s, path); /* state segments alone: skipped */
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Documents (note 1)
 * ---------------------------------------------------------------------- */

int vl_ingest_withings(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                       void *ctx, vl_error_t *err)
{
    static const vl_ingest_options_t none = {NULL};
    const json_t *body = json_object_get(doc, "body"), *status = json_object_get(doc, "status");
    const json_t *groups, *acts, *series;
    wi_t w = {emit, ctx, o ? o : &none, NULL};
    int64_t st = 0;
    if (status && (int_at(doc, "status", &st) < 0 || st != 0))
        return vl_error_set(err, 400, "processing", NULL, "withings: status %s%s%s",
                            vl_ingest_number_text(status) ? vl_ingest_number_text(status) : "?",
                            str_at(doc, "error") ? ": " : "",
                            str_at(doc, "error") ? str_at(doc, "error") : "");
    if (!json_is_object(body))
        return vl_error_set(err, 400, "structure", NULL,
                            "withings: not a Withings API response ({\"status\": 0, \"body\": "
                            "{...}})");
    groups = json_object_get(body, "measuregrps");
    acts = json_object_get(body, "activities");
    series = json_object_get(body, "series");
    if ((groups && !json_is_array(groups)) || (acts && !json_is_array(acts)) ||
        (series && !json_is_array(series) && !json_is_object(series)) ||
        (!groups && !acts && !series))
        return vl_error_set(err, 400, "structure", NULL,
                            "withings: the body has none of measuregrps[], activities[], series");
    w.body_tz = str_at(body, "timezone");
    if (groups && on_groups(&w, body) < 0)
        return -1;
    if (acts && on_activities(&w, body) < 0)
        return -1;
    if (json_is_object(series) && on_intraday(&w, series) < 0)
        return -1;
    if (json_is_array(series) && on_sleep(&w, series) < 0)
        return -1;
    return 0;
}
