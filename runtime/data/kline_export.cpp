#include "runtime/data/kline_export.hpp"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "runtime/data/interval.hpp"
#include "runtime/util/atomic_file.hpp"
#include "runtime/util/result.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos {

namespace {

/// Writes every file; `files` counts the ones committed so far (for the message when one fails).
void export_files(const MarketPanel& panel, const std::string& dir, const std::string& iv, const ExportOptions& opt,
                  std::size_t& files) {
  const std::int64_t scale = opt.microseconds ? 1000 : 1;
  char line[512];
  for (std::int32_t s = 0; s < panel.n_symbols(); ++s) {
    const std::string& sym = panel.symbols()[static_cast<std::size_t>(s)];
    std::optional<AtomicFile> out;
    std::string month;
    for (std::int32_t t = panel.first_bar(s); t <= panel.last_bar(s); ++t) {
      if (!panel.has_bar(s, t)) continue;
      const std::int64_t open_ms = panel.time_ms(t);
      const std::string m = time_format_iso(open_ms).substr(0, 7);  // YYYY-MM
      if (m != month) {
        if (out) {
          out->commit();
          ++files;
        }
        month = m;
        out.emplace((std::filesystem::path(dir) / (sym + "-" + iv + "-" + m + ".csv")).string());
        if (opt.header)
          out->write("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                     "taker_buy_quote_volume,ignore\n");
      }
      const auto at = [&](Column c) { return static_cast<double>(panel.series(c, s)[static_cast<std::size_t>(t)]); };
      // %.9g round-trips a float exactly, so import(export(panel)) == panel. The taker-buy volumes are not in a panel,
      // so their fields stay empty rather than holding an invented number (docs/DATA.md).
      const int n = std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%lld,%.9g,%.0f,,,0\n",
                                  static_cast<long long>(open_ms * scale), at(Column::open), at(Column::high), at(Column::low),
                                  at(Column::close), at(Column::volume),
                                  static_cast<long long>((open_ms + panel.interval_ms() - 1) * scale + (scale - 1)),
                                  at(Column::quote_volume), at(Column::trades));
      QTOS_ASSERT(n > 0 && n < static_cast<int>(sizeof line), "a kline line fits its buffer");
      out->write(line, static_cast<std::size_t>(n));
    }
    if (out) {
      out->commit();
      ++files;
    }
  }
}

}  // namespace

std::size_t kline_export(const MarketPanel& panel, const std::string& dir, const ExportOptions& opt) {
  const std::string iv = interval_name(panel.interval_ms());
  if (iv.ends_with("ms")) throw std::runtime_error("cannot export a panel of " + iv + " bars: the interval has no Binance name");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw WriteError("cannot create the output directory '" + dir + "': " + ec.message());
  if (!std::filesystem::is_directory(dir)) throw WriteError("cannot write into '" + dir + "': it is not a directory");
  atomic_temp_cleanup(dir);  // temporaries of an export that crashed
  // One file at a time through the atomic-write helper: a failure leaves every file written before it complete, the
  // one in hand as it was before (or absent), and none after it created.
  std::size_t files = 0;
  try {
    export_files(panel, dir, iv, opt, files);
  } catch (const WriteError& e) {
    throw WriteError(std::string(e.what()) + "; " + std::to_string(files) + (files == 1 ? " file" : " files") +
                     " written before it are complete, no later file was written");
  }
  return files;
}

}  // namespace qtos
