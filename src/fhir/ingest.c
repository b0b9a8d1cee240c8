/*
 * vitalog — fhir/ingest.c: POST /fhir/Observation/$ingest, device readings
 * in their vendors' shapes turned into vital-sign Observations, once.
 *
 * DESIGN NOTES
 *
 * 1. Flow. The body is one document (application/json) or one document per
 *    line (application/x-ndjson). Each document goes through the format's
 *    normalizer (src/ingest), which emits readings; each reading becomes
 *    one Observation (build()), is checked (units, plausibility, time,
 *    vitalog's own R4 and vital-signs validation) and written as its own
 *    store unit, so one bad reading never affects another, while all of
 *    them share group commits. A session (ingest_t) takes the body in
 *    pieces (feed) so that the transport can stream it (constant memory:
 *    at most INGEST_IN_FLIGHT readings wait for the writer; the outcomes
 *    are spooled to a temporary file past SPOOL_MEMORY bytes).
 *
 * 2. Once and only once. A reading's id is a keyed hash (BLAKE2b with the
 *    server's ingest.key) of the patient, the format, the measure and
 *    either the source's own record id or, without one, the device, the
 *    effective time and the statistic. The id is also the Observation's
 *    identifier (system INGEST_ID_SYSTEM). The write is an update of that
 *    id that writes nothing when the stored version has the same content
 *    ("unchanged"), a new version when it differs ("updated"), and the
 *    first version otherwise ("created"). A deleted reading stays deleted
 *    (a device's resync must not undo a patient's delete). The key keeps
 *    ids unguessable: the ledger names ids, and an id computed from a
 *    patient and a time would tell an auditor that a reading exists.
 *
 * 3. Units. Values are stored in the measure's unit (ingest/measures.c:
 *    the canonical unit of the dimension): as sent when the source used
 *    it, otherwise converted with the exact UCUM factor (fhir/ucum.c) and
 *    printed with 15 significant digits; the source value and unit are
 *    kept in the extension INGEST_SOURCE_EXT.
 *
 * 4. Devices. A reading that names its device refers to a Device resource
 *    of that patient whose id is the keyed hash of the patient, format and
 *    the device's manufacturer, model, serial and name; it is written (if
 *    changed) in the same unit as the first reading of this request that
 *    refers to it, so it exists whenever a reading refers to it.
 *
 * 5. The answer is a batch-response Bundle: one entry per reading, in the
 *    order the readings were found, each with its outcome code (extension
 *    INGEST_OUTCOME_EXT: created, updated, unchanged, rejected), the
 *    status, location and ETag, or an OperationOutcome naming the reading
 *    (issue.expression holds the path in the source document, prefixed
 *    with the line for NDJSON); Bundle.meta carries the totals.
 */
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fhir_internal.h"
#include "ucum.h"
#include "vitalog/ingest.h"

#define VL_SD "http://vitalog.local/fhir/StructureDefinition/"
#define INGEST_ID_SYSTEM "http://vitalog.local/fhir/NamingSystem/ingest"
#define INGEST_DEVICE_SYSTEM "http://vitalog.local/fhir/NamingSystem/ingest-device"
#define INGEST_RECORD_SYSTEM "http://vitalog.local/fhir/NamingSystem/source-record/"
#define INGEST_SOURCE_EXT VL_SD "ingest-source-quantity"
#define INGEST_STATISTIC_EXT VL_SD "ingest-statistic"
#define INGEST_OUTCOME_EXT VL_SD "ingest-outcome"
#define INGEST_TOTALS_EXT VL_SD "ingest-totals"
#define INGEST_SOURCE_BASE "http://vitalog.local/fhir/ingest/"
#define TZ_EXT "http://hl7.org/fhir/StructureDefinition/timezone"
#define OBS_CATEGORY "http://terminology.hl7.org/CodeSystem/observation-category"
#define UCUM "http://unitsofmeasure.org"
#define LOINC "http://loinc.org"

/* readings in the future beyond this are refused (device clocks drift) */
#define INGEST_FUTURE_SKEW_US (10 * 60 * INT64_C(1000000))
/* most readings waiting for the writer per request (then the body waits) */
#define INGEST_IN_FLIGHT 1024
/* outcomes kept in memory before they are spooled to a temporary file */
#define SPOOL_MEMORY (1u << 20)
/* the longest NDJSON line */
#define INGEST_MAX_LINE (1u << 20)
/* the largest application/json document (a day of minute data is ~100 KiB) */
#define INGEST_MAX_DOCUMENT (16u << 20)

typedef enum { O_CREATED, O_UPDATED, O_UNCHANGED, O_REJECTED, O_N } outcome_t;
static const char *const outcome_names[O_N] = {"created", "updated", "unchanged", "rejected"};

typedef struct ingest ingest_t;

typedef struct device {
    char id[33];
    vl_write_t w;
    int written; /* writer thread only: a unit wrote (or found) it */
    struct device *next;
} device_t;

/* One reading: its write, or why it was rejected. */
typedef struct slot {
    ingest_t *in;
    size_t number; /* 0-based, in the order found */
    char where[160];
    vl_write_t w;
    int has_write;
    device_t *device;
    int wrote_device; /* this unit wrote (or found) the device */
    vl_store_unit_t unit;
    vl_error_t err;
    atomic_int done;
    struct slot *next;
} slot_t;

