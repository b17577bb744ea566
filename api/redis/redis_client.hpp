#pragma once
/// @file A small synchronous Redis client on hiredis (docs/SCALE_OUT.md): one connection, reconnected on demand with
/// exponential backoff, replies copied into plain values. hiredis stays inside api/redis; nothing in runtime/ sees it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/util/result.hpp"

struct redisContext;

namespace qtos::redis {

/// Where a Redis server is: redis://[:password@]host[:port][/db].
struct RedisUrl {
  std::string host = "127.0.0.1";  ///< host name or IPv4/IPv6 address
  int port = 6379;                 ///< TCP port
  int db = 0;                      ///< logical database (SELECT)
  std::string password;            ///< AUTH password; empty: none
  /// The URL without the password ("redis://host:port/db"), for messages and logs.
  std::string text() const;
};

/// Parses `url`; throws std::invalid_argument naming `what`, the URL (password hidden) and the expected form.
RedisUrl redis_url_parse(std::string_view url, std::string_view what = "--redis");

/// Timeouts and reconnect pacing.
struct RedisOptions {
  std::chrono::milliseconds connect_timeout{500};   ///< TCP connect
  std::chrono::milliseconds command_timeout{2000};  ///< one reply (a blocking command adds its own block time)
  std::chrono::milliseconds backoff_initial{50};    ///< first wait after a failed connect
  std::chrono::milliseconds backoff_max{2000};      ///< the wait doubles up to this
};

/// One reply, copied out of hiredis.
struct RedisReply {
  /// RESP2 reply kinds.
  enum class Kind : std::uint8_t { nil, integer, string, status, error, array };
  Kind kind = Kind::nil;                ///< what this is
  std::int64_t integer = 0;             ///< for Kind::integer
  std::string str;                      ///< for string, status and error
  std::vector<RedisReply> elements;     ///< for Kind::array

  /// True for a nil reply (a missing key, a timed-out blocking read).
  bool is_nil() const { return kind == Kind::nil; }
  /// The reply as text: a string or status as is, an integer in decimal, "" for nil.
  std::string text() const;
};

/// A connection to one server. Thread-safe (one command at a time); give a thread that blocks (XREADGROUP BLOCK,
/// BLPOP) its own client.
class RedisClient {
 public:
  /// Connects lazily: the first command connects.
  explicit RedisClient(RedisUrl url, RedisOptions options = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  /// Runs one command. Errors (code "storage"): the server is unreachable (connect refused, or still inside the
  /// backoff after a failed connect), the connection broke (the command may or may not have run), or the server
  /// answered with an error reply (its text is the message).
  Result<RedisReply> command(const std::vector<std::string>& argv);
  /// Like command() for a command that blocks on the server up to `block` (XREADGROUP BLOCK, BLPOP).
  Result<RedisReply> command_blocking(const std::vector<std::string>& argv, std::chrono::milliseconds block);
  /// Runs a Lua script (EVAL) with its keys and arguments.
  Result<RedisReply> eval(std::string_view script, const std::vector<std::string>& keys, const std::vector<std::string>& args);
  /// Whether the last command reached the server.
  bool connected() const;
  /// The last connection or I/O error ("" when the last command reached the server).
  std::string last_error() const;
  /// Drops the connection now (the next command reconnects, without waiting for the backoff).
  void disconnect();
  /// The server's URL.
  const RedisUrl& url() const { return url_; }

 private:
  Result<RedisReply> run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);
  bool ensure_connected(std::string& error);
  void drop(const std::string& error);

  RedisUrl url_;
  RedisOptions options_;
  mutable std::mutex mutex_;
  redisContext* ctx_ = nullptr;
  std::string last_error_;
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_attempt_{};
};

/// Opens a raw hiredis connection (for a subscriber that reads pushed messages itself): AUTH and SELECT done.
/// Returns null and sets `error` on failure. The caller frees it with redis_context_free.
redisContext* redis_connect_raw(const RedisUrl& url, const RedisOptions& options, std::string& error);
/// Frees a context from redis_connect_raw (null is fine).
void redis_context_free(redisContext* ctx);
/// Copies a hiredis reply object into a RedisReply.
RedisReply redis_reply_copy(const void* reply);

/// Milliseconds since the Unix epoch (heartbeats and job stamps).
std::int64_t redis_now_ms();

}  // namespace qtos::redis
