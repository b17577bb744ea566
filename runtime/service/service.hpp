#pragma once
/// @file The base of every service: an explicit lifecycle checked against a transition table, a mode, a health,
/// subscriptions and timers that are released when the service stops or faults, and every change published as
/// ServiceStateChanged (and HealthStatusChanged when the health level changes).
///
/// Transitions (anything else throws std::logic_error):
///   created  -> starting | stopped
///   starting -> running | faulted | stopped
///   running  -> degraded | faulted | stopped
///   degraded -> running | faulted | stopped
///   faulted  -> starting | stopped          (a restart by self-healing, or a shutdown)
///   stopped  -> starting                    (a restart)

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/bus/event_bus.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/config.hpp"

namespace qtos {

/// True when the lifecycle allows `from -> to`.
bool service_transition_allowed(ServiceState from, ServiceState to);
/// The health a lifecycle state implies: degraded -> DEGRADED, faulted -> FAILING, otherwise HEALTHY.
HealthLevel service_state_health(ServiceState state);

/// A service on the bus owner thread. Derived classes implement on_start() (subscribe, schedule) and may
/// implement on_stop().
class Service {
 public:
  /// A service named `name` (at most 31 characters) in `mode`, on `bus` (which must outlive it).
  Service(std::string name, SubsystemMode mode, EventBus& bus);
  virtual ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// created/stopped/faulted -> starting -> running. A service in mode OFF is not started (stays as it is;
  /// returns false). When on_start() throws, the service ends faulted with the message and start() returns false.
  bool start();
  /// -> stopped: calls on_stop() (an exception there is logged) and releases subscriptions and timers.
  void stop(std::string_view reason = "stopped");
  /// running -> degraded (still working, with reduced function).
  void degrade(std::string_view reason);
  /// degraded -> running.
  void recover(std::string_view reason);
  /// starting/running/degraded -> faulted; releases subscriptions and timers.
  void fault(std::string_view reason);
  /// Changes the mode and publishes it; switching to OFF stops a running service.
  void set_mode(SubsystemMode mode, std::string_view reason);

  /// The service name.
  const std::string& name() const { return name_; }
  /// The lifecycle state.
  ServiceState state() const { return state_; }
  /// The mode.
  SubsystemMode mode() const { return mode_; }
  /// The health implied by the state.
  HealthLevel health() const { return service_state_health(state_); }
  /// Why the last transition happened.
  const std::string& last_reason() const { return last_reason_; }
  /// Subscriptions currently held.
  std::size_t subscription_count() const { return subscriptions_.size(); }
  /// Timers currently held.
  std::size_t timer_count() const { return timers_.size(); }

 protected:
  /// Subscribe and schedule here. Throwing faults the service.
  virtual void on_start() = 0;
  /// Flush or close what the service holds. Subscriptions and timers are released afterwards by the base.
  virtual void on_stop() {}

  /// Subscribes to E for the lifetime of this run of the service.
  template <BusEvent E, class F>
  void subscribe(F&& handler) {
    subscriptions_.push_back(bus_.subscribe<E>(name_, std::forward<F>(handler)));
  }
  /// Subscribes to a topic pattern for the lifetime of this run of the service.
  template <class F>
  void subscribe_topics(std::string_view pattern, F&& handler) {
    subscriptions_.push_back(bus_.subscribe_topics(name_, pattern, std::forward<F>(handler)));
  }
  /// Runs `job` every `period` on the bus clock; a job that throws degrades the service instead of escaping.
  void every(TimeNs period, TimerCallback job);
  /// Publishes `event` with this service as its source.
  template <BusEvent E>
  void publish(E event) {
    bus_.publish(source_, std::move(event));
  }
  /// The bus.
  EventBus& bus() { return bus_; }
  /// The bus clock.
  Clock& clock() { return bus_.clock(); }

 private:
  void transition(ServiceState to, std::string_view reason);
  void release();

  std::string name_;
  SourceName source_;
  SubsystemMode mode_;
  EventBus& bus_;
  ServiceState state_ = ServiceState::created;
  std::string last_reason_;
  std::vector<Subscription> subscriptions_;
  std::vector<Timer> timers_;
};

}  // namespace qtos
