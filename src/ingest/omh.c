/*
 * vitalog — ingest/omh.c: Open mHealth (and IEEE 1752.1) data points.
 *
 * DESIGN NOTES
 *
 * 1. What a document is. Facts from the Open mHealth schemas
 *    (../shared/data/wearables/openmhealth/schema/omh/, commit 36078a8;
 *    the IEEE 1752.1 time-frame, time-interval, duration-unit-value and
 *    descriptive-statistic schemas they refer to, as published in
 *    openmhealth/schemas schema/ieee/) and their test documents
 *    (tests/data/ingest/omh/<schema>/<version>/{shouldPass,shouldFail}):
 *      - a data point: {"header": {...}, "body": {...}} (data-point-1.0:
 *        both required); header-1.x requires id (string),
 *        creation_date_time (date-time) and schema_id {namespace, name,
 *        version} (strings); acquisition_provenance, when present, requires
 *        source_name (string) and may have modality ("sensed" or
 *        "self-reported"), source_creation_date_time,
 *        source_last_modification_date_time (date-times) and
 *        source_data_point_id (string); user_id is a string;
 *      - a bare body: the measure is recognised by its key (heart_rate,
 *        systolic_blood_pressure + diastolic_blood_pressure, ...; the
 *        schema table below); a body with the keys of two measures is
 *        ambiguous and rejected;
 *      - a JSON array: each element is one such document (path "/0", ...).
 *    A top-level object that is none of these (e.g. {}) is not an OMH
 *    document: -1 with a 400. Inside an array the same is a rejection of
 *    that element, and an empty array is nothing (no reading, no error).
 *
 * 2. Which measure. With a header, header.schema_id (namespace "omh")
 *    names the schema; the body's other keys are then additional
 *    properties (the schemas allow them) and are not read. A schema that
 *    is not one of the measures below (physical-activity, ieee:...) is a
 *    rejection. The mapping table vl_ingest_omh_map drives the rest: its
 *    rows are (schema name, OMH unit) -> (measure, UCUM unit, time rule),
 *    and a unit without a row is rejected with the list of the schema's
 *    units (every unit of every version's enum has a row; OMH unit names
 *    are the "common synonyms" of the HL7 UCUM table, not UCUM codes).
 *    Special sources of the table:
 *      - "blood-glucose/interstitial fluid": a glucose whose
 *        specimen_source is interstitial fluid is a CGM sensor reading
 *        (cgm-glucose, 99504-3 / 105272-9), not a capillary meter reading;
 *        "capillary blood" or no specimen is the meter reading
 *        (blood-glucose, 41653-7 / 14743-9); "whole blood", "plasma" and
 *        "serum" (blood_specimen_type, specimen_source 1.0) are kept as
 *        meter readings with the specimen in `note` (home meters report
 *        plasma-calibrated values of capillary blood); breath, saliva,
 *        sweat, tears, lacrimal fluid and urine are not blood glucose and
 *        are rejected;
 *      - "step-count/day": a step count whose interval is exactly one
 *        calendar day (starts at 00:00:00 and ends at 00:00:00 of the next
 *        date, in the offsets sent; a start plus a duration of 1 d, 24 h,
 *        1440 min or 86400 sec qualifies), or whose statistic has the
 *        denominator "d" (average/maximum... steps per day), is steps per
 *        day (steps-day, 41950-7, "/d"); any other step count is
 *        step-count (55423-8, "{steps}"). step_count is a number in
 *        step-count 1.x/2.x (source unit "") and {value, unit "steps"} in
 *        3.x; both are read;
 *      - sleep-duration and total-sleep-time both become sleep-duration;
 *      - rr-interval maps to measure "rr-interval", which measures.c may
 *        not have yet: then the reading is rejected "rr-interval: no LOINC
 *        mapping". There is no OMH heart-rate-variability schema, so none
 *        is read.
 *
 * 3. Values. A unit-value's value must be a JSON number (a numeric string
 *    is refused, as the schemas' "type": "number" does) and its unit a
 *    string of the schema's enum. The value is kept as its exact text,
 *    the unit as the UCUM code of the OMH unit (no conversion here). A
 *    blood pressure has values[0] systolic, values[1] diastolic (the
 *    measure's component order), each with its own unit.
 *
 * 4. Time. effective_time_frame is required here although the 1.x
 *    schemas make it optional: a reading without a time cannot be an
 *    Observation (the vital-signs profiles require effective[x]). So the
 *    1.x shouldPass documents without one (heart-rate-only.json, ...) are
 *    rejected, as their 2.x twins are shouldFail. The frame is exactly
 *    one of date_time or time_interval (oneOf); an interval is exactly one
 *    of {start_date_time, end_date_time}, {start_date_time, duration},
 *    {end_date_time, duration} or {date, part_of_day} (no other interval
 *    key mixed in: stricter than oneOf, which would ignore a stray key).
 *      - date-times are RFC 3339 with a zone offset ("Z" or +hh:mm), as
 *        the date-time test documents require (a date alone or a time
 *        without an offset is shouldFail). A time without an offset is
 *        rejected even with a tz option: the schema's description says
 *        such a time is UTC while its format forbids it, so nothing says
 *        which zone it is in;
 *      - start and end are kept as sent; a duration (duration-unit-value:
 *        ps, ns, us, ms, sec, min, h, d, wk) is added to the start (or
 *        taken from the end) exactly, in integer nanoseconds, and the
 *        computed end is written in the offset of the given end point.
 *        "Mo" and "yr" have no exact length and are rejected, as are a
 *        negative duration and one finer than a nanosecond;
 *      - an interval that ends before it starts is rejected: the OMH
 *        time-interval schema allows it (its start-time-later-than-end
 *        test) but a FHIR Period does not (per-1). Three shouldPass
 *        documents are such (calories-burned 2.0, sleep-duration 2.0
 *        with-descriptive-statistic, body-temperature 4.0
 *        valid-temperature-with-statistic: years typed wrong);
 *      - {date, part_of_day} (time-interval-1.0; the IEEE time frame of
 *        blood-pressure 4, blood-glucose 4, body-height 2, body-mass-index
 *        3, body-temperature 4 and body-weight 3 has no such form, which
 *        is enforced when a header gives the version) has no hours (the
 *        part-of-day schema only names morning, afternoon, evening,
 *        night), so it is resolved to what is exact: the whole date in
 *        the tz option's zone (two dates for "night", which may run past
 *        midnight), part_of_day kept in `note`. Without a tz it is
 *        rejected (time rule "date+tz"). Such an interval is never "one
 *        calendar day" of steps: the steps were counted in part of it;
 *      - step-count, calories-burned, sleep-duration and total-sleep-time
 *        need an interval (their 2.x schemas restrict the frame to
 *        time_interval: time rule "period"); the others take either
 *        ("instant-or-period": a date_time is an instant, an interval a
 *        period).
 *
 * 5. Statistics. descriptive_statistic must be a name of the OMH/IEEE
 *    enums (union of descriptive-statistic 1.0, 1.1, 1.2 and IEEE 1.0);
 *    it goes to reading.statistic as written ("average", "80th
 *    percentile"...). "count", "standard deviation", "variance" and
 *    "quartile deviation" are statistics about the measurements, not a
 *    value of the measure (a count of heart rates is not a heart rate, a
 *    variance is in the unit squared): rejected.
 *    descriptive_statistic_denominator must be a string (an enum or any
 *    duration unit); "d" makes steps per day (note 2); any other is kept
 *    in `note`.
 *
 * 6. Other fields. The optional fields of each schema (union of its
 *    versions) are validated against their enums: temporal relationships
 *    to physical activity, sleep and meal, position_during_measurement,
 *    body_posture, measurement_location (body-location for blood pressure,
 *    the schema's own list for body temperature), the oxygen fields
 *    (system, supplemental_oxygen_flow_rate in L/min,
 *    oxygen_therapy_mode_of_administration, measurement_method),
 *    specimen_source, blood_specimen_type, activity_name, user_notes. They
 *    are not mapped to FHIR (no reading field for them); user_notes goes
 *    to `note`, with "modality: self-reported" (a typed-in value),
 *    part_of_day, specimen and denominator when present. `note` holds 159
 *    bytes: a longer text is cut at a UTF-8 character boundary.
 *
 * 7. Identity. record_id is header.id (the data point's id, at most 127
 *    bytes, else rejected); source_name is
 *    acquisition_provenance.source_name (cut to 95 bytes at a character
 *    boundary). OMH headers name no device: the device fields stay empty.
 *    A bare body has no id: two readings of one array are told apart by
 *    measure, time and statistic (the fhir layer's identity).
 *
 * 8. Paths. A reading's path is "/body" for a data point, "/" for a bare
 *    body, prefixed by "/<i>" inside an array ("/3/body", "/3"). A
 *    rejection has the same path and a `why` that names the field.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest_internal.h"

/* ------------------------------------------------------------------------
 * The mapping table (note 2)
 * ---------------------------------------------------------------------- */

