/*
 * vitalog — fhir/everything.c: GET /fhir/Patient/{id}/$everything (R4
 * OperationDefinition Patient-everything), a patient's record in pages.
 *
 * DESIGN NOTES
 *
 * 1. Whose data. The operation is authorized like a search (the route's
 *    interaction is search-type) and reads in the exchange's scope. The
 *    patient must be one whose compartment the scope opens: every record
 *    (admin), the scope's own patient (a patient), or a patient for whom a
 *    permit rule of the scope exists (a clinic under that patient's
 *    Consent). For any other id the answer is 404 exactly like a read of
 *    a record the caller may not see: nothing is looked up, so nothing is
 *    revealed. For an open compartment the Patient must exist (404) and
 *    not be deleted (410). A clinic whose Consent permits only some data
 *    (one code, say) gets those records, without the Patient resource
 *    itself when the Consent does not cover it.
 *
 * 2. Content, in this order: the Patient itself, then every member of its
 *    compartment (R4 CompartmentDefinition patient, as the store keeps it
 *    per version: Observations, Devices, Consents, AuditEvents, Patients
 *    that link to it) in the order the versions were written; each current,
 *    not deleted, and visible in the scope. These are entries with
 *    search.mode "match", counted in Bundle.total. After the matches of a
 *    page come the resources they reference that are in no patient
 *    compartment (Organization, Practitioner: shared data), when the
 *    scope sees them: their current versions, read now, search.mode
 *    "include", once per page (a later page may carry one again).
 *
 * 3. Parameters. _since (an instant: lastUpdated >= it), _type (served
 *    types, comma-separated, repeatable; matches and includes alike),
 *    _count (page size, default VL_SEARCH_COUNT_DEFAULT, larger values
 *    clamped to VL_SEARCH_COUNT_MAX; 0 is a 400), start and end (dates of
 *    the care: a record with a care time, which on this server is an
 *    Observation's effective[x] as its consent facet time, is kept when
 *    that time overlaps [start, end]; a record without one is kept),
 *    _cursor (a page, below) and _format. Anything else is a 400 naming
 *    the parameter; so is a single-valued parameter given twice.
 *
 * 4. Pages. Keysets over the store's key (the Patient itself 0, every
 *    other member the seq of its version: vl_store_compartment_page), read
 *    as of a snapshot S, the highest committed seq when the first page was
 *    read. The cursor holds {direction, key, S, total}, sealed with
 *    vl_cursor_seal and bound to the canonical query (patient, _since,
 *    _type, _count, start, end) and to the caller (role, subject,
 *    organization, patient, SMART scopes): a cursor changed by one bit, of
 *    another query or of another caller does not open (400). Every page of
 *    one S lists the members of S, so writes while a client pages neither
 *    duplicate nor skip an entry. Links:
 *      self      the request itself (its cursor, if it had one)
 *      first     forward from the start
 *      next      forward after the page's last key (when more exist)
 *      previous  backward before the page's first key (for a forward page
 *                read after key K: before K + 1, when K is not the start)
 *      last      backward before every key: the last _count members
 *    A backward page holds the _count members nearest below its key, in
 *    ascending order; its next link continues forward where it ends.
 *    Links that follow from the cursor (next of a backward page, previous
 *    of a forward one) assume the caller's access is what it was.
 *
 * 5. Total: counted once, at the first page, up to VL_TOTAL_BOUND (beyond
 *    it none is given), and carried in the cursor: the snapshot's members
 *    do not change, and the cursor is the caller's own.
 *
 * 6. Accounting: every record of the page, matches and includes, is noted
 *    with vl_x_disclose before the Bundle is built; the interaction layer
 *    writes the AuditEvents before the answer leaves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

#define STATE_LEN 26      /* the cursor's state: see state_pack() */
#define STATE_FORMAT 1    /* its first byte */
#define MAX_TYPES 32      /* distinct _type values (more than are served) */
#define KEY_END INT64_MAX /* a backward page from the end: the last page */

