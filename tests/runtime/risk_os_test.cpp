// The Risk OS: every reason code with its detail, the order of the checks, exits under the brake and in REDUCING,
// the runaway halt, drawdown states across UTC days, stop-out cooldown and guard on the simulated clock, events
// published once per breach or brake change, and the limits from the configuration.
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/risk/risk_os.hpp"

namespace qtos {
namespace risk_os_test {

using ::testing::HasSubstr;

constexpr TimeNs kDay = 86'400 * kNsPerSecond;
constexpr TimeNs kDay0 = 1'704'067'200 * kNsPerSecond;  // 2024-01-01T00:00:00Z
constexpr TimeNs kNoon = kDay0 + kDay / 2;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A Risk OS on a simulated clock and a bus, with every event it publishes captured.
struct Rig {
  SimClock clock{kNoon};
  EventBus bus{clock};
  std::vector<RiskLimitBreached> breaches;
  std::vector<EmergencyBrakeChanged> brakes;
  Subscription on_breach = bus.subscribe<RiskLimitBreached>("test", [this](const RiskLimitBreached& e) { breaches.push_back(e); });
  Subscription on_brake = bus.subscribe<EmergencyBrakeChanged>("test", [this](const EmergencyBrakeChanged& e) { brakes.push_back(e); });
  RiskOS risk;
  Policy policy;
  RiskAccount account{.equity = 10'000, .day_start_equity = 10'000};

  explicit Rig(RiskLimits limits = {}) : risk(limits, bus) { policy.version = 7; }

