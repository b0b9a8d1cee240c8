/*
 * vitalog — ingest: the readings wearables and patient apps really send,
 * normalized into vital-sign readings (LOINC + UCUM).
 *
 * One file per source format (src/ingest/<format>.c), each a pure function
 * from one source document to readings: no I/O, no store, no FHIR
 * structure. The fhir module's $ingest operation turns each reading into
 * an Observation (canonical units, Device, deterministic identifier) and
 * writes it; `vitalog import healthkit` feeds an Apple Health export.xml
 * through the same path.
 *
 * A normalizer walks a document and calls `emit` once per reading it
 * finds: either a reading, or a rejection of one (r->path says which,
 * `why` says why). It never stops at a bad reading: the rest of the
 * document is still emitted. It returns -1 only when the document as a
 * whole is not of its format (with a 400 in err), and then may already
 * have emitted some readings.
 *
 * Every table behind the normalizers (measures, unit names, field
 * mappings) is static data, listed by vl_ingest_mappings() so that
 * docs/ingest.md can be checked against the code.
 */
#ifndef VITALOG_INGEST_H
#define VITALOG_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vitalog/util.h"

typedef enum vl_ingest_format {
    VL_INGEST_OMH,
    VL_INGEST_HEALTHKIT,
    VL_INGEST_HEALTHCONNECT,
    VL_INGEST_FITBIT,
    VL_INGEST_WITHINGS,
    VL_INGEST_GOOGLEFIT,
    VL_INGEST_DEXCOM,
    VL_INGEST_N_FORMATS
} vl_ingest_format_t;

/** "omh", "healthkit", ... */
const char *vl_ingest_format_name(vl_ingest_format_t f);
/** Looks a format up by name; -1 if unknown. */
int vl_ingest_format_parse(const char *name, vl_ingest_format_t *out);

/* ------------------------------------------------------------------------
 * Measures: what a reading is (measures.c)
 * ---------------------------------------------------------------------- */

typedef enum {
    VL_CAT_VITAL_SIGNS, /* http://terminology.hl7.org/CodeSystem/observation-category#vital-signs */
    VL_CAT_ACTIVITY,    /* ...#activity (Physical Activity IG) */
    VL_CAT_LABORATORY,  /* ...#laboratory (HL7 CGM IG sensor readings) */
} vl_ingest_category_t;

/** One kind of reading. A panel (blood pressure) has components and no
 *  value of its own. */
typedef struct vl_ingest_measure {
    const char *key;     /* "heart-rate", "blood-pressure", ... */
    const char *loinc;   /* Observation.code (http://loinc.org) */
    const char *display; /* its LOINC display */
    vl_ingest_category_t category;
    const char *unit;    /* the canonical UCUM unit the value is stored in ("" panel) */
    double lo, hi;       /* plausible values in `unit`, [lo, hi] (documented) */
    const char *profile; /* the profile the Observation claims, or NULL */
    const char *also_loinc, *also_display; /* a second coding of the code (SpO2 by pulse
                                              oximetry 59408-5), or NULL */
    /* components of a panel: {loinc, display, unit, lo, hi}; loinc NULL ends */
    struct vl_ingest_component {
        const char *loinc, *display, *unit;
        double lo, hi;
    } components[3];
} vl_ingest_measure_t;

/** The measure with this key, or NULL. */
const vl_ingest_measure_t *vl_ingest_measure(const char *key);
/** Every measure, terminated by {NULL}. */
extern const vl_ingest_measure_t vl_ingest_measures[];

/* ------------------------------------------------------------------------
 * Readings
 * ---------------------------------------------------------------------- */

#define VL_INGEST_MAX_VALUES 3

/** One value of a reading: the reading's own (n_values 1) or one
 *  component of a panel (in the measure's component order). */
typedef struct vl_ingest_value {
    const char *loinc;    /* the measure's or the component's code (static) */
    char value[40];       /* decimal text as the source gave it (after the source's own
                             scaling, e.g. Withings value x 10^unit), "" when absent */
    char unit[32];        /* that value's UCUM unit ("[degF]", "/min") */
    char source_unit[32]; /* the unit as the source wrote it ("F", "beats/min"; "" none) */
} vl_ingest_value_t;

typedef struct vl_ingest_device {
    char manufacturer[64];
    char model[64];
    char name[96];   /* e.g. "Alice's Apple Watch" */
    char serial[96]; /* a device identifier of the source (serial, id, UDI), "" none */
    char version[48];
} vl_ingest_device_t;

typedef struct vl_ingest_reading {
    const vl_ingest_measure_t *measure; /* NULL only in a rejection */
    vl_ingest_value_t values[VL_INGEST_MAX_VALUES];
    size_t n_values;
    /* effective time, as sent with its offset ("2024-03-01T08:00:00-05:00");
     * `end` set: a period [start, end]; otherwise an instant */
    char start[40], end[40];
    char record_id[128];        /* the source's own id of the record ("" none) */
    char statistic[24];         /* an aggregate: "average", "maximum", "minimum", "median",
                                   "count", "sum" (OMH descriptive statistic), else "" */
    const char *interpretation; /* "H" or "L": a value beyond the device's range, with no
                                   number (Dexcom "high"/"low"); NULL otherwise */
    vl_ingest_device_t device;
    char source_name[256]; /* the app or data origin ("com.fitbit.FitbitMobile") */
    char note[160];        /* free text worth keeping (a user note), "" none */
    char path[128];        /* where in the document the reading is ("/body", "records[3]") */
} vl_ingest_reading_t;

/** Options of a normalization. */
typedef struct vl_ingest_options {
    /* the zone of local times without one (Fitbit): "+01:00" or an IANA
     * name ("Europe/Berlin"); NULL: such a reading is rejected */
    const char *tz;
} vl_ingest_options_t;

