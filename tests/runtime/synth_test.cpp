// The synthetic market: deterministic per seed, valid bars, regimes, a common factor with per-symbol beta, and the
// planted edges the search-quality study runs on (momentum, mean reversion, a momentum edge that flips sign).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/data/synth.hpp"

namespace qtos {
namespace synth_test {

SynthOptions opts(std::uint64_t seed) {
  SynthOptions o;
  o.n_symbols = 40;
  o.n_bars = 3000;
  o.seed = seed;
  return o;
}

TEST(Synth, SameSeedSamePanelBitForBit) {
  const auto a = synth_generate(opts(11)), b = synth_generate(opts(11)), c = synth_generate(opts(12));
  bool differs = false;
  for (std::int32_t s = 0; s < a.panel.n_symbols(); ++s) {
    for (int col = 0; col < kColumnCount; ++col) {
      const auto x = a.panel.series(static_cast<Column>(col), s), y = b.panel.series(static_cast<Column>(col), s),
                 z = c.panel.series(static_cast<Column>(col), s);
      EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size_bytes())) << "symbol " << s << " column " << col;
      differs |= std::memcmp(x.data(), z.data(), x.size_bytes()) != 0;
    }
  }
  EXPECT_TRUE(differs) << "another seed must give another market";
  EXPECT_EQ(a.regimes, b.regimes);
}

TEST(Synth, EveryBarIsAValidKline) {
  const auto m = synth_generate(opts(3));
  std::int64_t bars = 0;
  for (std::int32_t s = 0; s < m.panel.n_symbols(); ++s) {
    for (std::int32_t t = 0; t < m.panel.n_bars(); ++t) {
      const auto i = static_cast<std::size_t>(t);
      const float o = m.panel.series(Column::open, s)[i], h = m.panel.series(Column::high, s)[i],
                  l = m.panel.series(Column::low, s)[i], c = m.panel.series(Column::close, s)[i];
      const float v = m.panel.series(Column::volume, s)[i], qv = m.panel.series(Column::quote_volume, s)[i];
      if (!m.panel.has_bar(s, t)) {
        EXPECT_TRUE(std::isnan(o) && std::isnan(h) && std::isnan(l));
        EXPECT_EQ(v, 0.0f);
        continue;
      }
      ++bars;
      ASSERT_GT(l, 0.0f);
      ASSERT_LE(l, std::min(o, c)) << s << "," << t;
      ASSERT_GE(h, std::max(o, c)) << s << "," << t;
      ASSERT_GT(v, 0.0f);
      ASSERT_GT(qv, 0.0f);
      ASSERT_GE(m.panel.series(Column::trades, s)[i], 1.0f);
    }
  }
  EXPECT_GT(bars, 40 * 3000 / 2);
}

TEST(Synth, HasAllRegimesLateListingsAndGapsOverALongRun) {
  SynthOptions o = opts(5);
  o.n_bars = 20000;
  o.n_symbols = 20;
  o.gap_rate = 0.001;
  const auto m = synth_generate(o);
  std::size_t counts[4] = {};
  for (auto r : m.regimes) ++counts[static_cast<int>(r)];
  for (int r = 0; r < 4; ++r) EXPECT_GT(counts[r], 0u) << synth_regime_name(static_cast<SynthRegime>(r));
  int late = 0, gaps = 0;
  for (std::int32_t s = 0; s < m.panel.n_symbols(); ++s) {
    late += m.panel.first_bar(s) > 0;
    for (std::int32_t t = m.panel.first_bar(s); t <= m.panel.last_bar(s); ++t) gaps += !m.panel.has_bar(s, t);
  }
  EXPECT_GT(late, 0);
  EXPECT_GT(gaps, 0);
}

