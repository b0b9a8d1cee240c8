/*
 * vitalog — http/server.c: the libmicrohttpd glue.
 *
 * REQUEST LIFECYCLE
 *
 *   request line    on_uri(): allocate vl_request_t with the raw target's
 *                   length (path and query) and whether its path holds %2F
 *   first call      set it up; framing checks (RFC 9112 6.1, 6.3:
 *                   Content-Length and Transfer-Encoding together, several
 *                   Content-Lengths, an unknown Transfer-Encoding, a header
 *                   name with whitespace, HTTP/1.1 without exactly one
 *                   Host: 400 and close, before a byte of the body is read);
 *                   a target over max_path: 414; a path or query that is
 *                   not UTF-8 or holds a control character: 400
 *   upload calls    append the body up to max_body; past it read and
 *                   discard (up to a bound) so the client gets its 413
 *   final call      negotiate (406), hand the request to vl_fhir_handle();
 *                   a pending answer suspends the connection
 *   resumed call    (after the writer committed) vl_fhir_resume()
 *   completed       log one line, free the request
 *
 * SUSPEND/RESUME ORDERING: dispatch() holds req->mu while the layer handles
 * the request and while it suspends; on_notify() (writer thread) takes
 * req->mu before resuming, so a resume can never overtake its suspend. It
 * releases req->mu before resuming and never touches req afterwards.
 *
 * SHUTDOWN (vl_http_stop): stop accepting; requests in flight, from their
 * complete headers on (counted in `active`), get up to drain_ms to
 * finish, including clients still sending a body; answers sent while
 * stopping carry "Connection: close". After the drain, requests get 503
 * and close. Writes the store accepted always complete before the daemon
 * stops.
 *
 * SLOWLORIS: a connection must deliver each request's headers within
 * header_timeout of its start (or of the end of its previous request);
 * the watchdog shuts the socket of one that does not. Connections per
 * client address are limited (max_conns_per_ip).
 *
 * COMPRESSION (send_response): an answer is sent with Content-Encoding:
 * gzip when
 *   1. it may have a body: not 204 or 304 (their body, if the layer left
 *      one, is dropped, and they carry no Content-Type; libmicrohttpd
 *      0.9.75 gives a 304 "Content-Length: 0", which recipients ignore
 *      there (RFC 9112 6.3 rule 1, RFC 9111 3.2); a response of unknown
 *      size would avoid it, but 0.9.75 then sends a chunked terminator
 *      after the 304's header section, which would corrupt the next
 *      answer on the connection);
 *   2. compression is on (compress_min is not VL_HTTP_COMPRESS_OFF) and
 *      the body is streamed or holds at least compress_min bytes;
 *   3. the request is not HEAD: a HEAD answer has GET's headers (Vary
 *      included) except Content-Encoding, and the identity length, since
 *      libmicrohttpd never sends its body and compressing it would be waste;
 *   4. the client's Accept-Encoding fields (every one of them) give gzip
 *      (or x-gzip; or else `*`) a q-value above 0, and identity no higher
 *      q-value (RFC 9110 12.5.3). Without Accept-Encoding nothing is
 *      compressed: clients that do not ask may not decode. An element
 *      with a malformed q-value counts as absent, a coding listed twice
 *      takes its lower q. gzip refused never makes a 406: the answer goes
 *      out uncompressed, identity being always available.
 * Every answer that meets 1 and 2 (HEAD too), and every 304 while
 * compression is on, carries Vary: Accept-Encoding (with Origin, when
 * CORS is configured, in one Vary field). The fhir layer has no way to
 * send a Content-Encoding of its own (vl_fhir_response_t has no such
 * field), so no answer is encoded twice. ETags stay as they are: they are
 * all weak (W/"n"), which a coding does not change (RFC 9110 8.8.1).
 *
 * A body in memory is compressed in one go into a buffer of
 * deflateBound() bytes (shrunk to the result) on the pool thread that
 * sends it. A stream (the ledger export, Bulk Data files, the $ingest
 * answer) is compressed on the fly in stream_read() in constant memory: a
 * vl_gzip_t per request (zlib's state, about 256 KiB, and one 64 KiB input
 * buffer), freed with the request. When zlib fails, memory is short or
 * gzip would not be smaller, the body is sent uncompressed; a deflate()
 * error in the middle of a stream, after the headers went, ends the
 * connection as a failing stream does.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ZLIB_CONST /* next_in points to const bytes */
#include <zlib.h>

#include "http_internal.h"

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

