/*
 * The ledger over HTTP (docs/ledger.md, docs/api.md):
 *
 *   GET /ledger/checkpoint                      latest signed checkpoint (text/plain;
 *                                               signs one first if entries are uncovered)
 *   GET /ledger/key                             the C2SP verifier key (text/plain)
 *   GET /ledger/entries?start=&end=             entry lines [start, end), NDJSON, <= 1000
 *   GET /ledger/proof/inclusion?index=&size=    RFC 9162 inclusion proof (JSON)
 *   GET /ledger/proof/consistency?first=&second= RFC 9162 consistency proof (JSON)
 *   GET /ledger/export                          every entry and checkpoint, NDJSON,
 *                                               streamed in constant memory
 *   GET /fhir/{type}/{id}/_history/{vid}/$ledger  a version's entry, commitment inputs,
 *                                               inclusion proof and checkpoint; with
 *                                               ?download=tlog-proof a C2SP tlog-proof
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http_internal.h"

#define ENTRIES_MAX 1000
#define EXPORT_CHUNK 512

/* A whole non-negative number parameter; -1 when missing or malformed. */
static int64_t uparam(vl_request_t *req, const char *name)
{
    const char *v = vl_params_get(&req->params, name);
    char *end;
    unsigned long long n;
    if (!v || !isdigit((unsigned char)*v)) /* no sign, no leading space */
        return -1;
    n = strtoull(v, &end, 10);
    if (*end || n > (unsigned long long)INT64_MAX)
        return -1;
    return (int64_t)n;
}

static void b64(const unsigned char *bin, size_t n, char *out, size_t outlen)
{
    sodium_bin2base64(out, outlen, bin, n, sodium_base64_VARIANT_ORIGINAL);
}

static json_t *hashes_json(unsigned char proof[][VL_HASH_LEN], size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char s[64];
        b64(proof[i], VL_HASH_LEN, s, sizeof s);
        json_array_append_new(a, json_string(s));
    }
    return a;
}

static int committed_size(vl_request_t *req, uint64_t *size, vl_error_t *err)
{
    return vl_store_ledger_size(req->http->store, size, err);
}

static MHD_RESULT handle_checkpoint(vl_request_t *req)
{
    vl_error_t err = VL_ERROR_INIT;
    char *note;
    uint64_t size;
    MHD_RESULT ret;
    if (vl_store_ledger_checkpoint(req->http->store, 1, &note, &size, &err) < 0) {
        ret = vl_send_error(req, &err);
        vl_error_clear(&err);
        return ret;
    }
    return vl_send_text(req, 200, "text/plain; charset=utf-8", note, strlen(note));
}

static MHD_RESULT handle_key(vl_request_t *req)
{
    char vkey[512], line[520];
    if (!req->http->opts.ledger_key ||
        vl_ledger_key_vkey(req->http->opts.ledger_key, vkey, sizeof vkey) < 0)
        return vl_send_errorf(req, 404, "not-found", "this server has no ledger key");
    snprintf(line, sizeof line, "%s\n", vkey);
    return vl_send_text(req, 200, "text/plain; charset=utf-8", strdup(line), strlen(line));
}

/* Collects scanned lines (entries only, or entries and checkpoints) as NDJSON. */
typedef struct collect {
    vl_buf_t *b;
    int with_checkpoints;
} collect_t;

static int collect_line(void *ctx, uint64_t index, const char *line, size_t line_len,
                        const char *note, size_t note_len)
{
    collect_t *c = ctx;
    (void)index;
    if (line) {
        vl_buf_append(c->b, line, line_len);
        vl_buf_puts(c->b, "\n");
    } else if (c->with_checkpoints) {
        json_t *s = json_stringn(note, note_len);
        char *text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        json_decref(s);
        if (!text)
            return -1;
        vl_buf_puts(c->b, "{\"checkpoint\":");
        vl_buf_puts(c->b, text);
        vl_buf_puts(c->b, "}\n");
        free(text);
    }
    return c->b->failed ? -1 : 0;
}

