/*
 * Fuzz target: the resource path of a write, minus the store.
 *
 * Bytes -> vl_json_parse -> (for served types) vl_fhir_validate and
 * vl_fhir_index -> vl_json_dump -> vl_json_parse again. Checks that nothing
 * crashes or leaks and that dump/parse is a fixed point (what is served
 * parses back to the same text).
 *
 * Built with libFuzzer when VL_FUZZ=ON (clang); otherwise replay.c runs the
 * committed corpus as an ordinary test.
 */
#include <stdlib.h>
#include <string.h>

#include "vitalog/fhir.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_json_limits_t lim = {64};
    json_t *doc = vl_json_parse((const char *)data, size, &lim, &err);
    const vl_fhir_type_t *t;
    char *once, *twice;
    size_t n1, n2;
    json_t *again;
    if (!doc) {
        if (err.status != 400 && err.status != 500)
            abort();
        vl_error_clear(&err);
        return 0;
    }
    t = json_is_object(doc)
            ? vl_fhir_type_find(json_string_value(json_object_get(doc, "resourceType"))
                                    ? json_string_value(json_object_get(doc, "resourceType"))
                                    : "")
            : NULL;
    if (t) {
        vl_index_t ix;
        if (vl_fhir_validate(t, doc, &err) < 0 && err.status != 400 && err.status != 422)
            abort();
        vl_error_clear(&err);
        vl_index_init(&ix);
        vl_fhir_index(t, doc, &ix, &err);
        vl_index_free(&ix);
        vl_error_clear(&err);
    }
    once = vl_json_dump(doc, &n1);
    if (!once)
        abort();
    again = vl_json_parse(once, n1, &lim, &err);
    if (!again) /* what we serve must parse back */
        abort();
    twice = vl_json_dump(again, &n2);
    if (!twice || n1 != n2 || memcmp(once, twice, n1) != 0)
        abort();
    free(once);
    free(twice);
    json_decref(again);
    json_decref(doc);
    return 0;
}
