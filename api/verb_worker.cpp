// `qtos worker`: runs rank, evolve-generation and retrain jobs from Redis until SIGINT/SIGTERM; `qtos workers`: lists
// the heartbeats of workers and nodes and the queue's counters (docs/SCALE_OUT.md).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <boost/json.hpp>

#include "api/cli_checks.hpp"
#include "api/redis/job_kinds.hpp"
#include "api/redis/redis_jobs.hpp"
#include "api/verbs.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos::api {
namespace {

struct WorkerArgs {
  std::string redis, device = "auto", name, ns = "qtos", format = "table";
  double reclaim_s = 30;
  std::int64_t max_deliveries = 5;
};

/// --redis, else QT_REDIS_URL; a usage error when neither is set.
redis::RedisUrl redis_url_of(CliContext& ctx, const std::string& given) {
  const std::string url = given.empty() ? ctx.config().redis_url : given;
  if (url.empty()) throw UsageError("no Redis: give --redis redis://host:port or set QT_REDIS_URL");
  return redis::redis_url_parse(url, given.empty() ? "QT_REDIS_URL" : "--redis");
}

}  // namespace

void verbs_worker_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<WorkerArgs>();
  auto* cmd = app.add_subcommand("worker", "take rank, evolve-generation and retrain jobs from Redis until stopped (SIGINT/SIGTERM)");
  cmd->add_option("--redis", a->redis, "redis://[:password@]host[:port][/db] (default: QT_REDIS_URL)");
  cmd->add_option("--device", a->device, "auto, cpu or cuda: where this worker runs its jobs")->capture_default_str();
  cmd->add_option("--name", a->name, "worker name, unique among workers (default: HOST-PID)");
  cmd->add_option("--namespace", a->ns, "key prefix shared by the server and its workers")->capture_default_str();
  cmd->add_option("--reclaim-s", a->reclaim_s, "a job idle this long in a silent worker's hands is taken over, 0.01 to 86400")
      ->check(number_range(0.01, 86400))
      ->capture_default_str();
  cmd->add_option("--max-deliveries", a->max_deliveries, "deliveries before a failing job goes to the dead-letter stream, 1 to 1000")
      ->check(integer_range(1, 1000))
      ->capture_default_str();
  cmd->callback([a, &ctx] {
    stop_signals_install();  // SIGINT/SIGTERM end the loop after the job in hand
    const StopToken stop = process_stop_token();
    const redis::RedisUrl url = redis_url_of(ctx, a->redis);
    const DeviceKind device = device_parse(a->device, "--device");
    std::string device_label;
    {
      // A worker that cannot run its device says so now, not on its first job; the heartbeat names what was chosen.
      auto backends = backtest_backends();
      device_label = std::string(backend_select(backends, device).name());
    }
    redis::JobQueueOptions o;
    o.ns = a->ns;
    o.reclaim_after = std::chrono::milliseconds(static_cast<std::int64_t>(a->reclaim_s * 1000));
    o.max_deliveries = a->max_deliveries;
    const std::string name = a->name.empty() ? redis::host_name() + "-" + std::to_string(::getpid()) : a->name;
    redis::Worker worker(url, o, name, device_label);
    redis::job_kinds_register(worker, device);
    std::printf("worker %s on %s (device %s, namespace %s): rank, evolve-generation, retrain; reclaim after %.2f s, dead letter after %lld deliveries\n",
                name.c_str(), url.text().c_str(), device_label.c_str(), a->ns.c_str(), a->reclaim_s,
                static_cast<long long>(a->max_deliveries));
    std::fflush(stdout);
    worker.run(stop);
    const auto s = worker.stats();
    std::printf("worker %s stopped: %llu results stored, %llu duplicates, %llu failures, %llu reclaimed, %llu dead-lettered\n",
                name.c_str(), static_cast<unsigned long long>(s.done), static_cast<unsigned long long>(s.duplicates),
                static_cast<unsigned long long>(s.failed), static_cast<unsigned long long>(s.reclaimed),
                static_cast<unsigned long long>(s.dead_lettered));
    ctx.exit_code = 0;  // a stop by SIGINT/SIGTERM is the normal end of a worker, as of `qtos serve`
  });

  auto l = std::make_shared<WorkerArgs>();
  auto* ls = app.add_subcommand("workers", "list the heartbeats of workers and nodes and the job queue's counters");
  ls->add_option("--redis", l->redis, "redis://[:password@]host[:port][/db] (default: QT_REDIS_URL)");
  ls->add_option("--namespace", l->ns, "key prefix shared by the server and its workers")->capture_default_str();
  ls->add_option("--format", l->format, "table|json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  ls->callback([l, &ctx] {
    const redis::RedisUrl url = redis_url_of(ctx, l->redis);
    redis::RedisClient client(url);
    const auto keys = redis::JobKeys::of(l->ns);
    auto list = redis::heartbeats_list(client, keys, redis::JobQueueOptions{}.heartbeat_every);
    if (!list.ok()) throw std::runtime_error(list.error().message);
    auto stats = redis::job_queue_stats(client, keys);
    if (!stats.ok()) throw std::runtime_error(stats.error().message);
    if (l->format == "json") {
      std::printf("%s\n", boost::json::serialize(boost::json::object{{"redis", url.text()},
                                                                     {"heartbeats", redis::heartbeats_json(list.value())},
                                                                     {"queue", stats.value()}})
                              .c_str());
      return;
    }
    std::printf("%-28s %-7s %-20s %8s %-6s %-9s %8s %9s %s\n", "NAME", "ROLE", "HOST", "PID", "DEVICE", "STATE", "DONE", "AGE", "ALIVE");
    for (const auto& h : list.value())
      std::printf("%-28s %-7s %-20s %8lld %-6s %-9s %8llu %8.1fs %s\n", h.name.c_str(), h.role.c_str(), h.host.c_str(),
                  static_cast<long long>(h.pid), h.device.c_str(), h.state.c_str(), static_cast<unsigned long long>(h.done),
                  static_cast<double>(h.age_ms) / 1000.0, h.alive ? "yes" : "no");
    std::printf("%zu heartbeats on %s; queue: %s\n", list.value().size(), url.text().c_str(),
                boost::json::serialize(stats.value()).c_str());
  });
}

}  // namespace qtos::api
