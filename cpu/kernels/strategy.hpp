#pragma once
/// @file Strategy genomes and the population-backtest bar step, shared by the serial reference, the TBB backend and
/// the CUDA backend (docs/EVOLUTION.md states the grammar, the fill rules and the metric formulas).
///
/// A genome is a fixed-size, trivially copyable record of 4-byte fields (no padding, so its bytes hash stably).
/// Every field has a declared range; `genome_normalize` maps any bit pattern to a valid genome, so decoding never
/// fails. Conditions read a shared "feature bank": indicator series computed once per symbol for every period in
/// the tables below and shared by all genomes (`StrategyFeature`).

#include <cstdint>

#include "cpu/kernels/gaps.hpp"
#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/qtos_hd.hpp"

namespace qtos::kernels {

/// EMA periods a moving-average condition may use.
inline constexpr std::int32_t kEmaPeriods[] = {5, 10, 20, 50, 100, 200};
/// RSI periods.
inline constexpr std::int32_t kRsiPeriods[] = {7, 14, 21};
/// Bollinger periods (the width k is a continuous gene).
inline constexpr std::int32_t kBbPeriods[] = {10, 20, 50};
/// ADX periods.
inline constexpr std::int32_t kAdxPeriods[] = {7, 14, 28};
/// Rate-of-change (momentum) periods.
inline constexpr std::int32_t kRocPeriods[] = {5, 10, 20, 50};
/// Entries of each period table: what a condition's period index ranges over.
inline constexpr std::int32_t kEmaCount = sizeof(kEmaPeriods) / sizeof(kEmaPeriods[0]);
inline constexpr std::int32_t kRsiCount = sizeof(kRsiPeriods) / sizeof(kRsiPeriods[0]);  ///< RSI periods
inline constexpr std::int32_t kBbCount = sizeof(kBbPeriods) / sizeof(kBbPeriods[0]);     ///< Bollinger periods
inline constexpr std::int32_t kAdxCount = sizeof(kAdxPeriods) / sizeof(kAdxPeriods[0]);  ///< ADX periods
inline constexpr std::int32_t kRocCount = sizeof(kRocPeriods) / sizeof(kRocPeriods[0]);  ///< ROC periods
/// Bollinger band selectors of a condition: 0 the middle, 1 the upper, 2 the lower band.
inline constexpr std::int32_t kBbBandCount = 3;
/// Period of the ATR used by stops, targets, trailing stops and the volatility regime.
inline constexpr std::int32_t kStrategyAtrPeriod = 14;

/// Feature-bank planes: one series per indicator and period, computed once per symbol, laid out table by table.
enum class StrategyFeature : std::int32_t {
  ema0 = 0,                      ///< EMA(kEmaPeriods[i]) at ema0 + i
  rsi0 = ema0 + kEmaCount,       ///< RSI(kRsiPeriods[i]) at rsi0 + i
  bb_mid0 = rsi0 + kRsiCount,    ///< Bollinger middle (SMA) for kBbPeriods[i]
  bb_sd0 = bb_mid0 + kBbCount,   ///< population standard deviation for kBbPeriods[i]
  adx0 = bb_sd0 + kBbCount,      ///< ADX(kAdxPeriods[i])
  roc0 = adx0 + kAdxCount,       ///< ROC(kRocPeriods[i]) in percent
  atr = roc0 + kRocCount,        ///< ATR(kStrategyAtrPeriod)
  spread = atr + 1,              ///< Corwin-Schultz spread proxy over kStrategySpreadPeriod bars, fraction of price (slippage costs)
};
/// Number of feature planes.
inline constexpr std::int32_t kStrategyFeatureCount = static_cast<std::int32_t>(StrategyFeature::spread) + 1;
static_assert(static_cast<std::int32_t>(StrategyFeature::rsi0) == 6 && kStrategyFeatureCount == 24,
              "the feature-bank layout is part of the feature bank's id: change both together");
/// Bars of pair estimates in the spread proxy that spread-proportional slippage uses.
inline constexpr std::int32_t kStrategySpreadPeriod = 20;

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
/// Number of entry operators.
inline constexpr std::int32_t kEntryOpCount = 3;
/// Which way a genome trades: the rule as written goes long (or short); `both` also shorts on the mirrored rule.
enum class Side : std::int32_t { long_only = 0, short_only = 1, both = 2 };
/// Number of sides.
inline constexpr std::int32_t kSideCount = 3;

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
      std::int32_t a = detail::modi(c.p0, kEmaCount), b = detail::modi(c.p1, kEmaCount);
      if (a == b) b = a == kEmaCount - 1 ? a - 1 : a + 1;
      r.p0 = a < b ? a : b;
      r.p1 = a < b ? b : a;
      break;
    }
    case CondKind::close_above_bb:
    case CondKind::close_below_bb:
      r.p0 = detail::modi(c.p0, kBbCount);
      r.p1 = detail::modi(c.p1, kBbBandCount);
      r.level = detail::clampf(c.level, GeneRanges::bbk_lo, GeneRanges::bbk_hi);
      break;
    case CondKind::rsi_below:
    case CondKind::rsi_above:
      r.p0 = detail::modi(c.p0, kRsiCount);
      r.level = detail::clampf(c.level, GeneRanges::rsi_lo, GeneRanges::rsi_hi);
      break;
    case CondKind::adx_above:
    case CondKind::adx_below:
      r.p0 = detail::modi(c.p0, kAdxCount);
      r.level = detail::clampf(c.level, GeneRanges::adx_lo, GeneRanges::adx_hi);
      break;
    case CondKind::mom_up:
    case CondKind::mom_down: r.p0 = detail::modi(c.p0, kRocCount); break;
    case CondKind::vol_high:
    case CondKind::vol_low: r.level = detail::clampf(c.level, GeneRanges::vol_lo, GeneRanges::vol_hi); break;
  }
  return r;
}

