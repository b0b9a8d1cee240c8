#!/usr/bin/env bash
# The server checks its own ledger at start and refuses to serve when the
# chain's tail or the latest checkpoint is broken, saying where.
# usage: tests/ledger/startup.sh BUILD/vitalog
set -u
VITALOG=$1
T=$(mktemp -d "${TMPDIR:-/tmp}/vitalog-startup.XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "startup.sh: FAIL: $*" >&2; }

OBS='{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-06T10:00:00Z","valueQuantity":{"value":72.00,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'

# run DIR: starts a server, answers 0 if it became ready (wrote its port
# file) within 60 s, 1 if it exited first; leaves PID set. With
# --checkpoint-ms at its maximum no timed checkpoint lands mid-test: the
# database copied below holds the two signed on purpose, at sizes 1 and 6.
run() {
    rm -f "$1/port"
    "$VITALOG" serve --data "$1" --listen 127.0.0.1:0 --port-file "$1/port" \
        --checkpoint-ms 3600000 2>"$T/log" &
    PID=$!
    for _ in $(seq 1 1200); do
        [ -s "$1/port" ] && return 0
        kill -0 "$PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }

D="$T/data"
run "$D" || { echo "startup.sh: server did not start" >&2; exit 1; }
for i in 1 2 3 4 5 6; do
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/fhir+json' -d "$OBS" \
        -H "Authorization: Bearer $(cat "$D/admin.token")" \
        "http://127.0.0.1:$(cat "$D/port")/fhir/Observation" || fail "create $i"
    # the first write may get a timed checkpoint (when the uptime is past
    # --checkpoint-ms: the server starts that interval at 0); ask for it so
    # that it is there on every machine
    [ "$i" = 1 ] && { curl -sf -o /dev/null -H "Authorization: Bearer $(cat "$D/admin.token")" \
        "http://127.0.0.1:$(cat "$D/port")/ledger/checkpoint" ||
        fail "GET /ledger/checkpoint"; }
done
stop
cp "$D/vitalog.db" "$T/good.db"
cps=$(sqlite3 "$T/good.db" "SELECT group_concat(size, ' ') FROM (SELECT size FROM ledger_checkpoint ORDER BY size)")
[ "$cps" = "1 6" ] && pass || fail "checkpoints at sizes '$cps', want '1 6' (asked for; the clean stop)"

# expect_refusal WHAT SQL PATTERN: after SQL, serve must exit non-zero and
# stderr must match PATTERN; then the good database starts again.
expect_refusal() {
    cp "$T/good.db" "$D/vitalog.db"
    rm -f "$D/vitalog.db-wal" "$D/vitalog.db-shm"
    sqlite3 "$D/vitalog.db" "$2" || { fail "$1: sqlite3"; return; }
    if run "$D"; then
        fail "$1: the server started"
        stop
        return
    fi
    wait "$PID" 2>/dev/null
    if grep -q -- "$3" "$T/log"; then pass; else
        fail "$1: stderr does not say '$3':"; cat "$T/log" >&2
    fi
}

expect_refusal "changed entry" \
    "UPDATE ledger_entry SET line = replace(line, '\"kind\":\"create\"', '\"kind\":\"update\"') WHERE idx = 4" \
    "entry 4"
expect_refusal "deleted last entry" "DELETE FROM ledger_entry WHERE idx = 5" "ledger"
expect_refusal "deleted middle entry" "DELETE FROM ledger_entry WHERE idx = 2" "entry 2"
expect_refusal "checkpoint signature" \
    "UPDATE ledger_checkpoint SET note = replace(note, substr(note, -10, 4), 'AAAA')" \
    "checkpoint"
expect_refusal "forged stored hash" "UPDATE ledger_entry SET hash = zeroblob(32) WHERE idx = 3" "entry 3"

cp "$T/good.db" "$D/vitalog.db"
rm -f "$D/vitalog.db-wal" "$D/vitalog.db-shm"

# a lost secret key is never silently replaced
mv "$D/ledger.key" "$T/ledger.key"
vkey_before=$(cat "$D/ledger.vkey")
if run "$D"; then fail "started without its ledger key"; stop; else
    wait "$PID" 2>/dev/null
    grep -q "restore the ledger key" "$T/log" && pass || { fail "lost key: no clear message"; cat "$T/log" >&2; }
fi
[ ! -e "$D/ledger.key" ] && [ "$(cat "$D/ledger.vkey")" = "$vkey_before" ] && pass ||
    fail "lost key: key files were changed"
# both key files lost: the database still holds the ledger, so no new key
mv "$D/ledger.vkey" "$T/ledger.vkey"
if run "$D"; then fail "started with both key files lost"; stop; else
    wait "$PID" 2>/dev/null
    grep -q "database holds a ledger" "$T/log" && pass || { fail "both keys lost: no clear message"; cat "$T/log" >&2; }
fi
[ ! -e "$D/ledger.key" ] && [ ! -e "$D/ledger.vkey" ] && pass || fail "both keys lost: a key was created"
mv "$T/ledger.vkey" "$D/ledger.vkey"
mv "$T/ledger.key" "$D/ledger.key"

if run "$D"; then pass; stop; else fail "the untouched database did not start"; cat "$T/log" >&2; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
