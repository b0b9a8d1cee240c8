/*
 * vitalog — fhir/stats.c: Observation/$lastn and Observation/$stats (R4
 * OperationDefinitions Observation-lastn and Observation-stats), answered
 * from the store's series of each patient (store.h, "Clinical operations";
 * src/store/sqlite_stats.c).
 *
 * DESIGN NOTES
 *
 * 1. Parameters. GET takes the query string; POST a form body (the
 *    interaction layer adds it to x->params) or a Parameters resource
 *    (application/fhir+json), whose parameters become the same name=value
 *    pairs: value[x] of a primitive type as its text, valueCoding as
 *    "system|code", valueReference as its reference, valuePeriod as
 *    "start/end" (either may be empty). A parameter with part or resource
 *    is a 400. Both kinds of body may come with query parameters too.
 *
 * 2. $lastn. `max` (1..VL_LASTN_MAX, default 1) is taken out; `_count`,
 *    `_offset` and `_sort` are a 400 (the operation decides the order and
 *    the size); everything else is an Observation search
 *    (vl_fhir_search_parse_at: every condition, _summary, _elements).
 *    The patients are the search's `patient`/`subject` condition (its
 *    Patient references; a series exists only for a Patient subject), each
 *    answered by one vl_store_lastn() in id order; without one, the store
 *    reads the patients of the scope (or every patient, for the admin),
 *    bounded (VL_LASTN_GROUPS_MAX). The grouping, the order and the
 *    deduplication are the store's (store.h): a group is (patient, coding
 *    of Observation.code), an Observation with several codings is a
 *    member of each, its `max` newest by the end of effective[x], then
 *    the later written version first; entries by patient, code, newest
 *    first, undated last, each Observation once. R4 groups translations
 *    of one code transitively into one group; vitalog does not (a group is
 *    one coding), which gives each coding's latest and is documented. The
 *    answer is a searchset Bundle of every entry (total = entries; no
 *    paging), at most max_page_bytes of resources, else 400 too-costly.
 *
 * 3. $stats inputs. `subject` (1..1, a Patient reference, relative or
 *    under this server's base; `patient` is read as its synonym, as R4's
 *    own example writes it), `code` (0..*, comma lists; each in `system`,
 *    default LOINC), `coding` (0..*, system|code), at least one code,
 *    at most STATS_CODES_MAX; `duration` (hours before now, a positive
 *    decimal) or `period` (start/end) - exactly one; `statistic` (1..*,
 *    comma lists, codes of R4's observation-statistics; regression, which
 *    needs a time axis and two outputs, is a 400 not-supported); `include`
 *    (true/false) and `limit` (the most sources, 1..STATS_SOURCES_MAX,
 *    default STATS_SOURCES_MAX). An Observation counts when effective[x]
 *    lies within the period, and not when its status is entered-in-error
 *    (R4: they are excluded from the calculations).
 *
 * 4. The statistics (N the numeric values x1..xN, in one unit; note 5):
 *      average     the arithmetic mean           maximum, minimum, sum
 *      count       N; totalcount the Observations counted with or without
 *                  a numeric value (store.h vl_store_series_stats)
 *      variance    the sample variance sum((x - mean)^2) / (N - 1), N >= 2
 *      std-dev     its square root (Python statistics.variance, .stdev)
 *      median, 20-percent, 80-percent, 4-lower (Q1), 4-upper (Q3),
 *      5-1..5-4    the quantile p by linear interpolation between the
 *                  order statistics: h = (N - 1) p, x(floor h) +
 *                  (h - floor h) (x(floor h + 1) - x(floor h)) (R-7;
 *                  statistics.quantiles(method='inclusive')); 5-k is
 *                  p = k/5 (so 20-percent is 5-1 and 80-percent 5-4)
 *      4-dev       the quartile deviation (Q3 - Q1) / 2
 *      skew        the adjusted Fisher-Pearson sample skewness
 *                  G1 = sqrt(N (N - 1)) / (N - 2) g1, g1 = m3 / m2^1.5,
 *                  N >= 3 (Excel SKEW)
 *      kurtosis    the sample excess kurtosis G2 = ((N + 1) g2 + 6)
 *                  (N - 1) / ((N - 2) (N - 3)), g2 = m4 / m2^2 - 3,
 *                  N >= 4 (Excel KURT); m_k = sum((x - mean)^k) / N
 *    A statistic that is not defined for the values (too few of them, or
 *    no spread for skew and kurtosis) is a component with
 *    dataAbsentReason not-applicable (or not-a-number) instead of a value.
 *
 * 5. Units. The store computes over canonical units (ucum.c: kg, Cel,
 *    mm[Hg], ... - the vital-signs profiles' units), so kg and [lb_av]
 *    readings combine. A result is given in the unit every value was sent
 *    in when they all were sent in one UCUM unit (a patient who weighs in
 *    [lb_av] gets [lb_av], steps stay {steps} instead of their canonical
 *    %), else in the canonical unit; component values (whose sent unit
 *    the index does not keep) always in the canonical unit. Locations
 *    convert as values, sum with N times the offset, std-dev and 4-dev by
 *    the factor, variance by its square (its valueQuantity has only a
 *    unit text, "(u)^2": UCUM cannot raise every unit), skew and kurtosis
 *    are dimensionless (UCUM "1"), counts are {observations}. Values of
 *    one code in units of different dimensions are a 422.
 *
 * 6. Output. A Parameters resource: one `statistics` parameter (R4's name)
 *    per result (store.h: the code's own values, then each component of a
 *    panel) holding an Observation: status final, code = the code (or the
 *    component's), subject, effectivePeriod = the period asked for, one
 *    component per statistic asked (in the order asked), its code a coding
 *    of http://terminology.hl7.org/CodeSystem/observation-statistics -
 *    R4's component-per-statistic shape; with include=true, `source`
 *    parameters with the Observations that gave a value, each once, by
 *    time, at most `limit` and max_page_bytes of them.
 *
 * 7. Consent and the accounting of disclosures: every store read takes
 *    x->scope, so what a caller may not see counts as absent (a clinic
 *    without consent gets no entries, and statistics over nothing); every
 *    returned record is noted (vl_x_disclose), and statistics over a
 *    patient's data that counted something are noted for that patient
 *    (vl_x_disclose_patient, "Observation/$stats").
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"
#include "ucum.h"

#define UCUM "http://unitsofmeasure.org"
#define LOINC "http://loinc.org"
#define STATS_SYSTEM "http://terminology.hl7.org/CodeSystem/observation-statistics"
#define DATA_ABSENT "http://terminology.hl7.org/CodeSystem/data-absent-reason"

#define STATS_CODES_MAX 20      /* codes of one $stats request */
#define STATS_SOURCES_MAX 1000  /* source Observations of one $stats answer */
#define LASTN_PATIENTS_MAX 1000 /* patients one $lastn names */

