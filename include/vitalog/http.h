/*
 * vitalog — http: the transport, on libmicrohttpd. The only module that
 * knows libmicrohttpd.
 *
 * It parses requests and enforces the transport's limits (framing, sizes,
 * deadlines, connections), negotiates the response format, hands each
 * request to the fhir interaction layer (vl_fhir_handle) and sends what it
 * answers. No SQL and no FHIR rules here.
 *
 * Responses are compressed with gzip when the client asks for it
 * (Accept-Encoding) and the body is large enough (compress_min); see
 * "COMPRESSION" in src/http/server.c.
 *
 * Threads: a pool of libmicrohttpd threads (poll). A request whose answer
 * waits for the store's writer suspends its connection until the commit,
 * so a pool thread never blocks on an fsync and many writes share one
 * commit. A watchdog thread closes connections that do not deliver their
 * request headers in time (slowloris).
 */
#ifndef VITALOG_HTTP_H
#define VITALOG_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "vitalog/fhir.h"

typedef struct vl_http vl_http_t;

typedef struct vl_http_options {
    const char *host;          /* listen address, e.g. "127.0.0.1" */
    uint16_t port;             /* 0: an ephemeral port */
    int listen_fd;             /* a socket from vl_http_listen(), or -1: bind host:port */
    const char *base_url;      /* public base, e.g. "https://fhir.example.org"; NULL: from Host */
    unsigned threads;          /* pool size; 0: number of CPUs */
    size_t max_body;           /* bytes; 0: 1 MiB */
    unsigned conn_timeout;     /* seconds of inactivity; 0: 30 */
    unsigned header_timeout;   /* seconds to deliver a request's headers; 0: 15 */
    unsigned max_conns;        /* 0: 1024 */
    unsigned max_conns_per_ip; /* 0: a quarter of max_conns */
    size_t max_path;           /* bytes of a request target; 0: 8192 (longer: 414) */
    /* HTTPS through libmicrohttpd's TLS (GnuTLS): PEM texts of the
     * certificate (chain) and its private key; both NULL: plain HTTP */
    const char *tls_cert_pem, *tls_key_pem;
    /* CORS: the origins ("https://app.example.org") browsers may call from;
     * none: no CORS headers at all */
    const char *const *cors_origins;
    size_t n_cors_origins;
    /* gzip (Content-Encoding) for clients whose Accept-Encoding allows
     * it: bodies of at least this many bytes, and every streamed body;
     * 0: VL_HTTP_DEFAULT_COMPRESS_MIN; VL_HTTP_COMPRESS_OFF: never */
    size_t compress_min;
} vl_http_options_t;

#define VL_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)
#define VL_HTTP_DEFAULT_TIMEOUT 30u
#define VL_HTTP_DEFAULT_HEADER_TIMEOUT 15u
#define VL_HTTP_DEFAULT_MAX_CONNS 1024u
#define VL_HTTP_DEFAULT_MAX_PATH 8192u
/** Smaller bodies are sent as they are: gzip's header and trailer (18
 *  bytes) and the time it takes outweigh what it saves on them. */
#define VL_HTTP_DEFAULT_COMPRESS_MIN 1024u
/** compress_min that turns compression off (`serve --compress-min 0`). */
#define VL_HTTP_COMPRESS_OFF SIZE_MAX
/** zlib's compression level for gzip answers (its default; measured in
 *  docs/performance.md, bench/gzip_page.c). */
#define VL_HTTP_GZIP_LEVEL 6
/** A body over max_body is read and discarded up to this many bytes (or 4x
 *  max_body, whichever is larger) so the client receives its 413; past
 *  that the 413 is sent at once and the connection closed. */
#define VL_HTTP_DISCARD_MIN (16u * 1024u * 1024u)

/**
 * Binds and listens on an IPv4 host:port (SO_REUSEADDR, never
 * SO_REUSEPORT: a port in use is an error, not a second server). Returns
 * the socket, or -1 with the reason in err. Lets `serve` check --listen
 * before it touches the data directory.
 */
int vl_http_listen(const char *host, uint16_t port, vl_error_t *err);

/** Starts serving. The fhir options' store is borrowed and must outlive the
 *  server; `fopts.metrics` is set by the transport. Takes opts->listen_fd. */
int vl_http_start(const vl_http_options_t *opts, const vl_fhir_options_t *fopts, vl_http_t **out,
                  vl_error_t *err) VL_WARN_UNUSED;
/** The port actually bound (useful with port 0). */
uint16_t vl_http_port(const vl_http_t *http);
/**
 * Stops accepting, lets requests in flight (including those still sending
 * their body) finish for up to `drain_ms`, waits for every write the store
 * accepted, then closes every connection and frees the server.
 */
void vl_http_stop(vl_http_t *http, unsigned drain_ms);

#endif
