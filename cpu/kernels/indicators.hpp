#pragma once
/// @file Technical indicators as O(1) step states shared by the batch CPU, CUDA and streaming forms, and the one list
/// of them (`IndicatorTypes`, at the end) that every table, check, dispatch and the CLI derive from.
///
/// Every indicator is a trivially copyable struct templated on the arithmetic type T (float or double) with
/// `init(params)`, `reset()`, `max_lag()` and `step(hist, out)`, and static traits: `kKind`, `kName`,
/// `kOutputNames` (so `kOutputs`), `kInputs` (the columns it reads), `kParams` (the parameters it reads and their
/// ranges), `kDefaults` and `lookback(params, output)`. `step` consumes one bar and writes `kOutputs` values (NaN
/// while the lookback has no value). `hist` is any accessor with `high(k)`, `low(k)`, `close(k)` and `qvol(k)`
/// returning bar t-k (k = 0 is the new bar, k <= max_lag()): the batch form reads the panel, the streaming form a ring
/// buffer, the CUDA form warp-shuffled registers (only the columns in `kInputs` are loaded there). Lags are read only
/// once the state has seen more than k bars since its last reset, so a ring of max_lag()+1 bars always suffices.
/// Seeding follows TA-Lib (docs/INDICATORS.md): an EMA starts from the SMA of its first `period` inputs, Wilder
/// smoothing from the sum (or mean) over its first period; `lookback` is the number of leading bars without a
/// value. A bar with a missing (NaN) close, or high or low for a state that reads the range, is a gap; what a gap does
/// (skipped, or a restart) is the drivers' business (cpu/kernels/gaps.hpp), never a state's: a state only has `reset()`.
/// docs/INDICATORS.md says how to add an indicator.

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "cpu/kernels/gaps.hpp"
#include "cpu/kernels/qtos_hd.hpp"

