/*
 * vitalog — consent/consent.c: the Consent cache and the rules it gives.
 *
 * DESIGN NOTES
 *
 * 1. What a Consent is read as (docs/consent.md is the user's version).
 *    Only Consents with status "active" and a scope coding
 *    patient-privacy (system consentscope, or no system), with a patient
 *    reference "Patient/<id>", count. Their provision tree is flattened:
 *      - the root provision is a permit unless its type is "deny";
 *      - each nested provision (one level deep: deeper ones are ignored,
 *        which can only make less visible) is a deny when its type is
 *        "deny" and a permit otherwise;
 *      - a nested provision inherits from the root every element it does
 *        not give itself (actor, action, period, class, code, dataPeriod):
 *        it narrows the root.
 *    A permit applies to a caller only when one of its actors' references
 *    is one of the caller's references; a deny without actors applies to
 *    every caller. A provision without action allows (or denies) every
 *    action; otherwise an action coding (system consentaction or none)
 *    must name the one asked. provision.period must contain now (a missing
 *    start or end is open). class codes are resource types (system
 *    resource-types, or none); code codings are matched with their system
 *    (none: any system); dataPeriod is compared with the version's facet
 *    time.
 *
 * 2. The cache is a snapshot (an immutable array of provisions) replaced
 *    whole when the store's Consent generation moved. A request reads the
 *    generation first, then (if it moved) loads, so a Consent committed
 *    during the load is loaded again by the next request.
 *
 * 3. The rules of an actor set and action are built once and kept (a small
 *    LRU of results) until the next reload or until a period of one of the
 *    provisions that could apply begins or ends; a request takes a
 *    reference, released when its arena is freed (vl_arena_defer), so a
 *    reload never pulls rules from under a request, and a decision costs a
 *    lookup, not a scan of every Consent.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vitalog/consent.h"

#define CONSENT_SCOPE_SYSTEM "http://terminology.hl7.org/CodeSystem/consentscope"
#define CONSENT_ACTION_SYSTEM "http://terminology.hl7.org/CodeSystem/consentaction"
#define RESOURCE_TYPES_SYSTEM "http://hl7.org/fhir/resource-types"
#define LOAD_PAGE 1000

typedef struct provision {
    char *consent; /* Consent id */
    char *patient; /* Patient id */
    int deny;
    char **actors; /* references; none: any (a permit then applies to nobody) */
    size_t n_actors;
    unsigned actions; /* bit per vl_consent_action_t; 0: every action */
    int64_t from, to; /* provision.period, [from, to) */
    char **types;
    size_t n_types;
    vl_scope_code_t *codes; /* strings owned */
    size_t n_codes;
    int has_data;
    int64_t data_lo, data_hi;
} provision_t;

typedef struct snapshot {
    provision_t *p;
    size_t n, cap;
} snapshot_t;

#define CACHE_SIZE 32 /* actor sets whose rules are kept built */

typedef struct vl_consent_result vl_consent_result_t;

struct vl_consent {
    vl_store_t *store;
    int slot; /* vl_store_watch("Consent") */
    vl_consent_result_t *cache[CACHE_SIZE];
    uint64_t tick;
    pthread_mutex_t mu;
    snapshot_t snap;
    uint64_t gen; /* generation the snapshot was loaded at */
    int loaded;
};

/* ------------------------------------------------------------------------
 * Reading one Consent
 * ---------------------------------------------------------------------- */

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return vl_json_is_string(v) ? json_string_value(v) : NULL;
}

static void provision_free(provision_t *p)
{
    free(p->consent);
    free(p->patient);
    for (size_t i = 0; i < p->n_actors; i++)
        free(p->actors[i]);
    free(p->actors);
    for (size_t i = 0; i < p->n_types; i++)
        free(p->types[i]);
    free(p->types);
    for (size_t i = 0; i < p->n_codes; i++) {
        free((char *)p->codes[i].system);
        free((char *)p->codes[i].code);
    }
    free(p->codes);
}

static void snapshot_free(snapshot_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        provision_free(&s->p[i]);
    free(s->p);
    memset(s, 0, sizeof *s);
}

