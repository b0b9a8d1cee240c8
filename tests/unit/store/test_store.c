/*
 * Unit tests for the store core and its SQLite backend (src/store/core.c,
 * sqlite*.c): opening and migrating the database (003's compartment
 * backfill included), puts and reads of versions, what the store checks of
 * a put (names, bytes, the next version), history, units (several puts,
 * reads of their own writes, savepoint isolation inside a batch, group
 * commit under concurrency), access scopes on every read path, close with
 * queued units, and durability across reopen.
 *
 * Every test works in its own mkdtemp directory, removed afterwards. The
 * fixture's store signs checkpoints only on request (checkpoint_ms of
 * weeks), so the commit counters count exactly the batches a test makes.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support.h"

#define QUIET_MS 2000000000u /* about 23 days: no timed checkpoint during a test */

/* ------------------------------------------------------------------------
 * Fixture: a temporary directory; the store lives in DIR/data
 * ---------------------------------------------------------------------- */

typedef struct fixture {
    char root[64];
    char data[128];
    char db[192];
    vl_store_t *store;
} fixture_t;

static const vl_store_options_t quiet = {.checkpoint_ms = QUIET_MS};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->root, sizeof f->root, "/tmp/vl-store-XXXXXX");
    tstore_mkdtemp(f->root);
    snprintf(f->data, sizeof f->data, "%s/data", f->root);
    snprintf(f->db, sizeof f->db, "%s/vitalog.db", f->data);
    f->store = tstore_open(f->data, &quiet);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    vl_store_close(f->store);
    tstore_rmtree(f->root);
    free(f);
    return 0;
}

static void reopen(fixture_t *f, const vl_store_options_t *opts)
{
    vl_store_close(f->store);
    f->store = NULL;
    f->store = tstore_open(f->data, opts ? opts : &quiet);
}

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static vl_store_stats_t stats(vl_store_t *s)
{
    vl_store_stats_t st;
    vl_store_stats(s, &st);
    return st;
}

static vl_scope_t everything(void)
{
    return vl_scope_everything();
}

static void read_ok(vl_store_t *s, const char *type, const char *id, int64_t version,
                    vl_record_t *rec)
{
    vl_store_kind_t k = tstore_read(s, everything(), type, id, version, rec);
    if (k != VL_STORE_OK)
        fail_msg("read %s/%s v%lld: %s", type, id, (long long)version, vl_store_kind_name(k));
}

static void read_fails(vl_store_t *s, const char *type, const char *id, int64_t version,
                       vl_store_kind_t kind)
{
    vl_store_kind_t k = tstore_read(s, everything(), type, id, version, NULL);
    if (k != kind)
        fail_msg("read %s/%s v%lld: %s, want %s", type, id, (long long)version,
                 vl_store_kind_name(k), vl_store_kind_name(kind));
}

/* A token query that keeps its condition and value beside it. */
typedef struct tq {
    vl_query_value_t v;
    vl_query_cond_t c;
    vl_query_t q;
} tq_t;

static const vl_query_t *token_query(tq_t *t, const char *type, const char *param,
                                     const char *system, const char *code)
{
    memset(t, 0, sizeof *t);
    t->v.system = system;
    t->v.text = code;
    t->c.param = param;
    t->c.kind = VL_INDEX_TOKEN;
    t->c.missing = -1;
    t->c.n = 1;
    t->c.values = &t->v;
    t->q.type = type;
    t->q.n = param ? 1 : 0;
    t->q.conds = param ? &t->c : NULL;
    t->q.count = 100;
    return &t->q;
}

static int64_t search_count(vl_store_t *s, const char *type, const char *param, const char *system,
                            const char *code)
{
    tq_t t;
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    int64_t total;
    if (vl_store_search(s, everything(), token_query(&t, type, param, system, code), 1, 0, &out,
                        &err) != 0)
        fail_msg("search: %s", err.message);
    assert_int_equal((int64_t)out.n, out.total);
    total = out.total;
    vl_records_free(&out);
    return total;
}

/* "id/version,..." of a list of records (deleted versions as "id/version-"). */
static void ids_of(const vl_records_t *r, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%s/%lld%s", i ? "," : "", r->items[i].id,
                                (long long)r->items[i].version, r->items[i].deleted ? "-" : "");
}

static void expect_history(vl_store_t *s, vl_scope_t scope, const char *type, const char *id,
                           int count, int offset, const char *want, int64_t total)
{
    vl_page_t page = {.count = count, .offset = offset};
    vl_records_t h;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    char got[1024];
    if (vl_store_history(s, scope, type, id, &page, &h, &err) != 0)
        fail_msg("history %s/%s: %s: %s", type, id ? id : "", vl_store_kind_name(err.kind),
                 err.message);
    ids_of(&h, got, sizeof got);
    if (strcmp(got, want) != 0 || h.total != total)
        fail_msg("history %s/%s [%d, +%d]: got [%s] total %lld, want [%s] total %lld", type,
                 id ? id : "", offset, count, got, (long long)h.total, want, (long long)total);
    vl_records_free(&h);
}

static void expect_history_fails(vl_store_t *s, vl_scope_t scope, const char *type, const char *id,
                                 vl_store_kind_t kind)
{
    vl_page_t page = {.count = 100};
    vl_records_t h;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_history(s, scope, type, id, &page, &h, &err) == 0)
        fail_msg("history %s/%s succeeded (%zu records), want %s", type, id ? id : "", h.n,
                 vl_store_kind_name(kind));
    if (err.kind != kind)
        fail_msg("history %s/%s: %s, want %s", type, id ? id : "", vl_store_kind_name(err.kind),
                 vl_store_kind_name(kind));
    assert_int_equal(h.n, 0);
    assert_null(h.items);
}

/* Search of every live `type` (ids only; without conditions, in id order). */
static void expect_search(vl_store_t *s, vl_scope_t scope, const char *type, int count, int offset,
                          const char *want, int64_t total)
{
    tq_t t;
    vl_query_t q = *token_query(&t, type, NULL, NULL, NULL);
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    char got[1024];
    q.count = count;
    q.offset = offset;
    if (vl_store_search(s, scope, &q, 1, 0, &out, &err) != 0)
        fail_msg("search %s: %s", type, err.message);
    ids_of(&out, got, sizeof got);
    if (strcmp(got, want) != 0 || out.total != total)
        fail_msg("search %s [%d, +%d]: got [%s] total %lld, want [%s] total %lld", type, offset,
                 count, got, (long long)out.total, want, (long long)total);
    vl_records_free(&out);
}

/* ------------------------------------------------------------------------
 * Units of several puts
 * ---------------------------------------------------------------------- */

#define MULTI_MAX 8

/* A unit's puts, their bodies and index rows; `fail` makes apply return -1
 * after every put succeeded. */
typedef struct multi {
    tstore_put_t puts[MULTI_MAX];
    vl_index_t ix[MULTI_MAX];
    char bodies[MULTI_MAX][160];
    size_t n, done;
    int fail;
    vl_store_unit_t unit;
} multi_t;

/* Adds a put of type/id at `version` (a delete when `body` is NULL, else
 * POST for version 1 and PUT after), with an optional token code urn:t|code
 * and an optional patient compartment. */
static void multi_add(multi_t *m, const char *type, const char *id, int64_t version,
                      const char *body, const char *code, const char *patient)
{
    size_t i = m->n++;
    vl_method_t method = !body ? VL_METHOD_DELETE : version == 1 ? VL_METHOD_POST : VL_METHOD_PUT;
    assert_true(i < MULTI_MAX);
    vl_index_init(&m->ix[i]);
    if (code)
        assert_int_equal(vl_index_add(&m->ix[i], "code", VL_INDEX_TOKEN, "urn:t", code, 0, 0, 0),
                         0);
    if (patient)
        assert_int_equal(vl_index_add_patient(&m->ix[i], patient), 0);
    if (body)
        snprintf(m->bodies[i], sizeof m->bodies[i], "%s", body);
    m->puts[i] = tstore_put_of(type, id, version, method, body ? m->bodies[i] : NULL, &m->ix[i]);
}

static int multi_apply(vl_store_txn_t *txn, void *arg)
{
    multi_t *m = arg;
    for (size_t i = 0; i < m->n; i++) {
        if (tstore_apply_put(txn, &m->puts[i]) < 0)
            return -1;
        m->done++;
    }
    return m->fail ? -1 : 0;
}

static multi_t *multi_new(void)
{
    multi_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->unit.apply = multi_apply;
    m->unit.arg = m;
    return m;
}

static void multi_free(multi_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        vl_index_free(&m->ix[i]);
    free(m);
}

/* One put with the unit's error kind and the put's own. */
static void expect_put_fails(vl_store_t *s, const char *type, const char *id, int64_t version,
                             vl_method_t method, const char *body, vl_store_kind_t kind)
{
    tstore_put_t a = tstore_put_of(type, id, version, method, body, NULL);
    vl_store_unit_t u;
    memset(&u, 0, sizeof u);
    u.apply = tstore_apply_put;
    u.arg = &a;
    if (vl_store_run(s, &u) == 0)
        fail_msg("put %s/%s v%lld succeeded, want %s", type, id, (long long)version,
                 vl_store_kind_name(kind));
    assert_int_equal(u.result, -1);
    if (a.err.kind != kind || u.err.kind != VL_STORE_ABORTED)
        fail_msg("put %s/%s v%lld: put %s, unit %s; want put %s, unit aborted", type, id,
                 (long long)version, vl_store_kind_name(a.err.kind), vl_store_kind_name(u.err.kind),
                 vl_store_kind_name(kind));
}

/* Bytes no JSON parser would keep as they are: the store must. */
static const char *OBS =
    "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
    "\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":\"Patient/p1\"},"
    "\"valueQuantity\":{\"value\":72.00},  \"note\":[{\"text\":\"tiny 1E-22 \\\\u0001 "
    "\xc3\xa9\"}],\"component\":[{\"valueQuantity\":{\"value\":-0.0}}]}";

/* ------------------------------------------------------------------------
 * Open, migrations, files
 * ---------------------------------------------------------------------- */

