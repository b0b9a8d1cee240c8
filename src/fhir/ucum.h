/*
 * vitalog — fhir: UCUM units of quantity search (private to the module).
 *
 * A quantity is indexed and searched in the canonical unit of its
 * dimension, so that a stored 37 Cel is found by a search for 98.6 [degF]
 * and 70 kg by 154 [lb_av]. ucum.c holds the table (and, in its DESIGN
 * NOTES, the list of every unit, its canonical unit and its factor).
 *
 * All of it is static data: nothing here allocates, and every pointer
 * returned points into the table and lives as long as the program.
 */
#ifndef VL_FHIR_UCUM_H
#define VL_FHIR_UCUM_H

#include <stddef.h>

/* Canonical form of a UCUM quantity for indexing and search. */
typedef struct vl_ucum_unit {
    const char *code;      /* the UCUM code as written, e.g. "[lb_av]" */
    const char *canonical; /* the canonical unit code of its dimension, e.g. "kg" */
    double factor;         /* value_in_canonical = value * factor + offset */
    double offset;
} vl_ucum_unit_t;

/**
 * The unit with this exact UCUM code (case-sensitive, as UCUM is: "MG/DL"
 * is not "mg/dL"), or NULL if it is not in the table (or code is NULL).
 *
 * UCUM annotations ("{steps}", "{beats}") are unity and carry no meaning:
 * a code that is not in the table as written is looked up again with its
 * annotations removed, so "{steps}/d" gives the entry of "/d" (whose code
 * member is "/d") and "{steps}" alone that of "1". An annotation must be
 * closed, must not nest or follow another annotation, and holds ASCII
 * 33-126 only (no space), as in UCUM; otherwise NULL.
 */
const vl_ucum_unit_t *vl_ucum_find(const char *code);

/**
 * Converts value in unit `code` to its canonical unit; returns 0 and sets
 * *canonical (a static string; canonical may be NULL) and *out, or -1 if
 * the unit is unknown (nothing is written then).
 */
int vl_ucum_to_canonical(const char *code, double value, const char **canonical, double *out);

/** Converts a canonical value back to unit `code` (the inverse), 0 or -1. */
int vl_ucum_from_canonical(const char *code, double canonical_value, double *out);

/**
 * The whole table, sorted by code (strcmp order), for tools and tests
 * (tests/unit/fhir/ucum_dump.c): sets *n to its number of entries.
 */
const vl_ucum_unit_t *vl_ucum_table(size_t *n);

#endif
