/*
 * vitalog — ingest/common.c: what every normalizer shares: format names,
 * the dispatcher, readings, values, rejections and epoch times.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

static const char *const format_names[VL_INGEST_N_FORMATS] = {
    "omh", "healthkit", "healthconnect", "fitbit", "withings", "googlefit", "dexcom",
};

const char *vl_ingest_format_name(vl_ingest_format_t f)
{
    return (unsigned)f < VL_INGEST_N_FORMATS ? format_names[f] : "unknown";
}

int vl_ingest_format_parse(const char *name, vl_ingest_format_t *out)
{
    for (int i = 0; name && i < VL_INGEST_N_FORMATS; i++)
        if (!strcmp(name, format_names[i])) {
            *out = (vl_ingest_format_t)i;
            return 0;
        }
    return -1;
}

typedef int (*normalizer_fn)(const json_t *, const vl_ingest_options_t *, vl_ingest_emit_fn, void *,
                             vl_error_t *);

static const normalizer_fn normalizers[VL_INGEST_N_FORMATS] = {
    vl_ingest_omh,      vl_ingest_healthkit, vl_ingest_healthconnect, vl_ingest_fitbit,
    vl_ingest_withings, vl_ingest_googlefit, vl_ingest_dexcom,
};

static const vl_ingest_mapping_t *const maps[VL_INGEST_N_FORMATS] = {
    vl_ingest_omh_map,    vl_ingest_healthkit_map, vl_ingest_healthconnect_map,
    vl_ingest_fitbit_map, vl_ingest_withings_map,  vl_ingest_googlefit_map,
    vl_ingest_dexcom_map,
};

int vl_ingest_document(vl_ingest_format_t f, const json_t *doc, const vl_ingest_options_t *opts,
                       vl_ingest_emit_fn emit, void *ctx, vl_error_t *err)
{
    static const vl_ingest_options_t none = {NULL};
    if ((unsigned)f >= VL_INGEST_N_FORMATS)
        return vl_error_set(err, 400, "not-supported", NULL, "unknown ingest format");
    if (!json_is_object(doc) && !json_is_array(doc))
        return vl_error_set(err, 400, "structure", NULL, "a %s document is a JSON object or array",
                            format_names[f]);
    return normalizers[f](doc, opts ? opts : &none, emit, ctx, err);
}

const vl_ingest_mapping_t *vl_ingest_mappings(vl_ingest_format_t f)
{
    return (unsigned)f < VL_INGEST_N_FORMATS ? maps[f] : NULL;
}

const vl_ingest_mapping_t *vl_ingest_map_find(const vl_ingest_mapping_t *map, const char *source,
                                              const char *source_unit)
{
    for (; map && map->source && source; map++)
        if (!strcmp(map->source, source) &&
            (!source_unit || !strcmp(map->source_unit, source_unit)))
            return map;
    return NULL;
}

void vl_ingest_reading_init(vl_ingest_reading_t *r, const char *measure, const char *path)
{
    memset(r, 0, sizeof *r);
    r->measure = vl_ingest_measure(measure);
    snprintf(r->path, sizeof r->path, "%s", path ? path : "");
}

/* A finite decimal: JSON number grammar (a leading '+' or a bare '.5' is
 * not one), at most 32 characters. */
static int decimal_ok(const char *s)
{
    size_t n = strlen(s);
    return n && n < 33 && vl_json_number_valid(s, n);
}

int vl_ingest_set_value(vl_ingest_reading_t *r, size_t i, const char *value, const char *ucum,
                        const char *source_unit)
{
    vl_ingest_value_t *v;
    if (i >= VL_INGEST_MAX_VALUES || !value || !decimal_ok(value))
        return -1;
    v = &r->values[i];
    if (r->measure) {
        if (r->measure->components[0].loinc) {
            if (i >= 3 || !r->measure->components[i].loinc)
                return -1;
            v->loinc = r->measure->components[i].loinc;
        } else {
            if (i != 0)
                return -1;
            v->loinc = r->measure->loinc;
        }
    }
    snprintf(v->value, sizeof v->value, "%s", value);
    snprintf(v->unit, sizeof v->unit, "%s", ucum ? ucum : "");
    snprintf(v->source_unit, sizeof v->source_unit, "%s", source_unit ? source_unit : "");
    if (r->n_values < i + 1)
        r->n_values = i + 1;
    return 0;
}

const char *vl_ingest_number_text(const json_t *v)
{
    const char *s = vl_json_number_text(v);
    if (s)
        return s;
    if (vl_json_is_string(v)) {
        s = json_string_value(v);
        return decimal_ok(s) ? s : NULL;
    }
    return NULL;
}

int vl_ingest_reject(vl_ingest_emit_fn emit, void *ctx, const char *measure, const char *path,
                     const char *fmt, ...)
{
    vl_ingest_reading_t r;
    char why[256];
    va_list ap;
    vl_ingest_reading_init(&r, measure, path);
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return emit(ctx, &r, why);
}

int vl_ingest_epoch_time(const char *digits, int64_t per_second, char out[40])
{
    /* exact: the text is split into seconds and fraction, no double */
    char padded[48], base[32];
    size_t n = digits ? strlen(digits) : 0, scale = 0, head;
    int64_t secs, frac_us = 0;
    if (!n || n > 22 || (per_second != 1 && per_second != 1000 && per_second != 1000000000))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (digits[i] < '0' || digits[i] > '9')
            return -1;
    for (int64_t p = per_second; p > 1; p /= 10)
        scale++;
    /* left-pad with zeros so that there is at least one digit of seconds */
    {
        size_t zeros = n <= scale ? scale + 1 - n : 0;
        memset(padded, '0', zeros);
        memcpy(padded + zeros, digits, n + 1);
        n += zeros;
    }
    head = n - scale;
    if (head > 12)
        return -1; /* beyond the year 33658 */
    secs = 0;
    for (size_t i = 0; i < head; i++)
        secs = secs * 10 + (padded[i] - '0');
    for (size_t k = 0; k < 6; k++) /* microseconds, truncated */
        frac_us = frac_us * 10 + (k < scale ? padded[head + k] - '0' : 0);
    vl_time_format(secs * 1000000 + frac_us, base); /* "...T..:..:..mmmZ" */
    if (frac_us % 1000) {                           /* keep the microseconds the source had */
        size_t bl = strlen(base);
        base[bl - 1] = '\0';
        snprintf(out, 40, "%s%03dZ", base, (int)(frac_us % 1000));
    } else {
        snprintf(out, 40, "%s", base);
    }
    return 0;
}
