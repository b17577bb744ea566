// Cron schedules against hand-checked calendar dates (UTC).
#include <gtest/gtest.h>

#include "runtime/clock/cron.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos {
namespace cron_test {

std::string next(const char* expr, const char* after) {
  const auto c = CronSchedule::parse(expr);
  return time_format_iso(c.next_after(time_parse(after) / 1000) * 1000);
}

TEST(Cron, DefaultRetrainScheduleIsSundayTwoAm) {
  // 2024-01-01 was a Monday; the next Sunday 02:00 is 2024-01-07.
  EXPECT_EQ(next("0 2 * * 0", "2024-01-01T00:00:00Z"), "2024-01-07T02:00:00Z");
  EXPECT_EQ(next("0 2 * * 0", "2024-01-07T02:00:00Z"), "2024-01-14T02:00:00Z");  // strictly after
  EXPECT_EQ(next("0 2 * * sun", "2024-01-07T01:59:00Z"), "2024-01-07T02:00:00Z");
  EXPECT_EQ(next("0 2 * * 7", "2024-01-01T00:00:00Z"), "2024-01-07T02:00:00Z");
}

TEST(Cron, StepsRangesListsAndNames) {
  EXPECT_EQ(next("*/15 * * * *", "2024-03-10T10:07:00Z"), "2024-03-10T10:15:00Z");
  EXPECT_EQ(next("30 9-17/4 * * mon-fri", "2024-03-09T00:00:00Z"), "2024-03-11T09:30:00Z");  // Sat -> Mon
  EXPECT_EQ(next("0 0 29 feb *", "2023-03-01T00:00:00Z"), "2024-02-29T00:00:00Z");         // leap day
  EXPECT_EQ(next("0 0 1,15 * *", "2024-01-02T00:00:00Z"), "2024-01-15T00:00:00Z");
  // Day-of-month OR day-of-week when both are restricted (Vixie cron).
  EXPECT_EQ(next("0 0 13 * fri", "2024-09-01T00:00:00Z"), "2024-09-06T00:00:00Z");
}

TEST(Cron, BadExpressionsNameTheField) {
  for (const auto& [expr, want] : std::vector<std::pair<const char*, const char*>>{
           {"0 2 * *", "expected 5 fields"},
           {"61 * * * *", "minute field '61' is out of range"},
           {"0 24 * * *", "hour field '24' is out of range"},
           {"0 0 0 * *", "day-of-month field '0' is out of range"},
           {"0 0 * 13 *", "month field '13'"},
           {"0 0 * * 8", "day-of-week field '8'"},
           {"x * * * *", "is not a number"},
           {"*/0 * * * *", "has a bad step"},
           {"5-1 * * * *", "descending range"}}) {
    try {
      CronSchedule::parse(expr);
      ADD_FAILURE() << expr;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << expr << ": " << e.what();
    }
  }
}

TEST(TimeFormat, RoundTripsAndRejectsGarbage) {
  EXPECT_EQ(time_parse("2024-01-01"), 1704067200000);
  EXPECT_EQ(time_parse("2024-01-01T12:30"), 1704067200000 + 45000000);
  EXPECT_EQ(time_parse("2024-02-29T23:59:59Z"), 1709251199000);
  EXPECT_EQ(time_parse("1704067200000"), 1704067200000);
  EXPECT_EQ(time_format_iso(1704067200000), "2024-01-01T00:00:00Z");
  EXPECT_EQ(time_format_iso(1704067200123), "2024-01-01T00:00:00.123Z");
  for (const char* bad : {"", "2024-13-01", "yesterday", "2024-01-01T25:00", "2024-01-01junk"})
    EXPECT_THROW(time_parse(bad, "--at"), std::invalid_argument) << bad;
}

}  // namespace cron_test
}  // namespace qtos
