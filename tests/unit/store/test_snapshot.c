/*
 * Unit tests for snapshot reads and keyset pages of vl_store_search
 * (src/store/sqlite_query.c, vl_query_t.as_of / after / backward): paging
 * through a snapshot while resources are created, updated and deleted
 * visits exactly the resources of the snapshot, each once, as they were;
 * backward pages are the pages before; every order (no driver, a token
 * driver, sort keys with missing values) pages the same way; a keyset page
 * of the driver's order seeks its index instead of sorting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support.h"

static char root[64];
static vl_store_t *S;

/* Writes a version of Observation/id: code `code`, a sortable date `day`
 * (0: none), and a body naming `tag`. */
static void put(const char *id, const char *code, int day, const char *tag)
{
    char body[160];
    vl_index_t ix;
    tstore_index_token(&ix, "code", "http://loinc.org", code, NULL);
    if (day) {
        assert_int_equal(vl_index_add(&ix, "date", VL_INDEX_DATE, NULL, NULL, 0,
                                      (int64_t)day * 86400000000LL,
                                      (int64_t)(day + 1) * 86400000000LL),
                         0);
        ix.rows[ix.n - 1].sort = 1;
    }
    snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"tag\":\"%s\"}",
             id, tag);
    tstore_put_ok(S, "Observation", id, body, &ix);
    vl_index_free(&ix);
}

