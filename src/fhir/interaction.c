/*
 * vitalog — fhir/interaction.c: the interaction layer's entry, and the one
 * table of interactions and operations.
 *
 * DESIGN NOTES
 *
 * 1. vl_routes[] is the single source of truth for what the server
 *    answers: routing (below), the access description handed to the policy,
 *    and the CapabilityStatement (capability.c) all read it. A new
 *    operation ($lastn, $stats, $ingest, ...) is one row and one handler.
 *
 * 2. Routing. A path is split into segments and matched against every
 *    row's pattern: literals match themselves, {type}, {id} and {vid}
 *    capture one segment. The most specific match wins (most literal
 *    segments); among the rows of that pattern the method picks one (HEAD
 *    is GET), otherwise 405 with Allow. Captures are then validated: a
 *    {type} must be served (404), an {id} a FHIR id (400), a {vid} a
 *    version (400). A capture that starts with '$' names an operation that
 *    no row has at that level: 404 "unknown operation".
 *
 * 3. Entry, in this order for every request: route; identify the caller
 *    (policy; bad credentials are kept and answered 401 unless the route
 *    is public); parse a FHIR body (415, 400); authorize once with the
 *    full description (interaction, type, id, compartment, operation,
 *    write, route), which yields the access scope (401, 403); run the
 *    handler. An anonymous caller is authorized before the body is parsed,
 *    so that a 401 comes first. Bundle
 *    entries are sub-requests: the Bundle itself is authorized here as
 *    "batch" or "transaction", and each entry again with its own
 *    description (bundle.c).
 *
 * 4. Asynchronous writes: a handler fills x->unit and calls vl_x_submit();
 *    the store calls unit_done() on its writer thread after the commit,
 *    which only notifies the transport; the transport calls
 *    vl_fhir_resume() on its own thread, which runs x->finish.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fhir_internal.h"

/* ------------------------------------------------------------------------
 * Small handlers: metadata, health, metrics
 * ---------------------------------------------------------------------- */

static int h_capabilities(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return vl_x_json(res, 200, vl_fhir_capability(vl_x_fhir_base(x), &x->f->opts));
}

/* GET /.well-known/smart-configuration (SMART App Launch 2.0): what this
 * resource server accepts of the identity provider's tokens. 404 when no
 * identity provider is configured (then SMART is not supported). */
static int h_smart_configuration(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const vl_fhir_options_t *o = &x->f->opts;
    json_t *doc;
    if (!o->smart_issuer)
        return vl_x_fail(res, 404, "not-supported",
                         "this server accepts no identity provider's tokens (serve --jwks)");
    doc = json_pack("{s:s,s:[s,s,s,s,s,s],s:[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s],s:[s],s:[s]}",
                    "issuer", o->smart_issuer, "capabilities", "context-standalone-patient",
                    "context-ehr-patient", "permission-patient", "permission-user", "permission-v1",
                    "permission-v2", "scopes_supported", "openid", "fhirUser", "launch/patient",
                    "patient/*.rs", "patient/*.cruds", "patient/*.read", "patient/*.write",
                    "patient/*.*", "user/*.rs", "user/*.cruds", "user/*.read", "user/*.write",
                    "user/*.*", "system/*.rs", "system/*.cruds", "system/*.read",
                    "response_types_supported", "code", "code_challenge_methods_supported", "S256");
    if (doc && o->smart_authorize)
        json_object_set_new(doc, "authorization_endpoint", json_string(o->smart_authorize));
    if (doc && o->smart_token)
        json_object_set_new(doc, "token_endpoint", json_string(o->smart_token));
    return vl_x_json(res, 200, doc);
}

static int h_healthz(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    (void)x;
    return vl_x_text(res, 200, "application/json", strdup("{\"status\":\"ok\"}"), 15);
}

static int h_readyz(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    int ok = vl_store_ready(x->f->opts.store) == 0;
    const char *body = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"unavailable\"}";
    return vl_x_text(res, ok ? 200 : 503, "application/json", strdup(body), strlen(body));
}

