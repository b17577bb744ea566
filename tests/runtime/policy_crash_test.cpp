// Crash safety of the SQLite policy store: a real child process streams updates and is killed with SIGKILL; the
// database must pass integrity_check and hold a gap-free prefix of the updates including every acknowledged one.
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/policy/policy_store.hpp"
#include "tests/runtime/test_util.hpp"
#include "tests/support/crash_child.hpp"

namespace qtos {
namespace policy_crash_test {

// The child: update forever, acknowledging each committed version on the pipe. Never returns.
[[noreturn]] void writer_child(const std::string& path, int ack_fd) {
  try {
    SimClock clock(0);
    PolicyStore store(std::make_unique<SqlitePolicyBackend>(path), clock);
    for (;;) {
      const std::uint64_t next = store.version() + 1;
      auto r = store.update(next - 1, [next](Policy& p) {
        p.max_open_positions = static_cast<std::int64_t>(next % 100);
        p.extra["seq"] = std::to_string(next);
      }, "update " + std::to_string(next), "crash-child");
      if (!r.ok()) _exit(3);
      if (::write(ack_fd, &next, sizeof next) != static_cast<ssize_t>(sizeof next)) _exit(4);
    }
  } catch (...) {
    _exit(2);
  }
}

TEST(SqlitePolicyCrash, SigkillMidStreamLeavesAnIntactPrefixWithEveryCommittedUpdate) {
  test::TempDir dir;
  const std::string path = dir.file("policy.db");
  const std::uint64_t last_acked = test::sigkill_after_acks(150, [&](int ack_fd) { writer_child(path, ack_fd); });
  ASSERT_GE(last_acked, 150u);

  // Inspect with a plain SQLite connection first (it also recovers the WAL, as a restart would).
  test::expect_sqlite_intact(path);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT version, max_open_positions, extra, reason FROM policy_history ORDER BY version",
                               -1, &s, nullptr), SQLITE_OK);
  std::uint64_t expect = 1;
  while (sqlite3_step(s) == SQLITE_ROW) {
    const auto version = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
    ASSERT_EQ(version, expect) << "gap in the stored history";
    if (version >= 2) {
      EXPECT_EQ(sqlite3_column_int64(s, 1), static_cast<std::int64_t>(version % 100));
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 2))), "seq=" + std::to_string(version) + "\n");
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 3))), "update " + std::to_string(version));
    }
    ++expect;
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  const std::uint64_t stored = expect - 1;
  EXPECT_GE(stored, last_acked) << "an acknowledged (committed) update was lost";
  EXPECT_LE(stored, last_acked + 1) << "more updates stored than the child could have committed";

  // And the store starts on it, at the last committed version.
  SimClock clock;
  PolicyStore store(std::make_unique<SqlitePolicyBackend>(path), clock);
  EXPECT_EQ(store.version(), stored);
  EXPECT_EQ(store.current()->extra.at("seq"), std::to_string(stored));
}

}  // namespace policy_crash_test
}  // namespace qtos
