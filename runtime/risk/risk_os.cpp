#include "runtime/risk/risk_os.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "runtime/util/checkpoint.hpp"

namespace qtos {
namespace {

constexpr std::string_view kSource = "risk_os";  // the source of every event it publishes
constexpr TimeNs kNsPerDay = 86'400 * kNsPerSecond;
constexpr TimeNs kRateWindow = 60 * kNsPerSecond;

// Numbers in denial details: up to 10 significant digits, no exponent for ordinary prices and amounts.
std::string num(double v) {
  std::ostringstream os;
  os << std::setprecision(10) << v;
  return os.str();
}

std::int64_t utc_day(TimeNs t) { return t >= 0 ? t / kNsPerDay : -((-t + kNsPerDay - 1) / kNsPerDay); }

// Whole seconds from `now` until `until`, rounded up, for "locked for N s more".
std::int64_t seconds_left(TimeNs now, TimeNs until) { return (until - now + kNsPerSecond - 1) / kNsPerSecond; }

RiskDenial deny(DenyReason reason, std::string detail) { return RiskDenial{reason, std::move(detail)}; }

bool priced(OrderType t) {
  return t == OrderType::limit || t == OrderType::stop_market || t == OrderType::take_profit_market;
}

// The quote notional of an order: its quote size, else qty at the last price.
double notional_of(const RiskOrder& o) { return o.quote_qty > 0 ? o.quote_qty : o.qty * o.last_price; }

// (1) INVALID_ORDER: a value no check below could reason about.
std::optional<RiskDenial> check_valid(const RiskOrder& o) {
  auto bad = [](std::string what) { return deny(DenyReason::invalid_order, std::move(what)); };
  if (!std::isfinite(o.qty) || o.qty < 0) return bad("qty " + num(o.qty) + " is not a finite number >= 0");
  if (!std::isfinite(o.quote_qty) || o.quote_qty < 0)
    return bad("quote_qty " + num(o.quote_qty) + " is not a finite number >= 0");
  if (o.qty == 0 && o.quote_qty == 0) return bad("qty 0 and quote_qty 0: one of them must be > 0");
  if (o.qty > 0 && o.quote_qty > 0)
    return bad("qty " + num(o.qty) + " and quote_qty " + num(o.quote_qty) + " are both set: size by one of them");
  if (!std::isfinite(o.price) || o.price < 0) return bad("price " + num(o.price) + " is not a finite number >= 0");
  if (priced(o.type) && o.price == 0)
    return bad("price 0 on a " + std::string(enum_name(o.type)) + " order: it must be > 0");
  if (!std::isfinite(o.last_price) || o.last_price <= 0)
    return bad("last_price " + num(o.last_price) + " is not a finite number > 0");
  if (!std::isfinite(o.stop_loss) || o.stop_loss < 0)
    return bad("stop_loss " + num(o.stop_loss) + " is not a finite number >= 0 (0: none)");
  if (!std::isfinite(o.leverage) || o.leverage < 1) return bad("leverage " + num(o.leverage) + " < 1");
  return std::nullopt;
}

}  // namespace

RiskLimits RiskLimits::from_config(const Config& config) {
  RiskLimits l;
  l.max_notional_per_order = config.risk_max_notional;
  l.price_collar_pct = config.risk_price_collar_pct;
  l.max_orders_per_minute = config.risk_max_orders_per_min;
  l.stop_out_cooldown_s = config.risk_stop_cooldown_s;
  l.stop_guard_count = config.risk_stop_guard_count;
  l.stop_guard_window_s = config.risk_stop_guard_window_s;
  l.stop_guard_lock_s = config.risk_stop_guard_lock_s;
  return l;
}

RiskOS::RiskOS(RiskLimits limits, EventBus& bus) : limits_(limits), bus_(bus) {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("RiskLimits: " + what);
  };
  need(std::isfinite(limits_.max_notional_per_order) && limits_.max_notional_per_order > 0,
       "max_notional_per_order " + num(limits_.max_notional_per_order) + " must be a finite number > 0");
  need(std::isfinite(limits_.price_collar_pct) && limits_.price_collar_pct > 0,
       "price_collar_pct " + num(limits_.price_collar_pct) + " must be a finite number > 0");
  need(limits_.max_orders_per_minute >= 1, "max_orders_per_minute " + std::to_string(limits_.max_orders_per_minute) + " must be >= 1");
  need(limits_.stop_out_cooldown_s >= 0, "stop_out_cooldown_s " + std::to_string(limits_.stop_out_cooldown_s) + " must be >= 0");
  need(limits_.stop_guard_count >= 0, "stop_guard_count " + std::to_string(limits_.stop_guard_count) + " must be >= 0");
  need(limits_.stop_guard_window_s >= 1, "stop_guard_window_s " + std::to_string(limits_.stop_guard_window_s) + " must be >= 1");
  need(limits_.stop_guard_lock_s >= 1, "stop_guard_lock_s " + std::to_string(limits_.stop_guard_lock_s) + " must be >= 1");
}

