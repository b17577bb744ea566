#include "models/registry.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <stdexcept>

namespace qtos::models {

namespace fs = std::filesystem;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A prepared statement with RAII finalisation; every failure throws std::runtime_error with SQLite's message.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("model registry: SQL error: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(st_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  /// True while a row is available.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("model registry: SQL error: ") + sqlite3_errmsg(db_));
  }
  std::int64_t int_at(int i) const { return sqlite3_column_int64(st_, i); }
  std::string text_at(int i) const {
    const auto* p = sqlite3_column_text(st_, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    throw std::runtime_error("model registry: SQL error: " + msg);
  }
}

/// BEGIN IMMEDIATE ... COMMIT, rolled back when the scope is left by an exception or an early return.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { exec(db_, "BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    exec(db_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

void name_check(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 31 &&
                  std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
  if (!ok) throw std::invalid_argument("model name '" + name + "' is not 1-31 characters of [A-Za-z0-9_-] (31: it travels in bus events as a StrategyId)");
}

constexpr const char* kSelect =
    "SELECT name, version, status, kind, path, parent_version, created_ms, updated_ms FROM models ";

}  // namespace

std::string_view model_status_name(ModelStatus s) {
  switch (s) {
    case ModelStatus::candidate: return "CANDIDATE";
    case ModelStatus::shadow: return "SHADOW";
    case ModelStatus::active: return "ACTIVE";
    case ModelStatus::retired: return "RETIRED";
  }
  return "?";
}

std::optional<ModelStatus> model_status_parse(std::string_view text) {
  std::string up(text);
  for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (auto s : {ModelStatus::candidate, ModelStatus::shadow, ModelStatus::active, ModelStatus::retired})
    if (up == model_status_name(s)) return s;
  return std::nullopt;
}

ModelRegistry::ModelRegistry(std::string root) : root_(std::move(root)), db_(nullptr, &sqlite3_close) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw std::runtime_error("model registry: cannot create directory '" + root_ + "': " + ec.message());
  root_ = fs::absolute(root_).lexically_normal().string();
  const std::string path = root_ + "/registry.db";
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK)
    throw std::runtime_error("model registry: cannot open '" + path + "': " + (raw ? sqlite3_errmsg(raw) : "out of memory"));
  sqlite3_busy_timeout(raw, 5000);
  exec(raw, "PRAGMA journal_mode=WAL");
  exec(raw,
       "CREATE TABLE IF NOT EXISTS models(name TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,"
       " kind TEXT NOT NULL, path TEXT NOT NULL, parent_version INTEGER NOT NULL DEFAULT 0,"
       " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY(name, version));"
       "CREATE TABLE IF NOT EXISTS stage_metrics(name TEXT NOT NULL, version INTEGER NOT NULL, stage TEXT NOT NULL,"
       " metrics TEXT NOT NULL, recorded_ms INTEGER NOT NULL, PRIMARY KEY(name, version, stage));"
       "CREATE TABLE IF NOT EXISTS transitions(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
       " version INTEGER NOT NULL, from_status TEXT NOT NULL, to_status TEXT NOT NULL, at_ms INTEGER NOT NULL);");
}

ModelRegistry::~ModelRegistry() = default;

namespace {

ModelRecord record_read(sqlite3* db, const std::string& root, const Stmt& st) {
  ModelRecord r;
  r.name = st.text_at(0);
  r.version = static_cast<std::int32_t>(st.int_at(1));
  r.status = model_status_parse(st.text_at(2)).value_or(ModelStatus::retired);
  r.kind = st.text_at(3);
  r.dir = root + "/" + st.text_at(4);
  r.parent_version = static_cast<std::int32_t>(st.int_at(5));
  r.created_ms = st.int_at(6);
  r.updated_ms = st.int_at(7);
  Stmt m(db, "SELECT stage, metrics FROM stage_metrics WHERE name = ? AND version = ?");
  m.bind(1, r.name).bind(2, std::int64_t{r.version});
  while (m.step()) r.stage_metrics[m.text_at(0)] = m.text_at(1);
  return r;
}

std::vector<ModelRecord> records_query(sqlite3* db, const std::string& root, const std::string& where,
                                       const std::string& name) {
  Stmt st(db, (std::string(kSelect) + where + " ORDER BY name, version").c_str());
  if (!name.empty()) st.bind(1, name);
  std::vector<ModelRecord> out;
  while (st.step()) out.push_back(record_read(db, root, st));
  return out;
}

}  // namespace

