#pragma once
/// @file The Binance connector: spot and USD-M futures over signed REST (api/binance/https_client.hpp), behind the
/// `Exchange` interface the executor uses for the paper exchange. What it guarantees (docs/EXCHANGE.md):
/// - an order that breaks a symbol filter is denied before any network call; quantities are truncated to the step,
///   prices rounded to the tick, and sent as decimal text;
/// - `newClientOrderId` is `<prefix>-<order id>` (deterministic), so a lookup after a lost answer finds the order and a
///   duplicate can never trade twice; an order is never resent blindly;
/// - a timeout, a reset, an HTTP 5xx or the venue's -1006/-1007 leave the order PENDING (SubmitOutcome::unknown) and
///   query() looks it up by client id; "no such order" is retried `lookup_attempts` times before the order is declared
///   not placed, with an audit note;
/// - a -1021 (timestamp outside recvWindow) resynchronises with the server clock and retries once (the venue refused
///   the request before processing it);
/// - used-weight and order-count headers are tracked; a 429 honours Retry-After (new orders refused locally until
///   then, cancels still go out); a 418 pulls the connector's brake and raises a health alert;
/// - trading is HALTED until reconcile() has succeeded (at start and after every reconnect);
/// - fills are applied once per trade id, and an order's cumulative filled quantity never decreases.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/binance/https_client.hpp"
#include "api/binance/signing.hpp"
#include "api/binance/symbol_rules.hpp"
#include "runtime/exchange/exchange.hpp"

namespace qtos::binance {

/// Which Binance environment.
enum class Env : std::uint8_t { testnet, mainnet };
QTOS_ENUM_NAMES(Env, "testnet", "mainnet");

/// The environment a REST host belongs to (testnet.binance.vision, testnet.binancefuture.com, demo-*.binance.com:
/// testnet; *.binance.com: mainnet); nothing for any other host (a loopback test server).
std::optional<Env> env_of_host(const std::string& host);

/// How the connector runs.
struct BinanceOptions {
  MarketKind market = MarketKind::linear_perpetual;  ///< spot or USD-M futures
  Env env = Env::testnet;                            ///< the environment the keys and URL belong to
  HttpEndpoint rest;                                 ///< REST base (https)
  std::string api_key;                               ///< X-MBX-APIKEY (never logged)
  std::string quote_asset = "USDT";                  ///< balances and equity in this asset
  std::string client_prefix = "qt";                  ///< newClientOrderId = prefix + "-" + order id ([A-Za-z0-9_-], <= 20)
  std::vector<std::string> symbols;                  ///< symbols traded (exchangeInfo, leverage, dead-man switch); empty: all
  std::int64_t recv_window_ms = 5000;                ///< recvWindow, 1..60000
  std::chrono::milliseconds timeout{5000};           ///< one request's deadline
  std::int32_t lookup_attempts = 5;                  ///< "no such order" answers before an unknown order is declared not placed
  std::chrono::milliseconds lookup_pause{300};       ///< between those lookups
  double leverage = 1;                               ///< USD-M: leverage set per symbol before its first order
  bool isolated_margin = false;                      ///< USD-M: ISOLATED (true) or CROSSED margin, set with the leverage
  std::int32_t dead_man_seconds = 0;                 ///< USD-M: countdown cancel-all armed by poll() (0: off)
  double weight_guard = 0.9;                         ///< new orders refused locally above this share of the weight limit
  /// The account reads (equity, balances, free cash, positions) answer the last good read while it is younger than
  /// this and nothing has happened since (an order sent, a fill, a user-stream event); 0: every read asks the venue.
  /// One bar's cycle reads the equity several times (Risk OS, Portfolio Balancer, sizing), one REST call each without it.
  std::chrono::milliseconds account_max_age{1000};
  std::function<void(const std::string&)> health_alert;  ///< called on a 418 ban and on other alarms
  std::function<std::int64_t()> now_ms;              ///< local wall clock in ms (default: the system clock)
  std::function<void(std::chrono::milliseconds)> sleep;  ///< pause between lookups (default: this thread sleeps)
};

/// What reconcile() found.
struct ReconcileReport {
  std::vector<OrderState> imported;    ///< open orders with our prefix that the caller did not know (to be adopted)
  std::vector<OrderState> finished;    ///< orders the caller thought working that the venue has ended (final state)
  std::vector<std::uint64_t> unknown;  ///< orders the caller thought working that the venue does not know
  std::vector<VenuePosition> positions;  ///< the venue's positions
};

/// Rate-limit counters from the last answers.
struct RateState {
  std::map<std::string, std::int64_t> used;  ///< header suffix ("weight-1m", "order-count-10s") -> value
  std::int64_t weight_limit_1m = 0;          ///< REQUEST_WEIGHT per minute from exchangeInfo (0: unknown)
  std::chrono::steady_clock::time_point retry_after{};  ///< no new order before this (a 429's Retry-After)
  bool banned = false;                        ///< a 418 was received: the brake is on
};

/// The connector. All calls on the bus owner thread (the REST calls block it for at most `timeout` each).
class BinanceExchange final : public Exchange {
 public:
  /// Builds the connector (no network yet); throws std::invalid_argument naming the option when the options are
  /// unusable (recvWindow outside 1..60000, a bad client prefix, an HTTP URL for a venue host, a key of one
  /// environment with a host of the other).
  BinanceExchange(BinanceOptions options, Signer signer);
  ~BinanceExchange() override;

