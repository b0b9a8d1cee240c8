#!/usr/bin/env bash
# The upgrade of a data directory written by the previous release (schema 6,
# commit 21e5480; the fixture tests/data/migration/v6, made as its README.md
# says) to schema 7 (the search index v2, schemas/007_index_v2.sql): the
# server migrates it in place at its first start and re-indexes every
# current version (reindex_pending, in batches, before it listens). Then it
# must answer the searches that need the new index right on the old data,
# read every old resource as the old server did, honour the old tokens,
# keep the ledger verifiable, and start again with nothing to do; and an
# upgrade interrupted after some batches must resume where it stopped and
# end with the same index. The re-indexed rows must be the rows the write
# path gives the same resources.
#
# usage: tests/migration/upgrade.sh BUILD/vitalog      (KEEP=1: keep the scratch dir)
set -euo pipefail
VITALOG=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
FIX=$SRC/tests/data/migration
T=$(mktemp -d "${TMPDIR:-/tmp}/vitalog-upgrade.XXXXXX")
# shellcheck source=../ledger/lib.sh
source "$SRC/tests/ledger/lib.sh" # pass/fail, expect_ok, stop_server, lib_cleanup, PY
trap lib_cleanup EXIT

# the fixture's server ran with this public base URL (make_v6.sh); so do
# the ones here, as the deployment would after the upgrade
BASE_URL=https://vitalog.example.org

# fixture DIR: a copy of the fixture with the modes the server gives its
# files (git keeps none but the executable bit)
fixture() {
    rm -rf "$1"
    cp -r "$FIX/v6" "$1"
    chmod 700 "$1"
    chmod 600 "$1"/vitalog.db "$1"/admin.token "$1"/token.key "$1"/ledger.key
    chmod 644 "$1"/ledger.vkey
}

# start DIR LOG: the server on an ephemeral port, its stderr to LOG; sets
# SERVER_PID and BASE (start_server of lib.sh, with --base-url).
start() {
    local d=$1 log=$2
    rm -f "$d/port"
    "$VITALOG" serve --data "$d" --listen 127.0.0.1:0 --port-file "$d/port" \
        --base-url "$BASE_URL" --checkpoint-ms "$CHECKPOINT_MS" >"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    for _ in $(seq 1 1200); do
        if [ -s "$d/port" ]; then
            BASE="http://127.0.0.1:$(cat "$d/port")"
            remember_token "$d" # for http() of lib.sh
            [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] && return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server on $d exited while starting; log:" >&2
            tail -20 "$log" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "server on $d did not become ready; log:" >&2
    tail -20 "$log" >&2
    return 1
}

q() { sqlite3 "$1/vitalog.db" "$2"; }
# check WHAT GOT WANT
check() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}
# migrated LOG: how many versions that start logged it indexed (0: none)
migrated() {
    local n
    n=$(grep '"stored versions indexed (migration)"' "$1" | grep -o '"versions":[0-9]*' | cut -d: -f2 || true)
    echo "${n:-0}"
}
# run_checks TOKEN < SPEC: the checks of http_checks.py against BASE
run_checks() {
    local line
    while IFS= read -r line; do
        case $line in
        "ok   "*) pass "${line#ok   }" ;;
        *) fail "${line#FAIL }" ;;
        esac
    done < <("$PY" "$HERE/http_checks.py" "$BASE/fhir" "$1")
}
admin_token() { cat "$1/admin.token"; }
token_of() { awk -F'\t' -v r="$1" '$1 == r {print $3}' "$FIX/v6-tokens.tsv"; }

# dump_index DIR [MAX]: the index of the current versions up to seq MAX,
# by name rather than by the numbers the writer interned (pid, sid, seq),
# sorted: two databases holding the same resources index them alike iff
# their dumps are equal. Every ix_* table by its columns (as the schema
# has them), the series spans, the consent facets and the compartments.
dump_index() {
    "$PY" - "$1/vitalog.db" "${2:-9223372036854775807}" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
ref = {seq: r for seq, r in db.execute(
    "SELECT v.seq, r.type || '/' || r.id FROM resource_version v JOIN resource r ON r.rid = v.rid"
    " WHERE v.seq <= ? AND v.deleted = 0 AND v.seq NOT IN (SELECT seq FROM superseded)",
    (int(sys.argv[2]),))}
pname = dict(db.execute("SELECT pid, name FROM search_param"))
uri = dict(db.execute("SELECT sid, uri FROM code_system"))
uri[0] = ""
tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND"
                                    " (name LIKE 'ix\\_%' ESCAPE '\\' OR name IN"
                                    " ('version_code', 'version_patient')) ORDER BY name")]
