// `qtos backtest-strategy`: one strategy over a data directory with its metrics and trade list.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/cli_checks.hpp"
#include "api/strategy_cli_util.hpp"
#include "api/verbs.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/util/stop_token.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct BacktestArgs {
  std::string data, genome, rules_file, symbols, format = "table", repo = "strategies.db", gaps;
  double fee_bps = 4.0, slippage_bps = 2.0, slippage_spread = 0.0, capital = 10'000.0;
  double from = 0.0, to = 1.0;
  std::int64_t max_trades = 50;
};

/// The first genome code in a file (blank lines and lines starting with '#' are skipped).
std::string code_from_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::invalid_argument("--rules " + path + ": cannot open the file");
  std::string line;
  while (std::getline(f, line)) {
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const auto e = line.find_last_not_of(" \t\r");
    return line.substr(b, e - b + 1);
  }
  throw std::invalid_argument("--rules " + path + ": no genome code in the file (expected a line like g1:5,1,0,30,...)");
}

/// The genome named by --genome: a genome code (g1:...), or a strategy id (or unique prefix of at least 4 hex
/// digits) looked up in the repository.
kernels::Genome genome_from_arg(const BacktestArgs& a) {
  if (a.genome.rfind("g1:", 0) == 0) return genome_decode(a.genome, "--genome");
  if (a.genome.size() < 4 || a.genome.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    throw std::invalid_argument("--genome '" + a.genome +
                                "': expected a genome code (g1:...) or a strategy id (at least 4 hex digits, see qtos strategies list)");
  if (!std::filesystem::exists(a.repo))
    throw std::invalid_argument("--genome " + a.genome + ": looks like a strategy id, but the repository '" + a.repo +
                                "' does not exist (give --repo FILE, or a genome code g1:...)");
  const StrategyRepository repo(a.repo);
  const auto rec = repo.get(a.genome);
  if (!rec) throw std::invalid_argument("--genome " + a.genome + ": no strategy with this id in " + a.repo + " (or the prefix matches several)");
  return rec->genome;
}

}  // namespace