/* ------------------------------------------------------------------------
 * Parameters (design note 1)
 * ---------------------------------------------------------------------- */

static int is_json_type(const char *ct)
{
    static const char *const types[] = {"application/fhir+json", "application/json",
                                        "application/json+fhir", NULL};
    size_t n;
    if (!ct)
        return 0;
    n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    for (const char *const *t = types; *t; t++)
        if (strlen(*t) == n && strncasecmp(ct, *t, n) == 0)
            return 1;
    return 0;
}

/* The text a query would carry for one Parameters.parameter value. */
static int value_text(vl_arena_t *a, const char *name, const json_t *p, const char **out,
                      vl_error_t *err)
{
    const char *key;
    json_t *v;
    *out = NULL;
    json_object_foreach ((json_t *)p, key, v) {
        if (!strcmp(key, "name") || !strcmp(key, "id") || !strcmp(key, "extension") ||
            !strcmp(key, "modifierExtension"))
            continue;
        if (!strcmp(key, "part") || !strcmp(key, "resource"))
            return vl_error_set(err, 400, "not-supported", "Parameters.parameter",
                                "parameter '%s': only value[x] is understood here", name);
        if (strncmp(key, "value", 5) != 0 || *out)
            return vl_error_set(err, 400, "structure", "Parameters.parameter",
                                "parameter '%s' must have exactly one value[x]", name);
        if (vl_json_is_string(v)) {
            *out = json_string_value(v);
        } else if (vl_json_is_number(v) && vl_json_number_text(v)) {
            *out = vl_json_number_text(v);
        } else if (json_is_boolean(v)) {
            *out = json_is_true(v) ? "true" : "false";
        } else if (json_is_object(v) && !strcmp(key, "valueCoding")) {
            const char *s = json_string_value(json_object_get(v, "system"));
            const char *c = json_string_value(json_object_get(v, "code"));
            char *t = c ? vl_arena_alloc(a, (s ? strlen(s) : 0) + strlen(c) + 2) : NULL;
            if (!c)
                return vl_error_set(err, 400, "required", "Parameters.parameter",
                                    "parameter '%s': valueCoding has no code", name);
            if (!t)
                return vl_error_set(err, 500, "exception", NULL, "out of memory");
            sprintf(t, "%s|%s", s ? s : "", c);
            *out = t;
        } else if (json_is_object(v) && !strcmp(key, "valueReference")) {
            *out = json_string_value(json_object_get(v, "reference"));
        } else if (json_is_object(v) && !strcmp(key, "valuePeriod")) {
            const char *s = json_string_value(json_object_get(v, "start"));
            const char *e = json_string_value(json_object_get(v, "end"));
            char *t = vl_arena_alloc(a, (s ? strlen(s) : 0) + (e ? strlen(e) : 0) + 2);
            if (!t)
                return vl_error_set(err, 500, "exception", NULL, "out of memory");
            sprintf(t, "%s/%s", s ? s : "", e ? e : "");
            *out = t;
        }
        if (!*out)
            return vl_error_set(err, 400, "not-supported", "Parameters.parameter",
                                "parameter '%s': %s is not understood here", name, key);
    }
    if (!*out)
        return vl_error_set(err, 400, "required", "Parameters.parameter",
                            "parameter '%s' has no value", name);
    return 0;
}

/* x->params (query and form), plus a Parameters body's, into `out`. */
static int collect_params(vl_fhir_exchange_t *x, vl_params_t *out, vl_error_t *err)
{
    vl_json_limits_t lim = {x->f->opts.max_depth};
    const json_t *list, *p;
    const char *rt;
    json_t *doc;
    size_t i;
    int rc = 0;
    vl_params_init(out);
    for (i = 0; i < x->params.n; i++)
        if (vl_params_add(out, x->params.items[i].name, x->params.items[i].value) < 0)
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
    if (strcmp(x->req->method, "POST") != 0 || !x->req->body_len ||
        !is_json_type(x->req->content_type))
        return 0;
    if (!(doc = vl_json_parse(x->req->body, x->req->body_len, &lim, err)))
        return -1;
    rt = json_string_value(json_object_get(doc, "resourceType"));
    if (!json_is_object(doc) || !rt || strcmp(rt, "Parameters") != 0) {
        json_decref(doc);
        return vl_error_set(err, 400, "invalid", "resourceType",
                            "the body of an operation must be a Parameters resource");
    }
    list = json_object_get(doc, "parameter");
    if (list && !json_is_array(list))
        rc = vl_error_set(err, 400, "structure", "Parameters.parameter", "must be an array");
    json_array_foreach (list, i, p) {
        const char *name = json_string_value(json_object_get(p, "name")), *value;
        if (rc < 0)
            break;
        if (!json_is_object(p) || !name) {
            rc = vl_error_set(err, 400, "required", "Parameters.parameter",
                              "every parameter needs a name");
            break;
        }
        if ((rc = value_text(x->arena, name, p, &value, err)) < 0)
            break;
        if (vl_params_add(out, name, value) < 0)
            rc = vl_error_set(err, 500, "exception", NULL, "out of memory");
    }
    json_decref(doc);
    return rc;
}

