#include "models/continuous_learning.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace qtos::models {

std::string_view promotion_metric_name(PromotionMetric m) { return enum_name(m); }

double promotion_metric_value(PromotionMetric metric, const Metrics& m) {
  switch (metric) {
    case PromotionMetric::rank_ic: return m.rank_ic;
    case PromotionMetric::sharpe: return m.sharpe;
    case PromotionMetric::directional_edge: return m.directional_accuracy - 0.5;
  }
  return 0.0;
}

bool promotion_rule_passes(double candidate, double active, double margin) {
  return std::isfinite(candidate) && candidate - active >= margin * std::max(std::abs(active), 0.01);
}

std::string_view retrain_trigger_name(RetrainTrigger t) { return enum_name(t); }

Metrics model_evaluate_window(const Model& model, const MarketPanel& panel, std::int32_t t_begin, std::int32_t t_end) {
  const auto& spec = model.meta().spec;
  if (t_begin < 0 || t_begin > t_end || t_end > panel.n_bars())
    throw std::invalid_argument("model_evaluate_window: bars [" + std::to_string(t_begin) + ", " + std::to_string(t_end) +
                                ") are not inside the panel's " + std::to_string(panel.n_bars()) + " bars");
  // The samples' windows count present bars: across a closure they reach further back than window - 1 bars.
  const auto table = features_build(panel.view(), spec, features_window_first_bar(panel.view(), t_begin, t_end, spec.window), t_end);
  const auto samples = samples_select(table, t_begin, t_end, true);
  std::vector<float> r(samples.size()), u(samples.size()), y(samples.size());
  model.predict_samples(table, samples, r, u);
  for (std::size_t i = 0; i < samples.size(); ++i)
    y[i] = table.forward[static_cast<std::size_t>(table.at(samples[i].s, samples[i].t))];
  const double periods_per_year = 365.0 * 86'400'000.0 / static_cast<double>(panel.interval_ms()) / spec.horizon;
  return metrics_evaluate(r, u, y, samples, spec.horizon, periods_per_year);
}

ContinuousLearningManager::ContinuousLearningManager(ModelRegistry& registry, EnsembleManager& ensemble, ClmOptions options,
                                                     ClmSink& sink)
    : registry_(registry), ensemble_(ensemble), options_(std::move(options)), sink_(sink) {
  options_.spec.validate();
  options_.hyper.validate(options_.kind, options_.spec);
  if (options_.shadow_days < 1)
    throw std::invalid_argument("QT_CLM_SHADOW_DAYS = " + std::to_string(options_.shadow_days) + " (expected >= 1)");
  if (!(options_.margin >= 0.0) || !std::isfinite(options_.margin))
    throw std::invalid_argument("CLM promotion margin " + std::to_string(options_.margin) + " (expected a finite value >= 0)");
  if (ensemble_.horizon() != options_.spec.horizon)
    throw std::invalid_argument("CLM: the ensemble's horizon " + std::to_string(ensemble_.horizon()) +
                                " differs from the feature spec's " + std::to_string(options_.spec.horizon));
}

ContinuousLearningManager::~ContinuousLearningManager() {
  cancel();
  if (worker_.joinable()) worker_.join();
}

namespace {

Result<ModelRecord> retrain_impl(ModelRegistry& registry, const ClmOptions& o, ClmSink& sink, const std::atomic<bool>& cancel,
                                 const MarketPanel& panel, RetrainTrigger trigger) {
  const std::string component = "clm/" + o.model_name;
  try {
    TrainOptions train = o.train;
    train.t0_ms = panel.t0_ms();
    train.interval_ms = panel.interval_ms();
    train.on_epoch = [&](const EpochReport& r) { sink.on_progress(o.model_name, r); };
    train.cancelled = [&] { return cancel.load(); };
    if (!train.clock) train.clock = &registry.clock();  // the model's created_ms on the registry's (replay) clock
    const auto table = features_build(panel.view(), o.spec);
    auto trained = model_train(table, split_by_time(table), o.kind, o.hyper, train);
    if (!trained.ok()) return trained.error();  // cancelled: not a failure
    auto rec = registry.register_candidate(o.model_name, *trained.value());
    sink.on_candidate(rec, trigger);
    return rec;
  } catch (const std::exception& e) {
    const std::string msg = "retraining " + o.model_name + " (" + std::string(retrain_trigger_name(trigger)) +
                            ") failed; the active model is unchanged: " + e.what();
    sink.on_health(component, msg);
    return Error{ErrorCode::training_failed, msg};
  }
}

}  // namespace

Result<ModelRecord> ContinuousLearningManager::retrain_model(const MarketPanel& panel, RetrainTrigger trigger) {
  cancel_ = false;
  return retrain_impl(registry_, options_, sink_, cancel_, panel, trigger);
}

bool ContinuousLearningManager::retrain_async(std::shared_ptr<const MarketPanel> panel, RetrainTrigger trigger) {
  if (!panel) throw std::invalid_argument("retrain_async: no panel");
  std::lock_guard lock(mutex_);
  if (running_ || !options_.enabled) return false;
  if (worker_.joinable()) worker_.join();  // the previous job has finished (running_ is false)
  running_ = true;
  cancel_ = false;
  worker_ = std::thread([this, panel = std::move(panel), trigger] {
    auto r = retrain_impl(registry_, options_, sink_, cancel_, *panel, trigger);
    std::lock_guard done(mutex_);
    last_.emplace(std::move(r));
    running_ = false;
    done_cv_.notify_all();
  });
  return true;
}

void ContinuousLearningManager::cancel() { cancel_ = true; }

bool ContinuousLearningManager::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

