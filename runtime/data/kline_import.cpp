#include "runtime/data/kline_import.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>

#include <minizip/unzip.h>
#if QTOS_HAVE_SHA256
#include <openssl/evp.h>
#endif
#include <tbb/parallel_for.h>

#include "cpu/util/parallel.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/util/time_format.hpp"

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
  bool zipped = false;      // a .zip holding the .csv (read through minizip, never unpacked to disk)
  std::string checksum;     // the expected SHA-256 from FILE.CHECKSUM ("" : none beside it)
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

/// A byte string as printable text for a message: control bytes (a NUL among them) and bytes above 0x7e become \xNN,
/// and a long value is cut, so a message is never truncated or garbled by what it quotes.
std::string printable(std::string_view text, std::size_t max_chars = 40) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

/// Reads a file line by line through a fixed buffer: memory stays bounded whatever the file's size; a line longer
/// than kMaxLine is cut there and flagged.
class LineReader {
 public:
  static constexpr std::size_t kMaxLine = 4096;
  explicit LineReader(std::FILE* f) : f_(f), buf_(1 << 16) {}
  /// The next line without its newline; false at the end of the file or on a read error (see error()).
  bool next(std::string_view& line, bool& too_long) {
    line_.clear();
    std::size_t length = 0;
    bool any = false;
    for (;;) {
      if (pos_ == end_) {
        end_ = std::fread(buf_.data(), 1, buf_.size(), f_);
        pos_ = 0;
        if (end_ == 0) break;
      }
      any = true;
      const char* b = buf_.data() + pos_;
      const auto* nl = static_cast<const char*>(std::memchr(b, '\n', end_ - pos_));
      const std::size_t n = nl ? static_cast<std::size_t>(nl - b) : end_ - pos_;
      if (line_.size() < kMaxLine) line_.append(b, std::min(n, kMaxLine - line_.size()));
      length += n;
      pos_ += n;
      if (nl) {
        ++pos_;
        break;
      }
    }
    too_long = length > kMaxLine;
    line = line_;
    return any;
  }
  /// errno of a failed read, 0 when none failed.
  int error() const { return std::ferror(f_) ? (errno != 0 ? errno : EIO) : 0; }

 private:
  std::FILE* f_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
  std::string line_;
};

/// A zip archive's one member opened as a stdio stream (glibc fopencookie over minizip), so the CSV parser reads a
/// zipped file exactly as a plain one, through the same bounded buffer.
struct ZipMember {
  unzFile zip = nullptr;
  static ssize_t read(void* self, char* buf, std::size_t n) {
    const int got = unzReadCurrentFile(static_cast<ZipMember*>(self)->zip, buf, static_cast<unsigned>(std::min<std::size_t>(n, 1u << 20)));
    if (got < 0) {
      errno = EIO;
      return -1;
    }
    return got;
  }
  static int close(void* self) {
    auto* z = static_cast<ZipMember*>(self);
    const int crc = unzCloseCurrentFile(z->zip);  // UNZ_CRCERROR when the member's CRC-32 does not match
    unzClose(z->zip);
    delete z;
    return crc == UNZ_OK ? 0 : EOF;
  }
};

/// Opens the only .csv member of `path`; null with `why` set when the archive is not one.
std::FILE* zip_open(const std::string& path, std::string& why) {
  unzFile zip = unzOpen64(path.c_str());
  if (zip == nullptr) return why = "not a zip archive", nullptr;
  unz_global_info64 info{};
  if (unzGetGlobalInfo64(zip, &info) != UNZ_OK || info.number_entry != 1 || unzGoToFirstFile(zip) != UNZ_OK) {
    unzClose(zip);
    return why = "expected a zip archive holding exactly one .csv file", nullptr;
  }
  char name[512];
  unz_file_info64 fi{};
  if (unzGetCurrentFileInfo64(zip, &fi, name, sizeof name, nullptr, 0, nullptr, 0) != UNZ_OK ||
      !std::string_view(name).ends_with(".csv") || unzOpenCurrentFile(zip) != UNZ_OK) {
    unzClose(zip);
    return why = "its one member is not a readable .csv file", nullptr;
  }
  auto* member = new ZipMember{zip};
  std::FILE* f = fopencookie(member, "rb", cookie_io_functions_t{&ZipMember::read, nullptr, nullptr, &ZipMember::close});
  if (f == nullptr) {
    ZipMember::close(member);
    why = std::strerror(errno);
  }
  return f;
}

