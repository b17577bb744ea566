// Evaluation: population backtests on the train window (each distinct genome once), fitness, generation reports.
#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/evolution_detail.hpp"

namespace qtos {

using kernels::Genome;

double population_diversity(const std::vector<Genome>& pop) {
  if (pop.empty()) return 0.0;
  std::set<std::tuple<std::int32_t, std::int32_t, std::int32_t, std::int32_t, std::int32_t>> sigs;
  for (const Genome& g : pop) sigs.insert({g.entry[0].kind, g.op, g.entry[1].kind, g.exit_rule.kind, g.side});
  return static_cast<double>(sigs.size()) / static_cast<double>(pop.size());
}

double evolve_fitness(const BacktestMetrics& m, double min_trades) {
  if (m.trades < min_trades || !std::isfinite(m.sharpe)) return -100.0 + m.trades;
  return m.sharpe;
}

std::int32_t genome_complexity(const Genome& g) {
  return (g.op != static_cast<std::int32_t>(kernels::EntryOp::single) ? 1 : 0) + (g.exit_rule.kind != 0 ? 1 : 0) + (g.stop_atr > 0 ? 1 : 0) +
         (g.take_atr > 0 ? 1 : 0) + (g.trail_atr > 0 ? 1 : 0) + (g.max_hold > 0 ? 1 : 0);
}

double evolve_fitness_robust(const BacktestMetrics& pooled, std::vector<double> symbol_sharpe, double min_trades) {
  if (pooled.trades < min_trades || !std::isfinite(pooled.sharpe) || symbol_sharpe.empty()) return evolve_fitness(pooled, min_trades);
  for (double& v : symbol_sharpe)
    if (!std::isfinite(v)) v = 0.0;
  std::sort(symbol_sharpe.begin(), symbol_sharpe.end());
  const double pos = 0.25 * static_cast<double>(symbol_sharpe.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, symbol_sharpe.size() - 1);
  return symbol_sharpe[lo] + (pos - static_cast<double>(lo)) * (symbol_sharpe[hi] - symbol_sharpe[lo]);
}

std::vector<TrainMetrics> evolve_train_metrics(const BacktestBackend& backend, const BacktestRequest& train) {
  const BacktestResult br = backend.run(train);
  const auto S = static_cast<std::size_t>(train.panel.n_symbols);
  std::vector<TrainMetrics> out(br.genome.size());
  for (std::size_t i = 0; i < br.genome.size(); ++i) {
    out[i].pooled = backtest_metrics(br.genome[i], train.costs.bars_per_year);
    if (train.per_symbol && br.genome_symbol.size() >= (i + 1) * S) {
      out[i].symbol_sharpe.resize(S);
      for (std::size_t s = 0; s < S; ++s) out[i].symbol_sharpe[s] = backtest_metrics(br.genome_symbol[i * S + s], train.costs.bars_per_year).sharpe;
    }
  }
  return out;
}

namespace detail {

Evaluation population_evaluate(const Population& pop, std::int32_t gen, const BacktestBackend& backend, BacktestRequest train,
                               const EvolveOptions& opt, TrialCache& tried) {
  const std::size_t P = pop.size();
  std::vector<Genome> fresh;
  std::vector<const Parents*> fresh_parents;
  for (std::size_t i = 0; i < P; ++i)
    if (tried.count(genome_hash(pop.genomes[i])) == 0) {
      fresh.push_back(pop.genomes[i]);
      fresh_parents.push_back(&pop.parents[i]);
    }
  train.genomes = fresh;
  train.per_symbol = opt.robust_fitness;
  Evaluation ev;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<TrainMetrics> metrics = opt.evaluator ? opt.evaluator(train) : evolve_train_metrics(backend, train);
  ev.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (metrics.size() != fresh.size())
    throw std::runtime_error("evolve: the population evaluator returned " + std::to_string(metrics.size()) + " results for " +
                             std::to_string(fresh.size()) + " genomes");
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    Evaluated e{fresh[i], gen, metrics[i].pooled, 0.0, *fresh_parents[i]};
    if (opt.robust_fitness) {
      if (metrics[i].symbol_sharpe.size() != static_cast<std::size_t>(train.panel.n_symbols))
        throw std::runtime_error("evolve: the population evaluator gave " + std::to_string(metrics[i].symbol_sharpe.size()) +
                                 " per-symbol Sharpe ratios for " + std::to_string(train.panel.n_symbols) + " symbols");
      e.fitness = evolve_fitness_robust(e.train, metrics[i].symbol_sharpe, opt.min_trades);
    } else {
      e.fitness = evolve_fitness(e.train, opt.min_trades);
    }
    const bool trading = e.train.trades >= opt.min_trades && std::isfinite(e.train.sharpe);  // not marked unfit
    if (opt.complexity_penalty > 0 && trading) e.fitness -= opt.complexity_penalty * genome_complexity(fresh[i]);
    tried.emplace(genome_hash(fresh[i]), e);
  }
  ev.fitness.resize(P);
  for (std::size_t i = 0; i < P; ++i) ev.fitness[i] = tried.at(genome_hash(pop.genomes[i])).fitness;
  ev.fresh = fresh.size();
  return ev;
}

GenerationReport generation_report(std::int32_t gen, const Population& pop, const Evaluation& ev, const TrialCache& tried,
                                   std::int32_t n_symbols, const EvolveOptions& opt) {
  const std::size_t P = pop.size();
  GenerationReport rep;
  rep.generation = gen;
  std::vector<double> sorted = ev.fitness;
  std::sort(sorted.begin(), sorted.end());
  rep.best_fitness = sorted.back();
  rep.median_fitness = P % 2 ? sorted[P / 2] : 0.5 * (sorted[P / 2 - 1] + sorted[P / 2]);
  rep.diversity = population_diversity(pop.genomes);
  rep.trials = static_cast<std::int64_t>(tried.size());
  rep.bar_steps = static_cast<double>(ev.fresh) * n_symbols * (opt.train_end - opt.train_begin);
  rep.seconds = ev.seconds;
  return rep;
}

}  // namespace detail

}  // namespace qtos
