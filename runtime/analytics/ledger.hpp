#pragma once
/// @file The ledger: orders (with their decision traces), fills, closed trades, open positions and the equity curve
/// of one trading run, in SQLite through runtime/store (WAL, application id kAppIdLedger, schema versions). Writes are
/// batched into one transaction that commit() closes (the executor commits at the end of every bar cycle), so a
/// kill -9 loses at most the cycle in progress and never leaves half a cycle.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/bus/events.hpp"
#include "runtime/exchange/exchange.hpp"
#include "runtime/executor/decision_trace.hpp"
#include "runtime/store/sqlite_db.hpp"

namespace qtos {

/// Why an order was sent.
/// Why an order was sent (new values go last: the value is stored in ledgers). SUBSYSTEM_EXIT: an AI subsystem's exit
/// (PIL's TOXIC classification).
enum class OrderPurpose : std::uint8_t { entry, exit, stop_loss, take_profit, trailing_stop, risk_exit, end_of_replay, manual, subsystem_exit };
QTOS_ENUM_NAMES(OrderPurpose, "ENTRY", "EXIT", "STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP", "RISK_EXIT", "END_OF_REPLAY",
                "MANUAL", "SUBSYSTEM_EXIT");

/// An order (or a denial, status DENIED) and everything known about it.
struct OrderRecord {
  OrderRequest request;                          ///< what was (or would have been) sent; request.order_id is the key
  OrderPurpose purpose = OrderPurpose::entry;    ///< why
  std::uint64_t position_id = 0;                 ///< the position it opens or closes (0: none yet)
  OrderStatus status = OrderStatus::pending_new; ///< where it stands
  double filled_qty = 0;                         ///< filled so far
  double avg_price = 0;                          ///< average fill price
  double fee = 0;                                ///< fees so far
  TimeNs created = 0;                            ///< clock time of the decision
  TimeNs updated = 0;                            ///< clock time of the last change
  std::optional<DenyReason> deny_reason;         ///< set when DENIED
  std::int32_t venue_code = 0;                   ///< the venue's code when REJECTED
  std::string detail;                            ///< denial detail, venue message, cancel reason
  std::uint64_t policy_version = 0;              ///< the policy the decision was taken under
  double confidence = 0;                         ///< the signal's confidence (after adjustment)
  DecisionTrace trace;                           ///< the hook decisions that shaped it, in order
  std::uint32_t repeats = 0;                     ///< a denial that repeated (same strategy, symbol, side and reason,
                                                 ///< no order in between): how many more times (one row, `updated`
                                                 ///< at the last; no new order id)
};

/// One fill.
struct FillRecord {
  Fill fill;             ///< as the venue reported it
  StrategyId strategy;   ///< the order's strategy
};

/// A closed position (a round trip).
struct ClosedTrade {
  std::uint64_t position_id = 0;   ///< the position
  StrategyId strategy;             ///< strategy (or model) that opened it
  Symbol symbol;                   ///< exchange symbol
  Side side = Side::buy;           ///< buy: long, sell: short
  double qty = 0;                  ///< base quantity at entry
  double entry_price = 0;          ///< average entry fill price
  double exit_price = 0;           ///< average exit fill price
  double fees = 0;                 ///< entry and exit fees
  double pnl = 0;                  ///< realised P&L after fees (quote)
  double ret = 0;                  ///< pnl / the capital committed at entry (the strategy's allocation)
  TimeNs entry_time = 0;           ///< time of the entry fill
  TimeNs exit_time = 0;            ///< time of the exit fill
  CloseReason reason = CloseReason::signal_exit;  ///< what closed it
  std::string classification;      ///< the last post-trade classification, if any (e.g. WINNER)
};

/// An open position as the executor tracks it (restored on restart).
struct PositionRecord {
  std::uint64_t position_id = 0;   ///< the position
  StrategyId strategy;             ///< strategy (or model) that opened it
  Symbol symbol;                   ///< exchange symbol
  Side side = Side::buy;           ///< buy: long, sell: short
  double qty = 0;                  ///< base quantity (> 0)
  double entry_price = 0;          ///< average entry fill price
  double entry_fee = 0;            ///< fee of the entry fill
  TimeNs entry_time = 0;           ///< time of the entry fill
  double stop_price = 0;           ///< current protective stop (0: none)
  double take_price = 0;           ///< current target (0: none)
  double leverage = 1;             ///< leverage
  std::int32_t bars_held = 0;      ///< bars since entry
};

/// One point of the equity curve (one per bar time).
struct EquityPoint {
  TimeNs ts = 0;                   ///< bar close time
  double equity = 0;               ///< account value (quote)
  double cash = 0;                 ///< free quote balance (Exchange::quote_free)
  double exposure = 0;             ///< gross notional of open positions / equity
  std::int32_t open_positions = 0; ///< positions open at ts
  RiskMode risk_mode = RiskMode::normal;  ///< policy risk mode at ts
  Regime regime = Regime::unknown; ///< market regime at ts
  std::string trading_state;       ///< Risk OS state ("ACTIVE", "REDUCING", "HALTED")
};

/// Filter of ledger order reads.
struct OrderQuery {
  std::optional<OrderStatus> status;  ///< only this status
  std::string symbol;                 ///< only this symbol ("" all)
  std::string strategy;               ///< only this strategy ("" all)
  std::int64_t limit = -1;            ///< newest first, at most this many (-1: all)
};

/// The ledger of one run (or one live deployment).
class Ledger {
 public:
  /// Opens (creating with OpenMode::create) the ledger at `path`; ":memory:" for tests. Throws store::StoreError
  /// naming the path when the file is not a ledger, is damaged, or is newer than this build.
  explicit Ledger(const std::string& path, store::OpenMode mode = store::OpenMode::create);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  /// Inserts or replaces an order (key: request.order_id).
  void order_put(const OrderRecord& order);
  /// Appends a fill (a fill id seen before is ignored: a venue may report it twice).
  void fill_add(const FillRecord& fill);
  /// Appends a closed trade and removes its open position.
  void trade_add(const ClosedTrade& trade);
  /// Inserts or replaces an open position.
  void position_put(const PositionRecord& position);
  /// Removes an open position (no effect when absent).
  void position_remove(std::uint64_t position_id);
  /// Appends a point of the equity curve.
  void equity_add(const EquityPoint& point);
  /// Sets a run attribute (seed, data, stage, replay position...).
  void meta_put(const std::string& key, const std::string& value);
  /// Commits the writes since the last commit (no effect when there were none).
  void commit();

  /// One order, or nothing.
  std::optional<OrderRecord> order_get(std::uint64_t order_id) const;
  /// Orders matching `q`, newest (highest id) first.
  std::vector<OrderRecord> orders(const OrderQuery& q = {}) const;
  /// Fills of one order (0: all fills), in fill order.
  std::vector<FillRecord> fills(std::uint64_t order_id = 0) const;
  /// Closed trades in exit order.
  std::vector<ClosedTrade> trades() const;
  /// Open positions by position id.
  std::vector<PositionRecord> positions() const;
  /// The equity curve in time order.
  std::vector<EquityPoint> equity_curve() const;
  /// A run attribute, or nothing.
  std::optional<std::string> meta_get(const std::string& key) const;
  /// The highest order id stored (0: none), so a restarted executor continues the numbering.
  std::uint64_t order_id_max() const;
  /// The highest position id stored (0: none).
  std::uint64_t position_id_max() const;
  /// The file.
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qtos
