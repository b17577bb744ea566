#pragma once
/// @file The AI subsystems composed: every subsystem built from the configuration on one bus, wired to each other
/// (PAL asks PBA and AI-HFOS, AELM follows AI-HFOS's directive, Self-Healing watches the others), in the order the hook
/// pipeline asks them, and health_ai() — the design documents' health shape that `GET /health/ai` serves.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/bus/event_bus.hpp"
#include "runtime/config/config.hpp"
#include "runtime/exchange/exchange.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/subsystems/ai_subsystem.hpp"

namespace qtos {

class MetaStrategyController;
class AiHfos;
class PortfolioBalancer;
class PositionIntelligence;
class ProfitAmplification;
class ExecutionLayerManager;
class SelfHealing;

/// What the subsystems are built on; every reference must outlive the set.
struct SubsystemDeps {
  const Config& config;      ///< modes, intervals and limits
  EventBus& bus;             ///< the bus (its owner thread runs them)
  PolicyStore& policy;       ///< MSC and Self-Healing write it; the others read it
  const Exchange& exchange;  ///< PBA reads the account's equity
  std::string log_dir;       ///< decision logs ("" : the process log only)
};

/// The seven AI subsystems. A subsystem that the configuration leaves OFF is built too (in mode OFF: asked by no hook,
/// started by nobody), so an operator can raise its mode at once and health_ai() lists it.
class SubsystemSet {
 public:
  /// Builds them all; throws std::invalid_argument from a subsystem whose options are out of range.
  explicit SubsystemSet(const SubsystemDeps& deps);
  ~SubsystemSet();
  SubsystemSet(const SubsystemSet&) = delete;
  SubsystemSet& operator=(const SubsystemSet&) = delete;

  /// In the order the pipeline asks them (docs/SUBSYSTEMS.md): AI-HFOS, PBA, PIL, PAL, AELM, SELF_HEALING, then MSC-AI
  /// (which answers no hook; it acts through the policy store).
  std::vector<std::shared_ptr<TradingSubsystem>> pipeline_order() const;
  /// Every subsystem, in pipeline order.
  const std::vector<std::shared_ptr<AiSubsystem>>& all() const { return all_; }
  /// The subsystem named `name` ("AI-HFOS", "PIL", ...; case-insensitive), or null.
  AiSubsystem* find(std::string_view name) const;
  /// Starts every subsystem that is not OFF and not running; returns the names of those that failed to start.
  std::vector<std::string> start();
  /// Stops every running subsystem.
  void stop(std::string_view reason);

  std::shared_ptr<MetaStrategyController> msc;   ///< MSC-AI
  std::shared_ptr<AiHfos> hfos;                  ///< AI-HFOS
  std::shared_ptr<PortfolioBalancer> pba;        ///< PBA
  std::shared_ptr<PositionIntelligence> pil;     ///< PIL
  std::shared_ptr<ProfitAmplification> pal;      ///< PAL
  std::shared_ptr<ExecutionLayerManager> aelm;   ///< AELM
  std::shared_ptr<SelfHealing> healing;          ///< SELF_HEALING

 private:
  std::vector<std::shared_ptr<AiSubsystem>> all_;
};

/// The AI part of the system's health, in the design documents' shape.
struct HealthAi {
  bool initialized = false;                         ///< every active subsystem started and none faulted
  IntegrationStage integration_stage = IntegrationStage::observation;  ///< QT_AI_INTEGRATION_STAGE
  std::vector<SubsystemStatus> services;            ///< each subsystem's state, in pipeline order
  bool emergency_brake = false;                     ///< the brake is pulled
};

/// The health of `set` under `stage` with the brake as given.
HealthAi health_ai(const SubsystemSet& set, IntegrationStage stage, bool emergency_brake);
/// As JSON: {"initialized", "integration_stage", "services": {name: {initialized, mode, state, decisions, applied,
/// last_decision, last_decision_at, error_count, actions}}, "emergency_brake"}.
std::string health_ai_json(const HealthAi& health);

/// A replay factory building the whole set on the replay's bus (ReplayOptions::subsystem_factory); `*out` receives
/// the set so the caller can read the subsystems' counts after the run (it may be null).
ReplaySubsystemFactory subsystem_set_factory(std::shared_ptr<SubsystemSet>* out = nullptr);

}  // namespace qtos
