#include "runtime/strategy/strategy_repository.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "cpu/strategy/genome_text.hpp"

namespace qtos {
namespace {

constexpr const char* kColumns =
    "id, code, rules, generation, origin, status, created_ms, updated_ms, backtest_metrics, shadow_metrics, live_metrics, parents, "
    "gaps";

/// The repository's schema versions (PRAGMA user_version): 1 = the first schema (no parents column; files of it were
/// stamped 0 before application ids), 2 = lineage (`parents`), 3 = the gap policy of the backtest (`gaps`, '' in rows
/// stored before it).
const store::Schema& repository_schema() {
  static const store::Schema schema{
      "strategy repository",
      store::kAppIdStrategies,
      {"strategies", "strategy_transitions"},
      {{1,
        [](store::Db& db) {
          db.exec(R"sql(
CREATE TABLE IF NOT EXISTS strategies (
  id TEXT PRIMARY KEY,
  code TEXT NOT NULL,
  rules TEXT NOT NULL,
  generation INTEGER NOT NULL,
  origin TEXT NOT NULL,
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
)sql");
        }},
       {2,
        [](store::Db& db) {
          if (!db.column_exists("strategies", "parents"))
            db.exec("ALTER TABLE strategies ADD COLUMN parents TEXT NOT NULL DEFAULT ''");
        }},
       {3,
        [](store::Db& db) {
          if (!db.column_exists("strategies", "gaps")) db.exec("ALTER TABLE strategies ADD COLUMN gaps TEXT NOT NULL DEFAULT ''");
        }}}};
  return schema;
}

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

bool is_hex_prefix(std::string_view s) {
  return s.size() >= 4 && s.size() <= 16 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace

std::optional<std::string> strategy_gaps_mismatch(const StrategyRecord& rec, std::string_view run_gaps) {
  if (rec.gaps == run_gaps) return std::nullopt;
  return "strategy " + rec.id + " was backtested under gaps " + (rec.gaps.empty() ? std::string("(not recorded)") : rec.gaps) +
         ", this run is under gaps " + std::string(run_gaps) + ": its trades here may differ from its record";
}

const char* strategy_status_name(StrategyStatus s) { return enum_name(s).data(); }

StrategyStatus strategy_status_parse(std::string_view text, std::string_view what) {
  if (const auto s = enum_parse<StrategyStatus>(text)) return *s;
  throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "': expected " + enum_names_joined<StrategyStatus>());
}

bool strategy_transition_allowed(StrategyStatus from, StrategyStatus to) {
  using S = StrategyStatus;
  if (to == S::retired) return from != S::retired;
  return (from == S::backtest && to == S::shadow) || (from == S::shadow && to == S::live) || (from == S::live && to == S::shadow);
}

StrategyRepository::StrategyRepository(const std::string& path, store::OpenMode mode)
    : db_(std::make_unique<store::Db>(path, repository_schema(), store::OpenOptions{.mode = mode})), path_(path) {}

StrategyRepository::~StrategyRepository() = default;

namespace {

StrategyRecord read_row(const store::Stmt& s) {
  StrategyRecord r;
  r.id = s.text_at(0);
  r.genome = genome_decode(s.text_at(1), "stored genome " + r.id);
  r.rules = s.text_at(2);
  r.generation = static_cast<std::int32_t>(s.int_at(3));
  r.origin = s.text_at(4);
  r.status = strategy_status_parse(s.text_at(5), "stored status");
  r.created_ms = s.int_at(6);
  r.updated_ms = s.int_at(7);
  r.backtest_metrics = s.text_at(8);
  r.shadow_metrics = s.text_at(9);
  r.live_metrics = s.text_at(10);
  r.parents = parents_split(s.text_at(11));
  r.gaps = s.text_at(12);
  return r;
}

}  // namespace

namespace {

/// The upsert without its own transaction (the caller holds one).
bool upsert_in(store::Db& db, const StrategyRecord& rec, std::int64_t now_ms) {
  const std::string id = genome_id(rec.genome);
  if (db.cached("SELECT 1 FROM strategies WHERE id = ?1").bind(1, id).step()) {
    db.cached("UPDATE strategies SET backtest_metrics = ?1, gaps = ?3 WHERE id = ?2")
        .bind(1, rec.backtest_metrics)
        .bind(2, id)
        .bind(3, rec.gaps)
        .run();
    return false;
  }
  db.cached(
        "INSERT INTO strategies (id, code, rules, generation, origin, status, created_ms, updated_ms, backtest_metrics, "
        "shadow_metrics, live_metrics, parents, gaps) VALUES (?1, ?2, ?3, ?4, ?5, 'BACKTEST', ?6, ?6, ?7, '', '', ?8, ?9)")
      .bind(1, id)
      .bind(2, genome_encode(rec.genome))
      .bind(3, genome_rules(rec.genome))
      .bind(4, rec.generation)
      .bind(5, rec.origin)
      .bind(6, now_ms)
      .bind(7, rec.backtest_metrics)
      .bind(8, parents_join(rec.parents))
      .bind(9, rec.gaps)
      .run();
  return true;
}

}  // namespace

bool StrategyRepository::upsert(const StrategyRecord& rec, std::int64_t now_ms) {
  store::Transaction tx(*db_);
  const bool added = upsert_in(*db_, rec, now_ms);
  tx.commit();
  return added;
}

std::int32_t StrategyRepository::upsert_all(const std::vector<StrategyRecord>& records, std::int64_t now_ms) {
  store::Transaction tx(*db_);
  std::int32_t added = 0;
  for (const auto& rec : records) added += upsert_in(*db_, rec, now_ms) ? 1 : 0;
  tx.commit();
  return added;
}

std::optional<StrategyRecord> StrategyRepository::get(std::string_view id_or_prefix) const {
  if (!is_hex_prefix(id_or_prefix)) return std::nullopt;
  store::Stmt s = db_->cached(std::string("SELECT ") + kColumns + " FROM strategies WHERE id LIKE ?1 || '%' LIMIT 2");
  std::string lower(id_or_prefix);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  s.bind(1, lower);
  std::optional<StrategyRecord> found;
  while (s.step()) {
    if (found) return std::nullopt;  // ambiguous prefix
    found = read_row(s);
  }
  return found;
}

std::vector<StrategyRecord> StrategyRepository::list(std::optional<StrategyStatus> status) const {
  store::Stmt s = db_->cached(std::string("SELECT ") + kColumns + " FROM strategies" + (status ? " WHERE status = ?1" : "") +
                               " ORDER BY created_ms DESC, id");
  if (status) s.bind(1, strategy_status_name(*status));
  std::vector<StrategyRecord> out;
  while (s.step()) out.push_back(read_row(s));
  return out;
}

std::int64_t StrategyRepository::count() const { return db_->query_int("SELECT COUNT(*) FROM strategies"); }

Result<StrategyRecord> StrategyRepository::transition(std::string_view id_or_prefix, StrategyStatus to, const std::string& reason,
                                                      std::int64_t now_ms) {
  store::Transaction tx(*db_);
  auto rec = get(id_or_prefix);
  if (!rec) return Error{ErrorCode::not_found, "no strategy with id '" + std::string(id_or_prefix) + "' in " + path_ + " (or the prefix is ambiguous)"};
  if (!strategy_transition_allowed(rec->status, to))
    return Error{ErrorCode::conflict, "strategy " + rec->id + " is " + strategy_status_name(rec->status) + "; it cannot move to " +
                                 strategy_status_name(to) + " (lifecycle: BACKTEST -> SHADOW -> LIVE, LIVE -> SHADOW, any -> RETIRED)"};
  db_->cached("UPDATE strategies SET status = ?1, updated_ms = ?2 WHERE id = ?3")
      .bind(1, strategy_status_name(to))
      .bind(2, now_ms)
      .bind(3, rec->id)
      .run();
  db_->cached("INSERT INTO strategy_transitions (id, from_status, to_status, at_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5)")
      .bind(1, rec->id)
      .bind(2, strategy_status_name(rec->status))
      .bind(3, strategy_status_name(to))
      .bind(4, now_ms)
      .bind(5, reason)
      .run();
  tx.commit();
  rec->status = to;
  rec->updated_ms = now_ms;
  return *rec;
}

Result<Unit> StrategyRepository::record_stage_metrics(std::string_view id_or_prefix, StrategyStatus stage, const std::string& json) {
  const auto rec = get(id_or_prefix);
  if (!rec) return Error{ErrorCode::not_found, "no strategy with id '" + std::string(id_or_prefix) + "' in " + path_};
  if (stage != StrategyStatus::shadow && stage != StrategyStatus::live)
    return Error{ErrorCode::invalid, std::string("stage metrics are kept for SHADOW and LIVE, not ") + strategy_status_name(stage)};
  db_->cached(stage == StrategyStatus::shadow ? "UPDATE strategies SET shadow_metrics = ?1 WHERE id = ?2"
                                               : "UPDATE strategies SET live_metrics = ?1 WHERE id = ?2")
      .bind(1, json)
      .bind(2, rec->id)
      .run();
  return Unit{};
}

std::vector<StrategyTransition> StrategyRepository::history(std::string_view id) const {
  const auto rec = get(id);
  std::vector<StrategyTransition> out;
  if (!rec) return out;
  store::Stmt s = db_->cached("SELECT from_status, to_status, at_ms, reason FROM strategy_transitions WHERE id = ?1 ORDER BY seq");
  s.bind(1, rec->id);
  while (s.step())
    out.push_back({strategy_status_parse(s.text_at(0), "stored status"), strategy_status_parse(s.text_at(1), "stored status"),
                   s.int_at(2), s.text_at(3)});
  return out;
}

}  // namespace qtos
