// Ranking latency, 5,000 symbols x 252-bar lookback: the full recompute (features of every symbol from scratch over
// 252 bars, then filters, robust z-scores and the sort) against its 50 ms budget, and the incremental one-new-bar
// update of the live feature state of all 5,000 symbols against its 1 ms budget (and, separately, the re-rank).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/indicators/streaming.hpp"
#include "cpu/ranking/opportunity.hpp"

namespace {

constexpr std::int32_t kSymbols = 5000;
constexpr std::int32_t kLookback = 252;
constexpr std::int32_t kExtra = 4096;  // bars after the lookback fed one at a time by the incremental benchmark

struct BenchPanel {
  std::int32_t n_bars = kLookback + kExtra;
  std::int64_t stride = (kLookback + kExtra + 15) / 16 * 16;
  std::vector<float> high, low, close, qvol;
  std::vector<std::string> symbols;
  BenchPanel() {
    const std::size_t n = static_cast<std::size_t>(kSymbols) * static_cast<std::size_t>(stride);
    high.assign(n, NAN);
    low.assign(n, NAN);
    close.assign(n, NAN);
    qvol.assign(n, 0.0f);
    for (std::int32_t s = 0; s < kSymbols; ++s) {
      std::string name = std::to_string(s);  // built by appending: GCC 12 warns falsely (-Wrestrict) on "S" + string
      name.insert(0, 1, 'S');
      name.append("USDT");
      symbols.push_back(name);
    }
    tbb::parallel_for(0, kSymbols, [&](std::int32_t s) {
      std::mt19937_64 rng(static_cast<std::uint64_t>(s) + 99);
      std::normal_distribution<double> g(0.0, 1.0);
      std::uniform_real_distribution<double> u(0.0, 1.0);
      double p = 1.0 + 100.0 * u(rng);
      const double vol = 0.005 + 0.03 * u(rng);
      const double liq = std::exp(6.0 + 8.0 * u(rng));
      for (std::int32_t t = 0; t < n_bars; ++t) {
        const double o = p;
        p *= std::exp(vol * g(rng));
        const std::size_t i = static_cast<std::size_t>(s * stride + t);
        high[i] = static_cast<float>(std::max(o, p) * (1 + vol * u(rng)));
        low[i] = static_cast<float>(std::min(o, p) * (1 - vol * u(rng)));
        close[i] = static_cast<float>(p);
        qvol[i] = static_cast<float>(liq * p * std::exp(g(rng)));
      }
    });
  }
  qtos::kernels::PanelView view() const {
    qtos::kernels::PanelView v;
    v.high = high.data();
    v.low = low.data();
    v.close = close.data();
    v.quote_volume = qvol.data();
    v.n_symbols = kSymbols;
    v.n_bars = n_bars;
    v.stride = stride;
    return v;
  }
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
