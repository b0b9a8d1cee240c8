/*
 * Unit tests for the interaction layer (src/fhir/interaction.c, rest.c):
 * the table routes every request, the policy is asked exactly once per
 * request with the row's description, and every read path honours the
 * access scope the policy gives (a test policy restricted to one patient),
 * totals and paging included.
 *
 * Requests are plain vl_fhir_request_t structs handed to vl_fhir_handle()
 * over a real store in a temporary directory; no HTTP.
 */
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../src/fhir/fhir_internal.h"
#include "../support.h"

#include "vitalog/consent.h"

/* ------------------------------------------------------------------------
 * A test policy: counts its calls, keeps the last description, and
 * restricts reads to one patient (or allows everything, or denies).
 * ---------------------------------------------------------------------- */

typedef enum { P_ALL, P_ONE_PATIENT, P_DENY } mode_t_;

typedef struct policy_ctx {
    mode_t_ mode;
    vl_role_t role;   /* who t_identify says the caller is (0: admin) */
    char patient[65]; /* for VL_ROLE_PATIENT */
    int shared;       /* P_ONE_PATIENT: also records in no compartment */
    int calls;
    char interaction[32], type[32], id[80], compartment[80], operation[32];
    int write;
} policy_ctx_t;

static int t_identify(void *ctx, const char *authorization, vl_principal_t *who, vl_error_t *err)
{
    policy_ctx_t *p = ctx;
    (void)authorization;
    (void)err;
    memset(who, 0, sizeof *who);
    /* identified (not anonymous): authorized after the body is parsed */
    who->role = p->role ? p->role : VL_ROLE_ADMIN;
    snprintf(who->subject, sizeof who->subject, "%s",
             who->role == VL_ROLE_PATIENT ? "Patient/p1" : "Organization/test");
    snprintf(who->patient, sizeof who->patient, "%s", p->patient);
    return 0;
}

static void keep(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

static int t_authorize(void *ctx, const vl_principal_t *who, const vl_access_t *what,
                       vl_arena_t *arena, vl_scope_t *scope, vl_error_t *err)
{
    static const char *const patients[] = {"p1"};
    policy_ctx_t *p = ctx;
    (void)who;
    (void)arena;
    p->calls++;
    keep(p->interaction, sizeof p->interaction, what->interaction);
    keep(p->type, sizeof p->type, what->resource_type);
    keep(p->id, sizeof p->id, what->resource_id);
    keep(p->compartment, sizeof p->compartment, what->compartment);
    keep(p->operation, sizeof p->operation, what->operation);
    p->write = what->write;
    switch (p->mode) {
    case P_ALL: *scope = vl_scope_everything(); return 0;
    case P_ONE_PATIENT:
        scope->flags = p->shared ? VL_SCOPE_SHARED : 0;
        scope->patients = patients;
        scope->n_patients = 1;
        return 0;
    default: return vl_error_set(err, 403, "forbidden", NULL, "the test policy denies everything");
    }
}

/* ------------------------------------------------------------------------
 * Fixture
 * ---------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    vl_store_t *store;
    vl_fhir_t *fhir;
    policy_ctx_t pctx;
    vl_policy_t policy;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_fhir_options_t o;
    snprintf(f->dir, sizeof f->dir, "/tmp/vl-ia-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(vl_store_open(f->dir, test_store_options(NULL), &f->store, &err), 0);
    f->policy = (vl_policy_t){t_identify, t_authorize, &f->pctx};
    memset(&o, 0, sizeof o);
    o.store = f->store;
    o.policy = &f->policy;
    o.max_page_bytes = 1 << 20;
    o.ingest_key = (const unsigned char *)"0123456789abcdef0123456789abcdef";
    f->fhir = vl_fhir_new(&o);
    assert_non_null(f->fhir);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    vl_fhir_free(f->fhir);
    vl_store_close(f->store);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------------
 * Requests, synchronously
 * ---------------------------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
} waiter_t;

static void notify(void *arg)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

typedef struct answer {
    int status;
    json_t *body; /* parsed, or NULL */
    char allow[64];
} answer_t;

