// The backend module's training loop (AdamW, cosine LR, clipping, early stopping) and the training-throughput bench
// step.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <torch/version.h>

#include "models/torch/nets.hpp"

#ifdef QTOS_TORCH_CUDA  // a CUDA LibTorch (defined by models/CMakeLists.txt); the CPU build never sees these headers
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#ifndef QTOS_VERSION
#define QTOS_VERSION "unknown"
#endif

namespace qtos::models {

namespace {

/// Inputs and targets of one period, gathered once (pinned when training on CUDA).
struct PeriodTensors {
  std::vector<SampleRef> samples;
  torch::Tensor x;      // [n][window][features]
  torch::Tensor y_ret;  // [n] forward return / scale, clipped
  torch::Tensor y_up;   // [n] 1 when the forward return is positive
};

PeriodTensors period_gather(const FeatureTable& tab, const Normalizer& norm, std::vector<SampleRef> samples,
                            std::int32_t window, bool pin) {
  PeriodTensors p;
  p.samples = std::move(samples);
  const auto n = static_cast<std::int64_t>(p.samples.size());
  p.x = torch::empty({n, window, tab.n_features}, torch::kFloat32);
  windows_gather(tab, norm, p.samples, window,
                 std::span<float>(p.x.data_ptr<float>(), static_cast<std::size_t>(p.x.numel())));
  p.y_ret = torch::empty({n}, torch::kFloat32);
  p.y_up = torch::empty({n}, torch::kFloat32);
  auto* yr = p.y_ret.data_ptr<float>();
  auto* yu = p.y_up.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(tab.at(p.samples[static_cast<std::size_t>(i)].s, p.samples[static_cast<std::size_t>(i)].t));
    yr[i] = std::clamp(tab.forward[k] / tab.scale[k], -5.0F, 5.0F);
    yu[i] = tab.forward[k] > 0.0F ? 1.0F : 0.0F;
  }
  if (pin) {
    p.x = p.x.pin_memory();
    p.y_ret = p.y_ret.pin_memory();
    p.y_up = p.y_up.pin_memory();
  }
  return p;
}

torch::Tensor loss_of(const torch::Tensor& out, const torch::Tensor& y_ret, const torch::Tensor& y_up) {
  return torch::mse_loss(out.select(1, 0), y_ret) + torch::binary_cross_entropy_with_logits(out.select(1, 1), y_up);
}

/// One optimiser step: forward and backward (replayed from a CUDA graph when one was captured), then gradient
/// clipping and AdamW eagerly. C++ AdamW keeps its step count on the host, so the optimiser step itself cannot be
/// captured; forward and backward are the bulk of the kernels.
class StepRunner {
 public:
  StepRunner(detail::NetBase& net, torch::optim::AdamW& opt, double clip_norm) : net_(net), opt_(opt), clip_(clip_norm) {}
  StepRunner(const StepRunner&) = delete;
  StepRunner& operator=(const StepRunner&) = delete;

