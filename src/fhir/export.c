/*
 * vitalog — fhir/export.c: FHIR Bulk Data Access v2 export
 * (https://hl7.org/fhir/uv/bulkdata/export.html; docs/api.md "Bulk
 * export"): the kick-off, the status and its DELETE, and the files.
 *
 *   GET    /fhir/$export               every served type
 *   GET    /fhir/Patient/$export       the patient compartment's types, of every patient
 *   GET    /fhir/Patient/{id}/$export  one patient's compartment
 *   GET    /fhir/_export/{job}         202 with X-Progress while it counts, then the
 *                                      manifest (200, application/json)
 *   DELETE /fhir/_export/{job}         cancels it (202); it is gone (404) from then on
 *   GET    /fhir/_export/{job}/{n}     file n of the manifest (application/fhir+ndjson)
 *
 * DESIGN NOTES
 *
 * 1. A job is a snapshot, not a copy. The kick-off records S, the
 *    store's highest committed version sequence number
 *    (vl_store_export_seq), and a file is read from the store when it is
 *    downloaded: every resource of its type whose version current as of S
 *    is not a delete, visible in the scope, last updated at or after
 *    _since (store.h, "Bulk export: snapshots"). Writes after the
 *    kick-off change no file; no PHI is ever written to disk for an
 *    export. transactionTime is the time of version S's write (every
 *    write the export does not hold is at or after it, so _since =
 *    transactionTime on the next export misses nothing; it may repeat
 *    the resources of that last write), or the kick-off's time when the
 *    store holds no version.
 *
 * 2. The states of a job (`state`, under reg.mu):
 *
 *      kick-off ──▶ COUNTING ──(counted)────────▶ COMPLETE ─┐
 *                      │  └───(the store failed)─▶ FAILED ──┴─(1 h)──▶ gone
 *                      └──(DELETE; vl_export_shutdown)─────────────────▶ gone
 *
 *    COUNTING runs on the job's own thread (job_main), which counts the
 *    snapshot per type in ranges of COUNT_RANGE sequence numbers, with
 *    the kick-off's scope copied into the job (the request's scope lives
 *    in its arena). Between ranges it publishes its progress (X-Progress)
 *    and looks at `cancel`, so a DELETE or a shutdown stops it within one
 *    range. A job leaves the registry in exactly three places (cancel,
 *    sweep, vl_export_shutdown), under reg.mu; whoever removed it joins
 *    its thread and frees it afterwards, outside the mutex. A handler
 *    reads a job only under reg.mu, so no job is freed under a reader.
 *
 * 3. Ownership. The policy lets any authenticated caller but an auditor
 *    reach the status and file routes with an empty scope: a job answers
 *    only to the caller who started it (same role, subject and token id;
 *    ids are public names, compared with strcmp). To anybody else a job
 *    does not exist: 404, as for an unknown id (no oracle of other
 *    callers' jobs). A job id is 128 random bits (randombytes_buf).
 *
 * 4. Files are authorized anew. A download rebuilds the kick-off's
 *    description (vl_access_t: search-type, $export, its type, id and
 *    compartment) and asks the policy again, so it reads in the caller's
 *    CURRENT scope: a Consent revoked since the kick-off removes that
 *    patient's data from the file (the manifest's count was taken in the
 *    kick-off's scope). The file is streamed from the store in pages of
 *    PAGE_ROWS rows (keyset on seq; constant memory), each stored body
 *    sent as it is, one per line: nothing is parsed on the way.
 *
 * 5. Accounting of disclosures (audit.c). Before the first byte of a file
 *    leaves, one store query lists the patients whose compartments the
 *    file's rows are in (vl_store_export_patients), each is noted with
 *    the entity "<Type>?_export=<job>", and the interaction layer holds
 *    the answer until their AuditEvents committed (503 and nothing sent
 *    if they could not be written). A patient's own data downloaded by
 *    that patient discloses nothing.
 *
 * 6. Limits: at most OWNER_MAX jobs counting per caller and RUNNING_MAX
 *    in all, and KEPT_MAX jobs kept, OWNER_KEPT_MAX of them per caller
 *    (429 with Retry-After beyond: one caller cannot lock others out); a
 *    finished job expires EXPIRE_US after it finished (404 afterwards),
 *    a cancelled one at once. Jobs live in memory: a restart forgets
 *    them (their status and files are 404; start a new export).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "fhir_internal.h"

#define TYPES_MAX 32                    /* types of one job (vl_fhir_types has fewer) */
#define OWNER_MAX 4                     /* jobs counting per caller */
#define RUNNING_MAX 16                  /* jobs counting in all */
#define KEPT_MAX 256                    /* jobs kept (counting or finished) */
#define OWNER_KEPT_MAX 16               /* jobs kept per caller: one caller cannot fill KEPT_MAX */
#define EXPIRE_US (3600LL * 1000000)    /* a finished job's life */
#define COUNT_RANGE 65536               /* sequence numbers counted between two looks at cancel */
#define PAGE_ROWS 1000                  /* records per store read of a file */
#define PAGE_BYTES (4u * 1024u * 1024u) /* ... and at most this many bytes of bodies */
#define RETRY_COUNTING 2                /* Retry-After while counting (seconds) */
#define RETRY_BUSY 30                   /* Retry-After of a 429 (seconds) */

