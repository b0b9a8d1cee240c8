/*
 * Errors as FHIR OperationOutcome issues (see util.h for the contract).
 */
#include <stdio.h>

#include "vitalog/util.h"

/* Validation can report many issues; past this many the rest are dropped
 * and one last issue says so, so a hostile body cannot grow the answer. */
#define VL_ERROR_MAX_ISSUES 100

int vl_error_addv(vl_error_t *err, int status, const char *severity, const char *code,
                  const char *expression, const char *fmt, va_list ap)
{
    char msg[512];
    json_t *issue;
    if (!err)
        return -1;
    if (err->status == 0)
        err->status = status;
    if (!err->issues) {
        err->issues = json_array();
        if (!err->issues)
            return -1;
    }
    if (json_array_size(err->issues) > VL_ERROR_MAX_ISSUES)
        return -1;
    if (json_array_size(err->issues) == VL_ERROR_MAX_ISSUES) {
        json_array_append_new(err->issues,
                              json_pack("{s:s,s:s,s:s}", "severity", "error", "code", "too-costly",
                                        "diagnostics", "too many issues; the rest are omitted"));
        return -1;
    }
    vsnprintf(msg, sizeof msg, fmt, ap);
    issue = json_pack("{s:s,s:s,s:s}", "severity", severity, "code", code, "diagnostics", msg);
    if (issue && expression)
        json_object_set_new(issue, "expression", json_pack("[s]", expression));
    if (issue)
        json_array_append_new(err->issues, issue);
    return -1;
}

int vl_error_set(vl_error_t *err, int status, const char *code, const char *expression,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vl_error_addv(err, status, "error", code, expression, fmt, ap);
    va_end(ap);
    return -1;
}

size_t vl_error_count(const vl_error_t *err)
{
    return err && err->issues ? json_array_size(err->issues) : 0;
}

const char *vl_error_message(const vl_error_t *err)
{
    json_t *first = err && err->issues ? json_array_get(err->issues, 0) : NULL;
    const char *s = first ? json_string_value(json_object_get(first, "diagnostics")) : NULL;
    return s ? s : "";
}

void vl_error_clear(vl_error_t *err)
{
    if (!err)
        return;
    json_decref(err->issues);
    err->issues = NULL;
    err->status = 0;
}

json_t *vl_error_outcome(const vl_error_t *err)
{
    json_t *issues = err && err->issues ? json_deep_copy(err->issues) : NULL;
    if (!issues || json_array_size(issues) == 0) {
        json_decref(issues);
        return vl_outcome_new("error", "exception", "unknown error");
    }
    return json_pack("{s:s,s:o}", "resourceType", "OperationOutcome", "issue", issues);
}

json_t *vl_outcome_new(const char *severity, const char *code, const char *diagnostics)
{
    return json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "resourceType", "OperationOutcome", "issue",
                     "severity", severity, "code", code, "diagnostics", diagnostics);
}
