#pragma once
/// @file The Risk OS: pre-trade controls that are always on, like a broker's. A trading state (ACTIVE / REDUCING /
/// HALTED), checks before every order with a reason code per denial, drawdown monitoring on every equity mark, the
/// emergency brake, a runaway check (orders sent never exceed orders intended) and the stop-out guards.
/// Reason codes and their order: docs/TRADING.md.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "cpu/util/enum_names.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/config.hpp"
#include "runtime/policy/policy.hpp"

namespace qtos {

/// What the Risk OS lets through.
enum class TradingState : std::uint8_t {
  active,    ///< every check applies, nothing more
  reducing,  ///< only orders that reduce exposure pass (a drawdown limit was reached)
  halted     ///< no new orders; cancels (and exits, when the brake allows them) pass
};
QTOS_ENUM_NAMES(TradingState, "ACTIVE", "REDUCING", "HALTED");

/// The Risk OS's own limits (the policy supplies risk per trade, open positions, leverage and drawdown limits).
struct RiskLimits {
  double max_notional_per_order = 1'000'000;  ///< quote; an order above it is denied (MAX_NOTIONAL)
  double price_collar_pct = 10.0;        ///< a limit/stop price more than this % from the last price is denied
  std::int64_t max_orders_per_minute = 600;  ///< entries let through in the last 60 s of the bus clock (ORDER_RATE)
  std::int64_t stop_out_cooldown_s = 0;  ///< no new entry on a symbol for this long after a stop-out there (0: off)
  std::int64_t stop_guard_count = 0;     ///< this many stop-outs within stop_guard_window_s ... (0: off)
  std::int64_t stop_guard_window_s = 3600;  ///< ... lock every new entry for stop_guard_lock_s
  std::int64_t stop_guard_lock_s = 3600;    ///< how long the lock lasts
  /// The limits from the configuration (QT_RISK_* variables, docs/CONFIG.md).
  static RiskLimits from_config(const Config& config);
};

/// An order as the Risk OS checks it.
struct RiskOrder {
  std::string strategy;      ///< for the policy's allow/block lists
  Symbol symbol;             ///< exchange symbol
  Side side = Side::buy;     ///< buy or sell
  OrderType type = OrderType::market;  ///< order type
  double qty = 0;            ///< base quantity (> 0), or 0 with quote_qty
  double quote_qty = 0;      ///< market entries sized in quote
  double price = 0;          ///< limit/stop price (0 for market orders)
  double last_price = 0;     ///< the last traded price of the symbol (> 0)
  double stop_loss = 0;      ///< the entry's protective stop (0: none): risk = qty x |last_price - stop_loss|
  double leverage = 1;       ///< leverage it opens with
  bool reduces = false;      ///< an exit, stop, target or risk exit of an existing position
  bool adds = false;         ///< adds to the symbol's existing position (a scale-in): no second position, no new slot
};

/// The account as the Risk OS sees it at a check or a mark.
struct RiskAccount {
  double equity = 0;               ///< account value now
  double day_start_equity = 0;     ///< value at the start of the UTC day
  double open_loss = 0;            ///< unrealised loss of the open positions at the last prices (quote, >= 0)
  std::int64_t open_positions = 0; ///< positions open (entries in flight count)
  bool symbol_has_position = false;  ///< the order's symbol already has a position (entries)
};

/// A denial: the reason code and a sentence naming the value and the limit.
struct RiskDenial {
  DenyReason reason = DenyReason::risk_mode;  ///< the code
  std::string detail;                         ///< "notional 12000 > max_notional_per_order 10000"
};

/// The Risk OS. Lives on the bus owner thread; publishes RiskLimitBreached and EmergencyBrakeChanged.
class RiskOS {
 public:
  /// `bus` receives its events (source "risk_os"); the bus clock is its clock.
  RiskOS(RiskLimits limits, EventBus& bus);

