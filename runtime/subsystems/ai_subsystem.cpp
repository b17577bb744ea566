// The base of the AI subsystems: one mode for the service and the hooks, decision counting and the decision log.
#include "runtime/subsystems/ai_subsystem.hpp"

#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

namespace qtos {

AiSubsystem::AiSubsystem(std::string name, SubsystemMode mode, EventBus& bus, std::string log_dir)
    : Service(std::move(name), mode, bus), log_(subsystem_log(log_dir, Service::name())) {}

AiSubsystem::~AiSubsystem() {
  if (log_) log_->flush();
}

SubsystemStatus AiSubsystem::status() const {
  SubsystemStatus s;
  s.name = Service::name();
  s.state = state();
  s.initialized = s.state == ServiceState::running || s.state == ServiceState::degraded;
  s.mode = mode();
  s.decisions = decisions_;
  s.last_decision = last_decision_;
  s.last_decision_at = last_decision_at_;
  s.errors = errors_;
  s.applied = applied_;
  s.actions.insert(actions_.begin(), actions_.end());
  return s;
}

void AiSubsystem::decide(std::string_view action, std::string_view text, bool applied, const Symbol& symbol) {
  ++decisions_;
  applied_ += applied ? 1 : 0;
  if (auto it = actions_.find(action); it != actions_.end()) ++it->second;
  else actions_.emplace(std::string(action), 1);
  last_decision_ = std::string(text);
  last_decision_at_ = clock().now();
  const std::string line = "[" + Service::name() + "] " + std::string(mode_name(mode())) + " mode - " + last_decision_;
  // With a decision log the line goes there; the console shows it only at debug level.
  if (log_) {
    spdlog::debug("{}", line);
    log_->info("{}", line);
  } else {
    spdlog::info("{}", line);
  }
  SubsystemDecided ev;
  ev.subsystem = SourceName(std::string_view(Service::name()).substr(0, SourceName::kCapacity));
  ev.mode = mode();
  ev.action = std::string(action);
  ev.symbol = symbol;
  ev.detail = last_decision_;
  ev.applied = applied;
  publish(std::move(ev));
}

void AiSubsystem::error(std::string_view text) {
  ++errors_;
  const std::string line = "[" + Service::name() + "] " + std::string(mode_name(mode())) + " mode - error: " + std::string(text);
  spdlog::warn("{}", line);
  if (log_) log_->info("{}", line);
}

}  // namespace qtos
