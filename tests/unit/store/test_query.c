/*
 * Unit tests for search on the store (src/store/sqlite_query.c): the
 * semantics of vl_store_search over hand-built index rows (no fhir module
 * involved).
 *
 * One store is filled once (group setup) with small data sets, one resource
 * type each, so that every search can name its complete expected answer:
 *
 *   Observation  tokens "code", references "subject", :missing
 *   Patient      strings "name" (default/:exact/:contains)
 *   Encounter    dates "date", incl. partial dates and open Period ranges
 *   Basic        quantities "value-quantity"
 *   Device       _lastUpdated, paging, max_bytes
 *
 * Without a sort, results come in creation order (by rid), so expectations
 * are written as ordered id lists. Every search here runs with the whole
 * store's scope (test_store.c covers scopes).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support.h"

typedef struct fixture {
    char root[64];
    vl_store_t *store;
    int64_t lu[7]; /* last_updated of Device dev0..dev6 */
} fixture_t;

static fixture_t *F;

/* ------------------------------------------------------------------------
 * Building the data
 * ---------------------------------------------------------------------- */

static void range(const char *text, int64_t *lo, int64_t *hi)
{
    if (vl_time_parse_range(text, lo, hi, NULL) != 0)
        fail_msg("bad test date %s", text);
}

typedef struct row {
    const char *param;
    vl_index_kind_t kind;
    const char *system;
    const char *text;
    double number;
    const char *date; /* VL_INDEX_DATE: a FHIR date, or NULL with lo/hi below */
    int64_t lo, hi;
} row_t;

#define END_ROWS                                                                                   \
    {                                                                                              \
        NULL, 0, NULL, NULL, 0, NULL, 0, 0                                                         \
    }

/* Writes the next version of type/id with these index rows; returns its
 * last_updated. */
static int64_t put(const char *type, const char *id, const row_t *rows)
{
    static int n;
    char text[128];
    vl_index_t ix;
    int64_t lu;
    /* every version's bytes differ (and have the same length per id length) */
    snprintf(text, sizeof text, "{\"resourceType\":\"%s\",\"id\":\"%s\",\"n\":%04d}", type, id,
             ++n);
    vl_index_init(&ix);
    for (const row_t *r = rows; r && r->param; r++) {
        int64_t lo = r->lo, hi = r->hi;
        if (r->kind == VL_INDEX_DATE && r->date)
            range(r->date, &lo, &hi);
        assert_int_equal(
            vl_index_add(&ix, r->param, r->kind, r->system, r->text, r->number, lo, hi), 0);
        ix.rows[ix.n - 1].sort = 1; /* every param sortable here */
    }
    lu = tstore_put_ok(F->store, type, id, text, &ix).time_us;
    vl_index_free(&ix);
    return lu;
}

static void del(const char *type, const char *id)
{
    tstore_delete_ok(F->store, type, id);
}

#define TOK(p, s, c)                                                                               \
    {                                                                                              \
        p, VL_INDEX_TOKEN, s, c, 0, NULL, 0, 0                                                     \
    }
#define STR(p, t)                                                                                  \
    {                                                                                              \
        p, VL_INDEX_STRING, NULL, t, 0, NULL, 0, 0                                                 \
    }
#define REF(p, t)                                                                                  \
    {                                                                                              \
        p, VL_INDEX_REFERENCE, NULL, t, 0, NULL, 0, 0                                              \
    }
#define DATE(p, d)                                                                                 \
    {                                                                                              \
        p, VL_INDEX_DATE, NULL, NULL, 0, d, 0, 0                                                   \
    }
#define DATE_RANGE(p, lo, hi)                                                                      \
    {                                                                                              \
        p, VL_INDEX_DATE, NULL, NULL, 0, NULL, lo, hi                                              \
    }
#define QTY(p, n, s, c)                                                                            \
    {                                                                                              \
        p, VL_INDEX_QUANTITY, s, c, n, NULL, 0, 0                                                  \
    }

