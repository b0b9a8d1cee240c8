/*
 * The store's ledger (src/store/ledger_state.c, core.c):
 *  - a database from before the ledger (schema 1) gets every version
 *    anchored by the first open that holds the key, even when an open
 *    without the key (vitalog verify/export) applied the migrations first;
 *  - once the ledger has entries, a version without one is never anchored
 *    later (that would make tampering look like a new write);
 *  - every put's entry commits with it: receipts match the stored lines,
 *    and a failed put or unit leaves no entry;
 *  - a transaction lost mid-batch leaves nothing and an intact chain;
 *  - checkpoints: on demand covers everything committed; a failing one is
 *    reported, and retried once an interval, not in a loop;
 *  - key rotations: listed by vl_store_ledger_rotations (also after
 *    migration 003 rebuilt the list from the entries), and later
 *    checkpoints are signed by the new key.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support.h"

#define QUIET_MS 2000000000u /* about 23 days: no timed checkpoint during a test */

static const vl_store_options_t quiet = {.checkpoint_ms = QUIET_MS};

static vl_store_stats_t stats_of(vl_store_t *s)
{
    vl_store_stats_t st;
    vl_store_stats(s, &st);
    return st;
}

static void make_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/vl-lstore-XXXXXX");
    tstore_mkdtemp(dir);
}