  /// Tries to capture forward+backward for batches of `batch` rows of [window][n_features] on `dev` (CUDA only;
  /// a CPU device or a CPU LibTorch returns false). On failure training goes on eagerly.
  bool capture(const torch::Device& dev, std::int64_t batch, std::int64_t window, std::int64_t n_features) {
#ifdef QTOS_TORCH_CUDA
    if (!dev.is_cuda()) return false;
    try {
      const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
      sx_ = torch::zeros({batch, window, n_features}, f32);
      syr_ = torch::zeros({batch}, f32);
      syu_ = torch::zeros({batch}, f32);
      auto side = c10::cuda::getStreamFromPool();
      auto main = c10::cuda::getCurrentCUDAStream();
      at::cuda::CUDAEvent ready;
      ready.record(main);
      ready.block(side);
      {
        c10::cuda::CUDAStreamGuard on_side(side);
        for (int i = 0; i < 3; ++i) {  // cuBLAS/cuDNN handles and workspaces are created here, outside the capture
          opt_.zero_grad();
          loss_of(net_.forward(sx_), syr_, syu_).backward();
        }
        // With no gradient tensors, backward allocates them in the graph's private pool: static addresses that every
        // replay overwrites and that clipping and AdamW then read. The warm-up took no optimiser step.
        for (auto& p : net_.parameters()) p.mutable_grad() = torch::Tensor();
        graph_ = std::make_unique<at::cuda::CUDAGraph>();
        graph_->capture_begin();
        sloss_ = loss_of(net_.forward(sx_), syr_, syu_);
        sloss_.backward();
        graph_->capture_end();
      }
      at::cuda::CUDAEvent captured;
      captured.record(side);
      captured.block(main);
      return true;
    } catch (const c10::Error& e) {
      graph_.reset();
      for (auto& p : net_.parameters()) p.mutable_grad() = torch::Tensor();
      spdlog::warn("CUDA-graph capture of the train step failed, training eagerly: {}", e.what_without_backtrace());
      return false;
    }
#else
    (void)dev, (void)batch, (void)window, (void)n_features;
    return false;
#endif
  }

  /// True when steps replay a captured graph (only batches of the captured size may then be stepped).
  bool graphed() const {
#ifdef QTOS_TORCH_CUDA
    return graph_ != nullptr;
#else
    return false;
#endif
  }

  /// One step on a batch already on the training device; returns the loss.
  double step(const torch::Tensor& xb, const torch::Tensor& yr, const torch::Tensor& yu) {
#ifdef QTOS_TORCH_CUDA
    if (graph_) {
      QTOS_ASSERT(xb.size(0) == sx_.size(0), "a graphed train step needs the captured batch size");
      sx_.copy_(xb, true);
      syr_.copy_(yr, true);
      syu_.copy_(yu, true);
      graph_->replay();
      torch::nn::utils::clip_grad_norm_(net_.parameters(), clip_);
      opt_.step();
      return sloss_.item<double>();
    }
#endif
    opt_.zero_grad();
    auto loss = loss_of(net_.forward(xb), yr, yu);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net_.parameters(), clip_);
    opt_.step();
    return loss.item<double>();
  }

 private:
  detail::NetBase& net_;
  torch::optim::AdamW& opt_;
  double clip_;
#ifdef QTOS_TORCH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph_;
  torch::Tensor sx_, syr_, syu_, sloss_;
#endif
};

/// Loss and directional accuracy of `net` on a whole period, in eval mode.
std::pair<double, double> period_score(detail::NetBase& net, const torch::Device& dev, const PeriodTensors& p) {
  net.eval();
  torch::NoGradGuard no_grad;
  const auto n = p.x.size(0);
  double loss = 0.0, hits = 0.0;
  constexpr std::int64_t kChunk = 4096;
  for (std::int64_t i = 0; i < n; i += kChunk) {
    const auto j = std::min(n, i + kChunk);
    auto out = net.forward(p.x.slice(0, i, j).to(dev));
    auto yr = p.y_ret.slice(0, i, j).to(dev), yu = p.y_up.slice(0, i, j).to(dev);
    loss += loss_of(out, yr, yu).item<double>() * static_cast<double>(j - i);
    hits += ((out.select(1, 0) > 0).to(torch::kFloat32) == yu).sum().item<double>();
  }
  return {loss / static_cast<double>(n), hits / static_cast<double>(n)};
}

