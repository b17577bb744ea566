// Event bus: ordering, wildcard topics, RAII unsubscription, handler exceptions, re-entrant publish, the post queue
// and its full-queue policy, metrics.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/bus/event_bus.hpp"
#include "runtime/bus/owner_loop.hpp"
#include "runtime/clock/clock.hpp"

namespace qtos {
namespace bus_test {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

OrderSubmitted order(std::uint64_t id) { return OrderSubmitted{.order_id = id, .symbol = "BTCUSDT", .qty = 1.0}; }
MarketBarClosed bar(double close) { return MarketBarClosed{.symbol = "BTCUSDT", .close = close}; }

TEST(EventBus, DeliversToSubscribersInSubscriptionOrderWithStampedHeader) {
  SimClock clock(1'000);
  EventBus bus(clock);
  std::vector<std::string> calls;
  auto a = bus.subscribe<OrderSubmitted>("a", [&](const OrderSubmitted& e) { calls.push_back("a" + std::to_string(e.order_id)); });
  auto b = bus.subscribe<OrderSubmitted>("b", [&](const OrderSubmitted& e) { calls.push_back("b" + std::to_string(e.order_id)); });
  auto c = bus.subscribe<OrderFilled>("c", [&](const OrderFilled&) { calls.push_back("c"); });
  std::vector<EventHeader> headers;
  auto h = bus.subscribe<OrderSubmitted>("h", [&](const OrderSubmitted& e) { headers.push_back(e.header); });
  bus.publish("executor", order(1));
  clock.advance_to(2'000);
  bus.publish("executor", order(2));
  EXPECT_THAT(calls, ElementsAre("a1", "b1", "a2", "b2"));
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].id, 1u);
  EXPECT_EQ(headers[1].id, 2u);
  EXPECT_EQ(headers[0].ts, 1'000);
  EXPECT_EQ(headers[1].ts, 2'000);
  EXPECT_EQ(headers[0].source.view(), "executor");
}

TEST(EventBus, AllSubscribersSeeTheSameObjectNoCopies) {
  SimClock clock;
  EventBus bus(clock);
  std::vector<const void*> seen;
  auto a = bus.subscribe<OrderFilled>("a", [&](const OrderFilled& e) { seen.push_back(&e); });
  auto b = bus.subscribe<OrderFilled>("b", [&](const OrderFilled& e) { seen.push_back(&e); });
  auto w = bus.subscribe_topics("w", "orders.*", [&](const EventRef& e) { seen.push_back(e.get_if<OrderFilled>()); });
  bus.publish("exchange", OrderFilled{.order_id = 5});
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(seen[1], seen[2]);
}

TEST(EventBus, WildcardTopicsSelectEventTypes) {
  SimClock clock;
  EventBus bus(clock);
  std::vector<std::string> orders, promoted, all;
  auto o = bus.subscribe_topics("o", "orders.*", [&](const EventRef& e) { orders.emplace_back(e.topic()); });
  auto p = bus.subscribe_topics("p", "*.promoted", [&](const EventRef& e) { promoted.emplace_back(event_type_name(e.type())); });
  auto a = bus.subscribe_topics("a", "#", [&](const EventRef& e) { all.emplace_back(e.topic()); });
  bus.publish("x", order(1));
  bus.publish("x", OrderDenied{.reason = DenyReason::low_confidence});
  bus.publish("x", PositionOpened{});
  bus.publish("x", StrategyPromoted{.strategy = "s1"});
  bus.publish("x", ModelPromoted{.model = "m1"});
  bus.publish("x", OrderRejected{});
  EXPECT_THAT(orders, ElementsAre("orders.submitted", "orders.denied", "orders.rejected"));
  EXPECT_THAT(promoted, ElementsAre("StrategyPromoted", "ModelPromoted"));
  EXPECT_EQ(all.size(), 6u);
}

TEST(EventBus, EventRefVisitGivesTheConcreteType) {
  SimClock clock;
  EventBus bus(clock);
  double qty = 0;
  auto s = bus.subscribe_topics("v", "orders.filled", [&](const EventRef& e) {
    e.visit([&](const auto& ev) {
      if constexpr (std::is_same_v<std::decay_t<decltype(ev)>, OrderFilled>) qty = ev.qty;
    });
    EXPECT_EQ(e.get_if<OrderSubmitted>(), nullptr);
  });
  bus.publish("x", OrderFilled{.qty = 2.5});
  EXPECT_EQ(qty, 2.5);
}

TEST(EventBus, MalformedOrUnmatchedPatternsAreRefusedNamingThePattern) {
  SimClock clock;
  EventBus bus(clock);
  auto noop = [](const EventRef&) {};
  for (const char* bad : {"", "orders.", "ord*", "#.orders", "orders..filled"}) {
    try {
      auto s = bus.subscribe_topics("x", bad, noop);
      ADD_FAILURE() << "pattern '" << bad << "' was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr("'" + std::string(bad) + "'"));
    }
  }
  try {
    auto s = bus.subscribe_topics("x", "ordrs.*", noop);
    ADD_FAILURE() << "a pattern matching no topic was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("matches no topic"));
    EXPECT_THAT(e.what(), HasSubstr("orders.filled"));
  }
  EXPECT_THROW((void)bus.subscribe<OrderFilled>("", [](const OrderFilled&) {}), std::invalid_argument);
  EXPECT_THROW((void)bus.subscribe<OrderFilled>(std::string(40, 'n'), [](const OrderFilled&) {}), std::invalid_argument);
}

TEST(EventBus, TopicMatching) {
  EXPECT_TRUE(topic_matches("orders.*", "orders.filled"));
  EXPECT_FALSE(topic_matches("orders.*", "orders"));
  EXPECT_FALSE(topic_matches("orders.*", "positions.opened"));
  EXPECT_TRUE(topic_matches("#", "orders.filled"));
  EXPECT_TRUE(topic_matches("orders.#", "orders.filled"));
  EXPECT_TRUE(topic_matches("*.*", "market.regime"));
  EXPECT_FALSE(topic_matches("*", "market.regime"));
  EXPECT_TRUE(topic_matches("market.regime", "market.regime"));
  EXPECT_THROW(topic_matches("a.#.b", "a.x.b"), std::invalid_argument);
}

TEST(EventBus, SubscriptionHandleUnsubscribesWhenDestroyedOrReset) {
  SimClock clock;
  EventBus bus(clock);
  int calls = 0;
  {
    auto s = bus.subscribe<OrderFilled>("s", [&](const OrderFilled&) { ++calls; });
    EXPECT_TRUE(s.active());
    bus.publish("x", OrderFilled{});
  }
  bus.publish("x", OrderFilled{});
  EXPECT_EQ(calls, 1);
  auto s = bus.subscribe<OrderFilled>("s", [&](const OrderFilled&) { ++calls; });
  Subscription moved = std::move(s);
  EXPECT_FALSE(s.active());
  bus.publish("x", OrderFilled{});
  moved.reset();
  bus.publish("x", OrderFilled{});
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(bus.subscribers().empty());
}

TEST(EventBus, SubscriptionMayOutliveTheBus) {
  SimClock clock;
  Subscription s;
  {
    EventBus bus(clock);
    s = bus.subscribe<OrderFilled>("s", [](const OrderFilled&) {});
  }
  EXPECT_FALSE(s.active());
  s.reset();  // no crash, no effect
}

TEST(EventBus, UnsubscribeAndSubscribeDuringDispatch) {
  SimClock clock;
  EventBus bus(clock);
  std::vector<std::string> calls;
  Subscription second, late;
  auto first = bus.subscribe<OrderFilled>("first", [&](const OrderFilled& e) {
    calls.push_back("first" + std::to_string(e.order_id));
    if (e.order_id == 1) {
      second.reset();  // a later subscriber: it must not see this event any more
      late = bus.subscribe<OrderFilled>("late", [&](const OrderFilled& ev) { calls.push_back("late" + std::to_string(ev.order_id)); });
    }
  });
  second = bus.subscribe<OrderFilled>("second", [&](const OrderFilled& e) { calls.push_back("second" + std::to_string(e.order_id)); });
  Subscription self;
  self = bus.subscribe<OrderFilled>("self", [&](const OrderFilled& e) {
    calls.push_back("self" + std::to_string(e.order_id));
    self.reset();  // unsubscribing itself while running is safe
  });
  bus.publish("x", OrderFilled{.order_id = 1});
  bus.publish("x", OrderFilled{.order_id = 2});
  EXPECT_THAT(calls, ElementsAre("first1", "self1", "first2", "late2"));
}

TEST(EventBus, ThrowingHandlerIsIsolatedCountedAndReportedOncePerInterval) {
  SimClock clock(0);
  EventBus bus(clock, BusOptions{.health_interval = 10 * kNsPerSecond});
  std::vector<std::string> calls;
  std::vector<HealthStatusChanged> health;
  auto h = bus.subscribe<HealthStatusChanged>("monitor", [&](const HealthStatusChanged& e) { health.push_back(e); });
  auto a = bus.subscribe<OrderFilled>("before", [&](const OrderFilled&) { calls.push_back("before"); });
  auto bad = bus.subscribe<OrderFilled>("broken", [&](const OrderFilled&) -> void { throw std::runtime_error("boom"); });
  auto c = bus.subscribe<OrderFilled>("after", [&](const OrderFilled&) { calls.push_back("after"); });
  for (int i = 0; i < 100; ++i) bus.publish("x", OrderFilled{});
  EXPECT_EQ(calls.size(), 200u);
  ASSERT_EQ(health.size(), 1u);  // 100 failures, one report in the interval
  EXPECT_EQ(health[0].component.view(), "broken");
  EXPECT_EQ(health[0].current, HealthLevel::degraded);
  EXPECT_EQ(health[0].error_count, 1u);
  EXPECT_THAT(health[0].detail, HasSubstr("boom"));
  EXPECT_EQ(health[0].header.source.view(), "bus");
  clock.advance_by(10 * kNsPerSecond);
  bus.publish("x", OrderFilled{});
  ASSERT_EQ(health.size(), 2u);
  EXPECT_EQ(health[1].error_count, 101u);
  const BusMetrics m = bus.metrics();
  EXPECT_EQ(m.handler_errors, 101u);
  for (const auto& s : bus.subscribers()) {
    if (s.name == "broken") {
      EXPECT_EQ(s.errors, 101u);
      EXPECT_THAT(s.last_error, HasSubstr("OrderFilled: boom"));
    } else {
      EXPECT_EQ(s.errors, 0u) << s.name;
    }
  }
}

TEST(EventBus, FailingHealthHandlerCannotFloodTheBus) {
  SimClock clock(0);
  EventBus bus(clock);
  int health_calls = 0;
  auto h = bus.subscribe<HealthStatusChanged>("fragile", [&](const HealthStatusChanged&) {
    ++health_calls;
    throw std::runtime_error("health handler broken");
  });
  auto bad = bus.subscribe<OrderFilled>("broken", [](const OrderFilled&) -> void { throw std::logic_error("x"); });
  for (int i = 0; i < 50; ++i) bus.publish("x", OrderFilled{});
  // One report for "broken", which breaks "fragile", which reports itself once; nothing more within the interval.
  EXPECT_EQ(health_calls, 2);
  EXPECT_EQ(bus.metrics().handler_errors, 52u);
}

TEST(EventBus, ReentrantPublishIsBreadthFirstInPublishOrder) {
  SimClock clock;
  EventBus bus(clock);
  std::vector<std::string> log;
  auto a = bus.subscribe_topics("a", "#", [&](const EventRef& e) {
    log.push_back("a:" + std::string(event_type_name(e.type())) + "#" + std::to_string(e.header().id));
  });
  auto trigger = bus.subscribe<SignalGenerated>("trigger", [&](const SignalGenerated&) {
    bus.publish("risk", OrderSubmitted{.order_id = 1});
    bus.publish("risk", OrderDenied{.order_id = 2});
    log.push_back("trigger-returns");
  });
  auto nested = bus.subscribe<OrderSubmitted>("nested", [&](const OrderSubmitted&) {
    bus.publish("exchange", OrderFilled{.order_id = 1});
  });
  auto b = bus.subscribe_topics("b", "#", [&](const EventRef& e) {
    log.push_back("b:" + std::string(event_type_name(e.type())) + "#" + std::to_string(e.header().id));
  });
  bus.publish("strategy", SignalGenerated{});
  EXPECT_THAT(log, ElementsAre("a:SignalGenerated#1", "trigger-returns", "b:SignalGenerated#1",  //
                               "a:OrderSubmitted#2", "b:OrderSubmitted#2",                        //
                               "a:OrderDenied#3", "b:OrderDenied#3",                              //
                               "a:OrderFilled#4", "b:OrderFilled#4"));
}

TEST(EventBus, PublishFromAnotherThreadIsMisuse) {
  SimClock clock;
  EventBus bus(clock);
  std::string error;
  std::thread t([&] {
    try {
      bus.publish("x", OrderFilled{});
    } catch (const std::logic_error& e) {
      error = e.what();
    }
  });
  t.join();
  EXPECT_THAT(error, HasSubstr("post()"));
}

TEST(EventBus, PostedEventsArriveInOrderFromEachProducer) {
  SimClock clock;
  EventBus bus(clock, BusOptions{.queue_capacity = 1024, .dispatch_sample_every = 1});
  constexpr int kProducers = 3, kEach = 2000;
  std::vector<std::vector<std::uint64_t>> got(kProducers);
  std::uint64_t last_id = 0;
  bool ids_increase = true;
  auto s = bus.subscribe<OrderSubmitted>("sink", [&](const OrderSubmitted& e) {
    got[static_cast<std::size_t>(e.qty)].push_back(e.order_id);
    ids_increase = ids_increase && e.header.id > last_id;
    last_id = e.header.id;
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&bus, p] {
      for (int i = 0; i < kEach; ++i)
        bus.post("producer", OrderSubmitted{.order_id = static_cast<std::uint64_t>(i), .qty = static_cast<double>(p)});
    });
  std::size_t delivered = 0;
  while (delivered < kProducers * kEach) delivered += bus.wait_and_drain(std::chrono::milliseconds(50));
  for (auto& t : producers) t.join();
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_EQ(got[p].size(), static_cast<std::size_t>(kEach));
    for (int i = 0; i < kEach; ++i) ASSERT_EQ(got[p][i], static_cast<std::uint64_t>(i));
  }
  EXPECT_TRUE(ids_increase);
  const BusMetrics m = bus.metrics();
  EXPECT_EQ(m.posted, static_cast<std::uint64_t>(kProducers * kEach));
  EXPECT_EQ(m.post_to_handler_ns.count(), static_cast<std::uint64_t>(kProducers * kEach));
  EXPECT_EQ(m.dropped, 0u);
}

TEST(EventBus, FullQueueDropsAndCountsMarketData) {
  SimClock clock;
  EventBus bus(clock, BusOptions{.queue_capacity = 4});
  std::vector<double> closes;
  auto s = bus.subscribe<MarketBarClosed>("sink", [&](const MarketBarClosed& e) { closes.push_back(e.close); });
  std::vector<PostOutcome> outcomes;
  std::thread producer([&] {
    for (int i = 0; i < 10; ++i) outcomes.push_back(bus.post("feed", bar(i)));
  });
  producer.join();
  const BusMetrics before = bus.metrics();
  EXPECT_EQ(before.queue_depth, 4u);
  EXPECT_EQ(before.dropped, 6u);
  EXPECT_EQ(before.dropped_by_type[static_cast<std::size_t>(EventType::market_bar_closed)], 6u);
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), PostOutcome::dropped), 6);
  EXPECT_EQ(bus.drain(), 4u);
  EXPECT_THAT(closes, ElementsAre(0, 1, 2, 3));  // the oldest are kept; newer bars are dropped and counted
}

