#include "runtime/strategy/portfolio_returns.hpp"

#include <cmath>

namespace qtos {

namespace {

/// Reads feature planes of one (symbol, bar) cell as the step's scalar type.
struct PlaneAt {
  const float* base;
  std::int64_t plane_size;
  float operator()(std::int32_t p) const { return base[p * plane_size]; }
};

}  // namespace

std::vector<double> portfolio_bar_returns(const BacktestRequest& request, const kernels::Genome& genome) {
  const BacktestRequest r = backtest_request_check(request);
  const kernels::PanelView& p = r.panel;
  const auto bars = static_cast<std::size_t>(r.t_end - r.t_begin);
  std::vector<double> sum(bars, 0.0), count(bars, 0.0);
  const kernels::Genome g = kernels::genome_normalize(genome);
  const std::int64_t ps = r.features->plane_size;
  const float* feats = r.features->f32.data();
  const auto atr_plane = static_cast<std::int32_t>(kernels::StrategyFeature::atr);
  const auto spread_plane = static_cast<std::int32_t>(kernels::StrategyFeature::spread);
  kernels::NoTradeSink sink;
  for (std::int32_t s = 0; s < p.n_symbols; ++s) {
    kernels::BacktestState<float> st;
    st.init(static_cast<float>(r.costs.capital / p.n_symbols));
    for (std::int32_t t = r.t_begin; t < r.t_end; ++t) {
      const std::int64_t at = p.at(s, t);
      const PlaneAt f{feats + at, ps};
      const float cl = p.close[at];
      const std::uint32_t sig = std::isfinite(cl) ? kernels::signals_eval<float>(g, cl, f) : 0u;
      const float prev_spread = t > 0 ? feats[spread_plane * ps + at - 1] : kernels::qnan<float>();
      const double n0 = st.acc.n, s0 = st.acc.sum;
      st.step(g, r.costs, t, p.open[at], p.high[at], p.low[at], cl, static_cast<std::int32_t>(sig), f(atr_plane),
              kernels::fill_slippage<float>(r.costs, prev_spread), t == r.t_end - 1, sink);
      if (st.acc.n > n0) {  // a valid bar: its return is what the step added to the sum
        const auto i = static_cast<std::size_t>(t - r.t_begin);
        sum[i] += st.acc.sum - s0;
        count[i] += 1;
      }
    }
  }
  std::vector<double> out;
  out.reserve(bars);
  for (std::size_t i = 0; i < bars; ++i)
    if (count[i] > 0) out.push_back(sum[i] / count[i]);
  return out;
}

ReturnMoments return_moments(const std::vector<double>& r) {
  ReturnMoments m;
  m.n = static_cast<double>(r.size());
  if (r.empty()) return m;
  double mean = 0;
  for (double x : r) mean += x;
  mean /= m.n;
  double m2 = 0, m3 = 0, m4 = 0;
  for (double x : r) {
    const double d = x - mean, d2 = d * d;
    m2 += d2, m3 += d2 * d, m4 += d2 * d2;
  }
  m2 /= m.n, m3 /= m.n, m4 /= m.n;
  const double sd = std::sqrt(m2);
  if (sd < 1e-12) return m;
  m.sr_bar = mean / sd;
  m.skew = m3 / (sd * sd * sd);
  m.kurtosis = m4 / (m2 * m2);
  return m;
}

}  // namespace qtos
