// CUDA population backtest: one block per (genome tile, symbol), one genome per thread, the symbol's bars and
// feature planes staged in shared memory a chunk at a time, the step function of cpu/kernels/strategy.hpp.
#include <algorithm>
#include <limits>
#include <mutex>
#include <optional>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"
#include "cuda/check.cuh"
#include "cpu/registry/accelerator.hpp"

namespace qtos::cuda {
namespace {

using kernels::BacktestAccum;
using kernels::Genome;

constexpr int kThreads = 128;  // genomes per block
constexpr int kChunk = 64;     // bars staged per shared-memory round
constexpr int kPlanes = 4 + kernels::kStrategyFeatureCount;  // open, high, low, close, features

/// Reads feature plane p of the current bar from the staged chunk; plane -1 is the close (staged just before the
/// features), as kernels::condition_run expects.
struct SharedReader {
  const float* base;  // &smem[4 * kChunk + (t - t0)]
  __device__ float operator()(std::int32_t p) const { return base[p * kChunk]; }
};

struct DeviceView {
  const float* open;
  const float* high;
  const float* low;
  const float* close;
  const float* feats;
  std::int64_t stride, plane_size;
  std::int32_t n_symbols;
};

/// Symbols s0 + blockIdx.y: the launch is tiled over symbols, gridDim.y being limited to 65535.
/// The last bar before `t` of row `row` with finite open, high, low and close; -1 when none (as backtest_prev_valid).
__device__ std::int32_t prev_valid(const DeviceView& v, std::int64_t row, std::int32_t t) {
  for (std::int32_t u = t - 1; u >= 0; --u)
    if (kernels::backtest_bar_valid(v.open[row + u], v.high[row + u], v.low[row + u], v.close[row + u])) return u;
  return -1;
}

static __global__ void backtest_kernel(DeviceView v, const Genome* genomes, std::int32_t n_genomes, kernels::BacktestCosts costs,
                                       kernels::GapPolicy gap_policy, std::int32_t t_begin, std::int32_t t_end,
                                       std::int32_t s0, BacktestAccum* out) {
  __shared__ float smem[kPlanes * kChunk];
  const std::int32_t s = s0 + static_cast<std::int32_t>(blockIdx.y);
  const std::int32_t g = static_cast<std::int32_t>(blockIdx.x) * kThreads + static_cast<std::int32_t>(threadIdx.x);
  const bool active = g < n_genomes;
  Genome genome;
  if (active) genome = genomes[g];
  // The rules compiled once per thread: per bar, every genome of a warp runs the same instructions whatever its
  // condition kinds (kernels::signals_run), only the planes it reads differ.
  const kernels::SignalProgram prog = kernels::signal_program(genome);
  kernels::BacktestState<float> st;
  st.init(float(costs.capital / v.n_symbols));
  kernels::NoTradeSink sink;
  const std::int64_t row = s * v.stride;
  const std::int64_t spread_plane = static_cast<std::int64_t>(kernels::StrategyFeature::spread) * v.plane_size;
  // The gap policy as every driver applies it (kernels::BacktestGapCursor): fills on a bar pay the slippage of the
  // previous existing bar's spread proxy, and the window closes at backtest_last_bar.
  kernels::BacktestGapCursor<float> gaps{gap_policy};
  const std::int32_t prev = prev_valid(v, row, t_begin);
  gaps.start(prev, t_begin, prev >= 0 ? v.feats[spread_plane + row + prev] : kernels::qnan<float>());
  const std::int32_t last = kernels::backtest_last_bar(gap_policy, prev_valid(v, row, t_end), t_end - 1);
  for (std::int32_t t0 = t_begin; t0 <= last; t0 += kChunk) {
    const std::int32_t n = min(kChunk, last + 1 - t0);
    __syncthreads();  // the previous chunk is no longer read
    for (int i = static_cast<int>(threadIdx.x); i < kPlanes * kChunk; i += kThreads) {
      const int plane = i / kChunk, k = i % kChunk;
      float x = 0.0f;
      if (k < n) {
        const std::int64_t at = row + t0 + k;
        x = plane == 0 ? v.open[at] : plane == 1 ? v.high[at] : plane == 2 ? v.low[at] : plane == 3 ? v.close[at]
                                                                                          : v.feats[(plane - 4) * v.plane_size + at];
      }
      smem[i] = x;
    }
    __syncthreads();
    if (active) {
      for (int k = 0; k < n; ++k) {
        const SharedReader f{smem + 4 * kChunk + k};
        const std::int32_t t = t0 + k;
        const float cl = smem[3 * kChunk + k];
        const bool valid = kernels::backtest_bar_valid(smem[k], smem[kChunk + k], smem[2 * kChunk + k], cl);
        if (!gaps.on_bar(valid)) continue;  // a missing bar the gap policy skips
        const std::uint32_t sig = kernels::signals_run<float>(prog, cl, f);
        st.step(genome, costs, t, smem[k], smem[kChunk + k], smem[2 * kChunk + k], cl, static_cast<std::int32_t>(sig),
                f(static_cast<std::int32_t>(kernels::StrategyFeature::atr)), kernels::fill_slippage<float>(costs, gaps.fill_spread()),
                t == last, sink);
        if (valid) gaps.passed(f(static_cast<std::int32_t>(kernels::StrategyFeature::spread)));
      }
    }
  }
  if (active) {
    st.finish();
    out[static_cast<std::int64_t>(g) * v.n_symbols + s] = st.acc;
  }
}

/// Merges each genome's symbols in symbol order (the same order as the CPU backend).
static __global__ void merge_kernel(const BacktestAccum* cells, std::int32_t n_genomes, std::int32_t n_symbols, BacktestAccum* out) {
  const std::int32_t g = static_cast<std::int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (g >= n_genomes) return;
  BacktestAccum a;
  for (std::int32_t s = 0; s < n_symbols; ++s) a.merge(cells[static_cast<std::int64_t>(g) * n_symbols + s]);
  out[g] = a;
}

class BacktestCuda final : public BacktestBackend {
 public:
  std::string_view name() const override { return "cuda"; }
  bool available() const override { return devices_query().cuda_devices > 0; }
  /// Declines a population whose index would overflow the kernel's int32 or whose market, genomes and accumulators
  /// would not fit in the device's memory.
  bool supports(const BacktestRequest& r) const override {
    const std::uint64_t P = r.genomes.size(), S = static_cast<std::uint64_t>(r.panel.n_symbols);
    if (P > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())) return false;
    const std::uint64_t prices = 4 * S * static_cast<std::uint64_t>(r.panel.stride) * sizeof(float);
    const std::uint64_t features = r.features ? r.features->f32.size() * sizeof(float) : 0;
    const std::uint64_t population = P * sizeof(Genome) + (P * S + P) * sizeof(BacktestAccum);
    return prices + features + population <= devices_query().global_mem_bytes;
  }

