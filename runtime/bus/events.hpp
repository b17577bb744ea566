#pragma once
/// @file The typed events of the bus. Each is a plain struct with an `EventHeader` (id, clock timestamp, source),
/// a static type tag and topic, and payload fields listed once with QTOS_EVENT_FIELDS so that the event log, the
/// dump verb and equality all see the same fields. Events are immutable once published: handlers get `const E&`.

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "cpu/util/enum_names.hpp"
#include "runtime/bus/topics.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/config.hpp"

namespace qtos {

/// A short string stored inline (no allocation, trivially copyable): symbols, sources, strategy ids.
template <std::size_t N>
class FixedString {
  static_assert(N > 0 && N < 256, "FixedString length must fit in one byte");

 public:
  /// Capacity in characters.
  static constexpr std::size_t kCapacity = N;
  /// The empty string.
  constexpr FixedString() = default;
  /// Copies `s`; throws std::invalid_argument naming `s` when it is longer than N.
  FixedString(std::string_view s) {  // NOLINT(google-explicit-constructor): `.symbol = "BTCUSDT"` reads well
    if (s.size() > N)
      throw std::invalid_argument("'" + std::string(s) + "' is " + std::to_string(s.size()) + " characters; at most " +
                                  std::to_string(N) + " fit");
    std::memcpy(data_, s.data(), s.size());
    size_ = static_cast<std::uint8_t>(s.size());
  }
  /// Copies a C string (see the string_view constructor).
  FixedString(const char* s) : FixedString(std::string_view(s)) {}  // NOLINT(google-explicit-constructor)
  /// Copies a std::string (see the string_view constructor).
  FixedString(const std::string& s) : FixedString(std::string_view(s)) {}  // NOLINT(google-explicit-constructor)
  /// The characters.
  std::string_view view() const { return {data_, size_}; }
  /// The characters as a std::string.
  std::string str() const { return std::string(view()); }
  /// Length in characters.
  std::size_t size() const { return size_; }
  /// True when empty.
  bool empty() const { return size_ == 0; }
  /// Byte-wise equality (unused bytes are always zero).
  friend bool operator==(const FixedString&, const FixedString&) = default;

