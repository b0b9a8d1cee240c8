#!/usr/bin/env bash
# vitalog benchmarks (run by `make bench`; see bench/README.md).
#
#   bash bench/run.sh
#
# 1. builds vitalog (cmake, RelWithDebInfo) and bench/bare_server.c;
# 2. POST load (durable Observation creates, wrk -t2 -c16) against the bare
#    libmicrohttpd server, then the same load against vitalog;
# 3. checks that vitalog stored every create it acknowledged;
# 4. transaction Bundles of 100 Observations over 4 connections (wrk -c4),
#    checking that whole Bundles were stored;
# 5. single-reader (wrk -t1 -c1) and 16-connection GETs of one Observation;
# 6. prints a markdown table and writes it to bench/results/latest.md.
#
# Environment (all optional):
#   BUILD_DIR          cmake build directory (default: build)
#   BENCH_SECONDS      duration of each wrk run (default: 10)
#   BENCH_THREADS      wrk threads of the multi-connection runs (default: 2)
#   BENCH_CONNECTIONS  connections of the multi-connection runs (default: 16)
#   BENCH_SKIP_BUILD   1: use the existing binaries, do not run cmake
#   BENCH_RESULTS      where to write the results (default: bench/results/latest.md)
#   BENCH_KEEP         1: keep the scratch directory (database, logs, wrk output)
#   VITALOG_TOKEN      bearer token; default: the admin token vitalog writes at first start
#
# Exit status: 0 when everything ran and the durability check passed (or
# could not be made: then the table says so), 1 on a failure.

# run_wrk assigns RPS_<name>, OK_<name>, ... indirectly:
# shellcheck disable=SC2154
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD_DIR=${BUILD_DIR:-build}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-16}
BENCH_RESULTS=${BENCH_RESULTS:-bench/results/latest.md}
BENCH_PATIENTS=${BENCH_PATIENTS:-100}
export BENCH_PATIENTS

# The command as the user ran it, for the record.
INVOCATION="bash bench/run.sh"
[[ -n ${MAKELEVEL:-} ]] && INVOCATION="make bench"
SETTINGS="BUILD_DIR=$BUILD_DIR BENCH_SECONDS=$BENCH_SECONDS BENCH_THREADS=$BENCH_THREADS BENCH_CONNECTIONS=$BENCH_CONNECTIONS"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; BENCH_KEEP=1; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

for tool in wrk curl cc pkg-config cmake awk; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh installs it)"
done
if command -v jq >/dev/null; then JSON_TOOL=jq
elif command -v python3 >/dev/null; then JSON_TOOL=python3
else die "need jq or python3 to read JSON"; fi

# ---------------------------------------------------------------- build
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building vitalog in $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target vitalog >/dev/null
fi
VITALOG=$BUILD_DIR/vitalog
[[ -x $VITALOG ]] || die "$VITALOG was not built"

BARE=$BUILD_DIR/bench/bare_server
mkdir -p "$BUILD_DIR/bench"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 || ! -x $BARE ]]; then
  log "building $BARE"
  build_bare_server "$BARE"
fi

# ---------------------------------------------------------------- scratch space and cleanup
# The database lives on the same filesystem as the build (not a tmpfs), so
# that fsync costs what it costs on this machine.
SCRATCH=$(cd "$(mktemp -d "$BUILD_DIR/bench/run.XXXXXX")" && pwd)
SERVER_PIDS=()

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    log "scratch directory kept: $SCRATCH"
  else
    rm -rf "$SCRATCH"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


