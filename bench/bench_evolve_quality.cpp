// The search-quality study (docs/EVOLUTION.md, "Search quality"): the genetic search against its peer, random search
// over the same grammar, fitness and hall-of-fame rule, at an equal wall-clock budget per run, on four synthetic
// markets from `qtos data synth`'s options — planted momentum, planted mean reversion, a momentum edge that flips sign
// into calmer mean reversion, and a pure random walk. Every run uses three windows: train (fitness), validation
// (ranks the hall of fame, selects one strategy) and test (touched once, after the selection). Per market and search
// it reports the median and spread of the selected strategy's test Sharpe over the seeds, the paired one-sided exact
// Wilcoxon signed-rank p-value (H1: genetic > random) and, on the random walk, the fraction of runs whose selected
// strategy has a test DSR >= 0.95 (nominally 5%).
//
// Sizes: QTOS_BENCH_BUDGET_S (wall seconds per run, 2.5), QTOS_BENCH_SEEDS (seeds per planted market, 8),
// QTOS_BENCH_RW_SEEDS (random-walk seeds, 20), QTOS_BENCH_S (symbols, 10), QTOS_BENCH_T (hourly bars, 3000),
// QTOS_BENCH_P (population, 64), QTOS_BENCH_MARKETS (comma-separated subset of momentum,reversion,flip,random_walk),
// QTOS_BENCH_VERBOSE=1 (one line per run: the selected strategy's three Sharpe ratios and rules).
// Ablations: QTOS_BENCH_GA="robust=0,complexity=0,tournament=3,mutation=0.2,structure=0.2,elite=2,crossover=0.7"
// overrides the search settings (robust and complexity change the fitness, so they apply to both searches; the others
// only to the genetic one).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/registry/backends.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/strategy/evolution.hpp"

namespace {

double env_double(const char* name, double def) {
  const char* v = std::getenv(name);
  return v ? std::atof(v) : def;
}
std::string env_string(const char* name, const char* def) {
  const char* v = std::getenv(name);
  return v ? v : def;
}

const double kBudget = env_double("QTOS_BENCH_BUDGET_S", 2.5);
const auto kSeeds = static_cast<std::int32_t>(env_double("QTOS_BENCH_SEEDS", 8));
const auto kRwSeeds = static_cast<std::int32_t>(env_double("QTOS_BENCH_RW_SEEDS", 20));
const auto kS = static_cast<std::int32_t>(env_double("QTOS_BENCH_S", 10));
const auto kT = static_cast<std::int32_t>(env_double("QTOS_BENCH_T", 3000));
const auto kP = static_cast<std::int32_t>(env_double("QTOS_BENCH_P", 64));
const bool kVerbose = env_double("QTOS_BENCH_VERBOSE", 0) != 0;

struct MarketSpec {
  std::string name;
  std::string synth;  ///< the `qtos data synth` options that make it
  double momentum = 0, reversion = 0;
  std::int32_t flip = 0;
  bool random_walk = false;
};

const std::vector<MarketSpec> kMarkets = {
    {"momentum", "--planted-momentum 0.15", 0.15, 0, 0, false},
    {"reversion", "--planted-reversion 0.15", 0, 0.15, 0, false},
    {"flip", "--planted-momentum 0.2 --planted-flip 300", 0.2, 0, 300, false},
    {"random_walk", "--random-walk", 0, 0, 0, true},
};

/// Applies "key=value,..." to the options.
void ga_overrides(qtos::EvolveOptions& o, const std::string& spec) {
  std::stringstream ss(spec);
  std::string kv;
  while (std::getline(ss, kv, ',')) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = kv.substr(0, eq);
    const double v = std::atof(kv.substr(eq + 1).c_str());
    if (k == "robust") o.robust_fitness = v != 0;
    else if (k == "complexity") o.complexity_penalty = v;
    else if (k == "distinct") o.distinct_behaviour = v != 0;
    else if (k == "tournament") o.tournament = static_cast<std::int32_t>(v);
    else if (k == "mutation") o.mutation_rate = v;
    else if (k == "structure") o.structure_rate = v;
    else if (k == "elite") o.elite = static_cast<std::int32_t>(v);
    else if (k == "crossover") o.crossover_rate = v;
    else if (k == "min_trades") o.min_trades = v;
    else std::fprintf(stderr, "QTOS_BENCH_GA: unknown key '%s' ignored\n", k.c_str());
  }
}

