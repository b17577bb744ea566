// Self-Healing and the Execution Layer Manager: each health check and recovery action on a small bus with a simulated
// clock, RESUME's hysteresis, the restart of a faulted service, SAFE mode in the policy; AELM's order type by
// volatility and by AI-HFOS's directive, the slicing arithmetic and the slippage cooldown; and replays: OBSERVE equals
// the baseline, ADVISORY/ENFORCED change what they should, and Flow 5 (the feed stops -> PAUSE_TRADING -> the feed
// returns -> RESUME) checked in order from the event log.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/bus/event_log.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/subsystems/execution_layer.hpp"
#include "runtime/subsystems/self_healing.hpp"
#include "runtime/util/rng.hpp"
#include "tests/runtime/test_util.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace healing_aelm_test {

using test::TempDir;

constexpr TimeNs kT0 = 1'704'067'200LL * kNsPerSecond;  // 2024-01-01
constexpr TimeNs kMinute = 60 * kNsPerSecond;

Config config_with(Subsystem s, SubsystemMode mode) {
  Config c;
  c.max_daily_dd_pct = 100;
  c.max_open_dd_pct = 100;
  c.subsystems[static_cast<std::size_t>(s)] = SubsystemConfig{true, mode};
  return c;
}

/// Every SubsystemDecided on a bus, in order.
struct Decisions {
  std::vector<SubsystemDecided> all;
  Subscription sub;
  explicit Decisions(EventBus& bus) : sub(bus.subscribe<SubsystemDecided>("test", [this](const SubsystemDecided& d) { all.push_back(d); })) {}
  std::vector<std::string> actions(std::string_view skip = "CHECK") const {
    std::vector<std::string> out;
    for (const auto& d : all)
      if (d.action != skip) out.push_back(d.action);
    return out;
  }
  std::size_t count(std::string_view action) const {
    std::size_t n = 0;
    for (const auto& d : all) n += d.action == action;
    return n;
  }
};

/// A one-minute bar of `symbol` closing now.
void bar_publish(EventBus& bus, const char* symbol, double close, double range_pct = 0.2, double quote_volume = 1e6) {
  MarketBarClosed b;
  b.symbol = symbol;
  b.interval_s = 60;
  b.open_time = bus.clock().now() - kMinute;
  b.open = close;
  b.high = close * (1 + range_pct / 200);
  b.low = close * (1 - range_pct / 200);
  b.close = close;
  b.volume = quote_volume / close;
  b.quote_volume = quote_volume;
  bus.publish(SourceName("feed"), b);
}

SelfHealingOptions minute_checks() {
  SelfHealingOptions o;
  o.check_interval_s = 60;
  o.stale_bars = 3;
  o.resume_checks = 2;
  return o;
}

const HealthCheck& check_named(const SelfHealing& h, const std::string& name) {
  for (const auto& c : h.checks())
    if (c.name == name) return c;
  throw std::invalid_argument("no check " + name);
}

// ---------------------------------------------------------------------------------------------------------------
// Self-Healing units

TEST(SelfHealing, StaleDataPausesAndResumesOnlyAfterConsecutiveClearChecks) {
  SimClock clock(kT0);
  EventBus bus(clock);
  Decisions seen(bus);
  SelfHealingOptions o = minute_checks();
  o.resume_checks = 6;
  SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), o);
  ASSERT_TRUE(h.start());
  EXPECT_EQ(check_named(h, "market_data").state, CheckState::not_applicable);
  // A live feed: a bar a minute, checked each minute (the check fires before the minute's bar is published).
  for (int i = 0; i < 5; ++i) {
    clock.advance_by(kMinute);
    bar_publish(bus, "BTCUSDT", 100);
  }
  EXPECT_EQ(check_named(h, "market_data").state, CheckState::ok);
  EXPECT_FALSE(h.paused());
  // The feed stops: 3 intervals old is still tolerated, 4 is stale.
  clock.advance_by(3 * kMinute);
  EXPECT_FALSE(h.paused());
  EXPECT_EQ(check_named(h, "market_data").value, 3.0);
  clock.advance_by(kMinute);
  EXPECT_TRUE(h.paused());
  EXPECT_EQ(check_named(h, "market_data").state, CheckState::fail);
  // No reconnect registered: said so, then paused; the hook answers a pause.
  EXPECT_EQ(seen.actions(), (std::vector<std::string>{"RECONNECT", "PAUSE_TRADING"}));
  EXPECT_NE(seen.all.back().detail.find("Pausing new entries: market data stale"), std::string::npos) << seen.all.back().detail;
  EXPECT_TRUE(seen.all.back().applied);
  SystemSnapshot snap;
  snap.now = clock.now();
  std::string why;
  EXPECT_TRUE(h.self_healing_check(snap, HealingAnswer{}, why)->pause_entries);
  // The feed returns: clear checks count towards RESUME (6 here), a feed that stops again starts the count again.
  bar_publish(bus, "BTCUSDT", 100);
  clock.advance_by(kMinute);  // clear 1
  bar_publish(bus, "BTCUSDT", 100);
  clock.advance_by(4 * kMinute);  // clear 2, 3, 4, then stale again (4 intervals)
  EXPECT_TRUE(h.paused());
  EXPECT_EQ(check_named(h, "market_data").state, CheckState::fail);
  bar_publish(bus, "BTCUSDT", 100);
  for (int i = 0; i < 5; ++i) {
    clock.advance_by(kMinute);
    bar_publish(bus, "BTCUSDT", 100);
  }
  EXPECT_TRUE(h.paused());  // 5 clear checks
  clock.advance_by(kMinute);
  EXPECT_FALSE(h.paused());  // the 6th
  EXPECT_EQ(seen.actions(), (std::vector<std::string>{"RECONNECT", "PAUSE_TRADING", "RECONNECT", "RESUME"}));
  EXPECT_FALSE(h.self_healing_check(SystemSnapshot{.now = clock.now()}, HealingAnswer{}, why)->pause_entries);
  // Each check's change was decided too (N/A -> OK -> FAIL -> OK -> FAIL -> OK for the data).
  EXPECT_GE(seen.count("CHECK"), 5u);
}

