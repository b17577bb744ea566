#include "api/redis/redis_policy.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include <boost/json.hpp>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

namespace qtos::redis {
namespace json = boost::json;

namespace {

// KEYS: version, latest, history. ARGV: next version, policy, updated_by, node, channel.
// The compare and the write happen inside one script, so no other client can store in between: two nodes can never
// both store version N+1. A losing attempt is recorded too, so the history shows every race's outcome.
constexpr std::string_view kCasScript = R"lua(
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if stored + 1 ~= want then
  redis.call('XADD', KEYS[3], '*', 'outcome', 'conflict', 'version', ARGV[1], 'stored', tostring(stored), 'by', ARGV[3], 'node', ARGV[4])
  return {0, stored}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'outcome', 'accepted', 'version', ARGV[1], 'stored', tostring(stored), 'by', ARGV[3], 'node', ARGV[4], 'policy', ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[1])
return {1, want}
)lua";

json::array set_json(const std::set<std::string>& s) {
  json::array a;
  for (const auto& x : s) a.emplace_back(x);
  return a;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

/// Field/value pairs of a stream entry reply ([id, [f1, v1, f2, v2, ...]]).
std::map<std::string, std::string> entry_fields(const RedisReply& entry) {
  std::map<std::string, std::string> out;
  if (entry.elements.size() < 2) return out;
  const auto& kv = entry.elements[1].elements;
  for (std::size_t i = 0; i + 1 < kv.size(); i += 2) out[kv[i].str] = kv[i + 1].str;
  return out;
}

}  // namespace

std::string policy_encode(const Policy& p) {
  json::object extra;
  for (const auto& [k, v] : p.extra) extra[k] = v;
  json::object o{{"risk_mode", std::string(enum_name(p.risk_mode))},
                 {"allowed_strategies", set_json(p.allowed_strategies)},
                 {"blocked_strategies", set_json(p.blocked_strategies)},
                 {"min_confidence", p.min_confidence},
                 {"max_risk_per_trade", p.max_risk_per_trade},
                 {"max_open_positions", p.max_open_positions},
                 {"max_leverage", p.max_leverage},
                 {"max_daily_drawdown_pct", p.max_daily_drawdown_pct},
                 {"max_open_drawdown_pct", p.max_open_drawdown_pct},
                 {"top_n_universe", p.top_n_universe},
                 {"extra", std::move(extra)},
                 {"version", p.version},
                 {"updated_at", p.updated_at},
                 {"updated_by", p.updated_by},
                 {"reason", p.reason}};
  return json::serialize(o);
}

Result<Policy> policy_decode(std::string_view text) {
  std::error_code ec;
  const json::value v = json::parse(text, ec);
  auto bad = [](const std::string& what) { return Error{ErrorCode::corrupt, "stored policy: " + what}; };
  if (ec || !v.is_object()) return bad("not a JSON object");
  const json::object& o = v.as_object();
  Policy p;
  try {
    auto num = [&](const char* k) { return json::value_to<double>(o.at(k)); };
    auto str = [&](const char* k) { return std::string(o.at(k).as_string()); };
    auto set = [&](const char* k) {
      std::set<std::string> s;
      for (const auto& x : o.at(k).as_array()) s.insert(std::string(x.as_string()));
      return s;
    };
    p.risk_mode = risk_mode_parse(str("risk_mode"));
    p.allowed_strategies = set("allowed_strategies");
    p.blocked_strategies = set("blocked_strategies");
    p.min_confidence = num("min_confidence");
    p.max_risk_per_trade = num("max_risk_per_trade");
    p.max_open_positions = o.at("max_open_positions").to_number<std::int64_t>();
    p.max_leverage = num("max_leverage");
    p.max_daily_drawdown_pct = num("max_daily_drawdown_pct");
    p.max_open_drawdown_pct = num("max_open_drawdown_pct");
    p.top_n_universe = o.at("top_n_universe").to_number<std::int64_t>();
    for (const auto& [k, val] : o.at("extra").as_object()) p.extra[std::string(k)] = std::string(val.as_string());
    p.version = o.at("version").to_number<std::uint64_t>();
    p.updated_at = o.at("updated_at").to_number<std::int64_t>();
    p.updated_by = str("updated_by");
    p.reason = str("reason");
  } catch (const std::exception& e) {
    return bad(std::string("a field is missing or has the wrong type (") + e.what() + ")");
  }
  return p;
}

PolicyKeys PolicyKeys::of(const std::string& ns) {
  return {ns + ":policy:version", ns + ":policy:latest", ns + ":policy:history", ns + ":policy:updated"};
}

