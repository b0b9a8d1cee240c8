/*
 * The ledger's state in the store core: appending entries, signing
 * checkpoints, and checking what the backend holds at open. Backend
 * neutral; the formats are src/ledger's.
 *
 * INVARIANTS
 *   1. The backend holds entries 0..size-1 without gaps; entry i's "prev"
 *      is entry i-1's hash. Only the writer thread appends, always inside
 *      the savepoint of the unit it anchors, so a record version and its
 *      entry commit together or not at all.
 *   2. s->ledger (size, prev, compact range) equals what the backend holds
 *      after the last commit, plus the writes of the open transaction;
 *      core.c snapshots it before each unit and restores it when a unit or
 *      a batch does not commit.
 *   3. The backend holds every perfect-subtree node at level >= 1 of the
 *      committed tree (reported by vl_ledger_range_append()).
 *   4. Checkpoints are signed only over committed-or-committing state and
 *      stored in the same transaction as the entries they cover.
 *
 * At open the tail of the chain (the last VL_LEDGER_TAIL_CHECK entries) and
 * the latest checkpoint are verified; a broken chain refuses to open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define VL_LEDGER_TAIL_CHECK 1024

typedef struct node_sink {
    vl_store_t *s;
    vl_store_err_t *err;
    int failed;
} node_sink_t;

static void store_node(void *ctx, int level, uint64_t index, const unsigned char hash[VL_HASH_LEN])
{
    node_sink_t *k = ctx;
    if (!k->failed && k->s->ops->put_node(k->s->b, level, index, hash, k->err) < 0)
        k->failed = 1;
}

int vl_ledger_state_append(vl_store_t *s, vl_ledger_entry_t *e, unsigned char hash[VL_HASH_LEN],
                           vl_store_err_t *err)
{
    node_sink_t sink = {s, err, 0};
    size_t len;
    char *line;
    int rc;
    e->index = s->ledger.size;
    memcpy(e->prev, s->ledger.prev, VL_HASH_LEN);
    line = vl_ledger_entry_format(e, &len);
    if (!line)
        return vl_store_fail(err, VL_STORE_FAILED, "formatting a ledger entry failed");
    vl_ledger_leaf_hash(line, len, hash);
    rc = s->ops->append_entry(s->b, e->index, line, len, hash, err);
    free(line);
    if (rc < 0)
        return -1;
    if (e->kind == VL_ENTRY_KEY_ROTATION && s->ops->put_rotation(s->b, e->index, e->key, err) < 0)
        return -1;
    vl_ledger_range_append(&s->ledger.range, hash, store_node, &sink);
    if (sink.failed)
        return -1;
    s->ledger.size++;
    memcpy(s->ledger.prev, hash, VL_HASH_LEN);
    return 0;
}

int vl_ledger_state_sign(vl_store_t *s, vl_store_err_t *err)
{
    unsigned char root[VL_HASH_LEN];
    char *text, *note;
    int rc;
    if (!s->has_key || s->ledger.size == s->cp_size)
        return 0;
    vl_ledger_range_root(&s->ledger.range, root);
    text = vl_ledger_checkpoint_text(s->origin, s->ledger.size, root);
    note = text ? vl_ledger_note_sign(&s->key, text) : NULL;
    free(text);
    if (!note)
        return vl_store_fail(err, VL_STORE_FAILED, "signing a checkpoint failed");
    rc = s->ops->put_checkpoint(s->b, s->ledger.size, note, strlen(note), err);
    free(note);
    if (rc < 0)
        return -1;
    s->cp_size = s->ledger.size;
    return 0;
}

/* ------------------------------------------------------------------------
 * Opening: load, check, backfill
 * ---------------------------------------------------------------------- */

/* Rebuilds the compact range of `size` leaves from the stored nodes: one
 * perfect subtree per set bit of size, largest first. */
