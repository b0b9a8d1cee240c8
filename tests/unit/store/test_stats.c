/*
 * Unit tests for the clinical operations of the store (src/store/
 * sqlite_stats.c): vl_store_lastn() and vl_store_series_stats() over a real
 * store in a temporary directory, with the index rows the fhir module
 * computes for real Observations (vl_fhir_index), so that the series,
 * quantity and composite rows are the ones the server writes.
 *
 * Each test opens its own store (the cases name complete expected
 * answers). Expected statistics are computed here from the readings
 * themselves, in their canonical unit (kg: [lb_av] x 0.45359237).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support.h"
#include "vitalog/fhir.h"

#define LOINC "http://loinc.org"
#define SNOMED "http://snomed.info/sct"
#define LB 0.45359237

typedef struct fixture {
    char root[64];
    vl_store_t *store;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    char dir[96];
    if (!f)
        return -1;
    vl_log_set_level(VL_LOG_WARN);
    snprintf(f->root, sizeof f->root, "/tmp/vl-stats-XXXXXX");
    tstore_mkdtemp(f->root);
    snprintf(dir, sizeof dir, "%s/data", f->root);
    f->store = tstore_open(dir, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    vl_store_close(f->store);
    tstore_rmtree(f->root);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------------
 * Observations
 * ---------------------------------------------------------------------- */

typedef struct obs {
    const char *id, *patient; /* patient id */
    const char *codings;      /* JSON of Observation.code.coding's items */
    const char *when;         /* effectiveDateTime, or NULL */
    double value;
    const char *unit;       /* UCUM code of valueQuantity, or NULL: no value */
    const char *components; /* JSON of Observation.component's items, or NULL */
    const char *status;     /* NULL: final */
} obs_t;

static char *obs_json(const obs_t *o)
{
    static char text[2048];
    char when[96] = "", value[256] = "", comps[1024] = "";
    if (o->when)
        snprintf(when, sizeof when, ",\"effectiveDateTime\":\"%s\"", o->when);
    if (o->unit)
        snprintf(value, sizeof value,
                 ",\"valueQuantity\":{\"value\":%.10g,\"unit\":\"%s\","
                 "\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}",
                 o->value, o->unit, o->unit);
    if (o->components)
        snprintf(comps, sizeof comps, ",\"component\":[%s]", o->components);
    if ((size_t)snprintf(text, sizeof text,
                         "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":\"%s\","
                         "\"code\":{\"coding\":[%s]},\"subject\":{\"reference\":\"Patient/%s\"}%s"
                         "%s%s}",
                         o->id, o->status ? o->status : "final", o->codings, o->patient, when,
                         value, comps) >= sizeof text)
        fail_msg("test Observation %s is too long", o->id);
    return text;
}

static void obs_index(const char *json, vl_index_t *ix)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *res = vl_json_parse(json, strlen(json), NULL, &err);
    assert_non_null(res);
    vl_index_init(ix);
    if (vl_fhir_index(vl_fhir_type_find("Observation"), res, ix, &err) != 0)
        fail_msg("index: %s", vl_error_message(&err));
    json_decref(res);
}

/* Writes the next version of o (its own unit). */
static void put_obs(fixture_t *f, const obs_t *o)
{
    const char *json = obs_json(o);
    vl_index_t ix;
    obs_index(json, &ix);
    tstore_put_ok(f->store, "Observation", o->id, json, &ix);
    vl_index_free(&ix);
}

/* Writes several Observations in one unit: one lastUpdated for all. */
typedef struct many {
    tstore_put_t puts[8];
    size_t n;
} many_t;

static int apply_many(vl_store_txn_t *txn, void *arg)
{
    many_t *m = arg;
    for (size_t i = 0; i < m->n; i++)
        if (tstore_apply_put(txn, &m->puts[i]) < 0)
            return -1;
    return 0;
}