  std::optional<RiskDenial> check(const RiskOrder& o) { return risk.check(o, account, policy); }
  bool mark(double equity, double day_start, double open_loss) {
    account.equity = equity;
    account.day_start_equity = day_start;
    account.open_loss = open_loss;
    return risk.mark(account, policy);
  }
};

// A small market entry that every check lets through: notional 50, risk 1 of equity 10000.
RiskOrder entry() {
  return RiskOrder{.strategy = "ema-cross", .symbol = "BTCUSDT", .side = Side::buy, .type = OrderType::market, .qty = 0.001,
                   .last_price = 50'000, .stop_loss = 49'000, .leverage = 1};
}
// The exit of a position on BTCUSDT.
RiskOrder exit_order() {
  RiskOrder o = entry();
  o.side = Side::sell;
  o.stop_loss = 0;
  o.reduces = true;
  return o;
}

// A denial with `code` whose detail contains every one of `want`.
void expect_denied(const std::optional<RiskDenial>& d, DenyReason code, std::initializer_list<const char*> want = {}) {
  ASSERT_TRUE(d.has_value()) << "expected " << enum_name(code) << ", the order passed";
  EXPECT_EQ(d->reason, code) << enum_name(d->reason) << ": " << d->detail;
  for (const char* w : want) EXPECT_THAT(d->detail, HasSubstr(w));
}
// expect_denied with the caller's line in a failure message.
#define EXPECT_DENIED(denial, code, ...)   \
  do {                                    \
    SCOPED_TRACE("EXPECT_DENIED");        \
    expect_denied(denial, code, {__VA_ARGS__}); \
  } while (0)

TEST(RiskOSCheck, AValidEntryAndAnExitPassAndCountAsIntended) {
  Rig r;
  EXPECT_EQ(r.risk.state(), TradingState::active);
  EXPECT_FALSE(r.check(entry()));
  EXPECT_FALSE(r.check(exit_order()));
  EXPECT_EQ(r.risk.orders_intended(), 2u);
  EXPECT_TRUE(r.risk.order_sent());
  EXPECT_TRUE(r.risk.order_sent());
  EXPECT_EQ(r.risk.orders_sent(), 2u);
  EXPECT_TRUE(r.breaches.empty());
}

TEST(RiskOSCheck, InvalidOrdersAreDeniedNamingTheField) {
  struct Case {
    std::function<void(RiskOrder&)> edit;
    const char* want;
  };
  const std::vector<Case> cases = {
      {[](RiskOrder& o) { o.qty = kNaN; }, "qty nan"},
      {[](RiskOrder& o) { o.qty = kInf; }, "qty inf"},
      {[](RiskOrder& o) { o.qty = -1; }, "qty -1"},
      {[](RiskOrder& o) { o.qty = 0; }, "qty 0 and quote_qty 0"},
      {[](RiskOrder& o) { o.quote_qty = kNaN; }, "quote_qty nan"},
      {[](RiskOrder& o) { o.qty = 0, o.quote_qty = -5; }, "quote_qty -5"},
      {[](RiskOrder& o) { o.quote_qty = 100; }, "both set"},
      {[](RiskOrder& o) { o.type = OrderType::limit; }, "price 0 on a LIMIT order"},
      {[](RiskOrder& o) { o.type = OrderType::stop_market; }, "price 0 on a STOP_MARKET order"},
      {[](RiskOrder& o) { o.price = kNaN; }, "price nan"},
      {[](RiskOrder& o) { o.last_price = 0; }, "last_price 0"},
      {[](RiskOrder& o) { o.last_price = kInf; }, "last_price inf"},
      {[](RiskOrder& o) { o.stop_loss = -1; }, "stop_loss -1"},
      {[](RiskOrder& o) { o.leverage = 0.5; }, "leverage 0.5 < 1"},
      {[](RiskOrder& o) { o.leverage = kNaN; }, "leverage nan"},
  };
  for (bool reduces : {false, true})
    for (const auto& c : cases) {
      Rig r;
      RiskOrder o = entry();
      o.reduces = reduces;
      c.edit(o);
      EXPECT_DENIED(r.check(o), DenyReason::invalid_order, c.want);
      EXPECT_EQ(r.risk.orders_intended(), 0u);
    }
  Rig r;
  RiskOrder sized_in_quote = entry();
  sized_in_quote.qty = 0;
  sized_in_quote.quote_qty = 50;
  EXPECT_FALSE(r.check(sized_in_quote));  // quote_qty > 0 sizes a market entry
}

TEST(RiskOSCheck, EveryPolicyAndLimitCodeDeniesWithValueAndLimit) {
  struct Case {
    const char* name;
    RiskLimits limits;
    std::function<void(Rig&, RiskOrder&)> setup;
    DenyReason code;
    std::vector<const char*> want;
  };
  RiskLimits rate;
  rate.max_orders_per_minute = 2;
  RiskLimits guard;
  guard.stop_guard_count = 2;
  RiskLimits cooldown;
  cooldown.stop_out_cooldown_s = 300;
  RiskLimits notional;
  notional.max_notional_per_order = 10'000;
  const std::vector<Case> cases = {
      {"rate", rate, [](Rig& r, RiskOrder&) { ASSERT_FALSE(r.check(entry())); ASSERT_FALSE(r.check(entry())); },
       DenyReason::order_rate, {"orders in the last 60 s 3", "max_orders_per_minute 2"}},
      {"blocked", {}, [](Rig& r, RiskOrder&) { r.policy.blocked_strategies = {"ema-cross"}; },
       DenyReason::strategy_blocked, {"'ema-cross'", "blocked_strategies"}},
      {"not allowed", {}, [](Rig& r, RiskOrder&) { r.policy.allowed_strategies = {"rsi", "macd"}; },
       DenyReason::strategy_not_allowed, {"'ema-cross'", "allowed_strategies (2 allowed)"}},
      {"guard", guard, [](Rig& r, RiskOrder&) { r.risk.stop_out("ETHUSDT"); r.risk.stop_out("SOLUSDT"); },
       DenyReason::stop_loss_guard, {"stop_guard_count 2", "stop_guard_window_s 3600", "3600 s more", "stop_guard_lock_s 3600"}},
      {"cooldown", cooldown, [](Rig& r, RiskOrder&) { r.risk.stop_out("BTCUSDT"); },
       DenyReason::stop_out_cooldown, {"BTCUSDT was stopped out", "300 s left of stop_out_cooldown_s 300"}},
      {"duplicate", {}, [](Rig& r, RiskOrder&) { r.account.symbol_has_position = true; },
       DenyReason::duplicate_position, {"BTCUSDT already has a position"}},
      {"positions", {}, [](Rig& r, RiskOrder&) { r.account.open_positions = 5; },
       DenyReason::max_open_positions, {"open positions 5 >= max_open_positions 5"}},
      {"leverage", {}, [](Rig&, RiskOrder& o) { o.leverage = 5; }, DenyReason::max_leverage, {"leverage 5 > max_leverage 3"}},
      {"notional", notional, [](Rig&, RiskOrder& o) { o.qty = 0.3; },
       DenyReason::max_notional, {"notional 15000 > max_notional_per_order 10000"}},
      {"notional in quote", notional, [](Rig&, RiskOrder& o) { o.qty = 0, o.quote_qty = 12'000; },
       DenyReason::max_notional, {"notional 12000 > max_notional_per_order 10000"}},
      {"collar", {}, [](Rig&, RiskOrder& o) { o.type = OrderType::limit, o.price = 60'000; },
       DenyReason::price_collar, {"price 60000 is 20% from last_price 50000 > price_collar_pct 10%"}},
      {"stop collar", {}, [](Rig&, RiskOrder& o) { o.type = OrderType::stop_market, o.price = 44'000; },
       DenyReason::price_collar, {"price 44000 is 12% from last_price 50000"}},
      {"risk at the stop", {}, [](Rig&, RiskOrder& o) { o.qty = 0.1, o.stop_loss = 45'000; },
       DenyReason::max_risk_per_trade, {"risk 500 = 0.05 of equity 10000 > max_risk_per_trade 0.01"}},
      {"risk without a stop", {}, [](Rig&, RiskOrder& o) { o.qty = 0.01, o.stop_loss = 0; },
       DenyReason::max_risk_per_trade, {"risk 500", "> max_risk_per_trade 0.01", "no stop_loss"}},
      {"no equity", {}, [](Rig& r, RiskOrder&) { r.account.equity = 0; },
       DenyReason::max_risk_per_trade, {"equity 0 (not > 0)", "max_risk_per_trade 0.01"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Rig r(c.limits);
    RiskOrder o = entry();
    c.setup(r, o);
    const std::uint64_t before = r.risk.orders_intended();
    const auto d = r.check(o);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->reason, c.code) << enum_name(d->reason) << ": " << d->detail;
    for (const char* w : c.want) EXPECT_THAT(d->detail, HasSubstr(w));
    EXPECT_EQ(r.risk.orders_intended(), before) << "a denied order is not intended";
  }
}

TEST(RiskOSCheck, LimitsExactlyAtTheLineStillPass) {
  RiskLimits l;
  l.max_notional_per_order = 100;
  Rig r(l);
  RiskOrder o = entry();
  o.qty = 0.002;  // notional 100 = the limit
  o.leverage = 3;  // = max_leverage
  EXPECT_FALSE(r.check(o));
  o.type = OrderType::limit;
  o.price = 55'000;  // 10% from the last price = the collar
  EXPECT_FALSE(r.check(o));
  o = entry();
  o.stop_loss = 0;
  o.qty = 0.002;  // the whole notional 100 = 0.01 of equity
  EXPECT_FALSE(r.check(o));
  r.account.open_positions = 4;
  EXPECT_FALSE(r.check(o));
}

// An entry that fails checks (6) to (14) at once; fixing them one by one shows the next code in the documented order.
TEST(RiskOSCheck, TheFirstFailingCheckWinsInTheDocumentedOrder) {
  RiskLimits l;
  l.max_orders_per_minute = 1;
  l.stop_out_cooldown_s = 600;
  l.stop_guard_count = 1;
  l.stop_guard_lock_s = 60;
  l.max_notional_per_order = 1'000;
  Rig r(l);
  ASSERT_FALSE(r.check(entry()));  // fills the rate window
  r.policy.blocked_strategies = {"ema-cross"};
  r.policy.allowed_strategies = {"rsi"};
  r.account.symbol_has_position = true;
  r.account.open_positions = 5;
  RiskOrder o = entry();
  o.leverage = 10;
  o.type = OrderType::limit;
  o.price = 80'000;  // 60% from the last price
  o.qty = 0.1;       // notional 5000
  o.stop_loss = 0;

  EXPECT_DENIED(r.check(o), DenyReason::order_rate);
  r.clock.advance_by(60 * kNsPerSecond);
  r.risk.stop_out("BTCUSDT");  // guard lock for 60 s, cooldown for 600 s
  EXPECT_DENIED(r.check(o), DenyReason::strategy_blocked);
  r.policy.blocked_strategies.clear();
  EXPECT_DENIED(r.check(o), DenyReason::strategy_not_allowed);
  r.policy.allowed_strategies.clear();
  EXPECT_DENIED(r.check(o), DenyReason::stop_loss_guard);
  r.clock.advance_by(60 * kNsPerSecond);
  EXPECT_DENIED(r.check(o), DenyReason::stop_out_cooldown);
  r.clock.advance_by(540 * kNsPerSecond);
  EXPECT_DENIED(r.check(o), DenyReason::duplicate_position);
  r.account.symbol_has_position = false;
  EXPECT_DENIED(r.check(o), DenyReason::max_open_positions);
  r.account.open_positions = 0;
  EXPECT_DENIED(r.check(o), DenyReason::max_leverage);
  o.leverage = 1;
  EXPECT_DENIED(r.check(o), DenyReason::max_notional);
  o.qty = 0.01;  // notional 500
  EXPECT_DENIED(r.check(o), DenyReason::price_collar);
  o.price = 50'500;
  EXPECT_DENIED(r.check(o), DenyReason::max_risk_per_trade);
  o.stop_loss = 49'000;
  EXPECT_FALSE(r.check(o));
}

TEST(RiskOSCheck, CooldownBeatsDuplicateAndInvalidBeatsEverything) {
  RiskLimits l;
  l.stop_out_cooldown_s = 60;
  Rig r(l);
  r.risk.stop_out("BTCUSDT");
  r.account.symbol_has_position = true;
  EXPECT_DENIED(r.check(entry()), DenyReason::stop_out_cooldown);
  r.risk.brake_set(true, "operator", "test");
  RiskOrder bad = entry();
  bad.qty = kNaN;
  EXPECT_DENIED(r.check(bad), DenyReason::invalid_order);
}

TEST(RiskOSCheck, TheBrakeBeatsTheRateLimitAndReducingBeatsThePolicy) {
  RiskLimits l;
  l.max_orders_per_minute = 1;
  Rig r(l);
  ASSERT_FALSE(r.check(entry()));
  EXPECT_DENIED(r.check(entry()), DenyReason::order_rate);
  r.risk.brake_set(true, "operator", "manual halt");
  EXPECT_DENIED(r.check(entry()), DenyReason::emergency_brake, "emergency brake");
  r.risk.brake_set(false, "operator", "resume");
  r.mark(9'000, 10'000, 0);  // daily 10% >= 5%
  r.policy.blocked_strategies = {"ema-cross"};
  EXPECT_DENIED(r.check(entry()), DenyReason::daily_drawdown, "REDUCING");
  r.risk.brake_set(true, "operator", "again");
  EXPECT_DENIED(r.check(entry()), DenyReason::emergency_brake);  // the brake comes before REDUCING
}

TEST(RiskOSExits, ExitsPassUnderTheBrakeInReducingAndPastEveryEntryCheck) {
  RiskLimits l;
  l.max_orders_per_minute = 1;
  l.stop_out_cooldown_s = 3600;
  l.stop_guard_count = 1;
  l.max_notional_per_order = 100;
  Rig r(l);
  ASSERT_FALSE(r.check(entry()));
  r.risk.stop_out("BTCUSDT");
  r.policy.blocked_strategies = {"ema-cross"};
  r.account.symbol_has_position = true;
  r.account.open_positions = 99;
  r.account.equity = 1;
  RiskOrder x = exit_order();
  x.leverage = 50;
  x.qty = 10;  // notional 500000
  x.type = OrderType::limit;
  x.price = 99'000;  // far outside the collar
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(r.check(x)) << "exits are never throttled";

  r.mark(9'000, 10'000, 0);
  ASSERT_EQ(r.risk.state(), TradingState::reducing);
  EXPECT_DENIED(r.check(entry()), DenyReason::daily_drawdown, "REDUCING: only orders that reduce exposure");
  EXPECT_FALSE(r.check(x));

  r.risk.brake_set(true, "operator", "halt");
  ASSERT_EQ(r.risk.state(), TradingState::halted);
  EXPECT_DENIED(r.check(entry()), DenyReason::emergency_brake);
  EXPECT_FALSE(r.check(x));
  r.risk.brake_set(false, "operator", "resume");
  EXPECT_EQ(r.risk.state(), TradingState::reducing) << "the release returns to the state the drawdowns imply";
}

TEST(RiskOSRunaway, ASendWithoutACheckHaltsPublishesOnceAndDeniesEverything) {
  Rig r;
  ASSERT_FALSE(r.check(entry()));
  EXPECT_TRUE(r.risk.order_sent());
  EXPECT_FALSE(r.risk.order_sent()) << "a second send of one intended order";
  EXPECT_EQ(r.risk.orders_sent(), 1u) << "the refused send is not counted as sent";
  EXPECT_EQ(r.risk.state(), TradingState::halted);
  ASSERT_EQ(r.breaches.size(), 1u);
  EXPECT_EQ(r.breaches[0].value, 2);
  EXPECT_EQ(r.breaches[0].threshold, 1);
  EXPECT_EQ(r.breaches[0].policy_version, 7u);
  EXPECT_EQ(r.breaches[0].header.source.view(), "risk_os");
  EXPECT_EQ(r.breaches[0].header.ts, kNoon);
  EXPECT_DENIED(r.check(entry()), DenyReason::runaway, "orders sent 2 > orders intended 1", "only cancels pass");
  EXPECT_DENIED(r.check(exit_order()), DenyReason::runaway);
  EXPECT_FALSE(r.risk.order_sent());
  r.risk.brake_set(true, "operator", "x");
  r.risk.brake_set(false, "operator", "y");
  EXPECT_EQ(r.risk.state(), TradingState::halted) << "releasing the brake does not clear a runaway";
  EXPECT_DENIED(r.check(exit_order()), DenyReason::runaway);
  EXPECT_EQ(r.breaches.size(), 1u) << "published once";
}

TEST(RiskOSRunaway, SendingBeforeAnyCheckHalts) {
  Rig r;
  EXPECT_FALSE(r.risk.order_sent());
  EXPECT_EQ(r.risk.state(), TradingState::halted);
  EXPECT_EQ(r.breaches.size(), 1u);
}

TEST(RiskOSDrawdown, DailyDrawdownReducesUntilTheNextUtcDay) {
  Rig r;
  EXPECT_FALSE(r.mark(9'600, 10'000, 0));  // 4%
  EXPECT_EQ(r.risk.state(), TradingState::active);
  EXPECT_FALSE(r.mark(9'400, 10'000, 0));  // 6% >= 5%: REDUCING, but no position to close
  EXPECT_EQ(r.risk.state(), TradingState::reducing);
  EXPECT_EQ(r.risk.reducing_reason(), DenyReason::daily_drawdown);
  ASSERT_EQ(r.breaches.size(), 1u);
  EXPECT_EQ(r.breaches[0].limit, RiskLimit::daily_drawdown);
  EXPECT_NEAR(r.breaches[0].value, 6.0, 1e-9);
  EXPECT_EQ(r.breaches[0].threshold, 5.0);
  EXPECT_EQ(r.breaches[0].policy_version, 7u);
  EXPECT_DENIED(r.check(entry()), DenyReason::daily_drawdown, "REDUCING: only orders that reduce exposure",
                "daily drawdown 6% >= max_daily_drawdown_pct 5%");
  r.mark(9'300, 10'000, 0);
  r.clock.advance_to(kDay0 + kDay - kNsPerSecond);  // 23:59:59, recovered: still the same day
  r.mark(10'000, 10'000, 0);
  EXPECT_EQ(r.risk.state(), TradingState::reducing);
  EXPECT_EQ(r.breaches.size(), 1u) << "one event per breach";

  r.clock.advance_to(kDay0 + kDay);  // next UTC day, under the limit
  EXPECT_FALSE(r.mark(9'400, 9'400, 0));
  EXPECT_EQ(r.risk.state(), TradingState::active);
  EXPECT_FALSE(r.check(entry()));
  EXPECT_EQ(r.breaches.size(), 1u) << "the return to ACTIVE publishes nothing";

  r.clock.advance_by(kDay);
  EXPECT_FALSE(r.mark(9'800, 9'800, 0));
  r.mark(9'300, 9'800, 0);  // a new breach: daily 5.1%
  EXPECT_EQ(r.risk.state(), TradingState::reducing);
  EXPECT_EQ(r.breaches.size(), 2u);
}

TEST(RiskOSDrawdown, ANewDayStillOverALimitStaysReducing) {
  Rig r;
  r.mark(9'400, 10'000, 0);
  r.clock.advance_to(kDay0 + kDay + kNsPerSecond);
  r.mark(9'100, 9'600, 0);  // daily 5.2% again on the new day
  EXPECT_EQ(r.risk.state(), TradingState::reducing);
  EXPECT_EQ(r.breaches.size(), 1u) << "still the same breach";
  r.clock.advance_to(kDay0 + 2 * kDay);
  r.mark(9'100, 9'100, 0);
  EXPECT_EQ(r.risk.state(), TradingState::active);
}

TEST(RiskOSDrawdown, OpenDrawdownAsksToCloseTheWorstPositionsUntilItIsBackUnderItsLimit) {
  Rig r;
  EXPECT_FALSE(r.mark(9'000, 9'100, 810));  // open loss 9% of equity, daily 1.1%
  EXPECT_TRUE(r.mark(9'000, 9'100, 945));   // open 10.5% >= 10%
  EXPECT_EQ(r.risk.state(), TradingState::reducing);
  EXPECT_EQ(r.risk.reducing_reason(), DenyReason::open_drawdown);
  ASSERT_EQ(r.breaches.size(), 1u);
  EXPECT_EQ(r.breaches[0].limit, RiskLimit::open_drawdown);
  EXPECT_NEAR(r.breaches[0].value, 10.5, 1e-9);
  EXPECT_EQ(r.breaches[0].threshold, 10.0);
  EXPECT_DENIED(r.check(entry()), DenyReason::open_drawdown, "REDUCING", "open drawdown 10.5% >= max_open_drawdown_pct 10%");
  EXPECT_FALSE(r.check(exit_order()));
  EXPECT_TRUE(r.mark(9'000, 9'100, 990)) << "asks again while over the limit";
  EXPECT_EQ(r.breaches.size(), 1u);
  // The worst position closed: the loss left is 5%, trading is ACTIVE again at once (no need to wait for a new day).
  EXPECT_FALSE(r.mark(8'500, 8'600, 425));  // (daily 1.2%)
  EXPECT_EQ(r.risk.state(), TradingState::active);
  EXPECT_FALSE(r.check(entry()));
  EXPECT_TRUE(r.mark(8'500, 8'600, 900));  // a new breach
  EXPECT_EQ(r.breaches.size(), 2u);
  // Equity gone with a loss open: the whole account is at stake.
  EXPECT_TRUE(r.mark(0, 8'600, 10));
}

TEST(RiskOSDrawdown, BothLimitsPublishOnceEachAndTheLimitInForceNamesTheState) {
  Rig r;
  EXPECT_TRUE(r.mark(8'000, 10'000, 1'600));  // daily 20%, open 20%
  ASSERT_EQ(r.breaches.size(), 2u);
  EXPECT_EQ(r.breaches[0].limit, RiskLimit::daily_drawdown);
  EXPECT_EQ(r.breaches[1].limit, RiskLimit::open_drawdown);
  EXPECT_EQ(r.risk.reducing_reason(), DenyReason::daily_drawdown);
  r.mark(7'000, 10'000, 2'000);
  EXPECT_EQ(r.breaches.size(), 2u);
  EXPECT_FALSE(r.mark(7'000, 10'000, 0));  // positions closed: the open limit lifts, the daily one stays
  EXPECT_EQ(r.risk.state(), TradingState::reducing);
  EXPECT_DENIED(r.check(entry()), DenyReason::daily_drawdown, "daily drawdown 20% >= max_daily_drawdown_pct 5%");
}

TEST(RiskOSDrawdown, AMarkWithUnusableEquityIsAnError) {
  Rig r;
  try {
    r.mark(kNaN, 10'000, 0);
    FAIL() << "NaN equity accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("equity nan"));
  }
  EXPECT_THROW(r.mark(10'000, 0, 0), std::invalid_argument);
  EXPECT_THROW(r.mark(10'000, 10'000, kInf), std::invalid_argument);
  EXPECT_THROW(r.mark(10'000, 10'000, -1), std::invalid_argument);
}

TEST(RiskOSStopOut, CooldownExpiresAtTheRightSimulatedTime) {
  RiskLimits l;
  l.stop_out_cooldown_s = 300;
  Rig r(l);
  r.risk.stop_out("BTCUSDT");
  EXPECT_DENIED(r.check(entry()), DenyReason::stop_out_cooldown, "300 s left");
  RiskOrder eth = entry();
  eth.symbol = "ETHUSDT";
  eth.last_price = 3'000;
  eth.stop_loss = 2'900;
  EXPECT_FALSE(r.check(eth)) << "the cooldown is per symbol";
  EXPECT_FALSE(r.check(exit_order())) << "an exit ignores the cooldown";
  r.clock.advance_by(300 * kNsPerSecond - 1);
  EXPECT_DENIED(r.check(entry()), DenyReason::stop_out_cooldown, "1 s left");
  r.clock.advance_by(1);
  EXPECT_FALSE(r.check(entry()));
}

TEST(RiskOSStopOut, CooldownOffByDefault) {
  Rig r;
  r.risk.stop_out("BTCUSDT");
  r.risk.stop_out("BTCUSDT");
  EXPECT_FALSE(r.check(entry()));
}

TEST(RiskOSStopOut, GuardCountsStopOutsInItsWindowAndLocksForItsDuration) {
  RiskLimits l;
  l.stop_guard_count = 3;
  l.stop_guard_window_s = 600;
  l.stop_guard_lock_s = 1800;
  Rig r(l);
  const TimeNs t0 = r.clock.now();
  auto at = [&](std::int64_t s) { r.clock.advance_to(t0 + s * kNsPerSecond); };
  r.risk.stop_out("A");
  at(100);
  r.risk.stop_out("B");
  at(700);  // the first two are 600 s or more old now
  r.risk.stop_out("C");
  EXPECT_FALSE(r.check(entry()));
  at(800);
  r.risk.stop_out("D");
  EXPECT_FALSE(r.check(entry()));
  at(900);
  r.risk.stop_out("E");  // C, D, E within 600 s: lock until 900 + 1800
  EXPECT_DENIED(r.check(entry()), DenyReason::stop_loss_guard, "1800 s more");
  EXPECT_FALSE(r.check(exit_order()));
  at(2699);
  EXPECT_DENIED(r.check(entry()), DenyReason::stop_loss_guard, "1 s more");
  at(2700);
  EXPECT_FALSE(r.check(entry()));
  r.risk.stop_out("F");  // the count started again after the lock
  EXPECT_FALSE(r.check(entry()));
}

TEST(RiskOSRate, TheWindowSlidesOnTheBusClockAndCountsOnlyEntriesLetThrough) {
  RiskLimits l;
  l.max_orders_per_minute = 2;
  Rig r(l);
  ASSERT_FALSE(r.check(entry()));
  r.clock.advance_by(30 * kNsPerSecond);
  ASSERT_FALSE(r.check(entry()));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(r.check(exit_order()));
  r.account.symbol_has_position = true;
  EXPECT_DENIED(r.check(entry()), DenyReason::order_rate);
  r.clock.advance_by(30 * kNsPerSecond - 1);
  EXPECT_DENIED(r.check(entry()), DenyReason::order_rate);
  r.clock.advance_by(1);  // the first entry is 60 s old
  EXPECT_DENIED(r.check(entry()), DenyReason::duplicate_position);
  r.account.symbol_has_position = false;
  EXPECT_FALSE(r.check(entry())) << "denied entries took no place in the window";
  EXPECT_DENIED(r.check(entry()), DenyReason::order_rate);
}

TEST(RiskOSBrake, EventsOnlyOnAChange) {
  Rig r;
  r.risk.brake_set(false, "operator", "already released");
  EXPECT_TRUE(r.brakes.empty());
  r.risk.brake_set(true, "config", "QT_AI_EMERGENCY_BRAKE=true");
  r.risk.brake_set(true, "operator", "again");
  ASSERT_EQ(r.brakes.size(), 1u);
  EXPECT_TRUE(r.brakes[0].engaged);
  EXPECT_EQ(r.brakes[0].actor, "config");
  EXPECT_EQ(r.brakes[0].reason, "QT_AI_EMERGENCY_BRAKE=true");
  EXPECT_EQ(r.brakes[0].header.source.view(), "risk_os");
  EXPECT_TRUE(r.risk.brake_engaged());
  EXPECT_EQ(r.risk.state(), TradingState::halted);
  r.risk.brake_set(false, "operator", "resume");
  ASSERT_EQ(r.brakes.size(), 2u);
  EXPECT_FALSE(r.brakes[1].engaged);
  EXPECT_EQ(r.risk.state(), TradingState::active);
  EXPECT_FALSE(r.check(entry()));
  EXPECT_TRUE(r.breaches.empty());
}

TEST(RiskOSLimits, FromConfigReadsTheRiskVariables) {
  ConfigSources s;
  EXPECT_EQ(RiskLimits::from_config(config_load(s)).max_notional_per_order, RiskLimits{}.max_notional_per_order);
  const RiskLimits d = RiskLimits::from_config(config_load(s));
  const RiskLimits def;
  EXPECT_EQ(d.price_collar_pct, def.price_collar_pct);
  EXPECT_EQ(d.max_orders_per_minute, def.max_orders_per_minute);
  EXPECT_EQ(d.stop_out_cooldown_s, def.stop_out_cooldown_s);
  EXPECT_EQ(d.stop_guard_count, def.stop_guard_count);
  EXPECT_EQ(d.stop_guard_window_s, def.stop_guard_window_s);
  EXPECT_EQ(d.stop_guard_lock_s, def.stop_guard_lock_s);
  s.environment = {{"QT_RISK_MAX_NOTIONAL", "25000"},      {"QT_RISK_PRICE_COLLAR_PCT", "2.5"},
                   {"QT_RISK_MAX_ORDERS_PER_MIN", "30"},   {"QT_RISK_STOP_COOLDOWN_S", "900"},
                   {"QT_RISK_STOP_GUARD_COUNT", "4"},      {"QT_RISK_STOP_GUARD_WINDOW_S", "7200"},
                   {"QT_RISK_STOP_GUARD_LOCK_S", "1800"}};
  const RiskLimits l = RiskLimits::from_config(config_load(s));
  EXPECT_EQ(l.max_notional_per_order, 25'000);
  EXPECT_EQ(l.price_collar_pct, 2.5);
  EXPECT_EQ(l.max_orders_per_minute, 30);
  EXPECT_EQ(l.stop_out_cooldown_s, 900);
  EXPECT_EQ(l.stop_guard_count, 4);
  EXPECT_EQ(l.stop_guard_window_s, 7200);
  EXPECT_EQ(l.stop_guard_lock_s, 1800);
}

TEST(RiskOSLimits, UnusableLimitsAreRefusedNamingTheField) {
  SimClock clock;
  EventBus bus(clock);
  RiskLimits l;
  l.max_orders_per_minute = 0;
  try {
    RiskOS risk(l, bus);
    FAIL() << "max_orders_per_minute 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("max_orders_per_minute 0 must be >= 1"));
  }
  l = {};
  l.max_notional_per_order = kNaN;
  EXPECT_THROW({ RiskOS risk(l, bus); }, std::invalid_argument);
}

}  // namespace risk_os_test
}  // namespace qtos

namespace qtos {
namespace risk_os_test {

TEST(RiskOSLocks, TheGuardAndCooldownsAreListedAndCanBeLiftedByAnOperator) {
  RiskLimits l;
  l.stop_out_cooldown_s = 600;
  l.stop_guard_count = 1;
  l.stop_guard_window_s = 3600;
  l.stop_guard_lock_s = 60;
  Rig r(l);
  EXPECT_TRUE(r.risk.locks().empty());
  r.risk.stop_out("BTCUSDT");
  auto locks = r.risk.locks();
  ASSERT_EQ(locks.size(), 2u);
  EXPECT_EQ(locks[0].id, "stop_loss_guard");
  EXPECT_EQ(locks[0].until, r.clock.now() + 60 * kNsPerSecond);
  EXPECT_EQ(locks[1].id, "cooldown:BTCUSDT");
  EXPECT_DENIED(r.check(entry()), DenyReason::stop_loss_guard);
  EXPECT_TRUE(r.risk.lock_release("stop_loss_guard"));
  EXPECT_FALSE(r.risk.lock_release("stop_loss_guard"));  // already lifted
  EXPECT_DENIED(r.check(entry()), DenyReason::stop_out_cooldown);
  EXPECT_TRUE(r.risk.lock_release("cooldown:BTCUSDT"));
  EXPECT_FALSE(r.risk.lock_release("cooldown:ETHUSDT"));
  EXPECT_FALSE(r.risk.lock_release("anything"));
  EXPECT_TRUE(r.risk.locks().empty());
  EXPECT_FALSE(r.check(entry()));
}


TEST(RiskOSCheckpoint, ABrakeAndACooldownSurviveARestart) {
  RiskLimits limits;
  limits.stop_out_cooldown_s = 600;
  Rig before(limits);
  before.risk.brake_set(true, "operator", "before the crash");
  before.risk.stop_out("BTCUSDT");
  const TradingState state = before.risk.state();
  const boost::json::object saved = before.risk.checkpoint();

  Rig after(limits);  // a new process
  after.risk.restore(saved);
  EXPECT_TRUE(after.risk.brake_engaged());
  EXPECT_EQ(after.risk.state(), state);
  EXPECT_TRUE(after.brakes.empty()) << "a restore announces nothing: the state was announced when it was entered";
  ASSERT_EQ(after.risk.locks().size(), before.risk.locks().size());
  EXPECT_EQ(after.risk.locks()[0].id, "cooldown:BTCUSDT");
  EXPECT_EQ(boost::json::serialize(after.risk.checkpoint()), boost::json::serialize(saved));
  after.risk.brake_set(false, "operator", "after the restart");
  EXPECT_DENIED(after.check(entry()), DenyReason::stop_out_cooldown);

  boost::json::object damaged = saved;
  damaged.erase("guard_until");
  Rig third(limits);
  try {
    third.risk.restore(damaged);
    ADD_FAILURE() << "a checkpoint without guard_until was restored";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("guard_until"));
  }
}

}  // namespace risk_os_test
}  // namespace qtos
