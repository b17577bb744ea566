// `qtos retrain`: train a return model on a native panel and register it as a CANDIDATE.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "api/verbs.hpp"
#include "models/features.hpp"
#include "models/model.hpp"
#include "models/registry.hpp"
#include "models/torch_info.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/util/progress.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct RetrainArgs {
  std::string data, model, device = "auto", name, registry;
  std::int32_t epochs = 20, batch_size = 256, horizon = 4, window = 16, hidden = 32, layers = 1, patience = 4;
  double lr = 2e-3;
  std::uint64_t seed = 42;
};

void print_metrics(const char* label, const models::Metrics& m) {
  std::printf("  %-10s %8lld samples  accuracy %.4f  rank IC %+.4f  calibration err %.4f  Sharpe %+.2f  MSE %.3g\n", label,
              static_cast<long long>(m.samples), m.directional_accuracy, m.rank_ic, m.calibration_error, m.sharpe, m.mse);
}

}  // namespace

std::string models_registry_dir(CliContext& ctx, const std::string& given) {
  return given.empty() ? (std::filesystem::path(ctx.config().state_dir) / "models").string() : given;
}

void verbs_retrain_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<RetrainArgs>();
  auto* cmd = app.add_subcommand("retrain", "train a return model (mlp, gru, transformer) on a panel and register it as a CANDIDATE");
  cmd->add_option("--data", a->data, "data directory holding panel.qtp (see `qtos data synth|import`)")->required();
  cmd->add_option("--model", a->model, "mlp, gru or transformer")->required();
  cmd->add_option("--epochs", a->epochs, "maximum epochs (early stopping on validation loss)")->capture_default_str();
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of initialisation and shuffling (same seed, same model on CPU)")->capture_default_str();
  cmd->add_option("--name", a->name, "registry name (default: the model kind)");
  cmd->add_option("--registry", a->registry, "model registry directory (default: $QT_STATE_DIR/models)");
  cmd->add_option("--horizon", a->horizon, "bars ahead of the target return")->capture_default_str();
  cmd->add_option("--window", a->window, "bars of history per sample (GRU, transformer)")->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "mini-batch size")->capture_default_str();
  cmd->add_option("--lr", a->lr, "peak learning rate (cosine decay)")->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "MLP/GRU width and transformer d_model")->capture_default_str();
  cmd->add_option("--layers", a->layers, "hidden layers / GRU layers / encoder layers")->capture_default_str();
  cmd->add_option("--patience", a->patience, "epochs without validation improvement before stopping")->capture_default_str();
  cmd->callback([a, &ctx] {
    const auto kind = models::model_kind_parse(a->model, "--model");
    const auto device = device_parse(a->device, "--device");
    if (device == DeviceKind::cuda && !models::torch_info().cuda_available)
      throw std::invalid_argument("--device cuda: this LibTorch (" + models::torch_info().version +
                                  ") has no CUDA device; use --device cpu or auto");
    if (!std::filesystem::is_directory(a->data))
      throw std::invalid_argument("--data: directory '" + a->data + "' does not exist");
    const MarketPanel panel = panel_load(panel_path(a->data));

    models::FeatureSpec spec;
    spec.horizon = a->horizon;
    spec.window = a->window;
    models::ModelHyper hyper;
    hyper.hidden = a->hidden;
    hyper.d_model = a->hidden;
    hyper.layers = a->layers;
    hyper.heads = a->hidden % 4 == 0 ? 4 : 1;
    hyper.patch = a->window % 4 == 0 ? 4 : 1;
    models::TrainOptions opts;
    opts.epochs = a->epochs;
    opts.batch_size = a->batch_size;
    opts.lr = a->lr;
    opts.patience = a->patience;
    opts.seed = a->seed;
    opts.device = device;
    opts.t0_ms = panel.t0_ms();
    opts.interval_ms = panel.interval_ms();

    const auto table = models::features_build(panel.view(), spec);
    const auto split = models::split_by_time(table);
    std::printf("retrain %s on %s: %d symbols x %d bars; train %s..%s, validation %s..%s, test %s..%s (purge %d bars)\n",
                a->model.c_str(), a->data.c_str(), panel.n_symbols(), panel.n_bars(),
                time_format_iso(panel.time_ms(split.train_begin)).c_str(), time_format_iso(panel.time_ms(split.train_end)).c_str(),
                time_format_iso(panel.time_ms(split.val_begin)).c_str(), time_format_iso(panel.time_ms(split.val_end)).c_str(),
                time_format_iso(panel.time_ms(split.test_begin)).c_str(),
                time_format_iso(panel.time_ms(split.test_end - 1)).c_str(), split.purge);
    std::fflush(stdout);
    Progress progress("retrain " + a->model, static_cast<std::uint64_t>(a->epochs));
    opts.on_epoch = [&](const models::EpochReport& r) {
      char line[200];
      std::snprintf(line, sizeof line, "epoch %d: loss %.4f val %.4f acc %.4f %.0f samples/s%s", r.epoch, r.train_loss,
                    r.val_loss, r.val_accuracy, r.samples_per_s, r.improved ? " *" : "");
      progress.update(static_cast<std::uint64_t>(r.epoch), line);
    };
    auto trained = models::model_train(table, split, kind, hyper, opts);
    if (!trained.ok()) throw std::runtime_error(trained.error().message);
    const auto& model = *trained.value();
    const auto& m = model.meta();
    progress.finish("best epoch " + std::to_string(m.best_epoch) + " of " + std::to_string(m.epochs_run) +
                    (m.epochs_run < a->epochs ? " (early stop)" : ""));
    std::printf("evaluation (%s, H = %d bars):\n", m.device.c_str(), spec.horizon);
    print_metrics("validation", m.val);
    print_metrics("test", m.test);
    print_metrics("baseline", m.baseline_test);
    models::ModelRegistry registry(models_registry_dir(ctx, a->registry));
    const auto rec = registry.register_candidate(a->name.empty() ? a->model : a->name, model);
    std::printf("registered %s v%d as CANDIDATE in %s\n", rec.name.c_str(), rec.version, rec.dir.c_str());
  });
}

}  // namespace qtos::api
