// `qtos serve` through the real binary: the dashboard address printed first, the OS trading behind the API, the brake,
// the risk mode, a policy update with its version, the stage and a subsystem's mode driven over HTTP and seen in
// /health/ai, /policy and /events, Prometheus metrics, a job, and a clean stop on SIGTERM (exit 0, the ledger intact).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/crash_child.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace {

namespace json = boost::json;
using test::TempDir;

struct Reply {
  int status = 0;
  std::string body;
};

/// One HTTP/1.1 request on a fresh loopback connection.
Reply http(std::uint16_t port, const std::string& method, const std::string& target, const std::string& token = {},
           const std::string& body = {}) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {};
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  Reply r;
  if (in.size() > 12) r.status = std::atoi(in.c_str() + 9);
  const auto at = in.find("\r\n\r\n");
  if (at != std::string::npos) r.body = in.substr(at + 4);
  // A chunked body: keep only the chunks' data.
  if (in.find("Transfer-Encoding: chunked") != std::string::npos) {
    std::string plain;
    std::size_t pos = 0;
    while (pos < r.body.size()) {
      const std::size_t eol = r.body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const std::size_t n = std::stoul(r.body.substr(pos, eol - pos), nullptr, 16);
      if (n == 0) break;
      plain += r.body.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    r.body = plain;
  }
  return r;
}

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      ::execl(QTOS_BIN, QTOS_BIN, "serve", "--state-dir", dir_.file("state").c_str(), "--port", "0", "--speed", "3600", "--symbols", "10",
              "--bars", "2000", "--warmup", "300", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    // The dashboard's address is the first line; read until it shows.
    stdout_ = ::fdopen(out[0], "r");
    char line[4096];
    for (int i = 0; i < 50 && port_ == 0 && std::fgets(line, sizeof line, stdout_); ++i) {
      first_lines_ += line;
      if (const char* at = std::strstr(line, "dashboard http://127.0.0.1:")) port_ = static_cast<std::uint16_t>(std::atoi(at + 27));
    }
    ASSERT_NE(port_, 0) << first_lines_;
    // Keep reading the child's output so that it never blocks on a full pipe.
    reader_ = std::thread([this] {
      char buf[4096];
      while (std::fgets(buf, sizeof buf, stdout_)) {
        std::lock_guard lock(mutex_);
        rest_ += buf;
      }
    });
    token_ = test::slurp(dir_.file("state") + "/api_token");
    while (!token_.empty() && (token_.back() == '\n' || token_.back() == '\r' || token_.back() == ' ')) token_.pop_back();
    ASSERT_FALSE(token_.empty());
    // Ready once the warm-up is over and the OS trades.
    for (int i = 0; i < 300; ++i) {
      const Reply h = http(port_, "GET", "/health/ai");
      if (h.status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "never ready";
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();  // the child is gone: end of file
    if (stdout_) std::fclose(stdout_);
  }
  std::string output() {
    if (reader_.joinable() && pid_ < 0) reader_.join();
    std::lock_guard lock(mutex_);
    return rest_;
  }
  /// SIGTERM, then the exit status (-1 when it did not exit within 20 s).
  int terminate() {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }
  TempDir dir_;
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::thread reader_;
  std::mutex mutex_;
  std::string rest_;
  std::uint16_t port_ = 0;
  std::string token_, first_lines_;
};

json::value body_json(const Reply& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  return ec ? json::value(nullptr) : v;
}

TEST_F(Serve, TheOsTradesBehindTheApiAndIsDrivenOverHttp) {
  EXPECT_EQ(first_lines_.rfind("qtos serve: dashboard http://127.0.0.1:", 0) == std::string::npos &&
                first_lines_.find("\nqtos serve: dashboard") == std::string::npos,
            false)
      << first_lines_;
  // Reads.
  Reply r = http(port_, "GET", "/health");
  EXPECT_EQ(r.status, 200);
  json::value ai = body_json(http(port_, "GET", "/health/ai"));
  ASSERT_TRUE(ai.is_object()) << r.body;
  EXPECT_EQ(ai.at("integration_stage").as_string(), "COORDINATION");
  EXPECT_EQ(ai.at("emergency_brake").as_bool(), false);
  EXPECT_EQ(ai.at("services").at("AI-HFOS").at("mode").as_string(), "ENFORCED");
  EXPECT_EQ(ai.at("services").at("MSC-AI").at("mode").as_string(), "ENFORCED");
  // It trades: orders appear within a few seconds of replay.
  bool traded = false;
  for (int i = 0; i < 100 && !traded; ++i) {
    const json::value orders = body_json(http(port_, "GET", "/orders?limit=5"));
    traded = orders.is_array() && !orders.as_array().empty();
    if (!traded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(traded);
  const json::value system = body_json(http(port_, "GET", "/analytics/system"));
  ASSERT_TRUE(system.is_object());
  EXPECT_GT(system.at("equity").to_number<double>(), 0);
  EXPECT_FALSE(system.at("curve").as_array().empty());
  EXPECT_TRUE(body_json(http(port_, "GET", "/strategies")).is_array());
  EXPECT_TRUE(body_json(http(port_, "GET", "/positions")).is_array());
  const Reply metrics = http(port_, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  for (const char* m : {"qtos_equity ", "qtos_orders_total{outcome=\"submitted\"}", "qtos_subsystem_decisions_total{subsystem=\"PIL\"}",
                        "qtos_bus_queue_depth "})
    EXPECT_NE(metrics.body.find(m), std::string::npos) << m;

  // The brake: refused without the token, applied with it, seen in /health/ai and the event feed.
  EXPECT_EQ(http(port_, "POST", "/emergency-brake", "", R"({"on": true})").status, 401);
  r = http(port_, "POST", "/emergency-brake", token_, R"({"on": true, "reason": "serve test"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ai = body_json(http(port_, "GET", "/health/ai"));
  EXPECT_EQ(ai.at("emergency_brake").as_bool(), true);
  EXPECT_EQ(ai.at("trading_state").as_string(), "HALTED");
  const json::value events = body_json(http(port_, "GET", "/events?since=0&limit=10000"));
  bool brake_event = false;
  for (const auto& e : events.at("events").as_array())
    brake_event = brake_event || (e.at("type").as_string() == "EmergencyBrakeChanged" && e.at("data").at("engaged").as_bool());
  EXPECT_TRUE(brake_event);
  r = http(port_, "POST", "/emergency-brake", token_, R"({"on": false, "reason": "serve test over"})");
  EXPECT_EQ(r.status, 200) << r.body;

  // The policy: a stale version is a conflict and changes nothing; the current one applies; the risk mode too.
  json::value policy = body_json(http(port_, "GET", "/policy"));
  const std::uint64_t version = policy.at("version").to_number<std::uint64_t>();
  r = http(port_, "PUT", "/policy", token_, R"({"expected_version": 1, "max_open_positions": 3})");
  if (version != 1) {
    EXPECT_EQ(r.status, 409) << r.body;
  }
  // MSC may write the policy between a read and a write: a conflict is retried with the version read again.
  auto put = [&](const std::string& fields) {
    Reply out;
    for (int i = 0; i < 5; ++i) {
      const std::uint64_t v = body_json(http(port_, "GET", "/policy")).at("version").to_number<std::uint64_t>();
      out = http(port_, "PUT", "/policy", token_, R"({"expected_version": )" + std::to_string(v) + ", " + fields + "}");
      if (out.status != 409) break;
    }
    return out;
  };
  r = put(R"("max_open_positions": -2)");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_NE(r.body.find("max_open_positions"), std::string::npos) << r.body;
  const json::value after_bad = body_json(http(port_, "GET", "/policy"));
  EXPECT_GE(after_bad.at("max_open_positions").to_number<std::int64_t>(), 0);  // the store unchanged by the bad value
  r = put(R"("max_open_positions": 3)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(http(port_, "GET", "/policy")).at("max_open_positions").to_number<std::int64_t>(), 3);
  r = http(port_, "POST", "/policy/risk-mode", token_, R"({"risk_mode": "DEFENSIVE"})");
  EXPECT_EQ(r.status, 200) << r.body;
  r = http(port_, "POST", "/policy/risk-mode", token_, R"({"risk_mode": "YOLO"})");
  EXPECT_EQ(r.status, 422) << r.body;

  // The stage and a subsystem's mode, seen in /health/ai at once.
  r = http(port_, "POST", "/stage", token_, R"({"stage": "PARTIAL"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ai = body_json(http(port_, "GET", "/health/ai"));
  EXPECT_EQ(ai.at("integration_stage").as_string(), "PARTIAL");
  EXPECT_EQ(ai.at("services").at("PIL").at("mode").as_string(), "OFF");
  EXPECT_EQ(ai.at("services").at("AI-HFOS").at("mode").as_string(), "ADVISORY");
  r = http(port_, "POST", "/subsystems/PIL/mode", token_, R"({"mode": "ENFORCED"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(http(port_, "GET", "/health/ai")).at("services").at("PIL").at("mode").as_string(), "ENFORCED");

  // A job: a ranking of the data up to now.
  r = http(port_, "POST", "/jobs/rank", token_, R"({})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string job = std::string(body_json(r).at("id").as_string());
  json::value j;
  for (int i = 0; i < 100; ++i) {
    j = body_json(http(port_, "GET", "/jobs/" + job));
    if (j.is_object() && j.at("state").as_string() != "RUNNING") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("state").as_string(), "DONE") << json::serialize(j);
  EXPECT_FALSE(j.at("result").at("top").as_array().empty());

  // A clean stop: SIGTERM finishes the bar, flushes the ledger, exits 0.
  EXPECT_EQ(terminate(), 0);
  const std::string rest = output();
  EXPECT_NE(rest.find("stopped by SIGTERM"), std::string::npos) << rest.substr(rest.size() > 2000 ? rest.size() - 2000 : 0);
  for (const auto& run : std::filesystem::directory_iterator(dir_.file("state") + "/runs")) test::expect_sqlite_intact((run.path() / "ledger.db").string());
  test::expect_sqlite_intact(dir_.file("state") + "/policy.db");
}

}  // namespace
}  // namespace qtos
