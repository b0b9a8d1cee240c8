/*
 * vitalog — ingest/dexcom.c: Dexcom API v3 estimated glucose values (the
 * response of GET /v3/users/self/egvs), each record one CGM sensor reading.
 *
 * DESIGN NOTES
 *
 * 1. Sources: the Dexcom developer documentation,
 *    developer.dexcom.com/docs/dexcomv3/operation/getEstimatedGlucoseValuesV3
 *    (the response: recordType "egv", recordVersion "3.0", userId,
 *    records[] with recordId, systemTime, displayTime, transmitterId,
 *    transmitterTicks, value, status, trend, trendRate, unit, rateUnit,
 *    displayDevice, transmitterGeneration, displayApp; unit "mg/dL",
 *    "mmol/L" or "unknown"), its Endpoint Overview ("systemTime is the UTC
 *    time according to the device, whereas displayTime is the time being
 *    shown on the device to the user"), and the HL7 CGM IG
 *    (../shared/data/fhir/cgm-ig/profiles.fsh: a sensor reading is 99504-3
 *    mg/dL or 105272-9 mmol/L, and "must have a valueQuantity or a
 *    dataAbsentReason").
 *
 * 2. The document must be such a response: recordType "egv" and a
 *    recordVersion 3 or 3.x, with a records array; anything else is not of
 *    the format (-1, 400), including the other v3 record types
 *    (calibration, event, alert, device, dataRange): only EGVs are taken.
 *    userId is Dexcom's per-client id of the user, not used (the patient
 *    comes from the request). An empty records array gives nothing.
 *
 * 3. Time: systemTime, which the docs define as UTC. The egvs page says
 *    records from the mobile apps (displayDevice "iOS", "android") carry
 *    UTC offsets and records from receivers do not: a systemTime with a
 *    zone is kept as sent, one without is UTC and gets "Z"
 *    ("2024-03-01T08:00:00" -> "2024-03-01T08:00:00Z"). This is the one
 *    place where a time without a zone is read as UTC, because the source
 *    documents it so. displayTime (user-configurable, may be shifted by
 *    hand) is not used.
 *
 * 4. Value: `value` in `unit`, kept as sent (mg/dL -> cgm-glucose, mmol/L
 *    -> cgm-glucose-molar, from vl_ingest_dexcom_map; "unknown" or any
 *    other unit is a rejection). status "high" / "low" means the glucose is
 *    beyond the sensor's range (Dexcom reports above 400 / below 40 mg/dL
 *    so, with value null or the limit): the reading has no value
 *    (n_values 0) and interpretation "H" / "L", never the limit as a
 *    number; the fhir layer writes the dataAbsentReason. status null, "ok"
 *    or "unknown" with a number is a plain reading; a null value without
 *    high/low is a rejection, as is an unlisted status.
 *
 * 5. trend and trendRate are a rate of change, not a glucose value: not
 *    stored as values, only kept in `note` ("trend singleUp, 2.1
 *    mg/dL/min"; "none" and unlisted trends are left out). transmitterTicks
 *    is not used.
 *
 * 6. Identity and origin: record_id is recordId. The device is the CGM:
 *    manufacturer "Dexcom", model the transmitterGeneration with its "g"
 *    upper-cased ("g7" -> "G7", "g6+" -> "G6+"; "dexcomPro" -> "Pro";
 *    "unknown" none), serial the transmitterId (a G7 has one per sensor),
 *    name "Dexcom G7 (iOS)" with the displayDevice. source_name is
 *    displayApp when present.
 *
 * 7. Paths are JSON pointers: "/records/3".
 */
#include <stdio.h>
#include <string.h>

#include "ingest_internal.h"

const vl_ingest_mapping_t vl_ingest_dexcom_map[] = {
    {"egv", "cgm-glucose", "mg/dL", "mg/dL", "instant"},
    {"egv", "cgm-glucose-molar", "mmol/L", "mmol/L", "instant"},
    {NULL, NULL, NULL, NULL, NULL},
};

#define WHY 200

typedef struct dx_walk {
    vl_ingest_emit_fn emit;
    void *ctx;
} dx_walk_t;

static const char *dx_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* systemTime -> r->start (DESIGN NOTES 3). */
static int dx_time(const char *s, char out[40])
{
    int64_t lo, hi;
    int prec;
    const char *t;
    if (!s || strlen(s) > 33 || vl_time_parse_range(s, &lo, &hi, &prec) < 0 || prec != 4)
        return -1;
    t = strchr(s, 'T');
    if (strchr(t, 'Z') || strchr(t, '+') || strchr(t, '-'))
        snprintf(out, 40, "%s", s);
    else
        snprintf(out, 40, "%sZ", s);
    return 0;
}

static void dx_device(vl_ingest_reading_t *r, const json_t *rec)
{
    const char *gen = dx_str(rec, "transmitterGeneration"), *tx = dx_str(rec, "transmitterId");
    const char *dd = dx_str(rec, "displayDevice");
    vl_ingest_device_t *d = &r->device;
    snprintf(d->manufacturer, sizeof d->manufacturer, "Dexcom");
    if (gen && gen[0] == 'g' && gen[1] >= '0' && gen[1] <= '9')
        snprintf(d->model, sizeof d->model, "G%s", gen + 1);
    else if (gen && !strcmp(gen, "dexcomPro"))
        snprintf(d->model, sizeof d->model, "Pro");
    else if (gen && *gen && strcmp(gen, "unknown") != 0)
        snprintf(d->model, sizeof d->model, "%s", gen);
    snprintf(d->serial, sizeof d->serial, "%s", tx ? tx : "");
    snprintf(d->name, sizeof d->name, "Dexcom%s%s%s%s%s", d->model[0] ? " " : "", d->model,
             dd && *dd ? " (" : "", dd && *dd ? dd : "", dd && *dd ? ")" : "");
}

