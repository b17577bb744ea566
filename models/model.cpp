// Model: inference, save and load over the backend's network; the calls that need LibTorch go to the backend
// module (models/detail/model_impl.hpp), loaded on first use.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "models/detail/model_impl.hpp"
#include "runtime/util/atomic_file.hpp"

namespace qtos::models {

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { QTOS_ASSERT(impl_ && impl_->net, "Model needs a network"); }

Model::~Model() = default;

const ModelMeta& Model::meta() const { return impl_->meta; }

std::string Model::name() const {
  return impl_->meta.version > 0 ? impl_->meta.name + "@v" + std::to_string(impl_->meta.version) : impl_->meta.name;
}

std::int32_t Model::horizon() const { return impl_->meta.spec.horizon; }

std::int32_t Model::input_window() const { return detail::input_window(impl_->meta.kind, impl_->meta.spec); }

std::vector<float> Model::forward_inputs(std::span<const float> inputs, std::int64_t n) const {
  const auto nf = impl_->meta.spec.n_features();
  if (n < 0 || inputs.size() != static_cast<std::size_t>(n) * static_cast<std::size_t>(input_window()) * static_cast<std::size_t>(nf))
    throw std::invalid_argument("Model::forward_inputs: " + std::to_string(inputs.size()) + " floats for " + std::to_string(n) +
                                " samples of " + std::to_string(input_window()) + " x " + std::to_string(nf));
  std::vector<float> out(static_cast<std::size_t>(n) * 2);
  if (n == 0) return out;
  impl_->net->infer(inputs.data(), n, input_window(), nf, out.data());
  return out;
}

void Model::predict_samples(const FeatureTable& table, std::span<const SampleRef> samples, std::span<float> pred_return,
                            std::span<float> prob_up) const {
  const auto& m = impl_->meta;
  if (table.spec != m.spec)
    throw std::invalid_argument("Model::predict_samples: the table's feature spec differs from the model's: " +
                                table.spec.differences(m.spec));
  if (pred_return.size() != samples.size() || prob_up.size() != samples.size())
    throw std::invalid_argument("Model::predict_samples: output spans must have one element per sample");
  const std::int32_t w = input_window();
  std::vector<float> in(samples.size() * static_cast<std::size_t>(w) * static_cast<std::size_t>(table.n_features));
  windows_gather(table, m.normalizer, samples, w, in);
  const auto out = forward_inputs(in, static_cast<std::int64_t>(samples.size()));
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const float sc = table.scale[static_cast<std::size_t>(table.at(samples[i].s, samples[i].t))];
    pred_return[i] = out[2 * i] * sc;
    prob_up[i] = 1.0F / (1.0F + std::exp(-out[2 * i + 1]));
  }
}

Result<Predictions> Model::predict(const kernels::PanelView& panel, std::int32_t t) const {
  const auto& spec = impl_->meta.spec;
  if (t < 0 || t >= panel.n_bars)
    return Error{ErrorCode::bad_bar, "bar " + std::to_string(t) + " is outside the panel's " + std::to_string(panel.n_bars) + " bars"};
  const std::int32_t w = input_window();
  const std::int32_t need = spec.warmup() + w - 1;
  if (t < need)
    return Error{ErrorCode::not_enough_history, name() + " needs " + std::to_string(need) + " bars before the predicted bar; bar " +
                                           std::to_string(t) + " has " + std::to_string(t)};
  // Only the bars the network reads are built: a symbol needs complete features over its input window.
  // The indicator states run from bar 0; the carry keeps them between calls, so a live tick replays one bar per
  // symbol instead of the whole history. Concurrent callers that find the carry busy replay (same features).
  std::unique_lock lock(impl_->inference.mutex, std::try_to_lock);
  // The window counts present bars: across a closure it reaches further back than w bars.
  const auto table = features_build(panel, spec, features_window_first_bar(panel, t, t + 1, w), t + 1,
                                    lock.owns_lock() ? &impl_->inference.carry : nullptr);
  if (lock.owns_lock()) lock.unlock();
  const auto samples = samples_select(table, t, t + 1, false, w);
  Predictions p;
  p.bar = t;
  p.horizon = spec.horizon;
  const auto n = static_cast<std::size_t>(panel.n_symbols);
  p.expected_return.assign(n, std::numeric_limits<float>::quiet_NaN());
  p.prob_up.assign(n, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> r(samples.size()), u(samples.size());
  predict_samples(table, samples, r, u);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    p.expected_return[static_cast<std::size_t>(samples[i].s)] = r[i];
    p.prob_up[static_cast<std::size_t>(samples[i].s)] = u[i];
  }
  return p;
}

std::unique_ptr<Model> Model::renamed(const std::string& new_name, std::int32_t new_version) const {
  auto impl = std::make_unique<Impl>(*impl_);
  impl->meta.name = new_name;
  impl->meta.version = new_version;
  return std::make_unique<Model>(std::move(impl));
}

void Model::save(const std::string& dir) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create model directory '" + dir + "': " + ec.message());
  atomic_write(dir + "/model.pt", impl_->net->serialize());
  atomic_write(dir + "/meta.json", impl_->meta.to_json() + "\n");
}

std::unique_ptr<Model> Model::load(const std::string& dir, const FeatureSpec* expected) {
  const std::string weights = dir + "/model.pt", meta_path = dir + "/meta.json";
  std::ifstream f(meta_path, std::ios::binary);
  if (!f) throw std::runtime_error("model directory '" + dir + "' has no readable meta.json");
  std::stringstream text;
  text << f.rdbuf();
  auto impl = std::make_unique<Impl>();
  try {
    impl->meta = ModelMeta::from_json(text.str());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("'" + meta_path + "': " + e.what());
  }
  const auto& m = impl->meta;
  if (expected && *expected != m.spec)
    throw std::runtime_error("refusing to load model '" + dir + "': it was trained on a different feature spec (" +
                             m.spec.differences(*expected) + "; model's value first, current second)");
  impl->net = detail::torch_backend().network_load(m, weights);
  return std::make_unique<Model>(std::move(impl));
}

Result<std::unique_ptr<Model>> model_train(const FeatureTable& table, const TimeSplit& split, ModelKind kind, const ModelHyper& hyper,
                                           const TrainOptions& opts) {
  return detail::torch_backend().train(table, split, kind, hyper, opts);
}

struct TrainBench::Impl {
  std::unique_ptr<detail::TrainBenchStep> step;
};

TrainBench::TrainBench(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features, std::int32_t window, std::int32_t batch,
                       std::uint64_t seed, DeviceKind device, bool cuda_graph)
    : impl_(std::make_unique<Impl>(Impl{detail::torch_backend().bench(kind, hyper, n_features, window, batch, seed, device, cuda_graph)})) {}

TrainBench::~TrainBench() = default;

double TrainBench::step() { return impl_->step->step(); }

bool TrainBench::graphed() const { return impl_->step->graphed(); }

TorchInfo torch_info() {
  TorchInfo info = detail::torch_backend().info();
  info.module = detail::torch_backend_path();
  return info;
}

void torch_threads_set(int n) {
  if (n < 1) throw std::invalid_argument("torch_threads_set: " + std::to_string(n) + " threads (expected >= 1)");
  detail::torch_backend().threads_set(n);
}

}  // namespace qtos::models
