/*
 * Unit tests for the pages of a patient's compartment
 * (vl_store_compartment_page, src/store/sqlite_compartment.c): members and
 * their order (the Patient itself first, then by version), snapshots
 * (writes after S change no page of S), keysets both ways with exact
 * `more` flags and keys, the filters (type, lastUpdated, facet time),
 * scopes, totals, max_bytes and bad arguments.
 *
 * Each test builds its own store in a temporary directory. Resources are
 * named so that a page reads as a list of ids: "p1 d1 o3 o1@2" is the
 * Patient p1, then Device d1, Observation o3 and version 2 of o1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support.h"

typedef struct fixture {
    char root[64], data[96];
    vl_store_t *store;
} fixture_t;

static fixture_t *F;

static int setup(void **state)
{
    (void)state;
    vl_log_set_level(VL_LOG_WARN);
    F = calloc(1, sizeof *F);
    if (!F)
        return -1;
    snprintf(F->root, sizeof F->root, "/tmp/vl-compartment-XXXXXX");
    tstore_mkdtemp(F->root);
    snprintf(F->data, sizeof F->data, "%s/data", F->root);
    F->store = tstore_open(F->data, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vl_store_close(F->store);
    tstore_rmtree(F->root);
    free(F);
    F = NULL;
    return 0;
}

/* ------------------------------------------------------------------------
 * Building the data
 * ---------------------------------------------------------------------- */

/* What one version carries besides its compartments. */
typedef struct facts {
    const char *code; /* a facet code (system http://loinc.org), or NULL */
    const char *when; /* a facet time (a FHIR date), or NULL */
    const char *pad;  /* extra body text, or NULL */
    const char *cat;  /* a facet category (no system), or NULL */
} facts_t;

/* Writes the next version of type/id in the compartments of the
 * space-separated `patients` ("" none); returns its seq. */
static int64_t put(const char *type, const char *id, const char *patients, const facts_t *f)
{
    static int n;
    char body[4096], list[128];
    vl_index_t ix;
    vl_index_init(&ix);
    snprintf(body, sizeof body, "{\"resourceType\":\"%s\",\"id\":\"%s\",\"n\":%d%s%s%s}", type, id,
             ++n, f && f->pad ? ",\"pad\":\"" : "", f && f->pad ? f->pad : "",
             f && f->pad ? "\"" : "");
    snprintf(list, sizeof list, "%s", patients);
    for (char *save = NULL, *p = strtok_r(list, " ", &save); p; p = strtok_r(NULL, " ", &save))
        assert_int_equal(vl_index_add_patient(&ix, p), 0);
    if (f && f->code)
        assert_int_equal(vl_index_add_code(&ix, "http://loinc.org", f->code), 0);
    if (f && f->cat)
        assert_int_equal(vl_index_add_category(&ix, NULL, f->cat), 0);
    if (f && f->when) {
        int64_t lo, hi;
        assert_int_equal(vl_time_parse_range(f->when, &lo, &hi, NULL), 0);
        vl_index_add_time(&ix, lo, hi);
    }
    tstore_put_ok(F->store, type, id, body, &ix);
    vl_index_free(&ix);
    return tstore_sql_int(F->data, "SELECT max(seq) FROM resource_version");
}

static int64_t del(const char *type, const char *id)
{
    tstore_delete_ok(F->store, type, id);
    return tstore_sql_int(F->data, "SELECT max(seq) FROM resource_version");
}

/* The time the last version was written at. */
static int64_t last_time(void)
{
    return tstore_sql_int(F->data,
                          "SELECT last_updated FROM resource_version ORDER BY seq DESC LIMIT 1");
}

/* A batch's time is taken when it starts: wait for the clock to pass the
 * previous version's microsecond, so that lastUpdated separates them. */
static void next_tick(void)
{
    int64_t t = last_time();
    while (vl_time_now_us() <= t)
        ;
}

/* ------------------------------------------------------------------------
 * Reading pages
 * ---------------------------------------------------------------------- */

static vl_compartment_query_t query(const char *patient, int count)
{
    vl_compartment_query_t q;
    memset(&q, 0, sizeof q);
    q.patient = patient;
    q.key = VL_COMPARTMENT_START;
    q.count = count;
    return q;
}