TEST(SelfHealing, ReconnectIsTriedFirstAndPausesOnlyWhenItDoesNotHelp) {
  for (bool works : {true, false}) {
    SCOPED_TRACE(works ? "the reconnect says it worked" : "the reconnect fails");
    SimClock clock(kT0);
    EventBus bus(clock);
    Decisions seen(bus);
    SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::enforced), minute_checks());
    int calls = 0;
    h.reconnect_register("binance-ws", [&] { return ++calls, works; });
    ASSERT_TRUE(h.start());
    clock.advance_by(kMinute);
    bar_publish(bus, "BTCUSDT", 100);
    clock.advance_by(4 * kMinute);  // stale at the 4th check
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(h.paused(), !works);
    ASSERT_FALSE(seen.actions().empty());
    EXPECT_EQ(seen.actions().front(), "RECONNECT");
    clock.advance_by(kMinute);  // still stale: the reconnect did not bring the data back
    EXPECT_EQ(calls, 1);  // once per stale episode
    EXPECT_TRUE(h.paused());
    EXPECT_EQ(seen.count("PAUSE_TRADING"), 1u);
  }
}

/// A service whose start fails while `broken`.
class Flaky final : public Service {
 public:
  explicit Flaky(EventBus& bus) : Service("feed_handler", SubsystemMode::enforced, bus) {}
  bool broken = false;
  int starts = 0;

 protected:
  void on_start() override {
    ++starts;
    if (broken) throw std::runtime_error("socket refused");
  }
};

TEST(SelfHealing, AFaultedWatchedServiceIsRestartedWithBackoffAndALimit) {
  SimClock clock(kT0);
  EventBus bus(clock);
  Decisions seen(bus);
  SelfHealingOptions o = minute_checks();
  o.max_restarts = 2;
  SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), o);
  Flaky svc(bus);
  h.watch(svc);
  ASSERT_TRUE(h.start());
  ASSERT_TRUE(svc.start());
  // It faults and comes back at the first restart.
  svc.fault("disconnected");
  clock.advance_by(kMinute);
  EXPECT_EQ(svc.state(), ServiceState::running);
  EXPECT_EQ(svc.starts, 2);
  ASSERT_EQ(seen.count("RESTART_COMPONENT"), 1u);
  // It faults for good: restart at once, then after 2 intervals (backoff), then it gives up.
  for (int i = 0; i < 3; ++i) clock.advance_by(kMinute);  // healthy checks reset the attempts
  svc.broken = true;
  svc.fault("disconnected again");
  clock.advance_by(kMinute);  // attempt 1 fails
  EXPECT_EQ(svc.starts, 3);
  EXPECT_EQ(svc.state(), ServiceState::faulted);
  EXPECT_EQ(check_named(h, "subsystems").state, CheckState::fail);
  clock.advance_by(kMinute);  // backoff: no attempt yet
  EXPECT_EQ(svc.starts, 3);
  clock.advance_by(kMinute);  // attempt 2
  EXPECT_EQ(svc.starts, 4);
  for (int i = 0; i < 6; ++i) clock.advance_by(kMinute);
  EXPECT_EQ(svc.starts, 4);  // gave up after max_restarts
  EXPECT_NE(seen.all.back().detail.find("giving up"), std::string::npos) << seen.all.back().detail;
  EXPECT_EQ(seen.count("RESTART_COMPONENT"), 4u);  // ok, failed, failed, giving up
}

/// One check interval in which the venue rejects four orders of six (a clock out of step, -1021), then the check.
void rejecting_venue(EventBus& bus, SimClock& clock) {
  clock.advance_by(kMinute);
  bar_publish(bus, "BTCUSDT", 100);
  for (std::uint64_t id = 1; id <= 6; ++id) {
    if (id <= 2) bus.publish(SourceName("executor"), OrderSubmitted{.order_id = id, .symbol = "BTCUSDT"});
    else bus.publish(SourceName("executor"), OrderRejected{.order_id = id, .symbol = "BTCUSDT", .exchange_code = -1021, .message = "timestamp"});
  }
  clock.advance_by(kMinute);
}

TEST(SelfHealing, ARejectingVenueSwitchesToSafeModeInThePolicyAndBack) {
  SimClock clock(kT0);
  EventBus bus(clock);
  Decisions seen(bus);
  PolicyStore policy(std::make_unique<MemoryPolicyBackend>(), clock, &bus, Policy{});
  SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), minute_checks(), &policy);
  ASSERT_TRUE(h.start());
  rejecting_venue(bus, clock);
  EXPECT_EQ(check_named(h, "exchange_errors").state, CheckState::fail);
  EXPECT_NEAR(check_named(h, "exchange_errors").value, 4.0 / 6.0, 1e-12);
  EXPECT_EQ(policy.current()->risk_mode, RiskMode::defensive);
  EXPECT_EQ(policy.current()->updated_by, "self-healing");
  EXPECT_TRUE(h.paused());
  EXPECT_TRUE(h.safe_mode());
  EXPECT_EQ(seen.actions(), (std::vector<std::string>{"SWITCH_TO_SAFE_MODE", "PAUSE_TRADING"}));
  // The rejections stay in the 5-check window, then two clear checks resume and restore NORMAL.
  for (int i = 0; i < 4; ++i) {
    bar_publish(bus, "BTCUSDT", 100);
    clock.advance_by(kMinute);
  }
  EXPECT_TRUE(h.paused());
  for (int i = 0; i < 2; ++i) {
    bar_publish(bus, "BTCUSDT", 100);
    clock.advance_by(kMinute);
  }
  EXPECT_FALSE(h.paused());
  EXPECT_EQ(policy.current()->risk_mode, RiskMode::normal);
  EXPECT_EQ(seen.actions(), (std::vector<std::string>{"SWITCH_TO_SAFE_MODE", "PAUSE_TRADING", "RESUME", "SWITCH_TO_SAFE_MODE"}));
}

