/*
 * vitalog — ingest/healthconnect.c: Android Health Connect records, in the
 * JSON form of the Jetpack record classes (androidx.health.connect.client
 * .records), normalized into readings.
 *
 * DESIGN NOTES
 *
 * 1. Sources. Health Connect has no wire format of its own: an app reads
 *    records with the Jetpack client and sends them on. vitalog defines the
 *    JSON form (docs/ingest.md, "healthconnect") as the record classes'
 *    properties with their Jetpack names, from the reference pages at
 *    developer.android.com/reference/kotlin/androidx/health/connect/client/
 *    records/ (HeartRateRecord and HeartRateRecord.Sample, StepsRecord,
 *    BloodPressureRecord, BloodGlucoseRecord, OxygenSaturationRecord,
 *    BodyTemperatureRecord and BodyTemperatureMeasurementLocation,
 *    WeightRecord, HeightRecord, RespiratoryRateRecord,
 *    RestingHeartRateRecord, SleepSessionRecord and its Stage), metadata/
 *    (Metadata, DataOrigin, Device) and units/ (Mass, Length, Temperature,
 *    Pressure, BloodGlucose, Percentage). The int constants named in the
 *    notes (body position, locations, specimen source, meal, stages, device
 *    type) are the values those pages list.
 *
 * 2. A document is one record object, an array of records, or an object
 *    {"records": [...]} (the shape of a ReadRecordsResponse). A record
 *    names its class in "recordType" ("HeartRate"; the class name
 *    "HeartRateRecord" is accepted too). A document that is none of the
 *    three is not of the format (-1, 400); inside a list, an element that
 *    is not a record object or names an unknown recordType is a rejection
 *    and the walk goes on. An empty list gives nothing.
 *
 * 3. Values of a Jetpack unit class are objects with exactly one property,
 *    named like the class's getter for the unit the value is in:
 *    {"inKilograms": 70.5}, {"inMillimetersOfMercury": 120}. Percentage is
 *    {"value": 98.0} (its one property). Plain Long/Double properties
 *    (beatsPerMinute, count, rate) are bare JSON numbers. The table
 *    vl_ingest_healthconnect_map drives this: the rows of a source
 *    "<recordType>.<field>" list the unit properties accepted (source_unit;
 *    "" for a bare number) and their UCUM code. Two unit properties, an
 *    unknown one, or a bare number where an object is due are rejections.
 *    No conversion: the value and unit are given as sent.
 *
 * 4. Time. Instants are ISO 8601 with a zone, as java.time.Instant prints
 *    them ("2024-03-01T13:00:00Z", a fraction of up to 9 digits allowed);
 *    an instant without a zone is rejected (never read as UTC silently).
 *    The record's ZoneOffset ("+01:00", "Z"; FHIR's range -14:00..+14:00,
 *    no seconds) is the user's local offset at that instant: the reading's
 *    time is the same instant written in that offset (13:00Z with "+01:00"
 *    is "2024-03-01T14:00:00+01:00", calendar arithmetic exact, fraction
 *    kept as sent). With no offset (absent or null) the instant stays as
 *    sent. Instant records (time + zoneOffset) give `start` only; interval
 *    records (startTime/startZoneOffset, endTime/endZoneOffset) give start
 *    and end, and endTime must be after startTime (as Jetpack requires).
 *
 * 5. HeartRate is a series: each element of `samples` ({time,
 *    beatsPerMinute}) is one heart-rate reading at its own instant, written
 *    in the record's startZoneOffset (an offset change inside one record
 *    cannot be placed; the instant is exact either way). Its record_id is
 *    metadata.id + "#" + the sample's time as sent: stable when an app
 *    rewrites the record with more samples (an index would shift). Two
 *    samples at the same instant in one record are the same reading. A
 *    record with an empty samples array gives nothing.
 *
 * 6. SleepSession gives one sleep-duration reading over the session
 *    [startTime, endTime]: the sum of its sleeping stages (2 sleeping, 4
 *    light, 5 deep, 6 REM; 0 unknown, 1 awake, 3 out of bed and 7 awake in
 *    bed are not counted). With no stages it is the session's own length.
 *    Stages must be known codes, end after they start, lie within the
 *    session and not overlap, otherwise the session is rejected (the
 *    SleepSessionRecord page: stages "should fall within the sleep session
 *    interval" and "shouldn't overlap"). The sum
 *    is exact decimal text: in `min` when the minutes are a finite decimal
 *    (the sum in ns divisible by 3: always for whole minutes, and for a
 *    whole number of seconds divisible by 3, 90 s = 1.5 min), else in `s`
 *    (61 s stays 61 s, never 1.0166... min).
 *
 * 7. BloodGlucose: level in mg/dL -> blood-glucose, mmol/L ->
 *    blood-glucose-molar, except specimenSource 1 (interstitial fluid), a
 *    CGM's reading, which is the CGM IG's sensor reading (cgm-glucose,
 *    cgm-glucose-molar). The other specimens (capillary, plasma, serum,
 *    whole blood, tears, unknown) keep the glucometer code. The specimen
 *    (when not 0, unknown), relationToMeal and mealType are named in
 *    `note`. BloodPressure's bodyPosition and measurementLocation and
 *    BodyTemperature's measurementLocation go to `note` likewise ("body
 *    position sitting down; measured at left upper arm"). These int
 *    fields must be integers when present; an unlisted code is noted by
 *    number.
 *
 * 8. Identity and origin: record_id is metadata.id, else
 *    metadata.clientRecordId, else "" (HeartRate samples: see 5); an id
 *    that does not fit is a rejection (a cut id could merge two readings).
 *    source_name is metadata.dataOrigin.packageName. The device is
 *    metadata.device when it names a manufacturer or a model: manufacturer,
 *    model, and a name "<manufacturer> <model> (<type>)" with the Device
 *    type constant's word (watch, phone, scale, ...). lastModifiedTime,
 *    clientRecordVersion and recordingMethod are not used (a changed record
 *    keeps its id, so it becomes a new version of the same reading).
 *
 * 9. Paths are JSON pointers into the document: "/records/3",
 *    "/records/3/samples/7"; a bare array's elements are "/3"; a document
 *    that is one record is "/".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

#define GLUCOSE_ISF "BloodGlucose.level (specimenSource 1)"

const vl_ingest_mapping_t vl_ingest_healthconnect_map[] = {
    {"HeartRate.samples.beatsPerMinute", "heart-rate", "", "/min", "instant"},
    {"RestingHeartRate.beatsPerMinute", "resting-heart-rate", "", "/min", "instant"},
    {"RespiratoryRate.rate", "respiratory-rate", "", "/min", "instant"},
    {"Steps.count", "step-count", "", "{steps}", "period"},
    {"BloodPressure.systolic", "blood-pressure", "inMillimetersOfMercury", "mm[Hg]", "instant"},
    {"BloodPressure.diastolic", "blood-pressure", "inMillimetersOfMercury", "mm[Hg]", "instant"},
    {"BloodGlucose.level", "blood-glucose", "inMilligramsPerDeciliter", "mg/dL", "instant"},
    {"BloodGlucose.level", "blood-glucose-molar", "inMillimolesPerLiter", "mmol/L", "instant"},
    {GLUCOSE_ISF, "cgm-glucose", "inMilligramsPerDeciliter", "mg/dL", "instant"},
    {GLUCOSE_ISF, "cgm-glucose-molar", "inMillimolesPerLiter", "mmol/L", "instant"},
    {"OxygenSaturation.percentage", "oxygen-saturation", "value", "%", "instant"},
    {"BodyTemperature.temperature", "body-temperature", "inCelsius", "Cel", "instant"},
    {"BodyTemperature.temperature", "body-temperature", "inFahrenheit", "[degF]", "instant"},
    {"Weight.weight", "body-weight", "inKilograms", "kg", "instant"},
    {"Weight.weight", "body-weight", "inGrams", "g", "instant"},
    {"Weight.weight", "body-weight", "inPounds", "[lb_av]", "instant"},
    {"Weight.weight", "body-weight", "inOunces", "[oz_av]", "instant"},
    {"Height.height", "body-height", "inMeters", "m", "instant"},
    {"Height.height", "body-height", "inInches", "[in_i]", "instant"},
    {"Height.height", "body-height", "inFeet", "[ft_i]", "instant"},
    /* computed from the stages' instants (note 6): source_unit is the unit
     * the sum is written in */
    {"SleepSession.stages", "sleep-duration", "min", "min", "period"},
    {"SleepSession.stages", "sleep-duration", "s", "s", "period"},
    {NULL, NULL, NULL, NULL, NULL},
};

