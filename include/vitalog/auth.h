/*
 * vitalog — auth: who is calling, whether they may do what they ask, and
 * which records they may see.
 *
 * The fhir interaction layer calls a policy exactly once per request, at
 * its entry, with a full description of what is asked (vl_access_t), and
 * again for every entry of a Bundle. The policy answers allow (filling the
 * access scope every store read and write of the request takes) or deny.
 *
 * vl_auth_t is the server's policy: opaque bearer tokens (256 bits from
 * libsodium, kept only as a keyed hash in the store) and roles (admin,
 * clinic, patient, device, auditor; docs/security.md has the table).
 * Default deny: a request no rule allows is refused.
 */
#ifndef VITALOG_AUTH_H
#define VITALOG_AUTH_H

#include "vitalog/consent.h"
#include "vitalog/store.h"
#include "vitalog/util.h"

typedef enum {
    VL_ROLE_ANONYMOUS,
    VL_ROLE_CLINIC,
    VL_ROLE_PATIENT,
    VL_ROLE_DEVICE,
    VL_ROLE_AUDITOR,
    VL_ROLE_ADMIN,
} vl_role_t;

/** Who is calling. */
typedef struct vl_principal {
    vl_role_t role;
    char organization[128]; /* a Practitioner clinic token's Organization, or "" */
    char subject[128];      /* e.g. "Patient/123"; empty when anonymous */
    char token_id[33];      /* the token's public id ("jwt:<jti>" for a JWT); "" when anonymous */
    char patient[65];       /* patient and device: their Patient's id; a JWT's launch patient */
    int scoped;             /* a JWT: `scopes` narrow what the role allows */
    char scopes[1024];      /* its SMART scopes, space-separated */
} vl_principal_t;

/**
 * What is asked. Strings are borrowed for the call.
 *   interaction   a FHIR interaction code (read, vread, update, patch,
 *                 delete, history-instance, history-type, create,
 *                 search-type, capabilities, transaction, batch,
 *                 operation) or a system route (health, metrics, ledger)
 *   route         the route's pattern ("/ledger/export", "/fhir/{type}")
 *   resource_type NULL for system-level requests
 *   resource_id   NULL unless instance-level
 *   compartment   "Patient/<id>" when the request is confined to one
 *                 patient's compartment (an instance of Patient), or NULL
 *   operation     "$ledger", ... for operations, or NULL
 *   write         1 when the request may change data
 */
typedef struct vl_access {
    const char *interaction;
    const char *resource_type;
    const char *resource_id;
    const char *compartment;
    const char *operation;
    int write;
    const char *route;
} vl_access_t;

/** A policy: identify the caller, then decide. `ctx` is the policy's own. */
typedef struct vl_policy {
    /** Fills `who` from the Authorization header (may be NULL: anonymous).
     *  -1 with a 401 in err when credentials are present but not valid. */
    int (*identify)(void *ctx, const char *authorization, vl_principal_t *who, vl_error_t *err);
    /** 0 allowed, with `scope` filled (its lists must stay valid until the
     *  request ends: use `arena`); -1 denied: 401 for an anonymous caller
     *  who needs credentials, otherwise 403 with the rule in err. For a
     *  write the scope is what the caller may write: the store's previous
     *  version (if any) and the new one must both be visible in it. */
    int (*authorize)(void *ctx, const vl_principal_t *who, const vl_access_t *what,
                     vl_arena_t *arena, vl_scope_t *scope, vl_error_t *err);
    void *ctx;
} vl_policy_t;

/** The open policy: anonymous, everything allowed with the whole store in
 *  scope. For unit tests of other modules only; the server uses vl_auth_t. */
extern const vl_policy_t vl_auth_open_policy;
/** The owner policy: the data directory's owner (an admin, the whole store
 *  in scope), for local tools that hold the directory's lock and run the
 *  interaction layer themselves (`vitalog import --data`). */
extern const vl_policy_t vl_auth_owner_policy;

/* ------------------------------------------------------------------------
 * Roles and tokens
 * ---------------------------------------------------------------------- */

#define VL_TOKEN_KEY_FILE "token.key" /* in the data directory, 0600 */
#define VL_TOKEN_PREFIX "vl1_"
#define VL_TOKEN_TEXT_LEN 48 /* "vl1_" + 43 base64url characters + NUL */

/** "admin", ... ; NULL for anonymous. */
const char *vl_auth_role_name(vl_role_t role);
/** 0 and *out for a role name other than anonymous, else -1. */
int vl_auth_role_parse(const char *name, vl_role_t *out);
/** Whether `subject` suits `role` (patient and device: Patient/<id>;
 *  clinic: Organization/<id> or Practitioner/<id>; admin and auditor: any
 *  1-127 printable ASCII characters). 0, or -1 with a 400 in err. */
