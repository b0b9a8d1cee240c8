/*
 * vitalog — fhir: FHIR R4 (4.0.1) knowledge. Resource types and their
 * interactions, validation, search parameters (definitions, index
 * extraction, query parsing), Bundles and the CapabilityStatement.
 *
 * The tables here are the single source of truth: the http module routes
 * from them and the CapabilityStatement is generated from them, so the
 * server never claims more than it does.
 *
 * Resources are jansson trees from vl_json_parse(): numbers are tagged
 * strings (see util.h).
 */
#ifndef VITALOG_FHIR_H
#define VITALOG_FHIR_H

#include <sys/types.h>

#include "vitalog/auth.h"
#include "vitalog/ledger.h"
#include "vitalog/store.h"
#include "vitalog/util.h"

/* Interactions a type supports (bit set). */
enum {
    VL_INT_READ = 1 << 0,
    VL_INT_VREAD = 1 << 1,
    VL_INT_UPDATE = 1 << 2,
    VL_INT_DELETE = 1 << 3,
    VL_INT_HISTORY_INSTANCE = 1 << 4,
    VL_INT_HISTORY_TYPE = 1 << 5,
    VL_INT_CREATE = 1 << 6,
    VL_INT_SEARCH = 1 << 7,
};

/** A search parameter: its name, kind and the element paths it indexes.
 *  Paths are dot-separated element names from the resource root; a final
 *  element may be a CodeableConcept, Coding, Identifier, code, boolean,
 *  string, HumanName, Address, Reference, Quantity, date/dateTime/instant or
 *  Period, and the extractor handles each by its JSON shape. The tables are
 *  generated from the R4 SearchParameter definitions
 *  (src/fhir/search_params.c, by scripts/gen-search-params.py). */
typedef struct vl_search_param {
    const char *name;
    vl_index_kind_t kind;
    const char *paths[6];    /* NULL-terminated */
    const char *target;      /* references: only "Type/..." of this type, or NULL */
    const char *targets[13]; /* references without `target`: the R4 target types
                                (NULL-terminated; none: any type) */
    const char *description;
    const char *url;          /* R4 canonical URL of the SearchParameter */
    const char *expression;   /* its R4 FHIRPath expression, the part for this type */
    const char *parts[2];     /* composites: the token's and the quantity's paths inside
                                 each element of `paths` ("" is the resource itself) */
    int sortable;             /* _sort accepts it: index rows carry sort keys */
    const char *text_name;    /* tokens: the rows of :text ("code:text") */
    const char *rows_of;      /* a reference parameter that is this one's references to
                                 `target` (patient: subject.where(resolve() is Patient)):
                                 it has no rows of its own, a search reads those */
    const char *union_of[2];  /* its expression is the union of these two parameters':
                                 it has no rows of its own, a search reads theirs */
    const char *of_type_name; /* identifier tokens: the rows of :of-type */
} vl_search_param_t;

typedef struct vl_fhir_type {
    const char *name;
    unsigned interactions;
    const vl_search_param_t *params; /* terminated by {NULL} */
    const char *profile;             /* base StructureDefinition URL */
} vl_fhir_type_t;

/** The served types, terminated by {NULL}. */
extern const vl_fhir_type_t vl_fhir_types[];
/** Looks a type up by exact name; NULL if vitalog does not serve it. */
const vl_fhir_type_t *vl_fhir_type_find(const char *name);
/** Looks a search parameter of a type up; NULL if unknown. */
const vl_search_param_t *vl_fhir_param_find(const vl_fhir_type_t *t, const char *name);
/** Whether reference parameter `sp` may refer to `type`: its one target
 *  (where(resolve() is T)), else one of its R4 target types (a parameter
 *  without a list refers to any type). */
int vl_fhir_param_targets(const vl_search_param_t *sp, const char *type);
/** True if `name` is a resource type defined by FHIR R4 (served or not). */
int vl_fhir_is_r4_type(const char *name);
/** The sorted list of every R4 resource type name; *n receives its length. */
const char *const *vl_fhir_r4_type_list(size_t *n);

/* ------------------------------------------------------------------------
 * Validation
 * ---------------------------------------------------------------------- */

/**
 * Validates a resource of a served type. Observation gets the full R4
 * rules (element names, cardinalities, choice types, primitive formats,
 * required elements, reference syntax, obs-6/obs-7) and the vital-signs
 * profile when it claims the profile or the vital-signs category; other
 * types get structural checks. Every issue names its path in
 * issue.expression. Base-spec violations are 400, profile violations 422.
 * Returns 0 if valid, -1 with all issues in `err`.
 */
int vl_fhir_validate(const vl_fhir_type_t *type, const json_t *res, vl_error_t *err) VL_WARN_UNUSED;

