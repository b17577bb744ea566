#pragma once
/// @file EnsembleManager: the Predictor the signal engine and the opportunity ranker use. It combines the active
/// models' predictions with weights; the member set is swapped atomically, so a reader sees either the old set or
/// the new one, each made of fully loaded models.

#include <mutex>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/model.hpp"
#include "models/registry.hpp"
#include "runtime/predict/predictor.hpp"

namespace qtos::models {

/// A weighted set of models behind the Predictor interface. Thread-safe: predict() never blocks on a swap.
class EnsembleManager final : public Predictor {
 public:
  /// One member model and its weight (> 0).
  struct Member {
    std::shared_ptr<const Model> model;  ///< a fully loaded model
    double weight = 1.0;                 ///< relative weight (> 0)
  };

  /// An empty ensemble whose members must all use `spec` (the current feature spec).
  explicit EnsembleManager(FeatureSpec spec, std::string name = "ensemble");
  /// Replaces the members in one atomic swap. Throws std::invalid_argument when a member is null, has a weight
  /// that is not finite and positive, or was trained on another feature spec (naming the model).
  void members_set(std::vector<Member> members);
  /// Loads every ACTIVE version in `registry` completely, then swaps them in (weight 1 each, or the weight last set
  /// for that name). On a load failure it throws naming the model and leaves the current members untouched.
  /// Returns the number of members.
  std::size_t reload(const ModelRegistry& registry);
  /// Sets the weights of the named members (names as ModelMeta::name) in one atomic swap; unknown names are ignored
  /// and returned.
  std::vector<std::string> weights_set(const std::map<std::string, double>& weights);
  /// The current members (a consistent snapshot).
  std::vector<Member> members() const;

  /// The ensemble's name.
  std::string name() const override { return name_; }
  /// The feature spec's horizon, shared by every member.
  std::int32_t horizon() const override { return spec_.horizon; }
  /// Weighted mean of the members' predictions per symbol (members without a prediction for a symbol are left
  /// out of its mean). Error "no_model" when the ensemble is empty; a member's error is returned when every member fails.
  Result<Predictions> predict(const kernels::PanelView& panel, std::int32_t t) const override;

 private:
  struct Snapshot {
    std::vector<Member> members;
  };
  std::shared_ptr<const Snapshot> snapshot_load() const;
  void snapshot_store(std::shared_ptr<const Snapshot> next);
  void members_check(const std::vector<Member>& members) const;
  FeatureSpec spec_;
  std::string name_;
  // Readers copy the pointer under snapshot_mutex_ (a few ns) and use the set unlocked; writers also hold
  // write_mutex_ across read-modify-write so concurrent reweighting and reloading never lose an update.
  // (A mutex rather than std::atomic<shared_ptr>: libstdc++'s lock-bit implementation is invisible to TSan.)
  mutable std::mutex snapshot_mutex_;
  std::mutex write_mutex_;
  std::shared_ptr<const Snapshot> snapshot_;
};

}  // namespace qtos::models
