#!/usr/bin/env bash
# bench/clinical.sh — what clinics do with remote-monitoring data, on the
# storage benchmark's database (issue 10; docs/performance.md "Clinical
# operations"):
#
#   CLIN_DATA=bench/.scale-data/10000000 bash bench/clinical.sh
#
# 1. builds vitalog (Release, in CLIN_BUILD_DIR);
# 2. serves CLIN_DATA in place (a database bench/scale.sh generated with
#    bench_gen_scale; its first start under a newer schema migrates it,
#    which is timed) and makes CLIN_TOKEN_PATIENTS patient tokens;
# 3. runs wrk (2 threads, 16 connections, CLIN_SECONDS each) as the patient
#    each request names (a patient reading her own compartment discloses
#    nothing: no AuditEvent is written, so the figures are the reads'):
#      lastn     GET /fhir/Observation/$lastn?patient=X&category=vital-signs
#      stats     GET /fhir/Observation/$stats?subject=X&code=8867-4&statistic=average,
#                    minimum,maximum,count&period=<a calendar month>
#      page      GET /fhir/Observation?patient=X&code=8867-4&_count=100
#      include   the same page with _include=Observation:subject
#    then lastn and stats again as the admin (every answer audited);
# 4. a Bulk Data export of every Observation as the admin ($export,
#    _type=Observation): kick-off, polling, the manifest, then the NDJSON
#    file streamed to `wc -l` (resources/s over the download, the server's
#    RSS before and after it);
# 5. prints a markdown table and writes it to CLIN_RESULTS.
#
# Environment:
#   CLIN_DATA            the database directory (default bench/.scale-data/10000000)
#   CLIN_BUILD_DIR       cmake build directory (default build-scale)
#   CLIN_SECONDS         duration of each wrk run (default 10)
#   CLIN_TOKEN_PATIENTS  patients with a token for the runs as the patient (default 64)
#   CLIN_SKIP_BUILD      1: use the binaries in CLIN_BUILD_DIR
#   CLIN_SKIP_EXPORT     1: no export run
#   CLIN_RESULTS         the table (default bench/results/clinical-latest.md)
#   CLIN_KEEP            1: keep the scratch directory (logs, raw wrk output)
set -euo pipefail
cd "$(dirname "$0")/.."

CLIN_DATA=${CLIN_DATA:-bench/.scale-data/10000000}
CLIN_BUILD_DIR=${CLIN_BUILD_DIR:-build-scale}
CLIN_SECONDS=${CLIN_SECONDS:-10}
CLIN_TOKEN_PATIENTS=${CLIN_TOKEN_PATIENTS:-64}
CLIN_RESULTS=${CLIN_RESULTS:-bench/results/clinical-latest.md}