static void test_open_creates_database(void **state)
{
    fixture_t *f = *state;
    struct stat st;
    int max = 0;

    assert_int_equal(stat(f->data, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(f->db, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(vl_store_ready(f->store), 0);

    for (const vl_migration_t *m = vl_migrations; m->sql; m++) {
        assert_true(m->number > max); /* ascending */
        assert_non_null(m->name);
        max = m->number;
    }
    assert_true(max >= 3);

    assert_int_equal(tstore_sql_int(f->data, "PRAGMA user_version"), max);
    assert_int_equal(tstore_sql_int(f->data,
                                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                                    " name IN ('resource', 'resource_version', 'ix_token',"
                                    " 'ix_string', 'ix_reference', 'ix_date', 'ix_quantity',"
                                    " 'ledger_entry', 'ledger_node', 'ledger_checkpoint',"
                                    " 'version_patient', 'ledger_rotation')"),
                     12);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource"), 0);
    {
        sqlite3 *db;
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
        sqlite3_finalize(q);
        sqlite3_close(db);
    }

    /* reopening applies nothing new and keeps the version */
    reopen(f, NULL);
    reopen(f, NULL);
    assert_int_equal(vl_store_ready(f->store), 0);
    assert_int_equal(tstore_sql_int(f->data, "PRAGMA user_version"), max);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM sqlite_master WHERE name ="
                                             " 'version_patient'"),
                     1);
    assert_int_equal(stat(f->db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_open_failure(void **state)
{
    fixture_t *f = *state;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_store_t *s2 = NULL;
    char path[256];
    /* a path under a regular file cannot be a data directory */
    snprintf(path, sizeof path, "%s/vitalog.db/sub", f->data);
    assert_int_not_equal(vl_store_open(path, test_store_options(NULL), &s2, &err), 0);
    assert_null(s2);
    assert_int_equal(err.kind, VL_STORE_FAILED);
    assert_true(err.message[0] != '\0');
    /* the store that is open is unaffected */
    assert_int_equal(vl_store_ready(f->store), 0);
}

/* Without the ledger key the store reads but refuses every put. */
static void test_open_without_key_refuses_writes(void **state)
{
    fixture_t *f = *state;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_record_t rec;
    tstore_put_ok(f->store, "Patient", "p1", "{\"resourceType\":\"Patient\"}", NULL);
    vl_store_close(f->store);
    f->store = NULL;
    assert_int_equal(vl_store_open(f->data, NULL, &f->store, &err), 0);
    expect_put_fails(f->store, "Patient", "p2", 1, VL_METHOD_POST, "{}", VL_STORE_UNAVAILABLE);
    expect_put_fails(f->store, "Patient", "p1", 2, VL_METHOD_PUT, "{}", VL_STORE_UNAVAILABLE);
    read_ok(f->store, "Patient", "p1", 0, &rec);
    assert_int_equal(rec.version, 1);
    vl_record_free(&rec);
    read_fails(f->store, "Patient", "p2", 0, VL_STORE_NOT_FOUND);
    assert_int_equal(tstore_ledger_size(f->store), 1);
    reopen(f, NULL);
    read_fails(f->store, "Patient", "p1", 2, VL_STORE_NOT_FOUND);
}

/* ------------------------------------------------------------------------
 * Puts and reads
 * ---------------------------------------------------------------------- */

static void test_put_read_versions(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_index_t ix1, ix2;
    vl_store_receipt_t r1, r;
    vl_record_t rec;
    int64_t before = vl_time_now_us();
    const char *body2 = "{\"resourceType\":\"Observation\",\"status\":\"amended\"}";

    tstore_index_token(&ix1, "code", "http://loinc.org", "8867-4", "p1");
    assert_int_equal(vl_index_add(&ix1, "subject", VL_INDEX_REFERENCE, NULL, "Patient/p1", 0, 0, 0),
                     0);
    r1 = tstore_put_ok(s, "Observation", "o1", OBS, &ix1);
    assert_int_equal(r1.version, 1);
    assert_int_equal(r1.ledger_index, 0);
    assert_true(r1.time_us >= before && r1.time_us <= vl_time_now_us());
    tstore_expect_anchored(s, &r1, "Observation", "o1", VL_ENTRY_CREATE);

    /* read current and vread 1: the exact bytes, the method, the time */
    read_ok(s, "Observation", "o1", 0, &rec);
    assert_string_equal(rec.type, "Observation");
    assert_string_equal(rec.id, "o1");
    assert_int_equal(rec.version, 1);
    assert_int_equal(rec.deleted, 0);
    assert_int_equal(rec.last_updated_us, r1.time_us);
    assert_int_equal(rec.method, VL_METHOD_POST);
    assert_int_equal(rec.body_len, strlen(OBS));
    assert_memory_equal(rec.body, OBS, strlen(OBS) + 1);
    vl_record_free(&rec);
    read_ok(s, "Observation", "o1", 1, &rec);
    assert_int_equal(rec.version, 1);
    assert_string_equal(rec.body, OBS);
    vl_record_free(&rec);
    /* wrong type, unknown id, unknown version */
    read_fails(s, "Patient", "o1", 0, VL_STORE_NOT_FOUND);
    read_fails(s, "Observation", "nope", 0, VL_STORE_NOT_FOUND);
    read_fails(s, "Observation", "o1", 2, VL_STORE_NOT_FOUND);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "8867-4"), 1);

    /* version 2 replaces the index rows */
    tstore_index_token(&ix2, "code", "http://loinc.org", "9279-1", "p1");
    {
        tstore_put_t a = tstore_put_of("Observation", "o1", 2, VL_METHOD_PUT, body2, &ix2);
        assert_int_equal(tstore_run_put(s, &a, NULL), 0);
        r = a.receipt;
    }
    assert_int_equal(r.version, 2);
    assert_int_equal(r.ledger_index, 1);
    assert_true(r.time_us >= r1.time_us);
    tstore_expect_anchored(s, &r, "Observation", "o1", VL_ENTRY_UPDATE);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "8867-4"), 0);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "9279-1"), 1);
    {
        vl_query_value_t v = {.text = "Patient/p1"};
        vl_query_cond_t c = {
            .param = "subject", .kind = VL_INDEX_REFERENCE, .missing = -1, .n = 1, .values = &v};
        vl_query_t q = {.type = "Observation", .n = 1, .conds = &c, .count = 10};
        vl_records_t out;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        assert_int_equal(vl_store_search(s, everything(), &q, 1, 0, &out, &err), 0);
        assert_int_equal(out.total, 0); /* version 2 has no subject row */
        vl_records_free(&out);
    }

    /* a version that is not the next: CONFLICT, and nothing written (what
     * a stale If-Match, a create of an existing id, or a lost race become) */
    {
        vl_store_stats_t a = stats(s);
        expect_put_fails(s, "Observation", "o1", 2, VL_METHOD_PUT, "{\"x\":1}", VL_STORE_CONFLICT);
        expect_put_fails(s, "Observation", "o1", 1, VL_METHOD_POST, "{\"x\":1}", VL_STORE_CONFLICT);
        expect_put_fails(s, "Observation", "o1", 4, VL_METHOD_PUT, "{\"x\":1}", VL_STORE_CONFLICT);
        expect_put_fails(s, "Observation", "o1", -1, VL_METHOD_PUT, "{\"x\":1}", VL_STORE_CONFLICT);
        expect_put_fails(s, "Observation", "o1", 4, VL_METHOD_DELETE, NULL, VL_STORE_CONFLICT);
        expect_put_fails(s, "Observation", "new", 2, VL_METHOD_PUT, "{\"x\":1}", VL_STORE_CONFLICT);
        vl_store_stats_t b = stats(s);
        assert_int_equal(b.versions, a.versions);
        assert_int_equal(b.units - a.units, 6);
        assert_int_equal(b.unit_failures - a.unit_failures, 6);
    }
    read_ok(s, "Observation", "o1", 0, &rec);
    assert_int_equal(rec.version, 2);
    assert_int_equal(rec.method, VL_METHOD_PUT);
    assert_string_equal(rec.body, body2);
    vl_record_free(&rec);
    read_fails(s, "Observation", "o1", 3, VL_STORE_NOT_FOUND);
    read_fails(s, "Observation", "o1", 4, VL_STORE_NOT_FOUND);
    read_fails(s, "Observation", "new", 0, VL_STORE_NOT_FOUND);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "9279-1"), 1);
    assert_int_equal(tstore_ledger_size(s), 2);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource_version"), 2);

    /* a delete: version 3 without bytes; older versions stay readable */
    {
        tstore_put_t a = tstore_put_of("Observation", "o1", 3, VL_METHOD_DELETE, NULL, NULL);
        assert_int_equal(tstore_run_put(s, &a, NULL), 0);
        tstore_expect_anchored(s, &a.receipt, "Observation", "o1", VL_ENTRY_DELETE);
    }
    read_ok(s, "Observation", "o1", 0, &rec);
    assert_int_equal(rec.deleted, 1);
    assert_int_equal(rec.version, 3);
    assert_int_equal(rec.method, VL_METHOD_DELETE);
    assert_null(rec.body);
    assert_int_equal(rec.body_len, 0);
    vl_record_free(&rec);
    read_ok(s, "Observation", "o1", 2, &rec);
    assert_int_equal(rec.deleted, 0);
    assert_string_equal(rec.body, body2);
    vl_record_free(&rec);
    read_ok(s, "Observation", "o1", 1, &rec);
    assert_string_equal(rec.body, OBS);
    vl_record_free(&rec);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "9279-1"), 0);

    /* a put after the delete brings it back as version 4, rows and all */
    r = tstore_put_ok(s, "Observation", "o1", body2, &ix2);
    assert_int_equal(r.version, 4);
    read_ok(s, "Observation", "o1", 0, &rec);
    assert_int_equal(rec.deleted, 0);
    assert_int_equal(rec.version, 4);
    vl_record_free(&rec);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "9279-1"), 1);

    /* the same id under another type is another resource; a first version
     * may be a PUT (update-as-create) */
    {
        tstore_put_t a = tstore_put_of("Device", "o1", 1, VL_METHOD_PUT, "{}", NULL);
        assert_int_equal(tstore_run_put(s, &a, NULL), 0);
        tstore_expect_anchored(s, &a.receipt, "Device", "o1", VL_ENTRY_CREATE);
    }
    read_ok(s, "Device", "o1", 0, &rec);
    assert_int_equal(rec.version, 1);
    assert_int_equal(rec.method, VL_METHOD_PUT);
    vl_record_free(&rec);
    read_ok(s, "Observation", "o1", 0, &rec);
    assert_int_equal(rec.version, 4);
    vl_record_free(&rec);

    /* bytes are bytes: an embedded NUL and invalid UTF-8 survive */
    {
        static const char raw[] = {'{', '"', 'a', '"', ':', '"', 'x', '\0', '\xff', '"', '}'};
        tstore_put_t a = tstore_put_of("Binary", "raw", 1, VL_METHOD_POST, raw, NULL);
        a.put.body_len = sizeof raw;
        assert_int_equal(tstore_run_put(s, &a, NULL), 0);
        read_ok(s, "Binary", "raw", 0, &rec);
        assert_int_equal(rec.body_len, sizeof raw);
        assert_memory_equal(rec.body, raw, sizeof raw);
        assert_int_equal(rec.body[sizeof raw], '\0');
        vl_record_free(&rec);
        tstore_expect_anchored(s, &a.receipt, "Binary", "raw", VL_ENTRY_CREATE);
    }
    tstore_expect_ledger(s, 0, tstore_ledger_size(s),
                         "Observation/o1/_history/1,Observation/o1/_history/2,"
                         "Observation/o1/_history/3,Observation/o1/_history/4,"
                         "Device/o1/_history/1,Binary/raw/_history/1");
    vl_index_free(&ix1);
    vl_index_free(&ix2);
}

/* Names end up in keys, refs and URLs: the store refuses any it would not
 * round-trip, on writes and reads alike, and a version needs bytes. */
static void test_invalid_names_and_puts(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    char long_name[80];
    static const char *const bad_types[] = {"", "Obs1", "Obs/x", "Obs x", "Obs-x", NULL};
    static const char *const bad_ids[] = {"",    ".",        "..",   "a/b", "a b",
                                          "a_b", "\xc3\xa9", "a%2F", NULL};
    vl_store_stats_t a = stats(s), b;
    vl_page_t page = {.count = 10};
    vl_records_t h;
    uint64_t idx;
    unsigned char salt[32];
    char *bytes;
    size_t len;

    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    for (int i = 0; bad_types[i]; i++) {
        vl_store_err_t err = VL_STORE_ERR_INIT;
        expect_put_fails(s, bad_types[i], "ok", 1, VL_METHOD_POST, "{}", VL_STORE_INVALID);
        assert_int_equal(tstore_read(s, everything(), bad_types[i], "ok", 0, NULL),
                         VL_STORE_INVALID);
        assert_int_not_equal(vl_store_history(s, everything(), bad_types[i], NULL, &page, &h, &err),
                             0);
        assert_int_equal(err.kind, VL_STORE_INVALID);
    }
    expect_put_fails(s, long_name, "ok", 1, VL_METHOD_POST, "{}", VL_STORE_INVALID);
    for (int i = 0; bad_ids[i]; i++) {
        vl_store_err_t err = VL_STORE_ERR_INIT;
        expect_put_fails(s, "Patient", bad_ids[i], 1, VL_METHOD_POST, "{}", VL_STORE_INVALID);
        expect_put_fails(s, "Patient", bad_ids[i], 1, VL_METHOD_DELETE, NULL, VL_STORE_INVALID);
        assert_int_equal(tstore_read(s, everything(), "Patient", bad_ids[i], 0, NULL),
                         VL_STORE_INVALID);
        assert_int_not_equal(
            vl_store_history(s, everything(), "Patient", bad_ids[i], &page, &h, &err), 0);
        assert_int_equal(err.kind, VL_STORE_INVALID);
        err = (vl_store_err_t)VL_STORE_ERR_INIT;
        assert_int_not_equal(vl_store_ledger_record(s, everything(), "Patient", bad_ids[i], 1, &idx,
                                                    salt, &bytes, &len, &err),
                             0);
        assert_int_equal(err.kind, VL_STORE_INVALID);
        assert_null(bytes);
    }
    expect_put_fails(s, "Patient", long_name, 1, VL_METHOD_POST, "{}", VL_STORE_INVALID);
    /* a version that is not a delete needs its bytes */
    expect_put_fails(s, "Patient", "nobody", 1, VL_METHOD_POST, NULL, VL_STORE_INVALID);
    expect_put_fails(s, "Patient", "nobody", 1, VL_METHOD_PUT, NULL, VL_STORE_INVALID);
    b = stats(s);
    assert_int_equal(b.versions, a.versions);
    assert_int_equal(tstore_ledger_size(s), 0);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource"), 0);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource_version"), 0);

    /* the limits themselves are fine */
    long_name[64] = '\0';
    tstore_put_ok(s, "Patient", long_name, "{}", NULL);
    assert_int_equal(tstore_read(s, everything(), "Patient", long_name, 1, NULL), VL_STORE_OK);
    long_name[0] = 'A'; /* a type starts with a capital (the ledger's ref grammar) */
    tstore_put_ok(s, long_name, "A.b-9", "{}", NULL);
    assert_int_equal(tstore_read(s, everything(), long_name, "A.b-9", 0, NULL), VL_STORE_OK);
}

/* A type the ledger's ref grammar refuses ([A-Z][A-Za-z]{0,63}, see
 * src/ledger/entry.c) must be refused by the put as INVALID, like any bad
 * name, not fail later as a storage error. */
static void test_type_name_matches_ledger_grammar(void **state)
{
    fixture_t *f = *state;
    expect_put_fails(f->store, "patient", "p1", 1, VL_METHOD_POST, "{}", VL_STORE_INVALID);
    expect_put_fails(f->store, "x", "p1", 1, VL_METHOD_DELETE, NULL, VL_STORE_INVALID);
    assert_int_equal(tstore_read(f->store, everything(), "patient", "p1", 0, NULL),
                     VL_STORE_INVALID);
    assert_int_equal(tstore_ledger_size(f->store), 0);
}

/* A put that fails part-way (here: an index row the backend refuses, after
 * the resource and version rows were inserted) rolls its whole unit back,
 * even when the apply callback carries on and returns 0: otherwise a
 * version would commit without its ledger entry (invariant 4 of core.c),
 * holding a ledger index that the next put is given again. */
typedef struct carry_on {
    vl_index_t bad;
    tstore_put_t failing, next;
    int failing_rc, next_rc;
} carry_on_t;

static int carry_on_apply(vl_store_txn_t *txn, void *arg)
{
    carry_on_t *c = arg;
    c->failing_rc = tstore_apply_put(txn, &c->failing);
    c->next_rc = tstore_apply_put(txn, &c->next);
    return 0;
}

static void test_failed_put_leaves_nothing(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    carry_on_t c;
    vl_store_unit_t u;
    memset(&c, 0, sizeof c);
    vl_index_init(&c.bad);
    assert_int_equal(vl_index_add(&c.bad, NULL, VL_INDEX_TOKEN, "urn:t", "broken", 0, 0, 0), 0);
    c.failing = tstore_put_of("Patient", "half", 1, VL_METHOD_POST, "{\"h\":1}", &c.bad);
    c.next = tstore_put_of("Patient", "whole", 1, VL_METHOD_POST, "{\"w\":1}", NULL);
    memset(&u, 0, sizeof u);
    u.apply = carry_on_apply;
    u.arg = &c;
    tstore_put_t later = tstore_put_of("Patient", "later", 1, VL_METHOD_POST, "{}", NULL);
    vl_store_err_t later_err = VL_STORE_ERR_INIT;
    int later_rc;
    (void)vl_store_run(s, &u);
    vl_index_free(&c.bad);
    later_rc = tstore_run_put(s, &later, &later_err); /* a unit of its own, afterwards */
    assert_int_equal(c.failing_rc, -1);
    assert_int_not_equal(c.failing.err.kind, VL_STORE_OK);
    /* nothing of the failed put, whatever became of the unit */
    read_fails(s, "Patient", "half", 0, VL_STORE_NOT_FOUND);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource WHERE id = 'half'"), 0);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource_version v WHERE"
                                             " NOT EXISTS (SELECT 1 FROM ledger_entry e"
                                             " WHERE e.idx = v.ledger_idx)"),
                     0);
    /* the unit is all or nothing: its later put went with it */
    assert_int_equal(u.result, -1);
    assert_int_equal(u.err.kind, VL_STORE_ABORTED);
    read_fails(s, "Patient", "whole", 0, VL_STORE_NOT_FOUND);
    assert_int_equal(tstore_ledger_size(s), 1); /* only `later` */
    /* and the store still takes writes */
    if (later_rc != 0)
        fail_msg("a later put failed: %s: %s", vl_store_kind_name(later_err.kind),
                 later_err.message);
}

