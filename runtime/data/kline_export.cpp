#include "runtime/data/kline_export.hpp"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "runtime/data/interval.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos {

std::size_t kline_export(const MarketPanel& panel, const std::string& dir, const ExportOptions& opt) {
  const std::string iv = interval_name(panel.interval_ms());
  if (iv.ends_with("ms")) throw std::runtime_error("export: interval of " + iv + " has no Binance name");
  std::filesystem::create_directories(dir);
  std::size_t files = 0;
  const std::int64_t scale = opt.microseconds ? 1000 : 1;
  for (std::int32_t s = 0; s < panel.n_symbols(); ++s) {
    const std::string& sym = panel.symbols()[static_cast<std::size_t>(s)];
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(nullptr, std::fclose);
    std::string month, path;
    for (std::int32_t t = panel.first_bar(s); t <= panel.last_bar(s); ++t) {
      if (!panel.has_bar(s, t)) continue;
      const std::int64_t open_ms = panel.time_ms(t);
      const std::string m = time_format_iso(open_ms).substr(0, 7);  // YYYY-MM
      if (m != month) {
        month = m;
        path = (std::filesystem::path(dir) / (sym + "-" + iv + "-" + m + ".csv")).string();
        out.reset(std::fopen(path.c_str(), "w"));
        if (!out) throw std::runtime_error("export: cannot write '" + path + "'");
        ++files;
        if (opt.header)
          std::fputs("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                     "taker_buy_quote_volume,ignore\n", out.get());
      }
      const auto at = [&](Column c) { return static_cast<double>(panel.series(c, s)[static_cast<std::size_t>(t)]); };
      const double vol = at(Column::volume), qv = at(Column::quote_volume);
      // %.9g round-trips a float exactly, so import(export(panel)) == panel.
      std::fprintf(out.get(), "%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%lld,%.9g,%.0f,%.9g,%.9g,0\n",
                   static_cast<long long>(open_ms * scale), at(Column::open), at(Column::high), at(Column::low), at(Column::close),
                   vol, static_cast<long long>((open_ms + panel.interval_ms() - 1) * scale + (scale - 1)), qv, at(Column::trades),
                   vol * 0.5, qv * 0.5);
    }
  }
  return files;
}

}  // namespace qtos
