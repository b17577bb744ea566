#pragma once
/// @file Time for every service: `Clock` (now + one-shot and periodic timers), `LiveClock` (wall time that never
/// goes backwards) and `SimClock` (advanced by a replay, so a month of periodic jobs runs at the right simulated
/// times in milliseconds). Timers fire on the thread that drives the clock (the bus owner), in (due time, creation
/// order), so runs are deterministic.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace qtos {

/// Nanoseconds since the Unix epoch, UTC.
using TimeNs = std::int64_t;
inline constexpr TimeNs kNsPerMicrosecond = 1'000;       ///< 1 us in ns
inline constexpr TimeNs kNsPerMillisecond = 1'000'000;   ///< 1 ms in ns
inline constexpr TimeNs kNsPerSecond = 1'000'000'000;    ///< 1 s in ns

/// Called when a timer fires, with the clock's time at the moment of firing (the timer's due time on a SimClock).
using TimerCallback = std::function<void(TimeNs now)>;

namespace detail {
class TimerQueue;
}

/// Owns a scheduled timer: destroying or cancel()ing it stops the timer. Movable, not copyable.
class Timer {
 public:
  /// An empty handle.
  Timer() = default;
  Timer(Timer&& other) noexcept;
  Timer& operator=(Timer&& other) noexcept;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer();
  /// Stops the timer (no effect when already fired, cancelled or the clock is gone).
  void cancel();
  /// True while the timer can still fire.
  bool active() const;

 private:
  friend class Clock;
  Timer(std::weak_ptr<detail::TimerQueue> queue, std::uint64_t id) : queue_(std::move(queue)), id_(id) {}
  std::weak_ptr<detail::TimerQueue> queue_;
  std::uint64_t id_ = 0;
};

/// The source of time and timers. `now()` may be called from any thread; timers are scheduled, cancelled and
/// fired on the owner thread only.
class Clock {
 public:
  virtual ~Clock();
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  /// The current time.
  virtual TimeNs now() const = 0;
  /// Fires `cb` once at `when` (immediately on the next run when `when` is already past).
  [[nodiscard]] Timer schedule_at(TimeNs when, TimerCallback cb);
  /// Fires `cb` once after `delay` ns (>= 0; throws std::invalid_argument otherwise).
  [[nodiscard]] Timer schedule_after(TimeNs delay, TimerCallback cb);
  /// Fires `cb` every `period` ns (> 0), first after `first_delay` (default: one period).
  [[nodiscard]] Timer schedule_every(TimeNs period, TimerCallback cb, std::optional<TimeNs> first_delay = {});
  /// Due time of the earliest timer, if any.
  std::optional<TimeNs> next_due() const;
  /// Number of scheduled timers.
  std::size_t timer_count() const;

 protected:
  /// `coalesce_missed`: a periodic timer that fell more than one period behind skips the missed runs (live) or
  /// runs every one of them at its own time (simulated).
  explicit Clock(bool coalesce_missed);
  /// Fires every timer due at or before `up_to`, in order; `before_fire(due)` runs before each callback.
  std::size_t fire_due(TimeNs up_to, const std::function<void(TimeNs)>& before_fire);

 private:
  std::shared_ptr<detail::TimerQueue> timers_;
  bool coalesce_ = false;
};

/// Wall-clock time that never goes backwards: the system time at construction plus the steady clock since.
class LiveClock final : public Clock {
 public:
  LiveClock();
  /// Now, in Unix nanoseconds.
  TimeNs now() const override;
  /// Fires the timers that are due; call it from the owner loop. Returns how many fired.
  std::size_t run_due();

 private:
  TimeNs epoch_at_start_;
  std::chrono::steady_clock::time_point steady_start_;
};

/// Simulated time, moved forward only by advance_to()/advance_by() (a replay, a backtest or a test).
class SimClock final : public Clock {
 public:
  /// Starts at `start` (Unix ns).
  explicit SimClock(TimeNs start = 0);
  /// The simulated time.
  TimeNs now() const override { return now_.load(std::memory_order_acquire); }
  /// Moves time to `t`, firing every timer due on the way at its own due time; throws std::invalid_argument when
  /// `t` is earlier than now(). Returns how many timers fired.
  std::size_t advance_to(TimeNs t);
  /// advance_to(now() + d).
  std::size_t advance_by(TimeNs d) { return advance_to(now() + d); }

 private:
  std::atomic<TimeNs> now_;
};

/// Formats `t` as ISO-8601 UTC with nanoseconds, e.g. 2024-01-02T03:04:05.000000006Z.
std::string time_format(TimeNs t);

}  // namespace qtos
