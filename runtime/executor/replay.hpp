#pragma once
/// @file The full-system replay: recorded bars through the whole trading core (bus, Risk OS, hooks, executor, paper
/// exchange, ledger) on a simulated clock: the same code as a live run, only the clock and the exchange differ. Same
/// seed and inputs, the same ledger and report, bit for bit.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/analytics/ledger.hpp"
#include "runtime/config/config.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/exchange/paper_exchange.hpp"
#include "runtime/executor/executor.hpp"
#include "runtime/executor/hooks.hpp"
#include "runtime/policy/policy.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/predict/predictor.hpp"
#include "runtime/risk/risk_os.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos {

/// The executor's options for a replay: the ledger commits every 256 bar times (a stopped replay commits what it did;
/// a killed one is rerun).
inline ExecutorOptions replay_executor_options() {
  ExecutorOptions o;
  o.commit_every = 256;
  return o;
}

/// What an operator can touch during a replay (ReplayOptions::before_bar).
struct ReplayControl {
  RiskOS& risk;                    ///< the brake
  PolicyStore& policy;             ///< policy updates (published as PolicyUpdated, as from the API)
  EventBus& bus;                   ///< events
  EventDrivenExecutor& executor;   ///< forced exits (position_exit)
  const Exchange& exchange;        ///< balances, positions, open orders
};

/// What subsystems are built on in a replay (ReplayOptions::subsystem_factory): the replay's own bus, policy store,
/// Risk OS and venue, which live as long as the replay.
struct ReplayContext {
  const Config& config;        ///< the configuration
  EventBus& bus;               ///< the replay's bus (simulated clock)
  PolicyStore& policy;         ///< the policy store
  RiskOS& risk;                ///< the Risk OS
  const Exchange& exchange;    ///< the venue (read-only: balances, positions)
  const MarketPanel& panel;    ///< the replayed market
  const std::string& log_dir;  ///< decision logs ("" : none)
  /// Services the factory builds that answer no hook (a strategy generator, a learning manager): the replay starts them
  /// with the subsystems and stops them at its end.
  std::vector<std::shared_ptr<Service>>& services;
};

/// Builds the subsystems of a replay on its bus, before the first bar; they are added to the pipeline after the
/// `subsystems` argument's, in the order returned. Those that are also a Service are started here if they are not
/// running yet, and stopped when the replay ends (so a caller may keep them to read their counts afterwards).
using ReplaySubsystemFactory = std::function<std::vector<std::shared_ptr<TradingSubsystem>>(ReplayContext& context)>;

/// The subsystems and services `factory` builds on a run's bus (a replay's, or a live run's): the subsystems are added
/// to `hooks` in the order returned, every one that is a Service is started (std::runtime_error naming `run` and the
/// part that did not start), and all are stopped, their subscriptions and timers released, when this ends — on every
/// path out of the run, before its bus goes. An empty factory builds nothing.
class RunServices {
 public:
  RunServices(const ReplaySubsystemFactory& factory, ReplayContext context, HookPipeline& hooks, std::string run);
  ~RunServices();
  RunServices(const RunServices&) = delete;
  RunServices& operator=(const RunServices&) = delete;

 private:
  void stop_all();
  std::string run_;
  std::vector<std::shared_ptr<TradingSubsystem>> built_;
  std::vector<std::shared_ptr<Service>> services_;
};

