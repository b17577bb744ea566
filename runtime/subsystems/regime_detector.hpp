#pragma once
/// @file The market regime detector of the Meta Strategy Controller: fed bar closes per symbol (O(1) per bar: rolling
/// sums over ring buffers of log returns), it reads the whole universe on demand and names its regime from four
/// features: trend (mean per-symbol t-statistic of the window return), volatility (median short/long realised volatility
/// ratio), breadth (share of symbols up over the window) and correlation (mean pairwise correlation of recent returns).
/// Pure and deterministic: no bus, no clock. docs/subsystems/MSC.md gives the rules and the measured confusion matrix.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/bus/events.hpp"
#include "runtime/data/market_panel.hpp"

namespace qtos {

/// Window lengths (in bars) and thresholds of the detector; the defaults suit hourly bars.
struct RegimeDetectorOptions {
  std::int32_t trend_window = 168;       ///< bars of the trend and breadth window (a week of hourly bars)
  std::int32_t short_vol_window = 12;    ///< bars of the short realised volatility (half a day)
  std::int32_t long_vol_window = 720;    ///< bars of the long realised volatility, the yardstick (a month)
  std::int32_t fast_window = 24;         ///< bars of the crash window (the fast return)
  std::int32_t corr_window = 48;         ///< bars of the correlation window
  std::int32_t max_stale_bars = 3;       ///< a symbol whose last bar is older than this many bars is left out
  std::int32_t min_symbols = 3;          ///< symbols with a full history needed (fewer: UNKNOWN; never more than listed)
  double trend_t = 0.5;                  ///< |trend| at or above this (with the breadth) is a trend
  double breadth_up = 0.6;               ///< TRENDING_UP needs at least this share of symbols up
  double breadth_down = 0.4;             ///< TRENDING_DOWN needs at most this share of symbols up
  double volatile_ratio = 1.6;           ///< a volatility ratio at or above this is VOLATILE (or CRASH)
  double crash_t = -2.0;                 ///< VOLATILE with a fast t-statistic at or below this ...
  double crash_breadth = 0.25;           ///< ... at most this share of symbols up over the fast window ...
  double crash_corr = 0.5;               ///< ... and at least this correlation is a CRASH (a fast, broad, joint fall)
  /// Throws std::invalid_argument naming the first option out of range.
  void check() const;
};

/// What the detector sees across the universe, and what it makes of it.
struct MarketConditions {
  Regime regime = Regime::unknown;  ///< UNKNOWN while warming up
  double confidence = 0;            ///< in [0, 1]: how far past its thresholds the deciding feature is
  double trend = 0;                 ///< mean over symbols of the window return / (long volatility x sqrt(window))
  double fast_trend = 0;            ///< the same over the fast window
  double volatility_ratio = 1;      ///< median over symbols of short / long realised volatility
  double breadth = 0.5;             ///< share of symbols whose window return is positive
  double fast_breadth = 0.5;        ///< the same over the fast window
  double correlation = 0;           ///< mean pairwise correlation of the symbols' last corr_window returns
  std::int32_t symbols = 0;         ///< symbols that entered the figures
  /// "trend 2.1, breadth 0.80, vol x1.10, corr 0.40".
  std::string describe() const;
};

/// Regime of the market from bar closes. Not thread-safe (one owner thread, like the bus).
class RegimeDetector {
 public:
  /// A detector with `options` (checked; throws std::invalid_argument naming a bad one).
  explicit RegimeDetector(RegimeDetectorOptions options = {});

  /// The index of `symbol`, added on first sight.
  std::int32_t symbol_index(std::string_view symbol);
  /// The close of `symbol`'s bar opening at `open_time` (a bar counter, or a time in any unit as long as
  /// `bar_length` matches it). A non-finite or non-positive close, or a bar not newer than the symbol's last, is ignored.
  void on_close(std::int32_t symbol, std::int64_t open_time, double close);
  /// on_close() by name.
  void on_close(std::string_view symbol, std::int64_t open_time, double close) { on_close(symbol_index(symbol), open_time, close); }
  /// Feeds bar `t` of every symbol of `panel` (symbols by the panel's names; missing bars skipped); batch use and tests.
  void on_panel_bar(const MarketPanel& panel, std::int32_t t);
  /// The length of one bar in the unit of `open_time` (1 for a bar counter, the default; a bar's ns on the bus). Used
  /// only to leave stale symbols out.
  void set_bar_length(std::int64_t length) { bar_length_ = length > 0 ? length : 1; }
  /// Reads the universe now: the features and the regime. O(symbols x corr_window); cached until the next bar.
  const MarketConditions& analyze();
  /// Classifies features (pure; the rules of analyze()).
  static void classify(MarketConditions& c, const RegimeDetectorOptions& o);
  /// Bars received so far.
  std::uint64_t bars() const { return bars_; }
  /// The options.
  const RegimeDetectorOptions& options() const { return options_; }

 private:
  struct Series {
    double last_close = 0;
    std::int64_t last_time = 0;
    bool seen = false;
    std::uint64_t n = 0;            // returns received
    std::vector<double> ring;       // the last `capacity_` log returns
    double sum_trend = 0, sum_fast = 0;       // sums of returns over the trend and fast windows
    double sq_short = 0, sq_long = 0;         // sums of squared returns over the short and long windows
  };
  double at(const Series& s, std::uint64_t back) const;  // the return `back` bars ago (0: the newest)

  RegimeDetectorOptions options_;
  std::int32_t capacity_;
  std::int64_t bar_length_ = 1;
  std::int64_t newest_time_ = 0;
  std::uint64_t bars_ = 0;
  std::uint64_t analyzed_at_ = UINT64_MAX;
  std::vector<Series> series_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::int32_t> index_;
  MarketConditions last_;
  std::vector<double> scratch_;
  std::vector<std::int32_t> ready_;
};

}  // namespace qtos
