#!/usr/bin/env bash
# The HTTP API's requests/s and p99 on loopback (GET /health, GET /opportunities), beside a minimal Beast server that
# answers the same bytes, measured with wrk in the same run (bench/bench_http.cpp; a built-in load generator stands in
# when wrk is missing: apt-get install wrk, or scripts/setup.sh). Target: >= 20,000 requests/s with p99 <= 5 ms.
# Usage: bash scripts/bench_http.sh [BUILD_DIR] [--with-replay] [bench_http options: --seconds=5 --connections=32
#        --server-threads=2 --load=wrk|builtin]
# --with-replay runs the replay benchmark (bench_replay) in a loop beside the HTTP load, as when `qtos serve` trades.
# --serve measures the real thing instead: `qtos serve` trading its demo market at --speed 3600 (the OS, every
# subsystem, the ledger committing each bar), and the minimal Beast server beside it, with wrk, one after the other.
set -euo pipefail
BUILD=build/release
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then BUILD=$1; shift; fi
WITH_REPLAY=0
SERVE=0
ARGS=()
for a in "$@"; do
  if [ "$a" = "--with-replay" ]; then WITH_REPLAY=1; elif [ "$a" = "--serve" ]; then SERVE=1; else ARGS+=("$a"); fi
done

if [ "$SERVE" = 1 ]; then
  command -v wrk >/dev/null || { echo "bench_http --serve: needs wrk (apt-get install wrk)"; exit 1; }
  cmake --build "$BUILD" --target qtos bench_http >/dev/null
  STATE=$(mktemp -d)
  PIDS=()
  cleanup_serve() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$STATE"; true; }
  trap cleanup_serve EXIT
  "$BUILD/bin/qtos" serve --state-dir "$STATE/state" --port 18641 --speed 3600 >"$STATE/serve.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do curl -sf localhost:18641/health/ai >/dev/null 2>&1 && break; sleep 0.1; done
  "$BUILD/bin/bench_http" --serve=minimal --port=18642 >/dev/null 2>&1 &
  PIDS+=($!)
  sleep 1
  printf "%-34s %12s %10s %10s\n" "server (wrk -t1 -c32 -d5s)" "route" "req/s" "p99 ms"
  for target in "qtos serve (trading):18641" "minimal Beast:18642"; do
    name=${target%%:*}; port=${target##*:}
    for route in /health /opportunities; do
      out=$(wrk -t1 -c32 -d5s --latency "http://127.0.0.1:$port$route" 2>&1)
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p99=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/, "", v); v = v / 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v = v * 1000}; print v}')
      printf "%-34s %12s %10s %10s\n" "$name" "$route" "$rps" "$p99"
    done
  done
  echo "the service kept trading meanwhile:"; curl -s localhost:18641/metrics | grep -E '^qtos_orders_total|^qtos_equity ' || true
  exit 0
fi

cmake --build "$BUILD" --target bench_http $([ "$WITH_REPLAY" = 1 ] && echo bench_replay) >/dev/null
command -v wrk >/dev/null || echo "bench_http: wrk not found (apt-get install wrk); using the built-in load generator"

REPLAY_PID=""
cleanup() { if [ -n "$REPLAY_PID" ]; then pkill -P "$REPLAY_PID" 2>/dev/null; kill "$REPLAY_PID" 2>/dev/null; fi; true; }
trap cleanup EXIT
if [ "$WITH_REPLAY" = 1 ]; then
  ( while true; do "$BUILD/bin/bench_replay" --benchmark_filter='replay_100x8760/qtos$' >/dev/null 2>&1 || exit 0; done ) &
  REPLAY_PID=$!
  echo "bench_http: the replay benchmark runs beside the load (pid $REPLAY_PID)"
  sleep 2
fi
"$BUILD/bin/bench_http" "${ARGS[@]}"
