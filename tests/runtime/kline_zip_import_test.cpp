// Import of Binance public-data files as downloaded: zipped monthly and daily klines read in place, their .CHECKSUM
// (SHA-256) verified when present, spot files with microsecond open times beside millisecond ones, USD-M files with
// their header line; a damaged archive or a checksum mismatch is reported by file and rule.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <minizip/zip.h>
#include <openssl/evp.h>

#include "runtime/data/kline_import.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace kline_zip_import_test {

namespace fs = std::filesystem;

constexpr std::int64_t kH = 3600000;
constexpr std::int64_t kJan2025 = 1735689600000;  // 2025-01-01T00:00Z

constexpr const char* kFuturesHeader =
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n";

/// `hours` hourly rows from `t0_ms`; open times written in microseconds when `micros` (spot files since 2025).
std::string rows(std::int64_t t0_ms, int hours, bool micros, double base = 100) {
  std::string out;
  for (int i = 0; i < hours; ++i) {
    const std::int64_t t = t0_ms + i * kH;
    const std::int64_t shown = micros ? t * 1000 : t, close = micros ? (t + kH) * 1000 - 1 : t + kH - 1;
    const double p = base + i;
    char line[256];
    std::snprintf(line, sizeof line, "%lld,%.2f,%.2f,%.2f,%.2f,10,%lld,1000,50,5,500,0\n", static_cast<long long>(shown), p, p + 1, p - 1,
                  p + 0.5, static_cast<long long>(close));
    out += line;
  }
  return out;
}

/// A zip archive at `path` holding `member` with `text` (as Binance packs each CSV).
void zip_write(const fs::path& path, const std::string& member, const std::string& text) {
  zipFile z = zipOpen64(path.string().c_str(), APPEND_STATUS_CREATE);
  ASSERT_NE(z, nullptr);
  zip_fileinfo info{};
  ASSERT_EQ(zipOpenNewFileInZip64(z, member.c_str(), &info, nullptr, 0, nullptr, 0, nullptr, Z_DEFLATED, Z_DEFAULT_COMPRESSION, 0), ZIP_OK);
  ASSERT_EQ(zipWriteInFileInZip(z, text.data(), static_cast<unsigned>(text.size())), ZIP_OK);
  ASSERT_EQ(zipCloseFileInZip(z), ZIP_OK);
  ASSERT_EQ(zipClose(z, nullptr), ZIP_OK);
}

std::string sha256_hex(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += {kHex[md[i] >> 4], kHex[md[i] & 15]};
  return out;
}

void checksum_write(const fs::path& file, const std::string& hex) {
  std::ofstream(file.string() + ".CHECKSUM") << hex << "  " << file.filename().string() << "\n";
}

MarketPanel import_dir(const fs::path& dir, ImportReport& rep, BadRowPolicy policy = BadRowPolicy::skip) {
  ImportOptions opt;
  opt.on_bad_row = policy;
  auto panel = kline_import(dir.string(), opt, rep);
  if (!panel) throw std::logic_error("import stopped without a stop request");
  return std::move(*panel);
}

