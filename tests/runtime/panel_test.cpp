// MarketPanel layout and the native file format: round trip, alignment, and refusal of corrupt files.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "runtime/data/market_panel.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/util/atomic_file.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace panel_test {

MarketPanel small_panel() {
  SynthOptions o;
  o.n_symbols = 5;
  o.n_bars = 301;
  o.seed = 7;
  o.late_listing_fraction = 0.5;
  o.gap_rate = 0.01;
  return synth_generate(o).panel;
}

void expect_same(const MarketPanel& a, const MarketPanel& b) {
  ASSERT_EQ(a.symbols(), b.symbols());
  ASSERT_EQ(a.n_bars(), b.n_bars());
  EXPECT_EQ(a.t0_ms(), b.t0_ms());
  EXPECT_EQ(a.interval_ms(), b.interval_ms());
  for (std::int32_t s = 0; s < a.n_symbols(); ++s) {
    EXPECT_EQ(a.first_bar(s), b.first_bar(s));
    EXPECT_EQ(a.last_bar(s), b.last_bar(s));
    for (int c = 0; c < kColumnCount; ++c) {
      const auto x = a.series(static_cast<Column>(c), s), y = b.series(static_cast<Column>(c), s);
      for (std::size_t t = 0; t < x.size(); ++t) {
        if (std::isnan(x[t])) {
          EXPECT_TRUE(std::isnan(y[t]));
        } else {
          EXPECT_EQ(x[t], y[t]) << "symbol " << s << " column " << c << " bar " << t;
        }
      }
    }
  }
}

TEST(MarketPanel, NewPanelIsAllMissingAndAligned) {
  MarketPanel p({"AAA", "BBB"}, 33, 1000, 60000);
  EXPECT_EQ(p.stride() % 16, 0);
  EXPECT_GE(p.stride(), 33);
  for (int c = 0; c < kColumnCount; ++c) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.column_data(static_cast<Column>(c))) % 64, 0u);
  EXPECT_TRUE(std::isnan(p.series(Column::close, 1)[5]));
  EXPECT_EQ(p.series(Column::volume, 1)[5], 0.0f);
  EXPECT_EQ(p.time_ms(2), 1000 + 120000);
  EXPECT_EQ(p.bar_at_or_before(1000 + 150000), 2);
  EXPECT_EQ(p.bar_at_or_before(0), -1);
  EXPECT_EQ(p.symbol_index("BBB"), 1);
  EXPECT_EQ(p.symbol_index("CCC"), -1);
  const auto v = p.view();
  EXPECT_EQ(v.at(1, 3), p.stride() + 3);
}

TEST(MarketPanel, RejectsBadShapes) {
  EXPECT_THROW(MarketPanel({"A", "A"}, 10, 0, 60000), std::invalid_argument);
  EXPECT_THROW(MarketPanel({""}, 10, 0, 60000), std::invalid_argument);
  EXPECT_THROW(MarketPanel({"A"}, -1, 0, 60000), std::invalid_argument);
  EXPECT_THROW(MarketPanel({"A"}, 10, 0, 0), std::invalid_argument);
}

TEST(PanelFile, RoundTripsThroughMmap) {
  test::TempDir dir;
  const auto p = small_panel();
  panel_save(p, (dir / "panel.qtp").string());
  const auto q = panel_load((dir / "panel.qtp").string());
  EXPECT_TRUE(q.is_mapped());
  expect_same(p, q);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q.column_data(Column::close)) % 64, 0u);
}

TEST(PanelFile, EmptyPanelRoundTrips) {
  test::TempDir dir;
  MarketPanel p({"ONLY"}, 0, 0, 3600000);
  panel_save(p, (dir / "e.qtp").string());
  const auto q = panel_load((dir / "e.qtp").string());
  EXPECT_EQ(q.n_bars(), 0);
  EXPECT_EQ(q.last_bar(0), -1);
}

