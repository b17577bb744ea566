#pragma once
/// @file The base of the AI subsystems (MSC AI, AI-HFOS, PIL, PBA, PAL, Self-Healing, AELM): a Service on the bus (its
/// lifecycle, subscriptions, timers) and a TradingSubsystem (the hooks it answers) sharing one mode, so that a mode
/// change over the API applies at the next hook call. It counts its decisions, keeps the last one for health_ai(), and
/// writes each to its decision log in the house format `[AI-HFOS] ADVISORY mode - Adjusting confidence threshold:
/// 0.45 -> 0.55`. docs/SUBSYSTEMS.md describes each subsystem.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/bus/event_bus.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/config/config.hpp"
#include "runtime/executor/hooks.hpp"
#include "runtime/service/service.hpp"

namespace spdlog {
class logger;
}

namespace qtos {

/// One subsystem as health_ai() and the API show it.
struct SubsystemStatus {
  std::string name;                      ///< "AI-HFOS", "PIL", ...
  bool initialized = false;              ///< started and not faulted
  SubsystemMode mode = SubsystemMode::off;  ///< current mode
  ServiceState state = ServiceState::created;  ///< lifecycle state
  std::uint64_t decisions = 0;           ///< decisions taken so far (OBSERVE included: what it would have done)
  std::string last_decision;             ///< the last decision's sentence ("" before the first)
  TimeNs last_decision_at = 0;           ///< its clock time
  std::uint64_t errors = 0;              ///< errors counted so far
  std::uint64_t applied = 0;             ///< decisions that changed what the system does
  std::map<std::string, std::uint64_t> actions;  ///< decisions by action ("CLASSIFY", "SCALE_IN", ...)
};

/// The system risk mode of AI-HFOS, from calm to alarmed.
enum class SystemRiskMode : std::uint8_t { aggressive, normal, safe, critical };
QTOS_ENUM_NAMES(SystemRiskMode, "AGGRESSIVE", "NORMAL", "SAFE", "CRITICAL");

/// The one set of directives AI-HFOS issues to every subsystem on its interval.
struct HfosDirective {
  SystemRiskMode mode = SystemRiskMode::normal;  ///< the system risk mode
  double confidence_threshold = 0;               ///< the threshold a signal must reach (0: the policy's)
  double size_scale = 1;                         ///< position-size scale, in [0.6, 1]
  bool allow_new_trades = true;                  ///< false: no new entries (CRITICAL)
  OrderType preferred_order_type = OrderType::market;  ///< MARKET, or LIMIT when execution must be careful
  TimeNs issued_at = 0;                          ///< clock time (0: never issued)
  std::string reason;                            ///< the inputs that decided it
};

/// Read access to AI-HFOS's current directive (AELM prefers its order type, PAL stops amplifying in SAFE).
class HfosDirectiveSource {
 public:
  virtual ~HfosDirectiveSource() = default;
  /// The directive in force (the default one before the first issue).
  virtual const HfosDirective& directive() const = 0;
};

/// Read access to the Portfolio Balancer's limits: PAL asks before a scale-in (protective beats enhancing).
class PortfolioGate {
 public:
  virtual ~PortfolioGate() = default;
  /// True when adding `add_notional` (quote) to `symbol` keeps every exposure limit; otherwise `why` names the limit
  /// ("exposure 15% / 20% limit").
  virtual bool add_allowed(const Symbol& symbol, double add_notional, std::string& why) const = 0;
};

/// Base of the AI subsystems. Owner thread, like the bus.
class AiSubsystem : public Service, public TradingSubsystem {
 public:
  /// A subsystem named `name` in `mode` on `bus`; its decisions go to `<log_dir>/ai_subsystem_<name>.log` too ("" : only
  /// the process log).
  AiSubsystem(std::string name, SubsystemMode mode, EventBus& bus, std::string log_dir = "");
  ~AiSubsystem() override;

  std::string name() const override { return Service::name(); }
  SubsystemMode mode() const override { return Service::mode(); }
  /// Its state for health_ai().
  SubsystemStatus status() const;
  /// Decisions so far.
  std::uint64_t decisions() const { return decisions_; }
  /// The last decision's sentence.
  const std::string& last_decision() const { return last_decision_; }

 protected:
  /// Counts a decision, keeps it as the last one, logs `[NAME] MODE mode - text` and publishes SubsystemDecided
  /// (`action` in capitals; `applied`: whether it changed what the system does; `symbol`: empty for the whole system).
  /// Call it when something is decided or changes, not on every bar.
  void decide(std::string_view action, std::string_view text, bool applied, const Symbol& symbol = {});
  /// Counts an error and logs it (`[NAME] MODE mode - error: text`).
  void error(std::string_view text);
  /// True from ADVISORY up: soft adjustments apply.
  bool soft() const { return mode() >= SubsystemMode::advisory; }
  /// True in ENFORCED and PROTECTIVE: blocks, exits and actions apply.
  bool hard() const { return mode() >= SubsystemMode::enforced; }
  /// Nothing to subscribe by default.
  void on_start() override {}

 private:
  std::shared_ptr<spdlog::logger> log_;
  std::uint64_t decisions_ = 0;
  std::uint64_t errors_ = 0;
  std::uint64_t applied_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> actions_;
  std::string last_decision_;
  TimeNs last_decision_at_ = 0;
};

}  // namespace qtos