static void put_together(fixture_t *f, const obs_t *list, size_t n)
{
    many_t m = {.n = n};
    char *bodies[8];
    vl_index_t ix[8];
    vl_store_unit_t u;
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        bodies[i] = strdup(obs_json(&list[i]));
        obs_index(bodies[i], &ix[i]);
        m.puts[i] = tstore_put_of("Observation", list[i].id, 0, VL_METHOD_POST, bodies[i], &ix[i]);
    }
    memset(&u, 0, sizeof u);
    u.apply = apply_many;
    u.arg = &m;
    assert_int_equal(vl_store_run(f->store, &u), 0);
    for (size_t i = 0; i < n; i++) {
        vl_index_free(&ix[i]);
        free(bodies[i]);
    }
}

#define LOINC_CODING(c) "{\"system\":\"http://loinc.org\",\"code\":\"" c "\"}"

static const char *const WEIGHT = LOINC_CODING("29463-7");
static const char *const HEART = LOINC_CODING("8867-4");

static char *component(char *buf, size_t n, const char *code, double v)
{
    snprintf(
        buf, n,
        "{\"code\":{\"coding\":[" LOINC_CODING("%s") "]},\"valueQuantity\":{\"value\":%g,"
                                                     "\"unit\":\"mm[Hg]\",\"system\":\"http://"
                                                     "unitsofmeasure.org\",\"code\":\"mm[Hg]\"}}",
        code, v);
    return buf;
}

/* ------------------------------------------------------------------------
 * $lastn
 * ---------------------------------------------------------------------- */

/* A query as the fhir module makes it, for one patient (NULL: none). */
static vl_query_t lastn_query(const char *patient)
{
    vl_query_t q;
    memset(&q, 0, sizeof q);
    q.type = "Observation";
    q.series.patient = patient;
    q.series.code_param = "code";
    q.series.date_param = "date";
    return q;
}

/* Runs $lastn and compares the ids in order ("a,b,c"). */
static void expect_lastn(fixture_t *f, vl_scope_t scope, const vl_query_t *q, int max,
                         const char *want)
{
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    char got[1024] = "";
    if (vl_store_lastn(f->store, scope, q, max, &out, &err) != 0)
        fail_msg("lastn: %s: %s", vl_store_kind_name(err.kind), err.message);
    for (size_t i = 0; i < out.n; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s%s", i ? "," : "", out.items[i].id);
    }
    assert_int_equal(out.total, (int64_t)out.n);
    if (strcmp(got, want) != 0)
        fail_msg("lastn max %d: got \"%s\", want \"%s\"", max, got, want);
    vl_records_free(&out);
}

static void two_patients(fixture_t *f)
{
    /* p1: weights w1..w4 (w4 updated), heart rates h1, h2; p2: one weight */
    for (int i = 1; i <= 4; i++) {
        char id[8], when[32];
        snprintf(id, sizeof id, "w%d", i);
        snprintf(when, sizeof when, "2024-01-0%dT08:00:00Z", i);
        put_obs(f, &(obs_t){id, "p1", WEIGHT, when, 80 + i, "kg", NULL, NULL});
    }
    put_obs(f, &(obs_t){"h1", "p1", HEART, "2024-01-01T09:00:00Z", 60, "/min", NULL, NULL});
    put_obs(f, &(obs_t){"h2", "p1", HEART, "2024-01-02T09:00:00Z", 61, "/min", NULL, NULL});
    put_obs(f, &(obs_t){"x1", "p2", WEIGHT, "2024-01-05T08:00:00Z", 70, "kg", NULL, NULL});
}

static void lastn_groups_and_max(void **state)
{
    fixture_t *f = *state;
    vl_query_t q = lastn_query("Patient/p1");
    two_patients(f);
    /* groups by code ("29463-7" < "8867-4"), newest first */
    expect_lastn(f, vl_scope_everything(), &q, 1, "w4,h2");
    expect_lastn(f, vl_scope_everything(), &q, 3, "w4,w3,w2,h2,h1");
    expect_lastn(f, vl_scope_everything(), &q, 100, "w4,w3,w2,w1,h2,h1");
    /* every patient (the admin's scope): by patient */
    q = lastn_query(NULL);
    expect_lastn(f, vl_scope_everything(), &q, 1, "w4,h2,x1");
    /* a code given as the series' code, or as a condition of code_param */
    q = lastn_query("Patient/p1");
    q.series.code = "8867-4";
    expect_lastn(f, vl_scope_everything(), &q, 5, "h2,h1");
    {
        vl_query_value_t v = {.system = LOINC, .text = "29463-7"};
        vl_query_cond_t c = {
            .param = "code", .kind = VL_INDEX_TOKEN, .missing = -1, .n = 1, .values = &v};
        q = lastn_query(NULL);
        q.conds = &c;
        q.n = 1;
        expect_lastn(f, vl_scope_everything(), &q, 2, "w4,w3,x1");
        v.system = SNOMED; /* no such group */
        expect_lastn(f, vl_scope_everything(), &q, 2, "");
    }
}

