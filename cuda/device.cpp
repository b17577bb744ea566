// The CUDA device query: host code only, so plain C++ against the CUDA runtime API.
#include <cuda_runtime_api.h>

#include "cpu/registry/accelerator.hpp"

namespace qtos::cuda {
namespace {

DeviceReport devices_ask() {
  DeviceReport r;
  r.cuda_compiled = true;
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    r.cuda_error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the error so later calls start clean
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
    r.global_mem_bytes = prop.totalGlobalMem;
  }
  if (cudaDeviceGetAttribute(&r.sm_clock_khz, cudaDevAttrClockRate, 0) != cudaSuccess) r.sm_clock_khz = 0;
  return r;
}

}  // namespace

const DeviceReport& devices_query() {
  static const DeviceReport report = devices_ask();
  return report;
}

}  // namespace qtos::cuda
