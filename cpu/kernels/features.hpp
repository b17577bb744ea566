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
  GapPolicy gaps{};                 ///< what a missing bar does (read by the drivers; default skip)
  std::int32_t price_decimals = -1;  ///< the ADX takes price changes at this quote precision (PriceGrid); -1: as stored
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

/// One symbol's features as of a bar. `history` counts the valid bars up to `last_bar` since the state last restarted
/// (under the `skip` gap policy every valid bar; under `reset-after:N` those after the last gap longer than N bars).
struct FeatureRow {
  float value[kFeatureCount];  ///< indexed by Feature; NaN while a feature is in its lookback
  std::int32_t history = 0;    ///< bars with data ending at last_bar since the last restart
  std::int32_t last_bar = -1;  ///< last bar with data at or before the evaluation bar; -1 when none
  /// Value of one feature.
  QTOS_HD float get(Feature f) const { return value[static_cast<int>(f)]; }
};

/// Longest liquidity window (the pair estimates of the spread proxy live in a fixed ring).
inline constexpr std::int32_t kLiquidityWindowMax = 64;

/// The indicator states of one symbol. The recursive indicators (EMAs, DMI/ADX, ATR, drawdown blocks) advance every
/// bar; the window features (Bollinger width, dollar volume, spread proxy, ROC) are evaluated from the lags only
/// where they are read, and the spread's pair estimates are computed only for the pairs its window will hold. Both
/// the batch and the incremental form evaluate them with the same code, so the two agree bit for bit.
template <class T>
struct FeatureState {
  EmaState<T> ema_fast, ema_slow;  ///< alignment EMAs
  DmiState<T> dmi;                 ///< ADX
  AtrState<T> atr;                 ///< ATR
  MaxDrawdownState<T> dd;          ///< window drawdown
  std::int32_t bb_n = 20, liq_n = 20, mom_n = 20;  ///< Bollinger, liquidity and momentum windows
  T prev_high = 0, prev_low = 0, prev_log_range = 0;  ///< the previous bar and ln(H/L) of it
  bool prev_log_range_valid = false;                  ///< prev_log_range holds ln(prev_high/prev_low)
  T pairs[kLiquidityWindowMax];    ///< Corwin-Schultz estimates; pair p (bars p, p+1 of the stretch) in slot p % liq_n
  FeatureRow row;                  ///< the features as of the last valid bar
  GapPolicy gaps{};                ///< the drivers' gap policy (FeatureParams::gaps)

  /// Sets every window and clears the state.
  QTOS_HD void init(const FeatureParams& p) {
    IndicatorParams q;
    ema_fast.init_period(p.ema_fast);
    ema_slow.init_period(p.ema_slow);
    q.period = p.adx; q.price_decimals = p.price_decimals; dmi.init(q);
    q.price_decimals = -1;
    q.period = p.atr; atr.init(q);
    q.period = p.drawdown; dd.init(q);
    mom_n = p.momentum;
    bb_n = p.bbands;
    liq_n = p.liquidity;
    gaps = p.gaps;
    row.last_bar = -1;
    reset();
  }
  /// Forgets the history (a gap the policy does not bridge); keeps last_bar.
  QTOS_HD void reset() {
    ema_fast.reset(); ema_slow.reset(); dmi.reset(); atr.reset(); dd.reset();
    prev_log_range_valid = false;
    row.history = 0;
    for (int j = 0; j < kFeatureCount; ++j) row.value[j] = NAN;
  }
  /// Consumes valid bar t (the driver skips missing bars, which leave the features as of the last valid bar so that
  /// staleness can be judged, and resets the state where the gap policy says). `evaluate`: compute the window features
  /// (the batch form asks only at the bar whose features are read). `need_pair`: this bar's spread pair estimate will
  /// be inside the liquidity window at the next evaluation.
  template <class H>
  QTOS_HD void step(const H& h, std::int32_t t, bool evaluate = true, bool need_pair = true) {
    const T high = T(h.high(0)), low = T(h.low(0)), close = T(h.close(0));
    T o[3];
    const T fast = ema_fast.update(close);
    const T slow = ema_slow.update(close);
    row.value[int(Feature::close)] = float(close);
    row.value[int(Feature::ma_alignment)] = float(fast / slow - T(1));
    dmi.step(h, o);
    row.value[int(Feature::adx)] = float(o[2]);
    atr.step(h, o);
    row.value[int(Feature::atr_pct)] = float(o[0] / close);
    const std::int32_t i = row.history;  // bars of this stretch before this one
    if (i >= 1 && need_pair) {
      if (!prev_log_range_valid) prev_log_range = qlog(prev_high / prev_low);  // same value as if kept every bar
      const T lr = qlog(high / low);
      const T hi = prev_high > high ? prev_high : high;
      const T lo = prev_low < low ? prev_low : low;
      pairs[(i - 1) % liq_n] = corwin_schultz_logs(prev_log_range, lr, T(qlog(hi / lo)));
      prev_log_range = lr;
      prev_log_range_valid = true;
    } else {
      prev_log_range_valid = false;
    }
    prev_high = high;
    prev_low = low;
    dd.push(close);
    ++row.history;
    row.last_bar = t;
    if (evaluate) evaluate_windows(h);
  }

