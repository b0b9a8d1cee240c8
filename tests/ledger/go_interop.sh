#!/usr/bin/env bash
# Ledger interop with the reference implementation of C2SP signed notes,
# golang.org/x/mod/sumdb/note (Debian golang-golang-x-mod-dev), plus an
# independent Go implementation of RFC 9162 inclusion- and consistency-proof
# verification (tests/ledger/go/notecheck.go).
#
#   usage: go_interop.sh /path/to/vitalog
#   env:   KEEP=1 keep the scratch directory
#
# Prints "go_interop: N passed, M failed"; exits non-zero on any failure and
# 77 (ctest SKIP_RETURN_CODE) when Go or golang.org/x/mod is not installed.
set -u

VITALOG=${1:?usage: go_interop.sh /path/to/vitalog}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GOPATH_DEB=${GOPATH_DEB:-/usr/share/gocode}
NPOST=${NPOST:-5}

command -v curl >/dev/null || { echo "go_interop.sh: curl is required" >&2; exit 2; }
[ -x "$VITALOG" ] || { echo "go_interop.sh: $VITALOG is not executable" >&2; exit 2; }
if ! command -v go >/dev/null || [ ! -f "$GOPATH_DEB/src/golang.org/x/mod/sumdb/note/note.go" ]; then
    echo "go_interop.sh: SKIP: needs go and $GOPATH_DEB/src/golang.org/x/mod (golang-golang-x-mod-dev)"
    exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/vl-go-interop-XXXXXX")
. "$HERE/lib.sh"
trap lib_cleanup EXIT

# --- build notecheck offline, GOPATH mode -----------------------------------
NOTECHECK=$T/notecheck
if ! GO111MODULE=off GOPATH="$GOPATH_DEB" GOCACHE="$T/gocache" GOFLAGS= \
        go build -o "$NOTECHECK" "$HERE/go/notecheck.go" 2>"$T/gobuild.err"; then
    # fallback: a private GOPATH whose src holds notecheck, with x/mod beside it
    mkdir -p "$T/gopath/src/notecheck" "$T/gopath/src/golang.org/x"
    cp "$HERE/go/notecheck.go" "$T/gopath/src/notecheck/"
    ln -s "$GOPATH_DEB/src/golang.org/x/mod" "$T/gopath/src/golang.org/x/mod"
    if ! (cd "$T/gopath/src/notecheck" && GO111MODULE=off GOPATH="$T/gopath:$GOPATH_DEB" \
            GOCACHE="$T/gocache" GOFLAGS= go build -o "$NOTECHECK" .) 2>>"$T/gobuild.err"; then
        cat "$T/gobuild.err" >&2
        echo "go_interop.sh: cannot build notecheck" >&2
        exit 2
    fi
fi

# --- harness sanity: public vectors -----------------------------------------
VEC=$REPO/tests/data/ledger/c2sp
[ -f "$VEC/c2sp-signed-note-example.note" ] || VEC=/work/shared/data/ledger/c2sp/vectors
if [ -f "$VEC/c2sp-signed-note-example.note" ]; then
    expect_ok "C2SP signed-note example verifies with x/mod/sumdb/note" \
        "$NOTECHECK" "$VEC/c2sp-signed-note-example.vkey" "$VEC/c2sp-signed-note-example.note"
    cp "$VEC/c2sp-signed-note-example.note" "$T/example.note"; chmod u+w "$T/example.note"
    flip "$T/example.note" 1 0
    expect_fail "C2SP example with a changed text byte is rejected" \
        "$NOTECHECK" "$VEC/c2sp-signed-note-example.vkey" "$T/example.note"
    expect_fail "C2SP example with another key is rejected" \
        "$NOTECHECK" "$VEC/go-sumdb-peterneumann.vkey" "$VEC/c2sp-signed-note-example.note"
else
    fail "C2SP example vectors not found (tests/data/ledger/c2sp or /work/shared)"
