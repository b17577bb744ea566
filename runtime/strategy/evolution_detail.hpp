#pragma once
/// @file Internals of the genetic search: the steps evolve() (evolution.cpp) loops over — evaluate
/// (evolution_evaluate.cpp), select (evolution_select.cpp), breed (evolution_breed.cpp) — and the hall of fame built
/// from every trial at the end (evolution_hall_of_fame.cpp). Not part of the public interface.

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/util/rng.hpp"

namespace qtos::detail {

/// A uniform draw in [0, n) (n > 0).
inline std::int32_t rng_pick(Rng& rng, std::int32_t n) { return static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(n))); }

/// A genome's lineage: genome_hash of each parent (see HallOfFameEntry::parents).
using Parents = std::vector<std::uint64_t>;

/// A genome evaluated on the train window.
struct Evaluated {
  kernels::Genome genome;         ///< the strategy
  std::int32_t generation = 0;    ///< generation that first produced it
  BacktestMetrics train;          ///< in-sample metrics
  double fitness = 0;             ///< evolve_fitness of `train`
  Parents parents;                ///< lineage when it was first made
};

/// Every distinct genome evaluated so far, by genome_hash (ordered: iteration order is part of the result).
using TrialCache = std::map<std::uint64_t, Evaluated>;

/// One generation: genomes distinct by hash, each with its lineage when it was made.
struct Population {
  std::vector<kernels::Genome> genomes;  ///< the members
  std::vector<Parents> parents;          ///< lineage of each member
  std::set<std::uint64_t> hashes;        ///< genome_hash of the members

  /// Appends `g`; a genome equal to a member is mutated again (same parents) up to 8 times, then replaced by a
  /// random one (no parents) until it is new.
  void push_unique(kernels::Genome g, Parents lineage, Rng& rng);
  /// Number of members.
  std::size_t size() const { return genomes.size(); }
};

// ---- evaluate (evolution_evaluate.cpp) ------------------------------------------------------------------------

/// What evaluating one generation produced.
struct Evaluation {
  std::vector<double> fitness;  ///< train fitness of each member
  std::size_t fresh = 0;        ///< members backtested (those not in the trial cache before)
  double seconds = 0;           ///< wall time of the backtest
};

/// Backtests the members of `pop` not yet in `tried` on `train` (a request with its window set; elites and
/// re-discoveries come from the cache and keep their lineage), caches them as generation `gen`, and returns every
/// member's fitness.
Evaluation population_evaluate(const Population& pop, std::int32_t gen, const BacktestBackend& backend, BacktestRequest train,
                               const EvolveOptions& opt, TrialCache& tried);

/// The report of generation `gen` from its evaluation.
GenerationReport generation_report(std::int32_t gen, const Population& pop, const Evaluation& ev, const TrialCache& tried,
                                   std::int32_t n_symbols, const EvolveOptions& opt);

// ---- select (evolution_select.cpp) ----------------------------------------------------------------------------

/// The two objectives of pareto selection; a genome below min_trades is pushed behind every trading one.
ObjectivePoint objective_point(const Evaluated& e, double min_trades);

/// The selection order of one generation: train fitness, or (pareto) front first, then crowding distance.
struct Selection {
  EvolveObjective objective = EvolveObjective::sharpe;  ///< which order
  std::vector<double> fitness;       ///< train fitness of each member
  std::vector<std::int32_t> front;   ///< pareto front of each member (0s for sharpe)
  std::vector<double> crowd;         ///< crowding distance of each member (0s for sharpe)
  std::vector<std::size_t> order;    ///< member indices, best first (stable)

  /// Whether member a ranks before member b.
  bool better(std::size_t a, std::size_t b) const;
  /// Tournament of `size` members drawn uniformly (with replacement) from `population`: the best of them.
  std::size_t tournament(Rng& rng, std::int32_t population, std::int32_t size) const;
};

/// Ranks the members of `pop` by the options' objective.
Selection selection_rank(const Population& pop, std::vector<double> fitness, const TrialCache& tried, const EvolveOptions& opt);

// ---- breed (evolution_breed.cpp) ------------------------------------------------------------------------------

/// The first generation: `size` distinct random genomes without parents.
Population population_random(std::size_t size, Rng& rng);

/// The next generation: the elites copied with their lineage, then children of tournament winners by crossover
/// (crossover_rate) and mutation, each recording its parents.
Population population_breed(const Population& pop, const Selection& sel, const EvolveOptions& opt, Rng& rng);

/// Random search's next batch: `size` random genomes never evaluated before (not in `tried`), without parents.
Population population_untried(std::size_t size, Rng& rng, const TrialCache& tried);

// ---- hall of fame (evolution_hall_of_fame.cpp) ----------------------------------------------------------------

/// Sets result.trials and the moments of the per-bar train Sharpe over every trial that traded (sr_mean,
/// sr_variance, sr_count: the deflation's inputs).
void trial_sharpe_moments(const TrialCache& tried, EvolveResult& result);

/// The hall of fame's genomes: best train fitness (ties by hash), or (pareto) the first front of every trial, most
/// spread first; at most opt.hall_of_fame.
std::vector<const Evaluated*> hall_of_fame_pick(const TrialCache& tried, const EvolveOptions& opt);

/// Backtests `picks` on the validation window (`base` gives panel, features and costs) and ranks them by validation
/// fitness (by train fitness without a validation window); then, with the order fixed, backtests them once on the
/// test window. Fills result.hall_of_fame (the first is the selected strategy) with the three windows' metrics and
/// DSRs (train: N = result.trials; validation: N = the picks; test: N = 1).
void hall_of_fame_select_and_test(const std::vector<const Evaluated*>& picks, const BacktestBackend& backend, BacktestRequest base,
                                  const EvolveOptions& opt, EvolveResult& result);

}  // namespace qtos::detail