/* ------------------------------------------------------------------------
 * Jobs and their registry
 * ---------------------------------------------------------------------- */

typedef enum { JOB_COUNTING, JOB_COMPLETE, JOB_FAILED } job_state_t;

typedef struct job {
    struct job *next;
    vl_fhir_t *f; /* the layer whose job it is */
    char id[33];
    /* the caller who started it */
    vl_role_t role;
    char subject[128];
    char token_id[33];
    /* the kick-off, as the policy saw it (asked again for every file) */
    const char *type_name; /* "Patient" (Patient-level), or NULL (static) */
    char patient[65];      /* {id} of Patient/{id}/$export, or "" */
    const char *route;     /* the row's pattern (static) */
    /* immutable once the thread runs */
    vl_arena_t *arena;   /* request and the scope's lists */
    const char *request; /* the kick-off's URL */
    vl_scope_t scope;    /* the kick-off's scope, copied */
    vl_export_query_t q; /* S, _since, compartments (q.patient points into `patient`) */
    int64_t transaction_us;
    size_t n_types;
    const char *types[TYPES_MAX]; /* names from vl_fhir_types (static) */
    /* under reg.mu */
    job_state_t state;
    int64_t counts[TYPES_MAX];
    int64_t counted; /* sequence numbers of (0, S] counted so far */
    int64_t finished_us;
    char error[256];
    /* the counting thread */
    atomic_int cancel;
    pthread_t thread;
    int started;
} job_t;

/* Every layer's jobs (a process has one layer; unit tests may have more). */
static struct {
    pthread_mutex_t mu;
    job_t *jobs;
} reg = {PTHREAD_MUTEX_INITIALIZER, NULL};

/* Stops the job's thread (it was taken out of the registry), joins it
 * and frees the job. */
static void job_free(job_t *j)
{
    if (!j)
        return;
    atomic_store(&j->cancel, 1);
    if (j->started)
        pthread_join(j->thread, NULL);
    vl_arena_free(j->arena);
    free(j);
}

static void jobs_free(job_t *list)
{
    while (list) {
        job_t *next = list->next;
        job_free(list);
        list = next;
    }
}

/* Takes the finished jobs older than EXPIRE_US out of the registry and
 * frees them. */