namespace qtos::kernels {

/// The indicator families; the value is the state's index in `IndicatorTypes` (a static_assert holds the two in step).
enum class IndicatorKind : std::int32_t {
  sma,            ///< simple moving average of close
  ema,            ///< exponential moving average of close, SMA-seeded
  rsi,            ///< Wilder's relative strength index
  atr,            ///< Wilder's average true range
  dmi,            ///< +DI, -DI, ADX (Wilder)
  bbands,         ///< Bollinger middle, upper, lower, width, %b (population std)
  macd,           ///< MACD line, signal, histogram
  roc,            ///< rate of change in percent, momentum (price difference)
  rvol,           ///< realised volatility: sample std of log returns
  dollar_volume,  ///< rolling sum of quote volume, z-score of the bar's quote volume in the window
  spread,         ///< Corwin-Schultz high-low spread estimate, averaged over the window
  max_drawdown,   ///< largest peak-to-trough fall of close within the window, as a fraction
  obv,            ///< on-balance volume (TA-Lib OBV) over the quote volume
};

/// Panel columns an indicator reads, a flag set. Whatever it reads, a bar counts only with a finite close (a NaN close
/// is a missing bar), and with a finite high and low too when it reads the range. The CUDA kernel loads exactly these.
enum class IndicatorInputs : std::uint8_t {
  close = 1,   ///< close prices
  range = 2,   ///< high and low
  volume = 4,  ///< quote volume
};
/// The union of two sets of columns.
QTOS_HD constexpr IndicatorInputs operator|(IndicatorInputs a, IndicatorInputs b) {
  return static_cast<IndicatorInputs>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
/// True when `set` holds every column of `what`.
QTOS_HD constexpr bool inputs_include(IndicatorInputs set, IndicatorInputs what) {
  return (static_cast<std::uint8_t>(set) & static_cast<std::uint8_t>(what)) == static_cast<std::uint8_t>(what);
}

/// Parameters of one indicator run; unused fields are ignored. Defaults are the textbook ones.
struct IndicatorParams {
  std::int32_t period = 14;   ///< main period (MACD: fast period)
  std::int32_t period2 = 26;  ///< MACD slow period
  std::int32_t period3 = 9;   ///< MACD signal period
  double k = 2.0;             ///< Bollinger band width in standard deviations
  GapPolicy gaps{};           ///< what a missing bar does (read by the drivers, never by a state; default skip)
  std::int32_t price_decimals = -1;  ///< RSI, DMI: decimals of the quotes, price changes taken exactly at that
                                     ///< precision (PriceGrid); -1: prices as stored
};

/// A field of IndicatorParams.
enum class IndicatorParamField : std::uint8_t { period, period2, period3, k };

/// One parameter an indicator reads and its allowed values: the argument checks, the CLI and JSON derive from these.
struct IndicatorParamSpec {
  const char* key;            ///< JSON key: "period", "slow_period", "k"
  const char* label;          ///< as named in messages: "period", "fast period", "k"
  IndicatorParamField field;  ///< the field read
  double min = 0, max = 0;    ///< an integer field: in [min, max]; k: in (min, max)
  int above = -1;             ///< index of a parameter of the same list that this one must exceed, or -1
};
/// The usual `period` parameter, an integer in [min, max].
constexpr IndicatorParamSpec period_spec(double min = 1, double max = 100000) {
  return IndicatorParamSpec{"period", "period", IndicatorParamField::period, min, max};
}
/// Field `f` of `p` (the integers converted exactly to double).
constexpr double param_value(const IndicatorParams& p, IndicatorParamField f) {
  switch (f) {
    case IndicatorParamField::period: return p.period;
    case IndicatorParamField::period2: return p.period2;
    case IndicatorParamField::period3: return p.period3;
    case IndicatorParamField::k: return p.k;
  }
  return 0.0;
}

/// Largest window the max-drawdown state supports (its block summaries live in a fixed array).
inline constexpr std::int32_t kMaxDrawdownWindowMax = 1024;

/// NaN of type T, usable on host and device.
template <class T>
QTOS_HD inline T qnan() {
  return T(NAN);
}

/// True when x is neither NaN nor infinite (portable spelling for host and device).
template <class T>
QTOS_HD inline bool finite_value(T x) {
  return x == x && x - x == T(0);
}

/// Elementary functions at the precision of T: on the host std:: overloads (logf for float, not log), on the device
/// CUDA's overloads.
template <class T>
QTOS_HD inline T qlog(T x) {
#if defined(__CUDA_ARCH__)
  return log(x);
#else
  return std::log(x);
#endif
}
/// exp at the precision of T.
template <class T>
QTOS_HD inline T qexp(T x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return std::exp(x);
#endif
}
/// sqrt at the precision of T.
template <class T>
QTOS_HD inline T qsqrt(T x) {
#if defined(__CUDA_ARCH__)
  return sqrt(x);
#else
  return std::sqrt(x);
#endif
}
/// floor at the precision of T.
template <class T>
QTOS_HD inline T qfloor(T x) {
#if defined(__CUDA_ARCH__)
  return floor(x);
#else
  return std::floor(x);
#endif
}
/// |x| at the precision of T.
template <class T>
QTOS_HD inline T qabs(T x) {
  return x < T(0) ? -x : x;
}

/// Price changes at the data's own precision. Quotes are decimal (FX at 4 decimals) but stored as float, so two equal
/// decimal moves differ by rounding noise; with `decimals` known, a change is taken as the difference of the quotes'
/// integer tick counts divided by 10^decimals, the double (or float) nearest the exact decimal change — equal moves are
/// equal and a tie is a tie. Off (decimals < 0): plain differences.
template <class T>
struct PriceGrid {
  T scale = T(0);  ///< 10^decimals; 0: off
  /// 10^decimals, or off for decimals < 0 (at most 9 decimals: a float price carries no more).
  QTOS_HD void init(std::int32_t decimals) {
    scale = T(0);
    if (decimals < 0 || decimals > 9) return;
    scale = T(1);
    for (std::int32_t i = 0; i < decimals; ++i) scale *= T(10);
  }
  /// The quote's tick count (an integer-valued T).
  QTOS_HD T ticks(T p) const { return qfloor(p * scale + T(0.5)); }
  /// a - b at the grid's precision (plain a - b when off).
  QTOS_HD T diff(T a, T b) const {
    if (scale == T(0)) return a - b;
    return (ticks(a) - ticks(b)) / scale;
  }
};

/// Wilder's true range of a bar given the previous close, its differences taken on `grid`.
template <class T>
QTOS_HD inline T true_range(T high, T low, T prev_close, const PriceGrid<T>& grid) {
  const T r = grid.diff(high, low);
  const T a = qabs(grid.diff(high, prev_close));
  const T b = qabs(grid.diff(low, prev_close));
  const T m = a > r ? a : r;
  return b > m ? b : m;
}

/// Wilder's true range of a bar given the previous close.
template <class T>
QTOS_HD inline T true_range(T high, T low, T prev_close) {
  const T r = high - low;
  const T a = qabs(high - prev_close);
  const T b = qabs(low - prev_close);
  const T m = a > r ? a : r;
  return b > m ? b : m;
}

/// Simple moving average over `n` inputs. Lookback n-1. Sums are kept relative to the first input (`shift_`)
/// so that float sums of prices far from zero do not lose the digits that matter.
template <class T>
struct SmaState {
  static constexpr IndicatorKind kKind = IndicatorKind::sma;  ///< the family tag
  static constexpr const char* kName = "sma";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"sma"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 20};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period - 1; }
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  T shift = 0, sum = 0;  ///< the first input of the stretch; sum of (x - shift) over the window
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { n = p.period; reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; sum = T(0); shift = T(0); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return n; }
  /// Adds x; `x_old` is the input n steps ago (read only once n inputs were seen). Returns the SMA or NaN.
  QTOS_HD T update(T x, T x_old) {
    if (count == 0) shift = x;
    sum += x - shift;
    if (count >= n) sum -= x_old - shift;
    ++count;
    return count >= n ? shift + sum / T(n) : qnan<T>();
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) {
    const T x = T(h.close(0));
    out[0] = update(x, count >= n ? T(h.close(n)) : T(0));
  }
};

/// Exponential moving average, k = 2/(n+1), first value = SMA of the first n inputs (TA-Lib). Lookback n-1.
template <class T>
struct EmaState {
  static constexpr IndicatorKind kKind = IndicatorKind::ema;  ///< the family tag
  static constexpr const char* kName = "ema";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"ema"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 20};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period - 1; }
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  T k = 0, sum = 0, value = 0;  ///< smoothing factor; seed sum; current EMA
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { init_period(p.period); }
  /// Sets the period and clears the state.
  QTOS_HD void init_period(std::int32_t period) { n = period; k = T(2) / T(period + 1); reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; sum = T(0); value = T(0); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return 0; }
  /// True once the seed is complete.
  QTOS_HD bool ready() const { return count >= n; }
  /// Adds x and returns the EMA or NaN.
  QTOS_HD T update(T x) {
    if (count < n) {
      sum += x;
      if (++count == n) value = sum / T(n);
      return count == n ? value : qnan<T>();
    }
    value = (x - value) * k + value;
    return value;
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { out[0] = update(T(h.close(0))); }
};

