#pragma once
/// @file Internals shared by the backtest sources: backtest.cpp (checks, serial reference, entry points),
/// backtest_tbb.cpp (the TBB lane backend), metrics.cpp and feature_bank.cpp. Not part of the public interface.

#include <cstdint>

#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"

namespace qtos::detail {

/// The plane index of a feature in the bank (plane p of (s, t) at p * plane_size + s * stride + t).
constexpr std::int32_t feature_plane(kernels::StrategyFeature f) { return static_cast<std::int32_t>(f); }

/// The last bar before `t` of symbol s with a finite open, high, low and close (kernels::backtest_bar_valid); -1 if none.
std::int32_t backtest_prev_valid(const kernels::PanelView& p, std::int32_t s, std::int32_t t);

/// Fills out.genome with each genome's (genome, symbol) accumulators merged in symbol order.
void backtest_merge_genomes(const BacktestRequest& r, BacktestResult& out);

}  // namespace qtos::detail
