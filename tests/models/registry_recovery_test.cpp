// Model registry hardening: a broken model is never promoted (ACTIVE stays), a retired version can be rolled back, a
// crash between the folder rename and the commit leaves an orphan that is moved aside (not a wedge), a damaged or
// missing registry is named, and time comes from the injected clock.
#include <unistd.h>

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/registry.hpp"
#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace registry_recovery_test {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RegistryRecovery : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    market_ = new testing::SyntheticMarket(5, 400, -0.3, 11);
    FeatureSpec spec;
    spec.return_lags = {1, 2};
    spec.horizon = 2;
    spec.window = 4;
    const auto tab = features_build(market_->view(), spec);
    for (std::uint64_t seed : {1, 2}) {
      TrainOptions o;
      o.epochs = 1;
      o.seed = seed;
      ModelHyper h;
      h.hidden = 4;
      auto r = model_train(tab, split_by_time(tab), ModelKind::mlp, h, o);
      ASSERT_TRUE(r.ok());
      models_.push_back(std::shared_ptr<const Model>(std::move(r).value()));
    }
  }
  static void TearDownTestSuite() {
    models_.clear();
    delete market_;
  }
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("qtos_registry_recovery_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  static testing::SyntheticMarket* market_;
  static std::vector<std::shared_ptr<const Model>> models_;
};
testing::SyntheticMarket* RegistryRecovery::market_ = nullptr;
std::vector<std::shared_ptr<const Model>> RegistryRecovery::models_;

void truncate_file(const fs::path& p) { std::ofstream(p, std::ios::trunc) << "not torch"; }

TEST_F(RegistryRecovery, ABrokenModelIsNeverPromotedAndTheActiveVersionStays) {
  ModelRegistry reg(root_.string());
  reg.register_candidate("alpha", *models_[0]);
  ASSERT_TRUE(reg.promote("alpha", 1).ok());
  ASSERT_TRUE(reg.promote("alpha", 1).ok());
  ASSERT_EQ(reg.active("alpha")->version, 1);

  const auto v2 = reg.register_candidate("alpha", *models_[1]);
  truncate_file(fs::path(v2.dir) / "model.pt");
  auto r = reg.promote("alpha", 2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "broken_model");
  EXPECT_THAT(r.error().message, HasSubstr("model.pt"));
  EXPECT_EQ(reg.get("alpha", 2).value().status, ModelStatus::candidate);

  // SHADOW -> ACTIVE is checked too: a version broken after it reached SHADOW does not replace the ACTIVE one.
  const auto v3 = reg.register_candidate("alpha", *models_[1]);
  ASSERT_TRUE(reg.promote("alpha", 3).ok());
  fs::remove(fs::path(v3.dir) / "meta.json");
  r = reg.promote("alpha", 3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "broken_model");
  EXPECT_EQ(reg.active("alpha")->version, 1);
  EXPECT_EQ(reg.get("alpha", 3).value().status, ModelStatus::shadow);
  EXPECT_EQ(reg.history("alpha").size(), 6u);  // 3 registrations + v1 twice + v3 once; nothing for the refusals
}

TEST_F(RegistryRecovery, ARetiredVersionCanBeReactivatedAsARollback) {
  ModelRegistry reg(root_.string());
  reg.register_candidate("alpha", *models_[0]);
  reg.register_candidate("alpha", *models_[1]);
  for (int v : {1, 1, 2, 2}) ASSERT_TRUE(reg.promote("alpha", v).ok());
  ASSERT_EQ(reg.active("alpha")->version, 2);
  ASSERT_EQ(reg.get("alpha", 1).value().status, ModelStatus::retired);

  const auto back = reg.reactivate("alpha", 1);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back.value().status, ModelStatus::active);
  EXPECT_EQ(reg.active("alpha")->version, 1);
  EXPECT_EQ(reg.get("alpha", 2).value().status, ModelStatus::retired);
  const auto h = reg.history("alpha");
  EXPECT_EQ(h.back().version, 1);
  EXPECT_EQ(h.back().from, "RETIRED");
  EXPECT_EQ(h.back().to, "ACTIVE");

  EXPECT_EQ(reg.reactivate("alpha", 1).error().code, "bad_transition");  // it is ACTIVE, not RETIRED
  EXPECT_EQ(reg.reactivate("alpha", 9).error().code, "not_found");
  truncate_file(fs::path(reg.get("alpha", 2).value().dir) / "model.pt");
  EXPECT_EQ(reg.reactivate("alpha", 2).error().code, "broken_model");
  EXPECT_EQ(reg.active("alpha")->version, 1);
}

