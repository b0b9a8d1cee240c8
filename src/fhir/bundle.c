/*
 * vitalog — fhir/bundle.c: POST /fhir with a batch or transaction Bundle
 * (R4 http.html 3.1.0.11).
 *
 * Every entry is a sub-request: routed by the same table and authorized
 * with its own description (interaction.c, vl_x_subrequest). Entries may
 * read (GET: read, vread, search, history), create (POST, with
 * ifNoneExist), update (PUT Type/id, or PUT Type?search: conditional
 * update) and delete (DELETE Type/id, or DELETE Type?search), with ifMatch.
 *
 * BATCH: entries are independent. Each write is its own store unit, all
 * submitted together so they share group commits, each with its own
 * status; one failing entry never affects another. GET entries run once
 * the writes completed. urn:uuid references are not resolved.
 *
 * TRANSACTION: all or nothing, one store unit. On the caller's thread:
 * every entry is routed, authorized and validated; ids are assigned to
 * creates; conditional references ("reference": "Type?search") are
 * resolved against the committed state (exactly one match, else 412), before
 * validation; the map fullUrl -> "Type/id" is built, and every string of
 * every resource equal to a mapped fullUrl (references, uri, url, uuid
 * elements) is rewritten. Inside the unit, on the writer thread:
 *   1. conditional writes are resolved (their targets enter the map), in
 *      entry order, against the state before the transaction;
 *   2. two writes of one resource fail the transaction (400);
 *   3. entries that refer to a conditional target are rewritten and
 *      prepared now;
 *   4. writes run in the R4 order: DELETE, POST, PUT;
 *   5. GET entries run last and see the transaction's writes.
 * Any failure rolls the unit back: nothing is written, no ledger entry
 * remains, and the answer is one OperationOutcome whose first issue names
 * the failing entry (Bundle.entry[i]) and whose status is that entry's.
 *
 * Limits: at most max_bundle_entries entries (413 past it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

typedef enum { E_FAILED, E_GET, E_WRITE } ekind_t;

typedef struct bundle bundle_t;

typedef struct entry {
    bundle_t *b;
    size_t index;
    ekind_t kind;
    const char *method, *url, *full_url; /* borrowed from the Bundle */
    json_t *resource;                    /* borrowed from the Bundle (rewritten in place) */
    vl_fhir_exchange_t sub;
    int has_sub;
    vl_write_t w;
    int has_write;
    int late; /* transaction: rewritten and prepared inside the unit */
    vl_error_t err;
    vl_fhir_response_t res; /* the answer of a failed entry, or of a GET */
    vl_store_unit_t unit;   /* batch */
} entry_t;

typedef struct target {
    const char *full_url;
    char ref[140]; /* "Type/id", or "" until resolved */
    entry_t *e;
} target_t;

struct bundle {
    vl_fhir_exchange_t *x;
    int transaction;
    size_t n;
    entry_t *e;
    target_t *map;
    size_t nmap;
    atomic_size_t pending; /* batch: units not yet completed, plus one guard */
    long failed;           /* transaction: the failing entry, or -1 */
    vl_error_t err;        /* transaction: its reasons */
};

static void bundle_free(void *p)
{
    bundle_t *b = p;
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        if (e->has_sub)
            vl_x_sub_release(&e->sub);
        if (e->has_write)
            vl_write_release(&e->w);
        vl_error_clear(&e->err);
        vl_fhir_response_free(&e->res);
    }
    free(b->e);
    free(b->map);
    vl_error_clear(&b->err);
    free(b);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 409: return "409 Conflict";
    case 410: return "410 Gone";
    case 412: return "412 Precondition Failed";
    case 413: return "413 Payload Too Large";
    case 415: return "415 Unsupported Media Type";
    case 422: return "422 Unprocessable Entity";
    case 429: return "429 Too Many Requests";
    case 503: return "503 Service Unavailable";
    default: return status >= 500 ? "500 Internal Server Error" : "400 Bad Request";
    }
}

