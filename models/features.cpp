#include "models/features.hpp"
#include "models/json_fields.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include <boost/json.hpp>
#include <tbb/parallel_for.h>

#include "cpu/kernels/indicators.hpp"

namespace qtos::models {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr std::int32_t kIndicatorFeatures = 7;  // rsi, log_atr, adx, di_diff, bb_pctb, log_bb_width, log_spread

std::string lags_text(const std::vector<std::int32_t>& lags) {
  std::string s = "[";
  for (std::size_t i = 0; i < lags.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(lags[i]);
  }
  return s + "]";
}


}  // namespace

std::int32_t FeatureSpec::n_features() const {
  return static_cast<std::int32_t>(return_lags.size()) + 3 + kIndicatorFeatures + (cross_sectional_ranks ? 2 : 0);
}

std::vector<std::string> FeatureSpec::names() const {
  std::vector<std::string> n;
  for (auto k : return_lags) n.push_back("ret_" + std::to_string(k));
  n.insert(n.end(), {"log_vol", "volume_ratio", "range", "rsi", "log_atr", "adx", "di_diff", "bb_pctb", "log_bb_width",
                     "log_spread"});
  if (cross_sectional_ranks) {
    n.push_back("rank_ret_" + std::to_string(return_lags.front()));
    n.push_back("rank_ret_" + std::to_string(return_lags.back()));
  }
  return n;
}

std::int32_t FeatureSpec::warmup() const {
  const std::int32_t max_lag = return_lags.empty() ? 0 : *std::max_element(return_lags.begin(), return_lags.end());
  // Each state's lookback (docs/INDICATORS.md): RSI n, ATR n, ADX 2n-1, Bollinger n-1, spread n, rvol n, volume n-1.
  return std::max({max_lag, vol_window, volume_window - 1, rsi_period, atr_period, 2 * adx_period - 1, bbands_period - 1,
                   spread_window});
}

