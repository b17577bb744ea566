#pragma once
/// @file Genetic (or random) search over strategy genomes with three windows and deflated Sharpe ratios
/// (docs/EVOLUTION.md): fitness on the train window, the hall of fame ranked and one strategy selected on the
/// validation window, and the test window touched once, after the selection, only to report.

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

/// How new genomes are proposed: the genetic search, or plain random search over the same grammar and ranges (the
/// baseline a search must beat).
enum class EvolveSearch { genetic, random };

/// "genetic" or "random".
const char* evolve_search_name(EvolveSearch s);
/// Parses "genetic" or "random"; throws std::invalid_argument naming `what` otherwise.
EvolveSearch evolve_search_parse(const std::string& text, const std::string& what = "--search");
/// Parses "sharpe" or "pareto"; throws std::invalid_argument naming `what` otherwise.
EvolveObjective evolve_objective_parse(const std::string& text, const std::string& what = "--objective");

/// 16 lower-case hex digits of a genome hash (genome_id's format): the id of a parent in a lineage.
std::string genome_id_of_hash(std::uint64_t hash);

/// What the fitness of one genome needs from its training backtest.
struct TrainMetrics {
  BacktestMetrics pooled;            ///< over every symbol
  std::vector<double> symbol_sharpe;  ///< each symbol's Sharpe (filled when the request has per_symbol)
};

/// Computes the train metrics of a generation's fresh genomes: `train` holds the genomes, the window and the costs;
/// the result has one entry per genome, in order. evolve() uses evolve_train_metrics (one process) unless
/// EvolveOptions::evaluator is set (`qtos evolve --workers`: the genomes are split over workers, docs/SCALE_OUT.md).
using PopulationEvaluator = std::function<std::vector<TrainMetrics>(const BacktestRequest& train)>;

/// The single-process evaluator: backend.run(train), then backtest_metrics of each genome (and of each of its symbols
/// when train.per_symbol is set: the robust fitness reads them).
std::vector<TrainMetrics> evolve_train_metrics(const BacktestBackend& backend, const BacktestRequest& train);

