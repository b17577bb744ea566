#include "api/binance/user_stream.hpp"

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
#include <boost/json.hpp>

namespace qtos::binance {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

struct UserStream::Impl {
  asio::io_context ioc;
  asio::ssl::context ssl{asio::ssl::context::tls_client};
  std::unique_ptr<websocket::stream<beast::ssl_stream<beast::tcp_stream>>> ws;
  asio::steady_timer timer{ioc};
  asio::steady_timer keepalive{ioc};
  std::atomic<bool> stopping{false};
  std::mt19937_64 rng;
  std::unique_ptr<HttpsClient> rest;
  std::string listen_key;
  std::function<asio::awaitable<void>()> loop;  // the coroutine's closure outlives its suspensions
};

UserStream::UserStream(UserStreamOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  if (!options_.on_event) throw std::invalid_argument("user stream: no on_event callback");
  if (options_.api_key.empty()) throw std::invalid_argument("user stream: empty API key");
  if (options_.market == MarketKind::spot && options_.signer == nullptr)
    throw std::invalid_argument("user stream: spot subscribes with a signature: a signer is required");
  if (options_.backoff_min.count() <= 0 || options_.backoff_max < options_.backoff_min)
    throw std::invalid_argument("user stream: back-off must satisfy 0 < min <= max");
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
  if (ec) throw std::invalid_argument("user stream CA file '" + options_.ws.ca_file + "': " + ec.message());
  impl_->ssl.set_verify_mode(asio::ssl::verify_peer);
  if (options_.market != MarketKind::spot) impl_->rest = std::make_unique<HttpsClient>(options_.rest);
}

UserStream::~UserStream() { stop(); }

void UserStream::start() {
  if (thread_.joinable()) return;
  Impl& im = *impl_;
  const auto note = [this](const std::string& s) {
    if (options_.on_note) options_.on_note(s);
  };

  auto session = [this, &im, note]() mutable -> asio::awaitable<bool> {
    const bool spot = options_.market == MarketKind::spot;
    std::string target = "/ws-api/v3";
    if (!spot) {
      // A fresh listenKey for every connection: an expired one is the usual reason to be here.
      const HttpReply r = im.rest->request("POST", "/fapi/v1/listenKey", {{"X-MBX-APIKEY", options_.api_key}}, options_.rest_timeout);
      json::error_code ec;
      const json::value v = r.transport == Transport::ok && r.status == 200 ? json::parse(r.body, ec) : json::value();
      if (ec || !v.is_object() || !v.as_object().contains("listenKey"))
        throw std::runtime_error("listenKey not granted (" + (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error) + ")");
      im.listen_key = std::string(v.as_object().at("listenKey").as_string());
      target = "/ws/" + im.listen_key;
    }
    // Named locals, not temporaries, in co_await expressions (GCC 12 mishandles temporaries across a suspension).
    const std::string port = std::to_string(options_.ws.port);
    const std::string host_header = options_.ws.port == 443 ? options_.ws.host : options_.ws.host + ":" + port;
    tcp::resolver resolver(im.ioc);
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
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = options_.idle_timeout;
    t.keep_alive_pings = true;
    im.ws->set_option(t);
    co_await im.ws->async_handshake(host_header, target, asio::use_awaitable);
    beast::flat_buffer buffer;
    if (spot) {
      const std::string key = options_.api_key, ts = std::to_string(options_.now_ms());
      const std::string sig = options_.signer->sign(ws_api_payload({{"apiKey", key}, {"timestamp", ts}}));
      const std::string request = json::serialize(json::object{
          {"id", "qtos-user-stream"},
          {"method", "userDataStream.subscribe.signature"},
          {"params", json::object{{"apiKey", key}, {"timestamp", std::stoll(ts)}, {"signature", sig}}}});
      im.ws->text(true);
      co_await im.ws->async_write(asio::buffer(request), asio::use_awaitable);
      co_await im.ws->async_read(buffer, asio::use_awaitable);
      const std::string answer = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      json::error_code ec;
      const json::value v = json::parse(answer, ec);
      if (ec || !v.is_object() || !v.as_object().contains("status") || v.as_object().at("status").to_number<int>() != 200)
        throw std::runtime_error("subscription refused: " + answer.substr(0, 300));
    }
    ++connects_;
    if (connects_ > 1 && options_.on_reconnected) options_.on_reconnected();
    if (!spot) {
      // The keep-alive runs beside the reads; it ends with the connection (its timer is cancelled then).
      asio::co_spawn(im.ioc, [this, &im, note]() -> asio::awaitable<void> {
        for (;;) {
          im.keepalive.expires_after(options_.keepalive);
          boost::system::error_code ec;
          co_await im.keepalive.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          if (ec || im.stopping) co_return;
          const HttpReply r = im.rest->request("PUT", "/fapi/v1/listenKey", {{"X-MBX-APIKEY", options_.api_key}}, options_.rest_timeout);
          if (r.transport != Transport::ok || r.status != 200) note("listenKey keep-alive failed; the stream will be renewed if it expires");
        }
      }, asio::detached);
    }
    while (!im.stopping) {
      co_await im.ws->async_read(buffer, asio::use_awaitable);
      const std::string text = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      if (text.find("\"listenKeyExpired\"") != std::string::npos) throw std::runtime_error("listenKey expired");
      if (text.find("\"serverShutdown\"") != std::string::npos) throw std::runtime_error("the server is shutting down");
      options_.on_event(text);
    }
    co_return true;
  };

  im.loop = [this, &im, session, note]() mutable -> asio::awaitable<void> {
    int failures = 0;
    while (!im.stopping) {
      bool ok = false;
      std::string why;
      try {
        ok = co_await session();
      } catch (const std::exception& e) {
        why = e.what();
      }
      im.keepalive.cancel();
      im.ws.reset();
      if (im.stopping) break;
      failures = ok ? 1 : failures + 1;  // a connection that worked starts the back-off again
      const double base = std::min<double>(static_cast<double>(options_.backoff_max.count()),
                                           static_cast<double>(options_.backoff_min.count()) * std::pow(2.0, std::min(failures - 1, 20)));
      const double jitter = 0.5 + 0.5 * std::uniform_real_distribution<double>(0.0, 1.0)(im.rng);
      const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter));
      note("user stream lost (" + (why.empty() ? std::string("closed") : why) + "): reconnecting in " + std::to_string(delay.count()) + " ms");
      im.timer.expires_after(delay);
      boost::system::error_code ec;
      co_await im.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  };
  asio::co_spawn(im.ioc, im.loop(), asio::detached);
  thread_ = std::thread([&im] { im.ioc.run(); });
}

void UserStream::stop() {
  if (!thread_.joinable()) return;
  Impl& im = *impl_;
  im.stopping = true;
  asio::post(im.ioc, [&im] {
    im.timer.cancel();
    im.keepalive.cancel();
    if (im.ws) {
      beast::error_code ec;
      beast::get_lowest_layer(*im.ws).socket().close(ec);
    }
  });
  thread_.join();
}

}  // namespace qtos::binance
