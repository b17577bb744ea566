#pragma once
/// @file Strategy genomes and the population-backtest bar step, shared by the serial reference, the TBB backend and
/// the CUDA backend (docs/EVOLUTION.md states the grammar, the fill rules and the metric formulas).
///
/// A genome is a fixed-size, trivially copyable record of 4-byte fields (no padding, so its bytes hash stably).
/// Every field has a declared range; `genome_normalize` maps any bit pattern to a valid genome, so decoding never
/// fails. Conditions read a shared "feature bank": indicator series computed once per symbol for every period in
/// the tables below and shared by all genomes (`StrategyFeature`).

#include <cstdint>

#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/qtos_hd.hpp"

namespace qtos::kernels {

/// EMA periods a moving-average condition may use.
inline constexpr std::int32_t kEmaPeriods[6] = {5, 10, 20, 50, 100, 200};
/// RSI periods.
inline constexpr std::int32_t kRsiPeriods[3] = {7, 14, 21};
/// Bollinger periods (the width k is a continuous gene).
inline constexpr std::int32_t kBbPeriods[3] = {10, 20, 50};
/// ADX periods.
inline constexpr std::int32_t kAdxPeriods[3] = {7, 14, 28};
/// Rate-of-change (momentum) periods.
inline constexpr std::int32_t kRocPeriods[4] = {5, 10, 20, 50};
/// Period of the ATR used by stops, targets, trailing stops and the volatility regime.
inline constexpr std::int32_t kStrategyAtrPeriod = 14;

/// Feature-bank planes: one series per indicator and period, computed once per symbol.
enum class StrategyFeature : std::int32_t {
  ema0 = 0,      ///< EMA(kEmaPeriods[i]) at ema0 + i
  rsi0 = 6,      ///< RSI(kRsiPeriods[i]) at rsi0 + i
  bb_mid0 = 9,   ///< Bollinger middle (SMA) for kBbPeriods[i]
  bb_sd0 = 12,   ///< population standard deviation for kBbPeriods[i]
  adx0 = 15,     ///< ADX(kAdxPeriods[i])
  roc0 = 18,     ///< ROC(kRocPeriods[i]) in percent
  atr = 22,      ///< ATR(kStrategyAtrPeriod)
};
/// Number of feature planes.
inline constexpr std::int32_t kStrategyFeatureCount = 23;

/// Condition families of the grammar.
enum class CondKind : std::int32_t {
  none = 0,        ///< always false; only allowed as the unused second entry term or as "no exit rule"
  ma_above,        ///< EMA(fast) > EMA(slow)
  ma_below,        ///< EMA(fast) < EMA(slow)
  close_above_bb,  ///< close > BB(n,k).band (band: mid, upper, lower)
  close_below_bb,  ///< close < BB(n,k).band
  rsi_below,       ///< RSI(n) < level
  rsi_above,       ///< RSI(n) > level
  adx_above,       ///< ADX(n) > level
  adx_below,       ///< ADX(n) < level
  mom_up,          ///< ROC(n) > 0
  mom_down,        ///< ROC(n) < 0
  vol_high,        ///< ATR(14)/close in percent > level
  vol_low,         ///< ATR(14)/close in percent < level
};
/// Number of condition kinds including `none`.
inline constexpr std::int32_t kCondKindCount = 13;

/// One comparison. `p0`, `p1` index the period tables (meaning depends on the kind); `level` is a threshold or
/// the Bollinger width.
struct Condition {
  std::int32_t kind = 0;  ///< a CondKind
  std::int32_t p0 = 0;    ///< period index (MA: fast EMA; BB/RSI/ADX/ROC: the period)
  std::int32_t p1 = 0;    ///< MA: slow EMA index (> p0); BB: band 0 mid, 1 upper, 2 lower
  float level = 0.0f;     ///< RSI/ADX level, BB width k, volatility level in percent
};

/// How the two entry terms combine.
enum class EntryOp : std::int32_t { single = 0, and_op = 1, or_op = 2 };
/// Which way a genome trades: the rule as written goes long (or short); `both` also shorts on the mirrored rule.
enum class Side : std::int32_t { long_only = 0, short_only = 1, both = 2 };

/// A strategy genome (76 bytes, 4-byte fields only).
struct Genome {
  Condition entry[2];      ///< entry terms (entry[1] ignored when op is single)
  std::int32_t op = 0;     ///< an EntryOp
  Condition exit_rule;     ///< exit signal; kind none = exit only by stops/targets/time
  std::int32_t side = 0;   ///< a Side
  float stop_atr = 0.0f;   ///< stop loss distance in ATRs; 0 = off, else [0.5, 6]
  float take_atr = 0.0f;   ///< take profit distance in ATRs; 0 = off, else [0.5, 10]
  float trail_atr = 0.0f;  ///< trailing stop distance in ATRs from the best price since entry; 0 = off, else [0.5, 6]
  std::int32_t max_hold = 0;  ///< exit after this many bars in the position; 0 = off, else [1, 500]
  float size = 1.0f;          ///< fraction of the sub-account's equity per position, [0.05, 1]
};

/// Declared ranges of the continuous genes.
struct GeneRanges {
  static constexpr float rsi_lo = 5.0f, rsi_hi = 95.0f;      ///< RSI levels
  static constexpr float adx_lo = 10.0f, adx_hi = 50.0f;     ///< ADX levels
  static constexpr float bbk_lo = 0.5f, bbk_hi = 3.5f;       ///< Bollinger widths
  static constexpr float vol_lo = 0.05f, vol_hi = 10.0f;     ///< ATR% levels
  static constexpr float stop_lo = 0.5f, stop_hi = 6.0f;     ///< stop ATR multiples
  static constexpr float take_lo = 0.5f, take_hi = 10.0f;    ///< target ATR multiples
  static constexpr float trail_lo = 0.5f, trail_hi = 6.0f;   ///< trailing ATR multiples
  static constexpr std::int32_t hold_hi = 500;               ///< longest max-hold
  static constexpr float size_lo = 0.05f, size_hi = 1.0f;    ///< position sizes
};

namespace detail {
/// x clamped to [lo, hi]; NaN becomes lo.
QTOS_HD inline float clampf(float x, float lo, float hi) { return x >= lo ? (x <= hi ? x : hi) : lo; }
/// Non-negative modulo.
QTOS_HD inline std::int32_t modi(std::int32_t x, std::int32_t n) { const std::int32_t r = x % n; return r < 0 ? r + n : r; }
/// An optional ATR distance: values below lo/2 are off (0), the rest clamped to [lo, hi].
QTOS_HD inline float optional_gene(float x, float lo, float hi) { return x >= lo * 0.5f ? clampf(x, lo, hi) : 0.0f; }
}  // namespace detail

/// Maps any condition to a valid one (kinds modulo the count, indices into their tables, levels into their ranges).
QTOS_HD inline Condition condition_normalize(Condition c) {
  Condition r;
  r.kind = detail::modi(c.kind, kCondKindCount);
  switch (static_cast<CondKind>(r.kind)) {
    case CondKind::none: break;
    case CondKind::ma_above:
    case CondKind::ma_below: {
      std::int32_t a = detail::modi(c.p0, 6), b = detail::modi(c.p1, 6);
      if (a == b) b = a == 5 ? 4 : a + 1;
      r.p0 = a < b ? a : b;
      r.p1 = a < b ? b : a;
      break;
    }
    case CondKind::close_above_bb:
    case CondKind::close_below_bb:
      r.p0 = detail::modi(c.p0, 3);
      r.p1 = detail::modi(c.p1, 3);
      r.level = detail::clampf(c.level, GeneRanges::bbk_lo, GeneRanges::bbk_hi);
      break;
    case CondKind::rsi_below:
    case CondKind::rsi_above:
      r.p0 = detail::modi(c.p0, 3);
      r.level = detail::clampf(c.level, GeneRanges::rsi_lo, GeneRanges::rsi_hi);
      break;
    case CondKind::adx_above:
    case CondKind::adx_below:
      r.p0 = detail::modi(c.p0, 3);
      r.level = detail::clampf(c.level, GeneRanges::adx_lo, GeneRanges::adx_hi);
      break;
    case CondKind::mom_up:
    case CondKind::mom_down: r.p0 = detail::modi(c.p0, 4); break;
    case CondKind::vol_high:
    case CondKind::vol_low: r.level = detail::clampf(c.level, GeneRanges::vol_lo, GeneRanges::vol_hi); break;
  }
  return r;
}

/// Maps any genome to a valid one: the decode step. Unused fields are zeroed so equal strategies hash equally.
/// A genome whose first entry term is `none` gets an RSI(14) < 30 term (a strategy must be able to enter).
QTOS_HD inline Genome genome_normalize(const Genome& g) {
  Genome r;
  r.op = detail::modi(g.op, 3);
  r.entry[0] = condition_normalize(g.entry[0]);
  if (r.entry[0].kind == static_cast<std::int32_t>(CondKind::none)) {
    r.entry[0].kind = static_cast<std::int32_t>(CondKind::rsi_below);
    r.entry[0].p0 = 1;
    r.entry[0].level = 30.0f;
  }
  r.entry[1] = r.op == static_cast<std::int32_t>(EntryOp::single) ? Condition{} : condition_normalize(g.entry[1]);
  if (r.entry[1].kind == static_cast<std::int32_t>(CondKind::none)) {
    r.op = static_cast<std::int32_t>(EntryOp::single);
    r.entry[1] = Condition{};
  }
  r.exit_rule = condition_normalize(g.exit_rule);
  r.side = detail::modi(g.side, 3);
  r.stop_atr = detail::optional_gene(g.stop_atr, GeneRanges::stop_lo, GeneRanges::stop_hi);
  r.take_atr = detail::optional_gene(g.take_atr, GeneRanges::take_lo, GeneRanges::take_hi);
  r.trail_atr = detail::optional_gene(g.trail_atr, GeneRanges::trail_lo, GeneRanges::trail_hi);
  r.max_hold = g.max_hold <= 0 ? 0 : (g.max_hold > GeneRanges::hold_hi ? GeneRanges::hold_hi : g.max_hold);
  r.size = detail::clampf(g.size, GeneRanges::size_lo, GeneRanges::size_hi);
  return r;
}

/// The condition a short position uses in `both` mode: the rule reflected (MA and momentum flip, RSI level
/// becomes 100 - level, a band above becomes the band below); ADX and volatility terms are direction-free.
QTOS_HD inline Condition condition_mirror(Condition c) {
  switch (static_cast<CondKind>(c.kind)) {
    case CondKind::ma_above: c.kind = static_cast<std::int32_t>(CondKind::ma_below); break;
    case CondKind::ma_below: c.kind = static_cast<std::int32_t>(CondKind::ma_above); break;
    case CondKind::close_above_bb:
      c.kind = static_cast<std::int32_t>(CondKind::close_below_bb);
      c.p1 = c.p1 == 1 ? 2 : (c.p1 == 2 ? 1 : 0);
      break;
    case CondKind::close_below_bb:
      c.kind = static_cast<std::int32_t>(CondKind::close_above_bb);
      c.p1 = c.p1 == 1 ? 2 : (c.p1 == 2 ? 1 : 0);
      break;
    case CondKind::rsi_below: c.kind = static_cast<std::int32_t>(CondKind::rsi_above); c.level = 100.0f - c.level; break;
    case CondKind::rsi_above: c.kind = static_cast<std::int32_t>(CondKind::rsi_below); c.level = 100.0f - c.level; break;
    case CondKind::mom_up: c.kind = static_cast<std::int32_t>(CondKind::mom_down); break;
    case CondKind::mom_down: c.kind = static_cast<std::int32_t>(CondKind::mom_up); break;
    default: break;
  }
  return c;
}

/// Evaluates a condition on the current bar. `f(plane)` returns feature plane `plane` at this bar; a NaN input
/// (warm-up, after a gap) makes every condition false.
template <class T, class F>
QTOS_HD inline bool condition_eval(const Condition& c, T close, const F& f) {
  T lhs = T(0), rhs = T(0);
  bool above = true;
  switch (static_cast<CondKind>(c.kind)) {
    case CondKind::none: return false;
    case CondKind::ma_above:
    case CondKind::ma_below:
      lhs = f(static_cast<std::int32_t>(StrategyFeature::ema0) + c.p0);
      rhs = f(static_cast<std::int32_t>(StrategyFeature::ema0) + c.p1);
      above = c.kind == static_cast<std::int32_t>(CondKind::ma_above);
      break;
    case CondKind::close_above_bb:
    case CondKind::close_below_bb: {
      const T mid = f(static_cast<std::int32_t>(StrategyFeature::bb_mid0) + c.p0);
      const T sd = f(static_cast<std::int32_t>(StrategyFeature::bb_sd0) + c.p0);
      const T k = c.p1 == 1 ? T(c.level) : (c.p1 == 2 ? -T(c.level) : T(0));
      lhs = close;
      rhs = mid + k * sd;
      above = c.kind == static_cast<std::int32_t>(CondKind::close_above_bb);
      break;
    }
    case CondKind::rsi_below:
    case CondKind::rsi_above:
      lhs = f(static_cast<std::int32_t>(StrategyFeature::rsi0) + c.p0);
      rhs = T(c.level);
      above = c.kind == static_cast<std::int32_t>(CondKind::rsi_above);
      break;
    case CondKind::adx_above:
    case CondKind::adx_below:
      lhs = f(static_cast<std::int32_t>(StrategyFeature::adx0) + c.p0);
      rhs = T(c.level);
      above = c.kind == static_cast<std::int32_t>(CondKind::adx_above);
      break;
    case CondKind::mom_up:
    case CondKind::mom_down:
      lhs = f(static_cast<std::int32_t>(StrategyFeature::roc0) + c.p0);
      rhs = T(0);
      above = c.kind == static_cast<std::int32_t>(CondKind::mom_up);
      break;
    case CondKind::vol_high:
    case CondKind::vol_low:
      lhs = T(100) * f(static_cast<std::int32_t>(StrategyFeature::atr)) / close;
      rhs = T(c.level);
      above = c.kind == static_cast<std::int32_t>(CondKind::vol_high);
      break;
  }
  return above ? lhs > rhs : lhs < rhs;  // false when either side is NaN
}

/// The entry rule (both terms combined).
template <class T, class F>
QTOS_HD inline bool entry_eval(const Condition* terms, std::int32_t op, T close, const F& f) {
  const bool a = condition_eval<T>(terms[0], close, f);
  if (op == static_cast<std::int32_t>(EntryOp::single)) return a;
  const bool b = condition_eval<T>(terms[1], close, f);
  return op == static_cast<std::int32_t>(EntryOp::and_op) ? (a && b) : (a || b);
}

/// Bit of `signals_eval`: enter long at the next open (when flat).
inline constexpr std::uint32_t kSignalLong = 1u;
/// Bit of `signals_eval`: enter short at the next open (when flat).
inline constexpr std::uint32_t kSignalShort = 2u;
/// Bit of `signals_eval`: a long position's exit rule holds.
inline constexpr std::uint32_t kSignalExitLong = 4u;
/// Bit of `signals_eval`: a short position's exit rule holds.
inline constexpr std::uint32_t kSignalExitShort = 8u;

/// The rules of genome `g` at one bar's close: entries by side (the rule and, for `both`, its mirror; nothing when
/// both directions fire) and the exit rule for each direction. Depends only on the bar's close and features, so a
/// backend may evaluate it for many bars at once.
template <class T, class F>
QTOS_HD inline std::uint32_t signals_eval(const Genome& g, T close, const F& f) {
  std::uint32_t s = 0;
  const bool rule = entry_eval<T>(g.entry, g.op, close, f);
  if (g.side == static_cast<std::int32_t>(Side::short_only)) {
    s |= rule ? kSignalShort : 0u;
    s |= condition_eval<T>(g.exit_rule, close, f) ? kSignalExitShort : 0u;
  } else if (g.side == static_cast<std::int32_t>(Side::long_only)) {
    s |= rule ? kSignalLong : 0u;
    s |= condition_eval<T>(g.exit_rule, close, f) ? kSignalExitLong : 0u;
  } else {
    const Condition m[2] = {condition_mirror(g.entry[0]), condition_mirror(g.entry[1])};
    const bool mirror = entry_eval<T>(m, g.op, close, f);
    s |= rule && !mirror ? kSignalLong : 0u;
    s |= mirror && !rule ? kSignalShort : 0u;
    s |= condition_eval<T>(g.exit_rule, close, f) ? kSignalExitLong : 0u;
    s |= condition_eval<T>(condition_mirror(g.exit_rule), close, f) ? kSignalExitShort : 0u;
  }
  return s;
}

/// Trading costs and sizing of a backtest.
struct BacktestCosts {
  double fee = 0.0004;          ///< taker fee per fill, fraction of notional (0.04%)
  double slippage = 0.0002;     ///< adverse price move per fill, fraction of the price (2 bps)
  double capital = 10'000.0;    ///< initial capital of each genome, split equally over the symbols
  double bars_per_year = 8760;  ///< for annualising Sharpe and Sortino
};

/// Why a position was closed.
enum class ExitReason : std::int32_t { signal = 0, stop = 1, target = 2, trail = 3, max_hold = 4, gap = 5, end = 6 };

/// Mergeable statistics of one (genome, symbol) sub-account; merging over symbols pools the bar returns.
struct BacktestAccum {
  double n = 0;              ///< bar returns recorded (valid bars)
  double sum = 0, sum2 = 0, sum3 = 0, sum4 = 0;  ///< power sums of the per-bar returns
  double down2 = 0;          ///< sum of min(r, 0)^2
  double ret_sum = 0;        ///< sum over sub-accounts of final equity / initial equity - 1
  double accounts = 0;       ///< sub-accounts with at least one bar
  double max_dd = 0;         ///< worst peak-to-trough fall of a sub-account's equity, fraction
  double trades = 0, wins = 0;     ///< closed trades and those with a positive result
  double gross_win = 0, gross_loss = 0;  ///< summed positive and (absolute) negative trade P&L in money
  double trade_ret_sum = 0;  ///< sum of trade returns (P&L / equity before the entry)
  double bars_in_pos = 0;    ///< valid bars that closed with a position open