TradingState RiskOS::state() const {
  if (runaway_ || brake_) return TradingState::halted;
  if (reducing_daily_ || reducing_open_) return TradingState::reducing;
  return TradingState::active;
}

std::optional<RiskDenial> RiskOS::check(const RiskOrder& order, const RiskAccount& account, const Policy& policy) {
  policy_version_ = policy.version;
  if (auto d = check_valid(order)) return d;
  if (runaway_)
    return deny(DenyReason::runaway, "HALTED after a runaway: orders sent " + std::to_string(sent_ + 1) +
                                         " > orders intended " + std::to_string(intended_) + "; only cancels pass");
  const TimeNs now = bus_.clock().now();
  if (!order.reduces) {
    if (brake_) return deny(DenyReason::emergency_brake, "HALTED by the emergency brake: entries are denied, exits pass");
    if (reducing_daily_ || reducing_open_)
      return deny(reducing_reason_, "REDUCING: only orders that reduce exposure (" + reducing_detail_ + ")");
    if (auto d = check_entry(order, account, policy, now)) return d;
    recent_orders_.push_back(now);
  }
  // (5) an exit is never throttled or blocked: it must always be possible.
  ++intended_;
  return std::nullopt;
}

std::optional<RiskDenial> RiskOS::check_entry(const RiskOrder& order, const RiskAccount& account, const Policy& policy,
                                              TimeNs now) {
  // (6) ORDER_RATE: entries let through in the last 60 s of the clock.
  while (!recent_orders_.empty() && recent_orders_.front() <= now - kRateWindow) recent_orders_.pop_front();
  if (static_cast<std::int64_t>(recent_orders_.size()) >= limits_.max_orders_per_minute)
    return deny(DenyReason::order_rate, "orders in the last 60 s " + std::to_string(recent_orders_.size() + 1) +
                                            " > max_orders_per_minute " + std::to_string(limits_.max_orders_per_minute));
  // (7) the policy's strategy lists.
  if (policy.blocked_strategies.count(order.strategy))
    return deny(DenyReason::strategy_blocked, "strategy '" + order.strategy + "' is in the policy's blocked_strategies");
  if (!policy_allows_strategy(policy, order.strategy))
    return deny(DenyReason::strategy_not_allowed, "strategy '" + order.strategy + "' is not in the policy's allowed_strategies (" +
                                                      std::to_string(policy.allowed_strategies.size()) + " allowed)");
  // (8) the stop-out guards.
  if (now < guard_until_)
    return deny(DenyReason::stop_loss_guard,
                "stop-loss guard: stop_guard_count " + std::to_string(limits_.stop_guard_count) + " stop-outs within stop_guard_window_s " +
                    std::to_string(limits_.stop_guard_window_s) + "; entries locked for " + std::to_string(seconds_left(now, guard_until_)) +
                    " s more (stop_guard_lock_s " + std::to_string(limits_.stop_guard_lock_s) + ")");
  if (auto it = symbol_cooldown_until_.find(order.symbol.str()); it != symbol_cooldown_until_.end()) {
    if (now < it->second)
      return deny(DenyReason::stop_out_cooldown, order.symbol.str() + " was stopped out: cooldown, " +
                                                     std::to_string(seconds_left(now, it->second)) + " s left of stop_out_cooldown_s " +
                                                     std::to_string(limits_.stop_out_cooldown_s));
    symbol_cooldown_until_.erase(it);
  }
  // (9)-(11) positions and leverage under the policy.
  if (account.symbol_has_position && !order.adds)
    return deny(DenyReason::duplicate_position,
                order.symbol.str() + " already has a position: one position per symbol (one-way venue)");
  if (!order.adds && account.open_positions >= policy.max_open_positions)
    return deny(DenyReason::max_open_positions, "open positions " + std::to_string(account.open_positions) +
                                                    " >= max_open_positions " + std::to_string(policy.max_open_positions));
  if (order.leverage > policy.max_leverage)
    return deny(DenyReason::max_leverage, "leverage " + num(order.leverage) + " > max_leverage " + num(policy.max_leverage));
  // (12) MAX_NOTIONAL.
  const double notional = notional_of(order);
  if (notional > limits_.max_notional_per_order)
    return deny(DenyReason::max_notional,
                "notional " + num(notional) + " > max_notional_per_order " + num(limits_.max_notional_per_order));
  // (13) PRICE_COLLAR: a limit or stop price far from the market is a fat finger or a stale price.
  if (priced(order.type)) {
    const double off_pct = std::abs(order.price - order.last_price) / order.last_price * 100.0;
    if (off_pct > limits_.price_collar_pct)
      return deny(DenyReason::price_collar, "price " + num(order.price) + " is " + num(off_pct) + "% from last_price " +
                                                num(order.last_price) + " > price_collar_pct " + num(limits_.price_collar_pct) + "%");
  }
  // (14) MAX_RISK_PER_TRADE: the loss at the stop, or the whole notional without one, against equity.
  const double risk =
      order.stop_loss > 0 ? notional * std::abs(order.last_price - order.stop_loss) / order.last_price : notional;
  if (!(std::isfinite(account.equity) && account.equity > 0))
    return deny(DenyReason::max_risk_per_trade, "risk " + num(risk) + " against equity " + num(account.equity) +
                                                    " (not > 0) exceeds max_risk_per_trade " + num(policy.max_risk_per_trade));
  const double fraction = risk / account.equity;
  if (fraction > policy.max_risk_per_trade)
    return deny(DenyReason::max_risk_per_trade, "risk " + num(risk) + " = " + num(fraction) + " of equity " + num(account.equity) +
                                                    " > max_risk_per_trade " + num(policy.max_risk_per_trade) +
                                                    (order.stop_loss > 0 ? "" : " (no stop_loss: the whole notional is at risk)"));
  return std::nullopt;
}

