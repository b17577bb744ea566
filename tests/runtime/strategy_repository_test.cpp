// Strategy repository: store, find by id prefix, lifecycle rules with history, stage metrics, reopening the file.
#include <string>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "tests/runtime/test_util.hpp"

namespace qtos {
namespace strategy_repository_test {

StrategyRecord record(float level, std::int32_t generation) {
  StrategyRecord r;
  r.genome.entry[0] = {static_cast<std::int32_t>(kernels::CondKind::rsi_below), 1, 0, level};
  r.genome = kernels::genome_normalize(r.genome);
  r.generation = generation;
  r.origin = "test";
  r.backtest_metrics = "{\"sharpe\":1.5}";
  return r;
}

TEST(StrategyRepository, LifecycleWithHistoryAndStageMetrics) {
  test::TempDir dir;
  const std::string path = dir.file("s.db");
  const StrategyRecord a = record(25.0f, 3), b = record(30.0f, 4);
  const std::string id_a = genome_id(a.genome);
  {
    StrategyRepository repo(path);
    EXPECT_TRUE(repo.upsert(a, 1000));
    EXPECT_TRUE(repo.upsert(b, 2000));
    StrategyRecord again = a;
    again.backtest_metrics = "{\"sharpe\":2.0}";
    EXPECT_FALSE(repo.upsert(again, 3000));  // known id: metrics refreshed, status kept
    ASSERT_EQ(repo.list().size(), 2u);
    EXPECT_EQ(repo.list().front().id, genome_id(b.genome));  // newest first
    const auto got = repo.get(id_a.substr(0, 8));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, id_a);
    EXPECT_EQ(got->status, StrategyStatus::backtest);
    EXPECT_EQ(got->backtest_metrics, "{\"sharpe\":2.0}");
    EXPECT_EQ(got->rules, genome_rules(a.genome));
    EXPECT_EQ(genome_hash(got->genome), genome_hash(a.genome));
    EXPECT_FALSE(repo.get("zz"));           // not a hex prefix
    EXPECT_FALSE(repo.get("0123456789abcdef"));

    // BACKTEST -> LIVE skips shadow: refused as a value, nothing changes.
    const auto skip = repo.transition(id_a, StrategyStatus::live, "too eager", 4000);
    ASSERT_FALSE(skip);
    EXPECT_EQ(skip.error().code, "conflict");
    EXPECT_NE(skip.error().message.find("BACKTEST"), std::string::npos) << skip.error().message;
    ASSERT_TRUE(repo.transition(id_a, StrategyStatus::shadow, "OOS Sharpe 2.1", 5000));
    ASSERT_TRUE(repo.record_stage_metrics(id_a, StrategyStatus::shadow, "{\"sharpe\":2.4,\"win_rate\":0.7}"));
    ASSERT_TRUE(repo.transition(id_a, StrategyStatus::live, "shadow beat thresholds", 6000));
    ASSERT_TRUE(repo.transition(id_a, StrategyStatus::retired, "live below floor", 7000));
    EXPECT_FALSE(repo.transition(id_a, StrategyStatus::retired, "twice", 8000));
    EXPECT_EQ(repo.transition("abcd", StrategyStatus::shadow, "x", 1).error().code, "not_found");
  }
  StrategyRepository reopened(path);  // everything is on disk
  const auto r = reopened.get(id_a);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, StrategyStatus::retired);
  EXPECT_EQ(r->updated_ms, 7000);
  EXPECT_EQ(r->shadow_metrics, "{\"sharpe\":2.4,\"win_rate\":0.7}");
  const auto h = reopened.history(id_a);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].from, StrategyStatus::backtest);
  EXPECT_EQ(h[0].to, StrategyStatus::shadow);
  EXPECT_EQ(h[0].reason, "OOS Sharpe 2.1");
  EXPECT_EQ(h[2].to, StrategyStatus::retired);
  EXPECT_EQ(h[2].at_ms, 7000);
  EXPECT_EQ(reopened.list(StrategyStatus::retired).size(), 1u);
  EXPECT_EQ(reopened.list(StrategyStatus::backtest).size(), 1u);
}

TEST(StrategyRepository, TransitionRulesAndStatusNames) {
  using S = StrategyStatus;
  EXPECT_TRUE(strategy_transition_allowed(S::backtest, S::shadow));
  EXPECT_TRUE(strategy_transition_allowed(S::shadow, S::live));
  EXPECT_TRUE(strategy_transition_allowed(S::live, S::shadow));
  EXPECT_TRUE(strategy_transition_allowed(S::backtest, S::retired));
  EXPECT_FALSE(strategy_transition_allowed(S::backtest, S::live));
  EXPECT_FALSE(strategy_transition_allowed(S::retired, S::shadow));
  EXPECT_FALSE(strategy_transition_allowed(S::shadow, S::backtest));
  EXPECT_EQ(strategy_status_parse("shadow"), S::shadow);
  EXPECT_THROW(strategy_status_parse("paper"), std::invalid_argument);
}

