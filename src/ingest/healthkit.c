/*
 * vitalog — ingest/healthkit.c: Apple HealthKit samples as JSON.
 *
 * DESIGN NOTES
 *
 * 1. The document. HealthKit has no JSON form of its own, so vitalog fixes
 *    one (docs/ingest.md "healthkit"), close to the HKSample properties and
 *    to the attributes of an Apple Health export.xml <Record> (the export
 *    reader, healthkit_xml.c, produces exactly this form):
 *      - one sample object (it has "type"), path "/";
 *      - an array of samples, paths "/0", "/1", ...;
 *      - {"samples": [...]}, paths "/samples/0", ...
 *    Anything else is not a HealthKit document (-1, 400). An element of a
 *    list that is not an object is rejected; an empty list gives nothing.
 *    A sample:
 *      {"type": "HKQuantityTypeIdentifierHeartRate", "unit": "count/min",
 *       "value": 72, "startDate": "...", "endDate": "...", "uuid": "...",
 *       "sourceName": "...", "sourceVersion": "...", "device": {...} | "...",
 *       "metadata": {...}}
 *    "value" is a JSON number or a numeric string (export.xml values are
 *    strings in the XML; the reader tags them as numbers). "sourceVersion",
 *    "creationDate" and "metadata" are accepted and not used by a reading.
 *
 * 2. Types and units: the table vl_ingest_healthkit_map below drives the
 *    walk (vl_ingest_map_find by type, then by type and unit): every type
 *    and unit accepted is a row; an unknown type or a unit not listed for
 *    its type is a rejection that names it. Facts from
 *    ../shared/data/wearables/healthkit: HealthKitOnFHIR's HKSampleMapping
 *    ("hkunit" -> UCUM "code": count/min -> /min, degC -> Cel, lb -> [lb_av],
 *    in -> [in_i], count -> kg/m2 for BMI, mmHg -> mm[Hg], ms -> ms) and
 *    microsoft/healthkit-to-fhir's DefaultObservationFactoryConfig (the same
 *    plus kg, cm). HKUnit strings for the other units of a dimension (g, m,
 *    ft, degF, Cal, kJ) are HKUnit's own unit strings. The unit named is the
 *    UCUM code of the unit the sample used; no conversion here.
 *      - HealthKit's "Cal" is the large (food) calorie: UCUM [Cal] (= kcal).
 *      - "st" (stone) is not accepted: src/fhir/ucum.c has no [stone_av].
 *      - Molar blood glucose: HealthKit writes the glucose molar mass into
 *        the unit, "mmol<180.1558800000541>/L" (export.xml; other libraries
 *        spell it "mmol<180.15588000005408>/L" or ".../l"): each spelling
 *        (and plain mmol/L) is a row, UCUM mmol/L, measure
 *        blood-glucose-molar. mg/dL is blood-glucose.
 *
 * 3. Oxygen saturation: HealthKit's "%" unit is a fraction (export.xml
 *    writes value="0.97" unit="%" for 97 %). The value is multiplied by 100
 *    by moving the decimal point two places in the text (exact: "0.97" ->
 *    "97", "0.955" -> "95.5", "1" -> "100") and given as UCUM %. A sample
 *    that was already in percent (97) thus becomes 9700 and is refused by
 *    the plausibility range downstream, never silently taken.
 *
 * 4. Blood pressure is a correlation, HKCorrelationTypeIdentifierBloodPressure
 *    with "objects": its systolic and diastolic quantity samples (unit
 *    mmHg). It is one blood-pressure reading: components systolic, diastolic;
 *    time, uuid, device and sourceName of the correlation (device and
 *    sourceName fall back to the systolic sample's). Other objects in the
 *    list are ignored. A systolic or diastolic sample on its own (outside a
 *    correlation) is rejected: half a panel is not a reading, and Apple
 *    never stores one alone (the export reader does not pass the
 *    top-level copies of correlation members, healthkit_xml.c).
 *
 * 5. Sleep: HKCategoryTypeIdentifierSleepAnalysis with an asleep value
 *    (HKCategoryValueSleepAnalysisAsleep, ...AsleepUnspecified, ...Core,
 *    ...Deep, ...REM, or their raw integers 1, 3, 4, 5) is a sleep-duration
 *    reading whose value is end - start, exact: in min when the duration is
 *    a finite decimal number of minutes (a multiple of 3 us, so always for
 *    whole minutes), else in s (UCUM s converts to min downstream); the
 *    stage goes into the note. In bed (0) and awake (2) are not sleep:
 *    skipped without a rejection. Another value is rejected. Durations are
 *    computed to the microsecond (more fraction digits are truncated).
 *
 * 6. Dates: ISO 8601 with an offset ("2024-03-01T08:00:00-05:00", "...Z",
 *    "...-0500", fractions kept), or export.xml's "2016-05-31 23:44:56
 *    +0100", rewritten as "2016-05-31T23:44:56+01:00" (offset kept). A date
 *    without an offset is a local time: resolved with the tz option
 *    (vl_ingest_local_time), else rejected. startDate == endDate (the same
 *    instant) is an instant (start only); otherwise a period; end before
 *    start is rejected. The time_rule of a row says what HealthKit usually
 *    writes for that type ("instant": a point sample, "period": a sum over
 *    an interval); the dates decide.
 *
 * 7. Identity: record_id is the sample's "uuid" (export.xml has none: the
 *    identity is then format, device, measure and time). source_name is
 *    "sourceName". The device is a JSON object (name, manufacturer, model,
 *    hardwareVersion, softwareVersion, firmwareVersion, localIdentifier,
 *    udiDeviceIdentifier: HKDevice's properties) or export.xml's string
 *    "<<HKDevice: 0x283c0d7c0>, name:Apple Watch, manufacturer:Apple,
 *    model:Watch, hardware:Watch3,4, software:5.1.2>" (the pointer is
 *    ignored; a field runs up to the next ", key:", so "Watch3,4" stays
 *    whole; a string of another shape is the device name). Mapped: name,
 *    manufacturer; model = the hardware version when there is one (Apple's
 *    model identifier, "Watch3,4") else the model ("Watch"); version = the
 *    software version, else the firmware version; serial = the UDI device
 *    identifier, else the local identifier.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest_internal.h"

#define HKQ "HKQuantityTypeIdentifier"
#define HK_BP "HKCorrelationTypeIdentifierBloodPressure"
#define HK_SYS HKQ "BloodPressureSystolic"
#define HK_DIA HKQ "BloodPressureDiastolic"
#define HK_SLEEP "HKCategoryTypeIdentifierSleepAnalysis"

const vl_ingest_mapping_t vl_ingest_healthkit_map[] = {
    {HKQ "HeartRate", "heart-rate", "count/min", "/min", "instant"},
    {HKQ "RestingHeartRate", "resting-heart-rate", "count/min", "/min", "instant"},
    {HKQ "RespiratoryRate", "respiratory-rate", "count/min", "/min", "instant"},
    {HKQ "OxygenSaturation", "oxygen-saturation", "%", "%", "instant"}, /* x 100, note 3 */
    {HKQ "BodyTemperature", "body-temperature", "degC", "Cel", "instant"},
    {HKQ "BodyTemperature", "body-temperature", "degF", "[degF]", "instant"},
    {HKQ "BodyMass", "body-weight", "kg", "kg", "instant"},
    {HKQ "BodyMass", "body-weight", "g", "g", "instant"},
    {HKQ "BodyMass", "body-weight", "lb", "[lb_av]", "instant"},
    {HKQ "BodyMass", "body-weight", "oz", "[oz_av]", "instant"},
    {HKQ "Height", "body-height", "cm", "cm", "instant"},
    {HKQ "Height", "body-height", "m", "m", "instant"},
    {HKQ "Height", "body-height", "mm", "mm", "instant"},
    {HKQ "Height", "body-height", "in", "[in_i]", "instant"},
    {HKQ "Height", "body-height", "ft", "[ft_i]", "instant"},
    {HKQ "BodyMassIndex", "body-mass-index", "count", "kg/m2", "instant"},
    {HK_BP, "blood-pressure", "", "", "instant"},
    {HK_SYS, "blood-pressure", "mmHg", "mm[Hg]", "instant"}, /* in a correlation only */
    {HK_DIA, "blood-pressure", "mmHg", "mm[Hg]", "instant"}, /* in a correlation only */
    {HKQ "BloodGlucose", "blood-glucose", "mg/dL", "mg/dL", "instant"},
    {HKQ "BloodGlucose", "blood-glucose-molar", "mmol<180.1558800000541>/L", "mmol/L", "instant"},
    {HKQ "BloodGlucose", "blood-glucose-molar", "mmol<180.15588000005408>/L", "mmol/L", "instant"},
    {HKQ "BloodGlucose", "blood-glucose-molar", "mmol<180.15588000005408>/l", "mmol/L", "instant"},
    {HKQ "BloodGlucose", "blood-glucose-molar", "mmol/L", "mmol/L", "instant"},
    {HKQ "StepCount", "step-count", "count", "{steps}", "period"},
    {HKQ "ActiveEnergyBurned", "calories-burned", "kcal", "kcal", "period"},
    {HKQ "ActiveEnergyBurned", "calories-burned", "Cal", "[Cal]", "period"},
    {HKQ "ActiveEnergyBurned", "calories-burned", "cal", "cal", "period"},
    {HKQ "ActiveEnergyBurned", "calories-burned", "kJ", "kJ", "period"},
    {HKQ "ActiveEnergyBurned", "calories-burned", "J", "J", "period"},
    {HKQ "HeartRateVariabilitySDNN", "heart-rate-variability", "ms", "ms", "instant"},
    /* the value is end - start (note 5): in min when exact, else in s */
    {HK_SLEEP, "sleep-duration", "", "min", "period"},
    {HK_SLEEP, "sleep-duration", "", "s", "period"},
    {.source = NULL},
};