json_get() {  # json_get FIELD < json -> value of a top-level field (empty if none)
  if [[ $JSON_TOOL == jq ]]; then
    jq -r --arg f "$1" '.[$f] // empty' 2>/dev/null || true
  else
    python3 -c 'import json,sys
try:
    v = json.load(sys.stdin).get(sys.argv[1])
    print("" if v is None else v)
except Exception:
    pass' "$1" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- wrk runs
# run_wrk NAME THREADS CONNECTIONS SCRIPT URL: runs wrk, keeps its output in
# $SCRATCH/NAME.wrk and sets RPS_/P50_/P99_/REQ_/OK_/NON2XX_/ERR_ NAME variables.
WRK_COMMANDS=()
run_wrk() {
  local name=$1 threads=$2 conns=$3 script=$4 url=$5 out
  out=$SCRATCH/$name.wrk
  local cmd=(wrk "-t$threads" "-c$conns" "-d${BENCH_SECONDS}s" --latency -s "$script" "$url")
  WRK_COMMANDS+=("$name: ${cmd[*]}")
  log "$name: ${cmd[*]}"
  "${cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed ($name)"; }
  # Latencies are printed as 126.00us, 1.20ms, 2.00s or 1.00m; report ms.
  local parsed
  parsed=$(awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return -1
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /^bench-result / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
    }
    END {
      printf "%s %s %s %s %s %s %s\n", rps, p50, p99, r["requests"], r["ok"], r["non2xx"],
             r["connect_err"] + r["read_err"] + r["write_err"] + r["timeouts"]
    }' "$out")
  local rps p50 p99 req ok non2xx err
  read -r rps p50 p99 req ok non2xx err <<<"$parsed"
  [[ -n $rps && -n $req ]] || { cat "$out" >&2; die "could not parse the output of wrk ($name)"; }
  printf -v "RPS_$name" '%s' "$rps"
  printf -v "P50_$name" '%s' "$p50"
  printf -v "P99_$name" '%s' "$p99"
  printf -v "REQ_$name" '%s' "$req"
  printf -v "OK_$name" '%s' "$ok"
  printf -v "NON2XX_$name" '%s' "$non2xx"
  printf -v "ERR_$name" '%s' "$err"
  log "$name: $rps requests/s, p50 $p50 ms, p99 $p99 ms, $non2xx non-2xx, $err socket errors"
}

# ---------------------------------------------------------------- bare server
log "starting $BARE"
"$BARE" --listen 127.0.0.1:0 --port-file "$SCRATCH/bare.port" >"$SCRATCH/bare.log" 2>&1 &
BARE_PID=$!
SERVER_PIDS+=("$BARE_PID")
BARE_PORT=$(wait_for_port "$SCRATCH/bare.port" "$BARE_PID" bare)

run_wrk bare_post "$BENCH_THREADS" "$BENCH_CONNECTIONS" bench/post_observation.lua \
  "http://127.0.0.1:$BARE_PORT/fhir/Observation"
RSS_bare=$(peak_rss_kib "$BARE_PID")
stop_server "$BARE_PID"

# ---------------------------------------------------------------- vitalog
DATA=$SCRATCH/data
log "starting $VITALOG serve --data $DATA"
"$VITALOG" serve --data "$DATA" --listen 127.0.0.1:0 --port-file "$SCRATCH/vitalog.port" \
  >"$SCRATCH/vitalog.log" 2>&1 &
VL_PID=$!
SERVER_PIDS+=("$VL_PID")
VL_PORT=$(wait_for_port "$SCRATCH/vitalog.port" "$VL_PID" vitalog)
BASE=http://127.0.0.1:$VL_PORT

if [[ -z ${VITALOG_TOKEN:-} ]]; then
  for ((i = 0; i < 30; i++)); do [[ -s $DATA/admin.token ]] && break; sleep 0.1; done
  if [[ -s $DATA/admin.token ]]; then
    VITALOG_TOKEN=$(tr -d '[:space:]' <"$DATA/admin.token")
  else
    log "warning: no VITALOG_TOKEN and no $DATA/admin.token; sending no Authorization header"
    VITALOG_TOKEN=
  fi
fi
export VITALOG_TOKEN
CURL=(curl -sS --max-time 30 -H "Accept: application/fhir+json")
[[ -n $VITALOG_TOKEN ]] && CURL+=(-H "Authorization: Bearer $VITALOG_TOKEN")

count_observations() {  # prints the Bundle total of GET /fhir/Observation?_count=0, or nothing
  { "${CURL[@]}" "$BASE/fhir/Observation?_count=0" 2>/dev/null || true; } | json_get total
}

check_alive() {  # check_alive RUN: fails the benchmark when vitalog died during RUN
  kill -0 "$VL_PID" 2>/dev/null && return 0
  local st=0
  wait "$VL_PID" 2>/dev/null || st=$?
  BENCH_KEEP=1
  tail -n 5 "$SCRATCH/vitalog.log" >&2 || true
  if ((st > 128)); then
    die "vitalog died during $1 (exit status $st: signal $((st - 128))); log and database in $SCRATCH"
  fi
  die "vitalog exited during $1 (exit status $st); log and database in $SCRATCH"
}

# The subjects of the created Observations exist, as they would in a clinic.
log "creating $BENCH_PATIENTS patients"
for ((n = 0; n < BENCH_PATIENTS; n++)); do
  code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/fhir+json' \
    --data "{\"resourceType\":\"Patient\",\"id\":\"bench-$n\",\"active\":true,\"name\":[{\"family\":\"Bench\",\"given\":[\"P$n\"]}],\"gender\":\"unknown\",\"birthDate\":\"1970-01-01\"}" \
    "$BASE/fhir/Patient/bench-$n" || true)
  if [[ $code != 2?? ]]; then
    log "warning: PUT /fhir/Patient/bench-$n answered $code; the creates reference patients that may not exist"
    break
  fi
