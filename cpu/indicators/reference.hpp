#pragma once
/// @file Straightforward scalar references of the indicators, written independently of the step states: whole-array
/// loops in double following the textbook/TA-Lib definitions (window sums recomputed per bar, two-pass variances).
/// The tests compare the kernels with them; the indicator benchmark runs them as its naive peer.
/// Each takes one gap-free segment and returns vectors of the input's length, NaN inside the lookback.

#include <cstdint>
#include <span>
#include <vector>

#include "cpu/kernels/indicators.hpp"

namespace qtos::reference {

/// One output series.
using Series = std::vector<double>;

Series sma(std::span<const double> x, int n);                                   ///< simple moving average
Series ema(std::span<const double> x, int n);                                   ///< SMA-seeded EMA
Series rsi(std::span<const double> x, int n);                                   ///< Wilder RSI
Series atr(std::span<const double> h, std::span<const double> l, std::span<const double> c, int n);  ///< Wilder ATR
/// +DI, -DI, ADX.
std::vector<Series> dmi(std::span<const double> h, std::span<const double> l, std::span<const double> c, int n);
/// middle, upper, lower, width, %b.
std::vector<Series> bbands(std::span<const double> x, int n, double k);
/// line, signal, histogram.
std::vector<Series> macd(std::span<const double> x, int fast, int slow, int signal);
/// roc, momentum.
std::vector<Series> roc(std::span<const double> x, int n);
Series rvol(std::span<const double> x, int n);                                  ///< sample std of log returns
/// rolling sum, z-score.
std::vector<Series> dollar_volume(std::span<const double> q, int n);
Series spread(std::span<const double> h, std::span<const double> l, int n);     ///< mean Corwin-Schultz estimate
Series max_drawdown(std::span<const double> x, int n);                          ///< window max drawdown
Series obv(std::span<const double> x, std::span<const double> v);              ///< on-balance volume (TA-Lib)

/// Every output of family `kind` over one gap-free segment (high, low, close, quote volume), by the functions above.
std::vector<Series> series(kernels::IndicatorKind kind, const kernels::IndicatorParams& p, std::span<const double> h,
                           std::span<const double> l, std::span<const double> c, std::span<const double> q);

}  // namespace qtos::reference