bool RiskOS::order_sent() {
  if (runaway_) return false;
  if (sent_ + 1 > intended_) {
    // More sends than checks: a loop resending, or a path around check(). Halt before the order goes out.
    runaway_ = true;
    breach(RiskLimit::runaway, static_cast<double>(sent_ + 1), static_cast<double>(intended_));
    return false;
  }
  ++sent_;
  return true;
}

bool RiskOS::mark(const RiskAccount& account, const Policy& policy) {
  if (!std::isfinite(account.equity))
    throw std::invalid_argument("RiskOS::mark: equity " + num(account.equity) + " is not a finite number");
  if (!(std::isfinite(account.day_start_equity) && account.day_start_equity > 0))
    throw std::invalid_argument("RiskOS::mark: day_start_equity " + num(account.day_start_equity) + " must be a finite number > 0");
  if (!(std::isfinite(account.open_loss) && account.open_loss >= 0))
    throw std::invalid_argument("RiskOS::mark: open_loss " + num(account.open_loss) + " must be a finite number >= 0");
  policy_version_ = policy.version;
  const double daily = (account.day_start_equity - account.equity) / account.day_start_equity * 100.0;
  // Equity at or below zero with a loss open: the whole account is at stake.
  const double open = account.equity > 0 ? account.open_loss / account.equity * 100.0 : (account.open_loss > 0 ? 100.0 : 0.0);
  const bool daily_hit = daily >= policy.max_daily_drawdown_pct;
  const bool open_hit = open >= policy.max_open_drawdown_pct;

  const std::int64_t day = utc_day(bus_.clock().now());
  if (day_ && day != *day_ && !daily_hit) reducing_daily_ = false;  // a new day under the daily limit
  day_ = day;
  if (!open_hit) reducing_open_ = false;  // the open positions' loss is back under its limit

  auto enter = [&](bool& flag, DenyReason reason, RiskLimit limit, const char* what, const char* name, double value,
                   double threshold) {
    if (flag) return;
    if (!reducing_daily_ && !reducing_open_) {  // the first limit reached names the REDUCING state
      reducing_reason_ = reason;
      reducing_detail_ = std::string(what) + " " + num(value) + "% >= " + name + " " + num(threshold) + "%";
    }
    flag = true;
    breach(limit, value, threshold);
  };
  if (daily_hit)
    enter(reducing_daily_, DenyReason::daily_drawdown, RiskLimit::daily_drawdown, "daily drawdown", "max_daily_drawdown_pct",
          daily, policy.max_daily_drawdown_pct);
  if (open_hit)
    enter(reducing_open_, DenyReason::open_drawdown, RiskLimit::open_drawdown, "open drawdown", "max_open_drawdown_pct", open,
          policy.max_open_drawdown_pct);
  if (reducing_daily_ && !reducing_open_ && reducing_reason_ == DenyReason::open_drawdown) {
    reducing_reason_ = DenyReason::daily_drawdown;  // the limit still in force names the state
    reducing_detail_ = "daily drawdown " + num(daily) + "% >= max_daily_drawdown_pct " + num(policy.max_daily_drawdown_pct) + "%";
  }
  return open_hit;
}