#define EITHER "instant-or-period"
#define ROW(src, measure, unit, ucum, rule)                                                        \
    {                                                                                              \
        src, measure, unit, ucum, rule                                                             \
    }
#define WEIGHT(unit, ucum) ROW("body-weight", "body-weight", unit, ucum, EITHER)
#define HEIGHT(unit, ucum) ROW("body-height", "body-height", unit, ucum, EITHER)
#define SLEEP(src, unit, ucum) ROW(src, "sleep-duration", unit, ucum, "period")

const vl_ingest_mapping_t vl_ingest_omh_map[] = {
    ROW("heart-rate", "heart-rate", "beats/min", "/min", EITHER),
    ROW("blood-pressure", "blood-pressure", "mmHg", "mm[Hg]", EITHER),
    ROW("body-temperature", "body-temperature", "C", "Cel", EITHER),
    ROW("body-temperature", "body-temperature", "F", "[degF]", EITHER),
    ROW("body-temperature", "body-temperature", "K", "K", EITHER),
    ROW("oxygen-saturation", "oxygen-saturation", "%", "%", EITHER),
    ROW("blood-glucose", "blood-glucose", "mg/dL", "mg/dL", EITHER),
    ROW("blood-glucose", "blood-glucose-molar", "mmol/L", "mmol/L", EITHER),
    ROW("blood-glucose/interstitial fluid", "cgm-glucose", "mg/dL", "mg/dL", EITHER),
    ROW("blood-glucose/interstitial fluid", "cgm-glucose-molar", "mmol/L", "mmol/L", EITHER),
    /* mass-unit-value-1.0/1.1 */
    WEIGHT("kg", "kg"),
    WEIGHT("g", "g"),
    WEIGHT("lb", "[lb_av]"),
    WEIGHT("oz", "[oz_av]"),
    WEIGHT("mg", "mg"),
    WEIGHT("ug", "ug"),
    WEIGHT("ng", "ng"),
    WEIGHT("pg", "pg"),
    WEIGHT("fg", "fg"),
    WEIGHT("gr", "[gr]"),
    WEIGHT("Metric Ton", "t"),
    WEIGHT("Ton", "[ston_av]"),
    /* length-unit-value-1.0 */
    HEIGHT("cm", "cm"),
    HEIGHT("m", "m"),
    HEIGHT("mm", "mm"),
    HEIGHT("in", "[in_i]"),
    HEIGHT("ft", "[ft_i]"),
    HEIGHT("yd", "[yd_i]"),
    HEIGHT("mi", "[mi_i]"),
    HEIGHT("km", "km"),
    HEIGHT("um", "um"),
    HEIGHT("nm", "nm"),
    HEIGHT("pm", "pm"),
    HEIGHT("fm", "fm"),
    ROW("body-mass-index", "body-mass-index", "kg/m2", "kg/m2", EITHER),  /* 1.0 */
    ROW("body-mass-index", "body-mass-index", "kg/m^2", "kg/m2", EITHER), /* 2.0, 3.0 */
    ROW("respiratory-rate", "respiratory-rate", "breaths/min", "/min", EITHER),
    ROW("rr-interval", "rr-interval", "ms", "ms", EITHER),
    ROW("step-count", "step-count", "", "{steps}", "period"),      /* 1.x, 2.x: a number */
    ROW("step-count", "step-count", "steps", "{steps}", "period"), /* 3.x */
    ROW("step-count/day", "steps-day", "", "/d", "period"),
    ROW("step-count/day", "steps-day", "steps", "/d", "period"),
    ROW("calories-burned", "calories-burned", "kcal", "kcal", "period"),
    SLEEP("sleep-duration", "sec", "s"),
    SLEEP("sleep-duration", "min", "min"),
    SLEEP("sleep-duration", "h", "h"),
    /* total-sleep-time: any duration-unit-value unit */
    SLEEP("total-sleep-time", "ps", "ps"),
    SLEEP("total-sleep-time", "ns", "ns"),
    SLEEP("total-sleep-time", "us", "us"),
    SLEEP("total-sleep-time", "ms", "ms"),
    SLEEP("total-sleep-time", "sec", "s"),
    SLEEP("total-sleep-time", "min", "min"),
    SLEEP("total-sleep-time", "h", "h"),
    SLEEP("total-sleep-time", "d", "d"),
    SLEEP("total-sleep-time", "wk", "wk"),
    SLEEP("total-sleep-time", "Mo", "mo"),
    SLEEP("total-sleep-time", "yr", "a"),
    {NULL, NULL, NULL, NULL, NULL},
};

