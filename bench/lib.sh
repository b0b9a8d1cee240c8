# shellcheck shell=bash
# Shared by bench/run.sh, bench/scale.sh and bench/ab_creates.sh (sourced,
# never run). The caller defines log and die, and SCRATCH (the directory
# holding NAME.log for each server it starts) before calling these.

# build_bare_server OUT: the bare libmicrohttpd baseline (bench/bare_server.c)
build_bare_server() {
  mkdir -p "$(dirname "$1")"
  # shellcheck disable=SC2046  # pkg-config output must split into words
  cc -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 \
     -o "$1" bench/bare_server.c $(pkg-config --cflags --libs libmicrohttpd) -lpthread
}

# shellcheck disable=SC2034  # read by the callers
STOP_STATUS=0
stop_server() {  # stop_server PID: SIGTERM, wait up to 15 s, then SIGKILL; sets STOP_STATUS
  local pid=$1 i
  STOP_STATUS=0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "process $pid ignored SIGTERM for 15 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # shellcheck disable=SC2034  # read by the callers
  wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

wait_for_port() {  # wait_for_port FILE PID NAME [SECONDS] -> prints the port
  local file=$1 pid=$2 name=$3 limit=${4:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if [[ -s $file ]]; then
      local port
      port=$(tr -dc '0-9' <"$file")
      if [[ -n $port ]]; then echo "$port"; return 0; fi
    fi
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$SCRATCH/$name.log" >&2 || true; die "$name exited before listening"; }
    sleep 0.1
  done
  tail -n 20 "$SCRATCH/$name.log" >&2 || true
  die "$name did not write its port file $file within $limit s"
}

peak_rss_kib() {  # VmHWM of PID in KiB
  awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# run_wrk NAME SCRIPT URL: runs wrk (WRK_THREADS, WRK_CONNECTIONS,
# WRK_SECONDS, WRK_TIMEOUT), keeps its output in $SCRATCH/NAME.wrk, appends
# the command to WRK_COMMANDS and sets RPS_/P50_/P99_/REQ_/OK_/NON2XX_/ERR_
# NAME variables (milliseconds for the latencies).
run_wrk() {
  local name=$1 script=$2 url=$3 out
  out=$SCRATCH/$name.wrk
  local cmd=(wrk "-t$WRK_THREADS" "-c$WRK_CONNECTIONS" "-d${WRK_SECONDS}s" --timeout "$WRK_TIMEOUT" --latency
             -s "$script" "$url")
  WRK_COMMANDS+=("$name: ${SCALE_AS:+SCALE_AS=$SCALE_AS }${cmd[*]}")
  log "$name: ${SCALE_AS:+SCALE_AS=$SCALE_AS }${cmd[*]}"
  "${cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed ($name)"; }
  local parsed
  parsed=$(awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return -1
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /^bench-result / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
    }
    END {
      printf "%s %s %s %s %s %s %s\n", rps, p50, p99, r["requests"], r["ok"], r["non2xx"],
             r["connect_err"] + r["read_err"] + r["write_err"] + r["timeouts"]
    }' "$out")
  local rps p50 p99 req ok non2xx err
  read -r rps p50 p99 req ok non2xx err <<<"$parsed"
  [[ -n $rps && -n $req ]] || { cat "$out" >&2; die "could not parse the output of wrk ($name)"; }
  printf -v "RPS_$name" '%s' "$rps"
  printf -v "P50_$name" '%s' "$p50"
  printf -v "P99_$name" '%s' "$p99"
  printf -v "REQ_$name" '%s' "$req"
  printf -v "OK_$name" '%s' "$ok"
  printf -v "NON2XX_$name" '%s' "$non2xx"
  printf -v "ERR_$name" '%s' "$err"
  log "$name: $rps requests/s, p50 $p50 ms, p99 $p99 ms, $non2xx non-2xx, $err socket errors"
}