static int group_setup(void **state)
{
    char data[128];
    int64_t lo, hi;
    (void)state;
    vl_log_set_level(VL_LOG_WARN);
    F = calloc(1, sizeof *F);
    if (!F)
        return -1;
    snprintf(F->root, sizeof F->root, "/tmp/vl-query-XXXXXX");
    tstore_mkdtemp(F->root);
    snprintf(data, sizeof data, "%s/data", F->root);
    F->store = tstore_open(data, NULL);

    /* tokens and references */
    put("Observation", "o1",
        (row_t[]){TOK("code", "http://loinc.org", "8867-4"), REF("subject", "Patient/p1"),
                  END_ROWS});
    put("Observation", "o2",
        (row_t[]){TOK("code", "http://loinc.org", "9279-1"),
                  TOK("code", "http://snomed.info/sct", "364075005"), REF("subject", "Patient/p2"),
                  END_ROWS});
    put("Observation", "o3",
        (row_t[]){TOK("code", NULL, "8867-4"), REF("subject", "Patient/p1"), END_ROWS});
    put("Observation", "o4",
        (row_t[]){TOK("code", "http://other.org", "8867-4"),
                  REF("subject", "http://example.org/fhir/Patient/p1"), END_ROWS});
    put("Observation", "o5", (row_t[]){TOK("category", NULL, "vital-signs"), END_ROWS});
    /* deleted: never returned, whatever it was indexed with */
    put("Observation", "odel",
        (row_t[]){TOK("code", "http://loinc.org", "8867-4"), REF("subject", "Patient/p1"),
                  END_ROWS});
    del("Observation", "odel");
    /* updated: only its current rows count */
    put("Observation", "oupd",
        (row_t[]){TOK("code", "http://loinc.org", "8867-4"), REF("subject", "Patient/p1"),
                  END_ROWS});
    put("Observation", "oupd", (row_t[]){TOK("code", "http://loinc.org", "2708-6"), END_ROWS});
    /* other type, same rows: never mixed in */
    put("Condition", "c1",
        (row_t[]){TOK("code", "http://loinc.org", "8867-4"), REF("subject", "Patient/p1"),
                  END_ROWS});

    /* strings: value as given, norm as vl_index_add computes it */
    put("Patient", "p1", (row_t[]){STR("name", "\xc3\x88ve Martin"), END_ROWS});
    put("Patient", "p2", (row_t[]){STR("name", "Evelyn"), END_ROWS});
    put("Patient", "p3", (row_t[]){STR("name", "Steven"), STR("name", "Stevie"), END_ROWS});
    put("Patient", "p4", (row_t[]){STR("name", "EVE"), END_ROWS});
    put("Patient", "p5", (row_t[]){STR("name", "100% pure_x"), END_ROWS});
    put("Patient", "pdel", (row_t[]){STR("name", "Eve"), END_ROWS});
    del("Patient", "pdel");

    /* dates */
    put("Encounter", "d1", (row_t[]){DATE("date", "2024-05-06T10:00:00Z"), END_ROWS});
    put("Encounter", "d2", (row_t[]){DATE("date", "2024-05-06"), END_ROWS});
    put("Encounter", "d3", (row_t[]){DATE("date", "2024-05"), END_ROWS});
    range("2024-05-01", &lo, &hi); /* Period start 2024-05-01, no end */
    put("Encounter", "d4", (row_t[]){DATE_RANGE("date", lo, INT64_MAX), END_ROWS});
    range("2024-04-30", &lo, &hi); /* Period with no start, end 2024-04-30 */
    put("Encounter", "d5", (row_t[]){DATE_RANGE("date", INT64_MIN, hi), END_ROWS});
    put("Encounter", "d6", (row_t[]){DATE("date", "2023"), END_ROWS});
    put("Encounter", "d7", (row_t[]){DATE("date", "2024-05-07T00:00:00Z"), END_ROWS});
    put("Encounter", "dnone", (row_t[]){TOK("status", NULL, "finished"), END_ROWS});
    put("Encounter", "ddel", (row_t[]){DATE("date", "2024-05-06"), END_ROWS});
    del("Encounter", "ddel");

    /* quantities */
    put("Basic", "q1",
        (row_t[]){QTY("value-quantity", 72.0, "http://unitsofmeasure.org", "/min"), END_ROWS});
    put("Basic", "q2",
        (row_t[]){QTY("value-quantity", 71.99999999999, "http://unitsofmeasure.org", "/min"),
                  END_ROWS});
    put("Basic", "q3",
        (row_t[]){QTY("value-quantity", 100, "http://unitsofmeasure.org", "kg"), END_ROWS});
    put("Basic", "q4", (row_t[]){QTY("value-quantity", 50, NULL, NULL), END_ROWS});
    put("Basic", "q5",
        (row_t[]){QTY("value-quantity", -5, "http://unitsofmeasure.org", "/min"), END_ROWS});
    put("Basic", "q6",
        (row_t[]){QTY("value-quantity", 0, "http://unitsofmeasure.org", "/min"), END_ROWS});
    put("Basic", "q7",
        (row_t[]){QTY("value-quantity", 72.0000002, "http://unitsofmeasure.org", "/min"),
                  END_ROWS});

    /* _lastUpdated and paging: increasing times, each in a millisecond of
     * its own (a batch's time is taken when it starts: wait for the clock
     * to pass the previous one's millisecond first) */
    for (int i = 0; i < 7; i++) {
        char id[8];
        snprintf(id, sizeof id, "dev%d", i);
        while (i > 0 && vl_time_now_us() / 1000 <= F->lu[i - 1] / 1000)
            ;
        F->lu[i] = put("Device", id, (row_t[]){TOK("type", NULL, "watch"), END_ROWS});
        if (i > 0 && F->lu[i] / 1000 <= F->lu[i - 1] / 1000)
            fail_msg("clock did not advance");
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    vl_store_close(F->store);
    tstore_rmtree(F->root);
    free(F);
    return 0;
}

/* ------------------------------------------------------------------------
 * Running queries
 * ---------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts a comma-separated list in place. */
static void sort_list(char *list)
{
    char *items[256], copy[1024];
    size_t n = 0, o = 0;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *t = strtok(copy, ","); t && n < 256; t = strtok(NULL, ","))
        items[n++] = t;
    qsort(items, n, sizeof *items, cmp_str);
    list[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(list + o, 1024 - o, "%s%s", i ? "," : "", items[i]);
}

/* Runs q and compares the ids, in order, with the comma-separated `want`;
 * the total must be `total` (-1: the number of ids in want). */
static void expect_q(const char *what, const vl_query_t *q, const char *want, int64_t total)
{
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    char got[1024] = "";
    size_t n = 0;
    int64_t want_n = *want ? 1 : 0;
    for (const char *p = want; *p; p++)
        want_n += *p == ',';
    if (vl_store_search(F->store, vl_scope_everything(), q, 1, 0, &out, &err) != 0)
        fail_msg("%s: search failed: %s %s", what, vl_store_kind_name(err.kind), err.message);
    for (size_t i = 0; i < out.n; i++) {
        n += (size_t)snprintf(got + n, sizeof got - n, "%s%s", i ? "," : "", out.items[i].id);
        assert_string_equal(out.items[i].type, q->type);
        assert_int_equal(out.items[i].deleted, 0);
        assert_non_null(out.items[i].body);
    }
    if (q->n_sort == 0 && q->offset == 0 && (size_t)q->count > out.n) {
        /* no _sort: the order is the store's (its index's); compare sets */
        sort_list(got);
        char w[1024];
        snprintf(w, sizeof w, "%s", want);
        sort_list(w);
        if (strcmp(got, w) != 0)
            fail_msg("%s: got [%s], want [%s] (in any order)", what, got, w);
    } else if (strcmp(got, want) != 0)
        fail_msg("%s: got [%s], want [%s]", what, got, want);
    if (total < 0)
        total = want_n;
    if (out.total != total)
        fail_msg("%s: total %lld, want %lld", what, (long long)out.total, (long long)total);
    vl_records_free(&out);
}

static void expect_cond(const char *what, const char *type, vl_query_cond_t c, const char *want)
{
    vl_query_t q = {.type = type, .n = 1, .conds = &c, .count = 100};
    expect_q(what, &q, want, -1);
}

static vl_query_cond_t cond(const char *param, vl_index_kind_t kind, vl_match_t match, size_t n,
                            vl_query_value_t *values)
{
    vl_query_cond_t c = {
        .param = param, .kind = kind, .match = match, .missing = -1, .n = n, .values = values};
    return c;
}

static void token(const char *what, const char *system, const char *code, const char *want)
{
    vl_query_value_t v = {.system = system, .text = code};
    expect_cond(what, "Observation", cond("code", VL_INDEX_TOKEN, VL_MATCH_DEFAULT, 1, &v), want);
}

static void string(const char *what, vl_match_t m, const char *text, const char *want)
{
    vl_query_value_t v = {.text = text};
    expect_cond(what, "Patient", cond("name", VL_INDEX_STRING, m, 1, &v), want);
}

static vl_query_value_t dv(vl_cmp_t cmp, const char *date)
{
    vl_query_value_t v = {.cmp = cmp};
    range(date, &v.lo, &v.hi);
    return v;
}

static void date(const char *what, vl_cmp_t cmp, const char *d, const char *want)
{
    vl_query_value_t v = dv(cmp, d);
    expect_cond(what, "Encounter", cond("date", VL_INDEX_DATE, VL_MATCH_DEFAULT, 1, &v), want);
}

static void qty(const char *what, vl_cmp_t cmp, double n, const char *system, const char *code,
                const char *want)
{
    /* eq and ne within a relative 1e-9 (the fhir module computes the
     * range of a search value's precision; here it is given) */
    double tol = fabs(n) * 1e-9;
    vl_query_value_t v = {.cmp = cmp,
                          .number = n,
                          .lo_num = n - tol,
                          .hi_num = n + (tol > 0 ? tol : 1e-300),
                          .system = system,
                          .text = code};
    expect_cond(what, "Basic", cond("value-quantity", VL_INDEX_QUANTITY, VL_MATCH_DEFAULT, 1, &v),
                want);
}

/* ------------------------------------------------------------------------
 * Tokens and references
 * ---------------------------------------------------------------------- */

static void test_token(void **state)
{
    (void)state;
    token("code only: any system", NULL, "8867-4", "o1,o3,o4");
    token("system|code", "http://loinc.org", "8867-4", "o1");
    token("other system|code", "http://other.org", "8867-4", "o4");
    token("|code: no system", "", "8867-4", "o3");
    token("system|: any code of the system", "http://loinc.org", NULL, "o1,o2,oupd");
    token("second coding", "http://snomed.info/sct", "364075005", "o2");
    token("system of one coding, code of another", "http://snomed.info/sct", "9279-1", "");
    token("unknown code", NULL, "0000-0", "");
    token("codes are case-sensitive and exact", NULL, "8867", "");
    token("no prefix match on codes", NULL, "8867-4 ", "");
    token("| with no code: codings without system", "", NULL, "o3");
    token("updated resource: new code", NULL, "2708-6", "oupd");
}

static void test_token_or_and(void **state)
{
    (void)state;
    vl_query_value_t vs[] = {{.text = "8867-4"}, {.system = "http://loinc.org", .text = "9279-1"}};
    vl_query_value_t v2[] = {{.text = "0000-0"}, {.text = "364075005"}};
    expect_cond("values OR'd", "Observation", cond("code", VL_INDEX_TOKEN, 0, 2, vs),
                "o1,o2,o3,o4");
    expect_cond("values OR'd, one unknown", "Observation", cond("code", VL_INDEX_TOKEN, 0, 2, v2),
                "o2");

    /* a resource matching two values is returned once */
    vl_query_value_t dup[] = {{.text = "9279-1"}, {.text = "364075005"}, {.text = "9279-1"}};
    expect_cond("no duplicates", "Observation", cond("code", VL_INDEX_TOKEN, 0, 3, dup), "o2");

    /* conditions AND'd */
    vl_query_value_t code = {.text = "8867-4"}, subj = {.text = "Patient/p1"};
    vl_query_cond_t cs[] = {cond("code", VL_INDEX_TOKEN, 0, 1, &code),
                            cond("subject", VL_INDEX_REFERENCE, 0, 1, &subj)};
    vl_query_t q = {.type = "Observation", .n = 2, .conds = cs, .count = 100};
    expect_q("code AND subject", &q, "o1,o3", -1);
    vl_query_value_t sys = {.system = "http://loinc.org"};
    vl_query_cond_t cs3[] = {cs[0], cs[1], cond("code", VL_INDEX_TOKEN, 0, 1, &sys)};
    q.conds = cs3;
    q.n = 3;
    expect_q("code AND subject AND system|", &q, "o1", -1);
    /* the same param twice: both must hold (different rows may satisfy each) */
    vl_query_value_t a = {.text = "9279-1"}, b = {.text = "364075005"};
    vl_query_cond_t same[] = {cond("code", VL_INDEX_TOKEN, 0, 1, &a),
                              cond("code", VL_INDEX_TOKEN, 0, 1, &b)};
    q.conds = same;
    q.n = 2;
    expect_q("code=a AND code=b", &q, "o2", -1);
    vl_query_cond_t none[] = {cs[0], cond("code", VL_INDEX_TOKEN, 0, 1, &a)};
    q.conds = none;
    expect_q("code=x AND code=y, no resource has both", &q, "", -1);

    /* _id narrows to one resource */
    q.conds = cs;
    q.n = 2;
    q.id = "o3";
    expect_q("_id AND conditions", &q, "o3", -1);
    q.id = "o2";
    expect_q("_id not matching the conditions", &q, "", -1);
    q.n = 0;
    expect_q("_id alone", &q, "o2", -1);
    q.id = "odel";
    expect_q("_id of a deleted resource", &q, "", -1);

    /* an "_id" condition: any of several ids */
    vl_query_value_t ids[] = {{.text = "o3"}, {.text = "odel"}, {.text = "o1"}, {.text = "nope"}};
    expect_cond("_id values OR'd", "Observation", cond("_id", VL_INDEX_TOKEN, 0, 4, ids), "o1,o3");
    vl_query_cond_t idc[] = {cond("_id", VL_INDEX_TOKEN, 0, 4, ids), cs[1]};
    vl_query_t qi = {.type = "Observation", .n = 2, .conds = idc, .count = 100};
    expect_q("_id values AND subject", &qi, "o1,o3", -1);
    idc[1] = cond("code", VL_INDEX_TOKEN, 0, 1, &a);
    expect_q("_id values AND code", &qi, "", -1);

    /* no conditions: every live resource of the type */
    vl_query_t all = {.type = "Observation", .count = 100};
    expect_q("no conditions", &all, "o1,o2,o3,o4,o5,oupd", -1);
    vl_query_t cond_type = {.type = "Condition", .count = 100};
    expect_q("type filter", &cond_type, "c1", -1);
}

static void test_reference(void **state)
{
    (void)state;
    vl_query_value_t v = {.text = "Patient/p1"};
    expect_cond("reference", "Observation", cond("subject", VL_INDEX_REFERENCE, 0, 1, &v), "o1,o3");
    v.text = "Patient/p";
    expect_cond("no prefix match", "Observation", cond("subject", VL_INDEX_REFERENCE, 0, 1, &v),
                "");
    v.text = "http://example.org/fhir/Patient/p1";
    expect_cond("absolute", "Observation", cond("subject", VL_INDEX_REFERENCE, 0, 1, &v), "o4");
    v.text = "patient/p1";
    expect_cond("case-sensitive", "Observation", cond("subject", VL_INDEX_REFERENCE, 0, 1, &v), "");
    vl_query_value_t vs[] = {{.text = "Patient/p2"}, {.text = "Patient/p1"}};
    expect_cond("OR", "Observation", cond("subject", VL_INDEX_REFERENCE, 0, 2, vs), "o1,o2,o3");
    /* rows of another param do not match */
    v.text = "Patient/p1";
    expect_cond("param name matters", "Observation", cond("patient", VL_INDEX_REFERENCE, 0, 1, &v),
                "");
}

static void test_missing(void **state)
{
    (void)state;
    vl_query_cond_t c = cond("code", VL_INDEX_TOKEN, 0, 0, NULL);
    c.missing = 1;
    expect_cond("code:missing=true", "Observation", c, "o5");
    c.missing = 0;
    expect_cond("code:missing=false", "Observation", c, "o1,o2,o3,o4,oupd");
    c = cond("subject", VL_INDEX_REFERENCE, 0, 0, NULL);
    c.missing = 1;
    expect_cond("subject:missing=true (oupd lost it in its update)", "Observation", c, "o5,oupd");
    c.missing = 0;
    expect_cond("subject:missing=false", "Observation", c, "o1,o2,o3,o4");
    c = cond("date", VL_INDEX_DATE, 0, 0, NULL);
    c.missing = 1;
    expect_cond("date:missing=true", "Encounter", c, "dnone");
    c.missing = 0;
    expect_cond("date:missing=false", "Encounter", c, "d1,d2,d3,d4,d5,d6,d7");
    c = cond("name", VL_INDEX_STRING, 0, 0, NULL);
    c.missing = 1;
    expect_cond("name:missing=true", "Patient", c, "");
    c = cond("value-quantity", VL_INDEX_QUANTITY, 0, 0, NULL);
    c.missing = 0;
    expect_cond("value-quantity:missing=false", "Basic", c, "q1,q2,q3,q4,q5,q6,q7");
    /* missing combined with another condition */
    vl_query_value_t cat = {.text = "vital-signs"};
    vl_query_cond_t cs[] = {cond("code", VL_INDEX_TOKEN, 0, 0, NULL),
                            cond("category", VL_INDEX_TOKEN, 0, 1, &cat)};
    cs[0].missing = 1;
    vl_query_t q = {.type = "Observation", .n = 2, .conds = cs, .count = 100};
    expect_q("missing AND token", &q, "o5", -1);
}

/* ------------------------------------------------------------------------
 * Strings
 * ---------------------------------------------------------------------- */

static void test_string(void **state)
{
    (void)state;
    /* default: starts-with on the normalized form (search values come normalized) */
    string("default prefix", VL_MATCH_DEFAULT, "eve", "p1,p2,p4");
    string("default whole", VL_MATCH_DEFAULT, "eve martin", "p1");
    string("default: prefix of any of its values", VL_MATCH_DEFAULT, "stevi", "p3");
    string("default: no infix match", VL_MATCH_DEFAULT, "martin", "");
    string("default: no match", VL_MATCH_DEFAULT, "zoe", "");
    string("default: longer than the value", VL_MATCH_DEFAULT, "evelyn2", "");
    string("default: % is no wildcard", VL_MATCH_DEFAULT, "%", "");
    string("default: _ is no wildcard", VL_MATCH_DEFAULT, "_", "");
    string("default: literal %", VL_MATCH_DEFAULT, "100%", "p5");
    string("default: literal _", VL_MATCH_DEFAULT, "100% pure_", "p5");
    /* :exact: the value as given, case- and accent-sensitive */
    string(":exact", VL_MATCH_EXACT, "EVE", "p4");
    string(":exact case", VL_MATCH_EXACT, "Eve", "");
    string(":exact accent", VL_MATCH_EXACT, "\xc3\x88ve Martin", "p1");
    string(":exact without accent", VL_MATCH_EXACT, "Eve Martin", "");
    string(":exact no prefix", VL_MATCH_EXACT, "Evel", "");
    string(":exact second value", VL_MATCH_EXACT, "Stevie", "p3");
    /* :contains: substring of norm */
    string(":contains", VL_MATCH_CONTAINS, "eve", "p1,p2,p3,p4");
    string(":contains middle", VL_MATCH_CONTAINS, "vel", "p2");
    string(":contains end", VL_MATCH_CONTAINS, "mart", "p1");
    string(":contains % literal", VL_MATCH_CONTAINS, "% p", "p5");
    string(":contains _ literal", VL_MATCH_CONTAINS, "e_x", "p5");
    string(":contains %", VL_MATCH_CONTAINS, "e%x", "");
    string(":contains none", VL_MATCH_CONTAINS, "xyz", "");
    /* values OR'd */
    vl_query_value_t vs[] = {{.text = "st"}, {.text = "evel"}};
    expect_cond("OR", "Patient", cond("name", VL_INDEX_STRING, VL_MATCH_DEFAULT, 2, vs), "p2,p3");
}

/* ------------------------------------------------------------------------
 * Dates
 *
 *   d1 2024-05-06T10:00:00Z (1 s)   d2 2024-05-06 (day)   d3 2024-05 (month)
 *   d4 [2024-05-01, open)           d5 (open, 2024-05-01) d6 2023
 *   d7 2024-05-07T00:00:00Z (1 s)   dnone: no date        ddel: deleted
 * ---------------------------------------------------------------------- */

static void test_date_day(void **state)
{
    (void)state;
    date("eq day: inside", VL_CMP_EQ, "2024-05-06", "d1,d2");
    date("ne day", VL_CMP_NE, "2024-05-06", "d3,d4,d5,d6,d7");
    date("lt day: starts before", VL_CMP_LT, "2024-05-06", "d3,d4,d5,d6");
    date("le day: lt or eq", VL_CMP_LE, "2024-05-06", "d1,d2,d3,d4,d5,d6");
    date("gt day: ends after", VL_CMP_GT, "2024-05-06", "d3,d4,d7");
    date("ge day: gt or eq", VL_CMP_GE, "2024-05-06", "d1,d2,d3,d4,d7");
}

static void test_date_precisions(void **state)
{
    (void)state;
    date("eq year", VL_CMP_EQ, "2024", "d1,d2,d3,d7");
    date("eq other year", VL_CMP_EQ, "2023", "d6");
    date("eq month", VL_CMP_EQ, "2024-05", "d1,d2,d3,d7");
    date("eq second", VL_CMP_EQ, "2024-05-06T10:00:00Z", "d1");
    date("eq second, other zone", VL_CMP_EQ, "2024-05-06T12:00:00+02:00", "d1");
    date("eq second, no match", VL_CMP_EQ, "2024-05-06T10:00:01Z", "");
    date("gt second", VL_CMP_GT, "2024-05-06T10:00:00Z", "d2,d3,d4,d7");
    date("lt second", VL_CMP_LT, "2024-05-06T10:00:00Z", "d2,d3,d4,d5,d6");
    date("ge second", VL_CMP_GE, "2024-05-06T10:00:00Z", "d1,d2,d3,d4,d7");
    date("le second", VL_CMP_LE, "2024-05-06T10:00:00Z", "d1,d2,d3,d4,d5,d6");
    date("gt year", VL_CMP_GT, "2024", "d4");
    date("lt year", VL_CMP_LT, "2024", "d5,d6");
    date("ge year", VL_CMP_GE, "2024", "d1,d2,d3,d4,d7");
    date("lt month", VL_CMP_LT, "2024-05", "d5,d6");
    date("gt month", VL_CMP_GT, "2024-05", "d4");
    date("le 2023", VL_CMP_LE, "2023", "d5,d6");
    date("gt far future", VL_CMP_GT, "9999", "d4");
    date("lt far past", VL_CMP_LT, "0001", "d5");
    date("eq far range", VL_CMP_EQ, "2024-06", "");
}

static void test_date_open_periods(void **state)
{
    (void)state;
    /* d4 has no end: never inside a finite range, always "ends after" */
    date("eq 2024-05-01 (d4's start day)", VL_CMP_EQ, "2024-05-01", "");
    date("gt 2030", VL_CMP_GT, "2030", "d4");
    date("ne 2030", VL_CMP_NE, "2030", "d1,d2,d3,d4,d5,d6,d7");
    /* d5 has no start: always "starts before" */
    date("lt 1900", VL_CMP_LT, "1900", "d5");
    date("le 1900", VL_CMP_LE, "1900", "d5");
    date("ge 2024-04-30", VL_CMP_GE, "2024-04-30", "d1,d2,d3,d4,d7");
    date("gt 2024-04-29 (d5 ends after it)", VL_CMP_GT, "2024-04-29", "d1,d2,d3,d4,d5,d7");
    date("gt 2024-04-30 (d5 ends exactly then)", VL_CMP_GT, "2024-04-30", "d1,d2,d3,d4,d7");
    /* the search value itself may be open */
    vl_query_value_t v = {.cmp = VL_CMP_EQ, .lo = INT64_MIN, .hi = INT64_MAX};
    expect_cond("eq everything", "Encounter", cond("date", VL_INDEX_DATE, 0, 1, &v),
                "d1,d2,d3,d4,d5,d6,d7");
}

static void test_date_or_and(void **state)
{
    (void)state;
    vl_query_value_t vs[] = {dv(VL_CMP_EQ, "2023"), dv(VL_CMP_EQ, "2024-05-07T00:00:00Z")};
    expect_cond("OR of values", "Encounter", cond("date", VL_INDEX_DATE, 0, 2, vs), "d6,d7");
    vl_query_value_t ge = dv(VL_CMP_GE, "2024-05-06"), le = dv(VL_CMP_LE, "2024-05-06");
    vl_query_cond_t cs[] = {cond("date", VL_INDEX_DATE, 0, 1, &ge),
                            cond("date", VL_INDEX_DATE, 0, 1, &le)};
    vl_query_t q = {.type = "Encounter", .n = 2, .conds = cs, .count = 100};
    expect_q("ge AND le (same param)", &q, "d1,d2,d3,d4", -1);
    vl_query_value_t gt = dv(VL_CMP_GT, "2024-05-06"), lt = dv(VL_CMP_LT, "2024-05-07");
    vl_query_cond_t cs2[] = {cond("date", VL_INDEX_DATE, 0, 1, &gt),
                             cond("date", VL_INDEX_DATE, 0, 1, &lt)};
    q.conds = cs2;
    expect_q("gt AND lt", &q, "d3,d4", -1);
}

static void test_sort_by_date(void **state)
{
    (void)state;
    vl_query_t q = {.type = "Encounter", .count = 100, .n_sort = 1, .sort = {{"date", 0}}};
    /* ascending by the earliest start; ties by creation; no date last */
    expect_q("sort date asc", &q, "d5,d6,d3,d4,d2,d1,d7,dnone", -1);
    /* descending by the latest end */
    q.sort[0].desc = 1;
    expect_q("sort date desc", &q, "d4,d3,d7,d2,d1,d5,d6,dnone", -1);
    /* with a filter and paging */
    vl_query_value_t v = dv(VL_CMP_LE, "2024-05-06");
    vl_query_cond_t c = cond("date", VL_INDEX_DATE, 0, 1, &v);
    q.n = 1;
    q.conds = &c;
    q.count = 2;
    q.offset = 1;
    expect_q("filtered, sorted desc, paged", &q, "d3,d2", 6);
    q.sort[0].desc = 0;
    expect_q("filtered, sorted asc, paged", &q, "d6,d3", 6);
    /* sorting by a param no resource has keeps the default order */
    vl_query_t q2 = {.type = "Encounter", .count = 100, .n_sort = 1, .sort = {{"period", 0}}};
    expect_q("sort by absent param", &q2, "d1,d2,d3,d4,d5,d6,d7,dnone", -1);
}

/* ------------------------------------------------------------------------
 * Quantities: q1 72 /min, q2 71.99999999999 /min, q3 100 kg, q4 50 (no
 * system/code), q5 -5 /min, q6 0 /min, q7 72.0000002 /min
 * ---------------------------------------------------------------------- */

static void test_quantity(void **state)
{
    (void)state;
    const char *ucum = "http://unitsofmeasure.org";
    qty("eq within 1e-9", VL_CMP_EQ, 72, NULL, NULL, "q1,q2");
    qty("ne", VL_CMP_NE, 72, NULL, NULL, "q3,q4,q5,q6,q7");
    qty("lt", VL_CMP_LT, 72, NULL, NULL, "q2,q4,q5,q6");
    qty("le", VL_CMP_LE, 72, NULL, NULL, "q1,q2,q4,q5,q6");
    qty("gt", VL_CMP_GT, 72, NULL, NULL, "q3,q7");
    qty("ge", VL_CMP_GE, 72, NULL, NULL, "q1,q3,q7");
    qty("gt 80", VL_CMP_GT, 80, NULL, NULL, "q3");
    qty("eq 0 exact", VL_CMP_EQ, 0, NULL, NULL, "q6");
    qty("lt 0", VL_CMP_LT, 0, NULL, NULL, "q5");
    qty("eq negative", VL_CMP_EQ, -5, NULL, NULL, "q5");
    qty("eq 50", VL_CMP_EQ, 50, NULL, NULL, "q4");
    qty("eq 72.0000002", VL_CMP_EQ, 72.0000002, NULL, NULL, "q7");
    qty("eq 100.00000001 (1e-9 relative)", VL_CMP_EQ, 100.00000001, NULL, NULL, "q3");
    qty("eq 100.001", VL_CMP_EQ, 100.001, NULL, NULL, "");
    /* system and code must match when given */
    qty("eq with system|code", VL_CMP_EQ, 72, ucum, "/min", "q1,q2");
    qty("eq with wrong code", VL_CMP_EQ, 72, ucum, "kg", "");
    qty("eq with wrong system", VL_CMP_EQ, 72, "http://other", "/min", "");
    qty("eq with code only", VL_CMP_EQ, 100, NULL, "kg", "q3");
    qty("ge 0 with system", VL_CMP_GE, 0, ucum, NULL, "q1,q2,q3,q6,q7");
    qty("gt -10 with code", VL_CMP_GT, -10, NULL, "/min", "q1,q2,q5,q6,q7");
    qty("empty system/code ignored", VL_CMP_EQ, 50, "", "", "q4");
    vl_query_value_t vs[] = {{.cmp = VL_CMP_LT, .number = 0}, {.cmp = VL_CMP_GT, .number = 99}};
    expect_cond("OR", "Basic", cond("value-quantity", VL_INDEX_QUANTITY, 0, 2, vs), "q3,q5");
    vl_query_value_t lo = {.cmp = VL_CMP_GE, .number = 0}, hi = {.cmp = VL_CMP_LT, .number = 72};
    vl_query_cond_t cs[] = {cond("value-quantity", VL_INDEX_QUANTITY, 0, 1, &lo),
                            cond("value-quantity", VL_INDEX_QUANTITY, 0, 1, &hi)};
    vl_query_t q = {.type = "Basic", .n = 2, .conds = cs, .count = 100};
    expect_q("range by AND", &q, "q2,q4,q6", -1);
}

/* ------------------------------------------------------------------------
 * _lastUpdated, sorting, paging (Device dev0..dev6, increasing times)
 * ---------------------------------------------------------------------- */

static void lastupdated(const char *what, vl_cmp_t cmp, int64_t lo, int64_t hi, const char *want)
{
    vl_query_value_t v = {.cmp = cmp, .lo = lo, .hi = hi};
    vl_query_cond_t c = cond("_lastUpdated", VL_INDEX_DATE, 0, 1, &v);
    vl_query_t q = {.type = "Device", .n = 1, .conds = &c, .count = 100};
    expect_q(what, &q, want, -1);
}

static void test_last_updated(void **state)
{
    (void)state;
    int64_t *lu = F->lu;
    lastupdated("eq one microsecond", VL_CMP_EQ, lu[3], lu[3] + 1, "dev3");
    lastupdated("eq range", VL_CMP_EQ, lu[2], lu[4] + 1, "dev2,dev3,dev4");
    lastupdated("ne", VL_CMP_NE, lu[3], lu[3] + 1, "dev0,dev1,dev2,dev4,dev5,dev6");
    lastupdated("gt", VL_CMP_GT, lu[3], lu[3] + 1, "dev4,dev5,dev6");
    lastupdated("ge", VL_CMP_GE, lu[3], lu[3] + 1, "dev3,dev4,dev5,dev6");
    lastupdated("lt", VL_CMP_LT, lu[3], lu[3] + 1, "dev0,dev1,dev2");
    lastupdated("le", VL_CMP_LE, lu[3], lu[3] + 1, "dev0,dev1,dev2,dev3");
    lastupdated("gt a millisecond range", VL_CMP_GT, lu[5] - lu[5] % 1000,
                lu[5] - lu[5] % 1000 + 1000, "dev6");
    lastupdated("lt everything", VL_CMP_LT, lu[0], lu[0] + 1, "");
    {
        char ts[32];
        int64_t lo, hi;
        /* a FHIR instant as clients see it in meta.lastUpdated (ms precision) */
        vl_time_format(lu[4], ts);
        range(ts, &lo, &hi);
        lastupdated("eq formatted instant", VL_CMP_EQ, lo, hi, "dev4");
        range("2000", &lo, &hi);
        lastupdated("gt 2000", VL_CMP_GT, lo, hi, "dev0,dev1,dev2,dev3,dev4,dev5,dev6");
    }
    /* combined with a token */
    vl_query_value_t v = {.cmp = VL_CMP_GE, .lo = lu[5], .hi = lu[5] + 1};
    vl_query_value_t t = {.text = "watch"};
    vl_query_cond_t cs[] = {cond("type", VL_INDEX_TOKEN, 0, 1, &t),
                            cond("_lastUpdated", VL_INDEX_DATE, 0, 1, &v)};
    vl_query_t q = {.type = "Device", .n = 2, .conds = cs, .count = 100};
    expect_q("_lastUpdated AND token", &q, "dev5,dev6", -1);
}

static void test_sort_last_updated(void **state)
{
    (void)state;
    vl_query_t q = {.type = "Device", .count = 100, .n_sort = 1, .sort = {{"_lastUpdated", 0}}};
    expect_q("asc", &q, "dev0,dev1,dev2,dev3,dev4,dev5,dev6", -1);
    q.sort[0].desc = 1;
    expect_q("desc", &q, "dev6,dev5,dev4,dev3,dev2,dev1,dev0", -1);
    q.count = 2;
    q.offset = 2;
    expect_q("desc paged", &q, "dev4,dev3", 7);
}

static void test_paging(void **state)
{
    (void)state;
    vl_query_t q = {.type = "Device", .count = 3};
    expect_q("page 1", &q, "dev0,dev1,dev2", 7);
    q.offset = 3;
    expect_q("page 2", &q, "dev3,dev4,dev5", 7);
    q.offset = 6;
    expect_q("page 3", &q, "dev6", 7);
    q.offset = 7;
    expect_q("past the end", &q, "", 7);
    q.offset = 100;
    expect_q("far past the end", &q, "", 7);
    q.offset = 0;
    q.count = 1;
    expect_q("count 1", &q, "dev0", 7);
    q.count = 0;
    expect_q("count 0: total only", &q, "", 7);
    q.count = 100;
    expect_q("count larger than the set", &q, "dev0,dev1,dev2,dev3,dev4,dev5,dev6", 7);
    /* with a filter the total counts matches only */
    vl_query_value_t v = {.cmp = VL_CMP_GT, .lo = F->lu[1], .hi = F->lu[1] + 1};
    vl_query_cond_t c = cond("_lastUpdated", VL_INDEX_DATE, 0, 1, &v);
    vl_query_t f = {.type = "Device", .n = 1, .conds = &c, .count = 2, .offset = 1};
    expect_q("filtered page", &f, "dev3,dev4", 5);
}

static void test_deleted_never_returned(void **state)
{
    (void)state;
    /* odel, pdel, ddel were indexed like live resources before their deletion */
    token("deleted token", "http://loinc.org", "8867-4", "o1");
    string("deleted string", VL_MATCH_EXACT, "Eve", "");
    date("deleted date", VL_CMP_EQ, "2024-05-06", "d1,d2");
    vl_query_cond_t c = cond("code", VL_INDEX_TOKEN, 0, 0, NULL);
    c.missing = 1;
    expect_cond("deleted not :missing", "Observation", c, "o5");
    vl_query_t q = {.type = "Patient", .count = 100};
    expect_q("deleted not in a plain list", &q, "p1,p2,p3,p4,p5", -1);
    /* an updated resource's old rows are gone */
    vl_query_value_t s = {.text = "Patient/p1"};
    expect_cond("old reference of oupd", "Observation",
                cond("subject", VL_INDEX_REFERENCE, 0, 1, &s), "o1,o3");
    /* and the result bodies are the current version's */
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_query_t one = {.type = "Observation", .id = "oupd", .count = 10};
    vl_record_t rec;
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &one, 1, 0, &out, &err), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.items[0].version, 2);
    assert_int_equal(tstore_read(F->store, vl_scope_everything(), "Observation", "oupd", 0, &rec),
                     VL_STORE_OK);
    assert_int_equal(rec.version, 2);
    assert_string_equal(out.items[0].body, rec.body);
    assert_int_equal(out.items[0].last_updated_us, rec.last_updated_us);
    vl_record_free(&rec);
    assert_int_equal(tstore_read(F->store, vl_scope_everything(), "Observation", "oupd", 1, &rec),
                     VL_STORE_OK);
    assert_string_not_equal(out.items[0].body, rec.body);
    vl_record_free(&rec);
    vl_records_free(&out);
    /* a deleted resource is not found by _id, nor counted */
    vl_query_t gone = {.type = "Observation", .id = "odel", .count = 10};
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &gone, 1, 0, &out, &err), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.total, 0);
    vl_records_free(&out);
}

