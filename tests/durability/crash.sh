#!/usr/bin/env bash
# Durability under kill -9: every write the server acknowledged (201 with a
# Location header) must read back, byte for byte, after the process is killed
# mid-stream and restarted on the same data directory (SQLite WAL recovery).
#
#   usage: crash.sh /path/to/vitalog
#   env:   ROUNDS (default 3)  kill/restart cycles
#          LOOPS  (default 4)  concurrent POST loops
#          ACKS   (default 40) acknowledged writes per round before the kill
#          KEEP=1 keep the scratch directory
#
# The kill is placed by a count, not a clock: each round waits until the
# loops have ACKS acknowledged writes on record, then sends kill -9 while
# they are still writing. A slow or loaded machine makes a round take
# longer; it does not make it test less.
#
# Prints "durability: N passed, M failed" and exits non-zero on any failure.
# Only processes this script started are ever signalled (by their pid).
set -u

VITALOG=${1:?usage: crash.sh /path/to/vitalog}
ROUNDS=${ROUNDS:-3}
LOOPS=${LOOPS:-4}
ACKS=${ACKS:-40}

command -v curl >/dev/null || { echo "crash.sh: curl is required" >&2; exit 2; }
[ -x "$VITALOG" ] || { echo "crash.sh: $VITALOG is not executable" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vl-crash-XXXXXX")
DATA="$T/data"
SERVER_PID=
LOOP_PIDS=()
PASS=0
FAIL=0

cleanup() {
    for p in "${LOOP_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
    wait 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

pass() { PASS=$((PASS + 1)); }
fail() { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }

# Starts the server on DATA; sets SERVER_PID and PORT. $1: log file. Gives
# up after 60 s (an upper bound for a loaded or sanitized build only).
start_server() {
    rm -f "$T/port"
    "$VITALOG" serve --data "$DATA" --listen 127.0.0.1:0 --port-file "$T/port" \
        --log-level warn 2>>"$1" &
    SERVER_PID=$!
    for _ in $(seq 1 1200); do
        if [ -s "$T/port" ]; then
            PORT=$(cat "$T/port")
            TOKEN=$(cat "$DATA/admin.token") # written before the server listens
            if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ]; then
                return 0
            fi
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited while starting; log:" >&2
            tail -20 "$1" >&2
            SERVER_PID=
            return 1
        fi
        sleep 0.05
    done
    echo "server did not become ready" >&2
    return 1
}

# One POST loop: $1 loop number, $2 round. Records "id<TAB>bodyfile" of every
# acknowledged create in $T/acked.$2.$1 (one write of one line, after the
# 201 arrived); stops at the first connection error.
post_loop() {
    local l=$1 r=$2 n=0 code id hdr body
    mkdir -p "$T/bodies"
    while :; do
        n=$((n + 1))
        hdr="$T/bodies/$r-$l-$n.hdr"
        body="$T/bodies/$r-$l-$n.json"
        # each body differs; the decimals carry trailing zeros that must survive
        printf '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"2024-05-06T10:00:00Z","valueQuantity":{"value":%d.%02d0,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"note":[{"text":"round %d loop %d seq %d \\u00e9"}]}' \
            "$l" "$((60 + n % 40))" "$((n % 100))" "$r" "$l" "$n" >"$T/bodies/$r-$l-$n.req"
        code=$(curl -s -m 10 -o "$body" -D "$hdr" -w '%{http_code}' -X POST \
            -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/fhir+json' -H 'Accept: application/fhir+json' \
            -H 'Prefer: return=representation' \
            --data-binary "@$T/bodies/$r-$l-$n.req" \
            "http://127.0.0.1:$PORT/fhir/Observation") || return 0
        if [ "$code" = 201 ]; then
            id=$(tr -d '\r' <"$hdr" | sed -n 's#^[Ll]ocation: .*/Observation/\([^/]*\)/_history/1$#\1#p')
            if [ -n "$id" ]; then
                printf '%s\t%s\n' "$id" "$body" >>"$T/acked.$r.$l"
            else
                echo "201 without a usable Location header ($hdr)" >>"$T/loop-errors"
            fi
        elif [ "$code" = 401 ] || [ "$code" = 403 ]; then
            echo "POST answered $code ($body): the loop stops" >>"$T/loop-errors"
            return 0
        elif [ "$code" != 000 ]; then
            echo "POST answered $code ($body)" >>"$T/loop-errors"
        fi
    done
}

# Checks every id acknowledged so far: 200 and the same bytes as the 201 body.
verify_all() {
    local id body got code
    cat "$T"/acked.* 2>/dev/null >"$T/acked-all" || :
    while IFS=$'\t' read -r id body; do
        got="$T/got.json"
        code=$(curl -s -m 10 -o "$got" -w '%{http_code}' -H 'Accept: application/fhir+json' \
            -H "Authorization: Bearer $TOKEN" \
            "http://127.0.0.1:$PORT/fhir/Observation/$id")
        if [ "$code" != 200 ]; then
            fail "Observation/$id was acknowledged but reads back $code"
        elif ! cmp -s "$got" "$body"; then
            fail "Observation/$id reads back different bytes than acknowledged"
        else
            pass
        fi
    done <"$T/acked-all"
}

mkdir -p "$DATA"
start_server "$T/server.log" || { fail "first start"; echo "durability: $PASS passed, $FAIL failed"; exit 1; }

for r in $(seq 1 "$ROUNDS"); do
    LOOP_PIDS=()
    for l in $(seq 1 "$LOOPS"); do
        post_loop "$l" "$r" &
        LOOP_PIDS+=($!)
    done
    # wait for ACKS acknowledged writes, then kill the server while the loops
    # are still writing (they stop only at a connection error, so at least
    # one must still be running for the kill to land mid-stream)
    running=$LOOPS
    while :; do
        acks=$(cat "$T"/acked."$r".* 2>/dev/null | wc -l)
        running=0
        for p in "${LOOP_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
        [ "$acks" -ge "$ACKS" ] || [ "$running" = 0 ] && break
        sleep 0.02
    done
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
    for p in "${LOOP_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    LOOP_PIDS=()
    total=$(cat "$T"/acked."$r".* 2>/dev/null | wc -l)
    echo "round $r: killed -9 after $acks acknowledged writes, with $running of $LOOPS loops" \
        "writing; $total acknowledged in all"
    if [ "$running" = 0 ]; then
        fail "round $r: every loop stopped after $acks acknowledged writes, before the kill" \
            "(want $ACKS; see $T/server.log)"
    fi

    # restart on the same directory: WAL recovery must bring everything back
    if start_server "$T/server.log"; then
        pass
    else
        fail "restart after kill -9 (round $r)"
        break
    fi
    verify_all
    # the restarted server still takes writes
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/fhir+json' \
        -H "Authorization: Bearer $TOKEN" --data-binary '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-06T10:00:00Z","valueQuantity":{"value":72.00,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}' \
        "http://127.0.0.1:$PORT/fhir/Observation")
    if [ "$code" = 201 ]; then pass; else fail "POST after restart answered $code"; fi
done

if [ -s "$T/loop-errors" ]; then
    sort "$T/loop-errors" | uniq -c | head -5 >&2
    fail "unexpected answers while writing ($(wc -l <"$T/loop-errors") of them)"
fi

# a clean stop (exit status 0; a sanitizer's report makes it non-zero), then
# the database must be consistent
if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
    rc=$?
    SERVER_PID=
    if [ "$rc" = 0 ]; then pass; else fail "the server exited with $rc on SIGTERM"; fi
fi
# the servers killed with -9 never got to exit: their sanitizer reports, if
# any, are only in the log
if grep -q 'Sanitizer' "$T/server.log"; then
    grep -m 5 -A 12 'Sanitizer' "$T/server.log" >&2
    fail "sanitizer reports in the server log"
fi
if command -v sqlite3 >/dev/null; then
    ic=$(sqlite3 "$DATA/vitalog.db" 'PRAGMA integrity_check' 2>&1)
    if [ "$ic" = ok ]; then pass; else fail "integrity_check: $ic"; fi
fi

echo "durability: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
