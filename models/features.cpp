// Building the feature table from a panel (TBB over symbols) and the incremental carry used at inference.
#include "models/features.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

#include <tbb/parallel_for.h>

#include "cpu/kernels/indicators.hpp"
#include "cpu/util/parallel.hpp"

namespace qtos::models {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

}  // namespace

namespace detail {

/// One symbol's indicator states (double, as in the strategy feature bank) and the driver's gap bookkeeping: how many
/// bars the states have consumed since their last restart and where those bars lie in the row (a ring of the last
/// few positions, so that lag k reads the k-th existing bar back under `skip`, as every other driver does).
struct SymbolStates {
  kernels::RvolState<double> rvol;            ///< sigma: sample std of the last vol_window 1-bar log returns
  kernels::DollarVolumeState<double> volume;  ///< fed the base volume: output 0 is the window's sum
  kernels::RsiState<double> rsi;
  kernels::AtrState<double> atr;
  kernels::DmiState<double> dmi;
  kernels::BbandsState<double> bb;
  kernels::SpreadState<double> spread;
  kernels::GapPolicy gaps;
  std::int32_t run = 0;      ///< present bars consumed since the last restart, the last one included
  std::int32_t missing = 0;  ///< missing bars since the last present one
  bool seen = false;         ///< a present bar was consumed
  bool contiguous = true;    ///< no gap was skipped since the restart: lag k is bar newest - k
  std::int32_t newest = 0;   ///< row position of the newest bar consumed
  std::vector<std::int32_t> pos;  ///< ring (a power of two long): row position of the i-th bar since the restart

  void init(const FeatureSpec& spec) {
    auto params = [](std::int32_t n) {
      kernels::IndicatorParams q;
      q.period = n;
      q.k = 2.0;
      return q;
    };
    rvol.init(params(spec.vol_window));
    volume.init(params(spec.volume_window));
    rsi.init(params(spec.rsi_period));
    atr.init(params(spec.atr_period));
    dmi.init(params(spec.adx_period));
    bb.init(params(spec.bbands_period));
    spread.init(params(spec.spread_window));
    gaps = spec.gaps;
    // The oldest bar read: a state's lag, or a return lag (the features are read once run > warmup()).
    const std::int32_t max_lag = std::max({rvol.max_lag(), volume.max_lag(), rsi.max_lag(), atr.max_lag(), dmi.max_lag(),
                                           bb.max_lag(), spread.max_lag(), spec.warmup()});
    std::int32_t cap = 1;
    while (cap <= max_lag) cap *= 2;
    pos.assign(static_cast<std::size_t>(cap), 0);
    run = 0;
    missing = 0;
    seen = false;
    contiguous = true;
  }
  void restart() {
    rvol.reset();
    volume.reset();
    rsi.reset();
    atr.reset();
    dmi.reset();
    bb.reset();
    spread.reset();
    run = 0;
    contiguous = true;
  }
  /// Row position of the k-th present bar back from the newest (k < run).
  std::int32_t at(std::int32_t k) const {
    return contiguous ? newest - k : pos[static_cast<std::size_t>(run - 1 - k) & (pos.size() - 1)];
  }
};

/// History accessor over a row after a skipped gap: lag k is the k-th present bar back since the restart, read through
/// the ring of positions (a copy of the bookkeeping, so that it stays in registers while the states step).
struct StatesHist {
  const float* hi;
  const float* lo;
  const float* cl;
  const float* qv;
  const std::int32_t* pos;  ///< the ring
  std::int32_t mask;        ///< ring size - 1
  std::int32_t i;           ///< the current bar's index since the restart
  std::int32_t at(std::int32_t k) const { return pos[(i - k) & mask]; }
  float high(std::int32_t k) const { return hi[at(k)]; }
  float low(std::int32_t k) const { return lo[at(k)]; }
  float close(std::int32_t k) const { return cl[at(k)]; }
  float qvol(std::int32_t k) const { return qv[at(k)]; }
};

/// Every symbol's states after bars [0, t), and the bar t-1 each of them consumed last (to notice a rewrite).
struct CarrySlot {
  std::int32_t t = -1;  ///< -1: empty
  std::vector<SymbolStates> states;
  std::vector<std::array<float, 4>> last;  ///< bar t-1 of each symbol (high, low, close, volume) when it was replayed
};

/// What FeatureCarry holds: the states at the previous call's first bar and after its last bar (a repeated bar starts
/// from the first, the next bar from the second), for the panel whose columns are named here.
struct CarryImpl {
  FeatureSpec spec;
  const float* high = nullptr;
  const float* low = nullptr;
  const float* close = nullptr;
  const float* volume = nullptr;
  std::int64_t stride = 0;
  std::int32_t n_symbols = 0;
  CarrySlot slot[2];
  std::int64_t replayed = 0;
};

}  // namespace detail