ModelRecord ModelRegistry::register_candidate(const std::string& name, const Model& model) {
  name_check(name);
  std::lock_guard lock(mutex_);
  Transaction tx(db_.get());
  std::int32_t version = 1, parent = 0;
  {
    Stmt st(db_.get(), "SELECT COALESCE(MAX(version), 0) FROM models WHERE name = ?");
    st.bind(1, name);
    if (st.step()) version = static_cast<std::int32_t>(st.int_at(0)) + 1;
    Stmt act(db_.get(), "SELECT version FROM models WHERE name = ? AND status = 'ACTIVE'");
    act.bind(1, name);
    if (act.step()) parent = static_cast<std::int32_t>(act.int_at(0));
  }
  const std::string rel = name + "/" + std::to_string(version);
  const fs::path final_dir = fs::path(root_) / rel;
  const fs::path tmp_dir = fs::path(root_) / name / (".tmp-" + std::to_string(version) + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp_dir);
  if (fs::exists(final_dir))
    throw std::runtime_error("model registry: directory '" + final_dir.string() + "' exists but is not in the index");
  const auto stored = model.renamed(name, version);
  stored->save(tmp_dir.string());
  fs::rename(tmp_dir, final_dir);  // the directory appears complete or not at all
  const auto t = now_ms();
  try {
    Stmt ins(db_.get(),
             "INSERT INTO models(name, version, status, kind, path, parent_version, created_ms, updated_ms)"
             " VALUES(?, ?, 'CANDIDATE', ?, ?, ?, ?, ?)");
    ins.bind(1, name).bind(2, std::int64_t{version}).bind(3, std::string(model_kind_name(model.meta().kind))).bind(4, rel);
    ins.bind(5, std::int64_t{parent}).bind(6, t).bind(7, t);
    ins.step();
    Stmt met(db_.get(), "INSERT INTO stage_metrics(name, version, stage, metrics, recorded_ms) VALUES(?, ?, 'CANDIDATE', ?, ?)");
    met.bind(1, name).bind(2, std::int64_t{version}).bind(3, model.meta().test.to_json()).bind(4, t);
    met.step();
    Stmt tr(db_.get(), "INSERT INTO transitions(name, version, from_status, to_status, at_ms) VALUES(?, ?, '', 'CANDIDATE', ?)");
    tr.bind(1, name).bind(2, std::int64_t{version}).bind(3, t);
    tr.step();
    tx.commit();
  } catch (...) {
    fs::remove_all(final_dir);
    throw;
  }
  Stmt st(db_.get(), (std::string(kSelect) + "WHERE name = ? AND version = ?").c_str());
  st.bind(1, name).bind(2, std::int64_t{version});
  st.step();
  return record_read(db_.get(), root_, st);
}

std::vector<ModelRecord> ModelRegistry::list(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return records_query(db_.get(), root_, name.empty() ? "" : "WHERE name = ?", name);
}

Result<ModelRecord> ModelRegistry::get(const std::string& name, std::int32_t version) const {
  std::lock_guard lock(mutex_);
  Stmt st(db_.get(), (std::string(kSelect) + "WHERE name = ? AND version = ?").c_str());
  st.bind(1, name).bind(2, std::int64_t{version});
  if (!st.step()) return Error{"not_found", "no model '" + name + "' version " + std::to_string(version) + " in " + root_};
  return record_read(db_.get(), root_, st);
}

std::optional<ModelRecord> ModelRegistry::active(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto v = records_query(db_.get(), root_, "WHERE status = 'ACTIVE' AND name = ?", name);
  if (v.empty()) return std::nullopt;
  return v.front();
}

std::vector<ModelRecord> ModelRegistry::active_all() const {
  std::lock_guard lock(mutex_);
  return records_query(db_.get(), root_, "WHERE status = 'ACTIVE'", {});
}

