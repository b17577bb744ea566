// Indicator batch throughput: 5,000 symbols x 2,520 bars x {SMA, EMA, RSI, ATR, ADX, BBANDS, MACD} x 10 periods on
// the CPU backend (and the CUDA one when a device is present), beside a straightforward scalar reference (the
// single-threaded double loops of cpu/indicators/reference.cpp), the two C libraries people use for this, Tulip
// Indicators and TA-Lib (when scripts/bench_peers.sh has fetched them: QTOS_BENCH_PEERS), and a STREAM-style triad,
// all in the same run. Counters: bar_updates/s per indicator, ratio to the reference, bytes/s and that as a fraction
// of the triad; the closing table puts qtos beside the better peer at one thread (by wall and by CPU time) and at all
// cores, Bollinger also on the peers' work (the three bands, per period and in one series_batch over the ten
// periods), and checks the peers' values against qtos's on the benchmark's data.
#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
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

#if defined(QTOS_BENCH_PEERS)
#include <indicators.h>  // Tulip Indicators
#include <ta_libc.h>     // TA-Lib
#endif

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
/// Bar updates/s by "<impl> <threads> <indicator>" (impl qtos, tulip or talib; threads "1" or "all").
std::map<std::string, double> rates;

/// Bar updates per second of the calling thread's CPU time, by the same keys, for the one-thread runs (a one-thread
/// arena runs its work on the calling thread): on a loaded machine a long run loses more wall time to neighbours than
/// a short one, so the CPU-time ratio is the steadier comparison; both are printed.
std::map<std::string, double> cpu_rates;

/// CPU time of the calling thread, in seconds.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

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

/// How qtos is asked: every output, one series() per period (`all`); the outputs the peers write (Bollinger's three
/// bands), one series_batch() per period (`bands`); those, one series_batch() over the ten periods (`batch`).
enum class Form { all, bands, batch };
/// The row name of a case asked in a form ("BBANDS", "BBANDS 3 bands", "BBANDS 3 bands x10").
std::string form_name(const Case& c, Form f) {
  return std::string(c.name) + (f == Form::all ? "" : f == Form::bands ? " 3 bands" : " 3 bands x10");
}

/// `threads` = 0: all cores; 1: one TBB thread (a per-core rate, comparable with the single-threaded reference even
/// when neighbours load the machine).
void BM_Backend(benchmark::State& state, Case c, const char* device, int threads, Form form) {
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
  const std::uint32_t mask = form == Form::all ? qtos::indicator_all_outputs(c.kind) : 7u;  // Bollinger: the bands
  std::vector<IndicatorParams> sets;
  for (int period : kPeriods) sets.push_back(params_for(c.kind, period));
  const std::size_t n_sets = form == Form::batch ? sets.size() : 1;
  // Every output written to its own memory: the batch's ten periods x three bands are 1.5 GB at this shape.
  std::vector<float> out(qtos::indicator_batch_out_size(c.kind, v, n_sets, mask));
  const auto run = [&](std::span<const IndicatorParams> prm) {
    if (form == Form::all) backend->series(v, c.kind, prm[0], out);
    else backend->series_batch(v, c.kind, prm, mask, out);
  };
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  arena.execute([&] { run(std::span(sets).first(n_sets)); });  // warm up (page the output in, upload to a GPU)
  double secs = 0, cpu_secs = 0, updates = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    arena.execute([&] {
      if (form == Form::batch) {
        run(sets);
      } else {
        for (const auto& prm : sets) run(std::span(&prm, 1));
      }
      updates += static_cast<double>(kSymbols) * kBars * static_cast<double>(sets.size());
    });
    benchmark::DoNotOptimize(out.data());
    cpu_secs += thread_cpu_seconds() - c0;
    secs += seconds_since(t0);
  }
  const int outputs = std::popcount(mask);
  const double rate = updates / secs;
  // Float inputs read plus outputs written per bar update; the batch reads a block's inputs once for its ten sets.
  const double bytes = rate * 4.0 * (c.inputs / static_cast<double>(n_sets) + outputs);
  const std::string name = form_name(c, form);
  if (std::string(device) == "cpu") rates[std::string("qtos") + (threads == 1 ? " 1 " : " all ") + name] = rate;
  if (std::string(device) == "cpu" && threads == 1) cpu_rates["qtos 1 " + name] = updates / cpu_secs;
  Summary& sm = summary[std::string(device) + (threads == 1 ? " 1-thread " : " ") + name];
  sm.rate = rate;
  sm.ratio = reference_rate.count(c.name) ? rate / reference_rate[c.name] : 0.0;
  sm.bytes = bytes;
  sm.fraction = triad_bytes_per_s > 0 ? bytes / triad_bytes_per_s : 0.0;
  state.counters["bar_updates_per_s"] = rate;
  state.counters["x_reference"] = sm.ratio;
  state.counters["bytes_per_s"] = bytes;
  state.counters["of_triad"] = sm.fraction;
}


