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
 * DESIGN NOTES
 *
 * 1. Pages (search, history) hold at most `_count` entries and at most
 *    max_page_bytes of resources (at least one): a page cut short by bytes
 *    has a `next` link that continues right after it. A conditional read
 *    (If-None-Match, If-Modified-Since) of the current version is a 304.
 *
 * 2. Search pages are keyset pages over a snapshot. The first page of a
 *    search takes a snapshot (vl_query_t.as_of -1: the store's highest
 *    committed version) and every link of the Bundle reads that same
 *    snapshot: writes made while a client pages neither duplicate nor skip
 *    an entry (a resource updated or deleted since is served as it was at
 *    the first page; one created since is not in this search). `next` and
 *    `previous` carry the keyset position of the page's last or first row
 *    (the values of its order keys and its version, vl_records_t.keys),
 *    so that a deep page costs what the first one does; `first` the
 *    snapshot alone. The cursor (_cursor) is sealed by cursor.c and bound
 *    to the search's canonical query and _count: a changed or transplanted
 *    cursor is a 400. The total is counted on the first page and carried.
 *    _offset is accepted on the first pages only (up to OFFSET_MAX rows);
 *    a row whose order keys do not fit a position (very long sort
 *    strings) continues by offset in the same snapshot. Cursors do not
 *    expire; a snapshot reads versions the store keeps forever.
 *
 * 3. _include and _revinclude run after the page: _include reads the
 *    references the named parameter holds in each match (parsed from the
 *    body, as index.c indexes them) one by one in the request's scope,
 *    exactly like a direct read, so what the caller may not see is absent,
 *    not leaked; _revinclude is a search of the source type for references
 *    to the page's matches, in the same scope; :iterate applies to the
 *    matches and what the first pass included (one level). Each resource
 *    appears once (search.mode match wins over include); at most
 *    INCLUDE_MAX included resources per page, beyond which a warning entry
 *    (search.mode outcome) says some were left out. Included resources
 *    are read current, not from the page's snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

/* ------------------------------------------------------------------------
 * Reads
 * ---------------------------------------------------------------------- */

/* Whether an If-None-Match list ("*", W/"3", "3", comma-separated) names
 * version `v` (RFC 9110 13.1.2: weak comparison). */
