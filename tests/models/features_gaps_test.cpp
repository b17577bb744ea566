// The model features under the gap policy: under skip a panel with closures gives the features of the panel with the
// closures removed, bar for bar; under reset-after:N a gap longer than N restarts them; the spec records the policy.
#include "models/features.hpp"

#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace features_gaps_test {

using testing::SyntheticMarket;

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

/// Copies bar i of `from` to bar j of `to` (every column).
void bar_copy(const SyntheticMarket& from, std::size_t i, SyntheticMarket& to, std::size_t j) {
  to.open[j] = from.open[i];
  to.high[j] = from.high[i];
  to.low[j] = from.low[i];
  to.close[j] = from.close[i];
  to.volume[j] = from.volume[i];
  to.quote_volume[j] = from.quote_volume[i];
  to.trades[j] = from.trades[i];
}

/// Bars [begin, end) of `m` as a market of their own.
SyntheticMarket bars_of(const SyntheticMarket& m, std::int32_t symbols, std::int32_t begin, std::int32_t end) {
  SyntheticMarket c(symbols, end - begin, 0.0, 1);
  for (std::int32_t s = 0; s < symbols; ++s)
    for (std::int32_t t = begin; t < end; ++t)
      bar_copy(m, static_cast<std::size_t>(s * m.stride + t), c, static_cast<std::size_t>(s * c.stride + t - begin));
  return c;
}

/// `m` without the bars in `removed` (the same for every symbol).
SyntheticMarket compressed(const SyntheticMarket& m, const std::set<std::int32_t>& removed) {
  SyntheticMarket c(m.n_symbols, m.n_bars - static_cast<std::int32_t>(removed.size()), 0.0, 1);
  for (std::int32_t s = 0; s < m.n_symbols; ++s) {
    std::int32_t u = 0;
    for (std::int32_t t = 0; t < m.n_bars; ++t) {
      if (removed.count(t)) continue;
      bar_copy(m, static_cast<std::size_t>(s * m.stride + t), c, static_cast<std::size_t>(s * c.stride + u));
      ++u;
    }
  }
  return c;
}

/// Closures of a market that closes: two bars of every seven (a weekend), a holiday and a 40-bar outage.
std::set<std::int32_t> closures(std::int32_t n_bars) {
  std::set<std::int32_t> out;
  for (std::int32_t t = 5; t < n_bars; t += 7) out.insert({t, t + 1});
  out.insert(150);
  for (std::int32_t t = 300; t < 340; ++t) out.insert(t);
  std::erase_if(out, [&](std::int32_t t) { return t >= n_bars; });
  return out;
}

