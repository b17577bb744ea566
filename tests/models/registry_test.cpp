#include "models/registry.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "models/ensemble.hpp"
#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace registry_test {

using testing::SyntheticMarket;

FeatureSpec spec_small() {
  FeatureSpec spec;
  spec.return_lags = {1, 2, 4};
  spec.horizon = 2;
  spec.window = 4;
  return spec;
}

class Registry : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    market_ = new SyntheticMarket(6, 500, -0.3, 77);
    const auto tab = features_build(market_->view(), spec_small());
    for (std::uint64_t seed : {1, 2, 3}) {
      TrainOptions o;
      o.epochs = 2;
      o.seed = seed;
      ModelHyper h;
      h.hidden = 8;
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
    root_ = std::filesystem::temp_directory_path() /
            ("qtos_registry_test_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  static std::vector<float> expected_of(const Model& m, std::int32_t t) { return m.predict(market_->view(), t).value().expected_return; }

  std::filesystem::path root_;
  static SyntheticMarket* market_;
  static std::vector<std::shared_ptr<const Model>> models_;
};
SyntheticMarket* Registry::market_ = nullptr;
std::vector<std::shared_ptr<const Model>> Registry::models_;

TEST_F(Registry, VersionsMoveThroughTheStagesWithLineageAndHistory) {
  ModelRegistry reg(root_.string());
  const auto v1 = reg.register_candidate("alpha", *models_[0]);
  const auto v2 = reg.register_candidate("alpha", *models_[1]);
  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v1.status, ModelStatus::candidate);
  EXPECT_EQ(v1.parent_version, 0);
  EXPECT_TRUE(std::filesystem::exists(root_ / "alpha" / "1" / "model.pt"));
  EXPECT_TRUE(std::filesystem::exists(root_ / "alpha" / "2" / "meta.json"));
  EXPECT_EQ(v1.stage_metrics.count("CANDIDATE"), 1U);
  const auto loaded = reg.load(v2);
  EXPECT_EQ(loaded->name(), "alpha@v2");
  EXPECT_EQ(loaded->meta().version, 2);

  EXPECT_EQ(reg.promote("alpha", 1).value().status, ModelStatus::shadow);
  ASSERT_TRUE(reg.metrics_record("alpha", 1, ModelStatus::shadow, models_[0]->meta().val).ok());
  EXPECT_EQ(reg.promote("alpha", 1).value().status, ModelStatus::active);
  EXPECT_EQ(reg.active("alpha")->version, 1);
  const auto v3 = reg.register_candidate("alpha", *models_[2]);
  EXPECT_EQ(v3.parent_version, 1);  // lineage: registered while v1 was active

  ASSERT_TRUE(reg.promote("alpha", 2).ok());
  ASSERT_TRUE(reg.promote("alpha", 2).ok());  // SHADOW -> ACTIVE retires v1 in the same transaction
  EXPECT_EQ(reg.active("alpha")->version, 2);
  EXPECT_EQ(reg.get("alpha", 1).value().status, ModelStatus::retired);
  const auto got = reg.get("alpha", 1).value();
  EXPECT_EQ(got.stage_metrics.size(), 2U);
  EXPECT_EQ(Metrics::from_json(got.stage_metrics.at("SHADOW")).samples, models_[0]->meta().val.samples);

  const auto h = reg.history("alpha");
  ASSERT_EQ(h.size(), 8U);
  EXPECT_EQ(h[6].version, 1);
  EXPECT_EQ(h[6].from, "ACTIVE");
  EXPECT_EQ(h[6].to, "RETIRED");
  EXPECT_EQ(h[7].version, 2);
  EXPECT_EQ(h[7].to, "ACTIVE");

  // A second handle on the same root (another process, say) sees the same index.
  ModelRegistry again(root_.string());
  EXPECT_EQ(again.list("alpha").size(), 3U);
  EXPECT_EQ(again.active_all().size(), 1U);
}

TEST_F(Registry, BadRequestsAreValuesOrNamedErrors) {
  ModelRegistry reg(root_.string());
  reg.register_candidate("beta", *models_[0]);
  EXPECT_EQ(reg.get("beta", 9).error().code, "not_found");
  EXPECT_EQ(reg.promote("gamma", 1).error().code, "not_found");
  ASSERT_TRUE(reg.promote("beta", 1).ok());
  ASSERT_TRUE(reg.promote("beta", 1).ok());
  const auto again = reg.promote("beta", 1);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, "bad_transition");
  EXPECT_NE(again.error().message.find("ACTIVE"), std::string::npos);
  ASSERT_TRUE(reg.retire("beta", 1).ok());
  EXPECT_FALSE(reg.active("beta").has_value());
  EXPECT_EQ(reg.retire("beta", 1).error().code, "bad_transition");
  EXPECT_EQ(reg.promote("beta", 1).error().code, "bad_transition");
  EXPECT_EQ(reg.metrics_record("beta", 5, ModelStatus::shadow, Metrics{}).error().code, "not_found");
  EXPECT_THROW(reg.register_candidate("../evil", *models_[0]), std::invalid_argument);
  EXPECT_THROW(reg.register_candidate("", *models_[0]), std::invalid_argument);
  FeatureSpec other = spec_small();
  other.window = 8;
  EXPECT_THROW((void)reg.load(reg.get("beta", 1).value(), &other), std::runtime_error);
  EXPECT_EQ(model_status_parse("shadow"), ModelStatus::shadow);
  EXPECT_FALSE(model_status_parse("LIVE").has_value());
}