/* Sends METHOD path?query with an optional JSON body; fills *a. */
static void call(fixture_t *f, const char *method, const char *target, const char *body,
                 answer_t *a)
{
    vl_fhir_request_t req;
    vl_fhir_response_t res;
    vl_fhir_exchange_t *x = NULL;
    vl_params_t params;
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    char path[4096];
    const char *q = strchr(target, '?');
    vl_params_init(&params);
    snprintf(path, sizeof path, "%.*s", q ? (int)(q - target) : (int)strlen(target), target);
    if (q)
        assert_int_equal(vl_params_parse_form(&params, q + 1, strlen(q + 1)), 0);
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.params = &params;
    req.base_url = "http://test.invalid";
    req.body = body ? body : "";
    req.body_len = body ? strlen(body) : 0;
    req.content_type = !body            ? NULL
                       : body[0] == '{' ? "application/fhir+json"
                                        : "application/x-www-form-urlencoded";
    if (vl_fhir_handle(f->fhir, &req, notify, &w, &x, &res) == 1) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        vl_fhir_resume(x, &res);
    }
    memset(a, 0, sizeof *a);
    a->status = res.status;
    if (res.allow)
        snprintf(a->allow, sizeof a->allow, "%s", res.allow);
    if (res.body && res.body_len && (!res.content_type || strstr(res.content_type, "json")))
        a->body = json_loadb(res.body, res.body_len, 0, NULL);
    vl_fhir_response_free(&res);
    vl_fhir_exchange_free(x);
    vl_params_free(&params);
}

static const char *diagnostics(const answer_t *a)
{
    json_t *issue = json_array_get(json_object_get(a->body, "issue"), 0);
    const char *d = json_string_value(json_object_get(issue, "diagnostics"));
    return d ? d : "";
}

static void done(answer_t *a)
{
    json_decref(a->body);
    a->body = NULL;
}

/* Creates a resource; returns its id (static buffer per call site). */
static void create(fixture_t *f, const char *type, const char *body, char id[65])
{
    answer_t a;
    char path[80];
    snprintf(path, sizeof path, "/fhir/%s", type);
    call(f, "POST", path, body, &a);
    if (a.status != 201)
        fail_msg("POST %s: %d %s", type, a.status, diagnostics(&a));
    snprintf(id, 65, "%s", json_string_value(json_object_get(a.body, "id")));
    done(&a);
}

static void put(fixture_t *f, const char *type, const char *id, const char *body)
{
    answer_t a;
    char path[160];
    snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
    call(f, "PUT", path, body, &a);
    if (a.status != 201 && a.status != 200)
        fail_msg("PUT %s/%s: %d %s", type, id, a.status, diagnostics(&a));
    done(&a);
}

/* ------------------------------------------------------------------------
 * Routing
 * ---------------------------------------------------------------------- */

static void test_routing(void **state)
{
    fixture_t *f = *state;
    answer_t a;
    f->pctx.mode = P_ALL;
    call(f, "GET", "/fhir/Patient/$everything", NULL, &a);
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(diagnostics(&a), "unknown operation '$everything'"));
    done(&a);
    call(f, "GET", "/fhir/Patient/x/$bar", NULL, &a);
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(diagnostics(&a), "unknown operation '$bar'"));
    assert_null(strstr(diagnostics(&a), "valid FHIR id"));
    done(&a);
    call(f, "GET", "/fhir/Observation/x/_history/1/$nope", NULL, &a);
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(diagnostics(&a), "unknown operation"));
    done(&a);
    call(f, "GET", "/fhir/Patient/..", NULL, &a);
    assert_int_equal(a.status, 400);
    done(&a);
    call(f, "PUT", "/fhir/Patient/.", "{\"resourceType\":\"Patient\",\"id\":\".\"}", &a);
    assert_int_equal(a.status, 400);
    done(&a);
    call(f, "POST", "/fhir/Patient/x", NULL, &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(a.allow, "GET, HEAD, PUT, DELETE, PATCH");
    done(&a);
    call(f, "GET", "/fhir/Questionnaire", NULL, &a);
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(diagnostics(&a), "not served"));
    done(&a);
    /* AuditEvent is read-only: the server writes them */
    call(f, "POST", "/fhir/AuditEvent", "{\"resourceType\":\"AuditEvent\"}", &a);
    assert_int_equal(a.status, 405);
    done(&a);
    call(f, "DELETE", "/fhir/AuditEvent/x", NULL, &a);
    assert_int_equal(a.status, 405);
    done(&a);
    call(f, "GET", "/fhir/Bogus", NULL, &a);
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(diagnostics(&a), "not a FHIR resource type"));
    done(&a);
    call(f, "GET", "/nowhere", NULL, &a);
    assert_int_equal(a.status, 404);
    done(&a);
    /* no policy call for requests that never reach a row */
    assert_int_equal(f->pctx.calls, 0);
}