  /// The window features as of the last valid bar (`h` positioned at it): ROC (as RocState), the drawdown query,
  /// Bollinger width (k = 2, population std, two-pass in double), mean quote volume and the spread proxy; NaN while
  /// the stretch is shorter than the window. Reads lags only, changes no indicator state.
  template <class H>
  QTOS_HD void evaluate_windows(const H& h) {
    const std::int32_t n = row.history;
    if (n == 0) return;
    if (n > mom_n) {
      const T x = T(h.close(0)), x_old = T(h.close(mom_n));
      row.value[int(Feature::roc)] = float(x_old != T(0) ? T(100) * (x / x_old - T(1)) : T(0));
    }
    row.value[int(Feature::drawdown)] = float(dd.query(h));
    float width = NAN, dollar = NAN, spread = NAN;
    if (n >= bb_n) {
      double mean = 0.0;
      for (std::int32_t k = bb_n - 1; k >= 0; --k) mean += double(h.close(k));
      mean /= double(bb_n);
      double var = 0.0;
      for (std::int32_t k = bb_n - 1; k >= 0; --k) {
        const double d = double(h.close(k)) - mean;
        var += d * d;
      }
      width = float(4.0 * qsqrt(var / double(bb_n)) / mean);
    }
    if (n >= liq_n) {
      double sum = 0.0;
      for (std::int32_t k = liq_n - 1; k >= 0; --k) sum += double(h.qvol(k));
      dollar = float(sum / double(liq_n));
    }
    if (n >= liq_n + 1) {
      T sum = T(0);
      for (std::int32_t pidx = n - 1 - liq_n; pidx <= n - 2; ++pidx) sum += pairs[pidx % liq_n];  // oldest first
      spread = float(sum / T(liq_n));
    }
    row.value[int(Feature::bb_width)] = width;
    row.value[int(Feature::dollar_volume)] = dollar;
    row.value[int(Feature::spread)] = spread;
  }
};

/// Runs a feature state over bars [0, len] of one row that starts at panel bar `t0` (batch form); the row then holds
/// the features as of bar t0 + len (as of its last valid bar when the row ends in a gap). Missing bars are skipped or
/// restart the state as `st.gaps` says (lags through `scratch`, len + 1 entries, after a skipped gap). Window features
/// are evaluated once, at the last valid bar, and spread pair estimates are computed only for the last `liq_n` + 1
/// valid bars (the pairs the liquidity window holds there).
template <class T>
QTOS_HD inline void features_row_run(FeatureState<T>& st, const float* high, const float* low, const float* close,
                                     const float* qvol, std::int32_t len, std::int32_t t0, std::int32_t* scratch) {
  std::int32_t n_valid = 0, last_valid = -1;
  for (std::int32_t t = 0; t <= len; ++t)
    if (bar_valid(high[t], low[t], close[t])) { ++n_valid; last_valid = t; }
  GapCursor cur{st.gaps, scratch};
  std::int32_t seen = 0;  // valid bars before t
  for (std::int32_t t = 0; t <= len; ++t) {
    if (!bar_valid(high[t], low[t], close[t])) { cur.miss(); continue; }
    if (cur.enter(t) == GapStep::reset) st.reset();
    const bool need_pair = n_valid - 1 - seen < st.liq_n;
    st.step(GapHist<RowAt>{RowAt{high, low, close, qvol}, cur.positions(), t, cur.count}, t + t0, t == last_valid,
            need_pair);
    cur.done();
    ++seen;
  }
}

}  // namespace qtos::kernels
