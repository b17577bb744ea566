#include "models/model.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <stdexcept>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "models/torch_info.hpp"
#include "tests/models/synthetic.hpp"

namespace qtos::models {
namespace model_test {

using testing::SyntheticMarket;

FeatureSpec small_spec() {
  FeatureSpec spec;
  spec.return_lags = {1, 2, 4, 8};
  spec.horizon = 2;
  spec.window = 8;
  return spec;
}

TrainOptions fast_options(std::uint64_t seed = 42) {
  TrainOptions o;
  o.epochs = 6;
  o.batch_size = 256;
  o.lr = 3e-3;
  o.patience = 3;
  o.seed = seed;
  return o;
}

ModelHyper small_hyper() {
  ModelHyper h;
  h.hidden = 16;
  h.layers = 1;
  h.d_model = 16;
  h.heads = 2;
  h.patch = 4;
  return h;
}

struct Trained {
  std::unique_ptr<Model> model;
  FeatureTable table;
  TimeSplit split;
};

Trained train_on(double phi, ModelKind kind, std::uint64_t market_seed, std::uint64_t seed = 42) {
  SyntheticMarket m(16, 1500, phi, market_seed);
  Trained t{nullptr, features_build(m.view(), small_spec()), {}};
  t.split = split_by_time(t.table);
  auto r = model_train(t.table, t.split, kind, small_hyper(), fast_options(seed));
  EXPECT_TRUE(r.ok());
  t.model = std::move(r).value();
  return t;
}

// Mean reversion of 1-bar returns (phi = -0.4) is a predictable component every architecture should find: the best
// possible predictor of the 2-bar return has a correlation of about 0.22 with it (directional accuracy ~0.57).
class PlantedSignal : public ::testing::TestWithParam<ModelKind> {};

TEST_P(PlantedSignal, BeatsTheNaiveBaselineOnTheTestWindow) {
  const auto t = train_on(-0.4, GetParam(), 101);
  const auto& m = t.model->meta();
  SCOPED_TRACE(m.to_json());
  RecordProperty("test_metrics", m.test.to_json());
  RecordProperty("baseline_metrics", m.baseline_test.to_json());
  EXPECT_GT(m.test.samples, 3000);
  EXPECT_GT(m.test.directional_accuracy, m.baseline_test.directional_accuracy + 0.03);
  EXPECT_GT(m.test.rank_ic, 0.12);  // ~6 standard errors above zero
  EXPECT_GT(m.test.sharpe, m.baseline_test.sharpe + 1.0);
  EXPECT_LT(m.test.mse, m.baseline_test.mse);
  EXPECT_LT(m.test.calibration_error, 0.1);
  EXPECT_GE(m.best_epoch, 1);
}

INSTANTIATE_TEST_SUITE_P(Models, PlantedSignal, ::testing::Values(ModelKind::mlp, ModelKind::gru, ModelKind::transformer),
                         [](const auto& p) { return std::string(model_kind_name(p.param)); });

TEST(RandomWalk, NoModelFindsAnEdgeWhereThereIsNone) {
  for (auto kind : {ModelKind::mlp, ModelKind::gru}) {
    const auto t = train_on(0.0, kind, 202);
    const auto& m = t.model->meta();
    SCOPED_TRACE(m.to_json());
    RecordProperty(std::string(model_kind_name(kind)) + "_test_metrics", m.test.to_json());
    // About 5500 test samples with 2-bar overlapping targets: the IC's standard error is ~0.02.
    EXPECT_LT(std::abs(m.test.rank_ic), 0.06);
    EXPECT_LT(m.test.directional_accuracy, std::max(0.5, m.baseline_test.directional_accuracy) + 0.025);
    EXPECT_GT(m.test.mse, m.baseline_test.mse * 0.99);  // no real reduction of the squared error either
  }
}

TEST(Training, SameSeedSameModelOtherSeedOtherModel) {
  const auto a = train_on(-0.3, ModelKind::mlp, 303, 7);
  const auto b = train_on(-0.3, ModelKind::mlp, 303, 7);
  const auto c = train_on(-0.3, ModelKind::mlp, 303, 8);
  const auto samples = samples_select(a.table, a.split.test_begin, a.split.test_end, true);
  std::vector<float> ra(samples.size()), ua(samples.size()), rb(samples.size()), ub(samples.size()), rc(samples.size()), uc(samples.size());
  a.model->predict_samples(a.table, samples, ra, ua);
  b.model->predict_samples(b.table, samples, rb, ub);
  c.model->predict_samples(c.table, samples, rc, uc);
  EXPECT_EQ(ra, rb);
  EXPECT_EQ(ua, ub);
  EXPECT_NE(ra, rc);
  EXPECT_EQ(a.model->meta().test.to_json(), b.model->meta().test.to_json());
}

TEST(Training, ReportsEveryEpochAndCanBeCancelled) {
  SyntheticMarket m(4, 600, -0.3, 404);
  const auto tab = features_build(m.view(), small_spec());
  const auto sp = split_by_time(tab);
  auto opts = fast_options();
  opts.epochs = 3;
  opts.patience = 10;
  std::vector<EpochReport> reps;
  opts.on_epoch = [&](const EpochReport& r) { reps.push_back(r); };
  auto r = model_train(tab, sp, ModelKind::mlp, small_hyper(), opts);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(reps.size(), 3U);
  EXPECT_EQ(reps[0].epoch, 1);
  EXPECT_TRUE(reps[0].improved);
  EXPECT_GT(reps[0].samples_per_s, 0.0);
  EXPECT_GT(reps[0].lr, reps[2].lr);  // cosine decay
  EXPECT_EQ(r.value()->meta().epochs_run, 3);
  int polls = 0;
  opts.cancelled = [&] { return ++polls > 2; };
  auto c = model_train(tab, sp, ModelKind::mlp, small_hyper(), opts);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, "cancelled");
}

TEST(Training, BadInputsAreRefusedByName) {
  EXPECT_THROW(model_kind_parse("lstm"), std::invalid_argument);
  try {
    model_kind_parse("lstm");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'lstm'"), std::string::npos);
  }
  EXPECT_EQ(model_kind_parse("transformer"), ModelKind::transformer);
  SyntheticMarket m(2, 300, 0.0, 1);
  const auto tab = features_build(m.view(), small_spec());
  const auto sp = split_by_time(tab);
  auto opts = fast_options();
  opts.epochs = 0;
  EXPECT_THROW((void)model_train(tab, sp, ModelKind::mlp, small_hyper(), opts), std::invalid_argument);
  auto h = small_hyper();
  h.patch = 3;  // does not divide the window of 8
  EXPECT_THROW((void)model_train(tab, sp, ModelKind::transformer, h, fast_options()), std::invalid_argument);
  TimeSplit empty = sp;
  empty.val_end = empty.val_begin;
  EXPECT_THROW((void)model_train(tab, empty, ModelKind::mlp, small_hyper(), fast_options()), std::invalid_argument);
}

TEST(Training, CudaGraphStepLearnsLikeTheEagerStep) {
  if (!torch_info().cuda_available) GTEST_SKIP() << "LibTorch sees no CUDA device";
  SyntheticMarket m(16, 1500, -0.4, 101);
  const auto tab = features_build(m.view(), small_spec());
  const auto sp = split_by_time(tab);
  auto opts = fast_options();
  opts.device = DeviceKind::cuda;
  for (auto kind : {ModelKind::mlp, ModelKind::gru, ModelKind::transformer}) {
    opts.cuda_graph = true;
    auto graphed = model_train(tab, sp, kind, small_hyper(), opts);
    opts.cuda_graph = false;
    auto eager = model_train(tab, sp, kind, small_hyper(), opts);
    ASSERT_TRUE(graphed.ok());
    ASSERT_TRUE(eager.ok());
    const auto& g = graphed.value()->meta();
    EXPECT_EQ(g.device, "cuda+graph") << model_kind_name(kind);
    EXPECT_EQ(eager.value()->meta().device, "cuda");
    EXPECT_GT(g.test.rank_ic, 0.12) << model_kind_name(kind);
    EXPECT_NEAR(g.test.rank_ic, eager.value()->meta().test.rank_ic, 0.05) << model_kind_name(kind);
  }
  TrainBench tb(ModelKind::gru, small_hyper(), 6, 8, 64, 1, DeviceKind::cuda, true);
  EXPECT_TRUE(tb.graphed());
  const double first = tb.step();
  double last = first;
  for (int i = 0; i < 50; ++i) last = tb.step();
  EXPECT_LT(last, first);  // replays really update the weights
}

TEST(Training, CudaAndCpuLearnTheSameModelWithinFloatTolerance) {
  if (!torch_info().cuda_available) GTEST_SKIP() << "LibTorch sees no CUDA device";
  // The same seed, data and batches on both devices (the weights are initialised on the CPU, then moved): only the
  // float arithmetic of the kernels differs (cuBLAS/cuDNN against the CPU's), so the two models predict alike and
  // score alike. Inference runs on the CPU for both (the trainer moves the network back), as in production.
  SyntheticMarket m(16, 1500, -0.4, 101);
  const auto tab = features_build(m.view(), small_spec());
  const auto sp = split_by_time(tab);
  const auto test_samples = samples_select(tab, sp.test_begin, sp.test_end, true);
  ASSERT_GT(test_samples.size(), 100U);
  for (auto kind : {ModelKind::mlp, ModelKind::gru}) {
    auto opts = fast_options();
    opts.device = DeviceKind::cpu;
    auto cpu = model_train(tab, sp, kind, small_hyper(), opts);
    opts.device = DeviceKind::cuda;
    auto gpu = model_train(tab, sp, kind, small_hyper(), opts);
    ASSERT_TRUE(cpu.ok());
    ASSERT_TRUE(gpu.ok());
    EXPECT_EQ(gpu.value()->meta().device.rfind("cuda", 0), 0U) << gpu.value()->meta().device;  // "cuda+graph" by default
    EXPECT_NEAR(gpu.value()->meta().test.rank_ic, cpu.value()->meta().test.rank_ic, 0.03) << model_kind_name(kind);
    std::vector<float> rc(test_samples.size()), pc(test_samples.size()), rg(test_samples.size()), pg(test_samples.size());
    cpu.value()->predict_samples(tab, test_samples, rc, pc);
    gpu.value()->predict_samples(tab, test_samples, rg, pg);
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    const double n = static_cast<double>(rc.size());
    for (std::size_t i = 0; i < rc.size(); ++i) {
      sx += rc[i], sy += rg[i], sxx += double(rc[i]) * rc[i], syy += double(rg[i]) * rg[i], sxy += double(rc[i]) * rg[i];
    }
    const double corr = (sxy - sx * sy / n) / std::sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
    EXPECT_GT(corr, 0.98) << model_kind_name(kind) << ": CPU- and CUDA-trained predictions on the test samples";
  }
}

TEST(Training, CudaIsRefusedByNameWithoutADevice) {
  if (torch_info().cuda_available) GTEST_SKIP() << "a CUDA device is present";
  SyntheticMarket m(2, 300, 0.0, 1);
  const auto tab = features_build(m.view(), small_spec());
  auto opts = fast_options();
  opts.device = DeviceKind::cuda;
  try {
    (void)model_train(tab, split_by_time(tab), ModelKind::mlp, small_hyper(), opts);
    FAIL() << "trained on CUDA without a device";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TrainBench(ModelKind::mlp, small_hyper(), 6, 8, 64, 1, DeviceKind::cpu, true), std::invalid_argument);
}

class SavedModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("qtos_model_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(SavedModel, RoundTripPredictsTheSameAndRefusesAnotherFeatureSpec) {
  SyntheticMarket m(6, 700, -0.3, 505);
  const auto tab = features_build(m.view(), small_spec());
  auto trained = model_train(tab, split_by_time(tab), ModelKind::gru, small_hyper(), fast_options());
  ASSERT_TRUE(trained.ok());
  const auto& model = *trained.value();
  model.save(dir_.string());
  const FeatureSpec current = small_spec();
  const auto loaded = Model::load(dir_.string(), &current);
  EXPECT_EQ(loaded->meta().to_json(), model.meta().to_json());
  const auto p1 = model.predict(m.view(), 650);
  const auto p2 = loaded->predict(m.view(), 650);
  ASSERT_TRUE(p1.ok());
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p1.value().expected_return, p2.value().expected_return);
  EXPECT_EQ(p1.value().prob_up, p2.value().prob_up);
  EXPECT_EQ(p1.value().count_valid(), 6);

