// Time to quality: the best out-of-sample Sharpe the genetic search reaches within a fixed wall-clock budget, on every
// backtest backend available (CUDA first when compiled in and a device is present), beside a peer in the same run:
// plain random search on the CPU backend with the same budget, train/test split and hall-of-fame rule.
// Market: synth_generate with a planted momentum edge. Sizes: QTOS_BENCH_BUDGET_S (wall seconds per run, 20),
// QTOS_BENCH_S (symbols, 20), QTOS_BENCH_T (hourly bars, 4000), QTOS_BENCH_P (population, 64).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "cpu/backtest/backtest.hpp"
#include "cpu/registry/backends.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/strategy/deflated_sharpe.hpp"
#include "runtime/strategy/evolution.hpp"

namespace {

double env_double(const char* name, double def) {
  const char* v = std::getenv(name);
  return v ? std::atof(v) : def;
}

const double kBudget = env_double("QTOS_BENCH_BUDGET_S", 20.0);
const auto kS = static_cast<std::int32_t>(env_double("QTOS_BENCH_S", 20));
const auto kT = static_cast<std::int32_t>(env_double("QTOS_BENCH_T", 4000));
const auto kP = static_cast<std::int32_t>(env_double("QTOS_BENCH_P", 64));
constexpr std::int32_t kHallOfFame = 10;

struct Fixture {
  qtos::SynthMarket market;
  qtos::StrategyFeatures features;
  std::int32_t train_end = 0;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    qtos::SynthOptions o;
    o.n_symbols = kS;
    o.n_bars = kT;
    o.seed = 2024;
    o.planted_momentum = 0.15;
    o.late_listing_fraction = 0.0;
    Fixture x{qtos::synth_generate(o), {}, static_cast<std::int32_t>(0.7 * kT)};
    x.features = qtos::strategy_features_compute(x.market.panel.view());
    return x;
  }();
  return f;
}

struct Row {
  std::string what;
  double generations = 0, genomes = 0, bar_steps_per_s = 0, best_oos_sharpe = 0, dsr = 0, sr0 = 0, wall = 0;
  std::string note;
  double best_train_sharpe = 0;  ///< best in-sample Sharpe of the hall of fame (what the search optimised)
};
std::vector<Row> rows;

qtos::EvolveOptions options() {
  const Fixture& f = fixture();
  qtos::EvolveOptions o;
  o.population = kP;
  o.generations = 100'000;  // the budget stops it
  o.seed = 1;
  o.hall_of_fame = kHallOfFame;
  o.train_begin = 0;
  o.train_end = f.train_end;
  o.test_begin = f.train_end;
  o.test_end = kT;
  o.time_budget_seconds = kBudget;
  return o;
}

void BM_Evolve(benchmark::State& state, const qtos::BacktestBackend* backend) {
  const Fixture& f = fixture();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const qtos::EvolveResult r = qtos::evolve(f.market.panel.view(), f.features, *backend, options());
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& best = r.hall_of_fame.front();
    rows.push_back({"genetic search, " + std::string(backend->name()), static_cast<double>(r.generations.size()),
                    static_cast<double>(r.trials), r.seconds > 0 ? r.bar_steps / r.seconds : 0.0, best.test.sharpe,
                    best.deflated_sharpe,
                    qtos::expected_max_sharpe(static_cast<double>(r.trials), r.sr_variance) * std::sqrt(options().costs.bars_per_year),
                    wall, qtos::genome_id(best.genome)});
    double best_train = -1e300;
    for (const auto& e : r.hall_of_fame) best_train = std::max(best_train, e.train.sharpe);
    rows.back().best_train_sharpe = best_train;
    state.counters["best_oos_sharpe"] = best.test.sharpe;
  }
}

