#include "api/binance/binance_exchange.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

namespace qtos::binance {

namespace json = boost::json;

namespace {

// Binance codes the connector branches on (errors.md).
constexpr int kCodeUnknownError = -1006;    // unexpected answer from the backend: status unknown
constexpr int kCodeTimeout = -1007;         // backend timeout: status unknown
constexpr int kCodeTooManyRequests = -1003;
constexpr int kCodeTimestamp = -1021;       // timestamp outside recvWindow
constexpr int kCodeBadSymbol = -1121;
constexpr int kCodeFilterFailure = -1013;
constexpr int kCodeCancelRejected = -2011;
constexpr int kCodeNoSuchOrder = -2013;
constexpr int kCodeMarginTypeSame = -4046;  // "No need to change margin type."

std::string str(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return {};
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  if (v->is_double()) return std::to_string(v->as_double());
  if (v->is_bool()) return v->as_bool() ? "true" : "false";
  return {};
}
double num(const json::object& o, const char* key) {
  const std::string s = str(o, key);
  return s.empty() ? 0.0 : std::strtod(s.c_str(), nullptr);
}
std::int64_t inum(const json::object& o, const char* key) {
  const std::string s = str(o, key);
  return s.empty() ? 0 : std::strtoll(s.c_str(), nullptr, 10);
}

std::optional<json::value> parse(const std::string& body) {
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return std::nullopt;
  return v;
}

OrderStatus status_of(const std::string& s) {
  if (s == "NEW") return OrderStatus::accepted;
  if (s == "PARTIALLY_FILLED") return OrderStatus::partially_filled;
  if (s == "FILLED") return OrderStatus::filled;
  if (s == "CANCELED" || s == "PENDING_CANCEL") return OrderStatus::canceled;
  if (s == "REJECTED") return OrderStatus::rejected;
  if (s == "EXPIRED" || s == "EXPIRED_IN_MATCH") return OrderStatus::expired;
  return OrderStatus::pending_new;
}

// Later states win; a final state is never left (a late or repeated report cannot revive an order).
OrderStatus status_merge(OrderStatus have, OrderStatus got) {
  if (order_status_final(have)) return have;
  if (have == OrderStatus::partially_filled && got == OrderStatus::accepted) return have;
  return got == OrderStatus::pending_new ? have : got;
}

bool prefix_ok(const std::string& p) {
  if (p.empty() || p.size() > 20) return false;
  return std::all_of(p.begin(), p.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

}  // namespace

std::optional<Env> env_of_host(const std::string& host) {
  std::string h = host;
  for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto ends = [&](const std::string& s) { return h.size() >= s.size() && h.compare(h.size() - s.size(), s.size(), s) == 0; };
  if (ends("testnet.binance.vision") || ends("testnet.binancefuture.com") || h.rfind("demo-", 0) == 0) return Env::testnet;
  if (ends("binance.com") || ends("binance.vision")) return Env::mainnet;
  return std::nullopt;
}

BinanceExchange::BinanceExchange(BinanceOptions options, Signer signer) : options_(std::move(options)), signer_(std::move(signer)) {
  if (options_.recv_window_ms < 1 || options_.recv_window_ms > 60'000)
    throw std::invalid_argument("recvWindow " + std::to_string(options_.recv_window_ms) + " ms: expected 1..60000 (Binance's maximum)");
  if (!prefix_ok(options_.client_prefix))
    throw std::invalid_argument("client order id prefix '" + options_.client_prefix + "': expected 1..20 of [A-Za-z0-9_]");
  if (options_.lookup_attempts < 1) throw std::invalid_argument("lookup_attempts: expected >= 1");
  if (options_.account_max_age.count() < 0)
    throw std::invalid_argument("account_max_age " + std::to_string(options_.account_max_age.count()) + " ms: expected >= 0");
  if (options_.api_key.empty()) throw std::invalid_argument("Binance API key: empty");
  if (const auto host_env = env_of_host(options_.rest.host)) {
    if (!options_.rest.tls) throw std::invalid_argument("Binance REST URL for " + options_.rest.host + ": expected https://");
    if (*host_env != options_.env)
      throw std::invalid_argument("a " + std::string(enum_name(options_.env)) + " API key with the " + std::string(enum_name(*host_env)) +
                                  " host " + options_.rest.host + " is refused (keys and URL must belong to the same environment)");
  }
  if (!options_.now_ms)
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  if (!options_.sleep) options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  http_ = std::make_unique<HttpsClient>(options_.rest);
}

BinanceExchange::~BinanceExchange() = default;

std::string BinanceExchange::name() const {
  return std::string(options_.market == MarketKind::spot ? "binance-spot" : "binance-futures") +
         (options_.env == Env::testnet ? "-testnet" : "");
}

std::string BinanceExchange::path(const char* spot, const char* futures) const {
  return options_.market == MarketKind::spot ? spot : futures;
}

std::int64_t BinanceExchange::now_ms() const { return options_.now_ms(); }

void BinanceExchange::note(const std::string& text) const {
  audit_.push_back(text);
  spdlog::warn("{}: {}", name(), text);
}

std::string BinanceExchange::client_id(std::uint64_t order_id) const { return options_.client_prefix + "-" + std::to_string(order_id); }

std::optional<std::uint64_t> BinanceExchange::order_id_of(const std::string& cid) const {
  const std::string head = options_.client_prefix + "-";
  if (cid.rfind(head, 0) != 0) return std::nullopt;
  const std::string rest = cid.substr(head.size());
  std::size_t n = 0;
  while (n < rest.size() && std::isdigit(static_cast<unsigned char>(rest[n]))) ++n;
  if (n == 0 || n > 19 || (n < rest.size() && rest[n] != '-')) return std::nullopt;
  return std::strtoull(rest.substr(0, n).c_str(), nullptr, 10);
}

std::string BinanceExchange::halt_reason() const {
  if (rate_.banned) return "the venue banned this IP (HTTP 418): emergency brake";
  if (halted_) return "not reconciled with the venue yet";
  return {};
}

// ---- REST -------------------------------------------------------------------------------------------------------

void BinanceExchange::headers_take(const HttpReply& r) const {
  for (const auto& [k, v] : r.headers) {
    if (k.rfind("x-mbx-used-weight-", 0) == 0 || k.rfind("x-mbx-order-count-", 0) == 0)
      rate_.used[k.substr(6)] = std::strtoll(v.c_str(), nullptr, 10);
  }
}

BinanceExchange::Reply BinanceExchange::call_once(const std::string& method, const std::string& p, const Params& params,
                                                  bool is_signed) const {
  std::string target = p;
  std::map<std::string, std::string> headers;
  if (is_signed) {
    target += "?" + signed_query(params, signer_);
    headers["X-MBX-APIKEY"] = options_.api_key;
  } else if (!params.empty()) {
    target += "?" + query_encode(params);
  }
  const HttpReply r = http_->request(method, target, headers, options_.timeout);
  Reply out;
  out.http = r.status;
  out.body = r.body;
  if (r.transport == Transport::not_sent) {
    out.kind = Reply::Kind::not_sent;
    out.message = "not sent: " + r.error;
    return out;
  }
  if (r.transport != Transport::ok) {
    out.kind = Reply::Kind::unknown;
    out.message = std::string(enum_name(r.transport)) + ": " + r.error;
    return out;
  }
  headers_take(r);
  const auto retry = [&](double fallback_s) {
    double s = fallback_s;
    if (auto it = r.headers.find("retry-after"); it != r.headers.end()) s = std::strtod(it->second.c_str(), nullptr);
    if (!(s >= 0) || s > 3 * 86400) s = fallback_s;
    return std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
  };
  if (r.status >= 200 && r.status < 300) return out;
  if (auto v = parse(r.body); v && v->is_object()) {
    out.code = static_cast<int>(inum(v->as_object(), "code"));
    out.message = str(v->as_object(), "msg");
  }
  if (out.message.empty()) out.message = "HTTP " + std::to_string(r.status);
  if (r.status == 418) {
    out.kind = Reply::Kind::banned;
    rate_.banned = true;
    rate_.retry_after = retry(120);
    const std::string text = "HTTP 418 from " + p + ": this IP is banned by the venue; trading halted (emergency brake), cancels still tried";
    note(text);
    if (options_.health_alert) options_.health_alert(text);
    return out;
  }
  if (r.status == 429) {
    out.kind = Reply::Kind::rate_limited;
    rate_.retry_after = retry(60);
    note("HTTP 429 from " + p + ": backing off until Retry-After");
    return out;
  }
  if (r.status >= 500) {
    // The execution status is unknown: the request may have been carried out.
    out.kind = Reply::Kind::unknown;
    out.message = "HTTP " + std::to_string(r.status) + ": " + out.message;
    return out;
  }
  out.kind = out.code == kCodeUnknownError || out.code == kCodeTimeout ? Reply::Kind::unknown : Reply::Kind::venue_error;
  return out;
}

BinanceExchange::Reply BinanceExchange::call(const std::string& method, const std::string& p, Params params, bool is_signed,
                                             Call kind) const {
  // Cancels go out whatever the limits say: they reduce risk.
  if (kind != Call::cancel) {
    if (rate_.banned && std::chrono::steady_clock::now() < rate_.retry_after)
      return Reply{Reply::Kind::banned, 0, kCodeTooManyRequests, "not sent: the venue banned this IP (HTTP 418), brake on", {}};
    if (std::chrono::steady_clock::now() < rate_.retry_after)
      return Reply{Reply::Kind::rate_limited, 0, kCodeTooManyRequests, "not sent: backing off after HTTP 429 (Retry-After)", {}};
    if (kind == Call::order && rate_.weight_limit_1m > 0) {
      const auto it = rate_.used.find("used-weight-1m");
      if (it != rate_.used.end() && static_cast<double>(it->second) >= options_.weight_guard * static_cast<double>(rate_.weight_limit_1m))
        return Reply{Reply::Kind::rate_limited, 0, kCodeTooManyRequests,
                     "not sent: used weight " + std::to_string(it->second) + " of " + std::to_string(rate_.weight_limit_1m) + " per minute", {}};
    }
  }
  if (kind != Call::query) account_stale();  // an order or a cancel (sent or not: its fate may be unknown)
  for (int attempt = 0;; ++attempt) {
    Params sent = params;
    if (is_signed) {
      sent.emplace_back("recvWindow", std::to_string(options_.recv_window_ms));
      sent.emplace_back("timestamp", std::to_string(now_ms() + offset_ms_));
    }
    Reply r = call_once(method, p, sent, is_signed);
    if (r.kind == Reply::Kind::venue_error && r.code == kCodeTimestamp && attempt == 0) {
      // The venue refused the request before processing it: resynchronise and send it once more.
      note("-1021 from " + p + " (" + r.message + "): clock resynchronised, request sent again");
      if (!const_cast<BinanceExchange*>(this)->time_sync().ok()) return r;
      continue;
    }
    return r;
  }
}

Result<Unit> BinanceExchange::time_sync() {
  const std::int64_t t0 = now_ms();
  const Reply r = call_once("GET", path("/api/v3/time", "/fapi/v1/time"), {}, false);
  const std::int64_t t1 = now_ms();
  if (r.kind != Reply::Kind::ok) return Error{ErrorCode::load_failed, "server time: " + r.message};
  const auto v = parse(r.body);
  if (!v || !v->is_object()) return Error{ErrorCode::corrupt, "server time: not a JSON object"};
  const std::int64_t server = inum(v->as_object(), "serverTime");
  if (server <= 0) return Error{ErrorCode::corrupt, "server time: no serverTime"};
  offset_ms_ = server - (t0 + t1) / 2;
  return Unit{};
}

Result<Unit> BinanceExchange::rules_load() {
  Params q;
  if (!options_.symbols.empty() && options_.market == MarketKind::spot) {
    std::string list = "[";
    for (std::size_t i = 0; i < options_.symbols.size(); ++i) list += (i ? ",\"" : "\"") + options_.symbols[i] + "\"";
    q.emplace_back("symbols", list + "]");
  }
  const Reply r = call("GET", path("/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo"), q, false, Call::query);
  if (r.kind != Reply::Kind::ok) return Error{ErrorCode::load_failed, "exchangeInfo: " + r.message};
  auto rules = exchange_info_parse(r.body);
  if (!rules.ok()) return rules.error();
  rules_ = std::move(rules).value();
  for (const std::string& s : options_.symbols)
    if (!rules_.count(s)) return Error{ErrorCode::not_found, "exchangeInfo: the venue does not list " + s};
  if (const auto v = parse(r.body); v && v->is_object())
    if (const json::value* rl = v->as_object().if_contains("rateLimits"); rl && rl->is_array())
      for (const json::value& l : rl->as_array())
        if (l.is_object() && str(l.as_object(), "rateLimitType") == "REQUEST_WEIGHT" && str(l.as_object(), "interval") == "MINUTE" &&
            inum(l.as_object(), "intervalNum") == 1)
          rate_.weight_limit_1m = inum(l.as_object(), "limit");
  return Unit{};
}

Result<Unit> BinanceExchange::start() {
  halted_ = true;
  if (auto s = time_sync(); !s.ok()) return s;
  if (auto s = rules_load(); !s.ok()) return s;
  prices_load();
  auto rec = reconcile({});
  if (!rec.ok()) return rec.error();
  return Unit{};
}

Result<SymbolFilters> BinanceExchange::filters(const Symbol& symbol) const {
  const auto it = rules_.find(symbol.str());
  if (it == rules_.end()) return Error{ErrorCode::not_found, symbol.str() + ": not listed by " + name()};
  return it->second.filters;
}

// ---- orders -----------------------------------------------------------------------------------------------------

double BinanceExchange::reference_price(const std::string& symbol) const {
  // Only what is known already: a denial must never wait for (or depend on) the network.
  const auto it = ref_price_.find(symbol);
  return it == ref_price_.end() ? 0.0 : it->second;
}

void BinanceExchange::prices_load() {
  for (const std::string& symbol : options_.symbols) {
    const Reply r = call("GET", path("/api/v3/ticker/price", "/fapi/v1/ticker/price"), {{"symbol", symbol}}, false, Call::query);
    const auto v = r.kind == Reply::Kind::ok ? parse(r.body) : std::nullopt;
    if (!v || !v->is_object()) continue;
    const double p = num(v->as_object(), "price");
    if (p > 0 && !ref_price_.count(symbol)) ref_price_[symbol] = p;
  }
}

Result<Unit> BinanceExchange::symbol_setup(const std::string& symbol) {
  if (options_.market != MarketKind::linear_perpetual || set_up_.count(symbol)) return Unit{};
  Reply r = call("POST", "/fapi/v1/marginType", {{"symbol", symbol}, {"marginType", options_.isolated_margin ? "ISOLATED" : "CROSSED"}}, true,
                 Call::query);
  if (r.kind != Reply::Kind::ok && !(r.kind == Reply::Kind::venue_error && r.code == kCodeMarginTypeSame))
    return Error{ErrorCode::rule_failed, symbol + ": margin type not set: " + r.message};
  const long lev = std::lround(std::max(1.0, options_.leverage));
  r = call("POST", "/fapi/v1/leverage", {{"symbol", symbol}, {"leverage", std::to_string(lev)}}, true, Call::query);
  if (r.kind != Reply::Kind::ok) return Error{ErrorCode::rule_failed, symbol + ": leverage not set: " + r.message};
  set_up_.insert(symbol);
  return Unit{};
}

SubmitResult BinanceExchange::submit(const OrderRequest& order) {
  const auto refuse = [](int code, std::string message) { return SubmitResult{SubmitOutcome::rejected, code, std::move(message)}; };
  if (halted()) return refuse(0, "not sent: trading halted (" + halt_reason() + ")");
  if (tracks_.count(order.order_id)) return refuse(0, "not sent: order id " + std::to_string(order.order_id) + " was already used (never resent)");
  const std::string symbol = order.symbol.str();
  const auto rit = rules_.find(symbol);
  if (rit == rules_.end()) return refuse(kCodeBadSymbol, "not sent: " + symbol + " is not listed by " + name());
  if (!rit->second.trading) return refuse(kCodeBadSymbol, "not sent: " + symbol + " is not trading");
  if (options_.market == MarketKind::linear_perpetual && !(order.qty > 0) && order.quote_qty > 0)
    return refuse(kCodeFilterFailure, "denied locally, not sent: USD-M orders are sized in the base asset (quote_qty is spot only)");
  const bool needs_ref = order.type == OrderType::market || order.type == OrderType::market_on_close;
  auto prepared = order_prepare(order, rit->second, needs_ref ? reference_price(symbol) : 0.0);
  if (!prepared.ok()) return refuse(kCodeFilterFailure, "denied locally, not sent: Filter failure: " + prepared.error().message);
  if (auto s = symbol_setup(symbol); !s.ok()) return refuse(0, "not sent: " + s.error().message);
  Track t;
  t.request = order;
  t.client_id = client_id(order.order_id);
  t.request.client_order_id = t.client_id;
  if (!prepared.value().quantity.empty()) t.request.qty = prepared.value().qty;
  return place(t, prepared.value());
}

SubmitResult BinanceExchange::place(Track& t, const PreparedOrder& p) {
  const OrderRequest& o = t.request;
  const bool futures = options_.market == MarketKind::linear_perpetual;
  Params q{{"symbol", o.symbol.str()}, {"side", o.side == Side::buy ? "BUY" : "SELL"}};
  switch (o.type) {
    case OrderType::market:
    case OrderType::market_on_close: q.emplace_back("type", "MARKET"); break;
    case OrderType::limit: q.emplace_back("type", "LIMIT"); break;
    case OrderType::stop_market: q.emplace_back("type", futures ? "STOP_MARKET" : "STOP_LOSS"); break;
    case OrderType::take_profit_market: q.emplace_back("type", futures ? "TAKE_PROFIT_MARKET" : "TAKE_PROFIT"); break;
  }
  if (o.type == OrderType::limit) {
    q.emplace_back("timeInForce", o.tif == TimeInForce::ioc ? "IOC" : "GTC");
    q.emplace_back("price", p.price);
  }
  if (!p.quantity.empty()) q.emplace_back("quantity", p.quantity);
  if (!p.quote_qty.empty()) q.emplace_back("quoteOrderQty", p.quote_qty);
  if (!p.stop_price.empty()) q.emplace_back("stopPrice", p.stop_price);
  if (futures && o.reduce_only) q.emplace_back("reduceOnly", "true");
  q.emplace_back("newClientOrderId", t.client_id);
  q.emplace_back("newOrderRespType", "RESULT");
  const Reply r = call("POST", path("/api/v3/order", "/fapi/v1/order"), std::move(q), true, Call::order);
  switch (r.kind) {
    case Reply::Kind::ok: {
      t.status = OrderStatus::accepted;
      t.reported = OrderStatus::accepted;
      tracks_.insert_or_assign(o.order_id, std::move(t));
      if (const auto s = state_from_json(r.body)) order_absorb(*s);
      return SubmitResult{SubmitOutcome::accepted, 0, {}};
    }
    case Reply::Kind::unknown:
      t.status = OrderStatus::pending_new;
      t.reason = r.message;
      tracks_.insert_or_assign(o.order_id, std::move(t));
      return SubmitResult{SubmitOutcome::unknown, r.code, r.message};
    case Reply::Kind::venue_error: return SubmitResult{SubmitOutcome::rejected, r.code, r.message};
    case Reply::Kind::not_sent:
    case Reply::Kind::rate_limited:
    case Reply::Kind::banned: return SubmitResult{SubmitOutcome::rejected, r.code, r.message.rfind("not sent", 0) == 0 ? r.message : "not sent: " + r.message};
  }
  return SubmitResult{SubmitOutcome::unknown, 0, "unclassified answer"};
}

std::optional<OrderState> BinanceExchange::state_from_json(const std::string& body) const {
  const auto v = parse(body);
  if (!v || !v->is_object()) return std::nullopt;
  const json::object& o = v->as_object();
  const auto id = order_id_of(str(o, "clientOrderId"));
  if (!id) return std::nullopt;
  OrderState s;
  s.request.order_id = *id;
  s.request.client_order_id = str(o, "clientOrderId");
  s.request.symbol = str(o, "symbol");
  s.request.side = str(o, "side") == "SELL" ? Side::sell : Side::buy;
  s.request.qty = num(o, "origQty");
  s.request.price = num(o, "price");
  s.request.stop_price = num(o, "stopPrice");
  s.request.reduce_only = str(o, "reduceOnly") == "true";
  const std::string type = str(o, "type");
  s.request.type = type == "LIMIT" ? OrderType::limit
                   : (type == "STOP_MARKET" || type == "STOP_LOSS") ? OrderType::stop_market
                   : (type == "TAKE_PROFIT_MARKET" || type == "TAKE_PROFIT") ? OrderType::take_profit_market
                                                                                : OrderType::market;
  s.status = status_of(str(o, "status"));
  s.filled_qty = num(o, "executedQty");
  double quote = num(o, "cummulativeQuoteQty");
  if (quote == 0) quote = num(o, "cumQuote");
  s.avg_price = s.filled_qty > 0 ? quote / s.filled_qty : 0;
  std::int64_t t = inum(o, "updateTime");
  if (t == 0) t = inum(o, "transactTime");
  s.updated = t * kNsPerMillisecond;
  // The venue's own order id travels in the reason field of this private copy only (absorbed into the track).
  s.reason = str(o, "orderId");
  return s;
}

void BinanceExchange::order_absorb(const OrderState& s) const {
  const auto it = tracks_.find(s.request.order_id);
  if (it == tracks_.end()) return;
  Track& t = it->second;
  t.status = status_merge(t.status, s.status);
  if (!s.reason.empty()) t.request.client_order_id = t.client_id;
  if (!s.reason.empty()) venue_ids_[s.request.order_id] = s.reason;
  venue_qty_[s.request.order_id] = std::max(venue_qty_[s.request.order_id], s.filled_qty);
}

void BinanceExchange::trades_fetch(Track& t) const {
  const auto vid = venue_ids_.find(t.request.order_id);
  if (vid == venue_ids_.end()) return;
  const Reply r = call("GET", path("/api/v3/myTrades", "/fapi/v1/userTrades"), {{"symbol", t.request.symbol.str()}, {"orderId", vid->second}}, true,
                       Call::query);
  if (r.kind != Reply::Kind::ok) return;
  const auto v = parse(r.body);
  if (!v || !v->is_array()) return;
  std::vector<const json::object*> rows;
  for (const json::value& x : v->as_array())
    if (x.is_object()) rows.push_back(&x.as_object());
  // Out-of-order answers are applied in trade order; a trade id seen before is skipped.
  std::sort(rows.begin(), rows.end(), [](const json::object* a, const json::object* b) { return inum(*a, "id") < inum(*b, "id"); });
  const auto& rules = rules_.find(t.request.symbol.str());
  for (const json::object* row : rows) {
    const auto trade_id = static_cast<std::uint64_t>(inum(*row, "id"));
    if (!t.trades.insert(trade_id).second) continue;
    Fill f;
    f.order_id = t.request.order_id;
    f.fill_id = trade_id;
    f.symbol = t.request.symbol;
    f.side = t.request.side;
    f.qty = num(*row, "qty");
    f.price = num(*row, "price");
    const double commission = num(*row, "commission");
    const std::string asset = str(*row, "commissionAsset");
    // Fees in the quote asset as the ledger keeps them; a base-asset fee is valued at the fill price.
    f.fee = asset == options_.quote_asset ? commission
            : (rules != rules_.end() && asset == rules->second.base_asset) ? commission * f.price
                                                                           : 0.0;
    f.maker = str(*row, "isMaker") == "true" || str(*row, "maker") == "true";
    f.ts = inum(*row, "time") * kNsPerMillisecond;
    t.cum_qty += f.qty;
    t.cum_quote += f.qty * f.price;
    t.fee += f.fee;
    f.remaining_qty = std::max(0.0, t.request.qty - t.cum_qty);
    ref_price_[t.request.symbol.str()] = f.price;
    account_stale();
    if (listener_ != nullptr) listener_->on_fill(f);
  }
}

OrderState BinanceExchange::state_of(const Track& t) const {
  OrderState s;
  s.request = t.request;
  s.status = t.status;
  s.filled_qty = t.cum_qty;
  s.avg_price = t.cum_qty > 0 ? t.cum_quote / t.cum_qty : 0;
  s.fee = t.fee;
  s.updated = (now_ms() + offset_ms_) * kNsPerMillisecond;
  s.reason = t.reason;
  return s;
}

std::optional<OrderState> BinanceExchange::query(std::uint64_t order_id) const {
  const auto it = tracks_.find(order_id);
  if (it == tracks_.end()) return std::nullopt;
  Track& t = it->second;
  for (std::int32_t attempt = 1;; ++attempt) {
    const Reply r = call("GET", path("/api/v3/order", "/fapi/v1/order"), {{"symbol", t.request.symbol.str()}, {"origClientOrderId", t.client_id}},
                         true, Call::query);
    if (r.kind == Reply::Kind::ok) {
      if (const auto s = state_from_json(r.body)) {
        order_absorb(*s);
        if (venue_qty_[order_id] > t.cum_qty) trades_fetch(t);
      }
      if (t.status == OrderStatus::pending_new) t.status = OrderStatus::accepted;
      t.reason.clear();
      t.reported = t.status;  // the caller applies the returned state
      return state_of(t);
    }
    if (r.kind == Reply::Kind::venue_error && r.code == kCodeNoSuchOrder) {
      // Right after a lost answer the order can be in flight inside the venue: ask again before giving up.
      if (attempt < options_.lookup_attempts) {
        options_.sleep(options_.lookup_pause);
        continue;
      }
      if (t.status != OrderStatus::pending_new) return state_of(t);  // known to the venue before: not "never placed"
      note("order " + std::to_string(order_id) + " (" + t.client_id + ") declared not placed: the venue answered \"" + r.message + "\" " +
           std::to_string(attempt) + " times");
      tracks_.erase(it);
      return std::nullopt;
    }
    // No answer, or a limit: still unknown, asked again on the next cycle.
    OrderState s = state_of(t);
    s.reason = "lookup failed: " + r.message;
    return s;
  }
}

SubmitResult BinanceExchange::cancel(std::uint64_t order_id) {
  const auto it = tracks_.find(order_id);
  if (it == tracks_.end()) return SubmitResult{SubmitOutcome::rejected, kCodeCancelRejected, "Unknown order sent (not a working order of this connector)"};
  Track& t = it->second;
  if (order_status_final(t.status)) return SubmitResult{SubmitOutcome::rejected, kCodeCancelRejected, "the order is already " + std::string(enum_name(t.status))};
  const Reply r = call("DELETE", path("/api/v3/order", "/fapi/v1/order"), {{"symbol", t.request.symbol.str()}, {"origClientOrderId", t.client_id}},
                       true, Call::cancel);
  switch (r.kind) {
    case Reply::Kind::ok:
      if (const auto s = state_from_json(r.body)) order_absorb(*s);
      t.status = status_merge(t.status, OrderStatus::canceled);
      t.reported = t.status;  // the accepted cancel is the caller's news
      return SubmitResult{SubmitOutcome::accepted, 0, {}};
    case Reply::Kind::unknown: return SubmitResult{SubmitOutcome::unknown, r.code, r.message};
    default: return SubmitResult{SubmitOutcome::rejected, r.code, r.message};
  }
}

SubmitResult BinanceExchange::amend_stop(std::uint64_t order_id, double stop_price) {
  const auto it = tracks_.find(order_id);
  if (it == tracks_.end()) return SubmitResult{SubmitOutcome::rejected, kCodeCancelRejected, "Unknown order sent"};
  Track& t = it->second;
  if (t.request.type != OrderType::stop_market && t.request.type != OrderType::take_profit_market)
    return SubmitResult{SubmitOutcome::rejected, kCodeFilterFailure, "not a stop or take-profit order"};
  OrderRequest moved = t.request;
  moved.stop_price = stop_price;
  auto prepared = order_prepare(moved, rules_.at(moved.symbol.str()), 0.0);
  if (!prepared.ok()) return SubmitResult{SubmitOutcome::rejected, kCodeFilterFailure, "denied locally, not sent: " + prepared.error().message};
  const SubmitResult c = cancel(order_id);
  if (c.outcome != SubmitOutcome::accepted) return c;
  // No native amend for conditional orders: a new order under a new client id, the same internal id.
  Track n;
  n.request = moved;
  n.amends = t.amends + 1;
  n.client_id = client_id(order_id) + "-a" + std::to_string(n.amends);
  n.request.client_order_id = n.client_id;
  tracks_.erase(it);
  venue_ids_.erase(order_id);
  venue_qty_.erase(order_id);
  return place(n, prepared.value());
}

void BinanceExchange::poll() {
  for (auto& [id, t] : tracks_) {
    if (!order_status_final(t.status)) {
      const Reply r = call("GET", path("/api/v3/order", "/fapi/v1/order"), {{"symbol", t.request.symbol.str()}, {"origClientOrderId", t.client_id}},
                           true, Call::query);
      if (r.kind == Reply::Kind::ok)
        if (const auto s = state_from_json(r.body)) order_absorb(*s);
    }
    // Fills first, then the state change they explain (an entry is never reported FILLED before its fills).
    if (venue_qty_[id] > t.cum_qty) trades_fetch(t);
    if (t.status != t.reported && t.status != OrderStatus::pending_new && listener_ != nullptr) {
      t.reported = t.status;
      account_stale();  // a cancel or an expiry the poll found frees margin
      listener_->on_order_update(state_of(t));
    }
  }
  if (options_.market == MarketKind::linear_perpetual && options_.dead_man_seconds > 0) {
    const auto now = std::chrono::steady_clock::now();
    // Re-armed at a third of the countdown, so two missed polls still leave time before the venue cancels.
    if (now - dead_man_armed_ >= std::chrono::seconds(options_.dead_man_seconds) / 3) {
      bool all = true;
      for (const std::string& s : options_.symbols) {
        const Reply r = call("POST", "/fapi/v1/countdownCancelAll", {{"symbol", s}, {"countdownTime", std::to_string(options_.dead_man_seconds * 1000)}},
                             true, Call::cancel);
        all = all && r.kind == Reply::Kind::ok;
      }
      if (all) dead_man_armed_ = now;
    }
  }
}

bool BinanceExchange::user_event(const std::string& text) {
  const auto v = parse(text);
  if (!v || !v->is_object()) return false;
  account_stale();  // any account news (ACCOUNT_UPDATE, outboundAccountPosition, an order's) makes the next read fresh
  const json::object* ev = &v->as_object();
  if (const json::value* inner = ev->if_contains("event"); inner != nullptr && inner->is_object()) ev = &inner->as_object();
  const std::string type = str(*ev, "e");
  const json::object* o = nullptr;
  if (type == "ORDER_TRADE_UPDATE") {
    const json::value* ov = ev->if_contains("o");
    if (ov == nullptr || !ov->is_object()) return false;
    o = &ov->as_object();
  } else if (type == "executionReport") {
    o = ev;
  } else {
    return false;
  }
  const std::string status_text = str(*o, "X");
  // A spot cancel names the cancelled order in C (its own c is the cancel request's).
  std::string cid = str(*o, "c");
  if (status_text == "CANCELED" && !str(*o, "C").empty()) cid = str(*o, "C");
  const auto id = order_id_of(cid);
  if (!id) return false;
  const auto it = tracks_.find(*id);
  if (it == tracks_.end() || it->second.client_id != cid) return false;
  Track& t = it->second;
  if (const std::string vid = str(*o, "i"); !vid.empty()) venue_ids_[*id] = vid;
  const auto trade_id = static_cast<std::uint64_t>(inum(*o, "t"));
  const double last_qty = num(*o, "l");
  if (str(*o, "x") == "TRADE" && trade_id > 0 && last_qty > 0 && t.trades.insert(trade_id).second) {
    Fill f;
    f.order_id = *id;
    f.fill_id = trade_id;
    f.symbol = t.request.symbol;
    f.side = t.request.side;
    f.qty = last_qty;
    f.price = num(*o, "L");
    const double commission = num(*o, "n");
    const std::string asset = str(*o, "N");
    const auto rules = rules_.find(t.request.symbol.str());
    f.fee = asset == options_.quote_asset ? commission
            : (rules != rules_.end() && asset == rules->second.base_asset) ? commission * f.price
                                                                           : 0.0;
    f.maker = str(*o, "m") == "true";
    f.ts = inum(*o, "T") * kNsPerMillisecond;
    t.cum_qty += f.qty;
    t.cum_quote += f.qty * f.price;
    t.fee += f.fee;
    f.remaining_qty = std::max(0.0, t.request.qty - t.cum_qty);
    ref_price_[t.request.symbol.str()] = f.price;
    account_stale();
    if (listener_ != nullptr) listener_->on_fill(f);
  }
  // An older event (out of order) cannot lower what the venue already reported.
  venue_qty_[*id] = std::max(venue_qty_[*id], num(*o, "z"));
  t.status = status_merge(t.status, status_of(status_text));
  // A trade the stream skipped (a missed event) is read from REST before the state that depends on it is reported.
  if (venue_qty_[*id] > t.cum_qty + 1e-12 && order_status_final(t.status)) trades_fetch(t);
  if (t.status != t.reported && t.status != OrderStatus::pending_new && listener_ != nullptr) {
    t.reported = t.status;
    listener_->on_order_update(state_of(t));
  }
  return true;
}

// ---- reconciliation -----------------------------------------------------------------------------------------------

Result<ReconcileReport> BinanceExchange::reconcile(const std::vector<OrderRequest>& working) {
  halted_ = true;
  if (rate_.banned) {
    if (std::chrono::steady_clock::now() < rate_.retry_after) return Error{ErrorCode::blocked, "reconcile: the venue's IP ban (HTTP 418) is not over yet"};
    rate_.banned = false;  // the ban is over; trading resumes only if the reconciliation below succeeds
    note("the HTTP 418 ban is over: reconciling before trading resumes");
  }
  if (auto s = time_sync(); !s.ok()) return Error{s.error().code, "reconcile: " + s.error().message};
  ReconcileReport rep;
  const Reply r = call("GET", path("/api/v3/openOrders", "/fapi/v1/openOrders"), {}, true, Call::query);
  if (r.kind != Reply::Kind::ok) return Error{ErrorCode::load_failed, "reconcile: open orders: " + r.message};
  const auto v = parse(r.body);
  if (!v || !v->is_array()) return Error{ErrorCode::corrupt, "reconcile: open orders: not a JSON array"};
  std::set<std::uint64_t> open;
  for (const json::value& x : v->as_array()) {
    const auto s = state_from_json(json::serialize(x));
    if (!s) continue;  // not ours
    open.insert(s->request.order_id);
    const bool known = std::any_of(working.begin(), working.end(), [&](const OrderRequest& w) { return w.order_id == s->request.order_id; });
    if (!tracks_.count(s->request.order_id)) {
      Track t;
      t.request = s->request;
      t.client_id = s->request.client_order_id;
      t.status = s->status;
      tracks_[s->request.order_id] = t;
    }
    order_absorb(*s);
    Track& t = tracks_.at(s->request.order_id);
    if (venue_qty_[s->request.order_id] > t.cum_qty) trades_fetch(t);
    if (!known) rep.imported.push_back(state_of(t));
  }
  for (const OrderRequest& w : working) {
    const std::uint64_t id = w.order_id;
    if (open.count(id)) continue;
    if (!tracks_.count(id)) {
      // Known to the ledger of an earlier run, not to this connector: looked up under its client id.
      Track t;
      t.request = w;
      t.client_id = client_id(id);
      t.request.client_order_id = t.client_id;
      tracks_[id] = t;
    }
    auto s = query(id);
    if (!s) {
      rep.unknown.push_back(id);
    } else if (s->status == OrderStatus::pending_new && !s->reason.empty()) {
      return Error{ErrorCode::load_failed, "reconcile: order " + std::to_string(id) + ": " + s->reason};
    } else {
      rep.finished.push_back(*s);
    }
  }
  // The account and the positions as they are now: without them the Risk OS would start from a guess.
  const auto account_now = account_read();
  if (!account_now) return Error{ErrorCode::load_failed, "reconcile: the account could not be read (see the last note)"};
  auto positions_now = options_.market == MarketKind::spot ? std::optional(spot_positions(account_now->balances)) : positions_read();
  if (!positions_now) return Error{ErrorCode::load_failed, "reconcile: the positions could not be read (see the last note)"};
  rep.positions = std::move(*positions_now);
  halted_ = false;
  return rep;
}

// ---- account --------------------------------------------------------------------------------------------------------

std::vector<OrderState> BinanceExchange::open_orders() const {
  std::vector<OrderState> out;
  for (const auto& [id, t] : tracks_)
    if (!order_status_final(t.status)) out.push_back(state_of(t));
  return out;
}

// Every account read is a REST call that can fail. A failed read never stands for an empty account or a zero
// equity (which would look like a 100% drawdown to the Risk OS, or a day's start at zero that disables the daily
// limit): the public reads answer the last good read and say so once per streak; reconcile() reads afresh and fails
// when it cannot, so trading never starts or resumes without one.

std::optional<BinanceExchange::Account> BinanceExchange::account_read() const {
  const Reply r = call("GET", path("/api/v3/account", "/fapi/v3/account"), {}, true, Call::query);
  const auto v = r.kind == Reply::Kind::ok ? parse(r.body) : std::nullopt;
  if (!v || !v->is_object()) {
    account_failed("account (" + (r.kind == Reply::Kind::ok ? std::string("not a JSON object") : r.message) + ")");
    return std::nullopt;
  }
  const json::object& o = v->as_object();
  Account a;
  if (const json::value* bs = o.if_contains(options_.market == MarketKind::spot ? "balances" : "assets"); bs && bs->is_array()) {
    for (const json::value& x : bs->as_array()) {
      if (!x.is_object()) continue;
      const json::object& b = x.as_object();
      Balance bal;
      bal.asset = str(b, "asset");
      if (options_.market == MarketKind::spot) {
        bal.free = num(b, "free");
        bal.locked = num(b, "locked");
      } else {
        bal.free = num(b, "availableBalance");
        bal.locked = std::max(0.0, num(b, "walletBalance") - bal.free);
      }
      if (bal.free != 0 || bal.locked != 0) a.balances.push_back(bal);
    }
  }
  std::sort(a.balances.begin(), a.balances.end(), [](const Balance& x, const Balance& y) { return x.asset < y.asset; });
  for (const Balance& b : a.balances)
    if (b.asset == options_.quote_asset) a.quote_free = b.free;
  if (options_.market == MarketKind::linear_perpetual) {
    a.equity = num(o, "totalMarginBalance");
    a.quote_free = num(o, "availableBalance");
  } else {
    for (const Balance& b : a.balances)
      if (b.asset == options_.quote_asset) a.equity += b.free + b.locked;
    for (const VenuePosition& p : spot_positions(a.balances)) a.equity += p.qty * p.mark_price;
  }
  last_account_ = a;
  account_at_ms_ = now_ms();
  account_streak_ = 0;
  return a;
}

// USD-M positions (spot positions are the account's balances: spot_positions()).
std::optional<std::vector<VenuePosition>> BinanceExchange::positions_read() const {
  const Reply r = call("GET", "/fapi/v3/positionRisk", {}, true, Call::query);
  const auto v = r.kind == Reply::Kind::ok ? parse(r.body) : std::nullopt;
  if (!v || !v->is_array()) {
    account_failed("positions (" + (r.kind == Reply::Kind::ok ? std::string("not a JSON array") : r.message) + ")");
    return std::nullopt;
  }
  std::vector<VenuePosition> out;
  for (const json::value& x : v->as_array()) {
    if (!x.is_object()) continue;
    const json::object& o = x.as_object();
    VenuePosition p;
    p.qty = num(o, "positionAmt");
    if (p.qty == 0) continue;
    p.symbol = str(o, "symbol");
    p.entry_price = num(o, "entryPrice");
    p.mark_price = num(o, "markPrice");
    p.unrealized_pnl = num(o, "unRealizedProfit");
    p.liquidation_price = num(o, "liquidationPrice");
    p.margin = num(o, "isolatedMargin");
    p.leverage = options_.leverage;
    out.push_back(p);
  }
  std::sort(out.begin(), out.end(), [](const VenuePosition& a, const VenuePosition& b) { return a.symbol.str() < b.symbol.str(); });
  last_positions_ = out;
  positions_at_ms_ = now_ms();
  return out;
}

bool BinanceExchange::fresh(std::int64_t read_at_ms) const {
  if (read_at_ms < 0 || options_.account_max_age.count() == 0) return false;
  const std::int64_t age = now_ms() - read_at_ms;
  return age >= 0 && age < options_.account_max_age.count();  // a clock stepped back reads afresh
}

std::optional<BinanceExchange::Account> BinanceExchange::account_recent() const {
  if (last_account_ && fresh(account_at_ms_)) return last_account_;
  return account_read();
}

std::optional<std::vector<VenuePosition>> BinanceExchange::positions_recent() const {
  if (options_.market == MarketKind::spot) {
    const auto a = account_recent();
    if (!a) return std::nullopt;
    return spot_positions(a->balances);
  }
  if (last_positions_ && fresh(positions_at_ms_)) return last_positions_;
  return positions_read();
}

std::vector<VenuePosition> BinanceExchange::spot_positions(const std::vector<Balance>& balances) const {
  std::vector<VenuePosition> out;
  for (const Balance& b : balances) {
    for (const auto& [sym, rules] : rules_) {
      if (rules.base_asset != b.asset || rules.quote_asset != options_.quote_asset) continue;
      if (!options_.symbols.empty() && std::find(options_.symbols.begin(), options_.symbols.end(), sym) == options_.symbols.end()) continue;
      VenuePosition p;
      p.symbol = sym;
      p.qty = b.free + b.locked;
      if (p.qty <= 0) continue;
      p.mark_price = reference_price(sym);  // the last close or fill
      out.push_back(p);
    }
  }
  return out;
}

void BinanceExchange::account_failed(const std::string& what) const {
  if (account_streak_++ == 0)
    note("reading the " + what + " failed: answering the last good read until a read succeeds (reconcile needs a fresh one)");
}

std::vector<VenuePosition> BinanceExchange::positions() const {
  if (auto p = positions_recent()) return *p;
  if (options_.market == MarketKind::spot) return last_account_ ? spot_positions(last_account_->balances) : std::vector<VenuePosition>{};
  return last_positions_.value_or(std::vector<VenuePosition>{});
}

std::vector<Balance> BinanceExchange::balances() const {
  if (auto a = account_recent()) return a->balances;
  return last_account_ ? last_account_->balances : std::vector<Balance>{};
}

double BinanceExchange::equity() const {
  if (auto a = account_recent()) return a->equity;
  return last_account_ ? last_account_->equity : 0.0;
}

double BinanceExchange::quote_free() const {
  if (auto a = account_recent()) return a->quote_free;
  return last_account_ ? last_account_->quote_free : 0.0;
}

}  // namespace qtos::binance
