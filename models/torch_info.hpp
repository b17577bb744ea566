#pragma once
/// @file What the LibTorch backend module offers; the rest of the system sees no torch types.

#include <string>

namespace qtos::models {

/// Facts about the LibTorch of the backend module.
struct TorchInfo {
  std::string version;       ///< e.g. "1.13.1"
  std::string module;        ///< the module's path (libqtos_torch.so)
  bool cuda_available = false;  ///< LibTorch was built with CUDA and sees a device
  int cuda_devices = 0;      ///< devices LibTorch sees
  int intra_op_threads = 0;  ///< CPU threads LibTorch uses for one operator
};

/// Queries LibTorch, loading the backend module on the first call (no model is loaded). Throws std::runtime_error
/// naming the paths tried when the module cannot be loaded.
TorchInfo torch_info();

/// Sets LibTorch's intra-op CPU threads (benchmarks pin it to match their peer); throws std::invalid_argument when
/// `n` < 1.
void torch_threads_set(int n);

}  // namespace qtos::models