static int etag_listed(const char *list, int64_t v)
{
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char one[40];
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 1 && *p == '*')
            return 1;
        if (len < sizeof one) {
            memcpy(one, p, len);
            one[len] = '\0';
            if (vl_fhir_parse_version(one) == v)
                return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* A conditional read (R4 http.html#cread, RFC 9110 13.1.2 and 13.1.3):
 * whether the client's copy of `rec` is current, so that the answer is
 * 304. If-None-Match decides when present (If-Modified-Since is then
 * ignored); otherwise a version last updated no later than the
 * If-Modified-Since date (whole seconds, as Last-Modified says) is not
 * modified. An unparsable date is ignored. A 304 sends no body, so it
 * discloses nothing that the client does not hold already. */
static int not_modified(const vl_fhir_request_t *req, const vl_record_t *rec)
{
    int64_t since;
    if (req->if_none_match)
        return etag_listed(req->if_none_match, rec->version);
    if (req->if_modified_since && vl_time_parse_http(req->if_modified_since, &since) == 0)
        return rec->last_updated_us / 1000000 <= since / 1000000;
    return 0;
}

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
    } else if (!txn && not_modified(x->req, &rec)) {
        res->status = 304;
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
    /* searchset: the links (NULL: none), built by the search */
    const char *self, *first, *previous, *next;
    vl_records_t *included; /* searchset: entries with search.mode include, or NULL */
    const char *outcome;    /* searchset: a warning entry (search.mode outcome), or NULL */
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
    if (p->self) { /* a search: its links are made (cursors) */
        vl_bundle_link(b, &first, "self", p->self);
        if (p->first)
            vl_bundle_link(b, &first, "first", p->first);
        if (p->previous)
            vl_bundle_link(b, &first, "previous", p->previous);
        if (p->next)
            vl_bundle_link(b, &first, "next", p->next);
        vl_bundle_links_close(b, first);
        return;
    }
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
    size_t n_matches = list->n, n_all = list->n + (p->included ? p->included->n : 0);
    vl_bundle_open(&b, p->bundle_type, p->total);
    page_links(x, &b, p, list->n);
    for (size_t i = 0; i < n_all; i++) {
        vl_record_t *r = i < n_matches ? &list->items[i] : &p->included->items[i - n_matches];
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
                if (p->included)
                    vl_records_free(p->included);
                return 0;
            }
            vl_buf_puts(&b, ",\"resource\":");
            if (trimmed)
                vl_buf_append(&b, trimmed, trimmed_len);
            else
                vl_buf_append(&b, r->body, r->body_len);
            free(trimmed);
            vl_buf_puts(&b, i < n_matches ? ",\"search\":{\"mode\":\"match\"}"
                                          : ",\"search\":{\"mode\":\"include\"}");
        }
        vl_buf_puts(&b, "}");
        vl_record_free(r); /* the page holds each body once at most */
    }
    if (p->outcome) {
        json_t *oo =
            json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "resourceType", "OperationOutcome", "issue",
                      "severity", "warning", "code", "too-costly", "diagnostics", p->outcome);
        char *oo_text = oo ? json_dumps(oo, JSON_COMPACT) : NULL;
        if (oo_text) {
            vl_buf_puts(&b, n_all ? ",{\"resource\":" : ",\"entry\":[{\"resource\":");
            vl_buf_puts(&b, oo_text);
            vl_buf_puts(&b, ",\"search\":{\"mode\":\"outcome\"}}");
            n_all++;
        }
        free(oo_text);
        json_decref(oo);
    }
    vl_buf_puts(&b, n_all ? "]}" : "}");
    vl_records_free(list);
    if (p->included)
        vl_records_free(p->included);
    text = vl_buf_take(&b, &len);
    if (!text)
        return vl_x_fail(res, 500, "too-costly", "the page could not be built (out of memory)");
    return vl_x_text(res, 200, NULL, text, len);
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
    page_t p = {.bundle_type = "history", .query = "", .total = -1, .subset = VL_SUBSET_INIT};
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

/* Cursors (note 2 of cursor.c): the state a search's links carry.
 *   version 1, direction (NEXT: after `key`; PREVIOUS: before it; FIRST:
 *   the first page), the snapshot, the total counted on the first page,
 *   the rows before the page (an offset: the position itself when the
 *   order keys of a row did not fit a key, else informational), the key. */
enum { CUR_FIRST = 0, CUR_NEXT = 1, CUR_PREVIOUS = 2 };
#define CURSOR_VERSION 1
#define CURSOR_HEAD 23

typedef struct cursor {
    int dir;
    int64_t as_of, total;
    int32_t offset;
    const unsigned char *key;
    size_t key_len;
} cursor_t;

/* What a cursor is bound to: the search, its page size and the caller
 * with its access (note 1 of cursor.c). */
static char *cursor_bind(const vl_fhir_exchange_t *x, const vl_search_t *s)
{
    vl_buf_t b = VL_BUF_INIT(0);
    vl_buf_printf(&b, "%s?%s&_count=%d", x->type->name, s->self_query ? s->self_query : "",
                  s->query.count);
    vl_cursor_bind_caller(&b, x);
    return vl_buf_take(&b, NULL);
}

/* Appends "<base>/<Type>?<query>&_count=N&_cursor=<sealed state>". */
static int cursor_url(vl_fhir_exchange_t *x, const vl_search_t *s, const char *bind,
                      const cursor_t *c, vl_buf_t *url)
{
    unsigned char st[CURSOR_HEAD + VL_QUERY_KEY_MAX];
    size_t len = CURSOR_HEAD;
    st[0] = CURSOR_VERSION;
    st[1] = (unsigned char)c->dir;
    vl_cursor_put64(st + 2, c->as_of);
    vl_cursor_put64(st + 10, c->total);
    st[18] = (unsigned char)(c->offset & 0xff);
    st[19] = (unsigned char)((c->offset >> 8) & 0xff);
    st[20] = (unsigned char)((c->offset >> 16) & 0xff);
    st[21] = (unsigned char)((c->offset >> 24) & 0xff);
    st[22] = c->key_len ? 1 : 0;
    if (c->key_len) {
        memcpy(st + len, c->key, c->key_len);
        len += c->key_len;
    }
    vl_buf_printf(url, "%s/%s?%s%s_count=%d&_cursor=", vl_x_fhir_base(x), x->type->name,
                  s->self_query ? s->self_query : "", s->self_query && *s->self_query ? "&" : "",
                  s->query.count);
    return vl_cursor_seal(x->f, bind, st, len, url);
}