void RiskOS::stop_out(const Symbol& symbol) {
  const TimeNs now = bus_.clock().now();
  if (limits_.stop_out_cooldown_s > 0) {
    TimeNs& until = symbol_cooldown_until_[symbol.str()];
    until = std::max(until, now + limits_.stop_out_cooldown_s * kNsPerSecond);
  }
  if (limits_.stop_guard_count > 0) {
    recent_stop_outs_.push_back(now);
    while (recent_stop_outs_.front() <= now - limits_.stop_guard_window_s * kNsPerSecond) recent_stop_outs_.pop_front();
    if (static_cast<std::int64_t>(recent_stop_outs_.size()) >= limits_.stop_guard_count) {
      guard_until_ = std::max(guard_until_, now + limits_.stop_guard_lock_s * kNsPerSecond);
      recent_stop_outs_.clear();  // the next lock needs a fresh count of stop-outs
    }
  }
}

void RiskOS::brake_set(bool engaged, const std::string& actor, const std::string& reason) {
  if (engaged == brake_) return;
  brake_ = engaged;
  bus_.publish(kSource, EmergencyBrakeChanged{.engaged = engaged, .actor = actor, .reason = reason});
}

void RiskOS::breach(RiskLimit limit, double value, double threshold) {
  bus_.publish(kSource, RiskLimitBreached{.limit = limit, .value = value, .threshold = threshold, .policy_version = policy_version_});
}

