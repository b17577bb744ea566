// The hall of fame: the best of every trial ranked on the validation window, then tested once on the test window.
#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <cstddef>
#include <set>
#include <tuple>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/deflated_sharpe.hpp"
#include "runtime/strategy/evolution_detail.hpp"
#include "runtime/strategy/portfolio_returns.hpp"

namespace qtos::detail {

using kernels::Genome;

void trial_sharpe_moments(const TrialCache& tried, EvolveResult& result) {
  // Deflation: the variance of the per-bar train Sharpe over every distinct genome that traded.
  result.trials = static_cast<std::int64_t>(tried.size());
  double n = 0, s = 0, s2 = 0;
  result.silent_trials = 0;
  for (const auto& [h, e] : tried) {
    if (e.train.trades > 0) { n += 1; s += e.train.sr_bar; s2 += e.train.sr_bar * e.train.sr_bar; }
    else ++result.silent_trials;
  }
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
  if (opt.distinct_behaviour) {
    // Genomes that differ only in genes that never act (a max hold never reached, a level never crossed) trade the
    // same: one of them is enough, so the validation window chooses among different strategies.
    std::set<std::tuple<double, double, double>> seen;
    std::vector<const Evaluated*> kept;
    for (const Evaluated* e : all)
      if (seen.insert({e->train.trades, e->train.total_return, e->train.sharpe}).second) kept.push_back(e);
    all = std::move(kept);
  }
  all.resize(std::min(all.size(), static_cast<std::size_t>(opt.hall_of_fame)));
  return all;
}

void hall_of_fame_select_and_test(const std::vector<const Evaluated*>& picks, const BacktestBackend& backend, BacktestRequest base,
                                  const EvolveOptions& opt, EvolveResult& result) {
  const double bpy = opt.costs.bars_per_year;
  std::vector<Genome> hof;
  for (const Evaluated* e : picks) hof.push_back(e->genome);
  base.genomes = hof;
  base.per_symbol = false;
  // 1. Validation: the picks' figures on the validation window; without one, the train figures stand in.
  const bool has_validation = opt.validation_end != opt.validation_begin;
  std::vector<BacktestMetrics> val(hof.size());
  std::vector<double> val_fitness(hof.size());
  if (has_validation) {
    base.t_begin = opt.validation_begin;
    base.t_end = opt.validation_end;
    const BacktestResult vr = backend.run(base);
    // The trade floor scales with the window: min_trades over the train window's bars.
    const double floor = std::max(1.0, opt.min_trades * (opt.validation_end - opt.validation_begin) / (opt.train_end - opt.train_begin));
    for (std::size_t i = 0; i < hof.size(); ++i) {
      val[i] = backtest_metrics(vr.genome[i], bpy);
      val_fitness[i] = evolve_fitness(val[i], floor);
    }
  } else {
    for (std::size_t i = 0; i < hof.size(); ++i) {
      val[i] = picks[i]->train;
      val_fitness[i] = picks[i]->fitness;
    }
  }
  // 2. The order is fixed here, before the test window is read: the first is the selected strategy.
  std::vector<std::size_t> order(hof.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return val_fitness[a] > val_fitness[b]; });
  std::vector<Genome> ranked;
  for (std::size_t i : order) ranked.push_back(hof[i]);
  // Deflation of the validation Sharpe: the candidates compared there and the variance of their Sharpe estimates, on
  // the equal-weight portfolio's bar returns (one observation per bar).
  std::vector<ReturnMoments> val_moments(hof.size());
  double n = 0, s = 0, s2 = 0;
  if (has_validation) {
    BacktestRequest one = base;
    one.t_begin = opt.validation_begin;
    one.t_end = opt.validation_end;
    for (std::size_t i = 0; i < hof.size(); ++i) {
      val_moments[i] = return_moments(portfolio_bar_returns(one, hof[i]));
      if (val[i].trades > 0) { n += 1; s += val_moments[i].sr_bar; s2 += val_moments[i].sr_bar * val_moments[i].sr_bar; }
    }
  }
  result.validation_sr_variance = n > 1 ? std::max(0.0, (s2 - s * s / n) / (n - 1)) : 0.0;
  // 3. The test window, once, for the ranked hall of fame.
  base.genomes = ranked;
  base.t_begin = opt.test_begin;
  base.t_end = opt.test_end;
  const BacktestResult test = backend.run(base);
  auto dsr = [](const BacktestMetrics& m, double trials, double variance) {
    return m.trades > 0 ? deflated_sharpe(m.sr_bar, m.observations, m.skew, m.kurtosis, trials, variance) : 0.0;
  };
  auto dsr_of = [](const ReturnMoments& m, double trades, double trials, double variance) {
    return trades > 0 ? deflated_sharpe(m.sr_bar, m.n, m.skew, m.kurtosis, trials, variance) : 0.0;
  };
  for (std::size_t r = 0; r < ranked.size(); ++r) {
    const std::size_t i = order[r];
    HallOfFameEntry h;
    h.genome = ranked[r];
    h.hash = genome_hash(ranked[r]);
    h.generation = picks[i]->generation;
    h.fitness = picks[i]->fitness;
    h.train = picks[i]->train;
    h.validation = val[i];
    h.test = backtest_metrics(test.genome[r], bpy);
    h.train_dsr = dsr(h.train, static_cast<double>(result.trials), result.sr_variance);
    h.validation_dsr = has_validation ? dsr_of(val_moments[i], h.validation.trades, static_cast<double>(hof.size()), result.validation_sr_variance)
                                      : h.train_dsr;
    h.test_returns = portfolio_bar_returns(base, ranked[r]);  // base holds the test window
    h.test_dsr = dsr_of(return_moments(h.test_returns), h.test.trades, 1.0, 0.0);
    h.parents = picks[i]->parents;
    h.test_accum = test.genome[r];
    result.hall_of_fame.push_back(h);
  }
}

}  // namespace qtos::detail