int vl_auth_subject_check(vl_role_t role, const char *subject, vl_error_t *err);

/** Reads DIR/token.key, creating it (32 random bytes, 0600) if missing. */
int vl_auth_token_key_load(const char *dir, unsigned char key[32], vl_error_t *err);
/** Reads the 32-byte secret DIR/<name>, creating it (random, 0600) if
 *  missing: token.key, and ingest.key (the key of ingest identifiers). */
int vl_auth_key_file_load(const char *dir, const char *name, unsigned char key[32],
                          vl_error_t *err);
/** The secret that keys the identifiers of ingested readings (fhir/ingest.c). */
#define VL_INGEST_KEY_FILE "ingest.key"
/** The keyed BLAKE2b-256 hash a token is stored as. */
void vl_auth_token_hash(const unsigned char key[32], const char *token, size_t len,
                        unsigned char out[VL_TOKEN_HASH_LEN]);

/** What to issue. expires_us 0: never. */
typedef struct vl_token_request {
    vl_role_t role;
    const char *subject;
    const char *organization; /* NULL, or for a clinic Practitioner: Organization/<id> */
    const char *label;        /* NULL or at most 127 printable characters */
    int64_t expires_us;
} vl_token_request_t;

/** Issues a token: a new secret (into `secret`, shown once, never
 *  stored), its row in the store (into `row`). Runs a store unit and waits
 *  for it. 0, or -1 with err (400 for a bad request). */
int vl_auth_token_issue(vl_store_t *store, const unsigned char key[32],
                        const vl_token_request_t *req, char secret[VL_TOKEN_TEXT_LEN],
                        vl_token_row_t *row, vl_error_t *err);
/** Revokes a token by id (404 if there is none). Waits for the commit. */
int vl_auth_token_revoke(vl_store_t *store, const char *id, vl_error_t *err);
/** On the first start of a data directory (no token at all in the store)
 *  issues an admin token labelled "bootstrap" and writes it to
 *  DIR/admin.token (0600). 1 issued, 0 there were tokens already, -1. */
int vl_auth_bootstrap(vl_store_t *store, const unsigned char key[32], const char *dir,
                      vl_error_t *err);
/** A token row as JSON for listings: id, role, subject, label, created,
 *  expires, revoked, status (active, expired, revoked). `now_us` decides
 *  expired. */
json_t *vl_auth_token_json(const vl_token_row_t *row, int64_t now_us);

/* ------------------------------------------------------------------------
 * The server's policy
 * ---------------------------------------------------------------------- */

/* ------------------------------------------------------------------------
 * JWTs from an identity provider (jwt.c): RS256 and ES256 with the keys of
 * a JWKS file, iss and aud as configured, exp/nbf/iat within VL_JWT_SKEW
 * ---------------------------------------------------------------------- */

#define VL_JWT_SKEW 60 /* seconds of clock skew allowed on exp, nbf and iat */

typedef struct vl_jwt vl_jwt_t;

/** The verifier of `issuer`'s tokens for `audience`, with the keys of a
 *  JWKS document (RSA of 2048 bits or more, EC P-256; each with a kid). */
vl_jwt_t *vl_jwt_new(const char *jwks, size_t len, const char *issuer, const char *audience,
                     vl_error_t *err);
void vl_jwt_free(vl_jwt_t *jwt);
/** Verifies a compact JWS; 0 with its claims (new reference), or -1 with a
 *  401 in err saying why. `now_s`: seconds since the epoch. */
int vl_jwt_verify(const vl_jwt_t *jwt, const char *token, size_t len, int64_t now_s,
                  json_t **claims, vl_error_t *err);

typedef struct vl_auth vl_auth_t;

typedef struct vl_auth_options {
    vl_store_t *store;              /* tokens are looked up here on every request */
    const unsigned char *token_key; /* 32 bytes (copied) */
    vl_jwt_t *jwt;                  /* NULL, or JWTs are accepted too (taken: auth frees it) */
} vl_auth_options_t;

vl_auth_t *vl_auth_new(const vl_auth_options_t *opts, vl_error_t *err);
void vl_auth_free(vl_auth_t *auth);
/** The policy (valid while `auth` lives). */
const vl_policy_t *vl_auth_policy(vl_auth_t *auth);
/** The store and token key, for the token API's handlers. */
vl_store_t *vl_auth_store(vl_auth_t *auth);
const unsigned char *vl_auth_key(vl_auth_t *auth);

#endif
