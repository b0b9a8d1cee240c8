#!/usr/bin/env bash
# Durable creates, A/B in one run: the bare libmicrohttpd server, vitalog at
# an earlier commit (BENCH_BEFORE, built in a git worktree) and this tree's
# vitalog, each `wrk -t2 -c16 -d$BENCH_SECONDS -s bench/post_observation.lua`
# on a fresh data directory, in BENCH_ROUNDS alternating rounds. Prints one
# line per run and the fractions of the bare server's rate; compare ratios
# measured in the same run only (the loopback of this VM is noisy).
#
#   bash bench/ab_creates.sh                  # before = 21e5480 (before issue 8)
#   BENCH_BEFORE=<rev> BENCH_ROUNDS=3 BENCH_SECONDS=10 bash bench/ab_creates.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE=${BENCH_BEFORE:-21e5480}
ROUNDS=${BENCH_ROUNDS:-2}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
BUILD_DIR=${BENCH_BUILD_DIR:-build-release}
WT=$BUILD_DIR/ab-before

log() { printf 'ab-creates: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target vitalog >/dev/null
build_bare_server "$BUILD_DIR/bench/bare_server"
if [[ ! -x $WT/build/vitalog ]]; then
  git worktree add -f "$WT" "$BEFORE" >/dev/null
  cmake -S "$WT" -B "$WT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$WT/build" -j2 --target vitalog >/dev/null
fi

SCRATCH=$(mktemp -d "$BUILD_DIR/bench/ab.XXXXXX")
PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() { for p in "${PIDS[@]}"; do stop_server "$p"; done; rm -rf "$SCRATCH"; }
trap cleanup EXIT

# run NAME: starts the server NAME on a fresh directory, loads it, stops it
run() {
  local name=$1 dir=$SCRATCH/$1.$RANDOM port token="" pid
  mkdir -p "$dir"
  case $name in
    bare) "$BUILD_DIR/bench/bare_server" --listen 127.0.0.1:0 --port-file "$dir/port" >"$dir/log" 2>&1 & ;;
    before) "$WT/build/vitalog" serve --data "$dir/d" --listen 127.0.0.1:0 --port-file "$dir/port" \
              >"$dir/log" 2>&1 & ;;
    now) "$BUILD_DIR/vitalog" serve --data "$dir/d" --listen 127.0.0.1:0 --port-file "$dir/port" \
              >"$dir/log" 2>&1 & ;;
  esac
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do [[ -s $dir/port ]] && break; sleep 0.1; done
  port=$(tr -dc 0-9 <"$dir/port")
  [[ -f $dir/d/admin.token ]] && token=$(cat "$dir/d/admin.token")
  VITALOG_TOKEN=$token wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" --latency -s bench/post_observation.lua \
    "http://127.0.0.1:$port/fhir/Observation" >"$dir/wrk" 2>&1
  stop_server "$pid"
  local rps p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$dir/wrk")
  bad=$(sed -n 's/.*non2xx=\([0-9]*\).*/\1/p' "$dir/wrk")
  echo "$name rps=$rps p99=$p99 non2xx=${bad:-?}"
  LAST_RPS=$rps
}

for r in $(seq "$ROUNDS"); do
  echo "# round $r"
  run bare; b=$LAST_RPS
  run before; o=$LAST_RPS
  run now; n=$LAST_RPS
  awk -v b="$b" -v o="$o" -v n="$n" \
    'BEGIN { printf "round fractions of bare: before %.4f, now %.4f (now/before %.2fx)\n", o/b, n/b, n/o }'
done
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) vs $BEFORE, $(nproc) CPUs, $(uname -r)"