/* ------------------------------------------------------------------------
 * History
 * ---------------------------------------------------------------------- */

static void test_history(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_store_receipt_t r2;
    vl_records_t h;
    vl_page_t page = {.count = 100};
    vl_store_err_t err = VL_STORE_ERR_INIT;
    const char *a2 = "{\"resourceType\":\"Observation\",\"status\":\"final\"}";

    tstore_put_ok(s, "Observation", "a", "{\"resourceType\":\"Observation\"}", NULL);
    tstore_put_ok(s, "Observation", "b", "{\"resourceType\":\"Observation\",\"id\":\"b\"}", NULL);
    r2 = tstore_put_ok(s, "Observation", "a", a2, NULL);
    tstore_delete_ok(s, "Observation", "a");
    tstore_put_ok(s, "Patient", "p", "{\"resourceType\":\"Patient\"}", NULL);

    /* one resource, newest first, with methods and bodies */
    assert_int_equal(vl_store_history(s, everything(), "Observation", "a", &page, &h, &err), 0);
    assert_int_equal(h.total, 3);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.items[0].version, 3);
    assert_int_equal(h.items[0].method, VL_METHOD_DELETE);
    assert_int_equal(h.items[0].deleted, 1);
    assert_null(h.items[0].body);
    assert_int_equal(h.items[1].version, 2);
    assert_int_equal(h.items[1].method, VL_METHOD_PUT);
    assert_string_equal(h.items[1].body, a2);
    assert_int_equal(h.items[1].last_updated_us, r2.time_us);
    assert_int_equal(h.items[2].version, 1);
    assert_int_equal(h.items[2].method, VL_METHOD_POST);
    for (size_t i = 0; i < h.n; i++) {
        assert_string_equal(h.items[i].id, "a");
        assert_string_equal(h.items[i].type, "Observation");
    }
    vl_records_free(&h);

    /* paging keeps the total */
    expect_history(s, everything(), "Observation", "a", 1, 1, "a/2", 3);
    expect_history(s, everything(), "Observation", "a", 10, 3, "", 3);
    expect_history(s, everything(), "Observation", "a", 0, 0, "", 3); /* total only */

    /* since: versions written at or after it */
    page.since_us = r2.time_us;
    assert_int_equal(vl_store_history(s, everything(), "Observation", "a", &page, &h, &err), 0);
    assert_int_equal(h.total, 2);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.items[0].version, 3);
    assert_int_equal(h.items[1].version, 2);
    vl_records_free(&h);
    page.since_us = 0;

    /* type history: every version of every Observation, newest first */
    expect_history(s, everything(), "Observation", NULL, 100, 0, "a/3-,a/2,b/1,a/1", 4);
    expect_history(s, everything(), "Observation", NULL, 2, 1, "a/2,b/1", 4);
    expect_history(s, everything(), "Patient", NULL, 100, 0, "p/1", 1);
    /* a type without resources: empty, not an error */
    expect_history(s, everything(), "Device", NULL, 100, 0, "", 0);
    /* unknown resource: NOT_FOUND */
    expect_history_fails(s, everything(), "Observation", "nope", VL_STORE_NOT_FOUND);
    expect_history_fails(s, everything(), "Patient", "a", VL_STORE_NOT_FOUND);

    /* max_bytes ends a page once its bodies hold that many bytes: a delete
     * holds none, so the page goes on to the next version */
    page.max_bytes = 1;
    assert_int_equal(vl_store_history(s, everything(), "Observation", NULL, &page, &h, &err), 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.total, 4);
    vl_records_free(&h);
    page.max_bytes = strlen(a2) + 1;
    assert_int_equal(vl_store_history(s, everything(), "Observation", NULL, &page, &h, &err), 0);
    assert_int_equal(h.n, 3);
    vl_records_free(&h);
    page.max_bytes = 1u << 20;
    assert_int_equal(vl_store_history(s, everything(), "Observation", NULL, &page, &h, &err), 0);
    assert_int_equal(h.n, 4);
    vl_records_free(&h);
    /* at least one record, however small the limit */
    page.max_bytes = 1;
    assert_int_equal(vl_store_history(s, everything(), "Patient", "p", &page, &h, &err), 0);
    assert_int_equal(h.n, 1);
    vl_records_free(&h);
}

/* _since after the last change of a known resource: an empty history (the
 * resource exists, nothing changed since), not NOT_FOUND. */
static void test_history_since_after_last_change(void **state)
{
    fixture_t *f = *state;
    vl_store_receipt_t r = tstore_put_ok(f->store, "Observation", "o", "{}", NULL);
    vl_page_t page = {.count = 100, .since_us = r.time_us + 1};
    vl_records_t h;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_history(f->store, everything(), "Observation", "o", &page, &h, &err) != 0)
        fail_msg("history since after the last change: %s", err.message);
    assert_int_equal(h.total, 0);
    assert_int_equal(h.n, 0);
    vl_records_free(&h);
}

/* ------------------------------------------------------------------------
 * Units of several puts
 * ---------------------------------------------------------------------- */

/* One unit, five versions of four resources: all committed in one commit,
 * one ledger entry each, in put order, at one time. */
static void test_multi_put_unit(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    multi_t *m = multi_new();
    vl_store_stats_t a, b;
    vl_record_t rec;
    uint64_t base;

    tstore_put_ok(s, "Patient", "before", "{}", NULL);
    base = tstore_ledger_size(s);
    assert_int_equal(base, 1);
    multi_add(m, "Patient", "m1", 1, "{\"resourceType\":\"Patient\"}", "m1", "m1");
    multi_add(m, "Observation", "m2", 1, "{\"resourceType\":\"Observation\"}", "m2", "m1");
    multi_add(m, "Observation", "m3", 1, "{\"v\":1}", "m3a", NULL);
    multi_add(m, "Observation", "m3", 2, "{\"v\":2}", "m3b", NULL); /* sees its own version 1 */
    multi_add(m, "Device", "m4", 1, "{\"resourceType\":\"Device\"}", NULL, "m1");
    a = stats(s);
    assert_int_equal(vl_store_run(s, &m->unit), 0);
    b = stats(s);
    assert_int_equal(m->done, 5);
    assert_int_equal(b.commits - a.commits, 1);
    assert_int_equal(b.units - a.units, 1);
    assert_int_equal(b.unit_failures - a.unit_failures, 0);
    assert_int_equal(b.versions - a.versions, 5);
    assert_int_equal(b.queue_depth, 0);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(m->puts[i].receipt.ledger_index, base + i);
        assert_int_equal(m->puts[i].receipt.time_us, m->puts[0].receipt.time_us);
        assert_int_equal(m->puts[i].receipt.version, m->puts[i].put.version);
        tstore_expect_anchored(s, &m->puts[i].receipt, m->puts[i].put.type, m->puts[i].put.id,
                               i == 3 ? VL_ENTRY_UPDATE : VL_ENTRY_CREATE);
    }
    assert_int_equal(tstore_ledger_size(s), base + 5);
    tstore_expect_ledger(s, 0, base + 5,
                         "Patient/before/_history/1,Patient/m1/_history/1,"
                         "Observation/m2/_history/1,Observation/m3/_history/1,"
                         "Observation/m3/_history/2,Device/m4/_history/1");
    read_ok(s, "Observation", "m3", 0, &rec);
    assert_int_equal(rec.version, 2);
    assert_string_equal(rec.body, "{\"v\":2}");
    assert_int_equal(rec.last_updated_us, m->puts[0].receipt.time_us);
    vl_record_free(&rec);
    read_ok(s, "Observation", "m3", 1, &rec);
    assert_string_equal(rec.body, "{\"v\":1}");
    vl_record_free(&rec);
    read_ok(s, "Device", "m4", 0, &rec);
    vl_record_free(&rec);
    /* the index rows are those of the last version of each */
    assert_int_equal(search_count(s, "Observation", "code", "urn:t", "m3a"), 0);
    assert_int_equal(search_count(s, "Observation", "code", "urn:t", "m3b"), 1);
    assert_int_equal(search_count(s, "Observation", "code", "urn:t", "m2"), 1);
    multi_free(m);

    /* and it all survives a reopen (the chain checks at open) */
    reopen(f, NULL);
    assert_int_equal(tstore_ledger_size(f->store), base + 5);
    read_ok(f->store, "Patient", "m1", 1, &rec);
    vl_record_free(&rec);
}

/* What unit C of test_failing_unit_leaves_nothing sees before its puts. */
typedef struct probe {
    multi_t *m;
    vl_store_kind_t b1, b2; /* txn_read of B's resources */
    int64_t a2_version;     /* txn_head of A's Observation (B put a version 2 of it) */
    int64_t b2_matches;     /* txn_search for B's index row */
    vl_store_kind_t search_kind;
} probe_t;

static int probe_apply(vl_store_txn_t *txn, void *arg)
{
    probe_t *p = arg;
    vl_record_t rec;
    vl_store_head_t h;
    vl_records_t out;
    tq_t t;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    p->b1 = vl_store_txn_read(txn, everything(), "Patient", "b1", 0, &rec, &err) == 0 ? VL_STORE_OK
                                                                                      : err.kind;
    if (p->b1 == VL_STORE_OK)
        vl_record_free(&rec);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    p->b2 = vl_store_txn_read(txn, everything(), "Observation", "b2", 1, &rec, &err) == 0
                ? VL_STORE_OK
                : err.kind;
    if (p->b2 == VL_STORE_OK)
        vl_record_free(&rec);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    p->a2_version = vl_store_txn_head(txn, "Observation", "a2", &h, &err) == 0 ? h.version : -1;
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    if (vl_store_txn_search(txn, everything(),
                            token_query(&t, "Observation", "code", "urn:t", "b2"), 1, 0, &out,
                            &err) == 0) {
        p->b2_matches = out.total;
        vl_records_free(&out);
    }
    p->search_kind = err.kind;
    return multi_apply(txn, p->m);
}

/* A unit that fails after several puts leaves nothing (no resource, no
 * version, no index row, no compartment, no ledger entry), while the units
 * around it in the same batch commit; the unit after it sees none of its
 * writes and reuses its ledger indices. */
/* A unit that puts a version, then fails: the name its index rows made
 * (search_param, code_system) leaves with it. */
static int put_then_fail(vl_store_txn_t *txn, void *arg)
{
    tstore_put_t *a = arg;
    tstore_apply_put(txn, a);
    return -1;
}

/* Interned names (sqlite_intern.c): a parameter name and a code system
 * first met in a unit that is rolled back must still be found when a
 * later transaction writes rows with them: the writer may not keep an id
 * whose row left with the unit. */
static void test_interned_names_survive_rollback(void **state)
{
    fixture_t *f = *state;
    vl_index_t ix;
    vl_store_unit_t u;
    vl_index_init(&ix);
    tstore_index_token(&ix, "brand-new", "urn:brand-new-system", "c1", NULL);
    tstore_put_t a = tstore_put_of("Basic", "x1", 1, VL_METHOD_POST, "{\"x\":1}", &ix);
    memset(&u, 0, sizeof u);
    u.apply = put_then_fail;
    u.arg = &a;
    assert_int_equal(vl_store_run(f->store, &u), -1);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM search_param WHERE name ="
                                             " 'Basic.brand-new'"),
                     0);
    /* a later commit with the same names: searchable by them */
    tstore_put_ok(f->store, "Basic", "x2", "{\"x\":2}", &ix);
    assert_int_equal(search_count(f->store, "Basic", "brand-new", "urn:brand-new-system", "c1"), 1);
    tstore_put_ok(f->store, "Basic", "x3", "{\"x\":3}", &ix);
    assert_int_equal(search_count(f->store, "Basic", "brand-new", "urn:brand-new-system", "c1"), 2);
    vl_index_free(&ix);
}

