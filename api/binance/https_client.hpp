#pragma once
/// @file A small synchronous HTTP/1.1 client for one host over one kept-alive connection (Boost.Beast; TLS through
/// OpenSSL with certificate and host-name verification). Every call has a deadline; what became of a request that got
/// no answer is told apart: never sent (nothing reached the server) or maybe sent (an order may exist).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "cpu/util/enum_names.hpp"

namespace qtos::binance {

/// Where requests go. `tls` false is for loopback tests only (the connector refuses it for a venue).
struct HttpEndpoint {
  std::string host;           ///< host name (TLS SNI and certificate check use it)
  std::uint16_t port = 443;   ///< TCP port
  bool tls = true;            ///< HTTPS
  std::string ca_file;        ///< PEM bundle to trust instead of the system store ("" : the system store)
};

/// Parses "https://host[:port]" (a trailing "/" allowed, no path); throws std::invalid_argument naming `what`.
HttpEndpoint http_endpoint_parse(const std::string& url, const std::string& what);

/// Why a request got no HTTP answer.
enum class Transport : std::uint8_t {
  ok,          ///< an HTTP answer arrived
  not_sent,    ///< resolve, connect or TLS failed: the request never left
  timeout,     ///< sent (or partly sent), no answer before the deadline: it may have taken effect
  reset        ///< the connection broke after the request was sent: it may have taken effect
};
QTOS_ENUM_NAMES(Transport, "ok", "not-sent", "timeout", "reset");

/// One answer.
struct HttpReply {
  Transport transport = Transport::ok;   ///< ok: status and body are set
  int status = 0;                        ///< HTTP status
  std::string body;                      ///< response body
  std::map<std::string, std::string> headers;  ///< header names in lower case
  std::string error;                     ///< why, when transport != ok
};

/// The client. Not thread-safe: one caller at a time (the bus owner).
class HttpsClient {
 public:
  /// For `endpoint`; throws std::invalid_argument when the CA file cannot be loaded.
  explicit HttpsClient(HttpEndpoint endpoint);
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  /// Sends `method` (GET, POST, PUT, DELETE) to `target` with `headers`, reusing the open connection when there is
  /// one (a connection the server closed is reopened once, before anything is written). Gives up after `timeout`.
  HttpReply request(const std::string& method, const std::string& target, const std::map<std::string, std::string>& headers,
                    std::chrono::milliseconds timeout);
  /// Connections opened so far (a test of reuse).
  std::uint64_t connects() const { return connects_; }
  /// The endpoint.
  const HttpEndpoint& endpoint() const { return endpoint_; }

 private:
  struct Impl;
  HttpEndpoint endpoint_;
  std::unique_ptr<Impl> impl_;
  std::uint64_t connects_ = 0;
};

}  // namespace qtos::binance
