#include "models/features.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include <gtest/gtest.h>

#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace features_test {

using testing::SyntheticMarket;

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

TEST(Features, NamesMatchCountAndWarmup) {
  FeatureSpec spec;
  EXPECT_EQ(spec.n_features(), 17);
  EXPECT_EQ(static_cast<std::int32_t>(spec.names().size()), spec.n_features());
  EXPECT_EQ(spec.names().front(), "ret_1");
  EXPECT_EQ(spec.names()[8], "rsi");
  EXPECT_EQ(spec.names()[14], "log_spread");
  EXPECT_EQ(spec.names().back(), "rank_ret_16");
  EXPECT_EQ(spec.warmup(), 27);  // ADX(14): lookback 2 * 14 - 1
  EXPECT_EQ(spec.version, 2);
}

TEST(Features, PlantedFutureValueIsNeverSeen) {
  SyntheticMarket a(6, 300, 0.0, 7);
  FeatureSpec spec;
  spec.horizon = 3;
  const auto before = features_build(a.view(), spec);
  const std::int32_t t0 = 180;
  // Plant wild values in every column of every symbol after t0: a price spike, a crash, a gap, huge volume.
  SyntheticMarket b = a;
  for (std::int32_t s = 0; s < b.n_symbols; ++s) {
    for (std::int32_t t = t0 + 1; t < b.n_bars; ++t) {
      const auto i = static_cast<std::size_t>(s * b.stride + t);
      b.close[i] *= (t % 2 ? 50.0F : 0.02F);
      b.high[i] *= 60.0F;
      b.volume[i] = 1e9F;
    }
    b.gap(s, t0 + 2);
  }
  const auto after = features_build(b.view(), spec);
  std::int64_t compared = 0, finite = 0;
  for (std::int32_t s = 0; s < a.n_symbols; ++s)
    for (std::int32_t t = 0; t <= t0; ++t)
      for (std::int32_t f = 0; f < spec.n_features(); ++f) {
        ASSERT_TRUE(same_bits(before.row(s, t)[f], after.row(s, t)[f])) << "feature " << f << " of symbol " << s << " at bar " << t;
        ++compared;
        finite += std::isfinite(before.row(s, t)[f]) ? 1 : 0;
      }
  EXPECT_GT(finite, compared / 2);
  // The target does look ahead (that is its job): it changes exactly for bars whose horizon reaches past t0.
  for (std::int32_t s = 0; s < a.n_symbols; ++s) {
    for (std::int32_t t = spec.warmup(); t <= t0 - spec.horizon; ++t)
      EXPECT_TRUE(same_bits(before.forward[before.at(s, t)], after.forward[after.at(s, t)]));
    EXPECT_FALSE(same_bits(before.forward[before.at(s, t0 - spec.horizon + 1)], after.forward[after.at(s, t0 - spec.horizon + 1)]));
  }
  // And the features after t0 do see the plant (the comparison above could fail): every column but the ranks (whose
  // order may survive) differs at t0 + 1.
  for (std::int32_t f = 0; f < spec.n_features() - 2; ++f)
    EXPECT_FALSE(same_bits(before.row(0, t0 + 1)[f], after.row(0, t0 + 1)[f])) << spec.names()[static_cast<std::size_t>(f)];
}

TEST(Features, BarFeaturesDoNotDependOnTheBuiltRange) {
  SyntheticMarket m(4, 200, 0.1, 3);
  FeatureSpec spec;
  const auto full = features_build(m.view(), spec);
  const auto part = features_build(m.view(), spec, 150, 170);
  ASSERT_EQ(part.n_bars, 20);
  for (std::int32_t s = 0; s < m.n_symbols; ++s)
    for (std::int32_t t = 150; t < 170; ++t) {
      for (std::int32_t f = 0; f < spec.n_features(); ++f) ASSERT_TRUE(same_bits(full.row(s, t)[f], part.row(s, t)[f]));
      ASSERT_TRUE(same_bits(full.scale[full.at(s, t)], part.scale[part.at(s, t)]));
    }
}

TEST(Features, ValuesFollowTheirDefinitions) {
  SyntheticMarket m(3, 120, 0.0, 11);
  FeatureSpec spec;
  const auto tab = features_build(m.view(), spec);
  const std::int32_t s = 1, t = 90;
  const float* c = m.close.data() + s * m.stride;
  double sum = 0, sumsq = 0;
  for (int j = 0; j < spec.vol_window; ++j) {
    const double r = std::log(double(c[t - j]) / c[t - j - 1]);
    sum += r;
    sumsq += r * r;
  }
  const double n = spec.vol_window;
  const double sigma = std::sqrt((sumsq - sum * sum / n) / (n - 1));
  EXPECT_NEAR(tab.row(s, t)[0], std::log(double(c[t]) / c[t - 1]) / sigma, 1e-4);
  EXPECT_NEAR(tab.row(s, t)[2], std::log(double(c[t]) / c[t - 4]) / (sigma * 2.0), 1e-4);
  EXPECT_NEAR(tab.row(s, t)[5], std::log(sigma), 1e-4);
  EXPECT_NEAR(tab.forward[tab.at(s, t)], std::log(double(c[t + spec.horizon]) / c[t]), 1e-6);
  // Cross-sectional ranks of ret_1 among 3 symbols are -0.5, 0 and 0.5.
  float ranks[3];
  for (int k = 0; k < 3; ++k) ranks[k] = tab.row(k, t)[spec.n_features() - 2];
  std::sort(ranks, ranks + 3);
  EXPECT_FLOAT_EQ(ranks[0], -0.5F);
  EXPECT_FLOAT_EQ(ranks[1], 0.0F);
  EXPECT_FLOAT_EQ(ranks[2], 0.5F);
  // Before the warm-up nothing is defined, and the last H bars have no target.
  EXPECT_TRUE(std::isnan(tab.row(s, spec.warmup() - 1)[0]));
  EXPECT_TRUE(std::isnan(tab.forward[tab.at(s, m.n_bars - 1)]));
}

