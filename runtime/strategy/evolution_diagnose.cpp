// Warnings for a search that cannot trade: indicators of the grammar that never warm up on the train window, and a
// population that mostly never trades.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/strategy/evolution.hpp"

namespace qtos {

namespace {

using kernels::StrategyFeature;

/// The indicator a feature plane holds, as the rules text names it.
std::string plane_name(std::int32_t p) {
  auto at = [](StrategyFeature f) { return static_cast<std::int32_t>(f); };
  auto named = [](const char* what, std::int32_t period) { return std::string(what) + "(" + std::to_string(period) + ")"; };
  if (p < at(StrategyFeature::rsi0)) return named("EMA", kernels::kEmaPeriods[p - at(StrategyFeature::ema0)]);
  if (p < at(StrategyFeature::bb_mid0)) return named("RSI", kernels::kRsiPeriods[p - at(StrategyFeature::rsi0)]);
  if (p < at(StrategyFeature::bb_sd0)) return named("BB", kernels::kBbPeriods[p - at(StrategyFeature::bb_mid0)]) + " middle";
  if (p < at(StrategyFeature::adx0)) return named("BB", kernels::kBbPeriods[p - at(StrategyFeature::bb_sd0)]) + " width";
  if (p < at(StrategyFeature::roc0)) return named("ADX", kernels::kAdxPeriods[p - at(StrategyFeature::adx0)]);
  if (p < at(StrategyFeature::atr)) return named("ROC", kernels::kRocPeriods[p - at(StrategyFeature::roc0)]);
  if (p == at(StrategyFeature::atr)) return named("ATR", kernels::kStrategyAtrPeriod) + " (stops, targets, ATR% terms)";
  return "spread proxy";
}

}  // namespace

std::vector<std::string> evolve_warnings_before(const kernels::PanelView& panel, const StrategyFeatures& features, const EvolveOptions& opt) {
  std::vector<std::string> out;
  if (panel.n_symbols <= 0 || features.f32.empty()) return out;
  const std::int32_t b = std::max(0, opt.train_begin), e = std::min(panel.n_bars, opt.train_end);
  // The most bars an indicator runs over without a restart, over the symbols: under skip every bar with a close of the
  // window; under reset-after:N the longest stretch of them not broken by a gap longer than N bars (reset-after:0: the
  // longest run of consecutive bars).
  const kernels::GapPolicy gaps = features.gaps;
  std::int32_t longest = 0;
  for (std::int32_t s = 0; s < panel.n_symbols; ++s) {
    std::int32_t run = 0, missing = 0;
    for (std::int32_t t = b; t < e; ++t) {
      if (!std::isfinite(panel.close[panel.at(s, t)])) {
        ++missing;
        continue;
      }
      if (gaps.resets(missing)) run = 0;
      missing = 0;
      longest = std::max(longest, ++run);
    }
  }
  std::vector<std::string> cold;
  for (std::int32_t p = 0; p < static_cast<std::int32_t>(StrategyFeature::spread); ++p) {
    bool warm = false;
    for (std::int32_t s = 0; s < panel.n_symbols && !warm; ++s) {
      const float* row = features.f32.data() + p * features.plane_size + panel.at(s, 0);
      for (std::int32_t t = b; t < e && !warm; ++t) warm = std::isfinite(row[t]);
    }
    if (!warm) cold.push_back(plane_name(p));
  }
  if (!cold.empty()) {
    std::string names;
    for (const auto& n : cold) names += (names.empty() ? "" : ", ") + n;
    const std::string stretch =
        gaps.skips_all() ? "the most bars with data of any symbol there is "
        : gaps.reset_after == 0
            ? "the longest run of consecutive bars there is "
            : "the longest stretch of bars with data not broken by a gap of more than " + std::to_string(gaps.reset_after) +
                  " bars there is ";
    const std::string cause =
        gaps.skips_all() ? "a look-back longer than the bars with data in the window: use a longer window"
                         : "a look-back longer than the window, or missing bars that restart the indicators under gaps reset-after:" +
                               std::to_string(gaps.reset_after) + ": use a longer window, data with fewer gaps or --gaps skip";
    out.push_back(std::to_string(cold.size()) + " indicator(s) of the grammar never warm up on the train window [" + std::to_string(b) +
                  ", " + std::to_string(e) + "): " + names + "; " + stretch + std::to_string(longest) +
                  ", so rules reading them can never fire (" + cause + ")");
  }
  return out;
}

std::vector<std::string> evolve_warnings_after(const EvolveResult& r) {
  std::vector<std::string> out;
  if (r.trials > 0 && 2 * r.silent_trials > r.trials) {
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "%lld of the %lld genomes tried (%.0f%%) never traded on the train window: their rules never fired there "
                  "(indicators that cannot warm up between missing bars, or too short a window); fitness -100 marks them",
                  static_cast<long long>(r.silent_trials), static_cast<long long>(r.trials),
                  100.0 * static_cast<double>(r.silent_trials) / static_cast<double>(r.trials));
    out.push_back(buf);
  }
  if (!r.hall_of_fame.empty() && r.hall_of_fame.front().fitness <= -50.0)
    out.push_back("no genome reached --min-trades on the train window (the selected one made " +
                  std::to_string(static_cast<long long>(r.hall_of_fame.front().train.trades)) +
                  " trades): the hall of fame is not a set of strategies that trade");
  return out;
}

}  // namespace qtos