struct Run {
  double test_sharpe = 0, test_dsr = 0, val_sharpe = 0, train_sharpe = 0, wall = 0;
  std::int64_t trials = 0;
  std::int32_t generations = 0;
};

/// Exact one-sided Wilcoxon signed-rank p-value P(W+ >= observed) for paired differences d (zeros dropped, ties
/// given average ranks; the null distribution enumerated over the doubled ranks).
double wilcoxon_greater(const std::vector<double>& d_all) {
  std::vector<double> d;
  for (double x : d_all)
    if (x != 0) d.push_back(x);
  const std::size_t n = d.size();
  if (n == 0) return 1.0;
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return std::fabs(d[a]) < std::fabs(d[b]); });
  std::vector<int> rank2(n);  // doubled average ranks: integers
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j + 1 < n && std::fabs(d[idx[j + 1]]) == std::fabs(d[idx[i]])) ++j;
    for (std::size_t k = i; k <= j; ++k) rank2[idx[k]] = static_cast<int>(i + j + 2);
    i = j + 1;
  }
  int observed = 0, total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    total += rank2[i];
    if (d[i] > 0) observed += rank2[i];
  }
  std::vector<double> ways(static_cast<std::size_t>(total) + 1, 0.0);  // sign patterns by W+ (doubled)
  ways[0] = 1;
  for (std::size_t i = 0; i < n; ++i)
    for (int w = total; w >= rank2[i]; --w) ways[static_cast<std::size_t>(w)] += ways[static_cast<std::size_t>(w - rank2[i])];
  double at_least = 0;
  for (int w = observed; w <= total; ++w) at_least += ways[static_cast<std::size_t>(w)];
  return at_least / std::ldexp(1.0, static_cast<int>(n));
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

}  // namespace

