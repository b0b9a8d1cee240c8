/*
 * The store core: the write queue, the writer thread with group commit,
 * units and their transaction operations, and the public reads. Backend
 * neutral: every row goes through s->ops (backend.h).
 *
 * STATES OF THE WRITER
 *
 *     idle ──(units queued)──▶ batch ──(commit ok)──▶ complete ──▶ idle
 *                                │
 *                                └──(commit fails)──▶ complete, every
 *                                      unit of the batch failed (UNAVAILABLE)
 *
 * INVARIANTS
 *   1. Only the writer thread writes to the database.
 *   2. A unit is completed (done() called) only after the transaction that
 *      holds it committed, or with result -1 and nothing of it persisted.
 *   3. Each unit runs in its own savepoint: a unit whose apply fails rolls
 *      back to it, with the ledger state restored from its snapshot, and
 *      leaves its neighbours intact. A unit is all or nothing.
 *   4. The rows of a version (resource, version, index rows, compartments)
 *      and its ledger entry (and any Merkle nodes it completes) are written
 *      by vl_store_txn_put() together, inside the unit's savepoint.
 *   5. If the backend's transaction was lost mid-batch (some I/O, full disk
 *      and memory errors abort it), nothing of the batch stands: every unit
 *      fails and the ledger state returns to the batch's start.
 *
 * Batching: the thread takes everything queued (up to batch_max units) at
 * once. While one batch commits (fsync), new units queue up and form the
 * next batch, so throughput grows with concurrency while each unit waits at
 * most about two commits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "core.h"

/* ------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------- */

