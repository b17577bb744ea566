#include "runtime/data/kline_import.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>

#include <tbb/parallel_for.h>

#include "runtime/data/interval.hpp"

namespace qtos {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFieldNames[12] = {"open_time", "open", "high", "low", "close", "volume", "close_time",
                                         "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore"};

struct Row {
  std::int64_t t;
  float o, h, l, c, v, qv, n;
  std::uint32_t file;  // index into the file list, for messages
  std::uint32_t line;
};

struct FileResult {
  std::string path;
  KlineFileName name;
  std::int64_t interval_ms = 0;
  std::vector<Row> rows;
  std::size_t rows_read = 0;
  std::map<std::string, std::size_t> bad;
  std::vector<std::string> messages;
  std::string first_error;  // first bad row or file problem, for fail mode
  bool bad_file = false;
};

void note(FileResult& fr, std::size_t max_messages, const std::string& rule, std::size_t line, const std::string& detail) {
  ++fr.bad[rule];
  std::string msg = fr.path + ":" + std::to_string(line) + ": " + rule + ": " + detail;
  if (fr.first_error.empty()) fr.first_error = msg;
  if (fr.messages.size() < max_messages) fr.messages.push_back(std::move(msg));
}

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

void parse_file(FileResult& fr, std::uint32_t file_index, std::size_t max_messages) {
  std::ifstream in(fr.path, std::ios::binary);
  if (!in) {
    fr.bad_file = true;
    fr.first_error = fr.path + ": cannot be read";
    ++fr.bad["unreadable_file"];
    fr.messages.push_back(fr.first_error);
    return;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = 0, line = 0;
  bool any_line = false;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view ln(text.data() + pos, end - pos);
    pos = end + 1;
    ++line;
    if (!ln.empty() && ln.back() == '\r') ln.remove_suffix(1);
    if (ln.empty()) continue;
    any_line = true;
    std::string_view fields[12];
    std::size_t nf = 0, start = 0;
    for (;;) {
      const std::size_t comma = ln.find(',', start);
      if (nf < 12) fields[nf] = ln.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      ++nf;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    // A header line: the first field is not a number and reads like a column name.
    if (line == 1 && !fields[0].empty() && std::isalpha(static_cast<unsigned char>(fields[0][0]))) continue;
    ++fr.rows_read;
    if (nf < 11) {
      note(fr, max_messages, "truncated_line", line, std::to_string(nf) + " fields, expected 12 (" + std::string(kFieldNames[nf < 12 ? nf : 11]) + " and later are missing)");
      continue;
    }
    if (nf > 12) {
      note(fr, max_messages, "too_many_fields", line, std::to_string(nf) + " fields, expected 12");
      continue;
    }
    double val[12] = {};
    std::int64_t ts = 0;
    bool ok = true;
    for (std::size_t i = 0; i < std::min<std::size_t>(nf, 11) && ok; ++i) {
      std::string_view f = fields[i];
      while (!f.empty() && f.front() == ' ') f.remove_prefix(1);
      while (!f.empty() && f.back() == ' ') f.remove_suffix(1);
      const char* b = f.data();
      const char* e = f.data() + f.size();
      std::from_chars_result r{};
      if (i == 0 || i == 6) {
        std::int64_t iv = 0;
        r = std::from_chars(b, e, iv);
        val[i] = static_cast<double>(iv);
        if (i == 0) ts = iv;
      } else {
        r = std::from_chars(b, e, val[i]);
      }
      if (f.empty() || r.ec != std::errc() || r.ptr != e) {
        note(fr, max_messages, "non_numeric_field", line,
             "field " + std::to_string(i + 1) + " (" + kFieldNames[i] + ") '" + std::string(f) + "' is not a number");
        ok = false;
      }
    }
    if (!ok) continue;
    if (ts > 100'000'000'000'000LL) ts /= 1000;  // microseconds (Binance spot since 2025) -> milliseconds
    const double o = val[1], h = val[2], l = val[3], c = val[4];
    const char* price_names[4] = {"open", "high", "low", "close"};
    bool prices_ok = true;
    for (int k = 0; k < 4 && prices_ok; ++k) {
      const double p = val[1 + k];
      if (!std::isfinite(p) || p > 3.0e38) {
        note(fr, max_messages, "price_not_finite", line, std::string(price_names[k]) + " is " + fmt(p));
        prices_ok = false;
      } else if (p <= 0) {
        note(fr, max_messages, "price_not_positive", line, std::string(price_names[k]) + " is " + fmt(p));
        prices_ok = false;
      }
    }
    if (!prices_ok) continue;
    if (h < l) {
      note(fr, max_messages, "high_below_low", line, "high " + fmt(h) + " < low " + fmt(l));
      continue;
    }
    if (c < l || c > h) {
      note(fr, max_messages, "close_outside_range", line, "close " + fmt(c) + " outside [low " + fmt(l) + ", high " + fmt(h) + "]");
      continue;
    }
    if (o < l || o > h) {
      note(fr, max_messages, "open_outside_range", line, "open " + fmt(o) + " outside [low " + fmt(l) + ", high " + fmt(h) + "]");
      continue;
    }
    bool vol_ok = true;
    for (int k : {5, 7, 8, 9, 10}) {
      if (!std::isfinite(val[k]) || val[k] < 0) {
        note(fr, max_messages, "negative_volume", line, std::string(kFieldNames[k]) + " is " + fmt(val[k]));
        vol_ok = false;
        break;
      }
    }
    if (!vol_ok) continue;
    if (ts < 0) {
      note(fr, max_messages, "bad_timestamp", line, "open_time " + std::to_string(ts) + " is negative");
      continue;
    }
    fr.rows.push_back(Row{ts, static_cast<float>(o), static_cast<float>(h), static_cast<float>(l), static_cast<float>(c),
                          static_cast<float>(val[5]), static_cast<float>(val[7]), static_cast<float>(val[8]), file_index,
                          static_cast<std::uint32_t>(line)});
  }
  if (!any_line || (fr.rows_read == 0 && fr.rows.empty())) {
    fr.bad_file = true;
    ++fr.bad["empty_file"];
    fr.first_error = fr.path + ": empty_file: no kline rows";
    if (fr.messages.size() < max_messages) fr.messages.push_back(fr.first_error);
  }
}

}  // namespace

std::size_t ImportReport::bad_rows() const {
  std::size_t n = 0;
  for (const auto& [rule, count] : bad_rows_by_rule)
    if (rule != "empty_file" && rule != "unreadable_file") n += count;
  return n;
}

KlineFileName kline_file_name_parse(const std::string& filename) {
  static const std::regex re(R"(^([A-Za-z0-9]+)-([0-9]+[smhdwM])-([0-9]{4})-([0-9]{2})(-[0-9]{2})?\.csv$)");
  std::smatch m;
  if (!std::regex_match(filename, m, re))
    throw ImportError("file name '" + filename + "' does not follow SYMBOL-INTERVAL-YYYY-MM.csv (e.g. BTCUSDT-1h-2024-01.csv)");
  return {m[1].str(), m[2].str()};
}

MarketPanel kline_import(const std::string& dir, const ImportOptions& opt, ImportReport& report,
                         const std::function<void(std::size_t, std::size_t)>& progress) {
  if (!fs::is_directory(dir)) throw ImportError("--from '" + dir + "' is not a directory");
  std::vector<std::string> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".csv") paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) throw ImportError("--from '" + dir + "' holds no .csv kline files");

  std::vector<FileResult> files(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    files[i].path = paths[i];
    files[i].name = kline_file_name_parse(fs::path(paths[i]).filename().string());
    try {
      files[i].interval_ms = interval_parse_ms(files[i].name.interval, "interval in file name '" + paths[i] + "'");
    } catch (const std::invalid_argument& e) {
      throw ImportError(e.what());
    }
  }
  for (const auto& f : files)
    if (f.interval_ms != files[0].interval_ms)
      throw ImportError("mixed intervals: '" + files[0].path + "' is " + files[0].name.interval + " but '" + f.path + "' is " +
                        f.name.interval + "; import one interval at a time");
  const std::int64_t interval = files[0].interval_ms;

  std::mutex progress_mutex;
  std::size_t parsed = 0;
  tbb::parallel_for(std::size_t{0}, files.size(), [&](std::size_t i) {
    parse_file(files[i], static_cast<std::uint32_t>(i), opt.max_messages);
    if (progress) {
      std::lock_guard lock(progress_mutex);
      progress(++parsed, files.size());
    }
  });

  report.files = files.size();
  for (const auto& f : files) {
    if (opt.on_bad_row == BadRowPolicy::fail && !f.first_error.empty()) throw ImportError(f.first_error + " (--on-bad-row fail)");
    report.rows_read += f.rows_read;
    for (const auto& [rule, n] : f.bad) report.bad_rows_by_rule[rule] += n;
    if (f.bad_file) ++report.bad_files;
    for (const auto& m : f.messages)
      if (report.messages.size() < opt.max_messages) report.messages.push_back(m);
  }
  auto add_message = [&](const std::string& rule, const std::string& m) {
    if (opt.on_bad_row == BadRowPolicy::fail) throw ImportError(m + " (--on-bad-row fail)");
    ++report.bad_rows_by_rule[rule];
    if (report.messages.size() < opt.max_messages) report.messages.push_back(m);
  };

  // Group rows by symbol, in file-name order.
  std::map<std::string, std::vector<Row>> by_symbol;
  for (auto& f : files) {
    auto& rows = by_symbol[f.name.symbol];
    rows.insert(rows.end(), f.rows.begin(), f.rows.end());
  }
  // The grid's phase: the most common open_time modulo the interval (Binance weeks open on Mondays, not at the epoch).
  std::map<std::int64_t, std::size_t> phases;
  for (const auto& [sym, rows] : by_symbol)
    for (const auto& r : rows) ++phases[r.t % interval];
  if (phases.empty()) throw ImportError("--from '" + dir + "': no valid kline rows in " + std::to_string(files.size()) + " files");
  const std::int64_t phase = std::max_element(phases.begin(), phases.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;

  std::int64_t t_min = INT64_MAX, t_max = INT64_MIN;
  for (auto& [sym, rows] : by_symbol) {
    for (std::size_t i = 1; i < rows.size(); ++i)
      if (rows[i].t < rows[i - 1].t) ++report.out_of_order;
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.t < b.t; });
    std::vector<Row> kept;
    kept.reserve(rows.size());
    for (const auto& r : rows) {
      if (r.t % interval != phase) {
        add_message("timestamp_misaligned", files[r.file].path + ":" + std::to_string(r.line) + ": timestamp_misaligned: open_time " +
                                                std::to_string(r.t) + " is not on the " + interval_name(interval) + " grid");
        continue;
      }
      if (!kept.empty() && kept.back().t == r.t) {
        const Row& k = kept.back();
        if (k.o == r.o && k.h == r.h && k.l == r.l && k.c == r.c && k.v == r.v) {
          ++report.duplicates_identical;
        } else {
          ++report.duplicates_conflicting;
          const std::string m = files[r.file].path + ":" + std::to_string(r.line) + ": duplicate_conflicting: open_time " +
                                std::to_string(r.t) + " already read from " + files[k.file].path + ":" + std::to_string(k.line) +
                                " with other values; kept the first";
          if (report.messages.size() < opt.max_messages) report.messages.push_back(m);
        }
        continue;
      }
      kept.push_back(r);
    }
    rows = std::move(kept);
    if (!rows.empty()) {
      t_min = std::min(t_min, rows.front().t);
      t_max = std::max(t_max, rows.back().t);
    }
  }
  if (t_min > t_max) throw ImportError("--from '" + dir + "': no valid kline rows left after checks");
  const std::int64_t n_bars64 = (t_max - t_min) / interval + 1;
  std::vector<std::string> symbols;
  for (const auto& [sym, rows] : by_symbol)
    if (!rows.empty()) symbols.push_back(sym);
  if (n_bars64 > 50'000'000 || static_cast<double>(n_bars64) * static_cast<double>(symbols.size()) > 2.0e9)
    throw ImportError("the files span " + std::to_string(n_bars64) + " bars of " + interval_name(interval) + " for " +
                      std::to_string(symbols.size()) + " symbols: too large for one panel (at most 2e9 bars)");

  MarketPanel panel(symbols, static_cast<std::int32_t>(n_bars64), t_min, interval);
  for (std::int32_t s = 0; s < panel.n_symbols(); ++s) {
    const auto& rows = by_symbol[symbols[static_cast<std::size_t>(s)]];
    auto o = panel.series_mut(Column::open, s), h = panel.series_mut(Column::high, s), l = panel.series_mut(Column::low, s),
         c = panel.series_mut(Column::close, s), v = panel.series_mut(Column::volume, s),
         qv = panel.series_mut(Column::quote_volume, s), n = panel.series_mut(Column::trades, s);
    for (const auto& r : rows) {
      const auto t = static_cast<std::size_t>((r.t - t_min) / interval);
      o[t] = r.o, h[t] = r.h, l[t] = r.l, c[t] = r.c, v[t] = r.v, qv[t] = r.qv, n[t] = r.n;
    }
    report.rows_kept += rows.size();
    for (std::size_t i = 1; i < rows.size(); ++i) {
      const std::int64_t missing = (rows[i].t - rows[i - 1].t) / interval - 1;
      if (missing > 0) {
        report.gaps.push_back(GapRun{symbols[static_cast<std::size_t>(s)], rows[i - 1].t + interval, missing});
        report.gap_bars += static_cast<std::size_t>(missing);
      }
    }
  }
  panel.valid_ranges_recompute();
  return panel;
}

}  // namespace qtos
