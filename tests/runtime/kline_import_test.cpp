// Binance-layout kline import: round trip, formats, and every bad-input rule with file, line and rule named.
#include <cmath>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include "runtime/data/kline_export.hpp"
#include "runtime/data/kline_import.hpp"
#include "runtime/data/synth.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace kline_import_test {

constexpr std::int64_t kH = 3600000;
constexpr std::int64_t kT0 = 1704067200000;  // 2024-01-01T00:00Z

std::string row(std::int64_t t, const std::string& o, const std::string& h, const std::string& l, const std::string& c,
                const std::string& v = "10") {
  return std::to_string(t) + "," + o + "," + h + "," + l + "," + c + "," + v + "," + std::to_string(t + kH - 1) +
         ",1000,50,5,500,0\n";
}

void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

MarketPanel import_dir(const std::filesystem::path& dir, ImportReport& rep, BadRowPolicy policy = BadRowPolicy::skip) {
  ImportOptions opt;
  opt.on_bad_row = policy;
  auto panel = kline_import(dir.string(), opt, rep);
  if (!panel) throw std::logic_error("import stopped without a stop request");
  return std::move(*panel);
}

TEST(KlineImport, ExportThenImportGivesTheSamePanel) {
  SynthOptions o;
  o.n_symbols = 6;
  o.n_bars = 24 * 70;  // spans three months
  o.gap_rate = 0.002;
  o.late_listing_fraction = 0.3;
  const auto m = synth_generate(o);
  test::TempDir dir;
  for (bool header : {false, true}) {
    for (bool micros : {false, true}) {
      const auto csv = dir / ("csv" + std::to_string(header) + std::to_string(micros));
      kline_export(m.panel, csv.string(), ExportOptions{header, micros});
      ImportReport rep;
      const auto p = import_dir(csv, rep);
      EXPECT_EQ(rep.bad_rows(), 0u);
      EXPECT_EQ(p.symbols(), m.panel.symbols());
      std::int32_t first = m.panel.n_bars(), last = -1;
      for (std::int32_t s = 0; s < m.panel.n_symbols(); ++s)
        first = std::min(first, m.panel.first_bar(s)), last = std::max(last, m.panel.last_bar(s));
      ASSERT_EQ(p.t0_ms(), m.panel.time_ms(first));
      ASSERT_EQ(p.n_bars(), last - first + 1);
      for (std::int32_t s = 0; s < p.n_symbols(); ++s) {
        for (std::int32_t t = 0; t < p.n_bars(); ++t) {
          const std::int32_t mt = m.panel.bar_at_or_before(p.time_ms(t));
          const float a = p.series(Column::close, s)[static_cast<std::size_t>(t)];
          const float b = m.panel.series(Column::close, s)[static_cast<std::size_t>(mt)];
          if (std::isnan(b)) {
            ASSERT_TRUE(std::isnan(a));
          } else {
            ASSERT_EQ(a, b) << "symbol " << s << " bar " << t;
          }
        }
      }
      // Every synthetic gap inside a symbol's range is reported as a gap.
      std::size_t gaps = 0;
      for (std::int32_t s = 0; s < m.panel.n_symbols(); ++s)
        for (std::int32_t t = m.panel.first_bar(s); t <= m.panel.last_bar(s); ++t) gaps += !m.panel.has_bar(s, t);
      EXPECT_EQ(rep.gap_bars, gaps);
    }
  }
}

TEST(KlineImport, DuplicatesOutOfOrderAndGapsAreReported) {
  test::TempDir dir;
  std::string text;
  text += row(kT0 + 2 * kH, "10", "11", "9", "10.5");  // out of order
  text += row(kT0 + 0 * kH, "10", "11", "9", "10");
  text += row(kT0 + 1 * kH, "10", "11", "9", "10.2");
  text += row(kT0 + 1 * kH, "10", "11", "9", "10.2");  // identical duplicate
  text += row(kT0 + 1 * kH, "10", "12", "9", "11");    // conflicting duplicate
  text += row(kT0 + 5 * kH, "10", "11", "9", "10");    // bars 3 and 4 missing
  write(dir / "BTCUSDT-1h-2024-01.csv", text);
  ImportReport rep;
  const auto p = import_dir(dir.path(), rep);
  EXPECT_EQ(rep.out_of_order, 1u);
  EXPECT_EQ(rep.duplicates_identical, 1u);
  EXPECT_EQ(rep.duplicates_conflicting, 1u);
  EXPECT_EQ(rep.gap_bars, 2u);
  ASSERT_EQ(rep.gaps.size(), 1u);
  EXPECT_EQ(rep.gaps[0].from_ms, kT0 + 3 * kH);
  EXPECT_EQ(p.n_bars(), 6);
  EXPECT_FLOAT_EQ(p.series(Column::close, 0)[1], 10.2f);  // the first of the conflicting rows is kept
  EXPECT_FALSE(p.has_bar(0, 3));
  bool named = false;
  for (const auto& m : rep.messages) named |= m.find("BTCUSDT-1h-2024-01.csv:5: duplicate_conflicting") != std::string::npos;
  EXPECT_TRUE(named);
}