static int cursor_parse(vl_fhir_exchange_t *x, const char *bind, const char *text,
                        unsigned char *buf, cursor_t *c)
{
    size_t len;
    if (vl_cursor_open(x->f, bind, text, buf, CURSOR_HEAD + VL_QUERY_KEY_MAX, &len) < 0 ||
        len < CURSOR_HEAD || buf[0] != CURSOR_VERSION || buf[1] > CUR_PREVIOUS)
        return -1;
    c->dir = buf[1];
    c->as_of = vl_cursor_get64(buf + 2);
    c->total = vl_cursor_get64(buf + 10);
    c->offset = (int32_t)((uint32_t)buf[18] | (uint32_t)buf[19] << 8 | (uint32_t)buf[20] << 16 |
                          (uint32_t)buf[21] << 24);
    c->key = buf[22] ? buf + CURSOR_HEAD : NULL;
    c->key_len = buf[22] ? len - CURSOR_HEAD : 0;
    if (c->as_of <= 0 || c->offset < 0 || (buf[22] && !c->key_len) ||
        (!buf[22] && len != CURSOR_HEAD) || (c->dir == CUR_PREVIOUS && !c->key))
        return -1;
    return 0;
}

/* Drops item i of a page (its record and key). */
static void drop_item(vl_records_t *list, size_t i)
{
    vl_record_free(&list->items[i]);
    if (list->keys) {
        free(list->keys[i]);
        memmove(list->keys + i, list->keys + i + 1, (list->n - i - 1) * sizeof *list->keys);
        memmove(list->key_lens + i, list->key_lens + i + 1,
                (list->n - i - 1) * sizeof *list->key_lens);
    }
    memmove(list->items + i, list->items + i + 1, (list->n - i - 1) * sizeof *list->items);
    list->n--;
}

/* ------------------------------------------------------------------------
 * _include and _revinclude (note 3)
 * ---------------------------------------------------------------------- */

#define INCLUDE_MAX 1000 /* included resources in one page */

typedef struct seen {
    char **refs; /* "Type/id" of every entry so far (matches and included) */
    size_t n, cap;
} seen_t;

static int seen_has(const seen_t *s, const char *ref)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->refs[i], ref))
            return 1;
    return 0;
}

/* Adds "type/id" (or `type` alone when id is NULL) unless it is there:
 * 1 added, 0 there already, -1 out of memory. */
static int seen_add(seen_t *s, const char *type, const char *id)
{
    char ref[1040];
    snprintf(ref, sizeof ref, id ? "%s/%s" : "%s", type, id ? id : "");
    if (seen_has(s, ref))
        return 0;
    if (vl_grow(&s->refs, &s->cap, s->n + 1, sizeof *s->refs) < 0 || !(s->refs[s->n] = strdup(ref)))
        return -1;
    s->n++;
    return 1;
}

static void seen_free(seen_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->refs[i]);
    free(s->refs);
}

typedef struct includer {
    vl_fhir_exchange_t *x;
    vl_store_txn_t *txn;
    seen_t seen;
    seen_t handled; /* the current _include's references met so far (prescan) */
    vl_records_t *out;
    int truncated;
    vl_store_err_t serr;
} includer_t;

static int include_append(includer_t *in, vl_record_t *rec)
{
    if (in->out->n == INCLUDE_MAX) {
        in->truncated = 1;
        vl_record_free(rec);
        return 0;
    }
    if (vl_grow(&in->out->items, &in->out->cap, in->out->n + 1, sizeof *in->out->items) < 0) {
        vl_record_free(rec);
        return -1;
    }
    in->out->items[in->out->n++] = *rec;
    return 0;
}