/* ------------------------------------------------------------------------
 * Authorization: once per request, every row, the row's description
 * ---------------------------------------------------------------------- */

/* A concrete path of a pattern: {type}=Patient, {id}=p1, {vid}=1. */
static void concrete(const char *pattern, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 16 < n;) {
        if (!strncmp(p, "{type}", 6)) {
            o += (size_t)snprintf(out + o, n - o, "Patient");
            p += 6;
        } else if (!strncmp(p, "{id}", 4)) {
            o += (size_t)snprintf(out + o, n - o, "p1");
            p += 4;
        } else if (!strncmp(p, "{vid}", 5)) {
            o += (size_t)snprintf(out + o, n - o, "1");
            p += 5;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static void test_authorized_once_per_row(void **state)
{
    fixture_t *f = *state;
    f->pctx.mode = P_ALL;
    put(f, "Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p1\"}");
    for (const vl_route_t *r = vl_routes; r->pattern; r++) {
        char path[256], target[300];
        const char *body = NULL;
        answer_t a;
        concrete(r->pattern, path, sizeof path);
        snprintf(target, sizeof target, "%s%s", path,
                 !strcmp(r->pattern, "/fhir/{type}") && strcmp(r->method, "POST")
                     ? "?identifier=none"
                 : !strcmp(r->pattern, "/ledger/entries")           ? "?start=0&end=1"
                 : !strcmp(r->pattern, "/ledger/proof/inclusion")   ? "?index=0&size=1"
                 : !strcmp(r->pattern, "/ledger/proof/consistency") ? "?first=1&second=1"
                 : !strcmp(r->pattern, "/ledger/record")            ? "?ref=Patient/p1/_history/1"
                                                                    : "");
        if (r->flags & VL_ROW_FORM_BODY)
            body = "_count=1";
        if (r->flags & VL_ROW_FHIR_BODY)
            body = !strcmp(r->pattern, "/fhir") ? "{\"resourceType\":\"Bundle\",\"type\":\"batch\"}"
                                                : "{\"resourceType\":\"Patient\",\"id\":\"p1\"}";
        f->pctx.calls = 0;
        call(f, r->method, target, body, &a);
        if (f->pctx.calls != 1)
            fail_msg("%s %s: the policy was asked %d times", r->method, target, f->pctx.calls);
        if (strcmp(r->interaction, "transaction") != 0)
            assert_string_equal(f->pctx.interaction, r->interaction);
        else
            assert_string_equal(f->pctx.interaction, "batch"); /* Bundle.type decides */
        assert_string_equal(f->pctx.operation, r->operation ? r->operation : "");
        assert_int_equal(f->pctx.write, (r->flags & VL_ROW_WRITE) != 0);
        if (strstr(r->pattern, "{type}"))
            assert_string_equal(f->pctx.type, "Patient");
        if (strstr(r->pattern, "{id}"))
            assert_string_equal(f->pctx.id, "p1");
        if (strstr(r->pattern, "{type}/{id}"))
            assert_string_equal(f->pctx.compartment, "Patient/p1");
        if (a.status >= 500)
            fail_msg("%s %s answered %d: %s", r->method, target, a.status, diagnostics(&a));
        done(&a);
        /* and the same request denied: 403, the handler never runs */
        f->pctx.mode = P_DENY;
        call(f, r->method, target, body, &a);
        assert_int_equal(a.status, 403);
        done(&a);
        f->pctx.mode = P_ALL;
    }
}

/* ------------------------------------------------------------------------
 * Scopes: every read path, restricted to patient p1
 * ---------------------------------------------------------------------- */

typedef struct world {
    char obs1[3][65], obs2[2][65], org[65];
} world_t;

static void build_world(fixture_t *f, world_t *w)
{
    static const char obs[] = "{\"resourceType\":\"Observation\",\"status\":\"final\","
                              "\"code\":{\"text\":\"hr\"},\"subject\":{\"reference\":\"%s\"}}";
    char body[256];
    f->pctx.mode = P_ALL;
    put(f, "Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p1\"}");
    put(f, "Patient", "p2", "{\"resourceType\":\"Patient\",\"id\":\"p2\"}");
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body, obs, "Patient/p1");
        create(f, "Observation", body, w->obs1[i]);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body, obs, "Patient/p2");
        create(f, "Observation", body, w->obs2[i]);
    }
    create(f, "Organization", "{\"resourceType\":\"Organization\",\"name\":\"Clinic\"}", w->org);
    /* a second version of one of p2's observations */
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":\"amended\","
             "\"code\":{\"text\":\"hr\"},\"subject\":{\"reference\":\"Patient/p2\"}}",
             w->obs2[0]);
    put(f, "Observation", w->obs2[0], body);
    f->pctx.mode = P_ONE_PATIENT;
}

