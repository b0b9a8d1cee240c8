/*
 * The http module in-process: a real store and server on an ephemeral
 * loopback port, driven with libcurl. Covers what the black-box cases can
 * only see from outside: the bound port, Allow headers, URL hygiene, body
 * limits before the body is read, and that vl_http_stop() waits for every
 * write the store accepted (no acknowledged write is lost, no request is
 * freed under the writer) and refuses what arrives after its drain.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>

#include "vitalog/http.h"
#include "vitalog/store.h"
#include <sodium.h>

#include "../support.h"

typedef struct fixture {
    char dir[64];
    vl_store_t *store;
    vl_http_t *http;
    char base[64];
} fixture_t;

static int start(fixture_t *f)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_http_options_t opts = {.host = "127.0.0.1", .port = 0, .listen_fd = -1, .max_body = 4096};
    vl_fhir_options_t fopts = {.store = f->store, .policy = &vl_auth_open_policy};
    int rc = vl_http_start(&opts, &fopts, &f->http, &err);
    vl_error_clear(&err);
    if (rc == 0)
        snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", (unsigned)vl_http_port(f->http));
    return rc;
}

/* Every Observation in the store. */
static int64_t stored_observations(fixture_t *f)
{
    vl_records_t all;
    vl_query_t q = {.type = "Observation", .count = 0};
    vl_store_err_t err = VL_STORE_ERR_INIT;
    int64_t n;
    assert_int_equal(vl_store_search(f->store, vl_scope_everything(), &q, 1, 0, &all, &err), 0);
    n = all.total;
    vl_records_free(&all);
    return n;
}

typedef struct reply {
    long status;
    char body[65536];
    size_t len;
    char allow[128];
    int has_allow;
} reply_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    reply_t *r = arg;
    size_t k = size * n;
    if (r->len + k >= sizeof r->body)
        k = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    reply_t *r = arg;
    size_t k = size * n;
    if (k >= 6 && strncasecmp(p, "Allow:", 6) == 0) {
        size_t m = k - 6;
        const char *v = p + 6;
        while (m && (*v == ' ')) {
            v++;
            m--;
        }
        while (m && (v[m - 1] == '\r' || v[m - 1] == '\n'))
            m--;
        if (m >= sizeof r->allow)
            m = sizeof r->allow - 1;
        memcpy(r->allow, v, m);
        r->allow[m] = '\0';
        r->has_allow = 1;
    }
    return k;
}

