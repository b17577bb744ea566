// The hook pipeline on its own: what each mode applies, the order of subsystems, the trace, the logs, and the
// fail-safe for a subsystem that throws or overruns its budget.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/executor/hooks.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace hooks_test {

/// A subsystem with fixed answers: halves the size, excludes the symbol, denies the risk check.
class Fixed final : public TradingSubsystem {
 public:
  Fixed(std::string name, SubsystemMode mode) : name_(std::move(name)), mode_(mode) {}
  std::string name() const override { return name_; }
  SubsystemMode mode() const override { return mode_; }
  bool answers(Hook) const override { return true; }
  std::optional<UniverseAnswer> universe_filter(const TradeCandidate&, const UniverseAnswer&, std::string& why) override {
    why = "thin book";
    return UniverseAnswer{false};
  }
  std::optional<SizingAnswer> position_sizing(const TradeCandidate&, const SizingAnswer& v, std::string& why) override {
    ++calls;
    if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
    if (throws) throw std::runtime_error("model file missing");
    why = "half";
    return SizingAnswer{v.quote_qty / 2};
  }
  std::optional<CheckAnswer> risk_check(const TradeCandidate&, const CheckAnswer&, std::string& why) override {
    ++calls;
    if (throws) throw std::runtime_error("risk model crashed");
    why = "too correlated";
    return CheckAnswer{false, DenyReason::hook_blocked, 1.0};
  }
  int calls = 0;
  bool throws = false;
  std::chrono::milliseconds sleep{0};

 private:
  std::string name_;
  SubsystemMode mode_;
};

struct Rig {
  SimClock clock{0};
  EventBus bus{clock};
  std::vector<HealthStatusChanged> health;
  Subscription sub = bus.subscribe<HealthStatusChanged>("test", [this](const HealthStatusChanged& e) { health.push_back(e); });
  Rig() { bus.bind_owner_thread(); }
};

TradeCandidate candidate() {
  TradeCandidate c;
  c.strategy = "s1";
  c.symbol = "BTCUSDT";
  c.quote_qty = 1000;
  return c;
}