static void test_failing_unit_leaves_nothing(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    tstore_gate_t g = TSTORE_GATE_INIT;
    tstore_put_t gp = tstore_put_of("Patient", "g", 1, VL_METHOD_POST, "{\"g\":1}", NULL);
    tstore_counter_t c = TSTORE_COUNTER_INIT;
    multi_t *A = multi_new(), *B = multi_new(), *C = multi_new();
    probe_t probe = {.m = C};
    vl_store_stats_t a, b;
    vl_record_t rec;

    multi_add(A, "Patient", "a1", 1, "{\"a\":1}", "a1", "a1");
    multi_add(A, "Observation", "a2", 1, "{\"a\":2}", "a2", "a1");
    multi_add(B, "Patient", "b1", 1, "{\"b\":1}", "b1", "b1");
    multi_add(B, "Observation", "b2", 1, "{\"b\":2}", "b2", "b1");
    multi_add(B, "Observation", "a2", 2, "{\"b\":3}", "b3", "b1"); /* over A's */
    B->fail = 1;
    multi_add(C, "Observation", "a2", 2, "{\"c\":1}", "c1", "a1"); /* CONFLICT unless B is gone */
    multi_add(C, "Patient", "c1", 1, "{\"c\":2}", NULL, NULL);
    C->unit.apply = probe_apply;
    C->unit.arg = &probe;

    a = stats(s);
    g.put = &gp;
    tstore_gate_hold(s, &g);
    /* queued while the writer is held: A, B and C form one batch */
    tstore_submit(s, &A->unit, &c);
    tstore_submit(s, &B->unit, &c);
    tstore_submit(s, &C->unit, &c);
    assert_int_equal(stats(s).queue_depth, 3);
    tstore_gate_open(&g);
    tstore_gate_wait(&g);
    tstore_wait(&c, 3);
    b = stats(s);

    /* two commits (the gate's batch, then A+B+C) for four units */
    assert_int_equal(b.commits - a.commits, 2);
    assert_int_equal(b.units - a.units, 4);
    assert_true(b.commits - a.commits < b.units - a.units);
    assert_int_equal(b.unit_failures - a.unit_failures, 1);
    assert_int_equal(b.versions - a.versions, 5);
    assert_int_equal(g.unit.result, 0);
    assert_int_equal(A->unit.result, 0);
    assert_int_equal(B->unit.result, -1);
    assert_int_equal(B->unit.err.kind, VL_STORE_ABORTED);
    assert_int_equal(B->done, 3); /* every put of B had succeeded */
    assert_int_equal(C->unit.result, 0);

    /* C saw A's writes and none of B's */
    assert_int_equal(probe.b1, VL_STORE_NOT_FOUND);
    assert_int_equal(probe.b2, VL_STORE_NOT_FOUND);
    assert_int_equal(probe.a2_version, 1);
    assert_int_equal(probe.search_kind, VL_STORE_OK);
    assert_int_equal(probe.b2_matches, 0);

    /* ledger: B's entries were appended (indices 3..5) and rolled back; C
     * took index 3 again, the chain has no gap and no trace of B */
    assert_int_equal(gp.receipt.ledger_index, 0);
    assert_int_equal(A->puts[0].receipt.ledger_index, 1);
    assert_int_equal(A->puts[1].receipt.ledger_index, 2);
    assert_int_equal(B->puts[0].receipt.ledger_index, 3);
    assert_int_equal(B->puts[2].receipt.ledger_index, 5);
    assert_int_equal(C->puts[0].receipt.ledger_index, 3);
    assert_int_equal(C->puts[1].receipt.ledger_index, 4);
    assert_int_equal(tstore_ledger_size(s), 5);
    tstore_expect_ledger(s, 0, 5,
                         "Patient/g/_history/1,Patient/a1/_history/1,Observation/a2/_history/1,"
                         "Observation/a2/_history/2,Patient/c1/_history/1");
    tstore_expect_anchored(s, &C->puts[0].receipt, "Observation", "a2", VL_ENTRY_UPDATE);
    tstore_expect_anchored(s, &C->puts[1].receipt, "Patient", "c1", VL_ENTRY_CREATE);
    tstore_expect_anchored(s, &A->puts[1].receipt, "Observation", "a2", VL_ENTRY_CREATE);
    assert_memory_not_equal(B->puts[0].receipt.ledger_hash, C->puts[0].receipt.ledger_hash,
                            VL_HASH_LEN);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM ledger_entry"), 5);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM ledger_entry WHERE"
                                             " line LIKE '%/b1/%' OR line LIKE '%/b2/%'"),
                     0);

    /* nothing of B in the records */
    read_fails(s, "Patient", "b1", 0, VL_STORE_NOT_FOUND);
    read_fails(s, "Patient", "b1", 1, VL_STORE_NOT_FOUND);
    read_fails(s, "Observation", "b2", 0, VL_STORE_NOT_FOUND);
    expect_history_fails(s, everything(), "Observation", "b2", VL_STORE_NOT_FOUND);
    expect_history(s, everything(), "Patient", NULL, 100, 0, "c1/1,a1/1,g/1", 3);
    expect_history(s, everything(), "Observation", "a2", 100, 0, "a2/2,a2/1", 2);
    read_ok(s, "Observation", "a2", 2, &rec);
    assert_string_equal(rec.body, "{\"c\":1}");
    vl_record_free(&rec);
    assert_int_equal(search_count(s, "Observation", "code", "urn:t", "b2"), 0);
    assert_int_equal(search_count(s, "Observation", "code", "urn:t", "b3"), 0);
    assert_int_equal(search_count(s, "Patient", "code", "urn:t", "b1"), 0);
    assert_int_equal(search_count(s, "Observation", "code", "urn:t", "c1"), 1);
    assert_int_equal(search_count(s, "Observation", "code", "urn:t", "a2"), 0);
    {
        uint64_t idx;
        unsigned char salt[32];
        char *bytes;
        size_t len;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        assert_int_not_equal(vl_store_ledger_record(s, everything(), "Patient", "b1", 1, &idx, salt,
                                                    &bytes, &len, &err),
                             0);
        assert_int_equal(err.kind, VL_STORE_NOT_FOUND);
    }
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource WHERE id IN ('b1',"
                                             " 'b2')"),
                     0);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource_version"), 5);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM version_patient WHERE"
                                             " patient = 'b1'"),
                     0);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM ix_token WHERE code IN"
                                             " ('b1', 'b2', 'b3')"),
                     0);

    /* the chain stands at the next open, and the next put follows on */
    multi_free(A);
    multi_free(B);
    multi_free(C);
    reopen(f, NULL);
    assert_int_equal(tstore_ledger_size(f->store), 5);
    assert_int_equal(tstore_put_ok(f->store, "Patient", "after", "{}", NULL).ledger_index, 5);
    tstore_expect_ledger(f->store, 0, 6,
                         "Patient/g/_history/1,Patient/a1/_history/1,Observation/a2/_history/1,"
                         "Observation/a2/_history/2,Patient/c1/_history/1,"
                         "Patient/after/_history/1");
}

/* What a unit saw of its own writes (recorded on the writer thread). */
typedef struct own {
    vl_store_t *s;
    vl_index_t ix1, ix2;
    int failed_step; /* the first check that failed, 0 if none */
    char why[128];
    vl_store_kind_t outside; /* a public read (a reader connection) of the uncommitted version */
} own_t;

#define OWN_CHECK(o, step, cond)                                                                   \
    do {                                                                                           \
        if (!(o)->failed_step && !(cond)) {                                                        \
            (o)->failed_step = (step);                                                             \
            snprintf((o)->why, sizeof(o)->why, "%.120s", #cond);                                   \
        }                                                                                          \
    } while (0)

static int own_apply(vl_store_txn_t *txn, void *arg)
{
    own_t *o = arg;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_store_head_t h;
    vl_record_t rec;
    vl_records_t out;
    vl_page_t page = {.count = 10};
    tq_t t;
    tstore_put_t p1 = tstore_put_of("Patient", "s1", 1, VL_METHOD_POST, "{\"v\":1}", &o->ix1);
    tstore_put_t p2 = tstore_put_of("Patient", "s1", 2, VL_METHOD_PUT, "{\"v\":2}", &o->ix2);
    memset(&rec, 0, sizeof rec);
    memset(&out, 0, sizeof out);

    OWN_CHECK(o, 1,
              vl_store_txn_head(txn, "Patient", "s1", &h, &err) == 0 && !h.exists &&
                  h.version == 0);
    OWN_CHECK(o, 2, tstore_apply_put(txn, &p1) == 0);
    OWN_CHECK(o, 3, p1.receipt.time_us == vl_store_txn_time(txn));
    OWN_CHECK(o, 4,
              vl_store_txn_head(txn, "Patient", "s1", &h, &err) == 0 && h.exists &&
                  h.version == 1 && !h.deleted && h.last_updated_us == vl_store_txn_time(txn));
    OWN_CHECK(o, 5,
              vl_store_txn_read(txn, everything(), "Patient", "s1", 0, &rec, &err) == 0 &&
                  rec.version == 1 && !strcmp(rec.body, "{\"v\":1}"));
    vl_record_free(&rec);
    OWN_CHECK(o, 6,
              vl_store_txn_search(txn, everything(),
                                  token_query(&t, "Patient", "code", "urn:t", "one"), 1, 0, &out,
                                  &err) == 0 &&
                  out.total == 1 && out.n == 1 && !strcmp(out.items[0].id, "s1"));
    vl_records_free(&out);
    OWN_CHECK(o, 7,
              vl_store_txn_history(txn, everything(), "Patient", "s1", &page, &out, &err) == 0 &&
                  out.total == 1);
    vl_records_free(&out);
    /* a reader outside the transaction does not see it yet */
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    o->outside = vl_store_read(o->s, everything(), "Patient", "s1", 0, &rec, &err) == 0
                     ? VL_STORE_OK
                     : err.kind;
    if (o->outside == VL_STORE_OK)
        vl_record_free(&rec);
    OWN_CHECK(o, 8, tstore_apply_put(txn, &p2) == 0);
    OWN_CHECK(o, 9,
              vl_store_txn_read(txn, everything(), "Patient", "s1", 0, &rec, &err) == 0 &&
                  rec.version == 2 && !strcmp(rec.body, "{\"v\":2}"));
    vl_record_free(&rec);
    OWN_CHECK(o, 10,
              vl_store_txn_read(txn, everything(), "Patient", "s1", 1, &rec, &err) == 0 &&
                  rec.version == 1);
    vl_record_free(&rec);
    OWN_CHECK(o, 11,
              vl_store_txn_search(txn, everything(),
                                  token_query(&t, "Patient", "code", "urn:t", "one"), 1, 0, &out,
                                  &err) == 0 &&
                  out.total == 0);
    vl_records_free(&out);
    OWN_CHECK(o, 12,
              vl_store_txn_search(txn, everything(),
                                  token_query(&t, "Patient", "code", "urn:t", "two"), 1, 0, &out,
                                  &err) == 0 &&
                  out.total == 1 && out.items[0].version == 2);
    vl_records_free(&out);
    OWN_CHECK(o, 13,
              vl_store_txn_history(txn, everything(), "Patient", "s1", &page, &out, &err) == 0 &&
                  out.total == 2 && out.items[0].version == 2);
    vl_records_free(&out);
    return o->failed_step ? -1 : 0;
}

/* Inside apply, the txn reads see the unit's own puts (head, read, search,
 * history), while a reader outside the transaction does not yet. */
static void test_reads_inside_unit_see_own_puts(void **state)
{
    fixture_t *f = *state;
    own_t o;
    vl_store_unit_t u;
    vl_record_t rec;
    memset(&o, 0, sizeof o);
    o.s = f->store;
    tstore_index_token(&o.ix1, "code", "urn:t", "one", NULL);
    tstore_index_token(&o.ix2, "code", "urn:t", "two", NULL);
    memset(&u, 0, sizeof u);
    u.apply = own_apply;
    u.arg = &o;
    if (vl_store_run(f->store, &u) != 0 || o.failed_step)
        fail_msg("unit: result %d, check %d failed: %s", u.result, o.failed_step, o.why);
    assert_int_equal(o.outside, VL_STORE_NOT_FOUND);
    read_ok(f->store, "Patient", "s1", 0, &rec);
    assert_int_equal(rec.version, 2);
    vl_record_free(&rec);
    assert_int_equal(tstore_ledger_size(f->store), 2);
    assert_int_equal(search_count(f->store, "Patient", "code", "urn:t", "one"), 0);
    assert_int_equal(search_count(f->store, "Patient", "code", "urn:t", "two"), 1);
    vl_index_free(&o.ix1);
    vl_index_free(&o.ix2);
}

/* "Create unless a Patient with this identifier exists", decided inside
 * the unit with txn_search: the store's half of FHIR's If-None-Exist. */
typedef struct cond_create {
    const char *id, *code;
    int fail_after_put;
    int64_t matches;
    vl_store_kind_t search_kind;
    int created;
    vl_index_t ix;
    char body[128];
    tstore_put_t put;
    vl_store_unit_t unit;
} cond_create_t;

static int cond_create_apply(vl_store_txn_t *txn, void *arg)
{
    cond_create_t *c = arg;
    tq_t t;
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_txn_search(txn, everything(),
                            token_query(&t, "Patient", "identifier", "urn:mrn", c->code), 1, 0,
                            &out, &err) != 0) {
        c->search_kind = err.kind;
        return -1;
    }
    c->matches = out.total;
    vl_records_free(&out);
    if (c->matches > 0)
        return 0; /* exists: nothing to write */
    c->put = tstore_put_of("Patient", c->id, 1, VL_METHOD_POST, c->body, &c->ix);
    if (tstore_apply_put(txn, &c->put) < 0)
        return -1;
    c->created = 1;
    return c->fail_after_put ? -1 : 0;
}

static void cond_create_init(cond_create_t *c, const char *id, const char *code, int fail)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->code = code;
    c->fail_after_put = fail;
    c->matches = -1;
    vl_index_init(&c->ix);
    assert_int_equal(vl_index_add(&c->ix, "identifier", VL_INDEX_TOKEN, "urn:mrn", code, 0, 0, 0),
                     0);
    snprintf(c->body, sizeof c->body, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id);
    c->unit.apply = cond_create_apply;
    c->unit.arg = c;
}

/* Units later in a batch see what earlier units of the batch committed to
 * their savepoints, and nothing of a unit that was rolled back. */