/* Samples whose value is scaled by a power of ten (note 3). */
static const struct {
    const char *type, *unit;
    int shift; /* the decimal point moves this many places to the right */
} hk_scaled[] = {
    {HKQ "OxygenSaturation", "%", 2},
};

/* HKCategoryValueSleepAnalysis: name, raw value, stage (NULL: not asleep). */
static const struct {
    const char *name, *raw, *stage;
} hk_sleep_values[] = {
    {"HKCategoryValueSleepAnalysisInBed", "0", NULL},
    {"HKCategoryValueSleepAnalysisAsleep", "1", "asleep"},
    {"HKCategoryValueSleepAnalysisAsleepUnspecified", "1", "asleep"},
    {"HKCategoryValueSleepAnalysisAwake", "2", NULL},
    {"HKCategoryValueSleepAnalysisAsleepCore", "3", "core"},
    {"HKCategoryValueSleepAnalysisAsleepDeep", "4", "deep"},
    {"HKCategoryValueSleepAnalysisAsleepREM", "5", "REM"},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* One walk's options and receiver. */
typedef struct hk_walk {
    const vl_ingest_options_t *o;
    vl_ingest_emit_fn emit;
    void *ctx;
} hk_walk_t;

/* What a sample function found: a reading, nothing by design, or a
 * rejection (`why` filled). */
enum { HK_OK = 0, HK_SKIP = 1, HK_REJECT = -1 };

static int fail(char *why, size_t cap, const char *fmt, ...) VL_PRINTF(3, 4);

static int fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return HK_REJECT;
}