TEST(EventBus, FullQueueBlocksOrdersUntilTheOwnerDrains) {
  SimClock clock;
  EventBus bus(clock, BusOptions{.queue_capacity = 4});
  std::vector<std::uint64_t> ids;
  auto s = bus.subscribe<OrderSubmitted>("sink", [&](const OrderSubmitted& e) { ids.push_back(e.order_id); });
  std::atomic<int> posted{0};
  std::thread producer([&] {
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(bus.post("executor", order(static_cast<std::uint64_t>(i))), PostOutcome::queued);
      posted.fetch_add(1);
    }
  });
  // The producer fills the queue and must then wait: it cannot post the fifth while nobody drains.
  while (posted.load() < 4) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(posted.load(), 4);
  EXPECT_EQ(bus.metrics().queue_depth, 4u);
  while (ids.size() < 10) bus.wait_and_drain(std::chrono::milliseconds(10));
  producer.join();
  std::vector<std::uint64_t> expected{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(ids, expected);
  const BusMetrics m = bus.metrics();
  EXPECT_EQ(m.dropped, 0u);
  EXPECT_GE(m.blocked_posts, 1u);
}

TEST(EventBus, OwnerPostsNeverBlockAndArriveAtTheNextDrain) {
  SimClock clock;
  EventBus bus(clock, BusOptions{.queue_capacity = 2});
  std::vector<std::uint64_t> ids;
  auto s = bus.subscribe<OrderSubmitted>("sink", [&](const OrderSubmitted& e) { ids.push_back(e.order_id); });
  for (int i = 0; i < 10; ++i) bus.post("self", order(static_cast<std::uint64_t>(i)));
  EXPECT_TRUE(ids.empty());
  EXPECT_EQ(bus.drain(), 10u);
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(ids.back(), 9u);
}