// Returns co-move with a common factor: the cross-sectional mean return explains a large part of each symbol's,
// and high-beta symbols move more with it than low-beta ones.
TEST(Synth, CommonFactorWithPerSymbolBeta) {
  SynthOptions o = opts(9);
  o.late_listing_fraction = 0;
  o.gap_rate = 0;
  const auto m = synth_generate(o);
  const auto T = static_cast<std::size_t>(o.n_bars);
  std::vector<double> mkt(T, 0.0);
  std::vector<std::vector<double>> r(static_cast<std::size_t>(o.n_symbols), std::vector<double>(T, 0.0));
  for (std::int32_t s = 0; s < o.n_symbols; ++s) {
    const auto c = m.panel.series(Column::close, s);
    for (std::size_t t = 1; t < T; ++t) {
      r[static_cast<std::size_t>(s)][t] = std::log(c[t] / c[t - 1]);
      mkt[t] += r[static_cast<std::size_t>(s)][t] / o.n_symbols;
    }
  }
  const double mv = std::inner_product(mkt.begin(), mkt.end(), mkt.begin(), 0.0);
  std::vector<std::pair<float, double>> beta_vs_est;
  double mean_corr = 0;
  for (std::int32_t s = 0; s < o.n_symbols; ++s) {
    const auto& x = r[static_cast<std::size_t>(s)];
    const double cov = std::inner_product(x.begin(), x.end(), mkt.begin(), 0.0);
    const double xv = std::inner_product(x.begin(), x.end(), x.begin(), 0.0);
    mean_corr += cov / std::sqrt(xv * mv) / o.n_symbols;
    beta_vs_est.emplace_back(m.betas[static_cast<std::size_t>(s)], cov / mv);
  }
  EXPECT_GT(mean_corr, 0.4);
  std::sort(beta_vs_est.begin(), beta_vs_est.end());
  double low = 0, high = 0;
  for (std::size_t i = 0; i < 10; ++i) low += beta_vs_est[i].second, high += beta_vs_est[beta_vs_est.size() - 1 - i].second;
  EXPECT_GT(high, low * 1.5);
}

/// Per 200-bar window of the whole panel: the correlation of each bar's close-to-close log return with the sign of the
/// summed previous 10 returns, pooled over the symbols (the planted edges act on a ~10-bar trend).
std::vector<double> trend_correlations(const SynthMarket& m) {
  std::vector<double> out;
  const std::int32_t T = m.panel.n_bars();
  for (std::int32_t w0 = 20; w0 + 200 <= T; w0 += 200) {
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, n = 0;
    for (std::int32_t s = 0; s < m.panel.n_symbols(); ++s) {
      const auto c = m.panel.series(Column::close, s);
      for (std::int32_t t = w0; t < w0 + 200; ++t) {
        const auto i = static_cast<std::size_t>(t);
        if (!std::isfinite(c[i]) || !std::isfinite(c[i - 1]) || !std::isfinite(c[i - 11])) continue;
        const double x = std::log(c[i - 1] / c[i - 11]) > 0 ? 1.0 : -1.0, y = std::log(c[i] / c[i - 1]);
        sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y, n += 1;
      }
    }
    out.push_back((sxy - sx * sy / n) / std::sqrt((sxx - sx * sx / n) * (syy - sy * sy / n)));
  }
  return out;
}

double mean_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); }

TEST(SynthPlanted, MomentumReversionAndAFlippingEdgeHaveTheirSigns) {
  SynthOptions o = opts(3);
  o.n_symbols = 10;
  o.n_bars = 6000;
  o.planted_momentum = 0.15;
  const auto mom = trend_correlations(synth_generate(o));
  o.planted_momentum = 0;
  o.planted_reversion = 0.15;
  const auto rev = trend_correlations(synth_generate(o));
  o.planted_reversion = 0;
  const auto none = trend_correlations(synth_generate(o));
  o.planted_momentum = 0.2;
  o.planted_flip_bars = 600;
  const SynthMarket flip_market = synth_generate(o);
  const auto flip = trend_correlations(flip_market);
  EXPECT_GT(mean_of(mom), mean_of(none) + 0.02);
  EXPECT_LT(mean_of(rev), mean_of(none) - 0.02);
  // The flipping edge: clear momentum windows and clear reversion windows, where the pure momentum market has almost
  // no reversion window.
  auto count = [](const std::vector<double>& v, double lo, double hi) {
    return std::count_if(v.begin(), v.end(), [&](double x) { return x > lo && x < hi; });
  };
  EXPECT_GE(count(flip, 0.03, 1), 4);
  EXPECT_GE(count(flip, -1, -0.03), 4);
  EXPECT_LE(count(mom, -1, -0.03), 1);
  // Deterministic per seed, and another stream than the plain market's: the flips change the prices.
  const SynthMarket again = synth_generate(o);
  const auto a = flip_market.panel.series(Column::close, 0), b = again.panel.series(Column::close, 0);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size_bytes()));
}

