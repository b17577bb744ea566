// Indicator batch throughput: 5,000 symbols x 2,520 bars x {SMA, EMA, RSI, ATR, ADX, BBANDS, MACD} x 10 periods on
// the CPU backend (and the CUDA one when a device is present), beside a straightforward scalar reference (the
// single-threaded double loops of cpu/indicators/reference.cpp) and a STREAM-style triad, all in the same run.
// Counters: bar_updates/s per indicator, ratio to the reference, bytes/s and that as a fraction of the triad.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/indicators/reference.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/data/synth.hpp"

namespace {

using qtos::kernels::IndicatorKind;
using qtos::kernels::IndicatorParams;

constexpr std::int32_t kSymbols = 5000;
constexpr std::int32_t kBars = 2520;
constexpr std::int32_t kRefSymbols = 100;  // the scalar reference runs on a slice; its rate is per bar update
constexpr int kPeriods[10] = {5, 10, 14, 20, 30, 40, 50, 75, 100, 200};

/// The benchmark panel: the project's synthetic market (runtime/data/synth.hpp), every symbol listed from the
/// first bar and no gaps, so every symbol contributes kBars bar updates.
struct BenchPanel {
  qtos::MarketPanel panel = make();
  std::int64_t stride = panel.stride();
  static qtos::MarketPanel make() {
    qtos::SynthOptions o;
    o.n_symbols = kSymbols;
    o.n_bars = kBars;
    o.seed = 1;
    o.late_listing_fraction = 0;
    o.gap_rate = 0;
    return qtos::synth_generate(o).panel;
  }
  std::span<const float> row(qtos::Column c, std::int32_t s) const { return panel.series(c, s); }
  qtos::kernels::PanelView view(std::int32_t n_symbols = kSymbols) const {
    auto v = panel.view();
    v.n_symbols = n_symbols;
    return v;
  }
};

const BenchPanel& panel() {
  static const BenchPanel p;
  return p;
}

struct Case {
  const char* name;
  IndicatorKind kind;
  int inputs;  // columns read
};
const Case kCases[] = {{"SMA", IndicatorKind::sma, 1},   {"EMA", IndicatorKind::ema, 1},
                       {"RSI", IndicatorKind::rsi, 1},   {"ATR", IndicatorKind::atr, 3},
                       {"ADX", IndicatorKind::dmi, 3},   {"BBANDS", IndicatorKind::bbands, 1},
                       {"MACD", IndicatorKind::macd, 1}};

IndicatorParams params_for(IndicatorKind kind, int p) {
  IndicatorParams prm;
  prm.period = p;
  if (kind == IndicatorKind::macd) {  // fast p, slow 2p + 2, signal 9 (12/26/9 at p = 12)
    prm.period2 = 2 * p + 2;
    prm.period3 = 9;
  }
  return prm;
}

double triad_bytes_per_s = 0.0;
std::map<std::string, double> reference_rate;  // bar updates/s of the scalar reference, by indicator
struct Summary {
  double rate = 0, ratio = 0, bytes = 0, fraction = 0;
};
std::map<std::string, Summary> summary;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// STREAM triad a = b + s*c on doubles, 3 x 8 bytes per element counted as STREAM does, parallel over all cores.
void BM_StreamTriad(benchmark::State& state) {
  const std::size_t n = std::size_t{1} << 25;  // 3 x 256 MiB, far beyond the caches
  std::vector<double> a(n, 0.0), b(n, 1.0), c(n, 2.0);
  double secs = 0;
  std::int64_t reps = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1 << 16), [&](const auto& r) {
      for (std::size_t i = r.begin(); i != r.end(); ++i) a[i] = b[i] + 3.0 * c[i];
    });
    benchmark::DoNotOptimize(a.data());
    secs += seconds_since(t0);
    ++reps;
  }
  triad_bytes_per_s = 24.0 * static_cast<double>(n) * static_cast<double>(reps) / secs;
  state.counters["bytes_per_s"] = triad_bytes_per_s;
}
BENCHMARK(BM_StreamTriad)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Reference(benchmark::State& state, Case c) {
  const auto& p = panel();
  double secs = 0, updates = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int period : kPeriods) {
      for (std::int32_t s = 0; s < kRefSymbols; ++s) {
        const auto hs = p.row(qtos::Column::high, s), ls = p.row(qtos::Column::low, s), cs = p.row(qtos::Column::close, s);
        const std::vector<double> h(hs.begin(), hs.end());
        const std::vector<double> l(ls.begin(), ls.end());
        const std::vector<double> cl(cs.begin(), cs.end());
        switch (c.kind) {
          case IndicatorKind::sma: benchmark::DoNotOptimize(qtos::reference::sma(cl, period)); break;
          case IndicatorKind::ema: benchmark::DoNotOptimize(qtos::reference::ema(cl, period)); break;
          case IndicatorKind::rsi: benchmark::DoNotOptimize(qtos::reference::rsi(cl, period)); break;
          case IndicatorKind::atr: benchmark::DoNotOptimize(qtos::reference::atr(h, l, cl, period)); break;
          case IndicatorKind::dmi: benchmark::DoNotOptimize(qtos::reference::dmi(h, l, cl, period)); break;
          case IndicatorKind::bbands: benchmark::DoNotOptimize(qtos::reference::bbands(cl, period, 2.0)); break;
          case IndicatorKind::macd: benchmark::DoNotOptimize(qtos::reference::macd(cl, period, 2 * period + 2, 9)); break;
          default: break;
        }
        updates += kBars;
      }
    }
    secs += seconds_since(t0);
  }
  reference_rate[c.name] = updates / secs;
  state.counters["bar_updates_per_s"] = updates / secs;
}

