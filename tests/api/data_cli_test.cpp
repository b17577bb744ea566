// `qtos data` as a user meets it when things go wrong: a full disk during export, an outlier row, odd bytes and file
// names, an all-bad import, a directory where the panel belongs, a panel too large for memory, Ctrl-C during an import
// and out-of-range options. Each case checks the exit status, the message and that nothing was lost.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/util/atomic_file.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace data_cli_test {

namespace fs = std::filesystem;
using test::run_qtos;
using test::TempDir;

using test::has;

constexpr std::int64_t kT0 = 1704067200000;  // 2024-01-01T00:00Z
constexpr std::int64_t kM = 60000;

std::string minute_row(std::int64_t t) {
  return std::to_string(t) + ",10,11,9,10,1," + std::to_string(t + kM - 1) + ",10,5,0.5,5,0\n";
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

/// Every file of a directory with its content.
std::map<std::string, std::string> contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = test::slurp(e.path());
  return out;
}

/// A synthetic panel of 3 symbols over January and February 2024 (6 monthly files on export).
void make_panel(const TempDir& dir) {
  const auto r = run_qtos("data synth --symbols 3 --bars 1200 --interval 1h --seed 5 --out syn", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(DataCli, ExportOnAFullDiskFailsNamingTheFileAndKeepsEveryOtherFileWhole) {
  TempDir dir;
  make_panel(dir);
  ASSERT_EQ(run_qtos("data export --data syn --out csv", dir.path()).exit_code, 0);
  const auto before = contents(dir / "csv");
  ASSERT_EQ(before.size(), 6u);

  // Over the previous export: the failing file keeps its old content, every other one too, no temporaries.
  const auto again = run_qtos("data export --data syn --out csv --header", dir.path(),
                              {{"QTOS_TEST_FAIL_WRITE", "SYN001USDT-1h-2024-02"}});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(has(again.err, "cannot write 'csv/SYN001USDT-1h-2024-02.csv': No space left on device")) << again.err;
  EXPECT_TRUE(has(again.err, "3 files written before it are complete")) << again.err;
  const auto after = contents(dir / "csv");
  ASSERT_EQ(after.size(), 6u);
  EXPECT_EQ(after.at("SYN001USDT-1h-2024-02.csv"), before.at("SYN001USDT-1h-2024-02.csv"));
  EXPECT_EQ(after.at("SYN002USDT-1h-2024-01.csv"), before.at("SYN002USDT-1h-2024-01.csv"));  // not reached: untouched
  EXPECT_TRUE(after.at("SYN000USDT-1h-2024-01.csv").starts_with("open_time,"));              // written before: new and whole

  // Into a fresh directory: the files before the failure are whole, nothing empty or truncated exists.
  const auto fresh = run_qtos("data export --data syn --out fresh", dir.path(), {{"QTOS_TEST_FAIL_WRITE", "SYN001USDT-1h-2024-02"}});
  EXPECT_EQ(fresh.exit_code, 1);
  const auto written = contents(dir / "fresh");
  EXPECT_EQ(written.size(), 3u);
  for (const auto& [name, text] : written) EXPECT_EQ(text, before.at(name)) << name;
  EXPECT_FALSE(fs::exists(dir / "fresh/SYN001USDT-1h-2024-02.csv"));

  // A failed rename is reported the same way, with its own reason.
  const auto rename = run_qtos("data export --data syn --out csv", dir.path(), {{"QTOS_TEST_FAIL_RENAME", "SYN000USDT-1h-2024-01"}});
  EXPECT_EQ(rename.exit_code, 1);
  EXPECT_TRUE(has(rename.err, "cannot write 'csv/SYN000USDT-1h-2024-01.csv': rename: Input/output error")) << rename.err;
  EXPECT_EQ(contents(dir / "csv").size(), 6u);
}

TEST(DataCli, APanelWriteOnAFullDiskKeepsThePreviousPanel) {
  TempDir dir;
  make_panel(dir);
  const std::string before = test::slurp(dir / "syn/panel.qtp");
  const auto r = run_qtos("data synth --symbols 4 --bars 300 --seed 9 --out syn", dir.path(), {{"QTOS_TEST_FAIL_WRITE", "panel.qtp"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "cannot write 'syn/panel.qtp': No space left on device (the previous file, if any, is unchanged)")) << r.err;
  EXPECT_EQ(test::slurp(dir / "syn/panel.qtp"), before);
  EXPECT_EQ(contents(dir / "syn").size(), 1u);
}

TEST(DataCli, TemporariesOfACrashedRunAreCleanedAtTheNextStart) {
  TempDir dir;
  make_panel(dir);
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  int status = 0;
  ::waitpid(dead, &status, 0);
  fs::create_directories(dir / "csv");
  const std::string leftover = "SYN000USDT-1h-2024-01.csv.qtos-tmp-" + std::to_string(dead) + "-0";
  write(dir / "csv" / leftover, "half a fi");
  write(dir / "syn" / ("panel.qtp.qtos-tmp-" + std::to_string(dead) + "-2"), "half a panel");
  ASSERT_EQ(run_qtos("data export --data syn --out csv", dir.path()).exit_code, 0);
  EXPECT_FALSE(fs::exists(dir / "csv" / leftover));
  ASSERT_EQ(run_qtos("data synth --symbols 3 --bars 100 --out syn", dir.path()).exit_code, 0);
  EXPECT_EQ(contents(dir / "syn").size(), 1u);
}

TEST(DataCli, AnOutlierRowIsRefusedWithFileRowAndRuleAndThePanelStaysSmall) {
  TempDir dir;
  fs::create_directories(dir / "in");
  std::string text;
  for (int i = 0; i < 11; ++i) {
    if (i == 5) text += minute_row(4102444800000);  // 2100-01-01
    text += minute_row(kT0 + i * kM);
  }
  write(dir / "in/BTCUSDT-1m-2024-01.csv", text);
  const auto r = run_qtos("data import --from in --out out", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "(1 symbols x 11 bars of 1m)")) << r.out;
  EXPECT_TRUE(has(r.out, "bad rows skipped: 1 (outside_file_period=1)")) << r.out;
  EXPECT_TRUE(has(r.out, "in/BTCUSDT-1m-2024-01.csv:6: outside_file_period: open_time 4102444800000 (2100-01-01T00:00:00Z) is "
                         "outside 2024-01, the month the file name names"))
      << r.out;
  EXPECT_LT(fs::file_size(dir / "out/panel.qtp"), 100'000u);
  const auto fail = run_qtos("data import --from in --out strict --on-bad-row fail", dir.path());
  EXPECT_EQ(fail.exit_code, 1);
  EXPECT_TRUE(has(fail.err, "BTCUSDT-1m-2024-01.csv:6: outside_file_period")) << fail.err;
  EXPECT_FALSE(fs::exists(dir / "strict"));
}

TEST(DataCli, OddBytesAndFileNamesGiveWholeMessages) {
  TempDir dir;
  fs::create_directories(dir / "in");
  std::string nul_row = minute_row(kT0 + kM);
  nul_row[nul_row.find(",11,") + 2] = '\0';
  write(dir / "in/BTCUSDT-1m-2024-01.csv", "\xEF\xBB\xBF" + minute_row(kT0) + nul_row);
  auto r = run_qtos("data import --from in --out out", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "imported 1 files, 2 rows read, 1 kept")) << r.out;  // the BOM did not cost the first row
  EXPECT_TRUE(has(r.out, "BTCUSDT-1m-2024-01.csv:2: non_numeric_field: field 3 (high) '1\\x00' is not a number")) << r.out;

  write(dir / "in/ETHUSDT-1m-2024-13.csv", minute_row(kT0));
  r = run_qtos("data import --from in --out out2", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "file name 'ETHUSDT-1m-2024-13.csv': month 13 does not exist (expected 01 to 12)")) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out2"));
}

TEST(DataCli, AnAllBadImportSaysWhy) {
  TempDir dir;
  fs::create_directories(dir / "in");
  write(dir / "in/BTCUSDT-1h-2024-01.csv", minute_row(kT0) + minute_row(kT0 + kM));  // 1m rows in a file named 1h
  const auto r = run_qtos("data import --from in --out out", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "no valid kline rows: 2 rows read in 1 files, refused by rule: interval_mismatch=2")) << r.err;
  EXPECT_TRUE(has(r.err, "in/BTCUSDT-1h-2024-01.csv:1: interval_mismatch")) << r.err;
}

