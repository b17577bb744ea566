// MarketPanel bar -> MarketBarClosed, with the panel's quote volume and trade count.
#include "runtime/data/bar_event.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace qtos {

std::optional<MarketBarClosed> market_bar_from_panel(const MarketPanel& panel, std::int32_t s, std::int32_t t) {
  if (s < 0 || s >= panel.n_symbols() || t < 0 || t >= panel.n_bars())
    throw std::invalid_argument("market_bar_from_panel: symbol " + std::to_string(s) + ", bar " + std::to_string(t) +
                                " is outside the panel of " + std::to_string(panel.n_symbols()) + " symbols x " +
                                std::to_string(panel.n_bars()) + " bars");
  if (!panel.has_bar(s, t)) return std::nullopt;
  const auto at = [&](Column c) { return static_cast<double>(panel.series(c, s)[static_cast<std::size_t>(t)]); };
  MarketBarClosed b;
  b.symbol = panel.symbols()[static_cast<std::size_t>(s)];
  b.interval_s = static_cast<std::int32_t>(panel.interval_ms() / 1000);
  b.open_time = panel.time_ms(t) * kNsPerMillisecond;
  b.open = at(Column::open);
  b.high = at(Column::high);
  b.low = at(Column::low);
  b.close = at(Column::close);
  b.volume = at(Column::volume);
  const double qv = at(Column::quote_volume), n = at(Column::trades);
  // A panel always has both columns; a negative or non-finite cell is not a measurement, so it stays unknown.
  b.quote_volume = std::isfinite(qv) && qv >= 0 ? qv : kUnknownQuoteVolume;
  b.trades = std::isfinite(n) && n >= 0 ? std::llround(n) : kUnknownTrades;
  return b;
}

}  // namespace qtos
