// The hall of fame: the best of every trial re-tested out of sample only, with the deflated Sharpe of each.
#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <cstddef>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/deflated_sharpe.hpp"
#include "runtime/strategy/evolution_detail.hpp"

namespace qtos::detail {

using kernels::Genome;

void trial_sharpe_moments(const TrialCache& tried, EvolveResult& result) {
  // Deflation: the variance of the per-bar train Sharpe over every distinct genome that traded.
  result.trials = static_cast<std::int64_t>(tried.size());
  double n = 0, s = 0, s2 = 0;
  for (const auto& [h, e] : tried)
    if (e.train.trades > 0) { n += 1; s += e.train.sr_bar; s2 += e.train.sr_bar * e.train.sr_bar; }
  result.sr_variance = n > 1 ? std::max(0.0, (s2 - s * s / n) / (n - 1)) : 0.0;
  result.sr_mean = n > 0 ? s / n : 0.0;
  result.sr_count = static_cast<std::int64_t>(n);
}

std::vector<const Evaluated*> hall_of_fame_pick(const TrialCache& tried, const EvolveOptions& opt) {
  std::vector<const Evaluated*> all;
  for (const auto& [h, e] : tried) all.push_back(&e);
  if (opt.objective == EvolveObjective::pareto) {
    std::vector<ObjectivePoint> pts;
    for (const Evaluated* e : all) pts.push_back(objective_point(*e, opt.min_trades));
    const auto front = pareto_fronts(pts);
    const auto crowd = crowding_distance(pts, front);
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < all.size(); ++i)
      if (front[i] == 0) idx.push_back(i);
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return crowd[a] > crowd[b]; });
    std::vector<const Evaluated*> first;
    for (std::size_t i : idx) first.push_back(all[i]);
    all = std::move(first);
  } else {
    std::stable_sort(all.begin(), all.end(), [](const Evaluated* a, const Evaluated* b) { return a->fitness > b->fitness; });
  }
  all.resize(std::min(all.size(), static_cast<std::size_t>(opt.hall_of_fame)));
  return all;
}

void hall_of_fame_test(const std::vector<const Evaluated*>& picks, const BacktestBackend& backend, BacktestRequest base,
                       const EvolveOptions& opt, EvolveResult& result) {
  std::vector<Genome> hof;
  for (const Evaluated* e : picks) hof.push_back(e->genome);
  base.genomes = hof;
  base.t_begin = opt.test_begin;
  base.t_end = opt.test_end;
  const BacktestResult test = backend.run(base);
  for (std::size_t i = 0; i < hof.size(); ++i) {
    HallOfFameEntry h;
    h.genome = hof[i];
    h.hash = genome_hash(hof[i]);
    h.generation = picks[i]->generation;
    h.fitness = picks[i]->fitness;
    h.train = picks[i]->train;
    h.test = backtest_metrics(test.genome[i], opt.costs.bars_per_year);
    h.deflated_sharpe = h.test.trades > 0 ? deflated_sharpe(h.test.sr_bar, h.test.observations, h.test.skew, h.test.kurtosis,
                                                            static_cast<double>(result.trials), result.sr_variance)
                                          : 0.0;
    h.parents = picks[i]->parents;
    h.test_accum = test.genome[i];
    result.hall_of_fame.push_back(h);
  }
  std::stable_sort(result.hall_of_fame.begin(), result.hall_of_fame.end(),
                   [](const HallOfFameEntry& a, const HallOfFameEntry& b) { return a.test.sharpe > b.test.sharpe; });
}

}  // namespace qtos::detail