TEST_F(RegistryRecovery, ACrashBetweenFolderAndCommitLeavesNoWedge) {
  {
    ModelRegistry reg(root_.string());
    reg.register_candidate("alpha", *models_[0]);
  }
  // The state a crash between the folder rename and the SQLite commit leaves: version 2's folder, no row; plus the
  // temporary of a writer that died before its rename.
  fs::copy(root_ / "alpha" / "1", root_ / "alpha" / "2", fs::copy_options::recursive);
  fs::create_directories(root_ / "alpha" / "3.qtos-tmp-999999999-0");
  fs::create_directories(root_ / "alpha" / ".tmp-3-999999999");

  ModelRegistry reg(root_.string());
  EXPECT_FALSE(fs::exists(root_ / "alpha" / "2"));
  EXPECT_FALSE(fs::exists(root_ / "alpha" / "3.qtos-tmp-999999999-0"));
  EXPECT_FALSE(fs::exists(root_ / "alpha" / ".tmp-3-999999999"));
  ASSERT_TRUE(fs::exists(root_ / ".orphans"));
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ / ".orphans"), fs::directory_iterator()), 1);
  const auto v2 = reg.register_candidate("alpha", *models_[1]);  // the retrain that used to be blocked
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(reg.load(v2)->meta().version, 2);

  // An orphan that appears after the open (a crash of another process) is moved aside at registration too.
  fs::copy(root_ / "alpha" / "1", root_ / "alpha" / "3", fs::copy_options::recursive);
  EXPECT_EQ(reg.register_candidate("alpha", *models_[0]).version, 3);
  EXPECT_EQ(reg.list("alpha").size(), 3u);
}

TEST_F(RegistryRecovery, OpeningAHealthyRegistryTakesNoWriteLock) {
  {
    ModelRegistry reg(root_.string());
    reg.register_candidate("alpha", *models_[0]);
  }
  // Another process in the middle of a registration holds the write lock; a `models list` must not wait for it.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((root_ / "registry.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto t0 = std::chrono::steady_clock::now();
  ModelRegistry reg(root_.string(), {.mode = store::OpenMode::existing});
  EXPECT_EQ(reg.list().size(), 1u);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);  // the busy wait is 5 s
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
}

TEST_F(RegistryRecovery, ADamagedOrMissingRegistryIsNamed) {
  const std::string missing = (root_ / "typo").string();
  try {
    ModelRegistry reg(missing, {.mode = store::OpenMode::existing});
    FAIL();
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no model registry at '" + missing + "'"));
  }
  EXPECT_FALSE(fs::exists(missing));

  fs::create_directories(root_);
  std::ofstream(root_ / "registry.db") << std::string(8192, 'g');
  try {
    ModelRegistry reg(root_.string());
    FAIL();
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr((root_ / "registry.db").string()));
    EXPECT_THAT(e.what(), HasSubstr("not a database"));
  }
}

TEST_F(RegistryRecovery, TimesComeFromTheInjectedClock) {
  SimClock clock(1'700'000'000'000 * kNsPerMillisecond);
  ModelRegistry reg(root_.string(), {.clock = &clock});
  EXPECT_EQ(reg.register_candidate("alpha", *models_[0]).created_ms, 1'700'000'000'000);
  clock.advance_by(5 * kNsPerSecond);
  EXPECT_EQ(reg.promote("alpha", 1).value().updated_ms, 1'700'000'005'000);
  EXPECT_EQ(reg.history("alpha").back().at_ms, 1'700'000'005'000);

  // The trainer stamps the model on the injected clock too, so a replay's models carry replay time.
  FeatureSpec spec;
  spec.return_lags = {1, 2};
  spec.horizon = 2;
  spec.window = 4;
  const auto tab = features_build(market_->view(), spec);
  TrainOptions o;
  o.epochs = 1;
  o.clock = &clock;
  auto trained = model_train(tab, split_by_time(tab), ModelKind::mlp, ModelHyper{.hidden = 4}, o);
  ASSERT_TRUE(trained.ok());
  EXPECT_EQ(trained.value()->meta().created_ms, 1'700'000'005'000);
}

}  // namespace registry_recovery_test
}  // namespace qtos::models