RedisPolicyBackend::RedisPolicyBackend(RedisUrl url, std::string ns, std::string node, RedisOptions options)
    : url_(std::move(url)), ns_(std::move(ns)), node_(std::move(node)), keys_(PolicyKeys::of(ns_)), client_(url_, options) {
  if (ns_.empty()) throw std::invalid_argument("RedisPolicyBackend: the key namespace is empty");
  if (node_.empty()) throw std::invalid_argument("RedisPolicyBackend: the node name is empty");
}

std::string RedisPolicyBackend::describe() const { return "redis:" + url_.text() + " (" + ns_ + ")"; }

Result<std::optional<Policy>> RedisPolicyBackend::load_latest() {
  auto r = client_.command({"GET", keys_.latest});
  if (!r.ok()) return r.error();
  if (r.value().is_nil()) return std::optional<Policy>{};
  auto p = policy_decode(r.value().str);
  if (!p.ok()) return Error{p.error().code, describe() + " " + keys_.latest + ": " + p.error().message};
  return std::optional<Policy>(std::move(p).value());
}

Result<Unit> RedisPolicyBackend::append(const Policy& next) {
  auto r = client_.eval(kCasScript, {keys_.version, keys_.latest, keys_.history},
                        {std::to_string(next.version), policy_encode(next), next.updated_by, node_, keys_.channel});
  if (!r.ok()) return r.error();
  const auto& a = r.value().elements;
  if (a.size() != 2) return Error{ErrorCode::storage, describe() + ": unexpected reply of the compare-and-set script"};
  if (a[0].integer == 1) {
    own_version_.store(next.version, std::memory_order_release);
    return Unit{};
  }
  return Error{ErrorCode::conflict, "policy version " + std::to_string(next.version) + " cannot follow stored version " +
                                        std::to_string(a[1].integer) + " in " + describe()};
}

Result<std::vector<Policy>> RedisPolicyBackend::history(std::uint64_t from_version, std::size_t limit) {
  std::vector<Policy> out;
  std::string start = "-";
  while (out.size() < limit) {
    auto r = client_.command({"XRANGE", keys_.history, start, "+", "COUNT", "512"});
    if (!r.ok()) return r.error();
    const auto& entries = r.value().elements;
    for (const auto& e : entries) {
      auto f = entry_fields(e);
      if (f["outcome"] != "accepted") continue;
      auto p = policy_decode(f["policy"]);
      if (!p.ok()) return Error{p.error().code, describe() + " " + keys_.history + " entry " + e.elements[0].str + ": " + p.error().message};
      if (p.value().version >= from_version && out.size() < limit) out.push_back(std::move(p).value());
    }
    if (entries.size() < 512) break;
    start = "(" + entries.back().elements[0].str;  // exclusive start: the page after the last entry
  }
  return out;
}

Result<std::vector<PolicyAttempt>> RedisPolicyBackend::attempts() {
  auto r = client_.command({"XRANGE", keys_.history, "-", "+"});
  if (!r.ok()) return r.error();
  std::vector<PolicyAttempt> out;
  for (const auto& e : r.value().elements) {
    auto f = entry_fields(e);
    PolicyAttempt a;
    a.id = e.elements[0].str;
    a.outcome = f["outcome"];
    a.version = std::strtoull(f["version"].c_str(), nullptr, 10);
    a.stored = std::strtoull(f["stored"].c_str(), nullptr, 10);
    a.by = f["by"];
    a.node = f["node"];
    out.push_back(std::move(a));
  }
  return out;
}

json::value redis_node_health_json(const RedisNodeHealth& h) {
  return json::object{{"redis", h.state},
                      {"connected", h.connected},
                      {"error", h.error},
                      {"degraded_since_ms", h.degraded_since_ms},
                      {"reconnects", h.reconnects},
                      {"policy_applied_from_redis", h.applied},
                      {"policy_version", h.policy_version}};
}

RedisPolicySync::RedisPolicySync(RedisUrl url, std::string ns, PolicyStore& store, const RedisPolicyBackend& backend,
                                 EventBus* bus, RedisOptions options)
    : url_(std::move(url)), keys_(PolicyKeys::of(ns)), store_(store), backend_(backend), bus_(bus),
      announced_(store.current()), options_(options) {
  degraded_since_ms_ = redis_now_ms();
  thread_ = std::thread([this] { run(); });
}

RedisPolicySync::~RedisPolicySync() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

