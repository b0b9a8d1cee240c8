/*
 * Fuzz targets: one per ingest format (built once per format with
 * VL_FUZZ_FORMAT set to its vl_ingest_format_t, e.g. fuzz_omh).
 *
 * Bytes -> vl_json_parse -> vl_ingest_document. Checks that nothing
 * crashes or leaks, that a document refused as a whole is a 400, and that
 * every reading emitted holds what the fhir layer relies on: a measure, a
 * value count within bounds, NUL-terminated texts, a rejection's reason.
 *
 * Built with libFuzzer when VL_FUZZ=ON (clang); otherwise replay.c runs the
 * committed corpus (tests/fuzz/corpus/<format>) as an ordinary test.
 */
#include <stdlib.h>
#include <string.h>

#include "vitalog/ingest.h"

#ifndef VL_FUZZ_FORMAT
#error "build with -DVL_FUZZ_FORMAT=<vl_ingest_format_t>"
#endif

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int terminated(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

static int check(void *ctx, const vl_ingest_reading_t *r, const char *why)
{
    (void)ctx;
    if (!terminated(r->path, sizeof r->path) || !terminated(r->start, sizeof r->start) ||
        !terminated(r->end, sizeof r->end) || !terminated(r->record_id, sizeof r->record_id) ||
        !terminated(r->note, sizeof r->note) || !terminated(r->source_name, sizeof r->source_name))
        abort();
    if (why)
        return *why ? 0 : (abort(), 0);
    if (!r->measure || r->n_values > VL_INGEST_MAX_VALUES)
        abort();
    for (size_t i = 0; i < r->n_values; i++)
        if (!terminated(r->values[i].value, sizeof r->values[i].value) ||
            !terminated(r->values[i].unit, sizeof r->values[i].unit))
            abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_json_limits_t lim = {64};
    vl_ingest_options_t opts = {"Europe/Berlin"};
    json_t *doc = vl_json_parse((const char *)data, size, &lim, &err);
    if (!doc) {
        vl_error_clear(&err);
        return 0;
    }
    if (vl_ingest_document(VL_FUZZ_FORMAT, doc, &opts, check, NULL, &err) < 0 && err.status != 400)
        abort();
    vl_error_clear(&err);
    json_decref(doc);
    return 0;
}
