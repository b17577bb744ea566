// `qtos serve` as a node of a Redis deployment, through the real binary with a private redis-server (loopback, a free
// port): /health/ai shows the node's link and a `qtos worker`'s heartbeat; a policy change through the API lands in
// Redis's history and reaches a second node as PolicyUpdated; jobs go to a live worker (or run in the process while
// none is alive) and GET /jobs/{id} returns the worker's result; Redis SIGKILLed under the server degrades it (the run
// goes on, policy changes are refused with 503 naming Redis) and a restart recovers it; an unreachable Redis at start
// is refused naming QT_REDIS_URL.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/redis/redis_policy.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_request.hpp"
#include "tests/support/qtos_process.hpp"
#include "tests/support/redis_policy_node.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/run_command.hpp"

extern char** environ;

namespace qtos {
namespace redis_serve_test {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace json = boost::json;

using Reply = test::HttpReply;
using test::http;

/// Polls every 20 ms (each poll may be an HTTP request), for up to 8 s.
bool eventually(const std::function<bool()>& pred) { return test::eventually(pred, 8s, 20ms); }

using Child = test::QtosProcess;

/// `qtos serve` on a small recorded market with QT_REDIS_URL set, its address read from its log.
class ServeNode {
 public:
  ServeNode(const test::TempDir& dir, const std::string& redis_url, const std::string& node)
      : state_(dir.file(node + "-state")),
        child_({"serve", "--state-dir", state_, "--port", "0", "--data", dir.file("syn"), "--warmup", "300", "--speed", "36000", "--node",
                node},
               {.env = {"QT_REDIS_URL=" + redis_url}}) {}
  /// Waits for the address, the token and the OS trading (false with the log when it does not come).
  ::testing::AssertionResult ready() {
    port_ = child_.dashboard_port(30s);
    if (port_ == 0) return ::testing::AssertionFailure() << "no address printed: " << child_.output();
    token_ = test::slurp(state_ + "/api_token");
    while (!token_.empty() && (token_.back() == '\n' || token_.back() == ' ')) token_.pop_back();
    if (!eventually([&] { return http(port_, "GET", "/health/ai").status == 200; }))
      return ::testing::AssertionFailure() << "not ready: " << child_.output();
    return ::testing::AssertionSuccess();
  }
  Reply get(const std::string& target) const { return http(port_, "GET", target); }
  Reply send(const std::string& method, const std::string& target, const std::string& body) const { return http(port_, method, target, token_, body); }
  /// /health/ai's "scale_out" object.
  json::value scale_out() const {
    const json::value h = get("/health/ai").json();
    return h.is_object() && h.as_object().contains("scale_out") ? h.at("scale_out") : json::value(nullptr);
  }
  /// The bar the run is at.
  std::int64_t bar() const {
    const json::value a = get("/analytics/system").json();
    return a.is_object() ? a.at("bar").to_number<std::int64_t>() : -1;
  }
  /// PUT /policy raising max_open_positions by one on the current version (re-read after a 409: MSC writes too).
  Reply policy_change(const std::string& reason) const {
    Reply r;
    for (int i = 0; i < 5; ++i) {
      const json::value p = get("/policy").json();
      if (!p.is_object()) continue;
      const std::int64_t positions = p.at("max_open_positions").to_number<std::int64_t>();
      r = send("PUT", "/policy",
               json::serialize(json::object{{"expected_version", p.at("version")}, {"max_open_positions", positions % 20 + 1}, {"reason", reason}}));
      if (r.status != 409) return r;
    }
    return r;
  }
  /// Stops the server (SIGTERM); its exit status.
  int stop() { return child_.terminate(); }
  std::string log() const { return child_.output(); }

