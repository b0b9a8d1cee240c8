/*
 * vitalog — store: the only module that speaks SQL.
 *
 * Every version of every resource is kept; search index rows describe the
 * current version only. The store knows neither FHIR nor HTTP: it keeps
 * bytes, index rows and compartments that the fhir module computed, and
 * reports failures as kinds (vl_store_kind_t) that the caller maps.
 *
 * LAYERS (docs/architecture.md, "The store seam")
 *
 *   core (src/store/core.c, ledger_state.c): the write queue, the single
 *        writer thread with group commit, units and their savepoints, the
 *        ledger's state (chain, Merkle range, checkpoints), snapshots;
 *        backend-neutral.
 *   backend (src/store/backend.h, sqlite*.c): the narrow set of operations
 *        the core needs (transactions, rows, index rows, ledger rows, reads,
 *        queries). SQLite today (WAL, synchronous=FULL); a PostgreSQL
 *        backend is new files behind the same table of operations.
 *
 * WRITES: a caller submits a *unit* (vl_store_unit_t). The writer takes
 * every queued unit, runs them in one transaction, each unit inside its own
 * savepoint, commits once (one fsync) and only then completes each unit.
 * A unit's `apply` callback runs on the writer thread inside its savepoint
 * and uses the vl_store_txn_* operations: it may read (seeing the writes
 * of the unit so far), and put any number of record versions, each with
 * its ledger entry. If apply fails, the savepoint is rolled back: none of
 * the unit's writes and none of its ledger entries remain, and the other
 * units of the batch are untouched. A unit is all or nothing.
 *
 * READS take an access scope (vl_scope_t, by value: a read without one does
 * not compile). The policy (auth module) fills it from the caller; a zeroed
 * scope sees nothing (default deny). A record outside the scope is reported
 * exactly like a record that does not exist.
 */
#ifndef VITALOG_STORE_H
#define VITALOG_STORE_H

#include <pthread.h>
#include <stdint.h>

#include "vitalog/ledger.h"
#include "vitalog/util.h"

typedef struct vl_store vl_store_t;

/* ------------------------------------------------------------------------
 * Errors: kinds, not HTTP statuses (the fhir layer maps them).
 * ---------------------------------------------------------------------- */

typedef enum vl_store_kind {
    VL_STORE_OK = 0,
    VL_STORE_NOT_FOUND,   /* no such resource, version or ledger item (or outside the scope) */
    VL_STORE_CONFLICT,    /* a write contradicts the stored state (a version already taken) */
    VL_STORE_INVALID,     /* a malformed argument (type, id, range) */
    VL_STORE_DENIED,      /* the scope does not cover this kind of read (ledger, records) */
    VL_STORE_TOO_COSTLY,  /* a query or unit beyond the store's limits */
    VL_STORE_UNAVAILABLE, /* transient: shutting down, busy, a commit failed, no ledger key */
    VL_STORE_ABORTED,     /* a unit's own apply callback failed (details are the caller's) */
    VL_STORE_FAILED,      /* storage error, corruption, out of memory */
} vl_store_kind_t;

typedef struct vl_store_err {
    vl_store_kind_t kind; /* VL_STORE_OK while nothing failed */
    char message[256];    /* for logs and diagnostics; never holds record contents */
} vl_store_err_t;

