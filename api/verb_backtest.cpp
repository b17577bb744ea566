// `qtos backtest`: the full-system replay (bars through the whole trading core on a simulated clock against the
// paper exchange) with its ledger, event log and report; and `qtos orders` to read a ledger.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/cli_checks.hpp"
#include "api/strategy_cli_util.hpp"
#include "api/verbs.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "models/ensemble.hpp"
#include "models/registry.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/analytics/metrics.hpp"
#include "runtime/analytics/report.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/subsystems/subsystem_set.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/util/atomic_file.hpp"
#include "runtime/util/progress.hpp"
#include "runtime/util/stop_token.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

/// A quantity as the venue would print it (up to 10 significant digits).
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

struct ReplayArgs {
  std::string data, out, from, to, stage, env, repo, symbols, models, market = "perp", gaps;
  std::vector<std::string> genomes;
  std::uint64_t seed = 1;
  double fee_bps = 4.0, slippage_bps = 2.0, slippage_spread = 0.0, capital = 10'000.0, leverage = 1.0;
  bool compare_stages = false;
};

/// A bar index from --from/--to: a fraction of the bars (0.7) or a UTC date/time (2024-03-01).
std::int32_t bar_from_arg(const MarketPanel& panel, const std::string& text, const char* option, bool end) {
  if (text.empty()) return end ? panel.n_bars() : 0;
  char* stop = nullptr;
  const double f = std::strtod(text.c_str(), &stop);
  if (stop != nullptr && *stop == '\0' && text.find_first_of("-:T") == std::string::npos) {
    if (!(f >= 0 && f <= 1))
      throw UsageError(std::string(option) + " " + text + ": expected a fraction of the bars from 0 to 1, or a UTC date such as 2024-03-01");
    return static_cast<std::int32_t>(std::floor(f * panel.n_bars()));
  }
  const std::int64_t ms = time_parse(text, option);
  if (ms <= panel.t0_ms()) return 0;
  const std::int64_t t = (ms - panel.t0_ms() + panel.interval_ms() - 1) / panel.interval_ms();
  return static_cast<std::int32_t>(std::min<std::int64_t>(t, panel.n_bars()));
}

Config config_for(CliContext& ctx, const ReplayArgs& a) {
  if (a.env.empty() && a.stage.empty()) return ctx.config();
  ConfigSources sources = ConfigSources::from_process_environment();
  const std::string env = !a.env.empty() ? a.env : ctx.env_file;
  if (!env.empty()) {
    if (!std::filesystem::exists(env)) throw UsageError("--env " + env + ": no such file");
    sources.env_file = env_file_read(env);
    sources.env_file_path = env;
  }
  if (!a.stage.empty()) sources.environment["QT_AI_INTEGRATION_STAGE"] = a.stage;
  return config_load(sources);
}

/// The strategies to trade; a stored one backtested under another gap policy than the run's is named on stderr.
std::vector<LiveStrategy> strategies_for(const ReplayArgs& a, kernels::GapPolicy gaps) {
  const auto note = [&](const StrategyRecord& rec) {
    if (const auto m = strategy_gaps_mismatch(rec, gap_policy_text(gaps))) std::fprintf(stderr, "note: %s\n", m->c_str());
  };
  std::vector<LiveStrategy> out;
  for (const std::string& g : a.genomes) {
    kernels::Genome genome;
    if (g.rfind("g1:", 0) == 0) {
      genome = genome_decode(g, "--genome");
    } else {
      if (!std::filesystem::exists(a.repo))
        throw UsageError("--genome " + g + ": looks like a strategy id, but the repository '" + a.repo + "' does not exist (give --repo FILE)");
      const StrategyRepository repo(a.repo);
      const auto rec = repo.get(g);
      if (!rec) throw UsageError("--genome " + g + ": no strategy with this id in " + a.repo + " (or the prefix matches several)");
      genome = rec->genome;
      note(*rec);
    }
    out.push_back(LiveStrategy{genome_id(genome), genome, 0.0, {}});
  }
  if (a.genomes.empty() && !a.repo.empty()) {
    if (!std::filesystem::exists(a.repo)) throw UsageError("--repo " + a.repo + ": no such strategy repository");
    const StrategyRepository repo(a.repo);
    for (const auto& rec : repo.list(StrategyStatus::live)) {
      note(rec);
      out.push_back(LiveStrategy{rec.id, rec.genome, 0.0, {}});
    }
    if (out.empty()) throw UsageError("--repo " + a.repo + ": no LIVE strategy to trade (qtos strategies promote ID live), or give --genome");
  }
  return out;
}

}  // namespace