/* An entry that failed before reaching the store: its answer is `err`. */
static void entry_fail(entry_t *e, vl_error_t *err)
{
    e->kind = E_FAILED;
    vl_fhir_response_free(&e->res);
    vl_fhir_response_error(&e->res, err);
    if (!e->err.status) { /* keep the reasons for a transaction's answer */
        e->err = *err;
        memset(err, 0, sizeof *err);
    } else {
        vl_error_clear(err);
    }
}

static void entry_failf(entry_t *e, int status, const char *code, const char *fmt, ...)
    VL_PRINTF(4, 5);
static void entry_failf(entry_t *e, int status, const char *code, const char *fmt, ...)
{
    vl_error_t err = VL_ERROR_INIT;
    va_list ap;
    va_start(ap, fmt);
    vl_error_addv(&err, status, "error", code, NULL, fmt, ap);
    va_end(ap);
    entry_fail(e, &err);
}

/* The reasons of an OperationOutcome answer, back as an error. */
static void error_from_response(const vl_fhir_response_t *res, vl_error_t *err)
{
    json_t *oo = res->body ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    json_t *issues = json_object_get(oo, "issue");
    vl_error_clear(err);
    if (json_is_array(issues) && json_array_size(issues)) {
        err->status = res->status;
        err->issues = json_incref(issues);
    } else {
        vl_error_set(err, res->status ? res->status : 400, "processing", NULL, "refused");
    }
    json_decref(oo);
}

/* ------------------------------------------------------------------------
 * References
 * ---------------------------------------------------------------------- */

static target_t *map_find(bundle_t *b, const char *url)
{
    for (size_t i = 0; i < b->nmap; i++)
        if (!strcmp(b->map[i].full_url, url))
            return &b->map[i];
    return NULL;
}

static void map_resolved(target_t *t)
{
    entry_t *e = t->e;
    if (e->w.id[0]) /* a conditional delete that matched nothing names nothing */
        snprintf(t->ref, sizeof t->ref, "%s/%s", e->w.type->name, e->w.id);
}

/* Rewrites every string equal to a resolved fullUrl, and every conditional
 * reference ("reference": "Type?search", resolved by a search of the
 * committed state; only the first pass, before validation, meets them).
 * Returns 1 if some string names a target not yet resolved (the entry must
 * then be rewritten inside the unit), 0 otherwise, -1 with err set. */
static int rewrite(bundle_t *b, json_t *node, const char *key, vl_scope_t scope, vl_error_t *err);

static int rewrite_string(bundle_t *b, json_t *parent, const char *key, size_t index, const char *s,
                          vl_scope_t scope, vl_error_t *err)
{
    target_t *t = map_find(b, s);
    const char *to = NULL;
    char found[140];
    if (t) {
        if (!t->ref[0])
            return 1;
        to = t->ref;
    } else if (key && !strcmp(key, "reference") && strchr(s, '?')) {
        /* a conditional reference: "Type?search" must match exactly one */
        const char *q = strchr(s, '?');
        char type[65];
        const vl_fhir_type_t *ft;
        vl_write_t probe;
        vl_records_t hits;
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        vl_query_t query;
        if ((size_t)(q - s) >= sizeof type)
            return vl_error_set(err, 400, "invalid", NULL, "'%.80s' is not a reference", s);
        memcpy(type, s, (size_t)(q - s));
        type[q - s] = '\0';
        ft = vl_fhir_type_find(type);
        if (!ft)
            return vl_error_set(err, 400, "invalid", NULL,
                                "the conditional reference '%.80s' names no served type", s);
        vl_write_init(&probe, VL_W_UPDATE, ft, NULL);
        if (vl_write_condition_text(&probe, s, err) < 0) {
            vl_write_release(&probe);
            return -1;
        }
        query = probe.cond.query;
        query.count = 2;
        query.offset = 0;
        if (vl_store_search(b->x->f->opts.store, scope, &query, 0, 0, &hits, &serr) < 0) {
            vl_write_release(&probe);
            return vl_fhir_store_error(&serr, err);
        }
        vl_write_release(&probe);
        if (hits.n != 1) {
            vl_records_free(&hits);
            return vl_error_set(err, 412, hits.n ? "multiple-matches" : "not-found", NULL,
                                "the conditional reference '%.80s' matches %s", s,
                                hits.n ? "more than one resource" : "no resource");
        }
        snprintf(found, sizeof found, "%s/%s", hits.items[0].type, hits.items[0].id);
        vl_records_free(&hits);
        to = found;
    } else {
        return 0;
    }
    {
        json_t *v = json_string(to);
        int rc = !v                      ? -1
                 : json_is_array(parent) ? json_array_set_new(parent, index, v)
                                         : json_object_set_new(parent, key, v);
        if (rc < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
    }
    return 0;
}

static int rewrite(bundle_t *b, json_t *node, const char *key, vl_scope_t scope, vl_error_t *err)
{
    int late = 0, rc;
    (void)key;
    if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach (node, k, v) {
            if (vl_json_is_string(v))
                rc = rewrite_string(b, node, k, 0, json_string_value(v), scope, err);
            else
                rc = rewrite(b, v, k, scope, err);
            if (rc < 0)
                return -1;
            late |= rc;
        }
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            json_t *v = json_array_get(node, i);
            if (vl_json_is_string(v))
                rc = rewrite_string(b, node, key, i, json_string_value(v), scope, err);
            else
                rc = rewrite(b, v, key, scope, err);
            if (rc < 0)
                return -1;
            late |= rc;
        }
    }
    return late;
}