static MHD_RESULT handle_entries(vl_request_t *req)
{
    vl_error_t err = VL_ERROR_INIT;
    int64_t start = uparam(req, "start"), end = uparam(req, "end");
    uint64_t size;
    vl_buf_t b = {0};
    collect_t c = {&b, 0};
    char *text;
    size_t len;
    MHD_RESULT ret;
    if (start < 0 || end < 0 || end <= start)
        return vl_send_errorf(req, 400, "invalid", "start and end must be numbers with start < end");
    if (end - start > ENTRIES_MAX)
        return vl_send_errorf(req, 400, "too-costly", "at most %d entries per request",
                              ENTRIES_MAX);
    if (committed_size(req, &size, &err) < 0)
        goto fail;
    if ((uint64_t)end > size) {
        vl_error_set(&err, 400, "invalid", "end", "end %lld is past the ledger's %llu entries",
                     (long long)end, (unsigned long long)size);
        goto fail;
    }
    if (vl_store_ledger_scan(req->http->store, (uint64_t)start, (uint64_t)end, collect_line, &c,
                             &err) != 0 ||
        b.failed) {
        if (!err.status)
            vl_error_set(&err, 500, "exception", NULL, "out of memory reading entries");
        goto fail;
    }
    text = vl_buf_take(&b, &len);
    if (!text)
        return vl_send_errorf(req, 500, "exception", "out of memory");
    return vl_send_text(req, 200, "application/x-ndjson", text, len);
fail:
    free(b.data);
    ret = vl_send_error(req, &err);
    vl_error_clear(&err);
    return ret;
}

static MHD_RESULT handle_proof(vl_request_t *req, int inclusion)
{
    vl_error_t err = VL_ERROR_INIT;
    int64_t a = uparam(req, inclusion ? "index" : "first");
    int64_t b = uparam(req, inclusion ? "size" : "second");
    unsigned char proof[VL_LEDGER_MAX_PROOF][VL_HASH_LEN];
    size_t n = 0;
    uint64_t size;
    int rc;
    MHD_RESULT ret;
    if (a < 0 || b < 0 || (inclusion ? a >= b : (a < 1 || a > b)))
        return vl_send_errorf(req, 400, "invalid",
                              inclusion ? "need 0 <= index < size"
                                        : "need 1 <= first <= second");
    if (committed_size(req, &size, &err) < 0)
        goto fail;
    if ((uint64_t)b > size) {
        vl_error_set(&err, 400, "invalid", NULL, "size %lld is past the ledger's %llu entries",
                     (long long)b, (unsigned long long)size);
        goto fail;
    }
    rc = inclusion ? vl_ledger_inclusion_proof(vl_store_ledger_node, req->http->store,
                                               (uint64_t)a, (uint64_t)b, proof, &n)
                   : vl_ledger_consistency_proof(vl_store_ledger_node, req->http->store,
                                                 (uint64_t)a, (uint64_t)b, proof, &n);
    if (rc < 0) {
        vl_error_set(&err, 500, "exception", NULL, "the proof could not be built");
        goto fail;
    }
    return vl_send_json(req, 200,
                        inclusion ? json_pack("{s:I,s:I,s:o}", "index", (json_int_t)a, "size",
                                              (json_int_t)b, "hashes", hashes_json(proof, n))
                                  : json_pack("{s:I,s:I,s:o}", "first", (json_int_t)a, "second",
                                              (json_int_t)b, "hashes", hashes_json(proof, n)));
fail:
    ret = vl_send_error(req, &err);
    vl_error_clear(&err);
    return ret;
}

/* ------------------------------------------------------------------------
 * Export: a callback response that refills a buffer EXPORT_CHUNK entries
 * at a time, up to the size of the checkpoint signed when it started.
 * ---------------------------------------------------------------------- */

typedef struct export_state {
    vl_store_t *store;
    uint64_t next, size;
    vl_buf_t buf;
    size_t off;
    int failed;
} export_state_t;

