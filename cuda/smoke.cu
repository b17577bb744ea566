// CUDA twin of the smoke computation and the device query; the math is cpu/kernels/smoke.hpp, shared verbatim.
#include <stdexcept>

#include "cpu/kernels/smoke.hpp"
#include "cuda/check.cuh"
#include "cuda/cuda_backends.hpp"

namespace qtos::cuda {
namespace {

__global__ static void log_returns_kernel(const float* close, float* out, std::size_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = kernels::log_return_at(close, i);
}

class SmokeCuda final : public SmokeBackend {
 public:
  std::string_view name() const override { return "cuda"; }
  bool available() const override { return device_report().cuda_devices > 0; }
  void log_returns(std::span<const float> close, std::span<float> out) const override {
    if (out.size() != close.size()) throw std::invalid_argument("log_returns: out.size() must equal close.size()");
    if (close.empty()) return;
    Stream stream;
    DeviceBuffer<float> d_in(close.size()), d_out(close.size());
    QTOS_CUDA_CHECK(cudaMemcpyAsync(d_in.data(), close.data(), close.size_bytes(), cudaMemcpyHostToDevice, stream.get()));
    const unsigned threads = 256;
    const auto blocks = static_cast<unsigned>((close.size() + threads - 1) / threads);
    log_returns_kernel<<<blocks, threads, 0, stream.get()>>>(d_in.data(), d_out.data(), close.size());
    QTOS_CUDA_CHECK(cudaGetLastError());
    QTOS_CUDA_CHECK(cudaMemcpyAsync(out.data(), d_out.data(), out.size_bytes(), cudaMemcpyDeviceToHost, stream.get()));
    stream.synchronize();
  }
};

}  // namespace

DeviceReport devices_query() {
  DeviceReport r;
  r.cuda_compiled = true;
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    r.cuda_error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return r;
  }
  r.cuda_devices = n;
  if (n == 0) {
    r.cuda_error = "no CUDA device present";
    return r;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    r.cuda_name = prop.name;
    r.sm_count = prop.multiProcessorCount;
    r.fp32_lanes_per_sm = prop.major > 8 || (prop.major == 8 && prop.minor >= 6) ? 128 : 64;
  }
  if (cudaDeviceGetAttribute(&r.sm_clock_khz, cudaDevAttrClockRate, 0) != cudaSuccess) r.sm_clock_khz = 0;
  return r;
}

std::unique_ptr<SmokeBackend> smoke_backend_make() { return std::make_unique<SmokeCuda>(); }

}  // namespace qtos::cuda
