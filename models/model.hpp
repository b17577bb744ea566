#pragma once
/// @file Trained return models (MLP, GRU, patch transformer) behind a torch-free interface: training, prediction,
/// save/load with JSON metadata. LibTorch stays inside the backend module models/torch/ (libqtos_torch.so), loaded
/// on first use.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/backend/device.hpp"
#include "cpu/util/enum_names.hpp"
#include "models/evaluation.hpp"
#include "models/features.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/predict/predictor.hpp"
#include "runtime/util/result.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos::models {

/// The network architectures.
enum class ModelKind { mlp, gru, transformer };
QTOS_ENUM_NAMES(ModelKind, "mlp", "gru", "transformer");
/// "mlp", "gru" or "transformer".
std::string_view model_kind_name(ModelKind kind);
/// Parses a model name; throws std::invalid_argument naming `what`, the value and the allowed names.
ModelKind model_kind_parse(std::string_view text, std::string_view what = "--model");

/// Architecture sizes. `hidden`/`layers` size the MLP and GRU; `d_model`/`heads`/`layers`/`patch` the transformer.
struct ModelHyper {
  std::int32_t hidden = 32;   ///< MLP and GRU width
  std::int32_t layers = 1;    ///< hidden layers (MLP), stacked GRU layers, or encoder layers
  std::int32_t d_model = 32;  ///< transformer embedding width
  std::int32_t heads = 4;     ///< transformer attention heads (must divide d_model)
  std::int32_t patch = 4;     ///< bars per transformer patch (must divide the feature window)
  /// Throws std::invalid_argument naming the field when the sizes do not fit `kind` and `spec`.
  void validate(ModelKind kind, const FeatureSpec& spec) const;
};

/// One epoch's figures, for a progress line.
struct EpochReport {
  std::int32_t epoch = 0;   ///< 1-based
  std::int32_t epochs = 0;  ///< the maximum
  double train_loss = 0.0, val_loss = 0.0;  ///< mean loss (MSE + BCE) on the two periods
  double val_accuracy = 0.0;  ///< directional accuracy on validation
  double samples_per_s = 0.0;  ///< training throughput of the epoch
  double lr = 0.0;             ///< learning rate of the epoch
  bool improved = false;  ///< validation loss improved (this epoch's weights are kept so far)
};

/// How to train.
struct TrainOptions {
  std::int32_t epochs = 20;       ///< maximum epochs
  std::int32_t batch_size = 256;  ///< mini-batch size
  double lr = 2e-3;            ///< peak learning rate; cosine decay to lr * lr_final_factor over `epochs`
  double lr_final_factor = 0.1;  ///< the last epoch's learning rate is lr * this
  double weight_decay = 1e-4;  ///< AdamW decoupled weight decay
  double clip_norm = 1.0;      ///< gradient-norm clip
  std::int32_t patience = 4;   ///< epochs without validation improvement before stopping
  std::uint64_t seed = 42;              ///< seeds initialisation and shuffling
  DeviceKind device = DeviceKind::cpu;  ///< auto, cpu or cuda
  bool cuda_graph = true;  ///< on CUDA, replay forward+backward from a captured CUDA graph (full batches only)
  std::int64_t t0_ms = 0;                ///< open time of panel bar 0 (recorded as the training window)
  std::int64_t interval_ms = 3'600'000;  ///< bar length (annualises the Sharpe)
  std::function<void(const EpochReport&)> on_epoch;  ///< called after every epoch
  std::function<bool()> cancelled;                   ///< polled between mini-batches; true stops training
  StopToken stop;  ///< polled between mini-batches and epochs (SIGINT/SIGTERM): training ends, nothing is returned
  const Clock* clock = nullptr;  ///< stamps the model's created_ms (not owned); nullptr: the live clock
};

