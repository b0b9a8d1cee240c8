#!/usr/bin/env bash
# Reads under consent, with the accounting of disclosures, against a
# patient's own reads and against the same requests on the build before
# identity and consent (issue 7), in one run on one machine.
#
#   bash bench/consent.sh
#
# 1. builds this tree (BUILD_DIR) and, in a git worktree, BENCH_BEFORE (the
#    last commit before tokens, roles and consent), both RelWithDebInfo;
# 2. each server gets BENCH_PATIENTS patients with BENCH_OBS heart-rate
#    Observations each (transaction Bundles); this tree's server also gets
#    one Consent per patient permitting Organization/bench-clinic to access
#    their Observations, a clinic token and a token for patient 0;
# 3. wrk, BENCH_SECONDS each, 2 threads x 16 connections, then 1 x 1:
#      read    GET /fhir/Observation/<one of patient 0's> (also 128 connections:
#              audited reads wait for a commit, so their rate grows with the
#              requests that can share one)
#      search  GET /fhir/Observation?patient=bench-0&code=http://loinc.org|8867-4&_count=10
#    as the clinic (consent decision, SQL filter, one AuditEvent committed
#    before each answer), as patient 0 (own compartment, no accounting) and
#    anonymously on the build before (no decision at all);
# 4. prints a markdown table (and writes it to BENCH_RESULTS).
#
# Environment: BUILD_DIR (build), BENCH_BEFORE (5335dc1), BENCH_SECONDS (10),
# BENCH_PATIENTS (20), BENCH_OBS (50), BENCH_RESULTS
# (bench/results/consent.md), BENCH_KEEP=1 keeps the scratch directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
BENCH_BEFORE=${BENCH_BEFORE:-5335dc1}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_PATIENTS=${BENCH_PATIENTS:-20}
BENCH_OBS=${BENCH_OBS:-50}
BENCH_RESULTS=${BENCH_RESULTS:-bench/results/consent.md}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; BENCH_KEEP=1; exit 1; }
for tool in wrk curl cmake git python3 cc pkg-config; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

SCRATCH=$(mktemp -d /tmp/vitalog-bench-consent.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  git -C "$ROOT" worktree remove --force "$SCRATCH/before-src" >/dev/null 2>&1 || true
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $SCRATCH"; else rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- builds
log "building this tree in $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target vitalog bench_consent_decision >/dev/null
NOW_BIN=$ROOT/$BUILD_DIR/vitalog
log "building $BENCH_BEFORE (the build before issue 7) in a worktree"
git -C "$ROOT" worktree add --detach "$SCRATCH/before-src" "$BENCH_BEFORE" >/dev/null 2>&1 ||
  die "cannot check out $BENCH_BEFORE"
cmake -S "$SCRATCH/before-src" -B "$SCRATCH/before-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$SCRATCH/before-build" -j"$(nproc)" --target vitalog >/dev/null
BEFORE_BIN=$SCRATCH/before-build/vitalog
BARE=$SCRATCH/bare_server
cc -O2 -o "$BARE" bench/bare_server.c $(pkg-config --cflags --libs libmicrohttpd) -lpthread ||
  die "cannot build bench/bare_server.c"

start() {  # start NAME BINARY -> sets PORT
  local name=$1 bin=$2 i
  "$bin" serve --data "$SCRATCH/$name" --listen 127.0.0.1:0 --port-file "$SCRATCH/$name.port" \
    --log-level warn 2>"$SCRATCH/$name.log" &
  PIDS+=($!)
  for ((i = 0; i < 300; i++)); do
    [[ -s $SCRATCH/$name.port ]] && { PORT=$(cat "$SCRATCH/$name.port"); return 0; }
    sleep 0.05
  done
  die "$name did not start"
}

# seed BASE TOKEN: patients and their Observations; prints one id of patient 0's
seed() {
  BENCH_BASE=$1 BENCH_AUTH=$2 BENCH_PATIENTS=$BENCH_PATIENTS BENCH_OBS=$BENCH_OBS \
    BENCH_CONSENT=${3:-} python3 - <<'PY'
import json, os, urllib.request
base, auth = os.environ["BENCH_BASE"], os.environ["BENCH_AUTH"]
def send(method, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/fhir+json",
                                          **({"Authorization": "Bearer " + auth} if auth else {})})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
first = None
for p in range(int(os.environ["BENCH_PATIENTS"])):
    pid = f"bench-{p}"
    send("PUT", f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid})
    entries = [{"resource": {"resourceType": "Observation", "status": "final",
                             "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                             "subject": {"reference": f"Patient/{pid}"},
                             "effectiveDateTime": f"2024-05-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
                             "valueQuantity": {"value": 60 + i % 40, "unit": "/min",
                                               "system": "http://unitsofmeasure.org", "code": "/min"}},
                "request": {"method": "POST", "url": "Observation"}}
               for i in range(int(os.environ["BENCH_OBS"]))]
    out = send("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    if first is None:
        # Location: [base/]Observation/<id>/_history/1
        first = out["entry"][0]["response"]["location"].split("Observation/")[1].split("/")[0]
    if os.environ.get("BENCH_CONSENT"):
        send("PUT", f"/fhir/Consent/{pid}-c", {
            "resourceType": "Consent", "id": f"{pid}-c", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pid}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": {"type": "permit",
                          "actor": [{"role": {"text": "clinic"},
                                     "reference": {"reference": os.environ["BENCH_CONSENT"]}}],
                          "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                                  "code": "access"}]}],
                          "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}})
print(first)
PY
}

# run NAME THREADS CONNECTIONS TOKEN URL -> sets RPS_NAME and P50_NAME
run() {
  local name=$1 t=$2 c=$3 token=$4 url=$5 out=$SCRATCH/$1.wrk
  VITALOG_TOKEN=$token BENCH_PATH="/${url#http://*/}" \
    wrk -t"$t" -c"$c" -d"${BENCH_SECONDS}s" --latency -s bench/get_observation.lua "$url" >"$out" 2>&1 ||
    die "wrk failed ($name): $(tail -3 "$out")"
  local rps p50 non2xx
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; print v}' "$out")
  non2xx=$(sed -n 's/.*non2xx=\([0-9]*\).*/\1/p' "$out")
  [[ ${non2xx:-0} == 0 ]] || die "$name: $non2xx non-2xx answers (see $out)"
  printf -v "RPS_$name" '%s' "$rps"
  printf -v "P50_$name" '%s' "$p50"
  log "$name: $rps requests/s, p50 $p50 ms"
}

