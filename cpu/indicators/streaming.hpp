#pragma once
/// @file Streaming (live) forms: an indicator, or the ranking features of a whole universe, updated with one new bar
/// in O(1) per symbol. They run the same step functions as the batch backends and so give the same values.

#include <cstdint>
#include <span>
#include <type_traits>
#include <variant>
#include <vector>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/kernels/features.hpp"
#include "cpu/kernels/indicators.hpp"

namespace qtos {

/// Ring capacity for lags up to `max_lag`: the next power of two above it, so that a slot is a mask, not a division.
inline std::int64_t ring_capacity(std::int64_t max_lag) {
  std::int64_t cap = 1;  // smallest power of two above max_lag
  while (cap <= max_lag) cap *= 2;
  return cap;
}

/// Accessor over ring buffers of the last `cap` bars (bar `pos` is the newest; cap a power of two); the lag
/// contract of the kernels guarantees k < cap.
struct RingHist {
  const float* hi;      ///< high ring
  const float* lo;      ///< low ring
  const float* cl;      ///< close ring
  const float* qv;      ///< quote-volume ring
  std::int64_t cap;     ///< ring capacity, a power of two
  std::int64_t pos;     ///< absolute index of the newest bar
  std::int64_t slot(std::int32_t k) const { return (pos - k) & (cap - 1); }  ///< ring slot of bar pos-k
  float high(std::int32_t k) const { return hi[slot(k)]; }    ///< high of bar pos-k
  float low(std::int32_t k) const { return lo[slot(k)]; }     ///< low of bar pos-k
  float close(std::int32_t k) const { return cl[slot(k)]; }   ///< close of bar pos-k
  float qvol(std::int32_t k) const { return qv[slot(k)]; }    ///< quote volume of bar pos-k
};

/// `std::variant` of the states of an IndicatorList, in list order.
template <class T, class List>
struct IndicatorVariant;
/// `std::variant` of the states of an IndicatorList, in list order.
template <class T, template <class> class... S>
struct IndicatorVariant<T, kernels::IndicatorList<S...>> {
  using type = std::variant<S<T>...>;  ///< the variant
};

/// One indicator of one symbol, updated bar by bar; `update` returns the same values as the batch form at that bar.
template <class T>
class IndicatorStream {
 public:
  /// Throws std::invalid_argument (indicator_params_check) on bad parameters.
  IndicatorStream(kernels::IndicatorKind kind, const kernels::IndicatorParams& params) : kind_(kind), gaps_(params.gaps) {
    indicator_params_check(kind, params);
    kernels::indicator_dispatch<T>(kind, params, [&](const auto& s) {
      state_ = s;
      cap_ = ring_capacity(s.max_lag());
    });
    ring_.assign(static_cast<std::size_t>(4 * cap_), 0.0f);
    out_.assign(static_cast<std::size_t>(kernels::indicator_output_count(kind)), T(0));
  }
  /// The family.
  kernels::IndicatorKind kind() const { return kind_; }
  /// Consumes one bar and returns its outputs (NaN inside the lookback and at a missing bar, which the state skips or
  /// restarts after as the parameters' gap policy says; the ring holds existing bars only, so lags count those).
  std::span<const T> update(float high, float low, float close, float qvol) {
    const bool valid = std::visit(
        [&](const auto& s) { return kernels::indicator_bar_valid<std::remove_cvref_t<decltype(s)>>(high, low, close); },
        state_);
    if (!valid) {
      ++missing_;
      for (auto& o : out_) o = T(NAN);
      return out_;
    }
    if (pos_ >= 0 && gaps_.resets(missing_)) std::visit([](auto& s) { s.reset(); }, state_);
    missing_ = 0;
    ++pos_;
    const auto c = static_cast<std::size_t>(cap_);
    const auto i = static_cast<std::size_t>(pos_ & (cap_ - 1));
    ring_[i] = high;
    ring_[c + i] = low;
    ring_[2 * c + i] = close;
    ring_[3 * c + i] = qvol;
    const RingHist h{ring_.data(), ring_.data() + c, ring_.data() + 2 * c, ring_.data() + 3 * c, cap_, pos_};
    std::visit([&](auto& s) { s.step(h, out_.data()); }, state_);
    return out_;
  }

 private:
  using State = typename IndicatorVariant<T, kernels::IndicatorTypes>::type;
  kernels::IndicatorKind kind_;
  kernels::GapPolicy gaps_;
  std::int32_t missing_ = 0;  // missing bars since the last valid one
  State state_;
  std::int64_t cap_ = 1, pos_ = -1;
  std::vector<float> ring_;  // high, low, close, quote volume; cap_ each
  std::vector<T> out_;
};

/// The ranking features of a whole universe, kept live: `advance` adds one bar for every symbol in O(1) each.
class FeatureEngine {
 public:
  /// Throws std::invalid_argument on bad windows or a negative symbol count.
  FeatureEngine(std::int32_t n_symbols, const kernels::FeatureParams& params);
  /// Clears every symbol and replays bars [t_begin, t_end] of `panel` (same symbols, in order), parallel over symbols.
  void replay(const kernels::PanelView& panel, std::int32_t t_begin, std::int32_t t_end);
  /// Adds bar `t` (the bar after the last one seen) for every symbol; each span has n_symbols values (NaN = no bar).
  void advance(std::int32_t t, std::span<const float> high, std::span<const float> low, std::span<const float> close,
               std::span<const float> quote_volume);
  /// Adds bar `t` of `panel` for every symbol.
  void advance_from(const kernels::PanelView& panel, std::int32_t t);
  /// Features of every symbol as of the last bar added. `advance` only updates the O(1) states; the window
  /// features (ROC, drawdown, Bollinger width, dollar volume, spread) of the symbols that moved are evaluated here,
  /// on first read after an advance (O(window) each, parallel over symbols). Owner thread only.
  const std::vector<kernels::FeatureRow>& rows() const;
  /// Number of symbols.
  std::int32_t n_symbols() const { return static_cast<std::int32_t>(states_.size()); }
  /// The last bar added (-1 before any).
  std::int32_t last_bar() const { return last_t_; }

 private:
  void step_symbol(std::size_t s, std::int32_t t, float high, float low, float close, float qvol);
  RingHist hist(std::size_t s, std::int64_t pos) const;
  /// Per symbol: valid bars written to the ring (the ring slot of the next one) and missing bars since the last.
  struct Cursor {
    std::int64_t written = 0;
    std::int32_t missing = 0;
  };
  kernels::FeatureParams params_;
  std::int64_t cap_;  // ring capacity, a power of two
  mutable std::vector<kernels::FeatureState<float>> states_;
  mutable std::vector<kernels::FeatureRow> rows_;
  mutable std::vector<std::uint8_t> dirty_;  // 1: a valid bar was added since the window features were evaluated
  mutable bool any_dirty_ = false;
  std::vector<float> ring_;  // per symbol: high, low, close, quote volume rings of cap_ existing bars
  std::vector<Cursor> cursors_;
  std::int32_t last_t_ = -1;
};

}  // namespace qtos
