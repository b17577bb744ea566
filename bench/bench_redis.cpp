// Scale-out on Redis (docs/SCALE_OUT.md), measured side by side in one run against a private redis-server on
// loopback (a free port, append-only file fsync'd every second, as docs/SCALE_OUT.md recommends):
//  - jobs/s of trivial jobs with 1, 2 and 3 local workers, beside the same handler called in-process;
//  - per-job overhead, enqueue to stored result seen by the client, p50/p99, beside one Redis round trip (PING);
//  - evolve generations/s with 1, 2 and 3 local workers beside the single-process search (same seed, and the hall of
//    fame is checked equal).
// Workers run as threads of this process, each with its own connections (what `qtos worker` does per process); on one
// machine they share its cores, so the evolve rows show the overhead of distribution, not extra compute.
// Usage: bench_redis [--jobs N] [--population P] [--generations G] [--repeat R]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "api/redis/job_kinds.hpp"
#include "api/redis/redis_jobs.hpp"
#include "cpu/registry/backends.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/util/stop_token.hpp"

namespace {

using namespace qtos;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// A loopback port the kernel says is free now (never the default 6379).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::fprintf(stderr, "bench_redis: no free loopback port\n");
    std::exit(2);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A private redis-server for the run.
class Server {
 public:
  Server() {
    char tmpl[] = "/tmp/qtos-bench-redis-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    port_ = free_port();
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--dir", dir_.c_str(), "--save", "",
               "--appendonly", "yes", "--appendfsync", "everysec", "--loglevel", "warning", "--logfile",
               (dir_ + "/redis.log").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    redis::RedisClient probe(url(), redis::RedisOptions{.backoff_initial = std::chrono::milliseconds(0), .backoff_max = std::chrono::milliseconds(0)});
    for (int i = 0; i < 500; ++i) {
      if (probe.command({"PING"}).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::fprintf(stderr, "bench_redis: redis-server did not start on port %d (is it installed? scripts/setup.sh)\n", port_);
    std::exit(2);
  }
  ~Server() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  redis::RedisUrl url() const {
    redis::RedisUrl u;
    u.port = port_;
    return u;
  }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// W worker threads, stopped at scope exit.
class Workers {
 public:
  Workers(const redis::RedisUrl& url, const redis::JobQueueOptions& o, int n, const std::function<void(redis::Worker&)>& setup) {
    for (int i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<redis::Worker>(url, o, "bench-w" + std::to_string(i)));
      setup(*workers_.back());
    }
    for (auto& w : workers_) threads_.emplace_back([this, &w] { w->run(stop_.token()); });
  }
  ~Workers() {
    stop_.request();
    for (auto& t : threads_) t.join();
  }

 private:
  StopSource stop_;
  std::vector<std::unique_ptr<redis::Worker>> workers_;
  std::vector<std::thread> threads_;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

std::string fresh_ns(const std::string& what) {
  std::string s = "bench-";
  s += what;
  s += '-';
  s += std::to_string(redis::redis_now_ms());
  return s;
}

/// "<prefix><i>", formatted without std::string concatenation (GCC 12's -Wrestrict misfires on it at -O3).
std::string job_key(const char* prefix, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%d", prefix, i);
  return buf;
}

/// "<prefix>N worker(s)".
std::string label(const char* prefix, int workers) {
  std::string s = prefix;
  s += std::to_string(workers);
  s += workers > 1 ? " workers" : " worker";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 2000, population = 256, generations = 8, repeat = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--jobs")) jobs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--population")) population = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--generations")) generations = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeat")) repeat = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "bench_redis: unknown option %s (expected --jobs, --population, --generations, --repeat)\n", argv[i]);
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  Server server;
  std::printf("bench_redis: redis-server on %s, %u hardware threads\n\n", server.url().text().c_str(), std::thread::hardware_concurrency());
  auto echo = [](const redis::Job& j) -> Result<std::string> { return "{\"echo\":" + std::to_string(j.payload.size()) + "}"; };

  // ---- jobs/s ----------------------------------------------------------------------------------------------------
  {
    const auto t0 = Clock::now();
    std::size_t sink = 0;
    redis::Job j;
    j.payload = "{\"n\":1}";
    for (int i = 0; i < jobs; ++i) sink += echo(j).value().size();
    const double in_process = jobs / seconds_since(t0);
    std::printf("%-44s %14s\n", "trivial jobs", "jobs/s");
    std::printf("%-44s %14.0f   (peer: the handler called directly; %zu result bytes)\n", "in-process (no queue)", in_process, sink);
  }
  for (int w = 1; w <= 3; ++w) {
    redis::JobQueueOptions o;
    o.ns = fresh_ns("jobs");
    Workers ws(server.url(), o, w, [&](redis::Worker& wk) { wk.handle("echo", echo); });
    redis::JobClient client(server.url(), o, "bench-client");
    std::vector<std::string> keys;
    const auto t0 = Clock::now();
    for (int i = 0; i < jobs; ++i) {
      keys.push_back(job_key("j", i));
      if (!client.enqueue(keys.back(), "echo", "{\"n\":1}").ok()) return 1;
    }
    auto out = client.wait(keys, std::chrono::seconds(120));
    if (!out.ok()) {
      std::fprintf(stderr, "bench_redis: %s\n", out.error().message.c_str());
      return 1;
    }
    std::printf("%-44s %14.0f\n", label("Redis queue, ", w).c_str(), jobs / seconds_since(t0));
  }

  // ---- per-job overhead ----------------------------------------------------------------------------------------
  {
    redis::JobQueueOptions o;
    o.ns = fresh_ns("latency");
    Workers ws(server.url(), o, 1, [&](redis::Worker& wk) { wk.handle("echo", echo); });
    redis::JobClient client(server.url(), o, "bench-latency");
    std::vector<double> lat, ping;
    redis::RedisClient raw(server.url());
    const int n = std::max(jobs / 4, 100);
    for (int i = 0; i < n; ++i) {
      const auto t0 = Clock::now();
      const std::string key = job_key("l", i);
      if (!client.enqueue(key, "echo", "{}").ok()) return 1;
      if (!client.wait({key}, std::chrono::seconds(10)).ok()) return 1;
      lat.push_back(seconds_since(t0) * 1e6);
      const auto t1 = Clock::now();
      (void)raw.command({"PING"});
      ping.push_back(seconds_since(t1) * 1e6);
    }
    std::printf("\n%-44s %10s %10s\n", "one job, enqueue to result (1 worker)", "p50 us", "p99 us");
    std::printf("%-44s %10.0f %10.0f\n", "job round trip", percentile(lat, 0.5), percentile(lat, 0.99));
    std::printf("%-44s %10.0f %10.0f   (peer: one Redis round trip)\n", "PING", percentile(ping, 0.5), percentile(ping, 0.99));
  }

  // ---- evolve generations/s ------------------------------------------------------------------------------------
  {
    char tmpl[] = "/tmp/qtos-bench-redis-data-XXXXXX";
    const std::string data = ::mkdtemp(tmpl);
    SynthOptions so;
    so.n_symbols = 8;
    so.n_bars = 3000;
    so.seed = 5;
    panel_save(synth_generate(so).panel, panel_path(data));
    const MarketPanel panel = panel_load(panel_path(data));
    const StrategyFeatures features = strategy_features_compute(panel.view());
    auto backends = backtest_backends();
    const BacktestBackend& cpu = backend_select(backends, DeviceKind::cpu);
    EvolveOptions opt;
    opt.population = population;
    opt.generations = generations;
    opt.seed = 3;
    opt.train_end = 2000;
    opt.test_begin = 2000;
    opt.test_end = 3000;
    std::printf("\n%-44s %14s   (population %d, %d generations, %d symbols x %d bars)\n", "evolve", "generations/s", population,
                generations, so.n_symbols, so.n_bars);
    (void)evolve(panel.view(), features, cpu, opt);  // warm-up: thread pool, caches, page faults
    // Three worker pools (1, 2, 3 workers) stay up together, each on its own namespace; the runs interleave (single
    // process, 1, 2, 3 workers, again) so that a load change on a shared machine hits every row alike, and each row
    // is the best of `repeat` runs.
    std::vector<std::unique_ptr<Workers>> pools;
    std::vector<std::shared_ptr<redis::JobClient>> clients;
    for (int w = 1; w <= 3; ++w) {
      redis::JobQueueOptions o;
      o.ns = fresh_ns("evolve") + job_key("-", w);
      pools.push_back(std::make_unique<Workers>(server.url(), o, w, [&](redis::Worker& wk) { redis::job_kinds_register(wk, DeviceKind::cpu); }));
      clients.push_back(std::make_shared<redis::JobClient>(server.url(), o, "bench-evolve"));
    }
    EvolveResult single;
    std::vector<EvolveResult> multi(3);
    std::vector<double> rate(4, 0.0);  // [0]: single process, [w]: w workers
    for (int r = 0; r < repeat; ++r) {
      auto t0 = Clock::now();
      single = evolve(panel.view(), features, cpu, opt);
      rate[0] = std::max(rate[0], generations / seconds_since(t0));
      for (int w = 1; w <= 3; ++w) {
        EvolveOptions d = opt;
        d.evaluator = redis::redis_population_evaluator(
            clients[static_cast<std::size_t>(w - 1)],
            redis::DistributedEvolveOptions{.run_id = job_key("bench-", r), .data = data, .symbols = "", .chunks = static_cast<std::size_t>(w)});
        t0 = Clock::now();
        multi[static_cast<std::size_t>(w - 1)] = evolve(panel.view(), features, cpu, d);
        rate[static_cast<std::size_t>(w)] = std::max(rate[static_cast<std::size_t>(w)], generations / seconds_since(t0));
      }
    }
    std::printf("%-44s %14.2f   (peer)\n", "single process", rate[0]);
    for (int w = 1; w <= 3; ++w) {
      const EvolveResult& m = multi[static_cast<std::size_t>(w - 1)];
      bool same = m.hall_of_fame.size() == single.hall_of_fame.size() && m.trials == single.trials;
      for (std::size_t i = 0; same && i < single.hall_of_fame.size(); ++i)
        same = genome_hash(m.hall_of_fame[i].genome) == genome_hash(single.hall_of_fame[i].genome) &&
               m.hall_of_fame[i].test.sharpe == single.hall_of_fame[i].test.sharpe;
      std::printf("%-44s %14.2f   hall of fame %s\n", label("Redis, ", w).c_str(), rate[static_cast<std::size_t>(w)],
                  same ? "equal to single process" : "DIFFERENT (a bug)");
      if (!same) return 1;
    }
    pools.clear();
    std::error_code ec;
    std::filesystem::remove_all(data, ec);
  }
  return 0;
}
