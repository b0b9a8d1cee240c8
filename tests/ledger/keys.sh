#!/usr/bin/env bash
# The keys list (docs/ledger.md 5.1) end to end, with the real binary: a
# server takes writes, is stopped, its key rotated (twice), restarted and
# written to again; `vitalog key list` must print exactly the document an
# auditor builds from DIR/ledger.vkey.history, DIR/ledger.vkey and the
# export's rotation indices; `vitalog verify --keys` accepts it, and fails
# for every wrong list (keys swapped, a wrong from, a missing key, an extra
# key, another first key) with the documented message.
#
#   usage: keys.sh /path/to/vitalog
#   env:   KEEP=1 keep the scratch directory
#
# Deterministic: servers run with a checkpoint timer that never fires during
# the test (--checkpoint-ms 3600000); checkpoints are requested explicitly
# (GET /ledger/checkpoint) or signed at stop and by `vitalog export`. Waits
# are for events (a port file, a ready server, an exit), never for time.
# Prints "ledger keys: N passed, M failed"; exits non-zero on any failure.
set -u

VITALOG=${1:?usage: keys.sh /path/to/vitalog}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v curl >/dev/null || { echo "keys.sh: curl is required" >&2; exit 2; }
[ -x /usr/bin/python3 ] || { echo "keys.sh: /usr/bin/python3 is required" >&2; exit 2; }
[ -x "$VITALOG" ] || { echo "keys.sh: $VITALOG is not executable" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vl-keys-XXXXXX")
. "$HERE/lib.sh"
trap lib_cleanup EXIT

D=$T/data
E=$T/export.ndjson
K=$T/keys.json

finish() {
    echo "ledger keys: $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit
}

# serve: starts a server on D (sets SERVER_PID, BASE); the checkpoint timer
# is an hour, so only explicit requests, stops and exports sign checkpoints.
serve() {
    local i port
    rm -f "$D/port"
    "$VITALOG" serve --data "$D" --listen 127.0.0.1:0 --port-file "$D/port" \
        --checkpoint-ms 3600000 --log-level warn >>"$T/server.log" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    for i in $(seq 1 2400); do # up to 2 minutes on a loaded machine
        if [ -s "$D/port" ]; then
            port=$(cat "$D/port")
            BASE="http://127.0.0.1:$port"
            remember_token "$D"
            [ "$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] && return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "keys.sh: the server on $D did not start; log:" >&2
    tail -20 "$T/server.log" >&2
    return 1
}

# halt: SIGTERM and wait for the exit (the server signs a last checkpoint).
halt() {
    kill -TERM "$SERVER_PID" 2>/dev/null
    if wait "$SERVER_PID"; then pass "server stops cleanly"; else fail "server exit status $?"; fi
}

# write N: N creates over HTTP, each with its receipt.
write() {
    local n i code
    for i in $(seq 1 "$1"); do
        n=$((${NWRITES:-0} + 1))
        NWRITES=$n
        observation_body "$n" >"$T/body.json"
        code=$(http POST "$BASE/fhir/Observation" "$T/w" "$T/body.json")
        if [ "$code" = 201 ] && [ -n "$(header "$T/w.hdr" X-Ledger-Index)" ]; then :; else
            fail "create $n: status $code"
        fi
    done
}

# checkpoint: asks for a checkpoint covering every entry.
checkpoint() {
    local code
    code=$(http GET "$BASE/ledger/checkpoint" "$T/cp")
    [ "$code" = 200 ] && pass "GET /ledger/checkpoint" || fail "GET /ledger/checkpoint: $code"
}

# fails_with DESC EXIT TEXT CMD...: CMD exits with EXIT and its stderr holds
# TEXT (fixed string).
fails_with() {
    local d=$1 want=$2 text=$3 rc
    shift 3
    "$@" >"$T/last.out" 2>"$T/last.err"
    rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$d: exit $rc, want $want: $(head -c 400 "$T/last.err")"
    elif ! grep -qF -- "$text" "$T/last.err"; then
        fail "$d: stderr does not say '$text': $(head -c 400 "$T/last.err")"
    else
        pass "$d -> $(head -c 200 "$T/last.err" | tr '\n' ' ')"
    fi
}

# ---------------------------------------------------------------------------
# 1. A log with two key rotations

serve || { fail "server starts"; finish; }
write 3
checkpoint
halt
K0=$(cat "$D/ledger.vkey")
expect_ok "key list before any rotation" "$VITALOG" key list --data "$D"
ORIGIN=${K0%%+*}
printf '{"origin":"%s","keys":[{"key":"%s","from":0}]}\n' "$ORIGIN" "$K0" >"$T/want0.json"
cmp -s "$T/last.out" "$T/want0.json" && pass "key list: the first key alone" ||
    fail "key list before rotation: $(cat "$T/last.out")"

expect_ok "key rotate (1)" "$VITALOG" key rotate --data "$D"
K1=$(cat "$D/ledger.vkey")
serve || { fail "server starts after rotation 1"; finish; }
write 2
checkpoint
halt

expect_ok "key rotate (2)" "$VITALOG" key rotate --data "$D"
K2=$(cat "$D/ledger.vkey")
serve || { fail "server starts after rotation 2"; finish; }
write 2
checkpoint
# key list may run while the server serves
expect_ok "key list while the server runs" "$VITALOG" key list --data "$D"
cp "$T/last.out" "$T/keys-live.json"
# GET /ledger/keys, once the route exists, serves the same bytes
code=$(http GET "$BASE/ledger/keys" "$T/route")
case $code in
    200) cmp -s "$T/route.body" "$T/keys-live.json" && pass "GET /ledger/keys = key list" ||
            fail "GET /ledger/keys differs from key list: $(head -c 300 "$T/route.body")" ;;
    404) echo "skip GET /ledger/keys (no such route in this build)" ;;
    *) fail "GET /ledger/keys: status $code" ;;