TEST(SynthPlanted, BadPlantedOptionsAreNamed) {
  auto err = [](SynthOptions o) {
    try {
      synth_options_check(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SynthOptions o;
  o.planted_reversion = 3;
  EXPECT_NE(err(o).find("--planted-reversion: 3"), std::string::npos) << err(o);
  o.planted_reversion = 0.1;
  o.planted_momentum = 0.1;
  EXPECT_NE(err(o).find("expected one of them"), std::string::npos) << err(o);
  o.planted_reversion = 0;
  o.planted_momentum = 0;
  o.planted_flip_bars = 100;
  EXPECT_NE(err(o).find("--planted-flip: expected --planted-momentum > 0"), std::string::npos) << err(o);
  o.planted_momentum = 0.1;
  o.planted_flip_bars = -1;
  EXPECT_NE(err(o).find("--planted-flip: -1 bars is out of range"), std::string::npos) << err(o);
  o.planted_flip_bars = 100;
  EXPECT_EQ(err(o), "");
}

TEST(Synth, BadOptionsNameTheOption) {
  SynthOptions o;
  o.n_symbols = 0;
  try {
    synth_generate(o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--symbols: 0"), std::string::npos) << e.what();
  }
  o.n_symbols = 3;
  o.n_bars = 1;
  EXPECT_THROW(synth_generate(o), std::invalid_argument);
}

TEST(Synth, OutOfRangeOptionsAndTooLargePanelsAreRefusedBeforeWork) {
  SynthOptions o;
  o.planted_momentum = 5;
  try {
    synth_options_check(o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--planted-momentum: 5"), std::string::npos) << e.what();
  }
  o.planted_momentum = 0;
  o.n_bars = 0;
  EXPECT_THROW(synth_options_check(o), std::invalid_argument);
  o.n_bars = 100'000;
  o.n_symbols = 100;
  ::setenv("QTOS_TEST_MEMORY_BYTES", "1000000", 1);
  try {
    synth_generate(o);
    ADD_FAILURE() << "a 280 MB panel was generated under a 1 MB limit";
  } catch (const PanelTooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("--symbols 100 x --bars 100000: the panel needs 280 MB of memory, have 1 MB"),
              std::string::npos)
        << e.what();
  }
  ::unsetenv("QTOS_TEST_MEMORY_BYTES");
}

}  // namespace synth_test
}  // namespace qtos

namespace qtos {
namespace synth_test {

TEST(SynthSchedule, PlantedRegimesHoldFromTheirFirstBarAndLeaveTheRestAlone) {
  SynthOptions o;
  o.n_symbols = 4;
  o.n_bars = 600;
  o.seed = 3;
  const SynthMarket free = synth_generate(o);
  o.regime_schedule = {{200, SynthRegime::ranging}, {400, SynthRegime::shock}, {450, SynthRegime::trend_up}};
  const SynthMarket planted = synth_generate(o);
  for (std::int32_t t = 0; t < 200; ++t) ASSERT_EQ(planted.regimes[static_cast<std::size_t>(t)], free.regimes[static_cast<std::size_t>(t)]) << t;
  for (std::int32_t t = 200; t < 400; ++t) ASSERT_EQ(planted.regimes[static_cast<std::size_t>(t)], SynthRegime::ranging) << t;
  for (std::int32_t t = 400; t < 450; ++t) ASSERT_EQ(planted.regimes[static_cast<std::size_t>(t)], SynthRegime::shock) << t;
  for (std::int32_t t = 450; t < 600; ++t) ASSERT_EQ(planted.regimes[static_cast<std::size_t>(t)], SynthRegime::trend_up) << t;
  // The planted shock falls: the market's mean close ends its 50 bars lower than it started them.
  const auto view = planted.panel.view();
  double before = 0, after = 0;
  for (std::int32_t s = 0; s < 4; ++s) before += view.close[view.at(s, 399)], after += view.close[view.at(s, 449)];
  EXPECT_LT(after, before);
  o.regime_schedule = {{400, SynthRegime::ranging}, {300, SynthRegime::shock}};
  EXPECT_THROW(synth_generate(o), std::invalid_argument);
}

}  // namespace synth_test
}  // namespace qtos
