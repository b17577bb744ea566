#pragma once
/// @file ContinuousLearningManager: retrains a model on fresh data (off the caller's thread, cancellable), evaluates
/// candidates against the ACTIVE version on a shadow window of data neither has seen, and promotes a candidate only
/// when it beats the active version by a margin. It reports through a ClmSink; the event-bus adapter (ModelPromoted,
/// health events, RegimeChanged in) is wired once the bus exists.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cpu/util/enum_names.hpp"
#include "models/ensemble.hpp"
#include "models/model.hpp"
#include "models/registry.hpp"
#include "runtime/clock/cron.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/util/result.hpp"

namespace qtos::models {

/// The metric the promotion rule compares.
enum class PromotionMetric { rank_ic, sharpe, directional_edge };
QTOS_ENUM_NAMES(PromotionMetric, "rank_ic", "sharpe", "directional_edge");
/// "rank_ic", "sharpe" or "directional_edge".
std::string_view promotion_metric_name(PromotionMetric m);
/// The metric's value in `m` (directional_edge = accuracy - 0.5).
double promotion_metric_value(PromotionMetric metric, const Metrics& m);

/// True when `candidate` beats `active` by `margin` relative to |active| (with a floor on |active| of 0.01 so that
/// a near-zero active value still needs a real improvement): candidate - active >= margin * max(|active|, 0.01).
bool promotion_rule_passes(double candidate, double active, double margin);

/// Why a retraining was asked for.
enum class RetrainTrigger { schedule, degradation, regime_change, new_data, manual };
QTOS_ENUM_NAMES(RetrainTrigger, "schedule", "degradation", "regime_change", "new_data", "manual");
/// "schedule", "degradation", "regime_change", "new_data", "manual".
std::string_view retrain_trigger_name(RetrainTrigger t);

/// Where the manager reports. Called from the retraining worker thread for progress and job results.
class ClmSink {
 public:
  virtual ~ClmSink() = default;
  /// One epoch of a running retraining job.
  virtual void on_progress(const std::string& /*name*/, const EpochReport& /*report*/) {}
  /// A retraining job registered a CANDIDATE.
  virtual void on_candidate(const ModelRecord& /*record*/, RetrainTrigger /*trigger*/) {}
  /// A version became ACTIVE (`previous` = 0 when none was).
  virtual void on_promoted(const ModelRecord& /*record*/, std::int32_t /*previous*/) {}
  /// Something failed (training, loading); the ACTIVE model is untouched.
  virtual void on_health(const std::string& /*component*/, const std::string& /*message*/) {}
};

/// How the manager trains and judges.
struct ClmOptions {
  bool enabled = false;                                         ///< QT_CLM_ENABLED
  CronSchedule schedule = CronSchedule::parse("0 2 * * 0");     ///< QT_CLM_RETRAIN_SCHEDULE
  std::int64_t shadow_days = 7;                                 ///< QT_CLM_SHADOW_DAYS
  double margin = 0.15;                                         ///< candidate must beat active by 15%
  PromotionMetric metric = PromotionMetric::rank_ic;
  std::string model_name = "mlp";                               ///< registry name the manager maintains
  ModelKind kind = ModelKind::mlp;  ///< architecture of retrained versions
  ModelHyper hyper;                 ///< their sizes
  FeatureSpec spec;                 ///< the current feature spec
  TrainOptions train;                                           ///< on_epoch/cancelled are set by the manager
};

/// The shadow comparison of a candidate with the ACTIVE version (if any) on the same unseen bars.
struct ShadowReport {
  std::int32_t candidate_version = 0, active_version = 0;  ///< active 0: no ACTIVE version
  std::int32_t bar_begin = 0, bar_end = 0;                 ///< bars evaluated, half-open
  Metrics candidate, active;  ///< both on the same bars
  bool passes = false;  ///< the promotion rule holds (always true when there is no ACTIVE version)
};

/// Evaluates `model` on samples at bars [t_begin, t_end) of `panel` (targets must lie inside the panel).
Metrics model_evaluate_window(const Model& model, const MarketPanel& panel, std::int32_t t_begin, std::int32_t t_end);

/// The Continuous Learning Manager. Thread-safe; one retraining job at a time.
class ContinuousLearningManager {
 public:
  /// `registry`, `ensemble` and `sink` must outlive the manager. Throws std::invalid_argument on bad options.
  ContinuousLearningManager(ModelRegistry& registry, EnsembleManager& ensemble, ClmOptions options, ClmSink& sink);
  /// Cancels and joins a running job.
  ~ContinuousLearningManager();
  ContinuousLearningManager(const ContinuousLearningManager&) = delete;
  ContinuousLearningManager& operator=(const ContinuousLearningManager&) = delete;

  /// Trains on all of `panel` on the calling thread and registers a CANDIDATE. Error "cancelled" when cancel() was
  /// called, "training_failed" when training threw (reported to on_health; nothing is registered).
  Result<ModelRecord> retrain_model(const MarketPanel& panel, RetrainTrigger trigger);
  /// Starts retrain_model on a worker thread; false when a job is already running or the manager is disabled.
  bool retrain_async(std::shared_ptr<const MarketPanel> panel, RetrainTrigger trigger);
  /// Asks the running job to stop at its next mini-batch.
  void cancel();
  /// True while a job runs.
  bool running() const;
  /// Blocks until no job runs; returns the last job's result (Error "no_job" when none has run).
  Result<ModelRecord> wait();

  /// Evaluates version `version` on the last `shadow_days` of `panel`.
  Result<Metrics> evaluate_model(std::int32_t version, const MarketPanel& panel) const;
  /// Compares a CANDIDATE or SHADOW version with the ACTIVE one on bars after the candidate's training data (at
  /// least shadow_days of them). Moves a CANDIDATE to SHADOW and records both SHADOW metrics. Error
  /// "shadow_incomplete" when fewer bars than the shadow window exist after the candidate's data.
  Result<ShadowReport> run_shadow_evaluation(std::int32_t version, const MarketPanel& panel);
  /// Promotes a SHADOW version to ACTIVE when `report` passed (or `force`), reloads the ensemble (fully loaded
  /// models only) and reports on_promoted. Error "rule_failed" when the rule did not pass and not forced.
  Result<ModelRecord> promote_model(const ShadowReport& report, bool force = false);

  /// True when the schedule has a slot in (last_run_s, now_s] (UTC seconds).
  bool schedule_due(std::int64_t last_run_s, std::int64_t now_s) const;
  /// The options.
  const ClmOptions& options() const { return options_; }

 private:
  std::int32_t shadow_bars(const MarketPanel& panel) const;
  ModelRegistry& registry_;
  EnsembleManager& ensemble_;
  ClmOptions options_;
  ClmSink& sink_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  bool running_ = false;
  std::optional<Result<ModelRecord>> last_;
  std::thread worker_;
};

}  // namespace qtos::models