static int push_str(char ***list, size_t *n, const char *s)
{
    char **grown = realloc(*list, (*n + 1) * sizeof **list);
    if (!grown)
        return -1;
    *list = grown;
    if (!(grown[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

/* Appends a copy of a coding (system may be NULL). 0 or -1. */
static int push_code(provision_t *p, const char *system, const char *code)
{
    vl_scope_code_t *grown = realloc(p->codes, (p->n_codes + 1) * sizeof *grown);
    if (!grown)
        return -1;
    p->codes = grown;
    grown[p->n_codes].system = system ? strdup(system) : NULL;
    grown[p->n_codes].code = strdup(code);
    if (!grown[p->n_codes].code || (system && !grown[p->n_codes].system)) {
        free((char *)grown[p->n_codes].system);
        free((char *)grown[p->n_codes].code);
        return -1;
    }
    p->n_codes++;
    return 0;
}

/* A Period as [from, to): start's first instant, end's last; open ends
 * are the extremes. -1 when a date does not parse. */
static int period(const json_t *per, int64_t *from, int64_t *to)
{
    const char *s = str(per, "start"), *e = str(per, "end");
    int64_t lo, hi;
    *from = INT64_MIN;
    *to = INT64_MAX;
    if (s) {
        if (vl_time_parse_range(s, &lo, &hi, NULL) < 0)
            return -1;
        *from = lo;
    }
    if (e) {
        if (vl_time_parse_range(e, &lo, &hi, NULL) < 0)
            return -1;
        *to = hi;
    }
    return 0;
}

static unsigned action_bit(const char *code)
{
    if (!strcmp(code, "access"))
        return 1u << VL_CONSENT_ACCESS;
    if (!strcmp(code, "collect"))
        return 1u << VL_CONSENT_COLLECT;
    if (!strcmp(code, "correct"))
        return 1u << VL_CONSENT_CORRECT;
    return 0; /* use, disclose, ...: not an action vitalog decides */
}

/* The elements one provision gives itself (`inherit`: the root's, for what
 * a nested one leaves out). */
static int read_provision(const json_t *pj, const provision_t *inherit, provision_t *p)
{
    const json_t *v, *item, *coding;
    size_t i, k;
    if ((v = json_object_get(pj, "actor"))) {
        json_array_foreach (v, i, item) {
            const char *ref = str(json_object_get(item, "reference"), "reference");
            if (ref && push_str(&p->actors, &p->n_actors, ref) < 0)
                return -1;
        }
    } else if (inherit) {
        for (i = 0; i < inherit->n_actors; i++)
            if (push_str(&p->actors, &p->n_actors, inherit->actors[i]) < 0)
                return -1;
    }
    if ((v = json_object_get(pj, "action"))) {
        unsigned bits = 0;
        json_array_foreach (v, i, item) {
            json_array_foreach (json_object_get(item, "coding"), k, coding) {
                const char *sys = str(coding, "system"), *code = str(coding, "code");
                if (code && (!sys || !strcmp(sys, CONSENT_ACTION_SYSTEM)))
                    bits |= action_bit(code);
            }
        }
        /* actions given, none of them decided here: it allows nothing */
        p->actions = bits ? bits : 1u << 31;
    } else if (inherit) {
        p->actions = inherit->actions;
    }
    if ((v = json_object_get(pj, "period"))) {
        if (period(v, &p->from, &p->to) < 0)
            return 1; /* unreadable: the provision is left out */
    } else if (inherit) {
        p->from = inherit->from;
        p->to = inherit->to;
    } else {
        p->from = INT64_MIN;
        p->to = INT64_MAX;
    }
    if ((v = json_object_get(pj, "class"))) {
        json_array_foreach (v, i, item) {
            const char *sys = str(item, "system"), *code = str(item, "code");
            if (code && (!sys || !strcmp(sys, RESOURCE_TYPES_SYSTEM)) &&
                push_str(&p->types, &p->n_types, code) < 0)
                return -1;
        }
        if (!p->n_types)
            return 1; /* classes vitalog cannot read: covers nothing */
    } else if (inherit) {
        for (i = 0; i < inherit->n_types; i++)
            if (push_str(&p->types, &p->n_types, inherit->types[i]) < 0)
                return -1;
    }
    if ((v = json_object_get(pj, "code"))) {
        json_array_foreach (v, i, item) {
            json_array_foreach (json_object_get(item, "coding"), k, coding) {
                const char *sys = str(coding, "system"), *code = str(coding, "code");
                if (code && push_code(p, sys, code) < 0)
                    return -1;
            }
        }
        if (!p->n_codes)
            return 1; /* codes given as text only: covers nothing */
    } else if (inherit) {
        for (i = 0; i < inherit->n_codes; i++)
            if (push_code(p, inherit->codes[i].system, inherit->codes[i].code) < 0)
                return -1;
    }
    if ((v = json_object_get(pj, "dataPeriod"))) {
        if (period(v, &p->data_lo, &p->data_hi) < 0)
            return 1;
        p->has_data = 1;
    } else if (inherit && inherit->has_data) {
        p->has_data = 1;
        p->data_lo = inherit->data_lo;
        p->data_hi = inherit->data_hi;
    }
    return 0;
}

/* Adds one provision; 1 added, 0 left out (unreadable), -1 out of memory.
 * `inherit` may point into s->p: it is read before s->p grows. */
static int add_provision(snapshot_t *s, const json_t *pj, const provision_t *inherit, int deny,
                         const char *consent, const char *patient)
{
    provision_t p;
    int rc;
    memset(&p, 0, sizeof p);
    p.deny = deny;
    if (!(p.consent = strdup(consent)) || !(p.patient = strdup(patient)))
        rc = -1;
    else
        rc = read_provision(pj, inherit, &p);
    if (rc != 0) {
        provision_free(&p);
        return rc < 0 ? -1 : 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        provision_t *grown = realloc(s->p, cap * sizeof *grown);
        if (!grown) {
            provision_free(&p);
            return -1;
        }
        s->p = grown;
        s->cap = cap;
    }
    s->p[s->n++] = p;
    return 1;
}

static int is_privacy_scope(const json_t *scope)
{
    size_t i;
    const json_t *coding;
    json_array_foreach (json_object_get(scope, "coding"), i, coding) {
        const char *sys = str(coding, "system"), *code = str(coding, "code");
        if (code && !strcmp(code, "patient-privacy") &&
            (!sys || !strcmp(sys, CONSENT_SCOPE_SYSTEM)))
            return 1;
    }
    return 0;
}

/* Adds the provisions of one stored Consent (body text). -1: out of memory. */
static int add_consent(snapshot_t *s, const char *id, const char *body, size_t len)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *c = vl_json_parse(body, len, NULL, &err);
    const json_t *root, *nested, *item;
    const char *status, *patient, *rtype;
    size_t i, root_at;
    int rc = 0;
    vl_error_clear(&err);
    if (!c)
        return 0;
    status = str(c, "status");
    patient = str(json_object_get(c, "patient"), "reference");
    root = json_object_get(c, "provision");
    if (!status || strcmp(status, "active") != 0 || !patient || strncmp(patient, "Patient/", 8) ||
        strchr(patient + 8, '/') || !patient[8] || !is_privacy_scope(json_object_get(c, "scope")) ||
        !json_is_object(root))
        goto out;
    patient += 8;
    rtype = str(root, "type");
    rc = add_provision(s, root, NULL, rtype && !strcmp(rtype, "deny"), id, patient);
    if (rc <= 0) /* out of memory, or the root was unreadable: nothing to narrow */
        goto out;
    root_at = s->n - 1;
    rc = 0;
    nested = json_object_get(root, "provision");
    json_array_foreach (nested, i, item) {
        const char *t = str(item, "type");
        if (add_provision(s, item, &s->p[root_at], t && !strcmp(t, "deny"), id, patient) < 0) {
            rc = -1;
            goto out;
        }
    }
out:
    json_decref(c);
    return rc;
}

/* Loads every active Consent into a new snapshot. */
static int load(vl_consent_t *c, snapshot_t *out, vl_error_t *err)
{
    vl_query_value_t active = {.cmp = VL_CMP_EQ, .text = "active"};
    vl_query_cond_t cond = {.param = "status",
                            .kind = VL_INDEX_TOKEN,
                            .match = VL_MATCH_DEFAULT,
                            .missing = -1,
                            .n = 1,
                            .values = &active};
    vl_query_t q;
    memset(out, 0, sizeof *out);
    memset(&q, 0, sizeof q);
    q.type = "Consent";
    q.n = 1;
    q.conds = &cond;
    q.count = LOAD_PAGE;
    for (q.offset = 0;; q.offset += LOAD_PAGE) {
        vl_store_err_t serr = VL_STORE_ERR_INIT;
        vl_records_t page;
        if (vl_store_search(c->store, vl_scope_everything(), &q, 0, 0, &page, &serr) < 0) {
            snapshot_free(out);
            return vl_error_set(err, 503, "transient", NULL, "Consents cannot be read: %s",
                                serr.message);
        }
        for (size_t i = 0; i < page.n; i++)
            if (page.items[i].body && add_consent(out, page.items[i].id, page.items[i].body,
                                                  page.items[i].body_len) < 0) {
                vl_records_free(&page);
                snapshot_free(out);
                return vl_error_set(err, 503, "transient", NULL, "out of memory");
            }
        if (page.n < (size_t)LOAD_PAGE) {
            vl_records_free(&page);
            return 0;
        }
        vl_records_free(&page);
    }
}

/* ------------------------------------------------------------------------
 * Rules for a request
 * ---------------------------------------------------------------------- */

static int names(const provision_t *p, const char *const *actors, size_t n)
{
    for (size_t i = 0; i < p->n_actors; i++)
        for (size_t k = 0; k < n; k++)
            if (!strcmp(p->actors[i], actors[k]))
                return 1;
    return 0;
}

/* A scope rule in `arena` from a provision. */
static int to_rule(vl_arena_t *a, const provision_t *p, vl_scope_rule_t *r)
{
    memset(r, 0, sizeof *r);
    r->deny = p->deny;
    if (!(r->patient = vl_arena_strdup(a, p->patient)))
        return -1;
    if (p->n_types) {
        const char **types = vl_arena_alloc(a, p->n_types * sizeof *types);
        if (!types)
            return -1;
        for (size_t i = 0; i < p->n_types; i++)
            if (!(types[i] = vl_arena_strdup(a, p->types[i])))
                return -1;
        r->types = types;
        r->n_types = p->n_types;
    }
    if (p->n_codes) {
        vl_scope_code_t *codes = vl_arena_alloc(a, p->n_codes * sizeof *codes);
        if (!codes)
            return -1;
        for (size_t i = 0; i < p->n_codes; i++) {
            codes[i].system = p->codes[i].system ? vl_arena_strdup(a, p->codes[i].system) : NULL;
            codes[i].code = vl_arena_strdup(a, p->codes[i].code);
            if (!codes[i].code || (p->codes[i].system && !codes[i].system))
                return -1;
        }
        r->codes = codes;
        r->n_codes = p->n_codes;
    }
    r->has_period = p->has_data;
    r->lo = p->data_lo;
    r->hi = p->data_hi;
    return 0;
}

/* The rules for one actor set and action, built once and shared by the
 * requests that ask the same until a Consent commits or a provision's
 * period starts or ends (valid_until). Immutable once built; each request
 * holds a reference until its arena is freed. */
struct vl_consent_result {
    atomic_int refs;
    vl_arena_t *mem; /* rules, their strings, basis */
    vl_scope_rule_t *rules;
    size_t n, permits;
    const char *basis;
    char key[300]; /* the actors, '\n'-joined */
    int action;
    uint64_t gen;
    int64_t valid_from, valid_until; /* the rules hold for now in [from, until) */
    uint64_t used;
};

static void result_release(void *p)
{
    vl_consent_result_t *r = p;
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        vl_arena_free(r->mem);
        free(r);
    }
}

static void cache_clear(vl_consent_t *c)
{
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        result_release(c->cache[i]);
        c->cache[i] = NULL;
    }
}

/* Whether p would apply to the actors and action at some time. */
static int applies_sometime(const provision_t *p, const char *const *actors, size_t n,
                            vl_consent_action_t action)
{
    if (p->actions && !(p->actions & (1u << action)))
        return 0;
    return p->deny && !p->n_actors ? 1 : names(p, actors, n);
}

static vl_consent_result_t *build(vl_consent_t *c, const char *const *actors, size_t n_actors,
                                  vl_consent_action_t action, int64_t now)
{
    vl_consent_result_t *r = calloc(1, sizeof *r);
    vl_buf_t ids = VL_BUF_INIT(0);
    const char *last_consent = NULL;
    size_t cap = 0;
    if (!r || !(r->mem = vl_arena_new())) {
        free(r);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->valid_from = INT64_MIN;
    r->valid_until = INT64_MAX;
    /* permits first; then the denies of the patients a permit covers */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < c->snap.n; i++) {
            const provision_t *p = &c->snap.p[i];
            int covered = 0;
            if (p->deny != pass || !applies_sometime(p, actors, n_actors, action))
                continue;
            /* the result holds between the boundaries of these provisions'
             * periods around now */
            if (p->from > now && p->from < r->valid_until)
                r->valid_until = p->from;
            if (p->to > now && p->to < r->valid_until)
                r->valid_until = p->to;
            if (p->from <= now && p->from > r->valid_from)
                r->valid_from = p->from;
            if (p->to <= now && p->to > r->valid_from)
                r->valid_from = p->to;
            if (now < p->from || now >= p->to) /* not in force now */
                continue;
            for (size_t k = 0; pass && k < r->n; k++)
                covered |= !r->rules[k].deny && !strcmp(r->rules[k].patient, p->patient);
            if (pass && !covered)
                continue;
            if (r->n == cap) {
                size_t ncap = cap ? 2 * cap : 8;
                vl_scope_rule_t *grown = vl_arena_alloc(r->mem, ncap * sizeof *grown);
                if (!grown)
                    goto oom;
                if (r->n)
                    memcpy(grown, r->rules, r->n * sizeof *grown);
                r->rules = grown;
                cap = ncap;
            }
            if (to_rule(r->mem, p, &r->rules[r->n]) < 0)
                goto oom;
            r->n++;
            if (!pass) {
                r->permits++;
                /* a Consent's provisions are adjacent in the snapshot: one
                 * pair per run of them */
                if (p->consent != last_consent) {
                    vl_buf_printf(&ids, "%s%s:%s", ids.len ? "," : "", p->patient, p->consent);
                    last_consent = p->consent;
                }
            }
        }
    if (ids.failed || (ids.len && !(r->basis = vl_arena_strdup(r->mem, ids.data))))
        goto oom;
    vl_buf_free(&ids);
    return r;
oom:
    vl_buf_free(&ids);
    result_release(r);
    return NULL;
}

int vl_consent_rules(vl_consent_t *c, const char *const *actors, size_t n_actors,
                     vl_consent_action_t action, int64_t now_us, vl_arena_t *arena,
                     vl_scope_t *scope, const char **consents, vl_error_t *err)
{
    uint64_t gen = vl_store_watch_gen(c->store, c->slot);
    vl_consent_result_t *r = NULL;
    char key[300];
    size_t len = 0, slot = 0;
    if (consents)
        *consents = NULL;
    for (size_t i = 0; i < n_actors && len < sizeof key; i++)
        len += (size_t)snprintf(key + len, sizeof key - len, "%s\n", actors[i]);
    if (len >= sizeof key)
        return vl_error_set(err, 503, "transient", NULL, "the caller's references are too long");
    pthread_mutex_lock(&c->mu);
    if (!c->loaded || gen != c->gen) {
        snapshot_t fresh;
        if (load(c, &fresh, err) < 0) {
            pthread_mutex_unlock(&c->mu);
            return -1;
        }
        snapshot_free(&c->snap);
        cache_clear(c);
        c->snap = fresh;
        c->gen = gen;
        c->loaded = 1;
    }
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        vl_consent_result_t *e = c->cache[i];
        if (e && e->action == (int)action && !strcmp(e->key, key) && e->gen == c->gen &&
            e->valid_from <= now_us && now_us < e->valid_until) {
            r = e;
            break;
        }
        /* a free slot, or the least recently used */
        if (!e || (c->cache[slot] && e->used < c->cache[slot]->used))
            slot = i;
    }
    if (!r) {
        if (!(r = build(c, actors, n_actors, action, now_us))) {
            pthread_mutex_unlock(&c->mu);
            return vl_error_set(err, 503, "transient", NULL, "out of memory");
        }
        snprintf(r->key, sizeof r->key, "%s", key);
        r->action = (int)action;
        r->gen = c->gen;
        result_release(c->cache[slot]);
        c->cache[slot] = r;
    }
    r->used = ++c->tick;
    atomic_fetch_add(&r->refs, 1); /* the request's */
    pthread_mutex_unlock(&c->mu);
    if (vl_arena_defer(arena, result_release, r) < 0) {
        result_release(r);
        return vl_error_set(err, 503, "transient", NULL, "out of memory");
    }
    scope->rules = r->rules;
    scope->n_rules = r->n;
    if (consents)
        *consents = r->basis;
    return (int)r->permits;
}

size_t vl_consent_size(vl_consent_t *c)
{
    size_t n;
    pthread_mutex_lock(&c->mu);
    n = c->snap.n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

vl_consent_t *vl_consent_new(vl_store_t *store)
{
    vl_consent_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->store = store;
    c->slot = vl_store_watch(store, "Consent");
    if (c->slot < 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void vl_consent_free(vl_consent_t *c)
{
    if (!c)
        return;
    cache_clear(c);
    snapshot_free(&c->snap);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
