#pragma once
/// @file The policy store on Redis (docs/SCALE_OUT.md): the same guarantees as the SQLite backend for several nodes.
/// A server-side Lua script does the compare-and-set on the version; every attempt (accepted or conflict) is
/// appended to a history stream; an accepted change is published on a channel that RedisPolicySync turns into a
/// PolicyUpdated on every other node's bus. While Redis is unreachable a node keeps its last policy (PolicyStore's
/// cache), reports itself degraded, and its updates fail with "storage" instead of diverging.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/value.hpp>

#include "api/redis/redis_client.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"

namespace qtos::redis {

/// The policy as one JSON object (every field, provenance included).
std::string policy_encode(const Policy& p);
/// Parses policy_encode's text; an error (code "corrupt") names the field that is missing or malformed.
Result<Policy> policy_decode(std::string_view text);

/// One entry of the history stream: an attempt to store a version and what came of it.
struct PolicyAttempt {
  std::string id;              ///< stream entry id
  std::string outcome;         ///< "accepted" or "conflict"
  std::uint64_t version = 0;   ///< the version the writer tried to store
  std::uint64_t stored = 0;    ///< the newest stored version when it tried
  std::string by;              ///< the writer (updated_by)
  std::string node;            ///< the writer's node name
};

/// Key names under one namespace ("qtos" by default; tests use their own).
struct PolicyKeys {
  std::string version;  ///< string: the newest stored version
  std::string latest;   ///< string: the newest policy (policy_encode)
  std::string history;  ///< stream: every attempt, the policy of each accepted one
  std::string channel;  ///< pub/sub channel: the version of each accepted change
  /// The keys of namespace `ns`.
  static PolicyKeys of(const std::string& ns);
};

/// The policy backend on Redis. Thread-safe.
class RedisPolicyBackend final : public PolicyBackend {
 public:
  /// Talks to `url` under namespace `ns`; `node` names this node in the history. Connects lazily.
  RedisPolicyBackend(RedisUrl url, std::string ns, std::string node, RedisOptions options = {});
  /// "redis:<url> (<ns>)".
  std::string describe() const override;
  /// The newest policy; "storage" while Redis is unreachable.
  Result<std::optional<Policy>> load_latest() override;
  /// The compare-and-set script: stores `next` iff the stored version is next.version - 1, records the attempt
  /// either way, and publishes the new version. "conflict" names both versions.
  Result<Unit> append(const Policy& next) override;
  /// Accepted policies with version >= from_version, oldest first, read from the history stream.
  Result<std::vector<Policy>> history(std::uint64_t from_version, std::size_t limit) override;
  /// Every attempt in the history stream, oldest first.
  Result<std::vector<PolicyAttempt>> attempts();
  /// Whether the last command reached Redis.
  bool reachable() const { return client_.connected(); }
  /// The last connection error ("" when reachable).
  std::string last_error() const { return client_.last_error(); }
  /// The newest version this backend stored itself (0: none), so a node does not announce its own write twice.
  std::uint64_t own_version() const { return own_version_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::uint64_t> own_version_{0};
  RedisUrl url_;
  std::string ns_;
  std::string node_;
  PolicyKeys keys_;
  mutable RedisClient client_;
};

/// A node's view of its link to Redis, for /health/ai and `qtos workers`.
struct RedisNodeHealth {
  bool connected = false;          ///< the subscription is up
  std::string state;               ///< "ok" or "degraded"
  std::string error;               ///< why degraded ("" when ok)
  std::int64_t degraded_since_ms = 0;  ///< when the link went down (0 when ok)
  std::uint64_t reconnects = 0;    ///< subscriptions re-established after a loss
  std::uint64_t applied = 0;       ///< remote policy versions installed on this node
  std::uint64_t policy_version = 0;  ///< the version this node holds
};

/// The node health as JSON ({"redis": state, "connected", "error", "degraded_since_ms", ...}).
boost::json::value redis_node_health_json(const RedisNodeHealth& h);

/// Subscribes to the policy channel and keeps a node's PolicyStore in step with Redis: each remote change (and on
/// every (re)connect, whatever changed while the link was down) is installed with PolicyStore::refresh and posted
/// as one PolicyUpdated on the node's bus. A version this node wrote itself (PolicyStore published it already) is
/// not posted again; a version the store adopted after losing a race is. Reconnects with exponential backoff.
/// Thread-safe.
class RedisPolicySync {
 public:
  /// Starts the subscriber thread. `store` (whose backend is `backend`) and `bus` (optional) must outlive this object.
  RedisPolicySync(RedisUrl url, std::string ns, PolicyStore& store, const RedisPolicyBackend& backend, EventBus* bus,
                  RedisOptions options = {});
  /// Stops the subscriber thread.
  ~RedisPolicySync();
  RedisPolicySync(const RedisPolicySync&) = delete;
  RedisPolicySync& operator=(const RedisPolicySync&) = delete;
  /// The link's health now.
  RedisNodeHealth health() const;
  /// Whether the subscription is up (the node is not degraded).
  bool connected() const { return connected_.load(std::memory_order_acquire); }

 private:
  void run();
  void catch_up();
  void set_degraded(const std::string& error);

  RedisUrl url_;
  PolicyKeys keys_;
  PolicyStore& store_;
  const RedisPolicyBackend& backend_;
  EventBus* bus_;
  std::shared_ptr<const Policy> announced_;  // the newest policy this node's bus has heard of (subscriber thread)
  RedisOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> applied_{0};
  mutable std::mutex mutex_;
  std::string error_ = "not connected yet";
  std::int64_t degraded_since_ms_ = 0;
  std::thread thread_;
};

}  // namespace qtos::redis