#undef SLEEP
#undef HEIGHT
#undef WEIGHT
#undef ROW

/* ------------------------------------------------------------------------
 * Enumerations of the schemas (unions over their versions)
 * ---------------------------------------------------------------------- */

static const char *const to_activity[] = {"at rest",        "active",          "before exercise",
                                          "after exercise", "during exercise", NULL};
static const char *const to_sleep[] = {"before sleeping", "during sleep", "on waking", NULL};
static const char *const to_meal[] = {"fasting",
                                      "not fasting",
                                      "before meal",
                                      "after meal",
                                      "before breakfast",
                                      "after breakfast",
                                      "before lunch",
                                      "after lunch",
                                      "before dinner",
                                      "after dinner",
                                      "2 hours postprandial",
                                      "not related to meals",
                                      "with meal",
                                      "with food",
                                      NULL};
static const char *const positions[] = {"sitting", "lying down", "standing", NULL};
static const char *const postures[] = {"sitting", "lying down", "standing", "semi-recumbent", NULL};
static const char *const body_locations[] = {"left ankle",
                                             "right ankle",
                                             "left hip",
                                             "right hip",
                                             "left thigh",
                                             "right thigh",
                                             "left thorax",
                                             "middle left thorax",
                                             "left upper arm",
                                             "right upper arm",
                                             "left wrist",
                                             "right wrist",
                                             NULL};
static const char *const temperature_locations[] = {
    "oral",   "rectal",   "vaginal",         "axillary", "otic",     "wrist",  "chest", "temporal",
    "finger", "forehead", "temporal artery", "toe",      "tympanic", "vagina", NULL};
static const char *const blood_specimens[] = {"whole blood", "plasma", "serum", NULL};
static const char *const specimen_sources[] = {
    "interstitial fluid", "capillary blood", "plasma", "serum", "tears", "whole blood", "breath",
    "lacrimal fluid",     "saliva",          "sweat",  "urine", NULL};
static const char *const o2_systems[] = {"peripheral capillary", NULL};
static const char *const o2_modes[] = {"nasal cannula", NULL};
static const char *const o2_methods[] = {"pulse oximetry", NULL};
static const char *const statistics[] = {"average",
                                         "maximum",
                                         "minimum",
                                         "median",
                                         "sum",
                                         "20th percentile",
                                         "80th percentile",
                                         "lower quartile",
                                         "upper quartile",
                                         "1st quintile",
                                         "2nd quintile",
                                         "3rd quintile",
                                         "4th quintile",
                                         NULL};
/* in the enums, but not a value of the measure (note 5) */
static const char *const statistics_about[] = {"count", "standard deviation", "variance",
                                               "quartile deviation", NULL};
static const char *const parts_of_day[] = {"morning", "afternoon", "evening", "night", NULL};
static const char *const modalities[] = {"sensed", "self-reported", NULL};

/* ------------------------------------------------------------------------
 * The measure schemas
 * ---------------------------------------------------------------------- */

typedef enum { F_ENUM, F_TEXT, F_FLOW } field_kind_t;

/* An optional field of a body: a string of `allowed` (F_ENUM), any string
 * (F_TEXT), or supplemental_oxygen_flow_rate (F_FLOW: a number in L/min). */
typedef struct omh_field {
    const char *name;
    field_kind_t kind;
    const char *const *allowed;
} omh_field_t;

typedef struct omh_schema {
    const char *name; /* schema_id.name and the mapping table's source */
    const char *key;  /* the body's value ("heart_rate"; systolic for blood pressure) */
    const char *key2; /* the second value (diastolic), or NULL */
    int ieee_major;   /* first major version on the IEEE time frame (note 4), 0 none */
    omh_field_t fields[5];
} omh_schema_t;

#define TO_ACTIVITY                                                                                \
    {                                                                                              \
        "temporal_relationship_to_physical_activity", F_ENUM, to_activity                          \
    }
#define TO_SLEEP                                                                                   \
    {                                                                                              \
        "temporal_relationship_to_sleep", F_ENUM, to_sleep                                         \
    }
#define NO_FIELDS                                                                                  \
    {                                                                                              \
        {                                                                                          \
            NULL, F_TEXT, NULL                                                                     \
        }                                                                                          \
    }

static const omh_schema_t schemas[] = {
    {"heart-rate", "heart_rate", NULL, 0, {TO_ACTIVITY, TO_SLEEP}},
    {"blood-pressure",
     "systolic_blood_pressure",
     "diastolic_blood_pressure",
     4,
     {{"position_during_measurement", F_ENUM, positions},
      {"body_posture", F_ENUM, postures},
      {"measurement_location", F_ENUM, body_locations},
      TO_ACTIVITY}},
    {"body-temperature",
     "body_temperature",
     NULL,
     4,
     {{"measurement_location", F_ENUM, temperature_locations}, TO_SLEEP}},
    {"oxygen-saturation",
     "oxygen_saturation",
     NULL,
     0,
     {{"system", F_ENUM, o2_systems},
      {"supplemental_oxygen_flow_rate", F_FLOW, NULL},
      {"oxygen_therapy_mode_of_administration", F_ENUM, o2_modes},
      {"measurement_method", F_ENUM, o2_methods}}},
    {"blood-glucose",
     "blood_glucose",
     NULL,
     4,
     {{"blood_specimen_type", F_ENUM, blood_specimens},
      {"specimen_source", F_ENUM, specimen_sources},
      {"temporal_relationship_to_meal", F_ENUM, to_meal},
      TO_SLEEP}},
    {"body-weight", "body_weight", NULL, 3, NO_FIELDS},
    {"body-height", "body_height", NULL, 2, NO_FIELDS},
    {"body-mass-index", "body_mass_index", NULL, 3, NO_FIELDS},
    {"respiratory-rate", "respiratory_rate", NULL, 0, {TO_ACTIVITY}},
    {"rr-interval", "rr_interval", NULL, 0, {TO_ACTIVITY}},
    {"step-count", "step_count", NULL, 0, NO_FIELDS},
    {"sleep-duration", "sleep_duration", NULL, 0, NO_FIELDS},
    {"total-sleep-time", "total_sleep_time", NULL, 0, NO_FIELDS},
    {"calories-burned", "kcal_burned", NULL, 0, {{"activity_name", F_TEXT, NULL}}},
    {NULL, NULL, NULL, 0, NO_FIELDS},
};

