#include "api/binance/ws_session.hpp"

#include <algorithm>
#include <cmath>
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

namespace qtos::binance {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds ws_backoff_delay(std::chrono::milliseconds backoff_min, std::chrono::milliseconds backoff_max,
                                           int failures, double jitter) {
  const double base = std::min<double>(static_cast<double>(backoff_max.count()),
                                       static_cast<double>(backoff_min.count()) * std::pow(2.0, std::clamp(failures - 1, 0, 20)));
  return std::chrono::milliseconds(static_cast<std::int64_t>(base * std::clamp(jitter, 0.5, 1.0)));
}

// The coroutines are members: their frames hold `this`, never a lambda's closure that could die at a suspension.
struct WsSession::Impl {
  WsSession& owner;
  const WsSessionOptions& o;
  asio::io_context ioc;
  asio::ssl::context ssl{asio::ssl::context::tls_client};
  std::unique_ptr<websocket::stream<beast::ssl_stream<beast::tcp_stream>>> ws;
  asio::steady_timer backoff_timer{ioc};
  asio::steady_timer periodic_timer{ioc};
  std::atomic<bool> stopping{false};
  std::mt19937_64 rng;
  std::uint64_t generation = 0;  // connections attempted; a periodic task of an older one ends
  bool worked = false;           // the attempt in hand opened and read a frame (or stayed open for backoff_max)
  Clock::time_point opened_at{};

  Impl(WsSession& s, const WsSessionOptions& opts) : owner(s), o(opts) {}

  void note(const std::string& s) const {
    if (o.on_note) o.on_note(s);
  }

  asio::awaitable<void> periodic_loop(std::uint64_t gen) {
    for (;;) {
      periodic_timer.expires_after(o.periodic_every);
      boost::system::error_code ec;
      co_await periodic_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec || stopping || gen != generation) co_return;
      o.periodic();
    }
  }

  asio::awaitable<void> connection() {
    // Named locals, not temporaries, in co_await expressions (GCC 12 mishandles temporaries across a suspension).
    const std::string target = o.target();
    const std::string port = std::to_string(o.endpoint.port);
    const std::string host_header = o.endpoint.port == 443 ? o.endpoint.host : o.endpoint.host + ":" + port;
    tcp::resolver resolver(ioc);
    const auto eps = co_await resolver.async_resolve(o.endpoint.host, port, asio::use_awaitable);
    ws = std::make_unique<websocket::stream<beast::ssl_stream<beast::tcp_stream>>>(ioc, ssl);
    auto& lowest = beast::get_lowest_layer(*ws);
    lowest.expires_after(std::chrono::seconds(10));
    co_await lowest.async_connect(eps, asio::use_awaitable);
    if (!SSL_set_tlsext_host_name(ws->next_layer().native_handle(), o.endpoint.host.c_str()))
      throw std::runtime_error("TLS: cannot set the server name");
    ws->next_layer().set_verify_callback(asio::ssl::host_name_verification(o.endpoint.host));
    co_await ws->next_layer().async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    lowest.expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = o.reconnect.idle_timeout;
    t.keep_alive_pings = true;
    ws->set_option(t);
    co_await ws->async_handshake(host_header, target, asio::use_awaitable);
    ws->text(true);
    beast::flat_buffer buffer;
    const std::string hello = o.hello ? o.hello() : std::string();
    if (!hello.empty()) {
      co_await ws->async_write(asio::buffer(hello), asio::use_awaitable);
      co_await ws->async_read(buffer, asio::use_awaitable);
      const std::string answer = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      if (o.hello_check) o.hello_check(answer);
    }
    opened_at = Clock::now();
    const std::uint64_t n = ++owner.connects_;
    if (o.on_open) o.on_open(n);
    if (o.periodic && o.periodic_every.count() > 0) asio::co_spawn(ioc, periodic_loop(generation), asio::detached);
    while (!stopping) {
      co_await ws->async_read(buffer, asio::use_awaitable);
      worked = true;
      const std::string text = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      o.on_text(text);
    }
  }

  asio::awaitable<void> run() {
    int failures = 0;
    while (!stopping) {
      ++generation;
      worked = false;
      opened_at = Clock::time_point{};
      std::string why;
      try {
        co_await connection();
      } catch (const std::exception& e) {
        why = e.what();
      }
      periodic_timer.cancel();
      if (opened_at != Clock::time_point{} && Clock::now() - opened_at >= o.reconnect.backoff_max) worked = true;
      ws.reset();
      if (stopping) break;
      failures = worked ? 1 : failures + 1;
      const double jitter = 0.5 + 0.5 * std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      const auto delay = ws_backoff_delay(o.reconnect.backoff_min, o.reconnect.backoff_max, failures, jitter);
      note(o.name + " lost (" + (why.empty() ? std::string("closed") : why) + "): reconnecting in " +
           std::to_string(delay.count()) + " ms");
      backoff_timer.expires_after(delay);
      boost::system::error_code ec;
      co_await backoff_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
};

WsSession::WsSession(WsSessionOptions options) : options_(std::move(options)) {
  if (!options_.target) throw std::invalid_argument(options_.name + ": no target (the request path of each connection)");
  if (!options_.on_text) throw std::invalid_argument(options_.name + ": no on_text callback");
  if (options_.reconnect.backoff_min.count() <= 0 || options_.reconnect.backoff_max < options_.reconnect.backoff_min)
    throw std::invalid_argument(options_.name + ": back-off must satisfy 0 < min <= max");
  if (options_.periodic_every.count() < 0) throw std::invalid_argument(options_.name + ": periodic_every must be >= 0");
  impl_ = std::make_unique<Impl>(*this, options_);
  impl_->rng.seed(options_.reconnect.seed);
  boost::system::error_code ec;
  if (options_.endpoint.ca_file.empty())
    impl_->ssl.set_default_verify_paths(ec);
  else
    impl_->ssl.load_verify_file(options_.endpoint.ca_file, ec);
  if (ec) throw std::invalid_argument(options_.name + " CA file '" + options_.endpoint.ca_file + "': " + ec.message());
  impl_->ssl.set_verify_mode(asio::ssl::verify_peer);
}

WsSession::~WsSession() { stop(); }

void WsSession::start() {
  if (thread_.joinable()) return;
  Impl& im = *impl_;
  asio::co_spawn(im.ioc, im.run(), asio::detached);
  thread_ = std::thread([&im] { im.ioc.run(); });
}

void WsSession::stop() {
  if (!thread_.joinable()) return;
  Impl& im = *impl_;
  im.stopping = true;
  asio::post(im.ioc, [&im] {
    im.backoff_timer.cancel();
    im.periodic_timer.cancel();
    if (im.ws) {
      beast::error_code ec;
      beast::get_lowest_layer(*im.ws).socket().close(ec);
    }
  });
  thread_.join();
}

}  // namespace qtos::binance
