#pragma once
/// @file The event-driven executor: on every bar close it runs universe filter -> trading signals -> confidence
/// threshold -> risk check -> portfolio check -> position sizing -> order type -> Risk OS -> submit, and on fills the
/// slippage check, position classification and amplification check; a position monitor applies stop loss, take
/// profit, trailing stop and maximum holding time. Every order and denial carries its decision trace into the ledger.
/// docs/TRADING.md describes the flow; the subsystems plug in through runtime/executor/hooks.hpp.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json.hpp>

#include "cpu/backtest/feature_state.hpp"
#include "cpu/kernels/strategy.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/exchange/exchange.hpp"
#include "runtime/executor/hooks.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/risk/risk_os.hpp"
#include "runtime/service/service.hpp"

namespace qtos {

/// A trading signal (AITradingEngine::get_trading_signals).
struct TradingSignal {
  std::string strategy;        ///< strategy id, or "model:<name>"
  Symbol symbol;               ///< exchange symbol
  Side side = Side::buy;       ///< buy: go long, sell: go short
  double confidence = 0;       ///< in [0, 1]
  std::string source;          ///< "strategy" or "model"
  std::int32_t horizon = 0;    ///< bars the signal is about (models); 0: until the strategy's exit
  std::size_t strategy_index = SIZE_MAX;  ///< the strategy's index in the engine (SIZE_MAX: a model)
  double atr = 0;              ///< ATR at the signal bar (stops and targets are multiples of it)
  friend bool operator==(const TradingSignal&, const TradingSignal&) = default;
};

/// A strategy that trades in the OS (a LIVE strategy of the repository, or a genome given on the command line).
struct LiveStrategy {
  std::string id;                    ///< genome id
  kernels::Genome genome;            ///< normalised genome: its own bar step decides entries and exits
  double capital = 0;                ///< quote allocated to it (0: equal share of the initial equity)
  std::vector<std::string> symbols;  ///< symbols it trades (empty: every symbol with bars)
};

/// Where model signals come from (the replay adapts a Predictor over its panel; live feeds adapt a rolling window).
class ModelSignalSource {
 public:
  virtual ~ModelSignalSource() = default;
  /// A short name ("model:ensemble").
  virtual std::string name() const = 0;
  /// Signals for the bars that closed at `close_time` (each symbol's, for those with a prediction).
  virtual std::vector<TradingSignal> signals(TimeNs close_time) = 0;
};

/// Executor settings beyond the configuration and the policy.
struct ExecutorOptions {
  double leverage = 1;              ///< leverage of new positions (linear perpetuals)
  double model_stop_atr = 2;        ///< model signals: stop distance in ATRs
  double model_take_atr = 3;        ///< model signals: target distance in ATRs
  std::int32_t reconcile_cycles = 3;  ///< cycles an order with an unknown outcome waits before it is queried
  TimeNs check_interval = 0;        ///< live: a cycle ends at least this often (0: only on bars / cycle_end())
  bool fold_repeated_denials = true;  ///< decide a state-only denial that repeats without the pipeline (same result)
  std::int32_t commit_every = 1;    ///< ledger commit every this many cycles (live: 1, each cycle durable; a replay
                                    ///< commits less often: a killed replay is rerun, not resumed)
};

/// Counts of what the executor did.
struct ExecutorStats {
  std::uint64_t bars = 0, signals = 0, orders = 0, denied = 0, rejected = 0, unknown = 0, fills = 0, trades = 0;
  std::uint64_t denials_repeated = 0;  ///< denials folded into the previous bar's identical denial (in `denied` too)
  std::uint64_t denials_decided_again = 0;  ///< of those, decided without the pipeline (the state had not changed)
  std::uint64_t cycles = 0;
};

/// The signals of the OS: LIVE strategies (each running its genome's bar step on streaming features) and a model
/// source. Owner thread.
class AITradingEngine {
 public:
  /// Adds a strategy: before the first bar, or with `mid_run` (a promotion) later — then the indicators of its rules
  /// that no other strategy on a symbol reads warm up from the next bar, as after a missing bar.
  void strategy_add(LiveStrategy strategy, bool mid_run = false);
  /// Stops (false) or resumes (true) a strategy's new entries; its open positions keep their exits.
  void strategy_enabled_set(std::size_t strategy, bool enabled) { enabled_.at(strategy) = enabled ? 1 : 0; }
  /// True while a strategy takes new entries.
  bool strategy_enabled(std::size_t strategy) const { return enabled_.at(strategy) != 0; }
  /// Sets the model source (null: none).
  void model_source_set(ModelSignalSource* source) { model_ = source; }
  /// The strategies.
  const std::vector<LiveStrategy>& strategies() const { return strategies_; }
  /// The model source, if any.
  ModelSignalSource* model_source() const { return model_; }
  /// Feeds a bar: the symbol's feature state advances (over missing bars as the gap policy says). Returns its slot.
  std::uint32_t bar_update(const MarketBarClosed& bar);
  /// What a missing bar does to the features (default skip: they carry over it; cpu/kernels/gaps.hpp).
  void gaps_set(kernels::GapPolicy gaps) { gaps_ = gaps; }
  /// The quote decimals of each symbol (price_decimals_infer), at which RSI and ADX take price changes as the batch
  /// feature bank does; a symbol not named takes prices as stored. Applies to symbols that appear after the call.
  void price_decimals_set(std::map<std::string, std::int32_t> decimals) { decimals_ = std::move(decimals); }
  /// The slot of a symbol (dense, in order of first appearance), created when new.
  std::uint32_t slot_intern(const Symbol& symbol);
  /// The slot of a symbol, or kNoSlot when it has not appeared.
  std::uint32_t slot_find(const Symbol& symbol) const;
  /// Slots so far.
  std::uint32_t slot_count() const { return static_cast<std::uint32_t>(symbols_.size()); }
  /// The symbol of a slot.
  const Symbol& slot_symbol(std::uint32_t slot) const { return symbols_[slot].symbol; }
  /// No such slot.
  static constexpr std::uint32_t kNoSlot = 0xFFFFFFFFu;
  /// The raw rule signals of `strategy` on the slot's last bar (kernels::kSignal* bits), and the ATR.
  std::uint32_t rule_signals(std::size_t strategy, std::uint32_t slot, double* atr) const;
  /// The ATR(14) of the slot's last bar (NaN while warming up, 0 before its first bar).
  double atr(std::uint32_t slot) const;
  /// True when `strategy` trades the slot's symbol.
  bool trades(std::size_t strategy, std::uint32_t slot) const { return symbols_[slot].traded_by[strategy] != 0; }
  /// The index of a strategy by id, or SIZE_MAX.
  std::size_t strategy_index(const std::string& id) const;
  /// Entry signals of every strategy on the last bars of `symbols` (a strategy's exits are the executor's position
  /// monitor's, which knows its positions). A strategy with stops signals only once the ATR is defined.
  std::vector<TradingSignal> get_trading_signals(const std::vector<Symbol>& symbols) const;
  /// get_trading_signals() for one slot, appended to `out` (the executor's per-bar form: no allocation of the list);
  /// the strategy `skip` (the one holding the symbol) is left out.
  void signals_for(std::uint32_t slot, std::vector<TradingSignal>& out, std::size_t skip = SIZE_MAX) const;
  /// Its state exactly (strategies with their genomes and switches, every symbol's feature state): a restarted run
  /// continues with the same signals as if it had never stopped.
  boost::json::object checkpoint() const;
  /// Restores a checkpoint() into an engine with no strategy and no bar (the model source stays as set). Throws
  /// std::logic_error when it has some, std::runtime_error naming a missing or malformed field.
  void restore(const boost::json::object& state);