struct ingest {
    vl_fhir_exchange_t *x;
    vl_ingest_format_t format;
    vl_ingest_options_t opts;
    char patient[65]; /* the Patient's id */
    char tz[72];
    int ndjson, representation;
    /* the body, as it arrives */
    vl_buf_t line;
    size_t line_no;
    int in_document; /* application/json: the whole body is one document */
    /* readings in order; head..tail not yet spooled */
    slot_t *head, *tail;
    size_t readings;
    /* the units in flight: `mu` guards these (the writer thread completes
     * units while the transport's thread feeds the body) */
    pthread_mutex_t mu;
    pthread_cond_t idle; /* in_flight reached 0 */
    size_t in_flight;    /* units submitted and not completed, plus 1 while the body is fed */
    int waiting;         /* the transport waits: notify once in_flight < wake_below */
    size_t wake_below;
    size_t totals[O_N];
    device_t *devices;
    /* the spooled entries */
    vl_buf_t spool;
    FILE *spool_file;
    int failed;  /* out of memory or the spool failed: 500 */
    int feeding; /* the body is being fed: in_flight holds one for it */
    /* the answer, streamed */
    vl_buf_t prefix;
    int stream_phase;
};

/* ------------------------------------------------------------------------
 * Identifiers
 * ---------------------------------------------------------------------- */

static void hash_part(crypto_generichash_state *st, const char *s)
{
    crypto_generichash_update(st, (const unsigned char *)(s ? s : ""), strlen(s ? s : "") + 1);
}

/* 32 hex digits of the keyed hash of the parts (NULL-terminated). */
static void keyed_id(const unsigned char key[32], const char *const *parts, char out[33])
{
    crypto_generichash_state st;
    unsigned char h[16];
    crypto_generichash_init(&st, key, 32, sizeof h);
    for (; *parts; parts++)
        hash_part(&st, *parts);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(out, 33, h, sizeof h);
}

static int has_device(const vl_ingest_device_t *d)
{
    return d->manufacturer[0] || d->model[0] || d->serial[0] || d->name[0];
}

static void reading_id(const ingest_t *in, const vl_ingest_reading_t *r, char out[33])
{
    const char *fmt = vl_ingest_format_name(in->format);
    const vl_ingest_device_t *d = &r->device;
    if (r->record_id[0]) {
        const char *parts[] = {"reading/1",    in->patient,  fmt, r->measure->key,
                               r->source_name, r->record_id, NULL};
        keyed_id(in->x->f->opts.ingest_key, parts, out);
    } else {
        const char *parts[] = {"reading/1", in->patient,  fmt,     r->measure->key, d->manufacturer,
                               d->model,    d->serial,    d->name, r->source_name,  r->start,
                               r->end,      r->statistic, NULL};
        keyed_id(in->x->f->opts.ingest_key, parts, out);
    }
}

/* ------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

/* The value in the measure's unit: the text as sent when the units agree,
 * else converted exactly and printed with 15 significant digits. 0, or -1
 * with why (a unit that is not UCUM or not of the measure's dimension). */
static int to_storage_unit(const char *value, const char *unit, const char *want, char out[48],
                           char *why, size_t why_n)
{
    const char *c_from, *c_want;
    double v, canon, res;
    char *end;
    if (!strcmp(unit, want)) {
        snprintf(out, 48, "%s", value);
        return 0;
    }
    if (!vl_ucum_find(unit) || !vl_ucum_find(want)) {
        snprintf(why, why_n, "the unit '%s' is not one vitalog knows for this measure (%s)", unit,
                 want);
        return -1;
    }
    c_from = vl_ucum_find(unit)->canonical;
    c_want = vl_ucum_find(want)->canonical;
    if (strcmp(c_from, c_want) != 0) {
        snprintf(why, why_n, "the unit '%s' cannot be converted to %s", unit, want);
        return -1;
    }
    errno = 0;
    v = strtod(value, &end);
    if (errno || *end || !isfinite(v) || vl_ucum_to_canonical(unit, v, NULL, &canon) < 0 ||
        vl_ucum_from_canonical(want, canon, &res) < 0 || !isfinite(res)) {
        snprintf(why, why_n, "the value '%s %s' cannot be converted to %s", value, unit, want);
        return -1;
    }
    if (res == 0)
        res = 0; /* no "-0" */
    snprintf(out, 48, "%.15g", res);
    return 0;
}

static json_t *quantity(const char *value, const char *unit)
{
    /* the human unit is the UCUM code itself, as the vital-signs examples do */
    return json_pack("{s:o,s:s,s:s,s:s}", "value", vl_json_number(value), "unit", unit, "system",
                     UCUM, "code", unit);
}

static json_t *coding(const char *system, const char *code, const char *display)
{
    return display ? json_pack("{s:s,s:s,s:s}", "system", system, "code", code, "display", display)
                   : json_pack("{s:s,s:s}", "system", system, "code", code);
}

/* Adds value `v` (converted into `unit`) to `target` as valueQuantity,
 * keeping the source's in the extension when they differ. */
static int add_value(json_t *target, const vl_ingest_value_t *v, const char *unit, double lo,
                     double hi, const char *what, char *why, size_t why_n)
{
    char stored[48];
    double n;
    if (to_storage_unit(v->value, v->unit, unit, stored, why, why_n) < 0)
        return -1;
    n = strtod(stored, NULL);
    if (!(n >= lo && n <= hi)) {
        snprintf(why, why_n, "%s %s %s is outside the plausible range %g..%g %s", what, stored,
                 unit, lo, hi, unit);
        return -1;
    }
    if (strcmp(stored, v->value) != 0 || strcmp(unit, v->unit) != 0 ||
        (v->source_unit[0] && strcmp(v->source_unit, v->unit) != 0)) {
        json_t *src = quantity(v->value, v->unit);
        if (v->source_unit[0])
            json_object_set_new(src, "unit", json_string(v->source_unit));
        json_object_set_new(
            target, "extension",
            json_pack("[{s:s,s:o}]", "url", INGEST_SOURCE_EXT, "valueQuantity", src));
    }
    json_object_set_new(target, "valueQuantity", quantity(stored, unit));
    return 0;
}

