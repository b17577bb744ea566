#pragma once
/// @file Checks shared by the verbs: integer ranges refused at parse time (exit 2), usage errors found later, and the
/// checks of output paths and stores made before long work starts.

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/kernels/gaps.hpp"
#include "runtime/config/config.hpp"

namespace qtos::api {

/// A value the command line cannot accept, found after parsing (e.g. one that depends on the configuration); the
/// process exits with status 2 like a parse error. what() names the option and what was expected.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

/// "" when `text` is a plain decimal integer (an optional '-', digits) from `min` to `max` (`umax` when the upper
/// bound is beyond int64, for unsigned options); else what is wrong and what was expected.
inline std::string integer_in_range(const std::string& text, std::int64_t min, std::int64_t max, std::uint64_t umax) {
  const bool unbounded = max == std::numeric_limits<std::int64_t>::max();
  const std::string expected = unbounded ? "expected an integer >= " + std::to_string(min)
                                         : "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
  const char* b = text.data();
  const char* e = b + text.size();
  const bool negative = !text.empty() && text[0] == '-';
  if (text.empty() || (!negative && (text[0] < '0' || text[0] > '9'))) return "'" + text + "' is not an integer; " + expected;
  if (negative) {
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(b, e, v);
    if (ec == std::errc() && p == e && v >= min && v <= max) return {};
    return (ec == std::errc::invalid_argument || (ec == std::errc() && p != e) ? "'" + text + "' is not an integer; "
                                                                               : text + " is out of range; ") +
           expected;
  }
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(b, e, v);
  if (ec == std::errc() && p != e) return "'" + text + "' is not an integer; " + expected;
  const std::uint64_t hi = unbounded ? umax : static_cast<std::uint64_t>(std::max<std::int64_t>(max, 0));
  if (ec != std::errc() || v > hi || max < 0 || (min > 0 && v < static_cast<std::uint64_t>(min)))
    return text + " is out of range; " + expected;
  return {};
}

}  // namespace detail

/// Validator for an integer option: a plain decimal integer from `min` to `max` (no octal or hex, no wrap-around of a
/// negative value into an unsigned one). CLI11 reports a failure as "--option: ..." and cli_main exits 2.
inline CLI::Validator integer_range(std::int64_t min, std::int64_t max = std::numeric_limits<std::int64_t>::max()) {
  return CLI::Validator(
      [min, max](std::string& text) {
        return detail::integer_in_range(text, min, max, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
      },
      "INT", "integer range");
}

/// Validator for an unsigned 64-bit option such as a seed: a plain decimal integer from 0 to 2^64 - 1.
inline CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& text) {
        return detail::integer_in_range(text, 0, std::numeric_limits<std::int64_t>::max(),
                                        std::numeric_limits<std::uint64_t>::max());
      },
      "UINT", "unsigned integer");
}

/// Validator for a floating-point option: a finite number from `min` to `max` (inclusive unless `open_min`).
inline CLI::Validator number_range(double min, double max, bool open_min = false) {
  return CLI::Validator(
      [min, max, open_min](std::string& text) -> std::string {
        double v = 0;
        const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        const std::string expected = std::string("expected a number ") + (open_min ? "above " : "from ") + CLI::detail::to_string(min) +
                                     (max == std::numeric_limits<double>::max() ? std::string() : " to " + CLI::detail::to_string(max));
        if (ec != std::errc() || p != text.data() + text.size()) return "'" + text + "' is not a number; " + expected;
        if (!(open_min ? v > min : v >= min) || !(v <= max)) return text + " is out of range; " + expected;
        return {};
      },
      "NUM", "number range");
}

/// Checks before long work that `path` can be written: its directory exists and takes a new file (a temporary is
/// created and removed through the atomic-write helper's naming). Throws UsageError naming `option`, `path` and why.
void output_path_check(const std::string& option, const std::string& path);

/// "SIGINT", "SIGTERM" or "a stop request" for StopToken::signal().
const char* stop_signal_name(int signal);

/// Adds `--gaps skip|reset-after:N` to a verb; the text stays empty unless given (then QT_GAPS applies: gaps_resolve).
CLI::Option* gaps_option_add(CLI::App* cmd, std::string& text);
/// The gap policy of a run: `--gaps` when given, else the configuration's QT_GAPS. Throws UsageError naming --gaps.
kernels::GapPolicy gaps_resolve(const std::string& text, const Config& config);

}  // namespace qtos::api