/* A positive integer no larger than `max`: 0, or -1. */
static int positive_int(const char *s, int max, int *out)
{
    long v = 0;
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
        if (v > max)
            return -1;
    }
    if (v < 1)
        return -1;
    *out = (int)v;
    return 0;
}

/* ------------------------------------------------------------------------
 * $lastn (design note 2)
 * ---------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The Patient references the search names (taken out of it), sorted and
 * distinct, into *out (arena); *named: whether it names a subject at
 * all. */
static int lastn_patients(vl_fhir_exchange_t *x, vl_query_t *q, const char ***out, size_t *n,
                          int *named, vl_error_t *err)
{
    const char **list;
    size_t k = 0;
    *out = NULL;
    *n = 0;
    *named = 0;
    if (q->series.patient) {
        if (!(list = vl_arena_alloc(x->arena, sizeof *list)))
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        list[0] = q->series.patient;
        *out = list;
        *n = 1;
        *named = 1;
        return 0;
    }
    for (size_t i = 0; i < q->n; i++) {
        vl_query_cond_t *c = &q->conds[i];
        if (c->kind != VL_INDEX_REFERENCE || c->negate || c->missing >= 0 || c->also || !c->n ||
            (strcmp(c->param, "patient") != 0 && strcmp(c->param, "subject") != 0))
            continue;
        if (!(list = vl_arena_alloc(x->arena, c->n * sizeof *list)))
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        for (size_t v = 0; v < c->n; v++)
            if (c->values[v].text && !strncmp(c->values[v].text, "Patient/", 8))
                list[k++] = c->values[v].text;
        if (k > 1)
            qsort(list, k, sizeof *list, cmp_str);
        for (size_t v = 0; v < k; v++)
            if (!*n || strcmp(list[*n - 1], list[v]) != 0)
                list[(*n)++] = list[v];
        memmove(c, c + 1, (q->n - i - 1) * sizeof *c);
        q->n--;
        *out = list;
        *named = 1;
        if (*n > LASTN_PATIENTS_MAX)
            return vl_error_set(err, 400, "too-costly", NULL, "$lastn names more than %d patients",
                                LASTN_PATIENTS_MAX);
        return 0;
    }
    return 0;
}

/* The records of every patient (or of the scope's, with none named):
 * 0, or -1 with the answer in `res`. */
static int lastn_read(vl_fhir_exchange_t *x, const vl_query_t *q, const char **patients,
                      size_t n_patients, int named, int max, vl_records_t *out,
                      vl_fhir_response_t *res)
{
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_query_t one = *q;
    memset(out, 0, sizeof *out);
    one.series.code_param = "code";
    one.series.date_param = "date";
    if (!named)
        n_patients = 1; /* one call: the store reads the scope's patients */
    for (size_t i = 0; i < n_patients; i++) {
        vl_records_t got;
        one.series.patient = named ? patients[i] : NULL;
        if (vl_store_lastn(x->f->opts.store, x->scope, &one, max, &got, &serr) < 0) {
            vl_records_free(out);
            vl_x_store_error(res, &serr);
            return -1;
        }
        if (out->n + got.n > VL_LASTN_RECORDS_MAX) {
            vl_records_free(&got);
            vl_records_free(out);
            vl_x_fail(res, 400, "too-costly",
                      "$lastn would return more than %d Observations: name fewer patients or "
                      "codes, or a smaller max",
                      VL_LASTN_RECORDS_MAX);
            return -1;
        }
        if (vl_grow(&out->items, &out->cap, out->n + got.n, sizeof *out->items) < 0) {
            vl_records_free(&got);
            vl_records_free(out);
            vl_x_fail(res, 500, "exception", "out of memory");
            return -1;
        }
        for (size_t k = 0; k < got.n; k++) { /* moved: `got` no longer owns them */
            out->items[out->n++] = got.items[k];
            got.items[k].body = NULL;
        }
        vl_records_free(&got);
    }
    out->total = (int64_t)out->n;
    return 0;
}

static int lastn_bundle(vl_fhir_exchange_t *x, const vl_search_t *search, const vl_subset_t *subset,
                        int max, vl_records_t *list, vl_fhir_response_t *res)
{
    vl_buf_t b = VL_BUF_INIT(0), url = VL_BUF_INIT(0);
    const char *base = vl_x_fhir_base(x);
    int first = 1, count_only = search->query.count == 0;
    size_t bytes = 0;
    char *text;
    size_t len;
    for (size_t i = 0; i < list->n && !count_only; i++)
        bytes += list->items[i].body_len;
    if (bytes > x->f->opts.max_page_bytes) {
        vl_records_free(list);
        return vl_x_fail(res, 400, "too-costly",
                         "the $lastn answer would hold more than %zu bytes of Observations: "
                         "name fewer patients or codes, or a smaller max",
                         x->f->opts.max_page_bytes);
    }
    vl_bundle_open(&b, "searchset", (int64_t)list->n);
    vl_buf_printf(&url, "%s/Observation/$lastn?%s%smax=%d", base, search->self_query,
                  search->self_query[0] ? "&" : "", max);
    vl_bundle_link(&b, &first, "self", url.data ? url.data : "");
    vl_bundle_links_close(&b, first);
    vl_buf_free(&url);
    for (size_t i = 0; i < list->n && !count_only; i++) {
        vl_record_t *r = &list->items[i];
        char *trimmed;
        size_t trimmed_len;
        if (vl_fhir_subset(r->type, subset, r->body, r->body_len, &trimmed, &trimmed_len) < 0) {
            vl_buf_free(&b);
            vl_records_free(list);
            return vl_x_fail(res, 500, "exception", "the subset of %s/%s could not be built",
                             r->type, r->id);
        }
        vl_x_disclose(x, r);
        vl_buf_puts(&b, i ? ",{\"fullUrl\":\"" : ",\"entry\":[{\"fullUrl\":\"");
        vl_full_url(&b, base, r->type, r->id);
        vl_buf_puts(&b, "\",\"resource\":");
        if (trimmed)
            vl_buf_append(&b, trimmed, trimmed_len);
        else
            vl_buf_append(&b, r->body, r->body_len);
        free(trimmed);
        vl_buf_puts(&b, ",\"search\":{\"mode\":\"match\"}}");
        vl_record_free(r);
    }
    vl_buf_puts(&b, list->n && !count_only ? "]}" : "}");
    vl_records_free(list);
    if (!(text = vl_buf_take(&b, &len)))
        return vl_x_fail(res, 500, "exception", "the $lastn Bundle could not be built");
    return vl_x_text(res, 200, NULL, text, len);
}