/* _include: the resources `spec` names in `rec`, each read in the
 * request's scope like a direct read (outside it: absent). */
/* Whether every "reference" string of a stored body is one the current
 * _include met already (in->handled): then its parameter's references,
 * which are among them, add nothing, and the body need not be parsed. A
 * page of one patient's readings parses its first body only. A string
 * with an escape, or not yet met, needs the parse. */
static int nothing_new(const includer_t *in, const vl_record_t *rec)
{
    static const char key[] = "\"reference\":\"";
    const char *p = rec->body, *end = rec->body + rec->body_len;
    while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1)) != NULL) {
        const char *v = p + sizeof key - 1, *q = memchr(v, '"', (size_t)(end - v));
        char ref[140];
        if (!q || memchr(v, '\\', (size_t)(q - v)) || (size_t)(q - v) >= sizeof ref)
            return 0;
        memcpy(ref, v, (size_t)(q - v));
        ref[q - v] = '\0';
        if (!seen_has(&in->handled, ref))
            return 0;
        p = q;
    }
    return 1;
}

static int include_forward(includer_t *in, const vl_search_include_t *spec, const vl_record_t *rec)
{
    vl_fhir_exchange_t *x = in->x;
    const vl_fhir_type_t *t = vl_fhir_type_find(rec->type);
    vl_error_t err = VL_ERROR_INIT;
    vl_index_t ix;
    json_t *res;
    int rc = 0;
    if (!t || !rec->body || strcmp(rec->type, spec->source) != 0 || nothing_new(in, rec))
        return 0;
    if (!(res = vl_json_parse(rec->body, rec->body_len, NULL, &err))) {
        vl_error_clear(&err);
        return 0;
    }
    vl_index_init(&ix);
    if (vl_fhir_param_references(t, spec->param, res, vl_x_fhir_base(x), &ix) < 0)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < ix.n && !in->truncated; i++) {
        const char *ref = ix.rows[i].text, *slash = ref ? strchr(ref, '/') : NULL;
        char type[64];
        vl_record_t got;
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        const vl_fhir_type_t *tt;
        int r;
        if (ref && !seen_has(&in->handled, ref) && seen_add(&in->handled, ref, NULL) < 0) {
            rc = -1;
            break;
        }
        if (!slash || strchr(slash + 1, '/') || (size_t)(slash - ref) >= sizeof type ||
            strstr(ref, "://"))
            continue; /* another server's resource, or not "Type/id" */
        memcpy(type, ref, (size_t)(slash - ref));
        type[slash - ref] = '\0';
        if ((spec->target && strcmp(type, spec->target) != 0) || !(tt = vl_fhir_type_find(type)))
            continue;
        if ((r = seen_add(&in->seen, type, slash + 1)) <= 0) {
            rc = r;
            continue;
        }
        r = in->txn
                ? vl_store_txn_read(in->txn, x->scope, tt->name, slash + 1, 0, &got, &serr)
                : vl_store_read(x->f->opts.store, x->scope, tt->name, slash + 1, 0, &got, &serr);
        if (r < 0) {
            if (serr.kind != VL_STORE_NOT_FOUND) {
                in->serr = serr;
                rc = -1;
            }
            continue; /* not there, or not visible: absent, not leaked */
        }
        if (got.deleted) {
            vl_record_free(&got);
            continue;
        }
        rc = include_append(in, &got);
    }
    vl_index_free(&ix);
    json_decref(res);
    return rc;
}

/* _revinclude: the resources of spec->source that refer to any of `from`
 * (of type `type`) by spec's parameter, searched in the request's scope. */