/* The string member `key` of `o`, or NULL. */
static const char *hk_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* Copies n bytes of src, trimmed of blanks, truncated to fit. */
static void copy_trim(char *dst, size_t cap, const char *src, size_t n)
{
    while (n && isspace((unsigned char)*src)) {
        src++;
        n--;
    }
    while (n && isspace((unsigned char)src[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (src)
        copy_trim(dst, cap, src, strlen(src));
}

/* ------------------------------------------------------------------------
 * Decimal text
 * ---------------------------------------------------------------------- */

/* Moves the decimal point of `in` (JSON number grammar, exponent allowed)
 * `k` places to the right into plain decimal text, exactly: the digits
 * stay, only the point moves. 0, or -1 if it does not fit. */
static int shift_point(const char *in, int k, char *out, size_t cap)
{
    char digits[48];
    size_t nd = 0, len = 0, lead = 0;
    long point = -1, exp = 0;
    const char *p = in;
    int neg = *p == '-';
    p += neg;
    for (; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            point = (long)nd;
            continue;
        }
        if (nd + 1 >= sizeof digits)
            return -1;
        digits[nd++] = *p;
    }
    if (point < 0)
        point = (long)nd;
    if (*p) {
        exp = strtol(p + 1, NULL, 10);
        if (exp < -30 || exp > 30)
            return -1;
    }
    point += k + exp; /* the point now sits before digits[point] */
    while ((long)lead + 1 < point && (lead >= nd || digits[lead] == '0'))
        lead++; /* leading zeros of the integer part (the padding ones too) */
    if (neg)
        out[len++] = '-';
    if (point <= (long)lead) {
        out[len++] = '0';
    } else {
        for (long i = (long)lead; i < point; i++) {
            if (len + 1 >= cap)
                return -1;
            out[len++] = i < (long)nd ? digits[i] : '0';
        }
    }
    if (point < (long)nd) {
        out[len++] = '.';
        for (long i = point; i < (long)nd; i++) {
            if (len + 1 >= cap)
                return -1;
            out[len++] = i < 0 ? '0' : digits[i];
        }
    }
    if (len >= cap)
        return -1;
    out[len] = '\0';
    return 0;
}

/* Minutes (or, when not a finite decimal, seconds) of `us` microseconds,
 * exactly. Sets *unit to "min" or "s". */
static void duration_text(int64_t us, char out[40], const char **unit)
{
    int64_t whole, frac;
    int digits;
    if (us % 3 == 0) { /* us / 60e6 = us * 5 / 3 / 1e8: a finite decimal */
        int64_t e8 = us / 3 * 5;
        whole = e8 / 100000000;
        frac = e8 % 100000000;
        digits = 8;
        *unit = "min";
    } else {
        whole = us / 1000000;
        frac = us % 1000000;
        digits = 6;
        *unit = "s";
    }
    if (!frac) {
        snprintf(out, 40, "%lld", (long long)whole);
        return;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(out, 40, "%lld.%0*lld", (long long)whole, digits, (long long)frac);
}

/* ------------------------------------------------------------------------
 * Dates
 * ---------------------------------------------------------------------- */

enum { DATE_OK = 0, DATE_BAD = -1, DATE_NEEDS_TZ = -2 };

/* `p` matches `pattern` ('d' a digit, anything else itself). */
static int matches(const char *p, const char *pattern)
{
    for (; *pattern; p++, pattern++)
        if (*pattern == 'd' ? !isdigit((unsigned char)*p) : *p != *pattern)
            return 0;
    return 1;
}

/* Rewrites a HealthKit date (note 6) as an ISO 8601 date-time with its
 * offset into `out`; *us receives the instant. */
static int hk_date(const char *in, const vl_ingest_options_t *o, char out[40], int64_t *us)
{
    char local[40];
    const char *p = in;
    size_t n = 19, f = 1;
    int64_t hi;
    int prec;
    if (!in || !matches(p, "dddd-dd-dd") || (p[10] != 'T' && p[10] != ' ') ||
        !matches(p + 11, "dd:dd:dd"))
        return DATE_BAD;
    memcpy(local, p, n);
    local[10] = 'T';
    p += n;
    if (*p == '.') {
        while (isdigit((unsigned char)p[f]))
            f++;
        if (f == 1 || f > 10)
            return DATE_BAD;
        memcpy(local + n, p, f);
        n += f;
        p += f;
    }
    local[n] = '\0';
    if (*p == ' ')
        p++; /* export.xml: "2016-05-31 23:44:56 +0100" */
    if (!*p) {
        if (!o->tz || vl_ingest_local_time(local, o->tz, out) < 0)
            return DATE_NEEDS_TZ;
    } else if (p[0] == 'Z' && !p[1]) {
        snprintf(out, 40, "%.30sZ", local);
    } else if ((*p == '+' || *p == '-') &&
               ((matches(p + 1, "dd:dd") && !p[6]) || (matches(p + 1, "dddd") && !p[5]))) {
        const char *m = p[3] == ':' ? p + 4 : p + 3;
        snprintf(out, 40, "%.30s%c%c%c:%c%c", local, p[0], p[1], p[2], m[0], m[1]);
    } else {
        return DATE_BAD;
    }
    if (vl_time_parse_range(out, us, &hi, &prec) < 0 || prec != 4)
        return DATE_BAD;
    return DATE_OK;
}

static int date_why(int rc, const char *field, const char *text, char *why, size_t cap)
{
    if (rc == DATE_NEEDS_TZ)
        return fail(why, cap,
                    "%s \"%s\" has no UTC offset: a tz parameter (or the patient's zone) is "
                    "needed",
                    field, text);
    return fail(why, cap, "%s \"%s\" is not an ISO 8601 date-time with an offset", field,
                text ? text : "(missing or not a string)");
}

/* Sets r->start (and r->end, unless both dates are one instant) from the
 * dates of `s`; *dur_us (may be NULL) receives end - start. */
static int hk_times(const hk_walk_t *w, const json_t *s, vl_ingest_reading_t *r, int64_t *dur_us,
                    char *why, size_t cap)
{
    const char *start = hk_str(s, "startDate"), *end = hk_str(s, "endDate");
    int64_t t0 = 0, t1 = 0;
    int rc;
    if ((rc = hk_date(start, w->o, r->start, &t0)) != DATE_OK)
        return date_why(rc, "startDate", start, why, cap);
    if (!end && json_object_get(s, "endDate")) {
        return date_why(DATE_BAD, "endDate", NULL, why, cap);
    } else if (!end) {
        t1 = t0; /* a sample with one date is an instant */
    } else if ((rc = hk_date(end, w->o, r->end, &t1)) != DATE_OK) {
        return date_why(rc, "endDate", end, why, cap);
    }
    if (t1 < t0)
        return fail(why, cap, "endDate \"%s\" is before startDate \"%s\"", end, start);
    if (t1 == t0)
        r->end[0] = '\0';
    if (dur_us)
        *dur_us = t1 - t0;
    return HK_OK;
}

/* ------------------------------------------------------------------------
 * Devices and sources
 * ---------------------------------------------------------------------- */

/* HKDevice's properties, from a JSON object or export.xml's string. */
typedef struct hk_dev {
    char name[96], manufacturer[64], model[64], hardware[64], software[48], firmware[48], local[96],
        udi[96];
} hk_dev_t;

/* The field of `d` named `key` (klen bytes; both spellings of note 7). */
static char *dev_field(hk_dev_t *d, const char *key, size_t klen, size_t *cap)
{
    static const struct {
        const char *json, *xml;
        size_t off, cap;
    } fields[] = {
#define F(j, x, m) {j, x, offsetof(hk_dev_t, m), sizeof(((hk_dev_t *)0)->m)}
        F("name", "name", name),
        F("manufacturer", "manufacturer", manufacturer),
        F("model", "model", model),
        F("hardwareVersion", "hardware", hardware),
        F("softwareVersion", "software", software),
        F("firmwareVersion", "firmware", firmware),
        F("localIdentifier", "localIdentifier", local),
        F("udiDeviceIdentifier", "UDIDeviceIdentifier", udi),
#undef F
    };
    for (size_t i = 0; i < N_OF(fields); i++)
        if ((strlen(fields[i].json) == klen && !strncasecmp(fields[i].json, key, klen)) ||
            (strlen(fields[i].xml) == klen && !strncasecmp(fields[i].xml, key, klen))) {
            *cap = fields[i].cap;
            return (char *)d + fields[i].off;
        }
    return NULL;
}

/* Length of a "key:" at p (letters and spaces, then ':'), 0 if none. */
static size_t key_len(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && (isalpha((unsigned char)p[n]) || (n && p[n] == ' ')))
        n++;
    return n && p + n < end && p[n] == ':' ? n : 0;
}

/* Where the value starting at v ends: at the next ", key:" or at end. */
static const char *value_end(const char *v, const char *end)
{
    for (const char *q = v; q + 1 < end; q++)
        if (q[0] == ',' && q[1] == ' ' && key_len(q + 2, end))
            return q;
    return end;
}

/* export.xml's device string (note 7). */
static void dev_from_string(const char *s, hk_dev_t *d)
{
    const char *p = s, *end = s + strlen(s);
    if (!strncmp(p, "<<HKDevice:", 11)) {
        const char *q = strchr(p + 2, '>');
        if (!q)
            return;
        p = q + 1;
        if (end > p && end[-1] == '>')
            end--;
    } else if (!key_len(p, end)) {
        copy_str(d->name, sizeof d->name, s);
        return;
    }
    while (p < end) {
        size_t klen, cap = 0;
        const char *v, *ve;
        char *dst;
        while (p < end && (*p == ',' || *p == ' '))
            p++;
        if (!(klen = key_len(p, end)))
            break;
        v = p + klen + 1;
        ve = value_end(v, end);
        if ((dst = dev_field(d, p, klen, &cap)) != NULL)
            copy_trim(dst, cap, v, (size_t)(ve - v));
        p = ve;
    }
}

static void dev_from_object(const json_t *o, hk_dev_t *d)
{
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)o, key, v) {
        size_t cap = 0;
        char *dst = dev_field(d, key, strlen(key), &cap);
        if (dst && vl_json_is_string(v))
            copy_str(dst, cap, json_string_value(v));
    }
}

