#pragma once
/// @file Jobs on Redis Streams (docs/SCALE_OUT.md): a stream with one consumer group of workers. Delivery is at least
/// once, so every job has an idempotent key: enqueueing a key twice queues it once, and its result is stored once
/// (SET NX) in the same script that acknowledges the entry — a job is acknowledged only once its result is stored. A
/// job whose worker died stays pending and is claimed by another worker after `reclaim_after`; a job delivered
/// `max_deliveries` times without a result moves to the dead-letter stream with its last error. Streams are trimmed
/// below the oldest entry still pending. Workers publish heartbeats.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/value.hpp>

#include "api/redis/redis_client.hpp"
#include "runtime/util/result.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos::redis {

/// Key names of the job queue under one namespace.
struct JobKeys {
  std::string stream;      ///< the jobs stream (consumer group "workers")
  std::string dead;        ///< the dead-letter stream
  std::string heartbeats;  ///< hash: worker/node name -> heartbeat JSON
  std::string stats;       ///< hash: counters (results_stored, results_duplicate, dead_lettered, reclaimed)
  std::string prefix;      ///< "<ns>:" for per-job keys
  /// The job hash of `key` (state, kind, error).
  std::string job(const std::string& key) const { return prefix + "job:" + key; }
  /// The result string of `key`.
  std::string result(const std::string& key) const { return prefix + "result:" + key; }
  /// The list a waiting client blocks on for the keys of its finished jobs.
  std::string notify(const std::string& client) const { return prefix + "done:" + client; }
  /// The keys of namespace `ns`.
  static JobKeys of(const std::string& ns);
};

/// The consumer group every worker joins.
inline constexpr std::string_view kWorkerGroup = "workers";

