#include "runtime/clock/clock.hpp"
#include "runtime/util/time_format.hpp"

#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include "runtime/util/result.hpp"

namespace qtos {
namespace detail {

// Timers keyed by (due, creation sequence) so that equal due times fire in the order they were scheduled.
class TimerQueue {
 public:
  struct Entry {
    std::uint64_t id;
    TimeNs period;  // 0: one-shot
    TimerCallback cb;
  };
  using Key = std::pair<TimeNs, std::uint64_t>;

  std::uint64_t add(TimeNs due, TimeNs period, TimerCallback cb) {
    const std::uint64_t id = ++next_id_;
    const Key key{due, ++next_seq_};
    queue_.emplace(key, Entry{id, period, std::move(cb)});
    index_.emplace(id, key);
    return id;
  }
  void cancel(std::uint64_t id) {
    if (id == firing_id_) firing_cancelled_ = true;
    auto it = index_.find(id);
    if (it == index_.end()) return;
    queue_.erase(it->second);
    index_.erase(it);
  }
  bool active(std::uint64_t id) const { return index_.count(id) != 0 || (id == firing_id_ && !firing_cancelled_); }
  std::optional<TimeNs> next_due() const {
    if (queue_.empty()) return std::nullopt;
    return queue_.begin()->first.first;
  }
  std::size_t size() const { return queue_.size(); }

  std::size_t fire_due(TimeNs up_to, bool coalesce, const std::function<void(TimeNs)>& before_fire) {
    QTOS_ASSERT(firing_id_ == 0, "Clock timers fired re-entrantly from inside a timer callback");
    std::size_t fired = 0;
    while (!queue_.empty() && queue_.begin()->first.first <= up_to) {
      auto node = queue_.extract(queue_.begin());
      const TimeNs due = node.key().first;
      Entry entry = std::move(node.mapped());
      index_.erase(entry.id);
      firing_id_ = entry.id;
      firing_cancelled_ = false;
      if (before_fire) before_fire(due);
      try {
        entry.cb(due);
      } catch (...) {
        firing_id_ = 0;
        throw;
      }
      ++fired;
      const bool keep = entry.period > 0 && !firing_cancelled_;
      firing_id_ = 0;
      if (keep) {
        TimeNs next = due + entry.period;
        if (coalesce && next <= up_to) next += ((up_to - next) / entry.period + 1) * entry.period;
        const Key key{next, ++next_seq_};
        const std::uint64_t id = entry.id;
        queue_.emplace(key, std::move(entry));
        index_.emplace(id, key);
      }
    }
    return fired;
  }

 private:
  std::map<Key, Entry> queue_;
  std::map<std::uint64_t, Key> index_;
  std::uint64_t next_id_ = 0, next_seq_ = 0;
  std::uint64_t firing_id_ = 0;
  bool firing_cancelled_ = false;
};

}  // namespace detail

Timer::Timer(Timer&& other) noexcept : queue_(std::move(other.queue_)), id_(std::exchange(other.id_, 0)) {}

Timer& Timer::operator=(Timer&& other) noexcept {
  if (this != &other) {
    cancel();
    queue_ = std::move(other.queue_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

Timer::~Timer() { cancel(); }

void Timer::cancel() {
  if (id_ == 0) return;
  if (auto q = queue_.lock()) q->cancel(id_);
  id_ = 0;
  queue_.reset();
}

bool Timer::active() const {
  if (id_ == 0) return false;
  auto q = queue_.lock();
  return q && q->active(id_);
}

Clock::Clock(bool coalesce_missed) : timers_(std::make_shared<detail::TimerQueue>()), coalesce_(coalesce_missed) {}

Clock::~Clock() = default;

Timer Clock::schedule_at(TimeNs when, TimerCallback cb) {
  if (!cb) throw std::invalid_argument("Clock::schedule_at: the callback is empty");
  return Timer(timers_, timers_->add(when, 0, std::move(cb)));
}

Timer Clock::schedule_after(TimeNs delay, TimerCallback cb) {
  if (delay < 0) throw std::invalid_argument("Clock::schedule_after: delay " + std::to_string(delay) + " ns is negative");
  return schedule_at(now() + delay, std::move(cb));
}

Timer Clock::schedule_every(TimeNs period, TimerCallback cb, std::optional<TimeNs> first_delay) {
  if (period <= 0) throw std::invalid_argument("Clock::schedule_every: period " + std::to_string(period) + " ns must be > 0");
  if (!cb) throw std::invalid_argument("Clock::schedule_every: the callback is empty");
  const TimeNs delay = first_delay.value_or(period);
  if (delay < 0) throw std::invalid_argument("Clock::schedule_every: first delay " + std::to_string(delay) + " ns is negative");
  return Timer(timers_, timers_->add(now() + delay, period, std::move(cb)));
}

std::optional<TimeNs> Clock::next_due() const { return timers_->next_due(); }

std::size_t Clock::timer_count() const { return timers_->size(); }

std::size_t Clock::fire_due(TimeNs up_to, const std::function<void(TimeNs)>& before_fire) {
  return timers_->fire_due(up_to, coalesce_, before_fire);
}

LiveClock::LiveClock()
    : Clock(true),
      epoch_at_start_(std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count()),
      steady_start_(std::chrono::steady_clock::now()) {}

TimeNs LiveClock::now() const {
  return epoch_at_start_ +
         std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - steady_start_).count();
}

std::size_t LiveClock::run_due() { return fire_due(now(), {}); }

SimClock::SimClock(TimeNs start) : Clock(false), now_(start) {}

std::size_t SimClock::advance_to(TimeNs t) {
  const TimeNs current = now();
  if (t < current)
    throw std::invalid_argument("SimClock::advance_to: " + time_format(t) + " is before the current time " +
                                time_format(current) + "; simulated time only moves forward");
  const std::size_t fired = fire_due(t, [this](TimeNs due) {
    if (due > now()) now_.store(due, std::memory_order_release);
  });
  now_.store(t, std::memory_order_release);
  return fired;
}

std::string time_format(TimeNs t) {
  TimeNs secs = t / kNsPerSecond;
  TimeNs ns = t % kNsPerSecond;
  if (ns < 0) {
    ns += kNsPerSecond;
    --secs;
  }
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%09lldZ", static_cast<long long>(y), m, d,
                static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                static_cast<long long>(rem % 60), static_cast<long long>(ns));
  return buf;
}

}  // namespace qtos
