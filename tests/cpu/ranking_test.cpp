// Opportunity ranking: robust z-scores, filters with reasons, weights from the policy, the volatility band, the
// model column, TOP_N, explanations, and incremental == full recompute.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/indicators/reference.hpp"
#include "cpu/indicators/streaming.hpp"
#include "cpu/ranking/opportunity.hpp"
#include "cpu/registry/backends.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace ranking_test {

using kernels::Feature;
using kernels::FeatureRow;

/// A complete, unremarkable feature row; tests then change one input.
FeatureRow row_typical(double scale = 1.0) {
  FeatureRow r;
  r.value[int(Feature::close)] = 100.0f;
  r.value[int(Feature::ma_alignment)] = float(0.01 * scale);
  r.value[int(Feature::adx)] = float(25.0 * scale);
  r.value[int(Feature::atr_pct)] = 0.02f;
  r.value[int(Feature::bb_width)] = 0.08f;
  r.value[int(Feature::roc)] = float(2.0 * scale);
  r.value[int(Feature::dollar_volume)] = float(1e6 * scale);
  r.value[int(Feature::spread)] = 0.001f;
  r.value[int(Feature::drawdown)] = 0.1f;
  r.history = 100;
  r.last_bar = 100;
  return r;
}

std::vector<std::string> names(std::size_t n) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back("SYM" + std::to_string(i) + "USDT");
  return v;
}

TEST(RobustZ, MedianAndMadResistAnOutlier) {
  const std::vector<double> x = {1, 2, 3, 4, 100, NAN};
  const auto z = robust_z(x);
  // median 3, |deviations| {2,1,0,1,97} -> MAD 1, scale 1.4826
  EXPECT_NEAR(z[0], -2.0 / 1.4826, 1e-12);
  EXPECT_NEAR(z[2], 0.0, 1e-12);
  EXPECT_NEAR(z[3], 1.0 / 1.4826, 1e-12);
  EXPECT_EQ(z[4], 3.0);  // clipped
  EXPECT_TRUE(std::isnan(z[5]));
  const std::vector<double> flat = {5, 5, 5, 5};
  for (double v : robust_z(flat)) EXPECT_EQ(v, 0.0);
  const std::vector<double> mostly_flat = {5, 5, 5, 9};  // MAD 0 -> mean absolute deviation fallback
  EXPECT_GT(robust_z(mostly_flat)[3], 0.0);
}

TEST(OpportunityRank, FiltersCarryTheirReasons) {
  std::vector<FeatureRow> f(8, row_typical());
  f[1].last_bar = -1;                                      // no data
  f[2].last_bar = 90;                                      // 10 bars old
  f[3].history = 30;                                       // short history
  f[4].value[int(Feature::dollar_volume)] = 10.0f;         // illiquid
  f[5].value[int(Feature::spread)] = 0.2f;                 // wide
  f[6].value[int(Feature::adx)] = NAN;                     // a feature still in its lookback
  const auto sym = names(f.size());
  RankFilters flt;
  flt.min_dollar_volume = 1000.0;
  flt.blacklist = {sym[7]};
  const Ranking r = opportunity_rank(f, sym, 100, RankWeights{}, flt);
  EXPECT_EQ(r.eligible, 1);
  EXPECT_EQ(r.rows[0].symbol, sym[0]);
  EXPECT_EQ(r.rows[0].rank, 1);
  auto reason = [&](std::size_t i) { return r.find(sym[i])->reason; };
  EXPECT_EQ(reason(1), FilterReason::no_data);
  EXPECT_EQ(reason(2), FilterReason::stale);
  EXPECT_EQ(reason(3), FilterReason::insufficient_history);
  EXPECT_EQ(reason(4), FilterReason::low_dollar_volume);
  EXPECT_EQ(reason(5), FilterReason::wide_spread);
  EXPECT_EQ(reason(6), FilterReason::insufficient_history);
  EXPECT_EQ(reason(7), FilterReason::blacklisted);
  EXPECT_NE(r.find(sym[2])->reason_text.find("10 bars old (max 3)"), std::string::npos) << r.find(sym[2])->reason_text;
  EXPECT_NE(r.find(sym[3])->reason_text.find("30 consecutive bars of history (need 60)"), std::string::npos);
  EXPECT_EQ(r.find(sym[4])->rank, 0);

  RankFilters only;
  only.whitelist = {sym[0], sym[3]};
  const Ranking w = opportunity_rank(f, sym, 100, RankWeights{}, only);
  EXPECT_EQ(w.find(sym[5])->reason, FilterReason::not_whitelisted);
  EXPECT_EQ(w.find(sym[3])->reason, FilterReason::insufficient_history);
}

