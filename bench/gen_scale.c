/*
 * vitalog — bench/gen_scale.c: a large, realistic database for the search
 * benchmark (bench/scale.sh, `make bench-scale`).
 *
 *   bench_gen_scale --data DIR --observations N [--patients P] [--seed S] [--jobs J]
 *
 * Writes through the server's own write path, in-process: DIR, its ledger
 * key, its token key and its bootstrap admin token (DIR/admin.token) are
 * made exactly as `vitalog serve` makes them on a first start (src/cli/
 * serve.c), the store is opened with serve's options, and every write is a
 * POST /fhir transaction Bundle handed to vl_fhir_handle() with the admin's
 * bearer token, as the HTTP transport would hand it. So every Observation
 * is authorized, validated (the vital-signs profiles included), indexed,
 * committed by the writer's group commit with synchronous=FULL and
 * anchored in the ledger like any write. J worker threads (default 4) each
 * keep one Bundle in flight, so the writer always has several to commit
 * together.
 *
 * The data (deterministic: the same N, P and S give the same resources;
 * only the ids the server assigns, the times it records and the ledger key
 * differ):
 *
 *   - P Patients with known ids, p000000 .. (PUT Patient/<id>, Bundles of
 *     200 entries);
 *   - for patient i, N/P Observations (the first N % P patients one more),
 *     Bundles of 200 POST entries with urn:uuid fullUrls, in time order
 *     from the start of the patient's monitoring window, which begins at a
 *     pseudo-random minute of 2025 chosen so that the window ends within
 *     the year (when N/P is larger than about 150,000 it cannot and runs
 *     on into 2026):
 *       CGM glucose      LOINC 99504-3, mg/dL, category laboratory, every 5 min
 *       heart rate       8867-4, /min, in bursts of 15-90 min with a reading every
 *                        1-4 min (resting, walking or exercise: 50-130 /min),
 *                        20 min to 4 h apart; always on whole minutes
 *       body weight      29463-7, kg, daily at the patient's morning minute
 *       blood pressure   85354-9 panel, components 8480-6 / 8462-4 in mm[Hg], daily
 *       SpO2             2708-6 + 59408-5, %, morning and evening
 *       respiratory rate 9279-1, /min, daily
 *       body temperature 8310-5, Cel, on about one day in three
 *     all vital signs with category vital-signs, UCUM system and code.
 *
 * Written into DIR besides the server's files:
 *   DIR/scale-manifest.tsv  one line per patient, for the wrk scripts:
 *       id  window_start  window_end  heart_rates  glucose  t0 t100 t200 ... tend
 *     (epoch seconds; the glucose readings are at window_start + 5 min x k
 *     for k < glucose; tK is the time of the patient's heart rate number K,
 *     tend one minute after the last one, so [tK, tK+100) holds exactly 100)
 *   DIR/scale.json  the parameters and the figures below, written last: a
 *     directory without it is an interrupted run
 *
 * Prints a one-line counter on stderr when it is a terminal, and at the
 * end on stdout: observations written, seconds, observations/s, database
 * bytes (vitalog.db + vitalog.db-wal, after the store closed), bytes per
 * observation, and the ledger's size (entries, and bytes of the entry
 * lines and checkpoint notes as an export holds them); the same figures on
 * one "gen-scale key=value ..." line for scripts.
 *
 * Exit status: 0 done, 1 a failure (the first refused request's answer is
 * printed), 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "vitalog/auth.h"
#include "vitalog/cli.h"
#include "vitalog/fhir.h"
#include "vitalog/ledger.h"
#include "vitalog/store.h"
#include "vitalog/util.h"

#define GEN "bench_gen_scale"
#define GEN_BUNDLE 200                   /* entries per Bundle */
#define GEN_YEAR_START 1735689600LL      /* 2025-01-01T00:00:00Z */
#define GEN_YEAR_MINUTES (365LL * 1440)  /* 2025 is not a leap year */
#define GEN_MIN_RATE 0.30                /* fewest observations per minute of a window */
#define GEN_BODY_MAX (64u * 1024 * 1024) /* cap of one Bundle's text */

#define LOINC "http://loinc.org"
#define UCUM "http://unitsofmeasure.org"
#define OBS_CAT "http://terminology.hl7.org/CodeSystem/observation-category"

static const char usage[] =
    "usage: " GEN " --data DIR --observations N [--patients P] [--seed S] [--jobs J]\n"
    "\n"
    "Creates DIR (which must not hold a database yet) as `vitalog serve` would, then\n"
    "writes P Patients and N Observations through the server's write path (POST /fhir\n"
    "transaction Bundles of 200, in-process, as the bootstrap admin).\n"
    "\n"
    "  --data DIR          data directory (required)\n"
    "  --observations N    Observations to write (default 1000000)\n"
    "  --patients P        patients (default N/1000, at least 1)\n"
    "  --seed S            seed of the pseudo-random data (default 1)\n"
    "  --jobs J            worker threads, one Bundle in flight each (default 4)\n";