static ssize_t export_read(void *cls, uint64_t pos, char *out, size_t max)
{
    export_state_t *x = cls;
    (void)pos;
    while (x->off == x->buf.len) {
        collect_t c = {&x->buf, 1};
        vl_error_t err = VL_ERROR_INIT;
        uint64_t end;
        if (x->failed)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (x->next >= x->size)
            return MHD_CONTENT_READER_END_OF_STREAM;
        end = x->next + EXPORT_CHUNK < x->size ? x->next + EXPORT_CHUNK : x->size;
        x->buf.len = 0;
        x->off = 0;
        if (vl_store_ledger_scan(x->store, x->next, end, collect_line, &c, &err) != 0 ||
            x->buf.failed) {
            vl_logf(VL_LOG_ERROR, "ledger export failed at entry %llu: %s",
                    (unsigned long long)x->next, vl_error_message(&err));
            vl_error_clear(&err);
            x->failed = 1;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        x->next = end;
    }
    size_t n = x->buf.len - x->off < max ? x->buf.len - x->off : max;
    memcpy(out, x->buf.data + x->off, n);
    x->off += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    export_state_t *x = cls;
    free(x->buf.data);
    free(x);
}

static MHD_RESULT handle_export(vl_request_t *req)
{
    vl_error_t err = VL_ERROR_INIT;
    export_state_t *x;
    struct MHD_Response *r;
    char *note;
    uint64_t size;
    MHD_RESULT ret;
    /* a fresh checkpoint covers everything committed; the export ends there */
    if (vl_store_ledger_checkpoint(req->http->store, 1, &note, &size, &err) < 0) {
        ret = vl_send_error(req, &err);
        vl_error_clear(&err);
        return ret;
    }
    free(note);
    x = calloc(1, sizeof *x);
    if (!x)
        return vl_send_errorf(req, 500, "exception", "out of memory");
    x->store = req->http->store;
    x->size = size;
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, export_read, x,
                                          export_free);
    if (!r) {
        export_free(x);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    req->status = 200;
    ret = MHD_queue_response(req->conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

MHD_RESULT vl_ledger_dispatch(vl_request_t *req)
{
    const char *p = req->path + strlen("/ledger");
    static const struct {
        const char *path, *route;
        int which;
    } routes[] = {
        {"/checkpoint", "/ledger/checkpoint", 0},
        {"/key", "/ledger/key", 1},
        {"/entries", "/ledger/entries", 2},
        {"/proof/inclusion", "/ledger/proof/inclusion", 3},
        {"/proof/consistency", "/ledger/proof/consistency", 4},
        {"/export", "/ledger/export", 5},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(p, routes[i].path) != 0)
            continue;
        req->route = routes[i].route;
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            vl_response_t res = {.status = 405, .allow = "GET, HEAD"};
            res.body = vl_dump_release(vl_outcome_new("error", "not-supported",
                                                      "the ledger is read-only over HTTP"),
                                       &res.body_len);
            return vl_send(req, &res);
        }
        {
            vl_error_t err = VL_ERROR_INIT;
            vl_access_t what = {"ledger", NULL, NULL};
            vl_principal_t who;
            if (vl_auth_identify(vl_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION), &who, &err) <
                    0 ||
                vl_auth_authorize(&who, &what, &err) < 0) {
                MHD_RESULT ret = vl_send_error(req, &err);
                vl_error_clear(&err);
                return ret;
            }
        }
        switch (routes[i].which) {
        case 0: return handle_checkpoint(req);
        case 1: return handle_key(req);
        case 2: return handle_entries(req);
        case 3: return handle_proof(req, 1);
        case 4: return handle_proof(req, 0);
        default: return handle_export(req);
        }
    }
    req->route = "/ledger";
    return vl_send_errorf(req, 404, "not-found", "no such ledger path");
}

/* ------------------------------------------------------------------------
 * $ledger of a record version
 * ---------------------------------------------------------------------- */