TEST(FeatureGaps, UnderSkipAPanelWithClosuresHasTheFeaturesOfThePanelWithoutThem) {
  const std::int32_t n = 480;
  SyntheticMarket m(4, n, 0.1, 71);
  const auto closed = closures(n);
  for (std::int32_t s = 0; s < m.n_symbols; ++s)
    for (std::int32_t t : closed) m.gap(s, t);
  const SyntheticMarket c = compressed(m, closed);
  FeatureSpec spec;
  ASSERT_EQ(spec.gaps, kernels::gap_skip());  // the default, as for every consumer of the panel
  const auto with = features_build(m.view(), spec);
  const auto without = features_build(c.view(), spec);
  std::int64_t finite = 0;
  for (std::int32_t s = 0; s < m.n_symbols; ++s) {
    std::int32_t u = 0;
    for (std::int32_t t = 0; t < n; ++t) {
      if (closed.count(t)) {
        for (std::int32_t f = 0; f < spec.n_features(); ++f) ASSERT_TRUE(std::isnan(with.row(s, t)[f])) << t;
        ASSERT_TRUE(std::isnan(with.forward[with.at(s, t)]));
        continue;
      }
      for (std::int32_t f = 0; f < spec.n_features(); ++f)
        ASSERT_TRUE(same_bits(with.row(s, t)[f], without.row(s, u)[f])) << "s " << s << " bar " << t << " f " << f;
      ASSERT_TRUE(same_bits(with.forward[with.at(s, t)], without.forward[without.at(s, u)])) << "target at " << t;
      ASSERT_TRUE(same_bits(with.scale[with.at(s, t)], without.scale[without.at(s, u)])) << "scale at " << t;
      finite += std::isfinite(with.forward[with.at(s, t)]) ? 1 : 0;
      ++u;
    }
  }
  // Almost every present bar has features and a target: a weekly closure costs no warm-up.
  EXPECT_GT(finite, 4 * (n - static_cast<std::int64_t>(closed.size()) - spec.warmup() - spec.horizon - 2));
  // A sample's window counts present bars: the samples (and their gathered windows) are those of the compressed panel.
  std::vector<std::int32_t> row_of;  // compressed bar -> bar
  for (std::int32_t t = 0; t < n; ++t)
    if (!closed.count(t)) row_of.push_back(t);
  const auto s_with = samples_select(with, 0, n, true), s_without = samples_select(without, 0, c.n_bars, true);
  ASSERT_EQ(s_with.size(), s_without.size());
  ASSERT_GT(s_with.size(), 1000U);
  for (std::size_t i = 0; i < s_with.size(); ++i) {
    ASSERT_EQ(s_with[i].s, s_without[i].s);
    ASSERT_EQ(s_with[i].t, row_of[static_cast<std::size_t>(s_without[i].t)]);
  }
  const Normalizer norm = Normalizer::fit(without, s_without);
  const auto nf = static_cast<std::size_t>(spec.n_features()), w = static_cast<std::size_t>(spec.window);
  std::vector<float> g_with(s_with.size() * w * nf), g_without(g_with.size());
  windows_gather(with, norm, s_with, spec.window, g_with);
  windows_gather(without, norm, s_without, spec.window, g_without);
  EXPECT_EQ(std::memcmp(g_with.data(), g_without.data(), g_with.size() * sizeof(float)), 0);
  // The same on a part of the range, and bar by bar with the inference carry.
  const auto part = features_build(m.view(), spec, 333, 420);
  FeatureCarry carry;
  for (std::int32_t t = 333; t < 420; ++t) {
    const auto one = features_build(m.view(), spec, t, t + 1, &carry);
    for (std::int32_t s = 0; s < m.n_symbols; ++s)
      for (std::int32_t f = 0; f < spec.n_features(); ++f) {
        ASSERT_TRUE(same_bits(with.row(s, t)[f], part.row(s, t)[f])) << t;
        ASSERT_TRUE(same_bits(with.row(s, t)[f], one.row(s, t)[f])) << t;
      }
  }
}

TEST(FeatureGaps, ResetAfterRestartsOnlyAfterALongerGap) {
  const std::int32_t n = 400;
  SyntheticMarket m(2, n, 0.0, 72);
  // A 3-bar gap at 100 (bridged by reset-after:5) and a 6-bar one at 250 (not bridged).
  std::set<std::int32_t> short_gap{100, 101, 102}, long_gap{250, 251, 252, 253, 254, 255};
  for (std::int32_t s = 0; s < 2; ++s)
    for (const auto* g : {&short_gap, &long_gap})
      for (std::int32_t t : *g) m.gap(s, t);
  FeatureSpec spec;
  spec.gaps = kernels::gap_reset_after(5);
  const auto got = features_build(m.view(), spec);
  FeatureSpec skip = spec;
  skip.gaps = kernels::gap_skip();
  const auto skipped = features_build(m.view(), skip);
  // Before the long gap: the same as skip (the short gap is bridged, the features right after it are defined).
  for (std::int32_t t = 0; t < 250; ++t)
    for (std::int32_t f = 0; f < spec.n_features(); ++f) ASSERT_TRUE(same_bits(got.row(0, t)[f], skipped.row(0, t)[f])) << t;
  EXPECT_TRUE(std::isfinite(got.row(0, 103)[0]));
  // After it: the states restart, so the next warmup() bars have no features, and then the features are those of a
  // build on the bars after the gap alone.
  const SyntheticMarket tail = bars_of(m, 2, 256, n);
  const auto fresh = features_build(tail.view(), spec);
  for (std::int32_t t = 256; t < n; ++t)
    for (std::int32_t f = 0; f < spec.n_features(); ++f)
      ASSERT_TRUE(same_bits(got.row(0, t)[f], fresh.row(0, t - 256)[f])) << t << " f " << f;
  EXPECT_TRUE(std::isnan(got.row(0, 256 + spec.warmup() - 1)[0]));
  EXPECT_TRUE(std::isfinite(got.row(0, 256 + spec.warmup())[0]));
  // The targets: a bridged gap takes no time (the H-th present bar ahead), an unbridged one passes at its length.
  const auto c = [&](std::int32_t t) { return static_cast<double>(m.close[static_cast<std::size_t>(t)]); };
  EXPECT_FLOAT_EQ(got.forward[got.at(0, 99)], static_cast<float>(std::log(c(106) / c(99))));
  EXPECT_FLOAT_EQ(got.forward[got.at(0, 97)], static_cast<float>(std::log(c(104) / c(97))));
  EXPECT_FLOAT_EQ(got.forward[got.at(0, 245)], static_cast<float>(std::log(c(249) / c(245))));
  for (std::int32_t t = 246; t < 250; ++t) EXPECT_TRUE(std::isnan(got.forward[got.at(0, t)])) << t;  // lands in the gap
  EXPECT_FLOAT_EQ(skipped.forward[skipped.at(0, 249)], static_cast<float>(std::log(c(259) / c(249))));
}