static int64_t total(const answer_t *a)
{
    return json_integer_value(json_object_get(a->body, "total"));
}

static size_t entries(const answer_t *a)
{
    return json_array_size(json_object_get(a->body, "entry"));
}

static int has_next(const answer_t *a)
{
    json_t *links = json_object_get(a->body, "link"), *l;
    size_t i;
    json_array_foreach (links, i, l) {
        if (!strcmp(json_string_value(json_object_get(l, "relation")), "next"))
            return 1;
    }
    return 0;
}

static void test_scope_read_vread(void **state)
{
    fixture_t *f = *state;
    world_t w;
    answer_t a;
    char path[200];
    build_world(f, &w);
    snprintf(path, sizeof path, "/fhir/Observation/%s", w.obs1[0]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 200);
    done(&a);
    /* outside the scope: exactly like a resource that does not exist */
    snprintf(path, sizeof path, "/fhir/Observation/%s", w.obs2[0]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 404);
    done(&a);
    snprintf(path, sizeof path, "/fhir/Observation/%s/_history/1", w.obs2[0]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 404);
    done(&a);
    snprintf(path, sizeof path, "/fhir/Observation/%s/_history/1", w.obs1[1]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 200);
    done(&a);
    call(f, "GET", "/fhir/Patient/p1", NULL, &a);
    assert_int_equal(a.status, 200);
    done(&a);
    call(f, "GET", "/fhir/Patient/p2", NULL, &a);
    assert_int_equal(a.status, 404);
    done(&a);
    /* no compartment: visible only with VL_SCOPE_SHARED */
    snprintf(path, sizeof path, "/fhir/Organization/%s", w.org);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 404);
    done(&a);
    f->pctx.shared = 1;
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 200);
    done(&a);
}

