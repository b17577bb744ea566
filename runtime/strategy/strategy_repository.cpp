#include "runtime/strategy/strategy_repository.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "cpu/strategy/genome_text.hpp"

namespace qtos {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS strategies (
  id TEXT PRIMARY KEY,
  code TEXT NOT NULL,
  rules TEXT NOT NULL,
  generation INTEGER NOT NULL,
  origin TEXT NOT NULL,
  parents TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  backtest_metrics TEXT NOT NULL,
  shadow_metrics TEXT NOT NULL,
  live_metrics TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS strategy_transitions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL REFERENCES strategies(id),
  from_status TEXT NOT NULL,
  to_status TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  reason TEXT NOT NULL
) STRICT;
)sql";

constexpr const char* kColumns =
    "id, code, rules, generation, origin, status, created_ms, updated_ms, backtest_metrics, shadow_metrics, live_metrics, parents";

/// Schema versions (PRAGMA user_version): 0 = the first schema (no parents column), 2 = parents added.
constexpr int kSchemaVersion = 2;

std::string parents_join(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ",") + id;
  return out;
}

std::vector<std::string> parents_split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t a = 0;
  while (a < text.size()) {
    const std::size_t b = std::min(text.find(',', a), text.size());
    if (b > a) out.push_back(text.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

std::string text_col(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  return p ? reinterpret_cast<const char*>(p) : "";
}

bool is_hex_prefix(std::string_view s) {
  return s.size() >= 4 && s.size() <= 16 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace

const char* strategy_status_name(StrategyStatus s) {
  switch (s) {
    case StrategyStatus::backtest: return "BACKTEST";
    case StrategyStatus::shadow: return "SHADOW";
    case StrategyStatus::live: return "LIVE";
    case StrategyStatus::retired: return "RETIRED";
  }
  return "?";
}

StrategyStatus strategy_status_parse(std::string_view text, std::string_view what) {
  std::string up(text);
  for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (auto s : {StrategyStatus::backtest, StrategyStatus::shadow, StrategyStatus::live, StrategyStatus::retired})
    if (up == strategy_status_name(s)) return s;
  throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "': expected BACKTEST, SHADOW, LIVE or RETIRED");
}

bool strategy_transition_allowed(StrategyStatus from, StrategyStatus to) {
  using S = StrategyStatus;
  if (to == S::retired) return from != S::retired;
  return (from == S::backtest && to == S::shadow) || (from == S::shadow && to == S::live) || (from == S::live && to == S::shadow);
}

struct StrategyRepository::Db {
  sqlite3* db = nullptr;
  ~Db() {
    if (db) sqlite3_close(db);
  }
  /// Prepares `sql`; throws naming the statement on failure (a bug or a corrupt file).
  Stmt prepare(const char* sql) const {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("strategy repository: cannot prepare '") + sql + "': " + sqlite3_errmsg(db));
    return Stmt(s);
  }
  void exec(const char* sql) const {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string m = err ? err : "unknown error";
      sqlite3_free(err);
      throw std::runtime_error(std::string("strategy repository: ") + m);
    }
  }
  void step_done(sqlite3_stmt* s) const {
    if (sqlite3_step(s) != SQLITE_DONE) throw std::runtime_error(std::string("strategy repository: write failed: ") + sqlite3_errmsg(db));
  }
};