  /// Synchronises the clock, loads the symbols' rules and reconciles (nothing known yet); trading starts only when
  /// this succeeds. An error says what failed (the connector stays HALTED).
  Result<Unit> start();
  /// Clears the brake of a 418 whose Retry-After has passed (refused before then); fetches open orders, the fills
  /// of `working` orders (those the ledger holds as not final) and positions; reports what the ledger does not know and
  /// what the venue has ended (their missing fills go to the listener first). Trading is HALTED from the call until it
  /// succeeds.
  Result<ReconcileReport> reconcile(const std::vector<OrderRequest>& working);
  /// The periodic pump: fills and state changes of working orders (by REST), and the dead-man switch's re-arm.
  void poll();
  /// Applies one user-data-stream event (USD-M ORDER_TRADE_UPDATE, spot executionReport, bare or wrapped in the
  /// WebSocket API's {"event": ...}): a trade id seen before (from the stream or from REST) is not applied again, the
  /// cumulative filled quantity never decreases, a final state is never left. False when the event is not about a
  /// working order of this connector (reconcile() adopts those). On the owner thread, like every other call.
  bool user_event(const std::string& json);
  /// True while new orders are refused: not reconciled yet, or the brake is on (a 418).
  bool halted() const { return halted_ || rate_.banned; }
  /// The reason trading is halted ("" when it is not).
  std::string halt_reason() const;
  /// Server time minus local time, ms (from the last sync).
  std::int64_t clock_offset_ms() const { return offset_ms_; }
  /// Re-reads the server time.
  Result<Unit> time_sync();
  /// Rate-limit counters.
  const RateState& rate() const { return rate_; }
  /// Audit notes (declared-not-placed orders, bans, resyncs), oldest first.
  const std::vector<std::string>& audit() const { return audit_; }
  /// Sets the price market orders are checked against for the notional filter (the last close of the symbol).
  void reference_price_set(const Symbol& symbol, double price) { ref_price_[symbol.str()] = price; }
  /// The client order id of an internal order id.
  std::string client_id(std::uint64_t order_id) const;
  /// The internal order id of a client id with our prefix (nothing for anyone else's).
  std::optional<std::uint64_t> order_id_of(const std::string& client_id) const;
  /// The HTTP client (connection counts for tests).
  const HttpsClient& http() const { return *http_; }

  std::string name() const override;
  MarketKind market() const override { return options_.market; }
  bool simulated() const override { return options_.env == Env::testnet; }
  std::string quote_asset() const override { return options_.quote_asset; }
  Result<SymbolFilters> filters(const Symbol& symbol) const override;
  SubmitResult submit(const OrderRequest& order) override;
  SubmitResult cancel(std::uint64_t order_id) override;
  SubmitResult amend_stop(std::uint64_t order_id, double stop_price) override;
  std::optional<OrderState> query(std::uint64_t order_id) const override;
  std::vector<OrderState> open_orders() const override;
  /// The account reads below ask the venue unless the last good read is younger than `account_max_age` and nothing
  /// has happened since; when a read fails they answer the last good one (noted once per streak of failures), never
  /// an empty account. reconcile() always reads afresh.
  std::vector<VenuePosition> positions() const override;
  std::vector<Balance> balances() const override;
  double equity() const override;
  double quote_free() const override;
  void listener_set(ExchangeListener* listener) override { listener_ = listener; }