static void hk_device(const json_t *v, vl_ingest_device_t *out)
{
    hk_dev_t d;
    memset(&d, 0, sizeof d);
    if (json_is_object(v))
        dev_from_object(v, &d);
    else if (vl_json_is_string(v))
        dev_from_string(json_string_value(v), &d);
    else
        return;
    copy_str(out->name, sizeof out->name, d.name);
    copy_str(out->manufacturer, sizeof out->manufacturer, d.manufacturer);
    copy_str(out->model, sizeof out->model, d.hardware[0] ? d.hardware : d.model);
    copy_str(out->version, sizeof out->version, d.software[0] ? d.software : d.firmware);
    copy_str(out->serial, sizeof out->serial, d.udi[0] ? d.udi : d.local);
}

static int device_empty(const vl_ingest_device_t *d)
{
    return !d->name[0] && !d->manufacturer[0] && !d->model[0] && !d->serial[0] && !d->version[0];
}

/* Device and source of `s` where r has none yet; the record id too when
 * `with_id`. */
static void hk_origin(const json_t *s, vl_ingest_reading_t *r, int with_id)
{
    if (with_id)
        copy_str(r->record_id, sizeof r->record_id, hk_str(s, "uuid"));
    if (!r->source_name[0])
        copy_str(r->source_name, sizeof r->source_name, hk_str(s, "sourceName"));
    if (device_empty(&r->device))
        hk_device(json_object_get(s, "device"), &r->device);
}

