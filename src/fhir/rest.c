/*
 * vitalog — fhir/rest.c: the instance and type interactions of FHIR REST
 * (R4 http.html): read, vread, history, search, create, update (also
 * conditional), delete (also conditional).
 *
 * Reads run on the calling thread with the exchange's scope, or inside a
 * transaction's unit (vl_rest_get, for Bundle GET entries) where they see
 * the transaction's own writes. Stored bodies are served as they are,
 * unless _summary or _elements ask for a subset (fhir/subset.c): then the
 * served copy is trimmed and tagged SUBSETTED, while the ETag, Last-Modified
 * and meta.versionId stay those of the stored version.
 * Writes are vl_write_t (write.c) run in a store unit; the answer is built
 * when the unit completed (finish_write).
 *
 * Pages (search, history) hold at most `_count` entries and at most
 * max_page_bytes of resources (at least one): a page cut short by bytes
 * has a `next` link that continues right after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

/* ------------------------------------------------------------------------
 * Reads
 * ---------------------------------------------------------------------- */

static int read_record(vl_fhir_exchange_t *x, vl_store_txn_t *txn, const char *id, int64_t vid,
                       const vl_params_t *params, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_subset_t subset;
    vl_record_t rec;
    const char *type = x->type->name;
    char *trimmed;
    size_t trimmed_len;
    int rc;
    if (vl_fhir_subset_params(params, 0, &subset, &err) < 0)
        return vl_x_error(res, &err);
    rc = txn ? vl_store_txn_read(txn, x->scope, type, id, vid, &rec, &serr)
             : vl_store_read(x->f->opts.store, x->scope, type, id, vid, &rec, &serr);
    if (rc < 0)
        return vl_x_store_error(res, &serr);
    if (rec.deleted) {
        vl_x_fail(res, 410, "deleted", "%s/%s was deleted (version %lld)", rec.type, rec.id,
                  (long long)rec.version);
    } else if (vl_fhir_subset(type, &subset, rec.body, rec.body_len, &trimmed, &trimmed_len) < 0) {
        vl_x_fail(res, 500, "exception", "the subset of %s/%s could not be built", rec.type,
                  rec.id);
        vl_record_free(&rec);
        return 0;
    } else {
        vl_x_disclose(x, &rec);
        res->status = 200;
        if (trimmed) { /* the served copy; the stored bytes stay as they are */
            res->body = trimmed;
            res->body_len = trimmed_len;
        } else {
            res->body = rec.body;
            res->body_len = rec.body_len;
            rec.body = NULL;
        }
    }
    vl_record_headers(res, vl_x_fhir_base(x), rec.type, rec.id, rec.version, rec.last_updated_us,
                      0);
    vl_record_free(&rec);
    return 0;
}

int vl_h_read(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return read_record(x, NULL, x->id, 0, &x->params, res);
}

int vl_h_vread(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return read_record(x, NULL, x->id, x->vid, &x->params, res);
}

/* ------------------------------------------------------------------------
 * Pages
 * ---------------------------------------------------------------------- */

typedef struct page {
    const char *bundle_type; /* searchset, history */
    const char *path;        /* "Observation", "Observation/1/_history" */
    const char *query;       /* the canonical query (already encoded), or "" */
    int count, offset;
    int64_t total; /* -1: not counted */
    int has_next;
    vl_subset_t subset; /* searchset: what of each resource is served */
} page_t;

static void page_url(vl_buf_t *b, const char *base, const page_t *p, int offset)
{
    vl_buf_printf(b, "%s/%s?%s%s_count=%d&_offset=%d", base, p->path, p->query,
                  *p->query ? "&" : "", p->count, offset);
}

static void page_links(vl_fhir_exchange_t *x, vl_buf_t *b, const page_t *p, size_t n)
{
    const char *base = vl_x_fhir_base(x);
    vl_buf_t url = VL_BUF_INIT(0);
    int first = 1;
    page_url(&url, base, p, p->offset);
    vl_bundle_link(b, &first, "self", url.data ? url.data : "");
    if (p->has_next) {
        vl_buf_reset(&url);
        page_url(&url, base, p, p->offset + (int)n);
        vl_bundle_link(b, &first, "next", url.data ? url.data : "");
    }
    if (p->offset > 0) {
        vl_buf_reset(&url);
        page_url(&url, base, p, p->offset > p->count ? p->offset - p->count : 0);
        vl_bundle_link(b, &first, "previous", url.data ? url.data : "");
    }
    vl_buf_free(&url);
    vl_bundle_links_close(b, first);
}