/** True if `s` is a valid FHIR id (1-64 of [A-Za-z0-9.-]), except "." and
 *  ".." (dot segments that URL normalization would remove). */
int vl_fhir_id_valid(const char *s);

/* ------------------------------------------------------------------------
 * Search
 * ---------------------------------------------------------------------- */

/** Extracts the index rows of every search parameter of `type` from `res`
 *  into `ix` (appended), and the patient compartments the resource is in
 *  through its references (R4 CompartmentDefinition patient; a Patient's
 *  own compartment is added by vl_fhir_compartment_self() once its id is
 *  known). */
int vl_fhir_index(const vl_fhir_type_t *type, const json_t *res, vl_index_t *ix, vl_error_t *err);
/** The same, with this server's FHIR base ("https://h/fhir", or NULL): an
 *  absolute reference under it is indexed as the relative "Type/id". */
int vl_fhir_index_at(const vl_fhir_type_t *type, const json_t *res, const char *fhir_base,
                     vl_index_t *ix, vl_error_t *err);
/** Appends to `ix` the reference rows of one reference parameter of
 *  `type` in `res` ("Type/id" for this server's references, absolute URLs
 *  as given; contained "#x" references have none), the way vl_fhir_index
 *  indexes them (a parameter with rows_of reads those rows' paths). For
 *  _include. 0, or -1 (not a reference parameter, or out of memory). */
int vl_fhir_param_references(const vl_fhir_type_t *type, const char *param, const json_t *res,
                             const char *fhir_base, vl_index_t *ix);
/** `ref` without this server's FHIR base `base` ("<base>/Type/id" ->
 *  "Type/id"); `ref` itself when it is not under it (or base is NULL). */
const char *vl_fhir_local_reference(const char *ref, const char *base);
/** vl_store_facets_fn: the index (with compartments and consent facets) of
 *  a stored body of `type`; for vl_store_backfill(). `ctx` is the FHIR
 *  base (const char *) or NULL. */
int vl_fhir_facets_of(void *ctx, const char *type, const char *body, size_t len, vl_index_t *ix);
/** Adds the compartments of `res` only (called by vl_fhir_index); with
 *  this server's FHIR base `base` (or NULL), an absolute reference under it
 *  counts as the relative one. */
int vl_fhir_compartments(const vl_fhir_type_t *type, const json_t *res, vl_index_t *ix);
int vl_fhir_compartments_at(const vl_fhir_type_t *type, const json_t *res, const char *base,
                            vl_index_t *ix);
/** Whether resources of `type` are in patient compartments (Observation,
 *  Device, Patient, Consent, AuditEvent) rather than shared data. */
int vl_fhir_compartment_member_type(const vl_fhir_type_t *type);
/** The compartment of a member-type resource that names none of this
 *  server's patients: no scope names it (default deny). */
#define VL_NO_PATIENT ""
/** A Patient is in its own compartment: adds `id` when `type` is Patient. */
int vl_fhir_compartment_self(const vl_fhir_type_t *type, const char *id, vl_index_t *ix);

/** A decoded query-string parameter. */
typedef struct vl_param {
    char *name;  /* with modifier, e.g. "code:text" */
    char *value; /* percent-decoded */
} vl_param_t;

typedef struct vl_params {
    vl_param_t *items;
    size_t n, cap;
} vl_params_t;

void vl_params_init(vl_params_t *p);
void vl_params_free(vl_params_t *p);
int vl_params_add(vl_params_t *p, const char *name, const char *value);
/** Parses an application/x-www-form-urlencoded string (a query string or a
 *  POST _search body) and appends its parameters. -1 when out of memory or
 *  when a decoded name or value is not UTF-8 text (vl_text_valid). */
int vl_params_parse_form(vl_params_t *p, const char *form, size_t len);
/** First value of `name`, or NULL (borrowed). */
const char *vl_params_get(const vl_params_t *p, const char *name);

/** A parsed search: the store query plus what the Bundle links need. The
 *  query's strings point into the search; free with vl_search_free(). */
/** An _include or _revinclude: "source:param[:target]" (R4 search.html
 *  #include). _include adds the resources the source's `param` refers to;
 *  _revinclude the resources of type `source` that refer to a match by
 *  `param`. `iterate` (:iterate, or R3's :recurse) applies it to included
 *  resources as well (one level). `param` is the parameter named; `rows`
 *  the parameter whose index rows hold its references (patient -> subject). */
typedef struct vl_search_include {
    const char *source;
    const char *param;
    const char *rows;
    const char *target; /* NULL: any type */
    int rev;
    int iterate;
} vl_search_include_t;

#define VL_SEARCH_INCLUDE_MAX 8

