/*
 * vitalog — fhir/consent.c: which Consent writes are grants and revokes
 * (docs/ledger.md 2.1, docs/consent.md).
 *
 * What a Consent decides is its status, its patient and its provision
 * (with the nested ones). A version is compared with the one it replaces:
 *
 *   before            after                            entries
 *   not active        active                           consent.grant
 *   active            not active, or deleted           consent.revoke
 *   active            active, patient or provision     consent.revoke, then
 *                     changed                          consent.grant
 *   anything else (a change of text, identifiers, ...): none
 *
 * "not active" covers draft, proposed, rejected, inactive, entered-in-error
 * and a Consent that did not exist.
 */
#include <string.h>

#include "fhir_internal.h"

static int is_active(const json_t *consent)
{
    const char *s = json_string_value(json_object_get(consent, "status"));
    return consent && s && !strcmp(s, "active");
}

/* Whether two JSON values are equal, absent counting as absent. */
static int same(const json_t *a, const json_t *b)
{
    return (!a && !b) || (a && b && json_equal(a, b));
}

size_t vl_fhir_consent_transition(const json_t *before, const json_t *after,
                                  vl_entry_kind_t kinds[2])
{
    int was = is_active(before), is = is_active(after);
    if (!was && is) {
        kinds[0] = VL_ENTRY_CONSENT_GRANT;
        return 1;
    }
    if (was && !is) {
        kinds[0] = VL_ENTRY_CONSENT_REVOKE;
        return 1;
    }
    if (was && is &&
        (!same(json_object_get(before, "provision"), json_object_get(after, "provision")) ||
         !same(json_object_get(before, "patient"), json_object_get(after, "patient")))) {
        kinds[0] = VL_ENTRY_CONSENT_REVOKE;
        kinds[1] = VL_ENTRY_CONSENT_GRANT;
        return 2;
    }
    return 0;
}