TEST(EventBus, DrainFromInsideAHandlerIsRefused) {
  SimClock clock;
  EventBus bus(clock);
  auto s = bus.subscribe<OrderFilled>("drainer", [&](const OrderFilled&) { bus.drain(); });
  bus.publish("x", OrderFilled{});
  const auto subs = bus.subscribers();
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].errors, 1u);
  EXPECT_THAT(subs[0].last_error, HasSubstr("drain"));
}

TEST(EventBus, MetricsCountPublishedAndDelivered) {
  SimClock clock;
  EventBus bus(clock, BusOptions{.dispatch_sample_every = 1});
  auto a = bus.subscribe<OrderFilled>("a", [](const OrderFilled&) {});
  auto b = bus.subscribe<OrderFilled>("b", [](const OrderFilled&) {});
  for (int i = 0; i < 5; ++i) bus.publish("x", OrderFilled{});
  bus.publish("x", PositionOpened{});  // nobody listens: published, not delivered
  const BusMetrics m = bus.metrics();
  EXPECT_EQ(m.published, 6u);
  EXPECT_EQ(m.delivered, 10u);
  EXPECT_EQ(m.dispatch_ns.count(), 6u);
  EXPECT_EQ(m.queue_capacity, 65536u);
  EXPECT_THROW({ EventBus bad(clock, BusOptions{.queue_capacity = 3}); }, std::invalid_argument);
}