#undef NO_FIELDS
#undef TO_SLEEP
#undef TO_ACTIVITY

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

#define WHY_MAX 200

/* What the header says (note 7). */
typedef struct omh_meta {
    const char *id, *source_name;
    int self_reported;
    int major; /* schema_id.version's major number, 0 when not a number */
} omh_meta_t;

/* One body being read into a reading. */
typedef struct omh_body {
    const omh_schema_t *schema;
    const json_t *body;
    const omh_meta_t *meta; /* NULL for a bare body */
    const char *tz;
    const vl_ingest_mapping_t *rows[2]; /* each value's row */
    const char *values[2], *units[2];
    size_t n_values;
    char start[40], end[40];
    int instant, from_date, one_day;
    const char *statistic, *denominator, *specimen;
    char note[160];
    char why[WHY_MAX];
} omh_body_t;

/* Records why the body is rejected; returns -1. */
static int fail(omh_body_t *b, const char *fmt, ...) VL_PRINTF(2, 3);
static int fail(omh_body_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, sizeof b->why, fmt, ap);
    va_end(ap);
    return -1;
}

static int in_list(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (!strcmp(s, *list))
            return 1;
    return 0;
}

/* Copies at most n-1 bytes of src, never cutting a UTF-8 character. */
static void copy_utf8(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n) {
        len = n - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--; /* src[len] is a continuation byte: its character would be cut */
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Appends "; text" (or text) to the note, cut to fit. */
static void note_add(omh_body_t *b, const char *fmt, ...) VL_PRINTF(2, 3);
static void note_add(omh_body_t *b, const char *fmt, ...)
{
    char text[sizeof b->note + 8];
    size_t used = strlen(b->note);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (used && used + 2 < sizeof b->note) {
        memcpy(b->note + used, "; ", 3);
        used += 2;
    }
    if (used + 1 < sizeof b->note)
        copy_utf8(b->note + used, sizeof b->note - used, text);
}

/* The string value of member `name`: 1 and *out when a string, 0 when
 * absent, -1 when present but not a string. */
static int member_string(const json_t *obj, const char *name, const char **out)
{
    const json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v)
        return 0;
    if (!vl_json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 1;
}

/* ------------------------------------------------------------------------
 * Date-times (note 4)
 * ---------------------------------------------------------------------- */

typedef struct omh_time {
    int64_t secs; /* since the epoch */
    int32_t ns;   /* nanoseconds of that second */
    int off_min;  /* the zone offset, minutes east */
    int fine;     /* more than nine digits of fraction */
    char zone[8]; /* "Z" or "+hh:mm", as sent */
} omh_time_t;

static int digit(char c)
{
    return c >= '0' && c <= '9';
}

static int floor_div(int64_t a, int64_t b, int64_t *rem)
{
    int64_t q = a / b, r = a % b;
    if (r < 0) {
        q--;
        r += b;
    }
    *rem = r;
    return (int)(q > INT32_MAX ? INT32_MAX : q < INT32_MIN ? INT32_MIN : q);
}

/* Reads the zone at s ("Z" or "+hh:mm" then the end); 0 or -1. */
static int parse_zone(const char *s, omh_time_t *t)
{
    if (s[0] == 'Z' && s[1] == '\0') {
        t->off_min = 0;
    } else if ((s[0] == '+' || s[0] == '-') && digit(s[1]) && digit(s[2]) && s[3] == ':' &&
               digit(s[4]) && digit(s[5]) && s[6] == '\0') {
        int h = (s[1] - '0') * 10 + (s[2] - '0'), m = (s[4] - '0') * 10 + (s[5] - '0');
        if (h > 14 || m > 59)
            return -1;
        t->off_min = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
    } else {
        return -1;
    }
    snprintf(t->zone, sizeof t->zone, "%s", s);
    return 0;
}

/* An RFC 3339 date-time with its offset ("2013-02-05T07:25:00.123-08:00"). */
static int parse_date_time(const char *s, omh_time_t *t)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t n = s ? strlen(s) : 0, i = 19, d = 0;
    int64_t lo, hi, rem;
    int prec;
    if (n < 20 || n > 39)
        return -1;
    for (size_t k = 0; k < 19; k++)
        if (shape[k] == 'd' ? !digit(s[k]) : s[k] != shape[k])
            return -1;
    t->ns = 0;
    t->fine = 0;
    if (s[i] == '.') {
        for (i++; digit(s[i]); i++, d++) {
            if (d < 9)
                t->ns = t->ns * 10 + (s[i] - '0');
            else if (s[i] != '0')
                t->fine = 1;
        }
        if (d == 0)
            return -1;
        for (; d < 9; d++)
            t->ns *= 10;
    }
    if (parse_zone(s + i, t) != 0 || vl_time_parse_range(s, &lo, &hi, &prec) != 0 || prec != 4)
        return -1;
    (void)floor_div(lo, 1000000, &rem);
    t->secs = (lo - rem) / 1000000;
    return 0;
}

/* Formats secs + ns in the zone of `like`; 0 or -1 (out of years 1-9999). */
static int format_time(int64_t secs, int32_t ns, const omh_time_t *like, char out[40])
{
    time_t local = (time_t)(secs + like->off_min * 60);
    struct tm tm;
    char frac[16] = "";
    int k;
    if (!gmtime_r(&local, &tm) || tm.tm_year < 1 - 1900 || tm.tm_year > 9999 - 1900)
        return -1;
    if (ns) {
        snprintf(frac, sizeof frac, ".%09d", (int)ns);
        for (size_t n = strlen(frac); n > 1 && frac[n - 1] == '0'; n--)
            frac[n - 1] = '\0';
    }
    k = snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac, like->zone);
    return k > 0 && k < 40 ? 0 : -1;
}

static int time_cmp(const omh_time_t *a, const omh_time_t *b)
{
    if (a->secs != b->secs)
        return a->secs < b->secs ? -1 : 1;
    return a->ns < b->ns ? -1 : a->ns > b->ns;
}

/* Both points at 00:00:00 of their offsets, the end on the next date. */
static int is_one_day(const omh_time_t *a, const omh_time_t *b)
{
    int64_t ra, rb;
    int da = floor_div(a->secs + a->off_min * 60, 86400, &ra);
    int db = floor_div(b->secs + b->off_min * 60, 86400, &rb);
    return !a->ns && !b->ns && !ra && !rb && db == da + 1;
}

