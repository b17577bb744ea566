#pragma once
/// @file The per-symbol feature state behind opportunity ranking: the indicators a score needs, updated together
/// one bar at a time. The batch form (CPU and CUDA backends) and the incremental form (one new bar for every
/// symbol) call the same `step`, so a full recompute and an incremental update give the same features.

#include <cstdint>

#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/qtos_hd.hpp"

namespace qtos::kernels {

/// The raw inputs of the opportunity criteria, one value per symbol.
enum class Feature : std::int32_t {
  close,          ///< last close
  ma_alignment,   ///< EMA(fast)/EMA(slow) - 1: sign = direction, size = trend alignment
  adx,            ///< Wilder's ADX
  atr_pct,        ///< ATR / close
  bb_width,       ///< Bollinger width (upper-lower)/middle
  roc,            ///< rate of change over the momentum window, percent
  dollar_volume,  ///< mean quote volume per bar over the liquidity window
  spread,         ///< Corwin-Schultz spread proxy over the liquidity window, fraction of price
  drawdown,       ///< max drawdown over the drawdown window, fraction
};
/// Number of features.
inline constexpr int kFeatureCount = 9;

/// Windows of the feature indicators (bars).
struct FeatureParams {
  std::int32_t ema_fast = 20;       ///< fast EMA of the alignment
  std::int32_t ema_slow = 50;       ///< slow EMA of the alignment
  std::int32_t adx = 14;            ///< Wilder period of the DMI/ADX
  std::int32_t atr = 14;            ///< Wilder period of the ATR
  std::int32_t bbands = 20;         ///< Bollinger period (k = 2)
  std::int32_t momentum = 20;       ///< rate-of-change window
  std::int32_t liquidity = 20;      ///< dollar volume and spread window
  std::int32_t drawdown = 60;       ///< max drawdown window (<= kMaxDrawdownWindowMax)
  /// Bars of history a symbol needs before every feature has a value.
  QTOS_HD std::int32_t warmup() const {
    std::int32_t w = ema_slow;
    if (2 * adx > w) w = 2 * adx;
    if (atr + 1 > w) w = atr + 1;
    if (bbands > w) w = bbands;
    if (momentum + 1 > w) w = momentum + 1;
    if (liquidity + 1 > w) w = liquidity + 1;
    if (drawdown > w) w = drawdown;
    return w;
  }
  /// Oldest lag any feature reads (ring capacity - 1).
  QTOS_HD std::int32_t max_lag() const {
    std::int32_t w = drawdown - 1;
    if (bbands > w) w = bbands;
    if (momentum > w) w = momentum;
    if (liquidity + 1 > w) w = liquidity + 1;
    return w;
  }
};

/// One symbol's features as of a bar. `history` counts consecutive valid bars up to `last_bar` (a gap restarts it).
struct FeatureRow {
  float value[kFeatureCount];  ///< indexed by Feature; NaN while a feature is in its lookback
  std::int32_t history = 0;    ///< consecutive bars with data ending at last_bar
  std::int32_t last_bar = -1;  ///< last bar with data at or before the evaluation bar; -1 when none
  /// Value of one feature.
  QTOS_HD float get(Feature f) const { return value[static_cast<int>(f)]; }
};

/// The indicator states of one symbol.
template <class T>
struct FeatureState {
  EmaState<T> ema_fast, ema_slow;  ///< alignment EMAs
  DmiState<T> dmi;                 ///< ADX
  AtrState<T> atr;                 ///< ATR
  BbandsState<T> bb;               ///< Bollinger width
  RocState<T> roc;                 ///< momentum
  DollarVolumeState<T> dv;         ///< liquidity
  SpreadState<T> spread;           ///< spread proxy
  MaxDrawdownState<T> dd;          ///< window drawdown
  FeatureRow row;                  ///< the features as of the last valid bar
  bool gap = false;  ///< a missing bar was seen: the next valid bar restarts every indicator

  /// Sets every window and clears the state.
  QTOS_HD void init(const FeatureParams& p) {
    IndicatorParams q;
    ema_fast.init_period(p.ema_fast);
    ema_slow.init_period(p.ema_slow);
    q.period = p.adx; dmi.init(q);
    q.period = p.atr; atr.init(q);
    q.period = p.bbands; q.k = 2.0; bb.init(q);
    q.period = p.momentum; roc.init(q);
    q.period = p.liquidity; dv.init(q); spread.init(q);
    q.period = p.drawdown; dd.init(q);
    row.last_bar = -1;
    gap = false;
    reset();
  }
  /// Forgets the history (a gap); keeps last_bar.
  QTOS_HD void reset() {
    ema_fast.reset(); ema_slow.reset(); dmi.reset(); atr.reset(); bb.reset(); roc.reset(); dv.reset(); spread.reset();
    dd.reset();
    row.history = 0;
    for (int j = 0; j < kFeatureCount; ++j) row.value[j] = NAN;
  }
  /// Consumes bar t. A missing bar leaves the features as of the last valid bar (so staleness can be judged)
  /// and makes the next valid bar restart every indicator. `evaluate` = false skips the window max-drawdown query
  /// (the batch form asks for it only at bars whose features are read: the evaluation bar, or before a gap).
  template <class H>
  QTOS_HD void step(const H& h, std::int32_t t, bool evaluate = true) {
    const T high = T(h.high(0)), low = T(h.low(0)), close = T(h.close(0));
    if (!bar_valid(high, low, close)) { gap = true; return; }
    if (gap) { reset(); gap = false; }
    T o[5];
    const T fast = ema_fast.update(close);
    const T slow = ema_slow.update(close);
    row.value[int(Feature::close)] = float(close);
    row.value[int(Feature::ma_alignment)] = float(fast / slow - T(1));
    dmi.step(h, o);
    row.value[int(Feature::adx)] = float(o[2]);
    atr.step(h, o);
    row.value[int(Feature::atr_pct)] = float(o[0] / close);
    if (evaluate) {
      bb.step(h, o);
      row.value[int(Feature::bb_width)] = float(o[3]);
      roc.step(h, o);
      row.value[int(Feature::roc)] = float(o[0]);
      dv.step(h, o);
      row.value[int(Feature::dollar_volume)] = float(o[0] / T(dv.period()));
    } else {  // same state updates without the outputs nobody reads
      bb.w.add(close, bb.w.count >= bb.w.n ? T(h.close(bb.w.n)) : T(0));
      ++roc.count;
      dv.w.add(T(h.qvol(0)), dv.w.count >= dv.w.n ? T(h.qvol(dv.w.n)) : T(0));
    }
    spread.step(h, o);
    row.value[int(Feature::spread)] = float(o[0]);
    dd.push(close);
    if (evaluate) row.value[int(Feature::drawdown)] = float(dd.query(h));
    ++row.history;
    row.last_bar = t;
  }
};

/// Runs a feature state over bars [0, len] of one row that starts at panel bar `t0` (batch form); the row then holds
/// the features as of bar t0 + len.
template <class T>
QTOS_HD inline void features_row_run(FeatureState<T>& st, const float* high, const float* low, const float* close,
                                     const float* qvol, std::int32_t len, std::int32_t t0) {
  for (std::int32_t t = 0; t <= len; ++t) {
    const bool evaluate = t == len || !bar_valid(high[t + 1], low[t + 1], close[t + 1]);
    st.step(RowHist{high, low, close, qvol, t}, t + t0, evaluate);
  }
}

}  // namespace qtos::kernels
