// `qtos models list|show|promote|rollback|retire`: inspect the model registry and move versions through their stages.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <boost/json.hpp>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"
#include "models/registry.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct ModelsArgs {
  std::string registry, name, format = "table";
  std::int32_t version = 0;
};

boost::json::object record_json(const models::ModelRecord& r) {
  boost::json::object o;
  o["name"] = r.name;
  o["version"] = r.version;
  o["status"] = models::model_status_name(r.status);
  o["kind"] = r.kind;
  o["dir"] = r.dir;
  o["parent_version"] = r.parent_version;
  o["created"] = time_format_iso(r.created_ms);
  o["updated"] = time_format_iso(r.updated_ms);
  boost::json::object sm;
  for (const auto& [stage, text] : r.stage_metrics) sm[stage] = boost::json::parse(text);
  o["stage_metrics"] = std::move(sm);
  return o;
}

std::string metric_cell(const models::ModelRecord& r, const char* key) {
  const auto it = r.stage_metrics.find("CANDIDATE");
  if (it == r.stage_metrics.end()) return "-";
  const auto m = models::Metrics::from_json(it->second);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", std::string(key) == "acc" ? m.directional_accuracy : m.rank_ic);
  return buf;
}

/// True when a registry has been created at `dir` (its index file exists); opening one that has not would create it.
bool registry_exists(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / "registry.db", ec);
}

/// The registry at `dir`, opened only when it exists: a mistyped --registry must not leave an empty store behind.
std::unique_ptr<models::ModelRegistry> registry_open_existing(const std::string& dir) {
  if (!registry_exists(dir))
    throw std::runtime_error("no model registry at " + dir + " (expected DIR/registry.db; `qtos retrain` creates one)");
  return std::make_unique<models::ModelRegistry>(dir, models::RegistryOptions{.mode = store::OpenMode::existing});
}

models::ModelRecord record_or_throw(Result<models::ModelRecord> r) {
  if (!r.ok()) throw std::runtime_error(r.error().message);
  return std::move(r).value();
}

}  // namespace