  /// Adds another accumulator (another symbol of the same genome).
  QTOS_HD void merge(const BacktestAccum& o) {
    n += o.n; sum += o.sum; sum2 += o.sum2; sum3 += o.sum3; sum4 += o.sum4; down2 += o.down2;
    ret_sum += o.ret_sum; accounts += o.accounts; max_dd = o.max_dd > max_dd ? o.max_dd : max_dd;
    trades += o.trades; wins += o.wins; gross_win += o.gross_win; gross_loss += o.gross_loss;
    trade_ret_sum += o.trade_ret_sum; bars_in_pos += o.bars_in_pos;
  }
};

/// A closed trade as reported to a trade sink.
struct TradeEvent {
  std::int32_t entry_bar = 0, exit_bar = 0;  ///< bar of the entry fill and of the exit fill
  std::int32_t dir = 0;                      ///< +1 long, -1 short
  double entry_price = 0, exit_price = 0;    ///< fill prices after slippage
  double pnl = 0, ret = 0;                   ///< money P&L after fees, and P&L / equity before the entry
  ExitReason reason = ExitReason::signal;    ///< what closed it
};

/// A trade sink that drops everything (the backends).
struct NoTradeSink {
  /// Ignores a trade.
  QTOS_HD void operator()(const TradeEvent&) const {}
};

/// State of one genome on one symbol. `step` consumes one bar; call `finish` after the last bar.
template <class T>
struct BacktestState {
  T cash = 0, qty = 0, eq_prev = 0, eq_peak = 0, eq0 = 0;
  T entry_eq = 0, entry_px = 0, atr_signal = 0, stop_px = 0, take_px = 0, best = 0, last_close = 0;
  std::int32_t pos = 0, pending = 0, held = 0, entry_bar = 0;  // pending: 0 none, +1/-1 enter, 2 exit
  bool started = false;
  BacktestAccum acc;

