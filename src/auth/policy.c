/*
 * vitalog — auth/policy.c: the server's policy. Identify the caller by
 * bearer token; decide by role; give the access scope.
 *
 * DESIGN NOTES
 *
 * 1. Default deny. Each role has an explicit list of what it may do; the
 *    last line of authorize() refuses. The table is docs/security.md
 *    "Roles", and tests/unit/auth/test_policy.c checks it row by row.
 *
 * 2. Anonymous callers reach only the capability statement and the health
 *    routes; anything else is 401 with the RFC 6750 challenge (the
 *    interaction layer adds WWW-Authenticate). A caller with credentials
 *    that are not good enough is 403.
 *
 * 3. Scopes carry the decision into the store, so that what a caller may
 *    see is filtered in SQL and a record outside it looks missing:
 *      patient  reads: their compartment and shared records; writes:
 *               their compartment only
 *      device   writes of Observation and Device in its patient's
 *               compartment; no reads (a conditional write's search sees
 *               only that compartment)
 *      clinic   shared records, the Consents that name it, and what the
 *               patients' active Consents permit it (consent.h): the
 *               rules are evaluated in SQL on every read and write
 *      auditor  the ledger, never a record
 *      admin    everything
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "vitalog/auth.h"

struct vl_auth {
    vl_store_t *store;
    unsigned char key[32];
    vl_policy_t policy;
    vl_consent_t *consent;
    vl_jwt_t *jwt;
};

/* ------------------------------------------------------------------------
 * Identify
 * ---------------------------------------------------------------------- */

static int bad_token(vl_error_t *err, const char *why)
{
    return vl_error_set(err, 401, "login", NULL, "%s", why);
}

/* "Type/id" at the end of a reference or URL ("https://h/fhir/Patient/1"). */
static int last_ref(const char *ref, const char *type, char *id, size_t n)
{
    size_t tl = strlen(type);
    const char *p = ref ? strstr(ref, type) : NULL, *last = NULL;
    for (; p; p = strstr(p + 1, type))
        if ((p == ref || p[-1] == '/') && p[tl] == '/')
            last = p;
    if (!last || !last[tl + 1] || strchr(last + tl + 1, '/') || strlen(last + tl + 1) >= n)
        return 0;
    snprintf(id, n, "%s", last + tl + 1);
    return 1;
}

/* A JWT of the configured identity provider: fhirUser decides the role
 * (Patient/x: patient x; Practitioner/x: clinic Practitioner/x, narrowed
 * to the `patient` launch context when there is one); the scopes narrow. */
static int identify_jwt(vl_auth_t *a, const char *token, size_t len, vl_principal_t *who,
                        vl_error_t *err)
{
    json_t *claims;
    const char *user, *launch, *scope, *jti;
    char id[65];
    if (vl_jwt_verify(a->jwt, token, len, vl_time_now_us() / 1000000, &claims, err) < 0)
        return -1;
    user = json_string_value(json_object_get(claims, "fhirUser"));
    launch = json_string_value(json_object_get(claims, "patient"));
    scope = json_string_value(json_object_get(claims, "scope"));
    jti = json_string_value(json_object_get(claims, "jti"));
    if (scope && strlen(scope) >= sizeof who->scopes) {
        json_decref(claims);
        return bad_token(err, "the JWT's scope claim is too long");
    }
    if (user && last_ref(user, "Patient", id, sizeof id)) {
        if (launch && strcmp(launch, id) != 0) {
            json_decref(claims);
            return bad_token(err, "a patient's JWT names another patient as its launch context");
        }
        who->role = VL_ROLE_PATIENT;
        snprintf(who->subject, sizeof who->subject, "Patient/%s", id);
        snprintf(who->patient, sizeof who->patient, "%s", id);
    } else if (user && last_ref(user, "Practitioner", id, sizeof id)) {
        who->role = VL_ROLE_CLINIC;
        snprintf(who->subject, sizeof who->subject, "Practitioner/%s", id);
        if (launch && strlen(launch) < sizeof who->patient)
            snprintf(who->patient, sizeof who->patient, "%s", launch);
    } else {
        json_decref(claims);
        return bad_token(err, "the JWT has no fhirUser naming a Patient or a Practitioner");
    }
    who->scoped = 1;
    snprintf(who->scopes, sizeof who->scopes, "%s", scope ? scope : "");
    snprintf(who->token_id, sizeof who->token_id, "jwt:%.28s", jti ? jti : "-");
    json_decref(claims);
    return 0;
}

