/*
 * vitalog — http: the REST front end on libmicrohttpd.
 *
 * Routing (from the fhir module's type table), body limits, content
 * negotiation, OperationOutcome errors, request logs. No SQL here: data
 * goes through the store's interface.
 *
 * Threads: a pool of libmicrohttpd threads (poll). Reads run on the pool
 * thread. Writes are handed to the store's writer and the connection is
 * suspended until the write has committed, so a pool thread never blocks
 * on an fsync and many writes share one commit.
 */
#ifndef VITALOG_HTTP_H
#define VITALOG_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "vitalog/ledger.h"
#include "vitalog/store.h"

typedef struct vl_http vl_http_t;

typedef struct vl_http_options {
    const char *host;       /* listen address, e.g. "127.0.0.1" */
    uint16_t port;          /* 0: an ephemeral port */
    const char *base_url;   /* public base, e.g. "https://fhir.example.org"; NULL: from Host */
    unsigned threads;       /* pool size; 0: number of CPUs */
    size_t max_body;        /* bytes; 0: 1 MiB */
    size_t max_depth;       /* JSON nesting; 0: 64 */
    unsigned conn_timeout;  /* seconds of inactivity; 0: 30 */
    unsigned max_conns;     /* 0: 1024 */
    const vl_ledger_key_t *ledger_key; /* published at /ledger/key (borrowed); NULL: 404 */
} vl_http_options_t;

#define VL_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)
#define VL_HTTP_DEFAULT_MAX_DEPTH 64u
#define VL_HTTP_DEFAULT_TIMEOUT 30u
#define VL_HTTP_DEFAULT_MAX_CONNS 1024u

/** Starts listening. The store is borrowed and must outlive the server. */
int vl_http_start(const vl_http_options_t *opts, vl_store_t *store, vl_http_t **out,
                  vl_error_t *err) VL_WARN_UNUSED;
/** The port actually bound (useful with port 0). */
uint16_t vl_http_port(const vl_http_t *http);
/** Stops accepting, waits up to `drain_ms` for in-flight requests to
 *  finish, then closes every connection and frees the server. */
void vl_http_stop(vl_http_t *http, unsigned drain_ms);

#endif