static void test_later_units_see_earlier_units(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    tstore_gate_t g = TSTORE_GATE_INIT;
    tstore_counter_t cnt = TSTORE_COUNTER_INIT;
    cond_create_t c[5];
    vl_store_stats_t a, b;

    cond_create_init(&c[0], "d1", "dup", 0);
    cond_create_init(&c[1], "d2", "dup", 0);   /* sees d1 */
    cond_create_init(&c[2], "u1", "ghost", 1); /* creates, then fails */
    cond_create_init(&c[3], "u2", "ghost", 0); /* sees nothing of u1 */
    cond_create_init(&c[4], "u3", "ghost", 0); /* sees u2 */
    a = stats(s);
    tstore_gate_hold(s, &g);
    for (int i = 0; i < 5; i++)
        tstore_submit(s, &c[i].unit, &cnt);
    tstore_gate_open(&g);
    tstore_wait(&cnt, 5);
    b = stats(s);
    assert_int_equal(b.commits - a.commits, 2); /* the gate, then all five */
    assert_int_equal(b.units - a.units, 6);
    assert_int_equal(b.unit_failures - a.unit_failures, 1);
    assert_int_equal(b.versions - a.versions, 2);

    assert_int_equal(c[0].matches, 0);
    assert_int_equal(c[0].created, 1);
    assert_int_equal(c[1].unit.result, 0);
    assert_int_equal(c[1].matches, 1);
    assert_int_equal(c[1].created, 0);
    assert_int_equal(c[2].unit.result, -1);
    assert_int_equal(c[2].unit.err.kind, VL_STORE_ABORTED);
    assert_int_equal(c[2].created, 1);
    assert_int_equal(c[3].unit.result, 0);
    assert_int_equal(c[3].matches, 0);
    assert_int_equal(c[3].created, 1);
    assert_int_equal(c[4].matches, 1);
    assert_int_equal(c[4].created, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(c[i].search_kind, VL_STORE_OK);
    assert_int_equal(search_count(s, "Patient", "identifier", "urn:mrn", "dup"), 1);
    assert_int_equal(search_count(s, "Patient", "identifier", "urn:mrn", "ghost"), 1);
    read_fails(s, "Patient", "u1", 0, VL_STORE_NOT_FOUND);
    read_fails(s, "Patient", "d2", 0, VL_STORE_NOT_FOUND);
    assert_int_equal(tstore_read(s, everything(), "Patient", "u2", 1, NULL), VL_STORE_OK);
    tstore_expect_ledger(s, 0, 2, "Patient/d1/_history/1,Patient/u2/_history/1");
    /* a deleted match no longer counts */
    tstore_delete_ok(s, "Patient", "d1");
    {
        cond_create_t again;
        cond_create_init(&again, "d3", "dup", 0);
        assert_int_equal(vl_store_run(s, &again.unit), 0);
        assert_int_equal(again.matches, 0);
        assert_int_equal(again.created, 1);
        vl_index_free(&again.ix);
    }
    for (int i = 0; i < 5; i++)
        vl_index_free(&c[i].ix);
}

/* One batch, failing and succeeding single-put units side by side: a put
 * that is not the next version, and a put that fails in the backend after
 * its resource and version rows were inserted. */
static void test_failing_puts_in_batch(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    tstore_gate_t g = TSTORE_GATE_INIT;
    tstore_put_t gp = tstore_put_of("Patient", "gate", 1, VL_METHOD_POST, "{}", NULL);
    tstore_counter_t c = TSTORE_COUNTER_INIT;
    multi_t *w[7];
    vl_store_stats_t a, b;
    vl_record_t rec;

    tstore_put_ok(s, "Patient", "x", "{\"x\":1}", NULL);
    for (int i = 0; i < 7; i++)
        w[i] = multi_new();
    multi_add(w[0], "Patient", "good-a", 1, "{\"a\":1}", "a", NULL);
    multi_add(w[1], "Patient", "x", 5, "{\"x\":5}", NULL, NULL); /* not the next: CONFLICT */
    multi_add(w[2], "Patient", "good-b", 1, "{\"b\":1}", NULL, NULL);
    multi_add(w[3], "Patient", "x", 2, "{\"x\":2}", NULL, NULL);
    multi_add(w[4], "Patient", "x", 3, "{\"x\":3}", NULL, NULL); /* sees w[3]'s version 2 */
    /* an index row violating NOT NULL, after the resource, version and a
     * first index row were inserted: the savepoint must take them back */
    multi_add(w[5], "Patient", "partial", 1, "{\"p\":1}", "partial", "partial");
    assert_int_equal(vl_index_add(&w[5]->ix[0], NULL, VL_INDEX_TOKEN, "urn:t", "broken", 0, 0, 0),
                     0);
    multi_add(w[6], "Patient", "good-a", 1, "{\"a\":2}", NULL, NULL); /* w[0] took it */

    a = stats(s);
    g.put = &gp;
    tstore_gate_hold(s, &g);
    for (int i = 0; i < 7; i++)
        tstore_submit(s, &w[i]->unit, &c);
    tstore_gate_open(&g);
    tstore_wait(&c, 7);
    b = stats(s);
    assert_int_equal(b.commits - a.commits, 2); /* gate + one batch */
    assert_int_equal(b.units - a.units, 8);
    assert_int_equal(b.unit_failures - a.unit_failures, 3);
    assert_int_equal(b.versions - a.versions, 5);

    assert_int_equal(g.unit.result, 0);
    assert_int_equal(w[0]->unit.result, 0);
    assert_int_equal(w[1]->unit.result, -1);
    assert_int_equal(w[1]->unit.err.kind, VL_STORE_ABORTED);
    assert_int_equal(w[1]->puts[0].err.kind, VL_STORE_CONFLICT);
    assert_int_equal(w[2]->unit.result, 0);
    assert_int_equal(w[3]->unit.result, 0);
    assert_int_equal(w[4]->unit.result, 0);
    assert_int_equal(w[5]->unit.result, -1);
    assert_int_equal(w[5]->unit.err.kind, VL_STORE_ABORTED);
    assert_int_not_equal(w[5]->puts[0].err.kind, VL_STORE_OK);
    assert_int_equal(w[6]->unit.result, -1);
    assert_int_equal(w[6]->puts[0].err.kind, VL_STORE_CONFLICT);

    /* the committed state */
    read_ok(s, "Patient", "x", 0, &rec);
    assert_int_equal(rec.version, 3);
    assert_string_equal(rec.body, "{\"x\":3}");
    vl_record_free(&rec);
    read_ok(s, "Patient", "good-a", 0, &rec);
    assert_int_equal(rec.version, 1);
    assert_string_equal(rec.body, "{\"a\":1}");
    vl_record_free(&rec);
    read_ok(s, "Patient", "good-b", 0, &rec);
    vl_record_free(&rec);
    read_fails(s, "Patient", "partial", 0, VL_STORE_NOT_FOUND);
    read_fails(s, "Patient", "partial", 1, VL_STORE_NOT_FOUND);
    read_fails(s, "Patient", "x", 4, VL_STORE_NOT_FOUND);
    assert_int_equal(search_count(s, "Patient", "code", "urn:t", "partial"), 0);
    assert_int_equal(search_count(s, "Patient", "code", "urn:t", "a"), 1);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM resource WHERE id ="
                                             " 'partial'"),
                     0);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM version_patient"), 0);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM ix_token"), 1);
    expect_history(s, everything(), "Patient", "x", 100, 0, "x/3,x/2,x/1", 3);
    expect_history(s, everything(), "Patient", NULL, 100, 0, "x/3,x/2,good-b/1,good-a/1,gate/1,x/1",
                   6);
    tstore_expect_ledger(s, 0, tstore_ledger_size(s),
                         "Patient/x/_history/1,Patient/gate/_history/1,"
                         "Patient/good-a/_history/1,Patient/good-b/_history/1,"
                         "Patient/x/_history/2,Patient/x/_history/3");
    /* the writer is healthy afterwards */
    assert_int_equal(vl_store_ready(s), 0);
    tstore_put_ok(s, "Patient", "later", "{}", NULL);
    for (int i = 0; i < 7; i++)
        multi_free(w[i]);
}

/* ------------------------------------------------------------------------
 * Group commit under concurrency
 *
 * THREADS threads submit PER_THREAD single-put units each without waiting.
 * The writer is held until every thread has queued BEFORE_OPEN of them, so
 * at least THREADS * BEFORE_OPEN (more than batch_max, 256) are queued when
 * it resumes: its next batch is full, and the commits are then fewer than
 * the units whatever the timing after that.
 * ---------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 200
#define BEFORE_OPEN 50

typedef struct job {
    tstore_put_t put;
    vl_index_t ix;
    char id[32], body[128];
    vl_store_unit_t unit;
} job_t;

typedef struct early {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int threads; /* threads that queued BEFORE_OPEN units */
} early_t;

typedef struct worker {
    vl_store_t *store;
    int index;
    job_t *jobs;
    tstore_counter_t c;
    early_t *early;
    int submit_errors, read_errors;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    char code[16];
    snprintf(code, sizeof code, "t%d", wk->index);
    for (int i = 0; i < PER_THREAD; i++) {
        job_t *j = &wk->jobs[i];
        vl_store_err_t err = VL_STORE_ERR_INIT;
        snprintf(j->id, sizeof j->id, "t%d-%d", wk->index, i);
        snprintf(j->body, sizeof j->body,
                 "{\"resourceType\":\"Observation\",\"valueQuantity\":{\"value\":%d.%02d0}}",
                 wk->index, i % 100);
        vl_index_init(&j->ix);
        if (vl_index_add(&j->ix, "code", VL_INDEX_TOKEN, "urn:thread", code, 0, 0, 0) < 0)
            wk->submit_errors++;
        j->put = tstore_put_of("Observation", j->id, 1, VL_METHOD_POST, j->body, &j->ix);
        j->unit.apply = tstore_apply_put;
        j->unit.arg = &j->put;
        j->unit.done = tstore_count_done;
        j->unit.done_arg = &wk->c;
        if (vl_store_submit(wk->store, &j->unit, &err) != 0) {
            wk->submit_errors++;
            pthread_mutex_lock(&wk->c.mu);
            wk->c.done++;
            pthread_mutex_unlock(&wk->c.mu);
        }
        if (i == BEFORE_OPEN - 1) {
            pthread_mutex_lock(&wk->early->mu);
            wk->early->threads++;
            pthread_cond_broadcast(&wk->early->cond);
            pthread_mutex_unlock(&wk->early->mu);
        }
    }
    tstore_wait(&wk->c, PER_THREAD);
    /* read back from this thread (its own read connection) */
    for (int i = 0; i < PER_THREAD; i++) {
        vl_record_t rec;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        job_t *j = &wk->jobs[i];
        if (j->unit.result != 0 || vl_store_read(wk->store, vl_scope_everything(), "Observation",
                                                 j->id, 0, &rec, &err) != 0) {
            wk->read_errors++;
            continue;
        }
        if (rec.version != 1 || !rec.body || strcmp(rec.body, j->body) != 0)
            wk->read_errors++;
        vl_record_free(&rec);
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    worker_t wk[THREADS];
    pthread_t th[THREADS];
    early_t early = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    tstore_gate_t g = TSTORE_GATE_INIT;
    vl_store_stats_t before, after;
    const uint64_t n = THREADS * PER_THREAD;
    unsigned char *seen = calloc(n, 1);

    assert_non_null(seen);
    before = stats(s);
    tstore_gate_hold(s, &g);
    for (int t = 0; t < THREADS; t++) {
        memset(&wk[t], 0, sizeof wk[t]);
        wk[t].store = s;
        wk[t].index = t;
        wk[t].early = &early;
        wk[t].jobs = calloc(PER_THREAD, sizeof *wk[t].jobs);
        assert_non_null(wk[t].jobs);
        pthread_mutex_init(&wk[t].c.mu, NULL);
        pthread_cond_init(&wk[t].c.cond, NULL);
        assert_int_equal(pthread_create(&th[t], NULL, worker_main, &wk[t]), 0);
    }
    pthread_mutex_lock(&early.mu);
    while (early.threads < THREADS)
        pthread_cond_wait(&early.cond, &early.mu);
    pthread_mutex_unlock(&early.mu);
    assert_true(stats(s).queue_depth >= THREADS * BEFORE_OPEN);
    tstore_gate_open(&g);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    tstore_gate_wait(&g);

    for (int t = 0; t < THREADS; t++) {
        if (wk[t].c.ok != PER_THREAD || wk[t].submit_errors || wk[t].read_errors)
            fail_msg("thread %d: %d of %d units committed, %d submit and %d read errors", t,
                     wk[t].c.ok, PER_THREAD, wk[t].submit_errors, wk[t].read_errors);
        assert_int_equal(wk[t].c.done, PER_THREAD);
    }
    after = stats(s);
    assert_int_equal(after.units - before.units, n + 1);
    assert_int_equal(after.unit_failures - before.unit_failures, 0);
    assert_int_equal(after.versions - before.versions, n);
    assert_int_equal(after.queue_depth, 0);
    /* the gate's commit, one full batch of 256, then at most one per unit */
    if (after.commits - before.commits > 2 + n - 256)
        fail_msg("no group commit: %llu commits for %llu units",
                 (unsigned long long)(after.commits - before.commits), (unsigned long long)n);
    assert_true(after.commits - before.commits < after.units - before.units);

    /* one ledger entry per version, each index once, the chain whole */
    assert_int_equal(tstore_ledger_size(s), n);
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            uint64_t idx = wk[t].jobs[i].put.receipt.ledger_index;
            assert_true(idx < n);
            assert_int_equal(seen[idx], 0);
            seen[idx] = 1;
        }
    }
    {
        tstore_chain_t c;
        tstore_chain_read(s, 0, n, &c);
        assert_int_equal(c.n, n);
        tstore_chain_free(&c);
    }
    expect_history(s, everything(), "Observation", NULL, 0, 0, "", (int64_t)n);
    /* each thread's index rows: PER_THREAD matches */
    for (int t = 0; t < THREADS; t++) {
        char code[16];
        tq_t tq;
        vl_query_t q;
        vl_records_t out;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        snprintf(code, sizeof code, "t%d", t);
        q = *token_query(&tq, "Observation", "code", "urn:thread", code);
        q.conds = &tq.c;
        q.count = 1;
        assert_int_equal(vl_store_search(s, everything(), &q, 1, 0, &out, &err), 0);
        assert_int_equal(out.total, PER_THREAD);
        assert_int_equal(out.n, 1);
        vl_records_free(&out);
    }
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++)
            vl_index_free(&wk[t].jobs[i].ix);
        free(wk[t].jobs);
        pthread_mutex_destroy(&wk[t].c.mu);
        pthread_cond_destroy(&wk[t].c.cond);
    }
    free(seen);
}

/* ------------------------------------------------------------------------
 * Close and reopen
 * ---------------------------------------------------------------------- */

/* Opens the gate once vl_store_close() is under way (the store no longer
 * reports ready), then stays alive until close returned: its reader
 * connection is closed by the store, not by this thread's exit. */
typedef struct closer {
    vl_store_t *store;
    tstore_gate_t *gate;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int closed;
} closer_t;

