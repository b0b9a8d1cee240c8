/*
 * What a consent decision costs, in-process (run by bench/consent.sh).
 *
 *   consent_decision DIR PATIENTS OBSERVATIONS ROUNDS
 *
 * Fills a store in DIR (which must not exist) through the interaction
 * layer: PATIENTS patients with OBSERVATIONS heart rates each and one
 * active Consent each for Organization/bench-clinic. Then, ROUNDS times:
 *   rules        vl_consent_rules() for the clinic (the cached Consents to
 *                scope rules: the decision's own work)
 *   read-rules   vl_store_read() of one of patient 0's Observations under
 *                the clinic's rules (the decision applied in SQL)
 *   read-patient the same read under patient 0's own scope
 * and prints microseconds per call, and the decision's cost: rules +
 * (read-rules - read-patient).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "vitalog/auth.h"
#include "vitalog/consent.h"
#include "vitalog/fhir.h"
#include "vitalog/ledger.h"
#include "vitalog/store.h"

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
} waiter_t;

static void notify(void *arg)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* One request through the interaction layer; returns the status, and the
 * id of a created resource in `id` (may be NULL). */
static int call(vl_fhir_t *f, const char *method, const char *path, const char *body, char *id)
{
    vl_fhir_request_t req;
    vl_fhir_response_t res;
    vl_fhir_exchange_t *x = NULL;
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int status;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.base_url = "http://bench.invalid";
    req.content_type = "application/fhir+json";
    req.body = body;
    req.body_len = strlen(body);
    if (vl_fhir_handle(f, &req, notify, &w, &x, &res) == 1) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        vl_fhir_resume(x, &res);
    }
    status = res.status;
    if (id && res.location[0]) { /* .../Observation/<id>/_history/1 */
        const char *p = strstr(res.location, "/Observation/");
        if (p)
            sscanf(p + 13, "%64[^/]", id);
    }
    vl_fhir_response_free(&res);
    vl_fhir_exchange_free(x);
    return status;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    vl_store_options_t so;
    vl_ledger_key_t key;
    vl_store_t *store = NULL;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_error_t err = VL_ERROR_INIT;
    vl_fhir_options_t fo;
    vl_fhir_t *f;
    vl_consent_t *consent;
    char first[65] = "", path[128], body[2048];
    const char *actors[] = {"Organization/bench-clinic"};
    const char *patient0[] = {"bench-0"};
    int patients, obs;
    long rounds;
    double t0, t_rules, t_read_rules, t_read_patient;
    if (argc != 5 || sodium_init() < 0) {
        fprintf(stderr, "usage: consent_decision DIR PATIENTS OBSERVATIONS ROUNDS\n");
        return 2;
    }
    patients = atoi(argv[2]);
    obs = atoi(argv[3]);
    rounds = atol(argv[4]);
    if (vl_ledger_key_generate("bench.invalid/consent", &key, &err) < 0)
        return 1;
    memset(&so, 0, sizeof so);
    so.key = &key;
    so.origin = key.name;
    if (vl_store_open(argv[1], &so, &store, &serr) < 0) {
        fprintf(stderr, "store: %s\n", serr.message);
        return 1;
    }
    memset(&fo, 0, sizeof fo);
    fo.store = store;
    fo.policy = &vl_auth_open_policy;
    f = vl_fhir_new(&fo);
    for (int p = 0; p < patients; p++) {
        snprintf(path, sizeof path, "/fhir/Patient/bench-%d", p);
        snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"bench-%d\"}", p);
        call(f, "PUT", path, body, NULL);
        for (int i = 0; i < obs; i++) {
            snprintf(body, sizeof body,
                     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":"
                     "[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{"
                     "\"reference\":\"Patient/bench-%d\"},\"effectiveDateTime\":\"2024-05-%02dT10:"
                     "00:00Z\",\"valueQuantity\":{\"value\":%d,\"unit\":\"/min\",\"system\":"
                     "\"http://unitsofmeasure.org\",\"code\":\"/min\"}}",
                     p, 1 + i % 28, 60 + i % 40);
            if (call(f, "POST", "/fhir/Observation", body, p == 0 && !first[0] ? first : NULL) !=
                201)
                return 1;
        }
        snprintf(path, sizeof path, "/fhir/Consent/bench-%d-c", p);
        snprintf(body, sizeof body,
                 "{\"resourceType\":\"Consent\",\"id\":\"bench-%d-c\",\"status\":\"active\","
                 "\"scope\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
                 "consentscope\",\"code\":\"patient-privacy\"}]},\"category\":[{\"text\":\"c\"}],"
                 "\"patient\":{\"reference\":\"Patient/bench-%d\"},\"policyRule\":{\"text\":\"r\"},"
                 "\"provision\":{\"actor\":[{\"role\":{\"text\":\"c\"},\"reference\":{"
                 "\"reference\":\"Organization/bench-clinic\"}}],\"action\":[{\"coding\":[{"
                 "\"code\":\"access\"}]}],\"class\":[{\"code\":\"Observation\"}]}}",
                 p, p);
        call(f, "PUT", path, body, NULL);
    }
    consent = vl_consent_new(store);
    /* 1. the decision's own work */
    t0 = now_s();
    for (long i = 0; i < rounds; i++) {
        vl_arena_t *a = vl_arena_new();
        vl_scope_t scope;
        memset(&scope, 0, sizeof scope);
        if (vl_consent_rules(consent, actors, 1, VL_CONSENT_ACCESS, vl_time_now_us(), a, &scope,
                             &scope.basis, &err) != patients)
            return 1;
        vl_arena_free(a);
    }
    t_rules = (now_s() - t0) / (double)rounds * 1e6;
    /* 2. the same read under the rules, and under the patient's scope */
    {
        vl_arena_t *a = vl_arena_new();
        vl_scope_t rules, own;
        memset(&rules, 0, sizeof rules);
        memset(&own, 0, sizeof own);
        vl_consent_rules(consent, actors, 1, VL_CONSENT_ACCESS, vl_time_now_us(), a, &rules, NULL,
                         &err);
        rules.flags = VL_SCOPE_SHARED;
        own.flags = VL_SCOPE_SHARED;
        own.n_patients = 1;
        own.patients = patient0;
        for (int pass = 0; pass < 2; pass++) {
            t0 = now_s();
            for (long i = 0; i < rounds; i++) {
                vl_record_t rec;
                if (vl_store_read(store, pass ? own : rules, "Observation", first, 0, &rec, &serr) <
                    0)
                    return 1;
                vl_record_free(&rec);
            }
            *(pass ? &t_read_patient : &t_read_rules) = (now_s() - t0) / (double)rounds * 1e6;
        }
        vl_arena_free(a);
    }
    printf("rules_us=%.2f read_rules_us=%.2f read_patient_us=%.2f decision_us=%.2f\n", t_rules,
           t_read_rules, t_read_patient, t_rules + t_read_rules - t_read_patient);
    vl_consent_free(consent);
    vl_fhir_free(f);
    vl_store_close(store);
    sodium_memzero(&key, sizeof key);
    return 0;
}