 private:
  std::string state_;
  Child child_;
  std::uint16_t port_ = 0;
  std::string token_;
};

/// A second node in this process on the serve node's namespace.
struct OtherNode : test::RedisPolicyNode {
  explicit OtherNode(const redis::RedisUrl& url) : RedisPolicyNode(url, "qtos", "other-node") {}
};

/// Whether /health/ai's heartbeats list `name` as alive.
bool heartbeat_alive(const ServeNode& serve, const std::string& name) {
  const json::value h = serve.get("/health/ai").json();
  if (!h.is_object() || !h.as_object().contains("workers") || !h.at("workers").is_array()) return false;
  for (const auto& hb : h.at("workers").as_array())
    if (hb.at("name").as_string() == name && hb.at("alive").as_bool()) return true;
  return false;
}

/// Polls GET /jobs/{id} until the job is no longer RUNNING.
json::value job_outcome(const ServeNode& serve, const std::string& id) {
  json::value j;
  eventually([&] {
    j = serve.get("/jobs/" + id).json();
    return j.is_object() && j.at("state").as_string() != "RUNNING";
  });
  return j;
}

TEST(RedisServe, ANodeShowsItsWorkerSharesItsPolicyAndSendsJobsToLiveWorkers) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  test::TempDir dir;
  ASSERT_EQ(test::run_qtos("data synth --symbols 4 --bars 1500 --seed 3 --out syn", dir.path()).exit_code, 0);
  ServeNode serve(dir, server.url_text(), "gpu-1");
  ASSERT_TRUE(serve.ready());
  EXPECT_THAT(serve.log(), HasSubstr("scale-out: node gpu-1 on " + server.url_text()));
  ASSERT_TRUE(eventually([&] { return serve.scale_out().is_object() && serve.scale_out().at("redis").as_string() == "ok"; }))
      << json::serialize(serve.scale_out());
  EXPECT_EQ(serve.scale_out().at("node").as_string(), "gpu-1");

  // No worker yet: a rank job runs in this process, as on a single node.
  const json::value local = serve.send("POST", "/jobs/rank", R"({"params": {"top": 3}})").json();
  ASSERT_TRUE(local.is_object()) << "no job started";
  EXPECT_EQ(local.at("runs_on").as_string(), "process");
  const json::value local_done = job_outcome(serve, std::string(local.at("id").as_string()));
  EXPECT_EQ(local_done.at("state").as_string(), "DONE") << json::serialize(local_done);

  // A worker: its heartbeat in /health/ai, then the next rank job goes to it.
  Child worker({"worker", "--redis", server.url_text(), "--device", "cpu", "--name", "w1", "--reclaim-s", "1"});
  ASSERT_TRUE(eventually([&] { return heartbeat_alive(serve, "w1"); })) << json::serialize(serve.get("/health/ai").json());
  EXPECT_TRUE(heartbeat_alive(serve, "gpu-1"));  // the node's own heartbeat
  const json::value remote = serve.send("POST", "/jobs/rank", R"({"params": {"top": 3}})").json();
  ASSERT_TRUE(remote.is_object());
  EXPECT_EQ(remote.at("runs_on").as_string(), "workers");
  const json::value done = job_outcome(serve, std::string(remote.at("id").as_string()));
  ASSERT_EQ(done.at("state").as_string(), "DONE") << json::serialize(done);
  EXPECT_EQ(done.at("runs_on").as_string(), "workers");
  EXPECT_THAT(std::string(done.at("redis_key").as_string()), HasSubstr("gpu-1:"));
  const json::array& top = done.at("result").at("top").as_array();
  ASSERT_FALSE(top.empty());
  EXPECT_LE(top.size(), 3u);
  EXPECT_TRUE(top[0].at("score").is_double());  // a number, as from a job run here
  EXPECT_EQ(top[0].at("rank").as_int64(), 1);
  EXPECT_EQ(done.at("result").at("device").as_string(), "cpu");
  EXPECT_EQ(serve.send("DELETE", "/jobs/" + std::string(remote.at("id").as_string()), "").status, 422);  // not cancellable from here
  // A retrain on the worker registers its model in this server's registry; an evolve splits its generations over it.
  const json::value retrain = serve.send("POST", "/jobs/retrain", R"({"params": {"model": "mlp", "name": "remote", "epochs": 1}})").json();
  const json::value evolve = serve.send("POST", "/jobs/evolve", R"({"params": {"population": 8, "generations": 2}})").json();
  ASSERT_TRUE(retrain.is_object() && evolve.is_object());
  EXPECT_EQ(retrain.at("runs_on").as_string(), "workers");
  EXPECT_EQ(evolve.at("runs_on").as_string(), "workers");
  const json::value trained = job_outcome(serve, std::string(retrain.at("id").as_string()));
  ASSERT_EQ(trained.at("state").as_string(), "DONE") << json::serialize(trained);
  EXPECT_EQ(trained.at("result").at("name").as_string(), "remote");
  EXPECT_EQ(trained.at("result").at("status").as_string(), "CANDIDATE");
  EXPECT_THAT(json::serialize(serve.get("/models").json()), HasSubstr(R"("name":"remote")"));
  const json::value evolved = job_outcome(serve, std::string(evolve.at("id").as_string()));
  ASSERT_EQ(evolved.at("state").as_string(), "DONE") << json::serialize(evolved);
  EXPECT_EQ(evolved.at("result").at("generations").as_int64(), 2);
  EXPECT_THAT(worker.output(), HasSubstr("evolve-generation"));

