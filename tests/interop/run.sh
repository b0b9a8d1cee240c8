#!/usr/bin/env bash
# Installs the pinned npm client (package-lock.json) on first use and runs the
# interop tests against the given vitalog binary.
# usage: tests/interop/run.sh BUILD/vitalog
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export VITALOG_BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$here"
if [ ! -d node_modules/fhir-kit-client ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test
