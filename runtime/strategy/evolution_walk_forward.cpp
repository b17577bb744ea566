// Walk-forward: K folds in time, the whole search once per fold, the chosen genomes' out-of-sample blocks pooled.
#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "runtime/strategy/deflated_sharpe.hpp"
#include "runtime/strategy/portfolio_returns.hpp"

namespace qtos {

std::vector<FoldWindow> walk_forward_windows(std::int32_t n_bars, const WalkForwardOptions& o) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("evolve: " + m); };
  if (o.folds < 1 || o.folds > 100) bad("--folds " + std::to_string(o.folds) + ": expected 1 to 100");
  if (o.purge < 0) bad("--purge " + std::to_string(o.purge) + ": expected >= 0 bars");
  if (!(o.validation >= 0 && o.validation < 1)) bad("--validation " + std::to_string(o.validation) + ": expected a fraction in [0, 1)");
  const std::int32_t end = o.end < 0 ? n_bars : o.end;
  if (o.begin < 0 || end > n_bars || end <= o.begin)
    bad("walk-forward window [" + std::to_string(o.begin) + ", " + std::to_string(end) + ") must lie within the data's " +
        std::to_string(n_bars) + " bars");
  const std::int32_t n = end - o.begin, block = n / (o.folds + 1);
  auto block_begin = [&](std::int32_t j) { return o.begin + j * block; };
  std::vector<FoldWindow> out;
  for (std::int32_t k = 1; k <= o.folds; ++k) {
    FoldWindow w;
    w.test_begin = block_begin(k);
    w.test_end = k == o.folds ? end : block_begin(k + 1);
    w.train_begin = o.rolling ? block_begin(k - 1) : o.begin;
    w.validation_end = w.test_begin - o.purge;
    const std::int32_t span = std::max(0, w.validation_end - w.train_begin);
    w.validation_begin = w.validation_end - static_cast<std::int32_t>(std::floor(o.validation * span));
    w.train_end = w.validation_begin;
    const std::int32_t val_bars = w.validation_end - w.validation_begin;
    if (w.train_end - w.train_begin < o.min_train_bars || w.test_end - w.test_begin < o.min_test_bars ||
        (o.validation > 0 && val_bars < o.min_test_bars))
      bad("--folds " + std::to_string(o.folds) + " with --purge " + std::to_string(o.purge) + (o.rolling ? " --rolling" : "") +
          " on " + std::to_string(n) + " bars: fold " + std::to_string(k) + " would train on " +
          std::to_string(std::max(0, w.train_end - w.train_begin)) + " bars, validate on " + std::to_string(std::max(0, val_bars)) +
          " and test on " + std::to_string(w.test_end - w.test_begin) + "; expected at least " + std::to_string(o.min_train_bars) +
          ", " + std::to_string(o.validation > 0 ? o.min_test_bars : 0) + " and " + std::to_string(o.min_test_bars) +
          " (fewer --folds, a smaller --purge or more data)");
    out.push_back(w);
  }
  return out;
}

WalkForwardResult evolve_walk_forward(const kernels::PanelView& panel, const StrategyFeatures& features,
                                      const BacktestBackend& backend, const WalkForwardOptions& opt,
                                      const std::function<void(std::int32_t, const GenerationReport&)>& on_generation) {
  const std::vector<FoldWindow> windows = walk_forward_windows(panel.n_bars, opt);
  WalkForwardResult r;
  kernels::BacktestAccum pooled;
  double compounded = 1.0, worst_dd = 0.0, is_sum = 0.0;
  double n_all = 0, s_all = 0, ss_all = 0;  // pooled moments of the per-bar train Sharpe over every fold's trials
  for (std::size_t k = 0; k < windows.size(); ++k) {
    const auto fold = static_cast<std::int32_t>(k + 1);
    EvolveOptions eo = opt.evolve;
    eo.seed = opt.evolve.seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(fold));
    eo.train_begin = windows[k].train_begin;
    eo.train_end = windows[k].train_end;
    eo.validation_begin = windows[k].validation_begin;
    eo.validation_end = windows[k].validation_end;
    eo.test_begin = windows[k].test_begin;
    eo.test_end = windows[k].test_end;
    EvolveResult er = evolve(panel, features, backend, eo, [&](const GenerationReport& g) {
      if (on_generation) on_generation(fold, g);
    });
    FoldReport f;
    f.fold = fold;
    f.window = windows[k];
    f.trials = er.trials;
    // The genome deployed on block k is picked before block k is seen: the fold's selected strategy.
    const auto chosen = er.hall_of_fame.begin();
    f.chosen = *chosen;
    f.best_oos_sharpe = std::max_element(er.hall_of_fame.begin(), er.hall_of_fame.end(), [](const HallOfFameEntry& a, const HallOfFameEntry& b) {
                          return a.test.sharpe < b.test.sharpe;
                        })->test.sharpe;
    pooled.merge(chosen->test_accum);
    compounded *= 1.0 + chosen->test.total_return;
    worst_dd = std::max(worst_dd, chosen->test.max_drawdown);
    is_sum += chosen->train.sharpe;
    // Pool the train-Sharpe moments: n, sum and sum of squares recovered from each fold's mean and variance.
    const double n = static_cast<double>(er.sr_count);
    n_all += n;
    s_all += n * er.sr_mean;
    ss_all += (n > 1 ? er.sr_variance * (n - 1) : 0.0) + n * er.sr_mean * er.sr_mean;
    r.trials += er.trials;
    r.bar_steps += er.bar_steps;
    r.seconds += er.seconds;
    r.folds.push_back(f);
    const bool stopped = er.partial || (opt.evolve.stop.stop_requested() && k + 1 < windows.size());
    if (!er.partial) ++r.folds_completed;
    if (k + 1 == windows.size() || stopped) {
      r.partial = stopped;
      r.last = std::move(er);
      break;
    }
  }
  r.pooled_oos = backtest_metrics(pooled, opt.evolve.costs.bars_per_year);
  r.pooled_oos.total_return = compounded - 1.0;
  r.pooled_oos.max_drawdown = worst_dd;
  r.mean_is_sharpe = is_sum / static_cast<double>(r.folds.size());
  r.efficiency = r.mean_is_sharpe > 0 ? r.pooled_oos.sharpe / r.mean_is_sharpe : std::numeric_limits<double>::quiet_NaN();
  r.sr_variance = n_all > 1 ? std::max(0.0, (ss_all - s_all * s_all / n_all) / (n_all - 1)) : 0.0;
  // One genome per block, each chosen before its block: N = 1 on the test blocks, on the portfolio's bar returns.
  std::vector<double> joined;
  for (const FoldReport& f : r.folds) joined.insert(joined.end(), f.chosen.test_returns.begin(), f.chosen.test_returns.end());
  const ReturnMoments m = return_moments(joined);
  r.deflated_sharpe = r.pooled_oos.trades > 0 ? deflated_sharpe(m.sr_bar, m.n, m.skew, m.kurtosis, 1.0, 0.0) : 0.0;
  return r;
}

}  // namespace qtos
