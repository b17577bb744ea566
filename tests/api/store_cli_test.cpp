// Stores as a user meets them: a damaged repository or registry is named (never listed as empty), a broken model is
// not promoted and the ACTIVE one keeps serving, a retired version can be rolled back, list verbs create nothing.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace store_cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

TEST(StoreCli, ADamagedStrategyRepositoryIsAnErrorNotAnEmptyList) {
  TempDir dir;
  ASSERT_EQ(run_qtos("data synth --symbols 4 --bars 600 --seed 3 --out syn", dir.path()).exit_code, 0);
  const auto ev = run_qtos("evolve --data syn --population 64 --generations 2 --top 40 --repo s.db --seed 2", dir.path());
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  const auto ok = run_qtos("strategies --repo s.db list", dir.path());
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const auto path = dir / "s.db";
  const auto size = std::filesystem::file_size(path);
  ASSERT_GE(size, 4096u * 4) << "the repository should span several pages";
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    for (std::uint64_t page = 2; page * 4096 < size; page += 2) {
      f.seekp(static_cast<std::streamoff>(page * 4096 + 100));
      const std::string junk(3000, '\x5a');
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
  }
  const auto bad = run_qtos("strategies --repo s.db list", dir.path());
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_TRUE(has(bad.err, "s.db")) << bad.err;
  EXPECT_TRUE(has(bad.err, "damaged") || has(bad.err, "malformed")) << bad.err;
  EXPECT_FALSE(has(bad.out, "0 strategies")) << bad.out;

  std::ofstream(dir / "notes.db") << "not a database at all";
  const auto notdb = run_qtos("strategies --repo notes.db list", dir.path());
  EXPECT_EQ(notdb.exit_code, 1);
  EXPECT_TRUE(has(notdb.err, "notes.db")) << notdb.err;
  EXPECT_TRUE(has(notdb.err, "not a database")) << notdb.err;
}

TEST(StoreCli, ABrokenModelIsNotPromotedAndARetiredOneRollsBack) {
  TempDir dir;
  ASSERT_EQ(run_qtos("data synth --symbols 5 --bars 700 --seed 5 --out syn", dir.path()).exit_code, 0);
  for (int seed : {1, 2})
    ASSERT_EQ(run_qtos("retrain --data syn --model mlp --epochs 1 --hidden 8 --seed " + std::to_string(seed), dir.path()).exit_code, 0);
  for (const char* v : {"1", "1", "2", "2"}) ASSERT_EQ(run_qtos(std::string("models promote mlp ") + v, dir.path()).exit_code, 0);
  // v2 is ACTIVE, v1 RETIRED. Roll back to v1.
  const auto back = run_qtos("models rollback mlp 1", dir.path());
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "mlp v1: RETIRED -> ACTIVE (v2 retired)\n");

  ASSERT_EQ(run_qtos("retrain --data syn --model mlp --epochs 1 --hidden 8 --seed 3", dir.path()).exit_code, 0);
  std::ofstream(dir / "state/models/mlp/3/model.pt", std::ios::trunc) << "truncated by a full disk";
  const auto broken = run_qtos("models promote mlp 3", dir.path());
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_TRUE(has(broken.err, "refusing to move mlp v3 to SHADOW")) << broken.err;
  EXPECT_TRUE(has(broken.err, "model.pt")) << broken.err;
  const auto list = run_qtos("models list", dir.path());
  EXPECT_TRUE(has(list.out, "CANDIDATE")) << list.out;  // v3 stays a candidate
  const auto show = run_qtos("models show mlp", dir.path());
  EXPECT_TRUE(has(show.out, "\"version\":1")) << show.out;  // v1 is still the ACTIVE one

  const auto twice = run_qtos("models rollback mlp 1", dir.path());
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_TRUE(has(twice.err, "only a RETIRED version can be reactivated")) << twice.err;
}

}  // namespace store_cli_test
}  // namespace qtos