TEST(OpportunityRank, WeightsDecideWhichCriterionLeads) {
  // A: strong trend, weak momentum. B: weak trend, strong momentum. C, D: middling.
  std::vector<FeatureRow> f(4, row_typical());
  f[0].value[int(Feature::adx)] = 50.0f;
  f[0].value[int(Feature::roc)] = -5.0f;
  f[1].value[int(Feature::adx)] = 10.0f;
  f[1].value[int(Feature::roc)] = 9.0f;
  f[2].value[int(Feature::adx)] = 25.0f;
  f[3].value[int(Feature::adx)] = 30.0f;
  const std::vector<std::string> sym = {"A", "B", "C", "D"};
  RankWeights trend_only = rank_weights_from_policy({{"weight.volatility", 0}, {"weight.liquidity", 0},
                                                     {"weight.performance", 0}, {"weight.model", 0}});
  RankWeights perf_only = rank_weights_from_policy({{"weight.trend", 0}, {"weight.volatility", 0},
                                                    {"weight.liquidity", 0}, {"weight.model", 0}});
  EXPECT_EQ(opportunity_rank(f, sym, 100, trend_only, {}).rows[0].symbol, "A");
  EXPECT_EQ(opportunity_rank(f, sym, 100, perf_only, {}).rows[0].symbol, "B");
  const auto r = opportunity_rank(f, sym, 100, trend_only, {});
  for (const auto& row : r.rows) EXPECT_DOUBLE_EQ(row.score, row.sub[size_t(Criterion::trend)]) << row.symbol;
  EXPECT_THROW(rank_weights_from_policy({{"weight.trnd", 1}}), std::invalid_argument);
  EXPECT_THROW(rank_weights_from_policy({{"weight.trend", -1}}), std::invalid_argument);
}

TEST(OpportunityRank, VolatilityScoresBestInsideTheBand) {
  std::vector<FeatureRow> f(9, row_typical());
  for (std::size_t i = 0; i < f.size(); ++i) {
    f[i].value[int(Feature::atr_pct)] = float(0.01 * std::pow(1.3, double(i)));
    f[i].value[int(Feature::bb_width)] = float(0.04 * std::pow(1.3, double(i)));
  }
  const auto sym = names(f.size());
  const auto r = opportunity_rank(f, sym, 100, RankWeights{}, {});
  const auto vol = [&](std::size_t i) { return r.find(sym[i])->sub[size_t(Criterion::volatility)]; };
  EXPECT_EQ(vol(4), 0.0);             // the median symbol: inside the band
  EXPECT_LT(vol(8), vol(6));          // "more" is not better
  EXPECT_LT(vol(0), vol(2));          // nor is "less"
  EXPECT_NEAR(vol(0), vol(8), 1e-6);  // symmetric in log space (inputs are floats)
}

TEST(OpportunityRank, ModelColumnCountsOnlyWhenPresent) {
  std::vector<FeatureRow> f;
  for (int i = 0; i < 5; ++i) f.push_back(row_typical(1.0 + 0.1 * i));
  const auto sym = names(f.size());
  const auto base = opportunity_rank(f, sym, 100, RankWeights{}, {});
  const std::vector<double> none(5, NAN);
  const auto with_nan = opportunity_rank(f, sym, 100, RankWeights{}, {}, none);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(base.rows[i].symbol, with_nan.rows[i].symbol);
    EXPECT_DOUBLE_EQ(base.rows[i].score, with_nan.rows[i].score);
    EXPECT_TRUE(std::isnan(with_nan.rows[i].sub[size_t(Criterion::model)]));
  }
  const std::vector<double> pred = {5, 0, 0, 0, -5};  // the model loves SYM0 and hates SYM4
  RankWeights heavy_model;
  heavy_model.weight[size_t(Criterion::model)] = 100.0;
  const auto m = opportunity_rank(f, sym, 100, heavy_model, {}, pred);
  EXPECT_EQ(m.rows.front().symbol, "SYM0USDT");
  EXPECT_EQ(m.rows[4].symbol, "SYM4USDT");
}

TEST(OpportunityRank, TopNAndExplain) {
  std::vector<FeatureRow> f;
  for (int i = 0; i < 30; ++i) f.push_back(row_typical(1.0 + 0.05 * i));
  f[29].history = 1;
  const auto sym = names(f.size());
  const auto r = opportunity_rank(f, sym, 100, RankWeights{}, {});
  EXPECT_EQ(r.eligible, 29);
  EXPECT_EQ(r.top(20).size(), 20u);
  EXPECT_EQ(r.top(100).size(), 29u);
  for (std::size_t i = 1; i < r.top(29).size(); ++i) EXPECT_GE(r.rows[i - 1].score, r.rows[i].score);
  const std::string e = ranking_explain(r, r.rows[0].symbol, RankWeights{});
  EXPECT_NE(e.find("rank 1 of 29"), std::string::npos) << e;
  EXPECT_NE(e.find("trend: sub-score"), std::string::npos) << e;
  EXPECT_NE(e.find("model: absent"), std::string::npos) << e;
  const std::string filtered = ranking_explain(r, sym[29], RankWeights{});
  EXPECT_NE(filtered.find("filtered (insufficient_history)"), std::string::npos) << filtered;
  EXPECT_THROW(ranking_explain(r, "NOPE", RankWeights{}), std::invalid_argument);
}

