#include "api/binance/symbol_rules.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <boost/json.hpp>

namespace qtos::binance {

namespace json = boost::json;

namespace {

std::string text_of(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return {};
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_number()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v->to_number<double>());
    return buf;
  }
  return {};
}

double number_of(const std::string& text) { return text.empty() ? 0.0 : std::strtod(text.c_str(), nullptr); }

}  // namespace

int decimals_of_text(const std::string& text) {
  const auto dot = text.find('.');
  if (dot == std::string::npos) return 0;
  std::size_t last = text.size();
  while (last > dot + 1 && text[last - 1] == '0') --last;
  return static_cast<int>(last - dot - 1);
}

std::string decimal_text(double value, int decimals) {
  if (decimals < 0) decimals = 0;
  if (decimals > 16) decimals = 16;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

Result<std::map<std::string, SymbolRules>> exchange_info_parse(const std::string& text) {
  json::error_code ec;
  const json::value doc = json::parse(text, ec);
  if (ec || !doc.is_object()) return Error{ErrorCode::corrupt, "exchangeInfo: not a JSON object"};
  const json::value* symbols = doc.as_object().if_contains("symbols");
  if (symbols == nullptr || !symbols->is_array()) return Error{ErrorCode::corrupt, "exchangeInfo: no 'symbols' array"};
  std::map<std::string, SymbolRules> out;
  for (const json::value& sv : symbols->as_array()) {
    if (!sv.is_object()) continue;
    const json::object& s = sv.as_object();
    const std::string name = text_of(s, "symbol");
    if (name.empty()) continue;
    SymbolRules r;
    r.base_asset = text_of(s, "baseAsset");
    r.quote_asset = text_of(s, "quoteAsset");
    r.trading = text_of(s, "status") == "TRADING";
    if (const json::value* fs = s.if_contains("filters"); fs != nullptr && fs->is_array()) {
      for (const json::value& fv : fs->as_array()) {
        if (!fv.is_object()) continue;
        const json::object& f = fv.as_object();
        const std::string type = text_of(f, "filterType");
        if (type == "PRICE_FILTER") {
          const std::string tick = text_of(f, "tickSize");
          r.filters.tick_size = number_of(tick);
          r.price_decimals = decimals_of_text(tick);
        } else if (type == "LOT_SIZE") {
          const std::string step = text_of(f, "stepSize");
          r.filters.step_size = number_of(step);
          r.qty_decimals = decimals_of_text(step);
          r.filters.min_qty = number_of(text_of(f, "minQty"));
          r.filters.max_qty = number_of(text_of(f, "maxQty"));
        } else if (type == "MIN_NOTIONAL" || type == "NOTIONAL") {
          // Spot says minNotional; USD-M's MIN_NOTIONAL says notional.
          std::string v = text_of(f, "minNotional");
          if (v.empty()) v = text_of(f, "notional");
          r.filters.min_notional = std::max(r.filters.min_notional, number_of(v));
        }
      }
    }
    out[name] = r;
  }
  return out;
}

Result<PreparedOrder> order_prepare(const OrderRequest& order, const SymbolRules& rules, double reference_price) {
  const SymbolFilters& f = rules.filters;
  PreparedOrder p;
  const auto fail = [&](const std::string& what) { return Error{ErrorCode::rule_failed, order.symbol.str() + ": " + what}; };
  double price = 0;
  if (order.type == OrderType::limit) {
    if (!(order.price > 0)) return fail("a limit order needs a price > 0");
    price = price_to_tick(order.price, f.tick_size);
    if (!(price > 0)) return fail("PRICE_FILTER: price " + decimal_text(order.price, 12) + " rounds to 0 at tick " + decimal_text(f.tick_size, 12));
    p.price = decimal_text(price, rules.price_decimals);
  }
  if (order.type == OrderType::stop_market || order.type == OrderType::take_profit_market) {
    if (!(order.stop_price > 0)) return fail("a stop order needs a stop price > 0");
    const double stop = price_to_tick(order.stop_price, f.tick_size);
    p.stop_price = decimal_text(stop, rules.price_decimals);
    price = stop;
  }
  if (price == 0) price = reference_price;
  if (order.qty <= 0 && order.quote_qty > 0 && order.type == OrderType::market) {
    if (f.min_notional > 0 && order.quote_qty < f.min_notional)
      return fail("MIN_NOTIONAL: " + decimal_text(order.quote_qty, 8) + " < " + decimal_text(f.min_notional, 8));
    p.quote_qty = decimal_text(order.quote_qty, 8);
    return p;
  }
  if (!(order.qty > 0)) return fail("quantity must be > 0");
  p.qty = qty_to_step(order.qty, f.step_size);
  if (!(p.qty > 0))
    return fail("LOT_SIZE: quantity " + decimal_text(order.qty, 12) + " truncates to 0 at step " + decimal_text(f.step_size, 12));
  p.quantity = decimal_text(p.qty, rules.qty_decimals);
  SymbolFilters check = f;
  // Without a reference price the venue checks the notional of a market order; a reduce-only exit is never refused
  // for its notional here (an exit smaller than the minimum must still be able to close the position).
  if (!(price > 0) || order.reduce_only) check.min_notional = 0;
  // A market order's reference price is not sent, so the tick does not apply to it.
  if (order.type == OrderType::market || order.type == OrderType::market_on_close) check.tick_size = 0;
  if (auto v = filters_violation(check, p.qty, price > 0 ? price : 1.0)) return fail(*v);
  return p;
}

}  // namespace qtos::binance