Result<ModelRecord> ModelRegistry::promote(const std::string& name, std::int32_t version) {
  return transition(name, version, false);
}

Result<ModelRecord> ModelRegistry::retire(const std::string& name, std::int32_t version) {
  return transition(name, version, true);
}

Result<ModelRecord> ModelRegistry::transition(const std::string& name, std::int32_t version, bool to_retired) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_.get());
  Stmt st(db_.get(), "SELECT status FROM models WHERE name = ? AND version = ?");
  st.bind(1, name).bind(2, std::int64_t{version});
  if (!st.step()) return Error{"not_found", "no model '" + name + "' version " + std::to_string(version) + " in " + root_};
  const auto from = model_status_parse(st.text_at(0)).value_or(ModelStatus::retired);
  ModelStatus to = ModelStatus::retired;
  if (to_retired) {
    if (from == ModelStatus::retired) return Error{"bad_transition", name + " v" + std::to_string(version) + " is already RETIRED"};
  } else if (from == ModelStatus::candidate) {
    to = ModelStatus::shadow;
  } else if (from == ModelStatus::shadow) {
    to = ModelStatus::active;
  } else {
    return Error{"bad_transition", name + " v" + std::to_string(version) + " is " + std::string(model_status_name(from)) +
                                       "; only CANDIDATE (to SHADOW) and SHADOW (to ACTIVE) can be promoted"};
  }
  const auto t = now_ms();
  auto move = [&](std::int32_t v, ModelStatus a, ModelStatus b) {
    Stmt up(db_.get(), "UPDATE models SET status = ?, updated_ms = ? WHERE name = ? AND version = ?");
    up.bind(1, std::string(model_status_name(b))).bind(2, t).bind(3, name).bind(4, std::int64_t{v});
    up.step();
    Stmt tr(db_.get(), "INSERT INTO transitions(name, version, from_status, to_status, at_ms) VALUES(?, ?, ?, ?, ?)");
    tr.bind(1, name).bind(2, std::int64_t{v}).bind(3, std::string(model_status_name(a))).bind(4, std::string(model_status_name(b))).bind(5, t);
    tr.step();
  };
  if (to == ModelStatus::active) {
    Stmt act(db_.get(), "SELECT version FROM models WHERE name = ? AND status = 'ACTIVE'");
    act.bind(1, name);
    std::vector<std::int32_t> old;
    while (act.step()) old.push_back(static_cast<std::int32_t>(act.int_at(0)));
    for (auto v : old) move(v, ModelStatus::active, ModelStatus::retired);
  }
  move(version, from, to);
  tx.commit();
  Stmt out(db_.get(), (std::string(kSelect) + "WHERE name = ? AND version = ?").c_str());
  out.bind(1, name).bind(2, std::int64_t{version});
  out.step();
  return record_read(db_.get(), root_, out);
}

Result<Unit> ModelRegistry::metrics_record(const std::string& name, std::int32_t version, ModelStatus stage, const Metrics& m) {
  std::lock_guard lock(mutex_);
  Stmt ex(db_.get(), "SELECT 1 FROM models WHERE name = ? AND version = ?");
  ex.bind(1, name).bind(2, std::int64_t{version});
  if (!ex.step()) return Error{"not_found", "no model '" + name + "' version " + std::to_string(version) + " in " + root_};
  Stmt st(db_.get(),
          "INSERT INTO stage_metrics(name, version, stage, metrics, recorded_ms) VALUES(?, ?, ?, ?, ?)"
          " ON CONFLICT(name, version, stage) DO UPDATE SET metrics = excluded.metrics, recorded_ms = excluded.recorded_ms");
  st.bind(1, name).bind(2, std::int64_t{version}).bind(3, std::string(model_status_name(stage))).bind(4, m.to_json()).bind(5, now_ms());
  st.step();
  return Unit{};
}

std::vector<ModelTransition> ModelRegistry::history(const std::string& name) const {
  std::lock_guard lock(mutex_);
  Stmt st(db_.get(), name.empty() ? "SELECT name, version, from_status, to_status, at_ms FROM transitions ORDER BY id"
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
