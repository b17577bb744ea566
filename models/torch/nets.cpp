// The LibTorch networks of the backend module: building, inference, weights on disk.
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "models/torch/nets.hpp"
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

TorchNetwork::TorchNetwork(std::shared_ptr<NetBase> net, torch::Device device) : net_(std::move(net)), device_(device) {
  QTOS_ASSERT(net_ != nullptr, "TorchNetwork needs a network");
  net_->eval();
}

void TorchNetwork::infer(const float* inputs, std::int64_t n, std::int32_t window, std::int32_t n_features, float* out) const {
  auto y = net_infer(*net_, device_, inputs, n, window, n_features).contiguous();
  std::memcpy(out, y.data_ptr<float>(), static_cast<std::size_t>(n) * 2 * sizeof(float));
}

// In memory, never to a file: LibTorch's file writer throws from its destructor when the disk fills, which ends the
// process (std::terminate) instead of reporting; atomic_write reports a full disk and keeps the previous file.
std::string TorchNetwork::serialize() const {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive ar;
    net_->save(ar);
    ar.save_to(bytes);
  } catch (const c10::Error& e) {
    throw WriteError(std::string("cannot serialise the network's weights: ") + e.what_without_backtrace());
  }
  return std::move(bytes).str();
}

std::shared_ptr<const Network> TorchNetwork::load(const ModelMeta& m, const std::string& weights) {
  auto net = net_create(m.kind, m.hyper, m.spec.n_features(), input_window(m.kind, m.spec));
  try {
    torch::serialize::InputArchive ar;
    ar.load_from(weights);
    net->load(ar);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load weights '" + weights + "': " + e.what_without_backtrace());
  }
  return std::make_shared<TorchNetwork>(std::move(net), torch::Device(torch::kCPU));
}

}  // namespace detail
}  // namespace qtos::models