out = []
for t in tables:
    cols = [c[1] for c in db.execute("SELECT * FROM pragma_table_info(?)", (t,))]
    for row in db.execute("SELECT * FROM %s" % t):
        r = dict(zip(cols, row))
        if r["seq"] not in ref:
            continue
        key = [t, ref[r.pop("seq")]]
        if "pid" in r:
            key.append(pname[r.pop("pid")])
        if "sid" in r:
            r["sid"] = uri[r["sid"]]
        out.append("|".join(key + ["%s=%r" % kv for kv in sorted(r.items())]))
for pid, span in db.execute("SELECT pid, span FROM series_span"):
    out.append("series_span|%s|%d" % (pname[pid], span))
print("\n".join(sorted(out)))
PYEOF
}

# The searches that need the new index (accent- and case-folded strings in
# any script, quantities by their canonical UCUM unit, composites, the
# series and sort keys), on the old data: what an upgraded server must
# answer (checks of http_checks.py; tab-separated).
HR1=$(printf 'hr-p1-%02d\t' $(seq 1 10))
HR2=$(printf 'hr-p2-%02d\t' $(seq 1 5))
SEARCHES="\
search	Observation?patient=p1&code=http://loinc.org|8867-4	$HR1
search	Observation?subject=Patient/p1&code=8867-4	$HR1
search	Observation?code=http://loinc.org|8867-4&patient=p1&date=ge2024-05-03T00:00:00Z&date=lt2024-05-06T00:00:00Z	hr-p1-03	hr-p1-04	hr-p1-05
search	Observation?code=http://loinc.org|8867-4&date=ge2024-05-02T00:00:00Z&date=lt2024-05-03T00:00:00Z	hr-p1-02	hr-p2-02	hr-p3-01
first	Observation?patient=p1&code=http://loinc.org|8867-4&_sort=-date&_count=1	hr-p1-10
first	Observation?patient=p1&code=http://loinc.org|8867-4&_sort=date&_count=1	hr-p1-01
first	Observation?code=http://loinc.org|29463-7&_sort=-value-quantity&_count=1	wt-p2-02
search	Observation?code=http://loinc.org|29463-7&patient=p2	wt-p2-02
search	Observation?code=http://loinc.org|85354-9	bp-p1-01	bp-p1-02	bp-p2-01	bp-p3-01
search	Observation?device=Device/dev1	$HR1
total	Observation?category=vital-signs&_summary=count	30
total	Observation?code:text=heart&_summary=count	17
search	Patient?family=nguyen	p1
search	Patient?family=NGUYEN	p1
search	Patient?family=Nguyễn	p1
search	Patient?name=thi	p1
search	Patient?name=ελ	p2
search	Patient?name=ΕΛΕΝΗ	p2
search	Patient?family=παπαδοπουλου	p2
search	Patient?family=muller	p3
search	Patient?family=Müller	p3
search	Patient?address-city=ha noi	p1
search	Patient?address-city=θεσσαλονικη	p2
search	Patient?identifier=VN-0001	p1
search	Observation?value-quantity=98.6|http://unitsofmeasure.org|[degF]	temp-p1-01	temp-p2-01
search	Observation?value-quantity=37|http://unitsofmeasure.org|Cel	temp-p1-01	temp-p2-01
search	Observation?value-quantity=70|http://unitsofmeasure.org|kg	wt-p3-01
search	Observation?value-quantity=gt80|http://unitsofmeasure.org|kg	wt-p2-02
search	Observation?component-code-value-quantity=http://loinc.org|8480-6\$gt130	bp-p1-02
search	Observation?component-code-value-quantity=http://loinc.org|8462-4\$lt80	bp-p1-01	bp-p2-01
search	Observation?value-quantity=120|http://unitsofmeasure.org|/min	hr-p1-05
search	Observation?value-quantity=72|http://unitsofmeasure.org|/min
search	Patient?birthdate=1957-10-10	p3
search	Patient?birthdate=1975-01-01
search	Observation?value-quantity=81|http://unitsofmeasure.org|kg
search	Observation?_id=wt-p2-01
search	Device?identifier=urn:example:serial|SN-0001	dev1
search	Device?patient=p1	dev1
search	Consent?patient=p1	c1
search	Consent?status=active	c1
search	Observation?patient=p2&code=http://loinc.org|8867-4	${HR2}hr-p2-06
search	Observation?subject=$BASE_URL/fhir/Patient/p2&code=http://loinc.org|8867-4	${HR2}hr-p2-06
"
# (the last two: hr-p2-06 names its patient by an absolute URL on this
# server's base; the new release reads such a reference as Patient/p2 -- a
# new write is indexed so, and so is the query -- so it must be found with
# p2's other readings.) Above: the updated hr-p1-05 by its new value, not
# its old one (72); the updated p3 by its new birth date; the deleted
# wt-p2-01 (81 kg) not at all.

