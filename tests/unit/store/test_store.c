/*
 * Unit tests for src/store/store.c and writer.c: opening and migrating the
 * database, create/read/vread/update/delete, If-Match, conditional create,
 * history, group commit under concurrency, savepoint isolation of failing
 * writes inside one batch, and close/reopen durability.
 *
 * Every test works in its own mkdtemp directory, removed afterwards.
 */
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "vitalog/store.h"
#include <sodium.h>
#include <stdlib.h>

#include "../support.h"

/* ------------------------------------------------------------------------
 * Fixture: a temporary directory; the store lives in DIR/data
 * ---------------------------------------------------------------------- */

typedef struct fixture {
    char root[64];
    char data[128];
    char db[192];
    vl_store_t *store;
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    vl_error_t err = VL_ERROR_INIT;
    assert_non_null(f);
    snprintf(f->root, sizeof f->root, "/tmp/vl-store-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->data, sizeof f->data, "%s/data", f->root);
    snprintf(f->db, sizeof f->db, "%s/vitalog.db", f->data);
    if (vl_store_open(f->data, test_store_options(NULL), &f->store, &err) != 0)
        fail_msg("vl_store_open: %s", vl_error_message(&err));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    vl_store_close(f->store);
    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void reopen(fixture_t *f, const vl_store_options_t *opts)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_close(f->store);
    f->store = NULL;
    if (vl_store_open(f->data, test_store_options(opts), &f->store, &err) != 0)
        fail_msg("reopen: %s", vl_error_message(&err));
}

/* ------------------------------------------------------------------------
 * Write helpers
 * ---------------------------------------------------------------------- */

static json_t *parse(const char *text)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *j = vl_json_parse(text, strlen(text), NULL, &err);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, vl_error_message(&err));
    return j;
}

/* A write of `text` (NULL for a delete); index rows are added by the caller. */
static vl_store_write_t *new_write(vl_write_op_t op, const char *type, const char *id,
                                   const char *text)
{
    vl_store_write_t *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->op = op;
    snprintf(w->type, sizeof w->type, "%s", type);
    if (id)
        snprintf(w->id, sizeof w->id, "%s", id);
    w->resource = text ? parse(text) : NULL;
    vl_index_init(&w->index);
    return w;
}

static void free_write(vl_store_write_t *w)
{
    if (!w)
        return;
    json_decref(w->resource);
    vl_store_write_release(w);
    free(w);
}

static void add_token(vl_store_write_t *w, const char *param, const char *system, const char *code)
{
    assert_int_equal(vl_index_add(&w->index, param, VL_INDEX_TOKEN, system, code, 0, 0, 0), 0);
}

static void expect_ok(vl_store_t *s, vl_store_write_t *w)
{
    if (vl_store_write_sync(s, w) != 0)
        fail_msg("write %s/%s failed: %d %s", w->type, w->id, w->err.status,
                 vl_error_message(&w->err));
    assert_int_equal(w->result, 0);
    assert_int_equal(w->err.status, 0);
}

static void expect_fail(vl_store_t *s, vl_store_write_t *w, int status)
{
    if (vl_store_write_sync(s, w) == 0)
        fail_msg("write %s/%s succeeded, want %d", w->type, w->id, status);
    assert_int_equal(w->result, -1);
    if (w->err.status != status)
        fail_msg("write %s/%s: status %d (%s), want %d", w->type, w->id, w->err.status,
                 vl_error_message(&w->err), status);
    assert_null(w->body);
}

static int is_hex_id(const char *id)
{
    if (strlen(id) != 32)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void read_ok(vl_store_t *s, const char *type, const char *id, int64_t version,
                    vl_record_t *rec)
{
    vl_error_t err = VL_ERROR_INIT;
    if (vl_store_read(s, type, id, version, rec, &err) != 0)
        fail_msg("read %s/%s v%lld: %d %s", type, id, (long long)version, err.status,
                 vl_error_message(&err));
}

static void read_fails(vl_store_t *s, const char *type, const char *id, int64_t version,
                       int status)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_record_t rec;
    memset(&rec, 0, sizeof rec);
    if (vl_store_read(s, type, id, version, &rec, &err) == 0)
        fail_msg("read %s/%s v%lld succeeded, want %d", type, id, (long long)version, status);
    assert_int_equal(err.status, status);
    vl_error_clear(&err);
}

static int64_t search_count(vl_store_t *s, const char *type, const char *param, const char *system,
                            const char *code)
{
    vl_query_value_t v = {.system = system, .text = code};
    vl_query_cond_t c = {.param = param, .kind = VL_INDEX_TOKEN, .missing = -1, .n = 1,
                         .values = &v};
    vl_query_t q = {.type = type, .n = 1, .conds = &c, .count = 100};
    vl_records_t out;
    vl_error_t err = VL_ERROR_INIT;
    int64_t total;
    if (vl_store_search(s, &q, &out, &err) != 0)
        fail_msg("search: %s", vl_error_message(&err));
    assert_int_equal((int64_t)out.n, out.total);
    total = out.total;
    vl_records_free(&out);
    return total;
}

static int sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int v = -1;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *OBS =
    "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
    "\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":\"Patient/p1\"},"
    "\"effectiveDateTime\":\"2024-05-06T10:00:00Z\",\"valueQuantity\":{\"value\":72.00,"
    "\"unit\":\"/min\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"},"
    "\"note\":[{\"text\":\"tiny 1E-22 \\\\u0001 \xc3\xa9\"}],\"component\":[{\"valueQuantity\":"
    "{\"value\":1E-22}},{\"valueQuantity\":{\"value\":-0.0}}]}";

/* ------------------------------------------------------------------------
 * Open, migrations, files
 * ---------------------------------------------------------------------- */