int vl_h_lastn(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    const vl_fhir_type_t *type = x->type ? x->type : vl_fhir_type_find("Observation");
    vl_error_t err = VL_ERROR_INIT;
    vl_params_t all, rest;
    vl_search_t search;
    vl_subset_t subset;
    vl_records_t list;
    const char **patients = NULL;
    size_t n_patients = 0;
    int max = 1, named = 0, rc = 0;
    const char *m = NULL;
    memset(&search, 0, sizeof search);
    vl_params_init(&rest);
    if (collect_params(x, &all, &err) < 0)
        goto fail;
    for (size_t i = 0; i < all.n; i++) {
        const char *name = all.items[i].name;
        if (!strcmp(name, "max")) {
            if (m) {
                vl_error_set(&err, 400, "invalid", "max", "max is given twice");
                goto fail;
            }
            m = all.items[i].value;
            continue;
        }
        if (!strcmp(name, "_count") || !strcmp(name, "_offset") || !strcmp(name, "_sort")) {
            vl_error_set(&err, 400, "not-supported", name,
                         "$lastn decides its order and size: %s is not supported (use max)", name);
            goto fail;
        }
        if (vl_params_add(&rest, name, all.items[i].value) < 0) {
            vl_error_set(&err, 500, "exception", NULL, "out of memory");
            goto fail;
        }
    }
    if (m && positive_int(m, VL_LASTN_MAX, &max) < 0) {
        vl_error_set(&err, 400, "invalid", "max", "max must be a whole number from 1 to %d",
                     VL_LASTN_MAX);
        goto fail;
    }
    if (!type) {
        vl_error_set(&err, 500, "exception", NULL, "Observation is not served");
        goto fail;
    }
    if (vl_fhir_search_parse_at(type, &rest, x->lenient, vl_x_fhir_base(x), &search, &err) < 0 ||
        vl_fhir_subset_params(&rest, 1, &subset, &err) < 0 ||
        lastn_patients(x, &search.query, &patients, &n_patients, &named, &err) < 0)
        goto fail;
    if (named && !n_patients) { /* only subjects that are not Patients: no series */
        memset(&list, 0, sizeof list);
    } else if (lastn_read(x, &search.query, patients, n_patients, named, max, &list, res) < 0) {
        goto out;
    }
    rc = lastn_bundle(x, &search, &subset, max, &list, res);
    goto out;
fail:
    rc = vl_x_error(res, &err);
out:
    vl_search_free(&search);
    vl_params_free(&rest);
    vl_params_free(&all);
    return rc;
}

/* ------------------------------------------------------------------------
 * $stats: the statistics (design note 4)
 * ---------------------------------------------------------------------- */

enum {
    S_AVERAGE,
    S_MAXIMUM,
    S_MINIMUM,
    S_COUNT,
    S_TOTALCOUNT,
    S_MEDIAN,
    S_STDDEV,
    S_SUM,
    S_VARIANCE,
    S_P20,
    S_P80,
    S_Q1,
    S_Q3,
    S_QDEV,
    S_QUINT1,
    S_QUINT2,
    S_QUINT3,
    S_QUINT4,
    S_SKEW,
    S_KURTOSIS,
    S_COUNT_OF
};

/* R4's observation-statistics codes, the quantile each needs (den 0:
 * none), and whether it needs the moments. */
static const struct stat_def {
    const char *code, *display;
    vl_stats_rank_t rank, rank2;
    int moments;
} stat_defs[S_COUNT_OF] = {
    [S_AVERAGE] = {"average", "Average", {0, 0}, {0, 0}, 0},
    [S_MAXIMUM] = {"maximum", "Maximum", {0, 0}, {0, 0}, 0},
    [S_MINIMUM] = {"minimum", "Minimum", {0, 0}, {0, 0}, 0},
    [S_COUNT] = {"count", "Count", {0, 0}, {0, 0}, 0},
    [S_TOTALCOUNT] = {"totalcount", "Total Count", {0, 0}, {0, 0}, 0},
    [S_MEDIAN] = {"median", "Median", {1, 2}, {0, 0}, 0},
    [S_STDDEV] = {"std-dev", "Standard Deviation", {0, 0}, {0, 0}, 1},
    [S_SUM] = {"sum", "Sum", {0, 0}, {0, 0}, 0},
    [S_VARIANCE] = {"variance", "Variance", {0, 0}, {0, 0}, 1},
    [S_P20] = {"20-percent", "20th Percentile", {1, 5}, {0, 0}, 0},
    [S_P80] = {"80-percent", "80th Percentile", {4, 5}, {0, 0}, 0},
    [S_Q1] = {"4-lower", "Lower Quartile", {1, 4}, {0, 0}, 0},
    [S_Q3] = {"4-upper", "Upper Quartile", {3, 4}, {0, 0}, 0},
    [S_QDEV] = {"4-dev", "Quartile Deviation", {1, 4}, {3, 4}, 0},
    [S_QUINT1] = {"5-1", "1st Quintile", {1, 5}, {0, 0}, 0},
    [S_QUINT2] = {"5-2", "2nd Quintile", {2, 5}, {0, 0}, 0},
    [S_QUINT3] = {"5-3", "3rd Quintile", {3, 5}, {0, 0}, 0},
    [S_QUINT4] = {"5-4", "4th Quintile", {4, 5}, {0, 0}, 0},
    [S_SKEW] = {"skew", "Skew", {0, 0}, {0, 0}, 1},
    [S_KURTOSIS] = {"kurtosis", "Kurtosis", {0, 0}, {0, 0}, 1},
};

