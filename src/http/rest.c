/*
 * The FHIR REST interactions under /fhir.
 *
 *   GET    /fhir/metadata                       capabilities
 *   GET    /fhir/{type}?...  POST .../_search    search-type
 *   POST   /fhir/{type}                         create (If-None-Exist)
 *   GET    /fhir/{type}/_history                history-type
 *   GET    /fhir/{type}/{id}                    read
 *   PUT    /fhir/{type}/{id}                    update (If-Match; creates if new)
 *   DELETE /fhir/{type}/{id}                    delete
 *   GET    /fhir/{type}/{id}/_history           history-instance
 *   GET    /fhir/{type}/{id}/_history/{vid}     vread
 *
 * Which types and interactions exist comes from vl_fhir_types, the same
 * table the CapabilityStatement is generated from. Every request is
 * authorized through vl_auth_authorize() once its interaction is known.
 * Reads and searches serve stored bytes as they are; writes go to the
 * store's writer (vl_submit_write) and are answered in vl_rest_write_done().
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http_internal.h"

#define MAX_SEGMENTS 5

enum { PREFER_REPRESENTATION, PREFER_MINIMAL, PREFER_OUTCOME };

/* ------------------------------------------------------------------------
 * Negotiation and preconditions
 * ---------------------------------------------------------------------- */

static int is_xml(const char *s)
{
    return strstr(s, "xml") != NULL;
}

/* 0 ok (sets json_as_plain), -1 answered 406 via err. */
static int negotiate(vl_request_t *req, vl_error_t *err)
{
    const char *fmt = vl_params_get(&req->params, "_format");
    const char *accept = vl_req_header(req, MHD_HTTP_HEADER_ACCEPT);
    if (fmt) {
        if (!strcmp(fmt, "json") || !strcmp(fmt, "application/fhir+json") ||
            !strcmp(fmt, "application/json+fhir")) {
            return 0;
        }
        if (!strcmp(fmt, "application/json")) {
            req->json_as_plain = 1;
            return 0;
        }
        if (is_xml(fmt))
            return vl_error_set(err, 406, "not-supported", NULL,
                                "XML is not supported; this server speaks FHIR JSON only "
                                "(use _format=json or Accept: application/fhir+json)");
        return vl_error_set(err, 406, "not-supported", NULL, "unsupported _format '%s'", fmt);
    }
    if (!accept || !*accept || strstr(accept, "*/*") || strstr(accept, "application/*") ||
        strstr(accept, "fhir+json") || strstr(accept, "json+fhir"))
        return 0;
    if (strstr(accept, "application/json")) {
        req->json_as_plain = 1;
        return 0;
    }
    if (is_xml(accept))
        return vl_error_set(err, 406, "not-supported", NULL,
                            "XML is not supported; this server speaks FHIR JSON only "
                            "(Accept: application/fhir+json)");
    return vl_error_set(err, 406, "not-supported", NULL,
                        "cannot answer in any of the accepted types; this server produces "
                        "application/fhir+json and application/json");
}

static int content_type_is(vl_request_t *req, const char *const *types)
{
    const char *ct = vl_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t n;
    if (!ct)
        return 0;
    n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    for (; *types; types++)
        if (strlen(*types) == n && strncasecmp(ct, *types, n) == 0)
            return 1;
    return 0;
}

static int require_json_body(vl_request_t *req, vl_error_t *err)
{
    static const char *const json_types[] = {"application/fhir+json", "application/json",
                                             "application/json+fhir", NULL};
    const char *ct = vl_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!content_type_is(req, json_types)) {
        if (ct && is_xml(ct))
            return vl_error_set(err, 415, "not-supported", NULL,
                                "XML is not supported; send application/fhir+json");
        return vl_error_set(err, 415, "not-supported", NULL,
                            "Content-Type must be application/fhir+json or application/json%s%s",
                            ct ? ", not " : "", ct ? ct : "");
    }
    if (req->body.len == 0)
        return vl_error_set(err, 400, "required", NULL, "the request has no body");
    return 0;
}