#if defined(QTOS_BENCH_PEERS)
/// The benchmark panel in double, as the peers take it (converted once, outside the timings), and room for three
/// outputs of every symbol: the peers compute the same panel as qtos and write every value to memory as qtos does
/// (a cache-resident output buffer reused per symbol would measure another, smaller task).
struct PeerData {
  std::vector<std::vector<double>> high, low, close;
  std::vector<double> out[3];  ///< output j of symbol s, bar i (from the peer's first value) at out[j][s * kBars + i]
  PeerData() {
    const auto& p = panel();
    for (std::int32_t s = 0; s < kSymbols; ++s) {
      const auto h = p.row(qtos::Column::high, s), l = p.row(qtos::Column::low, s), c = p.row(qtos::Column::close, s);
      high.emplace_back(h.begin(), h.end());
      low.emplace_back(l.begin(), l.end());
      close.emplace_back(c.begin(), c.end());
    }
    for (auto& o : out) o.assign(static_cast<std::size_t>(kSymbols) * kBars, 0.0);
  }
};
PeerData& peer_data() {
  static PeerData d;
  return d;
}

enum class Peer { tulip, talib };
const char* peer_name(Peer p) { return p == Peer::tulip ? "tulip" : "talib"; }

/// Where one peer call writes, in qtos's output order (qtos's DMI is +DI, -DI, ADX; BBANDS middle, upper, lower; MACD
/// line, signal, histogram): o[j][i] is the value of bar begin[j] + i.
struct PeerOut {
  double* o[3];
  int begin[3] = {0, 0, 0};
  PeerOut(PeerData& d, std::int32_t s) {
    for (int j = 0; j < 3; ++j) o[j] = d.out[j].data() + static_cast<std::size_t>(s) * kBars;
  }
};

