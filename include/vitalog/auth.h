/*
 * vitalog — auth: who is calling and whether they may do what they ask.
 *
 * Every request passes vl_auth_authorize() exactly once, after routing and
 * before any handler touches data. In this version every caller is
 * anonymous and everything is allowed; bearer tokens, roles and Consent
 * plug in here without changing the handlers.
 */
#ifndef VITALOG_AUTH_H
#define VITALOG_AUTH_H

#include "vitalog/util.h"

typedef enum {
    VL_ROLE_ANONYMOUS,
    VL_ROLE_CLINIC,
    VL_ROLE_PATIENT,
    VL_ROLE_AUDITOR,
    VL_ROLE_ADMIN,
} vl_role_t;

/** Who is calling. */
typedef struct vl_principal {
    vl_role_t role;
    char subject[128]; /* e.g. "Patient/123"; empty when anonymous */
} vl_principal_t;

/** What they ask: a FHIR interaction on a type/instance, or a system call. */
typedef struct vl_access {
    const char *interaction;   /* "read", "vread", "search-type", "create", "update",
                                  "delete", "history-instance", "history-type",
                                  "capabilities", "health" */
    const char *resource_type; /* NULL for system-level interactions */
    const char *resource_id;   /* NULL unless instance-level */
} vl_access_t;

/** Identifies the caller from the Authorization header (may be NULL).
 *  Fills `who`; returns -1 with a 401 when credentials are present but bad. */
int vl_auth_identify(const char *authorization, vl_principal_t *who, vl_error_t *err);

/** Decides whether `who` may perform `what`: 0 allowed, -1 denied (403 with
 *  the reason in err). */
int vl_auth_authorize(const vl_principal_t *who, const vl_access_t *what, vl_error_t *err);

#endif
