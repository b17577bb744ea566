#include "runtime/clock/cron.hpp"
#include "runtime/util/time_format.hpp"

#include <array>
#include <charconv>
#include <stdexcept>
#include <vector>

namespace qtos {
namespace {

struct Field {
  const char* name;
  int lo, hi;
  const char* const* names;  // lower-case 3-letter names starting at `lo`, or null
};

constexpr const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

[[noreturn]] void fail(std::string_view expr, const Field& f, std::string_view part, const std::string& why) {
  throw std::invalid_argument("cron '" + std::string(expr) + "': " + f.name + " field '" + std::string(part) + "' " +
                              why + " (allowed " + std::to_string(f.lo) + "-" + std::to_string(f.hi) + ", *, */n, a-b, a-b/n, lists)");
}

int parse_value(std::string_view expr, const Field& f, std::string_view s, std::string_view part) {
  if (f.names && s.size() == 3) {
    std::string lower;
    for (char c : s) lower.push_back(static_cast<char>(c | 0x20));
    const int count = f.hi - f.lo + 1 - (f.names == kDays ? 1 : 0);
    for (int i = 0; i < count; ++i)
      if (lower == f.names[i]) return f.lo + i;
  }
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) fail(expr, f, part, "is not a number");
  if (v < f.lo || v > f.hi) fail(expr, f, part, "is out of range");
  return v;
}

template <std::size_t N>
bool parse_field(std::string_view expr, const Field& f, std::string_view text, std::bitset<N>& bits) {
  bool any = text == "*" || text == "?";
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view part = text.substr(start, comma - start);
    if (part.empty()) fail(expr, f, text, "has an empty list element");
    std::string_view range = part;
    int step = 1;
    if (auto slash = part.find('/'); slash != std::string_view::npos) {
      range = part.substr(0, slash);
      const auto st = part.substr(slash + 1);
      auto [p, ec] = std::from_chars(st.data(), st.data() + st.size(), step);
      if (ec != std::errc() || p != st.data() + st.size() || step <= 0) fail(expr, f, part, "has a bad step");
    }
    int lo = f.lo, hi = f.hi;
    if (range != "*" && range != "?") {
      if (auto dash = range.find('-'); dash != std::string_view::npos) {
        lo = parse_value(expr, f, range.substr(0, dash), part);
        hi = parse_value(expr, f, range.substr(dash + 1), part);
        if (lo > hi) fail(expr, f, part, "is a descending range");
      } else {
        lo = hi = parse_value(expr, f, range, part);
        if (part.find('/') != std::string_view::npos) hi = f.hi;  // "5/15" means from 5 every 15
      }
    }
    for (int v = lo; v <= hi; v += step) bits.set(static_cast<std::size_t>(f.names == kDays && v == 7 ? 0 : v));
    start = comma + 1;
  }
  return any;
}

}  // namespace

CronSchedule CronSchedule::parse(std::string_view expr) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < expr.size()) {
    while (i < expr.size() && (expr[i] == ' ' || expr[i] == '\t')) ++i;
    const std::size_t j = i;
    while (i < expr.size() && expr[i] != ' ' && expr[i] != '\t') ++i;
    if (i > j) fields.push_back(expr.substr(j, i - j));
  }
  if (fields.size() != 5)
    throw std::invalid_argument("cron '" + std::string(expr) + "': expected 5 fields (minute hour day-of-month month day-of-week), got " +
                                std::to_string(fields.size()));
  CronSchedule c;
  c.text_ = std::string(expr);
  parse_field(expr, Field{"minute", 0, 59, nullptr}, fields[0], c.minute_);
  parse_field(expr, Field{"hour", 0, 23, nullptr}, fields[1], c.hour_);
  c.dom_any_ = parse_field(expr, Field{"day-of-month", 1, 31, nullptr}, fields[2], c.dom_);
  parse_field(expr, Field{"month", 1, 12, kMonths}, fields[3], c.month_);
  c.dow_any_ = parse_field(expr, Field{"day-of-week", 0, 7, kDays}, fields[4], c.dow_);
  return c;
}

bool CronSchedule::matches(std::int64_t t) const {
  const std::int64_t days = (t >= 0 ? t : t - 86399) / 86400;
  const std::int64_t sod = t - days * 86400;
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  const int dow = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
  if (!minute_[static_cast<std::size_t>(sod / 60 % 60)] || !hour_[static_cast<std::size_t>(sod / 3600)]) return false;
  if (!month_[static_cast<std::size_t>(m)]) return false;
  const bool dom_ok = dom_[static_cast<std::size_t>(d)], dow_ok = dow_[static_cast<std::size_t>(dow)];
  if (dom_any_ && dow_any_) return true;
  if (dom_any_) return dow_ok;
  if (dow_any_) return dom_ok;
  return dom_ok || dow_ok;
}

std::int64_t CronSchedule::next_after(std::int64_t t) const {
  std::int64_t m = (t >= 0 ? t / 60 : (t - 59) / 60) + 1;  // next whole minute
  const std::int64_t limit = m + 5LL * 366 * 24 * 60;
  while (m < limit) {
    const std::int64_t s = m * 60;
    if (matches(s)) return s;
    // skip whole hours/days that cannot match, to keep the search cheap
    const std::int64_t sod = s - (s >= 0 ? s / 86400 : (s - 86399) / 86400) * 86400;
    if (!hour_[static_cast<std::size_t>(sod / 3600)]) {
      m += 60 - (sod / 60 % 60);
      continue;
    }
    ++m;
  }
  return -1;
}

}  // namespace qtos
