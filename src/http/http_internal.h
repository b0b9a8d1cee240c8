/*
 * Private to the http module: the request context shared by server.c (the
 * libmicrohttpd glue) and rest.c (the FHIR interactions).
 */
#ifndef VL_HTTP_INTERNAL_H
#define VL_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "vitalog/auth.h"
#include "vitalog/fhir.h"
#include "vitalog/http.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

struct vl_http {
    struct MHD_Daemon *daemon;
    vl_store_t *store;
    vl_http_options_t opts;
    char base_url[256];
    uint16_t port;
    atomic_long active;         /* requests between first call and completion */
    atomic_long pending_writes; /* writes submitted whose completion has not run */
    atomic_int stopping;        /* set by vl_http_stop(): no new writes */
    atomic_ullong requests_total;
    atomic_ullong responses_by_class[6]; /* 1xx..5xx */
};

/* A growable byte buffer with a hard cap. On any failure it frees itself and
 * stays failed, so callers check once at the end (vl_buf_take). */
typedef struct vl_buf {
    char *data;
    size_t len, cap, max;
    int failed;
} vl_buf_t;

void vl_buf_append(vl_buf_t *b, const char *s, size_t n);
void vl_buf_puts(vl_buf_t *b, const char *s);
/** Appends `s` as a JSON string literal (quoted, escaped). */
void vl_buf_json_string(vl_buf_t *b, const char *s);
/** Returns the NUL-terminated data (caller frees) or NULL if anything failed. */
char *vl_buf_take(vl_buf_t *b, size_t *len);

typedef enum { VL_WRITE_IDLE, VL_WRITE_PENDING, VL_WRITE_DONE } vl_write_state_t;

/* A response about to be queued. `body` is malloc'd or NULL. */
typedef struct vl_response {
    int status;
    char *body;
    size_t body_len;
    char etag[32];
    char location[512];
    char last_modified[40];
    const char *allow; /* for 405 */
    char ledger_index[24];  /* X-Ledger-Index receipt, or "" */
    char ledger_hash[65];   /* X-Ledger-Entry-Hash receipt (hex) */
} vl_response_t;

typedef struct vl_request {
    vl_http_t *http;
    struct MHD_Connection *conn;
    char request_id[33];
    int64_t start_us;
    const char *method;
    char path[1024]; /* decoded path without the query */
    const char *route; /* route template for logs, e.g. "/fhir/{type}/{id}" */
    vl_params_t params; /* query string parameters, in order */
    vl_buf_t body;
    int too_large;
    int bad_query;  /* a query parameter holds a control character */
    int dispatched; /* routed: counted in http->active until completed */
    int json_as_plain; /* answer application/json instead of application/fhir+json */
    vl_principal_t who;
    /* asynchronous write state */
    pthread_mutex_t mu;
    vl_write_state_t wstate;
    vl_store_write_t write;
    json_t *resource;    /* the resource being written (owned) */
    vl_search_t if_none_exist; /* conditional create query (lives until completion) */
    int has_if_none_exist;
    int prefer_return;   /* 0 representation, 1 minimal, 2 OperationOutcome */
    int status;          /* final status, for logs */
} vl_request_t;

/* server.c */
/** Header value or NULL (borrowed from libmicrohttpd). */
const char *vl_req_header(vl_request_t *req, const char *name);
/** Sends an error as an OperationOutcome. */
MHD_RESULT vl_send_error(vl_request_t *req, const vl_error_t *err);
MHD_RESULT vl_send_errorf(vl_request_t *req, int status, const char *code, const char *fmt, ...)
    VL_PRINTF(4, 5);
/** Sends a response; takes ownership of res->body. */
MHD_RESULT vl_send(vl_request_t *req, vl_response_t *res);
/** Serializes `doc` (numbers as their text) and drops the reference. */
char *vl_dump_release(json_t *doc, size_t *len);
/** Sends `body` (malloc'd, taken; NULL answers 500) with a Content-Type. */
MHD_RESULT vl_send_text(vl_request_t *req, int status, const char *ctype, char *body, size_t len);
/** Sends a jansson document (numbers as their text); takes the reference. */
MHD_RESULT vl_send_json(vl_request_t *req, int status, json_t *doc);
/** Suspends the connection and submits req->write to the store; the
 *  handler is called again once it completed. */
MHD_RESULT vl_submit_write(vl_request_t *req);
/** The public base URL ("http://host:port"), no trailing slash. */
void vl_base_url(vl_request_t *req, char *out, size_t n);

/* ledger.c */
/** Handles /ledger/... */
MHD_RESULT vl_ledger_dispatch(vl_request_t *req);
/** GET /fhir/{type}/{id}/_history/{vid}/$ledger */
MHD_RESULT vl_ledger_record(vl_request_t *req, const char *type, const char *id, int64_t vid);

/* rest.c */
/** Handles /fhir/... once the body is complete (or the write completed). */
MHD_RESULT vl_rest_dispatch(vl_request_t *req);
/** Builds the response of a completed write. */
MHD_RESULT vl_rest_write_done(vl_request_t *req);

#endif
