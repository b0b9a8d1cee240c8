/*
 * The store seam: what the backend-neutral core (core.c, ledger_state.c)
 * needs from a database. Private to the store module.
 *
 * A backend provides one table of operations (vl_backend_ops_t). The core
 * calls nothing else, and the backend never decides anything about
 * ordering, batching or the ledger's contents: it stores and finds rows.
 * SQLite implements it today (sqlite.c, sqlite_write.c, sqlite_read.c,
 * sqlite_query.c); a PostgreSQL backend would be new files with the same
 * table.
 *
 * CONNECTIONS
 *   - One writer connection, used only by the writer thread (and by open
 *     before the writer starts): transactions, savepoints, writes, and the
 *     reads a unit makes inside its transaction (they see its writes).
 *   - One reader connection per calling thread (reader()), seeing the last
 *     committed state.
 *   Read operations take the connection they run on.
 *
 * ERRORS: every operation returns 0 or -1 with `err` filled (kinds only).
 * An operation that fails may have aborted the writer's whole transaction;
 * in_transaction() tells the core, which then fails the whole batch.
 */
#ifndef VL_STORE_BACKEND_H
#define VL_STORE_BACKEND_H

#include "vitalog/store.h"

typedef struct vl_backend vl_backend_t;
typedef struct vl_bconn vl_bconn_t;

/** A resource's row as the writer sees it (`rid` is the backend's key). */
typedef struct vl_bhead {
    vl_store_head_t head;
    int64_t rid;
} vl_bhead_t;

/** A version written before the ledger existed (open-time anchoring). */
typedef struct vl_bunanchored {
    int64_t seq; /* the backend's key of the version */
    const char *type, *id;
    int64_t version;
    vl_method_t method;
    const char *body; /* NULL for a delete */
    size_t body_len;
    const unsigned char *salt; /* 32 bytes */
    int64_t time_us;
} vl_bunanchored_t;

typedef int (*vl_bentry_fn)(void *ctx, uint64_t index, const char *line, size_t len,
                            const unsigned char hash[VL_HASH_LEN]);
typedef int (*vl_bunanchored_fn)(void *ctx, const vl_bunanchored_t *v);

/** A backend's snapshot reads for Bulk export (store.h, "Bulk export:
 *  snapshots"), each on the connection it is given (a thread's reader);
 *  vl_backend_ops_t.export_reads points at its table. */
typedef struct vl_backend_export_ops {
    int (*seq)(vl_bconn_t *c, int64_t *seq, int64_t *time_us, vl_store_err_t *err);
    int (*count)(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *q,
                 const char *const *types, size_t n_types, int64_t from, int64_t to,
                 int64_t *counts, vl_store_err_t *err);
    int (*page)(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *q, const char *type,
                int64_t after, size_t max, size_t max_bytes, vl_records_t *out, int64_t *last,
                vl_store_err_t *err);
    int (*patients)(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *q, const char *type,
                    vl_store_patient_fn fn, void *ctx, vl_store_err_t *err);
} vl_backend_export_ops_t;

/** SQLite's (sqlite_export.c). */
extern const vl_backend_export_ops_t vl_backend_sqlite_export;

