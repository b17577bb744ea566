#include <sqlite3.h>
#include <sys/stat.h>

#include <cstring>
#include <utility>

#include "runtime/policy/policy_backend.hpp"

namespace qtos {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS policy_history (
  version INTEGER PRIMARY KEY,
  updated_at_ns INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  reason TEXT NOT NULL,
  risk_mode TEXT NOT NULL,
  allowed_strategies TEXT NOT NULL,
  blocked_strategies TEXT NOT NULL,
  min_confidence REAL NOT NULL,
  max_risk_per_trade REAL NOT NULL,
  max_open_positions INTEGER NOT NULL,
  max_leverage REAL NOT NULL,
  max_daily_drawdown_pct REAL NOT NULL,
  max_open_drawdown_pct REAL NOT NULL,
  top_n_universe INTEGER NOT NULL,
  extra TEXT NOT NULL
) STRICT;
)sql";

constexpr const char* kColumns =
    "version, updated_at_ns, updated_by, reason, risk_mode, allowed_strategies, blocked_strategies, min_confidence, "
    "max_risk_per_trade, max_open_positions, max_leverage, max_daily_drawdown_pct, max_open_drawdown_pct, "
    "top_n_universe, extra";

// Lists and maps are stored as text, one item per line, with '\', newline and '=' escaped.
std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '=') out += "\\e";
    else out.push_back(c);
  }
  return out;
}

bool unescape(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out.push_back(s[i]);
      continue;
    }
    if (++i >= s.size()) return false;
    if (s[i] == '\\') out.push_back('\\');
    else if (s[i] == 'n') out.push_back('\n');
    else if (s[i] == 'e') out.push_back('=');
    else return false;
  }
  return true;
}

std::string encode_set(const std::set<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += escape(s) + "\n";
  return out;
}

std::string encode_map(const std::map<std::string, std::string>& items) {
  std::string out;
  for (const auto& [k, v] : items) out += escape(k) + "=" + escape(v) + "\n";
  return out;
}

std::vector<std::string_view> lines(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start < s.size()) {
    std::size_t nl = s.find('\n', start);
    if (nl == std::string_view::npos) nl = s.size();
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

bool decode_set(std::string_view s, std::set<std::string>& out) {
  std::string item;
  for (auto line : lines(s)) {
    if (!unescape(line, item)) return false;
    out.insert(item);
  }
  return true;
}

bool decode_map(std::string_view s, std::map<std::string, std::string>& out) {
  std::string k, v;
  for (auto line : lines(s)) {
    const auto eq = line.find('=');
    if (eq == std::string_view::npos || !unescape(line.substr(0, eq), k) || !unescape(line.substr(eq + 1), v)) return false;
    out[k] = v;
  }
  return true;
}

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

std::string text_column(sqlite3_stmt* s, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

}  // namespace

struct SqlitePolicyBackend::Db {
  sqlite3* db = nullptr;
  Stmt begin, commit, rollback, latest_version, insert, select_latest, select_from;
  ~Db() {
    begin.reset();
    commit.reset();
    rollback.reset();
    latest_version.reset();
    insert.reset();
    select_latest.reset();
    select_from.reset();
    if (db) sqlite3_close_v2(db);
  }
  std::string message() const { return db ? std::string(sqlite3_errmsg(db)) : std::string("out of memory"); }
};

namespace {

[[noreturn]] void startup_fail(const std::string& path, const std::string& what) {
  throw PolicyStoreError("policy database '" + path + "': " + what +
                         "; refusing to start (the policy is never silently reset to defaults)");
}

Stmt prepare(sqlite3* db, const std::string& path, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
    startup_fail(path, std::string("cannot prepare '") + sql + "': " + sqlite3_errmsg(db));
  return Stmt(s);
}

void exec_or_fail(sqlite3* db, const std::string& path, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    startup_fail(path, std::string("'") + sql + "' failed: " + msg);
  }
}

std::vector<std::string> query_texts(sqlite3* db, const std::string& path, const char* sql) {
  Stmt s = prepare(db, path, sql);
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(text_column(s.get(), 0));
  if (rc != SQLITE_DONE) startup_fail(path, std::string("'") + sql + "' failed: " + sqlite3_errmsg(db));
  return out;
}

Result<Policy> read_row(sqlite3_stmt* s, const std::string& path) {
  Policy p;
  p.version = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
  p.updated_at = sqlite3_column_int64(s, 1);
  p.updated_by = text_column(s, 2);
  p.reason = text_column(s, 3);
  const std::string mode = text_column(s, 4);
  auto bad = [&](const std::string& field, const std::string& value) {
    return Error{"corrupt", "policy database '" + path + "': version " + std::to_string(p.version) + " has " + field +
                                " = '" + value + "', which cannot be decoded"};
  };
  try {
    p.risk_mode = risk_mode_parse(mode);
  } catch (const std::invalid_argument&) {
    return bad("risk_mode", mode);
  }
  if (const auto a = text_column(s, 5); !decode_set(a, p.allowed_strategies)) return bad("allowed_strategies", a);
  if (const auto b = text_column(s, 6); !decode_set(b, p.blocked_strategies)) return bad("blocked_strategies", b);
  p.min_confidence = sqlite3_column_double(s, 7);
  p.max_risk_per_trade = sqlite3_column_double(s, 8);
  p.max_open_positions = sqlite3_column_int64(s, 9);
  p.max_leverage = sqlite3_column_double(s, 10);
  p.max_daily_drawdown_pct = sqlite3_column_double(s, 11);
  p.max_open_drawdown_pct = sqlite3_column_double(s, 12);
  p.top_n_universe = sqlite3_column_int64(s, 13);
  if (const auto e = text_column(s, 14); !decode_map(e, p.extra)) return bad("extra", e);
  return p;
}

}  // namespace

