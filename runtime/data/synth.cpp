#include "runtime/data/synth.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include <tbb/parallel_for.h>

#include "cpu/util/parallel.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/util/rng.hpp"

namespace qtos {
namespace {

struct RegimeParams {
  double drift_annual;     // log drift per year of the market factor
  double vol_mult;         // multiplies the GARCH volatility
  double mean_days;        // expected duration
  double volume_mult;      // multiplies traded volume
  double spread_mult;      // multiplies the bid-ask spread
};

// Chosen to look like crypto: ~70% annualised factor volatility, trends of a month, shocks of a day or two.
constexpr RegimeParams kRegimes[4] = {
    {1.2, 0.9, 30.0, 1.1, 1.0},    // trend_up
    {-1.0, 1.1, 20.0, 1.2, 1.2},   // trend_down
    {0.0, 0.7, 25.0, 0.8, 0.9},    // ranging
    {-6.0, 3.0, 1.5, 3.0, 3.0},    // shock / crash
};

// Where a regime goes when it ends (rows: from; cols: to).
constexpr double kTransitions[4][4] = {
    {0.00, 0.35, 0.55, 0.10},
    {0.40, 0.00, 0.45, 0.15},
    {0.45, 0.40, 0.00, 0.15},
    {0.20, 0.30, 0.50, 0.00},
};

std::string symbol_name(std::int32_t i, std::int32_t n) {
  char buf[32];
  const int width = n <= 1000 ? 3 : (n <= 100000 ? 5 : 7);
  std::snprintf(buf, sizeof buf, "SYN%0*dUSDT", width, i);
  return buf;
}

}  // namespace

const char* synth_regime_name(SynthRegime r) { return enum_name(r).data(); }

void synth_options_check(const SynthOptions& opt) {
  if (opt.n_symbols < 1 || opt.n_symbols > 1'000'000)
    throw std::invalid_argument("--symbols: " + std::to_string(opt.n_symbols) + " is out of range; expected 1 to 1000000");
  if (opt.n_bars < 2 || opt.n_bars > 50'000'000)
    throw std::invalid_argument("--bars: " + std::to_string(opt.n_bars) + " is out of range; expected 2 to 50000000");
  if (opt.interval_ms <= 0)
    throw std::invalid_argument("--interval: " + std::to_string(opt.interval_ms) + " ms is out of range; expected a positive interval");
  if (static_cast<double>(opt.n_symbols) * opt.n_bars > 2.0e9)
    throw std::invalid_argument("--symbols x --bars = " + std::to_string(static_cast<std::int64_t>(opt.n_symbols) * opt.n_bars) +
                                " bars is too large; expected at most 2000000000");
  if (!(opt.late_listing_fraction >= 0 && opt.late_listing_fraction <= 1))
    throw std::invalid_argument("late listing fraction " + std::to_string(opt.late_listing_fraction) + " is out of range; expected 0 to 1");
  if (!(opt.gap_rate >= 0 && opt.gap_rate < 0.5))
    throw std::invalid_argument("gap rate " + std::to_string(opt.gap_rate) + " is out of range; expected 0 to below 0.5");
  if (!(opt.planted_momentum >= 0 && opt.planted_momentum <= 2))
    throw std::invalid_argument("--planted-momentum: " + std::to_string(opt.planted_momentum) + " is out of range; expected 0 to 2");
  if (!(opt.planted_reversion >= 0 && opt.planted_reversion <= 2))
    throw std::invalid_argument("--planted-reversion: " + std::to_string(opt.planted_reversion) + " is out of range; expected 0 to 2");
  if (opt.planted_reversion > 0 && opt.planted_momentum > 0)
    throw std::invalid_argument("--planted-reversion with --planted-momentum: expected one of them (--planted-flip alternates the two)");
  if (opt.planted_flip_bars < 0 || opt.planted_flip_bars > opt.n_bars)
    throw std::invalid_argument("--planted-flip: " + std::to_string(opt.planted_flip_bars) + " bars is out of range; expected 0 to --bars (" +
                                std::to_string(opt.n_bars) + ")");
  if (opt.planted_flip_bars > 0 && !(opt.planted_momentum > 0))
    throw std::invalid_argument("--planted-flip: expected --planted-momentum > 0 (the edge whose sign flips)");
  for (std::size_t i = 0; i < opt.regime_schedule.size(); ++i) {
    const std::int32_t first = opt.regime_schedule[i].first;
    if (first < 0 || first >= opt.n_bars || (i > 0 && first <= opt.regime_schedule[i - 1].first))
      throw std::invalid_argument("--regimes: bar " + std::to_string(first) + " (entry " + std::to_string(i + 1) +
                                  ") is out of order or range; expected increasing bars in [0, " + std::to_string(opt.n_bars) + ")");
    if (static_cast<std::size_t>(opt.regime_schedule[i].second) >= EnumNames<SynthRegime>::kCount)
      throw std::invalid_argument("--regimes: entry " + std::to_string(i + 1) + " names no regime; expected trend_up, trend_down, ranging or shock");
  }
  // The last bar's open time must stay a valid timestamp (year 9999 at the latest).
  constexpr std::int64_t kMaxMs = 253'402'300'799'999;  // 9999-12-31T23:59:59.999Z
  if (opt.t0_ms < 0 || opt.t0_ms > kMaxMs ||
      static_cast<double>(opt.t0_ms) + static_cast<double>(opt.n_bars) * static_cast<double>(opt.interval_ms) > static_cast<double>(kMaxMs))
    throw std::invalid_argument("--start: the bars would run past the year 9999 or start before 1970");
}

SynthMarket synth_generate(const SynthOptions& opt, const std::function<void(std::int32_t)>& progress) {
  synth_options_check(opt);
  panel_memory_check(static_cast<std::uint64_t>(opt.n_symbols), opt.n_bars,
                     "--symbols " + std::to_string(opt.n_symbols) + " x --bars " + std::to_string(opt.n_bars) + ": the panel");

  const std::int32_t T = opt.n_bars;
  const double bars_per_year = interval_bars_per_year(opt.interval_ms);
  const double bars_per_day = bars_per_year / 365.0;
  const double dt = 1.0 / bars_per_year;

  // Market factor and regimes: one serial stream.
  Rng mrng(opt.seed, 0);
  std::vector<SynthRegime> regimes(static_cast<std::size_t>(T));
  std::vector<double> factor(static_cast<std::size_t>(T)), factor_sigma(static_cast<std::size_t>(T));
  const double base_var = 0.70 * 0.70 * dt;  // long-run per-bar variance at 70% annualised
  const double ga = 0.08, gb = 0.90, gw = base_var * (1.0 - ga - gb);
  double var = base_var, prev_r = 0.0;
  auto regime = static_cast<SynthRegime>(mrng.below(3));  // start in a non-shock regime
  std::size_t planted = 0;  // the next entry of the schedule
  for (std::int32_t t = 0; t < T; ++t) {
    while (planted < opt.regime_schedule.size() && opt.regime_schedule[planted].first <= t) regime = opt.regime_schedule[planted++].second;
    const bool forced = planted > 0;
    const auto& rp = kRegimes[static_cast<int>(regime)];
    if (t > 0 && !forced && mrng.uniform() < 1.0 / std::max(1.0, rp.mean_days * bars_per_day)) {
      const double u = mrng.uniform();
      double acc = 0.0;
      for (int j = 0; j < 4; ++j) {
        acc += kTransitions[static_cast<int>(regime)][j];
        if (u < acc) {
          regime = static_cast<SynthRegime>(j);
          break;
        }
      }
    }
    const auto& p = kRegimes[static_cast<int>(regime)];
    var = gw + ga * prev_r * prev_r + gb * var;
    const double vol_mult = opt.random_walk ? 1.0 : p.vol_mult;
    const double sigma = std::sqrt(var) * vol_mult;
    const double r = (opt.random_walk ? 0.0 : p.drift_annual * dt) + sigma * mrng.normal();
    regimes[static_cast<std::size_t>(t)] = regime;
    factor[static_cast<std::size_t>(t)] = r;
    factor_sigma[static_cast<std::size_t>(t)] = sigma;
    prev_r = r / vol_mult;  // GARCH reacts to the unscaled shock so a crash does not persist for weeks
  }

  // Sign of the planted edge per bar: +1 momentum, -1 reversion (calmer). Its own stream, so markets without flips
  // draw exactly the numbers they always did.
  std::vector<std::int8_t> edge_sign(static_cast<std::size_t>(T), 1);
  if (opt.planted_flip_bars > 0) {
    Rng frng(opt.seed, 0xf119);
    std::int8_t sign = frng.uniform() < 0.5 ? 1 : -1;
    for (std::int32_t t = 0; t < T; ++t) {
      if (t > 0 && frng.uniform() < 1.0 / opt.planted_flip_bars) sign = static_cast<std::int8_t>(-sign);
      edge_sign[static_cast<std::size_t>(t)] = sign;
    }
  }
  const double planted_edge = opt.planted_momentum > 0 ? opt.planted_momentum : -opt.planted_reversion;

  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(opt.n_symbols));
  for (std::int32_t s = 0; s < opt.n_symbols; ++s) names.push_back(symbol_name(s, opt.n_symbols));
  SynthMarket m{MarketPanel(std::move(names), T, opt.t0_ms, opt.interval_ms), std::move(regimes), {}};
  m.betas.resize(static_cast<std::size_t>(opt.n_symbols));