  /// Starts a sub-account with `capital`.
  QTOS_HD void init(T capital) { *this = BacktestState{}; cash = eq_prev = eq_peak = eq0 = capital; }

  /// Closes the position at `px` (before slippage) on bar t.
  template <class Sink>
  QTOS_HD void close_position(T px, const BacktestCosts& c, std::int32_t t, ExitReason why, Sink& sink) {
    const T fill = pos > 0 ? px * T(1 - c.slippage) : px * T(1 + c.slippage);
    const T notional = qabs(qty) * fill;
    cash += qty * fill - notional * T(c.fee);
    const double pnl = double(cash) - double(entry_eq);
    const double ret = pnl / double(entry_eq);
    acc.trades += 1;
    acc.wins += pnl > 0 ? 1 : 0;
    acc.gross_win += pnl > 0 ? pnl : 0;
    acc.gross_loss += pnl < 0 ? -pnl : 0;
    acc.trade_ret_sum += ret;
    sink(TradeEvent{entry_bar, t, pos, double(entry_px), double(fill), pnl, ret, why});
    qty = T(0);
    pos = 0;
    held = 0;
  }

  /// Records the bar's closing equity.
  QTOS_HD void mark(T close) {
    // Flat with unchanged equity: r = 0 exactly, so only the count moves (bit-identical to the full update).
    if (pos == 0 && cash == eq_prev) { acc.n += 1; return; }
    const T eq = cash + qty * close;
    const double r = double(eq) / double(eq_prev) - 1.0;
    acc.n += 1; acc.sum += r; acc.sum2 += r * r; acc.sum3 += r * r * r; acc.sum4 += r * r * r * r;
    acc.down2 += r < 0 ? r * r : 0.0;
    acc.bars_in_pos += pos != 0 ? 1 : 0;
    eq_prev = eq;
    if (eq > eq_peak) eq_peak = eq;
    if (eq < eq_peak) {
      const double dd = 1.0 - double(eq) / double(eq_peak);
      if (dd > acc.max_dd) acc.max_dd = dd;
    }
  }

