#include "models/torch_info.hpp"

#include <stdexcept>
#include <string>

#include <torch/torch.h>
#include <torch/version.h>

namespace qtos::models {

TorchInfo torch_info() {
  TorchInfo info;
  info.version = TORCH_VERSION;
  info.cuda_available = torch::cuda::is_available();
  info.cuda_devices = static_cast<int>(torch::cuda::device_count());
  info.intra_op_threads = torch::get_num_threads();
  return info;
}

void torch_threads_set(int n) {
  if (n < 1) throw std::invalid_argument("torch_threads_set: " + std::to_string(n) + " threads (expected >= 1)");
  torch::set_num_threads(n);
}

}  // namespace qtos::models
