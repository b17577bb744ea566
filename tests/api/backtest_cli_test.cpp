// `qtos backtest` (the full-system replay) and `qtos orders` through the real binary: outputs, determinism of the
// report, the decision trace printed, the equality with backtest-strategy's trade count, and bad inputs.
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace backtest_cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

using test::slurp;

class BacktestCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto r = run_qtos("data synth --symbols 6 --bars 1500 --seed 5 --planted-momentum 0.15 --out syn", dir_->path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* BacktestCli::dir_ = nullptr;

// EMA(5) over EMA(20) long, 2-ATR stop, 3-ATR target, trailing 2 ATR, at most 48 bars, the whole sleeve.
constexpr const char* kGenome = "g1:1,0,2,0,0,0,0,0,0,2,0,2,0,0,2,3,2,48,1";

TEST_F(BacktestCli, ReplayWritesLedgerEventsAndReportDeterministically) {
  const std::string args = std::string("backtest --data syn --genome ") + kGenome + " --from 0.2 --fee-bps 4 --slippage-bps 2 --leverage 2 --out ";
  const auto a = run_qtos(args + "runa", dir_->path());
  ASSERT_EQ(a.exit_code, 0) << a.err << a.out;
  for (const char* s : {"replayed", "symbol-bars", "trades", "equity 10000.00 ->", "report.html"}) EXPECT_TRUE(has(a.out, s)) << s << "\n" << a.out;
  for (const char* f : {"ledger.db", "events.qel", "report.json", "report.html"}) EXPECT_TRUE(std::filesystem::exists(dir_->path() / "runa" / f)) << f;
  const auto b = run_qtos(args + "runb", dir_->path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  // Same inputs, the same report, bit for bit.
  EXPECT_EQ(slurp(dir_->path() / "runa/report.json"), slurp(dir_->path() / "runb/report.json"));
  EXPECT_EQ(slurp(dir_->path() / "runa/report.html"), slurp(dir_->path() / "runb/report.html"));
  const std::string html = slurp(dir_->path() / "runa/report.html");
  EXPECT_FALSE(has(html, "http://") || has(html, "https://")) << "the report must not fetch anything";
  EXPECT_TRUE(has(html, "<svg"));
  // The event log holds the orders.
  const auto d = run_qtos("events dump runa/events.qel", dir_->path());
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_TRUE(has(d.out, "OrderSubmitted") && has(d.out, "OrderFilled") && has(d.out, "PositionClosed")) << d.out.substr(0, 500);
}

TEST_F(BacktestCli, OrdersShowPrintsTheDecisionTrace) {
  const auto r = run_qtos(std::string("backtest --data syn --genome ") + kGenome + " --leverage 2 --out runc", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto list = run_qtos("orders --ledger runc/ledger.db list --status FILLED --limit 5", dir_->path());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(has(list.out, "FILLED")) << list.out;
  // The first order is an entry (the executor numbers orders as it decides them).
  const auto show = run_qtos("orders --ledger runc/ledger.db show 1", dir_->path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  for (const char* s : {"purpose ENTRY", "decision trace", "pre_trade_universe_filter", "pre_trade_position_sizing", "BASELINE", "risk_os",
                        "RISK_OS", "fills:"})
    EXPECT_TRUE(has(show.out, s)) << s << "\n" << show.out;
  const auto negative = run_qtos("orders --ledger runc/ledger.db show -5", dir_->path());
  EXPECT_EQ(negative.exit_code, 2);
  EXPECT_TRUE(has(negative.err, "-5")) << negative.err;
  const auto missing = run_qtos("orders --ledger runc/ledger.db show 999999", dir_->path());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(has(missing.err, "no such order")) << missing.err;
}

TEST_F(BacktestCli, AnEarlierRunIsNeverOverwritten) {
  const std::string args = std::string("backtest --data syn --genome ") + kGenome + " --leverage 2 --to 0.3 --out rund";
  ASSERT_EQ(run_qtos(args, dir_->path()).exit_code, 0);
  const std::string before = slurp(dir_->path() / "rund/ledger.db");
  const auto again = run_qtos(args, dir_->path());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(has(again.err, "already holds rund/ledger.db from an earlier run")) << again.err;
  EXPECT_EQ(slurp(dir_->path() / "rund/ledger.db"), before);
}

TEST_F(BacktestCli, AFullDiskStopsTheReplayAndSaysWhere) {
  // Writes beyond 300 KiB fail (EFBIG, the signal ignored), as on a full disk: the event log or the ledger fails first.
  const auto out = dir_->path() / ".full_out", err = dir_->path() / ".full_err";
  const std::string cmd = "cd '" + dir_->path().string() + "' && bash -c \"trap '' XFSZ; ulimit -f 300; exec '" + std::string(QTOS_BIN) +
                          "' backtest --data syn --genome " + kGenome + " --leverage 2 --out rune\" >'" + out.string() + "' 2>'" +
                          err.string() + "'";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string text = slurp(err);
  EXPECT_TRUE(has(text, "replay stopped at")) << text.substr(text.size() > 2000 ? text.size() - 2000 : 0);
  EXPECT_TRUE(has(text, "File too large") || has(text, "disk")) << text.substr(text.size() > 2000 ? text.size() - 2000 : 0);
  EXPECT_TRUE(has(text, "holds the bars before"));
  EXPECT_FALSE(std::filesystem::exists(dir_->path() / "rune/report.html")) << "no report for a run that did not finish";
}

TEST_F(BacktestCli, BadInputsAreNamed) {
  auto r = run_qtos("backtest --data syn --out x", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "nothing to trade")) << r.err;
  EXPECT_TRUE(has(r.err, "--models DIR")) << r.err;
  r = run_qtos(std::string("backtest --data syn --genome ") + kGenome + " --from 0.9 --to 0.5 --out x", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "the window is empty")) << r.err;
  r = run_qtos(std::string("backtest --data syn --genome ") + kGenome + " --from 7 --out x", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--from 7")) << r.err;
  r = run_qtos(std::string("backtest --data syn --genome ") + kGenome + " --stage SOMETIMES --out x", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "QT_AI_INTEGRATION_STAGE")) << r.err;
  r = run_qtos("backtest --data syn --models no-such-registry --out x", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--models no-such-registry: no model registry there")) << r.err;
  r = run_qtos("orders --ledger nothing.db list", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "nothing.db")) << r.err;
}

}  // namespace backtest_cli_test
}  // namespace qtos

