// Population backtests: request checks, the backend entry point, and the serial double-precision reference with
// its trade lists (the TBB backend is in backtest_tbb.cpp, the feature bank in feature_bank.cpp, metrics in metrics.cpp).
#include "cpu/backtest/backtest.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/backtest/backtest_detail.hpp"

namespace qtos {

using detail::feature_plane;
using kernels::BacktestAccum;
using kernels::BacktestState;
using kernels::Genome;
using kernels::PanelView;
using kernels::StrategyFeature;

namespace {

template <class T>
struct PlaneReader {
  const T* base;
  std::int64_t plane_size;
  T operator()(std::int32_t p) const { return base[p * plane_size]; }
};

/// Runs one genome on one symbol with the shared step, evaluating the rules bar by bar (the reference form; T = double
/// in the serial reference and the trade lists). The gap policy of the feature bank decides which bars are stepped.
template <class T, class Sink>
BacktestAccum run_one(const BacktestRequest& r, const T* feats, const Genome& g, std::int32_t s, Sink& sink) {
  const PanelView& p = r.panel;
  BacktestState<T> st;
  st.init(T(r.costs.capital / p.n_symbols));
  const std::int64_t ps = r.features->plane_size;
  const T* spread = feats + feature_plane(StrategyFeature::spread) * ps;
  const auto valid_at = [&](std::int64_t at) {
    return kernels::backtest_bar_valid(p.open[at], p.high[at], p.low[at], p.close[at]);
  };
  kernels::BacktestGapCursor<T> gaps{r.features->gaps};
  const std::int32_t prev = detail::backtest_prev_valid(p, s, r.t_begin);
  gaps.start(prev, r.t_begin, prev >= 0 ? spread[p.at(s, prev)] : kernels::qnan<T>());
  const std::int32_t last = kernels::backtest_last_bar(r.features->gaps, detail::backtest_prev_valid(p, s, r.t_end),
                                                       r.t_end - 1);
  for (std::int32_t t = r.t_begin; t <= last; ++t) {
    const std::int64_t at = p.at(s, t);
    const bool valid = valid_at(at);
    if (!gaps.on_bar(valid)) continue;
    const PlaneReader<T> f{feats + at, ps};
    const T cl = T(p.close[at]);
    const std::uint32_t sig = kernels::signals_eval<T>(g, cl, f);
    st.step(g, r.costs, t, T(p.open[at]), T(p.high[at]), T(p.low[at]), cl, static_cast<std::int32_t>(sig),
            f(feature_plane(StrategyFeature::atr)), kernels::fill_slippage<T>(r.costs, gaps.fill_spread()), t == last, sink);
    if (valid) gaps.passed(spread[at]);
  }
  st.finish();
  return st.acc;
}

}  // namespace

std::int32_t detail::backtest_prev_valid(const PanelView& p, std::int32_t s, std::int32_t t) {
  for (std::int32_t u = t - 1; u >= 0; --u) {
    const std::int64_t at = p.at(s, u);
    if (kernels::backtest_bar_valid(p.open[at], p.high[at], p.low[at], p.close[at])) return u;
  }
  return -1;
}

BacktestRequest backtest_request_check(BacktestRequest r) {
  const PanelView& p = r.panel;
  if (p.n_symbols < 0 || p.n_bars < 0 || p.stride < p.n_bars)
    throw std::invalid_argument("backtest: malformed panel view (" + std::to_string(p.n_symbols) + " symbols, " +
                                std::to_string(p.n_bars) + " bars)");
  if (r.t_end < 0) r.t_end = p.n_bars;
  if (r.t_begin < 0 || r.t_begin > r.t_end || r.t_end > p.n_bars)
    throw std::invalid_argument("backtest window [" + std::to_string(r.t_begin) + ", " + std::to_string(r.t_end) +
                                ") is not inside the panel's " + std::to_string(p.n_bars) + " bars");
  if (r.features == nullptr || r.features->plane_size != p.n_symbols * p.stride ||
      r.features->f32.size() != static_cast<std::size_t>(r.features->plane_size) * kernels::kStrategyFeatureCount)
    throw std::invalid_argument("backtest: the feature bank does not belong to this panel (use strategy_features_compute)");
  const auto& c = r.costs;
  if (!(c.fee >= 0 && c.fee < 0.1) || !(c.slippage >= 0 && c.slippage < 0.1))
    throw std::invalid_argument("backtest costs: fee " + std::to_string(c.fee) + " and slippage " + std::to_string(c.slippage) +
                                " must be fractions in [0, 0.1)");
  if (!(c.slippage_spread >= 0 && c.slippage_spread <= 10))
    throw std::invalid_argument("backtest costs: slippage_spread " + std::to_string(c.slippage_spread) +
                                " must be a fraction of the spread proxy in [0, 10]");
  if (!(c.capital > 0) || !std::isfinite(c.capital) || !(c.bars_per_year > 0))
    throw std::invalid_argument("backtest costs: capital and bars_per_year must be positive");
  for (std::size_t i = 0; i < r.genomes.size(); ++i) {
    const Genome n = kernels::genome_normalize(r.genomes[i]);
    if (std::memcmp(&n, &r.genomes[i], sizeof(Genome)) != 0)
      throw std::invalid_argument("backtest: genome " + std::to_string(i) + " is not normalised (pass it through genome_normalize)");
  }
  return r;
}

BacktestResult BacktestBackend::run(const BacktestRequest& req) const {
  const BacktestRequest r = backtest_request_check(req);
  BacktestResult out;
  if (r.genomes.empty()) return out;
  if (r.panel.n_symbols == 0) {
    out.genome.assign(r.genomes.size(), BacktestAccum{});
    return out;
  }
  run_checked(r, out);
  if (!r.per_symbol) out.genome_symbol.clear();
  return out;
}

BacktestResult backtest_serial(const BacktestRequest& req) {
  const BacktestRequest r = backtest_request_check(req);
  if (r.features->f64.size() != r.features->f32.size())
    throw std::invalid_argument("backtest_serial: the feature bank has no double planes (strategy_features_compute(panel, true))");
  BacktestResult out;
  const std::size_t P = r.genomes.size(), S = static_cast<std::size_t>(r.panel.n_symbols);
  out.genome_symbol.assign(P * S, BacktestAccum{});
  kernels::NoTradeSink sink;
  for (std::size_t g = 0; g < P; ++g)
    for (std::size_t s = 0; s < S; ++s)
      out.genome_symbol[g * S + s] = run_one<double>(r, r.features->f64.data(), r.genomes[g], static_cast<std::int32_t>(s), sink);
  detail::backtest_merge_genomes(r, out);
  if (!r.per_symbol) out.genome_symbol.clear();
  return out;
}

std::vector<TradeRecord> backtest_trades(const BacktestRequest& req, std::size_t genome_index, BacktestAccum* accum_out) {
  const BacktestRequest r = backtest_request_check(req);
  if (genome_index >= r.genomes.size())
    throw std::invalid_argument("backtest_trades: genome index " + std::to_string(genome_index) + " is out of range (" +
                                std::to_string(r.genomes.size()) + " genomes)");
  if (r.features->f64.size() != r.features->f32.size())
    throw std::invalid_argument("backtest_trades: the feature bank has no double planes (strategy_features_compute(panel, true))");
  std::vector<TradeRecord> trades;
  BacktestAccum total;
  for (std::int32_t s = 0; s < r.panel.n_symbols; ++s) {
    auto sink = [&](const kernels::TradeEvent& e) { trades.push_back(TradeRecord{s, e}); };
    total.merge(run_one<double>(r, r.features->f64.data(), r.genomes[genome_index], s, sink));
  }
  if (accum_out != nullptr) *accum_out = total;
  return trades;
}

}  // namespace qtos
