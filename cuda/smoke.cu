// CUDA twin of the smoke computation; the math is cpu/kernels/smoke.hpp, shared verbatim.
#include <mutex>
#include <optional>
#include <stdexcept>

#include "cpu/kernels/smoke.hpp"
#include "cuda/check.cuh"
#include "cpu/registry/accelerator.hpp"

namespace qtos::cuda {
namespace {

__global__ static void log_returns_kernel(const float* close, float* out, std::size_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = kernels::log_return_at(close, i);
}

class SmokeCuda final : public SmokeBackend {
 public:
  std::string_view name() const override { return "cuda"; }
  bool available() const override { return devices_query().cuda_devices > 0; }
  /// Declines a series whose input and output would not fit in the device's memory.
  bool supports(std::span<const float> close) const override {
    return 2 * close.size_bytes() <= devices_query().global_mem_bytes;
  }
  void log_returns(std::span<const float> close, std::span<float> out) const override {
    if (out.size() != close.size()) throw std::invalid_argument("log_returns: out.size() must equal close.size()");
    if (close.empty()) return;
    const std::lock_guard<std::mutex> lock(mutex_);  // one call at a time on the backend's stream and buffers
    if (!stream_) stream_.emplace();
    const cudaStream_t st = stream_->get();
    in_.grow(close.size());
    out_.grow(close.size());
    QTOS_CUDA_CHECK(cudaMemcpyAsync(in_.data(), close.data(), close.size_bytes(), cudaMemcpyHostToDevice, st));
    const unsigned threads = 256;
    launch("log_returns_kernel", log_returns_kernel, grid_x((close.size() + threads - 1) / threads, "log_returns_kernel"),
           dim3(threads), 0, st, in_.data(), out_.data(), close.size());
    QTOS_CUDA_CHECK(cudaMemcpyAsync(out.data(), out_.data(), out.size_bytes(), cudaMemcpyDeviceToHost, st));
    stream_->synchronize();  // the host needs the result
  }

 private:
  mutable std::mutex mutex_;
  mutable std::optional<Stream> stream_;  // created on first use: constructing the backend must work without a device
  mutable DeviceBuffer<float> in_, out_;  // grow-only, reused across calls
};

}  // namespace

std::unique_ptr<SmokeBackend> smoke_backend_make() { return std::make_unique<SmokeCuda>(); }

}  // namespace qtos::cuda