#define VL_STORE_ERR_INIT                                                                          \
    {                                                                                              \
        VL_STORE_OK,                                                                               \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/** Records a failure (the first one recorded wins) and returns -1. */
int vl_store_fail(vl_store_err_t *err, vl_store_kind_t kind, const char *fmt, ...) VL_PRINTF(3, 4);
/** A short name of a kind ("not-found", ...), for logs. */
const char *vl_store_kind_name(vl_store_kind_t kind);

/* ------------------------------------------------------------------------
 * Access scopes
 * ---------------------------------------------------------------------- */

enum {
    VL_SCOPE_ALL = 1 << 0,     /* every record */
    VL_SCOPE_SHARED = 1 << 1,  /* records in no patient compartment (Organization, ...) */
    VL_SCOPE_LEDGER = 1 << 2,  /* the ledger: entries, checkpoints, proofs, keys */
    VL_SCOPE_RECORDS = 1 << 3, /* the records export (every version's bytes); needs ALL */
};

/** A code a rule matches: `system` NULL matches the code in any system. */
typedef struct vl_scope_code {
    const char *system;
    const char *code;
} vl_scope_code_t;

/**
 * A consent rule (auth builds them from Consent provisions): it covers the
 * versions in the compartment of `patient` whose type is one of `types`
 * (none: any type), that carry one of `codes` among their facet codes
 * (none: any; a version without codes matches no code list), and whose
 * facet time lies inside [lo, hi) (has_period; a version without a time
 * matches no period). A deny rule's period matches a version whose time
 * overlaps it.
 */
typedef struct vl_scope_rule {
    const char *patient;
    int deny;
    size_t n_types;
    const char *const *types;
    size_t n_codes;
    const vl_scope_code_t *codes;
    int has_period;
    int64_t lo, hi;
} vl_scope_rule_t;

/**
 * What a read may see. A record version is visible when the scope has
 * VL_SCOPE_ALL; or it is in the compartment of one of `patients` (ids of
 * Patient resources); or it is in no patient compartment and the scope has
 * VL_SCOPE_SHARED; or some permit rule covers it and no deny rule does; or
 * its resource is of type `ref_type` and its current version has a
 * reference `ref_param` equal to one of `refs` (a clinic reading the
 * Consents that name it). Every list is borrowed for the call.
 */
typedef struct vl_scope {
    unsigned flags;
    size_t n_patients;
    const char *const *patients;
    size_t n_rules;
    const vl_scope_rule_t *rules;
    const char *ref_type, *ref_param;
    size_t n_refs;
    const char *const *refs;
    /* not read by the store: what the rules rest on, "patient:Consent-id"
     * pairs joined by commas, for the accounting of disclosures */
    const char *basis;
    /* and whatever else holds: versions of `category_type` are visible only
     * with one of these category facets (granular SMART scopes) */
    const char *category_type;
    size_t n_categories;
    const vl_scope_code_t *categories;
    /* and, when n_types > 0, only versions of these resource types (the
     * types a JWT's SMART scopes let it read: what a request reads beyond
     * the URL's own type, through _include, chains, $everything or a Bulk
     * Data file, stays within them) */
    size_t n_types;
    const char *const *types;
} vl_scope_t;

/** The scope of the data directory's owner (tools, the server itself). */
static inline vl_scope_t vl_scope_everything(void)
{
    vl_scope_t s = {VL_SCOPE_ALL | VL_SCOPE_SHARED | VL_SCOPE_LEDGER | VL_SCOPE_RECORDS,
                    0,
                    NULL,
                    0,
                    NULL,
                    NULL,
                    NULL,
                    0,
                    NULL,
                    NULL,
                    NULL,
                    0,
                    NULL,
                    0,
                    NULL};
    return s;
}

/* ------------------------------------------------------------------------
 * Opening
 * ---------------------------------------------------------------------- */

typedef struct vl_store_options {
    int batch_max; /* most units in one transaction; 0 means 256 */
    /* The ledger: every record version appends an entry in its unit's
     * savepoint; the writer signs a checkpoint at most `checkpoint_ms` after
     * entries arrive (0: 1000). `key` (with its secret) signs checkpoints
     * and is copied; NULL opens the store without it: writes fail with
     * VL_STORE_UNAVAILABLE, reads work. */
    const vl_ledger_key_t *key;
    const char *origin; /* checkpoint origin (and key name) */
    unsigned checkpoint_ms;
} vl_store_options_t;

/** A schema migration, schemas/NNN_name.sql, embedded at build time. The
 *  database's PRAGMA user_version is the number of the last one applied. */
typedef struct vl_migration {
    int number;
    const char *name;
    const char *sql;
} vl_migration_t;

/** The embedded migrations in ascending order, terminated by {0}. */
extern const vl_migration_t vl_migrations[];

/** Opens (creating if needed, mode 0600) DIR/vitalog.db, applies pending
 *  migrations, checks the ledger's tail and starts the writer thread. */
int vl_store_open(const char *dir, const vl_store_options_t *opts, vl_store_t **out,
                  vl_store_err_t *err) VL_WARN_UNUSED;
/** Whether DIR/vitalog.db exists and holds at least one ledger entry
 *  (read-only; migrates nothing). 1 yes, 0 no, -1 error. */
int vl_store_has_ledger(const char *dir, vl_store_err_t *err);
/** Completes queued units, stops the writer, closes every connection. */
void vl_store_close(vl_store_t *store);
/** 0 when the store can serve (writer running, last commit ok, readable). */
int vl_store_ready(vl_store_t *store);

/* ------------------------------------------------------------------------
 * Search index rows: extracted by the fhir module from a resource, written
 * by the store in the same savepoint as the version they describe.
 * ---------------------------------------------------------------------- */

typedef enum {
    VL_INDEX_TOKEN,     /* system + code (system NULL: none given) */
    VL_INDEX_STRING,    /* text: value as given, normalized lowercased/unaccented form */
    VL_INDEX_REFERENCE, /* text: "Type/id" or absolute URL */
    VL_INDEX_DATE,      /* lo..hi: half-open range in microseconds */
    VL_INDEX_QUANTITY,  /* number + system + code (canon: in its canonical unit) */
    VL_INDEX_COMPOSITE, /* token (system + text) $ quantity (number + unit) */
    VL_INDEX_SERIES,    /* ref (the patient) + token (system + text) + time lo..hi */
} vl_index_kind_t;

/** No time: a VL_INDEX_SERIES row of a version without one has lo = hi =
 *  VL_SERIES_UNDATED (no real range ends there), so that "this patient's
 *  readings of this code" finds it and no date condition matches it. */
#define VL_SERIES_UNDATED INT64_MIN

typedef struct vl_index_row {
    const char *param; /* search parameter name, e.g. "code" (static or
                          interned for the life of the program) */
    vl_index_kind_t kind;
    char *system; /* token/quantity system, or NULL (owned) */
    char *text;   /* token code / string / reference / quantity code (owned) */
    char *norm;   /* normalized string for VL_INDEX_STRING (owned) */
    char *unit;   /* composite: the quantity's unit code ("" none); series:
                     the patient reference "Patient/<id>" (owned) */
    double number;
    int64_t lo, hi;
    int canon;     /* quantity: 1 for the value in its canonical UCUM unit */
    int sort;      /* the param is sortable: the store keeps its sort keys */
    int norm_only; /* string: only the normalized form is searched (token :text
                      rows): the exact value is not kept */
} vl_index_row_t;

/** Index rows of one version, and the ids of the patients in whose
 *  compartment it is (R4 CompartmentDefinition patient, computed by fhir). */
typedef struct vl_index {
    vl_index_row_t *rows;
    size_t n, cap;
    char **patients;
    size_t n_patients, cap_patients;
    /* consent facets, kept per version (scopes match rules on them): the
     * codes the data is about and the time it covers, [time_lo, time_hi) */
    struct vl_index_code {
        char *system; /* NULL: none */
        char *code;
        int kind; /* 0 a code of the data, 1 a category */
    } * codes;
    size_t n_codes, cap_codes;
    int has_time;
    int64_t time_lo, time_hi;
} vl_index_t;

/** The normalized form of a string for matching, in every script: NFKD
 *  with Unicode case folding and all marks dropped (utf8proc), then a few
 *  letters without a decomposition folded to ASCII (æ -> ae, ø -> o,
 *  ł -> l, þ -> th, ...); text that is not valid UTF-8 only has ASCII A-Z
 *  lowercased. The exact rule is note 2 of index_rows.c. Returns malloc'd
 *  text (caller frees), NULL only when out of memory. */
char *vl_index_normalize(const char *text);

void vl_index_init(vl_index_t *ix);
void vl_index_free(vl_index_t *ix);
/** Appends a row; strings are copied. Returns 0 or -1 (out of memory). */
int vl_index_add(vl_index_t *ix, const char *param, vl_index_kind_t kind, const char *system,
                 const char *text, double number, int64_t lo, int64_t hi);
/** Appends a row as given (strings copied, norm computed for strings) and
 *  returns it, or NULL (out of memory). */
vl_index_row_t *vl_index_add_row(vl_index_t *ix, const vl_index_row_t *row);
/** Adds a patient compartment (copied; duplicates are kept once). 0 or -1. */
int vl_index_add_patient(vl_index_t *ix, const char *patient_id);
/** Adds a facet code (kind 0) or category (kind 1): copied, duplicates
 *  kept once. 0 or -1. */
int vl_index_add_code(vl_index_t *ix, const char *system, const char *code);
int vl_index_add_category(vl_index_t *ix, const char *system, const char *code);
/** Sets (or widens to include) the facet time [lo, hi). */
void vl_index_add_time(vl_index_t *ix, int64_t lo, int64_t hi);

/* ------------------------------------------------------------------------
 * Queries: a conjunction of conditions, each a disjunction of values.
 * ---------------------------------------------------------------------- */

typedef enum {
    VL_CMP_EQ,
    VL_CMP_NE,
    VL_CMP_LT,
    VL_CMP_LE,
    VL_CMP_GT,
    VL_CMP_GE,
    VL_CMP_SA, /* starts after: dates rlo >= hi; quantities value > number (R4: no implicit range)
                */
    VL_CMP_EB, /* ends before: dates rhi <= lo; quantities value < number */
    VL_CMP_AP  /* approximately: dates overlap [lo, hi); quantities in [lo_num, hi_num)
                  (the parser widens both by its tolerance) */
} vl_cmp_t;

typedef enum {
    VL_MATCH_DEFAULT, /* token: code (+system); string: starts-with on norm; reference: equal */
    VL_MATCH_EXACT,   /* string: exact, case-sensitive */
    VL_MATCH_CONTAINS /* string: substring of norm */
} vl_match_t;

typedef struct vl_query_value {
    vl_cmp_t cmp;          /* dates and quantities */
    const char *system;    /* token: NULL any system, "" no system; quantity: NULL any */
    const char *text;      /* token code (NULL: any code of system) / string / reference /
                              quantity code or unit (NULL: any) */
    double number;         /* quantity: the value as given (lt, le, gt, ge compare it) */
    double lo_num, hi_num; /* quantity: the range it denotes (eq, ne, sa, eb, ap) */
    int canon;             /* quantity: compare rows in canonical units */
    int64_t lo, hi;        /* dates: the range the search value denotes */
    const char *unit;      /* composite: the quantity's unit code (NULL: any) */
} vl_query_value_t;

typedef struct vl_query_cond {
    const char *param;
    vl_index_kind_t kind;
    vl_match_t match;
    int missing;          /* -1 unused; 1 :missing=true; 0 :missing=false */
    int negate;           /* :not: the resources with no row matching any value */
    const char *ref_type; /* references: only rows referring to this type count for
                             :missing (patient = subject rows of Patient refs) */
    const char *also;     /* the rows of this param count too (a union: combo-code is
                             code | component-code), or NULL */
    int unique;           /* a version has at most one row matching a value (the
                             parser knows: code-value-quantity of one Observation.value) */
    size_t n;             /* values OR'd together */
    vl_query_value_t *values;
    /* chains and _has (kind VL_INDEX_REFERENCE, no values): `sub` is a
     * query of another type, read in the same scope (the chained side is
     * consent-filtered too; its count, offset and sort are ignored).
     * has = 0, a chain: the version's rows of `param` refer to
     * "<sub->type>/<id>" of a resource `sub` matches (subject:Patient.name).
     * has = 1, _has: some resource `sub` matches refers to this one by its
     * rows of `has_param` (Patient?_has:Observation:subject:code=...). */
    const struct vl_query *sub;
    int has;
    const char *has_param;
} vl_query_cond_t;

/** A sort key: "_lastUpdated", "_id", or a param with sort keys (rows
 *  flagged `sort`). Resources without a key sort last either way. */
typedef struct vl_query_sort {
    const char *param;
    int desc;
} vl_query_sort_t;

#define VL_QUERY_SORT_MAX 4

typedef struct vl_query {
    const char *type; /* resource type */
    const char *id;   /* _id, or NULL */
    size_t n;         /* conditions AND'd together */
    vl_query_cond_t *conds;
    size_t n_sort; /* none: the order of the index the store reads (stable) */
    vl_query_sort_t sort[VL_QUERY_SORT_MAX];
    /* the series path (patient != NULL): the store reads ix_series for
     * this patient and code (system NULL: any) instead of index rows of
     * `code_param`; conditions on `date_param` with one value apply to the
     * series' time. The parser sets it only when it means the same. */
    struct {
        const char *patient; /* "Patient/<id>" */
        const char *system, *code;
        const char *code_param, *date_param;
    } series;
    int count;  /* page size */
    int offset; /* rows to skip */
    /* Paging by keyset over a snapshot (fhir/rest.c's cursors).
     * as_of: 0 reads the current versions; > 0 the snapshot of that
     * moment: of each resource, its version current as of the version
     * sequence `as_of` (written at or before it and not yet replaced then),
     * unless that version is a delete; -1 takes a snapshot now (the highest
     * committed sequence, reported in vl_records_t.as_of) and reads it.
     * Writes after the snapshot change nothing it answers.
     * after: a position (an opaque key of vl_records_t.keys, after_len
     * bytes) of this same query: the page holds the matches strictly after
     * it in the query's order, or with `backward` strictly before it (still
     * returned in the query's order: the `count` closest to it).
     * want_keys: fill vl_records_t.keys; with max_bytes, the row after
     * the one that reached max_bytes is read too (when there is one), so
     * that the caller can tell whether more follow. */
    int64_t as_of;
    const unsigned char *after;
    size_t after_len;
    int backward;
    int want_keys;
} vl_query_t;

/** The most bytes of a keyset position (vl_records_t.keys); a row whose
 *  order keys do not fit gets none (key_lens 0): page by offset there. */
#define VL_QUERY_KEY_MAX 320

/* ------------------------------------------------------------------------
 * Records
 * ---------------------------------------------------------------------- */

/** What a version was written by: FHIR's Bundle.entry.request.method. */
typedef enum { VL_METHOD_POST, VL_METHOD_PUT, VL_METHOD_DELETE } vl_method_t;

/** One stored version. `body` is the exact bytes stored (NULL: a delete). */
typedef struct vl_record {
    char type[64];
    char id[65];
    int64_t version;
    int deleted;
    int64_t last_updated_us;
    vl_method_t method;
    char *body; /* malloc'd, NUL-terminated; NULL for a delete */
    size_t body_len;
} vl_record_t;

void vl_record_free(vl_record_t *rec);

/** A list of records; `total` is the count of all matches (searches and
 *  history), within the scope. */
typedef struct vl_records {
    vl_record_t *items;
    size_t n, cap;
    int64_t total;
    int64_t as_of; /* a search's snapshot (vl_query_t.as_of), or 0 */
    /* with vl_query_t.want_keys: each item's keyset position (malloc'd;
     * key_lens[i] 0 when its keys did not fit VL_QUERY_KEY_MAX) */
    unsigned char **keys;
    size_t *key_lens;
} vl_records_t;

void vl_records_free(vl_records_t *list);

/** History paging: newest first; `since_us` 0 means all. `max_bytes` (0:
 *  none) stops a page early once its bodies hold that many bytes (at least
 *  one record is always returned). */
typedef struct vl_page {
    int count;
    int offset;
    int64_t since_us;
    size_t max_bytes;
} vl_page_t;

/* ------------------------------------------------------------------------
 * Reading (any thread; one connection per thread)
 * ---------------------------------------------------------------------- */

/** Reads the current version (version 0) or a given version. NOT_FOUND
 *  when unknown or outside the scope; a deleted current version is
 *  returned with deleted=1. */
int vl_store_read(vl_store_t *store, vl_scope_t scope, const char *type, const char *id,
                  int64_t version, vl_record_t *out, vl_store_err_t *err) VL_WARN_UNUSED;
/** History, newest first: of one resource (id non-NULL; NOT_FOUND when it
 *  has no visible version at all) or of a type. */
int vl_store_history(vl_store_t *store, vl_scope_t scope, const char *type, const char *id,
                     const vl_page_t *page, vl_records_t *out, vl_store_err_t *err) VL_WARN_UNUSED;
/** `with_total` of vl_store_search: no count, an exact count, or an exact
 *  count up to VL_TOTAL_BOUND (beyond it the total is unknown: -1). */
enum { VL_TOTAL_NONE = 0, VL_TOTAL_ACCURATE = 1, VL_TOTAL_BOUNDED = 2 };
#define VL_TOTAL_BOUND 10000

/** Runs a query over current, non-deleted, visible resources; with
 *  `with_total` also counts the matches into out->total (-1: not counted
 *  or beyond the bound). `max_bytes` as in vl_page_t. */
int vl_store_search(vl_store_t *store, vl_scope_t scope, const vl_query_t *q, int with_total,
                    size_t max_bytes, vl_records_t *out, vl_store_err_t *err) VL_WARN_UNUSED;

/** The plan of vl_store_search for this query: SQLite's EXPLAIN QUERY PLAN
 *  of each statement it would run ("count:" and "page:" sections), into
 *  `plan` (appended). For tests that pin the plans of hot searches, and
 *  for operators. */
int vl_store_explain(vl_store_t *store, vl_scope_t scope, const vl_query_t *q, int with_total,
                     vl_buf_t *plan, vl_store_err_t *err) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * Writing: units
 * ---------------------------------------------------------------------- */

/** Valid only inside a unit's apply callback, on the writer thread. */
typedef struct vl_store_txn vl_store_txn_t;
typedef struct vl_store_unit vl_store_unit_t;

/** Runs on the writer thread inside the unit's savepoint. Returns 0 to keep
 *  what it wrote, -1 to roll all of it back (the unit fails with
 *  VL_STORE_ABORTED; the callback reports its own reasons through `arg`).
 *  Must not block on anything but the store. */
typedef int (*vl_store_apply_fn)(vl_store_txn_t *txn, void *arg);
/** Completion: runs on the writer thread after the commit (or once the
 *  unit failed). Must not block; it may free the unit. */
typedef void (*vl_store_done_fn)(vl_store_unit_t *unit, void *arg);

struct vl_store_unit {
    /* in */
    vl_store_apply_fn apply;
    void *arg;
    vl_store_done_fn done;
    void *done_arg;
    /* out, valid in done(): 0 committed; -1 failed, nothing of it stored */
    int result;
    vl_store_err_t err;
    /* private to the store */
    int _op;
    const vl_ledger_key_t *_next_key;
    vl_store_unit_t *_next;
};

/** Queues a unit; `done` is called exactly once, from the writer thread.
 *  Returns -1 (UNAVAILABLE) without calling done if the store is closing. */
int vl_store_submit(vl_store_t *store, vl_store_unit_t *unit, vl_store_err_t *err) VL_WARN_UNUSED;
/** Queues a unit and waits for it (its `done` is replaced); returns
 *  unit->result. */
int vl_store_run(vl_store_t *store, vl_store_unit_t *unit);

/** The current state of a resource as the transaction sees it. */
typedef struct vl_store_head {
    int exists;
    int64_t version; /* current version (0 if none) */
    int deleted;
    int64_t last_updated_us;
} vl_store_head_t;

/** One version to write. */
typedef struct vl_store_put {
    const char *type;
    const char *id;     /* [A-Za-z0-9.-]{1,64}, not "." or ".." */
    int64_t version;    /* must be head.version + 1 */
    vl_method_t method; /* VL_METHOD_DELETE writes a delete (no body, no rows) */
    const char *body;   /* the exact bytes to store and serve */
    size_t body_len;
    const vl_index_t *index; /* rows and compartments of this version (not for a delete) */
    /* further ledger entries of this version, appended right after its own
     * in this order, with the same ref and commitment (the fhir module asks
     * for consent.grant / consent.revoke; docs/ledger.md 2.1) */
    const vl_entry_kind_t *also;
    size_t n_also;
    /* the version records a disclosure (an AuditEvent): its own entry is
     * access.disclose instead of create (a first version only) */
    int disclose;
} vl_store_put_t;

/** What a put wrote: its version's anchor in the ledger. */
typedef struct vl_store_receipt {
    int64_t version;
    int64_t time_us;
    uint64_t ledger_index;
    unsigned char ledger_hash[VL_HASH_LEN];
} vl_store_receipt_t;

/** The time every version of this batch is written at (lastUpdated). */
int64_t vl_store_txn_time(const vl_store_txn_t *txn);
int vl_store_txn_head(vl_store_txn_t *txn, const char *type, const char *id, vl_store_head_t *out,
                      vl_store_err_t *err) VL_WARN_UNUSED;
int vl_store_txn_read(vl_store_txn_t *txn, vl_scope_t scope, const char *type, const char *id,
                      int64_t version, vl_record_t *out, vl_store_err_t *err) VL_WARN_UNUSED;
int vl_store_txn_search(vl_store_txn_t *txn, vl_scope_t scope, const vl_query_t *q, int with_total,
                        size_t max_bytes, vl_records_t *out, vl_store_err_t *err) VL_WARN_UNUSED;
int vl_store_txn_history(vl_store_txn_t *txn, vl_scope_t scope, const char *type, const char *id,
                         const vl_page_t *page, vl_records_t *out,
                         vl_store_err_t *err) VL_WARN_UNUSED;
/** Writes a version with its index rows, compartments and ledger entry.
 *  CONFLICT when p->version is not the next version (nothing written).
 *  A put that fails after it began writing rows makes its whole unit roll
 *  back, whatever the apply callback returns. */
int vl_store_txn_put(vl_store_txn_t *txn, const vl_store_put_t *p, vl_store_receipt_t *out,
                     vl_store_err_t *err) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * The ledger (see ledger.h for the formats). Reads need VL_SCOPE_LEDGER.
 * ---------------------------------------------------------------------- */

/** Committed ledger entries (the tree size). */
int vl_store_ledger_size(vl_store_t *store, vl_scope_t scope, uint64_t *size,
                         vl_store_err_t *err) VL_WARN_UNUSED;
/** Calls `fn` for entries [start, end) in order with their lines; and for
 *  each stored checkpoint whose size is in (start, end] right after the
 *  entry that completes it (line NULL, `note` set). Stops early when fn
 *  returns non-zero (that value is returned). Constant memory. */
typedef int (*vl_store_ledger_fn)(void *ctx, uint64_t index, const char *line, size_t line_len,
                                  const char *note, size_t note_len);
int vl_store_ledger_scan(vl_store_t *store, vl_scope_t scope, uint64_t start, uint64_t end,
                         vl_store_ledger_fn fn, void *ctx, vl_store_err_t *err);
/** The latest checkpoint (malloc'd note, caller frees) and its size. With
 *  `fresh`, first has the writer sign one covering every committed entry.
 *  NOT_FOUND when none exists. */
int vl_store_ledger_checkpoint(vl_store_t *store, vl_scope_t scope, int fresh, char **note,
                               uint64_t *size, vl_store_err_t *err) VL_WARN_UNUSED;
/** RFC 9162 inclusion proof of entry `index` in the tree of `size`
 *  entries, and consistency proof between sizes `first` and `second`. */
int vl_store_ledger_inclusion(vl_store_t *store, vl_scope_t scope, uint64_t index, uint64_t size,
                              unsigned char proof[][VL_HASH_LEN], size_t *n,
                              vl_store_err_t *err) VL_WARN_UNUSED;
int vl_store_ledger_consistency(vl_store_t *store, vl_scope_t scope, uint64_t first,
                                uint64_t second, unsigned char proof[][VL_HASH_LEN], size_t *n,
                                vl_store_err_t *err) VL_WARN_UNUSED;
/** A stored tree node: level 0 an entry's hash, level >= 1 a perfect
 *  subtree's (for checks such as `vitalog verify --data`). -1 if missing. */
int vl_store_ledger_node(vl_store_t *store, vl_scope_t scope, int level, uint64_t index,
                         unsigned char out[VL_HASH_LEN]);
/** The ledger entry index, salt and stored bytes of a record version;
 *  needs the version to be visible in the scope. */
int vl_store_ledger_record(vl_store_t *store, vl_scope_t scope, const char *type, const char *id,
                           int64_t version, uint64_t *index, unsigned char salt[32], char **bytes,
                           size_t *len, vl_store_err_t *err) VL_WARN_UNUSED;
/** Calls `fn` for each key-rotation entry in order: its index and the
 *  verifier key it introduces. */
typedef int (*vl_store_rotation_fn)(void *ctx, uint64_t index, const char *vkey);
int vl_store_ledger_rotations(vl_store_t *store, vl_scope_t scope, vl_store_rotation_fn fn,
                              void *ctx, vl_store_err_t *err);
/** Calls `fn` for every stored record version in ledger order with its
 *  ref ("Type/id/_history/v"), salt and bytes (empty for a delete); versions
 *  without a ledger entry (never legitimate once migration 002 ran) come
 *  last, with index UINT64_MAX. Needs VL_SCOPE_RECORDS. */
typedef int (*vl_store_record_fn)(void *ctx, uint64_t index, const char *ref,
                                  const unsigned char salt[32], const char *bytes, size_t len);
int vl_store_records_scan(vl_store_t *store, vl_scope_t scope, vl_store_record_fn fn, void *ctx,
                          vl_store_err_t *err);
/** Appends a key-rotation entry (signed by the current key) and makes
 *  `next` the signing key; the rotation is committed before it returns. */
int vl_store_ledger_rotate(vl_store_t *store, const vl_ledger_key_t *next, vl_store_err_t *err);

/* ------------------------------------------------------------------------
 * Bearer tokens (auth decides; the store keeps rows). Token writes are
 * units, so the server and `vitalog token` on the same data directory
 * (another process) serialize like any writes; no ledger entry.
 * ---------------------------------------------------------------------- */

#define VL_TOKEN_HASH_LEN 32

typedef struct vl_token_row {
    char id[33];
    unsigned char hash[VL_TOKEN_HASH_LEN]; /* keyed hash of the secret token */
    char role[16];
    char subject[128];
    char organization[128]; /* "" when none */
    char label[128];
    int64_t created_us;
    int64_t expires_us; /* 0: never */
    int64_t revoked_us; /* 0: not revoked */
} vl_token_row_t;

/** The token with this hash; NOT_FOUND when none. */
int vl_store_token_find(vl_store_t *store, const unsigned char hash[VL_TOKEN_HASH_LEN],
                        vl_token_row_t *out, vl_store_err_t *err) VL_WARN_UNUSED;
/** Calls fn for every token, oldest first; stops when fn returns non-zero
 *  (that value is returned). The hash is not filled. */
typedef int (*vl_store_token_fn)(void *ctx, const vl_token_row_t *t);
int vl_store_token_list(vl_store_t *store, vl_store_token_fn fn, void *ctx, vl_store_err_t *err);
/** Inside a unit: adds a token (CONFLICT if the id or hash exists). */
int vl_store_txn_token_add(vl_store_txn_t *txn, const vl_token_row_t *t,
                           vl_store_err_t *err) VL_WARN_UNUSED;
/** Inside a unit: marks a token revoked at `time_us` (kept if already
 *  revoked); NOT_FOUND when no token has this id. */
int vl_store_txn_token_revoke(vl_store_txn_t *txn, const char *id, int64_t time_us,
                              vl_store_err_t *err) VL_WARN_UNUSED;
/** Inside a unit: how many tokens exist (revoked ones included). */
int vl_store_txn_token_count(vl_store_txn_t *txn, int64_t *count,
                             vl_store_err_t *err) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * Migrations the fhir module computes: consent facets of versions written
 * before migration 005, search index rows of current versions written
 * before migration 007 (storage v2)
 * ---------------------------------------------------------------------- */

/** Computes the index of a stored version (the fhir module's index of its
 *  body) into `ix` (initialized, freed by the caller). 0, or -1 to stop. */
typedef int (*vl_store_facets_fn)(void *ctx, const char *type, const char *body, size_t len,
                                  vl_index_t *ix);
/** Progress: `done` of `total` versions so far. */
typedef void (*vl_store_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/** Computes and stores what pending versions lack (facets, then index
 *  rows), in units of at most 512 versions, each committed with the
 *  removal of its versions from the pending lists: interrupted, it goes on
 *  where it stopped at the next call. Run once at start-up, before
 *  serving. `progress` (may be NULL) is called after each unit; *done (may
 *  be NULL) receives how many versions were done. */
int vl_store_backfill(vl_store_t *store, vl_store_facets_fn fn, void *ctx,
                      vl_store_progress_fn progress, void *progress_ctx, size_t *done,
                      vl_store_err_t *err);
static inline int vl_store_backfill_facets(vl_store_t *store, vl_store_facets_fn fn, void *ctx,
                                           size_t *done, vl_store_err_t *err)
{
    return vl_store_backfill(store, fn, ctx, NULL, NULL, done, err);
}

/* ------------------------------------------------------------------------
 * Watching a type: a cheap "did anything of this type change" for caches
 * (auth's Consent cache). Its generation moves after every commit that
 * wrote a version of the type, before the writes are acknowledged, so a
 * request that starts after an acknowledged write sees the new generation.
 * ---------------------------------------------------------------------- */

#define VL_STORE_WATCH_MAX 8

/** Watches `type` (call before serving). Returns its slot, or -1. */
int vl_store_watch(vl_store_t *store, const char *type);
/** The generation of a watched slot. */
uint64_t vl_store_watch_gen(vl_store_t *store, int slot);

/** Counters for /metrics. */
typedef struct vl_store_stats {
    uint64_t commits;       /* transactions committed */
    uint64_t units;         /* units completed (ok or failed) */
    uint64_t unit_failures; /* units that failed */
    uint64_t versions;      /* record versions committed */
    uint64_t queue_depth;   /* units waiting right now */
} vl_store_stats_t;

void vl_store_stats(vl_store_t *store, vl_store_stats_t *out);

/* ------------------------------------------------------------------------
 * Patient compartment pages (Patient/{id}/$everything; sqlite_compartment.c)
 *
 * The members of Patient/<p>'s compartment are the versions the fhir
 * module put in it (vl_index_t.patients, kept per version). A page lists
 * members that are current AS OF A SNAPSHOT S (a seq of the store's
 * version sequence): version v of a resource counts when v.seq <= S and
 * the resource has no later version with seq <= S; deleted ones never.
 * Writes after S change no page of S, so a client paging with one S sees
 * each member once.
 *
 * Order: the patient's own Patient resource first (key
 * VL_COMPARTMENT_SELF_KEY), then every other member by its version's seq
 * (its key, >= 1). Pages are keysets on that key, never offsets.
 * ---------------------------------------------------------------------- */

/** The key of the patient's own Patient resource: before every seq. */
#define VL_COMPARTMENT_SELF_KEY 0
/** A forward page from the start (every key is greater). */
#define VL_COMPARTMENT_START (-1)

typedef struct vl_compartment_query {
    const char *patient; /* the Patient's id (not a reference) */
    size_t n_types;      /* only members of these types (0: every type) */
    const char *const *types;
    int64_t since_us; /* only versions with lastUpdated >= it (0: any) */
    /* only versions whose facet time (vl_index_add_time: the care time
     * an Observation's effective[x] gives) overlaps [lo, hi); versions
     * without one are kept */
    int has_period;
    int64_t lo, hi;
    int64_t snapshot; /* S; 0: the highest committed seq now (then returned) */
    int64_t key;      /* forward: members with key > it; backward: with key < it */
    int backward;     /* the `count` members nearest below `key` (returned ascending) */
    int count;        /* most records, >= 1 */
    size_t max_bytes; /* 0: none; else stop once the bodies hold this many bytes
                         (at least one record is returned) */
    int with_total;   /* VL_TOTAL_*: count every member of the query (any key) */
} vl_compartment_query_t;

typedef struct vl_compartment_page {
    vl_records_t records;        /* ascending key order; records.total: the count
                                    asked for by with_total, else -1 */
    int64_t snapshot;            /* the snapshot S the page was read in */
    int64_t first_key, last_key; /* keys of the first and last record (-1: no record) */
    int more;                    /* members exist beyond the page in the direction read
                                    (after last_key forward, before first_key backward) */
} vl_compartment_page_t;

/** One page of the compartment of q->patient as of q->snapshot, visible
 *  in `scope` (on a reader: the committed state). INVALID for a bad id,
 *  type or count. `out` is filled (free it with vl_compartment_page_free)
 *  on success and empty on failure. */
int vl_store_compartment_page(vl_store_t *store, vl_scope_t scope, const vl_compartment_query_t *q,
                              vl_compartment_page_t *out, vl_store_err_t *err) VL_WARN_UNUSED;
void vl_compartment_page_free(vl_compartment_page_t *page);

/* ------------------------------------------------------------------------
 * Bulk export: snapshots (src/store/sqlite_export.c; fhir/export.c)
 *
 * A snapshot is the store as it was when one version committed: its
 * sequence number S (vl_store_export_seq), the position of that version
 * in commit order. The version of a resource current as of S is its
 * latest version written at or before S; the resources of a snapshot are
 * those whose version as of S is not a delete. Writes after S never change
 * what a snapshot holds, so a snapshot can be read in many pages, minutes
 * apart, and the pages add up to one consistent state. Reads take the
 * caller's scope like any read, applied to the version as of S.
 * ---------------------------------------------------------------------- */

/** What an export read selects of a snapshot. */
typedef struct vl_export_query {
    int64_t seq;         /* S, from vl_store_export_seq */
    int64_t since_us;    /* only versions last updated at or after this time (0: any) */
    int compartments;    /* only versions in a patient compartment: `patient`'s, or any
                            patient's when `patient` is NULL */
    const char *patient; /* a Patient id (borrowed), or NULL */
} vl_export_query_t;

/** A snapshot of the committed state: *seq receives S, the highest
 *  committed version sequence number (0: no version yet), and *time_us
 *  the time that version was written at (the lastUpdated of its batch; 0
 *  when none). Every version committed later has a lastUpdated at or
 *  after *time_us (the writer's clock permitting). */
int vl_store_export_seq(vl_store_t *store, int64_t *seq, int64_t *time_us,
                        vl_store_err_t *err) VL_WARN_UNUSED;
/** Adds to counts[i], for each of the `n_types` types, the resources of
 *  that type in the snapshot whose version as of S has a sequence number
 *  in (from, to] and is visible in `scope` (one pass for all the types).
 *  Counting (0, S] in ranges lets a caller report progress and stop
 *  between them. */
int vl_store_export_count(vl_store_t *store, vl_scope_t scope, const vl_export_query_t *q,
                          const char *const *types, size_t n_types, int64_t from, int64_t to,
                          int64_t *counts, vl_store_err_t *err) VL_WARN_UNUSED;
/** A page of the snapshot's resources of `type`, in sequence order, after
 *  the version `after` (0: from the start): at most `max` records
 *  (appended to `out`), fewer once their bodies hold `max_bytes` (0: no
 *  limit; at least one record). *last receives the sequence number of the
 *  last record read (`after` when none: the end). Pages by key, never by
 *  offset: each costs what it reads. */
int vl_store_export_page(vl_store_t *store, vl_scope_t scope, const vl_export_query_t *q,
                         const char *type, int64_t after, size_t max, size_t max_bytes,
                         vl_records_t *out, int64_t *last, vl_store_err_t *err) VL_WARN_UNUSED;
/** Calls `fn` once for each patient (an id) in whose compartment some
 *  resource of the snapshot's `type` lies, as vl_store_export_page reads
 *  them in the same scope: the patients whose data those pages hold.
 *  Stops when fn returns non-zero (that value is returned). */
typedef int (*vl_store_patient_fn)(void *ctx, const char *patient);
int vl_store_export_patients(vl_store_t *store, vl_scope_t scope, const vl_export_query_t *q,
                             const char *type, vl_store_patient_fn fn, void *ctx,
                             vl_store_err_t *err);

/* ------------------------------------------------------------------------
 * Clinical operations: $lastn and $stats (src/store/sqlite_stats.c)
 *
 * Both read a patient's series (VL_INDEX_SERIES rows: one per coding of
 * the code parameter of a version with a Patient subject, keyed by the
 * end of its time) and take the scope like any read: a version outside it
 * counts as if it did not exist.
 * ---------------------------------------------------------------------- */

/** The most records one group of vl_store_lastn() gives. */
#define VL_LASTN_MAX 100
/** The most groups one vl_store_lastn() reads, and the most records
 *  (groups x max) it may give: beyond either it is TOO_COSTLY. */
#define VL_LASTN_GROUPS_MAX 1000
#define VL_LASTN_RECORDS_MAX 10000

/**
 * $lastn: the `max` (1..VL_LASTN_MAX) most recent current versions of each
 * group, into `out` (out->total: how many). A group is (patient, system,
 * code): the distinct series rows of q->series.code_param, of
 * q->series.patient ("Patient/<id>"), or when it is NULL of every patient
 * the scope names (its patients, its permit rules' patients), or of every
 * patient under VL_SCOPE_ALL. q->series.code (with q->series.system; NULL
 * any system), when set, and every condition on code_param without a
 * modifier (its values OR'd) keep only the groups they match. A version
 * with several codings is a member of each of their groups.
 *
 * Each group is q's search (its other conditions, applied as
 * vl_store_search does: date_param conditions on the series' time) over
 * the group's series, newest first: by the end of its date_param time
 * (undated last), then by version (the later written first: later
 * lastUpdated, then the later entry of one transaction). The groups come in (patient, code, system)
 * order, and a version among the latest of several groups only in the first of them. q's count,
 * offset and sort are not read. INVALID without q->series.code_param and date_param or with max
 * outside 1..VL_LASTN_MAX; TOO_COSTLY beyond VL_LASTN_GROUPS_MAX groups or VL_LASTN_RECORDS_MAX.
 */
int vl_store_lastn(vl_store_t *store, vl_scope_t scope, const vl_query_t *q, int max,
                   vl_records_t *out, vl_store_err_t *err) VL_WARN_UNUSED;

/** A rank of vl_stats_query_t: the quantile num/den (0 <= num <= den),
 *  interpolated linearly between the order statistics around it. */
typedef struct vl_stats_rank {
    int num, den;
} vl_stats_rank_t;

#define VL_STATS_RANKS_MAX 16
enum {
    VL_STATS_MOMENTS = 1 << 0, /* m2, m3, m4 (a second pass over the values) */
    VL_STATS_SOURCES = 1 << 1, /* the records the values come from */
};

/**
 * What $stats computes over: a patient's current versions whose series
 * row of (system, code) lies in the period [lo, hi) (its time starts at or
 * after lo and ends at or before hi), and of those, the numeric values.
 * Values come from two kinds of index rows, both in the canonical unit of
 * their dimension when the fhir module gave them one:
 *   own        the version's quantity rows of value_param (the canonical
 *              row when there is one, else the row as sent);
 *   component  the version's composite rows of component_param with a
 *              component code.
 */
typedef struct vl_stats_query {
    const char *type;            /* the resource type ("Observation") */
    const char *patient;         /* "Patient/<id>" */
    const char *system, *code;   /* the code (system: its URI, "" for none) */
    const char *code_param;      /* the series' parameter ("code") */
    const char *value_param;     /* quantity rows of the own value ("value-quantity") */
    const char *component_param; /* composite rows of components
                                    ("component-code-value-quantity") */
    /* versions with this token of status_param are left out (NULL: none) */
    const char *status_param, *exclude_status;
    int64_t lo, hi; /* the period; open ends INT64_MIN / INT64_MAX */
    unsigned what;  /* VL_STATS_* */
    size_t n_ranks; /* at most VL_STATS_RANKS_MAX */
    const vl_stats_rank_t *ranks;
    size_t max_sources; /* VL_STATS_SOURCES: at most this many records per result */
} vl_stats_query_t;

/** One set of values and what was computed over it. */
typedef struct vl_stats {
    int component;       /* 0: the code's own values; 1: a component's */
    char *system, *code; /* the code (own) or the component's code (malloc'd;
                            system "" for none) */
    int64_t total;       /* versions counted, with a value or not */
    int64_t n;           /* numeric values */
    int mixed;           /* the values are in more than one unit: nothing below
                            is computed */
    char *unit;          /* the values' unit (malloc'd; NULL when n is 0): a UCUM
                            code, or "|" + the code of a unit of no UCUM system */
    char *sent_unit;     /* the UCUM code every value was sent in when they all
                            were sent in one (own values only), else NULL */
    double sum, min, max, mean;
    double m2, m3, m4;    /* VL_STATS_MOMENTS: the sums of (x - mean)^k */
    double *ranks;        /* the n_ranks quantiles (malloc'd; NULL when n is 0) */
    vl_records_t sources; /* VL_STATS_SOURCES: the versions that gave a value,
                             by time, then version, at most max_sources */
} vl_stats_t;

typedef struct vl_stats_list {
    vl_stats_t *items;
    size_t n, cap;
} vl_stats_list_t;

void vl_stats_list_free(vl_stats_list_t *list);

/**
 * $stats of one code (q->system, q->code) into `out`, in this order:
 *   1. the code's own values, with the values of the components coded so
 *      of the patient's other series in the period (a component code asked
 *      directly, 8480-6 inside 85354-9 panels); left out when 2 gives
 *      something and this has no value (a panel: the code has no value of
 *      its own);
 *   2. per component code (code, then system order) of the code's
 *      versions in the period: that component's values.
 * `total` counts the versions of the code's series in the period (1 and
 * 2), plus for 1 those of other series that gave a component value.
 * INVALID for a bad query (no patient, code or parameters, too many ranks,
 * a rank outside [0, 1], lo >= hi).
 */
int vl_store_series_stats(vl_store_t *store, vl_scope_t scope, const vl_stats_query_t *q,
                          vl_stats_list_t *out, vl_store_err_t *err) VL_WARN_UNUSED;

#endif
