#pragma once
/// @file Helpers shared by `qtos evolve` and `qtos backtest-strategy`: symbol selection, costs and number cells.

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <limits>

#include <CLI/CLI.hpp>

#include "api/cli_checks.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/data/panel_info.hpp"
#include "cpu/kernels/strategy.hpp"

namespace qtos::api {

/// The panel restricted to a comma-separated list of symbols (all when `list` is empty); throws
/// std::invalid_argument naming an unknown symbol.
inline MarketPanel panel_select(const MarketPanel& src, const std::string& list, const std::string& data_dir) {
  std::vector<std::int32_t> idx;
  if (list.empty()) {
    for (std::int32_t s = 0; s < src.n_symbols(); ++s) idx.push_back(s);
  } else {
    std::size_t pos = 0;
    while (pos <= list.size()) {
      const std::size_t comma = list.find(',', pos);
      const std::string name = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      if (!name.empty()) {
        const std::int32_t s = src.symbol_index(name);
        if (s < 0)
          throw std::invalid_argument("--symbols: no symbol '" + name + "' in " + data_dir + " (" +
                                      std::to_string(src.n_symbols()) + " symbols, e.g. " + src.symbols().front() + ")");
        idx.push_back(s);
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    if (idx.empty()) throw std::invalid_argument("--symbols '" + list + "': expected a comma-separated list of symbols");
  }
  std::vector<std::string> names;
  for (std::int32_t s : idx) names.push_back(src.symbols()[static_cast<std::size_t>(s)]);
  MarketPanel out(std::move(names), src.n_bars(), src.t0_ms(), src.interval_ms());
  for (std::size_t i = 0; i < idx.size(); ++i)
    for (int c = 0; c < kColumnCount; ++c) {
      const auto from = src.series(static_cast<Column>(c), idx[i]);
      auto to = out.series_mut(static_cast<Column>(c), static_cast<std::int32_t>(i));
      std::copy(from.begin(), from.end(), to.begin());
    }
  out.valid_ranges_recompute();
  return out;
}

/// Adds --fee-bps, --slippage-bps and --slippage-spread (ranges checked at parse time) bound to `a`'s fields.
template <class Args>
void cost_options_add(CLI::App* cmd, Args& a) {
  cmd->add_option("--fee-bps", a.fee_bps, "taker fee per fill in basis points, 0 to 1000")->check(number_range(0, 1000))->capture_default_str();
  cmd->add_option("--slippage-bps", a.slippage_bps, "slippage per fill in basis points, 0 to 1000")
      ->check(number_range(0, 1000))
      ->capture_default_str();
  cmd->add_option("--slippage-spread", a.slippage_spread,
                  "plus this fraction of the spread proxy (Corwin-Schultz, 20 bars) of the bar before each fill, 0 to 10")
      ->check(number_range(0, 10))
      ->capture_default_str();
}

/// Costs from the CLI: fee and fixed slippage in basis points plus a fraction of the spread proxy, annualised by the
/// market's own bars per year (the calendar's for a 24/7 market, measured from the bars that exist for one that closes:
/// market_shape).
inline kernels::BacktestCosts costs_from(double fee_bps, double slippage_bps, double slippage_spread, double capital,
                                         const MarketPanel& panel) {
  if (!(fee_bps >= 0 && fee_bps <= 1000)) throw std::invalid_argument("--fee-bps " + std::to_string(fee_bps) + ": expected 0 to 1000");
  if (!(slippage_bps >= 0 && slippage_bps <= 1000))
    throw std::invalid_argument("--slippage-bps " + std::to_string(slippage_bps) + ": expected 0 to 1000");
  if (!(slippage_spread >= 0 && slippage_spread <= 10))
    throw std::invalid_argument("--slippage-spread " + std::to_string(slippage_spread) +
                                ": expected a fraction of the spread proxy from 0 to 10 (0.5 = half the spread)");
  if (!(capital > 0 && std::isfinite(capital))) throw std::invalid_argument("--capital: expected a positive amount");
  kernels::BacktestCosts c;
  c.fee = fee_bps * 1e-4;
  c.slippage = slippage_bps * 1e-4;
  c.slippage_spread = slippage_spread;
  c.capital = capital;
  c.bars_per_year = market_shape(panel).bars_per_year;
  return c;
}

/// printf-formatted number, "-" for NaN, "inf" for infinity.
inline std::string num_cell(double v, const char* fmt) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace qtos::api
