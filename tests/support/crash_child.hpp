#pragma once
/// @file Kill -9 tests: a forked child makes durable steps and acknowledges each on a pipe; the parent kills it with
/// SIGKILL wherever it is once enough steps are acknowledged, then checks what the child left behind.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <sqlite3.h>

#include <gtest/gtest.h>

namespace qtos::test {

/// Forks `child(ack_fd)`, which writes one std::uint64_t step number to `ack_fd` after each durable step and never
/// returns (it _exit()s on an error). Once it has acknowledged `at_least` steps (30 s at most) it is killed with
/// SIGKILL. Returns the last step it acknowledged, acknowledgements sent before it died included; adds a test
/// failure (and returns 0) when it could not be forked, exited on its own or acknowledged fewer steps.
inline std::uint64_t sigkill_after_acks(std::uint64_t at_least, const std::function<void(int)>& child) {
  int fds[2];
  if (::pipe(fds) != 0) {
    ADD_FAILURE() << "pipe() failed";
    return 0;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork() failed";
    return 0;
  }
  if (pid == 0) {
    ::close(fds[0]);
    child(fds[1]);
    _exit(5);  // a child that returns is a broken test
  }
  ::close(fds[1]);
  std::uint64_t last = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (last < at_least && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    std::uint64_t v = 0;
    if (::read(fds[0], &v, sizeof v) != static_cast<ssize_t>(sizeof v)) break;
    last = v;
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::uint64_t v = 0;
  while (::read(fds[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) last = v;  // acks sent before death
  ::close(fds[0]);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
    ADD_FAILURE() << "the child exited on its own with status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
  }
  if (last < at_least) {
    ADD_FAILURE() << "the child acknowledged " << last << " steps in 30 s, fewer than " << at_least;
    return 0;
  }
  return last;
}

/// Opens `path` with a plain SQLite connection (which also recovers a WAL left behind, as a restart would) and expects
/// PRAGMA integrity_check to say "ok".
inline void expect_sqlite_intact(const std::string& path) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK) << path;
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "ok") << path;
  sqlite3_finalize(s);
  sqlite3_close(db);
}

}  // namespace qtos::test
