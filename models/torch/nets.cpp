// The LibTorch networks, inference, and save/load of a Model.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "models/detail/nets.hpp"
#include "runtime/util/atomic_file.hpp"

namespace qtos::models {

namespace detail {

namespace {

/// Fully connected network on the last bar's features.
struct MlpNet : NetBase {
  MlpNet(const ModelHyper& h, std::int32_t n_features) {
    std::int64_t in = n_features;
    for (std::int32_t i = 0; i < h.layers; ++i) {
      body->push_back(torch::nn::Linear(in, h.hidden));
      body->push_back(torch::nn::GELU());
      in = h.hidden;
    }
    body->push_back(torch::nn::Linear(in, 2));
    register_module("body", body);
  }
  torch::Tensor forward(torch::Tensor x) override { return body->forward(x.select(1, x.size(1) - 1)); }
  torch::nn::Sequential body;
};

/// GRU over the window; the last hidden state feeds a linear head.
struct GruNet : NetBase {
  GruNet(const ModelHyper& h, std::int32_t n_features)
      : gru(torch::nn::GRUOptions(n_features, h.hidden).num_layers(h.layers).batch_first(true)), head(h.hidden, 2) {
    register_module("gru", gru);
    register_module("head", head);
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto out = std::get<0>(gru->forward(x));
    return head->forward(out.select(1, out.size(1) - 1));
  }
  torch::nn::GRU gru;
  torch::nn::Linear head;
};

/// Transformer encoder over patches of `patch` bars: linear patch embedding + learned positions, mean-pooled.
struct PatchTransformerNet : NetBase {
  PatchTransformerNet(const ModelHyper& h, std::int32_t n_features, std::int32_t window)
      : patch(h.patch),
        embed(static_cast<std::int64_t>(h.patch) * n_features, h.d_model),
        encoder(torch::nn::TransformerEncoderOptions(
            torch::nn::TransformerEncoderLayerOptions(h.d_model, h.heads).dim_feedforward(2 * h.d_model).dropout(0.0),
            h.layers)),
        head(h.d_model, 2) {
    register_module("embed", embed);
    pos = register_parameter("pos", torch::randn({window / h.patch, 1, h.d_model}) * 0.02);
    register_module("encoder", encoder);
    register_module("head", head);
  }
  torch::Tensor forward(torch::Tensor x) override {
    const auto b = x.size(0), l = x.size(1), f = x.size(2);
    auto tokens = embed->forward(x.reshape({b, l / patch, patch * f})).transpose(0, 1);  // [patches, batch, d]
    auto enc = encoder->forward(tokens + pos);
    return head->forward(enc.mean(0));
  }
  std::int64_t patch;
  torch::nn::Linear embed;
  torch::Tensor pos;
  torch::nn::TransformerEncoder encoder;
  torch::nn::Linear head;
};

}  // namespace

std::shared_ptr<NetBase> net_create(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features,
                                    std::int32_t window) {
  switch (kind) {
    case ModelKind::mlp: return std::make_shared<MlpNet>(hyper, n_features);
    case ModelKind::gru: return std::make_shared<GruNet>(hyper, n_features);
    case ModelKind::transformer: return std::make_shared<PatchTransformerNet>(hyper, n_features, window);
  }
  QTOS_ASSERT(false, "unhandled ModelKind");
  return nullptr;
}

std::int32_t input_window(ModelKind kind, const FeatureSpec& spec) { return kind == ModelKind::mlp ? 1 : spec.window; }

torch::Device device_resolve(DeviceKind kind) {
  const bool cuda = torch::cuda::is_available();
  if (kind == DeviceKind::cuda && !cuda)
    throw std::runtime_error("--device cuda: LibTorch sees no CUDA device (this LibTorch " TORCH_VERSION
                             " is a CPU build or no GPU is present); use --device cpu or auto");
  return (kind == DeviceKind::cuda || (kind == DeviceKind::auto_select && cuda)) ? torch::Device(torch::kCUDA)
                                                                                  : torch::Device(torch::kCPU);
}

torch::Tensor net_infer(NetBase& net, const torch::Device& device, const float* inputs, std::int64_t n,
                        std::int32_t window, std::int32_t n_features) {
  torch::NoGradGuard no_grad;
  // from_blob does not copy; the caller's buffer outlives this call and is only read.
  auto x = torch::from_blob(const_cast<float*>(inputs), {n, window, n_features}, torch::kFloat32);
  constexpr std::int64_t kChunk = 8192;
  if (n <= kChunk) return net.forward(x.to(device)).to(torch::kCPU);
  std::vector<torch::Tensor> parts;
  for (std::int64_t i = 0; i < n; i += kChunk) parts.push_back(net.forward(x.slice(0, i, std::min(n, i + kChunk)).to(device)).to(torch::kCPU));
  return torch::cat(parts, 0);
}

}  // namespace detail

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  QTOS_ASSERT(impl_ && impl_->net, "Model needs a network");
  impl_->net->eval();
}

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
  auto y = detail::net_infer(*impl_->net, impl_->device, inputs.data(), n, input_window(), nf).contiguous();
  std::memcpy(out.data(), y.data_ptr<float>(), out.size() * sizeof(float));
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
  const std::string weights = dir + "/model.pt", meta_path = dir + "/meta.json";
  const std::string tmp = atomic_temp_name(weights);
  try {
    torch::serialize::OutputArchive ar;
    impl_->net->save(ar);
    ar.save_to(tmp);
  } catch (const c10::Error& e) {
    fs::remove(tmp, ec);
    throw WriteError("cannot write '" + weights + "': " + e.what_without_backtrace());
  }
  atomic_commit(tmp, weights);
  atomic_write(meta_path, impl_->meta.to_json() + "\n");
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
  impl->net = detail::net_create(m.kind, m.hyper, m.spec.n_features(), detail::input_window(m.kind, m.spec));
  try {
    torch::serialize::InputArchive ar;
    ar.load_from(weights);
    impl->net->load(ar);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load weights '" + weights + "': " + e.what_without_backtrace());
  }
  return std::make_unique<Model>(std::move(impl));
}

}  // namespace qtos::models
