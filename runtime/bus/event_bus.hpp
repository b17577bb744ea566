#pragma once
/// @file The event bus: typed, synchronous, deterministic dispatch on the owner thread, plus a bounded
/// multi-producer queue through which other threads post. See docs/RUNTIME.md for the full semantics.
///
/// Order, in short: publish() from outside a handler delivers the event to every subscriber of its type (in
/// subscription order) before it returns. An event published or posted from inside a handler is queued and
/// delivered after the current event has reached all its subscribers (breadth-first, in publish order), still
/// before the outermost publish() returns. drain() delivers posted events in the order producers enqueued them.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/bus/bounded_queue.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/bus/latency_histogram.hpp"
#include "runtime/clock/clock.hpp"

namespace qtos {

/// Tuning of one bus.
struct BusOptions {
  std::size_t queue_capacity = 1 << 16;            ///< posted events in flight (power of two)
  TimeNs health_interval = 60 * kNsPerSecond;      ///< at most one HealthStatusChanged per failing subscriber per interval
  std::uint32_t dispatch_sample_every = 64;        ///< time one event in this many (power of two): dispatch and post latency
  std::string name = "bus";                        ///< source of the bus's own events
};

/// Counters of one bus; read with EventBus::metrics() on the owner thread.
struct BusMetrics {
  std::uint64_t published = 0;       ///< events that entered dispatch (published, posted and drained, replayed)
  std::uint64_t delivered = 0;       ///< handler calls that returned normally
  std::uint64_t handler_errors = 0;  ///< handler calls that threw
  std::uint64_t posted = 0;          ///< events accepted by post()
  std::uint64_t dropped = 0;         ///< droppable events refused by post() because the queue was full
  std::uint64_t blocked_posts = 0;   ///< posts that had to wait for room (orders and control)
  std::size_t queue_depth = 0;       ///< events waiting in the post queue
  std::size_t queue_high_water = 0;  ///< the largest depth drain() has seen
  std::size_t queue_capacity = 0;    ///< capacity of the post queue
  std::array<std::uint64_t, kEventTypeCount> dropped_by_type{};  ///< `dropped`, per EventType
  LatencyHistogram dispatch_ns;         ///< time to deliver one event to all its subscribers (sampled)
  LatencyHistogram post_to_handler_ns;  ///< from post() to the start of delivery (sampled like dispatch_ns)
};

/// One subscriber's record, for health reporting and the API.
struct SubscriberStats {
  std::uint64_t id = 0;
  std::string name;
  std::string filter;        ///< event type name or topic pattern
  std::uint64_t errors = 0;  ///< handler calls that threw
  std::string last_error;
};

/// What post() did with an event.
enum class PostOutcome { queued, dropped };

namespace detail {
struct BusCore;
}

/// Owns one subscription: destroying it (or reset()) unsubscribes. Movable, not copyable. Must be destroyed on the
/// bus owner thread; it is safe to outlive the bus.
class Subscription {
 public:
  /// An empty handle.
  Subscription() = default;
  Subscription(Subscription&& other) noexcept;
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription();
  /// Unsubscribes now; a handler that is running finishes, and no further event reaches it.
  void reset();
  /// True while subscribed.
  bool active() const;
  /// The subscriber id (0 when empty).
  std::uint64_t id() const { return id_; }

 private:
  friend class EventBus;
  Subscription(std::weak_ptr<detail::BusCore> core, std::uint64_t id) : core_(std::move(core)), id_(id) {}
  std::weak_ptr<detail::BusCore> core_;
  std::uint64_t id_ = 0;
};

namespace detail {

struct HandlerBox {
  virtual ~HandlerBox() = default;
};
template <class F>
struct HandlerBoxOf final : HandlerBox {
  explicit HandlerBoxOf(F f) : fn(std::move(f)) {}
  F fn;
};

struct Subscriber;

// One entry in a per-type dispatch list: a plain function pointer and context, so the hot loop makes one indirect
// call per handler with no std::function, no virtual call and no downcast.
struct Slot {
  void (*call)(void* ctx, const void* event) = nullptr;
  void* ctx = nullptr;
  Subscriber* sub = nullptr;
  bool active = true;
};

struct Subscriber {
  std::uint64_t id = 0;
  std::string name;
  std::string filter;
  std::unique_ptr<HandlerBox> box;
  std::vector<EventType> types;
  std::uint64_t errors = 0;
  std::string last_error;
  std::optional<TimeNs> last_health_report;
  bool active = true;
};

struct Posted {
  AnyEvent event;
  std::int64_t posted_steady_ns = 0;
};

struct BusCore {
  std::array<std::vector<Slot>, kEventTypeCount> slots;
  std::map<std::uint64_t, std::unique_ptr<Subscriber>> subscribers;
  std::vector<std::uint64_t> garbage;  // unsubscribed during dispatch; removed when dispatch unwinds
  std::uint64_t next_subscriber = 0;
  int depth = 0;  // > 0 while delivering
  void unsubscribe(std::uint64_t id);
  void collect_garbage();
};

}  // namespace detail

/// The event bus. Construct it on the thread that will own it (or call bind_owner_thread() there).
class EventBus {
 private:
  using Trampolines = std::array<void (*)(void*, const void*), kEventTypeCount>;

