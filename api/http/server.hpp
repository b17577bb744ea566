#pragma once
/// @file The HTTP server of the control API: Boost.Beast on a small thread pool, doing only I/O around
/// handle_request (api/http/handler.hpp) with limits and timeouts, plus the server-sent-events stream and the API
/// token file. Beast stays inside server.cpp and handler.cpp; this header shows none of it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api/http/control_plane.hpp"
#include "api/http/handler.hpp"

namespace qtos {
struct Config;
}

namespace qtos::api {

/// How the server listens and what it tolerates. Plain data.
struct ServerSettings {
  std::string address = "127.0.0.1";                ///< bind address; non-loopback needs a token (refused otherwise)
  std::uint16_t port = 8080;                         ///< 0 picks a free port (see Server::port)
  std::size_t threads = 2;                           ///< I/O threads
  std::size_t header_limit = 16 * 1024;              ///< bytes of request line + headers; more answers 431
  std::chrono::milliseconds read_timeout{10'000};    ///< a whole request from its first byte; then 408 and close
  std::chrono::milliseconds idle_timeout{60'000};    ///< keep-alive wait for a request's first byte; then close
  std::chrono::milliseconds write_timeout{10'000};   ///< one response (or one SSE frame) to be taken by the client
  std::size_t max_connections = 256;                 ///< open connections, SSE included; more get 503 and close
  std::size_t max_pipelined = 16;                    ///< requests answered from one burst of pipelined bytes
  std::chrono::milliseconds sse_poll{50};            ///< how often an event stream asks for new events
  std::chrono::milliseconds sse_heartbeat{15'000};   ///< a comment line on a quiet stream (finds dead clients)
  std::chrono::milliseconds stop_grace{5'000};       ///< stop() waits this long for in-flight responses
  ApiSettings api;                                   ///< token, body limit (64 KiB), JSON depth and hosts
};

/// The control API's server. start() binds and serves on its own threads; stop() (or the destructor) stops
/// accepting, lets in-flight responses finish, closes idle connections and event streams, and joins.
class Server {
 public:
  /// Checks the settings: throws std::invalid_argument naming the address when it is not a loopback address and
  /// no token is set, or when a limit is zero.
  Server(ControlPlane& plane, ServerSettings settings);
  /// Stops (see stop()).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and starts the I/O threads; throws std::runtime_error naming the address and the reason when the bind
  /// fails (port in use, address not local).
  void start();
  /// Graceful stop; idempotent. New requests on open connections answer 503 meanwhile.
  void stop();
  /// The bound port (the chosen one when the settings said 0); 0 before start().
  std::uint16_t port() const;
  /// Connections open now (SSE streams included).
  std::size_t connections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

/// True when `address` (an IPv4 or IPv6 literal, or "localhost") is a loopback address.
bool address_is_loopback(const std::string& address);

/// The API token from `<state_dir>/api_token`, created on first use (64 hex digits from the kernel's random source,
/// mode 0600, written to a temporary and renamed into place). Throws std::runtime_error naming the file when it
/// cannot be read or written, is empty, or can be read by anyone but its owner.
std::string api_token_load_or_create(const std::string& state_dir);

/// The token the API uses: QT_API_TOKEN (Config::api_token) when set, else api_token_load_or_create(state_dir).
std::string api_token_resolve(const Config& config);

}  // namespace qtos::api
