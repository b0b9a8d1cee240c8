#!/usr/bin/env bash
# Wearable ingest at scale (`make bench-ingest`; see bench/README.md).
#
#   bash bench/ingest.sh                          # 1,000,000 readings, a 1 GB export.xml
#   INGEST_READINGS=100000 INGEST_EXPORT_BYTES=100000000 bash bench/ingest.sh
#
# 1. builds vitalog and bench_gen_ingest (cmake, Release, in INGEST_BUILD_DIR);
# 2. generates INGEST_READINGS Open mHealth data points as NDJSON (heart-rate
#    instants and step-count minutes, bench/gen_ingest.c) and an Apple Health
#    export.xml of INGEST_EXPORT_BYTES bytes;
# 3. starts `vitalog serve` on a fresh data directory, creates the patient and
#    POSTs the NDJSON in ONE request to /fhir/Observation/$ingest?format=omh
#    (curl, streamed from the file; durable and anchored like any write),
#    then the same file again (every reading "unchanged");
# 4. stops the server and imports the export.xml with
#    `vitalog import healthkit --data DIR` into a second fresh directory;
# 5. checks the counts (readings created, the ledger verifies) and prints a
#    markdown table (readings/s, peak RSS of the server and of the import)
#    that it also writes to INGEST_RESULTS.
#
# Environment (all optional): INGEST_READINGS (1000000), INGEST_EXPORT_BYTES
# (1000000000), INGEST_BUILD_DIR (build-scale), INGEST_SKIP_BUILD (1: use the
# binaries there), INGEST_RESULTS (bench/results/ingest-latest.md),
# INGEST_KEEP (1: keep the scratch directory), INGEST_PROFILE (1: perf record
# the server during the first POST; perf report in the scratch directory).
set -euo pipefail
cd "$(dirname "$0")/.."

READINGS=${INGEST_READINGS:-1000000}
EXPORT_BYTES=${INGEST_EXPORT_BYTES:-1000000000}
BUILD=${INGEST_BUILD_DIR:-build-scale}
RESULTS=${INGEST_RESULTS:-bench/results/ingest-latest.md}
SCRATCH=$(mktemp -d /tmp/vitalog-bench-ingest.XXXXXX)