/* ------------------------------------------------------------------------
 * The Observation and the Device
 * ---------------------------------------------------------------------- */

static const char *category_code(vl_ingest_category_t c, const char **display)
{
    switch (c) {
    case VL_CAT_ACTIVITY: *display = "Activity"; return "activity";
    case VL_CAT_LABORATORY: *display = "Laboratory"; return "laboratory";
    default: *display = "Vital Signs"; return "vital-signs";
    }
}

/* A time the reading may have: a dateTime with a zone, not beyond now + the
 * skew. 0, or -1 with why. */
static int check_time(const char *t, int64_t now, int64_t *lo, char *why, size_t why_n)
{
    int64_t hi;
    int precision;
    size_t n = strlen(t);
    if (vl_time_parse_range(t, lo, &hi, &precision) < 0 || precision < 4 ||
        !(t[n - 1] == 'Z' || (n > 6 && (t[n - 6] == '+' || t[n - 6] == '-')))) {
        snprintf(why, why_n, "the time '%.40s' is not a date-time with a zone", t);
        return -1;
    }
    if (*lo > now + INGEST_FUTURE_SKEW_US) {
        snprintf(why, why_n, "the time %.40s is in the future (more than %d minutes ahead)", t,
                 (int)(INGEST_FUTURE_SKEW_US / 60000000));
        return -1;
    }
    return 0;
}

static json_t *device_resource(const ingest_t *in, const vl_ingest_reading_t *r, const char *id)
{
    const vl_ingest_device_t *d = &r->device;
    json_t *dev = json_pack("{s:s,s:[{s:s,s:s}],s:s}", "resourceType", "Device", "identifier",
                            "system", INGEST_DEVICE_SYSTEM, "value", id, "status", "active");
    char source[96];
    snprintf(source, sizeof source, INGEST_SOURCE_BASE "%s", vl_ingest_format_name(in->format));
    json_object_set_new(dev, "meta", json_pack("{s:s}", "source", source));
    if (d->manufacturer[0])
        json_object_set_new(dev, "manufacturer", json_string(d->manufacturer));
    if (d->serial[0])
        json_object_set_new(dev, "serialNumber", json_string(d->serial));
    if (d->name[0] || d->model[0])
        json_object_set_new(dev, "deviceName",
                            json_pack("[{s:s,s:s}]", "name", d->name[0] ? d->name : d->model,
                                      "type", d->name[0] ? "user-friendly-name" : "model-name"));
    if (d->model[0])
        json_object_set_new(dev, "modelNumber", json_string(d->model));
    if (d->version[0])
        json_object_set_new(dev, "version", json_pack("[{s:s}]", "value", d->version));
    {
        char ref[80];
        snprintf(ref, sizeof ref, "Patient/%s", in->patient);
        json_object_set_new(dev, "patient", json_pack("{s:s}", "reference", ref));
    }
    return dev;
}

/* The Observation of reading `r` with id `id` (new reference), or NULL with
 * why. */
