#pragma once
/// @file Summary of a panel for `qtos data info`: per-symbol bars, time range and gaps, and the market's shape (24/7,
/// or sessions that close) with the bars per year that annualise its returns.

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/data/market_panel.hpp"

namespace qtos {

/// One symbol's coverage.
struct SymbolInfo {
  std::string symbol;
  std::int64_t bars = 0;        ///< bars with data
  std::int64_t first_ms = 0;    ///< open time of the first bar with data
  std::int64_t last_ms = 0;     ///< open time of the last bar with data
  std::int64_t gap_bars = 0;    ///< missing bars between first and last
  std::int64_t gap_runs = 0;    ///< separate gaps
  std::int64_t longest_gap = 0; ///< longest gap in bars
  double last_close = 0.0;
  double avg_quote_volume = 0.0;  ///< mean quote (dollar) volume per bar
};

/// The trading calendar of a market as read from the bars that exist (UTC weekdays, each symbol between its first and
/// last bar).
struct MarketShape {
  bool continuous = true;           ///< 24/7: at least 97% of the grid's bars exist
  std::int32_t trading_days = 7;    ///< weekdays on which most bars exist (intervals up to a day)
  std::uint8_t day_mask = 0x7f;     ///< those days, bit d = day d of the week (0 Sunday)
  double bars_per_day = 0;          ///< bars on a typical trading day
  double bars_per_week = 0;         ///< bars that exist per week
  double grid_bars_per_week = 0;    ///< bars of the calendar grid per week
  double coverage = 1;              ///< fraction of the grid's bars that exist
  double bars_per_year = 0;         ///< annualisation: the grid's for a 24/7 market, else measured from the data
  bool measured = false;            ///< bars_per_year was measured (a market that closes)
  std::string text;                 ///< "24/7", or e.g. "weekdays, 5 x 6 bars (30 of 42 bars a week)"
  /// How bars_per_year was obtained, for the outputs: "8760 (24/7 calendar)" or "6248 (measured: ...)".
  std::string annualisation() const;
};

/// The whole panel's coverage.
struct PanelInfo {
  std::int32_t n_symbols = 0, n_bars = 0;
  std::int64_t interval_ms = 0, first_ms = 0, last_ms = 0;
  std::int64_t bars_with_data = 0, gap_bars = 0;
  std::vector<SymbolInfo> symbols;
  MarketShape shape;  ///< 24/7 or sessions, and the bars per year that annualise returns
};

/// Scans the panel once (parallel over symbols).
PanelInfo panel_info(const MarketPanel& panel);

/// The market's shape and its bars per year (one pass over the bars; an empty panel is 24/7 on the grid).
MarketShape market_shape(const MarketPanel& panel);

}  // namespace qtos
