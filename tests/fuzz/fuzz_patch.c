/*
 * Fuzz target: JSON Patch and FHIRPath Patch (src/fhir/patch.c,
 * fhirpath.c) applied to a fixed Observation. The first byte picks the
 * kind (even: JSON Patch, odd: FHIRPath Patch); the rest is the patch as
 * JSON. Any outcome is fine but a crash, a leak, or an error that is not
 * a 400 or a 422.
 */
#include <stdlib.h>
#include <string.h>

#include "../../src/fhir/fhirpath.h"
#include "vitalog/util.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char OBS[] =
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
    "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
    "observation-category\",\"code\":\"vital-signs\"}]}],\"code\":{\"coding\":[{\"system\":"
    "\"http://loinc.org\",\"code\":\"85354-9\"}]},\"subject\":{\"reference\":\"Patient/p\"},"
    "\"effectiveDateTime\":\"2024-01-01T10:00:00Z\",\"_effectiveDateTime\":{\"id\":\"x\"},"
    "\"note\":[{\"text\":\"a\"},{\"text\":\"b\"}],\"component\":[{\"code\":{\"coding\":[{"
    "\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]},\"valueQuantity\":{\"value\":120,"
    "\"unit\":\"mm[Hg]\"}},{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":"
    "\"8462-4\"}]},\"valueQuantity\":{\"value\":80}}]}";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    vl_error_t err = VL_ERROR_INIT;
    json_t *doc, *patch;
    if (size < 1)
        return 0;
    doc = vl_json_parse(OBS, sizeof OBS - 1, NULL, &err);
    vl_error_clear(&err);
    patch = vl_json_parse((const char *)data + 1, size - 1, NULL, &err);
    vl_error_clear(&err);
    if (doc && patch) {
        int rc = data[0] & 1 ? vl_patch_fhirpath_apply(doc, patch, NULL, &err)
                             : vl_patch_json_apply(&doc, patch, NULL, &err);
        if (rc < 0 && err.status != 400 && err.status != 422)
            abort();
    }
    vl_error_clear(&err);
    json_decref(doc);
    json_decref(patch);
    return 0;
}