esac
halt

[ "$K0" != "$K1" ] && [ "$K1" != "$K2" ] && [ "${K1%%+*}" = "$ORIGIN" ] && pass "rotated keys keep the origin" ||
    fail "rotated keys: $K0 / $K1 / $K2"
expect_ok "export" "$VITALOG" export --data "$D" -o "$E"

# ---------------------------------------------------------------------------
# 2. The auditor's own document, from the key files and the export

"$PY" - "$D/ledger.vkey.history" "$D/ledger.vkey" "$E" "$K" <<'EOF'
import json, sys
hist = [l.strip() for l in open(sys.argv[1]) if l.strip()]
current = open(sys.argv[2]).read().strip()
rot = []
for line in open(sys.argv[3], "rb"):
    if line.startswith(b'{"index":'):
        e = json.loads(line)
        if e["kind"] == "key-rotation":
            rot.append((e["index"], e["key"]))
assert len(hist) == 2 and len(rot) == 2, (hist, rot)
# each rotation names the key after the one it was signed with
assert [k for _, k in rot] == hist[1:] + [current], (rot, hist, current)
keys = [{"key": hist[0], "from": 0}] + [{"key": k, "from": i + 1, "rotation": i} for i, k in rot]
doc = {"origin": hist[0].split("+")[0], "keys": keys}
open(sys.argv[4], "w").write(json.dumps(doc, separators=(",", ":")) + "\n")
EOF
[ $? = 0 ] && pass "keys document built from ledger.vkey.history, ledger.vkey and the export" ||
    fail "building the keys document"
R1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][1]["rotation"])' "$K")
R2=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][2]["rotation"])' "$K")
N=$(grep -c '^{"index":' "$E")
[ "$R1" = 3 ] && [ "$R2" = 6 ] && pass "rotations at entries 3 and 6" || fail "rotations at $R1, $R2"

expect_ok "key list" "$VITALOG" key list --data "$D"
cmp -s "$T/last.out" "$K" && pass "key list prints exactly the auditor's document" ||
    fail "key list: $(cat "$T/last.out") want $(cat "$K")"
cmp -s "$T/keys-live.json" "$K" && pass "key list while serving gave the same bytes" ||
    fail "key list while serving: $(cat "$T/keys-live.json")"

# ---------------------------------------------------------------------------
# 3. verify --keys

expect_ok "verify --keys" "$VITALOG" verify --keys "$K" "$E"
grep -q "OK: $N entries, .*, 3 listed keys" "$T/last.out" && pass "summary counts the listed keys" ||
    fail "summary: $(cat "$T/last.out")"
expect_ok "verify --keys, export on stdin" sh -c '"$1" verify --keys "$2" - <"$3"' sh "$VITALOG" "$K" "$E"
expect_ok "verify --keys with the first key pinned by --key" \
    "$VITALOG" verify --keys "$K" --key "$K0" "$E"
expect_ok "verify --keys --data" "$VITALOG" verify --keys "$K" --data "$D"
expect_ok "verify --key (the first key) still works" "$VITALOG" verify --key "$K0" "$E"
fails_with "the list does not start from the pinned key" 1 \
    "FAILED at entry 0: the keys list begins with $K0, which is not a --key key" \
    "$VITALOG" verify --keys "$K" --key "$K1" "$E"

# variant OP...: writes $T/bad.json, the document changed by a Python edit
# of `keys` (a list of {"key","from"[,"rotation"]}).
variant() {
    "$PY" - "$K" "$T/bad.json" "$@" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
keys = doc["keys"]
extra = sys.argv[4] if len(sys.argv) > 4 else None
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(doc, separators=(",", ":")) + "\n")
EOF
}

