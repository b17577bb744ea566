// `qtos rank`: ranks every symbol of a data directory as of its last bar (or --at) and explains one symbol's score.
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

#include <boost/json.hpp>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"
#include "cpu/backend/indicator_backend.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/ranking/panel_ranking.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct RankArgs {
  std::string data, device, format = "table", at, explain, gaps;
  std::int64_t top = -1;  // -1: QT_OPP_RANKER_TOP_N
};

using kernels::Feature;

/// JSON number or null for NaN.
boost::json::value num(double v) { return std::isfinite(v) ? boost::json::value(v) : boost::json::value(nullptr); }

std::string cell(double v, const char* fmt) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

void print_table(const Ranking& r, const MarketPanel& panel, std::size_t top, const std::string& device) {
  std::printf("ranking as of %s (bar %d of %d, %s bars), device %s: %d of %d symbols ranked\n",
              time_format_iso(panel.time_ms(r.bar)).c_str(), r.bar, panel.n_bars(), interval_name(panel.interval_ms()).c_str(),
              device.c_str(), r.eligible, panel.n_symbols());
  std::printf("%4s  %-16s %8s %8s %8s %8s %8s %8s %12s %6s %7s %14s %8s %8s\n", "RANK", "SYMBOL", "SCORE", "TREND", "VOLAT",
              "LIQUID", "PERF", "MODEL", "CLOSE", "ADX", "ATR%", "DOLLAR VOL", "SPREAD", "MAX DD");
  for (const auto& s : r.top(top)) {
    const auto& f = s.features;
    std::printf("%4d  %-16s %8s %8s %8s %8s %8s %8s %12s %6s %7s %14s %8s %8s\n", s.rank, s.symbol.c_str(),
                cell(s.score, "%+.3f").c_str(), cell(s.sub[0], "%+.3f").c_str(), cell(s.sub[1], "%+.3f").c_str(),
                cell(s.sub[2], "%+.3f").c_str(), cell(s.sub[3], "%+.3f").c_str(), cell(s.sub[4], "%+.3f").c_str(),
                cell(f.get(Feature::close), "%.6g").c_str(), cell(f.get(Feature::adx), "%.1f").c_str(),
                cell(100.0 * f.get(Feature::atr_pct), "%.2f").c_str(), cell(f.get(Feature::dollar_volume), "%.4g").c_str(),
                cell(f.get(Feature::spread), "%.5f").c_str(), cell(f.get(Feature::drawdown), "%.3f").c_str());
  }
  std::map<std::string, int> reasons;
  for (const auto& s : r.rows)
    if (!s.eligible()) ++reasons[std::string(filter_reason_name(s.reason))];
  if (!reasons.empty()) {
    std::printf("filtered: %d", panel.n_symbols() - r.eligible);
    const char* sep = " (";
    for (const auto& [reason, n] : reasons) {
      std::printf("%s%s %d", sep, reason.c_str(), n);
      sep = ", ";
    }
    std::printf(")\n");
  }
}

boost::json::object row_json(const SymbolScore& s) {
  boost::json::object o;
  o["symbol"] = s.symbol;
  if (s.eligible()) {
    o["rank"] = s.rank;
    o["score"] = num(s.score);
    boost::json::object sub;
    for (int c = 0; c < kCriterionCount; ++c) sub[criterion_name(static_cast<Criterion>(c))] = num(s.sub[static_cast<std::size_t>(c)]);
    o["sub_scores"] = std::move(sub);
  } else {
    o["reason"] = filter_reason_name(s.reason);
    o["detail"] = s.reason_text;
  }
  const auto& f = s.features;
  o["features"] = {{"close", num(f.get(Feature::close))},           {"ma_alignment", num(f.get(Feature::ma_alignment))},
                   {"adx", num(f.get(Feature::adx))},               {"atr_pct", num(f.get(Feature::atr_pct))},
                   {"bb_width", num(f.get(Feature::bb_width))},     {"roc", num(f.get(Feature::roc))},
                   {"dollar_volume", num(f.get(Feature::dollar_volume))}, {"spread", num(f.get(Feature::spread))},
                   {"max_drawdown", num(f.get(Feature::drawdown))}, {"history_bars", f.history}};
  return o;
}

}  // namespace

