// `qtos retrain` and `qtos models ...` as a user meets them, through the real binary.
#include <sys/resource.h>

#include <csignal>
#include <filesystem>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace models_cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

TEST(ModelsCli, AFullDiskWhileSavingAModelIsAnErrorAndTheRegistryKeepsNothingHalfWritten) {
  TempDir dir;
  ASSERT_EQ(run_qtos("data synth --symbols 4 --bars 900 --seed 5 --out syn", dir.path()).exit_code, 0);
  // A 64 KB limit per file stands for a full disk: the registry's database (about 28 KB) fits, this GRU's weights
  // (about 137 KB) do not. The child inherits the limit, and SIGXFSZ ignored, so a write fails with EFBIG.
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  const rlimit small{64 * 1024, before.rlim_max};
  const auto handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const auto r = run_qtos("retrain --data syn --model gru --hidden 96 --epochs 1 --seed 1", dir.path());
  ::setrlimit(RLIMIT_FSIZE, &before);
  std::signal(SIGXFSZ, handler);
  // Before, LibTorch's file writer threw from its destructor and the process ended in std::terminate (134).
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, "model.pt")) << r.err;
  EXPECT_TRUE(has(r.err, "File too large")) << r.err;
  EXPECT_TRUE(has(run_qtos("models list", dir.path()).out, "no models")) << "nothing registered";
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "state/models"))
    EXPECT_EQ(e.path().string().find("qtos-tmp"), std::string::npos) << "left behind: " << e.path();
}

TEST(ModelsCli, RetrainRegistersACandidateThatMovesThroughTheStages) {
  TempDir dir;
  ASSERT_EQ(run_qtos("data synth --symbols 6 --bars 900 --seed 5 --out syn", dir.path()).exit_code, 0);
  const auto r = run_qtos("retrain --data syn --model mlp --epochs 3 --seed 1", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.err, "retrain mlp: 1/3")) << r.err;  // a progress line per epoch
  EXPECT_TRUE(has(r.err, "samples/s")) << r.err;
  EXPECT_TRUE(has(r.out, "baseline")) << r.out;
  EXPECT_TRUE(has(r.out, "registered mlp v1 as CANDIDATE")) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "state/models/mlp/1/model.pt"));  // default registry: $QT_STATE_DIR/models
  const auto t = run_qtos("retrain --data syn --model transformer --epochs 1 --window 8 --hidden 8 --name tf", dir.path());
  ASSERT_EQ(t.exit_code, 0) << t.err;

  const auto list = run_qtos("models list", dir.path());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(has(list.out, "mlp")) << list.out;
  EXPECT_TRUE(has(list.out, "tf")) << list.out;
  EXPECT_TRUE(has(list.out, "CANDIDATE")) << list.out;
  EXPECT_EQ(run_qtos("models promote mlp 1", dir.path()).out, "mlp v1: CANDIDATE -> SHADOW\n");
  EXPECT_EQ(run_qtos("models promote mlp 1", dir.path()).out, "mlp v1: SHADOW -> ACTIVE\n");
  const auto again = run_qtos("models promote mlp 1", dir.path());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(has(again.err, "mlp v1 is ACTIVE")) << again.err;

  const auto show = run_qtos("models show mlp", dir.path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const auto o = boost::json::parse(show.out).as_object();
  EXPECT_EQ(o.at("status").as_string(), "ACTIVE");
  EXPECT_EQ(o.at("meta").at("seed").to_number<int>(), 1);
  EXPECT_EQ(o.at("meta").at("feature_spec").at("horizon").as_int64(), 4);
  EXPECT_TRUE(o.at("meta").at("metrics").as_object().contains("baseline_test"));

  const auto json = run_qtos("models list --format json", dir.path());
  EXPECT_EQ(boost::json::parse(json.out).as_array().size(), 2U);
  EXPECT_EQ(run_qtos("models retire mlp 1", dir.path()).out, "mlp v1: ACTIVE -> RETIRED\n");
  EXPECT_TRUE(has(run_qtos("models retire mlp 7", dir.path()).err, "no model 'mlp' version 7"));
  EXPECT_TRUE(has(run_qtos("models show nothing", dir.path()).err, "no model named 'nothing'"));
}

TEST(ModelsCli, AModelIsServedUnderTheGapPolicyItWasTrainedUnder) {
  TempDir dir;
  ASSERT_EQ(run_qtos("data synth --symbols 4 --bars 600 --seed 6 --out syn", dir.path()).exit_code, 0);
  const auto r = run_qtos("retrain --data syn --model mlp --epochs 1 --seed 1 --gaps reset-after:0", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "gaps reset-after:0")) << r.out;
  const auto show = run_qtos("models show mlp", dir.path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(boost::json::parse(show.out).at("meta").at("feature_spec").at("gaps").as_string(), "reset-after:0");
  ASSERT_EQ(run_qtos("models promote mlp 1", dir.path()).exit_code, 0);
  ASSERT_EQ(run_qtos("models promote mlp 1", dir.path()).exit_code, 0);
  // The run's policy (QT_GAPS, default skip) is not the model's: refused before the replay, naming both.
  const auto bt = run_qtos("backtest --data syn --models state/models --out bt", dir.path());
  EXPECT_EQ(bt.exit_code, 2) << bt.err;
  EXPECT_TRUE(has(bt.err, "mlp v1 was trained under gaps reset-after:0, this run is under gaps skip")) << bt.err;
  EXPECT_TRUE(has(bt.err, "--gaps reset-after:0")) << bt.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "bt/ledger.db"));
}

TEST(ModelsCli, BadInputsAreNamed) {
  TempDir dir;
  const auto nodata = run_qtos("retrain --data missing --model mlp", dir.path());
  EXPECT_EQ(nodata.exit_code, 1);
  EXPECT_TRUE(has(nodata.err, "--data: directory 'missing' does not exist")) << nodata.err;
  std::filesystem::create_directories(dir / "empty");
  const auto nopanel = run_qtos("retrain --data empty --model mlp", dir.path());
  EXPECT_EQ(nopanel.exit_code, 1);
  EXPECT_TRUE(has(nopanel.err, "panel.qtp")) << nopanel.err;
  const auto badmodel = run_qtos("retrain --data empty --model lstm", dir.path());
  EXPECT_EQ(badmodel.exit_code, 1);
  EXPECT_TRUE(has(badmodel.err, "unknown model 'lstm'")) << badmodel.err;
  const auto baddev = run_qtos("retrain --data empty --model mlp --device tpu", dir.path());
  EXPECT_EQ(baddev.exit_code, 1);
  EXPECT_TRUE(has(baddev.err, "tpu")) << baddev.err;
  EXPECT_EQ(run_qtos("models list", dir.path()).exit_code, 0);
  EXPECT_NE(run_qtos("retrain --model mlp", dir.path()).exit_code, 0);  // --data is required
}

}  // namespace models_cli_test
}  // namespace qtos