/// Runs one peer on one row of `n` bars, every output the indicator has, as its users would call it.
void peer_run(Peer peer, IndicatorKind kind, int period, const double* h, const double* l, const double* c, int n,
              PeerOut& out) {
  const IndicatorParams prm = params_for(kind, period);
  if (peer == Peer::tulip) {
    const double* hlc[] = {h, l, c};
    const double* cl[] = {c};
    double opt[3] = {double(period), 0, 0};
    double* o1[] = {out.o[0]};
    switch (kind) {
      case IndicatorKind::sma: ti_sma(n, cl, opt, o1); out.begin[0] = ti_sma_start(opt); break;
      case IndicatorKind::ema: ti_ema(n, cl, opt, o1); out.begin[0] = ti_ema_start(opt); break;
      case IndicatorKind::rsi: ti_rsi(n, cl, opt, o1); out.begin[0] = ti_rsi_start(opt); break;
      case IndicatorKind::atr: ti_atr(n, hlc, opt, o1); out.begin[0] = ti_atr_start(opt); break;
      case IndicatorKind::dmi: {
        double* o2[] = {out.o[0], out.o[1]};
        ti_di(n, hlc, opt, o2);
        out.begin[0] = out.begin[1] = ti_di_start(opt);
        double* o3[] = {out.o[2]};
        ti_adx(n, hlc, opt, o3);
        out.begin[2] = ti_adx_start(opt);
        break;
      }
      case IndicatorKind::bbands: {
        opt[1] = prm.k;
        double* o3[] = {out.o[2], out.o[0], out.o[1]};  // lower, middle, upper
        ti_bbands(n, cl, opt, o3);
        out.begin[0] = out.begin[1] = out.begin[2] = ti_bbands_start(opt);
        break;
      }
      case IndicatorKind::macd: {
        opt[1] = prm.period2;
        opt[2] = prm.period3;
        double* o3[] = {out.o[0], out.o[1], out.o[2]};
        ti_macd(n, cl, opt, o3);
        out.begin[0] = out.begin[1] = out.begin[2] = ti_macd_start(opt);
        break;
      }
      default: break;
    }
    return;
  }
  int beg = 0, nb = 0;
  switch (kind) {
    case IndicatorKind::sma: TA_SMA(0, n - 1, c, period, &beg, &nb, out.o[0]); break;
    case IndicatorKind::ema: TA_EMA(0, n - 1, c, period, &beg, &nb, out.o[0]); break;
    case IndicatorKind::rsi: TA_RSI(0, n - 1, c, period, &beg, &nb, out.o[0]); break;
    case IndicatorKind::atr: TA_ATR(0, n - 1, h, l, c, period, &beg, &nb, out.o[0]); break;
    case IndicatorKind::dmi:
      TA_PLUS_DI(0, n - 1, h, l, c, period, &beg, &nb, out.o[0]);
      out.begin[0] = beg;
      TA_MINUS_DI(0, n - 1, h, l, c, period, &beg, &nb, out.o[1]);
      out.begin[1] = beg;
      TA_ADX(0, n - 1, h, l, c, period, &beg, &nb, out.o[2]);
      out.begin[2] = beg;
      return;
    case IndicatorKind::bbands:
      TA_BBANDS(0, n - 1, c, period, prm.k, prm.k, TA_MAType_SMA, &beg, &nb, out.o[1], out.o[0],
                out.o[2]);
      break;
    case IndicatorKind::macd:
      TA_MACD(0, n - 1, c, prm.period, prm.period2, prm.period3, &beg, &nb, out.o[0], out.o[1],
              out.o[2]);
      break;
    default: break;
  }
  out.begin[0] = out.begin[1] = out.begin[2] = beg;
}

/// A peer over the slice, every period: one thread, or all cores (parallel over symbols, as qtos's backend).
void BM_Peer(benchmark::State& state, Case c, Peer peer, int threads) {
  PeerData& d = peer_data();
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  double secs = 0, cpu_secs = 0, updates = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    arena.execute([&] {
      for (int period : kPeriods) {
        tbb::parallel_for(tbb::blocked_range<std::int32_t>(0, kSymbols, 8), [&](const auto& r) {
          for (std::int32_t s = r.begin(); s != r.end(); ++s) {
            PeerOut out(d, s);
            peer_run(peer, c.kind, period, d.high[s].data(), d.low[s].data(), d.close[s].data(), kBars, out);
          }
        });
        benchmark::DoNotOptimize(d.out[0].data());
        updates += static_cast<double>(kSymbols) * kBars;
      }
    });
    cpu_secs += thread_cpu_seconds() - c0;
    secs += seconds_since(t0);
  }
  if (threads == 1) cpu_rates[std::string(peer_name(peer)) + " 1 " + c.name] = updates / cpu_secs;
  rates[std::string(peer_name(peer)) + (threads == 1 ? " 1 " : " all ") + c.name] = updates / secs;
  state.counters["bar_updates_per_s"] = updates / secs;
}

