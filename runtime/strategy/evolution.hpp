#pragma once
/// @file Genetic search over strategy genomes with walk-forward validation and deflated Sharpe ratios
/// (docs/EVOLUTION.md): fitness on the train window, ranking on the out-of-sample window only.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"
#include "runtime/util/rng.hpp"
#include "runtime/util/stop_token.hpp"

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

/// What selection optimises: the train Sharpe, or train return against train max drawdown (NSGA-II fronts).
enum class EvolveObjective { sharpe, pareto };

/// "sharpe" or "pareto".
const char* evolve_objective_name(EvolveObjective o);
/// Parses "sharpe" or "pareto"; throws std::invalid_argument naming `what` otherwise.
EvolveObjective evolve_objective_parse(const std::string& text, const std::string& what = "--objective");

/// 16 lower-case hex digits of a genome hash (genome_id's format): the id of a parent in a lineage.
std::string genome_id_of_hash(std::uint64_t hash);

/// Computes the train metrics of a generation's fresh genomes: `train` holds the genomes, the window and the costs;
/// the result has one entry per genome, in order. evolve() uses evolve_train_metrics (one process) unless
/// EvolveOptions::evaluator is set (`qtos evolve --workers`: the genomes are split over workers, docs/SCALE_OUT.md).
using PopulationEvaluator = std::function<std::vector<BacktestMetrics>(const BacktestRequest& train)>;

/// The single-process evaluator: backend.run(train), then backtest_metrics of each genome.
std::vector<BacktestMetrics> evolve_train_metrics(const BacktestBackend& backend, const BacktestRequest& train);

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
  double time_budget_seconds = 0;    ///< stop after the generation that uses up this wall time (0: no budget)
  EvolveObjective objective = EvolveObjective::sharpe;  ///< selection objective
  StopToken stop;                    ///< polled after each generation: a stop ends the search there (result marked partial)
  PopulationEvaluator evaluator;     ///< when set, replaces evolve_train_metrics (must give the same metrics)
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
  /// genome_hash of its parents: two for a crossover child, one for a mutated copy, none for a random genome
  /// (initial population, or a random replacement of a duplicate). An elite copy keeps its first lineage.
  std::vector<std::uint64_t> parents;
  kernels::BacktestAccum test_accum;  ///< out-of-sample accumulator (walk-forward pools these over folds)
};

/// The outcome of a search.
struct EvolveResult {
  std::vector<HallOfFameEntry> hall_of_fame;  ///< ranked by out-of-sample Sharpe, best first
  std::vector<GenerationReport> generations;  ///< one per generation
  std::int64_t trials = 0;                    ///< distinct genomes evaluated (the N of the deflated Sharpe)
  double sr_variance = 0;                     ///< variance of the per-bar train Sharpe over trading trials
  double sr_mean = 0;                         ///< mean of the per-bar train Sharpe over trading trials
  std::int64_t sr_count = 0;                  ///< trials that traded (the sample of sr_mean and sr_variance)
  double bar_steps = 0;                       ///< total bar steps backtested
  double seconds = 0;                         ///< total backtest wall time
  std::int32_t generations_completed = 0;     ///< generations evaluated in full (the hall of fame comes from these)
  bool partial = false;                       ///< the stop token ended the search before its last generation
};

/// Train fitness of a genome: annualised Sharpe when it traded at least min_trades times, else -100 + trades.
double evolve_fitness(const BacktestMetrics& m, double min_trades);

/// Runs the search on `panel` (with its feature bank) on `backend`. `on_generation` is called after each
/// generation. When `opt.stop` is requested the search ends after the generation in hand (at least one is always
/// completed) and the hall of fame is built and tested from the completed generations, marked partial. Throws std::invalid_argument naming a bad option (sizes, overlapping or out-of-range windows).
EvolveResult evolve(const kernels::PanelView& panel, const StrategyFeatures& features, const BacktestBackend& backend,
                    const EvolveOptions& opt, const std::function<void(const GenerationReport&)>& on_generation = {});

/// A point for multi-objective selection: both objectives are maximised.
struct ObjectivePoint {
  double a = 0;  ///< first objective (train total return)
  double b = 0;  ///< second objective (minus the train max drawdown)
};

/// NSGA-II non-dominated sorting: the front index of each point (0 = not dominated by any point). A point dominates
/// another when it is no worse in both objectives and better in one.
std::vector<std::int32_t> pareto_fronts(const std::vector<ObjectivePoint>& pts);