/* The parsed parameters of one request. */
typedef struct ev_params {
    int64_t since_us;  /* 0: none */
    const char *since; /* as given (for the links) */
    const char *start, *end;
    int has_period;
    int64_t lo, hi; /* [start, end] as a half-open range */
    const char *types[MAX_TYPES];
    size_t n_types;
    int count;
    const char *cursor; /* as given, or NULL */
} ev_params_t;

/* A page position: the state a cursor carries. */
typedef struct ev_state {
    int backward;
    int64_t key;      /* forward: after it; backward: before it */
    int64_t snapshot; /* S */
    int64_t total;    /* -1: unknown */
} ev_state_t;

/* ------------------------------------------------------------------------
 * Parameters
 * ---------------------------------------------------------------------- */

static int once(const vl_params_t *params, const char *name, vl_error_t *err)
{
    size_t n = 0;
    for (size_t i = 0; i < params->n; i++)
        n += !strcmp(params->items[i].name, name);
    if (n > 1)
        return vl_error_set(err, 400, "invalid", name, "%s may be given once", name);
    return 0;
}

/* Adds the types of one _type value (a comma list) to p->types. */
static int add_types(ev_params_t *p, const char *value, vl_error_t *err)
{
    const char *s = value;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char name[65];
        const vl_fhir_type_t *t = NULL;
        size_t i;
        if (len && len < sizeof name) {
            memcpy(name, s, len);
            name[len] = '\0';
            t = vl_fhir_type_find(name);
        }
        if (!t) {
            if (len && len < sizeof name && vl_fhir_is_r4_type(name))
                return vl_error_set(err, 400, "not-supported", "_type",
                                    "_type: resource type %s is not served by this server", name);
            return vl_error_set(err, 400, "invalid", "_type",
                                "_type: '%.*s' is not a resource type served here "
                                "(a comma-separated list of types)",
                                (int)(len > 64 ? 64 : len), s);
        }
        for (i = 0; i < p->n_types && strcmp(p->types[i], t->name) != 0; i++)
            ;
        if (i == p->n_types) {
            if (p->n_types == MAX_TYPES)
                return vl_error_set(err, 400, "invalid", "_type", "_type names too many types");
            p->types[p->n_types++] = t->name;
        }
        if (!end)
            return 0;
        s = end + 1;
    }
}

/* The served types' order: _type lists the same set the same way, however
 * the client wrote it (the canonical query). */
static void sort_types(ev_params_t *p)
{
    const char *sorted[MAX_TYPES];
    size_t n = 0;
    for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++)
        for (size_t i = 0; i < p->n_types; i++)
            if (p->types[i] == t->name)
                sorted[n++] = t->name;
    memcpy(p->types, sorted, n * sizeof *sorted);
    p->n_types = n;
}

/* A start or end date: [*lo, *hi) of the day, month or year it names. */
static int care_date(const char *name, const char *value, int64_t *lo, int64_t *hi, vl_error_t *err)
{
    int prec = 0;
    if (vl_time_parse_range(value, lo, hi, &prec) < 0 || prec > 3)
        return vl_error_set(err, 400, "invalid", name,
                            "%s must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)", name);
    return 0;
}