void verbs_rank_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<RankArgs>();
  auto* cmd = app.add_subcommand("rank", "rank every symbol by opportunity score (trend, volatility, liquidity, performance, model)");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp, from qtos data synth|import)")->required();
  cmd->add_option("--top", a->top, "how many ranked symbols to print, >= 1 (default: QT_OPP_RANKER_TOP_N, 20)")->check(integer_range(1));
  cmd->add_option("--device", a->device, "auto|cpu|cuda (default: QT_DEVICE, auto)");
  cmd->add_option("--format", a->format, "table|json|csv")->check(CLI::IsMember({"table", "json", "csv"}))->capture_default_str();
  cmd->add_option("--at", a->at, "rank as of this time (YYYY-MM-DD[THH:MM[:SS]Z] or Unix ms; default: the last bar)");
  cmd->add_option("--explain", a->explain, "also explain this symbol's score (or why it was filtered)");
  gaps_option_add(cmd, a->gaps);
  cmd->callback([a, &ctx] {
    const Config& cfg = ctx.config();
    const DeviceKind kind = a->device.empty() ? cfg.device : device_parse(a->device, "--device");
    const std::int64_t top = a->top < 0 ? cfg.opp_ranker_top_n : a->top;
    if (top < 1)
      throw std::invalid_argument("QT_OPP_RANKER_TOP_N=" + std::to_string(top) + " (the default of --top): expected an integer >= 1");
    auto backends = indicator_backends();
    const IndicatorBackend& backend = backend_select(backends, kind);

    const MarketPanel panel = panel_load(panel_path(a->data));
    if (panel.n_symbols() == 0 || panel.n_bars() == 0)
      throw std::invalid_argument(a->data + ": the data is empty (" + std::to_string(panel.n_symbols()) + " symbols x " +
                                  std::to_string(panel.n_bars()) + " bars); nothing to rank");
    if (!a->explain.empty() && panel.symbol_index(a->explain) < 0)
      throw std::invalid_argument("--explain " + a->explain + ": no such symbol in " + a->data + " (" +
                                  std::to_string(panel.n_symbols()) + " symbols, e.g. " + panel.symbols().front() + ")");
    RankRequest req;
    req.features.gaps = gaps_resolve(a->gaps, cfg);
    req.features.price_decimals = panel_price_decimals_common(panel.view());  // ADX exact on decimal quotes
    req.bar = panel.n_bars() - 1;
    if (!a->at.empty()) {
      const std::int64_t ms = time_parse(a->at, "--at");
      req.bar = panel.bar_at_or_before(ms);
      if (req.bar < 0)
        throw std::invalid_argument("--at " + a->at + ": before the first bar of " + a->data + " (" +
                                    time_format_iso(panel.time_ms(0)) + ")");
    }
    const Ranking r = panel_rank(panel, req, backend);
    const auto n = static_cast<std::size_t>(top);

    if (a->format == "table") {
      print_table(r, panel, n, std::string(backend.name()) + ", gaps " + gap_policy_text(req.features.gaps));
    } else if (a->format == "csv") {
      std::printf("rank,symbol,score,trend,volatility,liquidity,performance,model,status,reason\n");
      auto f = [](double v) { return std::isfinite(v) ? cell(v, "%.6f") : std::string(); };
      for (const auto& s : r.top(n))
        std::printf("%d,%s,%s,%s,%s,%s,%s,%s,ranked,\n", s.rank, s.symbol.c_str(), f(s.score).c_str(), f(s.sub[0]).c_str(),
                    f(s.sub[1]).c_str(), f(s.sub[2]).c_str(), f(s.sub[3]).c_str(), f(s.sub[4]).c_str());
      for (const auto& s : r.rows)
        if (!s.eligible()) std::printf(",%s,,,,,,,filtered,%s\n", s.symbol.c_str(), std::string(filter_reason_name(s.reason)).c_str());
    } else {
      boost::json::object o;
      o["as_of"] = time_format_iso(panel.time_ms(r.bar));
      o["bar"] = r.bar;
      o["interval"] = interval_name(panel.interval_ms());
      o["device"] = std::string(backend.name());
      o["gaps"] = gap_policy_text(req.features.gaps);
      o["symbols"] = panel.n_symbols();
      o["ranked"] = r.eligible;
      boost::json::array ranked, filtered;
      for (const auto& s : r.top(n)) ranked.push_back(row_json(s));
      for (const auto& s : r.rows)
        if (!s.eligible()) filtered.push_back(row_json(s));
      o["top"] = std::move(ranked);
      o["filtered"] = std::move(filtered);
      if (!a->explain.empty()) o["explain"] = ranking_explain(r, a->explain, req.weights);
      std::printf("%s\n", boost::json::serialize(o).c_str());
      return;
    }
    // CSV stays machine-readable: its explanation goes to stderr.
    if (!a->explain.empty())
      std::fprintf(a->format == "csv" ? stderr : stdout, "\n%s", ranking_explain(r, a->explain, req.weights).c_str());
  });
}

}  // namespace qtos::api
