/*
 * Private to the fhir module's interaction layer: the route table, the
 * exchange (one request's state), writes, rendering and Bundles.
 */
#ifndef VL_FHIR_INTERNAL_H
#define VL_FHIR_INTERNAL_H

#include <stdatomic.h>

#include "vitalog/fhir.h"

/* ------------------------------------------------------------------------
 * The table of interactions and operations (interaction.c)
 * ---------------------------------------------------------------------- */

/** Handles a routed, authorized request: 0 with `res` complete, 1 pending. */
typedef int (*vl_handler_fn)(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

enum {
    VL_ROW_WRITE = 1 << 0,       /* may change data */
    VL_ROW_FHIR_BODY = 1 << 1,   /* takes a FHIR JSON body (parsed before authorization) */
    VL_ROW_FORM_BODY = 1 << 2,   /* takes an application/x-www-form-urlencoded body */
    VL_ROW_SYSTEM = 1 << 3,      /* outside /fhir: JSON answers are application/json */
    VL_ROW_STREAM_BODY = 1 << 4, /* the transport may stream the body (vl_fhir_feed) */
};

typedef struct vl_route {
    const char *pattern;     /* "/fhir/{type}/{id}/_history/{vid}/$ledger" */
    const char *method;      /* GET (HEAD too), POST, PUT, DELETE */
    const char *interaction; /* FHIR interaction code, or a system route name */
    const char *operation;   /* "$ledger" for an operation, else NULL */
    unsigned flags;
    vl_handler_fn handler;
} vl_route_t;

/** The table, terminated by {NULL}. */
extern const vl_route_t vl_routes[];

/** Canonical base of vitalog's OperationDefinitions ($ledger, ...). */
#define VL_FHIR_OPERATION_BASE "http://vitalog.local/fhir/OperationDefinition"

struct vl_fhir {
    vl_fhir_options_t opts;
    /* seals page cursors (cursor.c): derived from opts.ingest_key, or
     * random for the life of the process when there is none */
    unsigned char cursor_key[32];
};

/* ------------------------------------------------------------------------
 * Page cursors (cursor.c): opaque and tamper-evident
 * ---------------------------------------------------------------------- */

/** The most bytes of state a cursor carries. */
#define VL_CURSOR_STATE_MAX 384

/** A cursor state's integers: 8 bytes, little-endian. */
void vl_cursor_put64(unsigned char *p, int64_t v);
int64_t vl_cursor_get64(const unsigned char *p);
/** Derives the cursor key of `f` (vl_fhir_new). */
void vl_cursor_key_init(vl_fhir_t *f);
/** Appends to `out` the cursor of `state` (`len` <= VL_CURSOR_STATE_MAX
 *  bytes) bound to `bind` (the canonical query of the search it pages: a
 *  cursor opens only for the same search): base64url (no padding) of
 *  state || BLAKE2b-128 MAC keyed with the server's cursor key over
 *  "vitalog cursor 1" || bind || NUL || state. 0, or -1 (out of memory). */
int vl_cursor_seal(const vl_fhir_t *f, const char *bind, const void *state, size_t len,
                   vl_buf_t *out);
/** Appends to `b` who the caller of `x` is and what its access rests on
 *  (role, subject, organization, patient, SMART scopes, the Consents of
 *  its scope): bound into a cursor, it opens only for the same caller
 *  with the same access, so a link neither widens another caller's search
 *  nor carries a total counted in another scope. */
void vl_cursor_bind_caller(vl_buf_t *b, const vl_fhir_exchange_t *x);
/** Opens a cursor: 0 with its state in `buf` (at most `cap` bytes) and
 *  its length in *len; -1 when the text is malformed, was changed, or was
 *  sealed for another search or by another key. Constant-time MAC check. */
int vl_cursor_open(const vl_fhir_t *f, const char *bind, const char *text, void *buf, size_t cap,
                   size_t *len);

enum { VL_PREFER_REPRESENTATION, VL_PREFER_MINIMAL, VL_PREFER_OUTCOME };

typedef struct vl_disclosure vl_disclosure_t;

struct vl_fhir_exchange {
    vl_fhir_t *f;
    const vl_fhir_request_t *req;
    const vl_route_t *row;
    const vl_fhir_type_t *type; /* {type}, or NULL */
    const char *id;             /* {id} (arena), or NULL */
    int64_t vid;                /* {vid}, or 0 */
    vl_arena_t *arena;          /* freed with the exchange */
    const char *fhir_base;      /* "<base_url>/fhir" once asked for (arena) */
    vl_principal_t who;
    vl_error_t login_failed; /* why the credentials given were refused (401), if they were */
    vl_scope_t scope;        /* from the policy; every store read takes it */
    json_t *body;            /* the parsed FHIR body (owned), for FHIR_BODY rows */
    vl_params_t params;      /* query parameters, plus a POST _search form body */
    int prefer;              /* VL_PREFER_* */
    int lenient;             /* Prefer: handling=lenient */
    /* a pending answer */
    vl_fhir_notify_fn notify;
    void *notify_arg;
    vl_store_unit_t unit;
    void (*finish)(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
    /* a streamed body's pieces (vl_fhir_feed), set by a handler returning 2 */
    int (*feed)(vl_fhir_exchange_t *x, const char *data, size_t len, vl_fhir_response_t *res);
    void *op; /* the pending operation's state */
    void (*op_free)(void *op);
    vl_fhir_request_t own_req;  /* a sub-request's request (req points here) */
    int is_sub;                 /* a Bundle entry: shares the parent's arena */
    vl_fhir_exchange_t *parent; /* a sub-request's Bundle exchange */
    /* the accounting of disclosures (audit.c), on the root exchange */
    vl_disclosure_t *disclosed; /* the patients whose data the answer holds */
    int disclose_failed;        /* noting one failed: the answer must not leave */
    int audited;                /* the AuditEvents were written (or tried) */
    int disclose_errors;        /* an error answer discloses too (PATCH: a failed `test` or
                                   path shows the current content): accounted all the same */
};

/** Submits x->unit (apply/arg set by the caller); `finish` builds the
 *  answer once it completed. Returns 1 (pending), or 0 with `res` holding
 *  the error when the store refused it. */
int vl_x_submit(vl_fhir_exchange_t *x, vl_fhir_response_t *res,
                void (*finish)(vl_fhir_exchange_t *x, vl_fhir_response_t *res));
/** An OperationOutcome answer with one issue. Returns 0. */
int vl_x_fail(vl_fhir_response_t *res, int status, const char *code, const char *fmt, ...)
    VL_PRINTF(4, 5);
/** An OperationOutcome answer from an error (which is cleared). Returns 0. */
int vl_x_error(vl_fhir_response_t *res, vl_error_t *err);
/** An answer from a store failure. Returns 0. */
int vl_x_store_error(vl_fhir_response_t *res, const vl_store_err_t *serr);
/** A JSON answer (numbers as their text); takes the reference. Returns 0. */
int vl_x_json(vl_fhir_response_t *res, int status, json_t *doc);
/** A text answer; takes `body` (malloc'd). Returns 0. */
int vl_x_text(vl_fhir_response_t *res, int status, const char *ctype, char *body, size_t len);
/** The FHIR base of the request: "<base_url>/fhir". */
const char *vl_x_fhir_base(vl_fhir_exchange_t *x);
/** Parses an ETag-style version: W/"3", "3" or 3. 0 if malformed. */
int64_t vl_fhir_parse_version(const char *s);
/** Parses a Prefer header into *ret (VL_PREFER_*) and *lenient. */
void vl_fhir_parse_prefer(const char *prefer, int *ret, int *lenient);

/* ------------------------------------------------------------------------
 * Rendering (render.c)
 * ---------------------------------------------------------------------- */

/** A resource rendered ahead of the write, except for what only the writer
 *  knows (id, meta.versionId, meta.lastUpdated). */
typedef struct vl_render {
    char *tail;      /* ',"a":1,...' members after meta, or "" */
    char *meta_rest; /* ',"k":v' meta members other than versionId/lastUpdated, or "" */
} vl_render_t;

/** Renders `res` (resourceType first). 0, or -1 when out of memory. */
int vl_render_prepare(const json_t *res, vl_render_t *out);
/** The stored body:
 *    {"resourceType":T,"id":ID,"meta":{"versionId":V,"lastUpdated":L<meta_rest>}<tail>}
 *  malloc'd; NULL when out of memory. */
char *vl_render_body(const vl_render_t *r, const char *type, const char *id, int64_t version,
                     int64_t time_us, size_t *len);
void vl_render_free(vl_render_t *r);

/** Percent-encodes `s` for a URL query (RFC 3986 unreserved, ':' '/' ','
 *  kept). */
int vl_buf_query_encode(vl_buf_t *b, const char *s);
/** Opens a Bundle: resourceType, id, meta.lastUpdated, type, total (-1: none). */
void vl_bundle_open(vl_buf_t *b, const char *type, int64_t total);
/** Appends one link (call with *first = 1 for the first; close with
 *  vl_bundle_links_close()). */
void vl_bundle_link(vl_buf_t *b, int *first, const char *relation, const char *url);
void vl_bundle_links_close(vl_buf_t *b, int first);
/** `"Type/id"` URL of a record under the base. */
void vl_full_url(vl_buf_t *b, const char *fhir_base, const char *type, const char *id);
/** Sets ETag and Last-Modified (and Location when `with_location`). */
void vl_record_headers(vl_fhir_response_t *res, const char *fhir_base, const char *type,
                       const char *id, int64_t version, int64_t last_updated_us, int with_location);

/* ------------------------------------------------------------------------
 * Subsets: _summary and _elements (subset.c, summary_elements.c)
 * ---------------------------------------------------------------------- */

enum {
    VL_ELEMENT_SUMMARY = 1 << 0,   /* isSummary in the R4 definition */
    VL_ELEMENT_MANDATORY = 1 << 1, /* min >= 1 */
    VL_ELEMENT_CHOICE = 1 << 2,    /* one type of a choice element name[x] */
};

/** A top-level element of a type as a JSON member: "valueQuantity" is
 *  `name`, "value" (of value[x]) its `base`; both equal otherwise. */
typedef struct vl_fhir_element {
    const char *name;
    const char *base;
    unsigned flags; /* VL_ELEMENT_* */
} vl_fhir_element_t;

typedef struct vl_fhir_type_elements {
    const char *type;
    const vl_fhir_element_t *elements; /* terminated by {NULL} */
} vl_fhir_type_elements_t;

/** Generated (scripts/gen-summary-elements.py): one row per served type,
 *  terminated by {NULL}. */
extern const vl_fhir_type_elements_t vl_fhir_type_elements[];

/** The top-level elements of `type`, or NULL when it is not served. */
const vl_fhir_element_t *vl_fhir_elements_of(const char *type);

typedef enum {
    VL_SUBSET_FULL = 0, /* no _summary, or _summary=false */
    VL_SUBSET_SUMMARY,  /* _summary=true */
    VL_SUBSET_TEXT,     /* _summary=text */
    VL_SUBSET_DATA,     /* _summary=data */
    VL_SUBSET_COUNT,    /* _summary=count: a search's total only, no resources */
    VL_SUBSET_ELEMENTS, /* _elements=a,b,c */
} vl_subset_mode_t;

/** What a request asks to be served of each resource. `elements` is the
 *  _elements value (borrowed from the parameters; checked: comma-separated
 *  element names), NULL otherwise. */
typedef struct vl_subset {
    vl_subset_mode_t mode;
    const char *elements;
    int seen_summary, seen_elements;
} vl_subset_t;

#define VL_SUBSET_INIT                                                                             \
    {                                                                                              \
        VL_SUBSET_FULL, NULL, 0, 0                                                                 \
    }

/** Adds one parameter `name` ("_summary" or "_elements", any other is
 *  ignored) with a non-empty `value` (borrowed: it must outlive `s`) to `s`.
 *  0, or -1 with a 400 in `err`: a value that is not true, false, text,
 *  data or count, an _elements list that is not comma-separated element
 *  names, either parameter twice, or both together (R4 does not define
 *  the combination). */
int vl_fhir_subset_add(vl_subset_t *s, const char *name, const char *value,
                       vl_error_t *err) VL_WARN_UNUSED;
/** The subset the parameters ask for (vl_fhir_subset_add on each _summary
 *  and _elements with a non-empty value). `search`: 0 for a read, where
 *  _summary=count is a 400. 0, or -1 with a 400 in `err`. */
int vl_fhir_subset_params(const vl_params_t *params, int search, vl_subset_t *out,
                          vl_error_t *err) VL_WARN_UNUSED;
/** Whether `s` trims resources (SUMMARY, TEXT, DATA, ELEMENTS). */
int vl_fhir_subset_active(const vl_subset_t *s);
/** Trims the resource `res` (a JSON object of `type`, changed in place) to
 *  the subset `s` and adds the meta.tag SUBSETTED (v3-ObservationValue)
 *  unless it is there. Nothing happens when `s` is not active. 0, or -1
 *  when out of memory (`res` may then be half trimmed). */
int vl_fhir_subset_json(const char *type, const vl_subset_t *s, json_t *res) VL_WARN_UNUSED;
/** The served copy of a stored body: `body` (`len` bytes, unchanged)
 *  parsed, trimmed by vl_fhir_subset_json and serialized, numbers as their
 *  text. *out is malloc'd (caller frees) with its length in *out_len; when
 *  `s` is not active *out is NULL (serve `body` itself). 0, or -1 when out
 *  of memory or `body` is not a JSON object. */
int vl_fhir_subset(const char *type, const vl_subset_t *s, const char *body, size_t len, char **out,
                   size_t *out_len) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * Writes (write.c): one create, update or delete, run inside a unit
 * ---------------------------------------------------------------------- */

typedef enum { VL_W_CREATE, VL_W_UPDATE, VL_W_DELETE } vl_wop_t;

typedef struct vl_write {
    /* in */
    vl_wop_t op;
    const vl_fhir_type_t *type;
    char id[65];     /* create: assigned by prepare; conditional update/delete: resolved */
    int conditional; /* create with If-None-Exist; update/delete by search */
    vl_search_t cond;
    int64_t if_match;      /* 0: none */
    int must_be_new;       /* a conditional update that matched nothing, with the body's id */
    int if_changed;        /* an update that writes nothing when the current version has the
                              same content (ingest: a reading sent again); a deleted one stays
                              deleted */
    json_t *resource;      /* create/update (owned) */
    const char *fhir_base; /* this server's FHIR base (borrowed), or NULL */
    vl_index_t index;
    vl_render_t parts;
    int prepared;
    /* out */
    int status;    /* 200, 201, 204 (or the error's) */
    int noop;      /* nothing written: If-None-Exist matched; delete of the deleted; an
                      if_changed update of an equal (or deleted) version */
    int unchanged; /* if_changed: the current version already holds this content */
    int gone;      /* if_changed: the resource is deleted and stays so */
    int created;
    int64_t version, time_us;
    char *body; /* the stored (or matched) body, malloc'd */
    size_t body_len;
    int anchored;
    vl_store_receipt_t receipt;
    vl_entry_kind_t consent[2]; /* the consent entries the write added */
    size_t n_consent;
    int disclose; /* an AuditEvent of the accounting: anchored as access.disclose */
} vl_write_t;

/** The ledger entries a Consent write adds (consent.c): `before` the
 *  version replaced (NULL: none or deleted), `after` the new one (NULL: a
 *  delete). Returns how many kinds it wrote into `kinds` (0-2). */
size_t vl_fhir_consent_transition(const json_t *before, const json_t *after,
                                  vl_entry_kind_t kinds[2]);

/** A write of `res` (taken) as `op` on `type`. */
void vl_write_init(vl_write_t *w, vl_wop_t op, const vl_fhir_type_t *type, json_t *res);
/** Caller thread: assigns a create's id, computes index rows and the
 *  prerendered parts. */
int vl_write_prepare(vl_write_t *w, vl_error_t *err);
/** Writer thread: resolves a conditional write by its search (sets id, or
 *  noop for a matched create). */
int vl_write_resolve(vl_store_txn_t *txn, vl_scope_t scope, vl_write_t *w, vl_error_t *err);
/** Writer thread: checks the state (If-Match, existence), renders and puts
 *  the version, which must stay within the write scope (auth.h: the
 *  version replaced and the version written both visible in it, else 403
 *  and nothing is kept). Requires resolve first for conditional writes. */
int vl_write_execute(vl_store_txn_t *txn, vl_scope_t scope, vl_write_t *w, vl_error_t *err);
void vl_write_release(vl_write_t *w);
/** Makes the write conditional on a search of its type (at most
 *  VL_CONDITION_MAX_VALUES values: conditions run on the writer thread). */
int vl_write_condition(vl_write_t *w, const vl_params_t *params, vl_error_t *err);
/** Same from "Type?query" or "query" (If-None-Exist, Bundle request URLs). */
int vl_write_condition_text(vl_write_t *w, const char *query, vl_error_t *err);

/* ------------------------------------------------------------------------
 * Handlers
 * ---------------------------------------------------------------------- */

/* rest.c */
int vl_h_read(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_vread(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_history(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_search(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_create(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_update(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_delete(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
/** The answer of a completed single write (status, headers, Prefer). */
void vl_write_answer(vl_fhir_exchange_t *x, vl_write_t *w, vl_fhir_response_t *res);
/** A read interaction of a routed sub-exchange (a Bundle's GET entry):
 *  read, vread, search or history on `txn` (NULL: a reader connection) in
 *  the exchange's scope. Fills `res` like a direct request. */
int vl_rest_get(vl_fhir_exchange_t *x, vl_store_txn_t *txn, const vl_params_t *params,
                vl_fhir_response_t *res);
/** Routes, identifies and authorizes a Bundle entry as a sub-request of
 *  `parent` (same caller, same arena). `resource` (borrowed) is the
 *  entry's resource for rows that take a body. 0 with `sub` ready (release
 *  it with vl_x_sub_release), or -1 with the answer in `res`. */
int vl_x_subrequest(vl_fhir_exchange_t *parent, const char *method, const char *url,
                    json_t *resource, vl_fhir_exchange_t *sub, vl_fhir_response_t *res);
void vl_x_sub_release(vl_fhir_exchange_t *sub);

/* ingest.c */
int vl_h_ingest(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* patch.c: PATCH with JSON Patch (RFC 6902) or FHIRPath Patch */
int vl_h_patch(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* stats.c: Observation/$lastn and Observation/$stats */
int vl_h_lastn(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_stats(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* everything.c: Patient/{id}/$everything */
int vl_h_everything(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* validate_op.c: {type}/$validate */
int vl_h_validate(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* export.c: Bulk Data export (kick-off, status, cancel, files) */
int vl_h_export(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_export_status(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_export_cancel(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_export_file(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
/** Stops and joins the background work of every export job of `f` and
 *  forgets them (vl_fhir_free, before the store closes). */
void vl_export_shutdown(vl_fhir_t *f);

/* bundle.c */
int vl_h_bundle(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* audit.c: the accounting of disclosures */
/** Notes that the answer of `x` holds `rec` (before the answer is built). */
int vl_x_disclose(vl_fhir_exchange_t *x, const vl_record_t *rec);
/** Notes that the answer of `x` holds data of the patient `patient_id`
 *  (an id, not a reference) without naming a record: statistics, a Bulk
 *  Data file. `what` (may be NULL) is listed as an entity reference of the
 *  AuditEvent, e.g. "Observation/$stats". A patient's own data read by that
 *  patient is not noted. 0, or -1 (then the answer must not leave). */
int vl_x_disclose_patient(vl_fhir_exchange_t *x, const char *patient_id, const char *what);
/** Whether the answer of `x` disclosed a patient's data to someone else. */
int vl_audit_needed(const vl_fhir_exchange_t *x);
/** Holds the answer `res` and submits the AuditEvents; 1 pending (the held
 *  answer, or 503, comes out of vl_fhir_resume), 0 with an error in res. */
int vl_audit_submit(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
/** Writes the AuditEvents and waits (answers that were already pending:
 *  Bundles); on failure replaces `res` with a 503. Returns 0. */
int vl_audit_run(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* token_api.c */
int vl_h_tokens_list(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_tokens_create(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_tokens_revoke(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

/* ledger_api.c */
int vl_h_ledger_record(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_ledger_checkpoint(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_ledger_key(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_ledger_keys(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_ledger_entries(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_ledger_inclusion(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_ledger_consistency(vl_fhir_exchange_t *x, vl_fhir_response_t *res);
int vl_h_ledger_export(vl_fhir_exchange_t *x, vl_fhir_response_t *res);

#endif