 private:
  char data_[N]{};
  std::uint8_t size_ = 0;
};

/// Hashes a FixedString by its characters (unordered containers keyed by symbols).
struct FixedStringHash {
  template <std::size_t N>
  std::size_t operator()(const FixedString<N>& s) const noexcept {
    return std::hash<std::string_view>{}(s.view());
  }
};

using Symbol = FixedString<20>;      ///< an exchange symbol, e.g. BTCUSDT
using SourceName = FixedString<31>;  ///< the component that produced an event
using StrategyId = FixedString<31>;  ///< a strategy's identifier

/// Order or position side.
enum class Side : std::uint8_t { buy, sell };
/// Order type.
enum class OrderType : std::uint8_t { market, limit, stop_market, take_profit_market, market_on_close };
/// The global risk posture of the policy.
enum class RiskMode : std::uint8_t { aggressive, normal, defensive };
/// Why a trade was blocked before it reached the exchange.
enum class DenyReason : std::uint8_t {
  emergency_brake, strategy_blocked, strategy_not_allowed, low_confidence, max_open_positions, max_risk_per_trade,
  max_leverage, daily_drawdown, open_drawdown, universe_filter, risk_mode, duplicate_position, insufficient_balance,
  service_degraded,
  // the Risk OS (docs/TRADING.md); new values go last: the value is stored in event logs and the ledger
  invalid_order, trading_halted, reducing_only, max_notional, price_collar, order_rate, runaway, stop_out_cooldown,
  stop_loss_guard, exchange_filter, fail_safe, hook_blocked,
  // the AI subsystems (docs/SUBSYSTEMS.md)
  exposure_limit, cluster_limit, slippage_cooldown, system_risk
};
/// Market regime (RegimeChanged). `high_volatility` is shown as VOLATILE; `crash` (new values go last: the value is stored
/// in event logs) is a fast, broad fall.
enum class Regime : std::uint8_t { unknown, trending_up, trending_down, ranging, high_volatility, low_volatility, crash };
/// Stage of a strategy in the generator's pipeline.
enum class StrategyStage : std::uint8_t { candidate, shadow, live, retired };
/// Health of a component.
enum class HealthLevel : std::uint8_t { healthy, degraded, failing };
/// Lifecycle state of a service (see runtime/service/service.hpp for the transition table).
enum class ServiceState : std::uint8_t { created, starting, running, degraded, faulted, stopped };
/// Why a position was closed.
enum class CloseReason : std::uint8_t {
  take_profit, stop_loss, signal_exit, trailing_stop, risk_exit, emergency_brake, manual,
  max_hold, end_of_replay, liquidation, subsystem_exit  // new values go last
};
/// The risk limit that was breached.
enum class RiskLimit : std::uint8_t { daily_drawdown, open_drawdown, leverage, exposure, open_positions, risk_per_trade, runaway };

QTOS_ENUM_NAMES(Side, "BUY", "SELL");
QTOS_ENUM_NAMES(OrderType, "MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET", "MARKET_ON_CLOSE");
QTOS_ENUM_NAMES(RiskMode, "AGGRESSIVE", "NORMAL", "DEFENSIVE");
QTOS_ENUM_NAMES(DenyReason, "EMERGENCY_BRAKE", "STRATEGY_BLOCKED", "STRATEGY_NOT_ALLOWED", "LOW_CONFIDENCE",
                "MAX_OPEN_POSITIONS", "MAX_RISK_PER_TRADE", "MAX_LEVERAGE", "DAILY_DRAWDOWN", "OPEN_DRAWDOWN",
                "UNIVERSE_FILTER", "RISK_MODE", "DUPLICATE_POSITION", "INSUFFICIENT_BALANCE", "SERVICE_DEGRADED",
                "INVALID_ORDER", "TRADING_HALTED", "REDUCING_ONLY", "MAX_NOTIONAL", "PRICE_COLLAR", "ORDER_RATE", "RUNAWAY",
                "STOP_OUT_COOLDOWN", "STOP_LOSS_GUARD", "EXCHANGE_FILTER", "FAIL_SAFE", "HOOK_BLOCKED", "EXPOSURE_LIMIT", "CLUSTER_LIMIT",
                "SLIPPAGE_COOLDOWN", "SYSTEM_RISK");
QTOS_ENUM_NAMES(Regime, "UNKNOWN", "TRENDING_UP", "TRENDING_DOWN", "RANGING", "VOLATILE", "LOW_VOLATILITY", "CRASH");
QTOS_ENUM_NAMES(StrategyStage, "CANDIDATE", "SHADOW", "LIVE", "RETIRED");
QTOS_ENUM_NAMES(HealthLevel, "HEALTHY", "DEGRADED", "FAILING");
QTOS_ENUM_NAMES(ServiceState, "CREATED", "STARTING", "RUNNING", "DEGRADED", "FAULTED", "STOPPED");
QTOS_ENUM_NAMES(CloseReason, "TAKE_PROFIT", "STOP_LOSS", "SIGNAL_EXIT", "TRAILING_STOP", "RISK_EXIT", "EMERGENCY_BRAKE",
                "MANUAL", "MAX_HOLD", "END_OF_REPLAY", "LIQUIDATION", "SUBSYSTEM_EXIT");
QTOS_ENUM_NAMES(RiskLimit, "DAILY_DRAWDOWN", "OPEN_DRAWDOWN", "LEVERAGE", "EXPOSURE", "OPEN_POSITIONS", "RISK_PER_TRADE", "RUNAWAY");

/// The type tag of every event; the value is also the event's index in AnyEvent.
enum class EventType : std::uint16_t {
  market_bar_closed, opportunities_updated, regime_changed, policy_updated, strategy_promoted, strategy_retired,
  model_promoted, health_status_changed, signal_generated, order_submitted, order_denied, order_filled,
  order_rejected, position_opened, position_closed, risk_limit_breached, emergency_brake_changed,
  service_state_changed, universe_suggested, subsystem_decided  // new types go last: the value is the type code in event logs
};
QTOS_ENUM_NAMES(EventType, "MarketBarClosed", "OpportunitiesUpdated", "RegimeChanged", "PolicyUpdated", "StrategyPromoted",
                "StrategyRetired", "ModelPromoted", "HealthStatusChanged", "SignalGenerated", "OrderSubmitted", "OrderDenied",
                "OrderFilled", "OrderRejected", "PositionOpened", "PositionClosed", "RiskLimitBreached",
                "EmergencyBrakeChanged", "ServiceStateChanged", "UniverseSuggested", "SubsystemDecided");
/// Number of event types.
inline constexpr std::size_t kEventTypeCount = EnumNames<EventType>::kCount;

/// Stamped on every event by the bus when it is published or posted.
struct EventHeader {
  std::uint64_t id = 0;  ///< 1, 2, 3... in delivery order on one bus
  TimeNs ts = 0;         ///< the bus clock when the event was published (or posted)
  SourceName source;     ///< the component that published it
  friend bool operator==(const EventHeader&, const EventHeader&) = default;
};

/// Declares the payload fields of an event (or of a record inside one) for the log, the dump verb and equality.
#define QTOS_EVENT_FIELDS(...)                                       \
  auto fields() { return std::tie(__VA_ARGS__); }                    \
  auto fields() const { return std::tie(__VA_ARGS__); }              \
  static constexpr std::string_view kFieldNames = #__VA_ARGS__

namespace detail {
/// Field equality where two NaNs are equal: NaN marks a value as unknown, and an unknown value equals itself.
template <class T>
bool same_field(const T& a, const T& b) {
  if constexpr (std::is_floating_point_v<T>)
    return a == b || (std::isnan(a) && std::isnan(b));
  else
    return a == b;
}
}  // namespace detail

/// MarketBarClosed::quote_volume when the publisher does not know it (a feed with base volume only, or a version-1
/// event log): NaN. Consumers that need a dollar volume then estimate it, e.g. as volume x close.
inline constexpr double kUnknownQuoteVolume = std::numeric_limits<double>::quiet_NaN();
/// MarketBarClosed::trades when the publisher does not know it.
inline constexpr std::int64_t kUnknownTrades = -1;

/// A closed bar of one symbol and interval.
struct MarketBarClosed {
  static constexpr EventType kType = EventType::market_bar_closed;  ///< type tag
  static constexpr std::string_view kTopic = topics::kMarketBarClosed;  ///< topic
  static constexpr bool kDroppable = true;  ///< market data: dropped (and counted) when the post queue is full
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  Symbol symbol;  ///< exchange symbol
  std::int32_t interval_s = 60;  ///< bar length in seconds
  TimeNs open_time = 0;  ///< bar open time (Unix ns)
  double open = 0, high = 0, low = 0, close = 0, volume = 0;  ///< OHLCV: open, high, low, close, base-asset volume
  double quote_volume = kUnknownQuoteVolume;  ///< quote-asset (dollar) volume; NaN (kUnknownQuoteVolume): unknown
  std::int64_t trades = kUnknownTrades;  ///< number of trades in the bar; -1 (kUnknownTrades): unknown
  QTOS_EVENT_FIELDS(symbol, interval_s, open_time, open, high, low, close, volume, quote_volume, trades);
  /// True when the publisher knew the quote volume (it is not NaN).
  bool quote_volume_known() const { return !std::isnan(quote_volume); }
  /// Field by field, an unknown (NaN) value equal to an unknown one, so a bar equals its own log round trip.
  friend bool operator==(const MarketBarClosed& a, const MarketBarClosed& b) {
    if (!(a.header == b.header)) return false;
    return std::apply(
        [&](const auto&... x) {
          return std::apply([&](const auto&... y) { return (detail::same_field(x, y) && ...); }, b.fields());
        },
        a.fields());
  }
};

/// One ranked symbol inside OpportunitiesUpdated.
struct Opportunity {
  Symbol symbol;  ///< exchange symbol
  double score = 0;  ///< ranking score, higher is better
  double volume_24h = 0;  ///< 24 h quote volume
  QTOS_EVENT_FIELDS(symbol, score, volume_24h);
  friend bool operator==(const Opportunity&, const Opportunity&) = default;
};

/// The opportunity ranker's new top list.
struct OpportunitiesUpdated {
  static constexpr EventType kType = EventType::opportunities_updated;  ///< type tag
  static constexpr std::string_view kTopic = topics::kMarketOpportunities;  ///< topic
  static constexpr bool kDroppable = true;  ///< market data
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::vector<Opportunity> top;  ///< best-ranked symbols, best first
  std::uint32_t universe_size = 0;  ///< symbols that were ranked
  QTOS_EVENT_FIELDS(top, universe_size);
  friend bool operator==(const OpportunitiesUpdated&, const OpportunitiesUpdated&) = default;
};

/// The regime classifier's view changed (`symbol` empty: the whole market).
struct RegimeChanged {
  static constexpr EventType kType = EventType::regime_changed;  ///< type tag
  static constexpr std::string_view kTopic = topics::kMarketRegime;  ///< topic
  static constexpr bool kDroppable = false;  ///< feeds risk decisions: never dropped
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  Symbol symbol;  ///< exchange symbol
  Regime previous = Regime::unknown;  ///< state before the change
  Regime current = Regime::unknown;  ///< state after the change
  double confidence = 0;  ///< confidence in [0, 1]
  QTOS_EVENT_FIELDS(symbol, previous, current, confidence);
  friend bool operator==(const RegimeChanged&, const RegimeChanged&) = default;
};

/// The policy store accepted a change.
struct PolicyUpdated {
  static constexpr EventType kType = EventType::policy_updated;  ///< type tag
  static constexpr std::string_view kTopic = topics::kPolicyUpdated;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::uint64_t version = 0;  ///< version after the change
  std::uint64_t previous_version = 0;  ///< version before the change
  RiskMode risk_mode = RiskMode::normal;  ///< risk mode after the change
  std::string changed_fields;  ///< comma-separated names of the fields that changed
  std::string updated_by;  ///< who made the change
  std::string reason;  ///< why
  QTOS_EVENT_FIELDS(version, previous_version, risk_mode, changed_fields, updated_by, reason);
  friend bool operator==(const PolicyUpdated&, const PolicyUpdated&) = default;
};

/// A strategy moved forward in the generator's pipeline.
struct StrategyPromoted {
  static constexpr EventType kType = EventType::strategy_promoted;  ///< type tag
  static constexpr std::string_view kTopic = topics::kStrategiesPromoted;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  StrategyId strategy;  ///< strategy id
  StrategyStage from = StrategyStage::candidate;  ///< stage before
  StrategyStage to = StrategyStage::shadow;  ///< stage after
  double fitness = 0;  ///< fitness score that earned the promotion
  QTOS_EVENT_FIELDS(strategy, from, to, fitness);
  friend bool operator==(const StrategyPromoted&, const StrategyPromoted&) = default;
};

/// A strategy was retired.
struct StrategyRetired {
  static constexpr EventType kType = EventType::strategy_retired;  ///< type tag
  static constexpr std::string_view kTopic = topics::kStrategiesRetired;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  StrategyId strategy;  ///< strategy id
  std::string reason;  ///< why
  QTOS_EVENT_FIELDS(strategy, reason);
  friend bool operator==(const StrategyRetired&, const StrategyRetired&) = default;
};

/// A model version was promoted to serve predictions.
struct ModelPromoted {
  static constexpr EventType kType = EventType::model_promoted;  ///< type tag
  static constexpr std::string_view kTopic = topics::kModelsPromoted;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  StrategyId model;  ///< model name
  std::uint32_t version = 0;  ///< version after the change
  std::uint32_t previous_version = 0;  ///< version before the change
  double validation_score = 0;  ///< score on the validation set
  QTOS_EVENT_FIELDS(model, version, previous_version, validation_score);
  friend bool operator==(const ModelPromoted&, const ModelPromoted&) = default;
};

/// A component's health changed, or a subscriber's handler failed (rate-limited per subscriber).
struct HealthStatusChanged {
  static constexpr EventType kType = EventType::health_status_changed;  ///< type tag
  static constexpr std::string_view kTopic = topics::kHealthStatus;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  SourceName component;  ///< the component (or subscriber) concerned
  HealthLevel previous = HealthLevel::healthy;  ///< state before the change
  HealthLevel current = HealthLevel::healthy;  ///< state after the change
  std::uint64_t error_count = 0;  ///< errors counted so far
  std::string detail;  ///< human-readable detail
  QTOS_EVENT_FIELDS(component, previous, current, error_count, detail);
  friend bool operator==(const HealthStatusChanged&, const HealthStatusChanged&) = default;
};

/// A strategy wants to trade.
struct SignalGenerated {
  static constexpr EventType kType = EventType::signal_generated;  ///< type tag
  static constexpr std::string_view kTopic = topics::kSignalsGenerated;  ///< topic
  static constexpr bool kDroppable = false;  ///< leads to orders
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  StrategyId strategy;  ///< strategy id
  Symbol symbol;  ///< exchange symbol
  Side side = Side::buy;  ///< buy or sell
  double confidence = 0;  ///< confidence in [0, 1]
  double price = 0;  ///< price
  double stop_loss = 0;  ///< stop-loss price (0: none)
  double take_profit = 0;  ///< take-profit price (0: none)
  QTOS_EVENT_FIELDS(strategy, symbol, side, confidence, price, stop_loss, take_profit);
  friend bool operator==(const SignalGenerated&, const SignalGenerated&) = default;
};

/// An order was sent to the exchange.
struct OrderSubmitted {
  static constexpr EventType kType = EventType::order_submitted;  ///< type tag
  static constexpr std::string_view kTopic = topics::kOrdersSubmitted;  ///< topic
  static constexpr bool kDroppable = false;  ///< orders: the poster blocks when the queue is full
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::uint64_t order_id = 0;  ///< order id
  StrategyId strategy;  ///< strategy id
  Symbol symbol;  ///< exchange symbol
  Side side = Side::buy;  ///< buy or sell
  OrderType type = OrderType::market;  ///< order type
  double qty = 0;  ///< quantity in base asset
  double price = 0;  ///< limit or trigger price; 0 for market orders
  double leverage = 1;  ///< leverage
  QTOS_EVENT_FIELDS(order_id, strategy, symbol, side, type, qty, price, leverage);
  friend bool operator==(const OrderSubmitted&, const OrderSubmitted&) = default;
};

/// A trade was blocked before the exchange; a decision, not an error.
struct OrderDenied {
  static constexpr EventType kType = EventType::order_denied;  ///< type tag
  static constexpr std::string_view kTopic = topics::kOrdersDenied;  ///< topic
  static constexpr bool kDroppable = false;  ///< orders
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::uint64_t order_id = 0;  ///< order id
  StrategyId strategy;  ///< strategy id
  Symbol symbol;  ///< exchange symbol
  Side side = Side::buy;  ///< buy or sell
  double qty = 0;  ///< quantity in base asset
  double price = 0;  ///< price
  DenyReason reason = DenyReason::risk_mode;  ///< why
  std::uint64_t policy_version = 0;  ///< the policy the decision was taken under
  std::string detail;  ///< human-readable detail
  QTOS_EVENT_FIELDS(order_id, strategy, symbol, side, qty, price, reason, policy_version, detail);
  friend bool operator==(const OrderDenied&, const OrderDenied&) = default;
};

/// The exchange filled (part of) an order.
struct OrderFilled {
  static constexpr EventType kType = EventType::order_filled;  ///< type tag
  static constexpr std::string_view kTopic = topics::kOrdersFilled;  ///< topic
  static constexpr bool kDroppable = false;  ///< orders
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::uint64_t order_id = 0;  ///< order id
  Symbol symbol;  ///< exchange symbol
  Side side = Side::buy;  ///< buy or sell
  double qty = 0;  ///< quantity in base asset
  double price = 0;  ///< price
  double fee = 0;  ///< fee paid, in quote asset
  double remaining_qty = 0;  ///< 0 when the order is completely filled
  QTOS_EVENT_FIELDS(order_id, symbol, side, qty, price, fee, remaining_qty);
  friend bool operator==(const OrderFilled&, const OrderFilled&) = default;
};

/// The exchange refused an order.
struct OrderRejected {
  static constexpr EventType kType = EventType::order_rejected;  ///< type tag
  static constexpr std::string_view kTopic = topics::kOrdersRejected;  ///< topic
  static constexpr bool kDroppable = false;  ///< orders
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::uint64_t order_id = 0;  ///< order id
  Symbol symbol;  ///< exchange symbol
  Side side = Side::buy;  ///< buy or sell
  double qty = 0;  ///< quantity in base asset
  std::int32_t exchange_code = 0;  ///< exchange error code
  std::string message;  ///< exchange error message
  QTOS_EVENT_FIELDS(order_id, symbol, side, qty, exchange_code, message);
  friend bool operator==(const OrderRejected&, const OrderRejected&) = default;
};

/// A position was opened.
struct PositionOpened {
  static constexpr EventType kType = EventType::position_opened;  ///< type tag
  static constexpr std::string_view kTopic = topics::kPositionsOpened;  ///< topic
  static constexpr bool kDroppable = false;  ///< orders
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::uint64_t position_id = 0;  ///< position id
  StrategyId strategy;  ///< strategy id
  Symbol symbol;  ///< exchange symbol
  Side side = Side::buy;  ///< buy or sell
  double qty = 0;  ///< quantity in base asset
  double entry_price = 0;  ///< average entry price
  double leverage = 1;  ///< leverage
  QTOS_EVENT_FIELDS(position_id, strategy, symbol, side, qty, entry_price, leverage);
  friend bool operator==(const PositionOpened&, const PositionOpened&) = default;
};

/// A position was closed.
struct PositionClosed {
  static constexpr EventType kType = EventType::position_closed;  ///< type tag
  static constexpr std::string_view kTopic = topics::kPositionsClosed;  ///< topic
  static constexpr bool kDroppable = false;  ///< orders
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::uint64_t position_id = 0;  ///< position id
  Symbol symbol;  ///< exchange symbol
  Side side = Side::buy;  ///< buy or sell
  double qty = 0;  ///< quantity in base asset
  double entry_price = 0;  ///< average entry price
  double exit_price = 0;  ///< average exit price
  double realized_pnl = 0;  ///< realized profit and loss, in quote asset
  CloseReason reason = CloseReason::signal_exit;  ///< why
  QTOS_EVENT_FIELDS(position_id, symbol, side, qty, entry_price, exit_price, realized_pnl, reason);
  friend bool operator==(const PositionClosed&, const PositionClosed&) = default;
};

/// A risk limit of the policy was crossed.
struct RiskLimitBreached {
  static constexpr EventType kType = EventType::risk_limit_breached;  ///< type tag
  static constexpr std::string_view kTopic = topics::kRiskLimitBreached;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  RiskLimit limit = RiskLimit::daily_drawdown;  ///< which limit
  double value = 0;  ///< observed value
  double threshold = 0;  ///< the policy limit it crossed
  std::uint64_t policy_version = 0;  ///< policy version in force
  QTOS_EVENT_FIELDS(limit, value, threshold, policy_version);
  friend bool operator==(const RiskLimitBreached&, const RiskLimitBreached&) = default;
};

/// The emergency brake was engaged or released.
struct EmergencyBrakeChanged {
  static constexpr EventType kType = EventType::emergency_brake_changed;  ///< type tag
  static constexpr std::string_view kTopic = topics::kControlEmergencyBrake;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  bool engaged = false;  ///< true: trading halted
  std::string actor;  ///< who pulled or released it
  std::string reason;  ///< why
  QTOS_EVENT_FIELDS(engaged, actor, reason);
  friend bool operator==(const EmergencyBrakeChanged&, const EmergencyBrakeChanged&) = default;
};

/// A service changed lifecycle state or mode.
struct ServiceStateChanged {
  static constexpr EventType kType = EventType::service_state_changed;  ///< type tag
  static constexpr std::string_view kTopic = topics::kServicesLifecycle;  ///< topic
  static constexpr bool kDroppable = false;  ///< control
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  SourceName service;  ///< service name
  ServiceState previous = ServiceState::created;  ///< state before the change
  ServiceState current = ServiceState::created;  ///< state after the change
  SubsystemMode mode = SubsystemMode::off;  ///< the service mode
  std::string reason;  ///< why
  QTOS_EVENT_FIELDS(service, previous, current, mode, reason);
  friend bool operator==(const ServiceStateChanged&, const ServiceStateChanged&) = default;
};

/// A symbol UniverseOS left out of a suggested universe, and why.
struct UniverseExclusion {
  Symbol symbol;  ///< exchange symbol
  std::string reason;  ///< "blacklisted", "beyond top_n_universe (N)", ...
  QTOS_EVENT_FIELDS(symbol, reason);
  friend bool operator==(const UniverseExclusion&, const UniverseExclusion&) = default;
};

/// UniverseOS in ADVISORY mode suggests a tradable universe; nothing is enforced by it (ENFORCED installs the
/// universe in the executor's filter instead, OBSERVE only logs).
struct UniverseSuggested {
  static constexpr EventType kType = EventType::universe_suggested;  ///< type tag
  static constexpr std::string_view kTopic = topics::kUniverseSuggested;  ///< topic
  static constexpr bool kDroppable = true;  ///< derived from market data; the next suggestion supersedes it
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  std::vector<Symbol> universe;  ///< the suggested tradable symbols, best first
  std::vector<UniverseExclusion> filtered;  ///< candidates left out, with the reason
  std::uint64_t policy_version = 0;  ///< the policy the suggestion was computed under
  QTOS_EVENT_FIELDS(universe, filtered, policy_version);
  friend bool operator==(const UniverseSuggested&, const UniverseSuggested&) = default;
};

/// An AI subsystem decided something worth an operator's attention: a classification that changed, a threshold or
/// directive, a recommendation (ADVISORY), a block, an exit, a recovery action. `applied` is false for what OBSERVE (or
/// ADVISORY, for a hard action) only recommends.
struct SubsystemDecided {
  static constexpr EventType kType = EventType::subsystem_decided;  ///< type tag
  static constexpr std::string_view kTopic = topics::kSubsystemsDecided;  ///< topic
  static constexpr bool kDroppable = false;  ///< an audit record
  EventHeader header;  ///< id, clock time and source, stamped by the bus
  SourceName subsystem;  ///< "AI-HFOS", "PIL", ...
  SubsystemMode mode = SubsystemMode::observe;  ///< its mode when it decided
  std::string action;  ///< what, in capitals: "CLASSIFY", "SET_DIRECTIVE", "SCALE_IN", "PAUSE_TRADING", ...
  Symbol symbol;  ///< the symbol concerned (empty: the whole system)
  std::string detail;  ///< the decision's sentence, as in the subsystem's log
  bool applied = false;  ///< true when it changed what the system does
  QTOS_EVENT_FIELDS(subsystem, mode, action, symbol, detail, applied);
  friend bool operator==(const SubsystemDecided&, const SubsystemDecided&) = default;
};

/// Any event by value; the variant index equals the EventType value.
using AnyEvent =
    std::variant<MarketBarClosed, OpportunitiesUpdated, RegimeChanged, PolicyUpdated, StrategyPromoted, StrategyRetired,
                 ModelPromoted, HealthStatusChanged, SignalGenerated, OrderSubmitted, OrderDenied, OrderFilled,
                 OrderRejected, PositionOpened, PositionClosed, RiskLimitBreached, EmergencyBrakeChanged,
                 ServiceStateChanged, UniverseSuggested, SubsystemDecided>;
static_assert(std::variant_size_v<AnyEvent> == kEventTypeCount);

namespace detail {
template <std::size_t... I>
constexpr bool event_indices_match(std::index_sequence<I...>) {
  return ((static_cast<std::size_t>(std::variant_alternative_t<I, AnyEvent>::kType) == I) && ...);
}
static_assert(event_indices_match(std::make_index_sequence<kEventTypeCount>{}), "AnyEvent order must follow EventType");
}  // namespace detail

/// True when T is one of the event types.
template <class T>
concept BusEvent = requires {
  { T::kType } -> std::convertible_to<EventType>;
  { T::kTopic } -> std::convertible_to<std::string_view>;
  { T::kDroppable } -> std::convertible_to<bool>;
};

/// The event struct for a given EventType.
template <EventType T>
using EventOf = std::variant_alternative_t<static_cast<std::size_t>(T), AnyEvent>;

/// The topic of an event type.
std::string_view event_topic(EventType type);
/// The name of an event type, e.g. "OrderFilled".
std::string_view event_type_name(EventType type);
/// True when posts of this type are dropped (and counted) rather than blocking when the queue is full.
bool event_droppable(EventType type);
/// The type of the event held by `event`.
inline EventType event_type(const AnyEvent& event) { return static_cast<EventType>(event.index()); }
/// The header of the event held by `event`.
inline const EventHeader& event_header(const AnyEvent& event) {
  return std::visit([](const auto& e) -> const EventHeader& { return e.header; }, event);
}

/// A borrowed, typed view of an event being delivered to a topic-pattern subscriber.
class EventRef {
 public:
  /// Views `event` (which must outlive the ref).
  template <BusEvent E>
  explicit EventRef(const E& event) : type_(E::kType), ptr_(&event), header_(&event.header) {}
  /// The event's type.
  EventType type() const { return type_; }
  /// The event's topic.
  std::string_view topic() const { return event_topic(type_); }
  /// The event's header.
  const EventHeader& header() const { return *header_; }
  /// The event as E, or null when it is another type (checked; never a blind cast).
  template <BusEvent E>
  const E* get_if() const {
    return type_ == E::kType ? static_cast<const E*>(ptr_) : nullptr;
  }
  /// Calls `f(const E&)` with the concrete event.
  template <class F>
  std::invoke_result_t<F&, const MarketBarClosed&> visit(F&& f) const {
    return visit_impl(f, std::make_index_sequence<kEventTypeCount>{});
  }
  /// A copy of the event by value.
  AnyEvent to_any() const {
    return visit([](const auto& e) { return AnyEvent(e); });
  }

 private:
  template <class F, std::size_t... I>
  std::invoke_result_t<F&, const MarketBarClosed&> visit_impl(F& f, std::index_sequence<I...>) const {
    using R = std::invoke_result_t<F&, const MarketBarClosed&>;
    using Fn = R (*)(F&, const void*);
    static constexpr Fn kTable[] = {+[](F& g, const void* p) -> R {
      return g(*static_cast<const std::variant_alternative_t<I, AnyEvent>*>(p));
    }...};
    return kTable[static_cast<std::size_t>(type_)](f, ptr_);
  }

  EventType type_;
  const void* ptr_;
  const EventHeader* header_;
};

}  // namespace qtos
