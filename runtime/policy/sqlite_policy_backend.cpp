#include <cstdint>
#include <cstring>
#include <utility>

#include "runtime/policy/policy_backend.hpp"
#include "runtime/store/sqlite_db.hpp"

namespace qtos {
namespace {

/// The policy database's schema versions: 1 = policy_history.
const store::Schema& policy_schema() {
  static const store::Schema schema{"policy database",
                                    store::kAppIdPolicy,
                                    {"policy_history"},
                                    {{1, [](store::Db& db) {
                                        db.exec(R"sql(
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
)sql");
                                      }}}};
  return schema;
}

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

}  // namespace

struct SqlitePolicyBackend::Db {
  explicit Db(const std::string& path)
      : db(path, policy_schema(), store::OpenOptions{.synchronous_full = true, .check = store::OpenCheck::full}) {}
  store::Db db;
};

namespace {

Result<Policy> read_row(const store::Stmt& s, const std::string& path) {
  Policy p;
  p.version = static_cast<std::uint64_t>(s.int_at(0));
  p.updated_at = s.int_at(1);
  p.updated_by = s.text_at(2);
  p.reason = s.text_at(3);
  const std::string mode = s.text_at(4);
  auto bad = [&](const std::string& field, const std::string& value) {
    return Error{ErrorCode::corrupt, "policy database '" + path + "': version " + std::to_string(p.version) + " has " + field +
                                " = '" + value + "', which cannot be decoded"};
  };
  try {
    p.risk_mode = risk_mode_parse(mode);
  } catch (const std::invalid_argument&) {
    return bad("risk_mode", mode);
  }
  if (const auto a = s.text_at(5); !decode_set(a, p.allowed_strategies)) return bad("allowed_strategies", a);
  if (const auto b = s.text_at(6); !decode_set(b, p.blocked_strategies)) return bad("blocked_strategies", b);
  p.min_confidence = s.real_at(7);
  p.max_risk_per_trade = s.real_at(8);
  p.max_open_positions = s.int_at(9);
  p.max_leverage = s.real_at(10);
  p.max_daily_drawdown_pct = s.real_at(11);
  p.max_open_drawdown_pct = s.real_at(12);
  p.top_n_universe = s.int_at(13);
  if (const auto e = s.text_at(14); !decode_map(e, p.extra)) return bad("extra", e);
  return p;
}

Error storage_error(const store::StoreError& e) { return Error{ErrorCode::storage, e.what()}; }

}  // namespace

SqlitePolicyBackend::SqlitePolicyBackend(std::string path) : path_(std::move(path)) {
  if (path_.empty()) throw PolicyStoreError("policy database path is empty");
  try {
    db_ = std::make_unique<Db>(path_);
  } catch (const store::StoreError& e) {
    throw PolicyStoreError(std::string(e.what()) + "; refusing to start (the policy is never silently reset to defaults)");
  }
}

SqlitePolicyBackend::~SqlitePolicyBackend() = default;

Result<std::optional<Policy>> SqlitePolicyBackend::load_latest() {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    static const std::string sql = std::string("SELECT ") + kColumns + " FROM policy_history ORDER BY version DESC LIMIT 1";
    auto s = db_->db.cached(sql);
    if (!s.step()) return std::optional<Policy>{};
    auto p = read_row(s, path_);
    if (!p.ok()) return p.error();
    return std::optional<Policy>(std::move(p).value());
  } catch (const store::StoreError& e) {
    return storage_error(e);
  }
}

Result<Unit> SqlitePolicyBackend::append(const Policy& next) {
  static const std::string kInsert = std::string("INSERT INTO policy_history (") + kColumns +
                                     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    store::Transaction tx(db_->db);
    const auto latest = static_cast<std::uint64_t>(db_->db.query_int("SELECT COALESCE(MAX(version), 0) FROM policy_history"));
    if (next.version != latest + 1)
      return Error{ErrorCode::conflict, "policy version " + std::to_string(next.version) + " cannot follow stored version " +
                                   std::to_string(latest) + " in '" + path_ + "'"};
    db_->db
        .cached(kInsert)
        .bind(1, std::uint64_t{next.version})
        .bind(2, std::int64_t{next.updated_at})
        .bind(3, next.updated_by)
        .bind(4, next.reason)
        .bind(5, enum_name(next.risk_mode))
        .bind(6, encode_set(next.allowed_strategies))
        .bind(7, encode_set(next.blocked_strategies))
        .bind(8, next.min_confidence)
        .bind(9, next.max_risk_per_trade)
        .bind(10, std::int64_t{next.max_open_positions})
        .bind(11, next.max_leverage)
        .bind(12, next.max_daily_drawdown_pct)
        .bind(13, next.max_open_drawdown_pct)
        .bind(14, std::int64_t{next.top_n_universe})
        .bind(15, encode_map(next.extra))
        .run();
    tx.commit();
    return Unit{};
  } catch (const store::StoreError& e) {
    return storage_error(e);
  }
}

Result<std::vector<Policy>> SqlitePolicyBackend::history(std::uint64_t from_version, std::size_t limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    static const std::string sql =
        std::string("SELECT ") + kColumns + " FROM policy_history WHERE version >= ?1 ORDER BY version LIMIT ?2";
    auto s = db_->db.cached(sql);
    s.bind(1, std::int64_t(from_version > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(from_version)));
    s.bind(2, std::int64_t(limit > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(limit)));
    std::vector<Policy> out;
    while (s.step()) {
      auto p = read_row(s, path_);
      if (!p.ok()) return p.error();
      out.push_back(std::move(p).value());
    }
    return out;
  } catch (const store::StoreError& e) {
    return storage_error(e);
  }
}

}  // namespace qtos