/* One Prometheus metric: HELP and TYPE lines, then the sample. */
static void metric(vl_buf_t *b, const char *name, const char *type, const char *help,
                   unsigned long long value)
{
    vl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

static int h_metrics(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_buf_t b = VL_BUF_INIT(0);
    vl_store_stats_t st;
    char *text;
    size_t len;
    if (x->f->opts.metrics)
        x->f->opts.metrics(x->f->opts.metrics_ctx, &b);
    vl_store_stats(x->f->opts.store, &st);
    metric(&b, "vitalog_store_commits_total", "counter", "Write transactions committed.",
           st.commits);
    metric(&b, "vitalog_store_writes_total", "counter",
           "Write units completed (ok or failed); a transaction Bundle is one unit.", st.units);
    metric(&b, "vitalog_store_write_failures_total", "counter", "Write units that failed.",
           st.unit_failures);
    metric(&b, "vitalog_store_versions_total", "counter", "Record versions committed.",
           st.versions);
    metric(&b, "vitalog_store_queue_depth", "gauge", "Write units waiting for the writer.",
           st.queue_depth);
    text = vl_buf_take(&b, &len);
    if (!text)
        return vl_x_fail(res, 500, "exception", "out of memory");
    return vl_x_text(res, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* ------------------------------------------------------------------------
 * The table
 * ---------------------------------------------------------------------- */

#define W VL_ROW_WRITE
#define FB VL_ROW_FHIR_BODY
#define SYS VL_ROW_SYSTEM

const vl_route_t vl_routes[] = {
    {"/fhir/metadata", "GET", "capabilities", NULL, 0, h_capabilities},
    {"/.well-known/smart-configuration", "GET", "capabilities", NULL, VL_ROW_SYSTEM,
     h_smart_configuration},
    {"/fhir", "POST", "transaction", NULL, W | FB, vl_h_bundle},
    {"/fhir/{type}", "GET", "search-type", NULL, 0, vl_h_search},
    {"/fhir/{type}", "POST", "create", NULL, W | FB, vl_h_create},
    {"/fhir/{type}", "PUT", "update", NULL, W | FB, vl_h_update},
    {"/fhir/{type}", "DELETE", "delete", NULL, W, vl_h_delete},
    {"/fhir/{type}/_search", "GET", "search-type", NULL, 0, vl_h_search},
    {"/fhir/{type}/_search", "POST", "search-type", NULL, VL_ROW_FORM_BODY, vl_h_search},
    {"/fhir/{type}/_history", "GET", "history-type", NULL, 0, vl_h_history},
    {"/fhir/{type}/{id}", "GET", "read", NULL, 0, vl_h_read},
    {"/fhir/{type}/{id}", "PUT", "update", NULL, W | FB, vl_h_update},
    {"/fhir/{type}/{id}", "DELETE", "delete", NULL, W, vl_h_delete},
    {"/fhir/{type}/{id}", "PATCH", "patch", NULL, W, vl_h_patch},
    {"/fhir/{type}/{id}/_history", "GET", "history-instance", NULL, 0, vl_h_history},
    {"/fhir/{type}/{id}/_history/{vid}", "GET", "vread", NULL, 0, vl_h_vread},
    {"/fhir/{type}/{id}/_history/{vid}/$ledger", "GET", "operation", "$ledger", 0,
     vl_h_ledger_record},
    /* read-side operations: searches as the policy sees them */
    {"/fhir/Observation/$lastn", "GET", "search-type", "$lastn", 0, vl_h_lastn},
    {"/fhir/Observation/$lastn", "POST", "search-type", "$lastn", VL_ROW_FORM_BODY, vl_h_lastn},
    {"/fhir/Observation/$stats", "GET", "search-type", "$stats", 0, vl_h_stats},
    {"/fhir/Observation/$stats", "POST", "search-type", "$stats", VL_ROW_FORM_BODY, vl_h_stats},
    {"/fhir/Patient/{id}/$everything", "GET", "search-type", "$everything", 0, vl_h_everything},
    /* validation: nothing is read or stored */
    {"/fhir/{type}/$validate", "POST", "validate", "$validate", FB, vl_h_validate},
    /* Bulk Data Access v2: kick-off, status (DELETE cancels), files */
    {"/fhir/$export", "GET", "search-type", "$export", 0, vl_h_export},
    {"/fhir/Patient/$export", "GET", "search-type", "$export", 0, vl_h_export},
    {"/fhir/Patient/{id}/$export", "GET", "search-type", "$export", 0, vl_h_export},
    {"/fhir/_export/{id}", "GET", "export", NULL, 0, vl_h_export_status},
    {"/fhir/_export/{id}", "DELETE", "export", NULL, 0, vl_h_export_cancel},
    {"/fhir/_export/{id}/{vid}", "GET", "export", NULL, 0, vl_h_export_file},
    /* a create of Observations (and their Devices) as the policy sees it */
    {"/fhir/Observation/$ingest", "POST", "create", "$ingest", W | VL_ROW_STREAM_BODY, vl_h_ingest},
    {"/ledger/checkpoint", "GET", "ledger", NULL, SYS, vl_h_ledger_checkpoint},
    {"/ledger/key", "GET", "ledger", NULL, SYS, vl_h_ledger_key},
    {"/ledger/keys", "GET", "ledger", NULL, SYS, vl_h_ledger_keys},
    {"/ledger/entries", "GET", "ledger", NULL, SYS, vl_h_ledger_entries},
    {"/ledger/proof/inclusion", "GET", "ledger", NULL, SYS, vl_h_ledger_inclusion},
    {"/ledger/proof/consistency", "GET", "ledger", NULL, SYS, vl_h_ledger_consistency},
    {"/ledger/export", "GET", "ledger", NULL, SYS, vl_h_ledger_export},
    {"/ledger/record", "GET", "ledger", NULL, SYS, vl_h_ledger_record},
    {"/auth/tokens", "GET", "tokens", NULL, SYS, vl_h_tokens_list},
    {"/auth/tokens", "POST", "tokens", NULL, SYS | W | FB, vl_h_tokens_create},
    {"/auth/tokens/{id}", "DELETE", "tokens", NULL, SYS | W, vl_h_tokens_revoke},
    {"/healthz", "GET", "health", NULL, SYS, h_healthz},
    {"/readyz", "GET", "health", NULL, SYS, h_readyz},
    {"/metrics", "GET", "metrics", NULL, SYS, h_metrics},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

#undef W
#undef FB
#undef SYS

/* ------------------------------------------------------------------------
 * Answers
 * ---------------------------------------------------------------------- */

int vl_x_json(vl_fhir_response_t *res, int status, json_t *doc)
{
    char *text = doc ? vl_json_dump(doc, &res->body_len) : NULL;
    json_decref(doc);
    free(res->body);
    res->body = text;
    res->status = status;
    if (!text) {
        static const char oom[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                                  "\"fatal\",\"code\":\"exception\",\"diagnostics\":\"out of "
                                  "memory\"}]}";
        res->status = 500;
        res->body = strdup(oom);
        res->body_len = res->body ? strlen(oom) : 0;
    }
    return 0;
}

int vl_x_text(vl_fhir_response_t *res, int status, const char *ctype, char *body, size_t len)
{
    if (!body)
        return vl_x_fail(res, 500, "exception", "out of memory");
    free(res->body);
    res->status = status;
    res->content_type = ctype;
    res->body = body;
    res->body_len = len;
    return 0;
}

void vl_fhir_response_error(vl_fhir_response_t *res, const vl_error_t *err)
{
    res->content_type = NULL;
    vl_x_json(res, err->status ? err->status : 500, vl_error_outcome(err));
}

int vl_x_error(vl_fhir_response_t *res, vl_error_t *err)
{
    vl_fhir_response_error(res, err);
    vl_error_clear(err);
    return 0;
}

int vl_x_fail(vl_fhir_response_t *res, int status, const char *code, const char *fmt, ...)
{
    vl_error_t err = VL_ERROR_INIT;
    va_list ap;
    va_start(ap, fmt);
    vl_error_addv(&err, status, "error", code, NULL, fmt, ap);
    va_end(ap);
    return vl_x_error(res, &err);
}

int vl_fhir_store_error(const vl_store_err_t *serr, vl_error_t *err)
{
    static const struct {
        vl_store_kind_t kind;
        int status;
        const char *code;
    } map[] = {
        {VL_STORE_NOT_FOUND, 404, "not-found"},   {VL_STORE_CONFLICT, 409, "conflict"},
        {VL_STORE_INVALID, 400, "invalid"},       {VL_STORE_DENIED, 403, "forbidden"},
        {VL_STORE_TOO_COSTLY, 400, "too-costly"}, {VL_STORE_UNAVAILABLE, 503, "transient"},
        {VL_STORE_ABORTED, 500, "exception"},     {VL_STORE_FAILED, 500, "exception"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].kind == serr->kind)
            return vl_error_set(err, map[i].status, map[i].code, NULL, "%s",
                                serr->message[0] ? serr->message : vl_store_kind_name(serr->kind));
    return vl_error_set(err, 500, "exception", NULL, "storage error");
}

int vl_x_store_error(vl_fhir_response_t *res, const vl_store_err_t *serr)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_fhir_store_error(serr, &err);
    return vl_x_error(res, &err);
}

const char *vl_x_fhir_base(vl_fhir_exchange_t *x)
{
    size_t n;
    char *s;
    if (x->fhir_base) /* once per exchange: every entry of a Bundle asks */
        return x->fhir_base;
    n = strlen(x->req->base_url) + 6;
    s = vl_arena_alloc(x->arena, n);
    if (!s)
        return "/fhir";
    snprintf(s, n, "%s/fhir", x->req->base_url);
    x->fhir_base = s;
    return s;
}

int64_t vl_fhir_parse_version(const char *s)
{
    char *end;
    long long v;
    if (!s)
        return 0;
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

void vl_fhir_parse_prefer(const char *p, int *ret, int *lenient)
{
    *ret = VL_PREFER_REPRESENTATION;
    if (lenient)
        *lenient = 0;
    if (!p)
        return;
    if (strstr(p, "return=minimal"))
        *ret = VL_PREFER_MINIMAL;
    else if (strstr(p, "return=OperationOutcome"))
        *ret = VL_PREFER_OUTCOME;
    if (lenient && strstr(p, "handling=lenient"))
        *lenient = 1;
}

/* ------------------------------------------------------------------------
 * Routing
 * ---------------------------------------------------------------------- */

#define MAX_SEGMENTS 8

typedef struct match {
    const vl_route_t *row; /* the row of the best pattern with this method, or NULL */
    const char *pattern;   /* the best pattern */
    char allow[64];        /* methods of the best pattern */
    const char *type, *id, *vid, *op_capture; /* captured segments */
} match_t;

static int split(char *path, char **seg, int max)
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

/* Literal segments of a pattern that matches `seg`, or -1. */
static int pattern_match(const char *pattern, char **seg, int n, match_t *cap)
{
    char buf[128], *pseg[MAX_SEGMENTS];
    int pn, literals = 0;
    snprintf(buf, sizeof buf, "%s", pattern);
    pn = split(buf, pseg, MAX_SEGMENTS);
    if (pn != n)
        return -1;
    for (int i = 0; i < n; i++) {
        if (pseg[i][0] == '{') {
            if (!seg[i][0])
                return -1;
            if (!strcmp(pseg[i], "{type}"))
                cap->type = seg[i];
            else if (!strcmp(pseg[i], "{id}"))
                cap->id = seg[i];
            else
                cap->vid = seg[i];
            if (seg[i][0] == '$' && !cap->op_capture)
                cap->op_capture = seg[i];
        } else if (strcmp(pseg[i], seg[i]) != 0) {
            return -1;
        } else {
            literals++;
            /* a type named in the pattern ("/fhir/Observation/$ingest") is
             * the request's type, as if captured */
            if (i == 1 && !strcmp(pseg[0], "fhir") && vl_fhir_type_find(pseg[i]))
                cap->type = seg[i];
        }
    }
    return literals;
}

static int method_is(const char *row_method, const char *method)
{
    return !strcmp(row_method, method) || (!strcmp(method, "HEAD") && !strcmp(row_method, "GET"));
}

/* Finds the best pattern for the path segments, with its captures
 * (pointing into seg). 0 if some pattern matched, -1 if none did. */
static int route(char **seg, int n, match_t *m)
{
    int best = -1;
    memset(m, 0, sizeof *m);
    for (const vl_route_t *r = vl_routes; r->pattern; r++) {
        match_t c;
        int lit;
        memset(&c, 0, sizeof c);
        lit = pattern_match(r->pattern, seg, n, &c);
        if (lit > best) {
            best = lit;
            *m = c;
            m->pattern = r->pattern;
        }
    }
    return best < 0 ? -1 : 0;
}

/* The bit of vl_fhir_type_t.interactions a row needs (0: none). */
static unsigned interaction_bit(const char *code)
{
    static const struct {
        const char *code;
        unsigned bit;
    } map[] = {
        {"read", VL_INT_READ},
        {"vread", VL_INT_VREAD},
        {"update", VL_INT_UPDATE},
        {"patch", VL_INT_UPDATE},
        {"delete", VL_INT_DELETE},
        {"history-instance", VL_INT_HISTORY_INSTANCE},
        {"history-type", VL_INT_HISTORY_TYPE},
        {"create", VL_INT_CREATE},
        {"search-type", VL_INT_SEARCH},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].code, code))
            return map[i].bit;
    return 0;
}

/* Among the rows of the matched pattern that the type (if any) supports:
 * the one for `method` (HEAD is GET) and the Allow list of all of them. */
static void pick_row(match_t *m, const char *method, const vl_fhir_type_t *t)
{
    for (const vl_route_t *r = vl_routes; r->pattern; r++) {
        unsigned bit = interaction_bit(r->interaction);
        if (strcmp(r->pattern, m->pattern) != 0 || (t && bit && !(t->interactions & bit)))
            continue;
        if (!strstr(m->allow, r->method)) {
            size_t len = strlen(m->allow);
            snprintf(m->allow + len, sizeof m->allow - len, "%s%s%s", len ? ", " : "", r->method,
                     strcmp(r->method, "GET") ? "" : ", HEAD");
        }
        if (!m->row && method_is(r->method, method))
            m->row = r;
    }
}

/* Operations that exist, for the "unknown operation" message. */
static void known_operations(char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (const vl_route_t *r = vl_routes; r->pattern; r++)
        if (r->operation && len < n)
            len += (size_t)snprintf(out + len, n - len, "%s%s (%s)", len ? ", " : "", r->operation,
                                    r->pattern);
    if (!len)
        snprintf(out, n, "none");
}

/* Routes x->req: sets x->row and the captures, or answers. 0 routed. */
static int route_request(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const vl_fhir_request_t *req = x->req;
    match_t m;
    char *copy = vl_arena_strdup(x->arena, req->path), *seg[MAX_SEGMENTS];
    int n;
    if (!copy)
        return vl_x_fail(res, 500, "exception", "out of memory");
    /* the captures point into the copy, which lives with the exchange */
    n = split(copy, seg, MAX_SEGMENTS);
    if (n < 0 || route(seg, n, &m) < 0) {
        const char *last = strrchr(req->path, '/');
        res->route = "unmatched";
        if (last && last[1] == '$') {
            char known[512];
            known_operations(known, sizeof known);
            return vl_x_fail(res, 404, "not-supported",
                             "unknown operation '%.64s' here; this server's operations: %s",
                             last + 1, known);
        }
        if (!strncmp(req->path, "/fhir/", 6) || !strcmp(req->path, "/fhir"))
            return vl_x_fail(res, 404, "not-found", "no such path under /fhir");
        return vl_x_fail(res, 404, "not-found", "no such path; the FHIR API is under /fhir");
    }
    res->route = m.pattern;
    if (m.op_capture) {
        char known[512];
        known_operations(known, sizeof known);
        return vl_x_fail(res, 404, "not-supported",
                         "unknown operation '%.64s' (%.200s); this server's operations: %s",
                         m.op_capture, req->path, known);
    }
    if (m.type) {
        x->type = vl_fhir_type_find(m.type);
        if (!x->type) {
            if (vl_fhir_is_r4_type(m.type))
                return vl_x_fail(res, 404, "not-supported",
                                 "resource type %s is not served by this server", m.type);
            return vl_x_fail(res, 404, "not-found", "'%.64s' is not a FHIR resource type", m.type);
        }
    }
    pick_row(&m, req->method, x->type);
    if (!m.row) {
        char *allow = vl_arena_strdup(x->arena, m.allow);
        vl_x_fail(res, 405, "not-supported", "%s is not supported on %s (allowed: %s)", req->method,
                  m.pattern, m.allow);
        res->allow = allow ? allow : "GET";
        return 405;
    }
    if (m.id) {
        if (!vl_fhir_id_valid(m.id))
            return vl_x_fail(res, 400, "invalid",
                             "'%.64s' is not a valid FHIR id (1-64 of A-Z a-z 0-9 - ., not "
                             "\".\" or \"..\")",
                             m.id);
        x->id = m.id;
    }
    if (m.vid) {
        x->vid = vl_fhir_parse_version(m.vid);
        if (!x->vid || strchr(m.vid, '"'))
            return vl_x_fail(res, 400, "invalid", "'%.32s' is not a version id", m.vid);
    }
    x->row = m.row;
    return -1; /* routed */
}

/* ------------------------------------------------------------------------
 * Entry
 * ---------------------------------------------------------------------- */

vl_fhir_t *vl_fhir_new(const vl_fhir_options_t *opts)
{
    vl_fhir_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (!opts->policy) { /* default deny: there is no implicit policy */
        free(f);
        return NULL;
    }
    f->opts = *opts;
    if (!f->opts.max_depth)
        f->opts.max_depth = 64;
    if (!f->opts.max_bundle_entries)
        f->opts.max_bundle_entries = VL_FHIR_DEFAULT_MAX_ENTRIES;
    if (!f->opts.max_page_bytes)
        f->opts.max_page_bytes = VL_FHIR_DEFAULT_PAGE_BYTES;
    vl_cursor_key_init(f);
    return f;
}

void vl_fhir_free(vl_fhir_t *f)
{
    if (!f)
        return;
    vl_export_shutdown(f);
    sodium_memzero(f->cursor_key, sizeof f->cursor_key);
    free(f);
}

static int content_type_is(const char *ct, const char *const *types)
{
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

/* For FHIR_BODY rows: the Content-Type, then the JSON (an object). */
static int parse_body(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    static const char *const json_types[] = {"application/fhir+json", "application/json",
                                             "application/json+fhir", NULL};
    const vl_fhir_request_t *req = x->req;
    vl_json_limits_t lim = {x->f->opts.max_depth};
    vl_error_t err = VL_ERROR_INIT;
    if (!content_type_is(req->content_type, json_types)) {
        if (req->content_type && strstr(req->content_type, "xml"))
            return vl_x_fail(res, 415, "not-supported",
                             "XML is not supported; send application/fhir+json");
        return vl_x_fail(res, 415, "not-supported",
                         "Content-Type must be application/fhir+json or application/json%s%.100s",
                         req->content_type ? ", not " : "",
                         req->content_type ? req->content_type : "");
    }
    if (!req->body_len)
        return vl_x_fail(res, 400, "required", "the request has no body");
    x->body = vl_json_parse(req->body, req->body_len, &lim, &err);
    if (!x->body)
        return vl_x_error(res, &err);
    if (!json_is_object(x->body))
        return vl_x_fail(res, 400, "structure", "the body must be a JSON object");
    return -1; /* parsed */
}

/* For FORM_BODY rows: the form's parameters join the query's. */
static int parse_form(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    static const char *const form[] = {"application/x-www-form-urlencoded", NULL};
    static const char *const fhir_json[] = {"application/fhir+json", "application/json",
                                            "application/json+fhir", NULL};
    if (x->row->operation && content_type_is(x->req->content_type, fhir_json))
        return -1; /* an operation's Parameters resource: its handler reads the body */
    if (!content_type_is(x->req->content_type, form))
        return vl_x_fail(res, 415, "not-supported", "%s takes application/x-www-form-urlencoded%s",
                         x->row->operation ? x->row->operation : "_search",
                         x->row->operation ? " or a FHIR JSON Parameters resource" : "");
    if (x->req->body_len && vl_params_parse_form(&x->params, x->req->body, x->req->body_len) < 0)
        return vl_x_fail(res, 400, "invalid", "malformed form body");
    return -1;
}

/* The compartment a request is confined to, if any (see vl_access_t). */
static const char *compartment(vl_fhir_exchange_t *x)
{
    char *c;
    if (!x->type || strcmp(x->type->name, "Patient") != 0 || !x->id)
        return NULL;
    c = vl_arena_alloc(x->arena, strlen(x->id) + 9);
    if (c)
        sprintf(c, "Patient/%s", x->id);
    return c;
}

/* WWW-Authenticate of a 401 (RFC 6750 section 3): the bare challenge when
 * no credentials came, invalid_token with a description when they did. */
static void challenge(vl_fhir_response_t *res, const vl_error_t *err, int had_credentials)
{
    char desc[160];
    size_t n = 0;
    const char *msg = vl_error_message(err);
    if (!had_credentials) {
        snprintf(res->www_authenticate, sizeof res->www_authenticate, "Bearer realm=\"vitalog\"");
        return;
    }
    /* error_description: %x20-21 / %x23-5B / %x5D-7E only */
    for (; msg && *msg && n + 1 < sizeof desc; msg++)
        if (*msg >= 0x20 && *msg <= 0x7e && *msg != '"' && *msg != '\\')
            desc[n++] = *msg;
    desc[n] = '\0';
    snprintf(res->www_authenticate, sizeof res->www_authenticate,
             "Bearer realm=\"vitalog\", error=\"invalid_token\", error_description=\"%s\"", desc);
}

/* Whether the first issue of err has this code (a scope refusal is the
 * policy's "security"). */
static int first_code_is(const vl_error_t *err, const char *code)
{
    const char *c = json_string_value(json_object_get(json_array_get(err->issues, 0), "code"));
    return c && !strcmp(c, code);
}

static int authorize(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const vl_policy_t *p = x->f->opts.policy;
    vl_error_t err = VL_ERROR_INIT;
    vl_access_t what = {
        x->row->interaction, x->type ? x->type->name : NULL,      x->id,          compartment(x),
        x->row->operation,   (x->row->flags & VL_ROW_WRITE) != 0, x->row->pattern};
    if (!strcmp(what.interaction, "transaction") && x->body) {
        const char *bt = json_string_value(json_object_get(x->body, "type"));
        if (bt && !strcmp(bt, "batch"))
            what.interaction = "batch";
    }
    if (p->authorize(p->ctx, &x->who, &what, x->arena, &x->scope, &err) < 0) {
        if (!err.status)
            vl_error_set(&err, 403, "forbidden", NULL, "not permitted");
        memset(&x->scope, 0, sizeof x->scope);
        if (err.status == 401 && x->login_failed.status) {
            /* the credentials given were bad: say that, not "none given" */
            vl_error_clear(&err);
            err = x->login_failed;
            x->login_failed = (vl_error_t)VL_ERROR_INIT;
        }
        if (err.status == 401)
            challenge(res, &err, x->req->authorization != NULL);
        else if (err.status == 403 && x->who.scoped && first_code_is(&err, "security"))
            snprintf(res->www_authenticate, sizeof res->www_authenticate,
                     "Bearer realm=\"vitalog\", error=\"insufficient_scope\"");
        return vl_x_error(res, &err);
    }
    return -1;
}

int vl_fhir_handle(vl_fhir_t *f, const vl_fhir_request_t *req, vl_fhir_notify_fn notify, void *arg,
                   vl_fhir_exchange_t **out, vl_fhir_response_t *res)
{
    vl_fhir_exchange_t *x = calloc(1, sizeof *x);
    const vl_policy_t *p = f->opts.policy;
    vl_error_t err = VL_ERROR_INIT;
    int rc, anonymous;
    memset(res, 0, sizeof *res);
    res->route = "unmatched";
    *out = x;
    if (!x || !(x->arena = vl_arena_new())) {
        vl_x_fail(res, 500, "exception", "out of memory");
        return 0;
    }
    x->f = f;
    x->req = req;
    x->notify = notify;
    x->notify_arg = arg;
    vl_params_init(&x->params);
    for (size_t i = 0; req->params && i < req->params->n; i++)
        if (vl_params_add(&x->params, req->params->items[i].name, req->params->items[i].value) <
            0) {
            vl_x_fail(res, 500, "exception", "out of memory");
            return 0;
        }
    vl_fhir_parse_prefer(req->prefer, &x->prefer, &x->lenient);

    if (route_request(x, res) >= 0)
        goto done;
    if (p->identify(p->ctx, req->authorization, &x->who, &err) < 0) {
        if (err.status != 401 && err.status) { /* the token store failed */
            vl_x_error(res, &err);
            goto done;
        }
        if (!err.status)
            vl_error_set(&err, 401, "login", NULL, "the credentials are not valid");
        /* public routes answer anyway; the others get this 401 (authorize) */
        x->login_failed = err;
        memset(&x->who, 0, sizeof x->who);
        x->who.role = VL_ROLE_ANONYMOUS;
    }
    /* an anonymous caller is decided before its body is read (no decision
     * for anonymous depends on it): a 401 comes before any 400 or 415 */
    anonymous = x->who.role == VL_ROLE_ANONYMOUS;
    if (anonymous && authorize(x, res) >= 0)
        goto done;
    if ((x->row->flags & VL_ROW_FHIR_BODY) && parse_body(x, res) >= 0)
        goto done;
    if ((x->row->flags & VL_ROW_FORM_BODY) && parse_form(x, res) >= 0)
        goto done;
    if (!anonymous && authorize(x, res) >= 0)
        goto done;
    if (req->body_streamed && !(x->row->flags & VL_ROW_STREAM_BODY)) {
        vl_x_fail(res, 500, "exception", "a streamed body for a route that takes none");
        goto done;
    }
    rc = x->row->handler(x, res);
    if (rc == 1 || rc == 2)
        return rc;
    /* the accounting of disclosures: the answer leaves only once recorded */
    if ((res->status < 400 || x->disclose_errors) && vl_audit_needed(x))
        return vl_audit_submit(x, res);
done:
    /* outside /fhir every JSON answer, errors included, is plain JSON */
    if (!res->content_type && strncmp(req->path, "/fhir", 5) != 0)
        res->content_type = "application/json";
    return 0;
}

int vl_fhir_streams_body(const char *method, const char *path)
{
    char copy[256], *seg[MAX_SEGMENTS];
    int n;
    match_t m;
    if (!method || !path || strlen(path) >= sizeof copy)
        return 0;
    snprintf(copy, sizeof copy, "%s", path);
    n = split(copy, seg, MAX_SEGMENTS);
    if (n < 0 || route(seg, n, &m) < 0)
        return 0;
    for (const vl_route_t *r = vl_routes; r->pattern; r++)
        if (!strcmp(r->pattern, m.pattern) && method_is(r->method, method))
            return (r->flags & VL_ROW_STREAM_BODY) != 0;
    return 0;
}

int vl_fhir_feed(vl_fhir_exchange_t *x, const char *data, size_t len, vl_fhir_response_t *res)
{
    if (!data || !len)
        memset(res, 0, sizeof *res);
    if (!x || !x->feed) {
        if (!data || !len)
            vl_x_fail(res, 500, "exception", "no streamed body was expected");
        return 0;
    }
    if (!data || !len)
        res->route = x->row ? x->row->pattern : "unmatched";
    return x->feed(x, data, len, res);
}

/* ------------------------------------------------------------------------
 * Asynchronous completion
 * ---------------------------------------------------------------------- */

static void unit_done(vl_store_unit_t *u, void *arg)
{
    vl_fhir_exchange_t *x = arg;
    (void)u;
    x->notify(x->notify_arg); /* last: the transport may resume and free x at once */
}

int vl_x_submit(vl_fhir_exchange_t *x, vl_fhir_response_t *res,
                void (*finish)(vl_fhir_exchange_t *x, vl_fhir_response_t *res))
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    x->finish = finish;
    x->unit.done = unit_done;
    x->unit.done_arg = x;
    if (vl_store_submit(x->f->opts.store, &x->unit, &serr) < 0)
        return vl_x_store_error(res, &serr);
    return 1;
}

void vl_fhir_resume(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    memset(res, 0, sizeof *res);
    res->route = x->row ? x->row->pattern : "unmatched";
    if (x->finish)
        x->finish(x, res);
    else
        vl_x_fail(res, 500, "exception", "no answer");
    /* an answer that was pending for its writes (a Bundle's GET entries)
     * is accounted for here, waiting for the commit */
    if (!x->audited && (res->status < 400 || x->disclose_errors) && vl_audit_needed(x))
        vl_audit_run(x, res);
}

void vl_fhir_exchange_free(vl_fhir_exchange_t *x)
{
    if (!x)
        return;
    if (x->op_free)
        x->op_free(x->op);
    json_decref(x->body);
    vl_error_clear(&x->login_failed);
    vl_params_free(&x->params);
    vl_arena_free(x->arena);
    free(x);
}

void vl_fhir_response_free(vl_fhir_response_t *res)
{
    free(res->body);
    res->body = NULL;
    if (res->stream_free)
        res->stream_free(res->stream_ctx);
    res->stream = NULL;
    res->stream_free = NULL;
    res->stream_ctx = NULL;
}

/* ------------------------------------------------------------------------
 * Sub-requests: the entries of a Bundle
 * ---------------------------------------------------------------------- */

int vl_x_subrequest(vl_fhir_exchange_t *parent, const char *method, const char *url,
                    json_t *resource, vl_fhir_exchange_t *sub, vl_fhir_response_t *res)
{
    const char *base = vl_x_fhir_base(parent);
    size_t blen = strlen(base);
    const char *q;
    char *path;
    memset(sub, 0, sizeof *sub);
    memset(res, 0, sizeof *res);
    res->route = "unmatched";
    sub->f = parent->f;
    sub->arena = parent->arena;
    sub->is_sub = 1;
    sub->parent = parent;
    sub->who = parent->who;
    sub->prefer = parent->prefer;
    vl_params_init(&sub->params);
    /* request.url is relative to the base; an absolute URL of this base too */
    if (!strncmp(url, base, blen) && url[blen] == '/')
        url += blen + 1;
    while (*url == '/')
        url++;
    q = strchr(url, '?');
    path = vl_arena_alloc(parent->arena, (q ? (size_t)(q - url) : strlen(url)) + 7);
    if (!path) {
        vl_x_fail(res, 500, "exception", "out of memory");
        return -1;
    }
    sprintf(path, "/fhir/%.*s", q ? (int)(q - url) : (int)strlen(url), url);
    if (q && vl_params_parse_form(&sub->params, q + 1, strlen(q + 1)) < 0) {
        vl_x_fail(res, 400, "invalid", "the entry's request.url has a malformed query");
        return -1;
    }
    sub->own_req.method = method;
    sub->own_req.path = path;
    sub->own_req.base_url = parent->req->base_url;
    sub->own_req.prefer = parent->req->prefer;
    sub->req = &sub->own_req;
    if (route_request(sub, res) >= 0)
        return -1;
    if (sub->row->flags & VL_ROW_FHIR_BODY) {
        if (!json_is_object(resource)) {
            vl_x_fail(res, 400, "required", "a %s entry needs a resource", method);
            return -1;
        }
        sub->body = json_incref(resource);
    }
    if (authorize(sub, res) >= 0)
        return -1;
    return 0;
}

void vl_x_sub_release(vl_fhir_exchange_t *sub)
{
    json_decref(sub->body);
    sub->body = NULL;
    vl_params_free(&sub->params);
}
