#pragma once
/// @file WebhookNotifier: "notify the team". A service on the bus owner thread turns promotions, risk-mode changes,
/// the emergency brake, health alerts and a daily summary into short messages and pushes them into a bounded queue
/// (never blocking the bus: a full queue drops its oldest message and counts it). A worker thread POSTs each as a
/// Discord-compatible JSON body (`{"content": ..., "username": "qtos"}`) to QT_NOTIFY_WEBHOOK_URL, with retries and
/// exponential backoff on connection errors, 5xx and 429 (honouring Retry-After), at most QT_NOTIFY_RATE_PER_MIN
/// posts per minute (what arrives beyond that is folded into one message), and a stop that flushes what it can
/// within a deadline. The URL's path is a credential: only its scheme, host and port are ever logged.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "api/notify/webhook_url.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/config.hpp"
#include "runtime/service/service.hpp"

namespace qtos::api {

class HttpPoster;

/// Extra lines for the daily summary (e.g. equity and drawdown from the ledger); called on the bus owner thread.
using SummaryProvider = std::function<std::string()>;

/// How the notifier sends. Plain data; from_config() reads the QT_NOTIFY_* variables.
struct NotifierOptions {
  std::string url;                                     ///< QT_NOTIFY_WEBHOOK_URL (required here)
  std::int64_t rate_per_window = 20;                   ///< QT_NOTIFY_RATE_PER_MIN: posts per rate window
  std::chrono::milliseconds rate_window{60'000};       ///< the rate limit's sliding window
  std::size_t queue_capacity = 256;                    ///< messages waiting; more drops the oldest
  int max_attempts = 5;                                ///< tries of one post before it is given up
  std::chrono::milliseconds backoff_initial{1'000};    ///< wait before the first retry; doubles each time
  std::chrono::milliseconds backoff_max{60'000};       ///< cap of a backoff and of a Retry-After
  std::chrono::milliseconds request_timeout{10'000};   ///< one connect + TLS + write + read
  std::chrono::milliseconds stop_deadline{5'000};      ///< stop() flushes for at most this long
  TimeNs health_alert_interval = 15 * 60 * kNsPerSecond;  ///< bus-clock gap between alerts of one component
  bool daily_summary = true;                           ///< a summary at 00:00 UTC on the bus clock
  std::string username = "qtos";                       ///< the post's `username`
  /// From QT_NOTIFY_WEBHOOK_URL and QT_NOTIFY_RATE_PER_MIN.
  static NotifierOptions from_config(const Config& config);
};

/// Counters of one notifier; any thread.
struct NotifierStats {
  std::uint64_t queued = 0;     ///< messages accepted from handlers
  std::uint64_t sent = 0;       ///< posts answered 2xx
  std::uint64_t retries = 0;    ///< attempts after the first
  std::uint64_t failed = 0;     ///< posts given up (attempts spent, or a 4xx other than 429)
  std::uint64_t dropped = 0;    ///< messages pushed out of a full queue (oldest first)
  std::uint64_t coalesced = 0;  ///< messages folded into a combined post by the rate limit
  std::uint64_t abandoned = 0;  ///< messages still waiting (or in flight) when the stop deadline passed
};

/// The notifier service (mode ENFORCED when a URL is set: it only reports, it has no soft mode).
class WebhookNotifier final : public Service {
 public:
  /// Throws ConfigError naming QT_NOTIFY_WEBHOOK_URL when `options.url` is not http(s)://host[:port]/path, and
  /// std::invalid_argument naming the option when a limit is not positive. `summary` may be empty.
  WebhookNotifier(EventBus& bus, NotifierOptions options, SummaryProvider summary = {});
  /// Stops the worker (see stop()) if the service did not.
  ~WebhookNotifier() override;

  /// Queues `text` for posting; any thread, never blocks on the network.
  void notify(std::string text);
  /// The counters.
  NotifierStats stats() const;
  /// Messages waiting in the queue (not counting one in flight).
  std::size_t pending() const;
  /// The URL with its secret part left out.
  const std::string& url_redacted() const { return url_redacted_; }

 protected:
  void on_start() override;
  void on_stop() override;

 private:
  void worker_main();
  void worker_stop();
  bool post_with_retries(const std::string& body, std::size_t messages);
  void on_policy(const PolicyUpdated& e);
  void on_health(const HealthStatusChanged& e);
  void on_day_boundary(TimeNs now);

  NotifierOptions options_;
  WebhookUrl url_;
  std::string url_redacted_;
  SummaryProvider summary_;
  std::unique_ptr<HttpPoster> poster_;  // used by the worker only

  // Bus-thread state.
  std::optional<RiskMode> risk_mode_;
  struct HealthAlert {
    HealthLevel level = HealthLevel::healthy;
    TimeNs at = 0;
  };
  std::map<std::string, HealthAlert> health_alerts_;  // components alerted and not yet recovered
  std::int64_t day_ = 0;                              // UTC day index (days since the epoch) being summarised
  std::uint64_t day_trades_ = 0;
  double day_pnl_ = 0;
  Timer day_timer_;

  // Shared with the worker.
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};
  NotifierStats stats_;
  std::thread worker_;
};

/// A notifier for `config` when QT_NOTIFY_WEBHOOK_URL is set, else null (the composition root starts it).
std::unique_ptr<WebhookNotifier> webhook_notifier_from_config(EventBus& bus, const Config& config, SummaryProvider summary = {});

/// The Discord-compatible JSON body of one message: {"content": text (at most 2000 characters), "username": name}.
std::string webhook_body(std::string_view text, std::string_view username);

}  // namespace qtos::api
