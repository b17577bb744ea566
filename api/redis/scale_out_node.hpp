#pragma once
/// @file What `qtos serve` needs to run as one node of a Redis deployment (docs/SCALE_OUT.md), in one object: the
/// policy backend on Redis (handed to the PolicyStore), the policy subscription, the event bridge, the node's
/// heartbeat, and the values /health/ai and the jobs API show.

#include <memory>
#include <string>

#include <boost/json/value.hpp>

#include "api/redis/redis_event_bridge.hpp"
#include "api/redis/redis_jobs.hpp"
#include "api/redis/redis_policy.hpp"

namespace qtos::redis {

/// Settings of a node.
struct ScaleOutOptions {
  RedisUrl url;              ///< the shared Redis (QT_REDIS_URL)
  std::string node;          ///< this node's name (default in make: host-pid)
  JobQueueOptions queue;     ///< namespace, heartbeat period, connection settings
  EventBridgeOptions bridge; ///< mirrored topics, queue capacity (ns and node are taken from here)
};

/// Phase one, before the PolicyStore exists: the Redis policy backend (the store takes ownership; `out` keeps a
/// pointer for phase two). Throws std::invalid_argument for an empty node name.
std::unique_ptr<PolicyBackend> scale_out_policy_backend(const ScaleOutOptions& options, RedisPolicyBackend*& out);

/// Phase two, on the bus owner thread once the PolicyStore is built: subscription, bridge and heartbeat.
class ScaleOutNode {
 public:
  /// Starts everything; `store` (built on `backend`) and `bus` must outlive this object, which must be destroyed on
  /// the bus owner thread.
  ScaleOutNode(ScaleOutOptions options, PolicyStore& store, const RedisPolicyBackend& backend, EventBus& bus);
  /// Stops the heartbeat (last state "stopped"), the bridge and the subscription.
  ~ScaleOutNode();
  ScaleOutNode(const ScaleOutNode&) = delete;
  ScaleOutNode& operator=(const ScaleOutNode&) = delete;
  /// Whether the node is degraded (Redis unreachable: policy changes refused).
  bool degraded() const { return !sync_->connected(); }
  /// The node's link health ({"redis": "ok"|"degraded", ...}) plus the bridge's counters.
  boost::json::value health_json() const;
  /// Every heartbeat (workers and nodes) as JSON, or an error when Redis is unreachable.
  Result<boost::json::value> heartbeats() const;
  /// A job client for the jobs API (one per node, client id "<node>-api").
  JobClient& jobs() { return *jobs_; }

 private:
  ScaleOutOptions options_;
  std::unique_ptr<RedisPolicySync> sync_;
  std::unique_ptr<RedisEventBridge> bridge_;
  std::unique_ptr<JobClient> jobs_;
  mutable std::unique_ptr<RedisClient> reader_;
  std::unique_ptr<HeartbeatPublisher> heartbeat_;
};

}  // namespace qtos::redis