namespace qtos {
namespace backtest_cli_test {

using test::run_qtos;
using test::slurp;
using test::TempDir;

std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = p.find(':', start);
    const std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

// `qtos backtest --compare-stages`: the baseline and the four stages on the same data, each with its own ledger, one page
// and one JSON side by side; OBSERVATION equals the baseline; the page renders in headless Chromium.
TEST(BacktestCompareStages, FiveRunsOnePageObservationEqualsTheBaseline) {
  TempDir dir;
  ASSERT_EQ(run_qtos("data synth --symbols 8 --bars 1500 --seed 5 --planted-momentum 0.15 --out syn", dir.path()).exit_code, 0);
  const std::string genome = "g1:1,0,2,0,0,0,0,0,0,2,0,2,0,0,2,3,2,48,1";
  const auto bad = run_qtos("backtest --data syn --genome " + genome + " --stage PARTIAL --compare-stages --out cmp", dir.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--compare-stages runs every stage"), std::string::npos) << bad.err;
  const auto r = run_qtos("backtest --data syn --genome " + genome + " --from 0.3 --leverage 2 --compare-stages --out cmp", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  for (const char* run : {"baseline", "observation", "partial", "coordination", "autonomy"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "cmp" / run / "ledger.db")) << run;
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "cmp" / run / "report.html")) << run;
  }
  for (const char* row : {"BASELINE", "OBSERVATION", "PARTIAL", "COORDINATION", "AUTONOMY", "stages.html"})
    EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
  const auto json = boost::json::parse(slurp(dir.path() / "cmp/stages.json")).as_object();
  const auto& runs = json.at("runs").as_array();
  ASSERT_EQ(runs.size(), 5u);
  const auto& base = runs[0].as_object();
  const auto& obs = runs[1].as_object();
  EXPECT_EQ(base.at("name").as_string(), "BASELINE");
  EXPECT_EQ(obs.at("name").as_string(), "OBSERVATION");
  for (const char* k : {"total_return", "max_drawdown", "trades", "orders", "denied"}) EXPECT_EQ(base.at(k), obs.at(k)) << k;
  EXPECT_TRUE(base.at("subsystems").as_object().empty());
  // AUTONOMY lists its subsystems' decisions.
  EXPECT_FALSE(runs[4].as_object().at("subsystems").as_object().empty());
  const std::string html = slurp(dir.path() / "cmp/stages.html");
  for (const char* id : {"chart-stage-equity", "chart-stage-drawdown", "stage-metrics", "stage-decisions"})
    EXPECT_NE(html.find(id), std::string::npos) << id;
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_GT(std::count(html.begin(), html.end(), '\n'), 50);

  // In a browser: the page renders (far from a blank page's screenshot); kept as a test artifact.
  std::string chromium = on_path("chromium");
  if (chromium.empty()) chromium = on_path("chromium-browser");
  if (chromium.empty()) GTEST_SKIP() << "no chromium on PATH (Debian: apt-get install chromium)";
  const std::string work = dir.file("");
  auto shot = [&](const std::string& page, const std::string& png) {
    const std::string cmd = "timeout 180 '" + chromium + "' --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir='" + work +
                            "/profile' --screenshot='" + png + "' --window-size=1300,2000 'file://" + page + "' >'" + work + "/chromium.log' 2>&1";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  { std::ofstream(dir.file("blank.html")) << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body></body></html>\n"; }
  ASSERT_EQ(shot(dir.file("blank.html"), dir.file("blank.png")), 0) << slurp(dir.path() / "chromium.log");
  ASSERT_EQ(shot((dir.path() / "cmp/stages.html").string(), dir.file("stages.png")), 0) << slurp(dir.path() / "chromium.log");
  const auto size = std::filesystem::file_size(dir.file("stages.png")), blank = std::filesystem::file_size(dir.file("blank.png"));
  EXPECT_GT(size, 5 * blank) << size << " vs a blank page's " << blank;
  const std::string artifacts = std::string(QTOS_SOURCE_DIR) + "/build/test-artifacts";
  std::filesystem::create_directories(artifacts);
  std::filesystem::copy_file(dir.file("stages.png"), artifacts + "/stages.png", std::filesystem::copy_options::overwrite_existing);
  std::printf("[ stages ] screenshot %s (%zu bytes; a blank page: %zu)\n", (artifacts + "/stages.png").c_str(), static_cast<std::size_t>(size),
              static_cast<std::size_t>(blank));
}

}  // namespace backtest_cli_test
}  // namespace qtos
