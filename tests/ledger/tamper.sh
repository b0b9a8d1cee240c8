#!/usr/bin/env bash
# Ledger tamper tests: `vitalog verify` against exports, records and data
# directories that were changed after the fact. Every change must be caught
# (exit non-zero) and reported at the first bad entry or checkpoint.
#
#   usage: tamper.sh /path/to/vitalog
#   env:   KEEP=1 keep the scratch directory
#
# Scenario: a server on D takes writes (creates, updates, deletes), is
# stopped and restarted once (a copy taken in between, F, is the same log
# with the same key and later forks), and a second server on O has another
# key. Their exports, `vitalog export` and the databases themselves are then
# tampered with one change at a time.
#
# Where checkpoints land is fixed, never timed: the servers run with
# --checkpoint-ms at its maximum (an hour), so they sign at a clean stop,
# after a key rotation and when asked (GET /ledger/checkpoint,
# /ledger/export), and otherwise at most once: with the first write after a
# start, when the machine's monotonic clock (its uptime) is past
# --checkpoint-ms, because the server starts that interval at 0. So the
# script asks for a checkpoint right after each server's first write: it
# then lands there whatever the uptime, and the next timed one is an hour
# away. D's export holds checkpoints at sizes 1 and 21 (the first write
# after each start), 20 (the first stop), 30 and 38 (asked for); the script
# checks that layout, since the expected failure messages below name
# entries and checkpoints by it.
#
# Prints "ledger tamper: N passed, M failed" and exits non-zero on any failure.
# Only processes this script started are ever signalled (by their pid).
set -u