static json_t *build(ingest_t *in, const vl_ingest_reading_t *r, const char *id,
                     const char *device_id, char *why, size_t why_n)
{
    const vl_ingest_measure_t *m = r->measure;
    const char *cat_display, *cat = category_code(m->category, &cat_display);
    json_t *obs, *code, *ids;
    char ref[80], source[96], text[160];
    int64_t now = vl_time_now_us(), lo_start, lo_end;

    if (!r->start[0]) {
        snprintf(why, why_n, "the reading has no time");
        return NULL;
    }
    if (check_time(r->start, now, &lo_start, why, why_n) < 0 ||
        (r->end[0] && check_time(r->end, now, &lo_end, why, why_n) < 0))
        return NULL;
    if (r->end[0] && lo_end < lo_start) {
        snprintf(why, why_n, "the period ends (%.40s) before it starts (%.40s)", r->end, r->start);
        return NULL;
    }
    obs = json_object();
    snprintf(source, sizeof source, INGEST_SOURCE_BASE "%s", vl_ingest_format_name(in->format));
    json_object_set_new(obs, "resourceType", json_string("Observation"));
    json_object_set_new(obs, "meta",
                        m->profile
                            ? json_pack("{s:[s],s:s}", "profile", m->profile, "source", source)
                            : json_pack("{s:s}", "source", source));
    if (r->statistic[0])
        json_object_set_new(
            obs, "extension",
            json_pack("[{s:s,s:s}]", "url", INGEST_STATISTIC_EXT, "valueCode", r->statistic));
    ids = json_pack("[{s:s,s:s}]", "system", INGEST_ID_SYSTEM, "value", id);
    if (r->record_id[0]) {
        char sys[160];
        snprintf(sys, sizeof sys, INGEST_RECORD_SYSTEM "%s", vl_ingest_format_name(in->format));
        json_array_append_new(ids, json_pack("{s:s,s:s}", "system", sys, "value", r->record_id));
    }
    json_object_set_new(obs, "identifier", ids);
    json_object_set_new(obs, "status", json_string("final"));
    json_object_set_new(obs, "category",
                        json_pack("[{s:[o]}]", "coding", coding(OBS_CATEGORY, cat, cat_display)));
    code = json_pack("{s:[o]}", "coding", coding(LOINC, m->loinc, m->display));
    if (m->also_loinc)
        json_array_append_new(json_object_get(code, "coding"),
                              coding(LOINC, m->also_loinc, m->also_display));
    if (r->statistic[0])
        snprintf(text, sizeof text, "%s (%s)", m->display, r->statistic);
    else
        snprintf(text, sizeof text, "%s", m->display);
    json_object_set_new(code, "text", json_string(text));
    json_object_set_new(obs, "code", code);
    snprintf(ref, sizeof ref, "Patient/%s", in->patient);
    json_object_set_new(obs, "subject", json_pack("{s:s}", "reference", ref));
    if (r->end[0])
        json_object_set_new(obs, "effectivePeriod",
                            json_pack("{s:s,s:s}", "start", r->start, "end", r->end));
    else
        json_object_set_new(obs, "effectiveDateTime", json_string(r->start));
    if (device_id) {
        snprintf(ref, sizeof ref, "Device/%s", device_id);
        json_object_set_new(obs, "device", json_pack("{s:s}", "reference", ref));
    }
    if (r->note[0])
        json_object_set_new(obs, "note", json_pack("[{s:s}]", "text", r->note));

    if (r->interpretation) { /* beyond the device's range: no number (HL7 CGM IG) */
        int high = !strcmp(r->interpretation, "H");
        json_object_set_new(
            obs, "interpretation",
            json_pack("[{s:[{s:s,s:s,s:s}]}]", "coding", "system",
                      "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code",
                      high ? "H" : "L", "display", high ? "High" : "Low"));
        json_object_set_new(obs, "dataAbsentReason",
                            json_pack("{s:[{s:s,s:s,s:s}],s:s}", "coding", "system",
                                      "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                      "code", "unknown", "display", "Unknown", "text",
                                      high ? "above the device's reporting range"
                                           : "below the device's "
                                             "reporting range"));
    } else if (m->components[0].loinc) {
        json_t *comps = json_array();
        for (size_t i = 0; i < 3 && m->components[i].loinc; i++) {
            const struct vl_ingest_component *c = &m->components[i];
            json_t *comp = json_pack("{s:{s:[o],s:s}}", "code", "coding",
                                     coding(LOINC, c->loinc, c->display), "text", c->display);
            if (i >= r->n_values || !r->values[i].value[0]) {
                snprintf(why, why_n, "%s is missing", c->display);
                json_decref(comp);
                json_decref(comps);
                json_decref(obs);
                return NULL;
            }
            if (add_value(comp, &r->values[i], c->unit, c->lo, c->hi, c->display, why, why_n) < 0) {
                json_decref(comp);
                json_decref(comps);
                json_decref(obs);
                return NULL;
            }
            json_array_append_new(comps, comp);
        }
        json_object_set_new(obs, "component", comps);
    } else {
        if (!r->n_values || !r->values[0].value[0]) {
            snprintf(why, why_n, "the reading has no value");
            json_decref(obs);
            return NULL;
        }
        if (add_value(obs, &r->values[0], m->unit, m->lo, m->hi, m->display, why, why_n) < 0) {
            json_decref(obs);
            return NULL;
        }
    }
    return obs;
}

/* ------------------------------------------------------------------------
 * Slots: one per reading, in order
 * ---------------------------------------------------------------------- */

static void slot_free(slot_t *s)
{
    if (s->has_write)
        vl_write_release(&s->w);
    vl_error_clear(&s->err);
    free(s);
}

static slot_t *slot_new(ingest_t *in, const char *path)
{
    slot_t *s = calloc(1, sizeof *s);
    if (!s) {
        in->failed = 1;
        return NULL;
    }
    s->in = in;
    s->number = in->readings++;
    if (in->ndjson)
        snprintf(s->where, sizeof s->where, "line %zu%s%s", in->line_no, path[0] ? ": " : "", path);
    else
        snprintf(s->where, sizeof s->where, "%s", path);
    if (in->tail)
        in->tail->next = s;
    else
        in->head = s;
    in->tail = s;
    return s;
}

static void slot_reject(slot_t *s, int status, const char *code, const char *why)
{
    vl_error_set(&s->err, status, code, s->where[0] ? s->where : NULL, "reading %zu (%s): %s",
                 s->number + 1, s->where[0] ? s->where : "the document", why);
    atomic_store(&s->done, 1);
}

/* Writer thread: the device (first time), then the reading. */
static int apply_slot(vl_store_txn_t *txn, void *arg)
{
    slot_t *s = arg;
    vl_scope_t scope = s->in->x->scope;
    if (s->device && !s->device->written) {
        s->device->w.noop = 0;
        s->device->w.unchanged = 0;
        if (vl_write_execute(txn, scope, &s->device->w, &s->err) < 0)
            return -1;
        s->wrote_device = 1;
    }
    if (vl_write_execute(txn, scope, &s->w, &s->err) < 0)
        return -1;
    if (s->device)
        s->device->written = 1; /* until the commit says otherwise (slot_done) */
    return 0;
}

/* Takes one from in_flight; wakes the transport when it waits for fewer.
 * The notification is made after `mu` is released, with what was read
 * under it: the session may be freed as soon as in_flight is 0. */
static void release(ingest_t *in)
{
    vl_fhir_notify_fn notify = NULL;
    void *arg = NULL;
    pthread_mutex_lock(&in->mu);
    in->in_flight--;
    if (in->waiting && in->in_flight < in->wake_below) {
        in->waiting = 0;
        notify = in->x->notify;
        arg = in->x->notify_arg;
    }
    if (!in->in_flight)
        pthread_cond_broadcast(&in->idle);
    pthread_mutex_unlock(&in->mu);
    if (notify)
        notify(arg);
}

static void slot_done(vl_store_unit_t *u, void *arg)
{
    slot_t *s = arg;
    ingest_t *in = s->in; /* s may be spooled and freed once done is set */
    /* a unit that did not commit (its batch's commit failed) stored no
     * Device either: the next reading of the device writes it again */
    if (u->result < 0 && s->wrote_device)
        s->device->written = 0;
    atomic_store(&s->done, 1);
    release(in);
}

