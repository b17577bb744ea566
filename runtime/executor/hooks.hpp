#pragma once
/// @file The eleven integration hooks and the pipeline that asks the enabled subsystems at each of them. A subsystem
/// is one class (TradingSubsystem) answering some hooks; the pipeline applies an answer according to the subsystem's
/// mode (OFF: not asked; OBSERVE: logged as "would", discarded; ADVISORY: soft parts applied; ENFORCED and PROTECTIVE:
/// everything, blocks and exits included), records every answer in the decision trace, and keeps a failing subsystem
/// from taking the trading core down (fail-safe: an enhancing hook falls back to the value it was given, a protective
/// hook denies). docs/TRADING.md has the order in which subsystems are asked and what each answer may change.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cpu/util/enum_names.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/config/config.hpp"
#include "runtime/executor/decision_trace.hpp"

namespace spdlog {
class logger;
}

namespace qtos {

/// The integration hooks, in the order of a trade's life; the two periodic ones run on their own timers.
enum class Hook : std::uint8_t {
  pre_trade_universe_filter, pre_trade_confidence_adjustment, pre_trade_risk_check, pre_trade_portfolio_check,
  pre_trade_position_sizing, execution_order_type_selection, execution_slippage_check,
  post_trade_position_classification, post_trade_amplification_check, periodic_self_healing_check,
  periodic_ai_hfos_coordination
};
QTOS_ENUM_NAMES(Hook, "pre_trade_universe_filter", "pre_trade_confidence_adjustment", "pre_trade_risk_check",
                "pre_trade_portfolio_check", "pre_trade_position_sizing", "execution_order_type_selection",
                "execution_slippage_check", "post_trade_position_classification", "post_trade_amplification_check",
                "periodic_self_healing_check", "periodic_ai_hfos_coordination");
/// Number of hooks.
inline constexpr std::size_t kHookCount = EnumNames<Hook>::kCount;

/// True for the hooks that protect (risk and portfolio checks): a failure there denies the trade.
bool hook_protective(Hook hook);

/// A trade the executor is considering, as the pre-trade hooks see it.
struct TradeCandidate {
  std::string strategy;         ///< strategy id, or "model:<name>"
  Symbol symbol;                ///< exchange symbol
  Side side = Side::buy;        ///< buy: long, sell: short
  double confidence = 0;        ///< the signal's confidence in [0, 1]
  double price = 0;             ///< the last close
  double stop_loss = 0;         ///< protective stop price (0: none)
  double take_profit = 0;       ///< target price (0: none)
  double quote_qty = 0;         ///< size in quote (the baseline's, then the sizing hook's)
  double leverage = 1;          ///< leverage
  std::string source;           ///< "strategy" or "model"
};

/// An open position as the post-trade hooks see it.
struct PositionSnapshot {
  std::uint64_t position_id = 0;  ///< the position
  std::string strategy;           ///< who opened it
  Symbol symbol;                  ///< exchange symbol
  Side side = Side::buy;          ///< buy: long, sell: short
  double qty = 0;                 ///< base quantity
  double entry_price = 0;         ///< average entry price
  double mark_price = 0;          ///< last close
  double stop_price = 0;          ///< current stop (0: none)
  double r_multiple = 0;          ///< open profit in units of the initial risk (entry - initial stop); 0 without a stop
  double drawdown_pct = 0;        ///< fall from the position's best open profit, percent of entry value
  std::int32_t bars_held = 0;     ///< bars since entry
  double take_price = 0;          ///< current target (0: none)
  double initial_risk = 0;        ///< |entry - initial stop| in price (0: no stop)
  double notional = 0;            ///< qty x mark price, quote
  bool signal_present = true;     ///< the entry thesis holds: the strategy's entry rule still fires this bar for this
                                  ///< side (a model position: the model's last signal on the symbol has this side)
};

/// The system as the periodic hooks see it.
struct SystemSnapshot {
  TimeNs now = 0;                       ///< clock time
  double equity = 0;                    ///< account value
  double daily_drawdown_pct = 0;        ///< fall since the start of the UTC day
  double open_drawdown_pct = 0;         ///< unrealised loss of the open positions, percent of equity
  double exposure = 0;                  ///< gross notional / equity
  std::int64_t open_positions = 0;      ///< positions open
  RiskMode risk_mode = RiskMode::normal;  ///< policy risk mode
  Regime regime = Regime::unknown;      ///< market regime
  std::string trading_state;            ///< Risk OS state
  std::map<std::string, HealthLevel> health;  ///< components' health
  std::uint64_t hook_failures = 0;      ///< fail-safe fallbacks so far
};

// ---- the answers: each names its soft part (ADVISORY and up) and its hard part (ENFORCED / PROTECTIVE only) ----

/// pre_trade_universe_filter: is the symbol tradable now. Hard: excluding it.
struct UniverseAnswer {
  bool tradable = true;
};
/// pre_trade_confidence_adjustment: the threshold a signal must reach, and the signal's confidence. Soft.
struct ConfidenceAnswer {
  double threshold = 0;
  double confidence = 0;
};
/// pre_trade_risk_check / pre_trade_portfolio_check: allow, or deny with a reason (hard); scale the size (soft, <= 1).
struct CheckAnswer {
  bool allow = true;
  DenyReason reason = DenyReason::hook_blocked;
  double size_scale = 1;
};
/// pre_trade_position_sizing: the size in quote. Soft.
struct SizingAnswer {
  double quote_qty = 0;
};
/// execution_order_type_selection: market or limit (with its price). Soft.
struct OrderTypeAnswer {
  OrderType type = OrderType::market;
  double limit_price = 0;
  std::int32_t slices = 1;  ///< TWAP: the entry split into this many equal child orders, one per bar (1: one order)
};
/// execution_slippage_check: on a fill, the slippage in bps against the expected price; cancel the rest (hard).
struct SlippageAnswer {
  double slippage_bps = 0;
  bool cancel_remaining = false;
};
/// post_trade_position_classification: a label (soft) and an exit (hard).
struct ClassificationAnswer {
  std::string label;
  bool exit = false;
};
/// post_trade_amplification_check: add to the position (fraction of its size), take part profit, move the stop in the
/// position's favour or move the target (hard, all of them; 0: unchanged).
struct AmplificationAnswer {
  double scale_in = 0;
  double take_partial = 0;
  double stop_price = 0;  ///< the new stop: applied only when it protects more than the current one (never loosens)
  double take_price = 0;  ///< the new target (EXTEND_HOLD widens it); must lie beyond the mark in the position's favour
};
/// periodic_self_healing_check: pause new entries (hard) until a later check resumes them.
struct HealingAnswer {
  bool pause_entries = false;
};
/// periodic_ai_hfos_coordination: threshold shift and size scale (soft); block new entries (hard).
struct CoordinationAnswer {
  double threshold_shift = 0;
  double size_scale = 1;
  bool block_entries = false;
};

/// A subsystem that answers hooks. Override the hooks it answers and return an answer; the default (nothing) means
/// "no opinion". `reason` receives the sentence for the trace and the log.
class TradingSubsystem {
 public:
  virtual ~TradingSubsystem() = default;
  /// The name in traces and logs ("AI-HFOS", "PIL", "UNIVERSE_OS").
  virtual std::string name() const = 0;
  /// The current mode (read at every call, so a mode change applies at once).
  virtual SubsystemMode mode() const = 0;
  /// Whether it answers `hook` at all (the pipeline asks only those).
  virtual bool answers(Hook hook) const = 0;

