// `qtos strategies list|show|promote|retire`: the strategy repository and its lifecycle from the command line.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "api/verbs.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct StrategiesArgs {
  std::string repo = "strategies.db", status, id, reason;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// The repository at --repo, opened only when the file exists: a mistyped path must not leave an empty store behind.
std::unique_ptr<StrategyRepository> repo_open_existing(const StrategiesArgs& a) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(a.repo, ec))
    throw std::runtime_error("no strategy repository at " + a.repo + " (`qtos evolve --repo " + a.repo + "` creates one)");
  return std::make_unique<StrategyRepository>(a.repo);
}

StrategyRecord must_get(const StrategyRepository& repo, const StrategiesArgs& a) {
  auto rec = repo.get(a.id);
  if (!rec) throw std::invalid_argument("strategy '" + a.id + "': not in " + a.repo + " (or the prefix matches several ids)");
  return *rec;
}

}  // namespace

void verbs_strategies_register(CLI::App& app, CliContext&) {
  auto a = std::make_shared<StrategiesArgs>();
  auto* cmd = app.add_subcommand("strategies", "the strategy repository: list, show, promote and retire strategies");
  cmd->require_subcommand(1);
  cmd->add_option("--repo", a->repo, "repository file (SQLite; qtos evolve --repo writes it)")->capture_default_str();

  auto* list = cmd->add_subcommand("list", "list stored strategies, newest first");
  list->add_option("--status", a->status, "only BACKTEST, SHADOW, LIVE or RETIRED");
  list->callback([a] {
    const std::optional<StrategyStatus> st = a->status.empty() ? std::nullopt : std::optional(strategy_status_parse(a->status));
    const auto repo = repo_open_existing(*a);
    const auto rows = repo->list(st);
    std::printf("%-16s %-8s %4s %-20s %s\n", "ID", "STATUS", "GEN", "UPDATED", "RULES");
    for (const auto& r : rows)
      std::printf("%-16s %-8s %4d %-20s %s\n", r.id.c_str(), strategy_status_name(r.status), r.generation,
                  time_format_iso(r.updated_ms).c_str(), r.rules.c_str());
    std::printf("%zu strateg%s\n", rows.size(), rows.size() == 1 ? "y" : "ies");
  });

  auto* show = cmd->add_subcommand("show", "one strategy: rules, code, metrics per stage, lifecycle history");
  show->add_option("id", a->id, "id or a unique prefix of at least 4 hex digits")->required();
  show->callback([a] {
    const auto repo_ptr = repo_open_existing(*a);
    const StrategyRepository& repo = *repo_ptr;
    const StrategyRecord r = must_get(repo, *a);
    std::printf("id         %s\nstatus     %s\nrules      %s\ncode       %s\ngeneration %d\norigin     %s\ncreated    %s\n",
                r.id.c_str(), strategy_status_name(r.status), r.rules.c_str(), genome_encode(r.genome).c_str(), r.generation,
                r.origin.c_str(), time_format_iso(r.created_ms).c_str());
    std::string parents;
    for (const auto& p : r.parents) parents += (parents.empty() ? "" : ", ") + p;
    std::printf("parents    %s\n", parents.empty() ? "- (random genome)" : parents.c_str());
    std::printf("backtest   %s\n", r.backtest_metrics.empty() ? "-" : r.backtest_metrics.c_str());
    std::printf("gaps       %s\n", r.gaps.empty() ? "- (stored before the gap policy was recorded)" : r.gaps.c_str());
    std::printf("shadow     %s\n", r.shadow_metrics.empty() ? "-" : r.shadow_metrics.c_str());
    std::printf("live       %s\n", r.live_metrics.empty() ? "-" : r.live_metrics.c_str());
    std::printf("history:\n");
    for (const auto& h : repo.history(r.id))
      std::printf("  %s  %s -> %s  %s\n", time_format_iso(h.at_ms).c_str(), strategy_status_name(h.from), strategy_status_name(h.to),
                  h.reason.c_str());
  });

  for (const char* verb : {"promote", "retire"}) {
    const bool promote = std::string(verb) == "promote";
    auto* sub = cmd->add_subcommand(verb, promote ? "move a strategy one stage on: BACKTEST -> SHADOW -> LIVE"
                                                  : "retire a strategy (from any stage)");
    sub->add_option("id", a->id, "id or a unique prefix of at least 4 hex digits")->required();
    sub->add_option("--reason", a->reason, "why (recorded in the history)")->required();
    sub->callback([a, promote] {
      const auto repo_ptr = repo_open_existing(*a);
      StrategyRepository& repo = *repo_ptr;
      const StrategyRecord r = must_get(repo, *a);
      const StrategyStatus to = !promote ? StrategyStatus::retired
                                : r.status == StrategyStatus::backtest ? StrategyStatus::shadow
                                                                        : StrategyStatus::live;
      const auto res = repo.transition(r.id, to, a->reason, now_ms());
      if (!res) throw std::invalid_argument(res.error().message);
      std::printf("%s: %s -> %s (%s)\n", r.id.c_str(), strategy_status_name(r.status), strategy_status_name(to), a->reason.c_str());
    });
  }
}

}  // namespace qtos::api
