// `qtos rank` and `qtos indicators` through the real binary: output a user reads, agreement with the independent
// references, the Binance-layout import path, and the bad inputs of the issue (clear error, non-zero exit).
#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "cpu/backend/device.hpp"
#include "cpu/indicators/reference.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/data/market_panel.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace rank_cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

class RankCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto r = run_qtos("data synth --symbols 40 --bars 800 --interval 1h --seed 11 --out syn", dir_->path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* RankCli::dir_ = nullptr;

TEST_F(RankCli, TablePrintsTopNWithSubScoresAndExplains) {
  const auto r = run_qtos("rank --data syn --top 5 --device cpu --explain SYN007USDT", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "ranking as of 2024-02-03T07:00:00Z (bar 799 of 800, 1h bars), device cpu")) << r.out;
  for (const char* col : {"RANK", "SYMBOL", "SCORE", "TREND", "VOLAT", "LIQUID", "PERF", "MODEL"}) EXPECT_TRUE(has(r.out, col));
  int ranked_rows = 0;
  const std::regex row("^ *[0-9]+  SYN[0-9]+USDT ");
  for (const auto& l : lines(r.out)) ranked_rows += std::regex_search(l, row);
  EXPECT_EQ(ranked_rows, 5) << r.out;
  EXPECT_TRUE(has(r.out, "SYN007USDT at bar 799:")) << r.out;
  EXPECT_TRUE(has(r.out, "trend: sub-score") || has(r.out, "filtered (")) << r.out;
}

