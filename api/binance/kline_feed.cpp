#include "api/binance/kline_feed.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>

#include "api/binance/signing.hpp"
#include "runtime/data/interval.hpp"

namespace qtos::binance {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double dnum(const json::value& v) {
  if (v.is_string()) return std::strtod(std::string(v.as_string()).c_str(), nullptr);
  return v.is_number() ? v.to_number<double>() : 0.0;
}
std::int64_t inum(const json::value& v) {
  if (v.is_string()) return std::strtoll(std::string(v.as_string()).c_str(), nullptr, 10);
  return v.is_int64() ? v.as_int64() : v.is_uint64() ? static_cast<std::int64_t>(v.as_uint64()) : v.is_double() ? static_cast<std::int64_t>(v.as_double()) : 0;
}

}  // namespace

std::string kline_stream_target(const std::vector<std::string>& symbols, const std::string& interval, bool book_tickers) {
  std::string t = "/stream?streams=";
  bool first = true;
  for (const std::string& s : symbols) {
    t += (first ? "" : "/") + lower(s) + "@kline_" + interval;
    first = false;
    if (book_tickers) t += "/" + lower(s) + "@bookTicker";
  }
  return t;
}

struct KlineFeed::Impl {
  asio::io_context ioc;
  asio::ssl::context ssl{asio::ssl::context::tls_client};
  std::unique_ptr<websocket::stream<beast::ssl_stream<beast::tcp_stream>>> ws;
  asio::steady_timer timer{ioc};
  std::atomic<bool> stopping{false};
  std::map<std::string, std::int64_t> last_open;  // per symbol: the newest bar delivered
  std::int64_t interval_ms = 0;
  std::mt19937_64 rng;
  std::unique_ptr<HttpsClient> rest;
  // The coroutine's closure lives here: a lambda coroutine reads its captures through the closure object, which must
  // outlive every suspension.
  std::function<asio::awaitable<void>()> loop;
};

KlineFeed::KlineFeed(KlineFeedOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  if (options_.symbols.empty()) throw std::invalid_argument("kline feed: no symbols (expected at least one, e.g. BTCUSDT)");
  impl_->interval_ms = interval_parse_ms(options_.interval, "kline feed interval");
  if (!options_.on_bar) throw std::invalid_argument("kline feed: no on_bar callback");
  if (options_.backoff_min.count() <= 0 || options_.backoff_max < options_.backoff_min)
    throw std::invalid_argument("kline feed: back-off must satisfy 0 < min <= max");
  if (!options_.now_ms)
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  impl_->rng.seed(options_.seed);
  boost::system::error_code ec;
  if (options_.ws.ca_file.empty())
    impl_->ssl.set_default_verify_paths(ec);
  else
    impl_->ssl.load_verify_file(options_.ws.ca_file, ec);
  if (ec) throw std::invalid_argument("kline feed CA file '" + options_.ws.ca_file + "': " + ec.message());
  impl_->ssl.set_verify_mode(asio::ssl::verify_peer);
  impl_->rest = std::make_unique<HttpsClient>(options_.rest);
}

KlineFeed::~KlineFeed() { stop(); }