static void history_entry(vl_buf_t *b, const vl_record_t *r)
{
    char ts[32];
    vl_time_format(r->last_updated_us, ts);
    if (r->body) {
        vl_buf_puts(b, ",\"resource\":");
        vl_buf_append(b, r->body, r->body_len);
    }
    if (r->method == VL_METHOD_POST)
        vl_buf_printf(b, ",\"request\":{\"method\":\"POST\",\"url\":\"%s\"}", r->type);
    else
        vl_buf_printf(b, ",\"request\":{\"method\":\"%s\",\"url\":\"%s/%s\"}",
                      r->method == VL_METHOD_PUT ? "PUT" : "DELETE", r->type, r->id);
    vl_buf_printf(b,
                  ",\"response\":{\"status\":\"%s\",\"etag\":\"W/\\\"%lld\\\"\","
                  "\"lastModified\":\"%s\"}",
                  r->deleted        ? "204 No Content"
                  : r->version == 1 ? "201 Created"
                                    : "200 OK",
                  (long long)r->version, ts);
}

/* The page as a Bundle; takes `list`. */
static int send_page(vl_fhir_exchange_t *x, const page_t *p, vl_records_t *list,
                     vl_fhir_response_t *res)
{
    vl_buf_t b = VL_BUF_INIT(0);
    const char *base = vl_x_fhir_base(x);
    int history = !strcmp(p->bundle_type, "history");
    char *text;
    size_t len;
    vl_bundle_open(&b, p->bundle_type, p->total);
    page_links(x, &b, p, list->n);
    for (size_t i = 0; i < list->n; i++) {
        vl_record_t *r = &list->items[i];
        vl_x_disclose(x, r);
        vl_buf_puts(&b, i ? ",{\"fullUrl\":\"" : ",\"entry\":[{\"fullUrl\":\"");
        vl_full_url(&b, base, r->type, r->id);
        vl_buf_puts(&b, "\"");
        if (history) {
            history_entry(&b, r);
        } else {
            char *trimmed;
            size_t trimmed_len;
            if (vl_fhir_subset(r->type, &p->subset, r->body, r->body_len, &trimmed, &trimmed_len) <
                0) {
                vl_x_fail(res, 500, "exception", "the subset of %s/%s could not be built", r->type,
                          r->id);
                vl_buf_free(&b);
                vl_records_free(list);
                return 0;
            }
            vl_buf_puts(&b, ",\"resource\":");
            if (trimmed)
                vl_buf_append(&b, trimmed, trimmed_len);
            else
                vl_buf_append(&b, r->body, r->body_len);
            free(trimmed);
            vl_buf_puts(&b, ",\"search\":{\"mode\":\"match\"}");
        }
        vl_buf_puts(&b, "}");
        vl_record_free(r); /* the page holds each body once at most */
    }
    vl_buf_puts(&b, list->n ? "]}" : "}");
    vl_records_free(list);
    text = vl_buf_take(&b, &len);
    if (!text)
        return vl_x_fail(res, 500, "too-costly", "the page could not be built (out of memory)");
    return vl_x_text(res, 200, NULL, text, len);
}

/* Whether a page read `want` records but holds fewer because of its bytes. */
static int cut_by_bytes(const vl_records_t *list, size_t max_bytes)
{
    size_t bytes = 0;
    if (!max_bytes)
        return 0; /* no limit: nothing was cut */
    for (size_t i = 0; i < list->n; i++)
        bytes += list->items[i].body_len;
    return bytes >= max_bytes;
}

/* ------------------------------------------------------------------------
 * History
 * ---------------------------------------------------------------------- */

