#pragma once
/// @file The one way qtos writes a file: to a temporary beside it, checked, flushed to disk and renamed into place.
/// A failure leaves the previous file intact, removes the temporary and throws a WriteError naming the path and the
/// reason ("No space left on device"). Temporaries are named `NAME.qtos-tmp-PID-N`; ones left by a crash are removed by
/// atomic_temp_cleanup. Tests inject failures through atomic_fault_set or the QTOS_TEST_FAIL_WRITE /
/// QTOS_TEST_FAIL_RENAME environment variables (a substring of the path; see docs/RUNTIME.md).

#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

namespace qtos {

/// A file could not be written; what() names the path and the reason. The previous file, if any, is unchanged.
class WriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file being written atomically. Bytes go to a temporary; commit() makes them the file's content in one step; a
/// destructor without commit() removes the temporary and leaves the old file as it was. Not thread-safe.
class AtomicFile {
 public:
  /// Creates the temporary beside `path` (the directory must exist); throws WriteError when it cannot.
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends bytes; throws WriteError (naming the final path and the reason) on a short or failed write.
  void write(std::string_view bytes);
  /// Appends raw bytes.
  void write(const void* data, std::size_t size) { write(std::string_view(static_cast<const char*>(data), size)); }
  /// Flushes, fsyncs, renames onto the path and fsyncs the directory; throws WriteError on any failure (the temporary
  /// is then removed and the old file kept).
  void commit();
  /// The final path.
  const std::string& path() const { return path_; }
  /// The temporary's path (for writers that must be told a name, e.g. torch::save: write there, then commit()).
  const std::string& temp_path() const { return tmp_; }
  /// Bytes written so far.
  std::size_t size() const { return size_; }

 private:
  void flush_buffer();
  void write_all(const char* data, std::size_t size);
  [[noreturn]] void fail(const std::string& what, int err);
  std::string path_, tmp_;
  int fd_ = -1;
  std::string buffer_;
  std::size_t size_ = 0;
  bool committed_ = false;
};

/// Writes `bytes` as the whole content of `path`, atomically (see AtomicFile).
void atomic_write(const std::string& path, std::string_view bytes);

/// Makes an already written temporary (e.g. from torch::save to AtomicFile::temp_path of a scratch name) the content
/// of `path`: fsync, rename, fsync of the directory. On failure removes `tmp` and throws WriteError naming `path`.
void atomic_commit(const std::string& tmp, const std::string& path);

/// A fresh temporary name beside `path` (`path.qtos-tmp-PID-N`), for writers that write a file or folder by name.
std::string atomic_temp_name(const std::string& path);

/// True when `name` (a file or folder name, not a path) is one of our temporaries.
bool atomic_temp_is(std::string_view name);

/// Removes the temporaries left by a crashed process in `dir` (not recursive; files and folders whose name is
/// `*.qtos-tmp-PID-N` with PID not alive). Returns how many were removed; a missing directory is not an error.
std::size_t atomic_temp_cleanup(const std::string& dir);

/// Which step of a write to fail on purpose (tests only).
enum class FaultPoint { write, rename };

/// Makes the next writes (or renames) whose final path contains `path_part` fail with errno `err` (e.g. ENOSPC);
/// an empty `path_part` clears the fault. Overrides the QTOS_TEST_FAIL_WRITE / QTOS_TEST_FAIL_RENAME variables,
/// which hold `PATH_PART` or `PATH_PART:ERRNO_NAME` (ENOSPC, EIO, EACCES; default ENOSPC for writes, EIO for renames).
void atomic_fault_set(FaultPoint point, std::string path_part, int err = 0);

}  // namespace qtos
