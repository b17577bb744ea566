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

#include "cpu/util/enum_names.hpp"
#include "models/evaluation.hpp"
#include "models/model.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/store/sqlite_db.hpp"
#include "runtime/util/result.hpp"

namespace qtos::models {

/// Where a model version is in its life.
enum class ModelStatus { candidate, shadow, active, retired };
QTOS_ENUM_NAMES(ModelStatus, "CANDIDATE", "SHADOW", "ACTIVE", "RETIRED");
/// "CANDIDATE", "SHADOW", "ACTIVE" or "RETIRED".
std::string_view model_status_name(ModelStatus s);
/// Parses a status name (case-insensitive); std::nullopt when unknown.
std::optional<ModelStatus> model_status_parse(std::string_view text);

/// True when `name` may name a model: 1 to 31 characters of [A-Za-z0-9_-] (it becomes a path and travels in bus
/// events as a StrategyId).
bool model_name_valid(std::string_view name);

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

/// How to open a registry.
struct RegistryOptions {
  store::OpenMode mode = store::OpenMode::create;  ///< existing: a missing registry is an error, nothing is created
  const Clock* clock = nullptr;  ///< time of registrations and status changes (not owned); nullptr: the live clock
};

/// The registry rooted at a directory. Thread-safe; several processes may share a root (SQLite WAL, immediate
/// transactions for every change). A version's folder is written completely before its row is committed; a folder
/// left without a row by a crash is moved aside to ROOT/.orphans/ at the next open (with a log line), and temporaries
/// of dead processes are removed, so nothing left by a crash blocks a later registration.
class ModelRegistry {
 public:
  /// Opens ROOT/registry.db (creating ROOT and the file unless `opts.mode` is existing) and recovers from a crash;
  /// throws store::StoreError naming the path when it cannot (missing, damaged, not a model registry).
  explicit ModelRegistry(std::string root, RegistryOptions opts = {});
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  /// The root directory.
  const std::string& root() const { return root_; }
  /// The clock that stamps registrations and status changes (the trainer of a retrain uses it too).
  const Clock& clock() const { return *clock_; }
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
  /// RETIRED in the same transaction). The model is loaded and checked against its record first (files, name, version,
  /// kind, a finite forward pass): Error "broken_model" leaves every status as it was. Error "not_found", or
  /// "bad_transition" from ACTIVE or RETIRED.
  Result<ModelRecord> promote(const std::string& name, std::int32_t version);
  /// Rollback: makes a RETIRED version ACTIVE again (the current ACTIVE, if any, becomes RETIRED in the same
  /// transaction), after the same load check as promote(). Error "not_found", "bad_transition" when it is not RETIRED,
  /// "broken_model".
  Result<ModelRecord> reactivate(const std::string& name, std::int32_t version);
  /// Moves a version to RETIRED from any other status; Error "not_found" or "bad_transition" when already retired.
  Result<ModelRecord> retire(const std::string& name, std::int32_t version);
  /// Records metrics measured while the version is in `stage` (e.g. its shadow-window evaluation).
  Result<Unit> metrics_record(const std::string& name, std::int32_t version, ModelStatus stage, const Metrics& m);
  /// Status changes of `name` (all names when empty), oldest first.
  std::vector<ModelTransition> history(const std::string& name = {}) const;
  /// Loads a registered version's model (see Model::load for `expected`).
  std::unique_ptr<Model> load(const ModelRecord& record, const FeatureSpec* expected = nullptr) const;
  /// Loads a version and checks it against its record; an empty string when it is sound, else what is wrong.
  std::string check(const ModelRecord& record) const;

 private:
  enum class Move { promote, retire, reactivate };
  Result<ModelRecord> transition(const std::string& name, std::int32_t version, Move move);
  void recover();
  std::int64_t now_ms() const;
  std::string root_;
  const Clock* clock_;
  std::unique_ptr<LiveClock> own_clock_;
  std::unique_ptr<store::Db> db_;
  mutable std::mutex mutex_;
};

}  // namespace qtos::models
