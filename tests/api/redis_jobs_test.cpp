// Jobs on Redis Streams with a real redis-server per test: idempotent keys and one stored result, a worker killed
// (SIGKILL) in the middle of a job (another worker reclaims it after the timeout; exactly one result), a job that
// keeps failing moved to the dead-letter stream with its error, Redis killed and restarted under a running worker
// (every job still gets exactly one result), trimming, heartbeats, and a 3-worker evolve equal to the one-process
// evolve for the same seed.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/redis/job_kinds.hpp"
#include "api/redis/redis_jobs.hpp"
#include "cpu/registry/backends.hpp"
#include "models/registry.hpp"
#include "runtime/ranking/panel_ranking.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/data/synth.hpp"
#include "tests/support/crash_child.hpp"
#include "tests/support/redis_server.hpp"

namespace qtos {
namespace redis_jobs_test {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

redis::JobQueueOptions fast_queue() {
  redis::JobQueueOptions o;
  o.ns = "t";
  o.reclaim_after = 150ms;
  o.max_deliveries = 3;
  o.heartbeat_every = 50ms;
  o.trim_every = 0ms;
  o.redis = redis::RedisOptions{.connect_timeout = 200ms, .command_timeout = 1000ms, .backoff_initial = 20ms, .backoff_max = 100ms};
  return o;
}

/// Runs `worker` on a thread until the object is destroyed.
class WorkerThread {
 public:
  explicit WorkerThread(redis::Worker& w) : thread_([this, &w] { w.run(stop_.token()); }) {}
  ~WorkerThread() {
    stop_.request();
    thread_.join();
  }

 private:
  StopSource stop_;
  std::thread thread_;
};

std::int64_t stat(redis::RedisClient& c, const redis::JobKeys& k, const std::string& field) {
  auto r = c.command({"HGET", k.stats, field});
  return r.ok() && !r.value().is_nil() ? std::stoll(r.value().str) : 0;
}

TEST(RedisJobs, KeysAreIdempotentAndAResultIsStoredOnce) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  redis::JobClient client(server.url(), fast_queue(), "client-1");
  ASSERT_EQ(client.enqueue("job-1", "test.echo", "hello").value(), redis::EnqueueOutcome::queued);
  EXPECT_EQ(client.enqueue("job-1", "test.echo", "hello").value(), redis::EnqueueOutcome::already_queued);
  redis::Worker w(server.url(), fast_queue(), "w1");
  int runs = 0;
  w.handle("test.echo", [&](const redis::Job& j) -> Result<std::string> {
    ++runs;
    return "echo:" + j.payload;
  });
  for (int i = 0; i < 5; ++i) w.step(20ms);
  auto out = client.wait({"job-1"}, 2s);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out.value()[0].ok);
  EXPECT_EQ(out.value()[0].result, "echo:hello");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(client.enqueue("job-1", "test.echo", "hello").value(), redis::EnqueueOutcome::already_done);
  EXPECT_EQ(stat(client.redis(), client.keys(), "results_stored"), 1);
  auto pending = client.redis().command({"XPENDING", client.keys().stream, "workers"});
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending.value().elements[0].integer, 0);  // acknowledged
  // The acknowledged entry is trimmed away by the next round.
  w.step(10ms);
  auto len = client.redis().command({"XLEN", client.keys().stream});
  ASSERT_TRUE(len.ok());
  EXPECT_LE(len.value().integer, 1);
  EXPECT_THROW(client.enqueue("", "test.echo", ""), std::invalid_argument);
}

TEST(RedisJobs, AWorkerKilledMidJobLeavesItToAnotherWhoStoresExactlyOneResult) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  redis::JobClient client(server.url(), fast_queue(), "client-1");
  ASSERT_EQ(client.enqueue("slow-1", "test.slow", "x").value(), redis::EnqueueOutcome::queued);
  // The doomed worker takes the job, says so on the pipe, and hangs in it until SIGKILL.
  const std::uint64_t acked = test::sigkill_after_acks(1, [&](int ack_fd) {
    redis::Worker doomed(server.url(), fast_queue(), "doomed");
    doomed.handle("test.slow", [&](const redis::Job&) -> Result<std::string> {
      const std::uint64_t step = 1;
      if (::write(ack_fd, &step, sizeof step) != sizeof step) _exit(3);
      for (;;) std::this_thread::sleep_for(1s);
    });
    for (;;) doomed.step(50ms);
  });
  ASSERT_EQ(acked, 1u);
  redis::Worker rescuer(server.url(), fast_queue(), "rescuer");
  rescuer.handle("test.slow", [](const redis::Job& j) -> Result<std::string> {
    return "done by rescuer on delivery " + std::to_string(j.deliveries);
  });
  WorkerThread running(rescuer);
  auto out = client.wait({"slow-1"}, 5s);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out.value()[0].ok);
  EXPECT_EQ(out.value()[0].result, "done by rescuer on delivery 2");
  EXPECT_EQ(stat(client.redis(), client.keys(), "results_stored"), 1);
  EXPECT_EQ(stat(client.redis(), client.keys(), "reclaimed"), 1);
  auto who = client.redis().command({"HGET", client.keys().job("slow-1"), "worker"});
  EXPECT_EQ(who.value().str, "rescuer");
}

