// Service lifecycle: the transition table, published lifecycle and health changes, subscriptions and timers
// released on stop, failures during start and in periodic jobs.
#include <stdexcept>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/service/service.hpp"

namespace qtos {
namespace service_test {

using ::testing::ElementsAre;
using S = ServiceState;

class CountingService : public Service {
 public:
  CountingService(EventBus& bus, SubsystemMode mode = SubsystemMode::enforced) : Service("counter", mode, bus) {}
  int fills = 0, ticks = 0, stops = 0;
  bool fail_start = false, fail_tick = false;

 protected:
  void on_start() override {
    subscribe<OrderFilled>([this](const OrderFilled&) { ++fills; });
    every(60 * kNsPerSecond, [this](TimeNs) {
      ++ticks;
      if (fail_tick) throw std::runtime_error("tick failed");
    });
    if (fail_start) throw std::runtime_error("exchange unreachable");
  }
  void on_stop() override { ++stops; }
};

struct Watcher {
  std::vector<std::pair<S, S>> states;
  std::vector<HealthLevel> health;
  Subscription a, b;
  explicit Watcher(EventBus& bus)
      : a(bus.subscribe<ServiceStateChanged>("w1", [this](const ServiceStateChanged& e) { states.emplace_back(e.previous, e.current); })),
        b(bus.subscribe<HealthStatusChanged>("w2", [this](const HealthStatusChanged& e) { health.push_back(e.current); })) {}
};

TEST(Service, TransitionTableIsExactlyAsDocumented) {
  const S all[] = {S::created, S::starting, S::running, S::degraded, S::faulted, S::stopped};
  const std::vector<std::pair<S, S>> allowed = {
      {S::created, S::starting},  {S::created, S::stopped},   {S::starting, S::running}, {S::starting, S::faulted},
      {S::starting, S::stopped},  {S::running, S::degraded},  {S::running, S::faulted},  {S::running, S::stopped},
      {S::degraded, S::running},  {S::degraded, S::faulted},  {S::degraded, S::stopped}, {S::faulted, S::starting},
      {S::faulted, S::stopped},   {S::stopped, S::starting}};
  for (S from : all)
    for (S to : all) {
      const bool expected = std::find(allowed.begin(), allowed.end(), std::make_pair(from, to)) != allowed.end();
      EXPECT_EQ(service_transition_allowed(from, to), expected) << enum_name(from) << " -> " << enum_name(to);
    }
}

TEST(Service, LifecycleIsPublishedAndSubscriptionsAreReleasedOnStop) {
  SimClock clock(0);
  EventBus bus(clock);
  Watcher w(bus);
  CountingService svc(bus);
  EXPECT_EQ(svc.state(), S::created);
  ASSERT_TRUE(svc.start());
  EXPECT_EQ(svc.state(), S::running);
  EXPECT_EQ(svc.subscription_count(), 1u);
  bus.publish("x", OrderFilled{});
  clock.advance_by(120 * kNsPerSecond);
  EXPECT_EQ(svc.fills, 1);
  EXPECT_EQ(svc.ticks, 2);
  svc.degrade("exchange slow");
  EXPECT_EQ(svc.health(), HealthLevel::degraded);
  svc.recover("exchange back");
  svc.stop("shutdown");
  EXPECT_EQ(svc.stops, 1);
  EXPECT_EQ(svc.subscription_count(), 0u);
  EXPECT_EQ(svc.timer_count(), 0u);
  bus.publish("x", OrderFilled{});
  clock.advance_by(600 * kNsPerSecond);
  EXPECT_EQ(svc.fills, 1);  // no delivery after stop
  EXPECT_EQ(svc.ticks, 2);  // no timer after stop
  EXPECT_THAT(w.states, ElementsAre(std::make_pair(S::created, S::starting), std::make_pair(S::starting, S::running),
                                    std::make_pair(S::running, S::degraded), std::make_pair(S::degraded, S::running),
                                    std::make_pair(S::running, S::stopped)));
  EXPECT_THAT(w.health, ElementsAre(HealthLevel::degraded, HealthLevel::healthy));
  EXPECT_EQ(svc.last_reason(), "shutdown");
}

TEST(Service, IllegalTransitionsThrowNamingServiceAndStates) {
  SimClock clock;
  EventBus bus(clock);
  CountingService svc(bus);
  try {
    svc.degrade("too early");
    FAIL() << "created -> degraded was allowed";
  } catch (const std::logic_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("'counter'"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("CREATED -> DEGRADED"));
  }
  ASSERT_TRUE(svc.start());
  EXPECT_THROW(svc.recover("not degraded"), std::logic_error);
  EXPECT_EQ(svc.state(), S::running);
}

TEST(Service, FailingStartFaultsAndReleasesThenRestartWorks) {
  SimClock clock(0);
  EventBus bus(clock);
  Watcher w(bus);
  CountingService svc(bus);
  svc.fail_start = true;
  EXPECT_FALSE(svc.start());
  EXPECT_EQ(svc.state(), S::faulted);
  EXPECT_EQ(svc.health(), HealthLevel::failing);
  EXPECT_THAT(svc.last_reason(), ::testing::HasSubstr("exchange unreachable"));
  EXPECT_EQ(svc.subscription_count(), 0u);
  bus.publish("x", OrderFilled{});
  EXPECT_EQ(svc.fills, 0);
  svc.fail_start = false;
  EXPECT_TRUE(svc.start());  // faulted -> starting -> running: a restart by self-healing
  bus.publish("x", OrderFilled{});
  EXPECT_EQ(svc.fills, 1);
  EXPECT_THAT(w.health, ElementsAre(HealthLevel::failing, HealthLevel::healthy));
}

TEST(Service, FailingPeriodicJobDegradesInsteadOfEscaping) {
  SimClock clock(0);
  EventBus bus(clock);
  CountingService svc(bus);
  ASSERT_TRUE(svc.start());
  svc.fail_tick = true;
  EXPECT_NO_THROW(clock.advance_by(60 * kNsPerSecond));
  EXPECT_EQ(svc.state(), S::degraded);
  EXPECT_THAT(svc.last_reason(), ::testing::HasSubstr("tick failed"));
}

TEST(Service, ModeOffIsNotStartedAndSwitchingOffStops) {
  SimClock clock;
  EventBus bus(clock);
  CountingService off(bus, SubsystemMode::off);
  EXPECT_FALSE(off.start());
  EXPECT_EQ(off.state(), S::created);
  CountingService on(bus, SubsystemMode::observe);
  std::vector<SubsystemMode> modes;
  auto s = bus.subscribe<ServiceStateChanged>("w", [&](const ServiceStateChanged& e) { modes.push_back(e.mode); });
  ASSERT_TRUE(on.start());
  on.set_mode(SubsystemMode::advisory, "stage raised");
  EXPECT_EQ(on.mode(), SubsystemMode::advisory);
  on.set_mode(SubsystemMode::off, "operator");
  EXPECT_EQ(on.state(), S::stopped);
  EXPECT_THAT(modes, ElementsAre(SubsystemMode::observe, SubsystemMode::observe, SubsystemMode::advisory, SubsystemMode::off));
}

}  // namespace service_test
}  // namespace qtos
