// Policy store: compare-and-set updates, history, PolicyUpdated events, validation naming the field, the SQLite
// backend's persistence, and start-up refusing corrupt or unreadable databases.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/policy/policy_store.hpp"
#include "tests/runtime/test_util.hpp"

namespace qtos {
namespace policy_test {

using ::testing::HasSubstr;
using test::TempDir;

std::unique_ptr<PolicyBackend> memory() { return std::make_unique<MemoryPolicyBackend>(); }

TEST(PolicyStore, SeedsVersionOneAndAppliesCompareAndSetUpdates) {
  SimClock clock(5'000);
  EventBus bus(clock);
  std::vector<PolicyUpdated> events;
  auto s = bus.subscribe<PolicyUpdated>("watcher", [&](const PolicyUpdated& e) { events.push_back(e); });
  PolicyStore store(memory(), clock, &bus);
  EXPECT_EQ(store.version(), 1u);
  EXPECT_EQ(store.current()->updated_by, "system");
  clock.advance_to(9'000);
  auto r = store.update(1, [](Policy& p) {
    p.risk_mode = RiskMode::defensive;
    p.max_leverage = 2;
    p.blocked_strategies.insert("rsi-mean-rev");
  }, "drawdown rising", "msc-ai");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Policy& p = *r.value();
  EXPECT_EQ(p.version, 2u);
  EXPECT_EQ(p.updated_at, 9'000);
  EXPECT_EQ(p.updated_by, "msc-ai");
  EXPECT_EQ(p.reason, "drawdown rising");
  EXPECT_EQ(store.current()->risk_mode, RiskMode::defensive);
  ASSERT_EQ(events.size(), 1u);  // published synchronously on the owner thread
  EXPECT_EQ(events[0].version, 2u);
  EXPECT_EQ(events[0].previous_version, 1u);
  EXPECT_EQ(events[0].risk_mode, RiskMode::defensive);
  EXPECT_EQ(events[0].changed_fields, "risk_mode,blocked_strategies,max_leverage");
  EXPECT_EQ(events[0].updated_by, "msc-ai");
  EXPECT_EQ(events[0].header.source.view(), "policy-store");
  auto h = store.history();
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h.value().size(), 2u);
  EXPECT_EQ(h.value()[0].version, 1u);
  EXPECT_EQ(h.value()[1], p);
}

TEST(PolicyStore, StaleWriterGetsAConflictNotALostUpdate) {
  SimClock clock;
  EventBus bus(clock);
  int published = 0;
  auto s = bus.subscribe<PolicyUpdated>("w", [&](const PolicyUpdated&) { ++published; });
  PolicyStore store(memory(), clock, &bus);
  ASSERT_TRUE(store.update(1, [](Policy& p) { p.max_open_positions = 3; }, "first", "alice").ok());
  auto stale = store.update(1, [](Policy& p) { p.max_open_positions = 9; }, "second", "bob");
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, "conflict");
  EXPECT_THAT(stale.error().message, HasSubstr("expected version 1"));
  EXPECT_THAT(stale.error().message, HasSubstr("current version is 2"));
  EXPECT_EQ(store.current()->max_open_positions, 3);
  EXPECT_EQ(published, 1);
}

TEST(PolicyStore, ConcurrentWritersLoseNothing) {
  SimClock clock;
  EventBus bus(clock, BusOptions{.queue_capacity = 1024});
  std::vector<std::uint64_t> versions;
  auto s = bus.subscribe<PolicyUpdated>("w", [&](const PolicyUpdated& e) { versions.push_back(e.version); });
  PolicyStore store(memory(), clock, &bus);
  constexpr int kThreads = 4, kEach = 100;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        for (;;) {
          const auto cur = store.current();
          auto r = store.update(cur->version, [](Policy& p) {
            p.extra["counter"] = std::to_string(p.extra.count("counter") ? std::stoi(p.extra["counter"]) + 1 : 1);
          }, "increment", "writer-" + std::to_string(t));
          if (r.ok()) break;
          ASSERT_EQ(r.error().code, "conflict");
          conflicts.fetch_add(1);
        }
      }
    });
  std::size_t delivered = 0;
  while (delivered < kThreads * kEach) delivered += bus.wait_and_drain(std::chrono::milliseconds(20));
  for (auto& w : writers) w.join();
  EXPECT_EQ(store.current()->extra.at("counter"), std::to_string(kThreads * kEach));
  EXPECT_EQ(store.version(), 1u + kThreads * kEach);
  ASSERT_EQ(versions.size(), static_cast<std::size_t>(kThreads * kEach));
  auto h = store.history();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h.value().size(), 1u + kThreads * kEach);
}

struct InvalidCase {
  const char* field;
  std::function<void(Policy&)> mutate;
};

