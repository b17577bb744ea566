// Population backtest throughput in bar-steps/s (genome x symbol x bar per second): the TBB backend on all cores and
// on one thread, beside the plain serial double reference, all in one run. Sizes: QTOS_BENCH_P (genomes, 1024),
// QTOS_BENCH_S (symbols, 100), QTOS_BENCH_T (hourly bars, 8760); the reference runs QTOS_BENCH_REF_P genomes (16).
// With a CUDA device it also runs the CUDA backend at QTOS_BENCH_GPU_P/S/T (8,192 x 1,000 x 2,520 daily bars).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <thread>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include "cpu/backend/device.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/strategy/evolution.hpp"

namespace {

std::int32_t env_int(const char* name, std::int32_t def) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : def;
}

const std::int32_t kP = env_int("QTOS_BENCH_P", 1024);
const std::int32_t kS = env_int("QTOS_BENCH_S", 100);
const std::int32_t kT = env_int("QTOS_BENCH_T", 8760);
const std::int32_t kRefP = env_int("QTOS_BENCH_REF_P", 16);

struct Fixture {
  qtos::SynthMarket market;
  qtos::StrategyFeatures features;
  std::vector<qtos::kernels::Genome> genomes;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    qtos::SynthOptions o;
    o.n_symbols = kS;
    o.n_bars = kT;
    o.seed = 2024;
    Fixture x{qtos::synth_generate(o), {}, {}};
    x.features = qtos::strategy_features_compute(x.market.panel.view(), true);
    qtos::Rng rng(7);
    for (std::int32_t i = 0; i < kP; ++i) x.genomes.push_back(qtos::genome_random(rng));
    return x;
  }();
  return f;
}

std::map<std::string, double> rates;
double exposure = 0;  // fraction of valid bars the population spent in a position

/// CPU time of the calling thread: per-core rates that do not depend on what else loads the machine.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_Reference(benchmark::State& state) {
  const Fixture& f = fixture();
  std::vector<qtos::kernels::Genome> sub(f.genomes.begin(), f.genomes.begin() + std::min<std::size_t>(f.genomes.size(), kRefP));
  qtos::BacktestRequest r;
  r.panel = f.market.panel.view();
  r.features = &f.features;
  r.genomes = sub;
  double steps = 0, secs = 0, cpu = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    benchmark::DoNotOptimize(qtos::backtest_serial(r));
    cpu += thread_cpu_seconds() - c0;
    secs += seconds_since(t0);
    steps += static_cast<double>(sub.size()) * kS * kT;
  }
  rates["serial double reference (1 thread)"] = steps / secs;
  rates["serial double reference (per CPU-second)"] = steps / cpu;
  state.counters["bar_steps_per_s"] = steps / secs;
}

void BM_Tbb(benchmark::State& state, int threads) {
  const Fixture& f = fixture();
  auto cpu = qtos::detail::backtest_cpu_backend();
  qtos::BacktestRequest r;
  r.panel = f.market.panel.view();
  r.features = &f.features;
  r.genomes = f.genomes;
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  if (threads == 1) {
    // One thread on the whole population would take minutes: time the reference's genome count times four.
    r.genomes = std::span<const qtos::kernels::Genome>(f.genomes.data(), std::min<std::size_t>(f.genomes.size(), 4 * kRefP));
  }
  double steps = 0, secs = 0, trades = 0, cpu_secs = 0, in_pos = 0, valid = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    arena.execute([&] {
      const double c0 = thread_cpu_seconds();  // with one thread the arena runs the work on this thread
      const auto res = cpu->run(r);
      cpu_secs += thread_cpu_seconds() - c0;
      for (const auto& a : res.genome) {
        trades += a.trades;
        in_pos += a.bars_in_pos;
        valid += a.n;
      }
    });
    secs += seconds_since(t0);
    steps += static_cast<double>(r.genomes.size()) * kS * kT;
  }
  rates[threads == 1 ? "tbb float (1 thread)" : "tbb float (all cores)"] = steps / secs;
  if (threads == 1) rates["tbb float (per CPU-second)"] = steps / cpu_secs;
  state.counters["bar_steps_per_s"] = steps / secs;
  state.counters["trades"] = trades;
  exposure = valid > 0 ? in_pos / valid : 0.0;
}

// ---- GPU: the size, when a device is present ----------------------------------------------------------------

const std::int32_t kGpuP = env_int("QTOS_BENCH_GPU_P", 8192);
const std::int32_t kGpuS = env_int("QTOS_BENCH_GPU_S", 1000);
const std::int32_t kGpuT = env_int("QTOS_BENCH_GPU_T", 2520);

struct GpuFigures {
  double rate = 0, cpu_rate = 0, upload_s = 0, run_s = 0;
  bool ran = false;
} gpu;

