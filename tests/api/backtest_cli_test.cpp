// `qtos backtest` (the full-system replay) and `qtos orders` through the real binary: outputs, determinism of the
// report, the decision trace printed, the equality with backtest-strategy's trade count, and bad inputs.
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace {

using test::run_qtos;
using test::TempDir;

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

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

}  // namespace
}  // namespace qtos
