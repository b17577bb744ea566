#include "api/redis/redis_jobs.hpp"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

namespace qtos::redis {
namespace json = boost::json;

namespace {

// KEYS: job hash, jobs stream, result. ARGV: key, kind, payload, reply_to, enqueued_us.
// The check and the XADD are one script: two clients enqueueing the same key queue it once.
constexpr std::string_view kEnqueueScript = R"lua(
if redis.call('EXISTS', KEYS[3]) == 1 then return 'done' end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'dead' then return 'dead' end
if state then return 'queued_before' end
local id = redis.call('XADD', KEYS[2], '*', 'key', ARGV[1], 'kind', ARGV[2], 'payload', ARGV[3], 'reply_to', ARGV[4], 'enqueued_us', ARGV[5])
redis.call('HSET', KEYS[1], 'state', 'queued', 'kind', ARGV[2], 'entry', id)
return 'queued'
)lua";

// KEYS: result, job hash, jobs stream, stats, notify list. ARGV: group, entry id, result, worker, ttl s, key, notify?.
// Store-once and acknowledge in one script: the entry is acknowledged only together with a stored result, and a
// second completion of the same key (a reclaimed job finished twice) stores nothing.
constexpr std::string_view kCompleteScript = R"lua(
local first = redis.call('SET', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[5])
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
if first then
  redis.call('HSET', KEYS[2], 'state', 'done', 'worker', ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('HINCRBY', KEYS[4], 'results_stored', 1)
  if ARGV[7] == '1' then
    redis.call('RPUSH', KEYS[5], ARGV[6])
    redis.call('EXPIRE', KEYS[5], ARGV[5])
  end
  return 1
end
redis.call('HINCRBY', KEYS[4], 'results_duplicate', 1)
return 0
)lua";

// KEYS: dead stream, job hash, jobs stream, stats, notify list.
// ARGV: group, entry id, key, kind, payload, deliveries, maxlen, ttl s, notify?, worker.
constexpr std::string_view kDeadScript = R"lua(
local err = redis.call('HGET', KEYS[2], 'error') or 'no error recorded: the job outlived its worker every time'
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'key', ARGV[3], 'kind', ARGV[4], 'payload', ARGV[5], 'deliveries', ARGV[6], 'error', err, 'by', ARGV[10])
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'state', 'dead', 'error', err)
redis.call('EXPIRE', KEYS[2], ARGV[8])
redis.call('HINCRBY', KEYS[4], 'dead_lettered', 1)
if ARGV[9] == '1' then
  redis.call('RPUSH', KEYS[5], ARGV[3])
  redis.call('EXPIRE', KEYS[5], ARGV[8])
end
return 1
)lua";

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A stream entry ([id, [f, v, ...]]) as a Job; nullopt for a deleted entry (nil).
std::optional<Job> job_of_entry(const RedisReply& entry) {
  if (entry.kind != RedisReply::Kind::array || entry.elements.size() < 2 || entry.elements[1].kind != RedisReply::Kind::array)
    return std::nullopt;
  Job j;
  j.entry_id = entry.elements[0].str;
  const auto& kv = entry.elements[1].elements;
  for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
    const std::string& f = kv[i].str;
    const std::string& v = kv[i + 1].str;
    if (f == "key") j.key = v;
    else if (f == "kind") j.kind = v;
    else if (f == "payload") j.payload = v;
    else if (f == "reply_to") j.reply_to = v;
    else if (f == "enqueued_us") j.enqueued_us = std::strtoll(v.c_str(), nullptr, 10);
  }
  return j;
}

/// Stream ids compare as (milliseconds, sequence).
std::pair<std::uint64_t, std::uint64_t> id_parts(const std::string& id) {
  const auto dash = id.find('-');
  return {std::strtoull(id.c_str(), nullptr, 10), dash == std::string::npos ? 0 : std::strtoull(id.c_str() + dash + 1, nullptr, 10)};
}

std::string ms_text(std::chrono::milliseconds ms) { return std::to_string(ms.count()); }

}  // namespace

