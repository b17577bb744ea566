#include "runtime/data/panel_info.hpp"
#include "cpu/util/parallel.hpp"
#include "runtime/data/interval.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

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
  info.shape = market_shape(panel);
  return info;
}

namespace {

constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::array<const char*, 7> kDayNames = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

/// Day of the week of a UTC time, 0 = Sunday (1970-01-01 was a Thursday).
int weekday(std::int64_t ms) {
  const std::int64_t days = ms >= 0 ? ms / kDayMs : -((-ms + kDayMs - 1) / kDayMs);
  return static_cast<int>(((days + 4) % 7 + 7) % 7);
}

std::string number(double x, const char* fmt) {
  char buf[48];
  std::snprintf(buf, sizeof buf, fmt, x);
  return buf;
}

}  // namespace

std::string MarketShape::annualisation() const {
  return number(bars_per_year, "%.0f") + (measured ? " bars a year (measured from the bars that exist)"
                                                   : " bars a year (the " + text + " calendar)");
}

MarketShape market_shape(const MarketPanel& panel) {
  MarketShape m;
  const std::int64_t interval = panel.interval_ms();
  const double grid_per_year = interval > 0 ? interval_bars_per_year(interval) : 0.0;
  m.grid_bars_per_week = grid_per_year * 7.0 / 365.0;
  m.bars_per_year = grid_per_year;
  m.bars_per_week = m.grid_bars_per_week;
  m.bars_per_day = m.grid_bars_per_week / 7.0;
  std::array<std::int64_t, 7> present{}, grid{}, days_with_bars{};
  std::int64_t n_present = 0, n_grid = 0;
  for (std::int32_t s = 0; s < panel.n_symbols(); ++s) {
    const std::int32_t first = panel.first_bar(s), last = panel.last_bar(s);
    if (last < 0) continue;
    const auto close = panel.series(Column::close, s);
    std::int64_t day = -1;
    for (std::int32_t t = first; t <= last; ++t) {
      const std::int64_t ms = panel.time_ms(t);
      const int d = weekday(ms);
      ++grid[static_cast<std::size_t>(d)];
      if (!std::isfinite(close[static_cast<std::size_t>(t)])) continue;
      ++present[static_cast<std::size_t>(d)];
      const std::int64_t this_day = ms / kDayMs;
      if (this_day != day) ++days_with_bars[static_cast<std::size_t>(d)], day = this_day;
    }
    n_present += last - first + 1 - std::count_if(close.begin() + first, close.begin() + last + 1,
                                                  [](float c) { return !std::isfinite(c); });
    n_grid += last - first + 1;
  }
  if (n_grid == 0 || interval <= 0) {
    m.text = "24/7";
    return m;
  }
  m.coverage = static_cast<double>(n_present) / static_cast<double>(n_grid);
  m.continuous = m.coverage >= 0.97;
  m.bars_per_week = m.grid_bars_per_week * m.coverage;
  if (m.continuous) {
    m.text = "24/7";
    return m;
  }
  m.measured = true;
  m.bars_per_year = grid_per_year * m.coverage;
  if (interval > kDayMs) {
    m.text = "irregular, " + number(100 * m.coverage, "%.0f") + "% of the grid's bars exist";
    return m;
  }
  m.day_mask = 0;
  m.trading_days = 0;
  std::int64_t on_days = 0, trading_day_count = 0;
  for (std::size_t d = 0; d < 7; ++d) {
    if (grid[d] == 0 || 2 * present[d] < grid[d]) continue;  // most of the day's bars missing: a closed day
    m.day_mask = static_cast<std::uint8_t>(m.day_mask | (1u << d));
    ++m.trading_days;
    on_days += present[d];
    trading_day_count += days_with_bars[d];
  }
  m.bars_per_day = trading_day_count > 0 ? static_cast<double>(on_days) / static_cast<double>(trading_day_count) : 0.0;
  std::string days;
  if (m.day_mask == 0x3e) {
    days = "weekdays";
  } else if (m.trading_days == 0) {
    days = "no regular trading day";
  } else {
    for (std::size_t d = 0; d < 7; ++d) {
      if (((m.day_mask >> d) & 1u) == 0) continue;
      if (!days.empty()) days.push_back(' ');
      days.append(kDayNames[d]);
    }
  }
  const double per_day = std::round(m.bars_per_day);
  m.text = days;
  m.text.append(", ").append(std::to_string(m.trading_days)).append(" x ").append(number(per_day, "%.0f"));
  m.text.append(per_day == 1 ? " bar (" : " bars (").append(number(m.bars_per_week, "%.0f")).append(" of ");
  m.text.append(number(m.grid_bars_per_week, "%.0f")).append(" bars a week)");
  return m;
}

}  // namespace qtos
