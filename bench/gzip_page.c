/*
 * What gzip costs on a search page, in-process (cmake target
 * bench_gzip_page, not built by default).
 *
 *   bench_gzip_page DIR [ROUNDS]
 *
 * Fills a store in DIR (which must not exist) through the interaction
 * layer with 100 blood-pressure Observations (a panel with two components,
 * category, performer, device, interpretation, reference ranges, a note
 * and the source's identifier: what a wearable's readings look like once
 * normalized), takes the
 * page GET /fhir/Observation?_count=100 answers (the exact bytes the
 * server would send), then compresses it ROUNDS times (default 50) at
 * zlib levels 1, VL_HTTP_GZIP_LEVEL (the server's) and 9, as the server
 * compresses a body in memory: deflateInit2 with the gzip wrapper
 * (windowBits 15 + 16, memLevel 8), one deflate(Z_FINISH) into a
 * deflateBound() buffer, deflateEnd. Each result is inflated once and
 * compared with the page. Prints one line per level:
 *
 *   level=6 page_bytes=N gzip_bytes=N ratio=R mb_per_s=M ms_per_page=T
 *
 * ratio is page_bytes / gzip_bytes; mb_per_s is page MB (10^6 bytes)
 * compressed per second of one core.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#define ZLIB_CONST
#include <zlib.h>

#include "vitalog/auth.h"
#include "vitalog/fhir.h"
#include "vitalog/http.h"
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

/* One request through the interaction layer: the status, and the body
 * (malloc'd, caller frees) in *out when out is not NULL. */
static int call(vl_fhir_t *f, const char *method, const char *path, const vl_params_t *params,
                const char *body, char **out, size_t *out_len)
{
    vl_fhir_request_t req;
    vl_fhir_response_t res;
    vl_fhir_exchange_t *x = NULL;
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int status;
    memset(&req, 0, sizeof req);
    memset(&res, 0, sizeof res);
    req.method = method;
    req.path = path;
    req.params = params;
    req.base_url = "http://bench.invalid";
    req.content_type = "application/fhir+json";
    req.body = body ? body : "";
    req.body_len = body ? strlen(body) : 0;
    if (vl_fhir_handle(f, &req, notify, &w, &x, &res) == 1) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        vl_fhir_resume(x, &res);
    }
    status = res.status;
    if (out) {
        *out = res.body;
        *out_len = res.body_len;
        res.body = NULL;
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

/* Observation i: a blood-pressure panel with varied values and the
 * source's own identifier for the reading (random, as a device's UUIDs
 * are: the part of a page that does not compress). */
static void observation(int i, char *buf, size_t cap)
{
    int sys = 104 + (i * 37) % 48, dia = 62 + (i * 23) % 30;
    unsigned char raw[16];
    char uuid[33];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(uuid, sizeof uuid, raw, sizeof raw);
    snprintf(
        buf, cap,
        "{\"resourceType\":\"Observation\",\"identifier\":[{\"system\":\"urn:ietf:rfc:3986\","
        "\"value\":\"urn:uuid:%.8s-%.4s-%.4s-%.4s-%.12s\"}],\"status\":\"final\",\"category\":[{"
        "\"coding\":[{"
        "\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":"
        "\"vital-signs\",\"display\":\"Vital Signs\"}],\"text\":\"Vital Signs\"}],\"code\":{"
        "\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"85354-9\",\"display\":\"Blood "
        "pressure panel with all children optional\"}],\"text\":\"Blood pressure\"},\"subject\":{"
        "\"reference\":\"Patient/bench-%d\"},\"effectiveDateTime\":\"2024-%02d-%02dT%02d:%02d:"
        "%02dZ\",\"performer\":[{\"reference\":\"Patient/bench-%d\"}],\"device\":{\"display\":"
        "\"Upper-arm cuff BPM-%d (firmware 2.%d.%d)\"},\"interpretation\":[{\"coding\":[{"
        "\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation\","
        "\"code\":\"%s\",\"display\":\"%s\"}]}],\"note\":[{\"text\":\"Measured seated after %d "
        "minutes of rest, %s arm, reading %d of the morning series.\"}],\"component\":[{\"code\":"
        "{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\",\"display\":\"Systolic "
        "blood pressure\"}]},\"valueQuantity\":{\"value\":%d,\"unit\":\"mmHg\",\"system\":\"http:"
        "//unitsofmeasure.org\",\"code\":\"mm[Hg]\"},\"referenceRange\":[{\"low\":{\"value\":90,"
        "\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"},\"high\":{"
        "\"value\":120,\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\",\"code\":"
        "\"mm[Hg]\"}}]},{\"code\":{\"coding\":[{\"system\":\"http://"
        "loinc.org\",\"code\":\"8462-4\","
        "\"display\":\"Diastolic blood pressure\"}]},\"valueQuantity\":{\"value\":%d,\"unit\":"
        "\"mmHg\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"},\"referenceRange\":"
        "[{\"low\":{\"value\":60,\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\","
        "\"code\":\"mm[Hg]\"},\"high\":{\"value\":80,\"unit\":\"mmHg\",\"system\":\"http://"
        "unitsofmeasure.org\",\"code\":\"mm[Hg]\"}}]}]}",
        uuid, uuid + 8, uuid + 12, uuid + 16, uuid + 20, i % 10, 1 + i % 12, 1 + i % 28, i % 24,
        (i * 7) % 60, (i * 13) % 60, i % 10, 100 + i % 7, i % 5, i % 9, sys > 130 ? "H" : "N",
        sys > 130 ? "High" : "Normal", 3 + i % 5, i % 2 ? "left" : "right", 1 + i % 3, sys, dia);
}