FeatureCarry::FeatureCarry() : impl_(std::make_unique<detail::CarryImpl>()) {}
FeatureCarry::~FeatureCarry() = default;
FeatureCarry::FeatureCarry(FeatureCarry&&) noexcept = default;
FeatureCarry& FeatureCarry::operator=(FeatureCarry&&) noexcept = default;
void FeatureCarry::clear() { impl_ = std::make_unique<detail::CarryImpl>(); }
std::int64_t FeatureCarry::bars_replayed() const { return impl_ ? impl_->replayed : 0; }

namespace {

/// A bar the indicators can use: finite high, low, close and volume, positive low and close (their logs are taken).
bool bar_present(float h, float l, float c, float v) {
  return std::isfinite(h) && std::isfinite(l) && std::isfinite(c) && std::isfinite(v) && c > 0.0F && l > 0.0F;
}

/// The outputs of one bar's indicator step.
struct BarIndicators {
  double sigma = 0, volume_sum = 0, rsi = 0, atr = 0;
  double dmi[3] = {};  // +DI, -DI, ADX
  double bb[5] = {};   // middle, upper, lower, width, %b
  double spread = 0;
};

/// Feeds bar t to every state under the spec's gap policy (the rule every driver applies, cpu/kernels/gaps.hpp): a
/// missing bar is counted; the next present bar restarts the states when the gap is one the policy does not bridge,
/// else they carry over it. Returns false for a missing bar.
bool states_step(detail::SymbolStates& st, const float* hi, const float* lo, const float* cl, const float* qv,
                 std::int32_t t, BarIndicators& o) {
  if (!bar_present(hi[t], lo[t], cl[t], qv[t])) {
    ++st.missing;
    return false;
  }
  if (st.seen && st.missing > 0) {
    if (st.gaps.resets(st.missing)) st.restart();
    else st.contiguous = false;  // lags now reach over the skipped gap: through the ring
  }
  st.missing = 0;
  st.newest = t;
  st.seen = true;
  st.pos[static_cast<std::size_t>(st.run) & (st.pos.size() - 1)] = t;
  ++st.run;
  // The common case (no gap skipped since the restart) reads lags directly; after a skipped gap, through the ring.
  const auto step_all = [&](const auto& h) {
    st.rvol.step(h, &o.sigma);
    double vol_out[2];
    st.volume.step(h, vol_out);  // the qvol column is the base volume here
    o.volume_sum = vol_out[0];
    st.rsi.step(h, &o.rsi);
    st.atr.step(h, &o.atr);
    st.dmi.step(h, o.dmi);
    st.bb.step(h, o.bb);
    st.spread.step(h, &o.spread);
  };
  if (st.contiguous) step_all(kernels::RowHist{hi, lo, cl, qv, t});
  else step_all(detail::StatesHist{hi, lo, cl, qv, st.pos.data(), static_cast<std::int32_t>(st.pos.size()) - 1, st.run - 1});
  return true;
}

/// Where the target of each bar lies: the bar `horizon` steps ahead, where a present bar is a step, a gap the policy
/// bridges takes no time and a gap it does not bridge passes at its calendar length (so under reset-after:0 the target
/// is bar t+H, as it always was, and under skip the H-th present bar ahead: the target on the compressed row). A walker
/// from bar t, O(horizon + gaps crossed) per bar; a gap's extent is found once.
class TargetWalker {
 public:
  TargetWalker(const float* hi, const float* lo, const float* cl, const float* qv, std::int32_t n, kernels::GapPolicy gaps)
      : hi_(hi), lo_(lo), cl_(cl), qv_(qv), n_(n), gaps_(gaps) {}
  /// The target bar of present bar t, or -1 when it is missing or beyond the row. Calls come with increasing t.
  std::int32_t target(std::int32_t t, std::int32_t horizon) {
    // The common case, bars t+1 .. t+H all present: bar t+H under every policy. Bars before known_ are known present
    // (each bar is looked at once over the calls, and never past t+H).
    if (known_ <= t) known_ = t + 1;
    while (known_ <= t + horizon && known_ < n_ && present(known_)) ++known_;
    if (t + horizon < known_) return t + horizon;
    std::int32_t u = t;
    for (std::int32_t clock = 0; clock < horizon; ++clock) {
      if (u + 1 >= n_) return -1;
      if (present(u + 1)) {
        ++u;
        continue;
      }
      gap_at(u + 1);
      if (gaps_.resets(gap_end_ - gap_begin_)) {
        ++u;  // an unbridged gap passes bar by bar: a target inside it is missing
        continue;
      }
      if (gap_end_ >= n_) return -1;
      u = gap_end_;  // a bridged gap takes no time: its next bar is the next step
    }
    return std::isfinite(cl_[u]) && cl_[u] > 0.0F ? u : -1;  // the target needs a close only
  }

