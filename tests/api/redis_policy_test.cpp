// The policy store on Redis, with a real redis-server per test (loopback, a free port, a temporary directory): two
// nodes racing the same version (one wins, one gets a conflict, the history stream records both), PolicyUpdated
// reaching the other node through the subscription, and Redis killed and restarted under two nodes (both degrade,
// keep their policy and refuse changes, then recover with nothing lost).
#include <atomic>
#include <barrier>
#include <chrono>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/redis/redis_policy.hpp"
#include "api/redis/scale_out_node.hpp"
#include "tests/support/redis_policy_node.hpp"
#include "tests/support/redis_server.hpp"

namespace qtos {
namespace redis_policy_test {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

/// Short timeouts so an outage is seen in tens of milliseconds, not seconds.
redis::RedisOptions fast_options() {
  return redis::RedisOptions{.connect_timeout = 200ms, .command_timeout = 1000ms, .backoff_initial = 20ms, .backoff_max = 100ms};
}

/// One node on namespace "t" with the short timeouts.
struct Node : test::RedisPolicyNode {
  Node(const redis::RedisUrl& url, const std::string& name) : RedisPolicyNode(url, "t", name, fast_options()) {}
};

TEST(RedisPolicy, EncodesEveryFieldAndRejectsGarbageNamingTheProblem) {
  Policy p;
  p.risk_mode = RiskMode::defensive;
  p.allowed_strategies = {"a", "b=c"};
  p.blocked_strategies = {"x\ny"};
  p.min_confidence = 0.123456789012345;
  p.max_open_positions = 7;
  p.extra = {{"k", "v=1"}};
  p.version = 9;
  p.updated_at = 123;
  p.updated_by = "msc";
  p.reason = "why";
  auto back = redis::policy_decode(redis::policy_encode(p));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back.value(), p);
  auto bad = redis::policy_decode(R"({"risk_mode":"NORMAL"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::corrupt);
  EXPECT_FALSE(redis::policy_decode("not json").ok());
}

TEST(RedisPolicy, UrlsAreParsedAndBadOnesNamed) {
  const auto u = redis::redis_url_parse("redis://:secret@10.0.0.5:7001/3");
  EXPECT_EQ(u.host, "10.0.0.5");
  EXPECT_EQ(u.port, 7001);
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.password, "secret");
  EXPECT_EQ(u.text(), "redis://:***@10.0.0.5:7001/3");
  EXPECT_EQ(redis::redis_url_parse("redis://[::1]").port, 6379);
  try {
    redis::redis_url_parse("http://host", "QT_REDIS_URL");
    FAIL() << "an http URL was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("QT_REDIS_URL 'http://host'"));
  }
  EXPECT_THROW(redis::redis_url_parse("redis://host:99999"), std::invalid_argument);
  EXPECT_THROW(redis::redis_url_parse("redis://:pw@"), std::invalid_argument);
  try {
    redis::redis_url_parse("redis://:hunter2@host:0");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("hunter2")));  // the password never reaches a message
  }
}