typedef struct stats_req {
    const char *patient; /* "Patient/<id>" (arena) */
    const char *patient_id;
    struct {
        const char *system, *code;
    } codes[STATS_CODES_MAX];
    size_t n_codes;
    int64_t lo, hi;
    const char *start, *end; /* effectivePeriod as asked (arena; NULL: open) */
    int wanted[S_COUNT_OF];  /* in the order asked: stat ids */
    size_t n_wanted;
    vl_stats_rank_t ranks[VL_STATS_RANKS_MAX];
    size_t n_ranks;
    int moments;
    int include, limit;
} stats_req_t;

/* ------------------------------------------------------------------------
 * $stats: parameters (design note 3)
 * ---------------------------------------------------------------------- */

/* Calls fn on each comma-separated piece of `value` (no empty piece). */
static int each_piece(vl_fhir_exchange_t *x, const char *name, const char *value,
                      int (*fn)(vl_fhir_exchange_t *x, stats_req_t *r, const char *piece,
                                vl_error_t *err),
                      stats_req_t *r, vl_error_t *err)
{
    const char *p = value;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *piece;
        if (!n)
            return vl_error_set(err, 400, "invalid", name, "%s has an empty value", name);
        if (!(piece = vl_arena_strndup(x->arena, p, n)))
            return vl_error_set(err, 500, "exception", NULL, "out of memory");
        if (fn(x, r, piece, err) < 0)
            return -1;
        if (!end)
            return 0;
        p = end + 1;
    }
}

/* Adds a code (system NULL: `system`'s, filled in by stats_params). */
static int add_code(stats_req_t *r, const char *system, const char *code, vl_error_t *err)
{
    if (!code[0])
        return vl_error_set(err, 400, "invalid", "code", "a code is empty");
    if (r->n_codes == STATS_CODES_MAX)
        return vl_error_set(err, 400, "too-costly", "code", "$stats takes at most %d codes",
                            STATS_CODES_MAX);
    r->codes[r->n_codes].system = system;
    r->codes[r->n_codes].code = code;
    r->n_codes++;
    return 0;
}

/* code=: a code of `system` (filled in later: default LOINC). */
static int piece_code(vl_fhir_exchange_t *x, stats_req_t *r, const char *piece, vl_error_t *err)
{
    (void)x;
    if (strchr(piece, '|'))
        return vl_error_set(err, 400, "invalid", "code",
                            "code '%s' holds a '|': give the system in `system`, or use "
                            "coding=system|code",
                            piece);
    return add_code(r, NULL, piece, err);
}

static int piece_coding(vl_fhir_exchange_t *x, stats_req_t *r, const char *piece, vl_error_t *err)
{
    const char *bar = strchr(piece, '|');
    char *system;
    if (!bar)
        return vl_error_set(err, 400, "invalid", "coding",
                            "coding '%s' must be system|code (|code: no system)", piece);
    if (!(system = vl_arena_strndup(x->arena, piece, (size_t)(bar - piece))))
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    return add_code(r, system, bar + 1, err);
}

static int add_rank(stats_req_t *r, vl_stats_rank_t k)
{
    if (!k.den)
        return 0;
    for (size_t i = 0; i < r->n_ranks; i++)
        if (r->ranks[i].num * k.den == k.num * r->ranks[i].den)
            return 0;
    r->ranks[r->n_ranks++] = k; /* at most 7 distinct: room for VL_STATS_RANKS_MAX */
    return 0;
}

static int piece_statistic(vl_fhir_exchange_t *x, stats_req_t *r, const char *piece,
                           vl_error_t *err)
{
    (void)x;
    for (int s = 0; s < S_COUNT_OF; s++) {
        if (strcmp(stat_defs[s].code, piece) != 0)
            continue;
        for (size_t i = 0; i < r->n_wanted; i++)
            if (r->wanted[i] == s)
                return 0;
        r->wanted[r->n_wanted++] = s;
        r->moments |= stat_defs[s].moments;
        add_rank(r, stat_defs[s].rank);
        add_rank(r, stat_defs[s].rank2);
        return 0;
    }
    if (!strcmp(piece, "regression"))
        return vl_error_set(err, 400, "not-supported", "statistic",
                            "the statistic 'regression' is not supported");
    return vl_error_set(err, 400, "code-invalid", "statistic",
                        "'%s' is not a statistic of http://hl7.org/fhir/ValueSet/"
                        "observation-statistics that vitalog computes",
                        piece);
}

/* "Patient/<id>", relative or under this server's base. */
static int parse_subject(vl_fhir_exchange_t *x, stats_req_t *r, const char *value, vl_error_t *err)
{
    const char *ref = vl_fhir_local_reference(value, vl_x_fhir_base(x));
    char *p;
    if (strncmp(ref, "Patient/", 8) != 0 || !vl_fhir_id_valid(ref + 8))
        return vl_error_set(err, 400, "not-supported", "subject",
                            "subject must be a Patient of this server (Patient/<id>), not '%s'",
                            value);
    if (!(p = vl_arena_strdup(x->arena, ref)))
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    r->patient = p;
    r->patient_id = p + 8;
    return 0;
}

/* Strict decimal: digits, an optional fraction. */
static int parse_hours(const char *s, double *out)
{
    const char *p = s;
    int digits = 0;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, digits++;
    }
    if (*p || !digits)
        return -1;
    *out = strtod(s, NULL);
    return *out > 0 && *out <= 1e7 ? 0 : -1; /* a thousand years at most */
}