static void lastn_ties_updates_deletes(void **state)
{
    fixture_t *f = *state;
    vl_query_t q = lastn_query("Patient/p1");
    /* the same time: t1 written before t2 (later lastUpdated first) */
    put_obs(f, &(obs_t){"t1", "p1", HEART, "2024-02-01T10:00:00Z", 70, "/min", NULL, NULL});
    put_obs(f, &(obs_t){"t2", "p1", HEART, "2024-02-01T10:00:00Z", 71, "/min", NULL, NULL});
    expect_lastn(f, vl_scope_everything(), &q, 2, "t2,t1");
    /* the same time and the same lastUpdated (one unit): the one written
     * later first */
    put_together(f,
                 (obs_t[]){{"tz", "p1", HEART, "2024-02-02T10:00:00Z", 72, "/min", NULL, NULL},
                           {"ta", "p1", HEART, "2024-02-02T10:00:00Z", 73, "/min", NULL, NULL},
                           {"tm", "p1", HEART, "2024-02-02T10:00:00Z", 74, "/min", NULL, NULL}},
                 3);
    expect_lastn(f, vl_scope_everything(), &q, 4, "tm,ta,tz,t2");
    /* an update is one Observation (its current version); a delete is gone */
    put_obs(f, &(obs_t){"ta", "p1", HEART, "2024-01-01T10:00:00Z", 75, "/min", NULL, NULL});
    tstore_delete_ok(f->store, "Observation", "tm");
    expect_lastn(f, vl_scope_everything(), &q, 4, "tz,t2,t1,ta");
}

static void lastn_multi_coded_and_undated(void **state)
{
    fixture_t *f = *state;
    vl_query_t q = lastn_query("Patient/p1");
    put_obs(f,
            &(obs_t){"m", "p1",
                     LOINC_CODING("8310-5") ",{\"system\":\"" SNOMED "\",\"code\":\"386725007\"}",
                     "2024-01-02T10:00:00Z", 37, "Cel", NULL, NULL});
    put_obs(f, &(obs_t){"old", "p1", LOINC_CODING("8310-5"), "2024-01-01T10:00:00Z", 36.8, "Cel",
                        NULL, NULL});
    put_obs(f, &(obs_t){"nodate", "p1", LOINC_CODING("8310-5"), NULL, 36.9, "Cel", NULL, NULL});
    /* groups 386725007 (SNOMED) then 8310-5 (LOINC): m once, in the first */
    expect_lastn(f, vl_scope_everything(), &q, 1, "m");
    expect_lastn(f, vl_scope_everything(), &q, 3, "m,old,nodate");
}

static void lastn_scopes(void **state)
{
    fixture_t *f = *state;
    vl_query_t q = lastn_query("Patient/p1"), none = lastn_query(NULL);
    const char *p1[] = {"p1"};
    vl_scope_code_t weight = {LOINC, "29463-7"};
    const char *obs_type[] = {"Observation"};
    vl_scope_rule_t rule = {"p1", 0, 1, obs_type, 1, &weight, 0, 0, 0};
    vl_scope_t zero, own, clinic;
    two_patients(f);
    memset(&zero, 0, sizeof zero);
    expect_lastn(f, zero, &q, 3, "");
    expect_lastn(f, zero, &none, 3, "");
    memset(&own, 0, sizeof own);
    own.n_patients = 1;
    own.patients = p1;
    expect_lastn(f, own, &q, 1, "w4,h2");
    expect_lastn(f, own, &none, 1, "w4,h2"); /* her groups only, never p2's */
    /* a clinic whose Consent covers p1's weights only: rules are per code */
    memset(&clinic, 0, sizeof clinic);
    clinic.flags = VL_SCOPE_SHARED;
    clinic.n_rules = 1;
    clinic.rules = &rule;
    expect_lastn(f, clinic, &q, 2, "w4,w3");
    expect_lastn(f, clinic, &none, 2, "w4,w3");
}

