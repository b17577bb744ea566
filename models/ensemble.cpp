#include "models/ensemble.hpp"

#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace qtos::models {

EnsembleManager::EnsembleManager(FeatureSpec spec, std::string name)
    : spec_(std::move(spec)), name_(std::move(name)), snapshot_(std::make_shared<const Snapshot>()) {
  spec_.validate();
}

void EnsembleManager::members_check(const std::vector<Member>& members) const {
  for (const auto& m : members) {
    if (!m.model) throw std::invalid_argument("ensemble " + name_ + ": a member has no model");
    if (!std::isfinite(m.weight) || m.weight <= 0.0)
      throw std::invalid_argument("ensemble " + name_ + ": member " + m.model->name() + " has weight " +
                                  std::to_string(m.weight) + " (expected a finite weight > 0)");
    if (m.model->meta().spec != spec_)
      throw std::invalid_argument("ensemble " + name_ + ": member " + m.model->name() +
                                  " was trained on another feature spec (" + m.model->meta().spec.differences(spec_) + ")");
  }
}

void EnsembleManager::members_set(std::vector<Member> members) {
  members_check(members);
  std::lock_guard lock(write_mutex_);
  snapshot_store(std::make_shared<const Snapshot>(Snapshot{std::move(members)}));
}

std::shared_ptr<const EnsembleManager::Snapshot> EnsembleManager::snapshot_load() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

void EnsembleManager::snapshot_store(std::shared_ptr<const Snapshot> next) {
  std::lock_guard lock(snapshot_mutex_);
  snapshot_.swap(next);  // the old set is released outside the lock when `next` goes out of scope
}

std::size_t EnsembleManager::reload(const ModelRegistry& registry) {
  std::lock_guard lock(write_mutex_);
  const auto current = snapshot_load();
  std::map<std::string, double> weights;
  for (const auto& m : current->members) weights[m.model->meta().name] = m.weight;
  std::vector<Member> next;
  for (const auto& rec : registry.active_all()) {
    std::shared_ptr<const Model> model;
    try {
      model = registry.load(rec, &spec_);
    } catch (const std::exception& e) {
      throw std::runtime_error("ensemble " + name_ + ": cannot load ACTIVE model " + rec.name + " v" +
                               std::to_string(rec.version) + ": " + e.what());
    }
    const auto w = weights.find(rec.name);
    next.push_back({std::move(model), w == weights.end() ? 1.0 : w->second});
  }
  const auto n = next.size();
  members_check(next);
  snapshot_store(std::make_shared<const Snapshot>(Snapshot{std::move(next)}));  // all loaded: only now do readers see them
  return n;
}

std::vector<std::string> EnsembleManager::weights_set(const std::map<std::string, double>& weights) {
  for (const auto& [n, w] : weights)
    if (!std::isfinite(w) || w <= 0.0)
      throw std::invalid_argument("ensemble " + name_ + ": weight " + std::to_string(w) + " for " + n + " (expected a finite weight > 0)");
  std::lock_guard lock(write_mutex_);
  auto members = snapshot_load()->members;
  std::vector<std::string> unknown;
  for (const auto& [n, w] : weights) {
    bool found = false;
    for (auto& m : members)
      if (m.model->meta().name == n) {
        m.weight = w;
        found = true;
      }
    if (!found) unknown.push_back(n);
  }
  snapshot_store(std::make_shared<const Snapshot>(Snapshot{std::move(members)}));  // weights only: members already checked
  return unknown;
}

std::vector<EnsembleManager::Member> EnsembleManager::members() const { return snapshot_load()->members; }

Result<Predictions> EnsembleManager::predict(const kernels::PanelView& panel, std::int32_t t) const {
  const auto snap = snapshot_load();  // this reader keeps the whole set alive until it is done
  if (snap->members.empty()) return Error{ErrorCode::no_model, "ensemble " + name_ + " has no active model"};
  const auto n = static_cast<std::size_t>(panel.n_symbols);
  std::vector<double> sum_r(n, 0.0), sum_u(n, 0.0), sum_w(n, 0.0);
  std::optional<Error> last_error;
  bool any = false;
  for (const auto& m : snap->members) {
    auto p = m.model->predict(panel, t);
    if (!p.ok()) {
      last_error = p.error();
      continue;
    }
    any = true;
    const auto& v = p.value();
    for (std::size_t s = 0; s < n; ++s) {
      if (!std::isfinite(v.expected_return[s])) continue;
      sum_r[s] += m.weight * v.expected_return[s];
      sum_u[s] += m.weight * v.prob_up[s];
      sum_w[s] += m.weight;
    }
  }
  if (!any) return *last_error;
  Predictions out;
  out.bar = t;
  out.horizon = spec_.horizon;
  out.expected_return.assign(n, std::numeric_limits<float>::quiet_NaN());
  out.prob_up.assign(n, std::numeric_limits<float>::quiet_NaN());
  for (std::size_t s = 0; s < n; ++s)
    if (sum_w[s] > 0.0) {
      out.expected_return[s] = static_cast<float>(sum_r[s] / sum_w[s]);
      out.prob_up[s] = static_cast<float>(sum_u[s] / sum_w[s]);
    }
  return out;
}

}  // namespace qtos::models