# a key of the same origin that this log never had: rotate a copy
cp -a "$D" "$T/copy"
rm -f "$T/copy/vitalog.lock"
X=$("$VITALOG" key rotate --data "$T/copy" 2>/dev/null)
[ "${X%%+*}" = "$ORIGIN" ] && pass "a stranger key of the same origin" || fail "stranger key: $X"

variant 'keys[1]["key"], keys[2]["key"] = keys[2]["key"], keys[1]["key"]'
fails_with "keys 1 and 2 swapped" 1 \
    "FAILED at entry $R1: key rotation introduces $K1, but the keys list names $K2" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[1], keys[2] = keys[2], keys[1]'
fails_with "keys 1 and 2 swapped with their indices (newest first)" 2 \
    "keys[2].rotation is not after keys[1].rotation" "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[0]["key"], keys[1]["key"] = keys[1]["key"], keys[0]["key"]'
fails_with "keys 0 and 1 swapped" 1 "FAILED at checkpoint at size" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[1]["from"] += 1'
fails_with "a wrong from" 2 "keys[1].from must be rotation + 1" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[0]["from"] = 1'
fails_with "the first key with from 1" 2 "keys[0].from must be 0" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[1]["from"] += 1; keys[1]["rotation"] += 1'
fails_with "a wrong from and rotation (one entry late)" 1 \
    "FAILED at entry $R1: key rotation to $K1 is not in the keys list" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[1]["from"] -= 1; keys[1]["rotation"] -= 1'
fails_with "a wrong from and rotation (one entry early)" 1 \
    "FAILED at entry $((R1 - 1)): the keys list names a key rotation here (to $K1), but this entry is a create" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'del keys[1]'
fails_with "a missing key" 1 "FAILED at entry $R1: key rotation to $K1 is not in the keys list" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'del keys[2]'
fails_with "the last key missing" 1 \
    "FAILED at entry $R2: key rotation to $K2 is not in the keys list (it lists no further key)" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant "keys.append({'key': extra, 'from': $N + 1, 'rotation': $N})" "$X"
fails_with "an extra key after the log's end" 1 \
    "FAILED at entry $N: the keys list names a key rotation here (to $X), but the log has only $N entries" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant "keys.insert(1, {'key': extra, 'from': 2, 'rotation': 1})" "$X"
fails_with "an extra key at an ordinary entry" 1 \
    "FAILED at entry 1: the keys list names a key rotation here (to $X)" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[2]["key"] = extra' "$X"
fails_with "a key the log never rotated to" 1 \
    "FAILED at entry $R2: key rotation introduces $K2, but the keys list names $X" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[0]["key"] = extra' "$X"
fails_with "another first key" 1 "FAILED at checkpoint at size" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'keys[2]["key"] = keys[1]["key"]'
fails_with "a key listed twice" 2 "keys[2].key is listed twice" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
variant 'doc["origin"] = "other.example/log"'
fails_with "another origin" 2 "not like the origin" "$VITALOG" verify --keys "$T/bad.json" "$E"
printf '{"origin":"%s","keys":[' "$ORIGIN" >"$T/bad.json"
fails_with "a truncated document" 2 "not a ledger keys list" \
    "$VITALOG" verify --keys "$T/bad.json" "$E"
fails_with "--keys names no file" 2 "--keys $T/none.json" \
    "$VITALOG" verify --keys "$T/none.json" "$E"
# the list is checked against the data directory too
variant 'del keys[1]'
fails_with "verify --data with a missing key" 1 "FAILED at entry $R1: key rotation to $K1" \
    "$VITALOG" verify --keys "$T/bad.json" --data "$D"

# ---------------------------------------------------------------------------
# 4. key list fails closed on key files that do not match the ledger

cp -a "$D" "$T/bad-first"
{ echo "$X"; tail -n +2 "$D/ledger.vkey.history"; } >"$T/bad-first/ledger.vkey.history"
fails_with "key list with another first key" 1 \
    "entry $R1: key rotation is not signed by the key before it" \
    "$VITALOG" key list --data "$T/bad-first"
[ ! -s "$T/last.out" ] && pass "... and prints nothing" || fail "key list printed: $(cat "$T/last.out")"
fails_with "key list without a data directory" 1 "no data directory" \
    "$VITALOG" key list --data "$T/nowhere"
"$VITALOG" key --help | grep -q "key list" && pass "key --help names list" || fail "key --help"
"$VITALOG" verify --help | grep -q -- "--keys FILE" && pass "verify --help names --keys" ||
    fail "verify --help"

finish
