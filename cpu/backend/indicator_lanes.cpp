// The lane form of the CPU indicator backend (see indicator_lanes.hpp): a block of eight symbols is transposed into
// bar-major vectors (one vector of eight symbols per bar, 8x8 register transposes), the step state instantiated on
// Lanes<float, 8> runs over them, and its outputs are transposed back into the symbol-major panel layout. The state's
// arithmetic is the scalar state's, lane for lane (IEEE operations, no contraction), so the values are the row form's.
#include "cpu/backend/indicator_lanes.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/kernels/lanes.hpp"

namespace qtos::detail {

namespace {

using kernels::IndicatorInputs;
using kernels::IndicatorKind;
using kernels::IndicatorParams;
using kernels::PanelView;

constexpr int kW = kIndicatorLanes;
using L = kernels::Lanes<float, kW>;
using V = L::V;

// Compiled for AVX-512 (x86-64-v4), AVX2 (v3) and baseline x86-64; the loader picks the best the CPU has (GCC function
// multi-versioning, as the population backtest's lane kernel). Everything the entry calls is inlined into each clone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define QTOS_INDICATOR_LANE_CLONES [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), gnu::flatten]]
#else
#define QTOS_INDICATOR_LANE_CLONES [[gnu::flatten]]
#endif

/// History accessor over a block's transposed columns: lag k of bar t is the vector of bar t - k.
struct LaneHist {
  const L* hi;     ///< high, one vector per bar
  const L* lo;     ///< low
  const L* cl;     ///< close
  std::int64_t t;  ///< the current bar
  [[gnu::always_inline]] L high(std::int32_t k) const { return hi[t - k]; }   ///< high of bar t-k
  [[gnu::always_inline]] L low(std::int32_t k) const { return lo[t - k]; }    ///< low of bar t-k
  [[gnu::always_inline]] L close(std::int32_t k) const { return cl[t - k]; }  ///< close of bar t-k
};

/// In-place transpose of an 8x8 tile held as eight vectors (row i becomes column i).
[[gnu::always_inline]] inline void transpose8(V r[8]) {
  const V t0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13);
  const V t1 = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15);
  const V t2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13);
  const V t3 = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15);
  const V t4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13);
  const V t5 = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15);
  const V t6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13);
  const V t7 = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);
  const V u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
  const V u1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
  const V u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
  const V u3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
  const V u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
  const V u5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
  const V u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
  const V u7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
  r[0] = __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);
  r[1] = __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);
  r[2] = __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);
  r[3] = __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);
  r[4] = __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
  r[5] = __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
  r[6] = __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
  r[7] = __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
}

typedef float V4 __attribute__((vector_size(16)));

/// Writes one 64-byte line (16 floats: bars t..t+7 from `a`, t+8..t+15 from `b`) at a 64-byte aligned `dst`, past the
/// caches where the CPU can (x86 streaming stores): the outputs are written once and not read back here, so fetching
/// the line before writing it (what a plain store does) would cost as much memory traffic as the write itself.
[[gnu::always_inline]] inline void store_line(float* dst, V a, V b) {
#if defined(__x86_64__)
  _mm_stream_ps(dst, __builtin_shufflevector(a, a, 0, 1, 2, 3));
  _mm_stream_ps(dst + 4, __builtin_shufflevector(a, a, 4, 5, 6, 7));
  _mm_stream_ps(dst + 8, __builtin_shufflevector(b, b, 0, 1, 2, 3));
  _mm_stream_ps(dst + 12, __builtin_shufflevector(b, b, 4, 5, 6, 7));
#else
  std::memcpy(dst, &a, sizeof(V));
  std::memcpy(dst + 8, &b, sizeof(V));
#endif
}

