// The LibTorch backend module (libqtos_torch.so) as a user meets it: found beside the binary, loaded only by the
// commands that use a model, and named with every path tried when it cannot be loaded.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace torch_backend_cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

TEST(TorchBackendCli, VersionNamesTheModuleItLoaded) {
  TempDir dir;
  const auto r = run_qtos("version", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string beside = (std::filesystem::path(QTOS_BIN).parent_path() / "libqtos_torch.so").string();
  EXPECT_TRUE(has(r.out, "LibTorch      : ")) << r.out;
  EXPECT_TRUE(has(r.out, beside)) << "the module beside the binary\n" << r.out;
}

TEST(TorchBackendCli, CommandsWithoutAModelNeverLoadLibTorchAndAMissingModuleIsNamed) {
  TempDir dir;
  const std::string missing = dir.file("nowhere/libqtos_torch.so");
  const std::map<std::string, std::string> env{{"QTOS_TORCH_BACKEND", missing}};
  // Data, backtests and the stores work without the module: they never load it.
  ASSERT_EQ(run_qtos("data synth --symbols 4 --bars 900 --seed 5 --out syn", dir.path(), env).exit_code, 0);
  const auto info = run_qtos("data info syn", dir.path(), env);
  EXPECT_EQ(info.exit_code, 0) << info.err;
  const auto list = run_qtos("models list", dir.path(), env);
  EXPECT_EQ(list.exit_code, 0) << list.err;
  // `version` reports what it could not load and still prints the rest.
  const auto v = run_qtos("version", dir.path(), env);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_TRUE(has(v.out, "LibTorch      : not available")) << v.out;
  EXPECT_TRUE(has(v.out, missing + ": no such file")) << v.out;
  EXPECT_TRUE(has(v.out, "oneTBB")) << v.out;
  // A command that trains fails with the paths tried and the variable that names the module; nothing registered.
  const auto t = run_qtos("retrain --data syn --model mlp --epochs 1 --seed 1", dir.path(), env);
  EXPECT_NE(t.exit_code, 0);
  EXPECT_TRUE(has(t.err, missing)) << t.err;
  EXPECT_TRUE(has(t.err, "QTOS_TORCH_BACKEND")) << t.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "state/models/mlp/1/model.pt"));
  // A file that is not a module: the loader's own words.
  const std::string bogus = dir.file("bogus.so");
  {
    std::ofstream out(bogus);
    for (int i = 0; i < 64; ++i) out << "this text file is not a shared object\n";
  }
  const auto b = run_qtos("version", dir.path(), {{"QTOS_TORCH_BACKEND", bogus}});
  EXPECT_TRUE(has(b.out, bogus + ": ")) << b.out;
  EXPECT_TRUE(has(b.out, "ELF")) << b.out;
}

}  // namespace torch_backend_cli_test
}  // namespace qtos
