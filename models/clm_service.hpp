#pragma once
/// @file The models' bus service ("continuous_learning"): the ContinuousLearningManager, the ModelSupervisor and the
/// RetrainingOrchestrator wired to the event bus. Triggers in: the cron schedule (checked every minute on the bus
/// clock), RegimeChanged, new data (data_updated), degradation found by the supervisor. Out: ModelPromoted and
/// HealthStatusChanged, posted from the retraining worker or published on the owner thread, and SubsystemDecided for
/// each orchestrator decision (RETRAIN, PROMOTE). ModelPromoted in restarts the promoted model's live record.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "models/continuous_learning.hpp"
#include "models/supervision.hpp"
#include "runtime/service/service.hpp"

namespace qtos::models {

/// Settings of the service beyond those of its parts.
struct ClmServiceOptions {
  ClmOptions clm;                    ///< the manager
  OrchestratorOptions orchestrator;  ///< QT_AI_RETRAINING_*
  SupervisorOptions supervisor;      ///< QT_AI_MODEL_SUPERVISOR_*
  std::int64_t supervisor_eval_interval_s = 3600;  ///< QT_AI_MODEL_SUPERVISOR_EVAL_INTERVAL
  std::int32_t new_data_bars = 0;  ///< bars of growth that make a new_data trigger (0: the shadow window)
};

/// Builds the options from the configuration (QT_CLM_*, QT_AI_MODEL_SUPERVISOR_*, QT_AI_RETRAINING_*).
ClmServiceOptions clm_service_options(const Config& config);

/// The service. Runs on the bus owner thread; retraining runs on the CLM's worker thread.
class ContinuousLearningService final : public Service, private ClmSink {
 public:
  /// `bus`, `registry` and `ensemble` must outlive the service. The service mode is the orchestrator's mode.
  ContinuousLearningService(EventBus& bus, ModelRegistry& registry, EnsembleManager& ensemble, ClmServiceOptions options);
  ~ContinuousLearningService() override;

  /// The latest market data (a panel that grows on the same grid). Owner thread. Scores the supervisor's pending
  /// predictions, shadow-evaluates a waiting candidate, and fires a new_data trigger when the panel has grown by
  /// `new_data_bars` since the last retraining.
  void data_updated(std::shared_ptr<const MarketPanel> panel);
  /// The parts (for the API and tests).
  ContinuousLearningManager& clm() { return clm_; }               ///< the manager
  ModelSupervisor& supervisor() { return supervisor_; }            ///< the supervisor
  RetrainingOrchestrator& orchestrator() { return orchestrator_; }  ///< the orchestrator

 protected:
  void on_start() override;
  void on_stop() override;

 private:
  void trigger(RetrainTrigger t);
  // Publishes the orchestrator's decision as SubsystemDecided (action RETRAIN or PROMOTE; applied when it started a
  // job or promoted), like every AI subsystem's decisions: the event log shows when a retraining started and why.
  void decided(std::string_view what, const std::string& detail, OrchestratorAction action);
  void shadow_pending();
  void on_candidate(const ModelRecord& record, RetrainTrigger trigger) override;
  void on_promoted(const ModelRecord& record, std::int32_t previous) override;
  void on_health(const std::string& component, const std::string& message) override;

  ClmServiceOptions options_;
  ContinuousLearningManager clm_;
  ModelSupervisor supervisor_;
  RetrainingOrchestrator orchestrator_;
  std::shared_ptr<const MarketPanel> panel_;
  std::int32_t bars_at_last_retrain_ = 0;
  std::int64_t last_schedule_check_s_ = -1;
  std::mutex pending_mutex_;
  std::optional<std::int32_t> pending_version_;  // a CANDIDATE waiting for its shadow window
};

}  // namespace qtos::models