void verbs_backtest_strategy_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<BacktestArgs>();
  auto* cmd = app.add_subcommand("backtest-strategy", "backtest one strategy genome and list its trades");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp)")->required();
  auto* g = cmd->add_option("--genome", a->genome, "genome code (g1:..., as printed by qtos evolve) or a strategy id in --repo");
  auto* r = cmd->add_option("--rules", a->rules_file, "file holding a genome code (first non-comment line)");
  g->excludes(r);
  cmd->add_option("--repo", a->repo, "strategy repository for --genome ID (qtos evolve --repo writes it)")->capture_default_str();
  cmd->add_option("--symbols", a->symbols, "comma-separated symbols (default: all)");
  cmd->add_option("--from", a->from, "start of the window as a fraction of the bars")->check(number_range(0, 1))->capture_default_str();
  cmd->add_option("--to", a->to, "end of the window as a fraction of the bars")->check(number_range(0, 1, true))->capture_default_str();
  cost_options_add(cmd, *a);
  cmd->add_option("--capital", a->capital, "initial capital (split over the symbols)")
      ->check(number_range(0, std::numeric_limits<double>::max(), true))
      ->capture_default_str();
  cmd->add_option("--max-trades", a->max_trades, "trades to list (-1: all)")->check(integer_range(-1))->capture_default_str();
  cmd->add_option("--format", a->format, "table|csv (csv: the trade list only)")->check(CLI::IsMember({"table", "csv"}))->capture_default_str();
  gaps_option_add(cmd, a->gaps);
  cmd->callback([a, &ctx] {
    stop_signals_install();  // SIGINT/SIGTERM: stop listing at the next trade, say so, exit 130/143
    const StopToken stop = process_stop_token();
    if (a->genome.empty() && a->rules_file.empty()) throw UsageError("backtest-strategy: give --genome CODE|ID or --rules FILE");
    const kernels::Genome genome = a->genome.empty() ? genome_decode(code_from_file(a->rules_file), "--rules " + a->rules_file)
                                                     : genome_from_arg(*a);
    if (!(a->from >= 0 && a->from < a->to && a->to <= 1))
      throw UsageError("--from " + std::to_string(a->from) + " --to " + std::to_string(a->to) +
                       ": expected fractions with 0 <= from < to <= 1");
    const kernels::GapPolicy gaps = gaps_resolve(a->gaps, ctx.config());
    const MarketPanel full = panel_load(panel_path(a->data));
    const MarketPanel panel = panel_select(full, a->symbols, a->data);
    const StrategyFeatures features = strategy_features_compute(panel.view(), true, gaps);
    const std::vector<kernels::Genome> one = {genome};
    BacktestRequest req;
    req.panel = panel.view();
    req.features = &features;
    req.genomes = one;
    req.costs = costs_from(a->fee_bps, a->slippage_bps, a->slippage_spread, a->capital, panel);
    req.t_begin = static_cast<std::int32_t>(std::floor(a->from * panel.n_bars()));
    req.t_end = static_cast<std::int32_t>(std::floor(a->to * panel.n_bars()));
    kernels::BacktestAccum acc;
    const auto trades = backtest_trades(req, 0, &acc);
    if (stop.stop_requested()) {  // the one safe point of a single backtest: after it, before any output
      std::fprintf(stderr, "qtos: stopped by %s after the backtest, before printing its results\n", stop_signal_name(stop.signal()));
      ctx.exit_code = stop_exit_code(stop.signal());
      return;
    }
    const BacktestMetrics m = backtest_metrics(acc, req.costs.bars_per_year);
    const bool csv = a->format == "csv";
    if (!csv) {
      std::printf("strategy %s: %s\n", genome_id(genome).c_str(), genome_rules(genome).c_str());
      std::printf("%d symbols, bars [%d, %d) (%s .. %s), fee %.1f bps, slippage %.1f bps + %.2f x spread, capital %.0f\n", panel.n_symbols(),
                  req.t_begin, req.t_end, time_format_iso(panel.time_ms(req.t_begin)).c_str(),
                  time_format_iso(panel.time_ms(std::max(req.t_begin, req.t_end - 1))).c_str(), a->fee_bps, a->slippage_bps, a->slippage_spread, a->capital);
      std::printf("gaps %s; Sharpe and Sortino annualised with %s\n", gap_policy_text(gaps).c_str(),
                  market_shape(panel).annualisation().c_str());
      std::printf("total return %s  Sharpe %s  Sortino %s  max drawdown %s  win rate %s  trades %.0f  profit factor %s  "
                  "avg trade %s  exposure %s\n",
                  num_cell(100 * m.total_return, "%+.2f%%").c_str(), num_cell(m.sharpe, "%.2f").c_str(),
                  num_cell(m.sortino, "%.2f").c_str(), num_cell(100 * m.max_drawdown, "%.2f%%").c_str(),
                  num_cell(100 * m.win_rate, "%.1f%%").c_str(), m.trades, num_cell(m.profit_factor, "%.2f").c_str(),
                  num_cell(100 * m.avg_trade, "%+.3f%%").c_str(), num_cell(100 * m.exposure, "%.1f%%").c_str());
      std::printf("%-16s %-5s %-20s %-20s %12s %12s %9s %-8s\n", "SYMBOL", "SIDE", "ENTRY", "EXIT", "ENTRY PX", "EXIT PX", "RETURN", "REASON");
    } else {
      std::printf("symbol,side,entry_time,exit_time,entry_bar,exit_bar,entry_price,exit_price,pnl,return,reason\n");
    }
    const std::size_t limit = a->max_trades < 0 ? trades.size() : std::min(trades.size(), static_cast<std::size_t>(a->max_trades));
    for (std::size_t i = 0; i < limit; ++i) {
      if (stop.stop_requested()) {
        std::fflush(stdout);
        std::fprintf(stderr, "qtos: stopped by %s after listing %zu of %zu trades\n", stop_signal_name(stop.signal()), i, limit);
        ctx.exit_code = stop_exit_code(stop.signal());
        return;
      }
      const auto& t = trades[i];
      const std::string& sym = panel.symbols()[static_cast<std::size_t>(t.symbol)];
      const std::string in = time_format_iso(panel.time_ms(t.trade.entry_bar)), out = time_format_iso(panel.time_ms(t.trade.exit_bar));
      if (csv)
        std::printf("%s,%s,%s,%s,%d,%d,%.10g,%.10g,%.6f,%.6f,%s\n", sym.c_str(), t.trade.dir > 0 ? "long" : "short", in.c_str(),
                    out.c_str(), t.trade.entry_bar, t.trade.exit_bar, t.trade.entry_price, t.trade.exit_price, t.trade.pnl,
                    t.trade.ret, exit_reason_name(t.trade.reason));
      else
        std::printf("%-16s %-5s %-20s %-20s %12.6g %12.6g %+8.2f%% %-8s\n", sym.c_str(), t.trade.dir > 0 ? "long" : "short",
                    in.c_str(), out.c_str(), t.trade.entry_price, t.trade.exit_price, 100 * t.trade.ret,
                    exit_reason_name(t.trade.reason));
    }
    if (!csv && limit < trades.size()) std::printf("... %zu more trades (--max-trades -1 lists all)\n", trades.size() - limit);
  });
}

}  // namespace qtos::api