TEST_F(Registry, EnsembleFollowsPromotionAndCombinesWithWeights) {
  ModelRegistry reg(root_.string());
  EnsembleManager ens(spec_small());
  const std::int32_t t = 480;
  EXPECT_EQ(ens.predict(market_->view(), t).error().code, "no_model");
  reg.register_candidate("a", *models_[0]);
  reg.register_candidate("a", *models_[1]);
  reg.register_candidate("b", *models_[2]);
  ASSERT_TRUE(reg.promote("a", 1).ok());
  EXPECT_EQ(ens.reload(reg), 0U);  // a SHADOW version is not served
  ASSERT_TRUE(reg.promote("a", 1).ok());
  EXPECT_EQ(ens.reload(reg), 1U);
  EXPECT_EQ(ens.predict(market_->view(), t).value().expected_return, expected_of(*models_[0], t));
  ASSERT_TRUE(reg.promote("a", 2).ok());
  ASSERT_TRUE(reg.promote("a", 2).ok());
  ASSERT_TRUE(reg.promote("b", 1).ok());
  ASSERT_TRUE(reg.promote("b", 1).ok());
  EXPECT_EQ(ens.reload(reg), 2U);
  EXPECT_TRUE(ens.weights_set({{"a", 3.0}, {"zzz", 1.0}}) == std::vector<std::string>{"zzz"});
  const auto p = ens.predict(market_->view(), t).value();
  const auto pa = expected_of(*models_[1], t), pb = expected_of(*models_[2], t);
  for (std::size_t s = 0; s < pa.size(); ++s) EXPECT_NEAR(p.expected_return[s], (3.0 * pa[s] + pb[s]) / 4.0, 1e-7);
  EXPECT_EQ(ens.reload(reg), 2U);  // weights survive a reload
  EXPECT_NEAR(ens.predict(market_->view(), t).value().expected_return[0], (3.0 * pa[0] + pb[0]) / 4.0, 1e-7);
  EXPECT_THROW(ens.members_set({{models_[0], -1.0}}), std::invalid_argument);
  EXPECT_THROW(ens.members_set({{nullptr, 1.0}}), std::invalid_argument);
  EXPECT_EQ(ens.members().size(), 2U);  // a refused set leaves the members untouched
}

TEST_F(Registry, ReadersNeverSeeAHalfLoadedModelDuringSwaps) {
  ModelRegistry reg(root_.string());
  const auto ra = reg.register_candidate("m", *models_[0]);
  const auto rb = reg.register_candidate("m", *models_[1]);
  EnsembleManager ens(spec_small());
  ens.members_set({{reg.load(ra), 1.0}});
  const std::int32_t t = 470;
  const auto want_a = expected_of(*models_[0], t), want_b = expected_of(*models_[1], t);
  ASSERT_NE(want_a, want_b);
  std::atomic<bool> stop{false};
  std::atomic<int> seen_a{0}, seen_b{0}, bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i)
    readers.emplace_back([&] {
      while (!stop.load()) {
        const auto p = ens.predict(market_->view(), t);
        if (!p.ok()) {
          ++bad;
          continue;
        }
        if (p.value().expected_return == want_a) ++seen_a;
        else if (p.value().expected_return == want_b) ++seen_b;
        else ++bad;
      }
    });
  // The writer loads each version from disk (a fresh Model each time) and swaps it in, at least 30 times and until
  // the readers have seen both (bounded: a reader that sees neither for 60 s fails the test instead of hanging).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int k = 0; k < 30 || seen_a.load() == 0 || seen_b.load() == 0; ++k) {
    if (std::chrono::steady_clock::now() > deadline) break;
    ens.members_set({{reg.load(k % 2 ? ra : rb), 1.0}});
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(seen_a.load(), 0);
  EXPECT_GT(seen_b.load(), 0);
  EXPECT_GT(seen_a.load() + seen_b.load(), 10);
}

}  // namespace registry_test
}  // namespace qtos::models
