/*
 * vitalog — fhir/audit.c: the accounting of disclosures (docs/consent.md,
 * docs/security.md).
 *
 * DESIGN NOTES
 *
 * 1. What counts. Every record a request returns (read, vread, search and
 *    history pages, $ledger, the GET entries of a Bundle) is noted with the
 *    patients in whose compartments it is (vl_x_disclose, before the answer
 *    is built). A patient reading their own compartment discloses nothing
 *    of theirs; any other caller (admin, clinic, a patient reading a record
 *    that is also another's) discloses it.
 *
 * 2. What is written. One AuditEvent per patient disclosed (the IHE Basic
 *    Audit Log Patterns shape: type rest, subtype the interaction, action,
 *    recorded, outcome 0, agent = the token's subject with the token id as
 *    altId, source = this server, entity = the patient, the resources or
 *    the query, and the Consents that allowed it). Each is stored as a
 *    first version whose ledger entry is of kind access.disclose.
 *
 * 3. Before the data leaves. The request's answer is held while a store
 *    unit writes the AuditEvents (group commit batches them with other
 *    writes); only when the unit committed is the answer released. If it
 *    cannot be recorded the answer is dropped and the caller gets 503:
 *    nothing was disclosed that is not accounted for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fhir_internal.h"

#define MAX_ENTITIES 100 /* resources named in one AuditEvent; more: counted in a note */

struct vl_disclosure {
    char patient[65];
    const char **refs; /* "Type/id/_history/v" (arena) */
    size_t n_refs, cap, more;
    struct vl_disclosure *next;
};

static vl_fhir_exchange_t *root_of(vl_fhir_exchange_t *x)
{
    return x->parent ? x->parent : x;
}

static vl_disclosure_t *find(vl_fhir_exchange_t *root, const char *patient)
{
    vl_disclosure_t *d;
    for (d = root->disclosed; d; d = d->next)
        if (!strcmp(d->patient, patient))
            return d;
    d = vl_arena_alloc(root->arena, sizeof *d);
    if (!d)
        return NULL;
    memset(d, 0, sizeof *d);
    snprintf(d->patient, sizeof d->patient, "%s", patient);
    d->next = root->disclosed;
    root->disclosed = d;
    return d;
}

static int add_ref(vl_arena_t *a, vl_disclosure_t *d, const char *ref)
{
    for (size_t i = 0; i < d->n_refs; i++)
        if (!strcmp(d->refs[i], ref))
            return 0;
    if (d->n_refs == MAX_ENTITIES) {
        d->more++;
        return 0;
    }
    if (d->n_refs == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        const char **grown = vl_arena_alloc(a, cap * sizeof *grown);
        if (!grown)
            return -1;
        if (d->n_refs)
            memcpy(grown, d->refs, d->n_refs * sizeof *grown);
        d->refs = grown;
        d->cap = cap;
    }
    if (!(d->refs[d->n_refs] = vl_arena_strdup(a, ref)))
        return -1;
    d->n_refs++;
    return 0;
}

/* For a patient's own read: whether every "Patient/..." text in the body
 * names that patient (then no other patient's compartment can hold the
 * record: compartment references are such texts) and the record is not
 * another Patient. A cheap scan instead of a parse; when it says no, the
 * body is parsed. */
static int only_own(const vl_record_t *rec, const char *own)
{
    size_t n = strlen(own);
    if (!strcmp(rec->type, "Patient") && strcmp(rec->id, own) != 0)
        return 0;
    for (const char *p = rec->body; (p = strstr(p, "Patient/")) != NULL; p += 8)
        if (strncmp(p + 8, own, n) != 0 || (p[8 + n] != '"' && p[8 + n] != '/'))
            return 0;
    return 1;
}