static void parse_prefer(vl_request_t *req, int *lenient)
{
    const char *p = vl_req_header(req, "Prefer");
    req->prefer_return = PREFER_REPRESENTATION;
    if (lenient)
        *lenient = 0;
    if (!p)
        return;
    if (strstr(p, "return=minimal"))
        req->prefer_return = PREFER_MINIMAL;
    else if (strstr(p, "return=OperationOutcome"))
        req->prefer_return = PREFER_OUTCOME;
    if (lenient && strstr(p, "handling=lenient"))
        *lenient = 1;
}

/* Parses an ETag-style version: W/"3", "3" or 3. Returns 0 if malformed. */
static int64_t parse_version_tag(const char *s)
{
    char *end;
    long long v;
    if (!strncmp(s, "W/", 2))
        s += 2;
    if (*s == '"')
        s++;
    if (!isdigit((unsigned char)*s))
        return 0;
    v = strtoll(s, &end, 10);
    if (*end == '"')
        end++;
    return *end == '\0' && v > 0 ? v : 0;
}

/* ------------------------------------------------------------------------
 * Responses of stored records
 * ---------------------------------------------------------------------- */

static void record_headers(vl_request_t *req, vl_response_t *res, const char *type,
                           const char *id, int64_t version, int64_t last_updated_us,
                           int with_location)
{
    snprintf(res->etag, sizeof res->etag, "W/\"%lld\"", (long long)version);
    vl_time_format_http(last_updated_us, res->last_modified);
    if (with_location) {
        char base[300];
        vl_base_url(req, base, sizeof base);
        snprintf(res->location, sizeof res->location, "%s/fhir/%s/%s/_history/%lld", base, type,
                 id, (long long)version);
    }
}

static MHD_RESULT send_record(vl_request_t *req, vl_record_t *rec)
{
    vl_response_t res = {.status = 200};
    if (rec->deleted) {
        vl_error_t err = VL_ERROR_INIT;
        vl_error_set(&err, 410, "deleted", NULL, "%s/%s was deleted (version %lld)", rec->type,
                     rec->id, (long long)rec->version);
        res.status = 410;
        res.body = vl_dump_release(vl_error_outcome(&err), &res.body_len);
        vl_error_clear(&err);
    } else {
        res.body = rec->body;
        res.body_len = rec->body_len;
        rec->body = NULL;
    }
    record_headers(req, &res, rec->type, rec->id, rec->version, rec->last_updated_us, 0);
    return vl_send(req, &res);
}

/* ------------------------------------------------------------------------
 * Bundles: assembled as text so stored bodies are embedded byte for byte.
 * ---------------------------------------------------------------------- */

static void bundle_open(vl_buf_t *b, const char *type, int64_t total)
{
    char id[33], ts[32], num[32];
    vl_id_new(id);
    vl_time_format(vl_time_now_us(), ts);
    vl_buf_puts(b, "{\"resourceType\":\"Bundle\",\"id\":\"");
    vl_buf_puts(b, id);
    vl_buf_puts(b, "\",\"meta\":{\"lastUpdated\":\"");
    vl_buf_puts(b, ts);
    vl_buf_puts(b, "\"},\"type\":\"");
    vl_buf_puts(b, type);
    vl_buf_puts(b, "\"");
    if (total >= 0) {
        snprintf(num, sizeof num, ",\"total\":%lld", (long long)total);
        vl_buf_puts(b, num);
    }
}

static void bundle_link(vl_buf_t *b, int *first, const char *relation, const char *url)
{
    vl_buf_puts(b, *first ? ",\"link\":[" : ",");
    *first = 0;
    vl_buf_puts(b, "{\"relation\":\"");
    vl_buf_puts(b, relation);
    vl_buf_puts(b, "\",\"url\":");
    vl_buf_json_string(b, url);
    vl_buf_puts(b, "}");
}

static void full_url(vl_request_t *req, const vl_record_t *rec, char *out, size_t n)
{
    char base[300];
    vl_base_url(req, base, sizeof base);
    snprintf(out, n, "%s/fhir/%s/%s", base, rec->type, rec->id);
}

static MHD_RESULT send_bundle(vl_request_t *req, vl_buf_t *b)
{
    vl_response_t res = {.status = 200};
    res.body = vl_buf_take(b, &res.body_len);
    if (!res.body)
        return vl_send_errorf(req, 500, "too-costly", "the result is too large to send");
    return vl_send(req, &res);
}