fi
if [ -d "$REPO/tests/data/ledger/rfc9162/inclusion" ]; then
    expect_ok "Go RFC 9162 inclusion/consistency verifiers pass transparency-dev vectors" \
        "$NOTECHECK" -vectors "$REPO/tests/data/ledger/rfc9162"
fi

# --- server A: writes, receipts ---------------------------------------------
A=$T/a
if ! start_server "$A"; then
    fail "server A starts"
    echo "go_interop: $PASS passed, $FAIL failed"
    exit 1
fi
PID_A=$SERVER_PID
BASE_A=$BASE

prev_index=
first_index=
declare -a HASHES
for n in $(seq 1 "$NPOST"); do
    observation_body "$n" >"$T/obs$n.json"
    code=$(http POST "$BASE_A/fhir/Observation" "$T/post$n" "$T/obs$n.json")
    idx=$(header "$T/post$n.hdr" X-Ledger-Index)
    eh=$(header "$T/post$n.hdr" X-Ledger-Entry-Hash)
    if [ "$code" != 201 ]; then
        fail "POST Observation $n: status $code: $(head -c 300 "$T/post$n.body")"
        continue
    fi
    if ! [[ "$idx" =~ ^(0|[1-9][0-9]*)$ ]]; then
        fail "POST $n: X-Ledger-Index is '$idx', want a decimal index"
        continue
    fi
    if ! [[ "$eh" =~ ^[0-9a-f]{64}$ ]]; then
        fail "POST $n: X-Ledger-Entry-Hash is '$eh', want 64 lowercase hex"
    fi
    HASHES[$idx]=$eh
    if [ -z "$prev_index" ]; then
        first_index=$idx
    elif [ "$idx" -ne $((prev_index + 1)) ]; then
        fail "POST $n: X-Ledger-Index $idx does not follow $prev_index by one"
    fi
    prev_index=$idx
done
[ "$prev_index" = "$((first_index + NPOST - 1))" ] &&
    pass "X-Ledger-Index of $NPOST POSTs increases by one ($first_index..$prev_index)" ||
    fail "X-Ledger-Index sequence: first $first_index last $prev_index for $NPOST POSTs"
[ "$first_index" = 0 ] && pass "first entry of a fresh log has index 0" ||
    fail "first entry of a fresh log has index '$first_index', docs/ledger.md section 2 says 0"

# --- checkpoint and key ------------------------------------------------------
code=$(http GET "$BASE_A/ledger/checkpoint" "$T/cp")
ctype=$(header "$T/cp.hdr" Content-Type)
cp "$T/cp.body" "$T/cp.note"
[ "$code" = 200 ] && pass "GET /ledger/checkpoint 200" ||
    fail "GET /ledger/checkpoint: status $code: $(head -c 300 "$T/cp.body")"
[[ "$ctype" == text/plain* ]] && pass "checkpoint is text/plain ($ctype)" ||
    fail "GET /ledger/checkpoint Content-Type '$ctype', want text/plain"
code=$(http GET "$BASE_A/ledger/key" "$T/key")
[ "$code" = 200 ] && pass "GET /ledger/key 200" ||
    fail "GET /ledger/key: status $code: $(head -c 300 "$T/key.body")"
KEY_A=$(tr -d '\r\n' <"$T/key.body")
[ -f "$A/ledger.vkey" ] && { [ "$(tr -d '\n' <"$A/ledger.vkey")" = "$KEY_A" ] &&
    pass "DATA/ledger.vkey equals GET /ledger/key" ||
    fail "DATA/ledger.vkey ($(cat "$A/ledger.vkey")) differs from GET /ledger/key ($KEY_A)"; }

expect_ok "checkpoint verifies with x/mod/sumdb/note and parses strictly as a C2SP checkpoint" \
    "$NOTECHECK" -checkpoint "$KEY_A" "$T/cp.note"
