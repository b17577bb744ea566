#include "api/redis/redis_event_bridge.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include <boost/json.hpp>

#include "runtime/bus/event_log.hpp"

namespace qtos::redis {

RedisEventBridge::RedisEventBridge(EventBus& bus, RedisUrl url, EventBridgeOptions options)
    : options_(std::move(options)), stream_(options_.ns + ":events"), boot_(std::to_string(redis_now_ms())),
      client_(std::move(url), options_.redis), queue_(options_.queue_capacity) {
  if (options_.node.empty()) throw std::invalid_argument("RedisEventBridge: the node name is empty");
  if (options_.ns.empty()) throw std::invalid_argument("RedisEventBridge: the key namespace is empty");
  for (const auto& pattern : options_.patterns)
    subs_.push_back(bus.subscribe_topics("redis-bridge", pattern, [this](const EventRef& ref) {
      // The bus thread's whole share: encode, try to push, count a drop. No lock, no I/O, no wait.
      Item item{std::string(ref.topic()), event_encode(ref.to_any()), ref.header().id};
      if (queue_.try_push(item))
        enqueued_.fetch_add(1, std::memory_order_relaxed);
      else
        dropped_.fetch_add(1, std::memory_order_relaxed);
    }));
  thread_ = std::thread([this] { egress(); });
}

RedisEventBridge::~RedisEventBridge() {
  subs_.clear();
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

EventBridgeStats RedisEventBridge::stats() const {
  return {enqueued_.load(std::memory_order_relaxed), mirrored_.load(std::memory_order_relaxed),
          dropped_.load(std::memory_order_relaxed), retries_.load(std::memory_order_relaxed)};
}

bool RedisEventBridge::flush(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (mirrored_.load(std::memory_order_acquire) < enqueued_.load(std::memory_order_acquire)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

void RedisEventBridge::egress() {
  std::optional<Item> pending;
  auto backoff = options_.redis.backoff_initial;
  while (!stop_.load(std::memory_order_acquire)) {
    if (!pending) {
      const bool got = queue_.try_consume([&](Item& it) { pending = std::move(it); });
      if (!got) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
    }
    auto r = client_.command({"XADD", stream_, "MAXLEN", "~", std::to_string(options_.stream_maxlen), "*", "node", options_.node,
                              "boot", boot_, "event_id", std::to_string(pending->event_id), "topic", pending->topic, "body",
                              pending->body});
    if (r.ok()) {
      pending.reset();
      mirrored_.fetch_add(1, std::memory_order_release);
      backoff = options_.redis.backoff_initial;
      continue;
    }
    // Redis away: keep the event in hand and retry; the queue behind it fills and then drops (counted).
    retries_.fetch_add(1, std::memory_order_relaxed);
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (!stop_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    backoff = std::min(backoff * 2, options_.redis.backoff_max);
  }
}

RedisEventReader::RedisEventReader(RedisUrl url, std::string ns, std::string skip_node, std::string last_id, RedisOptions options)
    : client_(std::move(url), options), stream_(ns + ":events"), skip_node_(std::move(skip_node)), last_id_(std::move(last_id)) {
  if (ns.empty()) throw std::invalid_argument("RedisEventReader: the key namespace is empty");
  if (last_id_.empty()) last_id_ = "0-0";
}

Result<std::size_t> RedisEventReader::poll(std::size_t max, std::chrono::milliseconds block,
                                           const std::function<void(const MirroredEvent&)>& apply) {
  auto r = client_.command_blocking({"XREAD", "COUNT", std::to_string(std::max<std::size_t>(max, 1)), "BLOCK",
                                     std::to_string(block.count()), "STREAMS", stream_, last_id_},
                                    block);
  if (!r.ok()) return r.error();
  if (r.value().is_nil() || r.value().elements.empty()) return std::size_t{0};
  std::size_t applied = 0;
  for (const auto& entry : r.value().elements.front().elements.at(1).elements) {
    const std::string& id = entry.elements.at(0).str;
    std::map<std::string, std::string> f;
    const auto& kv = entry.elements.at(1).elements;
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) f[kv[i].str] = kv[i + 1].str;
    const std::uint64_t event_id = std::strtoull(f["event_id"].c_str(), nullptr, 10);
    const std::string origin = f["node"] + "@" + f["boot"];
    if (f["node"] == skip_node_ || (last_event_.count(origin) && event_id <= last_event_[origin])) {
      last_id_ = id;  // own event, or a retried write seen twice: passed over, never applied again
      continue;
    }
    auto ev = event_decode(f["body"]);
    if (!ev.ok()) return Error{ErrorCode::corrupt, stream_ + " entry " + id + ": " + ev.error().message};
    MirroredEvent me{id, f["node"], f["topic"], std::move(ev).value()};
    apply(me);
    last_event_[origin] = event_id;
    last_id_ = id;
    ++applied;
  }
  return applied;
}

}  // namespace qtos::redis