TEST(RankingFeatures, MatchTheIndependentReferencesAtTheEvaluationBar) {
  const auto panel = testing::synthetic_panel(6, 180, 21, false);
  const kernels::FeatureParams fp;
  std::vector<FeatureRow> rows(6);
  features_serial(panel.view(), fp, 0, 179, rows);  // double states, stored as float
  for (std::int32_t s = 0; s < 6; ++s) {
    const auto h = panel.row(panel.high, s, 0, 180), l = panel.row(panel.low, s, 0, 180);
    const auto c = panel.row(panel.close, s, 0, 180), q = panel.row(panel.qvol, s, 0, 180);
    const auto f = [&](Feature x) { return static_cast<double>(rows[static_cast<std::size_t>(s)].get(x)); };
    const auto near = [](double got, double want, const char* what) {
      EXPECT_NEAR(got, want, 2e-6 * std::fabs(want) + 1e-9) << what;  // features are stored as float
    };
    near(f(Feature::close), c.back(), "close");
    near(f(Feature::ma_alignment), reference::ema(c, 20).back() / reference::ema(c, 50).back() - 1.0, "alignment");
    near(f(Feature::adx), reference::dmi(h, l, c, 14)[2].back(), "adx");
    near(f(Feature::atr_pct), reference::atr(h, l, c, 14).back() / c.back(), "atr%");
    near(f(Feature::bb_width), reference::bbands(c, 20, 2.0)[3].back(), "bb width");
    near(f(Feature::roc), reference::roc(c, 20)[0].back(), "roc");
    near(f(Feature::dollar_volume), reference::dollar_volume(q, 20)[0].back() / 20.0, "dollar volume");
    near(f(Feature::spread), reference::spread(h, l, 20).back(), "spread");
    near(f(Feature::drawdown), reference::max_drawdown(c, 60).back(), "drawdown");
    EXPECT_EQ(rows[static_cast<std::size_t>(s)].history, 180);
    EXPECT_EQ(rows[static_cast<std::size_t>(s)].last_bar, 179);
  }
}

TEST(OpportunityRank, IncrementalUpdateEqualsFullRecompute) {
  const auto panel = testing::synthetic_panel(70, 200, 5);
  const kernels::FeatureParams fp;
  const auto sym = names(70);
  auto backends = indicator_backends();
  const IndicatorBackend& cpu = *backends.back();
  FeatureEngine engine(70, fp);
  engine.replay(panel.view(), 0, 150);
  for (std::int32_t t = 151; t < 200; ++t) {
    engine.advance_from(panel.view(), t);
    std::vector<FeatureRow> full(70);
    cpu.features(panel.view(), fp, 0, t, full);
    for (std::size_t s = 0; s < full.size(); ++s) {
      ASSERT_EQ(engine.rows()[s].history, full[s].history) << "s=" << s << " t=" << t;
      ASSERT_EQ(engine.rows()[s].last_bar, full[s].last_bar) << "s=" << s << " t=" << t;
      for (int k = 0; k < kernels::kFeatureCount; ++k) {
        const float a = engine.rows()[s].value[k], b = full[s].value[k];
        if (std::isnan(b)) ASSERT_TRUE(std::isnan(a)) << "feature " << k << " s=" << s << " t=" << t;
        else ASSERT_EQ(a, b) << "feature " << k << " s=" << s << " t=" << t;
      }
    }
    if (t == 199) {
      const auto a = opportunity_rank(engine.rows(), sym, t, RankWeights{}, {});
      const auto b = opportunity_rank(full, sym, t, RankWeights{}, {});
      ASSERT_EQ(a.eligible, b.eligible);
      EXPECT_GT(a.eligible, 40);
      for (std::size_t i = 0; i < a.rows.size(); ++i) {
        EXPECT_EQ(a.rows[i].symbol, b.rows[i].symbol);
        EXPECT_EQ(a.rows[i].score, b.rows[i].score);
      }
      // Late listings (s%7==3 list at bar 40) have 160 bars; the delisted ones (s%13==4, last bar 179) are stale.
      EXPECT_EQ(a.find(sym[4])->reason, FilterReason::stale);
    }
  }
  EXPECT_THROW(engine.advance_from(panel.view(), 150), std::invalid_argument);
}

}  // namespace ranking_test
}  // namespace qtos
