#pragma once
/// @file Performance metrics of a run, computed from the ledger's records (the equity curve and the closed trades):
/// the system's (equity, returns, Sharpe, drawdown, win rate, profit factor, fees) and per group of trades (strategy,
/// symbol, model). Pure functions of their inputs: the same records give the same numbers, bit for bit.
///
/// Definitions (risk-free rate 0; a standard deviation is the sample one, n - 1):
/// - System Sharpe: the per-bar returns r_i = e_i / e_{i-1} - 1 of the equity curve (consecutive points; a point whose
///   predecessor is <= 0 is skipped), mean(r) / sd(r) x sqrt(bars_per_year). 0 with fewer than 2 returns or sd = 0.
/// - Drawdown at a point: (running peak - equity) / running peak, >= 0, over the curve's own points (see
///   drawdown_series). System max drawdown: the largest of these, as a fraction (0.25 = 25 %).
/// - Group Sharpe: the trades' returns (ClosedTrade::ret, P&L over the capital committed at entry), in exit order,
///   mean / sd x sqrt(trades per year), trades per year = n / (span_ns in years of 365.25 days). 0 with fewer than 2
///   trades, sd = 0 or span_ns <= 0.
/// - Group max drawdown: over the cumulative P&L c_k (sum of pnl up to trade k in exit order, c_0 = 0) and its running
///   peak p_k (p_0 = 0), the largest (p_k - c_k) / (A + p_k), A the group's initial allocation: the capital committed
///   to its first trade with a non-zero return (|pnl / ret|). With no such trade (A = 0) the drawdown is taken relative
///   to the peak P&L alone, and is 0 while that peak is 0.
/// - Win rate: the fraction of trades with pnl > 0. Average profit: mean pnl (quote, after fees).
/// - Profit factor: the sum of winning pnl over minus the sum of losing pnl; +infinity with wins and no losses, 0 with
///   neither.
/// - Daily P&L: the last equity minus the equity at the last point of the previous UTC day (the initial equity when
///   the curve starts within the last point's day).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/analytics/ledger.hpp"

namespace qtos {

/// Metrics of one group of trades: a strategy, a model or a symbol (then `strategy_id` holds the symbol).
struct StrategyMetrics {
  std::string strategy_id;       ///< the strategy, model ("model:...") or symbol
  std::int64_t total_trades = 0; ///< closed trades
  double win_rate = 0;           ///< fraction of trades with pnl > 0, in [0, 1]
  double avg_profit = 0;         ///< mean pnl per trade (quote, after fees)
  double sharpe_ratio = 0;       ///< annualised Sharpe of the trade returns (see the file comment)
  double max_drawdown = 0;       ///< max drawdown of the cumulative P&L over peak + allocation, a fraction
};

/// Metrics of the whole account.
struct SystemMetrics {
  double equity = 0;                      ///< the last point's equity (the initial equity with no curve)
  double daily_pnl = 0;                   ///< P&L since the start of the last point's UTC day (quote)
  std::int64_t total_trades = 0;          ///< closed trades
  std::int32_t active_positions = 0;      ///< positions open at the last point
  Regime regime = Regime::unknown;        ///< the market regime at the last point
  RiskMode risk_mode = RiskMode::normal;  ///< the policy risk mode at the last point
  double total_return = 0;                ///< equity / initial equity - 1 (0 when the initial equity is <= 0)
  double sharpe_ratio = 0;                ///< annualised Sharpe of the per-bar equity returns
  double max_drawdown = 0;                ///< largest drawdown of the equity curve, a fraction
  double win_rate = 0;                    ///< fraction of trades with pnl > 0
  double profit_factor = 0;               ///< gross profit / gross loss (+infinity: wins and no losses)
  double fees = 0;                        ///< fees of the closed trades (quote)
};

/// The worst drawdown of a series: where it peaked, bottomed and recovered.
struct DrawdownPeriod {
  double depth = 0;            ///< (peak - trough) / peak, a fraction (0: no drawdown)
  std::size_t peak = 0;        ///< index of the peak before it
  std::size_t trough = 0;      ///< index of its lowest point
  std::size_t recovery = kNotRecovered;  ///< first index back at or above the peak, or kNotRecovered
  /// `recovery` of a drawdown still open at the end of the series.
  static constexpr std::size_t kNotRecovered = static_cast<std::size_t>(-1);
};

/// Per-point drawdown of `equity`: (running peak - value) / running peak, >= 0 (0 while the peak is <= 0).
std::vector<double> drawdown_series(std::span<const double> equity);
/// The largest value of drawdown_series(equity) (0 for an empty series).
double drawdown_max(std::span<const double> equity);
/// The deepest drawdown of `equity` with its peak, trough and recovery indices (depth 0 when there is none).
DrawdownPeriod drawdown_worst(std::span<const double> equity);

/// Annualised Sharpe of `returns`: mean / sample sd x sqrt(periods_per_year); 0 with fewer than 2 returns or sd = 0.
double sharpe_ratio(std::span<const double> returns, double periods_per_year);

/// True when `strategy_id` names a model ("model:..."), not a rule strategy.
bool strategy_is_model(std::string_view strategy_id);

/// Metrics of one group of trades (in exit order), named `id`, over a run of `span_ns` (see the file comment).
StrategyMetrics trade_metrics(std::string id, std::span<const ClosedTrade> trades, TimeNs span_ns);

/// Per rule strategy (ids not starting with "model:"), ordered by id.
std::vector<StrategyMetrics> metrics_by_strategy(std::span<const ClosedTrade> trades, TimeNs span_ns);
/// Per model (strategy ids starting with "model:"), ordered by id.
std::vector<StrategyMetrics> metrics_by_model(std::span<const ClosedTrade> trades, TimeNs span_ns);
/// Per symbol (strategy_id holds the symbol), ordered by symbol.
std::vector<StrategyMetrics> metrics_by_symbol(std::span<const ClosedTrade> trades, TimeNs span_ns);

/// The period the records cover: last minus first equity point time, or last exit minus first entry of the trades
/// when there is no curve (0 when neither spans time).
TimeNs metrics_span(std::span<const EquityPoint> curve, std::span<const ClosedTrade> trades);

/// The account's metrics from the equity curve (time order) and the closed trades; `bars_per_year` annualises the
/// per-bar Sharpe (e.g. 525960 for one-minute bars).
SystemMetrics system_metrics(std::span<const EquityPoint> curve, std::span<const ClosedTrade> trades, double initial_equity,
                             double bars_per_year);

}  // namespace qtos