RedisNodeHealth RedisPolicySync::health() const {
  RedisNodeHealth h;
  h.connected = connected();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    h.error = h.connected ? "" : error_;
    h.degraded_since_ms = h.connected ? 0 : degraded_since_ms_;
  }
  h.state = h.connected ? "ok" : "degraded";
  h.reconnects = reconnects_.load(std::memory_order_relaxed);
  h.applied = applied_.load(std::memory_order_relaxed);
  h.policy_version = store_.version();
  return h;
}

void RedisPolicySync::set_degraded(const std::string& error) {
  const bool was = connected_.exchange(false, std::memory_order_acq_rel);
  std::lock_guard<std::mutex> lock(mutex_);
  if (was) {
    degraded_since_ms_ = redis_now_ms();
    spdlog::warn("redis policy link to {} lost: {}; keeping policy v{}, policy changes refused until it is back", url_.text(),
                 error, store_.version());
  }
  error_ = error;
}

void RedisPolicySync::catch_up() {
  auto changed = store_.refresh();
  // A broken command connection (Redis restarted) fails once and reconnects on the next command: try twice.
  if (!changed.ok()) changed = store_.refresh();
  if (!changed.ok()) {
    spdlog::warn("redis policy refresh from {} failed: {}", url_.text(), changed.error().message);
    return;
  }
  // Compared with what this node last announced, not with what refresh saw: a version the store adopted after
  // losing a race (PolicyStore::update on "conflict") is installed without an event and is announced here.
  const std::shared_ptr<const Policy> before = announced_;
  const std::shared_ptr<const Policy> after = store_.current();
  if (after->version <= before->version) return;
  announced_ = after;
  if (after->version == backend_.own_version()) return;  // this node's own write: PolicyStore published it
  applied_.fetch_add(1, std::memory_order_relaxed);
  if (!bus_) return;
  // One event per install, whatever number of versions were skipped while the link was down: `previous_version`
  // says where this node came from.
  PolicyUpdated ev{.version = after->version,
                   .previous_version = before->version,
                   .risk_mode = after->risk_mode,
                   .changed_fields = join(policy_changed_fields(*before, *after)),
                   .updated_by = after->updated_by,
                   .reason = after->reason};
  bus_->post(SourceName("policy-redis"), std::move(ev));
}

void RedisPolicySync::run() {
  auto backoff = options_.backoff_initial;
  bool ever_connected = false;
  while (!stop_.load(std::memory_order_acquire)) {
    std::string error;
    redisContext* c = redis_connect_raw(url_, options_, error);
    if (c) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "SUBSCRIBE %b", keys_.channel.data(), keys_.channel.size()));
      if (!r) {
        error = "SUBSCRIBE on " + url_.text() + " failed: " + std::string(c->errstr);
        redis_context_free(c);
        c = nullptr;
      } else {
        freeReplyObject(r);
      }
    }
    if (!c) {
      set_degraded(error);
      // Sleep the backoff in short steps so a stop is seen quickly.
      const auto until = std::chrono::steady_clock::now() + backoff;
      while (!stop_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      backoff = std::min(backoff * 2, options_.backoff_max);
      continue;
    }
    backoff = options_.backoff_initial;
    if (ever_connected) reconnects_.fetch_add(1, std::memory_order_relaxed);
    ever_connected = true;
    // Subscribed first, then caught up: a change stored in between is both read now and announced on the channel,
    // and the second sight of it is a version the store already holds (not posted twice).
    catch_up();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      error_.clear();
      degraded_since_ms_ = 0;
    }
    connected_.store(true, std::memory_order_release);
    if (reconnects_.load() > 0) spdlog::info("redis policy link to {} is back; policy v{}", url_.text(), store_.version());
    while (!stop_.load(std::memory_order_acquire)) {
      void* reply = nullptr;
      if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
        error = "reading from " + url_.text() + ": " + std::string(c->errstr);
        break;
      }
      if (reply) {
        freeReplyObject(reply);  // a message's payload is the version; refresh reads the policy itself
        catch_up();
        continue;
      }
      pollfd pfd{c->fd, POLLIN, 0};
      const int n = ::poll(&pfd, 1, 50);
      if (n < 0 && errno != EINTR) {
        error = "poll on " + url_.text() + " failed";
        break;
      }
      if (n > 0 && redisBufferRead(c) != REDIS_OK) {
        error = "connection to " + url_.text() + " lost: " + std::string(c->errstr[0] ? c->errstr : "closed");
        break;
      }
    }
    redis_context_free(c);
    if (!stop_.load(std::memory_order_acquire)) set_degraded(error);
  }
}

}  // namespace qtos::redis