log() { printf 'bench-clinical: %s\n' "$*" >&2; }
die() { log "error: $*"; CLIN_KEEP=1; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

for tool in wrk curl cmake awk python3; do
  command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
done
[[ -s $CLIN_DATA/scale-manifest.tsv ]] ||
  die "$CLIN_DATA holds no generated database (make one: SCALE_OBSERVATIONS=10000000 SCALE_COPY=0 bash bench/scale.sh)"
[[ $CLIN_TOKEN_PATIENTS =~ ^[1-9][0-9]*$ ]] || die "CLIN_TOKEN_PATIENTS must be a positive number"

if [[ ${CLIN_SKIP_BUILD:-0} != 1 ]]; then
  log "building vitalog in $CLIN_BUILD_DIR (Release)"
  cmake -S . -B "$CLIN_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$CLIN_BUILD_DIR" -j2 --target vitalog >/dev/null
fi
VITALOG=$CLIN_BUILD_DIR/vitalog
[[ -x $VITALOG ]] || die "no $VITALOG"

mkdir -p "$CLIN_BUILD_DIR/bench"
SCRATCH=$(cd "$(mktemp -d "$CLIN_BUILD_DIR/bench/clinical.XXXXXX")" && pwd)
SERVER_PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
  if [[ ${CLIN_KEEP:-0} == 1 ]]; then log "kept $SCRATCH"; else rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SCALE_MANIFEST=$CLIN_DATA/scale-manifest.tsv
WRK_COMMANDS=()
WRK_THREADS=2
WRK_CONNECTIONS=16
WRK_SECONDS=$CLIN_SECONDS
WRK_TIMEOUT=30s

# ---------------------------------------------------------------- the server
log "starting $VITALOG serve --data $CLIN_DATA"
t0=$(date +%s.%N)
"$VITALOG" serve --data "$CLIN_DATA" --listen 127.0.0.1:0 --port-file "$SCRATCH/vitalog.port" \
  >"$SCRATCH/vitalog.log" 2>&1 &
VL_PID=$!
SERVER_PIDS+=("$VL_PID")
VL_PORT=$(wait_for_port "$SCRATCH/vitalog.port" "$VL_PID" vitalog 3600)
START_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
BASE=http://127.0.0.1:$VL_PORT
log "listening on $VL_PORT after $START_S s (migrations included)"
VITALOG_TOKEN=$(tr -d '[:space:]' <"$CLIN_DATA/admin.token")
export VITALOG_TOKEN
CURL=(curl -sS --max-time 600 -H "Authorization: Bearer $VITALOG_TOKEN")

export SCALE_TOKENS=$SCRATCH/scale-tokens.tsv
: >"$SCALE_TOKENS"
chmod 600 "$SCALE_TOKENS"
while read -r id; do
  secret=$("$VITALOG" token create --data "$CLIN_DATA" --role patient --subject "Patient/$id" \
             --expires 1d --label bench-clinical 2>>"$SCRATCH/tokens.log") ||
    die "vitalog token create failed for Patient/$id"
  printf '%s\t%s\n' "$id" "$secret" >>"$SCALE_TOKENS"
done < <(awk -F'\t' -v k="$CLIN_TOKEN_PATIENTS" '!/^#/ && NF >= 5 && n < k { print $1; n++ }' "$SCALE_MANIFEST")
unset secret

# one sample of each request, checked, before the runs
P1=$(awk -F'\t' '!/^#/ && NF >= 5 { print $1; exit }' "$SCALE_MANIFEST")
sample() {  # sample NAME PATH: fails unless 200
  local code
  code=$("${CURL[@]}" -o "$SCRATCH/$1.json" -w '%{http_code}' "$BASE$2")
  [[ $code == 200 ]] || { head -c 400 "$SCRATCH/$1.json" >&2; die "sample $1: HTTP $code"; }
}
sample lastn "/fhir/Observation/\$lastn?patient=Patient/$P1&category=http://terminology.hl7.org/CodeSystem/observation-category%7Cvital-signs"
sample stats "/fhir/Observation/\$stats?subject=Patient/$P1&code=8867-4&system=http://loinc.org&statistic=average,minimum,maximum,count&period=2000-01-01/2100-01-01"
sample include "/fhir/Observation?patient=Patient/$P1&code=http://loinc.org%7C8867-4&_count=100&_include=Observation:subject"
SAMPLE_LINE=$(python3 - "$SCRATCH" <<'PY'
import json, sys
d = sys.argv[1]
lastn = json.load(open(d + "/lastn.json"))
stats = json.load(open(d + "/stats.json"))
inc = json.load(open(d + "/include.json"))
modes = [e["search"]["mode"] for e in inc.get("entry", [])]
n_stats = sum(1 for p in stats.get("parameter", []) if p.get("name") in ("statistics", "statistic"))
print("samples: $lastn %d entries (one per vital sign), $stats %d result(s), include page %d matches + %d included"
      % (len(lastn.get("entry", [])), n_stats, modes.count("match"), modes.count("include")))
PY
)
log "$SAMPLE_LINE"

# ---------------------------------------------------------------- wrk runs
export SCALE_AS=patient
run_wrk lastn bench/clinical_lastn.lua "$BASE/"
run_wrk stats bench/clinical_stats.lua "$BASE/"
CLIN_INCLUDE=0 run_wrk page bench/clinical_page.lua "$BASE/"
CLIN_INCLUDE=1 run_wrk include bench/clinical_page.lua "$BASE/"
unset SCALE_AS
run_wrk lastn_admin bench/clinical_lastn.lua "$BASE/"
run_wrk stats_admin bench/clinical_stats.lua "$BASE/"
kill -0 "$VL_PID" 2>/dev/null || die "vitalog exited during the runs"

# ---------------------------------------------------------------- export
EXPORT_LINE="not run (CLIN_SKIP_EXPORT=1)"
if [[ ${CLIN_SKIP_EXPORT:-0} != 1 ]]; then
  RSS_BEFORE=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VL_PID/status")
  t0=$(date +%s.%N)
  loc=$("${CURL[@]}" -o /dev/null -D - -H "Prefer: respond-async" -H "Accept: application/fhir+json" \
          "$BASE/fhir/\$export?_type=Observation" | tr -d '\r' | awk -F': ' 'tolower($1) == "content-location" { print $2 }')
  [[ -n $loc ]] || die "the export kick-off gave no Content-Location"
  while :; do
    code=$("${CURL[@]}" -o "$SCRATCH/manifest.json" -w '%{http_code}' "$loc")
    [[ $code == 200 ]] && break
    [[ $code == 202 ]] || die "export status: HTTP $code"
    sleep 0.5
  done
  t1=$(date +%s.%N)
  mapfile -t FILES < <(python3 -c 'import json,sys; [print(o["url"], o.get("count", "")) for o in json.load(open(sys.argv[1]))["output"]]' "$SCRATCH/manifest.json")
  ((${#FILES[@]} == 1)) || die "the manifest lists ${#FILES[@]} files, not one"
  read -r url count <<<"${FILES[0]}"
  lines=$("${CURL[@]}" "$url" | wc -l)
  t2=$(date +%s.%N)
  RSS_AFTER=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VL_PID/status")
  [[ $lines == "$count" ]] || die "the file held $lines lines, the manifest says $count"
  EXPORT_LINE=$(awk -v n="$lines" -v a="$t0" -v b="$t1" -v c="$t2" -v r0="$RSS_BEFORE" -v r1="$RSS_AFTER" 'BEGIN {
    printf "%d Observations; kick-off to manifest %.1f s; download (AuditEvents for every patient first, then the stream) %.1f s: **%.0f resources/s**; server RSS %.1f MiB before, %.1f MiB after", n, b - a, c - b, n / (c - b), r0 / 1024, r1 / 1024 }')
  log "export: $EXPORT_LINE"
fi
PEAK=$(peak_rss_kib "$VL_PID")
stop_server "$VL_PID"
SERVER_PIDS=()

# ---------------------------------------------------------------- the table
row() {  # row NAME LABEL
  local n=$1 rps p50 p99 non err
  rps=RPS_$n p50=P50_$n p99=P99_$n non=NON2XX_$n err=ERR_$n
  printf '| %s | %s/s | %s ms | **%s ms** | %s | %s |\n' "$2" "${!rps}" "${!p50}" "${!p99}" "${!non}" "${!err}"
}
{
  echo "# bench/clinical.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPUs $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)."
  echo "Database: $CLIN_DATA ($(awk -F'\t' '!/^#/ { n++ } END { print n }' "$SCALE_MANIFEST") patients); start-up $START_S s. $SAMPLE_LINE."
  echo
  echo "| request (16 connections) | req/s | p50 | p99 | non-2xx | socket errors |"
  echo "|---|---:|---:|---:|---:|---:|"
  row lastn "\$lastn, one patient, all vital signs (as the patient)"
  row stats "\$stats average/min/max/count, one patient, heart rate, a month (as the patient)"
  row page "a page of 100 heart rates (as the patient)"
  row include "the same page with _include=Observation:subject (as the patient)"
  row lastn_admin "\$lastn as the admin (audited)"
  row stats_admin "\$stats as the admin (audited)"
  echo
  awk -v a="$P50_page" -v b="$P50_include" -v c="$RPS_page" -v d="$RPS_include" 'BEGIN {
    printf "_include on a page of 100: p50 %.2fx the page alone, throughput %.2fx.\n", b / a, c / d }'
  echo
  echo "Bulk export: $EXPORT_LINE. Peak RSS of the server over the whole run: $((PEAK / 1024)) MiB."
  echo
  echo "Commands:"
  echo
  for c in "${WRK_COMMANDS[@]}"; do echo "    $c"; done
} | tee "$CLIN_RESULTS"
