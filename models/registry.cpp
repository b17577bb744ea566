#include "models/registry.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "runtime/util/atomic_file.hpp"

namespace qtos::models {

namespace fs = std::filesystem;

namespace {

using store::Stmt;

/// The registry's schema versions: 1 = models, stage_metrics, transitions (files of it were stamped 0 before ids).
const store::Schema& registry_schema() {
  static const store::Schema schema{
      "model registry",
      store::kAppIdModels,
      {"models", "stage_metrics", "transitions"},
      {{1, [](store::Db& db) {
          db.exec(
              "CREATE TABLE IF NOT EXISTS models(name TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,"
              " kind TEXT NOT NULL, path TEXT NOT NULL, parent_version INTEGER NOT NULL DEFAULT 0,"
              " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY(name, version));"
              "CREATE TABLE IF NOT EXISTS stage_metrics(name TEXT NOT NULL, version INTEGER NOT NULL, stage TEXT NOT NULL,"
              " metrics TEXT NOT NULL, recorded_ms INTEGER NOT NULL, PRIMARY KEY(name, version, stage));"
              "CREATE TABLE IF NOT EXISTS transitions(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
              " version INTEGER NOT NULL, from_status TEXT NOT NULL, to_status TEXT NOT NULL, at_ms INTEGER NOT NULL);");
        }}}};
  return schema;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void name_check(const std::string& name) {
  if (!model_name_valid(name))
    throw std::invalid_argument("model name '" + name + "' is not 1-31 characters of [A-Za-z0-9_-] (31: it travels in bus events as a StrategyId)");
}

constexpr const char* kSelect =
    "SELECT name, version, status, kind, path, parent_version, created_ms, updated_ms FROM models ";

}  // namespace

bool model_name_valid(std::string_view name) {
  return !name.empty() && name.size() <= 31 &&
         std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
}

std::string_view model_status_name(ModelStatus s) { return enum_name(s); }

std::optional<ModelStatus> model_status_parse(std::string_view text) { return enum_parse<ModelStatus>(text); }

ModelRegistry::ModelRegistry(std::string root, RegistryOptions opts) : root_(std::move(root)), clock_(opts.clock) {
  if (root_.empty()) throw store::StoreError("model registry: the directory is empty (expected a directory path)", 0);
  if (opts.mode == store::OpenMode::existing && !fs::is_directory(root_))
    throw store::StoreError("no model registry at '" + root_ + "' (the directory does not exist)", 0);
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw store::StoreError("model registry: cannot create directory '" + root_ + "': " + ec.message(), 0);
  root_ = fs::absolute(root_).lexically_normal().string();
  if (!clock_) {
    own_clock_ = std::make_unique<LiveClock>();
    clock_ = own_clock_.get();
  }
  db_ = std::make_unique<store::Db>(root_ + "/registry.db", registry_schema(), store::OpenOptions{.mode = opts.mode});
  recover();
}

ModelRegistry::~ModelRegistry() = default;

std::int64_t ModelRegistry::now_ms() const { return clock_->now() / kNsPerMillisecond; }

void ModelRegistry::recover() {
  std::lock_guard lock(mutex_);
  // A look without the write lock first: an open (a `models list`, say) takes no lock unless something looks left
  // behind, so it neither waits for a registration in another process nor needs a writable registry.
  const auto in_index = [&](const std::string& name, const std::string& version) {
    auto st = db_->cached("SELECT 1 FROM models WHERE name = ?1 AND version = ?2");
    st.bind(1, name).bind(2, std::int64_t{std::stoi(version)});
    return st.step();
  };
  bool suspect = false;
  std::error_code scan_ec;
  for (const auto& name_dir : fs::directory_iterator(root_, scan_ec)) {
    const std::string name = name_dir.path().filename().string();
    if (suspect || !name_dir.is_directory() || name.empty() || name[0] == '.') continue;
    std::error_code ec2;
    for (const auto& entry : fs::directory_iterator(name_dir.path(), ec2)) {
      const std::string leaf = entry.path().filename().string();
      suspect = atomic_temp_is(leaf) || leaf.rfind(".tmp-", 0) == 0 ||
                (entry.is_directory() && all_digits(leaf) && !in_index(name, leaf));
      if (suspect) break;
    }
  }
  if (!suspect) return;
  // Under the write lock: a registration in another process holds it from its folder rename to its commit, so a
  // folder seen here without a row is an orphan of a crash, never one being registered right now.
  store::Transaction tx(*db_);
  std::error_code ec;
  for (const auto& name_dir : fs::directory_iterator(root_, ec)) {
    const std::string name = name_dir.path().filename().string();
    if (!name_dir.is_directory() || name.empty() || name[0] == '.') continue;
    atomic_temp_cleanup(name_dir.path().string());
    std::error_code ec2;
    for (const auto& entry : fs::directory_iterator(name_dir.path(), ec2)) {
      const std::string leaf = entry.path().filename().string();
      if (leaf.rfind(".tmp-", 0) == 0) {  // temporaries of qtos before the atomic-write helper
        const auto dash = leaf.rfind('-');
        const long pid = std::strtol(leaf.c_str() + dash + 1, nullptr, 10);
        if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
          std::error_code rm;
          fs::remove_all(entry.path(), rm);
          spdlog::warn("model registry {}: removed '{}', left by a crashed registration", root_, entry.path().string());
        }
        continue;
      }
      if (!entry.is_directory() || !all_digits(leaf) || in_index(name, leaf)) continue;
      const fs::path aside = fs::path(root_) / ".orphans" / (name + "-v" + leaf + "-" + std::to_string(now_ms()));
      std::error_code mv;
      fs::create_directories(aside.parent_path(), mv);
      if (!mv) fs::rename(entry.path(), aside, mv);
      if (mv)
        throw store::StoreError("model registry " + root_ + ": folder '" + entry.path().string() +
                                    "' has no registry row (left by a crash) and cannot be moved aside: " + mv.message(),
                                0);
      spdlog::warn("model registry {}: '{}/{}' has no registry row (a registration interrupted by a crash); moved aside to '{}'",
                   root_, name, leaf, aside.string());
    }
  }
  tx.commit();
}

namespace {

ModelRecord record_read(const store::Db& db, const std::string& root, const Stmt& st) {
  ModelRecord r;
  r.name = st.text_at(0);
  r.version = static_cast<std::int32_t>(st.int_at(1));
  const std::string status = st.text_at(2);
  const auto parsed = model_status_parse(status);
  if (!parsed)
    throw store::StoreError("model registry '" + db.path() + "': " + r.name + " v" + std::to_string(r.version) +
                                " has status '" + status + "' (expected CANDIDATE, SHADOW, ACTIVE or RETIRED)",
                            0);
  r.status = *parsed;
  r.kind = st.text_at(3);
  r.dir = root + "/" + st.text_at(4);
  r.parent_version = static_cast<std::int32_t>(st.int_at(5));
  r.created_ms = st.int_at(6);
  r.updated_ms = st.int_at(7);
  Stmt m = db.cached("SELECT stage, metrics FROM stage_metrics WHERE name = ? AND version = ?");
  m.bind(1, r.name).bind(2, std::int64_t{r.version});
  while (m.step()) r.stage_metrics[m.text_at(0)] = m.text_at(1);
  return r;
}

std::vector<ModelRecord> records_query(const store::Db& db, const std::string& root, const std::string& where,
                                       const std::string& name) {
  Stmt st = db.cached(std::string(kSelect) + where + " ORDER BY name, version");
  if (!name.empty()) st.bind(1, name);
  std::vector<ModelRecord> out;
  while (st.step()) out.push_back(record_read(db, root, st));
  return out;
}

std::optional<ModelRecord> record_get(const store::Db& db, const std::string& root, const std::string& name, std::int32_t version) {
  Stmt st = db.cached(std::string(kSelect) + "WHERE name = ? AND version = ?");
  st.bind(1, name).bind(2, std::int64_t{version});
  if (!st.step()) return std::nullopt;
  return record_read(db, root, st);
}

}  // namespace

ModelRecord ModelRegistry::register_candidate(const std::string& name, const Model& model) {
  name_check(name);
  std::lock_guard lock(mutex_);
  store::Transaction tx(*db_);
  std::int32_t next = 1, parent = 0;
  {
    Stmt st = db_->cached("SELECT COALESCE(MAX(version), 0) FROM models WHERE name = ?");
    st.bind(1, name);
    if (st.step()) next = static_cast<std::int32_t>(st.int_at(0)) + 1;
    Stmt act = db_->cached("SELECT version FROM models WHERE name = ? AND status = 'ACTIVE'");
    act.bind(1, name);
    if (act.step()) parent = static_cast<std::int32_t>(act.int_at(0));
  }
  const std::string rel = name + "/" + std::to_string(next);
  const fs::path final_dir = fs::path(root_) / rel;
  std::error_code ec;
  fs::create_directories(final_dir.parent_path(), ec);
  if (ec) throw WriteError("cannot write '" + final_dir.parent_path().string() + "': " + ec.message());
  if (fs::exists(final_dir)) {
    // A folder without a row (we hold the write lock): left by a crash after the open's recovery ran. Move it aside.
    const fs::path aside = fs::path(root_) / ".orphans" / (name + "-v" + std::to_string(next) + "-" + std::to_string(now_ms()));
    fs::create_directories(aside.parent_path(), ec);
    if (!ec) fs::rename(final_dir, aside, ec);
    if (ec) throw WriteError("cannot write '" + final_dir.string() + "': it exists without a registry row and cannot be moved aside: " + ec.message());
    spdlog::warn("model registry {}: '{}' had no registry row; moved aside to '{}'", root_, final_dir.string(), aside.string());
  }
  const std::string tmp_dir = atomic_temp_name(final_dir.string());
  const auto stored = model.renamed(name, next);
  try {
    stored->save(tmp_dir);
    atomic_commit(tmp_dir, final_dir.string());  // the folder appears complete or not at all
  } catch (...) {
    fs::remove_all(tmp_dir, ec);
    throw;
  }
  const auto t = now_ms();
  try {
    db_->cached(
           "INSERT INTO models(name, version, status, kind, path, parent_version, created_ms, updated_ms)"
           " VALUES(?, ?, 'CANDIDATE', ?, ?, ?, ?, ?)")
        .bind(1, name)
        .bind(2, next)
        .bind(3, std::string(model_kind_name(model.meta().kind)))
        .bind(4, rel)
        .bind(5, parent)
        .bind(6, t)
        .bind(7, t)
        .run();
    db_->cached("INSERT INTO stage_metrics(name, version, stage, metrics, recorded_ms) VALUES(?, ?, 'CANDIDATE', ?, ?)")
        .bind(1, name)
        .bind(2, next)
        .bind(3, model.meta().test.to_json())
        .bind(4, t)
        .run();
    db_->cached("INSERT INTO transitions(name, version, from_status, to_status, at_ms) VALUES(?, ?, '', 'CANDIDATE', ?)")
        .bind(1, name)
        .bind(2, next)
        .bind(3, t)
        .run();
    tx.commit();
  } catch (...) {
    fs::remove_all(final_dir, ec);
    throw;
  }
  return *record_get(*db_, root_, name, next);
}

std::vector<ModelRecord> ModelRegistry::list(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return records_query(*db_, root_, name.empty() ? "" : "WHERE name = ?", name);
}

Result<ModelRecord> ModelRegistry::get(const std::string& name, std::int32_t version) const {
  std::lock_guard lock(mutex_);
  auto r = record_get(*db_, root_, name, version);
  if (!r) return Error{ErrorCode::not_found, "no model '" + name + "' version " + std::to_string(version) + " in " + root_};
  return *r;
}

std::optional<ModelRecord> ModelRegistry::active(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto v = records_query(*db_, root_, "WHERE status = 'ACTIVE' AND name = ?", name);
  if (v.empty()) return std::nullopt;
  return v.front();
}

std::vector<ModelRecord> ModelRegistry::active_all() const {
  std::lock_guard lock(mutex_);
  return records_query(*db_, root_, "WHERE status = 'ACTIVE'", {});
}

Result<ModelRecord> ModelRegistry::promote(const std::string& name, std::int32_t version) {
  return transition(name, version, Move::promote);
}

Result<ModelRecord> ModelRegistry::retire(const std::string& name, std::int32_t version) {
  return transition(name, version, Move::retire);
}

Result<ModelRecord> ModelRegistry::reactivate(const std::string& name, std::int32_t version) {
  return transition(name, version, Move::reactivate);
}

std::string ModelRegistry::check(const ModelRecord& record) const {
  std::unique_ptr<Model> model;
  try {
    model = Model::load(record.dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  const auto& meta = model->meta();
  if (meta.name != record.name || meta.version != record.version)
    return "'" + record.dir + "/meta.json' names " + meta.name + " v" + std::to_string(meta.version) + ", not " + record.name +
           " v" + std::to_string(record.version);
  if (model_kind_name(meta.kind) != record.kind)
    return "'" + record.dir + "/meta.json' is a " + std::string(model_kind_name(meta.kind)) + ", the registry says " + record.kind;
  const std::int64_t width = std::int64_t{model->input_window()} * meta.spec.n_features();
  const auto out = model->forward_inputs(std::vector<float>(static_cast<std::size_t>(width), 0.0f), 1);
  for (float v : out)
    if (!std::isfinite(v)) return "the network in '" + record.dir + "' gives a non-finite output on a zero input";
  return {};
}

Result<ModelRecord> ModelRegistry::transition(const std::string& name, std::int32_t version, Move move) {
  std::lock_guard lock(mutex_);
  const auto rec = record_get(*db_, root_, name, version);
  if (!rec) return Error{ErrorCode::not_found, "no model '" + name + "' version " + std::to_string(version) + " in " + root_};
  const ModelStatus from = rec->status;
  const std::string label = name + " v" + std::to_string(version);
  ModelStatus to = ModelStatus::retired;
  if (move == Move::retire) {
    if (from == ModelStatus::retired) return Error{ErrorCode::bad_transition, label + " is already RETIRED"};
  } else if (move == Move::reactivate) {
    if (from != ModelStatus::retired)
      return Error{ErrorCode::bad_transition, label + " is " + std::string(model_status_name(from)) +
                                         "; only a RETIRED version can be reactivated (rollback)"};
    to = ModelStatus::active;
  } else if (from == ModelStatus::candidate) {
    to = ModelStatus::shadow;
  } else if (from == ModelStatus::shadow) {
    to = ModelStatus::active;
  } else {
    return Error{ErrorCode::bad_transition, label + " is " + std::string(model_status_name(from)) +
                                       "; only CANDIDATE (to SHADOW) and SHADOW (to ACTIVE) can be promoted"};
  }
  if (to != ModelStatus::retired) {
    // A version that does not load never serves: refuse before any status changes.
    if (const std::string problem = check(*rec); !problem.empty())
      return Error{ErrorCode::broken_model, "refusing to move " + label + " to " + std::string(model_status_name(to)) + ": " + problem +
                                       " (statuses unchanged)"};
  }
  store::Transaction tx(*db_);
  const auto now = record_get(*db_, root_, name, version);  // another process may have moved it meanwhile
  if (!now || now->status != from)
    return Error{ErrorCode::conflict, label + " changed status while it was being checked; try again"};
  const auto t = now_ms();
  auto set_status = [&](std::int32_t v, ModelStatus a, ModelStatus b) {
    db_->cached("UPDATE models SET status = ?, updated_ms = ? WHERE name = ? AND version = ?")
        .bind(1, model_status_name(b))
        .bind(2, t)
        .bind(3, name)
        .bind(4, v)
        .run();
    db_->cached("INSERT INTO transitions(name, version, from_status, to_status, at_ms) VALUES(?, ?, ?, ?, ?)")
        .bind(1, name)
        .bind(2, v)
        .bind(3, model_status_name(a))
        .bind(4, model_status_name(b))
        .bind(5, t)
        .run();
  };
  if (to == ModelStatus::active) {
    Stmt act = db_->cached("SELECT version FROM models WHERE name = ? AND status = 'ACTIVE'");
    act.bind(1, name);
    std::vector<std::int32_t> old;
    while (act.step()) old.push_back(static_cast<std::int32_t>(act.int_at(0)));
    for (auto v : old) set_status(v, ModelStatus::active, ModelStatus::retired);
  }
  set_status(version, from, to);
  tx.commit();
  return *record_get(*db_, root_, name, version);
}

Result<Unit> ModelRegistry::metrics_record(const std::string& name, std::int32_t version, ModelStatus stage, const Metrics& m) {
  std::lock_guard lock(mutex_);
  if (!record_get(*db_, root_, name, version))
    return Error{ErrorCode::not_found, "no model '" + name + "' version " + std::to_string(version) + " in " + root_};
  db_->cached(
         "INSERT INTO stage_metrics(name, version, stage, metrics, recorded_ms) VALUES(?, ?, ?, ?, ?)"
         " ON CONFLICT(name, version, stage) DO UPDATE SET metrics = excluded.metrics, recorded_ms = excluded.recorded_ms")
      .bind(1, name)
      .bind(2, version)
      .bind(3, model_status_name(stage))
      .bind(4, m.to_json())
      .bind(5, now_ms())
      .run();
  return Unit{};
}

std::vector<ModelTransition> ModelRegistry::history(const std::string& name) const {
  std::lock_guard lock(mutex_);
  Stmt st = db_->cached(name.empty() ? "SELECT name, version, from_status, to_status, at_ms FROM transitions ORDER BY id"
                                      : "SELECT name, version, from_status, to_status, at_ms FROM transitions WHERE name = ? ORDER BY id");
  if (!name.empty()) st.bind(1, name);
  std::vector<ModelTransition> out;
  while (st.step())
    out.push_back({st.text_at(0), static_cast<std::int32_t>(st.int_at(1)), st.text_at(2), st.text_at(3), st.int_at(4)});
  return out;
}

std::unique_ptr<Model> ModelRegistry::load(const ModelRecord& record, const FeatureSpec* expected) const {
  return Model::load(record.dir, expected);
}

}  // namespace qtos::models