struct BadCase {
  std::string line, rule, detail;
};

TEST(KlineImport, EveryBadRowRuleIsNamedWithFileAndLine) {
  const std::vector<BadCase> cases = {
      {row(kT0, "nan", "11", "9", "10"), "price_not_finite", "open is nan"},
      {row(kT0, "10", "11", "9", "-1"), "price_not_positive", "close is -1"},
      {row(kT0, "10", "11", "0", "10"), "price_not_positive", "low is 0"},
      {row(kT0, "10", "9", "11", "10"), "high_below_low", "high 9 < low 11"},
      {row(kT0, "10", "11", "9", "12"), "close_outside_range", "close 12 outside [low 9, high 11]"},
      {row(kT0, "8", "11", "9", "10"), "open_outside_range", "open 8 outside"},
      {row(kT0, "10", "11", "9", "10", "-5"), "negative_volume", "volume is -5"},
      {"1704067200000,10,11,9\n", "truncated_line", "4 fields, expected 12"},
      {row(kT0, "10", "1x", "9", "10"), "non_numeric_field", "field 3 (high) '1x' is not a number"},
      {row(kT0 + 1234, "10", "11", "9", "10"), "timestamp_misaligned", "is not on the 1h grid"},
  };
  for (const auto& c : cases) {
    test::TempDir dir;
    // Line 1 is a header, line 2 good, line 3 bad, line 4 good (so the grid phase is known).
    write(dir / "ETHUSDT-1h-2024-01.csv",
          "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n" +
              row(kT0 - kH, "10", "11", "9", "10") + c.line + row(kT0 + kH, "10", "11", "9", "10"));
    ImportReport rep;
    const auto p = import_dir(dir.path(), rep);
    EXPECT_EQ(rep.bad_rows_by_rule[c.rule], 1u) << c.rule;
    EXPECT_EQ(rep.bad_rows(), 1u) << c.rule;
    EXPECT_EQ(rep.rows_kept, 2u) << c.rule;
    ASSERT_FALSE(rep.messages.empty()) << c.rule;
    EXPECT_NE(rep.messages[0].find("ETHUSDT-1h-2024-01.csv:3: " + c.rule + ": "), std::string::npos) << rep.messages[0];
    EXPECT_NE(rep.messages[0].find(c.detail), std::string::npos) << rep.messages[0];
    // Fail mode stops at that row with the same message.
    ImportReport rep2;
    try {
      import_dir(dir.path(), rep2, BadRowPolicy::fail);
      ADD_FAILURE() << c.rule << " did not fail";
    } catch (const ImportError& e) {
      EXPECT_NE(std::string(e.what()).find(":3: " + c.rule), std::string::npos) << e.what();
    }
  }
}

TEST(KlineImport, EmptyFilesAreSkippedAndCountedOrFail) {
  test::TempDir dir;
  write(dir / "AAAUSDT-1h-2024-01.csv", "");
  write(dir / "BBBUSDT-1h-2024-01.csv", row(kT0, "1", "2", "0.5", "1.5"));
  ImportReport rep;
  const auto p = import_dir(dir.path(), rep);
  EXPECT_EQ(rep.bad_files, 1u);
  EXPECT_EQ(p.symbols(), std::vector<std::string>{"BBBUSDT"});
  EXPECT_THROW(import_dir(dir.path(), rep, BadRowPolicy::fail), ImportError);
}

std::string import_error(const std::filesystem::path& dir) {
  ImportReport rep;
  try {
    import_dir(dir, rep);
  } catch (const ImportError& e) {
    return e.what();
  }
  return "";
}

