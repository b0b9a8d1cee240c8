/*
 * vitalog — fhir: FHIR R4 (4.0.1) knowledge. Resource types and their
 * interactions, validation, search parameters (definitions, index
 * extraction, query parsing), Bundles and the CapabilityStatement.
 *
 * The tables here are the single source of truth: the http module routes
 * from them and the CapabilityStatement is generated from them, so the
 * server never claims more than it does.
 *
 * Resources are jansson trees from vl_json_parse(): numbers are tagged
 * strings (see util.h).
 */
#ifndef VITALOG_FHIR_H
#define VITALOG_FHIR_H

#include "vitalog/store.h"
#include "vitalog/util.h"

/* Interactions a type supports (bit set). */
enum {
    VL_INT_READ = 1 << 0,
    VL_INT_VREAD = 1 << 1,
    VL_INT_UPDATE = 1 << 2,
    VL_INT_DELETE = 1 << 3,
    VL_INT_HISTORY_INSTANCE = 1 << 4,
    VL_INT_HISTORY_TYPE = 1 << 5,
    VL_INT_CREATE = 1 << 6,
    VL_INT_SEARCH = 1 << 7,
};

/** A search parameter: its name, kind and the element paths it indexes.
 *  Paths are dot-separated element names from the resource root; a final
 *  element may be a CodeableConcept, Coding, Identifier, code, boolean,
 *  string, HumanName, Address, Reference, Quantity, date/dateTime/instant or
 *  Period, and the extractor handles each by its JSON shape. The tables are
 *  generated from the R4 SearchParameter definitions
 *  (src/fhir/search_params.c, by scripts/gen-search-params.py). */
typedef struct vl_search_param {
    const char *name;
    vl_index_kind_t kind;
    const char *paths[6]; /* NULL-terminated */
    const char *target;   /* references: only "Type/..." of this type, or NULL */
    const char *description;
    const char *url;        /* R4 canonical URL of the SearchParameter */
    const char *expression; /* its R4 FHIRPath expression, the part for this type */
} vl_search_param_t;

typedef struct vl_fhir_type {
    const char *name;
    unsigned interactions;
    const vl_search_param_t *params; /* terminated by {NULL} */
    const char *profile;             /* base StructureDefinition URL */
} vl_fhir_type_t;

/** The served types, terminated by {NULL}. */
extern const vl_fhir_type_t vl_fhir_types[];
/** Looks a type up by exact name; NULL if vitalog does not serve it. */
const vl_fhir_type_t *vl_fhir_type_find(const char *name);
/** Looks a search parameter of a type up; NULL if unknown. */
const vl_search_param_t *vl_fhir_param_find(const vl_fhir_type_t *t, const char *name);
/** True if `name` is a resource type defined by FHIR R4 (served or not). */
int vl_fhir_is_r4_type(const char *name);
/** The sorted list of every R4 resource type name; *n receives its length. */
const char *const *vl_fhir_r4_type_list(size_t *n);

/* ------------------------------------------------------------------------
 * Validation
 * ---------------------------------------------------------------------- */

/**
 * Validates a resource of a served type. Observation gets the full R4
 * rules (element names, cardinalities, choice types, primitive formats,
 * required elements, reference syntax, obs-6/obs-7) and the vital-signs
 * profile when it claims the profile or the vital-signs category; other
 * types get structural checks. Every issue names its path in
 * issue.expression. Base-spec violations are 400, profile violations 422.
 * Returns 0 if valid, -1 with all issues in `err`.
 */
int vl_fhir_validate(const vl_fhir_type_t *type, const json_t *res, vl_error_t *err) VL_WARN_UNUSED;

/** True if `s` is a valid FHIR id (1-64 of [A-Za-z0-9.-]). */
int vl_fhir_id_valid(const char *s);

/* ------------------------------------------------------------------------
 * Search
 * ---------------------------------------------------------------------- */

/** Extracts the index rows of every search parameter of `type` from `res`
 *  into `ix` (appended). */
int vl_fhir_index(const vl_fhir_type_t *type, const json_t *res, vl_index_t *ix, vl_error_t *err);

/** A decoded query-string parameter. */
typedef struct vl_param {
    char *name;  /* with modifier, e.g. "code:text" */
    char *value; /* percent-decoded */
} vl_param_t;

typedef struct vl_params {
    vl_param_t *items;
    size_t n, cap;
} vl_params_t;

void vl_params_init(vl_params_t *p);
void vl_params_free(vl_params_t *p);
int vl_params_add(vl_params_t *p, const char *name, const char *value);
/** Parses an application/x-www-form-urlencoded string (a query string or a
 *  POST _search body) and appends its parameters. */
int vl_params_parse_form(vl_params_t *p, const char *form, size_t len);
/** First value of `name`, or NULL (borrowed). */
const char *vl_params_get(const vl_params_t *p, const char *name);

/** A parsed search: the store query plus what the Bundle links need. The
 *  query's strings point into the search; free with vl_search_free(). */
typedef struct vl_search {
    vl_query_t query;
    char *self_query; /* canonical query string of the parameters used */
    int total_mode;   /* 0 none, 1 accurate (default) */
    /* storage for query strings/values */
    void *_mem;
} vl_search_t;

#define VL_SEARCH_COUNT_DEFAULT 50
#define VL_SEARCH_COUNT_MAX 1000

/**
 * Turns search parameters into a store query: known parameters of the
 * type, _id, _lastUpdated, _count, _offset, _sort, _total, _format, _summary
 * and _elements are understood; an unknown parameter or bad value is a
 * 400 (the server is strict: Prefer: handling=lenient makes it skip
 * unknown parameters instead, when `lenient` is set).
 */
int vl_fhir_search_parse(const vl_fhir_type_t *type, const vl_params_t *params, int lenient,
                         vl_search_t *out, vl_error_t *err) VL_WARN_UNUSED;
void vl_search_free(vl_search_t *s);

/* ------------------------------------------------------------------------
 * Bundles and metadata
 * ---------------------------------------------------------------------- */

/** The CapabilityStatement generated from vl_fhir_types (new reference). */
json_t *vl_fhir_capability(const char *base_url);

#endif