/* Reads _count and _offset for history: defaults 50 and 0. */
static int page_params(vl_request_t *req, int *count, int *offset, int64_t *since,
                       vl_error_t *err)
{
    const char *c = vl_params_get(&req->params, "_count");
    const char *o = vl_params_get(&req->params, "_offset");
    const char *s = vl_params_get(&req->params, "_since");
    char *end;
    *count = VL_SEARCH_COUNT_DEFAULT;
    *offset = 0;
    *since = 0;
    if (c) {
        long v = strtol(c, &end, 10);
        if (*c == '\0' || *end || v < 0)
            return vl_error_set(err, 400, "invalid", "_count", "_count must be a whole number");
        *count = v > VL_SEARCH_COUNT_MAX ? VL_SEARCH_COUNT_MAX : (int)v;
    }
    if (o) {
        long v = strtol(o, &end, 10);
        if (*o == '\0' || *end || v < 0 || v > 100000000)
            return vl_error_set(err, 400, "invalid", "_offset", "_offset must be a whole number");
        *offset = (int)v;
    }
    if (s) {
        int64_t hi;
        int prec;
        if (vl_time_parse_range(s, since, &hi, &prec) < 0 || prec < 4)
            return vl_error_set(err, 400, "invalid", "_since", "_since must be a FHIR instant");
    }
    for (size_t i = 0; i < req->params.n; i++) {
        const char *name = req->params.items[i].name;
        if (strcmp(name, "_count") && strcmp(name, "_offset") && strcmp(name, "_since") &&
            strcmp(name, "_format"))
            return vl_error_set(err, 400, "not-supported", NULL,
                                "parameter '%s' is not supported on _history", name);
    }
    return 0;
}

static MHD_RESULT do_history(vl_request_t *req, const vl_fhir_type_t *t, const char *id)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_records_t list = {0};
    vl_buf_t b = {0};
    int count, offset, first = 1;
    int64_t since;
    char url[1200], base[300];
    MHD_RESULT ret;
    if (page_params(req, &count, &offset, &since, &err) < 0 ||
        vl_store_history(req->http->store, t->name, id, since, count, offset, &list, &err) < 0) {
        ret = vl_send_error(req, &err);
        vl_error_clear(&err);
        return ret;
    }
    vl_base_url(req, base, sizeof base);
    bundle_open(&b, "history", list.total);
    snprintf(url, sizeof url, "%s/fhir/%s%s%s/_history?_count=%d&_offset=%d", base, t->name,
             id ? "/" : "", id ? id : "", count, offset);
    bundle_link(&b, &first, "self", url);
    if ((int64_t)offset + count < list.total) {
        snprintf(url, sizeof url, "%s/fhir/%s%s%s/_history?_count=%d&_offset=%d", base, t->name,
                 id ? "/" : "", id ? id : "", count, offset + count);
        bundle_link(&b, &first, "next", url);
    }
    if (!first)
        vl_buf_puts(&b, "]");
    for (size_t i = 0; i < list.n; i++) {
        vl_record_t *r = &list.items[i];
        char fu[600], line[512], ts[32];
        full_url(req, r, fu, sizeof fu);
        vl_buf_puts(&b, i ? ",{\"fullUrl\":" : ",\"entry\":[{\"fullUrl\":");
        vl_buf_json_string(&b, fu);
        if (r->body) {
            vl_buf_puts(&b, ",\"resource\":");
            vl_buf_append(&b, r->body, r->body_len);
        }
        vl_time_format(r->last_updated_us, ts);
        snprintf(line, sizeof line,
                 ",\"request\":{\"method\":\"%s\",\"url\":\"%s%s%s\"},\"response\":{\"status\":"
                 "\"%s\",\"etag\":\"W/\\\"%lld\\\"\",\"lastModified\":\"%s\"}}",
                 r->method, r->type, strcmp(r->method, "POST") ? "/" : "",
                 strcmp(r->method, "POST") ? r->id : "",
                 r->deleted ? "204 No Content" : r->version == 1 ? "201 Created" : "200 OK",
                 (long long)r->version, ts);
        vl_buf_puts(&b, line);
    }
    vl_buf_puts(&b, list.n ? "]}" : "}");
    vl_records_free(&list);
    return send_bundle(req, &b);
}