static int parse_period(vl_fhir_exchange_t *x, stats_req_t *r, const char *value, vl_error_t *err)
{
    const char *slash = strchr(value, '/');
    char *start, *end;
    int64_t lo, hi;
    if (!slash || strchr(slash + 1, '/'))
        return vl_error_set(err, 400, "invalid", "period",
                            "period must be <start>/<end> (either may be empty), not '%s'", value);
    start = vl_arena_strndup(x->arena, value, (size_t)(slash - value));
    end = vl_arena_strdup(x->arena, slash + 1);
    if (!start || !end)
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    r->lo = INT64_MIN;
    r->hi = INT64_MAX;
    if (*start && vl_time_parse_range(start, &r->lo, &hi, NULL) < 0)
        return vl_error_set(err, 400, "invalid", "period", "the start '%s' is not a dateTime",
                            start);
    if (*end && vl_time_parse_range(end, &lo, &r->hi, NULL) < 0)
        return vl_error_set(err, 400, "invalid", "period", "the end '%s' is not a dateTime", end);
    if (r->lo >= r->hi)
        return vl_error_set(err, 400, "invalid", "period", "the period ends before it starts");
    r->start = *start ? start : NULL;
    r->end = *end ? end : NULL;
    return 0;
}

static int stats_params(vl_fhir_exchange_t *x, const vl_params_t *params, stats_req_t *r,
                        vl_error_t *err)
{
    const char *system = NULL, *duration = NULL, *period = NULL, *subject = NULL;
    const char *include = NULL, *limit = NULL;
    memset(r, 0, sizeof *r);
    r->limit = STATS_SOURCES_MAX;
    for (size_t i = 0; i < params->n; i++) {
        const char *name = params->items[i].name, *value = params->items[i].value;
        const char **once = NULL;
        if (!strcmp(name, "subject") || !strcmp(name, "patient"))
            once = &subject;
        else if (!strcmp(name, "system"))
            once = &system;
        else if (!strcmp(name, "duration"))
            once = &duration;
        else if (!strcmp(name, "period"))
            once = &period;
        else if (!strcmp(name, "include"))
            once = &include;
        else if (!strcmp(name, "limit"))
            once = &limit;
        if (once) {
            if (*once)
                return vl_error_set(err, 400, "invalid", name, "%s is given twice", name);
            *once = value;
        } else if (!strcmp(name, "code")) {
            if (each_piece(x, name, value, piece_code, r, err) < 0)
                return -1;
        } else if (!strcmp(name, "coding")) {
            if (each_piece(x, name, value, piece_coding, r, err) < 0)
                return -1;
        } else if (!strcmp(name, "statistic")) {
            if (each_piece(x, name, value, piece_statistic, r, err) < 0)
                return -1;
        } else if (strcmp(name, "_format") != 0 && strcmp(name, "_pretty") != 0 && !x->lenient) {
            return vl_error_set(err, 400, "not-supported", name, "$stats has no parameter '%s'",
                                name);
        }
    }
    if (!subject || !*subject)
        return vl_error_set(err, 400, "required", "subject",
                            "$stats needs a subject (a Patient reference)");
    if (parse_subject(x, r, subject, err) < 0)
        return -1;
    if (!r->n_codes)
        return vl_error_set(err, 400, "required", "code", "$stats needs a code or a coding");
    if (system && !*system)
        return vl_error_set(err, 400, "invalid", "system", "system is empty");
    /* the parameters are freed before the codes are read: copies */
    if (system && !(system = vl_arena_strdup(x->arena, system)))
        return vl_error_set(err, 500, "exception", NULL, "out of memory");
    for (size_t i = 0, k = 0; i < r->n_codes; i++) { /* each code once */
        size_t d = 0;
        if (!r->codes[i].system)
            r->codes[i].system = system ? system : LOINC;
        while (d < k && (strcmp(r->codes[d].system, r->codes[i].system) ||
                         strcmp(r->codes[d].code, r->codes[i].code)))
            d++;
        if (d == k)
            r->codes[k++] = r->codes[i];
        if (i + 1 == r->n_codes)
            r->n_codes = k;
    }
    if (!r->n_wanted)
        return vl_error_set(err, 400, "required", "statistic",
                            "$stats needs at least one statistic (average, maximum, ...)");
    if (!duration == !period)
        return vl_error_set(err, 400, duration ? "invalid" : "required", "period",
                            "$stats needs either a duration (hours) or a period, not %s",
                            duration ? "both" : "neither");
    if (duration) {
        double hours;
        int64_t now = vl_time_now_us();
        if (parse_hours(duration, &hours) < 0)
            return vl_error_set(err, 400, "invalid", "duration",
                                "duration must be a positive number of hours, not '%s'", duration);
        r->hi = now + 1; /* up to and including now */
        r->lo = now - (int64_t)(hours * 3600e6);
    } else if (parse_period(x, r, period, err) < 0) {
        return -1;
    }
    if (include && strcmp(include, "true") != 0 && strcmp(include, "false") != 0)
        return vl_error_set(err, 400, "invalid", "include", "include must be true or false");
    r->include = include && !strcmp(include, "true");
    if (limit && positive_int(limit, 1 << 30, &r->limit) < 0)
        return vl_error_set(err, 400, "invalid", "limit", "limit must be a positive integer");
    if (r->limit > STATS_SOURCES_MAX)
        r->limit = STATS_SOURCES_MAX;
    return 0;
}

/* ------------------------------------------------------------------------
 * $stats: the answer (design notes 5 and 6)
 * ---------------------------------------------------------------------- */

/* The unit a result is given in: display = (canonical - offset) / factor. */
typedef struct view {
    const char *code; /* its UCUM code, or NULL (a unit of no UCUM system) */
    const char *text; /* its text ("" none) */
    double factor, offset;
} view_t;

static view_t view_of(const vl_stats_t *st)
{
    view_t v = {NULL, "", 1, 0};
    const vl_ucum_unit_t *u;
    if (!st->unit)
        return v;
    if (st->unit[0] == '|') {
        v.text = st->unit + 1;
        return v;
    }
    v.code = v.text = st->unit;
    if (st->sent_unit && strcmp(st->sent_unit, st->unit) != 0 &&
        (u = vl_ucum_find(st->sent_unit)) && !strcmp(u->canonical, st->unit)) {
        v.code = v.text = st->sent_unit;
        v.factor = u->factor;
        v.offset = u->offset;
    }
    return v;
}