/* A schema-1 database with two versions of one Patient, as 0.1.0 wrote it. */
static void make_v1_database(const char *dir)
{
    char path[256];
    sqlite3 *db;
    unsigned char salt[32];
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(vl_migrations[0].number, 1);
    assert_int_equal(sqlite3_exec(db, vl_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA user_version=1;"
                                  "INSERT INTO resource (rid, type, id, version, deleted,"
                                  " last_updated) VALUES (1, 'Patient', 'p1', 2, 0, 2000);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO resource_version (rid, version, last_updated,"
                                        " method, deleted, body, salt) VALUES (1, ?1, ?2, ?3, 0,"
                                        " ?4, ?5)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int v = 1; v <= 2; v++) {
        char body[128];
        snprintf(body, sizeof body,
                 "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"meta\":{\"versionId\":\"%d\"}}", v);
        randombytes_buf(salt, sizeof salt);
        sqlite3_bind_int(st, 1, v);
        sqlite3_bind_int(st, 2, 1000 * v);
        sqlite3_bind_text(st, 3, v == 1 ? "POST" : "PUT", -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, body, (int)strlen(body), SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 5, salt, 32, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

typedef struct seen {
    uint64_t anchored, unanchored;
} seen_t;

static int count_record(void *ctx, uint64_t index, const char *ref, const unsigned char salt[32],
                        const char *bytes, size_t len)
{
    seen_t *s = ctx;
    (void)ref, (void)salt, (void)bytes, (void)len;
    if (index == UINT64_MAX)
        s->unanchored++;
    else
        s->anchored++;
    return 0;
}

static void test_old_database_anchored_after_keyless_open(void **state)
{
    char dir[64];
    vl_store_t *s;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    seen_t seen = {0, 0};
    char *note;
    uint64_t size;
    vl_store_receipt_t r;
    (void)state;
    make_dir(dir, sizeof dir);
    make_v1_database(dir);
    /* like `vitalog verify --data` first: migrates, cannot anchor */
    assert_int_equal(vl_store_open(dir, NULL, &s, &err), 0);
    assert_int_equal(tstore_ledger_size(s), 0);
    assert_int_equal(vl_store_records_scan(s, vl_scope_everything(), count_record, &seen, &err), 0);
    assert_int_equal(seen.unanchored, 2);
    vl_store_close(s);
    /* the server, with its key: anchors both versions in order, signs a
     * checkpoint */
    s = tstore_open(dir, &quiet);
    assert_int_equal(tstore_ledger_size(s), 2);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(vl_store_records_scan(s, vl_scope_everything(), count_record, &seen, &err), 0);
    assert_int_equal(seen.anchored, 2);
    assert_int_equal(seen.unanchored, 0);
    tstore_expect_ledger(s, 0, 2, "Patient/p1/_history/1,Patient/p1/_history/2");
    assert_int_equal(vl_store_ledger_checkpoint(s, vl_scope_everything(), 0, &note, &size, &err),
                     0);
    assert_int_equal(size, 2);
    free(note);
    /* the migrations after 002 ran too: the Patient is in its compartment */
    {
        static const char *const p1[] = {"p1"};
        vl_scope_t sc = {.flags = 0, .n_patients = 1, .patients = p1};
        assert_int_equal(tstore_read(s, sc, "Patient", "p1", 1, NULL), VL_STORE_OK);
        assert_int_equal(tstore_read(s, sc, "Patient", "p1", 2, NULL), VL_STORE_OK);
    }
    /* writing continues after the anchored versions */
    r = tstore_put_ok(s, "Patient", "p1", "{\"v\":3}", NULL);
    assert_int_equal(r.version, 3);
    assert_int_equal(r.ledger_index, 2);
    vl_store_close(s);
    s = tstore_open(dir, &quiet); /* chain intact, nothing anchored twice */
    assert_int_equal(tstore_ledger_size(s), 3);
    vl_store_close(s);
    tstore_rmtree(dir);
}

static void test_no_late_anchoring(void **state)
{
    char dir[64];
    vl_store_t *s;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    seen_t seen = {0, 0};
    (void)state;
    make_dir(dir, sizeof dir);
    s = tstore_open(dir, &quiet);
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "p%d", i);
        assert_int_equal(tstore_put_ok(s, "Patient", id, "{}", NULL).ledger_index, (uint64_t)i);
    }
    vl_store_close(s);
    /* tamper: detach a version from its entry */
    tstore_sql(dir, "UPDATE resource_version SET ledger_idx = NULL WHERE ledger_idx = 1");
    s = tstore_open(dir, &quiet);
    assert_int_equal(tstore_ledger_size(s), 3); /* nothing appended */
    assert_int_equal(vl_store_records_scan(s, vl_scope_everything(), count_record, &seen, &err), 0);
    assert_int_equal(seen.unanchored, 1); /* reported, for verify --data */
    assert_int_equal(seen.anchored, 2);
    vl_store_close(s);
    tstore_rmtree(dir);
}

/* A unit that puts one version, then fails. */
static int put_then_fail(vl_store_txn_t *txn, void *arg)
{
    (void)tstore_apply_put(txn, arg);
    return -1;
}

static void test_failed_unit_leaves_no_entry(void **state)
{
    char dir[64];
    vl_store_t *s;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_store_unit_t u;
    tstore_put_t a;
    vl_store_receipt_t r;
    (void)state;
    make_dir(dir, sizeof dir);
    s = tstore_open(dir, &quiet);
    r = tstore_put_ok(s, "Patient", "p1", "{\"v\":1}", NULL); /* entry 0 */
    assert_int_equal(r.ledger_index, 0);
    /* a put that is not the next version: CONFLICT, no entry */
    a = tstore_put_of("Patient", "p1", 7, VL_METHOD_PUT, "{\"v\":7}", NULL);
    assert_int_equal(tstore_run_put(s, &a, &err), -1);
    assert_int_equal(err.kind, VL_STORE_CONFLICT);
    assert_int_equal(tstore_ledger_size(s), 1);
    /* a put that succeeded in a unit that then failed: no entry either */
    a = tstore_put_of("Patient", "p2", 1, VL_METHOD_POST, "{\"p\":2}", NULL);
    memset(&u, 0, sizeof u);
    u.apply = put_then_fail;
    u.arg = &a;
    assert_int_equal(vl_store_run(s, &u), -1);
    assert_int_equal(u.err.kind, VL_STORE_ABORTED);
    assert_int_equal(a.err.kind, VL_STORE_OK);
    assert_int_equal(a.receipt.ledger_index, 1); /* it had been appended... */
    assert_int_equal(tstore_ledger_size(s), 1);  /* ...and was rolled back */
    assert_int_equal(tstore_sql_int(dir, "SELECT count(*) FROM ledger_entry"), 1);
    assert_int_equal(tstore_sql_int(dir, "SELECT count(*) FROM ledger_node"), 0);
    /* the next put takes the index, and the chain holds */
    r = tstore_put_ok(s, "Patient", "p1", "{\"v\":2}", NULL);
    assert_int_equal(r.ledger_index, 1);
    assert_memory_not_equal(r.ledger_hash, a.receipt.ledger_hash, VL_HASH_LEN);
    tstore_expect_anchored(s, &r, "Patient", "p1", VL_ENTRY_UPDATE);
    tstore_expect_ledger(s, 0, 2, "Patient/p1/_history/1,Patient/p1/_history/2");
    vl_store_close(s);
    s = tstore_open(dir, &quiet);
    assert_int_equal(tstore_ledger_size(s), 2);
    vl_store_close(s);
    tstore_rmtree(dir);
}

/* Every receipt names its entry: index, hash, ref, kind and commitment. */
static void test_receipts_match_entries(void **state)
{
    char dir[64];
    vl_store_t *s;
    vl_store_receipt_t r[6];
    unsigned char proof[VL_LEDGER_MAX_PROOF][VL_HASH_LEN], root[VL_HASH_LEN];
    vl_store_err_t err = VL_STORE_ERR_INIT;
    char *note = NULL, *text = NULL, origin[128];
    uint64_t size = 0, csize = 0;
    size_t n = 0;
    vl_error_t verr = VL_ERROR_INIT;
    (void)state;
    make_dir(dir, sizeof dir);
    s = tstore_open(dir, &quiet);
    r[0] = tstore_put_ok(s, "Patient", "a", "{\"a\":1}", NULL);
    r[1] = tstore_put_ok(s, "Observation", "b", "{\"b\":1}", NULL);
    r[2] = tstore_put_ok(s, "Patient", "a", "{\"a\":2}", NULL);
    r[3] = tstore_delete_ok(s, "Patient", "a");
    r[4] = tstore_put_ok(s, "Patient", "a", "{\"a\":4}", NULL);
    r[5] = tstore_delete_ok(s, "Observation", "b");
    tstore_expect_anchored(s, &r[0], "Patient", "a", VL_ENTRY_CREATE);
    tstore_expect_anchored(s, &r[1], "Observation", "b", VL_ENTRY_CREATE);
    tstore_expect_anchored(s, &r[2], "Patient", "a", VL_ENTRY_UPDATE);
    tstore_expect_anchored(s, &r[3], "Patient", "a", VL_ENTRY_DELETE);
    tstore_expect_anchored(s, &r[4], "Patient", "a", VL_ENTRY_UPDATE);
    tstore_expect_anchored(s, &r[5], "Observation", "b", VL_ENTRY_DELETE);
    for (int i = 0; i < 6; i++)
        assert_int_equal(r[i].ledger_index, (uint64_t)i);
    /* a fresh checkpoint covers all six, and entry 3 is proved in it */
    assert_int_equal(vl_store_ledger_checkpoint(s, vl_scope_everything(), 1, &note, &size, &err),
                     0);
    assert_int_equal(size, 6);
    assert_int_equal(vl_ledger_note_verify(note, strlen(note), test_store_key(), 1, &text, &verr),
                     0);
    assert_int_equal(vl_ledger_checkpoint_parse(text, origin, sizeof origin, &csize, root, &verr),
                     0);
    assert_int_equal(csize, 6);
    assert_string_equal(origin, test_store_key()->name);
    assert_int_equal(vl_store_ledger_inclusion(s, vl_scope_everything(), 3, 6, proof, &n, &err), 0);
    assert_int_equal(vl_ledger_verify_inclusion(3, 6, r[3].ledger_hash,
                                                (const unsigned char(*)[VL_HASH_LEN])proof, n,
                                                root),
                     0);
    free(text);
    free(note);
    vl_store_close(s);
    tstore_rmtree(dir);
}

/* ------------------------------------------------------------------------
 * Failures inside a batch
 * ---------------------------------------------------------------------- */

/* SQLite rolls back the whole transaction in the middle of a batch (as some
 * I/O and full-disk errors do): nothing of that batch may stand, and the
 * ledger must stay a chain the next open accepts. */
static void test_transaction_lost_mid_batch(void **state)
{
    char dir[64];
    vl_store_t *s;
    tstore_gate_t g = TSTORE_GATE_INIT;
    tstore_counter_t c = TSTORE_COUNTER_INIT;
    const char *codes[6] = {"a", "b", "boom", "c", "d", "e"};
    char ids[6][16];
    tstore_put_t puts[6];
    vl_index_t ix[6];
    vl_store_unit_t units[6];
    vl_store_stats_t a, b;
    uint64_t before;
    (void)state;
    make_dir(dir, sizeof dir);
    s = tstore_open(dir, &quiet);
    vl_store_close(s);
    tstore_sql(dir, "CREATE TRIGGER boom BEFORE INSERT ON ix_token WHEN NEW.code = 'boom'"
                    " BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;");
    s = tstore_open(dir, &quiet);
    tstore_put_ok(s, "Patient", "first", "{}", NULL);
    before = tstore_ledger_size(s);
    a = stats_of(s);
    tstore_gate_hold(s, &g);
    for (int i = 0; i < 6; i++) { /* queued while the writer is held: one batch */
        snprintf(ids[i], sizeof ids[i], "p-%s", codes[i]);
        tstore_index_token(&ix[i], "identifier", "urn:t", codes[i], NULL);
        puts[i] = tstore_put_of("Patient", ids[i], 1, VL_METHOD_POST, "{}", &ix[i]);
        memset(&units[i], 0, sizeof units[i]);
        units[i].apply = tstore_apply_put;
        units[i].arg = &puts[i];
        tstore_submit(s, &units[i], &c);
    }
    tstore_gate_open(&g);
    tstore_wait(&c, 6);
    b = stats_of(s);
    assert_int_equal(c.ok, 0); /* the whole batch failed */
    for (int i = 0; i < 6; i++) {
        /* the unit that lost the transaction failed as itself, the others
         * as unavailable (retry) */
        assert_int_equal(units[i].result, -1);
        assert_int_equal(units[i].err.kind, i == 2 ? VL_STORE_ABORTED : VL_STORE_UNAVAILABLE);
        assert_int_equal(tstore_read(s, vl_scope_everything(), "Patient", ids[i], 0, NULL),
                         VL_STORE_NOT_FOUND);
        vl_index_free(&ix[i]);
    }
    assert_int_equal(b.commits - a.commits, 1); /* the gate's; the batch did not commit */
    assert_int_equal(b.unit_failures - a.unit_failures, 6);
    assert_int_equal(b.versions - a.versions, 0);
    assert_int_equal(tstore_ledger_size(s), before); /* and left nothing */
    assert_int_not_equal(vl_store_ready(s), 0);      /* not ready until a commit succeeds */
    /* the next batch works, from the ledger state of before the lost one */
    assert_int_equal(tstore_put_ok(s, "Patient", "after", "{}", NULL).ledger_index, before);
    assert_int_equal(vl_store_ready(s), 0);
    tstore_expect_ledger(s, 0, before + 1, "Patient/first/_history/1,Patient/after/_history/1");
    vl_store_close(s);
    s = tstore_open(dir, &quiet); /* chain intact */
    assert_int_equal(tstore_ledger_size(s), before + 1);
    vl_store_close(s);
    tstore_rmtree(dir);
}

/* Signing fails (here: the checkpoint row is refused): checkpoint requests
 * fail as UNAVAILABLE, not with a stale success, the writes stand, and the
 * writer retries once an interval, not in a loop. */
static void test_failing_checkpoint(void **state)
{
    char dir[64], *note = NULL;
    vl_store_t *s;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_store_stats_t a, b;
    uint64_t size;
    (void)state;
    make_dir(dir, sizeof dir);
    s = tstore_open(dir, &quiet);
    vl_store_close(s);
    tstore_sql(dir, "CREATE TRIGGER nocp BEFORE INSERT ON ledger_checkpoint"
                    " BEGIN SELECT RAISE(ABORT, 'injected'); END;");
    s = tstore_open(dir, &quiet);
    tstore_put_ok(s, "Patient", "x", "{}", NULL); /* the write stands */
    assert_int_equal(vl_store_ledger_checkpoint(s, vl_scope_everything(), 1, &note, &size, &err),
                     -1);
    assert_int_equal(err.kind, VL_STORE_UNAVAILABLE);
    assert_null(note);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_checkpoint(s, vl_scope_everything(), 0, &note, &size, &err),
                     -1);
    assert_int_equal(err.kind, VL_STORE_NOT_FOUND); /* none was ever stored */
    /* the failed request scheduled the next try an interval (QUIET_MS) away:
     * a writer retrying in a loop would commit again and again meanwhile.
     * (An observation window, not a synchronization: it passes however
     * slowly the machine runs.) */
    a = stats_of(s);
    usleep(200 * 1000);
    b = stats_of(s);
    assert_int_equal(b.commits, a.commits);
    assert_int_equal(tstore_ledger_size(s), 1);
    assert_int_equal(tstore_read(s, vl_scope_everything(), "Patient", "x", 1, NULL), VL_STORE_OK);
    vl_store_close(s);
    /* once signing works again, the next open signs what was left uncovered */
    tstore_sql(dir, "DROP TRIGGER nocp");
    s = tstore_open(dir, &quiet);
    assert_int_equal(vl_store_ledger_checkpoint(s, vl_scope_everything(), 1, &note, &size, &err),
                     0);
    assert_int_equal(size, 1);
    free(note);
    vl_store_close(s);
    tstore_rmtree(dir);
}

/* ------------------------------------------------------------------------
 * Key rotations
 * ---------------------------------------------------------------------- */

typedef struct rotations {
    int n;
    uint64_t index[8];
    char vkey[8][256];
    int stop_at; /* return 7 on this call (1-based), 0: never */
} rotations_t;

static int collect_rotation(void *ctx, uint64_t index, const char *vkey)
{
    rotations_t *r = ctx;
    if (r->n < 8) {
        r->index[r->n] = index;
        snprintf(r->vkey[r->n], sizeof r->vkey[r->n], "%s", vkey);
    }
    r->n++;
    return r->stop_at && r->n == r->stop_at ? 7 : 0;
}

static void expect_rotations(vl_store_t *s, uint64_t i1, const char *k1, uint64_t i2,
                             const char *k2)
{
    rotations_t r;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    memset(&r, 0, sizeof r);
    assert_int_equal(
        vl_store_ledger_rotations(s, vl_scope_everything(), collect_rotation, &r, &err), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.index[0], i1);
    assert_string_equal(r.vkey[0], k1);
    assert_int_equal(r.index[1], i2);
    assert_string_equal(r.vkey[1], k2);
}

static int note_verifies(const char *note, const vl_ledger_key_t *key)
{
    vl_error_t err = VL_ERROR_INIT;
    char *text = NULL;
    int ok = vl_ledger_note_verify(note, strlen(note), key, 1, &text, &err) == 0;
    vl_error_clear(&err);
    free(text);
    return ok;
}

static void test_rotations_listed(void **state)
{
    char dir[64], v2[256], v3[256], *note = NULL;
    const vl_ledger_key_t *k1 = test_store_key();
    vl_ledger_key_t k2, k3, pub;
    vl_error_t kerr = VL_ERROR_INIT;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_store_options_t o3 = {.checkpoint_ms = QUIET_MS, .key = &k3, .origin = k1->name};
    vl_store_t *s;
    rotations_t r;
    uint64_t size;
    tstore_chain_t chain;
    (void)state;
    assert_int_equal(vl_ledger_key_generate(k1->name, &k2, &kerr), 0);
    assert_int_equal(vl_ledger_key_generate(k1->name, &k3, &kerr), 0);
    assert_int_equal(vl_ledger_key_vkey(&k2, v2, sizeof v2), 0);
    assert_int_equal(vl_ledger_key_vkey(&k3, v3, sizeof v3), 0);
    make_dir(dir, sizeof dir);
    s = tstore_open(dir, &quiet);

    /* none yet */
    memset(&r, 0, sizeof r);
    assert_int_equal(
        vl_store_ledger_rotations(s, vl_scope_everything(), collect_rotation, &r, &err), 0);
    assert_int_equal(r.n, 0);

    tstore_put_ok(s, "Patient", "p1", "{}", NULL);             /* 0 */
    assert_int_equal(vl_store_ledger_rotate(s, &k2, &err), 0); /* 1 */
    tstore_put_ok(s, "Patient", "p1", "{\"v\":2}", NULL);      /* 2 */
    assert_int_equal(vl_store_ledger_rotate(s, &k3, &err), 0); /* 3 */
    /* a rotation to a key without its secret is refused and appends nothing */
    pub = k2;
    pub.has_secret = 0;
    assert_int_equal(vl_store_ledger_rotate(s, &pub, &err), -1);
    assert_int_equal(err.kind, VL_STORE_INVALID);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(tstore_ledger_size(s), 4);

    expect_rotations(s, 1, v2, 3, v3);
    /* the entries themselves introduce those keys */
    tstore_chain_read(s, 0, 4, &chain);
    assert_int_equal(chain.items[1].e.kind, VL_ENTRY_KEY_ROTATION);
    assert_string_equal(chain.items[1].e.key, v2);
    assert_int_equal(chain.items[3].e.kind, VL_ENTRY_KEY_ROTATION);
    assert_string_equal(chain.items[3].e.key, v3);
    tstore_chain_free(&chain);
    tstore_expect_ledger(s, 0, 4,
                         "Patient/p1/_history/1,key-rotation,Patient/p1/_history/2,key-rotation");
    /* a callback's non-zero return stops the listing and is returned */
    memset(&r, 0, sizeof r);
    r.stop_at = 1;
    assert_int_equal(
        vl_store_ledger_rotations(s, vl_scope_everything(), collect_rotation, &r, &err), 7);
    assert_int_equal(r.n, 1);
    /* the list is a ledger read */
    memset(&r, 0, sizeof r);
    {
        vl_scope_t no_ledger = {.flags = VL_SCOPE_ALL | VL_SCOPE_SHARED | VL_SCOPE_RECORDS};
        assert_int_equal(vl_store_ledger_rotations(s, no_ledger, collect_rotation, &r, &err), -1);
        assert_int_equal(err.kind, VL_STORE_DENIED);
        assert_int_equal(r.n, 0);
    }
    /* the checkpoint after the last rotation is signed by the new key */
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_checkpoint(s, vl_scope_everything(), 0, &note, &size, &err),
                     0);
    assert_int_equal(size, 4);
    assert_true(note_verifies(note, &k3));
    assert_false(note_verifies(note, k1));
    free(note);
    vl_store_close(s);

    /* the store now opens with the new key only, and lists the same */
    assert_int_not_equal(vl_store_open(dir, test_store_options(&quiet), &s, &err), 0);
    assert_int_equal(err.kind, VL_STORE_FAILED);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_open(dir, &o3, &s, &err), 0);
    expect_rotations(s, 1, v2, 3, v3);
    assert_int_equal(tstore_put_ok(s, "Patient", "p1", "{\"v\":3}", NULL).ledger_index, 4);
    vl_store_close(s);

    /* migration 003 builds the list from the entries of an older database */
    tstore_sql(dir, "DROP TABLE ledger_rotation; DROP TABLE version_patient; DROP TABLE token;"
                    " DROP TABLE version_code; DROP TABLE version_time; DROP TABLE facets_pending;"
                    /* and what 007 made: the index tables of schema 1 instead */
                    " DROP TABLE search_param; DROP TABLE code_system; DROP TABLE ix_token;"
                    " DROP TABLE ix_string; DROP TABLE ix_reference; DROP TABLE ix_date;"
                    " DROP TABLE ix_quantity; DROP TABLE ix_composite; DROP TABLE ix_series;"
                    " DROP TABLE ix_sort; DROP TABLE superseded; DROP TABLE reindex_pending;"
                    " DROP TABLE series_span;"
                    " CREATE TABLE idx_token (rid, param, system, code);"
                    " CREATE TABLE idx_string (rid, param, value, norm);"
                    " CREATE TABLE idx_reference (rid, param, ref);"
                    " CREATE TABLE idx_date (rid, param, lo, hi);"
                    " CREATE TABLE idx_quantity (rid, param, value, system, code);"
                    " PRAGMA user_version=2;");
    assert_int_equal(vl_store_open(dir, &o3, &s, &err), 0);
    expect_rotations(s, 1, v2, 3, v3);
    assert_int_equal(tstore_sql_int(dir, "SELECT count(*) FROM version_patient"), 3);
    vl_store_close(s);
    tstore_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction_lost_mid_batch),
        cmocka_unit_test(test_failing_checkpoint),
        cmocka_unit_test(test_old_database_anchored_after_keyless_open),
        cmocka_unit_test(test_no_late_anchoring),
        cmocka_unit_test(test_failed_unit_leaves_no_entry),
        cmocka_unit_test(test_receipts_match_entries),
        cmocka_unit_test(test_rotations_listed),
    };
    vl_log_set_level(VL_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
