#pragma once
/// @file The venue interface of the trading core: what the executor needs from any exchange (the paper exchange here,
/// the Binance connector later). Designed for a real venue: an order's outcome can be unknown (a timeout, a lost
/// answer) and is then reconciled with query(), never taken for a rejection; fills can be partial; every symbol has
/// filters (tick size, step size, minimum notional) that the venue enforces with its own rejections.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/util/enum_names.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/util/result.hpp"

namespace qtos {

/// What a venue trades.
enum class MarketKind : std::uint8_t { spot, linear_perpetual };
QTOS_ENUM_NAMES(MarketKind, "spot", "linear-perpetual");

/// An order's state at the venue, as the executor knows it.
enum class OrderStatus : std::uint8_t {
  pending_new,       ///< sent, no answer yet (or the answer was lost): in flight until reconciled
  accepted,          ///< the venue holds it, nothing filled yet
  partially_filled,  ///< part filled, the rest still working
  filled,            ///< completely filled
  canceled,          ///< cancelled (the filled part, if any, stands)
  rejected,          ///< refused by the venue (nothing filled)
  expired,           ///< ended by the venue without a fill (IOC remainder, a reduce-only order with nothing to reduce)
  denied             ///< refused before the venue by the Risk OS or a hook: nothing was sent
};
QTOS_ENUM_NAMES(OrderStatus, "PENDING_NEW", "NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED",
                "DENIED");

/// True for the states an order never leaves.
inline bool order_status_final(OrderStatus s) {
  return s == OrderStatus::filled || s == OrderStatus::canceled || s == OrderStatus::rejected ||
         s == OrderStatus::expired || s == OrderStatus::denied;
}

/// How long a limit order works.
enum class TimeInForce : std::uint8_t { gtc, ioc };
QTOS_ENUM_NAMES(TimeInForce, "GTC", "IOC");

/// A symbol's trading rules at the venue (0 in a field: no such rule).
struct SymbolFilters {
  double tick_size = 0;     ///< prices are multiples of this
  double step_size = 0;     ///< quantities are multiples of this (quantities are truncated, never rounded up)
  double min_qty = 0;       ///< smallest quantity
  double max_qty = 0;       ///< largest quantity (0: unlimited)
  double min_notional = 0;  ///< smallest price x quantity
};

/// `price` rounded to the nearest multiple of `tick` (unchanged when tick is 0).
double price_to_tick(double price, double tick);
/// `qty` truncated to a multiple of `step` towards zero (unchanged when step is 0); robust to binary representation
/// (0.3 / 0.1 stays 3 steps).
double qty_to_step(double qty, double step);
/// The filter an order violates, as the venue would say it ("LOT_SIZE: quantity 0.0015 is not a multiple of step
/// 0.001", "MIN_NOTIONAL: 4.2 < 5"), or nothing. `price` is the limit price, or the reference price of a market order.
std::optional<std::string> filters_violation(const SymbolFilters& f, double qty, double price);

/// An order as the executor sends it.
struct OrderRequest {
  std::uint64_t order_id = 0;      ///< the executor's id, unique for the life of the ledger
  std::string client_order_id;     ///< derived deterministically from order_id (order_client_id)
  StrategyId strategy;             ///< the strategy (or model) it is for
  Symbol symbol;                   ///< exchange symbol
  Side side = Side::buy;           ///< buy or sell
  OrderType type = OrderType::market;  ///< market, limit, stop-market, take-profit-market, market-on-close
  double qty = 0;                  ///< base quantity (> 0), or 0 when quote_qty sizes a market order
  double quote_qty = 0;            ///< market entries only: spend this much quote; the venue derives qty at the fill
  double price = 0;                ///< limit price (limit orders)
  double stop_price = 0;           ///< trigger price (stop-market, take-profit-market)
  bool reduce_only = false;        ///< only reduces a position (exits, stops, targets)
  double leverage = 1;             ///< linear perpetuals: leverage of the position it opens
  TimeInForce tif = TimeInForce::gtc;  ///< limit orders
};

/// The deterministic client order id of an internal order id ("qt-<id>"): a resend after a lost answer carries the
/// same id, so the venue refuses a duplicate instead of trading twice.
std::string order_client_id(std::uint64_t order_id);

/// What became of a submit or a cancel.
enum class SubmitOutcome : std::uint8_t { accepted, rejected, unknown };
QTOS_ENUM_NAMES(SubmitOutcome, "accepted", "rejected", "unknown");

/// The venue's answer to a submit or cancel.
struct SubmitResult {
  SubmitOutcome outcome = SubmitOutcome::accepted;  ///< accepted, rejected (nothing happens), unknown (reconcile)
  std::int32_t code = 0;                            ///< venue error code when rejected (Binance style: -1013, -2010...)
  std::string message;                              ///< venue message when rejected or unknown
};

/// One fill (execution) of an order.
struct Fill {
  std::uint64_t order_id = 0;   ///< the executor's order id
  std::uint64_t fill_id = 0;    ///< the venue's trade id (unique per venue)
  Symbol symbol;                ///< exchange symbol
  Side side = Side::buy;        ///< buy or sell
  double qty = 0;               ///< base quantity of this fill
  double price = 0;             ///< price of this fill (slippage included)
  double fee = 0;               ///< fee in quote asset
  bool maker = false;           ///< true: a resting limit order was hit
  TimeNs ts = 0;                ///< venue time of the fill
  double remaining_qty = 0;     ///< what is still to fill of the order (0: completely filled)
};

/// An order as the venue knows it (query, open orders, updates).
struct OrderState {
  OrderRequest request;                        ///< what was sent
  OrderStatus status = OrderStatus::accepted;  ///< where it stands
  double filled_qty = 0;                       ///< filled so far
  double avg_price = 0;                        ///< average fill price (0 before a fill)
  double fee = 0;                              ///< fees so far, quote asset
  TimeNs updated = 0;                          ///< venue time of the last change
  std::string reason;                          ///< why it was cancelled, rejected or expired
};

/// A position at the venue (spot: the base-asset holding, long only).
struct VenuePosition {
  Symbol symbol;                 ///< exchange symbol
  double qty = 0;                ///< signed: > 0 long, < 0 short
  double entry_price = 0;        ///< average entry price
  double leverage = 1;           ///< linear perpetuals
  double margin = 0;             ///< isolated margin held for it (quote)
  double liquidation_price = 0;  ///< 0 when none (spot, or unlevered)
  double mark_price = 0;         ///< the last price the venue marked it at
  double unrealized_pnl = 0;     ///< at mark_price
};

/// A balance of one asset.
struct Balance {
  std::string asset;  ///< e.g. USDT
  double free = 0;    ///< available
  double locked = 0;  ///< held for open orders or margin
};

/// Receives the venue's asynchronous reports, on the thread that drives the venue (the bus owner).
class ExchangeListener {
 public:
  virtual ~ExchangeListener() = default;
  /// A fill of one of our orders.
  virtual void on_fill(const Fill& fill) = 0;
  /// Any other change of one of our orders (accepted, cancelled, expired, rejected after acceptance).
  virtual void on_order_update(const OrderState& order) = 0;
};

/// A venue. All calls happen on the bus owner thread.
class Exchange {
 public:
  virtual ~Exchange() = default;
  /// A short name for logs and the ledger ("paper", "binance-futures-testnet").
  virtual std::string name() const = 0;
  /// Spot or linear perpetuals.
  virtual MarketKind market() const = 0;
  /// True for the paper exchange and testnets (AUTONOMY is refused on anything else).
  virtual bool simulated() const = 0;
  /// The quote asset balances are kept in ("USDT").
  virtual std::string quote_asset() const = 0;
  /// The symbol's filters; an error (code not_found) for a symbol the venue does not list.
  virtual Result<SymbolFilters> filters(const Symbol& symbol) const = 0;
  /// Sends an order. Rejected: nothing happens. Unknown: the order may or may not exist; the executor keeps it in
  /// flight and reconciles it with query().
  virtual SubmitResult submit(const OrderRequest& order) = 0;
  /// Cancels a working order. Cancelling an order that is already final is rejected with a code.
  virtual SubmitResult cancel(std::uint64_t order_id) = 0;
  /// Moves the trigger of a working STOP_MARKET or TAKE_PROFIT_MARKET order (a trailing stop). The order keeps its
  /// id; a venue without a native amend implements it as a cancel and a new order behind this call. Rejected (with
  /// the venue's code) for an unknown, final, triggered or other-type order, or a trigger that breaks the filters.
  virtual SubmitResult amend_stop(std::uint64_t order_id, double stop_price) = 0;
  /// The venue's view of an order (reconciliation); nothing when the venue does not know it.
  virtual std::optional<OrderState> query(std::uint64_t order_id) const = 0;
  /// Orders still working, by order id.
  virtual std::vector<OrderState> open_orders() const = 0;
  /// Open positions, by symbol.
  virtual std::vector<VenuePosition> positions() const = 0;
  /// Balances, by asset.
  virtual std::vector<Balance> balances() const = 0;
  /// Total account value in the quote asset at the venue's marks (cash + positions' value or margin + unrealised).
  virtual double equity() const = 0;
  /// What new orders may use, in the quote asset: balances()'s free quote balance, without building the list.
  virtual double quote_free() const = 0;
  /// Where fills and order updates go (null: nowhere). The listener must outlive the exchange or be reset first.
  virtual void listener_set(ExchangeListener* listener) = 0;
};

}  // namespace qtos
