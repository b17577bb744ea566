// The LibTorch backend module's entry point: the one symbol libqtos_torch.so exports (models/torch/exports.map).
#include <cstring>
#include <stdexcept>
#include <string>

#include <torch/torch.h>
#include <torch/version.h>

#include "models/torch/nets.hpp"

namespace qtos::models::detail {

Result<std::unique_ptr<Model>> torch_train(const FeatureTable& table, const TimeSplit& split, ModelKind kind, const ModelHyper& hyper,
                                           const TrainOptions& opts);
std::unique_ptr<TrainBenchStep> torch_train_bench(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features, std::int32_t window,
                                                  std::int32_t batch, std::uint64_t seed, DeviceKind device, bool cuda_graph);

namespace {

class LibTorchBackend final : public TorchBackend {
 public:
  TorchInfo info() const override {
    TorchInfo r;
    r.version = TORCH_VERSION;
    r.cuda_available = torch::cuda::is_available();
    r.cuda_devices = static_cast<int>(torch::cuda::device_count());
    r.intra_op_threads = torch::get_num_threads();
    return r;
  }
  void threads_set(int n) const override { torch::set_num_threads(n); }
  std::shared_ptr<const Network> network_load(const ModelMeta& meta, const std::string& weights_path) const override {
    return TorchNetwork::load(meta, weights_path);
  }
  Result<std::unique_ptr<Model>> train(const FeatureTable& table, const TimeSplit& split, ModelKind kind, const ModelHyper& hyper,
                                       const TrainOptions& opts) const override {
    return torch_train(table, split, kind, hyper, opts);
  }
  std::unique_ptr<TrainBenchStep> bench(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features, std::int32_t window,
                                        std::int32_t batch, std::uint64_t seed, DeviceKind device, bool cuda_graph) const override {
    return torch_train_bench(kind, hyper, n_features, window, batch, seed, device, cuda_graph);
  }
};

}  // namespace
}  // namespace qtos::models::detail

extern "C" __attribute__((visibility("default"))) const qtos::models::detail::TorchBackend* qtos_torch_backend(const char* abi) {
  static const qtos::models::detail::LibTorchBackend backend;
  if (abi == nullptr || std::strcmp(abi, qtos::models::detail::kTorchBackendAbi) != 0) return nullptr;
  return &backend;
}