/// Lower-case hex SHA-256 of a file; "" with `why` set when it cannot be read.
std::string file_sha256(const std::string& path, std::string& why) {
#if !QTOS_HAVE_SHA256
  why = "this build has no SHA-256 (built without OpenSSL), so its .CHECKSUM cannot be verified";
  (void)path;
  return {};
#else
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return why = std::strerror(errno), std::string();
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<unsigned char> buf(1 << 16);
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
  if (std::ferror(f.get())) return why = std::strerror(errno), std::string();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += {kHex[md[i] >> 4], kHex[md[i] & 15]};
  return out;
#endif
}

/// The checksum a Binance `.CHECKSUM` file gives ("<64 hex>  NAME"), lower-cased; "" when the text is not one.
std::string checksum_parse(const std::string& text) {
  std::string hex;
  for (char c : text) {
    if (std::isxdigit(static_cast<unsigned char>(c)))
      hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    else
      break;
  }
  return hex.size() == 64 ? hex : std::string();
}

/// Normalises a Binance timestamp to milliseconds: values above 1e14 are microseconds (spot files since 2025).
std::int64_t to_ms(std::int64_t t) { return t > 100'000'000'000'000LL ? t / 1000 : t; }

void parse_file(FileResult& fr, std::uint32_t file_index, std::size_t max_messages) {
  auto file_bad = [&](const std::string& rule, const std::string& why) {
    fr.bad_file = true;
    fr.first_error = fr.path + ": " + rule + ": " + why;
    ++fr.bad[rule];
    if (fr.messages.size() < max_messages) fr.messages.push_back(fr.first_error);
  };
  auto unreadable = [&](int err) { file_bad("unreadable_file", std::strerror(err)); };
  if (!fr.checksum.empty()) {
    // The archive (or plain file) as downloaded must hash to what its .CHECKSUM says before a row of it is read.
    std::string why;
    const std::string got = file_sha256(fr.path, why);
    if (got.empty()) return file_bad("unreadable_file", why);
    if (got != fr.checksum) return file_bad("checksum_mismatch", "SHA-256 " + got + ", its .CHECKSUM file says " + fr.checksum);
  }
  std::string zip_why;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(fr.zipped ? zip_open(fr.path, zip_why) : std::fopen(fr.path.c_str(), "rb"),
                                                       std::fclose);
  if (!file && fr.zipped) return file_bad("bad_zip", zip_why);
  if (!file) {
    unreadable(errno);
    return;
  }
  LineReader reader(file.get());
  // A row may open up to one bar outside its file's period (weekly bars, files cut at another hour).
  const std::int64_t lo = fr.name.period_start_ms - fr.interval_ms, hi = fr.name.period_end_ms + fr.interval_ms;
  std::size_t line = 0;
  bool any_line = false, too_long = false;
  std::string_view ln;
  while (reader.next(ln, too_long)) {
    ++line;
    if (line == 1 && ln.starts_with("\xEF\xBB\xBF")) ln.remove_prefix(3);  // a UTF-8 byte-order mark
    if (!ln.empty() && ln.back() == '\r') ln.remove_suffix(1);
    if (ln.empty()) continue;
    any_line = true;
    if (too_long) {
      ++fr.rows_read;
      note(fr, max_messages, "line_too_long", line,
           "longer than " + std::to_string(LineReader::kMaxLine) + " bytes (a kline row has about 150)");
      continue;
    }
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
    std::int64_t ts = 0, close_ts = 0;
    bool ok = true;
    for (std::size_t i = 0; i < std::min<std::size_t>(nf, 11) && ok; ++i) {
      std::string_view f = fields[i];
      while (!f.empty() && f.front() == ' ') f.remove_prefix(1);
      while (!f.empty() && f.back() == ' ') f.remove_suffix(1);
      // The taker-buy volumes are not kept in a panel; qtos's own export leaves them empty.
      if (f.empty() && (i == 9 || i == 10)) continue;
      const char* b = f.data();
      const char* e = f.data() + f.size();
      std::from_chars_result r{};
      if (i == 0 || i == 6) {
        std::int64_t iv = 0;
        r = std::from_chars(b, e, iv);
        val[i] = static_cast<double>(iv);
        (i == 0 ? ts : close_ts) = iv;
      } else {
        r = std::from_chars(b, e, val[i]);
      }
      if (f.empty() || r.ec != std::errc() || r.ptr != e) {
        note(fr, max_messages, "non_numeric_field", line,
             "field " + std::to_string(i + 1) + " (" + kFieldNames[i] + ") '" + printable(f) + "' is not a number");
        ok = false;
      }
    }
    if (!ok) continue;
    ts = to_ms(ts);
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
      if (!std::isfinite(val[k]) || val[k] < 0 || val[k] > 3.0e38) {
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
    if (ts < lo || ts >= hi) {
      note(fr, max_messages, "outside_file_period", line,
           "open_time " + std::to_string(ts) + " (" + time_format_iso(ts) + ") is outside " + fr.name.period +
               ", the " + (fr.name.period.size() == 7 ? "month" : "day") + " the file name names (a row may open at most one " +
               fr.name.interval + " bar before or after it)");
      continue;
    }
    // The file name's interval against the row's own length: a 1m file named 1h would otherwise be stretched.
    const std::int64_t length = to_ms(close_ts) - ts + 1;
    if (length != fr.interval_ms && length != fr.interval_ms + 1) {
      const std::string seen = length > 0 && !interval_name(length).ends_with("ms") ? interval_name(length)
                                                                                      : std::to_string(length) + " ms";
      note(fr, max_messages, "interval_mismatch", line,
           "close_time " + std::to_string(close_ts) + " makes the bar " + seen + " long, but the file name says " +
               fr.name.interval + " (expected close_time = open_time + " + std::to_string(fr.interval_ms - 1) + " ms)");
      continue;
    }
    fr.rows.push_back(Row{ts, static_cast<float>(o), static_cast<float>(h), static_cast<float>(l), static_cast<float>(c),
                          static_cast<float>(val[5]), static_cast<float>(val[7]), static_cast<float>(val[8]), file_index,
                          static_cast<std::uint32_t>(line)});
  }
  if (const int err = reader.error()) {
    fr.rows.clear();  // a file read in part is skipped as a whole
    if (fr.zipped) return file_bad("bad_zip", "its compressed data is damaged");
    unreadable(err);
    return;
  }
  // Closing a zip member checks its CRC-32: a member that inflated but does not match is damaged, and skipped whole.
  if (fr.zipped && std::fclose(file.release()) != 0) {
    fr.rows.clear();
    return file_bad("bad_zip", "its CRC-32 does not match (damaged archive)");
  }
  if (!any_line || (fr.rows_read == 0 && fr.rows.empty())) {
    fr.bad_file = true;
    ++fr.bad["empty_file"];
    fr.first_error = fr.path + ": empty_file: no kline rows";
    if (fr.messages.size() < max_messages) fr.messages.push_back(fr.first_error);
  }
}

/// Why an import has nothing to keep: rows read, the count per rule and the first messages.
std::string import_reasons(const ImportReport& report) {
  std::string out = std::to_string(report.rows_read) + " rows read in " + std::to_string(report.files) + " files";
  if (!report.bad_rows_by_rule.empty()) {
    out += ", refused by rule:";
    for (const auto& [rule, n] : report.bad_rows_by_rule) out += " " + rule + "=" + std::to_string(n);
  }
  for (std::size_t i = 0; i < report.messages.size() && i < 3; ++i) out += (i == 0 ? "; first: " : "; ") + report.messages[i];
  return out;
}

}  // namespace