TEST(RedisPolicy, TwoNodesRaceOneWinsOneConflictsAndTheHistoryHasBoth) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  Node a(server.url(), "node-a");
  Node b(server.url(), "node-b");
  ASSERT_EQ(a.store->version(), 1u);  // a seeded version 1; b loaded it
  ASSERT_EQ(b.store->version(), 1u);
  ASSERT_TRUE(a.drain_until([&] { return a.sync->connected() && b.sync->connected(); }));

  // Both nodes try to store version 2 at the same moment.
  std::barrier start(2);
  Result<std::shared_ptr<const Policy>> ra = Error{ErrorCode::storage, "not run"}, rb = Error{ErrorCode::storage, "not run"};
  std::thread ta([&] {
    start.arrive_and_wait();
    ra = a.store->update(1, [](Policy& p) { p.risk_mode = RiskMode::defensive; }, "drawdown", "msc-a");
  });
  std::thread tb([&] {
    start.arrive_and_wait();
    rb = b.store->update(1, [](Policy& p) { p.max_leverage = 2; }, "volatility", "msc-b");
  });
  ta.join();
  tb.join();
  ASSERT_NE(ra.ok(), rb.ok()) << "exactly one writer must win";
  Node& winner = ra.ok() ? a : b;
  Node& loser = ra.ok() ? b : a;
  const auto& lost = ra.ok() ? rb : ra;
  EXPECT_EQ(lost.error().code, ErrorCode::conflict);
  // Usually both attempts reach Redis and its script refuses the second. On a loaded machine the winner's version can
  // reach the loser's store through the subscription before the loser reads its current version: the loser is then
  // refused locally, before any write, and Redis sees one attempt.
  const bool refused_locally = lost.error().message.find("but the current version is 2") != std::string::npos;
  if (!refused_locally) {
    EXPECT_THAT(lost.error().message, HasSubstr("cannot follow stored version 2"));
  }

  // The history stream holds every attempt that reached Redis: version 2 accepted from the winner, refused for the loser.
  auto attempts = a.redis_backend->attempts();
  ASSERT_TRUE(attempts.ok()) << attempts.error().message;
  ASSERT_EQ(attempts.value().size(), refused_locally ? 2u : 3u);  // the seed, the winner, the loser
  int accepted2 = 0, conflict2 = 0;
  for (const auto& at : attempts.value()) {
    if (at.version != 2) continue;
    if (at.outcome == "accepted") {
      ++accepted2;
      EXPECT_EQ(at.node, winner.redis_backend == a.redis_backend ? "node-a" : "node-b");
    }
    if (at.outcome == "conflict") {
      ++conflict2;
      EXPECT_EQ(at.stored, 2u);
      EXPECT_EQ(at.node, loser.redis_backend == a.redis_backend ? "node-a" : "node-b");
    }
  }
  EXPECT_EQ(accepted2, 1);
  EXPECT_EQ(conflict2, refused_locally ? 0 : 1);
  auto hist = b.store->history();
  ASSERT_TRUE(hist.ok());
  ASSERT_EQ(hist.value().size(), 2u);
  EXPECT_EQ(hist.value()[1].updated_by, ra.ok() ? "msc-a" : "msc-b");

  // Every node hears of version 2 once: the winner from its own store, the loser through the subscription.
  ASSERT_TRUE(winner.drain_until([&] { return !winner.events.empty(); }));
  ASSERT_TRUE(loser.drain_until([&] { return !loser.events.empty(); }));
  EXPECT_EQ(loser.store->version(), 2u);
  EXPECT_EQ(loser.events.back().version, 2u);
  EXPECT_EQ(loser.events.back().previous_version, 1u);

  // The loser re-reads and retries: version 3 reaches the winner through the subscription, once.
  auto retry = loser.store->update(2, [](Policy& p) { p.max_open_positions = 3; }, "retry", "msc-retry");
  ASSERT_TRUE(retry.ok()) << retry.error().message;
  ASSERT_TRUE(winner.drain_until([&] { return winner.events.size() >= 2; }));
  EXPECT_EQ(winner.store->version(), 3u);
  EXPECT_EQ(winner.events.back().version, 3u);
  // One event per install: a node whose subscription thread reads version 2's notice only once version 3 is stored
  // (a loaded machine) announces 1 -> 3 at once, with the fields of both changes; otherwise 2 -> 3.
  const PolicyUpdated& v3 = winner.events.back();
  const auto from = winner.store->history(v3.previous_version, 1);
  ASSERT_TRUE(from.ok() && from.value().size() == 1u);
  std::string expected;
  for (const std::string& f : policy_changed_fields(from.value().front(), *winner.store->current()))
    expected += (expected.empty() ? "" : ",") + f;
  EXPECT_EQ(v3.changed_fields, expected) << "announced from version " << v3.previous_version;
  EXPECT_THAT(v3.changed_fields, HasSubstr("max_open_positions"));
  EXPECT_EQ(winner.events.back().header.source.view(), "policy-redis");
  winner.bus.wait_and_drain(100ms);
  loser.bus.wait_and_drain(100ms);
  EXPECT_EQ(winner.events.size(), 2u);  // no version announced twice on a node
  EXPECT_EQ(loser.events.size(), 2u);
}

