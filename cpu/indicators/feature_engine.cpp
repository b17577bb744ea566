// The live feature state of a universe: per-symbol indicator states plus rings of the last bars they read.
#include <stdexcept>
#include <string>

#include <tbb/parallel_for.h>

#include "cpu/indicators/streaming.hpp"
#include "cpu/util/parallel.hpp"

namespace qtos {

FeatureEngine::FeatureEngine(std::int32_t n_symbols, const kernels::FeatureParams& params)
    : params_(params), cap_(ring_capacity(params.max_lag())) {
  feature_params_check(params);
  if (n_symbols < 0) throw std::invalid_argument("FeatureEngine: n_symbols = " + std::to_string(n_symbols) + ": expected >= 0");
  kernels::FeatureState<float> proto;
  proto.init(params);
  states_.assign(static_cast<std::size_t>(n_symbols), proto);
  rows_.assign(static_cast<std::size_t>(n_symbols), proto.row);
  ring_.assign(static_cast<std::size_t>(n_symbols) * 4 * static_cast<std::size_t>(cap_), 0.0f);
  dirty_.assign(static_cast<std::size_t>(n_symbols), 0);
  cursors_.assign(static_cast<std::size_t>(n_symbols), Cursor{});
}

RingHist FeatureEngine::hist(std::size_t s, std::int64_t pos) const {
  const auto c = static_cast<std::size_t>(cap_);
  const float* r = ring_.data() + s * 4 * c;
  return RingHist{r, r + c, r + 2 * c, r + 3 * c, cap_, pos};
}

void FeatureEngine::step_symbol(std::size_t s, std::int32_t t, float high, float low, float close, float qvol) {
  auto& st = states_[s];
  Cursor& cur = cursors_[s];
  if (!kernels::bar_valid(high, low, close)) {
    ++cur.missing;  // the ring holds existing bars only: a missing one is not written
    return;
  }
  if (st.row.last_bar >= 0 && params_.gaps.resets(cur.missing)) st.reset();
  cur.missing = 0;
  const auto c = static_cast<std::size_t>(cap_);
  float* r = ring_.data() + s * 4 * c;
  const auto i = static_cast<std::size_t>(cur.written & (cap_ - 1));
  r[i] = high;
  r[c + i] = low;
  r[2 * c + i] = close;
  r[3 * c + i] = qvol;
  st.step(hist(s, cur.written), t, /*evaluate=*/false);
  ++cur.written;
  dirty_[s] = 1;  // per symbol: written by one TBB task only
}

const std::vector<kernels::FeatureRow>& FeatureEngine::rows() const {
  if (!any_dirty_) return rows_;
  qtos::parallel_for(tbb::blocked_range<std::size_t>(0, states_.size(), 256), [&](const auto& range) {
    for (std::size_t s = range.begin(); s != range.end(); ++s) {
      if (!dirty_[s]) continue;
      states_[s].evaluate_windows(hist(s, cursors_[s].written - 1));
      rows_[s] = states_[s].row;
      dirty_[s] = 0;
    }
  });
  any_dirty_ = false;
  return rows_;
}

void FeatureEngine::replay(const kernels::PanelView& panel, std::int32_t t_begin, std::int32_t t_end) {
  if (panel.n_symbols != n_symbols())
    throw std::invalid_argument("FeatureEngine::replay: panel has " + std::to_string(panel.n_symbols) +
                                " symbols; the engine was built for " + std::to_string(n_symbols()));
  if (t_begin < 0 || t_end < t_begin - 1 || t_end >= panel.n_bars)
    throw std::invalid_argument("FeatureEngine::replay: bar range [" + std::to_string(t_begin) + ", " +
                                std::to_string(t_end) + "] is not inside the panel's " + std::to_string(panel.n_bars) +
                                " bars");
  kernels::FeatureState<float> proto;
  proto.init(params_);
  qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, n_symbols()), [&](const auto& range) {
    for (std::int32_t s = range.begin(); s != range.end(); ++s) {
      const auto su = static_cast<std::size_t>(s);
      states_[su] = proto;
      rows_[su] = proto.row;
      dirty_[su] = 0;
      cursors_[su] = Cursor{};
      for (std::int32_t t = t_begin; t <= t_end; ++t) {
        const std::int64_t o = panel.at(s, t);
        step_symbol(su, t, panel.high[o], panel.low[o], panel.close[o], panel.quote_volume[o]);
      }
    }
  });
  last_t_ = t_end;
  any_dirty_ = true;
}

void FeatureEngine::advance(std::int32_t t, std::span<const float> high, std::span<const float> low,
                            std::span<const float> close, std::span<const float> quote_volume) {
  const auto n = static_cast<std::size_t>(n_symbols());
  if (high.size() != n || low.size() != n || close.size() != n || quote_volume.size() != n)
    throw std::invalid_argument("FeatureEngine::advance: every column needs " + std::to_string(n) + " values");
  if (last_t_ >= 0 && t != last_t_ + 1)
    throw std::invalid_argument("FeatureEngine::advance: bar " + std::to_string(t) + " does not follow bar " +
                                std::to_string(last_t_));
  qtos::parallel_for(tbb::blocked_range<std::size_t>(0, n, 256), [&](const auto& range) {
    for (std::size_t s = range.begin(); s != range.end(); ++s) step_symbol(s, t, high[s], low[s], close[s], quote_volume[s]);
  });
  last_t_ = t;
  any_dirty_ = true;
}

void FeatureEngine::advance_from(const kernels::PanelView& panel, std::int32_t t) {
  if (panel.n_symbols != n_symbols() || t < 0 || t >= panel.n_bars)
    throw std::invalid_argument("FeatureEngine::advance_from: bar " + std::to_string(t) +
                                " or the symbol count does not match the panel");
  if (last_t_ >= 0 && t != last_t_ + 1)
    throw std::invalid_argument("FeatureEngine::advance_from: bar " + std::to_string(t) + " does not follow bar " +
                                std::to_string(last_t_));
  qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, n_symbols(), 256), [&](const auto& range) {
    for (std::int32_t s = range.begin(); s != range.end(); ++s) {
      const std::int64_t o = panel.at(s, t);
      step_symbol(static_cast<std::size_t>(s), t, panel.high[o], panel.low[o], panel.close[o], panel.quote_volume[o]);
    }
  });
  last_t_ = t;
  any_dirty_ = true;
}

}  // namespace qtos
