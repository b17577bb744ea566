#pragma once
/// @file The qtos binary running beside a test (`qtos serve`, `qtos worker`): started with its output captured in
/// memory, read while it runs, stopped with SIGTERM or SIGKILL. One launcher for every test that needs a live process.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/eventually.hpp"

extern char** environ;

namespace qtos::test {

/// How the process is started.
struct QtosProcessOptions {
  std::vector<std::string> env;  ///< "NAME=value" entries added to the environment (or making it: inherit_env false)
  bool inherit_env = true;       ///< false: only `env` (plus the sanitizers' *SAN_OPTIONS, so a sanitizer run still reports)
  bool capture_stderr = true;    ///< false: only stdout is captured; stderr stays the test's own
};

/// QTOS_BIN with `args`; stdout (and stderr) read into memory by a thread of its own, so the child never blocks on a
/// full pipe. The destructor stops a process still running with SIGTERM (SIGKILL after 20 s).
class QtosProcess {
 public:
  explicit QtosProcess(std::vector<std::string> args, QtosProcessOptions options = {}) {
    args.insert(args.begin(), QTOS_BIN);
    std::vector<std::string> envs;
    if (options.inherit_env) {
      for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
    } else {
      for (const char* var : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"})
        if (const char* v = std::getenv(var)) envs.push_back(std::string(var) + "=" + v);
    }
    envs.insert(envs.end(), options.env.begin(), options.env.end());
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;  // pid_ stays -1: running() is false, output() empty
    pid_ = ::fork();
    if (pid_ == 0) {  // only async-signal-safe calls between fork and exec
      ::dup2(out[1], 1);
      if (options.capture_stderr) ::dup2(out[1], 2);
      ::execve(QTOS_BIN, argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out[1]);
    if (pid_ < 0) {
      ::close(out[0]);
      return;
    }
    reader_ = std::thread([this, fd = out[0]] {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
        std::lock_guard lock(mutex_);
        text_.append(buf, static_cast<std::size_t>(n));
      }
      ::close(fd);
    });
  }
  ~QtosProcess() {
    if (terminate() == -1) kill9();
    if (reader_.joinable()) reader_.join();
  }
  QtosProcess(const QtosProcess&) = delete;
  QtosProcess& operator=(const QtosProcess&) = delete;

  /// Started and not reaped yet.
  bool running() const { return pid_ > 0; }
  /// What it printed so far (all of it once it has been reaped).
  std::string output() const {
    std::lock_guard lock(mutex_);
    return text_;
  }
  /// Waits until the output holds `what` `times` times (false after `limit`).
  bool wait_for(const std::string& what, int times = 1, std::chrono::milliseconds limit = std::chrono::seconds(20)) const {
    return eventually(
        [&] {
          const std::string t = output();
          int n = 0;
          for (auto at = t.find(what); at != std::string::npos && n < times; at = t.find(what, at + 1)) ++n;
          return n >= times;
        },
        limit, std::chrono::milliseconds(20));
  }
  /// The port of the "dashboard http://127.0.0.1:<port>" line `qtos serve` prints first (0 when it did not come).
  std::uint16_t dashboard_port(std::chrono::milliseconds limit = std::chrono::seconds(60)) const {
    static constexpr const char* kAt = "dashboard http://127.0.0.1:";
    if (!wait_for(kAt, 1, limit)) return 0;
    const std::string t = output();
    return static_cast<std::uint16_t>(std::atoi(t.c_str() + t.find(kAt) + std::char_traits<char>::length(kAt)));
  }
  /// Waits for it to exit on its own: its exit status (128 + the signal when killed), -1 when it did not in `limit`.
  int wait_exit(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return status_;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        reaped(st);
        return status_;
      }
      if (std::chrono::steady_clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  /// SIGTERM, then the exit status (-1 when it did not exit within `limit`; it is left running).
  int terminate(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    return wait_exit(limit);
  }
  /// SIGKILL: nothing flushed, nothing finished (a crash, a power cut).
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    reaped(st);
  }

 private:
  void reaped(int st) {
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (reader_.joinable()) reader_.join();  // the child is gone: the pipe ends (nothing else holds it: O_CLOEXEC)
  }

  pid_t pid_ = -1;
  int status_ = -1;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::string text_;
};

}  // namespace qtos::test