#define WHY 200

typedef struct hc_walk {
    vl_ingest_emit_fn emit;
    void *ctx;
} hc_walk_t;

/* An instant as read: UTC seconds and nanoseconds, and its fraction text. */
typedef struct hc_instant {
    int64_t secs;
    int32_t nanos;
    char frac[12]; /* ".123" as sent, "" none */
} hc_instant_t;

/* ------------------------------------------------------------------------
 * Small readers
 * ---------------------------------------------------------------------- */

static const char *hc_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

static int hc_absent(const json_t *v)
{
    return !v || json_is_null(v);
}

/* An int constant field: absent or null is 0; -1 unless a small
 * non-negative integer. */
static int hc_code(const json_t *rec, const char *key, int *out)
{
    const json_t *v = json_object_get(rec, key);
    const char *s;
    int n = 0;
    *out = 0;
    if (hc_absent(v))
        return 0;
    s = vl_json_number_text(v);
    if (!s || !*s || strlen(s) > 4)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        n = n * 10 + (*s - '0');
    }
    *out = n;
    return 0;
}

/* ------------------------------------------------------------------------
 * Time (DESIGN NOTES 4)
 * ---------------------------------------------------------------------- */

static int hc_is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* A zone offset "Z" or "+hh:mm" within FHIR's range, in seconds. */
static int hc_offset(const char *s, int *secs)
{
    int h, m;
    if (!strcmp(s, "Z")) {
        *secs = 0;
        return 0;
    }
    if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' || !hc_is_digits(s + 1, 2) ||
        !hc_is_digits(s + 4, 2))
        return -1;
    h = (s[1] - '0') * 10 + (s[2] - '0');
    m = (s[4] - '0') * 10 + (s[5] - '0');
    if (m > 59 || h > 14 || (h == 14 && m != 0))
        return -1;
    *secs = (s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return 0;
}