static int include_reverse(includer_t *in, const vl_search_include_t *spec, const char *type,
                           const vl_record_t *const *from, size_t n)
{
    vl_fhir_exchange_t *x = in->x;
    vl_query_cond_t cond;
    vl_query_value_t *values;
    vl_query_t q;
    vl_records_t got;
    char **refs;
    size_t nv = 0;
    int rc = 0;
    if ((spec->target && strcmp(spec->target, type) != 0) || !n)
        return 0;
    values = calloc(n, sizeof *values);
    refs = calloc(n, sizeof *refs);
    if (!values || !refs) {
        free(values);
        free(refs);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(type) + strlen(from[i]->id) + 2;
        if (!(refs[i] = malloc(len))) {
            rc = -1;
            break;
        }
        snprintf(refs[i], len, "%s/%s", type, from[i]->id);
        values[nv].cmp = VL_CMP_EQ;
        values[nv++].text = refs[i];
    }
    if (rc == 0) {
        memset(&cond, 0, sizeof cond);
        cond.param = spec->rows;
        cond.kind = VL_INDEX_REFERENCE;
        cond.missing = -1;
        cond.n = nv;
        cond.values = values;
        memset(&q, 0, sizeof q);
        q.type = spec->source;
        q.n = 1;
        q.conds = &cond;
        q.count = INCLUDE_MAX - (int)in->out->n + 1;
        rc = in->txn ? vl_store_txn_search(in->txn, x->scope, &q, VL_TOTAL_NONE, 0, &got, &in->serr)
                     : vl_store_search(x->f->opts.store, x->scope, &q, VL_TOTAL_NONE, 0, &got,
                                       &in->serr);
        for (size_t i = 0; rc == 0 && i < got.n; i++) {
            int r = seen_add(&in->seen, got.items[i].type, got.items[i].id);
            if (r < 0)
                rc = -1;
            else if (r > 0) {
                rc = include_append(in, &got.items[i]);
                memset(&got.items[i], 0, sizeof got.items[i]);
            }
        }
        if (rc == 0 || got.items)
            vl_records_free(&got);
    }
    for (size_t i = 0; i < n; i++)
        free(refs[i]);
    free(refs);
    free(values);
    return rc;
}

/* Item i of what an :iterate pass applies to: the matches, then what the
 * first pass included (out->items moves as includes are appended: items
 * are taken by index, afresh for every use). */
static const vl_record_t *item_at(const vl_records_t *list, const vl_records_t *out, size_t i)
{
    return i < list->n ? &list->items[i] : &out->items[i - list->n];
}

/* Applies the includes of `s` to the page `list` into `out`: first the
 * plain ones to the matches, then each :iterate one to the matches and to
 * what the first pass included (one level: not to what an :iterate
 * include adds). */
static int add_includes(vl_fhir_exchange_t *x, vl_store_txn_t *txn, const vl_search_t *s,
                        const vl_records_t *list, vl_records_t *out, int *truncated,
                        vl_store_err_t *serr)
{
    includer_t in = {x, txn, {NULL, 0, 0}, {NULL, 0, 0}, out, 0, VL_STORE_ERR_INIT};
    const vl_record_t **of = NULL;
    size_t first_level = 0;
    int rc = 0;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < list->n && rc == 0; i++)
        rc = seen_add(&in.seen, list->items[i].type, list->items[i].id) < 0 ? -1 : 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        if (pass == 1)
            first_level = out->n; /* fixed: what pass 0 included */
        for (size_t j = 0; j < s->n_includes && rc == 0 && !in.truncated; j++) {
            const vl_search_include_t *spec = &s->includes[j];
            size_t n_from = list->n + (pass ? first_level : 0);
            if (spec->iterate != pass)
                continue;
            seen_free(&in.handled); /* met references are per _include */
            memset(&in.handled, 0, sizeof in.handled);
            if (!spec->rev) {
                for (size_t i = 0; i < n_from && rc == 0 && !in.truncated; i++) {
                    /* a copy: appending may move out->items under it */
                    vl_record_t rec = *item_at(list, out, i);
                    rc = include_forward(&in, spec, &rec);
                }
                continue;
            }
            /* grouped by type: a reverse include reads each type once; the
             * pointers are taken after the previous type's appends */
            for (const vl_fhir_type_t *t = vl_fhir_types; t->name && rc == 0; t++) {
                size_t m = 0;
                free(of);
                if (!(of = calloc(n_from ? n_from : 1, sizeof *of))) {
                    rc = -1;
                    break;
                }
                for (size_t i = 0; i < n_from; i++) {
                    const vl_record_t *r = item_at(list, out, i);
                    if (!strcmp(r->type, t->name) && r->body)
                        of[m++] = r;
                }
                rc = include_reverse(&in, spec, t->name, of, m);
            }
        }
    }
    free(of);
    seen_free(&in.seen);
    seen_free(&in.handled);
    *truncated = in.truncated;
    *serr = in.serr;
    if (rc < 0) {
        vl_records_free(out);
        if (!serr->kind)
            vl_store_fail(serr, VL_STORE_FAILED, "out of memory");
    }
    return rc;
}

