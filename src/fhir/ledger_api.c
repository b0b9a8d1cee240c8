/*
 * vitalog — fhir/ledger_api.c: the ledger's routes (docs/ledger.md,
 * docs/api.md). Rows of the interaction table; the store does the reading
 * (with the caller's scope, which must cover the ledger) and src/ledger
 * the proofs' mathematics.
 *
 *   GET /ledger/checkpoint                  latest signed checkpoint (text/plain;
 *                                           signs one first if entries are uncovered)
 *   GET /ledger/key                         the current C2SP verifier key (text/plain)
 *   GET /ledger/keys                        every verifier key with the entry from which
 *                                           it signs (application/json)
 *   GET /ledger/entries?start=&end=         entry lines [start, end), NDJSON, <= 1000
 *   GET /ledger/proof/inclusion?index=&size=       RFC 9162 inclusion proof (JSON)
 *   GET /ledger/proof/consistency?first=&second=   RFC 9162 consistency proof (JSON)
 *   GET /ledger/export                      every entry and checkpoint, NDJSON, streamed
 *   GET /ledger/record?ref=Type/id/_history/v      a version's entry, commitment inputs,
 *                                           inclusion proof and checkpoint (JSON)
 *   GET /fhir/{type}/{id}/_history/{vid}/$ledger   the same as a FHIR Parameters resource
 *   ... ?download=tlog-proof                 either of the last two as a C2SP tlog-proof
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fhir_internal.h"

#define ENTRIES_MAX 1000
#define EXPORT_CHUNK 512

/* A whole non-negative number parameter; -1 when missing or malformed. */
static int64_t uparam(vl_fhir_exchange_t *x, const char *name)
{
    const char *v = vl_params_get(&x->params, name);
    char *end;
    unsigned long long n;
    if (!v || *v < '0' || *v > '9') /* no sign, no leading space */
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

static char *b64_new(const void *bin, size_t n)
{
    size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(len);
    if (out)
        b64(bin, n, out, len);
    return out;
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

int vl_h_ledger_checkpoint(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    char *note;
    uint64_t size;
    if (vl_store_ledger_checkpoint(x->f->opts.store, x->scope, 1, &note, &size, &serr) < 0)
        return vl_x_store_error(res, &serr);
    return vl_x_text(res, 200, "text/plain; charset=utf-8", note, strlen(note));
}

int vl_h_ledger_key(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    char vkey[512], line[520];
    if (!(x->scope.flags & VL_SCOPE_LEDGER))
        return vl_x_fail(res, 403, "forbidden", "the ledger is outside the caller's scope");
    if (!x->f->opts.ledger_key || vl_ledger_key_vkey(x->f->opts.ledger_key, vkey, sizeof vkey) < 0)
        return vl_x_fail(res, 404, "not-found", "this server has no ledger key");
    snprintf(line, sizeof line, "%s\n", vkey);
    return vl_x_text(res, 200, "text/plain; charset=utf-8", strdup(line), strlen(line));
}

/* ------------------------------------------------------------------------
 * /ledger/keys
 * ---------------------------------------------------------------------- */

typedef struct keys_ctx {
    vl_ledger_rotation_t *rotations;
    size_t n, cap;
} keys_ctx_t;

static int add_rotation(void *ctx, uint64_t index, const char *vkey)
{
    keys_ctx_t *k = ctx;
    if (vl_grow(&k->rotations, &k->cap, k->n + 1, sizeof *k->rotations) < 0)
        return -1;
    k->rotations[k->n].index = index;
    snprintf(k->rotations[k->n].key, sizeof k->rotations[k->n].key, "%s", vkey);
    k->n++;
    return 0;
}

/* The document of docs/ledger.md 5.1: the log's first key, then each key a
 * rotation entry introduced (read from the store's list of rotations). */
int vl_h_ledger_keys(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    const vl_ledger_key_t *key = x->f->opts.ledger_key;
    const char *first = x->f->opts.ledger_first_vkey;
    char vkey[512], *doc;
    keys_ctx_t k = {NULL, 0, 0};
    size_t len;
    if (!(x->scope.flags & VL_SCOPE_LEDGER))
        return vl_x_fail(res, 403, "forbidden", "the ledger is outside the caller's scope");
    if (!key || vl_ledger_key_vkey(key, vkey, sizeof vkey) < 0)
        return vl_x_fail(res, 404, "not-found", "this server has no ledger key");
    if (vl_store_ledger_rotations(x->f->opts.store, x->scope, add_rotation, &k, &serr) != 0) {
        free(k.rotations);
        if (serr.kind == VL_STORE_OK)
            vl_store_fail(&serr, VL_STORE_FAILED, "out of memory");
        return vl_x_store_error(res, &serr);
    }
    doc = vl_ledger_keys_format(key->name, first ? first : vkey, k.rotations, k.n, &len);
    free(k.rotations);
    if (!doc)
        return vl_x_fail(res, 500, "exception",
                         "the key list is inconsistent (a rotation names a key of another log?)");
    return vl_x_text(res, 200, "application/json", doc, len);
}

/* ------------------------------------------------------------------------
 * Entries, proofs, export
 * ---------------------------------------------------------------------- */

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
        vl_buf_printf(c->b, "{\"checkpoint\":%s}\n", text);
        free(text);
    }
    return c->b->failed ? -1 : 0;
}

