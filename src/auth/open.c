/*
 * The open policy: every caller anonymous, everything allowed with the
 * whole store in scope. Only for unit tests of the modules behind the
 * policy (the server always runs vl_auth_t, policy.c).
 */
#include <string.h>

#include "vitalog/auth.h"

static int identify(void *ctx, const char *authorization, vl_principal_t *who, vl_error_t *err)
{
    (void)ctx;
    (void)authorization;
    (void)err;
    memset(who, 0, sizeof *who);
    who->role = VL_ROLE_ANONYMOUS;
    return 0;
}

static int authorize(void *ctx, const vl_principal_t *who, const vl_access_t *what,
                     vl_arena_t *arena, vl_scope_t *scope, vl_error_t *err)
{
    (void)ctx;
    (void)who;
    (void)what;
    (void)arena;
    (void)err;
    *scope = vl_scope_everything();
    return 0;
}

const vl_policy_t vl_auth_open_policy = {identify, authorize, NULL};