/// The peers' values beside qtos's (the CPU backend, float) on the benchmark's first symbols at period 14 (MACD
/// 14/30/9): where each output's first value lies, and the largest relative difference over the bars both have, over
/// all of them and from bar 300 on (where differently seeded recursions have converged).
void check_peer_values() {
  constexpr std::int32_t kCheck = 50;
  constexpr std::int32_t kSettled = 300;
  const auto backends = qtos::indicator_backends();
  const qtos::IndicatorBackend* cpu = nullptr;
  for (const auto& b : backends)
    if (b->name() == "cpu") cpu = b.get();
  const auto& p = panel();
  const auto v = p.view(kCheck);
  PeerData& d = peer_data();
  std::printf("\nvalues of the peers vs qtos (float, CPU backend), period 14 (MACD 14/30/9), %d symbols x %d bars;\n"
              "first value: the bar of each one's first output; difference: |qtos - peer| / max(|peer|, 1e-4 x close)\n",
              kCheck, kBars);
  std::printf("%-8s %-6s %-10s %22s %16s %16s\n", "family", "peer", "output", "first value peer/qtos",
              "max rel. diff", "from bar 300");
  for (const Case& c : kCases) {
    const IndicatorParams prm = params_for(c.kind, 14);
    std::vector<float> q(qtos::indicator_out_size(c.kind, v));
    cpu->series(v, c.kind, prm, q);
    const std::int64_t plane = static_cast<std::int64_t>(v.n_symbols) * v.stride;
    const auto names = qtos::indicator_output_names(c.kind);
    const int outputs = std::min(3, qtos::kernels::indicator_output_count(c.kind));
    for (Peer peer : {Peer::tulip, Peer::talib}) {
      for (int j = 0; j < outputs; ++j) {
        double worst = 0, worst_settled = 0;
        int first_peer = 0;
        for (std::int32_t s = 0; s < kCheck; ++s) {
          PeerOut out(d, s);
          peer_run(peer, c.kind, 14, d.high[s].data(), d.low[s].data(), d.close[s].data(), kBars, out);
          first_peer = out.begin[j];
          for (std::int32_t t = out.begin[j]; t < kBars; ++t) {
            const double qv = q[static_cast<std::size_t>(j * plane + s * v.stride + t)];
            const double pv = out.o[j][static_cast<std::size_t>(t - out.begin[j])];
            if (!std::isfinite(qv) || !std::isfinite(pv)) continue;
            // Relative, with a floor of 1e-4 of the close: MACD's line is a small difference of two prices, where
            // float rounding of the prices (1e-7 of the price) is a large part of a tiny value.
            const double floor = 1e-4 * std::fabs(d.close[s][static_cast<std::size_t>(t)]);
            const double rel = std::fabs(qv - pv) / std::max({std::fabs(pv), floor, 1e-12});
            worst = std::max(worst, rel);
            if (t >= kSettled) worst_settled = std::max(worst_settled, rel);
          }
        }
        const int first_qtos = qtos::indicator_lookback(c.kind, prm, j);
        std::printf("%-8s %-6s %-10s %14d / %-5d %16.3g %16.3g\n", c.name, peer_name(peer), names[j].c_str(), first_peer,
                    first_qtos, worst, worst_settled);
      }
    }
  }
}
#endif

const bool registered = [] {
  for (const Case& c : kCases)
    benchmark::RegisterBenchmark((std::string("BM_Reference/") + c.name).c_str(), BM_Reference, c)
        ->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const char* device : {"cpu", "cuda"})
    for (const Case& c : kCases)
      benchmark::RegisterBenchmark((std::string("BM_Indicators/") + device + "/" + c.name).c_str(), BM_Backend, c, device, 0,
                                   Form::all)
          ->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const Case& c : kCases)
    benchmark::RegisterBenchmark((std::string("BM_Indicators/cpu_1thread/") + c.name).c_str(), BM_Backend, c, "cpu", 1,
                                 Form::all)
        ->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  // Bollinger as the peers compute it: the three bands (not width and %b), one period a call and the ten in one call.
  for (const Case& c : kCases)
    if (c.kind == IndicatorKind::bbands)
      for (const Form form : {Form::bands, Form::batch})
        for (const int threads : {1, 0}) {
          const std::string sub = form == Form::bands ? "BBANDS_3bands" : "BBANDS_3bands_x10";
          benchmark::RegisterBenchmark((std::string("BM_Indicators/cpu") + (threads == 1 ? "_1thread/" : "/") + sub).c_str(),
                                       BM_Backend, c, "cpu", threads, form)
              ->Iterations(threads == 1 ? 1 : 2)->Unit(benchmark::kMillisecond)->UseRealTime();
        }