/// Search settings.
struct EvolveOptions {
  std::int32_t population = 50;      ///< genomes per generation (>= 4)
  std::int32_t generations = 100;    ///< generations (>= 1)
  std::uint64_t seed = 1;            ///< same seed, same result
  std::int32_t tournament = 2;       ///< tournament size (2: the study's choice, docs/EVOLUTION.md "Search quality")
  std::int32_t elite = 2;            ///< best genomes copied unchanged into the next generation
  double crossover_rate = 0.7;       ///< chance a child comes from crossover (else a copy of one parent)
  double mutation_rate = 0.2;        ///< per-gene parameter mutation chance
  double structure_rate = 0.2;       ///< chance of one structural mutation per child
  double min_trades = 20;            ///< train trades below this make a genome unfit (fitness -100 + trades)
  std::int32_t hall_of_fame = 10;    ///< best train genomes carried to the validation window
  std::int32_t train_begin = 0;      ///< train window [train_begin, train_end): the search's fitness
  std::int32_t train_end = 0;        ///< end of the train window
  /// Validation window [validation_begin, validation_end), at or after the train window's end and before the test
  /// window: ranks the hall of fame and selects the strategy. Empty (begin == end): ranked by train fitness.
  std::int32_t validation_begin = 0;
  std::int32_t validation_end = 0;   ///< end of the validation window
  std::int32_t test_begin = 0;       ///< test window [test_begin, test_end), after the others: touched once, to report
  std::int32_t test_end = 0;         ///< end of the test window
  EvolveSearch search = EvolveSearch::genetic;  ///< genetic search or the random-search baseline
  /// Robust fitness: the train fitness is the lower quartile of the per-symbol annualised Sharpe ratios (a symbol
  /// without trades counts 0) instead of the Sharpe pooled over all symbols (docs/EVOLUTION.md, "Search quality").
  bool robust_fitness = true;
  /// Complexity penalty: the train fitness of a trading genome loses this much (annualised Sharpe units) per rule part
  /// beyond the first entry term (a second entry term, an exit rule, a stop, a target, a trailing stop, a max hold).
  double complexity_penalty = 0.3;
  /// Hall of fame: genomes whose train figures (trades, total return, Sharpe) equal a better one's are left out (they
  /// differ only in genes that never act), so the validation window compares different strategies.
  bool distinct_behaviour = true;
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

/// A hall-of-fame genome with its figures on the three windows.
struct HallOfFameEntry {
  kernels::Genome genome;     ///< the strategy
  std::uint64_t hash = 0;     ///< genome_hash
  std::int32_t generation = 0;  ///< generation that first produced it
  double fitness = 0;         ///< train fitness
  BacktestMetrics train;      ///< train (in-sample) metrics
  BacktestMetrics validation; ///< validation metrics (equal to train when the validation window is empty)
  BacktestMetrics test;       ///< test metrics, measured after the hall of fame was ranked
  /// DSR of the train Sharpe deflated for every trial of the search (pooled (symbol, bar) returns: optimistic when
  /// symbols move together; for information)
  double train_dsr = 0;
  /// DSR of the validation Sharpe deflated for the hall-of-fame genomes compared on the validation window (the trials
  /// that chose the selected strategy), on the equal-weight portfolio's bar returns; the train DSR without a
  /// validation window.
  double validation_dsr = 0;
  /// DSR of the test Sharpe on the equal-weight portfolio's bar returns: one strategy per run reaches the test window
  /// chosen (the selected one), so N = 1 and this is the probabilistic Sharpe against 0.
  double test_dsr = 0;
  std::vector<double> test_returns;  ///< the equal-weight portfolio's bar returns on the test window
  /// genome_hash of its parents: two for a crossover child, one for a mutated copy, none for a random genome
  /// (initial population, or a random replacement of a duplicate). An elite copy keeps its first lineage.
  std::vector<std::uint64_t> parents;
  kernels::BacktestAccum test_accum;  ///< out-of-sample accumulator (walk-forward pools these over folds)
};

/// The outcome of a search.
struct EvolveResult {
  /// Ranked by validation fitness (train fitness without a validation window), best first; the first is the selected
  /// strategy. Test figures never change this order.
  std::vector<HallOfFameEntry> hall_of_fame;
  std::vector<GenerationReport> generations;  ///< one per generation
  std::int64_t trials = 0;                    ///< distinct genomes evaluated (the N of the deflated Sharpe)
  double sr_variance = 0;                     ///< variance of the per-bar train Sharpe over trading trials
  double sr_mean = 0;                         ///< mean of the per-bar train Sharpe over trading trials
  std::int64_t sr_count = 0;                  ///< trials that traded (the sample of sr_mean and sr_variance)
  std::int64_t silent_trials = 0;             ///< trials that made no trade on the train window
  double validation_sr_variance = 0;          ///< variance of the hall of fame's per-bar validation Sharpe
  double bar_steps = 0;                       ///< total bar steps backtested
  double seconds = 0;                         ///< total backtest wall time
  std::int32_t generations_completed = 0;     ///< generations evaluated in full (the hall of fame comes from these)
  bool partial = false;                       ///< the stop token ended the search before its last generation
};

/// Train fitness of a genome: annualised Sharpe when it traded at least min_trades times, else -100 + trades.
double evolve_fitness(const BacktestMetrics& m, double min_trades);

/// Rule parts of a genome beyond its first entry term: a second entry term, an exit rule, a stop, a target, a
/// trailing stop, a max hold (0 to 6).
std::int32_t genome_complexity(const kernels::Genome& g);

/// Robust train fitness: -100 + trades below min_trades (pooled over symbols), else the lower quartile of the
/// per-symbol annualised Sharpe ratios `symbol_sharpe` (linear interpolation; non-finite values count 0).
double evolve_fitness_robust(const BacktestMetrics& pooled, std::vector<double> symbol_sharpe, double min_trades);

/// Runs the search on `panel` (with its feature bank) on `backend`. `on_generation` is called after each
/// generation. When `opt.stop` is requested the search ends after the generation in hand (at least one is always
/// completed) and the hall of fame is built and tested from the completed generations, marked partial. Throws std::invalid_argument naming a bad option (sizes, overlapping or out-of-range windows).
EvolveResult evolve(const kernels::PanelView& panel, const StrategyFeatures& features, const BacktestBackend& backend,
                    const EvolveOptions& opt, const std::function<void(const GenerationReport&)>& on_generation = {});

/// Warnings before a search (docs/EVOLUTION.md): the indicators of the grammar that have no value on any bar of the
/// train window for any symbol (they can never warm up there), named with the most bars they run over without a restart
/// under the bank's gap policy (skip: a symbol's bars with data in the window; reset-after:N: its longest stretch not
/// broken by a gap longer than N bars, the longest run of consecutive bars under reset-after:0).
std::vector<std::string> evolve_warnings_before(const kernels::PanelView& panel, const StrategyFeatures& features, const EvolveOptions& opt);

/// Warnings after a search: most genomes tried never traded on the train window, or no genome reached min_trades.
std::vector<std::string> evolve_warnings_after(const EvolveResult& r);

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
/// `purge` bars just before block k: the first part of those bars trains, the last `validation` fraction selects,
/// and block k only tests.
struct WalkForwardOptions {
  EvolveOptions evolve;            ///< search settings; its windows are set per fold
  std::int32_t folds = 4;          ///< K (1 to 100)
  std::int32_t begin = 0;          ///< first bar of the whole window
  std::int32_t end = -1;           ///< one past its last bar; -1: the panel's end
  std::int32_t purge = 200;        ///< bars between a fold's validation window and its test block (>= 0)
  bool rolling = false;            ///< train on the previous block only (else everything before the test block)
  double validation = 0.25;        ///< fraction of each fold's bars before the purge that validates (0: none; below 1)
  std::int32_t min_train_bars = 50;  ///< a fold's train window must hold at least this many bars
  std::int32_t min_test_bars = 20;   ///< and its validation window (when asked for) and test block at least this many
};

/// One fold's windows: train [train_begin, train_end), validation [validation_begin, validation_end) right after it
/// (empty when WalkForwardOptions::validation is 0), test [test_begin, test_end), validation_end + purge == test_begin.
struct FoldWindow {
  std::int32_t train_begin = 0;       ///< first train bar
  std::int32_t train_end = 0;         ///< one past the last train bar
  std::int32_t validation_begin = 0;  ///< first validation bar (== train_end)
  std::int32_t validation_end = 0;    ///< one past the last validation bar
  std::int32_t test_begin = 0;        ///< first test bar (block k)
  std::int32_t test_end = 0;          ///< one past the last test bar
};

/// The K fold windows for a panel of `n_bars`; throws std::invalid_argument naming --folds / --purge / --validation
/// when K, the purge, the validation fraction or the data leave a fold too short.
std::vector<FoldWindow> walk_forward_windows(std::int32_t n_bars, const WalkForwardOptions& opt);

/// What one fold found.
struct FoldReport {
  std::int32_t fold = 0;          ///< 1..K
  FoldWindow window;              ///< its bars
  std::int64_t trials = 0;        ///< distinct genomes its search tried
  HallOfFameEntry chosen;         ///< its selected genome (best validation fitness): chosen before the test block
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
  std::int64_t trials = 0;        ///< distinct genomes tried, summed over folds
  double sr_variance = 0;         ///< variance of the per-bar train Sharpe over every fold's trading trials
  /// DSR of the pooled OOS Sharpe: each block's genome was chosen before the block, so one strategy per block reaches
  /// the test and N = 1 (the probabilistic Sharpe against 0)
  double deflated_sharpe = 0;
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