/* Whether the caller must wait: 1 when fewer than `below` units are in
 * flight now (nothing to wait for), 0 when it must wait (the notification
 * follows once they are). */
static int wait_for(ingest_t *in, size_t below)
{
    int now;
    pthread_mutex_lock(&in->mu);
    now = in->in_flight < below;
    if (!now) {
        in->waiting = 1;
        in->wake_below = below;
    }
    pthread_mutex_unlock(&in->mu);
    return now;
}

/* ------------------------------------------------------------------------
 * Readings
 * ---------------------------------------------------------------------- */

static device_t *device_for(ingest_t *in, const vl_ingest_reading_t *r)
{
    const vl_ingest_device_t *d = &r->device;
    const char *parts[] = {"device/1",      in->patient, vl_ingest_format_name(in->format),
                           d->manufacturer, d->model,    d->serial,
                           d->name,         NULL};
    char id[33];
    device_t *dev;
    vl_error_t err = VL_ERROR_INIT;
    const vl_fhir_type_t *type = vl_fhir_type_find("Device");
    keyed_id(in->x->f->opts.ingest_key, parts, id);
    for (dev = in->devices; dev; dev = dev->next)
        if (!strcmp(dev->id, id))
            return dev;
    if (!type || !(dev = calloc(1, sizeof *dev)))
        return NULL;
    memcpy(dev->id, id, sizeof dev->id);
    vl_write_init(&dev->w, VL_W_UPDATE, type, device_resource(in, r, id));
    snprintf(dev->w.id, sizeof dev->w.id, "%s", id);
    dev->w.if_changed = 1;
    dev->w.fhir_base = vl_x_fhir_base(in->x);
    if (!dev->w.resource || vl_fhir_validate(type, dev->w.resource, &err) < 0 ||
        vl_write_prepare(&dev->w, &err) < 0) {
        vl_error_clear(&err);
        vl_write_release(&dev->w);
        free(dev);
        return NULL;
    }
    dev->next = in->devices;
    in->devices = dev;
    return dev;
}

static int on_reading(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    ingest_t *in = ctx;
    slot_t *s = slot_new(in, r->path);
    char id[33], reason[320];
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    const vl_fhir_type_t *obs_type = vl_fhir_type_find("Observation");
    json_t *obs;
    if (!s)
        return -1;
    if (why) {
        slot_reject(s, 422, "processing", why);
        return 0;
    }
    if (!r->measure) {
        slot_reject(s, 422, "not-supported", "the reading is of no known measure");
        return 0;
    }
    if (has_device(&r->device) && !(s->device = device_for(in, r))) {
        slot_reject(s, 422, "processing", "its device cannot be described as a Device");
        return 0;
    }
    reading_id(in, r, id);
    if (!(obs = build(in, r, id, s->device ? s->device->id : NULL, reason, sizeof reason))) {
        slot_reject(s, 422, "processing", reason);
        return 0;
    }
    if (vl_fhir_validate(obs_type, obs, &err) < 0) {
        /* a reading the normalizer made but R4 refuses: name the reading */
        snprintf(reason, sizeof reason, "the Observation made of it is not valid: %s",
                 vl_error_message(&err));
        vl_error_clear(&err);
        json_decref(obs);
        slot_reject(s, 422, "processing", reason);
        return 0;
    }
    vl_write_init(&s->w, VL_W_UPDATE, obs_type, obs);
    s->has_write = 1;
    snprintf(s->w.id, sizeof s->w.id, "%s", id);
    s->w.if_changed = 1;
    s->w.fhir_base = vl_x_fhir_base(in->x);
    if (vl_write_prepare(&s->w, &err) < 0) {
        slot_reject(s, err.status ? err.status : 500, "exception", vl_error_message(&err));
        vl_error_clear(&err);
        return 0;
    }
    s->unit.apply = apply_slot;
    s->unit.arg = s;
    s->unit.done = slot_done;
    s->unit.done_arg = s;
    pthread_mutex_lock(&in->mu);
    in->in_flight++;
    pthread_mutex_unlock(&in->mu);
    if (vl_store_submit(in->x->f->opts.store, &s->unit, &serr) < 0) {
        release(in);
        vl_fhir_store_error(&serr, &err);
        slot_reject(s, err.status ? err.status : 503, "transient", vl_error_message(&err));
        vl_error_clear(&err);
    }
    return 0;
}

/* One document (the whole body, or one NDJSON line). */
static void document(ingest_t *in, const char *text, size_t len)
{
    vl_json_limits_t lim = {in->x->f->opts.max_depth};
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc = vl_json_parse(text, len, &lim, &err);
    if (doc && vl_ingest_document(in->format, doc, &in->opts, on_reading, in, &err) == 0) {
        json_decref(doc);
        return;
    }
    if (err.status) { /* the document as a whole: one rejected entry */
        slot_t *sl = slot_new(in, "");
        char why[300];
        snprintf(why, sizeof why, "the document is not %s: %s",
                 doc ? vl_ingest_format_name(in->format) : "JSON", vl_error_message(&err));
        if (sl)
            slot_reject(sl, 400, doc ? "structure" : "invalid", why);
    }
    json_decref(doc);
    vl_error_clear(&err);
}

/* ------------------------------------------------------------------------
 * Outcomes: entries spooled in order
 * ---------------------------------------------------------------------- */