/* ------------------------------------------------------------------------
 * Durations of time intervals (duration-unit-value)
 * ---------------------------------------------------------------------- */

static const struct {
    const char *unit;
    int64_t ns; /* nanoseconds per unit; 0: no exact length; ps is 1/1000 ns */
} duration_units[] = {
    {"ps", -1},
    {"ns", 1},
    {"us", 1000},
    {"ms", 1000000},
    {"sec", 1000000000},
    {"min", INT64_C(60000000000)},
    {"h", INT64_C(3600000000000)},
    {"d", INT64_C(86400000000000)},
    {"wk", INT64_C(604800000000000)},
    {"Mo", 0},
    {"yr", 0},
    {NULL, 0},
};

/* The JSON number text times 10^exp10 times mult as an exact integer:
 * 0, or -1 (negative, not an integer, or beyond int64). */
static int exact_scaled(const char *text, int64_t mult, int exp10, int64_t *out)
{
    const char *p = text, *frac = NULL, *frac_end = NULL;
    int64_t m = 0;
    int e = exp10;
    if (*p == '-') { /* only a zero may be negative */
        *out = 0;
        return strspn(p + 1, "0.") == strcspn(p + 1, "eE") ? 0 : -1;
    }
    for (; digit(*p); p++)
        if (__builtin_mul_overflow(m, 10, &m) || __builtin_add_overflow(m, *p - '0', &m))
            return -1;
    if (*p == '.') {
        frac = ++p;
        while (digit(*p))
            p++;
        for (frac_end = p; frac_end > frac && frac_end[-1] == '0'; frac_end--)
            ; /* trailing zeros change nothing */
    }
    for (const char *f = frac; f && f < frac_end; f++, e--)
        if (__builtin_mul_overflow(m, 10, &m) || __builtin_add_overflow(m, *f - '0', &m))
            return -1;
    if (*p == 'e' || *p == 'E') {
        long x = strtol(p + 1, NULL, 10);
        if (x < -400 || x > 400)
            return -1;
        e += (int)x;
    }
    if (m == 0)
        return (*out = 0);
    if (__builtin_mul_overflow(m, mult, &m))
        return -1;
    for (; e < 0; e++) {
        if (m % 10)
            return -1;
        m /= 10;
    }
    for (; e > 0; e--)
        if (__builtin_mul_overflow(m, 10, &m))
            return -1;
    *out = m;
    return 0;
}

/* A duration {value, unit} in nanoseconds. */
static int read_duration(omh_body_t *b, const json_t *d, int64_t *ns)
{
    const char *unit, *value = vl_json_number_text(json_object_get(d, "value"));
    size_t i;
    if (!json_is_object(d) || !value || member_string(d, "unit", &unit) != 1)
        return fail(b, "effective_time_frame.time_interval.duration needs a number value and a "
                       "unit");
    for (i = 0; duration_units[i].unit && strcmp(duration_units[i].unit, unit); i++)
        ;
    if (!duration_units[i].unit)
        return fail(b,
                    "effective_time_frame.time_interval.duration: unit \"%.40s\" is not a "
                    "duration unit (ps, ns, us, ms, sec, min, h, d, wk, Mo, yr)",
                    unit);
    if (!duration_units[i].ns)
        return fail(b, "effective_time_frame.time_interval.duration in %s has no exact length",
                    unit);
    if (exact_scaled(value, duration_units[i].ns < 0 ? 1 : duration_units[i].ns,
                     duration_units[i].ns < 0 ? -3 : 0, ns) != 0)
        return fail(b,
                    "effective_time_frame.time_interval.duration %.40s %s: not a whole "
                    "number of nanoseconds, negative or too long",
                    value, unit);
    return 0;
}

/* ------------------------------------------------------------------------
 * Time frames (note 4)
 * ---------------------------------------------------------------------- */

static int read_point(omh_body_t *b, const json_t *obj, const char *name, omh_time_t *t)
{
    const char *s;
    int has = member_string(obj, name, &s);
    if (has != 1 || parse_date_time(s, t) != 0)
        return fail(b,
                    "effective_time_frame: %s %s%.40s%s is not an RFC 3339 date-time with a "
                    "zone offset",
                    name, has == 1 ? "\"" : "", has == 1 ? s : "(not a string)",
                    has == 1 ? "\"" : "");
    return 0;
}

/* start +/- duration; the computed point in the zone of the given one. */
static int shift(omh_body_t *b, const omh_time_t *from, int64_t ns, int sign, char out[40],
                 omh_time_t *to)
{
    int64_t total = from->ns + sign * (ns % 1000000000), rem;
    int64_t secs = from->secs + sign * (ns / 1000000000);
    if (from->fine)
        return fail(b, "effective_time_frame.time_interval: a duration from a time finer than a "
                       "nanosecond");
    (void)floor_div(total, 1000000000, &rem);
    secs += (total - rem) / 1000000000;
    *to = *from;
    to->secs = secs;
    to->ns = (int32_t)rem;
    if (format_time(secs, (int32_t)rem, from, out) != 0)
        return fail(b, "effective_time_frame.time_interval: the duration goes beyond year 9999");
    return 0;
}

/* The date's first instant plus `days`, as a local date-time text. */
static int local_midnight(const char *date, int days, char out[40])
{
    int64_t lo, hi;
    int prec;
    time_t t;
    struct tm tm;
    if (vl_time_parse_range(date, &lo, &hi, &prec) != 0 || prec != 3)
        return -1;
    t = (time_t)(lo / 1000000 + days * 86400);
    if (!gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900)
        return -1;
    return snprintf(out, 40, "%04d-%02d-%02dT00:00:00", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday) == 19
               ? 0
               : -1;
}

/* {date, part_of_day}: the whole date (two for "night") in the tz zone. */
static int read_part_of_day(omh_body_t *b, const json_t *ti)
{
    const char *date, *part;
    char a[40], z[40];
    int is_date;
    if (member_string(ti, "date", &date) != 1 || member_string(ti, "part_of_day", &part) != 1)
        return fail(b, "effective_time_frame.time_interval: date and part_of_day must be strings");
    is_date = strlen(date) == 10 && digit(date[0]) && digit(date[3]) && date[4] == '-' &&
              date[7] == '-' && digit(date[9]);
    if (!in_list(part, parts_of_day))
        return fail(b,
                    "effective_time_frame.time_interval.part_of_day \"%.40s\" is not morning, "
                    "afternoon, evening or night",
                    part);
    if (!is_date || local_midnight(date, 0, a) != 0 ||
        local_midnight(date, strcmp(part, "night") ? 1 : 2, z) != 0)
        return fail(b, "effective_time_frame.time_interval.date \"%.40s\" is not a full date",
                    date);
    if (b->meta && b->schema->ieee_major && b->meta->major >= b->schema->ieee_major)
        return fail(b, "effective_time_frame: omh:%s %d.x takes no date with part_of_day",
                    b->schema->name, b->meta->major);
    if (!b->tz)
        return fail(b,
                    "effective_time_frame.time_interval: date %s (%s) needs a zone: give a tz "
                    "parameter (or set the patient's zone)",
                    date, part);
    if (vl_ingest_local_time(a, b->tz, b->start) != 0 ||
        vl_ingest_local_time(z, b->tz, b->end) != 0)
        return fail(b,
                    "effective_time_frame.time_interval: date %s cannot be resolved in zone "
                    "%.40s",
                    date, b->tz);
    b->from_date = 1;
    note_add(b, "part_of_day: %s", part);
    return 0;
}