std::string load_error(const std::filesystem::path& path) {
  try {
    panel_load(path.string());
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(PanelFile, CorruptOrTruncatedFilesAreRefusedWithAReason) {
  test::TempDir dir;
  const auto path = dir / "panel.qtp";
  panel_save(small_panel(), path.string());
  const auto size = std::filesystem::file_size(path);
  auto flip = [&](std::uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5A);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
  };
  flip(size - 100);  // a float in the last column
  EXPECT_NE(load_error(path).find("payload checksum mismatch"), std::string::npos) << load_error(path);
  flip(size - 100);
  EXPECT_EQ(load_error(path), "");
  flip(20);  // n_symbols in the header
  EXPECT_NE(load_error(path).find("header checksum mismatch"), std::string::npos) << load_error(path);
  flip(20);
  flip(0);
  EXPECT_NE(load_error(path).find("bad magic"), std::string::npos);
  flip(0);
  std::filesystem::resize_file(path, size - 4096);
  EXPECT_NE(load_error(path).find("truncated"), std::string::npos) << load_error(path);
  std::filesystem::resize_file(path, 100);
  EXPECT_NE(load_error(path).find("shorter than the 4096-byte header"), std::string::npos) << load_error(path);
  EXPECT_NE(load_error(dir / "nope.qtp").find("cannot open"), std::string::npos);
  EXPECT_NE(load_error(dir / "nope.qtp").find("nope.qtp"), std::string::npos);
}

TEST(PanelFile, OtherVersionIsRefused) {
  test::TempDir dir;
  const auto path = dir / "panel.qtp";
  panel_save(small_panel(), path.string());
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const std::uint32_t v = 99;
  f.seekp(8);
  f.write(reinterpret_cast<const char*>(&v), 4);
  f.close();
  EXPECT_NE(load_error(path).find("format version 99, this qtos reads version 1"), std::string::npos) << load_error(path);
}

TEST(PanelFile, ADirectoryWhereThePanelShouldBeIsNamedAsSuch) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "panel.qtp");
  const std::string e = load_error(dir / "panel.qtp");
  EXPECT_NE(e.find("panel.qtp': is a directory, expected a panel file"), std::string::npos) << e;
  EXPECT_EQ(e.find("mmap"), std::string::npos) << e;
}

TEST(PanelFile, AFailedSaveKeepsThePreviousPanel) {
  test::TempDir dir;
  const auto path = (dir / "panel.qtp").string();
  const auto old = small_panel();
  panel_save(old, path);
  const std::string before = test::slurp(path);
  MarketPanel other({"ZZZ"}, 10, 0, 60000);
  for (const auto point : {FaultPoint::write, FaultPoint::rename}) {
    atomic_fault_set(point, "panel.qtp");
    try {
      panel_save(other, path);
      ADD_FAILURE() << "the injected fault did not fail the save";
    } catch (const WriteError& e) {
      EXPECT_NE(std::string(e.what()).find("cannot write '" + path + "'"), std::string::npos) << e.what();
    }
    atomic_fault_set(point, "");
    EXPECT_EQ(test::slurp(path), before);
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
    EXPECT_EQ(entries, 1u);  // no temporary left beside it
  }
  expect_same(old, panel_load(path));
}

TEST(MarketPanel, APanelLargerThanTheMemoryAvailableIsRefusedBeforeAllocating) {
  ::setenv("QTOS_TEST_MEMORY_BYTES", "1000000", 1);
  try {
    MarketPanel p({"AAA", "BBB"}, 1'000'000, 0, 60000);
    ADD_FAILURE() << "a 56 MB panel was allocated under a 1 MB limit";
  } catch (const PanelTooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("a panel of 2 symbols x 1000000 bars needs 56 MB of memory, have 1 MB available"),
              std::string::npos)
        << e.what();
  }
  ::unsetenv("QTOS_TEST_MEMORY_BYTES");
  EXPECT_EQ(panel_bytes(2, 1'000'000), 2u * 1'000'000u * 7u * 4u);
  EXPECT_EQ(bytes_human(1'120'000'000), "1.12 GB");
}

}  // namespace panel_test
}  // namespace qtos