/// Wilder's RSI (TA-Lib): average gain/loss seeded by the mean of the first n changes, then
/// avg = (avg*(n-1) + x)/n; RSI = 100*gain/(gain+loss), 0 when both are 0. Lookback n.
template <class T>
struct RsiState {
  static constexpr IndicatorKind kKind = IndicatorKind::rsi;  ///< the family tag
  static constexpr const char* kName = "rsi";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"rsi"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 14};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period; }
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  T prev = 0, gain = 0, loss = 0;  ///< previous close; Wilder averages of gains and losses
  PriceGrid<T> grid;               ///< price changes at the quotes' precision (IndicatorParams::price_decimals)
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { n = p.period; grid.init(p.price_decimals); reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; prev = gain = loss = T(0); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return 0; }
  /// Adds a close and returns the RSI or NaN.
  QTOS_HD T update(T x) {
    const std::int32_t i = count++;
    if (i == 0) { prev = x; return qnan<T>(); }
    const T d = grid.diff(x, prev);
    prev = x;
    // Selects, not branches: the sign of a price change is a coin flip the branch predictor cannot learn.
    const T up = d > T(0) ? d : T(0);
    const T down = d < T(0) ? -d : T(0);
    if (i <= n) {
      gain += up;
      loss += down;
      if (i < n) return qnan<T>();
      gain /= T(n);
      loss /= T(n);
    } else {
      const T inv_n = T(1) / T(n);  // loop-invariant
      gain = (gain * T(n - 1) + up) * inv_n;
      loss = (loss * T(n - 1) + down) * inv_n;
    }
    const T total = gain + loss;
    return total != T(0) ? T(100) * (gain / total) : T(0);
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { out[0] = update(T(h.close(0))); }
};

/// Wilder's ATR (TA-Lib): true range from the second bar, first ATR = mean of the first n true ranges,
/// then ATR = (ATR*(n-1) + TR)/n. Lookback n.
template <class T>
struct AtrState {
  static constexpr IndicatorKind kKind = IndicatorKind::atr;  ///< the family tag
  static constexpr const char* kName = "atr";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"atr"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close | IndicatorInputs::range;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 14};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period; }
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  T prev_close = 0, value = 0;  ///< previous close; current ATR (or the seed sum)
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { n = p.period; reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; prev_close = value = T(0); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return 0; }
  /// Adds a bar and returns the ATR or NaN.
  QTOS_HD T update(T high, T low, T close) {
    const std::int32_t i = count++;
    if (i == 0) { prev_close = close; return qnan<T>(); }
    const T tr = true_range(high, low, prev_close);
    prev_close = close;
    if (i < n) { value += tr; return qnan<T>(); }
    if (i == n) { value = (value + tr) / T(n); return value; }
    value = (value * T(n - 1) + tr) * (T(1) / T(n));  // loop-invariant reciprocal
    return value;
  }
  /// One bar.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { out[0] = update(T(h.high(0)), T(h.low(0)), T(h.close(0))); }
};

/// Wilder's directional movement (TA-Lib PLUS_DI, MINUS_DI, ADX): +DM/-DM/TR summed over bars 1..n-1, then
/// S = S - S/n + x from bar n on; DI = 100*S_DM/S_TR (0 when S_TR is 0), lookback n; DX = 100*|+DI - -DI|/(+DI + -DI);
/// first ADX = mean of the first n DX (bars n..2n-1), then ADX = (ADX*(n-1) + DX)/n, unchanged when DX is undefined.
/// Outputs: +DI, -DI, ADX; ADX lookback 2n-1.
template <class T>
struct DmiState {
  static constexpr IndicatorKind kKind = IndicatorKind::dmi;  ///< the family tag
  static constexpr const char* kName = "dmi";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"plus_di", "minus_di", "adx"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close | IndicatorInputs::range;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 14};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int output) {
    return output == 2 ? 2 * p.period - 1 : p.period;
  }
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  T prev_high = 0, prev_low = 0, prev_close = 0;  ///< the previous bar
  T pdm = 0, mdm = 0, tr = 0, dx_sum = 0, adx = 0;  ///< Wilder sums of +DM, -DM, TR; seed sum of DX; current ADX
  PriceGrid<T> grid;  ///< price changes at the quotes' precision (IndicatorParams::price_decimals): ties are ties
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { n = p.period; grid.init(p.price_decimals); reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; prev_high = prev_low = prev_close = pdm = mdm = tr = dx_sum = adx = T(0); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return 0; }
  /// Adds a bar; writes +DI, -DI, ADX (NaN while in their lookbacks).
  QTOS_HD void update(T high, T low, T close, T* out) {
    const std::int32_t i = count++;
    out[0] = out[1] = out[2] = qnan<T>();
    if (i == 0) { prev_high = high; prev_low = low; prev_close = close; return; }
    const T diff_p = grid.diff(high, prev_high);
    const T diff_m = grid.diff(prev_low, low);
    // TA-Lib's rule as selects (unpredictable branches cost more than the arithmetic).
    const bool is_minus = (diff_m > T(0)) & (diff_p < diff_m);
    const bool is_plus = !is_minus & (diff_p > T(0)) & (diff_p > diff_m);
    const T minus = is_minus ? diff_m : T(0);
    const T plus = is_plus ? diff_p : T(0);
    const T r = true_range(high, low, prev_close, grid);
    prev_high = high; prev_low = low; prev_close = close;
    if (i < n) { pdm += plus; mdm += minus; tr += r; return; }
    const T nn = T(n);
    const T inv_n = T(1) / nn;  // loop-invariant; multiplications keep the three Wilder chains short
    pdm = pdm - pdm * inv_n + plus;
    mdm = mdm - mdm * inv_n + minus;
    tr = tr - tr * inv_n + r;
    T pdi = T(0), mdi = T(0);
    bool dx_defined = false;
    T dx = T(0);
    if (tr != T(0)) {
      const T scale = T(100) / tr;
      pdi = pdm * scale;
      mdi = mdm * scale;
      const T s = pdi + mdi;
      if (s != T(0)) { dx = T(100) * (qabs(mdi - pdi) / s); dx_defined = true; }
    }
    out[0] = pdi;
    out[1] = mdi;
    if (i < 2 * n - 1) { dx_sum += dx; return; }
    if (i == 2 * n - 1) {
      adx = (dx_sum + dx) / nn;
    } else if (dx_defined) {
      adx = (adx * T(n - 1) + dx) * inv_n;
    }
    out[2] = adx;
  }
  /// One bar.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { update(T(h.high(0)), T(h.low(0)), T(h.close(0)), out); }
};

