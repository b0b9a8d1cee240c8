/*
 * Private to the http module: the server and request structs.
 */
#ifndef VL_HTTP_INTERNAL_H
#define VL_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "vitalog/http.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

/* A connection, tracked for the header deadline (guarded by conns_mu). */
typedef struct vl_conn {
    int fd;
    int waiting;      /* no complete request headers since since_ms */
    int shut;         /* the watchdog shut it */
    int64_t since_ms; /* CLOCK_MONOTONIC */
    struct vl_conn *prev, *next;
} vl_conn_t;

struct vl_http {
    struct MHD_Daemon *daemon;
    vl_fhir_t *fhir;
    vl_http_options_t opts;
    char base_url[256];
    uint16_t port;
    size_t discard_max;         /* bytes of an oversized body read before answering */
    char too_long_msg[160];     /* the 414's diagnostics */
    atomic_long active;         /* requests between first callback and completion */
    atomic_long pending_writes; /* requests inside vl_fhir_handle() or waiting for the store */
    atomic_long suspended;      /* connections suspended and not yet answered */
    atomic_int stopping;        /* set by vl_http_stop() */
    atomic_int closing;         /* the drain is over: requests are refused (see dispatch) */
    atomic_ullong requests_total;
    atomic_ullong responses_by_class[6]; /* 1xx..5xx */
    atomic_ullong header_timeouts;
    atomic_ullong gzip_responses;                /* answers sent with Content-Encoding: gzip */
    atomic_ullong gzip_in_bytes, gzip_out_bytes; /* their bodies before and after */
    /* the header-deadline watchdog */
    pthread_mutex_t conns_mu;
    pthread_cond_t watchdog_cond;
    vl_conn_t *conns;
    pthread_t watchdog;
    int watchdog_stop;
};

typedef enum { VL_WRITE_IDLE, VL_WRITE_PENDING, VL_WRITE_DONE } vl_write_state_t;

typedef struct vl_request {
    int started;       /* set up by the first on_request() (on_uri() allocated it) */
    size_t raw_len;    /* bytes of the request target as sent, query included */
    int encoded_slash; /* the raw path holds %2F */
    vl_http_t *http;
    struct MHD_Connection *conn;
    char request_id[33];
    int64_t start_us;
    const char *method;
    char *path;         /* decoded path without the query (malloc'd) */
    const char *route;  /* route template for logs */
    vl_params_t params; /* query string parameters, in order */
    vl_buf_t body;
    int too_large;    /* the body is over max_body: answer 413 */
    int answer_now;   /* ... at once, without reading the body */
    size_t discarded; /* body bytes read and dropped */
    int reject;       /* a status to answer without dispatching (400, 414) */
    const char *reject_code, *reject_msg;
    int close; /* answer with Connection: close */
    int bad_text, oom;
    int json_as_plain; /* answer application/json instead of application/fhir+json */
    char base[300];
    /* the interaction layer */
    vl_fhir_request_t freq;
    vl_fhir_response_t res;
    vl_fhir_exchange_t *x;
    /* an answer waiting for the store */
    pthread_mutex_t mu;
    vl_write_state_t wstate;
    int status; /* final status, for logs */
    /* a streamed body (vl_fhir_streams_body: $ingest) */
    int streamed;  /* its route takes one: no max_body, dispatched at the headers */
    int streaming; /* the layer takes the body (vl_fhir_handle returned 2) */
    int paused;    /* suspended until the layer can take more */
    /* a streamed answer compressed on the fly (server.c, COMPRESSION), or NULL */
    struct vl_gzip *gz;
} vl_request_t;

#endif