/// What a replay runs on and writes.
struct ReplayOptions {
  std::int32_t t_begin = 0;          ///< first bar that trades (earlier bars warm the indicators up)
  std::int32_t t_end = -1;           ///< one past the last bar (-1: the panel's end); open positions close at its close
  PaperExchangeConfig exchange;      ///< the venue
  ExecutorOptions executor = replay_executor_options();  ///< the executor (the ledger commits every 256 bar times)
  std::string ledger_path = ":memory:";  ///< the ledger file
  std::string event_log_path;        ///< "" : no event log
  std::string log_dir;               ///< subsystem decision logs ("" : none)
  const Predictor* predictor = nullptr;  ///< model signals (null: none)
  std::string predictor_name;        ///< "model:<name>" in the ledger ("": the predictor's own name)
  double model_min_edge = 0.05;      ///< a model signal needs |prob_up - 0.5| >= this
  std::optional<Policy> policy;      ///< the starting policy (default: policy_from_config) when the store is empty
  /// Where the policy lives (default: in memory). A persistent backend (SQLite under a state directory) resumes from its
  /// latest stored policy; `policy` then only seeds an empty store.
  std::function<std::unique_ptr<PolicyBackend>()> policy_backend;
  std::optional<RiskLimits> risk_limits;  ///< the Risk OS limits (default: RiskLimits::from_config)
  /// Called before each bar time is published, with the run's controls: an operator's brake or policy change mid-run.
  std::function<void(std::int32_t t, ReplayControl& control)> before_bar;
  ReplaySubsystemFactory subsystem_factory;  ///< subsystems built on the replay's bus (see ReplaySubsystemFactory)
  /// The strategy repository's view for promotions (EventDrivenExecutor::strategies_follow): a strategy promoted to
  /// LIVE during the replay starts trading. Empty: the strategies given trade, and only they.
  std::function<std::optional<LiveStrategy>(const std::string& id)> strategy_lookup;
  /// Restart state: at every ledger commit the run's state (engine, executor, venue, Risk OS, the bar reached, the event
  /// log's length) goes into the ledger's meta "checkpoint" in the same transaction. Use with executor.commit_every = 1
  /// so that every bar time is a point a restart can continue from.
  bool checkpoint = false;
  /// Continue the run whose ledger (ledger_path) holds a checkpoint: the engine, executor, venue and Risk OS are
  /// restored, the bars up to the checkpoint are not replayed, the event log is cut back to the checkpoint (what it
  /// recorded after it runs again) and event ids continue. The `strategies` argument is ignored (the checkpoint's
  /// engine has them). Subsystems and services start afresh on the restored state. Throws std::runtime_error when the
  /// ledger has no checkpoint or the run has finished.
  bool resume = false;
  bool publish_only = false;         ///< the ceiling of the benchmark: publish the bars to a bus with no subscriber
  StopToken stop;                    ///< stop at a safe point (after a whole bar time)
  std::function<void(std::int32_t done, std::int32_t total)> progress;  ///< after every bar time
};

/// What a replay did.
struct ReplayResult {
  ExecutorStats stats;               ///< the executor's counts
  std::uint64_t symbol_bars = 0;     ///< bars published
  std::uint64_t events = 0;          ///< events published on the bus
  double initial_equity = 0;         ///< the venue's equity at start
  double final_equity = 0;           ///< and at the end
  std::int32_t bars_done = 0;        ///< bar times replayed (t_begin..; warm-up included); with resume, the bar reached
  std::int32_t resumed_from = -1;    ///< resume: the first bar time replayed in this process (-1: a fresh run)
  bool stopped = false;              ///< stopped early by the stop token
};

/// Each symbol's quote decimals (panel_price_decimals, -1 where the prices are not decimal quotes): what the streaming
/// feature states of the replay (the executor's, the strategy generator's shadow accounts) take RSI and ADX price
/// changes at, as the batch feature bank does.
std::map<std::string, std::int32_t> symbol_price_decimals(const MarketPanel& panel);

/// Replays `panel` through the whole system under `config` with `strategies` trading and `subsystems` answering the
/// hooks (added in that order). Throws std::invalid_argument naming the option when the window is empty or out of the
/// panel, and when the configuration cannot run (AUTONOMY with a non-simulated venue).
ReplayResult replay_run(const MarketPanel& panel, const Config& config, const std::vector<LiveStrategy>& strategies,
                        const std::vector<std::shared_ptr<TradingSubsystem>>& subsystems, const ReplayOptions& options);

}  // namespace qtos
