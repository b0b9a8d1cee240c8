/*
 * libmicrohttpd glue: the request lifecycle.
 *
 *   first call      allocate vl_request_t, read headers, id, query; refuse a
 *                   declared Content-Length over the limit (413) at once
 *   upload calls    append the body up to max_body; past it remember
 *                   too_large and discard the rest
 *   final call      route and answer; a write suspends the connection
 *   resumed call    (after the writer committed) build the write's answer
 *   completed       log one line, free the request
 *
 * Shutdown drains *dispatched* requests (body complete, being answered):
 * a client still uploading when SIGTERM arrives is cut off without an
 * answer, and nothing of its request was written.
 *
 * Suspend/resume ordering: vl_submit_write() holds req->mu while it submits
 * and suspends; the writer's completion takes req->mu before resuming, so a
 * resume can never overtake its suspend. The completion releases req->mu
 * before resuming and never touches req afterwards (it may be freed).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http_internal.h"

/* ------------------------------------------------------------------------
 * Buffers
 * ---------------------------------------------------------------------- */

void vl_buf_append(vl_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->max && b->len + n > b->max) {
        b->failed = 1;
        free(b->data);
        b->data = NULL;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *p = realloc(b->data, ncap);
        if (!p) {
            b->failed = 1;
            free(b->data);
            b->data = NULL;
            return;
        }
        b->data = p;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void vl_buf_puts(vl_buf_t *b, const char *s)
{
    vl_buf_append(b, s, strlen(s));
}

void vl_buf_json_string(vl_buf_t *b, const char *s)
{
    json_t *j = json_string(s);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t) {
        b->failed = 1;
        return;
    }
    vl_buf_puts(b, t);
    free(t);
}