typedef struct vl_backend_ops {
    const char *name;

    /* lifetime */
    /** Whether DIR holds a database with a ledger entry (read-only peek). */
    int (*has_ledger)(const char *dir, vl_store_err_t *err);
    int (*open)(const char *dir, vl_backend_t **out, vl_store_err_t *err);
    void (*close)(vl_backend_t *b);
    /** 0 when a reader on the calling thread can read the schema. */
    int (*ready)(vl_backend_t *b);
    vl_bconn_t *(*writer)(vl_backend_t *b);
    vl_bconn_t *(*reader)(vl_backend_t *b, vl_store_err_t *err);

    /* the writer's transaction */
    int (*begin)(vl_backend_t *b, vl_store_err_t *err);
    int (*commit)(vl_backend_t *b, vl_store_err_t *err);
    void (*rollback)(vl_backend_t *b);
    int (*savepoint)(vl_backend_t *b, vl_store_err_t *err);
    /** Undoes everything since savepoint() and ends the savepoint. */
    int (*savepoint_rollback)(vl_backend_t *b, vl_store_err_t *err);
    /** Ends the savepoint, keeping what it wrote. */
    int (*savepoint_release)(vl_backend_t *b, vl_store_err_t *err);
    /** Whether the writer's transaction is still open (some failures abort it). */
    int (*in_transaction)(vl_backend_t *b);

    /* writes (writer thread, inside a savepoint) */
    int (*head)(vl_backend_t *b, const char *type, const char *id, vl_bhead_t *out,
                vl_store_err_t *err);
    /** The resource row, the version row (with salt and ledger index), and
     *  for a non-delete the version's index rows and compartments, which
     *  replace those of the previous version. */
    int (*write_version)(vl_backend_t *b, const vl_store_put_t *p, const vl_bhead_t *head,
                         int64_t time_us, const unsigned char salt[32], uint64_t ledger_index,
                         vl_store_err_t *err);
    int (*append_entry)(vl_backend_t *b, uint64_t index, const char *line, size_t len,
                        const unsigned char hash[VL_HASH_LEN], vl_store_err_t *err);
    int (*put_node)(vl_backend_t *b, int level, uint64_t index,
                    const unsigned char hash[VL_HASH_LEN], vl_store_err_t *err);
    int (*put_checkpoint)(vl_backend_t *b, uint64_t size, const char *note, size_t len,
                          vl_store_err_t *err);
    int (*put_rotation)(vl_backend_t *b, uint64_t index, const char *vkey, vl_store_err_t *err);
    /** Calls fn for every version without a ledger entry, oldest first. */
    int (*unanchored)(vl_backend_t *b, vl_bunanchored_fn fn, void *ctx, vl_store_err_t *err);
    int (*anchor)(vl_backend_t *b, int64_t seq, uint64_t index, vl_store_err_t *err);

    /* record reads */
    int (*read)(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id, int64_t version,
                vl_record_t *out, vl_store_err_t *err);
    int (*history)(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                   const vl_page_t *page, vl_records_t *out, vl_store_err_t *err);
    int (*search)(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int with_total,
                  size_t max_bytes, vl_records_t *out, vl_store_err_t *err);
    /** EXPLAIN QUERY PLAN of the statements search would run. */
    int (*explain)(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int with_total,
                   vl_buf_t *plan, vl_store_err_t *err);
    int (*records_scan)(vl_bconn_t *c, vl_store_record_fn fn, void *ctx, vl_store_err_t *err);

    /* ledger reads */
    int (*ledger_size)(vl_bconn_t *c, uint64_t *size, vl_store_err_t *err);
    /** Level 0: an entry's hash; level >= 1: a stored Merkle node. -1 if missing. */
    int (*ledger_node)(vl_bconn_t *c, int level, uint64_t index, unsigned char out[VL_HASH_LEN]);
    /** Entries from `start` on, in order, with their stored hashes. */
    int (*ledger_entries)(vl_bconn_t *c, uint64_t start, vl_bentry_fn fn, void *ctx,
                          vl_store_err_t *err);
    int (*ledger_scan)(vl_bconn_t *c, uint64_t start, uint64_t end, vl_store_ledger_fn fn,
                       void *ctx, vl_store_err_t *err);
    /** NOT_FOUND when there is none. */
    int (*ledger_checkpoint)(vl_bconn_t *c, char **note, uint64_t *size, vl_store_err_t *err);
    int (*ledger_record)(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                         int64_t version, uint64_t *index, unsigned char salt[32], char **bytes,
                         size_t *len, vl_store_err_t *err);
    int (*ledger_rotations)(vl_bconn_t *c, vl_store_rotation_fn fn, void *ctx, vl_store_err_t *err);

    /* consent facets of versions written before migration 005 (writer):
     * computes (fn) and stores the facets of up to `max` pending versions,
     * oldest first, and marks them done; *n how many were done */
    /** How many versions wait for facets or index rows. */
    int (*pending)(vl_backend_t *b, uint64_t *n, vl_store_err_t *err);
    int (*facets_backfill)(vl_backend_t *b, vl_store_facets_fn fn, void *ctx, size_t max, size_t *n,
                           vl_store_err_t *err);

    /* bearer tokens: reads on any connection, writes on the writer's */
    int (*token_find)(vl_bconn_t *c, const unsigned char hash[VL_TOKEN_HASH_LEN],
                      vl_token_row_t *out, vl_store_err_t *err);
    int (*token_list)(vl_bconn_t *c, vl_store_token_fn fn, void *ctx, vl_store_err_t *err);
    int (*token_add)(vl_backend_t *b, const vl_token_row_t *t, vl_store_err_t *err);
    /** NOT_FOUND when no row has this id. */
    int (*token_revoke)(vl_backend_t *b, const char *id, int64_t time_us, vl_store_err_t *err);

    /* patient compartment pages ($everything): one page of
     * vl_store_compartment_page() on a reader (it takes the snapshot,
     * when q->snapshot is 0, in the read transaction of the page) */
    int (*compartment_page)(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *q,
                            vl_compartment_page_t *out, vl_store_err_t *err);

    /* clinical operations (sqlite_stats.c), on a reader: $lastn
     * (vl_store_lastn) and $stats (vl_store_series_stats), arguments
     * checked by the core */
    int (*lastn)(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int max, vl_records_t *out,
                 vl_store_err_t *err);
    int (*series_stats)(vl_bconn_t *c, vl_scope_t scope, const vl_stats_query_t *q,
                        vl_stats_list_t *out, vl_store_err_t *err);

    /* Bulk export's snapshot reads (sqlite_export.c) */
    const vl_backend_export_ops_t *export_reads;
} vl_backend_ops_t;

/** The SQLite backend (DIR/vitalog.db). */
extern const vl_backend_ops_t vl_backend_sqlite;

#endif
