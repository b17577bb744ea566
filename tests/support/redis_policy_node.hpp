#pragma once
/// @file A node of a Redis deployment inside a test process: its own bus (owned by the test thread), a PolicyStore on
/// the shared Redis, the subscription that turns other nodes' changes into PolicyUpdated, and a record of those events.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/redis/redis_policy.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/clock/clock.hpp"

namespace qtos::test {

/// One in-process node (namespace `ns`, node name `name`).
struct RedisPolicyNode {
  RedisPolicyNode(const redis::RedisUrl& url, const std::string& ns, const std::string& name, redis::RedisOptions options = {})
      : bus(clock) {
    bus.bind_owner_thread();
    auto backend = std::make_unique<redis::RedisPolicyBackend>(url, ns, name, options);
    redis_backend = backend.get();
    store = std::make_unique<PolicyStore>(std::move(backend), clock, &bus);
    sub = bus.subscribe<PolicyUpdated>("watcher", [this](const PolicyUpdated& e) { events.push_back(e); });
    sync = std::make_unique<redis::RedisPolicySync>(url, ns, *store, *redis_backend, &bus, options);
  }
  /// Drains the bus until `pred` holds or `limit` passes.
  bool drain_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = std::chrono::seconds(8)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      bus.wait_and_drain(std::chrono::milliseconds(10));
    }
    return true;
  }
  SimClock clock{1'000};                          ///< the node's clock
  EventBus bus;                                   ///< the node's bus
  redis::RedisPolicyBackend* redis_backend = nullptr;  ///< the store's backend (the store owns it)
  std::unique_ptr<PolicyStore> store;             ///< the policy store on Redis
  std::vector<PolicyUpdated> events;              ///< every PolicyUpdated the node's bus delivered
  Subscription sub;                               ///< the recording subscription
  std::unique_ptr<redis::RedisPolicySync> sync;   ///< other nodes' changes -> this node
};

}  // namespace qtos::test
