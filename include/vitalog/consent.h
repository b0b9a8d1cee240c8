/*
 * vitalog — consent: what patients' FHIR R4 Consent resources allow, as
 * access-scope rules the store applies in SQL (docs/consent.md).
 *
 * The module keeps the active Consents (status active, scope
 * patient-privacy) of the store in memory, parsed into provisions, and
 * reloads them whenever a Consent version commits (vl_store_watch): a
 * grant or a revoke counts from the next request on. For a caller (its
 * references: a clinic's Organization, a Practitioner and their
 * Organization), an action and the current time it produces the rules of
 * vl_scope_t: one permit rule per provision that names the caller, allows
 * the action and is in force now; one deny rule per nested deny provision
 * that applies to the caller. The store then shows a version when some
 * permit covers it (patient, provision.class, provision.code,
 * provision.dataPeriod) and no deny does.
 */
#ifndef VITALOG_CONSENT_H
#define VITALOG_CONSENT_H

#include "vitalog/store.h"
#include "vitalog/util.h"

/** The actions of the consent-action code system that vitalog decides. */
typedef enum {
    VL_CONSENT_ACCESS,  /* read, vread, search, history, $ledger */
    VL_CONSENT_COLLECT, /* create */
    VL_CONSENT_CORRECT, /* update, delete */
} vl_consent_action_t;

typedef struct vl_consent vl_consent_t;

/** A Consent cache over `store` (which must outlive it). NULL when out of
 *  memory or the store cannot watch Consent. */
vl_consent_t *vl_consent_new(vl_store_t *store);
void vl_consent_free(vl_consent_t *c);

/**
 * Adds to `scope` the rules for `actors` (references such as
 * "Organization/o1") doing `action` at `now_us`; every string is copied
 * into `arena`. Returns the number of permit rules added (0: no Consent
 * allows it), or -1 with a 503 in err when the Consents cannot be read.
 * `consents` (may be NULL) receives "patient:Consent-id" for each Consent
 * whose permits were added, comma-separated, in `arena` (for accounting).
 */
int vl_consent_rules(vl_consent_t *c, const char *const *actors, size_t n_actors,
                     vl_consent_action_t action, int64_t now_us, vl_arena_t *arena,
                     vl_scope_t *scope, const char **consents, vl_error_t *err);

/** How many provisions (permit and deny) the cache holds now (for tests). */
size_t vl_consent_size(vl_consent_t *c);

#endif