/* Which of the interval keys are present: bits S E D T P. */
enum { K_START = 1, K_END = 2, K_DURATION = 4, K_DATE = 8, K_PART = 16 };

static int read_interval(omh_body_t *b, const json_t *ti)
{
    static const char *const keys[] = {"start_date_time", "end_date_time", "duration", "date",
                                       "part_of_day"};
    omh_time_t s, e;
    int64_t ns = 0;
    unsigned have = 0;
    memset(&s, 0, sizeof s);
    memset(&e, 0, sizeof e);
    if (!json_is_object(ti))
        return fail(b, "effective_time_frame.time_interval is not an object");
    for (unsigned k = 0; k < 5; k++)
        if (json_object_get(ti, keys[k]))
            have |= 1u << k;
    switch (have) {
    case K_START | K_END:
        if (read_point(b, ti, "start_date_time", &s) || read_point(b, ti, "end_date_time", &e))
            return -1;
        copy_utf8(b->start, sizeof b->start, json_string_value(json_object_get(ti, keys[0])));
        copy_utf8(b->end, sizeof b->end, json_string_value(json_object_get(ti, keys[1])));
        break;
    case K_START | K_DURATION:
        if (read_point(b, ti, "start_date_time", &s) ||
            read_duration(b, json_object_get(ti, "duration"), &ns) ||
            shift(b, &s, ns, 1, b->end, &e))
            return -1;
        copy_utf8(b->start, sizeof b->start, json_string_value(json_object_get(ti, keys[0])));
        break;
    case K_END | K_DURATION:
        if (read_point(b, ti, "end_date_time", &e) ||
            read_duration(b, json_object_get(ti, "duration"), &ns) ||
            shift(b, &e, ns, -1, b->start, &s))
            return -1;
        copy_utf8(b->end, sizeof b->end, json_string_value(json_object_get(ti, keys[1])));
        break;
    case K_DATE | K_PART: return read_part_of_day(b, ti);
    default:
        return fail(b, "effective_time_frame.time_interval needs start_date_time and "
                       "end_date_time, one of them and a duration, or date and part_of_day");
    }
    if (time_cmp(&e, &s) < 0)
        return fail(b, "effective_time_frame.time_interval ends (%s) before it starts (%s)", b->end,
                    b->start);
    b->one_day = is_one_day(&s, &e);
    return 0;
}

static int read_time_frame(omh_body_t *b)
{
    const json_t *tf = json_object_get(b->body, "effective_time_frame");
    const json_t *dt = json_object_get(tf, "date_time"), *ti = json_object_get(tf, "time_interval");
    omh_time_t t;
    if (!tf)
        return fail(b, "effective_time_frame is missing: a reading needs a time");
    if (!json_is_object(tf) || (!dt) == (!ti))
        return fail(b, "effective_time_frame needs exactly one of date_time and time_interval");
    if (ti)
        return read_interval(b, ti);
    if (read_point(b, tf, "date_time", &t) != 0)
        return -1;
    copy_utf8(b->start, sizeof b->start, json_string_value(dt));
    b->instant = 1;
    return 0;
}

/* ------------------------------------------------------------------------
 * Values (note 3)
 * ---------------------------------------------------------------------- */

/* The schema's units, for a message: "\"kg\", \"g\", ..." */
static void unit_list(const char *source, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (const vl_ingest_mapping_t *m = vl_ingest_omh_map; m->source && used + 1 < n; m++)
        if (!strcmp(m->source, source) && m->source_unit[0]) {
            int k = snprintf(out + used, n - used, "%s\"%s\"", used ? ", " : "", m->source_unit);
            used = k < 0 ? n : used + (size_t)k;
        }
}

/* The value at body[key]: a unit-value, or (when the schema has a row
 * without unit) a bare number. */
static int read_value(omh_body_t *b, const char *key)
{
    const json_t *v = json_object_get(b->body, key);
    const char *value = vl_json_number_text(v), *unit = "";
    const vl_ingest_mapping_t *row;
    size_t i = b->n_values;
    char units[160];
    if (!v)
        return fail(b, "%s is missing", key);
    if (!value) {
        if (!json_is_object(v))
            return fail(b, "%s is not a number or a {value, unit} object", key);
        value = vl_json_number_text(json_object_get(v, "value"));
        if (!value)
            return fail(b, "%s.value is %s", key,
                        json_object_get(v, "value") ? "not a JSON number" : "missing");
        if (member_string(v, "unit", &unit) != 1)
            return fail(b, "%s.unit is %s", key,
                        json_object_get(v, "unit") ? "not a string" : "missing");
        if (!unit[0])
            return fail(b, "%s.unit is empty", key);
    }
    row = vl_ingest_map_find(vl_ingest_omh_map, b->schema->name, unit);
    if (!row) {
        unit_list(b->schema->name, units, sizeof units);
        if (!unit[0])
            return fail(b, "%s is a bare number: omh:%s needs {value, unit} (%s)", key,
                        b->schema->name, units);
        return fail(b, "%s.unit \"%.32s\" is not a unit of omh:%s (%s)", key, unit, b->schema->name,
                    units);
    }
    b->rows[i] = row;
    b->values[i] = value;
    b->units[i] = unit;
    b->n_values = i + 1;
    return 0;
}

/* ------------------------------------------------------------------------
 * The other fields of a body (notes 5, 6)
 * ---------------------------------------------------------------------- */

static int read_flow_rate(omh_body_t *b, const json_t *v)
{
    const char *unit;
    if (!json_is_object(v) || !vl_json_number_text(json_object_get(v, "value")) ||
        member_string(v, "unit", &unit) != 1)
        return fail(b, "supplemental_oxygen_flow_rate needs a number value and a unit");
    if (strcmp(unit, "L/min"))
        return fail(b, "supplemental_oxygen_flow_rate.unit \"%.32s\" is not L/min", unit);
    return 0;
}

