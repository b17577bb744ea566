#include "models/continuous_learning.hpp"

#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <stdexcept>

#include <gtest/gtest.h>

#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace continuous_learning_test {

using testing::SyntheticMarket;

/// Records what the manager reports.
struct RecordingSink : ClmSink {
  void on_progress(const std::string&, const EpochReport&) override {
    std::lock_guard l(m);
    ++epochs;
  }
  void on_candidate(const ModelRecord& r, RetrainTrigger t) override {
    std::lock_guard l(m);
    candidates.push_back(r.version);
    triggers.push_back(t);
  }
  void on_promoted(const ModelRecord& r, std::int32_t previous) override {
    std::lock_guard l(m);
    promoted.emplace_back(r.version, previous);
  }
  void on_health(const std::string& component, const std::string& message) override {
    std::lock_guard l(m);
    health.push_back(component + ": " + message);
  }
  std::mutex m;
  int epochs = 0;
  std::vector<std::int32_t> candidates;
  std::vector<RetrainTrigger> triggers;
  std::vector<std::pair<std::int32_t, std::int32_t>> promoted;
  std::vector<std::string> health;
};

ClmOptions clm_options() {
  ClmOptions o;
  o.enabled = true;
  o.shadow_days = 7;  // 168 hourly bars
  o.model_name = "alpha";
  o.spec.return_lags = {1, 2, 4, 8};
  o.spec.horizon = 2;
  o.spec.window = 4;
  o.hyper.hidden = 16;
  o.train.epochs = 4;
  o.train.lr = 3e-3;
  return o;
}

class Clm : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("qtos_clm_test_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::filesystem::path root_;
};

TEST(PromotionRule, NeedsTheMarginOverTheActiveValue) {
  EXPECT_TRUE(promotion_rule_passes(0.23, 0.20, 0.15));
  EXPECT_FALSE(promotion_rule_passes(0.22, 0.20, 0.15));
  EXPECT_TRUE(promotion_rule_passes(0.01, -0.10, 0.15));
  EXPECT_FALSE(promotion_rule_passes(0.001, 0.0, 0.15));  // near zero: at least 15% of the 0.01 floor
  EXPECT_TRUE(promotion_rule_passes(0.0016, 0.0, 0.15));
  EXPECT_FALSE(promotion_rule_passes(std::nan(""), 0.0, 0.15));
  Metrics m;
  m.directional_accuracy = 0.56;
  EXPECT_NEAR(promotion_metric_value(PromotionMetric::directional_edge, m), 0.06, 1e-12);
}

TEST_F(Clm, OnlyACandidateThatBeatsTheActiveOnItsShadowWindowIsPromoted) {
  SyntheticMarket planted(12, 2000, -0.4, 31), walk(12, 2000, 0.0, 32);
  const auto planted_full = planted.to_panel(2000), planted_old = planted.to_panel(1400), walk_old = walk.to_panel(1400);
  ModelRegistry reg(root_.string());
  EnsembleManager ens(clm_options().spec);
  RecordingSink sink;
  ContinuousLearningManager clm(reg, ens, clm_options(), sink);

  // v1 learns from a random walk: no skill, but with nothing active it passes and becomes ACTIVE.
  const auto v1 = clm.retrain_model(walk_old, RetrainTrigger::manual);
  ASSERT_TRUE(v1.ok()) << v1.error().message;
  EXPECT_EQ(v1.value().status, ModelStatus::candidate);
  EXPECT_EQ(clm.run_shadow_evaluation(1, planted_old).error().code, "shadow_incomplete");  // no unseen bars yet
  const auto s1 = clm.run_shadow_evaluation(1, planted_full);
  ASSERT_TRUE(s1.ok()) << s1.error().message;
  EXPECT_TRUE(s1.value().passes);
  EXPECT_EQ(s1.value().active_version, 0);
  EXPECT_GE(s1.value().bar_end - s1.value().bar_begin, 168);
  EXPECT_EQ(reg.get("alpha", 1).value().status, ModelStatus::shadow);
  ASSERT_TRUE(clm.promote_model(s1.value()).ok());
  EXPECT_EQ(ens.members().size(), 1U);

  // v2 learns the planted mean reversion: it beats v1 on the unseen bars by far more than 15% and replaces it.
  const auto v2 = clm.retrain_model(planted_old, RetrainTrigger::new_data);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2.value().parent_version, 1);
  const auto s2 = clm.run_shadow_evaluation(2, planted_full);
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2.value().active_version, 1);
  EXPECT_GT(s2.value().candidate.rank_ic, 0.1);
  EXPECT_LT(std::abs(s2.value().active.rank_ic), 0.08);
  EXPECT_TRUE(s2.value().passes);
  ASSERT_TRUE(clm.promote_model(s2.value()).ok());
  EXPECT_EQ(reg.active("alpha")->version, 2);
  EXPECT_EQ(reg.get("alpha", 1).value().status, ModelStatus::retired);
  const auto served = ens.predict(planted_full.view(), 1990);
  ASSERT_TRUE(served.ok());
  EXPECT_EQ(served.value().expected_return, reg.load(reg.get("alpha", 2).value())->predict(planted_full.view(), 1990).value().expected_return);
  EXPECT_EQ(reg.get("alpha", 2).value().stage_metrics.count("SHADOW"), 1U);
  EXPECT_EQ(reg.get("alpha", 1).value().stage_metrics.count("ACTIVE"), 1U);

  // v3 learns from a random walk again: it fails the rule, stays SHADOW, and v2 keeps serving.
  ASSERT_TRUE(clm.retrain_model(walk_old, RetrainTrigger::schedule).ok());
  const auto s3 = clm.run_shadow_evaluation(3, planted_full);
  ASSERT_TRUE(s3.ok());
  EXPECT_FALSE(s3.value().passes);
  const auto refused = clm.promote_model(s3.value());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "rule_failed");
  EXPECT_NE(refused.error().message.find("rank_ic"), std::string::npos) << refused.error().message;
  EXPECT_EQ(reg.active("alpha")->version, 2);
  EXPECT_EQ(reg.get("alpha", 3).value().status, ModelStatus::shadow);

  std::lock_guard l(sink.m);
  EXPECT_EQ(sink.candidates, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(sink.triggers[2], RetrainTrigger::schedule);
  EXPECT_EQ(sink.promoted, (std::vector<std::pair<std::int32_t, std::int32_t>>{{1, 0}, {2, 1}}));
  EXPECT_GT(sink.epochs, 0);
  EXPECT_TRUE(sink.health.empty());
  const auto ev = clm.evaluate_model(2, planted_full);
  ASSERT_TRUE(ev.ok());
  EXPECT_GT(ev.value().samples, 0);
}

