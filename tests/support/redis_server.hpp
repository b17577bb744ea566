#pragma once
/// @file A private redis-server for one test: loopback only, a free port (never the default 6379), its files in a
/// temporary directory, the append-only file fsync'd on every write (so a kill -9 and a restart lose nothing).
/// stop()/start() restart it on the same port and directory; the destructor kills it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "api/redis/redis_client.hpp"
#include "tests/support/run_command.hpp"

namespace qtos::test {

/// The redis-server binary, or "" when it is not installed.
inline std::string redis_server_binary() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"})
    if (::access(p, X_OK) == 0) return p;
  return "";
}

/// A port the kernel says is free now (bound to 0 on loopback, then released).
inline int redis_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// One redis-server child process.
class RedisServer {
 public:
  RedisServer() : binary_(redis_server_binary()), port_(redis_free_port()) {}
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  /// Whether redis-server is installed (tests skip with a message when it is not).
  bool available() const { return !binary_.empty(); }
  /// Starts the server and waits until it answers PING (5 s at most); false on failure.
  bool start() {
    if (binary_.empty() || port_ == 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      const std::string dir = dir_.path().string();
      ::execl(binary_.c_str(), binary_.c_str(), "--port", port.c_str(), "--bind", "127.0.0.1", "--dir", dir.c_str(),
              "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--loglevel", "warning",
              "--logfile", (dir + "/redis.log").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid_ < 0) return false;
    redis::RedisClient probe(url(), redis::RedisOptions{.connect_timeout = std::chrono::milliseconds(200),
                                                        .backoff_initial = std::chrono::milliseconds(0),
                                                        .backoff_max = std::chrono::milliseconds(0)});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = probe.command({"PING"});
      if (r.ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  /// Kills the server with `sig` (SIGKILL: a crash) and reaps it.
  void kill(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  /// Its address.
  redis::RedisUrl url() const {
    redis::RedisUrl u;
    u.host = "127.0.0.1";
    u.port = port_;
    return u;
  }
  /// Its address as text.
  std::string url_text() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string binary_;
  int port_ = 0;
  pid_t pid_ = -1;
  TempDir dir_;
};

/// Skips the current test when redis-server is missing (scripts/setup.sh installs it), fails it when it does not
/// start.
#define QTOS_REDIS_START(server)                                                                                 \
  do {                                                                                                           \
    if (!(server).available()) GTEST_SKIP() << "redis-server is not installed (scripts/setup.sh installs it)"; \
    ASSERT_TRUE((server).start()) << "redis-server did not start on " << (server).url_text();                   \
  } while (0)

}  // namespace qtos::test