/* Microseconds to whole seconds, rounded down. */
static int64_t hc_floor_secs(int64_t us)
{
    return us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
}

/* "YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|+hh:mm)": the shape is checked here, the
 * calendar by vl_time_parse_range(). */
static int hc_parse_instant(const char *s, hc_instant_t *t)
{
    size_t n = strlen(s), f = 19;
    int64_t lo, hi;
    int prec, off;
    if (n < 20 || n > 39 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    if (s[19] == '.') {
        for (f = 20; f < n && s[f] >= '0' && s[f] <= '9'; f++)
            ;
        if (f == 20 || f > 29)
            return -1;
    }
    if (hc_offset(s + f, &off) < 0 || vl_time_parse_range(s, &lo, &hi, &prec) < 0 || prec != 4)
        return -1;
    memset(t, 0, sizeof *t);
    memcpy(t->frac, s + 19, f - 19);
    t->secs = hc_floor_secs(lo);
    for (size_t i = 20, scale = 100000000; i < f && i < 29; i++, scale /= 10)
        t->nanos += (int32_t)((s[i] - '0') * (int)scale);
    return 0;
}

/* Writes instant `t` in zone `zone` ("Z" or "+hh:mm") into out. */
static int hc_render(const hc_instant_t *t, const char *zone, char out[40])
{
    char base[32], check[48];
    int off;
    int64_t lo, hi;
    if (hc_offset(zone, &off) < 0)
        return -1;
    vl_time_format((t->secs + off) * 1000000, base); /* "YYYY-MM-DDThh:mm:ss.mmmZ" */
    base[19] = '\0';
    if (snprintf(out, 40, "%s%s%s", base, t->frac, zone) >= 40)
        return -1;
    /* the round trip proves that no year was clamped */
    snprintf(check, sizeof check, "%s", out);
    if (vl_time_parse_range(check, &lo, &hi, NULL) < 0 || hc_floor_secs(lo) != t->secs)
        return -1;
    return 0;
}

/* Reads an instant field and its offset field into `out` (note 4). */
static int hc_time(const json_t *time, const json_t *zone, const char *tname, const char *zname,
                   hc_instant_t *t, char out[40], char why[WHY])
{
    const char *s = vl_json_is_string(time) ? json_string_value(time) : NULL;
    if (!s) {
        snprintf(why, WHY, "%s is missing (an ISO 8601 instant, \"2024-03-01T13:00:00Z\")", tname);
        return -1;
    }
    if (hc_parse_instant(s, t) < 0) {
        snprintf(why, WHY,
                 "%s \"%.40s\" is not an ISO 8601 instant with a zone (\"2024-03-01T13:00:00Z\")",
                 tname, s);
        return -1;
    }
    if (hc_absent(zone)) {
        snprintf(out, 40, "%s", s);
        return 0;
    }
    if (!vl_json_is_string(zone) || hc_render(t, json_string_value(zone), out) < 0) {
        snprintf(why, WHY, "%s is not a zone offset (\"+01:00\", \"Z\")", zname);
        return -1;
    }
    return 0;
}

/* b - a in nanoseconds (the caller bounds it). */
static int64_t hc_span_ns(const hc_instant_t *a, const hc_instant_t *b)
{
    return (b->secs - a->secs) * 1000000000 + (b->nanos - a->nanos);
}

static int hc_before(const hc_instant_t *a, const hc_instant_t *b)
{
    return a->secs < b->secs || (a->secs == b->secs && a->nanos < b->nanos);
}

/* The record's time: `time` (instant) or startTime/endTime (interval). */
static int hc_when(const json_t *rec, int interval, vl_ingest_reading_t *r, hc_instant_t *t0,
                   hc_instant_t *t1, char why[WHY])
{
    if (!interval)
        return hc_time(json_object_get(rec, "time"), json_object_get(rec, "zoneOffset"), "time",
                       "zoneOffset", t0, r->start, why);
    if (hc_time(json_object_get(rec, "startTime"), json_object_get(rec, "startZoneOffset"),
                "startTime", "startZoneOffset", t0, r->start, why) < 0 ||
        hc_time(json_object_get(rec, "endTime"), json_object_get(rec, "endZoneOffset"), "endTime",
                "endZoneOffset", t1, r->end, why) < 0)
        return -1;
    if (!hc_before(t0, t1)) {
        snprintf(why, WHY, "endTime is not after startTime");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Values (DESIGN NOTES 3)
 * ---------------------------------------------------------------------- */

/* The unit properties the table accepts for `source`, for a message. */
static void hc_units_list(const char *source, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (const vl_ingest_mapping_t *m = vl_ingest_healthconnect_map; m->source; m++)
        if (!strcmp(m->source, source) && n < len)
            n += (size_t)snprintf(out + n, len - n, "%s%s", n ? ", " : "", m->source_unit);
}

/* Reads value `v` of `source` ("Weight.weight"): its number text and the
 * table row of its unit. */
static int hc_value(const json_t *v, const char *source, const char *field,
                    const vl_ingest_mapping_t **row, const char **num, char why[WHY])
{
    const vl_ingest_mapping_t *first =
        vl_ingest_map_find(vl_ingest_healthconnect_map, source, NULL);
    const char *prop;
    char units[120];
    if (!first) {
        snprintf(why, WHY, "%s: no mapping", source);
        return -1;
    }
    if (!first->source_unit[0]) { /* a bare number */
        *row = first;
        *num = vl_ingest_number_text(v);
        if (!*num) {
            snprintf(why, WHY, "%s is missing or not a number", field);
            return -1;
        }
        return 0;
    }
    hc_units_list(source, units, sizeof units);
    if (!json_is_object(v) || json_object_size(v) != 1) {
        snprintf(why, WHY, "%s must be an object with one unit property (one of %s)", field, units);
        return -1;
    }
    prop = json_object_iter_key(json_object_iter((json_t *)v));
    *row = vl_ingest_map_find(vl_ingest_healthconnect_map, source, prop);
    if (!*row) {
        snprintf(why, WHY, "%s: unknown unit property \"%.32s\" (one of %s)", field, prop, units);
        return -1;
    }
    *num = vl_ingest_number_text(json_object_get(v, prop));
    if (!*num) {
        snprintf(why, WHY, "%s.%s is not a number", field, prop);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Metadata (DESIGN NOTES 8) and notes (DESIGN NOTES 7)
 * ---------------------------------------------------------------------- */

static const char *const device_types[] = {
    NULL,
    "watch",
    "phone",
    "scale",
    "ring",
    "head-mounted device",
    "fitness band",
    "chest strap",
    "smart display",
    "consumer medical device",
};

static void hc_device(vl_ingest_reading_t *r, const json_t *dev)
{
    const char *man = hc_str(dev, "manufacturer"), *model = hc_str(dev, "model");
    int type;
    if (!man && !model)
        return;
    snprintf(r->device.manufacturer, sizeof r->device.manufacturer, "%s", man ? man : "");
    snprintf(r->device.model, sizeof r->device.model, "%s", model ? model : "");
    if (hc_code(dev, "type", &type) < 0 ||
        type >= (int)(sizeof device_types / sizeof device_types[0]))
        type = 0;
    snprintf(r->device.name, sizeof r->device.name, "%s%s%s%s%s%s", man ? man : "",
             man && model ? " " : "", model ? model : "", type ? " (" : "",
             type ? device_types[type] : "", type ? ")" : "");
}

/* Fills record_id (with `suffix` appended, "" none), the device and the
 * source. -1 when the id does not fit. */
static int hc_metadata(vl_ingest_reading_t *r, const json_t *rec, const char *suffix, char why[WHY])
{
    const json_t *md = json_object_get(rec, "metadata");
    const char *id = hc_str(md, "id"), *pkg;
    if (!id || !*id)
        id = hc_str(md, "clientRecordId");
    if (id && *id &&
        snprintf(r->record_id, sizeof r->record_id, "%s%s", id, suffix) >=
            (int)sizeof r->record_id) {
        snprintf(why, WHY, "metadata.id is too long (at most %d characters)",
                 (int)(sizeof r->record_id - 1 - strlen(suffix)));
        return -1;
    }
    pkg = hc_str(json_object_get(md, "dataOrigin"), "packageName");
    if (pkg)
        snprintf(r->source_name, sizeof r->source_name, "%s", pkg);
    hc_device(r, json_object_get(md, "device"));
    return 0;
}

/* An int constant field noted as "<label> <name>". */
typedef struct hc_code_field {
    const char *key, *label;
    const char *const *names; /* names[code], NULL for 0 (unknown) */
    int n;
} hc_code_field_t;

static const char *const bp_positions[] = {NULL, "standing up", "sitting down", "lying down",
                                           "reclining"};
static const char *const bp_locations[] = {NULL, "left wrist", "right wrist", "left upper arm",
                                           "right upper arm"};
static const char *const temp_locations[] = {
    NULL,  "armpit", "finger", "forehead", "mouth", "rectum", "temporal artery",
    "toe", "ear",    "wrist",  "vagina",
};
static const char *const specimens[] = {
    NULL, "interstitial fluid", "capillary blood", "plasma", "serum", "tears", "whole blood"};
static const char *const meal_relations[] = {NULL, "general", "fasting", "before meal",
                                             "after meal"};
static const char *const meals[] = {NULL, "breakfast", "lunch", "dinner", "snack"};

static const hc_code_field_t bp_codes[] = {
    {"bodyPosition", "body position", bp_positions, 5},
    {"measurementLocation", "measured at", bp_locations, 5},
    {NULL, NULL, NULL, 0},
};
static const hc_code_field_t temp_codes[] = {
    {"measurementLocation", "measured at", temp_locations, 11},
    {NULL, NULL, NULL, 0},
};
static const hc_code_field_t glucose_codes[] = {
    {"specimenSource", "specimen", specimens, 7},
    {"relationToMeal", "relation to meal", meal_relations, 5},
    {"mealType", "meal", meals, 5},
    {NULL, NULL, NULL, 0},
};

static int hc_notes(vl_ingest_reading_t *r, const json_t *rec, const hc_code_field_t *fields,
                    char why[WHY])
{
    size_t n = 0, cap = sizeof r->note;
    for (const hc_code_field_t *f = fields; f && f->key; f++) {
        int code;
        if (hc_code(rec, f->key, &code) < 0) {
            snprintf(why, WHY, "%s must be an integer constant", f->key);
            return -1;
        }
        if (!code || n >= cap)
            continue;
        if (code < f->n)
            n += (size_t)snprintf(r->note + n, cap - n, "%s%s %s", n ? "; " : "", f->label,
                                  f->names[code]);
        else
            n += (size_t)snprintf(r->note + n, cap - n, "%s%s %d", n ? "; " : "", f->key, code);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Record kinds
 * ---------------------------------------------------------------------- */

typedef struct hc_kind hc_kind_t;
typedef int (*hc_fn)(const hc_walk_t *w, const hc_kind_t *k, const json_t *rec, const char *path);

struct hc_kind {
    const char *type;  /* recordType */
    const char *field; /* the value's field: the table's source is "<type>.<field>" */
    int interval;      /* startTime/endTime rather than time */
    hc_fn fn;
    const hc_code_field_t *codes; /* int fields noted, or NULL */
};

/* The measure a rejection of `source` names (its first row's). */
static const char *hc_measure_of(const char *source)
{
    const vl_ingest_mapping_t *m = vl_ingest_map_find(vl_ingest_healthconnect_map, source, NULL);
    return m ? m->measure : NULL;
}

static int hc_reject(const hc_walk_t *w, const char *measure, const char *path, const char *why)
{
    return vl_ingest_reject(w->emit, w->ctx, measure, path, "%s", why);
}

/* One value of `source` at the record's time: every instant/interval kind
 * but HeartRate, BloodPressure and SleepSession. */
static int hc_single(const hc_walk_t *w, const hc_kind_t *k, const json_t *rec, const char *path,
                     const char *source)
{
    vl_ingest_reading_t r;
    const vl_ingest_mapping_t *row;
    const char *num;
    hc_instant_t t0, t1;
    char why[WHY];
    vl_ingest_reading_init(&r, hc_measure_of(source), path);
    if (hc_when(rec, k->interval, &r, &t0, &t1, why) < 0 ||
        hc_value(json_object_get(rec, k->field), source, k->field, &row, &num, why) < 0 ||
        hc_notes(&r, rec, k->codes, why) < 0 || hc_metadata(&r, rec, "", why) < 0)
        return hc_reject(w, hc_measure_of(source), path, why);
    r.measure = vl_ingest_measure(row->measure);
    if (vl_ingest_set_value(&r, 0, num, row->ucum, row->source_unit) < 0)
        return vl_ingest_reject(w->emit, w->ctx, row->measure, path, "%s %s is not a decimal",
                                k->field, num);
    return w->emit(w->ctx, &r, NULL);
}

static int hc_simple(const hc_walk_t *w, const hc_kind_t *k, const json_t *rec, const char *path)
{
    char source[64];
    snprintf(source, sizeof source, "%s.%s", k->type, k->field);
    return hc_single(w, k, rec, path, source);
}

static int hc_blood_glucose(const hc_walk_t *w, const hc_kind_t *k, const json_t *rec,
                            const char *path)
{
    int specimen = 0;
    (void)hc_code(rec, "specimenSource", &specimen); /* a bad one is rejected by hc_notes */
    return hc_single(w, k, rec, path, specimen == 1 ? GLUCOSE_ISF : "BloodGlucose.level");
}

static int hc_blood_pressure(const hc_walk_t *w, const hc_kind_t *k, const json_t *rec,
                             const char *path)
{
    static const char *const fields[2] = {"systolic", "diastolic"};
    vl_ingest_reading_t r;
    hc_instant_t t0, t1;
    char why[WHY];
    vl_ingest_reading_init(&r, "blood-pressure", path);
    if (hc_when(rec, k->interval, &r, &t0, &t1, why) < 0)
        return hc_reject(w, "blood-pressure", path, why);
    for (size_t i = 0; i < 2; i++) {
        const vl_ingest_mapping_t *row;
        const char *num;
        char source[40];
        snprintf(source, sizeof source, "BloodPressure.%s", fields[i]);
        if (hc_value(json_object_get(rec, fields[i]), source, fields[i], &row, &num, why) < 0)
            return hc_reject(w, "blood-pressure", path, why);
        if (vl_ingest_set_value(&r, i, num, row->ucum, row->source_unit) < 0)
            return vl_ingest_reject(w->emit, w->ctx, "blood-pressure", path,
                                    "%s %s is not a decimal", fields[i], num);
    }
    if (hc_notes(&r, rec, k->codes, why) < 0 || hc_metadata(&r, rec, "", why) < 0)
        return hc_reject(w, "blood-pressure", path, why);
    return w->emit(w->ctx, &r, NULL);
}

/* One sample of a HeartRate record (DESIGN NOTES 5). */
static int hc_sample(const hc_walk_t *w, const json_t *rec, const json_t *s, const json_t *zone,
                     const char *path)
{
    static const char source[] = "HeartRate.samples.beatsPerMinute";
    vl_ingest_reading_t r;
    const vl_ingest_mapping_t *row;
    const char *num;
    hc_instant_t t;
    char why[WHY], suffix[48];
    vl_ingest_reading_init(&r, "heart-rate", path);
    if (!json_is_object(s))
        return hc_reject(w, "heart-rate", path, "a sample is an object {time, beatsPerMinute}");
    if (hc_time(json_object_get(s, "time"), zone, "time", "startZoneOffset", &t, r.start, why) <
            0 ||
        hc_value(json_object_get(s, "beatsPerMinute"), source, "beatsPerMinute", &row, &num, why) <
            0)
        return hc_reject(w, "heart-rate", path, why);
    snprintf(suffix, sizeof suffix, "#%s", hc_str(s, "time"));
    if (hc_metadata(&r, rec, suffix, why) < 0)
        return hc_reject(w, "heart-rate", path, why);
    if (vl_ingest_set_value(&r, 0, num, row->ucum, row->source_unit) < 0)
        return vl_ingest_reject(w->emit, w->ctx, "heart-rate", path,
                                "beatsPerMinute %s is not a decimal", num);
    return w->emit(w->ctx, &r, NULL);
}

static int hc_heart_rate(const hc_walk_t *w, const hc_kind_t *k, const json_t *rec,
                         const char *path)
{
    const json_t *samples = json_object_get(rec, "samples"), *s;
    const char *base = strcmp(path, "/") ? path : ""; /* a document of one record */
    size_t i;
    (void)k;
    if (!json_is_array(samples))
        return hc_reject(w, "heart-rate", path, "HeartRate without a samples array");
    json_array_foreach (samples, i, s) {
        char spath[128];
        snprintf(spath, sizeof spath, "%s/samples/%zu", base, i);
        if (hc_sample(w, rec, s, json_object_get(rec, "startZoneOffset"), spath) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * SleepSession (DESIGN NOTES 6)
 * ---------------------------------------------------------------------- */

typedef struct hc_stage {
    hc_instant_t start, end;
    int sleeping;
} hc_stage_t;

static int hc_stage_cmp(const void *a, const void *b)
{
    const hc_stage_t *x = a, *y = b;
    return hc_before(&x->start, &y->start) ? -1 : hc_before(&y->start, &x->start) ? 1 : 0;
}

/* Stage codes 0..7: which are sleep. */
static const int stage_sleeping[8] = {0, 0, 1, 0, 1, 1, 1, 0};

static int hc_read_stage(const json_t *st, size_t j, const hc_instant_t *t0, const hc_instant_t *t1,
                         hc_stage_t *out, char why[WHY])
{
    const char *a = hc_str(st, "startTime"), *b = hc_str(st, "endTime");
    int code;
    if (!a || !b || hc_parse_instant(a, &out->start) < 0 || hc_parse_instant(b, &out->end) < 0) {
        snprintf(why, WHY, "stage %zu: startTime and endTime must be ISO 8601 instants", j);
        return -1;
    }
    if (hc_code(st, "stage", &code) < 0 || code > 7) {
        snprintf(why, WHY, "stage %zu: stage must be a SleepSessionRecord stage type (0 to 7)", j);
        return -1;
    }
    if (!hc_before(&out->start, &out->end)) {
        snprintf(why, WHY, "stage %zu: endTime is not after startTime", j);
        return -1;
    }
    if (hc_before(&out->start, t0) || hc_before(t1, &out->end)) {
        snprintf(why, WHY, "stage %zu lies outside the session", j);
        return -1;
    }
    out->sleeping = stage_sleeping[code];
    return 0;
}

/* The sleeping time of the stages in ns, or -1 (why set). */
static int64_t hc_sleep_ns(const json_t *stages, const hc_instant_t *t0, const hc_instant_t *t1,
                           char why[WHY])
{
    size_t n = json_array_size(stages), j;
    hc_stage_t *v = calloc(n, sizeof *v);
    const json_t *st;
    int64_t total = 0;
    if (!v) {
        snprintf(why, WHY, "out of memory");
        return -1;
    }
    json_array_foreach (stages, j, st)
        if (hc_read_stage(st, j, t0, t1, &v[j], why) < 0)
            goto fail;
    qsort(v, n, sizeof *v, hc_stage_cmp);
    for (j = 0; j < n; j++) {
        if (j + 1 < n && hc_before(&v[j + 1].start, &v[j].end)) {
            snprintf(why, WHY, "stages overlap");
            goto fail;
        }
        if (v[j].sleeping)
            total += hc_span_ns(&v[j].start, &v[j].end);
    }
    free(v);
    return total;
fail:
    free(v);
    return -1;
}

/* Exact decimal text of `n` / 10^places. */
static void hc_shift(uint64_t n, int places, char out[40])
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n), ip = len - places;
    size_t o = 0;
    if (ip <= 0)
        out[o++] = '0';
    for (int i = 0; i < len && ip > 0 && i < ip; i++)
        out[o++] = digits[i];
    out[o++] = '.';
    for (int i = ip; i < 0; i++)
        out[o++] = '0';
    for (int i = ip > 0 ? ip : 0; i < len; i++)
        out[o++] = digits[i];
    while (out[o - 1] == '0')
        o--;
    if (out[o - 1] == '.')
        o--;
    out[o] = '\0';
}

static int hc_sleep(const hc_walk_t *w, const hc_kind_t *k, const json_t *rec, const char *path)
{
    const json_t *stages = json_object_get(rec, "stages");
    const vl_ingest_mapping_t *row;
    vl_ingest_reading_t r;
    hc_instant_t t0, t1;
    int64_t ns;
    char why[WHY], text[40];
    vl_ingest_reading_init(&r, "sleep-duration", path);
    if (hc_when(rec, k->interval, &r, &t0, &t1, why) < 0)
        return hc_reject(w, "sleep-duration", path, why);
    if (t1.secs - t0.secs > 1000000000) /* keeps the sum in int64 ns */
        return hc_reject(w, "sleep-duration", path, "the session is longer than 30 years");
    if (!hc_absent(stages) && !json_is_array(stages))
        return hc_reject(w, "sleep-duration", path, "stages must be an array");
    ns = json_array_size(stages) ? hc_sleep_ns(stages, &t0, &t1, why) : hc_span_ns(&t0, &t1);
    if (ns < 0 || hc_metadata(&r, rec, "", why) < 0)
        return hc_reject(w, "sleep-duration", path, why);
    if (ns % 3 == 0) { /* ns / 6e10 = (ns / 3) * 5 / 1e11 */
        row = vl_ingest_map_find(vl_ingest_healthconnect_map, "SleepSession.stages", "min");
        hc_shift((uint64_t)(ns / 3) * 5, 11, text);
    } else {
        row = vl_ingest_map_find(vl_ingest_healthconnect_map, "SleepSession.stages", "s");
        hc_shift((uint64_t)ns, 9, text);
    }
    if (vl_ingest_set_value(&r, 0, text, row->ucum, row->source_unit) < 0)
        return hc_reject(w, "sleep-duration", path, "the sleep duration does not fit");
    return w->emit(w->ctx, &r, NULL);
}

/* ------------------------------------------------------------------------
 * The walk
 * ---------------------------------------------------------------------- */

static const hc_kind_t kinds[] = {
    {"HeartRate", "samples", 1, hc_heart_rate, NULL},
    {"Steps", "count", 1, hc_simple, NULL},
    {"BloodPressure", NULL, 0, hc_blood_pressure, bp_codes},
    {"BloodGlucose", "level", 0, hc_blood_glucose, glucose_codes},
    {"OxygenSaturation", "percentage", 0, hc_simple, NULL},
    {"BodyTemperature", "temperature", 0, hc_simple, temp_codes},
    {"Weight", "weight", 0, hc_simple, NULL},
    {"Height", "height", 0, hc_simple, NULL},
    {"RespiratoryRate", "rate", 0, hc_simple, NULL},
    {"RestingHeartRate", "beatsPerMinute", 0, hc_simple, NULL},
    {"SleepSession", "stages", 1, hc_sleep, NULL},
};

static const hc_kind_t *hc_kind(const char *type)
{
    size_t n = strlen(type);
    if (n > 6 && !strcmp(type + n - 6, "Record"))
        n -= 6; /* the class name, "HeartRateRecord" */
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i].type) == n && !strncmp(kinds[i].type, type, n))
            return &kinds[i];
    return NULL;
}

static int hc_record(const hc_walk_t *w, const json_t *rec, const char *path)
{
    const char *type = hc_str(rec, "recordType");
    const hc_kind_t *k;
    if (!json_is_object(rec))
        return hc_reject(w, NULL, path, "a Health Connect record is a JSON object");
    if (!type)
        return hc_reject(w, NULL, path, "a Health Connect record names its class in recordType");
    k = hc_kind(type);
    if (!k)
        return vl_ingest_reject(w->emit, w->ctx, NULL, path,
                                "unknown recordType \"%.48s\" (HeartRate, Steps, BloodPressure, "
                                "BloodGlucose, OxygenSaturation, BodyTemperature, Weight, Height, "
                                "RespiratoryRate, RestingHeartRate, SleepSession)",
                                type);
    return k->fn(w, k, rec, path);
}

static int hc_list(const hc_walk_t *w, const json_t *list, const char *prefix)
{
    const json_t *rec;
    size_t i;
    json_array_foreach (list, i, rec) {
        char path[64];
        snprintf(path, sizeof path, "%s/%zu", prefix, i);
        if (hc_record(w, rec, path) < 0)
            return -1;
    }
    return 0;
}

int vl_ingest_healthconnect(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                            void *ctx, vl_error_t *err)
{
    hc_walk_t w = {emit, ctx};
    (void)o; /* every Health Connect time has its zone */
    if (json_is_array(doc))
        return hc_list(&w, doc, "");
    if (json_is_object(doc) && json_object_get(doc, "recordType"))
        return hc_record(&w, doc, "/");
    if (json_is_object(doc) && json_is_array(json_object_get(doc, "records")))
        return hc_list(&w, json_object_get(doc, "records"), "/records");
    return vl_error_set(err, 400, "structure", NULL,
                        "a healthconnect document is a Health Connect record (with "
                        "\"recordType\"), an array of records or {\"records\": [...]}");
}