/// P=8,192 x S=1,000 x T=2,520 daily bars on the CUDA backend (the first run uploads the market and is timed apart),
/// and the TBB backend on the same market with 64 genomes beside it.
void BM_Cuda(benchmark::State& state) {
  auto backends = qtos::backtest_backends();
  const qtos::BacktestBackend* cuda = nullptr;
  for (const auto& b : backends)
    if (b->name() == "cuda" && b->available()) cuda = b.get();
  if (cuda == nullptr) {
    state.SkipWithError("no usable CUDA device");
    return;
  }
  qtos::SynthOptions o;
  o.n_symbols = kGpuS;
  o.n_bars = kGpuT;
  o.interval_ms = 86'400'000;
  o.seed = 2025;
  const qtos::SynthMarket market = qtos::synth_generate(o);
  const qtos::StrategyFeatures features = qtos::strategy_features_compute(market.panel.view());
  std::vector<qtos::kernels::Genome> genomes;
  qtos::Rng rng(9);
  for (std::int32_t i = 0; i < kGpuP; ++i) genomes.push_back(qtos::genome_random(rng));
  qtos::BacktestRequest r;
  r.panel = market.panel.view();
  r.features = &features;
  r.genomes = genomes;
  r.costs.bars_per_year = 365;
  auto t0 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(cuda->run(r));  // uploads the market, then runs
  gpu.upload_s = seconds_since(t0);
  const double steps = static_cast<double>(kGpuP) * kGpuS * kGpuT;
  double secs = 0;
  int runs = 0;
  for (auto _ : state) {
    t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(cuda->run(r));
    secs += seconds_since(t0);
    ++runs;
  }
  gpu.run_s = secs / runs;
  gpu.rate = steps * runs / secs;
  // The CPU backend on the same market, 64 genomes (the whole population would take minutes on two cores).
  r.genomes = std::span<const qtos::kernels::Genome>(genomes.data(), 64);
  t0 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(qtos::detail::backtest_cpu_backend()->run(r));
  gpu.cpu_rate = 64.0 * kGpuS * kGpuT / seconds_since(t0);
  gpu.ran = true;
  state.counters["bar_steps_per_s"] = gpu.rate;
}

void print_gpu() {
  const auto& d = qtos::device_report();
  if (!gpu.ran) {
    std::printf("\nGPU: not measured (%s)\n", d.cuda_error.empty() ? "no CUDA backend" : d.cuda_error.c_str());
    return;
  }
  const double lanes = double(d.sm_count) * d.sm_clock_khz * 1e3 * d.fp32_lanes_per_sm;  // FP32 lane-cycles per s
  std::printf("\nGPU %s (%d SMs, %.2f GHz): P=%d x S=%d x T=%d\n", d.cuda_name.c_str(), d.sm_count, d.sm_clock_khz * 1e-6, kGpuP,
              kGpuS, kGpuT);
  std::printf("%-36s %16.4g   target 1e11: %s\n", "cuda float (one run)", gpu.rate, gpu.rate >= 1e11 ? "MET" : "NOT MET");
  std::printf("%-36s %16.4g   (x%.0f)\n", "tbb float, same market, 64 genomes", gpu.cpu_rate, gpu.rate / gpu.cpu_rate);
  std::printf("run %.3f s; first run with the market upload %.3f s\n", gpu.run_s, gpu.upload_s);
  if (lanes > 0)
    std::printf("FP32 lane-cycles per bar-step: %.1f (the ceiling, one FP32 instruction per lane per cycle, is %.3g "
                "instruction-steps/s; a bar-step issues tens of instructions, so the fraction of the ceiling is 1 over "
                "this figure times the step's instruction count)\n",
                lanes / gpu.rate, lanes);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RegisterBenchmark("BM_Backtest/reference", BM_Reference)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("BM_Backtest/tbb_1thread", BM_Tbb, 1)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("BM_Backtest/tbb", BM_Tbb, 0)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  if (qtos::device_report().cuda_devices > 0)
    benchmark::RegisterBenchmark("BM_Backtest/cuda_8192x1000x2520", BM_Cuda)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  const double ref = rates.count("serial double reference (1 thread)") ? rates["serial double reference (1 thread)"] : 0;
  const double ref_cpu = rates.count("serial double reference (per CPU-second)") ? rates["serial double reference (per CPU-second)"] : 0;
  std::printf("\nP=%d genomes x S=%d symbols x T=%d bars (reference and 1-thread on %d and %d genomes), %u hardware threads\n",
              kP, kS, kT, kRefP, 4 * kRefP, std::thread::hardware_concurrency());
  std::printf("population exposure (bars in a position / valid bars): %.3f\n", exposure);
  std::printf("%-36s %16s %14s %12s\n", "implementation", "bar-steps/s", "x reference", "target 3e8");
  for (const auto& [name, v] : rates)
    std::printf("%-36s %16.4g %14.2f %12s\n", name.c_str(), v,
                name.find("CPU-second") != std::string::npos ? (ref_cpu > 0 ? v / ref_cpu : 0.0) : (ref > 0 ? v / ref : 0.0),
                name == "tbb float (all cores)" ? (v >= 3e8 ? "MET" : "NOT MET") : "");
  print_gpu();
  return 0;
}