TEST(Hooks, ObserveLogsAndChangesNothing) {
  Rig r;
  test::TempDir dir;
  HookPipeline p(r.bus, HookOptions{true, std::chrono::microseconds(50'000), (dir.path() / "logs").string()});
  auto s = std::make_shared<Fixed>("AI-HFOS", SubsystemMode::observe);
  p.add(s);
  DecisionTrace trace;
  EXPECT_EQ(p.position_sizing(candidate(), SizingAnswer{1000}, &trace).quote_qty, 1000);
  EXPECT_TRUE(p.universe_filter(candidate(), UniverseAnswer{true}, &trace).tradable);
  EXPECT_TRUE(p.risk_check(candidate(), CheckAnswer{}, &trace).allow);
  ASSERT_EQ(trace.size(), 3u);
  EXPECT_FALSE(trace[0].applied);
  EXPECT_EQ(trace[0].before, "quote 1000");
  EXPECT_EQ(trace[0].after, "quote 500") << "the trace shows what it would have done";
  EXPECT_EQ(trace[0].mode, SubsystemMode::observe);
  std::ifstream f(dir.path() / "logs/ai_subsystem_ai_hfos.log");
  const std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("[AI-HFOS] OBSERVE mode - would pre_trade_position_sizing BTCUSDT BUY: quote 1000 -> quote 500 (half)"),
            std::string::npos)
      << log;
}

TEST(Hooks, AdvisoryAppliesSoftPartsOnlyEnforcedAlsoBlocks) {
  Rig r;
  HookPipeline advisory(r.bus);
  advisory.add(std::make_shared<Fixed>("PBA", SubsystemMode::advisory));
  DecisionTrace trace;
  EXPECT_EQ(advisory.position_sizing(candidate(), SizingAnswer{1000}, &trace).quote_qty, 500);  // soft: applied
  EXPECT_TRUE(advisory.universe_filter(candidate(), UniverseAnswer{true}, &trace).tradable);     // hard: not
  EXPECT_TRUE(advisory.risk_check(candidate(), CheckAnswer{}, &trace).allow);
  EXPECT_TRUE(trace[0].applied);

  HookPipeline enforced(r.bus);
  auto first = std::make_shared<Fixed>("PIL", SubsystemMode::enforced);
  auto second = std::make_shared<Fixed>("PAL", SubsystemMode::enforced);
  enforced.add(first);
  enforced.add(second);
  trace.clear();
  EXPECT_FALSE(enforced.universe_filter(candidate(), UniverseAnswer{true}, &trace).tradable);
  const CheckAnswer c = enforced.risk_check(candidate(), CheckAnswer{}, &trace);
  EXPECT_FALSE(c.allow);
  EXPECT_EQ(c.reason, DenyReason::hook_blocked);
  EXPECT_EQ(first->calls, 1);
  EXPECT_EQ(second->calls, 0) << "a denial ends the check: later subsystems are not asked";
  // Sizes compose in the order the subsystems were added.
  EXPECT_EQ(enforced.position_sizing(candidate(), SizingAnswer{1000}, &trace).quote_qty, 250);
}

TEST(Hooks, OffIsNeverAskedAndNamesAreUnique) {
  Rig r;
  HookPipeline p(r.bus);
  auto off = std::make_shared<Fixed>("SELF_HEALING", SubsystemMode::off);
  p.add(off);
  EXPECT_FALSE(p.active(Hook::pre_trade_position_sizing));
  DecisionTrace trace;
  EXPECT_EQ(p.position_sizing(candidate(), SizingAnswer{1000}, &trace).quote_qty, 1000);
  EXPECT_EQ(off->calls, 0);
  EXPECT_TRUE(trace.empty());
  EXPECT_THROW(p.add(std::make_shared<Fixed>("SELF_HEALING", SubsystemMode::enforced)), std::invalid_argument);
}

TEST(Hooks, FailSafeKeepsTheBaselineWhenEnhancingAndDeniesWhenProtecting) {
  Rig r;
  HookPipeline p(r.bus);
  auto s = std::make_shared<Fixed>("PBA", SubsystemMode::enforced);
  s->throws = true;
  p.add(s);
  DecisionTrace trace;
  EXPECT_EQ(p.position_sizing(candidate(), SizingAnswer{1000}, &trace).quote_qty, 1000);
  const CheckAnswer c = p.risk_check(candidate(), CheckAnswer{}, &trace);
  EXPECT_FALSE(c.allow);
  EXPECT_EQ(c.reason, DenyReason::fail_safe);
  ASSERT_EQ(r.health.size(), 2u);
  EXPECT_EQ(r.health[0].component.str(), "PBA");
  EXPECT_EQ(r.health[0].current, HealthLevel::degraded);
  EXPECT_NE(r.health[0].detail.find("pre_trade_position_sizing: model file missing (fail-safe: baseline kept)"), std::string::npos)
      << r.health[0].detail;
  EXPECT_NE(r.health[1].detail.find("(fail-safe: denied)"), std::string::npos);
  EXPECT_EQ(r.health[1].error_count, 2u);
  EXPECT_EQ(p.failures(), 2u);
  EXPECT_NE(trace[0].reason.find("fail-safe: model file missing"), std::string::npos);
}

TEST(Hooks, AnOverrunIsAFailureLikeAnException) {
  Rig r;
  HookPipeline p(r.bus, HookOptions{true, std::chrono::microseconds(2'000), ""});
  auto s = std::make_shared<Fixed>("AELM", SubsystemMode::enforced);
  s->sleep = std::chrono::milliseconds(20);
  p.add(s);
  DecisionTrace trace;
  EXPECT_EQ(p.position_sizing(candidate(), SizingAnswer{1000}, &trace).quote_qty, 1000) << "its late answer is not used";
  ASSERT_EQ(r.health.size(), 1u);
  EXPECT_NE(r.health[0].detail.find("over its budget of 2 ms"), std::string::npos) << r.health[0].detail;
}

TEST(Hooks, WithoutFailSafeAnErrorPropagatesNamingTheSubsystem) {
  Rig r;
  HookPipeline p(r.bus, HookOptions{false, std::chrono::microseconds(50'000), ""});
  auto s = std::make_shared<Fixed>("PIL", SubsystemMode::enforced);
  s->throws = true;
  p.add(s);
  try {
    p.position_sizing(candidate(), SizingAnswer{1000}, nullptr);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("[PIL] pre_trade_position_sizing: model file missing"), std::string::npos) << e.what();
  }
}

}  // namespace hooks_test
}  // namespace qtos
