#!/usr/bin/env bash
# Builds the fixture tests/data/migration/v6/ (a data directory written by
# vitalog at commit 21e5480, schema version 6), v6-reads.tsv (what that
# server answered to a read of each resource) and v6-tokens.tsv (a patient's
# and a clinic's bearer token). See README.md next to this file for how it
# was run; tests/migration/upgrade.sh uses the result.
# usage: make_v6.sh OLD_VITALOG OUTDIR   (OUTDIR gets v6/ and the two files)
set -euo pipefail
VITALOG=$1
OUT=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/vitalog-make-v6.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
D=$T/data
mkdir -p "$OUT"

# as deployed behind a proxy: a public base URL (one Observation below
# refers to its patient by an absolute URL on it); the default
# --checkpoint-ms (1 s): the ledger gets timed checkpoints
BASE_URL=https://vitalog.example.org
"$VITALOG" serve --data "$D" --listen 127.0.0.1:0 --port-file "$D/port" \
    --base-url "$BASE_URL" >"$T/log" 2>&1 &
PID=$!
for _ in $(seq 1 1200); do
    [ -s "$D/port" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$T/log" >&2; exit 1; }
    sleep 0.05
done
[ -s "$D/port" ] || { echo "server did not start" >&2; exit 1; }
BASE="http://127.0.0.1:$(cat "$D/port")/fhir"
TOKEN=$(cat "$D/admin.token")

# put REF JSON: PUT (create or update), must answer 200 or 201
put() {
    local code
    code=$(curl -s -o "$T/resp" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/fhir+json' --data-binary "$2" "$BASE/$1")
    case $code in 200 | 201) ;; *) echo "PUT $1: $code $(cat "$T/resp")" >&2; exit 1 ;; esac
    REFS+=("$1")
}
REFS=()

