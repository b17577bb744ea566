#include "runtime/bus/event_bus.hpp"

#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "runtime/util/result.hpp"

namespace qtos {
namespace {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<std::string_view> split_segments(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

void validate_pattern(std::string_view pattern, const std::vector<std::string_view>& segs) {
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument("topic pattern '" + std::string(pattern) + "': " + why +
                                " (expected dot-separated names, '*' for one segment, a final '#' for any rest)");
  };
  if (pattern.empty()) bad("is empty");
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto seg = segs[i];
    if (seg.empty()) bad("has an empty segment");
    const bool wild = seg.find_first_of("*#") != std::string_view::npos;
    if (wild && seg.size() != 1) bad("segment '" + std::string(seg) + "' mixes a wildcard with text");
    if (seg == "#" && i + 1 != segs.size()) bad("'#' may only be the last segment");
  }
}

}  // namespace

bool topic_matches(std::string_view pattern, std::string_view topic) {
  const auto p = split_segments(pattern);
  validate_pattern(pattern, p);
  const auto t = split_segments(topic);
  std::size_t j = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == "#") return true;
    if (j >= t.size()) return false;
    if (p[i] != "*" && p[i] != t[j]) return false;
    ++j;
  }
  return j == t.size();
}

// ---- Subscription -----------------------------------------------------------------------------------------------

Subscription::Subscription(Subscription&& other) noexcept
    : core_(std::move(other.core_)), id_(std::exchange(other.id_, 0)) {}

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    core_ = std::move(other.core_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

Subscription::~Subscription() { reset(); }

void Subscription::reset() {
  if (id_ == 0) return;
  if (auto core = core_.lock()) core->unsubscribe(id_);
  core_.reset();
  id_ = 0;
}

bool Subscription::active() const {
  if (id_ == 0) return false;
  auto core = core_.lock();
  if (!core) return false;
  auto it = core->subscribers.find(id_);
  return it != core->subscribers.end() && it->second->active;
}

namespace detail {

void BusCore::unsubscribe(std::uint64_t id) {
  auto it = subscribers.find(id);
  if (it == subscribers.end() || !it->second->active) return;
  Subscriber& s = *it->second;
  s.active = false;
  for (EventType t : s.types)
    for (Slot& slot : slots[static_cast<std::size_t>(t)])
      if (slot.sub == &s) slot.active = false;
  garbage.push_back(id);
  if (depth == 0) collect_garbage();  // during dispatch the handler may still be running: free it afterwards
}

void BusCore::collect_garbage() {
  for (std::uint64_t id : garbage) {
    auto it = subscribers.find(id);
    if (it == subscribers.end()) continue;
    Subscriber* s = it->second.get();
    for (EventType t : s->types) {
      auto& list = slots[static_cast<std::size_t>(t)];
      list.erase(std::remove_if(list.begin(), list.end(), [s](const Slot& slot) { return slot.sub == s; }), list.end());
    }
    subscribers.erase(it);
  }
  garbage.clear();
}

}  // namespace detail

// ---- EventBus ---------------------------------------------------------------------------------------------------

EventBus::EventBus(Clock& clock, BusOptions options)
    : clock_(clock),
      options_(std::move(options)),
      sample_mask_(options_.dispatch_sample_every == 0 ? 0 : options_.dispatch_sample_every - 1),
      core_(std::make_shared<detail::BusCore>()),
      owner_(std::this_thread::get_id()),
      queue_(options_.queue_capacity) {
  const auto every = options_.dispatch_sample_every;
  if (every == 0 || (every & (every - 1)) != 0)
    throw std::invalid_argument("BusOptions::dispatch_sample_every " + std::to_string(every) + " must be a power of two >= 1");
  if (options_.health_interval < 0)
    throw std::invalid_argument("BusOptions::health_interval " + std::to_string(options_.health_interval) + " ns is negative");
  (void)SourceName(options_.name);  // throws naming the name when it does not fit an event source
}

EventBus::~EventBus() { QTOS_ASSERT(core_->depth == 0, "EventBus destroyed from inside one of its handlers"); }

void EventBus::owner_violation(const char* what) const {
  throw std::logic_error(std::string("EventBus::") + what +
                         " called from a thread that does not own the bus; other threads must use post()");
}

std::vector<EventType> EventBus::topic_pattern_types(std::string_view pattern) {
  std::vector<EventType> types;
  std::string known;
  for (std::size_t i = 0; i < kEventTypeCount; ++i) {
    const auto type = static_cast<EventType>(i);
    if (topic_matches(pattern, event_topic(type))) types.push_back(type);
    known += (i ? ", " : "") + std::string(event_topic(type));
  }
  if (types.empty())
    throw std::invalid_argument("topic pattern '" + std::string(pattern) + "' matches no topic; topics are: " + known);
  return types;
}

Subscription EventBus::add_subscriber(std::string_view name, std::string filter, std::unique_ptr<detail::HandlerBox> box,
                                      void* ctx, const Trampolines& table, std::vector<EventType> types) {
  check_owner("subscribe");
  if (name.empty()) throw std::invalid_argument("EventBus::subscribe: the subscriber name is empty");
  if (name.size() > SourceName::kCapacity)
    throw std::invalid_argument("EventBus::subscribe: subscriber name '" + std::string(name) + "' is longer than " +
                                std::to_string(SourceName::kCapacity) + " characters");
  auto sub = std::make_unique<detail::Subscriber>();
  sub->id = ++core_->next_subscriber;
  sub->name = std::string(name);
  sub->filter = std::move(filter);
  sub->box = std::move(box);
  sub->types = std::move(types);
  for (EventType t : sub->types) {
    const auto i = static_cast<std::size_t>(t);
    QTOS_ASSERT(table[i] != nullptr, "subscriber trampoline missing for a subscribed type");
    core_->slots[i].push_back(detail::Slot{table[i], ctx, sub.get(), true});
  }
  const std::uint64_t id = sub->id;
  core_->subscribers.emplace(id, std::move(sub));
  return Subscription(core_, id);
}

void EventBus::publish_recorded(AnyEvent event) {
  check_owner("publish_recorded");
  next_id_ = std::max(next_id_, event_header(event).id);
  ++metrics_.published;
  if (core_->depth > 0) {
    pending_.push_back(std::move(event));
    return;
  }
  std::visit([this](const auto& e) { dispatch_outermost(e); }, event);
}

void EventBus::deliver_pending() {
  while (!pending_.empty()) {
    AnyEvent event = std::move(pending_.front());
    pending_.pop_front();
    deliver_any(event);
  }
}

void EventBus::deliver_any(const AnyEvent& event) {
  std::visit([this](const auto& e) { deliver(e); }, event);
}

void EventBus::handler_failed(detail::Subscriber& sub, EventType type, const char* what) {
  ++metrics_.handler_errors;
  ++sub.errors;
  sub.last_error = std::string(event_type_name(type)) + ": " + what;
  const TimeNs now = clock_.now();
  if (sub.last_health_report && now - *sub.last_health_report < options_.health_interval) return;
  const bool first = !sub.last_health_report;
  sub.last_health_report = now;
  spdlog::warn("bus '{}': subscriber '{}' threw on {} ({} errors so far): {}", options_.name, sub.name,
               event_type_name(type), sub.errors, what);
  publish(SourceName(options_.name),
          HealthStatusChanged{.component = SourceName(sub.name),
                              .previous = first ? HealthLevel::healthy : HealthLevel::degraded,
                              .current = HealthLevel::degraded,
                              .error_count = sub.errors,
                              .detail = "handler for " + std::string(event_type_name(type)) + " threw: " + what});
}

PostOutcome EventBus::post_local(AnyEvent event) {
  // The owner never blocks on its own queue: its posts wait in the local FIFO for the next drain or publish.
  std::visit([this](auto& e) { e.header.id = ++next_id_; }, event);
  ++metrics_.published;
  ++owner_posted_;
  pending_.push_back(std::move(event));
  return PostOutcome::queued;
}

void EventBus::backoff(unsigned spins) {
  if (spins < 64)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(20));
}

