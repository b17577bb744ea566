// The indicator columns of the feature builder: each equals the shared kernel state run over the symbol's bars from
// bar 0 (and a textbook formula written out here), restarts after a gap, and the inference carry changes nothing.
#include "models/features.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/kernels/indicators.hpp"
#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace feature_indicators_test {

using testing::SyntheticMarket;

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

/// Column of a named feature.
std::int32_t col(const FeatureSpec& spec, const std::string& name) {
  const auto n = spec.names();
  const auto it = std::find(n.begin(), n.end(), name);
  EXPECT_NE(it, n.end()) << name;
  return static_cast<std::int32_t>(it - n.begin());
}

/// Output `j` of kernel state `Ind` run over bars [from, n_bars) of symbol s (the independent computation).
template <class Ind>
std::vector<double> kernel_series(const SyntheticMarket& m, std::int32_t s, kernels::IndicatorParams q, int j,
                                  std::int32_t from = 0) {
  Ind ind;
  ind.init(q);
  const auto off = static_cast<std::size_t>(s * m.stride + from);
  const std::int32_t n = m.n_bars - from;
  std::vector<double> out(static_cast<std::size_t>(n) * Ind::kOutputs);
  // Restarting after a missing bar: the premise of the gap test below (a spec under reset-after:0).
  std::vector<std::int32_t> scratch(static_cast<std::size_t>(n));
  kernels::indicator_row_run<double>(ind, m.high.data() + off, m.low.data() + off, m.close.data() + off,
                                     m.volume.data() + off, n, out.data(), n, kernels::gap_reset_after(0), scratch.data());
  return std::vector<double>(out.begin() + static_cast<std::ptrdiff_t>(j) * n,
                             out.begin() + static_cast<std::ptrdiff_t>(j + 1) * n);
}

kernels::IndicatorParams period(std::int32_t n) {
  kernels::IndicatorParams q;
  q.period = n;
  q.k = 2.0;
  return q;
}

TEST(FeatureIndicators, ColumnsEqualTheSharedKernelStatesRunFromBarZero) {
  SyntheticMarket m(4, 260, 0.05, 21);
  const FeatureSpec spec;
  const auto tab = features_build(m.view(), spec);
  for (std::int32_t s : {0, 3}) {
    const auto rsi = kernel_series<kernels::RsiState<double>>(m, s, period(spec.rsi_period), 0);
    const auto atr = kernel_series<kernels::AtrState<double>>(m, s, period(spec.atr_period), 0);
    const auto pdi = kernel_series<kernels::DmiState<double>>(m, s, period(spec.adx_period), 0);
    const auto mdi = kernel_series<kernels::DmiState<double>>(m, s, period(spec.adx_period), 1);
    const auto adx = kernel_series<kernels::DmiState<double>>(m, s, period(spec.adx_period), 2);
    const auto width = kernel_series<kernels::BbandsState<double>>(m, s, period(spec.bbands_period), 3);
    const auto pctb = kernel_series<kernels::BbandsState<double>>(m, s, period(spec.bbands_period), 4);
    const auto spread = kernel_series<kernels::SpreadState<double>>(m, s, period(spec.spread_window), 0);
    const auto rvol = kernel_series<kernels::RvolState<double>>(m, s, period(spec.vol_window), 0);
    const float* c = m.close.data() + s * m.stride;
    for (std::int32_t t : {spec.warmup(), 60, 151, 259}) {
      const auto u = static_cast<std::size_t>(t);
      const float* r = tab.row(s, t);
      SCOPED_TRACE("symbol " + std::to_string(s) + " bar " + std::to_string(t));
      EXPECT_FLOAT_EQ(r[col(spec, "rsi")], static_cast<float>(rsi[u] / 100.0 - 0.5));
      EXPECT_FLOAT_EQ(r[col(spec, "log_atr")], static_cast<float>(std::log(atr[u] / c[t])));
      EXPECT_FLOAT_EQ(r[col(spec, "adx")], static_cast<float>(adx[u] / 100.0));
      EXPECT_FLOAT_EQ(r[col(spec, "di_diff")], static_cast<float>((pdi[u] - mdi[u]) / 100.0));
      EXPECT_FLOAT_EQ(r[col(spec, "bb_pctb")], static_cast<float>(pctb[u] - 0.5));
      EXPECT_FLOAT_EQ(r[col(spec, "log_bb_width")], static_cast<float>(std::log(width[u])));
      EXPECT_FLOAT_EQ(r[col(spec, "log_spread")], static_cast<float>(std::log(spread[u] + 1e-4)));
      EXPECT_FLOAT_EQ(r[col(spec, "log_vol")], static_cast<float>(std::log(rvol[u])));
      EXPECT_FLOAT_EQ(tab.scale[static_cast<std::size_t>(tab.at(s, t))],
                      static_cast<float>(rvol[u] * std::sqrt(double(spec.horizon))));
    }
  }
}

