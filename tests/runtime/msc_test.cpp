// The Meta Strategy Controller: the regime detector (unit cases and its confusion matrix on the synthetic market's
// labelled regimes), the risk-mode hysteresis, policy updates through a real PolicyStore, the health alert, and every
// mode in a replay (OBSERVE changes nothing, ADVISORY publishes without writing, ENFORCED changes the trading).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/data/synth.hpp"
#include "runtime/subsystems/regime_detector.hpp"
#include "runtime/util/rng.hpp"

namespace qtos {
namespace {

// ---- the detector ------------------------------------------------------------------------------------------------

/// A panel of `symbols` x `bars` hourly bars whose log returns are drift + vol x N(0,1) (a common factor share `common`).
MarketPanel toy_panel(std::int32_t symbols, std::int32_t bars, double drift, double vol, double common, std::uint64_t seed) {
  std::vector<std::string> names;
  for (std::int32_t s = 0; s < symbols; ++s) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "T%dUSDT", s);
    names.emplace_back(buf);
  }
  MarketPanel p(names, bars, 0, 3'600'000);
  Rng rng(seed);
  std::vector<double> factor(static_cast<std::size_t>(bars));
  for (auto& f : factor) f = rng.normal();
  for (std::int32_t s = 0; s < symbols; ++s) {
    auto c = p.series_mut(Column::close, s);
    double lp = std::log(100.0);
    for (std::int32_t t = 0; t < bars; ++t) {
      lp += drift + vol * (std::sqrt(common) * factor[static_cast<std::size_t>(t)] + std::sqrt(1 - common) * rng.normal());
      c[static_cast<std::size_t>(t)] = static_cast<float>(std::exp(lp));
    }
  }
  p.valid_ranges_recompute();
  return p;
}

MarketConditions run_to_end(const MarketPanel& p, RegimeDetectorOptions o = {}) {
  RegimeDetector d(o);
  for (std::int32_t t = 0; t < p.n_bars(); ++t) d.on_panel_bar(p, t);
  return d.analyze();
}

TEST(MscRegimeDetector, CleanUpTrendIsTrendingUp) {
  const MarketConditions c = run_to_end(toy_panel(20, 1000, 0.002, 0.01, 0.5, 1));
  EXPECT_EQ(c.regime, Regime::trending_up) << c.describe();
  EXPECT_GT(c.trend, 1.0);
  EXPECT_GT(c.breadth, 0.9);
  EXPECT_GT(c.confidence, 0.5);
  EXPECT_NEAR(c.correlation, 0.5, 0.15);
  EXPECT_EQ(c.symbols, 20);
}

TEST(MscRegimeDetector, FlatNoiseIsRanging) {
  const MarketConditions c = run_to_end(toy_panel(20, 1000, 0.0, 0.01, 0.3, 2));
  EXPECT_EQ(c.regime, Regime::ranging) << c.describe();
  EXPECT_NEAR(c.volatility_ratio, 1.0, 0.3);
  EXPECT_NEAR(c.correlation, 0.3, 0.15);
}

TEST(MscRegimeDetector, ACrashIsCrashAndAVolatileChopIsVolatile) {
  // 900 calm bars, then 12 bars of a joint fall at five times the volatility.
  MarketPanel p = toy_panel(20, 912, 0.0, 0.01, 0.4, 3);
  Rng rng(9);
  for (std::int32_t s = 0; s < p.n_symbols(); ++s) {
    auto c = p.series_mut(Column::close, s);
    for (std::int32_t t = 900; t < 912; ++t) c[static_cast<std::size_t>(t)] = c[static_cast<std::size_t>(t - 1)] * static_cast<float>(std::exp(-0.03 + 0.01 * rng.normal()));
  }
  MarketConditions c = run_to_end(p);
  EXPECT_EQ(c.regime, Regime::crash) << c.describe();
  EXPECT_LT(c.fast_breadth, 0.1);
  // The same volatility without the fall: VOLATILE, not CRASH.
  MarketPanel q = toy_panel(20, 912, 0.0, 0.01, 0.4, 3);
  for (std::int32_t s = 0; s < q.n_symbols(); ++s) {
    auto c2 = q.series_mut(Column::close, s);
    for (std::int32_t t = 900; t < 912; ++t)
      c2[static_cast<std::size_t>(t)] = c2[static_cast<std::size_t>(t - 1)] * static_cast<float>(std::exp((t % 2 ? 0.04 : -0.04) + 0.01 * rng.normal()));
  }
  c = run_to_end(q);
  EXPECT_EQ(c.regime, Regime::high_volatility) << c.describe();
}