int vl_store_fail(vl_store_err_t *err, vl_store_kind_t kind, const char *fmt, ...)
{
    va_list ap;
    if (!err || err->kind != VL_STORE_OK)
        return -1;
    err->kind = kind;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

const char *vl_store_kind_name(vl_store_kind_t kind)
{
    switch (kind) {
    case VL_STORE_OK: return "ok";
    case VL_STORE_NOT_FOUND: return "not-found";
    case VL_STORE_CONFLICT: return "conflict";
    case VL_STORE_INVALID: return "invalid";
    case VL_STORE_DENIED: return "denied";
    case VL_STORE_TOO_COSTLY: return "too-costly";
    case VL_STORE_UNAVAILABLE: return "unavailable";
    case VL_STORE_ABORTED: return "aborted";
    case VL_STORE_FAILED: return "failed";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------
 * Records
 * ---------------------------------------------------------------------- */

void vl_record_free(vl_record_t *rec)
{
    if (!rec)
        return;
    free(rec->body);
    rec->body = NULL;
}

void vl_records_free(vl_records_t *list)
{
    for (size_t i = 0; i < list->n; i++) {
        vl_record_free(&list->items[i]);
        if (list->keys)
            free(list->keys[i]);
    }
    free(list->items);
    free(list->keys);
    free(list->key_lens);
    memset(list, 0, sizeof *list);
}

/* Type names and ids end up in keys, refs and URLs unescaped: only
 * [A-Z][A-Za-z]* types and FHIR ids ([A-Za-z0-9.-]{1,64}, not "." or "..")
 * get that far. */
static int name_ok(const char *s, int id)
{
    size_t n = 0;
    if (!id && s && !(s[0] >= 'A' && s[0] <= 'Z')) /* the ledger's ref grammar */
        return 0;
    for (; s && s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (id && ((c >= '0' && c <= '9') || c == '-' || c == '.'));
        if (!ok)
            return 0;
    }
    if (id && (!strcmp(s, ".") || !strcmp(s, "..")))
        return 0;
    return n > 0 && n <= 64;
}

static int check_type(const char *type, vl_store_err_t *err)
{
    if (!name_ok(type, 0))
        return vl_store_fail(err, VL_STORE_INVALID, "invalid resource type");
    return 0;
}

static int check_names(const char *type, const char *id, vl_store_err_t *err)
{
    if (!name_ok(type, 0) || !name_ok(id, 1))
        return vl_store_fail(err, VL_STORE_INVALID, "invalid resource type or id");
    return 0;
}

/* ------------------------------------------------------------------------
 * Transaction operations (writer thread, inside a unit)
 * ---------------------------------------------------------------------- */

int64_t vl_store_txn_time(const vl_store_txn_t *t)
{
    return t->now;
}

/* The head of (type, id), looked up once when a unit asks for it and then
 * puts it (the common case: check, then write). */
static int head(vl_store_txn_t *t, const char *type, const char *id, vl_bhead_t *out,
                vl_store_err_t *err)
{
    if (t->head_valid && !strcmp(t->head_type, type) && !strcmp(t->head_id, id)) {
        *out = t->head;
        return 0;
    }
    if (t->s->ops->head(t->s->b, type, id, out, err) < 0)
        return -1;
    snprintf(t->head_type, sizeof t->head_type, "%s", type);
    snprintf(t->head_id, sizeof t->head_id, "%s", id);
    t->head = *out;
    t->head_valid = 1;
    return 0;
}

int vl_store_txn_head(vl_store_txn_t *t, const char *type, const char *id, vl_store_head_t *out,
                      vl_store_err_t *err)
{
    vl_bhead_t h;
    memset(out, 0, sizeof *out);
    if (check_names(type, id, err) < 0 || head(t, type, id, &h, err) < 0)
        return -1;
    *out = h.head;
    return 0;
}

int vl_store_txn_read(vl_store_txn_t *t, vl_scope_t scope, const char *type, const char *id,
                      int64_t version, vl_record_t *out, vl_store_err_t *err)
{
    const vl_backend_ops_t *o = t->s->ops;
    return o->read(o->writer(t->s->b), scope, type, id, version, out, err);
}

int vl_store_txn_search(vl_store_txn_t *t, vl_scope_t scope, const vl_query_t *q, int with_total,
                        size_t max_bytes, vl_records_t *out, vl_store_err_t *err)
{
    const vl_backend_ops_t *o = t->s->ops;
    return o->search(o->writer(t->s->b), scope, q, with_total, max_bytes, out, err);
}

int vl_store_txn_history(vl_store_txn_t *t, vl_scope_t scope, const char *type, const char *id,
                         const vl_page_t *page, vl_records_t *out, vl_store_err_t *err)
{
    const vl_backend_ops_t *o = t->s->ops;
    return o->history(o->writer(t->s->b), scope, type, id, page, out, err);
}

int vl_store_txn_put(vl_store_txn_t *t, const vl_store_put_t *p, vl_store_receipt_t *out,
                     vl_store_err_t *err)
{
    vl_store_t *s = t->s;
    vl_bhead_t bh;
    unsigned char salt[32], hash[VL_HASH_LEN];
    vl_ledger_entry_t e;
    int deleted = p->method == VL_METHOD_DELETE;

    if (!s->has_key)
        return vl_store_fail(err, VL_STORE_UNAVAILABLE,
                             "the store is open without its ledger key: writes are refused");
    if (check_names(p->type, p->id, err) < 0)
        return -1;
    if (!deleted && !p->body)
        return vl_store_fail(err, VL_STORE_INVALID, "a version needs its bytes");
    if (head(t, p->type, p->id, &bh, err) < 0)
        return -1;
    t->head_valid = 0; /* the put changes it */
    if (p->version != bh.head.version + 1)
        return vl_store_fail(err, VL_STORE_CONFLICT,
                             "%s/%s: version %lld is not the next (current %lld)", p->type, p->id,
                             (long long)p->version, (long long)bh.head.version);
    vl_random(salt, sizeof salt);
    /* from here on a failure has left rows behind: the unit must roll back
     * whatever its apply callback does next (invariant 4) */
    t->broken = 1;
    if (s->ops->write_version(s->b, p, &bh, t->now, salt, s->ledger.size, err) < 0)
        return -1;
    /* the version's ledger entry, in the same savepoint (invariant 4) */
    memset(&e, 0, sizeof e);
    e.time_us = t->now;
    e.kind = deleted ? VL_ENTRY_DELETE : bh.head.exists ? VL_ENTRY_UPDATE : VL_ENTRY_CREATE;
    if (p->disclose) {
        if (e.kind != VL_ENTRY_CREATE) {
            t->broken = 1;
            return vl_store_fail(err, VL_STORE_INVALID, "a disclosure is a first version");
        }
        e.kind = VL_ENTRY_ACCESS_DISCLOSE;
    }
    snprintf(e.ref, sizeof e.ref, "%s/%s/_history/%lld", p->type, p->id, (long long)p->version);
    vl_ledger_commitment(salt, deleted ? NULL : p->body, deleted ? 0 : p->body_len, e.commitment);
    sodium_memzero(salt, sizeof salt);
    if (vl_ledger_state_append(s, &e, hash, err) < 0)
        return -1;
    for (int w = 0; w < s->n_watch; w++)
        if (!strcmp(s->watch_type[w], p->type))
            s->batch_watch |= 1u << w;
    for (size_t i = 0; i < p->n_also; i++) {
        vl_ledger_entry_t more = e;
        unsigned char ignored[VL_HASH_LEN];
        if (p->also[i] != VL_ENTRY_CONSENT_GRANT && p->also[i] != VL_ENTRY_CONSENT_REVOKE)
            return vl_store_fail(err, VL_STORE_INVALID, "not an entry kind a version may add");
        more.kind = p->also[i];
        if (vl_ledger_state_append(s, &more, ignored, err) < 0)
            return -1;
    }
    t->broken = 0;
    if (out) {
        out->version = p->version;
        out->time_us = t->now;
        out->ledger_index = e.index;
        memcpy(out->ledger_hash, hash, VL_HASH_LEN);
    }
    t->versions++;
    return 0;
}

/* ------------------------------------------------------------------------
 * The writer thread
 * ---------------------------------------------------------------------- */

/* Everything run_batch() must put back when units do not commit. */
typedef struct snapshot {
    vl_ledger_state_t ledger;
    vl_ledger_key_t key;
    uint64_t cp_size;
    int64_t cp_time_us;
} snapshot_t;

static void snapshot_take(const vl_store_t *s, snapshot_t *snap)
{
    snap->ledger = s->ledger;
    snap->key = s->key;
    snap->cp_size = s->cp_size;
    snap->cp_time_us = s->cp_time_us;
}

static void snapshot_restore(vl_store_t *s, const snapshot_t *snap)
{
    s->ledger = snap->ledger;
    s->key = snap->key;
    s->cp_size = snap->cp_size;
    s->cp_time_us = snap->cp_time_us;
}

/* A checkpoint is due when entries are uncovered and the last one is
 * checkpoint_ms old, or when a unit asks for one. */
static int checkpoint_due(const vl_store_t *s, int64_t mono, int asked)
{
    if (!s->has_key || s->ledger.size == s->cp_size)
        return 0;
    return asked || mono - s->cp_time_us >= (int64_t)s->cp_ms * 1000;
}

int64_t vl_store_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int rotate(vl_store_t *s, vl_store_unit_t *u, int64_t now)
{
    vl_ledger_entry_t e;
    unsigned char hash[VL_HASH_LEN];
    if (!s->has_key)
        return vl_store_fail(&u->err, VL_STORE_UNAVAILABLE, "the store has no ledger key");
    memset(&e, 0, sizeof e);
    e.time_us = now;
    e.kind = VL_ENTRY_KEY_ROTATION;
    if (vl_ledger_key_vkey(u->_next_key, e.key, sizeof e.key) < 0 ||
        vl_ledger_rotation_sign(&s->key, &e) < 0)
        return vl_store_fail(&u->err, VL_STORE_FAILED, "signing the key rotation failed");
    if (vl_ledger_state_append(s, &e, hash, &u->err) < 0)
        return -1;
    s->key = *u->_next_key; /* checkpoints from here on: the new key */
    return 0;
}

/* Runs one unit inside its savepoint. Returns 0, or -1 when the batch's
 * transaction is lost (invariant 5). */
static int run_unit(vl_store_t *s, vl_store_unit_t *u, int64_t now, uint64_t *versions)
{
    const vl_backend_ops_t *o = s->ops;
    vl_store_txn_t txn;
    snapshot_t before;
    memset(&txn, 0, sizeof txn);
    txn.s = s;
    txn.now = now;
    if (o->savepoint(s->b, &u->err) < 0) {
        u->result = -1;
        return o->in_transaction(s->b) ? 0 : -1;
    }
    snapshot_take(s, &before);
    switch (u->_op) {
    case VL_UNIT_APPLY:
        u->result = u->apply(&txn, u->arg);
        if (u->result == 0 && txn.broken) /* a put failed half-way: never keep it */
            u->result = -1;
        if (u->result < 0)
            vl_store_fail(&u->err, VL_STORE_ABORTED, "the unit was rolled back");
        break;
    case VL_UNIT_ROTATE: u->result = rotate(s, u, now); break;
    default: /* a checkpoint: run_batch signs */ u->result = 0; break;
    }
    if (u->result < 0) {
        vl_store_err_t ignored = VL_STORE_ERR_INIT;
        if (!o->in_transaction(s->b) || o->savepoint_rollback(s->b, &ignored) < 0) {
            sodium_memzero(&before, sizeof before);
            return -1;
        }
        snapshot_restore(s, &before);
    } else {
        vl_store_err_t rerr = VL_STORE_ERR_INIT;
        if (o->savepoint_release(s->b, &rerr) < 0 || !o->in_transaction(s->b)) {
            sodium_memzero(&before, sizeof before);
            return -1;
        }
        *versions += txn.versions;
    }
    sodium_memzero(&before, sizeof before); /* it holds a copy of the secret key */
    return 0;
}

/* Runs one batch (NULL: a checkpoint only). */
static void run_batch(vl_store_t *s, vl_store_unit_t *batch)
{
    const vl_backend_ops_t *o = s->ops;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    int64_t now = vl_time_now_us(), mono = vl_store_mono_us();
    int committed = 0, asked = batch == NULL, lost = 0, sign_failed = 0;
    uint64_t n = 0, failed = 0, versions = 0;
    snapshot_t at_start;

    snapshot_take(s, &at_start);
    if (o->begin(s->b, &err) == 0) {
        for (vl_store_unit_t *u = batch; u; u = u->_next) {
            asked |= u->_op == VL_UNIT_CHECKPOINT || u->_op == VL_UNIT_ROTATE;
            if (run_unit(s, u, now, &versions) < 0) {
                lost = 1;
                break;
            }
        }
        if (!lost && checkpoint_due(s, mono, asked)) {
            if (vl_ledger_state_sign(s, &err) == 0) {
                s->cp_time_us = mono;
            } else {
                /* entries stay uncovered; retry one interval later, not in
                 * a loop. The writes stand; checkpoint requests fail. */
                vl_logf(VL_LOG_ERROR, "ledger: %s", err.message);
                err = (vl_store_err_t)VL_STORE_ERR_INIT;
                s->cp_time_us = mono;
                sign_failed = 1;
                lost = !o->in_transaction(s->b);
            }
        }
        if (lost) {
            o->rollback(s->b);
            vl_logf(VL_LOG_ERROR, "store: a batch's transaction was rolled back; its units "
                                  "fail as unavailable");
        } else {
            committed = o->commit(s->b, &err) == 0;
            if (!committed)
                o->rollback(s->b);
        }
        if (!committed) {
            snapshot_restore(s, &at_start);
            if (sign_failed)
                s->cp_time_us = mono;
        }
    }
    sodium_memzero(&at_start, sizeof at_start); /* it holds a copy of the secret key */
    /* /readyz reports not ready while commits fail */
    pthread_mutex_lock(&s->mu);
    s->failed = !committed;
    pthread_mutex_unlock(&s->mu);

    for (vl_store_unit_t *u = batch; u; u = u->_next) {
        if (sign_failed && u->result == 0 && u->_op == VL_UNIT_CHECKPOINT) {
            u->result = -1;
            vl_store_fail(&u->err, VL_STORE_UNAVAILABLE,
                          "the checkpoint could not be signed; retry later");
        }
        if (!committed && u->result == 0) {
            u->result = -1;
            u->err = (vl_store_err_t)VL_STORE_ERR_INIT;
            vl_store_fail(&u->err, VL_STORE_UNAVAILABLE,
                          "the write could not be committed; retry later");
        }
        if (u->_op == VL_UNIT_APPLY) { /* checkpoints and rotations are not writes */
            n++;
            failed += u->result < 0;
        }
    }
    /* watched types next: a request after an acknowledged write must see
     * its generation move (a rolled-back batch moves it too: harmless) */
    for (int w = 0; w < s->n_watch; w++)
        if (s->batch_watch & (1u << w))
            atomic_fetch_add(&s->watch_gen[w], 1);
    s->batch_watch = 0;
    /* counters first: whoever sees a unit complete sees it counted */
    pthread_mutex_lock(&s->mu);
    s->stats.commits += committed;
    s->stats.units += n;
    s->stats.unit_failures += failed;
    s->stats.versions += committed ? versions : 0;
    pthread_mutex_unlock(&s->mu);
    for (vl_store_unit_t *u = batch, *next; u; u = next) {
        next = u->_next;
        u->done(u, u->done_arg); /* may free u: do not touch it after */
    }
}

static void *writer_main(void *arg)
{
    vl_store_t *s = arg;
    for (;;) {
        vl_store_unit_t *batch, *last;
        int n, timed_out = 0;
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->stopping && !timed_out) {
            if (s->has_key && s->ledger.size > s->cp_size) {
                /* uncovered entries: wake when their checkpoint is due */
                int64_t due = s->cp_time_us + (int64_t)s->cp_ms * 1000;
                struct timespec ts = {(time_t)(due / 1000000), (long)(due % 1000000) * 1000};
                timed_out = pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT;
            } else {
                pthread_cond_wait(&s->cond, &s->mu);
            }
        }
        if (!s->head) { /* a checkpoint is due, or stopping and drained */
            pthread_mutex_unlock(&s->mu);
            if (s->has_key && s->ledger.size > s->cp_size)
                run_batch(s, NULL); /* on stop too: leave every entry covered */
            if (timed_out)
                continue;
            break;
        }
        batch = last = s->head;
        for (n = 1; n < s->batch_max && last->_next; n++)
            last = last->_next;
        s->head = last->_next;
        if (!s->head)
            s->tail = NULL;
        last->_next = NULL;
        s->queued -= (uint64_t)n;
        pthread_mutex_unlock(&s->mu);
        run_batch(s, batch);
    }
    return NULL;
}

static void writer_stop(vl_store_t *s)
{
    if (!s->writer_running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    s->writer_running = 0;
}

/* ------------------------------------------------------------------------
 * Submitting
 * ---------------------------------------------------------------------- */

static int submit(vl_store_t *s, vl_store_unit_t *u, vl_store_err_t *err)
{
    u->_next = NULL;
    u->result = 0;
    u->err = (vl_store_err_t)VL_STORE_ERR_INIT;
    pthread_mutex_lock(&s->mu);
    if (s->stopping || !s->writer_running) {
        pthread_mutex_unlock(&s->mu);
        return vl_store_fail(err, VL_STORE_UNAVAILABLE, "the server is shutting down");
    }
    if (s->tail)
        s->tail->_next = u;
    else
        s->head = u;
    s->tail = u;
    s->queued++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int vl_store_submit(vl_store_t *s, vl_store_unit_t *u, vl_store_err_t *err)
{
    if (!u->apply || !u->done)
        return vl_store_fail(err, VL_STORE_INVALID, "a unit needs apply and done");
    u->_op = VL_UNIT_APPLY;
    return submit(s, u, err);
}

/* Synchronous wrapper: a condition variable per call. */
typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
} sync_wait_t;

static void sync_done(vl_store_unit_t *u, void *arg)
{
    sync_wait_t *sw = arg;
    (void)u;
    pthread_mutex_lock(&sw->mu);
    sw->done = 1;
    pthread_cond_signal(&sw->cond);
    pthread_mutex_unlock(&sw->mu);
}

static int run_sync(vl_store_t *s, vl_store_unit_t *u)
{
    sync_wait_t sw = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    u->done = sync_done;
    u->done_arg = &sw;
    if (submit(s, u, &u->err) < 0) {
        u->result = -1;
        return -1;
    }
    pthread_mutex_lock(&sw.mu);
    while (!sw.done)
        pthread_cond_wait(&sw.cond, &sw.mu);
    pthread_mutex_unlock(&sw.mu);
    pthread_mutex_destroy(&sw.mu);
    pthread_cond_destroy(&sw.cond);
    return u->result;
}

int vl_store_run(vl_store_t *s, vl_store_unit_t *u)
{
    if (!u->apply) {
        u->result = -1;
        return vl_store_fail(&u->err, VL_STORE_INVALID, "a unit needs apply");
    }
    u->_op = VL_UNIT_APPLY;
    return run_sync(s, u);
}

/* ------------------------------------------------------------------------
 * Open / close
 * ---------------------------------------------------------------------- */

int vl_store_open(const char *dir, const vl_store_options_t *opts, vl_store_t **out,
                  vl_store_err_t *err)
{
    vl_store_t *s;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return vl_store_fail(err, VL_STORE_FAILED, "cannot create %s: %s", dir, strerror(errno));
    s = calloc(1, sizeof *s);
    if (!s)
        return vl_store_fail(err, VL_STORE_FAILED, "out of memory");
    s->ops = &vl_backend_sqlite;
    s->batch_max = opts && opts->batch_max > 0 ? opts->batch_max : 256;
    s->cp_ms = opts && opts->checkpoint_ms ? opts->checkpoint_ms : 1000;
    if (opts && opts->key) {
        s->key = *opts->key;
        s->has_key = s->key.has_secret;
        snprintf(s->origin, sizeof s->origin, "%s", opts->origin ? opts->origin : s->key.name);
    }
    pthread_mutex_init(&s->mu, NULL);
    {
        /* the writer's checkpoint timer waits on CLOCK_MONOTONIC */
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (s->ops->open(dir, &s->b, err) < 0 || vl_ledger_state_open(s, err) < 0)
        goto fail;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        vl_store_fail(err, VL_STORE_FAILED, "cannot start the writer thread");
        goto fail;
    }
    s->writer_running = 1;
    *out = s;
    return 0;
fail:
    vl_store_close(s);
    return -1;
}

int vl_store_has_ledger(const char *dir, vl_store_err_t *err)
{
    return vl_backend_sqlite.has_ledger(dir, err);
}

void vl_store_close(vl_store_t *s)
{
    if (!s)
        return;
    writer_stop(s);
    if (s->b)
        s->ops->close(s->b);
    sodium_memzero(&s->key, sizeof s->key);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int vl_store_ready(vl_store_t *s)
{
    int running;
    pthread_mutex_lock(&s->mu);
    running = s->writer_running && !s->stopping && !s->failed;
    pthread_mutex_unlock(&s->mu);
    return running && s->ops->ready(s->b) == 0 ? 0 : -1;
}

void vl_store_stats(vl_store_t *s, vl_store_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->queue_depth = s->queued;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------
 * Reads
 * ---------------------------------------------------------------------- */

int vl_store_read(vl_store_t *s, vl_scope_t scope, const char *type, const char *id,
                  int64_t version, vl_record_t *out, vl_store_err_t *err)
{
    vl_bconn_t *c;
    memset(out, 0, sizeof *out);
    if (check_names(type, id, err) < 0 || !(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->read(c, scope, type, id, version, out, err);
}

int vl_store_history(vl_store_t *s, vl_scope_t scope, const char *type, const char *id,
                     const vl_page_t *page, vl_records_t *out, vl_store_err_t *err)
{
    vl_bconn_t *c;
    memset(out, 0, sizeof *out);
    if ((id ? check_names(type, id, err) : check_type(type, err)) < 0 ||
        !(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->history(c, scope, type, id, page, out, err);
}

int vl_store_search(vl_store_t *s, vl_scope_t scope, const vl_query_t *q, int with_total,
                    size_t max_bytes, vl_records_t *out, vl_store_err_t *err)
{
    vl_bconn_t *c;
    memset(out, 0, sizeof *out);
    if (!(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->search(c, scope, q, with_total, max_bytes, out, err);
}

int vl_store_explain(vl_store_t *s, vl_scope_t scope, const vl_query_t *q, int with_total,
                     vl_buf_t *plan, vl_store_err_t *err)
{
    vl_bconn_t *c;
    if (!(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->explain(c, scope, q, with_total, plan, err);
}

int vl_store_records_scan(vl_store_t *s, vl_scope_t scope, vl_store_record_fn fn, void *ctx,
                          vl_store_err_t *err)
{
    vl_bconn_t *c;
    if (!(scope.flags & VL_SCOPE_RECORDS) || !(scope.flags & VL_SCOPE_ALL))
        return vl_store_fail(err, VL_STORE_DENIED, "the records export needs the whole store");
    if (!(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->records_scan(c, fn, ctx, err);
}

/* Patient compartment pages ($everything): the arguments are checked
 * here, the page is the backend's (sqlite_compartment.c). */
int vl_store_compartment_page(vl_store_t *s, vl_scope_t scope, const vl_compartment_query_t *q,
                              vl_compartment_page_t *out, vl_store_err_t *err)
{
    vl_bconn_t *c;
    memset(out, 0, sizeof *out);
    out->records.total = -1;
    out->first_key = out->last_key = -1;
    if (check_names("Patient", q->patient, err) < 0)
        return -1;
    for (size_t i = 0; i < q->n_types; i++)
        if (check_type(q->types[i], err) < 0)
            return -1;
    if (q->count < 1 || q->snapshot < 0 || (q->has_period && q->lo >= q->hi))
        return vl_store_fail(err, VL_STORE_INVALID, "invalid compartment page");
    if (!s->ops->compartment_page)
        return vl_store_fail(err, VL_STORE_UNAVAILABLE, "the %s backend has no compartment pages",
                             s->ops->name);
    if (!(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->compartment_page(c, scope, q, out, err);
}

void vl_compartment_page_free(vl_compartment_page_t *page)
{
    if (!page)
        return;
    vl_records_free(&page->records);
    page->records.total = -1;
    page->first_key = page->last_key = -1;
    page->more = 0;
}

/* ------------------------------------------------------------------------
 * Bulk export: snapshot reads (store.h), on a reader of the calling thread
 * ---------------------------------------------------------------------- */

/* The snapshot operations of the store's backend (backend.h), or NULL. */
static const vl_backend_export_ops_t *export_ops(vl_store_t *s, vl_bconn_t **c, vl_store_err_t *err)
{
    const vl_backend_export_ops_t *o = s->ops->export_reads;
    if (!o) {
        vl_store_fail(err, VL_STORE_UNAVAILABLE, "the %s backend keeps no export snapshots",
                      s->ops->name);
        return NULL;
    }
    return (*c = s->ops->reader(s->b, err)) ? o : NULL;
}

static int export_query_ok(const vl_export_query_t *q, vl_store_err_t *err)
{
    if (q->seq < 0 || q->since_us < 0 || (q->patient && !name_ok(q->patient, 1)))
        return vl_store_fail(err, VL_STORE_INVALID, "invalid export snapshot");
    return 0;
}

int vl_store_export_seq(vl_store_t *s, int64_t *seq, int64_t *time_us, vl_store_err_t *err)
{
    vl_bconn_t *c;
    const vl_backend_export_ops_t *o = export_ops(s, &c, err);
    *seq = 0;
    *time_us = 0;
    return o ? o->seq(c, seq, time_us, err) : -1;
}

int vl_store_export_count(vl_store_t *s, vl_scope_t scope, const vl_export_query_t *q,
                          const char *const *types, size_t n_types, int64_t from, int64_t to,
                          int64_t *counts, vl_store_err_t *err)
{
    vl_bconn_t *c;
    const vl_backend_export_ops_t *o;
    if (export_query_ok(q, err) < 0)
        return -1;
    for (size_t i = 0; i < n_types; i++)
        if (check_type(types[i], err) < 0)
            return -1;
    if (!(o = export_ops(s, &c, err)))
        return -1;
    return o->count(c, scope, q, types, n_types, from, to, counts, err);
}

int vl_store_export_page(vl_store_t *s, vl_scope_t scope, const vl_export_query_t *q,
                         const char *type, int64_t after, size_t max, size_t max_bytes,
                         vl_records_t *out, int64_t *last, vl_store_err_t *err)
{
    vl_bconn_t *c;
    const vl_backend_export_ops_t *o;
    *last = after;
    if (export_query_ok(q, err) < 0 || check_type(type, err) < 0 || !(o = export_ops(s, &c, err)))
        return -1;
    return o->page(c, scope, q, type, after, max, max_bytes, out, last, err);
}

int vl_store_export_patients(vl_store_t *s, vl_scope_t scope, const vl_export_query_t *q,
                             const char *type, vl_store_patient_fn fn, void *ctx,
                             vl_store_err_t *err)
{
    vl_bconn_t *c;
    const vl_backend_export_ops_t *o;
    if (export_query_ok(q, err) < 0 || check_type(type, err) < 0 || !(o = export_ops(s, &c, err)))
        return -1;
    return o->patients(c, scope, q, type, fn, ctx, err);
}

/* Clinical operations ($lastn, $stats): the arguments are checked here,
 * the reads are the backend's (sqlite_stats.c). */
int vl_store_lastn(vl_store_t *s, vl_scope_t scope, const vl_query_t *q, int max, vl_records_t *out,
                   vl_store_err_t *err)
{
    vl_bconn_t *c;
    memset(out, 0, sizeof *out);
    out->total = 0;
    if (check_type(q->type, err) < 0)
        return -1;
    if (max < 1 || max > VL_LASTN_MAX || !q->series.code_param || !q->series.date_param)
        return vl_store_fail(err, VL_STORE_INVALID, "invalid $lastn query");
    if (!s->ops->lastn)
        return vl_store_fail(err, VL_STORE_UNAVAILABLE, "the %s backend has no $lastn",
                             s->ops->name);
    if (!(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->lastn(c, scope, q, max, out, err);
}

int vl_store_series_stats(vl_store_t *s, vl_scope_t scope, const vl_stats_query_t *q,
                          vl_stats_list_t *out, vl_store_err_t *err)
{
    vl_bconn_t *c;
    memset(out, 0, sizeof *out);
    if (check_type(q->type, err) < 0)
        return -1;
    if (!q->patient || strncmp(q->patient, "Patient/", 8) != 0)
        return vl_store_fail(err, VL_STORE_INVALID, "$stats needs a Patient reference");
    if (check_names("Patient", q->patient + 8, err) < 0)
        return -1;
    if (!q->code || !q->code[0] || !q->system || !q->code_param || !q->value_param ||
        !q->component_param || (q->status_param && !q->exclude_status) || q->lo >= q->hi ||
        q->n_ranks > VL_STATS_RANKS_MAX || (q->n_ranks && !q->ranks))
        return vl_store_fail(err, VL_STORE_INVALID, "invalid $stats query");
    for (size_t i = 0; i < q->n_ranks; i++)
        if (q->ranks[i].den < 1 || q->ranks[i].num < 0 || q->ranks[i].num > q->ranks[i].den)
            return vl_store_fail(err, VL_STORE_INVALID, "invalid $stats rank");
    if (!s->ops->series_stats)
        return vl_store_fail(err, VL_STORE_UNAVAILABLE, "the %s backend has no $stats",
                             s->ops->name);
    if (!(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->series_stats(c, scope, q, out, err);
}

void vl_stats_list_free(vl_stats_list_t *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->n; i++) {
        vl_stats_t *st = &list->items[i];
        free(st->system);
        free(st->code);
        free(st->unit);
        free(st->sent_unit);
        free(st->ranks);
        vl_records_free(&st->sources);
    }
    free(list->items);
    memset(list, 0, sizeof *list);
}

/* ------------------------------------------------------------------------
 * Ledger reads and operations
 * ---------------------------------------------------------------------- */

static vl_bconn_t *ledger_reader(vl_store_t *s, vl_scope_t scope, vl_store_err_t *err)
{
    if (!(scope.flags & VL_SCOPE_LEDGER)) {
        vl_store_fail(err, VL_STORE_DENIED, "the ledger is outside the caller's scope");
        return NULL;
    }
    return s->ops->reader(s->b, err);
}

int vl_store_ledger_size(vl_store_t *s, vl_scope_t scope, uint64_t *size, vl_store_err_t *err)
{
    vl_bconn_t *c = ledger_reader(s, scope, err);
    *size = 0;
    return c ? s->ops->ledger_size(c, size, err) : -1;
}

int vl_store_ledger_scan(vl_store_t *s, vl_scope_t scope, uint64_t start, uint64_t end,
                         vl_store_ledger_fn fn, void *ctx, vl_store_err_t *err)
{
    vl_bconn_t *c = ledger_reader(s, scope, err);
    return c ? s->ops->ledger_scan(c, start, end, fn, ctx, err) : -1;
}

int vl_store_ledger_checkpoint(vl_store_t *s, vl_scope_t scope, int fresh, char **note,
                               uint64_t *size, vl_store_err_t *err)
{
    vl_bconn_t *c = ledger_reader(s, scope, err);
    *note = NULL;
    *size = 0;
    if (!c)
        return -1;
    if (fresh) {
        vl_store_unit_t u;
        memset(&u, 0, sizeof u);
        u._op = VL_UNIT_CHECKPOINT;
        if (run_sync(s, &u) < 0) {
            *err = u.err;
            if (err->kind == VL_STORE_OK)
                vl_store_fail(err, VL_STORE_UNAVAILABLE, "the checkpoint could not be signed");
            return -1;
        }
    }
    return s->ops->ledger_checkpoint(c, note, size, err);
}

int vl_ledger_state_node(void *ctx, int level, uint64_t index, unsigned char out[VL_HASH_LEN])
{
    vl_node_src_t *src = ctx;
    return src->s->ops->ledger_node(src->c, level, index, out);
}

static int proof(vl_store_t *s, vl_scope_t scope, int inclusion, uint64_t a, uint64_t b,
                 unsigned char out[][VL_HASH_LEN], size_t *n, vl_store_err_t *err)
{
    vl_node_src_t src = {s, ledger_reader(s, scope, err)};
    uint64_t size;
    int rc;
    *n = 0;
    if (!src.c || s->ops->ledger_size(src.c, &size, err) < 0)
        return -1;
    if (inclusion ? (a >= b) : (a < 1 || a > b))
        return vl_store_fail(err, VL_STORE_INVALID,
                             inclusion ? "need 0 <= index < size" : "need 1 <= first <= second");
    if (b > size)
        return vl_store_fail(err, VL_STORE_INVALID, "size %llu is past the ledger's %llu entries",
                             (unsigned long long)b, (unsigned long long)size);
    rc = inclusion ? vl_ledger_inclusion_proof(vl_ledger_state_node, &src, a, b, out, n)
                   : vl_ledger_consistency_proof(vl_ledger_state_node, &src, a, b, out, n);
    if (rc < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "the proof could not be built");
    return 0;
}

int vl_store_ledger_inclusion(vl_store_t *s, vl_scope_t scope, uint64_t index, uint64_t size,
                              unsigned char out[][VL_HASH_LEN], size_t *n, vl_store_err_t *err)
{
    return proof(s, scope, 1, index, size, out, n, err);
}

int vl_store_ledger_consistency(vl_store_t *s, vl_scope_t scope, uint64_t first, uint64_t second,
                                unsigned char out[][VL_HASH_LEN], size_t *n, vl_store_err_t *err)
{
    return proof(s, scope, 0, first, second, out, n, err);
}

int vl_store_ledger_node(vl_store_t *s, vl_scope_t scope, int level, uint64_t index,
                         unsigned char out[VL_HASH_LEN])
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_bconn_t *c = ledger_reader(s, scope, &err);
    return c ? s->ops->ledger_node(c, level, index, out) : -1;
}

int vl_store_ledger_record(vl_store_t *s, vl_scope_t scope, const char *type, const char *id,
                           int64_t version, uint64_t *index, unsigned char salt[32], char **bytes,
                           size_t *len, vl_store_err_t *err)
{
    vl_bconn_t *c;
    *bytes = NULL;
    *len = 0;
    if (check_names(type, id, err) < 0 || !(c = s->ops->reader(s->b, err)))
        return -1;
    return s->ops->ledger_record(c, scope, type, id, version, index, salt, bytes, len, err);
}

int vl_store_ledger_rotations(vl_store_t *s, vl_scope_t scope, vl_store_rotation_fn fn, void *ctx,
                              vl_store_err_t *err)
{
    vl_bconn_t *c = ledger_reader(s, scope, err);
    return c ? s->ops->ledger_rotations(c, fn, ctx, err) : -1;
}

int vl_store_ledger_rotate(vl_store_t *s, const vl_ledger_key_t *next, vl_store_err_t *err)
{
    vl_store_unit_t u;
    if (!next || !next->has_secret)
        return vl_store_fail(err, VL_STORE_INVALID, "a rotation needs the new secret key");
    memset(&u, 0, sizeof u);
    u._op = VL_UNIT_ROTATE;
    u._next_key = next;
    if (run_sync(s, &u) < 0) {
        *err = u.err;
        if (err->kind == VL_STORE_OK)
            vl_store_fail(err, VL_STORE_FAILED, "the rotation failed");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Bearer tokens
 * ---------------------------------------------------------------------- */

int vl_store_token_find(vl_store_t *s, const unsigned char hash[VL_TOKEN_HASH_LEN],
                        vl_token_row_t *out, vl_store_err_t *err)
{
    vl_bconn_t *c = s->ops->reader(s->b, err);
    memset(out, 0, sizeof *out);
    return c ? s->ops->token_find(c, hash, out, err) : -1;
}

int vl_store_token_list(vl_store_t *s, vl_store_token_fn fn, void *ctx, vl_store_err_t *err)
{
    vl_bconn_t *c = s->ops->reader(s->b, err);
    return c ? s->ops->token_list(c, fn, ctx, err) : -1;
}

int vl_store_txn_token_add(vl_store_txn_t *t, const vl_token_row_t *row, vl_store_err_t *err)
{
    return t->s->ops->token_add(t->s->b, row, err);
}

int vl_store_txn_token_revoke(vl_store_txn_t *t, const char *id, int64_t time_us,
                              vl_store_err_t *err)
{
    return t->s->ops->token_revoke(t->s->b, id, time_us, err);
}

static int count_token(void *ctx, const vl_token_row_t *row)
{
    (void)row;
    ++*(int64_t *)ctx;
    return 0;
}

int vl_store_txn_token_count(vl_store_txn_t *t, int64_t *count, vl_store_err_t *err)
{
    const vl_backend_ops_t *o = t->s->ops;
    *count = 0;
    return o->token_list(o->writer(t->s->b), count_token, count, err) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Facets of old versions
 * ---------------------------------------------------------------------- */

typedef struct backfill {
    vl_store_facets_fn fn;
    void *ctx;
    size_t n;
    vl_store_err_t err;
} backfill_t;

static int apply_backfill(vl_store_txn_t *t, void *arg)
{
    backfill_t *bf = arg;
    return t->s->ops->facets_backfill(t->s->b, bf->fn, bf->ctx, 512, &bf->n, &bf->err);
}

typedef struct pending {
    uint64_t n;
    vl_store_err_t err;
} pending_t;

static int apply_pending(vl_store_txn_t *t, void *arg)
{
    pending_t *p = arg;
    return t->s->ops->pending(t->s->b, &p->n, &p->err);
}

int vl_store_backfill(vl_store_t *s, vl_store_facets_fn fn, void *ctx,
                      vl_store_progress_fn progress, void *progress_ctx, size_t *done,
                      vl_store_err_t *err)
{
    size_t total = 0;
    uint64_t pending = 0;
    if (progress) { /* the writer's connection is the writer thread's */
        pending_t p = {0, VL_STORE_ERR_INIT};
        vl_store_unit_t u;
        memset(&u, 0, sizeof u);
        u.apply = apply_pending;
        u.arg = &p;
        if (vl_store_run(s, &u) != 0) {
            *err = p.err.kind != VL_STORE_OK ? p.err : u.err;
            return -1;
        }
        pending = p.n;
    }
    for (;;) {
        backfill_t bf = {fn, ctx, 0, VL_STORE_ERR_INIT};
        vl_store_unit_t u;
        memset(&u, 0, sizeof u);
        u.apply = apply_backfill;
        u.arg = &bf;
        if (vl_store_run(s, &u) != 0) {
            *err = bf.err.kind != VL_STORE_OK ? bf.err : u.err;
            return -1;
        }
        total += bf.n;
        if (bf.n == 0)
            break;
        if (progress)
            progress(progress_ctx, total, pending > total ? pending : total);
    }
    if (done)
        *done = total;
    return 0;
}

/* ------------------------------------------------------------------------
 * Watched types
 * ---------------------------------------------------------------------- */

int vl_store_watch(vl_store_t *s, const char *type)
{
    int slot = -1;
    pthread_mutex_lock(&s->mu);
    for (int w = 0; w < s->n_watch; w++)
        if (!strcmp(s->watch_type[w], type))
            slot = w;
    if (slot < 0 && s->n_watch < VL_STORE_WATCH_MAX && strlen(type) < sizeof s->watch_type[0]) {
        slot = s->n_watch;
        snprintf(s->watch_type[slot], sizeof s->watch_type[slot], "%s", type);
        s->n_watch++; /* the writer reads n_watch: set it last, under the lock */
    }
    pthread_mutex_unlock(&s->mu);
    return slot;
}

uint64_t vl_store_watch_gen(vl_store_t *s, int slot)
{
    return slot >= 0 && slot < VL_STORE_WATCH_MAX ? atomic_load(&s->watch_gen[slot]) : 0;
}