TEST(StrategyRepository, StoresParents) {
  test::TempDir dir;
  const std::string path = dir.file("p.db");
  StrategyRecord child = record(27.0f, 5);
  child.parents = {"00000000000000aa", "00000000000000bb"};
  const StrategyRecord orphan = record(33.0f, 0);
  {
    StrategyRepository repo(path);
    EXPECT_TRUE(repo.upsert(child, 1000));
    EXPECT_TRUE(repo.upsert(orphan, 1000));
    StrategyRecord again = child;
    again.parents = {"00000000000000cc"};
    EXPECT_FALSE(repo.upsert(again, 2000));  // a known id keeps its first lineage
  }
  StrategyRepository reopened(path);
  EXPECT_EQ(reopened.get(genome_id(child.genome))->parents, child.parents);
  EXPECT_TRUE(reopened.get(genome_id(orphan.genome))->parents.empty());
}

// A file written by the first schema (no `parents` column) still opens: the column is added, old rows have none.
TEST(StrategyRepository, RefusesAFileOfANewerSchemaNamingIt) {
  test::TempDir dir;
  const std::string path = dir.file("future.db");
  { StrategyRepository repo(path); }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 9", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  try {
    StrategyRepository repo(path);
    ADD_FAILURE() << "a newer schema was opened";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("schema version 9"), std::string::npos) << what;
  }
  // Nothing was written: the file still says 9.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 9);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(StrategyRepository, OpensAndMigratesAFileOfTheOldSchema) {
  test::TempDir dir;
  const std::string path = dir.file("old.db");
  const StrategyRecord old = record(22.0f, 7);
  const std::string old_id = genome_id(old.genome);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE strategies (id TEXT PRIMARY KEY, code TEXT NOT NULL, rules TEXT NOT NULL, generation INTEGER NOT NULL,"
        " origin TEXT NOT NULL, status TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
        " backtest_metrics TEXT NOT NULL, shadow_metrics TEXT NOT NULL, live_metrics TEXT NOT NULL) STRICT;"
        "CREATE TABLE strategy_transitions (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL REFERENCES strategies(id),"
        " from_status TEXT NOT NULL, to_status TEXT NOT NULL, at_ms INTEGER NOT NULL, reason TEXT NOT NULL) STRICT;"
        "INSERT INTO strategies VALUES ('" + old_id + "', '" + genome_encode(old.genome) + "', 'old rules', 7, 'old origin', 'SHADOW',"
        " 100, 200, '{\"sharpe\":1}', '{\"days\":3}', '');"
        "INSERT INTO strategy_transitions (id, from_status, to_status, at_ms, reason) VALUES ('" + old_id +
        "', 'BACKTEST', 'SHADOW', 200, 'old promotion');";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_close(db);
  }
  const StrategyRecord fresh = [] {
    StrategyRecord r = record(41.0f, 2);
    r.parents = {genome_id(record(22.0f, 7).genome)};
    return r;
  }();
  {
    StrategyRepository repo(path);
    const auto got = repo.get(old_id);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, StrategyStatus::shadow);
    EXPECT_EQ(got->generation, 7);
    EXPECT_EQ(got->origin, "old origin");
    EXPECT_EQ(got->shadow_metrics, "{\"days\":3}");
    EXPECT_TRUE(got->parents.empty());
    ASSERT_EQ(repo.history(old_id).size(), 1u);
    EXPECT_EQ(repo.history(old_id)[0].reason, "old promotion");
    EXPECT_TRUE(repo.upsert(fresh, 300));
    EXPECT_TRUE(repo.transition(old_id, StrategyStatus::live, "after migration", 400));
  }
  StrategyRepository again(path);  // opening a migrated file is a no-op
  EXPECT_EQ(again.get(genome_id(fresh.genome))->parents, fresh.parents);
  EXPECT_EQ(again.get(old_id)->status, StrategyStatus::live);
  EXPECT_EQ(again.list().size(), 2u);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
  EXPECT_EQ(again.get(old_id)->gaps, "");  // stored before the gap policy was recorded
}

TEST(StrategyRepository, StoresTheGapPolicyOfTheBacktestAndNamesAnotherOne) {
  test::TempDir dir;
  const std::string path = dir.file("g.db");
  StrategyRecord r = record(29.0f, 3);
  r.gaps = "reset-after:2";
  {
    StrategyRepository repo(path);
    EXPECT_TRUE(repo.upsert(r, 1000));
  }
  StrategyRepository repo(path);
  const auto got = repo.get(genome_id(r.genome));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->gaps, "reset-after:2");
  EXPECT_FALSE(strategy_gaps_mismatch(*got, "reset-after:2"));
  const auto note = strategy_gaps_mismatch(*got, "skip");
  ASSERT_TRUE(note);
  EXPECT_NE(note->find(got->id), std::string::npos) << *note;
  EXPECT_NE(note->find("gaps reset-after:2, this run is under gaps skip"), std::string::npos) << *note;
  // A new backtest of the same strategy replaces its metrics and the policy they were computed under.
  r.gaps = "skip";
  r.backtest_metrics = "{\"sharpe\":0.5}";
  EXPECT_FALSE(repo.upsert(r, 2000));
  EXPECT_EQ(repo.get(got->id)->gaps, "skip");
  StrategyRecord unknown = *got;
  unknown.gaps.clear();
  EXPECT_NE(strategy_gaps_mismatch(unknown, "skip")->find("(not recorded)"), std::string::npos);
}

}  // namespace strategy_repository_test
}  // namespace qtos
