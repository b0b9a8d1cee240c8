/*
 * Private to the SQLite backend (sqlite*.c): connections and helpers.
 */
#ifndef VL_STORE_SQLITE_INTERNAL_H
#define VL_STORE_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "backend.h"

/* Cached statements of a connection (writer or reader). */
enum {
    ST_READ_CURRENT,
    ST_READ_VERSION,
    ST_READ_PATIENT_CURRENT,
    ST_READ_COMPARTMENTS_CURRENT,
    ST_READ_COMPARTMENTS_VERSION,
    ST_READ_PATIENT_VERSION,
    ST_LEDGER_LEAF,
    ST_LEDGER_NODE,
    ST_LOOKUP,
    ST_INSERT_RESOURCE,
    ST_UPDATE_RESOURCE,
    ST_INSERT_VERSION,
    ST_SUPERSEDE,
    ST_INSERT_TOKEN,
    ST_INSERT_STRING,
    ST_INSERT_REFERENCE,
    ST_INSERT_DATE,
    ST_INSERT_QUANTITY,
    ST_INSERT_COMPOSITE,
    ST_INSERT_SERIES,
    ST_INSERT_SORT,
    ST_SERIES_SPAN,
    ST_INSERT_PATIENT,
    ST_COPY_PATIENTS,
    ST_LEDGER_ENTRY,
    ST_LEDGER_PUT_NODE,
    ST_LEDGER_CHECKPOINT,
    ST_LEDGER_ROTATION,
    ST_INSERT_CODE,
    ST_INSERT_TIME,
    ST_COPY_CODES,
    ST_COPY_TIME,
    ST_TOKEN_FIND,
    ST_TOKEN_ADD,
    ST_TOKEN_REVOKE,
    ST_COUNT
};

/* Statements built per call (searches, scoped reads) are kept by their SQL
 * text: a caller asking the same (a clinic's reads under its Consents)
 * reuses the prepared statement instead of preparing it again. */
#define VL_SQLQ_CACHE 16

/* Interned names (sqlite_intern.c): "<type>.<param>" -> pid, URI -> sid. */
enum { VL_INTERN_PARAM, VL_INTERN_SYSTEM, VL_INTERN_KINDS };
typedef struct vl_intern {
    struct vl_intern_slot {
        char *key;
        int64_t id;
        int committed;
    } * slots;
    size_t n, cap; /* cap a power of two */
    int64_t next;  /* the writer's next id (0: not read yet) */
} vl_intern_t;

/** The id of `key` in table `which` into *out: -1 when no row uses it
 *  (readers), or, with `create` (the writer, inside a savepoint), a new
 *  one. 0, or -1 on error. */
int vl_intern_id(vl_bconn_t *c, int which, const char *key, int create, int64_t *out,
                 vl_store_err_t *err);
/** After the writer's commit / rollback (see sqlite_intern.c). */
void vl_intern_commit(vl_bconn_t *c);
void vl_intern_rollback(vl_intern_t *t);
void vl_intern_free(vl_intern_t *t);

struct vl_bconn {
    vl_backend_t *b;
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];
    struct vl_bconn *next; /* readers, listed for closing */
    struct {
        char *sql;
        sqlite3_stmt *st;
        int busy;
        uint64_t used;
    } qcache[VL_SQLQ_CACHE];
    uint64_t qtick;
    vl_intern_t intern[VL_INTERN_KINDS];
};

struct vl_backend {
    char path[4096];
    vl_bconn_t writer;
    /* the checkpointer: copies the WAL into the database on its own thread
     * and connection, so that the writer never stops for it */
    pthread_t ckpt;
    int ckpt_running;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cond;
    int ckpt_due, ckpt_stop;
    int ckpt_signalled; /* WAL pages when the writer last asked (writer thread only) */
    sqlite3 *ckpt_db;
    pthread_key_t reader_key;
    int key_created;
    pthread_mutex_t readers_mu;
    vl_bconn_t *readers;
};

/* sqlite_vfs.c: the writer's VFS, which gathers WAL writes (see there) */
#define VL_SQLITE_WRITER_VFS "vitalog-wal"
/** Registers it (once; any thread). 0, or -1 if SQLite refused. */
int vl_sqlite_writer_vfs(void);

/* sqlite.c */
int vl_sqlite_error(vl_store_err_t *err, sqlite3 *db, const char *what);
int vl_sqlite_exec(sqlite3 *db, const char *sql, vl_store_err_t *err);
/** The cached statement `i` of `c` (reset, bindings cleared), prepared on
 *  first use. */
