// Backtest figures from accumulators: the metrics of one genome, the merge over symbols, exit reason names.
#include "cpu/backtest/backtest.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "cpu/backtest/backtest_detail.hpp"

namespace qtos {

using kernels::BacktestAccum;

BacktestMetrics backtest_metrics(const BacktestAccum& a, double bars_per_year) {
  BacktestMetrics m;
  m.observations = a.n;
  m.trades = a.trades;
  m.total_return = a.accounts > 0 ? a.ret_sum / a.accounts : 0.0;
  m.max_drawdown = a.max_dd;
  m.win_rate = a.trades > 0 ? a.wins / a.trades : 0.0;
  m.profit_factor = a.gross_loss > 0 ? a.gross_win / a.gross_loss
                                     : (a.gross_win > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  m.avg_trade = a.trades > 0 ? a.trade_ret_sum / a.trades : 0.0;
  m.exposure = a.n > 0 ? a.bars_in_pos / a.n : 0.0;
  if (a.n >= 2) {
    const double mean = a.sum / a.n;
    const double m2 = std::max(0.0, a.sum2 / a.n - mean * mean);
    const double sd = std::sqrt(m2);
    // A flat account has rounding-level variance; below 1e-12 per bar it is treated as no variance at all.
    if (sd > 1e-12) {
      m.sr_bar = mean / sd;
      m.sharpe = m.sr_bar * std::sqrt(bars_per_year);
      const double m3 = a.sum3 / a.n - 3 * mean * a.sum2 / a.n + 2 * mean * mean * mean;
      const double m4 = a.sum4 / a.n - 4 * mean * a.sum3 / a.n + 6 * mean * mean * a.sum2 / a.n - 3 * mean * mean * mean * mean;
      m.skew = m3 / (m2 * sd);
      m.kurtosis = m4 / (m2 * m2);
    }
    const double dd = std::sqrt(a.down2 / a.n);
    m.sortino = dd > 1e-12 ? mean / dd * std::sqrt(bars_per_year) : 0.0;
  }
  return m;
}

namespace detail {

void backtest_merge_genomes(const BacktestRequest& r, BacktestResult& out) {
  const std::size_t P = r.genomes.size(), S = static_cast<std::size_t>(r.panel.n_symbols);
  out.genome.assign(P, BacktestAccum{});
  for (std::size_t g = 0; g < P; ++g)
    for (std::size_t s = 0; s < S; ++s) out.genome[g].merge(out.genome_symbol[g * S + s]);
}

}  // namespace detail

const char* exit_reason_name(kernels::ExitReason r) { return enum_name(r).data(); }


}  // namespace qtos