static void sweep(void)
{
    job_t *dead = NULL;
    int64_t now = vl_time_now_us();
    pthread_mutex_lock(&reg.mu);
    for (job_t **pp = &reg.jobs; *pp;) {
        job_t *j = *pp;
        if (j->state != JOB_COUNTING && now - j->finished_us >= EXPIRE_US) {
            *pp = j->next;
            j->next = dead;
            dead = j;
        } else {
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&reg.mu);
    jobs_free(dead);
}

static int same_owner(const job_t *j, const vl_principal_t *who)
{
    return j->role == who->role && !strcmp(j->subject, who->subject) &&
           !strcmp(j->token_id, who->token_id);
}

/* The job `id` of x's layer if x's caller started it, else NULL. Call
 * with reg.mu held. */
static job_t **find_locked(vl_fhir_exchange_t *x)
{
    for (job_t **pp = &reg.jobs; *pp; pp = &(*pp)->next)
        if ((*pp)->f == x->f && x->id && !strcmp((*pp)->id, x->id) && same_owner(*pp, &x->who))
            return pp;
    return NULL;
}

static int no_job(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    return vl_x_fail(res, 404, "not-found",
                     "no export job '%.64s' of this caller (unknown, cancelled, expired, or lost "
                     "when the server restarted)",
                     x->id ? x->id : "");
}

void vl_export_shutdown(vl_fhir_t *f)
{
    job_t *mine = NULL;
    pthread_mutex_lock(&reg.mu);
    for (job_t **pp = &reg.jobs; *pp;) {
        job_t *j = *pp;
        if (j->f == f) {
            *pp = j->next;
            atomic_store(&j->cancel, 1);
            j->next = mine;
            mine = j;
        } else {
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&reg.mu);
    jobs_free(mine);
}

/* ------------------------------------------------------------------------
 * Scopes outlive their request: deep copies
 * ---------------------------------------------------------------------- */

typedef struct copier {
    vl_arena_t *a;
    int oom;
} copier_t;

static const char *copy_str(copier_t *c, const char *s)
{
    char *d;
    if (!s)
        return NULL;
    if (!(d = vl_arena_strdup(c->a, s)))
        c->oom = 1;
    return d;
}

static void *copy_mem(copier_t *c, const void *src, size_t n, size_t size)
{
    void *d;
    if (!n || !src)
        return NULL;
    if (!(d = vl_arena_alloc(c->a, n * size))) {
        c->oom = 1;
        return NULL;
    }
    memcpy(d, src, n * size);
    return d;
}

static const char *const *copy_strs(copier_t *c, const char *const *list, size_t n)
{
    const char **d = copy_mem(c, list, n, sizeof *list);
    for (size_t i = 0; d && i < n; i++)
        d[i] = copy_str(c, list[i]);
    return d;
}

static const vl_scope_code_t *copy_codes(copier_t *c, const vl_scope_code_t *codes, size_t n)
{
    vl_scope_code_t *d = copy_mem(c, codes, n, sizeof *codes);
    for (size_t i = 0; d && i < n; i++) {
        d[i].system = copy_str(c, codes[i].system);
        d[i].code = copy_str(c, codes[i].code);
    }
    return d;
}

/* *out = a copy of `in` whose every list and string is in `a`. 0, or -1
 * when out of memory. */
static int scope_copy(vl_arena_t *a, const vl_scope_t *in, vl_scope_t *out)
{
    copier_t c = {a, 0};
    vl_scope_rule_t *rules;
    *out = *in;
    out->patients = copy_strs(&c, in->patients, in->n_patients);
    rules = copy_mem(&c, in->rules, in->n_rules, sizeof *in->rules);
    for (size_t i = 0; rules && i < in->n_rules; i++) {
        rules[i].patient = copy_str(&c, in->rules[i].patient);
        rules[i].types = copy_strs(&c, in->rules[i].types, in->rules[i].n_types);
        rules[i].codes = copy_codes(&c, in->rules[i].codes, in->rules[i].n_codes);
    }
    out->rules = rules;
    out->ref_type = copy_str(&c, in->ref_type);
    out->ref_param = copy_str(&c, in->ref_param);
    out->refs = copy_strs(&c, in->refs, in->n_refs);
    out->basis = copy_str(&c, in->basis);
    out->category_type = copy_str(&c, in->category_type);
    out->categories = copy_codes(&c, in->categories, in->n_categories);
    out->types = copy_strs(&c, in->types, in->n_types);
    return c.oom ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Counting (the job's thread)
 * ---------------------------------------------------------------------- */

static void *job_main(void *arg)
{
    job_t *j = arg;
    vl_store_t *store = j->f->opts.store;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    int64_t from = 0;
    int failed = 0;
    while (from < j->q.seq && !atomic_load(&j->cancel)) {
        int64_t to = j->q.seq - from > COUNT_RANGE ? from + COUNT_RANGE : j->q.seq;
        int64_t counts[TYPES_MAX] = {0};
        if (vl_store_export_count(store, j->scope, &j->q, j->types, j->n_types, from, to, counts,
                                  &serr) < 0) {
            failed = 1;
            break;
        }
        pthread_mutex_lock(&reg.mu);
        for (size_t i = 0; i < j->n_types; i++)
            j->counts[i] += counts[i];
        j->counted = to;
        pthread_mutex_unlock(&reg.mu);
        from = to;
    }
    pthread_mutex_lock(&reg.mu);
    if (failed) {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "%s",
                 serr.message[0] ? serr.message : vl_store_kind_name(serr.kind));
    } else {
        j->state = JOB_COMPLETE; /* a cancelled job is out of the registry: nobody sees it */
    }
    j->finished_us = vl_time_now_us();
    pthread_mutex_unlock(&reg.mu);
    if (failed)
        vl_log(VL_LOG_ERROR, "export job failed",
               json_pack("{s:s,s:s}", "job", j->id, "reason", j->error));
    else if (!atomic_load(&j->cancel))
        vl_log(VL_LOG_INFO, "export job complete",
               json_pack("{s:s,s:I}", "job", j->id, "snapshot", (json_int_t)j->q.seq));
    return NULL;
}

/* ------------------------------------------------------------------------
 * Kick-off
 * ---------------------------------------------------------------------- */

/* Whether a Prefer header holds the preference respond-async (RFC 7240:
 * comma-separated preferences, each maybe with ";" parameters). */
static int prefers_async(const char *p)
{
    static const char want[] = "respond-async";
    while (p && *p) {
        size_t n;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        n = strcspn(p, ",; \t");
        if (n == sizeof want - 1 && !strncasecmp(p, want, n))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

/* The kick-off's parameters. */
typedef struct kickoff {
    size_t n_types;
    const char *types[TYPES_MAX];
    int64_t since_us;
} kickoff_t;

static int add_type(kickoff_t *k, const vl_fhir_type_t *t)
{
    for (size_t i = 0; i < k->n_types; i++)
        if (!strcmp(k->types[i], t->name))
            return 0;
    if (k->n_types == TYPES_MAX)
        return -1;
    k->types[k->n_types++] = t->name;
    return 0;
}

/* Adds the types of a _type value ("Patient,Observation"). */
static int parse_types(kickoff_t *k, const char *value, int patient_level, vl_error_t *err)
{
    const char *p = value;
    if (!*value)
        return vl_error_set(err, 400, "invalid", "_type", "_type names no resource type");
    while (p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char name[65];
        const vl_fhir_type_t *t;
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (!n || n >= sizeof name)
            return vl_error_set(err, 400, "invalid", "_type",
                                "_type must be a comma-separated list of resource types");
        memcpy(name, p, n);
        name[n] = '\0';
        if (!(t = vl_fhir_type_find(name)))
            return vl_error_set(err, 400, "not-supported", "_type",
                                vl_fhir_is_r4_type(name)
                                    ? "_type: %s is not served by this server"
                                    : "_type: '%s' is not a FHIR resource type",
                                name);
        if (patient_level && !vl_fhir_compartment_member_type(t))
            return vl_error_set(err, 400, "invalid", "_type",
                                "_type: %s is not in the patient compartment (a Patient-level "
                                "export holds only patients' data)",
                                name);
        if (add_type(k, t) < 0)
            return vl_error_set(err, 400, "too-costly", "_type", "_type names too many types");
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* A value as sent: form decoding read an unescaped '+' as a space. 0, or
 * -1 when it does not fit `cap` (no valid value is that long). */
static int unplus(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++)
        dst[i] = src[i] == ' ' ? '+' : src[i];
    dst[i] = '\0';
    return src[i] ? -1 : 0;
}

static int parse_kickoff(vl_fhir_exchange_t *x, int patient_level, kickoff_t *k, vl_error_t *err)
{
    static const char *const formats[] = {"application/fhir+ndjson", "application/ndjson", "ndjson",
                                          NULL};
    int seen_format = 0, seen_since = 0;
    memset(k, 0, sizeof *k);
    for (size_t i = 0; i < x->params.n; i++) {
        const char *name = x->params.items[i].name, *value = x->params.items[i].value;
        char buf[80];
        if (!strcmp(name, "_outputFormat")) {
            int ok = 0;
            if (seen_format++)
                return vl_error_set(err, 400, "invalid", name, "_outputFormat is given twice");
            for (const char *const *f = formats; *f && unplus(buf, sizeof buf, value) == 0; f++)
                ok |= !strcmp(buf, *f);
            if (!ok)
                return vl_error_set(err, 400, "not-supported", name,
                                    "_outputFormat '%.64s' is not supported: this server writes "
                                    "application/fhir+ndjson",
                                    value);
        } else if (!strcmp(name, "_type")) {
            if (parse_types(k, value, patient_level, err) < 0)
                return -1;
        } else if (!strcmp(name, "_since")) {
            int64_t hi;
            int prec;
            if (seen_since++)
                return vl_error_set(err, 400, "invalid", name, "_since is given twice");
            if (unplus(buf, sizeof buf, value) < 0 ||
                vl_time_parse_range(buf, &k->since_us, &hi, &prec) < 0 || prec < 4)
                return vl_error_set(err, 400, "invalid", name,
                                    "_since must be a FHIR instant (2024-05-06T10:00:00Z)");
            if (k->since_us <= 0)
                k->since_us = 0;                   /* before 1970: every version is later */
        } else if (strcmp(name, "_format") != 0) { /* _format: the transport's */
            return vl_error_set(err, 400, "not-supported", name,
                                "parameter '%.64s' is not supported by this server's $export "
                                "(it takes _outputFormat, _type and _since)",
                                name);
        }
    }
    if (!k->n_types) /* every type the level holds */
        for (const vl_fhir_type_t *t = vl_fhir_types; t->name; t++)
            if ((!patient_level || vl_fhir_compartment_member_type(t)) && add_type(k, t) < 0)
                return vl_error_set(err, 500, "exception", NULL, "too many served types");
    return 0;
}

/* The kick-off's URL as received: base, path and query. */
static const char *request_url(vl_fhir_exchange_t *x, vl_arena_t *a)
{
    const vl_fhir_request_t *req = x->req;
    vl_buf_t b = VL_BUF_INIT(64 * 1024);
    const char *url;
    vl_buf_printf(&b, "%s%s", req->base_url, req->path);
    for (size_t i = 0; req->params && i < req->params->n; i++) {
        vl_buf_puts(&b, i ? "&" : "?");
        vl_buf_query_encode(&b, req->params->items[i].name);
        vl_buf_puts(&b, "=");
        vl_buf_query_encode(&b, req->params->items[i].value);
    }
    url = b.failed || !b.data ? NULL : vl_arena_strdup(a, b.data);
    vl_buf_free(&b);
    return url;
}

/* A new job for x (not yet registered, no thread): 0, or -1 with err. */
static int job_new(vl_fhir_exchange_t *x, const kickoff_t *k, int patient_level, job_t **out,
                   vl_error_t *err)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    unsigned char rnd[16];
    job_t *j = calloc(1, sizeof *j);
    *out = NULL;
    if (!j || !(j->arena = vl_arena_new())) {
        free(j);
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    }
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(j->id, sizeof j->id, rnd, sizeof rnd);
    j->f = x->f;
    j->role = x->who.role;
    snprintf(j->subject, sizeof j->subject, "%s", x->who.subject);
    snprintf(j->token_id, sizeof j->token_id, "%s", x->who.token_id);
    j->type_name = x->type ? x->type->name : NULL;
    snprintf(j->patient, sizeof j->patient, "%s", x->id ? x->id : "");
    j->route = x->row->pattern;
    j->n_types = k->n_types;
    memcpy(j->types, k->types, k->n_types * sizeof *k->types);
    j->q.since_us = k->since_us;
    j->q.compartments = patient_level;
    j->q.patient = x->id ? j->patient : NULL;
    j->state = JOB_COUNTING;
    atomic_init(&j->cancel, 0);
    if (!(j->request = request_url(x, j->arena)) ||
        scope_copy(j->arena, &x->scope, &j->scope) < 0) {
        job_free(j);
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    }
    if (vl_store_export_seq(x->f->opts.store, &j->q.seq, &j->transaction_us, &serr) < 0) {
        job_free(j);
        return vl_fhir_store_error(&serr, err);
    }
    if (!j->q.seq)
        j->transaction_us = vl_time_now_us();
    *out = j;
    return 0;
}

/* Registers j and starts its thread, within the limits; -1 with err
 * (429, 503) when it cannot: j is then freed. */
static int job_start(job_t *j, vl_error_t *err)
{
    size_t mine = 0, mine_kept = 0, running = 0, kept = 0;
    int rc = 0;
    pthread_mutex_lock(&reg.mu);
    for (const job_t *o = reg.jobs; o; o = o->next) {
        int own = o->f == j->f && o->role == j->role && !strcmp(o->subject, j->subject) &&
                  !strcmp(o->token_id, j->token_id);
        kept++;
        mine_kept += own;
        if (o->state == JOB_COUNTING) {
            running++;
            mine += own;
        }
    }
    if (mine_kept >= OWNER_KEPT_MAX)
        rc = vl_error_set(err, 429, "throttled", NULL,
                          "this caller keeps %d export jobs already; DELETE finished ones (or "
                          "wait for them to expire) and retry",
                          OWNER_KEPT_MAX);
    else if (mine >= OWNER_MAX)
        rc = vl_error_set(err, 429, "throttled", NULL,
                          "%d export jobs of this caller are running already; retry later",
                          OWNER_MAX);
    else if (running >= RUNNING_MAX || kept >= KEPT_MAX)
        rc = vl_error_set(err, 429, "throttled", NULL,
                          "the server runs as many export jobs as it takes; retry later");
    else if (pthread_create(&j->thread, NULL, job_main, j) != 0)
        rc = vl_error_set(err, 503, "transient", NULL, "the export job cannot be started now");
    if (rc == 0) {
        j->started = 1;
        j->next = reg.jobs;
        reg.jobs = j;
    }
    pthread_mutex_unlock(&reg.mu);
    if (rc < 0)
        job_free(j);
    return rc;
}

int vl_h_export(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    int patient_level = x->type != NULL; /* Patient/$export, Patient/{id}/$export */
    kickoff_t k;
    job_t *j;
    json_t *fields;
    char msg[160];
    if (!prefers_async(x->req->prefer))
        return vl_x_fail(res, 400, "invalid",
                         "$export is asynchronous: send the header Prefer: respond-async");
    if (parse_kickoff(x, patient_level, &k, &err) < 0)
        return vl_x_error(res, &err);
    if (x->id) { /* the patient must exist and be visible */
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        vl_record_t rec;
        if (vl_store_read(x->f->opts.store, x->scope, "Patient", x->id, 0, &rec, &serr) < 0)
            return serr.kind == VL_STORE_NOT_FOUND
                       ? vl_x_fail(res, 404, "not-found", "Patient/%s is not known", x->id)
                       : vl_x_store_error(res, &serr);
        vl_record_free(&rec);
        if (rec.deleted)
            return vl_x_fail(res, 404, "not-found", "Patient/%s was deleted", x->id);
    }
    sweep();
    if (job_new(x, &k, patient_level, &j, &err) < 0)
        return vl_x_error(res, &err);
    snprintf(res->content_location, sizeof res->content_location, "%s/_export/%s",
             vl_x_fhir_base(x), j->id);
    snprintf(msg, sizeof msg, "export job %s started: poll its status at the Content-Location",
             j->id);
    fields = json_pack("{s:s,s:s,s:I,s:i}", "job", j->id, "route", j->route, "snapshot",
                       (json_int_t)j->q.seq, "types", (int)j->n_types);
    if (job_start(j, &err) < 0) { /* j is gone */
        json_decref(fields);
        res->content_location[0] = '\0';
        if (err.status == 429)
            res->retry_after = RETRY_BUSY;
        return vl_x_error(res, &err);
    }
    vl_log(VL_LOG_INFO, "export job started", fields);
    return vl_x_json(res, 202, vl_outcome_new("information", "informational", msg));
}

/* ------------------------------------------------------------------------
 * Status and cancel
 * ---------------------------------------------------------------------- */

/* The manifest of a complete job (call with reg.mu held). */
static json_t *manifest(vl_fhir_exchange_t *x, const job_t *j)
{
    const char *base = vl_x_fhir_base(x);
    char when[32], url[640];
    json_t *out = json_array();
    int n = 0;
    vl_time_format(j->transaction_us, when);
    for (size_t i = 0; out && i < j->n_types; i++) {
        if (!j->counts[i])
            continue;
        snprintf(url, sizeof url, "%s/_export/%s/%d", base, j->id, ++n);
        json_array_append_new(out, json_pack("{s:s,s:s,s:I}", "type", j->types[i], "url", url,
                                             "count", (json_int_t)j->counts[i]));
    }
    if (!out)
        return NULL;
    return json_pack("{s:s,s:s,s:b,s:o,s:[]}", "transactionTime", when, "request", j->request,
                     "requiresAccessToken", 1, "output", out, "error");
}

int vl_h_export_status(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    job_t **pp;
    json_t *doc = NULL;
    char why[300];
    int64_t counted = 0, total = 0;
    job_state_t state;
    sweep();
    pthread_mutex_lock(&reg.mu);
    if (!(pp = find_locked(x))) {
        pthread_mutex_unlock(&reg.mu);
        return no_job(x, res);
    }
    state = (*pp)->state;
    counted = (*pp)->counted;
    total = (*pp)->q.seq;
    snprintf(why, sizeof why, "%s", (*pp)->error);
    if (state == JOB_COMPLETE && !(doc = manifest(x, *pp))) {
        pthread_mutex_unlock(&reg.mu);
        return vl_x_fail(res, 500, "exception", "out of memory");
    }
    pthread_mutex_unlock(&reg.mu);
    if (state == JOB_FAILED)
        return vl_x_fail(res, 500, "exception", "the export failed: %s", why);
    if (state == JOB_COUNTING) {
        int pct = total > 0 ? (int)(counted * 100 / total) : 0;
        snprintf(res->progress, sizeof res->progress, "counting: %d%% (%lld of %lld versions)", pct,
                 (long long)counted, (long long)total);
        res->retry_after = RETRY_COUNTING;
        return vl_x_json(res, 202, vl_outcome_new("information", "informational", res->progress));
    }
    res->content_type = "application/json";
    return vl_x_json(res, 200, doc);
}

int vl_h_export_cancel(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    job_t **pp, *j;
    char msg[120];
    sweep();
    pthread_mutex_lock(&reg.mu);
    if (!(pp = find_locked(x))) {
        pthread_mutex_unlock(&reg.mu);
        return no_job(x, res);
    }
    j = *pp;
    *pp = j->next;
    atomic_store(&j->cancel, 1);
    pthread_mutex_unlock(&reg.mu);
    snprintf(msg, sizeof msg, "export job %s was cancelled", j->id);
    job_free(j); /* the thread stops within one counting range */
    return vl_x_json(res, 202, vl_outcome_new("information", "informational", msg));
}

/* ------------------------------------------------------------------------
 * Files
 * ---------------------------------------------------------------------- */

/* A file streamed from the store: pages of the snapshot, each body then
 * "\n". Owns everything it reads with (the request's arena is not its). */
typedef struct file_stream {
    vl_store_t *store;
    vl_arena_t *arena; /* the scope's lists, q.patient */
    vl_scope_t scope;
    vl_export_query_t q;
    const char *type; /* static */
    char job[33];
    int64_t after; /* the last sequence number read */
    vl_records_t page;
    size_t item; /* the record being sent */
    size_t off;  /* bytes of it sent (body_len + 1 with its newline) */
    int end, failed;
} file_stream_t;

static void file_free(void *ctx)
{
    file_stream_t *fs = ctx;
    if (!fs)
        return;
    vl_records_free(&fs->page);
    vl_arena_free(fs->arena);
    free(fs);
}

/* The next page into fs->page: 0 (fs->end once none is left), or -1. */
static int next_page(file_stream_t *fs)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_records_free(&fs->page);
    fs->item = fs->off = 0;
    if (vl_store_export_page(fs->store, fs->scope, &fs->q, fs->type, fs->after, PAGE_ROWS,
                             PAGE_BYTES, &fs->page, &fs->after, &serr) < 0) {
        vl_log(VL_LOG_ERROR, "export file failed",
               json_pack("{s:s,s:s,s:I,s:s}", "job", fs->job, "type", fs->type, "after",
                         (json_int_t)fs->after, "reason", serr.message));
        return -1;
    }
    fs->end = fs->page.n == 0;
    return 0;
}

static ssize_t file_read(void *ctx, char *buf, size_t max)
{
    file_stream_t *fs = ctx;
    size_t n = 0;
    if (fs->failed)
        return -1;
    while (n < max) {
        if (fs->item < fs->page.n) {
            const vl_record_t *r = &fs->page.items[fs->item];
            if (fs->off < r->body_len) {
                size_t c = r->body_len - fs->off < max - n ? r->body_len - fs->off : max - n;
                memcpy(buf + n, r->body + fs->off, c);
                n += c;
                fs->off += c;
            } else {
                buf[n++] = '\n';
                fs->item++;
                fs->off = 0;
            }
            continue;
        }
        if (fs->end)
            break;
        if (next_page(fs) < 0) {
            fs->failed = 1; /* what was read goes; then the transfer breaks off */
            return n ? (ssize_t)n : -1;
        }
    }
    return (ssize_t)n;
}

typedef struct noting {
    vl_fhir_exchange_t *x;
    const char *what; /* "<Type>?_export=<job>" */
} noting_t;

static int note_patient(void *ctx, const char *patient)
{
    noting_t *n = ctx;
    return vl_x_disclose_patient(n->x, patient, n->what) < 0 ? 1 : 0;
}

int vl_h_export_file(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const vl_policy_t *p = x->f->opts.policy;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_error_t err = VL_ERROR_INIT;
    vl_access_t what = {"search-type", NULL, NULL, NULL, "$export", 0, NULL};
    vl_export_query_t q;
    vl_scope_t scope;
    file_stream_t *fs;
    const char *type = NULL;
    char job_id[33], patient[65], compartment[80], ref[120];
    noting_t noting = {x, ref};
    job_t **pp;
    int rc;
    sweep();
    pthread_mutex_lock(&reg.mu);
    if (!(pp = find_locked(x)) || (*pp)->state != JOB_COMPLETE) {
        int counting = pp && (*pp)->state == JOB_COUNTING;
        pthread_mutex_unlock(&reg.mu);
        if (counting)
            return vl_x_fail(res, 404, "not-found",
                             "export job %s is not complete yet: its files are listed in its "
                             "manifest once it is",
                             x->id);
        return no_job(x, res);
    }
    for (size_t i = 0, n = 0; i < (*pp)->n_types && !type; i++)
        if ((*pp)->counts[i] && (int64_t)++n == x->vid)
            type = (*pp)->types[i];
    q = (*pp)->q;
    snprintf(job_id, sizeof job_id, "%s", (*pp)->id);
    snprintf(patient, sizeof patient, "%s", (*pp)->patient);
    what.resource_type = (*pp)->type_name;
    what.route = (*pp)->route;
    pthread_mutex_unlock(&reg.mu);
    if (!type)
        return vl_x_fail(res, 404, "not-found", "export job %s has no file %lld", job_id,
                         (long long)x->vid);
    q.patient = patient[0] ? patient : NULL;
    if (patient[0]) {
        snprintf(compartment, sizeof compartment, "Patient/%s", patient);
        what.resource_id = patient;
        what.compartment = compartment;
    }
    /* the kick-off's description, authorized anew: the current scope */
    if (p->authorize(p->ctx, &x->who, &what, x->arena, &scope, &err) < 0) {
        if (!err.status)
            vl_error_set(&err, 403, "forbidden", NULL, "not permitted");
        return vl_x_error(res, &err);
    }
    x->scope = scope; /* the AuditEvents name the Consents it rests on */
    /* the accounting: every patient whose data the file holds */
    snprintf(ref, sizeof ref, "%s?_export=%s", type, job_id);
    rc = vl_store_export_patients(x->f->opts.store, scope, &q, type, note_patient, &noting, &serr);
    if (rc < 0)
        return vl_x_store_error(res, &serr);
    if (rc > 0 || x->disclose_failed)
        return vl_x_fail(res, 503, "transient",
                         "the access could not be recorded (accounting of disclosures), so "
                         "nothing was disclosed; retry later");
    fs = calloc(1, sizeof *fs);
    if (!fs || !(fs->arena = vl_arena_new()) || scope_copy(fs->arena, &scope, &fs->scope) < 0 ||
        (q.patient && !(q.patient = vl_arena_strdup(fs->arena, q.patient)))) {
        file_free(fs);
        return vl_x_fail(res, 500, "exception", "out of memory");
    }
    fs->store = x->f->opts.store;
    fs->q = q;
    fs->type = type;
    snprintf(fs->job, sizeof fs->job, "%s", job_id);
    res->status = 200;
    res->content_type = "application/fhir+ndjson";
    res->stream = file_read;
    res->stream_free = file_free;
    res->stream_ctx = fs;
    return 0;
}
