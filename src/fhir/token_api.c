/*
 * vitalog — fhir/token_api.c: the bearer-token API (admin only; the
 * policy's default deny keeps everyone else out). The same operations as
 * `vitalog token`, over HTTP, as plain JSON (docs/api.md "Tokens"):
 *
 *   GET    /auth/tokens        every token ever issued (no secrets, no hashes)
 *   POST   /auth/tokens        {"role","subject","organization"?,"label"?,"expires"? instant |
 *                               "expiresIn"? seconds} -> 201 with the token,
 *                               shown this once (Cache-Control: no-store)
 *   DELETE /auth/tokens/{id}   revoke -> 204; 404 if there is no such token
 */
#include <string.h>

#include <sodium.h>

#include "fhir_internal.h"

static int no_auth(vl_fhir_response_t *res)
{
    return vl_x_fail(res, 404, "not-supported", "this server has no token store");
}

static int add_row(void *ctx, const vl_token_row_t *t)
{
    return json_array_append_new(ctx, vl_auth_token_json(t, vl_time_now_us()));
}

int vl_h_tokens_list(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_auth_t *a = x->f->opts.auth;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    json_t *list;
    if (!a)
        return no_auth(res);
    list = json_array();
    if (!list)
        return vl_x_fail(res, 500, "exception", "out of memory");
    if (vl_store_token_list(vl_auth_store(a), add_row, list, &serr) != 0) {
        json_decref(list);
        return vl_x_store_error(res, &serr);
    }
    res->no_store = 1;
    return vl_x_json(res, 200, json_pack("{s:o}", "tokens", list));
}

/* The expiry of a create request: 0 none, >0 the instant, -1 bad (err set). */
static int64_t expiry(const json_t *body, vl_error_t *err)
{
    const json_t *at = json_object_get(body, "expires"), *in = json_object_get(body, "expiresIn");
    int64_t lo, hi;
    int precision;
    if (at && in)
        return vl_error_set(err, 400, "invalid", "expires", "give expires or expiresIn, not both");
    if (at) {
        if (!vl_json_is_string(at) ||
            vl_time_parse_range(json_string_value(at), &lo, &hi, &precision) < 0 || precision < 4 ||
            !strpbrk(json_string_value(at) + 10, "Z+-"))
            return vl_error_set(err, 400, "invalid", "expires",
                                "expires must be an instant with a time zone, such as "
                                "2027-01-01T00:00:00Z");
        return lo;
    }
    if (in) {
        double secs = vl_json_is_number(in) ? vl_json_number_value(in) : 0;
        if (!(secs >= 1 && secs <= 100.0 * 366 * 86400) || secs != (double)(int64_t)secs)
            return vl_error_set(err, 400, "invalid", "expiresIn",
                                "expiresIn is a whole positive number of seconds (at most 100 "
                                "years)");
        return vl_time_now_us() + (int64_t)secs * 1000000;
    }
    return 0;
}

int vl_h_tokens_create(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_auth_t *a = x->f->opts.auth;
    vl_error_t err = VL_ERROR_INIT;
    vl_token_request_t req;
    vl_token_row_t row;
    char secret[VL_TOKEN_TEXT_LEN];
    const json_t *role_j = json_object_get(x->body, "role"),
                 *subject = json_object_get(x->body, "subject"),
                 *label = json_object_get(x->body, "label"),
                 *org = json_object_get(x->body, "organization");
    const char *role = vl_json_is_string(role_j) ? json_string_value(role_j) : NULL;
    json_t *doc;
    int64_t exp;
    if (!a)
        return no_auth(res);
    memset(&req, 0, sizeof req);
    if (!role || vl_auth_role_parse(role, &req.role) < 0)
        return vl_x_fail(res, 400, "invalid",
                         "role must be admin, clinic, patient, device or auditor");
    if (!vl_json_is_string(subject))
        return vl_x_fail(res, 400, "invalid",
                         "subject must be a string (a reference such as "
                         "Patient/p1)");
    req.subject = json_string_value(subject);
    if (label && !vl_json_is_string(label))
        return vl_x_fail(res, 400, "invalid", "label must be a string");
    req.label = json_string_value(label);
    if (org && !vl_json_is_string(org))
        return vl_x_fail(res, 400, "invalid", "organization must be a string (Organization/<id>)");
    req.organization = json_string_value(org);
    if ((exp = expiry(x->body, &err)) < 0)
        return vl_x_error(res, &err);
    req.expires_us = exp;
    if (vl_auth_token_issue(vl_auth_store(a), vl_auth_key(a), &req, secret, &row, &err) < 0)
        return vl_x_error(res, &err);
    doc = vl_auth_token_json(&row, vl_time_now_us());
    if (doc)
        json_object_set_new(doc, "token", json_string(secret));
    sodium_memzero(secret, sizeof secret);
    res->no_store = 1;
    return vl_x_json(res, 201, doc);
}

int vl_h_tokens_revoke(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_auth_t *a = x->f->opts.auth;
    vl_error_t err = VL_ERROR_INIT;
    if (!a)
        return no_auth(res);
    if (vl_auth_token_revoke(vl_auth_store(a), x->id, &err) < 0)
        return vl_x_error(res, &err);
    res->status = 204;
    return 0;
}
