#pragma once
/// @file Import of exchange kline CSV files in the Binance public-data layout into a MarketPanel.
///
/// Columns: open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,
/// taker_buy_quote_volume,ignore — with or without a header line, open_time in milliseconds or microseconds.
/// One file per symbol and month (or day): SYMBOL-INTERVAL-YYYY-MM.csv or SYMBOL-INTERVAL-YYYY-MM-DD.csv. Files are read
/// as streams (bounded memory per file whatever its size); a row must open inside the period its file name names and
/// last the interval its file name names (docs/DATA.md lists every rule).

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/data/market_panel.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos {

/// What to do with a row that breaks a rule.
enum class BadRowPolicy { skip, fail };

/// Import options.
struct ImportOptions {
  BadRowPolicy on_bad_row = BadRowPolicy::skip;
  std::size_t max_messages = 20;  ///< bad-row messages kept in the report (all are counted)
  StopToken stop;                 ///< polled between files; a stop returns no panel (nothing half-done is kept)
};

/// A gap: bars missing inside one symbol's range.
struct GapRun {
  std::string symbol;
  std::int64_t from_ms = 0;  ///< open time of the first missing bar
  std::int64_t bars = 0;     ///< how many bars are missing
};

/// What an import found. Every rule violation is counted; the first messages are kept verbatim.
struct ImportReport {
  std::size_t files = 0, rows_read = 0, rows_kept = 0;
  std::size_t files_read = 0;  ///< files parsed (all of them unless the import was stopped)
  bool stopped = false;        ///< the stop token fired: the files after files_read were not read, no panel was made
  std::map<std::string, std::size_t> bad_rows_by_rule;  ///< rule name -> rows skipped
  std::vector<std::string> messages;                    ///< "FILE:LINE: rule: detail", the first max_messages
  std::size_t bad_files = 0;                            ///< empty or unreadable files, skipped
  std::size_t duplicates_identical = 0;                 ///< repeated rows with the same values, dropped
  std::size_t duplicates_conflicting = 0;               ///< repeated open times with other values; first kept
  std::size_t out_of_order = 0;                         ///< rows earlier than the row before them (sorted)
  std::size_t gap_bars = 0;                             ///< missing bars inside symbols' ranges
  std::vector<GapRun> gaps;                             ///< every gap, ordered by symbol then time
  /// Total rows skipped for breaking a rule.
  std::size_t bad_rows() const;
};

/// Raised in BadRowPolicy::fail mode, and for problems that no policy can skip (no files, mixed intervals).
class ImportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The parts of a kline file name.
struct KlineFileName {
  std::string symbol;
  std::string interval;
  std::string period;              ///< "2024-01" (a month) or "2024-01-15" (a day)
  std::int64_t period_start_ms = 0;  ///< first millisecond of the period (UTC)
  std::int64_t period_end_ms = 0;    ///< first millisecond after it
};
/// Parses "BTCUSDT-1h-2024-01.csv" (or -YYYY-MM-DD.csv); throws ImportError naming the file and the problem otherwise
/// (another layout, a month or day that does not exist, a year before 1970, a symbol over 64 characters).
KlineFileName kline_file_name_parse(const std::string& filename);

/// Imports every *.csv file under `dir` (recursively, in name order). `progress(files_done, files_total)` is
/// called from one thread at a time. Returns no panel only when `opt.stop` fired (then report.stopped is set).
/// Throws ImportError (or, in fail mode, on the first bad row or file), PanelTooLarge when the rows span a panel
/// larger than the memory available.
std::optional<MarketPanel> kline_import(const std::string& dir, const ImportOptions& opt, ImportReport& report,
                                        const std::function<void(std::size_t, std::size_t)>& progress = {});

}  // namespace qtos