static MHD_RESULT do_search(vl_request_t *req, const vl_fhir_type_t *t)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_search_t search;
    vl_records_t list = {0};
    vl_buf_t b = {0};
    int lenient = 0, first = 1;
    char base[300], url[4096];
    MHD_RESULT ret;

    if (!strcmp(req->method, "POST")) {
        static const char *const form[] = {"application/x-www-form-urlencoded", NULL};
        if (!content_type_is(req, form))
            return vl_send_errorf(req, 415, "not-supported",
                                  "_search takes application/x-www-form-urlencoded");
        if (req->body.len && vl_params_parse_form(&req->params, req->body.data, req->body.len) < 0)
            return vl_send_errorf(req, 400, "invalid", "malformed form body");
    }
    parse_prefer(req, &lenient);
    memset(&search, 0, sizeof search);
    if (vl_fhir_search_parse(t, &req->params, lenient, &search, &err) < 0 ||
        vl_store_search(req->http->store, &search.query, &list, &err) < 0) {
        ret = vl_send_error(req, &err);
        vl_error_clear(&err);
        vl_search_free(&search);
        return ret;
    }
    vl_base_url(req, base, sizeof base);
    bundle_open(&b, "searchset", search.total_mode ? list.total : -1);
    {
        const char *q = search.self_query ? search.self_query : "";
        const char *sep = *q ? "&" : "";
        int count = search.query.count, offset = search.query.offset;
        snprintf(url, sizeof url, "%s/fhir/%s?%s%s_count=%d&_offset=%d", base, t->name, q, sep,
                 count, offset);
        bundle_link(&b, &first, "self", url);
        if (count > 0 && (int64_t)offset + count < list.total) {
            snprintf(url, sizeof url, "%s/fhir/%s?%s%s_count=%d&_offset=%d", base, t->name, q, sep,
                     count, offset + count);
            bundle_link(&b, &first, "next", url);
        }
        if (offset > 0) {
            snprintf(url, sizeof url, "%s/fhir/%s?%s%s_count=%d&_offset=%d", base, t->name, q, sep,
                     count, offset > count ? offset - count : 0);
            bundle_link(&b, &first, "previous", url);
        }
        if (!first)
            vl_buf_puts(&b, "]");
    }
    for (size_t i = 0; i < list.n; i++) {
        vl_record_t *r = &list.items[i];
        char fu[600];
        full_url(req, r, fu, sizeof fu);
        vl_buf_puts(&b, i ? ",{\"fullUrl\":" : ",\"entry\":[{\"fullUrl\":");
        vl_buf_json_string(&b, fu);
        vl_buf_puts(&b, ",\"resource\":");
        vl_buf_append(&b, r->body, r->body_len);
        vl_buf_puts(&b, ",\"search\":{\"mode\":\"match\"}}");
    }
    vl_buf_puts(&b, list.n ? "]}" : "}");
    vl_records_free(&list);
    vl_search_free(&search);
    return send_bundle(req, &b);
}

/* ------------------------------------------------------------------------
 * Writes
 * ---------------------------------------------------------------------- */

/* Parses and validates the body as a `t` resource into req->resource and
 * computes its index rows into req->write.index. */
static int prepare_resource(vl_request_t *req, const vl_fhir_type_t *t, vl_error_t *err)
{
    vl_json_limits_t lim = {req->http->opts.max_depth};
    const char *rt;
    if (require_json_body(req, err) < 0)
        return -1;
    req->resource = vl_json_parse(req->body.data, req->body.len, &lim, err);
    if (!req->resource)
        return -1;
    if (!json_is_object(req->resource))
        return vl_error_set(err, 400, "structure", NULL, "the body must be a JSON object");
    rt = json_string_value(json_object_get(req->resource, "resourceType"));
    if (!rt || !vl_json_is_string(json_object_get(req->resource, "resourceType")))
        return vl_error_set(err, 400, "required", "resourceType", "resourceType is missing");
    if (strcmp(rt, t->name) != 0)
        return vl_error_set(err, 400, "invalid", "resourceType",
                            "resourceType '%s' does not match the URL's type %s", rt, t->name);
    if (vl_fhir_validate(t, req->resource, err) < 0)
        return -1;
    vl_index_init(&req->write.index);
    if (vl_fhir_index(t, req->resource, &req->write.index, err) < 0)
        return -1;
    snprintf(req->write.type, sizeof req->write.type, "%s", t->name);
    req->write.resource = req->resource;
    return 0;
}