TEST(RedisJobs, AJobLongerThanTheReclaimTimeoutStaysWithItsLiveWorker) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  redis::JobClient client(server.url(), fast_queue(), "client-1");
  ASSERT_EQ(client.enqueue("long", "test.long", "").value(), redis::EnqueueOutcome::queued);
  std::atomic<int> runs{0};
  auto handler = [&](const redis::Job&) -> Result<std::string> {
    ++runs;
    std::this_thread::sleep_for(600ms);  // four reclaim timeouts
    return std::string("done");
  };
  redis::Worker a(server.url(), fast_queue(), "a"), b(server.url(), fast_queue(), "b");
  a.handle("test.long", handler);
  b.handle("test.long", handler);
  WorkerThread ta(a), tb(b);
  auto out = client.wait({"long"}, 5s);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out.value()[0].ok);
  EXPECT_EQ(runs.load(), 1);  // the busy worker's heartbeats kept the job claimed: nobody ran it twice
  EXPECT_EQ(stat(client.redis(), client.keys(), "reclaimed"), 0);
}

TEST(RedisJobs, AJobThatKeepsFailingMovesToTheDeadLetterStreamWithItsError) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  redis::JobClient client(server.url(), fast_queue(), "client-1");
  ASSERT_EQ(client.enqueue("poison", "test.fail", "{}").value(), redis::EnqueueOutcome::queued);
  ASSERT_EQ(client.enqueue("fine", "test.ok", "{}").value(), redis::EnqueueOutcome::queued);
  redis::Worker w(server.url(), fast_queue(), "w1");
  std::atomic<int> tries{0};
  w.handle("test.fail", [&](const redis::Job&) -> Result<std::string> {
    ++tries;
    return Error{ErrorCode::invalid, "boom: bad input"};
  });
  w.handle("test.ok", [](const redis::Job&) -> Result<std::string> { return std::string("ok"); });
  WorkerThread running(w);
  auto out = client.wait({"poison", "fine"}, 5s);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_FALSE(out.value()[0].ok);
  EXPECT_THAT(out.value()[0].error, HasSubstr("boom: bad input"));
  EXPECT_TRUE(out.value()[1].ok);
  EXPECT_EQ(tries.load(), 3);  // max_deliveries, then no more
  auto dead = client.redis().command({"XRANGE", client.keys().dead, "-", "+"});
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead.value().elements.size(), 1u);
  const auto& f = dead.value().elements[0].elements[1].elements;
  std::map<std::string, std::string> fields;
  for (std::size_t i = 0; i + 1 < f.size(); i += 2) fields[f[i].str] = f[i + 1].str;
  EXPECT_EQ(fields["key"], "poison");
  EXPECT_EQ(fields["deliveries"], "3");
  EXPECT_THAT(fields["error"], HasSubstr("boom"));
  EXPECT_EQ(client.enqueue("poison", "test.fail", "{}").value(), redis::EnqueueOutcome::dead);  // not queued again
}