Result<ModelRecord> ContinuousLearningManager::wait() {
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [&] { return !running_; });
  if (!last_) return Error{ErrorCode::no_job, "no retraining job has run"};
  return *last_;
}

std::int32_t ContinuousLearningManager::shadow_bars(const MarketPanel& panel) const {
  return static_cast<std::int32_t>(std::max<std::int64_t>(1, options_.shadow_days * 86'400'000 / panel.interval_ms()));
}

Result<Metrics> ContinuousLearningManager::evaluate_model(std::int32_t version, const MarketPanel& panel) const {
  auto rec = registry_.get(options_.model_name, version);
  if (!rec.ok()) return rec.error();
  const auto model = registry_.load(rec.value(), &options_.spec);
  const std::int32_t end = panel.n_bars() - options_.spec.horizon;
  const std::int32_t begin = std::max(options_.spec.warmup() + options_.spec.window - 1, end - shadow_bars(panel));
  if (end <= begin)
    return Error{ErrorCode::not_enough_data, "the panel's " + std::to_string(panel.n_bars()) + " bars are too few to evaluate on"};
  return model_evaluate_window(*model, panel, begin, end);
}

Result<ShadowReport> ContinuousLearningManager::run_shadow_evaluation(std::int32_t version, const MarketPanel& panel) {
  const auto& name = options_.model_name;
  auto rec = registry_.get(name, version);
  if (!rec.ok()) return rec.error();
  if (rec.value().status != ModelStatus::candidate && rec.value().status != ModelStatus::shadow)
    return Error{ErrorCode::bad_state, name + " v" + std::to_string(version) + " is " +
                                  std::string(model_status_name(rec.value().status)) + "; only a CANDIDATE or SHADOW version is shadow-evaluated"};
  const auto candidate = registry_.load(rec.value(), &options_.spec);
  // Bars after the candidate's data: its last target ended at bar test_end - 1 + H, so samples from test_end on
  // predict returns it has never seen.
  const std::int32_t begin = std::max(0, panel.bar_at_or_before(candidate->meta().test_to_ms));
  const std::int32_t end = panel.n_bars() - options_.spec.horizon;
  const std::int32_t need = shadow_bars(panel);
  if (panel.bar_at_or_before(candidate->meta().test_to_ms) < 0 || end - begin < need)
    return Error{ErrorCode::shadow_incomplete, name + " v" + std::to_string(version) + " needs " + std::to_string(need) +
                                          " bars with outcomes after its training data; the panel has " +
                                          std::to_string(std::max(0, end - begin))};
  ShadowReport rep;
  rep.candidate_version = version;
  rep.bar_begin = begin;
  rep.bar_end = end;
  rep.candidate = model_evaluate_window(*candidate, panel, begin, end);
  rep.passes = true;
  if (const auto act = registry_.active(name)) {
    rep.active_version = act->version;
    rep.active = model_evaluate_window(*registry_.load(*act, &options_.spec), panel, begin, end);
    rep.passes = promotion_rule_passes(promotion_metric_value(options_.metric, rep.candidate),
                                       promotion_metric_value(options_.metric, rep.active), options_.margin);
    (void)registry_.metrics_record(name, act->version, ModelStatus::active, rep.active);
  }
  if (rec.value().status == ModelStatus::candidate) {
    auto moved = registry_.promote(name, version);
    if (!moved.ok()) return moved.error();
  }
  auto recorded = registry_.metrics_record(name, version, ModelStatus::shadow, rep.candidate);
  if (!recorded.ok()) return recorded.error();
  return rep;
}

Result<ModelRecord> ContinuousLearningManager::promote_model(const ShadowReport& report, bool force) {
  const auto& name = options_.model_name;
  if (!report.passes && !force) {
    const auto c = promotion_metric_value(options_.metric, report.candidate);
    const auto a = promotion_metric_value(options_.metric, report.active);
    return Error{ErrorCode::rule_failed, name + " v" + std::to_string(report.candidate_version) + " " +
                                    std::string(promotion_metric_name(options_.metric)) + " " + std::to_string(c) +
                                    " does not beat ACTIVE v" + std::to_string(report.active_version) + "'s " +
                                    std::to_string(a) + " by " + std::to_string(options_.margin * 100.0) + "%"};
  }
  auto rec = registry_.get(name, report.candidate_version);
  if (!rec.ok()) return rec.error();
  if (rec.value().status != ModelStatus::shadow)
    return Error{ErrorCode::bad_state, name + " v" + std::to_string(report.candidate_version) + " is " +
                                  std::string(model_status_name(rec.value().status)) + "; only a SHADOW version is promoted"};
  try {
    (void)registry_.load(rec.value(), &options_.spec);  // refuse before the switch, not after it
  } catch (const std::exception& e) {
    sink_.on_health("clm/" + name, std::string("promotion refused: ") + e.what());
    return Error{ErrorCode::load_failed, e.what()};
  }
  const auto previous = registry_.active(name);
  auto promoted = registry_.promote(name, report.candidate_version);
  if (!promoted.ok()) return promoted.error();
  try {
    ensemble_.reload(registry_);
  } catch (const std::exception& e) {
    sink_.on_health("clm/" + name, std::string("ensemble reload after promotion failed; it keeps its previous models: ") + e.what());
  }
  sink_.on_promoted(promoted.value(), previous ? previous->version : 0);
  return promoted;
}

bool ContinuousLearningManager::schedule_due(std::int64_t last_run_s, std::int64_t now_s) const {
  const auto next = options_.schedule.next_after(last_run_s);
  return next >= 0 && next <= now_s;
}

}  // namespace qtos::models