/* ------------------------------------------------------------------------
 * Samples
 * ---------------------------------------------------------------------- */

/* Value `i` of r from quantity sample `q` of `type`. */
static int hk_value(const json_t *q, const char *type, vl_ingest_reading_t *r, size_t i, char *why,
                    size_t cap)
{
    const char *unit = hk_str(q, "unit"), *value;
    const vl_ingest_mapping_t *row =
        vl_ingest_map_find(vl_ingest_healthkit_map, type, unit ? unit : "");
    char scaled[40];
    if (!row)
        return fail(why, cap, "unit \"%s\" is not a unit of %s", unit ? unit : "(none)", type);
    if (!json_object_get(q, "value"))
        return fail(why, cap, "%s without a value", type);
    if (!(value = vl_ingest_number_text(json_object_get(q, "value"))))
        return fail(why, cap, "the value of %s is not a number", type);
    for (size_t k = 0; k < N_OF(hk_scaled); k++)
        if (!strcmp(hk_scaled[k].type, type) && unit && !strcmp(hk_scaled[k].unit, unit)) {
            if (shift_point(value, hk_scaled[k].shift, scaled, sizeof scaled) < 0)
                return fail(why, cap, "the value %s of %s is too long", value, type);
            value = scaled;
        }
    if (i == 0 && r->measure && strcmp(r->measure->key, row->measure))
        r->measure = vl_ingest_measure(row->measure); /* blood glucose: by unit */
    if (vl_ingest_set_value(r, i, value, row->ucum, unit) < 0)
        return fail(why, cap, "the value %s of %s is not a finite decimal", value, type);
    return HK_OK;
}