  FeatureSpec other = current;
  other.horizon = 4;
  try {
    (void)Model::load(dir_.string(), &other);
    FAIL() << "a model with another feature spec was loaded";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("refusing"), std::string::npos) << msg;
    EXPECT_NE(msg.find("horizon 2 vs 4"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir_.string()), std::string::npos) << msg;
  }
  {
    // A model whose features were computed under another gap policy is refused, naming both policies; a spec written
    // before the policy was recorded reads as reset-after:0 (the rule its features followed), so it is refused under
    // skip and loads under reset-after:0.
    const auto meta_path = (dir_ / "meta.json").string();
    std::stringstream text;
    text << std::ifstream(meta_path).rdbuf();
    const std::string original = text.str();
    auto doc = boost::json::parse(original).as_object();
    EXPECT_EQ(doc["feature_spec"].as_object().at("gaps").as_string(), "skip");
    auto refused = [&](const FeatureSpec& run, const std::string& want) {
      try {
        (void)Model::load(dir_.string(), &run);
        ADD_FAILURE() << "a model trained under another gap policy was loaded";
      } catch (const std::runtime_error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("refusing"), std::string::npos) << msg;
        EXPECT_NE(msg.find(want), std::string::npos) << msg;
      }
    };
    doc["feature_spec"].as_object()["gaps"] = "reset-after:2";
    std::ofstream(meta_path, std::ios::trunc) << boost::json::serialize(doc);
    refused(current, "gaps reset-after:2 vs skip");
    doc["feature_spec"].as_object().erase("gaps");
    std::ofstream(meta_path, std::ios::trunc) << boost::json::serialize(doc);
    refused(current, "gaps reset-after:0 vs skip");
    FeatureSpec restart = current;
    restart.gaps = kernels::gap_reset_after(0);
    EXPECT_NO_THROW((void)Model::load(dir_.string(), &restart));
    std::ofstream(meta_path, std::ios::trunc) << original;
  }
  {
    // A model saved before the indicator features (feature spec version 1, no periods) is refused by version.
    const auto meta_path = (dir_ / "meta.json").string();
    std::stringstream text;
    text << std::ifstream(meta_path).rdbuf();
    auto doc = boost::json::parse(text.str()).as_object();
    auto& fs = doc["feature_spec"].as_object();
    fs["version"] = 1;
    for (const char* k : {"rsi_period", "atr_period", "adx_period", "bbands_period", "spread_window"}) fs.erase(k);
    std::ofstream(meta_path, std::ios::trunc) << boost::json::serialize(doc);
    try {
      (void)Model::load(dir_.string(), &current);
      FAIL() << "a version-1 model was loaded";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("refusing"), std::string::npos) << msg;
      EXPECT_NE(msg.find("version 1 vs 2"), std::string::npos) << msg;
    }
  }
  EXPECT_THROW((void)Model::load((dir_ / "nope").string()), std::runtime_error);
  std::ofstream((dir_ / "model.pt").string(), std::ios::trunc) << "garbage";
  EXPECT_THROW((void)Model::load(dir_.string()), std::runtime_error);
  std::ofstream((dir_ / "meta.json").string(), std::ios::trunc) << "{\"format\":1}";
  EXPECT_THROW((void)Model::load(dir_.string()), std::runtime_error);
}