/// Mean and population variance of a sliding window of n values, updated in O(1) without the cancellation of
/// sum-of-squares formulas: Welford's update while the window fills, then the replace-one update
/// mean' = mean + (x - old)/n, M2' = M2 + (x - old) * ((x - mean') + (old - mean)).
/// The moments are accumulated in double for every T: in float, rounding in M2 piles up additively and after a few
/// hundred bars costs a quiet symbol ~1% of its standard deviation (measured); inputs and outputs stay T.
template <class T>
struct WindowMoments {
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  double mean = 0, m2 = 0;  ///< window mean; sum of squared deviations
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; mean = m2 = 0.0; }
  /// Adds x; `old` (the input n steps ago) leaves once the window is full. Returns true when the window is full.
  QTOS_HD bool add(T x_in, T old_in) {
    const double x = double(x_in), old = double(old_in);
    if (count < n) {
      ++count;
      const double d = x - mean;
      mean += d / double(count);
      m2 += d * (x - mean);
    } else {
      const double prev = mean;
      mean += (x - old) * (1.0 / double(n));  // n is loop-invariant: the compiler hoists the reciprocal
      m2 += (x - old) * ((x - mean) + (old - prev));
    }
    return count >= n;
  }
  /// Population variance (divisor n), never negative.
  QTOS_HD double variance() const { return m2 > 0.0 ? m2 / double(n) : 0.0; }
};

/// Bollinger bands (TA-Lib BBANDS, population std) plus width = (upper-lower)/middle and %b = (close-lower)/(upper-lower)
/// (NaN when the bands coincide). Outputs: middle, upper, lower, width, %b. Lookback n-1.
template <class T>
struct BbandsState {
  static constexpr IndicatorKind kKind = IndicatorKind::bbands;  ///< the family tag
  static constexpr const char* kName = "bbands";  ///< name in tables, messages and the CLI
  /// Output names, in output order.
  static constexpr std::array kOutputNames{"middle", "upper", "lower", "width", "percent_b"};
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  /// Parameters read.
  static constexpr std::array kParams{period_spec(2), IndicatorParamSpec{"k", "k", IndicatorParamField::k, 0, 100}};
  static constexpr IndicatorParams kDefaults{.period = 20, .k = 2.0};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period - 1; }
  T k = 2;  ///< band width in standard deviations
  WindowMoments<T> w;  ///< window mean and variance
  /// Sets the period and width and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { w.n = p.period; k = T(p.k); reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { w.reset(); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return w.n; }
  /// Adds x (`x_old`: the input n steps ago); writes the five outputs.
  QTOS_HD void update(T x, T x_old, T* out) {
    if (!w.add(x, x_old)) {
      for (int j = 0; j < kOutputs; ++j) out[j] = qnan<T>();
      return;
    }
    const T sd = T(qsqrt(w.variance()));
    const T mid = T(w.mean);
    out[0] = mid;
    out[1] = mid + k * sd;
    out[2] = mid - k * sd;
    out[3] = (out[1] - out[2]) / mid;
    out[4] = out[1] != out[2] ? (x - out[2]) / (out[1] - out[2]) : qnan<T>();
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) {
    update(T(h.close(0)), w.count >= w.n ? T(h.close(w.n)) : T(0), out);
  }
};

/// MACD (TA-Lib): slow EMA seeded by the SMA of bars 0..slow-1, fast EMA seeded by the SMA of the `fast` bars
/// ending at bar slow-1 (TA-Lib starts both together), line = fast - slow from bar slow-1, signal = EMA(signal
/// period) of the line seeded by an SMA, histogram = line - signal from bar slow+signal-2.
/// Outputs: line, signal, histogram. Lookback slow+signal-2 (the line alone: slow-1).
template <class T>
struct MacdState {
  static constexpr IndicatorKind kKind = IndicatorKind::macd;  ///< the family tag
  static constexpr const char* kName = "macd";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"macd", "signal", "histogram"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  /// Parameters read: fast, slow (above fast) and signal periods.
  static constexpr std::array kParams{
      IndicatorParamSpec{"period", "fast period", IndicatorParamField::period, 2, 100000},
      IndicatorParamSpec{"slow_period", "slow period", IndicatorParamField::period2, 1, 100000, 0},
      IndicatorParamSpec{"signal_period", "signal period", IndicatorParamField::period3, 1, 100000}};
  static constexpr IndicatorParams kDefaults{.period = 12, .period2 = 26, .period3 = 9};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period2 + p.period3 - 2; }
  std::int32_t fast = 0, slow = 0, count = 0;  ///< periods; inputs seen since the last reset
  T fast_k = 0, fast_sum = 0, fast_value = 0;  ///< fast EMA: factor, seed sum, value
  EmaState<T> slow_ema, signal_ema;  ///< slow EMA of close; signal EMA of the line
  /// Sets the three periods (fast < slow) and clears the state.
  QTOS_HD void init(const IndicatorParams& p) {
    fast = p.period;
    slow = p.period2;
    fast_k = T(2) / T(fast + 1);
    slow_ema.init_period(slow);
    signal_ema.init_period(p.period3);
    reset();
  }
  /// Forgets every input.
  QTOS_HD void reset() {
    count = 0;
    fast_sum = fast_value = T(0);
    slow_ema.reset();
    signal_ema.reset();
  }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return 0; }
  /// Adds a close; writes line, signal, histogram.
  QTOS_HD void update(T x, T* out) {
    const std::int32_t i = count++;
    const T s = slow_ema.update(x);
    if (i < slow - 1) {
      if (i >= slow - fast) fast_sum += x;
      out[0] = out[1] = out[2] = qnan<T>();
      return;
    }
    if (i == slow - 1) {
      fast_value = (fast_sum + x) / T(fast);
    } else {
      fast_value = (x - fast_value) * fast_k + fast_value;
    }
    const T line = fast_value - s;
    const T sig = signal_ema.update(line);
    // TA-Lib's convention: every output waits for the signal line (lookback s+g-2, 33 at 12/26/9).
    const bool ready = signal_ema.ready();
    out[0] = ready ? line : qnan<T>();
    out[1] = sig;
    out[2] = ready ? line - sig : qnan<T>();
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { update(T(h.close(0)), out); }
};

