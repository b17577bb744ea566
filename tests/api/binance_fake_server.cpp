#include "tests/api/binance_fake_server.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "api/binance/signing.hpp"

namespace qtos::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// A self-signed certificate for "localhost" and 127.0.0.1 that is its own trust anchor (CA:TRUE).
void certificate_make(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) throw std::runtime_error("test certificate: EC key generation failed");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"}, std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                                   std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  FILE* f = std::fopen(cert_path.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

std::string pct_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string num_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.8f", v);
  return buf;
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct FakeBinance::Impl {
  bool futures = true, tls = true;
  std::string api_key, secret;
  asio::io_context ioc;
  asio::ssl::context ssl{asio::ssl::context::tls_server};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  std::string dir;

  mutable std::mutex mu;
  std::map<std::string, std::deque<FakeFault>> faults;
  std::int64_t skew = 0, used_weight = 0, next_order = 1000, next_trade = 500;
  std::map<std::string, std::pair<double, int>> prices;
  bool duplicate_trades = false;
  bool user_events = false;
  bool marketable_limits = false;
  std::vector<FakeOrder> orders;
  std::vector<FakeTrade> trades;
  std::map<std::string, double> position, entry;
  double wallet = 10'000;
  std::vector<std::string> log;
  struct Kline {
    std::int64_t open, interval;
    double close;
  };
  std::map<std::string, std::vector<Kline>> klines;
  std::vector<std::string> ws_targets;
  int listen_keys = 0;

  // One accepted WebSocket connection (touched only on the server thread).
  struct WsConn {
    websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws;
    std::deque<std::string> out;
    std::string target;
    asio::steady_timer wake;
    bool closed = false;
    WsConn(beast::ssl_stream<beast::tcp_stream>&& s, asio::io_context& ioc) : ws(std::move(s)), wake(ioc) {}
  };
  std::vector<std::weak_ptr<WsConn>> conns;

  struct Answer {
    int status = 200;
    std::string body;
    int retry_after = -1;
    int delay_ms = 0;
    bool reset = false;
  };

  static Answer error(int status, int code, const std::string& msg) {
    return Answer{status, json::serialize(json::object{{"code", code}, {"msg", msg}})};
  }

  json::object order_json(const FakeOrder& o) const {
    json::object j{{"symbol", o.symbol}, {"orderId", o.order_id}, {"clientOrderId", o.client_id}, {"price", num_text(o.price)},
                   {"origQty", num_text(o.qty)}, {"executedQty", num_text(o.executed)}, {"status", o.status}, {"type", o.type},
                   {"side", o.side}, {"stopPrice", num_text(o.stop_price)}, {"updateTime", wall_ms() + skew}};
    if (futures) {
      j["cumQuote"] = num_text(o.quote);
      j["avgPrice"] = num_text(o.executed > 0 ? o.quote / o.executed : 0);
      j["reduceOnly"] = o.reduce_only;
    } else {
      j["cummulativeQuoteQty"] = num_text(o.quote);
    }
    return j;
  }

  void fill(FakeOrder& o) {
    const auto pit = prices.find(o.symbol);
    const double px = pit == prices.end() ? 100.0 : pit->second.first;
    const int parts = pit == prices.end() ? 1 : pit->second.second;
    double left = o.qty;
    for (int i = 0; i < parts; ++i) {
      const double q = i + 1 == parts ? left : std::floor(o.qty / parts * 1000) / 1000;
      left -= q;
      FakeTrade t{++next_trade, o.order_id, o.symbol, o.side == "BUY", q, px, q * px * 0.0004};
      trades.push_back(t);
      const double signed_q = t.buy ? q : -q;
      double& pos = position[o.symbol];
      if ((pos >= 0 && signed_q > 0) || (pos <= 0 && signed_q < 0))
        entry[o.symbol] = (entry[o.symbol] * std::abs(pos) + px * q) / (std::abs(pos) + q);
      pos += signed_q;
      if (std::abs(pos) < 1e-12) pos = 0;
      wallet -= t.commission;
      o.executed += q;
      o.quote += q * px;
      if (user_events && futures) {
        const json::object ev{{"e", "ORDER_TRADE_UPDATE"}, {"E", wall_ms() + skew}, {"T", wall_ms() + skew},
                              {"o", json::object{{"s", o.symbol}, {"c", o.client_id}, {"S", o.side}, {"o", o.type}, {"q", num_text(o.qty)},
                                                 {"p", num_text(o.price)}, {"x", "TRADE"}, {"X", i + 1 == parts ? "FILLED" : "PARTIALLY_FILLED"},
                                                 {"i", o.order_id}, {"l", num_text(q)}, {"z", num_text(o.executed)}, {"L", num_text(px)},
                                                 {"n", num_text(t.commission)}, {"N", "USDT"}, {"T", wall_ms() + skew}, {"t", t.id},
                                                 {"m", false}, {"R", o.reduce_only}}}};
        asio::post(ioc, [this, text = json::serialize(ev)] {
          for (auto& w : conns)
            if (auto c = w.lock(); c && !c->closed && c->target.rfind("/ws/", 0) == 0) {
              c->out.push_back(text);
              c->wake.cancel();
            }
        });
      }
    }
    o.status = "FILLED";
  }

  // A limit order at or through the market price (a buy at or above it, a sell at or below it).
  bool crosses(const FakeOrder& o) const {
    const auto pit = prices.find(o.symbol);
    const double px = pit == prices.end() ? 100.0 : pit->second.first;
    return o.side == "BUY" ? o.price >= px : o.price <= px;
  }

  FakeOrder* find(const std::string& symbol, const std::string& cid) {
    for (auto it = orders.rbegin(); it != orders.rend(); ++it)
      if (it->symbol == symbol && it->client_id == cid) return &*it;
    return nullptr;
  }

  Answer route(const std::string& method, const std::string& path, std::map<std::string, std::string>& q) {
    const std::string p = path;
    if (p == "/api/v3/time" || p == "/fapi/v1/time") return Answer{200, json::serialize(json::object{{"serverTime", wall_ms() + skew}})};
    if (p == "/api/v3/exchangeInfo" || p == "/fapi/v1/exchangeInfo") {
      json::array filters{json::object{{"filterType", "PRICE_FILTER"}, {"tickSize", "0.10"}, {"minPrice", "0.10"}, {"maxPrice", "1000000"}},
                          json::object{{"filterType", "LOT_SIZE"}, {"stepSize", "0.001"}, {"minQty", "0.001"}, {"maxQty", "1000"}}};
      if (futures)
        filters.push_back(json::object{{"filterType", "MIN_NOTIONAL"}, {"notional", "5"}});
      else
        filters.push_back(json::object{{"filterType", "NOTIONAL"}, {"minNotional", "5.00000000"}, {"applyMinToMarket", true}});
      json::object sym{{"symbol", "BTCUSDT"}, {"status", "TRADING"}, {"baseAsset", "BTC"}, {"quoteAsset", "USDT"}, {"filters", filters}};
      json::array limits{json::object{{"rateLimitType", "REQUEST_WEIGHT"}, {"interval", "MINUTE"}, {"intervalNum", 1}, {"limit", 2400}}};
      return Answer{200, json::serialize(json::object{{"symbols", json::array{sym}}, {"rateLimits", limits}})};
    }
    if (p == "/api/v3/ticker/price" || p == "/fapi/v1/ticker/price") {
      const auto it = prices.find(q["symbol"]);
      return Answer{200, json::serialize(json::object{{"symbol", q["symbol"]}, {"price", num_text(it == prices.end() ? 100.0 : it->second.first)}})};
    }
    if (p == "/api/v3/klines" || p == "/fapi/v1/klines") {
      const std::int64_t from = std::strtoll(q["startTime"].c_str(), nullptr, 10);
      json::array a;
      for (const Kline& k : klines[q["symbol"]]) {
        if (k.open < from) continue;
        a.push_back(json::array{k.open, num_text(k.close - 0.5), num_text(k.close + 1), num_text(k.close - 1), num_text(k.close), "10",
                                k.open + k.interval - 1, "1000", 50, "5", "500", "0"});
      }
      return Answer{200, json::serialize(a)};
    }
    if (p == "/fapi/v1/listenKey") {
      if (method == "POST") return Answer{200, json::serialize(json::object{{"listenKey", "lk" + std::to_string(++listen_keys)}})};
      return Answer{200, "{}"};
    }
    // Everything below is SIGNED.
    if (q.count("signature") == 0) return error(400, -1102, "Mandatory parameter 'signature' was not sent.");
    const std::int64_t ts = std::strtoll(q["timestamp"].c_str(), nullptr, 10);
    const std::int64_t window = q.count("recvWindow") ? std::strtoll(q["recvWindow"].c_str(), nullptr, 10) : 5000;
    const std::int64_t server = wall_ms() + skew;
    if (!(ts < server + 1000 && server - ts <= window))
      return error(400, -1021, "Timestamp for this request is outside of the recvWindow.");
    if (p == "/fapi/v1/marginType") return error(400, -4046, "No need to change margin type.");
    if (p == "/fapi/v1/leverage") return Answer{200, json::serialize(json::object{{"symbol", q["symbol"]}, {"leverage", std::stoi(q["leverage"])}})};
    if (p == "/fapi/v1/countdownCancelAll")
      return Answer{200, json::serialize(json::object{{"symbol", q["symbol"]}, {"countdownTime", q["countdownTime"]}})};
    if (p == "/api/v3/order" || p == "/fapi/v1/order") {
      if (method == "POST") {
        if (FakeOrder* o = find(q["symbol"], q["newClientOrderId"]); o != nullptr) return error(400, -2010, "Duplicate order sent.");
        FakeOrder o;
        o.order_id = ++next_order;
        o.client_id = q["newClientOrderId"];
        o.symbol = q["symbol"];
        o.side = q["side"];
        o.type = q["type"];
        o.qty = std::strtod(q["quantity"].c_str(), nullptr);
        o.price = std::strtod(q["price"].c_str(), nullptr);
        o.stop_price = std::strtod(q["stopPrice"].c_str(), nullptr);
        o.reduce_only = q["reduceOnly"] == "true";
        o.status = "NEW";
        if (o.type == "MARKET" || (marketable_limits && o.type == "LIMIT" && crosses(o))) fill(o);
        orders.push_back(o);
        return Answer{200, json::serialize(order_json(o))};
      }
      FakeOrder* o = find(q["symbol"], q["origClientOrderId"]);
      if (method == "GET") return o ? Answer{200, json::serialize(order_json(*o))} : error(400, -2013, "Order does not exist.");
      if (method == "DELETE") {
        if (o == nullptr || o->status != "NEW") return error(400, -2011, "Unknown order sent.");
        o->status = "CANCELED";
        return Answer{200, json::serialize(order_json(*o))};
      }
    }
    if (p == "/api/v3/openOrders" || p == "/fapi/v1/openOrders") {
      json::array a;
      for (const FakeOrder& o : orders)
        if (o.status == "NEW" || o.status == "PARTIALLY_FILLED") a.push_back(order_json(o));
      return Answer{200, json::serialize(a)};
    }
    if (p == "/api/v3/myTrades" || p == "/fapi/v1/userTrades") {
      json::array a;
      const std::int64_t oid = std::strtoll(q["orderId"].c_str(), nullptr, 10);
      for (const FakeTrade& t : trades) {
        if (t.order_id != oid) continue;
        json::object j{{"id", t.id}, {"orderId", t.order_id}, {"symbol", t.symbol}, {"price", num_text(t.price)}, {"qty", num_text(t.qty)},
                       {"commission", num_text(t.commission)}, {"commissionAsset", "USDT"}, {"time", wall_ms()}};
        if (futures) j["maker"] = false; else j["isMaker"] = false;
        a.push_back(j);
      }
      if (duplicate_trades) {
        json::array twice;
        for (auto it = a.rbegin(); it != a.rend(); ++it) twice.push_back(*it);
        for (auto it = a.rbegin(); it != a.rend(); ++it) twice.push_back(*it);
        a = twice;
      }
      return Answer{200, json::serialize(a)};
    }
    if (p == "/fapi/v3/positionRisk") {
      json::array a;
      for (const auto& [s, qty] : position)
        if (qty != 0)
          a.push_back(json::object{{"symbol", s}, {"positionAmt", num_text(qty)}, {"entryPrice", num_text(entry[s])}, {"markPrice", num_text(prices[s].first)},
                                   {"unRealizedProfit", "0"}, {"liquidationPrice", "0"}, {"isolatedMargin", "0"}});
      return Answer{200, json::serialize(a)};
    }
    if (p == "/fapi/v3/account")
      return Answer{200, json::serialize(json::object{{"totalMarginBalance", num_text(wallet)}, {"availableBalance", num_text(wallet)},
                                                      {"assets", json::array{json::object{{"asset", "USDT"}, {"walletBalance", num_text(wallet)},
                                                                                          {"availableBalance", num_text(wallet)}}}}})};
    if (p == "/api/v3/account") {
      json::array b{json::object{{"asset", "USDT"}, {"free", num_text(wallet)}, {"locked", "0"}}};
      if (position["BTCUSDT"] != 0) b.push_back(json::object{{"asset", "BTC"}, {"free", num_text(position["BTCUSDT"])}, {"locked", "0"}});
      return Answer{200, json::serialize(json::object{{"balances", b}})};
    }
    return error(404, -1000, "no such route in the fake: " + method + " " + p);
  }

  // Parses, checks the key and signature, applies the fault, routes.
  Answer handle(const http::request<http::string_body>& req) {
    std::lock_guard lock(mu);
    const std::string target(req.target());
    const auto qpos = target.find('?');
    const std::string path = target.substr(0, qpos);
    const std::string query = qpos == std::string::npos ? "" : target.substr(qpos + 1);
    const std::string method(req.method_string());
    const std::string route_key = method + " " + path;
    log.push_back(route_key);
    std::map<std::string, std::string> q;
    std::size_t start = 0;
    while (start < query.size()) {
      std::size_t end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      const std::string kv = query.substr(start, end - start);
      const auto eq = kv.find('=');
      q[pct_decode(kv.substr(0, eq))] = eq == std::string::npos ? "" : pct_decode(kv.substr(eq + 1));
      start = end + 1;
    }
    if (const auto sig = query.find("&signature="); sig != std::string::npos) {
      if (req["X-MBX-APIKEY"] != api_key) return error(401, -2015, "Invalid API-key, IP, or permissions for action.");
      if (binance::hmac_sha256_hex(secret, query.substr(0, sig)) != q["signature"])
        return error(400, -1022, "Signature for this request is not valid.");
    }
    ++used_weight;
    std::optional<FakeFault> f;
    if (auto it = faults.find(route_key); it != faults.end() && !it->second.empty()) {
      f = it->second.front();
      it->second.pop_front();
    }
    if (!f) return route(method, path, q);
    Answer a;
    if (f->kind == FakeFault::Kind::not_found) return error(400, -2013, "Order does not exist.");
    if (f->apply) a = route(method, path, q);
    if (f->kind == FakeFault::Kind::delay) {
      if (!f->apply) a = route(method, path, q);
      a.delay_ms = f->delay_ms;
    } else if (f->kind == FakeFault::Kind::reset) {
      a.reset = true;
    } else {
      a = f->code != 0 ? error(f->status, f->code, f->msg) : Answer{f->status, "<html>upstream error</html>"};
      a.retry_after = f->retry_after_s;
    }
    return a;
  }

  // Answers requests until the client closes, or returns a WebSocket upgrade request for the caller to accept.
  template <class Stream>
  asio::awaitable<std::optional<http::request<http::string_body>>> serve(Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      co_await http::async_read(stream, buffer, req, asio::use_awaitable);
      if (websocket::is_upgrade(req)) co_return req;
      Answer a = handle(req);
      if (a.delay_ms > 0) {
        asio::steady_timer t(ioc, std::chrono::milliseconds(a.delay_ms));
        co_await t.async_wait(asio::use_awaitable);
      }
      if (a.reset) co_return std::nullopt;
      http::response<http::string_body> res{static_cast<http::status>(a.status), 11};
      res.set(http::field::content_type, "application/json");
      {
        std::lock_guard lock(mu);
        res.set("X-MBX-USED-WEIGHT-1M", std::to_string(used_weight));
      }
      if (a.retry_after >= 0) res.set(http::field::retry_after, std::to_string(a.retry_after));
      res.keep_alive(req.keep_alive());
      res.body() = a.body;
      res.prepare_payload();
      co_await http::async_write(stream, res, asio::use_awaitable);
      if (!req.keep_alive()) co_return std::nullopt;
    }
  }

  asio::awaitable<void> ws_reader(std::shared_ptr<WsConn> c) {
    // Reading keeps control frames flowing: Beast answers the client's pings from inside the read.
    try {
      beast::flat_buffer b;
      for (;;) {
        co_await c->ws.async_read(b, asio::use_awaitable);
        const std::string text = beast::buffers_to_string(b.data());
        b.consume(b.size());
        // The WebSocket API's signature subscription: the signature checked as the venue does.
        json::error_code ec;
        const json::value v = json::parse(text, ec);
        if (ec || !v.is_object() || !v.as_object().contains("params")) continue;
        const json::object& prm = v.as_object().at("params").as_object();
        const std::string key(prm.at("apiKey").as_string());
        const std::string ts = std::to_string(prm.at("timestamp").to_number<std::int64_t>());
        const bool good = key == api_key && std::string(prm.at("signature").as_string()) ==
                                                binance::hmac_sha256_hex(secret, binance::ws_api_payload({{"apiKey", key}, {"timestamp", ts}}));
        c->out.push_back(json::serialize(json::object{{"id", v.as_object().at("id")}, {"status", good ? 200 : 400}}));
        c->wake.cancel();
      }
    } catch (const std::exception&) {
    }
    c->closed = true;
    c->wake.cancel();
  }

  asio::awaitable<void> ws_serve(beast::ssl_stream<beast::tcp_stream> stream, http::request<http::string_body> req) {
    auto c = std::make_shared<WsConn>(std::move(stream), ioc);
    c->target = std::string(req.target());
    co_await c->ws.async_accept(req, asio::use_awaitable);
    {
      std::lock_guard lock(mu);
      ws_targets.push_back(std::string(req.target()));
    }
    conns.push_back(c);
    asio::co_spawn(ioc, ws_reader(c), asio::detached);
    while (!c->closed) {
      while (!c->out.empty() && !c->closed) {
        const std::string text = c->out.front();
        c->out.pop_front();
        c->ws.text(true);
        co_await c->ws.async_write(asio::buffer(text), asio::use_awaitable);
      }
      c->wake.expires_after(std::chrono::hours(1));
      boost::system::error_code ec;
      co_await c->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    try {
      if (tls) {
        beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), ssl);
        co_await stream.async_handshake(asio::ssl::stream_base::server, asio::use_awaitable);
        if (auto up = co_await serve(stream)) co_await ws_serve(std::move(stream), std::move(*up));
      } else {
        beast::tcp_stream stream(std::move(socket));
        co_await serve(stream);
      }
    } catch (const std::exception&) {
      // A client that went away: the session ends.
    }
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
      asio::co_spawn(ioc, session(std::move(s)), asio::detached);
    }
  }
};