static const char *header(vl_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------
 * Compression: Accept-Encoding and gzip (see COMPRESSION above)
 * ---------------------------------------------------------------------- */

#define GZIP_WINDOW_BITS (15 + 16) /* a 32 KiB window, with the gzip wrapper */
#define GZIP_MEM_LEVEL 8
#define GZIP_STREAM_IN (64 * 1024) /* a stream is read in pieces of this size */
#define Q_ABSENT (-1)

/* What the Accept-Encoding fields say: q-values in thousandths (0..1000),
 * Q_ABSENT for a coding not listed. */
typedef struct accept_encoding {
    int gzip, identity, any;
} accept_encoding_t;

static int is_tchar(char c)
{
    return c && (isalnum((unsigned char)c) || strchr("!#$%&'*+-.^_`|~", c));
}

/* A qvalue (RFC 9110 12.4.2: "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"]) of
 * `n` bytes in thousandths, or -1 when it is not one. */
static int parse_qvalue(const char *s, size_t n)
{
    int q, scale = 100;
    if (n == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    q = (s[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (s[1] != '.' || n > 5)
        return -1;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* A coding listed twice keeps its lower q-value. */
static void merge_q(int *slot, int q)
{
    if (*slot == Q_ABSENT || q < *slot)
        *slot = q;
}

/* Adds the elements of one Accept-Encoding field value to *ae:
 * #( codings [ OWS ";" OWS "q=" qvalue ] ). An element that does not
 * parse is skipped (up to the next comma); parameters other than q are
 * ignored. */
static void parse_accept_encoding(const char *p, accept_encoding_t *ae)
{
    while (*p) {
        const char *name;
        size_t len;
        int q = 1000, ok = 1;
        p += strspn(p, " \t,");
        if (!*p)
            break;
        for (name = p; is_tchar(*p); p++)
            ;
        len = (size_t)(p - name);
        ok = len > 0;
        for (;;) { /* parameters */
            const char *pname, *pval;
            size_t plen;
            p += strspn(p, " \t");
            if (*p != ';')
                break;
            p++;
            p += strspn(p, " \t");
            for (pname = p; is_tchar(*p); p++)
                ;
            plen = (size_t)(p - pname);
            if (*p != '=' || !plen) {
                ok = 0;
                break;
            }
            for (pval = ++p; is_tchar(*p); p++)
                ;
            if (plen == 1 && (*pname == 'q' || *pname == 'Q') &&
                (q = parse_qvalue(pval, (size_t)(p - pval))) < 0)
                ok = 0;
        }
        p += strspn(p, " \t");
        if (*p && *p != ',') { /* junk after the element: skip it */
            ok = 0;
            p += strcspn(p, ",");
        }
        if (!ok)
            continue;
        if ((len == 4 && !strncasecmp(name, "gzip", 4)) ||
            (len == 6 && !strncasecmp(name, "x-gzip", 6)))
            merge_q(&ae->gzip, q);
        else if (len == 8 && !strncasecmp(name, "identity", 8))
            merge_q(&ae->identity, q);
        else if (len == 1 && *name == '*')
            merge_q(&ae->any, q);
    }
}

static MHD_RESULT collect_accept_encoding(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
    (void)kind;
    if (key && value && !strcasecmp(key, MHD_HTTP_HEADER_ACCEPT_ENCODING))
        parse_accept_encoding(value, cls);
    return MHD_YES;
}

/* Whether the request's Accept-Encoding fields take gzip, and prefer it
 * to identity (item 4 of COMPRESSION). */
static int accepts_gzip(vl_request_t *req)
{
    accept_encoding_t ae = {Q_ABSENT, Q_ABSENT, Q_ABSENT};
    int gzip, identity;
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_accept_encoding, &ae);
    gzip = ae.gzip != Q_ABSENT ? ae.gzip : ae.any != Q_ABSENT ? ae.any : 0;
    /* identity not listed (nor `*`): acceptable, with no preference */
    identity = ae.identity != Q_ABSENT ? ae.identity : ae.any;
    return gzip > 0 && gzip >= identity;
}

/* Compresses a body in one go. Returns the gzip member (malloc'd, the
 * caller frees it) with its length in *out_len, or NULL: zlib failed,
 * memory is short, or the result would not be smaller than the body. */
static char *gzip_buffer(const char *body, size_t len, size_t *out_len)
{
    z_stream z;
    uLong bound;
    char *out = NULL;
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL (zlib's allocator) */
    if (len > UINT_MAX)
        return NULL; /* avail_in is a uInt (and no body is this large) */
    if (deflateInit2(&z, VL_HTTP_GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    /* with Z_FINISH and this much room, deflate() ends in one call */
    bound = deflateBound(&z, (uLong)len);
    if (bound <= UINT_MAX && (out = malloc(bound)) != NULL) {
        z.next_in = (const Bytef *)body;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END || z.total_out >= len) {
            free(out);
            out = NULL;
        }
    }
    if (deflateEnd(&z) != Z_OK && out) { /* Z_STREAM_ERROR: the state was broken */
        free(out);
        out = NULL;
    }
    if (out) {
        char *smaller = realloc(out, z.total_out); /* give the rest of the bound back */
        *out_len = z.total_out;
        if (smaller)
            out = smaller;
    }
    return out;
}

/* A stream compressed on the fly (one per request, in req->gz). */
typedef struct vl_gzip {
    z_stream z;
    int eof;  /* the source ended: deflate() finishes */
    int done; /* deflate() returned Z_STREAM_END: the gzip trailer is out */
    unsigned char in[GZIP_STREAM_IN];
} vl_gzip_t;

/* A compressor for a stream, or NULL (out of memory, zlib failed). */
static vl_gzip_t *gzip_stream_new(void)
{
    vl_gzip_t *gz = calloc(1, sizeof *gz); /* zalloc, zfree, opaque: Z_NULL */
    if (!gz)
        return NULL;
    if (deflateInit2(&gz->z, VL_HTTP_GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(gz);
        return NULL;
    }
    return gz;
}

static void gzip_stream_free(vl_gzip_t *gz)
{
    if (!gz)
        return;
    /* Z_DATA_ERROR when the stream did not reach its end (the client
     * went away): the state is freed all the same */
    (void)deflateEnd(&gz->z);
    free(gz);
}

/* Fills buf with up to max bytes of the compressed stream: reads the
 * source in pieces of GZIP_STREAM_IN bytes until buf is full or the gzip
 * trailer is out. Returns what stream_read() returns. */
static ssize_t gzip_read(vl_request_t *req, char *buf, size_t max)
{
    vl_gzip_t *gz = req->gz;
    size_t produced;
    if (gz->done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (max == 0)
        return 0;
    gz->z.next_out = (Bytef *)buf;
    gz->z.avail_out = max > UINT_MAX ? UINT_MAX : (uInt)max;
    produced = gz->z.avail_out;
    while (gz->z.avail_out > 0) {
        int rc;
        if (gz->z.avail_in == 0 && !gz->eof) {
            ssize_t n = req->res.stream(req->res.stream_ctx, (char *)gz->in, sizeof gz->in);
            if (n < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            gz->eof = n == 0;
            gz->z.next_in = gz->in;
            gz->z.avail_in = (uInt)n;
        }
        /* progress is always possible here (input, or Z_FINISH, and room):
         * anything but Z_OK and Z_STREAM_END, Z_BUF_ERROR included, is a
         * failure */
        rc = deflate(&gz->z, gz->eof ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            vl_http_t *h = req->http;
            gz->done = 1;
            atomic_fetch_add(&h->gzip_in_bytes, (unsigned long long)gz->z.total_in);
            atomic_fetch_add(&h->gzip_out_bytes, (unsigned long long)gz->z.total_out);
            break;
        }
        if (rc != Z_OK) {
            vl_log(VL_LOG_ERROR, "gzip",
                   json_pack("{s:s,s:i}", "request_id", req->request_id, "zlib", rc));
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    produced -= gz->z.avail_out;
    return produced ? (ssize_t)produced : MHD_CONTENT_READER_END_OF_STREAM;
}

/* ------------------------------------------------------------------------
 * Sending
 * ---------------------------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    vl_request_t *req = cls;
    ssize_t n;
    (void)pos;
    if (req->gz)
        return gzip_read(req, buf, max);
    n = req->res.stream(req->res.stream_ctx, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

/* ------------------------------------------------------------------------
 * CORS (for browser SMART apps): only the configured origins
 * ---------------------------------------------------------------------- */

#define CORS_METHODS "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"
#define CORS_HEADERS                                                                               \
    "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, "        \
    "If-Modified-Since, X-Request-Id"
#define CORS_EXPOSE                                                                                \
    "Location, ETag, Last-Modified, Content-Location, X-Request-Id, X-Ledger-Index, "              \
    "X-Ledger-Entry-Hash, WWW-Authenticate, X-Progress"

/* The request's Origin when it is one of the allowed ones, else NULL. */
static const char *cors_origin(vl_request_t *req)
{
    const vl_http_t *h = req->http;
    const char *origin = header(req, "Origin");
    for (size_t i = 0; origin && i < h->opts.n_cors_origins; i++)
        if (!strcmp(origin, h->opts.cors_origins[i]))
            return origin;
    return NULL;
}

/* Access-Control-* (Vary: Origin goes with send_response()'s Vary). */
static void cors_headers(vl_request_t *req, struct MHD_Response *r)
{
    const char *origin = cors_origin(req);
    if (!origin)
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE);
}

/* Sends req->res (whose body or stream the response takes over),
 * compressed when COMPRESSION (above) says so. */
static MHD_RESULT send_response(vl_request_t *req)
{
    vl_fhir_response_t *res = &req->res;
    vl_http_t *h = req->http;
    struct MHD_Response *r;
    MHD_RESULT ret;
    const char *ctype = res->content_type;
    const char *vary = NULL;
    int bodiless = res->status == 204 || res->status == 304;
    int compressing = h->opts.compress_min != VL_HTTP_COMPRESS_OFF;
    int eligible, gzip = 0;
    char *zbody = NULL;
    size_t zlen = 0;
    if (!ctype)
        ctype = req->json_as_plain ? "application/json; charset=utf-8"
                                   : "application/fhir+json; charset=utf-8";
    if (bodiless) { /* RFC 9110 15.3.5, 15.4.5: never a body */
        vl_fhir_response_free(res);
        res->body_len = 0;
    }
    eligible = !bodiless && compressing &&
               (res->stream || (res->body && res->body_len >= h->opts.compress_min));
    if (eligible && strcmp(req->method, "HEAD") != 0 && accepts_gzip(req)) {
        if (res->stream)
            gzip = (req->gz = gzip_stream_new()) != NULL;
        else
            gzip = (zbody = gzip_buffer(res->body, res->body_len, &zlen)) != NULL;
    }
    if (res->stream) {
        /* the stream context (and req->gz) live with the request (freed in
         * on_completed) */
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, req, NULL);
    } else if (zbody) {
        r = MHD_create_response_from_buffer(zlen, zbody, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(zbody);
            return MHD_NO;
        }
        atomic_fetch_add(&h->gzip_in_bytes, (unsigned long long)res->body_len);
        atomic_fetch_add(&h->gzip_out_bytes, (unsigned long long)zlen);
        free(res->body);
        res->body = NULL;
    } else {
        r = MHD_create_response_from_buffer(res->body ? res->body_len : 0, res->body,
                                            res->body ? MHD_RESPMEM_MUST_FREE
                                                      : MHD_RESPMEM_PERSISTENT);
        if (r)
            res->body = NULL;
    }
    if (!r)
        return MHD_NO;
    if (!bodiless)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (gzip) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
        atomic_fetch_add(&h->gzip_responses, 1);
    }
    /* one Vary field: what the answer depends on besides the target */
    if (eligible || (res->status == 304 && compressing))
        vary = h->opts.n_cors_origins ? "Origin, Accept-Encoding" : "Accept-Encoding";
    else if (h->opts.n_cors_origins)
        vary = "Origin";
    if (vary)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, vary);
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    if (res->etag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, res->etag);
    if (res->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, res->location);
    if (res->last_modified[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, res->last_modified);
    if (res->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res->allow);
    if (res->no_store)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (res->content_location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_LOCATION, res->content_location);
    if (res->progress[0])
        MHD_add_response_header(r, "X-Progress", res->progress);
    if (res->retry_after > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%d", res->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (res->www_authenticate[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, res->www_authenticate);
    if (res->ledger_index[0]) {
        MHD_add_response_header(r, "X-Ledger-Index", res->ledger_index);
        MHD_add_response_header(r, "X-Ledger-Entry-Hash", res->ledger_hash);
    }
    cors_headers(req, r);
    if (req->close || atomic_load(&req->http->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    req->status = res->status;
    req->route = res->route ? res->route : req->route;
    ret = MHD_queue_response(req->conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* An error answer from the transport itself (before the layer). */
static MHD_RESULT send_transport_error(vl_request_t *req, int status, const char *code,
                                       const char *msg, int close)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_error_set(&err, status, code, NULL, "%s", msg);
    vl_fhir_response_free(&req->res);
    memset(&req->res, 0, sizeof req->res);
    vl_fhir_response_error(&req->res, &err);
    vl_error_clear(&err);
    /* outside /fhir errors are plain JSON, as the interaction layer's are */
    if (!req->path || strncmp(req->path, "/fhir", 5) != 0)
        req->res.content_type = "application/json";
    req->close |= close;
    return send_response(req);
}

/* ------------------------------------------------------------------------
 * Negotiation (Accept and _format): 406 or the JSON flavour
 * ---------------------------------------------------------------------- */

static int negotiate(vl_request_t *req, const char **why)
{
    const char *fmt = vl_params_get(&req->params, "_format");
    const char *accept = header(req, MHD_HTTP_HEADER_ACCEPT);
    if (fmt) {
        if (!strcmp(fmt, "json") || !strcmp(fmt, "application/fhir+json") ||
            !strcmp(fmt, "application/json+fhir"))
            return 0;
        if (!strcmp(fmt, "application/json")) {
            req->json_as_plain = 1;
            return 0;
        }
        *why = strstr(fmt, "xml") ? "XML is not supported; this server speaks FHIR JSON only "
                                    "(use _format=json or Accept: application/fhir+json)"
                                  : "unsupported _format; use json";
        return -1;
    }
    if (!accept || !*accept || strstr(accept, "*/*") || strstr(accept, "application/*") ||
        strstr(accept, "fhir+json") || strstr(accept, "json+fhir"))
        return 0;
    /* Bulk Data files (fhir/export.c) are NDJSON: a client may ask for that */
    if (!strncmp(req->path, "/fhir/_export/", 14) && strstr(accept, "ndjson"))
        return 0;
    if (strstr(accept, "application/json")) {
        req->json_as_plain = 1;
        return 0;
    }
    *why = strstr(accept, "xml") ? "XML is not supported; this server speaks FHIR JSON only "
                                   "(Accept: application/fhir+json)"
                                 : "cannot answer in any of the accepted types; this server "
                                   "produces application/fhir+json and application/json";
    return -1;
}

/* ------------------------------------------------------------------------
 * Dispatch to the interaction layer
 * ---------------------------------------------------------------------- */

static void base_url(vl_request_t *req, char *out, size_t n)
{
    const char *host;
    vl_http_t *h = req->http;
    if (h->base_url[0]) {
        snprintf(out, n, "%s", h->base_url);
        return;
    }
    host = header(req, MHD_HTTP_HEADER_HOST);
    if (host && *host && strlen(host) < 200) {
        int ok = 1;
        for (const char *p = host; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr(".-:[]_", *p))
                ok = 0;
        if (ok) {
            snprintf(out, n, "%s://%s", h->opts.tls_cert_pem ? "https" : "http", host);
            return;
        }
    }
    snprintf(out, n, "%s://%s:%u", h->opts.tls_cert_pem ? "https" : "http", h->opts.host,
             (unsigned)h->port);
}

/* Runs on the writer thread when a pending answer can be built. */
static void on_notify(void *arg)
{
    vl_request_t *req = arg;
    vl_http_t *h = req->http;
    struct MHD_Connection *conn;
    int suspended;
    pthread_mutex_lock(&req->mu);
    /* a streamed body's layer may notify when the request is not suspended
     * (it was resumed already): nothing to do then */
    suspended = req->wstate == VL_WRITE_PENDING;
    conn = req->conn;
    if (suspended) {
        /* DONE and the resume together: a handler call that sees DONE knows
         * libmicrohttpd is resuming (a suspend then cancels that resume) */
        req->wstate = VL_WRITE_DONE;
        MHD_resume_connection(conn);
    }
    pthread_mutex_unlock(&req->mu);
    if (!suspended)
        return;
    /* last: vl_http_stop() waits for this before stopping the daemon */
    atomic_fetch_sub(&h->pending_writes, 1);
}

static MHD_RESULT dispatch(vl_request_t *req)
{
    vl_http_t *h = req->http;
    vl_fhir_request_t *fr = &req->freq;
    const char *why = NULL;
    int rc;
    /* a CORS preflight: answered here, before routing and credentials (a
     * browser sends none with it); an origin not allowed gets no CORS
     * headers, so the browser refuses */
    if (!strcmp(req->method, "OPTIONS") && header(req, "Origin") &&
        header(req, "Access-Control-Request-Method")) {
        struct MHD_Response *r;
        MHD_RESULT ret;
        const char *origin = cors_origin(req);
        if (!origin)
            return send_transport_error(req, 403, "forbidden",
                                        "this origin may not call the server (CORS)", 0);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "X-Request-Id", req->request_id);
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", CORS_METHODS);
        MHD_add_response_header(r, "Access-Control-Allow-Headers", CORS_HEADERS);
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        MHD_add_response_header(r, "Vary", "Origin");
        req->res.status = 204;
        req->res.route = "preflight";
        ret = MHD_queue_response(req->conn, 204, r);
        MHD_destroy_response(r);
        return ret;
    }
    /* FHIR routes negotiate; the others answer in their own fixed types */
    if (!strncmp(req->path, "/fhir", 5) && negotiate(req, &why) < 0)
        return send_transport_error(req, 406, "not-supported", why, 0);
    base_url(req, req->base, sizeof req->base);
    fr->method = req->method;
    fr->path = req->path;
    fr->params = &req->params;
    fr->base_url = req->base;
    fr->authorization = header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    fr->content_type = header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    fr->if_match = header(req, MHD_HTTP_HEADER_IF_MATCH);
    fr->if_none_exist = header(req, "If-None-Exist");
    fr->if_none_match = header(req, "If-None-Match");
    fr->if_modified_since = header(req, "If-Modified-Since");
    fr->prefer = header(req, "Prefer");
    fr->body = req->body.data ? req->body.data : "";
    fr->body_len = req->body.len;
    fr->body_streamed = req->streamed;

    /* Pairs with vl_http_stop(), which sets `closing` and then waits for
     * pending_writes to reach 0 (both sequentially consistent): a request
     * either sees `closing` here or is counted before the wait reads the
     * count, so nothing is submitted, or suspended, behind its back. */
    atomic_fetch_add(&h->pending_writes, 1);
    if (atomic_load(&h->closing)) {
        atomic_fetch_sub(&h->pending_writes, 1);
        return send_transport_error(req, 503, "transient", "the server is shutting down", 1);
    }
    pthread_mutex_lock(&req->mu);
    rc = vl_fhir_handle(h->fhir, fr, on_notify, req, &req->x, &req->res);
    if (rc == 2) { /* the layer takes the body as it arrives (feed()) */
        req->streaming = 1;
        pthread_mutex_unlock(&req->mu);
        atomic_fetch_sub(&h->pending_writes, 1);
        return MHD_YES;
    }
    if (rc == 1) {
        req->wstate = VL_WRITE_PENDING;
        atomic_fetch_add(&h->suspended, 1);
        MHD_suspend_connection(req->conn);
        pthread_mutex_unlock(&req->mu);
        return MHD_YES;
    }
    pthread_mutex_unlock(&req->mu);
    atomic_fetch_sub(&h->pending_writes, 1);
    return send_response(req);
}

/* A piece of a streamed body (len 0: its end) for the layer. When it
 * cannot take more, the connection is suspended until on_notify(); at the
 * end, the answer is sent or, pending, suspended for like dispatch(). */
static MHD_RESULT feed(vl_request_t *req, const char *data, size_t len)
{
    vl_http_t *h = req->http;
    int rc;
    /* counted like dispatch(): vl_http_stop() either sees this piece or
     * this piece sees `closing`, and then ends the body here (what came is
     * stored and answered; the rest is not read) */
    atomic_fetch_add(&h->pending_writes, 1);
    if (len && atomic_load(&h->closing)) {
        data = NULL;
        len = 0;
    }
    pthread_mutex_lock(&req->mu);
    rc = vl_fhir_feed(req->x, data, len, &req->res);
    if (rc == 1) {
        /* libmicrohttpd may hand over more of what it has buffered after a
         * suspend: the connection is then suspended once, not twice */
        if (req->wstate != VL_WRITE_PENDING) {
            req->wstate = VL_WRITE_PENDING;
            atomic_fetch_add(&h->suspended, 1);
            MHD_suspend_connection(req->conn);
        } else {
            atomic_fetch_sub(&h->pending_writes, 1); /* counted once, with the suspend */
        }
        req->paused = len > 0;
        if (!len)
            req->streaming = 0; /* the body ended (or was ended): the answer is pending */
        pthread_mutex_unlock(&req->mu);
        return MHD_YES;
    }
    pthread_mutex_unlock(&req->mu);
    atomic_fetch_sub(&h->pending_writes, 1);
    if (len)
        return MHD_YES;
    req->streaming = 0;
    return send_response(req);
}

/* ------------------------------------------------------------------------
 * libmicrohttpd callbacks
 * ---------------------------------------------------------------------- */

static MHD_RESULT collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    vl_request_t *req = cls;
    (void)kind;
    if (!vl_text_valid(key) || !vl_text_valid(value))
        req->bad_text = 1;
    if (vl_params_add(&req->params, key, value ? value : "") < 0)
        req->oom = 1;
    return MHD_YES;
}

/* Framing: counts what RFC 9112 6.1 and 6.3 care about. */
typedef struct framing {
    int content_length, transfer_encoding, host, bad_name, bad_te, cl_bad;
    const char *cl;
} framing_t;

static MHD_RESULT check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    framing_t *f = cls;
    (void)kind;
    if (!key || !*key || strpbrk(key, " \t\r\n"))
        f->bad_name = 1;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        f->content_length++;
        if (!value || !*value || strspn(value, "0123456789") != strlen(value))
            f->cl_bad = 1;
        f->cl = value;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->transfer_encoding++;
        if (!value || strcasecmp(value, "chunked") != 0)
            f->bad_te = 1;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST)) {
        f->host++;
    }
    return MHD_YES;
}

/* A framing problem as a message, or NULL. */
static const char *framing_error(vl_request_t *req, const char *version)
{
    framing_t f;
    memset(&f, 0, sizeof f);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, check_header, &f);
    if (f.bad_name)
        return "a header name holds whitespace (RFC 9112 5.1)";
    if (f.transfer_encoding && f.content_length)
        return "Content-Length and Transfer-Encoding together (RFC 9112 6.1)";
    if (f.transfer_encoding > 1 || f.bad_te)
        return "only Transfer-Encoding: chunked is supported (RFC 9112 6.1)";
    if (f.content_length > 1)
        return "several Content-Length headers (RFC 9112 6.3)";
    if (f.cl_bad)
        return "Content-Length is not a number (RFC 9112 6.3)";
    if (version && !strcmp(version, MHD_HTTP_VERSION_1_1) && f.host != 1)
        return f.host ? "several Host headers (RFC 9112 3.2)"
                      : "HTTP/1.1 without Host (RFC 9112 3.2)";
    return NULL;
}

static int valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_' && s[n] != '.')
            return 0;
    return n > 0 && n <= 32;
}

/* Percent-decoding for the path and the query (in place): %XX, and '+' as
 * a space (form encoding; '+' never occurs in a valid FHIR path segment).
 * %00 cannot live in a C string: it decodes to U+001F instead, a control
 * character that the checks reject, so a NUL never shortens a value. */
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

/* The first callback of a request, with the raw request target (path and
 * query as sent): its length and encoded slashes are judged here, where
 * the query is still part of it. The request context starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    vl_request_t *req = calloc(1, sizeof *req);
    const char *q;
    size_t plen;
    (void)cls;
    (void)conn;
    if (!req)
        return NULL;
    req->raw_len = strlen(uri);
    q = strchr(uri, '?');
    plen = q ? (size_t)(q - uri) : req->raw_len;
    /* "%2F" in the path would become a '/' once decoded: a segment that
     * holds a slash is not a FHIR path (and a proxy might route it apart) */
    for (size_t i = 0; i + 2 < plen; i++)
        if (uri[i] == '%' && uri[i + 1] == '2' && (uri[i + 2] == 'F' || uri[i + 2] == 'f'))
            req->encoded_slash = 1;
    return req;
}

/* Sets up the request context on_uri() allocated (or a new one). */
static vl_request_t *request_new(vl_http_t *h, vl_request_t *req, struct MHD_Connection *conn,
                                 const char *url, const char *method, const char *version)
{
    const char *rid, *clen, *why;
    if (!req)
        req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->started = 1;
    req->http = h;
    req->conn = conn;
    req->start_us = vl_time_now_us();
    req->method = method;
    req->route = "unmatched";
    pthread_mutex_init(&req->mu, NULL);
    vl_params_init(&req->params);
    req->body = (vl_buf_t)VL_BUF_INIT(h->opts.max_body);
    rid = header(req, "X-Request-Id");
    if (rid && valid_request_id(rid))
        snprintf(req->request_id, sizeof req->request_id, "%s", rid);
    else
        vl_id_new(req->request_id);
    if ((why = framing_error(req, version)) != NULL) {
        req->reject = 400;
        req->reject_code = "structure";
        req->reject_msg = why;
        req->close = 1;
        return req;
    }
    if (req->raw_len > h->opts.max_path || strlen(url) > h->opts.max_path) {
        req->reject = 414;
        req->reject_code = "too-long";
        req->reject_msg = h->too_long_msg;
        return req;
    }
    req->path = strdup(url);
    if (!req->path) {
        pthread_mutex_destroy(&req->mu);
        free(req);
        return NULL;
    }
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, req);
    if (req->oom) {
        req->reject = 500;
        req->reject_code = "exception";
        req->reject_msg = "out of memory";
    } else if (req->encoded_slash) {
        req->reject = 400;
        req->reject_code = "invalid";
        req->reject_msg = "the path holds an encoded slash (%2F), which no FHIR path segment does";
    } else if (req->bad_text || !vl_text_valid(req->path)) {
        req->reject = 400;
        req->reject_code = "invalid";
        req->reject_msg = "the URL is not valid UTF-8 or holds a control character (such as %00)";
    }
    clen = header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    req->streamed = vl_fhir_streams_body(method, req->path);
    if (!req->reject && !req->streamed && clen && strtoull(clen, NULL, 10) > h->opts.max_body) {
        unsigned long long declared = strtoull(clen, NULL, 10);
        const char *expect = header(req, MHD_HTTP_HEADER_EXPECT);
        req->too_large = 1;
        /* a client that waits for 100-continue gets the 413 instead; one
         * that sends at once is read (and the body dropped) up to a bound */
        if ((expect && !strcasecmp(expect, "100-continue")) || declared > h->discard_max)
            req->answer_now = 1;
    }
    return req;
}

static void request_free(vl_request_t *req)
{
    /* on_notify() may still hold the mutex after its resume */
    pthread_mutex_lock(&req->mu);
    pthread_mutex_unlock(&req->mu);
    vl_fhir_response_free(&req->res);
    gzip_stream_free(req->gz);
    vl_fhir_exchange_free(req->x);
    vl_buf_free(&req->body);
    vl_params_free(&req->params);
    free(req->path);
    pthread_mutex_destroy(&req->mu);
    free(req);
}

static MHD_RESULT too_large(vl_request_t *req)
{
    char msg[120];
    snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes",
             req->http->opts.max_body);
    return send_transport_error(req, 413, "too-long", msg, 1);
}

/* The connection delivered a request's headers: the watchdog lets it be. */
static void headers_arrived(vl_http_t *h, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    vl_conn_t *c = ci ? ci->socket_context : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&h->conns_mu);
    c->waiting = 0;
    pthread_mutex_unlock(&h->conns_mu);
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
    vl_http_t *h = cls;
    vl_request_t *req = *con_cls;
    if (!req || !req->started) {
        headers_arrived(h, conn);
        *con_cls = NULL; /* request_new() frees it when it fails */
        req = request_new(h, req, conn, url, method, version);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        atomic_fetch_add(&h->requests_total, 1);
        atomic_fetch_add(&h->active, 1); /* from here on it counts for the drain */
        if (req->reject == 400 && req->close)
            return send_transport_error(req, 400, req->reject_code, req->reject_msg, 1);
        if (req->too_large && req->answer_now)
            return too_large(req);
        if (req->streamed && !req->reject)
            return dispatch(req); /* answers now (401, 415, ...) or takes the body */
        return MHD_YES;
    }
    if (req->paused) { /* resumed (or still suspended: then feed() keeps it so) */
        int resumed;
        pthread_mutex_lock(&req->mu);
        resumed = req->wstate == VL_WRITE_DONE;
        if (resumed) {
            req->paused = 0;
            req->wstate = VL_WRITE_IDLE;
        }
        pthread_mutex_unlock(&req->mu);
        if (resumed)
            atomic_fetch_sub(&h->suspended, 1);
    }
    if (req->streaming && *upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return feed(req, upload_data, n);
    }
    if (*upload_data_size) {
        if (req->too_large || req->reject) {
            /* dropped, up to the bound; past it the answer goes at once */
            req->discarded += *upload_data_size;
            if (req->discarded > h->discard_max && !req->status) {
                *upload_data_size = 0;
                if (req->reject)
                    return send_transport_error(req, req->reject, req->reject_code, req->reject_msg,
                                                1);
                return too_large(req);
            }
        } else if (vl_buf_append(&req->body, upload_data, *upload_data_size) < 0) {
            req->too_large = 1;
            req->discarded = req->body.len + *upload_data_size;
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
        if (state == VL_WRITE_PENDING) /* never dispatch (and submit) twice */
            return MHD_YES;
        if (state == VL_WRITE_DONE) {
            atomic_fetch_sub(&h->suspended, 1);
            vl_fhir_response_free(&req->res);
            vl_fhir_resume(req->x, &req->res);
            return send_response(req);
        }
    }
    if (req->status) /* already answered (400 framing, 413 at once) */
        return MHD_YES;
    if (req->streaming)
        return feed(req, NULL, 0);
    if (req->too_large)
        return too_large(req);
    if (req->reject)
        return send_transport_error(req, req->reject, req->reject_code, req->reject_msg,
                                    req->close);
    return dispatch(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    vl_http_t *h = cls;
    vl_request_t *req = *con_cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    vl_conn_t *c = ci ? ci->socket_context : NULL;
    if (c) { /* the next request's headers are due from now on */
        pthread_mutex_lock(&h->conns_mu);
        c->waiting = 1;
        c->since_ms = mono_ms();
        pthread_mutex_unlock(&h->conns_mu);
    }
    if (!req)
        return;
    if (!req->started) { /* the connection ended before the headers did */
        free(req);
        *con_cls = NULL;
        return;
    }
    {
        int64_t us = vl_time_now_us() - req->start_us;
        int status = req->status;
        if (status >= 100 && status < 600)
            atomic_fetch_add(&h->responses_by_class[status / 100], 1);
        vl_log(status >= 500 ? VL_LOG_ERROR : VL_LOG_INFO, "request",
               json_pack("{s:s,s:s,s:s,s:i,s:f,s:s}", "request_id", req->request_id, "method",
                         req->method, "route", req->route, "status", status, "duration_ms",
                         (double)us / 1000.0, "outcome",
                         toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "completed" : "aborted"));
    }
    atomic_fetch_sub(&h->active, 1);
    request_free(req);
    *con_cls = NULL;
}

/* Connections: tracked for the header deadline. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    vl_http_t *h = cls;
    vl_conn_t *c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = calloc(1, sizeof *c);
        if (!c || !ci) {
            free(c);
            *socket_context = NULL;
            return;
        }
        c->fd = ci->connect_fd;
        c->waiting = 1;
        c->since_ms = mono_ms();
        pthread_mutex_lock(&h->conns_mu);
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        pthread_mutex_unlock(&h->conns_mu);
        *socket_context = c;
        return;
    }
    /* closed: libmicrohttpd closes the socket only after this returns, so
     * the watchdog can never shut a descriptor that was reused */
    c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&h->conns_mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&h->conns_mu);
    free(c);
    *socket_context = NULL;
}

static void *watchdog_main(void *arg)
{
    vl_http_t *h = arg;
    int64_t limit = (int64_t)h->opts.header_timeout * 1000;
    pthread_mutex_lock(&h->conns_mu);
    while (!h->watchdog_stop) {
        struct timespec ts;
        int64_t now = mono_ms();
        for (vl_conn_t *c = h->conns; c; c = c->next) {
            if (c->waiting && !c->shut && now - c->since_ms > limit) {
                shutdown(c->fd, SHUT_RDWR); /* libmicrohttpd sees EOF and closes it */
                c->shut = 1;
                atomic_fetch_add(&h->header_timeouts, 1);
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&h->watchdog_cond, &h->conns_mu, &ts);
    }
    pthread_mutex_unlock(&h->conns_mu);
    return NULL;
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

/* The transport's counters for /metrics (called by the fhir layer). */
static void metrics(void *ctx, vl_buf_t *b)
{
    vl_http_t *h = ctx;
    vl_buf_printf(b,
                  "# HELP vitalog_http_requests_total HTTP requests received.\n"
                  "# TYPE vitalog_http_requests_total counter\n"
                  "vitalog_http_requests_total %llu\n"
                  "# HELP vitalog_http_responses_total HTTP responses by status class.\n"
                  "# TYPE vitalog_http_responses_total counter\n",
                  (unsigned long long)atomic_load(&h->requests_total));
    for (int c = 1; c <= 5; c++)
        vl_buf_printf(b, "vitalog_http_responses_total{class=\"%dxx\"} %llu\n", c,
                      (unsigned long long)atomic_load(&h->responses_by_class[c]));
    vl_buf_printf(b,
                  "# HELP vitalog_http_header_timeouts_total Connections closed for not "
                  "sending their headers in time.\n"
                  "# TYPE vitalog_http_header_timeouts_total counter\n"
                  "vitalog_http_header_timeouts_total %llu\n",
                  (unsigned long long)atomic_load(&h->header_timeouts));
    vl_buf_printf(b,
                  "# HELP vitalog_http_gzip_responses_total Responses sent with "
                  "Content-Encoding: gzip.\n"
                  "# TYPE vitalog_http_gzip_responses_total counter\n"
                  "vitalog_http_gzip_responses_total %llu\n"
                  "# HELP vitalog_http_gzip_in_bytes_total Bytes of the bodies compressed "
                  "(streams: once complete).\n"
                  "# TYPE vitalog_http_gzip_in_bytes_total counter\n"
                  "vitalog_http_gzip_in_bytes_total %llu\n"
                  "# HELP vitalog_http_gzip_out_bytes_total Bytes of those bodies as sent.\n"
                  "# TYPE vitalog_http_gzip_out_bytes_total counter\n"
                  "vitalog_http_gzip_out_bytes_total %llu\n",
                  (unsigned long long)atomic_load(&h->gzip_responses),
                  (unsigned long long)atomic_load(&h->gzip_in_bytes),
                  (unsigned long long)atomic_load(&h->gzip_out_bytes));
}

/* ------------------------------------------------------------------------
 * Start / stop
 * ---------------------------------------------------------------------- */

int vl_http_listen(const char *host, uint16_t port, vl_error_t *err)
{
    struct sockaddr_in addr;
    int fd, one = 1;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (!host || inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return vl_error_set(err, 500, "exception", NULL,
                            "listen address '%s' is not an IPv4 address", host ? host : "");
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vl_error_set(err, 500, "exception", NULL, "socket: %s", strerror(errno));
    /* SO_REUSEADDR only: a restart may bind over TIME_WAIT sockets, but a
     * port another server listens on stays an error (never SO_REUSEPORT) */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        return vl_error_set(
            err, 500, "exception", NULL, "cannot listen on %s:%u: %s", host, (unsigned)port,
            e == EADDRINUSE ? "the address is already in use (another server?)" : strerror(e));
    }
    return fd;
}

int vl_http_start(const vl_http_options_t *opts, const vl_fhir_options_t *fopts, vl_http_t **out,
                  vl_error_t *err)
{
    vl_http_t *h = calloc(1, sizeof *h);
    vl_fhir_options_t fo = *fopts;
    const union MHD_DaemonInfo *info;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int fd = opts->listen_fd;
    struct MHD_OptionItem tls[3] = {
        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    if (!h) {
        if (fd >= 0)
            close(fd);
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    }
    h->opts = *opts;
    if (!h->opts.host)
        h->opts.host = "127.0.0.1";
    if (!h->opts.threads)
        h->opts.threads = ncpu > 0 ? (unsigned)ncpu : 2;
    if (!h->opts.max_body)
        h->opts.max_body = VL_HTTP_DEFAULT_MAX_BODY;
    if (!h->opts.conn_timeout)
        h->opts.conn_timeout = VL_HTTP_DEFAULT_TIMEOUT;
    if (!h->opts.header_timeout)
        h->opts.header_timeout = VL_HTTP_DEFAULT_HEADER_TIMEOUT;
    if (!h->opts.max_conns)
        h->opts.max_conns = VL_HTTP_DEFAULT_MAX_CONNS;
    if (!h->opts.max_conns_per_ip)
        h->opts.max_conns_per_ip = h->opts.max_conns / 4 ? h->opts.max_conns / 4 : 1;
    if (!h->opts.max_path)
        h->opts.max_path = VL_HTTP_DEFAULT_MAX_PATH;
    if (!h->opts.compress_min)
        h->opts.compress_min = VL_HTTP_DEFAULT_COMPRESS_MIN;
    snprintf(h->too_long_msg, sizeof h->too_long_msg,
             "the request target (path and query) is longer than %zu bytes; send long "
             "searches as POST [type]/_search",
             h->opts.max_path);
    h->discard_max =
        4 * h->opts.max_body > VL_HTTP_DISCARD_MIN ? 4 * h->opts.max_body : VL_HTTP_DISCARD_MIN;
    if (opts->base_url) {
        snprintf(h->base_url, sizeof h->base_url, "%s", opts->base_url);
        size_t n = strlen(h->base_url);
        while (n && h->base_url[n - 1] == '/')
            h->base_url[--n] = '\0';
    }
    pthread_mutex_init(&h->conns_mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&h->watchdog_cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    fo.metrics = metrics;
    fo.metrics_ctx = h;
    h->fhir = vl_fhir_new(&fo);
    if (!h->fhir)
        goto fail_oom;
    if (fd < 0 && (fd = vl_http_listen(h->opts.host, h->opts.port, err)) < 0)
        goto fail;
    if ((opts->tls_cert_pem != NULL) != (opts->tls_key_pem != NULL)) {
        close(fd);
        vl_error_set(err, 500, "exception", NULL, "TLS needs both a certificate and a key");
        goto fail;
    }
    if (opts->tls_cert_pem) {
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)opts->tls_cert_pem};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)opts->tls_key_pem};
    }
    if (opts->tls_cert_pem && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        close(fd);
        vl_error_set(err, 500, "exception", NULL, "this libmicrohttpd was built without TLS");
        goto fail;
    }
    h->daemon = MHD_start_daemon(
        /* poll(), not epoll: libmicrohttpd 0.9.75 can abort in
         * MHD_quiesce_daemon() with a thread pool on epoll ("Failed to
         * remove listen FD from epoll set") when a worker races it; poll
         * has no such path and costs little at our connection counts */
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG | (opts->tls_cert_pem ? MHD_USE_TLS : 0),
        0, NULL, NULL, on_request, h,
        /* the certificate and key, when TLS is on (an empty list otherwise) */
        MHD_OPTION_ARRAY, tls,
        /* first, so that every diagnostic goes through it */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, h->opts.threads, MHD_OPTION_CONNECTION_TIMEOUT,
        h->opts.conn_timeout, MHD_OPTION_CONNECTION_LIMIT, h->opts.max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->opts.max_conns_per_ip, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_END);
    if (!h->daemon) {
        close(fd);
        vl_error_set(err, 500, "exception", NULL, "cannot serve on %s:%u", h->opts.host,
                     (unsigned)h->opts.port);
        goto fail;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : opts->port;
    if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0) {
        vl_error_set(err, 500, "exception", NULL, "cannot start the watchdog thread");
        MHD_stop_daemon(h->daemon);
        goto fail;
    }
    *out = h;
    return 0;
fail_oom:
    if (fd >= 0)
        close(fd);
    vl_error_set(err, 500, "exception", NULL, "out of memory");
fail:
    vl_fhir_free(h->fhir);
    pthread_mutex_destroy(&h->conns_mu);
    pthread_cond_destroy(&h->watchdog_cond);
    free(h);
    return -1;
}

uint16_t vl_http_port(const vl_http_t *h)
{
    return h->port;
}

void vl_http_stop(vl_http_t *h, unsigned drain_ms)
{
    MHD_socket fd;
    int64_t deadline;
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    /* requests in flight, including uploads, get the drain time */
    deadline = mono_ms() + drain_ms;
    while (atomic_load(&h->active) > 0 && mono_ms() < deadline)
        sleep_ms(10);
    /* From here on requests are refused (dispatch), and a write the store
     * accepted always completes (and resumes its connection) before the
     * daemon goes: stopping earlier would free requests the writer still
     * points to, and libmicrohttpd aborts on a connection still suspended. */
    atomic_store(&h->closing, 1);
    while (atomic_load(&h->pending_writes) > 0)
        sleep_ms(1);
    /* Every suspended connection has been resumed; a resume takes effect
     * when the connection's pool thread gets to it: give resumed requests
     * time to be answered (MHD_stop_daemon() closes the rest). */
    deadline = mono_ms() + 2000;
    while (atomic_load(&h->suspended) > 0 && mono_ms() < deadline)
        sleep_ms(1);
    pthread_mutex_lock(&h->conns_mu);
    h->watchdog_stop = 1;
    pthread_cond_signal(&h->watchdog_cond);
    pthread_mutex_unlock(&h->conns_mu);
    pthread_join(h->watchdog, NULL);
    MHD_stop_daemon(h->daemon);
    vl_fhir_free(h->fhir);
    pthread_mutex_destroy(&h->conns_mu);
    pthread_cond_destroy(&h->watchdog_cond);
    free(h);
}
