/*
 * The ledger's persistence: the store side of src/ledger.
 *
 * INVARIANTS
 *   1. ledger_entry holds entries 0..size-1 without gaps; entry i's "prev"
 *      is entry i-1's hash. Only the writer thread appends, always inside
 *      the savepoint of the write it anchors, so a record version and its
 *      entry commit together or not at all.
 *   2. s->ledger (size, prev, compact range) equals what ledger_entry and
 *      ledger_node hold after the last commit, plus the writes of the open
 *      transaction; writer.c snapshots it before each write and restores it
 *      when a write or a batch does not commit.
 *   3. ledger_node holds every perfect-subtree node at level >= 1 of the
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

#include "store_internal.h"

#define VL_LEDGER_TAIL_CHECK 1024

#define W(s, i, sql, err) vl_store_stmt((s)->wdb, &(s)->wstmts[i], sql, err)

typedef struct node_sink {
    vl_store_t *s;
    vl_error_t *err;
    int failed;
} node_sink_t;

static void store_node(void *ctx, int level, uint64_t index, const unsigned char hash[VL_HASH_LEN])
{
    node_sink_t *k = ctx;
    sqlite3_stmt *st;
    if (k->failed)
        return;
    st = W(k->s, VL_WSTMT_LEDGER_NODE, "INSERT INTO ledger_node (level, idx, hash) VALUES (?1, ?2, ?3)",
           k->err);
    if (!st) {
        k->failed = 1;
        return;
    }
    sqlite3_bind_int(st, 1, level);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
    sqlite3_bind_blob(st, 3, hash, VL_HASH_LEN, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        vl_store_sql_error(k->err, k->s->wdb, "storing a ledger node");
        k->failed = 1;
    }
    sqlite3_reset(st);
}

int vl_store_ledger_append(vl_store_t *s, vl_ledger_entry_t *e, unsigned char hash[VL_HASH_LEN],
                           vl_error_t *err)
{
    node_sink_t sink = {s, err, 0};
    sqlite3_stmt *st;
    size_t len;
    char *line;
    int rc;
    e->index = s->ledger.size;
    memcpy(e->prev, s->ledger.prev, VL_HASH_LEN);
    line = vl_ledger_entry_format(e, &len);
    if (!line)
        return vl_error_set(err, 500, "exception", NULL, "formatting a ledger entry failed");
    vl_ledger_leaf_hash(line, len, hash);
    st = W(s, VL_WSTMT_LEDGER_ENTRY, "INSERT INTO ledger_entry (idx, line, hash) VALUES (?1, ?2, ?3)",
           err);
    if (!st) {
        free(line);
        return -1;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)e->index);
    sqlite3_bind_text(st, 2, line, (int)len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, hash, VL_HASH_LEN, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    free(line);
    if (rc != SQLITE_DONE)
        return vl_store_sql_error(err, s->wdb, "appending a ledger entry");
    vl_ledger_range_append(&s->ledger.range, hash, store_node, &sink);
    if (sink.failed)
        return -1;
    s->ledger.size++;
    memcpy(s->ledger.prev, hash, VL_HASH_LEN);
    return 0;
}

int vl_store_ledger_sign(vl_store_t *s, vl_error_t *err)
{
    unsigned char root[VL_HASH_LEN];
    char *text, *note;
    sqlite3_stmt *st;
    int rc;
    if (!s->has_key || s->ledger.size == s->cp_size)
        return 0;
    vl_ledger_range_root(&s->ledger.range, root);
    text = vl_ledger_checkpoint_text(s->origin, s->ledger.size, root);
    note = text ? vl_ledger_note_sign(&s->key, text) : NULL;
    free(text);
    if (!note)
        return vl_error_set(err, 500, "exception", NULL, "signing a checkpoint failed");
    st = W(s, VL_WSTMT_LEDGER_CHECKPOINT,
           "INSERT OR REPLACE INTO ledger_checkpoint (size, note) VALUES (?1, ?2)", err);
    if (!st) {
        free(note);
        return -1;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)s->ledger.size);
    sqlite3_bind_text(st, 2, note, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    free(note);
    if (rc != SQLITE_DONE)
        return vl_store_sql_error(err, s->wdb, "storing a checkpoint");
    s->cp_size = s->ledger.size;
    return 0;
}

/* ------------------------------------------------------------------------
 * Opening: load, check, backfill
 * ---------------------------------------------------------------------- */