static void test_open_creates_database(void **state)
{
    fixture_t *f = *state;
    struct stat st;
    sqlite3 *db;
    int max = 0;
    const char *mode;
    sqlite3_stmt *q;

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
    assert_true(max >= 1);

    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sql_int(db, "PRAGMA user_version"), max);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    mode = (const char *)sqlite3_column_text(q, 0);
    assert_string_equal(mode, "wal");
    sqlite3_finalize(q);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                                 " name IN ('resource', 'resource_version', 'idx_token',"
                                 " 'idx_string', 'idx_reference', 'idx_date', 'idx_quantity')"),
                     7);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM resource"), 0);
    sqlite3_close(db);

    /* reopening applies nothing new and keeps the version */
    reopen(f, NULL);
    reopen(f, NULL);
    assert_int_equal(vl_store_ready(f->store), 0);
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sql_int(db, "PRAGMA user_version"), max);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'resource'"), 1);
    sqlite3_close(db);
    assert_int_equal(stat(f->db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_open_existing_dir_and_failure(void **state)
{
    fixture_t *f = *state;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_t *s2 = NULL;
    char path[256];
    /* a path under a regular file cannot be a data directory */
    snprintf(path, sizeof path, "%s/vitalog.db/sub", f->data);
    assert_int_not_equal(vl_store_open(path, NULL, &s2, &err), 0);
    assert_null(s2);
    assert_true(err.status >= 500);
    assert_true(vl_error_count(&err) >= 1);
    vl_error_clear(&err);
    /* the store that is open is unaffected */
    assert_int_equal(vl_store_ready(f->store), 0);
}

/* ------------------------------------------------------------------------
 * CRUD
 * ---------------------------------------------------------------------- */

static void test_create_read_update_delete(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_store_write_t *w;
    vl_record_t rec;
    char id[65], prefix[256], body1[4096];
    int64_t before = vl_time_now_us(), lu1;
    json_t *doc;

    /* create */
    w = new_write(VL_WRITE_CREATE, "Observation", NULL, OBS);
    add_token(w, "code", "http://loinc.org", "8867-4");
    assert_int_equal(vl_index_add(&w->index, "subject", VL_INDEX_REFERENCE, NULL, "Patient/p1", 0,
                                  0, 0),
                     0);
    expect_ok(s, w);
    assert_int_equal(w->created, 1);
    assert_int_equal(w->noop, 0);
    assert_int_equal(w->version, 1);
    assert_true(is_hex_id(w->id));
    assert_true(w->last_updated_us >= before && w->last_updated_us <= vl_time_now_us());
    assert_non_null(w->body);
    assert_int_equal(w->body_len, strlen(w->body));
    snprintf(id, sizeof id, "%s", w->id);
    {
        char ts[32];
        vl_time_format(w->last_updated_us, ts);
        snprintf(prefix, sizeof prefix,
                 "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"meta\":{\"versionId\":\"1\","
                 "\"lastUpdated\":\"%s\"},",
                 id, ts);
    }
    if (strncmp(w->body, prefix, strlen(prefix)) != 0)
        fail_msg("body starts %.200s\nwant %s", w->body, prefix);
    /* the exact decimal text and the strings survive */
    assert_non_null(strstr(w->body, "\"value\":72.00,"));
    assert_non_null(strstr(w->body, "\"value\":1E-22}"));
    assert_non_null(strstr(w->body, "\"value\":-0.0}"));
    assert_non_null(strstr(w->body, "\"text\":\"tiny 1E-22 \\\\u0001 \xc3\xa9\""));
    doc = parse(w->body);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), id);
    json_decref(doc);
    snprintf(body1, sizeof body1, "%s", w->body);
    lu1 = w->last_updated_us;
    free_write(w);

    /* read current and vread 1 give the same bytes */
    read_ok(s, "Observation", id, 0, &rec);
    assert_string_equal(rec.type, "Observation");
    assert_string_equal(rec.id, id);
    assert_int_equal(rec.version, 1);
    assert_int_equal(rec.deleted, 0);
    assert_int_equal(rec.last_updated_us, lu1);
    assert_string_equal(rec.method, "POST");
    assert_string_equal(rec.body, body1);
    assert_int_equal(rec.body_len, strlen(body1));
    vl_record_free(&rec);
    read_ok(s, "Observation", id, 1, &rec);
    assert_int_equal(rec.version, 1);
    assert_string_equal(rec.body, body1);
    vl_record_free(&rec);
    /* wrong type, unknown id, unknown version */
    read_fails(s, "Patient", id, 0, 404);
    read_fails(s, "Observation", "nope", 0, 404);
    read_fails(s, "Observation", id, 2, 404);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "8867-4"), 1);

    /* update with the right If-Match; client meta is kept, versionId replaced */
    w = new_write(VL_WRITE_UPDATE, "Observation", id,
                  "{\"resourceType\":\"Observation\",\"id\":\"ignored\",\"meta\":{\"versionId\":"
                  "\"77\",\"profile\":[\"http://example.org/p\"]},\"status\":\"amended\","
                  "\"valueQuantity\":{\"value\":73.10}}");
    w->if_match = 1;
    add_token(w, "code", "http://loinc.org", "9279-1");
    expect_ok(s, w);
    assert_int_equal(w->created, 0);
    assert_int_equal(w->version, 2);
    assert_string_equal(w->id, id);
    assert_true(w->last_updated_us >= lu1);
    doc = parse(w->body);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), id);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "meta"), "versionId")), "2");
    assert_non_null(json_object_get(json_object_get(doc, "meta"), "profile"));
    assert_non_null(strstr(w->body, "\"meta\":{\"versionId\":\"2\",\"lastUpdated\":\""));
    assert_non_null(strstr(w->body, "\"value\":73.10}"));
    json_decref(doc);
    free_write(w);
    /* the index rows are those of the current version only */
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "8867-4"), 0);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "9279-1"), 1);

    /* stale If-Match: 412 and nothing written */
    w = new_write(VL_WRITE_UPDATE, "Observation", id,
                  "{\"resourceType\":\"Observation\",\"status\":\"cancelled\"}");
    w->if_match = 1;
    add_token(w, "code", "http://loinc.org", "0000-0");
    expect_fail(s, w, 412);
    free_write(w);
    w = new_write(VL_WRITE_UPDATE, "Observation", id,
                  "{\"resourceType\":\"Observation\",\"status\":\"cancelled\"}");
    w->if_match = 3; /* from the future */
    expect_fail(s, w, 412);
    free_write(w);
    read_ok(s, "Observation", id, 0, &rec);
    assert_int_equal(rec.version, 2);
    assert_string_equal(rec.method, "PUT");
    assert_null(strstr(rec.body, "cancelled"));
    vl_record_free(&rec);
    read_fails(s, "Observation", id, 3, 404);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "0000-0"), 0);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "9279-1"), 1);

    /* create with an id that exists: 409 */
    w = new_write(VL_WRITE_CREATE, "Observation", id, "{\"resourceType\":\"Observation\"}");
    expect_fail(s, w, 409);
    free_write(w);

    /* delete */
    w = new_write(VL_WRITE_DELETE, "Observation", id, NULL);
    expect_ok(s, w);
    assert_int_equal(w->version, 3);
    assert_int_equal(w->noop, 0);
    assert_int_equal(w->created, 0);
    assert_null(w->body);
    free_write(w);
    read_ok(s, "Observation", id, 0, &rec);
    assert_int_equal(rec.deleted, 1);
    assert_int_equal(rec.version, 3);
    assert_string_equal(rec.method, "DELETE");
    assert_null(rec.body);
    vl_record_free(&rec);
    read_ok(s, "Observation", id, 2, &rec);
    assert_int_equal(rec.deleted, 0);
    assert_int_equal(rec.version, 2);
    assert_non_null(strstr(rec.body, "\"versionId\":\"2\""));
    vl_record_free(&rec);
    read_ok(s, "Observation", id, 1, &rec);
    assert_string_equal(rec.body, body1);
    vl_record_free(&rec);
    assert_int_equal(search_count(s, "Observation", "code", "http://loinc.org", "9279-1"), 0);

    /* delete again: nothing changes */
    w = new_write(VL_WRITE_DELETE, "Observation", id, NULL);
    expect_ok(s, w);
    assert_int_equal(w->noop, 1);
    assert_int_equal(w->version, 3);
    free_write(w);
    read_fails(s, "Observation", id, 4, 404);

    /* delete unknown: 404 */
    w = new_write(VL_WRITE_DELETE, "Observation", "does-not-exist", NULL);
    expect_fail(s, w, 404);
    free_write(w);
    w = new_write(VL_WRITE_DELETE, "Patient", id, NULL); /* right id, wrong type */
    expect_fail(s, w, 404);
    free_write(w);

    /* update after delete brings it back as version 4 */
    w = new_write(VL_WRITE_UPDATE, "Observation", id,
                  "{\"resourceType\":\"Observation\",\"status\":\"final\"}");
    expect_ok(s, w);
    assert_int_equal(w->version, 4);
    assert_int_equal(w->created, 0);
    free_write(w);
    read_ok(s, "Observation", id, 0, &rec);
    assert_int_equal(rec.deleted, 0);
    assert_int_equal(rec.version, 4);
    vl_record_free(&rec);
}