VITALOG=${1:?usage: tamper.sh /path/to/vitalog}
command -v curl >/dev/null || { echo "tamper.sh: curl is required" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "tamper.sh: sqlite3 is required" >&2; exit 2; }
command -v python3 >/dev/null || { echo "tamper.sh: python3 is required" >&2; exit 2; }
[ -x "$VITALOG" ] || { echo "tamper.sh: $VITALOG is not executable" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vl-tamper-XXXXXX")
D="$T/data"   # the log under test
F="$T/fork"   # a copy of D taken mid-way, then written differently (same key)
O="$T/other"  # another server, another key
PASS=0
FAIL=0
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

pass() { PASS=$((PASS + 1)); }
fail() { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }

# ---------------------------------------------------------------------------
# Servers

# start DIR NAME: starts a server on DIR; sets PORT_<NAME> and PID_<NAME>.
start() {
    local dir=$1 name=$2 pid port=
    mkdir -p "$dir"
    rm -f "$dir/port"
    "$VITALOG" serve --data "$dir" --listen 127.0.0.1:0 --port-file "$dir/port" \
        --checkpoint-ms 3600000 --log-level warn 2>>"$T/$name.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 1200); do # up to 60 s on a loaded machine
        if [ -s "$dir/port" ]; then
            port=$(cat "$dir/port")
            if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; then
                printf -v "PORT_$name" '%s' "$port"
                printf -v "PID_$name" '%s' "$pid"
                return 0
            fi
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "tamper.sh: server $name exited while starting; log:" >&2
            tail -20 "$T/$name.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "tamper.sh: server $name did not become ready" >&2
    exit 1
}

# stop NAME: SIGTERM, then wait for it to exit (it signs a last checkpoint).
stop() {
    local pid_var="PID_$1" rc
    kill -TERM "${!pid_var}"
    wait "${!pid_var}"
    rc=$?
    [ "$rc" = 0 ] || fail "server $1 exited with $rc on SIGTERM"
}

AUTH=()
auth() { # a bearer token once the server writes one
    AUTH=()
    [ -s "$1/admin.token" ] && AUTH=(-H "Authorization: Bearer $(cat "$1/admin.token")")
}

OBS='{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-06T10:00:00Z","valueQuantity":{"value":72.00,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'

# post PORT: creates an Observation, prints its id.
post() {
    curl -s -o /dev/null -D - "${AUTH[@]}" -X POST -H 'Content-Type: application/fhir+json' \
        --data-binary "$OBS" "http://127.0.0.1:$1/fhir/Observation" |
        tr -d '\r' | sed -n 's|^[Ll]ocation: .*/Observation/\([^/]*\)/_history/.*|\1|p'
}

# put PORT ID VALUE: updates an Observation; prints the status.
put() {
    local body=${OBS/\"resourceType\":\"Observation\",/\"resourceType\":\"Observation\",\"id\":\"$2\",}
    body=${body/72.00/$3}
    curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" -X PUT \
        -H 'Content-Type: application/fhir+json' --data-binary "$body" \
        "http://127.0.0.1:$1/fhir/Observation/$2"
}

del() {
    curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" -X DELETE \
        "http://127.0.0.1:$1/fhir/Observation/$2"
}

# checkpoint PORT SIZE: asks for a checkpoint; it must cover SIZE entries.
checkpoint() {
    local got
    got=$(curl -sf "${AUTH[@]}" "http://127.0.0.1:$1/ledger/checkpoint" | sed -n 2p)
    [ "$got" = "$2" ] || fail "GET /ledger/checkpoint signed size '$got', want $2"
}

# ---------------------------------------------------------------------------
# Checks

# ok NAME CMD...: CMD must exit 0.
ok() {
    local name=$1
    shift
    if "$@" >"$T/out" 2>"$T/err"; then
        pass
    else
        fail "$name: exit $? (want 0): $(head -c 600 "$T/err")"
    fi
}

# bad NAME EXPECT CMD...: CMD must exit non-zero (not from a crash or a
# sanitizer: 1 or 2) and its stderr must contain "FAILED at" and EXPECT.
bad() {
    local name=$1 expect=$2 rc
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" = 0 ]; then
        fail "$name: exit 0, want a failure naming '$expect'"
    elif [ "$rc" -gt 2 ]; then
        fail "$name: exit $rc (crash?): $(head -c 600 "$T/err")"
    elif ! grep -q 'FAILED at' "$T/err"; then
        fail "$name: no 'FAILED at' in stderr: $(head -c 600 "$T/err")"
    elif ! grep -qF -- "$expect" "$T/err"; then
        fail "$name: stderr does not name '$expect': $(head -c 600 "$T/err")"
    else
        pass
    fi
}

# line number (1-based) of entry N in an export
entry_line() { grep -n "^{\"index\":$2," "$1" | head -1 | cut -d: -f1; }

# python helpers for edits that are awkward in sed: json-aware, byte-exact
cat >"$T/edit.py" <<'EOF'
import json, sys

def other(c, alphabet):
    return alphabet[(alphabet.index(c) + 1) % len(alphabet)] if c in alphabet else alphabet[0]

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
HEX = "0123456789abcdef"
op, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
lines = open(src, "rb").read().split(b"\n")
if lines and lines[-1] == b"":
    lines.pop()

def cp_line(note):
    return json.dumps({"checkpoint": note}, separators=(",", ":"), ensure_ascii=False).encode()

if op == "entry-hex":            # entry N, member M: change one hex digit
    n, member = int(args[0]), args[1]
    prefix = b'{"index":%d,' % n
    i = next(k for k, l in enumerate(lines) if l.startswith(prefix))
    s = lines[i].decode()
    at = s.index('"%s":"' % member) + len(member) + 4 + 10
    lines[i] = (s[:at] + other(s[at], HEX) + s[at + 1:]).encode()
elif op == "entry-upper":        # entry N: one hex digit of the commitment uppercased
    prefix = b'{"index":%d,' % int(args[0])
    i = next(k for k, l in enumerate(lines) if l.startswith(prefix))
    s = lines[i].decode()
    at = s.index('"commitment":"') + 14
    while s[at] not in "abcdef":
        at += 1
    lines[i] = (s[:at] + s[at].upper() + s[at + 1:]).encode()
elif op in ("cp-root", "cp-sig", "cp-size"):  # the K-th checkpoint line (0-based)
    k = int(args[0])
    idx = [j for j, l in enumerate(lines) if l.startswith(b'{"checkpoint":')][k]
    note = json.loads(lines[idx])["checkpoint"]
    text, sigs = note.split("\n\n", 1)
    origin, size, root = text.split("\n")
    if op == "cp-root":
        root = root[:5] + other(root[5], B64) + root[6:]
    elif op == "cp-size":
        size = str(int(size) + 1)
    else:
        head, sig = sigs.rstrip("\n").rsplit(" ", 1)
        sig = sig[:40] + other(sig[40], B64) + sig[41:]
        sigs = head + " " + sig + "\n"
    lines[idx] = cp_line(origin + "\n" + size + "\n" + root + "\n\n" + sigs)
elif op == "cp-size-of":         # prints the size of the K-th checkpoint
    k = int(args[0])
    idx = [j for j, l in enumerate(lines) if l.startswith(b'{"checkpoint":')][k]
    print(json.loads(lines[idx])["checkpoint"].split("\n")[1])
    sys.exit(0)
elif op == "insert-after-entry": # insert line L of file X after entry N
    n, other_file, which = int(args[0]), args[1], args[2]
    olines = [l for l in open(other_file, "rb").read().split(b"\n") if l]
    ins = [l for l in olines if l.startswith(b'{"checkpoint":')][int(which)]
    prefix = b'{"index":%d,' % n
    i = next(k for k, l in enumerate(lines) if l.startswith(prefix))
    lines.insert(i + 1, ins)
elif op == "record-bytes":       # record line of ref R: one base64 char of bytes
    ref = args[0]
    i = next(k for k, l in enumerate(lines) if json.loads(l)["ref"] == ref)
    r = json.loads(lines[i])
    b = r["bytes"]
    r["bytes"] = b[:20] + other(b[20], B64) + b[21:]
    lines[i] = json.dumps(r, separators=(",", ":")).encode()
elif op == "record-salt":
    ref = args[0]
    i = next(k for k, l in enumerate(lines) if json.loads(l)["ref"] == ref)
    r = json.loads(lines[i])
    r["salt"] = other(r["salt"][0], HEX) + r["salt"][1:]
    lines[i] = json.dumps(r, separators=(",", ":")).encode()
else:
    sys.exit("unknown op " + op)
open(dst, "wb").write(b"\n".join(lines) + b"\n")
EOF
edit() { python3 "$T/edit.py" "$@"; }

# ---------------------------------------------------------------------------
# 1. Build the logs

start "$D" main
auth "$D"
P=$PORT_main
IDS=()
IDS+=("$(post "$P")")
checkpoint "$P" 1
for i in $(seq 2 20); do IDS+=("$(post "$P")"); done
[ "${#IDS[@]}" = 20 ] && [ -n "${IDS[19]}" ] || { echo "tamper.sh: creates failed" >&2; exit 1; }
stop main
cp -a "$D" "$F" && rm -f "$F/port"
start "$D" main
P=$PORT_main
IDS+=("$(post "$P")")
checkpoint "$P" 21
for i in $(seq 2 10); do IDS+=("$(post "$P")"); done
checkpoint "$P" 30
for i in 0 3 6 9 12; do
    [ "$(put "$P" "${IDS[$i]}" 80.00)" = 200 ] || fail "update of ${IDS[$i]}"
done
for i in 1 4 7; do # one DELETE each: a second could add an entry of its own
    code=$(del "$P" "${IDS[$i]}")
    [ "$code" = 200 ] || [ "$code" = 204 ] || fail "delete of ${IDS[$i]}: status $code"
done
start "$F" fork
auth "$F"
post "$PORT_fork" >/dev/null
checkpoint "$PORT_fork" 21
for i in 2 3; do post "$PORT_fork" >/dev/null; done
start "$O" other
auth "$O"
post "$PORT_other" >/dev/null
checkpoint "$PORT_other" 1
post "$PORT_other" >/dev/null
auth "$F"
checkpoint "$PORT_fork" 23
auth "$O"
checkpoint "$PORT_other" 2
auth "$D"
checkpoint "$P" 38
curl -sf "${AUTH[@]}" -o "$T/export.ndjson" "http://127.0.0.1:$P/ledger/export" || fail "GET /ledger/export"
curl -sf "${AUTH[@]}" -o "$T/vkey" "http://127.0.0.1:$P/ledger/key" || fail "GET /ledger/key"
auth "$F"
curl -sf "${AUTH[@]}" -o "$T/fork.ndjson" "http://127.0.0.1:$PORT_fork/ledger/export" || fail "fork export"
auth "$O"
curl -sf "${AUTH[@]}" -o "$T/other.ndjson" "http://127.0.0.1:$PORT_other/ledger/export" || fail "other export"
curl -sf "${AUTH[@]}" -o "$T/other.vkey" "http://127.0.0.1:$PORT_other/ledger/key" || fail "other key"

# a server holds DIR: rotation must refuse
if "$VITALOG" key rotate --data "$D" >"$T/out" 2>"$T/err"; then
    fail "key rotate while the server runs: exit 0"
elif grep -q 'in use' "$T/err"; then pass; else fail "key rotate while serving: $(cat "$T/err")"; fi

stop main
stop fork
stop other

VKEY=$(tr -d '\n' <"$T/vkey")
ENTRIES=$(grep -c '^{"index":' "$T/export.ndjson")
[ "$ENTRIES" -ge 38 ] || fail "export has $ENTRIES entries, want >= 38"
"$VITALOG" export --data "$D" --records >"$T/records.ndjson" 2>"$T/err" || fail "export --records: $(cat "$T/err")"
"$VITALOG" export --data "$D" -o "$T/cli-export.ndjson" 2>"$T/err" || fail "export: $(cat "$T/err")"
[ "$(wc -l <"$T/records.ndjson")" -ge 38 ] || fail "records export: $(wc -l <"$T/records.ndjson") lines"
echo "log: $ENTRIES entries, $(grep -c '^{"checkpoint":' "$T/export.ndjson") checkpoints; $(wc -l <"$T/records.ndjson") records"
# the layout the expectations below rely on (see the top of this file)
CPS=$(grep '^{"checkpoint":' "$T/export.ndjson" | python3 -c 'import json, sys
print(" ".join(json.loads(l)["checkpoint"].split("\n")[1] for l in sys.stdin))')
[ "$ENTRIES" = 38 ] && [ "$CPS" = "1 20 21 30 38" ] && pass ||
    fail "export: $ENTRIES entries, checkpoints at sizes '$CPS'; want 38 entries, checkpoints at '1 20 21 30 38'"

# ---------------------------------------------------------------------------
# 2. What is intact verifies

V=("$VITALOG" verify)
ok "export verifies" "${V[@]}" --key "$VKEY" "$T/export.ndjson"
grep -q "OK: $ENTRIES entries" "$T/out" && pass || fail "summary: $(cat "$T/out")"
ok "key as a file" "${V[@]}" --key "$T/vkey" "$T/export.ndjson"
ok "export on stdin" sh -c '"$1" verify --key "$2" - <"$3"' _ "$VITALOG" "$VKEY" "$T/export.ndjson"
ok "export + records" "${V[@]}" --key "$VKEY" --records "$T/records.ndjson" "$T/export.ndjson"
ok "vitalog export verifies" "${V[@]}" --key "$VKEY" --records "$T/records.ndjson" "$T/cli-export.ndjson"
ok "data dir verifies" "${V[@]}" --data "$D"
ok "several keys, one trusted" "${V[@]}" --key "$T/other.vkey" --key "$VKEY" "$T/export.ndjson"
ok "fork verifies on its own" "${V[@]}" --key "$VKEY" "$T/fork.ndjson"
ok "other verifies on its own" "${V[@]}" --key "$T/other.vkey" "$T/other.ndjson"

# ---------------------------------------------------------------------------
# 3. Tampered exports

X="$T/x.ndjson"
E=$T/export.ndjson
LAST=$((ENTRIES - 1))

edit entry-upper "$E" "$X" 5 && bad "non-canonical entry 5" "entry 5" "${V[@]}" --key "$VKEY" "$X"
# a changed commitment keeps entry 5 well-formed: entry 6's prev no longer
# names its hash, and entry 6 itself still chains on: entry 5 was altered
edit entry-hex "$E" "$X" 5 commitment && bad "commitment of entry 5" "entry 5: altered" "${V[@]}" --key "$VKEY" "$X"
edit entry-hex "$E" "$X" 9 prev && bad "prev of entry 9" "entry 9: altered" "${V[@]}" --key "$VKEY" "$X"
# the last entry has no successor: the final checkpoint's root catches it
edit entry-hex "$E" "$X" "$LAST" commitment &&
    bad "commitment of the last entry" "checkpoint at size $ENTRIES" "${V[@]}" --key "$VKEY" "$X"

CP0=$(edit cp-size-of "$E" /dev/null 0)
edit cp-root "$E" "$X" 0 && bad "root of a checkpoint" "checkpoint at size $CP0" "${V[@]}" --key "$VKEY" "$X"
edit cp-sig "$E" "$X" 0 && bad "signature of a checkpoint" "checkpoint at size $CP0" "${V[@]}" --key "$VKEY" "$X"
edit cp-size "$E" "$X" 0 && bad "size of a checkpoint" "checkpoint at size" "${V[@]}" --key "$VKEY" "$X"

L=$(entry_line "$E" 7)
sed "${L}d" "$E" >"$X" && bad "entry 7 deleted" "entry 7" "${V[@]}" --key "$VKEY" "$X"
L3=$(entry_line "$E" 3)
L4=$(entry_line "$E" 4)
awk -v a="$L3" -v b="$L4" 'NR==FNR { if (FNR==a) la=$0; if (FNR==b) lb=$0; next }
     FNR==a { print lb; next } FNR==b { print la; next } { print }' "$E" "$E" >"$X" &&
    bad "entries 3 and 4 swapped" "entry 3" "${V[@]}" --key "$VKEY" "$X"
L=$(entry_line "$E" 2)
sed "${L}p" "$E" >"$X" && bad "entry 2 duplicated" "entry 3" "${V[@]}" --key "$VKEY" "$X"
L=$(entry_line "$E" 10)
head -n "$L" "$E" >"$X" && bad "truncated after entry 10" "FAILED" "${V[@]}" --key "$VKEY" "$X"
head -n "$(($(wc -l <"$E") - 1))" "$E" >"$X" &&
    bad "final checkpoint removed" "FAILED" "${V[@]}" --key "$VKEY" "$X"
head -c "$(($(wc -c <"$E") - 30))" "$E" >"$X" &&
    bad "cut inside the last line" "line $(wc -l <"$E")" "${V[@]}" --key "$VKEY" "$X"
: >"$X" && bad "empty export" "FAILED" "${V[@]}" --key "$VKEY" "$X"
{ sed -n "1,$(($(entry_line "$E" 4) - 1))p" "$E"; echo; sed -n "$(entry_line "$E" 4),\$p" "$E"; } >"$X" &&
    bad "blank line" "line $(entry_line "$E" 4)" "${V[@]}" --key "$VKEY" "$X"
{ sed -n "1,2p" "$E"; echo '{"hello":"world"}'; sed -n '3,$p' "$E"; } >"$X" &&
    bad "unknown line shape" "line 3" "${V[@]}" --key "$VKEY" "$X"
{ sed -n "1,2p" "$E"; printf '{"index":%070000d}\n' 0; sed -n '3,$p' "$E"; } >"$X" &&
    bad "overlong line" "line 3" "${V[@]}" --key "$VKEY" "$X"
sed 's/$/\r/' "$E" >"$X" && bad "CRLF line ends" "entry 0" "${V[@]}" --key "$VKEY" "$X"

# another log's key: no checkpoint of this log is signed by it
bad "verified with another key" "checkpoint at size" "${V[@]}" --key "$T/other.vkey" "$E"
# a checkpoint of another log (another key) inserted into this one
edit insert-after-entry "$E" "$X" 1 "$T/other.ndjson" -1 &&
    bad "another log's checkpoint inserted" "checkpoint at size" "${V[@]}" --key "$VKEY" "$X"
# a fork: same key, same origin, the first 20 entries shared; its checkpoint
# at a size beyond 20 is inconsistent with this log's entries
FSIZE=$(edit cp-size-of "$T/fork.ndjson" /dev/null -1)
if [ "$FSIZE" -gt 20 ] && [ "$FSIZE" -le "$ENTRIES" ]; then
    edit insert-after-entry "$E" "$X" "$((FSIZE - 1))" "$T/fork.ndjson" -1 &&
        bad "a forked checkpoint (same key) inserted" "checkpoint at size $FSIZE" \
            "${V[@]}" --key "$VKEY" "$X"
else
    fail "fork checkpoint size $FSIZE not in (20, $ENTRIES]"
fi
# two histories joined: the fork's head (its own entries 20..) and this log's tail
FL=$(entry_line "$T/fork.ndjson" "$((FSIZE - 1))")
{ sed -n "1,${FL}p" "$T/fork.ndjson"; sed -n "$(entry_line "$E" "$FSIZE"),\$p" "$E"; } >"$X" &&
    bad "fork head, this log's tail" "FAILED at entry $((FSIZE - 1))" "${V[@]}" --key "$VKEY" "$X"

# ---------------------------------------------------------------------------
# 4. Tampered records

R=$T/records.ndjson
REF12=$(grep '^{"index":12,' "$E" | sed 's/.*"ref":"\([^"]*\)".*/\1/')
edit record-bytes "$R" "$X" "$REF12" &&
    bad "record bytes changed" "entry 12: record $REF12" "${V[@]}" --key "$VKEY" --records "$X" "$E"
edit record-salt "$R" "$X" "$REF12" &&
    bad "record salt changed" "entry 12: record $REF12" "${V[@]}" --key "$VKEY" --records "$X" "$E"
{ sed -n '2p' "$R"; sed -n '1p' "$R"; sed -n '3,$p' "$R"; } >"$X" &&
    bad "records out of order" "$(sed -n '1p' "$R" | sed 's/.*"ref":"\([^"]*\)".*/\1/')" \
        "${V[@]}" --key "$VKEY" --records "$X" "$E"
{ cat "$R"; sed -n '1p' "$R" | sed 's|/_history/1"|/_history/99"|'; } >"$X" &&
    bad "record of an unknown version" "_history/99" "${V[@]}" --key "$VKEY" --records "$X" "$E"

# ---------------------------------------------------------------------------
# 5. Tampered databases (each on a copy of D)

tampered_copy() { rm -rf "$T/db"; cp -a "$D" "$T/db"; }

tampered_copy
IDX=$(sqlite3 "$T/db/vitalog.db" "SELECT ledger_idx FROM resource_version WHERE rowid = 3")
N=$(sqlite3 "$T/db/vitalog.db" "UPDATE resource_version SET body = replace(body, '72.00', '72.01') WHERE rowid = 3; SELECT changes();")
[ "$N" = 1 ] || fail "db: the body update changed $N rows"
bad "db: record body changed" "entry $IDX" "${V[@]}" --data "$T/db"

tampered_copy
sqlite3 "$T/db/vitalog.db" "UPDATE resource_version SET salt = zeroblob(32) WHERE ledger_idx = 8"
bad "db: record salt changed" "entry 8" "${V[@]}" --data "$T/db"

tampered_copy
sqlite3 "$T/db/vitalog.db" "UPDATE ledger_entry SET line = replace(line, '\"kind\":\"create\"', '\"kind\":\"update\"') WHERE idx = 4"
bad "db: entry 4's kind changed" "entry 4" "${V[@]}" --data "$T/db"

tampered_copy
sqlite3 "$T/db/vitalog.db" "UPDATE ledger_entry SET line = substr(line, 1, instr(line, '\"commitment\":\"') + 13) || CASE substr(line, instr(line, '\"commitment\":\"') + 14, 1) WHEN '0' THEN '1' ELSE '0' END || substr(line, instr(line, '\"commitment\":\"') + 15) WHERE idx = 6"
bad "db: entry 6's commitment changed" "entry 6" "${V[@]}" --data "$T/db"

tampered_copy
sqlite3 "$T/db/vitalog.db" "DELETE FROM ledger_entry WHERE idx = 11"
bad "db: entry 11 deleted" "entry 11" "${V[@]}" --data "$T/db"

tampered_copy
sqlite3 "$T/db/vitalog.db" "UPDATE ledger_checkpoint SET note = replace(note, char(10) || char(10), char(10) || char(10) || ' ') WHERE size = (SELECT max(size) FROM ledger_checkpoint)"
bad "db: last checkpoint's note changed" "checkpoint at size" "${V[@]}" --data "$T/db"

tampered_copy
sqlite3 "$T/db/vitalog.db" "UPDATE resource_version SET ledger_idx = NULL WHERE ledger_idx = 13; UPDATE resource_version SET ledger_idx = 13 WHERE ledger_idx = 14"
bad "db: record moved to another entry" "entry 13" "${V[@]}" --data "$T/db"

# ---------------------------------------------------------------------------
# 6. Key rotation

OLD=$VKEY
if "$VITALOG" key rotate --data "$D" >"$T/out" 2>"$T/err"; then pass; else fail "key rotate: $(cat "$T/err")"; fi
NEW=$(tr -d '\n' <"$T/out")
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] || fail "rotation printed '$NEW' (old $OLD)"
[ "$(tr -d '\n' <"$D/ledger.vkey")" = "$NEW" ] || fail "ledger.vkey is not the new key"
[ "$("$VITALOG" key show --data "$D" 2>/dev/null)" = "$NEW" ] && pass || fail "key show after rotate"
[ "$(stat -c %a "$D/ledger.key")" = 600 ] && pass || fail "ledger.key mode $(stat -c %a "$D/ledger.key")"
[ ! -e "$D/ledger.key.next" ] && pass || fail "ledger.key.next left behind"
ok "data dir verifies after rotation" "${V[@]}" --data "$D"
start "$D" main
auth "$D"
post "$PORT_main" >/dev/null
checkpoint "$PORT_main" 40 # 38 is the rotation entry, 39 its checkpoint's size
for i in 2 3; do post "$PORT_main" >/dev/null; done
curl -sf "${AUTH[@]}" -o "$T/vkey2" "http://127.0.0.1:$PORT_main/ledger/key" || fail "GET /ledger/key after rotation"
[ "$(tr -d '\n' <"$T/vkey2")" = "$NEW" ] && pass || fail "server serves $(cat "$T/vkey2"), want $NEW"
stop main
"$VITALOG" export --data "$D" -o "$T/rotated.ndjson" 2>"$T/err" || fail "export after rotation: $(cat "$T/err")"
grep -q '"kind":"key-rotation"' "$T/rotated.ndjson" && pass || fail "no rotation entry in the export"
ok "old key verifies through the rotation" "${V[@]}" --key "$OLD" "$T/rotated.ndjson"
ok "data dir verifies after rotation and writes" "${V[@]}" --data "$D"
bad "new key alone cannot vouch for old checkpoints" "checkpoint at size" "${V[@]}" --key "$NEW" "$T/rotated.ndjson"
RIDX=$(grep '"kind":"key-rotation"' "$T/rotated.ndjson" | sed 's/{"index":\([0-9]*\),.*/\1/')
edit entry-hex "$T/rotated.ndjson" "$X" "$RIDX" prev &&
    bad "rotation entry's prev changed" "entry $RIDX" "${V[@]}" --key "$OLD" "$X"
sed 's/"kind":"key-rotation","key":"\([^+]*\)+[0-9a-f]*+/"kind":"key-rotation","key":"\1+00000000+/' "$T/rotated.ndjson" >"$X" &&
    bad "rotation entry names another key" "entry $RIDX" "${V[@]}" --key "$OLD" "$X"

# ---------------------------------------------------------------------------
# 7. Usage errors are not verification results

"${V[@]}" "$E" >/dev/null 2>&1; [ $? = 2 ] && pass || fail "verify without --key: want exit 2"
"${V[@]}" --key "not-a-key" "$E" >/dev/null 2>&1; [ $? = 2 ] && pass || fail "verify with a bad key: want exit 2"
"${V[@]}" --key "$D/ledger.key" "$E" >/dev/null 2>"$T/err"; [ $? = 2 ] && grep -q 'private' "$T/err" && pass ||
    fail "verify with the private key: want exit 2 and a hint"
"${V[@]}" --key "$OLD" "$T/nonexistent" >/dev/null 2>&1; [ $? = 1 ] && pass || fail "missing export: want exit 1"
"$VITALOG" export --data "$T/nonexistent" >/dev/null 2>&1; [ $? = 1 ] && pass || fail "export of a missing dir"
[ ! -e "$T/nonexistent" ] && pass || fail "export created the missing dir"
for c in verify export key; do
    "$VITALOG" $c --help >/dev/null 2>&1 && pass || fail "$c --help"
done

echo "ledger tamper: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
