#include "api/cli.hpp"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <spdlog/spdlog.h>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"

namespace qtos::api {

const Config& CliContext::config() {
  if (!config_) {
    ConfigSources sources = ConfigSources::from_process_environment();
    std::string path = env_file;
    if (path.empty() && std::filesystem::exists(".env")) path = ".env";
    if (!path.empty()) {
      sources.env_file = env_file_read(path);
      sources.env_file_path = path;
    }
    config_ = config_load(sources);
  }
  return *config_;
}

void CliContext::config_warnings_print() {
  try {
    for (const auto& w : config().warnings) std::fprintf(stderr, "qtos: warning: %s\n", w.c_str());
  } catch (const ConfigError&) {
    // A bad value is reported (exit 1) by the verbs that read the configuration; the others do not need it.
  }
}

namespace {

/// The verb (and sub-verb) being parsed, e.g. "strategies list", for the hint after a usage error.
std::string verb_path(CLI::App& app) {
  std::string path;
  for (CLI::App* cur = &app;;) {
    const auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    path += (path.empty() ? "" : " ") + cur->get_name();
  }
  return path;
}

}  // namespace

int cli_main(int argc, char** argv) {
  CLI::App app{"qtos - GPU-accelerated AI hedge-fund operating system", "qtos"};
  app.require_subcommand(1);
  app.fallthrough();
  CliContext ctx;
  app.add_option("--env-file", ctx.env_file, "read QT_* settings from this .env file (default: ./.env when present)")
      ->check(CLI::ExistingFile);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log debug detail");
  app.parse_complete_callback([&] {
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
    ctx.config_warnings_print();
  });

  verbs_version_register(app, ctx);
  verbs_config_register(app, ctx);
  verbs_data_register(app, ctx);
  verbs_demo_register(app, ctx);
  verbs_retrain_register(app, ctx);
  verbs_models_register(app, ctx);
  verbs_events_register(app, ctx);
  verbs_rank_register(app, ctx);
  verbs_indicators_register(app, ctx);
  verbs_evolve_register(app, ctx);
  verbs_backtest_strategy_register(app, ctx);
  verbs_strategies_register(app, ctx);
  verbs_backtest_register(app, ctx);
  verbs_orders_register(app, ctx);
  verbs_serve_register(app, ctx);
  verbs_worker_register(app, ctx);

  // Name an unknown verb instead of CLI11's generic "a subcommand is required".
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--env-file") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    bool known = false;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) known |= sub->check_name(arg);
    if (!known) {
      std::fprintf(stderr, "qtos: error: unknown verb '%s'; run 'qtos --help' for the list\n", arg.c_str());
      return 2;
    }
    break;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version: printed, status 0
  } catch (const CLI::ParseError& e) {
    // Every usage error exits 2 (README), not CLI11's own codes (104-106, 109, ...).
    const std::string verb = verb_path(app);
    std::fflush(stdout);
    std::fprintf(stderr, "qtos: error: %s\nrun 'qtos %s--help' for the options\n", e.what(), verb.empty() ? "" : (verb + " ").c_str());
    return 2;
  } catch (const UsageError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qtos: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qtos: error: %s\n", e.what());
    return 1;
  }
  std::fflush(stdout);
  return ctx.exit_code;
}

}  // namespace qtos::api