/// A Redis backend whose seeding write waits until both nodes have read the empty store: the cold-start race made
/// certain rather than left to the scheduler.
class RacingBackend final : public PolicyBackend {
 public:
  RacingBackend(std::unique_ptr<redis::RedisPolicyBackend> inner, std::barrier<>& both_loaded) : inner_(std::move(inner)), both_loaded_(both_loaded) {}
  std::string describe() const override { return inner_->describe(); }
  Result<std::optional<Policy>> load_latest() override { return inner_->load_latest(); }
  Result<Unit> append(const Policy& next) override {
    if (!seeded_) {
      seeded_ = true;
      both_loaded_.arrive_and_wait();
    }
    return inner_->append(next);
  }
  Result<std::vector<Policy>> history(std::uint64_t from, std::size_t limit) override { return inner_->history(from, limit); }
  redis::RedisPolicyBackend& inner() { return *inner_; }

 private:
  std::unique_ptr<redis::RedisPolicyBackend> inner_;
  std::barrier<>& both_loaded_;
  bool seeded_ = false;
};

TEST(RedisPolicy, TwoNodesSeedingAnEmptyRedisAtOnceBothStartOnTheWinnersPolicy) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  std::barrier<> both_loaded(2);
  SimClock clock{1'000};
  std::unique_ptr<PolicyStore> stores[2];
  RacingBackend* backends[2] = {nullptr, nullptr};
  std::string errors[2];
  std::thread nodes[2];
  for (int i = 0; i < 2; ++i)
    nodes[i] = std::thread([&, i] {
      auto backend = std::make_unique<RacingBackend>(
          std::make_unique<redis::RedisPolicyBackend>(server.url(), "t", i == 0 ? "node-a" : "node-b", fast_options()), both_loaded);
      backends[i] = backend.get();
      Policy initial;
      initial.max_leverage = i == 0 ? 2 : 3;  // each node would seed its own policy
      try {
        stores[i] = std::make_unique<PolicyStore>(std::move(backend), clock, nullptr, initial);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : nodes) t.join();
  ASSERT_TRUE(stores[0] && stores[1]) << "a node refused to start: " << errors[0] << errors[1];
  // Both run on version 1, and on the same policy: the winner's.
  EXPECT_EQ(stores[0]->version(), 1u);
  EXPECT_EQ(stores[1]->version(), 1u);
  EXPECT_EQ(*stores[0]->current(), *stores[1]->current());
  auto attempts = backends[0]->inner().attempts();
  ASSERT_TRUE(attempts.ok()) << attempts.error().message;
  ASSERT_EQ(attempts.value().size(), 2u);  // both seeds reached the compare-and-set
  const auto& won = attempts.value()[0].outcome == "accepted" ? attempts.value()[0] : attempts.value()[1];
  const auto& lost = attempts.value()[0].outcome == "accepted" ? attempts.value()[1] : attempts.value()[0];
  EXPECT_EQ(won.outcome, "accepted");
  EXPECT_EQ(lost.outcome, "conflict");
  EXPECT_EQ(won.version, 1u);
  EXPECT_EQ(lost.version, 1u);
  EXPECT_EQ(lost.stored, 1u);
  EXPECT_NE(won.node, lost.node);
  EXPECT_EQ(stores[0]->current()->max_leverage, won.node == "node-a" ? 2.0 : 3.0);
  auto hist = stores[1]->history();
  ASSERT_TRUE(hist.ok());
  EXPECT_EQ(hist.value().size(), 1u);
  // The loser writes on as any node does.
  auto next = stores[1]->update(1, [](Policy& p) { p.max_open_positions = 4; }, "after the race", "ops");
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next.value()->version, 2u);
}

TEST(RedisPolicy, RedisRestartDegradesNodesThenTheyRecoverWithNothingLost) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  Node a(server.url(), "node-a");
  Node b(server.url(), "node-b");
  ASSERT_TRUE(a.drain_until([&] { return a.sync->connected() && b.sync->connected(); }));
  ASSERT_TRUE(a.store->update(1, [](Policy& p) { p.max_leverage = 2; }, "before the outage", "ops").ok());
  ASSERT_TRUE(b.drain_until([&] { return b.store->version() == 2u; }));

  server.kill();  // a crash: SIGKILL
  ASSERT_TRUE(a.drain_until([&] { return !a.sync->connected() && !b.sync->connected(); }));
  const auto health = a.sync->health();
  EXPECT_EQ(health.state, "degraded");
  EXPECT_GT(health.degraded_since_ms, 0);
  EXPECT_FALSE(health.error.empty());
  EXPECT_EQ(redis::redis_node_health_json(health).as_object().at("redis").as_string(), "degraded");
  // Each node keeps its last policy and refuses changes rather than diverging.
  EXPECT_EQ(a.store->current()->max_leverage, 2.0);
  EXPECT_EQ(b.store->current()->max_leverage, 2.0);
  auto refused = b.store->update(2, [](Policy& p) { p.max_leverage = 1; }, "during the outage", "ops");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::storage);
  EXPECT_EQ(b.store->version(), 2u);

  ASSERT_TRUE(server.start());  // same port, same append-only file
  ASSERT_TRUE(a.drain_until([&] { return a.sync->connected() && b.sync->connected(); }));
  EXPECT_EQ(a.sync->health().state, "ok");
  EXPECT_GE(a.sync->health().reconnects, 1u);
  auto after = b.store->update(2, [](Policy& p) { p.max_leverage = 1.5; }, "after the outage", "ops");
  ASSERT_TRUE(after.ok()) << after.error().message;
  ASSERT_TRUE(a.drain_until([&] { return a.store->version() == 3u; }));
  auto hist = a.store->history();
  ASSERT_TRUE(hist.ok());
  ASSERT_EQ(hist.value().size(), 3u);  // nothing lost across the crash
  EXPECT_EQ(hist.value()[1].reason, "before the outage");
  EXPECT_EQ(hist.value()[2].reason, "after the outage");
  EXPECT_EQ(a.store->current()->max_leverage, 1.5);
}