void lr_set(torch::optim::AdamW& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void options_validate(const TrainOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("training options: " + what); };
  if (o.epochs < 1 || o.epochs > 100000) bad("epochs = " + std::to_string(o.epochs) + " (expected 1..100000)");
  if (o.batch_size < 1 || o.batch_size > 1 << 20) bad("batch_size = " + std::to_string(o.batch_size) + " (expected 1..1048576)");
  if (!(o.lr > 0.0) || !std::isfinite(o.lr)) bad("lr = " + std::to_string(o.lr) + " (expected > 0)");
  if (!(o.lr_final_factor > 0.0) || o.lr_final_factor > 1.0) bad("lr_final_factor = " + std::to_string(o.lr_final_factor) + " (expected (0, 1])");
  if (!(o.weight_decay >= 0.0)) bad("weight_decay = " + std::to_string(o.weight_decay) + " (expected >= 0)");
  if (!(o.clip_norm > 0.0)) bad("clip_norm = " + std::to_string(o.clip_norm) + " (expected > 0)");
  if (o.patience < 1) bad("patience = " + std::to_string(o.patience) + " (expected >= 1)");
  if (o.interval_ms < 1) bad("interval_ms = " + std::to_string(o.interval_ms) + " (expected >= 1)");
}

std::int64_t now_ms(const Clock* clock) {
  if (clock) return clock->now() / kNsPerMillisecond;
  const LiveClock live;
  return live.now() / kNsPerMillisecond;
}

}  // namespace