int main() {
  const auto backends = qtos::backtest_backends();
  const qtos::BacktestBackend* cpu = nullptr;
  for (const auto& b : backends)
    if (b->name() == "cpu") cpu = b.get();
  if (cpu == nullptr) {
    std::fprintf(stderr, "no cpu backtest backend\n");
    return 1;
  }
  const std::string ga_spec = env_string("QTOS_BENCH_GA", "");
  const std::string only = env_string("QTOS_BENCH_MARKETS", "");
  const std::int32_t train_end = kT / 2, val_end = kT * 7 / 10;
  std::printf("search-quality study: S=%d symbols x T=%d hourly bars; train [0,%d), validation [%d,%d), test [%d,%d); population %d; "
              "budget %.2f s per run; %u hardware threads%s%s\n",
              kS, kT, train_end, train_end, val_end, val_end, kT, kP, kBudget, std::thread::hardware_concurrency(),
              ga_spec.empty() ? "" : "; genetic overrides: ", ga_spec.c_str());
  const auto study_t0 = std::chrono::steady_clock::now();
  double budget_used = 0;
  std::int32_t runs = 0;

  std::printf("\n%-12s %-8s %5s %9s %9s %16s %9s %8s %8s %7s %9s\n", "market", "search", "runs", "gens", "trials", "test Sharpe med",
              "IQR", "min", "max", "wins", "p(W>)");
  for (const MarketSpec& mk : kMarkets) {
    if (!only.empty() && ("," + only + ",").find("," + mk.name + ",") == std::string::npos) continue;
    const std::int32_t seeds = mk.random_walk ? kRwSeeds : kSeeds;
    std::map<std::string, std::vector<Run>> by_search;
    for (std::int32_t k = 0; k < seeds; ++k) {
      qtos::SynthOptions so;
      so.n_symbols = kS;
      so.n_bars = kT;
      so.seed = 1000 + static_cast<std::uint64_t>(k);
      so.late_listing_fraction = 0.0;
      so.planted_momentum = mk.momentum;
      so.planted_reversion = mk.reversion;
      so.planted_flip_bars = mk.flip;
      so.random_walk = mk.random_walk;
      const qtos::SynthMarket market = qtos::synth_generate(so);
      const qtos::StrategyFeatures features = qtos::strategy_features_compute(market.panel.view());
      for (qtos::EvolveSearch search : {qtos::EvolveSearch::genetic, qtos::EvolveSearch::random}) {
        qtos::EvolveOptions o;
        o.population = kP;
        o.generations = 100'000;  // the budget ends the search
        o.seed = 1 + static_cast<std::uint64_t>(k);
        o.train_begin = 0;
        o.train_end = train_end;
        o.validation_begin = train_end;
        o.validation_end = val_end;
        o.test_begin = val_end;
        o.test_end = kT;
        o.time_budget_seconds = kBudget;
        o.search = search;
        ga_overrides(o, ga_spec);
        const auto t0 = std::chrono::steady_clock::now();
        const qtos::EvolveResult r = qtos::evolve(market.panel.view(), features, *cpu, o);
        Run run;
        run.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto& sel = r.hall_of_fame.front();
        run.test_sharpe = sel.test.sharpe;
        run.test_dsr = sel.test_dsr;
        run.val_sharpe = sel.validation.sharpe;
        run.train_sharpe = sel.train.sharpe;
        run.trials = r.trials;
        run.generations = r.generations_completed;
        by_search[qtos::evolve_search_name(search)].push_back(run);
        if (kVerbose)
          std::printf("  %-11s seed %d %-7s gens %4d trials %6lld  selected train %6.2f val %6.2f test %6.2f dsr %.3f  %s\n", mk.name.c_str(),
                      k, qtos::evolve_search_name(search), run.generations, static_cast<long long>(run.trials), run.train_sharpe,
                      run.val_sharpe, run.test_sharpe, run.test_dsr, qtos::genome_rules(sel.genome).c_str());
        budget_used += run.wall;
        ++runs;
      }
    }
    const auto& ga = by_search["genetic"];
    const auto& rs = by_search["random"];
    std::vector<double> diff;
    for (std::size_t i = 0; i < ga.size(); ++i) diff.push_back(ga[i].test_sharpe - rs[i].test_sharpe);
    const double p = wilcoxon_greater(diff);
    for (const char* name : {"genetic", "random"}) {
      const auto& v = by_search[name];
      std::vector<double> ts;
      double gens = 0, trials = 0;
      for (const Run& r : v) ts.push_back(r.test_sharpe), gens += r.generations, trials += static_cast<double>(r.trials);
      int wins = 0;
      for (double d : diff) wins += std::string(name) == "genetic" ? d > 0 : d < 0;
      std::printf("%-12s %-8s %5zu %9.0f %9.0f %16.2f %9.2f %8.2f %8.2f %4d/%-2zu %9s\n", mk.name.c_str(), name, v.size(),
                  gens / static_cast<double>(v.size()), trials / static_cast<double>(v.size()), quantile(ts, 0.5),
                  quantile(ts, 0.75) - quantile(ts, 0.25), quantile(ts, 0.0), quantile(ts, 1.0), wins, diff.size(),
                  std::string(name) == "genetic" ? (p < 0.001 ? "<0.001" : std::to_string(p).substr(0, 5)).c_str() : "");
      if (mk.random_walk) {
        int significant = 0;
        for (const Run& r : v) significant += r.test_dsr >= 0.95;
        std::printf("%-12s %-8s   selected with test DSR >= 0.95: %d of %zu runs (%.0f%%)\n", "", name, significant, v.size(),
                    100.0 * significant / static_cast<double>(v.size()));
      }
    }
    std::fflush(stdout);
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - study_t0).count();
  std::printf("\n%d runs, budget %.2f s each: %.1f s of search wall time used (%.2f s per run), %.1f s in all with market generation\n",
              runs, kBudget, budget_used, runs ? budget_used / runs : 0.0, total);
  std::printf("(test Sharpe: annualised, of the selected strategy (best validation Sharpe of the hall of fame) on the untouched\n"
              " test window; IQR = interquartile range over the seeds; wins: seeds where this search's selected strategy had the\n"
              " higher test Sharpe; p(W>): exact one-sided Wilcoxon signed-rank, H1 genetic > random, paired by seed)\n");
  return 0;
}