int vl_h_ledger_entries(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    int64_t start = uparam(x, "start"), end = uparam(x, "end");
    uint64_t size;
    vl_buf_t b = VL_BUF_INIT(0);
    collect_t c = {&b, 0};
    char *text;
    size_t len;
    if (start < 0 || end < 0 || end <= start)
        return vl_x_fail(res, 400, "invalid", "start and end must be numbers with start < end");
    if (end - start > ENTRIES_MAX)
        return vl_x_fail(res, 400, "too-costly", "at most %d entries per request", ENTRIES_MAX);
    if (vl_store_ledger_size(x->f->opts.store, x->scope, &size, &serr) < 0)
        return vl_x_store_error(res, &serr);
    if ((uint64_t)end > size)
        return vl_x_fail(res, 400, "invalid", "end %lld is past the ledger's %llu entries",
                         (long long)end, (unsigned long long)size);
    if (vl_store_ledger_scan(x->f->opts.store, x->scope, (uint64_t)start, (uint64_t)end,
                             collect_line, &c, &serr) != 0 ||
        b.failed) {
        vl_buf_free(&b);
        if (serr.kind == VL_STORE_OK)
            vl_store_fail(&serr, VL_STORE_FAILED, "out of memory reading entries");
        return vl_x_store_error(res, &serr);
    }
    text = vl_buf_take(&b, &len);
    return vl_x_text(res, 200, "application/x-ndjson", text, len);
}

static int proof_route(vl_fhir_exchange_t *x, vl_fhir_response_t *res, int inclusion)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    int64_t a = uparam(x, inclusion ? "index" : "first");
    int64_t b = uparam(x, inclusion ? "size" : "second");
    unsigned char proof[VL_LEDGER_MAX_PROOF][VL_HASH_LEN];
    size_t n = 0;
    int rc;
    if (a < 0 || b < 0 || (inclusion ? a >= b : (a < 1 || a > b)))
        return vl_x_fail(res, 400, "invalid",
                         inclusion ? "need 0 <= index < size" : "need 1 <= first <= second");
    rc = inclusion ? vl_store_ledger_inclusion(x->f->opts.store, x->scope, (uint64_t)a, (uint64_t)b,
                                               proof, &n, &serr)
                   : vl_store_ledger_consistency(x->f->opts.store, x->scope, (uint64_t)a,
                                                 (uint64_t)b, proof, &n, &serr);
    if (rc < 0)
        return vl_x_store_error(res, &serr);
    vl_x_json(res, 200,
              inclusion ? json_pack("{s:I,s:I,s:o}", "index", (json_int_t)a, "size", (json_int_t)b,
                                    "hashes", hashes_json(proof, n))
                        : json_pack("{s:I,s:I,s:o}", "first", (json_int_t)a, "second",
                                    (json_int_t)b, "hashes", hashes_json(proof, n)));
    res->content_type = "application/json";
    return 0;
}