 protected:
  void run_checked(const BacktestRequest& r, BacktestResult& out) const override {
    const std::lock_guard<std::mutex> lock(mutex_);  // one run at a time on the backend's stream and buffers
    if (!stream_) stream_.emplace();
    const cudaStream_t st = stream_->get();
    const auto& p = r.panel;
    const std::size_t P = r.genomes.size(), S = static_cast<std::size_t>(p.n_symbols);
    market_upload(r, st);
    genomes_.grow(P);
    cells_.grow(P * S);
    merged_.grow(P);
    QTOS_CUDA_CHECK(cudaMemcpyAsync(genomes_.data(), r.genomes.data(), P * sizeof(Genome), cudaMemcpyHostToDevice, st));
    const DeviceView v{market_.o.data(), market_.h.data(), market_.l.data(), market_.c.data(), market_.f.data(),
                       p.stride, r.features->plane_size, p.n_symbols};
    const dim3 tiles = grid_x((P + kThreads - 1) / kThreads, "backtest_kernel");
    for (std::size_t s0 = 0; s0 < S; s0 += kGridMaxY) {
      const dim3 grid(tiles.x, static_cast<unsigned>(std::min<std::size_t>(kGridMaxY, S - s0)));
      launch("backtest_kernel", backtest_kernel, grid, dim3(kThreads), 0, st, v, genomes_.data(),
             static_cast<std::int32_t>(P), r.costs, r.features->gaps, r.t_begin, r.t_end, static_cast<std::int32_t>(s0), cells_.data());
    }
    launch("merge_kernel", merge_kernel, grid_x((P + 127) / 128, "merge_kernel"), dim3(128), 0, st, cells_.data(),
           static_cast<std::int32_t>(P), static_cast<std::int32_t>(S), merged_.data());
    out.genome.resize(P);
    QTOS_CUDA_CHECK(cudaMemcpyAsync(out.genome.data(), merged_.data(), P * sizeof(BacktestAccum), cudaMemcpyDeviceToHost, st));
    if (r.per_symbol) {
      out.genome_symbol.resize(P * S);
      QTOS_CUDA_CHECK(cudaMemcpyAsync(out.genome_symbol.data(), cells_.data(), P * S * sizeof(BacktestAccum),
                                      cudaMemcpyDeviceToHost, st));
    }
    stream_->synchronize();  // the host needs the accumulators
  }