static void lastn_bounds(void **state)
{
    fixture_t *f = *state;
    vl_query_t q = lastn_query("Patient/p1"), bad = q;
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_store_unit_t units[101];
    tstore_put_t puts[101];
    char ids[101][8], codes[101][48], bodies[101][512];
    vl_index_t ix[101];
    tstore_counter_t done = TSTORE_COUNTER_INIT;
    tstore_gate_t gate = TSTORE_GATE_INIT;
    assert_int_equal(vl_store_lastn(f->store, vl_scope_everything(), &q, 0, &out, &err), -1);
    assert_int_equal(err.kind, VL_STORE_INVALID);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(
        vl_store_lastn(f->store, vl_scope_everything(), &q, VL_LASTN_MAX + 1, &out, &err), -1);
    bad.series.code_param = NULL;
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_lastn(f->store, vl_scope_everything(), &bad, 1, &out, &err), -1);
    assert_int_equal(err.kind, VL_STORE_INVALID);
    /* 101 codes: max 100 would give more than VL_LASTN_RECORDS_MAX; one
     * batch (the writer held) */
    tstore_gate_hold(f->store, &gate);
    for (int i = 0; i < 101; i++) {
        snprintf(ids[i], sizeof ids[i], "c%d", i);
        snprintf(codes[i], sizeof codes[i], "{\"system\":\"" LOINC "\",\"code\":\"9%04d-0\"}", i);
        if ((size_t)snprintf(bodies[i], sizeof bodies[i], "%s",
                             obs_json(&(obs_t){ids[i], "p1", codes[i], "2024-01-01T00:00:00Z", i,
                                               "kg", NULL, NULL})) >= sizeof bodies[i])
            fail_msg("test Observation %d is too long", i);
        obs_index(bodies[i], &ix[i]);
        puts[i] = tstore_put_of("Observation", ids[i], 0, VL_METHOD_POST, bodies[i], &ix[i]);
        memset(&units[i], 0, sizeof units[i]);
        units[i].apply = tstore_apply_put;
        units[i].arg = &puts[i];
        tstore_submit(f->store, &units[i], &done);
    }
    tstore_gate_open(&gate);
    tstore_wait(&done, 101);
    tstore_gate_wait(&gate);
    assert_int_equal(done.ok, 101);
    for (int i = 0; i < 101; i++)
        vl_index_free(&ix[i]);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_lastn(f->store, vl_scope_everything(), &q, 100, &out, &err), -1);
    assert_int_equal(err.kind, VL_STORE_TOO_COSTLY);
    assert_int_equal(out.n, 0);
    /* max 50: 101 groups are within the bound */
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_lastn(f->store, vl_scope_everything(), &q, 50, &out, &err), 0);
    assert_int_equal(out.n, 101);
    vl_records_free(&out);
}

/* The plan of a group's page: the series' key read backwards, no scan. */
static void lastn_group_plan(void **state)
{
    fixture_t *f = *state;
    vl_query_t q = lastn_query("Patient/p1");
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_buf_t plan = VL_BUF_INIT(0);
    two_patients(f);
    q.series.system = LOINC;
    q.series.code = "29463-7";
    q.n_sort = 3;
    q.sort[0] = (vl_query_sort_t){"date", 1};
    q.sort[1] = (vl_query_sort_t){"_lastUpdated", 1};
    q.sort[2] = (vl_query_sort_t){"_id", 0};
    q.count = 3;
    assert_int_equal(
        vl_store_explain(f->store, vl_scope_everything(), &q, VL_TOTAL_NONE, &plan, &err), 0);
    if (!strstr(plan.data,
                "SEARCH s USING PRIMARY KEY (pid=? AND patient=? AND code=? AND sid=?)") ||
        strstr(plan.data, "SCAN s") || strstr(plan.data, "SCAN v") || strstr(plan.data, "SCAN r"))
        fail_msg("the plan of a $lastn group:\n%s", plan.data);
    vl_buf_free(&plan);
}

/* ------------------------------------------------------------------------
 * $stats
 * ---------------------------------------------------------------------- */