static int load_range(vl_store_t *s, vl_node_src_t *src, uint64_t size, vl_ledger_range_t *r,
                      vl_store_err_t *err)
{
    uint64_t pos = 0;
    vl_ledger_range_init(r);
    for (int level = 63; level >= 0; level--) {
        uint64_t span = (uint64_t)1 << level;
        if (!(size & span))
            continue;
        if (s->ops->ledger_node(src->c, level, pos >> level, r->peaks[r->npeaks]) < 0)
            return vl_store_fail(err, VL_STORE_FAILED,
                                 "ledger: the tree node (level %d, index %llu) is missing", level,
                                 (unsigned long long)(pos >> level));
        r->npeaks++;
        pos += span;
    }
    r->size = size;
    return 0;
}

typedef struct tail_check {
    uint64_t expect;
    unsigned char prev[VL_HASH_LEN];
    vl_store_err_t *err;
} tail_check_t;

static int check_entry(void *ctx, uint64_t idx, const char *line, size_t len,
                       const unsigned char hash[VL_HASH_LEN])
{
    tail_check_t *t = ctx;
    unsigned char leaf[VL_HASH_LEN];
    vl_ledger_entry_t e;
    vl_error_t perr = VL_ERROR_INIT;
    if (idx != t->expect)
        return vl_store_fail(t->err, VL_STORE_FAILED, "ledger: entry %llu is missing",
                             (unsigned long long)t->expect);
    vl_ledger_leaf_hash(line, len, leaf);
    if (memcmp(leaf, hash, VL_HASH_LEN) != 0)
        return vl_store_fail(t->err, VL_STORE_FAILED,
                             "ledger: entry %llu does not match its stored hash",
                             (unsigned long long)idx);
    if (vl_ledger_entry_parse(line, len, &e, &perr) < 0 || e.index != idx ||
        memcmp(e.prev, t->prev, VL_HASH_LEN) != 0) {
        vl_error_clear(&perr);
        return vl_store_fail(t->err, VL_STORE_FAILED,
                             "ledger: entry %llu is malformed or does not chain to entry %llu",
                             (unsigned long long)idx, (unsigned long long)(idx ? idx - 1 : 0));
    }
    memcpy(t->prev, leaf, VL_HASH_LEN);
    t->expect++;
    return 0;
}

/* Verifies the last entries: stored hash = leaf hash of the line, lines
 * parse canonically with the right index, prev links the chain. */
static int check_tail(vl_store_t *s, vl_node_src_t *src, uint64_t size, vl_store_err_t *err)
{
    uint64_t start = size > VL_LEDGER_TAIL_CHECK ? size - VL_LEDGER_TAIL_CHECK : 0;
    tail_check_t t = {start, {0}, err};
    if (start > 0 && s->ops->ledger_node(src->c, 0, start - 1, t.prev) < 0)
        return vl_store_fail(err, VL_STORE_FAILED, "ledger: entry %llu is missing",
                             (unsigned long long)(start - 1));
    if (s->ops->ledger_entries(src->c, start, check_entry, &t, err) != 0)
        return -1;
    if (t.expect != size)
        return vl_store_fail(err, VL_STORE_FAILED, "ledger: entry %llu is missing",
                             (unsigned long long)t.expect);
    memcpy(s->ledger.prev, t.prev, VL_HASH_LEN);
    return 0;
}

/* The latest checkpoint must be signed by our key and match the tree. */
static int check_checkpoint(vl_store_t *s, vl_node_src_t *src, vl_store_err_t *err)
{
    vl_store_err_t rerr = VL_STORE_ERR_INIT;
    vl_error_t verr = VL_ERROR_INIT;
    char *note = NULL, *text = NULL, origin[128];
    uint64_t size = 0, csize;
    unsigned char root[VL_HASH_LEN], want[VL_HASH_LEN];
    int ret = -1;
    if (s->ops->ledger_checkpoint(src->c, &note, &size, &rerr) < 0) {
        if (rerr.kind != VL_STORE_NOT_FOUND) {
            *err = rerr;
            return -1;
        }
        s->cp_size = 0;
        return 0;
    }
    if (s->has_key && vl_ledger_note_verify(note, strlen(note), &s->key, 1, &text, &verr) < 0) {
        vl_store_fail(
            err, VL_STORE_FAILED,
            "ledger: the checkpoint at size %llu does not verify with the ledger key (%s)",
            (unsigned long long)size, vl_error_message(&verr));
        goto out;
    }
    if (text) {
        if (vl_ledger_checkpoint_parse(text, origin, sizeof origin, &csize, root, &verr) < 0 ||
            csize != size || size > s->ledger.size ||
            vl_ledger_subtree_hash(vl_ledger_state_node, src, 0, size, want) < 0 ||
            memcmp(root, want, VL_HASH_LEN) != 0) {
            vl_store_fail(err, VL_STORE_FAILED,
                          "ledger: the checkpoint at size %llu does not match the stored entries",
                          (unsigned long long)size);
            goto out;
        }
    }
    s->cp_size = size;
    ret = 0;
out:
    vl_error_clear(&verr);
    free(text);
    free(note);
    return ret;
}