TEST(MscRegimeDetector, UnknownWhileWarmingUpAndStaleSymbolsLeftOut) {
  const MarketPanel p = toy_panel(5, 1000, 0.002, 0.01, 0.5, 4);
  RegimeDetector d;
  for (std::int32_t t = 0; t < 200; ++t) d.on_panel_bar(p, t);
  EXPECT_EQ(d.analyze().regime, Regime::unknown);
  EXPECT_EQ(d.analyze().symbols, 0);
  for (std::int32_t t = 200; t < 1000; ++t) d.on_panel_bar(p, t);
  EXPECT_EQ(d.analyze().symbols, 5);
  // Only one symbol keeps trading: the four others go stale and the detector has too few symbols.
  const std::int32_t s0 = d.symbol_index("T0USDT");
  for (std::int32_t t = 1000; t < 1010; ++t) d.on_close(s0, t, 100.0 + t);
  EXPECT_EQ(d.analyze().symbols, 1);
  EXPECT_EQ(d.analyze().regime, Regime::unknown);
  EXPECT_THROW(d.on_close(99, 2000, 1.0), std::invalid_argument);
  RegimeDetectorOptions bad;
  bad.long_vol_window = 10;
  EXPECT_THROW(RegimeDetector{bad}, std::invalid_argument);
}

// ---- the confusion matrix on the synthetic market -------------------------------------------------------------------

/// Rows: the synthetic market's label; columns: the detected regime (UNKNOWN, TRENDING_UP, TRENDING_DOWN, RANGING,
/// VOLATILE, LOW_VOLATILITY, CRASH).
struct Confusion {
  std::array<std::array<std::int64_t, 7>, 4> n{};
  std::int64_t row(int r) const {
    std::int64_t s = 0;
    for (auto v : n[static_cast<std::size_t>(r)]) s += v;
    return s;
  }
  double recall(int r, std::initializer_list<Regime> good) const {
    std::int64_t hit = 0;
    for (Regime g : good) hit += n[static_cast<std::size_t>(r)][static_cast<std::size_t>(g)];
    return row(r) ? static_cast<double>(hit) / static_cast<double>(row(r)) : 0.0;
  }
  double up() const { return recall(0, {Regime::trending_up}); }
  double down() const { return recall(1, {Regime::trending_down}); }
  double ranging() const { return recall(2, {Regime::ranging}); }
  double shock() const { return recall(3, {Regime::high_volatility, Regime::crash}); }
  /// Mean recall over the labels that occur (a seed may have no shock at all).
  double balanced() const {
    const double rec[] = {up(), down(), ranging(), shock()};
    double sum = 0;
    int rows = 0;
    for (int r = 0; r < 4; ++r)
      if (row(r)) sum += rec[r], ++rows;
    return rows ? sum / rows : 0.0;
  }
  std::string text() const {
    std::string out = "truth \\ detected   TRENDING_UP TRENDING_DOWN  RANGING VOLATILE    CRASH  recall\n";
    const Regime cols[] = {Regime::trending_up, Regime::trending_down, Regime::ranging, Regime::high_volatility, Regime::crash};
    const double rec[] = {up(), down(), ranging(), shock()};
    for (int r = 0; r < 4; ++r) {
      char buf[200];
      int k = std::snprintf(buf, sizeof buf, "%-18s", synth_regime_name(static_cast<SynthRegime>(r)));
      for (Regime c : cols) k += std::snprintf(buf + k, sizeof buf - static_cast<std::size_t>(k), " %12lld",
                                               static_cast<long long>(n[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)]));
      std::snprintf(buf + k, sizeof buf - static_cast<std::size_t>(k), "  %5.1f%%\n", 100 * rec[r]);
      out += buf;
    }
    char buf[80];
    std::snprintf(buf, sizeof buf, "balanced accuracy %.1f%%\n", 100 * balanced());
    return out + buf;
  }
};