std::size_t ImportReport::bad_rows() const {
  std::size_t n = 0;
  for (const auto& [rule, count] : bad_rows_by_rule)
    if (rule != "empty_file" && rule != "unreadable_file") n += count;
  return n;
}

KlineFileName kline_file_name_parse(const std::string& filename) {
  static const std::regex re(R"(^([A-Za-z0-9]+)-([0-9]+[smhdwM])-([0-9]{4})-([0-9]{2})(-([0-9]{2}))?\.csv$)");
  std::smatch m;
  const std::string shown = printable(filename, 200);
  if (!std::regex_match(filename, m, re))
    throw ImportError("file name '" + shown + "' does not follow SYMBOL-INTERVAL-YYYY-MM.csv (e.g. BTCUSDT-1h-2024-01.csv)");
  KlineFileName out{m[1].str(), m[2].str(), {}, 0, 0};
  if (out.symbol.size() > 64) throw ImportError("file name '" + shown + "': the symbol has more than 64 characters");
  const int year = std::stoi(m[3].str());
  const unsigned month = static_cast<unsigned>(std::stoi(m[4].str()));
  if (year < 1970) throw ImportError("file name '" + shown + "': year " + m[3].str() + " is before 1970 (Unix time starts there)");
  if (month < 1 || month > 12)
    throw ImportError("file name '" + shown + "': month " + m[4].str() + " does not exist (expected 01 to 12)");
  const std::int64_t day_ms = 86'400'000;
  const std::int64_t month_start = days_from_civil(year, month, 1);
  const std::int64_t next_month = month == 12 ? days_from_civil(year + 1, 1, 1) : days_from_civil(year, month + 1, 1);
  if (m[6].matched) {
    const unsigned day = static_cast<unsigned>(std::stoi(m[6].str()));
    const auto days_in_month = static_cast<unsigned>(next_month - month_start);
    if (day < 1 || day > days_in_month)
      throw ImportError("file name '" + shown + "': day " + m[6].str() + " does not exist in " + m[3].str() + "-" + m[4].str() +
                        " (expected 01 to " + std::to_string(days_in_month) + ")");
    out.period = m[3].str() + "-" + m[4].str() + "-" + m[6].str();
    out.period_start_ms = (month_start + day - 1) * day_ms;
    out.period_end_ms = out.period_start_ms + day_ms;
  } else {
    out.period = m[3].str() + "-" + m[4].str();
    out.period_start_ms = month_start * day_ms;
    out.period_end_ms = next_month * day_ms;
  }
  return out;
}