// Textbook definitions written out independently of the kernels (TA-Lib seeding, docs/INDICATORS.md).
TEST(FeatureIndicators, ColumnsMatchTextbookFormulas) {
  SyntheticMarket m(2, 200, 0.0, 33);
  FeatureSpec spec;
  const auto tab = features_build(m.view(), spec);
  const std::int32_t s = 1;
  const float* c = m.close.data() + s * m.stride;
  const float* h = m.high.data() + s * m.stride;
  const float* l = m.low.data() + s * m.stride;
  for (std::int32_t t : {40, 123, 199}) {
    SCOPED_TRACE("bar " + std::to_string(t));
    const float* r = tab.row(s, t);
    // Wilder RSI(14): mean of the first 14 gains and losses, then (avg*13 + x)/14.
    const int n = spec.rsi_period;
    double gain = 0, loss = 0;
    for (int i = 1; i <= n; ++i) {
      const double d = double(c[i]) - c[i - 1];
      gain += std::max(d, 0.0) / n;
      loss += std::max(-d, 0.0) / n;
    }
    for (int i = n + 1; i <= t; ++i) {
      const double d = double(c[i]) - c[i - 1];
      gain = (gain * (n - 1) + std::max(d, 0.0)) / n;
      loss = (loss * (n - 1) + std::max(-d, 0.0)) / n;
    }
    EXPECT_NEAR(r[col(spec, "rsi")], 100.0 * gain / (gain + loss) / 100.0 - 0.5, 1e-5);
    // Wilder ATR(14): first = mean of the first 14 true ranges (from bar 1).
    auto tr = [&](int i) {
      return std::max({double(h[i]) - l[i], std::abs(double(h[i]) - c[i - 1]), std::abs(double(l[i]) - c[i - 1])});
    };
    double atr = 0;
    for (int i = 1; i <= spec.atr_period; ++i) atr += tr(i) / spec.atr_period;
    for (int i = spec.atr_period + 1; i <= t; ++i) atr = (atr * (spec.atr_period - 1) + tr(i)) / spec.atr_period;
    EXPECT_NEAR(r[col(spec, "log_atr")], std::log(atr / c[t]), 1e-5);
    // Bollinger(20, 2) on the population standard deviation.
    const int nb = spec.bbands_period;
    double mean = 0, var = 0;
    for (int k = 0; k < nb; ++k) mean += double(c[t - k]) / nb;
    for (int k = 0; k < nb; ++k) var += (c[t - k] - mean) * (c[t - k] - mean) / nb;
    const double upper = mean + 2 * std::sqrt(var), lower = mean - 2 * std::sqrt(var);
    EXPECT_NEAR(r[col(spec, "bb_pctb")], (c[t] - lower) / (upper - lower) - 0.5, 1e-5);
    EXPECT_NEAR(r[col(spec, "log_bb_width")], std::log((upper - lower) / mean), 1e-5);
    // Corwin-Schultz as printed in the paper, floored at 0, averaged over the last 20 pairs.
    const double cc = 3.0 - 2.0 * std::sqrt(2.0);
    double sum = 0;
    for (int k = 0; k < spec.spread_window; ++k) {
      const int b = t - k, a = b - 1;
      const double beta = std::pow(std::log(double(h[a]) / l[a]), 2) + std::pow(std::log(double(h[b]) / l[b]), 2);
      const double gamma = std::pow(std::log(std::max(double(h[a]), double(h[b])) / std::min(double(l[a]), double(l[b]))), 2);
      const double alpha = (std::sqrt(2 * beta) - std::sqrt(beta)) / cc - std::sqrt(gamma / cc);
      sum += std::max(0.0, 2 * (std::exp(alpha) - 1) / (1 + std::exp(alpha)));
    }
    EXPECT_NEAR(r[col(spec, "log_spread")], std::log(sum / spec.spread_window + 1e-4), 1e-4);
    // Sample standard deviation of the last 20 1-bar log returns.
    double rs = 0, rss = 0;
    for (int k = 0; k < spec.vol_window; ++k) {
      const double x = std::log(double(c[t - k]) / c[t - k - 1]);
      rs += x;
      rss += x * x;
    }
    const double sigma = std::sqrt((rss - rs * rs / spec.vol_window) / (spec.vol_window - 1));
    EXPECT_NEAR(r[col(spec, "log_vol")], std::log(sigma), 1e-4);
    double vsum = 0;
    for (int k = 0; k < spec.volume_window; ++k) vsum += m.volume[static_cast<std::size_t>(s * m.stride + t - k)];
    EXPECT_NEAR(r[col(spec, "volume_ratio")],
                std::log((m.volume[static_cast<std::size_t>(s * m.stride + t)] + 1.0) / (vsum / spec.volume_window + 1.0)), 1e-5);
  }
}

