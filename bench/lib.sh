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