static void test_update_creates(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_store_write_t *w;
    vl_record_t rec;

    /* PUT to an unknown id creates it with the client's id */
    w = new_write(VL_WRITE_UPDATE, "Patient", "pat-1",
                  "{\"resourceType\":\"Patient\",\"id\":\"pat-1\",\"active\":true}");
    expect_ok(s, w);
    assert_int_equal(w->created, 1);
    assert_int_equal(w->version, 1);
    assert_string_equal(w->id, "pat-1");
    free_write(w);
    read_ok(s, "Patient", "pat-1", 0, &rec);
    assert_int_equal(rec.version, 1);
    assert_string_equal(rec.method, "PUT");
    assert_non_null(strstr(rec.body, "\"id\":\"pat-1\""));
    vl_record_free(&rec);

    /* If-Match on a resource that does not exist: 412, nothing created */
    w = new_write(VL_WRITE_UPDATE, "Patient", "pat-2", "{\"resourceType\":\"Patient\"}");
    w->if_match = 1;
    expect_fail(s, w, 412);
    free_write(w);
    read_fails(s, "Patient", "pat-2", 0, 404);

    /* the same id under another type is another resource */
    w = new_write(VL_WRITE_UPDATE, "Device", "pat-1", "{\"resourceType\":\"Device\"}");
    expect_ok(s, w);
    assert_int_equal(w->created, 1);
    free_write(w);
    read_ok(s, "Patient", "pat-1", 0, &rec);
    assert_int_equal(rec.version, 1);
    vl_record_free(&rec);

    /* a CREATE with an id chosen by the caller keeps it */
    w = new_write(VL_WRITE_CREATE, "Patient", "chosen", "{\"resourceType\":\"Patient\"}");
    expect_ok(s, w);
    assert_string_equal(w->id, "chosen");
    assert_int_equal(w->created, 1);
    free_write(w);
}

/* The body must be a resource of the write's type; refused at submission,
 * before anything is queued (done() is not called). */