SqlitePolicyBackend::SqlitePolicyBackend(std::string path) : path_(std::move(path)), db_(std::make_unique<Db>()) {
  if (path_.empty()) throw PolicyStoreError("policy database path is empty");
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) startup_fail(path_, "is a directory, not a database file");
  const int rc = sqlite3_open_v2(path_.c_str(), &db_->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) startup_fail(path_, "cannot open: " + db_->message());
  sqlite3_extended_result_codes(db_->db, 1);
  sqlite3_busy_timeout(db_->db, 5000);
  // The first real read: a file that is not a database fails here with SQLite's "file is not a database".
  const auto mode = query_texts(db_->db, path_, "PRAGMA journal_mode=WAL");
  if (mode.size() != 1 || mode[0] != "wal")
    startup_fail(path_, "cannot switch to WAL journal mode (got '" + (mode.empty() ? std::string() : mode[0]) + "')");
  exec_or_fail(db_->db, path_, "PRAGMA synchronous=FULL");
  const auto check = query_texts(db_->db, path_, "PRAGMA integrity_check");
  if (check.size() != 1 || check[0] != "ok") {
    std::string problems;
    for (std::size_t i = 0; i < check.size() && i < 3; ++i) problems += (i ? "; " : "") + check[i];
    startup_fail(path_, "fails PRAGMA integrity_check: " + problems);
  }
  const auto user_version = query_texts(db_->db, path_, "PRAGMA user_version");
  const int schema = user_version.empty() ? 0 : std::atoi(user_version[0].c_str());
  if (schema > kSchemaVersion)
    startup_fail(path_, "has schema version " + std::to_string(schema) + "; this build knows version " +
                            std::to_string(kSchemaVersion));
  exec_or_fail(db_->db, path_, kSchema);
  if (schema == 0) exec_or_fail(db_->db, path_, "PRAGMA user_version=1");
  db_->begin = prepare(db_->db, path_, "BEGIN IMMEDIATE");
  db_->commit = prepare(db_->db, path_, "COMMIT");
  db_->rollback = prepare(db_->db, path_, "ROLLBACK");
  db_->latest_version = prepare(db_->db, path_, "SELECT COALESCE(MAX(version), 0) FROM policy_history");
  db_->insert = prepare(db_->db, path_,
                        (std::string("INSERT INTO policy_history (") + kColumns +
                         ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")
                            .c_str());
  db_->select_latest = prepare(
      db_->db, path_, (std::string("SELECT ") + kColumns + " FROM policy_history ORDER BY version DESC LIMIT 1").c_str());
  db_->select_from = prepare(
      db_->db, path_,
      (std::string("SELECT ") + kColumns + " FROM policy_history WHERE version >= ?1 ORDER BY version LIMIT ?2").c_str());
}

SqlitePolicyBackend::~SqlitePolicyBackend() = default;