# The tokens the old server issued (their keyed hashes in the old
# database): the compartments and the consent facets (version_code,
# rebuilt by the migration) carried over.
PATIENT_CHECKS="\
search	Observation?code=http://loinc.org|29463-7	wt-p1-01	wt-p1-02	wt-p1-03	wt-p1-04
search	Patient	p1
status	Observation/hr-p2-01	404
status	Observation/hr-p1-01	200
"
CLINIC_CHECKS="\
search	Observation?code=http://loinc.org|29463-7	wt-p1-01	wt-p1-02	wt-p1-03	wt-p1-04
status	Observation/hr-p1-01	200
status	Observation/bp-p2-01	404
"

# ---------------------------------------------------------------------------
# the schema a start migrates to: the last of schemas/NNN_*.sql
LAST_SCHEMA=$(find "$SRC/schemas" -name '[0-9][0-9][0-9]_*.sql' | sort | tail -1)
LAST_SCHEMA=$((10#$(basename "$LAST_SCHEMA" | cut -c1-3)))
[ "$(q "$FIX/v6" 'PRAGMA user_version')" = 6 ] || { echo "the fixture is not schema 6" >&2; exit 1; }
MAXSEQ=$(q "$FIX/v6" 'SELECT max(seq) FROM resource_version')
CURRENT=$(q "$FIX/v6" 'SELECT count(*) FROM resource WHERE deleted = 0')
# every make_v6.sh read again: same status, same bytes; every resource
# (the old server's AuditEvents too): its version, or 410; a superseded
# version by vread, a history
{
    sed 's/^/read\t/' "$FIX/v6-reads.tsv"
    q "$FIX/v6" "SELECT 'version', type || '/' || id, CASE deleted WHEN 1 THEN 'deleted' ELSE version END
                 FROM resource ORDER BY type, id" | tr '|' '\t'
    printf 'field\tObservation/hr-p1-05/_history/1\tvalueQuantity.value\t72\n'
    printf 'field\tObservation/hr-p1-05/_history/2\tvalueQuantity.value\t120\n'
    printf 'total\tObservation/hr-p1-05/_history\t2\n'
} >"$T/reads"
echo "fixture: $CURRENT current resources, versions up to seq $MAXSEQ"

echo "-- 1. verify, then serve, on a copy of the fixture"
A=$T/a
fixture "$A"
expect_ok "vitalog verify --data: the old database, the new binary" "$VITALOG" verify --data "$A"
# verify opens the store, which applies the schema migrations (not the
# re-indexing, which serve does): noted, not required
echo "   after verify: schema $(q "$A" 'PRAGMA user_version'), $(q "$A" \
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'reindex_pending')
     THEN (SELECT count(*) FROM reindex_pending) || ' versions pending' ELSE 'no reindex_pending' END")"
if start "$A" "$T/a.log1"; then
    pass "serve starts on the old database"
    check "schema version after the first start" "$(q "$A" 'PRAGMA user_version')" "$LAST_SCHEMA"
    check "reindex_pending after the first start" "$(q "$A" 'SELECT count(*) FROM reindex_pending')" 0
    check "facets_pending after the first start" "$(q "$A" 'SELECT count(*) FROM facets_pending')" 0
    check "versions indexed by the first start (logged)" "$(migrated "$T/a.log1")" "$CURRENT"
    check "old index tables dropped" "$(q "$A" "SELECT count(*) FROM sqlite_master WHERE name LIKE 'idx%'")" 0
    # first, before a read or search here adds AuditEvents: the old
    # server's own (make_v6.sh read 21 resources of p1's compartment)
    printf 'total\tAuditEvent?patient=p1&_summary=count\t21\n' | run_checks "$(admin_token "$A")"
    echo "-- searches (upgraded)"
    run_checks "$(admin_token "$A")" <<<"$SEARCHES"
    echo "-- old tokens (upgraded)"
    run_checks "$(token_of patient)" <<<"$PATIENT_CHECKS"
    run_checks "$(token_of clinic)" <<<"$CLINIC_CHECKS"
    echo "-- reads (upgraded)"
    run_checks "$(admin_token "$A")" <"$T/reads"
    stop_server "$SERVER_PID"
else
    fail "serve does not start on the old database"
fi
dump_index "$A" "$MAXSEQ" >"$T/a.index"
echo "   $(wc -l <"$T/a.index") index rows, facets and compartments of the old versions"
expect_ok "vitalog verify --data after the upgrade" "$VITALOG" verify --data "$A"

echo "-- 2. a second start: nothing to do"
MAX2=$(q "$A" 'SELECT max(seq) FROM resource_version')
before=$(dump_index "$A" "$MAX2" | md5sum)
if start "$A" "$T/a.log2"; then
    check "second start: versions indexed" "$(migrated "$T/a.log2")" 0
    if grep -q 'applying migration' "$T/a.log2"; then fail "second start applied a migration"; else
        pass "second start: no migration"; fi
    check "second start: reindex_pending" "$(q "$A" 'SELECT count(*) FROM reindex_pending')" 0
    printf 'search\tPatient?family=nguyen\tp1\n' | run_checks "$(admin_token "$A")"
    stop_server "$SERVER_PID"
else
    fail "second start failed"
fi
check "second start: the index of what was there unchanged" "$(dump_index "$A" "$MAX2" | md5sum)" "$before"

echo "-- 3. serve on a copy of the fixture directly"
B=$T/b
fixture "$B"
if start "$B" "$T/b.log"; then
    pass "serve starts on the old database (no verify first)"
    if grep -q 'applying migration 007' "$T/b.log"; then pass "serve applies migration 007"; else
        fail "serve did not log applying migration 007"; fi
    check "versions indexed (logged)" "$(migrated "$T/b.log")" "$CURRENT"
    check "schema version" "$(q "$B" 'PRAGMA user_version')" "$LAST_SCHEMA"
    check "reindex_pending" "$(q "$B" 'SELECT count(*) FROM reindex_pending')" 0
    stop_server "$SERVER_PID"
else
    fail "serve does not start on the old database (no verify first)"
fi
dump_index "$B" "$MAXSEQ" >"$T/b.index"
if cmp -s "$T/a.index" "$T/b.index"; then pass "the same index with and without verify first"; else
    fail "the index differs with and without verify first (< with, > without):"
    diff "$T/a.index" "$T/b.index" | grep '^[<>]' | head -10 >&2 || true
fi

echo "-- 4. an interrupted upgrade, resumed"
# What a server stopped during its first start can leave: the schema
# migration is one transaction (src/store/sqlite.c migrate(): the old
# database as it was -- case 3 -- or schema 7 with every current version in
# reindex_pending); then each batch of the re-indexing commits its
# versions' index rows with their removal from reindex_pending, in seq
# order (vl_sqlite_facets_backfill: ORDER BY seq LIMIT 512): schema 7, the
# versions before some seq indexed, the rest pending. Reproduced with the
# real code: the migrations applied as migrate() applies them (each
# schemas/NNN_*.sql above 6 and its user_version in one transaction); a
# server that re-indexes the first half of the pending versions (the rest
# held back from reindex_pending) and stops; the rest pending again.
C=$T/c
fixture "$C"
for m in "$SRC"/schemas/[0-9][0-9][0-9]_*.sql; do
    n=$(basename "$m" | cut -c1-3)
    [ "$((10#$n))" -gt 6 ] || continue
    { echo "BEGIN IMMEDIATE;"; cat "$m"; echo "PRAGMA user_version=$((10#$n)); COMMIT;"; } |
        sqlite3 -bail "$C/vitalog.db"
done
total=$(q "$C" 'SELECT count(*) FROM reindex_pending')
check "the migrations alone: versions pending" "$total" "$CURRENT"
half=$((total / 2))
K=$(q "$C" "SELECT seq FROM reindex_pending ORDER BY seq LIMIT 1 OFFSET $half")
q "$C" "SELECT seq FROM reindex_pending WHERE seq >= $K" >"$T/rest"
q "$C" "DELETE FROM reindex_pending WHERE seq >= $K"
if start "$C" "$T/c.log1"; then
    stop_server "$SERVER_PID"
    check "interrupted: versions indexed before the stop" "$(migrated "$T/c.log1")" "$half"
else
    fail "serve (the first half) failed"
fi
q "$C" "INSERT INTO reindex_pending (seq) VALUES $(sed 's/.*/(&)/' "$T/rest" | paste -sd,)"
check "interrupted: versions pending" "$(q "$C" 'SELECT count(*) FROM reindex_pending')" "$((total - half))"
check "interrupted: index rows of pending versions" \
    "$(q "$C" "SELECT (SELECT count(*) FROM ix_token WHERE seq >= $K) + (SELECT count(*) FROM ix_string WHERE seq >= $K)")" 0
if [ "$(q "$C" "SELECT count(*) FROM ix_token WHERE seq < $K")" -gt 0 ]; then
    pass "interrupted: index rows of the versions done"; else fail "interrupted: no index rows at all"; fi
if start "$C" "$T/c.log2"; then
    pass "serve resumes the interrupted upgrade"
    check "resumed: versions indexed" "$(migrated "$T/c.log2")" "$((total - half))"
    check "resumed: reindex_pending" "$(q "$C" 'SELECT count(*) FROM reindex_pending')" 0
    echo "-- searches (resumed)"
    run_checks "$(admin_token "$C")" <<<"$SEARCHES"
    stop_server "$SERVER_PID"
else
    fail "serve does not resume the interrupted upgrade"
fi
dump_index "$C" "$MAXSEQ" >"$T/c.index"
if cmp -s "$T/a.index" "$T/c.index"; then pass "resumed: the same index as an upgrade in one go"; else
    fail "resumed: the index differs from an upgrade in one go (< one go, > resumed):"
    diff "$T/a.index" "$T/c.index" | grep '^[<>]' | head -10 >&2 || true
fi
expect_ok "vitalog verify --data after the resumed upgrade" "$VITALOG" verify --data "$C"

echo "-- 5. the same resources written to a new server"
# The re-indexing (of the stored bodies, after the fact) and the write path
# (of the request, at the time) must index a resource alike: the old
# server's current resources but its AuditEvents (which the server writes
# itself), PUT as it served them to an empty data directory.
N=$T/n
if start "$N" "$T/n.log"; then
    bad=0
    while IFS=$'\t' read -r ref code body; do
        [ "$code" = 200 ] || continue
        printf '%s' "$body" >"$T/put.json"
        got=$(http PUT "$BASE/fhir/$ref" "$T/put" "$T/put.json")
        [ "$got" = 201 ] || { bad=$((bad + 1)); fail "PUT $ref to a new server: $got"; }
    done <"$FIX/v6-reads.tsv"
    check "the old resources PUT to a new server" "$bad" 0
    stop_server "$SERVER_PID"
    dump_index "$N" >"$T/n.index"
    grep -v '^[a-z_]*|AuditEvent/' "$T/a.index" >"$T/a-noaudit.index"
    if cmp -s "$T/a-noaudit.index" "$T/n.index"; then
        pass "the upgraded index is the index of the same resources written new"; else
        fail "the upgraded index differs from that of the same resources written new (< upgraded, > new):"
        diff "$T/a-noaudit.index" "$T/n.index" | grep '^[<>]' | head -20 >&2 || true
    fi
else
    fail "a new server did not start"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