TEST(KlineImport, UnusableInputsAreClearErrors) {
  test::TempDir dir;
  EXPECT_NE(import_error(dir / "missing").find("is not a directory"), std::string::npos);
  EXPECT_NE(import_error(dir.path()).find("holds no .csv or .zip kline files"), std::string::npos);
  write(dir / "BTCUSDT-7m-2024-01.csv", row(kT0, "1", "2", "0.5", "1.5"));
  EXPECT_NE(import_error(dir.path()).find("'7m' is not a known interval"), std::string::npos) << import_error(dir.path());
  std::filesystem::remove(dir / "BTCUSDT-7m-2024-01.csv");
  write(dir / "BTCUSDT-1M-2024-01.csv", row(kT0, "1", "2", "0.5", "1.5"));
  EXPECT_NE(import_error(dir.path()).find("'1M' is not supported"), std::string::npos);
  std::filesystem::remove(dir / "BTCUSDT-1M-2024-01.csv");
  write(dir / "btc prices.csv", row(kT0, "1", "2", "0.5", "1.5"));
  EXPECT_NE(import_error(dir.path()).find("does not follow SYMBOL-INTERVAL-YYYY-MM.csv"), std::string::npos);
  std::filesystem::remove(dir / "btc prices.csv");
  write(dir / "BTCUSDT-1h-2024-01.csv", row(kT0, "1", "2", "0.5", "1.5"));
  write(dir / "ETHUSDT-4h-2024-01.csv", row(kT0, "1", "2", "0.5", "1.5"));
  EXPECT_NE(import_error(dir.path()).find("mixed intervals"), std::string::npos);
}

TEST(KlineImport, DailyFilesAndWeeklyBarsOnMondays) {
  test::TempDir dir;
  const std::int64_t monday = 1704067200000;  // 2024-01-01 is a Monday; Binance weeks open on Monday
  const std::int64_t w = 7 * 24 * kH;
  auto week = [&](std::int64_t t) { return std::to_string(t) + ",1,2,0.5,1.5,10," + std::to_string(t + w - 1) + ",1000,50,5,500,0\n"; };
  write(dir / "SOLUSDT-1w-2024-01-01.csv", week(monday) + week(monday + w));
  ImportReport rep;
  const auto p = import_dir(dir.path(), rep);
  EXPECT_EQ(rep.bad_rows(), 0u);
  EXPECT_EQ(p.n_bars(), 2);
  EXPECT_EQ(p.t0_ms(), monday);
}

constexpr std::int64_t kM = 60000;

std::string minute_row(std::int64_t t) {
  return std::to_string(t) + ",10,11,9,10,1," + std::to_string(t + kM - 1) + ",10,5,0.5,5,0\n";
}

bool has_message(const ImportReport& rep, const std::string& what) {
  for (const auto& m : rep.messages)
    if (m.find(what) != std::string::npos) return true;
  return false;
}

TEST(KlineImport, ARowFarOutsideItsFilesMonthIsRefusedAndThePanelStaysSmall) {
  test::TempDir dir;
  std::string text;
  for (int i = 0; i < 11; ++i) {
    if (i == 5) text += minute_row(4102444800000);  // 2100-01-01: a typo that would span 40 million bars
    text += minute_row(kT0 + i * kM);
  }
  write(dir / "BTCUSDT-1m-2024-01.csv", text);
  ImportReport rep;
  const auto p = import_dir(dir.path(), rep);
  EXPECT_EQ(p.n_bars(), 11);
  EXPECT_EQ(rep.rows_kept, 11u);
  EXPECT_EQ(rep.bad_rows_by_rule["outside_file_period"], 1u);
  EXPECT_TRUE(has_message(rep, "BTCUSDT-1m-2024-01.csv:6: outside_file_period: open_time 4102444800000 (2100-01-01T00:00:00Z) "
                               "is outside 2024-01"));
  try {
    import_dir(dir.path(), rep, BadRowPolicy::fail);
    ADD_FAILURE() << "fail mode accepted the outlier";
  } catch (const ImportError& e) {
    EXPECT_NE(std::string(e.what()).find(":6: outside_file_period"), std::string::npos) << e.what();
  }
}

TEST(KlineImport, RowsMayOpenOneBarOutsideTheirDayButNotMore) {
  test::TempDir dir;
  const std::int64_t day = 24 * kH;
  // A daily file of 2024-01-02: one bar before the day is tolerated, a bar two days later is not.
  write(dir / "ETHUSDT-1h-2024-01-02.csv", row(kT0 + day - kH, "10", "11", "9", "10") + row(kT0 + day, "10", "11", "9", "10") +
                                               row(kT0 + 3 * day, "10", "11", "9", "10"));
  ImportReport rep;
  const auto p = import_dir(dir.path(), rep);
  EXPECT_EQ(rep.rows_kept, 2u);
  EXPECT_TRUE(has_message(rep, "ETHUSDT-1h-2024-01-02.csv:3: outside_file_period")) << rep.messages[0];
  EXPECT_TRUE(has_message(rep, "the day the file name names"));
}

