#pragma once
/// @file The webhook URL of the notifier: `http(s)://host[:port]/path[?query]`, parsed once at start-up. The path
/// and query carry the webhook's token (Discord: /api/webhooks/<id>/<token>), so only redacted() may be logged.

#include <cstdint>
#include <string>
#include <string_view>

namespace qtos::api {

/// A parsed webhook URL.
struct WebhookUrl {
  bool tls = false;         ///< https
  std::string host;         ///< DNS name or IPv4 address (IPv6 literals in brackets, without them)
  std::uint16_t port = 0;   ///< explicit or the scheme's default (80, 443)
  std::string target;       ///< path and query, starting with '/': the secret part
  /// "https://host:port/..." with the path and query left out, for logs and `config show`.
  std::string redacted() const;
};

/// Parses `url`; throws ConfigError naming `variable` and what is expected (never echoing the path) when it is not
/// http(s)://host[:port]/path, has user info, a fragment, whitespace or control characters, or a bad port.
WebhookUrl webhook_url_parse(std::string_view url, std::string_view variable = "QT_NOTIFY_WEBHOOK_URL");

}  // namespace qtos::api