static void test_resource_type_checked(void **state)
{
    fixture_t *f = *state;
    static const char *const bad[] = {
        "{\"resourceType\":\"Patient\"}",  /* another type */
        "{\"status\":\"final\"}",           /* none */
        "{\"resourceType\":7}",              /* not a string */
        "{\"resourceType\":\"observation\"}", /* case matters */
    };
    vl_store_stats_t before, after;
    vl_store_stats(f->store, &before);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vl_store_write_t *w = new_write(VL_WRITE_CREATE, "Observation", "typed", bad[i]);
        if (vl_store_write_sync(f->store, w) == 0)
            fail_msg("accepted %s as an Observation", bad[i]);
        assert_int_equal(w->result, -1);
        assert_int_equal(w->err.status, 400);
        free_write(w);
        w = new_write(VL_WRITE_UPDATE, "Observation", "typed", bad[i]);
        assert_int_not_equal(vl_store_write_sync(f->store, w), 0);
        assert_int_equal(w->err.status, 400);
        free_write(w);
    }
    read_fails(f->store, "Observation", "typed", 0, 404);
    read_fails(f->store, "Patient", "typed", 0, 404);
    vl_store_stats(f->store, &after);
    assert_int_equal(after.writes, before.writes);
    /* a delete carries no resource */
    vl_store_write_t *w = new_write(VL_WRITE_UPDATE, "Observation", "typed",
                                    "{\"resourceType\":\"Observation\"}");
    expect_ok(f->store, w);
    free_write(w);
    w = new_write(VL_WRITE_DELETE, "Observation", "typed", NULL);
    expect_ok(f->store, w);
    free_write(w);
}

static void test_ids_unique(void **state)
{
    fixture_t *f = *state;
    char ids[50][65];
    for (int i = 0; i < 50; i++) {
        vl_store_write_t *w = new_write(VL_WRITE_CREATE, "Patient", NULL,
                                        "{\"resourceType\":\"Patient\"}");
        expect_ok(f->store, w);
        assert_true(is_hex_id(w->id));
        snprintf(ids[i], sizeof ids[i], "%s", w->id);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(ids[k], ids[i]);
        free_write(w);
    }
}

/* ------------------------------------------------------------------------
 * History
 * ---------------------------------------------------------------------- */

static void test_history(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_store_write_t *w;
    vl_records_t h;
    vl_error_t err = VL_ERROR_INIT;
    char a[65], b[65];
    int64_t lu2;

    w = new_write(VL_WRITE_CREATE, "Observation", NULL, "{\"resourceType\":\"Observation\"}");
    expect_ok(s, w);
    snprintf(a, sizeof a, "%s", w->id);
    free_write(w);
    w = new_write(VL_WRITE_CREATE, "Observation", NULL, "{\"resourceType\":\"Observation\"}");
    expect_ok(s, w);
    snprintf(b, sizeof b, "%s", w->id);
    free_write(w);
    w = new_write(VL_WRITE_UPDATE, "Observation", a,
                  "{\"resourceType\":\"Observation\",\"status\":\"final\"}");
    expect_ok(s, w);
    lu2 = w->last_updated_us;
    free_write(w);
    w = new_write(VL_WRITE_DELETE, "Observation", a, NULL);
    expect_ok(s, w);
    free_write(w);
    w = new_write(VL_WRITE_CREATE, "Patient", NULL, "{\"resourceType\":\"Patient\"}");
    expect_ok(s, w);
    free_write(w);

    /* one resource, newest first */
    assert_int_equal(vl_store_history(s, "Observation", a, 0, 100, 0, &h, &err), 0);
    assert_int_equal(h.total, 3);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.items[0].version, 3);
    assert_string_equal(h.items[0].method, "DELETE");
    assert_int_equal(h.items[0].deleted, 1);
    assert_null(h.items[0].body);
    assert_int_equal(h.items[1].version, 2);
    assert_string_equal(h.items[1].method, "PUT");
    assert_non_null(h.items[1].body);
    assert_int_equal(h.items[2].version, 1);
    assert_string_equal(h.items[2].method, "POST");
    for (size_t i = 0; i < h.n; i++) {
        assert_string_equal(h.items[i].id, a);
        assert_string_equal(h.items[i].type, "Observation");
    }
    vl_records_free(&h);

    /* paging keeps the total */
    assert_int_equal(vl_store_history(s, "Observation", a, 0, 1, 1, &h, &err), 0);
    assert_int_equal(h.total, 3);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.items[0].version, 2);
    vl_records_free(&h);
    assert_int_equal(vl_store_history(s, "Observation", a, 0, 10, 3, &h, &err), 0);
    assert_int_equal(h.total, 3);
    assert_int_equal(h.n, 0);
    vl_records_free(&h);

    /* since: versions written at or after it */
    assert_int_equal(vl_store_history(s, "Observation", a, lu2, 100, 0, &h, &err), 0);
    assert_int_equal(h.total, 2);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.items[0].version, 3);
    assert_int_equal(h.items[1].version, 2);
    vl_records_free(&h);

    /* type history: every version of every Observation, newest first */
    assert_int_equal(vl_store_history(s, "Observation", NULL, 0, 100, 0, &h, &err), 0);
    assert_int_equal(h.total, 4);
    assert_int_equal(h.n, 4);
    assert_string_equal(h.items[0].id, a);
    assert_int_equal(h.items[0].version, 3);
    assert_string_equal(h.items[1].id, a);
    assert_int_equal(h.items[1].version, 2);
    assert_string_equal(h.items[2].id, b);
    assert_int_equal(h.items[2].version, 1);
    assert_string_equal(h.items[3].id, a);
    assert_int_equal(h.items[3].version, 1);
    for (size_t i = 1; i < h.n; i++)
        assert_true(h.items[i - 1].last_updated_us >= h.items[i].last_updated_us);
    vl_records_free(&h);
    assert_int_equal(vl_store_history(s, "Patient", NULL, 0, 100, 0, &h, &err), 0);
    assert_int_equal(h.total, 1);
    vl_records_free(&h);
    /* a type without resources: empty, not an error */
    assert_int_equal(vl_store_history(s, "Device", NULL, 0, 100, 0, &h, &err), 0);
    assert_int_equal(h.total, 0);
    assert_int_equal(h.n, 0);
    vl_records_free(&h);

    /* unknown resource: 404 */
    assert_int_not_equal(vl_store_history(s, "Observation", "nope", 0, 100, 0, &h, &err), 0);
    assert_int_equal(err.status, 404);
    vl_error_clear(&err);
}

