// `qtos retrain`: train a return model on a native panel and register it as a CANDIDATE.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <memory>
#include <stdexcept>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"
#include "models/features.hpp"
#include "models/model.hpp"
#include "models/registry.hpp"
#include "models/torch_info.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/util/progress.hpp"
#include "runtime/util/stop_token.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct RetrainArgs {
  std::string data, model, device = "auto", name, registry, gaps;
  std::int32_t epochs = 20, batch_size = 256, horizon = 4, window = 16, hidden = 32, layers = 1, patience = 4;
  double lr = 2e-3;
  std::uint64_t seed = 42;
};

void print_metrics(const char* label, const models::Metrics& m) {
  std::printf("  %-10s %8lld samples  accuracy %.4f  rank IC %+.4f  calibration err %.4f  Sharpe %+.2f  MSE %.3g\n", label,
              static_cast<long long>(m.samples), m.directional_accuracy, m.rank_ic, m.calibration_error, m.sharpe, m.mse);
}

/// The registry's name rule ([A-Za-z0-9_-]{1,31}), checked before training rather than at registration.
void model_name_check(const std::string& name, const std::string& given_as) {
  if (!models::model_name_valid(name))
    throw UsageError(given_as + " '" + name + "': expected a model name of 1 to 31 characters from A-Z, a-z, 0-9, '_' and '-'");
}

/// Runs `fn`, reporting an std::invalid_argument of the feature code (data too short for the features, the horizon
/// or the split) as an error about --data, the user's input.
template <class Fn>
auto about_data(const std::string& data, Fn&& fn) {
  try {
    return fn();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--data " + data + ": " + e.what());
  }
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
  cmd->add_option("--epochs", a->epochs, "maximum epochs (early stopping on validation loss), 1 to 100000")
      ->check(integer_range(1, 100'000))
      ->capture_default_str();
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of initialisation and shuffling (same seed, same model on CPU)")
      ->check(unsigned_integer())
      ->capture_default_str();
  cmd->add_option("--name", a->name, "registry name, [A-Za-z0-9_-]{1,31} (default: the model kind)");
  cmd->add_option("--registry", a->registry, "model registry directory (default: $QT_STATE_DIR/models)");
  cmd->add_option("--horizon", a->horizon, "bars ahead of the target return, 1 to 10000")
      ->check(integer_range(1, 10'000))
      ->capture_default_str();
  cmd->add_option("--window", a->window, "bars of history per sample (GRU, transformer), 1 to 4096")
      ->check(integer_range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "mini-batch size, 1 to 1048576")->check(integer_range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--lr", a->lr, "peak learning rate (cosine decay), above 0 to 10")->check(number_range(0, 10, true))->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "MLP/GRU width and transformer d_model, 1 to 4096")
      ->check(integer_range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--layers", a->layers, "hidden layers / GRU layers / encoder layers, 1 to 16")
      ->check(integer_range(1, 16))
      ->capture_default_str();
  cmd->add_option("--patience", a->patience, "epochs without validation improvement before stopping, 1 to 100000")
      ->check(integer_range(1, 100'000))
      ->capture_default_str();
  gaps_option_add(cmd, a->gaps);
  cmd->callback([a, &ctx] {
    stop_signals_install();  // SIGINT/SIGTERM end training at the next mini-batch; nothing is registered
    const StopToken stop = process_stop_token();
    const auto kind = models::model_kind_parse(a->model, "--model");
    const auto device = device_parse(a->device, "--device");
    if (device == DeviceKind::cuda && !models::torch_info().cuda_available)
      throw std::invalid_argument("--device cuda: this LibTorch (" + models::torch_info().version +
                                  ") has no CUDA device; use --device cpu or auto");
    if (!std::filesystem::is_directory(a->data))
      throw std::invalid_argument("--data: directory '" + a->data + "' does not exist");
    const std::string name = a->name.empty() ? a->model : a->name;
    model_name_check(name, a->name.empty() ? "--model" : "--name");
    // The registry (under the state directory by default) is opened, created when new, before training: a registry
    // that cannot be written is found now, not after the epochs.
    const std::string registry_dir = models_registry_dir(ctx, a->registry);
    std::optional<models::ModelRegistry> registry;
    try {
      registry.emplace(registry_dir);
    } catch (const std::exception& e) {
      throw std::runtime_error((a->registry.empty() ? "the model registry under QT_STATE_DIR (" + registry_dir + ")"
                                                    : "--registry " + registry_dir) +
                               ": " + e.what() + "; checked before training, nothing was trained");
    }
    const MarketPanel panel = panel_load(panel_path(a->data));

    models::FeatureSpec spec;
    spec.horizon = a->horizon;
    spec.window = a->window;
    spec.gaps = gaps_resolve(a->gaps, ctx.config());  // recorded in the model: it is served under this policy only
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

    const auto table = about_data(a->data, [&] { return models::features_build(panel.view(), spec); });
    const auto split = about_data(a->data, [&] { return models::split_by_time(table); });
    std::printf("retrain %s on %s: %d symbols x %d bars, gaps %s; train %s..%s, validation %s..%s, test %s..%s (purge %d bars)\n",
                a->model.c_str(), a->data.c_str(), panel.n_symbols(), panel.n_bars(), gap_policy_text(spec.gaps).c_str(),
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
    opts.stop = stop;
    auto trained = models::model_train(table, split, kind, hyper, opts);
    if (!trained.ok() && trained.error().code == ErrorCode::stopped) {
      progress.stop(std::string("stopped by ") + stop_signal_name(stop.signal()));
      std::printf("retrain stopped by %s: %s; nothing was registered in %s (a stopped training registers no model; run it "
                  "again to train one)\n",
                  stop_signal_name(stop.signal()), trained.error().message.c_str(), registry_dir.c_str());
      ctx.exit_code = stop_exit_code(stop.signal());
      return;
    }
    if (!trained.ok()) throw std::runtime_error(trained.error().message);
    const auto& model = *trained.value();
    const auto& m = model.meta();
    progress.finish("best epoch " + std::to_string(m.best_epoch) + " of " + std::to_string(m.epochs_run) +
                    (m.epochs_run < a->epochs ? " (early stop)" : ""));
    std::printf("evaluation (%s, H = %d bars):\n", m.device.c_str(), spec.horizon);
    print_metrics("validation", m.val);
    print_metrics("test", m.test);
    print_metrics("baseline", m.baseline_test);
    const auto rec = registry->register_candidate(name, model);
    std::printf("registered %s v%d as CANDIDATE in %s\n", rec.name.c_str(), rec.version, rec.dir.c_str());
    if (stop.stop_requested()) {  // the stop came after the last epoch: the model was complete and is registered
      std::printf("stopped by %s after training had completed; the model above was registered\n", stop_signal_name(stop.signal()));
      ctx.exit_code = stop_exit_code(stop.signal());
    }
  });
}

}  // namespace qtos::api