log() { printf '[bench-ingest] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && stop_server "$SERVER_PID"
  if [[ ${INGEST_KEEP:-0} == 1 ]]; then log "kept $SCRATCH"; else rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT

if [[ ${INGEST_SKIP_BUILD:-0} != 1 ]]; then
  log "building (Release) in $BUILD"
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target vitalog bench_gen_ingest >/dev/null
fi
BIN=$BUILD/vitalog
GEN=$BUILD/bench_gen_ingest

log "generating $READINGS Open mHealth readings and a $EXPORT_BYTES-byte export.xml"
"$GEN" omh "$READINGS" >"$SCRATCH/readings.ndjson"
"$GEN" export "$EXPORT_BYTES" >"$SCRATCH/export.xml"
ndjson_bytes=$(stat -c %s "$SCRATCH/readings.ndjson")
xml_bytes=$(stat -c %s "$SCRATCH/export.xml")
xml_records=$(grep -c '^ <Record ' "$SCRATCH/export.xml" || true)
xml_correlations=$(grep -c '^ <Correlation ' "$SCRATCH/export.xml" || true)

now_ns() { date +%s%N; }

# --- 1. NDJSON over HTTP -------------------------------------------------
mkdir -p "$SCRATCH/data"
"$BIN" serve --data "$SCRATCH/data" --listen 127.0.0.1:0 --port-file "$SCRATCH/port" \
  >"$SCRATCH/vitalog.log" 2>&1 &
SERVER_PID=$!
port=$(wait_for_port "$SCRATCH/port" "$SERVER_PID" vitalog)
base=http://127.0.0.1:$port
token=$(cat "$SCRATCH/data/admin.token")
curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/fhir+json' "$base/fhir/Patient/bench" \
  -d '{"resourceType":"Patient","id":"bench"}'

post() {  # post OUT: the NDJSON in one request; prints seconds
  local t0 t1
  t0=$(now_ns)
  curl -fsS -o "$1" -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/x-ndjson' -H 'Transfer-Encoding: chunked' \
    --data-binary "@$SCRATCH/readings.ndjson" \
    "$base/fhir/Observation/\$ingest?format=omh&patient=Patient/bench"
  t1=$(now_ns)
  echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}

total() {  # total FILE NAME: the Bundle's totals
  python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
t={e["url"]:e["valueUnsignedInt"] for e in d["meta"]["extension"][0]["extension"]}
print(t[sys.argv[2]])' "$1" "$2"
}

if [[ ${INGEST_PROFILE:-0} == 1 ]]; then
  perf record -g -p "$SERVER_PID" -o "$SCRATCH/perf.data" >/dev/null 2>&1 &
  PERF_PID=$!
fi
log "POST $READINGS readings (NDJSON, $ndjson_bytes bytes) to \$ingest"
first_s=$(post "$SCRATCH/first.json")
if [[ ${INGEST_PROFILE:-0} == 1 ]]; then
  kill -INT "$PERF_PID"; wait "$PERF_PID" || true
  perf report -i "$SCRATCH/perf.data" --no-children --percent-limit 1.5 --stdio \
    >"$SCRATCH/perf.txt" 2>/dev/null || true
  log "profile: $SCRATCH/perf.txt"
fi
created=$(total "$SCRATCH/first.json" created)
[[ $created == "$READINGS" ]] || die "created $created of $READINGS readings"
rss_first=$(peak_rss_kib "$SERVER_PID")
log "again (every reading unchanged)"
again_s=$(post "$SCRATCH/again.json")
unchanged=$(total "$SCRATCH/again.json" unchanged)
[[ $unchanged == "$READINGS" ]] || die "unchanged $unchanged of $READINGS readings"
rss_server=$(peak_rss_kib "$SERVER_PID")
stop_server "$SERVER_PID"
SERVER_PID=
"$BIN" verify --data "$SCRATCH/data" >/dev/null || die "the ledger does not verify"
db_bytes=$(du -sb "$SCRATCH/data" | cut -f1)

# --- 2. export.xml --------------------------------------------------------
mkdir -p "$SCRATCH/import"
"$BIN" serve --data "$SCRATCH/import" --listen 127.0.0.1:0 --port-file "$SCRATCH/port2" \
  >"$SCRATCH/vitalog2.log" 2>&1 &
SERVER_PID=$!
port=$(wait_for_port "$SCRATCH/port2" "$SERVER_PID" vitalog2)
curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $(cat "$SCRATCH/import/admin.token")" \
  -H 'Content-Type: application/fhir+json' "http://127.0.0.1:$port/fhir/Patient/bench" \
  -d '{"resourceType":"Patient","id":"bench"}'
stop_server "$SERVER_PID"
SERVER_PID=
log "vitalog import healthkit --data: $xml_bytes bytes, $xml_records records, $xml_correlations correlations"
t0=$(now_ns)
/usr/bin/time -f '%M' -o "$SCRATCH/import.rss" \
  "$BIN" import healthkit --data "$SCRATCH/import" --patient Patient/bench \
  "$SCRATCH/export.xml" >"$SCRATCH/import.out" 2>"$SCRATCH/import.err" ||
  { cat "$SCRATCH/import.err" >&2; die "the import failed"; }
t1=$(now_ns)
import_s=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
rss_import=$(tail -n 1 "$SCRATCH/import.rss")
import_line=$(cat "$SCRATCH/import.out")
"$BIN" verify --data "$SCRATCH/import" >/dev/null || die "the imported ledger does not verify"

rate() { echo "scale=0; $1 / $2" | bc; }
mib() { echo "scale=1; $1 / 1024" | bc; }
{
  echo "| run | input | seconds | readings/s | peak RSS |"
  echo "|---|---|---:|---:|---:|"
  echo "| POST \$ingest, NDJSON (new) | $READINGS OMH readings, $ndjson_bytes bytes | $first_s | $(rate "$READINGS" "$first_s") | $(mib "$rss_first") MiB (server) |"
  echo "| POST \$ingest, same again (unchanged) | $READINGS readings | $again_s | $(rate "$READINGS" "$again_s") | $(mib "$rss_server") MiB (server) |"
  echo "| import healthkit --data | export.xml $xml_bytes bytes, $xml_records records | $import_s | $(rate "$xml_records" "$import_s") records/s | $(mib "$rss_import") MiB (import) |"
  echo
  echo "import: $import_line"
  echo "database after the NDJSON run: $db_bytes bytes ($(rate "$db_bytes" "$READINGS") bytes/reading)"
  echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$RESULTS"