  /// One bar t (open/high/low/close, NaN when missing); `sig` is signals_eval at this bar and `atr` the ATR plane at
  /// this bar (both ignored on a missing bar); `last` marks the final bar of the window (open positions are closed
  /// at its close).
  template <class Sink>
  QTOS_HD void step(const Genome& g, const BacktestCosts& c, std::int32_t t, T o, T h, T l, T cl, std::uint32_t sig, T atr,
                    bool last, Sink& sink) {
    const bool valid = finite_value(o) && finite_value(h) && finite_value(l) && finite_value(cl);
    if (!valid) {
      // No position through a gap: flatten at the last known close and drop any order meant for this bar.
      if (pos != 0) close_position(last_close, c, t, ExitReason::gap, sink);
      pending = 0;
      return;
    }
    // Flat, nothing to fill, equity already marked and no entry signal: the full step below would only count the
    // bar (r = 0) and remember its close, so do just that (most bars of most genomes take this path).
    if (started && pos == 0 && pending == 0 && cash == eq_prev && !last && (sig & (kSignalLong | kSignalShort)) == 0) {
      acc.n += 1;
      last_close = cl;
      return;
    }
    started = true;
    // 1. Orders decided at the previous close fill at this open.
    if (pending == 2 && pos != 0) {
      close_position(o, c, t, held >= g.max_hold && g.max_hold > 0 ? ExitReason::max_hold : ExitReason::signal, sink);
    } else if ((pending == 1 || pending == -1) && pos == 0) {
      const T fill = pending > 0 ? o * T(1 + c.slippage) : o * T(1 - c.slippage);
      entry_eq = cash;
      qty = T(pending) * T(g.size) * cash / fill;
      cash -= qty * fill + qabs(qty) * fill * T(c.fee);
      pos = pending;
      entry_px = fill;
      entry_bar = t;
      held = 0;
      best = fill;
      stop_px = g.stop_atr > 0 ? fill - T(pos) * T(g.stop_atr) * atr_signal : T(0);
      take_px = g.take_atr > 0 ? fill + T(pos) * T(g.take_atr) * atr_signal : T(0);
    }
    pending = 0;
    // 2. Stops and targets against this bar's range; the adverse one wins when both are touched.
    if (pos != 0) {
      const T dirp = T(pos);
      bool have_stop = g.stop_atr > 0;
      T stop = stop_px;
      ExitReason stop_why = ExitReason::stop;
      if (g.trail_atr > 0) {
        const T trail = best - dirp * T(g.trail_atr) * atr_signal;  // from bars before this one
        if (!have_stop || dirp * (trail - stop) > T(0)) { stop = trail; stop_why = ExitReason::trail; }
        have_stop = true;
      }
      const bool stop_hit = have_stop && (pos > 0 ? l <= stop : h >= stop);
      const bool take_hit = g.take_atr > 0 && (pos > 0 ? h >= take_px : l <= take_px);
      if (stop_hit) {
        // A gap through the stop fills at the open, the worse price.
        const T px = pos > 0 ? (o < stop ? o : stop) : (o > stop ? o : stop);
        close_position(px, c, t, stop_why, sink);
      } else if (take_hit) {
        const T px = pos > 0 ? (o > take_px ? o : take_px) : (o < take_px ? o : take_px);
        close_position(px, c, t, ExitReason::target, sink);
      } else {
        best = pos > 0 ? (h > best ? h : best) : (l < best ? l : best);
        ++held;
      }
    }
    if (last && pos != 0) close_position(cl, c, t, ExitReason::end, sink);
    // 3. Closing equity.
    mark(cl);
    last_close = cl;
    if (last) return;
    // 4. Signals on this bar's close, filled at the next open.
    if (pos != 0) {
      const bool exit_rule = (sig & (pos > 0 ? kSignalExitLong : kSignalExitShort)) != 0;
      if ((g.max_hold > 0 && held >= g.max_hold) || exit_rule) pending = 2;
    } else if (sig & (kSignalLong | kSignalShort)) {
      const bool needs_atr = g.stop_atr > 0 || g.take_atr > 0 || g.trail_atr > 0;
      if (!needs_atr || (finite_value(atr) && atr > T(0))) {
        pending = (sig & kSignalLong) ? 1 : -1;
        atr_signal = finite_value(atr) ? atr : T(0);
      }
    }
  }

  /// Ends the window: books the sub-account's total return.
  QTOS_HD void finish() {
    if (!started) return;
    acc.ret_sum += double(eq_prev) / double(eq0) - 1.0;
    acc.accounts += 1;
  }
};

}  // namespace qtos::kernels
