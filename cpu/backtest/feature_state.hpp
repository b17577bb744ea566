#pragma once
/// @file The strategy feature bank of one symbol as a streaming state: the batch computation
/// (strategy_features_compute) and the live/shadow paper trading both feed bars through this one object.

#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/strategy.hpp"

namespace qtos {

/// Streaming feature bank (kStrategyFeatureCount values per bar, double precision). A bar with a missing high, low
/// or close gets NaN features; the indicators skip it or restart after the gap as the gap policy says
/// (cpu/kernels/gaps.hpp; the ring of closes holds existing bars only, so lags count those).
class StrategyFeatureState {
 public:
  /// A fresh bank under gap policy `gaps` (default skip); RSI and ADX take price changes at `price_decimals` (the
  /// quotes' decimals, price_decimals_infer; -1: prices as stored).
  explicit StrategyFeatureState(kernels::GapPolicy gaps = {}, std::int32_t price_decimals = -1)
      : gaps_(gaps), price_decimals_(price_decimals) {
    reset();
  }
  /// The gap policy.
  kernels::GapPolicy gaps() const { return gaps_; }
  /// The decimals RSI and ADX take price changes at (-1: as stored).
  std::int32_t price_decimals() const { return price_decimals_; }

  /// Forgets every bar.
  void reset() {
    using namespace kernels;
    for (int i = 0; i < kEmaCount; ++i) ema_[i].init_period(kEmaPeriods[i]);
    for (int i = 0; i < kRsiCount; ++i) rsi_[i].init(IndicatorParams{kRsiPeriods[i], 26, 9, 2.0, {}, price_decimals_});
    for (int i = 0; i < kBbCount; ++i) bb_[i].init(IndicatorParams{kBbPeriods[i], 26, 9, 1.0});  // k = 1: upper - middle is the sd
    for (int i = 0; i < kAdxCount; ++i) dmi_[i].init(IndicatorParams{kAdxPeriods[i], 26, 9, 2.0, {}, price_decimals_});
    for (int i = 0; i < kRocCount; ++i) roc_[i].init(IndicatorParams{kRocPeriods[i], 26, 9, 2.0});
    atr_.init(IndicatorParams{kStrategyAtrPeriod, 26, 9, 2.0});
    spread_.init(IndicatorParams{kStrategySpreadPeriod, 26, 9, 2.0});
    count_ = 0;
    missing_ = 0;
  }

  /// Adds one bar and writes the kStrategyFeatureCount features of it into `out` (NaN while warming up or when the
  /// bar is missing).
  void update(double h, double l, double c, double* out) { update(h, l, c, out, kAllPlanes); }

  /// Every plane (bit p: plane p).
  static constexpr std::uint32_t kAllPlanes = (1u << kernels::kStrategyFeatureCount) - 1;
  static_assert(kernels::kStrategyFeatureCount <= 32);

  /// update() of only the indicators behind the planes in `planes` (bit p: plane p): the others are neither advanced
  /// nor written, and must not be read afterwards. The planes computed are the same values as update()'s: a streaming
  /// reader that needs a few planes (the executor's strategies) skips the rest.
  void update(double h, double l, double c, double* out, std::uint32_t planes) {
    using namespace kernels;
    if (!(std::isfinite(h) && std::isfinite(l) && std::isfinite(c))) {
      for (std::int32_t k = 0; k < kStrategyFeatureCount; ++k) out[k] = std::numeric_limits<double>::quiet_NaN();
      ++missing_;
      return;
    }
    if (count_ > 0 && gaps_.resets(missing_)) reset();
    missing_ = 0;
    ring_[count_ & kRingMask] = c;
    // The close n bars ago, once n bars were seen since the last reset (as the indicator states require).
    auto lag = [&](std::int32_t n) { return count_ >= n ? ring_[(count_ - n) & kRingMask] : 0.0; };
    const auto pl = [](StrategyFeature f) { return static_cast<std::int32_t>(f); };
    const auto want = [planes](std::int32_t p) { return ((planes >> p) & 1u) != 0; };
    for (int i = 0; i < kEmaCount; ++i)
      if (want(pl(StrategyFeature::ema0) + i)) out[pl(StrategyFeature::ema0) + i] = ema_[i].update(c);
    double tmp[5];
    for (int i = 0; i < kRsiCount; ++i)
      if (want(pl(StrategyFeature::rsi0) + i)) out[pl(StrategyFeature::rsi0) + i] = rsi_[i].update(c);
    for (int i = 0; i < kBbCount; ++i) {
      if (!want(pl(StrategyFeature::bb_mid0) + i) && !want(pl(StrategyFeature::bb_sd0) + i)) continue;
      bb_[i].update(c, lag(kBbPeriods[i]), tmp);
      out[pl(StrategyFeature::bb_mid0) + i] = tmp[0];
      out[pl(StrategyFeature::bb_sd0) + i] = tmp[1] - tmp[0];
    }
    for (int i = 0; i < kAdxCount; ++i) {
      if (!want(pl(StrategyFeature::adx0) + i)) continue;
      dmi_[i].update(h, l, c, tmp);
      out[pl(StrategyFeature::adx0) + i] = tmp[2];
    }
    for (int i = 0; i < kRocCount; ++i) {
      if (!want(pl(StrategyFeature::roc0) + i)) continue;
      roc_[i].update(c, lag(kRocPeriods[i]), tmp);
      out[pl(StrategyFeature::roc0) + i] = tmp[0];
    }
    if (want(pl(StrategyFeature::atr))) out[pl(StrategyFeature::atr)] = atr_.update(h, l, c);
    if (want(pl(StrategyFeature::spread)))
      out[pl(StrategyFeature::spread)] = spread_.update(h, l, 0.0);  // a 20-bar window lives in the state's ring
    ++count_;
  }

 private:
  static constexpr std::int64_t kRingMask = 63;  // longest lag read: 50 bars
  static_assert(kernels::kBbPeriods[kernels::kBbCount - 1] <= kRingMask && kernels::kRocPeriods[kernels::kRocCount - 1] <= kRingMask);
  kernels::EmaState<double> ema_[kernels::kEmaCount];
  kernels::RsiState<double> rsi_[kernels::kRsiCount];
  kernels::BbandsState<double> bb_[kernels::kBbCount];
  kernels::DmiState<double> dmi_[kernels::kAdxCount];
  kernels::RocState<double> roc_[kernels::kRocCount];
  kernels::AtrState<double> atr_;
  kernels::SpreadState<double> spread_;
  static_assert(kernels::kStrategySpreadPeriod <= kernels::SpreadState<double>::kRing);
  double ring_[kRingMask + 1] = {};
  std::int64_t count_ = 0;         // existing bars since the last reset
  std::int32_t missing_ = 0;       // missing bars since the last existing one
  kernels::GapPolicy gaps_;
  std::int32_t price_decimals_ = -1;
};

}  // namespace qtos