/* Reads one page; fails the test unless it succeeds. */
static void page(vl_scope_t scope, const vl_compartment_query_t *q, vl_compartment_page_t *out)
{
    vl_store_err_t err = VL_STORE_ERR_INIT;
    if (vl_store_compartment_page(F->store, scope, q, out, &err) != 0)
        fail_msg("compartment page: %s: %s", vl_store_kind_name(err.kind), err.message);
}

/* The page as "id id@v ..." (versions after the first with @v). Each
 * record must be of the resource its body names. */
static const char *ids(const vl_compartment_page_t *pg)
{
    static char text[1024];
    size_t len = 0;
    text[0] = '\0';
    for (size_t i = 0; i < pg->records.n; i++) {
        const vl_record_t *r = &pg->records.items[i];
        char want[160];
        snprintf(want, sizeof want, "{\"resourceType\":\"%s\",\"id\":\"%s\"", r->type, r->id);
        assert_non_null(r->body);
        assert_int_equal(strncmp(r->body, want, strlen(want)), 0);
        assert_false(r->deleted);
        if (r->version > 1)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s@%lld", i ? " " : "", r->id,
                                    (long long)r->version);
        else
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? " " : "", r->id);
    }
    return text;
}

/* Every page forward from the start with `count` records each: the ids
 * of all of them, joined; *pages receives how many pages it took. */
static const char *all_forward(vl_scope_t scope, vl_compartment_query_t q, int *pages)
{
    static char text[2048];
    size_t len = 0;
    vl_compartment_page_t pg;
    text[0] = '\0';
    *pages = 0;
    q.key = VL_COMPARTMENT_START;
    q.backward = 0;
    for (;;) {
        page(scope, &q, &pg);
        (*pages)++;
        if (pg.records.n)
            len +=
                (size_t)snprintf(text + len, sizeof text - len, "%s%s", len ? " " : "", ids(&pg));
        q.snapshot = pg.snapshot;
        q.key = pg.last_key;
        if (!pg.more) {
            vl_compartment_page_free(&pg);
            return text;
        }
        assert_true(pg.records.n > 0);
        vl_compartment_page_free(&pg);
        if (*pages > 100)
            fail_msg("paging does not end");
    }
}

static vl_scope_t scope_of_patient(const char *const *patients, size_t n)
{
    vl_scope_t s;
    memset(&s, 0, sizeof s);
    s.flags = VL_SCOPE_SHARED;
    s.n_patients = n;
    s.patients = patients;
    return s;
}

/* ------------------------------------------------------------------------
 * Tests
 * ---------------------------------------------------------------------- */

/* The Patient first whatever its seq, then the other members by the seq
 * of their current version; deleted, superseded and foreign versions and
 * shared records never. */
static void test_members_in_order(void **state)
{
    vl_compartment_query_t q = query("p1", 50);
    vl_compartment_page_t pg;
    int64_t d1;
    (void)state;
    d1 = put("Device", "d1", "p1", NULL);
    put("Patient", "p1", "p1", NULL);
    put("Observation", "o1", "p1", NULL);
    put("Patient", "p2", "p2", NULL);
    put("Observation", "o2", "p2", NULL);
    put("Organization", "org1", "", NULL);
    put("Observation", "o3", "p1 p2", NULL);
    put("Observation", "o4", "p1", NULL);
    del("Observation", "o4");
    int64_t o1 = put("Observation", "o1", "p1", NULL);
    /* a member no longer: its new version names only p2 */
    put("Observation", "o5", "p1", NULL);
    put("Observation", "o5", "p2", NULL);
    /* a Patient linking to p1 is a member like any other */
    put("Patient", "p3", "p3 p1", NULL);

    q.with_total = VL_TOTAL_ACCURATE;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 d1 o3 o1@2 p3");
    assert_int_equal(pg.records.total, 5);
    assert_false(pg.more);
    assert_int_equal(pg.first_key, VL_COMPARTMENT_SELF_KEY);
    assert_int_equal(pg.last_key, tstore_sql_int(F->data, "SELECT max(seq) FROM resource_version"));
    assert_int_equal(pg.snapshot, pg.last_key);
    vl_compartment_page_free(&pg);

    /* the seq is the key: after d1 comes o3 */
    q.key = d1;
    q.with_total = VL_TOTAL_BOUNDED;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "o3 o1@2 p3");
    assert_int_equal(pg.records.total, 5); /* the total ignores the key */
    assert_true(pg.first_key > d1 && pg.first_key < o1);
    vl_compartment_page_free(&pg);

    /* another patient's compartment: its own members only */
    q = query("p2", 50);
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p2 o2 o3 o5@2");
    assert_int_equal(pg.records.total, -1); /* not asked */
    vl_compartment_page_free(&pg);

    /* no such patient: an empty page */
    q = query("nobody", 50);
    page(vl_scope_everything(), &q, &pg);
    assert_int_equal(pg.records.n, 0);
    assert_int_equal(pg.first_key, -1);
    assert_int_equal(pg.last_key, -1);
    assert_false(pg.more);
    vl_compartment_page_free(&pg);
}