typedef struct backfill {
    vl_store_t *s;
    vl_store_err_t *err;
    int n;
} backfill_t;

static int anchor_one(void *ctx, const vl_bunanchored_t *v)
{
    backfill_t *bf = ctx;
    vl_store_t *s = bf->s;
    vl_ledger_entry_t e;
    unsigned char hash[VL_HASH_LEN];
    memset(&e, 0, sizeof e);
    e.time_us = v->time_us;
    e.kind = v->method == VL_METHOD_DELETE ? VL_ENTRY_DELETE
             : v->version == 1             ? VL_ENTRY_CREATE
                                           : VL_ENTRY_UPDATE;
    snprintf(e.ref, sizeof e.ref, "%s/%s/_history/%lld", v->type, v->id, (long long)v->version);
    vl_ledger_commitment(v->salt, v->body, v->body ? v->body_len : 0, e.commitment);
    if (s->ops->anchor(s->b, v->seq, s->ledger.size, bf->err) < 0 ||
        vl_ledger_state_append(s, &e, hash, bf->err) < 0)
        return -1;
    bf->n++;
    return 0;
}

/* Anchors record versions written before the ledger existed (a database
 * from before migration 002), in their original order. Only while the
 * ledger is still empty, with no checkpoint, and the key at hand: once any
 * entry or checkpoint exists, a version without an entry is tampering (or
 * an erased entry), which `vitalog verify --data` reports, and must never
 * be made to look new. (Opens without the key, e.g. `vitalog verify
 * --data` on an old directory, leave the anchoring to the server.) */
static int backfill(vl_store_t *s, vl_store_err_t *err)
{
    backfill_t bf = {s, err, 0};
    int ret = -1;
    if (!s->has_key || s->ledger.size > 0 || s->cp_size > 0)
        return 0;
    if (s->ops->begin(s->b, err) < 0)
        return -1;
    if (s->ops->unanchored(s->b, anchor_one, &bf, err) == 0 &&
        (!bf.n || vl_ledger_state_sign(s, err) == 0))
        ret = s->ops->commit(s->b, err);
    if (ret < 0)
        s->ops->rollback(s->b);
    if (bf.n && ret == 0)
        vl_logf(VL_LOG_INFO, "ledger: anchored %d record versions written before the ledger", bf.n);
    return ret;
}

int vl_ledger_state_open(vl_store_t *s, vl_store_err_t *err)
{
    vl_node_src_t src = {s, s->ops->writer(s->b)};
    uint64_t size = 0;
    vl_ledger_state_t saved;
    if (s->ops->ledger_size(src.c, &size, err) < 0)
        return -1;
    memset(&s->ledger, 0, sizeof s->ledger);
    if (load_range(s, &src, size, &s->ledger.range, err) < 0 || check_tail(s, &src, size, err) < 0)
        return -1;
    s->ledger.size = size;
    if (check_checkpoint(s, &src, err) < 0)
        return -1;
    /* the checkpoint interval starts at the open: entries a crash left
     * uncovered are signed one interval later (or at once when a checkpoint
     * is asked for), however long the machine has been up */
    s->cp_time_us = vl_store_mono_us();
    saved = s->ledger;
    if (backfill(s, err) < 0) {
        s->ledger = saved;
        return -1;
    }
    return 0;
}
