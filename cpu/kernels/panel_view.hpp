#pragma once
/// @file A non-owning, trivially copyable view of a market panel, passed by value to CPU and CUDA kernels.

#include <cstddef>
#include <cstdint>

#include "cpu/kernels/qtos_hd.hpp"

namespace qtos::kernels {

/// Symbol-major structure of arrays: element (s, t) of a column is `col[s * stride + t]`.
/// A missing bar (before listing, after delisting, or a gap) has NaN prices and zero volume.
struct PanelView {
  const float* open = nullptr;
  const float* high = nullptr;
  const float* low = nullptr;
  const float* close = nullptr;
  const float* volume = nullptr;        ///< base-asset volume
  const float* quote_volume = nullptr;  ///< quote-asset (dollar) volume
  const float* trades = nullptr;        ///< number of trades in the bar
  const std::int32_t* first_bar = nullptr;  ///< per symbol: first bar with data
  const std::int32_t* last_bar = nullptr;   ///< per symbol: last bar with data (inclusive); -1 when none
  std::int32_t n_symbols = 0;
  std::int32_t n_bars = 0;
  std::int64_t stride = 0;  ///< floats between the starts of two symbols' rows (>= n_bars, multiple of 16)
  std::uint64_t id = 0;     ///< identity of the panel's contents, new whenever they may change (MarketPanel sets it);
                            ///< a device backend keeps its copy while the id is the same; 0: unknown, copied every call

  /// Offset of bar t of symbol s in every column.
  QTOS_HD std::int64_t at(std::int32_t s, std::int32_t t) const { return s * stride + t; }
};

}  // namespace qtos::kernels