TEST(DataCli, ADirectoryOrAFileInTheWrongPlaceIsNamed) {
  TempDir dir;
  fs::create_directories(dir / "d/panel.qtp");
  auto r = run_qtos("data info d", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "panel file 'd/panel.qtp': is a directory, expected a panel file")) << r.err;
  EXPECT_FALSE(has(r.err, "mmap")) << r.err;
  make_panel(dir);
  r = run_qtos("data export --data syn/panel.qtp --out csv", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "--data 'syn/panel.qtp' is a file; expected the data directory that holds panel.qtp")) << r.err;
}

TEST(DataCli, APanelLargerThanMemoryIsRefusedWithSizes) {
  TempDir dir;
  const auto r = run_qtos("data synth --symbols 100 --bars 100000 --out big", dir.path(), {{"QTOS_TEST_MEMORY_BYTES", "1000000"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "--symbols 100 x --bars 100000: the panel needs 280 MB of memory, have 1 MB available")) << r.err;
  EXPECT_FALSE(has(r.err, "bad_alloc")) << r.err;
  EXPECT_FALSE(fs::exists(dir / "big/panel.qtp"));
}

TEST(DataCli, SigintDuringAnImportStopsBetweenFilesWritesNothingAndExits130) {
  TempDir dir;
  make_panel(dir);
  ASSERT_EQ(run_qtos("data export --data syn --out csv", dir.path()).exit_code, 0);
  ASSERT_EQ(run_qtos("data import --from csv --out imported", dir.path()).exit_code, 0);
  const std::string before = test::slurp(dir / "imported/panel.qtp");
  // Change the input so a finished import would write another panel.
  fs::remove(dir / "csv/SYN002USDT-1h-2024-02.csv");
  auto r = run_qtos("data import --from csv --out imported", dir.path(), {{"QTOS_TEST_STOP_AFTER_FILES", "1"}});
  EXPECT_EQ(r.exit_code, 130) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "import stopped by SIGINT")) << r.out;
  EXPECT_TRUE(has(r.out, "of 5 files")) << r.out;
  EXPECT_TRUE(has(r.out, "nothing was written, 'imported/panel.qtp' is unchanged")) << r.out;
  EXPECT_FALSE(has(r.out, "imported 5 files")) << r.out;
  EXPECT_EQ(test::slurp(dir / "imported/panel.qtp"), before);
  EXPECT_EQ(contents(dir / "imported").size(), 1u);
  r = run_qtos("data import --from csv --out fresh", dir.path(), {{"QTOS_TEST_STOP_AFTER_FILES", "2:SIGTERM"}});
  EXPECT_EQ(r.exit_code, 143) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "import stopped by SIGTERM")) << r.out;
  EXPECT_FALSE(fs::exists(dir / "fresh"));
}