/// Rate of change over n bars, 100*(x/x[t-n] - 1) (TA-Lib ROC; 0 when x[t-n] is 0), and momentum x - x[t-n].
/// Outputs: roc, momentum. Lookback n.
template <class T>
struct RocState {
  static constexpr IndicatorKind kKind = IndicatorKind::roc;  ///< the family tag
  static constexpr const char* kName = "roc";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"roc", "momentum"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 10};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period; }
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { n = p.period; reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return n; }
  /// Adds x (`x_old`: the input n steps ago); writes roc and momentum.
  QTOS_HD void update(T x, T x_old, T* out) {
    if (count++ < n) { out[0] = out[1] = qnan<T>(); return; }
    out[0] = x_old != T(0) ? T(100) * (x / x_old - T(1)) : T(0);
    out[1] = x - x_old;
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { update(T(h.close(0)), count >= n ? T(h.close(n)) : T(0), out); }
};

/// Realised volatility: sample standard deviation (divisor n-1) of the last n log returns ln(x_t/x_{t-1}),
/// per bar (not annualised). Needs n >= 2. Lookback n.
template <class T>
struct RvolState {
  static constexpr IndicatorKind kKind = IndicatorKind::rvol;  ///< the family tag
  static constexpr const char* kName = "rvol";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"rvol"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  static constexpr std::array kParams{period_spec(2)};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 20};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period; }
  bool started = false;  ///< a first close was seen
  T prev = 0;          ///< previous close
  WindowMoments<T> w;  ///< moments of the log returns
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { w.n = p.period; reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { started = false; prev = T(0); w.reset(); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return w.n + 1; }
  /// True when the next return pushes one out of the window (the caller then supplies it).
  QTOS_HD bool window_full() const { return w.count >= w.n; }
  /// Adds x; `r_old` is the log return that leaves the window (read only when window_full()).
  QTOS_HD T update(T x, T r_old) {
    if (!started) { started = true; prev = x; return qnan<T>(); }
    const T r = qlog(x / prev);
    prev = x;
    if (!w.add(r, r_old)) return qnan<T>();
    return T(qsqrt(w.m2 > 0.0 ? w.m2 / double(w.n - 1) : 0.0));
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) {
    const T r_old = window_full() ? T(qlog(T(h.close(w.n)) / T(h.close(w.n + 1)))) : T(0);
    out[0] = update(T(h.close(0)), r_old);
  }
};

/// Rolling quote ("dollar") volume: sum over n bars, and the z-score of this bar's quote volume against the
/// window's mean and population std (0 when the std is 0). Outputs: sum, z. Lookback n-1.
template <class T>
struct DollarVolumeState {
  static constexpr IndicatorKind kKind = IndicatorKind::dollar_volume;  ///< the family tag
  static constexpr const char* kName = "dollar_volume";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"dollar_volume", "dollar_volume_z"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::volume;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 20};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period - 1; }
  WindowMoments<T> w;  ///< window mean and variance
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { w.n = p.period; reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { w.reset(); }
  /// Window length.
  QTOS_HD std::int32_t period() const { return w.n; }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return w.n; }
  /// Adds a bar's quote volume v (`v_old`: n bars ago); writes sum and z.
  QTOS_HD void update(T v, T v_old, T* out) {
    if (!w.add(v, v_old)) { out[0] = out[1] = qnan<T>(); return; }
    const double sd = qsqrt(w.variance());  // double: the moments are double
    out[0] = T(w.mean * double(w.n));
    out[1] = sd > 0.0 ? T((double(v) - w.mean) / sd) : T(0);
  }
  /// One bar of quote volume.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { update(T(h.qvol(0)), w.count >= w.n ? T(h.qvol(w.n)) : T(0), out); }
};

/// Corwin-Schultz (2012) spread estimate of one pair of consecutive bars (a = earlier, b = later), floored at 0:
/// beta = ln(Ha/La)^2 + ln(Hb/Lb)^2, gamma = ln(max(Ha,Hb)/min(La,Lb))^2, c = 3 - 2*sqrt(2),
/// alpha = (sqrt(2*beta) - sqrt(beta))/c - sqrt(gamma/c), S = 2*(e^alpha - 1)/(1 + e^alpha).
/// Since sqrt(c) = sqrt(2) - 1 this is alpha = (sqrt(beta) - |ln(max H/min L)|)/(sqrt(2) - 1) and S = 2*tanh(alpha/2),
/// which is what is computed (one sqrt, one exp). `la`, `lb` are ln(H/L) of the two bars (callers cache them),
/// `lg` = ln(max(Ha,Hb)/min(La,Lb)).
template <class T>
QTOS_HD inline T corwin_schultz_logs(T la, T lb, T lg) {
  const T alpha = (qsqrt(la * la + lb * lb) - qabs(lg)) / (qsqrt(T(2)) - T(1));
  if (!(alpha > T(0))) return T(0);  // S <= 0 exactly when alpha <= 0: floored
  const T e = qexp(-alpha);
  return T(2) * (T(1) - e) / (T(1) + e);
}

