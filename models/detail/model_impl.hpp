#pragma once
/// @file Internal to models/: Model's state and the LibTorch backend's interface. Torch-free: the networks live in
/// the backend module (models/torch/, libqtos_torch.so), loaded on first use (models/torch_backend.cpp), so a qtos
/// command that never touches a model never loads LibTorch (about 0.5 s of start-up per process).

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "models/model.hpp"
#include "models/torch_info.hpp"

namespace qtos::models::detail {

/// A trained network, in eval mode, never mutated once built (renamed copies of a Model share it).
class Network {
 public:
  virtual ~Network() = default;
  /// Outputs [n][2] (return in units of scale, logit of a rise) for `n` inputs of [window][n_features] floats.
  virtual void infer(const float* inputs, std::int64_t n, std::int32_t window, std::int32_t n_features, float* out) const = 0;
  /// The weights as the bytes of a model.pt file (serialised in memory: the file is written by atomic_write).
  virtual std::string serialize() const = 0;
};

/// The feature states of the last panel predicted on, so that predicting the next bar advances them by one bar. A copy
/// starts empty (a mutex cannot be copied, and a renamed model may predict on another panel).
struct InferenceCarry {
  std::mutex mutex;    ///< held while `carry` is used; a caller that finds it held builds without it
  FeatureCarry carry;  ///< see features_build
  InferenceCarry() = default;
  InferenceCarry(const InferenceCarry&) {}
  InferenceCarry& operator=(const InferenceCarry&) { return *this; }
};

/// Bars the network of `kind` reads per sample.
inline std::int32_t input_window(ModelKind kind, const FeatureSpec& spec) { return kind == ModelKind::mlp ? 1 : spec.window; }

/// TrainBench's network, optimiser and batch, in the backend.
class TrainBenchStep {
 public:
  virtual ~TrainBenchStep() = default;
  virtual double step() = 0;
  virtual bool graphed() const = 0;
};

/// What the LibTorch backend module offers. Every call may throw what the documented public function throws.
class TorchBackend {
 public:
  virtual ~TorchBackend() = default;
  virtual TorchInfo info() const = 0;
  virtual void threads_set(int n) const = 0;
  /// A network for `meta` (kind, sizes, spec) with the weights of `weights_path` (std::runtime_error when unreadable).
  virtual std::shared_ptr<const Network> network_load(const ModelMeta& meta, const std::string& weights_path) const = 0;
  /// See model_train.
  virtual Result<std::unique_ptr<Model>> train(const FeatureTable& table, const TimeSplit& split, ModelKind kind, const ModelHyper& hyper,
                                               const TrainOptions& opts) const = 0;
  /// See TrainBench's constructor.
  virtual std::unique_ptr<TrainBenchStep> bench(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features, std::int32_t window,
                                                std::int32_t batch, std::uint64_t seed, DeviceKind device, bool cuda_graph) const = 0;
};

/// The backend, loaded on first use (thread-safe). Throws std::runtime_error naming every path tried and what the
/// loader said when libqtos_torch.so cannot be loaded; QTOS_TORCH_BACKEND names the module explicitly.
const TorchBackend& torch_backend();
/// The path torch_backend() loaded the module from.
const std::string& torch_backend_path();

/// The entry point the module exports (C linkage, the only symbol it exports): the backend when `abi` is the
/// module's own kTorchBackendAbi, nullptr otherwise (a module built from other sources: the version and a hash of
/// the headers whose types cross the boundary, models/CMakeLists.txt).
inline constexpr const char* kTorchBackendEntry = "qtos_torch_backend";
inline constexpr const char* kTorchBackendAbi = "qtos-torch-backend/" QTOS_VERSION "/" QTOS_TORCH_ABI;
using TorchBackendEntry = const TorchBackend* (*)(const char* abi);

}  // namespace qtos::models::detail

/// Model's state: metadata plus the network, and the inference carry (mutable, behind its own mutex).
struct qtos::models::Model::Impl {
  ModelMeta meta;
  std::shared_ptr<const detail::Network> net;
  mutable detail::InferenceCarry inference;
};