void verbs_models_register(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand("models", "the model registry: list, show, promote, retire and roll back model versions");
  cmd->require_subcommand(1);
  auto a = std::make_shared<ModelsArgs>();
  auto add_registry = [a](CLI::App* sub) {
    sub->add_option("--registry", a->registry, "model registry directory (default: $QT_STATE_DIR/models)");
  };

  auto* list = cmd->add_subcommand("list", "every registered version with its status and test metrics");
  add_registry(list);
  list->add_option("--name", a->name, "only this model name");
  list->add_option("--format", a->format, "table or json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  list->callback([a, &ctx] {
    const std::string dir = models_registry_dir(ctx, a->registry);
    // The default registry (under QT_STATE_DIR) not existing yet just means no model was trained; a --registry given
    // by hand that does not exist is a mistake, named.
    if (a->registry.empty() && !registry_exists(dir)) {
      if (a->format == "json")
        std::cout << "[]\n";
      else
        std::printf("no models in %s (train one with `qtos retrain`)\n", dir.c_str());
      return;
    }
    const auto reg_ptr = registry_open_existing(dir);
    const models::ModelRegistry& reg = *reg_ptr;
    const auto all = reg.list(a->name);
    if (a->format == "json") {
      boost::json::array arr;
      for (const auto& r : all) arr.push_back(record_json(r));
      std::cout << boost::json::serialize(arr) << "\n";
      return;
    }
    if (all.empty()) {
      std::printf("no models in %s (train one with `qtos retrain`)\n", reg.root().c_str());
      return;
    }
    std::printf("%-16s %7s %-10s %-12s %6s %-20s %8s %8s\n", "NAME", "VERSION", "STATUS", "KIND", "PARENT", "CREATED",
                "TEST ACC", "TEST IC");
    for (const auto& r : all)
      std::printf("%-16s %7d %-10s %-12s %6s %-20s %8s %8s\n", r.name.c_str(), r.version,
                  std::string(models::model_status_name(r.status)).c_str(), r.kind.c_str(),
                  r.parent_version ? std::to_string(r.parent_version).c_str() : "-", time_format_iso(r.created_ms).c_str(),
                  metric_cell(r, "acc").c_str(), metric_cell(r, "ic").c_str());
  });

  auto* show = cmd->add_subcommand("show", "one version's record and metadata (default: the ACTIVE version, else the latest)");
  add_registry(show);
  show->add_option("name", a->name, "model name")->required();
  show->add_option("version", a->version, "version (default: ACTIVE, else latest)")->check(integer_range(1, 1'000'000'000));
  show->callback([a, &ctx] {
    const auto reg_ptr = registry_open_existing(models_registry_dir(ctx, a->registry));
    const models::ModelRegistry& reg = *reg_ptr;
    models::ModelRecord rec;
    if (a->version > 0) {
      rec = record_or_throw(reg.get(a->name, a->version));
    } else if (auto act = reg.active(a->name)) {
      rec = *act;
    } else {
      const auto all = reg.list(a->name);
      if (all.empty()) throw std::runtime_error("no model named '" + a->name + "' in " + reg.root());
      rec = all.back();
    }
    std::ifstream f(rec.dir + "/meta.json");
    std::stringstream text;
    text << f.rdbuf();
    boost::json::object o = record_json(rec);
    try {
      o["meta"] = boost::json::parse(text.str());
    } catch (const std::exception& e) {
      throw std::runtime_error("'" + rec.dir + "/meta.json' is unreadable: " + e.what());
    }
    std::cout << boost::json::serialize(o) << "\n";
  });

  auto* promote = cmd->add_subcommand("promote", "move a version one stage on: CANDIDATE -> SHADOW -> ACTIVE");
  add_registry(promote);
  promote->add_option("name", a->name, "model name")->required();
  promote->add_option("version", a->version, "version")->required()->check(integer_range(1, 1'000'000'000));
  promote->callback([a, &ctx] {
    const auto reg_ptr = registry_open_existing(models_registry_dir(ctx, a->registry));
    models::ModelRegistry& reg = *reg_ptr;
    const auto before = record_or_throw(reg.get(a->name, a->version));
    const auto prev = reg.active(a->name);
    const auto after = record_or_throw(reg.promote(a->name, a->version));
    std::printf("%s v%d: %s -> %s", after.name.c_str(), after.version, std::string(models::model_status_name(before.status)).c_str(),
                std::string(models::model_status_name(after.status)).c_str());
    if (after.status == models::ModelStatus::active && prev) std::printf(" (v%d retired)", prev->version);
    std::printf("\n");
  });

  auto* rollback = cmd->add_subcommand("rollback", "make a RETIRED version ACTIVE again (the ACTIVE one is retired)");
  add_registry(rollback);
  rollback->add_option("name", a->name, "model name")->required();
  rollback->add_option("version", a->version, "the RETIRED version to reactivate")->required()->check(integer_range(1, 1'000'000'000));
  rollback->callback([a, &ctx] {
    const auto reg_ptr = registry_open_existing(models_registry_dir(ctx, a->registry));
    models::ModelRegistry& reg = *reg_ptr;
    const auto prev = reg.active(a->name);
    const auto after = record_or_throw(reg.reactivate(a->name, a->version));
    std::printf("%s v%d: RETIRED -> ACTIVE", after.name.c_str(), after.version);
    if (prev) std::printf(" (v%d retired)", prev->version);
    std::printf("\n");
  });

  auto* retire = cmd->add_subcommand("retire", "move a version to RETIRED");
  add_registry(retire);
  retire->add_option("name", a->name, "model name")->required();
  retire->add_option("version", a->version, "version")->required()->check(integer_range(1, 1'000'000'000));
  retire->callback([a, &ctx] {
    const auto reg_ptr = registry_open_existing(models_registry_dir(ctx, a->registry));
    models::ModelRegistry& reg = *reg_ptr;
    const auto before = record_or_throw(reg.get(a->name, a->version));
    const auto after = record_or_throw(reg.retire(a->name, a->version));
    std::printf("%s v%d: %s -> RETIRED\n", after.name.c_str(), after.version,
                std::string(models::model_status_name(before.status)).c_str());
  });
}

}  // namespace qtos::api