JobKeys JobKeys::of(const std::string& ns) {
  if (ns.empty()) throw std::invalid_argument("job queue: the key namespace is empty");
  return {ns + ":jobs", ns + ":jobs:dead", ns + ":heartbeats", ns + ":jobs:stats", ns + ":"};
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

Result<Unit> job_group_ensure(RedisClient& client, const JobKeys& keys) {
  auto r = client.command({"XGROUP", "CREATE", keys.stream, std::string(kWorkerGroup), "0", "MKSTREAM"});
  if (!r.ok() && r.error().message.find("BUSYGROUP") == std::string::npos) return r.error();
  return Unit{};
}

// ---- client ----------------------------------------------------------------------------------------------------

JobClient::JobClient(RedisUrl url, JobQueueOptions options, std::string client_id)
    : options_(std::move(options)), keys_(JobKeys::of(options_.ns)), client_id_(std::move(client_id)),
      client_(url, options_.redis), blocking_(url, options_.redis) {
  if (client_id_.empty()) throw std::invalid_argument("JobClient: the client id is empty");
}

Result<EnqueueOutcome> JobClient::enqueue(const std::string& key, const std::string& kind, const std::string& payload) {
  if (key.empty()) throw std::invalid_argument("JobClient::enqueue: the job key is empty");
  if (kind.empty()) throw std::invalid_argument("JobClient::enqueue: the job kind is empty (job '" + key + "')");
  if (!group_ready_.load(std::memory_order_acquire)) {
    if (auto g = job_group_ensure(client_, keys_); !g.ok()) return g.error();
    group_ready_.store(true, std::memory_order_release);
  }
  auto r = client_.eval(kEnqueueScript, {keys_.job(key), keys_.stream, keys_.result(key)},
                        {key, kind, payload, client_id_, std::to_string(now_us())});
  if (!r.ok()) return r.error();
  const std::string& s = r.value().str;
  if (s == "done") return EnqueueOutcome::already_done;
  if (s == "dead") return EnqueueOutcome::dead;
  if (s == "queued_before") return EnqueueOutcome::already_queued;
  return EnqueueOutcome::queued;
}

Result<std::optional<JobOutcome>> JobClient::outcome(const std::string& key) {
  auto r = client_.command({"GET", keys_.result(key)});
  if (!r.ok()) return r.error();
  if (!r.value().is_nil()) return std::optional<JobOutcome>(JobOutcome{key, true, r.value().str, ""});
  auto h = client_.command({"HMGET", keys_.job(key), "state", "error"});
  if (!h.ok()) return h.error();
  const auto& e = h.value().elements;
  if (e.size() == 2 && e[0].str == "dead") return std::optional<JobOutcome>(JobOutcome{key, false, "", e[1].str});
  return std::optional<JobOutcome>{};
}

Result<std::vector<JobOutcome>> JobClient::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::optional<JobOutcome>> got(keys.size());
  std::size_t open = keys.size();
  std::string last_error;
  const std::string notify = keys_.notify(client_id_);
  while (true) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (got[i]) continue;
      auto o = outcome(keys[i]);
      if (!o.ok()) {
        last_error = o.error().message;
        break;
      }
      if (o.value()) {
        got[i] = std::move(o.value());
        --open;
      }
    }
    if (open == 0) break;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      std::string which;
      for (std::size_t i = 0; i < keys.size() && which.size() < 200; ++i)
        if (!got[i]) which += (which.empty() ? "" : ", ") + keys[i];
      return Error{ErrorCode::storage, std::to_string(open) + " of " + std::to_string(keys.size()) + " jobs have no outcome after " +
                                           std::to_string(timeout.count()) + " ms (" + which + ")" +
                                           (last_error.empty() ? "" : "; last error: " + last_error)};
    }
    // Block on the notify list (a finished job pushes its key), then drain it; the loop re-reads the outcomes.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const auto block = std::min(left, std::chrono::milliseconds(500));
    auto b = blocking_.command_blocking({"BLPOP", notify, std::to_string(std::max<std::int64_t>(block.count(), 1) / 1000.0)}, block);
    if (!b.ok()) {
      last_error = b.error().message;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (!b.value().is_nil()) (void)blocking_.command({"LPOP", notify, "1000"});
  }
  std::vector<JobOutcome> out;
  out.reserve(keys.size());
  for (auto& g : got) out.push_back(std::move(*g));
  return out;
}

// ---- worker ----------------------------------------------------------------------------------------------------

Worker::Worker(RedisUrl url, JobQueueOptions options, std::string name, std::string device)
    : options_(std::move(options)), keys_(JobKeys::of(options_.ns)), name_(std::move(name)), device_(std::move(device)),
      client_(std::move(url), options_.redis), started_ms_(redis_now_ms()) {
  if (name_.empty()) throw std::invalid_argument("Worker: the worker name is empty");
  if (options_.max_deliveries < 1)
    throw std::invalid_argument("Worker: max deliveries " + std::to_string(options_.max_deliveries) + ": expected >= 1");
}

Worker::~Worker() = default;

void Worker::handle(const std::string& kind, JobHandler handler) {
  if (kind.empty() || !handler) throw std::invalid_argument("Worker::handle: a job kind and a handler are required");
  handlers_[kind] = std::move(handler);
}