#if defined(QTOS_BENCH_PEERS)
  for (int threads : {1, 0})
    for (Peer peer : {Peer::tulip, Peer::talib})
      for (const Case& c : kCases)
        benchmark::RegisterBenchmark((std::string("BM_Peer/") + peer_name(peer) + (threads == 1 ? "_1thread/" : "/") +
                                      c.name).c_str(), BM_Peer, c, peer, threads)
            ->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif
  return true;
}();

}  // namespace

int main(int argc, char** argv) {
#if defined(QTOS_BENCH_PEERS)
  TA_Initialize();
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("\n%d symbols x %d bars x 10 periods; triad %.2f GB/s (measured above)\n", kSymbols, kBars,
              triad_bytes_per_s / 1e9);
  std::printf("%-22s %16s %12s %12s %10s\n", "indicator", "bar-updates/s", "x reference", "GB/s", "of triad");
  for (const auto& [name, s] : summary)
    std::printf("%-22s %16.4g %12.2f %12.2f %9.1f%%\n", name.c_str(), s.rate, s.ratio, s.bytes / 1e9, 100.0 * s.fraction);
#if defined(QTOS_BENCH_PEERS)
  // qtos beside the better of Tulip Indicators and TA-Lib (their double C at -O3 -march=native), same run.
  std::printf("\nqtos vs the better peer, M bar-updates/s (same run; target: qtos/best >= 2 at one thread)\n");
  std::printf("%-18s %9s %9s %9s %10s | %9s %9s %9s %10s %9s | %14s\n", "", "qtos 1T", "tulip 1T", "talib 1T",
              "qtos/best", "qtos all", "tulip all", "talib all", "qtos/best", "of triad", "1T by CPU time");
  const auto rate = [](const std::string& key) { return rates.count(key) ? rates.at(key) : 0.0; };
  const auto row = [&](const std::string& q_name, const std::string& peer_name) {
    std::printf("%-18s", q_name.c_str());
    for (const char* th : {" 1 ", " all "}) {
      const double q = rate("qtos" + (th + q_name)), tu = rate("tulip" + (th + peer_name)),
                   ta = rate("talib" + (th + peer_name));
      const double best = std::max(tu, ta);
      std::printf(" %9.1f %9.1f %9.1f %9.2fx%s", q / 1e6, tu / 1e6, ta / 1e6, best > 0 ? q / best : 0.0,
                  th[1] == '1' ? " |" : "");
    }
    const auto it = summary.find("cpu " + q_name);
    const auto cpu_rate = [](const std::string& key) { return cpu_rates.count(key) ? cpu_rates.at(key) : 0.0; };
    const double best_cpu = std::max(cpu_rate("tulip 1 " + peer_name), cpu_rate("talib 1 " + peer_name));
    std::printf(" %8.1f%% | %13.2fx\n", it != summary.end() ? 100.0 * it->second.fraction : 0.0,
                best_cpu > 0 ? cpu_rate("qtos 1 " + q_name) / best_cpu : 0.0);
  };
  for (const Case& c : kCases) {
    row(c.name, c.name);
    // The peers write Bollinger's three bands: qtos asked for the same three, per period and in one batch call.
    if (c.kind == IndicatorKind::bbands)
      for (const Form form : {Form::bands, Form::batch}) row(form_name(c, form), c.name);
  }
  check_peer_values();
  TA_Shutdown();
#endif
  return 0;
}