TEST(FeatureIndicators, UnderResetAfterZeroAGapRestartsEveryIndicator) {
  SyntheticMarket m(2, 220, 0.0, 44);
  const std::int32_t g = 90;
  m.gap(0, g);
  FeatureSpec spec;
  spec.gaps = kernels::gap_reset_after(0);  // the premise: a missing bar restarts (tests/models/features_gaps_test.cpp: skip)
  const auto tab = features_build(m.view(), spec);
  // Bars g .. g + warmup have no features (the run after the gap is too short); the next bar has all of them.
  for (std::int32_t t = g; t <= g + spec.warmup(); ++t)
    for (std::int32_t f = 0; f < spec.n_features(); ++f) ASSERT_TRUE(std::isnan(tab.row(0, t)[f])) << f << " at " << t;
  const std::int32_t t1 = g + spec.warmup() + 1;
  for (std::int32_t f = 0; f < spec.n_features(); ++f) EXPECT_TRUE(std::isfinite(tab.row(0, t1)[f])) << f;
  // After the gap each state starts afresh at bar g + 1: the same as the kernel run from there.
  for (std::int32_t t : {t1, 150, 219}) {
    const auto u = static_cast<std::size_t>(t - g - 1);
    const auto rsi = kernel_series<kernels::RsiState<double>>(m, 0, period(spec.rsi_period), 0, g + 1);
    const auto adx = kernel_series<kernels::DmiState<double>>(m, 0, period(spec.adx_period), 2, g + 1);
    EXPECT_FLOAT_EQ(tab.row(0, t)[col(spec, "rsi")], static_cast<float>(rsi[u] / 100.0 - 0.5));
    EXPECT_FLOAT_EQ(tab.row(0, t)[col(spec, "adx")], static_cast<float>(adx[u] / 100.0));
  }
  // The other symbol is untouched by symbol 0's gap.
  EXPECT_TRUE(std::isfinite(tab.row(1, g)[0]));
}

TEST(FeatureIndicators, ABarsFeaturesDoNotDependOnWhereTheBuildStarts) {
  SyntheticMarket m(3, 300, 0.1, 55);
  m.gap(1, 120);
  m.gap(2, 200);
  const FeatureSpec spec;
  const auto full = features_build(m.view(), spec);
  for (std::int32_t begin : {0, 1, 26, 27, 28, 119, 121, 150, 240, 299}) {
    const auto part = features_build(m.view(), spec, begin, 300);
    for (std::int32_t s = 0; s < m.n_symbols; ++s)
      for (std::int32_t t = begin; t < 300; ++t) {
        for (std::int32_t f = 0; f < spec.n_features(); ++f)
          ASSERT_TRUE(same_bits(full.row(s, t)[f], part.row(s, t)[f])) << "begin " << begin << " s " << s << " t " << t << " f " << f;
        ASSERT_TRUE(same_bits(full.scale[full.at(s, t)], part.scale[part.at(s, t)]));
      }
  }
}