void EventBus::notify_owner() {
  std::lock_guard<std::mutex> lock(wake_mutex_);
  wake_cv_.notify_one();
}

std::size_t EventBus::drain(std::size_t max) {
  check_owner("drain");
  if (core_->depth > 0)
    throw std::logic_error("EventBus::drain called from inside a handler; events published there are delivered "
                           "when the current event has reached all its subscribers");
  std::size_t n = 0;
  if (!pending_.empty()) {
    n = pending_.size();
    DeliveringScope scope(*core_);
    deliver_pending();
  }
  metrics_.queue_high_water = std::max(metrics_.queue_high_water, queue_.size_approx());
  auto dispatch = [this](detail::Posted& item) {
    if (item.posted_steady_ns != 0)
      metrics_.post_to_handler_ns.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, steady_ns() - item.posted_steady_ns)));
    std::visit(
        [this](auto& e) {
          e.header.id = ++next_id_;
          ++metrics_.published;
          dispatch_outermost(e);
        },
        item.event);
  };
  while (n < max && queue_.try_consume(dispatch)) ++n;
  return n;
}

std::size_t EventBus::wait_and_drain(std::chrono::nanoseconds timeout) {
  const std::size_t n = drain();
  if (n > 0) return n;
  owner_waiting_.store(true, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lock(wake_mutex_);
    wake_cv_.wait_for(lock, timeout, [this] { return queue_.size_approx() > 0; });
  }
  owner_waiting_.store(false, std::memory_order_relaxed);
  return drain();
}

BusMetrics EventBus::metrics() const {
  check_owner("metrics");
  BusMetrics m = metrics_;
  m.posted = queue_.pushed() + owner_posted_;
  m.blocked_posts = blocked_posts_.load(std::memory_order_relaxed);
  m.dropped = 0;
  for (std::size_t i = 0; i < kEventTypeCount; ++i) {
    m.dropped_by_type[i] = dropped_[i].load(std::memory_order_relaxed);
    m.dropped += m.dropped_by_type[i];
  }
  m.queue_depth = queue_.size_approx();
  m.queue_capacity = queue_.capacity();
  return m;
}

std::vector<SubscriberStats> EventBus::subscribers() const {
  check_owner("subscribers");
  std::vector<SubscriberStats> out;
  for (const auto& [id, s] : core_->subscribers)
    if (s->active) out.push_back(SubscriberStats{id, s->name, s->filter, s->errors, s->last_error});
  return out;
}

}  // namespace qtos