WorkerStats Worker::stats() const {
  return {done_.load(), duplicates_.load(), failed_.load(), reclaimed_.load(), dead_.load()};
}

bool Worker::ensure_group() {
  if (group_ready_) return true;
  group_ready_ = job_group_ensure(client_, keys_).ok();
  return group_ready_;
}

void Worker::set_current(const std::string& job, const std::string& entry) {
  std::lock_guard<std::mutex> lock(current_mutex_);
  current_job_ = job;
  current_entry_ = entry;
}

void Worker::process(Job job) {
  set_current(job.key + " (" + job.kind + ")", job.entry_id);
  struct Idle {
    Worker* w;
    ~Idle() { w->set_current("", ""); }
  } idle{this};
  // An entry whose key already has a result (a copy added to the stream by hand or by a tool that bypassed the
  // enqueue script) is acknowledged without running the job again. A slow worker that finishes a job another worker
  // reclaimed meanwhile is caught by the completion script instead (SET NX: the second result is not stored).
  if (auto e = client_.command({"EXISTS", keys_.result(job.key)}); e.ok() && e.value().integer == 1) {
    (void)client_.command({"XACK", keys_.stream, std::string(kWorkerGroup), job.entry_id});
    duplicates_.fetch_add(1);
    return;
  }
  (void)client_.command({"HSET", keys_.job(job.key), "state", "running", "worker", name_, "deliveries", std::to_string(job.deliveries)});
  Result<std::string> result = Error{ErrorCode::unsupported, ""};
  const auto it = handlers_.find(job.kind);
  if (it == handlers_.end()) {
    result = Error{ErrorCode::unsupported, "worker '" + name_ + "' has no handler for job kind '" + job.kind + "'"};
  } else {
    try {
      result = it->second(job);
    } catch (const std::exception& e) {
      result = Error{ErrorCode::invalid, e.what()};
    }
  }
  if (!result.ok()) {
    // Left pending: after reclaim_after another worker (or this one) tries again, until max_deliveries.
    failed_.fetch_add(1);
    spdlog::warn("worker {}: job {} ({}) failed on delivery {}: {}", name_, job.key, job.kind, job.deliveries, result.error().message);
    (void)client_.command({"HSET", keys_.job(job.key), "state", "failed", "error", result.error().message});
    return;
  }
  const bool notify = !job.reply_to.empty();
  auto r = client_.eval(kCompleteScript,
                        {keys_.result(job.key), keys_.job(job.key), keys_.stream, keys_.stats, keys_.notify(notify ? job.reply_to : "-")},
                        {std::string(kWorkerGroup), job.entry_id, result.value(), name_,
                         std::to_string(options_.result_ttl.count()), job.key, notify ? "1" : "0"});
  if (!r.ok()) {
    // Not acknowledged: the job stays pending and is redone after reclaim_after (its result then stored once).
    spdlog::warn("worker {}: job {} done but its result could not be stored: {}", name_, job.key, r.error().message);
  } else if (r.value().integer == 1) {
    done_.fetch_add(1);
  } else {
    duplicates_.fetch_add(1);
  }
}

void Worker::reclaim() {
  auto p = client_.command({"XPENDING", keys_.stream, std::string(kWorkerGroup), "IDLE", ms_text(options_.reclaim_after), "-", "+", "32"});
  if (!p.ok()) return;
  for (const auto& row : p.value().elements) {
    if (row.elements.size() < 4) continue;
    const std::string id = row.elements[0].str;
    const std::int64_t deliveries = row.elements[3].integer;
    auto c = client_.command({"XCLAIM", keys_.stream, std::string(kWorkerGroup), name_, ms_text(options_.reclaim_after), id});
    if (!c.ok()) continue;
    if (c.value().elements.empty()) continue;  // another worker claimed it first
    auto job = job_of_entry(c.value().elements.front());
    if (!job) {  // the entry was deleted (trimmed by hand): nothing to run
      (void)client_.command({"XACK", keys_.stream, std::string(kWorkerGroup), id});
      continue;
    }
    job->deliveries = deliveries + 1;
    if (deliveries >= options_.max_deliveries) {
      const bool notify = !job->reply_to.empty();
      auto d = client_.eval(kDeadScript,
                            {keys_.dead, keys_.job(job->key), keys_.stream, keys_.stats, keys_.notify(notify ? job->reply_to : "-")},
                            {std::string(kWorkerGroup), id, job->key, job->kind, job->payload, std::to_string(deliveries),
                             std::to_string(options_.stream_maxlen), std::to_string(options_.result_ttl.count()), notify ? "1" : "0", name_});
      if (d.ok()) {
        dead_.fetch_add(1);
        spdlog::warn("worker {}: job {} ({}) moved to {} after {} deliveries", name_, job->key, job->kind, keys_.dead, deliveries);
      }
      continue;
    }
    reclaimed_.fetch_add(1);
    (void)client_.command({"HINCRBY", keys_.stats, "reclaimed", "1"});
    spdlog::info("worker {}: reclaimed job {} ({}) idle since its last delivery (delivery {})", name_, job->key, job->kind, job->deliveries);
    process(std::move(*job));
  }
}