 private:
  bool present(std::int32_t u) const { return bar_present(hi_[u], lo_[u], cl_[u], qv_[u]); }
  /// The gap holding missing bar u: [gap_begin_, gap_end_).
  void gap_at(std::int32_t u) {
    if (u >= gap_begin_ && u < gap_end_) return;
    gap_begin_ = u;
    while (gap_begin_ > 0 && !present(gap_begin_ - 1)) --gap_begin_;
    gap_end_ = u;
    while (gap_end_ < n_ && !present(gap_end_)) ++gap_end_;
  }
  const float *hi_, *lo_, *cl_, *qv_;
  std::int32_t n_;
  kernels::GapPolicy gaps_;
  std::int32_t gap_begin_ = 0, gap_end_ = 0;
  std::int32_t known_ = 0;  // bars (last t asked for, known_) are present
};

}  // namespace

std::int32_t FeatureTable::window_begin(std::int32_t s, std::int32_t t, std::int32_t window) const {
  std::int32_t u = t, seen = 0;
  for (; u >= t_begin; --u)
    if (present[static_cast<std::size_t>(at(s, u))] && ++seen == window) return u;
  return -1;
}

std::int32_t features_window_first_bar(const kernels::PanelView& p, std::int32_t t_begin, std::int32_t t_end,
                                       std::int32_t window) {
  std::int32_t first = t_begin;
  for (std::int32_t s = 0; s < p.n_symbols; ++s) {
    const auto present = [&](std::int32_t u) {
      const auto i = p.at(s, u);
      return bar_present(p.high[i], p.low[i], p.close[i], p.volume[i]);
    };
    std::int32_t u = t_begin;
    while (u < t_end && !present(u)) ++u;
    if (u >= t_end) continue;  // no sample of this symbol in the range
    // The window of the symbol's first sample reaches furthest back (later windows start no earlier).
    for (std::int32_t seen = 0; u >= 0; --u)
      if (present(u) && ++seen == window) break;
    first = std::min(first, std::max(u, 0));
  }
  return first;
}