static int setup(void **state)
{
    char data[96];
    (void)state;
    vl_log_set_level(VL_LOG_WARN);
    snprintf(root, sizeof root, "/tmp/vl-snap-XXXXXX");
    tstore_mkdtemp(root);
    snprintf(data, sizeof data, "%s/data", root);
    S = tstore_open(data, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vl_store_close(S);
    tstore_rmtree(root);
    return 0;
}

/* One page of q; returns the ids joined by ',' into `ids` (appended) and
 * keeps the last and first positions. */
typedef struct pager {
    vl_query_t q;
    unsigned char last[VL_QUERY_KEY_MAX], first[VL_QUERY_KEY_MAX];
    size_t last_len, first_len;
    int64_t as_of;
} pager_t;

static size_t page(pager_t *p, char *ids, size_t cap)
{
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    size_t n;
    p->q.want_keys = 1;
    assert_int_equal(vl_store_search(S, vl_scope_everything(), &p->q, 0, 0, &out, &err), 0);
    if (p->q.as_of < 0)
        p->as_of = out.as_of;
    assert_true(out.as_of > 0);
    for (size_t i = 0; i < out.n; i++) {
        size_t at = strlen(ids);
        snprintf(ids + at, cap - at, "%s%s/%s", at ? "," : "", out.items[i].id,
                 strstr(out.items[i].body, "\"tag\":\"") + 7);
        ids[strlen(ids) - 2] = '\0'; /* drop "\"}" */
    }
    if (out.n) {
        assert_non_null(out.keys);
        assert_true(out.key_lens[out.n - 1] > 0 && out.key_lens[0] > 0);
        memcpy(p->last, out.keys[out.n - 1], out.key_lens[out.n - 1]);
        p->last_len = out.key_lens[out.n - 1];
        memcpy(p->first, out.keys[0], out.key_lens[0]);
        p->first_len = out.key_lens[0];
    }
    n = out.n;
    vl_records_free(&out);
    return n;
}

/* Pages through q (count 2) while writes happen after the first page;
 * returns every id/tag seen in order. */
static void walk(vl_query_t q, char *ids, size_t cap, int writes)
{
    pager_t p = {0};
    size_t n;
    int round = 0;
    ids[0] = '\0';
    p.q = q;
    p.q.as_of = -1;
    p.q.count = 2;
    n = page(&p, ids, cap);
    p.q.as_of = p.as_of;
    while (n == 2) {
        if (writes && round++ == 0) {
            /* after the first page: update one seen and one unseen, delete
             * one unseen, create a new match */
            put("a1", "x", 9, "new");
            put("a4", "x", 1, "new");
            tstore_delete_ok(S, "Observation", "a5");
            put("a9", "x", 2, "new");
        }
        p.q.after = p.last;
        p.q.after_len = p.last_len;
        n = page(&p, ids, cap);
    }
}

static void test_snapshot_pages(void **state)
{
    char ids[1024], back[1024];
    (void)state;
    put("a1", "x", 5, "old");
    put("a2", "x", 3, "old");
    put("a3", "x", 0, "old");
    put("a4", "x", 7, "old");
    put("a5", "x", 4, "old");
    put("a6", "y", 6, "old");
    put("a7", "x", 2, "old");
    /* a token driver (the index's order: the version) */
    vl_query_value_t v = {.cmp = VL_CMP_EQ, .system = "http://loinc.org", .text = "x"};
    vl_query_cond_t c = {
        .param = "code", .kind = VL_INDEX_TOKEN, .missing = -1, .n = 1, .values = &v};
    vl_query_t q = {.type = "Observation", .n = 1, .conds = &c};
    walk(q, ids, sizeof ids, 1);
    assert_string_equal(ids, "a1/old,a2/old,a3/old,a4/old,a5/old,a7/old");
    /* the store has moved on: a fresh snapshot sees the writes */
    walk(q, ids, sizeof ids, 0);
    assert_string_equal(ids, "a2/old,a3/old,a7/old,a1/new,a4/new,a9/new");

    /* no driver: by id */
    vl_query_t all = {.type = "Observation"};
    walk(all, ids, sizeof ids, 0);
    assert_string_equal(ids, "a1/new,a2/old,a3/old,a4/new,a6/old,a7/old,a9/new");

    /* sorted by date descending, a3 without a date last */
    vl_query_t by_date = {.type = "Observation", .n_sort = 1, .sort = {{"date", 1}}};
    walk(by_date, ids, sizeof ids, 0);
    /* a7 and a9 tie on the date: the version decides, in the first key's direction */
    assert_string_equal(ids, "a1/new,a6/old,a2/old,a9/new,a7/old,a4/new,a3/old");
    by_date.sort[0].desc = 0;
    walk(by_date, ids, sizeof ids, 0);
    assert_string_equal(ids, "a4/new,a7/old,a9/new,a2/old,a6/old,a1/new,a3/old");

    /* backward: the page before a position, in the query's order */
    {
        pager_t p = {0};
        p.q = by_date;
        p.q.as_of = -1;
        p.q.count = 3;
        ids[0] = back[0] = '\0';
        page(&p, ids, sizeof ids); /* a4 a7 a9 */
        p.q.as_of = p.as_of;
        p.q.after = p.last;
        p.q.after_len = p.last_len;
        ids[0] = '\0';
        page(&p, ids, sizeof ids); /* a2 a6 a1 */
        assert_string_equal(ids, "a2/old,a6/old,a1/new");
        unsigned char at[VL_QUERY_KEY_MAX];
        memcpy(at, p.first, p.first_len);
        p.q.after = at;
        p.q.after_len = p.first_len;
        p.q.backward = 1;
        page(&p, back, sizeof back);
        assert_string_equal(back, "a4/new,a7/old,a9/new");
        p.q.count = 2; /* the two closest before it */
        back[0] = '\0';
        page(&p, back, sizeof back);
        assert_string_equal(back, "a7/old,a9/new");
    }

    /* a position of another order is refused */
    {
        vl_records_t out;
        vl_store_err_t err = VL_STORE_ERR_INIT;
        unsigned char junk[3] = {'q', 1, 2};
        vl_query_t bad = all;
        bad.after = junk;
        bad.after_len = sizeof junk;
        bad.as_of = -1;
        assert_int_equal(vl_store_search(S, vl_scope_everything(), &bad, 0, 0, &out, &err), -1);
        assert_int_equal(err.kind, VL_STORE_INVALID);
    }
}

/* A keyset page of the driver's order seeks the index: no sort step. */
static void test_keyset_plan(void **state)
{
    vl_buf_t plan = VL_BUF_INIT(0);
    vl_store_err_t err = VL_STORE_ERR_INIT;
    unsigned char key[64];
    size_t n = 0;
    (void)state;
    /* code, sid, seq of some row */
    key[n++] = 't';
    key[n++] = 1;
    key[n++] = 0;
    key[n++] = 'x';
    key[n++] = 'i';
    memset(key + n, 0, 8);
    key[n] = 1;
    n += 8;
    key[n++] = 'i';
    memset(key + n, 0, 8);
    key[n] = 3;
    n += 8;
    vl_query_value_t v = {.cmp = VL_CMP_EQ, .system = "http://loinc.org", .text = "x"};
    vl_query_cond_t c = {
        .param = "code", .kind = VL_INDEX_TOKEN, .missing = -1, .n = 1, .values = &v};
    vl_query_t q = {.type = "Observation",
                    .n = 1,
                    .conds = &c,
                    .count = 2,
                    .as_of = 1000,
                    .after = key,
                    .after_len = n};
    assert_int_equal(vl_store_explain(S, vl_scope_everything(), &q, 0, &plan, &err), 0);
    assert_non_null(plan.data);
    assert_null(strstr(plan.data, "TEMP B-TREE FOR ORDER BY"));
    assert_non_null(strstr(plan.data, "SEARCH d USING PRIMARY KEY"));
    vl_buf_free(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_pages),
        cmocka_unit_test(test_keyset_plan),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
