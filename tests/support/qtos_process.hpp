#pragma once
/// @file A background qtos process for the tests that need one running beside them (`qtos serve`, `qtos worker`).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

namespace qtos::test {

/// The qtos binary running in the background with its output in `log`, stopped with SIGTERM at scope exit.
class QtosProcess {
 public:
  /// Starts QTOS_BIN with `args`, the environment of this process plus `env` ("NAME=value" entries).
  QtosProcess(std::vector<std::string> args, const std::vector<std::string>& env, const std::filesystem::path& log) {
    args.insert(args.begin(), QTOS_BIN);
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string out = log.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(out.c_str(), "a", stderr)) _exit(126);
      ::execve(QTOS_BIN, argv.data(), envp.data());
      _exit(127);
    }
  }
  ~QtosProcess() { stop(); }
  QtosProcess(const QtosProcess&) = delete;
  QtosProcess& operator=(const QtosProcess&) = delete;
  /// SIGTERM, then the exit status (-1 when it did not exit normally).
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

}  // namespace qtos::test
