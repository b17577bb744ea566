// `qtos indicators`: one indicator's full series for one symbol, aligned to the bar times, so that it can be checked
// against any other tool. Computed in double precision by the same step functions as the backends.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
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
  std::string data, symbol, indicator, format = "csv", gaps;
  std::int32_t period = 0;  // used only when --period is given
};

/// A CLI indicator name: its family and which outputs it prints.
struct IndicatorChoice {
  IndicatorKind kind;
  std::vector<int> outputs;  // empty: every output of the family
};

/// The CLI names, derived from the indicator list: every family name (all its outputs) and every output name of a
/// family with several outputs (that output alone), e.g. "dmi", "adx", "plus_di". Names are unique (tested).
const std::map<std::string, IndicatorChoice>& choices() {
  static const std::map<std::string, IndicatorChoice> m = [] {
    std::map<std::string, IndicatorChoice> r;
    for (int k = 0; k < kernels::kIndicatorKindCount; ++k) {
      const auto kind = static_cast<IndicatorKind>(k);
      r.emplace(std::string(indicator_name(kind)), IndicatorChoice{kind, {}});
      const auto outputs = indicator_output_names(kind);
      if (outputs.size() > 1)
        for (std::size_t j = 0; j < outputs.size(); ++j)
          r.emplace(outputs[j], IndicatorChoice{kind, {static_cast<int>(j)}});
    }
    return r;
  }();
  return m;
}

/// "a|b|c" over the families (`outputs` false) or the names of single outputs other than a family's (true), in list
/// order.
std::string choice_list(bool outputs) {
  std::string s;
  for (int k = 0; k < kernels::kIndicatorKindCount; ++k) {
    const auto kind = static_cast<IndicatorKind>(k);
    const std::string family(indicator_name(kind));
    std::vector<std::string> names = {family};
    if (outputs) names = indicator_output_names(kind);
    if (outputs && names.size() == 1) names.clear();
    for (const auto& n : names)
      if (!outputs || n != family) s += (s.empty() ? "" : "|") + n;
  }
  return s;
}

/// The --period help: each family's default period, grouped by value in list order; families without one named.
std::string period_help() {
  std::vector<std::pair<std::int32_t, std::string>> groups;
  std::string none;
  for (int k = 0; k < kernels::kIndicatorKindCount; ++k) {
    const auto kind = static_cast<IndicatorKind>(k);
    const auto specs = indicator_param_specs(kind);
    const std::string name(indicator_name(kind));
    if (specs.empty() || specs.front().field != kernels::IndicatorParamField::period) {
      none += (none.empty() ? "" : ", ") + name;
      continue;
    }
    const std::int32_t d = indicator_defaults(kind).period;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == d; });
    if (it == groups.end()) groups.emplace_back(d, name);
    else it->second += "/" + name;
  }
  std::string s = "period (default:";
  for (std::size_t i = 0; i < groups.size(); ++i)
    s += (i ? "; " : " ") + groups[i].second + " " + std::to_string(groups[i].first);
  s += "; an output takes its family's default; macd: the fast period, slow = 26 and signal = 9 at the default 12, "
       "else slow = 2*fast+2";
  if (!none.empty()) s += "; " + none + (none.find(',') == std::string::npos ? " takes" : " take") + " no period";
  return s + ")";
}

std::string fmt_value(double v) {
  if (!std::isfinite(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace

void verbs_indicators_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<IndicatorArgs>();
  auto* cmd = app.add_subcommand("indicators", "print one indicator's full series for one symbol (empty inside the lookback)");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp)")->required();
  cmd->add_option("--symbol", a->symbol, "symbol, e.g. BTCUSDT")->required();
  std::vector<std::string> names;
  for (const auto& [name, c] : choices()) names.push_back(name);
  cmd->add_option("--indicator", a->indicator,
                  "a family, printing every output: " + choice_list(false) + "; or one output: " + choice_list(true))
      ->required()
      ->check(CLI::IsMember(names));
  auto* period_opt = cmd->add_option("--period", a->period, period_help())->check(integer_range(1));
  cmd->add_option("--format", a->format, "csv|json")->check(CLI::IsMember({"csv", "json"}))->capture_default_str();
  gaps_option_add(cmd, a->gaps);
  cmd->callback([a, period_opt, &ctx] {
    const IndicatorChoice& choice = choices().at(a->indicator);
    const auto specs = indicator_param_specs(choice.kind);
    kernels::IndicatorParams prm = indicator_defaults(choice.kind);
    if (period_opt->count() > 0) {
      if (specs.empty() || specs.front().field != kernels::IndicatorParamField::period)
        throw UsageError("--period: " + a->indicator + " takes no period");
      prm.period = a->period;
      if (choice.kind == IndicatorKind::macd && prm.period != 12) prm.period2 = 2 * prm.period + 2;  // CLI convention
    }
    prm.gaps = gaps_resolve(a->gaps, ctx.config());
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
    // RSI and DMI take price changes at the quotes' own precision (exact on decimal data: a tie is a tie).
    const auto row = [&](const float* c) { return std::span<const float>(c, static_cast<std::size_t>(v.n_bars)); };
    prm.price_decimals = price_decimals_infer(row(v.high), row(v.low), row(v.close));
    std::vector<double> out(indicator_out_size(choice.kind, v));
    indicator_series_serial(v, choice.kind, prm, out);

    const auto all_names = indicator_output_names(choice.kind);
    std::vector<int> outputs = choice.outputs;
    if (outputs.empty())
      for (int j = 0; j < static_cast<int>(all_names.size()); ++j) outputs.push_back(j);
    const auto plane = static_cast<std::size_t>(v.stride);
    auto value = [&](int j, std::int32_t t) { return out[static_cast<std::size_t>(j) * plane + static_cast<std::size_t>(t)]; };

    if (a->format == "csv") {
      // The CSV stays a plain table for other tools; how missing bars were treated goes to stderr (JSON records it).
      std::fprintf(stderr, "gaps: %s\n", gap_policy_text(prm.gaps).c_str());
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
    for (const auto& spec : specs) {
      const double x = kernels::param_value(prm, spec.field);
      if (spec.field == kernels::IndicatorParamField::k) o[spec.key] = x;
      else o[spec.key] = static_cast<std::int64_t>(x);
    }
    o["interval"] = interval_name(panel.interval_ms());
    o["gaps"] = gap_policy_text(prm.gaps);
    o["price_decimals"] = prm.price_decimals;  // -1: the prices are not decimal quotes (taken as stored)
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
