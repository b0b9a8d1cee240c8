/*
 * vitalog — ingest/measures.c: what a reading can be. One row per kind of
 * reading: its LOINC code, the category, the unit it is stored in and the
 * range of values a living person can have (plausibility).
 *
 * Sources (../shared/data/README.md): the R4 vital-signs profiles (codes,
 * units), the HL7 CGM IG (sensor readings 99504-3 mg/dL and 105272-9
 * mmol/L, category laboratory), the HL7 Physical Activity IG (steps per day
 * 41950-7 /d, calories 55424-6 kcal), HealthKitOnFHIR's mapping (steps in
 * unspecified time 55423-8, capillary glucose 41653-7, SDNN 80404-7,
 * resting heart rate 40443-4).
 *
 * The storage unit is the canonical unit of the dimension (the one the
 * search index uses, src/fhir/ucum.c) except for counts per day and for
 * glucose, where the profile fixes the unit and molar and mass
 * concentrations are different LOINC codes (no molar mass is assumed).
 *
 * The ranges are deliberately wide: they refuse what no device reading of
 * a living person can be (a heart rate of 900, a weight of 2 t, a
 * temperature of 60 Cel), never an alarming but real value. They are
 * listed in docs/ingest.md "Plausibility" (a test compares).
 */
#include <string.h>

#include "vitalog/ingest.h"

#define VS "http://hl7.org/fhir/StructureDefinition/"
#define CGM "http://hl7.org/uv/cgm/StructureDefinition/"

/* one value: key, LOINC, display, category, unit, plausible [lo, hi], profile */
#define M(k, c, d, cat, u, lo_, hi_, p)                                                            \
    {                                                                                              \
        .key = (k), .loinc = (c), .display = (d), .category = (cat), .unit = (u), .lo = (lo_),     \
        .hi = (hi_), .profile = (p)                                                                \
    }

const vl_ingest_measure_t vl_ingest_measures[] = {
    M("heart-rate", "8867-4", "Heart rate", VL_CAT_VITAL_SIGNS, "/min", 20, 300, VS "heartrate"),
    M("resting-heart-rate", "40443-4", "Heart rate --resting", VL_CAT_VITAL_SIGNS, "/min", 20, 250,
      NULL),
    M("respiratory-rate", "9279-1", "Respiratory rate", VL_CAT_VITAL_SIGNS, "/min", 1, 100,
      VS "resprate"),
    {.key = "oxygen-saturation",
     .loinc = "2708-6",
     .display = "Oxygen saturation in Arterial blood",
     .category = VL_CAT_VITAL_SIGNS,
     .unit = "%",
     .lo = 40,
     .hi = 100,
     .profile = VS "oxygensat",
     .also_loinc = "59408-5",
     .also_display = "Oxygen saturation in Arterial blood by Pulse oximetry"},
    M("body-temperature", "8310-5", "Body temperature", VL_CAT_VITAL_SIGNS, "Cel", 25, 45,
      VS "bodytemp"),
    M("body-weight", "29463-7", "Body weight", VL_CAT_VITAL_SIGNS, "kg", 0.2, 650, VS "bodyweight"),
    M("body-height", "8302-2", "Body height", VL_CAT_VITAL_SIGNS, "cm", 20, 280, VS "bodyheight"),
    M("body-mass-index", "39156-5", "Body mass index (BMI) [Ratio]", VL_CAT_VITAL_SIGNS, "kg/m2", 5,
      150, VS "bmi"),
    {.key = "blood-pressure",
     .loinc = "85354-9",
     .display = "Blood pressure panel with all children optional",
     .category = VL_CAT_VITAL_SIGNS,
     .unit = "",
     .profile = VS "bp",
     .components = {{"8480-6", "Systolic blood pressure", "mm[Hg]", 30, 300},
                    {"8462-4", "Diastolic blood pressure", "mm[Hg]", 10, 250}}},
    M("blood-glucose", "41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer",
      VL_CAT_LABORATORY, "mg/dL", 10, 1500, NULL),
    M("blood-glucose-molar", "14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer",
      VL_CAT_LABORATORY, "mmol/L", 0.5, 85, NULL),
    M("cgm-glucose", "99504-3", "Glucose [Mass/volume] in Interstitial fluid", VL_CAT_LABORATORY,
      "mg/dL", 10, 1000, CGM "cgm-sensor-reading-mass-per-volume"),
    M("cgm-glucose-molar", "105272-9", "Glucose [Moles/volume] in Interstitial fluid",
      VL_CAT_LABORATORY, "mmol/L", 0.5, 55, CGM "cgm-sensor-reading-moles-per-volume"),
    M("step-count", "55423-8", "Number of steps in unspecified time Pedometer", VL_CAT_ACTIVITY,
      "{steps}", 0, 250000, NULL),
    M("steps-day", "41950-7", "Number of steps in 24 hour Measured", VL_CAT_ACTIVITY, "/d", 0,
      250000, NULL),
    M("calories-burned", "55424-6", "Calories burned in unspecified time Pedometer",
      VL_CAT_ACTIVITY, "kcal", 0, 25000, NULL),
    M("heart-rate-variability", "80404-7",
      "R-R interval.standard deviation (Heart rate variability)", VL_CAT_VITAL_SIGNS, "ms", 1, 3000,
      NULL),
    /* a single R-R interval (8637-1 "R-R interval by EKG"; also what
       openmhealth-to-FHIR mappers use for the OMH rr-interval schema) */
    M("rr-interval", "8637-1", "R-R interval by EKG", VL_CAT_VITAL_SIGNS, "ms", 200, 3000, NULL),
    M("sleep-duration", "93832-4", "Sleep duration", VL_CAT_ACTIVITY, "min", 0, 2880, NULL),
    {.key = NULL},
};

#undef M

const vl_ingest_measure_t *vl_ingest_measure(const char *key)
{
    if (!key)
        return NULL;
    for (const vl_ingest_measure_t *m = vl_ingest_measures; m->key; m++)
        if (!strcmp(m->key, key))
            return m;
    return NULL;
}
