/*
 * vitalog — fhir: private interface of the resource validator.
 *
 * The validator is split in four files:
 *
 *   validate.c         the walker (one generic, table-driven traversal of a
 *                      resource), issue collection and vl_fhir_validate()
 *   validate_types.c   the data: one static table per FHIR datatype,
 *                      backbone element and modelled resource, and the
 *                      invariants (FHIRPath constraints) attached to them
 *   validate_prim.c    the primitive formats (id, code, uri, dateTime...)
 *                      and reference syntax
 *   validate_vitals.c  the R4 vital-signs profile family
 *
 * Only this header connects them; nothing here is public.
 */
#ifndef VITALOG_FHIR_VALIDATE_INTERNAL_H
#define VITALOG_FHIR_VALIDATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "vitalog/util.h"

/* ------------------------------------------------------------------------
 * Types. Every FHIR type the validator knows is one value of vt_t and one
 * row of vl_vdefs[] (indexed by it).
 * ---------------------------------------------------------------------- */

typedef enum vt {
    VT_NONE = 0, /* terminator of choice lists */
    /* primitives */
    VT_BOOLEAN,
    VT_INTEGER,
    VT_POSITIVEINT,
    VT_UNSIGNEDINT,
    VT_DECIMAL,
    VT_STRING,
    VT_MARKDOWN,
    VT_CODE,
    VT_ID,
    VT_URI,
    VT_URL,
    VT_CANONICAL,
    VT_OID,
    VT_UUID,
    VT_BASE64BINARY,
    VT_DATE,
    VT_DATETIME,
    VT_INSTANT,
    VT_TIME,
    VT_XHTML,
    VT_LAST_PRIMITIVE = VT_XHTML,
    /* general-purpose datatypes */
    VT_ELEMENT, /* the shape of a primitive's "_x" companion: id + extension */
    VT_EXTENSION,
    VT_CODING,
    VT_CODEABLECONCEPT,
    VT_QUANTITY,
    VT_SIMPLEQUANTITY,
    VT_AGE,
    VT_COUNT,
    VT_DISTANCE,
    VT_DURATION,
    VT_MONEY,
    VT_RANGE,
    VT_RATIO,
    VT_PERIOD,
    VT_SAMPLEDDATA,
    VT_IDENTIFIER,
    VT_REFERENCE,
    VT_ANNOTATION,
    VT_ATTACHMENT,
    VT_HUMANNAME,
    VT_ADDRESS,
    VT_CONTACTPOINT,
    VT_TIMING,
    VT_TIMING_REPEAT,
    VT_META,
    VT_NARRATIVE,
    /* datatypes valid in Extension.value[x] that are not modelled: checked
     * structurally only (see vl_vwalk_generic) */
    VT_SIGNATURE,
    VT_CONTACTDETAIL,
    VT_CONTRIBUTOR,
    VT_DATAREQUIREMENT,
    VT_EXPRESSION,
    VT_PARAMETERDEFINITION,
    VT_RELATEDARTIFACT,
    VT_TRIGGERDEFINITION,
    VT_USAGECONTEXT,
    VT_DOSAGE,
    /* backbone elements of the modelled resources */
    VT_OBS_REFERENCERANGE,
    VT_OBS_COMPONENT,
    VT_PAT_CONTACT,
    VT_PAT_COMMUNICATION,
    VT_PAT_LINK,
    VT_PRAC_QUALIFICATION,
    VT_ORG_CONTACT,
    VT_DEV_UDICARRIER,
    VT_DEV_DEVICENAME,
    VT_DEV_SPECIALIZATION,
    VT_DEV_VERSION,
    VT_DEV_PROPERTY,
    VT_CONSENT_POLICY,
    VT_CONSENT_VERIFICATION,
    VT_CONSENT_PROVISION,
    VT_CONSENT_ACTOR,
    VT_CONSENT_DATA,
    /* resources */
    VT_RESOURCE, /* any resource (Observation.contained): by resourceType */
    VT_OBSERVATION,
    VT_PATIENT,
    VT_PRACTITIONER,
    VT_ORGANIZATION,
    VT_DEVICE,
    VT_CONSENT,
    VT_OTHER_RESOURCE, /* an R4 resource type that is not modelled */
    VT__COUNT
} vt_t;

typedef enum vkind {
    VK_PRIMITIVE, /* JSON scalar with a lexical format */
    VK_DATATYPE,  /* complex datatype: implicit id + extension */
    VK_BACKBONE,  /* backbone element: implicit id + extension + modifierExtension */
    VK_OPAQUE,    /* known datatype, not modelled: structural checks only */
    VK_RESOURCE,  /* resource: implicit Resource/DomainResource elements */
} vkind_t;

/** One element of a complex type. A choice element ("value[x]") has
 *  `type` VT_NONE and `choices` listing the allowed types; its JSON name
 *  is `name` followed by the capitalised type name (valueQuantity). */