static int identify(void *ctx, const char *authorization, vl_principal_t *who, vl_error_t *err)
{
    vl_auth_t *a = ctx;
    unsigned char hash[VL_TOKEN_HASH_LEN];
    vl_token_row_t row;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    const char *token;
    size_t len;
    int64_t now;
    memset(who, 0, sizeof *who);
    who->role = VL_ROLE_ANONYMOUS;
    if (!authorization)
        return 0;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return bad_token(err, "only Bearer tokens are accepted (RFC 6750)");
    token = authorization + 7;
    while (*token == ' ')
        token++;
    len = strcspn(token, " ");
    if (!len || token[len])
        return bad_token(err, "the Authorization header holds no single bearer token");
    if (strncmp(token, VL_TOKEN_PREFIX, sizeof VL_TOKEN_PREFIX - 1) != 0 && strchr(token, '.')) {
        if (!a->jwt)
            return bad_token(err, "this server accepts no JWTs (no --jwks)");
        return identify_jwt(a, token, len, who, err);
    }
    vl_auth_token_hash(a->key, token, len, hash);
    if (vl_store_token_find(a->store, hash, &row, &serr) < 0) {
        if (serr.kind == VL_STORE_NOT_FOUND)
            return bad_token(err, "the bearer token is not known");
        return vl_error_set(err, 503, "transient", NULL, "tokens cannot be checked now");
    }
    if (sodium_memcmp(hash, row.hash, sizeof hash) != 0)
        return bad_token(err, "the bearer token is not known");
    now = vl_time_now_us();
    if (row.revoked_us)
        return bad_token(err, "the bearer token was revoked");
    if (row.expires_us && row.expires_us <= now)
        return bad_token(err, "the bearer token has expired");
    if (vl_auth_role_parse(row.role, &who->role) < 0)
        return bad_token(err, "the bearer token has an unknown role");
    snprintf(who->subject, sizeof who->subject, "%s", row.subject);
    snprintf(who->token_id, sizeof who->token_id, "%s", row.id);
    snprintf(who->organization, sizeof who->organization, "%s", row.organization);
    if ((who->role == VL_ROLE_PATIENT || who->role == VL_ROLE_DEVICE) &&
        !strncmp(row.subject, "Patient/", 8) && strlen(row.subject + 8) < sizeof who->patient)
        memcpy(who->patient, row.subject + 8, strlen(row.subject + 8) + 1);
    return 0;
}

/* ------------------------------------------------------------------------
 * Authorize
 * ---------------------------------------------------------------------- */

