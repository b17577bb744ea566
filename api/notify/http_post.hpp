#pragma once
/// @file One HTTP(S) POST of a JSON body with a deadline and a cancel check (Boost.Beast; TLS through OpenSSL with
/// certificate and host-name verification when the build found OpenSSL). Beast stays inside http_post.cpp.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/notify/webhook_url.hpp"

namespace qtos::api {

/// What one POST came to: an HTTP status, or no answer and why (an expected outcome, not an exception).
struct HttpPostResult {
  int status = 0;                                      ///< 0: no HTTP answer (resolve, connect, TLS, I/O, timeout)
  std::string error;                                   ///< why, when status == 0
  std::optional<std::chrono::milliseconds> retry_after;  ///< from Retry-After (seconds) or a JSON `retry_after`
};

/// True when this build can post to https:// URLs.
bool http_post_tls_available();

/// Posts JSON bodies to one URL; one connection per post (a notifier posts a few times a minute at most).
class HttpPoster {
 public:
  /// For `url`; throws ConfigError naming QT_NOTIFY_WEBHOOK_URL for https:// in a build without OpenSSL.
  explicit HttpPoster(WebhookUrl url);
  ~HttpPoster();
  HttpPoster(const HttpPoster&) = delete;
  HttpPoster& operator=(const HttpPoster&) = delete;
  /// POSTs `body`; gives up at `deadline`, or as soon as `cancelled()` turns true (checked every 20 ms).
  HttpPostResult post(const std::string& body, std::chrono::steady_clock::time_point deadline,
                      const std::function<bool()>& cancelled);

 private:
  struct Tls;
  WebhookUrl url_;
  std::unique_ptr<Tls> tls_;
};

}  // namespace qtos::api
