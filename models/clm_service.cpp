#include "models/clm_service.hpp"

#include <spdlog/spdlog.h>

namespace qtos::models {

namespace {
constexpr const char* kName = "continuous_learning";
}

ClmServiceOptions clm_service_options(const Config& c) {
  ClmServiceOptions o;
  o.clm.enabled = c.clm_enabled;
  o.clm.schedule = c.clm_retrain_schedule;
  o.clm.shadow_days = c.clm_shadow_days;
  const auto& sup = c.subsystem(Subsystem::model_supervisor);
  o.supervisor.mode = sup.active() ? sup.mode : SubsystemMode::off;
  o.supervisor_eval_interval_s = c.model_supervisor_eval_interval;
  const auto& re = c.subsystem(Subsystem::retraining);
  o.orchestrator.enabled = re.enabled;
  o.orchestrator.mode = re.active() ? re.mode : SubsystemMode::off;
  o.orchestrator.auto_deploy = c.retraining_auto_deploy;
  return o;
}

ContinuousLearningService::ContinuousLearningService(EventBus& bus, ModelRegistry& registry, EnsembleManager& ensemble,
                                                     ClmServiceOptions options)
    : Service(kName, options.orchestrator.mode, bus),
      options_(std::move(options)),
      clm_(registry, ensemble, options_.clm, *this),
      supervisor_(ensemble, options_.supervisor),
      orchestrator_(clm_, options_.orchestrator) {
  if (options_.supervisor_eval_interval_s < 1)
    throw std::invalid_argument("QT_AI_MODEL_SUPERVISOR_EVAL_INTERVAL = " + std::to_string(options_.supervisor_eval_interval_s) +
                                " (expected >= 1 second)");
  if (options_.new_data_bars < 0)
    throw std::invalid_argument("new_data_bars = " + std::to_string(options_.new_data_bars) + " (expected >= 0)");
}

ContinuousLearningService::~ContinuousLearningService() {
  clm_.cancel();
  (void)clm_.wait();  // the worker reports through this object: it must end first
}

void ContinuousLearningService::on_start() {
  subscribe<RegimeChanged>([this](const RegimeChanged& e) {
    if (e.symbol.empty() && e.current != e.previous) trigger(RetrainTrigger::regime_change);  // market-wide only
  });
  // A new version serves: its live record starts empty, and the windows of the versions it replaced go (whoever
  // published it on this bus: this service's own promotions come back through it too).
  subscribe<ModelPromoted>([this](const ModelPromoted& e) {
    supervisor_.model_promoted(e.model.str(), static_cast<std::int32_t>(e.version));
  });
  every(60 * kNsPerSecond, [this](TimeNs now) {
    const std::int64_t now_s = now / kNsPerSecond;
    if (last_schedule_check_s_ >= 0 && clm_.schedule_due(last_schedule_check_s_, now_s)) trigger(RetrainTrigger::schedule);
    last_schedule_check_s_ = now_s;
    shadow_pending();
  });
  every(options_.supervisor_eval_interval_s * kNsPerSecond, [this](TimeNs) {
    const auto report = supervisor_.evaluate();
    if (!report.retrain_requests.empty()) trigger(RetrainTrigger::degradation);
  });
}

void ContinuousLearningService::on_stop() { clm_.cancel(); }

void ContinuousLearningService::data_updated(std::shared_ptr<const MarketPanel> panel) {
  if (!panel) throw std::invalid_argument("ContinuousLearningService::data_updated: no panel");
  panel_ = std::move(panel);
  if (panel_->n_bars() > 0) supervisor_.observe(panel_->view(), panel_->n_bars() - 1);
  shadow_pending();
  const std::int32_t need = options_.new_data_bars > 0
                                ? options_.new_data_bars
                                : static_cast<std::int32_t>(options_.clm.shadow_days * 86'400'000 / panel_->interval_ms());
  if (panel_->n_bars() - bars_at_last_retrain_ >= need) trigger(RetrainTrigger::new_data);
}

void ContinuousLearningService::trigger(RetrainTrigger t) {
  if (!panel_) {
    spdlog::info("{}: {} trigger ignored: no market data yet", kName, retrain_trigger_name(t));
    return;
  }
  const auto action = orchestrator_.on_trigger(t, panel_);
  if (action == OrchestratorAction::retrain_started) bars_at_last_retrain_ = panel_->n_bars();
  spdlog::info("{}: {} trigger: {}", kName, retrain_trigger_name(t), orchestrator_action_name(action));
  decided("RETRAIN", std::string(retrain_trigger_name(t)) + " trigger for " + clm_.options().model_name, action);
}

void ContinuousLearningService::decided(std::string_view what, const std::string& detail, OrchestratorAction action) {
  if (action == OrchestratorAction::ignored) return;  // OFF: nothing was decided
  SubsystemDecided e;
  e.subsystem = SourceName(kName);
  e.mode = options_.orchestrator.mode;
  e.action = std::string(what);
  e.detail = detail + ": " + std::string(orchestrator_action_name(action));
  e.applied = action == OrchestratorAction::retrain_started || action == OrchestratorAction::promoted;
  publish(std::move(e));
}

void ContinuousLearningService::shadow_pending() {
  std::optional<std::int32_t> version;
  {
    std::lock_guard lock(pending_mutex_);
    version = pending_version_;
  }
  if (!version || !panel_) return;
  const auto report = clm_.run_shadow_evaluation(*version, *panel_);
  if (!report.ok()) {
    if (report.error().code == ErrorCode::shadow_incomplete) return;  // wait for more data
    spdlog::warn("{}: shadow evaluation of v{} failed: {}", kName, *version, report.error().message);
  } else {
    const auto& r = report.value();
    const auto action = orchestrator_.on_shadow_report(r);
    spdlog::info("{}: v{} shadow: {}", kName, *version, orchestrator_action_name(action));
    const auto metric = options_.clm.metric;
    decided("PROMOTE",
            clm_.options().model_name + " v" + std::to_string(r.candidate_version) + " " + std::string(promotion_metric_name(metric)) +
                " " + std::to_string(promotion_metric_value(metric, r.candidate)) + " vs ACTIVE v" + std::to_string(r.active_version) +
                " " + std::to_string(promotion_metric_value(metric, r.active)),
            action);
  }
  std::lock_guard lock(pending_mutex_);
  if (pending_version_ == version) pending_version_.reset();
}

void ContinuousLearningService::on_candidate(const ModelRecord& record, RetrainTrigger) {
  std::lock_guard lock(pending_mutex_);  // worker thread: only note it; the owner thread evaluates it
  pending_version_ = record.version;
}

void ContinuousLearningService::on_promoted(const ModelRecord& record, std::int32_t previous) {
  ModelPromoted e;
  e.model = record.name;
  e.version = static_cast<std::uint32_t>(record.version);
  e.previous_version = static_cast<std::uint32_t>(previous);
  const auto it = record.stage_metrics.find("SHADOW");
  if (it != record.stage_metrics.end()) e.validation_score = promotion_metric_value(options_.clm.metric, Metrics::from_json(it->second));
  bus().post(kName, std::move(e));
}

void ContinuousLearningService::on_health(const std::string& component, const std::string& message) {
  HealthStatusChanged e;
  e.component = kName;  // `component` ("clm/<model>") is named in the detail: SourceName holds 31 characters
  e.detail = component + ": " + message;
  e.previous = HealthLevel::healthy;
  e.current = HealthLevel::degraded;
  e.error_count = 1;
  bus().post(kName, std::move(e));  // from the worker thread: the owner delivers it in drain()
}

}  // namespace qtos::models
