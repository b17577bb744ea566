#include "api/redis/scale_out_node.hpp"

#include <unistd.h>

#include <stdexcept>

#include <boost/json.hpp>

namespace qtos::redis {

std::unique_ptr<PolicyBackend> scale_out_policy_backend(const ScaleOutOptions& options, RedisPolicyBackend*& out) {
  if (options.node.empty()) throw std::invalid_argument("scale-out: the node name is empty");
  auto backend = std::make_unique<RedisPolicyBackend>(options.url, options.queue.ns, options.node, options.queue.redis);
  out = backend.get();
  return backend;
}

ScaleOutNode::ScaleOutNode(ScaleOutOptions options, PolicyStore& store, const RedisPolicyBackend& backend, EventBus& bus)
    : options_(std::move(options)) {
  if (options_.node.empty()) throw std::invalid_argument("scale-out: the node name is empty");
  sync_ = std::make_unique<RedisPolicySync>(options_.url, options_.queue.ns, store, backend, &bus, options_.queue.redis);
  EventBridgeOptions bo = options_.bridge;
  bo.ns = options_.queue.ns;
  bo.node = options_.node;
  bo.redis = options_.queue.redis;
  bridge_ = std::make_unique<RedisEventBridge>(bus, options_.url, std::move(bo));
  jobs_ = std::make_unique<JobClient>(options_.url, options_.queue, options_.node + "-api");
  reader_ = std::make_unique<RedisClient>(options_.url, options_.queue.redis);
  Heartbeat base;
  base.name = options_.node;
  base.role = "node";
  base.host = host_name();
  base.pid = static_cast<std::int64_t>(::getpid());
  RedisPolicySync* sync = sync_.get();
  heartbeat_ = std::make_unique<HeartbeatPublisher>(options_.url, options_.queue, base,
                                                    [sync](Heartbeat& hb) { hb.state = sync->connected() ? "ok" : "degraded"; });
}

ScaleOutNode::~ScaleOutNode() {
  heartbeat_.reset();
  bridge_.reset();
  sync_.reset();
}

boost::json::value ScaleOutNode::health_json() const {
  boost::json::value v = redis_node_health_json(sync_->health());
  const auto s = bridge_->stats();
  v.as_object()["node"] = options_.node;
  v.as_object()["event_bridge"] = boost::json::object{
      {"stream", bridge_->stream()}, {"enqueued", s.enqueued}, {"mirrored", s.mirrored}, {"dropped", s.dropped}, {"retries", s.retries}};
  return v;
}

Result<boost::json::value> ScaleOutNode::heartbeats() const {
  auto list = heartbeats_list(*reader_, JobKeys::of(options_.queue.ns), options_.queue.heartbeat_every);
  if (!list.ok()) return list.error();
  return heartbeats_json(list.value());
}

}  // namespace qtos::redis