static MHD_RESULT do_create(vl_request_t *req, const vl_fhir_type_t *t)
{
    vl_error_t err = VL_ERROR_INIT;
    const char *ine = vl_req_header(req, "If-None-Exist");
    MHD_RESULT ret;
    parse_prefer(req, NULL);
    if (prepare_resource(req, t, &err) < 0)
        goto fail;
    req->write.op = VL_WRITE_CREATE;
    req->write.id[0] = '\0';
    if (ine) {
        vl_params_t p;
        int rc;
        const char *q = strchr(ine, '?'); /* tolerate "Type?a=b" as well as "a=b" */
        q = q ? q + 1 : ine;
        vl_params_init(&p);
        rc = vl_params_parse_form(&p, q, strlen(q));
        if (rc < 0 || p.n == 0) {
            vl_params_free(&p);
            vl_error_set(&err, 400, "invalid", NULL, "If-None-Exist is not a search query");
            goto fail;
        }
        rc = vl_fhir_search_parse(t, &p, 0, &req->if_none_exist, &err);
        vl_params_free(&p);
        if (rc < 0)
            goto fail;
        req->has_if_none_exist = 1;
        req->write.if_none_exist = &req->if_none_exist.query;
    }
    return vl_submit_write(req);
fail:
    ret = vl_send_error(req, &err);
    vl_error_clear(&err);
    return ret;
}

static int if_match(vl_request_t *req, vl_error_t *err)
{
    const char *im = vl_req_header(req, MHD_HTTP_HEADER_IF_MATCH);
    req->write.if_match = 0;
    if (im) {
        req->write.if_match = parse_version_tag(im);
        if (!req->write.if_match)
            return vl_error_set(err, 400, "invalid", NULL,
                                "If-Match must be a version ETag such as W/\"3\"");
    }
    return 0;
}

static MHD_RESULT do_update(vl_request_t *req, const vl_fhir_type_t *t, const char *id)
{
    vl_error_t err = VL_ERROR_INIT;
    const char *body_id;
    MHD_RESULT ret;
    parse_prefer(req, NULL);
    if (prepare_resource(req, t, &err) < 0 || if_match(req, &err) < 0)
        goto fail;
    body_id = json_string_value(json_object_get(req->resource, "id"));
    if (!body_id) {
        vl_error_set(&err, 400, "required", t->name, "an update must carry the resource id");
        goto fail;
    }
    if (strcmp(body_id, id) != 0) {
        vl_error_set(&err, 400, "invalid", "id", "the body's id '%s' differs from the URL's '%s'",
                     body_id, id);
        goto fail;
    }
    req->write.op = VL_WRITE_UPDATE;
    snprintf(req->write.id, sizeof req->write.id, "%s", id);
    return vl_submit_write(req);
fail:
    ret = vl_send_error(req, &err);
    vl_error_clear(&err);
    return ret;
}

static MHD_RESULT do_delete(vl_request_t *req, const vl_fhir_type_t *t, const char *id)
{
    vl_error_t err = VL_ERROR_INIT;
    MHD_RESULT ret;
    if (if_match(req, &err) < 0) {
        ret = vl_send_error(req, &err);
        vl_error_clear(&err);
        return ret;
    }
    req->write.op = VL_WRITE_DELETE;
    snprintf(req->write.type, sizeof req->write.type, "%s", t->name);
    snprintf(req->write.id, sizeof req->write.id, "%s", id);
    vl_index_init(&req->write.index);
    return vl_submit_write(req);
}