static int parse_params(const vl_params_t *params, ev_params_t *p, vl_error_t *err)
{
    static const char *const single[] = {"_since", "_count", "start", "end", "_cursor"};
    const char *v;
    memset(p, 0, sizeof *p);
    p->count = VL_SEARCH_COUNT_DEFAULT;
    for (size_t i = 0; i < params->n; i++) {
        const char *name = params->items[i].name;
        if (strcmp(name, "_since") && strcmp(name, "_type") && strcmp(name, "_count") &&
            strcmp(name, "start") && strcmp(name, "end") && strcmp(name, "_cursor") &&
            strcmp(name, "_format"))
            return vl_error_set(err, 400, "not-supported", name,
                                "parameter '%.64s' is not supported by $everything (it takes "
                                "_since, _type, _count, start, end and _cursor)",
                                name);
    }
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        if (once(params, single[i], err) < 0)
            return -1;
    if ((v = vl_params_get(params, "_since")) != NULL) {
        int64_t hi;
        int prec = 0;
        if (vl_time_parse_range(v, &p->since_us, &hi, &prec) < 0 || prec < 4)
            return vl_error_set(err, 400, "invalid", "_since", "_since must be a FHIR instant");
        p->since = v;
    }
    for (size_t i = 0; i < params->n; i++)
        if (!strcmp(params->items[i].name, "_type") &&
            add_types(p, params->items[i].value, err) < 0)
            return -1;
    sort_types(p);
    if ((v = vl_params_get(params, "_count")) != NULL) {
        long n = strtol(v, NULL, 10); /* digits only: LONG_MAX when too long */
        if (!*v || strspn(v, "0123456789") != strlen(v) || n < 1)
            return vl_error_set(err, 400, "invalid", "_count",
                                "_count must be a whole number of at least 1");
        p->count = n > VL_SEARCH_COUNT_MAX ? VL_SEARCH_COUNT_MAX : (int)n;
    }
    p->start = vl_params_get(params, "start");
    p->end = vl_params_get(params, "end");
    if (p->start || p->end) {
        int64_t lo = INT64_MIN, hi = INT64_MAX, ignored;
        if (p->start && care_date("start", p->start, &lo, &ignored, err) < 0)
            return -1;
        if (p->end && care_date("end", p->end, &ignored, &hi, err) < 0)
            return -1;
        if (lo >= hi)
            return vl_error_set(err, 400, "invalid", "start", "start is after end");
        p->has_period = 1;
        p->lo = lo;
        p->hi = hi;
    }
    p->cursor = vl_params_get(params, "_cursor");
    return 0;
}

/* The canonical query string (encoded, without the cursor), for links. */
static void canonical_query(vl_buf_t *b, const ev_params_t *p)
{
    if (p->since) {
        vl_buf_puts(b, "_since=");
        vl_buf_query_encode(b, p->since);
        vl_buf_puts(b, "&");
    }
    if (p->n_types) {
        vl_buf_puts(b, "_type=");
        for (size_t i = 0; i < p->n_types; i++)
            vl_buf_printf(b, "%s%s", i ? "," : "", p->types[i]);
        vl_buf_puts(b, "&");
    }
    if (p->start) {
        vl_buf_puts(b, "start=");
        vl_buf_query_encode(b, p->start);
        vl_buf_puts(b, "&");
    }
    if (p->end) {
        vl_buf_puts(b, "end=");
        vl_buf_query_encode(b, p->end);
        vl_buf_puts(b, "&");
    }
    vl_buf_printf(b, "_count=%d", p->count);
}

/* What a cursor is bound to: the query by its values (two spellings of
 * one instant are one query) and the caller it was given to. */
static void bind_text(vl_buf_t *b, const vl_fhir_exchange_t *x, const ev_params_t *p)
{
    vl_buf_printf(b, "$everything\nPatient/%s\n%lld\n", x->id, (long long)p->since_us);
    for (size_t i = 0; i < p->n_types; i++)
        vl_buf_printf(b, "%s%s", i ? "," : "", p->types[i]);
    vl_buf_printf(b, "\n%d\n%d %lld %lld\n", p->count, p->has_period, (long long)p->lo,
                  (long long)p->hi);
    vl_cursor_bind_caller(b, x);
}

/* ------------------------------------------------------------------------
 * Cursors
 * ---------------------------------------------------------------------- */

/* STATE_FORMAT, backward, key, snapshot, total (little-endian int64s). */
static void state_pack(const ev_state_t *s, unsigned char out[STATE_LEN])
{
    out[0] = STATE_FORMAT;
    out[1] = (unsigned char)(s->backward != 0);
    vl_cursor_put64(out + 2, s->key);
    vl_cursor_put64(out + 10, s->snapshot);
    vl_cursor_put64(out + 18, s->total);
}

static int state_unpack(const unsigned char *in, size_t len, ev_state_t *s)
{
    if (len != STATE_LEN || in[0] != STATE_FORMAT || in[1] > 1)
        return -1;
    s->backward = in[1];
    s->key = vl_cursor_get64(in + 2);
    s->snapshot = vl_cursor_get64(in + 10);
    s->total = vl_cursor_get64(in + 18);
    if (s->key < VL_COMPARTMENT_START || s->snapshot < 1 || s->total < -1)
        return -1;
    return 0;
}