TEST(KlineImport, TheFileNamesIntervalIsCheckedAgainstTheCloseTime) {
  test::TempDir dir;
  write(dir / "BTCUSDT-1h-2024-01.csv", minute_row(kT0) + row(kT0 + kH, "10", "11", "9", "10"));
  ImportReport rep;
  const auto p = import_dir(dir.path(), rep);
  EXPECT_EQ(rep.rows_kept, 1u);
  EXPECT_EQ(rep.bad_rows_by_rule["interval_mismatch"], 1u);
  EXPECT_TRUE(has_message(rep, "BTCUSDT-1h-2024-01.csv:1: interval_mismatch: close_time 1704067259999 makes the bar 1m long, "
                               "but the file name says 1h"));
}

TEST(KlineImport, AByteOrderMarkDoesNotCostTheFirstRow) {
  test::TempDir dir;
  write(dir / "BTCUSDT-1h-2024-01.csv", "\xEF\xBB\xBF" + row(kT0, "10", "11", "9", "10") + row(kT0 + kH, "10", "11", "9", "10"));
  write(dir / "ETHUSDT-1h-2024-01.csv",
        "\xEF\xBB\xBFopen_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
        "taker_buy_quote_volume,ignore\n" + row(kT0, "10", "11", "9", "10"));
  ImportReport rep;
  const auto p = import_dir(dir.path(), rep);
  EXPECT_EQ(rep.bad_rows(), 0u) << (rep.messages.empty() ? "" : rep.messages[0]);
  EXPECT_EQ(rep.rows_kept, 3u);
  EXPECT_TRUE(p.has_bar(0, 0));
}

TEST(KlineImport, ANulByteIsShownAndDoesNotCutTheMessage) {
  test::TempDir dir;
  std::string bad = row(kT0 + kH, "10", "11", "9", "10");
  bad.replace(bad.find(",11,"), 4, std::string(",1\0" "1,", 5));
  write(dir / "BTCUSDT-1h-2024-01.csv", row(kT0, "10", "11", "9", "10") + bad);
  ImportReport rep;
  import_dir(dir.path(), rep);
  ASSERT_EQ(rep.messages.size(), 1u);
  EXPECT_EQ(rep.messages[0].find('\0'), std::string::npos);
  EXPECT_NE(rep.messages[0].find(":2: non_numeric_field: field 3 (high) '1\\x001' is not a number"), std::string::npos)
      << rep.messages[0];
}

TEST(KlineImport, AnOverlongLineIsOneBadRowAndTheNextLinesAreRead) {
  test::TempDir dir;
  write(dir / "BTCUSDT-1h-2024-01.csv", row(kT0, "10", "11", "9", "10") + std::string(100000, '7') + "\n" +
                                            row(kT0 + kH, "10", "11", "9", "10"));
  ImportReport rep;
  import_dir(dir.path(), rep);
  EXPECT_EQ(rep.rows_kept, 2u);
  EXPECT_EQ(rep.bad_rows_by_rule["line_too_long"], 1u);
  EXPECT_TRUE(has_message(rep, "BTCUSDT-1h-2024-01.csv:2: line_too_long"));
}

TEST(KlineImport, ImpossibleDatesInFileNamesAreRefused) {
  EXPECT_EQ(kline_file_name_parse("BTCUSDT-1h-2024-02-29.csv").period, "2024-02-29");  // a leap day exists
  EXPECT_EQ(kline_file_name_parse("BTCUSDT-1h-2024-12.csv").period_end_ms, 1735689600000);  // 2025-01-01
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"BTCUSDT-1h-2024-13.csv", "month 13 does not exist (expected 01 to 12)"},
      {"BTCUSDT-1h-2024-00.csv", "month 00 does not exist"},
      {"BTCUSDT-1h-2023-02-29.csv", "day 29 does not exist in 2023-02 (expected 01 to 28)"},
      {"BTCUSDT-1h-2024-04-31.csv", "day 31 does not exist in 2024-04"},
      {"BTCUSDT-1h-1969-12.csv", "year 1969 is before 1970"},
  };
  for (const auto& [name, why] : cases) {
    try {
      kline_file_name_parse(name);
      ADD_FAILURE() << name << " was accepted";
    } catch (const ImportError& e) {
      EXPECT_NE(std::string(e.what()).find("file name '" + name + "': " + why), std::string::npos) << e.what();
    }
  }
  test::TempDir dir;
  write(dir / "BTCUSDT-1h-2024-13.csv", row(kT0, "10", "11", "9", "10"));
  EXPECT_NE(import_error(dir.path()).find("month 13 does not exist"), std::string::npos);
}