TEST(KlineZipImport, ZippedSpotMicrosecondsAndFuturesHeaderFilesWithChecksums) {
  test::TempDir dir;
  // Spot: January 2025 monthly (microseconds) and 2025-02-01 daily, both zipped with their checksums.
  const fs::path jan = dir / "BTCUSDT-1h-2025-01.zip", feb1 = dir / "BTCUSDT-1h-2025-02-01.zip";
  zip_write(jan, "BTCUSDT-1h-2025-01.csv", rows(kJan2025, 31 * 24, true));
  zip_write(feb1, "BTCUSDT-1h-2025-02-01.csv", rows(kJan2025 + 31 * 24 * kH, 24, true, 844));
  checksum_write(jan, sha256_hex(jan));
  checksum_write(feb1, sha256_hex(feb1));
  // USD-M: the same month with the header line, milliseconds, zipped without a checksum file.
  zip_write(dir / "ETHUSDT-1h-2025-01.zip", "ETHUSDT-1h-2025-01.csv", std::string(kFuturesHeader) + rows(kJan2025, 31 * 24, false, 3000));
  ImportReport rep;
  const MarketPanel p = import_dir(dir.path(), rep);
  EXPECT_EQ(rep.files, 3u);
  EXPECT_EQ(rep.bad_rows(), 0u) << (rep.messages.empty() ? "" : rep.messages[0]);
  EXPECT_EQ(rep.bad_files, 0u);
  ASSERT_EQ(p.symbols(), (std::vector<std::string>{"BTCUSDT", "ETHUSDT"}));
  EXPECT_EQ(p.t0_ms(), kJan2025);
  EXPECT_EQ(p.n_bars(), 32 * 24);
  EXPECT_FLOAT_EQ(p.series(Column::close, 0)[0], 100.5f);
  EXPECT_FLOAT_EQ(p.series(Column::close, 0)[31 * 24], 844.5f);
  EXPECT_FLOAT_EQ(p.series(Column::close, 1)[0], 3000.5f);
  EXPECT_EQ(rep.rows_kept, 32u * 24 + 31u * 24);
}

TEST(KlineZipImport, ChecksumMismatchSkipsTheFileOrFailsTheImport) {
  test::TempDir dir;
  const fs::path good = dir / "BTCUSDT-1h-2025-01.zip", bad = dir / "ETHUSDT-1h-2025-01.zip";
  zip_write(good, "BTCUSDT-1h-2025-01.csv", rows(kJan2025, 48, false));
  zip_write(bad, "ETHUSDT-1h-2025-01.csv", rows(kJan2025, 48, false));
  checksum_write(good, sha256_hex(good));
  checksum_write(bad, std::string(64, 'a'));
  ImportReport rep;
  const MarketPanel p = import_dir(dir.path(), rep);
  EXPECT_EQ(p.symbols(), (std::vector<std::string>{"BTCUSDT"}));
  EXPECT_EQ(rep.bad_files, 1u);
  EXPECT_EQ(rep.bad_rows_by_rule.at("checksum_mismatch"), 1u);
  ASSERT_FALSE(rep.messages.empty());
  EXPECT_NE(rep.messages[0].find("ETHUSDT-1h-2025-01.zip: checksum_mismatch"), std::string::npos) << rep.messages[0];
  ImportReport rep2;
  EXPECT_THROW(import_dir(dir.path(), rep2, BadRowPolicy::fail), ImportError);
}

TEST(KlineZipImport, DamagedArchiveIsReportedAndAnUnpackedCopyIsReadOnce) {
  test::TempDir dir;
  std::ofstream(dir / "XRPUSDT-1h-2025-01.zip") << "this is not a zip archive";
  // A .zip with its .csv unpacked beside it: the rows are read once.
  zip_write(dir / "BTCUSDT-1h-2025-01.zip", "BTCUSDT-1h-2025-01.csv", rows(kJan2025, 24, false));
  std::ofstream(dir / "BTCUSDT-1h-2025-01.csv") << rows(kJan2025, 24, false);
  ImportReport rep;
  const MarketPanel p = import_dir(dir.path(), rep);
  EXPECT_EQ(p.symbols(), (std::vector<std::string>{"BTCUSDT"}));
  EXPECT_EQ(rep.files, 2u);
  EXPECT_EQ(rep.duplicates_identical, 0u);
  EXPECT_EQ(rep.bad_rows_by_rule.at("bad_zip"), 1u);
  // A corrupted member (bytes changed inside the compressed data) fails its CRC or its inflation, never passes.
  const fs::path z = dir / "ETHUSDT-1h-2025-01.zip";
  zip_write(z, "ETHUSDT-1h-2025-01.csv", rows(kJan2025, 24 * 20, false));
  std::fstream f(z, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(200);
  f.write("\xff\xff\xff\xff", 4);
  f.close();
  ImportReport rep3;
  const MarketPanel p3 = import_dir(dir.path(), rep3);
  EXPECT_EQ(rep3.bad_files, 2u) << (rep3.messages.size() > 1 ? rep3.messages[1] : "");
}

}  // namespace kline_zip_import_test
}  // namespace qtos
