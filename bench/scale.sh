#!/usr/bin/env bash
# Searches over a large, realistic database (run by `make bench-scale`; see
# bench/README.md, "make bench-scale").
#
#   bash bench/scale.sh                             # 1,000,000 Observations
#   SCALE_OBSERVATIONS=10000000 bash bench/scale.sh # the full size
#
# 1. builds vitalog and bench_gen_scale (cmake, Release, in SCALE_BUILD_DIR)
#    and bench/bare_server.c;
# 2. generates the database with bench_gen_scale (bench/gen_scale.c: through
#    the server's own write path, transaction Bundles of 200) into
#    SCALE_DATA, or reuses it when SCALE_DATA/scale.json says it holds
#    SCALE_OBSERVATIONS Observations of SCALE_PATIENTS patients from
#    SCALE_SEED (delete the directory, or set SCALE_FRESH=1, to regenerate);
# 3. copies it into the scratch directory (SCALE_COPY=1, the default: every
#    run measures the database as generated, since the runs add to it),
#    starts `vitalog serve` on the copy (a free loopback port, the admin
#    token of its admin.token), checks one sample request of each search with
#    curl and python3 (falling back to seconds in dates, and to _count=0 for
#    _summary=count, when the server answers 400 to them);
# 4. wrk -t2 -c16 -d10s --latency, each request with its own patient and
#    time (bench/scale_*.lua, from SCALE_DATA/scale-manifest.tsv):
#      a  Observation?patient=&code=8867-4&date=ge..&date=lt..&_count=100 (100 results)
#      b  Observation?patient=&code=8867-4&_sort=-date&_count=1
#      c  Observation?patient=&code=99504-3&date=ge2025-MM-01&date=lt..&_summary=count
#      d  Observation?code=8867-4&value-quantity=gt120|http://unitsofmeasure.org|/min&_count=50
#    then a, b and c again as the patient (SCALE_AS=patient): each request
#    with the token of the patient it names, one of SCALE_TOKEN_PATIENTS
#    patients (the first of the manifest, and the samples' one) whose
#    tokens `vitalog token create` issued once the server ran, written to
#    scale-tokens.tsv next to the manifest in the copy; a patient reading
#    her own compartment discloses nothing, so these write no AuditEvent
#    and measure the search path itself (its samples are checked too);
#    then durable creates (bench/post_observation.lua, 16 connections) against
#    vitalog on the same database and against bench/bare_server.c;
# 5. prints a markdown table and writes it to SCALE_RESULTS.
#
# Environment (all optional):
#   SCALE_OBSERVATIONS  Observations in the database (default: 1000000)
#   SCALE_PATIENTS      patients (default: SCALE_OBSERVATIONS / 1000)
#   SCALE_SEED          seed of the generated data (default: 1)
#   SCALE_JOBS          generator threads, one Bundle in flight each (default: 4)
#   SCALE_DATA          the database directory (default: bench/.scale-data/<N>)
#   SCALE_FRESH         1: delete SCALE_DATA and generate it again
#   SCALE_COPY          1 (default): run on a copy of SCALE_DATA in the scratch
#                       directory; 0: run on SCALE_DATA itself (no copy, no
#                       extra disk; the runs' writes then stay in it)
#   SCALE_BUILD_DIR     cmake build directory (default: build-scale)
#   SCALE_SECONDS       duration of each wrk run (default: 10)
#   SCALE_TIMEOUT       wrk --timeout: a slower answer is a socket error, not a
#                       latency (default: 30s; wrk's own default of 2s drops the
#                       slow clinic-wide search at 1,000,000 Observations)
#   SCALE_SKIP_BUILD    1: use the binaries in SCALE_BUILD_DIR, do not run cmake
#   SCALE_RESULTS       where to write the table (default: bench/results/scale-latest.md)
#   SCALE_KEEP          1: keep the scratch directory (server logs, raw wrk output)
#   SCALE_POOL          distinct requests per wrk thread (default: 4096)
#   SCALE_TOKEN_PATIENTS patients the runs as the patient use, each with its
#                       own token (default: 64)
#
# The creates, the patient tokens and the admin's searches (each answer
# that discloses records first commits AuditEvents) add to the database,
# which is why the runs use a copy unless SCALE_COPY=0.
#
# Exit status: 0 when every run answered only 2xx and every sample was sane,
# 1 otherwise.