std::vector<RiskOS::Lock> RiskOS::locks() const {
  const TimeNs now = bus_.clock().now();
  std::vector<Lock> out;
  if (now < guard_until_)
    out.push_back({"stop_loss_guard", guard_until_,
                   std::to_string(limits_.stop_guard_count) + " stop-outs within " + std::to_string(limits_.stop_guard_window_s) + " s"});
  for (const auto& [symbol, until] : symbol_cooldown_until_)
    if (now < until) out.push_back({"cooldown:" + symbol, until, symbol + " was stopped out"});
  return out;
}

bool RiskOS::lock_release(const std::string& id) {
  const TimeNs now = bus_.clock().now();
  if (id == "stop_loss_guard") {
    if (now >= guard_until_) return false;
    guard_until_ = now;
    recent_stop_outs_.clear();  // the guard would otherwise re-arm at the next stop-out from the old ones
    return true;
  }
  if (id.rfind("cooldown:", 0) == 0) {
    const auto it = symbol_cooldown_until_.find(id.substr(9));
    if (it == symbol_cooldown_until_.end() || now >= it->second) return false;
    symbol_cooldown_until_.erase(it);
    return true;
  }
  return false;
}

}  // namespace qtos

namespace qtos {

boost::json::object RiskOS::checkpoint() const {
  boost::json::array orders, stop_outs;
  for (TimeNs t : recent_orders_) orders.push_back(t);
  for (TimeNs t : recent_stop_outs_) stop_outs.push_back(t);
  boost::json::object cooldowns;
  for (const auto& [symbol, until] : symbol_cooldown_until_) cooldowns[symbol] = until;
  return {{"brake", brake_},
          {"runaway", runaway_},
          {"reducing_daily", reducing_daily_},
          {"reducing_open", reducing_open_},
          {"day", day_ ? boost::json::value(*day_) : boost::json::value(nullptr)},
          {"intended", intended_},
          {"sent", sent_},
          {"recent_orders", std::move(orders)},
          {"recent_stop_outs", std::move(stop_outs)},
          {"cooldowns", std::move(cooldowns)},
          {"guard_until", guard_until_},
          {"reducing_reason", static_cast<int>(reducing_reason_)},
          {"reducing_detail", reducing_detail_},
          {"policy_version", policy_version_}};
}

void RiskOS::restore(const boost::json::object& s) {
  auto times = [&](const char* key) {
    std::deque<TimeNs> out;
    for (const boost::json::value& v : ckpt::arr(s, key)) {
      if (!v.is_int64()) throw std::runtime_error(std::string("checkpoint: '") + key + "' holds a value that is not a time");
      out.push_back(v.get_int64());
    }
    return out;
  };
  brake_ = ckpt::flag(s, "brake");
  runaway_ = ckpt::flag(s, "runaway");
  reducing_daily_ = ckpt::flag(s, "reducing_daily");
  reducing_open_ = ckpt::flag(s, "reducing_open");
  const boost::json::value& day = ckpt::at(s, "day");
  day_ = day.is_null() ? std::nullopt : std::optional<std::int64_t>(ckpt::i64(s, "day"));
  intended_ = ckpt::u64(s, "intended");
  sent_ = ckpt::u64(s, "sent");
  recent_orders_ = times("recent_orders");
  recent_stop_outs_ = times("recent_stop_outs");
  symbol_cooldown_until_.clear();
  for (const auto& [symbol, until] : ckpt::obj(s, "cooldowns")) {
    if (!until.is_int64()) throw std::runtime_error("checkpoint: cooldown of " + std::string(symbol) + " is not a time");
    symbol_cooldown_until_[std::string(symbol)] = until.get_int64();
  }
  guard_until_ = ckpt::i64(s, "guard_until");
  reducing_reason_ = static_cast<DenyReason>(ckpt::i64(s, "reducing_reason"));
  reducing_detail_ = ckpt::str(s, "reducing_detail");
  policy_version_ = ckpt::u64(s, "policy_version");
}

}  // namespace qtos