TEST(RedisJobs, RedisRestartedUnderAWorkerLosesNoJobAndStoresEachResultOnce) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  redis::JobClient client(server.url(), fast_queue(), "client-1");
  std::vector<std::string> keys;
  for (int i = 0; i < 8; ++i) {
    keys.push_back("job-" + std::to_string(i));
    ASSERT_TRUE(client.enqueue(keys.back(), "test.step", std::to_string(i)).ok());
  }
  redis::Worker w(server.url(), fast_queue(), "w1");
  std::atomic<int> runs{0};
  w.handle("test.step", [&](const redis::Job& j) -> Result<std::string> {
    ++runs;
    std::this_thread::sleep_for(30ms);
    return "r" + j.payload;
  });
  {
    WorkerThread running(w);
    auto first = client.wait({keys[0]}, 5s);
    ASSERT_TRUE(first.ok()) << first.error().message;
    server.kill();  // crash mid-run: some job is in the worker's hands
    std::this_thread::sleep_for(200ms);
    auto down = client.enqueue("during", "test.step", "x");
    EXPECT_FALSE(down.ok());  // refused, not lost silently
    ASSERT_TRUE(server.start());
    auto all = client.wait(keys, 10s);
    ASSERT_TRUE(all.ok()) << all.error().message;
    for (int i = 0; i < 8; ++i) {
      EXPECT_TRUE(all.value()[static_cast<std::size_t>(i)].ok);
      EXPECT_EQ(all.value()[static_cast<std::size_t>(i)].result, "r" + std::to_string(i));
    }
  }
  EXPECT_EQ(stat(client.redis(), client.keys(), "results_stored"), 8);
  EXPECT_GE(runs.load(), 8);
}

TEST(RedisJobs, WorkersPublishHeartbeatsThatListAliveThenStopped) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  redis::Worker w(server.url(), fast_queue(), "gpu-box-1", "cuda");
  redis::RedisClient c(server.url());
  const auto keys = redis::JobKeys::of("t");
  {
    WorkerThread running(w);
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    std::vector<redis::Heartbeat> list;
    while (std::chrono::steady_clock::now() < deadline) {
      list = redis::heartbeats_list(c, keys, 50ms).value();
      if (!list.empty()) break;
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].name, "gpu-box-1");
    EXPECT_EQ(list[0].device, "cuda");
    EXPECT_EQ(list[0].role, "worker");
    EXPECT_TRUE(list[0].alive);
  }
  const auto after = redis::heartbeats_list(c, keys, 50ms).value();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].state, "stopped");
  EXPECT_FALSE(after[0].alive);
  const auto j = redis::heartbeats_json(after);
  EXPECT_EQ(j.as_array()[0].as_object().at("name").as_string(), "gpu-box-1");
}

TEST(RedisJobs, ExactDoublesRoundTrip) {
  for (double v : {0.0, -0.0, 1.0 / 3.0, 1e-300, 6.02e23, std::numeric_limits<double>::infinity()})
    EXPECT_EQ(redis::exact_double_parse(redis::exact_double(v), "v"), v);
  EXPECT_TRUE(std::isnan(redis::exact_double_parse(redis::exact_double(std::nan("")), "v")));
  EXPECT_THROW(redis::exact_double_parse("1.5x", "v"), std::invalid_argument);
}

TEST(RedisJobs, RankAndRetrainJobsRunOnAWorkerAndABadPayloadIsNamed) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  test::TempDir dir;
  SynthOptions so;
  so.n_symbols = 6;
  so.n_bars = 1200;
  so.seed = 4;
  panel_save(synth_generate(so).panel, panel_path(dir.path().string()));
  auto q = fast_queue();
  q.max_deliveries = 1;  // a bad payload goes to the dead letters at once
  redis::Worker w(server.url(), q, "w1");
  redis::job_kinds_register(w, DeviceKind::cpu);
  WorkerThread running(w);
  redis::JobClient client(server.url(), q, "client-1");
  const std::string data = dir.path().string();
  ASSERT_TRUE(client.enqueue("rank-1", "rank", R"({"data":")" + data + R"(","top":3})").ok());
  ASSERT_TRUE(client.enqueue("retrain-1", "retrain",
                             R"({"data":")" + data + R"(","model":"mlp","registry":")" + (dir / "models").string() +
                                 R"(","epochs":2,"hidden":8,"window":4,"batch_size":512,"seed":1})")
                  .ok());
  ASSERT_TRUE(client.enqueue("bad-1", "rank", R"({"top":3})").ok());
  auto out = client.wait({"rank-1", "retrain-1", "bad-1"}, 60s);
  ASSERT_TRUE(out.ok()) << out.error().message;

  ASSERT_TRUE(out.value()[0].ok) << out.value()[0].error;
  const auto rank = boost::json::parse(out.value()[0].result);
  const MarketPanel panel = panel_load(panel_path(data));
  auto ib = indicator_backends();
  const Ranking local = panel_rank(panel, RankRequest{}, backend_select(ib, DeviceKind::cpu));
  ASSERT_EQ(rank.at("top").as_array().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rank.at("top").as_array()[i].at("symbol").as_string(), local.top(3)[i].symbol);
    EXPECT_EQ(redis::exact_double_parse(std::string(rank.at("top").as_array()[i].at("score").as_string()), "score"), local.top(3)[i].score);
  }

  ASSERT_TRUE(out.value()[1].ok) << out.value()[1].error;
  const auto retrain = boost::json::parse(out.value()[1].result);
  EXPECT_EQ(retrain.at("name").as_string(), "mlp");
  EXPECT_EQ(retrain.at("version").as_int64(), 1);
  models::ModelRegistry registry((dir / "models").string());
  ASSERT_EQ(registry.list("mlp").size(), 1u);  // registered once, as a candidate

  EXPECT_FALSE(out.value()[2].ok);
  EXPECT_THAT(out.value()[2].error, HasSubstr("the payload has no 'data'"));
}