static int read_fields(omh_body_t *b)
{
    for (const omh_field_t *f = b->schema->fields; f->name; f++) {
        const json_t *v = json_object_get(b->body, f->name);
        if (!v)
            continue;
        if (f->kind == F_FLOW) {
            if (read_flow_rate(b, v) != 0)
                return -1;
        } else if (!vl_json_is_string(v)) {
            return fail(b, "%s is not a string", f->name);
        } else if (f->kind == F_ENUM && !in_list(json_string_value(v), f->allowed)) {
            return fail(b, "%s \"%.40s\" is not one of the values omh:%s allows", f->name,
                        json_string_value(v), b->schema->name);
        }
    }
    return 0;
}

/* user_notes, the modality and the descriptive statistic. */
static int read_annotations(omh_body_t *b)
{
    const char *notes;
    if (member_string(b->body, "user_notes", &notes) < 0)
        return fail(b, "user_notes is not a string");
    if (notes)
        note_add(b, "%s", notes);
    if (b->meta && b->meta->self_reported)
        note_add(b, "modality: self-reported");
    if (member_string(b->body, "descriptive_statistic", &b->statistic) < 0)
        return fail(b, "descriptive_statistic is not a string");
    if (b->statistic && in_list(b->statistic, statistics_about))
        return fail(b,
                    "descriptive_statistic \"%s\" is a statistic about the measurements, not "
                    "a value of omh:%s",
                    b->statistic, b->schema->name);
    if (b->statistic && !in_list(b->statistic, statistics))
        return fail(b, "descriptive_statistic \"%.40s\" is not an OMH descriptive statistic",
                    b->statistic);
    if (member_string(b->body, "descriptive_statistic_denominator", &b->denominator) < 0)
        return fail(b, "descriptive_statistic_denominator is not a string");
    return 0;
}

/* The specimen of a glucose (note 2): 0 and the row's variant. */
static int read_specimen(omh_body_t *b, const char **variant)
{
    const char *src = NULL, *type = NULL;
    *variant = NULL;
    (void)member_string(b->body, "specimen_source", &src); /* types checked by read_fields */
    (void)member_string(b->body, "blood_specimen_type", &type);
    if (src && type && strcmp(src, type))
        return fail(b, "specimen_source \"%s\" and blood_specimen_type \"%s\" disagree", src, type);
    b->specimen = src ? src : type;
    if (!b->specimen || !strcmp(b->specimen, "capillary blood"))
        return 0;
    if (!strcmp(b->specimen, "interstitial fluid")) {
        *variant = "interstitial fluid";
        return 0;
    }
    if (in_list(b->specimen, blood_specimens)) {
        note_add(b, "specimen: %s", b->specimen);
        return 0;
    }
    return fail(b, "glucose in %s is not a blood glucose: no LOINC mapping", b->specimen);
}

/* Picks the row variant (note 2) and checks the time rule. */
static int choose_rows(omh_body_t *b)
{
    const char *variant = NULL;
    char source[64];
    int per_day;
    if (!strcmp(b->schema->name, "blood-glucose") && read_specimen(b, &variant) != 0)
        return -1;
    per_day = b->statistic && b->denominator && !strcmp(b->denominator, "d");
    if (!strcmp(b->schema->name, "step-count") && !b->from_date && (b->one_day || per_day))
        variant = "day";
    if (b->denominator && !(variant && per_day && !strcmp(variant, "day")))
        note_add(b, "descriptive_statistic_denominator: %s", b->denominator);
    if (variant) {
        snprintf(source, sizeof source, "%s/%s", b->schema->name, variant);
        b->rows[0] = vl_ingest_map_find(vl_ingest_omh_map, source, b->units[0]);
        if (!b->rows[0])
            return fail(b, "omh:%s: no mapping for unit \"%s\"", source, b->units[0]);
    }
    if (b->instant && !strstr(b->rows[0]->time_rule, "instant"))
        return fail(b, "omh:%s is measured over a time_interval, not at a date_time",
                    b->schema->name);
    return 0;
}

/* ------------------------------------------------------------------------
 * Body -> reading
 * ---------------------------------------------------------------------- */

typedef struct walk {
    const vl_ingest_options_t *o;
    vl_ingest_emit_fn emit;
    void *ctx;
} walk_t;

static int read_body(omh_body_t *b)
{
    if (!json_is_object(b->body))
        return fail(b, "the body is not an object");
    if (read_value(b, b->schema->key) != 0 ||
        (b->schema->key2 && read_value(b, b->schema->key2) != 0))
        return -1;
    if (read_fields(b) != 0 || read_annotations(b) != 0 || read_time_frame(b) != 0)
        return -1;
    return choose_rows(b);
}

static int emit_body(walk_t *w, omh_body_t *b, const char *path)
{
    vl_ingest_reading_t r;
    const char *measure = b->rows[0]->measure;
    vl_ingest_reading_init(&r, measure, path);
    if (!r.measure)
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "%s: no LOINC mapping", measure);
    for (size_t i = 0; i < b->n_values; i++)
        if (vl_ingest_set_value(&r, i, b->values[i], b->rows[i]->ucum, b->units[i]) != 0)
            return vl_ingest_reject(w->emit, w->ctx, measure, path,
                                    "the value %.40s is not a decimal of at most 32 characters",
                                    b->values[i]);
    memcpy(r.start, b->start, sizeof r.start);
    memcpy(r.end, b->end, sizeof r.end);
    if (b->statistic)
        copy_utf8(r.statistic, sizeof r.statistic, b->statistic);
    if (b->meta && b->meta->id)
        copy_utf8(r.record_id, sizeof r.record_id, b->meta->id);
    if (b->meta && b->meta->source_name)
        copy_utf8(r.source_name, sizeof r.source_name, b->meta->source_name);
    memcpy(r.note, b->note, sizeof r.note);
    return w->emit(w->ctx, &r, NULL);
}

/* Reads one body of `schema` and emits its reading or its rejection. */
static int do_body(walk_t *w, const omh_schema_t *schema, const json_t *body,
                   const omh_meta_t *meta, const char *path)
{
    omh_body_t b;
    const vl_ingest_mapping_t *first = vl_ingest_map_find(vl_ingest_omh_map, schema->name, NULL);
    memset(&b, 0, sizeof b);
    b.schema = schema;
    b.body = body;
    b.meta = meta;
    b.tz = w->o->tz;
    if (read_body(&b) != 0)
        return vl_ingest_reject(w->emit, w->ctx, first ? first->measure : NULL, path, "%s", b.why);
    return emit_body(w, &b, path);
}

