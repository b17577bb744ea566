#include "models/supervision.hpp"

#include <cmath>
#include <stdexcept>

namespace qtos::models {

ModelSupervisor::ModelSupervisor(EnsembleManager& ensemble, SupervisorOptions options)
    : ensemble_(ensemble), options_(options) {
  if (options_.window < 1) throw std::invalid_argument("model supervisor: window " + std::to_string(options_.window) + " (expected >= 1)");
  if (options_.min_outcomes < 1 || options_.min_outcomes > options_.window)
    throw std::invalid_argument("model supervisor: min_outcomes " + std::to_string(options_.min_outcomes) +
                                " (expected 1..window = " + std::to_string(options_.window) + ")");
}

void ModelSupervisor::observe(const kernels::PanelView& panel, std::int32_t t) {
  if (options_.mode == SubsystemMode::off || t < 0 || t >= panel.n_bars) return;
  const std::int32_t h = ensemble_.horizon();
  const auto members = ensemble_.members();
  std::lock_guard lock(mutex_);
  for (const auto& m : members) {
    auto& track = tracks_[m.model->name()];
    if (const auto it = track.pending.find(t - h); it != track.pending.end()) {
      for (std::int32_t s = 0; s < panel.n_symbols; ++s) {
        const float pred = it->second[static_cast<std::size_t>(s)];
        const float c1 = panel.close[panel.at(s, t)], c0 = panel.close[panel.at(s, t - h)];
        if (!std::isfinite(pred) || !(c1 > 0.0F) || !(c0 > 0.0F)) continue;
        track.pairs.emplace_back(pred, static_cast<float>(std::log(static_cast<double>(c1) / c0)));
        if (track.pairs.size() > static_cast<std::size_t>(options_.window)) track.pairs.pop_front();
      }
    }
    track.pending.erase(track.pending.begin(), track.pending.upper_bound(t - h));  // scored or never will be
    auto p = m.model->predict(panel, t);
    if (p.ok()) track.pending[t] = std::move(p.value().expected_return);
  }
}

LiveStats ModelSupervisor::stats_locked(const std::string& member) const {
  LiveStats st;
  st.model = member;
  const auto it = tracks_.find(member);
  if (it == tracks_.end()) return st;
  const auto& pairs = it->second.pairs;
  st.outcomes = static_cast<std::int64_t>(pairs.size());
  std::vector<float> p, y;
  double hits = 0.0;
  for (const auto& [a, b] : pairs) {
    p.push_back(a);
    y.push_back(b);
    hits += (a == 0.0F || b == 0.0F) ? 0.5 : ((a > 0.0F) == (b > 0.0F) ? 1.0 : 0.0);
  }
  st.accuracy = pairs.empty() ? 0.0 : hits / static_cast<double>(pairs.size());
  st.rank_ic = spearman(p, y);
  return st;
}

LiveStats ModelSupervisor::live(const std::string& member) const {
  std::lock_guard lock(mutex_);
  return stats_locked(member);
}

void ModelSupervisor::model_promoted(const std::string& model, std::int32_t version) {
  // Members are named "name@vN" (Model::name()); an unregistered one by its bare name.
  const std::string prefix = model + "@v", keep = prefix + std::to_string(version);
  std::lock_guard lock(mutex_);
  std::erase_if(tracks_, [&](const auto& entry) {
    const std::string& member = entry.first;
    return member != keep && (member == model || member.starts_with(prefix));
  });
}

SupervisorReport ModelSupervisor::evaluate() {
  SupervisorReport rep;
  const auto members = ensemble_.members();
  std::map<std::string, double> raw;  // registry name -> unnormalised weight
  std::vector<std::string> bases;      // registry name of each reported model
  double total = 0.0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& m : members) {
      LiveStats st = stats_locked(m.model->name());
      bases.push_back(m.model->meta().name);
      if (st.outcomes >= options_.min_outcomes) {
        raw[m.model->meta().name] = std::max(st.rank_ic, 0.0) + 0.01;
        total += raw[m.model->meta().name];
        st.degraded = st.rank_ic <= options_.degraded_ic;
        if (st.degraded) rep.retrain_requests.push_back(st.model);
      }
      rep.models.push_back(st);
    }
  }
  for (std::size_t i = 0; i < rep.models.size(); ++i) {
    const auto it = raw.find(bases[i]);
    if (it != raw.end()) rep.models[i].weight = it->second / total;
  }
  if (options_.mode == SubsystemMode::enforced && !raw.empty()) {
    ensemble_.weights_set(raw);
    rep.weights_applied = true;
  }
  return rep;
}

std::string_view orchestrator_action_name(OrchestratorAction a) { return enum_name(a); }

RetrainingOrchestrator::RetrainingOrchestrator(ContinuousLearningManager& clm, OrchestratorOptions options)
    : clm_(clm), options_(options) {}

OrchestratorAction RetrainingOrchestrator::note(OrchestratorAction a, const std::string& detail) {
  std::lock_guard lock(mutex_);
  log_.push_back(std::string(orchestrator_action_name(a)) + ": " + detail);
  return a;
}

OrchestratorAction RetrainingOrchestrator::on_trigger(RetrainTrigger trigger, std::shared_ptr<const MarketPanel> panel) {
  const std::string what = std::string(retrain_trigger_name(trigger)) + " trigger for " + clm_.options().model_name;
  if (!options_.enabled || options_.mode == SubsystemMode::off) return OrchestratorAction::ignored;
  if (options_.mode == SubsystemMode::observe) return note(OrchestratorAction::logged, "would retrain on " + what);
  if (!clm_.retrain_async(std::move(panel), trigger))
    return note(OrchestratorAction::retrain_busy, what + ": the CLM is disabled or already retraining");
  return note(OrchestratorAction::retrain_started, what);
}

OrchestratorAction RetrainingOrchestrator::on_shadow_report(const ShadowReport& report) {
  if (!options_.enabled || options_.mode == SubsystemMode::off) return OrchestratorAction::ignored;
  const auto& o = clm_.options();
  const std::string what = o.model_name + " v" + std::to_string(report.candidate_version) + " " +
                           std::string(promotion_metric_name(o.metric)) + " " +
                           std::to_string(promotion_metric_value(o.metric, report.candidate)) + " vs ACTIVE v" +
                           std::to_string(report.active_version) + " " +
                           std::to_string(promotion_metric_value(o.metric, report.active));
  if (options_.mode == SubsystemMode::observe)
    return note(OrchestratorAction::logged, (report.passes ? "would promote " : "would not promote ") + what);
  if (!report.passes) return note(OrchestratorAction::promotion_refused, "rule not met: " + what);
  if (options_.mode != SubsystemMode::enforced || !options_.auto_deploy)
    return note(OrchestratorAction::promotion_recommended, what + " (deploy with `qtos models promote` or AUTO_DEPLOY)");
  const auto r = clm_.promote_model(report);
  if (!r.ok()) return note(OrchestratorAction::promotion_refused, r.error().message);
  return note(OrchestratorAction::promoted, what);
}

std::vector<std::string> RetrainingOrchestrator::log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

}  // namespace qtos::models
