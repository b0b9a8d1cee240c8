/*
 * The http module in-process: a real store and server on an ephemeral
 * loopback port, driven with libcurl. Covers what the black-box cases can
 * only see from outside: the bound port, Allow headers, URL hygiene, body
 * limits before the body is read, and that vl_http_stop() waits for every
 * write the store accepted (no acknowledged write is lost, no request is
 * freed under the writer) and refuses what arrives after its drain; and
 * response compression: gzip as Accept-Encoding allows it, decoded by
 * libcurl and compared with the identity answer, for bodies in memory and
 * for a streamed export several stream buffers long, and where it must not
 * happen (small bodies, HEAD, 204, 304, compression off), with Vary.
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

static const char CORS_ORIGIN[] = "https://app.example.org";

/* Starts the server; compress_min as in vl_http_options_t, cors: allow
 * CORS_ORIGIN. */
static int start_with(fixture_t *f, size_t compress_min, int cors)
{
    vl_error_t err = VL_ERROR_INIT;
    static const char *const origins[] = {CORS_ORIGIN};
    vl_http_options_t opts = {.host = "127.0.0.1",
                              .port = 0,
                              .listen_fd = -1,
                              .max_body = 4096,
                              .compress_min = compress_min,
                              .cors_origins = cors ? origins : NULL,
                              .n_cors_origins = cors ? 1 : 0};
    vl_fhir_options_t fopts = {.store = f->store, .policy = &vl_auth_open_policy};
    int rc = vl_http_start(&opts, &fopts, &f->http, &err);
    vl_error_clear(&err);
    if (rc == 0)
        snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", (unsigned)vl_http_port(f->http));
    return rc;
}

static int start(fixture_t *f)
{
    return start_with(f, 0, 0);
}

