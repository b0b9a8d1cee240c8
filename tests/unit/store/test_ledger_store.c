/*
 * The store's ledger (src/store/ledger.c, writer.c):
 *  - a database from before the ledger (schema 1) gets every version
 *    anchored by the first open that holds the key, even when an open
 *    without the key (vitalog verify/export) applied migration 002 first;
 *  - once the ledger has entries, a version without one is never anchored
 *    later (that would make tampering look like a new write);
 *  - every write's entry commits with it: receipts match the stored lines,
 *    and a failed write (stale If-Match) leaves no entry;
 *  - checkpoints: on demand covers everything committed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "vitalog/store.h"

static vl_ledger_key_t g_key;

static const vl_store_options_t *with_key(void)
{
    static vl_store_options_t o;
    o.key = &g_key;
    o.origin = g_key.name;
    return &o;
}

static void make_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/vl-lstore-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void rm_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static uint64_t ledger_size(vl_store_t *s)
{
    uint64_t n = 0;
    vl_error_t err = VL_ERROR_INIT;
    assert_int_equal(vl_store_ledger_size(s, &n, &err), 0);
    return n;
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
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=1;"
                                      "INSERT INTO resource (rid, type, id, version, deleted, last_updated)"
                                      " VALUES (1, 'Patient', 'p1', 2, 0, 2000);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO resource_version (rid, version, last_updated, method,"
                                        " deleted, body, salt) VALUES (1, ?1, ?2, ?3, 0, ?4, ?5)",
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
    vl_error_t err = VL_ERROR_INIT;
    seen_t seen = {0, 0};
    char *note;
    uint64_t size;
    (void)state;
    make_dir(dir, sizeof dir);
    make_v1_database(dir);
    /* like `vitalog verify --data` first: migrates, cannot anchor */
    assert_int_equal(vl_store_open(dir, NULL, &s, &err), 0);
    assert_int_equal(ledger_size(s), 0);
    vl_store_close(s);
    /* the server, with its key: anchors both versions, signs a checkpoint */
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    assert_int_equal(ledger_size(s), 2);
    assert_int_equal(vl_store_records_scan(s, count_record, &seen, &err), 0);
    assert_int_equal(seen.anchored, 2);
    assert_int_equal(seen.unanchored, 0);
    assert_int_equal(vl_store_ledger_checkpoint(s, 0, &note, &size, &err), 0);
    assert_int_equal(size, 2);
    free(note);
    vl_store_close(s);
    rm_dir(dir);
}

static void test_no_late_anchoring(void **state)
{
    char dir[64], path[128];
    vl_store_t *s;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_write_t w;
    seen_t seen = {0, 0};
    sqlite3 *db;
    (void)state;
    make_dir(dir, sizeof dir);
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    for (int i = 0; i < 3; i++) {
        memset(&w, 0, sizeof w);
        w.op = VL_WRITE_CREATE;
        snprintf(w.type, sizeof w.type, "Patient");
        w.resource = json_pack("{s:s}", "resourceType", "Patient");
        vl_index_init(&w.index);
        assert_int_equal(vl_store_write_sync(s, &w), 0);
        assert_int_equal(w.ledger_index, (uint64_t)i);
        json_decref(w.resource);
        vl_store_write_release(&w);
    }
    vl_store_close(s);
    /* tamper: detach a version from its entry */
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE resource_version SET ledger_idx = NULL WHERE ledger_idx = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    assert_int_equal(ledger_size(s), 3); /* nothing appended */
    assert_int_equal(vl_store_records_scan(s, count_record, &seen, &err), 0);
    assert_int_equal(seen.unanchored, 1); /* reported, for verify --data */
    vl_store_close(s);
    rm_dir(dir);
}

static void test_failed_write_leaves_no_entry(void **state)
{
    char dir[64];
    vl_store_t *s;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_write_t w;
    (void)state;
    make_dir(dir, sizeof dir);
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    memset(&w, 0, sizeof w);
    w.op = VL_WRITE_UPDATE;
    snprintf(w.type, sizeof w.type, "Patient");
    snprintf(w.id, sizeof w.id, "p1");
    w.resource = json_pack("{s:s,s:s}", "resourceType", "Patient", "id", "p1");
    vl_index_init(&w.index);
    assert_int_equal(vl_store_write_sync(s, &w), 0); /* created: entry 0 */
    vl_store_write_release(&w);
    w.if_match = 7; /* stale */
    assert_int_equal(vl_store_write_sync(s, &w), -1);
    assert_int_equal(w.err.status, 412);
    vl_store_write_release(&w);
    json_decref(w.resource);
    assert_int_equal(ledger_size(s), 1);
    vl_store_close(s);
    rm_dir(dir);
}

