#pragma once
/// @file UTC timestamps as ISO 8601 text and back.

#include <cstdint>
#include <string>
#include <string_view>

namespace qtos {

/// "2024-01-01T00:00:00Z" for Unix milliseconds (UTC; milliseconds shown only when non-zero).
std::string time_format_iso(std::int64_t unix_ms);
/// Parses "2024-01-01", "2024-01-01T12:00", "2024-01-01T12:00:00Z" or Unix milliseconds; throws
/// std::invalid_argument naming `what` and the accepted forms.
std::int64_t time_parse(std::string_view text, std::string_view what = "time");

}  // namespace qtos