/* One link: the page's URL with `query` and the cursor of `s` (none when
 * s is NULL and `cursor` is NULL; `cursor` is a cursor text as given). */
static void add_link(vl_fhir_exchange_t *x, vl_buf_t *b, int *first, const char *relation,
                     const char *query, const char *bind, const ev_state_t *s, const char *cursor)
{
    vl_buf_t url = VL_BUF_INIT(0);
    vl_buf_printf(&url, "%s/Patient/%s/$everything?%s", vl_x_fhir_base(x), x->id, query);
    if (s) {
        unsigned char raw[STATE_LEN];
        state_pack(s, raw);
        vl_buf_puts(&url, "&_cursor=");
        if (vl_cursor_seal(x->f, bind, raw, sizeof raw, &url) < 0)
            url.failed = 1;
    } else if (cursor) {
        vl_buf_puts(&url, "&_cursor=");
        vl_buf_query_encode(&url, cursor);
    }
    if (url.failed)
        b->failed = 1;
    vl_bundle_link(b, first, relation, url.data ? url.data : "");
    vl_buf_free(&url);
}

/* ------------------------------------------------------------------------
 * Who may ask for whom
 * ---------------------------------------------------------------------- */

/* Whether the scope opens the compartment of `patient` (design note 1). */
static int compartment_open(vl_scope_t scope, const char *patient)
{
    if (scope.flags & VL_SCOPE_ALL)
        return 1;
    for (size_t i = 0; scope.patients && i < scope.n_patients; i++)
        if (!strcmp(scope.patients[i], patient))
            return 1;
    for (size_t i = 0; scope.rules && i < scope.n_rules; i++)
        if (!scope.rules[i].deny && !strcmp(scope.rules[i].patient, patient))
            return 1;
    return 0;
}

/* 0 when the patient can be paged, else the answer (404, 410) in res. */
static int check_patient(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_record_t rec;
    if (!compartment_open(x->scope, x->id)) {
        vl_x_fail(res, 404, "not-found", "Patient/%s is not known", x->id);
        return -1;
    }
    /* the compartment is the caller's to see: whether the Patient exists
     * reveals nothing more (the record itself is not served from here) */
    if (vl_store_read(x->f->opts.store, vl_scope_everything(), "Patient", x->id, 0, &rec, &serr) <
        0) {
        vl_x_store_error(res, &serr);
        return -1;
    }
    if (rec.deleted) {
        vl_x_fail(res, 410, "deleted", "Patient/%s was deleted (version %lld)", x->id,
                  (long long)rec.version);
        vl_record_free(&rec);
        return -1;
    }
    vl_record_free(&rec);
    return 0;
}

/* ------------------------------------------------------------------------
 * Included resources (design note 2)
 * ---------------------------------------------------------------------- */

typedef struct includes {
    char **refs; /* "Type/id" seen on this page (malloc'd) */
    size_t n, cap;
    vl_records_t found;
    int failed; /* out of memory, or a read failed: err holds why */
    vl_store_err_t err;
} includes_t;

static void includes_free(includes_t *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->refs[i]);
    free(in->refs);
    vl_records_free(&in->found);
}

static int type_wanted(const ev_params_t *p, const char *type)
{
    if (!p->n_types)
        return 1;
    for (size_t i = 0; i < p->n_types; i++)
        if (!strcmp(p->types[i], type))
            return 1;
    return 0;
}