SIZE=$(sed -n 2p "$T/cp.note")
[ "$SIZE" = "$((prev_index + 1))" ] &&
    pass "checkpoint size $SIZE covers every acknowledged write" ||
    fail "checkpoint size '$SIZE', want $((prev_index + 1)) (GET /ledger/checkpoint signs uncovered entries first)"

# one byte of the root line, then of the signature
cp "$T/cp.note" "$T/cp-root.note"; flip "$T/cp-root.note" 3 5
expect_fail "checkpoint with a changed root byte is rejected" "$NOTECHECK" "$KEY_A" "$T/cp-root.note"
cp "$T/cp.note" "$T/cp-sig.note"; flip "$T/cp-sig.note" -1 -10
expect_fail "checkpoint with a changed signature byte is rejected" "$NOTECHECK" "$KEY_A" "$T/cp-sig.note"
cp "$T/cp.note" "$T/cp-size.note"; flip "$T/cp-size.note" 2 0
expect_fail "checkpoint with a changed size is rejected" "$NOTECHECK" "$KEY_A" "$T/cp-size.note"

# --- server B: another key must not verify A's checkpoint ---------------------
if start_server "$T/b"; then
    PID_B=$SERVER_PID
    code=$(http GET "$BASE/ledger/key" "$T/keyb")
    KEY_B=$(tr -d '\r\n' <"$T/keyb.body")
    if [ "$code" = 200 ] && [ -n "$KEY_B" ]; then
        [ "$KEY_B" != "$KEY_A" ] && pass "two data directories get different keys" ||
            fail "servers on two data directories share the key $KEY_A"
        expect_fail "checkpoint of server A with server B's key is rejected" \
            "$NOTECHECK" "$KEY_B" "$T/cp.note"
    else
        fail "GET /ledger/key on server B: status $code"
    fi
    stop_server "$PID_B"
else
    fail "server B starts"
fi

# --- inclusion proofs, verified in Go ----------------------------------------
if [[ "$SIZE" =~ ^[1-9][0-9]*$ ]]; then
    for ((i = 0; i < SIZE; i++)); do
        c1=$(http GET "$BASE_A/ledger/entries?start=$i&end=$((i + 1))" "$T/entry$i")
        c2=$(http GET "$BASE_A/ledger/proof/inclusion?index=$i&size=$SIZE" "$T/proof$i")
        if [ "$c1" != 200 ] || [ "$c2" != 200 ]; then
            fail "index $i: GET entries $c1, GET proof/inclusion $c2: $(head -c 200 "$T/proof$i.body")"
            continue
        fi
        nl=$(tr -cd '\n' <"$T/entry$i.body" | wc -c)
        [ "$nl" = 1 ] && [ "$(tail -c 1 "$T/entry$i.body" | od -An -c | tr -d ' ')" = '\n' ] ||
            fail "GET /ledger/entries?start=$i&end=$((i + 1)) is not exactly one \\n-terminated line"
        # the receipt's entry hash is SHA-256(0x00 || line)
        want=$({ printf '\0'; head -c -1 "$T/entry$i.body"; } | sha256sum | cut -c1-64)
        if [ -n "${HASHES[$i]:-}" ]; then
            [ "$want" = "${HASHES[$i]}" ] && pass "index $i: X-Ledger-Entry-Hash = SHA-256(0x00 || entry line)" ||
                fail "index $i: X-Ledger-Entry-Hash ${HASHES[$i]} != SHA-256(0x00 || line) $want"
        fi
        expect_ok "index $i: inclusion proof in tree of size $SIZE verifies in Go" \
            "$NOTECHECK" -inclusion "$T/entry$i.body" -proof "$T/proof$i.body" -index "$i" \
            "$KEY_A" "$T/cp.note"
    done
    # negative: a changed entry, and the proof of another index
    cp "$T/entry0.body" "$T/entry0-bad"; flip "$T/entry0-bad" 1 -5
    expect_fail "inclusion of a changed entry line is rejected" \
        "$NOTECHECK" -inclusion "$T/entry0-bad" -proof "$T/proof0.body" -index 0 "$KEY_A" "$T/cp.note"
    if [ "$SIZE" -ge 2 ] && [ -s "$T/proof1.body" ]; then
        "$PY" -c 'import json,sys; p=json.load(open(sys.argv[1])); p["index"]=0; print(json.dumps(p))' \
            "$T/proof1.body" >"$T/proof-swapped.json"
        expect_fail "entry 0 with the proof path of entry 1 is rejected" \
            "$NOTECHECK" -inclusion "$T/entry0.body" -proof "$T/proof-swapped.json" -index 0 \
            "$KEY_A" "$T/cp.note"
    fi
    code=$(http GET "$BASE_A/ledger/proof/inclusion?index=$SIZE&size=$SIZE" "$T/proof-oob")
    [[ "$code" == 4* ]] && pass "inclusion proof for index = size is refused ($code)" ||
        fail "GET /ledger/proof/inclusion?index=$SIZE&size=$SIZE: status $code, want 4xx"
