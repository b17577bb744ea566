#pragma once
/// @file Orders in a checkpoint (runtime/util/checkpoint.hpp): exact, versionless JSON of OrderRequest and OrderState
/// for the paper exchange's and the executor's restart state.

#include <boost/json.hpp>

#include "runtime/exchange/exchange.hpp"

namespace qtos {

/// `r` as checkpoint JSON.
boost::json::object order_request_ckpt(const OrderRequest& r);
/// The request order_request_ckpt() wrote; throws std::runtime_error naming a missing or malformed field.
OrderRequest order_request_restore(const boost::json::object& o);
/// `s` as checkpoint JSON.
boost::json::object order_state_ckpt(const OrderState& s);
/// The state order_state_ckpt() wrote; throws std::runtime_error naming a missing or malformed field.
OrderState order_state_restore(const boost::json::object& o);

}  // namespace qtos