static void request(const fixture_t *f, const char *method, const char *path, const char *ctype,
                    const char *body, long declared_len, reply_t *r)
{
    char url[512];
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "%s%s", f->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (ctype) {
        char line[128];
        snprintf(line, sizeof line, "Content-Type: %s", ctype);
        h = curl_slist_append(h, line);
    }
    if (declared_len >= 0) {
        char line[64];
        snprintf(line, sizeof line, "Content-Length: %ld", declared_len);
        h = curl_slist_append(h, line);
        /* as clients send large bodies: the server can refuse (413) before
         * any body byte is on the wire, so the answer is deterministic */
        h = curl_slist_append(h, "Expect: 100-continue");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    vl_store_err_t err = VL_STORE_ERR_INIT;
    snprintf(f->dir, sizeof f->dir, "/tmp/vl-http-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(vl_store_open(f->dir, test_store_options(NULL), &f->store, &err), 0);
    assert_int_equal(start(f), 0);
    assert_true(vl_http_port(f->http) > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    vl_http_stop(f->http, 2000);
    vl_store_close(f->store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static const char OBS[] = "{\"resourceType\":\"Observation\",\"status\":\"final\","
                          "\"code\":{\"text\":\"t\"},\"valueQuantity\":{\"value\":1.50}}";

static void test_allow_headers(void **state)
{
    fixture_t *f = *state;
    reply_t r;
    request(f, "PATCH", "/fhir/Observation/abc", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 405);
    assert_true(r.has_allow);
    assert_string_equal(r.allow, "GET, HEAD, PUT, DELETE");
    request(f, "PATCH", "/fhir/Observation", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD, POST, PUT, DELETE");
    /* the base takes Bundles only */
    request(f, "GET", "/fhir", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "POST");
    request(f, "POST", "/healthz", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    request(f, "DELETE", "/ledger/checkpoint", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
}

static void test_url_control_characters(void **state)
{
    fixture_t *f = *state;
    reply_t r;
    request(f, "GET", "/fhir/Observation?code=%00", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "OperationOutcome"));
    request(f, "GET", "/fhir/Observation?code=a%01b", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 400);
    request(f, "GET", "/fhir/Observation/ab%00cd", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 400);
    /* tab is not a control character for this rule; an unknown code is fine */
    request(f, "GET", "/fhir/Observation?code=a%09b", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 200);
}

static void test_declared_length_over_limit(void **state)
{
    fixture_t *f = *state;
    reply_t r;
    /* Content-Length above max_body (4096 here) is refused before the body */
    request(f, "POST", "/fhir/Observation", "application/fhir+json", OBS, 100000, &r);
    assert_int_equal(r.status, 413);
    request(f, "POST", "/fhir/Observation", "application/fhir+json", OBS, -1, &r);
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.body, "\"value\":1.50"));
}

typedef struct poster {
    const fixture_t *f;
    int created;
} poster_t;

static void *post_many(void *arg)
{
    poster_t *p = arg;
    for (int i = 0; i < 50; i++) {
        reply_t r;
        request(p->f, "POST", "/fhir/Observation", "application/fhir+json", OBS, -1, &r);
        if (r.status == 201)
            p->created++;
    }
    return NULL;
}

/* Stop while 4 clients write: everything answered 201 is in the store. */
static void test_stop_keeps_acknowledged_writes(void **state)
{
    fixture_t *f = *state;
    pthread_t t[4];
    poster_t p[4];
    int acked = 0;
    for (int i = 0; i < 4; i++) {
        p[i] = (poster_t){f, 0};
        pthread_create(&t[i], NULL, post_many, &p[i]);
    }
    usleep(30 * 1000);
    vl_http_stop(f->http, 2000);
    f->http = NULL;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        acked += p[i].created;
    }
    assert_true(stored_observations(f) >= acked);
    /* restart on the same store for the teardown */
    assert_int_equal(start(f), 0);
}

/* Clients that keep their connection open and write while the server
 * stops: every write is answered (201 or 503) or the connection closes, the
 * process does not abort (libmicrohttpd refuses to stop with a suspended
 * connection), and every 201 is stored. Three rounds: it is a race. */
typedef struct keepalive {
    const fixture_t *f;
    int created;
    atomic_int *stop; /* set by the main thread, read by the client threads */
} keepalive_t;

static void *post_keepalive(void *arg)
{
    keepalive_t *k = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/fhir+json");
    char url[128];
    snprintf(url, sizeof url, "%s/fhir/Observation", k->f->base);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, OBS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    for (int i = 0; i < 400 && !atomic_load(k->stop); i++) {
        reply_t r;
        long status = 0;
        memset(&r, 0, sizeof r);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        if (curl_easy_perform(c) != CURLE_OK)
            break; /* the server went away */
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status == 201)
            k->created++;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_stop_with_keepalive_writers(void **state)
{
    fixture_t *f = *state;
    for (int round = 0; round < 3; round++) {
        pthread_t t[6];
        keepalive_t k[6];
        atomic_int stop = 0;
        int acked = 0;
        for (int i = 0; i < 6; i++) {
            k[i] = (keepalive_t){f, 0, &stop};
            pthread_create(&t[i], NULL, post_keepalive, &k[i]);
        }
        usleep(60 * 1000);
        vl_http_stop(f->http, 200); /* a short drain: keep-alive clients are still busy */
        f->http = NULL;
        atomic_store(&stop, 1);
        for (int i = 0; i < 6; i++) {
            pthread_join(t[i], NULL);
            acked += k[i].created;
        }
        assert_true(stored_observations(f) >= acked);
        assert_int_equal(start(f), 0);
    }
}

/* A raw keep-alive connection: its requests go out when the test says. */
static int raw_connect(const fixture_t *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(vl_http_port(f->http))};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends a GET and returns the answer's status (0: none), reading the whole
 * answer (its Content-Length) so that the connection can be reused. */
static int raw_get(int fd, const char *path)
{
    char buf[16384];
    size_t len = 0;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    const char *end = NULL;
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return 0;
    for (;;) {
        ssize_t k;
        if (end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
            if (len >= want)
                break;
        }
        if (len + 1 >= sizeof buf || (k = recv(fd, buf + len, sizeof buf - 1 - len, 0)) <= 0)
            return 0;
        len += (size_t)k;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    return strncmp(buf, "HTTP/1.1 ", 9) ? 0 : atoi(buf + 9);
}

typedef struct stopper {
    vl_http_t *http;
    unsigned drain_ms;
} stopper_t;

static void *stop_main(void *arg)
{
    stopper_t *s = arg;
    vl_http_stop(s->http, s->drain_ms);
    return NULL;
}

static void *post_one(void *arg)
{
    poster_t *p = arg;
    reply_t r;
    request(p->f, "POST", "/fhir/Observation", "application/fhir+json", OBS, -1, &r);
    p->created = r.status == 201;
    return NULL;
}

/* After the drain a request is refused (503, close) rather than submitted
 * behind the stop's back: libmicrohttpd aborts when the daemon stops with
 * a connection still suspended. The writer is held so that the stop waits,
 * past its drain, for an accepted write; that write is still answered. */
static void test_refused_after_drain(void **state)
{
    fixture_t *f = *state;
    tstore_gate_t gate = TSTORE_GATE_INIT;
    vl_store_stats_t st;
    poster_t p = {f, 0};
    stopper_t s = {f->http, 0};
    pthread_t writer, stopper;
    int fds[8], refused = 0, probe;
    for (int i = 0; i < 8; i++) { /* accepted: each answered once */
        fds[i] = raw_connect(f);
        assert_true(fds[i] >= 0);
        assert_int_equal(raw_get(fds[i], "/healthz"), 200);
    }
    tstore_gate_hold(f->store, &gate);
    pthread_create(&writer, NULL, post_one, &p);
    do { /* the POST waits behind the gate */
        usleep(1000);
        vl_store_stats(f->store, &st);
    } while (st.queue_depth < 1);
    pthread_create(&stopper, NULL, stop_main, &s);
    while ((probe = raw_connect(f)) >= 0) { /* until the listening socket is gone */
        close(probe);
        usleep(1000);
    }
    /* the drain (0 ms) is over a few instructions after that */
    for (int i = 0; i < 8 && !refused; i++) {
        usleep(50 * 1000);
        refused = raw_get(fds[i], "/fhir/metadata") == 503;
    }
    tstore_gate_open(&gate);
    pthread_join(writer, NULL);
    pthread_join(stopper, NULL);
    f->http = NULL;
    tstore_gate_wait(&gate);
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    assert_int_equal(start(f), 0); /* for the teardown, whatever follows */
    assert_true(refused);
    assert_int_equal(p.created, 1); /* accepted before the stop: answered past the drain */
    assert_int_equal(stored_observations(f), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allow_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_control_characters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_length_over_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_keeps_acknowledged_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_keepalive_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_after_drain, setup, teardown),
    };
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