# run_wrk assigns RPS_<name>, P50_<name>, ... indirectly:
# shellcheck disable=SC2154
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SCALE_OBSERVATIONS=${SCALE_OBSERVATIONS:-1000000}
SCALE_PATIENTS=${SCALE_PATIENTS:-$((SCALE_OBSERVATIONS / 1000 > 0 ? SCALE_OBSERVATIONS / 1000 : 1))}
SCALE_SEED=${SCALE_SEED:-1}
SCALE_JOBS=${SCALE_JOBS:-4}
SCALE_DEFAULT_ROOT=bench/.scale-data
SCALE_DATA=${SCALE_DATA:-$SCALE_DEFAULT_ROOT/$SCALE_OBSERVATIONS}
SCALE_BUILD_DIR=${SCALE_BUILD_DIR:-build-scale}
SCALE_SECONDS=${SCALE_SECONDS:-10}
SCALE_TIMEOUT=${SCALE_TIMEOUT:-30s}
SCALE_RESULTS=${SCALE_RESULTS:-bench/results/scale-latest.md}
SCALE_TOKEN_PATIENTS=${SCALE_TOKEN_PATIENTS:-64}
# the admin's runs are the admin's whatever the caller's environment says;
# the runs as the patient set these themselves
unset SCALE_AS SCALE_TOKENS
THREADS=2
CONNECTIONS=16

INVOCATION="bash bench/scale.sh"
[[ -n ${MAKELEVEL:-} ]] && INVOCATION="make bench-scale"
SETTINGS="SCALE_OBSERVATIONS=$SCALE_OBSERVATIONS SCALE_PATIENTS=$SCALE_PATIENTS SCALE_SEED=$SCALE_SEED SCALE_SECONDS=$SCALE_SECONDS"

log() { printf 'bench-scale: %s\n' "$*" >&2; }
die() { log "error: $*"; SCALE_KEEP=1; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

for tool in wrk curl cc pkg-config cmake awk python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh installs it)"
done
[[ $SCALE_OBSERVATIONS =~ ^[1-9][0-9]*$ ]] || die "SCALE_OBSERVATIONS must be a positive number"
[[ $SCALE_PATIENTS =~ ^[1-9][0-9]*$ ]] || die "SCALE_PATIENTS must be a positive number"
[[ $SCALE_TOKEN_PATIENTS =~ ^[1-9][0-9]*$ ]] || die "SCALE_TOKEN_PATIENTS must be a positive number"

# ---------------------------------------------------------------- build
if [[ ${SCALE_SKIP_BUILD:-0} != 1 ]]; then
  log "building vitalog and bench_gen_scale in $SCALE_BUILD_DIR (Release)"
  cmake -S . -B "$SCALE_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$SCALE_BUILD_DIR" -j2 --target vitalog bench_gen_scale >/dev/null
fi
VITALOG=$SCALE_BUILD_DIR/vitalog
GEN=$SCALE_BUILD_DIR/bench_gen_scale
[[ -x $VITALOG && -x $GEN ]] || die "$VITALOG or $GEN was not built"
BARE=$SCALE_BUILD_DIR/bench/bare_server
mkdir -p "$SCALE_BUILD_DIR/bench"
if [[ ${SCALE_SKIP_BUILD:-0} != 1 || ! -x $BARE ]]; then
  log "building $BARE"
  build_bare_server "$BARE"
fi

# ---------------------------------------------------------------- scratch space and cleanup
SCRATCH=$(cd "$(mktemp -d "$SCALE_BUILD_DIR/bench/scale.XXXXXX")" && pwd)
SERVER_PIDS=()

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
  if [[ ${SCALE_KEEP:-0} == 1 ]]; then
    log "scratch directory kept: $SCRATCH"
  else
    rm -rf "$SCRATCH"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


json_field() {  # json_field FILE FIELD -> a top-level field of a JSON file (empty if none)
  python3 -c 'import json,sys
try:
    v = json.load(open(sys.argv[1])).get(sys.argv[2])
    print("" if v is None else v)
except Exception:
    pass' "$1" "$2" 2>/dev/null || true
}