/* Pages of one snapshot list its members, whatever is written after it:
 * updates, creates and deletes neither duplicate nor skip an entry. */
static void test_snapshot(void **state)
{
    vl_compartment_query_t q = query("p1", 2);
    vl_compartment_page_t pg;
    int pages;
    (void)state;
    put("Patient", "p1", "p1", NULL);
    put("Observation", "o1", "p1", NULL);
    put("Observation", "o2", "p1", NULL);
    put("Device", "d1", "p1", NULL);
    put("Observation", "o3", "p1", NULL);

    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 o1");
    assert_true(pg.more);
    q.snapshot = pg.snapshot;
    q.key = pg.last_key;
    vl_compartment_page_free(&pg);

    /* writes while the client pages */
    put("Observation", "o1", "p1", NULL); /* already listed: must not come again */
    put("Observation", "o2", "p1", NULL); /* not listed yet: once, as it was at S */
    del("Device", "d1");                  /* still there as of S */
    put("Observation", "o9", "p1", NULL); /* new: not in S */
    put("Patient", "p1", "p1", NULL);
    del("Observation", "o3");

    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "o2 d1");
    assert_true(pg.more);
    q.key = pg.last_key;
    vl_compartment_page_free(&pg);
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "o3");
    assert_false(pg.more);
    vl_compartment_page_free(&pg);

    /* the whole snapshot again, from the start: the same members */
    q.key = VL_COMPARTMENT_START;
    q.count = 50;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 o1 o2 d1 o3");
    vl_compartment_page_free(&pg);

    /* a new snapshot sees the writes */
    q = query("p1", 2);
    assert_string_equal(all_forward(vl_scope_everything(), q, &pages), "p1@2 o1@2 o2@2 o9");
    assert_int_equal(pages, 2);
}

/* Keysets both ways: pages of `count`, exact `more` flags and keys; a
 * backward page holds the nearest members below its key, ascending. */
