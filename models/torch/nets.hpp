#pragma once
/// @file The LibTorch backend module's networks (libqtos_torch.so; models/torch/ only). Included by the module's own
/// translation units, so that nothing else pays for <torch/torch.h>.

#include <memory>

#include <torch/torch.h>

#include "models/detail/model_impl.hpp"

namespace qtos::models::detail {

/// A return network: input [batch][bars][features] -> output [batch][2] = (return in units of scale, logit of a rise).
struct NetBase : torch::nn::Module {
  /// Runs the network.
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

/// Builds a freshly initialised network (initialisation draws from torch's global generator: seed it first).
std::shared_ptr<NetBase> net_create(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features,
                                    std::int32_t input_window);
/// The torch device for a DeviceKind; throws std::runtime_error when CUDA is asked for and LibTorch has none.
torch::Device device_resolve(DeviceKind kind);
/// Runs `net` in eval mode without gradients on `n` inputs in chunks; returns [n][2] on the CPU.
torch::Tensor net_infer(NetBase& net, const torch::Device& device, const float* inputs, std::int64_t n,
                        std::int32_t window, std::int32_t n_features);

/// A trained network as a Model holds it: switched to eval mode here, never trained again.
class TorchNetwork final : public Network {
 public:
  TorchNetwork(std::shared_ptr<NetBase> net, torch::Device device);
  void infer(const float* inputs, std::int64_t n, std::int32_t window, std::int32_t n_features, float* out) const override;
  std::string serialize() const override;
  /// A network for `meta` with the weights of `weights_path`, on the CPU.
  static std::shared_ptr<const Network> load(const ModelMeta& meta, const std::string& weights_path);

 private:
  std::shared_ptr<NetBase> net_;
  torch::Device device_;
};

}  // namespace qtos::models::detail
