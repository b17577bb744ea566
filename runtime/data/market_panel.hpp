#pragma once
/// @file MarketPanel: symbols x bars of OHLCV on one fixed time grid, as float32 structure of arrays.
///
/// Layout: every column is symbol-major, `col[s * stride + t]`, with `stride` a multiple of 16 floats so each
/// symbol's row starts on a 64-byte boundary (SIMD loads, coalesced GPU copies). A bar that a symbol does not have
/// (before its first bar, after its last, or a gap) holds NaN prices and zero volume/trades. Timestamps are the
/// bars' open times in Unix milliseconds, `t0_ms + t * interval_ms`.
/// A panel either owns its memory (built in memory) or maps a native file read-only (panel_load).

#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/kernels/panel_view.hpp"

namespace qtos {

/// The price/volume columns of a panel, in file order.
enum class Column : int { open = 0, high, low, close, volume, quote_volume, trades };
inline constexpr int kColumnCount = 7;

/// Symbols x bars of OHLCV. Move-only.
class MarketPanel {
 public:
  /// An all-missing panel (NaN prices, zero volume) of the given shape; throws std::invalid_argument on a bad shape and
  /// PanelTooLarge (before allocating) when it would not fit in the memory available.
  MarketPanel(std::vector<std::string> symbols, std::int32_t n_bars, std::int64_t t0_ms, std::int64_t interval_ms);
  MarketPanel(MarketPanel&&) noexcept;
  MarketPanel& operator=(MarketPanel&&) noexcept;
  ~MarketPanel();

  std::int32_t n_symbols() const { return static_cast<std::int32_t>(symbols_.size()); }
  std::int32_t n_bars() const { return n_bars_; }
  std::int64_t stride() const { return stride_; }
  std::int64_t interval_ms() const { return interval_ms_; }
  std::int64_t t0_ms() const { return t0_ms_; }
  /// Open time of bar t in Unix ms.
  std::int64_t time_ms(std::int32_t t) const { return t0_ms_ + t * interval_ms_; }
  /// Index of the bar whose open time is `ms`, or the last bar opening at or before it; -1 when before the grid.
  std::int32_t bar_at_or_before(std::int64_t ms) const;
  const std::vector<std::string>& symbols() const { return symbols_; }
  /// Index of `symbol`, or -1.
  std::int32_t symbol_index(std::string_view symbol) const;

  /// Bars [0, n_bars) of one column of one symbol.
  std::span<const float> series(Column c, std::int32_t s) const;
  /// Writable row (only for a panel that owns its memory; asserts otherwise).
  std::span<float> series_mut(Column c, std::int32_t s);
  /// First and last bar with data of symbol s (last = -1 when the symbol has none).
  std::int32_t first_bar(std::int32_t s) const { return first_[static_cast<std::size_t>(s)]; }
  std::int32_t last_bar(std::int32_t s) const { return last_[static_cast<std::size_t>(s)]; }
  /// True when bar t of symbol s has data (a finite close).
  bool has_bar(std::int32_t s, std::int32_t t) const;
  /// Recomputes every symbol's first/last bar from the close column (after filling an owned panel).
  void valid_ranges_recompute();

  /// A trivially copyable view for kernels (CPU and CUDA).
  kernels::PanelView view() const;
  /// Raw pointer to a whole column (n_symbols * stride floats).
  const float* column_data(Column c) const { return cols_[static_cast<int>(c)]; }
  /// True when the panel maps a file rather than owning memory.
  bool is_mapped() const { return mapping_ != nullptr; }

 private:
  friend MarketPanel panel_load(const std::string& path, bool verify_checksum);
  struct Mapping;
  MarketPanel() = default;
  std::vector<std::string> symbols_;
  std::int32_t n_bars_ = 0;
  std::int64_t stride_ = 0, t0_ms_ = 0, interval_ms_ = 0;
  std::vector<std::int32_t> first_, last_;
  const float* cols_[kColumnCount] = {};
  std::unique_ptr<float, void (*)(float*)> owned_{nullptr, nullptr};  // one aligned block for all columns
  std::unique_ptr<Mapping> mapping_;
  alignas(8) std::uint64_t id_ = 0;  // kernels::PanelView::id: new on construction, load, series_mut (threads may call it
                                     // at once: accessed through std::atomic_ref) and valid_ranges_recompute
};

/// A panel would need more memory than this process has; what() says "needs N GB, have M GB".
class PanelTooLarge : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bytes of memory an owned panel of this shape takes (all columns, rows padded to the stride).
std::uint64_t panel_bytes(std::uint64_t n_symbols, std::int64_t n_bars);
/// Memory this process can still take: the smaller of MemAvailable and its address-space and data limits (and of
/// QTOS_TEST_MEMORY_BYTES, a test seam, when set).
std::uint64_t memory_available_bytes();
/// "1.12 GB", "340 MB", "12 kB": a byte count for messages.
std::string bytes_human(std::uint64_t bytes);
/// Throws PanelTooLarge "`what` needs N GB, have M GB available" when a panel of this shape would not fit in memory.
void panel_memory_check(std::uint64_t n_symbols, std::int64_t n_bars, const std::string& what);

/// Writes `panel` to `path` in the native format (docs/DATA.md) through the atomic-write helper: a failure throws
/// WriteError naming the path and the reason and leaves the previous file intact.
void panel_save(const MarketPanel& panel, const std::string& path);
/// Maps a native panel file. Throws std::runtime_error naming the file and the problem when it is missing, a
/// directory, truncated, of another version, or fails its checksum (checked unless `verify_checksum` is false).
MarketPanel panel_load(const std::string& path, bool verify_checksum = true);
/// The panel file inside a data directory: DIR/panel.qtp.
std::string panel_path(const std::string& dir);

}  // namespace qtos
