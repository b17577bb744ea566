// The scale-out verbs through the real binary with a private redis-server: two `qtos worker` processes, `qtos
// workers` listing their heartbeats, `qtos evolve --workers` writing the same hall of fame as `qtos evolve` for the
// same seed, and the usage errors of a missing or malformed Redis URL.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/qtos_process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace redis_cli_test {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace json = boost::json;

/// `qtos worker` on the CPU with a one-second reclaim.
struct WorkerProcess : test::QtosProcess {
  WorkerProcess(const std::string& url, const std::string& name)
      : QtosProcess({"worker", "--redis", url, "--device", "cpu", "--name", name, "--reclaim-s", "1"}) {}
};

TEST(RedisCli, WorkersListHeartbeatsAndEvolveOnWorkersMatchesOneProcess) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  test::TempDir dir;
  ASSERT_EQ(test::run_qtos("data synth --symbols 4 --bars 1500 --seed 3 --out syn", dir.path()).exit_code, 0);
  WorkerProcess w1(server.url_text(), "cli-w1");
  WorkerProcess w2(server.url_text(), "cli-w2");
  json::value listing;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto r = test::run_qtos("workers --format json", dir.path(), {{"QT_REDIS_URL", server.url_text()}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    listing = json::parse(r.out);
    if (listing.at("heartbeats").as_array().size() == 2) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(listing.at("heartbeats").as_array().size(), 2u) << json::serialize(listing);
  for (const auto& hb : listing.at("heartbeats").as_array()) {
    EXPECT_TRUE(hb.at("alive").as_bool());
    EXPECT_EQ(hb.at("device").as_string(), "cpu");
  }

  const std::string common = "evolve --data syn --population 16 --generations 3 --seed 4 --min-trades 5 --top 5 --device cpu";
  const auto one = test::run_qtos(common + " --out one.json", dir.path());
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto many = test::run_qtos(common + " --out many.json --workers " + server.url_text(), dir.path());
  ASSERT_EQ(many.exit_code, 0) << many.err << many.out;
  EXPECT_THAT(many.out, HasSubstr("distributing each generation over 2 live workers"));
  const json::value a = json::parse(test::slurp(dir / "one.json"));
  const json::value b = json::parse(test::slurp(dir / "many.json"));
  EXPECT_EQ(json::serialize(a.at("hall_of_fame")), json::serialize(b.at("hall_of_fame")));
  EXPECT_EQ(a.at("trials"), b.at("trials"));

  EXPECT_EQ(w1.terminate(), 0);
  EXPECT_EQ(w2.terminate(), 0);
  EXPECT_THAT(w1.output() + w2.output(), HasSubstr("results stored"));
}

TEST(RedisCli, AMissingOrBadRedisUrlIsAUsageErrorNamingIt) {
  test::TempDir dir;
  const auto none = test::run_qtos("workers", dir.path());
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.err, HasSubstr("QT_REDIS_URL"));
  const auto bad = test::run_qtos("worker --redis http://x", dir.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--redis 'http://x'"));
  const auto cfg = test::run_qtos("workers", dir.path(), {{"QT_REDIS_URL", "mysql://x"}});
  EXPECT_NE(cfg.exit_code, 0);
  EXPECT_THAT(cfg.err, HasSubstr("QT_REDIS_URL"));
}

}  // namespace redis_cli_test
}  // namespace qtos