TEST(PolicyStore, ValidationRefusesBrokenRulesNamingTheFieldAndKeepsThePolicy) {
  SimClock clock;
  PolicyStore store(memory(), clock);
  const Policy before = *store.current();
  const std::vector<InvalidCase> cases = {
      {"min_confidence", [](Policy& p) { p.min_confidence = 1.5; }},
      {"min_confidence", [](Policy& p) { p.min_confidence = -0.1; }},
      {"min_confidence", [](Policy& p) { p.min_confidence = std::numeric_limits<double>::quiet_NaN(); }},
      {"max_risk_per_trade", [](Policy& p) { p.max_risk_per_trade = 0; }},
      {"max_risk_per_trade", [](Policy& p) { p.max_risk_per_trade = -0.02; }},
      {"max_open_positions", [](Policy& p) { p.max_open_positions = -1; }},
      {"max_leverage", [](Policy& p) { p.max_leverage = 0.5; }},
      {"max_daily_drawdown_pct", [](Policy& p) { p.max_daily_drawdown_pct = -5; }},
      {"max_open_drawdown_pct", [](Policy& p) { p.max_open_drawdown_pct = 150; }},
      {"top_n_universe", [](Policy& p) { p.top_n_universe = 0; }},
      {"blocked_strategies", [](Policy& p) {
         p.allowed_strategies.insert("ema-cross");
         p.blocked_strategies.insert("ema-cross");
       }},
      {"allowed_strategies", [](Policy& p) { p.allowed_strategies.insert(""); }},
      {"extra", [](Policy& p) { p.extra[""] = "x"; }},
  };
  for (const auto& c : cases) {
    auto r = store.update(1, c.mutate, "bad change", "tester");
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.error().code, "invalid_policy");
    EXPECT_THAT(r.error().message, HasSubstr(c.field));
    EXPECT_EQ(*store.current(), before) << c.field;
  }
  auto h = store.history();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h.value().size(), 1u);
  EXPECT_THROW((void)store.update(1, [](Policy&) {}, "", "tester"), std::invalid_argument);
  EXPECT_THROW((void)store.update(1, [](Policy&) {}, "why", ""), std::invalid_argument);
  Policy bad_initial;
  bad_initial.max_leverage = 0;
  EXPECT_THROW(PolicyStore(memory(), clock, nullptr, bad_initial), std::invalid_argument);
}

TEST(PolicyStore, ViewSeesUpdates) {
  SimClock clock;
  PolicyStore store(memory(), clock);
  PolicyView view(store);
  EXPECT_EQ(view.get().max_open_positions, 5);
  ASSERT_TRUE(store.update(1, [](Policy& p) { p.max_open_positions = 2; }, "tighten", "ops").ok());
  EXPECT_EQ(view.get().max_open_positions, 2);
  EXPECT_EQ(view.get().version, 2u);
}

TEST(PolicyStore, StrategyAllowListAndBlockList) {
  Policy p;
  EXPECT_TRUE(policy_allows_strategy(p, "a"));
  p.blocked_strategies = {"a"};
  EXPECT_FALSE(policy_allows_strategy(p, "a"));
  p.allowed_strategies = {"b"};
  EXPECT_TRUE(policy_allows_strategy(p, "b"));
  EXPECT_FALSE(policy_allows_strategy(p, "c"));
  EXPECT_EQ(risk_mode_parse("defensive"), RiskMode::defensive);
  EXPECT_THROW(risk_mode_parse("yolo"), std::invalid_argument);
}

// ---- SQLite ------------------------------------------------------------------------------------------------------

std::unique_ptr<PolicyBackend> sqlite(const std::string& path) { return std::make_unique<SqlitePolicyBackend>(path); }

