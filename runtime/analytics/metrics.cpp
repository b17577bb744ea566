#include "runtime/analytics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

namespace qtos {
namespace {

constexpr double kNsPerYear = 365.25 * 86400.0 * 1e9;
constexpr TimeNs kNsPerDay = 86'400'000'000'000;

/// The start of the UTC day holding `ts` (floor, also for times before 1970).
TimeNs day_start(TimeNs ts) {
  TimeNs d = ts / kNsPerDay;
  if (ts % kNsPerDay < 0) --d;
  return d * kNsPerDay;
}

std::vector<StrategyMetrics> metrics_grouped(std::span<const ClosedTrade> trades, TimeNs span_ns, bool by_symbol,
                                             int models /* -1: rule strategies, 1: models */) {
  std::map<std::string, std::vector<ClosedTrade>> groups;  // ordered: the tables list groups by id
  for (const auto& t : trades) {
    if (by_symbol) {
      groups[t.symbol.str()].push_back(t);
      continue;
    }
    const bool model = strategy_is_model(t.strategy.view());
    if ((models > 0) == model) groups[t.strategy.str()].push_back(t);
  }
  std::vector<StrategyMetrics> out;
  out.reserve(groups.size());
  for (const auto& [id, group] : groups) out.push_back(trade_metrics(id, group, span_ns));
  return out;
}

}  // namespace

std::vector<double> drawdown_series(std::span<const double> equity) {
  std::vector<double> out(equity.size(), 0.0);
  double peak = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < equity.size(); ++i) {
    if (equity[i] > peak) peak = equity[i];
    out[i] = peak > 0 ? (peak - equity[i]) / peak : 0.0;
  }
  return out;
}

double drawdown_max(std::span<const double> equity) { return drawdown_worst(equity).depth; }

DrawdownPeriod drawdown_worst(std::span<const double> equity) {
  DrawdownPeriod worst;
  double peak = -std::numeric_limits<double>::infinity();
  std::size_t peak_at = 0;
  for (std::size_t i = 0; i < equity.size(); ++i) {
    if (equity[i] >= peak) {
      // A new high (or a return to the old one) closes the worst period if it started at this peak value.
      if (worst.depth > 0 && worst.recovery == DrawdownPeriod::kNotRecovered && worst.peak == peak_at && equity[i] >= peak)
        worst.recovery = i;
      if (equity[i] > peak) peak_at = i;
      peak = equity[i];
      continue;
    }
    const double dd = peak > 0 ? (peak - equity[i]) / peak : 0.0;
    if (dd > worst.depth) {
      worst.depth = dd;
      worst.peak = peak_at;
      worst.trough = i;
      worst.recovery = DrawdownPeriod::kNotRecovered;
    }
  }
  return worst;
}

double sharpe_ratio(std::span<const double> returns, double periods_per_year) {
  const std::size_t n = returns.size();
  if (n < 2 || !(periods_per_year > 0)) return 0.0;
  double mean = 0;
  for (double r : returns) mean += r;
  mean /= static_cast<double>(n);
  double ss = 0;
  for (double r : returns) ss += (r - mean) * (r - mean);
  const double sd = std::sqrt(ss / static_cast<double>(n - 1));
  if (!(sd > 0)) return 0.0;
  return mean / sd * std::sqrt(periods_per_year);
}

bool strategy_is_model(std::string_view strategy_id) { return strategy_id.starts_with("model:"); }

