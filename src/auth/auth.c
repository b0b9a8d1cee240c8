/*
 * The authorization hook. This version admits every caller as anonymous and
 * allows every interaction; the decision point exists so that bearer
 * tokens, roles and Consent enforcement slot in here, not in the handlers.
 */
#include <string.h>

#include "vitalog/auth.h"

int vl_auth_identify(const char *authorization, vl_principal_t *who, vl_error_t *err)
{
    (void)authorization;
    (void)err;
    memset(who, 0, sizeof *who);
    who->role = VL_ROLE_ANONYMOUS;
    return 0;
}

int vl_auth_authorize(const vl_principal_t *who, const vl_access_t *what, vl_error_t *err)
{
    (void)who;
    (void)what;
    (void)err;
    return 0;
}
