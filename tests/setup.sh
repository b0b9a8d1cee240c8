#!/usr/bin/env bash
# Test set-up that needs more than the build: currently nothing beyond the
# files in tests/data (committed with their sources). Kept as the one place
# CI and `make test` prepare fixtures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=$(ls "$here"/data/hl7-r4-examples/Observation-*.json 2>/dev/null | wc -l)
if [ "$n" -lt 64 ]; then
    echo "tests/setup.sh: expected 64 HL7 R4 Observation examples in tests/data/hl7-r4-examples, found $n" >&2
    exit 1
fi
