/*
 * Private to the store core (core.c, ledger_state.c): the store struct.
 * Nothing here knows SQL; the backend is reached through s->ops.
 */
#ifndef VL_STORE_CORE_H
#define VL_STORE_CORE_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend.h"

/* What the writer knows of the ledger; snapshotted before each unit and
 * restored when the unit (or its batch) does not commit. */
typedef struct vl_ledger_state {
    uint64_t size;
    unsigned char prev[VL_HASH_LEN];
    vl_ledger_range_t range;
} vl_ledger_state_t;

/* Unit kinds (vl_store_unit_t._op). */
enum { VL_UNIT_APPLY, VL_UNIT_CHECKPOINT, VL_UNIT_ROTATE };

struct vl_store {
    const vl_backend_ops_t *ops;
    vl_backend_t *b;
    int batch_max;

    /* writer: `mu` guards the queue, the flags and stats */
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    vl_store_unit_t *head, *tail;
    uint64_t queued;
    int writer_running;
    int stopping;
    int failed; /* the last batch failed to commit (cleared by the next commit) */
    vl_store_stats_t stats;

    /* ledger: written only by the writer thread (and by open/close) */
    vl_ledger_key_t key; /* signing key (copy); valid if has_key */
    int has_key;
    char origin[128];
    vl_ledger_state_t ledger; /* tree state of everything written so far */
    uint64_t cp_size;         /* size of the latest checkpoint */
    int64_t cp_time_us;       /* when it was signed or last tried (CLOCK_MONOTONIC) */
    unsigned cp_ms;

    /* watched types (vl_store_watch): set before serving, then read-only;
     * a generation moves after every batch that wrote a version of its
     * type, before any of that batch's units completes */
    char watch_type[VL_STORE_WATCH_MAX][65];
    int n_watch;
    unsigned batch_watch; /* writer only: slots the current batch wrote */
    _Atomic uint64_t watch_gen[VL_STORE_WATCH_MAX];
};

struct vl_store_txn {
    vl_store_t *s;
    int64_t now;
    uint64_t versions; /* record versions put by the current unit */
    int broken;        /* a put failed after writing rows: the unit must roll back */
    /* the last head looked up, until a put changes it */
    int head_valid;
    char head_type[65], head_id[65];
    vl_bhead_t head;
};

/* ledger_state.c */
/** Loads the ledger state, checks the chain's tail and the latest
 *  checkpoint, anchors versions written before the ledger existed. */
int vl_ledger_state_open(vl_store_t *s, vl_store_err_t *err);
/** Appends an entry inside the open savepoint (fills index and prev);
 *  returns its hash. A rotation entry is also listed as a rotation. */
int vl_ledger_state_append(vl_store_t *s, vl_ledger_entry_t *e, unsigned char hash[VL_HASH_LEN],
                           vl_store_err_t *err);
/** Signs and stores a checkpoint of the current state if it covers new
 *  entries (inside the open transaction). The caller schedules the next. */
int vl_ledger_state_sign(vl_store_t *s, vl_store_err_t *err);
/** Node source over a connection, for vl_ledger_*_proof(). */
typedef struct vl_node_src {
    vl_store_t *s;
    vl_bconn_t *c;
} vl_node_src_t;
int vl_ledger_state_node(void *ctx, int level, uint64_t index, unsigned char out[VL_HASH_LEN]);

/** CLOCK_MONOTONIC in microseconds: checkpoint scheduling (wall-clock
 *  steps must not delay checkpoints). */
int64_t vl_store_mono_us(void);

#endif