FakeBinance::FakeBinance(bool futures, std::string api_key, std::string secret, bool tls) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.futures = futures;
  im.tls = tls;
  im.api_key = std::move(api_key);
  im.secret = std::move(secret);
  std::string tmpl = (std::filesystem::temp_directory_path() / "qtos-fakebn-XXXXXX").string();
  im.dir = mkdtemp(tmpl.data());
  ca_file_ = im.dir + "/cert.pem";
  const std::string key = im.dir + "/key.pem";
  if (tls) {
    certificate_make(ca_file_, key);
    im.ssl.use_certificate_chain_file(ca_file_);
    im.ssl.use_private_key_file(key, asio::ssl::context::pem);
  }
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  im.acceptor.open(ep.protocol());
  im.acceptor.set_option(asio::socket_base::reuse_address(true));
  im.acceptor.bind(ep);
  im.acceptor.listen();
  port_ = im.acceptor.local_endpoint().port();
  asio::co_spawn(im.ioc, im.accept_loop(), asio::detached);
  im.thread = std::thread([&im] { im.ioc.run(); });
}

FakeBinance::~FakeBinance() {
  impl_->ioc.stop();
  impl_->thread.join();
  std::error_code ec;
  std::filesystem::remove_all(impl_->dir, ec);
}

void FakeBinance::fault(const std::string& route, FakeFault f) {
  std::lock_guard lock(impl_->mu);
  impl_->faults[route].push_back(f);
}
void FakeBinance::skew_set(std::int64_t ms) {
  std::lock_guard lock(impl_->mu);
  impl_->skew = ms;
}
void FakeBinance::price_set(const std::string& symbol, double price, int parts) {
  std::lock_guard lock(impl_->mu);
  impl_->prices[symbol] = {price, parts};
}
void FakeBinance::duplicate_trades_set(bool on) {
  std::lock_guard lock(impl_->mu);
  impl_->duplicate_trades = on;
}
void FakeBinance::used_weight_set(std::int64_t w) {
  std::lock_guard lock(impl_->mu);
  impl_->used_weight = w;
}
void FakeBinance::kline_add(const std::string& symbol, std::int64_t open_ms, std::int64_t interval_ms, double close) {
  std::lock_guard lock(impl_->mu);
  impl_->klines[symbol].push_back({open_ms, interval_ms, close});
}
void FakeBinance::marketable_limits_set(bool on) {
  std::lock_guard lock(impl_->mu);
  impl_->marketable_limits = on;
}
void FakeBinance::user_events_set(bool on) {
  std::lock_guard lock(impl_->mu);
  impl_->user_events = on;
}
void FakeBinance::ws_send(const std::string& text) {
  Impl* im = impl_.get();
  asio::post(im->ioc, [im, text] {
    for (auto& w : im->conns)
      if (auto c = w.lock(); c && !c->closed) {
        c->out.push_back(text);
        c->wake.cancel();
      }
  });
}
void FakeBinance::ws_drop() {
  Impl* im = impl_.get();
  asio::post(im->ioc, [im] {
    for (auto& w : im->conns)
      if (auto c = w.lock()) {
        beast::error_code ec;
        beast::get_lowest_layer(c->ws).socket().close(ec);
        c->closed = true;
        c->wake.cancel();
      }
  });
}
std::vector<std::string> FakeBinance::ws_targets() const {
  std::lock_guard lock(impl_->mu);
  return impl_->ws_targets;
}
std::vector<FakeOrder> FakeBinance::orders() const {
  std::lock_guard lock(impl_->mu);
  return impl_->orders;
}
std::vector<FakeTrade> FakeBinance::trades() const {
  std::lock_guard lock(impl_->mu);
  return impl_->trades;
}
double FakeBinance::position(const std::string& symbol) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->position.find(symbol);
  return it == impl_->position.end() ? 0.0 : it->second;
}
std::vector<std::string> FakeBinance::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->log;
}
int FakeBinance::count(const std::string& route) const {
  std::lock_guard lock(impl_->mu);
  int n = 0;
  for (const std::string& r : impl_->log) n += r == route;
  return n;
}

}  // namespace qtos::test