static int hk_quantity(const hk_walk_t *w, const json_t *s, const char *type,
                       vl_ingest_reading_t *r, char *why, size_t cap)
{
    if (hk_value(s, type, r, 0, why, cap) < 0)
        return HK_REJECT;
    return hk_times(w, s, r, NULL, why, cap);
}

static int hk_sleep(const hk_walk_t *w, const json_t *s, vl_ingest_reading_t *r, char *why,
                    size_t cap)
{
    const json_t *v = json_object_get(s, "value");
    const char *text = vl_json_number_text(v), *unit = NULL;
    char value[40];
    int64_t dur = 0;
    size_t k;
    if (!text)
        text = hk_str(s, "value");
    if (!text)
        return fail(why, cap, "a sleep analysis sample without a value");
    for (k = 0; k < N_OF(hk_sleep_values); k++)
        if (!strcmp(text, hk_sleep_values[k].name) || !strcmp(text, hk_sleep_values[k].raw))
            break;
    if (k == N_OF(hk_sleep_values))
        return fail(why, cap, "unknown sleep analysis value \"%s\"", text);
    if (!hk_sleep_values[k].stage)
        return HK_SKIP; /* in bed, awake: not sleep (note 5) */
    if (hk_times(w, s, r, &dur, why, cap) < 0)
        return HK_REJECT;
    duration_text(dur, value, &unit);
    if (vl_ingest_set_value(r, 0, value, unit, "") < 0)
        return fail(why, cap, "a sleep period too long to count");
    snprintf(r->note, sizeof r->note, "sleep stage: %s", hk_sleep_values[k].stage);
    return HK_OK;
}