TEST(RedisPolicy, AScaleOutNodeShowsItsHealthHeartbeatAndMirroredPolicyEvents) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  SimClock clock(1'000);
  EventBus bus(clock);
  bus.bind_owner_thread();
  redis::ScaleOutOptions o;
  o.url = server.url();
  o.node = "gpu-server";
  o.queue.ns = "t";
  o.queue.heartbeat_every = 50ms;
  o.queue.redis = fast_options();
  redis::RedisPolicyBackend* backend = nullptr;
  PolicyStore store(redis::scale_out_policy_backend(o, backend), clock, &bus);
  ASSERT_NE(backend, nullptr);
  {
    redis::ScaleOutNode node(o, store, *backend, bus);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (node.degraded() && std::chrono::steady_clock::now() < deadline) bus.wait_and_drain(10ms);
    ASSERT_FALSE(node.degraded());
    ASSERT_TRUE(store.update(1, [](Policy& p) { p.max_leverage = 2; }, "test", "ops").ok());
    // The bus thread publishes; the bridge mirrors it.
    while (node.health_json().at("event_bridge").at("mirrored").as_uint64() < 1 && std::chrono::steady_clock::now() < deadline)
      bus.wait_and_drain(10ms);
    const auto h = node.health_json();
    EXPECT_EQ(h.at("redis").as_string(), "ok");
    EXPECT_EQ(h.at("node").as_string(), "gpu-server");
    EXPECT_EQ(h.at("policy_version").as_uint64(), 2u);
    EXPECT_EQ(h.at("event_bridge").at("mirrored").as_uint64(), 1u);
    boost::json::value hb;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = node.heartbeats();
      ASSERT_TRUE(r.ok());
      hb = r.value();
      // The first heartbeat may predate the subscription ("degraded"); the next one says "ok".
      if (!hb.as_array().empty() && hb.as_array()[0].at("state").as_string() == "ok") break;
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(hb.as_array().size(), 1u);
    EXPECT_EQ(hb.as_array()[0].at("role").as_string(), "node");
    EXPECT_EQ(hb.as_array()[0].at("state").as_string(), "ok");
  }
  redis::RedisClient c(server.url());
  auto list = redis::heartbeats_list(c, redis::JobKeys::of("t"), 50ms);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list.value()[0].state, "stopped");
}

}  // namespace redis_policy_test
}  // namespace qtos