/// The detector run over a synthetic market (30 symbols x 4000 hourly bars by default), read every `every` bars after
/// the warm-up, against the market's own label of that bar.
Confusion confusion(std::uint64_t seed, const RegimeDetectorOptions& o = {}, std::int32_t symbols = 30, std::int32_t bars = 4000,
                    std::int32_t every = 1) {
  SynthOptions so;
  so.n_symbols = symbols;
  so.n_bars = bars;
  so.seed = seed;
  const SynthMarket m = synth_generate(so);
  RegimeDetector d(o);
  Confusion cm;
  for (std::int32_t t = 0; t < bars; ++t) {
    d.on_panel_bar(m.panel, t);
    if (t % every) continue;
    const MarketConditions& c = d.analyze();
    if (c.regime == Regime::unknown) continue;
    ++cm.n[static_cast<std::size_t>(m.regimes[static_cast<std::size_t>(t)])][static_cast<std::size_t>(c.regime)];
  }
  return cm;
}

TEST(MscRegimeDetector, ConfusionMatrixOnTheSyntheticMarketsLabelledRegimes) {
  // Seeds 1-4 were used to tune the defaults; 5-8 were not. 30 symbols x 20000 hourly bars each (shocks are rare:
  // about 2 a year, 36 bars long).
  std::string report;
  std::array<Confusion, 2> sets;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    const Confusion cm = confusion(seed, {}, 30, 20000, 2);
    Confusion& into = sets[seed <= 4 ? 0 : 1];
    for (std::size_t r = 0; r < 4; ++r)
      for (std::size_t c = 0; c < 7; ++c) into.n[r][c] += cm.n[r][c];
    // Better than chance (25% balanced) on every single seed.
    EXPECT_GT(cm.balanced(), 0.40) << "seed " << seed << "\n" << cm.text();
  }
  report += "seeds 1-4 (tuned on):\n";
  report += sets[0].text();
  report += "seeds 5-8 (held out):\n";
  report += sets[1].text();
  std::printf("%s", report.c_str());
  std::ofstream("msc_confusion_matrix.txt") << report;
  for (const Confusion& cm : sets) {
    // Floors a broken detector fails: one that always says RANGING scores 25% balanced and 0% on the others.
    EXPECT_GT(cm.balanced(), 0.50) << cm.text();
    EXPECT_GT(cm.up(), 0.28) << cm.text();
    EXPECT_GT(cm.down(), 0.22) << cm.text();
    EXPECT_GT(cm.ranging(), 0.60) << cm.text();
    EXPECT_GT(cm.shock(), 0.70) << cm.text();
  }
}

// TEMPORARY tuning harness
TEST(MscRegimeDetector, DISABLED_Tune) {
  RegimeDetectorOptions o;
  auto e = [](const char* n, double& v) { if (const char* s = std::getenv(n)) v = std::atof(s); };
  auto ei = [](const char* n, std::int32_t& v) { if (const char* s = std::getenv(n)) v = std::atoi(s); };
  ei("TW", o.trend_window); ei("SW", o.short_vol_window); ei("LW", o.long_vol_window); ei("FW", o.fast_window);
  ei("CW", o.corr_window); e("TT", o.trend_t); e("BU", o.breadth_up); e("BD", o.breadth_down); e("VR", o.volatile_ratio);
  e("CT", o.crash_t); e("CB", o.crash_breadth); e("CC", o.crash_corr);
  const char* seeds = std::getenv("SEEDS");
  std::string ss = seeds ? seeds : "1234";
  const std::int32_t bars = std::getenv("BARS") ? std::atoi(std::getenv("BARS")) : 20000;
  Confusion all;
  for (char ch : ss) {
    const Confusion cm = confusion(static_cast<std::uint64_t>(ch - '0'), o, 30, bars);
    if (std::getenv("V")) std::printf("seed %c\n%s", ch, cm.text().c_str());
    for (std::size_t r = 0; r < 4; ++r)
      for (std::size_t c = 0; c < 7; ++c) all.n[r][c] += cm.n[r][c];
  }
  std::printf("%s", all.text().c_str());
}

}  // namespace
}  // namespace qtos
