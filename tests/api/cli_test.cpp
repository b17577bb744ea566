// The qtos command line as a user meets it: help, data verbs, config show, demo, and errors with exit codes.
#include <fstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

TEST(Cli, HelpListsEveryVerbAndEveryVerbHasHelp) {
  TempDir dir;
  const auto top = run_qtos("--help", dir.path());
  EXPECT_EQ(top.exit_code, 0);
  for (const char* verb : {"version", "config", "data", "demo"}) EXPECT_TRUE(has(top.out, verb)) << verb << "\n" << top.out;
  for (const char* verb : {"version", "config", "config show", "data", "data synth", "data import", "data export", "data info", "demo"}) {
    const auto r = run_qtos(std::string(verb) + " --help", dir.path());
    EXPECT_EQ(r.exit_code, 0) << verb;
    EXPECT_TRUE(has(r.out, "Usage:")) << verb;
  }
  const auto bad = run_qtos("frobnicate", dir.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(has(bad.err, "frobnicate")) << bad.err;
}

TEST(Cli, SynthInfoExportImportRoundTrip) {
  TempDir dir;
  const auto synth = run_qtos("data synth --symbols 8 --bars 1500 --interval 1h --seed 3 --out syn", dir.path());
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  EXPECT_TRUE(has(synth.out, "8 symbols x 1500 bars of 1h"));
  EXPECT_TRUE(has(synth.err, "synth: 8/8 (100%)")) << synth.err;  // plain progress lines when not a terminal
  const auto again = run_qtos("data synth --symbols 8 --bars 1500 --interval 1h --seed 3 --out syn2", dir.path());
  ASSERT_EQ(again.exit_code, 0);
  EXPECT_EQ(test::slurp(dir / "syn/panel.qtp"), test::slurp(dir / "syn2/panel.qtp")) << "same seed must give the same file";

  const auto info = run_qtos("data info syn --symbols", dir.path());
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_TRUE(has(info.out, "symbols   : 8"));
  EXPECT_TRUE(has(info.out, "range     : 2024-01-01T00:00:00Z"));
  EXPECT_TRUE(has(info.out, "SYN007USDT"));
  const auto json = run_qtos("data info syn --format json", dir.path());
  const auto v = boost::json::parse(json.out).as_object();
  EXPECT_EQ(v.at("symbols").as_int64(), 8);
  EXPECT_EQ(v.at("interval").as_string(), "1h");

  ASSERT_EQ(run_qtos("data export --data syn --out csv", dir.path()).exit_code, 0);
  // Break one row of one file: the import skips and names it, or stops with --on-bad-row fail.
  {
    std::ofstream f(dir / "csv/SYN003USDT-1h-2024-02.csv", std::ios::app);
    f << "1707000000000,10,9,11,10,1,1707003599999,1,1,0,0,0\n";
  }
  const auto imp = run_qtos("data import --from csv --out imported", dir.path());
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_TRUE(has(imp.out, "bad rows skipped: 1 (high_below_low=1)")) << imp.out;
  EXPECT_TRUE(has(imp.out, "SYN003USDT-1h-2024-02.csv:")) << imp.out;
  const auto fail = run_qtos("data import --from csv --out imported2 --on-bad-row fail", dir.path());
  EXPECT_EQ(fail.exit_code, 1);
  EXPECT_TRUE(has(fail.err, "high_below_low: high 9 < low 11 (--on-bad-row fail)")) << fail.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "imported2/panel.qtp"));
  const auto info2 = run_qtos("data info imported", dir.path());
  EXPECT_TRUE(has(info2.out, "symbols   : 8")) << info2.out;
}

TEST(Cli, BadDataInputsExitNonZeroWithAReason) {
  TempDir dir;
  auto r = run_qtos("data synth --symbols 3 --bars 100 --interval 7m --out x", dir.path());
  EXPECT_EQ(r.exit_code, 2);  // a bad option value is a usage error
  EXPECT_TRUE(has(r.err, "--interval: '7m' is not a known interval")) << r.err;
  r = run_qtos("data info nowhere", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "nowhere/panel.qtp': cannot open")) << r.err;
  std::filesystem::create_directories(dir / "junk");
  std::ofstream(dir / "junk/panel.qtp") << std::string(5000, 'x');
  r = run_qtos("data info junk", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "not a qtos panel file")) << r.err;
  r = run_qtos("data import --from nowhere --out y", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "is not a directory")) << r.err;
}

TEST(Cli, ConfigShowNamesSourcesAndRefusesBadValues) {
  TempDir dir;
  std::ofstream(dir / ".env") << "QT_AI_INTEGRATION_STAGE=PARTIAL\nQT_OPP_RANKER_TOP_N=9\n";
  const auto r = run_qtos("config show", dir.path(), {{"QT_AI_HFOS_MODE", "ENFORCED"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "integration stage: PARTIAL"));
  EXPECT_TRUE(has(r.out, "QT_OPP_RANKER_TOP_N                      9                      .env file")) << r.out;
  EXPECT_TRUE(has(r.out, "HFOS               yes      ENFORCED   environment")) << r.out;
  EXPECT_TRUE(has(r.out, "PAL                yes      ADVISORY   stage preset")) << r.out;
  EXPECT_TRUE(has(r.out, "QT_AI_PBA_REBALANCE_INTERVAL             600                    default")) << r.out;

  const auto j = run_qtos("config show --format json", dir.path());
  const auto v = boost::json::parse(j.out).as_object();
  EXPECT_EQ(v.at("stage").as_string(), "PARTIAL");
  EXPECT_EQ(v.at("subsystems").at("AELM").at("mode").as_string(), "ADVISORY");

  const auto bad = run_qtos("config show", dir.path(), {{"QT_AI_HFOS_MODE", "FOO"}, {"QT_AI_MAX_DAILY_DD", "-3"}});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(has(bad.err, "QT_AI_HFOS_MODE='FOO' (from environment) is not allowed: expected OFF, OBSERVE, ADVISORY or ENFORCED"))
      << bad.err;
  EXPECT_TRUE(has(bad.err, "QT_AI_MAX_DAILY_DD='-3'")) << bad.err;

  std::ofstream(dir / "other.env") << "QT_AI_PBA_REBALANCE_INTERVAL=abc\n";
  const auto bad_file = run_qtos("--env-file other.env config show", dir.path());
  EXPECT_EQ(bad_file.exit_code, 1);
  EXPECT_TRUE(has(bad_file.err, "QT_AI_PBA_REBALANCE_INTERVAL='abc' (from other.env)")) << bad_file.err;
  const auto typo = run_qtos("config show", dir.path(), {{"QT_AI_SELF_HEALING_MOD", "OBSERVE"}});
  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_TRUE(has(typo.err, "did you mean QT_AI_SELF_HEALING_MODE?")) << typo.err;
}

TEST(Cli, DemoRunsOnEmbeddedDefaults) {
  TempDir dir;
  const auto r = run_qtos("demo --symbols 20 --bars 500", dir.path(), {{"QT_STATE_DIR", (dir / "state").string()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "configuration: stage OBSERVATION, exchange paper"));
  EXPECT_TRUE(has(r.out, "market data  : 20 symbols x 500 bars of 1h"));
  EXPECT_TRUE(has(r.out, "RETURN"));
  EXPECT_TRUE(has(r.out, "opportunity ranking on cpu")) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "state/demo-data/panel.qtp"));
}

}  // namespace cli_test
}  // namespace qtos