/// Queue settings shared by clients and workers.
struct JobQueueOptions {
  std::string ns = "qtos";                               ///< key namespace
  /// A pending job idle this long is claimed by another worker. A live worker keeps its job in hand from going idle
  /// (it re-claims it with every heartbeat), so only a dead or disconnected worker's job is taken over.
  std::chrono::milliseconds reclaim_after{30'000};
  std::int64_t max_deliveries = 5;                       ///< deliveries before a job goes to the dead-letter stream
  std::int64_t stream_maxlen = 100'000;                  ///< the dead-letter stream's approximate length cap
  std::chrono::seconds result_ttl{86'400};               ///< results and job records expire after this
  std::chrono::milliseconds heartbeat_every{1'000};      ///< worker heartbeat period
  std::chrono::milliseconds trim_every{5'000};           ///< how often a worker trims acknowledged entries
  RedisOptions redis;                                    ///< connection settings
};

/// What enqueue() found.
enum class EnqueueOutcome { queued, already_queued, already_done, dead };

/// A job as it travels: idempotent key, kind, JSON payload, and where to announce its result.
struct Job {
  std::string key;       ///< idempotent key (a job with a key already queued or done is not queued again)
  std::string kind;      ///< "rank", "evolve-generation", "retrain" (or another registered kind)
  std::string payload;   ///< JSON text the handler parses
  std::string reply_to;  ///< client id whose notify list receives the key when the job ends ("" for none)
  std::string entry_id;  ///< stream entry id (set on delivery)
  std::int64_t deliveries = 1;   ///< how many times it has been delivered (set on delivery)
  std::int64_t enqueued_us = 0;  ///< enqueue time, microseconds since the epoch
};

/// How a job ended, as a client sees it.
struct JobOutcome {
  std::string key;       ///< the job
  bool ok = false;       ///< a result was stored (else it was dead-lettered)
  std::string result;    ///< the result JSON text (ok)
  std::string error;     ///< the last error (dead-lettered)
};

/// The client side: enqueue jobs and wait for their outcomes. Thread-safe.
class JobClient {
 public:
  /// A client named `client_id` (its notify list); `client_id` must be unique among live clients.
  JobClient(RedisUrl url, JobQueueOptions options, std::string client_id);
  /// Queues `kind` with `payload` under `key` unless that key is already queued, done or dead.
  Result<EnqueueOutcome> enqueue(const std::string& key, const std::string& kind, const std::string& payload);
  /// The outcome of `key` now: a result, a dead letter, or nullopt while it is queued or running.
  Result<std::optional<JobOutcome>> outcome(const std::string& key);
  /// Waits until every key in `keys` has an outcome or `timeout` passes (error "storage" naming the keys still open
  /// when it times out, or when Redis stays unreachable that long). Outcomes in the order of `keys`.
  Result<std::vector<JobOutcome>> wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  /// The underlying connection (for tests and tools).
  RedisClient& redis() { return client_; }
  /// The key names.
  const JobKeys& keys() const { return keys_; }

 private:
  JobQueueOptions options_;
  JobKeys keys_;
  std::string client_id_;
  RedisClient client_;
  RedisClient blocking_;
  std::atomic<bool> group_ready_{false};  // the consumer group exists (created once, not per enqueue)
};

/// A job handler: the result as JSON text, or an error (kept as the job's last error; the job is retried).
using JobHandler = std::function<Result<std::string>(const Job&)>;

/// Counters of one worker.
struct WorkerStats {
  std::uint64_t done = 0;          ///< results stored by this worker
  std::uint64_t duplicates = 0;    ///< jobs finished again whose result was already stored (not stored twice)
  std::uint64_t failed = 0;        ///< handler errors (job left pending for a retry)
  std::uint64_t reclaimed = 0;     ///< jobs claimed from a worker that went quiet
  std::uint64_t dead_lettered = 0; ///< jobs moved to the dead-letter stream
};

/// A worker: reads jobs of the registered kinds from the consumer group, runs them, stores results, reclaims
/// abandoned jobs, dead-letters poisoned ones, trims the stream and publishes heartbeats.
class Worker {
 public:
  /// A worker named `name` (unique among workers: it is the consumer name and the heartbeat field).
  Worker(RedisUrl url, JobQueueOptions options, std::string name, std::string device = "cpu");
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  /// Registers the handler of `kind`. Before run().
  void handle(const std::string& kind, JobHandler handler);
  /// Works until `stop` is requested (Redis outages are waited out with backoff). Creates the group when missing.
  void run(const StopToken& stop);
  /// One round: reclaim/dead-letter idle pending jobs, then read and run at most one new job (waiting up to
  /// `block`). Returns true when a job ran. For tests and run().
  bool step(std::chrono::milliseconds block);
  /// Counters so far.
  WorkerStats stats() const;
  /// The worker's name.
  const std::string& name() const { return name_; }

 private:
  void process(Job job);
  void set_current(const std::string& job, const std::string& entry);
  void reclaim();
  void trim();
  bool ensure_group();

  JobQueueOptions options_;
  JobKeys keys_;
  std::string name_;
  std::string device_;
  RedisClient client_;
  std::map<std::string, JobHandler> handlers_;
  bool group_ready_ = false;
  std::mutex current_mutex_;
  std::string current_job_;    // the job in hand, for the heartbeat
  std::string current_entry_;  // its stream entry, kept claimed while it runs
  std::chrono::steady_clock::time_point last_reclaim_{}, last_trim_{}, last_heartbeat_{};
  std::atomic<std::uint64_t> done_{0}, duplicates_{0}, failed_{0}, reclaimed_{0}, dead_{0};
  std::int64_t started_ms_ = 0;
};

/// Creates the consumer group of the jobs stream when missing (MKSTREAM). Idempotent.
Result<Unit> job_group_ensure(RedisClient& client, const JobKeys& keys);

/// One heartbeat as listed by `qtos workers` and /health/ai.
struct Heartbeat {
  std::string name;            ///< worker or node name
  std::string role;            ///< "worker" or "node"
  std::string host;            ///< host name
  std::int64_t pid = 0;        ///< process id
  std::string device;          ///< cpu or cuda
  std::string state;           ///< "idle", "busy", "stopping", or a node's health
  std::string job;             ///< the job in hand ("" when idle)
  std::uint64_t done = 0;      ///< results stored
  std::int64_t at_ms = 0;      ///< when it was sent
  std::int64_t age_ms = 0;     ///< how old it is at listing time
  bool alive = false;          ///< age below three heartbeat periods
};

/// Publishes a heartbeat every period from its own thread and connection (a long job or a busy bus thread never
/// delays it) until destroyed, then one last heartbeat in state "stopped".
class HeartbeatPublisher {
 public:
  /// Publishes `base` every `options.heartbeat_every`, after `fill` (optional) updated its state and counters;
  /// `also` (optional) runs on the same thread and connection each period (a worker keeps its job claimed with it).
  HeartbeatPublisher(RedisUrl url, JobQueueOptions options, Heartbeat base, std::function<void(Heartbeat&)> fill = {},
                     std::function<void(RedisClient&)> also = {});
  /// Stops the thread and publishes the final "stopped" heartbeat.
  ~HeartbeatPublisher();
  HeartbeatPublisher(const HeartbeatPublisher&) = delete;
  HeartbeatPublisher& operator=(const HeartbeatPublisher&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Writes one heartbeat for `hb` (its at_ms is set now).
Result<Unit> heartbeat_publish(RedisClient& client, const JobKeys& keys, Heartbeat hb);
/// Every heartbeat, newest first; `period` decides which are alive (age < 3 periods).
Result<std::vector<Heartbeat>> heartbeats_list(RedisClient& client, const JobKeys& keys, std::chrono::milliseconds period);
/// The heartbeats as a JSON array (for /health/ai and `qtos workers --format json`).
boost::json::value heartbeats_json(const std::vector<Heartbeat>& list);
/// The queue's counters and depths: stream length, pending, dead letters, stats hash.
Result<boost::json::value> job_queue_stats(RedisClient& client, const JobKeys& keys);

/// This machine's host name.
std::string host_name();

}  // namespace qtos::redis