/// The peer: batches of P fresh random genomes until the budget is spent; hall of fame = best train fitness.
void BM_RandomSearch(benchmark::State& state, const qtos::BacktestBackend* backend) {
  const Fixture& f = fixture();
  const qtos::EvolveOptions o = options();
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    qtos::Rng rng(o.seed, 0x7a3d);
    qtos::BacktestRequest req;
    req.panel = f.market.panel.view();
    req.features = &f.features;
    req.costs = o.costs;
    req.t_begin = o.train_begin;
    req.t_end = o.train_end;
    struct Trial {
      qtos::kernels::Genome genome;
      qtos::BacktestMetrics train;
      double fitness = 0;
    };
    std::map<std::uint64_t, Trial> tried;
    double batches = 0, steps = 0, secs = 0;
    while (batches == 0 || std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < kBudget) {
      std::vector<qtos::kernels::Genome> batch;
      while (batch.size() < static_cast<std::size_t>(kP)) {
        const auto g = qtos::genome_random(rng);
        if (tried.count(qtos::genome_hash(g)) == 0) batch.push_back(g);
      }
      req.genomes = batch;
      const auto b0 = std::chrono::steady_clock::now();
      const auto res = backend->run(req);
      secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count();
      steps += static_cast<double>(batch.size()) * kS * (o.train_end - o.train_begin);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        Trial t{batch[i], qtos::backtest_metrics(res.genome[i], o.costs.bars_per_year), 0};
        t.fitness = qtos::evolve_fitness(t.train, o.min_trades);
        tried.emplace(qtos::genome_hash(batch[i]), t);
      }
      batches += 1;
    }
    double n = 0, s = 0, s2 = 0;
    std::vector<const Trial*> all;
    for (const auto& [h, t] : tried) {
      all.push_back(&t);
      if (t.train.trades > 0) n += 1, s += t.train.sr_bar, s2 += t.train.sr_bar * t.train.sr_bar;
    }
    const double var = n > 1 ? std::max(0.0, (s2 - s * s / n) / (n - 1)) : 0.0;
    std::stable_sort(all.begin(), all.end(), [](const Trial* a, const Trial* b) { return a->fitness > b->fitness; });
    all.resize(std::min<std::size_t>(all.size(), kHallOfFame));
    std::vector<qtos::kernels::Genome> hof;
    for (const Trial* t : all) hof.push_back(t->genome);
    req.genomes = hof;
    req.t_begin = o.test_begin;
    req.t_end = o.test_end;
    const auto test = backend->run(req);
    double best_sharpe = -1e300, best_dsr = 0;
    std::string best_id;
    for (std::size_t i = 0; i < hof.size(); ++i) {
      const auto m = qtos::backtest_metrics(test.genome[i], o.costs.bars_per_year);
      if (m.sharpe > best_sharpe) {
        best_sharpe = m.sharpe;
        best_dsr = m.trades > 0 ? qtos::deflated_sharpe(m.sr_bar, m.observations, m.skew, m.kurtosis, static_cast<double>(tried.size()), var)
                                : 0.0;
        best_id = qtos::genome_id(hof[i]);
      }
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rows.push_back({"random search, " + std::string(backend->name()) + " (peer)", batches, static_cast<double>(tried.size()),
                    secs > 0 ? steps / secs : 0.0, best_sharpe, best_dsr,
                    qtos::expected_max_sharpe(static_cast<double>(tried.size()), var) * std::sqrt(o.costs.bars_per_year), wall, best_id});
    rows.back().best_train_sharpe = all.empty() ? 0.0 : all.front()->train.sharpe;
    state.counters["best_oos_sharpe"] = best_sharpe;
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const auto backends = qtos::backtest_backends();  // CUDA first when compiled in
  const qtos::BacktestBackend* cpu = nullptr;
  std::vector<std::string> skipped;
  for (const auto& b : backends) {
    if (b->name() == "cpu") cpu = b.get();
    if (!b->available()) {
      const auto& d = qtos::device_report();
      skipped.push_back(std::string(b->name()) + ": skipped, no usable device (" + (d.cuda_error.empty() ? "none found" : d.cuda_error) + ")");
      continue;
    }
    benchmark::RegisterBenchmark(("BM_EvolveQuality/" + std::string(b->name())).c_str(), BM_Evolve, b.get())
        ->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
  }
  if (cpu)
    benchmark::RegisterBenchmark("BM_EvolveQuality/random_search_cpu", BM_RandomSearch, cpu)
        ->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
  for (const auto& s : skipped) std::printf("%s\n", s.c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("\nS=%d symbols x T=%d bars (train %d, test %d), planted momentum 0.15, population %d, budget %.0f s per run, "
              "%u hardware threads\n",
              kS, kT, fixture().train_end, kT - fixture().train_end, kP, kBudget, std::thread::hardware_concurrency());
  std::printf("%-30s %11s %9s %13s %12s %15s %7s %7s %7s  %s\n", "search, backend", "generations", "genomes", "bar-steps/s",
              "best IS Shrp", "best OOS Sharpe", "DSR", "SR0", "wall s", "best id");
  for (const auto& r : rows)
    std::printf("%-30s %11.0f %9.0f %13.4g %12.2f %15.2f %7.3f %7.2f %7.1f  %s\n", r.what.c_str(), r.generations, r.genomes,
                r.bar_steps_per_s, r.best_train_sharpe, r.best_oos_sharpe, r.dsr, r.sr0, r.wall, r.note.c_str());
  for (const auto& s : skipped) std::printf("%s\n", s.c_str());
  std::printf("(random search: generations = batches of %d random genomes; bar-steps/s counts backtest time only; SR0 = expected\n"
              " max annualised Sharpe of that many zero-skill trials, the bar the DSR measures against)\n", kP);
  return 0;
}
