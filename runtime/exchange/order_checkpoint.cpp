#include "runtime/exchange/order_checkpoint.hpp"

#include "runtime/util/checkpoint.hpp"

namespace qtos {

boost::json::object order_request_ckpt(const OrderRequest& r) {
  return {{"id", r.order_id},
          {"cid", r.client_order_id},
          {"strategy", r.strategy.str()},
          {"symbol", r.symbol.str()},
          {"side", static_cast<int>(r.side)},
          {"type", static_cast<int>(r.type)},
          {"qty", ckpt::num(r.qty)},
          {"quote_qty", ckpt::num(r.quote_qty)},
          {"price", ckpt::num(r.price)},
          {"stop_price", ckpt::num(r.stop_price)},
          {"reduce_only", r.reduce_only},
          {"leverage", ckpt::num(r.leverage)},
          {"tif", static_cast<int>(r.tif)}};
}

OrderRequest order_request_restore(const boost::json::object& o) {
  OrderRequest r;
  r.order_id = ckpt::u64(o, "id");
  r.client_order_id = ckpt::str(o, "cid");
  r.strategy = StrategyId(ckpt::str(o, "strategy"));
  r.symbol = Symbol(ckpt::str(o, "symbol"));
  r.side = static_cast<Side>(ckpt::i64(o, "side"));
  r.type = static_cast<OrderType>(ckpt::i64(o, "type"));
  r.qty = ckpt::dbl(o, "qty");
  r.quote_qty = ckpt::dbl(o, "quote_qty");
  r.price = ckpt::dbl(o, "price");
  r.stop_price = ckpt::dbl(o, "stop_price");
  r.reduce_only = ckpt::flag(o, "reduce_only");
  r.leverage = ckpt::dbl(o, "leverage");
  r.tif = static_cast<TimeInForce>(ckpt::i64(o, "tif"));
  return r;
}

boost::json::object order_state_ckpt(const OrderState& s) {
  return {{"request", order_request_ckpt(s.request)},
          {"status", static_cast<int>(s.status)},
          {"filled_qty", ckpt::num(s.filled_qty)},
          {"avg_price", ckpt::num(s.avg_price)},
          {"fee", ckpt::num(s.fee)},
          {"updated", s.updated},
          {"reason", s.reason}};
}

OrderState order_state_restore(const boost::json::object& o) {
  OrderState s;
  s.request = order_request_restore(ckpt::obj(o, "request"));
  s.status = static_cast<OrderStatus>(ckpt::i64(o, "status"));
  s.filled_qty = ckpt::dbl(o, "filled_qty");
  s.avg_price = ckpt::dbl(o, "avg_price");
  s.fee = ckpt::dbl(o, "fee");
  s.updated = ckpt::i64(o, "updated");
  s.reason = ckpt::str(o, "reason");
  return s;
}

}  // namespace qtos
