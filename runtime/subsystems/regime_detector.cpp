// The market regime detector: rolling sums of log returns per symbol, read across the universe on demand.
#include "runtime/subsystems/regime_detector.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace qtos {
namespace {

/// How far `x` is past `threshold`, in units of the threshold, mapped to [0.5, 1] (0.5: right at it).
double margin(double x, double threshold) {
  const double scale = std::max(std::fabs(threshold), 1e-9);
  return std::clamp(0.5 + 0.5 * (x - threshold) / scale, 0.5, 1.0);
}

void require(bool ok, const char* name, double value, const char* expected) {
  if (!ok)
    throw std::invalid_argument(std::string("RegimeDetectorOptions::") + name + " = " + std::to_string(value) +
                                " is out of range; expected " + expected);
}

}  // namespace

void RegimeDetectorOptions::check() const {
  require(trend_window >= 2 && trend_window <= 100'000, "trend_window", trend_window, "2 to 100000 bars");
  require(short_vol_window >= 2 && short_vol_window <= 100'000, "short_vol_window", short_vol_window, "2 to 100000 bars");
  require(long_vol_window > short_vol_window && long_vol_window <= 100'000, "long_vol_window", long_vol_window,
          "more bars than short_vol_window, at most 100000");
  require(fast_window >= 2 && fast_window <= 100'000, "fast_window", fast_window, "2 to 100000 bars");
  require(corr_window >= 4 && corr_window <= 100'000, "corr_window", corr_window, "4 to 100000 bars");
  require(max_stale_bars >= 0, "max_stale_bars", max_stale_bars, ">= 0");
  require(min_symbols >= 1, "min_symbols", min_symbols, ">= 1");
  require(std::isfinite(trend_t) && trend_t > 0, "trend_t", trend_t, "> 0");
  require(breadth_up >= 0 && breadth_up <= 1, "breadth_up", breadth_up, "[0, 1]");
  require(breadth_down >= 0 && breadth_down <= 1, "breadth_down", breadth_down, "[0, 1]");
  require(std::isfinite(volatile_ratio) && volatile_ratio > 1, "volatile_ratio", volatile_ratio, "> 1");
  require(std::isfinite(crash_t) && crash_t < 0, "crash_t", crash_t, "< 0");
  require(crash_breadth >= 0 && crash_breadth <= 1, "crash_breadth", crash_breadth, "[0, 1]");
  require(crash_corr >= -1 && crash_corr <= 1, "crash_corr", crash_corr, "[-1, 1]");
}

std::string MarketConditions::describe() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "trend %.2f, breadth %.2f, vol x%.2f, corr %.2f", trend, breadth, volatility_ratio, correlation);
  return buf;
}

RegimeDetector::RegimeDetector(RegimeDetectorOptions options) : options_(options) {
  options_.check();
  capacity_ = std::max({options_.trend_window, options_.short_vol_window, options_.long_vol_window, options_.fast_window,
                        options_.corr_window});
}

std::int32_t RegimeDetector::symbol_index(std::string_view symbol) {
  const auto it = index_.find(std::string(symbol));
  if (it != index_.end()) return it->second;
  const auto i = static_cast<std::int32_t>(series_.size());
  index_.emplace(std::string(symbol), i);
  names_.emplace_back(symbol);
  series_.emplace_back();
  series_.back().ring.assign(static_cast<std::size_t>(capacity_), 0.0);
  return i;
}

double RegimeDetector::at(const Series& s, std::uint64_t back) const {
  const auto cap = static_cast<std::uint64_t>(capacity_);
  return s.ring[static_cast<std::size_t>((s.n - 1 - back) % cap)];
}

void RegimeDetector::on_close(std::int32_t symbol, std::int64_t open_time, double close) {
  if (symbol < 0 || static_cast<std::size_t>(symbol) >= series_.size())
    throw std::invalid_argument("RegimeDetector::on_close: symbol index " + std::to_string(symbol) + " is not one of the " +
                                std::to_string(series_.size()) + " known symbols");
  if (!(std::isfinite(close) && close > 0)) return;
  Series& s = series_[static_cast<std::size_t>(symbol)];
  if (s.seen && open_time <= s.last_time) return;
  if (s.seen) {
    const double r = std::log(close / s.last_close);
    // The returns leaving each window, read before the ring slot is overwritten (the longest window may be the ring).
    auto leave = [&](std::int32_t w) { return s.n >= static_cast<std::uint64_t>(w) ? at(s, static_cast<std::uint64_t>(w) - 1) : 0.0; };
    const double out_trend = leave(options_.trend_window), out_fast = leave(options_.fast_window);
    const double out_short = leave(options_.short_vol_window), out_long = leave(options_.long_vol_window);
    s.ring[static_cast<std::size_t>(s.n % static_cast<std::uint64_t>(capacity_))] = r;
    ++s.n;
    s.sum_trend += r - out_trend;
    s.sum_fast += r - out_fast;
    s.sq_short = std::max(0.0, s.sq_short + r * r - out_short * out_short);
    s.sq_long = std::max(0.0, s.sq_long + r * r - out_long * out_long);
  }
  s.last_close = close;
  s.last_time = open_time;
  s.seen = true;
  newest_time_ = std::max(newest_time_, open_time);
  ++bars_;
}

void RegimeDetector::on_panel_bar(const MarketPanel& panel, std::int32_t t) {
  const auto& names = panel.symbols();
  for (std::int32_t s = 0; s < panel.n_symbols(); ++s) {
    const float c = panel.series(Column::close, s)[static_cast<std::size_t>(t)];
    if (!std::isfinite(c)) continue;
    on_close(symbol_index(names[static_cast<std::size_t>(s)]), t, c);
  }
}

const MarketConditions& RegimeDetector::analyze() {
  if (analyzed_at_ == bars_) return last_;
  analyzed_at_ = bars_;
  const RegimeDetectorOptions& o = options_;
  const auto warm = static_cast<std::uint64_t>(
      std::max({o.trend_window, o.short_vol_window, o.fast_window, o.corr_window, o.long_vol_window / 2}));
  MarketConditions c;
  ready_.clear();
  scratch_.clear();
  double sum_t = 0, sum_fast = 0;
  std::int32_t up = 0, fast_up = 0;
  for (std::size_t i = 0; i < series_.size(); ++i) {
    const Series& s = series_[i];
    if (!s.seen || s.n < warm || newest_time_ - s.last_time > static_cast<std::int64_t>(o.max_stale_bars) * bar_length_) continue;
    const double long_n = static_cast<double>(std::min<std::uint64_t>(s.n, static_cast<std::uint64_t>(o.long_vol_window)));
    const double sigma = std::sqrt(s.sq_long / long_n);
    if (!(sigma > 0)) continue;  // a flat price: no volatility to measure anything against
    sum_t += s.sum_trend / (sigma * std::sqrt(static_cast<double>(o.trend_window)));
    sum_fast += s.sum_fast / (sigma * std::sqrt(static_cast<double>(o.fast_window)));
    up += s.sum_trend > 0;
    fast_up += s.sum_fast > 0;
    scratch_.push_back(std::sqrt(s.sq_short / o.short_vol_window) / sigma);
    ready_.push_back(static_cast<std::int32_t>(i));
  }
  const auto n = static_cast<std::int32_t>(ready_.size());
  c.symbols = n;
  const std::int32_t needed = std::min<std::int32_t>(o.min_symbols, std::max<std::int32_t>(1, static_cast<std::int32_t>(series_.size())));
  if (n < needed || n == 0) {
    last_ = c;
    return last_;
  }
  c.trend = sum_t / n;
  c.fast_trend = sum_fast / n;
  c.breadth = static_cast<double>(up) / n;
  c.fast_breadth = static_cast<double>(fast_up) / n;
  const auto mid = scratch_.begin() + n / 2;
  std::nth_element(scratch_.begin(), mid, scratch_.end());
  c.volatility_ratio = *mid;
  if (n % 2 == 0) c.volatility_ratio = 0.5 * (c.volatility_ratio + *std::max_element(scratch_.begin(), mid));

  // Mean pairwise correlation without the pairs: with z_i the window returns standardised per symbol,
  // var(sum_i z_i) = n + n(n-1) mean(rho), so one pass over n x W numbers gives it.
  const auto w = static_cast<std::size_t>(o.corr_window);
  scratch_.assign(w, 0.0);
  std::int32_t used = 0;
  for (const std::int32_t i : ready_) {
    const Series& s = series_[static_cast<std::size_t>(i)];
    double mean = 0, sq = 0;
    for (std::size_t k = 0; k < w; ++k) mean += at(s, k);
    mean /= static_cast<double>(w);
    for (std::size_t k = 0; k < w; ++k) sq += (at(s, k) - mean) * (at(s, k) - mean);
    const double sd = std::sqrt(sq / static_cast<double>(w));
    if (!(sd > 0)) continue;
    for (std::size_t k = 0; k < w; ++k) scratch_[k] += (at(s, k) - mean) / sd;
    ++used;
  }
  if (used >= 2) {
    double var = 0;
    for (std::size_t k = 0; k < w; ++k) var += scratch_[k] * scratch_[k];
    var /= static_cast<double>(w);
    c.correlation = std::clamp((var - used) / (static_cast<double>(used) * (used - 1)), -1.0, 1.0);
  }
  classify(c, o);
  last_ = c;
  return last_;
}

void RegimeDetector::classify(MarketConditions& c, const RegimeDetectorOptions& o) {
  if (c.volatility_ratio >= o.volatile_ratio) {
    const double vol_margin = margin(c.volatility_ratio, o.volatile_ratio);
    if (c.fast_trend <= o.crash_t && c.fast_breadth <= o.crash_breadth && c.correlation >= o.crash_corr) {
      c.regime = Regime::crash;
      c.confidence = std::min(vol_margin, margin(-c.fast_trend, -o.crash_t));
    } else {
      c.regime = Regime::high_volatility;
      c.confidence = vol_margin;
    }
  } else if (c.trend >= o.trend_t && c.breadth >= o.breadth_up) {
    c.regime = Regime::trending_up;
    c.confidence = margin(c.trend, o.trend_t);
  } else if (c.trend <= -o.trend_t && c.breadth <= o.breadth_down) {
    c.regime = Regime::trending_down;
    c.confidence = margin(-c.trend, o.trend_t);
  } else {
    c.regime = Regime::ranging;
    // Calm and flat is a confident RANGING; near a trend or the volatility threshold, not.
    const double near = std::max(std::fabs(c.trend) / o.trend_t, (c.volatility_ratio - 1.0) / (o.volatile_ratio - 1.0));
    c.confidence = std::clamp(1.0 - 0.5 * near, 0.5, 1.0);
  }
}

}  // namespace qtos