/// Transposes one column of the block (rows `src + s * stride`) into `dst` (n vectors); returns the lanes holding a
/// value that is not finite somewhere.
[[gnu::always_inline]] inline L::Mask transpose_in(const float* src, std::int64_t stride, std::int32_t n, L* dst) {
  L::Mask bad{};
  std::int32_t t = 0;
  for (; t + kW <= n; t += kW) {
    V r[kW];
    for (int s = 0; s < kW; ++s) std::memcpy(&r[s], src + s * stride + t, sizeof(V));
    transpose8(r);
    for (int k = 0; k < kW; ++k) {
      dst[t + k] = L(r[k]);
      bad = bad | !kernels::lanes_finite(L(r[k]));
    }
  }
  for (; t < n; ++t) {
    V x = {};
    for (int s = 0; s < kW; ++s) x[s] = src[s * stride + t];
    dst[t] = L(x);
    bad = bad | !kernels::lanes_finite(L(x));
  }
  return bad;
}

/// The state with parameters `prm` run over kB blocks' transposed columns (`n` bars; block b's close, high, low at
/// cols[3b], cols[3b+1], cols[3b+2]), one state per block advancing in the same loop: the blocks are independent
/// dependency chains, so two keep the core busy where one waits on its recurrence (see kPairs). The outputs are
/// transposed back: output j of block b's symbol s, bar t at dst[b * kOutputs + j][s * stride + t], none where that
/// pointer is null (an output not asked for). Only outputs [0, kLive) are stored (the pointers of the later ones must
/// be null), so the arithmetic of the outputs after them is dead code the compiler drops (Bollinger's three bands
/// without width and %b: no division). Bars [0, head) and the bars after the last whole line are stored one by one;
/// the bars between go out in whole 64-byte lines of every output row (`head` is where the rows reach a line
/// boundary, n when they never do together).
template <class State, int kLive, int kB>
[[gnu::always_inline]] inline void run_state(L* const* cols, std::int32_t n, std::int64_t stride, std::int32_t head,
                                             const IndicatorParams& prm, float* const* dst) {
  constexpr int kOut = State::kOutputs;
  State st[kB];
  for (int b = 0; b < kB; ++b) st[b].init(prm);
  L o[kB][kOut];
  const auto one_bar = [&](std::int32_t t) {  // a bar written lane by lane (before the first line, after the last)
    for (int b = 0; b < kB; ++b) {
      st[b].step(LaneHist{cols[3 * b + 1], cols[3 * b + 2], cols[3 * b], t}, o[b]);
      for (int j = 0; j < kLive; ++j)
        if (float* d = dst[b * kOut + j])
          for (int s = 0; s < kW; ++s) d[s * stride + t] = o[b][j][s];
    }
  };
  // Whole 64-byte lines of every output row: 16 bars of 8 symbols per tile.
  constexpr std::int32_t kLine = 16;
  std::int32_t t = 0;
  for (; t < head && t < n; ++t) one_bar(t);
  for (; t + kLine <= n; t += kLine) {
    V tile[kB][kLive][kLine];
    for (int k = 0; k < kLine; ++k)
      for (int b = 0; b < kB; ++b) {
        st[b].step(LaneHist{cols[3 * b + 1], cols[3 * b + 2], cols[3 * b], t + k}, o[b]);
        for (int j = 0; j < kLive; ++j) tile[b][j][k] = o[b][j].v;
      }
    for (int b = 0; b < kB; ++b)
      for (int j = 0; j < kLive; ++j) {
        float* d = dst[b * kOut + j];
        if (!d) continue;
        transpose8(tile[b][j]);      // tile[b][j][s]: symbol s, bars t..t+7
        transpose8(tile[b][j] + 8);  // tile[b][j][8 + s]: symbol s, bars t+8..t+15
        for (int s = 0; s < kW; ++s) store_line(d + s * stride + t, tile[b][j][s], tile[b][j][8 + s]);
      }
  }
  for (; t < n; ++t) one_bar(t);
}

