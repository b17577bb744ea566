#include "runtime/service/service.hpp"

#include <stdexcept>

#include <spdlog/spdlog.h>

namespace qtos {

bool service_transition_allowed(ServiceState from, ServiceState to) {
  using S = ServiceState;
  switch (from) {
    case S::created: return to == S::starting || to == S::stopped;
    case S::starting: return to == S::running || to == S::faulted || to == S::stopped;
    case S::running: return to == S::degraded || to == S::faulted || to == S::stopped;
    case S::degraded: return to == S::running || to == S::faulted || to == S::stopped;
    case S::faulted: return to == S::starting || to == S::stopped;
    case S::stopped: return to == S::starting;
  }
  return false;
}

HealthLevel service_state_health(ServiceState state) {
  switch (state) {
    case ServiceState::degraded: return HealthLevel::degraded;
    case ServiceState::faulted: return HealthLevel::failing;
    default: return HealthLevel::healthy;
  }
}

Service::Service(std::string name, SubsystemMode mode, EventBus& bus)
    : name_(std::move(name)), source_(name_), mode_(mode), bus_(bus) {
  if (name_.empty()) throw std::invalid_argument("Service: the name is empty");
}

Service::~Service() = default;

void Service::transition(ServiceState to, std::string_view reason) {
  const ServiceState from = state_;
  if (!service_transition_allowed(from, to))
    throw std::logic_error("service '" + name_ + "': transition " + std::string(enum_name(from)) + " -> " +
                           std::string(enum_name(to)) + " is not allowed");
  state_ = to;
  last_reason_ = std::string(reason);
  spdlog::debug("service {}: {} -> {} ({})", name_, enum_name(from), enum_name(to), reason);
  bus_.publish(source_, ServiceStateChanged{.service = source_, .previous = from, .current = to, .mode = mode_,
                                            .reason = last_reason_});
  const HealthLevel before = service_state_health(from), after = service_state_health(to);
  if (before != after)
    bus_.publish(source_, HealthStatusChanged{.component = source_, .previous = before, .current = after,
                                              .error_count = 0, .detail = last_reason_});
}

void Service::release() {
  subscriptions_.clear();
  timers_.clear();
}

bool Service::start() {
  if (mode_ == SubsystemMode::off) {
    spdlog::debug("service {}: mode OFF, not started", name_);
    return false;
  }
  transition(ServiceState::starting, "start");
  try {
    on_start();
  } catch (const std::exception& e) {
    release();
    transition(ServiceState::faulted, std::string("start failed: ") + e.what());
    spdlog::error("service {}: start failed: {}", name_, e.what());
    return false;
  }
  transition(ServiceState::running, "started");
  return true;
}

void Service::stop(std::string_view reason) {
  if (state_ == ServiceState::stopped) return;
  try {
    on_stop();
  } catch (const std::exception& e) {
    spdlog::error("service {}: on_stop failed: {}", name_, e.what());
  }
  release();
  transition(ServiceState::stopped, reason);
}

void Service::degrade(std::string_view reason) { transition(ServiceState::degraded, reason); }

void Service::recover(std::string_view reason) {
  if (state_ != ServiceState::degraded)
    throw std::logic_error("service '" + name_ + "': recover() needs DEGRADED, the state is " + std::string(enum_name(state_)));
  transition(ServiceState::running, reason);
}

void Service::fault(std::string_view reason) {
  release();
  transition(ServiceState::faulted, reason);
}

void Service::set_mode(SubsystemMode mode, std::string_view reason) {
  if (mode == mode_) return;
  mode_ = mode;
  if (mode == SubsystemMode::off && (state_ == ServiceState::running || state_ == ServiceState::degraded ||
                                     state_ == ServiceState::starting)) {
    stop(reason);
    return;
  }
  last_reason_ = std::string(reason);
  bus_.publish(source_, ServiceStateChanged{.service = source_, .previous = state_, .current = state_, .mode = mode_,
                                            .reason = last_reason_});
}

void Service::every(TimeNs period, TimerCallback job) {
  timers_.push_back(bus_.clock().schedule_every(period, [this, job = std::move(job)](TimeNs now) {
    try {
      job(now);
    } catch (const std::exception& e) {
      spdlog::error("service {}: periodic job failed: {}", name_, e.what());
      if (state_ == ServiceState::running) degrade(std::string("periodic job failed: ") + e.what());
    }
  }));
}

}  // namespace qtos
