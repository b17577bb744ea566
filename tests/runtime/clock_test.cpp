// Clocks: simulated time runs periodic jobs at their exact times, fast; live time is monotonic; timers are RAII.
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/clock/clock.hpp"

namespace qtos {
namespace clock_test {

using ::testing::ElementsAre;

constexpr TimeNs kStart = 1'704'067'200LL * kNsPerSecond;  // 2024-01-01T00:00:00Z

TEST(SimClock, AMonthOfPeriodicJobsRunsAtTheRightTimesFast) {
  SimClock clock(kStart);
  std::vector<TimeNs> coordination, healing;
  bool now_matches = true;
  auto t1 = clock.schedule_every(60 * kNsPerSecond, [&](TimeNs now) {
    coordination.push_back(now);
    now_matches = now_matches && clock.now() == now;
  });
  auto t2 = clock.schedule_every(120 * kNsPerSecond, [&](TimeNs now) { healing.push_back(now); });
  const auto wall0 = std::chrono::steady_clock::now();
  const TimeNs month = 30LL * 86400 * kNsPerSecond;
  // Advance as a replay does: one step per recorded one-minute bar, stamped 1 ms after the minute.
  for (TimeNs t = kStart; t < kStart + month; t += 60 * kNsPerSecond) clock.advance_to(t + kNsPerMillisecond);
  clock.advance_to(kStart + month);
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  ASSERT_EQ(coordination.size(), 43200u);
  ASSERT_EQ(healing.size(), 21600u);
  for (std::size_t i = 0; i < coordination.size(); ++i)
    ASSERT_EQ(coordination[i], kStart + static_cast<TimeNs>(i + 1) * 60 * kNsPerSecond);
  for (std::size_t i = 0; i < healing.size(); ++i)
    ASSERT_EQ(healing[i], kStart + static_cast<TimeNs>(i + 1) * 120 * kNsPerSecond);
  EXPECT_TRUE(now_matches);
  EXPECT_EQ(clock.now(), kStart + month);
  EXPECT_LT(wall_s, 2.0);
}

TEST(SimClock, OneBigStepRunsEveryMissedPeriod) {
  SimClock clock(0);
  int fired = 0;
  auto t = clock.schedule_every(10, [&](TimeNs) { ++fired; });
  EXPECT_EQ(clock.advance_to(1000), 100u);
  EXPECT_EQ(fired, 100);
}

TEST(SimClock, TimersFireInDueThenCreationOrder) {
  SimClock clock(0);
  std::vector<int> order;
  auto a = clock.schedule_at(50, [&](TimeNs) { order.push_back(1); });
  auto b = clock.schedule_at(20, [&](TimeNs) { order.push_back(2); });
  auto c = clock.schedule_at(50, [&](TimeNs) { order.push_back(3); });
  auto d = clock.schedule_after(20, [&](TimeNs) { order.push_back(4); });
  clock.advance_to(100);
  EXPECT_THAT(order, ElementsAre(2, 4, 1, 3));
  EXPECT_FALSE(a.active());
}

TEST(SimClock, DestroyedOrCancelledTimersDoNotFire) {
  SimClock clock(0);
  int fired = 0;
  {
    auto t = clock.schedule_at(10, [&](TimeNs) { ++fired; });
  }
  auto kept = clock.schedule_at(10, [&](TimeNs) { ++fired; });
  auto cancelled = clock.schedule_at(10, [&](TimeNs) { fired += 100; });
  cancelled.cancel();
  EXPECT_FALSE(cancelled.active());
  EXPECT_TRUE(kept.active());
  clock.advance_to(20);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(clock.timer_count(), 0u);
}

TEST(SimClock, APeriodicTimerMayCancelItselfAndScheduleOthers) {
  SimClock clock(0);
  std::vector<TimeNs> fired;
  Timer self, spawned;
  self = clock.schedule_every(10, [&](TimeNs now) {
    fired.push_back(now);
    if (fired.size() == 3) {
      self.cancel();
      spawned = clock.schedule_after(5, [&](TimeNs t) { fired.push_back(-t); });
    }
  });
  clock.advance_to(100);
  EXPECT_THAT(fired, ElementsAre(10, 20, 30, -35));
}

TEST(SimClock, TimeNeverGoesBackwards) {
  SimClock clock(100);
  EXPECT_THROW(clock.advance_to(99), std::invalid_argument);
  EXPECT_THROW((void)clock.schedule_every(0, [](TimeNs) {}), std::invalid_argument);
  EXPECT_THROW((void)clock.schedule_after(-1, [](TimeNs) {}), std::invalid_argument);
  EXPECT_THROW((void)clock.schedule_at(1, TimerCallback{}), std::invalid_argument);
}

TEST(SimClock, TimerOutlivingTheClockIsHarmless) {
  Timer t;
  {
    SimClock clock(0);
    t = clock.schedule_at(10, [](TimeNs) {});
  }
  EXPECT_FALSE(t.active());
  t.cancel();
}

TEST(LiveClock, IsWallTimeAndMonotonic) {
  LiveClock clock;
  const auto sys = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  TimeNs prev = clock.now();
  EXPECT_LT(std::abs(prev - sys), kNsPerSecond);
  for (int i = 0; i < 1000; ++i) {
    const TimeNs t = clock.now();
    ASSERT_GE(t, prev);
    prev = t;
  }
}

TEST(LiveClock, RunDueFiresDueTimersAndCoalescesMissedPeriods) {
  LiveClock clock;
  int once = 0, periodic = 0, later = 0;
  auto a = clock.schedule_after(kNsPerMillisecond, [&](TimeNs) { ++once; });
  auto b = clock.schedule_every(kNsPerMillisecond, [&](TimeNs) { ++periodic; });
  auto c = clock.schedule_after(3600 * kNsPerSecond, [&](TimeNs) { ++later; });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const TimeNs before = clock.now();
  clock.run_due();
  EXPECT_EQ(once, 1);
  EXPECT_EQ(periodic, 1);  // ten or more missed periods run once, not in a burst
  EXPECT_EQ(later, 0);
  ASSERT_TRUE(clock.next_due().has_value());
  EXPECT_GT(*clock.next_due(), before);  // the periodic timer's next run is in the future
  EXPECT_TRUE(b.active());
  EXPECT_FALSE(a.active());
}

TEST(Clock, TimeFormatIsIso8601Utc) {
  EXPECT_EQ(time_format(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(time_format(1'700'000'000LL * kNsPerSecond + 5), "2023-11-14T22:13:20.000000005Z");
  EXPECT_EQ(time_format(kStart), "2024-01-01T00:00:00.000000000Z");
  EXPECT_EQ(time_format(-1), "1969-12-31T23:59:59.999999999Z");
}

}  // namespace clock_test
}  // namespace qtos
