#pragma once
/// @file UTC timestamps as ISO 8601 text and back.

#include <cstdint>
#include <string>
#include <string_view>

namespace qtos {

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d);
/// The proleptic Gregorian date of a day count since 1970-01-01.
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d);

/// "2024-01-01T00:00:00Z" for Unix milliseconds (UTC; milliseconds shown only when non-zero).
std::string time_format_iso(std::int64_t unix_ms);
/// Parses "2024-01-01", "2024-01-01T12:00", "2024-01-01T12:00:00Z" or Unix milliseconds; throws
/// std::invalid_argument naming `what` and the accepted forms.
std::int64_t time_parse(std::string_view text, std::string_view what = "time");

}  // namespace qtos
