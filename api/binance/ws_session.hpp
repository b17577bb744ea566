#pragma once
/// @file One reconnecting TLS WebSocket client on a thread of its own: the connection loop of the kline feed and of
/// the user data stream, written once. Each connection: resolve, TCP connect (10 s), TLS with SNI and a host-name
/// check, the WebSocket handshake, an optional hello (a request whose answer must be accepted), then reads until the
/// connection fails or stop(). Beast answers the venue's pings, pings an idle connection itself and fails one that
/// stays silent past `idle_timeout`. A lost connection is reopened after an exponential back-off with jitter in
/// [50%, 100%] (a fleet of clients does not reconnect in step); a connection that worked (a frame read, or open for
/// `backoff_max`) starts the back-off again from `backoff_min`.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "api/binance/https_client.hpp"

namespace qtos::binance {

/// How a stream reconnects and when it calls a silent connection dead: one block, carried as is by every stream's
/// options (the kline feed's, the user stream's) into its session.
struct WsReconnect {
  std::chrono::milliseconds backoff_min{500};     ///< first reconnect delay (before jitter)
  std::chrono::milliseconds backoff_max{30'000};  ///< longest reconnect delay
  std::chrono::milliseconds idle_timeout{60'000}; ///< silence (pongs included) that ends a connection
  std::uint64_t seed = 1;                         ///< back-off jitter (seeded: a test sees the same delays)
};

/// What one session connects to and what it does with a connection. Every callback runs on the session's thread.
struct WsSessionOptions {
  std::string name = "stream";      ///< how notes name it ("kline stream", "user stream")
  HttpEndpoint endpoint;            ///< wss host, port, CA file
  WsReconnect reconnect;            ///< back-off and idle timeout
  /// The request target of the next connection (called before each one; may do blocking REST calls, e.g. a
  /// listenKey; throws to fail this attempt, which is then retried after the back-off).
  std::function<std::string()> target;
  /// A message sent right after the handshake ("" or unset: none); its answer goes to `hello_check`.
  std::function<std::string()> hello;
  /// Throws when the hello's answer is a refusal (the attempt fails and is retried).
  std::function<void(const std::string&)> hello_check;
  /// The connection is open (hello accepted): `connects` counts such connections, 1 for the first.
  std::function<void(std::uint64_t connects)> on_open;
  /// One text frame; throws to drop the connection (e.g. the venue announced its end).
  std::function<void(const std::string&)> on_text;
  /// Runs every `periodic_every` while a connection is open (0: never), e.g. a listenKey keep-alive.
  std::chrono::milliseconds periodic_every{0};
  std::function<void()> periodic;    ///< the periodic task
  std::function<void(const std::string&)> on_note;  ///< "<name> lost (why): reconnecting in N ms"
};

/// The session. start() runs it until stop() (or destruction).
class WsSession {
 public:
  /// Checks the options (target and on_text set, 0 < backoff_min <= backoff_max, the CA file loads); throws
  /// std::invalid_argument naming the option.
  explicit WsSession(WsSessionOptions options);
  ~WsSession();
  WsSession(const WsSession&) = delete;
  WsSession& operator=(const WsSession&) = delete;

  /// Starts the thread (connects at once). A second call does nothing.
  void start();
  /// Stops: any wait is cut short, the socket closed, the thread joined. Safe to call twice.
  void stop();
  /// Connections opened so far (handshake and hello done).
  std::uint64_t connects() const { return connects_.load(); }

 private:
  struct Impl;
  WsSessionOptions options_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<std::uint64_t> connects_{0};
};

/// The delay before reconnect attempt `failures` (1 for the first after a working connection): backoff_min *
/// 2^(failures-1), capped at backoff_max, times `jitter` in [0.5, 1].
std::chrono::milliseconds ws_backoff_delay(std::chrono::milliseconds backoff_min, std::chrono::milliseconds backoff_max,
                                           int failures, double jitter);

}  // namespace qtos::binance