MHD_RESULT vl_ledger_record(vl_request_t *req, const char *type, const char *id, int64_t vid)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_t *st = req->http->store;
    unsigned char salt[32], proof[VL_LEDGER_MAX_PROOF][VL_HASH_LEN], hash[VL_HASH_LEN];
    char *bytes = NULL, *note = NULL, *line = NULL, salt_hex[65], hash_hex[65];
    size_t len = 0, n = 0;
    uint64_t index, size;
    const char *download = vl_params_get(&req->params, "download");
    MHD_RESULT ret;
    vl_buf_t lb = {0};
    collect_t c = {&lb, 0};

    if (download && strcmp(download, "tlog-proof") != 0)
        return vl_send_errorf(req, 400, "invalid", "download must be tlog-proof");
    if (vl_store_ledger_record(st, type, id, vid, &index, salt, &bytes, &len, &err) < 0)
        goto fail;
    /* the latest checkpoint usually covers it; only then ask the writer */
    if (vl_store_ledger_checkpoint(st, 0, &note, &size, &err) < 0 && err.status != 404)
        goto fail;
    vl_error_clear(&err);
    if (!note || index >= size) {
        free(note);
        note = NULL;
        if (vl_store_ledger_checkpoint(st, 1, &note, &size, &err) < 0)
            goto fail;
    }
    if (index >= size) {
        vl_error_set(&err, 503, "transient", NULL,
                     "no checkpoint covers this entry yet; retry in a second");
        goto fail;
    }
    if (vl_store_ledger_scan(st, index, index + 1, collect_line, &c, &err) < 0 || lb.failed ||
        lb.len < 2) {
        vl_error_set(&err, 500, "exception", NULL, "the ledger entry could not be read");
        goto fail;
    }
    line = lb.data;
    line[--lb.len] = '\0'; /* drop the newline */
    if (vl_ledger_inclusion_proof(vl_store_ledger_node, st, index, size, proof, &n) < 0) {
        vl_error_set(&err, 500, "exception", NULL, "the inclusion proof could not be built");
        goto fail;
    }
    vl_ledger_leaf_hash(line, lb.len, hash);
    sodium_bin2hex(salt_hex, sizeof salt_hex, salt, 32);
    sodium_bin2hex(hash_hex, sizeof hash_hex, hash, VL_HASH_LEN);

    if (download) {
        vl_buf_t b = {0};
        char num[32], *extra = malloc(sodium_base64_encoded_len(lb.len, sodium_base64_VARIANT_ORIGINAL));
        size_t outlen;
        char *text;
        if (!extra) {
            vl_error_set(&err, 500, "exception", NULL, "out of memory");
            goto fail;
        }
        b64((const unsigned char *)line, lb.len, extra,
            sodium_base64_encoded_len(lb.len, sodium_base64_VARIANT_ORIGINAL));
        vl_buf_puts(&b, "c2sp.org/tlog-proof@v1\nextra ");
        vl_buf_puts(&b, extra);
        free(extra);
        snprintf(num, sizeof num, "\nindex %" PRIu64 "\n", index);
        vl_buf_puts(&b, num);
        for (size_t i = 0; i < n; i++) {
            char h[64];
            b64(proof[i], VL_HASH_LEN, h, sizeof h);
            vl_buf_puts(&b, h);
            vl_buf_puts(&b, "\n");
        }
        vl_buf_puts(&b, "\n");
        vl_buf_puts(&b, note);
        text = vl_buf_take(&b, &outlen);
        free(bytes);
        free(note);
        free(line);
        if (!text)
            return vl_send_errorf(req, 500, "exception", "out of memory");
        return vl_send_text(req, 200, "text/plain; charset=utf-8", text, outlen);
    }
    {
        json_t *entry = json_loadb(line, lb.len, 0, NULL);
        size_t b64len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
        char *bytes64 = malloc(b64len);
        json_t *doc;
        if (!entry || !bytes64) {
            json_decref(entry);
            free(bytes64);
            vl_error_set(&err, 500, "exception", NULL, "out of memory");
            goto fail;
        }
        b64((const unsigned char *)bytes, len, bytes64, b64len);
        doc = json_pack("{s:s,s:o,s:s,s:I,s:s,s:s,s:{s:I,s:o},s:s}", "line", line, "entry", entry,
                        "entryHash", hash_hex, "index", (json_int_t)index, "salt", salt_hex,
                        "bytes", bytes64,
                        "inclusionProof", "size", (json_int_t)size, "hashes",
                        hashes_json(proof, n), "checkpoint", note);
        free(bytes64);
        free(bytes);
        free(note);
        free(line);
        return vl_send_json(req, 200, doc);
    }
fail:
    free(bytes);
    free(note);
    free(lb.data);
    ret = vl_send_error(req, &err);
    vl_error_clear(&err);
    return ret;
}