 public:
  /// A bus stamping events with `clock`, which must outlive it.
  explicit EventBus(Clock& clock, BusOptions options = {});
  ~EventBus();
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  /// Calls `handler(const E&)` for every event of type E. `subscriber` names the subscriber in metrics and health
  /// events. Owner thread. A subscriber added during dispatch receives events published after it subscribed.
  template <BusEvent E, class F>
  [[nodiscard]] Subscription subscribe(std::string_view subscriber, F&& handler) {
    static_assert(std::is_invocable_v<std::decay_t<F>&, const E&>, "handler must be callable as void(const E&)");
    using Box = detail::HandlerBoxOf<std::decay_t<F>>;
    auto box = std::make_unique<Box>(std::forward<F>(handler));
    void* ctx = &box->fn;
    Trampolines table{};
    table[static_cast<std::size_t>(E::kType)] = +[](void* c, const void* ev) {
      (*static_cast<std::decay_t<F>*>(c))(*static_cast<const E*>(ev));
    };
    return add_subscriber(subscriber, std::string(event_type_name(E::kType)), std::move(box), ctx, table, {E::kType});
  }

  /// Calls `handler(const EventRef&)` for every event whose topic matches `pattern` (`*` = one segment, `#` = any
  /// number of trailing segments, e.g. "orders.*", "#"). Throws std::invalid_argument naming the pattern when it
  /// is malformed or matches no topic. Owner thread.
  template <class F>
  [[nodiscard]] Subscription subscribe_topics(std::string_view subscriber, std::string_view pattern, F&& handler) {
    static_assert(std::is_invocable_v<std::decay_t<F>&, const EventRef&>, "handler must be callable as void(const EventRef&)");
    using Box = detail::HandlerBoxOf<std::decay_t<F>>;
    std::vector<EventType> types = topic_pattern_types(pattern);
    auto box = std::make_unique<Box>(std::forward<F>(handler));
    void* ctx = &box->fn;
    const auto table = ref_trampolines<std::decay_t<F>>(std::make_index_sequence<kEventTypeCount>{});
    return add_subscriber(subscriber, std::string(pattern), std::move(box), ctx, table, std::move(types));
  }

  /// The id of the last event stamped (0: none yet).
  std::uint64_t last_id() const { return next_id_; }
  /// Ids continue after `last` (a restarted run: its event log and the API's readers see one sequence). Owner thread.
  void ids_continue_after(std::uint64_t last) {
    check_owner("ids_continue_after");
    next_id_ = std::max(next_id_, last);
  }

  /// Stamps `event` (id, clock time, `source`) and delivers it. From outside a handler: to every subscriber before
  /// returning. From inside a handler: after the current event has reached all its subscribers. Owner thread.
  template <BusEvent E>
  void publish(SourceName source, E event) {
    check_owner("publish");
    event.header.source = source;
    event.header.id = ++next_id_;
    event.header.ts = clock_.now();
    ++metrics_.published;
    if (core_->depth > 0) {
      pending_.emplace_back(std::move(event));
      return;
    }
    dispatch_outermost(event);
  }

  /// Delivers a recorded event as it was (id, timestamp, source kept), e.g. from a replayed log. Owner thread.
  void publish_recorded(AnyEvent event);

  /// Queues `event` from any thread; the owner delivers it in drain(). The timestamp is taken now. When the queue
  /// is full, a droppable (market data) event is dropped and counted, and any other event waits for room. From
  /// the owner thread itself the event joins the owner's local queue and never blocks.
  template <BusEvent E>
  PostOutcome post(SourceName source, E event) {
    event.header.source = source;
    event.header.ts = clock_.now();
    if (on_owner_thread()) return post_local(AnyEvent(std::in_place_type<E>, std::move(event)));
    // Built in place in the queue cell; every sampled position also carries a steady-clock stamp for latency.
    auto make = [&](void* storage, std::size_t pos) {
      ::new (storage) detail::Posted{AnyEvent(std::in_place_type<E>, std::move(event)),
                                     (pos & sample_mask_) == 0 ? steady_now_ns() : 0};
    };
    if (queue_.try_emplace(make)) {
      wake_owner();
      return PostOutcome::queued;
    }
    if constexpr (E::kDroppable) {
      dropped_[static_cast<std::size_t>(E::kType)].fetch_add(1, std::memory_order_relaxed);
      return PostOutcome::dropped;
    } else {
      blocked_posts_.fetch_add(1, std::memory_order_relaxed);
      for (unsigned spins = 0; !queue_.try_emplace(make); ++spins) backoff(spins);
      wake_owner();
      return PostOutcome::queued;
    }
  }

  /// Delivers the events the owner posted to itself, then posted events (in the order they were enqueued) until
  /// `max` events in all have been delivered; returns how many. Owner thread; not from inside a handler.
  std::size_t drain(std::size_t max = SIZE_MAX);
  /// Waits up to `timeout` for posted events, then drains; returns how many were delivered. Owner thread.
  std::size_t wait_and_drain(std::chrono::nanoseconds timeout);