int vl_h_ledger_inclusion(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return proof_route(x, res, 1);
}

int vl_h_ledger_consistency(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return proof_route(x, res, 0);
}

/* Export: a streamed body that refills a buffer EXPORT_CHUNK entries at a
 * time, up to the size of the checkpoint signed when it started. */
typedef struct export_state {
    vl_store_t *store;
    vl_scope_t scope;
    uint64_t next, size;
    vl_buf_t buf;
    size_t off;
    int failed;
} export_state_t;

static ssize_t export_read(void *cls, char *out, size_t max)
{
    export_state_t *xs = cls;
    size_t n;
    while (xs->off == xs->buf.len) {
        collect_t c = {&xs->buf, 1};
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        uint64_t end;
        if (xs->failed)
            return -1;
        if (xs->next >= xs->size)
            return 0;
        end = xs->next + EXPORT_CHUNK < xs->size ? xs->next + EXPORT_CHUNK : xs->size;
        vl_buf_reset(&xs->buf);
        xs->off = 0;
        if (vl_store_ledger_scan(xs->store, xs->scope, xs->next, end, collect_line, &c, &serr) !=
                0 ||
            xs->buf.failed) {
            vl_logf(VL_LOG_ERROR, "ledger export failed at entry %llu: %s",
                    (unsigned long long)xs->next, serr.message);
            xs->failed = 1;
            return -1;
        }
        xs->next = end;
    }
    n = xs->buf.len - xs->off < max ? xs->buf.len - xs->off : max;
    memcpy(out, xs->buf.data + xs->off, n);
    xs->off += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    export_state_t *xs = cls;
    vl_buf_free(&xs->buf);
    free(xs);
}

int vl_h_ledger_export(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    export_state_t *xs;
    char *note;
    uint64_t size;
    /* a fresh checkpoint covers everything committed; the export ends there */
    if (vl_store_ledger_checkpoint(x->f->opts.store, x->scope, 1, &note, &size, &serr) < 0)
        return vl_x_store_error(res, &serr);
    free(note);
    xs = calloc(1, sizeof *xs);
    if (!xs)
        return vl_x_fail(res, 500, "exception", "out of memory");
    xs->store = x->f->opts.store;
    xs->scope = x->scope; /* flags only: the ledger scope holds no patient list */
    xs->scope.patients = NULL;
    xs->scope.n_patients = 0;
    xs->size = size;
    res->status = 200;
    res->content_type = "application/x-ndjson";
    res->stream = export_read;
    res->stream_free = export_free;
    res->stream_ctx = xs;
    return 0;
}

/* ------------------------------------------------------------------------
 * A record version's ledger proof: $ledger (Parameters) and /ledger/record
 * ---------------------------------------------------------------------- */

typedef struct record_proof {
    uint64_t index, size;
    unsigned char salt[32];
    char *bytes;
    size_t len;
    char *note;
    char *line; /* the entry line */
    size_t line_len;
    unsigned char proof[VL_LEDGER_MAX_PROOF][VL_HASH_LEN];
    size_t n;
} record_proof_t;

static void record_proof_free(record_proof_t *p)
{
    free(p->bytes);
    free(p->note);
    free(p->line);
}