/* One Merkle node (level 0: an entry's hash) on `db`, through its statement
 * cache: the writer's connection at open, a reader's for proofs. */
static int node_lookup(sqlite3 *db, sqlite3_stmt **leaf_cache, sqlite3_stmt **node_cache,
                       int level, uint64_t index, unsigned char out[VL_HASH_LEN])
{
    vl_error_t err = VL_ERROR_INIT;
    sqlite3_stmt *st;
    int ok = 0;
    st = level == 0 ? vl_store_stmt(db, leaf_cache, "SELECT hash FROM ledger_entry WHERE idx = ?2",
                                    &err)
                    : vl_store_stmt(db, node_cache,
                                    "SELECT hash FROM ledger_node WHERE level = ?1 AND idx = ?2",
                                    &err);
    vl_error_clear(&err);
    if (!st)
        return -1;
    if (level)
        sqlite3_bind_int(st, 1, level);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == VL_HASH_LEN) {
        memcpy(out, sqlite3_column_blob(st, 0), VL_HASH_LEN);
        ok = 1;
    }
    sqlite3_reset(st);
    return ok ? 0 : -1;
}

/* Node source on the writer connection (used at open). */
static int writer_node(void *ctx, int level, uint64_t index, unsigned char out[VL_HASH_LEN])
{
    vl_store_t *s = ctx;
    return node_lookup(s->wdb, &s->wstmts[VL_WSTMT_LEDGER_LEAF_READ],
                       &s->wstmts[VL_WSTMT_LEDGER_NODE_READ], level, index, out);
}

/* Rebuilds the compact range of `size` leaves from the stored nodes: one
 * perfect subtree per set bit of size, largest first. */
static int load_range(vl_store_t *s, uint64_t size, vl_ledger_range_t *r, vl_error_t *err)
{
    uint64_t pos = 0;
    vl_ledger_range_init(r);
    for (int level = 63; level >= 0; level--) {
        uint64_t span = (uint64_t)1 << level;
        if (!(size & span))
            continue;
        if (writer_node(s, level, pos >> level, r->peaks[r->npeaks]) < 0)
            return vl_error_set(err, 500, "exception", NULL,
                                "ledger: the tree node (level %d, index %llu) is missing", level,
                                (unsigned long long)(pos >> level));
        r->npeaks++;
        pos += span;
    }
    r->size = size;
    return 0;
}

/* Verifies the last entries: stored hash = leaf hash of the line, lines
 * parse canonically with the right index, prev links the chain. */
