#!/usr/bin/env bash
# ctest fhir_summary_elements_generated: src/fhir/summary_elements.c must be
# exactly what scripts/gen-summary-elements.py generates from the FHIR R4
# package hl7.fhir.r4.examples@4.0.1. tests/setup.sh fetches the package
# with npm into tests/.cache; if it cannot, this test fails (it never skips).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
bash "$root/tests/setup.sh"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$root/scripts/gen-summary-elements.py" --check \
    "$root/tests/.cache/hl7.fhir.r4.examples-4.0.1.tgz"