  /// Counters and histograms. Owner thread.
  BusMetrics metrics() const;
  /// Every current subscriber, by id. Owner thread.
  std::vector<SubscriberStats> subscribers() const;
  /// Makes the calling thread the owner (e.g. a bus built on main and run by a worker).
  void bind_owner_thread() { owner_.store(std::this_thread::get_id(), std::memory_order_release); }
  /// True when called on the owner thread.
  bool on_owner_thread() const { return owner_.load(std::memory_order_acquire) == std::this_thread::get_id(); }
  /// The bus clock.
  Clock& clock() const { return clock_; }
  /// The options the bus was built with.
  const BusOptions& options() const { return options_; }

 private:
  template <class F, std::size_t... I>
  static Trampolines ref_trampolines(std::index_sequence<I...>) {
    return {+[](void* c, const void* ev) {
      (*static_cast<F*>(c))(EventRef(*static_cast<const std::variant_alternative_t<I, AnyEvent>*>(ev)));
    }...};
  }
  Subscription add_subscriber(std::string_view name, std::string filter, std::unique_ptr<detail::HandlerBox> box,
                              void* ctx, const Trampolines& table, std::vector<EventType> types);
  static std::vector<EventType> topic_pattern_types(std::string_view pattern);

  void check_owner(const char* what) const {
    if (!on_owner_thread()) owner_violation(what);
  }
  [[noreturn]] void owner_violation(const char* what) const;

  template <BusEvent E>
  void deliver(const E& event) {
    auto& list = core_->slots[static_cast<std::size_t>(E::kType)];
    const std::size_t n = list.size();  // subscribers added during this delivery wait for the next event
    for (std::size_t i = 0; i < n; ++i) {
      const detail::Slot slot = list[i];  // by value: a handler may subscribe and grow the list
      if (!slot.active) continue;
      try {
        slot.call(slot.ctx, &event);
        ++metrics_.delivered;
      } catch (const std::exception& e) {
        handler_failed(*slot.sub, E::kType, e.what());
      } catch (...) {
        handler_failed(*slot.sub, E::kType, "a non-standard exception");
      }
    }
  }

  // Marks the bus as delivering for its lifetime, even if something other than a handler throws.
  struct DeliveringScope {
    detail::BusCore& core;
    explicit DeliveringScope(detail::BusCore& c) : core(c) { ++core.depth; }
    DeliveringScope(const DeliveringScope&) = delete;
    DeliveringScope& operator=(const DeliveringScope&) = delete;
    ~DeliveringScope() {
      if (--core.depth == 0 && !core.garbage.empty()) core.collect_garbage();
    }
  };

  template <BusEvent E>
  void dispatch_outermost(const E& event) {
    DeliveringScope scope(*core_);
    if (!pending_.empty()) deliver_pending();  // events the owner posted earlier go first
    if ((metrics_.published & sample_mask_) == 0) {
      const auto t0 = std::chrono::steady_clock::now();
      deliver(event);
      metrics_.dispatch_ns.record(static_cast<std::uint64_t>((std::chrono::steady_clock::now() - t0).count()));
    } else {
      deliver(event);
    }
    if (!pending_.empty()) deliver_pending();
  }

  void deliver_pending();
  void deliver_any(const AnyEvent& event);
  void handler_failed(detail::Subscriber& sub, EventType type, const char* what);
  PostOutcome post_local(AnyEvent event);
  static std::int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  static void backoff(unsigned spins);
  void wake_owner() {
    // Dekker handshake with wait_and_drain(), all seq_cst: the queue claim (a seq_cst CAS) precedes this load, and
    // the owner's store of the flag precedes its load of the queue size; so either the owner sees the event or we
    // see that it sleeps. (On x86 none of this costs more than the plain operations.) The cheap load filters the
    // common case; the exchange makes sure only one producer pays for the wake-up of a sleeping owner.
    if (owner_waiting_.load(std::memory_order_seq_cst) && owner_waiting_.exchange(false, std::memory_order_seq_cst))
      notify_owner();
  }
  void notify_owner();

  Clock& clock_;
  BusOptions options_;
  std::uint64_t sample_mask_;
  std::shared_ptr<detail::BusCore> core_;
  std::atomic<std::thread::id> owner_;
  std::uint64_t next_id_ = 0;
  std::deque<AnyEvent> pending_;  // published from inside handlers, or posted by the owner itself
  BusMetrics metrics_;            // owner-thread counters
  detail::BoundedQueue<detail::Posted> queue_;
  // Counters written by producers.
  std::uint64_t owner_posted_ = 0;
  std::atomic<std::uint64_t> blocked_posts_{0};
  std::array<std::atomic<std::uint64_t>, kEventTypeCount> dropped_{};
  // Owner sleep/wake handshake for wait_and_drain().
  std::atomic<bool> owner_waiting_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
};

/// True when `topic` matches `pattern`; throws std::invalid_argument naming `pattern` when it is malformed.
bool topic_matches(std::string_view pattern, std::string_view topic);

}  // namespace qtos