TEST(SelfHealing, ASafeModeFromBeforeARestartIsHeldAndLeftWhenClear) {
  SimClock clock(kT0);
  EventBus bus(clock);
  PolicyStore policy(std::make_unique<MemoryPolicyBackend>(), clock, &bus, Policy{});
  ASSERT_TRUE(policy.update(policy.version(), [](Policy& p) { p.risk_mode = RiskMode::aggressive; }, "operator", "operator").ok());
  {
    SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), minute_checks(), &policy);
    ASSERT_TRUE(h.start());
    rejecting_venue(bus, clock);
    ASSERT_TRUE(h.safe_mode());
    ASSERT_EQ(policy.current()->risk_mode, RiskMode::defensive);
  }  // the process dies in SAFE mode
  // Restarted: the SAFE mode and its pause are held; clear checks resume and restore AGGRESSIVE, the mode it replaced.
  Decisions seen(bus);
  SelfHealing again(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), minute_checks(), &policy);
  ASSERT_TRUE(again.start());
  EXPECT_TRUE(again.safe_mode());
  EXPECT_TRUE(again.paused());
  for (int i = 0; i < 2; ++i) {
    bar_publish(bus, "BTCUSDT", 100);
    clock.advance_by(kMinute);
  }
  EXPECT_FALSE(again.paused());
  EXPECT_FALSE(again.safe_mode());
  EXPECT_EQ(policy.current()->risk_mode, RiskMode::aggressive);
  EXPECT_EQ(seen.actions(), (std::vector<std::string>{"PAUSE_TRADING", "RESUME", "SWITCH_TO_SAFE_MODE"}));
  // A SAFE switch someone changed since is not adopted: the operator's policy stands.
  ASSERT_TRUE(policy.update(policy.version(), [](Policy& p) { p.risk_mode = RiskMode::defensive; }, "operator", "operator").ok());
  SelfHealing third(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), minute_checks(), &policy);
  ASSERT_TRUE(third.start());
  EXPECT_FALSE(third.safe_mode());
  EXPECT_FALSE(third.paused());
}

TEST(SelfHealing, BusErrorsModelFailuresAndFaultsAreChecksTwoFailingMeanSafeMode) {
  SimClock clock(kT0);
  EventBus bus(clock);
  Decisions seen(bus);
  PolicyStore policy(std::make_unique<MemoryPolicyBackend>(), clock, &bus, Policy{});
  SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), minute_checks(), &policy);
  ASSERT_TRUE(h.start());
  clock.advance_by(kMinute);
  EXPECT_EQ(check_named(h, "clock_drift").state, CheckState::not_applicable);  // a simulated clock
  EXPECT_EQ(check_named(h, "bus").state, CheckState::ok);
  // A throwing handler fails the bus check (one check only: errors since the last check).
  Subscription bad = bus.subscribe<RegimeChanged>("broken_handler", [](const RegimeChanged&) { throw std::runtime_error("boom"); });
  bus.publish(SourceName("test"), RegimeChanged{});
  clock.advance_by(kMinute);
  EXPECT_EQ(check_named(h, "bus").state, CheckState::fail);
  EXPECT_NE(check_named(h, "bus").detail.find("broken_handler (RegimeChanged: boom)"), std::string::npos) << check_named(h, "bus").detail;
  EXPECT_FALSE(h.paused());  // one failing check alone: no pause
  // Model inference failures: one warns, three fail.
  bus.publish(SourceName("clm"), HealthStatusChanged{.component = "clm", .current = HealthLevel::degraded, .detail = "clm/ens: predict failed"});
  clock.advance_by(kMinute);
  EXPECT_EQ(check_named(h, "models").state, CheckState::warn);
  EXPECT_EQ(check_named(h, "bus").state, CheckState::ok);
  for (int i = 0; i < 2; ++i)
    bus.publish(SourceName("clm"), HealthStatusChanged{.component = "clm", .current = HealthLevel::degraded, .detail = "clm/ens: predict failed"});
  // A service of another owner faults.
  bus.publish(SourceName("msc"), ServiceStateChanged{.service = "MSC_AI", .previous = ServiceState::running, .current = ServiceState::faulted});
  clock.advance_by(kMinute);
  EXPECT_EQ(check_named(h, "models").state, CheckState::fail);
  EXPECT_EQ(check_named(h, "subsystems").state, CheckState::fail);
  EXPECT_NE(check_named(h, "subsystems").detail.find("MSC_AI faulted"), std::string::npos);
  EXPECT_TRUE(h.paused());
  EXPECT_EQ(policy.current()->risk_mode, RiskMode::defensive);
  EXPECT_NE(seen.all[seen.all.size() - 2].detail.find("2 checks failing (models, subsystems)"), std::string::npos) << seen.all[seen.all.size() - 2].detail;
}

