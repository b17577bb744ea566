// The one atomic-write helper: an injected full disk or failed rename keeps the old file and leaves no temporary, the
// message names the path and the reason, crash leftovers of dead processes are cleaned (a live writer's are not).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/util/atomic_file.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace atomic_file_test {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) { return test::slurp(p); }

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Clears injected faults when a test ends, whatever it asserted.
struct FaultGuard {
  ~FaultGuard() {
    atomic_fault_set(FaultPoint::write, "");
    atomic_fault_set(FaultPoint::rename, "");
  }
};

/// A process id that is no longer alive: a child that exited and was reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

TEST(AtomicFile, WritesAndReplacesWholeFiles) {
  test::TempDir dir;
  const auto path = (dir / "out.txt").string();
  atomic_write(path, "first");
  EXPECT_EQ(read_all(path), "first");
  // Larger than the helper's buffer: written straight through, same bytes.
  std::string big(3 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  atomic_write(path, big);
  EXPECT_EQ(read_all(path), big);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.txt"});
}

TEST(AtomicFile, FullDiskKeepsTheOldContentRemovesTheTemporaryAndNamesPathAndReason) {
  FaultGuard guard;
  test::TempDir dir;
  const auto path = (dir / "report.json").string();
  atomic_write(path, "old content");
  atomic_fault_set(FaultPoint::write, "report.json", ENOSPC);
  try {
    atomic_write(path, "new content that does not fit");
    FAIL() << "the injected full disk did not fail the write";
  } catch (const WriteError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("No space left on device"), std::string::npos) << what;
  }
  EXPECT_EQ(read_all(path), "old content");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"report.json"});  // no temporary left
  // The fault matches by path: another file is written as usual.
  atomic_write((dir / "other.txt").string(), "fine");
  EXPECT_EQ(read_all(dir / "other.txt"), "fine");
}

TEST(AtomicFile, FailedRenameKeepsTheOldContentAndRemovesTheTemporary) {
  FaultGuard guard;
  test::TempDir dir;
  const auto path = (dir / "panel.qtp").string();
  atomic_write(path, "old");
  atomic_fault_set(FaultPoint::rename, "panel.qtp", EIO);
  try {
    AtomicFile f(path);
    f.write(std::string(5000, 'n'));
    f.commit();
    FAIL() << "the injected rename failure did not fail the commit";
  } catch (const WriteError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("rename: Input/output error"), std::string::npos) << what;
  }
  EXPECT_EQ(read_all(path), "old");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"panel.qtp"});
}

TEST(AtomicFile, AbandonedWriteLeavesTheOldFileAndNoTemporary) {
  test::TempDir dir;
  const auto path = (dir / "a.csv").string();
  atomic_write(path, "kept");
  {
    AtomicFile f(path);
    f.write("half a file");
    EXPECT_TRUE(atomic_temp_is(fs::path(f.temp_path()).filename().string()));
  }  // no commit: an exception on the way, say
  EXPECT_EQ(read_all(path), "kept");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"a.csv"});
}

TEST(AtomicFile, DirectoryOrMissingDirectoryIsRefusedWithAReason) {
  test::TempDir dir;
  fs::create_directories(dir / "sub");
  try {
    atomic_write((dir / "sub").string(), "x");
    FAIL();
  } catch (const WriteError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_directory(dir / "sub"));
  try {
    atomic_write((dir / "missing/file.txt").string(), "x");
    FAIL();
  } catch (const WriteError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

TEST(AtomicFile, CommitOfANamedTemporaryReplacesTheFile) {
  FaultGuard guard;
  test::TempDir dir;
  const auto path = (dir / "model.pt").string();
  atomic_write(path, "v1");
  const std::string tmp = atomic_temp_name(path);
  std::ofstream(tmp) << "v2";
  atomic_commit(tmp, path);
  EXPECT_EQ(read_all(path), "v2");
  const std::string tmp2 = atomic_temp_name(path);
  std::ofstream(tmp2) << "v3";
  atomic_fault_set(FaultPoint::rename, "model.pt");
  EXPECT_THROW(atomic_commit(tmp2, path), WriteError);
  EXPECT_EQ(read_all(path), "v2");
  EXPECT_FALSE(fs::exists(tmp2));
}

TEST(AtomicFile, CleanupRemovesADeadProcessTemporariesButNotALiveOnes) {
  test::TempDir dir;
  const pid_t dead = dead_pid();
  const pid_t live = ::fork();
  if (live == 0) {
    ::pause();
    ::_exit(0);
  }
  const auto dead_file = "BTCUSDT-1h-2024-01.csv.qtos-tmp-" + std::to_string(dead) + "-0";
  const auto dead_folder = "model.qtos-tmp-" + std::to_string(dead) + "-3";
  const auto live_file = "panel.qtp.qtos-tmp-" + std::to_string(live) + "-0";
  const auto own_file = "x.csv.qtos-tmp-" + std::to_string(::getpid()) + "-7";
  std::ofstream(dir / dead_file) << "partial";
  fs::create_directories(dir / dead_folder);
  std::ofstream(dir / dead_folder / "weights") << "partial";
  std::ofstream(dir / live_file) << "being written";
  std::ofstream(dir / own_file) << "ours, being written";
  std::ofstream(dir / "notes.qtos-tmp-x") << "not ours";
  std::ofstream(dir / "data.csv") << "real data";

  EXPECT_EQ(atomic_temp_cleanup(dir.path().string()), 2u);
  EXPECT_FALSE(fs::exists(dir / dead_file));
  EXPECT_FALSE(fs::exists(dir / dead_folder));
  EXPECT_TRUE(fs::exists(dir / live_file));
  EXPECT_TRUE(fs::exists(dir / own_file));
  EXPECT_TRUE(fs::exists(dir / "notes.qtos-tmp-x"));
  EXPECT_TRUE(fs::exists(dir / "data.csv"));
  ::kill(live, SIGKILL);
  int status = 0;
  ::waitpid(live, &status, 0);
  EXPECT_EQ(atomic_temp_cleanup((dir / "missing").string()), 0u);  // a missing directory is not an error
}

}  // namespace atomic_file_test
}  // namespace qtos