static int check_tail(vl_store_t *s, uint64_t size, vl_error_t *err)
{
    uint64_t start = size > VL_LEDGER_TAIL_CHECK ? size - VL_LEDGER_TAIL_CHECK : 0;
    unsigned char prev[VL_HASH_LEN] = {0};
    sqlite3_stmt *st = NULL;
    uint64_t expect = start;
    int rc, ret = -1;
    if (start > 0 && writer_node(s, 0, start - 1, prev) < 0)
        return vl_error_set(err, 500, "exception", NULL, "ledger: entry %llu is missing",
                            (unsigned long long)(start - 1));
    if (sqlite3_prepare_v2(s->wdb, "SELECT idx, line, hash FROM ledger_entry WHERE idx >= ?1 ORDER BY idx",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, s->wdb, "reading the ledger");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)start);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t idx = (uint64_t)sqlite3_column_int64(st, 0);
        const char *line = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        const void *hash = sqlite3_column_blob(st, 2);
        unsigned char leaf[VL_HASH_LEN];
        vl_ledger_entry_t e;
        vl_error_t perr = VL_ERROR_INIT;
        if (idx != expect) {
            vl_error_set(err, 500, "exception", NULL, "ledger: entry %llu is missing",
                         (unsigned long long)expect);
            goto out;
        }
        vl_ledger_leaf_hash(line, len, leaf);
        if (sqlite3_column_bytes(st, 2) != VL_HASH_LEN || memcmp(leaf, hash, VL_HASH_LEN) != 0) {
            vl_error_set(err, 500, "exception", NULL,
                         "ledger: entry %llu does not match its stored hash",
                         (unsigned long long)idx);
            goto out;
        }
        if (vl_ledger_entry_parse(line, len, &e, &perr) < 0 || e.index != idx ||
            memcmp(e.prev, prev, VL_HASH_LEN) != 0) {
            vl_error_clear(&perr);
            vl_error_set(err, 500, "exception", NULL,
                         "ledger: entry %llu is malformed or does not chain to entry %llu",
                         (unsigned long long)idx, (unsigned long long)(idx ? idx - 1 : 0));
            goto out;
        }
        memcpy(prev, leaf, VL_HASH_LEN);
        expect++;
    }
    if (rc != SQLITE_DONE) {
        vl_store_sql_error(err, s->wdb, "reading the ledger");
        goto out;
    }
    if (expect != size) {
        vl_error_set(err, 500, "exception", NULL, "ledger: entry %llu is missing",
                     (unsigned long long)expect);
        goto out;
    }
    memcpy(s->ledger.prev, prev, VL_HASH_LEN);
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