int vl_x_disclose(vl_fhir_exchange_t *x, const vl_record_t *rec)
{
    vl_fhir_exchange_t *root = root_of(x);
    const vl_fhir_type_t *t;
    vl_error_t err = VL_ERROR_INIT;
    vl_index_t ix;
    json_t *res;
    char ref[200];
    int rc = 0;
    if (!rec->body || rec->deleted || !(t = vl_fhir_type_find(rec->type)))
        return 0;
    if (root->who.role == VL_ROLE_PATIENT && only_own(rec, root->who.patient))
        return 0;
    /* a patient's own records read by that patient disclose nothing; only
     * a record in another compartment too needs the body parsed */
    res = vl_json_parse(rec->body, rec->body_len, NULL, &err);
    vl_error_clear(&err);
    if (!res)
        return 0; /* stored bytes are JSON; nothing to account if not */
    vl_index_init(&ix);
    if (vl_fhir_compartments_at(t, res, vl_x_fhir_base(root), &ix) < 0 ||
        vl_fhir_compartment_self(t, rec->id, &ix) < 0)
        rc = -1;
    snprintf(ref, sizeof ref, "%s/%s/_history/%lld", rec->type, rec->id, (long long)rec->version);
    for (size_t i = 0; rc == 0 && i < ix.n_patients; i++) {
        vl_disclosure_t *d;
        if (root->who.role == VL_ROLE_PATIENT && !strcmp(root->who.patient, ix.patients[i]))
            continue;
        if (!(d = find(root, ix.patients[i])) || add_ref(root->arena, d, ref) < 0)
            rc = -1;
    }
    vl_index_free(&ix);
    json_decref(res);
    if (rc < 0)
        root->disclose_failed = 1;
    return rc;
}

int vl_x_disclose_patient(vl_fhir_exchange_t *x, const char *patient_id, const char *what)
{
    vl_fhir_exchange_t *root = root_of(x);
    vl_disclosure_t *d;
    if (!patient_id || !patient_id[0])
        return 0;
    if (root->who.role == VL_ROLE_PATIENT && !strcmp(root->who.patient, patient_id))
        return 0;
    if (!(d = find(root, patient_id)) || (what && add_ref(root->arena, d, what) < 0)) {
        root->disclose_failed = 1;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The AuditEvents
 * ---------------------------------------------------------------------- */

static json_t *coding(const char *system, const char *code, const char *display)
{
    return display ? json_pack("{s:s,s:s,s:s}", "system", system, "code", code, "display", display)
                   : json_pack("{s:s,s:s}", "system", system, "code", code);
}

static json_t *entity(json_t *what, const char *type_code, const char *role_code,
                      const char *role_display)
{
    json_t *e = json_object();
    if (what)
        json_object_set_new(e, "what", what);
    json_object_set_new(
        e, "type",
        coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", type_code, NULL));
    json_object_set_new(
        e, "role",
        coding("http://terminology.hl7.org/CodeSystem/object-role", role_code, role_display));
    return e;
}

/* The Consents of `patient` in the scope's basis ("patient:id,..."). */
static void add_consents(json_t *entities, const char *basis, const char *patient)
{
    size_t pn = strlen(patient);
    for (const char *p = basis; p && *p;) {
        const char *end = strchr(p, ','), *colon;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        colon = memchr(p, ':', len);
        if (colon && (size_t)(colon - p) == pn && !strncmp(p, patient, pn)) {
            char ref[100];
            snprintf(ref, sizeof ref, "Consent/%.*s", (int)(len - pn - 1), colon + 1);
            json_array_append_new(entities, entity(json_pack("{s:s}", "reference", ref), "2", "13",
                                                   "Security Resource"));
        }
        p = end ? end + 1 : NULL;
    }
}

/* The query a search or history answered, as R4 AuditEvent.entity.query
 * (base64Binary): the method, path and query string as received. */
static char *query_b64(const vl_fhir_exchange_t *x)
{
    vl_buf_t q = VL_BUF_INIT(0);
    const vl_fhir_request_t *req = x->req;
    char *raw, *out;
    size_t len, olen;
    vl_buf_printf(&q, "%s %s", req->method, req->path);
    for (size_t i = 0; req->params && i < req->params->n; i++) {
        vl_buf_puts(&q, i ? "&" : "?");
        vl_buf_query_encode(&q, req->params->items[i].name);
        vl_buf_puts(&q, "=");
        vl_buf_query_encode(&q, req->params->items[i].value);
    }
    raw = vl_buf_take(&q, &len);
    if (!raw)
        return NULL;
    olen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    out = malloc(olen);
    if (out)
        sodium_bin2base64(out, olen, (const unsigned char *)raw, len,
                          sodium_base64_VARIANT_ORIGINAL);
    free(raw);
    return out;
}

static json_t *audit_event(const vl_fhir_exchange_t *x, const vl_disclosure_t *d)
{
    const char *interaction = x->row ? x->row->interaction : "read";
    const char *subject = x->who.subject[0] ? x->who.subject : "anonymous";
    int query = !strcmp(interaction, "search-type") || !strncmp(interaction, "history", 7) ||
                !strcmp(interaction, "transaction");
    char recorded[32], patient[80];
    json_t *ev, *agent, *entities;
    if (!strcmp(interaction, "transaction") && x->body) {
        const char *bt = json_string_value(json_object_get(x->body, "type"));
        if (bt && !strcmp(bt, "batch"))
            interaction = "batch";
    }
    if (!strcmp(interaction, "export")) /* a Bulk Data file: R4 restful-interaction has none */
        interaction = "operation";
    vl_time_format(vl_time_now_us(), recorded);
    agent = json_pack("{s:o,s:o,s:s,s:b}", "type",
                      json_pack("{s:[o]}", "coding",
                                coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                       "IRCP", "information recipient")),
                      "who",
                      strchr(subject, '/') ? json_pack("{s:s}", "reference", subject)
                                           : json_pack("{s:s}", "display", subject),
                      "altId", x->who.token_id[0] ? x->who.token_id : "none", "requestor", 1);
    snprintf(patient, sizeof patient, "Patient/%s", d->patient);
    entities = json_array();
    json_array_append_new(entities,
                          entity(json_pack("{s:s}", "reference", patient), "1", "1", "Patient"));
    for (size_t i = 0; i < d->n_refs; i++)
        json_array_append_new(entities, entity(json_pack("{s:s}", "reference", d->refs[i]), "2",
                                               "4", "Domain Resource"));
    if (query) {
        char *q = query_b64(x);
        json_t *qe = entity(NULL, "2", "24", "Query");
        if (q)
            json_object_set_new(qe, "query", json_string(q));
        free(q);
        json_array_append_new(entities, qe);
    }
    add_consents(entities, x->scope.basis, d->patient);
    ev = json_pack(
        "{s:s,s:o,s:[o],s:s,s:s,s:s,s:[o],s:o,s:o}", "resourceType", "AuditEvent", "type",
        coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest",
               "Restful Operation"),
        "subtype", coding("http://hl7.org/fhir/restful-interaction", interaction, NULL), "action",
        !strcmp(interaction, "search-type") || !strcmp(interaction, "batch") ||
                !strcmp(interaction, "transaction") || !strcmp(interaction, "operation")
            ? "E"
            : "R",
        "recorded", recorded, "outcome", "0", "agent", agent, "source",
        json_pack("{s:s,s:o,s:[o]}", "site", vl_x_fhir_base((vl_fhir_exchange_t *)x), "observer",
                  json_pack("{s:s}", "display", "vitalog " VL_VERSION), "type",
                  coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4",
                         "Application Server")),
        "entity", entities);
    if (ev && d->more) {
        char note[80];
        snprintf(note, sizeof note, "and %zu more resources of this patient", d->more);
        json_object_set_new(ev, "outcomeDesc", json_string(note));
    }
    return ev;
}