/* ------------------------------------------------------------------------
 * Deterministic pseudo-random numbers (SplitMix64)
 * ---------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi] */
static long rng_range(uint64_t *s, long lo, long hi)
{
    return lo + (long)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* uniform in [0, 1) */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

/* ------------------------------------------------------------------------
 * The run
 * ---------------------------------------------------------------------- */

typedef struct patient_info {
    int64_t window_start, window_end; /* epoch seconds */
    uint64_t heart_rates, glucose;    /* counts; glucose readings are 5 min apart from the start */
    int64_t *marks;                   /* times of heart rates 0, 100, 200, ..., then end */
    size_t n_marks;
} patient_info_t;

typedef struct gen {
    const char *dir;
    uint64_t n, p, seed;
    unsigned jobs;
    vl_fhir_t *fhir;
    char authorization[VL_TOKEN_TEXT_LEN + 16];
    patient_info_t *info;
    atomic_uint_fast64_t next;    /* next work item of the phase */
    uint64_t items;               /* work items of the phase */
    int phase;                    /* 0 Patients, 1 Observations */
    atomic_uint_fast64_t written; /* Observations committed */
    atomic_int failed;            /* a request was refused: stop */
    pthread_mutex_t err_mu;       /* serializes the failure report */
} gen_t;

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
} waiter_t;

static void on_notify(void *arg)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* POSTs one transaction Bundle and waits for its answer: 0 when it was
 * committed (200), -1 after reporting the answer. */
static int send_bundle(gen_t *g, const char *body, size_t len)
{
    vl_fhir_request_t req;
    vl_fhir_response_t res;
    vl_fhir_exchange_t *x = NULL;
    vl_params_t params;
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int rc = 0;

    vl_params_init(&params);
    memset(&req, 0, sizeof req);
    memset(&res, 0, sizeof res);
    req.method = "POST";
    req.path = "/fhir";
    req.params = &params;
    req.base_url = "http://127.0.0.1";
    req.authorization = g->authorization;
    req.content_type = "application/fhir+json";
    req.prefer = "return=minimal";
    req.body = body;
    req.body_len = len;
    if (vl_fhir_handle(g->fhir, &req, on_notify, &w, &x, &res) == 1) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        vl_fhir_resume(x, &res);
    }
    if (res.status != 200) {
        rc = -1;
        if (!atomic_exchange(&g->failed, 1)) {
            pthread_mutex_lock(&g->err_mu);
            fprintf(stderr, "\n" GEN ": POST /fhir answered %d: %.*s\n", res.status,
                    res.body ? (int)(res.body_len > 4000 ? 4000 : res.body_len) : 0,
                    res.body ? res.body : "");
            pthread_mutex_unlock(&g->err_mu);
        }
    }
    vl_fhir_response_free(&res);
    vl_fhir_exchange_free(x);
    vl_params_free(&params);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    return rc;
}

/* ------------------------------------------------------------------------
 * Bundles of Patients
 * ---------------------------------------------------------------------- */