static int is(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static int deny(vl_error_t *err, const vl_principal_t *who, const char *why)
{
    return vl_error_set(err, 403, "forbidden", NULL, "%s %s", vl_auth_role_name(who->role), why);
}

/* Ledger routes that are verification material, free of any record data:
 * every authenticated caller may fetch them to check a proof. */
static int ledger_public(const char *route)
{
    static const char *const routes[] = {
        "/ledger/checkpoint",        "/ledger/key", "/ledger/keys", "/ledger/proof/inclusion",
        "/ledger/proof/consistency", NULL};
    for (const char *const *r = routes; *r; r++)
        if (is(route, *r))
            return 1;
    return 0;
}

/* A scope of one patient's compartment (plus shared records). */
static int one_patient(const vl_principal_t *who, int shared, vl_arena_t *arena, vl_scope_t *scope,
                       vl_error_t *err)
{
    const char **list = vl_arena_alloc(arena, sizeof *list);
    if (!list)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    list[0] = who->patient;
    scope->flags = shared ? VL_SCOPE_SHARED : 0;
    scope->n_patients = 1;
    scope->patients = list;
    return 0;
}

static int is_read(const char *i)
{
    return is(i, "read") || is(i, "vread") || is(i, "search-type") || is(i, "history-instance") ||
           is(i, "history-type");
}

static int is_write(const char *i)
{
    return is(i, "create") || is(i, "update") || is(i, "delete") || is(i, "patch");
}

/* ------------------------------------------------------------------------
 * SMART scopes: they narrow, never widen
 * ---------------------------------------------------------------------- */

/* The SMART permission an interaction needs: c r u d s, 0 none needed. */
static char needed(const vl_access_t *what)
{
    const char *i = what->interaction;
    if (is(i, "read") || is(i, "vread") || is(i, "history-instance") || is(i, "history-type") ||
        is(what->operation, "$ledger"))
        return 'r';
    if (is(i, "search-type"))
        return 's';
    if (is(i, "create"))
        return 'c';
    if (is(i, "update") || is(i, "patch"))
        return 'u';
    if (is(i, "delete"))
        return 'd';
    return 0; /* metadata, health, ledger verification material, Bundles (per entry) */
}

/* Whether one scope ("patient/Observation.rs", "user/ *.read" without the
 * space, ...) grants letter `need` on `type` in its context: 0 no, 1 yes,
 * 2 yes for Observations of the category in `cat` only (the granular form
 * "patient/Observation.rs?category=<system>|<code>"). Any other query
 * grants nothing: a scope must never widen. */
static int grants(const char *s, size_t n, const char *type, char need, const char *context,
                  vl_scope_code_t *cat, vl_arena_t *arena)
{
    const char *slash = memchr(s, '/', n), *dot, *perm, *query = memchr(s, '?', n);
    size_t cl, tl, pl, full = n;
    int ok;
    if (query)
        n = (size_t)(query - s);
    if (!slash || slash > s + n)
        return 0;
    cl = (size_t)(slash - s);
    if (cl != strlen(context) || strncmp(s, context, cl) != 0)
        return 0;
    dot = memchr(slash, '.', n - cl);
    if (!dot)
        return 0;
    tl = (size_t)(dot - slash - 1);
    perm = dot + 1;
    pl = n - (size_t)(perm - s);
    if (!(tl == 1 && slash[1] == '*') &&
        (!type || strlen(type) != tl || strncmp(slash + 1, type, tl)))
        return 0;
    if ((pl == 4 && !strncmp(perm, "read", 4)) || (pl == 1 && *perm == '*')) {
        ok = pl == 1 || need == 'r' || need == 's';
    } else if (pl == 5 && !strncmp(perm, "write", 5)) {
        ok = need == 'c' || need == 'u' || need == 'd';
    } else {
        /* v2: a non-empty subset of c r u d s, in that order */
        for (size_t i = 0; i < pl; i++)
            if (!strchr("cruds", perm[i]) ||
                (i && strchr("cruds", perm[i]) <= strchr("cruds", perm[i - 1])))
                return 0;
        ok = pl > 0 && memchr(perm, need, pl) != NULL;
    }
    if (!ok || !query)
        return ok;
    /* granular: Observation only, one category=<system>|<code> parameter */
    {
        const char *v = query + 1, *end = s + full, *bar;
        if (!type || strcmp(type, "Observation") != 0 || tl != 11 || (size_t)(end - v) <= 9 ||
            strncmp(v, "category=", 9) != 0 || memchr(v + 9, '&', (size_t)(end - v - 9)))
            return 0;
        v += 9;
        bar = memchr(v, '|', (size_t)(end - v));
        cat->system = bar && bar > v ? vl_arena_strndup(arena, v, (size_t)(bar - v)) : NULL;
        cat->code = vl_arena_strndup(arena, bar ? bar + 1 : v, (size_t)(end - (bar ? bar + 1 : v)));
        return cat->code && *cat->code ? 2 : 0;
    }
}

#define MAX_CATEGORIES 8

/* The types a JWT's scopes let it read (r or s, in a context that applies
 * to it), for a scope that reaches beyond the URL's type (_include,
 * chains, $everything, Bulk Data files): 0 with *n 0 when some scope
 * grants every type ("*"), else the list. -1 when out of memory. */
static int read_types(const vl_principal_t *who, vl_arena_t *arena, const char ***types, size_t *n)
{
    static const char *const contexts[] = {"patient", "user", "system"};
    size_t words = 1;
    const char **list;
    for (const char *p = who->scopes; *p; p++)
        words += *p == ' ';
    /* one type per scope at most: the list never runs out */
    list = vl_arena_alloc(arena, words * sizeof *list);
    *types = NULL;
    *n = 0;
    if (!list)
        return -1;
    for (const char *p = who->scopes; *p;) {
        size_t len = strcspn(p, " ");
        const char *slash = memchr(p, '/', len),
                   *dot = slash ? memchr(slash, '.', len - (size_t)(slash - p)) : NULL;
        for (size_t k = 0; dot && k < 3; k++) {
            vl_scope_code_t cat;
            char type[65];
            size_t tl = (size_t)(dot - slash - 1);
            if ((k == 0 && !who->patient[0]) || tl == 0 || tl >= sizeof type)
                continue;
            memcpy(type, slash + 1, tl);
            type[tl] = '\0';
            if (!grants(p, len, type, 'r', contexts[k], &cat, arena) &&
                !grants(p, len, type, 's', contexts[k], &cat, arena))
                continue;
            if (!strcmp(type, "*"))
                return 0; /* every type */
            {
                size_t i;
                for (i = 0; i < *n && strcmp(list[i], type) != 0; i++)
                    ;
                if (i == *n && (*n == words || !(list[(*n)++] = vl_arena_strdup(arena, type))))
                    return -1;
            }
        }
        p += len;
        while (*p == ' ')
            p++;
    }
    *types = list;
    return 0;
}

/* The scopes of a JWT allow `what`? patient/ scopes count for a request
 * on the launch patient's (or the patient's own) data; user/ and system/
 * ones for what the role allows. 0 no; 1 yes; 2 yes, for Observations of
 * the categories in `cats` only (granular scopes and no broader one). */
static int scope_allows(const vl_principal_t *who, const vl_access_t *what, vl_arena_t *arena,
                        vl_scope_code_t *cats, size_t *n_cats)
{
    static const char *const contexts[] = {"patient", "user", "system"};
    char need = needed(what);
    int narrowed = 0;
    *n_cats = 0;
    if (!who->scoped || !need)
        return 1;
    for (const char *p = who->scopes; *p;) {
        size_t n = strcspn(p, " ");
        for (size_t k = 0; n && k < 3; k++) {
            vl_scope_code_t cat;
            int g;
            if (k == 0 && !who->patient[0])
                continue;
            g = grants(p, n, what->resource_type, need, contexts[k], &cat, arena);
            if (g == 1)
                return 1;
            if (g == 2 && *n_cats < MAX_CATEGORIES) {
                cats[(*n_cats)++] = cat;
                narrowed = 1;
            }
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return narrowed ? 2 : 0;
}

/* A clinic: its references (its own; a Practitioner's Organization too) are
 * the actors Consent provisions must name. */
static int clinic(vl_auth_t *a, const vl_principal_t *who, const vl_access_t *what,
                  vl_arena_t *arena, vl_scope_t *scope, vl_error_t *err)
{
    const char *i = what->interaction;
    const char **actors = vl_arena_alloc(arena, 2 * sizeof *actors);
    size_t n = 0;
    vl_consent_action_t action;
    int permits;
    if (!actors)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    actors[n++] = who->subject;
    if (who->organization[0])
        actors[n++] = who->organization;
    if (is_read(i) || is(what->operation, "$ledger")) {
        action = VL_CONSENT_ACCESS;
    } else if (is(i, "create")) {
        action = VL_CONSENT_COLLECT;
    } else if (is(i, "update") || is(i, "patch") || is(i, "delete")) {
        action = VL_CONSENT_CORRECT;
    } else {
        return deny(err, who, "is not permitted to do this");
    }
    if (action != VL_CONSENT_ACCESS && is(what->resource_type, "Consent"))
        return deny(err, who, "may not write Consents: a patient grants them");
    permits = vl_consent_rules(a->consent, actors, n, action, vl_time_now_us(), arena, scope,
                               &scope->basis, err);
    if (permits < 0)
        return -1;
    if (who->patient[0] && scope->n_rules) { /* a launch context: that patient's rules only */
        /* the rules are shared with other requests (consent.c): a copy */
        vl_scope_rule_t *r = vl_arena_alloc(arena, scope->n_rules * sizeof *r);
        size_t kept = 0;
        if (!r)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        permits = 0;
        for (size_t k = 0; k < scope->n_rules; k++)
            if (!strcmp(scope->rules[k].patient, who->patient)) {
                permits += !scope->rules[k].deny;
                r[kept++] = scope->rules[k];
            }
        scope->rules = r;
        scope->n_rules = kept;
    }
    if (action != VL_CONSENT_ACCESS) {
        if (!permits)
            return vl_error_set(err, 403, "forbidden", NULL,
                                "no active Consent permits %s to %s a patient's data", who->subject,
                                action == VL_CONSENT_COLLECT ? "collect" : "correct");
        return 0; /* the write must fall inside the rules (vl_write_execute) */
    }
    /* reads: records in no compartment, the Consents that name it, and
     * what the permits cover */
    scope->flags = VL_SCOPE_SHARED | (is(what->operation, "$ledger") ? VL_SCOPE_LEDGER : 0);
    scope->ref_type = "Consent";
    scope->ref_param = "actor";
    scope->refs = actors;
    scope->n_refs = n;
    return 0;
}

static int authorize_role(vl_auth_t *a, const vl_principal_t *who, const vl_access_t *what,
                          vl_arena_t *arena, vl_scope_t *scope, vl_error_t *err)
{
    const char *i = what->interaction;
    memset(scope, 0, sizeof *scope);
    if (is(i, "capabilities") || is(i, "health"))
        return 0;
    if (who->role == VL_ROLE_ANONYMOUS)
        return vl_error_set(err, 401, "login", NULL,
                            "this request needs credentials: Authorization: Bearer <token>");
    if (who->role == VL_ROLE_ADMIN) {
        *scope = vl_scope_everything();
        return 0;
    }
    if (is(i, "metrics"))
        return deny(err, who, "may not read the server's metrics (admin only)");
    if (is(i, "ledger")) {
        if (ledger_public(what->route) || who->role == VL_ROLE_AUDITOR) {
            scope->flags = VL_SCOPE_LEDGER;
            return 0;
        }
        return deny(err, who, "may not read ledger entries or exports (auditor or admin only)");
    }
    if (who->role == VL_ROLE_AUDITOR)
        return deny(err, who, "may read the ledger only, never records");
    if (is(i, "transaction") || is(i, "batch"))
        return 0; /* each entry is authorized on its own */
    /* $validate reads and stores nothing (an empty scope); a Bulk Data
     * job's status and files belong to the caller who started it, which
     * the handler checks, and its files are read again in the scope of
     * the kick-off's description, authorized anew (fhir/export.c) */
    if (is(i, "validate") || is(i, "export"))
        return 0;

    switch (who->role) {
    case VL_ROLE_PATIENT:
        if (is_read(i) || is(what->operation, "$ledger")) {
            if (one_patient(who, 1, arena, scope, err) < 0)
                return -1;
            scope->flags |= is(what->operation, "$ledger") ? VL_SCOPE_LEDGER : 0;
            return 0;
        }
        if (is_write(i))
            return one_patient(who, 0, arena, scope, err);
        break;
    case VL_ROLE_DEVICE:
        if ((is(i, "create") || is(i, "update") || is(i, "patch")) &&
            (is(what->resource_type, "Observation") || is(what->resource_type, "Device")))
            return one_patient(who, 0, arena, scope, err);
        return deny(err, who,
                    "tokens may only create and update Observation and Device resources of "
                    "their patient");
    case VL_ROLE_CLINIC: return clinic(a, who, what, arena, scope, err);
    default: break;
    }
    return deny(err, who, "is not permitted to do this");
}

/* The role decides; a JWT's scopes narrow (never widen) what it allows. */
static int authorize(void *ctx, const vl_principal_t *who, const vl_access_t *what,
                     vl_arena_t *arena, vl_scope_t *scope, vl_error_t *err)
{
    vl_scope_code_t cats[MAX_CATEGORIES], *copy;
    size_t n_cats = 0;
    int allowed = 1;
    memset(scope, 0, sizeof *scope);
    if (who->role != VL_ROLE_ANONYMOUS &&
        !(allowed = scope_allows(who, what, arena, cats, &n_cats)))
        return vl_error_set(err, 403, "security", NULL,
                            "insufficient_scope: the token's scopes do not allow %s on %s",
                            what->interaction, what->resource_type ? what->resource_type : "this");
    if (authorize_role(ctx, who, what, arena, scope, err) < 0) {
        memset(scope, 0, sizeof *scope);
        return -1;
    }
    if (who->role != VL_ROLE_ANONYMOUS && allowed == 2) {
        if (!(copy = vl_arena_alloc(arena, n_cats * sizeof *copy)))
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        memcpy(copy, cats, n_cats * sizeof *copy);
        scope->category_type = "Observation";
        scope->categories = copy;
        scope->n_categories = n_cats;
    }
    if (who->role != VL_ROLE_ANONYMOUS && who->scoped &&
        (needed(what) == 'r' || needed(what) == 's')) {
        const char **types;
        if (read_types(who, arena, &types, &scope->n_types) < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        scope->types = types;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Lifetime
 * ---------------------------------------------------------------------- */

vl_auth_t *vl_auth_new(const vl_auth_options_t *opts, vl_error_t *err)
{
    vl_auth_t *a;
    if (!opts->store || !opts->token_key) {
        vl_jwt_free(opts->jwt);
        vl_error_set(err, 500, "exception", NULL, "auth needs a store and a token key");
        return NULL;
    }
    a = sodium_malloc(sizeof *a);
    if (!a) {
        vl_jwt_free(opts->jwt);
        vl_error_set(err, 500, "exception", NULL, "out of memory");
        return NULL;
    }
    memset(a, 0, sizeof *a);
    a->store = opts->store;
    a->jwt = opts->jwt;
    a->consent = vl_consent_new(opts->store);
    if (!a->consent) {
        vl_jwt_free(opts->jwt);
        sodium_free(a);
        vl_error_set(err, 500, "exception", NULL, "the Consent cache cannot be set up");
        return NULL;
    }
    memcpy(a->key, opts->token_key, sizeof a->key);
    a->policy.identify = identify;
    a->policy.authorize = authorize;
    a->policy.ctx = a;
    return a;
}

void vl_auth_free(vl_auth_t *a)
{
    if (!a)
        return;
    vl_consent_free(a->consent);
    vl_jwt_free(a->jwt);
    sodium_free(a); /* zeroes the key */
}

const vl_policy_t *vl_auth_policy(vl_auth_t *a)
{
    return &a->policy;
}

vl_store_t *vl_auth_store(vl_auth_t *a)
{
    return a->store;
}

const unsigned char *vl_auth_key(vl_auth_t *a)
{
    return a->key;
}