/// Maps any genome to a valid one: the decode step. Unused fields are zeroed so equal strategies hash equally.
/// A genome whose first entry term is `none` gets an RSI(14) < 30 term (a strategy must be able to enter).
QTOS_HD inline Genome genome_normalize(const Genome& g) {
  Genome r;
  r.op = detail::modi(g.op, kEntryOpCount);
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
  r.side = detail::modi(g.side, kSideCount);
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

/// A condition compiled to one comparison, `lhs above/below rhs`, with lhs = scale * plane(a) [/ close] and
/// rhs = (plane(b) or constant) + k * plane(c). Plane -1 is the close. This is the single definition of what every
/// condition kind compares: condition_eval runs it per bar, the CUDA kernel runs it branch-free (the kind decides
/// only which planes are read, never which instructions run) and the TBB backend runs it over columns
/// (condition_series).
struct CondProgram {
  std::int32_t a = -1;      ///< plane of the left-hand side (-1: the close)
  std::int32_t b = -1;      ///< plane of the right-hand side, or -1 for the constant `c`
  std::int32_t c_plane = -1;  ///< plane multiplied by `k` and added to the right-hand side, or -1 for none
  std::int32_t cmp = 0;     ///< +1: lhs > rhs; -1: lhs < rhs; 0: never true (the `none` kind)
  std::int32_t div_close = 0;  ///< 1: the left-hand side is divided by the close
  float scale = 1.0f;       ///< multiplies the left-hand side
  float c = 0.0f;           ///< the constant right-hand side when b is -1
  float k = 0.0f;           ///< coefficient of c_plane
};

/// Compiles a (normalised) condition.
QTOS_HD inline CondProgram condition_compile(const Condition& c) {
  CondProgram p;
  const auto plane = [](StrategyFeature f, std::int32_t i) { return static_cast<std::int32_t>(f) + i; };
  switch (static_cast<CondKind>(c.kind)) {
    case CondKind::none: break;
    case CondKind::ma_above:
    case CondKind::ma_below:
      p.a = plane(StrategyFeature::ema0, c.p0);
      p.b = plane(StrategyFeature::ema0, c.p1);
      p.cmp = c.kind == static_cast<std::int32_t>(CondKind::ma_above) ? 1 : -1;
      break;
    case CondKind::close_above_bb:
    case CondKind::close_below_bb:
      p.a = -1;
      p.b = plane(StrategyFeature::bb_mid0, c.p0);
      p.c_plane = plane(StrategyFeature::bb_sd0, c.p0);  // read even for the mid band (k = 0): a NaN sd stays false
      p.k = c.p1 == 1 ? c.level : (c.p1 == 2 ? -c.level : 0.0f);
      p.cmp = c.kind == static_cast<std::int32_t>(CondKind::close_above_bb) ? 1 : -1;
      break;
    case CondKind::rsi_below:
    case CondKind::rsi_above:
      p.a = plane(StrategyFeature::rsi0, c.p0);
      p.c = c.level;
      p.cmp = c.kind == static_cast<std::int32_t>(CondKind::rsi_above) ? 1 : -1;
      break;
    case CondKind::adx_above:
    case CondKind::adx_below:
      p.a = plane(StrategyFeature::adx0, c.p0);
      p.c = c.level;
      p.cmp = c.kind == static_cast<std::int32_t>(CondKind::adx_above) ? 1 : -1;
      break;
    case CondKind::mom_up:
    case CondKind::mom_down:
      p.a = plane(StrategyFeature::roc0, c.p0);
      p.cmp = c.kind == static_cast<std::int32_t>(CondKind::mom_up) ? 1 : -1;
      break;
    case CondKind::vol_high:
    case CondKind::vol_low:
      p.a = static_cast<std::int32_t>(StrategyFeature::atr);
      p.scale = 100.0f;
      p.div_close = 1;
      p.c = c.level;
      p.cmp = c.kind == static_cast<std::int32_t>(CondKind::vol_high) ? 1 : -1;
      break;
  }
  return p;
}

/// Relative width of a tie in a rule's comparison: sides closer than kRuleTie x (|lhs| + |rhs|) are neither above nor
/// below each other. Decimal prices make exact ties common (a 4-decimal close equal to its SMA), and float and double
/// round such a tie to opposite sides; the band (about 8 float ulps of the sides) is wider than that rounding and far
/// narrower than a price tick (1e-4 / 1.19 = 8e-5 relative for FX), so the float backtester and the double one decide
/// every tie alike (DecimalPrices.FloatAndDoubleBacktestsAgreeWhereACloseTiesItsBand).
inline constexpr float kRuleTie = 5e-7f;

/// lhs above rhs beyond the tie band (false on a tie or a NaN side): the comparison of every rule.
template <class T>
QTOS_HD inline bool rule_above(T lhs, T rhs) {
  return lhs - rhs > T(kRuleTie) * (qabs(lhs) + qabs(rhs));  // false when either side is NaN
}
/// lhs below rhs beyond the tie band (see rule_above).
template <class T>
QTOS_HD inline bool rule_below(T lhs, T rhs) {
  return rhs - lhs > T(kRuleTie) * (qabs(lhs) + qabs(rhs));
}

/// Evaluates a compiled condition: every plane read and both comparisons happen whatever the kind.
template <class T, class F>
QTOS_HD inline bool condition_run(const CondProgram& p, T close, const F& f) {
  T lhs = T(p.scale) * f(p.a);
  lhs = p.div_close ? lhs / close : lhs;
  const T base = f(p.b);
  const T extra = T(p.k) * f(p.c_plane);
  const T rhs = (p.b >= 0 ? base : T(p.c)) + (p.c_plane >= 0 ? extra : T(0));
  const bool gt = rule_above(lhs, rhs), lt = rule_below(lhs, rhs);  // both false when either side is NaN
  return (p.cmp > 0 && gt) || (p.cmp < 0 && lt);
}

/// Evaluates a condition on the current bar: the compiled form run once (condition_compile is the one definition of
/// what each kind compares). `f(plane)` returns feature plane `plane` at this bar and the close for plane -1; a NaN
/// input (warm-up, after a gap) makes every condition false.
template <class T, class F>
QTOS_HD inline bool condition_eval(const Condition& c, T close, const F& f) {
  return condition_run<T>(condition_compile(c), close, [&](std::int32_t plane) { return plane < 0 ? close : f(plane); });
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

/// A genome's rules compiled for signals_run: the entry terms, their mirrors and the exit rule and its mirror.
struct SignalProgram {
  CondProgram rule[2], mirror[2], exit_rule, exit_mirror;
  std::int32_t op = 0;    ///< an EntryOp
  std::int32_t side = 0;  ///< a Side
};

/// Compiles a (normalised) genome's rules.
QTOS_HD inline SignalProgram signal_program(const Genome& g) {
  SignalProgram s;
  for (int i = 0; i < 2; ++i) {
    s.rule[i] = condition_compile(g.entry[i]);
    s.mirror[i] = condition_compile(condition_mirror(g.entry[i]));
  }
  s.exit_rule = condition_compile(g.exit_rule);
  s.exit_mirror = condition_compile(condition_mirror(g.exit_rule));
  s.op = g.op;
  s.side = g.side;
  return s;
}

/// signals_eval from a compiled genome, branch-free: all six comparisons are evaluated and combined by the operator
/// and side (equal to signals_eval for every genome, bar and input).
template <class T, class F>
QTOS_HD inline std::uint32_t signals_run(const SignalProgram& s, T close, const F& f) {
  const auto combine = [&](bool a, bool b) {
    return s.op == static_cast<std::int32_t>(EntryOp::single) ? a
                                                               : (s.op == static_cast<std::int32_t>(EntryOp::and_op) ? (a && b) : (a || b));
  };
  const bool rule = combine(condition_run<T>(s.rule[0], close, f), condition_run<T>(s.rule[1], close, f));
  const bool mirror = combine(condition_run<T>(s.mirror[0], close, f), condition_run<T>(s.mirror[1], close, f));
  const bool exit_rule = condition_run<T>(s.exit_rule, close, f);
  const bool exit_mirror = condition_run<T>(s.exit_mirror, close, f);
  const bool longs = s.side == static_cast<std::int32_t>(Side::long_only);
  const bool shorts = s.side == static_cast<std::int32_t>(Side::short_only);
  const bool both = !longs && !shorts;
  std::uint32_t out = 0;
  out |= ((longs && rule) || (both && rule && !mirror)) ? kSignalLong : 0u;
  out |= ((shorts && rule) || (both && mirror && !rule)) ? kSignalShort : 0u;
  out |= (longs || both) && exit_rule ? kSignalExitLong : 0u;
  out |= (shorts && exit_rule) || (both && exit_mirror) ? kSignalExitShort : 0u;
  return out;
}

/// Trading costs and sizing of a backtest.
struct BacktestCosts {
  double fee = 0.0004;            ///< taker fee per fill, fraction of notional (0.04%)
  double slippage = 0.0002;       ///< adverse price move per fill, fraction of the price (2 bps)
  double slippage_spread = 0.0;   ///< plus this fraction of the spread proxy of the bar before the fill (0.5 = half)
  double capital = 10'000.0;      ///< initial capital of each genome, split equally over the symbols
  double bars_per_year = 8760;    ///< for annualising Sharpe and Sortino
};

/// The slippage (fraction of the price) of fills on a bar whose previous bar's spread proxy is `prev_spread`: the
/// fixed part plus `slippage_spread` times the proxy; the fixed part alone while the proxy is undefined (NaN: the
/// first bars, warm-up, after a gap).
template <class T>
QTOS_HD inline T fill_slippage(const BacktestCosts& c, T prev_spread) {
  return finite_value(prev_spread) ? T(c.slippage) + T(c.slippage_spread) * prev_spread : T(c.slippage);
}

/// The driver's side of the gap policy in a backtest of one symbol (cpu/kernels/gaps.hpp): which bars are stepped and
/// which spread proxy the fills of a bar pay. Under `skip` a missing bar is not stepped at all: positions and pending
/// orders carry over the closure and an order due at the next open fills at the next bar that exists. Under
/// `reset-after:N` the (N+1)-th and later missing bars of a gap are stepped, which flattens at the last known close and
/// drops the pending order (reset-after:0: every missing bar, the historical rule).
template <class T>
struct BacktestGapCursor {
  GapPolicy gaps;                ///< the rule (the feature bank's)
  std::int32_t missing = 0;      ///< missing bars since the last valid bar
  bool have_prev = false;        ///< a valid bar was seen
  T prev_spread = qnan<T>();     ///< spread proxy of the last valid bar
  /// Positions the cursor before the window's first bar `t_begin`: `prev` is the last valid bar before it (-1: none)
  /// and `spread` that bar's spread proxy.
  QTOS_HD void start(std::int32_t prev, std::int32_t t_begin, T spread) {
    have_prev = prev >= 0;
    missing = have_prev ? t_begin - 1 - prev : 0;
    prev_spread = spread;
  }
  /// Bar arrives (valid or not): true when the step must run on it.
  QTOS_HD bool on_bar(bool valid) {
    if (valid) return true;
    ++missing;
    return gaps.resets(missing);
  }
  /// Spread proxy that fills on the valid bar just arrived pay (fill_slippage): the previous existing bar's, NaN when
  /// there is none or a gap the policy does not bridge lies between.
  QTOS_HD T fill_spread() const { return have_prev && !gaps.resets(missing) ? prev_spread : qnan<T>(); }
  /// After stepping a valid bar whose spread proxy is `spread`.
  QTOS_HD void passed(T spread) {
    have_prev = true;
    missing = 0;
    prev_spread = spread;
  }
};

/// The bar at which a window [.., end] closes its open positions (`last` of the step): `end`, unless the window ends
/// in a gap that the policy bridges (then its last valid bar `last_valid`, where the compressed market would end).
QTOS_HD inline std::int32_t backtest_last_bar(GapPolicy gaps, std::int32_t last_valid, std::int32_t end) {
  return last_valid < 0 || last_valid == end || gaps.resets(end - last_valid) ? end : last_valid;
}

/// True when a bar can be traded: finite open, high, low and close (the step's own test).
template <class T>
QTOS_HD inline bool backtest_bar_valid(T o, T h, T l, T c) {
  return finite_value(o) && finite_value(h) && finite_value(l) && finite_value(c);
}

/// Why a position was closed.
enum class ExitReason : std::int32_t { signal = 0, stop = 1, target = 2, trail = 3, max_hold = 4, gap = 5, end = 6 };

/// Mergeable statistics of one (genome, symbol) sub-account; merging over symbols pools the bar returns.
/// `D` is double; the CPU backend instantiates it with a vector of doubles (one genome per lane).
template <class D>
struct BacktestAccumT {
  D n{}, sum{}, sum2{}, sum3{}, sum4{};  ///< bar returns recorded (valid bars) and their power sums
  D down2{};          ///< sum of min(r, 0)^2
  D ret_sum{};        ///< sum over sub-accounts of final equity / initial equity - 1
  D accounts{};       ///< sub-accounts with at least one bar
  D max_dd{};         ///< worst peak-to-trough fall of a sub-account's equity, fraction
  D trades{}, wins{}; ///< closed trades and those with a positive result
  D gross_win{}, gross_loss{};  ///< summed positive and (absolute) negative trade P&L in money
  D trade_ret_sum{};  ///< sum of trade returns (P&L / equity before the entry)
  D bars_in_pos{};    ///< valid bars that closed with a position open

  /// Adds another accumulator (another symbol of the same genome).
  QTOS_HD void merge(const BacktestAccumT& o) {
    n += o.n; sum += o.sum; sum2 += o.sum2; sum3 += o.sum3; sum4 += o.sum4; down2 += o.down2;
    ret_sum += o.ret_sum; accounts += o.accounts; max_dd = o.max_dd > max_dd ? o.max_dd : max_dd;
    trades += o.trades; wins += o.wins; gross_win += o.gross_win; gross_loss += o.gross_loss;
    trade_ret_sum += o.trade_ret_sum; bars_in_pos += o.bars_in_pos;
  }
};
/// The accumulator of one genome.
using BacktestAccum = BacktestAccumT<double>;

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

/// Lane arithmetic of the bar step for one genome: `T` float (backends) or double (reference, paper trading).
/// The step below is written once over a lane type L; the CPU backend supplies a vector form (cpu/backtest) that
/// runs eight genomes in SIMD lanes with the same code. Masks come from comparisons (bool here, -1/0 lanes there);
/// every update is a select, so the step is branch-free apart from what all lanes share (a missing bar, the last bar).
template <class T>
struct ScalarLanes {
  using S = T;             ///< what all lanes share: the bar's prices, ATR, slippage
  using F = T;             ///< per-lane prices and money
  using I = std::int32_t;  ///< per-lane integers
  using M = bool;          ///< mask of F or I comparisons
  using D = double;        ///< per-lane accumulators
  using MD = bool;         ///< mask of D comparisons
  static constexpr bool kScalar = true;  ///< one genome: trade sinks are called
  QTOS_HD static F bc(S x) { return x; }                     ///< a shared value in every lane
  QTOS_HD static I bi(std::int32_t x) { return x; }          ///< an integer in every lane
  QTOS_HD static F to_f(I x) { return F(x); }                ///< integer lanes as F
  QTOS_HD static D to_d(F x) { return double(x); }           ///< F lanes as D
  QTOS_HD static D i_to_d(I x) { return double(x); }         ///< integer lanes as D
  QTOS_HD static MD wide(M m) { return m; }                  ///< an F/I mask as a D mask
  QTOS_HD static F abs(F x) { return qabs(x); }              ///< |x| per lane
  QTOS_HD static bool any(M m) { return m; }                 ///< some lane set
  QTOS_HD static M lnot(M m) { return !m; }                  ///< lanes not in m
};

/// State of one genome (or one lane group) on one symbol. `step` consumes one bar; call `finish` after the last.
template <class L>
struct BacktestLaneState {
  using S = typename L::S;
  using F = typename L::F;
  using I = typename L::I;
  using M = typename L::M;
  using D = typename L::D;
  F cash{}, qty{}, eq_prev{}, eq_peak{}, eq0{};
  F entry_eq{}, entry_px{}, atr_signal{}, stop_px{}, take_px{}, best{};
  // pending: 0 none, +1/-1 enter, 2 exit. pos and pending are kept apart on purpose: next to each other, g++ merges
  // `pos == 0 && pending == 0` into one 8-byte load right after two 4-byte stores, a store-forwarding stall that
  // cost half the scalar loop's time.
  I pos{}, held{}, pending{}, entry_bar{};
  I n_trades{}, n_wins{}, n_in_pos{};  ///< counts that finish() adds to acc (integer lanes are cheaper than double)
  F low_ratio{};         ///< lowest equity / running peak so far (max drawdown = 1 - low_ratio, booked by finish())
  S last_close = S(0);   ///< close of the last valid bar (shared: every lane sees the same bars)
  bool started = false;  ///< a valid bar was seen (shared)
  BacktestAccumT<D> acc;  ///< complete after finish(): trades, wins, exposure and drawdown are booked there

  /// Starts a sub-account with `capital`.
  QTOS_HD QTOS_FORCE_INLINE void init(S capital) {
    *this = BacktestLaneState{};
    cash = eq_prev = eq_peak = eq0 = L::bc(capital);
    low_ratio = L::bc(S(1));
  }

  /// Closes the positions of the lanes in `m` at `px` (before slippage) on bar t.
  template <class Sink>
  QTOS_HD QTOS_FORCE_INLINE void close_masked(M m, F px, S slip, const BacktestCosts& c, std::int32_t t, I why, Sink& sink) {
    const F fill = pos > 0 ? px * (S(1) - slip) : px * (S(1) + slip);
    const F notional = L::abs(qty) * fill;
    const F cash_after = cash + (qty * fill - notional * S(c.fee));
    const D pnl = L::to_d(cash_after) - L::to_d(entry_eq);
    const D ret = pnl / L::to_d(entry_eq);
    n_trades = m ? n_trades + 1 : n_trades;
    n_wins = (m & (cash_after > entry_eq)) ? n_wins + 1 : n_wins;  // the sign of pnl, exactly
    const auto w = L::wide(m);
    acc.gross_win = (w & (pnl > 0.0)) ? acc.gross_win + pnl : acc.gross_win;
    acc.gross_loss = (w & (pnl < 0.0)) ? acc.gross_loss - pnl : acc.gross_loss;
    acc.trade_ret_sum = w ? acc.trade_ret_sum + ret : acc.trade_ret_sum;
    if constexpr (L::kScalar) {
      if (m) sink(TradeEvent{entry_bar, t, pos, double(entry_px), double(fill), pnl, ret, static_cast<ExitReason>(why)});
    }
    cash = m ? cash_after : cash;
    qty = m ? F(qty - qty) : qty;  // 0 in the closed lanes (qty is finite)
    pos = m ? L::bi(0) : pos;
    held = m ? L::bi(0) : held;
  }

  /// Records the bar's closing equity.
  QTOS_HD QTOS_FORCE_INLINE void mark(S close) {
    if constexpr (L::kScalar) {
      // Flat with unchanged equity: r = 0 exactly, so only the count moves (bit-identical to the full update).
      if (pos == 0 && cash == eq_prev) { acc.n += 1; return; }
    }
    const F eq = cash + qty * close;
    // The bar return from the equity ratio in the lane's precision (float equity carries that rounding anyway), its
    // power sums in double.
    const D r = L::to_d(eq / eq_prev) - 1.0;
    const D r2 = r * r;
    acc.n += 1.0; acc.sum += r; acc.sum2 += r2; acc.sum3 += r2 * r; acc.sum4 += r2 * r2;
    acc.down2 = r < 0.0 ? acc.down2 + r2 : acc.down2;
    n_in_pos = pos != 0 ? n_in_pos + 1 : n_in_pos;
    eq_prev = eq;
    eq_peak = eq > eq_peak ? eq : eq_peak;
    const F ratio = eq / eq_peak;  // 1 at a new peak
    low_ratio = ratio < low_ratio ? ratio : low_ratio;
  }

  /// One bar t (open/high/low/close, NaN when missing): `sig` is signals_eval at this bar, `atr` the ATR plane at
  /// this bar (both ignored on a missing bar), `slip` the slippage of fills on this bar (fill_slippage), `last`
  /// marks the final bar of the window (open positions are closed at its close). Semantics (docs/EVOLUTION.md):
  /// orders decided at a close fill at the next open; stops and targets are checked against the bar's range, the
  /// adverse one first; a missing bar flattens at the last known close.
  template <class G, class Sink>
  QTOS_HD QTOS_FORCE_INLINE void step(const G& g, const BacktestCosts& c, std::int32_t t, S o, S h, S l, S cl, const I& sig, S atr, S slip, bool last,
                    Sink& sink) {
    const bool valid = finite_value(o) && finite_value(h) && finite_value(l) && finite_value(cl);
    if (!valid) {
      // No position through a gap: flatten at the last known close and drop any order meant for this bar.
      close_masked(pos != 0, L::bc(last_close), slip, c, t, L::bi(static_cast<std::int32_t>(ExitReason::gap)), sink);
      pending = L::bi(0);
      return;
    }
    if constexpr (L::kScalar) {
      // Flat, nothing to fill, equity already marked and no entry signal: the full step below would only count the
      // bar (r = 0) and remember its close, so do just that (most bars of most genomes take this path).
      if (started && pos == 0 && pending == 0 && cash == eq_prev && !last && (sig & (kSignalLong | kSignalShort)) == 0) {
        acc.n += 1;
        last_close = cl;
        return;
      }
    }
    started = true;
    // 1. Orders decided at the previous close fill at this open: an exit, or an entry.
    const M exit_fill = (pending == 2) & (pos != 0);
    const M enter = ((pending == 1) | (pending == -1)) & (pos == 0);
    if (L::any(enter)) {
      const F fill = pending > 0 ? L::bc(o * (S(1) + slip)) : L::bc(o * (S(1) - slip));
      const F q = L::to_f(pending) * g.size * cash / fill;
      entry_eq = enter ? cash : entry_eq;
      cash = enter ? F(cash - (q * fill + L::abs(q) * fill * S(c.fee))) : cash;
      qty = enter ? q : qty;
      pos = enter ? pending : pos;
      entry_px = enter ? fill : entry_px;
      entry_bar = enter ? L::bi(t) : entry_bar;
      held = enter ? L::bi(0) : held;
      best = enter ? fill : best;
      const F dir = L::to_f(pending);
      stop_px = enter ? (g.stop_atr > 0.0f ? F(fill - dir * g.stop_atr * atr_signal) : F(fill - fill)) : stop_px;
      take_px = enter ? (g.take_atr > 0.0f ? F(fill + dir * g.take_atr * atr_signal) : F(fill - fill)) : take_px;
    }
    // 2. Stops and targets of the open positions against this bar's range; the adverse one wins when both are hit.
    const M live = (pos != 0) & L::lnot(exit_fill);
    const F dirp = L::to_f(pos);
    const M stop_on = g.stop_atr > 0.0f;
    const F trail = best - dirp * g.trail_atr * atr_signal;  // from bars before this one
    const M use_trail = (g.trail_atr > 0.0f) & (L::lnot(stop_on) | (dirp * (trail - stop_px) > S(0)));
    const F stop = use_trail ? trail : stop_px;
    const M have_stop = stop_on | (g.trail_atr > 0.0f);
    const M is_long = pos > 0;
    const M stop_hit = live & have_stop & (is_long ? M(l <= stop) : M(h >= stop));
    const M take_hit = live & L::lnot(stop_hit) & (g.take_atr > 0.0f) & (is_long ? M(h >= take_px) : M(l <= take_px));
    // A gap through the stop (or target) fills at the open, the worse (better) price.
    const F stop_fill = pos > 0 ? (o < stop ? L::bc(o) : stop) : (o > stop ? L::bc(o) : stop);
    const F take_fill = pos > 0 ? (o > take_px ? L::bc(o) : take_px) : (o < take_px ? L::bc(o) : take_px);
    const M hold = live & L::lnot(stop_hit | take_hit);
    best = hold ? (pos > 0 ? (h > best ? L::bc(h) : best) : (l < best ? L::bc(l) : best)) : best;
    held = hold ? held + 1 : held;
    // 3. One close at most per lane: the exit order, a stop or target, or the end of the window.
    const M end_close = last ? hold : M(hold & L::lnot(hold));
    const M closing = exit_fill | stop_hit | take_hit | end_close;
    if (L::any(closing)) {
      const F px = exit_fill ? L::bc(o) : (stop_hit ? stop_fill : (take_hit ? take_fill : L::bc(cl)));
      const I exit_why = ((held >= g.max_hold) & (g.max_hold > 0)) ? L::bi(static_cast<std::int32_t>(ExitReason::max_hold))
                                                              : L::bi(static_cast<std::int32_t>(ExitReason::signal));
      const I stop_why = use_trail ? L::bi(static_cast<std::int32_t>(ExitReason::trail)) : L::bi(static_cast<std::int32_t>(ExitReason::stop));
      const I why = exit_fill ? exit_why
                              : (stop_hit ? stop_why
                                          : (take_hit ? L::bi(static_cast<std::int32_t>(ExitReason::target))
                                                      : L::bi(static_cast<std::int32_t>(ExitReason::end))));
      close_masked(closing, px, slip, c, t, why, sink);
    }
    // 4. Closing equity.
    mark(cl);
    last_close = cl;
    if (last) return;
    // 5. Signals on this bar's close, filled at the next open.
    constexpr std::int32_t kLong = kSignalLong, kEntry = kSignalLong | kSignalShort;
    constexpr std::int32_t kExitLong = kSignalExitLong, kExitShort = kSignalExitShort;
    const M in_pos = pos != 0;
    const M exit_rule = ((pos > 0) & ((sig & kExitLong) != 0)) | ((pos < 0) & ((sig & kExitShort) != 0));
    const M want_exit = in_pos & (((g.max_hold > 0) & (held >= g.max_hold)) | exit_rule);
    M go = L::lnot(in_pos) & ((sig & kEntry) != 0);
    const bool atr_ok = finite_value(atr) && atr > S(0);
    if (!atr_ok) go = go & L::lnot((g.stop_atr > 0.0f) | (g.take_atr > 0.0f) | (g.trail_atr > 0.0f));  // stops need a defined ATR
    pending = want_exit ? L::bi(2) : (go ? ((sig & kLong) != 0 ? L::bi(1) : L::bi(-1)) : L::bi(0));
    atr_signal = go ? L::bc(finite_value(atr) ? atr : S(0)) : atr_signal;
  }

  /// Ends the window: books the sub-account's total return.
  QTOS_HD QTOS_FORCE_INLINE void finish() {
    if (!started) return;
    acc.ret_sum += L::to_d(eq_prev) / L::to_d(eq0) - 1.0;
    acc.accounts += 1.0;
    acc.trades += L::i_to_d(n_trades);
    acc.wins += L::i_to_d(n_wins);
    acc.bars_in_pos += L::i_to_d(n_in_pos);
    const D dd = 1.0 - L::to_d(low_ratio);
    acc.max_dd = dd > acc.max_dd ? dd : acc.max_dd;
  }
};

/// State of one genome on one symbol.
template <class T>
using BacktestState = BacktestLaneState<ScalarLanes<T>>;

}  // namespace qtos::kernels
