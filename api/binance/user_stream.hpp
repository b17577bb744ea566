#pragma once
/// @file The user data stream: order and fill events of the account, pushed by the venue. USD-M: a listenKey from
/// REST (kept alive with a PUT every `keepalive`), then wss://<host>/ws/<listenKey>. Spot (its listenKey endpoints
/// were retired in 2026): a WebSocket API connection that subscribes with `userDataStream.subscribe.signature`.
/// Events are handed on as text, on the stream's thread: the owner thread applies them with
/// BinanceExchange::user_event() (which applies each trade once). After every reconnect `on_reconnected` is called:
/// events may have been missed, so the owner reconciles (trading is halted until that succeeds). The connection and
/// its reconnects are a `WsSession`.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/binance/https_client.hpp"
#include "api/binance/ws_session.hpp"
#include "api/binance/signing.hpp"
#include "runtime/exchange/exchange.hpp"

namespace qtos::binance {

/// How the user stream runs.
struct UserStreamOptions {
  MarketKind market = MarketKind::linear_perpetual;  ///< USD-M (listenKey) or spot (WebSocket API subscription)
  HttpEndpoint ws;              ///< USD-M: the stream host (fstream.binance.com); spot: the WebSocket API host
  HttpEndpoint rest;            ///< USD-M: the REST host of the listenKey endpoints
  std::string api_key;          ///< X-MBX-APIKEY / apiKey
  const Signer* signer = nullptr;  ///< spot: signs the subscription (must outlive the stream)
  std::function<std::int64_t()> now_ms;  ///< venue-time estimate, ms (spot subscription timestamp)
  /// Back-off, jitter seed and the idle timeout (120 s: the user stream is quiet between account events).
  WsReconnect reconnect{.idle_timeout = std::chrono::milliseconds(120'000)};
  std::chrono::milliseconds keepalive{30 * 60'000};  ///< USD-M listenKey keep-alive period
  std::chrono::milliseconds rest_timeout{5'000};  ///< one listenKey request
  std::function<void(const std::string&)> on_event;  ///< one event (JSON text), on the stream thread
  std::function<void()> on_reconnected;              ///< after each reconnect (not the first connect)
  std::function<void(const std::string&)> on_note;   ///< reconnects, refusals, expiries
};

/// The stream. start() runs it on its own thread until stop().
class UserStream {
 public:
  /// Checks the options; throws std::invalid_argument naming the option.
  explicit UserStream(UserStreamOptions options);
  ~UserStream();
  UserStream(const UserStream&) = delete;
  UserStream& operator=(const UserStream&) = delete;
  /// Starts the stream thread.
  void start();
  /// Stops it and joins the thread.
  void stop();
  /// Connections that reached the subscribed state.
  std::uint64_t connects() const;

 private:
  struct Impl;
  UserStreamOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qtos::binance