/// run_state storing outputs [0, live) (1 <= live <= kLive), instantiated for each count.
template <class State, int kB, int kLive = State::kOutputs>
[[gnu::always_inline]] inline void run_state_live(int live, L* const* cols, std::int32_t n, std::int64_t stride,
                                                  std::int32_t head, const IndicatorParams& prm, float* const* dst) {
  if constexpr (kLive > 1) {
    if (live < kLive) return run_state_live<State, kB, kLive - 1>(live, cols, n, stride, head, prm, dst);
  }
  run_state<State, kLive, kB>(cols, n, stride, head, prm, dst);
}

/// Whether two blocks of `State` advance together: where one block's recurrence is a short chain waiting on its own
/// latency (SMA's compensated sum, EMA: 17-21% less CPU time measured with two). RSI, Bollinger's double moments and
/// MACD's three EMAs measured 8-44% slower with two (registers) and run one block after the other, as do ATR and DMI
/// (within the noise of the measurement: -12% to +5%).
template <class State>
inline constexpr bool kPairs = false;
template <>
inline constexpr bool kPairs<kernels::SmaState<L>> = true;
template <>
inline constexpr bool kPairs<kernels::EmaState<L>> = true;

/// The blocks' columns transposed once, then the state run over them for each parameter set in turn (the columns
/// stay in the core's caches between the sets: a set after the first reads no input from memory); two clean blocks
/// advance together where kPairs says so, else one after the other. Output j of set i goes to
/// planes[i * kOutputs + j] (see indicator_lanes_blocks). Returns the mask of the blocks computed.
template <class State>
[[gnu::always_inline]] inline unsigned run_blocks(const PanelView& p, std::int32_t s0, int n_blocks,
                                                  const IndicatorParams* prm, std::int32_t n_prm, float* const* planes,
                                                  L* const* cols) {
  constexpr bool kRange = kernels::indicator_reads<State>(IndicatorInputs::range);
  constexpr int kOut = State::kOutputs;
  const std::int32_t n = p.n_bars;
  const std::int64_t stride = p.stride;
  unsigned good = 0;
  const std::int64_t base[2] = {p.at(s0, 0), p.at(s0, 0) + kW * stride};
  for (int b = 0; b < n_blocks; ++b) {
    L::Mask bad = transpose_in(p.close + base[b], stride, n, cols[3 * b]);
    if constexpr (kRange) {
      bad = bad | transpose_in(p.high + base[b], stride, n, cols[3 * b + 1]);
      bad = bad | transpose_in(p.low + base[b], stride, n, cols[3 * b + 2]);
    }
    if (!bad.any()) good |= 1u << b;
  }
  if (good == 0) return 0;
  // Lines need every row of every output at the same offset in its 64-byte line: a stride of whole lines (so both
  // blocks' rows agree too) and planes whose origins agree modulo a line (true of the backend's layouts). Else every
  // bar is stored one by one.
  std::int32_t head = n;
  std::uintptr_t first = 64;
  bool lines = stride % 16 == 0;
  for (std::int32_t k = 0; k < n_prm * kOut && lines; ++k) {
    if (!planes[k]) continue;
    const auto at = reinterpret_cast<std::uintptr_t>(planes[k] + base[0]) % 64;
    if (first == 64) first = at;
    lines = at == first && at % 4 == 0;
  }
  if (lines && first < 64) head = static_cast<std::int32_t>(((64 - first) % 64) / 4);
  for (std::int32_t i = 0; i < n_prm; ++i) {
    float* dst[2 * kOut];
    int live = 0;
    for (int b = 0; b < 2; ++b)
      for (int j = 0; j < kOut; ++j) {
        float* plane = planes[i * kOut + j];
        dst[b * kOut + j] = plane ? plane + base[b] : nullptr;
        if (plane) live = j + 1;
      }
    if (live == 0) continue;
    if constexpr (kPairs<State>) {
      if (good == 3) {
        run_state_live<State, 2>(live, cols, n, stride, head, prm[i], dst);
        continue;
      }
    }
    for (int b = 0; b < 2; ++b)
      if ((good >> b) & 1u) run_state_live<State, 1>(live, cols + 3 * b, n, stride, head, prm[i], dst + b * kOut);
  }
#if defined(__x86_64__)
  _mm_sfence();  // streaming stores are weakly ordered: make them visible before the blocks are reported done
#endif
  return good;
}