/// Runs each command line and expects exit status 2 with `message` on stderr and no output directory.
void expect_usage_errors(const std::vector<std::pair<std::string, std::string>>& cases) {
  TempDir dir;
  for (const auto& [args, message] : cases) {
    const auto r = run_qtos(args, dir.path());
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_TRUE(has(r.err, message)) << args << "\n" << r.err;
    EXPECT_FALSE(fs::exists(dir / "x")) << args;
  }
}

TEST(DataCli, OutOfRangeCountsAreUsageErrorsNamingTheOption) {
  expect_usage_errors({
      {"data synth --bars 0 --out x", "--bars: 0 is out of range; expected 2 to 50000000"},
      {"data synth --bars -5 --out x", "--bars: -5 is out of range"},
      {"data synth --symbols -3 --out x", "--symbols: -3 is out of range; expected 1 to 1000000"},
      {"data synth --seed -1 --out x", "--seed: -1 is out of range"},
      {"data synth --bars abc --out x", "--bars"},
  });
}

TEST(DataCli, OutOfRangeValuesAreUsageErrorsNamingTheOption) {
  expect_usage_errors({
      {"data synth --planted-momentum 5 --out x", "--planted-momentum: 5"},
      {"data synth --planted-momentum nan --out x", "--planted-momentum: nan"},
      {"data synth --interval 7m --out x", "--interval: '7m' is not a known interval"},
      {"data synth --start 2024-13-01 --out x", "--start"},
  });
}

TEST(DataCli, EmptyOrMissingPathsAreUsageErrorsNamingTheOption) {
  expect_usage_errors({
      {"data synth --out ''", "--out: must not be empty"},
      {"data import --from '' --out x", "--from: must not be empty"},
      {"data import --from in --out x --on-bad-row maybe", "--on-bad-row"},
      {"data export --data syn", "--out"},
      {"data info ''", "dir: must not be empty"},
  });
}

}  // namespace data_cli_test
}  // namespace qtos
