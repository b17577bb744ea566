#pragma once
/// @file Bar intervals in the Binance spelling ("1m", "1h", "1d", ...).

#include <cstdint>
#include <string>
#include <string_view>

namespace qtos {

/// Milliseconds in one bar of `text` ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
/// "1d", "3d", "1w"). Throws std::invalid_argument naming `what`, the value and the allowed list otherwise
/// ("1M" is refused: months differ in length and a panel needs a fixed grid).
std::int64_t interval_parse_ms(std::string_view text, std::string_view what = "interval");

/// The Binance spelling of an interval in milliseconds; "<n>ms" when it has none.
std::string interval_name(std::int64_t ms);

/// Bars of this interval in a 365-day year (for annualising).
double interval_bars_per_year(std::int64_t ms);

}  // namespace qtos
