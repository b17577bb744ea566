// `qtos evolve`: genetic (or random) search for strategies on a data directory: train, validation and test windows
// (or walk-forward folds of the same), a hall of fame ranked on validation and the selected strategy reported on test.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include <boost/json.hpp>

#include "api/cli_checks.hpp"
#include "api/redis/job_kinds.hpp"
#include "api/strategy_cli_util.hpp"
#include "api/verbs.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/registry/backends.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/strategy/deflated_sharpe.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/util/atomic_file.hpp"
#include "runtime/data/panel_info.hpp"
#include "runtime/util/progress.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos::api {
namespace {

struct EvolveArgs {
  std::string data, device, symbols, out, repo, gaps;
  std::int64_t population = -1, generations = -1;  // -1: QT_SG_POPULATION_SIZE / QT_SG_GENERATIONS
  std::uint64_t seed = 1;
  double train = 0.5, validation = -1, test = 0.3;  // validation -1: 0.2 of the bars (0.25 of each fold's with --folds)
  std::string search = "genetic";
  double budget = 0;  // wall seconds; 0: none
  double fee_bps = 4.0, slippage_bps = 2.0, slippage_spread = 0.0, capital = 10'000.0, min_trades = 20;
  std::int32_t top = 10;
  std::int32_t folds = 0, purge = 200;  // --folds K: walk-forward in time instead of one train/test split
  bool rolling = false;
  std::string objective = "sharpe";
  std::string workers;  // --workers redis://...: each generation's backtests run on `qtos worker`s (docs/SCALE_OUT.md)
};

boost::json::array parents_json(const HallOfFameEntry& h) {
  boost::json::array out;
  for (std::uint64_t p : h.parents) out.push_back(boost::json::value(genome_id_of_hash(p)));
  return out;
}

boost::json::object metrics_json(const BacktestMetrics& m) {
  auto n = [](double v) { return std::isfinite(v) ? boost::json::value(v) : boost::json::value(nullptr); };
  return {{"total_return", n(m.total_return)}, {"sharpe", n(m.sharpe)},     {"sortino", n(m.sortino)},
          {"max_drawdown", n(m.max_drawdown)}, {"win_rate", n(m.win_rate)}, {"trades", m.trades},
          {"profit_factor", n(m.profit_factor)}, {"avg_trade", n(m.avg_trade)}, {"exposure", n(m.exposure)}};
}

/// A window's metrics with its bars, its deflated Sharpe and the number of trials that DSR was deflated for.
boost::json::object window_json(const BacktestMetrics& m, std::int32_t begin, std::int32_t end, double dsr, std::int64_t trials) {
  boost::json::object o = metrics_json(m);
  o["bars"] = boost::json::array{begin, end};
  o["deflated_sharpe"] = dsr;
  o["dsr_trials"] = trials;
  return o;
}

void window_set(EvolveOptions& opt, const FoldWindow& w) {
  opt.train_begin = w.train_begin;
  opt.train_end = w.train_end;
  opt.validation_begin = w.validation_begin;
  opt.validation_end = w.validation_end;
  opt.test_begin = w.test_begin;
  opt.test_end = w.test_end;
}

}  // namespace