/* _since after the last change of a known resource: an empty history (the
 * resource exists, nothing changed since), not 404. */
static void test_history_since_after_last_change(void **state)
{
    fixture_t *f = *state;
    vl_store_write_t *w;
    vl_records_t h;
    vl_error_t err = VL_ERROR_INIT;
    int64_t lu;
    char id[65];

    w = new_write(VL_WRITE_CREATE, "Observation", NULL, "{\"resourceType\":\"Observation\"}");
    expect_ok(f->store, w);
    snprintf(id, sizeof id, "%s", w->id);
    lu = w->last_updated_us;
    free_write(w);
    if (vl_store_history(f->store, "Observation", id, lu + 1, 100, 0, &h, &err) != 0)
        fail_msg("history since after the last change: %d %s", err.status,
                 vl_error_message(&err));
    assert_int_equal(h.total, 0);
    assert_int_equal(h.n, 0);
    vl_records_free(&h);
}

/* ------------------------------------------------------------------------
 * Conditional create
 * ---------------------------------------------------------------------- */

static vl_store_write_t *patient_with_identifier(const char *value)
{
    char text[256];
    snprintf(text, sizeof text,
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn\",\"value\":"
             "\"%s\"}]}",
             value);
    vl_store_write_t *w = new_write(VL_WRITE_CREATE, "Patient", NULL, text);
    add_token(w, "identifier", "urn:mrn", value);
    return w;
}

static void test_conditional_create(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    vl_query_value_t v = {.system = "urn:mrn", .text = "123"};
    vl_query_cond_t c = {.param = "identifier", .kind = VL_INDEX_TOKEN, .missing = -1, .n = 1,
                         .values = &v};
    vl_query_t q = {.type = "Patient", .n = 1, .conds = &c};
    vl_store_write_t *w;
    vl_records_t h;
    vl_error_t err = VL_ERROR_INIT;
    char id[65], body[2048];

    /* no match: creates */
    w = patient_with_identifier("123");
    w->if_none_exist = &q;
    expect_ok(s, w);
    assert_int_equal(w->created, 1);
    assert_int_equal(w->noop, 0);
    assert_int_equal(w->version, 1);
    snprintf(id, sizeof id, "%s", w->id);
    snprintf(body, sizeof body, "%s", w->body);
    free_write(w);

    /* one match: nothing written, the existing resource is returned */
    w = patient_with_identifier("123");
    w->if_none_exist = &q;
    expect_ok(s, w);
    assert_int_equal(w->noop, 1);
    assert_int_equal(w->created, 0);
    assert_string_equal(w->id, id);
    assert_int_equal(w->version, 1);
    assert_non_null(w->body);
    assert_string_equal(w->body, body);
    free_write(w);
    assert_int_equal(vl_store_history(s, "Patient", NULL, 0, 100, 0, &h, &err), 0);
    assert_int_equal(h.total, 1);
    vl_records_free(&h);

    /* a different value does not match */
    w = patient_with_identifier("456");
    v.text = "456";
    w->if_none_exist = &q;
    expect_ok(s, w);
    assert_int_equal(w->created, 1);
    assert_string_not_equal(w->id, id);
    free_write(w);

    /* two matches: 412 and nothing written */
    v.text = "123";
    w = patient_with_identifier("123"); /* unconditional: a second 123 */
    expect_ok(s, w);
    free_write(w);
    w = patient_with_identifier("123");
    w->if_none_exist = &q;
    expect_fail(s, w, 412);
    free_write(w);
    assert_int_equal(vl_store_history(s, "Patient", NULL, 0, 100, 0, &h, &err), 0);
    assert_int_equal(h.total, 3);
    vl_records_free(&h);

    /* a deleted match does not count */
    v.text = "456";
    assert_int_equal(search_count(s, "Patient", "identifier", "urn:mrn", "456"), 1);
    {
        vl_records_t out;
        vl_query_t q2 = q;
        q2.count = 10;
        assert_int_equal(vl_store_search(s, &q2, &out, &err), 0);
        assert_int_equal(out.n, 1);
        w = new_write(VL_WRITE_DELETE, "Patient", out.items[0].id, NULL);
        vl_records_free(&out);
    }
    expect_ok(s, w);
    free_write(w);
    w = patient_with_identifier("456");
    w->if_none_exist = &q;
    expect_ok(s, w);
    assert_int_equal(w->created, 1);
    assert_int_equal(w->noop, 0);
    free_write(w);
}

/* ------------------------------------------------------------------------
 * Asynchronous completion helpers
 * ---------------------------------------------------------------------- */

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int ok;
    int calls_after_done; /* a write completed twice */
} counter_t;

#define COUNTER_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0}

