#!/usr/bin/env bash
# The HTTP API's requests/s and p99 on loopback (GET /health, GET /opportunities), beside a minimal Beast server that
# answers the same bytes, measured with wrk in the same run (bench/bench_http.cpp; a built-in load generator stands in
# when wrk is missing: apt-get install wrk, or scripts/setup.sh). Target: >= 20,000 requests/s with p99 <= 5 ms.
# Usage: bash scripts/bench_http.sh [BUILD_DIR] [--with-replay] [bench_http options: --seconds=5 --connections=32
#        --server-threads=2 --load=wrk|builtin]
# --with-replay runs the replay benchmark (bench_replay) in a loop beside the HTTP load, as when `qtos serve` trades.
set -euo pipefail
BUILD=build/release
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then BUILD=$1; shift; fi
WITH_REPLAY=0
ARGS=()
for a in "$@"; do
  if [ "$a" = "--with-replay" ]; then WITH_REPLAY=1; else ARGS+=("$a"); fi
done

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
