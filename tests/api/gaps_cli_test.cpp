// Markets that close, through the real binary: a daily stock imported from monthly Binance-layout files (weekends and a
// holiday missing) gets indicator values under the default gap policy, `qtos data info` names its shape, and --gaps /
// QT_GAPS are honoured and refused with a reason when malformed.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace gaps_cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

constexpr std::int64_t kDay = 86'400'000;
constexpr std::int64_t kJan1 = 1'704'067'200'000;  // 2024-01-01T00:00:00Z, a Monday

/// Writes MSFT-1d-2024-MM.csv for January to March 2024: weekdays only, and no bar on 2024-01-15 (a holiday).
void write_daily_stock(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::int64_t month_start[] = {kJan1, kJan1 + 31 * kDay, kJan1 + 60 * kDay, kJan1 + 91 * kDay};
  double price = 370.0;
  for (int m = 0; m < 3; ++m) {
    char name[64];
    std::snprintf(name, sizeof name, "MSFT-1d-2024-%02d.csv", m + 1);
    std::ofstream f(dir / name);
    for (std::int64_t t = month_start[m]; t < month_start[m + 1]; t += kDay) {
      const std::int64_t day = t / kDay;
      const int weekday = static_cast<int>((day + 4) % 7);  // 0 Sunday
      if (weekday == 0 || weekday == 6 || t == kJan1 + 14 * kDay) continue;
      const double open = price;
      price *= 1.0 + 0.01 * std::sin(static_cast<double>(day));
      const double hi = std::max(open, price) * 1.004, lo = std::min(open, price) * 0.996;
      char row[256];
      std::snprintf(row, sizeof row, "%lld,%.2f,%.2f,%.2f,%.2f,1000,%lld,%.2f,10,500,%.2f,0\n", static_cast<long long>(t), open,
                    hi, lo, price, static_cast<long long>(t + kDay - 1), 1000 * price, 500 * price);
      f << row;
    }
  }
}

class GapsCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_daily_stock(dir_->path() / "klines");
    const auto r = run_qtos("data import --from klines --out stock", dir_->path());
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* GapsCli::dir_ = nullptr;

TEST_F(GapsCli, IndicatorsOnADailyStockHaveValuesOnTheBarsThatExist) {
  const auto r = run_qtos("indicators --data stock --symbol MSFT --indicator sma --period 14", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.err, "gaps: skip")) << r.err;
  const auto ls = lines(r.out);
  ASSERT_GT(ls.size(), 80u);
  EXPECT_EQ(ls[0], "time,sma");
  int values = 0, weekend_values = 0;
  for (std::size_t i = 1; i < ls.size(); ++i) {
    const std::string cell = ls[i].substr(ls[i].find(',') + 1);
    if (cell.empty()) continue;
    ++values;
    weekend_values += has(ls[i], "2024-01-06") || has(ls[i], "2024-01-07") || has(ls[i], "2024-01-15");
  }
  EXPECT_GE(values, 40) << r.out;  // 62 trading days - 13 of lookback
  EXPECT_EQ(weekend_values, 0) << "a closed day has no value";
  // The 14th trading day (2024-01-19, the holiday skipped) holds the first SMA.
  bool first_found = false;
  for (std::size_t i = 1; i < ls.size() && !first_found; ++i) {
    if (ls[i].back() == ',') continue;
    EXPECT_TRUE(has(ls[i], "2024-01-19T00:00:00Z")) << ls[i];
    first_found = true;
  }

  // Restarting after every gap (the historical rule) leaves no 14-bar stretch on a 5-day week: nothing to print.
  const auto z = run_qtos("indicators --data stock --symbol MSFT --indicator sma --period 14 --gaps reset-after:0 --format json",
                          dir_->path());
  ASSERT_EQ(z.exit_code, 0) << z.err;
  const auto o = boost::json::parse(z.out).as_object();
  EXPECT_EQ(o.at("gaps").as_string(), "reset-after:0");
  for (const auto& row : o.at("rows").as_array()) EXPECT_TRUE(row.as_object().at("sma").is_null());
  const auto env = run_qtos("indicators --data stock --symbol MSFT --indicator sma --period 14 --format json", dir_->path(),
                            {{"QT_GAPS", "reset-after:2"}});
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(boost::json::parse(env.out).as_object().at("gaps").as_string(), "reset-after:2");
}

TEST_F(GapsCli, DataInfoNamesTheMarketShapeAndItsBarsPerYear) {
  const auto r = run_qtos("data info stock", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "market    : weekdays, 5 x 1 bar (5 of 7 bars a week)")) << r.out;
  EXPECT_TRUE(has(r.out, "bars a year (measured from the bars that exist)")) << r.out;
  const auto j = run_qtos("data info stock --format json", dir_->path());
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto m = boost::json::parse(j.out).as_object().at("market").as_object();
  EXPECT_EQ(m.at("trading_days").as_int64(), 5);
  EXPECT_FALSE(m.at("continuous").as_bool());
  const double per_year = m.at("bars_per_year").as_double();
  EXPECT_NEAR(per_year, 365.0 * 64 / 89, 0.01);  // 64 of 89 days trade: ~262 bars a year, not the calendar's 365
}

TEST_F(GapsCli, BadGapPoliciesAreRefusedWithTheAcceptedForms) {
  auto r = run_qtos("indicators --data stock --symbol MSFT --indicator sma --gaps reset", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--gaps 'reset': expected skip or reset-after:N")) << r.err;
  r = run_qtos("indicators --data stock --symbol MSFT --indicator sma", dir_->path(), {{"QT_GAPS", "sometimes"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "QT_GAPS")) << r.err;
}

}  // namespace gaps_cli_test
}  // namespace qtos
