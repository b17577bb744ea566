#!/usr/bin/env bash
# Runs every benchmark program of a build (each prints its rate, a peer's rate and the physical limit side by side).
# Usage: bash scripts/bench.sh [BUILD_DIR] [filter-regex]
set -euo pipefail
BUILD=${1:-build/release}
FILTER=${2:-.}
for b in "$BUILD"/bin/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" --benchmark_filter="$FILTER"
done
