#pragma once
/// @file Registration of the CLI verbs. Each verb lives in its own api/verb_*.cpp and adds itself to the app.

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "runtime/config/config.hpp"

namespace qtos::api {

/// State shared by all verbs: global options and the lazily loaded configuration.
class CliContext {
 public:
  /// Path of the .env file given by --env-file (empty: ./.env when it exists).
  std::string env_file;
  /// The effective configuration; loaded on first use, throws ConfigError on a bad value.
  const Config& config();
  /// Loads the configuration once before any verb runs and prints its warnings (an unknown QT_* name) to stderr, so
  /// every verb reports them; a bad configuration is left for the verbs that read it to report.
  void config_warnings_print();
  /// Exit status the verb asks for when it returns normally (130/143 after a stop by SIGINT/SIGTERM).
  int exit_code = 0;

 private:
  std::optional<Config> config_;
};

void verbs_version_register(CLI::App& app, CliContext& ctx);  ///< `qtos version`
void verbs_config_register(CLI::App& app, CliContext& ctx);   ///< `qtos config show`
void verbs_data_register(CLI::App& app, CliContext& ctx);     ///< `qtos data synth|import|info`
void verbs_demo_register(CLI::App& app, CliContext& ctx);     ///< `qtos demo`, the main job of `make run`
void verbs_retrain_register(CLI::App& app, CliContext& ctx);  ///< `qtos retrain`
void verbs_models_register(CLI::App& app, CliContext& ctx);   ///< `qtos models list|show|promote|rollback|retire`
void verbs_events_register(CLI::App& app, CliContext& ctx);   ///< `qtos events dump FILE`
void verbs_rank_register(CLI::App& app, CliContext& ctx);        ///< `qtos rank`
void verbs_indicators_register(CLI::App& app, CliContext& ctx);  ///< `qtos indicators`
void verbs_evolve_register(CLI::App& app, CliContext& ctx);             ///< `qtos evolve`
void verbs_backtest_strategy_register(CLI::App& app, CliContext& ctx);  ///< `qtos backtest-strategy`
void verbs_strategies_register(CLI::App& app, CliContext& ctx);         ///< `qtos strategies list|show|promote|retire`
void verbs_backtest_register(CLI::App& app, CliContext& ctx);           ///< `qtos backtest`: the full-system replay
void verbs_orders_register(CLI::App& app, CliContext& ctx);             ///< `qtos orders list|show`
void verbs_serve_register(CLI::App& app, CliContext& ctx);              ///< `qtos serve`: the OS running, the API and dashboard
void verbs_worker_register(CLI::App& app, CliContext& ctx);             ///< `qtos worker` and `qtos workers` (Redis scale-out)

/// The model registry directory: `given` when not empty, else $QT_STATE_DIR/models.
std::string models_registry_dir(CliContext& ctx, const std::string& given);

}  // namespace qtos::api
