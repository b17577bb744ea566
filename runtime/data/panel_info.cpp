#include "runtime/data/panel_info.hpp"
#include "cpu/util/parallel.hpp"

#include <cmath>

#include <tbb/parallel_for.h>

namespace qtos {

PanelInfo panel_info(const MarketPanel& panel) {
  PanelInfo info;
  info.n_symbols = panel.n_symbols();
  info.n_bars = panel.n_bars();
  info.interval_ms = panel.interval_ms();
  info.first_ms = panel.t0_ms();
  info.last_ms = panel.n_bars() ? panel.time_ms(panel.n_bars() - 1) : panel.t0_ms();
  info.symbols.resize(static_cast<std::size_t>(panel.n_symbols()));
  qtos::parallel_for(std::int32_t{0}, panel.n_symbols(), [&](std::int32_t s) {
    SymbolInfo& si = info.symbols[static_cast<std::size_t>(s)];
    si.symbol = panel.symbols()[static_cast<std::size_t>(s)];
    const std::int32_t first = panel.first_bar(s), last = panel.last_bar(s);
    if (last < 0) return;
    const auto close = panel.series(Column::close, s);
    const auto qv = panel.series(Column::quote_volume, s);
    si.first_ms = panel.time_ms(first);
    si.last_ms = panel.time_ms(last);
    si.last_close = close[static_cast<std::size_t>(last)];
    double vol_sum = 0.0;
    std::int64_t run = 0;
    for (std::int32_t t = first; t <= last; ++t) {
      if (std::isfinite(close[static_cast<std::size_t>(t)])) {
        ++si.bars;
        vol_sum += qv[static_cast<std::size_t>(t)];
        if (run > 0) {
          ++si.gap_runs;
          si.longest_gap = std::max(si.longest_gap, run);
          run = 0;
        }
      } else {
        ++si.gap_bars;
        ++run;
      }
    }
    si.avg_quote_volume = si.bars ? vol_sum / static_cast<double>(si.bars) : 0.0;
  });
  for (const auto& si : info.symbols) {
    info.bars_with_data += si.bars;
    info.gap_bars += si.gap_bars;
  }
  return info;
}

}  // namespace qtos