void verbs_backtest_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<ReplayArgs>();
  auto* cmd = app.add_subcommand("backtest", "replay recorded bars through the whole trading system against the paper exchange");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp)")->required();
  cmd->add_option("--out", a->out, "output directory: ledger.db, events.qel, report.json, report.html, logs/")->required();
  cmd->add_option("--from", a->from, "first bar that trades: a fraction of the bars (0.7) or a UTC date (earlier bars warm up)");
  cmd->add_option("--to", a->to, "end of the replay: a fraction of the bars or a UTC date (open positions close there)");
  cmd->add_option("--stage", a->stage, "integration stage (OBSERVATION, PARTIAL, COORDINATION, AUTONOMY); default from QT_AI_INTEGRATION_STAGE");
  cmd->add_option("--env", a->env, "read QT_* settings from this .env file");
  cmd->add_option("--seed", a->seed, "seed of the run (recorded in the report)")->capture_default_str()->check(unsigned_integer());
  cmd->add_option("--genome", a->genomes, "a strategy to trade: genome code (g1:...) or an id in --repo; repeatable");
  cmd->add_option("--repo", a->repo, "strategy repository: its LIVE strategies trade (or the ids given with --genome)");
  cmd->add_option("--symbols", a->symbols, "comma-separated symbols (default: all)");
  cmd->add_option("--models", a->models, "model registry directory: its ACTIVE models trade as one ensemble (qtos retrain, models promote)");
  cost_options_add(cmd, *a);
  cmd->add_option("--capital", a->capital, "initial balance of the paper exchange")
      ->check(number_range(0, std::numeric_limits<double>::max(), true))
      ->capture_default_str();
  cmd->add_option("--market", a->market, "perp (linear perpetuals, long and short) or spot (long only)")
      ->check(CLI::IsMember({"perp", "spot"}))
      ->capture_default_str();
  cmd->add_flag("--compare-stages", a->compare_stages,
                "run the baseline (subsystems off) and each integration stage on the same data; write OUT/stages.html side by side");
  cmd->add_option("--leverage", a->leverage, "leverage of new positions (perp), 1 to 125")->check(number_range(1, 125))->capture_default_str();
  gaps_option_add(cmd, a->gaps);
  cmd->callback([a, &ctx] {
    stop_signals_install();
    const StopToken stop = process_stop_token();
    if (a->compare_stages && !a->stage.empty())
      throw UsageError("--compare-stages runs every stage; leave out --stage " + a->stage);
    Config config = config_for(ctx, *a);
    config.gaps = gaps_resolve(a->gaps, config);
    const std::vector<LiveStrategy> strategies = strategies_for(*a, config.gaps);
    // The models' ensemble, when asked for: every ACTIVE model of the registry, loaded and checked before the replay.
    std::unique_ptr<models::EnsembleManager> ensemble;
    if (!a->models.empty()) {
      if (!std::filesystem::exists(std::filesystem::path(a->models) / "registry.db"))
        throw UsageError("--models " + a->models + ": no model registry there (expected DIR/registry.db; qtos retrain creates one)");
      const models::ModelRegistry registry(a->models, models::RegistryOptions{.mode = store::OpenMode::existing});
      const auto active = registry.active_all();
      if (active.empty())
        throw UsageError("--models " + a->models + ": no ACTIVE model to trade (qtos models --registry " + a->models + " promote NAME VERSION)");
      const auto first = registry.load(active.front());
      // The models' features follow the run's gap policy: a model trained under another one is refused, naming both.
      if (!(first->meta().spec.gaps == config.gaps))
        throw UsageError("--models " + a->models + ": " + active.front().name + " v" + std::to_string(active.front().version) +
                         " was trained under gaps " + gap_policy_text(first->meta().spec.gaps) + ", this run is under gaps " +
                         gap_policy_text(config.gaps) + " (give --gaps " + gap_policy_text(first->meta().spec.gaps) +
                         " or retrain it under " + gap_policy_text(config.gaps) + ")");
      ensemble = std::make_unique<models::EnsembleManager>(first->meta().spec, "ensemble");
      ensemble->reload(registry);
    }
    if (strategies.empty() && !ensemble)
      throw UsageError("backtest: nothing to trade: give --genome CODE|ID, --repo FILE with LIVE strategies, or --models DIR");
    output_path_check(a->out + (a->compare_stages ? "/stages.html" : "/report.json"), "--out");
    const MarketPanel full = panel_load(panel_path(a->data));
    const MarketPanel panel = panel_select(full, a->symbols, a->data);
    const std::int32_t t_begin = bar_from_arg(panel, a->from, "--from", false);
    const std::int32_t t_end = bar_from_arg(panel, a->to, "--to", true);
    if (t_begin >= t_end)
      throw UsageError("--from " + (a->from.empty() ? std::string("0") : a->from) + " --to " + (a->to.empty() ? std::string("1") : a->to) +
                       ": the window is empty (bars " + std::to_string(t_begin) + " to " + std::to_string(t_end) + ")");
    const kernels::BacktestCosts costs = costs_from(a->fee_bps, a->slippage_bps, a->slippage_spread, a->capital, panel);

    // One run: a fresh ledger in `dir` (never an earlier run's), with the subsystems the configuration enables (none for
    // the baseline of a comparison).
    struct Run {
      ReplayResult result;
      ReportInput report;
      std::shared_ptr<SubsystemSet> subsystems;
      std::string dir;
    };
    auto run_one = [&](const Config& run_config, const std::string& dir, bool with_subsystems, const std::string& label) -> std::optional<Run> {
      for (const char* f : {"/ledger.db", "/events.qel"})
        if (std::filesystem::exists(dir + f))
          throw std::invalid_argument("--out " + dir + " already holds " + dir + f + " from an earlier run; give another directory or remove it");
      std::filesystem::create_directories(dir);
      Run run;
      run.dir = dir;
      ReplayOptions o;
      o.t_begin = t_begin;
      o.t_end = t_end;
      o.exchange.market = a->market == "spot" ? MarketKind::spot : MarketKind::linear_perpetual;
      o.exchange.initial_balance = a->capital;
      o.exchange.taker_fee = costs.fee;
      o.exchange.slippage = costs.slippage;
      o.exchange.slippage_spread = costs.slippage_spread;
      o.executor.leverage = a->leverage;
      o.ledger_path = dir + "/ledger.db";
      o.event_log_path = dir + "/events.qel";
      o.log_dir = dir + "/logs";
      o.stop = stop;
      if (with_subsystems) o.subsystem_factory = subsystem_set_factory(&run.subsystems);
      if (ensemble) o.predictor = ensemble.get();
      Progress progress(label, static_cast<std::uint64_t>(t_end));
      o.progress = [&](std::int32_t done, std::int32_t) { progress.update(static_cast<std::uint64_t>(done)); };
      run.result = replay_run(panel, run_config, strategies, {}, o);
      if (run.result.stopped) {
        progress.stop("stopped");
        std::fprintf(stderr, "qtos: stopped by %s after %d of %d bars; the ledger holds every completed bar (%s)\n",
                     stop_signal_name(stop.signal()), run.result.bars_done, t_end, o.ledger_path.c_str());
        ctx.exit_code = stop_exit_code(stop.signal());
        return std::nullopt;
      }
      progress.finish();
      const Ledger ledger(o.ledger_path, store::OpenMode::existing);
      ReportInput& in = run.report;
      in.title = "qtos backtest: " + a->data;
      in.run_info = {{"data", a->data},
                     {"window", time_format_iso(panel.time_ms(t_begin)) + " .. " + time_format_iso(panel.time_ms(t_end - 1))},
                     {"stage", with_subsystems ? std::string(stage_name(run_config.stage)) : std::string("BASELINE (subsystems off)")},
                     {"strategies", std::to_string(strategies.size())},
                     {"models", ensemble ? std::to_string(ensemble->members().size()) + " ACTIVE (" + a->models + ")" : "none"},
                     {"market", a->market},
                     {"fee / slippage", std::to_string(a->fee_bps) + " bps / " + std::to_string(a->slippage_bps) + " bps + " +
                                            std::to_string(a->slippage_spread) + " x spread"},
                     {"seed", std::to_string(a->seed)},
                     {"gaps", gap_policy_text(run_config.gaps)},
                     {"annualised with", market_shape(panel).annualisation()}};
      in.equity = ledger.equity_curve();
      in.trades = ledger.trades();
      in.orders = ledger.orders();
      in.initial_equity = run.result.initial_equity;
      in.bars_per_year = costs.bars_per_year;
      // Trades on price: the most traded symbols.
      std::map<std::string, int> per_symbol;
      for (const auto& t : in.trades) ++per_symbol[t.symbol.str()];
      std::vector<std::pair<int, std::string>> ranked;
      for (const auto& [sym, n] : per_symbol) ranked.emplace_back(-n, sym);
      std::sort(ranked.begin(), ranked.end());
      for (std::size_t i = 0; i < ranked.size() && i < 3; ++i) {
        const std::int32_t si = panel.symbol_index(ranked[i].second);
        PriceSeries p;
        p.symbol = ranked[i].second;
        const auto close = panel.series(Column::close, si);
        for (std::int32_t t = t_begin; t < t_end; ++t) {
          if (!std::isfinite(close[static_cast<std::size_t>(t)])) continue;
          p.times.push_back((panel.time_ms(t) + panel.interval_ms()) * kNsPerMillisecond);
          p.closes.push_back(close[static_cast<std::size_t>(t)]);
        }
        in.prices.push_back(std::move(p));
      }
      atomic_write(dir + "/report.json", report_json(in) + "\n");
      atomic_write(dir + "/report.html", report_html(in));
      return run;
    };
    auto summary = [&](const Run& run) {
      const ReplayResult& r = run.result;
      const SystemMetrics m = system_metrics(run.report.equity, run.report.trades, run.report.initial_equity, run.report.bars_per_year);
      std::printf("replayed %d bars x %d symbols (%llu symbol-bars) from %s: %llu signals, %llu orders, %llu denied, %llu rejected, %llu trades\n",
                  t_end - t_begin, panel.n_symbols(), static_cast<unsigned long long>(r.symbol_bars),
                  time_format_iso(panel.time_ms(t_begin)).c_str(), static_cast<unsigned long long>(r.stats.signals),
                  static_cast<unsigned long long>(r.stats.orders), static_cast<unsigned long long>(r.stats.denied),
                  static_cast<unsigned long long>(r.stats.rejected), static_cast<unsigned long long>(r.stats.trades));
      std::printf("equity %.2f -> %.2f (%+.2f%%)  Sharpe %.2f  max drawdown %.2f%%  win rate %.1f%%  fees %.2f\n", r.initial_equity,
                  r.final_equity, 100 * (r.final_equity / r.initial_equity - 1), m.sharpe_ratio, 100 * m.max_drawdown, 100 * m.win_rate, m.fees);
      if (run.subsystems)
        for (const auto& sub : run.subsystems->all()) {
          const SubsystemStatus st = sub->status();
          if (st.mode == SubsystemMode::off) continue;
          std::printf("  %-13s %-10s %6llu decisions, %6llu applied%s%s\n", st.name.c_str(), std::string(mode_name(st.mode)).c_str(),
                      static_cast<unsigned long long>(st.decisions), static_cast<unsigned long long>(st.applied),
                      st.last_decision.empty() ? "" : "  last: ", st.last_decision.c_str());
        }
    };
    auto stage_run = [](const std::string& name, const Run& run) {
      StageRun sr;
      sr.name = name;
      sr.report = run.report;
      sr.report.prices.clear();
      if (run.subsystems)
        for (const auto& sub : run.subsystems->all()) {
          const SubsystemStatus st = sub->status();
          if (st.mode == SubsystemMode::off) continue;
          sr.decisions[st.name] = st.actions;
          sr.applied[st.name] = st.applied;
        }
      return sr;
    };

    if (!a->compare_stages) {
      const auto run = run_one(config, a->out, true, "replay");
      if (!run) return;
      summary(*run);
      std::printf("wrote %s/ledger.db, events.qel, report.json, report.html (qtos orders --ledger %s/ledger.db list)\n", a->out.c_str(),
                  a->out.c_str());
      return;
    }
    // The comparison: the baseline with every subsystem off, then each stage with its presets (and the environment's
    // explicit settings), on the same data, strategies and costs.
    std::vector<StageRun> runs;
    std::printf("%-13s %9s %8s %9s %7s %8s\n", "run", "return", "Sharpe", "max DD", "trades", "denied");
    auto row = [&](const std::string& name, const Run& run) {
      runs.push_back(stage_run(name, run));
      const SystemMetrics m = system_metrics(run.report.equity, run.report.trades, run.report.initial_equity, run.report.bars_per_year);
      std::printf("%-13s %+8.2f%% %8.2f %8.2f%% %7lld %8llu\n", name.c_str(), 100 * m.total_return, m.sharpe_ratio, 100 * m.max_drawdown,
                  static_cast<long long>(m.total_trades), static_cast<unsigned long long>(run.result.stats.denied));
    };
    {
      const auto base = run_one(config, a->out + "/baseline", false, "BASELINE");
      if (!base) return;
      row("BASELINE", *base);
    }
    for (IntegrationStage st : {IntegrationStage::observation, IntegrationStage::partial, IntegrationStage::coordination, IntegrationStage::autonomy}) {
      ReplayArgs staged = *a;
      staged.stage = std::string(stage_name(st));
      Config sc = config_for(ctx, staged);
      sc.gaps = config.gaps;
      std::string dir_name(stage_name(st));
      std::transform(dir_name.begin(), dir_name.end(), dir_name.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      const auto run = run_one(sc, a->out + "/" + dir_name, true, std::string(stage_name(st)));
      if (!run) return;
      row(std::string(stage_name(st)), *run);
    }
    std::vector<std::pair<std::string, std::string>> info = runs.front().report.run_info;
    info.erase(std::remove_if(info.begin(), info.end(), [](const auto& kv) { return kv.first == "stage"; }), info.end());
    atomic_write(a->out + "/stages.json", stage_comparison_json(runs) + "\n");
    atomic_write(a->out + "/stages.html", stage_comparison_html("qtos stage comparison: " + a->data, info, runs));
    std::printf("wrote %s/stages.html and stages.json; each run's ledger and report under %s/<run>/\n", a->out.c_str(), a->out.c_str());
  });
}