/// NSGA-II crowding distance of each point within its own front (infinite for a front's extremes).
std::vector<double> crowding_distance(const std::vector<ObjectivePoint>& pts, const std::vector<std::int32_t>& front);

/// Walk-forward with K folds in time (docs/EVOLUTION.md): bars [begin, end) are cut into K + 1 consecutive blocks;
/// fold k (1..K) runs the whole search on the bars before block k (anchored) or on block k - 1 only (rolling), less
/// `purge` bars just before block k, and tests on block k only.
struct WalkForwardOptions {
  EvolveOptions evolve;            ///< search settings; its train and test windows are set per fold
  std::int32_t folds = 4;          ///< K (1 to 100)
  std::int32_t begin = 0;          ///< first bar of the whole window
  std::int32_t end = -1;           ///< one past its last bar; -1: the panel's end
  std::int32_t purge = 200;        ///< bars between a train window's end and its test block (>= 0)
  bool rolling = false;            ///< train on the previous block only (else everything before the test block)
  std::int32_t min_train_bars = 50;  ///< a fold's train window must hold at least this many bars
  std::int32_t min_test_bars = 20;   ///< and its test block at least this many
};

/// One fold's windows: train [train_begin, train_end), test [test_begin, test_end), train_end + purge == test_begin.
struct FoldWindow {
  std::int32_t train_begin = 0;  ///< first train bar
  std::int32_t train_end = 0;    ///< one past the last train bar
  std::int32_t test_begin = 0;   ///< first test bar (block k)
  std::int32_t test_end = 0;     ///< one past the last test bar
};

/// The K fold windows for a panel of `n_bars`; throws std::invalid_argument naming --folds / --purge when K, the
/// purge or the data leave a fold too short.
std::vector<FoldWindow> walk_forward_windows(std::int32_t n_bars, const WalkForwardOptions& opt);

/// What one fold found.
struct FoldReport {
  std::int32_t fold = 0;          ///< 1..K
  FoldWindow window;              ///< its bars
  std::int64_t trials = 0;        ///< distinct genomes its search tried
  HallOfFameEntry chosen;         ///< its hall-of-fame genome with the best train fitness: chosen before the test
  double best_oos_sharpe = 0;     ///< best OOS Sharpe in its hall of fame (hindsight; for information only)
};

/// The outcome of a walk-forward search.
struct WalkForwardResult {
  std::vector<FoldReport> folds;  ///< one per fold, in time order
  /// The chosen genomes' test blocks joined (the walk-forward equity): Sharpe and the other ratios pooled over
  /// every OOS bar return; total return compounded over the folds; max drawdown the worst fold's.
  BacktestMetrics pooled_oos;
  double mean_is_sharpe = 0;      ///< mean annualised train Sharpe of the chosen genomes
  double efficiency = 0;          ///< walk-forward efficiency: pooled OOS Sharpe / mean IS Sharpe (NaN when IS <= 0)
  std::int64_t trials = 0;        ///< distinct genomes tried, summed over folds (the N of the deflated Sharpe)
  double sr_variance = 0;         ///< variance of the per-bar train Sharpe over every fold's trading trials
  double deflated_sharpe = 0;     ///< DSR of the pooled OOS Sharpe with `trials` and `sr_variance`
  EvolveResult last;              ///< the last fold's search; its hall of fame is the final one
  double bar_steps = 0;           ///< bar steps backtested over all folds
  double seconds = 0;             ///< backtest wall time over all folds
  std::int32_t folds_completed = 0;  ///< folds whose search ran all its generations
  bool partial = false;           ///< the stop token ended the run early: `folds` ends with the fold it stopped in
};

/// Runs the search once per fold (fold k's seed is derived from the options' seed and k) and pools the chosen
/// genomes' out-of-sample blocks. `on_generation` gets the fold (1..K) and each generation's report. A stop request
/// (`opt.evolve.stop`) ends the fold in hand after its current generation and runs no further fold; the figures then
/// pool the folds that ran and the result is marked partial.
WalkForwardResult evolve_walk_forward(const kernels::PanelView& panel, const StrategyFeatures& features,
                                      const BacktestBackend& backend, const WalkForwardOptions& opt,
                                      const std::function<void(std::int32_t, const GenerationReport&)>& on_generation = {});

}  // namespace qtos