typedef struct vl_search {
    vl_query_t query;
    char *self_query;   /* canonical query string of the parameters used */
    const char *cursor; /* _cursor: the opaque page cursor (not in self_query), or NULL */
    size_t n_includes;
    vl_search_include_t includes[VL_SEARCH_INCLUDE_MAX];
    int total_mode; /* VL_TOTAL_*: none, accurate (and _summary=count), bounded
                       (the default, and _total=estimate: exact up to
                       VL_TOTAL_BOUND matches, else no total) */
    /* storage for query strings/values */
    void *_mem;
} vl_search_t;

#define VL_SEARCH_COUNT_DEFAULT 50
#define VL_SEARCH_COUNT_MAX 1000

/**
 * Turns search parameters into a store query: known parameters of the
 * type, _id, _lastUpdated, _count, _offset, _sort, _total, _format, _summary
 * and _elements are understood; an unknown parameter or bad value is a
 * 400 (the server is strict: Prefer: handling=lenient makes it skip
 * unknown parameters instead, when `lenient` is set).
 */
int vl_fhir_search_parse(const vl_fhir_type_t *type, const vl_params_t *params, int lenient,
                         vl_search_t *out, vl_error_t *err) VL_WARN_UNUSED;
/** The same for a request to this server's FHIR base `fhir_base`
 *  ("https://h/fhir", or NULL): a reference value under it is searched as
 *  the relative "Type/id". */
int vl_fhir_search_parse_at(const vl_fhir_type_t *type, const vl_params_t *params, int lenient,
                            const char *fhir_base, vl_search_t *out,
                            vl_error_t *err) VL_WARN_UNUSED;
void vl_search_free(vl_search_t *s);

/* ------------------------------------------------------------------------
 * Bundles and metadata
 * ---------------------------------------------------------------------- */

struct vl_fhir_options;
/** The CapabilityStatement generated from vl_fhir_types and the
 *  interaction table (new reference); `opts` (may be NULL) says what
 *  rest.security holds (CORS, SMART). */
json_t *vl_fhir_capability(const char *base_url, const struct vl_fhir_options *opts);

/* ------------------------------------------------------------------------
 * The interaction layer (src/fhir/interaction.c and friends)
 *
 * Plain data in, plain data out: the transport (src/http) turns a request
 * into a vl_fhir_request_t, calls vl_fhir_handle(), and sends the
 * vl_fhir_response_t. One table of interactions and operations
 * (interaction.c) drives routing, authorization and the
 * CapabilityStatement. For every request the layer, in this order:
 * routes it (404, 405 with Allow, unknown operation), identifies the
 * caller (401), parses a FHIR body (415, 400), asks the policy once with a
 * full description of what is asked (403), and runs the row's handler with
 * the access scope the policy gave. Writes go to the store as units and
 * answer asynchronously.
 * ---------------------------------------------------------------------- */

typedef struct vl_fhir vl_fhir_t;
typedef struct vl_fhir_exchange vl_fhir_exchange_t;

typedef struct vl_fhir_options {
    vl_store_t *store;         /* borrowed; must outlive the layer */
    const vl_policy_t *policy; /* required (vl_fhir_new fails without one) */
    vl_auth_t *auth;           /* the token API's tokens (NULL: that API answers 404) */
    int cors;                  /* the transport answers CORS for some origins (metadata says so) */
    /* JWTs of an identity provider are accepted (auth.h): its issuer, and
     * optionally its endpoints, for /.well-known/smart-configuration and
     * the CapabilityStatement (NULL: no SMART) */
    const char *smart_issuer, *smart_authorize, *smart_token;
    size_t max_depth; /* JSON nesting of bodies; 0: 64 */
    size_t
        max_bundle_entries; /* entries of a batch or transaction; 0: VL_FHIR_DEFAULT_MAX_ENTRIES */
    size_t max_page_bytes;  /* resource bytes in one search or history page; 0:
                               VL_FHIR_DEFAULT_PAGE_BYTES */
    const vl_ledger_key_t *ledger_key; /* published at /ledger/key (borrowed); NULL: 404 */
    const unsigned char *ingest_key;   /* 32 bytes keying $ingest identifiers (borrowed;
                                          DIR/ingest.key); NULL: $ingest answers 503 */
    const char *ledger_first_vkey;     /* the log's first verifier key (before any rotation);
                                          NULL: the current key */
    /* /metrics: the transport appends its own counters (may be NULL) */
    void (*metrics)(void *ctx, vl_buf_t *out);
    void *metrics_ctx;
} vl_fhir_options_t;

#define VL_FHIR_DEFAULT_MAX_ENTRIES 1000u
#define VL_FHIR_DEFAULT_PAGE_BYTES (4u * 1024u * 1024u)