static void entry_text(ingest_t *in, slot_t *s, vl_buf_t *out)
{
    vl_fhir_exchange_t *x = in->x;
    outcome_t o;
    vl_write_t *w = &s->w;
    if (s->has_write && s->unit.result < 0 && !s->err.status)
        vl_fhir_store_error(&s->unit.err, &s->err);
    if (!s->has_write || s->err.status || s->unit.result < 0)
        o = O_REJECTED;
    else if (w->unchanged || w->gone)
        o = O_UNCHANGED;
    else
        o = w->created ? O_CREATED : O_UPDATED;
    in->totals[o]++;
    vl_buf_puts(out, s->number ? ",{" : "{");
    if (o != O_REJECTED) {
        vl_buf_puts(out, "\"fullUrl\":\"");
        vl_full_url(out, vl_x_fhir_base(x), "Observation", w->id);
        vl_buf_puts(out, "\",");
    }
    vl_buf_printf(out, "\"extension\":[{\"url\":\"" INGEST_OUTCOME_EXT "\",\"valueCode\":\"%s\"}],",
                  outcome_names[o]);
    if (o == O_REJECTED) {
        int status = s->err.status ? s->err.status : 500;
        json_t *oo;
        char *text;
        size_t len;
        if (!s->err.status)
            vl_error_set(&s->err, 500, "exception", NULL, "reading %zu: not stored", s->number + 1);
        oo = vl_error_outcome(&s->err);
        text = oo ? vl_json_dump(oo, &len) : NULL;
        json_decref(oo);
        vl_buf_printf(out, "\"response\":{\"status\":\"%d %s\"", status,
                      status == 422   ? "Unprocessable Entity"
                      : status == 403 ? "Forbidden"
                      : status == 400 ? "Bad Request"
                      : status == 503 ? "Service Unavailable"
                      : status < 500  ? "Client Error"
                                      : "Internal Server Error");
        if (text) {
            vl_buf_puts(out, ",\"outcome\":");
            vl_buf_append(out, text, len);
        }
        free(text);
        vl_buf_puts(out, "}}");
        return;
    }
    if (w->gone) { /* deleted here, and it stays so: no version to point at */
        vl_buf_puts(out, "\"response\":{\"status\":\"410 Gone\"}}");
        return;
    }
    if (in->representation && w->body) {
        vl_buf_puts(out, "\"resource\":");
        vl_buf_append(out, w->body, w->body_len);
        vl_buf_puts(out, ",");
    }
    {
        char ts[32];
        vl_time_format(w->time_us, ts);
        vl_buf_printf(
            out,
            "\"response\":{\"status\":\"%s\",\"location\":\"Observation/%s/_history/%lld\","
            "\"etag\":\"W/\\\"%lld\\\"\",\"lastModified\":\"%s\"}}",
            o == O_CREATED ? "201 Created" : "200 OK", w->id, (long long)w->version,
            (long long)w->version, ts);
    }
}

/* Moves the completed slots at the head to the spool. */
static void spool_done(ingest_t *in)
{
    while (in->head && atomic_load(&in->head->done)) {
        slot_t *s = in->head;
        in->head = s->next;
        if (!in->head)
            in->tail = NULL;
        entry_text(in, s, &in->spool);
        slot_free(s);
        if (in->spool.failed)
            in->failed = 1;
        if (in->spool.len > SPOOL_MEMORY && !in->failed) {
            if (!in->spool_file && !(in->spool_file = tmpfile()))
                in->failed = 1;
            else if (fwrite(in->spool.data, 1, in->spool.len, in->spool_file) != in->spool.len)
                in->failed = 1;
            in->spool.len = 0;
            if (in->spool.data)
                in->spool.data[0] = '\0';
        }
    }
}

/* ------------------------------------------------------------------------
 * The session
 * ---------------------------------------------------------------------- */

static void ingest_free(void *p)
{
    ingest_t *in = p;
    if (!in)
        return;
    /* a client gone mid-body: the units in flight still refer to the
     * session; wait for the writer to complete them */
    pthread_mutex_lock(&in->mu);
    if (in->feeding) {
        in->feeding = 0;
        in->in_flight--;
    }
    while (in->in_flight)
        pthread_cond_wait(&in->idle, &in->mu);
    pthread_mutex_unlock(&in->mu);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->idle);
    while (in->head) {
        slot_t *s = in->head;
        in->head = s->next;
        slot_free(s);
    }
    while (in->devices) {
        device_t *d = in->devices;
        in->devices = d->next;
        vl_write_release(&d->w);
        free(d);
    }
    vl_buf_free(&in->line);
    vl_buf_free(&in->spool);
    vl_buf_free(&in->prefix);
    if (in->spool_file)
        fclose(in->spool_file);
    free(in);
}

/* Takes `len` bytes of the body. */
static void feed(ingest_t *in, const char *data, size_t len)
{
    if (!in->ndjson) {
        vl_buf_append(&in->line, data, len);
        return;
    }
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        if (in->line.len + n > INGEST_MAX_LINE) {
            in->line.len = INGEST_MAX_LINE + 1; /* remembered: the line is too long */
        } else {
            vl_buf_append(&in->line, data, n);
        }
        if (in->line.failed)
            in->failed = 1; /* out of memory: the answer is a 500, not a silent gap */
        if (!nl)
            return;
        in->line_no++;
        if (in->line.len > INGEST_MAX_LINE) {
            slot_t *s = slot_new(in, "");
            if (s)
                slot_reject(s, 413, "too-long", "the line is longer than 1 MiB");
        } else {
            size_t k = in->line.len;
            while (k && (in->line.data[k - 1] == '\r' || in->line.data[k - 1] == ' ' ||
                         in->line.data[k - 1] == '\t'))
                k--;
            if (k)
                document(in, in->line.data, k);
        }
        in->line.len = 0;
        data += n + 1;
        len -= n + 1;
        spool_done(in);
    }
}

static void feed_end(ingest_t *in)
{
    if (in->ndjson) {
        if (in->line.len)
            feed(in, "\n", 1);
    } else if (!in->line.failed && in->line.len) {
        document(in, in->line.data, in->line.len);
    }
    spool_done(in);
}