done

check_alive "patient setup"
BEFORE=$(count_observations)
run_wrk vitalog_post "$BENCH_THREADS" "$BENCH_CONNECTIONS" bench/post_observation.lua "$BASE/fhir/Observation"
check_alive vitalog_post
sleep 0.5  # let requests still in flight when wrk stopped finish
check_alive "the end of vitalog_post (wrk closing its connections)"
AFTER=$(count_observations)

# Durability cross-check: every acknowledged (2xx) create must be stored.
# wrk stops at the deadline with up to one request per connection in
# flight; the server may still commit those, so up to that many (plus
# requests whose connection failed) may be stored without wrk counting them.
ACKED=$OK_vitalog_post
SLACK=$((BENCH_CONNECTIONS + ERR_vitalog_post))
if [[ $BEFORE =~ ^[0-9]+$ && $AFTER =~ ^[0-9]+$ ]]; then
  STORED=$((AFTER - BEFORE))
  if ((STORED == ACKED)); then
    CHECK="pass: $STORED stored = $ACKED acknowledged"
    CHECK_OK=1
  elif ((STORED > ACKED && STORED <= ACKED + SLACK)); then
    CHECK="pass: $STORED stored, $ACKED acknowledged (+$((STORED - ACKED)) were in flight when wrk stopped)"
    CHECK_OK=1
  elif ((STORED < ACKED)); then
    CHECK="FAIL: only $STORED stored of $ACKED acknowledged creates"
    CHECK_OK=0
  else
    CHECK="FAIL: $STORED stored but only $ACKED acknowledged (more than the $SLACK that can be in flight)"
    CHECK_OK=0
  fi
else
  CHECK="not checked: GET /fhir/Observation?_count=0 gave no Bundle total (before: '${BEFORE}', after: '${AFTER}')"
  CHECK_OK=2
fi
log "durability check: $CHECK"

# Transaction Bundles of BENCH_BUNDLE_SIZE Observations over 4 connections.
BENCH_BUNDLE_SIZE=${BENCH_BUNDLE_SIZE:-100}
export BENCH_BUNDLE_SIZE
BEFORE_TX=$(count_observations)
run_wrk vitalog_tx "$BENCH_THREADS" 4 bench/post_transaction.lua "$BASE/fhir"
check_alive vitalog_tx
sleep 0.5
AFTER_TX=$(count_observations)
OBS_PER_S=$(awk -v r="$RPS_vitalog_tx" -v n="$BENCH_BUNDLE_SIZE" 'BEGIN { printf "%.0f", r * n }')
if [[ $BEFORE_TX =~ ^[0-9]+$ && $AFTER_TX =~ ^[0-9]+$ ]]; then
  STORED_TX=$((AFTER_TX - BEFORE_TX))
  WANT_TX=$((OK_vitalog_tx * BENCH_BUNDLE_SIZE))
  SLACK_TX=$(((4 + ERR_vitalog_tx) * BENCH_BUNDLE_SIZE))
  if ((STORED_TX >= WANT_TX && STORED_TX <= WANT_TX + SLACK_TX && STORED_TX % BENCH_BUNDLE_SIZE == 0)); then
    CHECK_TX="pass: $STORED_TX Observations stored for $OK_vitalog_tx acknowledged transactions (whole Bundles only)"
  else
    CHECK_TX="FAIL: $STORED_TX Observations stored for $OK_vitalog_tx acknowledged transactions of $BENCH_BUNDLE_SIZE"
    CHECK_OK=0
  fi
else
  CHECK_TX="not checked: no Bundle total"
fi
log "transactions: $OBS_PER_S Observations/s; $CHECK_TX"

# Single reader, then 16 readers, of one Observation created now.
log "warm-up create"
HDRS=$SCRATCH/create.headers
BODY=$("${CURL[@]}" -D "$HDRS" -X POST -H 'Content-Type: application/fhir+json' \
  -H 'Prefer: return=representation' \
  --data '{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/bench-0"},"effectiveDateTime":"2024-06-01T12:00:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}' \
  "$BASE/fhir/Observation") || die "warm-up create failed"
OBS_ID=$(tr -d '\r' <"$HDRS" | sed -n 's#^[Ll]ocation:.*Observation/\([^/[:space:]]*\).*#\1#p' | head -n 1)
[[ -n $OBS_ID ]] || OBS_ID=$(printf '%s' "$BODY" | json_get id)
[[ -n $OBS_ID ]] || { cat "$HDRS" >&2; die "warm-up create returned no Location and no id"; }
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$BASE/fhir/Observation/$OBS_ID" || true)
[[ $code == 200 ]] || die "GET /fhir/Observation/$OBS_ID answered $code"
export BENCH_OBSERVATION_ID=$OBS_ID

