/*
 * vitalog — store: the only module that speaks SQL.
 *
 * Resources live in SQLite (WAL, synchronous=FULL). Every version of every
 * resource is kept; search index rows describe the current version only.
 *
 * Writes go through one writer thread with group commit: callers submit a
 * vl_store_write_t, the writer takes every queued write, runs them in one
 * transaction (each inside its own SAVEPOINT, so one failing write does not
 * abort its neighbours), commits once (one fsync) and only then completes
 * each write. Reads use one SQLite connection per calling thread.
 *
 * The ledger (a later module) will append its entry from inside the same
 * per-write savepoint of the writer's transaction (writer.c, apply()), so a
 * record can never exist without its entry.
 */
#ifndef VITALOG_STORE_H
#define VITALOG_STORE_H

#include <pthread.h>
#include <stdint.h>

#include "vitalog/ledger.h"
#include "vitalog/util.h"

typedef struct vl_store vl_store_t;

typedef struct vl_store_options {
    int batch_max; /* most writes in one transaction; 0 means 256 */
    /* The ledger: every write appends an entry in its own savepoint; the
     * writer signs a checkpoint at most `checkpoint_ms` after entries
     * arrive (0: 1000). `key` (with its secret) signs checkpoints and is
     * borrowed for the store's lifetime; NULL opens the store read-only
     * for the ledger (no writes allowed: 503). */
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

/** Opens (creating if needed) DIR/vitalog.db, applies pending migrations
 *  and starts the writer thread. */
int vl_store_open(const char *dir, const vl_store_options_t *opts, vl_store_t **out,
                  vl_error_t *err) VL_WARN_UNUSED;
/** Whether DIR/vitalog.db exists and holds at least one ledger entry
 *  (read-only; migrates nothing). 1 yes, 0 no, -1 error. */
int vl_store_has_ledger(const char *dir, vl_error_t *err);
/** Completes queued writes, stops the writer, closes every connection. */
void vl_store_close(vl_store_t *store);
/** 0 when the store can serve (writer running, database readable). */
int vl_store_ready(vl_store_t *store);

/* ------------------------------------------------------------------------
 * Search index rows: extracted by the fhir module from a resource, written
 * by the store in the same transaction as the version they describe.
 * ---------------------------------------------------------------------- */

typedef enum {
    VL_INDEX_TOKEN,     /* system + code (system NULL: none given) */
    VL_INDEX_STRING,    /* text: value as given, normalized lowercased/unaccented form */
    VL_INDEX_REFERENCE, /* text: "Type/id" or absolute URL */
    VL_INDEX_DATE,      /* lo..hi: half-open range in microseconds */
    VL_INDEX_QUANTITY,  /* number + system + code */
} vl_index_kind_t;

typedef struct vl_index_row {
    const char *param; /* search parameter name, e.g. "code" (static) */
    vl_index_kind_t kind;
    char *system; /* token/quantity system, or NULL (owned) */
    char *text;   /* token code / string / reference / quantity code (owned) */
    char *norm;   /* normalized string for VL_INDEX_STRING (owned) */
    double number;
    int64_t lo, hi;
} vl_index_row_t;

typedef struct vl_index {
    vl_index_row_t *rows;
    size_t n, cap;
} vl_index_t;

/** The normalized form of a string for matching: lowercase ASCII, Latin-1
 *  and Latin Extended-A letters folded to their base letters, combining
 *  marks dropped (see index_rows.c). Returns malloc'd text (caller frees). */
char *vl_index_normalize(const char *text);

void vl_index_init(vl_index_t *ix);
void vl_index_free(vl_index_t *ix);
/** Appends a row; strings are copied. Returns 0 or -1 (out of memory). */
int vl_index_add(vl_index_t *ix, const char *param, vl_index_kind_t kind, const char *system,
                 const char *text, double number, int64_t lo, int64_t hi);

/* ------------------------------------------------------------------------
 * Queries: a conjunction of conditions, each a disjunction of values.
 * ---------------------------------------------------------------------- */

typedef enum { VL_CMP_EQ, VL_CMP_NE, VL_CMP_LT, VL_CMP_LE, VL_CMP_GT, VL_CMP_GE } vl_cmp_t;

typedef enum {
    VL_MATCH_DEFAULT, /* token: code (+system); string: starts-with on norm; reference: equal */
    VL_MATCH_EXACT,   /* string: exact, case-sensitive */
    VL_MATCH_CONTAINS /* string: substring of norm */
} vl_match_t;

typedef struct vl_query_value {
    vl_cmp_t cmp;       /* dates and quantities */
    const char *system; /* token: NULL any system, "" no system */
    const char *text;   /* token code (NULL: any code of system) / string / reference */
    double number;
    int64_t lo, hi; /* dates: the range the search value denotes */
} vl_query_value_t;

typedef struct vl_query_cond {
    const char *param;
    vl_index_kind_t kind;
    vl_match_t match;
    int missing; /* -1 unused; 1 :missing=true; 0 :missing=false */
    size_t n;    /* values OR'd together */
    vl_query_value_t *values;
} vl_query_cond_t;

typedef struct vl_query {
    const char *type; /* resource type */
    const char *id;   /* _id, or NULL */
    size_t n;         /* conditions AND'd together */
    vl_query_cond_t *conds;
    const char *sort_param; /* a VL_INDEX_DATE param or "_lastUpdated"; NULL: creation order */
    int sort_desc;
    int count;  /* page size */
    int offset; /* rows to skip */
} vl_query_t;

/* ------------------------------------------------------------------------
 * Reading
 * ---------------------------------------------------------------------- */

/** One stored version. `body` is the exact JSON served, with id and meta. */
typedef struct vl_record {
    char type[64];
    char id[65];
    int64_t version;
    int deleted;
    int64_t last_updated_us;
    char method[8]; /* POST, PUT, DELETE */
    char *body;     /* malloc'd, NUL-terminated; NULL for a delete */
    size_t body_len;
} vl_record_t;

void vl_record_free(vl_record_t *rec);

/** A list of records; `total` is the count of all matches (searches). */
typedef struct vl_records {
    vl_record_t *items;
    size_t n, cap;
    int64_t total;
} vl_records_t;

void vl_records_free(vl_records_t *list);

/** Reads the current version (version 0) or a given version. 404 when the
 *  resource or version is unknown; a deleted current version is returned
 *  with deleted=1 (the caller answers 410). */
int vl_store_read(vl_store_t *store, const char *type, const char *id, int64_t version,
                  vl_record_t *out, vl_error_t *err) VL_WARN_UNUSED;
/** History newest first: of one resource (id non-NULL) or of a type.
 *  `since_us` 0 means all; `count`/`offset` page it. */
int vl_store_history(vl_store_t *store, const char *type, const char *id, int64_t since_us,
                     int count, int offset, vl_records_t *out, vl_error_t *err) VL_WARN_UNUSED;
/** Runs a query over current, non-deleted resources. */
int vl_store_search(vl_store_t *store, const vl_query_t *q, vl_records_t *out,
                    vl_error_t *err) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

typedef enum {
    VL_WRITE_CREATE,
    VL_WRITE_UPDATE,
    VL_WRITE_DELETE,
    VL_WRITE_CHECKPOINT, /* no record: sign a checkpoint covering every entry */
    VL_WRITE_ROTATE,     /* no record: append a key rotation to `next_key` */
} vl_write_op_t;

typedef struct vl_store_write vl_store_write_t;
/** Completion callback; runs on the writer thread after commit (or after
 *  the write failed). It must not block. */
typedef void (*vl_store_done_fn)(vl_store_write_t *w, void *arg);

struct vl_store_write {
    /* in */
    vl_write_op_t op;
    char type[64];
    char id[65];      /* CREATE: empty = assign; UPDATE/DELETE: required */
    json_t *resource; /* CREATE/UPDATE: the resource; the writer sets id and
                         meta.versionId/lastUpdated on it (reference owned by caller) */
    vl_index_t index; /* rows for this version (owned by caller) */
    int64_t if_match; /* 0: none; else the version the client saw (412 otherwise) */
    const vl_query_t *if_none_exist; /* CREATE: conditional create, or NULL */
    const vl_ledger_key_t *next_key; /* ROTATE: the new signing key (borrowed) */
    vl_store_done_fn done;
    void *done_arg;
    /* out, valid once done() ran */
    int result; /* 0 ok, -1 failed (see err) */
    vl_error_t err;
    int created;        /* 1: a new resource (POST or PUT-create) */
    int noop;           /* 1: conditional create matched an existing resource; nothing written */
    int64_t version;    /* version written (or the existing one for noop) */
    uint64_t ledger_index;                     /* the write's ledger entry (not for noop) */
    unsigned char ledger_hash[VL_HASH_LEN];    /* its entry hash */
    int64_t last_updated_us;
    char *body;         /* malloc'd: the stored JSON (CREATE/UPDATE, or noop); caller frees */
    size_t body_len;
    /* private to the store */
    vl_store_write_t *_next;
    char *_tail;      /* pre-rendered members after meta: ',"a":1,...' or "" */
    char *_meta_rest; /* pre-rendered meta members other than versionId/lastUpdated */
};

/** Queues a write; `done` is called exactly once, from the writer thread.
 *  Returns -1 (503) if the store is shutting down, without calling done. */
int vl_store_submit(vl_store_t *store, vl_store_write_t *w, vl_error_t *err) VL_WARN_UNUSED;
/** Queues a write and waits for its completion; returns w->result. */
int vl_store_write_sync(vl_store_t *store, vl_store_write_t *w);
/** Releases what a completed write owns (body, err, index); not `resource`. */
void vl_store_write_release(vl_store_write_t *w);

/* ------------------------------------------------------------------------
 * Ledger reads (see ledger.h for the formats)
 * ---------------------------------------------------------------------- */

/** Committed ledger entries (the tree size). */
int vl_store_ledger_size(vl_store_t *store, uint64_t *size, vl_error_t *err) VL_WARN_UNUSED;
/** Calls `fn` for entries [start, end) in order with their lines; and for
 *  each stored checkpoint whose size is in (start, end] right after the
 *  entry that completes it (line NULL, `note` set). Stops early when fn
 *  returns non-zero (that value is returned). Constant memory. */
typedef int (*vl_store_ledger_fn)(void *ctx, uint64_t index, const char *line, size_t line_len,
                                  const char *note, size_t note_len);
int vl_store_ledger_scan(vl_store_t *store, uint64_t start, uint64_t end, vl_store_ledger_fn fn,
                         void *ctx, vl_error_t *err);
/** The latest checkpoint (malloc'd note, caller frees) and its size. With
 *  `fresh`, first has the writer sign one covering every committed entry. */
int vl_store_ledger_checkpoint(vl_store_t *store, int fresh, char **note, uint64_t *size,
                               vl_error_t *err) VL_WARN_UNUSED;
/** Node source for vl_ledger_*_proof() on the calling thread's reader:
 *  pass vl_store_ledger_node as fn and the store as ctx. */
int vl_store_ledger_node(void *store, int level, uint64_t index, unsigned char out[VL_HASH_LEN]);
/** The ledger entry index, salt and stored bytes of a record version. */
int vl_store_ledger_record(vl_store_t *store, const char *type, const char *id, int64_t version,
                           uint64_t *index, unsigned char salt[32], char **bytes, size_t *len,
                           vl_error_t *err) VL_WARN_UNUSED;
/** Calls `fn` for every stored record version in ledger order with its
 *  ref ("Type/id/_history/v"), salt and bytes (empty for a delete); versions
 *  without a ledger entry (never legitimate once migration 002 ran) come
 *  last, with index UINT64_MAX. */
typedef int (*vl_store_record_fn)(void *ctx, uint64_t index, const char *ref,
                                  const unsigned char salt[32], const char *bytes, size_t len);
int vl_store_records_scan(vl_store_t *store, vl_store_record_fn fn, void *ctx, vl_error_t *err);
/** Appends a key-rotation entry (signed by the current key) and makes
 *  `next` the signing key; the rotation is committed before it returns. */
int vl_store_ledger_rotate(vl_store_t *store, const vl_ledger_key_t *next, vl_error_t *err);

/** Counters for /metrics. */
typedef struct vl_store_stats {
    uint64_t commits;        /* transactions committed */
    uint64_t writes;         /* writes completed */
    uint64_t write_failures; /* writes that failed */
    uint64_t queue_depth;    /* writes waiting right now */
} vl_store_stats_t;

void vl_store_stats(vl_store_t *store, vl_store_stats_t *out);

#endif