StrategyRepository::StrategyRepository(const std::string& path) : db_(std::make_unique<Db>()), path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK)
    throw std::runtime_error("strategy repository " + path + ": cannot open (" +
                             (db_->db ? sqlite3_errmsg(db_->db) : "out of memory") + ")");
  sqlite3_busy_timeout(db_->db, 5000);
  db_->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
  db_->exec("BEGIN IMMEDIATE");
  try {
    {
      // A file written by a newer qtos may hold columns or meanings this build does not know: refuse it rather than
      // write into it (and stamp it back to this build's schema version).
      Stmt v = db_->prepare("PRAGMA user_version");
      const int version = sqlite3_step(v.get()) == SQLITE_ROW ? sqlite3_column_int(v.get(), 0) : 0;
      if (version > kSchemaVersion)
        throw std::runtime_error("strategy repository " + path + ": schema version " + std::to_string(version) +
                                 " was written by a newer qtos; this build reads versions up to " +
                                 std::to_string(kSchemaVersion));
    }
    db_->exec(kSchema);
    // A file of the first schema has the table without `parents`: add it (old rows get no parents).
    bool has_parents = false;
    {
      Stmt s = db_->prepare("SELECT name FROM pragma_table_info('strategies')");
      while (sqlite3_step(s.get()) == SQLITE_ROW) has_parents = has_parents || text_col(s.get(), 0) == "parents";
    }
    if (!has_parents) db_->exec("ALTER TABLE strategies ADD COLUMN parents TEXT NOT NULL DEFAULT ''");
    db_->exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
    db_->exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

StrategyRepository::~StrategyRepository() = default;

namespace {

StrategyRecord read_row(sqlite3_stmt* s) {
  StrategyRecord r;
  r.id = text_col(s, 0);
  r.genome = genome_decode(text_col(s, 1), "stored genome " + r.id);
  r.rules = text_col(s, 2);
  r.generation = sqlite3_column_int(s, 3);
  r.origin = text_col(s, 4);
  r.status = strategy_status_parse(text_col(s, 5), "stored status");
  r.created_ms = sqlite3_column_int64(s, 6);
  r.updated_ms = sqlite3_column_int64(s, 7);
  r.backtest_metrics = text_col(s, 8);
  r.shadow_metrics = text_col(s, 9);
  r.live_metrics = text_col(s, 10);
  r.parents = parents_split(text_col(s, 11));
  return r;
}

}  // namespace

bool StrategyRepository::upsert(const StrategyRecord& rec, std::int64_t now_ms) {
  const std::string id = genome_id(rec.genome);
  if (get(id)) {
    Stmt u = db_->prepare("UPDATE strategies SET backtest_metrics = ?1 WHERE id = ?2");
    sqlite3_bind_text(u.get(), 1, rec.backtest_metrics.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(u.get(), 2, id.c_str(), -1, SQLITE_TRANSIENT);
    db_->step_done(u.get());
    return false;
  }
  Stmt s = db_->prepare(
      "INSERT INTO strategies (id, code, rules, generation, origin, status, created_ms, updated_ms, backtest_metrics, "
      "shadow_metrics, live_metrics, parents) VALUES (?1, ?2, ?3, ?4, ?5, 'BACKTEST', ?6, ?6, ?7, '', '', ?8)");
  const std::string code = genome_encode(rec.genome), rules = genome_rules(rec.genome), parents = parents_join(rec.parents);
  sqlite3_bind_text(s.get(), 1, id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 2, code.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 3, rules.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s.get(), 4, rec.generation);
  sqlite3_bind_text(s.get(), 5, rec.origin.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.get(), 6, now_ms);
  sqlite3_bind_text(s.get(), 7, rec.backtest_metrics.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 8, parents.c_str(), -1, SQLITE_TRANSIENT);
  db_->step_done(s.get());
  return true;
}

std::optional<StrategyRecord> StrategyRepository::get(std::string_view id_or_prefix) const {
  if (!is_hex_prefix(id_or_prefix)) return std::nullopt;
  const std::string sql = std::string("SELECT ") + kColumns + " FROM strategies WHERE id LIKE ?1 || '%' LIMIT 2";
  Stmt s = db_->prepare(sql.c_str());
  std::string lower(id_or_prefix);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  sqlite3_bind_text(s.get(), 1, lower.c_str(), -1, SQLITE_TRANSIENT);
  std::optional<StrategyRecord> found;
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    if (found) return std::nullopt;  // ambiguous prefix
    found = read_row(s.get());
  }
  return found;
}

std::vector<StrategyRecord> StrategyRepository::list(std::optional<StrategyStatus> status) const {
  const std::string sql = std::string("SELECT ") + kColumns + " FROM strategies" + (status ? " WHERE status = ?1" : "") +
                          " ORDER BY created_ms DESC, id";
  Stmt s = db_->prepare(sql.c_str());
  if (status) sqlite3_bind_text(s.get(), 1, strategy_status_name(*status), -1, SQLITE_STATIC);
  std::vector<StrategyRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(read_row(s.get()));
  return out;
}

Result<StrategyRecord> StrategyRepository::transition(std::string_view id_or_prefix, StrategyStatus to, const std::string& reason,
                                                      std::int64_t now_ms) {
  auto rec = get(id_or_prefix);
  if (!rec) return Error{"not_found", "no strategy with id '" + std::string(id_or_prefix) + "' in " + path_ + " (or the prefix is ambiguous)"};
  if (!strategy_transition_allowed(rec->status, to))
    return Error{"conflict", "strategy " + rec->id + " is " + strategy_status_name(rec->status) + "; it cannot move to " +
                                 strategy_status_name(to) + " (lifecycle: BACKTEST -> SHADOW -> LIVE, LIVE -> SHADOW, any -> RETIRED)"};
  db_->exec("BEGIN IMMEDIATE");
  try {
    Stmt u = db_->prepare("UPDATE strategies SET status = ?1, updated_ms = ?2 WHERE id = ?3");
    sqlite3_bind_text(u.get(), 1, strategy_status_name(to), -1, SQLITE_STATIC);
    sqlite3_bind_int64(u.get(), 2, now_ms);
    sqlite3_bind_text(u.get(), 3, rec->id.c_str(), -1, SQLITE_TRANSIENT);
    db_->step_done(u.get());
    Stmt h = db_->prepare("INSERT INTO strategy_transitions (id, from_status, to_status, at_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5)");
    sqlite3_bind_text(h.get(), 1, rec->id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(h.get(), 2, strategy_status_name(rec->status), -1, SQLITE_STATIC);
    sqlite3_bind_text(h.get(), 3, strategy_status_name(to), -1, SQLITE_STATIC);
    sqlite3_bind_int64(h.get(), 4, now_ms);
    sqlite3_bind_text(h.get(), 5, reason.c_str(), -1, SQLITE_TRANSIENT);
    db_->step_done(h.get());
    db_->exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  rec->status = to;
  rec->updated_ms = now_ms;
  return *rec;
}

Result<Unit> StrategyRepository::record_stage_metrics(std::string_view id_or_prefix, StrategyStatus stage, const std::string& json) {
  const auto rec = get(id_or_prefix);
  if (!rec) return Error{"not_found", "no strategy with id '" + std::string(id_or_prefix) + "' in " + path_};
  if (stage != StrategyStatus::shadow && stage != StrategyStatus::live)
    return Error{"invalid", std::string("stage metrics are kept for SHADOW and LIVE, not ") + strategy_status_name(stage)};
  Stmt u = db_->prepare(stage == StrategyStatus::shadow ? "UPDATE strategies SET shadow_metrics = ?1 WHERE id = ?2"
                                                        : "UPDATE strategies SET live_metrics = ?1 WHERE id = ?2");
  sqlite3_bind_text(u.get(), 1, json.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(u.get(), 2, rec->id.c_str(), -1, SQLITE_TRANSIENT);
  db_->step_done(u.get());
  return Unit{};
}

std::vector<StrategyTransition> StrategyRepository::history(std::string_view id) const {
  const auto rec = get(id);
  std::vector<StrategyTransition> out;
  if (!rec) return out;
  Stmt s = db_->prepare("SELECT from_status, to_status, at_ms, reason FROM strategy_transitions WHERE id = ?1 ORDER BY seq");
  sqlite3_bind_text(s.get(), 1, rec->id.c_str(), -1, SQLITE_TRANSIENT);
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({strategy_status_parse(text_col(s.get(), 0), "stored status"), strategy_status_parse(text_col(s.get(), 1), "stored status"),
                   sqlite3_column_int64(s.get(), 2), text_col(s.get(), 3)});
  return out;
}

}  // namespace qtos