/* The answer, streamed: the Bundle's opening with the totals, the spooled
 * entries, the closing. */
static ssize_t answer_stream(void *ctx, char *buf, size_t max)
{
    vl_fhir_exchange_t *x = ctx;
    ingest_t *in = x->op;
    for (;;) {
        vl_buf_t *b = in->stream_phase == 0 ? &in->prefix : &in->spool;
        if (in->stream_phase == 0 || in->stream_phase == 2) {
            if (b->len) {
                size_t n = b->len < max ? b->len : max;
                memcpy(buf, b->data, n);
                memmove(b->data, b->data + n, b->len - n);
                b->len -= n;
                return (ssize_t)n;
            }
            in->stream_phase++;
            continue;
        }
        if (in->stream_phase == 1) {
            if (in->spool_file) {
                size_t n = fread(buf, 1, max, in->spool_file);
                if (n)
                    return (ssize_t)n;
                if (ferror(in->spool_file))
                    return -1;
            }
            in->stream_phase = 2;
            if (vl_buf_puts(&in->spool, in->readings ? "]}" : "}") < 0)
                return -1;
            continue;
        }
        return 0;
    }
}

static void finish(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    ingest_t *in = x->op;
    /* the answer follows the last unit's notification; a transport may
     * resume on an earlier one (a streamed body's pause), so make sure */
    pthread_mutex_lock(&in->mu);
    while (in->in_flight)
        pthread_cond_wait(&in->idle, &in->mu);
    pthread_mutex_unlock(&in->mu);
    spool_done(in);
    if (in->failed || in->head) {
        vl_x_fail(res, 500, "exception", "out of memory or temporary storage while ingesting");
        return;
    }
    if (in->spool_file) { /* the rest follows the file's part */
        if (fwrite(in->spool.data ? in->spool.data : "", 1, in->spool.len, in->spool_file) !=
                in->spool.len ||
            fflush(in->spool_file) != 0 || fseek(in->spool_file, 0, SEEK_SET) != 0) {
            vl_x_fail(res, 500, "exception", "the temporary file of the answer failed");
            return;
        }
        in->spool.len = 0;
    }
    vl_bundle_open(&in->prefix, "batch-response", -1);
    /* the totals in Bundle.meta (a Bundle has no extension of its own) */
    {
        /* vl_bundle_open wrote ..."meta":{"lastUpdated":"..."},... : add to meta */
        char *meta = strstr(in->prefix.data ? in->prefix.data : "", "\"meta\":{");
        vl_buf_t totals = VL_BUF_INIT(0);
        vl_buf_printf(&totals,
                      "\"extension\":[{\"url\":\"" INGEST_TOTALS_EXT "\",\"extension\":["
                      "{\"url\":\"readings\",\"valueUnsignedInt\":%zu},"
                      "{\"url\":\"created\",\"valueUnsignedInt\":%zu},"
                      "{\"url\":\"updated\",\"valueUnsignedInt\":%zu},"
                      "{\"url\":\"unchanged\",\"valueUnsignedInt\":%zu},"
                      "{\"url\":\"rejected\",\"valueUnsignedInt\":%zu}]}],",
                      in->readings, in->totals[O_CREATED], in->totals[O_UPDATED],
                      in->totals[O_UNCHANGED], in->totals[O_REJECTED]);
        if (meta && !totals.failed) {
            size_t at = (size_t)(meta - in->prefix.data) + 8;
            vl_buf_t merged = VL_BUF_INIT(0);
            vl_buf_append(&merged, in->prefix.data, at);
            vl_buf_append(&merged, totals.data, totals.len);
            vl_buf_append(&merged, in->prefix.data + at, in->prefix.len - at);
            vl_buf_free(&in->prefix);
            in->prefix = merged;
        }
        vl_buf_free(&totals);
    }
    vl_buf_puts(&in->prefix, in->readings ? ",\"entry\":[" : "");
    if (in->prefix.failed) {
        vl_x_fail(res, 500, "exception", "out of memory");
        return;
    }
    res->status = 200;
    res->stream = answer_stream;
    res->stream_ctx = x;
    res->stream_free = NULL;
}

/* ------------------------------------------------------------------------
 * The handler
 * ---------------------------------------------------------------------- */

static int content_type_ndjson(const char *ct, int *ndjson)
{
    size_t n;
    if (!ct)
        return -1;
    n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
#define IS(s) (n == strlen(s) && !strncasecmp(ct, s, n))
    if (IS("application/json") || IS("application/fhir+json")) {
        *ndjson = 0;
        return 0;
    }
    if (IS("application/x-ndjson") || IS("application/ndjson") || IS("application/fhir+ndjson")) {
        *ndjson = 1;
        return 0;
    }
#undef IS
    return -1;
}

/* The patient the readings are of: the token's own, or the `patient`
 * parameter ("Patient/x", "x", or an absolute URL under this server's base). */
static int which_patient(vl_fhir_exchange_t *x, char out[65], vl_error_t *err)
{
    const char *p = vl_params_get(&x->params, "patient");
    const char *own = x->who.patient[0] ? x->who.patient : NULL;
    char id[80];
    if (p) {
        const char *local = vl_fhir_local_reference(p, vl_x_fhir_base(x));
        if (!strncmp(local, "Patient/", 8))
            local += 8;
        snprintf(id, sizeof id, "%s", local);
        if (!vl_fhir_id_valid(id))
            return vl_error_set(err, 400, "invalid", "patient",
                                "patient must be Patient/<id> (not '%.64s')", p);
        if (own && strcmp(own, id) != 0)
            return vl_error_set(err, 403, "forbidden", "patient",
                                "this token's readings are those of Patient/%s", own);
    } else if (own) {
        snprintf(id, sizeof id, "%s", own);
    } else {
        return vl_error_set(err, 400, "required", "patient",
                            "$ingest needs patient=Patient/<id> (a patient or device token "
                            "implies it)");
    }
    if (strlen(id) > 64)
        return vl_error_set(err, 400, "invalid", "patient", "the patient id is too long");
    memcpy(out, id, strlen(id) + 1);
    return 0;
}