/* The latest checkpoint must be signed by our key and match the tree. */
static int check_checkpoint(vl_store_t *s, vl_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char *text = NULL, origin[128];
    uint64_t size = 0, csize;
    unsigned char root[VL_HASH_LEN], want[VL_HASH_LEN];
    int ret = -1;
    vl_error_t verr = VL_ERROR_INIT;
    if (sqlite3_prepare_v2(s->wdb, "SELECT size, note FROM ledger_checkpoint ORDER BY size DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, s->wdb, "reading checkpoints");
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        s->cp_size = 0;
        return 0;
    }
    size = (uint64_t)sqlite3_column_int64(st, 0);
    if (s->has_key &&
        vl_ledger_note_verify((const char *)sqlite3_column_text(st, 1),
                              (size_t)sqlite3_column_bytes(st, 1), &s->key, 1, &text, &verr) < 0) {
        vl_error_set(err, 500, "exception", NULL,
                     "ledger: the checkpoint at size %llu does not verify with the ledger key (%s)",
                     (unsigned long long)size, vl_error_message(&verr));
        goto out;
    }
    if (text) {
        if (vl_ledger_checkpoint_parse(text, origin, sizeof origin, &csize, root, &verr) < 0 ||
            csize != size || size > s->ledger.size ||
            vl_ledger_subtree_hash(writer_node, s, 0, size, want) < 0 ||
            memcmp(root, want, VL_HASH_LEN) != 0) {
            vl_error_set(err, 500, "exception", NULL,
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
    sqlite3_finalize(st);
    return ret;
}

/* Anchors record versions written before the ledger existed (a database
 * from before migration 002), in their original order. Only while the
 * ledger is still empty, with no checkpoint, and the key at hand: once any
 * entry or checkpoint exists, a version without an entry is tampering (or
 * an erased entry), which `vitalog verify --data` reports, and must never
 * be made to look new. (Opens without the key, e.g. `vitalog verify
 * --data` on an old directory, leave the anchoring to the server.) */
static int backfill(vl_store_t *s, vl_error_t *err)
{
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int rc, ret = -1, n = 0;
    if (!s->has_key || s->ledger.size > 0 || s->cp_size > 0)
        return 0;
    if (vl_store_exec(s->wdb, "BEGIN IMMEDIATE;", err) < 0)
        return -1;
    if (sqlite3_prepare_v2(s->wdb,
                           "SELECT v.seq, r.type, r.id, v.version, v.method, v.body, v.salt,"
                           " v.last_updated FROM resource_version v JOIN resource r ON r.rid = v.rid"
                           " WHERE +v.ledger_idx IS NULL ORDER BY v.seq",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->wdb, "UPDATE resource_version SET ledger_idx = ?1 WHERE seq = ?2", -1,
                           &upd, NULL) != SQLITE_OK) {
        vl_store_sql_error(err, s->wdb, "anchoring earlier versions");
        goto out;
    }
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        vl_ledger_entry_t e;
        unsigned char hash[VL_HASH_LEN];
        const char *method = (const char *)sqlite3_column_text(sel, 4);
        int64_t version = sqlite3_column_int64(sel, 3);
        memset(&e, 0, sizeof e);
        e.time_us = sqlite3_column_int64(sel, 7);
        e.kind = !strcmp(method, "DELETE") ? VL_ENTRY_DELETE
                 : version == 1            ? VL_ENTRY_CREATE
                                           : VL_ENTRY_UPDATE;
        snprintf(e.ref, sizeof e.ref, "%s/%s/_history/%lld", sqlite3_column_text(sel, 1),
                 sqlite3_column_text(sel, 2), (long long)version);
        vl_ledger_commitment(sqlite3_column_blob(sel, 6), sqlite3_column_blob(sel, 5),
                             (size_t)sqlite3_column_bytes(sel, 5), e.commitment);
        sqlite3_bind_int64(upd, 1, (sqlite3_int64)s->ledger.size);
        sqlite3_bind_int64(upd, 2, sqlite3_column_int64(sel, 0));
        if (sqlite3_step(upd) != SQLITE_DONE) {
            vl_store_sql_error(err, s->wdb, "anchoring earlier versions");
            goto out;
        }
        sqlite3_reset(upd);
        if (vl_store_ledger_append(s, &e, hash, err) < 0)
            goto out;
        n++;
    }
    if (rc != SQLITE_DONE) {
        vl_store_sql_error(err, s->wdb, "anchoring earlier versions");
        goto out;
    }
    if (n && vl_store_ledger_sign(s, err) < 0)
        goto out;
    ret = 0;
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    if (ret == 0 && vl_store_exec(s->wdb, "COMMIT;", err) < 0)
        ret = -1;
    if (ret < 0)
        vl_store_exec(s->wdb, "ROLLBACK;", NULL);
    if (n)
        vl_logf(VL_LOG_INFO, "ledger: anchored %d record versions written before the ledger", n);
    return ret;
}

int vl_store_ledger_open(vl_store_t *s, vl_error_t *err)
{
    sqlite3_stmt *st = NULL;
    uint64_t size = 0;
    vl_ledger_state_t saved;
    if (sqlite3_prepare_v2(s->wdb, "SELECT max(idx) FROM ledger_entry", -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, s->wdb, "reading the ledger");
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        size = (uint64_t)sqlite3_column_int64(st, 0) + 1;
    sqlite3_finalize(st);
    memset(&s->ledger, 0, sizeof s->ledger);
    if (load_range(s, size, &s->ledger.range, err) < 0 || check_tail(s, size, err) < 0)
        return -1;
    s->ledger.size = size;
    if (check_checkpoint(s, err) < 0)
        return -1;
    s->cp_time_us = 0; /* sign one soon if entries are uncovered */
    saved = s->ledger;
    if (backfill(s, err) < 0) {
        s->ledger = saved;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Reads (any thread, on its reader connection)
 * ---------------------------------------------------------------------- */

int vl_store_ledger_size(vl_store_t *s, uint64_t *size, vl_error_t *err)
{
    vl_reader_t *r = vl_store_reader(s, err);
    sqlite3_stmt *st = NULL;
    if (!r)
        return -1;
    if (sqlite3_prepare_v2(r->db, "SELECT max(idx) FROM ledger_entry", -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, r->db, "reading the ledger");
    *size = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *size = (uint64_t)sqlite3_column_int64(st, 0) + 1;
    sqlite3_finalize(st);
    return 0;
}

int vl_store_ledger_node(void *ctx, int level, uint64_t index, unsigned char out[VL_HASH_LEN])
{
    vl_store_t *s = ctx;
    vl_error_t err = VL_ERROR_INIT;
    vl_reader_t *r = vl_store_reader(s, &err);
    vl_error_clear(&err);
    if (!r)
        return -1;
    return node_lookup(r->db, &r->stmts[VL_RSTMT_LEDGER_LEAF], &r->stmts[VL_RSTMT_LEDGER_NODE],
                       level, index, out);
}

int vl_store_ledger_scan(vl_store_t *s, uint64_t start, uint64_t end, vl_store_ledger_fn fn,
                         void *ctx, vl_error_t *err)
{
    vl_reader_t *r = vl_store_reader(s, err);
    sqlite3_stmt *es = NULL, *cs = NULL;
    int rc, ret = -1, have_cp;
    if (!r)
        return -1;
    if (vl_store_exec(r->db, "BEGIN;", err) < 0) /* one snapshot for both cursors */
        return -1;
    if (sqlite3_prepare_v2(r->db, "SELECT idx, line FROM ledger_entry WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
                           -1, &es, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db, "SELECT size, note FROM ledger_checkpoint WHERE size > ?1 AND size <= ?2 ORDER BY size",
                           -1, &cs, NULL) != SQLITE_OK) {
        vl_store_sql_error(err, r->db, "reading the ledger");
        goto out;
    }
    sqlite3_bind_int64(es, 1, (sqlite3_int64)start);
    sqlite3_bind_int64(es, 2, (sqlite3_int64)end);
    sqlite3_bind_int64(cs, 1, (sqlite3_int64)start);
    sqlite3_bind_int64(cs, 2, (sqlite3_int64)end);
    have_cp = sqlite3_step(cs) == SQLITE_ROW;
    while ((rc = sqlite3_step(es)) == SQLITE_ROW) {
        uint64_t idx = (uint64_t)sqlite3_column_int64(es, 0);
        int stop = fn(ctx, idx, (const char *)sqlite3_column_text(es, 1),
                      (size_t)sqlite3_column_bytes(es, 1), NULL, 0);
        if (stop) {
            ret = stop;
            goto out;
        }
        while (have_cp && (uint64_t)sqlite3_column_int64(cs, 0) == idx + 1) {
            stop = fn(ctx, idx, NULL, 0, (const char *)sqlite3_column_text(cs, 1),
                      (size_t)sqlite3_column_bytes(cs, 1));
            if (stop) {
                ret = stop;
                goto out;
            }
            have_cp = sqlite3_step(cs) == SQLITE_ROW;
        }
    }
    if (rc != SQLITE_DONE) {
        vl_store_sql_error(err, r->db, "reading the ledger");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(es);
    sqlite3_finalize(cs);
    vl_store_exec(r->db, "COMMIT;", NULL);
    return ret;
}

int vl_store_ledger_checkpoint(vl_store_t *s, int fresh, char **note, uint64_t *size,
                               vl_error_t *err)
{
    vl_reader_t *r;
    sqlite3_stmt *st = NULL;
    *note = NULL;
    *size = 0;
    if (fresh) {
        vl_store_write_t w;
        memset(&w, 0, sizeof w);
        w.op = VL_WRITE_CHECKPOINT;
        snprintf(w.type, sizeof w.type, "Ledger");
        if (vl_store_write_sync(s, &w) < 0) {
            vl_error_set(err, w.err.status ? w.err.status : 503, "transient", NULL, "%s",
                         vl_error_message(&w.err));
            vl_store_write_release(&w);
            return -1;
        }
        vl_store_write_release(&w);
    }
    r = vl_store_reader(s, err);
    if (!r)
        return -1;
    if (sqlite3_prepare_v2(r->db, "SELECT size, note FROM ledger_checkpoint ORDER BY size DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, r->db, "reading checkpoints");
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return vl_error_set(err, 404, "not-found", NULL, "the ledger has no checkpoint yet");
    }
    *size = (uint64_t)sqlite3_column_int64(st, 0);
    *note = strdup((const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    if (!*note)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    return 0;
}

int vl_store_ledger_record(vl_store_t *s, const char *type, const char *id, int64_t version,
                           uint64_t *index, unsigned char salt[32], char **bytes, size_t *len,
                           vl_error_t *err)
{
    vl_reader_t *r = vl_store_reader(s, err);
    sqlite3_stmt *st = NULL;
    int ret = -1;
    *bytes = NULL;
    *len = 0;
    if (!r)
        return -1;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT v.ledger_idx, v.salt, v.body FROM resource r JOIN resource_version v"
                           " ON v.rid = r.rid WHERE r.type = ?1 AND r.id = ?2 AND v.version = ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, r->db, "reading a record's ledger entry");
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, version);
    if (sqlite3_step(st) != SQLITE_ROW) {
        vl_error_set(err, 404, "not-found", NULL, "%s/%s has no version %lld", type, id,
                     (long long)version);
        goto out;
    }
    if (sqlite3_column_type(st, 0) == SQLITE_NULL || sqlite3_column_bytes(st, 1) != 32) {
        vl_error_set(err, 404, "not-found", NULL, "%s/%s/_history/%lld has no ledger entry", type,
                     id, (long long)version);
        goto out;
    }
    *index = (uint64_t)sqlite3_column_int64(st, 0);
    memcpy(salt, sqlite3_column_blob(st, 1), 32);
    *len = (size_t)sqlite3_column_bytes(st, 2);
    *bytes = malloc(*len + 1);
    if (!*bytes) {
        vl_error_set(err, 500, "exception", NULL, "out of memory");
        goto out;
    }
    if (*len)
        memcpy(*bytes, sqlite3_column_blob(st, 2), *len);
    (*bytes)[*len] = '\0';
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int vl_store_records_scan(vl_store_t *s, vl_store_record_fn fn, void *ctx, vl_error_t *err)
{
    vl_reader_t *r = vl_store_reader(s, err);
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;
    if (!r)
        return -1;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT v.ledger_idx, r.type, r.id, v.version, v.salt, v.body"
                           " FROM resource_version v JOIN resource r ON r.rid = v.rid"
                           " ORDER BY v.ledger_idx IS NULL, v.ledger_idx",
                           -1, &st, NULL) != SQLITE_OK)
        return vl_store_sql_error(err, r->db, "reading records");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char ref[256];
        unsigned char salt[32] = {0};
        int stop;
        snprintf(ref, sizeof ref, "%s/%s/_history/%lld", sqlite3_column_text(st, 1),
                 sqlite3_column_text(st, 2), (long long)sqlite3_column_int64(st, 3));
        if (sqlite3_column_bytes(st, 4) == 32)
            memcpy(salt, sqlite3_column_blob(st, 4), 32);
        stop = fn(ctx,
                  sqlite3_column_type(st, 0) == SQLITE_NULL ? UINT64_MAX
                                                            : (uint64_t)sqlite3_column_int64(st, 0),
                  ref, salt,
                  (const char *)sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5));
        if (stop) {
            ret = stop;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        vl_store_sql_error(err, r->db, "reading records");
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int vl_store_ledger_rotate(vl_store_t *s, const vl_ledger_key_t *next, vl_error_t *err)
{
    vl_store_write_t w;
    int rc;
    memset(&w, 0, sizeof w);
    w.op = VL_WRITE_ROTATE;
    w.next_key = next;
    snprintf(w.type, sizeof w.type, "Ledger");
    rc = vl_store_write_sync(s, &w);
    if (rc < 0)
        vl_error_set(err, w.err.status ? w.err.status : 500, "exception", NULL, "%s",
                     vl_error_message(&w.err));
    vl_store_write_release(&w);
    return rc;
}