else
    fail "no usable checkpoint size ('$SIZE'); inclusion proofs not checked"
fi

# --- consistency: a later checkpoint extends the first (RFC 9162 2.1.4) ----------
if [[ "$SIZE" =~ ^[1-9][0-9]*$ ]]; then
    for n in 1 2 3; do
        code=$(http POST "$BASE_A/fhir/Observation" "$T/post-more$n" "$T/obs$n.json")
        [ "$code" = 201 ] || fail "POST (more) $n: status $code"
    done
    http GET "$BASE_A/ledger/checkpoint" "$T/cp2" >/dev/null
    cp "$T/cp2.body" "$T/cp2.note"
    SIZE2=$(sed -n 2p "$T/cp2.note")
    [ "$SIZE2" = $((SIZE + 3)) ] && pass "new checkpoint covers the 3 later writes (size $SIZE2)" ||
        fail "new checkpoint size '$SIZE2', want $((SIZE + 3))"
    code=$(http GET "$BASE_A/ledger/proof/consistency?first=$SIZE&second=$SIZE2" "$T/cons")
    [ "$code" = 200 ] || fail "GET /ledger/proof/consistency?first=$SIZE&second=$SIZE2: status $code: $(head -c 200 "$T/cons.body")"
    expect_ok "checkpoint $SIZE2 is consistent with checkpoint $SIZE (Go, RFC 9162 2.1.4.2)" \
        "$NOTECHECK" -consistency "$T/cons.body" -old "$T/cp.note" "$KEY_A" "$T/cp2.note"
    "$PY" -c 'import json,sys,base64; p=json.load(open(sys.argv[1])); h=bytearray(base64.b64decode(p["hashes"][0])); h[0]^=1; p["hashes"][0]=base64.b64encode(bytes(h)).decode(); print(json.dumps(p))' \
        "$T/cons.body" >"$T/cons-bad.json"
    expect_fail "consistency proof with a changed hash is rejected" \
        "$NOTECHECK" -consistency "$T/cons-bad.json" -old "$T/cp.note" "$KEY_A" "$T/cp2.note"
    expect_fail "consistency proof against a forged old checkpoint (changed root) is rejected" \
        "$NOTECHECK" -consistency "$T/cons.body" -old "$T/cp-root.note" "$KEY_A" "$T/cp2.note"
    code=$(http GET "$BASE_A/ledger/proof/consistency?first=$SIZE2&second=$SIZE" "$T/cons-rev")
    [[ "$code" == 4* ]] && pass "consistency proof with first > second is refused ($code)" ||
        fail "GET /ledger/proof/consistency?first=$SIZE2&second=$SIZE: status $code, want 4xx"
fi

stop_server "$PID_A" && pass "server A stops on SIGTERM" || fail "server A did not stop on SIGTERM"

echo "go_interop: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