Result<std::optional<Policy>> SqlitePolicyBackend::load_latest() {
  std::lock_guard<std::mutex> lock(mutex_);
  sqlite3_stmt* s = db_->select_latest.get();
  sqlite3_reset(s);
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return std::optional<Policy>{};
  if (rc != SQLITE_ROW) return Error{"storage", "policy database '" + path_ + "': cannot read the policy: " + db_->message()};
  auto p = read_row(s, path_);
  sqlite3_reset(s);
  if (!p.ok()) return p.error();
  return std::optional<Policy>(std::move(p).value());
}

Result<Unit> SqlitePolicyBackend::append(const Policy& next) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto fail = [&](const std::string& what) -> Result<Unit> {
    const std::string msg = db_->message();
    sqlite3_reset(db_->rollback.get());
    if (!sqlite3_get_autocommit(db_->db)) sqlite3_step(db_->rollback.get());
    sqlite3_reset(db_->rollback.get());
    return Error{"storage", "policy database '" + path_ + "': " + what + ": " + msg};
  };
  sqlite3_reset(db_->begin.get());
  if (sqlite3_step(db_->begin.get()) != SQLITE_DONE) return fail("cannot begin a write transaction");
  sqlite3_stmt* v = db_->latest_version.get();
  sqlite3_reset(v);
  if (sqlite3_step(v) != SQLITE_ROW) return fail("cannot read the latest version");
  const auto latest = static_cast<std::uint64_t>(sqlite3_column_int64(v, 0));
  sqlite3_reset(v);
  if (next.version != latest + 1) {
    sqlite3_reset(db_->rollback.get());
    sqlite3_step(db_->rollback.get());
    sqlite3_reset(db_->rollback.get());
    return Error{"conflict", "policy version " + std::to_string(next.version) + " cannot follow stored version " +
                                 std::to_string(latest) + " in '" + path_ + "'"};
  }
  sqlite3_stmt* s = db_->insert.get();
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  const std::string mode(enum_name(next.risk_mode));
  const std::string allowed = encode_set(next.allowed_strategies), blocked = encode_set(next.blocked_strategies);
  const std::string extra = encode_map(next.extra);
  sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(next.version));
  sqlite3_bind_int64(s, 2, next.updated_at);
  sqlite3_bind_text(s, 3, next.updated_by.data(), static_cast<int>(next.updated_by.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 4, next.reason.data(), static_cast<int>(next.reason.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 5, mode.data(), static_cast<int>(mode.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 6, allowed.data(), static_cast<int>(allowed.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 7, blocked.data(), static_cast<int>(blocked.size()), SQLITE_STATIC);
  sqlite3_bind_double(s, 8, next.min_confidence);
  sqlite3_bind_double(s, 9, next.max_risk_per_trade);
  sqlite3_bind_int64(s, 10, next.max_open_positions);
  sqlite3_bind_double(s, 11, next.max_leverage);
  sqlite3_bind_double(s, 12, next.max_daily_drawdown_pct);
  sqlite3_bind_double(s, 13, next.max_open_drawdown_pct);
  sqlite3_bind_int64(s, 14, next.top_n_universe);
  sqlite3_bind_text(s, 15, extra.data(), static_cast<int>(extra.size()), SQLITE_STATIC);
  if (sqlite3_step(s) != SQLITE_DONE) return fail("cannot insert version " + std::to_string(next.version));
  sqlite3_reset(s);
  sqlite3_reset(db_->commit.get());
  if (sqlite3_step(db_->commit.get()) != SQLITE_DONE) return fail("cannot commit version " + std::to_string(next.version));
  sqlite3_reset(db_->commit.get());
  return Unit{};
}

Result<std::vector<Policy>> SqlitePolicyBackend::history(std::uint64_t from_version, std::size_t limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  sqlite3_stmt* s = db_->select_from.get();
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(from_version));
  sqlite3_bind_int64(s, 2, limit > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX : static_cast<sqlite3_int64>(limit));
  std::vector<Policy> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto p = read_row(s, path_);
    if (!p.ok()) {
      sqlite3_reset(s);
      return p.error();
    }
    out.push_back(std::move(p).value());
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return Error{"storage", "policy database '" + path_ + "': cannot read the history: " + db_->message()};
  return out;
}

}  // namespace qtos
