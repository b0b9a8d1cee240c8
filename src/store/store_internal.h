/*
 * Private to the store module: the store struct and helpers shared by
 * store.c (connections, reads), writer.c (the writer thread) and query.c
 * (search SQL).
 */
#ifndef VL_STORE_INTERNAL_H
#define VL_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "vitalog/store.h"

/* Cached statements of a read connection. */
enum {
    VL_RSTMT_READ_CURRENT,
    VL_RSTMT_READ_VERSION,
    VL_RSTMT_LEDGER_LEAF,
    VL_RSTMT_LEDGER_NODE,
    VL_RSTMT_COUNT
};

/* Cached statements of the writer connection. */
enum {
    VL_WSTMT_LOOKUP,
    VL_WSTMT_INSERT_RESOURCE,
    VL_WSTMT_UPDATE_RESOURCE,
    VL_WSTMT_INSERT_VERSION,
    VL_WSTMT_DELETE_TOKEN,
    VL_WSTMT_DELETE_STRING,
    VL_WSTMT_DELETE_REFERENCE,
    VL_WSTMT_DELETE_DATE,
    VL_WSTMT_DELETE_QUANTITY,
    VL_WSTMT_INSERT_TOKEN,
    VL_WSTMT_INSERT_STRING,
    VL_WSTMT_INSERT_REFERENCE,
    VL_WSTMT_INSERT_DATE,
    VL_WSTMT_INSERT_QUANTITY,
    VL_WSTMT_LEDGER_ENTRY,
    VL_WSTMT_LEDGER_NODE,
    VL_WSTMT_LEDGER_CHECKPOINT,
    VL_WSTMT_LEDGER_LEAF_READ,
    VL_WSTMT_LEDGER_NODE_READ,
    VL_WSTMT_COUNT
};

/* What the writer knows of the ledger; copied before each write and
 * restored when the write (or its batch) does not commit. */
typedef struct vl_ledger_state {
    uint64_t size;
    unsigned char prev[VL_HASH_LEN];
    vl_ledger_range_t range;
} vl_ledger_state_t;

typedef struct vl_reader {
    vl_store_t *store;
    sqlite3 *db;
    sqlite3_stmt *stmts[VL_RSTMT_COUNT];
    struct vl_reader *next;
} vl_reader_t;

struct vl_store {
    char path[4096];
    int batch_max;

    /* readers: one per thread, listed for closing */
    pthread_key_t reader_key;
    int key_created;
    pthread_mutex_t readers_mu;
    vl_reader_t *readers;

    /* writer: `mu` guards the queue, the flags and stats */
    sqlite3 *wdb;
    sqlite3_stmt *wstmts[VL_WSTMT_COUNT];
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    vl_store_write_t *head, *tail;
    uint64_t queued;
    int writer_running;
    int stopping;
    int failed; /* the last batch failed to commit (cleared by the next commit) */
    vl_store_stats_t stats;

    /* ledger: written only by the writer thread (and by open/close) */
    vl_ledger_key_t key;     /* signing key (copy); valid if has_key */
    int has_key;
    char origin[128];
    vl_ledger_state_t ledger; /* tree state of everything written so far */
    uint64_t cp_size;         /* size of the latest checkpoint */
    int64_t cp_time_us;       /* when it was signed or last tried (CLOCK_MONOTONIC) */
    unsigned cp_ms;
};

int vl_store_connect(vl_store_t *s, int readonly, sqlite3 **out, vl_error_t *err);
vl_reader_t *vl_store_reader(vl_store_t *s, vl_error_t *err);
int vl_store_exec(sqlite3 *db, const char *sql, vl_error_t *err);
int vl_store_sql_error(vl_error_t *err, sqlite3 *db, const char *what);
/** Returns the cached statement (reset, bindings cleared), preparing it on
 *  first use. */
sqlite3_stmt *vl_store_stmt(sqlite3 *db, sqlite3_stmt **cache, const char *sql, vl_error_t *err);
int vl_store_row_to_record(sqlite3_stmt *st, vl_record_t *rec);
int vl_store_collect(sqlite3 *db, sqlite3_stmt *st, vl_records_t *out, vl_error_t *err);

int vl_store_writer_start(vl_store_t *s, vl_error_t *err);
void vl_store_writer_stop(vl_store_t *s);

/* ledger.c */
/** Loads the ledger state, checks the chain's tail and the latest
 *  checkpoint, anchors versions written before the ledger existed. */
int vl_store_ledger_open(vl_store_t *s, vl_error_t *err);
/** Appends an entry inside the open savepoint (fills index and prev);
 *  returns its hash in `hash`. */
int vl_store_ledger_append(vl_store_t *s, vl_ledger_entry_t *e, unsigned char hash[VL_HASH_LEN],
                           vl_error_t *err);
/** Signs and stores a checkpoint of the current state if it covers new
 *  entries (inside the open transaction). The caller schedules the next. */
int vl_store_ledger_sign(vl_store_t *s, vl_error_t *err);
/** CLOCK_MONOTONIC in microseconds: checkpoint scheduling (wall-clock
 *  steps must not delay checkpoints). */
int64_t vl_store_mono_us(void);

/** Runs a query on `db` (reader or writer connection). */
int vl_store_query_run(sqlite3 *db, const vl_query_t *q, int with_total, vl_records_t *out,
                       vl_error_t *err);

#endif