namespace detail {

Result<std::unique_ptr<Model>> torch_train(const FeatureTable& tab, const TimeSplit& split, ModelKind kind, const ModelHyper& hyper,
                                           const TrainOptions& opts) {
  options_validate(opts);
  hyper.validate(kind, tab.spec);
  const torch::Device dev = detail::device_resolve(opts.device);
  const bool cuda = dev.is_cuda();
  auto train_s = samples_select(tab, split.train_begin, split.train_end, true);
  auto val_s = samples_select(tab, split.val_begin, split.val_end, true);
  auto test_s = samples_select(tab, split.test_begin, split.test_end, true);
  auto empty = [](const char* which, std::int32_t a, std::int32_t b) {
    throw std::invalid_argument(std::string("model_train: the ") + which + " period (bars " + std::to_string(a) + ".." +
                                std::to_string(b) + ") has no sample with complete features and a target");
  };
  if (train_s.empty()) empty("training", split.train_begin, split.train_end);
  if (val_s.empty()) empty("validation", split.val_begin, split.val_end);
  if (test_s.empty()) empty("test", split.test_begin, split.test_end);

  auto impl = std::make_unique<Model::Impl>();
  ModelMeta& meta = impl->meta;
  meta.name = std::string(model_kind_name(kind));
  meta.kind = kind;
  meta.hyper = hyper;
  meta.spec = tab.spec;
  meta.split = split;
  meta.seed = opts.seed;
  meta.device = cuda ? "cuda" : "cpu";  // "+graph" is appended below when the train step was captured
  meta.torch_version = TORCH_VERSION;
  meta.qtos_version = QTOS_VERSION;
  meta.created_ms = now_ms(opts.clock);
  meta.train_from_ms = opts.t0_ms + split.train_begin * opts.interval_ms;
  meta.train_to_ms = opts.t0_ms + split.train_end * opts.interval_ms;
  meta.test_to_ms = opts.t0_ms + split.test_end * opts.interval_ms;
  meta.normalizer = Normalizer::fit(tab, train_s);

  const std::int32_t window = detail::input_window(kind, tab.spec);
  auto train = period_gather(tab, meta.normalizer, train_s, window, cuda);
  auto val = period_gather(tab, meta.normalizer, val_s, window, false);

  torch::manual_seed(opts.seed);
  auto net = detail::net_create(kind, hyper, tab.n_features, window);
  net->to(dev);
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(opts.lr).weight_decay(opts.weight_decay));
  StepRunner runner(*net, opt, opts.clip_norm);
  // Graph replays need one static batch shape: the last partial batch of an epoch is then dropped (the shuffle
  // changes which samples fall in it every epoch).
  const bool graphed = opts.cuda_graph && static_cast<std::int64_t>(train_s.size()) >= opts.batch_size &&
                       runner.capture(dev, opts.batch_size, window, tab.n_features);
  if (graphed) meta.device += "+graph";
  std::mt19937_64 rng(opts.seed);
  std::vector<std::int64_t> order(train.samples.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});

  std::vector<torch::Tensor> best;  // copies of the best epoch's parameters and buffers
  auto snapshot = [&] {
    best.clear();
    for (const auto& p : net->parameters()) best.push_back(p.detach().clone());
    for (const auto& b : net->buffers()) best.push_back(b.detach().clone());
  };
  double best_loss = std::numeric_limits<double>::infinity();
  std::int32_t bad_epochs = 0;
  const auto n = static_cast<std::int64_t>(order.size());
  // A stop keeps nothing: a model cut short is not the model that was asked for, so the caller registers none.
  auto stopped = [&](std::int32_t epoch) {
    return Error{ErrorCode::stopped, "training of " + meta.name + " stopped in epoch " + std::to_string(epoch) + " of " +
                                std::to_string(opts.epochs) + " (" + std::to_string(meta.epochs_run) + " complete" +
                                (meta.best_epoch > 0 ? ", best validation loss " + std::to_string(best_loss) + " at epoch " +
                                                           std::to_string(meta.best_epoch)
                                                     : std::string()) +
                                "); no model was kept"};
  };
  for (std::int32_t epoch = 1; epoch <= opts.epochs; ++epoch) {
    const double pi = std::acos(-1.0);
    const double lr_min = opts.lr * opts.lr_final_factor;
    const double lr = lr_min + 0.5 * (opts.lr - lr_min) * (1.0 + std::cos(pi * (epoch - 1) / std::max(1, opts.epochs - 1)));
    lr_set(opt, lr);
    std::shuffle(order.begin(), order.end(), rng);
    auto order_t = torch::from_blob(order.data(), {n}, torch::kInt64);
    net->train();
    const auto t_start = std::chrono::steady_clock::now();
    double loss_sum = 0.0;
    std::int64_t stepped = 0;
    const std::int64_t n_steps = graphed ? n / opts.batch_size * opts.batch_size : n;
    for (std::int64_t i = 0; i < n_steps; i += opts.batch_size) {
      if (opts.cancelled && opts.cancelled()) return Error{ErrorCode::cancelled, "training of " + meta.name + " was cancelled in epoch " + std::to_string(epoch)};
      if (opts.stop.stop_requested()) return stopped(epoch);
      auto idx = order_t.slice(0, i, std::min(n, i + opts.batch_size));
      auto xb = train.x.index_select(0, idx).to(dev, cuda);
      auto yr = train.y_ret.index_select(0, idx).to(dev, cuda);
      auto yu = train.y_up.index_select(0, idx).to(dev, cuda);
      loss_sum += runner.step(xb, yr, yu) * static_cast<double>(idx.size(0));
      stepped += idx.size(0);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const auto [val_loss, val_acc] = period_score(*net, dev, val);
    EpochReport rep;
    rep.epoch = epoch;
    rep.epochs = opts.epochs;
    rep.train_loss = loss_sum / static_cast<double>(stepped);
    rep.val_loss = val_loss;
    rep.val_accuracy = val_acc;
    rep.samples_per_s = secs > 0.0 ? static_cast<double>(stepped) / secs : 0.0;
    rep.lr = lr;
    rep.improved = val_loss < best_loss - 1e-6;
    meta.epochs_run = epoch;
    if (rep.improved) {
      best_loss = val_loss;
      meta.best_epoch = epoch;
      bad_epochs = 0;
      snapshot();
    } else {
      ++bad_epochs;
    }
    if (opts.on_epoch) opts.on_epoch(rep);
    if (bad_epochs >= opts.patience) break;
    if (opts.stop.stop_requested() && epoch < opts.epochs) return stopped(epoch + 1);
  }
  if (!best.empty()) {
    torch::NoGradGuard no_grad;
    std::size_t k = 0;
    for (auto& p : net->parameters()) p.copy_(best[k++]);
    for (auto& b : net->buffers()) b.copy_(best[k++]);
  }
  net->to(torch::kCPU);
  net->eval();
  impl->net = std::make_shared<detail::TorchNetwork>(net, torch::Device(torch::kCPU));
  const Model scratch(std::make_unique<Model::Impl>(*impl));  // evaluates; the final Model gets the metrics

  // Out-of-sample evaluation on validation and test, and the naive baseline on test.
  const double periods_per_year = 365.0 * 86'400'000.0 / static_cast<double>(opts.interval_ms) / tab.spec.horizon;
  auto evaluate = [&](const std::vector<SampleRef>& s) {
    std::vector<float> r(s.size()), u(s.size()), y(s.size());
    scratch.predict_samples(tab, s, r, u);
    for (std::size_t i = 0; i < s.size(); ++i) y[i] = tab.forward[static_cast<std::size_t>(tab.at(s[i].s, s[i].t))];
    return metrics_evaluate(r, u, y, s, tab.spec.horizon, periods_per_year);
  };
  ModelMeta& m = impl->meta;
  m.val = evaluate(val_s);
  m.test = evaluate(test_s);
  double mean = 0.0, ups = 0.0;
  for (const auto& s : train_s) {
    const float f = tab.forward[static_cast<std::size_t>(tab.at(s.s, s.t))];
    mean += f;
    ups += f > 0.0F ? 1.0 : 0.0;
  }
  mean /= static_cast<double>(train_s.size());
  ups /= static_cast<double>(train_s.size());
  std::vector<float> br(test_s.size(), static_cast<float>(mean)), bu(test_s.size(), static_cast<float>(ups)), y(test_s.size());
  for (std::size_t i = 0; i < test_s.size(); ++i) y[i] = tab.forward[static_cast<std::size_t>(tab.at(test_s[i].s, test_s[i].t))];
  m.baseline_test = metrics_evaluate(br, bu, y, test_s, tab.spec.horizon, periods_per_year);
  return std::make_unique<Model>(std::move(impl));
}

