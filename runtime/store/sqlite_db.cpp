#include "runtime/store/sqlite_db.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "runtime/util/result.hpp"

namespace qtos::store {
namespace {

std::string hint_for(int rc, const std::string& path) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
      return " (the file is damaged: restore it from a backup, or salvage rows with `sqlite3 " + path + " .recover`)";
    case SQLITE_NOTADB: return " (the file is not a SQLite database)";
    case SQLITE_FULL: return " (the disk is full: free space and retry; nothing was changed)";
    case SQLITE_IOERR: return " (an I/O error: is the disk full or failing? nothing was changed)";
    case SQLITE_READONLY: return " (the file or its directory is read-only)";
    case SQLITE_BUSY: return " (another process holds the write lock; retry later)";
    case SQLITE_CANTOPEN: return " (check that the directory exists and is writable)";
    default: return "";
  }
}

std::string app_id_text(std::uint32_t id) {
  char s[5] = {static_cast<char>(id >> 24), static_cast<char>(id >> 16), static_cast<char>(id >> 8), static_cast<char>(id), 0};
  for (int i = 0; i < 4; ++i)
    if (s[i] < 32 || s[i] > 126) return std::to_string(id);
  return std::string("'") + s + "' (" + std::to_string(id) + ")";
}

}  // namespace

bool StoreError::damaged() const { return (code_ & 0xff) == SQLITE_CORRUPT || (code_ & 0xff) == SQLITE_NOTADB; }

std::string_view store_kind_of(std::uint32_t application_id) {
  switch (application_id) {
    case kAppIdPolicy: return "policy database";
    case kAppIdStrategies: return "strategy repository";
    case kAppIdModels: return "model registry";
    case kAppIdLedger: return "trading ledger";
    default: return {};
  }
}

// ---- Stmt ----------------------------------------------------------------------------------------------------

Stmt::Stmt(const Db& db, sqlite3_stmt* stmt, bool* busy) : db_(&db), stmt_(stmt), busy_(busy) {}
Stmt::~Stmt() {
  if (!busy_) {
    sqlite3_finalize(stmt_);
  } else if (stmt_) {
    sqlite3_reset(stmt_);  // ends the read the statement may hold open
    *busy_ = false;
  }
}
Stmt::Stmt(Stmt&& other) noexcept : db_(other.db_), stmt_(other.stmt_), busy_(other.busy_) {
  other.stmt_ = nullptr;
  other.busy_ = nullptr;
}

Stmt& Stmt::bind(int i, std::string_view text) {
  QTOS_ASSERT(text.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()), "text too long to bind");
  if (sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT) != SQLITE_OK)
    db_->fail(sqlite3_errcode(db_->handle()), "cannot bind parameter " + std::to_string(i));
  return *this;
}
Stmt& Stmt::bind(int i, std::int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) db_->fail(sqlite3_errcode(db_->handle()), "cannot bind parameter " + std::to_string(i));
  return *this;
}
Stmt& Stmt::bind(int i, std::uint64_t v) {
  QTOS_ASSERT(v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), "unsigned value does not fit SQLite's int64");
  return bind(i, static_cast<std::int64_t>(v));
}
Stmt& Stmt::bind(int i, double v) {
  if (sqlite3_bind_double(stmt_, i, v) != SQLITE_OK) db_->fail(sqlite3_errcode(db_->handle()), "cannot bind parameter " + std::to_string(i));
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) db_->fail(sqlite3_errcode(db_->handle()), "cannot bind parameter " + std::to_string(i));
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // Keep the message before reset() replaces it.
  const std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
  const std::string what = "statement failed (" + sql.substr(0, 80) + (sql.size() > 80 ? "..." : "") + ")";
  db_->fail(rc, what);
}

void Stmt::run() {
  if (step()) {
    const std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
    throw StoreError(db_->kind() + " '" + db_->path() + "': a write statement returned rows (" + sql.substr(0, 80) + ")", 0);
  }
}