void Worker::trim() {
  // Entries older than both the oldest pending entry and the group's last delivered id are acknowledged: drop them.
  auto g = client_.command({"XINFO", "GROUPS", keys_.stream});
  if (!g.ok()) return;
  std::string last_delivered;
  for (const auto& group : g.value().elements) {
    const auto& kv = group.elements;
    bool ours = false;
    std::string ld;
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
      if (kv[i].str == "name" && kv[i + 1].str == kWorkerGroup) ours = true;
      if (kv[i].str == "last-delivered-id") ld = kv[i + 1].str;
    }
    if (ours) last_delivered = ld;
  }
  if (last_delivered.empty() || last_delivered == "0-0") return;
  std::string min_id = last_delivered;
  auto p = client_.command({"XPENDING", keys_.stream, std::string(kWorkerGroup)});
  if (!p.ok()) return;
  const auto& s = p.value().elements;
  if (s.size() >= 2 && s[0].integer > 0 && id_parts(s[1].str) < id_parts(min_id)) min_id = s[1].str;
  (void)client_.command({"XTRIM", keys_.stream, "MINID", min_id});
}

bool Worker::step(std::chrono::milliseconds block) {
  if (!ensure_group()) {
    std::this_thread::sleep_for(std::min(block, std::chrono::milliseconds(100)));
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - last_reclaim_ >= std::max(options_.reclaim_after / 4, std::chrono::milliseconds(10))) {
    last_reclaim_ = now;
    reclaim();
  }
  if (now - last_trim_ >= options_.trim_every) {
    last_trim_ = now;
    trim();
  }
  auto r = client_.command_blocking({"XREADGROUP", "GROUP", std::string(kWorkerGroup), name_, "COUNT", "1", "BLOCK",
                                     ms_text(block), "STREAMS", keys_.stream, ">"},
                                    block);
  if (!r.ok()) {
    if (r.error().message.find("NOGROUP") != std::string::npos) group_ready_ = false;  // the stream was deleted
    std::this_thread::sleep_for(std::min(block, std::chrono::milliseconds(100)));
    return false;
  }
  if (r.value().is_nil() || r.value().elements.empty()) return false;
  const auto& stream = r.value().elements.front();
  if (stream.elements.size() < 2 || stream.elements[1].elements.empty()) return false;
  auto job = job_of_entry(stream.elements[1].elements.front());
  if (!job) return false;
  job->deliveries = 1;
  process(std::move(*job));
  return true;
}

void Worker::run(const StopToken& stop) {
  {
    // Heartbeats from their own thread and connection: a job that runs for minutes still shows its worker alive.
    Heartbeat base;
    base.name = name_;
    base.role = "worker";
    base.host = host_name();
    base.pid = static_cast<std::int64_t>(::getpid());
    base.device = device_;
    HeartbeatPublisher beat(
        client_.url(), options_, base,
        [this, &stop](Heartbeat& hb) {
          hb.done = done_.load();
          std::lock_guard<std::mutex> lock(current_mutex_);
          hb.job = current_job_;
          hb.state = stop.stop_requested() ? "stopping" : hb.job.empty() ? "idle" : "busy";
        },
        [this](RedisClient& c) {
          // Re-claim the entry in hand (JUSTID: the delivery count stays) so its idle time restarts: a job that runs
          // longer than reclaim_after is not taken over while this worker is alive.
          std::string entry;
          {
            std::lock_guard<std::mutex> lock(current_mutex_);
            entry = current_entry_;
          }
          if (!entry.empty())
            (void)c.command({"XCLAIM", keys_.stream, std::string(kWorkerGroup), name_, "0", entry, "JUSTID"});
        });
    while (!stop.stop_requested()) step(std::chrono::milliseconds(200));
  }
}