static void *open_when_closing(void *arg)
{
    closer_t *c = arg;
    while (vl_store_ready(c->store) == 0)
        sched_yield();
    tstore_gate_open(c->gate);
    pthread_mutex_lock(&c->mu);
    while (!c->closed)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void test_close_completes_queued_units(void **state)
{
    fixture_t *f = *state;
    enum { N = 100 };
    tstore_gate_t g = TSTORE_GATE_INIT;
    tstore_put_t gp = tstore_put_of("Patient", "gate", 1, VL_METHOD_POST, "{}", NULL);
    tstore_counter_t c = TSTORE_COUNTER_INIT;
    closer_t cl = {NULL, &g, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    char ids[N][16], bodies[N][64];
    tstore_put_t puts[N];
    vl_store_unit_t units[N];
    pthread_t opener;
    vl_store_options_t opts = {.batch_max = 7, .checkpoint_ms = QUIET_MS}; /* several batches */

    reopen(f, &opts);
    g.put = &gp;
    tstore_gate_hold(f->store, &g);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "q%03d", i);
        snprintf(bodies[i], sizeof bodies[i], "{\"resourceType\":\"Patient\",\"n\":%d}", i);
        puts[i] = tstore_put_of("Patient", ids[i], 1, VL_METHOD_POST, bodies[i], NULL);
        memset(&units[i], 0, sizeof units[i]);
        units[i].apply = tstore_apply_put;
        units[i].arg = &puts[i];
        tstore_submit(f->store, &units[i], &c);
    }
    assert_int_equal(stats(f->store).queue_depth, N);
    /* close while N units are queued behind the held writer */
    cl.store = f->store;
    assert_int_equal(pthread_create(&opener, NULL, open_when_closing, &cl), 0);
    vl_store_close(f->store);
    f->store = NULL;
    pthread_mutex_lock(&cl.mu);
    cl.closed = 1;
    pthread_cond_broadcast(&cl.cond);
    pthread_mutex_unlock(&cl.mu);
    pthread_join(opener, NULL);
    /* close returned: every queued unit completed, successfully */
    assert_int_equal(g.done, 1);
    assert_int_equal(g.unit.result, 0);
    assert_int_equal(c.done, N);
    assert_int_equal(c.ok, N);

    f->store = tstore_open(f->data, &quiet);
    assert_int_equal(tstore_ledger_size(f->store), N + 1);
    for (int i = 0; i < N; i++) {
        vl_record_t rec;
        read_ok(f->store, "Patient", ids[i], 0, &rec);
        assert_string_equal(rec.body, bodies[i]);
        vl_record_free(&rec);
    }
}

/* Units without their callbacks are refused before anything is queued. */
static void test_unit_arguments_checked(void **state)
{
    fixture_t *f = *state;
    vl_store_unit_t u;
    tstore_put_t a = tstore_put_of("Patient", "p", 1, VL_METHOD_POST, "{}", NULL);
    vl_store_err_t err = VL_STORE_ERR_INIT;
    memset(&u, 0, sizeof u);
    u.apply = tstore_apply_put;
    u.arg = &a;
    /* a unit without done is refused at once */
    assert_int_equal(vl_store_submit(f->store, &u, &err), -1);
    assert_int_equal(err.kind, VL_STORE_INVALID);
    /* vl_store_run without apply fails without queueing */
    {
        vl_store_unit_t none;
        memset(&none, 0, sizeof none);
        assert_int_equal(vl_store_run(f->store, &none), -1);
        assert_int_equal(none.err.kind, VL_STORE_INVALID);
    }
    assert_int_equal(stats(f->store).units, 0);
}

static void test_persists_across_reopen(void **state)
{
    fixture_t *f = *state;
    vl_index_t ix;
    vl_record_t rec;
    const char *v2 = "{\"resourceType\":\"Observation\",\"v\":2}";

    tstore_index_token(&ix, "code", "http://loinc.org", "8867-4", "p1");
    tstore_put_ok(f->store, "Observation", "o", OBS, &ix);
    tstore_put_ok(f->store, "Observation", "o", v2, &ix);
    reopen(f, NULL);
    read_ok(f->store, "Observation", "o", 0, &rec);
    assert_int_equal(rec.version, 2);
    assert_string_equal(rec.body, v2);
    vl_record_free(&rec);
    read_ok(f->store, "Observation", "o", 1, &rec);
    assert_string_equal(rec.body, OBS);
    vl_record_free(&rec);
    expect_history(f->store, everything(), "Observation", "o", 10, 0, "o/2,o/1", 2);
    assert_int_equal(search_count(f->store, "Observation", "code", "http://loinc.org", "8867-4"),
                     1);
    /* the compartments too */
    {
        static const char *const p1[] = {"p1"};
        vl_scope_t sc = {.flags = 0, .n_patients = 1, .patients = p1};
        assert_int_equal(tstore_read(f->store, sc, "Observation", "o", 1, NULL), VL_STORE_OK);
    }
    /* and writing continues where it stopped */
    assert_int_equal(tstore_delete_ok(f->store, "Observation", "o").ledger_index, 2);
    reopen(f, NULL);
    read_ok(f->store, "Observation", "o", 0, &rec);
    assert_int_equal(rec.deleted, 1);
    assert_int_equal(rec.version, 3);
    vl_record_free(&rec);
    assert_int_equal(search_count(f->store, "Observation", "code", "http://loinc.org", "8867-4"),
                     0);
    tstore_expect_ledger(f->store, 0, 3,
                         "Observation/o/_history/1,Observation/o/_history/2,"
                         "Observation/o/_history/3");
    vl_index_free(&ix);
}

/* Readers on other threads, each with its own connection. */
typedef struct reader_arg {
    vl_store_t *store;
    int errors;
} reader_arg_t;

static void *reader_main(void *arg)
{
    reader_arg_t *r = arg;
    for (int i = 0; i < 20; i++) {
        vl_record_t rec;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        if (vl_store_read(r->store, vl_scope_everything(), "Patient", "r1", 0, &rec, &err) != 0) {
            r->errors++;
            continue;
        }
        r->errors += rec.version != 1 || strcmp(rec.body, "{\"r\":1}") != 0;
        vl_record_free(&rec);
    }
    return NULL;
}

static void test_readers_on_many_threads(void **state)
{
    fixture_t *f = *state;
    pthread_t th[16];
    reader_arg_t ra[16];
    tstore_put_ok(f->store, "Patient", "r1", "{\"r\":1}", NULL);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 16; i++) {
            ra[i] = (reader_arg_t){f->store, 0};
            assert_int_equal(pthread_create(&th[i], NULL, reader_main, &ra[i]), 0);
        }
        for (int i = 0; i < 16; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(ra[i].errors, 0);
        }
    }
    assert_int_equal(vl_store_ready(f->store), 0);
}

/* ------------------------------------------------------------------------
 * Access scopes
 *
 * The data set (in write order; [..] are the patient compartments):
 *
 *    1 Patient/p1 [p1]          7 Organization/org1 []
 *    2 Patient/p2 [p2]          8 Observation/oshared []
 *    3 Observation/o1 v1 [p1]   9 Observation/o1 v2 [p1]
 *    4 Observation/o2 [p2]     10 Observation/omove v2 [p2]
 *    5 Observation/o12 [p1 p2] 11 Observation/odel v1 [p1]
 *    6 Observation/omove v1 [p1]  12 Observation/odel v2: delete
 *
 * Every Observation has the token code urn:t|x.
 * ---------------------------------------------------------------------- */

static const char *const P1[] = {"p1"};
static const char *const P2[] = {"p2"};
static const char *const P12[] = {"p1", "p2"};
static const char *const NOBODY[] = {"nobody"};

static vl_scope_t scope(unsigned flags, const char *const *patients, size_t n)
{
    vl_scope_t s = {.flags = flags, .n_patients = n, .patients = patients};
    return s;
}

#define S1 scope(0, P1, 1)
#define S1S scope(VL_SCOPE_SHARED, P1, 1)
#define S2 scope(0, P2, 1)
#define S12 scope(0, P12, 2)
#define SSH scope(VL_SCOPE_SHARED, NULL, 0)
#define SZERO scope(0, NULL, 0)

static vl_store_receipt_t scoped_put(vl_store_t *s, const char *type, const char *id,
                                     const char *pa, const char *pb)
{
    vl_index_t ix;
    char body[128];
    vl_store_receipt_t r;
    tstore_index_token(&ix, "code", "urn:t", "x", pa);
    if (pb)
        assert_int_equal(vl_index_add_patient(&ix, pb), 0);
    snprintf(body, sizeof body, "{\"resourceType\":\"%s\",\"id\":\"%s\",\"p\":\"%s%s\"}", type, id,
             pa ? pa : "", pb ? pb : "");
    r = tstore_put_ok(s, type, id, body, &ix);
    vl_index_free(&ix);
    return r;
}

static int setup_scoped(void **state)
{
    fixture_t *f;
    setup(state);
    f = *state;
    scoped_put(f->store, "Patient", "p1", "p1", NULL);
    scoped_put(f->store, "Patient", "p2", "p2", NULL);
    scoped_put(f->store, "Observation", "o1", "p1", NULL);
    scoped_put(f->store, "Observation", "o2", "p2", NULL);
    scoped_put(f->store, "Observation", "o12", "p1", "p2");
    scoped_put(f->store, "Observation", "omove", "p1", NULL);
    scoped_put(f->store, "Organization", "org1", NULL, NULL);
    scoped_put(f->store, "Observation", "oshared", NULL, NULL);
    scoped_put(f->store, "Observation", "o1", "p1", NULL);
    scoped_put(f->store, "Observation", "omove", "p2", NULL);
    scoped_put(f->store, "Observation", "odel", "p1", NULL);
    tstore_delete_ok(f->store, "Observation", "odel");
    assert_int_equal(tstore_ledger_size(f->store), 12);
    return 0;
}

static void expect_read(vl_store_t *s, const char *what, vl_scope_t sc, const char *type,
                        const char *id, int64_t version, vl_store_kind_t kind)
{
    vl_record_t rec;
    vl_store_kind_t k = tstore_read(s, sc, type, id, version, &rec);
    if (k != kind)
        fail_msg("%s: read %s/%s v%lld: %s, want %s", what, type, id, (long long)version,
                 vl_store_kind_name(k), vl_store_kind_name(kind));
    if (k == VL_STORE_OK) {
        assert_string_equal(rec.id, id);
        if (version)
            assert_int_equal(rec.version, version);
        vl_record_free(&rec);
    }
}

static void test_scope_read(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    const vl_store_kind_t OK = VL_STORE_OK, NF = VL_STORE_NOT_FOUND;
    vl_record_t rec;

    expect_read(s, "own current", S1, "Observation", "o1", 0, OK);
    expect_read(s, "own current +shared", S1S, "Observation", "o1", 0, OK);
    expect_read(s, "own version", S1, "Observation", "o1", 1, OK);
    expect_read(s, "other patient's", S2, "Observation", "o1", 0, NF);
    expect_read(s, "other patient's version", S2, "Observation", "o1", 1, NF);
    expect_read(s, "shared only", SSH, "Observation", "o1", 0, NF);
    expect_read(s, "everything", everything(), "Observation", "o1", 0, OK);
    expect_read(s, "ALL alone", scope(VL_SCOPE_ALL, NULL, 0), "Observation", "o1", 0, OK);
    expect_read(s, "p2's", S1, "Observation", "o2", 0, NF);
    expect_read(s, "p2's as p2", S2, "Observation", "o2", 0, OK);
    expect_read(s, "both compartments, p1", S1, "Observation", "o12", 0, OK);
    expect_read(s, "both compartments, p2", S2, "Observation", "o12", 0, OK);
    expect_read(s, "either of two patients", S12, "Observation", "o2", 0, OK);
    expect_read(s, "Patient itself", S1, "Patient", "p1", 0, OK);
    expect_read(s, "another Patient", S1, "Patient", "p2", 0, NF);
    /* a resource whose compartment changed: each version by its own */
    expect_read(s, "moved away: current", S1, "Observation", "omove", 0, NF);
    expect_read(s, "moved away: old version", S1, "Observation", "omove", 1, OK);
    expect_read(s, "moved in: current", S2, "Observation", "omove", 0, OK);
    expect_read(s, "moved in: old version", S2, "Observation", "omove", 1, NF);
    expect_read(s, "moved in: version 2", S2, "Observation", "omove", 2, OK);
    /* shared records need VL_SCOPE_SHARED */
    expect_read(s, "shared, no flag", S1, "Organization", "org1", 0, NF);
    expect_read(s, "shared, flag", S1S, "Organization", "org1", 0, OK);
    expect_read(s, "shared, flag only", SSH, "Organization", "org1", 1, OK);
    expect_read(s, "shared Observation", S1, "Observation", "oshared", 0, NF);
    expect_read(s, "shared Observation, flag", S1S, "Observation", "oshared", 0, OK);
    expect_read(s, "shared flag: no patient's", SSH, "Patient", "p1", 0, NF);
    /* out of scope is exactly unknown */
    expect_read(s, "unknown", S1S, "Observation", "nope", 0, NF);
    expect_read(s, "unknown version", S1, "Observation", "o1", 9, NF);
    expect_read(s, "a patient nobody has", scope(0, NOBODY, 1), "Observation", "o1", 0, NF);
    expect_read(s, "patients listed, none counted", scope(0, P1, 0), "Observation", "o1", 0, NF);
    /* a deleted current version is returned to its compartment only */
    assert_int_equal(tstore_read(s, S1, "Observation", "odel", 0, &rec), OK);
    assert_int_equal(rec.deleted, 1);
    assert_int_equal(rec.version, 2);
    vl_record_free(&rec);
    expect_read(s, "deleted, other patient", S2, "Observation", "odel", 0, NF);
    expect_read(s, "deleted, shared only", SSH, "Observation", "odel", 0, NF);
    expect_read(s, "deleted, shared only, version", SSH, "Observation", "odel", 2, NF);
}