SEARCH_Q="patient=bench-0&code=http://loinc.org%7C8867-4&_count=10"

# ---------------------------------------------------------------- this tree
start now "$NOW_BIN"
NOW=http://127.0.0.1:$PORT
ADMIN=$(cat "$SCRATCH/now/admin.token")
X_NOW=$(seed "$NOW" "$ADMIN" Organization/bench-clinic)
[[ -n $X_NOW ]] || die "seeding gave no Observation id"
CLINIC=$("$NOW_BIN" token create --data "$SCRATCH/now" --role clinic --subject Organization/bench-clinic 2>/dev/null)
PATIENT=$("$NOW_BIN" token create --data "$SCRATCH/now" --role patient --subject Patient/bench-0 2>/dev/null)
AE_BEFORE=$(curl -s -H "Authorization: Bearer $ADMIN" "$NOW/fhir/AuditEvent?_count=0&_total=accurate" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')

run clinic_read 2 16 "$CLINIC" "$NOW/fhir/Observation/$X_NOW"
run patient_read 2 16 "$PATIENT" "$NOW/fhir/Observation/$X_NOW"
run clinic_search 2 16 "$CLINIC" "$NOW/fhir/Observation?$SEARCH_Q"
run patient_search 2 16 "$PATIENT" "$NOW/fhir/Observation?$SEARCH_Q"
run clinic_read_128 2 128 "$CLINIC" "$NOW/fhir/Observation/$X_NOW"
run clinic_read_1 1 1 "$CLINIC" "$NOW/fhir/Observation/$X_NOW"
run patient_read_1 1 1 "$PATIENT" "$NOW/fhir/Observation/$X_NOW"
run patient_read_128 2 128 "$PATIENT" "$NOW/fhir/Observation/$X_NOW"
AE_AFTER=$(curl -s -H "Authorization: Bearer $ADMIN" "$NOW/fhir/AuditEvent?_count=0&_total=accurate" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')

# ---------------------------------------------------------------- before
start before "$BEFORE_BIN"
BEFORE=http://127.0.0.1:$PORT
X_BEFORE=$(seed "$BEFORE" "")
[[ -n $X_BEFORE ]] || die "seeding gave no Observation id"
run before_read 2 16 "" "$BEFORE/fhir/Observation/$X_BEFORE"
run before_search 2 16 "" "$BEFORE/fhir/Observation?$SEARCH_Q"
run before_read_1 1 1 "" "$BEFORE/fhir/Observation/$X_BEFORE"
run before_read_128 2 128 "" "$BEFORE/fhir/Observation/$X_BEFORE"

# ---------------------------------------------------------------- bare
"$BARE" --listen 127.0.0.1:0 --port-file "$SCRATCH/bare.port" >"$SCRATCH/bare.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 300; i++)); do [[ -s $SCRATCH/bare.port ]] && break; sleep 0.05; done
BARE_URL=http://127.0.0.1:$(cat "$SCRATCH/bare.port")/fhir/Observation/x
run bare_read 2 16 "" "$BARE_URL"
run bare_read_1 1 1 "" "$BARE_URL"
run bare_read_128 2 128 "" "$BARE_URL"

# ---------------------------------------------------------------- in-process
log "the decision in-process (bench/consent_decision.c), 20 and 200 Consents"
DEC20=$("$ROOT/$BUILD_DIR/bench_consent_decision" "$SCRATCH/dec20" 20 50 20000 2>/dev/null)
DEC200=$("$ROOT/$BUILD_DIR/bench_consent_decision" "$SCRATCH/dec200" 200 10 20000 2>/dev/null)
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
MACHINE="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
{
  echo "# Reads under consent ($(date -u +%Y-%m-%d), $MACHINE)"
  echo
  echo "\`bash bench/consent.sh\` (BENCH_SECONDS=$BENCH_SECONDS BENCH_PATIENTS=$BENCH_PATIENTS BENCH_OBS=$BENCH_OBS, before = $BENCH_BEFORE)"
  echo
  echo "| request | clinic under consent, audited | patient's own | before issue 7 (anonymous) | bare libmicrohttpd | clinic / patient | patient / before |"
  echo "|---|---|---|---|---|---|---|"
  echo "| read, 16 connections (req/s) | $RPS_clinic_read | $RPS_patient_read | $RPS_before_read | $RPS_bare_read | $(ratio "$RPS_clinic_read" "$RPS_patient_read") | $(ratio "$RPS_patient_read" "$RPS_before_read") |"
  echo "| read, 128 connections (req/s) | $RPS_clinic_read_128 | $RPS_patient_read_128 | $RPS_before_read_128 | $RPS_bare_read_128 | $(ratio "$RPS_clinic_read_128" "$RPS_patient_read_128") | $(ratio "$RPS_patient_read_128" "$RPS_before_read_128") |"
  echo "| search patient+code _count=10, 16 connections (req/s) | $RPS_clinic_search | $RPS_patient_search | $RPS_before_search | – | $(ratio "$RPS_clinic_search" "$RPS_patient_search") | $(ratio "$RPS_patient_search" "$RPS_before_search") |"
  echo "| read, 1 connection: p50 (ms) | $P50_clinic_read_1 | $P50_patient_read_1 | $P50_before_read_1 | $P50_bare_read_1 | $(ratio "$P50_clinic_read_1" "$P50_patient_read_1") | $(ratio "$P50_patient_read_1" "$P50_before_read_1") |"
  echo
  echo "AuditEvents written during the clinic's runs: $((AE_AFTER - AE_BEFORE)) (one per answer)."
  echo
  echo "The decision in-process (\`bench/consent_decision.c\`, microseconds per call, 20000 calls):"
  echo
  echo "| Consents of the clinic | rules (cache to scope) | read under the rules | read under the patient's scope | decision = rules + difference | decision / patient's own HTTP read (p50, 1 connection) |"
  echo "|---|---|---|---|---|---|"
  for d in 20 200; do
    v=DEC$d
    dec=$(field decision_us "${!v}")
    echo "| $d | $(field rules_us "${!v}") | $(field read_rules_us "${!v}") | $(field read_patient_us "${!v}") | $dec | $(awk -v a="$dec" -v b="$P50_patient_read_1" 'BEGIN {printf "%.2f", a / (b * 1000)}') |"
  done
} | tee "$BENCH_RESULTS"