static void count_done(vl_store_write_t *w, void *arg)
{
    counter_t *c = arg;
    pthread_mutex_lock(&c->mu);
    c->done++;
    c->ok += w->result == 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

static void wait_count(counter_t *c, int n)
{
    pthread_mutex_lock(&c->mu);
    while (c->done < n)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void submit_ok(vl_store_t *s, vl_store_write_t *w, counter_t *c)
{
    vl_error_t err = VL_ERROR_INIT;
    w->done = count_done;
    w->done_arg = c;
    if (vl_store_submit(s, w, &err) != 0)
        fail_msg("submit: %s", vl_error_message(&err));
}

/* stats.writes is bumped after the batch's callbacks ran: wait for it */
static void wait_stats(vl_store_t *s, uint64_t writes, vl_store_stats_t *out)
{
    for (int i = 0; i < 5000; i++) {
        vl_store_stats(s, out);
        if (out->writes >= writes)
            return;
        usleep(1000);
    }
    fail_msg("stats.writes stuck at %llu, want %llu", (unsigned long long)out->writes,
             (unsigned long long)writes);
}

/* ------------------------------------------------------------------------
 * Group commit
 * ---------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 200

typedef struct worker {
    vl_store_t *store;
    int index;
    vl_store_write_t *w[PER_THREAD];
    counter_t c;
    int read_errors;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    char text[256];
    for (int i = 0; i < PER_THREAD; i++) {
        vl_store_write_t *w = calloc(1, sizeof *w);
        vl_error_t perr = VL_ERROR_INIT;
        snprintf(text, sizeof text,
                 "{\"resourceType\":\"Observation\",\"status\":\"final\",\"valueQuantity\":"
                 "{\"value\":%d.%02d0}}",
                 wk->index, i % 100);
        w->op = VL_WRITE_CREATE;
        snprintf(w->type, sizeof w->type, "Observation");
        w->resource = vl_json_parse(text, strlen(text), NULL, &perr);
        vl_index_init(&w->index);
        snprintf(text, sizeof text, "t%d", wk->index);
        vl_index_add(&w->index, "code", VL_INDEX_TOKEN, "urn:thread", text, 0, 0, 0);
        w->done = count_done;
        w->done_arg = &wk->c;
        wk->w[i] = w;
        if (vl_store_submit(wk->store, w, &perr) != 0) {
            pthread_mutex_lock(&wk->c.mu);
            wk->c.done++;
            pthread_mutex_unlock(&wk->c.mu);
        }
    }
    wait_count(&wk->c, PER_THREAD);
    /* read back from this thread (its own read connection) */
    for (int i = 0; i < PER_THREAD; i++) {
        vl_record_t rec;
        vl_error_t err = VL_ERROR_INIT;
        vl_store_write_t *w = wk->w[i];
        if (w->result != 0 || vl_store_read(wk->store, "Observation", w->id, 0, &rec, &err) != 0 ||
            rec.version != 1 || !rec.body || strcmp(rec.body, w->body) != 0) {
            wk->read_errors++;
        } else {
            vl_record_free(&rec);
        }
        vl_error_clear(&err);
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    worker_t wk[THREADS];
    pthread_t th[THREADS];
    vl_store_stats_t before, after;
    char code[8];

    vl_store_stats(s, &before);
    for (int t = 0; t < THREADS; t++) {
        memset(&wk[t], 0, sizeof wk[t]);
        wk[t].store = s;
        wk[t].index = t;
        pthread_mutex_init(&wk[t].c.mu, NULL);
        pthread_cond_init(&wk[t].c.cond, NULL);
        assert_int_equal(pthread_create(&th[t], NULL, worker_main, &wk[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);

    for (int t = 0; t < THREADS; t++) {
        if (wk[t].c.ok != PER_THREAD)
            fail_msg("thread %d: %d of %d writes succeeded", t, wk[t].c.ok, PER_THREAD);
        assert_int_equal(wk[t].c.done, PER_THREAD);
        assert_int_equal(wk[t].read_errors, 0);
    }
    wait_stats(s, before.writes + THREADS * PER_THREAD, &after);
    assert_int_equal(after.writes - before.writes, THREADS * PER_THREAD);
    assert_int_equal(after.write_failures - before.write_failures, 0);
    assert_true(after.commits > before.commits);
    if (after.commits - before.commits >= THREADS * PER_THREAD)
        fail_msg("no batching: %llu commits for %d writes",
                 (unsigned long long)(after.commits - before.commits), THREADS * PER_THREAD);
    assert_int_equal(after.queue_depth, 0);

    /* every id distinct, every write readable from this thread too */
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            vl_record_t rec;
            vl_store_write_t *w = wk[t].w[i];
            assert_true(is_hex_id(w->id));
            assert_int_equal(w->version, 1);
            assert_int_equal(w->created, 1);
            read_ok(s, "Observation", w->id, 0, &rec);
            assert_string_equal(rec.body, w->body);
            vl_record_free(&rec);
        }
    }
    {
        vl_records_t h;
        vl_error_t err = VL_ERROR_INIT;
        assert_int_equal(vl_store_history(s, "Observation", NULL, 0, 1, 0, &h, &err), 0);
        assert_int_equal(h.total, THREADS * PER_THREAD);
        vl_records_free(&h);
    }
    /* index rows of each thread: PER_THREAD matches (count capped at 100 per page) */
    for (int t = 0; t < THREADS; t++) {
        vl_query_value_t v = {.system = "urn:thread", .text = NULL};
        vl_query_cond_t c = {.param = "code", .kind = VL_INDEX_TOKEN, .missing = -1, .n = 1,
                             .values = &v};
        vl_query_t q = {.type = "Observation", .n = 1, .conds = &c, .count = 1};
        vl_records_t out;
        vl_error_t err = VL_ERROR_INIT;
        snprintf(code, sizeof code, "t%d", t);
        v.text = code;
        assert_int_equal(vl_store_search(s, &q, &out, &err), 0);
        assert_int_equal(out.total, PER_THREAD);
        vl_records_free(&out);
    }
    /* ids unique across threads */
    {
        char (*all)[65] = malloc(sizeof *all * THREADS * PER_THREAD);
        size_t n = 0;
        assert_non_null(all);
        for (int t = 0; t < THREADS; t++)
            for (int i = 0; i < PER_THREAD; i++)
                snprintf(all[n++], 65, "%s", wk[t].w[i]->id);
        qsort(all, n, 65, (int (*)(const void *, const void *))strcmp);
        for (size_t i = 1; i < n; i++)
            assert_string_not_equal(all[i - 1], all[i]);
        free(all);
    }
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++)
            free_write(wk[t].w[i]);
        pthread_mutex_destroy(&wk[t].c.mu);
        pthread_cond_destroy(&wk[t].c.cond);
    }
}

/* ------------------------------------------------------------------------
 * One batch, failing and succeeding writes side by side
 *
 * A gate write's callback holds the writer thread (test only: callbacks
 * must not block) until the rest is queued, so those form exactly one batch.
 * ---------------------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int entered, open;
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

static void gate_hold(vl_store_t *s, gate_t *g, vl_store_write_t *gw)
{
    vl_error_t err = VL_ERROR_INIT;
    gw->done = gate_done;
    gw->done_arg = g;
    assert_int_equal(vl_store_submit(s, gw, &err), 0);
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cond, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
}

static void *gate_open_later(void *arg)
{
    usleep(100 * 1000); /* vl_store_close is waiting for the writer by now */
    gate_open(arg);
    return NULL;
}

