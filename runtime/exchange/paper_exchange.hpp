#pragma once
/// @file The paper exchange, the embedded default venue: spot or linear perpetuals matched against closed bars.
/// Fill model (docs/TRADING.md): a market order fills at the next bar's open; stop-market and take-profit-market
/// orders trigger on the bar's range (an adverse stop before a target on the same bar) and fill at the trigger, or at
/// the open when the bar gaps through it; limit orders fill when the price crosses them (at the limit, or the open
/// when it gaps through); market-on-close orders fill at the bar's close. Slippage on every non-limit fill is the
/// backtester's (kernels::fill_slippage: a fixed fraction plus a fraction of the previous bar's spread proxy) plus
/// an impact term by size over the bar's volume; fills are capped at a fraction of the bar's volume (partial fills).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "cpu/kernels/gaps.hpp"
#include "runtime/exchange/exchange.hpp"

namespace qtos {

/// How the paper exchange fills and charges.
struct PaperExchangeConfig {
  MarketKind market = MarketKind::linear_perpetual;  ///< spot (long only) or linear perpetuals (long and short)
  std::string quote_asset = "USDT";  ///< the asset balances are kept in
  double initial_balance = 10'000;   ///< starting quote balance
  double taker_fee = 0.0004;         ///< fraction of notional for market, stop, take-profit and market-on-close fills
  double maker_fee = 0.0002;         ///< fraction of notional for resting limit fills
  double slippage = 0.0002;          ///< fixed adverse fraction of the price per non-limit fill
  double slippage_spread = 0.0;      ///< plus this fraction of the previous bar's Corwin-Schultz spread proxy
  double impact = 0.0;               ///< plus impact x (fill qty / bar volume) (0: no impact term)
  double participation = 0.0;        ///< at most this fraction of a bar's volume per order per bar (0: no cap)
  double maintenance_margin = 0.005; ///< linear perpetuals: maintenance margin rate (liquidation price)
  double max_leverage = 125;         ///< the venue's leverage limit
  double funding_rate_8h = 0.0;      ///< linear perpetuals: funding per 8 h charged to longs, paid to shorts (0: off)
  SymbolFilters filters;             ///< every symbol's filters, unless symbol_filters names it
  std::map<std::string, SymbolFilters> symbol_filters;  ///< per-symbol filters
  /// Fault seam for reconciliation tests: every Nth submit is taken by the venue but answers SubmitOutcome::unknown
  /// ("timeout: no answer"); query() shows what became of it (0: off).
  std::uint64_t lose_answer_every = 0;
  /// What a missing bar does to the spread proxy behind slippage_spread (default skip: it carries over the closure).
  kernels::GapPolicy gaps{};
};

/// The paper exchange. Everything runs on the bus owner thread; on_bar() reports fills and order updates to the
/// listener synchronously, and the listener may submit or cancel orders from inside those calls (a stop placed on an
/// entry fill is already checked against the rest of the same bar). on_order_update() reports the venue's own changes
/// (expiries: reduce-only with nothing to reduce, IOC rests, liquidation); an accept or a cancel is answered by the
/// submit() or cancel() call itself. A market order submitted during on_bar() fills at the next bar's open.
class PaperExchange final : public Exchange {
 public:
  /// A venue with `config` on `clock` (fill and update times come from the bars, the clock stamps submissions).
  /// Throws std::invalid_argument naming the field when the configuration is out of range.
  PaperExchange(PaperExchangeConfig config, Clock& clock);
  ~PaperExchange() override;

  /// Matches the working orders of `bar.symbol` against this closed bar, in order: market orders at the open, then
  /// stops, then targets, then limits, then market-on-close at the close; marks positions at the close; checks
  /// liquidations; charges funding at 00:00, 08:00 and 16:00 UTC. A symbol is listed from its first bar on.
  void on_bar(const MarketBarClosed& bar);
  /// The last close seen for `symbol` (0 before its first bar).
  double last_price(const Symbol& symbol) const;

  std::string name() const override;
  MarketKind market() const override;
  bool simulated() const override { return true; }
  std::string quote_asset() const override;
  Result<SymbolFilters> filters(const Symbol& symbol) const override;
  SubmitResult submit(const OrderRequest& order) override;
  SubmitResult cancel(std::uint64_t order_id) override;
  SubmitResult amend_stop(std::uint64_t order_id, double stop_price) override;
  std::optional<OrderState> query(std::uint64_t order_id) const override;
  std::vector<OrderState> open_orders() const override;
  std::vector<VenuePosition> positions() const override;
  std::vector<Balance> balances() const override;
  double equity() const override;
  double quote_free() const override;
  void listener_set(ExchangeListener* listener) override;

  /// The venue's state at a bar boundary, exactly (runtime/util/checkpoint.hpp): balances, positions, marks, spreads
  /// and the working orders (final orders are not kept: a restarted venue answers for the orders still working).
  boost::json::object checkpoint() const;
  /// Restores a checkpoint() into a venue with the same configuration that has seen no bar and no order. Throws
  /// std::logic_error when it has, std::runtime_error naming a missing or malformed field.
  void restore(const boost::json::object& state);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qtos