VS='"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}]'
UOM=http://unitsofmeasure.org
# obs ID PATIENT LOINC DISPLAY EFFECTIVE(json member) VALUE UNIT CODE [EXTRA]
# (PATIENT: an id, or a reference with a slash, as it is)
obs() {
    local subject=Patient/$2
    [[ $2 == */* ]] && subject=$2
    printf '{"resourceType":"Observation","id":"%s","status":"final",%s,"code":{"coding":[{"system":"http://loinc.org","code":"%s","display":"%s"}],"text":"%s"},"subject":{"reference":"%s"},%s,"valueQuantity":{"value":%s,"unit":"%s","system":"%s","code":"%s"}%s}' \
        "$1" "$VS" "$3" "$4" "$4" "$subject" "$5" "$6" "$7" "$UOM" "$8" "${9:-}"
}
bp() { # bp ID PATIENT DATETIME SYS DIA
    printf '{"resourceType":"Observation","id":"%s","status":"final",%s,"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}],"text":"Blood pressure"},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"%s","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}]},"valueQuantity":{"value":%s,"unit":"mmHg","system":"%s","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}]},"valueQuantity":{"value":%s,"unit":"mmHg","system":"%s","code":"mm[Hg]"}}]}' \
        "$1" "$VS" "$2" "$3" "$4" "$UOM" "$5" "$UOM"
}

put Patient/p1 '{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:2.16.840.1.113883.2.9.4.3.2","value":"VN-0001"}],"name":[{"use":"official","family":"Nguyễn","given":["Thị","Lan"]}],"gender":"female","birthDate":"1980-03-04","address":[{"city":"Hà Nội","country":"VN"}]}'
put Patient/p2 '{"resourceType":"Patient","id":"p2","name":[{"family":"Παπαδοπούλου","given":["Ελένη"]}],"gender":"female","birthDate":"1991-11-23","address":[{"city":"Θεσσαλονίκη","country":"GR"}]}'
put Patient/p3 '{"resourceType":"Patient","id":"p3","name":[{"family":"Müller","given":["Jürgen"]}],"gender":"male","birthDate":"1975-01-01","telecom":[{"system":"phone","value":"+49 30 1234567"}]}'
put Device/dev1 '{"resourceType":"Device","id":"dev1","identifier":[{"system":"urn:example:serial","value":"SN-0001"}],"status":"active","manufacturer":"Acme Wearables","deviceName":[{"name":"Acme Band 2","type":"user-friendly-name"}],"type":{"coding":[{"system":"http://snomed.info/sct","code":"706767009","display":"Patient data recorder"}]},"patient":{"reference":"Patient/p1"}}'

DEV=',"device":{"reference":"Device/dev1"}'
# heart rate: p1 ten days at 08:00 in Hanoi (01:00Z), p2 five, p3 one period
v=64
for day in 01 02 03 04 05 06 07 08 09 10; do
    put Observation/hr-p1-$day "$(obs hr-p1-$day p1 8867-4 'Heart rate' \
        "\"effectiveDateTime\":\"2024-05-${day}T08:00:00+07:00\"" $v beats/minute /min "$DEV")"
    v=$((v + 2))
done
v=90
for day in 01 02 03 04 05; do
    put Observation/hr-p2-$day "$(obs hr-p2-$day p2 8867-4 'Heart rate' \
        "\"effectiveDateTime\":\"2024-05-${day}T19:30:00Z\"" $v beats/minute /min)"
    v=$((v + 2))
done
# one that names its patient by an absolute URL on the server's base
put Observation/hr-p2-06 "$(obs hr-p2-06 "$BASE_URL/fhir/Patient/p2" 8867-4 'Heart rate' \
    '"effectiveDateTime":"2024-05-06T19:30:00Z"' 99 beats/minute /min)"
sleep 1.5 # a timed checkpoint here
put Observation/hr-p3-01 "$(obs hr-p3-01 p3 8867-4 'Heart rate' \
    '"effectivePeriod":{"start":"2024-05-02T10:00:00Z","end":"2024-05-02T10:05:00Z"}' 88 beats/minute /min)"
# body weight: kg, one in [lb_av] (154.32 lb = 69.998 kg)
i=1
for w in 72.5 72.1 71.8 71.6; do
    put Observation/wt-p1-0$i "$(obs wt-p1-0$i p1 29463-7 'Body weight' \
        "\"effectiveDateTime\":\"2024-05-0${i}T07:00:00+07:00\"" $w kg kg)"
    i=$((i + 1))
done
put Observation/wt-p2-01 "$(obs wt-p2-01 p2 29463-7 'Body weight' '"effectiveDateTime":"2024-05-01T07:30:00+03:00"' 81 kg kg)"
put Observation/wt-p2-02 "$(obs wt-p2-02 p2 29463-7 'Body weight' '"effectiveDateTime":"2024-05-08T07:30:00+03:00"' 80.4 kg kg)"
put Observation/wt-p3-01 "$(obs wt-p3-01 p3 29463-7 'Body weight' '"effectiveDateTime":"2024-05-03T09:00:00+02:00"' 154.32 lb '[lb_av]')"
# body temperature: 37.0 Cel = 98.6 [degF]
put Observation/temp-p1-01 "$(obs temp-p1-01 p1 8310-5 'Body temperature' '"effectiveDateTime":"2024-05-02T09:00:00+07:00"' 37.0 C Cel)"
put Observation/temp-p1-02 "$(obs temp-p1-02 p1 8310-5 'Body temperature' '"effectiveDateTime":"2024-05-06T21:00:00+07:00"' 38.2 C Cel)"
put Observation/temp-p2-01 "$(obs temp-p2-01 p2 8310-5 'Body temperature' '"effectiveDateTime":"2024-05-03T08:00:00+03:00"' 98.6 F '[degF]')"
# blood pressure panels
put Observation/bp-p1-01 "$(bp bp-p1-01 p1 2024-05-01T08:05:00+07:00 118 76)"
put Observation/bp-p1-02 "$(bp bp-p1-02 p1 2024-05-07T08:05:00+07:00 142 91)"
put Observation/bp-p2-01 "$(bp bp-p2-01 p2 2024-05-02T19:35:00Z 121 79)"
put Observation/bp-p3-01 "$(bp bp-p3-01 p3 2024-05-03T09:05:00+02:00 130 85)"
# a consent (active, patient-privacy, permit access for Organization/o1)
put Consent/c1 '{"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/p1"},"dateTime":"2024-04-30T12:00:00Z","policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Organization/o1"}}],"action":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentaction","code":"access"}]}]}}'

# updates: hr-p1-05 72 -> 120 /min (version 2), p3's birth date (version 2)
put Observation/hr-p1-05 "$(obs hr-p1-05 p1 8867-4 'Heart rate' \
    '"effectiveDateTime":"2024-05-05T08:00:00+07:00"' 120 beats/minute /min "$DEV")"
put Patient/p3 '{"resourceType":"Patient","id":"p3","name":[{"family":"Müller","given":["Jürgen"]}],"gender":"male","birthDate":"1957-10-10","telecom":[{"system":"phone","value":"+49 30 1234567"}]}'
# a delete: wt-p2-01 (81 kg)
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" "$BASE/Observation/wt-p2-01")
[ "$code" = 200 ] || [ "$code" = 204 ] || { echo "DELETE: $code" >&2; exit 1; }

# a patient's token (p1) and a clinic's (Organization/o1, which c1 lets
# access p1's data): ROLE SUBJECT TOKEN
: >"$OUT/v6-tokens.tsv"
for rs in "patient Patient/p1" "clinic Organization/o1"; do
    read -r role subject <<<"$rs"
    printf '%s\t%s\t%s\n' "$role" "$subject" "$("$VITALOG" token create --data "$D" --role "$role" \
        --subject "$subject" --label "migration fixture" 2>/dev/null)" >>"$OUT/v6-tokens.tsv"
done

# what this server answers to a read of each resource: ref, status, body
: >"$OUT/v6-reads.tsv"
for ref in $(printf '%s\n' "${REFS[@]}" | sort -u); do
    code=$(curl -s -o "$T/resp" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/$ref")
    [ "$code" = 410 ] && : >"$T/resp"
    printf '%s\t%s\t%s\n' "$ref" "$code" "$(cat "$T/resp")" >>"$OUT/v6-reads.tsv"
done

kill -TERM "$PID"
wait "$PID" || true
PID=
sqlite3 "$D/vitalog.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
if [ -e "$D/vitalog.db-wal" ] || [ -e "$D/vitalog.db-shm" ]; then echo "WAL left" >&2; exit 1; fi
[ "$(sqlite3 "$D/vitalog.db" 'PRAGMA user_version')" = 6 ] || { echo "not schema 6" >&2; exit 1; }
"$VITALOG" verify --data "$D"

rm -rf "$OUT/v6"
mkdir -p "$OUT/v6"
for f in vitalog.db admin.token token.key ledger.key ledger.vkey; do
    cp "$D/$f" "$OUT/v6/$f"
done
# left out: port (--port-file) and vitalog.lock, which the server recreates
for f in "$D"/*; do
    case ${f##*/} in
    vitalog.db | admin.token | token.key | ledger.key | ledger.vkey | port | vitalog.lock) ;;
    *) echo "unexpected file in the data directory: $f" >&2; exit 1 ;;
    esac
done
du -sh "$OUT/v6"