TEST(Prediction, PanelPredictionMatchesSamplePredictionAndNeedsHistory) {
  SyntheticMarket m(5, 600, -0.3, 606);
  m.gap(2, 590);
  const auto tab = features_build(m.view(), small_spec());
  auto trained = model_train(tab, split_by_time(tab), ModelKind::transformer, small_hyper(), fast_options());
  ASSERT_TRUE(trained.ok());
  const auto& model = *trained.value();
  const std::int32_t t = 595;
  const auto p = model.predict(m.view(), t);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value().bar, t);
  EXPECT_EQ(p.value().horizon, 2);
  // Symbol 2's window passes over its missing bar (skip: the window is its last present bars).
  EXPECT_TRUE(std::isfinite(p.value().expected_return[2]));
  EXPECT_EQ(p.value().count_valid(), 5);
  const auto samples = samples_select(tab, t, t + 1, false);
  ASSERT_EQ(samples.size(), 5U);
  std::vector<float> r(5), u(5);
  model.predict_samples(tab, samples, r, u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(p.value().expected_return[static_cast<std::size_t>(samples[i].s)], r[i]);
    EXPECT_EQ(p.value().prob_up[static_cast<std::size_t>(samples[i].s)], u[i]);
  }
  // Walking forward bar by bar (the feature carry replays one bar per call) predicts exactly what a model with no
  // carried state does, and so does stepping back.
  for (std::int32_t bar : {589, 590, 591, 596, 597, 598, 599, 580}) {
    const auto fresh = model.renamed("fresh", 1);  // a copy starts with an empty carry
    const auto a = model.predict(m.view(), bar);
    const auto b = fresh->predict(m.view(), bar);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(b.ok());
    const auto& ra = a.value().expected_return;
    const auto& rb = b.value().expected_return;
    const auto& ua = a.value().prob_up;
    const auto& ub = b.value().prob_up;
    ASSERT_EQ(ra.size(), rb.size());
    EXPECT_EQ(std::memcmp(ra.data(), rb.data(), ra.size() * sizeof(float)), 0) << "bar " << bar;  // NaN included
    EXPECT_EQ(std::memcmp(ua.data(), ub.data(), ua.size() * sizeof(float)), 0) << "bar " << bar;
    EXPECT_EQ(a.value().count_valid(), bar == 590 ? 4 : 5);  // symbol 2 has no bar at 590
  }
  const auto early = model.predict(m.view(), 10);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, "not_enough_history");
  EXPECT_FALSE(model.predict(m.view(), 600).ok());
}

}  // namespace model_test
}  // namespace qtos::models
