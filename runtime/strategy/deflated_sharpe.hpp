#pragma once
/// @file The deflated Sharpe ratio of Bailey & Lopez de Prado (2014): the probability that a strategy's true Sharpe
/// is above the best Sharpe one would expect from `trials` unskilled strategies (docs/EVOLUTION.md).

#include <cstdint>

namespace qtos {

/// Standard normal cumulative distribution.
double norm_cdf(double x);

/// Inverse of norm_cdf for p in (0, 1) (Acklam's rational approximation refined by one Halley step, |error| < 1e-12);
/// throws std::invalid_argument naming p outside (0, 1).
double norm_ppf(double p);

/// Expected maximum of `trials` Sharpe estimates of zero-skill strategies whose estimates have variance
/// `sr_variance`: sqrt(V) * ((1 - g) * ppf(1 - 1/N) + g * ppf(1 - 1/(N e))), g = Euler-Mascheroni. 0 when N <= 1.
double expected_max_sharpe(double trials, double sr_variance);

/// Probabilistic Sharpe ratio of an observed per-bar Sharpe `sr` over `n` returns with skewness `skew` and
/// kurtosis `kurtosis` (not excess) against the benchmark `sr0`:
/// Phi((sr - sr0) sqrt(n - 1) / sqrt(1 - skew sr + (kurtosis - 1)/4 sr^2)). 0.5 when n < 2.
double probabilistic_sharpe(double sr, double n, double skew, double kurtosis, double sr0);

/// Deflated Sharpe ratio: probabilistic_sharpe against expected_max_sharpe(trials, sr_variance).
double deflated_sharpe(double sr, double n, double skew, double kurtosis, double trials, double sr_variance);

}  // namespace qtos
