#include "api/redis/redis_client.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <thread>

#include <hiredis/hiredis.h>

namespace qtos::redis {
namespace {

std::optional<int> parse_port_or_db(std::string_view s, int lo, int hi) {
  int v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string context_error(const redisContext* c) {
  if (!c) return "cannot allocate a connection";
  return c->errstr[0] ? std::string(c->errstr) : "connection error " + std::to_string(c->err);
}

}  // namespace

std::string RedisUrl::text() const {
  std::string out = "redis://";
  if (!password.empty()) out += ":***@";
  if (host.find(':') != std::string::npos) {
    out += '[';
    out += host;
    out += ']';
  } else {
    out += host;
  }
  out += ':';
  out += std::to_string(port);
  if (db) {
    out += '/';
    out += std::to_string(db);
  }
  return out;
}

RedisUrl redis_url_parse(std::string_view url, std::string_view what) {
  const std::string expected = "; expected redis://[:password@]host[:port][/db] (port 1-65535, db 0-15)";
  auto shown = [&] {
    const auto at = url.rfind('@');
    return at == std::string_view::npos ? std::string(url) : "redis://***" + std::string(url.substr(at));
  };
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument(std::string(what) + " '" + shown() + "': " + why + expected);
  };
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) bad("not a redis:// URL");
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      const auto v = parse_port_or_db(db, 0, 15);
      if (!v) bad("database '" + std::string(db) + "' is not a number from 0 to 15");
      out.db = *v;
    }
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = cred.find(':');
    out.password = std::string(colon == std::string_view::npos ? cred : cred.substr(colon + 1));
  }
  std::string_view host = authority, port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad("unclosed '[' in the host");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad("unexpected text after the host");
      port = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) bad("no host");
  if (host.find_first_of(" \t/?#") != std::string_view::npos) bad("the host has a character that is not allowed");
  out.host = std::string(host);
  if (!port.empty() || authority.ends_with(':')) {
    const auto v = parse_port_or_db(port, 1, 65535);
    if (!v) bad("port '" + std::string(port) + "' is not a number from 1 to 65535");
    out.port = *v;
  }
  return out;
}

std::string RedisReply::text() const {
  if (kind == Kind::integer) return std::to_string(integer);
  return str;
}

RedisReply redis_reply_copy(const void* p) {
  const auto* r = static_cast<const redisReply*>(p);
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.kind = RedisReply::Kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.kind = RedisReply::Kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.kind = RedisReply::Kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.kind = RedisReply::Kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = RedisReply::Kind::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(redis_reply_copy(r->element[i]));
      break;
    default:
      out.kind = RedisReply::Kind::nil;
  }
  return out;
}

redisContext* redis_connect_raw(const RedisUrl& url, const RedisOptions& options, std::string& error) {
  redisContext* c = redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(options.connect_timeout));
  if (!c || c->err) {
    error = "cannot connect to " + url.text() + ": " + context_error(c);
    if (c) redisFree(c);
    return nullptr;
  }
  redisSetTimeout(c, to_timeval(options.command_timeout));
  auto setup = [&](std::vector<std::string> argv, const char* what) {
    std::vector<const char*> ptrs;
    std::vector<std::size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
    if (!r) {
      error = std::string(what) + " on " + url.text() + " failed: " + context_error(c);
      return false;
    }
    const bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok) error = std::string(what) + " on " + url.text() + " refused: " + std::string(r->str, r->len);
    freeReplyObject(r);
    return ok;
  };
  if ((!url.password.empty() && !setup({"AUTH", url.password}, "AUTH")) ||
      (url.db != 0 && !setup({"SELECT", std::to_string(url.db)}, "SELECT"))) {
    redisFree(c);
    return nullptr;
  }
  return c;
}

void redis_context_free(redisContext* ctx) {
  if (ctx) redisFree(ctx);
}

std::int64_t redis_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

RedisClient::RedisClient(RedisUrl url, RedisOptions options) : url_(std::move(url)), options_(options) {}

RedisClient::~RedisClient() { redis_context_free(ctx_); }

bool RedisClient::connected() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ctx_ != nullptr && last_error_.empty();
}

std::string RedisClient::last_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

void RedisClient::disconnect() {
  std::lock_guard<std::mutex> lock(mutex_);
  redis_context_free(ctx_);
  ctx_ = nullptr;
  next_attempt_ = {};
}

void RedisClient::drop(const std::string& error) {
  redis_context_free(ctx_);
  ctx_ = nullptr;
  last_error_ = error;
}

bool RedisClient::ensure_connected(std::string& error) {
  if (ctx_) return true;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) {
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now).count();
    error = url_.text() + " is unreachable (next attempt in " + std::to_string(wait) + " ms): " + last_error_;
    return false;
  }
  ctx_ = redis_connect_raw(url_, options_, error);
  if (!ctx_) {
    // Exponential backoff: a dead server is asked at most every backoff_max, not on every command.
    backoff_ = backoff_.count() == 0 ? options_.backoff_initial : std::min(backoff_ * 2, options_.backoff_max);
    next_attempt_ = now + backoff_;
    last_error_ = error;
    return false;
  }
  backoff_ = std::chrono::milliseconds{0};
  last_error_.clear();
  return true;
}

Result<RedisReply> RedisClient::run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string error;
  if (!ensure_connected(error)) return Error{ErrorCode::storage, "redis: " + error};
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  redisSetTimeout(ctx_, to_timeval(timeout));
  auto* r = static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
  if (!r) {
    // The connection is unusable after an I/O error or a timeout: drop it; the next command reconnects.
    const std::string e = url_.text() + ": " + (argv.empty() ? std::string("?") : argv.front()) + " failed: " + context_error(ctx_);
    drop(e);
    return Error{ErrorCode::storage, "redis: " + e};
  }
  RedisReply out = redis_reply_copy(r);
  freeReplyObject(r);
  last_error_.clear();
  if (out.kind == RedisReply::Kind::error)
    return Error{ErrorCode::storage, "redis " + url_.text() + ": " + (argv.empty() ? std::string("?") : argv.front()) + ": " + out.str};
  return out;
}

Result<RedisReply> RedisClient::command(const std::vector<std::string>& argv) { return run(argv, options_.command_timeout); }

Result<RedisReply> RedisClient::command_blocking(const std::vector<std::string>& argv, std::chrono::milliseconds block) {
  return run(argv, options_.command_timeout + block);
}

Result<RedisReply> RedisClient::eval(std::string_view script, const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> argv{"EVAL", std::string(script), std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return command(argv);
}

}  // namespace qtos::redis