/// Corwin-Schultz estimate from the raw highs and lows of two consecutive bars.
template <class T>
QTOS_HD inline T corwin_schultz(T high_a, T low_a, T high_b, T low_b) {
  const T hi = high_a > high_b ? high_a : high_b;
  const T lo = low_a < low_b ? low_a : low_b;
  return corwin_schultz_logs(T(qlog(high_a / low_a)), T(qlog(high_b / low_b)), T(qlog(hi / lo)));
}

/// Spread proxy: mean of the Corwin-Schultz estimates of the last n pairs of consecutive bars, as a fraction of
/// price (0.001 = 10 bps). Lookback n. Windows up to kRing keep the estimates in a ring; longer ones recompute
/// the estimate that leaves the window from the lagged bars.
template <class T>
struct SpreadState {
  static constexpr IndicatorKind kKind = IndicatorKind::spread;  ///< the family tag
  static constexpr const char* kName = "spread";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"spread"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::range;  ///< columns read
  static constexpr std::array kParams{period_spec()};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 20};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period; }
  static constexpr std::int32_t kRing = 64;  ///< longest window kept in the ring
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  T prev_high = 0, prev_low = 0, prev_log_range = 0, sum = 0;  ///< previous bar; ln(H/L) of it; window sum
  T ring[kRing];  ///< the last n pair estimates (n <= kRing)
  /// Sets the period and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { n = p.period; reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; prev_high = prev_low = prev_log_range = sum = T(0); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return n + 1; }
  /// True when the caller must supply the estimate leaving the window (window longer than the ring and full).
  QTOS_HD bool needs_old() const { return n > kRing && count > n; }
  /// Adds a bar; `s_old` is the pair estimate leaving the window (read only when needs_old()).
  QTOS_HD T update(T high, T low, T s_old) {
    const std::int32_t i = count++;
    const T lr = T(qlog(high / low));
    if (i == 0) { prev_high = high; prev_low = low; prev_log_range = lr; return qnan<T>(); }
    const T hi = prev_high > high ? prev_high : high;
    const T lo = prev_low < low ? prev_low : low;
    const T s = corwin_schultz_logs(prev_log_range, lr, T(qlog(hi / lo)));
    prev_high = high;
    prev_low = low;
    prev_log_range = lr;
    sum += s;
    if (n <= kRing) {
      T& slot = ring[(i - 1) % n];  // pair i-1 (pairs are numbered from 0)
      if (i > n) sum -= slot;
      slot = s;
    } else if (i > n) {
      sum -= s_old;
    }
    return i >= n ? sum / T(n) : qnan<T>();
  }
  /// One bar.
  template <class H>
  QTOS_HD void step(const H& h, T* out) {
    const T s_old = needs_old() ? corwin_schultz(T(h.high(n + 1)), T(h.low(n + 1)), T(h.high(n)), T(h.low(n))) : T(0);
    out[0] = update(T(h.high(0)), T(h.low(0)), s_old);
  }
};

/// Max, min and the lowest ratio x_j/x_i (i <= j) of a stretch of closes; max drawdown = 1 - ratio. Combining two
/// adjacent stretches is associative. A division happens only when the ratio improves.
template <class T>
struct DrawdownSummary {
  T max = 0, min = 0, ratio = 1;  ///< extremes of the stretch; lowest x_j/x_i with i <= j
  /// Summary of a single close.
  QTOS_HD static DrawdownSummary point(T x) { return {x, x, T(1)}; }
  /// Appends one close.
  QTOS_HD void push(T x) {
    if (x < ratio * max) {
      const T r = x / max;
      if (r < ratio) ratio = r;
    }
    if (x > max) max = x;
    if (x < min) min = x;
  }
  /// Summary of `*this` followed by `b`.
  QTOS_HD DrawdownSummary then(const DrawdownSummary& b) const {
    DrawdownSummary r = *this;
    if (b.ratio < r.ratio) r.ratio = b.ratio;
    if (b.min < r.ratio * max) {
      const T c = b.min / max;
      if (c < r.ratio) r.ratio = c;
    }
    if (b.max > r.max) r.max = b.max;
    if (b.min < r.min) r.min = b.min;
    return r;
  }
  /// The max drawdown, 1 - ratio.
  QTOS_HD T drawdown() const { return T(1) - ratio; }
};