static void test_scope_search_totals_paging(void **state)
{
    fixture_t *f = *state;
    world_t w;
    answer_t a;
    build_world(f, &w);
    call(f, "GET", "/fhir/Observation", NULL, &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(total(&a), 3);
    assert_int_equal(entries(&a), 3);
    done(&a);
    call(f, "GET", "/fhir/Observation?_count=2", NULL, &a);
    assert_int_equal(total(&a), 3);
    assert_int_equal(entries(&a), 2);
    assert_true(has_next(&a));
    done(&a);
    call(f, "GET", "/fhir/Observation?_count=2&_offset=2", NULL, &a);
    assert_int_equal(entries(&a), 1);
    assert_false(has_next(&a));
    done(&a);
    /* a search naming the other patient finds nothing */
    call(f, "GET", "/fhir/Observation?subject=Patient/p2", NULL, &a);
    assert_int_equal(total(&a), 0);
    done(&a);
    call(f, "GET", "/fhir/Patient", NULL, &a);
    assert_int_equal(total(&a), 1);
    done(&a);
    call(f, "GET", "/fhir/Organization", NULL, &a);
    assert_int_equal(total(&a), 0);
    done(&a);
    /* _total=none and the one-more-row test for next */
    call(f, "GET", "/fhir/Observation?_count=2&_total=none", NULL, &a);
    assert_null(json_object_get(a.body, "total"));
    assert_int_equal(entries(&a), 2);
    assert_true(has_next(&a));
    done(&a);
    call(f, "GET", "/fhir/Observation?_count=3&_total=none", NULL, &a);
    assert_int_equal(entries(&a), 3);
    assert_false(has_next(&a));
    done(&a);
}

static void test_scope_history(void **state)
{
    fixture_t *f = *state;
    world_t w;
    answer_t a;
    char path[200];
    build_world(f, &w);
    call(f, "GET", "/fhir/Observation/_history", NULL, &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(total(&a), 3); /* p2's 3 versions are not counted */
    done(&a);
    call(f, "GET", "/fhir/Observation/_history?_count=1&_offset=1", NULL, &a);
    assert_int_equal(entries(&a), 1);
    assert_true(has_next(&a));
    done(&a);
    snprintf(path, sizeof path, "/fhir/Observation/%s/_history", w.obs2[0]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 404);
    done(&a);
    snprintf(path, sizeof path, "/fhir/Observation/%s/_history", w.obs1[2]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(total(&a), 1);
    done(&a);
}

static void test_scope_ledger(void **state)
{
    fixture_t *f = *state;
    world_t w;
    answer_t a;
    char path[200];
    build_world(f, &w);
    snprintf(path, sizeof path, "/fhir/Observation/%s/_history/1/$ledger", w.obs2[1]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 404);
    done(&a);
    /* the record's own patient may see the bytes, but the scope here has no
     * ledger flag: the proof needs the ledger */
    snprintf(path, sizeof path, "/fhir/Observation/%s/_history/1/$ledger", w.obs1[1]);
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 403);
    done(&a);
    call(f, "GET", "/ledger/export", NULL, &a);
    assert_int_equal(a.status, 403);
    done(&a);
    call(f, "GET", "/ledger/checkpoint", NULL, &a);
    assert_int_equal(a.status, 403);
    done(&a);
    call(f, "GET", "/ledger/keys", NULL, &a);
    assert_int_equal(a.status, 403);
    done(&a);
    /* with the whole store: a Parameters resource */
    f->pctx.mode = P_ALL;
    call(f, "GET", path, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(json_string_value(json_object_get(a.body, "resourceType")), "Parameters");
    done(&a);
}

static void test_scope_transaction_reads(void **state)
{
    fixture_t *f = *state;
    world_t w;
    answer_t a;
    build_world(f, &w);
    /* GET entries of a transaction read inside the unit, with the scope */
    call(f, "POST", "/fhir",
         "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
         "{\"request\":{\"method\":\"GET\",\"url\":\"Observation?_count=10\"}}]}",
         &a);
    assert_int_equal(a.status, 200);
    {
        json_t *inner =
            json_object_get(json_array_get(json_object_get(a.body, "entry"), 0), "resource");
        assert_int_equal(json_integer_value(json_object_get(inner, "total")), 3);
    }
    done(&a);
}

/* ------------------------------------------------------------------------
 * The accounting of disclosures: no record leaves unaccounted for
 * ---------------------------------------------------------------------- */

static int count_type(fixture_t *f, const char *type)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM resource WHERE type = '%s'", type);
    return (int)tstore_sql_int(f->dir, sql);
}

static void test_disclosures_are_recorded_first(void **state)
{
    fixture_t *f = *state;
    vl_store_err_t err = VL_STORE_ERR_INIT;
    vl_store_options_t keyless;
    vl_fhir_options_t o;
    answer_t a;
    char *text;
    f->pctx.mode = P_ALL;
    put(f, "Patient", "p1",
        "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{\"family\":\"Secretname\"}]}");
    /* an admin's read is a disclosure: one AuditEvent, then the answer */
    call(f, "GET", "/fhir/Patient/p1", NULL, &a);
    assert_int_equal(a.status, 200);
    done(&a);
    assert_int_equal(count_type(f, "AuditEvent"), 1);
    assert_int_equal(tstore_sql_int(f->dir, "SELECT count(*) FROM ledger_entry WHERE line LIKE "
                                            "'%\"kind\":\"access.disclose\"%'"),
                     1);
    /* the patient's own read is none */
    f->pctx.role = VL_ROLE_PATIENT;
    snprintf(f->pctx.patient, sizeof f->pctx.patient, "p1");
    call(f, "GET", "/fhir/Patient/p1", NULL, &a);
    assert_int_equal(a.status, 200);
    done(&a);
    assert_int_equal(count_type(f, "AuditEvent"), 1);
    f->pctx.role = 0;
    /* reopened without its ledger key, the store refuses every write: an
     * admin's read and search then answer 503 and disclose nothing */
    vl_fhir_free(f->fhir);
    vl_store_close(f->store);
    memset(&keyless, 0, sizeof keyless);
    assert_int_equal(vl_store_open(f->dir, &keyless, &f->store, &err), 0);
    memset(&o, 0, sizeof o);
    o.store = f->store;
    o.policy = &f->policy;
    o.max_page_bytes = 1 << 20;
    f->fhir = vl_fhir_new(&o);
    assert_non_null(f->fhir);
    const char *targets[] = {"/fhir/Patient/p1",       "/fhir/Patient/p1/_history/1",
                             "/fhir/Patient",          "/fhir/Patient/p1/_history",
                             "/fhir/Patient/_history", "/fhir/Patient/p1/_history/1/$ledger"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        call(f, "GET", targets[i], NULL, &a);
        if (a.status != 503)
            fail_msg("GET %s answered %d", targets[i], a.status);
        text = a.body ? json_dumps(a.body, 0) : NULL;
        assert_null(text ? strstr(text, "Secretname") : NULL);
        free(text);
        done(&a);
    }
    /* a patient's own read needs no accounting, so it still works */
    f->pctx.role = VL_ROLE_PATIENT;
    call(f, "GET", "/fhir/Patient/p1", NULL, &a);
    assert_int_equal(a.status, 200);
    done(&a);
}

/* The consent rules of an actor are built once and kept until a Consent
 * commits or a provision's period starts or ends: `now` is a parameter,
 * so the boundaries are checked without waiting. */
static void test_consent_rules_follow_periods_and_writes(void **state)
{
    fixture_t *f = *state;
    const char *actors[] = {"Organization/o1"};
    vl_consent_t *c;
    vl_error_t err = VL_ERROR_INIT;
    const int64_t y2029 = INT64_C(1861920000) * 1000000, y2031 = INT64_C(1924992000) * 1000000,
                  y2033 = INT64_C(1988150400) * 1000000;
    f->pctx.mode = P_ALL;
    put(f, "Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p1\"}");
#define CONSENT(status)                                                                            \
    "{\"resourceType\":\"Consent\",\"id\":\"c1\",\"status\":\"" status                             \
    "\",\"scope\":{\"coding\":[{"                                                                  \
    "\"system\":\"http://terminology.hl7.org/CodeSystem/consentscope\",\"code\":\"patient-"        \
    "privacy\"}]},\"category\":[{\"text\":\"c\"}],\"patient\":{\"reference\":\"Patient/p1\"},"     \
    "\"policyRule\":{\"text\":\"r\"},\"provision\":{\"period\":{\"start\":\"2030-01-01\","         \
    "\"end\":\"2032-12-31\"},\"actor\":[{\"role\":{\"text\":\"x\"},\"reference\":{"                \
    "\"reference\":\"Organization/o1\"}}]}}"
    put(f, "Consent", "c1", CONSENT("active"));
    c = vl_consent_new(f->store);
    assert_non_null(c);
    for (int round = 0; round < 2; round++) { /* the second round is served from the cache */
        int64_t times[] = {y2029, y2031, y2033, y2031};
        int want[] = {0, 1, 0, 1};
        for (size_t i = 0; i < 4; i++) {
            vl_arena_t *a = vl_arena_new();
            vl_scope_t scope;
            memset(&scope, 0, sizeof scope);
            assert_int_equal(vl_consent_rules(c, actors, 1, VL_CONSENT_ACCESS, times[i], a, &scope,
                                              &scope.basis, &err),
                             want[i]);
            if (want[i])
                assert_string_equal(scope.basis, "p1:c1");
            vl_arena_free(a);
        }
    }
    /* a revoke is seen at once, whatever was cached */
    put(f, "Consent", "c1", CONSENT("inactive"));
    {
        vl_arena_t *a = vl_arena_new();
        vl_scope_t scope;
        memset(&scope, 0, sizeof scope);
        assert_int_equal(
            vl_consent_rules(c, actors, 1, VL_CONSENT_ACCESS, y2031, a, &scope, NULL, &err), 0);
        vl_arena_free(a);
    }
#undef CONSENT
    vl_consent_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disclosures_are_recorded_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consent_rules_follow_periods_and_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_authorized_once_per_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_read_vread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_search_totals_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_transaction_reads, setup, teardown),
    };
    vl_log_set_level(VL_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