/* Stops the server and starts it again on the same store. */
static void restart_with(fixture_t *f, size_t compress_min, int cors)
{
    vl_http_stop(f->http, 2000);
    f->http = NULL;
    assert_int_equal(start_with(f, compress_min, cors), 0);
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
    /* an instance takes PATCH (JSON Patch, FHIRPath Patch), not POST */
    request(f, "POST", "/fhir/Observation/abc", NULL, NULL, -1, &r);
    assert_int_equal(r.status, 405);
    assert_true(r.has_allow);
    assert_string_equal(r.allow, "GET, HEAD, PUT, DELETE, PATCH");
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

/* ------------------------------------------------------------------------
 * Compression
 * ---------------------------------------------------------------------- */

/* An answer with its body (any size) and the headers compression is
 * about, as they came (libcurl decodes the body only when asked to). */
typedef struct fetched {
    long status;
    vl_buf_t body;
    char encoding[64], vary[128], ctype[128], etag[64], last_modified[64], location[256];
    int n_vary, n_ctype;
    curl_off_t content_length; /* the Content-Length header, -1 without one */
} fetched_t;

static size_t on_fetched_body(char *p, size_t size, size_t n, void *arg)
{
    fetched_t *r = arg;
    return vl_buf_append(&r->body, p, size * n) < 0 ? 0 : size * n;
}

/* Copies the value of header line `p` (`k` bytes) into dst when it is
 * `name`; returns whether it was. */
static int header_value(const char *p, size_t k, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    const char *v = p + nl + 1;
    size_t m;
    if (k <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
        return 0;
    m = k - nl - 1;
    while (m && *v == ' ') {
        v++;
        m--;
    }
    while (m && (v[m - 1] == '\r' || v[m - 1] == '\n'))
        m--;
    if (m >= cap)
        m = cap - 1;
    memcpy(dst, v, m);
    dst[m] = '\0';
    return 1;
}

static size_t on_fetched_header(char *p, size_t size, size_t n, void *arg)
{
    fetched_t *r = arg;
    size_t k = size * n;
    char cl[32];
    if (k >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new answer (after 100 Continue) */
        r->n_vary = r->n_ctype = 0;
        r->vary[0] = r->encoding[0] = r->ctype[0] = '\0';
        r->content_length = -1;
    }
    header_value(p, k, "Content-Encoding", r->encoding, sizeof r->encoding);
    r->n_vary += header_value(p, k, "Vary", r->vary, sizeof r->vary);
    r->n_ctype += header_value(p, k, "Content-Type", r->ctype, sizeof r->ctype);
    header_value(p, k, "ETag", r->etag, sizeof r->etag);
    header_value(p, k, "Last-Modified", r->last_modified, sizeof r->last_modified);
    header_value(p, k, "Location", r->location, sizeof r->location);
    if (header_value(p, k, "Content-Length", cl, sizeof cl))
        r->content_length = (curl_off_t)strtoll(cl, NULL, 10);
    return k;
}

/* One request. `headers`: NULL-terminated extra header lines (may be
 * NULL). decode: let libcurl ask for gzip (CURLOPT_ACCEPT_ENCODING) and
 * decode the answer; otherwise the body is kept as sent. `body`: a
 * request body (may be NULL). Free with fetched_free(). */
static void fetch(const fixture_t *f, const char *method, const char *path,
                  const char *const *headers, int decode, const char *body, fetched_t *r)
{
    char url[512];
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    memset(r, 0, sizeof *r);
    r->body = (vl_buf_t)VL_BUF_INIT(0);
    r->content_length = -1;
    snprintf(url, sizeof url, "%s%s", f->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_fetched_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_fetched_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (decode)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/fhir+json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    assert_false(r->body.failed);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void fetched_free(fetched_t *r)
{
    vl_buf_free(&r->body);
}

static const char *const AE_GZIP[] = {"Accept-Encoding: gzip", NULL};

/* An Observation of about 3.5 KB (under the fixture's 4096-byte body limit)
 * whose text compresses well, as FHIR JSON does. */
static char *big_observation(void)
{
    vl_buf_t b = VL_BUF_INIT(0);
    size_t len;
    vl_buf_puts(&b, "{\"resourceType\":\"Observation\",\"status\":\"final\","
                    "\"code\":{\"text\":\"t\"},\"valueQuantity\":{\"value\":1.50},\"note\":[");
    for (int i = 0; i < 40; i++)
        vl_buf_printf(&b, "%s{\"text\":\"reading %d of the series, taken at rest\"}", i ? "," : "",
                      i);
    vl_buf_puts(&b, "]}");
    return vl_buf_take(&b, &len);
}

/* Creates an Observation and returns its path ("/fhir/Observation/ID") in
 * `path`. */
static void create(const fixture_t *f, const char *body, char *path, size_t cap)
{
    fetched_t r;
    const char *at, *end;
    fetch(f, "POST", "/fhir/Observation", NULL, 0, body, &r);
    assert_int_equal(r.status, 201);
    at = strstr(r.location, "/fhir/Observation/");
    assert_non_null(at);
    end = strstr(at, "/_history");
    assert_non_null(end);
    assert_true((size_t)(end - at) < cap);
    memcpy(path, at, (size_t)(end - at));
    path[end - at] = '\0';
    fetched_free(&r);
}

static int is_gzip(const fetched_t *r)
{
    return r->body.len >= 2 && (unsigned char)r->body.data[0] == 0x1f &&
           (unsigned char)r->body.data[1] == 0x8b;
}

/* A body in memory: gzip for Accept-Encoding: gzip, decoded equal to the
 * identity answer; the same length on the wire as Content-Length says. */
static void test_gzip_body(void **state)
{
    fixture_t *f = *state;
    char path[128], *obs = big_observation();
    fetched_t plain, zipped, raw;
    create(f, obs, path, sizeof path);
    free(obs);
    fetch(f, "GET", path, NULL, 0, NULL, &plain); /* no Accept-Encoding: identity */
    assert_int_equal(plain.status, 200);
    assert_true(plain.body.len >= 2048);
    assert_string_equal(plain.encoding, "");
    assert_string_equal(plain.vary, "Accept-Encoding");
    fetch(f, "GET", path, NULL, 1, NULL, &zipped);
    assert_int_equal(zipped.status, 200);
    assert_string_equal(zipped.encoding, "gzip");
    assert_string_equal(zipped.vary, "Accept-Encoding");
    assert_int_equal(zipped.n_vary, 1);
    assert_string_equal(zipped.ctype, "application/fhir+json; charset=utf-8");
    assert_int_equal(zipped.body.len, plain.body.len);
    assert_memory_equal(zipped.body.data, plain.body.data, plain.body.len);
    /* on the wire: a gzip member, smaller, its length in Content-Length */
    fetch(f, "GET", path, AE_GZIP, 0, NULL, &raw);
    assert_string_equal(raw.encoding, "gzip");
    assert_true(is_gzip(&raw));
    assert_true(raw.body.len < plain.body.len / 2);
    assert_int_equal(raw.content_length, (curl_off_t)raw.body.len);
    assert_string_equal(raw.etag, plain.etag); /* weak: the coding does not change it */
    fetched_free(&plain);
    fetched_free(&zipped);
    fetched_free(&raw);
}

/* A search page: decoded, the same Bundle as the identity answer (but
 * for the Bundle's own id and lastUpdated, new on every page). */
static void test_gzip_search_page(void **state)
{
    fixture_t *f = *state;
    char path[128];
    fetched_t plain, zipped;
    const char *a, *b;
    for (int i = 0; i < 20; i++)
        create(f, OBS, path, sizeof path);
    fetch(f, "GET", "/fhir/Observation?_count=50", NULL, 0, NULL, &plain);
    fetch(f, "GET", "/fhir/Observation?_count=50", NULL, 1, NULL, &zipped);
    assert_int_equal(plain.status, 200);
    assert_int_equal(zipped.status, 200);
    assert_string_equal(plain.encoding, "");
    assert_string_equal(zipped.encoding, "gzip");
    assert_true(plain.body.len > 4096);
    assert_int_equal(zipped.body.len, plain.body.len);
    a = strstr(plain.body.data, "\"type\":\"searchset\"");
    b = strstr(zipped.body.data, "\"type\":\"searchset\"");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a - plain.body.data, b - zipped.body.data);
    assert_string_equal(a, b);
    fetched_free(&plain);
    fetched_free(&zipped);
}

/* Accept-Encoding as RFC 9110 12.5.3 reads it: q-values, `*`, identity,
 * x-gzip, several fields. The body is large enough every time, so every
 * answer carries Vary whatever it is coded with. */
static void test_gzip_negotiation(void **state)
{
    static const struct {
        const char *fields[3];
        int gzip;
    } cases[] = {
        {{"Accept-Encoding: gzip"}, 1},
        {{"Accept-Encoding: GZip"}, 1},
        {{"Accept-Encoding: x-gzip"}, 1},
        {{"Accept-Encoding: deflate, gzip"}, 1},
        {{"Accept-Encoding: br;q=1.0, gzip;q=0.001"}, 1},
        {{"Accept-Encoding: gzip ; q=1"}, 1},
        {{"Accept-Encoding: *"}, 1},
        {{"Accept-Encoding: identity;q=0.5, gzip"}, 1},
        {{"Accept-Encoding: br", "Accept-Encoding: gzip"}, 1}, /* fields combine */
        {{"Accept-Encoding: gzip;q=0"}, 0},
        {{"Accept-Encoding: gzip;q=0.000"}, 0},
        {{"Accept-Encoding: *, gzip;q=0"}, 0},
        {{"Accept-Encoding: gzip, gzip;q=0"}, 0}, /* twice: the lower q */
        {{"Accept-Encoding: *;q=0"}, 0},
        {{"Accept-Encoding: identity"}, 0},
        {{"Accept-Encoding: gzip;q=0.5, identity"}, 0}, /* identity preferred */
        {{"Accept-Encoding: br"}, 0},
        {{"Accept-Encoding: gzip;q=2"}, 0},  /* not a qvalue: the element is skipped */
        {{"Accept-Encoding: gzip;q=.5"}, 0}, /* neither */
        {{"Accept-Encoding: gzipx"}, 0},
        {{"Accept-Encoding;"}, 0}, /* empty: identity only */
        {{NULL}, 0},               /* none: identity */
    };
    fixture_t *f = *state;
    char path[128], *obs = big_observation();
    create(f, obs, path, sizeof path);
    free(obs);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fetched_t r;
        fetch(f, "GET", path, cases[i].fields, 0, NULL, &r);
        assert_int_equal(r.status, 200);
        if (strcmp(r.encoding, cases[i].gzip ? "gzip" : "") != 0 || is_gzip(&r) != cases[i].gzip)
            fail_msg("%s: Content-Encoding '%s'", cases[i].fields[0] ? cases[i].fields[0] : "none",
                     r.encoding);
        assert_string_equal(r.vary, "Accept-Encoding");
        fetched_free(&r);
    }
}

/* Below compress_min: as it is, without Vary. At exactly compress_min
 * bytes: compressed. Off: never, and no Vary. */
static void test_gzip_minimum(void **state)
{
    fixture_t *f = *state;
    char small[128], big[128], *obs = big_observation();
    fetched_t r;
    size_t len;
    create(f, OBS, small, sizeof small);
    create(f, obs, big, sizeof big);
    free(obs);
    fetch(f, "GET", small, AE_GZIP, 0, NULL, &r); /* about 250 bytes: under 1024 */
    assert_int_equal(r.status, 200);
    assert_true(r.body.len < VL_HTTP_DEFAULT_COMPRESS_MIN);
    assert_string_equal(r.encoding, "");
    assert_int_equal(r.n_vary, 0);
    fetched_free(&r);
    fetch(f, "GET", big, NULL, 0, NULL, &r);
    len = r.body.len;
    fetched_free(&r);
    restart_with(f, len, 0);
    fetch(f, "GET", big, AE_GZIP, 0, NULL, &r);
    assert_string_equal(r.encoding, "gzip");
    fetched_free(&r);
    restart_with(f, len + 1, 0);
    fetch(f, "GET", big, AE_GZIP, 0, NULL, &r);
    assert_string_equal(r.encoding, "");
    assert_int_equal(r.body.len, len);
    assert_int_equal(r.n_vary, 0);
    fetched_free(&r);
    restart_with(f, VL_HTTP_COMPRESS_OFF, 0);
    fetch(f, "GET", big, AE_GZIP, 0, NULL, &r);
    assert_string_equal(r.encoding, "");
    assert_int_equal(r.n_vary, 0);
    fetched_free(&r);
    fetch(f, "GET", "/ledger/export", AE_GZIP, 0, NULL, &r); /* streams too */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.encoding, "");
    assert_int_equal(r.n_vary, 0);
    fetched_free(&r);
}

/* HEAD: GET's headers (Vary included) and the identity length, never
 * compressed; 204 and 304: no body, no Content-Type, no coding. */
static void test_gzip_not_for_head_204_304(void **state)
{
    fixture_t *f = *state;
    char path[128], inm[96], *obs = big_observation();
    const char *const cond[] = {"Accept-Encoding: gzip", inm, NULL};
    fetched_t get, r;
    create(f, obs, path, sizeof path);
    free(obs);
    fetch(f, "GET", path, NULL, 0, NULL, &get);
    fetch(f, "HEAD", path, AE_GZIP, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.encoding, "");
    assert_string_equal(r.vary, "Accept-Encoding");
    assert_string_equal(r.ctype, get.ctype);
    assert_string_equal(r.etag, get.etag);
    assert_int_equal(r.content_length, (curl_off_t)get.body.len);
    assert_int_equal(r.body.len, 0);
    fetched_free(&r);
    /* a conditional read of the current version: 304 */
    snprintf(inm, sizeof inm, "If-None-Match: %s", get.etag);
    fetch(f, "GET", path, cond, 0, NULL, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body.len, 0);
    assert_string_equal(r.encoding, "");
    assert_int_equal(r.n_ctype, 0);
    assert_string_equal(r.etag, get.etag);
    assert_string_equal(r.last_modified, get.last_modified);
    assert_string_equal(r.vary, "Accept-Encoding");
    assert_true(r.content_length <= 0); /* libmicrohttpd 0.9.75 sends "0" */
    fetched_free(&r);
    /* nothing follows the 304's header section: the connection goes on */
    {
        char req[256], buf[4096] = "";
        size_t len = 0;
        int fd = raw_connect(f), n;
        assert_true(fd >= 0);
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n%s\r\n\r\n",
                     path, inm);
        assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
        while (!strstr(buf, "\r\n\r\n")) {
            ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
            assert_true(k > 0);
            len += (size_t)k;
            buf[len] = '\0';
        }
        assert_int_equal(strncmp(buf, "HTTP/1.1 304 ", 13), 0);
        assert_null(strcasestr(buf, "\r\nContent-Type:"));
        assert_string_equal(strstr(buf, "\r\n\r\n"), "\r\n\r\n");
        assert_int_equal(raw_get(fd, "/healthz"), 200);
        close(fd);
    }
    fetch(f, "DELETE", path, AE_GZIP, 0, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body.len, 0);
    assert_string_equal(r.encoding, "");
    assert_int_equal(r.n_ctype, 0);
    assert_int_equal(r.n_vary, 0);
    fetched_free(&r);
    fetched_free(&get);
}