TEST(SelfHealing, ObserveAndAdvisoryLogWhatTheyWouldDoAndChangeNothing) {
  for (SubsystemMode mode : {SubsystemMode::observe, SubsystemMode::advisory, SubsystemMode::protective}) {
    SCOPED_TRACE(std::string(mode_name(mode)));
    SimClock clock(kT0);
    EventBus bus(clock);
    Decisions seen(bus);
    PolicyStore policy(std::make_unique<MemoryPolicyBackend>(), clock, &bus, Policy{});
    auto h = std::make_shared<SelfHealing>(bus, config_with(Subsystem::self_healing, mode), minute_checks(), &policy);
    Flaky svc(bus);
    h->watch(svc);
    int reconnects = 0;
    h->reconnect_register("feed", [&] { return ++reconnects, true; });
    ASSERT_TRUE(h->start());
    ASSERT_TRUE(svc.start());
    svc.fault("gone");
    clock.advance_by(kMinute);
    bar_publish(bus, "BTCUSDT", 100);
    for (std::uint64_t id = 1; id <= 6; ++id) bus.publish(SourceName("executor"), OrderRejected{.order_id = id});
    clock.advance_by(5 * kMinute);
    HookPipeline hooks(bus);
    hooks.add(h);
    const bool applies = mode == SubsystemMode::protective;
    EXPECT_EQ(hooks.self_healing_check(SystemSnapshot{.now = clock.now()}, HealingAnswer{}, nullptr).pause_entries, applies);
    EXPECT_EQ(policy.current()->risk_mode, applies ? RiskMode::defensive : RiskMode::normal);
    EXPECT_EQ(svc.state(), applies ? ServiceState::running : ServiceState::faulted);
    EXPECT_EQ(reconnects, applies ? 1 : 0);
    EXPECT_TRUE(h->paused());  // what it decided (would decide) is the same in every mode
    ASSERT_GT(seen.count("PAUSE_TRADING"), 0u);
    for (const auto& d : seen.all) {
      if (d.action == "CHECK") continue;
      EXPECT_EQ(d.applied, applies) << d.action << ": " << d.detail;
      if (!applies) {
        EXPECT_NE(d.detail.find("would"), std::string::npos) << d.detail;
      }
    }
  }
}

TEST(SelfHealing, LatencyIsSubmitToFillClockTimeOfMarketOrdersBeyondOneBar) {
  SimClock clock(kT0);
  EventBus bus(clock);
  SelfHealingOptions o = minute_checks();
  o.max_latency_s = 30;
  SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), o);
  ASSERT_TRUE(h.start());
  clock.advance_by(kMinute);
  bar_publish(bus, "BTCUSDT", 100);
  EXPECT_EQ(check_named(h, "exchange_latency").state, CheckState::ok);
  EXPECT_EQ(check_named(h, "exchange_latency").value, 0.0);
  bus.publish(SourceName("executor"), OrderSubmitted{.order_id = 1, .type = OrderType::market});
  bus.publish(SourceName("executor"), OrderSubmitted{.order_id = 2, .type = OrderType::limit});  // a limit order rests: not latency
  clock.advance_by(kMinute + 20 * kNsPerSecond);
  bus.publish(SourceName("exchange"), OrderFilled{.order_id = 1});
  bar_publish(bus, "BTCUSDT", 100);
  clock.advance_by(40 * kNsPerSecond);
  EXPECT_EQ(check_named(h, "exchange_latency").state, CheckState::ok);
  EXPECT_EQ(check_named(h, "exchange_latency").value, 80.0);  // limit 30 s + one 60 s bar
  bus.publish(SourceName("executor"), OrderSubmitted{.order_id = 3, .type = OrderType::market});
  clock.advance_by(2 * kMinute);  // waiting 120 s > 90 s
  EXPECT_EQ(check_named(h, "exchange_latency").state, CheckState::warn);
  EXPECT_FALSE(h.paused());  // a warning alone changes nothing
}

TEST(SelfHealing, ClockDriftIsMeasuredOnALiveClock) {
  LiveClock clock;
  EventBus bus(clock);
  SelfHealing h(bus, config_with(Subsystem::self_healing, SubsystemMode::protective), minute_checks());
  ASSERT_TRUE(h.start());
  h.checks_run(clock.now());
  EXPECT_EQ(check_named(h, "clock_drift").state, CheckState::ok);
  EXPECT_LT(check_named(h, "clock_drift").value, 1000.0);
  h.stop();
}

// ---------------------------------------------------------------------------------------------------------------
// AELM units

class FakeHfos final : public HfosDirectiveSource {
 public:
  HfosDirective d;
  const HfosDirective& directive() const override { return d; }
};

TradeCandidate candidate(const char* symbol, double price, double quote) {
  TradeCandidate c;
  c.strategy = "s1";
  c.symbol = symbol;
  c.price = price;
  c.quote_qty = quote;
  return c;
}