# ---------------------------------------------------------------- the database
GEN_STATE=
if [[ -d $SCALE_DATA && ${SCALE_FRESH:-0} == 1 ]]; then
  case $SCALE_DATA in
    "$SCALE_DEFAULT_ROOT"/*) log "SCALE_FRESH=1: deleting $SCALE_DATA"; rm -rf "$SCALE_DATA" ;;
    *) die "SCALE_FRESH=1 deletes only directories under $SCALE_DEFAULT_ROOT; delete $SCALE_DATA yourself" ;;
  esac
fi
if [[ -s $SCALE_DATA/scale.json ]]; then
  have_n=$(json_field "$SCALE_DATA/scale.json" observations)
  have_p=$(json_field "$SCALE_DATA/scale.json" patients)
  have_s=$(json_field "$SCALE_DATA/scale.json" seed)
  if [[ $have_n == "$SCALE_OBSERVATIONS" && $have_p == "$SCALE_PATIENTS" && $have_s == "$SCALE_SEED" ]]; then
    GEN_STATE=reused
    log "reusing $SCALE_DATA ($have_n Observations of $have_p patients, seed $have_s)"
  else
    die "$SCALE_DATA holds $have_n Observations of $have_p patients (seed $have_s), not $SCALE_OBSERVATIONS of $SCALE_PATIENTS (seed $SCALE_SEED); set SCALE_FRESH=1 or another SCALE_DATA"
  fi
elif [[ -e $SCALE_DATA ]]; then
  # an interrupted generation (scale.json is written last)
  case $SCALE_DATA in
    "$SCALE_DEFAULT_ROOT"/*) log "$SCALE_DATA is incomplete (no scale.json): generating it again"; rm -rf "$SCALE_DATA" ;;
    *) die "$SCALE_DATA exists but holds no complete generated database (no scale.json)" ;;
  esac
fi
if [[ -z $GEN_STATE ]]; then
  mkdir -p "$(dirname "$SCALE_DATA")"
  log "generating $SCALE_OBSERVATIONS Observations of $SCALE_PATIENTS patients into $SCALE_DATA"
  "$GEN" --data "$SCALE_DATA" --observations "$SCALE_OBSERVATIONS" --patients "$SCALE_PATIENTS" \
    --seed "$SCALE_SEED" --jobs "$SCALE_JOBS" | tee "$SCRATCH/gen.out" >&2 ||
    die "bench_gen_scale failed"
  cp "$SCRATCH/gen.out" "$SCALE_DATA/gen_scale.out"
  GEN_STATE=generated
fi
GEN_SECONDS=$(json_field "$SCALE_DATA/scale.json" seconds)
GEN_RATE=$(json_field "$SCALE_DATA/scale.json" obs_per_s)
GEN_DB=$(json_field "$SCALE_DATA/scale.json" db_bytes)
GEN_BPO=$(json_field "$SCALE_DATA/scale.json" bytes_per_obs)
GEN_LEDGER=$(json_field "$SCALE_DATA/scale.json" ledger_entries)
GEN_LEDGER_BYTES=$(json_field "$SCALE_DATA/scale.json" ledger_bytes)
export SCALE_MANIFEST=$SCALE_DATA/scale-manifest.tsv
[[ -s $SCALE_MANIFEST ]] || die "$SCALE_MANIFEST is missing"

db_bytes() {  # db_bytes DIR -> bytes of DIR/vitalog.db and its -wal
  local d=$1 n
  n=$(stat -c %s "$d/vitalog.db")
  [[ -f $d/vitalog.db-wal ]] && n=$((n + $(stat -c %s "$d/vitalog.db-wal")))
  echo "$n"
}
DB_BEFORE=$(db_bytes "$SCALE_DATA")
if [[ ${SCALE_COPY:-1} == 1 ]]; then
  avail=$(df --output=avail -B1 "$SCRATCH" | tail -n 1)
  ((avail > DB_BEFORE + DB_BEFORE / 4 + 1073741824)) ||
    die "not enough free space for a copy of $SCALE_DATA ($DB_BEFORE bytes, $avail free); run with SCALE_COPY=0"
  log "copying $SCALE_DATA to $SCRATCH/data (SCALE_COPY=0 runs on it in place)"
  t0=$(date +%s.%N)
  cp -a --sparse=always "$SCALE_DATA" "$SCRATCH/data"
  COPY_LINE="the runs used a copy ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s to copy)"
  RUN_DATA=$SCRATCH/data
else
  COPY_LINE="the runs used it in place (SCALE_COPY=0), with whatever earlier runs added"
  RUN_DATA=$SCALE_DATA
fi

# ---------------------------------------------------------------- wrk runs
# run_wrk (bench/lib.sh) with this script's settings
WRK_COMMANDS=()
WRK_THREADS=$THREADS
WRK_CONNECTIONS=$CONNECTIONS
WRK_SECONDS=$SCALE_SECONDS
WRK_TIMEOUT=$SCALE_TIMEOUT

# ---------------------------------------------------------------- bare server
log "starting $BARE"
"$BARE" --listen 127.0.0.1:0 --port-file "$SCRATCH/bare.port" >"$SCRATCH/bare.log" 2>&1 &
BARE_PID=$!
SERVER_PIDS+=("$BARE_PID")
BARE_PORT=$(wait_for_port "$SCRATCH/bare.port" "$BARE_PID" bare)
export BENCH_PATIENTS=100
run_wrk bare_post bench/post_observation.lua "http://127.0.0.1:$BARE_PORT/fhir/Observation"
stop_server "$BARE_PID"

# ---------------------------------------------------------------- vitalog
log "starting $VITALOG serve --data $RUN_DATA"
START_T=$(date +%s.%N)
"$VITALOG" serve --data "$RUN_DATA" --listen 127.0.0.1:0 --port-file "$SCRATCH/vitalog.port" \
  >"$SCRATCH/vitalog.log" 2>&1 &
VL_PID=$!
SERVER_PIDS+=("$VL_PID")
# (a database generated before a schema migration is re-indexed first: allow an hour)
VL_PORT=$(wait_for_port "$SCRATCH/vitalog.port" "$VL_PID" vitalog 3600)
START_S=$(awk -v a="$START_T" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
BASE=http://127.0.0.1:$VL_PORT
log "vitalog listens on port $VL_PORT (started in $START_S s)"
[[ -s $RUN_DATA/admin.token ]] || die "no $RUN_DATA/admin.token"
VITALOG_TOKEN=$(tr -d '[:space:]' <"$RUN_DATA/admin.token")
export VITALOG_TOKEN
CURL=(curl -sS --max-time 120 -H "Accept: application/fhir+json" -H "Authorization: Bearer $VITALOG_TOKEN")

check_alive() {  # check_alive RUN: fails the benchmark when vitalog died during RUN
  kill -0 "$VL_PID" 2>/dev/null && return 0
  local st=0
  wait "$VL_PID" 2>/dev/null || st=$?
  tail -n 5 "$SCRATCH/vitalog.log" >&2 || true
  die "vitalog exited during $1 (exit status $st); log in $SCRATCH"
}

# ---------------------------------------------------------------- samples
# One request of each search, built from the manifest as the wrk scripts
# build theirs (the first patient with 100 heart rates), with what its
# answer must hold. python3 prints "NAME<TAB>PATH<TAB>EXPECTED" lines.
SAMPLES=$(python3 - "$SCALE_MANIFEST" <<'PY'
import sys, time
rows = []
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    f = line.rstrip("\n").split("\t")
    marks = [int(t) for t in f[5].split()] if len(f) > 5 and f[5] else []
    rows.append((f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4]), marks))
p = next((r for r in rows if r[3] >= 100), rows[0])
pid, start, stop, hr, gl, marks = p
def minute(t):
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(t))
if hr >= 100:
    print("a\t/fhir/Observation?patient=Patient/%s&code=http://loinc.org%%7C8867-4&date=ge%s&date=lt%s&_count=100\t100"
          % (pid, minute(marks[0]), minute(marks[1])))
# b: the latest heart rate is one minute before the end mark
print("b\t/fhir/Observation?patient=Patient/%s&code=http://loinc.org%%7C8867-4&_sort=-date&_count=1\t%s"
      % (pid, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(marks[-1] - 60)) if marks else ""))
# c: the month of the window's start; readings are 5 min apart from the start
y, m = time.gmtime(start).tm_year, time.gmtime(start).tm_mon
ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
lo = int(time.mktime((y, m, 1, 0, 0, 0, 0, 0, 0))) - time.timezone
hi = int(time.mktime((ny, nm, 1, 0, 0, 0, 0, 0, 0))) - time.timezone
want = sum(1 for k in range(gl) if lo <= start + 300 * k < hi)
print("c\t/fhir/Observation?patient=Patient/%s&code=http://loinc.org%%7C99504-3&date=ge%04d-%02d-01&date=lt%04d-%02d-01&COUNT\t%d"
      % (pid, y, m, ny, nm, want))
print("d\t/fhir/Observation?code=http://loinc.org%7C8867-4&value-quantity=gt120%7Chttp://unitsofmeasure.org%7C/min&_count=50\t50")
PY
)

# sample NAME PATH [TOKEN] -> sets CODE (HTTP status) and leaves the body in
# $SCRATCH/NAME.json; with TOKEN, the request is that token's, not the admin's
sample() {
  local c=("${CURL[@]}")
  [[ -n ${3:-} ]] && c=(curl -sS --max-time 120 -H "Accept: application/fhir+json" -H "Authorization: Bearer $3")
  CODE=$("${c[@]}" -o "$SCRATCH/$1.json" -w '%{http_code}' "$BASE$2" || echo 000)
}

# check NAME EXPECTED -> prints "ok: ..." or "WRONG: ..." (NAME a, b, c, d,
# or a_patient ...: the same checks)
check() {
  python3 - "$SCRATCH/$1.json" "$1" "$2" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
name, want = sys.argv[2].split("_")[0], sys.argv[3]
entries = [e.get("resource", {}) for e in b.get("entry", [])]
total = b.get("total")
def value(r):
    return float(r.get("valueQuantity", {}).get("value", "nan"))
def codes(r):
    return {c.get("code") for c in r.get("code", {}).get("coding", [])}
if name == "a":
    ok = len(entries) == int(want) and all("8867-4" in codes(r) for r in entries)
    print(("ok" if ok else "WRONG") + ": %d entries (want %s heart rates)" % (len(entries), want))
elif name == "b":
    got = entries[0].get("effectiveDateTime") if entries else None
    ok = len(entries) == 1 and got == want
    print(("ok" if ok else "WRONG") + ": %d entry, effectiveDateTime %s (want the latest, %s)" % (len(entries), got, want))
elif name == "c":
    ok = total == int(want) and not entries
    print(("ok" if ok else "WRONG") + ": total %s, %d entries (want %s readings of the month)" % (total, len(entries), want))
else:
    ok = len(entries) == int(want) and all(value(r) > 120 and "8867-4" in codes(r) for r in entries)
    print(("ok" if ok else "WRONG") + ": %d entries, all heart rates > 120: %s" % (len(entries), all(value(r) > 120 for r in entries)))
PY
}

NOTES=()
SAMPLE_OK=1
declare -A SAMPLE_PATH SAMPLE_RESULT SAMPLE_MS SAMPLE_WANT
COUNT_PARAM=_summary=count
while IFS=$'\t' read -r name path want; do
  [[ -n $name ]] || continue
  path=${path/COUNT/$COUNT_PARAM}
  t0=$(date +%s%N)
  sample "$name" "$path"
  if [[ $CODE == 400 && $name == a ]]; then
    log "search a answered 400 with minutes in its dates; trying seconds"
    NOTES+=("search a: the server answered 400 to dates with minutes and no seconds; the run used hh:mm:ss (SCALE_DATE_SECONDS=1)")
    export SCALE_DATE_SECONDS=1
    path=$(sed -E 's/(date=(ge|lt)[0-9-]+T[0-9]{2}:[0-9]{2})/\1:00/g' <<<"$path")
    t0=$(date +%s%N)
    sample "$name" "$path"
  fi
  if [[ $CODE == 400 && $name == c ]]; then
    log "search c answered 400 to _summary=count; using _count=0"
    NOTES+=("search c: the server answered 400 to _summary=count; the run used _count=0")
    COUNT_PARAM=_count=0
    export SCALE_COUNT_PARAM=_count=0
    path=${path/_summary=count/_count=0}
    t0=$(date +%s%N)
    sample "$name" "$path"
  fi
  SAMPLE_MS[$name]=$(( ($(date +%s%N) - t0) / 1000000 ))
  SAMPLE_PATH[$name]=$path
  SAMPLE_WANT[$name]=$want
  if [[ $CODE != 200 ]]; then
    SAMPLE_RESULT[$name]="WRONG: HTTP $CODE: $(head -c 300 "$SCRATCH/$name.json" | tr '\n' ' ')"
  else
    SAMPLE_RESULT[$name]=$(check "$name" "$want" 2>&1 || echo "WRONG: unreadable answer")
  fi
  [[ ${SAMPLE_RESULT[$name]} == ok* ]] || SAMPLE_OK=0
  log "sample $name (${SAMPLE_MS[$name]} ms, cold): ${SAMPLE_RESULT[$name]}"
done <<<"$SAMPLES"
check_alive "the sample requests"

# ---------------------------------------------------------------- patient tokens
# One patient token each for the first SCALE_TOKEN_PATIENTS patients of the
# manifest and the samples' patient, issued while the server runs (it looks
# tokens up per request), "id<TAB>token" lines next to the manifest in the
# copy (in the scratch directory with SCALE_COPY=0: no secrets left behind).
if [[ ${SCALE_COPY:-1} == 1 ]]; then
  export SCALE_TOKENS=$RUN_DATA/scale-tokens.tsv
else
  export SCALE_TOKENS=$SCRATCH/scale-tokens.tsv
fi
SAMPLE_PATIENT=$(sed -nE 's|.*[?&]patient=Patient/([^&]+).*|\1|p' <<<"${SAMPLE_PATH[b]:-}")
mapfile -t TOKEN_IDS < <(
  { awk -F'\t' -v k="$SCALE_TOKEN_PATIENTS" '!/^#/ && NF >= 5 && n < k { print $1; n++ }' "$SCALE_MANIFEST"
    [[ -n $SAMPLE_PATIENT ]] && echo "$SAMPLE_PATIENT"; } | awk '!seen[$0]++')
((${#TOKEN_IDS[@]} > 0)) || die "no patients in $SCALE_MANIFEST to make tokens for"
log "creating ${#TOKEN_IDS[@]} patient tokens (vitalog token create) into $SCALE_TOKENS"
: >"$SCALE_TOKENS"
chmod 600 "$SCALE_TOKENS"
SAMPLE_TOKEN=
t0=$(date +%s%N)
for id in "${TOKEN_IDS[@]}"; do
  secret=$("$VITALOG" token create --data "$RUN_DATA" --role patient --subject "Patient/$id" \
             --expires 1d --label bench-scale 2>>"$SCRATCH/tokens.log") ||
    { tail -n 5 "$SCRATCH/tokens.log" >&2; die "vitalog token create failed for Patient/$id"; }
  [[ -n $secret ]] || die "vitalog token create printed no token for Patient/$id"
  printf '%s\t%s\n' "$id" "$secret" >>"$SCALE_TOKENS"
  if [[ $id == "$SAMPLE_PATIENT" ]]; then SAMPLE_TOKEN=$secret; fi
done
TOKEN_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
TOKEN_LINE="${#TOKEN_IDS[@]} patient tokens created in $TOKEN_MS ms ($(awk -v t="$TOKEN_MS" -v n="${#TOKEN_IDS[@]}" 'BEGIN { printf "%.0f", t / n }') ms each)"
log "$TOKEN_LINE"
unset secret

# audit_events -> how many AuditEvents the database holds (a count discloses
# nothing, so asking writes none); empty when the server does not say
audit_events() {
  "${CURL[@]}" "$BASE/fhir/AuditEvent?_summary=count" 2>/dev/null |
    python3 -c 'import json,sys
try:
    t = json.load(sys.stdin).get("total")
    print("" if t is None else t)
except Exception:
    pass' 2>/dev/null || true
}
AUDIT_OK=1
AUDIT_PATIENT=0  # AuditEvents the requests as the patient wrote; empty: not counted
audit_from=$(audit_events)
# audit_add FROM: adds the AuditEvents written since FROM (a count) to AUDIT_PATIENT
audit_add() {
  local now
  now=$(audit_events)
  if [[ -n $1 && -n $now && -n $AUDIT_PATIENT ]]; then
    AUDIT_PATIENT=$((AUDIT_PATIENT + now - $1))
  else
    AUDIT_PATIENT=
  fi
}

# The samples again as the patient they name: the same paths and answers.
for base in a b c; do
  [[ -n ${SAMPLE_PATH[$base]:-} ]] || continue
  name=${base}_patient
  t0=$(date +%s%N)
  sample "$name" "${SAMPLE_PATH[$base]}" "${SAMPLE_TOKEN:-}"
  SAMPLE_MS[$name]=$(( ($(date +%s%N) - t0) / 1000000 ))
  SAMPLE_PATH[$name]=${SAMPLE_PATH[$base]}
  if [[ -z ${SAMPLE_TOKEN:-} ]]; then
    SAMPLE_RESULT[$name]="WRONG: no token for the sample's patient"
  elif [[ $CODE != 200 ]]; then
    SAMPLE_RESULT[$name]="WRONG: HTTP $CODE: $(head -c 300 "$SCRATCH/$name.json" | tr '\n' ' ')"
  else
    SAMPLE_RESULT[$name]=$(check "$name" "${SAMPLE_WANT[$base]}" 2>&1 || echo "WRONG: unreadable answer")
  fi
  [[ ${SAMPLE_RESULT[$name]} == ok* ]] || SAMPLE_OK=0
  log "sample $name (${SAMPLE_MS[$name]} ms, as Patient/$SAMPLE_PATIENT): ${SAMPLE_RESULT[$name]}"
done
check_alive "the sample requests as the patient"
audit_add "$audit_from"

# ---------------------------------------------------------------- searches
run_wrk search_a bench/scale_a_window.lua "$BASE/fhir/Observation"
check_alive search_a
run_wrk search_b bench/scale_b_latest.lua "$BASE/fhir/Observation"
check_alive search_b
run_wrk search_c bench/scale_c_month.lua "$BASE/fhir/Observation"
check_alive search_c
run_wrk search_d bench/scale_d_high.lua "$BASE/fhir/Observation"
check_alive search_d

# a, b and c again, each request made by the patient it names (no AuditEvent)
audit_from=$(audit_events)
export SCALE_AS=patient
run_wrk search_a_patient bench/scale_a_window.lua "$BASE/fhir/Observation"
check_alive search_a_patient
run_wrk search_b_patient bench/scale_b_latest.lua "$BASE/fhir/Observation"
check_alive search_b_patient
run_wrk search_c_patient bench/scale_c_month.lua "$BASE/fhir/Observation"
check_alive search_c_patient
unset SCALE_AS
audit_add "$audit_from"
if [[ -n $AUDIT_PATIENT ]]; then
  AUDIT_LINE="AuditEvents written by the requests as the patient (samples and runs): $AUDIT_PATIENT (want 0)"
  ((AUDIT_PATIENT == 0)) || AUDIT_OK=0
else
  AUDIT_LINE="AuditEvents written by the requests as the patient: not counted (GET /fhir/AuditEvent?_summary=count gave no total)"
fi
log "$AUDIT_LINE"

# ---------------------------------------------------------------- creates
# The subjects of post_observation.lua (Patient/bench-0 .. 99), once per database.
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$BASE/fhir/Patient/bench-99" || true)
if [[ $code != 200 ]]; then
  log "creating the 100 patients of post_observation.lua"
  for ((n = 0; n < 100; n++)); do
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/fhir+json' \
      --data "{\"resourceType\":\"Patient\",\"id\":\"bench-$n\",\"active\":true,\"name\":[{\"family\":\"Bench\",\"given\":[\"P$n\"]}],\"gender\":\"unknown\",\"birthDate\":\"1970-01-01\"}" \
      "$BASE/fhir/Patient/bench-$n" || true)
    [[ $code == 2?? ]] || die "PUT /fhir/Patient/bench-$n answered $code"
  done
fi
run_wrk vitalog_post bench/post_observation.lua "$BASE/fhir/Observation"
check_alive vitalog_post

RSS_vitalog=$(peak_rss_kib "$VL_PID")
stop_server "$VL_PID"
VL_EXIT=$STOP_STATUS
DB_AFTER=$(db_bytes "$RUN_DATA")

# ---------------------------------------------------------------- report
RATIO=$(awk -v a="$RPS_vitalog_post" -v b="$RPS_bare_post" 'BEGIN { printf (b > 0 ? "%.4f" : "n/a"), a / b }')
fmt_ms() { awk -v v="$1" 'BEGIN { printf (v < 1 ? "%.3f ms" : "%.2f ms"), v }'; }
fmt_rps() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

row() {  # row LABEL NAME SAMPLE
  local n=$2
  local rps=RPS_$n p50=P50_$n p99=P99_$n req=REQ_$n non=NON2XX_$n err=ERR_$n
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(fmt_rps "${!rps}")" \
    "$(fmt_ms "${!p50}")" "$(fmt_ms "${!p99}")" "${!req}" "${!non} / ${!err}" "$3"
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_TOTAL=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS_TYPE=$(df --output=fstype "$RUN_DATA" 2>/dev/null | tail -n 1 || echo unknown)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]] && COMMIT="$COMMIT (with uncommitted changes)"
if [[ $GEN_STATE == generated ]]; then
  GEN_LINE="generated in this run: $GEN_SECONDS s, **$GEN_RATE Observations/s**"
else
  GEN_LINE="reused (generated earlier in $GEN_SECONDS s, $GEN_RATE Observations/s)"
fi

REPORT=$(
  cat <<EOF
# vitalog search benchmark at scale

- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- command: \`$INVOCATION\` ($SETTINGS)
- commit: $COMMIT
- machine: $(nproc) CPUs ($CPU_MODEL), $MEM_TOTAL RAM, $(uname -sr), data on $FS_TYPE
- software: $(wrk --version 2>&1 | head -n 1 | awk '{ print $1, $2 }'), libmicrohttpd $(pkg-config --modversion libmicrohttpd), SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?'), vitalog built Release
- database: \`$SCALE_DATA\`, $SCALE_OBSERVATIONS Observations of $SCALE_PATIENTS patients (seed $SCALE_SEED), $GEN_LINE
- size after generation: $GEN_DB bytes ($(mib "$GEN_DB")), **$GEN_BPO bytes per Observation** (vitalog.db + -wal); ledger $GEN_LEDGER entries, $GEN_LEDGER_BYTES bytes of entry lines and checkpoints
- $COPY_LINE: $DB_BEFORE bytes before, $DB_AFTER after (the creates and AuditEvents of this run: $(mib $((DB_AFTER - DB_BEFORE))))
- vitalog started on it in $START_S s; **peak RSS $(mib $((RSS_vitalog * 1024)))** (VmHWM after all its runs)
- wrk -t$THREADS -c$CONNECTIONS -d${SCALE_SECONDS}s --timeout $SCALE_TIMEOUT --latency for every run; each search request picks its own patient and time (bench/scale_*.lua, a pool of ${SCALE_POOL:-4096} per thread); requests are the admin's, so every search answer that discloses records first commits AuditEvents (one per patient in it; a count discloses none)
- the rows "as the patient" send the same searches (SCALE_AS=patient), each with the token of the patient it names, one of ${#TOKEN_IDS[@]}: a patient reading her own compartment discloses nothing and writes no AuditEvent, so they measure the search path itself; $TOKEN_LINE after the server started
- $AUDIT_LINE

| run | requests/s | p50 | p99 | requests | non-2xx / socket errors | sample request checked |
|---|---:|---:|---:|---:|---:|---|
$(row "a: patient + heart rate + date window (100 results, _count=100)" search_a "${SAMPLE_RESULT[a]:-not checked}")
$(row "a (as the patient)" search_a_patient "${SAMPLE_RESULT[a_patient]:-not checked}")
$(row "b: patient + heart rate, _sort=-date&_count=1" search_b "${SAMPLE_RESULT[b]:-not checked}")
$(row "b (as the patient)" search_b_patient "${SAMPLE_RESULT[b_patient]:-not checked}")
$(row "c: patient + CGM glucose + month, ${COUNT_PARAM}" search_c "${SAMPLE_RESULT[c]:-not checked}")
$(row "c (as the patient)" search_c_patient "${SAMPLE_RESULT[c_patient]:-not checked}")
$(row "d: clinic-wide heart rate > 120 /min, _count=50" search_d "${SAMPLE_RESULT[d]:-not checked}")
$(row "POST /fhir/Observation on this database" vitalog_post "–")
$(row "POST /fhir/Observation, bare libmicrohttpd server" bare_post "–")

- **durable creates on this database, vitalog / bare: $RATIO**
- vitalog exit status after SIGTERM: $VL_EXIT
$(for n in "${NOTES[@]}"; do printf -- '- note: %s\n' "$n"; done)

Sample requests (the first answer of each after the server started, the patient's after the admin's; the database file was just copied, so the page cache is warm):

$(for n in a b c d; do [[ -n ${SAMPLE_PATH[$n]:-} ]] && printf '    %s (%s ms) GET %s\n' "$n" "${SAMPLE_MS[$n]}" "${SAMPLE_PATH[$n]}"; done)
$(for n in a_patient b_patient c_patient; do [[ -n ${SAMPLE_PATH[$n]:-} ]] && printf '    %s (%s ms, as Patient/%s) GET %s\n' "$n" "${SAMPLE_MS[$n]}" "$SAMPLE_PATIENT" "${SAMPLE_PATH[$n]}"; done)

wrk commands:

$(printf '    %s\n' "${WRK_COMMANDS[@]}")
EOF
)

printf '%s\n' "$REPORT"
mkdir -p "$(dirname "$SCALE_RESULTS")"
printf '%s\n' "$REPORT" >"$SCALE_RESULTS"
log "results written to $SCALE_RESULTS"

status=0
for n in search_a search_b search_c search_d search_a_patient search_b_patient search_c_patient vitalog_post; do
  v=NON2XX_$n
  if [[ ${!v} != 0 ]]; then
    log "error: $n had ${!v} non-2xx answers; its rate is not valid"
    status=1
  fi
  v=ERR_$n
  if [[ ${!v} != 0 ]]; then
    log "error: $n had ${!v} socket errors or timeouts (SCALE_TIMEOUT=$SCALE_TIMEOUT); its figures are not valid"
    status=1
  fi
done
if [[ $SAMPLE_OK != 1 ]]; then
  log "error: a sample request's answer was wrong (see the table)"
  status=1
fi
if [[ $AUDIT_OK != 1 ]]; then
  log "error: the requests as the patient wrote $AUDIT_PATIENT AuditEvents; a patient's own reads disclose nothing"
  status=1
fi
exit "$status"