static const vl_stats_rank_t RANKS[] = {{1, 2}, {1, 4}, {3, 4}, {1, 5}};

static vl_stats_query_t stats_query(const char *code, int64_t lo, int64_t hi)
{
    vl_stats_query_t q = {
        .type = "Observation",
        .patient = "Patient/p1",
        .system = LOINC,
        .code = code,
        .code_param = "code",
        .value_param = "value-quantity",
        .component_param = "component-code-value-quantity",
        .status_param = "status",
        .exclude_status = "entered-in-error",
        .lo = lo,
        .hi = hi,
        .what = VL_STATS_MOMENTS,
        .n_ranks = sizeof RANKS / sizeof RANKS[0],
        .ranks = RANKS,
    };
    return q;
}

static int64_t at(const char *text)
{
    int64_t lo, hi;
    if (vl_time_parse_range(text, &lo, &hi, NULL) != 0)
        fail_msg("bad test time %s", text);
    return lo;
}

static void run_stats(fixture_t *f, vl_scope_t scope, const vl_stats_query_t *q,
                      vl_stats_list_t *out)
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_series_stats(f->store, scope, q, out, &err) != 0)
        fail_msg("stats: %s: %s", vl_store_kind_name(err.kind), err.message);
}

/* |got - want| within eps, relative to |want| when that is above 1. */
#define expect_close(got, want, eps)                                                               \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= (eps)*fmax(1.0, fabs(w_))))                                         \
            fail_msg("%s = %.17g, want %.17g", #got, g_, w_);                                      \
    } while (0)

/* Quantile num/den of sorted xs by linear interpolation. */
static double quantile(const double *xs, size_t n, int num, int den)
{
    double h = (double)(n - 1) * num / den;
    size_t k = (size_t)floor(h);
    return k + 1 < n ? xs[k] + (h - k) * (xs[k + 1] - xs[k]) : xs[k];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void expect_values(const vl_stats_t *st, const double *given, size_t n, int64_t total)
{
    double xs[32], sum = 0, mean, m2 = 0, m3 = 0, m4 = 0;
    assert_true(n <= 32);
    memcpy(xs, given, n * sizeof *xs);
    qsort(xs, n, sizeof *xs, cmp_double);
    for (size_t i = 0; i < n; i++)
        sum += xs[i];
    mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = xs[i] - mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
    }
    assert_int_equal(st->n, (int64_t)n);
    assert_int_equal(st->total, total);
    assert_false(st->mixed);
    expect_close(st->sum, sum, 1e-9);
    expect_close(st->mean, mean, 1e-9);
    expect_close(st->min, xs[0], 1e-12);
    expect_close(st->max, xs[n - 1], 1e-12);
    expect_close(st->m2, m2, 1e-9);
    expect_close(st->m3, m3, 1e-9);
    expect_close(st->m4, m4, 1e-7);
    for (size_t i = 0; i < sizeof RANKS / sizeof RANKS[0]; i++)
        expect_close(st->ranks[i], quantile(xs, n, RANKS[i].num, RANKS[i].den), 1e-9);
}

