#pragma once
/// @file The strategy repository (SQLite): genomes with their rules, lineage, metrics per stage and the lifecycle
/// BACKTEST -> SHADOW -> LIVE -> RETIRED with timestamps and reasons (docs/EVOLUTION.md).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/kernels/strategy.hpp"
#include "cpu/util/enum_names.hpp"
#include "runtime/store/sqlite_db.hpp"
#include "runtime/util/result.hpp"

namespace qtos {

/// Where a strategy is in its life.
enum class StrategyStatus { backtest, shadow, live, retired };
QTOS_ENUM_NAMES(StrategyStatus, "BACKTEST", "SHADOW", "LIVE", "RETIRED");

/// "BACKTEST", "SHADOW", "LIVE", "RETIRED".
const char* strategy_status_name(StrategyStatus s);
/// Parses a status name (case-insensitive); throws std::invalid_argument naming `what` otherwise.
StrategyStatus strategy_status_parse(std::string_view text, std::string_view what = "--status");

/// One stored strategy.
struct StrategyRecord {
  std::string id;                 ///< genome_id (16 hex digits)
  kernels::Genome genome;         ///< the strategy
  std::string rules;              ///< genome_rules, stored for readers without the code
  std::int32_t generation = 0;    ///< generation that produced it
  std::string origin;             ///< where it came from (e.g. "evolve seed 3 on data/syn")
  std::vector<std::string> parents;  ///< ids of the genomes it was bred from (none for a random genome)
  StrategyStatus status = StrategyStatus::backtest;  ///< lifecycle stage
  std::int64_t created_ms = 0;    ///< when first stored
  std::int64_t updated_ms = 0;    ///< last status change
  std::string backtest_metrics;   ///< JSON: in-sample and out-of-sample metrics and the deflated Sharpe
  std::string shadow_metrics;     ///< JSON of the shadow stage (empty until one is recorded)
  std::string live_metrics;       ///< JSON of the live stage (empty until one is recorded)
  std::string gaps;               ///< gap policy of the backtest ("skip", "reset-after:N"; empty: stored before it was)
};

/// A note naming the strategy and both policies when its backtest was run under another gap policy than `run_gaps`
/// (the run's, as gap_policy_text writes it); nothing when they are the same.
std::optional<std::string> strategy_gaps_mismatch(const StrategyRecord& rec, std::string_view run_gaps);

/// One lifecycle change.
struct StrategyTransition {
  StrategyStatus from = StrategyStatus::backtest;  ///< before
  StrategyStatus to = StrategyStatus::backtest;    ///< after
  std::int64_t at_ms = 0;                          ///< when
  std::string reason;                              ///< why (a person's words or a rule's)
};

/// True when `from -> to` is a lifecycle step: BACKTEST->SHADOW, SHADOW->LIVE, LIVE->SHADOW (demotion), and any
/// stage but RETIRED -> RETIRED.
bool strategy_transition_allowed(StrategyStatus from, StrategyStatus to);

/// SQLite-backed repository (one file, WAL mode). Not thread-safe: one owner.
class StrategyRepository {
 public:
  /// Opens the database at `path` (creating it unless `mode` is existing), migrating a file of an older schema (adds
  /// the `parents` column). Throws store::StoreError naming the file when it is missing (existing), damaged, not a
  /// strategy repository or of a newer version. Every later read or write that fails throws store::StoreError too: a
  /// damaged page never reads as "no strategies".
  explicit StrategyRepository(const std::string& path, store::OpenMode mode = store::OpenMode::create);
  ~StrategyRepository();
  StrategyRepository(const StrategyRepository&) = delete;
  StrategyRepository& operator=(const StrategyRepository&) = delete;

  /// Stores a new strategy in BACKTEST (its id is the genome's), or, when the id exists, replaces its backtest
  /// metrics and keeps its status, history and lineage. Returns true when it was new.
  bool upsert(const StrategyRecord& rec, std::int64_t now_ms);
  /// upsert() of every record in one transaction: all of them are stored or (on an error) none. Returns how many were
  /// new.
  std::int32_t upsert_all(const std::vector<StrategyRecord>& records, std::int64_t now_ms);
  /// The strategy with this id (a unique prefix of at least 4 hex digits also matches).
  std::optional<StrategyRecord> get(std::string_view id_or_prefix) const;
  /// How many strategies are stored.
  std::int64_t count() const;
  /// Every strategy, or those in `status`, newest first.
  std::vector<StrategyRecord> list(std::optional<StrategyStatus> status = std::nullopt) const;
  /// Moves a strategy to `to`; an unknown id ("not_found") or a step the lifecycle does not allow ("conflict") is
  /// an error value.
  Result<StrategyRecord> transition(std::string_view id_or_prefix, StrategyStatus to, const std::string& reason,
                                    std::int64_t now_ms);
  /// Stores the metrics JSON of the shadow or live stage.
  Result<Unit> record_stage_metrics(std::string_view id_or_prefix, StrategyStatus stage, const std::string& json);
  /// The lifecycle history of a strategy, oldest first.
  std::vector<StrategyTransition> history(std::string_view id) const;

 private:
  std::unique_ptr<store::Db> db_;
  std::string path_;
};

}  // namespace qtos
