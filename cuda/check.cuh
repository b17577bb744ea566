#pragma once
/// @file Checked CUDA calls, the one kernel launcher, and RAII owners for device memory and streams.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

#include <cuda_runtime.h>

namespace qtos::cuda {

/// Throws std::runtime_error naming the call and CUDA's message when `err` is not cudaSuccess.
inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

#define QTOS_CUDA_CHECK(call) ::qtos::cuda::check((call), #call)

/// Largest grid dimensions every device since compute capability 3.0 accepts.
inline constexpr unsigned kGridMaxX = 2147483647u;
/// Largest gridDim.y (and gridDim.z).
inline constexpr unsigned kGridMaxY = 65535u;

/// A one-dimensional grid of `blocks` blocks; throws std::length_error naming `what` when it is over the limit.
inline dim3 grid_x(std::size_t blocks, const char* what) {
  if (blocks > kGridMaxX)
    throw std::length_error(std::string(what) + ": " + std::to_string(blocks) + " blocks is over the device limit (" +
                            std::to_string(kGridMaxX) + ")");
  return dim3(static_cast<unsigned>(blocks));
}

/// The one way a kernel is launched: an empty grid launches nothing, a grid over the hardware limits throws
/// std::length_error naming the kernel (callers tile larger work), and the launch error is checked.
template <class... Params, class... Args>
void launch(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
            cudaStream_t stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  if (grid.x > kGridMaxX || grid.y > kGridMaxY || grid.z > kGridMaxY)
    throw std::length_error(std::string(what) + ": grid " + std::to_string(grid.x) + " x " + std::to_string(grid.y) +
                            " x " + std::to_string(grid.z) + " is over the device limits (" +
                            std::to_string(kGridMaxX) + " x " + std::to_string(kGridMaxY) + " x " +
                            std::to_string(kGridMaxY) + ")");
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  check(cudaGetLastError(), what);
}

/// Owns device memory for `size()` elements. grow() reuses it across runs: it reallocates only when asked for more.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { grow(n); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(size_, o.size_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }
  /// Makes room for at least `n` elements; when it must reallocate, the old memory is freed first and the contents
  /// are not kept. (cudaFree waits for the device, so no queued work still reads the old memory.)
  void grow(std::size_t n) {
    if (n <= size_) return;
    release();
    QTOS_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
    size_ = n;
  }
  /// Device pointer (null when empty).
  T* data() const { return ptr_; }
  /// Element capacity.
  std::size_t size() const { return size_; }

 private:
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

/// Owns a non-blocking CUDA stream.
class Stream {
 public:
  Stream() { QTOS_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { cudaStreamDestroy(s_); }
  /// The raw handle.
  cudaStream_t get() const { return s_; }
  /// Blocks until work queued so far has finished; used only where a host value is needed.
  void synchronize() const { QTOS_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_{};
};

}  // namespace qtos::cuda