static int history_params(const vl_params_t *params, vl_page_t *pg, vl_error_t *err)
{
    const char *c = vl_params_get(params, "_count");
    const char *o = vl_params_get(params, "_offset");
    const char *s = vl_params_get(params, "_since");
    char *end;
    pg->count = VL_SEARCH_COUNT_DEFAULT;
    pg->offset = 0;
    pg->since_us = 0;
    if (c) {
        long v = strtol(c, &end, 10);
        if (*c == '\0' || *end || v < 0)
            return vl_error_set(err, 400, "invalid", "_count", "_count must be a whole number");
        pg->count = v > VL_SEARCH_COUNT_MAX ? VL_SEARCH_COUNT_MAX : (int)v;
    }
    if (o) {
        long v = strtol(o, &end, 10);
        if (*o == '\0' || *end || v < 0 || v > 100000000)
            return vl_error_set(err, 400, "invalid", "_offset", "_offset must be a whole number");
        pg->offset = (int)v;
    }
    if (s) {
        int64_t hi;
        int prec;
        if (vl_time_parse_range(s, &pg->since_us, &hi, &prec) < 0 || prec < 4)
            return vl_error_set(err, 400, "invalid", "_since", "_since must be a FHIR instant");
    }
    for (size_t i = 0; i < params->n; i++) {
        const char *name = params->items[i].name;
        if (strcmp(name, "_count") && strcmp(name, "_offset") && strcmp(name, "_since") &&
            strcmp(name, "_format"))
            return vl_error_set(err, 400, "not-supported", NULL,
                                "parameter '%s' is not supported on _history", name);
    }
    return 0;
}

static int do_history(vl_fhir_exchange_t *x, vl_store_txn_t *txn, const char *id,
                      const vl_params_t *params, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_records_t list;
    vl_page_t pg;
    page_t p = {"history", NULL, "", 0, 0, -1, 0, VL_SUBSET_INIT};
    vl_buf_t path = VL_BUF_INIT(0), query = VL_BUF_INIT(0);
    int rc;
    if (history_params(params, &pg, &err) < 0)
        return vl_x_error(res, &err);
    pg.max_bytes = x->f->opts.max_page_bytes;
    rc = txn ? vl_store_txn_history(txn, x->scope, x->type->name, id, &pg, &list, &serr)
             : vl_store_history(x->f->opts.store, x->scope, x->type->name, id, &pg, &list, &serr);
    if (rc < 0)
        return vl_x_store_error(res, &serr);
    vl_buf_printf(&path, "%s%s%s/_history", x->type->name, id ? "/" : "", id ? id : "");
    if (pg.since_us) {
        char ts[32];
        vl_time_format(pg.since_us, ts);
        vl_buf_puts(&query, "_since=");
        vl_buf_query_encode(&query, ts);
    }
    p.path = path.data ? path.data : "";
    p.query = query.data ? query.data : "";
    p.count = pg.count;
    p.offset = pg.offset;
    p.total = list.total;
    p.has_next = (int64_t)pg.offset + (int64_t)list.n < list.total && list.n > 0;
    rc = send_page(x, &p, &list, res);
    vl_buf_free(&path);
    vl_buf_free(&query);
    return rc;
}

int vl_h_history(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return do_history(x, NULL, x->id, &x->params, res);
}

/* ------------------------------------------------------------------------
 * Search
 * ---------------------------------------------------------------------- */

static int do_search(vl_fhir_exchange_t *x, vl_store_txn_t *txn, const vl_params_t *params,
                     vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_search_t search;
    vl_records_t list;
    page_t p = {"searchset", x->type->name, "", 0, 0, -1, 0, VL_SUBSET_INIT};
    vl_query_t q;
    size_t max_bytes = x->f->opts.max_page_bytes;
    int rc, with_total;
    memset(&search, 0, sizeof search);
    if (vl_fhir_search_parse_at(x->type, params, x->lenient, vl_x_fhir_base(x), &search, &err) <
            0 ||
        vl_fhir_subset_params(params, 1, &p.subset, &err) < 0) {
        vl_search_free(&search);
        return vl_x_error(res, &err);
    }
    q = search.query;
    with_total = search.total_mode;
    /* one more row tells whether there is a next page */
    if (q.count > 0)
        q.count++;
    rc = txn ? vl_store_txn_search(txn, x->scope, &q, with_total, max_bytes, &list, &serr)
             : vl_store_search(x->f->opts.store, x->scope, &q, with_total, max_bytes, &list, &serr);
    if (rc < 0) {
        vl_search_free(&search);
        return vl_x_store_error(res, &serr);
    }
    p.query = search.self_query ? search.self_query : "";
    p.count = search.query.count;
    p.offset = search.query.offset;
    p.total = list.total; /* -1: not counted, or beyond the bound */
    if (list.n > (size_t)search.query.count) {
        vl_record_free(&list.items[--list.n]);
        p.has_next = 1;
    } else if (p.total >= 0) {
        p.has_next = (int64_t)p.offset + (int64_t)list.n < list.total && list.n > 0;
    } else { /* cut short by bytes, maybe right at _count rows */
        p.has_next =
            list.n > 0 && list.n <= (size_t)search.query.count && cut_by_bytes(&list, max_bytes);
    }
    rc = send_page(x, &p, &list, res);
    vl_search_free(&search);
    return rc;
}

