#pragma once
// A fake Binance (spot or USD-M) on loopback for the connector's tests: TLS with a certificate it generates (the
// client trusts it through its CA-file option), the subset of the REST API the connector uses, signature and
// timestamp checks as the venue does them, and faults injected on command.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qtos::test {

/// A fault applied to the next request matching `route` ("POST /fapi/v1/order").
struct FakeFault {
  enum class Kind {
    delay,         ///< carry the request out, answer after delay_ms (past the client's timeout)
    reset,         ///< carry it out (if `apply`), then close the connection without an answer
    http_status,   ///< answer `status` with `code`/`msg` (carried out first if `apply`): 5xx, 429, 418, 400 -1006...
    not_found,     ///< answer -2013 "Order does not exist." whatever the truth (a lookup that lags)
  };
  Kind kind = Kind::http_status;
  bool apply = false;          ///< carry the request out before the fault
  int delay_ms = 0;            ///< delay
  int status = 500;            ///< http_status
  int code = 0;                ///< the JSON error code (0: a body that is not Binance JSON)
  std::string msg;             ///< the JSON message
  int retry_after_s = -1;      ///< Retry-After header (-1: none)
};

/// One order at the fake venue.
struct FakeOrder {
  std::int64_t order_id = 0;
  std::string client_id, symbol, side, type, status;
  double qty = 0, price = 0, stop_price = 0, executed = 0, quote = 0;
  bool reduce_only = false;
};

/// One trade at the fake venue.
struct FakeTrade {
  std::int64_t id = 0, order_id = 0;
  std::string symbol;
  bool buy = true;
  double qty = 0, price = 0, commission = 0;
};

class FakeBinance {
 public:
  /// Starts on 127.0.0.1 (an ephemeral port), TLS unless `tls` is false; `futures`: the USD-M paths.
  FakeBinance(bool futures, std::string api_key, std::string secret, bool tls = true);
  ~FakeBinance();
  FakeBinance(const FakeBinance&) = delete;
  FakeBinance& operator=(const FakeBinance&) = delete;

  std::uint16_t port() const { return port_; }
  /// The PEM file of the server's self-signed certificate (for the client's CA-file option).
  const std::string& ca_file() const { return ca_file_; }
  /// Queues a fault for the next request on `route`.
  void fault(const std::string& route, FakeFault f);
  /// Server clock minus real clock, ms (clock skew).
  void skew_set(std::int64_t ms);
  /// Market orders fill at this price, split in `parts` trades.
  void price_set(const std::string& symbol, double price, int parts = 1);
  /// Trade queries answer every trade twice, newest first (duplicate and out-of-order reports).
  void duplicate_trades_set(bool on);
  /// Used weight reported in X-MBX-USED-WEIGHT-1M (it counts 1 per request from here).
  void used_weight_set(std::int64_t w);
  /// A closed kline the REST `klines` route serves (open time ms, close price; the other prices around it).
  void kline_add(const std::string& symbol, std::int64_t open_ms, std::int64_t interval_ms, double close);
  /// USD-M: every trade is also pushed as an ORDER_TRADE_UPDATE to the open user data streams (/ws/<listenKey>), as
  /// the venue does (off by default: the fault tests apply fills from REST).
  void user_events_set(bool on);
  /// A LIMIT order that crosses the price of price_set() fills at that price when placed, as at the venue (off by
  /// default: limit orders rest).
  void marketable_limits_set(bool on);
  /// Sends a text frame to every open WebSocket connection.
  void ws_send(const std::string& text);
  /// Drops every open WebSocket connection (the TCP connection closed without a close frame).
  void ws_drop();
  /// WebSocket connections accepted so far, and their request targets.
  std::vector<std::string> ws_targets() const;

  std::vector<FakeOrder> orders() const;
  std::vector<FakeTrade> trades() const;
  /// Signed net position of a symbol (futures) or base holding (spot).
  double position(const std::string& symbol) const;
  /// Requests received, as "METHOD /path", in order.
  std::vector<std::string> requests() const;
  /// How many of the requests were on `route`.
  int count(const std::string& route) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
  std::string ca_file_;
};

}  // namespace qtos::test