/* ------------------------------------------------------------------------
 * Writing them before the answer leaves
 * ---------------------------------------------------------------------- */

/* Up to this many AuditEvents are built and prepared on the caller's
 * thread before the unit; more (a Bulk Data file of thousands of
 * patients) are built one at a time inside the unit, each released once
 * written, so that their memory does not grow with their number. */
#define PREPARED_MAX 64

typedef struct audit {
    vl_write_t *w;
    size_t n;
    vl_fhir_exchange_t *lazy; /* many: built from its disclosures in the unit */
    vl_error_t err;
    vl_fhir_response_t held; /* the answer, released once they committed */
} audit_t;

static void audit_free(void *p)
{
    audit_t *a = p;
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        vl_write_release(&a->w[i]);
    free(a->w);
    vl_error_clear(&a->err);
    vl_fhir_response_free(&a->held);
    free(a);
}

static int apply_audit(vl_store_txn_t *txn, void *arg)
{
    audit_t *a = arg;
    const vl_fhir_type_t *t = vl_fhir_type_find("AuditEvent");
    for (size_t i = 0; i < a->n; i++)
        if (vl_write_execute(txn, vl_scope_everything(), &a->w[i], &a->err) < 0)
            return -1;
    /* many: one at a time (the exchange waits for this unit: nothing else
     * touches it or its disclosures meanwhile) */
    for (vl_disclosure_t *d = a->lazy ? a->lazy->disclosed : NULL; d; d = d->next) {
        json_t *ev = audit_event(a->lazy, d);
        vl_write_t w;
        int rc;
        if (!ev)
            return vl_error_set(&a->err, 503, "transient", NULL,
                                "the disclosure could not be recorded");
        vl_write_init(&w, VL_W_CREATE, t, ev);
        w.disclose = 1;
        rc = vl_write_prepare(&w, &a->err) < 0 ||
                     vl_write_execute(txn, vl_scope_everything(), &w, &a->err) < 0
                 ? -1
                 : 0;
        vl_write_release(&w);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The AuditEvents of x's disclosures, prepared; NULL with err on failure. */
static audit_t *audit_new(vl_fhir_exchange_t *x, vl_error_t *err)
{
    const vl_fhir_type_t *t = vl_fhir_type_find("AuditEvent");
    audit_t *a = calloc(1, sizeof *a);
    size_t n = 0;
    for (vl_disclosure_t *d = x->disclosed; d; d = d->next)
        n++;
    if (a && t && n > PREPARED_MAX) {
        a->lazy = x; /* built in the unit (PREPARED_MAX) */
        /* what audit_event() reads of the exchange that is made on first
         * use: made here, so the writer thread only reads the exchange */
        vl_x_fhir_base(x);
        return a;
    }
    if (!a || !t || !(a->w = calloc(n, sizeof *a->w))) {
        free(a);
        vl_error_set(err, 503, "transient", NULL, "the disclosure could not be recorded");
        return NULL;
    }
    for (vl_disclosure_t *d = x->disclosed; d; d = d->next) {
        json_t *ev = audit_event(x, d);
        vl_write_t *w = &a->w[a->n];
        if (!ev) {
            audit_free(a);
            vl_error_set(err, 503, "transient", NULL, "the disclosure could not be recorded");
            return NULL;
        }
        vl_write_init(w, VL_W_CREATE, t, ev);
        w->disclose = 1;
        a->n++;
        if (vl_write_prepare(w, err) < 0) {
            audit_free(a);
            return NULL;
        }
    }
    return a;
}

/* The answer replaced by a 503: the AuditEvents did not commit. */
static void withheld(const audit_t *a, const vl_store_err_t *unit_err, vl_fhir_response_t *res)
{
    vl_log(VL_LOG_ERROR, "a disclosure could not be recorded; the answer was withheld",
           json_pack("{s:s}", "reason",
                     a->err.status ? vl_error_message(&a->err) : unit_err->message));
    vl_fhir_response_free(res);
    vl_x_fail(res, 503, "transient",
              "the access could not be recorded (accounting of disclosures), so nothing was "
              "disclosed; retry later");
}

static void finish_audit(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    audit_t *a = x->op;
    if (x->unit.result < 0) {
        withheld(a, &x->unit.err, res);
        return;
    }
    *res = a->held;
    memset(&a->held, 0, sizeof a->held);
}

int vl_audit_needed(const vl_fhir_exchange_t *x)
{
    return x->disclosed != NULL || x->disclose_failed;
}

/* The AuditEvents of x, or NULL with `res` replaced by the error. */
static audit_t *prepare(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    audit_t *a = NULL;
    if (x->disclose_failed)
        vl_error_set(&err, 503, "transient", NULL, "the disclosure could not be recorded");
    else
        a = audit_new(x, &err);
    if (!a) {
        vl_fhir_response_free(res);
        vl_x_error(res, &err);
    }
    return a;
}

int vl_audit_submit(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    audit_t *a = prepare(x, res);
    if (!a)
        return 0;
    a->held = *res;
    memset(res, 0, sizeof *res);
    res->route = a->held.route;
    /* the exchange's pending operation is now this one (the handler's, if
     * any, finished: its answer is `held`) */
    if (x->op_free)
        x->op_free(x->op);
    x->op = a;
    x->op_free = audit_free;
    x->unit.apply = apply_audit;
    x->unit.arg = a;
    x->audited = 1;
    /* 1 pending; 0 with the store's refusal (503) in res: nothing leaves */
    return vl_x_submit(x, res, finish_audit);
}

int vl_audit_run(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_store_unit_t unit;
    audit_t *a = prepare(x, res);
    if (!a)
        return 0;
    memset(&unit, 0, sizeof unit);
    unit.apply = apply_audit;
    unit.arg = a;
    x->audited = 1;
    if (vl_store_run(x->f->opts.store, &unit) != 0)
        withheld(a, &unit.err, res);
    audit_free(a);
    return 0;
}