TEST(KlineImport, WhenEveryRowIsBadTheErrorSaysWhy) {
  test::TempDir dir;
  write(dir / "BTCUSDT-1h-2024-01.csv", row(kT0, "10", "9", "11", "10") + row(kT0 + kH, "10", "9", "11", "10"));
  const std::string e = import_error(dir.path());
  EXPECT_NE(e.find("no valid kline rows: 2 rows read in 1 files, refused by rule: high_below_low=2"), std::string::npos) << e;
  EXPECT_NE(e.find("BTCUSDT-1h-2024-01.csv:1: high_below_low: high 9 < low 11"), std::string::npos) << e;
}

TEST(KlineImport, ExportLeavesTakerBuyVolumesEmptyAndImportAcceptsThat) {
  MarketPanel p({"AAAUSDT"}, 3, kT0, kH);
  for (int t = 0; t < 3; ++t) {
    p.series_mut(Column::open, 0)[static_cast<std::size_t>(t)] = 10.0f;
    p.series_mut(Column::high, 0)[static_cast<std::size_t>(t)] = 11.0f;
    p.series_mut(Column::low, 0)[static_cast<std::size_t>(t)] = 9.0f;
    p.series_mut(Column::close, 0)[static_cast<std::size_t>(t)] = 10.5f;
    p.series_mut(Column::volume, 0)[static_cast<std::size_t>(t)] = 8.0f;
    p.series_mut(Column::quote_volume, 0)[static_cast<std::size_t>(t)] = 80.0f;
  }
  p.valid_ranges_recompute();
  test::TempDir dir;
  EXPECT_EQ(kline_export(p, (dir / "csv").string()), 1u);
  const std::string text = test::slurp(dir / "csv/AAAUSDT-1h-2024-01.csv");
  EXPECT_EQ(text.substr(0, text.find('\n')), "1704067200000,10,11,9,10.5,8,1704070799999,80,0,,,0");  // no invented 4 and 40
  ImportReport rep;
  const auto q = import_dir(dir / "csv", rep);
  EXPECT_EQ(rep.bad_rows(), 0u);
  EXPECT_EQ(q.n_bars(), 3);
}

TEST(KlineImport, AStopBetweenFilesReturnsNoPanelAndSaysHowFarItGot) {
  test::TempDir dir;
  for (const char* sym : {"AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"})
    write(dir / (std::string(sym) + "-1h-2024-01.csv"), row(kT0, "10", "11", "9", "10"));
  tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
  StopSource source;
  ImportOptions opt;
  opt.stop = source.token();
  ImportReport rep;
  const auto p = kline_import(dir.path().string(), opt, rep, [&](std::size_t done, std::size_t) {
    if (done == 2) source.request();
  });
  EXPECT_FALSE(p.has_value());
  EXPECT_TRUE(rep.stopped);
  EXPECT_EQ(rep.files_read, 2u);
  EXPECT_EQ(rep.files, 4u);
  EXPECT_EQ(rep.rows_read, 2u);
}

TEST(KlineImport, RowsSpanningMoreThanTheMemoryAvailableAreRefusedBeforeAllocating) {
  test::TempDir dir;
  // Two daily 1s files a month apart: 2.6 million bars, about 73 MB, against a 1 MB limit.
  write(dir / "BTCUSDT-1s-2024-01-01.csv", "1704067200000,10,11,9,10,1,1704067200999,10,5,0.5,5,0\n");
  write(dir / "BTCUSDT-1s-2024-01-31.csv", "1706659200000,10,11,9,10,1,1706659200999,10,5,0.5,5,0\n");
  ::setenv("QTOS_TEST_MEMORY_BYTES", "1000000", 1);
  ImportReport rep;
  try {
    import_dir(dir.path(), rep);
    ADD_FAILURE() << "the import allocated a panel larger than the memory limit";
  } catch (const PanelTooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("the rows span 2024-01-01T00:00:00Z .. 2024-01-31T00:00:00Z, 2592001 bars of 1s x 1 symbols: "
                                         "the panel needs 73 MB of memory, have 1 MB available"),
              std::string::npos)
        << e.what();
  }
  ::unsetenv("QTOS_TEST_MEMORY_BYTES");
}

}  // namespace kline_import_test
}  // namespace qtos