/** Receives one reading (`why` NULL) or a rejection (`why` says what is
 *  wrong; r->path where, r->measure may be NULL). `r` is valid for the call
 *  only. Return 0 to go on, -1 to stop the walk (the normalizer returns -1
 *  with err unset). */
typedef int (*vl_ingest_emit_fn)(void *ctx, const vl_ingest_reading_t *r, const char *why);

/** Normalizes one document of format `f`. 0, or -1 when the document is
 *  not of the format at all (400 in err) or `emit` stopped. */
int vl_ingest_document(vl_ingest_format_t f, const json_t *doc, const vl_ingest_options_t *opts,
                       vl_ingest_emit_fn emit, void *ctx, vl_error_t *err);

/* The normalizers, one per format (same contract as vl_ingest_document). */
int vl_ingest_omh(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                  void *ctx, vl_error_t *err);
int vl_ingest_healthkit(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                        void *ctx, vl_error_t *err);
int vl_ingest_healthconnect(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                            void *ctx, vl_error_t *err);
int vl_ingest_fitbit(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                     void *ctx, vl_error_t *err);
int vl_ingest_withings(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                       void *ctx, vl_error_t *err);
int vl_ingest_googlefit(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                        void *ctx, vl_error_t *err);
int vl_ingest_dexcom(const json_t *doc, const vl_ingest_options_t *o, vl_ingest_emit_fn emit,
                     void *ctx, vl_error_t *err);

/* ------------------------------------------------------------------------
 * Apple Health export.xml (healthkit_xml.c): streamed with libxml2's
 * xmlReader in constant memory
 * ---------------------------------------------------------------------- */

/** Progress of an export read: bytes consumed of the file. */
typedef void (*vl_ingest_progress_fn)(void *ctx, uint64_t bytes_read);

/**
 * Reads an Apple Health export (export.xml, `fd` open for reading) and
 * turns each <Record> into the HealthKit JSON sample that
 * vl_ingest_healthkit() takes (quantity type, unit, value, dates, source,
 * device, metadata), passed to `sample` one at a time (borrowed for the
 * call; return -1 to stop). Records that are members of a <Correlation>
 * (blood pressure) are also exported at top level by Apple: each is passed
 * once, and a Correlation of blood pressure is passed as one correlation
 * sample. `progress` (may be NULL) is called every few MiB. 0 at the end
 * of the document, -1 with err (400: not a well-formed export).
 */
int vl_ingest_healthkit_xml(int fd, int (*sample)(void *ctx, json_t *sample), void *ctx,
                            vl_ingest_progress_fn progress, void *progress_ctx, vl_error_t *err);

/* ------------------------------------------------------------------------
 * Helpers shared by the normalizers (common.c)
 * ---------------------------------------------------------------------- */

/** Starts a reading of `measure` (key, must exist) at `path`. */
void vl_ingest_reading_init(vl_ingest_reading_t *r, const char *measure, const char *path);
/** Sets value `i` (0 for the reading's own; components in order) from the
 *  source's number and unit. `value` is JSON-number text or a decimal
 *  string; `ucum` the UCUM unit; `source_unit` as the source wrote it.
 *  -1 when the value is not a finite decimal (the caller rejects). */
int vl_ingest_set_value(vl_ingest_reading_t *r, size_t i, const char *value, const char *ucum,
                        const char *source_unit);
/** The number text of a JSON number or numeric string (NULL if neither). */
const char *vl_ingest_number_text(const json_t *v);
/** Emits a rejection of the reading at `path` (a measure key or NULL). */
int vl_ingest_reject(vl_ingest_emit_fn emit, void *ctx, const char *measure, const char *path,
                     const char *fmt, ...) VL_PRINTF(5, 6);

/**
 * Resolves a local date-time without a zone ("2024-03-01T08:00:00") in
 * zone `tz` ("+01:00", "-05:30", "Z", or an IANA name read from the
 * system's zoneinfo, /usr/share/zoneinfo) into `out` with its offset
 * ("2024-03-01T08:00:00+01:00"). A time that falls in a gap or overlap of
 * a DST change takes the offset in force before the change. 0, or -1 (bad
 * time, unknown zone).
 */
int vl_ingest_local_time(const char *local, const char *tz, char out[40]);
/** Formats an epoch time (nanoseconds, milliseconds or seconds as given
 *  by `scale`: 1e9, 1e3, 1) as a FHIR instant in UTC. Text input
 *  (Google Fit's nanosecond strings) is parsed exactly. 0 or -1. */
int vl_ingest_epoch_time(const char *digits, int64_t per_second, char out[40]);

/* ------------------------------------------------------------------------
 * The mapping tables, for docs/ingest.md and its test
 * ---------------------------------------------------------------------- */

/** One row of a format's mapping: source field -> measure, unit -> UCUM,
 *  and how time is read. */
typedef struct vl_ingest_mapping {
    const char
        *source;             /* the source's type or field ("heart-rate",
                                "HKQuantityTypeIdentifierHeartRate",      "type 11", "activities-heart") */
    const char *measure;     /* measure key (its LOINC comes from the measure) */
    const char *source_unit; /* the source's unit name ("beats/min", "count/min", "" none) */
    const char *ucum;        /* its UCUM code */
    const char
        *time_rule; /* "instant", "period", "instant-or-period", "local+tz", "epoch-ns", ... */
} vl_ingest_mapping_t;

/** The rows of format `f`, terminated by {NULL}. */
const vl_ingest_mapping_t *vl_ingest_mappings(vl_ingest_format_t f);

#endif