  // A policy change through the API: in Redis's history, and on the other node as PolicyUpdated.
  OtherNode other(server.url());
  ASSERT_TRUE(other.drain_until([&] { return other.sync->connected(); }));
  const Reply changed = serve.policy_change("raised over the API");
  ASSERT_EQ(changed.status, 200) << changed.body;
  const std::uint64_t version = changed.json().at("version").to_number<std::uint64_t>();
  ASSERT_TRUE(other.drain_until([&] {
    for (const PolicyUpdated& e : other.events)
      if (e.version == version) return true;
    return false;
  })) << "version " << version << " never reached the other node";
  EXPECT_EQ(other.store->current()->reason, "raised over the API");
  auto attempts = other.redis_backend->attempts();
  ASSERT_TRUE(attempts.ok()) << attempts.error().message;
  bool recorded = false;
  for (const auto& a : attempts.value()) recorded |= a.version == version && a.outcome == "accepted" && a.node == "gpu-1";
  EXPECT_TRUE(recorded) << "version " << version << " by gpu-1 is not in the history stream";

  EXPECT_EQ(worker.terminate(), 0);
  EXPECT_EQ(serve.stop(), 0) << serve.log();
}

TEST(RedisServe, RedisKilledUnderServeDegradesItTheRunGoesOnAndPolicyChangesWaitForTheRestart) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  test::TempDir dir;
  ASSERT_EQ(test::run_qtos("data synth --symbols 4 --bars 1500 --seed 3 --out syn", dir.path()).exit_code, 0);
  ServeNode serve(dir, server.url_text(), "gpu-1");
  ASSERT_TRUE(serve.ready());
  ASSERT_TRUE(eventually([&] { return serve.scale_out().is_object() && serve.scale_out().at("redis").as_string() == "ok"; }));

  server.kill();  // SIGKILL
  ASSERT_TRUE(eventually([&] { return serve.scale_out().at("redis").as_string() == "degraded"; })) << json::serialize(serve.scale_out());
  EXPECT_FALSE(serve.scale_out().at("error").as_string().empty());
  EXPECT_TRUE(serve.get("/health/ai").json().at("workers").as_object().contains("error"));
  // Trading goes on.
  const std::int64_t bar = serve.bar();
  EXPECT_TRUE(eventually([&] { return serve.bar() > bar; })) << "the run stopped with Redis";
  // A policy change is refused, naming Redis; the node keeps its policy.
  const std::uint64_t before = serve.get("/policy").json().at("version").to_number<std::uint64_t>();
  const Reply refused = serve.policy_change("during the outage");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr("Redis"));
  EXPECT_EQ(serve.get("/policy").json().at("version").to_number<std::uint64_t>(), before);
  // The history lives on Redis: a retryable 503 naming it, not a 500.
  const Reply history = serve.get("/policy/history");
  EXPECT_EQ(history.status, 503) << history.body;
  EXPECT_THAT(history.body, HasSubstr("QT_REDIS_URL"));

  ASSERT_TRUE(server.start());  // the same port and append-only file
  ASSERT_TRUE(eventually([&] { return serve.scale_out().at("redis").as_string() == "ok"; })) << json::serialize(serve.scale_out());
  EXPECT_GE(serve.scale_out().at("reconnects").to_number<std::int64_t>(), 1);
  const Reply after = serve.policy_change("after the outage");
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_GT(after.json().at("version").to_number<std::uint64_t>(), before);
  EXPECT_EQ(serve.stop(), 0) << serve.log();
}

TEST(RedisServeUsage, AnUnreachableRedisAtStartIsRefusedNamingQT_REDIS_URL) {
  test::TempDir dir;
  const std::string url = "redis://127.0.0.1:" + std::to_string(test::redis_free_port());  // nothing listens there
  const auto r = test::run_qtos("serve --state-dir st --port 0 --symbols 4 --bars 1000", dir.path(), {{"QT_REDIS_URL", url}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("QT_REDIS_URL=" + url + ": the shared policy cannot be loaded"));
  EXPECT_THAT(r.err, HasSubstr("unset QT_REDIS_URL"));
  const auto node = test::run_qtos("serve --state-dir st --port 0 --node n1", dir.path());
  EXPECT_NE(node.exit_code, 0);
  EXPECT_THAT(node.err, HasSubstr("--node n1"));
}

}  // namespace redis_serve_test
}  // namespace qtos