sqlite3_stmt *vl_sqlite_stmt(vl_bconn_t *c, int i, const char *sql, vl_store_err_t *err);
/** One row (columns RECORD_COLUMNS) into a record. -1 when out of memory. */
int vl_sqlite_row_to_record(sqlite3_stmt *st, vl_record_t *rec);
/** Steps `st` to the end, appending records; stops early once the bodies
 *  hold `max_bytes` (0: no limit; at least one record is kept). */
int vl_sqlite_collect(sqlite3 *db, sqlite3_stmt *st, size_t max_bytes, vl_records_t *out,
                      vl_store_err_t *err);
const char *vl_sqlite_method_name(vl_method_t m);

#define VL_SQLITE_RECORD_COLUMNS                                                                   \
    "r.type, r.id, v.version, v.deleted, v.last_updated, v.method, v.body"

/** The highest committed version sequence (0: none), for snapshots. */
int vl_sqlite_snapshot_seq(vl_bconn_t *c, int64_t *seq, vl_store_err_t *err);

/* sqlite_query.c: the statement builder shared by searches and scoped reads */
typedef struct vl_sqlq vl_sqlq_t;
vl_sqlq_t *vl_sqlq_new(vl_bconn_t *c);
void vl_sqlq_free(vl_sqlq_t *q);
void vl_sqlq_sql(vl_sqlq_t *q, const char *sql);
void vl_sqlq_text(vl_sqlq_t *q, const char *text); /* appends "?" bound to text (borrowed) */
void vl_sqlq_int(vl_sqlq_t *q, int64_t v);
/** Appends " AND <visible>" for the version column `seq_col` (e.g. "v.seq"). */
void vl_sqlq_scope(vl_sqlq_t *q, vl_scope_t scope, const char *seq_col);
/** " AND <seq> <= as_of AND ...": the version `v` (of resource `r`) in
 *  column `seq` is the one current as of the snapshot `as_of` (written at
 *  or before it, and not replaced at or before it). The one statement of
 *  the snapshot rule, for searches, $everything and Bulk Data files. */
void vl_sqlq_snapshot(vl_sqlq_t *q, const char *seq, int64_t as_of);
/** Prepares (or takes from the connection's cache) and binds; the caller
 *  hands *st back with vl_sqlq_release(). */
int vl_sqlq_prepare(vl_sqlq_t *q, sqlite3_stmt **st, vl_store_err_t *err);
/** Resets a statement of vl_sqlq_prepare() into the cache, or finalizes it. */
void vl_sqlq_release(vl_bconn_t *c, sqlite3_stmt *st);
/** Finalizes the connection's cached statements (before it closes). */
void vl_sqlq_cache_clear(vl_bconn_t *c);

int vl_sqlite_search(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int with_total,
                     size_t max_bytes, vl_records_t *out, vl_store_err_t *err);
/** The same, or with `plan` only the plans of its statements (nothing is
 *  read into out). */
int vl_sqlite_search_plan(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int with_total,
                          size_t max_bytes, vl_records_t *out, vl_buf_t *plan, vl_store_err_t *err);
int vl_sqlite_explain(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int with_total,
                      vl_buf_t *plan, vl_store_err_t *err);

/* sqlite_write.c */
int vl_sqlite_head(vl_backend_t *b, const char *type, const char *id, vl_bhead_t *out,
                   vl_store_err_t *err);
int vl_sqlite_write_version(vl_backend_t *b, const vl_store_put_t *p, const vl_bhead_t *head,
                            int64_t time_us, const unsigned char salt[32], uint64_t ledger_index,
                            vl_store_err_t *err);
int vl_sqlite_append_entry(vl_backend_t *b, uint64_t index, const char *line, size_t len,
                           const unsigned char hash[VL_HASH_LEN], vl_store_err_t *err);
int vl_sqlite_put_node(vl_backend_t *b, int level, uint64_t index,
                       const unsigned char hash[VL_HASH_LEN], vl_store_err_t *err);
int vl_sqlite_put_checkpoint(vl_backend_t *b, uint64_t size, const char *note, size_t len,
                             vl_store_err_t *err);
