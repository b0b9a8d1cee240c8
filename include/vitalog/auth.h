/*
 * vitalog — auth: who is calling, whether they may do what they ask, and
 * which records they may see.
 *
 * The fhir interaction layer calls a policy exactly once per request, at
 * its entry, with a full description of what is asked (vl_access_t). The
 * policy answers allow (filling the access scope every store read of the
 * request takes) or deny. In this version the default policy admits every
 * caller as anonymous and allows everything with the whole store in scope;
 * bearer tokens, roles and Consent plug in here without touching the
 * handlers.
 */
#ifndef VITALOG_AUTH_H
#define VITALOG_AUTH_H

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
    char subject[128]; /* e.g. "Patient/123"; empty when anonymous */
} vl_principal_t;

/**
 * What is asked. Strings are borrowed for the call.
 *   interaction   a FHIR interaction code (read, vread, update, patch,
 *                 delete, history-instance, history-type, create,
 *                 search-type, capabilities, transaction, batch,
 *                 operation) or a system route (health, metrics, ledger)
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
} vl_access_t;

/** A policy: identify the caller, then decide. `ctx` is the policy's own. */
typedef struct vl_policy {
    /** Fills `who` from the Authorization header (may be NULL). -1 with a
     *  401 in err when credentials are present but bad. */
    int (*identify)(void *ctx, const char *authorization, vl_principal_t *who, vl_error_t *err);
    /** 0 allowed, with `scope` filled (its patient list must stay valid
     *  until the request ends: use `arena`); -1 denied (403 with the reason
     *  in err). */
    int (*authorize)(void *ctx, const vl_principal_t *who, const vl_access_t *what,
                     vl_arena_t *arena, vl_scope_t *scope, vl_error_t *err);
    void *ctx;
} vl_policy_t;

/** The default policy of this version (anonymous, allow all, whole store). */
extern const vl_policy_t vl_auth_default_policy;

#endif