void Stmt::reset() { sqlite3_reset(stmt_); }
std::int64_t Stmt::changes() const { return db_->changes(); }
std::int64_t Stmt::int_at(int i) const { return sqlite3_column_int64(stmt_, i); }
double Stmt::real_at(int i) const { return sqlite3_column_double(stmt_, i); }
bool Stmt::null_at(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
std::string Stmt::text_at(int i) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i))) : std::string();
}

// ---- Transaction ---------------------------------------------------------------------------------------------

Transaction::Transaction(Db& db) : db_(db) { db_.cached("BEGIN IMMEDIATE").run(); }
Transaction::~Transaction() {
  if (!done_ && !sqlite3_get_autocommit(db_.handle())) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}
void Transaction::commit() {
  db_.cached("COMMIT").run();
  done_ = true;
}

// ---- Db ------------------------------------------------------------------------------------------------------

Db::Db(std::string path, const Schema& schema, const OpenOptions& opts) : path_(std::move(path)), kind_(schema.kind) {
  QTOS_ASSERT(schema.application_id != 0 && !schema.migrations.empty(), "a store schema needs an application id and a migration");
  if (path_.empty()) throw StoreError(kind_ + ": the path is empty (expected a file path)", 0);
  // ":memory:": a private in-memory database (tests, runs that keep nothing); it has no file and no WAL.
  const bool in_memory = path_ == ":memory:";
  struct stat st {};
  const bool exists = in_memory || ::stat(path_.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode))
    throw StoreError(kind_ + " '" + path_ + "' is a directory; expected a " + kind_ + " file", 0);
  if (!exists && opts.mode == OpenMode::existing)
    throw StoreError("no " + kind_ + " at '" + path_ + "' (the file does not exist)", SQLITE_CANTOPEN);
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (opts.mode == OpenMode::create ? SQLITE_OPEN_CREATE : 0);
  const int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw StoreError(kind_ + " '" + path_ + "': cannot open: " + msg + hint_for(rc, path_), rc);
  }
  try {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, opts.busy_timeout_ms);
    // The first real read: a file that is not a database fails here.
    if (!in_memory) {
      Stmt wal = prepare("PRAGMA journal_mode=WAL");
      if (!wal.step() || wal.text_at(0) != "wal")
        throw StoreError(kind_ + " '" + path_ + "': cannot switch to WAL journal mode", 0);
    }
    exec(opts.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    if (opts.foreign_keys) exec("PRAGMA foreign_keys=ON");
    if (opts.check != OpenCheck::none) {
      Stmt check = prepare(opts.check == OpenCheck::full ? "PRAGMA integrity_check" : "PRAGMA quick_check");
      std::string problems;
      int n = 0;
      while (check.step()) {
        // One row may hold several lines; count and quote the first few real ones.
        const std::string text = check.text_at(0);
        std::size_t at = 0;
        while (at < text.size()) {
          const std::size_t nl = std::min(text.find('\n', at), text.size());
          const std::string line = text.substr(at, nl - at);
          at = nl + 1;
          if (line.empty() || line == "ok" || line.rfind("*** in database", 0) == 0) continue;
          if (n++ < 3) problems += (problems.empty() ? "" : "; ") + line;
        }
      }
      if (n > 0)
        throw StoreError(kind_ + " '" + path_ + "' is damaged (" + std::to_string(n) + " problem" + (n > 1 ? "s" : "") +
                             ", first: " + problems + ")" + hint_for(SQLITE_CORRUPT, path_),
                         SQLITE_CORRUPT);
    }
    recognise(schema);
    migrate(schema);
  } catch (...) {
    for (auto& [sql, c] : cache_) sqlite3_finalize(c.stmt);
    cache_.clear();
    sqlite3_close_v2(db_);
    db_ = nullptr;
    if (!exists) {  // a store this call created and could not set up is not left behind half made
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((path_ + suffix).c_str());
    }
    throw;
  }
}

Db::~Db() {
  for (auto& [sql, c] : cache_) sqlite3_finalize(c.stmt);
  if (db_) sqlite3_close_v2(db_);
}

void Db::fail(int rc, std::string_view what) const {
  const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
  throw StoreError(kind_ + " '" + path_ + "': " + std::string(what) + ": " + msg + hint_for(rc, path_), rc);
}