static json_t *number(double d)
{
    char text[40];
    snprintf(text, sizeof text, "%.15g", d);
    return vl_json_number(text);
}

static json_t *quantity(double value, const char *unit, const char *code)
{
    json_t *q = json_object();
    json_object_set_new(q, "value", number(value));
    if (unit && *unit)
        json_object_set_new(q, "unit", json_string(unit));
    if (code) {
        json_object_set_new(q, "system", json_string(UCUM));
        json_object_set_new(q, "code", json_string(code));
    }
    return q;
}

static json_t *coding_of(const char *system, const char *code, const char *display)
{
    json_t *c = json_object();
    if (system && *system)
        json_object_set_new(c, "system", json_string(system));
    json_object_set_new(c, "code", json_string(code));
    if (display)
        json_object_set_new(c, "display", json_string(display));
    return c;
}

static json_t *concept(json_t *coding)
{
    return json_pack("{s:[o]}", "coding", coding);
}

/* The value of statistic `s` of `st` in the view, or NAN when it is not
 * defined (*why: the dataAbsentReason code). Counts are exact. */
static double stat_value(int s, const vl_stats_t *st, const stats_req_t *r, const view_t *v,
                         const char **why)
{
    double n = (double)st->n, m2, g;
    *why = "not-applicable";
    if (s == S_COUNT)
        return n;
    if (s == S_TOTALCOUNT)
        return (double)st->total;
    if (st->n == 0)
        return NAN;
    switch (s) {
    case S_AVERAGE: return (st->mean - v->offset) / v->factor;
    case S_MAXIMUM: return (st->max - v->offset) / v->factor;
    case S_MINIMUM: return (st->min - v->offset) / v->factor;
    case S_SUM: return (st->sum - n * v->offset) / v->factor;
    case S_VARIANCE:
    case S_STDDEV:
        if (st->n < 2)
            return NAN;
        m2 = st->m2 / (n - 1) / (v->factor * v->factor);
        return s == S_VARIANCE ? m2 : sqrt(m2);
    case S_SKEW:
    case S_KURTOSIS:
        if (st->n < (s == S_SKEW ? 3 : 4))
            return NAN;
        if (!(st->m2 > 0)) {
            *why = "not-a-number";
            return NAN;
        }
        m2 = st->m2 / n;
        if (s == S_SKEW) {
            g = st->m3 / n / pow(m2, 1.5);
            return sqrt(n * (n - 1)) / (n - 2) * g;
        }
        g = st->m4 / n / (m2 * m2) - 3;
        return ((n + 1) * g + 6) * (n - 1) / ((n - 2) * (n - 3));
    default: break;
    }
    { /* the quantiles */
        const struct stat_def *d = &stat_defs[s];
        double q[2] = {NAN, NAN};
        for (int k = 0; k < (d->rank2.den ? 2 : 1); k++) {
            vl_stats_rank_t want = k ? d->rank2 : d->rank;
            for (size_t i = 0; i < r->n_ranks; i++)
                if (r->ranks[i].num * want.den == want.num * r->ranks[i].den)
                    q[k] = st->ranks[i];
        }
        if (s == S_QDEV)
            return (q[1] - q[0]) / 2 / v->factor;
        return (q[0] - v->offset) / v->factor;
    }
}

static json_t *stat_component(int s, const vl_stats_t *st, const stats_req_t *r, const view_t *v)
{
    const char *why;
    double value = stat_value(s, st, r, v, &why);
    json_t *c = json_object();
    char sq[80];
    json_object_set_new(c, "code",
                        concept(coding_of(STATS_SYSTEM, stat_defs[s].code, stat_defs[s].display)));
    if (!isfinite(value)) {
        json_object_set_new(c, "dataAbsentReason",
                            concept(coding_of(DATA_ABSENT, isnan(value) ? why : "error", NULL)));
    } else if (s == S_COUNT || s == S_TOTALCOUNT) {
        json_object_set_new(c, "valueQuantity", quantity(value, NULL, "{observations}"));
    } else if (s == S_SKEW || s == S_KURTOSIS) {
        json_object_set_new(c, "valueQuantity", quantity(value, NULL, "1"));
    } else if (s == S_VARIANCE) {
        snprintf(sq, sizeof sq, "(%.60s)^2", v->text);
        json_object_set_new(c, "valueQuantity", quantity(value, v->text[0] ? sq : NULL, NULL));
    } else {
        json_object_set_new(c, "valueQuantity", quantity(value, v->text, v->code));
    }
    return c;
}

/* The statistics Observation of one result. */
static json_t *stats_observation(const stats_req_t *r, const vl_stats_t *st)
{
    view_t v = view_of(st);
    json_t *o = json_object(), *period = json_object(), *comps = json_array();
    char ts[32];
    json_object_set_new(o, "resourceType", json_string("Observation"));
    json_object_set_new(o, "status", json_string("final"));
    json_object_set_new(o, "code", concept(coding_of(st->system, st->code, NULL)));
    json_object_set_new(o, "subject", json_pack("{s:s}", "reference", r->patient));
    if (r->start)
        json_object_set_new(period, "start", json_string(r->start));
    else if (r->lo != INT64_MIN) {
        vl_time_format(r->lo, ts);
        json_object_set_new(period, "start", json_string(ts));
    }
    if (r->end)
        json_object_set_new(period, "end", json_string(r->end));
    else if (r->hi != INT64_MAX) {
        vl_time_format(r->hi - 1, ts);
        json_object_set_new(period, "end", json_string(ts));
    }
    if (json_object_size(period))
        json_object_set_new(o, "effectivePeriod", period);
    else
        json_decref(period); /* all of time: no Period to state */
    for (size_t i = 0; i < r->n_wanted; i++)
        json_array_append_new(comps, stat_component(r->wanted[i], st, r, &v));
    json_object_set_new(o, "component", comps);
    return o;
}