QTOS_INDICATOR_LANE_CLONES unsigned lanes_blocks(const PanelView& p, std::int32_t s0, int n_blocks, IndicatorKind kind,
                                                 const IndicatorParams* prm, std::int32_t n_prm, float* const* planes,
                                                 L* const* cols) {
  switch (kind) {
    case IndicatorKind::sma: return run_blocks<kernels::SmaState<L>>(p, s0, n_blocks, prm, n_prm, planes, cols);
    case IndicatorKind::ema: return run_blocks<kernels::EmaState<L>>(p, s0, n_blocks, prm, n_prm, planes, cols);
    case IndicatorKind::rsi: return run_blocks<kernels::RsiState<L>>(p, s0, n_blocks, prm, n_prm, planes, cols);
    case IndicatorKind::atr: return run_blocks<kernels::AtrState<L>>(p, s0, n_blocks, prm, n_prm, planes, cols);
    case IndicatorKind::dmi: return run_blocks<kernels::DmiState<L>>(p, s0, n_blocks, prm, n_prm, planes, cols);
    case IndicatorKind::bbands: return run_blocks<kernels::BbandsState<L>>(p, s0, n_blocks, prm, n_prm, planes, cols);
    case IndicatorKind::macd: return run_blocks<kernels::MacdState<L>>(p, s0, n_blocks, prm, n_prm, planes, cols);
    default: return 0;
  }
}

}  // namespace

bool indicator_has_lanes(IndicatorKind kind) {
  switch (kind) {
    case IndicatorKind::sma:
    case IndicatorKind::ema:
    case IndicatorKind::rsi:
    case IndicatorKind::atr:
    case IndicatorKind::dmi:
    case IndicatorKind::bbands:
    case IndicatorKind::macd: return true;
    default: return false;
  }
}

unsigned indicator_lanes_blocks(const PanelView& panel, std::int32_t s0, int n_blocks, IndicatorKind kind,
                                std::span<const IndicatorParams> params, float* const* planes) {
  if (!indicator_has_lanes(kind) || panel.n_bars == 0 || params.empty() || n_blocks < 1 || n_blocks > 2) return 0;
  // The blocks' transposed columns (close, high, low of each), kept per thread: 32 bytes a bar each, in L2 for years
  // of bars.
  thread_local std::vector<L> cols[6];
  const auto n = static_cast<std::size_t>(panel.n_bars);
  bool range = false;
  kernels::indicator_visit(kind, [&](auto tag) {
    range = kernels::indicator_reads<typename decltype(tag)::type>(IndicatorInputs::range);
  });
  L* ptrs[6] = {};
  for (int b = 0; b < n_blocks; ++b)
    for (int c = 0; c < (range ? 3 : 1); ++c) {
      auto& col = cols[3 * b + c];
      if (col.size() < n) col.resize(n);
      ptrs[3 * b + c] = col.data();
    }
  return lanes_blocks(panel, s0, n_blocks, kind, params.data(), static_cast<std::int32_t>(params.size()), planes, ptrs);
}

bool indicator_lanes_block(const PanelView& panel, std::int32_t s0, IndicatorKind kind, const IndicatorParams& params,
                           float* out) {
  const std::int64_t plane = static_cast<std::int64_t>(panel.n_symbols) * panel.stride;
  float* planes[8] = {};  // a lane family has at most five outputs (Bollinger)
  const int outputs = kernels::indicator_output_count(kind);
  if (outputs > 8) return false;
  for (int j = 0; j < outputs; ++j) planes[j] = out + j * plane;
  return indicator_lanes_blocks(panel, s0, 1, kind, std::span(&params, 1), planes) == 1u;
}

}  // namespace qtos::detail