run_wrk vitalog_get1 1 1 bench/get_observation.lua "$BASE/fhir/Observation/$OBS_ID"
check_alive vitalog_get1
run_wrk vitalog_get16 "$BENCH_THREADS" "$BENCH_CONNECTIONS" bench/get_observation.lua "$BASE/fhir/Observation/$OBS_ID"
check_alive vitalog_get16

RSS_vitalog=$(peak_rss_kib "$VL_PID")
stop_server "$VL_PID"
VL_EXIT=$STOP_STATUS

# ---------------------------------------------------------------- report
FRACTION=$(awk -v a="$RPS_vitalog_post" -v b="$RPS_bare_post" 'BEGIN { printf (b > 0 ? "%.4f" : "n/a"), a / b }')
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
fmt_ms() { awk -v v="$1" 'BEGIN { printf (v < 1 ? "%.3f ms" : "%.2f ms"), v }'; }
fmt_rps() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }

row() {  # row LABEL SERVER NAME FRACTION RSS
  local n=$3
  local rps=RPS_$n p50=P50_$n p99=P99_$n req=REQ_$n non=NON2XX_$n err=ERR_$n
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(fmt_rps "${!rps}")" "$4" \
    "$(fmt_ms "${!p50}")" "$(fmt_ms "${!p99}")" "${!req}" "${!non} / ${!err}" "$5"
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_TOTAL=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS_TYPE=$(df --output=fstype "$SCRATCH" 2>/dev/null | tail -n 1 || echo unknown)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]] && COMMIT="$COMMIT (with uncommitted changes)"

REPORT=$(
  cat <<EOF
# vitalog benchmark results

- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- command: \`$INVOCATION\` ($SETTINGS)
- commit: $COMMIT
- machine: $(nproc) CPUs ($CPU_MODEL), $MEM_TOTAL RAM, $(uname -sr), data on $FS_TYPE
- software: $(wrk --version 2>&1 | head -n 1 | awk '{ print $1, $2 }'), libmicrohttpd $(pkg-config --modversion libmicrohttpd), SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?')
- load generator and servers share the machine; each run lasts ${BENCH_SECONDS} s

| benchmark | server | requests/s | fraction of bare | p50 | p99 | requests | non-2xx / socket errors | peak RSS |
|---|---|---:|---:|---:|---:|---:|---:|---:|
$(row "POST /fhir/Observation, $BENCH_CONNECTIONS connections" bare bare_post "1.0000" "$(mib "$RSS_bare")")
$(row "POST /fhir/Observation, $BENCH_CONNECTIONS connections" vitalog vitalog_post "**$FRACTION**" "")
$(row "POST /fhir transaction of $BENCH_BUNDLE_SIZE Observations, 4 connections" vitalog vitalog_tx "–" "")
$(row "GET /fhir/Observation/{id}, 1 connection" vitalog vitalog_get1 "–" "")
$(row "GET /fhir/Observation/{id}, $BENCH_CONNECTIONS connections" vitalog vitalog_get16 "–" "$(mib "$RSS_vitalog")")

- **vitalog / bare for durable creates: $FRACTION** (the figure to improve)
- **transaction Bundles: $OBS_PER_S Observations/s** ($(fmt_rps "$RPS_vitalog_tx") Bundles/s x $BENCH_BUNDLE_SIZE)
- durability check (Observations stored vs. 2xx creates): $CHECK
- transaction check: $CHECK_TX
- peak RSS is VmHWM from /proc/PID/status after the server's last run; vitalog's covers all three runs
- vitalog exit status after SIGTERM: $VL_EXIT

wrk commands:

$(printf '    %s\n' "${WRK_COMMANDS[@]}")
EOF
)

printf '%s\n' "$REPORT"
mkdir -p "$(dirname "$BENCH_RESULTS")"
printf '%s\n' "$REPORT" >"$BENCH_RESULTS"
log "results written to $BENCH_RESULTS"

status=0
if [[ ${NON2XX_vitalog_post} != 0 || ${NON2XX_vitalog_tx} != 0 || ${NON2XX_vitalog_get1} != 0 || ${NON2XX_vitalog_get16} != 0 ]]; then
  log "error: vitalog answered non-2xx statuses (see the table); the rates are not valid"
  status=1
fi
[[ $CHECK_OK == 0 ]] && status=1
exit "$status"
