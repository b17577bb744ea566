#pragma once
/// @file A symbol's trading rules as the venue publishes them (exchangeInfo's PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL /
/// NOTIONAL), and orders prepared against them as decimal text: prices rounded to the tick, quantities truncated to
/// the step, the result checked before anything is sent (a violation is a local denial, no network call).

#include <map>
#include <string>

#include "runtime/exchange/exchange.hpp"
#include "runtime/util/result.hpp"

namespace qtos::binance {

/// One symbol's rules.
struct SymbolRules {
  SymbolFilters filters;       ///< tick, step, min/max quantity, min notional
  int price_decimals = 8;      ///< decimals of the tick size ("0.01000000" -> 2)
  int qty_decimals = 8;        ///< decimals of the step size
  std::string base_asset;      ///< e.g. BTC
  std::string quote_asset;     ///< e.g. USDT
  bool trading = true;         ///< status TRADING
};

/// The symbols of an exchangeInfo answer (spot /api/v3/exchangeInfo or USD-M /fapi/v1/exchangeInfo), by symbol;
/// an error (code corrupt) naming what is missing when the text is not an exchangeInfo document.
Result<std::map<std::string, SymbolRules>> exchange_info_parse(const std::string& json);

/// Decimals of a decimal string, trailing zeros ignored ("0.00100000" -> 3, "1.00000000" -> 0, "10" -> 0).
int decimals_of_text(const std::string& text);

/// `value` as plain decimal text with at most `decimals` places, trailing zeros dropped ("0.1", "9000", "0.001").
std::string decimal_text(double value, int decimals);

/// An order's numbers as they go on the wire.
struct PreparedOrder {
  std::string quantity;     ///< truncated to the step ("" for a quote-sized market order)
  std::string quote_qty;    ///< spot quote-sized market orders
  std::string price;        ///< limit price rounded to the tick ("" when none)
  std::string stop_price;   ///< trigger rounded to the tick ("" when none)
  double qty = 0;           ///< the truncated quantity as a number
};

/// Rounds and checks `order` against `rules`; `reference_price` stands for the price of a market order in the
/// notional check (0: unknown, the notional check of a market order is then left to the venue). An error (code
/// rule_failed) says which filter, with the venue's own wording ("LOT_SIZE: quantity 0.0004 < minimum 0.001").
Result<PreparedOrder> order_prepare(const OrderRequest& order, const SymbolRules& rules, double reference_price);

}  // namespace qtos::binance