TEST(LatencyHistogram, PercentilesAreWithinOneBucket) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 10000; ++v) h.record(v);
  EXPECT_EQ(h.count(), 10000u);
  EXPECT_EQ(h.max(), 10000u);
  const auto p50 = h.percentile(0.5), p99 = h.percentile(0.99);
  EXPECT_GE(p50, 5000u);
  EXPECT_LE(p50, 5000u * 9 / 8 + 1);
  EXPECT_GE(p99, 9900u);
  EXPECT_LE(p99, 10000u);
  EXPECT_EQ(h.percentile(0.0), 1u);
}

}  // namespace bus_test
}  // namespace qtos

namespace qtos {
namespace bus_test {

TEST(OwnerLoop, DeliversPostsAndFiresTimersOnTheOwnerThread) {
  LiveClock clock;
  EventBus bus(clock);
  std::atomic<int> fills{0}, ticks{0};
  std::atomic<bool> wrong_thread{false};
  std::thread::id owner;
  auto s = bus.subscribe<OrderFilled>("sink", [&](const OrderFilled&) {
    wrong_thread = wrong_thread || std::this_thread::get_id() != owner;
    fills.fetch_add(1);
  });
  auto t = clock.schedule_every(kNsPerMillisecond, [&](TimeNs) { ticks.fetch_add(1); });
  std::atomic<bool> stop{false};
  std::atomic<bool> started{false};
  std::uint64_t delivered = 0;
  std::thread loop([&] {
    owner = std::this_thread::get_id();
    started = true;
    delivered = bus_run(bus, clock, stop, std::chrono::milliseconds(2));
  });
  while (!started) std::this_thread::yield();
  for (int i = 0; i < 100; ++i) bus.post("exchange", OrderFilled{.order_id = static_cast<std::uint64_t>(i)});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((fills.load() < 100 || ticks.load() < 3) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop = true;
  loop.join();
  bus.bind_owner_thread();
  EXPECT_EQ(fills.load(), 100);
  EXPECT_GE(ticks.load(), 3);
  EXPECT_EQ(delivered, 100u);
  EXPECT_FALSE(wrong_thread.load());
}

}  // namespace bus_test
}  // namespace qtos