Stmt Db::prepare(std::string_view sql) const {
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    fail(rc, "cannot prepare '" + std::string(sql.substr(0, 80)) + "'");
  }
  return Stmt(*this, s);
}

Stmt Db::cached(std::string_view sql) const {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* s = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(s);
      fail(rc, "cannot prepare '" + std::string(sql.substr(0, 80)) + "'");
    }
    it = cache_.emplace(std::string(sql), Cached{s, false}).first;
  }
  if (it->second.busy) return prepare(sql);  // the same SQL is still in use by a live handle
  it->second.busy = true;
  sqlite3_reset(it->second.stmt);
  sqlite3_clear_bindings(it->second.stmt);
  return Stmt(*this, it->second.stmt, &it->second.busy);
}

void Db::exec(std::string_view sql) {
  const std::string text(sql);
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    const std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StoreError(kind_ + " '" + path_ + "': '" + text.substr(0, 80) + "' failed: " + msg + hint_for(rc, path_), rc);
  }
}

std::int64_t Db::query_int(std::string_view sql) const {
  Stmt s = cached(sql);
  return s.step() ? s.int_at(0) : 0;
}

bool Db::table_exists(std::string_view name) const {
  Stmt s = prepare("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1");
  s.bind(1, name);
  return s.step();
}

bool Db::column_exists(std::string_view table, std::string_view column) const {
  Stmt s = prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2");
  s.bind(1, table).bind(2, column);
  return s.step();
}

std::int64_t Db::changes() const { return sqlite3_changes64(db_); }

void Db::recognise(const Schema& schema) {
  const auto app_id = static_cast<std::uint32_t>(query_int("PRAGMA application_id"));
  if (app_id == schema.application_id) return;
  const std::string expected = "expected a qtos " + kind_;
  if (app_id != 0) {
    const auto other = store_kind_of(app_id);
    if (!other.empty()) throw StoreError("'" + path_ + "' is a qtos " + std::string(other) + ", not a " + kind_ + " (" + expected + ")", 0);
    throw StoreError("'" + path_ + "' is a SQLite database of another application (application id " + app_id_text(app_id) +
                         "); " + expected,
                     0);
  }
  // No application id: a new file, a file written before ids were stamped (it has our tables), or a foreign one.
  std::vector<std::string> tables;
  {
    Stmt s = prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name");
    while (s.step()) tables.push_back(s.text_at(0));
  }
  if (tables.empty()) return;
  for (const auto& t : tables)
    for (const auto& ours : schema.tables)
      if (t == ours) return;
  std::string names;
  for (std::size_t i = 0; i < tables.size() && i < 5; ++i) names += (i ? ", " : "") + tables[i];
  if (tables.size() > 5) names += ", ...";
  throw StoreError("'" + path_ + "' is a SQLite database with a foreign schema (tables: " + names + "); " + expected, 0);
}

void Db::migrate(const Schema& schema) {
  const int current = schema.version();
  auto stamped = [&] {
    return static_cast<int>(query_int("PRAGMA user_version")) == current &&
           static_cast<std::uint32_t>(query_int("PRAGMA application_id")) == schema.application_id;
  };
  if (stamped()) return;  // the common case: no write lock taken at open
  Transaction tx(*this);
  const int version = static_cast<int>(query_int("PRAGMA user_version"));
  if (version > current)
    throw StoreError(kind_ + " '" + path_ + "' has schema version " + std::to_string(version) +
                         ", written by a newer qtos; this build reads versions up to " + std::to_string(current) +
                         " (nothing was changed)",
                     0);
  for (const auto& m : schema.migrations)
    if (m.to > version) m.apply(*this);
  if (version != current) exec("PRAGMA user_version = " + std::to_string(current));
  if (static_cast<std::uint32_t>(query_int("PRAGMA application_id")) != schema.application_id)
    exec("PRAGMA application_id = " + std::to_string(static_cast<std::int32_t>(schema.application_id)));
  tx.commit();
}

}  // namespace qtos::store
