#pragma once
/// @file A small deterministic OHLCV panel for tests: seeded random walks with late listings, gaps and delistings.

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cpu/kernels/panel_view.hpp"

namespace qtos::testing {

/// Owns the columns behind a PanelView (same layout as MarketPanel: symbol-major, stride a multiple of 16).
struct OwnedPanel {
  std::int32_t n_symbols = 0, n_bars = 0;
  std::int64_t stride = 0;
  std::vector<float> open, high, low, close, volume, qvol, trades;
  std::vector<std::int32_t> first, last;
  /// The kernel view.
  kernels::PanelView view() const {
    kernels::PanelView v;
    v.open = open.data(); v.high = high.data(); v.low = low.data(); v.close = close.data();
    v.volume = volume.data(); v.quote_volume = qvol.data(); v.trades = trades.data();
    v.first_bar = first.data(); v.last_bar = last.data();
    v.n_symbols = n_symbols; v.n_bars = n_bars; v.stride = stride;
    return v;
  }
  /// One column of one symbol as doubles, bars [a, b).
  std::vector<double> row(const std::vector<float>& col, std::int32_t s, std::int32_t a, std::int32_t b) const {
    std::vector<double> r;
    for (std::int32_t t = a; t < b; ++t) r.push_back(col[static_cast<std::size_t>(s * stride + t)]);
    return r;
  }
};

/// Random walks; with `gaps`, symbol s%7==3 lists at n_bars/5, s%11==5 misses three bars mid-way, s%13==4 delists at
/// 90% of the bars. Volatility and drift differ by symbol so that rankings have something to rank.
inline OwnedPanel synthetic_panel(std::int32_t n_symbols, std::int32_t n_bars, std::uint64_t seed, bool gaps = true) {
  OwnedPanel p;
  p.n_symbols = n_symbols;
  p.n_bars = n_bars;
  p.stride = (static_cast<std::int64_t>(n_bars) + 15) / 16 * 16;
  const std::size_t n = static_cast<std::size_t>(n_symbols) * static_cast<std::size_t>(p.stride);
  for (auto* c : {&p.open, &p.high, &p.low, &p.close}) c->assign(n, NAN);
  for (auto* c : {&p.volume, &p.qvol, &p.trades}) c->assign(n, 0.0f);
  p.first.assign(static_cast<std::size_t>(n_symbols), 0);
  p.last.assign(static_cast<std::size_t>(n_symbols), -1);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0.0, 1.0);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  for (std::int32_t s = 0; s < n_symbols; ++s) {
    const double vol = 0.004 + 0.02 * unif(rng);
    const double drift = 0.002 * (unif(rng) - 0.5);
    const double liq = std::exp(8.0 + 4.0 * unif(rng));
    double price = 10.0 + 200.0 * unif(rng);
    const std::int32_t begin = gaps && s % 7 == 3 ? n_bars / 5 : 0;
    const std::int32_t end = gaps && s % 13 == 4 ? n_bars * 9 / 10 : n_bars;
    std::int32_t first = -1, last = -1;
    for (std::int32_t t = 0; t < n_bars; ++t) {
      const double open = price;
      price *= std::exp(drift + vol * gauss(rng));
      const double hi = std::max(open, price) * (1.0 + vol * 0.5 * unif(rng));
      const double lo = std::min(open, price) * (1.0 - vol * 0.5 * unif(rng));
      const double base_vol = liq * std::exp(0.5 * gauss(rng));
      const bool missing = t < begin || t >= end || (gaps && s % 11 == 5 && t >= n_bars / 2 && t < n_bars / 2 + 3);
      if (missing) continue;
      const std::size_t o = static_cast<std::size_t>(s * p.stride + t);
      p.open[o] = static_cast<float>(open);
      p.high[o] = static_cast<float>(hi);
      p.low[o] = static_cast<float>(lo);
      p.close[o] = static_cast<float>(price);
      p.volume[o] = static_cast<float>(base_vol);
      p.qvol[o] = static_cast<float>(base_vol * price);
      p.trades[o] = static_cast<float>(std::floor(base_vol / 10.0) + 1.0);
      if (first < 0) first = t;
      last = t;
    }
    p.first[static_cast<std::size_t>(s)] = first < 0 ? 0 : first;
    p.last[static_cast<std::size_t>(s)] = last;
  }
  return p;
}

}  // namespace qtos::testing