MHD_RESULT vl_rest_write_done(vl_request_t *req)
{
    vl_store_write_t *w = &req->write;
    vl_response_t res = {0};
    if (w->result < 0)
        return vl_send_error(req, &w->err);
    if (!w->noop) { /* the receipt: this write's ledger entry */
        snprintf(res.ledger_index, sizeof res.ledger_index, "%llu",
                 (unsigned long long)w->ledger_index);
        sodium_bin2hex(res.ledger_hash, sizeof res.ledger_hash, w->ledger_hash, VL_HASH_LEN);
    }
    if (w->op == VL_WRITE_DELETE) {
        res.status = 204;
        if (!w->noop)
            record_headers(req, &res, w->type, w->id, w->version, w->last_updated_us, 0);
        return vl_send(req, &res);
    }
    res.status = w->noop ? 200 : w->created ? 201 : 200;
    record_headers(req, &res, w->type, w->id, w->version, w->last_updated_us, 1);
    if (req->prefer_return == PREFER_REPRESENTATION) {
        res.body = w->body;
        res.body_len = w->body_len;
        w->body = NULL;
    } else if (req->prefer_return == PREFER_OUTCOME) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s/%s %s (version %lld)", w->type, w->id,
                 w->noop ? "already exists; nothing was written"
                 : w->created ? "created" : "updated",
                 (long long)w->version);
        res.body = vl_dump_release(vl_outcome_new("information", "informational", msg),
                                   &res.body_len);
    }
    return vl_send(req, &res);
}

/* ------------------------------------------------------------------------
 * Routing
 * ---------------------------------------------------------------------- */

static MHD_RESULT method_not_allowed(vl_request_t *req, const char *allow)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_response_t res = {.status = 405, .allow = allow};
    vl_error_set(&err, 405, "not-supported", NULL, "%s is not supported on %s (allowed: %s)",
                 req->method, req->route, allow);
    res.body = vl_dump_release(vl_error_outcome(&err), &res.body_len);
    vl_error_clear(&err);
    return vl_send(req, &res);
}

static int is_method(vl_request_t *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static MHD_RESULT authorize(vl_request_t *req, const char *interaction, const char *type,
                            const char *id, int *denied)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_access_t what = {interaction, type, id};
    MHD_RESULT ret = MHD_YES;
    *denied = 0;
    if (vl_auth_identify(vl_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION), &req->who, &err) < 0 ||
        vl_auth_authorize(&req->who, &what, &err) < 0) {
        *denied = 1;
        ret = vl_send_error(req, &err);
    }
    vl_error_clear(&err);
    return ret;
}

#define AUTHORIZE(interaction, type, id)                                                          \
    do {                                                                                          \
        int denied_;                                                                              \
        MHD_RESULT r_ = authorize(req, interaction, type, id, &denied_);                          \
        if (denied_)                                                                              \
            return r_;                                                                            \
    } while (0)

static int split_path(char *path, char **seg, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        seg[n++] = p;
    }
    return n;
}

