#pragma once
/// @file The model registry: models/<name>/<version>/ on disk plus a SQLite index of status, metrics per stage and
/// lineage. Status moves CANDIDATE -> SHADOW -> ACTIVE -> RETIRED; at most one ACTIVE version per name.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/evaluation.hpp"
#include "models/model.hpp"
#include "runtime/util/result.hpp"

struct sqlite3;

namespace qtos::models {

/// Where a model version is in its life.
enum class ModelStatus { candidate, shadow, active, retired };
/// "CANDIDATE", "SHADOW", "ACTIVE" or "RETIRED".
std::string_view model_status_name(ModelStatus s);
/// Parses a status name (case-insensitive); std::nullopt when unknown.
std::optional<ModelStatus> model_status_parse(std::string_view text);

/// One registered version.
struct ModelRecord {
  std::string name;                             ///< registry name
  std::int32_t version = 0;                     ///< 1, 2, ... per name
  ModelStatus status = ModelStatus::candidate;  ///< current stage
  std::string kind;                  ///< "mlp", "gru", "transformer"
  std::string dir;                   ///< absolute directory holding model.pt and meta.json
  std::int32_t parent_version = 0;   ///< lineage: the version that was ACTIVE when this one was registered (0: none)
  std::int64_t created_ms = 0, updated_ms = 0;  ///< registration and last status change (Unix ms)
  std::map<std::string, std::string> stage_metrics;  ///< status name -> Metrics JSON recorded in that stage
};

/// A status change, for the history.
struct ModelTransition {
  std::string name;          ///< registry name
  std::int32_t version = 0;  ///< version
  std::string from, to;      ///< status names (from is empty at registration)
  std::int64_t at_ms = 0;    ///< when (Unix ms)
};

/// The registry rooted at a directory. Thread-safe; several processes may share a root (SQLite WAL, immediate
/// transactions for every change).
class ModelRegistry {
 public:
  /// Opens (creating if needed) ROOT/registry.db; throws std::runtime_error naming the path when it cannot.
  explicit ModelRegistry(std::string root);
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  /// The root directory.
  const std::string& root() const { return root_; }
  /// Saves `model` as the next version of `name` with status CANDIDATE (its test metrics recorded for that stage);
  /// the parent is the currently ACTIVE version. Throws std::invalid_argument on a name that is not
  /// [A-Za-z0-9_-]{1,31}, std::runtime_error when the files cannot be written.
  ModelRecord register_candidate(const std::string& name, const Model& model);
  /// Every version (of `name`, or of all names when empty), ordered by name then version.
  std::vector<ModelRecord> list(const std::string& name = {}) const;
  /// One version; Error "not_found" when absent.
  Result<ModelRecord> get(const std::string& name, std::int32_t version) const;
  /// The ACTIVE version of `name`, if any.
  std::optional<ModelRecord> active(const std::string& name) const;
  /// Every ACTIVE version, ordered by name.
  std::vector<ModelRecord> active_all() const;
  /// Moves a version one stage on: CANDIDATE -> SHADOW, SHADOW -> ACTIVE (the previous ACTIVE of the name becomes
  /// RETIRED in the same transaction). Error "not_found", or "bad_transition" from ACTIVE or RETIRED.
  Result<ModelRecord> promote(const std::string& name, std::int32_t version);
  /// Moves a version to RETIRED from any other status; Error "not_found" or "bad_transition" when already retired.
  Result<ModelRecord> retire(const std::string& name, std::int32_t version);
  /// Records metrics measured while the version is in `stage` (e.g. its shadow-window evaluation).
  Result<Unit> metrics_record(const std::string& name, std::int32_t version, ModelStatus stage, const Metrics& m);
  /// Status changes of `name` (all names when empty), oldest first.
  std::vector<ModelTransition> history(const std::string& name = {}) const;
  /// Loads a registered version's model (see Model::load for `expected`).
  std::unique_ptr<Model> load(const ModelRecord& record, const FeatureSpec* expected = nullptr) const;

 private:
  Result<ModelRecord> transition(const std::string& name, std::int32_t version, bool to_retired);
  std::string root_;
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_;
  mutable std::mutex mutex_;
};

}  // namespace qtos::models
