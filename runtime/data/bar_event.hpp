#pragma once
/// @file The one conversion from a MarketPanel bar to a MarketBarClosed event, so every panel-to-bus publisher
/// (replays, tests, benchmarks) carries the panel's quote volume and trade count rather than leaving them unknown.

#include <cstdint>
#include <optional>

#include "runtime/bus/events.hpp"
#include "runtime/data/market_panel.hpp"

namespace qtos {

/// Bar t of symbol s as an event (header left for the bus), or nullopt when the symbol has no bar there. Throws
/// std::invalid_argument naming the indices when s or t is outside the panel, or the symbol is too long for Symbol.
std::optional<MarketBarClosed> market_bar_from_panel(const MarketPanel& panel, std::int32_t s, std::int32_t t);

}  // namespace qtos
