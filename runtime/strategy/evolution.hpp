#pragma once
/// @file Genetic search over strategy genomes with walk-forward validation and deflated Sharpe ratios
/// (docs/EVOLUTION.md): fitness on the train window, ranking on the out-of-sample window only.

#include <cstdint>
#include <functional>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"
#include "runtime/util/rng.hpp"

namespace qtos {

/// A uniformly drawn valid genome (every condition kind, period and level within its declared range).
kernels::Genome genome_random(Rng& rng);

/// Mutates parameters (each with probability `rate`: a new period, a level moved by a normal step of 10% of its
/// range, a new stop/target distance) and, with probability `structure_rate`, the structure (a condition replaced,
/// the entry operator changed, the exit rule or a stop switched on/off, the side changed). Returns a normalised genome.
kernels::Genome genome_mutate(const kernels::Genome& g, Rng& rng, double rate, double structure_rate);

/// Grammar-respecting uniform crossover: whole blocks (an entry term with the operator, the exit rule, the side,
/// each stop/target/time gene, the size) come from one parent or the other. Returns a normalised genome.
kernels::Genome genome_crossover(const kernels::Genome& a, const kernels::Genome& b, Rng& rng);

/// Structural diversity of a population: distinct (entry kinds, operator, exit kind, side) signatures / size.
double population_diversity(const std::vector<kernels::Genome>& pop);

/// Search settings.
struct EvolveOptions {
  std::int32_t population = 50;      ///< genomes per generation (>= 4)
  std::int32_t generations = 100;    ///< generations (>= 1)
  std::uint64_t seed = 1;            ///< same seed, same result
  std::int32_t tournament = 3;       ///< tournament size
  std::int32_t elite = 2;            ///< best genomes copied unchanged into the next generation
  double crossover_rate = 0.7;       ///< chance a child comes from crossover (else a copy of one parent)
  double mutation_rate = 0.2;        ///< per-gene parameter mutation chance
  double structure_rate = 0.2;       ///< chance of one structural mutation per child
  double min_trades = 20;            ///< train trades below this make a genome unfit (fitness -100 + trades)
  std::int32_t hall_of_fame = 10;    ///< best train genomes re-tested out of sample
  std::int32_t train_begin = 0;      ///< train window [train_begin, train_end)
  std::int32_t train_end = 0;        ///< end of the train window
  std::int32_t test_begin = 0;       ///< out-of-sample window [test_begin, test_end), after the train window
  std::int32_t test_end = 0;         ///< end of the test window
  kernels::BacktestCosts costs;      ///< fees, slippage, capital, annualisation
};

/// What one generation did.
struct GenerationReport {
  std::int32_t generation = 0;     ///< 0-based
  double best_fitness = 0;         ///< best train fitness in the population
  double median_fitness = 0;       ///< median train fitness
  double diversity = 0;            ///< population_diversity
  std::int64_t trials = 0;         ///< distinct genomes evaluated so far
  double bar_steps = 0;            ///< genome x symbol x bar steps backtested in this generation
  double seconds = 0;              ///< wall time of this generation's backtests
};

/// A hall-of-fame genome with in-sample and out-of-sample figures.
struct HallOfFameEntry {
  kernels::Genome genome;     ///< the strategy
  std::uint64_t hash = 0;     ///< genome_hash
  std::int32_t generation = 0;  ///< generation that first produced it
  double fitness = 0;         ///< train fitness
  BacktestMetrics train;      ///< in-sample metrics
  BacktestMetrics test;       ///< out-of-sample metrics
  double deflated_sharpe = 0; ///< DSR of the out-of-sample Sharpe, deflated for all trials
};

/// The outcome of a search.
struct EvolveResult {
  std::vector<HallOfFameEntry> hall_of_fame;  ///< ranked by out-of-sample Sharpe, best first
  std::vector<GenerationReport> generations;  ///< one per generation
  std::int64_t trials = 0;                    ///< distinct genomes evaluated (the N of the deflated Sharpe)
  double sr_variance = 0;                     ///< variance of the per-bar train Sharpe over trading trials
  double bar_steps = 0;                       ///< total bar steps backtested
  double seconds = 0;                         ///< total backtest wall time
};

/// Train fitness of a genome: annualised Sharpe when it traded at least min_trades times, else -100 + trades.
double evolve_fitness(const BacktestMetrics& m, double min_trades);

/// Runs the search on `panel` (with its feature bank) on `backend`. `on_generation` is called after each
/// generation. Throws std::invalid_argument naming a bad option (sizes, overlapping or out-of-range windows).
EvolveResult evolve(const kernels::PanelView& panel, const StrategyFeatures& features, const BacktestBackend& backend,
                    const EvolveOptions& opt, const std::function<void(const GenerationReport&)>& on_generation = {});

}  // namespace qtos
