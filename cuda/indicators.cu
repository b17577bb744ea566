// CUDA backend of the indicators and ranking features. One warp per symbol: the warp loads 32 bars of each column
// with one coalesced access, every lane runs the same sequential state update on the bars broadcast by shuffles
// (the recurrence is serial in time), and lane j keeps bar j's outputs so the stores are coalesced too.
// The math is cpu/kernels/indicators.hpp and cpu/kernels/features.hpp, shared verbatim with the TBB backend.
#include <algorithm>
#include <mutex>
#include <optional>
#include <type_traits>

#include "cpu/kernels/features.hpp"
#include "cpu/kernels/indicators.hpp"
#include "cuda/check.cuh"
#include "cpu/registry/accelerator.hpp"

namespace qtos::cuda {
namespace {

using kernels::IndicatorKind;
using kernels::IndicatorParams;
using kernels::PanelView;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpsPerBlock = 4;

/// One bar of a warp: bar t's columns in registers (shuffled) and the rows for older bars (read through WarpGapHist).
struct WarpHist {
  float h0, l0, c0, q0;
  const float* hi;
  const float* lo;
  const float* cl;
  const float* qv;
  std::int64_t t;
};

/// History accessor of a warp under the gap policy (kernels::GapHist): bar t from registers, the k-th existing bar back
/// from global memory, at t-k while the stretch is contiguous (`pos` null), else at the position the cursor recorded.
struct WarpGapHist {
  WarpHist w;
  const std::int32_t* pos;  // row positions of the bars since the last reset; null while contiguous
  std::int32_t i;           // index of the current bar among them
  __device__ std::int64_t at(std::int32_t k) const { return pos != nullptr ? pos[i - k] : w.t - k; }
  __device__ float high(std::int32_t k) const { return k == 0 ? w.h0 : w.hi[at(k)]; }
  __device__ float low(std::int32_t k) const { return k == 0 ? w.l0 : w.lo[at(k)]; }
  __device__ float close(std::int32_t k) const { return k == 0 ? w.c0 : w.cl[at(k)]; }
  __device__ float qvol(std::int32_t k) const { return k == 0 ? w.q0 : w.qv[at(k)]; }
};

/// Walks bars [t_begin, t_end] of one symbol in 32-bar tiles; calls f(hist, t, j) for each bar on every lane, j being
/// the lane that owns bar t. Only the columns asked for are loaded at k = 0 (the others read as NaN / 0), so a state
/// must declare every column it reads in its kInputs trait.
template <bool kRange, bool kVolume, class F>
__device__ void warp_walk(const PanelView& p, std::int64_t base, std::int32_t t_begin, std::int32_t t_end, F&& f) {
  const int lane = static_cast<int>(threadIdx.x & 31u);
  for (std::int32_t t0 = t_begin; t0 <= t_end; t0 += 32) {
    const std::int32_t t = t0 + lane;
    const bool in = t <= t_end;
    const float h = in && kRange ? p.high[base + t] : NAN;
    const float l = in && kRange ? p.low[base + t] : NAN;
    const float c = in ? p.close[base + t] : 0.0f;
    const float q = in && kVolume ? p.quote_volume[base + t] : 0.0f;
    const int count = t_end - t0 + 1 < 32 ? t_end - t0 + 1 : 32;
    for (int j = 0; j < count; ++j) {
      const WarpHist hist{__shfl_sync(kFullMask, h, j), __shfl_sync(kFullMask, l, j), __shfl_sync(kFullMask, c, j),
                          __shfl_sync(kFullMask, q, j), p.high + base,  p.low + base,
                          p.close + base,               p.quote_volume + base,        t0 + j};
      f(hist, t0 + j, j);
    }
  }
}

/// The symbol of this thread's warp, computed in 64 bits (blockIdx.x * blockDim.x overflows 32 bits past 2^27 symbols).
__device__ inline std::int64_t warp_symbol() {
  return static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32u) + threadIdx.x / 32u;
}

template <class Ind>
__global__ static void series_kernel(PanelView p, IndicatorParams params, float* out, std::int64_t plane,
                                     std::int32_t* gap_pos) {
  const std::int64_t s64 = warp_symbol();
  if (s64 >= p.n_symbols) return;  // the whole warp leaves together
  const auto s = static_cast<std::int32_t>(s64);
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const std::int64_t base = p.at(s, 0);
  Ind st;
  st.init(params);
  float mine[Ind::kOutputs];
  for (int k = 0; k < Ind::kOutputs; ++k) mine[k] = NAN;
  // The columns this state declares it reads (its kInputs trait); the close is always loaded (a NaN close is a gap).
  constexpr bool kRange = kernels::indicator_reads<Ind>(kernels::IndicatorInputs::range);
  constexpr bool kVolume = kernels::indicator_reads<Ind>(kernels::IndicatorInputs::volume);
  // The gap policy as every driver applies it (kernels::GapCursor); every lane keeps the same cursor (uniform), and the
  // row positions after a skipped gap go to this symbol's row of the scratch.
  kernels::GapCursor cur{params.gaps, gap_pos + base};
  warp_walk<kRange, kVolume>(p, base, 0, p.n_bars - 1, [&](const WarpHist& h, std::int32_t t, int j) {
    float o[Ind::kOutputs];
    const bool valid = kernels::indicator_bar_valid<Ind>(h.h0, h.l0, h.c0);
    if (!valid) {
      cur.miss();
      for (int k = 0; k < Ind::kOutputs; ++k) o[k] = NAN;
    } else {
      if (cur.enter(t) == kernels::GapStep::reset) st.reset();
      st.step(WarpGapHist{h, cur.positions(), cur.count}, o);
      cur.done();
    }
    if (lane == j) {
      for (int k = 0; k < Ind::kOutputs; ++k) mine[k] = o[k];
    }
    if (j == 31 || t == p.n_bars - 1) {  // tile complete: coalesced store of the lanes that own a bar
      const std::int32_t tl = t - j + lane;
      if (lane <= j) {
        for (int k = 0; k < Ind::kOutputs; ++k) out[k * plane + base + tl] = mine[k];
      }
    }
  });
}

__global__ static void features_kernel(PanelView p, kernels::FeatureParams params, std::int32_t t_begin,
                                       std::int32_t t_end, kernels::FeatureRow* out, std::int32_t* gap_pos) {
  const std::int64_t s64 = warp_symbol();
  if (s64 >= p.n_symbols) return;
  const auto s = static_cast<std::int32_t>(s64);
  const std::int64_t base = p.at(s, t_begin);
  kernels::FeatureState<float> st;
  st.init(params);
  const std::int32_t len = t_end - t_begin;
  // As kernels::features_row_run: window features are read at the last valid bar, and spread pair estimates are
  // needed only for the last liq_n valid bars. The lanes count the valid bars together, then walk alike (uniform).
  const int lane = static_cast<int>(threadIdx.x & 31u);
  std::int32_t n_valid = 0, last_valid = -1;
  for (std::int32_t t = lane; t <= len; t += 32) {
    if (kernels::bar_valid(p.high[base + t], p.low[base + t], p.close[base + t])) {
      ++n_valid;
      last_valid = t;
    }
  }
  for (int d = 16; d > 0; d /= 2) {
    n_valid += __shfl_xor_sync(kFullMask, n_valid, d);
    last_valid = max(last_valid, __shfl_xor_sync(kFullMask, last_valid, d));
  }
  kernels::GapCursor cur{params.gaps, gap_pos + p.at(s, 0)};
  std::int32_t seen = 0;
  warp_walk<true, true>(p, base, 0, len, [&](const WarpHist& h, std::int32_t t, int) {
    if (!kernels::bar_valid(h.h0, h.l0, h.c0)) {
      cur.miss();
      return;
    }
    if (cur.enter(t) == kernels::GapStep::reset) st.reset();
    const bool need_pair = n_valid - 1 - seen < st.liq_n;
    st.step(WarpGapHist{h, cur.positions(), cur.count}, t + t_begin, t == last_valid, need_pair);
    cur.done();
    ++seen;
  });
  if ((threadIdx.x & 31u) == 0) out[s] = st.row;
}

/// The panel columns the indicators read, kept on the device while the panel's identity and shape are the same.
struct ResidentPanel {
  DeviceBuffer<float> high, low, close, qvol;  // grow-only
  std::uint64_t id = 0;                        // PanelView::id of the copy; 0: nothing reusable
  const float* host[4] = {};                   // the slice of that panel (a view may cover some of its symbols)
  std::int32_t n_symbols = 0, n_bars = 0;
  std::int64_t stride = 0;
};

/// The grid of one warp per symbol.
dim3 warp_grid(std::int32_t n_symbols) {
  return grid_x((static_cast<std::size_t>(n_symbols) + kWarpsPerBlock - 1) / kWarpsPerBlock, "indicator kernel");
}

class IndicatorCuda final : public IndicatorBackend {
 public:
  std::string_view name() const override { return "cuda"; }
  bool available() const override { return devices_query().cuda_devices > 0; }
  /// Declines a panel that, with the outputs, would not fit in the device's memory.
  bool supports(const IndicatorRequest& r) const override {
    const auto cells = static_cast<std::uint64_t>(r.panel.n_symbols) * static_cast<std::uint64_t>(r.panel.stride);
    const std::uint64_t out = r.kind ? static_cast<std::uint64_t>(kernels::indicator_output_count(*r.kind)) * cells * sizeof(float)
                                     : static_cast<std::uint64_t>(r.panel.n_symbols) * sizeof(kernels::FeatureRow);
    return 4 * cells * sizeof(float) + cells * sizeof(std::int32_t) + out <= devices_query().global_mem_bytes;
  }

