#include "models/clm_service.hpp"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace clm_service_test {

using testing::SyntheticMarket;

class ClmService : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("qtos_clmsvc_test_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  static ClmServiceOptions options() {
    ClmServiceOptions o;
    o.clm.enabled = true;
    o.clm.model_name = "alpha";
    o.clm.spec.return_lags = {1, 2, 4, 8};
    o.clm.spec.horizon = 2;
    o.clm.spec.window = 4;
    o.clm.hyper.hidden = 16;
    o.clm.train.epochs = 3;
    o.clm.train.lr = 3e-3;
    o.orchestrator = {true, SubsystemMode::enforced, true};
    o.supervisor.mode = SubsystemMode::observe;
    o.supervisor.min_outcomes = 100;
    return o;
  }
  std::filesystem::path root_;
};

TEST_F(ClmService, NewDataTrainsShadowsAndPromotesWithAModelPromotedEvent) {
  SimClock clock(1'704'067'200LL * kNsPerSecond);  // 2024-01-01T00:00:00Z, a Monday
  EventBus bus(clock);
  std::vector<ModelPromoted> promoted;
  std::vector<HealthStatusChanged> health;
  auto s1 = bus.subscribe<ModelPromoted>("test", [&](const ModelPromoted& e) { promoted.push_back(e); });
  auto s2 = bus.subscribe<HealthStatusChanged>("test", [&](const HealthStatusChanged& e) {
    if (e.component.view() == "continuous_learning") health.push_back(e);
  });
  ModelRegistry reg(root_.string());
  EnsembleManager ens(options().clm.spec);
  ContinuousLearningService svc(bus, reg, ens, options());
  ASSERT_TRUE(svc.start());

  SyntheticMarket m(10, 2000, -0.4, 21);
  svc.data_updated(std::make_shared<const MarketPanel>(m.to_panel(1400)));  // new data: a retraining starts
  ASSERT_TRUE(svc.clm().wait().ok());
  EXPECT_EQ(reg.get("alpha", 1).value().status, ModelStatus::candidate);
  clock.advance_by(60 * kNsPerSecond);  // the minute tick: the shadow window is not there yet
  EXPECT_EQ(reg.get("alpha", 1).value().status, ModelStatus::candidate);

  svc.data_updated(std::make_shared<const MarketPanel>(m.to_panel(2000)));  // 600 unseen bars: shadow, then promote
  bus.drain();
  EXPECT_EQ(reg.active("alpha")->version, 1);
  ASSERT_EQ(promoted.size(), 1U);
  EXPECT_EQ(promoted[0].model.view(), "alpha");
  EXPECT_EQ(promoted[0].version, 1U);
  EXPECT_EQ(promoted[0].previous_version, 0U);
  EXPECT_GT(promoted[0].validation_score, 0.1);  // the shadow rank IC
  EXPECT_EQ(ens.members().size(), 1U);
  ASSERT_TRUE(svc.clm().wait().ok());  // the 600 new bars also triggered a retraining: v2 waits for its shadow window
  EXPECT_EQ(reg.get("alpha", 2).value().status, ModelStatus::candidate);

  // A market-wide regime change triggers a retraining too; a symbol's own does not.
  RegimeChanged rc;
  rc.symbol = "SYN001";
  rc.previous = Regime::ranging;
  rc.current = Regime::trending_up;
  bus.publish("regime", rc);
  EXPECT_FALSE(svc.clm().running());
  rc.symbol = "";
  bus.publish("regime", rc);
  ASSERT_TRUE(svc.clm().wait().ok());
  EXPECT_EQ(reg.list("alpha").size(), 3U);
  EXPECT_TRUE(health.empty());
  svc.stop("test done");
}

TEST_F(ClmService, ScheduleTriggersAndAFailedRetrainingIsAHealthEvent) {
  SimClock clock(1'704'499'200LL * kNsPerSecond);  // 2024-01-06T00:00:00Z, a Saturday
  EventBus bus(clock);
  std::vector<HealthStatusChanged> health;
  auto sub = bus.subscribe<HealthStatusChanged>("test", [&](const HealthStatusChanged& e) {
    if (e.component.view() == "continuous_learning") health.push_back(e);
  });
  ModelRegistry reg(root_.string());
  EnsembleManager ens(options().clm.spec);
  auto o = options();
  o.new_data_bars = 1'000'000;  // only the schedule triggers here
  ContinuousLearningService svc(bus, reg, ens, o);
  ASSERT_TRUE(svc.start());
  SyntheticMarket m(6, 30, 0.0, 5);
  svc.data_updated(std::make_shared<const MarketPanel>(m.to_panel(30)));  // too little data to train on
  clock.advance_by(25 * 3600 * kNsPerSecond);                             // Sunday 01:00: not yet
  EXPECT_FALSE(svc.clm().wait().ok());                                    // no job has run
  clock.advance_by(2 * 3600 * kNsPerSecond);                              // Sunday 03:00: the 02:00 slot passed
  const auto r = svc.clm().wait();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "training_failed");
  bus.drain();
  ASSERT_EQ(health.size(), 1U);
  EXPECT_EQ(health[0].current, HealthLevel::degraded);
  EXPECT_NE(health[0].detail.find("clm/alpha"), std::string::npos) << health[0].detail;
  EXPECT_TRUE(reg.list().empty());
  const auto cfg_opts = clm_service_options(Config{});
  EXPECT_FALSE(cfg_opts.clm.enabled);
  EXPECT_EQ(cfg_opts.clm.schedule.text(), "0 2 * * 0");
  EXPECT_EQ(cfg_opts.orchestrator.mode, SubsystemMode::off);
  EXPECT_FALSE(cfg_opts.orchestrator.auto_deploy);
}

}  // namespace clm_service_test
}  // namespace qtos::models