/* A reference of a match: read the shared resource it names, once. */
static void include_ref(vl_fhir_exchange_t *x, const ev_params_t *p, includes_t *in,
                        const char *ref)
{
    const char *local = vl_fhir_local_reference(ref, vl_x_fhir_base(x)), *slash;
    const vl_fhir_type_t *t;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_record_t rec;
    char type[65];
    size_t tl;
    if (in->failed || !(slash = strchr(local, '/')) || (tl = (size_t)(slash - local)) == 0 ||
        tl >= sizeof type || strchr(slash + 1, '/') || !vl_fhir_id_valid(slash + 1))
        return;
    memcpy(type, local, tl);
    type[tl] = '\0';
    if (!(t = vl_fhir_type_find(type)) || vl_fhir_compartment_member_type(t) ||
        !type_wanted(p, t->name))
        return;
    for (size_t i = 0; i < in->n; i++)
        if (!strcmp(in->refs[i], local))
            return;
    if (vl_grow(&in->refs, &in->cap, in->n + 1, sizeof *in->refs) < 0 ||
        !(in->refs[in->n] = strdup(local))) {
        in->failed = vl_store_fail(&in->err, VL_STORE_FAILED, "out of memory") < 0;
        return;
    }
    in->n++;
    if (vl_store_read(x->f->opts.store, x->scope, t->name, slash + 1, 0, &rec, &serr) < 0) {
        if (serr.kind != VL_STORE_NOT_FOUND) { /* not there or not visible: nothing */
            in->err = serr;
            in->failed = 1;
        }
        return;
    }
    if (rec.deleted) {
        vl_record_free(&rec);
        return;
    }
    if (vl_grow(&in->found.items, &in->found.cap, in->found.n + 1, sizeof *in->found.items) < 0) {
        vl_record_free(&rec);
        in->failed = vl_store_fail(&in->err, VL_STORE_FAILED, "out of memory") < 0;
        return;
    }
    in->found.items[in->found.n++] = rec;
}

/* Every "reference" string member in `v`, at any depth. */
static void walk(vl_fhir_exchange_t *x, const ev_params_t *p, includes_t *in, const json_t *v)
{
    const char *key;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach ((json_t *)v, key, child) {
            if (!strcmp(key, "reference") && json_is_string(child))
                include_ref(x, p, in, json_string_value(child));
            else
                walk(x, p, in, child);
        }
    } else if (json_is_array(v)) {
        json_array_foreach (v, i, child)
            walk(x, p, in, child);
    }
}