static void test_failing_write_in_batch(void **state)
{
    fixture_t *f = *state;
    vl_store_t *s = f->store;
    gate_t g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    counter_t c = COUNTER_INIT;
    vl_store_write_t *x, *gw, *w[9];
    vl_store_stats_t before, after;
    vl_record_t rec;
    vl_query_value_t qv = {.system = "urn:mrn", .text = "dup"};
    vl_query_cond_t qc = {.param = "identifier", .kind = VL_INDEX_TOKEN, .missing = -1, .n = 1,
                          .values = &qv};
    vl_query_t q = {.type = "Patient", .n = 1, .conds = &qc};
    char xid[65];

    x = new_write(VL_WRITE_CREATE, "Patient", NULL, "{\"resourceType\":\"Patient\"}");
    expect_ok(s, x);
    snprintf(xid, sizeof xid, "%s", x->id);
    free_write(x);

    vl_store_stats(s, &before);
    gw = new_write(VL_WRITE_CREATE, "Patient", NULL, "{\"resourceType\":\"Patient\"}");
    gate_hold(s, &g, gw);

    /* queued while the writer is held: one batch */
    w[0] = new_write(VL_WRITE_CREATE, "Patient", "good-a", "{\"resourceType\":\"Patient\"}");
    add_token(w[0], "code", "urn:t", "a");
    w[1] = new_write(VL_WRITE_UPDATE, "Patient", xid,
                     "{\"resourceType\":\"Patient\",\"active\":false}");
    w[1]->if_match = 5; /* stale: 412 */
    w[2] = new_write(VL_WRITE_CREATE, "Patient", "good-b", "{\"resourceType\":\"Patient\"}");
    w[3] = new_write(VL_WRITE_UPDATE, "Patient", xid,
                     "{\"resourceType\":\"Patient\",\"active\":true}");
    w[3]->if_match = 1; /* right: version 2 */
    w[4] = new_write(VL_WRITE_UPDATE, "Patient", xid,
                     "{\"resourceType\":\"Patient\",\"active\":true,\"gender\":\"other\"}");
    w[4]->if_match = 2; /* sees the write before it in the batch: version 3 */
    /* fails after its resource and version rows were inserted (an index
     * row violating NOT NULL): the savepoint must take them back */
    w[5] = new_write(VL_WRITE_CREATE, "Patient", "partial",
                     "{\"resourceType\":\"Patient\",\"gender\":\"male\"}");
    add_token(w[5], "code", "urn:t", "partial");
    add_token(w[5], NULL, "urn:t", "broken");
    w[6] = new_write(VL_WRITE_CREATE, "Patient", "good-a", "{\"resourceType\":\"Patient\"}");
    /* conditional creates in one batch: the second sees the first */
    w[7] = patient_with_identifier("dup");
    w[7]->if_none_exist = &q;
    w[8] = patient_with_identifier("dup");
    w[8]->if_none_exist = &q;
    for (int i = 0; i < 9; i++)
        submit_ok(s, w[i], &c);
    gate_open(&g);
    wait_count(&c, 9);
    wait_stats(s, before.writes + 10, &after);
    assert_int_equal(after.commits - before.commits, 2); /* gate + one batch */
    assert_int_equal(after.writes - before.writes, 10);
    assert_int_equal(after.write_failures - before.write_failures, 3);

    assert_int_equal(gw->result, 0);
    assert_int_equal(w[0]->result, 0);
    assert_int_equal(w[0]->version, 1);
    assert_int_equal(w[1]->result, -1);
    assert_int_equal(w[1]->err.status, 412);
    assert_null(w[1]->body);
    assert_int_equal(w[2]->result, 0);
    assert_int_equal(w[3]->result, 0);
    assert_int_equal(w[3]->version, 2);
    assert_int_equal(w[4]->result, 0);
    assert_int_equal(w[4]->version, 3);
    assert_int_equal(w[5]->result, -1);
    assert_true(w[5]->err.status >= 500);
    assert_null(w[5]->body);
    assert_int_equal(w[6]->result, -1);
    assert_int_equal(w[6]->err.status, 409);
    assert_int_equal(w[7]->result, 0);
    assert_int_equal(w[7]->created, 1);
    assert_int_equal(w[8]->result, 0);
    assert_int_equal(w[8]->noop, 1);
    assert_string_equal(w[8]->id, w[7]->id);
    assert_string_equal(w[8]->body, w[7]->body);

    /* the committed state */
    read_ok(s, "Patient", xid, 0, &rec);
    assert_int_equal(rec.version, 3);
    assert_non_null(strstr(rec.body, "\"gender\":\"other\""));
    vl_record_free(&rec);
    read_ok(s, "Patient", "good-a", 0, &rec);
    assert_int_equal(rec.version, 1);
    assert_string_equal(rec.body, w[0]->body);
    vl_record_free(&rec);
    read_ok(s, "Patient", "good-b", 0, &rec);
    vl_record_free(&rec);
    read_fails(s, "Patient", "partial", 0, 404);
    read_fails(s, "Patient", "partial", 1, 404);
    assert_int_equal(search_count(s, "Patient", "code", "urn:t", "partial"), 0);
    assert_int_equal(search_count(s, "Patient", "code", "urn:t", "a"), 1);
    assert_int_equal(search_count(s, "Patient", "identifier", "urn:mrn", "dup"), 1);
    {
        vl_records_t h;
        vl_error_t err = VL_ERROR_INIT;
        assert_int_equal(vl_store_history(s, "Patient", xid, 0, 100, 0, &h, &err), 0);
        assert_int_equal(h.total, 3);
        vl_records_free(&h);
        /* x: 3, gate: 1, good-a, good-b, dup: 1 each */
        assert_int_equal(vl_store_history(s, "Patient", NULL, 0, 100, 0, &h, &err), 0);
        assert_int_equal(h.total, 7);
        vl_records_free(&h);
    }
    /* the writer is healthy afterwards */
    assert_int_equal(vl_store_ready(s), 0);
    x = new_write(VL_WRITE_CREATE, "Patient", NULL, "{\"resourceType\":\"Patient\"}");
    expect_ok(s, x);
    free_write(x);

    free_write(gw);
    for (int i = 0; i < 9; i++)
        free_write(w[i]);
}

