#pragma once
/// @file Writes a panel as Binance public-data kline CSV files (one per symbol and month), the inverse of import.

#include <cstddef>
#include <string>

#include "runtime/data/market_panel.hpp"

namespace qtos {

/// Export options.
struct ExportOptions {
  bool header = false;        ///< write the column-name line (Binance's own files have none before 2025)
  bool microseconds = false;  ///< open/close times in microseconds (Binance spot files since 2025)
};

/// Writes DIR/SYMBOL-INTERVAL-YYYY-MM.csv for every symbol and month with data; returns the number of files. Each file
/// is written atomically (runtime/util/atomic_file.hpp); the taker-buy fields are left empty (a panel does not hold
/// them). Throws WriteError naming the file and the reason (files written before it are complete, later ones are not
/// created), or std::runtime_error when the interval has no Binance name.
std::size_t kline_export(const MarketPanel& panel, const std::string& dir, const ExportOptions& opt = {});

}  // namespace qtos