/* A set of record ids (open addressing; the sources are Observations). */
typedef struct idset {
    const char **slots; /* borrowed from the records */
    size_t n, cap;      /* cap a power of two */
} idset_t;

static size_t id_hash(const char *s)
{
    size_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

/* 1 added, 0 there already, -1 out of memory. */
static int idset_add(idset_t *set, const char *id)
{
    size_t i;
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        const char **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t k = 0; k < set->cap; k++)
            if (set->slots[k]) {
                for (i = id_hash(set->slots[k]) & (cap - 1); slots[i]; i = (i + 1) & (cap - 1))
                    ;
                slots[i] = set->slots[k];
            }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    for (i = id_hash(id) & (set->cap - 1); set->slots[i]; i = (i + 1) & (set->cap - 1))
        if (!strcmp(set->slots[i], id))
            return 0;
    set->slots[i] = id;
    set->n++;
    return 1;
}

/* One parameter {"name":..,"resource":..} appended to the list in `b`. */
static void parameter(vl_buf_t *b, int *first, const char *name, const char *resource, size_t len)
{
    vl_buf_printf(b, "%s{\"name\":\"%s\",\"resource\":", *first ? "" : ",", name);
    vl_buf_append(b, resource, len);
    vl_buf_puts(b, "}");
    *first = 0;
}

/* The Parameters answer of every result; sources each once. */
static int stats_answer(vl_fhir_exchange_t *x, const stats_req_t *r, vl_stats_list_t *lists,
                        size_t n_lists, vl_fhir_response_t *res)
{
    vl_buf_t b = VL_BUF_INIT(0);
    idset_t seen = {NULL, 0, 0};
    size_t bytes = 0, given = 0;
    int first = 1, counted = 0;
    char *text;
    size_t len;
    vl_buf_puts(&b, "{\"resourceType\":\"Parameters\",\"parameter\":[");
    for (size_t l = 0; l < n_lists; l++)
        for (size_t i = 0; i < lists[l].n; i++) {
            json_t *o = stats_observation(r, &lists[l].items[i]);
            char *dump = o ? vl_json_dump(o, &len) : NULL;
            json_decref(o);
            if (!dump) {
                vl_buf_free(&b);
                return vl_x_fail(res, 500, "exception", "out of memory");
            }
            parameter(&b, &first, "statistics", dump, len);
            free(dump);
            counted |= lists[l].items[i].total > 0;
        }
    for (size_t l = 0; l < n_lists; l++)
        for (size_t i = 0; i < lists[l].n; i++) {
            vl_records_t *src = &lists[l].items[i].sources;
            for (size_t k = 0; k < src->n && given < (size_t)r->limit; k++) {
                vl_record_t *rec = &src->items[k];
                int added;
                if (!rec->body || bytes + rec->body_len > x->f->opts.max_page_bytes)
                    continue;
                /* each once: an earlier result may have given it (a panel
                 * is the source of each of its components) */
                if ((added = idset_add(&seen, rec->id)) < 0) {
                    free(seen.slots);
                    vl_buf_free(&b);
                    return vl_x_fail(res, 500, "exception", "out of memory");
                }
                if (!added)
                    continue;
                vl_x_disclose(x, rec);
                parameter(&b, &first, "source", rec->body, rec->body_len);
                bytes += rec->body_len;
                given++;
            }
        }
    free(seen.slots);
    vl_buf_puts(&b, "]}");
    if (counted)
        vl_x_disclose_patient(x, r->patient_id, "Observation/$stats");
    if (!(text = vl_buf_take(&b, &len)))
        return vl_x_fail(res, 500, "exception", "the $stats answer could not be built");
    return vl_x_text(res, 200, NULL, text, len);
}

int vl_h_stats(vl_fhir_exchange_t *x, vl_fhir_response_t *res)
{
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_params_t params;
    stats_req_t *r = vl_arena_alloc(x->arena, sizeof *r);
    vl_stats_list_t lists[STATS_CODES_MAX];
    size_t n_lists = 0;
    int rc;
    if (!r)
        return vl_x_fail(res, 500, "exception", "out of memory");
    if (collect_params(x, &params, &err) < 0 || stats_params(x, &params, r, &err) < 0) {
        vl_params_free(&params);
        return vl_x_error(res, &err);
    }
    vl_params_free(&params);
    for (size_t i = 0; i < r->n_codes; i++) {
        vl_stats_query_t q = {
            .type = "Observation",
            .patient = r->patient,
            .system = r->codes[i].system,
            .code = r->codes[i].code,
            .code_param = "code",
            .value_param = "value-quantity",
            .component_param = "component-code-value-quantity",
            .status_param = "status",
            .exclude_status = "entered-in-error",
            .lo = r->lo,
            .hi = r->hi,
            .what = (r->moments ? VL_STATS_MOMENTS : 0u) | (r->include ? VL_STATS_SOURCES : 0u),
            .n_ranks = r->n_ranks,
            .ranks = r->ranks,
            .max_sources = (size_t)r->limit,
        };
        if (vl_store_series_stats(x->f->opts.store, x->scope, &q, &lists[n_lists], &serr) < 0) {
            rc = vl_x_store_error(res, &serr);
            goto out;
        }
        n_lists++;
        for (size_t k = 0; k < lists[n_lists - 1].n; k++)
            if (lists[n_lists - 1].items[k].mixed) {
                const vl_stats_t *st = &lists[n_lists - 1].items[k];
                rc = vl_x_fail(res, 422, "processing",
                               "the values of %s%s%s are in units of different dimensions "
                               "(or units vitalog cannot convert): statistics need one unit",
                               st->system, st->system[0] ? "|" : "", st->code);
                goto out;
            }
    }
    rc = stats_answer(x, r, lists, n_lists, res);
out:
    for (size_t i = 0; i < n_lists; i++)
        vl_stats_list_free(&lists[i]);
    return rc;
}
