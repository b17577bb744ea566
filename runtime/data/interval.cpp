#include "runtime/data/interval.hpp"

#include <array>
#include <stdexcept>
#include <utility>

namespace qtos {
namespace {
constexpr std::int64_t kSec = 1000, kMin = 60 * kSec, kHour = 60 * kMin, kDay = 24 * kHour;
constexpr std::array<std::pair<std::string_view, std::int64_t>, 15> kIntervals = {{
    {"1s", kSec}, {"1m", kMin}, {"3m", 3 * kMin}, {"5m", 5 * kMin}, {"15m", 15 * kMin}, {"30m", 30 * kMin},
    {"1h", kHour}, {"2h", 2 * kHour}, {"4h", 4 * kHour}, {"6h", 6 * kHour}, {"8h", 8 * kHour}, {"12h", 12 * kHour},
    {"1d", kDay}, {"3d", 3 * kDay}, {"1w", 7 * kDay},
}};
}  // namespace

std::int64_t interval_parse_ms(std::string_view text, std::string_view what) {
  for (const auto& [name, ms] : kIntervals)
    if (text == name) return ms;
  std::string allowed;
  for (const auto& [name, ms] : kIntervals) allowed += (allowed.empty() ? "" : ", ") + std::string(name);
  if (text == "1M")
    throw std::invalid_argument(std::string(what) + ": '1M' is not supported: months differ in length and a panel needs a fixed grid (use 1d or 1w)");
  throw std::invalid_argument(std::string(what) + ": '" + std::string(text) + "' is not a known interval; expected one of " + allowed);
}

std::string interval_name(std::int64_t ms) {
  for (const auto& [name, v] : kIntervals)
    if (v == ms) return std::string(name);
  return std::to_string(ms) + "ms";
}

double interval_bars_per_year(std::int64_t ms) { return 365.0 * static_cast<double>(kDay) / static_cast<double>(ms); }

}  // namespace qtos
