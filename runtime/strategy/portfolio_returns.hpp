#pragma once
/// @file The equal-weight portfolio's bar returns of one genome, and the moments a (deflated) Sharpe ratio needs.
/// The backtest metrics pool every (symbol, bar) return as one observation; symbols that move together make those
/// observations far from independent, so a probabilistic Sharpe on the pooled count overstates significance
/// (docs/EVOLUTION.md, "Deflated Sharpe ratio"). The portfolio series has one observation per bar.

#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"

namespace qtos {

/// Per bar of the request's window with at least one valid symbol bar: the mean over those symbols of the genome's
/// sub-account bar return (the float step of the backends, one symbol after another). Throws std::invalid_argument
/// naming a malformed request.
std::vector<double> portfolio_bar_returns(const BacktestRequest& req, const kernels::Genome& genome);

/// Moments of a return series for the (deflated) Sharpe ratio.
struct ReturnMoments {
  double n = 0;         ///< observations
  double sr_bar = 0;    ///< mean / population standard deviation (0 when the deviation is below 1e-12)
  double skew = 0;      ///< skewness
  double kurtosis = 3;  ///< kurtosis (not excess)
};

/// The moments of `r`.
ReturnMoments return_moments(const std::vector<double>& r);

}  // namespace qtos