/* ------------------------------------------------------------------------
 * Close and reopen
 * ---------------------------------------------------------------------- */

static void test_close_completes_queued_writes(void **state)
{
    fixture_t *f = *state;
    gate_t g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    counter_t c = COUNTER_INIT;
    enum { N = 100 };
    vl_store_write_t *gw, *w[N];
    pthread_t opener;
    vl_store_options_t opts = {.batch_max = 7}; /* several batches on the way out */

    reopen(f, &opts);
    gw = new_write(VL_WRITE_CREATE, "Patient", "gate", "{\"resourceType\":\"Patient\"}");
    gate_hold(f->store, &g, gw);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "q%03d", i);
        w[i] = new_write(VL_WRITE_CREATE, "Patient", id, "{\"resourceType\":\"Patient\"}");
        submit_ok(f->store, w[i], &c);
    }
    /* close while N writes are queued behind the held writer; let it go
     * once close is under way */
    {
        vl_store_stats_t st;
        vl_store_stats(f->store, &st);
        assert_int_equal(st.queue_depth, N);
    }
    assert_int_equal(pthread_create(&opener, NULL, gate_open_later, &g), 0);
    vl_store_close(f->store);
    f->store = NULL;
    pthread_join(opener, NULL);
    /* close returned: every queued write completed, successfully */
    assert_int_equal(c.done, N);
    assert_int_equal(c.ok, N);

    reopen(f, NULL);
    for (int i = 0; i < N; i++) {
        vl_record_t rec;
        read_ok(f->store, "Patient", w[i]->id, 0, &rec);
        assert_string_equal(rec.body, w[i]->body);
        vl_record_free(&rec);
        free_write(w[i]);
    }
    free_write(gw);
}

static void test_persists_across_reopen(void **state)
{
    fixture_t *f = *state;
    vl_store_write_t *w;
    vl_record_t rec;
    vl_records_t h;
    vl_error_t err = VL_ERROR_INIT;
    char id[65], body[4096];

    w = new_write(VL_WRITE_CREATE, "Observation", NULL, OBS);
    add_token(w, "code", "http://loinc.org", "8867-4");
    expect_ok(f->store, w);
    snprintf(id, sizeof id, "%s", w->id);
    free_write(w);
    w = new_write(VL_WRITE_UPDATE, "Observation", id, OBS);
    add_token(w, "code", "http://loinc.org", "8867-4");
    expect_ok(f->store, w);
    snprintf(body, sizeof body, "%s", w->body);
    free_write(w);

    reopen(f, NULL);
    read_ok(f->store, "Observation", id, 0, &rec);
    assert_int_equal(rec.version, 2);
    assert_string_equal(rec.body, body);
    vl_record_free(&rec);
    assert_int_equal(vl_store_history(f->store, "Observation", id, 0, 10, 0, &h, &err), 0);
    assert_int_equal(h.total, 2);
    vl_records_free(&h);
    assert_int_equal(search_count(f->store, "Observation", "code", "http://loinc.org", "8867-4"),
                     1);
    /* and writing continues where it stopped */
    w = new_write(VL_WRITE_DELETE, "Observation", id, NULL);
    w->if_match = 2;
    expect_ok(f->store, w);
    assert_int_equal(w->version, 3);
    free_write(w);
    reopen(f, NULL);
    read_ok(f->store, "Observation", id, 0, &rec);
    assert_int_equal(rec.deleted, 1);
    vl_record_free(&rec);
}

/* Readers on other threads that are still alive when the store closes. */
static void *reader_main(void *arg)
{
    vl_store_t *s = arg;
    vl_record_t rec;
    vl_error_t err = VL_ERROR_INIT;
    if (vl_store_read(s, "Patient", "r1", 0, &rec, &err) == 0)
        vl_record_free(&rec);
    vl_error_clear(&err);
    return NULL;
}

static void test_readers_on_many_threads(void **state)
{
    fixture_t *f = *state;
    pthread_t th[16];
    vl_store_write_t *w = new_write(VL_WRITE_UPDATE, "Patient", "r1", "{\"resourceType\":\"Patient\"}");
    expect_ok(f->store, w);
    free_write(w);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 16; i++)
            assert_int_equal(pthread_create(&th[i], NULL, reader_main, f->store), 0);
        for (int i = 0; i < 16; i++)
            pthread_join(th[i], NULL);
    }
    assert_int_equal(vl_store_ready(f->store), 0);
}

int main(void)
{
    vl_log_set_level(VL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_existing_dir_and_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_read_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_type_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_since_after_last_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_write_in_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_completes_queued_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persists_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_on_many_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