namespace {

class TorchTrainBench final : public TrainBenchStep {
 public:
  TorchTrainBench(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features, std::int32_t window, std::int32_t batch,
                  std::uint64_t seed, DeviceKind device, bool cuda_graph) {
    if (n_features < 1 || window < 1 || batch < 1)
      throw std::invalid_argument("TrainBench: features " + std::to_string(n_features) + ", window " + std::to_string(window) +
                                  ", batch " + std::to_string(batch) + " must all be >= 1");
    FeatureSpec spec;
    spec.window = window;
    hyper.validate(kind, spec);
    torch::manual_seed(seed);
    const torch::Device dev = device_resolve(device);
    const std::int32_t w = kind == ModelKind::mlp ? 1 : window;
    net_ = net_create(kind, hyper, n_features, w);
    net_->to(dev);
    net_->train();
    opt_ = std::make_unique<torch::optim::AdamW>(net_->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(1e-4));
    x_ = torch::randn({batch, w, n_features}).to(dev);
    y_ret_ = torch::randn({batch}).to(dev);
    y_up_ = (torch::rand({batch}) > 0.5).to(torch::kFloat32).to(dev);
    runner_ = std::make_unique<StepRunner>(*net_, *opt_, 1.0);
    if (cuda_graph) {
      if (!dev.is_cuda()) throw std::invalid_argument("TrainBench: CUDA-graph capture needs --device cuda");
      graphed_ = runner_->capture(dev, batch, w, n_features);
    }
  }
  double step() override { return runner_->step(x_, y_ret_, y_up_); }
  bool graphed() const override { return graphed_; }

 private:
  std::shared_ptr<NetBase> net_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  std::unique_ptr<StepRunner> runner_;
  torch::Tensor x_, y_ret_, y_up_;
  bool graphed_ = false;
};

}  // namespace

std::unique_ptr<TrainBenchStep> torch_train_bench(ModelKind kind, const ModelHyper& hyper, std::int32_t n_features, std::int32_t window,
                                                  std::int32_t batch, std::uint64_t seed, DeviceKind device, bool cuda_graph) {
  return std::make_unique<TorchTrainBench>(kind, hyper, n_features, window, batch, seed, device, cuda_graph);
}

}  // namespace detail
}  // namespace qtos::models
