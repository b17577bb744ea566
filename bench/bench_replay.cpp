// Full-system replay throughput (symbol-bars/s) on 100 symbols x 1 year of hourly bars: the whole trading core with
// four swing strategies and no subsystem, the same with a subsystem answering every one of the eleven hooks in
// ENFORCED mode, the same with the seven AI subsystems all enforcing (stage AUTONOMY, MSC writing the policy), four churning strategies (a worst case of orders), no strategy at all, and the ceiling of the same
// bars published to a bus with no subscriber, in the same run.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include "bench/compare_reporter.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/subsystems/subsystem_set.hpp"
#include "runtime/util/rng.hpp"

namespace {

using namespace qtos;

const MarketPanel& market() {
  static const MarketPanel panel = [] {
    SynthOptions o;
    o.n_symbols = 100;
    o.n_bars = 8760;
    o.seed = 11;
    o.planted_momentum = 0.1;
    return synth_generate(o).panel;
  }();
  return panel;
}

/// Four strategies with a stop or a trailing stop. `churn`: the first four random genomes (they trade every few bars
/// and keep re-signalling while another strategy holds the symbol: a worst case of orders and denials); otherwise
/// genomes that trade like a swing strategy, 10 to 60 round trips per symbol and year.
std::vector<LiveStrategy> pick_strategies(bool churn) {
  std::vector<LiveStrategy> s;
  Rng rng(5);
  const MarketPanel& panel = market();
  const StrategyFeatures f = strategy_features_compute(panel.view());
  const auto backend = detail::backtest_cpu_backend();
  while (s.size() < 4) {
    const kernels::Genome g = genome_random(rng);
    if (g.stop_atr <= 0.0f && g.trail_atr <= 0.0f) continue;  // keep the position monitor busy
    if (!churn) {
      const std::vector<kernels::Genome> one = {g};
      BacktestRequest req;
      req.panel = panel.view();
      req.features = &f;
      req.genomes = one;
      const double trades = backend->run(req).genome[0].trades / panel.n_symbols();
      if (trades < 10 || trades > 60) continue;
    }
    s.push_back(LiveStrategy{genome_id(g), g, 0.0, {}});
  }
  return s;
}

const std::vector<LiveStrategy>& strategies(bool churn) {
  static const std::vector<LiveStrategy> swing = pick_strategies(false), fast = pick_strategies(true);
  return churn ? fast : swing;
}

/// Answers every hook with a small change, so every hook's machinery (answer, merge, trace, log) runs.
class EveryHook final : public TradingSubsystem {
 public:
  std::string name() const override { return "BENCH"; }
  SubsystemMode mode() const override { return SubsystemMode::enforced; }
  bool answers(Hook) const override { return true; }
  std::optional<UniverseAnswer> universe_filter(const TradeCandidate&, const UniverseAnswer& v, std::string&) override { return v; }
  std::optional<ConfidenceAnswer> confidence_adjustment(const TradeCandidate&, const ConfidenceAnswer& v, std::string&) override { return v; }
  std::optional<CheckAnswer> risk_check(const TradeCandidate&, const CheckAnswer& v, std::string&) override { return v; }
  std::optional<CheckAnswer> portfolio_check(const TradeCandidate&, const CheckAnswer& v, std::string&) override { return v; }
  std::optional<SizingAnswer> position_sizing(const TradeCandidate&, const SizingAnswer& v, std::string& why) override {
    why = "bench";
    return SizingAnswer{v.quote_qty * 0.9};
  }
  std::optional<OrderTypeAnswer> order_type_selection(const TradeCandidate&, const OrderTypeAnswer& v, std::string&) override { return v; }
  std::optional<SlippageAnswer> slippage_check(const TradeCandidate&, const SlippageAnswer& v, std::string&) override { return v; }
  std::optional<ClassificationAnswer> position_classification(const PositionSnapshot& p, const ClassificationAnswer&, std::string&) override {
    return ClassificationAnswer{p.r_multiple >= 1 ? "WINNER" : "OPEN", false};
  }
  std::optional<AmplificationAnswer> amplification_check(const PositionSnapshot&, const AmplificationAnswer& v, std::string&) override { return v; }
  std::optional<HealingAnswer> self_healing_check(const SystemSnapshot&, const HealingAnswer& v, std::string&) override { return v; }
  std::optional<CoordinationAnswer> ai_hfos_coordination(const SystemSnapshot&, const CoordinationAnswer& v, std::string&) override { return v; }
};

void run(benchmark::State& state, int kind) {
  const MarketPanel& panel = market();
  const auto dir = std::filesystem::temp_directory_path() / "qtos_bench_replay";
  std::filesystem::create_directories(dir);
  ReplayResult r;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string ledger = (dir / ("ledger" + std::to_string(kind) + ".db")).string();
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(ledger + ext);
    std::filesystem::remove_all(dir / "logs");  // each run's decision logs from empty
    state.ResumeTiming();
    ReplayOptions o;
    o.ledger_path = ledger;  // a real file: the ledger's commits are part of the cost
    o.publish_only = kind == 0;
    Policy p;
    p.max_open_positions = 50;
    p.max_risk_per_trade = 1.0;
    p.max_daily_drawdown_pct = 100;
    p.max_open_drawdown_pct = 100;
    o.policy = p;
    o.executor.leverage = 2;
    Config cfg;
    std::vector<std::shared_ptr<TradingSubsystem>> subs;
    if (kind == 2) subs.push_back(std::make_shared<EveryHook>());
    if (kind == 5) {
      // The seven AI subsystems, every one enforcing (Self-Healing protective), smart execution and MSC's policy writes on.
      ConfigSources src;
      src.environment = {{"QT_AI_INTEGRATION_STAGE", "AUTONOMY"}, {"QT_MSC_ENABLED", "true"}, {"QT_MSC_AUTO_MODE", "true"},
                         {"QT_AI_AELM_SMART_EXEC", "true"}, {"QT_AI_RETRAINING_ENABLED", "false"}};
      cfg = config_load(src);
      o.subsystem_factory = subsystem_set_factory();
      o.log_dir = (dir / "logs").string();  // decisions to their files, as a deployment writes them
    }
    r = replay_run(panel, cfg, kind == 3 ? std::vector<LiveStrategy>{} : strategies(kind == 4), subs, o);
  }
  state.counters["symbol_bars_per_second"] =
      benchmark::Counter(static_cast<double>(r.symbol_bars) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["orders"] = static_cast<double>(r.stats.orders);
  state.counters["trades"] = static_cast<double>(r.stats.trades);
  state.counters["denied"] = static_cast<double>(r.stats.denied);
  state.counters["rejected"] = static_cast<double>(r.stats.rejected);
  state.counters["denied_folded"] = static_cast<double>(r.stats.denials_repeated);
  state.counters["denied_fast"] = static_cast<double>(r.stats.denials_decided_again);
  state.counters["fills"] = static_cast<double>(r.stats.fills);
}

BENCHMARK_CAPTURE(run, off, 1)->Name("replay_100x8760/qtos")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, hooks, 2)->Name("replay_100x8760/qtos-all-hooks-enforced")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, subsystems, 5)->Name("replay_100x8760/qtos-every-subsystem-enforced")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, churn, 4)->Name("replay_100x8760/qtos-churning-strategies")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, idle, 3)->Name("replay_100x8760/qtos-no-strategy")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, ceiling, 0)->Name("replay_100x8760/ceiling")->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the subsystem's decisions go to its log file, not the console
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  qtos::bench::CompareReporter reporter({
      {"replay_100x8760", "symbol_bars_per_second", true, 1e6, "M/s"},
  });
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
