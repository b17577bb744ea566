// `qtos config show`: the effective configuration, where each value came from, and each subsystem's mode.
#include <cstdio>
#include <iostream>

#include <boost/json.hpp>

#include "api/verbs.hpp"

namespace qtos::api {

void verbs_config_register(CLI::App& app, CliContext& ctx) {
  auto* config = app.add_subcommand("config", "inspect the configuration (QT_* variables and .env)");
  config->require_subcommand(1);
  auto* show = config->add_subcommand("show", "print the effective configuration and where each value came from");
  auto format = std::make_shared<std::string>("table");
  show->add_option("--format", *format, "table or json")->check(CLI::IsMember({"table", "json"}));
  show->callback([&ctx, format] {
    const Config& c = ctx.config();
    if (*format == "json") {
      boost::json::object root, vars, subs;
      for (const auto& [name, e] : c.entries) vars[name] = {{"value", e.value}, {"source", source_name(e.source)}};
      for (std::size_t i = 0; i < kSubsystemCount; ++i) {
        const auto& s = c.subsystems[i];
        subs[subsystem_name(static_cast<Subsystem>(i))] = {
            {"enabled", s.enabled}, {"mode", mode_name(s.mode)}, {"source", source_name(s.source)}, {"note", s.note}};
      }
      root["stage"] = stage_name(c.stage);
      root["variables"] = std::move(vars);
      root["subsystems"] = std::move(subs);
      boost::json::array warns;
      for (const auto& w : c.warnings) warns.emplace_back(w);
      root["warnings"] = std::move(warns);
      std::cout << boost::json::serialize(root) << "\n";
      return;
    }
    std::printf("integration stage: %s\n\n", std::string(stage_name(c.stage)).c_str());
    std::printf("%-18s %-8s %-10s %-13s %s\n", "SUBSYSTEM", "ENABLED", "MODE", "SOURCE", "NOTE");
    for (std::size_t i = 0; i < kSubsystemCount; ++i) {
      const auto& s = c.subsystems[i];
      std::printf("%-18s %-8s %-10s %-13s %s\n", std::string(subsystem_name(static_cast<Subsystem>(i))).c_str(),
                  s.enabled ? "yes" : "no", std::string(mode_name(s.mode)).c_str(), std::string(source_name(s.source)).c_str(),
                  s.note.c_str());
    }
    std::printf("\n%-40s %-22s %s\n", "VARIABLE", "VALUE", "SOURCE");
    for (const auto& [name, e] : c.entries)
      std::printf("%-40s %-22s %s\n", name.c_str(), e.value.c_str(), std::string(source_name(e.source)).c_str());
    // Warnings went to stderr before the verb ran (CliContext::config_warnings_print), as for every verb.
  });
}

}  // namespace qtos::api
