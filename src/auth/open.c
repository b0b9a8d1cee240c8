/*
 * The open policy: every caller anonymous, everything allowed with the
 * whole store in scope. Only for unit tests of the modules behind the
 * policy (the server always runs vl_auth_t, policy.c).
 *
 * The owner policy: the same decisions for the data directory's owner, an
 * admin: local tools that run the interaction layer in their own process
 * on a directory they hold the lock of (`vitalog import --data`).
 */
#include <stdio.h>
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

static int identify_owner(void *ctx, const char *authorization, vl_principal_t *who,
                          vl_error_t *err)
{
    identify(ctx, authorization, who, err);
    who->role = VL_ROLE_ADMIN;
    snprintf(who->subject, sizeof who->subject, "data directory owner");
    return 0;
}

const vl_policy_t vl_auth_owner_policy = {identify_owner, authorize, NULL};