/* ------------------------------------------------------------------------
 * Reading the Bundle
 * ---------------------------------------------------------------------- */

static const char *str_member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

/* Routes, authorizes and plans one entry (caller thread). */
static void plan_entry(bundle_t *b, entry_t *e, const json_t *je)
{
    vl_fhir_exchange_t *x = b->x;
    const json_t *req = json_object_get(je, "request");
    vl_error_t err = VL_ERROR_INIT;
    const char *if_none_exist, *if_match;
    vl_wop_t op;
    vl_fhir_exchange_t *s = &e->sub;

    e->full_url = str_member(je, "fullUrl");
    e->resource = json_object_get(je, "resource");
    if (!json_is_object(req) || !(e->method = str_member(req, "method")) ||
        !(e->url = str_member(req, "url")) || !*e->url)
        return entry_failf(e, 400, "required", "the entry needs request.method and request.url");
    if (!strcmp(e->method, "PATCH"))
        return entry_failf(e, 405, "not-supported", "PATCH is not supported");
    if (strcmp(e->method, "GET") && strcmp(e->method, "HEAD") && strcmp(e->method, "POST") &&
        strcmp(e->method, "PUT") && strcmp(e->method, "DELETE"))
        return entry_failf(e, 400, "invalid", "request.method '%.16s' is not an HTTP method",
                           e->method);
    if (vl_x_subrequest(x, e->method, e->url, e->resource, s, &e->res) < 0) {
        e->kind = E_FAILED;
        e->has_sub = 1;
        error_from_response(&e->res, &e->err);
        return;
    }
    e->has_sub = 1;
    if (s->row->handler == vl_h_read || s->row->handler == vl_h_vread ||
        s->row->handler == vl_h_search || s->row->handler == vl_h_history) {
        e->kind = E_GET;
        return;
    }
    if (s->row->handler == vl_h_create)
        op = VL_W_CREATE;
    else if (s->row->handler == vl_h_update)
        op = VL_W_UPDATE;
    else if (s->row->handler == vl_h_delete)
        op = VL_W_DELETE;
    else
        return entry_failf(e, 400, "not-supported", "%s %s is not allowed in a Bundle", e->method,
                           e->url);

    vl_write_init(&e->w, op, s->type, op == VL_W_DELETE ? NULL : json_incref(s->body));
    e->w.fhir_base = vl_x_fhir_base(x);
    e->has_write = 1;
    e->kind = E_WRITE;
    if (op != VL_W_DELETE) {
        const json_t *rt = json_object_get(s->body, "resourceType");
        if (!vl_json_is_string(rt) || strcmp(json_string_value(rt), s->type->name) != 0)
            return entry_failf(e, 400, "invalid", "the resource of %s %s must be a %s", e->method,
                               e->url, s->type->name);
        /* conditional references ("Type?search", transactions only) resolve
         * against the state before the transaction, before validation */
        if (b->transaction && rewrite(b, s->body, NULL, s->scope, &err) < 0)
            return entry_fail(e, &err);
        if (vl_fhir_validate(s->type, s->body, &err) < 0)
            return entry_fail(e, &err);
    }
    if_none_exist = str_member(req, "ifNoneExist");
    if_match = str_member(req, "ifMatch");
    if (if_match && !(e->w.if_match = vl_fhir_parse_version(if_match)))
        return entry_failf(e, 400, "invalid", "ifMatch must be a version ETag such as W/\"3\"");
    if (op == VL_W_CREATE && if_none_exist &&
        vl_write_condition_text(&e->w, if_none_exist, &err) < 0)
        return entry_fail(e, &err);
    if (op != VL_W_CREATE && s->id) {
        snprintf(e->w.id, sizeof e->w.id, "%s", s->id);
        if (op == VL_W_UPDATE) {
            const char *body_id = str_member(s->body, "id");
            if (!body_id || strcmp(body_id, s->id) != 0)
                return entry_failf(e, 400, "invalid",
                                   "the resource of PUT %s must have the id '%s'", e->url, s->id);
        }
    } else if (op != VL_W_CREATE && vl_write_condition(&e->w, &s->params, &err) < 0) {
        return entry_fail(e, &err);
    }
    if (op == VL_W_CREATE)
        vl_id_new(e->w.id); /* used unless ifNoneExist matches */
}

