#!/usr/bin/env bash
# Run THERE (a lent GPU machine, with the packages scripts/gpu_prepare.sh downloaded carried in .debs/): unpacks them
# into a private prefix, builds the CUDA-relevant targets against the machine's CUDA and PyTorch's CUDA LibTorch
# (preset `gpu`, sm_90) with every core, runs the CUDA test suites, one compute-sanitizer memcheck pass, the GPU
# benchmarks beside their CPU rows, and writes $OUT/results.json and $OUT/results.md (scripts/gpu_results.py) with
# everything printed in $OUT/run.log. Each step has a deadline, so a slow or failing step still leaves the others'
# results. Usage: bash scripts/gpu_run.sh        (about 3 minutes on an H200 host with 16 cores)
#        QTOS_GPU_ONLY=models bash scripts/gpu_run.sh   (the LibTorch module and the CUDA model tests alone: a check
#        that fits a short lease, about 2 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/qtos-gpu-out}
RAW=/tmp/qtos-gpu-raw
PREFIX=/tmp/qtos-deps
mkdir -p "$OUT" "$RAW" "$PREFIX"
exec > >(tee -a "$OUT/run.log") 2>&1
T0=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - T0 )) s] $*"; }

step "unpack"
for f in .debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
TORCH_DIR=$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB:$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee "$RAW/nvidia-smi.csv"
nvcc --version | tail -1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
nproc

step "configure (preset gpu, sm_90)"
timeout 180 cmake --preset gpu -DCMAKE_PREFIX_PATH="$PREFIX/usr;$PREFIX/usr/lib/x86_64-linux-gnu/cmake" \
  -DTorch_DIR="$TORCH_DIR" -DCMAKE_CUDA_ARCHITECTURES=90 >"$RAW/configure.log" 2>&1
rc=$?; tail -25 "$RAW/configure.log"; [ $rc -eq 0 ] || { echo "configure failed ($rc)"; python3 scripts/gpu_results.py "$RAW" "$OUT"; exit 1; }

ONLY=${QTOS_GPU_ONLY:-}
TARGETS="qtos_test_cuda qtos_test_models bench_indicators bench_backtest bench_models bench_ranking qtos"
[ "$ONLY" = models ] && TARGETS="qtos_test_models qtos"
step "build $TARGETS"
timeout 330 cmake --build build/gpu -j"$(nproc)" --target $TARGETS >"$RAW/build.log" 2>&1
rc=$?; grep -E "error|FAILED" "$RAW/build.log" | head -30; tail -5 "$RAW/build.log"
echo "build rc=$rc"

B=build/gpu
if [ -x $B/tests/qtos_test_cuda ]; then
  step "CUDA consistency suites"
  timeout 120 $B/tests/qtos_test_cuda --gtest_output=json:"$RAW/gtest_cuda.json" 2>&1 | tail -40
fi
if [ -x $B/tests/qtos_test_models ]; then
  step "model training and inference on CUDA"
  [ -x $B/bin/qtos ] && $B/bin/qtos version  # names the LibTorch module it loaded and whether it sees CUDA
  timeout 90 $B/tests/qtos_test_models --gtest_filter='*Cuda*:*Device*:Training.*' --gtest_output=json:"$RAW/gtest_models.json" 2>&1 | tail -30
fi
if [ "$ONLY" = models ]; then
  step "results"
  python3 scripts/gpu_results.py "$RAW" "$OUT"
  exit 0
fi
if [ -x $B/tests/qtos_test_cuda ] && command -v compute-sanitizer >/dev/null; then
  step "compute-sanitizer memcheck on the CUDA suite"
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 $B/tests/qtos_test_cuda >"$RAW/memcheck.log" 2>&1
  echo "memcheck rc=$?" | tee -a "$RAW/memcheck.log"; tail -15 "$RAW/memcheck.log"
fi

step "benchmarks"
bench() {  # name, deadline (s), filter
  [ -x "$B/bin/$1" ] || { echo "$1: not built"; return; }
  echo "== $1 ($3)"
  timeout "$2" "$B/bin/$1" --benchmark_filter="$3" --benchmark_out="$RAW/$1.json" --benchmark_out_format=json 2>&1 | tail -40
}
bench bench_backtest 120 'BM_Backtest/(tbb/|cuda)'
bench bench_indicators 90 'BM_Indicators/(cpu|cuda)/'
bench bench_models 90 'BM_train_cuda|BM_train_samples_per_s/mlp|BM_mlp_forward'
bench bench_ranking 45 'BM_FullRecompute/|BM_IncrementalUpdate/'

if [ -x $B/bin/qtos ]; then
  step "qtos evolve per generation on 1,000 symbols, CPU vs GPU (4 generations minus 1: start-up and features left out)"
  timeout 60 $B/bin/qtos data synth --symbols 1000 --bars 2520 --seed 3 --out /tmp/m1000 >/dev/null
  for dev in cpu cuda; do
    for g in 1 4; do
      t=$EPOCHREALTIME
      timeout 90 $B/bin/qtos evolve --data /tmp/m1000 --device $dev --population 512 --generations $g --seed 1 \
        --out /tmp/hof_${dev}_$g.json >/dev/null 2>"$RAW/evolve_${dev}_$g.err" || echo "evolve $dev $g failed: $(tail -2 "$RAW/evolve_${dev}_$g.err")"
      echo "evolve_wall_s $dev $g $(echo "$EPOCHREALTIME $t" | awk '{printf "%.3f", $1 - $2}')" | tee -a "$RAW/evolve.txt"
    done
  done
  cmp -s /tmp/hof_cpu_4.json /tmp/hof_cuda_4.json && echo "evolve: the CPU and GPU halls of fame are identical" || echo "evolve: the CPU and GPU halls of fame differ (float backends may differ in the last bits)"
fi
if command -v ncu >/dev/null && [ -x $B/bin/bench_backtest ]; then
  step "ncu --set basic on the backtest kernel"
  timeout 120 ncu --set basic --kernel-name regex:backtest_kernel --launch-count 1 --csv --page details \
    $B/bin/bench_backtest --benchmark_filter=cuda >"$RAW/ncu.csv" 2>"$RAW/ncu.err"
  echo "ncu rc=$?"; grep -E "Achieved Occupancy|Compute \(SM\) Throughput|DRAM Throughput|Memory Throughput|Registers Per Thread|Theoretical Occupancy|Duration" "$RAW/ncu.csv" | head -12; tail -3 "$RAW/ncu.err"
fi

step "HBM copy bandwidth (the physical limit of the memory-bound rows)"
timeout 30 python3 - <<'EOF' | tee "$RAW/hbm.txt"
import torch
n = 1 << 30  # 4 GiB of float32
a = torch.empty(n, dtype=torch.float32, device="cuda"); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(10): b.copy_(a)
e.record(); torch.cuda.synchronize()
print("hbm_copy_bytes_per_s", 10 * 2 * 4 * n / (s.elapsed_time(e) / 1e3))
EOF

step "results"
python3 scripts/gpu_results.py "$RAW" "$OUT"
step "done"