TEST(Aelm, OrderTypeFollowsVolatilityAndSpread) {
  SimClock clock(kT0);
  EventBus bus(clock);
  Decisions seen(bus);
  ExecutionLayerManager a(bus, config_with(Subsystem::aelm, SubsystemMode::advisory), ExecutionLayerOptions{});
  ASSERT_TRUE(a.start());
  double calm = 100;
  for (int i = 0; i < 20; ++i) {
    clock.advance_by(kMinute);
    bar_publish(bus, "CALMUSDT", calm *= 1.003, 0.5);  // 0.5% ranges, trending: no spread in the ranges
    bar_publish(bus, "WILDUSDT", 50, 6.0);             // 6% ranges
  }
  ASSERT_NE(a.market(Symbol("WILDUSDT")), nullptr);
  EXPECT_NEAR(a.market(Symbol("WILDUSDT"))->atr_pct, 6.0, 0.1);
  EXPECT_LT(a.market(Symbol("CALMUSDT"))->atr_pct, 1.0);
  EXPECT_LT(a.market(Symbol("CALMUSDT"))->spread_bps, 1.0);
  std::string why;
  auto quiet = a.order_type_selection(candidate("CALMUSDT", calm, 1000), OrderTypeAnswer{}, why);
  ASSERT_TRUE(quiet);
  EXPECT_EQ(quiet->type, OrderType::market);
  auto wild = a.order_type_selection(candidate("WILDUSDT", 50, 1000), OrderTypeAnswer{}, why);
  EXPECT_EQ(wild->type, OrderType::limit);
  EXPECT_EQ(wild->limit_price, 50.0);
  EXPECT_NE(why.find("volatility ATR"), std::string::npos) << why;
  EXPECT_EQ(seen.count("ORDER_TYPE"), 1u);  // only the LIMIT is a change worth deciding
  // The spread proxy alone: calm ATR, but a wide spread estimated from the ranges.
  ExecutionLayerOptions o;
  o.limit_spread_bps = 1;
  o.limit_volatility_pct = 50;
  ExecutionLayerManager b(bus, config_with(Subsystem::aelm, SubsystemMode::advisory), o);
  ASSERT_TRUE(b.start());
  for (int i = 0; i < 20; ++i) {
    clock.advance_by(kMinute);
    bar_publish(bus, "FLATUSDT", 100, 0.5);  // a flat price in a 0.5% band: the bounce between bid and ask
  }
  EXPECT_NEAR(b.market(Symbol("FLATUSDT"))->spread_bps, 50.0, 5.0);
  EXPECT_EQ(b.order_type_selection(candidate("FLATUSDT", 100, 1000), OrderTypeAnswer{}, why)->type, OrderType::limit);
  EXPECT_NE(why.find("spread proxy"), std::string::npos) << why;
}

TEST(Aelm, AiHfosSafeModeEnforcesLimitOrders) {
  SimClock clock(kT0);
  EventBus bus(clock);
  Decisions seen(bus);
  FakeHfos hfos;
  ExecutionLayerManager a(bus, config_with(Subsystem::aelm, SubsystemMode::enforced), ExecutionLayerOptions{}, &hfos);
  ASSERT_TRUE(a.start());
  clock.advance_by(kMinute);
  bar_publish(bus, "BTCUSDT", 100);
  std::string why;
  EXPECT_EQ(a.order_type_selection(candidate("BTCUSDT", 100, 1000), OrderTypeAnswer{}, why)->type, OrderType::market);
  hfos.d.mode = SystemRiskMode::safe;
  hfos.d.preferred_order_type = OrderType::limit;
  for (const char* s : {"BTCUSDT", "ETHUSDT"}) {
    const auto t = a.order_type_selection(candidate(s, 100, 1000), OrderTypeAnswer{}, why);
    EXPECT_EQ(t->type, OrderType::limit);
    EXPECT_EQ(t->limit_price, 100.0);
  }
  ASSERT_EQ(seen.count("ORDER_TYPE"), 1u);  // once, system-wide
  EXPECT_EQ(seen.all.back().detail, "Enforcing LIMIT orders (SAFE mode active)");
  hfos.d = HfosDirective{};
  EXPECT_EQ(a.order_type_selection(candidate("BTCUSDT", 100, 1000), OrderTypeAnswer{}, why)->type, OrderType::market);
  EXPECT_EQ(seen.all[seen.all.size() - 2].detail, "AI-HFOS allows MARKET orders again");
  EXPECT_EQ(seen.all.back().symbol, Symbol("BTCUSDT"));  // then the symbol's own change back to MARKET
}