/* ------------------------------------------------------------------------
 * Transactions
 * ---------------------------------------------------------------------- */

/* Caller thread: the map of fullUrls, rewriting what is known, preparing
 * what can be. 0, or -1 with the failing entry in b->failed. */
static int plan_transaction(bundle_t *b)
{
    b->map = calloc(b->n ? b->n : 1, sizeof *b->map);
    if (!b->map)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        if (e->kind != E_WRITE || !e->full_url)
            continue;
        if (map_find(b, e->full_url)) {
            entry_failf(e, 400, "invalid", "fullUrl '%.100s' occurs twice in the Bundle",
                        e->full_url);
            b->failed = (long)i;
            return -1;
        }
        b->map[b->nmap].full_url = e->full_url;
        b->map[b->nmap].e = e;
        if (!e->w.conditional)
            map_resolved(&b->map[b->nmap]);
        b->nmap++;
    }
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        vl_error_t err = VL_ERROR_INIT;
        int rc;
        if (e->kind != E_WRITE || !e->w.resource)
            continue;
        rc = rewrite(b, e->w.resource, NULL, e->sub.scope, &err);
        if (rc < 0) {
            entry_fail(e, &err);
            b->failed = (long)i;
            return -1;
        }
        e->late = rc;
        if (!e->late && vl_write_prepare(&e->w, &err) < 0) {
            entry_fail(e, &err);
            b->failed = (long)i;
            return -1;
        }
    }
    for (size_t i = 0; i < b->n; i++) /* deletes have nothing to rewrite */
        if (b->e[i].kind == E_WRITE && b->e[i].w.op == VL_W_DELETE)
            b->e[i].w.prepared = 1;
    return 0;
}

static int txn_fail(bundle_t *b, entry_t *e, vl_error_t *err)
{
    b->failed = (long)e->index;
    vl_error_clear(&e->err);
    e->err = *err;
    memset(err, 0, sizeof *err);
    return -1;
}

static int same_target(const entry_t *a, const entry_t *c)
{
    return a->w.type == c->w.type && !strcmp(a->w.id, c->w.id) && !a->w.noop && !c->w.noop;
}

