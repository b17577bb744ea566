// Ranking latency, 5,000 symbols x 252-bar lookback: the full recompute (features of every symbol from scratch over
// 252 bars, then filters, robust z-scores and the sort) against its 50 ms budget, and the incremental one-new-bar
// update of the live feature state of all 5,000 symbols against its 1 ms budget (and, separately, the re-rank).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/indicators/streaming.hpp"
#include "cpu/ranking/opportunity.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/data/synth.hpp"

namespace {

constexpr std::int32_t kSymbols = 5000;
constexpr std::int32_t kLookback = 252;
constexpr std::int32_t kExtra = 4096;  // bars after the lookback fed one at a time by the incremental benchmark

/// The benchmark panel: the project's synthetic market (runtime/data/synth.hpp), all symbols listed from bar 0.
struct BenchPanel {
  qtos::MarketPanel panel = make();
  std::int32_t n_bars = panel.n_bars();
  const std::vector<std::string>& symbols = panel.symbols();
  static qtos::MarketPanel make() {
    qtos::SynthOptions o;
    o.n_symbols = kSymbols;
    o.n_bars = kLookback + kExtra;
    o.seed = 99;
    o.late_listing_fraction = 0;
    return qtos::synth_generate(o).panel;
  }
  qtos::kernels::PanelView view() const { return panel.view(); }
};

const BenchPanel& panel() {
  static const BenchPanel p;
  return p;
}

const qtos::IndicatorBackend& cpu_backend() {
  static const auto backends = qtos::indicator_backends();
  return *backends.back();
}

/// Process CPU time (all threads), seconds: on this shared 2-core machine the wall time depends on the neighbours'
/// load, so the CPU time of all threads is reported too (wall on an idle machine ~ cpu_all / cores).
double process_cpu_s() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

struct CpuMeter {
  double start = process_cpu_s();
  void report(benchmark::State& state, double budget_ms) const {
    state.counters["budget_ms"] = budget_ms;
    state.counters["cpu_all_threads_ms"] =
        1e3 * (process_cpu_s() - start) / static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
  }
};

// Features over bars [0, 251] for every symbol, then the ranking.
void BM_FullRecompute(benchmark::State& state) {
  const auto& p = panel();
  const qtos::kernels::FeatureParams fp;
  std::vector<qtos::kernels::FeatureRow> rows(kSymbols);
  std::int32_t eligible = 0;
  const CpuMeter meter;
  for (auto _ : state) {
    cpu_backend().features(p.view(), fp, 0, kLookback - 1, rows);
    const auto r = qtos::opportunity_rank(rows, p.symbols, kLookback - 1, qtos::RankWeights{}, qtos::RankFilters{});
    eligible = r.eligible;
    benchmark::DoNotOptimize(r.rows.data());
  }
  state.counters["ranked"] = eligible;
  meter.report(state, 50.0);
}
BENCHMARK(BM_FullRecompute)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// The full recompute on one TBB thread: the per-core cost, unaffected by how much of the second core the
// neighbours leave (on an idle 2-core machine the 2-thread wall time is about half of it).
void BM_FullRecomputeOneThread(benchmark::State& state) {
  const auto& p = panel();
  const qtos::kernels::FeatureParams fp;
  std::vector<qtos::kernels::FeatureRow> rows(kSymbols);
  tbb::task_arena one(1);
  const CpuMeter meter;
  for (auto _ : state) {
    one.execute([&] {
      cpu_backend().features(p.view(), fp, 0, kLookback - 1, rows);
      const auto r = qtos::opportunity_rank(rows, p.symbols, kLookback - 1, qtos::RankWeights{}, qtos::RankFilters{});
      benchmark::DoNotOptimize(r.rows.data());
    });
  }
  meter.report(state, 100.0);
}
BENCHMARK(BM_FullRecomputeOneThread)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// Only the features (no ranking), to show where the full recompute's time goes.
void BM_FullRecomputeFeaturesOnly(benchmark::State& state) {
  const auto& p = panel();
  const qtos::kernels::FeatureParams fp;
  std::vector<qtos::kernels::FeatureRow> rows(kSymbols);
  const CpuMeter meter;
  for (auto _ : state) {
    cpu_backend().features(p.view(), fp, 0, kLookback - 1, rows);
    benchmark::DoNotOptimize(rows.data());
  }
  meter.report(state, 50.0);
}
BENCHMARK(BM_FullRecomputeFeaturesOnly)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// One new bar for all 5,000 symbols into the live feature state (O(1) per symbol; window features are evaluated
// when the features are read, see the next benchmark).
void BM_IncrementalUpdate(benchmark::State& state) {
  const auto& p = panel();
  qtos::FeatureEngine engine(kSymbols, qtos::kernels::FeatureParams{});
  engine.replay(p.view(), 0, kLookback - 1);
  std::int32_t t = kLookback;
  const CpuMeter meter;
  for (auto _ : state) {
    if (t == p.n_bars) {
      state.PauseTiming();
      engine.replay(p.view(), 0, kLookback - 1);
      t = kLookback;
      state.ResumeTiming();
    }
    engine.advance_from(p.view(), t++);
    benchmark::DoNotOptimize(&engine);
  }
  meter.report(state, 1.0);
}
BENCHMARK(BM_IncrementalUpdate)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2.0);

// What a live ranking tick costs end to end: the one-bar update, the window features of the 5,000 symbols that
// moved (evaluated on read, O(window) each), and the re-rank (filters, nine robust z-scores, sort).
void BM_IncrementalUpdateThenRank(benchmark::State& state) {
  const auto& p = panel();
  qtos::FeatureEngine engine(kSymbols, qtos::kernels::FeatureParams{});
  engine.replay(p.view(), 0, kLookback - 1);
  std::int32_t t = kLookback;
  const CpuMeter meter;
  for (auto _ : state) {
    if (t == p.n_bars) {
      state.PauseTiming();
      engine.replay(p.view(), 0, kLookback - 1);
      t = kLookback;
      state.ResumeTiming();
    }
    engine.advance_from(p.view(), t);
    const auto r = qtos::opportunity_rank(engine.rows(), p.symbols, t++, qtos::RankWeights{}, qtos::RankFilters{});
    benchmark::DoNotOptimize(r.rows.data());
  }
  meter.report(state, 0.0);
}
BENCHMARK(BM_IncrementalUpdateThenRank)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
