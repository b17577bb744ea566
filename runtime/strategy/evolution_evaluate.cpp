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

std::vector<BacktestMetrics> evolve_train_metrics(const BacktestBackend& backend, const BacktestRequest& train) {
  const BacktestResult br = backend.run(train);
  std::vector<BacktestMetrics> out;
  out.reserve(br.genome.size());
  for (const auto& acc : br.genome) out.push_back(backtest_metrics(acc, train.costs.bars_per_year));
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
  Evaluation ev;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<BacktestMetrics> metrics = opt.evaluator ? opt.evaluator(train) : evolve_train_metrics(backend, train);
  ev.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (metrics.size() != fresh.size())
    throw std::runtime_error("evolve: the population evaluator returned " + std::to_string(metrics.size()) + " results for " +
                             std::to_string(fresh.size()) + " genomes");
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    Evaluated e{fresh[i], gen, metrics[i], 0.0, *fresh_parents[i]};
    e.fitness = evolve_fitness(e.train, opt.min_trades);
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