  std::atomic<std::int32_t> done{0};
  std::mutex progress_mutex;
  qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, opt.n_symbols, 8), [&](const auto& range) {
    for (std::int32_t s = range.begin(); s != range.end(); ++s) {
      Rng rng(opt.seed, static_cast<std::uint64_t>(s) + 1);
      const double beta = rng.uniform(0.5, 1.8);
      const double idio_vol = 0.35 * std::exp(0.4 * rng.normal());             // annualised
      const double log_price0 = std::log(10.0) * rng.uniform(-2.0, 4.5);       // 0.01 .. 30,000 quote units
      const double log_liq = std::log(10.0) * rng.uniform(4.5, 8.5);           // 30k .. 300M quote volume per day
      const double base_spread = std::clamp(2e-4 * std::exp(-(log_liq - std::log(1e7)) * 0.5), 5e-5, 5e-3);  // fraction
      const double trade_size = 50.0 * std::exp(0.3 * (log_liq - std::log(1e6)) + 0.3 * rng.normal());
      const std::int32_t listing =
          rng.uniform() < opt.late_listing_fraction ? static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(T / 2 + 1))) : 0;
      m.betas[static_cast<std::size_t>(s)] = static_cast<float>(beta);

      auto o = m.panel.series_mut(Column::open, s);
      auto h = m.panel.series_mut(Column::high, s);
      auto l = m.panel.series_mut(Column::low, s);
      auto c = m.panel.series_mut(Column::close, s);
      auto v = m.panel.series_mut(Column::volume, s);
      auto qv = m.panel.series_mut(Column::quote_volume, s);
      auto n = m.panel.series_mut(Column::trades, s);

      const double ivar0 = idio_vol * idio_vol * dt;
      double ivar = ivar0, prev_e = 0.0, log_p = log_price0, anchor = log_price0, trend = 0.0;
      const double daily_liq = std::exp(log_liq);
      for (std::int32_t t = listing; t < T; ++t) {
        const auto ti = static_cast<std::size_t>(t);
        const auto& rp = kRegimes[static_cast<int>(m.regimes[ti])];
        ivar = ivar0 * 0.05 + 0.10 * prev_e * prev_e + 0.85 * ivar;
        // Fat tails: a normal scaled by a random variance multiplier (a scale mixture).
        const double tail = rng.uniform() < 0.03 ? 3.0 : 1.0;
        const double e = std::sqrt(ivar) * tail * rng.normal();
        prev_e = e / tail;
        const double calm = edge_sign[ti] < 0 ? 0.6 : 1.0;  // reversion regimes of a flipping market are calmer
        double r = (beta * factor[ti] + e) * calm;
        if (m.regimes[ti] == SynthRegime::ranging && !opt.random_walk) r -= 0.02 * (log_p - anchor);  // mean reversion while ranging
        // A random walk is a martingale in price: the log return gives up half its variance (the fat-tail mixture's
        // 0.97 + 0.03 x 9 included), so no rule, long or short, has a positive expected return before costs.
        if (opt.random_walk) r -= 0.5 * (beta * beta * factor_sigma[ti] * factor_sigma[ti] + 1.24 * ivar);
        if (planted_edge != 0) {
          const double bar_vol = std::sqrt(beta * beta * factor_sigma[ti] * factor_sigma[ti] + ivar) * calm;
          r += planted_edge * edge_sign[ti] * bar_vol * (trend > 0 ? 1.0 : (trend < 0 ? -1.0 : 0.0));
          trend += 0.1 * (r - trend);
        }
        anchor += 0.01 * (log_p - anchor);
        const bool gap = rng.uniform() < opt.gap_rate;
        const double log_open = log_p + 0.05 * std::sqrt(ivar) * rng.normal();
        log_p = log_open + r;
        if (gap) continue;  // the exchange was down: no bar, but the price moved on
        const double bar_sigma = std::sqrt(beta * beta * factor_sigma[ti] * factor_sigma[ti] + ivar) * calm;
        const double spread = base_spread * rp.spread_mult * std::exp(0.25 * rng.normal());
        const double open = std::exp(log_open), close = std::exp(log_p);
        // Highs trade at the ask and lows at the bid, so the bar range carries the spread (Corwin-Schultz).
        double hi = std::max(open, close) * std::exp(std::fabs(rng.normal()) * 0.6 * bar_sigma) * (1.0 + spread / 2);
        double lo = std::min(open, close) * std::exp(-std::fabs(rng.normal()) * 0.6 * bar_sigma) * (1.0 - spread / 2);
        if (opt.random_walk) {
          // The extremes of the path between open and close (a Brownian bridge of the bar's variance), not noise drawn
          // apart from it: a range drawn apart would let a far target sell at highs the path never paid for, an edge
          // no random walk has. max = (x + sqrt(x^2 - 2 v ln U)) / 2 for a bridge from 0 to x.
          const double x = log_p - log_open, var_bar = bar_sigma * bar_sigma;
          const double up = 0.5 * (x + std::sqrt(x * x - 2.0 * var_bar * std::log(1.0 - rng.uniform())));
          const double down = 0.5 * (x - std::sqrt(x * x - 2.0 * var_bar * std::log(1.0 - rng.uniform())));
          hi = open * std::exp(up) * (1.0 + spread / 2);
          lo = open * std::exp(down) * (1.0 - spread / 2);
        }
        const double activity = 1.0 + 2.0 * std::fabs(r) / std::max(bar_sigma, 1e-12);
        const double quote = daily_liq / bars_per_day * rp.volume_mult * activity * std::exp(0.5 * rng.normal());
        const double typical = (hi + lo + close) / 3.0;
        o[ti] = static_cast<float>(open);
        c[ti] = static_cast<float>(close);
        // Rounding to float must not break low <= open, close <= high.
        h[ti] = std::max({static_cast<float>(hi), o[ti], c[ti]});
        l[ti] = std::min({static_cast<float>(lo), o[ti], c[ti]});
        qv[ti] = static_cast<float>(quote);
        v[ti] = static_cast<float>(quote / typical);
        n[ti] = static_cast<float>(std::max(1.0, std::round(quote / trade_size)));
      }
      const std::int32_t now = done.fetch_add(1) + 1;
      if (progress && (now % 16 == 0 || now == opt.n_symbols)) {
        std::lock_guard lock(progress_mutex);
        progress(now);
      }
    }
  });
  m.panel.valid_ranges_recompute();
  return m;
}

}  // namespace qtos