typedef struct vdef_elem {
    const char *name;
    uint8_t min;              /* 0 or 1 */
    uint8_t many;             /* 1 for max "*" (a JSON array), 0 for max 1 */
    vt_t type;                /* element type, VT_NONE for a choice */
    const vt_t *choices;      /* choice types, VT_NONE-terminated, or NULL */
    const char *const *codes; /* required value set of a code, NULL-terminated */
} vdef_elem_t;

struct vctx;
/** An invariant hook: runs after the elements of `obj` were walked; the
 *  context's path names `obj`. */
typedef void (*vcheck_fn)(struct vctx *c, const json_t *obj);

typedef struct vdef_type {
    const char *name; /* FHIR type name, as in choice suffixes ("dateTime") */
    vkind_t kind;
    const vdef_elem_t *elems; /* terminated by {NULL}; NULL for primitives */
    vcheck_fn check;          /* invariants, or NULL */
} vdef_type_t;

/** Indexed by vt_t. */
extern const vdef_type_t vl_vdefs[VT__COUNT];

/* ------------------------------------------------------------------------
 * Walking context: the path of the value being looked at and the issues
 * collected so far.
 * ---------------------------------------------------------------------- */

#define VPATH_MAX 512
#define VISSUES_MAX 100

typedef struct vctx {
    vl_error_t *err;
    const json_t *root; /* the resource passed to vl_fhir_validate() */
    char path[VPATH_MAX];
    size_t plen;
    unsigned issues;       /* issues this validation added */
    json_t *contained_ids; /* set of root contained[].id, built on first use */
    json_t *local_refs;    /* set of "#..." strings in root, built on first use */
} vctx_t;

/** The elements every type of kind `k` inherits (id, extension; and
 *  modifierExtension, meta, text, contained, ... by kind), terminated by
 *  {NULL}: the validator's, which fhirpath.c's element model shares. */
const vdef_elem_t *vl_vbase_of(vkind_t k);
/** True if the root resource has a contained resource with this id. */
int vl_vcontained_has(vctx_t *c, const char *id);

/** Appends ".name" (or "[i]" when name is NULL) to the path; returns the
 *  previous length for vpath_pop(). */
size_t vpath_push(vctx_t *c, const char *name);
size_t vpath_push_index(vctx_t *c, size_t i);
void vpath_pop(vctx_t *c, size_t len);

/** Records an error issue at the current path (or at path + "." + sub when
 *  sub is not NULL). Stops recording after VISSUES_MAX. */
void vfail(vctx_t *c, int status, const char *code, const char *sub, const char *fmt, ...)
    VL_PRINTF(5, 6);

/** Walks `v` as a value of type `t` (object types: element names,
 *  cardinalities, nested values, invariants). */
void vl_vwalk_object(vctx_t *c, vt_t t, const json_t *v);
/** Structural checks only: no empty objects/arrays/strings, no nulls, no
 *  control characters, reference syntax wherever a "reference" string is. */
void vl_vwalk_generic(vctx_t *c, const json_t *v);

/* ------------------------------------------------------------------------
 * Primitives and references (validate_prim.c)
 * ---------------------------------------------------------------------- */

/** Checks a JSON value against primitive type `t`; records issues. */
void vl_vcheck_primitive(vctx_t *c, vt_t t, const json_t *v);
/** Checks the text of a string (non-empty, no control characters, size). */
int vl_vstring_ok(vctx_t *c, const char *s);

/** Lexical checks of the date/time family; return 1 when valid. */
int vl_vdate_valid(const char *s);
int vl_vdatetime_valid(const char *s);
int vl_vinstant_valid(const char *s);
int vl_vtime_valid(const char *s);

/** Parses a Reference.reference. Returns 1 when the syntax is valid. If
 *  the reference names a resource type (relative, or an absolute URL
 *  ending in Type/id[/_history/vid]) it is copied to `type` (else ""). A
 *  local reference "#id" sets *local. */
int vl_vref_parse(const char *s, char *type, size_t type_size, int *local);

/** Compares two decimal JSON values numerically: <0, 0, >0; 2 if not
 *  comparable. */
int vl_vdecimal_cmp(const json_t *a, const json_t *b);

/* ------------------------------------------------------------------------
 * Profiles (validate_vitals.c)
 * ---------------------------------------------------------------------- */

/** Applies the vital-signs profiles when `obs` claims one of them or
 *  carries the vital-signs category. Issues are 422. */
void vl_vvitals_check(vctx_t *c, const json_t *obs);

/** Small helpers shared by the files. */
const json_t *vl_vget(const json_t *obj, const char *key);
const char *vl_vstr(const json_t *obj, const char *key); /* string or NULL */
/** True if CodeableConcept `cc` has a coding with this system and code. */
int vl_vcc_has(const json_t *cc, const char *system, const char *code);
/** The JSON key of the choice `prefix`[x] present in `obj`, or NULL. */
const char *vl_vchoice_key(const json_t *obj, const char *prefix);

#endif
