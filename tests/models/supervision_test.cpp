#include "models/supervision.hpp"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace supervision_test {

using testing::SyntheticMarket;

FeatureSpec spec_small() {
  FeatureSpec spec;
  spec.return_lags = {1, 2, 4, 8};
  spec.horizon = 2;
  spec.window = 4;
  return spec;
}

std::shared_ptr<const Model> trained_on(double phi, std::uint64_t seed, const std::string& name) {
  SyntheticMarket m(12, 1400, phi, seed);
  const auto tab = features_build(m.view(), spec_small());
  TrainOptions o;
  o.epochs = 4;
  o.lr = 3e-3;
  ModelHyper h;
  h.hidden = 16;
  auto r = model_train(tab, split_by_time(tab), ModelKind::mlp, h, o);
  EXPECT_TRUE(r.ok());
  return r.value()->renamed(name, 1);
}

// "good" learned mean reversion, "bad" learned momentum; the live market mean-reverts.
class Supervisor : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    good_ = trained_on(-0.4, 1, "good");
    bad_ = trained_on(0.4, 2, "bad");
    live_ = new SyntheticMarket(12, 900, -0.4, 3);
  }
  static void TearDownTestSuite() {
    good_.reset();
    bad_.reset();
    delete live_;
  }
  SupervisorReport run(SubsystemMode mode, EnsembleManager& ens) {
    ens.members_set({{good_, 1.0}, {bad_, 1.0}});
    SupervisorOptions o;
    o.mode = mode;
    o.min_outcomes = 500;
    ModelSupervisor sup(ens, o);
    for (std::int32_t t = 100; t < live_->n_bars; ++t) sup.observe(live_->view(), t);
    return sup.evaluate();
  }
  static std::shared_ptr<const Model> good_, bad_;
  static SyntheticMarket* live_;
};
std::shared_ptr<const Model> Supervisor::good_, Supervisor::bad_;
SyntheticMarket* Supervisor::live_ = nullptr;

TEST_F(Supervisor, ScoresLiveOutcomesRecommendsWeightsAndFlagsDegradation) {
  EnsembleManager ens(spec_small());
  const auto rep = run(SubsystemMode::advisory, ens);
  ASSERT_EQ(rep.models.size(), 2U);
  const auto& good = rep.models[0].model == "good@v1" ? rep.models[0] : rep.models[1];
  const auto& bad = rep.models[0].model == "bad@v1" ? rep.models[0] : rep.models[1];
  EXPECT_GT(good.outcomes, 5000 - 1);  // the window is full
  EXPECT_GT(good.rank_ic, 0.1);
  EXPECT_GT(good.accuracy, 0.54);
  EXPECT_LT(bad.rank_ic, -0.1);
  EXPECT_GT(good.weight, 0.9);
  EXPECT_NEAR(good.weight + bad.weight, 1.0, 1e-12);
  EXPECT_FALSE(good.degraded);
  EXPECT_TRUE(bad.degraded);
  EXPECT_EQ(rep.retrain_requests, std::vector<std::string>{"bad@v1"});
  EXPECT_FALSE(rep.weights_applied);  // ADVISORY recommends only
  for (const auto& m : ens.members()) EXPECT_EQ(m.weight, 1.0);
}

TEST_F(Supervisor, EnforcedSetsTheWeightsAndOffMeasuresNothing) {
  EnsembleManager ens(spec_small());
  const auto rep = run(SubsystemMode::enforced, ens);
  EXPECT_TRUE(rep.weights_applied);
  for (const auto& m : ens.members()) {
    if (m.model->meta().name == "good") {
      EXPECT_GT(m.weight, 0.1);
    } else {
      EXPECT_NEAR(m.weight, 0.01, 1e-12);
    }
  }
  EnsembleManager ens2(spec_small());
  const auto off = run(SubsystemMode::off, ens2);
  for (const auto& m : off.models) EXPECT_EQ(m.outcomes, 0);
  EXPECT_TRUE(off.retrain_requests.empty());
  SupervisorOptions bad_opts;
  bad_opts.min_outcomes = 0;
  EXPECT_THROW(ModelSupervisor(ens2, bad_opts), std::invalid_argument);
}

class Orchestrator : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("qtos_orch_test_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  static ClmOptions clm_options() {
    ClmOptions o;
    o.enabled = true;
    o.model_name = "alpha";
    o.spec = spec_small();
    o.hyper.hidden = 16;
    o.train.epochs = 3;
    o.train.lr = 3e-3;
    return o;
  }
  std::filesystem::path root_;
};

TEST_F(Orchestrator, ModesDecideWhetherToRetrainAndWhetherToDeploy) {
  SyntheticMarket m(10, 2000, -0.4, 9);
  auto old_panel = std::make_shared<const MarketPanel>(m.to_panel(1400));
  const auto full = m.to_panel(2000);
  ModelRegistry reg(root_.string());
  EnsembleManager ens(spec_small());
  ClmSink sink;
  ContinuousLearningManager clm(reg, ens, clm_options(), sink);

  RetrainingOrchestrator observe(clm, {true, SubsystemMode::observe, true});
  EXPECT_EQ(observe.on_trigger(RetrainTrigger::degradation, old_panel), OrchestratorAction::logged);
  EXPECT_FALSE(clm.running());
  EXPECT_TRUE(reg.list().empty());
  EXPECT_EQ(observe.log().at(0), "logged: would retrain on degradation trigger for alpha");
  RetrainingOrchestrator off(clm, {false, SubsystemMode::enforced, true});
  EXPECT_EQ(off.on_trigger(RetrainTrigger::schedule, old_panel), OrchestratorAction::ignored);

  RetrainingOrchestrator advisory(clm, {true, SubsystemMode::advisory, true});
  ASSERT_EQ(advisory.on_trigger(RetrainTrigger::new_data, old_panel), OrchestratorAction::retrain_started);
  ASSERT_TRUE(clm.wait().ok());
  const auto report = clm.run_shadow_evaluation(1, full);
  ASSERT_TRUE(report.ok());
  ASSERT_TRUE(report.value().passes);
  EXPECT_EQ(advisory.on_shadow_report(report.value()), OrchestratorAction::promotion_recommended);  // never deploys
  RetrainingOrchestrator no_auto(clm, {true, SubsystemMode::enforced, false});
  EXPECT_EQ(no_auto.on_shadow_report(report.value()), OrchestratorAction::promotion_recommended);
  EXPECT_EQ(reg.get("alpha", 1).value().status, ModelStatus::shadow);
  EXPECT_TRUE(ens.members().empty());

  RetrainingOrchestrator enforced(clm, {true, SubsystemMode::enforced, true});
  EXPECT_EQ(enforced.on_shadow_report(report.value()), OrchestratorAction::promoted);
  EXPECT_EQ(reg.active("alpha")->version, 1);
  EXPECT_EQ(ens.members().size(), 1U);
  ShadowReport failing = report.value();
  failing.passes = false;
  EXPECT_EQ(enforced.on_shadow_report(failing), OrchestratorAction::promotion_refused);
  EXPECT_EQ(enforced.on_shadow_report(report.value()), OrchestratorAction::promotion_refused);  // already ACTIVE
}

}  // namespace supervision_test
}  // namespace qtos::models
