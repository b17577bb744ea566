// The shared SQLite layer: a damaged page, a file that is not a database, a foreign schema, another store's file and a
// missing file are all named; a step that fails is never taken for the end of the rows.
#include "runtime/store/sqlite_db.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/policy/policy_backend.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "tests/runtime/test_util.hpp"

namespace qtos {
namespace store_test {

using ::testing::HasSubstr;

StrategyRecord record(float level, std::int32_t generation) {
  StrategyRecord r;
  r.genome.entry[0] = {static_cast<std::int32_t>(kernels::CondKind::rsi_below), 1, 0, level};
  r.genome = kernels::genome_normalize(r.genome);
  r.generation = generation;
  r.origin = std::string(400, 'o');  // wide rows: the table spans many pages
  r.backtest_metrics = "{\"sharpe\":1.5}";
  return r;
}

/// A repository of `n` strategies, closed (its WAL checkpointed into the file).
void repository_fill(const std::string& path, int n) {
  StrategyRepository repo(path);
  for (int i = 0; i < n; ++i) repo.upsert(record(10.0f + 0.1f * static_cast<float>(i), i), 1000 + i);
}

/// Overwrites pages 3.. (never the header page) with a pattern, as a failing disk or a stray write would.
void pages_damage(const std::string& path) {
  const auto size = std::filesystem::file_size(path);
  ASSERT_GT(size, 4096u * 6);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  for (std::uint64_t page = 3; page * 4096 < size - 4096; page += 2) {
    f.seekp(static_cast<std::streamoff>(page * 4096));
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
}

/// Opens a strategy repository file at its current version (3: the gap policy column) without running its migrations.
const store::Schema& probe_schema() {
  static const store::Schema s{"strategy repository", store::kAppIdStrategies, {"strategies"}, {{1, [](store::Db&) {}}, {2, [](store::Db&) {}}, {3, [](store::Db&) {}}}};
  return s;
}

TEST(Store, ADamagedRepositoryIsNamedNotReadAsEmpty) {
  test::TempDir dir;
  const std::string path = dir.file("s.db");
  repository_fill(path, 120);
  pages_damage(path);
  try {
    StrategyRepository repo(path);
    const auto n = repo.list().size();
    FAIL() << "a damaged repository opened and listed " << n << " strategies";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("damaged"));
    EXPECT_TRUE(e.damaged());
  }
}

TEST(Store, TheStepLoopThrowsOnADamagedPageEvenWithoutTheOpenCheck) {
  test::TempDir dir;
  const std::string path = dir.file("s.db");
  repository_fill(path, 120);
  pages_damage(path);
  // Open without the check, so the first damaged page is met by a read loop: it must throw, not report "done".
  store::Db db(path, probe_schema(), store::OpenOptions{.check = store::OpenCheck::none});
  auto s = db.prepare("SELECT id, origin FROM strategies ORDER BY created_ms");
  int rows = 0;
  try {
    while (s.step()) ++rows;
    FAIL() << "read " << rows << " rows of a damaged table and reported done";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_TRUE(e.damaged()) << e.what();
  }
}

TEST(Store, AFileThatIsNotADatabaseIsNamed) {
  test::TempDir dir;
  const std::string path = dir.file("notes.db");
  const std::string text = "these are my trading notes, not a database\n" + std::string(5000, 'x');
  std::ofstream(path) << text;
  try {
    StrategyRepository repo(path);
    FAIL() << "opened a text file";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not a database"));
  }
  EXPECT_EQ(std::filesystem::file_size(path), text.size());  // untouched
}

TEST(Store, AForeignSchemaAndAnotherStoresFileAreNamed) {
  test::TempDir dir;
  const std::string foreign = dir.file("foreign.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE invoices(id INTEGER, amount REAL); INSERT INTO invoices VALUES (1, 9.5);", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  try {
    StrategyRepository repo(foreign);
    FAIL() << "opened a foreign database";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(foreign));
    EXPECT_THAT(e.what(), HasSubstr("foreign schema (tables: invoices)"));
    EXPECT_THAT(e.what(), HasSubstr("expected a qtos strategy repository"));
  }
  const std::string policy = dir.file("policy.db");
  { SqlitePolicyBackend backend(policy); }
  try {
    StrategyRepository repo(policy);
    FAIL() << "opened a policy database as a strategy repository";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("is a qtos policy database, not a strategy repository"));
  }
  // ... and the other way round.
  const std::string repo_path = dir.file("s.db");
  repository_fill(repo_path, 1);
  EXPECT_THROW(SqlitePolicyBackend backend(repo_path), PolicyStoreError);
}

TEST(Store, ExistingModeNeverCreatesAFile) {
  test::TempDir dir;
  const std::string path = dir.file("typo.db");
  try {
    StrategyRepository repo(path, store::OpenMode::existing);
    FAIL() << "opened a missing repository";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no strategy repository at '" + path + "'"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  repository_fill(path, 2);
  StrategyRepository repo(path, store::OpenMode::existing);
  EXPECT_EQ(repo.count(), 2);
}

TEST(Store, MigrationsRunOnceAndAFailedOneChangesNothing) {
  test::TempDir dir;
  const std::string path = dir.file("m.db");
  int runs = 0;
  store::Schema v1{"probe store", store::kAppIdLedger, {"t"}, {{1, [&](store::Db& db) { ++runs; db.exec("CREATE TABLE t(x INTEGER)"); }}}};
  { store::Db db(path, v1); }
  { store::Db db(path, v1); }
  EXPECT_EQ(runs, 1);
  store::Schema v2 = v1;
  v2.migrations.push_back({2, [](store::Db& db) {
                             db.exec("ALTER TABLE t ADD COLUMN y INTEGER");
                             db.exec("THIS IS NOT SQL");
                           }});
  EXPECT_THROW(store::Db db(path, v2), store::StoreError);
  store::Db db(path, v1);  // still version 1, without the half-applied column
  EXPECT_EQ(db.query_int("PRAGMA user_version"), 1);
  EXPECT_FALSE(db.column_exists("t", "y"));
}

TEST(Store, ARepositoryOfANewerVersionIsRefusedAndUntouched) {
  test::TempDir dir;
  const std::string path = dir.file("s.db");
  repository_fill(path, 1);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  try {
    StrategyRepository repo(path);
    FAIL();
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("schema version 99"));
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 99);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST(Store, CachedStatementsNeverDisturbEachOther) {
  test::TempDir dir;
  const std::string path = dir.file("s.db");
  repository_fill(path, 3);
  store::Db db(path, probe_schema());
  const std::string sql = "SELECT generation FROM strategies ORDER BY generation";
  auto outer = db.cached(sql);
  ASSERT_TRUE(outer.step());
  EXPECT_EQ(outer.int_at(0), 0);
  {
    auto inner = db.cached(sql);  // the same SQL while `outer` is mid-way: a statement of its own
    int n = 0;
    while (inner.step()) ++n;
    EXPECT_EQ(n, 3);
  }
  ASSERT_TRUE(outer.step());  // undisturbed: the second row
  EXPECT_EQ(outer.int_at(0), 1);
  auto again = db.cached("SELECT COUNT(*) FROM strategies");
  ASSERT_TRUE(again.step());
  EXPECT_EQ(again.int_at(0), 3);
}

TEST(Store, AHallOfFameIsStoredWholeOrNotAtAll) {
  test::TempDir dir;
  const std::string path = dir.file("s.db");
  repository_fill(path, 1);
  {
    // A write that fails half-way (here: a trigger refusing the third record, as a full disk would).
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TRIGGER refuse BEFORE INSERT ON strategies WHEN NEW.generation = 99 "
                               "BEGIN SELECT RAISE(ABORT, 'disk full'); END;", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  StrategyRepository repo(path);
  const std::vector<StrategyRecord> hof = {record(40.0f, 1), record(41.0f, 2), record(42.0f, 99)};
  try {
    repo.upsert_all(hof, 5000);
    FAIL() << "the failing record was stored";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("disk full"));
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
  EXPECT_EQ(repo.count(), 1);  // none of the three
  EXPECT_EQ(repo.upsert_all({record(40.0f, 1), record(41.0f, 2)}, 6000), 2);
  EXPECT_EQ(repo.count(), 3);
}

}  // namespace store_test
}  // namespace qtos