FeatureTable features_build(const kernels::PanelView& p, const FeatureSpec& spec, std::int32_t t_begin, std::int32_t t_end,
                            FeatureCarry* carry) {
  spec.validate();
  if (t_end < 0) t_end = p.n_bars;
  if (t_begin < 0 || t_begin > t_end || t_end > p.n_bars)
    throw std::invalid_argument("features_build: bar range [" + std::to_string(t_begin) + ", " + std::to_string(t_end) +
                                ") is not inside the panel's " + std::to_string(p.n_bars) + " bars");
  FeatureTable tab;
  tab.spec = spec;
  tab.n_symbols = p.n_symbols;
  tab.t_begin = t_begin;
  tab.n_bars = t_end - t_begin;
  tab.n_features = spec.n_features();
  const auto cells = static_cast<std::size_t>(tab.n_symbols) * static_cast<std::size_t>(tab.n_bars);
  tab.x.assign(cells * static_cast<std::size_t>(tab.n_features), kNaN);
  tab.forward.assign(cells, kNaN);
  tab.scale.assign(cells, kNaN);
  tab.present.assign(cells, 0);
  const std::int32_t n_lags = static_cast<std::int32_t>(spec.return_lags.size());
  const std::int32_t warm = spec.warmup();
  const double sqrt_h = std::sqrt(static_cast<double>(spec.horizon));

  // A carry is reused only for the same panel columns and spec, from its latest slot at or before t_begin; each symbol
  // also checks that the last bar that slot consumed is unchanged (else that symbol alone starts over from bar 0).
  detail::CarryImpl* cy = carry ? carry->impl_.get() : nullptr;
  if (carry && !cy) {
    carry->impl_ = std::make_unique<detail::CarryImpl>();
    cy = carry->impl_.get();
  }
  int base = 0;
  if (cy) {
    const bool same = cy->spec == spec && cy->high == p.high && cy->low == p.low && cy->close == p.close &&
                      cy->volume == p.volume && cy->stride == p.stride && cy->n_symbols == p.n_symbols;
    if (!same) {
      cy->spec = spec;
      cy->high = p.high;
      cy->low = p.low;
      cy->close = p.close;
      cy->volume = p.volume;
      cy->stride = p.stride;
      cy->n_symbols = p.n_symbols;
      for (auto& sl : cy->slot) {
        sl.t = -1;
        sl.states.assign(static_cast<std::size_t>(p.n_symbols), detail::SymbolStates{});
        sl.last.assign(static_cast<std::size_t>(p.n_symbols), {});
      }
    }
    auto usable = [&](int i) { return cy->slot[i].t >= 0 && cy->slot[i].t <= t_begin; };
    base = usable(1) && (!usable(0) || cy->slot[1].t > cy->slot[0].t) ? 1 : 0;
  }
  detail::CarrySlot* from = cy ? &cy->slot[base] : nullptr;
  detail::CarrySlot* to = cy ? &cy->slot[1 - base] : nullptr;
  const bool reuse = from && from->t >= 0 && from->t <= t_begin;
  std::atomic<std::int64_t> replayed{0};

  qtos::parallel_for(std::int32_t{0}, p.n_symbols, [&](std::int32_t s) {
    const float* c = p.close + p.at(s, 0);
    const float* hi = p.high + p.at(s, 0);
    const float* lo = p.low + p.at(s, 0);
    const float* vol = p.volume + p.at(s, 0);
    TargetWalker targets(hi, lo, c, vol, p.n_bars, spec.gaps);
    auto bar_bits = [&](std::int32_t u) {
      return u >= 0 ? std::array<float, 4>{hi[u], lo[u], c[u], vol[u]} : std::array<float, 4>{};
    };
    const auto si = static_cast<std::size_t>(s);
    // With a carry the replay runs in place on the carried states, then one copy goes on through the emitted bars.
    detail::SymbolStates local;
    detail::SymbolStates& kept = from ? from->states[si] : local;
    std::int32_t t0 = 0;
    if (reuse) {
      const auto now = bar_bits(from->t - 1);
      if (std::memcmp(now.data(), from->last[si].data(), sizeof(now)) == 0) t0 = from->t;
    }
    if (t0 == 0) kept.init(spec);
    BarIndicators o;
    const std::int32_t n_own = n_lags + 3 + detail::kIndicatorFeatures;  // every column but the ranks
    std::array<double, 64> x_small;
    std::vector<double> x_big(n_own > 64 ? static_cast<std::size_t>(n_own) : 0U);
    double* x = n_own > 64 ? x_big.data() : x_small.data();
    // The states always start at bar 0: bars before t_begin are replayed, not skipped.
    for (std::int32_t t = t0; t < t_begin; ++t) states_step(kept, hi, lo, c, vol, t, o);
    replayed.fetch_add(t_end - t0, std::memory_order_relaxed);
    if (from) {
      from->last[si] = bar_bits(t_begin - 1);
      to->states[si] = kept;
      to->last[si] = bar_bits(t_end - 1);
    }
    detail::SymbolStates& st = to ? to->states[si] : local;
    for (std::int32_t t = t_begin; t < t_end; ++t) {
      // Defined once warmup() bars before t were consumed since the last restart (so every lag and window lies in
      // the bars the states have seen: under skip the present bars, under reset-after:N one run the policy bridges).
      if (!states_step(st, hi, lo, c, vol, t, o)) continue;
      tab.present[static_cast<std::size_t>(tab.at(s, t))] = 1;
      if (st.run <= warm) continue;
      const double sigma = std::max(o.sigma, 1e-8);
      const double close = c[t];
      for (std::int32_t k = 0; k < n_lags; ++k) {
        const std::int32_t lag = spec.return_lags[static_cast<std::size_t>(k)];
        x[k] = std::log(close / c[st.at(lag)]) / (sigma * std::sqrt(double(lag)));
      }
      double* ind = x + n_lags;
      ind[0] = std::log(sigma);
      ind[1] = std::log((vol[t] + 1.0) / (o.volume_sum / spec.volume_window + 1.0));
      const double range = (static_cast<double>(hi[t]) - lo[t]) / (close * sigma);
      ind[2] = range >= 0.0 ? std::log1p(range) : std::numeric_limits<double>::quiet_NaN();
      ind[3] = o.rsi / 100.0 - 0.5;
      ind[4] = std::log(std::max(o.atr / close, 1e-8));
      ind[5] = o.dmi[2] / 100.0;
      ind[6] = (o.dmi[0] - o.dmi[1]) / 100.0;
      ind[7] = o.bb[4] - 0.5;  // NaN when the bands coincide (a flat window)
      ind[8] = std::log(std::max(o.bb[3], 1e-8));
      ind[9] = std::log(o.spread + 1e-4);  // a 1 bp floor: the proxy is 0 on many bars
      bool ok = true;
      for (std::int32_t k = 0; k < n_own; ++k) ok = ok && std::isfinite(x[k]);
      if (!ok) continue;  // the whole row stays NaN
      float* row = tab.x.data() + tab.at(s, t) * tab.n_features;
      for (std::int32_t k = 0; k < n_own; ++k) row[k] = static_cast<float>(x[k]);
      tab.scale[static_cast<std::size_t>(tab.at(s, t))] = static_cast<float>(sigma * sqrt_h);
      // The target: the only read past bar t, kept out of the features.
      if (const std::int32_t u = targets.target(t, spec.horizon); u >= 0)
        tab.forward[static_cast<std::size_t>(tab.at(s, t))] = static_cast<float>(std::log(static_cast<double>(c[u]) / c[t]));
    }
  });
  if (cy) {
    from->t = t_begin;
    to->t = t_end;
    cy->replayed = replayed.load();
  }

  if (spec.cross_sectional_ranks) {
    const std::int32_t f_rank = n_lags + 3 + detail::kIndicatorFeatures;
    // One task per (bar, ranked column): inference asks for a single bar, whose two sorts then run side by side.
    qtos::parallel_for(std::int64_t{0}, 2 * static_cast<std::int64_t>(t_end - t_begin), [&](std::int64_t job) {
      const auto t = static_cast<std::int32_t>(t_begin + job / 2);
      const auto which = static_cast<std::int32_t>(job % 2);
      const std::int32_t f_src = which == 0 ? 0 : n_lags - 1;
      std::vector<std::pair<float, std::int32_t>> v;
      v.reserve(static_cast<std::size_t>(tab.n_symbols));
      for (std::int32_t s = 0; s < tab.n_symbols; ++s) {
        const float x = tab.row(s, t)[f_src];
        if (std::isfinite(x)) v.emplace_back(x, s);
      }
      std::sort(v.begin(), v.end());  // ties broken by symbol index: deterministic
      const auto m = v.size();
      for (std::size_t i = 0; i < m; ++i)
        tab.row(v[i].second, t)[f_rank + which] =
            m > 1 ? static_cast<float>(static_cast<double>(i) / static_cast<double>(m - 1) - 0.5) : 0.0F;
    });
  }
  return tab;
}

}  // namespace qtos::models
