#include "api/binance/https_client.hpp"

#include <sys/socket.h>

#include <cctype>
#include <exception>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace qtos::binance {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

HttpEndpoint http_endpoint_parse(const std::string& url, const std::string& what) {
  HttpEndpoint e;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    e.tls = true;
    e.port = 443;
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
    e.tls = false;
    e.port = 80;
  } else {
    throw std::invalid_argument(what + " '" + url + "': expected https://host[:port]");
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find('/') != std::string::npos)
    throw std::invalid_argument(what + " '" + url + "': expected https://host[:port] without a path");
  const auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']') == std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p < 1 || p > 65535) throw std::invalid_argument(what + " '" + url + "': bad port '" + port + "'");
    e.port = static_cast<std::uint16_t>(p);
    rest = rest.substr(0, colon);
  }
  e.host = rest;
  return e;
}

namespace {

enum class Stage { connecting, sending, receiving, done };

}  // namespace

struct HttpsClient::Impl {
  asio::io_context ioc;
  asio::ssl::context ssl{asio::ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  std::unique_ptr<beast::tcp_stream> plain;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  bool open() const { return tls || plain; }
  void close() {
    if (tls) {
      beast::error_code ec;
      beast::get_lowest_layer(*tls).socket().close(ec);
    }
    if (plain) {
      beast::error_code ec;
      plain->socket().close(ec);
    }
    tls.reset();
    plain.reset();
    buffer.clear();
  }
  // A kept connection the server has closed (EOF or a TLS close_notify waiting) is not reused: writing into it could
  // lose a request that the server never read.
  bool stale() {
    auto& s = lowest().socket();
    if (!s.is_open()) return true;
    char byte;
    const ssize_t n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || n > 0) return true;
    return !(errno == EAGAIN || errno == EWOULDBLOCK);
  }
};

HttpsClient::HttpsClient(HttpEndpoint endpoint) : endpoint_(std::move(endpoint)), impl_(std::make_unique<Impl>()) {
  if (!endpoint_.tls) return;
  boost::system::error_code ec;
  if (endpoint_.ca_file.empty()) {
    impl_->ssl.set_default_verify_paths(ec);
  } else {
    impl_->ssl.load_verify_file(endpoint_.ca_file, ec);
    if (ec) throw std::invalid_argument("CA file '" + endpoint_.ca_file + "': cannot be loaded (" + ec.message() + ")");
  }
  impl_->ssl.set_verify_mode(asio::ssl::verify_peer);
  impl_->ssl.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                         asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
}

HttpsClient::~HttpsClient() = default;

HttpReply HttpsClient::request(const std::string& method, const std::string& target, const std::map<std::string, std::string>& headers,
                               std::chrono::milliseconds timeout) {
  Impl& im = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (im.open() && im.stale()) im.close();
  HttpReply out;
  Stage stage = im.open() ? Stage::sending : Stage::connecting;
  bool finished = false;
  std::string failure;
  tcp::resolver resolver(im.ioc);

  auto run = [&]() -> asio::awaitable<void> {
    if (!im.open()) {
      stage = Stage::connecting;
      // A named local, not a temporary, in the co_await expression (GCC 12 mishandles temporaries across a suspension).
      const std::string port = std::to_string(endpoint_.port);
      const auto endpoints = co_await resolver.async_resolve(endpoint_.host, port, asio::use_awaitable);
      if (endpoint_.tls) {
        im.tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(im.ioc, im.ssl);
        beast::get_lowest_layer(*im.tls).expires_at(deadline);
        co_await beast::get_lowest_layer(*im.tls).async_connect(endpoints, asio::use_awaitable);
        if (!SSL_set_tlsext_host_name(im.tls->native_handle(), endpoint_.host.c_str()))
          throw beast::system_error(beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
        im.tls->set_verify_callback(asio::ssl::host_name_verification(endpoint_.host));
        co_await im.tls->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
      } else {
        im.plain = std::make_unique<beast::tcp_stream>(im.ioc);
        im.plain->expires_at(deadline);
        co_await im.plain->async_connect(endpoints, asio::use_awaitable);
      }
      ++connects_;
    }
    stage = Stage::sending;
    im.lowest().expires_at(deadline);
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    const bool default_port = endpoint_.port == (endpoint_.tls ? 443 : 80);
    req.set(http::field::host, default_port ? endpoint_.host : endpoint_.host + ":" + std::to_string(endpoint_.port));
    req.set(http::field::user_agent, "qtos-binance");
    req.keep_alive(true);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.prepare_payload();
    if (im.tls)
      co_await http::async_write(*im.tls, req, asio::use_awaitable);
    else
      co_await http::async_write(*im.plain, req, asio::use_awaitable);
    stage = Stage::receiving;
    http::response_parser<http::string_body> parser;
    parser.body_limit(32 * 1024 * 1024);  // exchangeInfo of every symbol is a few MB
    if (im.tls)
      co_await http::async_read(*im.tls, im.buffer, parser, asio::use_awaitable);
    else
      co_await http::async_read(*im.plain, im.buffer, parser, asio::use_awaitable);
    const auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(f.value());
    }
    if (!res.keep_alive()) im.close();
    stage = Stage::done;
  };

  asio::co_spawn(im.ioc, run(), [&](std::exception_ptr e) {
    finished = true;
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const beast::system_error& ex) {
      failure = ex.code() == beast::error::timeout ? "timed out" : ex.code().message();
    } catch (const std::exception& ex) {
      failure = ex.what();
    }
  });
  im.ioc.restart();
  bool aborted = false;
  while (!finished) {
    im.ioc.run_for(std::chrono::milliseconds(10));
    if (!finished && !aborted && std::chrono::steady_clock::now() >= deadline + std::chrono::milliseconds(20)) {
      // The stream's expiry covers connect and I/O; the resolver needs this.
      aborted = true;
      resolver.cancel();
      if (im.open()) im.lowest().close();
      failure = "timed out";
    }
  }
  if (stage == Stage::done && failure.empty()) return out;
  const bool late = failure == "timed out" || std::chrono::steady_clock::now() >= deadline;
  im.close();
  out = HttpReply{};
  out.error = failure;
  if (stage == Stage::connecting)
    out.transport = Transport::not_sent;
  else
    out.transport = late ? Transport::timeout : Transport::reset;
  return out;
}

}  // namespace qtos::binance
