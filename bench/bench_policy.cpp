// Policy store: durable compare-and-set updates on SQLite (WAL, synchronous=FULL) and cached reads, beside a naive
// store (a mutex-guarded policy written through to SQLite in its default rollback-journal mode) and the physical
// limit of the disk (append one 4 KiB WAL-sized frame + fdatasync, in the same directory), all in one run.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <random>
#include <string>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include "bench/compare_reporter.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/policy/policy_store.hpp"

namespace {

using namespace qtos;

// A scratch directory on the disk under test (QTOS_BENCH_DIR, default: the system temp dir), removed at exit.
class Scratch {
 public:
  explicit Scratch(const std::string& base) {
    std::random_device rd;
    dir_ = std::filesystem::path(base) / ("qtos-bench-policy-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

std::string disk_dir() {
  const char* d = std::getenv("QTOS_BENCH_DIR");
  return d ? d : std::filesystem::temp_directory_path().string();
}

// ---- naive store ---------------------------------------------------------------------------------------------------

class NaiveStore {
 public:
  explicit NaiveStore(const std::string& path) {
    sqlite3_open(path.c_str(), &db_);
    sqlite3_exec(db_, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;"
                      "CREATE TABLE IF NOT EXISTS policy(id INTEGER PRIMARY KEY, version INTEGER, max_open_positions INTEGER,"
                      " min_confidence REAL, updated_by TEXT, reason TEXT)",
                 nullptr, nullptr, nullptr);
    sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO policy VALUES (1, ?1, ?2, ?3, ?4, ?5)", -1, &put_, nullptr);
  }
  ~NaiveStore() {
    sqlite3_finalize(put_);
    sqlite3_close(db_);
  }
  bool update(std::uint64_t expected, std::int64_t max_open_positions) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (policy_.version != expected) return false;
    Policy next = policy_;
    next.version = expected + 1;
    next.max_open_positions = max_open_positions;
    next.updated_by = "bench";
    next.reason = "naive update";
    sqlite3_reset(put_);
    sqlite3_bind_int64(put_, 1, static_cast<sqlite3_int64>(next.version));
    sqlite3_bind_int64(put_, 2, next.max_open_positions);
    sqlite3_bind_double(put_, 3, next.min_confidence);
    sqlite3_bind_text(put_, 4, next.updated_by.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(put_, 5, next.reason.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(put_) != SQLITE_DONE) return false;
    policy_ = std::move(next);
    return true;
  }
  double max_leverage() {
    std::lock_guard<std::mutex> lock(mutex_);
    return policy_.max_leverage;
  }
  Policy copy() {
    std::lock_guard<std::mutex> lock(mutex_);
    return policy_;
  }
  std::uint64_t version() {
    std::lock_guard<std::mutex> lock(mutex_);
    return policy_.version;
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
  std::mutex mutex_;
  Policy policy_;
};

// ---- durable updates -----------------------------------------------------------------------------------------------

void updates_qtos(benchmark::State& state, bool tmpfs) {
  Scratch dir(tmpfs ? "/dev/shm" : disk_dir());
  SimClock clock(0);
  PolicyStore store(std::make_unique<SqlitePolicyBackend>(dir.file("policy.db")), clock);
  std::int64_t n = 0;
  for (auto _ : state) {
    auto r = store.update(store.version(), [&](Policy& p) { p.max_open_positions = ++n % 50; }, "bench update", "bench");
    if (!r.ok()) state.SkipWithError(r.error().message.c_str());
  }
  state.SetItemsProcessed(state.iterations());
}

void updates_naive(benchmark::State& state, bool tmpfs) {
  Scratch dir(tmpfs ? "/dev/shm" : disk_dir());
  NaiveStore store(dir.file("naive.db"));
  std::int64_t n = 0;
  for (auto _ : state)
    if (!store.update(store.version(), ++n % 50)) state.SkipWithError("naive update failed");
  state.SetItemsProcessed(state.iterations());
}

void fsync_limit(benchmark::State& state) {
  Scratch dir(disk_dir());
  const std::string path = dir.file("probe");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  static char record[4096 + 24] = {};  // one WAL frame: a page and its frame header
  for (auto _ : state) {
    if (::write(fd, record, sizeof record) != static_cast<ssize_t>(sizeof record) || ::fdatasync(fd) != 0)
      state.SkipWithError("write/fdatasync failed");
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}

// ---- cached reads --------------------------------------------------------------------------------------------------

void reads_view(benchmark::State& state) {
  SimClock clock(0);
  PolicyStore store(std::make_unique<MemoryPolicyBackend>(), clock);
  PolicyView view(store);
  double sum = 0;
  for (auto _ : state) {
    sum += view.get().max_leverage;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
}

void reads_snapshot(benchmark::State& state) {
  SimClock clock(0);
  PolicyStore store(std::make_unique<MemoryPolicyBackend>(), clock);
  double sum = 0;
  for (auto _ : state) {
    sum += store.current()->max_leverage;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
}

void reads_naive(benchmark::State& state) {
  Scratch dir("/dev/shm");
  NaiveStore store(dir.file("naive.db"));
  double sum = 0;
  for (auto _ : state) {
    sum += store.max_leverage();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
}

void reads_naive_copy(benchmark::State& state) {
  Scratch dir("/dev/shm");
  NaiveStore store(dir.file("naive.db"));
  double sum = 0;
  for (auto _ : state) {
    sum += store.copy().max_leverage;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
}

// Two reader threads sharing one store: the naive mutex's cache line bounces between cores, PolicyView's does not.
struct SharedStores {
  Scratch dir{"/dev/shm"};
  SimClock clock{0};
  PolicyStore store{std::make_unique<MemoryPolicyBackend>(), clock};
  NaiveStore naive{dir.file("naive.db")};
};
SharedStores& shared_stores() {
  static SharedStores stores;  // built once, before the timed loops (first call from main)
  return stores;
}

void reads_view_threads(benchmark::State& state) {
  PolicyView view(shared_stores().store);
  double sum = 0;
  for (auto _ : state) {
    sum += view.get().max_leverage;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
}

void reads_naive_threads(benchmark::State& state) {
  NaiveStore& store = shared_stores().naive;
  double sum = 0;
  for (auto _ : state) {
    sum += store.max_leverage();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(updates_qtos, disk, false)->Name("durable_updates/qtos")->MinTime(4.0)->UseRealTime();
BENCHMARK_CAPTURE(updates_naive, disk, false)->Name("durable_updates/naive")->MinTime(4.0)->UseRealTime();
BENCHMARK(fsync_limit)->Name("durable_updates/fsync_limit")->MinTime(4.0)->UseRealTime();
BENCHMARK_CAPTURE(updates_qtos, tmpfs, true)->Name("updates_on_tmpfs/qtos")->MinTime(2.0)->UseRealTime();
BENCHMARK_CAPTURE(updates_naive, tmpfs, true)->Name("updates_on_tmpfs/naive")->MinTime(2.0)->UseRealTime();
BENCHMARK(reads_view)->Name("cached_reads/qtos")->MinTime(1.0);
BENCHMARK(reads_snapshot)->Name("cached_reads/qtos-snapshot")->MinTime(1.0);
BENCHMARK(reads_naive)->Name("cached_reads/naive")->MinTime(1.0);
BENCHMARK(reads_naive_copy)->Name("cached_reads/naive-copy")->MinTime(1.0);
BENCHMARK(reads_view_threads)->Name("cached_reads_2_threads/qtos")->Threads(2)->MinTime(1.0)->UseRealTime();
BENCHMARK(reads_naive_threads)->Name("cached_reads_2_threads/naive")->Threads(2)->MinTime(1.0)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the store logs every accepted update at info level
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("durable updates measured in %s (set QTOS_BENCH_DIR to test another disk)\n", disk_dir().c_str());
  qtos::bench::CompareReporter reporter({
      {"durable_updates", "items_per_second", true, 2000, "/s"},
      {"updates_on_tmpfs", "items_per_second", true, 0, "/s"},
      {"cached_reads", "items_per_second", true, 10e6, "M/s"},
      {"cached_reads_2_threads", "items_per_second", true, 10e6, "M/s"},
  });
  shared_stores();
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