/* The member of a correlation's objects whose type is `type`. */
static int hk_member(const json_t *objects, const char *type, const json_t **out, char *why,
                     size_t cap)
{
    size_t i;
    const json_t *m;
    *out = NULL;
    json_array_foreach ((json_t *)objects, i, m) {
        const char *t = hk_str(m, "type");
        if (!t || strcmp(t, type))
            continue;
        if (*out)
            return fail(why, cap, "a blood pressure correlation with two %s samples", type);
        *out = m;
    }
    if (!*out)
        return fail(why, cap, "a blood pressure correlation without its %s sample", type);
    return HK_OK;
}

static int hk_correlation(const hk_walk_t *w, const json_t *s, vl_ingest_reading_t *r, char *why,
                          size_t cap)
{
    const json_t *objects = json_object_get(s, "objects"), *sys, *dia;
    if (!json_is_array(objects))
        return fail(why, cap, "a blood pressure correlation without its \"objects\"");
    if (hk_member(objects, HK_SYS, &sys, why, cap) < 0 ||
        hk_member(objects, HK_DIA, &dia, why, cap) < 0 ||
        hk_value(sys, HK_SYS, r, 0, why, cap) < 0 || hk_value(dia, HK_DIA, r, 1, why, cap) < 0)
        return HK_REJECT;
    hk_origin(sys, r, 0);
    return hk_times(w, json_object_get(s, "startDate") ? s : sys, r, NULL, why, cap);
}

/* One sample at `path`: emits its reading or its rejection. */
static int hk_sample(const hk_walk_t *w, const json_t *s, const char *path)
{
    vl_ingest_reading_t r;
    const vl_ingest_mapping_t *row;
    const char *type = hk_str(s, "type");
    char why[256] = "";
    int rc;
    if (!json_is_object(s))
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "a HealthKit sample is an object");
    if (!type)
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "a sample without a \"type\"");
    if (!(row = vl_ingest_map_find(vl_ingest_healthkit_map, type, NULL)))
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "unknown HealthKit type %s", type);
    vl_ingest_reading_init(&r, row->measure, path);
    hk_origin(s, &r, 1);
    if (!strcmp(type, HK_BP))
        rc = hk_correlation(w, s, &r, why, sizeof why);
    else if (!strcmp(type, HK_SYS) || !strcmp(type, HK_DIA))
        rc = fail(why, sizeof why, "%s: a blood pressure component outside its correlation", type);
    else if (!strcmp(type, HK_SLEEP))
        rc = hk_sleep(w, s, &r, why, sizeof why);
    else
        rc = hk_quantity(w, s, type, &r, why, sizeof why);
    if (rc == HK_SKIP)
        return 0;
    if (rc == HK_REJECT)
        return vl_ingest_reject(w->emit, w->ctx, row->measure, path, "%s", why);
    return w->emit(w->ctx, &r, NULL);
}

static int hk_list(const hk_walk_t *w, const json_t *list, const char *prefix)
{
    size_t i;
    const json_t *s;
    json_array_foreach ((json_t *)list, i, s) {
        char path[64];
        snprintf(path, sizeof path, "%s/%zu", prefix, i);
        if (hk_sample(w, s, path) < 0)
            return -1;
    }
    return 0;
}

int vl_ingest_healthkit(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                        void *ctx, vl_error_t *err)
{
    static const vl_ingest_options_t none = {NULL};
    hk_walk_t w = {o ? o : &none, emit, ctx};
    const json_t *list = json_object_get(doc, "samples");
    if (json_is_array(doc))
        return hk_list(&w, doc, "");
    if (json_is_object(doc) && list) {
        if (!json_is_array(list))
            return vl_error_set(err, 400, "structure", "samples",
                                "healthkit: \"samples\" is an array of samples");
        return hk_list(&w, list, "/samples");
    }
    if (json_is_object(doc) && json_object_get(doc, "type"))
        return hk_sample(&w, doc, "/") < 0 ? -1 : 0;
    return vl_error_set(err, 400, "structure", NULL,
                        "not a HealthKit document: a sample (an object with \"type\"), an array "
                        "of samples or {\"samples\": [...]}");
}