 private:
  /// The market on the device: four price columns and the feature bank, each with the identity of its copy.
  struct Market {
    std::uint64_t panel_id = 0;     // PanelView::id of the prices; 0: nothing reusable
    const float* host[4] = {};      // their host columns (the same panel may be viewed in slices)
    std::size_t n = 0;              // floats per column
    std::uint64_t features_id = 0;  // StrategyFeatures::id of the bank; 0: nothing reusable
    std::size_t n_features = 0;
    DeviceBuffer<float> o, h, l, c, f;  // grow-only
  };

  /// Copies the request's market to the device unless it is already there: a genetic search runs every generation
  /// on the same panel and feature bank, so only the genomes travel. Prices are keyed by the panel's id, the bank by
  /// its own; an id of 0 (a view or bank built by hand) is copied every time.
  void market_upload(const BacktestRequest& r, cudaStream_t st) const {
    const auto& p = r.panel;
    const std::size_t n = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
    const float* host[4] = {p.open, p.high, p.low, p.close};
    if (!(p.id != 0 && market_.panel_id == p.id && market_.n == n && std::equal(host, host + 4, market_.host))) {
      market_.panel_id = 0;
      DeviceBuffer<float>* dev[4] = {&market_.o, &market_.h, &market_.l, &market_.c};
      for (int k = 0; k < 4; ++k) {
        dev[k]->grow(n);
        QTOS_CUDA_CHECK(cudaMemcpyAsync(dev[k]->data(), host[k], n * sizeof(float), cudaMemcpyHostToDevice, st));
      }
      std::copy(host, host + 4, market_.host);
      market_.n = n;
      market_.panel_id = p.id;
    }
    const StrategyFeatures& bank = *r.features;
    if (!(bank.id != 0 && market_.features_id == bank.id && market_.n_features == bank.f32.size())) {
      market_.features_id = 0;
      market_.f.grow(bank.f32.size());
      QTOS_CUDA_CHECK(cudaMemcpyAsync(market_.f.data(), bank.f32.data(), bank.f32.size() * sizeof(float),
                                      cudaMemcpyHostToDevice, st));
      market_.n_features = bank.f32.size();
      market_.features_id = bank.id;
    }
  }

  mutable std::mutex mutex_;
  mutable std::optional<Stream> stream_;  // created on first use: constructing the backend must work without a device
  mutable Market market_;
  mutable DeviceBuffer<Genome> genomes_;  // per-run buffers: grow-only, reused across generations
  mutable DeviceBuffer<BacktestAccum> cells_, merged_;
};

}  // namespace

std::unique_ptr<BacktestBackend> backtest_backend_make() { return std::make_unique<BacktestCuda>(); }

}  // namespace qtos::cuda