void FeatureSpec::validate() const {
  auto bad = [](const std::string& field, const std::string& what) {
    throw std::invalid_argument("feature spec: " + field + " " + what);
  };
  if (return_lags.empty()) bad("return_lags", "is empty (expected at least one lag)");
  for (auto k : return_lags)
    if (k < 1 || k > 10000) bad("return_lags", "contains " + std::to_string(k) + " (expected 1..10000)");
  if (!std::is_sorted(return_lags.begin(), return_lags.end())) bad("return_lags", lags_text(return_lags) + " is not ascending");
  if (vol_window < 2 || vol_window > 10000) bad("vol_window", "= " + std::to_string(vol_window) + " (expected 2..10000)");
  if (volume_window < 1 || volume_window > 10000)
    bad("volume_window", "= " + std::to_string(volume_window) + " (expected 1..10000)");
  auto period = [&](const char* field, std::int32_t v, std::int32_t lo, std::int32_t hi) {
    if (v < lo || v > hi)
      bad(field, "= " + std::to_string(v) + " (expected " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  };
  period("rsi_period", rsi_period, 1, 10000);
  period("atr_period", atr_period, 1, 10000);
  period("adx_period", adx_period, 1, 5000);
  period("bbands_period", bbands_period, 2, 10000);
  period("spread_window", spread_window, 1, 10000);
  if (horizon < 1 || horizon > 10000) bad("horizon", "= " + std::to_string(horizon) + " (expected 1..10000)");
  if (window < 1 || window > 4096) bad("window", "= " + std::to_string(window) + " (expected 1..4096)");
}

std::string FeatureSpec::differences(const FeatureSpec& o) const {
  std::ostringstream d;
  auto field = [&](const char* name, const std::string& a, const std::string& b) {
    if (a != b) d << (d.tellp() > 0 ? "; " : "") << name << " " << a << " vs " << b;
  };
  field("version", std::to_string(version), std::to_string(o.version));
  field("return_lags", lags_text(return_lags), lags_text(o.return_lags));
  field("vol_window", std::to_string(vol_window), std::to_string(o.vol_window));
  field("volume_window", std::to_string(volume_window), std::to_string(o.volume_window));
  field("rsi_period", std::to_string(rsi_period), std::to_string(o.rsi_period));
  field("atr_period", std::to_string(atr_period), std::to_string(o.atr_period));
  field("adx_period", std::to_string(adx_period), std::to_string(o.adx_period));
  field("bbands_period", std::to_string(bbands_period), std::to_string(o.bbands_period));
  field("spread_window", std::to_string(spread_window), std::to_string(o.spread_window));
  field("cross_sectional_ranks", cross_sectional_ranks ? "true" : "false", o.cross_sectional_ranks ? "true" : "false");
  field("horizon", std::to_string(horizon), std::to_string(o.horizon));
  field("window", std::to_string(window), std::to_string(o.window));
  return d.str();
}

std::string FeatureSpec::to_json() const {
  boost::json::object o;
  o["version"] = version;
  boost::json::array lags;
  for (auto k : return_lags) lags.emplace_back(k);
  o["return_lags"] = std::move(lags);
  o["vol_window"] = vol_window;
  o["volume_window"] = volume_window;
  o["rsi_period"] = rsi_period;
  o["atr_period"] = atr_period;
  o["adx_period"] = adx_period;
  o["bbands_period"] = bbands_period;
  o["spread_window"] = spread_window;
  o["cross_sectional_ranks"] = cross_sectional_ranks;
  o["horizon"] = horizon;
  o["window"] = window;
  return boost::json::serialize(o);
}

FeatureSpec FeatureSpec::from_json(const std::string& text) {
  return from_json_object(json::parse_object(text, "feature spec JSON"));
}

FeatureSpec FeatureSpec::from_json_object(const boost::json::object& o) {
  constexpr std::string_view what = "feature spec JSON";
  const auto json_int = [&](const char* key) { return static_cast<std::int32_t>(json::field_int(o, key, what)); };
  FeatureSpec s;
  s.version = json_int("version");
  s.return_lags.clear();
  for (const auto& k : json::field_array(o, "return_lags", what)) {
    if (!k.is_int64()) throw std::invalid_argument("feature spec JSON: 'return_lags' holds a non-integer");
    s.return_lags.push_back(static_cast<std::int32_t>(k.as_int64()));
  }
  s.vol_window = json_int("vol_window");
  s.volume_window = json_int("volume_window");
  // Version 1 specs had no indicator features: they parse (with today's periods) so that loading an old model fails
  // on the version difference, with the usual message, rather than on a missing field.
  if (s.version >= 2) {
    s.rsi_period = json_int("rsi_period");
    s.atr_period = json_int("atr_period");
    s.adx_period = json_int("adx_period");
    s.bbands_period = json_int("bbands_period");
    s.spread_window = json_int("spread_window");
  }
  s.cross_sectional_ranks = json::field_bool(o, "cross_sectional_ranks", what);
  s.horizon = json_int("horizon");
  s.window = json_int("window");
  return s;
}

namespace detail {

/// One symbol's indicator states (double, as in the strategy feature bank) and the length of its gap-free run.
struct SymbolStates {
  kernels::RvolState<double> rvol;            ///< sigma: sample std of the last vol_window 1-bar log returns
  kernels::DollarVolumeState<double> volume;  ///< fed the base volume: output 0 is the window's sum
  kernels::RsiState<double> rsi;
  kernels::AtrState<double> atr;
  kernels::DmiState<double> dmi;
  kernels::BbandsState<double> bb;
  kernels::SpreadState<double> spread;
  std::int32_t run = 0;  ///< consecutive present bars consumed, the last one included

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
    run = 0;
  }
  void reset() {
    rvol.reset();
    volume.reset();
    rsi.reset();
    atr.reset();
    dmi.reset();
    bb.reset();
    spread.reset();
    run = 0;
  }
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

/// Feeds bar t to every state (a missing bar resets them all: they restart after the gap, as docs/INDICATORS.md says).
/// Returns false for a missing bar.
bool states_step(detail::SymbolStates& st, const kernels::RowHist& h, BarIndicators& o) {
  const auto t = h.t;
  if (!bar_present(h.hi[t], h.lo[t], h.cl[t], h.qv[t])) {
    st.reset();
    return false;
  }
  st.rvol.step(h, &o.sigma);
  double vol_out[2];
  st.volume.step(h, vol_out);  // RowHist's qvol column is the base volume here
  o.volume_sum = vol_out[0];
  st.rsi.step(h, &o.rsi);
  st.atr.step(h, &o.atr);
  st.dmi.step(h, o.dmi);
  st.bb.step(h, o.bb);
  st.spread.step(h, &o.spread);
  ++st.run;
  return true;
}

}  // namespace

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

  tbb::parallel_for(std::int32_t{0}, p.n_symbols, [&](std::int32_t s) {
    const float* c = p.close + p.at(s, 0);
    const float* hi = p.high + p.at(s, 0);
    const float* lo = p.low + p.at(s, 0);
    const float* vol = p.volume + p.at(s, 0);
    const kernels::RowHist row_hist{hi, lo, c, vol, 0};
    auto price_ok = [&](std::int32_t t) { return std::isfinite(c[t]) && c[t] > 0.0F; };
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
    const std::int32_t n_own = n_lags + 3 + kIndicatorFeatures;  // every column but the ranks
    std::array<double, 64> x_small;
    std::vector<double> x_big(n_own > 64 ? static_cast<std::size_t>(n_own) : 0U);
    double* x = n_own > 64 ? x_big.data() : x_small.data();
    // The states always start at bar 0: bars before t_begin are replayed, not skipped.
    for (std::int32_t t = t0; t < t_begin; ++t) {
      auto h = row_hist;
      h.t = t;
      states_step(kept, h, o);
    }
    replayed.fetch_add(t_end - t0, std::memory_order_relaxed);
    if (from) {
      from->last[si] = bar_bits(t_begin - 1);
      to->states[si] = kept;
      to->last[si] = bar_bits(t_end - 1);
    }
    detail::SymbolStates& st = to ? to->states[si] : local;
    for (std::int32_t t = t_begin; t < t_end; ++t) {
      auto h = row_hist;
      h.t = t;
      // Defined once bars t - warmup .. t are all present (so every lag and window lies inside this gap-free run).
      if (!states_step(st, h, o) || st.run <= warm) continue;
      const double sigma = std::max(o.sigma, 1e-8);
      const double close = c[t];
      for (std::int32_t k = 0; k < n_lags; ++k) {
        const std::int32_t lag = spec.return_lags[static_cast<std::size_t>(k)];
        x[k] = std::log(close / c[t - lag]) / (sigma * std::sqrt(double(lag)));
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
      if (t + spec.horizon < p.n_bars && price_ok(t + spec.horizon))
        tab.forward[static_cast<std::size_t>(tab.at(s, t))] =
            static_cast<float>(std::log(static_cast<double>(c[t + spec.horizon]) / c[t]));
    }
  });
  if (cy) {
    from->t = t_begin;
    to->t = t_end;
    cy->replayed = replayed.load();
  }

  if (spec.cross_sectional_ranks) {
    const std::int32_t f_rank = n_lags + 3 + kIndicatorFeatures;
    // One task per (bar, ranked column): inference asks for a single bar, whose two sorts then run side by side.
    tbb::parallel_for(std::int64_t{0}, 2 * static_cast<std::int64_t>(t_end - t_begin), [&](std::int64_t job) {
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

std::vector<SampleRef> samples_select(const FeatureTable& tab, std::int32_t t_begin, std::int32_t t_end, bool need_target,
                                      std::int32_t window) {
  if (window < 0) window = tab.spec.window;
  if (window < 1 || window > tab.spec.window)
    throw std::invalid_argument("samples_select: window " + std::to_string(window) + " (expected 1.." +
                                std::to_string(tab.spec.window) + ")");
  std::vector<SampleRef> out;
  const std::int32_t lo = std::max(t_begin, tab.t_begin + window - 1);
  const std::int32_t hi = std::min(t_end, tab.t_begin + tab.n_bars);
  for (std::int32_t t = lo; t < hi; ++t) {
    for (std::int32_t s = 0; s < tab.n_symbols; ++s) {
      if (need_target && !std::isfinite(tab.forward[static_cast<std::size_t>(tab.at(s, t))])) continue;
      bool ok = true;
      for (std::int32_t w = 0; w < window && ok; ++w) {
        const float* r = tab.row(s, t - w);
        for (std::int32_t f = 0; f < tab.n_features; ++f)
          if (!std::isfinite(r[f])) {
            ok = false;
            break;
          }
      }
      if (ok) out.push_back({s, t});
    }
  }
  return out;
}

TimeSplit split_by_time(const FeatureTable& tab, double train_fraction, double val_fraction) {
  if (!(train_fraction > 0.0) || !(val_fraction > 0.0) || train_fraction + val_fraction >= 1.0)
    throw std::invalid_argument("split_by_time: fractions train " + std::to_string(train_fraction) + ", validation " +
                                std::to_string(val_fraction) + " must be positive and sum to less than 1");
  const auto all = samples_select(tab, tab.t_begin, tab.t_begin + tab.n_bars, true);
  if (all.empty()) throw std::invalid_argument("split_by_time: no bar has both complete features and a target");
  const std::int32_t first = all.front().t, last = all.back().t;
  TimeSplit sp;
  sp.purge = tab.spec.horizon;
  const std::int32_t usable = last - first + 1 - 2 * sp.purge;
  const auto n_train = static_cast<std::int32_t>(usable * train_fraction);
  const auto n_val = static_cast<std::int32_t>(usable * val_fraction);
  const std::int32_t n_test = usable - n_train - n_val;
  if (n_train < 1 || n_val < 1 || n_test < 1)
    throw std::invalid_argument("split_by_time: " + std::to_string(last - first + 1) +
                                " bars with targets are too few for train/validation/test periods with a purge of " +
                                std::to_string(sp.purge) + " bars");
  sp.train_begin = first;
  sp.train_end = first + n_train;
  sp.val_begin = sp.train_end + sp.purge;
  sp.val_end = sp.val_begin + n_val;
  sp.test_begin = sp.val_end + sp.purge;
  sp.test_end = last + 1;
  return sp;
}

Normalizer Normalizer::fit(const FeatureTable& tab, std::span<const SampleRef> samples) {
  const auto nf = static_cast<std::size_t>(tab.n_features);
  std::vector<double> sum(nf, 0.0), sumsq(nf, 0.0);
  for (const auto& sr : samples) {
    const float* r = tab.row(sr.s, sr.t);
    for (std::size_t f = 0; f < nf; ++f) {
      sum[f] += r[f];
      sumsq[f] += static_cast<double>(r[f]) * r[f];
    }
  }
  Normalizer nz;
  nz.mean.resize(nf);
  nz.inv_std.resize(nf);
  const double n = std::max<double>(1.0, static_cast<double>(samples.size()));
  for (std::size_t f = 0; f < nf; ++f) {
    const double m = sum[f] / n;
    const double sd = std::sqrt(std::max(0.0, sumsq[f] / n - m * m));
    nz.mean[f] = static_cast<float>(m);
    nz.inv_std[f] = sd > 1e-12 ? static_cast<float>(1.0 / sd) : 0.0F;
  }
  return nz;
}

void Normalizer::apply(const float* in, float* out) const {
  for (std::size_t f = 0; f < mean.size(); ++f) out[f] = std::clamp((in[f] - mean[f]) * inv_std[f], -clip, clip);
}

void windows_gather(const FeatureTable& tab, const Normalizer& norm, std::span<const SampleRef> samples,
                    std::int32_t window, std::span<float> out) {
  const auto nf = static_cast<std::size_t>(tab.n_features);
  const auto w = static_cast<std::size_t>(window);
  if (out.size() != samples.size() * w * nf || norm.mean.size() != nf || window > tab.spec.window)
    throw std::invalid_argument("windows_gather: output of " + std::to_string(out.size()) + " floats does not fit " +
                                std::to_string(samples.size()) + " samples x " + std::to_string(window) + " bars x " +
                                std::to_string(nf) + " features");
  for (const auto& sr : samples)
    if (sr.s < 0 || sr.s >= tab.n_symbols || sr.t - window + 1 < tab.t_begin || sr.t >= tab.t_begin + tab.n_bars)
      throw std::invalid_argument("windows_gather: sample (symbol " + std::to_string(sr.s) + ", bar " + std::to_string(sr.t) +
                                  ") with a window of " + std::to_string(window) + " bars is not inside the table's bars [" +
                                  std::to_string(tab.t_begin) + ", " + std::to_string(tab.t_begin + tab.n_bars) + ")");
  for (std::size_t i = 0; i < samples.size(); ++i)
    for (std::size_t k = 0; k < w; ++k)
      norm.apply(tab.row(samples[i].s, samples[i].t - window + 1 + static_cast<std::int32_t>(k)), out.data() + (i * w + k) * nf);
}

}  // namespace qtos::models