static void stats_own_values_in_canonical_units(void **state)
{
    fixture_t *f = *state;
    vl_stats_list_t out;
    vl_stats_query_t q = stats_query("29463-7", at("2024-01-01"), at("2024-02-01"));
    const double want[] = {80, 176.5 * LB, 80.6, 79.4, 178.9 * LB};
    put_obs(f, &(obs_t){"a", "p1", WEIGHT, "2024-01-01T00:00:00Z", 80, "kg", NULL, NULL});
    put_obs(f, &(obs_t){"b", "p1", WEIGHT, "2024-01-02T08:00:00Z", 176.5, "[lb_av]", NULL, NULL});
    put_obs(f, &(obs_t){"c", "p1", WEIGHT, "2024-01-03T08:00:00Z", 80.6, "kg", NULL, NULL});
    put_obs(f, &(obs_t){"d", "p1", WEIGHT, "2024-01-20T08:00:00Z", 79.4, "kg", NULL, NULL});
    put_obs(f, &(obs_t){"e", "p1", WEIGHT, "2024-01-31T23:59:59Z", 178.9, "[lb_av]", NULL, NULL});
    /* counted without a value; left out: entered-in-error, outside, the
     * other patient's, another code's, the period's end itself */
    put_obs(f, &(obs_t){"novalue", "p1", WEIGHT, "2024-01-04T08:00:00Z", 0, NULL, NULL, NULL});
    put_obs(f, &(obs_t){"eie", "p1", WEIGHT, "2024-01-05T08:00:00Z", 500, "kg", NULL,
                        "entered-in-error"});
    put_obs(f, &(obs_t){"feb", "p1", WEIGHT, "2024-02-01T00:00:00Z", 90, "kg", NULL, NULL});
    put_obs(f, &(obs_t){"dec", "p1", WEIGHT, "2023-12-31T23:59:59Z", 90, "kg", NULL, NULL});
    put_obs(f, &(obs_t){"other", "p2", WEIGHT, "2024-01-05T08:00:00Z", 60, "kg", NULL, NULL});
    put_obs(f, &(obs_t){"hr", "p1", HEART, "2024-01-05T08:00:00Z", 60, "/min", NULL, NULL});
    /* updated: only its current value counts */
    put_obs(f, &(obs_t){"d", "p1", WEIGHT, "2024-01-20T08:00:00Z", 79.4, "kg", NULL, NULL});
    run_stats(f, vl_scope_everything(), &q, &out);
    assert_int_equal(out.n, 1);
    assert_false(out.items[0].component);
    assert_string_equal(out.items[0].code, "29463-7");
    assert_string_equal(out.items[0].system, LOINC);
    assert_string_equal(out.items[0].unit, "kg");
    assert_null(out.items[0].sent_unit); /* kg and [lb_av] */
    expect_values(&out.items[0], want, 5, 6);
    vl_stats_list_free(&out);
    /* sources: by time, at most max_sources */
    q.what |= VL_STATS_SOURCES;
    q.max_sources = 3;
    run_stats(f, vl_scope_everything(), &q, &out);
    assert_int_equal(out.items[0].sources.n, 3);
    assert_string_equal(out.items[0].sources.items[0].id, "a");
    assert_string_equal(out.items[0].sources.items[1].id, "b");
    assert_string_equal(out.items[0].sources.items[2].id, "c");
    vl_stats_list_free(&out);
    /* a zero scope sees nothing */
    {
        vl_scope_t zero;
        memset(&zero, 0, sizeof zero);
        run_stats(f, zero, &q, &out);
        assert_int_equal(out.items[0].total, 0);
        assert_int_equal(out.items[0].n, 0);
        assert_null(out.items[0].unit);
        vl_stats_list_free(&out);
    }
}

static void stats_sent_unit_and_mixed_dimensions(void **state)
{
    fixture_t *f = *state;
    vl_stats_list_t out;
    vl_stats_query_t q = stats_query("29463-7", INT64_MIN, INT64_MAX);
    const double want[] = {170 * LB, 171 * LB, 169.5 * LB};
    put_obs(f, &(obs_t){"a", "p1", WEIGHT, "2024-01-01T08:00:00Z", 170, "[lb_av]", NULL, NULL});
    put_obs(f, &(obs_t){"b", "p1", WEIGHT, "2024-01-02T08:00:00Z", 171, "[lb_av]", NULL, NULL});
    put_obs(f, &(obs_t){"c", "p1", WEIGHT, "2024-01-03T08:00:00Z", 169.5, "[lb_av]", NULL, NULL});
    run_stats(f, vl_scope_everything(), &q, &out);
    assert_string_equal(out.items[0].unit, "kg");
    assert_non_null(out.items[0].sent_unit);
    assert_string_equal(out.items[0].sent_unit, "[lb_av]");
    expect_values(&out.items[0], want, 3, 3);
    vl_stats_list_free(&out);
    /* another dimension for the same code: mixed, nothing computed */
    put_obs(f, &(obs_t){"x", "p1", WEIGHT, "2024-01-04T08:00:00Z", 120, "mm[Hg]", NULL, NULL});
    run_stats(f, vl_scope_everything(), &q, &out);
    assert_true(out.items[0].mixed);
    assert_int_equal(out.items[0].n, 4);
    assert_null(out.items[0].ranks);
    vl_stats_list_free(&out);
}