MHD_RESULT vl_rest_dispatch(vl_request_t *req)
{
    vl_error_t err = VL_ERROR_INIT;
    char path[sizeof req->path];
    char *seg[MAX_SEGMENTS + 1];
    int n;
    const vl_fhir_type_t *t;
    MHD_RESULT ret;

    req->route = "/fhir";
    if (negotiate(req, &err) < 0) {
        ret = vl_send_error(req, &err);
        vl_error_clear(&err);
        return ret;
    }
    snprintf(path, sizeof path, "%s", req->path + 5);
    n = split_path(path, seg, MAX_SEGMENTS);
    if (n < 0)
        return vl_send_errorf(req, 404, "not-found", "no such path");
    if (n == 0) /* like an unserved type: nothing is served at the base itself */
        return vl_send_errorf(req, 404, "not-supported",
                              "system-level interactions (batch, transaction, search-system, "
                              "history-system) are not supported by this server");
    if (!strcmp(seg[0], "metadata")) {
        req->route = "/fhir/metadata";
        if (n != 1)
            return vl_send_errorf(req, 404, "not-found", "no such path");
        if (!is_method(req, "GET") && !is_method(req, "HEAD"))
            return method_not_allowed(req, "GET");
        AUTHORIZE("capabilities", NULL, NULL);
        {
            char base[300], url[320];
            vl_base_url(req, base, sizeof base);
            snprintf(url, sizeof url, "%s/fhir", base);
            return vl_send_json(req, 200, vl_fhir_capability(url));
        }
    }
    t = vl_fhir_type_find(seg[0]);
    if (!t) {
        req->route = "/fhir/{type}";
        if (vl_fhir_is_r4_type(seg[0]))
            return vl_send_errorf(req, 404, "not-supported",
                                  "resource type %s is not served by this server", seg[0]);
        return vl_send_errorf(req, 404, "not-found", "'%.64s' is not a FHIR resource type",
                              seg[0]);
    }
    if (n == 1) {
        req->route = "/fhir/{type}";
        if (is_method(req, "GET") || is_method(req, "HEAD")) {
            AUTHORIZE("search-type", t->name, NULL);
            return do_search(req, t);
        }
        if (is_method(req, "POST")) {
            AUTHORIZE("create", t->name, NULL);
            return do_create(req, t);
        }
        return method_not_allowed(req, "GET, POST");
    }
    if (!strcmp(seg[1], "_search") && n == 2) {
        req->route = "/fhir/{type}/_search";
        if (!is_method(req, "POST") && !is_method(req, "GET"))
            return method_not_allowed(req, "GET, POST");
        AUTHORIZE("search-type", t->name, NULL);
        return do_search(req, t);
    }
    if (!strcmp(seg[1], "_history") && n == 2) {
        req->route = "/fhir/{type}/_history";
        if (!is_method(req, "GET") && !is_method(req, "HEAD"))
            return method_not_allowed(req, "GET");
        AUTHORIZE("history-type", t->name, NULL);
        return do_history(req, t, NULL);
    }
    if (!vl_fhir_id_valid(seg[1])) {
        req->route = "/fhir/{type}/{id}";
        return vl_send_errorf(req, 400, "invalid",
                              "'%.64s' is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)", seg[1]);
    }
    if (n == 2) {
        req->route = "/fhir/{type}/{id}";
        if (is_method(req, "GET") || is_method(req, "HEAD")) {
            vl_record_t rec;
            AUTHORIZE("read", t->name, seg[1]);
            if (vl_store_read(req->http->store, t->name, seg[1], 0, &rec, &err) < 0)
                goto fail;
            ret = send_record(req, &rec);
            vl_record_free(&rec);
            return ret;
        }
        if (is_method(req, "PUT")) {
            AUTHORIZE("update", t->name, seg[1]);
            return do_update(req, t, seg[1]);
        }
        if (is_method(req, "DELETE")) {
            AUTHORIZE("delete", t->name, seg[1]);
            return do_delete(req, t, seg[1]);
        }
        return method_not_allowed(req, "GET, PUT, DELETE");
    }
    if (strcmp(seg[2], "_history") != 0 || (n == 5 && strcmp(seg[4], "$ledger") != 0))
        return vl_send_errorf(req, 404, "not-found", "no such path");
    if (n == 3) {
        req->route = "/fhir/{type}/{id}/_history";
        if (!is_method(req, "GET") && !is_method(req, "HEAD"))
            return method_not_allowed(req, "GET");
        AUTHORIZE("history-instance", t->name, seg[1]);
        return do_history(req, t, seg[1]);
    }
    req->route = n == 5 ? "/fhir/{type}/{id}/_history/{vid}/$ledger"
                        : "/fhir/{type}/{id}/_history/{vid}";
    if (!is_method(req, "GET") && !is_method(req, "HEAD"))
        return method_not_allowed(req, "GET");
    {
        int64_t vid = parse_version_tag(seg[3]);
        vl_record_t rec;
        if (!vid || strchr(seg[3], '"'))
            return vl_send_errorf(req, 400, "invalid", "'%.32s' is not a version id", seg[3]);
        AUTHORIZE("vread", t->name, seg[1]);
        if (n == 5) /* the same right as reading the version: it returns its bytes */
            return vl_ledger_record(req, t->name, seg[1], vid);
        if (vl_store_read(req->http->store, t->name, seg[1], vid, &rec, &err) < 0)
            goto fail;
        ret = send_record(req, &rec);
        vl_record_free(&rec);
        return ret;
    }
fail:
    ret = vl_send_error(req, &err);
    vl_error_clear(&err);
    return ret;
}