int vl_sqlite_put_rotation(vl_backend_t *b, uint64_t index, const char *vkey, vl_store_err_t *err);
int vl_sqlite_unanchored(vl_backend_t *b, vl_bunanchored_fn fn, void *ctx, vl_store_err_t *err);
int vl_sqlite_anchor(vl_backend_t *b, int64_t seq, uint64_t index, vl_store_err_t *err);

/* sqlite_read.c */
int vl_sqlite_read(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                   int64_t version, vl_record_t *out, vl_store_err_t *err);
int vl_sqlite_history(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                      const vl_page_t *page, vl_records_t *out, vl_store_err_t *err);
int vl_sqlite_records_scan(vl_bconn_t *c, vl_store_record_fn fn, void *ctx, vl_store_err_t *err);
int vl_sqlite_ledger_size(vl_bconn_t *c, uint64_t *size, vl_store_err_t *err);
int vl_sqlite_ledger_node(vl_bconn_t *c, int level, uint64_t index, unsigned char out[VL_HASH_LEN]);
int vl_sqlite_ledger_entries(vl_bconn_t *c, uint64_t start, vl_bentry_fn fn, void *ctx,
                             vl_store_err_t *err);
int vl_sqlite_ledger_scan(vl_bconn_t *c, uint64_t start, uint64_t end, vl_store_ledger_fn fn,
                          void *ctx, vl_store_err_t *err);
int vl_sqlite_ledger_checkpoint(vl_bconn_t *c, char **note, uint64_t *size, vl_store_err_t *err);
int vl_sqlite_ledger_record(vl_bconn_t *c, vl_scope_t scope, const char *type, const char *id,
                            int64_t version, uint64_t *index, unsigned char salt[32], char **bytes,
                            size_t *len, vl_store_err_t *err);
int vl_sqlite_ledger_rotations(vl_bconn_t *c, vl_store_rotation_fn fn, void *ctx,
                               vl_store_err_t *err);

int vl_sqlite_insert_facets(vl_backend_t *b, int64_t seq, const vl_index_t *ix, int64_t rid,
                            int64_t prev_version, vl_store_err_t *err);

int vl_sqlite_pending(vl_backend_t *b, uint64_t *n, vl_store_err_t *err);
int vl_sqlite_facets_backfill(vl_backend_t *b, vl_store_facets_fn fn, void *ctx, size_t max,
                              size_t *n, vl_store_err_t *err);

/* sqlite_token.c */
int vl_sqlite_token_find(vl_bconn_t *c, const unsigned char hash[VL_TOKEN_HASH_LEN],
                         vl_token_row_t *out, vl_store_err_t *err);
int vl_sqlite_token_list(vl_bconn_t *c, vl_store_token_fn fn, void *ctx, vl_store_err_t *err);
int vl_sqlite_token_add(vl_backend_t *b, const vl_token_row_t *t, vl_store_err_t *err);
int vl_sqlite_token_revoke(vl_backend_t *b, const char *id, int64_t time_us, vl_store_err_t *err);

/* sqlite_compartment.c: pages of a patient's compartment as of a snapshot */
int vl_sqlite_compartment_page(vl_bconn_t *c, vl_scope_t scope, const vl_compartment_query_t *q,
                               vl_compartment_page_t *out, vl_store_err_t *err);

/* sqlite_export.c: snapshot reads for Bulk export (vl_backend_sqlite_export) */
int vl_sqlite_export_seq(vl_bconn_t *c, int64_t *seq, int64_t *time_us, vl_store_err_t *err);
int vl_sqlite_export_count(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *q,
                           const char *const *types, size_t n_types, int64_t from, int64_t to,
                           int64_t *counts, vl_store_err_t *err);
int vl_sqlite_export_page(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *q,
                          const char *type, int64_t after, size_t max, size_t max_bytes,
                          vl_records_t *out, int64_t *last, vl_store_err_t *err);
int vl_sqlite_export_patients(vl_bconn_t *c, vl_scope_t scope, const vl_export_query_t *q,
                              const char *type, vl_store_patient_fn fn, void *ctx,
                              vl_store_err_t *err);

/* sqlite_stats.c: the clinical operations $lastn and $stats */
int vl_sqlite_lastn(vl_bconn_t *c, vl_scope_t scope, const vl_query_t *q, int max,
                    vl_records_t *out, vl_store_err_t *err);
int vl_sqlite_series_stats(vl_bconn_t *c, vl_scope_t scope, const vl_stats_query_t *q,
                           vl_stats_list_t *out, vl_store_err_t *err);

#endif
