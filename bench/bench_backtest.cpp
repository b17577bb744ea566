// Population backtest throughput in bar-steps/s (genome x symbol x bar per second): the TBB backend on all cores and
// on one thread, beside the plain serial double reference, all in one run. Sizes: QTOS_BENCH_P (genomes, 1024),
// QTOS_BENCH_S (symbols, 100), QTOS_BENCH_T (hourly bars, 8760); the reference runs QTOS_BENCH_REF_P genomes (16).
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

#include "cpu/backtest/backtest.hpp"
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

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RegisterBenchmark("BM_Backtest/reference", BM_Reference)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("BM_Backtest/tbb_1thread", BM_Tbb, 1)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("BM_Backtest/tbb", BM_Tbb, 0)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
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
  return 0;
}
