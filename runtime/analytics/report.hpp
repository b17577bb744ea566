#pragma once
/// @file The run report: one JSON document (metrics, per-strategy/model/symbol tables, orders by status, denials by
/// reason, rejections by venue code, the equity curve) and one self-contained HTML page (the same tables and five
/// kinds of chart drawn as inline SVG here: equity, drawdown, exposure, a risk-mode / trading-state / regime timeline
/// and the trades on the price of each given symbol). Pure functions: the same input gives the same bytes (fixed
/// number formatting, no wall time, ordered maps, deterministic downsampling). The page fetches nothing when viewed
/// (no script, no font, no link). Writing it to a file is the caller's, through atomic_write.

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/analytics/ledger.hpp"

namespace qtos {

/// The closes of one symbol, to draw its trades on.
struct PriceSeries {
  std::string symbol;          ///< exchange symbol (trades are matched on it)
  std::vector<TimeNs> times;   ///< bar close times, ascending
  std::vector<double> closes;  ///< close prices, one per time
};

/// Everything a report shows, read from a ledger and the run's data.
struct ReportInput {
  std::string title;                                         ///< page heading
  std::vector<std::pair<std::string, std::string>> run_info; ///< run attributes in display order (seed, data, stage, ...)
  std::vector<EquityPoint> equity;                           ///< the equity curve, in time order
  std::vector<ClosedTrade> trades;                           ///< closed trades, in exit order
  std::vector<OrderRecord> orders;                           ///< orders and denials (counts by status, reason, code)
  std::vector<PriceSeries> prices;                           ///< a few symbols to draw trades on
  double initial_equity = 0;                                 ///< account value at the start (quote)
  double bars_per_year = 0;                                  ///< annualises the per-bar Sharpe (525960 for 1 m bars)
};

/// One run of a stage comparison (`qtos backtest --compare-stages`): the baseline or one integration stage.
struct StageRun {
  std::string name;    ///< "BASELINE", "OBSERVATION", "PARTIAL", "COORDINATION", "AUTONOMY"
  ReportInput report;  ///< its equity curve, trades, orders, initial equity and bars per year (title, prices unused)
  /// Each subsystem's decisions by action (SubsystemDecided), and how many of them changed what the system did.
  std::map<std::string, std::map<std::string, std::uint64_t>> decisions;
  std::map<std::string, std::uint64_t> applied;  ///< per subsystem: decisions applied
};

/// The most points one chart (or the JSON equity curve) holds; longer series are downsampled.
inline constexpr std::size_t kReportMaxPoints = 2000;

/// Indices (ascending) of at most `max_points` (>= 4) points of `values` that keep its shape: the first and the last
/// point, and the minimum and the maximum of each of (max_points - 2) / 2 equal buckets of indices (the first
/// occurrence on ties; NaNs never chosen while a bucket has a number). All indices when the series is short enough.
std::vector<std::size_t> downsample_minmax(std::span<const double> values, std::size_t max_points = kReportMaxPoints);

/// The report as JSON text (one object; numbers as full-precision JSON numbers, a non-finite one as null).
std::string report_json(const ReportInput& input);

/// The report as one self-contained HTML page.
std::string report_html(const ReportInput& input);

/// The stage comparison as JSON: per run its metrics, denials by reason and subsystem decisions.
std::string stage_comparison_json(std::span<const StageRun> runs);

/// The stage comparison as one self-contained HTML page: equity and drawdown curves of every run on the same axes,
/// return, Sharpe, max drawdown, trades, denials by reason and each subsystem's decisions, side by side — what an
/// operator reads before moving a stage up.
std::string stage_comparison_html(const std::string& title, const std::vector<std::pair<std::string, std::string>>& run_info,
                                  std::span<const StageRun> runs);

}  // namespace qtos