int vl_h_search(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return do_search(x, NULL, &x->params, res);
}

/* ------------------------------------------------------------------------
 * Writes
 * ---------------------------------------------------------------------- */

typedef struct single {
    vl_write_t w;
    vl_error_t err; /* why the unit rolled back */
} single_t;

static void single_free(void *p)
{
    single_t *s = p;
    if (!s)
        return;
    vl_write_release(&s->w);
    vl_error_clear(&s->err);
    free(s);
}

static int apply_single(vl_store_txn_t *txn, void *arg)
{
    vl_fhir_exchange_t *x = arg;
    single_t *s = x->op;
    if (vl_write_resolve(txn, x->scope, &s->w, &s->err) < 0 ||
        vl_write_execute(txn, x->scope, &s->w, &s->err) < 0)
        return -1;
    return 0;
}

void vl_write_answer(vl_fhir_exchange_t *x, vl_write_t *w, vl_fhir_response_t *res)
{
    const char *base = vl_x_fhir_base(x);
    res->status = w->status;
    if (w->anchored) { /* the receipt: this write's ledger entry */
        snprintf(res->ledger_index, sizeof res->ledger_index, "%llu",
                 (unsigned long long)w->receipt.ledger_index);
        for (int i = 0; i < VL_HASH_LEN; i++)
            snprintf(res->ledger_hash + 2 * i, 3, "%02x", w->receipt.ledger_hash[i]);
    }
    if (w->op == VL_W_DELETE) {
        if (w->version)
            vl_record_headers(res, base, w->type->name, w->id, w->version, w->time_us, 0);
        if (x->prefer == VL_PREFER_OUTCOME) {
            char msg[200];
            snprintf(msg, sizeof msg, "%s%s%s %s", w->type->name, w->id[0] ? "/" : "", w->id,
                     w->noop ? "was not deleted: nothing matched or it was deleted already"
                             : "deleted");
            res->status = 200;
            vl_x_json(res, 200, vl_outcome_new("information", "informational", msg));
        }
        return;
    }
    vl_record_headers(res, base, w->type->name, w->id, w->version, w->time_us, 1);
    if (x->prefer == VL_PREFER_REPRESENTATION) {
        res->body = w->body;
        res->body_len = w->body_len;
        w->body = NULL;
    } else if (x->prefer == VL_PREFER_OUTCOME) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s/%s %s (version %lld)", w->type->name, w->id,
                 w->noop      ? "already exists; nothing was written"
                 : w->created ? "created"
                              : "updated",
                 (long long)w->version);
        vl_x_json(res, w->status, vl_outcome_new("information", "informational", msg));
    }
}

static void finish_single(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    single_t *s = x->op;
    if (x->unit.result < 0) {
        if (s->err.status && x->unit.err.kind == VL_STORE_ABORTED)
            vl_x_error(res, &s->err);
        else
            vl_x_store_error(res, &x->unit.err);
        return;
    }
    vl_write_answer(x, &s->w, res);
}

/* Checks that the body is a valid `t` resource. */
static int check_resource(vl_fhir_exchange_t *x, vl_error_t *err)
{
    const json_t *rt = json_object_get(x->body, "resourceType");
    if (!vl_json_is_string(rt))
        return vl_error_set(err, 400, "required", "resourceType", "resourceType is missing");
    if (strcmp(json_string_value(rt), x->type->name) != 0)
        return vl_error_set(err, 400, "invalid", "resourceType",
                            "resourceType '%.64s' does not match the URL's type %s",
                            json_string_value(rt), x->type->name);
    return vl_fhir_validate(x->type, x->body, err);
}