static void test_scope_history(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;

    /* type history: exactly the visible versions, total included */
    expect_history(s, everything(), "Observation", NULL, 100, 0,
                   "odel/2-,odel/1,omove/2,o1/2,oshared/1,omove/1,o12/1,o2/1,o1/1", 9);
    expect_history(s, S1, "Observation", NULL, 100, 0, "odel/2-,odel/1,o1/2,omove/1,o12/1,o1/1", 6);
    expect_history(s, S1S, "Observation", NULL, 100, 0,
                   "odel/2-,odel/1,o1/2,oshared/1,omove/1,o12/1,o1/1", 7);
    expect_history(s, S2, "Observation", NULL, 100, 0, "omove/2,o12/1,o2/1", 3);
    expect_history(s, S12, "Observation", NULL, 100, 0,
                   "odel/2-,odel/1,omove/2,o1/2,omove/1,o12/1,o2/1,o1/1", 8);
    expect_history(s, SSH, "Observation", NULL, 100, 0, "oshared/1", 1);
    expect_history(s, SZERO, "Observation", NULL, 100, 0, "", 0);
    expect_history(s, S1, "Organization", NULL, 100, 0, "", 0);
    expect_history(s, S1S, "Organization", NULL, 100, 0, "org1/1", 1);
    expect_history(s, S1, "Patient", NULL, 100, 0, "p1/1", 1);
    /* paging within the scope: count and offset count visible versions */
    expect_history(s, S1, "Observation", NULL, 2, 0, "odel/2-,odel/1", 6);
    expect_history(s, S1, "Observation", NULL, 2, 1, "odel/1,o1/2", 6);
    expect_history(s, S1, "Observation", NULL, 2, 4, "o12/1,o1/1", 6);
    expect_history(s, S1, "Observation", NULL, 10, 5, "o1/1", 6);
    expect_history(s, S1, "Observation", NULL, 10, 6, "", 6);
    expect_history(s, S1, "Observation", NULL, 0, 0, "", 6);
    expect_history(s, S2, "Observation", NULL, 1, 1, "o12/1", 3);
    /* one resource */
    expect_history(s, S1, "Observation", "o1", 100, 0, "o1/2,o1/1", 2);
    expect_history(s, S1, "Observation", "o1", 1, 1, "o1/1", 2);
    expect_history(s, S1, "Observation", "omove", 100, 0, "omove/1", 1);
    expect_history(s, S2, "Observation", "omove", 100, 0, "omove/2", 1);
    expect_history(s, S12, "Observation", "omove", 100, 0, "omove/2,omove/1", 2);
    expect_history(s, S1S, "Organization", "org1", 100, 0, "org1/1", 1);
    /* a resource with no visible version is NOT_FOUND, like an unknown one */
    expect_history_fails(s, S2, "Observation", "o1", VL_STORE_NOT_FOUND);
    expect_history_fails(s, SSH, "Observation", "omove", VL_STORE_NOT_FOUND);
    expect_history_fails(s, S1, "Organization", "org1", VL_STORE_NOT_FOUND);
    expect_history_fails(s, SZERO, "Observation", "o1", VL_STORE_NOT_FOUND);
    expect_history_fails(s, S1, "Observation", "nope", VL_STORE_NOT_FOUND);
}

static void test_scope_search(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    tq_t t;
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;

    /* current, live, visible versions only (creation order) */
    expect_search(s, everything(), "Observation", 100, 0, "o1/2,o12/1,o2/1,omove/2,oshared/1", 5);
    expect_search(s, S1, "Observation", 100, 0, "o1/2,o12/1", 2);
    expect_search(s, S1S, "Observation", 100, 0, "o1/2,o12/1,oshared/1", 3);
    expect_search(s, S2, "Observation", 100, 0, "o12/1,o2/1,omove/2", 3);
    expect_search(s, S12, "Observation", 100, 0, "o1/2,o12/1,o2/1,omove/2", 4);
    expect_search(s, SSH, "Observation", 100, 0, "oshared/1", 1);
    expect_search(s, SZERO, "Observation", 100, 0, "", 0);
    expect_search(s, scope(0, NOBODY, 1), "Observation", 100, 0, "", 0);
    expect_search(s, S1, "Organization", 100, 0, "", 0);
    expect_search(s, S1S, "Organization", 100, 0, "org1/1", 1);
    expect_search(s, S1, "Patient", 100, 0, "p1/1", 1);
    expect_search(s, S12, "Patient", 100, 0, "p1/1,p2/1", 2);
    /* paging: count, offset and total within the scope */
    expect_search(s, S2, "Observation", 1, 0, "o12/1", 3);
    expect_search(s, S2, "Observation", 1, 1, "o2/1", 3);
    expect_search(s, S2, "Observation", 2, 2, "omove/2", 3);
    expect_search(s, S2, "Observation", 10, 3, "", 3);
    expect_search(s, S1S, "Observation", 2, 1, "o12/1,oshared/1", 3);
    /* with a condition and _id */
    assert_int_equal(vl_store_search(s, S1, token_query(&t, "Observation", "code", "urn:t", "x"), 1,
                                     0, &out, &err),
                     0);
    assert_int_equal(out.total, 2);
    assert_int_equal(out.n, 2);
    vl_records_free(&out);
    t.q.id = "o2";
    assert_int_equal(vl_store_search(s, S1, &t.q, 1, 0, &out, &err), 0);
    assert_int_equal(out.total, 0);
    assert_int_equal(out.n, 0);
    vl_records_free(&out);
    t.q.id = "o12";
    assert_int_equal(vl_store_search(s, S2, &t.q, 1, 0, &out, &err), 0);
    assert_int_equal(out.total, 1);
    vl_records_free(&out);
    /* count 0 with the total: the total only */
    t.q.id = NULL;
    t.q.count = 0;
    assert_int_equal(vl_store_search(s, S2, &t.q, 1, 0, &out, &err), 0);
    assert_int_equal(out.total, 3);
    assert_int_equal(out.n, 0);
    vl_records_free(&out);
}