TEST(FeatureGaps, ResetAfterZeroRestartsAfterEveryGapAndReadsTheCalendarTarget) {
  const std::int32_t n = 300;
  SyntheticMarket m(2, n, 0.0, 73);
  for (std::int32_t t : {60, 61, 140, 200}) m.gap(0, t);
  FeatureSpec spec;
  spec.gaps = kernels::gap_reset_after(0);
  const auto got = features_build(m.view(), spec);
  // Each gap-free run of symbol 0 built alone gives its features; the target is bar t+H whenever it is present.
  const std::int32_t runs[][2] = {{0, 60}, {62, 140}, {141, 200}, {201, n}};
  for (const auto& r : runs) {
    const SyntheticMarket part = bars_of(m, 1, r[0], r[1]);
    FeatureSpec one = spec;
    one.cross_sectional_ranks = false;
    const auto alone = features_build(part.view(), one);
    for (std::int32_t t = r[0]; t < r[1]; ++t)
      for (std::int32_t f = 0; f < one.n_features(); ++f)
        ASSERT_TRUE(same_bits(got.row(0, t)[f], alone.row(0, t - r[0])[f])) << t << " f " << f;
  }
  for (std::int32_t t = 0; t + spec.horizon < n; ++t) {
    const float c = m.close[static_cast<std::size_t>(t)], ch = m.close[static_cast<std::size_t>(t + spec.horizon)];
    if (!std::isfinite(got.row(0, t)[0])) continue;
    if (std::isnan(ch)) EXPECT_TRUE(std::isnan(got.forward[got.at(0, t)])) << t;
    else EXPECT_FLOAT_EQ(got.forward[got.at(0, t)], static_cast<float>(std::log(static_cast<double>(ch) / c))) << t;
  }
}

TEST(FeatureGaps, TheSpecRecordsThePolicyAndOldSpecsMeanResetAfterZero) {
  FeatureSpec spec;
  spec.gaps = kernels::gap_reset_after(3);
  EXPECT_EQ(FeatureSpec::from_json(spec.to_json()).gaps, kernels::gap_reset_after(3));
  EXPECT_EQ(spec.differences(FeatureSpec{}), "gaps reset-after:3 vs skip");
  std::string old = FeatureSpec{}.to_json();
  const auto at = old.find(",\"gaps\"");
  ASSERT_NE(at, std::string::npos);
  old.erase(at, old.find('}', at) - at);
  EXPECT_EQ(FeatureSpec::from_json(old).gaps, kernels::gap_reset_after(0));
  spec.gaps.reset_after = -2;
  EXPECT_THROW(spec.validate(), std::invalid_argument);
}

}  // namespace features_gaps_test
}  // namespace qtos::models