  virtual std::optional<UniverseAnswer> universe_filter(const TradeCandidate&, const UniverseAnswer&, std::string&) { return {}; }
  virtual std::optional<ConfidenceAnswer> confidence_adjustment(const TradeCandidate&, const ConfidenceAnswer&, std::string&) { return {}; }
  virtual std::optional<CheckAnswer> risk_check(const TradeCandidate&, const CheckAnswer&, std::string&) { return {}; }
  virtual std::optional<CheckAnswer> portfolio_check(const TradeCandidate&, const CheckAnswer&, std::string&) { return {}; }
  virtual std::optional<SizingAnswer> position_sizing(const TradeCandidate&, const SizingAnswer&, std::string&) { return {}; }
  virtual std::optional<OrderTypeAnswer> order_type_selection(const TradeCandidate&, const OrderTypeAnswer&, std::string&) { return {}; }
  virtual std::optional<SlippageAnswer> slippage_check(const TradeCandidate&, const SlippageAnswer&, std::string&) { return {}; }
  virtual std::optional<ClassificationAnswer> position_classification(const PositionSnapshot&, const ClassificationAnswer&, std::string&) { return {}; }
  virtual std::optional<AmplificationAnswer> amplification_check(const PositionSnapshot&, const AmplificationAnswer&, std::string&) { return {}; }
  virtual std::optional<HealingAnswer> self_healing_check(const SystemSnapshot&, const HealingAnswer&, std::string&) { return {}; }
  virtual std::optional<CoordinationAnswer> ai_hfos_coordination(const SystemSnapshot&, const CoordinationAnswer&, std::string&) { return {}; }
};

/// The decision log of a subsystem, `<log_dir>/ai_subsystem_<name>.log` (lower case, '-' and ' ' as '_'), one line
/// per decision, flushed as written. The pipeline and the subsystem itself write to the same logger (one open file per
/// path in the process). Null when `log_dir` is empty.
std::shared_ptr<spdlog::logger> subsystem_log(const std::string& log_dir, const std::string& name);

/// How the pipeline treats failures.
struct HookOptions {
  bool fail_safe = true;  ///< QT_AI_FAIL_SAFE: a throwing or overrunning subsystem falls back / denies
  std::chrono::microseconds budget{50'000};  ///< a call longer than this counts as a failure (wall time)
  std::string log_dir;    ///< where logs/ai_subsystem_<name>.log go ("" : no files)
};

/// Asks the subsystems at each hook. Owner thread.
class HookPipeline {
 public:
  /// A pipeline on `bus` (HealthStatusChanged for failures).
  HookPipeline(EventBus& bus, HookOptions options = {});
  ~HookPipeline();
  HookPipeline(const HookPipeline&) = delete;
  HookPipeline& operator=(const HookPipeline&) = delete;
  /// Adds a subsystem; subsystems are asked in the order they were added (docs/TRADING.md gives the composition order).
  void add(std::shared_ptr<TradingSubsystem> subsystem);
  /// True when some subsystem that is not OFF answers `hook` (the executor skips the work of building a snapshot
  /// otherwise).
  bool active(Hook hook) const;
  /// The subsystems, in order.
  const std::vector<std::shared_ptr<TradingSubsystem>>& subsystems() const { return subsystems_; }
  /// Fail-safe fallbacks so far.
  std::uint64_t failures() const { return failures_; }

