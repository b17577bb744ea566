#pragma once
// A small synthetic market held in plain arrays (no MarketPanel needed): AR(1) log returns per symbol, so that
// phi != 0 plants a predictable component and phi = 0 is a pure random walk.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cpu/kernels/panel_view.hpp"
#include "runtime/data/market_panel.hpp"

namespace qtos::models::testing {

struct SyntheticMarket {
  std::int32_t n_symbols = 0, n_bars = 0;
  std::int64_t stride = 0;
  std::vector<float> open, high, low, close, volume, quote_volume, trades;
  std::vector<std::int32_t> first, last;

  /// Builds `n_symbols` x `n_bars`; r[t] = phi * r[t-1] + sigma * e[t].
  SyntheticMarket(std::int32_t symbols, std::int32_t bars, double phi, std::uint64_t seed, double sigma = 0.01)
      : n_symbols(symbols), n_bars(bars), stride((bars + 15) / 16 * 16) {
    const auto cells = static_cast<std::size_t>(stride) * static_cast<std::size_t>(symbols);
    for (auto* v : {&open, &high, &low, &close, &volume, &quote_volume, &trades}) v->assign(cells, 0.0F);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (std::int32_t s = 0; s < symbols; ++s) {
      double logp = std::log(100.0 + s), r = 0.0;
      for (std::int32_t t = 0; t < bars; ++t) {
        const auto i = static_cast<std::size_t>(s * stride + t);
        r = phi * r + sigma * normal(rng);
        const double prev = std::exp(logp);
        logp += r;
        const double c = std::exp(logp);
        open[i] = static_cast<float>(prev);
        close[i] = static_cast<float>(c);
        high[i] = static_cast<float>(std::max(prev, c) * (1.0 + 0.3 * sigma * std::abs(normal(rng))));
        low[i] = static_cast<float>(std::min(prev, c) * (1.0 - 0.3 * sigma * std::abs(normal(rng))));
        volume[i] = static_cast<float>(1000.0 * std::exp(0.3 * normal(rng)));
        quote_volume[i] = volume[i] * close[i];
        trades[i] = 100.0F;
      }
    }
    first.assign(static_cast<std::size_t>(symbols), 0);
    last.assign(static_cast<std::size_t>(symbols), bars - 1);
  }

  /// Marks bar t of symbol s missing (NaN prices, zero volume), as a panel does for a gap.
  void gap(std::int32_t s, std::int32_t t) {
    const auto i = static_cast<std::size_t>(s * stride + t);
    const float nan = std::nanf("");
    open[i] = high[i] = low[i] = close[i] = nan;
    volume[i] = quote_volume[i] = trades[i] = 0.0F;
  }

  /// The first `bars` bars as a MarketPanel on an hourly grid from 2024-01-01 (symbols SYN000.., same values).
  MarketPanel to_panel(std::int32_t bars) const {
    std::vector<std::string> names;
    for (std::int32_t s = 0; s < n_symbols; ++s) names.push_back("SYN" + std::to_string(1000 + s).substr(1));
    MarketPanel p(names, bars, 1'704'067'200'000, 3'600'000);
    const std::vector<float>* cols[] = {&open, &high, &low, &close, &volume, &quote_volume, &trades};
    for (int c = 0; c < kColumnCount; ++c)
      for (std::int32_t s = 0; s < n_symbols; ++s) {
        auto dst = p.series_mut(static_cast<Column>(c), s);
        const float* src = cols[c]->data() + s * stride;
        for (std::int32_t t = 0; t < bars; ++t) dst[static_cast<std::size_t>(t)] = src[t];
      }
    p.valid_ranges_recompute();
    return p;
  }

  kernels::PanelView view() const {
    kernels::PanelView v;
    v.open = open.data();
    v.high = high.data();
    v.low = low.data();
    v.close = close.data();
    v.volume = volume.data();
    v.quote_volume = quote_volume.data();
    v.trades = trades.data();
    v.first_bar = first.data();
    v.last_bar = last.data();
    v.n_symbols = n_symbols;
    v.n_bars = n_bars;
    v.stride = stride;
    return v;
  }
};

}  // namespace qtos::models::testing