static void test_keysets(void **state)
{
    vl_compartment_query_t q = query("p1", 3);
    vl_compartment_page_t pg;
    int64_t seq[8];
    int pages;
    (void)state;
    seq[0] = put("Patient", "p1", "p1", NULL);
    seq[1] = put("Observation", "a", "p1", NULL);
    seq[2] = put("Observation", "b", "p1", NULL);
    seq[3] = put("Observation", "c", "p1", NULL);
    seq[4] = put("Observation", "d", "p1", NULL);
    seq[5] = put("Observation", "e", "p1", NULL);
    seq[6] = put("Observation", "f", "p1", NULL);

    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 a b");
    assert_true(pg.more);
    assert_int_equal(pg.first_key, VL_COMPARTMENT_SELF_KEY);
    assert_int_equal(pg.last_key, seq[2]);
    q.snapshot = pg.snapshot;
    q.key = pg.last_key;
    vl_compartment_page_free(&pg);
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "c d e");
    assert_true(pg.more);
    q.key = pg.last_key;
    vl_compartment_page_free(&pg);
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "f");
    assert_false(pg.more);
    vl_compartment_page_free(&pg);

    /* exactly full: no further page */
    q.key = seq[3];
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "d e f");
    assert_false(pg.more);
    vl_compartment_page_free(&pg);

    /* backward from the end */
    q.backward = 1;
    q.key = INT64_MAX;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "d e f");
    assert_true(pg.more);
    assert_int_equal(pg.first_key, seq[4]);
    assert_int_equal(pg.last_key, seq[6]);
    q.key = pg.first_key;
    vl_compartment_page_free(&pg);
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "a b c");
    assert_true(pg.more); /* the Patient itself is before them */
    q.key = pg.first_key;
    vl_compartment_page_free(&pg);
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1");
    assert_false(pg.more);
    assert_int_equal(pg.first_key, VL_COMPARTMENT_SELF_KEY);
    assert_int_equal(pg.last_key, VL_COMPARTMENT_SELF_KEY);
    vl_compartment_page_free(&pg);

    /* backward pages that reach the Patient with room to spare, or end
     * right after the others */
    q.key = seq[3];
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 a b");
    assert_false(pg.more);
    vl_compartment_page_free(&pg);
    q.key = seq[4];
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "a b c");
    assert_true(pg.more);
    vl_compartment_page_free(&pg);
    /* nothing comes before the Patient */
    q.key = VL_COMPARTMENT_SELF_KEY;
    page(vl_scope_everything(), &q, &pg);
    assert_int_equal(pg.records.n, 0);
    assert_false(pg.more);
    vl_compartment_page_free(&pg);

    /* forward after the Patient itself */
    q.backward = 0;
    q.key = VL_COMPARTMENT_SELF_KEY;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "a b c");
    vl_compartment_page_free(&pg);

    /* count 1: each member on a page of its own */
    q = query("p1", 1);
    assert_string_equal(all_forward(vl_scope_everything(), q, &pages), "p1 a b c d e f");
    assert_int_equal(pages, 7);
}

/* _type, _since and the care period. */
static void test_filters(void **state)
{
    vl_compartment_query_t q = query("p1", 50);
    vl_compartment_page_t pg;
    const char *obs[] = {"Observation"}, *pat[] = {"Patient"}, *two[] = {"Patient", "Device"};
    int64_t since;
    (void)state;
    put("Patient", "p1", "p1", NULL);
    put("Device", "d1", "p1", NULL);
    put("Observation", "o2023", "p1", &(facts_t){.when = "2023-12-31"});
    put("Observation", "omay", "p1", &(facts_t){.when = "2024-05-01"});
    put("Observation", "onone", "p1", NULL);
    next_tick();
    since = vl_time_now_us();
    put("Observation", "olate", "p1", &(facts_t){.when = "2024-06-30T23:59:59Z"});
    next_tick();
    put("Observation", "o2025", "p1", &(facts_t){.when = "2025-01-01"});

    q.n_types = 1;
    q.types = obs;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "o2023 omay onone olate o2025");
    vl_compartment_page_free(&pg);
    q.types = pat;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1");
    vl_compartment_page_free(&pg);
    q.n_types = 2;
    q.types = two;
    q.with_total = VL_TOTAL_ACCURATE;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 d1");
    assert_int_equal(pg.records.total, 2);
    vl_compartment_page_free(&pg);

    /* lastUpdated >= since: the Patient too is filtered */
    q = query("p1", 50);
    q.since_us = since;
    q.with_total = VL_TOTAL_ACCURATE;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "olate o2025");
    assert_int_equal(pg.records.total, 2);
    vl_compartment_page_free(&pg);
    q.since_us = last_time(); /* the bound itself is included */
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "o2025");
    vl_compartment_page_free(&pg);

    /* the care period [2024-01-01, 2025-01-01): overlapping times kept,
     * versions without a time kept */
    q = query("p1", 50);
    q.has_period = 1;
    assert_int_equal(vl_time_parse_range("2024", &q.lo, &q.hi, NULL), 0);
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 d1 omay onone olate");
    vl_compartment_page_free(&pg);
    /* a half-open bound: [2024-06-30, 2024-07-01) still holds olate's
     * last second, not o2025 */
    assert_int_equal(vl_time_parse_range("2024-06-30", &q.lo, &q.hi, NULL), 0);
    q.n_types = 1;
    q.types = obs;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "onone olate");
    vl_compartment_page_free(&pg);
}

