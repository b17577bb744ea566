#pragma once
/// @file What the LibTorch this binary was built with offers; the rest of the system sees no torch types.

#include <string>

namespace qtos::models {

/// Facts about the linked LibTorch.
struct TorchInfo {
  std::string version;       ///< e.g. "1.13.1"
  bool cuda_available = false;  ///< LibTorch was built with CUDA and sees a device
  int cuda_devices = 0;      ///< devices LibTorch sees
  int intra_op_threads = 0;  ///< CPU threads LibTorch uses for one operator
};

/// Queries LibTorch (cheap; no model is loaded).
TorchInfo torch_info();

/// Sets LibTorch's intra-op CPU threads (benchmarks pin it to match their peer); throws std::invalid_argument when
/// `n` < 1.
void torch_threads_set(int n);

}  // namespace qtos::models