/* ------------------------------------------------------------------------
 * Search (note 2: cursors over snapshots)
 * ---------------------------------------------------------------------- */

#define OFFSET_MAX 10000 /* _offset: the first pages only; then the links */

static int do_search(vl_fhir_exchange_t *x, vl_store_txn_t *txn, const vl_params_t *params,
                     vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_search_t search;
    vl_records_t list, included;
    page_t p = {.bundle_type = "searchset",
                .path = x->type->name,
                .query = "",
                .total = -1,
                .subset = VL_SUBSET_INIT};
    vl_query_t q;
    size_t max_bytes = x->f->opts.max_page_bytes;
    unsigned char cbuf[CURSOR_HEAD + VL_QUERY_KEY_MAX];
    cursor_t cur = {CUR_FIRST, -1, -1, 0, NULL, 0};
    vl_buf_t self = VL_BUF_INIT(0), first = VL_BUF_INIT(0), prev = VL_BUF_INIT(0),
             next = VL_BUF_INIT(0);
    char *bind = NULL;
    int rc, with_total, has_more = 0, has_prev = 0, has_next = 0, truncated = 0, start;
    memset(&search, 0, sizeof search);
    memset(&included, 0, sizeof included);
    if (vl_fhir_search_parse_at(x->type, params, x->lenient, vl_x_fhir_base(x), &search, &err) <
            0 ||
        vl_fhir_subset_params(params, 1, &p.subset, &err) < 0) {
        vl_search_free(&search);
        return vl_x_error(res, &err);
    }
    q = search.query;
    with_total = search.total_mode;
    if (!(bind = cursor_bind(x, &search))) {
        vl_search_free(&search);
        return vl_x_fail(res, 500, "exception", "out of memory");
    }
    if (search.cursor) {
        if (vl_params_get(params, "_offset")) {
            rc = vl_x_fail(res, 400, "invalid", "_offset and _cursor do not go together");
            goto done;
        }
        if (cursor_parse(x, bind, search.cursor, cbuf, &cur) < 0) {
            rc = vl_x_fail(res, 400, "invalid",
                           "_cursor is not a cursor of this search (changed, made for other "
                           "parameters, another _count or another caller, or the caller's access "
                           "changed since): start again from the search");
            goto done;
        }
        q.as_of = cur.as_of;
        q.offset = cur.key ? 0 : cur.offset;
        if (cur.dir != CUR_FIRST && cur.key) {
            q.after = cur.key;
            q.after_len = cur.key_len;
            q.backward = cur.dir == CUR_PREVIOUS;
        } else if (cur.dir == CUR_FIRST) {
            q.offset = 0;
        }
        with_total = VL_TOTAL_NONE; /* counted on the first page, in the same snapshot */
    } else {
        if (q.offset > OFFSET_MAX) {
            rc = vl_x_fail(res, 400, "too-costly",
                           "_offset is accepted up to %d; follow the Bundle's next links (cursors) "
                           "to page further",
                           OFFSET_MAX);
            goto done;
        }
        q.as_of = -1; /* a snapshot of now, which every link of this search reads */
    }
    start = q.offset;
    q.want_keys = 1;
    /* one more row tells whether there is a page beyond */
    if (q.count > 0)
        q.count++;
    rc = txn ? vl_store_txn_search(txn, x->scope, &q, with_total, max_bytes, &list, &serr)
             : vl_store_search(x->f->opts.store, x->scope, &q, with_total, max_bytes, &list, &serr);
    if (rc < 0) {
        if (serr.kind == VL_STORE_INVALID && search.cursor)
            rc = vl_x_fail(res, 400, "invalid", "_cursor is not a cursor of this search");
        else
            rc = vl_x_store_error(res, &serr);
        goto done;
    }
    p.total = search.cursor ? cur.total : list.total; /* -1: not counted, or beyond the bound */
    /* the page: `count` rows, or fewer once their bytes reach max_bytes
     * (in the order read: away from a cursor); a row beyond it (the extra
     * row, or the store's probe after the bytes) says more follow */
    if (search.query.count > 0 && list.n > 0) {
        size_t keep = 0, bytes = 0, n = list.n;
        while (keep < n && keep < (size_t)search.query.count) {
            bytes += list.items[q.backward ? n - 1 - keep : keep].body_len;
            keep++;
            if (max_bytes && bytes >= max_bytes)
                break;
        }
        has_more = n > keep;
        while (list.n > keep)
            drop_item(&list, q.backward ? 0 : list.n - 1);
    }
    if (q.backward) {
        has_prev = has_more;
        has_next = 1; /* the page it came back from */
        start = has_prev && cur.offset > (int32_t)list.n ? cur.offset - (int)list.n : 0;
    } else {
        has_next = has_more;
        /* a page reached through a next link (or an offset) has one before */
        has_prev = (search.cursor && cur.dir == CUR_NEXT) || start > 0;
        if (search.cursor && cur.dir == CUR_NEXT && cur.key)
            start = cur.offset;
    }
    if (search.n_includes && list.n &&
        add_includes(x, txn, &search, &list, &included, &truncated, &serr) < 0) {
        vl_records_free(&list);
        rc = vl_x_store_error(res, &serr);
        goto done;
    }
    /* the links: self as asked, the others cursors of this snapshot */
    {
        cursor_t c = {CUR_FIRST, list.as_of, p.total, 0, NULL, 0};
        const char *sq = search.self_query ? search.self_query : "";
        if (search.cursor)
            vl_buf_printf(&self, "%s/%s?%s%s_count=%d&_cursor=%s", vl_x_fhir_base(x), x->type->name,
                          sq, *sq ? "&" : "", search.query.count, search.cursor);
        else
            vl_buf_printf(&self, "%s/%s?%s%s_count=%d%s", vl_x_fhir_base(x), x->type->name, sq,
                          *sq ? "&" : "", search.query.count, "");
        if (!search.cursor && start > 0)
            vl_buf_printf(&self, "&_offset=%d", start);
        cursor_url(x, &search, bind, &c, &first);
        if (has_next && list.n) {
            c.dir = CUR_NEXT;
            c.key = list.keys ? list.keys[list.n - 1] : NULL;
            c.key_len = c.key ? list.key_lens[list.n - 1] : 0;
            c.offset = start + (int32_t)list.n;
            if (!c.key_len)
                c.key = NULL; /* keys too long: by offset in the snapshot */
            cursor_url(x, &search, bind, &c, &next);
        }
        if (has_prev && list.n) {
            c.dir = CUR_PREVIOUS;
            c.key = list.keys ? list.keys[0] : NULL;
            c.key_len = c.key ? list.key_lens[0] : 0;
            c.offset = start;
            if (!c.key_len) { /* by offset: the page before this one */
                c.key = NULL;
                c.dir = CUR_NEXT;
                c.offset = start > search.query.count ? start - search.query.count : 0;
            }
            cursor_url(x, &search, bind, &c, &prev);
        }
    }
    if (!self.data || !first.data) {
        vl_records_free(&list);
        vl_records_free(&included);
        rc = vl_x_fail(res, 500, "exception", "out of memory");
        goto done;
    }
    p.query = search.self_query ? search.self_query : "";
    p.count = search.query.count;
    p.offset = start;
    p.self = self.data;
    p.first = first.data;
    p.previous = prev.data;
    p.next = next.data;
    p.included = search.n_includes ? &included : NULL;
    p.outcome = truncated ? "more resources were to be included than one page holds (1000): some "
                            "are left out; page with a smaller _count"
                          : NULL;
    rc = send_page(x, &p, &list, res);
done:
    free(bind);
    vl_buf_free(&self);
    vl_buf_free(&first);
    vl_buf_free(&prev);
    vl_buf_free(&next);
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
