#pragma once
/// @file The event-driven executor: on every bar close it runs universe filter -> trading signals -> confidence
/// threshold -> risk check -> portfolio check -> position sizing -> order type -> Risk OS -> submit, and on fills the
/// slippage check, position classification and amplification check; a position monitor applies stop loss, take
/// profit, trailing stop and maximum holding time. Every order and denial carries its decision trace into the ledger.
/// docs/TRADING.md describes the flow; the subsystems plug in through runtime/executor/hooks.hpp.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

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
};

/// Counts of what the executor did.
struct ExecutorStats {
  std::uint64_t bars = 0, signals = 0, orders = 0, denied = 0, rejected = 0, unknown = 0, fills = 0, trades = 0;
  std::uint64_t cycles = 0;
};

/// The signals of the OS: LIVE strategies (each running its genome's bar step on streaming features) and a model
/// source. Owner thread.
class AITradingEngine {
 public:
  /// Adds a strategy (before the first bar).
  void strategy_add(LiveStrategy strategy);
  /// Sets the model source (null: none).
  void model_source_set(ModelSignalSource* source) { model_ = source; }
  /// The strategies.
  const std::vector<LiveStrategy>& strategies() const { return strategies_; }
  /// The model source, if any.
  ModelSignalSource* model_source() const { return model_; }
  /// Feeds a bar: the symbol's feature state advances (restarting after a missing bar). Returns the features.
  const double* bar_update(const MarketBarClosed& bar);
  /// The raw rule signals of `strategy` on the symbol's last bar (kernels::kSignal* bits), and the ATR.
  std::uint32_t rule_signals(std::size_t strategy, const Symbol& symbol, double* atr) const;
  /// The ATR(14) of the symbol's last bar (NaN while warming up, 0 before its first bar).
  double atr(const Symbol& symbol) const;
  /// True when `strategy` trades `symbol`.
  bool trades(std::size_t strategy, const Symbol& symbol) const;
  /// Entry signals of every strategy on the last bars of `symbols` (a strategy's exits are the executor's position
  /// monitor's, which knows its positions).
  std::vector<TradingSignal> get_trading_signals(const std::vector<Symbol>& symbols) const;

 private:
  struct SymbolState {
    StrategyFeatureState features;
    double f[kernels::kStrategyFeatureCount] = {};
    double close = 0;
    TimeNs open_time = 0;
    bool seen = false;
  };
  std::vector<LiveStrategy> strategies_;
  std::vector<std::set<std::string>> strategy_symbols_;
  std::map<std::string, SymbolState> symbols_;
  ModelSignalSource* model_ = nullptr;
};

/// The executor. A Service on the bus owner thread and the exchange's listener.
class EventDrivenExecutor final : public Service, public ExchangeListener {
 public:
  /// Wires the executor; every reference must outlive it. The pipeline may be empty (the baseline decides alone).
  EventDrivenExecutor(const Config& config, EventBus& bus, Exchange& exchange, RiskOS& risk, PolicyStore& policy,
                      Ledger& ledger, HookPipeline& hooks, AITradingEngine& engine, ExecutorOptions options = {});
  ~EventDrivenExecutor() override;

  /// Bars that close before `t` only warm the features up; trading starts with the bar closing at `t`.
  void trading_from(TimeNs t) { trading_from_ = t; }
  /// The run ends with the bars that open at `open_time`: positions still open are closed at their close
  /// (MARKET_ON_CLOSE), and no new signal is taken on them.
  void final_bar_set(TimeNs open_time);
  /// Ends the current bar cycle: model signals, the Risk OS mark (drawdowns), the equity point, reconciliation of
  /// orders with an unknown outcome, and the ledger commit. The replay calls it after each bar time; live runs end a
  /// cycle on every new bar time and on the check interval.
  void cycle_end();
  /// What it did so far.
  const ExecutorStats& stats() const { return stats_; }
  /// Initial equity (the exchange's at start).
  double initial_equity() const { return initial_equity_; }

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

  void on_bar(const MarketBarClosed& bar);
  void monitor(Position& p, const MarketBarClosed& bar);
  void strategy_exits(const Symbol& symbol, std::size_t strategy, std::uint32_t sig);
  void entry_consider(TradingSignal signal);
  void deny(OrderRecord rec, DenyReason reason, const std::string& detail);
  std::uint64_t submit(OrderRecord rec, const TradeCandidate* candidate);
  void exit_submit(Position& p, OrderPurpose purpose, OrderType type = OrderType::market);
  void protective_place(Position& p);
  void protective_cancel(Position& p);
  void position_close(Position& p, double exit_price_avg, CloseReason reason, TimeNs ts);
  void periodic_healing(TimeNs now);
  void periodic_coordination(TimeNs now);
  SystemSnapshot system_snapshot();
  RiskAccount risk_account(const Symbol* symbol) const;
  std::uint64_t next_order_id() { return ++last_order_id_; }
  Sleeve& sleeve(const std::string& strategy, const Symbol& symbol);

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

  std::map<std::string, std::unique_ptr<Position>> positions_;  // one per symbol (one-way venue)
  std::map<std::uint64_t, std::unique_ptr<Working>> working_;    // orders not final, by id
  std::map<std::string, Sleeve> sleeves_;                        // strategy|symbol -> cash
  std::map<std::string, double> last_price_;
  std::set<std::string> universe_;      // from OpportunitiesUpdated; empty: every symbol
  bool universe_known_ = false;
  Regime regime_ = Regime::unknown;
  TimeNs trading_from_ = 0;
  TimeNs final_open_ = -1;
  TimeNs cycle_time_ = -1;
  std::uint64_t last_order_id_ = 0, last_position_id_ = 0;
  double initial_equity_ = 0, peak_equity_ = 0, day_start_equity_ = 0;
  double share_ = 0;               // capital of a strategy without an explicit allocation
  std::size_t symbol_count_ = 0;   // symbols seen (a strategy without a symbol list trades them all)
  std::int64_t day_ = -1;
  bool pause_entries_ = false;
  CoordinationAnswer coordination_;
};

}  // namespace qtos