static void stats_components(void **state)
{
    fixture_t *f = *state;
    vl_stats_list_t out;
    vl_stats_query_t q = stats_query("85354-9", INT64_MIN, INT64_MAX);
    const double sys[] = {120, 131, 118}, dia[] = {80, 85, 77}, all_sys[] = {120, 131, 118, 125};
    char c1[256], c2[256], comps[600];
    for (int i = 0; i < 3; i++) {
        char id[8], when[32];
        snprintf(id, sizeof id, "bp%d", i);
        snprintf(when, sizeof when, "2024-01-0%dT08:00:00Z", i + 1);
        snprintf(comps, sizeof comps, "%s,%s", component(c1, sizeof c1, "8480-6", sys[i]),
                 component(c2, sizeof c2, "8462-4", dia[i]));
        put_obs(f, &(obs_t){id, "p1", LOINC_CODING("85354-9"), when, 0, NULL, comps, NULL});
    }
    /* a panel without its systolic value: counted, no value */
    component(c2, sizeof c2, "8462-4", 90);
    put_obs(f, &(obs_t){"bp3", "p1", LOINC_CODING("85354-9"), "2024-01-05T08:00:00Z", 0, NULL, c2,
                        NULL});
    put_obs(f, &(obs_t){"lone", "p1", LOINC_CODING("8480-6"), "2024-01-06T08:00:00Z", 125, "mm[Hg]",
                        NULL, NULL});
    /* the panel: no value of its own, one result per component */
    run_stats(f, vl_scope_everything(), &q, &out);
    assert_int_equal(out.n, 2);
    assert_true(out.items[0].component && out.items[1].component);
    assert_string_equal(out.items[0].code, "8462-4");
    assert_string_equal(out.items[1].code, "8480-6");
    assert_string_equal(out.items[1].unit, "mm[Hg]");
    expect_values(&out.items[0], (const double[]){80, 85, 77, 90}, 4, 4);
    expect_values(&out.items[1], sys, 3, 4);
    vl_stats_list_free(&out);
    /* the component code asked directly: its own series and the panels' */
    q = stats_query("8480-6", INT64_MIN, INT64_MAX);
    run_stats(f, vl_scope_everything(), &q, &out);
    assert_int_equal(out.n, 1);
    assert_false(out.items[0].component);
    expect_values(&out.items[0], all_sys, 4, 4); /* lone + the 3 panels with a value */
    vl_stats_list_free(&out);
    /* within a period that leaves the first panel out */
    q = stats_query("8480-6", at("2024-01-02"), INT64_MAX);
    run_stats(f, vl_scope_everything(), &q, &out);
    expect_values(&out.items[0], (const double[]){131, 118, 125}, 3, 3);
    vl_stats_list_free(&out);
}

static void stats_invalid_queries(void **state)
{
    fixture_t *f = *state;
    vl_stats_list_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_stats_query_t q = stats_query("29463-7", 10, 10), ok = stats_query("29463-7", 0, 10);
    vl_stats_rank_t bad_rank = {3, 2};
    assert_int_equal(vl_store_series_stats(f->store, vl_scope_everything(), &q, &out, &err), -1);
    assert_int_equal(err.kind, VL_STORE_INVALID); /* lo >= hi */
    q = ok;
    q.patient = "Group/g";
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_series_stats(f->store, vl_scope_everything(), &q, &out, &err), -1);
    q = ok;
    q.ranks = &bad_rank;
    q.n_ranks = 1;
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_series_stats(f->store, vl_scope_everything(), &q, &out, &err), -1);
    assert_int_equal(err.kind, VL_STORE_INVALID);
    /* nothing written yet: one empty result */
    run_stats(f, vl_scope_everything(), &ok, &out);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.items[0].total, 0);
    vl_stats_list_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lastn_groups_and_max, setup, teardown),
        cmocka_unit_test_setup_teardown(lastn_ties_updates_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(lastn_multi_coded_and_undated, setup, teardown),
        cmocka_unit_test_setup_teardown(lastn_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(lastn_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(lastn_group_plan, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_own_values_in_canonical_units, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_sent_unit_and_mixed_dimensions, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_components, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_invalid_queries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