static void test_scope_ledger_record(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    struct {
        vl_scope_t sc;
        const char *type, *id;
        int64_t version;
        vl_store_kind_t kind;
    } cases[] = {
        {S1, "Observation", "o1", 1, VL_STORE_OK},
        {S1, "Observation", "o1", 2, VL_STORE_OK},
        {S2, "Observation", "o1", 1, VL_STORE_NOT_FOUND},
        {SSH, "Observation", "o1", 1, VL_STORE_NOT_FOUND},
        {S1, "Observation", "omove", 1, VL_STORE_OK},
        {S1, "Observation", "omove", 2, VL_STORE_NOT_FOUND},
        {S2, "Observation", "omove", 2, VL_STORE_OK},
        {S1, "Organization", "org1", 1, VL_STORE_NOT_FOUND},
        {S1S, "Organization", "org1", 1, VL_STORE_OK},
        {SSH, "Organization", "org1", 1, VL_STORE_OK},
        {S1, "Observation", "odel", 2, VL_STORE_OK},
        {SSH, "Observation", "odel", 2, VL_STORE_NOT_FOUND},
        {SZERO, "Observation", "o1", 1, VL_STORE_NOT_FOUND},
        {SZERO, "Organization", "org1", 1, VL_STORE_NOT_FOUND},
        {everything(), "Observation", "o2", 1, VL_STORE_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t idx = UINT64_MAX;
        unsigned char salt[32];
        char *bytes = NULL;
        size_t len = 0;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        int rc = vl_store_ledger_record(s, cases[i].sc, cases[i].type, cases[i].id,
                                        cases[i].version, &idx, salt, &bytes, &len, &err);
        vl_store_kind_t got = rc == 0 ? VL_STORE_OK : err.kind;
        if (got != cases[i].kind)
            fail_msg("case %zu: ledger record %s/%s v%lld: %s, want %s", i, cases[i].type,
                     cases[i].id, (long long)cases[i].version, vl_store_kind_name(got),
                     vl_store_kind_name(cases[i].kind));
        if (rc == 0)
            assert_true(idx < 12);
        else
            assert_null(bytes);
        free(bytes);
    }
}

/* Ledger reads need VL_SCOPE_LEDGER (the ledger's own scope, independent
 * of records); the records export needs ALL and RECORDS. */
static int count_records(void *ctx, uint64_t index, const char *ref, const unsigned char salt[32],
                         const char *bytes, size_t len)
{
    (void)index, (void)ref, (void)salt, (void)bytes, (void)len;
    (*(int *)ctx)++;
    return 0;
}

static int count_entries(void *ctx, uint64_t index, const char *line, size_t len, const char *note,
                         size_t note_len)
{
    (void)index, (void)len, (void)note, (void)note_len;
    (*(int *)ctx) += line != NULL;
    return 0;
}

static int count_rotations(void *ctx, uint64_t index, const char *vkey)
{
    (void)index, (void)vkey;
    (*(int *)ctx)++;
    return 0;
}

static void expect_ledger_denied(vl_store_t *s, vl_scope_t sc)
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    uint64_t size = 99;
    char *note = (char *)"x";
    unsigned char proof[VL_LEDGER_MAX_PROOF][VL_HASH_LEN], node[VL_HASH_LEN];
    size_t n = 99;
    int calls = 0;
    vl_store_stats_t a = stats(s);

    assert_int_equal(vl_store_ledger_size(s, sc, &size, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    assert_int_equal(size, 0);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_scan(s, sc, 0, 12, count_entries, &calls, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_checkpoint(s, sc, 0, &note, &size, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    assert_null(note);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_checkpoint(s, sc, 1, &note, &size, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_inclusion(s, sc, 3, 12, proof, &n, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    assert_int_equal(n, 0);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_consistency(s, sc, 3, 12, proof, &n, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_ledger_rotations(s, sc, count_rotations, &calls, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    assert_int_equal(vl_store_ledger_node(s, sc, 0, 0, node), -1);
    assert_int_equal(calls, 0);
    /* no checkpoint was signed on a denied request */
    assert_int_equal(stats(s).commits, a.commits);
}

static void test_scope_ledger_and_records_denied(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    unsigned not_ledger = VL_SCOPE_ALL | VL_SCOPE_SHARED | VL_SCOPE_RECORDS;
    uint64_t size = 0;
    unsigned char proof[VL_LEDGER_MAX_PROOF][VL_HASH_LEN], node[VL_HASH_LEN];
    size_t n;
    int calls = 0;
    char *note = NULL;

    expect_ledger_denied(s, scope(not_ledger, NULL, 0));
    expect_ledger_denied(s, scope(VL_SCOPE_SHARED, P1, 1));
    expect_ledger_denied(s, SZERO);
    /* VL_SCOPE_LEDGER alone is enough for the ledger */
    assert_int_equal(vl_store_ledger_size(s, scope(VL_SCOPE_LEDGER, NULL, 0), &size, &err), 0);
    assert_int_equal(size, 12);
    assert_int_equal(vl_store_ledger_scan(s, scope(VL_SCOPE_LEDGER, NULL, 0), 0, 12, count_entries,
                                          &calls, &err),
                     0);
    assert_int_equal(calls, 12);
    assert_int_equal(
        vl_store_ledger_inclusion(s, scope(VL_SCOPE_LEDGER, NULL, 0), 3, 12, proof, &n, &err), 0);
    assert_true(n > 0);
    assert_int_equal(vl_store_ledger_node(s, scope(VL_SCOPE_LEDGER, NULL, 0), 0, 0, node), 0);
    assert_int_equal(
        vl_store_ledger_checkpoint(s, scope(VL_SCOPE_LEDGER, NULL, 0), 1, &note, &size, &err), 0);
    assert_int_equal(size, 12);
    free(note);

    /* the records export */
    {
        const unsigned denied[] = {0, VL_SCOPE_RECORDS, VL_SCOPE_ALL,
                                   VL_SCOPE_ALL | VL_SCOPE_SHARED | VL_SCOPE_LEDGER,
                                   VL_SCOPE_RECORDS | VL_SCOPE_SHARED | VL_SCOPE_LEDGER};
        for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
            err = (vl_store_err_t)VL_STORE_ERR_INIT;
            calls = 0;
            assert_int_equal(
                vl_store_records_scan(s, scope(denied[i], P1, 1), count_records, &calls, &err), -1);
            assert_int_equal(err.kind, VL_STORE_DENIED);
            assert_int_equal(calls, 0);
        }
        calls = 0;
        assert_int_equal(vl_store_records_scan(s, scope(VL_SCOPE_ALL | VL_SCOPE_RECORDS, NULL, 0),
                                               count_records, &calls, &err),
                         0);
        assert_int_equal(calls, 12);
    }
}

/* A zeroed scope sees nothing on any path. */
static void test_scope_zeroed(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_scope_t zero;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    int calls = 0;
    memset(&zero, 0, sizeof zero);
    expect_read(s, "zero", zero, "Observation", "o1", 0, VL_STORE_NOT_FOUND);
    expect_read(s, "zero", zero, "Observation", "oshared", 0, VL_STORE_NOT_FOUND);
    expect_read(s, "zero", zero, "Organization", "org1", 1, VL_STORE_NOT_FOUND);
    expect_read(s, "zero", zero, "Patient", "p1", 0, VL_STORE_NOT_FOUND);
    expect_history(s, zero, "Observation", NULL, 100, 0, "", 0);
    expect_history(s, zero, "Organization", NULL, 100, 0, "", 0);
    expect_history_fails(s, zero, "Organization", "org1", VL_STORE_NOT_FOUND);
    expect_search(s, zero, "Observation", 100, 0, "", 0);
    expect_search(s, zero, "Organization", 100, 0, "", 0);
    expect_search(s, zero, "Patient", 100, 0, "", 0);
    expect_ledger_denied(s, zero);
    assert_int_equal(vl_store_records_scan(s, zero, count_records, &calls, &err), -1);
    assert_int_equal(err.kind, VL_STORE_DENIED);
    assert_int_equal(calls, 0);
}

/* Reads inside a unit take a scope too, over the unit's own writes. */
typedef struct scoped_txn {
    vl_index_t ix;
    vl_store_kind_t o2_as_p1, o1_as_p1, omove_as_p1, onew_as_p1, onew_as_p2, onew_as_shared;
    char search_p1[256], search_p1_after[256], search_shared_after[256], history_p2[256];
    int64_t total_p1, total_p1_after, total_history_p2;
    vl_store_kind_t history_p1_org;
    int failed;
} scoped_txn_t;

static vl_store_kind_t txn_read_kind(vl_store_txn_t *txn, vl_scope_t sc, const char *type,
                                     const char *id, int64_t version)
{
    vl_record_t rec;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_txn_read(txn, sc, type, id, version, &rec, &err) != 0)
        return err.kind;
    vl_record_free(&rec);
    return VL_STORE_OK;
}

static int txn_search_ids(vl_store_txn_t *txn, vl_scope_t sc, char *ids, size_t n, int64_t *total)
{
    tq_t t;
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_txn_search(txn, sc, token_query(&t, "Observation", "code", "urn:t", "x"), 1, 0,
                            &out, &err) != 0)
        return -1;
    ids_of(&out, ids, n);
    if (total)
        *total = out.total;
    vl_records_free(&out);
    return 0;
}

static int scoped_txn_apply(vl_store_txn_t *txn, void *arg)
{
    scoped_txn_t *o = arg;
    vl_records_t out;
    vl_page_t page = {.count = 10};
    vl_store_err_t err = VL_STORE_ERR_INIT;
    tstore_put_t p = tstore_put_of("Observation", "onew", 1, VL_METHOD_POST, "{}", &o->ix);

    o->o2_as_p1 = txn_read_kind(txn, S1, "Observation", "o2", 0);
    o->o1_as_p1 = txn_read_kind(txn, S1, "Observation", "o1", 1);
    o->omove_as_p1 = txn_read_kind(txn, S1, "Observation", "omove", 0);
    o->failed |= txn_search_ids(txn, S1, o->search_p1, sizeof o->search_p1, &o->total_p1);
    if (vl_store_txn_history(txn, S2, "Observation", "omove", &page, &out, &err) == 0) {
        ids_of(&out, o->history_p2, sizeof o->history_p2);
        o->total_history_p2 = out.total;
        vl_records_free(&out);
    } else {
        o->failed = 1;
    }
    err = (vl_store_err_t)VL_STORE_ERR_INIT;
    o->history_p1_org = vl_store_txn_history(txn, S1, "Organization", "org1", &page, &out, &err)
                            ? err.kind
                            : VL_STORE_OK;
    if (o->history_p1_org == VL_STORE_OK)
        vl_records_free(&out);
    /* its own write, in p1's compartment */
    o->failed |= tstore_apply_put(txn, &p);
    o->onew_as_p1 = txn_read_kind(txn, S1, "Observation", "onew", 0);
    o->onew_as_p2 = txn_read_kind(txn, S2, "Observation", "onew", 1);
    o->onew_as_shared = txn_read_kind(txn, SSH, "Observation", "onew", 0);
    o->failed |=
        txn_search_ids(txn, S1, o->search_p1_after, sizeof o->search_p1_after, &o->total_p1_after);
    o->failed |=
        txn_search_ids(txn, SSH, o->search_shared_after, sizeof o->search_shared_after, NULL);
    return -1; /* leave the data set as it was */
}

static void test_scope_txn_reads(void **state)
{
    fixture_t *f = *state;
    scoped_txn_t o;
    vl_store_unit_t u;
    memset(&o, 0, sizeof o);
    tstore_index_token(&o.ix, "code", "urn:t", "x", "p1");
    memset(&u, 0, sizeof u);
    u.apply = scoped_txn_apply;
    u.arg = &o;
    assert_int_equal(vl_store_run(f->store, &u), -1);
    assert_int_equal(u.err.kind, VL_STORE_ABORTED);
    assert_int_equal(o.failed, 0);
    assert_int_equal(o.o2_as_p1, VL_STORE_NOT_FOUND);
    assert_int_equal(o.o1_as_p1, VL_STORE_OK);
    assert_int_equal(o.omove_as_p1, VL_STORE_NOT_FOUND);
    assert_string_equal(o.search_p1, "o12/1,o1/2"); /* version order: o1 was updated */
    assert_int_equal(o.total_p1, 2);
    assert_string_equal(o.history_p2, "omove/2");
    assert_int_equal(o.total_history_p2, 1);
    assert_int_equal(o.history_p1_org, VL_STORE_NOT_FOUND);
    assert_int_equal(o.onew_as_p1, VL_STORE_OK);
    assert_int_equal(o.onew_as_p2, VL_STORE_NOT_FOUND);
    assert_int_equal(o.onew_as_shared, VL_STORE_NOT_FOUND);
    assert_string_equal(o.search_p1_after, "o12/1,o1/2,onew/1");
    assert_int_equal(o.total_p1_after, 3);
    assert_string_equal(o.search_shared_after, "oshared/1");
    read_fails(f->store, "Observation", "onew", 0, VL_STORE_NOT_FOUND);
    assert_int_equal(tstore_ledger_size(f->store), 12);
    vl_index_free(&o.ix);
}

/* A delete keeps the compartments of the version it deletes: its history
 * entry is visible to that patient only, never as a shared record; a
 * delete of a shared record stays shared. */
static void test_scope_delete_keeps_compartment(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    expect_history(s, S1, "Observation", "odel", 100, 0, "odel/2-,odel/1", 2);
    expect_history(s, S1S, "Observation", "odel", 100, 0, "odel/2-,odel/1", 2);
    expect_history_fails(s, S2, "Observation", "odel", VL_STORE_NOT_FOUND);
    expect_history_fails(s, SSH, "Observation", "odel", VL_STORE_NOT_FOUND);
    assert_int_equal(tstore_sql_int(f->data, "SELECT count(*) FROM version_patient vp JOIN"
                                             " resource_version v ON v.seq = vp.seq JOIN resource"
                                             " r ON r.rid = v.rid WHERE r.id = 'odel' AND"
                                             " v.version = 2 AND vp.patient = 'p1'"),
                     1);
    /* deleting a shared record and a two-patient record */
    tstore_delete_ok(s, "Observation", "oshared");
    tstore_delete_ok(s, "Observation", "o12");
    expect_history(s, SSH, "Observation", "oshared", 100, 0, "oshared/2-,oshared/1", 2);
    expect_history_fails(s, S1, "Observation", "oshared", VL_STORE_NOT_FOUND);
    expect_history(s, S2, "Observation", "o12", 100, 0, "o12/2-,o12/1", 2);
    expect_history(s, S1, "Observation", "o12", 100, 0, "o12/2-,o12/1", 2);
    expect_history(s, SSH, "Observation", NULL, 100, 0, "oshared/2-,oshared/1", 2);
    expect_history(s, S2, "Observation", NULL, 100, 0, "o12/2-,omove/2,o12/1,o2/1", 4);
    expect_search(s, S1, "Observation", 100, 0, "o1/2", 1);
    /* a version after a delete takes the compartments it is given */
    scoped_put(s, "Observation", "odel", "p2", NULL);
    expect_history(s, S1, "Observation", "odel", 100, 0, "odel/2-,odel/1", 2);
    expect_history(s, S2, "Observation", "odel", 100, 0, "odel/3", 1);
}

/* ------------------------------------------------------------------------
 * Migration 003: compartments of versions written before it
 * ---------------------------------------------------------------------- */

static void insert_version(sqlite3 *db, int rid, int version, const char *method, const char *body)
{
    sqlite3_stmt *st;
    unsigned char salt[32];
    randombytes_buf(salt, sizeof salt);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO resource_version (rid, version, last_updated,"
                                        " method, deleted, body, salt) VALUES (?1, ?2, ?3, ?4, ?5,"
                                        " ?6, ?7)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int(st, 1, rid);
    sqlite3_bind_int(st, 2, version);
    sqlite3_bind_int64(st, 3, 1000000 * (int64_t)rid + version);
    sqlite3_bind_text(st, 4, method, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, body == NULL);
    if (body)
        sqlite3_bind_blob(st, 6, body, (int)strlen(body), SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_blob(st, 7, salt, 32, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static char *sql_text(const char *dir, const char *sql)
{
    char path[256], *text = NULL;
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        text = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return text ? text : strdup("");
}

static void test_migration_003_backfill(void **state)
{
    fixture_t *f = *state;
    char dir[192], path[256], *vp;
    sqlite3 *db;
    vl_store_t *s;
    int last = 0;
    vl_record_t rec;

    snprintf(dir, sizeof dir, "%s/old", f->root);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (const vl_migration_t *m = vl_migrations; m->sql; m++) {
        last = m->number;
        if (m->number <= 2)
            assert_int_equal(sqlite3_exec(db, m->sql, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA user_version=2;"
                                  "INSERT INTO resource (rid, type, id, version, deleted,"
                                  " last_updated) VALUES"
                                  " (1, 'Patient', 'p1', 1, 0, 1),"
                                  " (2, 'Observation', 'obs', 1, 0, 2),"
                                  " (3, 'Device', 'dev', 1, 0, 3),"
                                  " (4, 'Organization', 'org', 1, 0, 4),"
                                  " (5, 'Observation', 'gone', 2, 1, 5),"
                                  " (6, 'Observation', 'abs', 1, 0, 6),"
                                  " (7, 'Observation', 'moved', 2, 0, 7);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    insert_version(db, 1, 1, "PUT",
                   "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"link\":[{\"other\":"
                   "{\"reference\":\"Patient/p5\"},\"type\":\"seealso\"}]}");
    insert_version(db, 2, 1, "POST",
                   "{\"resourceType\":\"Observation\",\"id\":\"obs\",\"subject\":{\"reference\":"
                   "\"Patient/p1\"},\"performer\":[{\"reference\":\"Practitioner/d1\"},"
                   "{\"reference\":\"Patient/p2\"}]}");
    insert_version(db, 3, 1, "POST",
                   "{\"resourceType\":\"Device\",\"id\":\"dev\",\"patient\":{\"reference\":"
                   "\"Patient/p1/_history/3\"}}");
    insert_version(db, 4, 1, "POST", "{\"resourceType\":\"Organization\",\"id\":\"org\"}");
    insert_version(db, 5, 1, "POST",
                   "{\"resourceType\":\"Observation\",\"id\":\"gone\",\"subject\":{\"reference\":"
                   "\"Patient/p3\"}}");
    insert_version(db, 5, 2, "DELETE", NULL);
    insert_version(db, 6, 1, "POST",
                   "{\"resourceType\":\"Observation\",\"id\":\"abs\",\"subject\":{\"reference\":"
                   "\"http://example.org/fhir/Patient/p1\"}}");
    insert_version(db, 7, 1, "POST",
                   "{\"resourceType\":\"Observation\",\"id\":\"moved\",\"subject\":{\"reference\":"
                   "\"Patient/p1\"}}");
    insert_version(db, 7, 2, "PUT",
                   "{\"resourceType\":\"Observation\",\"id\":\"moved\",\"subject\":{\"reference\":"
                   "\"Patient/p4\"}}");
    sqlite3_close(db);

    s = tstore_open(dir, &quiet);
    assert_int_equal(tstore_sql_int(dir, "PRAGMA user_version"), last);
    assert_int_equal(tstore_ledger_size(s), 9); /* and every version anchored */
    vp = sql_text(dir, "SELECT group_concat(seq || ':' || patient, ',') FROM (SELECT seq,"
                       " patient FROM version_patient ORDER BY seq, patient)");
    assert_string_equal(vp, "1:p1,1:p5,2:p1,2:p2,3:p1,5:p3,6:p3,8:p1,9:p4");
    free(vp);

    /* p1 sees the Observation, the Device and itself */
    expect_read(s, "p1", S1, "Patient", "p1", 0, VL_STORE_OK);
    expect_read(s, "p1", S1, "Observation", "obs", 0, VL_STORE_OK);
    expect_read(s, "p1", S1, "Device", "dev", 0, VL_STORE_OK);
    expect_read(s, "p1", S1, "Organization", "org", 0, VL_STORE_NOT_FOUND);
    expect_read(s, "p1: absolute reference", S1, "Observation", "abs", 0, VL_STORE_NOT_FOUND);
    expect_read(s, "p1: old subject", S1, "Observation", "moved", 1, VL_STORE_OK);
    expect_read(s, "p1: new subject", S1, "Observation", "moved", 2, VL_STORE_NOT_FOUND);
    expect_search(s, S1, "Observation", 100, 0, "obs/1", 1);
    /* p5 is linked from p1: p1 is in p5's compartment too (Patient.link) */
    expect_read(s, "p5", scope(0, (const char *const[]){"p5"}, 1), "Patient", "p1", 0, VL_STORE_OK);
    /* p2, the Observation's performer, sees it and nothing else */
    expect_read(s, "p2", S2, "Observation", "obs", 0, VL_STORE_OK);
    expect_read(s, "p2", S2, "Device", "dev", 0, VL_STORE_NOT_FOUND);
    expect_read(s, "p2", S2, "Patient", "p1", 0, VL_STORE_NOT_FOUND);
    /* the Organization (and an absolute reference) only with SHARED */
    expect_read(s, "shared", SSH, "Organization", "org", 0, VL_STORE_OK);
    expect_read(s, "p1+shared", S1S, "Organization", "org", 0, VL_STORE_OK);
    expect_read(s, "shared", SSH, "Observation", "abs", 0, VL_STORE_OK);
    expect_read(s, "shared", SSH, "Observation", "obs", 0, VL_STORE_NOT_FOUND);
    expect_read(s, "shared", SSH, "Device", "dev", 0, VL_STORE_NOT_FOUND);
    expect_read(s, "shared", SSH, "Patient", "p1", 0, VL_STORE_NOT_FOUND);
    expect_search(s, SSH, "Observation", 100, 0, "abs/1", 1);
    /* a delete takes the compartments of the version it deletes */
    expect_history(s, scope(0, (const char *const[]){"p3"}, 1), "Observation", "gone", 100, 0,
                   "gone/2-,gone/1", 2);
    expect_history_fails(s, SSH, "Observation", "gone", VL_STORE_NOT_FOUND);
    expect_history(s, scope(0, (const char *const[]){"p4"}, 1), "Observation", NULL, 100, 0,
                   "moved/2", 1);
    assert_int_equal(tstore_read(s, S1, "Device", "dev", 1, &rec), VL_STORE_OK);
    assert_non_null(strstr(rec.body, "Patient/p1/_history/3"));
    vl_record_free(&rec);
    vl_store_close(s);
}

int main(void)
{
    vl_log_set_level(VL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_without_key_refuses_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_read_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_names_and_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_name_matches_ledger_grammar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_put_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_since_after_last_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_put_unit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_unit_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_inside_unit_see_own_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_later_units_see_earlier_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_puts_in_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interned_names_survive_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_completes_queued_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_arguments_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persists_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_on_many_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_read, setup_scoped, teardown),
        cmocka_unit_test_setup_teardown(test_scope_history, setup_scoped, teardown),
        cmocka_unit_test_setup_teardown(test_scope_search, setup_scoped, teardown),
        cmocka_unit_test_setup_teardown(test_scope_ledger_record, setup_scoped, teardown),
        cmocka_unit_test_setup_teardown(test_scope_ledger_and_records_denied, setup_scoped,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scope_zeroed, setup_scoped, teardown),
        cmocka_unit_test_setup_teardown(test_scope_txn_reads, setup_scoped, teardown),
        cmocka_unit_test_setup_teardown(test_scope_delete_keeps_compartment, setup_scoped,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migration_003_backfill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
