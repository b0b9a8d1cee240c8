/*
 * Fuzz target: search parameter parsing. Bytes are a query string; the
 * first byte picks the resource type. Parses it as form data and turns it
 * into a store query for that type; must never crash or leak, and errors
 * must be 400s.
 */
#include <stdlib.h>

#include "vitalog/fhir.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    vl_params_t p;
    vl_search_t s;
    vl_error_t err = VL_ERROR_INIT;
    size_t ntypes = 0;
    const vl_fhir_type_t *t;
    if (size < 1)
        return 0;
    while (vl_fhir_types[ntypes].name)
        ntypes++;
    t = &vl_fhir_types[data[0] % ntypes];
    vl_params_init(&p);
    if (vl_params_parse_form(&p, (const char *)data + 1, size - 1) == 0) {
        if (vl_fhir_search_parse(t, &p, data[0] & 0x80, &s, &err) == 0)
            vl_search_free(&s);
        else if (err.status != 400)
            abort();
    }
    vl_error_clear(&err);
    vl_params_free(&p);
    return 0;
}
