// The strategy feature bank: every indicator series a genome may read, computed once per symbol.
#include "cpu/backtest/backtest.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backtest/feature_state.hpp"
#include "cpu/util/parallel.hpp"

namespace qtos {

using kernels::PanelView;

StrategyFeatures strategy_features_compute(const PanelView& panel, bool with_double, kernels::GapPolicy gaps) {
  gap_policy_check(gaps);
  if (panel.n_symbols < 0 || panel.n_bars < 0 || panel.stride < panel.n_bars)
    throw std::invalid_argument("strategy features: malformed panel view (" + std::to_string(panel.n_symbols) + " symbols, " +
                                std::to_string(panel.n_bars) + " bars, stride " + std::to_string(panel.stride) + ")");
  static std::atomic<std::uint64_t> next_id{1};
  StrategyFeatures f;
  f.id = next_id.fetch_add(1, std::memory_order_relaxed);
  f.plane_size = panel.n_symbols * panel.stride;
  f.gaps = gaps;
  f.price_decimals = panel_price_decimals(panel);
  const std::size_t total = static_cast<std::size_t>(f.plane_size) * kernels::kStrategyFeatureCount;
  f.f32.assign(total, std::numeric_limits<float>::quiet_NaN());
  if (with_double) f.f64.assign(total, std::numeric_limits<double>::quiet_NaN());
  qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, panel.n_symbols, 1), [&](const tbb::blocked_range<std::int32_t>& br) {
    double v[kernels::kStrategyFeatureCount];
    for (std::int32_t s = br.begin(); s != br.end(); ++s) {
      StrategyFeatureState st(gaps, f.price_decimals[static_cast<std::size_t>(s)]);
      for (std::int32_t t = 0; t < panel.n_bars; ++t) {
        const std::int64_t at = panel.at(s, t);
        st.update(panel.high[at], panel.low[at], panel.close[at], v);
        for (std::int32_t k = 0; k < kernels::kStrategyFeatureCount; ++k) {
          const auto i = static_cast<std::size_t>(k * f.plane_size + at);
          f.f32[i] = static_cast<float>(v[k]);
          if (with_double) f.f64[i] = v[k];
        }
      }
    }
  });
  return f;
}

}  // namespace qtos