std::string pragma(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

void exec(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

TEST(SqlitePolicyStore, PersistsPolicyAndHistoryAcrossRestarts) {
  TempDir dir;
  const std::string path = dir.file("policy.db");
  SimClock clock(1'000);
  Policy expected;
  {
    PolicyStore store(sqlite(path), clock);
    auto r = store.update(1, [](Policy& p) {
      p.risk_mode = RiskMode::aggressive;
      p.allowed_strategies = {"ema=cross\\12", "line\nbreak"};
      p.blocked_strategies = {"old"};
      p.extra = {{"note", "a=b\\n"}, {"x", ""}};
      p.min_confidence = 0.55;
      p.max_open_positions = 7;
    }, "tuning", "operator");
    ASSERT_TRUE(r.ok()) << r.error().message;
    expected = *r.value();
  }
  EXPECT_EQ(pragma(path, "PRAGMA journal_mode"), "wal");
  PolicyStore reopened(sqlite(path), clock);
  EXPECT_EQ(*reopened.current(), expected);
  auto h = reopened.history();
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h.value().size(), 2u);
  EXPECT_EQ(h.value()[1], expected);
  auto from2 = reopened.history(2, 10);
  ASSERT_TRUE(from2.ok());
  EXPECT_EQ(from2.value().size(), 1u);
}

TEST(SqlitePolicyStore, TwoProcessesWritingTheSameDatabaseGetAConflict) {
  TempDir dir;
  const std::string path = dir.file("policy.db");
  SimClock clock;
  PolicyStore a(sqlite(path), clock);
  PolicyStore b(sqlite(path), clock);  // a second connection, as another process would have
  ASSERT_TRUE(a.update(1, [](Policy& p) { p.max_open_positions = 1; }, "a", "node-a").ok());
  auto r = b.update(1, [](Policy& p) { p.max_open_positions = 9; }, "b", "node-b");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "conflict");
  EXPECT_EQ(b.version(), 2u);  // b adopted the winner's policy
  EXPECT_EQ(b.current()->max_open_positions, 1);
  ASSERT_TRUE(b.update(2, [](Policy& p) { p.max_open_positions = 9; }, "b retried", "node-b").ok());
  auto changed = a.refresh();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(changed.value());
  EXPECT_EQ(a.current()->max_open_positions, 9);
}

TEST(SqlitePolicyStore, GarbageFileStopsStartUpWithAClearError) {
  TempDir dir;
  const std::string path = dir.file("policy.db");
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 8192; ++i) f.put(static_cast<char>((i * 131) & 0xff));
  }
  SimClock clock;
  try {
    PolicyStore store(sqlite(path), clock);
    FAIL() << "a garbage file was accepted";
  } catch (const PolicyStoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not a database"));
    EXPECT_THAT(e.what(), HasSubstr("never silently reset"));
  }
}

TEST(SqlitePolicyStore, CorruptPagesStopStartUp) {
  TempDir dir;
  const std::string path = dir.file("policy.db");
  SimClock clock;
  {
    PolicyStore store(sqlite(path), clock);
    for (std::uint64_t v = 1; v <= 300; ++v)
      ASSERT_TRUE(store.update(v, [v](Policy& p) { p.extra["pad"] = std::string(200, static_cast<char>('a' + v % 26)); },
                               "fill", "tester").ok());
  }
  ASSERT_EQ(pragma(path, "PRAGMA integrity_check"), "ok");
  const auto size = std::filesystem::file_size(path);
  ASSERT_GT(size, 8u * 4096);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    for (std::uint64_t page = 2; page * 4096 < size; page += 3) {  // scribble over interior b-tree pages
      f.seekp(static_cast<std::streamoff>(page * 4096 + 8));
      for (int i = 0; i < 64; ++i) f.put('\xff');
    }
  }
  try {
    PolicyStore store(sqlite(path), clock);
    FAIL() << "a corrupt database was accepted";
  } catch (const PolicyStoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
}

TEST(SqlitePolicyStore, UndecodableOrRuleBreakingRowsStopStartUp) {
  TempDir dir;
  SimClock clock;
  const std::string bad_mode = dir.file("bad-mode.db");
  { PolicyStore store(sqlite(bad_mode), clock); }
  exec(bad_mode, "UPDATE policy_history SET risk_mode = 'YOLO'");
  try {
    PolicyStore store(sqlite(bad_mode), clock);
    FAIL() << "an unknown risk mode was accepted";
  } catch (const PolicyStoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("risk_mode"));
    EXPECT_THAT(e.what(), HasSubstr("YOLO"));
  }
  const std::string bad_rule = dir.file("bad-rule.db");
  { PolicyStore store(sqlite(bad_rule), clock); }
  exec(bad_rule, "UPDATE policy_history SET min_confidence = 3.0");
  try {
    PolicyStore store(sqlite(bad_rule), clock);
    FAIL() << "a rule-breaking stored policy was accepted";
  } catch (const PolicyStoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("min_confidence"));
  }
  const std::string newer = dir.file("newer.db");
  { PolicyStore store(sqlite(newer), clock); }
  exec(newer, "PRAGMA user_version = 99");
  EXPECT_THROW(PolicyStore(sqlite(newer), clock), PolicyStoreError);
}

TEST(SqlitePolicyStore, UnreadablePathsStopStartUp) {
  TempDir dir;
  SimClock clock;
  EXPECT_THROW(PolicyStore(sqlite(dir.file("")), clock), PolicyStoreError);  // a directory
  EXPECT_THROW(PolicyStore(sqlite(dir.file("no/such/dir/policy.db")), clock), PolicyStoreError);
  if (::geteuid() != 0) {  // root reads anything; the check only means something for a normal user
    const std::string path = dir.file("locked.db");
    { PolicyStore store(sqlite(path), clock); }
    ::chmod(path.c_str(), 0);
    EXPECT_THROW(PolicyStore(sqlite(path), clock), PolicyStoreError);
  }
}

}  // namespace policy_test
}  // namespace qtos
