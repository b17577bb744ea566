#pragma once
/// @file Five-field cron schedules (minute hour day-of-month month day-of-week), evaluated in UTC.

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>

namespace qtos {

/// A parsed cron expression. Supports `*`, lists `a,b`, ranges `a-b`, steps `*/n` and `a-b/n`, month names
/// (jan..dec) and weekday names (sun..sat; 0 and 7 are Sunday). As in Vixie cron, when both day-of-month and
/// day-of-week are restricted a day matches if either matches.
class CronSchedule {
 public:
  /// Parses `expr`; throws std::invalid_argument naming the field and what is allowed.
  static CronSchedule parse(std::string_view expr);
  /// The first matching minute strictly after `unix_seconds` (UTC), in Unix seconds; -1 if none within 5 years.
  std::int64_t next_after(std::int64_t unix_seconds) const;
  /// True when the minute containing `unix_seconds` (UTC) matches.
  bool matches(std::int64_t unix_seconds) const;
  /// The expression as given.
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::bitset<60> minute_;
  std::bitset<24> hour_;
  std::bitset<32> dom_;    // 1..31
  std::bitset<13> month_;  // 1..12
  std::bitset<7> dow_;     // 0..6, Sunday = 0
  bool dom_any_ = true, dow_any_ = true;
};

}  // namespace qtos