void KlineFeed::start(std::map<std::string, std::int64_t> last_open_ms) {
  if (thread_.joinable()) return;
  impl_->last_open = std::move(last_open_ms);
  Impl& im = *impl_;
  const std::int64_t iv = im.interval_ms;
  const auto note = [this](const std::string& s) {
    if (options_.on_note) options_.on_note(s);
  };

  // Delivers a bar once, in order; a bar after a hole brings the hole's bars from REST first.
  std::function<void(const MarketBarClosed&, bool)> deliver;
  // Reads the symbol's closed bars after its last delivered one over REST and delivers them.
  auto backfill = [this, &im, iv, note](const std::string& sym, std::int64_t until_open_ms,
                                        const std::function<void(const MarketBarClosed&, bool)>& give) {
    const auto it = im.last_open.find(sym);
    if (it == im.last_open.end()) return;  // nothing delivered yet: the stream starts the series
    for (int page = 0; page < 100; ++page) {
      const std::int64_t from = im.last_open[sym] + iv;
      if (from >= until_open_ms) return;
      const std::string target = std::string(options_.market == MarketKind::spot ? "/api/v3/klines" : "/fapi/v1/klines") + "?" +
                                 query_encode({{"symbol", sym}, {"interval", options_.interval}, {"startTime", std::to_string(from)},
                                               {"limit", "1000"}});
      const HttpReply r = im.rest->request("GET", target, {}, options_.rest_timeout);
      if (r.transport != Transport::ok || r.status != 200) {
        note("back-fill of " + sym + " failed (" + (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error) + "): bars may be missing");
        return;
      }
      json::error_code ec;
      const json::value v = json::parse(r.body, ec);
      if (ec || !v.is_array() || v.as_array().empty()) return;
      std::size_t given = 0;
      for (const json::value& row : v.as_array()) {
        if (!row.is_array() || row.as_array().size() < 9) continue;
        const json::array& k = row.as_array();
        const std::int64_t open = inum(k[0]), close_ms = inum(k[6]);
        if (open >= until_open_ms || close_ms >= options_.now_ms()) break;  // the stream's bar, or one still open
        MarketBarClosed b;
        b.symbol = sym;
        b.interval_s = static_cast<std::int32_t>(iv / 1000);
        b.open_time = open * kNsPerMillisecond;
        b.open = dnum(k[1]), b.high = dnum(k[2]), b.low = dnum(k[3]), b.close = dnum(k[4]), b.volume = dnum(k[5]);
        b.quote_volume = dnum(k[7]);
        b.trades = inum(k[8]);
        give(b, true);
        ++given;
      }
      if (given == 0) return;
    }
  };
  deliver = [this, &im, iv, backfill](const MarketBarClosed& b, bool from_rest) mutable {
    const std::string sym = b.symbol.str();
    const std::int64_t open_ms = b.open_time / kNsPerMillisecond;
    auto it = im.last_open.find(sym);
    if (it != im.last_open.end() && open_ms <= it->second) return;  // seen: a repeat or a late copy
    if (!from_rest && it != im.last_open.end() && open_ms > it->second + iv) {
      std::function<void(const MarketBarClosed&, bool)> self = [&](const MarketBarClosed& x, bool r) {
        const std::int64_t o = x.open_time / kNsPerMillisecond;
        if (o <= im.last_open[x.symbol.str()]) return;
        im.last_open[x.symbol.str()] = o;
        ++backfilled_;
        options_.on_bar(x);
        (void)r;
      };
      backfill(sym, open_ms, self);
    }
    im.last_open[sym] = open_ms;
    if (from_rest) ++backfilled_;
    options_.on_bar(b);
  };

  auto on_text = [this, deliver](const std::string& text) mutable {
    json::error_code ec;
    const json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) return;
    const json::value* data = v.as_object().if_contains("data");
    const json::object& d = data != nullptr && data->is_object() ? data->as_object() : v.as_object();
    if (const json::value* kv = d.if_contains("k"); kv != nullptr && kv->is_object()) {
      const json::object& k = kv->as_object();
      const json::value* closed = k.if_contains("x");
      if (closed == nullptr || !closed->is_bool() || !closed->as_bool()) return;  // still open
      MarketBarClosed b;
      b.symbol = std::string(k.at("s").as_string());
      b.interval_s = static_cast<std::int32_t>(impl_->interval_ms / 1000);
      b.open_time = inum(k.at("t")) * kNsPerMillisecond;
      b.open = dnum(k.at("o")), b.high = dnum(k.at("h")), b.low = dnum(k.at("l")), b.close = dnum(k.at("c"));
      b.volume = dnum(k.at("v"));
      if (const auto* q = k.if_contains("q")) b.quote_volume = dnum(*q);
      if (const auto* n = k.if_contains("n")) b.trades = inum(*n);
      deliver(b, false);
      return;
    }
    if (options_.on_book && d.contains("s") && d.contains("b") && d.contains("a")) {
      BookTicker t;
      t.symbol = std::string(d.at("s").as_string());
      t.bid = dnum(d.at("b"));
      t.ask = dnum(d.at("a"));
      options_.on_book(t);
    }
  };

  auto session = [this, &im, note, backfill, deliver, on_text]() mutable -> asio::awaitable<bool> {
    tcp::resolver resolver(im.ioc);
    // Named locals, not temporaries, in co_await expressions (GCC 12 mishandles temporaries across a suspension).
    const std::string port = std::to_string(options_.ws.port);
    const std::string host_header = options_.ws.port == 443 ? options_.ws.host : options_.ws.host + ":" + port;
    const std::string target = kline_stream_target(options_.symbols, options_.interval, options_.book_tickers);
    const auto eps = co_await resolver.async_resolve(options_.ws.host, port, asio::use_awaitable);
    im.ws = std::make_unique<websocket::stream<beast::ssl_stream<beast::tcp_stream>>>(im.ioc, im.ssl);
    auto& lowest = beast::get_lowest_layer(*im.ws);
    lowest.expires_after(std::chrono::seconds(10));
    co_await lowest.async_connect(eps, asio::use_awaitable);
    if (!SSL_set_tlsext_host_name(im.ws->next_layer().native_handle(), options_.ws.host.c_str()))
      throw std::runtime_error("TLS: cannot set the server name");
    im.ws->next_layer().set_verify_callback(asio::ssl::host_name_verification(options_.ws.host));
    co_await im.ws->next_layer().async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    lowest.expires_never();
    // Beast answers the venue's pings, pings an idle connection itself, and fails one that stays silent.
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = options_.idle_timeout;
    t.keep_alive_pings = true;
    im.ws->set_option(t);
    co_await im.ws->async_handshake(host_header, target, asio::use_awaitable);
    ++connects_;
    // What closed while we were away comes from REST before the stream resumes.
    const std::int64_t now_open = (options_.now_ms() / im.interval_ms) * im.interval_ms;
    for (const std::string& s : options_.symbols) backfill(s, now_open, deliver);
    bool got = false;
    beast::flat_buffer buffer;
    while (!im.stopping) {
      co_await im.ws->async_read(buffer, asio::use_awaitable);
      got = true;
      const std::string text = beast::buffers_to_string(buffer.data());
      on_text(text);
      buffer.consume(buffer.size());
    }
    co_return got;
  };

  auto loop = [this, &im, session, note]() mutable -> asio::awaitable<void> {
    int failures = 0;
    while (!im.stopping) {
      bool delivered = false;
      std::string why;
      try {
        delivered = co_await session();
      } catch (const std::exception& e) {
        why = e.what();
      }
      im.ws.reset();
      if (im.stopping) break;
      failures = delivered ? 1 : failures + 1;
      // Exponential back-off with jitter in [50%, 100%]: a fleet of clients does not reconnect in step.
      const double base = std::min<double>(static_cast<double>(options_.backoff_max.count()),
                                           static_cast<double>(options_.backoff_min.count()) * std::pow(2.0, std::min(failures - 1, 20)));
      const double jitter = 0.5 + 0.5 * std::uniform_real_distribution<double>(0.0, 1.0)(im.rng);
      const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter));
      note("stream lost (" + (why.empty() ? std::string("closed") : why) + "): reconnecting in " + std::to_string(delay.count()) + " ms");
      im.timer.expires_after(delay);
      boost::system::error_code ec;
      co_await im.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  };

  im.loop = std::move(loop);
  asio::co_spawn(im.ioc, im.loop(), asio::detached);
  thread_ = std::thread([&im] { im.ioc.run(); });
}

void KlineFeed::stop() {
  if (!thread_.joinable()) return;
  Impl& im = *impl_;
  im.stopping = true;
  asio::post(im.ioc, [&im] {
    im.timer.cancel();
    if (im.ws) {
      beast::error_code ec;
      beast::get_lowest_layer(*im.ws).socket().close(ec);
    }
  });
  thread_.join();
}

}  // namespace qtos::binance