/* The unit of a transaction (writer thread). */
static int apply_transaction(vl_store_txn_t *txn, void *arg)
{
    vl_fhir_exchange_t *x = arg;
    bundle_t *b = x->op;
    vl_error_t err = VL_ERROR_INIT;
    static const vl_wop_t order[] = {VL_W_DELETE, VL_W_CREATE, VL_W_UPDATE};

    /* 1. conditional targets */
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        if (e->kind != E_WRITE || !e->w.conditional)
            continue;
        if (vl_write_resolve(txn, e->sub.scope, &e->w, &err) < 0)
            return txn_fail(b, e, &err);
        if (e->full_url) {
            target_t *t = map_find(b, e->full_url);
            if (t)
                map_resolved(t);
        }
    }
    /* 2. one write per resource */
    for (size_t i = 0; i < b->n; i++)
        for (size_t j = i + 1; j < b->n; j++)
            if (b->e[i].kind == E_WRITE && b->e[j].kind == E_WRITE &&
                same_target(&b->e[i], &b->e[j])) {
                vl_error_set(&err, 400, "invalid", NULL, "entries %zu and %zu both write %s/%s", i,
                             j, b->e[i].w.type->name, b->e[i].w.id);
                return txn_fail(b, &b->e[j], &err);
            }
    /* 3. late references */
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        if (e->kind != E_WRITE || !e->late || e->w.noop)
            continue;
        if (rewrite(b, e->w.resource, NULL, e->sub.scope, &err) != 0) {
            if (!err.status)
                vl_error_set(&err, 400, "invalid", NULL,
                             "a reference of entry %zu names a fullUrl that is not resolved", i);
            return txn_fail(b, e, &err);
        }
        if (vl_write_prepare(&e->w, &err) < 0)
            return txn_fail(b, e, &err);
    }
    /* 4. writes in the R4 order */
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        for (size_t i = 0; i < b->n; i++) {
            entry_t *e = &b->e[i];
            if (e->kind == E_WRITE && e->w.op == order[k] &&
                vl_write_execute(txn, e->sub.scope, &e->w, &err) < 0)
                return txn_fail(b, e, &err);
        }
    /* 5. reads see the writes, and may name the transaction's fullUrls */
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        if (e->kind != E_GET)
            continue;
        for (size_t k = 0; k < e->sub.params.n; k++) {
            target_t *t = map_find(b, e->sub.params.items[k].value);
            char *v = t && t->ref[0] ? strdup(t->ref) : NULL;
            if (v) {
                free(e->sub.params.items[k].value);
                e->sub.params.items[k].value = v;
            }
        }
        vl_fhir_response_free(&e->res);
        vl_rest_get(&e->sub, txn, &e->sub.params, &e->res);
        if (e->res.status >= 400) {
            vl_error_set(&err, e->res.status, e->res.status == 404 ? "not-found" : "processing",
                         NULL, "%s %s answered %s", e->method, e->url, status_text(e->res.status));
            return txn_fail(b, e, &err);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The answer
 * ---------------------------------------------------------------------- */

static void answer_entry(bundle_t *b, entry_t *e, vl_buf_t *out)
{
    vl_fhir_exchange_t *x = b->x;
    vl_fhir_response_t r, *res = &e->res;
    int outcome;
    memset(&r, 0, sizeof r);
    if (e->kind == E_WRITE) {
        vl_write_answer(&e->sub, &e->w, &r);
        res = &r;
    }
    vl_buf_puts(out, e->index ? ",{" : "{");
    if (e->kind == E_WRITE && e->w.op != VL_W_DELETE && e->w.id[0]) {
        vl_buf_puts(out, "\"fullUrl\":\"");
        vl_full_url(out, vl_x_fhir_base(x), e->w.type->name, e->w.id);
        vl_buf_puts(out, "\",");
    }
    /* a write's body is its representation, or its OperationOutcome when
     * the client asked for one (Prefer: return=OperationOutcome) */
    outcome = res->status >= 400 || (e->kind == E_WRITE && x->prefer == VL_PREFER_OUTCOME);
    if (!outcome && res->body && res->body_len) {
        vl_buf_puts(out, "\"resource\":");
        vl_buf_append(out, res->body, res->body_len);
        vl_buf_puts(out, ",");
    }
    vl_buf_printf(out, "\"response\":{\"status\":\"%s\"", status_text(res->status));
    if (res->location[0]) {
        vl_buf_puts(out, ",\"location\":");
        vl_buf_json_string(out, res->location);
    }
    if (res->etag[0]) {
        vl_buf_puts(out, ",\"etag\":");
        vl_buf_json_string(out, res->etag);
    }
    if (res->last_modified[0] && e->kind == E_WRITE && e->w.time_us) {
        char ts[32];
        vl_time_format(e->w.time_us, ts);
        vl_buf_printf(out, ",\"lastModified\":\"%s\"", ts);
    }
    if (outcome && res->body) {
        vl_buf_puts(out, ",\"outcome\":");
        vl_buf_append(out, res->body, res->body_len);
    }
    vl_buf_puts(out, "}}");
    vl_fhir_response_free(&r);
}

static void answer(bundle_t *b, vl_fhir_response_t *res)
{
    vl_buf_t out = VL_BUF_INIT(0);
    char *text;
    size_t len;
    vl_bundle_open(&out, b->transaction ? "transaction-response" : "batch-response", -1);
    vl_buf_puts(&out, b->n ? ",\"entry\":[" : "");
    for (size_t i = 0; i < b->n; i++)
        answer_entry(b, &b->e[i], &out);
    vl_buf_puts(&out, b->n ? "]}" : "}");
    text = vl_buf_take(&out, &len);
    if (!text) {
        vl_x_fail(res, 500, "exception", "out of memory building the response");
        return;
    }
    vl_x_text(res, 200, NULL, text, len);
}

/* One OperationOutcome for a failed transaction: the first issue names the
 * entry, the entry's own issues follow. */
static void answer_failed(bundle_t *b, vl_fhir_response_t *res)
{
    entry_t *e = &b->e[b->failed];
    vl_error_t out = VL_ERROR_INIT;
    char where[32];
    int status = e->err.status ? e->err.status : e->res.status ? e->res.status : 400;
    snprintf(where, sizeof where, "Bundle.entry[%zu]", e->index);
    vl_error_set(&out, status, status == 412 ? "conflict" : "processing", where,
                 "the transaction failed at entry %zu (%s %.200s): %s; nothing was written",
                 e->index, e->method ? e->method : "?", e->url ? e->url : "?",
                 e->err.status ? vl_error_message(&e->err) : "refused");
    for (size_t i = 0; e->err.issues && i < json_array_size(e->err.issues); i++)
        json_array_append(out.issues, json_array_get(e->err.issues, i));
    vl_x_error(res, &out);
}

static void finish_transaction(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    bundle_t *b = x->op;
    if (x->unit.result < 0) {
        if (x->unit.err.kind == VL_STORE_ABORTED && b->failed >= 0)
            answer_failed(b, res);
        else
            vl_x_store_error(res, &x->unit.err);
        return;
    }
    answer(b, res);
}

/* ------------------------------------------------------------------------
 * Batches
 * ---------------------------------------------------------------------- */

static int apply_batch_entry(vl_store_txn_t *txn, void *arg)
{
    entry_t *e = arg;
    if (vl_write_resolve(txn, e->sub.scope, &e->w, &e->err) < 0 ||
        vl_write_execute(txn, e->sub.scope, &e->w, &e->err) < 0)
        return -1;
    return 0;
}

static void batch_unit_done(vl_store_unit_t *u, void *arg)
{
    entry_t *e = arg;
    bundle_t *b = e->b;
    (void)u;
    if (atomic_fetch_sub(&b->pending, 1) == 1)
        b->x->notify(b->x->notify_arg); /* last: the transport may resume at once */
}

static void finish_batch(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    bundle_t *b = x->op;
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        if (e->kind == E_WRITE && e->unit.result < 0) {
            vl_error_t err = VL_ERROR_INIT;
            if (e->unit.err.kind == VL_STORE_ABORTED && e->err.status) {
                err = e->err;
                memset(&e->err, 0, sizeof e->err);
            } else {
                vl_fhir_store_error(&e->unit.err, &err);
            }
            entry_fail(e, &err);
        } else if (e->kind == E_GET) {
            vl_fhir_response_free(&e->res);
            vl_rest_get(&e->sub, NULL, &e->sub.params, &e->res);
        }
    }
    answer(b, res);
}