TEST(Aelm, SmartExecSlicesUnderTheParticipationCap) {
  SimClock clock(kT0);
  EventBus bus(clock);
  ExecutionLayerOptions o;
  o.smart_exec = true;
  o.max_participation = 0.05;
  o.max_slices = 10;
  ExecutionLayerManager a(bus, config_with(Subsystem::aelm, SubsystemMode::advisory), o);
  o.smart_exec = false;
  ExecutionLayerManager plain(bus, config_with(Subsystem::aelm, SubsystemMode::advisory), o);
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(plain.start());
  for (int i = 0; i < 20; ++i) {
    clock.advance_by(kMinute);
    bar_publish(bus, "BTCUSDT", 100, 0.2, 100'000);  // 5% of 100k: 5k a bar
  }
  std::string why;
  EXPECT_EQ(a.order_type_selection(candidate("BTCUSDT", 100, 5'000), OrderTypeAnswer{}, why)->slices, 1);
  EXPECT_EQ(a.order_type_selection(candidate("BTCUSDT", 100, 5'001), OrderTypeAnswer{}, why)->slices, 2);
  EXPECT_EQ(a.order_type_selection(candidate("BTCUSDT", 100, 12'000), OrderTypeAnswer{}, why)->slices, 3);
  EXPECT_NE(why.find("TWAP in 3 slices"), std::string::npos) << why;
  EXPECT_EQ(a.order_type_selection(candidate("BTCUSDT", 100, 1e6), OrderTypeAnswer{}, why)->slices, 10);  // capped
  EXPECT_EQ(plain.order_type_selection(candidate("BTCUSDT", 100, 1e6), OrderTypeAnswer{}, why)->slices, 1);
}

TEST(Aelm, ASlippageBreachCancelsTheRestAndCoolsTheSymbolDown) {
  SimClock clock(kT0);
  EventBus bus(clock);
  Decisions seen(bus);
  ExecutionLayerOptions o;
  o.max_slippage_bps = 30;
  o.cooldown_bars = 3;
  auto a = std::make_shared<ExecutionLayerManager>(bus, config_with(Subsystem::aelm, SubsystemMode::enforced), o);
  ASSERT_TRUE(a->start());
  HookPipeline hooks(bus);
  hooks.add(a);
  clock.advance_by(kMinute);
  bar_publish(bus, "BTCUSDT", 100);
  const TradeCandidate c = candidate("BTCUSDT", 100, 1000);
  EXPECT_FALSE(hooks.slippage_check(c, SlippageAnswer{29, false}, nullptr).cancel_remaining);
  EXPECT_TRUE(hooks.risk_check(c, CheckAnswer{}, nullptr).allow);
  EXPECT_FALSE(hooks.active(Hook::pre_trade_risk_check));  // idle: the executor keeps folding repeated denials
  EXPECT_TRUE(hooks.slippage_check(c, SlippageAnswer{31, false}, nullptr).cancel_remaining);
  EXPECT_TRUE(hooks.active(Hook::pre_trade_risk_check));
  EXPECT_EQ(a->breaches(), 1u);
  ASSERT_EQ(seen.count("SLIPPAGE_BREACH"), 1u);
  EXPECT_EQ(seen.all.back().symbol, Symbol("BTCUSDT"));
  for (int bar = 0; bar < 3; ++bar) {
    const CheckAnswer r = hooks.risk_check(c, CheckAnswer{}, nullptr);
    EXPECT_FALSE(r.allow) << bar;
    EXPECT_EQ(r.reason, DenyReason::slippage_cooldown);
    EXPECT_TRUE(hooks.risk_check(candidate("ETHUSDT", 10, 100), CheckAnswer{}, nullptr).allow);  // only that symbol
    clock.advance_by(kMinute);
    bar_publish(bus, "BTCUSDT", 100);
  }
  EXPECT_TRUE(hooks.risk_check(c, CheckAnswer{}, nullptr).allow);
  EXPECT_FALSE(hooks.active(Hook::pre_trade_risk_check));
  // A breach on an added (scale-in or TWAP child) order: the executor passes no symbol; the rest is cancelled all the same.
  EXPECT_TRUE(hooks.slippage_check(TradeCandidate{}, SlippageAnswer{31, false}, nullptr).cancel_remaining);
  EXPECT_FALSE(hooks.active(Hook::pre_trade_risk_check));
  EXPECT_NE(seen.all.back().detail.find("symbol unknown: no cooldown"), std::string::npos) << seen.all.back().detail;
  // ADVISORY: the breach is flagged, nothing is cancelled or denied (both are hard).
  auto adv = std::make_shared<ExecutionLayerManager>(bus, config_with(Subsystem::aelm, SubsystemMode::advisory), o);
  ASSERT_TRUE(adv->start());
  HookPipeline soft(bus);
  soft.add(adv);
  EXPECT_FALSE(soft.slippage_check(c, SlippageAnswer{80, false}, nullptr).cancel_remaining);
  EXPECT_TRUE(soft.risk_check(c, CheckAnswer{}, nullptr).allow);
  EXPECT_EQ(adv->breaches(), 1u);
  EXPECT_FALSE(seen.all.back().applied);
}

// ---------------------------------------------------------------------------------------------------------------
// Replays

constexpr std::int32_t kGapBegin = 400, kGapBars = 30;

/// A momentum market; with `gap`, every symbol's bars [kGapBegin, kGapBegin + kGapBars) are missing (the feed stopped).
MarketPanel market(bool gap, std::int32_t symbols = 8, std::int32_t bars = 700) {
  SynthOptions o;
  o.n_symbols = symbols;
  o.n_bars = bars;
  o.seed = 7;
  o.late_listing_fraction = 0;
  o.gap_rate = 0;
  o.planted_momentum = 0.15;
  MarketPanel p = synth_generate(o).panel;
  if (gap)
    for (std::int32_t s = 0; s < p.n_symbols(); ++s)
      for (Column col : {Column::open, Column::high, Column::low, Column::close, Column::volume, Column::quote_volume, Column::trades}) {
        auto row = p.series_mut(col, s);
        for (std::int32_t t = kGapBegin; t < kGapBegin + kGapBars; ++t)
          row[static_cast<std::size_t>(t)] = col <= Column::close ? std::nanf("") : 0.0f;
      }
  p.valid_ranges_recompute();
  return p;
}

/// `n` strategies that trade on the market (each at least 8 backtest trades).
std::vector<LiveStrategy> strategies(const MarketPanel& panel, std::size_t n) {
  test::GenomePick pick;
  pick.want = n;
  return test::trading_strategies(panel, pick);
}

ReplayOptions replay_options(const std::string& ledger) { return test::unbounded_replay_options(ledger); }

/// What a ledger holds, without the decision traces (OBSERVE adds its "would" steps there).
using OrderRow = std::tuple<std::uint64_t, int, int, int, std::string, double, double, double, double, int, std::uint32_t>;
std::vector<OrderRow> ledger_rows(const std::string& path) {
  const Ledger l(path, store::OpenMode::existing);
  std::vector<OrderRow> out;
  for (const OrderRecord& o : l.orders())
    out.emplace_back(o.request.order_id, static_cast<int>(o.status), static_cast<int>(o.request.type), static_cast<int>(o.purpose),
                     std::string(o.request.symbol.view()), o.request.qty, o.request.price, o.filled_qty, o.avg_price,
                     o.deny_reason ? static_cast<int>(*o.deny_reason) : -1, o.repeats);
  return out;
}

std::size_t denials(const std::string& path, DenyReason reason) {
  const Ledger l(path, store::OpenMode::existing);
  std::size_t n = 0;
  for (const OrderRecord& o : l.orders(OrderQuery{OrderStatus::denied})) n += o.deny_reason == reason ? 1 + o.repeats : 0;
  return n;
}

std::vector<AnyEvent> event_log(const std::string& path) { return test::event_log_read(path); }

struct HealingRun {
  ReplayResult result;
  std::shared_ptr<SelfHealing> healing;
};

HealingRun healing_replay(const MarketPanel& panel, const std::vector<LiveStrategy>& strats, SubsystemMode mode, const std::string& ledger,
                          const std::string& event_log = "") {
  Config cfg = config_with(Subsystem::self_healing, mode);
  cfg.self_healing_check_interval = 3600;  // one check a bar
  cfg.self_healing_stale_bars = 3;
  cfg.self_healing_resume_checks = 24;
  ReplayOptions o = replay_options(ledger);
  o.event_log_path = event_log;
  HealingRun run;
  if (mode != SubsystemMode::off)
    o.subsystem_factory = [&](ReplayContext& ctx) -> std::vector<std::shared_ptr<TradingSubsystem>> {
      run.healing = std::make_shared<SelfHealing>(ctx.bus, ctx.config, SelfHealingOptions::from_config(ctx.config), &ctx.policy, ctx.log_dir);
      return {run.healing};
    };
  run.result = replay_run(panel, cfg, strats, {}, o);
  return run;
}

TEST(SelfHealingReplay, ObserveAndAdvisoryEqualTheBaseline) {
  const MarketPanel panel = market(true);
  const auto strats = strategies(panel, 3);
  ASSERT_EQ(strats.size(), 3u);
  TempDir dir;
  healing_replay(panel, strats, SubsystemMode::off, dir.file("off.db"));
  const auto base = ledger_rows(dir.file("off.db"));
  ASSERT_GT(base.size(), 20u);
  for (SubsystemMode mode : {SubsystemMode::observe, SubsystemMode::advisory}) {
    const std::string name(mode_name(mode));
    healing_replay(panel, strats, mode, dir.file(name + ".db"), dir.file(name + ".qel"));
    EXPECT_EQ(ledger_rows(dir.file(name + ".db")), base) << name;
    EXPECT_EQ(denials(dir.file(name + ".db"), DenyReason::service_degraded), 0u) << name;
    // It saw the gap and said what it would do, applying nothing.
    std::vector<std::string> said;
    for (const AnyEvent& e : event_log(dir.file(name + ".qel")))
      if (const auto* d = std::get_if<SubsystemDecided>(&e); d != nullptr && d->action != "CHECK") {
        said.push_back(d->action);
        EXPECT_FALSE(d->applied) << d->detail;
        EXPECT_NE(d->detail.find("would"), std::string::npos) << d->detail;
      }
    EXPECT_EQ(said, (std::vector<std::string>{"RECONNECT", "PAUSE_TRADING", "RESUME"})) << name;
  }
}

TEST(SelfHealingReplay, Flow5TheFeedStopsTradingPausesTheFeedReturnsTradingResumes) {
  const MarketPanel panel = market(true);
  const auto strats = strategies(panel, 3);
  TempDir dir;
  const HealingRun run = healing_replay(panel, strats, SubsystemMode::protective, dir.file("flow5.db"), dir.file("flow5.qel"));
  const TimeNs interval = panel.interval_ms() * kNsPerMillisecond;
  const TimeNs gap_begin = panel.time_ms(kGapBegin) * kNsPerMillisecond;  // the first missing bar's open
  const TimeNs gap_end = panel.time_ms(kGapBegin + kGapBars) * kNsPerMillisecond + interval;  // the feed's first bar back closes
  // In order from the event log: PAUSE_TRADING after the gap starts, SERVICE_DEGRADED denials, RESUME after the feed
  // returns, entries afterwards.
  enum Step { before, paused, denied, resumed, traded };
  Step step = before;
  TimeNs pause_at = 0, resume_at = 0;
  std::size_t entries_before = 0, degraded = 0;
  for (const AnyEvent& e : event_log(dir.file("flow5.qel"))) {
    if (const auto* d = std::get_if<SubsystemDecided>(&e); d != nullptr && d->subsystem.view() == "SELF_HEALING") {
      if (d->action == "PAUSE_TRADING") {
        EXPECT_EQ(step, before) << "a second pause";
        EXPECT_TRUE(d->applied);
        pause_at = d->header.ts;
        step = paused;
      } else if (d->action == "RESUME") {
        EXPECT_EQ(step, denied) << "RESUME before any SERVICE_DEGRADED denial";
        resume_at = d->header.ts;
        step = resumed;
      }
    } else if (const auto* o = std::get_if<OrderDenied>(&e); o != nullptr && o->reason == DenyReason::service_degraded) {
      EXPECT_TRUE(step == paused || step == denied) << "SERVICE_DEGRADED outside the pause";
      ++degraded;
      step = denied;
    } else if (std::holds_alternative<PositionOpened>(e)) {
      EXPECT_TRUE(step == before || step == resumed || step == traded) << "an entry during the pause";
      if (step == before) ++entries_before;
      if (step == resumed) step = traded;
    }
  }
  EXPECT_EQ(step, traded);
  EXPECT_GT(entries_before, 0u);
  EXPECT_GT(degraded, 0u);
  // The pause came 3 to 4 bar intervals into the gap (stale after 3), the resume after the feed came back.
  EXPECT_GT(pause_at, gap_begin + 3 * interval);
  EXPECT_LE(pause_at, gap_begin + 5 * interval);
  EXPECT_GE(resume_at, gap_end + 23 * interval);
  EXPECT_GT(denials(dir.file("flow5.db"), DenyReason::service_degraded), 0u);
  EXPECT_FALSE(run.healing->paused());
}

// AELM in a replay: OBSERVE equals the baseline; ADVISORY under a directive preferring LIMIT places LIMIT entries;
// ENFORCED with a tight slippage cap denies SLIPPAGE_COOLDOWN.
struct AelmRun {
  std::shared_ptr<ExecutionLayerManager> aelm;
};

AelmRun aelm_replay(const MarketPanel& panel, const std::vector<LiveStrategy>& strats, SubsystemMode mode, const std::string& ledger,
                    const HfosDirectiveSource* hfos, double max_slippage_bps = 30, double participation = 0) {
  Config cfg = config_with(Subsystem::aelm, mode);
  cfg.aelm_max_slippage_bps = max_slippage_bps;
  if (participation > 0) {
    cfg.aelm_smart_exec = true;
    cfg.aelm_max_participation = participation;
    cfg.aelm_max_slices = 4;
  }
  ReplayOptions o = replay_options(ledger);
  AelmRun run;
  if (mode != SubsystemMode::off)
    o.subsystem_factory = [&](ReplayContext& ctx) -> std::vector<std::shared_ptr<TradingSubsystem>> {
      run.aelm = std::make_shared<ExecutionLayerManager>(ctx.bus, ctx.config, ExecutionLayerOptions::from_config(ctx.config), hfos, ctx.log_dir);
      return {run.aelm};
    };
  replay_run(panel, cfg, strats, {}, o);
  return run;
}

std::size_t limit_entries(const std::string& path) {
  const Ledger l(path, store::OpenMode::existing);
  std::size_t n = 0;
  for (const OrderRecord& o : l.orders()) n += o.purpose == OrderPurpose::entry && o.request.type == OrderType::limit && o.status != OrderStatus::denied;
  return n;
}

TEST(AelmReplay, ObserveEqualsTheBaselineAdvisoryPlacesLimitOrdersEnforcedCoolsDown) {
  const MarketPanel panel = market(false, 6, 500);
  const auto strats = strategies(panel, 2);
  TempDir dir;
  FakeHfos hfos;
  hfos.d.mode = SystemRiskMode::safe;
  hfos.d.preferred_order_type = OrderType::limit;
  aelm_replay(panel, strats, SubsystemMode::off, dir.file("off.db"), nullptr);
  const auto base = ledger_rows(dir.file("off.db"));
  ASSERT_GT(base.size(), 20u);
  EXPECT_EQ(limit_entries(dir.file("off.db")), 0u);
  const AelmRun observed = aelm_replay(panel, strats, SubsystemMode::observe, dir.file("observe.db"), &hfos, 1);
  EXPECT_EQ(ledger_rows(dir.file("observe.db")), base);
  EXPECT_GT(observed.aelm->decisions(), 0u);
  EXPECT_GT(observed.aelm->breaches(), 0u);  // it would have cooled symbols down
  // ADVISORY: every entry is a LIMIT at the last close (a soft part).
  aelm_replay(panel, strats, SubsystemMode::advisory, dir.file("advisory.db"), &hfos);
  EXPECT_GT(limit_entries(dir.file("advisory.db")), 10u);
  EXPECT_EQ(denials(dir.file("advisory.db"), DenyReason::slippage_cooldown), 0u);
  // ENFORCED with a 1 bps cap: MARKET fills slip more (the venue's 2 bps), so symbols cool down.
  const AelmRun enforced = aelm_replay(panel, strats, SubsystemMode::enforced, dir.file("enforced.db"), nullptr, 1);
  EXPECT_GT(enforced.aelm->breaches(), 0u);
  EXPECT_GT(denials(dir.file("enforced.db"), DenyReason::slippage_cooldown), 0u);
  EXPECT_EQ(denials(dir.file("off.db"), DenyReason::slippage_cooldown), 0u);
}

TEST(AelmReplay, SmartExecSlicesLargeEntriesIntoTwapChildOrders) {
  const MarketPanel panel = market(false, 6, 500);
  const auto strats = strategies(panel, 2);
  TempDir dir;
  // Entries per position: one without slicing; with a participation cap far below the entries' size, up to 4 child
  // orders one a bar, each a quarter of the entry.
  auto children = [&](const std::string& path) {
    const Ledger l(path, store::OpenMode::existing);
    std::map<std::uint64_t, std::vector<OrderRecord>> by_position;
    for (const OrderRecord& o : l.orders())
      if (o.purpose == OrderPurpose::entry && o.status == OrderStatus::filled) by_position[o.position_id].push_back(o);
    return by_position;
  };
  aelm_replay(panel, strats, SubsystemMode::advisory, dir.file("plain.db"), nullptr);
  for (const auto& [id, orders] : children(dir.file("plain.db"))) EXPECT_EQ(orders.size(), 1u) << id;
  const AelmRun sliced = aelm_replay(panel, strats, SubsystemMode::advisory, dir.file("sliced.db"), nullptr, 30, 1e-6);
  std::size_t four = 0;
  for (const auto& [id, orders] : children(dir.file("sliced.db"))) {
    EXPECT_LE(orders.size(), 4u) << id;
    if (orders.size() != 4) continue;  // an exit before the last slice ends the TWAP
    ++four;
    for (std::size_t i = 1; i < orders.size(); ++i) {
      EXPECT_NEAR(orders[i].filled_qty, orders[0].filled_qty, 0.05 * orders[0].filled_qty) << id;  // equal parts
      EXPECT_LT(orders[i].created, orders[i - 1].created) << id;  // newest first: one a bar
    }
  }
  EXPECT_GT(four, 5u);
  EXPECT_GT(sliced.aelm->decisions(), 0u);
}

}  // namespace healing_aelm_test
}  // namespace qtos
