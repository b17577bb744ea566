#pragma once
/// @file Internal to models/: the LibTorch networks and Model's state. Included only by models/nets.cpp and
/// models/trainer.cpp, so that no other translation unit pays for <torch/torch.h>.

#include <memory>
#include <mutex>

#include <torch/torch.h>

#include "models/model.hpp"

namespace qtos::models::detail {

/// A return network: input [batch][bars][features] -> output [batch][2] = (return in units of scale, logit of a rise).
struct NetBase : torch::nn::Module {
  /// Runs the network.
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

/// Builds a freshly initialised network (initialisation draws from torch's global generator: seed it first).
std::shared_ptr<NetBase> net_create(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features,
                                    std::int32_t input_window);
/// Bars the network of `kind` reads per sample.
std::int32_t input_window(ModelKind kind, const FeatureSpec& spec);
/// The torch device for a DeviceKind; throws std::runtime_error when CUDA is asked for and LibTorch has none.
torch::Device device_resolve(DeviceKind kind);
/// Runs `net` in eval mode without gradients on `n` inputs in chunks; returns [n][2] on the CPU.
torch::Tensor net_infer(NetBase& net, const torch::Device& device, const float* inputs, std::int64_t n,
                        std::int32_t window, std::int32_t n_features);

}  // namespace qtos::models::detail

namespace qtos::models::detail {
/// The feature states of the last panel predicted on, so that predicting the next bar advances them by one bar. A copy
/// starts empty (a mutex cannot be copied, and a renamed model may predict on another panel).
struct InferenceCarry {
  std::mutex mutex;    ///< held while `carry` is used; a caller that finds it held builds without it
  FeatureCarry carry;  ///< see features_build
  InferenceCarry() = default;
  InferenceCarry(const InferenceCarry&) {}
  InferenceCarry& operator=(const InferenceCarry&) { return *this; }
};
}  // namespace qtos::models::detail

/// Model's state: metadata plus the network (shared between renamed copies; never mutated after construction), and
/// the inference carry (mutable, behind its own mutex).
struct qtos::models::Model::Impl {
  ModelMeta meta;
  std::shared_ptr<detail::NetBase> net;
  torch::Device device{torch::kCPU};
  mutable detail::InferenceCarry inference;
};
