#include "api/notify/http_post.hpp"

#include <cstdlib>
#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#if QTOS_HAVE_OPENSSL
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#endif

#include "runtime/config/config.hpp"

namespace qtos::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

#if QTOS_HAVE_OPENSSL
struct HttpPoster::Tls {
  asio::ssl::context context{asio::ssl::context::tls_client};
};
bool http_post_tls_available() { return true; }
#else
struct HttpPoster::Tls {};
bool http_post_tls_available() { return false; }
#endif

namespace {

std::optional<std::chrono::milliseconds> seconds_to_ms(double s) {
  if (!(s >= 0) || s > 86400) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0 + 0.5));
}

// Retry-After in seconds (the HTTP-date form is not used by webhook services), else Discord's JSON `retry_after`.
std::optional<std::chrono::milliseconds> retry_after(const http::response<http::string_body>& res) {
  if (auto it = res.find(http::field::retry_after); it != res.end()) {
    const std::string text(it->value());
    char* end = nullptr;
    const double s = std::strtod(text.c_str(), &end);
    if (end != text.c_str() && *end == '\0') return seconds_to_ms(s);
  }
  boost::system::error_code ec;
  const auto v = boost::json::parse(res.body(), ec);
  if (!ec && v.is_object())
    if (const auto* ra = v.as_object().if_contains("retry_after"))
      if (ra->is_number()) return seconds_to_ms(ra->to_number<double>());
  return std::nullopt;
}

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, tcp::resolver& resolver, const WebhookUrl& url, const std::string& body,
                               std::chrono::steady_clock::time_point deadline, HttpPostResult& out) {
  auto& socket = beast::get_lowest_layer(stream);
  socket.expires_at(deadline);
  const auto endpoints = co_await resolver.async_resolve(url.host, std::to_string(url.port), asio::use_awaitable);
  co_await socket.async_connect(endpoints, asio::use_awaitable);
#if QTOS_HAVE_OPENSSL
  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    // SNI, then the chain (default trust store) and the host name are checked in the handshake.
    if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()))
      throw beast::system_error(beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
    stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
  }
#endif
  http::request<http::string_body> req{http::verb::post, url.target, 11};
  const bool default_port = url.port == (url.tls ? 443 : 80);
  const std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  req.set(http::field::host, default_port ? host : host + ":" + std::to_string(url.port));
  req.set(http::field::user_agent, "qtos-notifier");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::connection, "close");
  req.body() = body;
  req.prepare_payload();
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
  const auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  out.retry_after = retry_after(res);
  beast::error_code ignored;
  socket.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

template <class Stream>
HttpPostResult run(asio::io_context& ioc, Stream& stream, const WebhookUrl& url, const std::string& body,
                   std::chrono::steady_clock::time_point deadline, const std::function<bool()>& cancelled) {
  HttpPostResult out;
  tcp::resolver resolver(ioc);
  bool done = false;
  asio::co_spawn(ioc, exchange(stream, resolver, url, body, deadline, out), [&](std::exception_ptr e) {
    done = true;
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      out.status = 0;
      out.error = ex.what();
    }
  });
  bool aborted = false;
  while (!ioc.stopped()) {
    ioc.run_for(std::chrono::milliseconds(20));
    if (done || aborted) continue;
    const bool late = std::chrono::steady_clock::now() >= deadline;
    if (late || (cancelled && cancelled())) {
      // The stream's own expiry covers connect and I/O; the resolver and a stop need this.
      aborted = true;
      resolver.cancel();
      beast::get_lowest_layer(stream).close();
      out.error = late ? "timed out" : "cancelled at stop";
    }
  }
  if (aborted) out.status = 0;
  return out;
}

}  // namespace

HttpPoster::HttpPoster(WebhookUrl url) : url_(std::move(url)) {
  if (!url_.tls) return;
#if QTOS_HAVE_OPENSSL
  tls_ = std::make_unique<Tls>();
  tls_->context.set_default_verify_paths();
  tls_->context.set_verify_mode(asio::ssl::verify_peer);
  tls_->context.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                            asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
#else
  throw ConfigError("QT_NOTIFY_WEBHOOK_URL is https:// but this build has no TLS (OpenSSL was not found at configure time)");
#endif
}

HttpPoster::~HttpPoster() = default;

HttpPostResult HttpPoster::post(const std::string& body, std::chrono::steady_clock::time_point deadline,
                                const std::function<bool()>& cancelled) {
  asio::io_context ioc;
#if QTOS_HAVE_OPENSSL
  if (url_.tls) {
    beast::ssl_stream<beast::tcp_stream> stream(ioc, tls_->context);
    return run(ioc, stream, url_, body, deadline, cancelled);
  }
#endif
  beast::tcp_stream stream(ioc);
  return run(ioc, stream, url_, body, deadline, cancelled);
}

}  // namespace qtos::api