TEST(RedisEvolve, ThreeWorkersGiveTheSameHallOfFameAsOneProcess) {
  test::RedisServer server;
  QTOS_REDIS_START(server);
  test::TempDir dir;
  SynthOptions so;
  so.n_symbols = 4;
  so.n_bars = 1200;
  so.seed = 11;
  so.late_listing_fraction = 0.0;
  panel_save(synth_generate(so).panel, panel_path(dir.path().string()));
  const MarketPanel panel = panel_load(panel_path(dir.path().string()));
  const StrategyFeatures features = strategy_features_compute(panel.view());
  auto backends = backtest_backends();
  const BacktestBackend& cpu = backend_select(backends, DeviceKind::cpu);
  EvolveOptions opt;
  opt.population = 24;
  opt.generations = 4;
  opt.seed = 7;
  opt.min_trades = 5;
  opt.hall_of_fame = 5;
  opt.train_end = 800;
  opt.test_begin = 800;
  opt.test_end = 1200;
  const EvolveResult single = evolve(panel.view(), features, cpu, opt);

  std::vector<std::unique_ptr<redis::Worker>> workers;
  std::vector<std::unique_ptr<WorkerThread>> threads;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(std::make_unique<redis::Worker>(server.url(), fast_queue(), "w" + std::to_string(i)));
    redis::job_kinds_register(*workers.back(), DeviceKind::cpu);
    threads.push_back(std::make_unique<WorkerThread>(*workers.back()));
  }
  auto client = std::make_shared<redis::JobClient>(server.url(), fast_queue(), "evolve-client");
  EvolveOptions dopt = opt;
  dopt.evaluator = redis::redis_population_evaluator(
      client, redis::DistributedEvolveOptions{.run_id = "run-7", .data = dir.path().string(), .symbols = "", .chunks = 3, .timeout = 20s});
  const EvolveResult multi = evolve(panel.view(), features, cpu, dopt);
  threads.clear();

  ASSERT_EQ(multi.hall_of_fame.size(), single.hall_of_fame.size());
  EXPECT_EQ(multi.trials, single.trials);
  EXPECT_EQ(multi.sr_variance, single.sr_variance);
  for (std::size_t i = 0; i < single.hall_of_fame.size(); ++i) {
    const auto& a = single.hall_of_fame[i];
    const auto& b = multi.hall_of_fame[i];
    EXPECT_EQ(genome_id(a.genome), genome_id(b.genome)) << "rank " << i;
    EXPECT_EQ(a.fitness, b.fitness);
    EXPECT_EQ(a.train.sharpe, b.train.sharpe);
    EXPECT_EQ(a.test.sharpe, b.test.sharpe);
    EXPECT_EQ(a.validation.sharpe, b.validation.sharpe);
    EXPECT_EQ(a.train_dsr, b.train_dsr);
    EXPECT_EQ(a.validation_dsr, b.validation_dsr);
    EXPECT_EQ(a.test_dsr, b.test_dsr);
    EXPECT_EQ(a.parents, b.parents);
  }
  // Every generation's fresh genomes went out as 3 jobs, each spread over the workers (all three took some).
  std::uint64_t done = 0;
  int busy = 0;
  for (const auto& w : workers) {
    done += w->stats().done;
    busy += w->stats().done > 0;
  }
  EXPECT_EQ(done, 3u * static_cast<std::uint64_t>(opt.generations));
  EXPECT_GE(busy, 2);
}

}  // namespace redis_jobs_test
}  // namespace qtos
