#pragma once
/// @file The lane form of the CPU indicator backend: eight symbols advanced together in SIMD lanes by the step states
/// of cpu/kernels/indicators.hpp instantiated on `Lanes<float, 8>` (cpu/kernels/lanes.hpp). Internal to the backend;
/// declared here for the tests that hold it equal to the row form.

#include <cstdint>
#include <span>

#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/panel_view.hpp"

namespace qtos::detail {

/// Symbols per lane block.
inline constexpr std::int32_t kIndicatorLanes = 8;

/// True when `kind` has a lane form (SMA, EMA, RSI, ATR, DMI, Bollinger, MACD; the others run row by row).
bool indicator_has_lanes(kernels::IndicatorKind kind);

/// Runs `kind` on symbols [s0, s0 + kIndicatorLanes) of `panel` in lanes and writes their outputs where the row form
/// would (output j of (s, t) at out[j * n_symbols * stride + s * stride + t]); returns true. Returns false and writes
/// nothing when the kind has no lane form or one of the block's bars is missing (a price the state reads is not
/// finite): the gap policy then needs the row form's per-symbol bookkeeping. Expects checked arguments and
/// s0 + kIndicatorLanes <= n_symbols.
bool indicator_lanes_block(const kernels::PanelView& panel, std::int32_t s0, kernels::IndicatorKind kind,
                           const kernels::IndicatorParams& params, float* out);

/// Runs `kind` with each parameter set of `params` on `n_blocks` (1 or 2) blocks of kIndicatorLanes symbols from s0
/// in lanes, the blocks' columns transposed once for all the sets and two clean blocks advanced together (independent
/// dependency chains); output j of set i of (s, t) goes to planes[i * outputs + j][s * stride + t] (`outputs` = the
/// family's output count), or nowhere when that pointer is null. Returns the mask of the blocks computed (bit b:
/// block b); a block with a missing bar, as in indicator_lanes_block, is not computed nor written. Expects checked
/// arguments and s0 + n_blocks * kIndicatorLanes <= n_symbols.
unsigned indicator_lanes_blocks(const kernels::PanelView& panel, std::int32_t s0, int n_blocks,
                                kernels::IndicatorKind kind, std::span<const kernels::IndicatorParams> params,
                                float* const* planes);

/// The CPU backend's float arithmetic symbol by symbol (the row form, gaps handled by the policy), without lanes: what
/// the lane form must equal exactly. Expects checked arguments and out of indicator_out_size floats.
void indicator_series_rows(const kernels::PanelView& panel, kernels::IndicatorKind kind,
                           const kernels::IndicatorParams& params, std::span<float> out);

}  // namespace qtos::detail
