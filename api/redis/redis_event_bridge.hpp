#pragma once
/// @file The event bridge (docs/SCALE_OUT.md): selected bus topics mirrored to one Redis stream, so other nodes and
/// outside tools read them in order and resume from a stream id. The bus thread only encodes an event and pushes it
/// into a bounded lock-free queue (never a network call, never a wait); a full queue drops the event and counts it.
/// An egress thread writes the queue to Redis, retrying with backoff while Redis is away. A reader applies each
/// event at most once: stream ids only move forward, and a retried write that reached Redis twice is recognised by
/// its (node, boot, bus event id).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/redis/redis_client.hpp"
#include "runtime/bus/bounded_queue.hpp"
#include "runtime/bus/event_bus.hpp"

namespace qtos::redis {

/// Bridge settings.
struct EventBridgeOptions {
  /// Topic patterns mirrored: policy, promotions, health, orders (fills included).
  std::vector<std::string> patterns{"policy.#", "strategies.#", "models.#", "health.#", "orders.#"};
  std::size_t queue_capacity = 4096;  ///< events waiting for Redis (a power of two); more are dropped and counted
  std::int64_t stream_maxlen = 100'000;  ///< approximate cap of the stream (XADD MAXLEN ~)
  std::string ns = "qtos";            ///< key namespace: the stream is "<ns>:events"
  std::string node;                   ///< this node's name in every entry (required)
  RedisOptions redis;                 ///< connection settings
};

/// Counters of a bridge.
struct EventBridgeStats {
  std::uint64_t enqueued = 0;   ///< events the bus handed over
  std::uint64_t mirrored = 0;   ///< events written to Redis
  std::uint64_t dropped = 0;    ///< events dropped because the queue was full
  std::uint64_t retries = 0;    ///< failed writes retried (Redis away)
};

/// Mirrors a bus's selected topics to "<ns>:events". Build and destroy it on the bus owner thread.
class RedisEventBridge {
 public:
  /// Subscribes to `options.patterns` on `bus` (owner thread) and starts the egress thread. Throws
  /// std::invalid_argument naming a bad pattern, an empty node name or a capacity that is not a power of two.
  RedisEventBridge(EventBus& bus, RedisUrl url, EventBridgeOptions options);
  /// Unsubscribes, then stops the egress thread (what is still queued is not written).
  ~RedisEventBridge();
  RedisEventBridge(const RedisEventBridge&) = delete;
  RedisEventBridge& operator=(const RedisEventBridge&) = delete;
  /// Counters now. Any thread.
  EventBridgeStats stats() const;
  /// Waits until every enqueued event was written or dropped, at most `timeout`; true when the queue drained.
  bool flush(std::chrono::milliseconds timeout) const;
  /// The stream's key.
  const std::string& stream() const { return stream_; }

 private:
  struct Item {
    std::string topic;
    std::string body;
    std::uint64_t event_id = 0;
  };
  void egress();

  EventBridgeOptions options_;
  std::string stream_;
  std::string boot_;
  RedisClient client_;
  detail::BoundedQueue<Item> queue_;
  std::vector<Subscription> subs_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> enqueued_{0}, mirrored_{0}, dropped_{0}, retries_{0};
  std::thread thread_;
};

/// One mirrored event as a reader sees it.
struct MirroredEvent {
  std::string id;         ///< stream id (resume after it)
  std::string node;       ///< the node that published it
  std::string topic;      ///< its topic
  AnyEvent event;         ///< the decoded event (id, time and source as on the publishing node)
};

/// Reads "<ns>:events" in order from a stream id, applying each event once. Not thread-safe.
class RedisEventReader {
 public:
  /// Starts after `last_id` ("0-0": from the beginning); events from `skip_node` (this node's own) are passed over.
  RedisEventReader(RedisUrl url, std::string ns, std::string skip_node = "", std::string last_id = "0-0",
                   RedisOptions options = {});
  /// Reads up to `max` entries after last_id() (waiting up to `block` when there are none) and calls `apply` for each
  /// one not applied before; returns how many were applied. "storage" while Redis is unreachable (nothing skipped:
  /// the next call reads from the same id); "corrupt" names an entry that does not decode (it is not skipped).
  Result<std::size_t> poll(std::size_t max, std::chrono::milliseconds block, const std::function<void(const MirroredEvent&)>& apply);
  /// The id of the last entry read: store it to resume after a restart.
  const std::string& last_id() const { return last_id_; }

 private:
  RedisClient client_;
  std::string stream_;
  std::string skip_node_;
  std::string last_id_;
  std::map<std::string, std::uint64_t> last_event_;  // (node, boot) -> highest bus event id applied
};

}  // namespace qtos::redis