TEST_F(RankCli, JsonIsRankedBestFirstAndDefaultsToTopTwenty) {
  const auto r = run_qtos("rank --data syn --format json", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto o = boost::json::parse(r.out).as_object();
  const auto& top = o.at("top").as_array();
  EXPECT_EQ(top.size(), 20u);  // QT_OPP_RANKER_TOP_N default
  double prev = 1e9;
  for (std::size_t i = 0; i < top.size(); ++i) {
    const auto& row = top[i].as_object();
    EXPECT_EQ(row.at("rank").as_int64(), static_cast<std::int64_t>(i + 1));
    const double score = row.at("score").as_double();
    EXPECT_LE(score, prev);
    prev = score;
    EXPECT_EQ(row.at("sub_scores").as_object().size(), 5u);
  }
  EXPECT_EQ(o.at("ranked").as_int64() + static_cast<std::int64_t>(o.at("filtered").as_array().size()), 40);
  for (const auto& f : o.at("filtered").as_array()) EXPECT_FALSE(f.as_object().at("reason").as_string().empty());
  const auto env = run_qtos("rank --data syn --format json", dir_->path(), {{"QT_OPP_RANKER_TOP_N", "3"}});
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(boost::json::parse(env.out).as_object().at("top").as_array().size(), 3u);
}

TEST_F(RankCli, AtRanksAsOfAnEarlierBar) {
  const auto r = run_qtos("rank --data syn --format json --at 2024-01-20T10:30:00Z", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto o = boost::json::parse(r.out).as_object();
  EXPECT_EQ(o.at("as_of").as_string(), "2024-01-20T10:00:00Z");  // the bar opening at or before --at
  EXPECT_EQ(o.at("bar").as_int64(), 19 * 24 + 10);
}

TEST_F(RankCli, ImportedBinanceFilesRankLikeTheSyntheticOriginal) {
  ASSERT_EQ(run_qtos("data export --data syn --out klines", dir_->path()).exit_code, 0);
  ASSERT_EQ(run_qtos("data import --from klines --out imported", dir_->path()).exit_code, 0);
  const auto a = run_qtos("rank --data syn --format csv --top 40", dir_->path());
  const auto b = run_qtos("rank --data imported --format csv --top 40", dir_->path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
}

TEST_F(RankCli, BadInputsExitNonZeroWithAReason) {
  auto r = run_qtos("rank --data syn --top 0", dir_->path());
  EXPECT_EQ(r.exit_code, 2);  // a usage error
  EXPECT_TRUE(has(r.err, "--top: 0 is out of range; expected an integer >= 1")) << r.err;
  r = run_qtos("rank --data syn --device tpu", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--device: 'tpu' is not a device; expected auto, cpu or cuda")) << r.err;
  if (device_report().cuda_devices == 0) {
    r = run_qtos("rank --data syn --device cuda", dir_->path());
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(has(r.err, "--device cuda:")) << r.err;
  }
  r = run_qtos("rank --data syn --explain DOGEUSDT", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--explain DOGEUSDT: no such symbol in syn")) << r.err;
  r = run_qtos("rank --data syn --at 2020-01-01", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "before the first bar")) << r.err;
  r = run_qtos("rank --data nowhere", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "nowhere/panel.qtp")) << r.err;

  std::filesystem::create_directories(dir_->path() / "empty");
  panel_save(MarketPanel({"AAAUSDT"}, 0, 1'704'067'200'000, 3'600'000), panel_path((dir_->path() / "empty").string()));
  r = run_qtos("rank --data empty", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "empty: the data is empty (1 symbols x 0 bars)")) << r.err;
  r = run_qtos("indicators --data empty --symbol AAAUSDT --indicator sma", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "the data is empty")) << r.err;
}

TEST_F(RankCli, IndicatorSeriesIsAlignedToBarTimesAndMatchesTheReference) {
  const MarketPanel panel = panel_load(panel_path((dir_->path() / "syn").string()));
  // A symbol with data on every bar, so the reference can run on the whole series.
  std::int32_t s = -1;
  for (std::int32_t i = 0; i < panel.n_symbols() && s < 0; ++i) {
    bool full = true;
    for (std::int32_t t = 0; t < panel.n_bars(); ++t) full = full && panel.has_bar(i, t);
    if (full) s = i;
  }
  ASSERT_GE(s, 0);
  const std::string sym = panel.symbols()[static_cast<std::size_t>(s)];
  const auto c = panel.series(Column::close, s);
  const std::vector<double> close(c.begin(), c.end());
  const auto want = reference::rsi(close, 9);

  const auto r = run_qtos("indicators --data syn --symbol " + sym + " --indicator rsi --period 9", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ls = lines(r.out);
  ASSERT_EQ(ls.size(), static_cast<std::size_t>(panel.n_bars()) + 1);
  EXPECT_EQ(ls[0], "time,rsi");
  EXPECT_EQ(ls[1], "2024-01-01T00:00:00Z,");  // empty inside the lookback
  EXPECT_EQ(ls[9], "2024-01-01T08:00:00Z,");
  for (std::size_t t = 9; t < want.size(); ++t) {
    const auto comma = ls[t + 1].find(',');
    ASSERT_NE(comma, std::string::npos);
    const double got = std::stod(ls[t + 1].substr(comma + 1));
    EXPECT_NEAR(got, want[t], 1e-8 * std::fabs(want[t]) + 1e-9) << "bar " << t;
  }

  const auto j = run_qtos("indicators --data syn --symbol " + sym + " --indicator bbands --format json", dir_->path());
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto o = boost::json::parse(j.out).as_object();
  EXPECT_EQ(o.at("columns").as_array().size(), 5u);
  EXPECT_EQ(o.at("lookback").as_object().at("middle").as_int64(), 19);
  const auto& rows = o.at("rows").as_array();
  EXPECT_TRUE(rows[18].as_object().at("upper").is_null());
  EXPECT_FALSE(rows[19].as_object().at("upper").is_null());
  const auto adx = run_qtos("indicators --data syn --symbol " + sym + " --indicator adx --period 7", dir_->path());
  EXPECT_EQ(lines(adx.out)[0], "time,adx");
  EXPECT_EQ(lines(adx.out)[12 + 1].back(), ',');  // bar 12 < 2*7-1: empty
  EXPECT_NE(lines(adx.out)[13 + 1].back(), ',');  // bar 13: the first ADX

  // OBV, added by following docs/INDICATORS.md's recipe alone, reaches the CLI and matches its serial reference.
  const auto v = panel.series(Column::quote_volume, s);
  const auto want_obv = reference::obv(close, std::vector<double>(v.begin(), v.end()));
  const auto obv = run_qtos("indicators --data syn --symbol " + sym + " --indicator obv", dir_->path());
  ASSERT_EQ(obv.exit_code, 0) << obv.err;
  const auto ol = lines(obv.out);
  EXPECT_EQ(ol[0], "time,obv");
  ASSERT_EQ(ol.size(), want_obv.size() + 1);
  for (std::size_t t = 0; t < want_obv.size(); ++t) {
    const std::string cell = ol[t + 1].substr(ol[t + 1].find(',') + 1);
    if (std::isnan(want_obv[t])) {
      EXPECT_EQ(cell, "") << "bar " << t;
      continue;
    }
    ASSERT_FALSE(cell.empty()) << "bar " << t;
    EXPECT_NEAR(std::stod(cell), want_obv[t], 1e-6 * std::fabs(want_obv[t]) + 1e-3) << "bar " << t;
  }
  EXPECT_EQ(run_qtos("indicators --data syn --symbol " + sym + " --indicator obv --period 5", dir_->path()).exit_code, 2);
}

TEST_F(RankCli, IndicatorBadInputsExitNonZeroWithAReason) {
  auto r = run_qtos("indicators --data syn --symbol NOPEUSDT --indicator rsi", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--symbol NOPEUSDT: no such symbol in syn")) << r.err;
  r = run_qtos("indicators --data syn --symbol SYN001USDT --indicator rsi --period 0", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--period: 0 is out of range; expected an integer >= 1")) << r.err;
  r = run_qtos("indicators --data syn --symbol SYN001USDT --indicator vwap", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "vwap")) << r.err;
}

}  // namespace rank_cli_test
}  // namespace qtos