/* Scopes: a patient's, a rule's, none. */
static void test_scopes(void **state)
{
    const char *p1[] = {"p1"}, *p2[] = {"p2"}, *dev[] = {"Device"};
    vl_scope_code_t hr = {"http://loinc.org", "8867-4"}, vs = {NULL, "vital-signs"};
    vl_scope_rule_t rules[2];
    vl_compartment_query_t q = query("p1", 50);
    vl_compartment_page_t pg;
    vl_scope_t s;
    int pages;
    (void)state;
    put("Patient", "p1", "p1", NULL);
    put("Patient", "p2", "p2", NULL);
    put("Observation", "hr1", "p1", &(facts_t){.code = "8867-4", .cat = "vital-signs"});
    put("Observation", "bp1", "p1", &(facts_t){.code = "85354-9"});
    put("Observation", "both", "p1 p2", &(facts_t){.code = "85354-9"});
    put("Device", "d1", "p1", NULL);
    put("Observation", "hr2", "p1", &(facts_t){.code = "8867-4"});
    put("Organization", "org", "", NULL);

    /* the patient's own scope: everything of theirs */
    assert_string_equal(all_forward(scope_of_patient(p1, 1), q, &pages), "p1 hr1 bp1 both d1 hr2");
    /* narrowed to one category of Observations (granular SMART scopes) */
    s = scope_of_patient(p1, 1);
    s.category_type = "Observation";
    s.n_categories = 1;
    s.categories = &vs;
    assert_string_equal(all_forward(s, q, &pages), "p1 hr1 d1");
    /* another patient's: only what is in their compartment too */
    assert_string_equal(all_forward(scope_of_patient(p2, 1), q, &pages), "both");

    /* a clinic's permit of one code: those Observations, not the Patient */
    memset(rules, 0, sizeof rules);
    rules[0].patient = "p1";
    rules[0].n_codes = 1;
    rules[0].codes = &hr;
    memset(&s, 0, sizeof s);
    s.flags = VL_SCOPE_SHARED;
    s.n_rules = 1;
    s.rules = rules;
    q.with_total = VL_TOTAL_ACCURATE;
    page(s, &q, &pg);
    assert_string_equal(ids(&pg), "hr1 hr2");
    assert_int_equal(pg.records.total, 2);
    vl_compartment_page_free(&pg);
    q.with_total = VL_TOTAL_NONE;
    /* a permit of every type but a deny of the code */
    rules[0].n_codes = 0;
    rules[1].patient = "p1";
    rules[1].deny = 1;
    rules[1].n_codes = 1;
    rules[1].codes = &hr;
    s.n_rules = 2;
    assert_string_equal(all_forward(s, q, &pages), "p1 bp1 both d1");
    /* a permit of one type */
    rules[0].n_types = 1;
    rules[0].types = dev;
    s.n_rules = 1;
    assert_string_equal(all_forward(s, q, &pages), "d1");
    /* a permit for another patient: nothing of p1's but what is p2's too */
    rules[0].patient = "p2";
    rules[0].n_types = 0;
    assert_string_equal(all_forward(s, q, &pages), "both");

    /* shared records are in no compartment; a zeroed scope sees nothing */
    memset(&s, 0, sizeof s);
    s.flags = VL_SCOPE_SHARED;
    assert_string_equal(all_forward(s, q, &pages), "");
    memset(&s, 0, sizeof s);
    q.with_total = VL_TOTAL_ACCURATE;
    page(s, &q, &pg);
    assert_int_equal(pg.records.n, 0);
    assert_int_equal(pg.records.total, 0);
    vl_compartment_page_free(&pg);
}

/* A page stops once its bodies hold max_bytes (at least one record), and
 * says that more follow. */