TEST_F(Clm, BackgroundRetrainingCanBeCancelledAndAFailureLeavesTheActiveModel) {
  SyntheticMarket m(8, 1500, -0.4, 41);
  auto panel = std::make_shared<const MarketPanel>(m.to_panel(1500));
  ModelRegistry reg(root_.string());
  EnsembleManager ens(clm_options().spec);
  RecordingSink sink;
  auto opts = clm_options();
  opts.train.epochs = 500;
  opts.train.patience = 500;
  ContinuousLearningManager clm(reg, ens, opts, sink);
  ASSERT_TRUE(clm.retrain_async(panel, RetrainTrigger::regime_change));
  EXPECT_FALSE(clm.retrain_async(panel, RetrainTrigger::schedule));  // one job at a time
  clm.cancel();
  const auto r = clm.wait();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "cancelled");
  EXPECT_FALSE(clm.running());
  EXPECT_TRUE(reg.list().empty());

  // Put an ACTIVE model in place, then fail a job (too little data): nothing changes but a health report.
  opts.train.epochs = 2;
  ContinuousLearningManager quick(reg, ens, opts, sink);
  ASSERT_TRUE(quick.retrain_model(*panel, RetrainTrigger::manual).ok());
  ASSERT_TRUE(reg.promote("alpha", 1).ok());
  ASSERT_TRUE(reg.promote("alpha", 1).ok());
  ASSERT_EQ(ens.reload(reg), 1U);
  auto tiny = std::make_shared<const MarketPanel>(m.to_panel(30));
  ASSERT_TRUE(quick.retrain_async(tiny, RetrainTrigger::new_data));
  const auto failed = quick.wait();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, "training_failed");
  EXPECT_EQ(reg.active("alpha")->version, 1);
  EXPECT_EQ(reg.list().size(), 1U);
  EXPECT_TRUE(ens.predict(panel->view(), 1400).ok());
  std::lock_guard l(sink.m);
  ASSERT_EQ(sink.health.size(), 1U);
  EXPECT_NE(sink.health[0].find("active model is unchanged"), std::string::npos) << sink.health[0];

  ClmOptions off = clm_options();
  off.enabled = false;
  ContinuousLearningManager disabled(reg, ens, off, sink);
  EXPECT_FALSE(disabled.retrain_async(panel, RetrainTrigger::schedule));
}

TEST_F(Clm, ScheduleAndBadOptions) {
  ModelRegistry reg(root_.string());
  EnsembleManager ens(clm_options().spec);
  RecordingSink sink;
  ContinuousLearningManager clm(reg, ens, clm_options(), sink);  // default schedule: Sundays 02:00 UTC
  const std::int64_t sat = 1'704'499'200;                      // 2024-01-06T00:00:00Z, a Saturday
  EXPECT_TRUE(clm.schedule_due(sat, sat + 27 * 3600));          // Sunday 03:00
  EXPECT_FALSE(clm.schedule_due(sat, sat + 25 * 3600));         // Sunday 01:00
  EXPECT_FALSE(clm.schedule_due(sat + 26 * 3600, sat + 26 * 3600 + 6 * 86400));  // ran at 02:00; next is a week on
  auto bad = clm_options();
  bad.shadow_days = 0;
  EXPECT_THROW(ContinuousLearningManager(reg, ens, bad, sink), std::invalid_argument);
  bad = clm_options();
  bad.spec.horizon = 5;  // the ensemble serves horizon 2
  EXPECT_THROW(ContinuousLearningManager(reg, ens, bad, sink), std::invalid_argument);
  EXPECT_EQ(clm.run_shadow_evaluation(9, SyntheticMarket(2, 300, 0.0, 1).to_panel(300)).error().code, "not_found");
}

}  // namespace continuous_learning_test
}  // namespace qtos::models
