/*
 * Private to the ingest module: the per-format mapping tables that
 * vl_ingest_mappings() lists (each defined in its format's file).
 */
#ifndef VL_INGEST_INTERNAL_H
#define VL_INGEST_INTERNAL_H

#include "vitalog/ingest.h"

extern const vl_ingest_mapping_t vl_ingest_omh_map[];
extern const vl_ingest_mapping_t vl_ingest_healthkit_map[];
extern const vl_ingest_mapping_t vl_ingest_healthconnect_map[];
extern const vl_ingest_mapping_t vl_ingest_fitbit_map[];
extern const vl_ingest_mapping_t vl_ingest_withings_map[];
extern const vl_ingest_mapping_t vl_ingest_googlefit_map[];
extern const vl_ingest_mapping_t vl_ingest_dexcom_map[];

/** The row of `map` whose source is `source` (and, when `source_unit` is
 *  not NULL, whose source_unit is it), or NULL. */
const vl_ingest_mapping_t *vl_ingest_map_find(const vl_ingest_mapping_t *map, const char *source,
                                              const char *source_unit);

#endif