static int run_batch(vl_fhir_exchange_t *x, bundle_t *b, vl_fhir_response_t *res)
{
    atomic_store(&b->pending, 1); /* a guard until every unit is submitted */
    x->finish = finish_batch;
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->e[i];
        vl_error_t err = VL_ERROR_INIT;
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        if (e->kind != E_WRITE)
            continue;
        if (vl_write_prepare(&e->w, &err) < 0) {
            entry_fail(e, &err);
            continue;
        }
        e->unit.apply = apply_batch_entry;
        e->unit.arg = e;
        e->unit.done = batch_unit_done;
        e->unit.done_arg = e;
        atomic_fetch_add(&b->pending, 1);
        if (vl_store_submit(x->f->opts.store, &e->unit, &serr) < 0) {
            atomic_fetch_sub(&b->pending, 1);
            vl_fhir_store_error(&serr, &err);
            entry_fail(e, &err);
        }
    }
    if (atomic_fetch_sub(&b->pending, 1) == 1) { /* every unit done already (or none) */
        finish_batch(x, res);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * The handler
 * ---------------------------------------------------------------------- */

int vl_h_bundle(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const char *rt = str_member(x->body, "resourceType");
    const char *type = str_member(x->body, "type");
    const json_t *entries = json_object_get(x->body, "entry");
    size_t n = json_array_size(entries);
    bundle_t *b;

    if (!rt || strcmp(rt, "Bundle") != 0)
        return vl_x_fail(res, 400, "invalid", "POST to the base takes a Bundle, not %.64s",
                         rt ? rt : "a resource without resourceType");
    if (!type || (strcmp(type, "batch") != 0 && strcmp(type, "transaction") != 0))
        return vl_x_fail(res, 400, "invalid",
                         "Bundle.type must be batch or transaction (not %.32s)",
                         type ? type : "missing");
    if (entries && !json_is_array(entries))
        return vl_x_fail(res, 400, "structure", "Bundle.entry must be an array");
    if (n > x->f->opts.max_bundle_entries)
        return vl_x_fail(res, 413, "too-costly",
                         "the Bundle has %zu entries; this server takes at most %zu", n,
                         x->f->opts.max_bundle_entries);
    b = calloc(1, sizeof *b);
    if (!b || (n && !(b->e = calloc(n, sizeof *b->e)))) {
        free(b);
        return vl_x_fail(res, 500, "exception", "out of memory");
    }
    b->x = x;
    b->n = n;
    b->failed = -1;
    b->transaction = !strcmp(type, "transaction");
    x->op = b;
    x->op_free = bundle_free;
    for (size_t i = 0; i < n; i++) {
        entry_t *e = &b->e[i];
        const json_t *je = json_array_get(entries, i);
        e->b = b;
        e->index = i;
        if (!json_is_object(je)) {
            entry_failf(e, 400, "structure", "Bundle.entry[%zu] is not an object", i);
        } else {
            plan_entry(b, e, je);
            if (e->kind == E_WRITE && e->w.resource == NULL && e->w.op != VL_W_DELETE)
                entry_failf(e, 400, "required", "the entry needs a resource");
        }
        if (b->transaction && e->kind == E_FAILED) {
            b->failed = (long)i;
            answer_failed(b, res);
            return 0;
        }
    }
    if (!b->transaction)
        return run_batch(x, b, res);
    if (plan_transaction(b) < 0) {
        if (b->failed < 0)
            return vl_x_fail(res, 500, "exception", "out of memory");
        answer_failed(b, res);
        return 0;
    }
    x->unit.apply = apply_transaction;
    x->unit.arg = x;
    return vl_x_submit(x, res, finish_transaction);
}