 private:
  struct SymbolState {
    Symbol symbol;
    StrategyFeatureState features;
    double f[kernels::kStrategyFeatureCount] = {};
    double close = 0;
    TimeNs open_time = 0;
    bool seen = false;
    std::vector<std::uint8_t> traded_by;  // per strategy
    std::uint32_t planes = 0;             // feature planes its strategies read (bit p: plane p), the ATR always
  };
  kernels::GapPolicy gaps_{};
  std::map<std::string, std::int32_t> decimals_;  // symbol -> quote decimals (price_decimals_set)
  std::vector<LiveStrategy> strategies_;
  std::vector<std::uint8_t> enabled_;  // per strategy: takes new entries (a retired one does not)
  std::vector<std::set<std::string>> strategy_symbols_;
  std::deque<SymbolState> symbols_;  // by slot (a deque: a state never moves)
  std::unordered_map<Symbol, std::uint32_t, FixedStringHash> slots_;
  ModelSignalSource* model_ = nullptr;
};

/// The executor. A Service on the bus owner thread and the exchange's listener.
class EventDrivenExecutor final : public Service, public ExchangeListener {
 public:
  /// Wires the executor; every reference must outlive it. The pipeline may be empty (the baseline decides alone).
  EventDrivenExecutor(const Config& config, EventBus& bus, Exchange& exchange, RiskOS& risk, PolicyStore& policy,
                      Ledger& ledger, HookPipeline& hooks, AITradingEngine& engine, ExecutorOptions options = {});
  ~EventDrivenExecutor() override;