HeartbeatPublisher::HeartbeatPublisher(RedisUrl url, JobQueueOptions options, Heartbeat base, std::function<void(Heartbeat&)> fill,
                                       std::function<void(RedisClient&)> also) {
  if (base.name.empty()) throw std::invalid_argument("HeartbeatPublisher: the name is empty");
  thread_ = std::thread([this, url = std::move(url), options = std::move(options), base = std::move(base), fill = std::move(fill),
                         also = std::move(also)] {
    RedisClient client(url, options.redis);
    const JobKeys keys = JobKeys::of(options.ns);
    Heartbeat hb = base;
    while (!stop_.load(std::memory_order_acquire)) {
      if (fill) fill(hb);
      (void)heartbeat_publish(client, keys, hb);
      if (also) also(client);
      const auto until = std::chrono::steady_clock::now() + options.heartbeat_every;
      while (!stop_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (fill) fill(hb);
    hb.state = "stopped";
    (void)heartbeat_publish(client, keys, hb);
  });
}

HeartbeatPublisher::~HeartbeatPublisher() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

// ---- heartbeats and stats --------------------------------------------------------------------------------------

Result<Unit> heartbeat_publish(RedisClient& client, const JobKeys& keys, Heartbeat hb) {
  hb.at_ms = redis_now_ms();
  const json::object o{{"name", hb.name}, {"role", hb.role}, {"host", hb.host}, {"pid", hb.pid}, {"device", hb.device},
                       {"state", hb.state}, {"job", hb.job}, {"done", hb.done}, {"at_ms", hb.at_ms}};
  auto r = client.command({"HSET", keys.heartbeats, hb.name, json::serialize(o)});
  if (!r.ok()) return r.error();
  return Unit{};
}

Result<std::vector<Heartbeat>> heartbeats_list(RedisClient& client, const JobKeys& keys, std::chrono::milliseconds period) {
  auto r = client.command({"HGETALL", keys.heartbeats});
  if (!r.ok()) return r.error();
  std::vector<Heartbeat> out;
  const std::int64_t now = redis_now_ms();
  const auto& kv = r.value().elements;
  for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
    std::error_code ec;
    const json::value v = json::parse(kv[i + 1].str, ec);
    if (ec || !v.is_object()) continue;  // not ours: skip rather than fail the whole listing
    const auto& o = v.as_object();
    Heartbeat hb;
    auto s = [&](const char* k) { return o.contains(k) && o.at(k).is_string() ? std::string(o.at(k).as_string()) : std::string(); };
    auto n = [&](const char* k) -> std::int64_t { return o.contains(k) && o.at(k).is_number() ? o.at(k).to_number<std::int64_t>() : 0; };
    hb.name = kv[i].str;
    hb.role = s("role");
    hb.host = s("host");
    hb.pid = n("pid");
    hb.device = s("device");
    hb.state = s("state");
    hb.job = s("job");
    hb.done = static_cast<std::uint64_t>(n("done"));
    hb.at_ms = n("at_ms");
    hb.age_ms = now - hb.at_ms;
    hb.alive = hb.age_ms < 3 * period.count() && hb.state != "stopped";
    out.push_back(std::move(hb));
  }
  std::sort(out.begin(), out.end(), [](const Heartbeat& a, const Heartbeat& b) {
    return a.at_ms != b.at_ms ? a.at_ms > b.at_ms : a.name < b.name;
  });
  return out;
}

json::value heartbeats_json(const std::vector<Heartbeat>& list) {
  json::array a;
  for (const auto& hb : list)
    a.push_back(json::object{{"name", hb.name}, {"role", hb.role}, {"host", hb.host}, {"pid", hb.pid}, {"device", hb.device},
                             {"state", hb.state}, {"job", hb.job}, {"done", hb.done}, {"at_ms", hb.at_ms},
                             {"age_ms", hb.age_ms}, {"alive", hb.alive}});
  return a;
}

Result<json::value> job_queue_stats(RedisClient& client, const JobKeys& keys) {
  json::object o;
  auto len = client.command({"XLEN", keys.stream});
  if (!len.ok()) return len.error();
  o["stream_length"] = len.value().integer;
  auto dead = client.command({"XLEN", keys.dead});
  if (!dead.ok()) return dead.error();
  o["dead_letters"] = dead.value().integer;
  auto p = client.command({"XPENDING", keys.stream, std::string(kWorkerGroup)});
  o["pending"] = p.ok() && !p.value().elements.empty() ? p.value().elements[0].integer : 0;
  auto s = client.command({"HGETALL", keys.stats});
  if (!s.ok()) return s.error();
  const auto& kv = s.value().elements;
  for (std::size_t i = 0; i + 1 < kv.size(); i += 2) o[kv[i].str] = std::strtoll(kv[i + 1].str.c_str(), nullptr, 10);
  return json::value(std::move(o));
}

}  // namespace qtos::redis