/* Without with_total the store does not count; max_bytes ends a page once
 * its bodies hold that many bytes (always at least one record); neither
 * changes the total. */
static void test_total_and_max_bytes(void **state)
{
    (void)state;
    vl_query_t q = {.type = "Device", .count = 100};
    vl_records_t out;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    size_t one;
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &q, 0, 0, &out, &err), 0);
    assert_int_equal(out.n, 7);
    assert_int_equal(out.total, -1); /* not counted */
    vl_records_free(&out);
    /* _count=0 without a total reads nothing */
    q.count = 0;
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &q, 0, 0, &out, &err), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.total, -1);
    q.count = 100;
    vl_records_free(&out);
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &q, 0, 0, &out, &err), 0);
    one = out.items[0].body_len;
    for (size_t i = 0; i < out.n; i++)
        assert_int_equal(out.items[i].body_len, one); /* dev0..dev6: bodies of one length */
    vl_records_free(&out);
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &q, 1, 1, &out, &err), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.total, 7);
    assert_string_equal(out.items[0].id, "dev0");
    vl_records_free(&out);
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &q, 1, 2 * one, &out, &err),
                     0);
    assert_int_equal(out.n, 2);
    vl_records_free(&out);
    assert_int_equal(
        vl_store_search(F->store, vl_scope_everything(), &q, 1, 2 * one + 1, &out, &err), 0);
    assert_int_equal(out.n, 3);
    assert_int_equal(out.total, 7);
    vl_records_free(&out);
    q.offset = 5;
    assert_int_equal(vl_store_search(F->store, vl_scope_everything(), &q, 1, 100 * one, &out, &err),
                     0);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.items[0].id, "dev5");
    vl_records_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_token_or_and),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_date_day),
        cmocka_unit_test(test_date_precisions),
        cmocka_unit_test(test_date_open_periods),
        cmocka_unit_test(test_date_or_and),
        cmocka_unit_test(test_sort_by_date),
        cmocka_unit_test(test_quantity),
        cmocka_unit_test(test_last_updated),
        cmocka_unit_test(test_sort_last_updated),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_deleted_never_returned),
        cmocka_unit_test(test_total_and_max_bytes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