TEST(FeatureIndicators, TheCarryReplaysOnlyNewBarsAndChangesNoFeature) {
  SyntheticMarket m(3, 200, 0.0, 66);
  const FeatureSpec spec;
  const auto full = features_build(m.view(), spec);
  FeatureCarry carry;
  auto check = [&](const FeatureTable& ref, const FeatureTable& got, std::int32_t t) {
    for (std::int32_t s = 0; s < m.n_symbols; ++s)
      for (std::int32_t f = 0; f < spec.n_features(); ++f)
        ASSERT_TRUE(same_bits(ref.row(s, t)[f], got.row(s, t)[f])) << "s " << s << " t " << t << " f " << f;
  };
  // A cold call replays every symbol's history; each following bar then costs one bar per symbol (the carry keeps
  // the states after the last emitted bar), and so does asking for the same bar again (and the states at its start).
  check(full, features_build(m.view(), spec, 150, 151, &carry), 150);
  EXPECT_EQ(carry.bars_replayed(), 3 * 151);
  for (std::int32_t t = 151; t < 160; ++t) {
    check(full, features_build(m.view(), spec, t, t + 1, &carry), t);
    EXPECT_EQ(carry.bars_replayed(), 3 * 1);
  }
  check(full, features_build(m.view(), spec, 159, 160, &carry), 159);
  EXPECT_EQ(carry.bars_replayed(), 3 * 1);
  // A jump forward replays the bars in between; a range of several bars emits them all.
  check(full, features_build(m.view(), spec, 170, 171, &carry), 170);
  EXPECT_EQ(carry.bars_replayed(), 3 * 11);
  const auto range = features_build(m.view(), spec, 171, 180, &carry);
  for (std::int32_t t = 171; t < 180; ++t) check(full, range, t);
  EXPECT_EQ(carry.bars_replayed(), 3 * 9);
  // Going back starts over.
  check(full, features_build(m.view(), spec, 100, 101, &carry), 100);
  EXPECT_EQ(carry.bars_replayed(), 3 * 101);
  // The last bar the carry consumed, rewritten in place: that symbol (only) starts over, and the features follow
  // the new data.
  (void)features_build(m.view(), spec, 120, 121, &carry);
  m.close[static_cast<std::size_t>(1 * m.stride + 120)] *= 1.01F;
  const auto changed = features_build(m.view(), spec);
  check(changed, features_build(m.view(), spec, 121, 122, &carry), 121);
  EXPECT_EQ(carry.bars_replayed(), 1 + 122 + 1);
  // Another panel (same values, other columns) or another spec starts over too.
  const SyntheticMarket copy = m;
  check(changed, features_build(copy.view(), spec, 122, 123, &carry), 122);
  EXPECT_EQ(carry.bars_replayed(), 3 * 123);
  FeatureSpec other = spec;
  other.rsi_period = 10;
  (void)features_build(copy.view(), other, 123, 124, &carry);
  EXPECT_EQ(carry.bars_replayed(), 3 * 124);
}

TEST(FeatureIndicators, VersionOneSpecsParseAndDifferByVersion) {
  // A model saved before the indicator features: its spec has no periods, and loading it must fail on the version.
  const std::string v1 =
      R"({"version":1,"return_lags":[1,2,4,8,16],"vol_window":20,"volume_window":20,"cross_sectional_ranks":true,)"
      R"("horizon":4,"window":16})";
  const auto old = FeatureSpec::from_json(v1);
  EXPECT_EQ(old.version, 1);
  EXPECT_EQ(old.differences(FeatureSpec{}), "version 1 vs 2; gaps reset-after:0 vs skip");  // no field: reset-after:0
  // From version 2 on the periods are required and round-trip.
  FeatureSpec spec;
  spec.adx_period = 10;
  spec.spread_window = 30;
  EXPECT_EQ(FeatureSpec::from_json(spec.to_json()), spec);
  EXPECT_EQ(spec.differences(FeatureSpec{}), "adx_period 10 vs 14; spread_window 30 vs 20");
  std::string v2 = FeatureSpec{}.to_json();
  v2.replace(v2.find("rsi_period"), 10, "rsi_perio_");
  EXPECT_THROW(FeatureSpec::from_json(v2), std::invalid_argument);
  FeatureSpec bad;
  bad.bbands_period = 1;
  try {
    bad.validate();
    FAIL() << "bbands_period 1 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bbands_period"), std::string::npos);
  }
}

}  // namespace feature_indicators_test
}  // namespace qtos::models
