// Models: training throughput (samples/s) of the MLP, GRU and patch transformer at fixed sizes, and batched MLP
// inference for 5,000 symbols, each beside the same network in Python PyTorch (bench/peer_models.py) from one run.
// Threads: QTOS_BENCH_THREADS (default 1) for LibTorch and the peer alike. The peer runs once, before the benchmarks.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include <boost/json.hpp>

#include "models/features.hpp"
#include "models/model.hpp"
#include "models/torch_info.hpp"
#include "runtime/data/synth.hpp"

#ifndef QTOS_SOURCE_DIR
#define QTOS_SOURCE_DIR "."
#endif

namespace {

using namespace qtos;
using namespace qtos::models;

constexpr std::int32_t kFeatures = 10, kWindow = 32, kBatch = 256, kHidden = 64, kSymbols = 5000;

int threads() {
  const char* t = std::getenv("QTOS_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 1;
}

ModelHyper hyper_for(ModelKind kind) {
  ModelHyper h;
  h.hidden = kHidden;
  h.d_model = kHidden;
  h.heads = 4;
  h.patch = 4;
  h.layers = kind == ModelKind::gru ? 1 : 2;
  return h;
}

/// The peer's figures, measured once; empty (with a reason) when python3 with torch is not there.
struct Peer {
  boost::json::object rates;
  std::string why;
};

const Peer& peer() {
  static const Peer p = [] {
    Peer r;
    std::string py = std::getenv("QTOS_PEER_PYTHON") ? std::getenv("QTOS_PEER_PYTHON")
                                                     : (std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
    const std::string cmd = py + " " + QTOS_SOURCE_DIR + "/bench/peer_models.py --threads " + std::to_string(threads()) +
                            " --features " + std::to_string(kFeatures) + " --window " + std::to_string(kWindow) + " --batch " +
                            std::to_string(kBatch) + " --hidden " + std::to_string(kHidden) + " --symbols " +
                            std::to_string(kSymbols) + " 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
    std::string out;
    std::array<char, 4096> buf{};
    while (pipe && std::fgets(buf.data(), static_cast<int>(buf.size()), pipe.get())) out += buf.data();
    try {
      r.rates = boost::json::parse(out).as_object();
    } catch (const std::exception&) {
      r.why = "peer unavailable (" + py + " with torch): " + cmd;
    }
    return r;
  }();
  return p;
}

double peer_rate(const char* key) {
  const auto* v = peer().rates.if_contains(key);
  return v ? v->to_number<double>() : 0.0;
}

void BM_train_samples_per_s(benchmark::State& st, ModelKind kind, const char* peer_key) {
  torch_threads_set(threads());
  TrainBench tb(kind, hyper_for(kind), kFeatures, kWindow, kBatch, 1);
  for (int i = 0; i < 3; ++i) tb.step();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(tb.step());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double rate = static_cast<double>(st.iterations()) * kBatch / secs;
  st.SetItemsProcessed(st.iterations() * kBatch);
  st.counters["samples/s"] = rate;
  const double pr = peer_rate(peer_key);
  st.counters["peer_samples/s"] = pr;
  st.counters["ratio_vs_peer"] = pr > 0 ? rate / pr : 0.0;
  st.counters["threads"] = threads();
  if (kind == ModelKind::mlp) {  // 3x the forward FLOPs (forward + two backward matmuls) per sample
    const double flops = 3.0 * 2.0 * (kFeatures * kHidden + kHidden * kHidden + kHidden * 2);
    st.counters["GFLOP/s"] = rate * flops / 1e9;
  }
  if (!peer().why.empty()) st.SetLabel(peer().why);
}

/// GPU: train steps/s with and without CUDA-graph capture of forward+backward (skipped without a CUDA LibTorch).
void BM_train_cuda_steps_per_s(benchmark::State& st, ModelKind kind, bool graph) {
  if (!torch_info().cuda_available) {
    st.SkipWithError("no CUDA device visible to LibTorch (CPU build or no GPU)");
    return;
  }
  TrainBench tb(kind, hyper_for(kind), kFeatures, kWindow, kBatch, 1, DeviceKind::cuda, graph);
  if (graph && !tb.graphed()) {
    st.SkipWithError("CUDA-graph capture failed (see the warning above)");
    return;
  }
  for (int i = 0; i < 5; ++i) tb.step();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(tb.step());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.counters["steps/s"] = static_cast<double>(st.iterations()) / secs;
  st.counters["samples/s"] = static_cast<double>(st.iterations()) * kBatch / secs;
}

/// A small trained MLP of the benchmark's width (weights do not change the cost) and a 5,000-symbol panel.
struct InferenceFixture {
  std::unique_ptr<Model> model;
  SynthMarket market;
  static InferenceFixture& get() {
    static InferenceFixture f = [] {
      SynthOptions train_opt;
      train_opt.n_symbols = 8;
      train_opt.n_bars = 600;
      train_opt.seed = 3;
      const auto small = synth_generate(train_opt);
      FeatureSpec spec;
      const auto tab = features_build(small.panel.view(), spec);
      TrainOptions o;
      o.epochs = 1;
      auto h = hyper_for(ModelKind::mlp);
      auto m = model_train(tab, split_by_time(tab), ModelKind::mlp, h, o);
      SynthOptions big;
      big.n_symbols = kSymbols;
      big.n_bars = 64;
      big.late_listing_fraction = 0.0;
      return InferenceFixture{std::move(m).value(), synth_generate(big)};
    }();
    return f;
  }
};

void BM_mlp_predict_5000_symbols(benchmark::State& st) {
  torch_threads_set(threads());
  auto& f = InferenceFixture::get();
  const auto view = f.market.panel.view();
  const std::int32_t t = view.n_bars - 1;
  std::int32_t valid = 0;
  for (auto _ : st) {
    auto p = f.model->predict(view, t);
    valid = p.value().count_valid();
    benchmark::DoNotOptimize(valid);
  }
  st.counters["symbols"] = valid;
  st.counters["target_ms"] = 5.0;
  st.SetLabel("features + normalisation + forward, end to end (same bar again: the feature carry replays one bar)");
}

/// A 5,000-symbol panel long enough to walk bar by bar (300 bars).
const SynthMarket& long_market() {
  static const SynthMarket m = [] {
    SynthOptions o;
    o.n_symbols = kSymbols;
    o.n_bars = 300;
    o.late_listing_fraction = 0.0;
    o.seed = 5;
    return synth_generate(o);
  }();
  return m;
}

/// The live case: each iteration predicts the next bar, so the feature states advance by one bar. When the walk
/// reaches the panel's end it restarts (that cold call, which replays every symbol's history, is not timed).
void BM_mlp_predict_5000_symbols_next_bar(benchmark::State& st) {
  torch_threads_set(threads());
  auto& f = InferenceFixture::get();
  const auto view = long_market().panel.view();
  const std::int32_t first = f.model->meta().spec.warmup() + f.model->input_window() - 1;
  std::int32_t t = first, valid = 0;
  (void)f.model->predict(view, t);  // outside the timed loop: the cold start
  for (auto _ : st) {
    if (++t == view.n_bars) {
      st.PauseTiming();
      t = first;
      (void)f.model->predict(view, t++);
      st.ResumeTiming();
    }
    auto p = f.model->predict(view, t);
    valid = p.value().count_valid();
    benchmark::DoNotOptimize(valid);
  }
  st.counters["symbols"] = valid;
  st.counters["target_ms"] = 5.0;
  st.SetLabel("features + normalisation + forward; one new bar per call");
}

/// Cold feature build for one bar of 5,000 symbols with no carry: every symbol's indicator states replay its history
/// from bar 0 (arg = bars of history). What a first prediction, or one on another panel, costs.
void BM_features_5000_symbols_cold(benchmark::State& st) {
  const auto view = long_market().panel.view();
  const FeatureSpec spec;
  const auto t = static_cast<std::int32_t>(st.range(0)) - 1;
  for (auto _ : st) benchmark::DoNotOptimize(features_build(view, spec, t, t + 1).x.data());
  st.counters["symbol_bars/s"] =
      benchmark::Counter(static_cast<double>(kSymbols) * static_cast<double>(t + 1), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_mlp_forward_5000_symbols(benchmark::State& st) {
  torch_threads_set(threads());
  auto& f = InferenceFixture::get();
  // The model's own feature count (FeatureSpec::n_features, 17 by default), not the training benchmarks' fixed 10.
  const auto nf = static_cast<std::size_t>(f.model->meta().spec.n_features());
  std::vector<float> x(static_cast<std::size_t>(kSymbols) * nf);
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.0F, 1.0F);
  for (auto& v : x) v = n(rng);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(f.model->forward_inputs(x, kSymbols));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
                    static_cast<double>(st.iterations());
  st.counters["ms"] = ms;
  st.counters["peer_ms"] = peer_rate("forward_mlp_ms");
  st.counters["ratio_vs_peer"] = ms > 0 && peer_rate("forward_mlp_ms") > 0 ? peer_rate("forward_mlp_ms") / ms : 0.0;
  st.counters["target_ms"] = 5.0;
}

BENCHMARK_CAPTURE(BM_train_samples_per_s, mlp, ModelKind::mlp, "train_mlp")->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK_CAPTURE(BM_train_samples_per_s, gru, ModelKind::gru, "train_gru")->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK_CAPTURE(BM_train_samples_per_s, transformer, ModelKind::transformer, "train_transformer")
    ->Unit(benchmark::kMillisecond)
    ->MinTime(1.0);
BENCHMARK_CAPTURE(BM_train_cuda_steps_per_s, mlp_eager, ModelKind::mlp, false)->MinTime(0.5);
BENCHMARK_CAPTURE(BM_train_cuda_steps_per_s, mlp_graph, ModelKind::mlp, true)->MinTime(0.5);
BENCHMARK_CAPTURE(BM_train_cuda_steps_per_s, gru_eager, ModelKind::gru, false)->MinTime(0.5);
BENCHMARK_CAPTURE(BM_train_cuda_steps_per_s, gru_graph, ModelKind::gru, true)->MinTime(0.5);
BENCHMARK_CAPTURE(BM_train_cuda_steps_per_s, transformer_eager, ModelKind::transformer, false)->MinTime(0.5);
BENCHMARK_CAPTURE(BM_train_cuda_steps_per_s, transformer_graph, ModelKind::transformer, true)->MinTime(0.5);
BENCHMARK(BM_mlp_predict_5000_symbols)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_mlp_forward_5000_symbols)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_mlp_predict_5000_symbols_next_bar)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_features_5000_symbols_cold)->Arg(64)->Arg(300)->Unit(benchmark::kMillisecond)->MinTime(1.0);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  (void)peer();  // measure the peer before our own runs, not interleaved with them
  if (!peer().why.empty()) std::fprintf(stderr, "bench_models: %s\n", peer().why.c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