StrategyMetrics trade_metrics(std::string id, std::span<const ClosedTrade> trades, TimeNs span_ns) {
  StrategyMetrics m;
  m.strategy_id = std::move(id);
  m.total_trades = static_cast<std::int64_t>(trades.size());
  if (trades.empty()) return m;
  const double n = static_cast<double>(trades.size());
  double wins = 0, pnl_sum = 0;
  double allocation = 0;
  std::vector<double> rets;
  rets.reserve(trades.size());
  for (const auto& t : trades) {
    if (t.pnl > 0) ++wins;
    pnl_sum += t.pnl;
    rets.push_back(t.ret);
    if (allocation == 0 && t.ret != 0 && std::isfinite(t.pnl / t.ret)) allocation = std::fabs(t.pnl / t.ret);
  }
  m.win_rate = wins / n;
  m.avg_profit = pnl_sum / n;
  if (span_ns > 0) m.sharpe_ratio = sharpe_ratio(rets, n / (static_cast<double>(span_ns) / kNsPerYear));
  double cum = 0, peak = 0;
  for (const auto& t : trades) {
    cum += t.pnl;
    if (cum > peak) peak = cum;
    const double base = allocation + peak;
    if (base > 0) m.max_drawdown = std::max(m.max_drawdown, (peak - cum) / base);
  }
  return m;
}

std::vector<StrategyMetrics> metrics_by_strategy(std::span<const ClosedTrade> trades, TimeNs span_ns) {
  return metrics_grouped(trades, span_ns, false, -1);
}

std::vector<StrategyMetrics> metrics_by_model(std::span<const ClosedTrade> trades, TimeNs span_ns) {
  return metrics_grouped(trades, span_ns, false, 1);
}

std::vector<StrategyMetrics> metrics_by_symbol(std::span<const ClosedTrade> trades, TimeNs span_ns) {
  return metrics_grouped(trades, span_ns, true, 0);
}

TimeNs metrics_span(std::span<const EquityPoint> curve, std::span<const ClosedTrade> trades) {
  if (curve.size() >= 2) return curve.back().ts - curve.front().ts;
  if (trades.empty()) return 0;
  TimeNs first = trades.front().entry_time, last = trades.front().exit_time;
  for (const auto& t : trades) {
    first = std::min(first, t.entry_time);
    last = std::max(last, t.exit_time);
  }
  return std::max<TimeNs>(0, last - first);
}

SystemMetrics system_metrics(std::span<const EquityPoint> curve, std::span<const ClosedTrade> trades, double initial_equity,
                             double bars_per_year) {
  SystemMetrics m;
  m.equity = curve.empty() ? initial_equity : curve.back().equity;
  m.total_return = initial_equity > 0 ? m.equity / initial_equity - 1.0 : 0.0;
  if (!curve.empty()) {
    const auto& last = curve.back();
    m.active_positions = last.open_positions;
    m.regime = last.regime;
    m.risk_mode = last.risk_mode;
    const TimeNs today = day_start(last.ts);
    double day_open = initial_equity;
    for (std::size_t i = curve.size(); i-- > 0;)
      if (curve[i].ts < today) {
        day_open = curve[i].equity;
        break;
      }
    m.daily_pnl = last.equity - day_open;
  }
  std::vector<double> values, rets;
  values.reserve(curve.size());
  rets.reserve(curve.size());
  for (std::size_t i = 0; i < curve.size(); ++i) {
    values.push_back(curve[i].equity);
    if (i > 0 && curve[i - 1].equity > 0) rets.push_back(curve[i].equity / curve[i - 1].equity - 1.0);
  }
  m.sharpe_ratio = sharpe_ratio(rets, bars_per_year);
  m.max_drawdown = drawdown_max(values);

  m.total_trades = static_cast<std::int64_t>(trades.size());
  double wins = 0, gross_win = 0, gross_loss = 0;
  for (const auto& t : trades) {
    if (t.pnl > 0) {
      ++wins;
      gross_win += t.pnl;
    } else if (t.pnl < 0) {
      gross_loss -= t.pnl;
    }
    m.fees += t.fees;
  }
  if (!trades.empty()) m.win_rate = wins / static_cast<double>(trades.size());
  if (gross_loss > 0) m.profit_factor = gross_win / gross_loss;
  else if (gross_win > 0) m.profit_factor = std::numeric_limits<double>::infinity();
  return m;
}

}  // namespace qtos
