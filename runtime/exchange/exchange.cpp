#include "runtime/exchange/exchange.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace qtos {
namespace detail {
namespace {

// Two quantities closer than this (relative) are the same number of steps: binary noise of a decimal ratio.
constexpr double kStepTolerance = 1e-9;

// A number as a person reads it in a venue message: "0.0015", "100.12", "5".
std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.12g", x);
  return buf;
}

// The decimal places of `x` when it is a short decimal (0.01 -> 2, 5 -> 0), or -1 when it is none.
int decimals_of(double x) {
  double scale = 1;
  for (int d = 0; d <= 15; ++d, scale *= 10) {
    const double v = x * scale;
    const double r = std::round(v);
    if (r >= 1 && std::abs(v - r) <= 1e-9 * r) return d;
  }
  return -1;
}

// n x unit as the double nearest the decimal value (3 x 0.1 gives 0.3, not 0.30000000000000004).
double multiple_of(double n, double unit) {
  const int d = decimals_of(unit);
  if (d < 0) return n * unit;
  double scale = 1;
  for (int i = 0; i < d; ++i) scale *= 10;  // exact: 10^d for d <= 15
  const double units = std::round(unit * scale);
  const double num = n * units;
  if (!(std::abs(num) < 9007199254740992.0)) return n * unit;  // beyond exact integers: the plain product
  return num / scale;
}

// True when `x` is a whole number of `unit`s up to binary noise.
bool is_multiple(double x, double unit) {
  const double ratio = x / unit;
  const double n = std::round(ratio);
  return std::abs(ratio - n) <= kStepTolerance * std::max(1.0, std::abs(n));
}

bool rule_set(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

double price_to_tick(double price, double tick) { return multiple_of(std::round(price / tick), tick); }

double qty_to_step(double qty, double step) {
  const double ratio = qty / step;
  double n = std::round(ratio);
  // Truncate towards zero, except that a ratio a hair below a whole number (0.3 / 0.1) is that number.
  if (std::abs(ratio - n) > kStepTolerance * std::max(1.0, std::abs(n))) n = std::trunc(ratio);
  return multiple_of(n, step);
}

std::optional<std::string> filters_violation(const SymbolFilters& f, double qty, double price) {
  if (rule_set(f.tick_size) && !is_multiple(price, f.tick_size))
    return "PRICE_FILTER: price " + number_text(price) + " is not a multiple of tick " + number_text(f.tick_size);
  if (rule_set(f.min_qty) && qty < f.min_qty * (1 - kStepTolerance))
    return "LOT_SIZE: quantity " + number_text(qty) + " < minimum " + number_text(f.min_qty);
  if (rule_set(f.max_qty) && qty > f.max_qty * (1 + kStepTolerance))
    return "LOT_SIZE: quantity " + number_text(qty) + " > maximum " + number_text(f.max_qty);
  if (rule_set(f.step_size) && !is_multiple(qty, f.step_size))
    return "LOT_SIZE: quantity " + number_text(qty) + " is not a multiple of step " + number_text(f.step_size);
  if (rule_set(f.min_notional) && qty * price < f.min_notional * (1 - kStepTolerance))
    return "MIN_NOTIONAL: " + number_text(qty * price) + " < " + number_text(f.min_notional);
  return std::nullopt;
}

}  // namespace detail

double price_to_tick(double price, double tick) {
  if (!(std::isfinite(tick) && tick > 0) || !std::isfinite(price)) return price;
  return detail::price_to_tick(price, tick);
}

double qty_to_step(double qty, double step) {
  if (!(std::isfinite(step) && step > 0) || !std::isfinite(qty)) return qty;
  return detail::qty_to_step(qty, step);
}

std::optional<std::string> filters_violation(const SymbolFilters& f, double qty, double price) {
  return detail::filters_violation(f, qty, price);
}

std::string order_client_id(std::uint64_t order_id) { return "qt-" + std::to_string(order_id); }

}  // namespace qtos
