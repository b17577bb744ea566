#pragma once
/// @file Summary of a panel for `qtos data info`: per-symbol bars, time range and gaps.

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

/// The whole panel's coverage.
struct PanelInfo {
  std::int32_t n_symbols = 0, n_bars = 0;
  std::int64_t interval_ms = 0, first_ms = 0, last_ms = 0;
  std::int64_t bars_with_data = 0, gap_bars = 0;
  std::vector<SymbolInfo> symbols;
};

/// Scans the panel once (parallel over symbols).
PanelInfo panel_info(const MarketPanel& panel);

}  // namespace qtos