 protected:
  void series_run(const PanelView& panel, IndicatorKind kind, const IndicatorParams& params,
                  std::span<float> out) const override {
    std::lock_guard lock(mutex_);
    const cudaStream_t st = stream().get();
    const PanelView d = upload(panel, st);
    out_.grow(out.size());
    gap_pos_.grow(static_cast<std::size_t>(panel.n_symbols) * static_cast<std::size_t>(panel.stride));
    const std::int64_t plane = static_cast<std::int64_t>(panel.n_symbols) * panel.stride;
    // One launch site for every family: the kernel library's dispatcher names the state type of `kind`.
    kernels::indicator_dispatch<float>(kind, params, [&](auto& state) {
      using State = std::remove_cvref_t<decltype(state)>;
      launch("series_kernel", series_kernel<State>, warp_grid(panel.n_symbols), dim3(32 * kWarpsPerBlock), 0, st, d,
             params, out_.data(), plane, gap_pos_.data());
    });
    QTOS_CUDA_CHECK(cudaMemcpyAsync(out.data(), out_.data(), out.size_bytes(), cudaMemcpyDeviceToHost, st));
    stream().synchronize();  // the host needs the series
  }

  void features_run(const PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                    std::int32_t t_end, std::span<kernels::FeatureRow> out) const override {
    std::lock_guard lock(mutex_);
    const cudaStream_t st = stream().get();
    const PanelView d = upload(panel, st);
    rows_.grow(out.size());
    gap_pos_.grow(static_cast<std::size_t>(panel.n_symbols) * static_cast<std::size_t>(panel.stride));
    launch("features_kernel", features_kernel, warp_grid(panel.n_symbols), dim3(32 * kWarpsPerBlock), 0, st, d, params,
           t_begin, t_end, rows_.data(), gap_pos_.data());
    QTOS_CUDA_CHECK(cudaMemcpyAsync(out.data(), rows_.data(), out.size_bytes(), cudaMemcpyDeviceToHost, st));
    stream().synchronize();  // the host needs the rows
  }