/* The patient must exist here; its zone (the R5 timezone extension) is the
 * default for local times. */
static int patient_zone(ingest_t *in, vl_error_t *err)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_record_t rec;
    json_t *pat, *ext;
    size_t i;
    vl_error_t perr = VL_ERROR_INIT;
    if (vl_store_read(in->x->f->opts.store, vl_scope_everything(), "Patient", in->patient, 0, &rec,
                      &serr) < 0) {
        if (serr.kind == VL_STORE_NOT_FOUND)
            return vl_error_set(err, 404, "not-found", "patient", "Patient/%s is not known here",
                                in->patient);
        return vl_fhir_store_error(&serr, err);
    }
    pat = rec.body ? vl_json_parse(rec.body, rec.body_len, NULL, &perr) : NULL;
    vl_error_clear(&perr);
    vl_record_free(&rec);
    json_array_foreach (json_object_get(pat, "extension"), i, ext) {
        const char *url = json_string_value(json_object_get(ext, "url"));
        const char *code = json_string_value(json_object_get(ext, "valueCode"));
        if (url && code && !strcmp(url, TZ_EXT) && !in->tz[0])
            snprintf(in->tz, sizeof in->tz, "%s", code);
    }
    json_decref(pat);
    return 0;
}

/* vl_fhir_feed(): the body in pieces; NULL/0 is its end. 1 pauses the
 * body until the notification (too many readings wait for the writer) or,
 * at the end, until every reading is written; 0 goes on or, at the end,
 * has the answer in `res`. */
static int ingest_feed(vl_fhir_exchange_t *x, const char *data, size_t len, vl_fhir_response_t *res)
{
    ingest_t *in = x->op;
    if (data && len) {
        feed(in, data, len);
        return wait_for(in, INGEST_IN_FLIGHT) ? 0 : 1;
    }
    if (!in->ndjson && (in->line.failed || !in->line.len)) { /* nothing was submitted */
        release(in);
        in->feeding = 0;
        return in->line.failed
                   ? vl_x_fail(res, 413, "too-long",
                               "an application/json document of $ingest holds at most %u bytes "
                               "(send NDJSON, one document per line, for more)",
                               INGEST_MAX_DOCUMENT)
                   : vl_x_fail(res, 400, "required", "the request has no body");
    }
    feed_end(in);
    pthread_mutex_lock(&in->mu);
    in->waiting = 0; /* a pause's stale wish: this thread must not notify itself */
    pthread_mutex_unlock(&in->mu);
    release(in); /* the body's hold */
    in->feeding = 0;
    if (!wait_for(in, 1))
        return 1;
    finish(x, res);
    return 0;
}

int vl_h_ingest(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    const char *format = vl_params_get(&x->params, "format");
    const char *tz = vl_params_get(&x->params, "tz");
    const char *prefer = x->req->prefer;
    ingest_t *in;
    vl_ingest_format_t f;
    int ndjson;
    if (!x->f->opts.ingest_key)
        return vl_x_fail(res, 503, "transient", "$ingest is not configured (no ingest key)");
    if (!format)
        return vl_x_fail(res, 400, "required",
                         "$ingest needs format=omh|healthkit|healthconnect|fitbit|withings|"
                         "googlefit|dexcom");
    if (vl_ingest_format_parse(format, &f) < 0)
        return vl_x_fail(res, 400, "not-supported",
                         "unknown format '%.32s' (omh, healthkit, healthconnect, fitbit, "
                         "withings, googlefit, dexcom)",
                         format);
    if (content_type_ndjson(x->req->content_type, &ndjson) < 0)
        return vl_x_fail(res, 415, "not-supported",
                         "$ingest takes application/json (one document) or "
                         "application/x-ndjson (one document per line)%s%s",
                         x->req->content_type ? ", not " : "",
                         x->req->content_type ? x->req->content_type : "");
    if (tz && (strlen(tz) > 64 || !*tz))
        return vl_x_fail(res, 400, "invalid", "tz must be an offset (+01:00) or a zone name");
    if (!(in = calloc(1, sizeof *in)))
        return vl_x_fail(res, 500, "exception", "out of memory");
    x->op = in;
    x->op_free = ingest_free;
    in->x = x;
    in->format = f;
    in->ndjson = ndjson;
    in->representation = prefer && strstr(prefer, "return=representation");
    in->line = (vl_buf_t)VL_BUF_INIT(ndjson ? 0 : INGEST_MAX_DOCUMENT);
    in->spool = (vl_buf_t)VL_BUF_INIT(0);
    in->prefix = (vl_buf_t)VL_BUF_INIT(0);
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->idle, NULL);
    if (tz)
        snprintf(in->tz, sizeof in->tz, "%s", tz);
    if (which_patient(x, in->patient, &err) < 0 || patient_zone(in, &err) < 0)
        return vl_x_error(res, &err);
    in->opts.tz = in->tz[0] ? in->tz : NULL;
    in->in_flight = 1; /* held while the body is fed */
    in->feeding = 1;
    x->finish = finish;
    if (x->req->body_streamed) { /* the transport feeds it (vl_fhir_feed) */
        x->feed = ingest_feed;
        return 2;
    }
    feed(in, x->req->body, x->req->body_len);
    return ingest_feed(x, NULL, 0, res);
}
