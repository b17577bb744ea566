#pragma once
/// @file A synthetic multi-symbol crypto market: the embedded default data of every verb.
///
/// A market-wide regime chain (trending up, trending down, ranging, volatility shock/crash) drives a common
/// factor with GARCH(1,1) volatility; each symbol has a beta to it, its own fat-tailed GARCH noise, a price
/// level, a liquidity level that sets dollar volume and the bid-ask spread, late listings and rare gaps.
/// The same options and seed give the same panel bit for bit (docs/DATA.md).

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cpu/util/enum_names.hpp"
#include "runtime/data/market_panel.hpp"

namespace qtos {

/// The four market regimes of the generator (the bus has its own, coarser-grained Regime for RegimeChanged).
enum class SynthRegime : std::uint8_t { trend_up = 0, trend_down = 1, ranging = 2, shock = 3 };
QTOS_ENUM_NAMES(SynthRegime, "trend_up", "trend_down", "ranging", "shock");
/// "trend_up", "trend_down", "ranging", "shock".
const char* synth_regime_name(SynthRegime r);

/// What to generate.
struct SynthOptions {
  std::int32_t n_symbols = 50;
  std::int32_t n_bars = 2000;
  std::int64_t interval_ms = 3'600'000;
  std::uint64_t seed = 42;
  std::int64_t t0_ms = 1'704'067'200'000;  ///< 2024-01-01T00:00:00Z
  double late_listing_fraction = 0.15;      ///< share of symbols listed after the first bar
  double gap_rate = 0.0005;                 ///< chance per symbol and bar of a missing bar (exchange outage)
  /// Planted, tradeable momentum: each bar's return gains planted_momentum x the bar's volatility in the
  /// direction of the symbol's last ~10 bars (an EMA of its returns). 0 = none; 0.3 is a strong edge.
  double planted_momentum = 0.0;
  /// Planted, tradeable mean reversion: the same as planted_momentum with the opposite sign (each bar's return loses
  /// planted_reversion x the bar's volatility in the direction of the last ~10 bars). 0 = none; not with momentum.
  double planted_reversion = 0.0;
  /// Sign-flipping regimes of the planted momentum edge: market-wide regimes of about this many bars (geometric
  /// lengths) alternate between momentum (strength planted_momentum) and mean reversion of the same strength at 0.6x
  /// the volatility, so a rule can tell them apart by ATR%. 0 = no flips; needs planted_momentum > 0.
  std::int32_t planted_flip_bars = 0;
  /// A pure random walk: no regime drift, constant regime volatility, no mean reversion while ranging, and each
  /// bar's log return lowered by half its variance so the price is a martingale, and each bar's high and low the
  /// extremes of a Brownian bridge from its open to its close (no rule, stops and targets included, has an edge).
  bool random_walk = false;
  /// Planted regimes: (first bar, regime) pairs in increasing bar order; from each first bar the regime is the given one
  /// until the next pair (before the first pair, the chain's own). Empty: the random regime chain alone.
  std::vector<std::pair<std::int32_t, SynthRegime>> regime_schedule;
};

/// A generated market: the panel and the regime of every bar.
struct SynthMarket {
  MarketPanel panel;
  std::vector<SynthRegime> regimes;  ///< one per bar
  std::vector<float> betas;     ///< each symbol's beta to the market factor
};

/// Throws std::invalid_argument naming the option (e.g. "--bars: 0 is out of range; expected 2 to 50000000") when one
/// is out of range.
void synth_options_check(const SynthOptions& opt);

/// Generates a market (parallel over symbols, deterministic). `progress(done_symbols)` is called from one
/// thread at a time if given. Throws std::invalid_argument naming a bad option, PanelTooLarge (before allocating)
/// when the panel would not fit in memory.
SynthMarket synth_generate(const SynthOptions& opt, const std::function<void(std::int32_t)>& progress = {});

}  // namespace qtos