/* Everything about a version's anchor, with a checkpoint that covers it. */
static int record_proof(vl_fhir_exchange_t *x, const char *type, const char *id, int64_t vid,
                        record_proof_t *p, vl_store_err_t *serr)
{
    vl_store_t *st = x->f->opts.store;
    vl_buf_t lb = VL_BUF_INIT(0);
    collect_t c = {&lb, 0};
    vl_store_err_t ignored = VL_STORE_ERR_INIT;
    memset(p, 0, sizeof *p);
    if (vl_store_ledger_record(st, x->scope, type, id, vid, &p->index, p->salt, &p->bytes, &p->len,
                               serr) < 0)
        return -1;
    if (p->len) { /* the stored bytes leave with the proof: account for them */
        vl_record_t rec;
        memset(&rec, 0, sizeof rec);
        snprintf(rec.type, sizeof rec.type, "%s", type);
        snprintf(rec.id, sizeof rec.id, "%s", id);
        rec.version = vid;
        rec.body = p->bytes;
        rec.body_len = p->len;
        vl_x_disclose(x, &rec);
    }
    /* the latest checkpoint usually covers it; only then ask the writer */
    if (vl_store_ledger_checkpoint(st, x->scope, 0, &p->note, &p->size, &ignored) < 0 &&
        ignored.kind != VL_STORE_NOT_FOUND) {
        *serr = ignored;
        return -1;
    }
    if (!p->note || p->index >= p->size) {
        free(p->note);
        p->note = NULL;
        if (vl_store_ledger_checkpoint(st, x->scope, 1, &p->note, &p->size, serr) < 0)
            return -1;
    }
    if (p->index >= p->size)
        return vl_store_fail(serr, VL_STORE_UNAVAILABLE,
                             "no checkpoint covers this entry yet; retry in a second");
    if (vl_store_ledger_scan(st, x->scope, p->index, p->index + 1, collect_line, &c, serr) != 0 ||
        lb.failed || lb.len < 2) {
        vl_buf_free(&lb);
        return vl_store_fail(serr, VL_STORE_FAILED, "the ledger entry could not be read");
    }
    p->line = vl_buf_take(&lb, &p->line_len);
    if (!p->line)
        return vl_store_fail(serr, VL_STORE_FAILED, "out of memory");
    p->line[--p->line_len] = '\0'; /* drop the newline */
    return vl_store_ledger_inclusion(st, x->scope, p->index, p->size, p->proof, &p->n, serr);
}

/* The C2SP tlog-proof@v1 file of a version. */
static int send_tlog_proof(const record_proof_t *p, vl_fhir_response_t *res)
{
    vl_buf_t b = VL_BUF_INIT(0);
    char *extra = b64_new(p->line, p->line_len), *text;
    size_t len;
    if (!extra)
        return vl_x_fail(res, 500, "exception", "out of memory");
    vl_buf_printf(&b, "c2sp.org/tlog-proof@v1\nextra %s\nindex %" PRIu64 "\n", extra, p->index);
    free(extra);
    for (size_t i = 0; i < p->n; i++) {
        char h[64];
        b64(p->proof[i], VL_HASH_LEN, h, sizeof h);
        vl_buf_printf(&b, "%s\n", h);
    }
    vl_buf_puts(&b, "\n");
    vl_buf_puts(&b, p->note);
    text = vl_buf_take(&b, &len);
    return vl_x_text(res, 200, "text/plain; charset=utf-8", text, len);
}

