// CUDA population backtest: one block per (genome tile, symbol), one genome per thread, the symbol's bars and
// feature planes staged in shared memory a chunk at a time, the step function of cpu/kernels/strategy.hpp.
#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"
#include "cuda/check.cuh"
#include "cuda/cuda_backends.hpp"

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

static __global__ void backtest_kernel(DeviceView v, const Genome* genomes, std::int32_t n_genomes, kernels::BacktestCosts costs,
                                       std::int32_t t_begin, std::int32_t t_end, BacktestAccum* out) {
  __shared__ float smem[kPlanes * kChunk];
  const std::int32_t s = static_cast<std::int32_t>(blockIdx.y);
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
  // Fills on bar t pay the slippage of bar t-1's spread proxy (kernels::fill_slippage).
  float prev_spread = t_begin > 0 ? v.feats[spread_plane + row + t_begin - 1] : kernels::qnan<float>();
  for (std::int32_t t0 = t_begin; t0 < t_end; t0 += kChunk) {
    const std::int32_t n = min(kChunk, t_end - t0);
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
        const std::uint32_t sig = kernels::signals_run<float>(prog, cl, f);
        st.step(genome, costs, t, smem[k], smem[kChunk + k], smem[2 * kChunk + k], cl, static_cast<std::int32_t>(sig),
                f(static_cast<std::int32_t>(kernels::StrategyFeature::atr)), kernels::fill_slippage<float>(costs, prev_spread),
                t == t_end - 1, sink);
        prev_spread = f(static_cast<std::int32_t>(kernels::StrategyFeature::spread));
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
  bool available() const override { return device_report().cuda_devices > 0; }

 protected:
  void run_checked(const BacktestRequest& r, BacktestResult& out) const override {
    const std::lock_guard<std::mutex> lock(mutex_);  // one run at a time on the backend's stream and buffers
    if (!stream_) stream_.emplace();
    const cudaStream_t st = stream_->get();
    const auto& p = r.panel;
    const std::size_t P = r.genomes.size(), S = static_cast<std::size_t>(p.n_symbols);
    const Resident& m = resident(r, st);
    DeviceBuffer<Genome> gs(P);
    DeviceBuffer<BacktestAccum> cells(P * S), merged(P);
    QTOS_CUDA_CHECK(cudaMemcpyAsync(gs.data(), r.genomes.data(), P * sizeof(Genome), cudaMemcpyHostToDevice, st));
    const DeviceView v{m.o.data(), m.h.data(), m.l.data(), m.c.data(), m.f.data(), p.stride, r.features->plane_size, p.n_symbols};
    const dim3 grid(static_cast<unsigned>((P + kThreads - 1) / kThreads), static_cast<unsigned>(S));
    backtest_kernel<<<grid, kThreads, 0, st>>>(v, gs.data(), static_cast<std::int32_t>(P), r.costs, r.t_begin, r.t_end, cells.data());
    QTOS_CUDA_CHECK(cudaGetLastError());
    merge_kernel<<<static_cast<unsigned>((P + 127) / 128), 128, 0, st>>>(cells.data(), static_cast<std::int32_t>(P),
                                                                          static_cast<std::int32_t>(S), merged.data());
    QTOS_CUDA_CHECK(cudaGetLastError());
    out.genome.resize(P);
    QTOS_CUDA_CHECK(cudaMemcpyAsync(out.genome.data(), merged.data(), P * sizeof(BacktestAccum), cudaMemcpyDeviceToHost, st));
    if (r.per_symbol) {
      out.genome_symbol.resize(P * S);
      QTOS_CUDA_CHECK(cudaMemcpyAsync(out.genome_symbol.data(), cells.data(), P * S * sizeof(BacktestAccum),
                                      cudaMemcpyDeviceToHost, st));
    }
    stream_->synchronize();  // the host needs the accumulators
  }

 private:
  /// The market on the device: four price columns and the feature bank.
  struct Resident {
    std::uint64_t features_id = 0;
    const float* host[4] = {};
    std::size_t n = 0, n_features = 0;
    DeviceBuffer<float> o, h, l, c, f;
  };

  /// The request's market on the device, uploaded only when it is not the one already there: a genetic search runs
  /// every generation on the same panel and feature bank, so only the genomes travel (a feature bank built by hand,
  /// id 0, is uploaded every time).
  const Resident& resident(const BacktestRequest& r, cudaStream_t st) const {
    const auto& p = r.panel;
    const std::size_t n = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
    const float* host[4] = {p.open, p.high, p.low, p.close};
    const bool same = resident_ && r.features->id != 0 && resident_->features_id == r.features->id && resident_->n == n &&
                      resident_->n_features == r.features->f32.size() && std::equal(host, host + 4, resident_->host);
    if (same) return *resident_;
    resident_.reset();  // free the old market before allocating the new one
    Resident m;
    m.features_id = r.features->id;
    std::copy(host, host + 4, m.host);
    m.n = n;
    m.n_features = r.features->f32.size();
    m.o = DeviceBuffer<float>(n);
    m.h = DeviceBuffer<float>(n);
    m.l = DeviceBuffer<float>(n);
    m.c = DeviceBuffer<float>(n);
    m.f = DeviceBuffer<float>(m.n_features);
    QTOS_CUDA_CHECK(cudaMemcpyAsync(m.o.data(), p.open, n * sizeof(float), cudaMemcpyHostToDevice, st));
    QTOS_CUDA_CHECK(cudaMemcpyAsync(m.h.data(), p.high, n * sizeof(float), cudaMemcpyHostToDevice, st));
    QTOS_CUDA_CHECK(cudaMemcpyAsync(m.l.data(), p.low, n * sizeof(float), cudaMemcpyHostToDevice, st));
    QTOS_CUDA_CHECK(cudaMemcpyAsync(m.c.data(), p.close, n * sizeof(float), cudaMemcpyHostToDevice, st));
    QTOS_CUDA_CHECK(cudaMemcpyAsync(m.f.data(), r.features->f32.data(), m.n_features * sizeof(float), cudaMemcpyHostToDevice, st));
    resident_.emplace(std::move(m));
    return *resident_;
  }

  mutable std::mutex mutex_;
  mutable std::optional<Stream> stream_;  // created on first use: constructing the backend must work without a device
  mutable std::optional<Resident> resident_;
};

}  // namespace

std::unique_ptr<BacktestBackend> backtest_backend_make() { return std::make_unique<BacktestCuda>(); }

}  // namespace qtos::cuda
