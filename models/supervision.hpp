#pragma once
/// @file ModelSupervisor (live accuracy/IC of each ensemble member on realised outcomes, weight recommendations,
/// degradation detection) and RetrainingOrchestrator (turns triggers into retraining jobs and, only with
/// AUTO_DEPLOY in ENFORCED mode, lets the CLM's promotion rule deploy). Both are driven by calls (bar closes,
/// triggers, shadow reports) so the event-bus adapter stays a thin layer.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/util/enum_names.hpp"
#include "models/continuous_learning.hpp"
#include "models/ensemble.hpp"
#include "runtime/config/config.hpp"

namespace qtos::models {

/// QT_AI_MODEL_SUPERVISOR_* and the degradation rule.
struct SupervisorOptions {
  SubsystemMode mode = SubsystemMode::observe;  ///< OFF/OBSERVE: measure only; ADVISORY: recommend; ENFORCED: set weights
  std::int32_t window = 5000;       ///< most recent (prediction, outcome) pairs kept per model
  std::int32_t min_outcomes = 200;  ///< pairs needed before a model is judged
  double degraded_ic = 0.0;         ///< live rank IC at or below this is degradation
};

/// One model's live record.
struct LiveStats {
  std::string model;          ///< the member's name ("name@vN")
  std::int64_t outcomes = 0;          ///< pairs in the window
  double accuracy = 0.0, rank_ic = 0.0;  ///< live directional accuracy and Spearman IC
  double weight = 0.0;                ///< recommended weight (normalised over judged models; 0 when not judged)
  bool degraded = false;  ///< judged and IC <= degraded_ic
};

/// What one evaluation found and did.
struct SupervisorReport {
  std::vector<LiveStats> models;  ///< one per ensemble member
  bool weights_applied = false;          ///< ENFORCED set them on the ensemble
  std::vector<std::string> retrain_requests;  ///< models found degraded
};

/// Tracks every ensemble member's predictions and scores them once their horizon has passed. Thread-safe.
class ModelSupervisor {
 public:
  /// `ensemble` must outlive the supervisor. Throws std::invalid_argument on a bad option.
  ModelSupervisor(EnsembleManager& ensemble, SupervisorOptions options);
  /// At a bar close: scores the predictions made H bars ago against the realised returns, then records each
  /// member's predictions at `t`. Members that cannot predict at `t` are skipped.
  void observe(const kernels::PanelView& panel, std::int32_t t);
  /// Computes live accuracy and IC per member, recommends weights proportional to max(IC, 0) + 0.01, applies them
  /// in ENFORCED mode, and lists degraded members (IC <= degraded_ic over at least min_outcomes pairs).
  SupervisorReport evaluate();
  /// A version of `model` (registry name) became ACTIVE (ModelPromoted): the live windows of its other versions are
  /// dropped, so the model's live accuracy and IC restart from the promotion, and a version that serves again later (a
  /// rollback) starts from an empty window instead of resuming its old one. Other models are untouched.
  void model_promoted(const std::string& model, std::int32_t version);
  /// The live record of one member ("name@vN") as evaluate() computes it, without the weight (outcomes 0 when it has
  /// no window).
  LiveStats live(const std::string& member) const;

 private:
  struct Track {
    std::map<std::int32_t, std::vector<float>> pending;  // bar -> expected returns per symbol
    std::deque<std::pair<float, float>> pairs;           // (prediction, realised)
  };
  LiveStats stats_locked(const std::string& member) const;
  EnsembleManager& ensemble_;
  SupervisorOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Track> tracks_;
};

/// What the orchestrator did with a trigger or a shadow report.
enum class OrchestratorAction { ignored, logged, retrain_started, retrain_busy, promotion_recommended, promoted, promotion_refused };
QTOS_ENUM_NAMES(OrchestratorAction, "ignored", "logged", "retrain_started", "retrain_busy", "promotion_recommended", "promoted",
                "promotion_refused");
/// Lower-case name of an action.
std::string_view orchestrator_action_name(OrchestratorAction a);

/// QT_AI_RETRAINING_* settings.
struct OrchestratorOptions {
  bool enabled = false;                         ///< QT_AI_RETRAINING_ENABLED
  SubsystemMode mode = SubsystemMode::observe;  ///< QT_AI_RETRAINING_MODE
  bool auto_deploy = false;  ///< QT_AI_RETRAINING_AUTO_DEPLOY
};

/// Turns triggers into CLM jobs: OFF ignores, OBSERVE only logs, ADVISORY and ENFORCED start jobs. A passing
/// shadow report is deployed only in ENFORCED mode with AUTO_DEPLOY; otherwise the promotion is recommended.
class RetrainingOrchestrator {
 public:
  /// `clm` must outlive the orchestrator.
  RetrainingOrchestrator(ContinuousLearningManager& clm, OrchestratorOptions options);
  /// A retraining trigger (schedule, degradation from the supervisor, regime change, new data).
  OrchestratorAction on_trigger(RetrainTrigger trigger, std::shared_ptr<const MarketPanel> panel);
  /// A finished shadow evaluation.
  OrchestratorAction on_shadow_report(const ShadowReport& report);
  /// Every decision so far, oldest first, as "action: detail" lines (what OBSERVE mode reports).
  std::vector<std::string> log() const;

 private:
  OrchestratorAction note(OrchestratorAction a, const std::string& detail);
  ContinuousLearningManager& clm_;
  OrchestratorOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::string> log_;
};

}  // namespace qtos::models
