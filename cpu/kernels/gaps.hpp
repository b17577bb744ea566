#pragma once
/// @file The gap policy: what a missing bar (a market closure, a holiday, an outage) does to the states that run over a
/// panel row. The policy lives in the drivers (the loops that feed step states: batch, CUDA, streaming, backtests), never
/// in a step state, so every state keeps one definition of its arithmetic and every driver applies the same rule.
///
/// `skip` (the default): a missing bar is not an event. States carry over to the next bar that exists, a lag k means the
/// k-th existing bar back, and the output at a missing bar is NaN. An indicator on a row with closures equals the same
/// indicator on the row with the closures removed, bar for bar. `reset-after:N`: a gap longer than N bars restarts the
/// states (`reset-after:0` restarts them after any missing bar); shorter gaps are skipped.

#include <cstdint>

#include "cpu/kernels/qtos_hd.hpp"

namespace qtos::kernels {

/// How drivers treat missing bars (see the file comment). Trivially copyable, passed by value to kernels.
struct GapPolicy {
  std::int32_t reset_after = -1;  ///< -1: skip every gap; N >= 0: restart after a gap longer than N bars
  /// True for `skip`.
  QTOS_HD constexpr bool skips_all() const { return reset_after < 0; }
  /// True when a gap of `missing` consecutive bars restarts the states.
  QTOS_HD constexpr bool resets(std::int32_t missing) const { return reset_after >= 0 && missing > reset_after; }
  /// Equal policies.
  QTOS_HD constexpr bool operator==(const GapPolicy& o) const { return reset_after == o.reset_after; }
};

/// The policy that skips every gap (the default).
QTOS_HD constexpr GapPolicy gap_skip() { return GapPolicy{-1}; }
/// The policy that restarts after a gap longer than `n` bars (`reset-after:0` restarts after every gap).
QTOS_HD constexpr GapPolicy gap_reset_after(std::int32_t n) { return GapPolicy{n}; }

/// What the driver does with a valid bar, as decided by GapCursor::enter.
enum class GapStep : std::uint8_t {
  adjacent,  ///< the bar follows the previous valid bar directly (or is the first one)
  skipped,   ///< a gap lies between the previous valid bar and this one, and the states carry over it
  reset,     ///< a gap the policy does not bridge: reset the states before stepping this bar
};

/// A driver's bookkeeping over one row: where the bars the state has seen since its last reset lie in the row, so that
/// lag k can be mapped to the k-th existing bar back. While no gap was skipped since the last reset the stretch is
/// contiguous and lag k is bar t-k (the fast path, no scratch touched); after the first skipped gap the row positions
/// are kept in `pos` (the caller's scratch of one entry per bar of the row).
struct GapCursor {
  GapPolicy policy;              ///< the rule
  std::int32_t* pos = nullptr;   ///< scratch: row position of the i-th bar since the last reset (after a skipped gap)
  std::int32_t count = 0;        ///< valid bars stepped since the last reset
  std::int32_t missing = 0;      ///< missing bars since the last valid bar
  std::int32_t start = 0;        ///< row position of the first bar since the last reset
  bool contiguous = true;        ///< no gap was skipped since the last reset: lag k is bar t-k
  bool seen = false;             ///< a valid bar was seen

  /// A missing bar.
  QTOS_HD QTOS_FORCE_INLINE void miss() { ++missing; }
  /// Valid bar t arrives: decides whether it follows directly, skips a gap or resets (the caller resets its states on
  /// `reset`), and records its position. Call `done()` after stepping it. The common case (no gap before it) is a
  /// test and, after a skipped gap, one store; the rest is out of line so that the states stay in registers.
  QTOS_HD QTOS_FORCE_INLINE GapStep enter(std::int32_t t) {
    if (missing == 0 && count > 0) {
      if (!contiguous) pos[count] = t;
      return GapStep::adjacent;
    }
    return enter_after_gap(t);
  }
  /// enter() for the first bar, and a bar after a gap.
  QTOS_HD GapStep enter_after_gap(std::int32_t t) {
    GapStep r = GapStep::adjacent;
    if (seen && missing > 0) r = policy.resets(missing) ? GapStep::reset : GapStep::skipped;
    missing = 0;
    seen = true;
    if (r == GapStep::reset || count == 0) {
      count = 0;
      start = t;
      contiguous = true;
      return r;
    }
    if (contiguous) {  // the first skipped gap since the reset: the stretch so far was contiguous
      for (std::int32_t i = 0; i < count; ++i) pos[i] = start + i;
      contiguous = false;
    }
    pos[count] = t;
    return r;
  }
  /// The positions for GapHist: null while the stretch since the last reset is contiguous.
  QTOS_HD QTOS_FORCE_INLINE const std::int32_t* positions() const { return contiguous ? nullptr : pos; }
  /// After stepping the bar entered last.
  QTOS_HD QTOS_FORCE_INLINE void done() { ++count; }
};

/// A history accessor under the gap policy: lag k is bar t-k while the stretch since the last reset is contiguous
/// (`pos` null), else the bar at row position pos[i - k] (i: the current bar's index since the last reset). One type for
/// both cases, so each state is compiled once per driver (two instantiations doubled the code and cost the inlining
/// of the larger states). `Row` is any accessor with `high(t)`, `low(t)`, `close(t)`, `qvol(t)` by absolute position.
template <class Row>
struct GapHist {
  Row row;                  ///< the row, by absolute position
  const std::int32_t* pos;  ///< row position of each bar since the last reset; null while they are contiguous
  std::int32_t t;           ///< the current bar's row position
  std::int32_t i;           ///< index of the current bar since the last reset
  /// Row position of the k-th existing bar back.
  QTOS_HD std::int32_t at(std::int32_t k) const { return pos != nullptr ? pos[i - k] : t - k; }
  QTOS_HD float high(std::int32_t k) const { return row.high(at(k)); }    ///< high of the k-th existing bar back
  QTOS_HD float low(std::int32_t k) const { return row.low(at(k)); }      ///< low of the k-th existing bar back
  QTOS_HD float close(std::int32_t k) const { return row.close(at(k)); }  ///< close of the k-th existing bar back
  QTOS_HD float qvol(std::int32_t k) const { return row.qvol(at(k)); }    ///< quote volume of the k-th bar back
};

/// Absolute-position access to one row of a structure-of-arrays panel.
struct RowAt {
  const float* hi;  ///< high row
  const float* lo;  ///< low row
  const float* cl;  ///< close row
  const float* qv;  ///< quote-volume row
  QTOS_HD float high(std::int32_t t) const { return hi[t]; }    ///< high of bar t
  QTOS_HD float low(std::int32_t t) const { return lo[t]; }     ///< low of bar t
  QTOS_HD float close(std::int32_t t) const { return cl[t]; }   ///< close of bar t
  QTOS_HD float qvol(std::int32_t t) const { return qv[t]; }    ///< quote volume of bar t
};

}  // namespace qtos::kernels