/* ------------------------------------------------------------------------
 * Headers and data points
 * ---------------------------------------------------------------------- */

static const omh_schema_t *schema_named(const char *name)
{
    for (const omh_schema_t *s = schemas; s->name; s++)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

static int check_date_time(const json_t *obj, const char *name, int required)
{
    const char *s;
    omh_time_t t;
    int has = member_string(obj, name, &s);
    return has < 0 || (has == 0 && required) || (has == 1 && parse_date_time(s, &t) != 0) ? -1 : 0;
}

static int read_provenance(const json_t *ap, omh_meta_t *m, char *why)
{
    const char *modality, *id;
    if (!json_is_object(ap))
        return snprintf(why, WHY_MAX, "header.acquisition_provenance is not an object"), -1;
    if (member_string(ap, "source_name", &m->source_name) != 1)
        return snprintf(why, WHY_MAX, "header.acquisition_provenance.source_name is %s",
                        json_object_get(ap, "source_name") ? "not a string" : "missing"),
               -1;
    if (member_string(ap, "modality", &modality) < 0 ||
        (modality && !in_list(modality, modalities)))
        return snprintf(why, WHY_MAX,
                        "header.acquisition_provenance.modality is not sensed or self-reported"),
               -1;
    m->self_reported = modality && !strcmp(modality, "self-reported");
    if (member_string(ap, "source_data_point_id", &id) < 0 ||
        check_date_time(ap, "source_creation_date_time", 0) != 0 ||
        check_date_time(ap, "source_last_modification_date_time", 0) != 0)
        return snprintf(why, WHY_MAX,
                        "header.acquisition_provenance: source_data_point_id is not a string or "
                        "a source date-time is not an RFC 3339 date-time"),
               -1;
    return 0;
}

/* Validates header-1.x; the schema named in *schema (NULL: not a measure). */
static int read_header(const json_t *h, omh_meta_t *m, const omh_schema_t **schema, char *why)
{
    const json_t *sid = json_object_get(h, "schema_id");
    const char *ns, *name, *version, *user;
    if (!json_is_object(h))
        return snprintf(why, WHY_MAX, "header is not an object"), -1;
    if (member_string(h, "id", &m->id) != 1 || strlen(m->id) >= 128)
        return snprintf(why, WHY_MAX,
                        "header.id is missing, not a string or longer than 127 "
                        "bytes"),
               -1;
    if (check_date_time(h, "creation_date_time", 1) != 0)
        return snprintf(why, WHY_MAX,
                        "header.creation_date_time is missing or not an RFC 3339 date-time"),
               -1;
    if (!json_is_object(sid) || member_string(sid, "namespace", &ns) != 1 ||
        member_string(sid, "name", &name) != 1 || member_string(sid, "version", &version) != 1)
        return snprintf(why, WHY_MAX,
                        "header.schema_id needs namespace, name and version "
                        "strings"),
               -1;
    if (member_string(h, "user_id", &user) < 0)
        return snprintf(why, WHY_MAX, "header.user_id is not a string"), -1;
    if (json_object_get(h, "acquisition_provenance") &&
        read_provenance(json_object_get(h, "acquisition_provenance"), m, why) != 0)
        return -1;
    m->major = digit(version[0]) ? atoi(version) : 0;
    *schema = strcmp(ns, "omh") ? NULL : schema_named(name);
    if (!*schema)
        return snprintf(why, WHY_MAX, "schema %.40s:%.60s is not a measure vitalog reads", ns,
                        name),
               -1;
    return 0;
}

static int do_data_point(walk_t *w, const json_t *dp, const char *prefix)
{
    const json_t *header = json_object_get(dp, "header"), *body = json_object_get(dp, "body");
    const omh_schema_t *schema = NULL;
    omh_meta_t meta;
    char path[128], why[WHY_MAX];
    snprintf(path, sizeof path, "%s/body", prefix);
    memset(&meta, 0, sizeof meta);
    if (!header)
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "a data point needs a header");
    if (!json_is_object(body))
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "a data point needs a body object");
    if (read_header(header, &meta, &schema, why) != 0)
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "%s", why);
    return do_body(w, schema, body, &meta, path);
}

/* ------------------------------------------------------------------------
 * Documents
 * ---------------------------------------------------------------------- */

/* The schema whose value key the body has; *n how many match. */
static const omh_schema_t *schema_of_body(const json_t *body, int *n)
{
    const omh_schema_t *found = NULL;
    *n = 0;
    for (const omh_schema_t *s = schemas; s->name; s++)
        if (json_object_get(body, s->key) || (s->key2 && json_object_get(body, s->key2))) {
            found = s;
            (*n)++;
        }
    return found;
}

/* One object: a data point or a bare body. 1 when it is neither. */
static int do_object(walk_t *w, const json_t *obj, const char *prefix)
{
    const omh_schema_t *s;
    char path[128];
    int n;
    if (json_object_get(obj, "header") || json_object_get(obj, "body"))
        return do_data_point(w, obj, prefix);
    s = schema_of_body(obj, &n);
    snprintf(path, sizeof path, "%s", prefix[0] ? prefix : "/");
    if (n > 1)
        return vl_ingest_reject(w->emit, w->ctx, NULL, path,
                                "the body has the values of several OMH measures: send one data "
                                "point each");
    return s ? do_body(w, s, obj, NULL, path) : 1;
}

int vl_ingest_omh(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                  void *ctx, vl_error_t *err)
{
    walk_t w = {o, emit, ctx};
    size_t i;
    const json_t *el;
    if (json_is_object(doc)) {
        int rc = do_object(&w, doc, "");
        if (rc == 1)
            return vl_error_set(err, 400, "structure", NULL,
                                "omh: not an Open mHealth data point or body (no header and no "
                                "known measure)");
        return rc;
    }
    if (!json_is_array(doc))
        return vl_error_set(err, 400, "structure", NULL, "omh: a document is an object or array");
    json_array_foreach (doc, i, el) {
        char prefix[32];
        int rc = 0;
        snprintf(prefix, sizeof prefix, "/%zu", i);
        if (json_is_object(el))
            rc = do_object(&w, el, prefix);
        if (!json_is_object(el) || rc == 1)
            rc = vl_ingest_reject(emit, ctx, NULL, prefix,
                                  "not an Open mHealth data point or body (no header and no "
                                  "known measure)");
        if (rc < 0)
            return -1;
    }
    return 0;
}
