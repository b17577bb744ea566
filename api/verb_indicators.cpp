// `qtos indicators`: one indicator's full series for one symbol, aligned to the bar times, so that it can be checked
// against any other tool. Computed in double precision by the same step functions as the backends.
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"
#include "cpu/backend/indicator_backend.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

using kernels::IndicatorKind;

struct IndicatorArgs {
  std::string data, symbol, indicator, format = "csv";
  std::int32_t period = 0;  // used only when --period is given
};

/// A CLI indicator name: its family, which outputs it prints, and its default period.
struct IndicatorChoice {
  IndicatorKind kind;
  std::vector<int> outputs;  // empty: every output of the family
  std::int32_t default_period;
};

const std::map<std::string, IndicatorChoice>& choices() {
  static const std::map<std::string, IndicatorChoice> m = {
      {"sma", {IndicatorKind::sma, {}, 20}},       {"ema", {IndicatorKind::ema, {}, 20}},
      {"rsi", {IndicatorKind::rsi, {}, 14}},       {"atr", {IndicatorKind::atr, {}, 14}},
      {"adx", {IndicatorKind::dmi, {2}, 14}},      {"plus_di", {IndicatorKind::dmi, {0}, 14}},
      {"minus_di", {IndicatorKind::dmi, {1}, 14}}, {"bbands", {IndicatorKind::bbands, {}, 20}},
      {"macd", {IndicatorKind::macd, {}, 12}},     {"roc", {IndicatorKind::roc, {}, 10}},
      {"rvol", {IndicatorKind::rvol, {}, 20}}};
  return m;
}

std::string fmt_value(double v) {
  if (!std::isfinite(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace

void verbs_indicators_register(CLI::App& app, CliContext&) {
  auto a = std::make_shared<IndicatorArgs>();
  auto* cmd = app.add_subcommand("indicators", "print one indicator's full series for one symbol (empty inside the lookback)");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp)")->required();
  cmd->add_option("--symbol", a->symbol, "symbol, e.g. BTCUSDT")->required();
  std::vector<std::string> names;
  for (const auto& [name, c] : choices()) names.push_back(name);
  cmd->add_option("--indicator", a->indicator, "sma|ema|rsi|atr|adx|plus_di|minus_di|bbands|macd|roc|rvol")
      ->required()
      ->check(CLI::IsMember(names));
  auto* period_opt = cmd->add_option("--period", a->period,
                  "period (default: sma/ema/bbands/rvol 20, rsi/atr/adx/plus_di/minus_di 14, roc 10; macd: the fast "
                  "period, slow = 26 and signal = 9 at the default 12, else slow = 2*fast+2)")
                       ->check(integer_range(1));
  cmd->add_option("--format", a->format, "csv|json")->check(CLI::IsMember({"csv", "json"}))->capture_default_str();
  cmd->callback([a, period_opt] {
    const IndicatorChoice& choice = choices().at(a->indicator);
    kernels::IndicatorParams prm;
    prm.period = period_opt->count() > 0 ? a->period : choice.default_period;
    if (choice.kind == IndicatorKind::macd) {
      prm.period2 = prm.period == 12 ? 26 : 2 * prm.period + 2;
      prm.period3 = 9;
    }
    try {
      indicator_params_check(choice.kind, prm);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--period: ") + e.what());
    }
    const MarketPanel panel = panel_load(panel_path(a->data));
    if (panel.n_symbols() == 0 || panel.n_bars() == 0)
      throw std::invalid_argument(a->data + ": the data is empty (" + std::to_string(panel.n_symbols()) + " symbols x " +
                                  std::to_string(panel.n_bars()) + " bars)");
    const std::int32_t s = panel.symbol_index(a->symbol);
    if (s < 0)
      throw std::invalid_argument("--symbol " + a->symbol + ": no such symbol in " + a->data + " (" +
                                  std::to_string(panel.n_symbols()) + " symbols, e.g. " + panel.symbols().front() + ")");

    // A one-symbol view of row s, run serially in double.
    kernels::PanelView v = panel.view();
    const std::int64_t off = v.at(s, 0);
    v.open = v.open ? v.open + off : nullptr;
    v.high += off;
    v.low += off;
    v.close += off;
    v.volume = v.volume ? v.volume + off : nullptr;
    v.quote_volume += off;
    v.trades = v.trades ? v.trades + off : nullptr;
    v.first_bar = nullptr;
    v.last_bar = nullptr;
    v.n_symbols = 1;
    std::vector<double> out(indicator_out_size(choice.kind, v));
    indicator_series_serial(v, choice.kind, prm, out);

    const auto all_names = indicator_output_names(choice.kind);
    std::vector<int> outputs = choice.outputs;
    if (outputs.empty())
      for (int j = 0; j < static_cast<int>(all_names.size()); ++j) outputs.push_back(j);
    const auto plane = static_cast<std::size_t>(v.stride);
    auto value = [&](int j, std::int32_t t) { return out[static_cast<std::size_t>(j) * plane + static_cast<std::size_t>(t)]; };

    if (a->format == "csv") {
      std::printf("time");
      for (int j : outputs) std::printf(",%s", all_names[static_cast<std::size_t>(j)].c_str());
      std::printf("\n");
      for (std::int32_t t = 0; t < panel.n_bars(); ++t) {
        std::printf("%s", time_format_iso(panel.time_ms(t)).c_str());
        for (int j : outputs) std::printf(",%s", fmt_value(value(j, t)).c_str());
        std::printf("\n");
      }
      return;
    }
    boost::json::object o;
    o["symbol"] = a->symbol;
    o["indicator"] = a->indicator;
    o["period"] = prm.period;
    if (choice.kind == IndicatorKind::macd) {
      o["slow_period"] = prm.period2;
      o["signal_period"] = prm.period3;
    }
    o["interval"] = interval_name(panel.interval_ms());
    boost::json::object lookbacks;
    boost::json::array columns;
    for (int j : outputs) {
      columns.push_back(boost::json::string(all_names[static_cast<std::size_t>(j)]));
      lookbacks[all_names[static_cast<std::size_t>(j)]] = indicator_lookback(choice.kind, prm, j);
    }
    o["columns"] = std::move(columns);
    o["lookback"] = std::move(lookbacks);
    boost::json::array rows;
    for (std::int32_t t = 0; t < panel.n_bars(); ++t) {
      boost::json::object r;
      r["time"] = time_format_iso(panel.time_ms(t));
      for (int j : outputs) {
        const double x = value(j, t);
        r[all_names[static_cast<std::size_t>(j)]] = std::isfinite(x) ? boost::json::value(x) : boost::json::value(nullptr);
      }
      rows.push_back(std::move(r));
    }
    o["rows"] = std::move(rows);
    std::printf("%s\n", boost::json::serialize(o).c_str());
  });
}

}  // namespace qtos::api
