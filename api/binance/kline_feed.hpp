#pragma once
/// @file The live market feed: Binance kline (and optionally book-ticker) streams over a TLS WebSocket, each closed
/// kline handed on as a `MarketBarClosed` — the event the replay publishes, so the executor cannot tell the two apart.
/// The connection (keep-alive pings, a silent or dropped connection reopened after a jittered back-off) is a
/// `WsSession`; the bars missed meanwhile are read over REST (`klines`) before the stream resumes. Each symbol's bars
/// are delivered once, in open-time order, never one still open.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/binance/https_client.hpp"
#include "api/binance/ws_session.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/exchange/exchange.hpp"

namespace qtos::binance {

/// A book-ticker update.
struct BookTicker {
  Symbol symbol;     ///< exchange symbol
  double bid = 0;    ///< best bid price
  double ask = 0;    ///< best ask price
};

/// How the feed runs.
struct KlineFeedOptions {
  MarketKind market = MarketKind::linear_perpetual;  ///< spot or USD-M (REST paths of the back-fill)
  HttpEndpoint ws;                  ///< stream host (wss), e.g. fstream.binance.com:443
  HttpEndpoint rest;                ///< REST host for the back-fill
  std::vector<std::string> symbols; ///< upper case (BTCUSDT)
  std::string interval = "1h";      ///< kline interval
  bool book_tickers = false;        ///< also subscribe to <symbol>@bookTicker
  WsReconnect reconnect;            ///< back-off, idle timeout (60 s), jitter seed
  std::chrono::milliseconds rest_timeout{5'000};  ///< one back-fill request
  std::function<std::int64_t()> now_ms;  ///< venue-time estimate in ms (default: the system clock)
  std::function<void(const MarketBarClosed&)> on_bar;  ///< every closed bar, on the feed's thread
  std::function<void(const BookTicker&)> on_book;      ///< book-ticker updates, on the feed's thread
  std::function<void(const std::string&)> on_note;     ///< reconnects and back-fills, for the log and health
};

/// The WebSocket stream path for `symbols` ("/stream?streams=btcusdt@kline_1h/ethusdt@kline_1h").
std::string kline_stream_target(const std::vector<std::string>& symbols, const std::string& interval, bool book_tickers);

/// The feed. start() runs it on its own thread until stop().
class KlineFeed {
 public:
  /// Checks the options (symbols, a known interval, callbacks); throws std::invalid_argument naming the option.
  explicit KlineFeed(KlineFeedOptions options);
  ~KlineFeed();
  KlineFeed(const KlineFeed&) = delete;
  KlineFeed& operator=(const KlineFeed&) = delete;

  /// Starts the feed thread (connects, back-fills from `since_ms` per symbol when given, streams).
  void start(std::map<std::string, std::int64_t> last_open_ms = {});
  /// Stops it and joins the thread (any wait is cut short).
  void stop();
  /// Connections opened so far.
  std::uint64_t connects() const;
  /// Bars delivered through REST back-fill so far.
  std::uint64_t backfilled() const { return backfilled_.load(); }

 private:
  struct Impl;
  KlineFeedOptions options_;
  std::unique_ptr<Impl> impl_;
  bool started_ = false;
  std::atomic<std::uint64_t> backfilled_{0};
};

}  // namespace qtos::binance