 private:
  /// One REST answer, classified.
  struct Reply {
    enum class Kind { ok, venue_error, unknown, not_sent, rate_limited, banned } kind = Kind::ok;
    int http = 0;
    int code = 0;
    std::string message;
    std::string body;
  };
  enum class Call { query, order, cancel };
  /// What the connector knows of one of our orders.
  struct Track {
    OrderRequest request;
    std::string client_id;        // the live client id (an amended stop gets a suffix)
    OrderStatus status = OrderStatus::pending_new;
    OrderStatus reported = OrderStatus::pending_new;  // the last state the executor was told
    double cum_qty = 0;           // never decreases
    double cum_quote = 0;
    double fee = 0;
    std::set<std::uint64_t> trades;  // trade ids applied
    std::int32_t amends = 0;
    std::string reason;
  };

  Reply call(const std::string& method, const std::string& path, Params params, bool is_signed, Call kind) const;
  Reply call_once(const std::string& method, const std::string& path, const Params& params, bool is_signed) const;
  void headers_take(const HttpReply& r) const;
  std::string path(const char* spot, const char* futures) const;
  SubmitResult place(Track& t, const PreparedOrder& p);
  Result<Unit> symbol_setup(const std::string& symbol);
  Result<Unit> rules_load();
  void prices_load();
  std::optional<OrderState> state_from_json(const std::string& body) const;
  void order_absorb(const OrderState& s) const;
  void trades_fetch(Track& t) const;
  OrderState state_of(const Track& t) const;
  double reference_price(const std::string& symbol) const;
  /// One account read: balances, equity and the quote asset's free amount (nullopt when the read failed).
  struct Account {
    std::vector<Balance> balances;
    double equity = 0;
    double quote_free = 0;
  };
  std::optional<Account> account_read() const;
  std::optional<std::vector<VenuePosition>> positions_read() const;  ///< USD-M only
  /// The last good read while it is fresh (see BinanceOptions::account_max_age), else a read.
  std::optional<Account> account_recent() const;
  std::optional<std::vector<VenuePosition>> positions_recent() const;
  bool fresh(std::int64_t read_at_ms) const;
  /// Something changed the account (an order sent, a fill, a user-stream event): the next read asks the venue.
  void account_stale() const { account_at_ms_ = positions_at_ms_ = -1; }
  std::vector<VenuePosition> spot_positions(const std::vector<Balance>& balances) const;
  void account_failed(const std::string& what) const;
  void note(const std::string& text) const;
  std::int64_t now_ms() const;

  BinanceOptions options_;
  Signer signer_;
  std::unique_ptr<HttpsClient> http_;
  ExchangeListener* listener_ = nullptr;
  std::map<std::string, SymbolRules> rules_;
  std::set<std::string> set_up_;  // USD-M symbols whose leverage and margin type are set
  mutable std::map<std::uint64_t, Track> tracks_;
  mutable std::map<std::uint64_t, std::string> venue_ids_;  // the venue's orderId of each tracked order
  mutable std::map<std::uint64_t, double> venue_qty_;       // the venue's executedQty (the largest reported)
  mutable std::map<std::string, double> ref_price_;
  mutable RateState rate_;
  mutable std::vector<std::string> audit_;
  mutable std::int64_t offset_ms_ = 0;
  mutable std::optional<Account> last_account_;                    // the last good account read
  mutable std::optional<std::vector<VenuePosition>> last_positions_;  // the last good USD-M positions read
  mutable std::int64_t account_streak_ = 0;                        // failed account reads since the last good one
  mutable std::int64_t account_at_ms_ = -1;                        // when last_account_ was read (-1: stale)
  mutable std::int64_t positions_at_ms_ = -1;                      // when last_positions_ was read (-1: stale)
  bool halted_ = true;
  std::chrono::steady_clock::time_point dead_man_armed_{};
};

}  // namespace qtos::binance