/** A request. Every string is borrowed and must stay valid until the
 *  exchange is freed. Header fields are NULL when the header is absent. */
typedef struct vl_fhir_request {
    const char *method;        /* GET, HEAD, POST, PUT, DELETE, PATCH, ... */
    const char *path;          /* percent-decoded path without the query ("/fhir/Patient/1") */
    const vl_params_t *params; /* query parameters, in order */
    const char *base_url;      /* public base ("https://h:8443"), no trailing slash */
    const char *authorization;
    const char *content_type;
    const char *if_match;
    const char *if_none_exist;
    const char *if_none_match;     /* conditional read: ETags (W/"3", "*", a list) */
    const char *if_modified_since; /* conditional read: an HTTP-date */
    const char *prefer;
    const char *body;
    size_t body_len;
    int body_streamed; /* the body follows through vl_fhir_feed() (body is NULL): only for
                          requests vl_fhir_streams_body() names */
} vl_fhir_request_t;

/** Fills up to `max` bytes of a streamed body: returns the count, 0 at the
 *  end, -1 on error (the transport then aborts the connection). */
typedef ssize_t (*vl_fhir_stream_fn)(void *ctx, char *buf, size_t max);

typedef struct vl_fhir_response {
    int status;
    const char *route;        /* the route template, for logs (static) */
    const char *content_type; /* NULL: FHIR JSON (the transport picks fhir+json or json);
                                 otherwise sent as is */
    char *body;               /* malloc'd, owned by the response; NULL: no body */
    size_t body_len;
    vl_fhir_stream_fn stream; /* instead of body: streamed (stream_ctx owned) */
    void (*stream_free)(void *ctx);
    void *stream_ctx;
    char etag[32];
    char location[640];
    char last_modified[40];
    const char *allow;          /* 405: the allowed methods (static) */
    char ledger_index[24];      /* X-Ledger-Index receipt of a write, or "" */
    char ledger_hash[65];       /* X-Ledger-Entry-Hash (hex) */
    char www_authenticate[256]; /* a 401's challenge (RFC 6750), or "" */
    int no_store;               /* Cache-Control: no-store (secrets, token lists) */
    char content_location[640]; /* Content-Location (Bulk Data: the status URL), or "" */
    char progress[128];         /* X-Progress (Bulk Data status), or "" */
    int retry_after;            /* Retry-After in seconds (0: none) */
} vl_fhir_response_t;

/** Called once, on a store thread, when a pending exchange can be resumed. */
typedef void (*vl_fhir_notify_fn)(void *arg);

vl_fhir_t *vl_fhir_new(const vl_fhir_options_t *opts);
void vl_fhir_free(vl_fhir_t *f);

/**
 * Handles a request. *x receives the request's exchange (free it with
 * vl_fhir_exchange_free() once the response is sent). Returns 0 with *res
 * complete, or 1 when the answer waits for the store: notify(arg) is then
 * called exactly once, from another thread, after which the caller calls
 * vl_fhir_resume() to obtain the response.
 */
int vl_fhir_handle(vl_fhir_t *f, const vl_fhir_request_t *req, vl_fhir_notify_fn notify, void *arg,
                   vl_fhir_exchange_t **x, vl_fhir_response_t *res);
void vl_fhir_resume(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/**
 * Streamed bodies ($ingest: NDJSON of any length, in constant memory).
 * When vl_fhir_streams_body() says so, the transport calls
 * vl_fhir_handle() as soon as the headers are in, with body_streamed set:
 * it answers at once (0: a 401, 403, 400, ... before any byte of the body
 * is read) or returns 2, and the transport then passes every piece of the
 * body to vl_fhir_feed() as it arrives, and finally calls it with len 0.
 * vl_fhir_feed() returns 0 (go on; at the end: `res` is complete) or 1:
 * stop reading until notify(arg) (called exactly once), then go on
 * feeding; at the end, 1 means the answer waits: notify, then
 * vl_fhir_resume().
 */
int vl_fhir_streams_body(const char *method, const char *path);
int vl_fhir_feed(vl_fhir_exchange_t *x, const char *data, size_t len, vl_fhir_response_t *res);
void vl_fhir_exchange_free(vl_fhir_exchange_t *x);
/** Frees the body (or the stream context) of a response not sent. */
void vl_fhir_response_free(vl_fhir_response_t *res);
/** Fills `res` with an OperationOutcome for `err` (status from err, 500 if none). */
void vl_fhir_response_error(vl_fhir_response_t *res, const vl_error_t *err);

/** Maps a store failure to an HTTP status and OperationOutcome issue. */
int vl_fhir_store_error(const vl_store_err_t *serr, vl_error_t *err);

#endif