static int patients_bundle(gen_t *g, uint64_t item, vl_buf_t *b)
{
    uint64_t first = item * GEN_BUNDLE, last = first + GEN_BUNDLE;
    if (last > g->p)
        last = g->p;
    vl_buf_reset(b);
    vl_buf_puts(b, "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[");
    for (uint64_t i = first; i < last; i++) {
        uint64_t s = g->seed ^ (0x5bd1e995ULL * (i + 1)) ^ 0xa5a5a5a5a5a5ULL;
        int female = (int)(rng_next(&s) & 1);
        long year = rng_range(&s, 1935, 2005), month = rng_range(&s, 1, 12),
             day = rng_range(&s, 1, 28);
        vl_buf_printf(
            b,
            "%s{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"p%06" PRIu64 "\","
            "\"identifier\":[{\"system\":\"urn:vitalog:bench-scale\",\"value\":\"p%06" PRIu64
            "\"}],\"active\":true,\"name\":[{\"family\":\"Scale\",\"given\":[\"P%" PRIu64
            "\"]}],\"gender\":\"%s\",\"birthDate\":\"%04ld-%02ld-%02ld\"},"
            "\"request\":{\"method\":\"PUT\",\"url\":\"Patient/p%06" PRIu64 "\"}}",
            i == first ? "" : ",", i, i, i, female ? "female" : "male", year, month, day, i);
    }
    vl_buf_puts(b, "]}");
    return b->failed ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * A patient's Observations
 * ---------------------------------------------------------------------- */

typedef struct sim {
    gen_t *g;
    uint64_t patient, budget, emitted, in_bundle;
    uint64_t rng;
    vl_buf_t *b;
    char subject[32];
    /* the patient */
    double hr_rest, glucose_base, glucose, weight, sys, dia, temp, spo2, rr;
    long morning; /* minute of the day of the daily readings */
    double meal_amp[3];
    /* heart-rate bursts, in minutes since the start of 2025 */
    int64_t burst_end, next_hr, next_burst;
    int hr_every, intensity;
    patient_info_t *info;
    size_t marks_cap;
} sim_t;

static void when_text(int64_t minute, char out[32])
{
    time_t t = (time_t)(GEN_YEAR_START + minute * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int flush_bundle(sim_t *s)
{
    if (s->in_bundle == 0)
        return 0;
    vl_buf_puts(s->b, "]}");
    if (s->b->failed) {
        fprintf(stderr, GEN ": out of memory building a Bundle\n");
        atomic_store(&s->g->failed, 1);
        return -1;
    }
    if (send_bundle(s->g, s->b->data, s->b->len) < 0)
        return -1;
    atomic_fetch_add(&s->g->written, s->in_bundle);
    s->in_bundle = 0;
    vl_buf_reset(s->b);
    return 0;
}

/* Opens an entry and the Observation up to its code: the caller appends
 * the code's codings, then observation_end() the rest. */
static void obs_begin(sim_t *s, const char *category, const char *category_display)
{
    uint64_t n = s->emitted;
    if (s->in_bundle == 0)
        vl_buf_puts(s->b, "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[");
    vl_buf_printf(s->b,
                  "%s{\"fullUrl\":\"urn:uuid:%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-8%03" PRIx32
                  "-%012" PRIx64 "\",\"resource\":{\"resourceType\":\"Observation\","
                  "\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":\"" OBS_CAT
                  "\",\"code\":\"%s\",\"display\":\"%s\"}],\"text\":\"%s\"}],\"code\":",
                  s->in_bundle ? "," : "", (uint32_t)(s->g->seed & 0xffffffffu),
                  (uint32_t)((s->g->seed >> 32) & 0xffff), (uint32_t)(s->patient & 0xfff),
                  (uint32_t)((s->patient >> 12) & 0xfff),
                  (uint64_t)((n & 0xffffffffffULL) | ((s->patient >> 24) << 40)), category,
                  category_display, category_display);
}

/* Closes the entry after the value, and sends the Bundle when it is full. */
static int obs_end(sim_t *s)
{
    vl_buf_puts(s->b, "},\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}");
    s->emitted++;
    s->in_bundle++;
    return s->in_bundle == GEN_BUNDLE ? flush_bundle(s) : 0;
}

static void obs_subject_time(sim_t *s, int64_t minute)
{
    char when[32];
    when_text(minute, when);
    vl_buf_printf(s->b, ",\"subject\":{\"reference\":\"%s\"},\"effectiveDateTime\":\"%s\"",
                  s->subject, when);
}

/* A single-coding code and a valueQuantity: value (with `decimals`), unit
 * as displayed, UCUM code. */
static int obs_quantity(sim_t *s, int64_t minute, const char *category, const char *cat_display,
                        const char *code, const char *display, double value, int decimals,
                        const char *unit, const char *ucum)
{
    obs_begin(s, category, cat_display);
    vl_buf_printf(s->b,
                  "{\"coding\":[{\"system\":\"" LOINC "\",\"code\":\"%s\",\"display\":\"%s\"}],"
                  "\"text\":\"%s\"}",
                  code, display, display);
    obs_subject_time(s, minute);
    vl_buf_printf(s->b,
                  ",\"valueQuantity\":{\"value\":%.*f,\"unit\":\"%s\",\"system\":\"" UCUM
                  "\",\"code\":\"%s\"}",
                  decimals, value, unit, ucum);
    return obs_end(s);
}

static int obs_vital(sim_t *s, int64_t minute, const char *code, const char *display, double value,
                     int decimals, const char *unit, const char *ucum)
{
    return obs_quantity(s, minute, "vital-signs", "Vital Signs", code, display, value, decimals,
                        unit, ucum);
}

static int obs_spo2(sim_t *s, int64_t minute, double value)
{
    obs_begin(s, "vital-signs", "Vital Signs");
    vl_buf_puts(s->b, "{\"coding\":[{\"system\":\"" LOINC "\",\"code\":\"2708-6\","
                      "\"display\":\"Oxygen saturation in Arterial blood\"},{\"system\":\"" LOINC
                      "\",\"code\":\"59408-5\",\"display\":\"Oxygen saturation in Arterial blood "
                      "by Pulse oximetry\"}],\"text\":\"SpO2\"}");
    obs_subject_time(s, minute);
    vl_buf_printf(s->b,
                  ",\"valueQuantity\":{\"value\":%.0f,\"unit\":\"%%\",\"system\":\"" UCUM
                  "\",\"code\":\"%%\"}",
                  value);
    return obs_end(s);
}

static int obs_bp(sim_t *s, int64_t minute, double sys, double dia)
{
    static const char comp[] = "{\"code\":{\"coding\":[{\"system\":\"" LOINC "\",\"code\":\"%s\","
                               "\"display\":\"%s\"}]},\"valueQuantity\":{\"value\":%.0f,"
                               "\"unit\":\"mmHg\",\"system\":\"" UCUM "\",\"code\":\"mm[Hg]\"}}";
    obs_begin(s, "vital-signs", "Vital Signs");
    vl_buf_puts(s->b, "{\"coding\":[{\"system\":\"" LOINC "\",\"code\":\"85354-9\","
                      "\"display\":\"Blood pressure panel with all children optional\"}],"
                      "\"text\":\"Blood pressure systolic & diastolic\"}");
    obs_subject_time(s, minute);
    vl_buf_puts(s->b, ",\"component\":[");
    vl_buf_printf(s->b, comp, "8480-6", "Systolic blood pressure", sys);
    vl_buf_puts(s->b, ",");
    vl_buf_printf(s->b, comp, "8462-4", "Diastolic blood pressure", dia);
    vl_buf_puts(s->b, "]");
    return obs_end(s);
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The heart-rate schedule: the next burst after minute m. */
static void plan_burst(sim_t *s, int64_t m)
{
    int64_t start = m + rng_range(&s->rng, 20, 240);
    double u = rng_unit(&s->rng);
    s->next_burst = start;
    s->burst_end = start + rng_range(&s->rng, 15, 90);
    s->hr_every = (int)rng_range(&s->rng, 1, 4);
    s->intensity = u < 0.45 ? 0 : u < 0.8 ? 1 : 2; /* resting, walking, exercise */
    s->next_hr = start;
}

static double heart_rate(sim_t *s, int64_t m)
{
    double base = s->hr_rest, v;
    if (s->intensity == 1)
        base += 22;
    else if (s->intensity == 2)
        base = 104 + (s->hr_rest - 55) * 0.6; /* 104 .. 119 */
    /* exercise climbs during the burst */
    if (s->intensity == 2)
        base += 14.0 * (double)(m - s->next_burst) / (double)(s->burst_end - s->next_burst + 1);
    v = base + rng_range(&s->rng, -6, 6);
    return clamp(v, 50, 130);
}

static double glucose(sim_t *s, int64_t m)
{
    long mod = (long)(((m % 1440) + 1440) % 1440);
    double bump = 0;
    static const long meal_at[3] = {60, 330, 690}; /* after the morning minute */
    for (int k = 0; k < 3; k++) {
        long dt = (mod - (s->morning + meal_at[k]) + 1440) % 1440;
        if (dt < 240) {
            double x = (double)dt / 45.0;
            bump += s->meal_amp[k] * x * exp(1 - x);
        }
    }
    s->glucose +=
        (s->glucose_base - s->glucose) * 0.05 + (double)rng_range(&s->rng, -30, 30) / 10.0;
    return clamp(s->glucose + bump, 40, 400);
}

static int mark_add(sim_t *s, int64_t t)
{
    patient_info_t *pi = s->info;
    if (pi->n_marks == s->marks_cap) {
        size_t cap = s->marks_cap ? s->marks_cap * 2 : 16;
        int64_t *m = realloc(pi->marks, cap * sizeof *m);
        if (!m)
            return -1;
        pi->marks = m;
        s->marks_cap = cap;
    }
    pi->marks[pi->n_marks++] = t;
    return 0;
}

/* Emits one reading unless the budget is spent (then leaves the loop of
 * simulate() for `spent`); returns -1 from simulate() on a failure. */
#define EMIT(call)                                                                                 \
    do {                                                                                           \
        if (s->emitted == s->budget)                                                               \
            goto spent;                                                                            \
        if ((call) < 0)                                                                            \
            return -1;                                                                             \
    } while (0)

static int simulate(sim_t *s, int64_t start)
{
    int64_t m, last_hr = -1;
    for (m = start;; m++) {
        long mod = (long)(((m % 1440) + 1440) % 1440);
        if (mod == s->morning) {
            int64_t day = m / 1440;
            s->weight += (double)rng_range(&s->rng, -4, 4) / 10.0;
            s->sys = clamp(s->sys + (double)rng_range(&s->rng, -3, 3), 95, 170);
            s->dia = clamp(s->dia + (double)rng_range(&s->rng, -2, 2), 55, 105);
            EMIT(obs_vital(s, m, "29463-7", "Body weight", s->weight, 1, "kg", "kg"));
            EMIT(obs_bp(s, m, s->sys + rng_range(&s->rng, -4, 4),
                        s->dia + rng_range(&s->rng, -3, 3)));
            EMIT(obs_spo2(s, m, clamp(s->spo2 + rng_range(&s->rng, -1, 1), 88, 100)));
            EMIT(obs_vital(s, m, "9279-1", "Respiratory rate", s->rr + rng_range(&s->rng, -2, 2), 0,
                           "breaths/minute", "/min"));
            if ((day + (int64_t)s->patient) % 3 == 0)
                EMIT(obs_vital(s, m, "8310-5", "Body temperature",
                               s->temp + (double)rng_range(&s->rng, -3, 4) / 10.0, 1, "C", "Cel"));
        }
        if (mod == (s->morning + 720) % 1440)
            EMIT(obs_spo2(s, m, clamp(s->spo2 + rng_range(&s->rng, -2, 1), 88, 100)));
        if ((m - start) % 5 == 0)
            EMIT(obs_quantity(s, m, "laboratory", "Laboratory", "99504-3",
                              "Glucose [Mass/volume] in Interstitial fluid", glucose(s, m), 0,
                              "mg/dL", "mg/dL"));
        if ((m - start) % 5 == 0)
            s->info->glucose++;
        if (m == s->next_hr) {
            if (s->emitted == s->budget)
                goto spent;
            if (s->info->heart_rates % 100 == 0 && mark_add(s, GEN_YEAR_START + m * 60) < 0)
                return -1;
            EMIT(obs_vital(s, m, "8867-4", "Heart rate", heart_rate(s, m), 0, "beats/minute",
                           "/min"));
            s->info->heart_rates++;
            last_hr = m;
            s->next_hr += s->hr_every;
            if (s->next_hr >= s->burst_end)
                plan_burst(s, s->burst_end);
        }
    }
spent:
    s->info->window_start = GEN_YEAR_START + start * 60;
    s->info->window_end = GEN_YEAR_START + m * 60;
    if (last_hr >= 0 && mark_add(s, GEN_YEAR_START + (last_hr + 1) * 60) < 0)
        return -1;
    return flush_bundle(s);
}

static int patient_observations(gen_t *g, uint64_t i, vl_buf_t *b)
{
    sim_t s;
    uint64_t w = g->seed * 0x2545f4914f6cdd1dULL + i * 0x9e3779b97f4a7c15ULL + 7;
    int64_t est, span, start;
    memset(&s, 0, sizeof s);
    s.g = g;
    s.patient = i;
    s.budget = g->n / g->p + (i < g->n % g->p ? 1 : 0);
    s.b = b;
    s.info = &g->info[i];
    s.rng = g->seed ^ (i + 1) * 0xd1b54a32d192ed03ULL;
    rng_next(&s.rng);
    snprintf(s.subject, sizeof s.subject, "Patient/p%06" PRIu64, i);
    s.hr_rest = (double)rng_range(&s.rng, 55, 80);
    s.glucose_base =
        (double)(rng_unit(&s.rng) < 0.2 ? rng_range(&s.rng, 140, 180) : rng_range(&s.rng, 85, 120));
    s.glucose = s.glucose_base;
    s.weight = (double)rng_range(&s.rng, 550, 1150) / 10.0;
    s.sys = (double)rng_range(&s.rng, 105, 145);
    s.dia = (double)rng_range(&s.rng, 65, 92);
    s.temp = (double)rng_range(&s.rng, 363, 369) / 10.0;
    s.spo2 = (double)rng_range(&s.rng, 95, 99);
    s.rr = (double)rng_range(&s.rng, 12, 18);
    s.morning = rng_range(&s.rng, 390, 540);
    for (int k = 0; k < 3; k++)
        s.meal_amp[k] = (double)rng_range(&s.rng, 20, s.glucose_base > 130 ? 90 : 55);
    /* the window: begins at a pseudo-random minute such that it ends
     * within 2025 at the fewest readings per minute */
    est = (int64_t)((double)s.budget / GEN_MIN_RATE) + 1440;
    span = GEN_YEAR_MINUTES - est;
    start = span > 1 ? (int64_t)(rng_next(&w) % (uint64_t)span) : 0;
    plan_burst(&s, start);
    vl_buf_reset(b);
    return simulate(&s, start);
}

static void *worker(void *arg)
{
    gen_t *g = arg;
    vl_buf_t b = VL_BUF_INIT(GEN_BODY_MAX);
    for (;;) {
        uint64_t item = atomic_fetch_add(&g->next, 1);
        int rc;
        if (item >= g->items || atomic_load(&g->failed))
            break;
        if (g->phase == 0) {
            rc = patients_bundle(g, item, &b);
            if (rc == 0)
                rc = send_bundle(g, b.data, b.len);
        } else {
            rc = patient_observations(g, item, &b);
        }
        if (rc < 0) {
            atomic_store(&g->failed, 1);
            break;
        }
    }
    vl_buf_free(&b);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs a phase on g->jobs threads; the counter on stderr when it is a
 * terminal. 0, or -1 when a request failed. */
static int run_phase(gen_t *g, int phase, uint64_t items, double t0)
{
    pthread_t th[64];
    unsigned started = 0;
    int tty = isatty(STDERR_FILENO);
    g->phase = phase;
    g->items = items;
    atomic_store(&g->next, 0);
    for (; started < g->jobs; started++)
        if (pthread_create(&th[started], NULL, worker, g) != 0) {
            fprintf(stderr, GEN ": cannot start a thread\n");
            atomic_store(&g->failed, 1);
            break;
        }
    while (tty && !atomic_load(&g->failed) && atomic_load(&g->next) < items + g->jobs) {
        uint64_t w = atomic_load(&g->written);
        double dt = now_s() - t0;
        if (phase == 0)
            fprintf(stderr, "\r" GEN ": patients %" PRIu64 "/%" PRIu64 " ...",
                    atomic_load(&g->next), g->p);
        else
            fprintf(stderr, "\r" GEN ": %" PRIu64 "/%" PRIu64 " observations, %.0f/s   ", w, g->n,
                    dt > 0 ? (double)w / dt : 0.0);
        usleep(250000);
    }
    for (unsigned k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    if (tty && phase == 1)
        fprintf(stderr, "\r" GEN ": %" PRIu64 "/%" PRIu64 " observations              \n",
                atomic_load(&g->written), g->n);
    return atomic_load(&g->failed) ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Setting the data directory up as `vitalog serve` does
 * ---------------------------------------------------------------------- */

/* DIR/ledger.key and DIR/ledger.vkey, created as on a server's first start
 * (src/cli/serve.c ledger_key_init; DIR holds no database here). */
static int ledger_key_create(const char *dir, vl_ledger_key_t *key)
{
    char path[PATH_MAX], vpath[PATH_MAX], text[512], name[128], hex[17];
    unsigned char r[8];
    vl_error_t err = VL_ERROR_INIT;
    int rc;
    snprintf(path, sizeof path, "%s/ledger.key", dir);
    snprintf(vpath, sizeof vpath, "%s/ledger.vkey", dir);
    randombytes_buf(r, sizeof r);
    sodium_bin2hex(hex, sizeof hex, r, sizeof r);
    snprintf(name, sizeof name, "vitalog.local/%s", hex);
    if (vl_ledger_key_generate(name, key, &err) < 0 ||
        vl_ledger_key_skey(key, text, sizeof text - 1) < 0) {
        fprintf(stderr, GEN ": cannot create a ledger key: %s\n", vl_error_message(&err));
        vl_error_clear(&err);
        return -1;
    }
    strcat(text, "\n");
    rc = vl_cli_write_new(path, text, strlen(text), 0600);
    sodium_memzero(text, sizeof text);
    if (rc < 0 || vl_ledger_key_vkey(key, text, sizeof text - 1) < 0) {
        fprintf(stderr, GEN ": cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    strcat(text, "\n");
    if (vl_cli_write_new(vpath, text, strlen(text), 0644) < 0) {
        fprintf(stderr, GEN ": cannot write %s: %s\n", vpath, strerror(errno));
        return -1;
    }
    return 0;
}

typedef struct ledger_bytes {
    uint64_t entries, bytes;
} ledger_bytes_t;

static int count_ledger(void *ctx, uint64_t index, const char *line, size_t line_len,
                        const char *note, size_t note_len)
{
    ledger_bytes_t *lb = ctx;
    (void)index;
    (void)line;
    (void)note;
    if (line)
        lb->entries++;
    lb->bytes += line ? line_len + 1 : note_len + 16; /* {"checkpoint":"..."}\n, roughly */
    return 0;
}

static uint64_t file_size(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *s == '\0' || *s == '-' || *end)
        return -1;
    *out = v;
    return 0;
}

static int write_manifest(const gen_t *g)
{
    char path[PATH_MAX];
    FILE *f;
    snprintf(path, sizeof path, "%s/scale-manifest.tsv", g->dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# id\twindow_start\twindow_end\theart_rates\tglucose\tt0 t100 t200 ... tend\n");
    for (uint64_t i = 0; i < g->p; i++) {
        const patient_info_t *pi = &g->info[i];
        fprintf(f, "p%06" PRIu64 "\t%" PRId64 "\t%" PRId64 "\t%" PRIu64 "\t%" PRIu64 "\t", i,
                pi->window_start, pi->window_end, pi->heart_rates, pi->glucose);
        for (size_t k = 0; k < pi->n_marks; k++)
            fprintf(f, "%s%" PRId64, k ? " " : "", pi->marks[k]);
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"observations", required_argument, NULL, 'n'},
        {"patients", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},
        {"jobs", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    gen_t g;
    vl_ledger_key_t key;
    vl_store_options_t sopts;
    vl_fhir_options_t fopts;
    vl_store_t *store = NULL;
    vl_auth_t *auth = NULL;
    vl_auth_options_t aopts = {NULL, NULL, NULL};
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_error_t err = VL_ERROR_INIT;
    unsigned char token_key[32];
    char first[512], path[PATH_MAX], *token = NULL;
    uint64_t v, jobs = 4, ledger_size = 0, db_bytes = 0, wal_bytes = 0;
    ledger_bytes_t lb = {0, 0};
    double t0, secs;
    int opt, rc = 1, lockfd = -1, have_p = 0;
    struct stat st;
    FILE *f;

    memset(&g, 0, sizeof g);
    memset(&key, 0, sizeof key);
    memset(&sopts, 0, sizeof sopts);
    memset(&fopts, 0, sizeof fopts);
    g.n = 1000000;
    g.seed = 1;
    pthread_mutex_init(&g.err_mu, NULL);
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': g.dir = optarg; break;
        case 'n':
            if (parse_u64(optarg, &g.n) < 0 || g.n == 0)
                goto bad;
            break;
        case 'p':
            if (parse_u64(optarg, &g.p) < 0 || g.p == 0 || g.p > 100000000)
                goto bad;
            have_p = 1;
            break;
        case 's':
            if (parse_u64(optarg, &g.seed) < 0)
                goto bad;
            break;
        case 'j':
            if (parse_u64(optarg, &jobs) < 0 || jobs == 0 || jobs > 64)
                goto bad;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!g.dir || optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (!have_p)
        g.p = g.n / 1000 ? g.n / 1000 : 1;
    if (g.p > g.n) {
        fprintf(stderr, GEN ": more patients (%" PRIu64 ") than observations\n", g.p);
        return 2;
    }
    g.jobs = (unsigned)jobs;
    if (sodium_init() < 0) {
        fprintf(stderr, GEN ": libsodium failed to initialize\n");
        return 1;
    }
    vl_log_set_level(VL_LOG_WARN);
    g.info = calloc(g.p, sizeof *g.info);
    if (!g.info) {
        fprintf(stderr, GEN ": out of memory\n");
        return 1;
    }

    /* as `vitalog serve` on a first start: umask, DIR, lock, ledger key,
     * store, token key, auth, bootstrap admin token */
    umask(077);
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    if (mkdir(g.dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, GEN ": cannot create %s: %s\n", g.dir, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/vitalog.db", g.dir);
    if (stat(path, &st) == 0) {
        fprintf(stderr, GEN ": %s already holds a database; give a new directory\n", g.dir);
        goto out;
    }
    lockfd = vl_cli_lock_data(GEN, g.dir);
    if (lockfd < 0 || ledger_key_create(g.dir, &key) < 0)
        goto out;
    sopts.key = &key;
    sopts.origin = key.name;
    if (vl_store_open(g.dir, &sopts, &store, &serr) < 0) {
        fprintf(stderr, GEN ": %s\n", serr.message);
        goto out;
    }
    if (vl_cli_first_vkey(GEN, g.dir, first, sizeof first) < 0)
        goto out;
    /* (serve then indexes versions stored before a migration: a new
     * database has none) */
    if (vl_auth_token_key_load(g.dir, token_key, &err) < 0) {
        fprintf(stderr, GEN ": %s\n", vl_error_message(&err));
        goto out;
    }
    aopts.store = store;
    aopts.token_key = token_key;
    auth = vl_auth_new(&aopts, &err);
    sodium_memzero(token_key, sizeof token_key);
    if (!auth || vl_auth_bootstrap(store, vl_auth_key(auth), g.dir, &err) < 0) {
        fprintf(stderr, GEN ": %s\n", vl_error_message(&err));
        goto out;
    }
    snprintf(path, sizeof path, "%s/admin.token", g.dir);
    token = vl_cli_read_small(path, 4096);
    if (!token) {
        fprintf(stderr, GEN ": cannot read %s: %s\n", path, strerror(errno));
        goto out;
    }
    snprintf(g.authorization, sizeof g.authorization, "Bearer %s", token);
    fopts.policy = vl_auth_policy(auth);
    fopts.auth = auth;
    fopts.store = store;
    fopts.ledger_key = &key;
    fopts.ledger_first_vkey = first;
    g.fhir = vl_fhir_new(&fopts);
    if (!g.fhir) {
        fprintf(stderr, GEN ": cannot start the interaction layer\n");
        goto out;
    }

    fprintf(stderr,
            GEN ": %" PRIu64 " observations of %" PRIu64 " patients into %s (seed %" PRIu64
                ", %u jobs)\n",
            g.n, g.p, g.dir, g.seed, g.jobs);
    t0 = now_s();
    if (run_phase(&g, 0, (g.p + GEN_BUNDLE - 1) / GEN_BUNDLE, t0) < 0 ||
        run_phase(&g, 1, g.p, t0) < 0)
        goto out;
    secs = now_s() - t0;

    if (vl_store_ledger_size(store, vl_scope_everything(), &ledger_size, &serr) < 0 ||
        vl_store_ledger_scan(store, vl_scope_everything(), 0, ledger_size, count_ledger, &lb,
                             &serr) < 0) {
        fprintf(stderr, GEN ": reading the ledger: %s\n", serr.message);
        goto out;
    }
    if (write_manifest(&g) < 0) {
        fprintf(stderr, GEN ": cannot write %s/scale-manifest.tsv\n", g.dir);
        goto out;
    }
    vl_fhir_free(g.fhir);
    g.fhir = NULL;
    vl_auth_free(auth);
    auth = NULL;
    vl_store_close(store);
    store = NULL;
    db_bytes = file_size(g.dir, "vitalog.db");
    wal_bytes = file_size(g.dir, "vitalog.db-wal");
    v = db_bytes + wal_bytes;

    printf("observations written: %" PRIu64 " (and %" PRIu64 " patients)\n", g.n, g.p);
    printf("seconds: %.1f\n", secs);
    printf("observations/s: %.0f\n", (double)g.n / secs);
    printf("database bytes: %" PRIu64 " (vitalog.db %" PRIu64 " + vitalog.db-wal %" PRIu64 ")\n", v,
           db_bytes, wal_bytes);
    printf("bytes per observation: %.0f\n", (double)v / (double)g.n);
    printf("ledger: %" PRIu64 " entries, %" PRIu64 " bytes of entry lines and checkpoints\n",
           ledger_size, lb.bytes);
    printf("gen-scale observations=%" PRIu64 " patients=%" PRIu64 " seed=%" PRIu64
           " seconds=%.1f obs_per_s=%.0f db_bytes=%" PRIu64 " bytes_per_obs=%.0f"
           " ledger_entries=%" PRIu64 " ledger_bytes=%" PRIu64 "\n",
           g.n, g.p, g.seed, secs, (double)g.n / secs, v, (double)v / (double)g.n, ledger_size,
           lb.bytes);

    snprintf(path, sizeof path, "%s/scale.json", g.dir);
    f = fopen(path, "w");
    if (!f ||
        fprintf(f,
                "{\"observations\":%" PRIu64 ",\"patients\":%" PRIu64 ",\"seed\":%" PRIu64
                ",\"seconds\":%.1f,\"obs_per_s\":%.0f,\"db_bytes\":%" PRIu64
                ",\"bytes_per_obs\":%.0f,\"ledger_entries\":%" PRIu64 ",\"ledger_bytes\":%" PRIu64
                "}\n",
                g.n, g.p, g.seed, secs, (double)g.n / secs, v, (double)v / (double)g.n, ledger_size,
                lb.bytes) < 0 ||
        fclose(f) != 0) {
        fprintf(stderr, GEN ": cannot write %s\n", path);
        goto out;
    }
    rc = 0;
out:
    vl_error_clear(&err);
    vl_fhir_free(g.fhir);
    vl_auth_free(auth);
    vl_store_close(store);
    if (token)
        sodium_memzero(token, strlen(token));
    free(token);
    sodium_memzero(&key, sizeof key);
    if (lockfd >= 0)
        close(lockfd);
    for (uint64_t i = 0; g.info && i < g.p; i++)
        free(g.info[i].marks);
    free(g.info);
    return rc;
bad:
    fprintf(stderr, GEN ": bad value '%s' for an option\n%s", optarg, usage);
    return 2;
}