 private:
  /// Device view of `host`. The columns are copied unless the same panel (PanelView::id, never 0) with the same
  /// rows is already resident; a view of fewer leading symbols of it reuses the copy too.
  PanelView upload(const PanelView& host, cudaStream_t st) const {
    const std::size_t n = static_cast<std::size_t>(host.n_symbols) * static_cast<std::size_t>(host.stride);
    const float* cols[4] = {host.high, host.low, host.close, host.quote_volume};
    const bool same = host.id != 0 && resident_.id == host.id && std::equal(cols, cols + 4, resident_.host) &&
                      resident_.n_bars == host.n_bars && resident_.stride == host.stride &&
                      host.n_symbols <= resident_.n_symbols;
    if (!same) {
      resident_.id = 0;  // nothing reusable until every column has been queued
      DeviceBuffer<float>* dev[4] = {&resident_.high, &resident_.low, &resident_.close, &resident_.qvol};
      for (int c = 0; c < 4; ++c) {
        dev[c]->grow(n);
        QTOS_CUDA_CHECK(cudaMemcpyAsync(dev[c]->data(), cols[c], n * sizeof(float), cudaMemcpyHostToDevice, st));
      }
      std::copy(cols, cols + 4, resident_.host);
      resident_.n_symbols = host.n_symbols;
      resident_.n_bars = host.n_bars;
      resident_.stride = host.stride;
      resident_.id = host.id;
    }
    PanelView d = host;
    d.open = nullptr;
    d.volume = nullptr;
    d.trades = nullptr;
    d.first_bar = nullptr;
    d.last_bar = nullptr;
    d.high = resident_.high.data();
    d.low = resident_.low.data();
    d.close = resident_.close.data();
    d.quote_volume = resident_.qvol.data();
    return d;
  }

  /// The backend's stream, created on first use (constructing the backend must work without a device).
  Stream& stream() const {
    if (!stream_) stream_.emplace();
    return *stream_;
  }

  mutable std::mutex mutex_;
  mutable std::optional<Stream> stream_;
  mutable ResidentPanel resident_;
  mutable DeviceBuffer<float> out_;                // grow-only, reused across calls
  mutable DeviceBuffer<kernels::FeatureRow> rows_;  // grow-only, reused across calls
  mutable DeviceBuffer<std::int32_t> gap_pos_;      // grow-only: row positions after a skipped gap (GapCursor)
};

}  // namespace

std::unique_ptr<IndicatorBackend> indicator_backend_make() { return std::make_unique<IndicatorCuda>(); }

}  // namespace qtos::cuda
