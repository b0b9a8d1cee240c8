/*
 * vitalog — fhir/fhirpath.h: the document changes of PATCH (private to the
 * fhir module): RFC 6902 JSON Patch (patch.c), FHIRPath Patch and the
 * FHIRPath subset it needs (fhirpath.c).
 *
 * Both appliers change a parsed JSON tree in place (numbers are tagged
 * strings, util.h) and know nothing of the store: fhir/patch.c reads the
 * current version, applies, validates and writes. On failure the tree may
 * be partly changed, so they are run on a copy that is dropped then.
 *
 * Errors: a patch document that is malformed is 400 (code invalid or
 * structure); one that is well formed but cannot be applied to this
 * resource is 422 (code processing; not-supported for a FHIRPath outside
 * the subset; too-costly beyond the limits below). Each issue names the
 * operation (its index in the patch, from 0) and its path, in diagnostics
 * and in issue.expression.
 */
#ifndef VL_FHIR_FHIRPATH_H
#define VL_FHIR_FHIRPATH_H

#include <stddef.h>

#include "vitalog/util.h"

/** The most operations one patch may hold (400 too-costly beyond). */
#define VL_PATCH_MAX_OPS 1000
/** The longest element name a FHIRPath may use (422 not-supported beyond). */
#define VL_FP_NAME_MAX 128

typedef struct vl_patch_limits {
    size_t max_depth; /* nesting of the patched document as vl_json_parse counts it
                         (the resource object is 1); 0 means 64 */
} vl_patch_limits_t;

/* ------------------------------------------------------------------------
 * JSON Patch (RFC 6902) with JSON Pointers (RFC 6901): patch.c
 * ---------------------------------------------------------------------- */

/**
 * Applies the JSON Patch `patch` (an array of operation objects, borrowed)
 * to *doc, in order: add, remove, replace, move, copy, test. An operation
 * on the whole document (path "") replaces *doc (the old reference is
 * released, the new one is owned by the caller as before). `lim` may be
 * NULL (defaults). Bounds: VL_PATCH_MAX_OPS operations; no value placed
 * deeper than lim->max_depth; copies may add at most as many nodes as the
 * document and the patch held together (a copy that doubles the document
 * each time cannot run away). 0, or -1 with the error in `err` (400: the
 * document or an operation is malformed: not an array, an unknown op, a
 * member missing, a pointer that is not RFC 6901 syntax; 422: an operation
 * that cannot be applied: a path that does not exist, an array index out
 * of range, a failed test, a move into its own child).
 */
int vl_patch_json_apply(json_t **doc, const json_t *patch, const vl_patch_limits_t *lim,
                        vl_error_t *err) VL_WARN_UNUSED;

/** RFC 6902 section 4.6 equality: numbers by value (1.0 equals 1, exactly,
 *  whatever their digits), strings by their code points, arrays item by
 *  item, objects by their members whatever their order. */
int vl_patch_json_equal(const json_t *a, const json_t *b);

/* ------------------------------------------------------------------------
 * FHIRPath Patch (R4 fhirpatch.html): fhirpath.c
 * ---------------------------------------------------------------------- */

/**
 * Applies the FHIRPath Patch `params` (a Parameters resource, borrowed)
 * to the resource `res`, operation by operation:
 *
 *   add      path: exactly one element; name: the element to add to it
 *            (a choice by its name, "value", typed by the value given);
 *            a repeating element gets the value appended, a single one
 *            must not exist yet
 *   insert   path: a whole list (it may be empty or absent); the value is
 *            inserted at index (0 .. its length)
 *   delete   path: at most one element (none: nothing happens)
 *   replace  path: exactly one element, replaced by the value
 *   move     path: a whole list; its item at source goes to destination
 *
 * A value is a value[x] part, or nested parts naming the elements of a
 * complex value. The element model (names, cardinalities, types and
 * choices) is the validator's (validate_types.c); where it knows the type,
 * a value of another type and an element the type does not have are 422.
 * A primitive keeps its "_name" companion (id, extensions) in step: a
 * delete or replace of the primitive drops it, inserts and moves keep the
 * arrays aligned, and ".extension" of a primitive navigates into it.
 * 0, or -1 with the error in `err` (400 a malformed Parameters; 422 an
 * operation that cannot be applied, or a path outside the subset).
 */
int vl_patch_fhirpath_apply(json_t *res, const json_t *params, const vl_patch_limits_t *lim,
                            vl_error_t *err) VL_WARN_UNUSED;

/* ------------------------------------------------------------------------
 * The FHIRPath subset (fhirpath.c)
 *
 *   path    := first ( '.' step | '[' integer ']' )*
 *   first   := the resource type | an element name of the resource
 *   step    := name | 'where(' cond ')' | 'first()' | 'last()'
 *            | 'ofType(' type ')' | 'extension(' string ')'
 *   cond    := cmp ( 'and' cmp )*
 *   cmp     := ( '$this' | name ) ( '.' name )* '=' literal
 *   literal := 'string' | number | true | false
 *
 * Names are identifiers or `delimited`; a choice element is named by its
 * FHIRPath name (Observation.value) or by its JSON name (valueQuantity).
 * $this is the item where() looks at (Patient.name.given.where($this =
 * 'Jim')). `a = literal` holds when `a` is exactly one primitive equal to the
 * literal (FHIRPath equality of a one-item collection): strings by text,
 * numbers by value, booleans. Anything else is 422 not-supported.
 * ---------------------------------------------------------------------- */

/** One element a path selected: where it lives in the document. */
typedef struct vl_fp_node {
    json_t *value;            /* the element's JSON value (borrowed); for the
                                 resource itself, the resource */
    json_t *parent;           /* the object holding it; NULL for the resource */
    char key[VL_FP_NAME_MAX]; /* its member name in parent ("valueQuantity") */
    const void *elem;         /* its row in the validator's tables (vdef_elem_t of
                                 validate_internal.h: a choice when it has choices),
                                 NULL when the model does not know it */
    long index;               /* its position in the member's array, -1 if single */
    int type;                 /* the validator's type of it (vt_t), 0: unknown */
    size_t depth;             /* nesting at which `value` sits (the resource: 1) */
} vl_fp_node_t;

/** The elements a path selected, in document order. When the last step
 *  named a member of exactly one element, `owner` is that element and
 *  `member` the name, so that a list can be found when it is empty or
 *  absent (insert). */
typedef struct vl_fp_nodes {
    vl_fp_node_t *items;
    size_t n, cap;
    int has_owner;
    vl_fp_node_t owner;
    char member[VL_FP_NAME_MAX];
} vl_fp_nodes_t;

/** Evaluates `expr` on the resource `res` (the nodes borrow from it: valid
 *  until it changes). 0 with the elements in *out (free with
 *  vl_fp_nodes_free, also on failure), or -1 with a 422 in `err`. */
int vl_fhirpath_select(json_t *res, const char *expr, vl_fp_nodes_t *out,
                       vl_error_t *err) VL_WARN_UNUSED;
void vl_fp_nodes_free(vl_fp_nodes_t *nodes);

/** Nesting of `v` as vl_json_parse counts it (a scalar 0, {} 1), counted
 *  no further than `stop` + 1 (a bounded walk). */
size_t vl_patch_depth(const json_t *v, size_t stop);

#endif