  /// Follow the strategy pipeline: a StrategyPromoted to LIVE adds the strategy `lookup` returns for its id (capital 0:
  /// an equal share as at the start, or the whole initial equity when there was none), a StrategyRetired stops its new
  /// entries (its open positions keep their exits). Before start().
  void strategies_follow(std::function<std::optional<LiveStrategy>(const std::string& id)> lookup) { strategy_lookup_ = std::move(lookup); }
  /// Bars that close before `t` only warm the features up; trading starts with the bar closing at `t`.
  void trading_from(TimeNs t) { trading_from_ = t; }
  /// The run ends with the bars that open at `open_time`: positions still open are closed at their close
  /// (MARKET_ON_CLOSE), and no new signal is taken on them.
  void final_bar_set(TimeNs open_time);
  /// Ends the current bar cycle (a failure faults the executor: trading stops, see state()): model signals, the Risk OS mark (drawdowns), the equity point, reconciliation of
  /// orders with an unknown outcome, and the ledger commit. The replay calls it after each bar time; live runs end a
  /// cycle on every new bar time and on the check interval.
  void cycle_end();
  /// An operator's forced exit of the symbol's position: a reduce-only market order (purpose MANUAL, through the Risk OS
  /// like every exit), with `reason` in its trace. Returns the order id, or an error: not_found when the symbol has no
  /// entered position, bad_state when its exit is already on its way.
  Result<std::uint64_t> position_exit(const Symbol& symbol, const std::string& reason);
  /// What it did so far.
  const ExecutorStats& stats() const { return stats_; }
  /// Initial equity (the exchange's at start).
  double initial_equity() const { return initial_equity_; }
  /// Called at the end of every committed cycle, after the cycle's ledger writes and before the commit: what it writes
  /// to the ledger (a checkpoint) is durable with the cycle, or lost with it.
  void before_commit_set(std::function<void()> f) { before_commit_ = std::move(f); }
  /// Its state at a cycle boundary, exactly: positions with their stops, targets and exit state, working orders (their
  /// records are the ledger's), sleeves, the folded denials, counts and accounts. With the engine's, the venue's and the
  /// Risk OS's checkpoints a restarted run continues where the last commit left it.
  boost::json::object checkpoint() const;
  /// Restores a checkpoint() after start() and before the first bar, reading the working orders' and folded denials'
  /// records from the ledger. Throws std::runtime_error naming a missing or malformed field, or an order the ledger
  /// does not have.
  void restore(const boost::json::object& state);

  void on_fill(const Fill& fill) override;
  void on_order_update(const OrderState& order) override;

 protected:
  void on_start() override;
  void on_stop() override;

 private:
  struct Position;
  struct Working;
  struct Sleeve {
    double cash = 0;
  };
  struct DenialRun {
    OrderRecord rec;          // the denial as stored, with its repeat count
    bool dirty = false;       // repeats not yet written
    std::uint64_t state_version = 0;   // the executor's state when it was decided
    std::uint64_t policy_version = 0;  // the policy it was decided under
    TradingState risk_state = TradingState::active;  // the Risk OS's state then
  };
  /// What the executor keeps per symbol, by the engine's slot.
  struct SymbolSlot {
    double last_price = 0;               // the last close
    double tick = -1;                    // the venue's tick size (-1: not asked yet)
    bool in_universe = false;            // in the last ranking's top (when one was received)
    std::unique_ptr<Position> position;  // the symbol's position, or its entry in flight (one-way venue)
    std::vector<Sleeve> sleeves;         // per strategy
    std::vector<std::uint8_t> sleeve_set;  // whether each sleeve has been given its capital
    Sleeve model_sleeve;                 // the model source's
    std::uint8_t model_sleeve_set = 0;
    std::int8_t model_dir = 0;           // the model's last signal on the symbol: 1 long, -1 short, 0 none
  };

