#!/usr/bin/env bash
# Run THERE (the lent GPU machine, through the device tool, with `carry: [".debs"]`): unpacks the carried Debian
# packages into a private prefix, builds qtos against the machine's CUDA and PyTorch's CUDA LibTorch (preset
# `gpu`), runs every test (the CUDA consistency suites now run instead of skipping) and the benchmarks, and
# leaves the logs in $OUT. Usage: bash scripts/gpu_run.sh [bench-filter-regex]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/qtos-gpu-out}
mkdir -p "$OUT"
PREFIX=/tmp/qtos-deps
mkdir -p "$PREFIX"
for f in .debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
TORCH_DIR=$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  nvcc --version | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} 2>&1 | tee "$OUT/device.txt"

cmake --preset gpu -DCMAKE_PREFIX_PATH="$PREFIX/usr;$PREFIX/usr/lib/x86_64-linux-gnu/cmake" -DTorch_DIR="$TORCH_DIR" \
  -DCMAKE_CUDA_ARCHITECTURES=90 2>&1 | tee "$OUT/configure.log" || exit 1
cmake --build build/gpu -j"$(nproc)" 2>&1 | tail -50 | tee "$OUT/build.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
ctest --test-dir build/gpu --output-on-failure -j4 2>&1 | tee "$OUT/tests.log" | tail -40
FILTER=${1:-.}
for b in build/gpu/bin/bench_*; do
  [ -x "$b" ] || continue
  echo "== $b" | tee -a "$OUT/bench.log"
  "$b" --benchmark_filter="$FILTER" --benchmark_min_time=0.2 2>&1 | tee -a "$OUT/bench.log" | tail -30
done