/// `threads` = 0: all cores; 1: one TBB thread (a per-core rate, comparable with the single-threaded reference even
/// when neighbours load the machine).
void BM_Backend(benchmark::State& state, Case c, const char* device, int threads) {
  auto backends = qtos::indicator_backends();
  const qtos::IndicatorBackend* backend = nullptr;
  for (const auto& b : backends)
    if (b->name() == device && b->available()) backend = b.get();
  if (!backend) {
    state.SkipWithError((std::string(device) + " backend not available here").c_str());
    return;
  }
  const auto& p = panel();
  const auto v = p.view();
  std::vector<float> out(qtos::indicator_out_size(c.kind, v));
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  arena.execute([&] { backend->series(v, c.kind, params_for(c.kind, 14), out); });  // warm up (and upload to a GPU)
  double secs = 0, updates = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    arena.execute([&] {
      for (int period : kPeriods) {
        backend->series(v, c.kind, params_for(c.kind, period), out);
        updates += static_cast<double>(kSymbols) * kBars;
      }
    });
    benchmark::DoNotOptimize(out.data());
    secs += seconds_since(t0);
  }
  const int outputs = qtos::kernels::indicator_output_count(c.kind);
  const double rate = updates / secs;
  const double bytes = rate * 4.0 * (c.inputs + outputs);  // float inputs read + outputs written per bar update
  Summary& sm = summary[std::string(device) + (threads == 1 ? " 1-thread " : " ") + c.name];
  sm.rate = rate;
  sm.ratio = reference_rate.count(c.name) ? rate / reference_rate[c.name] : 0.0;
  sm.bytes = bytes;
  sm.fraction = triad_bytes_per_s > 0 ? bytes / triad_bytes_per_s : 0.0;
  state.counters["bar_updates_per_s"] = rate;
  state.counters["x_reference"] = sm.ratio;
  state.counters["bytes_per_s"] = bytes;
  state.counters["of_triad"] = sm.fraction;
}

const bool registered = [] {
  for (const Case& c : kCases)
    benchmark::RegisterBenchmark((std::string("BM_Reference/") + c.name).c_str(), BM_Reference, c)
        ->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const char* device : {"cpu", "cuda"})
    for (const Case& c : kCases)
      benchmark::RegisterBenchmark((std::string("BM_Indicators/") + device + "/" + c.name).c_str(), BM_Backend, c, device, 0)
          ->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const Case& c : kCases)
    benchmark::RegisterBenchmark((std::string("BM_Indicators/cpu_1thread/") + c.name).c_str(), BM_Backend, c, "cpu", 1)
        ->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  return true;
}();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("\n%d symbols x %d bars x 10 periods; triad %.2f GB/s (measured above)\n", kSymbols, kBars,
              triad_bytes_per_s / 1e9);
  std::printf("%-22s %16s %12s %12s %10s\n", "indicator", "bar-updates/s", "x reference", "GB/s", "of triad");
  for (const auto& [name, s] : summary)
    std::printf("%-22s %16.4g %12.2f %12.2f %9.1f%%\n", name.c_str(), s.rate, s.ratio, s.bytes / 1e9, 100.0 * s.fraction);
  return 0;
}