/* One unit of many versions: a ledger of `n` more entries at once. */
typedef struct many {
    int n;
    char body[64];
} many_t;

static int apply_many(vl_store_txn_t *txn, void *arg)
{
    many_t *m = arg;
    for (int i = 0; i < m->n; i++) {
        char id[32];
        tstore_put_t a;
        snprintf(id, sizeof id, "bulk-%d", i);
        a = tstore_put_of("Basic", id, 1, VL_METHOD_POST, m->body, NULL);
        if (vl_store_txn_put(txn, &a.put, &a.receipt, &a.err) < 0)
            return -1;
    }
    return 0;
}

/* A streamed answer (the ledger export, several times the 64 KiB the
 * compressor reads at once and the 64 KiB libmicrohttpd asks for):
 * compressed on the fly, decoded intact, the gzip trailer at its end. */
static void test_gzip_stream(void **state)
{
    fixture_t *f = *state;
    many_t m = {.n = 3000, .body = "{\"resourceType\":\"Basic\"}"};
    vl_store_unit_t u;
    fetched_t plain, zipped, raw;
    memset(&u, 0, sizeof u);
    u.apply = apply_many;
    u.arg = &m;
    assert_int_equal(vl_store_run(f->store, &u), 0);
    fetch(f, "GET", "/ledger/export", NULL, 0, NULL, &plain);
    assert_int_equal(plain.status, 200);
    assert_string_equal(plain.encoding, "");
    assert_string_equal(plain.vary, "Accept-Encoding"); /* streams may be compressed */
    assert_true(plain.body.len > 8 * 64 * 1024);
    fetch(f, "GET", "/ledger/export", NULL, 1, NULL, &zipped);
    assert_int_equal(zipped.status, 200);
    assert_string_equal(zipped.encoding, "gzip");
    assert_string_equal(zipped.ctype, "application/x-ndjson");
    assert_int_equal(zipped.body.len, plain.body.len);
    assert_memory_equal(zipped.body.data, plain.body.data, plain.body.len);
    /* on the wire: one gzip member whose trailer holds the length */
    fetch(f, "GET", "/ledger/export", AE_GZIP, 0, NULL, &raw);
    assert_true(is_gzip(&raw));
    assert_true(raw.body.len < plain.body.len / 2);
    {
        const unsigned char *t = (const unsigned char *)raw.body.data + raw.body.len - 4;
        uint32_t isize = t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
        assert_int_equal(isize, (uint32_t)plain.body.len);
    }
    fetched_free(&plain);
    fetched_free(&zipped);
    fetched_free(&raw);
}

/* With CORS: one Vary field naming both. */
static void test_gzip_vary_with_cors(void **state)
{
    fixture_t *f = *state;
    char big[128], small[128], origin[64], *obs = big_observation();
    const char *const headers[] = {"Accept-Encoding: gzip", origin, NULL};
    fetched_t r;
    snprintf(origin, sizeof origin, "Origin: %s", CORS_ORIGIN);
    create(f, obs, big, sizeof big);
    create(f, OBS, small, sizeof small);
    free(obs);
    restart_with(f, 0, 1);
    fetch(f, "GET", big, headers, 0, NULL, &r);
    assert_string_equal(r.encoding, "gzip");
    assert_int_equal(r.n_vary, 1);
    assert_string_equal(r.vary, "Origin, Accept-Encoding");
    fetched_free(&r);
    fetch(f, "GET", small, headers, 0, NULL, &r); /* under the minimum: Origin only */
    assert_string_equal(r.encoding, "");
    assert_int_equal(r.n_vary, 1);
    assert_string_equal(r.vary, "Origin");
    fetched_free(&r);
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
        cmocka_unit_test_setup_teardown(test_gzip_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_search_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_negotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_minimum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_not_for_head_204_304, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_vary_with_cors, setup, teardown),
    };
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
