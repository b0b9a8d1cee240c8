# Shared helpers for tests/ledger/*.sh (sourced, not run).
# Needs: VITALOG, T (scratch dir). Provides pass/fail counters, server start/
# stop (only processes started here are signalled, by pid), small HTTP helpers.

PASS=0
FAIL=0
SERVER_PIDS=()
declare -A TOKENS # base URL -> the admin token of the server there
PY=/usr/bin/python3

pass() { PASS=$((PASS + 1)); echo "ok   $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $*" >&2; }
# expect_ok DESC CMD...: CMD must exit 0.   expect_fail DESC CMD...: non-zero.
expect_ok() {
    local d=$1; shift
    if "$@" >"$T/last.out" 2>"$T/last.err"; then pass "$d"; else
        fail "$d (exit $?)"; sed 's/^/     | /' "$T/last.err" "$T/last.out" | head -20 >&2; fi
}
expect_fail() {
    local d=$1; shift
    if "$@" >"$T/last.out" 2>"$T/last.err"; then
        fail "$d (accepted, must be rejected)"; sed 's/^/     | /' "$T/last.out" | head -10 >&2
    else pass "$d -> $(head -c 160 "$T/last.err" | tr '\n' ' ')"; fi
}

# Timed checkpoints are pushed out of reach (--checkpoint-ms at its maximum,
# an hour) so that where checkpoints land never depends on how fast the
# machine is: a server started here signs one when asked
# (GET /ledger/checkpoint, /ledger/export, $ledger), after a key rotation,
# at a clean stop, and otherwise at most once: with its first write, if the
# machine's monotonic clock (its uptime) is past --checkpoint-ms, because
# the server starts that interval at 0. A test whose checks depend on the
# layout therefore asks for a checkpoint right after each server's first
# write (checkpoint_at): it lands there whatever the uptime, and the next
# timed one is an hour away.
CHECKPOINT_MS=3600000

# start_server DATADIR: starts vitalog on an ephemeral port; sets SERVER_PID and
# BASE (http://127.0.0.1:PORT). Returns 1 if it does not become ready (or
# exits) within 60 s: an upper bound for a loaded machine, not a timing.
start_server() {
    local d=$1
    mkdir -p "$d"
    rm -f "$d/port"
    "$VITALOG" serve --data "$d" --listen 127.0.0.1:0 --port-file "$d/port" \
        --checkpoint-ms "$CHECKPOINT_MS" >>"$d.log" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    local i port
    for i in $(seq 1 1200); do
        if [ -s "$d/port" ]; then
            port=$(cat "$d/port")
            BASE="http://127.0.0.1:$port"
            remember_token "$d"
            if [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] ||
               [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/fhir/metadata")" = 200 ]; then
                return 0
            fi
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server on $d exited while starting; log:" >&2
            tail -20 "$d.log" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "server on $d did not become ready; log:" >&2
    tail -20 "$d.log" >&2
    return 1
}

# stop_server PID: SIGTERM and wait for it to exit (SIGKILL after 60 s).
stop_server() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 1 600); do
        kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
        sleep 0.1
    done
    echo "server $p ignored SIGTERM for 60 s; killing it" >&2
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    return 1
}

# checkpoint_at BASE SIZE: GET /ledger/checkpoint must answer 200 with a
# checkpoint of exactly SIZE entries.
checkpoint_at() {
    local code size
    code=$(http GET "$1/ledger/checkpoint" "$T/checkpoint_at")
    size=$(sed -n 2p "$T/checkpoint_at.body")
    [ "$code" = 200 ] && [ "$size" = "$2" ] && pass "GET /ledger/checkpoint signs size $2" ||
        fail "GET /ledger/checkpoint: status $code, size '$size', want $2"
}

lib_cleanup() {
    local p
    for p in "${SERVER_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}

# observation_body N: the sample Observation, with a per-call value.
observation_body() {
    printf '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"2024-05-06T10:00:00Z","valueQuantity":{"value":%d.00,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}' \
        "$1" "$((60 + $1))"
}

# remember_token DATADIR: the bootstrap admin token of the server at BASE
# (written to DATADIR/admin.token before it listens), for http().
remember_token() {
    TOKENS[$BASE]=$(cat "$1/admin.token" 2>/dev/null || true)
}

# http METHOD URL OUTPREFIX [BODYFILE]: writes OUTPREFIX.body/.hdr, prints
# status. Sends the admin token of the server the URL names, or AS_TOKEN
# when set (e.g. a patient's: their own reads write no AuditEvent).
http() {
    local m=$1 url=$2 out=$3 body=${4:-} TOKEN=
    [[ $url =~ ^(http://[^/]+) ]] && TOKEN=${TOKENS[${BASH_REMATCH[1]}]:-}
    TOKEN=${AS_TOKEN:-$TOKEN}
    if [ -n "$body" ]; then
        curl -s -m 20 -X "$m" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/fhir+json' \
            --data-binary "@$body" -o "$out.body" -D "$out.hdr" -w '%{http_code}' "$url"
    else
        curl -s -m 20 -X "$m" -H "Authorization: Bearer $TOKEN" -o "$out.body" -D "$out.hdr" \
            -w '%{http_code}' "$url"
    fi
}

# header FILE NAME: value of a response header (case-insensitive), CR stripped.
header() {
    grep -i "^$2:" "$1" | tail -1 | sed 's/^[^:]*:[[:space:]]*//' | tr -d '\r'
}

# json_field FILE KEY: top-level string/number member of a JSON file.
json_field() {
    "$PY" -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# flip FILE LINE COL: replaces the character at LINE (1-based; -1 = last line),
# column COL (0-based; negative counts from the end) with a different
# base64/hex-alphabet character, in place.
flip() {
    "$PY" - "$@" <<'PYEOF'
import sys
path, ln, col = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
lines = data.split(b"\n")
trail = lines[-1] == b""
if trail:
    lines = lines[:-1]
i = ln - 1 if ln > 0 else len(lines) + ln
l = bytearray(lines[i])
c = chr(l[col])
# stay inside the character's own class (digit, lowercase hex, letter) so the
# change keeps the line well-formed and only the cryptography can catch it
for alphabet in ("0123456789", "abcdef", "ghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
    if c in alphabet:
        l[col] = ord(alphabet[(alphabet.index(c) + 1) % len(alphabet)])
        break
else:
    l[col] = ord("A")
lines[i] = bytes(l)
open(path, "wb").write(b"\n".join(lines) + (b"\n" if trail else b""))
PYEOF
}
