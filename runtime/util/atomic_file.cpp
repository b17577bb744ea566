#include "runtime/util/atomic_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace qtos {
namespace {

constexpr std::string_view kTmpTag = ".qtos-tmp-";
constexpr std::size_t kBufferBytes = 1 << 20;

struct Fault {
  std::string part;
  int err = 0;
};

std::mutex& fault_mutex() {
  static std::mutex m;
  return m;
}
Fault& fault_slot(FaultPoint p) {
  static Fault write_fault, rename_fault;
  return p == FaultPoint::write ? write_fault : rename_fault;
}
bool& fault_overridden(FaultPoint p) {
  static bool w = false, r = false;
  return p == FaultPoint::write ? w : r;
}

int errno_parse(std::string_view name, int fallback) {
  if (name == "ENOSPC") return ENOSPC;
  if (name == "EIO") return EIO;
  if (name == "EACCES") return EACCES;
  if (name == "EDQUOT") return EDQUOT;
  if (name == "EROFS") return EROFS;
  return fallback;
}

/// The errno to fail with when an injected fault matches `path`, else 0.
int fault_for(FaultPoint p, const std::string& path) {
  std::lock_guard lock(fault_mutex());
  Fault f = fault_slot(p);
  if (!fault_overridden(p)) {
    const char* env = std::getenv(p == FaultPoint::write ? "QTOS_TEST_FAIL_WRITE" : "QTOS_TEST_FAIL_RENAME");
    if (env && *env) {
      std::string_view v(env);
      const int fallback = p == FaultPoint::write ? ENOSPC : EIO;
      const auto colon = v.rfind(':');
      f.part = std::string(colon == std::string_view::npos ? v : v.substr(0, colon));
      f.err = colon == std::string_view::npos ? fallback : errno_parse(v.substr(colon + 1), fallback);
    }
  }
  if (f.part.empty() || path.find(f.part) == std::string::npos) return 0;
  return f.err;
}

std::string dir_of(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the rename itself already happened
  (void)::fsync(fd);
  ::close(fd);
}

std::string reason(int err) { return std::strerror(err); }

}  // namespace

std::string atomic_temp_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + std::string(kTmpTag) + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

bool atomic_temp_is(std::string_view name) {
  const auto at = name.rfind(kTmpTag);
  if (at == std::string_view::npos) return false;
  const auto rest = name.substr(at + kTmpTag.size());
  const auto dash = rest.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 >= rest.size()) return false;
  for (std::size_t i = 0; i < rest.size(); ++i)
    if (i != dash && (rest[i] < '0' || rest[i] > '9')) return false;
  return true;
}

std::size_t atomic_temp_cleanup(const std::string& dir) {
  std::error_code ec;
  std::size_t removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!atomic_temp_is(name)) continue;
    const auto rest = std::string_view(name).substr(name.rfind(kTmpTag) + kTmpTag.size());
    const long pid = std::strtol(std::string(rest.substr(0, rest.find('-'))).c_str(), nullptr, 10);
    // A temporary of a live process (another qtos writing now) is not ours to remove.
    if (pid > 0 && pid != ::getpid() && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) continue;
    if (pid == ::getpid()) continue;
    std::error_code rm;
    if (std::filesystem::remove_all(entry.path(), rm) > 0 && !rm) ++removed;
  }
  return removed;
}

void atomic_fault_set(FaultPoint point, std::string path_part, int err) {
  std::lock_guard lock(fault_mutex());
  fault_slot(point) = {std::move(path_part), err != 0 ? err : (point == FaultPoint::write ? ENOSPC : EIO)};
  fault_overridden(point) = !fault_slot(point).part.empty();
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) throw WriteError("cannot write a file with an empty path");
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw WriteError("cannot write '" + path_ + "': it is a directory (expected a file path)");
  // A temporary of the same name may be left by a dead process that had our PID: take the next name.
  for (int attempt = 0; attempt < 16; ++attempt) {
    tmp_ = atomic_temp_name(path_);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ >= 0 || errno != EEXIST) break;
  }
  if (fd_ < 0) {
    const int err = errno;
    throw WriteError("cannot write '" + path_ + "': " + reason(err) +
                     (err == ENOENT && !std::filesystem::is_directory(dir_of(path_)) ? " (the directory '" + dir_of(path_) + "' does not exist)"
                                                                                   : std::string()));
  }
  buffer_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const std::string& what, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  committed_ = true;  // nothing left to clean up
  throw WriteError("cannot write '" + path_ + "': " + what + reason(err) + " (the previous file, if any, is unchanged)");
}

void AtomicFile::flush_buffer() {
  write_all(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFile::write_all(const char* p, std::size_t left) {
  if (left == 0) return;
  if (const int err = fault_for(FaultPoint::write, path_)) fail("", err);
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("", errno);
    }
    if (n == 0) fail("", EIO);
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::write(std::string_view bytes) {
  if (committed_) throw WriteError("cannot write '" + path_ + "': the file was already committed");
  size_ += bytes.size();
  if (buffer_.size() + bytes.size() > kBufferBytes) flush_buffer();
  // A large block goes straight to the file: copying it into the buffer would double the memory a big write takes.
  if (bytes.size() >= kBufferBytes)
    write_all(bytes.data(), bytes.size());
  else
    buffer_.append(bytes);
}

void AtomicFile::commit() {
  if (committed_) throw WriteError("cannot write '" + path_ + "': the file was already committed");
  flush_buffer();
  if (::fsync(fd_) != 0) fail("fsync: ", errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("close: ", errno);
  }
  fd_ = -1;
  if (const int err = fault_for(FaultPoint::rename, path_)) fail("rename: ", err);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("rename: ", errno);
  committed_ = true;
  fsync_dir(dir_of(path_));
}

void atomic_write(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

void atomic_commit(const std::string& tmp, const std::string& path) {
  auto fail = [&](const std::string& what, int err) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw WriteError("cannot write '" + path + "': " + what + reason(err) + " (the previous file, if any, is unchanged)");
  };
  if (const int err = fault_for(FaultPoint::write, path)) fail("", err);
  struct stat st {};
  if (::stat(tmp.c_str(), &st) != 0) fail("the temporary '" + tmp + "' is missing: ", errno);
  if (S_ISREG(st.st_mode)) {
    const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("", errno);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) fail("fsync: ", err);
  } else if (S_ISDIR(st.st_mode)) {
    // A folder written by name: fsync each file in it, then the folder.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(tmp, ec)) {
      if (!e.is_regular_file()) continue;
      const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail("", errno);
      const int rc = ::fsync(fd);
      const int err = errno;
      ::close(fd);
      if (rc != 0) fail("fsync: ", err);
    }
    fsync_dir(tmp);
  }
  if (const int err = fault_for(FaultPoint::rename, path)) fail("rename: ", err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename: ", errno);
  fsync_dir(dir_of(path));
}

}  // namespace qtos