static int record_route(vl_fhir_exchange_t *x, vl_fhir_response_t *res, const char *type,
                        const char *id, int64_t vid, int as_parameters)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    const char *download = vl_params_get(&x->params, "download");
    record_proof_t p;
    unsigned char hash[VL_HASH_LEN];
    char salt_hex[65], hash_hex[65], *bytes64;
    json_t *doc;
    if (download && strcmp(download, "tlog-proof") != 0)
        return vl_x_fail(res, 400, "invalid", "download must be tlog-proof");
    if (record_proof(x, type, id, vid, &p, &serr) < 0) {
        record_proof_free(&p);
        return vl_x_store_error(res, &serr);
    }
    if (download) {
        send_tlog_proof(&p, res);
        record_proof_free(&p);
        return 0;
    }
    vl_ledger_leaf_hash(p.line, p.line_len, hash);
    sodium_bin2hex(salt_hex, sizeof salt_hex, p.salt, 32);
    sodium_bin2hex(hash_hex, sizeof hash_hex, hash, VL_HASH_LEN);
    bytes64 = b64_new(p.bytes, p.len);
    if (!bytes64) {
        record_proof_free(&p);
        return vl_x_fail(res, 500, "exception", "out of memory");
    }
    if (as_parameters) {
        /* R4 has no 64-bit integer: sizes past 2^31-1 go as decimals */
        json_t *idx =
            p.index <= INT32_MAX
                ? json_pack("{s:s,s:I}", "name", "index", "valueInteger", (json_int_t)p.index)
                : json_pack("{s:s,s:o}", "name", "index", "valueDecimal", vl_json_number("0"));
        json_t *proof = json_pack("{s:s,s:[]}", "name", "inclusionProof", "part");
        json_t *parts = json_object_get(proof, "part");
        char num[32];
        if (p.index > INT32_MAX) {
            snprintf(num, sizeof num, "%" PRIu64, p.index);
            json_object_set_new(idx, "valueDecimal", vl_json_number(num));
        }
        snprintf(num, sizeof num, "%" PRIu64, p.size);
        json_array_append_new(
            parts,
            p.size <= INT32_MAX
                ? json_pack("{s:s,s:I}", "name", "size", "valueInteger", (json_int_t)p.size)
                : json_pack("{s:s,s:o}", "name", "size", "valueDecimal", vl_json_number(num)));
        for (size_t i = 0; i < p.n; i++) {
            char h[64];
            b64(p.proof[i], VL_HASH_LEN, h, sizeof h);
            json_array_append_new(parts,
                                  json_pack("{s:s,s:s}", "name", "hash", "valueBase64Binary", h));
        }
        doc = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s},o,{s:s,s:s},{s:s,s:s},o,{s:s,s:s}]}",
                        "resourceType", "Parameters", "parameter", "name", "entry", "valueString",
                        p.line, "name", "entryHash", "valueString", hash_hex, idx, "name", "salt",
                        "valueString", salt_hex, "name", "bytes", "valueBase64Binary", bytes64,
                        proof, "name", "checkpoint", "valueString", p.note);
    } else {
        json_t *entry = json_loadb(p.line, p.line_len, 0, NULL);
        doc = entry ? json_pack("{s:s,s:o,s:s,s:I,s:s,s:s,s:{s:I,s:o},s:s}", "line", p.line,
                                "entry", entry, "entryHash", hash_hex, "index", (json_int_t)p.index,
                                "salt", salt_hex, "bytes", bytes64, "inclusionProof", "size",
                                (json_int_t)p.size, "hashes", hashes_json(p.proof, p.n),
                                "checkpoint", p.note)
                    : NULL;
    }
    free(bytes64);
    record_proof_free(&p);
    vl_x_json(res, 200, doc);
    if (!as_parameters)
        res->content_type = "application/json";
    return 0;
}

int vl_h_ledger_record(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    if (!(x->row->flags & VL_ROW_SYSTEM)) /* $ledger under /fhir: a Parameters resource */
        return record_route(x, res, x->type->name, x->id, x->vid, 1);
    {
        /* /ledger/record?ref=Type/id/_history/v: the plain JSON */
        const char *ref = vl_params_get(&x->params, "ref");
        char type[65], id[65];
        long long vid;
        int n = 0;
        if (!ref ||
            sscanf(ref, "%64[A-Za-z]/%64[A-Za-z0-9.-]/_history/%lld%n", type, id, &vid, &n) != 3 ||
            ref[n] != '\0' || vid < 1 || !vl_fhir_id_valid(id))
            return vl_x_fail(res, 400, "invalid",
                             "ref must name a version: Type/id/_history/version");
        return record_route(x, res, type, id, vid, 0);
    }
}