/* Compresses page as the server does (into a deflateBound() buffer,
 * malloc'd: the caller frees it); NULL on failure. */
static unsigned char *gzip_once(int level, const char *page, size_t len, size_t *n)
{
    z_stream z;
    unsigned char *out = NULL;
    uLong bound;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    bound = deflateBound(&z, (uLong)len);
    if ((out = malloc(bound)) != NULL) {
        z.next_in = (const Bytef *)page;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
            free(out);
            out = NULL;
        }
        *n = z.total_out;
    }
    if (deflateEnd(&z) != Z_OK) {
        free(out);
        out = NULL;
    }
    return out;
}

/* Whether gz (n bytes) inflates to exactly page. */
static int round_trips(const unsigned char *gz, size_t n, const char *page, size_t len)
{
    z_stream z;
    char *back = malloc(len + 1);
    int ok = 0;
    memset(&z, 0, sizeof z);
    if (!back || inflateInit2(&z, 15 + 16) != Z_OK) {
        free(back);
        return 0;
    }
    z.next_in = gz;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)back;
    z.avail_out = (uInt)len + 1;
    ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == len && !memcmp(back, page, len);
    inflateEnd(&z);
    free(back);
    return ok;
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
    vl_params_t params;
    char body[4096], *page = NULL;
    size_t len = 0;
    long rounds = argc > 2 ? atol(argv[2]) : 50;
    const int levels[] = {1, VL_HTTP_GZIP_LEVEL, 9};
    int rc = 1;
    if (argc < 2 || argc > 3 || rounds < 1 || sodium_init() < 0) {
        fprintf(stderr, "usage: bench_gzip_page DIR [ROUNDS]\n");
        return 2;
    }
    if (vl_ledger_key_generate("bench.invalid/gzip", &key, &err) < 0)
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
    vl_params_init(&params);
    if (!f || vl_params_add(&params, "_count", "100") < 0)
        goto out;
    for (int i = 0; i < 100; i++) {
        observation(i, body, sizeof body);
        if (call(f, "POST", "/fhir/Observation", NULL, body, NULL, NULL) != 201) {
            fprintf(stderr, "POST Observation %d failed\n", i);
            goto out;
        }
    }
    if (call(f, "GET", "/fhir/Observation", &params, NULL, &page, &len) != 200 || !page) {
        fprintf(stderr, "the search failed\n");
        goto out;
    }
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        unsigned char *out = NULL;
        size_t n = 0;
        double t0 = now_s();
        for (long i = 0; i < rounds; i++) {
            free(out);
            out = gzip_once(levels[l], page, len, &n);
        }
        t0 = now_s() - t0;
        if (!out || !round_trips(out, n, page, len)) {
            fprintf(stderr, "level %d: the result does not inflate to the page\n", levels[l]);
            free(out);
            goto out;
        }
        printf("level=%d page_bytes=%zu gzip_bytes=%zu ratio=%.2f mb_per_s=%.1f "
               "ms_per_page=%.3f\n",
               levels[l], len, n, (double)len / (double)n, (double)len * (double)rounds / t0 / 1e6,
               t0 / (double)rounds * 1e3);
        free(out);
    }
    rc = 0;
out:
    free(page);
    vl_params_free(&params);
    vl_fhir_free(f);
    vl_store_close(store);
    sodium_memzero(&key, sizeof key);
    return rc;
}
