// `qtos evolve`: genetic search for strategies on a data directory, with walk-forward validation and a hall of fame.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include <boost/json.hpp>

#include "api/strategy_cli_util.hpp"
#include "api/verbs.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/strategy/deflated_sharpe.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/util/progress.hpp"

namespace qtos::api {
namespace {

struct EvolveArgs {
  std::string data, device, symbols, out, repo;
  std::int64_t population = -1, generations = -1;  // -1: QT_SG_POPULATION_SIZE / QT_SG_GENERATIONS
  std::uint64_t seed = 1;
  double train = 0.7, test = 0.3;
  double fee_bps = 4.0, slippage_bps = 2.0, slippage_spread = 0.0, capital = 10'000.0, min_trades = 20;
  std::int32_t top = 10;
};

boost::json::object metrics_json(const BacktestMetrics& m) {
  auto n = [](double v) { return std::isfinite(v) ? boost::json::value(v) : boost::json::value(nullptr); };
  return {{"total_return", n(m.total_return)}, {"sharpe", n(m.sharpe)},     {"sortino", n(m.sortino)},
          {"max_drawdown", n(m.max_drawdown)}, {"win_rate", n(m.win_rate)}, {"trades", m.trades},
          {"profit_factor", n(m.profit_factor)}, {"avg_trade", n(m.avg_trade)}, {"exposure", n(m.exposure)}};
}

}  // namespace

void verbs_evolve_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<EvolveArgs>();
  auto* cmd = app.add_subcommand("evolve", "evolve trading strategies by genetic search; train in-sample, rank out-of-sample");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp, from qtos data synth|import)")->required();
  cmd->add_option("--population", a->population, "genomes per generation (default: QT_SG_POPULATION_SIZE, 50)");
  cmd->add_option("--generations", a->generations, "generations (default: QT_SG_GENERATIONS, 100)");
  cmd->add_option("--device", a->device, "auto|cpu|cuda (default: QT_DEVICE, auto)");
  cmd->add_option("--seed", a->seed, "random seed (same seed, same hall of fame)")->capture_default_str();
  cmd->add_option("--train", a->train, "fraction of the bars for the train (in-sample) window, from the start")->capture_default_str();
  cmd->add_option("--test", a->test, "fraction of the bars for the test (out-of-sample) window, right after train")->capture_default_str();
  cmd->add_option("--symbols", a->symbols, "comma-separated symbols (default: all)");
  cmd->add_option("--fee-bps", a->fee_bps, "taker fee per fill in basis points")->capture_default_str();
  cmd->add_option("--slippage-bps", a->slippage_bps, "slippage per fill in basis points")->capture_default_str();
  cmd->add_option("--slippage-spread", a->slippage_spread,
                  "plus this fraction of the spread proxy (Corwin-Schultz, 20 bars) of the bar before each fill")
      ->capture_default_str();
  cmd->add_option("--capital", a->capital, "initial capital per genome (split over the symbols)")->capture_default_str();
  cmd->add_option("--min-trades", a->min_trades, "train trades below this make a genome unfit")->capture_default_str();
  cmd->add_option("--top", a->top, "hall of fame size")->capture_default_str();
  cmd->add_option("--out", a->out, "also write the hall of fame as JSON to this file");
  cmd->add_option("--repo", a->repo, "also store the hall of fame in this strategy repository (SQLite), status BACKTEST");
  cmd->callback([a, &ctx] {
    const Config& cfg = ctx.config();
    const DeviceKind kind = a->device.empty() ? cfg.device : device_parse(a->device, "--device");
    const std::int64_t pop = a->population < 0 ? cfg.sg_population_size : a->population;
    const std::int64_t gens = a->generations < 0 ? cfg.sg_generations : a->generations;
    if (pop < 4 || pop > 1'000'000) throw std::invalid_argument("--population " + std::to_string(pop) + ": expected 4 to 1000000");
    if (gens < 1 || gens > 100'000) throw std::invalid_argument("--generations " + std::to_string(gens) + ": expected 1 to 100000");
    if (!(a->train > 0 && a->train < 1) || !(a->test > 0 && a->test <= 1 - a->train + 1e-12))
      throw std::invalid_argument("--train " + std::to_string(a->train) + " --test " + std::to_string(a->test) +
                                  ": expected fractions in (0, 1) with train + test <= 1");
    if (a->top < 1) throw std::invalid_argument("--top " + std::to_string(a->top) + ": expected >= 1");
    auto backends = backtest_backends();
    const BacktestBackend& backend = backend_select(backends, kind);

    const MarketPanel full = panel_load(panel_path(a->data));
    const MarketPanel panel = panel_select(full, a->symbols, a->data);
    const std::int32_t T = panel.n_bars();
    EvolveOptions opt;
    opt.population = static_cast<std::int32_t>(pop);
    opt.generations = static_cast<std::int32_t>(gens);
    opt.seed = a->seed;
    opt.min_trades = a->min_trades;
    opt.hall_of_fame = a->top;
    opt.costs = costs_from(a->fee_bps, a->slippage_bps, a->slippage_spread, a->capital, panel);
    opt.train_begin = 0;
    opt.train_end = static_cast<std::int32_t>(std::floor(a->train * T));
    opt.test_begin = opt.train_end;
    opt.test_end = std::min(T, opt.train_end + static_cast<std::int32_t>(std::floor(a->test * T)));
    if (opt.train_end < 50 || opt.test_end - opt.test_begin < 20)
      throw std::invalid_argument(a->data + ": " + std::to_string(T) + " bars give a train window of " + std::to_string(opt.train_end) +
                                  " and a test window of " + std::to_string(opt.test_end - opt.test_begin) +
                                  " bars; expected at least 50 and 20 (more data or other --train/--test)");

    std::printf("evolving %d genomes x %d generations on %d symbols (%s), device %s, seed %llu\n", opt.population,
                opt.generations, panel.n_symbols(), a->data.c_str(), std::string(backend.name()).c_str(),
                static_cast<unsigned long long>(opt.seed));
    std::printf("train bars [%d, %d), test bars [%d, %d) of %d; fee %.1f bps, slippage %.1f bps + %.2f x spread\n", opt.train_begin, opt.train_end,
                opt.test_begin, opt.test_end, T, a->fee_bps, a->slippage_bps, a->slippage_spread);
    std::fflush(stdout);
    const StrategyFeatures features = strategy_features_compute(panel.view());
    Progress progress("evolve", static_cast<std::uint64_t>(opt.generations));
    const EvolveResult r = evolve(panel.view(), features, backend, opt, [&](const GenerationReport& g) {
      char status[160];
      std::snprintf(status, sizeof status, "gen %d best %.3f median %.3f diversity %.2f trials %lld %.3g bar-steps/s",
                    g.generation + 1, g.best_fitness, g.median_fitness, g.diversity, static_cast<long long>(g.trials),
                    g.seconds > 0 ? g.bar_steps / g.seconds : 0.0);
      progress.update(static_cast<std::uint64_t>(g.generation + 1), status);
    });
    progress.finish();

    std::printf("\n%lld distinct genomes tried; %.3g bar-steps in %.2f s (%.3g bar-steps/s); expected max Sharpe of that many "
                "zero-skill trials: %.2f annualised\n",
                static_cast<long long>(r.trials), r.bar_steps, r.seconds, r.seconds > 0 ? r.bar_steps / r.seconds : 0.0,
                expected_max_sharpe(static_cast<double>(r.trials), r.sr_variance) * std::sqrt(opt.costs.bars_per_year));
    std::printf("hall of fame (ranked by out-of-sample Sharpe; DSR = deflated Sharpe, probability the OOS Sharpe is skill):\n");
    std::printf("%4s  %-16s %4s %8s | %8s %8s %7s %6s %6s %6s %5s | %6s\n", "RANK", "ID", "GEN", "IS SHRP", "OOS SHRP",
                "OOS RET", "MAX DD", "WIN", "TRADES", "PF", "EXPO", "DSR");
    for (std::size_t i = 0; i < r.hall_of_fame.size(); ++i) {
      const auto& h = r.hall_of_fame[i];
      std::printf("%4zu  %-16s %4d %8s | %8s %8s %7s %6s %6.0f %6s %5s | %6s\n", i + 1, genome_id(h.genome).c_str(),
                  h.generation, num_cell(h.train.sharpe, "%.2f").c_str(), num_cell(h.test.sharpe, "%.2f").c_str(),
                  num_cell(100 * h.test.total_return, "%+.1f%%").c_str(), num_cell(100 * h.test.max_drawdown, "%.1f%%").c_str(),
                  num_cell(100 * h.test.win_rate, "%.0f%%").c_str(), h.test.trades, num_cell(h.test.profit_factor, "%.2f").c_str(),
                  num_cell(100 * h.test.exposure, "%.0f%%").c_str(), num_cell(h.deflated_sharpe, "%.3f").c_str());
      std::printf("      %s\n      %s\n", genome_rules(h.genome).c_str(), genome_encode(h.genome).c_str());
    }
    if (!a->repo.empty()) {
      StrategyRepository repo(a->repo);
      const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count();
      int added = 0;
      for (const auto& h : r.hall_of_fame) {
        StrategyRecord rec;
        rec.genome = h.genome;
        rec.generation = h.generation;
        rec.origin = "evolve seed " + std::to_string(a->seed) + " on " + a->data;
        const boost::json::object m{{"in_sample", metrics_json(h.train)}, {"out_of_sample", metrics_json(h.test)},
                                    {"deflated_sharpe", h.deflated_sharpe}, {"trials", r.trials},
                                    {"train", boost::json::array{opt.train_begin, opt.train_end}},
                                    {"test", boost::json::array{opt.test_begin, opt.test_end}}};
        rec.backtest_metrics = boost::json::serialize(m);
        added += repo.upsert(rec, now) ? 1 : 0;
      }
      std::printf("stored %zu strategies in %s (%d new)\n", r.hall_of_fame.size(), a->repo.c_str(), added);
    }
    if (!a->out.empty()) {
      boost::json::array hof;
      for (const auto& h : r.hall_of_fame)
        hof.push_back({{"id", genome_id(h.genome)}, {"code", genome_encode(h.genome)}, {"rules", genome_rules(h.genome)},
                       {"generation", h.generation}, {"fitness", h.fitness}, {"in_sample", metrics_json(h.train)},
                       {"out_of_sample", metrics_json(h.test)}, {"deflated_sharpe", h.deflated_sharpe}});
      boost::json::object doc{{"data", a->data},
                              {"seed", a->seed},
                              {"population", opt.population},
                              {"generations", opt.generations},
                              {"trials", r.trials},
                              {"train", boost::json::array{opt.train_begin, opt.train_end}},
                              {"test", boost::json::array{opt.test_begin, opt.test_end}},
                              {"hall_of_fame", std::move(hof)}};
      std::ofstream f(a->out);
      if (!f) throw std::runtime_error("--out " + a->out + ": cannot open the file for writing");
      f << boost::json::serialize(doc) << "\n";
      if (!f) throw std::runtime_error("--out " + a->out + ": write failed");
      std::printf("wrote %s\n", a->out.c_str());
    }
  });
}

}  // namespace qtos::api