static int if_match(vl_fhir_exchange_t *x, vl_write_t *w, vl_error_t *err)
{
    if (!x->req->if_match)
        return 0;
    w->if_match = vl_fhir_parse_version(x->req->if_match);
    if (!w->if_match)
        return vl_error_set(err, 400, "invalid", NULL,
                            "If-Match must be a version ETag such as W/\"3\"");
    return 0;
}

/* Prepares and submits the single write s (owned by the exchange from here). */
static int submit_single(vl_fhir_exchange_t *x, single_t *s, vl_fhir_response_t *res)
{
    if (vl_write_prepare(&s->w, &s->err) < 0)
        return vl_x_error(res, &s->err);
    x->unit.apply = apply_single;
    x->unit.arg = x;
    return vl_x_submit(x, res, finish_single);
}

static single_t *single_new(vl_fhir_exchange_t *x, vl_wop_t op, vl_fhir_response_t *res)
{
    single_t *s = calloc(1, sizeof *s);
    if (!s) {
        vl_x_fail(res, 500, "exception", "out of memory");
        return NULL;
    }
    vl_write_init(&s->w, op, x->type, op == VL_W_DELETE ? NULL : json_incref(x->body));
    s->w.fhir_base = vl_x_fhir_base(x);
    x->op = s;
    x->op_free = single_free;
    return s;
}

int vl_h_create(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    single_t *s;
    vl_error_t err = VL_ERROR_INIT;
    if (check_resource(x, &err) < 0)
        return vl_x_error(res, &err);
    if (!(s = single_new(x, VL_W_CREATE, res)))
        return 0;
    if (x->req->if_none_exist && vl_write_condition_text(&s->w, x->req->if_none_exist, &err) < 0)
        return vl_x_error(res, &err);
    return submit_single(x, s, res);
}

int vl_h_update(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    const char *body_id;
    single_t *s;
    if (check_resource(x, &err) < 0)
        return vl_x_error(res, &err);
    body_id = json_string_value(json_object_get(x->body, "id"));
    if (!(s = single_new(x, VL_W_UPDATE, res)))
        return 0;
    if (if_match(x, &s->w, &err) < 0)
        return vl_x_error(res, &err);
    if (x->id) {
        if (!body_id)
            return vl_x_fail(res, 400, "required", "an update must carry the resource id");
        if (strcmp(body_id, x->id) != 0)
            return vl_x_fail(res, 400, "invalid",
                             "the body's id '%.64s' differs from the URL's '%s'", body_id, x->id);
        snprintf(s->w.id, sizeof s->w.id, "%s", x->id);
    } else {
        if (vl_write_condition(&s->w, &x->params, &err) < 0)
            return vl_x_error(res, &err);
    }
    return submit_single(x, s, res);
}

int vl_h_delete(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    single_t *s = single_new(x, VL_W_DELETE, res);
    if (!s)
        return 0;
    if (if_match(x, &s->w, &err) < 0)
        return vl_x_error(res, &err);
    if (x->id) {
        snprintf(s->w.id, sizeof s->w.id, "%s", x->id);
    } else {
        if (vl_write_condition(&s->w, &x->params, &err) < 0)
            return vl_x_error(res, &err);
    }
    return submit_single(x, s, res);
}

/* ------------------------------------------------------------------------
 * Reads for Bundle entries
 * ---------------------------------------------------------------------- */

int vl_rest_get(vl_fhir_exchange_t *x, vl_store_txn_t *txn, const vl_params_t *params,
                vl_fhir_response_t *res)
{
    if (x->row->handler == vl_h_read)
        return read_record(x, txn, x->id, 0, params, res);
    if (x->row->handler == vl_h_vread)
        return read_record(x, txn, x->id, x->vid, params, res);
    if (x->row->handler == vl_h_history)
        return do_history(x, txn, x->id, params, res);
    if (x->row->handler == vl_h_search)
        return do_search(x, txn, params, res);
    return vl_x_fail(res, 400, "not-supported",
                     "a Bundle GET entry may read, vread, search or read history");
}