/* ------------------------------------------------------------------------
 * Failures inside a batch
 * ---------------------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int entered, open, done;
} gate_t;

static void gate_done(vl_store_write_t *w, void *arg)
{
    gate_t *g = arg;
    (void)w;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void count_done(vl_store_write_t *w, void *arg)
{
    gate_t *g = arg;
    (void)w;
    pthread_mutex_lock(&g->mu);
    g->done++;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
}

static vl_store_write_t *patient_write(const char *code)
{
    vl_store_write_t *w = calloc(1, sizeof *w);
    w->op = VL_WRITE_CREATE;
    snprintf(w->type, sizeof w->type, "Patient");
    w->resource = json_pack("{s:s}", "resourceType", "Patient");
    vl_index_init(&w->index);
    vl_index_add(&w->index, "identifier", VL_INDEX_TOKEN, "urn:t", code, 0, 0, 0);
    return w;
}

static void free_write(vl_store_write_t *w)
{
    json_decref(w->resource);
    vl_store_write_release(w);
    free(w);
}

static void exec_sql(const char *dir, const char *sql)
{
    char path[128];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* SQLite rolls back the whole transaction in the middle of a batch (as some
 * I/O and full-disk errors do): nothing of that batch may stand, and the
 * ledger must stay a chain the next open accepts. */
static void test_transaction_lost_mid_batch(void **state)
{
    char dir[64];
    vl_store_t *s;
    vl_error_t err = VL_ERROR_INIT;
    gate_t g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    vl_store_write_t *gw, *w[6];
    const char *codes[6] = {"a", "b", "boom", "c", "d", "e"};
    uint64_t before;
    int ok = 0;
    (void)state;
    make_dir(dir, sizeof dir);
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    vl_store_close(s);
    exec_sql(dir, "CREATE TRIGGER boom BEFORE INSERT ON idx_token WHEN NEW.code = 'boom'"
                  " BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;");
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    gw = patient_write("gate");
    gw->done = gate_done;
    gw->done_arg = &g;
    assert_int_equal(vl_store_submit(s, gw, &err), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cond, &g.mu);
    pthread_mutex_unlock(&g.mu);
    before = ledger_size(s);
    for (int i = 0; i < 6; i++) { /* queued while the writer is held: one batch */
        w[i] = patient_write(codes[i]);
        w[i]->done = count_done;
        w[i]->done_arg = &g;
        assert_int_equal(vl_store_submit(s, w[i], &err), 0);
    }
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cond);
    while (g.done < 6)
        pthread_cond_wait(&g.cond, &g.mu);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < 6; i++) {
        ok += w[i]->result == 0;
        free_write(w[i]);
    }
    free_write(gw);
    assert_int_equal(ok, 0);                  /* the whole batch failed */
    assert_int_equal(ledger_size(s), before); /* and left nothing */
    w[0] = patient_write("after");
    assert_int_equal(vl_store_write_sync(s, w[0]), 0); /* the next batch works */
    assert_int_equal(w[0]->ledger_index, before);
    free_write(w[0]);
    vl_store_close(s);
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0); /* chain intact */
    assert_int_equal(ledger_size(s), before + 1);
    vl_store_close(s);
    rm_dir(dir);
}

/* Signing fails (here: the checkpoint row is refused): checkpoint requests
 * get a 503, not a stale success, and the writer retries once an interval,
 * not in a loop. */
static void test_failing_checkpoint(void **state)
{
    char dir[64], *note = NULL;
    vl_store_t *s;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_stats_t a, b;
    vl_store_write_t *w;
    uint64_t size;
    (void)state;
    make_dir(dir, sizeof dir);
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    vl_store_close(s);
    exec_sql(dir, "CREATE TRIGGER nocp BEFORE INSERT ON ledger_checkpoint"
                  " BEGIN SELECT RAISE(ABORT, 'injected'); END;");
    assert_int_equal(vl_store_open(dir, with_key(), &s, &err), 0);
    w = patient_write("x");
    assert_int_equal(vl_store_write_sync(s, w), 0); /* the write stands */
    free_write(w);
    assert_int_equal(vl_store_ledger_checkpoint(s, 1, &note, &size, &err), -1);
    assert_int_equal(err.status, 503);
    vl_error_clear(&err);
    vl_store_stats(s, &a);
    usleep(300 * 1000);
    vl_store_stats(s, &b);
    assert_true(b.commits - a.commits <= 2); /* about one try per second, no spin */
    assert_int_equal(ledger_size(s), 1);
    vl_store_close(s);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction_lost_mid_batch),
        cmocka_unit_test(test_failing_checkpoint),
        cmocka_unit_test(test_old_database_anchored_after_keyless_open),
        cmocka_unit_test(test_no_late_anchoring),
        cmocka_unit_test(test_failed_write_leaves_no_entry),
    };
    vl_error_t err = VL_ERROR_INIT;
    if (sodium_init() < 0 || vl_ledger_key_generate("test.invalid/store", &g_key, &err) < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