/// Max drawdown over the last n closes: max over i <= j of 1 - x_j/x_i, in [0, 1). O(1) `push` and
/// O(32 + n/32) `query`: summaries of aligned 32-bar blocks are kept, the partial oldest block is re-read from lags.
/// n <= kMaxDrawdownWindowMax. Lookback n-1.
template <class T>
struct MaxDrawdownState {
  static constexpr IndicatorKind kKind = IndicatorKind::max_drawdown;  ///< the family tag
  static constexpr const char* kName = "max_drawdown";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"max_drawdown"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close;  ///< columns read
  static constexpr std::array kParams{period_spec(1, kMaxDrawdownWindowMax)};  ///< parameters read
  static constexpr IndicatorParams kDefaults{.period = 60};  ///< CLI defaults
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams& p, int) { return p.period - 1; }
  static constexpr std::int32_t kBlock = 32;  ///< bars per block summary
  static constexpr std::int32_t kSlots = kMaxDrawdownWindowMax / kBlock + 2;  ///< block ring size
  std::int32_t n = 0, count = 0;  ///< period; inputs seen since the last reset
  DrawdownSummary<T> blocks[kSlots];  ///< summaries of aligned kBlock-bar blocks, a ring
  /// Sets the window and clears the state.
  QTOS_HD void init(const IndicatorParams& p) { n = p.period; reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { count = 0; }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return n - 1; }
  /// Adds one close (O(1)).
  QTOS_HD void push(T x) {
    const std::int32_t i = count++;
    DrawdownSummary<T>& cur = blocks[(i / kBlock) % kSlots];
    if (i % kBlock == 0) cur = DrawdownSummary<T>::point(x);
    else cur.push(x);
  }
  /// Max drawdown of the last n closes pushed (NaN before n); `h` gives the lagged closes of the partial block.
  template <class H>
  QTOS_HD T query(const H& h) const {
    if (count < n) return qnan<T>();
    const std::int32_t i = count - 1;
    const std::int32_t first = count - n;
    const std::int32_t fb = first / kBlock;
    DrawdownSummary<T> acc;
    if (first % kBlock == 0) {
      acc = blocks[fb % kSlots];
    } else {
      const std::int32_t end = (fb + 1) * kBlock - 1 < i ? (fb + 1) * kBlock - 1 : i;
      acc = DrawdownSummary<T>::point(T(h.close(i - first)));
      for (std::int32_t a = first + 1; a <= end; ++a) acc.push(T(h.close(i - a)));
    }
    for (std::int32_t bb = fb + 1; bb <= i / kBlock; ++bb) acc = acc.then(blocks[bb % kSlots]);
    return acc.drawdown();
  }
  /// One bar of close.
  template <class H>
  QTOS_HD void step(const H& h, T* out) {
    push(T(h.close(0)));
    out[0] = query(h);
  }
};

/// On-balance volume (TA-Lib OBV) of the quote volume: the first bar's volume, then plus the volume of a bar that
/// closes above the previous close, minus that of one that closes below, unchanged on an equal close. Cumulative
/// from the first bar of the gap-free stretch. No parameters; lookback 0.
template <class T>
struct ObvState {
  static constexpr IndicatorKind kKind = IndicatorKind::obv;  ///< the family tag
  static constexpr const char* kName = "obv";  ///< name in tables, messages and the CLI
  static constexpr std::array kOutputNames{"obv"};  ///< output names, in output order
  static constexpr int kOutputs = static_cast<int>(kOutputNames.size());  ///< values written per bar
  static constexpr IndicatorInputs kInputs = IndicatorInputs::close | IndicatorInputs::volume;  ///< columns read
  static constexpr std::array<IndicatorParamSpec, 0> kParams{};  ///< parameters read: none
  static constexpr IndicatorParams kDefaults{};  ///< CLI defaults (none read)
  /// Leading bars without a value of output `output`.
  static constexpr std::int32_t lookback(const IndicatorParams&, int) { return 0; }
  bool started = false;  ///< a first bar was seen
  T prev = 0, value = 0;  ///< previous close; current OBV
  /// Clears the state (OBV has no parameters).
  QTOS_HD void init(const IndicatorParams&) { reset(); }
  /// Forgets every input.
  QTOS_HD void reset() { started = false; prev = value = T(0); }
  /// Oldest lag read.
  QTOS_HD std::int32_t max_lag() const { return 0; }
  /// Adds a close x with quote volume v and returns the OBV.
  QTOS_HD T update(T x, T v) {
    if (!started) {
      started = true;
      value = v;
    } else {
      value += x > prev ? v : (x < prev ? -v : T(0));  // a select: the sign of a change is unpredictable
    }
    prev = x;
    return value;
  }
  /// One bar of close and quote volume.
  template <class H>
  QTOS_HD void step(const H& h, T* out) { out[0] = update(T(h.close(0)), T(h.qvol(0))); }
};

/// A list of indicator state templates (each takes the arithmetic type T).
template <template <class> class... States>
struct IndicatorList {
  static constexpr int kCount = sizeof...(States);  ///< number of states
};

/// Every indicator, in IndicatorKind order: the one list that the names, output tables, lookbacks and argument checks
/// (cpu/backend/indicator_cpu.cpp), the TBB, serial and CUDA dispatch, the streaming form and the CLI derive from.
using IndicatorTypes = IndicatorList<SmaState, EmaState, RsiState, AtrState, DmiState, BbandsState, MacdState, RocState,
                                     RvolState, DollarVolumeState, SpreadState, MaxDrawdownState, ObvState>;

/// Number of indicator families.
inline constexpr int kIndicatorKindCount = IndicatorTypes::kCount;

/// A state type handed to an `indicator_visit` callback (no state is built).
template <class State>
struct IndicatorTag {
  using type = State;  ///< the state type
};

/// True when state `Ind` reads the columns `what` (its `kInputs` trait).
template <class Ind>
QTOS_HD constexpr bool indicator_reads(IndicatorInputs what) {
  return inputs_include(Ind::kInputs, what);
}