std::optional<MarketPanel> kline_import(const std::string& dir, const ImportOptions& opt, ImportReport& report,
                                        const std::function<void(std::size_t, std::size_t)>& progress) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw ImportError("--from '" + dir + "' is not a directory");
  std::vector<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const fs::path& p = it->path();
    // A .zip whose .csv was also unpacked beside it is read once, as the .csv.
    if (p.extension() == ".csv" || (p.extension() == ".zip" && !fs::exists(fs::path(p).replace_extension(".csv"))))
      paths.push_back(p.string());
  }
  if (ec) throw ImportError("--from '" + dir + "' cannot be listed: " + ec.message());
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) throw ImportError("--from '" + dir + "' holds no .csv or .zip kline files");

  std::vector<FileResult> files(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    files[i].path = paths[i];
    const fs::path p(paths[i]);
    files[i].zipped = p.extension() == ".zip";
    if (std::error_code cec; fs::exists(paths[i] + ".CHECKSUM", cec)) {
      std::ifstream in(paths[i] + ".CHECKSUM");
      std::stringstream text;
      text << in.rdbuf();
      files[i].checksum = checksum_parse(text.str());
      if (files[i].checksum.empty())
        throw ImportError("'" + paths[i] + ".CHECKSUM' is not a checksum file (expected a SHA-256 in hex, then the file name)");
    }
    files[i].name = kline_file_name_parse(files[i].zipped ? fs::path(p).replace_extension(".csv").filename().string() : p.filename().string());
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

  // Files are the safe points of a stop: one already started is read to its end, none is started after the stop.
  std::mutex progress_mutex;
  std::size_t parsed = 0;
  std::vector<char> done(files.size(), 0);
  qtos::parallel_for(std::size_t{0}, files.size(), [&](std::size_t i) {
    if (opt.stop.stop_requested()) return;
    parse_file(files[i], static_cast<std::uint32_t>(i), opt.max_messages);
    done[i] = 1;
    std::lock_guard lock(progress_mutex);
    ++parsed;
    if (progress) progress(parsed, files.size());
  });
  report.files = files.size();
  report.files_read = parsed;
  if (opt.stop.stop_requested()) {
    report.stopped = true;
    for (std::size_t i = 0; i < files.size(); ++i)
      if (done[i]) report.rows_read += files[i].rows_read;
    return std::nullopt;
  }

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
    std::vector<Row>().swap(f.rows);  // each row is held once at a time
  }
  // The grid's phase: the most common open_time modulo the interval (Binance weeks open on Mondays, not at the epoch).
  std::map<std::int64_t, std::size_t> phases;
  for (const auto& [sym, rows] : by_symbol)
    for (const auto& r : rows) ++phases[r.t % interval];
  if (phases.empty()) throw ImportError("--from '" + dir + "': no valid kline rows: " + import_reasons(report));
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
  if (t_min > t_max) throw ImportError("--from '" + dir + "': no valid kline rows left after checks: " + import_reasons(report));
  const std::int64_t n_bars64 = (t_max - t_min) / interval + 1;
  std::vector<std::string> symbols;
  for (const auto& [sym, rows] : by_symbol)
    if (!rows.empty()) symbols.push_back(sym);
  const std::string span = "the rows span " + time_format_iso(t_min) + " .. " + time_format_iso(t_max) + ", " +
                           std::to_string(n_bars64) + " bars of " + interval_name(interval) + " x " +
                           std::to_string(symbols.size()) + " symbols";
  if (n_bars64 > 50'000'000 || static_cast<double>(n_bars64) * static_cast<double>(symbols.size()) > 2.0e9)
    throw ImportError(span + ": too large for one panel (at most 50000000 bars per symbol and 2e9 in all); import fewer files");
  panel_memory_check(symbols.size(), n_bars64, span + ": the panel");

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