void verbs_evolve_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<EvolveArgs>();
  auto* cmd = app.add_subcommand("evolve", "evolve trading strategies by genetic search; train in-sample, rank out-of-sample");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp, from qtos data synth|import)")->required();
  cmd->add_option("--population", a->population, "genomes per generation, 4 to 1000000 (default: QT_SG_POPULATION_SIZE, 50)")
      ->check(integer_range(4, 1'000'000));
  cmd->add_option("--generations", a->generations, "generations, 1 to 100000 (default: QT_SG_GENERATIONS, 100)")
      ->check(integer_range(1, 100'000));
  cmd->add_option("--device", a->device, "auto|cpu|cuda (default: QT_DEVICE, auto)");
  cmd->add_option("--seed", a->seed, "random seed (same seed, same hall of fame)")->check(unsigned_integer())->capture_default_str();
  auto* train_opt = cmd->add_option("--train", a->train, "fraction of the bars for the train window (the search's fitness), from the start")
                        ->check(number_range(0, 1, true))->capture_default_str();
  cmd->add_option("--validation", a->validation,
                  "fraction of the bars for the validation window right after train (ranks the hall of fame, selects the "
                  "strategy; default 0.2); with --folds, the fraction of each fold's bars before its purge (default 0.25); 0: none")
      ->check(number_range(0, 1));
  auto* test_opt = cmd->add_option("--test", a->test, "fraction of the bars for the test window after validation (touched once, to report)")
                       ->check(number_range(0, 1, true))->capture_default_str();
  auto* folds_opt = cmd->add_option("--folds", a->folds,
                                    "walk-forward with K folds in time: K+1 blocks, fold k trains before block k and tests on it "
                                    "(replaces --train/--test); 1 to 100")
                        ->check(integer_range(1, 100));
  folds_opt->excludes(train_opt)->excludes(test_opt);
  cmd->add_option("--purge", a->purge, "with --folds: bars left out between each train window and its test block")
      ->check(integer_range(0))->capture_default_str()->needs(folds_opt);
  cmd->add_flag("--rolling", a->rolling, "with --folds: train on the previous block only (default: everything before)")->needs(folds_opt);
  cmd->add_option("--objective", a->objective, "selection: sharpe (train Sharpe) or pareto (train return vs max drawdown, NSGA-II)")
      ->capture_default_str();
  cmd->add_option("--search", a->search, "genetic, or random (random search over the same grammar: the baseline to beat)")
      ->capture_default_str();
  cmd->add_option("--budget", a->budget, "wall-clock budget in seconds: stop after the generation that uses it up (0: none); without --generations the budget alone ends the search")
      ->check(number_range(0, 1e9))->capture_default_str();
  cmd->add_option("--symbols", a->symbols, "comma-separated symbols (default: all)");
  cost_options_add(cmd, *a);
  cmd->add_option("--capital", a->capital, "initial capital per genome (split over the symbols)")
      ->check(number_range(0, std::numeric_limits<double>::max(), true))->capture_default_str();
  cmd->add_option("--min-trades", a->min_trades, "train trades below this make a genome unfit")
      ->check(number_range(0, 1e9))->capture_default_str();
  cmd->add_option("--top", a->top, "hall of fame size, 1 to 10000")->check(integer_range(1, 10'000))->capture_default_str();
  cmd->add_option("--out", a->out, "also write the hall of fame as JSON to this file");
  cmd->add_option("--repo", a->repo, "also store the hall of fame in this strategy repository (SQLite), status BACKTEST");
  gaps_option_add(cmd, a->gaps);
  cmd->add_option("--workers", a->workers, "redis://host[:port]: split each generation's backtests over the live `qtos worker`s "
                                         "(same hall of fame as one process for the same seed)");
  cmd->callback([a, &ctx] {
    stop_signals_install();  // from here on SIGINT/SIGTERM stop the search at the next generation instead of killing it
    const StopToken stop = process_stop_token();
    const Config& cfg = ctx.config();
    const DeviceKind kind = a->device.empty() ? cfg.device : device_parse(a->device, "--device");
    // Option values were range-checked at parse time; the defaults come from the configuration.
    const std::int64_t pop = a->population < 0 ? cfg.sg_population_size : a->population;
    // With --budget and no --generations the budget alone ends the search: the generation count follows from it.
    const bool budget_only = a->budget > 0 && a->generations < 0;
    const std::int64_t gens = budget_only ? 100'000 : (a->generations < 0 ? cfg.sg_generations : a->generations);
    if (pop < 4 || pop > 1'000'000)
      throw std::invalid_argument("QT_SG_POPULATION_SIZE=" + std::to_string(pop) + " (the default of --population): expected 4 to 1000000");
    if (gens < 1 || gens > 100'000)
      throw std::invalid_argument("QT_SG_GENERATIONS=" + std::to_string(gens) + " (the default of --generations): expected 1 to 100000");
    const double validation = a->validation >= 0 ? a->validation : (a->folds != 0 ? 0.25 : 0.2);
    if (a->folds != 0 && !(validation < 1))
      throw UsageError("--validation " + std::to_string(validation) + " with --folds: expected a fraction in [0, 1)");
    if (a->folds == 0 && !(a->test + validation <= 1 - a->train + 1e-12))
      throw UsageError("--train " + std::to_string(a->train) + " --validation " + std::to_string(validation) + " --test " +
                       std::to_string(a->test) + ": expected fractions with train + validation + test <= 1");
    const EvolveObjective objective = evolve_objective_parse(a->objective, "--objective");
    EvolveSearch search = EvolveSearch::genetic;
    try {
      search = evolve_search_parse(a->search, "--search");
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    const kernels::GapPolicy gaps = gaps_resolve(a->gaps, cfg);
    auto backends = backtest_backends();
    const BacktestBackend& backend = backend_select(backends, kind);

    // Everything the end of the run needs is checked now, before minutes of search: the --out file's directory takes
    // a new file, and the --repo repository opens (created when new). At the end --out is written before the
    // repository, so a repository that fails then (a full disk) still leaves the hall of fame in the JSON file.
    if (!a->out.empty()) output_path_check("--out", a->out);
    std::optional<StrategyRepository> repo;
    if (!a->repo.empty()) {
      std::error_code ec;
      if (!std::filesystem::exists(a->repo, ec)) output_path_check("--repo", a->repo);  // a usage error names the directory
      try {
        repo.emplace(a->repo);  // opened (or created) now: a full disk or a damaged file stops the run before it starts
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string("--repo ") + a->repo + ": " + e.what() + "; checked before starting, nothing was run");
      }
    }

    const MarketPanel full = panel_load(panel_path(a->data));
    const MarketPanel panel = panel_select(full, a->symbols, a->data);
    const std::int32_t T = panel.n_bars();
    EvolveOptions opt;
    opt.population = static_cast<std::int32_t>(pop);
    opt.generations = static_cast<std::int32_t>(gens);
    opt.seed = a->seed;
    opt.min_trades = a->min_trades;
    opt.hall_of_fame = a->top;
    opt.objective = objective;
    opt.stop = stop;
    if (!a->workers.empty()) opt.evaluator = redis::evolve_workers_evaluator(a->workers, a->data, a->symbols);
    opt.costs = costs_from(a->fee_bps, a->slippage_bps, a->slippage_spread, a->capital, panel);
    opt.search = search;
    opt.time_budget_seconds = a->budget;
    opt.train_begin = 0;
    opt.train_end = static_cast<std::int32_t>(std::floor(a->train * T));
    opt.validation_begin = opt.train_end;
    opt.validation_end = std::min(T, opt.validation_begin + static_cast<std::int32_t>(std::floor(validation * T)));
    opt.test_begin = opt.validation_end;
    opt.test_end = std::min(T, opt.test_begin + static_cast<std::int32_t>(std::floor(a->test * T)));
    std::optional<WalkForwardOptions> wf;
    std::vector<FoldWindow> windows;
    if (a->folds != 0) {
      wf.emplace();
      wf->folds = a->folds;
      wf->purge = a->purge;
      wf->rolling = a->rolling;
      wf->validation = validation;
      windows = walk_forward_windows(T, *wf);  // names --folds / --purge when the data is too short
      window_set(opt, windows.back());
    } else if (opt.train_end < 50 || opt.test_end - opt.test_begin < 20 ||
               (validation > 0 && opt.validation_end - opt.validation_begin < 20))
      throw std::invalid_argument(a->data + ": " + std::to_string(T) + " bars give a train window of " + std::to_string(opt.train_end) +
                                  ", a validation window of " + std::to_string(opt.validation_end - opt.validation_begin) +
                                  " and a test window of " + std::to_string(opt.test_end - opt.test_begin) +
                                  " bars; expected at least 50, 20 (or none with --validation 0) and 20 (more data or other "
                                  "--train/--validation/--test)");

    const std::string how_long = budget_only ? " per generation for a " + num_cell(a->budget, "%g") + " s budget"
                                 : " x " + std::to_string(opt.generations) + " generations" +
                                       (a->budget > 0 ? " (or a " + num_cell(a->budget, "%g") + " s budget, whichever ends first)" : "");
    std::printf("evolving %d genomes%s by %s search on %d symbols (%s), device %s, seed %llu\n", opt.population, how_long.c_str(),
                evolve_search_name(search),
                panel.n_symbols(), a->data.c_str(), std::string(backend.name()).c_str(), static_cast<unsigned long long>(opt.seed));
    if (wf) {
      std::printf("walk-forward: %d folds (%s), purge %d bars, objective %s; fee %.1f bps, slippage %.1f bps + %.2f x spread\n", wf->folds,
                  wf->rolling ? "rolling" : "anchored", wf->purge, evolve_objective_name(objective), a->fee_bps, a->slippage_bps,
                  a->slippage_spread);
      for (std::size_t k = 0; k < windows.size(); ++k)
        std::printf("  fold %zu: train bars [%d, %d), validation bars [%d, %d), test bars [%d, %d)\n", k + 1, windows[k].train_begin,
                    windows[k].train_end, windows[k].validation_begin, windows[k].validation_end, windows[k].test_begin, windows[k].test_end);
    } else {
      std::printf("train bars [%d, %d), validation bars [%d, %d), test bars [%d, %d) of %d; fee %.1f bps, slippage %.1f bps + %.2f x spread\n",
                  opt.train_begin, opt.train_end, opt.validation_begin, opt.validation_end, opt.test_begin, opt.test_end, T, a->fee_bps,
                  a->slippage_bps, a->slippage_spread);
    }
    std::printf("gaps %s; Sharpe annualised with %s\n", gap_policy_text(gaps).c_str(),
                market_shape(panel).annualisation().c_str());
    std::fflush(stdout);
    const StrategyFeatures features = strategy_features_compute(panel.view(), false, gaps);
    for (const std::string& w : evolve_warnings_before(panel.view(), features, opt)) std::fprintf(stderr, "warning: %s\n", w.c_str());
    const std::int32_t n_folds = wf ? wf->folds : 1;
    Progress progress("evolve", static_cast<std::uint64_t>(opt.generations) * static_cast<std::uint64_t>(n_folds));
    auto on_generation = [&](std::int32_t fold, const GenerationReport& g) {
      char status[160];
      std::snprintf(status, sizeof status, "%sgen %d best %.3f median %.3f diversity %.2f trials %lld %.3g bar-steps/s",
                    wf ? ("fold " + std::to_string(fold) + " ").c_str() : "", g.generation + 1, g.best_fitness, g.median_fitness,
                    g.diversity, static_cast<long long>(g.trials), g.seconds > 0 ? g.bar_steps / g.seconds : 0.0);
      progress.update(static_cast<std::uint64_t>(fold - 1) * static_cast<std::uint64_t>(opt.generations) +
                          static_cast<std::uint64_t>(g.generation + 1),
                      status);
    };
    const auto search_started = std::chrono::steady_clock::now();
    std::optional<WalkForwardResult> wr;
    EvolveResult r;
    if (wf) {
      wf->evolve = opt;
      wr = evolve_walk_forward(panel.view(), features, backend, *wf, on_generation);
      r = wr->last;
      // The final hall of fame is the last fold that ran: fold K, or the fold a stop ended.
      window_set(opt, wr->folds.back().window);
    } else {
      r = evolve(panel.view(), features, backend, opt, [&](const GenerationReport& g) { on_generation(1, g); });
    }
    const double search_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - search_started).count();
    for (const std::string& w : evolve_warnings_after(r)) std::fprintf(stderr, "warning: %s\n", w.c_str());
    const bool partial = wr ? wr->partial : r.partial;
    if (partial)
      progress.stop(std::string("stopped by ") + stop_signal_name(stop.signal()));
    else
      progress.finish();
    if (partial) {
      std::printf("stopped by %s after generation %d of %d%s: the results below come from the completed generations only "
                  "(a partial hall of fame)\n",
                  stop_signal_name(stop.signal()), r.generations_completed, opt.generations,
                  wr ? (" in fold " + std::to_string(wr->folds.size()) + " of " + std::to_string(wf->folds) + " (" +
                        std::to_string(wr->folds_completed) + " folds complete)")
                           .c_str()
                     : "");
    }
    if (wr) {
      std::printf("\nwalk-forward folds (each fold's genome is its selected one, best on its validation window, chosen before "
                  "its test block):\n");
      std::printf("%4s %-15s %-15s %7s  %-16s %8s | %8s %8s %6s | %8s\n", "FOLD", "TRAIN", "TEST", "TRIALS", "CHOSEN", "IS SHRP",
                  "OOS SHRP", "OOS RET", "TRADES", "BEST OOS");
      for (const auto& f : wr->folds) {
        const std::string tr = "[" + std::to_string(f.window.train_begin) + "," + std::to_string(f.window.train_end) + ")";
        const std::string te = "[" + std::to_string(f.window.test_begin) + "," + std::to_string(f.window.test_end) + ")";
        std::printf("%4d %-15s %-15s %7lld  %-16s %8s | %8s %8s %6.0f | %8s\n", f.fold, tr.c_str(), te.c_str(),
                    static_cast<long long>(f.trials), genome_id(f.chosen.genome).c_str(), num_cell(f.chosen.train.sharpe, "%.2f").c_str(),
                    num_cell(f.chosen.test.sharpe, "%.2f").c_str(), num_cell(100 * f.chosen.test.total_return, "%+.1f%%").c_str(),
                    f.chosen.test.trades, num_cell(f.best_oos_sharpe, "%.2f").c_str());
      }
      std::printf("walk-forward OOS (chosen genomes, test blocks joined): Sharpe %s, return %s, worst fold drawdown %s, trades %.0f; "
                  "mean IS Sharpe %s, efficiency %s; DSR %s (one genome per block, chosen before it; %lld trials in all folds)\n",
                  num_cell(wr->pooled_oos.sharpe, "%.2f").c_str(), num_cell(100 * wr->pooled_oos.total_return, "%+.1f%%").c_str(),
                  num_cell(100 * wr->pooled_oos.max_drawdown, "%.1f%%").c_str(), wr->pooled_oos.trades,
                  num_cell(wr->mean_is_sharpe, "%.2f").c_str(), num_cell(wr->efficiency, "%.2f").c_str(),
                  num_cell(wr->deflated_sharpe, "%.3f").c_str(), static_cast<long long>(wr->trials));
      std::printf("final hall of fame: the last fold's (train [%d, %d), test [%d, %d))\n", opt.train_begin, opt.train_end,
                  opt.test_begin, opt.test_end);
    }

    std::printf("\n%lld distinct genomes tried in %.2f s of search%s; %.3g bar-steps in %.2f s (%.3g bar-steps/s); expected max "
                "Sharpe of that many zero-skill trials: %.2f annualised\n",
                static_cast<long long>(r.trials), search_seconds,
                a->budget > 0 ? (" (budget " + num_cell(a->budget, "%g") + " s)").c_str() : "", r.bar_steps, r.seconds,
                r.seconds > 0 ? r.bar_steps / r.seconds : 0.0,
                expected_max_sharpe(static_cast<double>(r.trials), r.sr_variance) * std::sqrt(opt.costs.bars_per_year));
    const bool has_validation = opt.validation_end != opt.validation_begin;
    std::printf("hall of fame (the best train fitnesses, ranked by %s; the test columns were measured after the ranking; "
                "DSR = deflated Sharpe on the validation window over the %zu compared):\n",
                has_validation ? "validation Sharpe" : "train fitness (no validation window)", r.hall_of_fame.size());
    std::printf("%4s  %-16s %4s %8s %8s | %8s %8s %7s %6s %6s %6s %5s | %6s\n", "RANK", "ID", "GEN", "TR SHRP", "VAL SHRP",
                "TST SHRP", "TST RET", "MAX DD", "WIN", "TRADES", "PF", "EXPO", "VAL DSR");
    for (std::size_t i = 0; i < r.hall_of_fame.size(); ++i) {
      const auto& h = r.hall_of_fame[i];
      std::printf("%4zu  %-16s %4d %8s %8s | %8s %8s %7s %6s %6.0f %6s %5s | %6s\n", i + 1, genome_id(h.genome).c_str(),
                  h.generation, num_cell(h.train.sharpe, "%.2f").c_str(), num_cell(h.validation.sharpe, "%.2f").c_str(),
                  num_cell(h.test.sharpe, "%.2f").c_str(), num_cell(100 * h.test.total_return, "%+.1f%%").c_str(),
                  num_cell(100 * h.test.max_drawdown, "%.1f%%").c_str(), num_cell(100 * h.test.win_rate, "%.0f%%").c_str(), h.test.trades,
                  num_cell(h.test.profit_factor, "%.2f").c_str(), num_cell(100 * h.test.exposure, "%.0f%%").c_str(),
                  num_cell(h.validation_dsr, "%.3f").c_str());
      std::printf("      %s\n      %s\n", genome_rules(h.genome).c_str(), genome_encode(h.genome).c_str());
      std::string parents;
      for (std::uint64_t p : h.parents) parents += (parents.empty() ? "" : ", ") + genome_id_of_hash(p);
      std::printf("      parents: %s\n", parents.empty() ? "none (random genome)" : parents.c_str());
    }
    const HallOfFameEntry& sel = r.hall_of_fame.front();
    std::printf("selected: %s (rank 1, chosen on the %s window); train Sharpe %s, validation Sharpe %s, test Sharpe %s "
                "(return %s, %.0f trades, test DSR %s: N = 1, the test window saw only this choice)\n",
                genome_id(sel.genome).c_str(), has_validation ? "validation" : "train", num_cell(sel.train.sharpe, "%.2f").c_str(),
                num_cell(sel.validation.sharpe, "%.2f").c_str(), num_cell(sel.test.sharpe, "%.2f").c_str(),
                num_cell(100 * sel.test.total_return, "%+.1f%%").c_str(), sel.test.trades, num_cell(sel.test_dsr, "%.3f").c_str());
    if (!a->out.empty()) {
      boost::json::array hof;
      for (const auto& h : r.hall_of_fame)
        hof.push_back({{"id", genome_id(h.genome)}, {"code", genome_encode(h.genome)}, {"rules", genome_rules(h.genome)},
                       {"generation", h.generation}, {"parents", parents_json(h)}, {"fitness", h.fitness},
                       {"train", metrics_json(h.train)}, {"validation", metrics_json(h.validation)}, {"test", metrics_json(h.test)},
                       {"validation_dsr", h.validation_dsr}, {"test_dsr", h.test_dsr}});
      const boost::json::object selected{
          {"id", genome_id(sel.genome)},
          {"code", genome_encode(sel.genome)},
          {"rules", genome_rules(sel.genome)},
          {"chosen_on", has_validation ? "validation" : "train"},
          {"train", window_json(sel.train, opt.train_begin, opt.train_end, sel.train_dsr, r.trials)},
          {"validation", has_validation ? boost::json::value(window_json(sel.validation, opt.validation_begin, opt.validation_end,
                                                                         sel.validation_dsr, static_cast<std::int64_t>(r.hall_of_fame.size())))
                                        : boost::json::value(nullptr)},
          {"test", window_json(sel.test, opt.test_begin, opt.test_end, sel.test_dsr, 1)}};
      boost::json::object doc{{"data", a->data},
                              {"seed", a->seed},
                              {"population", opt.population},
                              {"generations", opt.generations},
                              {"trials", r.trials},
                              {"search", evolve_search_name(search)},
                              {"budget_seconds", a->budget},
                              {"search_seconds", search_seconds},
                              {"train", boost::json::array{opt.train_begin, opt.train_end}},
                              {"validation", boost::json::array{opt.validation_begin, opt.validation_end}},
                              {"test", boost::json::array{opt.test_begin, opt.test_end}},
                              {"objective", evolve_objective_name(objective)},
                              {"selected", selected},
                              {"gaps", gap_policy_text(gaps)},
                              {"bars_per_year", opt.costs.bars_per_year},
                              {"partial", partial},
                              {"generations_completed", r.generations_completed},
                              {"hall_of_fame", std::move(hof)}};
      if (partial) doc["stopped_by"] = stop_signal_name(stop.signal());
      if (wr) {
        auto n = [](double v) { return std::isfinite(v) ? boost::json::value(v) : boost::json::value(nullptr); };
        boost::json::array folds;
        for (const auto& f : wr->folds)
          folds.push_back({{"fold", f.fold},
                           {"train", boost::json::array{f.window.train_begin, f.window.train_end}},
                           {"validation", boost::json::array{f.window.validation_begin, f.window.validation_end}},
                           {"test", boost::json::array{f.window.test_begin, f.window.test_end}},
                           {"trials", f.trials},
                           {"chosen", {{"id", genome_id(f.chosen.genome)}, {"code", genome_encode(f.chosen.genome)},
                                       {"parents", parents_json(f.chosen)}, {"train", metrics_json(f.chosen.train)},
                                       {"validation", metrics_json(f.chosen.validation)}, {"test", metrics_json(f.chosen.test)}}},
                           {"best_oos_sharpe", n(f.best_oos_sharpe)}});
        doc["walk_forward"] = {{"folds", std::move(folds)},
                               {"purge", wf->purge},
                               {"rolling", wf->rolling},
                               {"pooled_out_of_sample", metrics_json(wr->pooled_oos)},
                               {"mean_in_sample_sharpe", n(wr->mean_is_sharpe)},
                               {"efficiency", n(wr->efficiency)},
                               {"deflated_sharpe", n(wr->deflated_sharpe)},
                               {"trials", wr->trials},
                               {"folds_completed", wr->folds_completed}};
      }
      atomic_write(a->out, boost::json::serialize(doc) + "\n");  // throws naming the path and the reason; old file kept
      std::printf("wrote %s%s\n", a->out.c_str(), partial ? " (partial hall of fame)" : "");
    }
    if (!a->repo.empty()) {
      const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count();
      std::vector<StrategyRecord> records;
      for (const auto& h : r.hall_of_fame) {
        StrategyRecord rec;
        rec.genome = h.genome;
        rec.generation = h.generation;
        rec.origin = "evolve seed " + std::to_string(a->seed) + " on " + a->data + (wf ? " (last walk-forward fold)" : "") +
                     (partial ? " (partial: stopped after generation " + std::to_string(r.generations_completed) + " of " +
                                    std::to_string(opt.generations) + ")"
                              : "");
        for (std::uint64_t p : h.parents) rec.parents.push_back(genome_id_of_hash(p));
        rec.gaps = gap_policy_text(gaps);
        const boost::json::object m{{"fitness", h.fitness},
                                    {"selected", &h == &r.hall_of_fame.front()},
                                    {"search", evolve_search_name(search)},
                                    {"train", window_json(h.train, opt.train_begin, opt.train_end, h.train_dsr, r.trials)},
                                    {"validation", window_json(h.validation, opt.validation_begin, opt.validation_end, h.validation_dsr,
                                                               static_cast<std::int64_t>(r.hall_of_fame.size()))},
                                    {"test", window_json(h.test, opt.test_begin, opt.test_end, h.test_dsr, 1)},
                                    {"trials", r.trials}};
        rec.backtest_metrics = boost::json::serialize(m);
        records.push_back(std::move(rec));
      }
      const int added = repo->upsert_all(records, now);  // the whole hall of fame or nothing
      std::printf("stored %zu strategies in %s (%d new)\n", r.hall_of_fame.size(), a->repo.c_str(), added);
    }
    if (stop.stop_requested()) {
      std::printf("stopped by %s: %s\n", stop_signal_name(stop.signal()),
                  partial ? "the completed generations were written; exiting" : "the search had completed; everything was written");
      ctx.exit_code = stop_exit_code(stop.signal());
    }
  });
}

}  // namespace qtos::api