static int find_includes(vl_fhir_exchange_t *x, const ev_params_t *p, const vl_records_t *page,
                         includes_t *in)
{
    vl_json_limits_t lim = {x->f->opts.max_depth};
    for (size_t i = 0; i < page->n && !in->failed; i++) {
        vl_error_t err = VL_ERROR_INIT;
        json_t *doc;
        if (!page->items[i].body)
            continue;
        doc = vl_json_parse(page->items[i].body, page->items[i].body_len, &lim, &err);
        vl_error_clear(&err);
        if (!doc)
            continue; /* stored bodies are JSON; nothing to follow if not */
        walk(x, p, in, doc);
        json_decref(doc);
    }
    return in->failed ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * The Bundle
 * ---------------------------------------------------------------------- */

static void entries(vl_fhir_exchange_t *x, vl_buf_t *b, const vl_records_t *list, const char *mode,
                    size_t *n)
{
    const char *base = vl_x_fhir_base(x);
    for (size_t i = 0; i < list->n; i++) {
        const vl_record_t *r = &list->items[i];
        vl_buf_puts(b, (*n)++ ? ",{\"fullUrl\":\"" : ",\"entry\":[{\"fullUrl\":\"");
        vl_full_url(b, base, r->type, r->id);
        vl_buf_puts(b, "\",\"resource\":");
        vl_buf_append(b, r->body, r->body_len);
        vl_buf_printf(b, ",\"search\":{\"mode\":\"%s\"}}", mode);
    }
}

/* The page's links (design note 4). */
static void links(vl_fhir_exchange_t *x, vl_buf_t *b, const ev_params_t *p, const char *bind,
                  const ev_state_t *at, const vl_compartment_page_t *page)
{
    vl_buf_t query = VL_BUF_INIT(0);
    ev_state_t s = {0, VL_COMPARTMENT_START, page->snapshot, at->total};
    int first = 1;
    canonical_query(&query, p);
    if (query.failed)
        b->failed = 1;
    add_link(x, b, &first, "self", query.data ? query.data : "", bind, NULL, p->cursor);
    add_link(x, b, &first, "first", query.data ? query.data : "", bind, &s, NULL);
    if (at->backward ? page->more : at->key > VL_COMPARTMENT_START) {
        s.backward = 1;
        s.key = at->backward ? page->first_key : at->key + 1;
        add_link(x, b, &first, "previous", query.data ? query.data : "", bind, &s, NULL);
    }
    if (at->backward ? at->key != KEY_END : page->more) {
        s.backward = 0;
        s.key = at->backward ? at->key - 1 : page->last_key;
        add_link(x, b, &first, "next", query.data ? query.data : "", bind, &s, NULL);
    }
    s.backward = 1;
    s.key = KEY_END;
    add_link(x, b, &first, "last", query.data ? query.data : "", bind, &s, NULL);
    vl_bundle_links_close(b, first);
    vl_buf_free(&query);
}

int vl_h_everything(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_buf_t bind = VL_BUF_INIT(0), b = VL_BUF_INIT(0);
    ev_params_t p;
    ev_state_t at = {0, VL_COMPARTMENT_START, 0, -1};
    vl_compartment_query_t q;
    vl_compartment_page_t page;
    includes_t in;
    char *text;
    size_t len, n = 0;
    memset(&page, 0, sizeof page);
    memset(&in, 0, sizeof in);
    if (parse_params(&x->params, &p, &err) < 0)
        return vl_x_error(res, &err);
    bind_text(&bind, x, &p);
    if (bind.failed) {
        vl_buf_free(&bind);
        return vl_x_fail(res, 500, "exception", "out of memory");
    }
    if (p.cursor) {
        unsigned char raw[VL_CURSOR_STATE_MAX];
        size_t rlen = 0;
        if (vl_cursor_open(x->f, bind.data, p.cursor, raw, sizeof raw, &rlen) < 0 ||
            state_unpack(raw, rlen, &at) < 0) {
            vl_buf_free(&bind);
            return vl_x_fail(res, 400, "invalid",
                             "_cursor is not a cursor of this $everything for this caller (it "
                             "was changed, or belongs to another query or caller): follow the "
                             "links of the Bundle as given");
        }
    }
    if (check_patient(x, res) < 0) {
        vl_buf_free(&bind);
        return 0;
    }

    memset(&q, 0, sizeof q);
    q.patient = x->id;
    q.n_types = p.n_types;
    q.types = p.types;
    q.since_us = p.since_us;
    q.has_period = p.has_period;
    q.lo = p.lo;
    q.hi = p.hi;
    q.snapshot = at.snapshot;
    q.key = at.key;
    q.backward = at.backward;
    q.count = p.count;
    q.max_bytes = x->f->opts.max_page_bytes;
    q.with_total = p.cursor ? VL_TOTAL_NONE : VL_TOTAL_BOUNDED;
    if (vl_store_compartment_page(x->f->opts.store, x->scope, &q, &page, &serr) < 0) {
        vl_buf_free(&bind);
        return vl_x_store_error(res, &serr);
    }
    if (!p.cursor)
        at.total = page.records.total;
    if (find_includes(x, &p, &page.records, &in) < 0) {
        vl_x_store_error(res, &in.err);
        goto out;
    }
    /* the accounting, before anything of the answer is built */
    for (size_t i = 0; i < page.records.n; i++)
        vl_x_disclose(x, &page.records.items[i]);
    for (size_t i = 0; i < in.found.n; i++)
        vl_x_disclose(x, &in.found.items[i]);

    vl_bundle_open(&b, "searchset", at.total);
    links(x, &b, &p, bind.data, &at, &page);
    entries(x, &b, &page.records, "match", &n);
    entries(x, &b, &in.found, "include", &n);
    vl_buf_puts(&b, n ? "]}" : "}");
    text = vl_buf_take(&b, &len);
    if (!text)
        vl_x_fail(res, 500, "too-costly", "the page could not be built (out of memory)");
    else
        vl_x_text(res, 200, NULL, text, len);
out:
    vl_buf_free(&b);
    vl_buf_free(&bind);
    includes_free(&in);
    vl_compartment_page_free(&page);
    return 0;
}