  UniverseAnswer universe_filter(const TradeCandidate& c, UniverseAnswer v, DecisionTrace* trace);
  ConfidenceAnswer confidence_adjustment(const TradeCandidate& c, ConfidenceAnswer v, DecisionTrace* trace);
  CheckAnswer risk_check(const TradeCandidate& c, CheckAnswer v, DecisionTrace* trace);
  CheckAnswer portfolio_check(const TradeCandidate& c, CheckAnswer v, DecisionTrace* trace);
  SizingAnswer position_sizing(const TradeCandidate& c, SizingAnswer v, DecisionTrace* trace);
  OrderTypeAnswer order_type_selection(const TradeCandidate& c, OrderTypeAnswer v, DecisionTrace* trace);
  SlippageAnswer slippage_check(const TradeCandidate& c, SlippageAnswer v, DecisionTrace* trace);
  ClassificationAnswer position_classification(const PositionSnapshot& p, ClassificationAnswer v, DecisionTrace* trace);
  AmplificationAnswer amplification_check(const PositionSnapshot& p, AmplificationAnswer v, DecisionTrace* trace);
  HealingAnswer self_healing_check(const SystemSnapshot& s, HealingAnswer v, DecisionTrace* trace);
  CoordinationAnswer ai_hfos_coordination(const SystemSnapshot& s, CoordinationAnswer v, DecisionTrace* trace);

 private:
  template <class V, class Ctx, class Call>
  V run(Hook hook, const Ctx& ctx, V value, DecisionTrace* trace, Call call);
  void log_line(TradingSubsystem& s, const std::string& line);
  void failure(TradingSubsystem& s, Hook hook, const std::string& what);

  EventBus& bus_;
  HookOptions options_;
  std::vector<std::shared_ptr<TradingSubsystem>> subsystems_;
  std::map<std::string, std::shared_ptr<spdlog::logger>> logs_;
  std::map<std::string, std::uint64_t> errors_;
  struct LastLine {
    std::string text;            // the last line logged for a subsystem, hook and subject (without a repeat note)
    std::uint64_t repeats = 0;   // identical decisions since, not logged
  };
  std::unordered_map<std::string, LastLine> last_lines_;
  std::uint64_t failures_ = 0;
};

}  // namespace qtos