  /// Checks an order under `policy` and `account`, in the documented order; nothing when it may go. Counts the
  /// order as intended (see order_sent).
  std::optional<RiskDenial> check(const RiskOrder& order, const RiskAccount& account, const Policy& policy);
  /// The executor sends an order that check() let through: counts it. Sending more orders than were intended halts
  /// trading (RUNAWAY) and returns false: the order must not be sent.
  bool order_sent();
  /// A mark of the account (every bar cycle): the daily drawdown (equity against the start of the UTC day) and the
  /// open drawdown (the open positions' unrealised loss against equity) under the policy. Reaching either limit moves
  /// ACTIVE -> REDUCING and publishes RiskLimitBreached once per breach. The daily limit holds until a new UTC day
  /// under it; the open limit until a mark under it (the worst positions were closed, or recovered). Returns true while
  /// the open limit is exceeded: the executor then closes the worst position.
  bool mark(const RiskAccount& account, const Policy& policy);
  /// A position was stopped out on `symbol` (cooldown and guard).
  void stop_out(const Symbol& symbol);
  /// Engages or releases the emergency brake (HALTED / back to the state the drawdowns imply) and publishes it.
  void brake_set(bool engaged, const std::string& actor, const std::string& reason);
  /// True while the brake is engaged.
  bool brake_engaged() const { return brake_; }
  /// The current state.
  TradingState state() const;
  /// Orders intended and sent so far.
  std::uint64_t orders_intended() const { return intended_; }
  std::uint64_t orders_sent() const { return sent_; }
  /// The limits.
  const RiskLimits& limits() const { return limits_; }
  /// An entry lock of the stop-out rules: the guard ("stop_loss_guard") or a symbol's cooldown ("cooldown:SYMBOL").
  struct Lock {
    std::string id;       ///< "stop_loss_guard" or "cooldown:BTCUSDT"
    TimeNs until = 0;     ///< clock time it ends
    std::string reason;   ///< what set it
  };
  /// The locks in force now, guard first, then cooldowns by symbol.
  std::vector<Lock> locks() const;
  /// Lifts a lock early (an operator's decision); false when no lock with that id is in force.
  bool lock_release(const std::string& id);
  /// The drawdown that put trading into REDUCING (DAILY_DRAWDOWN or OPEN_DRAWDOWN); meaningful while REDUCING.
  DenyReason reducing_reason() const { return reducing_reason_; }
  /// Its whole state at a bar boundary, exactly (the brake, runaway, drawdown states, counts, rate window, guard and
  /// cooldowns): a restarted run restores it, so a brake pulled before a crash is still pulled after it.
  boost::json::object checkpoint() const;
  /// Restores a checkpoint(); nothing is published (the state was announced when it was entered). Throws
  /// std::runtime_error naming a missing or malformed field.
  void restore(const boost::json::object& state);

 private:
  std::optional<RiskDenial> check_entry(const RiskOrder& order, const RiskAccount& account, const Policy& policy,
                                        TimeNs now);
  void breach(RiskLimit limit, double value, double threshold);

  RiskLimits limits_;
  EventBus& bus_;
  bool brake_ = false;
  bool runaway_ = false;
  bool reducing_daily_ = false;
  bool reducing_open_ = false;
  std::optional<std::int64_t> day_;    // UTC day (since 1970-01-01) of the last mark
  std::uint64_t intended_ = 0, sent_ = 0;
  std::deque<TimeNs> recent_orders_;
  std::deque<TimeNs> recent_stop_outs_;
  std::map<std::string, TimeNs> symbol_cooldown_until_;
  TimeNs guard_until_ = 0;
  DenyReason reducing_reason_ = DenyReason::daily_drawdown;
  std::string reducing_detail_;         // "daily drawdown 6% >= max_daily_drawdown_pct 5%"
  std::uint64_t policy_version_ = 0;    // the last policy seen by check() or mark(), for RiskLimitBreached
};

}  // namespace qtos