TEST(Features, GapsRemoveWholeWindowsFromTheSamples) {
  SyntheticMarket m(2, 200, 0.0, 5);
  m.gap(0, 100);
  FeatureSpec spec;
  spec.gaps = kernels::gap_reset_after(0);  // a missing bar restarts the states (under skip it costs one window)
  const auto tab = features_build(m.view(), spec);
  const auto samples = samples_select(tab, 0, 200, true);
  // Bar u's features read bars [u - warmup, u], so the gap spoils features at u in [100, 100 + warmup] and every
  // window that contains one; the target of bar 100 - H lands on the gap. Everything else stays.
  std::vector<std::int32_t> got, want;
  for (const auto& sr : samples)
    if (sr.s == 0 && sr.t >= 80 && sr.t < 170) got.push_back(sr.t);
  for (std::int32_t t = 80; t < 170; ++t) {
    const bool spoiled = t == 100 - spec.horizon || (t >= 100 && t - spec.window + 1 <= 100 + spec.warmup());
    if (!spoiled) want.push_back(t);
  }
  EXPECT_EQ(got, want);
  EXPECT_FALSE(samples.empty());
}

TEST(Features, TimeSplitLeavesAPurgeGapOfHorizonBars) {
  SyntheticMarket m(3, 400, 0.0, 9);
  FeatureSpec spec;
  spec.horizon = 5;
  const auto tab = features_build(m.view(), spec);
  const auto sp = split_by_time(tab, 0.6, 0.2);
  EXPECT_EQ(sp.purge, 5);
  EXPECT_LT(sp.train_begin, sp.train_end);
  EXPECT_EQ(sp.val_begin, sp.train_end + 5);
  EXPECT_EQ(sp.test_begin, sp.val_end + 5);
  EXPECT_LT(sp.test_begin, sp.test_end);
  // The last training target ends before validation begins; likewise validation and test.
  EXPECT_LT(sp.train_end - 1 + spec.horizon, sp.val_begin);
  EXPECT_LT(sp.val_end - 1 + spec.horizon, sp.test_begin);
  EXPECT_EQ(sp.train_begin, spec.warmup() + spec.window - 1);
  EXPECT_EQ(sp.test_end, m.n_bars - spec.horizon);
  EXPECT_THROW(split_by_time(features_build(m.view(), spec, 0, 40)), std::invalid_argument);
  EXPECT_THROW(split_by_time(tab, 0.8, 0.3), std::invalid_argument);
}

TEST(Features, NormalizerUsesTrainingSamplesOnly) {
  SyntheticMarket a(3, 400, 0.0, 13);
  FeatureSpec spec;
  const auto ta = features_build(a.view(), spec);
  const auto sp = split_by_time(ta);
  SyntheticMarket b = a;
  for (std::int32_t s = 0; s < b.n_symbols; ++s)
    for (std::int32_t t = sp.train_end + spec.horizon; t < b.n_bars; ++t) b.volume[static_cast<std::size_t>(s * b.stride + t)] *= 1000.0F;
  const auto tb = features_build(b.view(), spec);
  const auto na = Normalizer::fit(ta, samples_select(ta, sp.train_begin, sp.train_end, true));
  const auto nb = Normalizer::fit(tb, samples_select(tb, sp.train_begin, sp.train_end, true));
  EXPECT_EQ(na.mean, nb.mean);
  EXPECT_EQ(na.inv_std, nb.inv_std);
  const auto nf = static_cast<std::size_t>(spec.n_features());
  std::vector<float> out(nf);
  na.apply(ta.row(0, sp.train_begin), out.data());
  for (float v : out) EXPECT_LE(std::abs(v), na.clip);
  std::vector<float> buf(4 * nf);
  const std::vector<SampleRef> early{{0, 2}};  // its window would start before bar 0
  EXPECT_THROW(windows_gather(ta, na, early, 4, std::span<float>(buf)), std::invalid_argument);
  const std::vector<SampleRef> ok{{0, sp.train_begin}};
  windows_gather(ta, na, ok, 4, std::span<float>(buf));
  for (std::size_t f = 0; f < nf; ++f) EXPECT_EQ(buf[3 * nf + f], out[f]);  // the last bar of the window is the sample's bar
}

TEST(Features, SpecValidationJsonAndDifferences) {
  FeatureSpec spec;
  spec.return_lags = {1, 3};
  spec.horizon = 2;
  const auto back = FeatureSpec::from_json(spec.to_json());
  EXPECT_EQ(back, spec);
  EXPECT_EQ(spec.differences(back), "");
  FeatureSpec other = spec;
  other.horizon = 8;
  other.cross_sectional_ranks = false;
  EXPECT_EQ(spec.differences(other), "cross_sectional_ranks true vs false; horizon 2 vs 8");
  FeatureSpec bad;
  bad.return_lags = {4, 2};
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  bad = FeatureSpec{};
  bad.horizon = 0;
  try {
    bad.validate();
    FAIL() << "horizon 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("horizon"), std::string::npos);
  }
  EXPECT_THROW(FeatureSpec::from_json("{\"version\":1}"), std::invalid_argument);
  EXPECT_THROW(FeatureSpec::from_json("not json"), std::invalid_argument);
  SyntheticMarket m(1, 50, 0.0, 1);
  EXPECT_THROW(features_build(m.view(), FeatureSpec{}, 10, 60), std::invalid_argument);
}

}  // namespace features_test
}  // namespace qtos::models