namespace detail {

/// True when every state's kKind is its index in the list.
template <template <class> class... S, std::size_t... I>
constexpr bool indicator_order_ok(IndicatorList<S...>, std::index_sequence<I...>) {
  return ((static_cast<std::size_t>(S<float>::kKind) == I) && ...);
}

/// True when a state's traits are coherent: outputs named, a close or volume column read, parameter links in range.
template <class S>
constexpr bool indicator_traits_ok() {
  bool ok = S::kOutputs >= 1 && static_cast<std::uint8_t>(S::kInputs) != 0;
  int i = 0;  // a range-for: an index loop over an empty kParams is a "pointless comparison" for nvcc
  for (const IndicatorParamSpec& p : S::kParams) ok = ok && p.min <= p.max && p.above < i++;
  return ok;
}
template <template <class> class... S>
constexpr bool indicator_all_traits_ok(IndicatorList<S...>) {
  return (indicator_traits_ok<S<float>>() && ...);
}

template <class T, class F, template <class> class... S, std::size_t... I>
QTOS_HD inline void indicator_visit_in(IndicatorList<S...>, std::index_sequence<I...>, IndicatorKind kind, F& f) {
  (void)((static_cast<std::size_t>(kind) == I && (f(IndicatorTag<S<T>>{}), true)) || ...);
}

template <class State, class F>
QTOS_HD inline void indicator_dispatch_one(const IndicatorParams& p, F& f) {
  State s;
  s.init(p);
  f(s);
}

template <class T, class F, template <class> class... S, std::size_t... I>
QTOS_HD inline void indicator_dispatch_in(IndicatorList<S...>, std::index_sequence<I...>, IndicatorKind kind,
                                          const IndicatorParams& p, F& f) {
  (void)((static_cast<std::size_t>(kind) == I && (indicator_dispatch_one<S<T>>(p, f), true)) || ...);
}

template <template <class> class... S, std::size_t... I>
QTOS_HD constexpr int indicator_output_count_in(IndicatorList<S...>, std::index_sequence<I...>, IndicatorKind kind) {
  int n = 0;
  ((n = static_cast<std::size_t>(kind) == I ? S<float>::kOutputs : n), ...);
  return n;
}

}  // namespace detail

static_assert(detail::indicator_order_ok(IndicatorTypes{}, std::make_index_sequence<kIndicatorKindCount>{}),
              "IndicatorTypes must list the states in IndicatorKind order (each state's kKind is its index)");
static_assert(detail::indicator_all_traits_ok(IndicatorTypes{}), "an indicator state has incoherent traits");

/// Calls `f(IndicatorTag<State>{})` with the state type of `kind` (T: the arithmetic type); no call for an unknown
/// kind.
template <class T = float, class F>
QTOS_HD inline void indicator_visit(IndicatorKind kind, F&& f) {
  detail::indicator_visit_in<T>(IndicatorTypes{}, std::make_index_sequence<kIndicatorKindCount>{}, kind, f);
}

/// Calls `f(state)` with a freshly initialised state of the family `kind`: the one dispatch every backend shares.
template <class T, class F>
QTOS_HD inline void indicator_dispatch(IndicatorKind kind, const IndicatorParams& p, F&& f) {
  detail::indicator_dispatch_in<T>(IndicatorTypes{}, std::make_index_sequence<kIndicatorKindCount>{}, kind, p, f);
}

/// Number of outputs of an indicator family (0 for an unknown kind).
QTOS_HD constexpr int indicator_output_count(IndicatorKind kind) {
  return detail::indicator_output_count_in(IndicatorTypes{}, std::make_index_sequence<kIndicatorKindCount>{}, kind);
}

/// True when a bar can be used: finite high, low and close.
template <class T>
QTOS_HD inline bool bar_valid(T high, T low, T close) {
  return finite_value(high) && finite_value(low) && finite_value(close);
}

/// True when a bar with these prices can feed state `Ind`: a finite close, and a finite high and low when `Ind` reads
/// the range (so a close-only indicator never touches the high and low columns).
template <class Ind, class V>
QTOS_HD inline bool indicator_bar_valid(V high, V low, V close) {
  if constexpr (indicator_reads<Ind>(IndicatorInputs::range)) return bar_valid(high, low, close);
  else return finite_value(close);
}

/// True when bar t of a row can feed state `Ind` (see indicator_bar_valid); reads high and low only for a range reader.
template <class Ind>
QTOS_HD inline bool bar_valid_for(const float* high, const float* low, const float* close, std::int64_t t) {
  if constexpr (indicator_reads<Ind>(IndicatorInputs::range)) return bar_valid(high[t], low[t], close[t]);
  else return finite_value(close[t]);
}

/// History accessor over one symbol's row of a structure-of-arrays panel at bar t.
struct RowHist {
  const float* hi;  ///< high row
  const float* lo;  ///< low row
  const float* cl;  ///< close row
  const float* qv;  ///< quote-volume row
  std::int64_t t;   ///< the current bar
  QTOS_HD float high(std::int32_t k) const { return hi[t - k]; }   ///< high of bar t-k
  QTOS_HD float low(std::int32_t k) const { return lo[t - k]; }    ///< low of bar t-k
  QTOS_HD float close(std::int32_t k) const { return cl[t - k]; }  ///< close of bar t-k
  QTOS_HD float qvol(std::int32_t k) const { return qv[t - k]; }   ///< quote volume of bar t-k
};

/// Runs indicator state `Ind` over bars [0, n) of one row; output j of bar t goes to out[j * plane + t]. A bar with a
/// missing price gets NaN outputs; `gaps` says whether the state carries over the gap (lags then count existing bars,
/// read through `scratch`, n entries, touched only after a skipped gap) or restarts after it.
template <class T, class Ind, class Out>
QTOS_HD inline void indicator_row_run(Ind& ind, const float* high, const float* low, const float* close, const float* qvol,
                                      std::int32_t n, Out* out, std::int64_t plane, GapPolicy gaps,
                                      std::int32_t* scratch) {
  T o[Ind::kOutputs];
  GapCursor cur{gaps, scratch};
  for (std::int32_t t = 0; t < n; ++t) {
    if (!bar_valid_for<Ind>(high, low, close, t)) {
      cur.miss();
      for (int j = 0; j < Ind::kOutputs; ++j) out[j * plane + t] = Out(NAN);
      continue;
    }
    if (cur.enter(t) == GapStep::reset) ind.reset();
    ind.step(GapHist<RowAt>{RowAt{high, low, close, qvol}, cur.positions(), t, cur.count}, o);
    cur.done();
    for (int j = 0; j < Ind::kOutputs; ++j) out[j * plane + t] = Out(o[j]);
  }
}

}  // namespace qtos::kernels
