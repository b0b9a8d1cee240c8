#!/usr/bin/env bash
# Ledger benchmarks (docs/performance.md):
#  1. `vitalog verify` throughput and peak memory on a synthetic export of
#     LEDGER_ENTRIES (default 1,000,000) entries with a checkpoint every 1000;
#  2. the cost of the ledger on durable creates: the same create load
#     (bench/run.sh) against the last commit before the ledger and against
#     this tree, back to back in one run.
# usage: bash bench/ledger.sh   (BUILD_DIR, LEDGER_ENTRIES, LEDGER_BASE, BENCH_SECONDS)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
N=${LEDGER_ENTRIES:-1000000}
BASE=${LEDGER_BASE:-3a56b2e}   # the last commit without the ledger
work=$(mktemp -d "${TMPDIR:-/tmp}/vitalog-ledger-bench.XXXXXX")
trap 'rm -rf "$work"; git worktree remove --force "$work/base" 2>/dev/null || true' EXIT

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target vitalog bench_gen_export >/dev/null

echo "ledger bench: generating a $N-entry export" >&2
"$BUILD_DIR/bench_gen_export" "$N" "$work/export.ndjson" "$work/key.vkey"
bytes=$(stat -c %s "$work/export.ndjson")
echo "ledger bench: verifying" >&2
start=$(date +%s.%N)
/usr/bin/env time -f '%M' -o "$work/rss" "$BUILD_DIR/vitalog" verify --key "$work/key.vkey" "$work/export.ndjson" >/dev/null
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc -l)
rate=$(echo "$N / $secs" | bc -l)
rss_kb=$(cat "$work/rss")

echo "ledger bench: A/B of durable creates: $BASE (no ledger) vs this tree" >&2
git worktree add -q "$work/base" "$BASE"
cmake -S "$work/base" -B "$work/base/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/base/build" -j"$(nproc)" --target vitalog >/dev/null
BUILD_DIR="$work/base/build" BENCH_SKIP_BUILD=1 BENCH_RESULTS="$work/base.md" bash bench/run.sh >/dev/null 2>"$work/base.log"
BUILD_DIR="$BUILD_DIR" BENCH_SKIP_BUILD=1 BENCH_RESULTS="$work/ledger.md" bash bench/run.sh >/dev/null 2>"$work/ledger.log"
base_rate=$(grep -m1 '^bench: vitalog_post: [0-9]' "$work/base.log" | sed -E 's/.*: ([0-9.]+) requests\/s.*/\1/')
ledger_rate=$(grep -m1 '^bench: vitalog_post: [0-9]' "$work/ledger.log" | sed -E 's/.*: ([0-9.]+) requests\/s.*/\1/')
base_bare=$(grep -m1 '^bench: bare_post: [0-9]' "$work/base.log" | sed -E 's/.*: ([0-9.]+) requests\/s.*/\1/')
ledger_bare=$(grep -m1 '^bench: bare_post: [0-9]' "$work/ledger.log" | sed -E 's/.*: ([0-9.]+) requests\/s.*/\1/')

{
  echo "# ledger benchmark"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $(git rev-parse --short HEAD); base: $BASE"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r)"
  echo "- command: \`bash bench/ledger.sh\` (LEDGER_ENTRIES=$N)"
  echo
  echo "| measure | value |"
  echo "|---|---:|"
  printf '| vitalog verify, %d entries (%d checkpoints, %.1f MiB) | %.0f entries/s (%.2f s) |\n' "$N" $(( (N + 999) / 1000 )) "$(echo "$bytes / 1048576" | bc -l)" "$rate" "$secs"
  printf '| vitalog verify peak RSS | %.1f MiB |\n' "$(echo "$rss_kb / 1024" | bc -l)"
  printf '| durable creates/s without the ledger (%s) | %.0f (bare %.0f) |\n' "$BASE" "$base_rate" "$base_bare"
  printf '| durable creates/s with the ledger | %.0f (bare %.0f) |\n' "$ledger_rate" "$ledger_bare"
  printf '| with / without (fractions of bare) | %.3f |\n' "$(echo "($ledger_rate / $ledger_bare) / ($base_rate / $base_bare)" | bc -l)"
} | tee bench/results/ledger-latest.md