  void on_bar(const MarketBarClosed& bar);
  void strategy_promoted(const StrategyPromoted& e);
  void bar_process(const MarketBarClosed& bar);
  void fill_process(const Fill& fill);
  void order_update_process(const OrderState& order);
  void cycle_process();
  template <class F>
  void guarded(const char* what, F&& f);
  void monitor(Position& p, const MarketBarClosed& bar);
  void stop_move(Position& p, double stop, OrderPurpose purpose);
  void take_move(Position& p, double take);
  void strategy_exits(Position& p, std::size_t strategy, std::uint32_t sig);
  void scale_in(Position& p, double qty, double price, DecisionTrace trace);
  void entry_consider(TradingSignal signal);
  void signal_event(std::string_view strategy, const Symbol& symbol, Side side, double confidence, double price, double stop_loss,
                    double take_profit);
  void deny(OrderRecord rec, DenyReason reason, const std::string& detail);
  void denial_runs_flush(bool all);
  bool denial_fold(std::uint32_t slot_index, std::size_t strategy, Side side);
  void denial_run_end(std::uint32_t slot_index, std::size_t strategy);
  std::uint64_t submit(OrderRecord rec, const TradeCandidate* candidate);
  void exit_submit(Position& p, OrderPurpose purpose, OrderType type = OrderType::market);
  void protective_place(Position& p);
  OrderRecord reduce_order(const Position& p, OrderType type, OrderPurpose purpose, double qty, double trigger);
  double tick_round(const Symbol& symbol, double price);
  void protective_cancel(Position& p);
  void position_close(Position& p, double exit_price_avg, CloseReason reason, TimeNs ts);
  void periodic_healing(TimeNs now);
  void periodic_coordination(TimeNs now);
  SystemSnapshot system_snapshot();
  RiskAccount risk_account(const Symbol* symbol) const;
  double open_loss() const;
  std::uint64_t next_order_id() { return ++last_order_id_; }
  SymbolSlot& slot(std::uint32_t index);
  SymbolSlot& slot(const Symbol& symbol) { return slot(engine_.slot_intern(symbol)); }
  Sleeve& sleeve(std::uint32_t slot_index, std::size_t strategy);
  Sleeve& sleeve_of(const Position& p);
  void position_set(std::uint32_t slot_index, std::unique_ptr<Position> p);
  void position_erase(std::uint32_t slot_index);
  template <class F>
  void positions_each(F&& f);

  const Config& config_;
  Exchange& exchange_;
  RiskOS& risk_;
  PolicyStore& policy_store_;
  PolicyView policy_;
  Ledger& ledger_;
  HookPipeline& hooks_;
  AITradingEngine& engine_;
  ExecutorOptions options_;
  ExecutorStats stats_;

  std::vector<SymbolSlot> slots_;
  std::vector<TradingSignal> signals_;   // the bar's entry signals (reused)
  std::size_t open_positions_ = 0;       // slots with a position
  std::map<std::uint64_t, std::unique_ptr<Working>> working_;    // orders not final, by id
  std::size_t universe_size_ = 0;
  bool universe_known_ = false;
  Regime regime_ = Regime::unknown;
  TimeNs trading_from_ = 0;
  TimeNs final_open_ = -1;
  TimeNs cycle_time_ = -1;
  bool cycle_open_ = false;  // a bar arrived since the last cycle_end()
  std::int32_t uncommitted_cycles_ = 0;
  std::uint64_t state_version_ = 0;               // bumped by anything a state-only denial depends on
  std::map<std::uint64_t, DenialRun> denial_runs_;  // (slot << 32 | strategy) -> its latest denial
  std::uint64_t last_order_id_ = 0, last_position_id_ = 0;
  double initial_equity_ = 0, day_start_equity_ = 0;
  double share_ = 0;               // capital of a strategy without an explicit allocation
  std::int64_t day_ = -1;
  bool pause_entries_ = false;
  CoordinationAnswer coordination_;
  std::function<std::optional<LiveStrategy>(const std::string&)> strategy_lookup_;
  std::function<void()> before_commit_;
};

}  // namespace qtos
