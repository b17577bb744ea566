// The event bridge with a real redis-server: selected topics mirrored in order with stream ids, a reader resuming
// from an id, a write that reached Redis twice applied once, and with Redis away the bus thread never waits: the
// bounded queue drops and counts, and what it held is written once Redis is back.
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "api/redis/redis_event_bridge.hpp"
#include "runtime/bus/event_log.hpp"
#include "tests/support/redis_server.hpp"

namespace qtos {
namespace redis_events_test {

using namespace std::chrono_literals;

redis::RedisOptions fast() {
  return redis::RedisOptions{.connect_timeout = 200ms, .command_timeout = 1000ms, .backoff_initial = 10ms, .backoff_max = 50ms};
}

redis::EventBridgeOptions bridge_options(std::size_t capacity = 1024) {
  redis::EventBridgeOptions o;
  o.ns = "t";
  o.node = "node-a";
  o.queue_capacity = capacity;
  o.redis = fast();
  return o;
}

PolicyUpdated policy_event(std::uint64_t v) {
  return PolicyUpdated{.version = v, .previous_version = v - 1, .risk_mode = RiskMode::defensive, .changed_fields = "risk_mode",
                       .updated_by = "msc", .reason = "r" + std::to_string(v)};
}

std::vector<redis::MirroredEvent> read_all(redis::RedisEventReader& reader) {
  std::vector<redis::MirroredEvent> out;
  for (int i = 0; i < 50; ++i) {
    auto n = reader.poll(100, 20ms, [&](const redis::MirroredEvent& e) { out.push_back(e); });
    if (!n.ok() || n.value() == 0) break;
  }
  return out;
}

TEST(RedisEvents, SelectedTopicsAreMirroredInOrderAndAReaderResumesFromAnId) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  SimClock clock(1'000);
  EventBus bus(clock);
  bus.bind_owner_thread();
  redis::RedisEventBridge bridge(bus, server.url(), bridge_options());
  for (std::uint64_t v = 2; v <= 6; ++v) {
    bus.publish(SourceName("policy-store"), policy_event(v));
    bus.publish(SourceName("feed"), MarketBarClosed{});  // market data is not a mirrored topic
  }
  ASSERT_TRUE(bridge.flush(5s));
  EXPECT_EQ(bridge.stats().mirrored, 5u);

  redis::RedisEventReader reader(server.url(), "t", "node-b", "0-0", fast());
  auto first = reader.poll(2, 10ms, [](const redis::MirroredEvent&) {});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first.value(), 2u);
  const std::string resume_at = reader.last_id();
  // A restarted reader resumes after the stored id: the rest, in order, each once.
  redis::RedisEventReader resumed(server.url(), "t", "node-b", resume_at, fast());
  const auto rest = read_all(resumed);
  ASSERT_EQ(rest.size(), 3u);
  for (std::size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].topic, "policy.updated");
    EXPECT_EQ(rest[i].node, "node-a");
    const auto* p = std::get_if<PolicyUpdated>(&rest[i].event);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->version, 4 + i);
    EXPECT_EQ(p->header.source.view(), "policy-store");
    if (i > 0) {
      EXPECT_LT(rest[i - 1].id, rest[i].id);
    }
  }
  // A node passes over its own events.
  redis::RedisEventReader own(server.url(), "t", "node-a", "0-0", fast());
  EXPECT_TRUE(read_all(own).empty());
}

TEST(RedisEvents, AWriteThatReachedRedisTwiceIsAppliedOnce) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  redis::RedisClient c(server.url());
  const AnyEvent ev{policy_event(7)};
  const std::string body = event_encode(ev);
  // A retried XADD whose first reply was lost leaves the same (node, boot, event id) twice in the stream.
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(c.command({"XADD", "t:events", "*", "node", "node-a", "boot", "1", "event_id", "42", "topic", "policy.updated", "body", body}).ok());
  ASSERT_TRUE(c.command({"XADD", "t:events", "*", "node", "node-a", "boot", "1", "event_id", "43", "topic", "policy.updated", "body", body}).ok());
  redis::RedisEventReader reader(server.url(), "t", "node-b", "0-0", fast());
  EXPECT_EQ(read_all(reader).size(), 2u);
  ASSERT_TRUE(c.command({"XADD", "t:events", "*", "node", "node-a", "boot", "1", "event_id", "44", "topic", "policy.updated", "body", "garbage"}).ok());
  auto bad = reader.poll(10, 10ms, [](const redis::MirroredEvent&) {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::corrupt);
}

TEST(RedisEvents, WithRedisAwayTheBusNeverWaitsTheQueueDropsAndCountsThenDrainsWhenBack) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  SimClock clock(1'000);
  EventBus bus(clock);
  bus.bind_owner_thread();
  redis::RedisEventBridge bridge(bus, server.url(), bridge_options(16));
  server.kill();
  constexpr std::uint64_t kEvents = 500;
  for (std::uint64_t v = 2; v < 2 + kEvents; ++v) bus.publish(SourceName("policy-store"), policy_event(v));
  // Every publish returned (this line is reached), the queue held at most 16 (+1 in the writer's hand), the rest were
  // dropped and counted.
  auto s = bridge.stats();
  EXPECT_EQ(s.enqueued + s.dropped, kEvents);
  EXPECT_GE(s.dropped, kEvents - 17);
  EXPECT_EQ(s.mirrored, 0u);
  ASSERT_TRUE(server.start());
  ASSERT_TRUE(bridge.flush(5s));
  s = bridge.stats();
  EXPECT_EQ(s.mirrored, s.enqueued);
  EXPECT_GT(s.retries, 0u);
  redis::RedisEventReader reader(server.url(), "t", "node-b", "0-0", fast());
  EXPECT_EQ(read_all(reader).size(), s.mirrored);
}

}  // namespace redis_events_test
}  // namespace qtos