void verbs_orders_register(CLI::App& app, CliContext& ctx) {
  auto ledger_path = std::make_shared<std::string>("ledger.db");
  auto* cmd = app.add_subcommand("orders", "read a trading ledger: orders, denials and their decision traces");
  cmd->add_option("--ledger", *ledger_path, "the ledger (qtos backtest --out DIR writes DIR/ledger.db)")->capture_default_str();
  cmd->require_subcommand(1);
  auto* list = cmd->add_subcommand("list", "orders, newest first");
  auto status = std::make_shared<std::string>();
  auto limit = std::make_shared<std::int64_t>(50);
  auto symbol = std::make_shared<std::string>();
  list->add_option("--status", *status, "only this status (NEW, FILLED, DENIED, REJECTED, CANCELED, EXPIRED, ...)");
  list->add_option("--symbol", *symbol, "only this symbol");
  list->add_option("--limit", *limit, "at most this many (-1: all)")->check(integer_range(-1))->capture_default_str();
  list->callback([ledger_path, status, limit, symbol] {
    const Ledger ledger(*ledger_path, store::OpenMode::existing);
    OrderQuery q;
    if (!status->empty()) {
      const auto s = enum_parse<OrderStatus>(*status);
      if (!s) throw UsageError("--status " + *status + ": expected one of " + enum_names_joined<OrderStatus>());
      q.status = *s;
    }
    q.symbol = *symbol;
    q.limit = *limit;
    std::printf("%-8s %-20s %-16s %-5s %-18s %-14s %-17s %20s %14s  %s\n", "ID", "TIME", "SYMBOL", "SIDE", "TYPE", "PURPOSE", "STATUS", "QTY",
                "AVG PRICE", "DETAIL");
    for (const auto& o : ledger.orders(q)) {
      std::string detail = o.deny_reason ? std::string(enum_name(*o.deny_reason)) + ": " + o.detail : o.detail;
      if (o.repeats > 0) detail += " (and " + std::to_string(o.repeats) + " times more until " + time_format_iso(o.updated / kNsPerMillisecond) + ")";
      const double qty = o.filled_qty > 0 ? o.filled_qty : o.request.qty;
      std::printf("%-8llu %-20s %-16s %-5s %-18s %-14s %-17s %20s %14.8g  %s\n", static_cast<unsigned long long>(o.request.order_id),
                  time_format_iso(o.created / kNsPerMillisecond).c_str(), o.request.symbol.str().c_str(),
                  std::string(enum_name(o.request.side)).c_str(), std::string(enum_name(o.request.type)).c_str(),
                  std::string(enum_name(o.purpose)).c_str(), std::string(enum_name(o.status)).c_str(),
                  (qty > 0 ? number_text(qty) : number_text(o.request.quote_qty) + " quote").c_str(), o.avg_price, detail.c_str());
    }
  });
  auto* show = cmd->add_subcommand("show", "one order with its fills and its decision trace");
  auto id = std::make_shared<std::int64_t>(0);
  show->add_option("ID", *id, "order id (qtos orders list shows them)")->required()->check(integer_range(1));
  show->callback([ledger_path, id] {
    const Ledger ledger(*ledger_path, store::OpenMode::existing);
    const auto o = ledger.order_get(static_cast<std::uint64_t>(*id));
    if (!o) throw UsageError("orders show " + std::to_string(*id) + ": no such order in " + *ledger_path);
    const auto& r = o->request;
    std::printf("order %llu (%s)  %s %s %s  purpose %s  strategy %s\n", static_cast<unsigned long long>(r.order_id), r.client_order_id.c_str(),
                r.symbol.str().c_str(), std::string(enum_name(r.side)).c_str(), std::string(enum_name(r.type)).c_str(),
                std::string(enum_name(o->purpose)).c_str(), r.strategy.str().c_str());
    std::printf("status %s", std::string(enum_name(o->status)).c_str());
    if (o->deny_reason) std::printf("  reason %s", std::string(enum_name(*o->deny_reason)).c_str());
    if (o->venue_code != 0) std::printf("  venue code %d", o->venue_code);
    if (!o->detail.empty()) std::printf("  (%s)", o->detail.c_str());
    if (o->repeats > 0)
      std::printf("\nthe same denial %u times more, the last at %s (one row for a decision that repeated)", o->repeats,
                  time_format(o->updated).c_str());
    std::printf("\nqty %.10g  quote qty %.10g  price %.10g  stop %.10g  reduce-only %s  leverage %g  confidence %.3f  policy v%llu\n", r.qty,
                r.quote_qty, r.price, r.stop_price, r.reduce_only ? "yes" : "no", r.leverage, o->confidence,
                static_cast<unsigned long long>(o->policy_version));
    std::printf("created %s  updated %s  filled %.10g at %.10g  fee %.6g  position %llu\n", time_format(o->created).c_str(),
                time_format(o->updated).c_str(), o->filled_qty, o->avg_price, o->fee, static_cast<unsigned long long>(o->position_id));
    const auto fills = ledger.fills(static_cast<std::uint64_t>(*id));
    if (!fills.empty()) std::printf("\nfills:\n");
    for (const auto& f : fills)
      std::printf("  #%llu %s %.10g at %.10g fee %.6g%s\n", static_cast<unsigned long long>(f.fill.fill_id), time_format(f.fill.ts).c_str(),
                  f.fill.qty, f.fill.price, f.fill.fee, f.fill.maker ? " (maker)" : "");
    std::printf("\ndecision trace (%zu steps):\n", o->trace.size());
    std::printf("  %-3s %-34s %-12s %-10s %-28s %-28s %s\n", "#", "HOOK", "SUBSYSTEM", "MODE", "BEFORE", "AFTER", "REASON");
    for (std::size_t i = 0; i < o->trace.size(); ++i) {
      const auto& s = o->trace[i];
      std::printf("  %-3zu %-34s %-12s %-10s %-28s %-28s %s%s\n", i + 1, s.hook.c_str(), s.subsystem.c_str(), std::string(mode_name(s.mode)).c_str(),
                  s.before.c_str(), s.after.c_str(), s.applied ? "" : "(not applied) ", s.reason.c_str());
    }
  });
  (void)ctx;
}

}  // namespace qtos::api