/* The trend note (DESIGN NOTES 5). */
static void dx_trend(vl_ingest_reading_t *r, const json_t *rec)
{
    static const char *const trends[] = {
        "unknown",       "doubleUp",   "singleUp",   "fortyFiveUp",   "flat",
        "fortyFiveDown", "singleDown", "doubleDown", "notComputable", "rateOutOfRange",
    };
    const char *trend = dx_str(rec, "trend"), *rate, *unit = dx_str(rec, "rateUnit");
    int known = 0;
    for (size_t i = 0; trend && i < sizeof trends / sizeof trends[0]; i++)
        known |= !strcmp(trend, trends[i]);
    if (!known)
        return;
    rate = vl_json_number_text(json_object_get(rec, "trendRate"));
    if (unit && (!strcmp(unit, "unknown") || strlen(unit) > 16))
        unit = NULL;
    snprintf(r->note, sizeof r->note, "trend %s%s%s%s%s", trend, rate ? ", " : "", rate ? rate : "",
             rate && unit ? " " : "", rate && unit ? unit : "");
}

/* status -> 0 (a plain reading), 'H' or 'L'; -1 unlisted. */
static int dx_status(const json_t *v)
{
    const char *s = vl_json_is_string(v) ? json_string_value(v) : NULL;
    if (!v || json_is_null(v) || (s && (!strcmp(s, "ok") || !strcmp(s, "unknown"))))
        return 0;
    if (s && !strcmp(s, "high"))
        return 'H';
    if (s && !strcmp(s, "low"))
        return 'L';
    return -1;
}

static int dx_record(const dx_walk_t *w, const json_t *rec, const char *path)
{
    const vl_ingest_mapping_t *row;
    const json_t *value = json_object_get(rec, "value");
    const char *unit = dx_str(rec, "unit"), *id = dx_str(rec, "recordId"), *num, *app;
    vl_ingest_reading_t r;
    int status;
    if (!json_is_object(rec))
        return vl_ingest_reject(w->emit, w->ctx, NULL, path, "an EGV record is a JSON object");
    row = vl_ingest_map_find(vl_ingest_dexcom_map, "egv", unit ? unit : "");
    if (!row)
        return vl_ingest_reject(w->emit, w->ctx, NULL, path,
                                "unit \"%.24s\" is not mg/dL or mmol/L", unit ? unit : "(none)");
    vl_ingest_reading_init(&r, row->measure, path);
    if (dx_time(dx_str(rec, "systemTime"), r.start) < 0)
        return vl_ingest_reject(w->emit, w->ctx, row->measure, path,
                                "systemTime is missing or not an ISO 8601 date-time");
    status = dx_status(json_object_get(rec, "status"));
    if (status < 0)
        return vl_ingest_reject(w->emit, w->ctx, row->measure, path,
                                "status is not null, \"ok\", \"unknown\", \"high\" or \"low\"");
    if (status) {
        r.interpretation = status == 'H' ? "H" : "L"; /* no value (DESIGN NOTES 4) */
    } else if (!value || json_is_null(value)) {
        return vl_ingest_reject(w->emit, w->ctx, row->measure, path,
                                "value is null and status is not high or low");
    } else if (!(num = vl_ingest_number_text(value)) ||
               vl_ingest_set_value(&r, 0, num, row->ucum, row->source_unit) < 0) {
        return vl_ingest_reject(w->emit, w->ctx, row->measure, path, "value is not a number");
    }
    if (id && snprintf(r.record_id, sizeof r.record_id, "%s", id) >= (int)sizeof r.record_id)
        return vl_ingest_reject(w->emit, w->ctx, row->measure, path, "recordId is too long");
    app = dx_str(rec, "displayApp");
    snprintf(r.source_name, sizeof r.source_name, "%s", app ? app : "");
    dx_device(&r, rec);
    dx_trend(&r, rec);
    return w->emit(w->ctx, &r, NULL);
}

int vl_ingest_dexcom(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                     void *ctx, vl_error_t *err)
{
    const char *type = dx_str(doc, "recordType"), *version = dx_str(doc, "recordVersion");
    const json_t *records = json_object_get(doc, "records"), *rec;
    dx_walk_t w = {emit, ctx};
    size_t i;
    (void)o; /* systemTime is UTC: no zone needed */
    if (!type || !json_is_array(records))
        return vl_error_set(err, 400, "structure", NULL,
                            "a dexcom document is a Dexcom API v3 egvs response "
                            "({\"recordType\": \"egv\", \"recordVersion\": \"3.0\", "
                            "\"records\": [...]})");
    if (strcmp(type, "egv") != 0)
        return vl_error_set(err, 400, "not-supported", NULL,
                            "Dexcom \"%.32s\" records are not taken: only estimated glucose "
                            "values (GET /v3/users/self/egvs, recordType \"egv\")",
                            type);
    if (!version || version[0] != '3' || (version[1] && version[1] != '.'))
        return vl_error_set(err, 400, "not-supported", NULL,
                            "Dexcom recordVersion \"%.16s\" is not taken: only 3.x",
                            version ? version : "(none)");
    json_array_foreach (records, i, rec) {
        char path[40];
        snprintf(path, sizeof path, "/records/%zu", i);
        if (dx_record(&w, rec, path) < 0)
            return -1;
    }
    return 0;
}