static void test_max_bytes(void **state)
{
    char pad[1001];
    vl_compartment_query_t q = query("p1", 50);
    vl_compartment_page_t pg;
    int pages;
    (void)state;
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    put("Patient", "p1", "p1", &(facts_t){.pad = pad});
    put("Observation", "o1", "p1", &(facts_t){.pad = pad});
    put("Observation", "o2", "p1", NULL);
    put("Observation", "o3", "p1", &(facts_t){.pad = pad});

    q.max_bytes = 100;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1");
    assert_true(pg.more);
    vl_compartment_page_free(&pg);
    q.max_bytes = 1500;
    /* p1 o1 (past 1500 bytes: full) | o2 o3 (the rows end first) */
    assert_string_equal(all_forward(vl_scope_everything(), q, &pages), "p1 o1 o2 o3");
    assert_int_equal(pages, 2);
    /* backward, nearest first: o3, o2, then o1 makes it full */
    q.backward = 1;
    q.key = INT64_MAX;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "o1 o2 o3");
    assert_true(pg.more);
    vl_compartment_page_free(&pg);
}

/* The total is bounded like a search's. */
static void test_total_bound(void **state)
{
    vl_compartment_query_t q = query("p1", 1);
    vl_compartment_page_t pg;
    (void)state;
    put("Patient", "p1", "p1", NULL);
    put("Observation", "o1", "p1", NULL);
    /* VL_TOTAL_BOUND + 1 more members, written in one go */
    tstore_sql(F->data,
               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001)"
               " INSERT INTO resource (type, id, version, deleted, last_updated)"
               " SELECT 'Observation', 'x' || i, 1, 0, 1 FROM n;"
               "INSERT INTO resource_version (rid, version, last_updated, method, deleted, body,"
               " salt) SELECT rid, 1, 1, 'POST', 0, '{}', zeroblob(32) FROM resource"
               " WHERE id GLOB 'x*';"
               "INSERT INTO version_patient (seq, patient) SELECT v.seq, 'p1' FROM"
               " resource_version v JOIN resource r ON r.rid = v.rid WHERE r.id GLOB 'x*';");
    q.with_total = VL_TOTAL_ACCURATE;
    page(vl_scope_everything(), &q, &pg);
    assert_int_equal(pg.records.total, 10003);
    vl_compartment_page_free(&pg);
    q.with_total = VL_TOTAL_BOUNDED;
    page(vl_scope_everything(), &q, &pg);
    assert_int_equal(pg.records.total, -1);
    assert_string_equal(ids(&pg), "p1");
    assert_true(pg.more);
    vl_compartment_page_free(&pg);
}

/* A deleted Patient: in the snapshots before its delete, not after. */
static void test_deleted_patient(void **state)
{
    vl_compartment_query_t q = query("p1", 50);
    vl_compartment_page_t pg;
    int64_t before;
    (void)state;
    put("Patient", "p1", "p1", NULL);
    before = put("Observation", "o1", "p1", NULL);
    del("Patient", "p1");
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "o1");
    vl_compartment_page_free(&pg);
    q.snapshot = before;
    page(vl_scope_everything(), &q, &pg);
    assert_string_equal(ids(&pg), "p1 o1");
    assert_int_equal(pg.snapshot, before);
    vl_compartment_page_free(&pg);
}

static void expect_invalid(const vl_compartment_query_t *q)
{
    vl_compartment_page_t pg;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    assert_int_equal(vl_store_compartment_page(F->store, vl_scope_everything(), q, &pg, &err), -1);
    assert_int_equal(err.kind, VL_STORE_INVALID);
    assert_int_equal(pg.records.n, 0);
    assert_null(pg.records.items);
}

static void test_bad_arguments(void **state)
{
    const char *bad[] = {"observation"};
    vl_compartment_query_t q = query("p1", 0);
    (void)state;
    expect_invalid(&q);
    q = query("a/b", 10);
    expect_invalid(&q);
    q = query("..", 10);
    expect_invalid(&q);
    q = query("p1", 10);
    q.n_types = 1;
    q.types = bad;
    expect_invalid(&q);
    q = query("p1", 10);
    q.has_period = 1;
    q.lo = q.hi = 5;
    expect_invalid(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_members_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keysets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_patient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