char *vl_buf_take(vl_buf_t *b, size_t *len)
{
    char *d = b->failed ? NULL : b->data;
    if (!d && !b->failed) { /* empty but fine */
        d = calloc(1, 1);
    }
    if (len)
        *len = d ? b->len : 0;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

/* ------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------- */

const char *vl_req_header(vl_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void vl_base_url(vl_request_t *req, char *out, size_t n)
{
    const char *host;
    if (req->http->base_url[0]) {
        snprintf(out, n, "%s", req->http->base_url);
        return;
    }
    host = vl_req_header(req, MHD_HTTP_HEADER_HOST);
    if (host && *host && strlen(host) < 200) {
        int ok = 1;
        for (const char *p = host; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr(".-:[]_", *p))
                ok = 0;
        if (ok) {
            snprintf(out, n, "http://%s", host);
            return;
        }
    }
    snprintf(out, n, "http://%s:%u", req->http->opts.host, (unsigned)req->http->port);
}

MHD_RESULT vl_send(vl_request_t *req, vl_response_t *res)
{
    struct MHD_Response *r;
    MHD_RESULT ret;
    const char *ctype = req->json_as_plain ? "application/json; charset=utf-8"
                                           : "application/fhir+json; charset=utf-8";
    r = MHD_create_response_from_buffer(res->body ? res->body_len : 0, res->body,
                                        res->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(res->body);
        return MHD_NO;
    }
    res->body = NULL;
    if (res->body_len || res->status != 204)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    if (res->etag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, res->etag);
    if (res->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, res->location);
    if (res->last_modified[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, res->last_modified);
    if (res->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res->allow);
    if (res->ledger_index[0]) {
        MHD_add_response_header(r, "X-Ledger-Index", res->ledger_index);
        MHD_add_response_header(r, "X-Ledger-Entry-Hash", res->ledger_hash);
    }
    req->status = res->status;
    ret = MHD_queue_response(req->conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ret;
}

char *vl_dump_release(json_t *doc, size_t *len)
{
    char *s = doc ? vl_json_dump(doc, len) : NULL;
    json_decref(doc);
    return s;
}

MHD_RESULT vl_send_json(vl_request_t *req, int status, json_t *doc)
{
    vl_response_t res = {.status = status};
    res.body = vl_dump_release(doc, &res.body_len);
    if (!res.body) {
        res.status = 500;
        res.body = strdup("{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                          "\"fatal\",\"code\":\"exception\",\"diagnostics\":\"out of memory\"}]}");
        res.body_len = res.body ? strlen(res.body) : 0;
    }
    return vl_send(req, &res);
}

MHD_RESULT vl_send_error(vl_request_t *req, const vl_error_t *err)
{
    int status = err->status ? err->status : 500;
    return vl_send_json(req, status, vl_error_outcome(err));
}

MHD_RESULT vl_send_errorf(vl_request_t *req, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vl_send_json(req, status, vl_outcome_new("error", code, msg));
}

/* ------------------------------------------------------------------------
 * Asynchronous writes
 * ---------------------------------------------------------------------- */

/* Runs on the writer thread. Once the connection is resumed its pool thread
 * may answer and free `req` at any moment, so nothing of req is touched
 * after MHD_resume_connection(). Taking req->mu first guarantees that the
 * suspend in vl_submit_write() has happened. */
static void write_completed(vl_store_write_t *w, void *arg)
{
    vl_request_t *req = arg;
    vl_http_t *h = req->http;
    struct MHD_Connection *conn;
    (void)w;
    pthread_mutex_lock(&req->mu);
    req->wstate = VL_WRITE_DONE;
    conn = req->conn;
    pthread_mutex_unlock(&req->mu);
    MHD_resume_connection(conn);
    /* last: vl_http_stop() waits for this before stopping the daemon */
    atomic_fetch_sub(&h->pending_writes, 1);
}

MHD_RESULT vl_submit_write(vl_request_t *req)
{
    vl_error_t err = VL_ERROR_INIT;
    MHD_RESULT ret;
    req->write.done = write_completed;
    req->write.done_arg = req;
    pthread_mutex_lock(&req->mu);
    req->wstate = VL_WRITE_PENDING;
    atomic_fetch_add(&req->http->pending_writes, 1);
    /* checked after the increment: vl_http_stop() sets stopping, then waits
     * for pending_writes to reach 0, so no write can slip in between */
    if (atomic_load(&req->http->stopping) ||
        vl_store_submit(req->http->store, &req->write, &err) < 0) {
        if (!err.status)
            vl_error_set(&err, 503, "transient", NULL, "the server is shutting down");
        atomic_fetch_sub(&req->http->pending_writes, 1);
        req->wstate = VL_WRITE_IDLE;
        pthread_mutex_unlock(&req->mu);
        ret = vl_send_error(req, &err);
        vl_error_clear(&err);
        return ret;
    }
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&req->mu);
    return MHD_YES;
}

/* ------------------------------------------------------------------------
 * Operational endpoints
 * ---------------------------------------------------------------------- */

MHD_RESULT vl_send_text(vl_request_t *req, int status, const char *ctype, char *body, size_t len)
{
    struct MHD_Response *r;
    MHD_RESULT ret;
    if (!body)
        return vl_send_errorf(req, 500, "exception", "out of memory");
    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    req->status = status;
    ret = MHD_queue_response(req->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* One Prometheus metric: HELP and TYPE lines, then the sample. */
static void metric(vl_buf_t *b, const char *name, const char *type, const char *help,
                   const char *labels, unsigned long long value)
{
    char line[512];
    if (help) {
        snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        vl_buf_puts(b, line);
    }
    snprintf(line, sizeof line, "%s%s %llu\n", name, labels ? labels : "", value);
    vl_buf_puts(b, line);
}

static MHD_RESULT handle_metrics(vl_request_t *req)
{
    vl_http_t *h = req->http;
    vl_store_stats_t st;
    vl_buf_t b = {0};
    vl_store_stats(h->store, &st);
    metric(&b, "vitalog_http_requests_total", "counter", "HTTP requests received.", NULL,
           atomic_load(&h->requests_total));
    for (int c = 1; c <= 5; c++) {
        char labels[32];
        snprintf(labels, sizeof labels, "{class=\"%dxx\"}", c);
        metric(&b, "vitalog_http_responses_total", "counter",
               c == 1 ? "HTTP responses by status class." : NULL, labels,
               atomic_load(&h->responses_by_class[c]));
    }
    metric(&b, "vitalog_store_commits_total", "counter", "Write transactions committed.", NULL,
           st.commits);
    metric(&b, "vitalog_store_writes_total", "counter", "Writes completed (ok or failed).", NULL,
           st.writes);
    metric(&b, "vitalog_store_write_failures_total", "counter", "Writes that failed.", NULL,
           st.write_failures);
    metric(&b, "vitalog_store_queue_depth", "gauge", "Writes waiting for the writer.", NULL,
           st.queue_depth);
    char *text = vl_buf_take(&b, NULL);
    if (!text)
        return vl_send_errorf(req, 500, "exception", "out of memory");
    return vl_send_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
}

static MHD_RESULT handle_health(vl_request_t *req, int ready_check)
{
    int ok = !ready_check || vl_store_ready(req->http->store) == 0;
    const char *body = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"unavailable\"}";
    return vl_send_text(req, ok ? 200 : 503, "application/json", strdup(body), strlen(body));
}

/* ------------------------------------------------------------------------
 * libmicrohttpd callbacks
 * ---------------------------------------------------------------------- */

static int has_control(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
            return 1;
    return 0;
}

static MHD_RESULT collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    vl_request_t *req = cls;
    (void)kind;
    if (has_control(key) || has_control(value))
        req->bad_query = 1;
    vl_params_add(&req->params, key, value ? value : "");
    return MHD_YES;
}

/* Percent-decoding for the path and the query (in place): %XX, and '+' as
 * a space (form encoding; '+' never occurs in a valid FHIR path segment).
 * %00 cannot live in a C string: it decodes to U+001F instead, a control
 * character that collect_arg() and id validation reject, so a NUL can
 * never silently shorten a value. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    char *r = s, *w = s;
    (void)cls;
    (void)c;
    while (*r) {
        if (*r == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
            char hex[3] = {r[1], r[2], 0};
            char byte = (char)strtol(hex, NULL, 16);
            *w++ = byte ? byte : '\x1f';
            r += 3;
        } else if (*r == '+') {
            *w++ = ' ';
            r++;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static int valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_' && s[n] != '.')
            return 0;
    return n > 0 && n <= 32;
}

static vl_request_t *request_new(vl_http_t *h, struct MHD_Connection *conn, const char *url,
                                 const char *method)
{
    vl_request_t *req = calloc(1, sizeof *req);
    const char *rid, *clen;
    if (!req)
        return NULL;
    req->http = h;
    req->conn = conn;
    req->start_us = vl_time_now_us();
    req->method = method;
    req->route = "unmatched";
    pthread_mutex_init(&req->mu, NULL);
    snprintf(req->path, sizeof req->path, "%s", url);
    vl_params_init(&req->params);
    req->body.max = h->opts.max_body;
    rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && valid_request_id(rid))
        snprintf(req->request_id, sizeof req->request_id, "%s", rid);
    else
        vl_id_new(req->request_id);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, req);
    clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen && strtoull(clen, NULL, 10) > h->opts.max_body)
        req->too_large = 1;
    return req;
}

static void request_free(vl_request_t *req)
{
    free(req->body.data);
    vl_params_free(&req->params);
    vl_store_write_release(&req->write);
    if (req->has_if_none_exist)
        vl_search_free(&req->if_none_exist);
    json_decref(req->resource);
    pthread_mutex_destroy(&req->mu);
    free(req);
}

static MHD_RESULT route(vl_request_t *req)
{
    const char *p = req->path;
    if (!req->dispatched) { /* from here on the request counts for the drain */
        req->dispatched = 1;
        atomic_fetch_add(&req->http->active, 1);
    }
    if (req->too_large)
        return vl_send_errorf(req, 413, "too-long", "request body exceeds the limit of %zu bytes",
                              req->http->opts.max_body);
    if (req->bad_query || has_control(p))
        return vl_send_errorf(req, 400, "invalid",
                              "the URL holds a control character (such as %%00)");
    if (strcmp(p, "/fhir") == 0 || strncmp(p, "/fhir/", 6) == 0)
        return vl_rest_dispatch(req);
    if (strncmp(p, "/ledger/", 8) == 0)
        return vl_ledger_dispatch(req);
    if (strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0 || strcmp(p, "/metrics") == 0) {
        req->route = p[1] == 'h' ? "/healthz" : p[1] == 'r' ? "/readyz" : "/metrics";
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            vl_response_t res = {.status = 405, .allow = "GET, HEAD"};
            vl_error_t e = VL_ERROR_INIT;
            vl_error_set(&e, 405, "not-supported", NULL, "%s is not allowed on %s", req->method,
                         req->route);
            res.body = vl_dump_release(vl_error_outcome(&e), &res.body_len);
            vl_error_clear(&e);
            return vl_send(req, &res);
        }
        if (p[1] == 'm')
            return handle_metrics(req);
        return handle_health(req, p[1] == 'r');
    }
    return vl_send_errorf(req, 404, "not-found", "no such path; the FHIR API is under /fhir");
}

/* libmicrohttpd's own diagnostics, as JSON log lines like everything else. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) VL_PRINTF(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    vl_log(VL_LOG_WARN, "libmicrohttpd", json_pack("{s:s}", "detail", msg));
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
    vl_http_t *h = cls;
    vl_request_t *req = *con_cls;
    (void)version;
    if (!req) {
        req = request_new(h, conn, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        atomic_fetch_add(&h->requests_total, 1);
        if (req->too_large) /* refuse before reading a byte of the body */
            return route(req);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!req->too_large) {
            vl_buf_append(&req->body, upload_data, *upload_data_size);
            if (req->body.failed)
                req->too_large = 1;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    {
        vl_write_state_t state;
        pthread_mutex_lock(&req->mu);
        state = req->wstate;
        if (state == VL_WRITE_DONE)
            req->wstate = VL_WRITE_IDLE;
        pthread_mutex_unlock(&req->mu);
        if (state == VL_WRITE_PENDING) /* never route (and submit) a queued write twice */
            return MHD_YES;
        if (state == VL_WRITE_DONE)
            return vl_rest_write_done(req);
    }
    if (req->status) /* already answered (e.g. 413 on the first call) */
        return MHD_YES;
    return route(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    vl_http_t *h = cls;
    vl_request_t *req = *con_cls;
    (void)conn;
    if (!req)
        return;
    int64_t us = vl_time_now_us() - req->start_us;
    int status = req->status;
    if (status >= 100 && status < 600)
        atomic_fetch_add(&h->responses_by_class[status / 100], 1);
    vl_log(status >= 500 ? VL_LOG_ERROR : VL_LOG_INFO, "request",
           json_pack("{s:s,s:s,s:s,s:i,s:f,s:s}", "request_id", req->request_id, "method",
                     req->method, "route", req->route, "status", status, "duration_ms",
                     (double)us / 1000.0, "outcome",
                     toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "completed" : "aborted"));
    if (req->dispatched)
        atomic_fetch_sub(&h->active, 1);
    request_free(req);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------------
 * Start / stop
 * ---------------------------------------------------------------------- */

int vl_http_start(const vl_http_options_t *opts, vl_store_t *store, vl_http_t **out,
                  vl_error_t *err)
{
    vl_http_t *h = calloc(1, sizeof *h);
    struct sockaddr_in addr;
    const union MHD_DaemonInfo *info;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (!h)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    h->opts = *opts;
    h->store = store;
    if (!h->opts.host)
        h->opts.host = "127.0.0.1";
    if (!h->opts.threads)
        h->opts.threads = ncpu > 0 ? (unsigned)ncpu : 2;
    if (!h->opts.max_body)
        h->opts.max_body = VL_HTTP_DEFAULT_MAX_BODY;
    if (!h->opts.max_depth)
        h->opts.max_depth = VL_HTTP_DEFAULT_MAX_DEPTH;
    if (!h->opts.conn_timeout)
        h->opts.conn_timeout = VL_HTTP_DEFAULT_TIMEOUT;
    if (!h->opts.max_conns)
        h->opts.max_conns = VL_HTTP_DEFAULT_MAX_CONNS;
    if (opts->base_url) {
        snprintf(h->base_url, sizeof h->base_url, "%s", opts->base_url);
        size_t n = strlen(h->base_url);
        while (n && h->base_url[n - 1] == '/')
            h->base_url[--n] = '\0';
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(opts->port);
    if (inet_pton(AF_INET, h->opts.host, &addr.sin_addr) != 1) {
        vl_error_set(err, 500, "exception", NULL, "listen address '%s' is not an IPv4 address",
                     h->opts.host);
        free(h);
        return -1;
    }
    h->daemon = MHD_start_daemon(
        /* poll(), not epoll: libmicrohttpd 0.9.75 can abort in
         * MHD_quiesce_daemon() with a thread pool on epoll ("Failed to
         * remove listen FD from epoll set") when a worker races it; poll
         * has no such path and costs little at our connection counts */
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        opts->port, NULL, NULL, on_request, h,
        /* first, so that every diagnostic goes through it */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, h->opts.threads, MHD_OPTION_CONNECTION_TIMEOUT,
        h->opts.conn_timeout, MHD_OPTION_CONNECTION_LIMIT, h->opts.max_conns,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
        NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
        MHD_OPTION_END);
    if (!h->daemon) {
        free(h);
        return vl_error_set(err, 500, "exception", NULL, "cannot listen on %s:%u", opts->host,
                            (unsigned)opts->port);
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : opts->port;
    *out = h;
    return 0;
}

uint16_t vl_http_port(const vl_http_t *h)
{
    return h->port;
}

void vl_http_stop(vl_http_t *h, unsigned drain_ms)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    for (unsigned waited = 0; atomic_load(&h->active) > 0 && waited < drain_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Past the drain deadline idle and slow connections are closed, but a
     * write the store accepted always completes (and resumes its
     * connection) before the daemon goes: stopping earlier would free
     * requests the writer still points to. */
    while (atomic_load(&h->pending_writes) > 0) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* A resume takes effect only when the connection's pool thread gets to
     * it, and libmicrohttpd aborts if the daemon stops with a connection
     * still suspended: give resumed requests time to be answered. */
    for (unsigned waited = 0; atomic_load(&h->active) > 0 && waited < 2000; waited += 1) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(h->daemon);
    free(h);
}