/// Everything recorded next to the weights (meta.json).
struct ModelMeta {
  std::string name;          ///< registry name (defaults to the kind)
  std::int32_t version = 0;  ///< registry version, 0 before registration
  ModelKind kind = ModelKind::mlp;  ///< architecture
  ModelHyper hyper;                 ///< sizes
  FeatureSpec spec;                 ///< the features it was trained on (checked at load)
  Normalizer normalizer;            ///< fitted on its training samples
  TimeSplit split;                        ///< bars of the train/validation/test periods
  std::int64_t train_from_ms = 0, train_to_ms = 0, test_to_ms = 0;  ///< the same periods in time
  Metrics val, test, baseline_test;       ///< baseline: the training mean return as a constant prediction
  std::int32_t epochs_run = 0, best_epoch = 0;  ///< early stopping: epochs trained, epoch whose weights were kept
  std::uint64_t seed = 0;                       ///< the training seed
  std::string device;                     ///< where it was trained: "cpu", "cuda" or "cuda+graph"
  std::string torch_version, qtos_version;  ///< library versions at training
  std::int64_t created_ms = 0;              ///< when it was trained (Unix ms)
  /// The whole record as JSON text.
  std::string to_json() const;
  /// Parses to_json()'s output; throws std::invalid_argument naming the missing or bad field.
  static ModelMeta from_json(const std::string& text);
};

/// A trained network and its metadata. Immutable after construction; predict() is safe from several threads.
class Model final : public Predictor {
 public:
  struct Impl;
  /// Built by model_train() and Model::load().
  explicit Model(std::unique_ptr<Impl> impl);
  ~Model() override;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  /// The metadata.
  const ModelMeta& meta() const;
  /// "<name>" or "<name>@v<version>" once registered.
  std::string name() const override;
  /// The target horizon H.
  std::int32_t horizon() const override;
  /// Predictions for all symbols at bar t from features of bars <= t.
  Result<Predictions> predict(const kernels::PanelView& panel, std::int32_t t) const override;
  /// Predicted H-bar log return and probability of a rise for `samples` of a raw (unnormalised) table.
  void predict_samples(const FeatureTable& table, std::span<const SampleRef> samples, std::span<float> pred_return,
                       std::span<float> prob_up) const;
  /// Raw network outputs (scaled return, logit) for `n` normalised inputs of [input_window()][n_features] floats.
  std::vector<float> forward_inputs(std::span<const float> inputs, std::int64_t n) const;
  /// Bars of features the network reads per sample (1 for the MLP, the spec's window otherwise).
  std::int32_t input_window() const;
  /// Copy with another registry name and version (weights shared, not copied).
  std::unique_ptr<Model> renamed(const std::string& name, std::int32_t version) const;

  /// Writes DIR/model.pt (torch::save) and DIR/meta.json; creates DIR. Throws std::runtime_error naming a file it
  /// cannot write.
  void save(const std::string& dir) const;
  /// Loads a saved model. When `expected` is given and the model's feature spec differs, throws std::runtime_error
  /// naming DIR and every differing field; also throws naming DIR when files are missing or corrupt.
  static std::unique_ptr<Model> load(const std::string& dir, const FeatureSpec* expected = nullptr);

 private:
  std::unique_ptr<Impl> impl_;
};

/// Trains `kind` on the training period of `table` (raw features), early-stops on validation loss, keeps the best
/// epoch's weights and evaluates on the test period. Throws std::invalid_argument on bad options or a period with
/// no samples; returns an Error {"cancelled"} when `opts.cancelled` asked to stop, and an Error {"stopped"} (naming the
/// epoch reached and the best epoch so far) when `opts.stop` was requested: a stopped training yields no model.
Result<std::unique_ptr<Model>> model_train(const FeatureTable& table, const TimeSplit& split, ModelKind kind,
                                           const ModelHyper& hyper, const TrainOptions& opts);

/// Repeats one optimiser step on a fixed random batch: the training-throughput benchmark (same as the Python peer).
class TrainBench {
 public:
  /// A network of `kind` on inputs [batch][window][n_features] (the MLP reads the last bar), AdamW, clipping, on
  /// `device`; `cuda_graph` captures forward+backward (CUDA only: std::invalid_argument otherwise). Throws
  /// std::runtime_error when CUDA is asked for and LibTorch has none.
  TrainBench(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features, std::int32_t window, std::int32_t batch,
             std::uint64_t seed, DeviceKind device = DeviceKind::cpu, bool cuda_graph = false);
  ~TrainBench();
  TrainBench(const TrainBench&) = delete;
  TrainBench& operator=(const TrainBench&) = delete;
  /// One forward, backward, clip and AdamW step; returns the loss.
  double step();
  /// True when the step replays a captured CUDA graph.
  bool graphed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qtos::models
