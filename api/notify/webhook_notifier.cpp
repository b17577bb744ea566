#include "api/notify/webhook_notifier.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "api/notify/http_post.hpp"

namespace qtos::api {

namespace {

constexpr std::size_t kMaxContent = 2000;  // Discord's limit on `content`
constexpr TimeNs kNsPerDay = 86400 * kNsPerSecond;

std::int64_t day_index(TimeNs t) { return t >= 0 ? t / kNsPerDay : (t - kNsPerDay + 1) / kNsPerDay; }

std::string day_text(std::int64_t day) { return time_format(day * kNsPerDay).substr(0, 10); }

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Cuts `text` to at most `limit` bytes without splitting a UTF-8 sequence, marking the cut.
std::string truncate_utf8(std::string text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t cut = limit - 3;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text + "...";
}

bool lists_field(std::string_view fields, std::string_view name) {
  while (!fields.empty()) {
    const std::size_t comma = fields.find(',');
    std::string_view f = fields.substr(0, comma);
    while (!f.empty() && f.front() == ' ') f.remove_prefix(1);
    while (!f.empty() && f.back() == ' ') f.remove_suffix(1);
    if (f == name) return true;
    if (comma == std::string_view::npos) break;
    fields.remove_prefix(comma + 1);
  }
  return false;
}

// One combined post for the messages the rate limit held back: a header, then as many whole lines as fit.
std::string combine(const std::vector<std::string>& messages) {
  std::string out = std::to_string(messages.size()) + " events (rate-limited, combined):";
  for (std::size_t i = 0; i < messages.size(); ++i) {
    std::string line = "\n- " + messages[i];
    const std::string tail = "\n... and " + std::to_string(messages.size() - i) + " more events";
    if (out.size() + line.size() + tail.size() > kMaxContent) {
      if (out.size() + tail.size() <= kMaxContent) return out + tail;
      return truncate_utf8(out, kMaxContent);
    }
    out += line;
  }
  return out;
}

}  // namespace

std::string webhook_body(std::string_view text, std::string_view username) {
  boost::json::object o;
  o["content"] = truncate_utf8(std::string(text), kMaxContent);
  o["username"] = username;
  return boost::json::serialize(o);
}

NotifierOptions NotifierOptions::from_config(const Config& config) {
  NotifierOptions o;
  o.url = config.notify_webhook_url;
  o.rate_per_window = config.notify_rate_per_min;
  return o;
}

WebhookNotifier::WebhookNotifier(EventBus& bus, NotifierOptions options, SummaryProvider summary)
    : Service("notifier", SubsystemMode::enforced, bus), options_(std::move(options)), url_(webhook_url_parse(options_.url)),
      url_redacted_(url_.redacted()), summary_(std::move(summary)),
      poster_(std::make_unique<HttpPoster>(url_)) {  // https without OpenSSL fails here, not at the first alert
  auto positive = [](bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(std::string("NotifierOptions::") + what + " must be positive");
  };
  positive(options_.rate_per_window > 0, "rate_per_window");
  positive(options_.rate_window.count() > 0, "rate_window");
  positive(options_.queue_capacity > 0, "queue_capacity");
  positive(options_.max_attempts > 0, "max_attempts");
  positive(options_.request_timeout.count() > 0, "request_timeout");
  positive(options_.health_alert_interval > 0, "health_alert_interval");
  positive(options_.backoff_initial.count() >= 0 && options_.backoff_max.count() >= 0 && options_.stop_deadline.count() >= 0,
           "backoff_initial, backoff_max and stop_deadline");
}

WebhookNotifier::~WebhookNotifier() { worker_stop(); }

void WebhookNotifier::notify(std::string text) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= options_.queue_capacity) {
      queue_.pop_front();  // the newest news matters most; the count says what was lost
      ++stats_.dropped;
    }
    queue_.push_back(std::move(text));
    ++stats_.queued;
  }
  cv_.notify_all();
}

NotifierStats WebhookNotifier::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::size_t WebhookNotifier::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void WebhookNotifier::on_start() {
  subscribe<StrategyPromoted>([this](const StrategyPromoted& e) {
    notify("Strategy " + e.strategy.str() + " promoted " + std::string(enum_name(e.from)) + " -> " +
           std::string(enum_name(e.to)) + " (fitness " + fmt("%.3f", e.fitness) + ")");
  });
  subscribe<StrategyRetired>([this](const StrategyRetired& e) {
    notify("Strategy " + e.strategy.str() + " retired" + (e.reason.empty() ? std::string() : ": " + e.reason));
  });
  subscribe<ModelPromoted>([this](const ModelPromoted& e) {
    notify("Model " + e.model.str() + " promoted to v" + std::to_string(e.version) + " (was v" +
           std::to_string(e.previous_version) + ", validation score " + fmt("%.4f", e.validation_score) + ")");
  });
  subscribe<PolicyUpdated>([this](const PolicyUpdated& e) { on_policy(e); });
  subscribe<EmergencyBrakeChanged>([this](const EmergencyBrakeChanged& e) {
    std::string text = e.engaged ? "EMERGENCY BRAKE ENGAGED: trading halted" : "Emergency brake released: trading may resume";
    if (!e.actor.empty()) text += " (by " + e.actor + ")";
    if (!e.reason.empty()) text += ": " + e.reason;
    notify(std::move(text));
  });
  subscribe<HealthStatusChanged>([this](const HealthStatusChanged& e) { on_health(e); });
  subscribe<PositionClosed>([this](const PositionClosed& e) {
    ++day_trades_;
    day_pnl_ += e.realized_pnl;
  });
  if (options_.daily_summary) {
    const TimeNs now = clock().now();
    day_ = day_index(now);
    day_trades_ = 0;
    day_pnl_ = 0;
    day_timer_ = clock().schedule_every(kNsPerDay, [this](TimeNs t) { on_day_boundary(t); }, (day_ + 1) * kNsPerDay - now);
  }
  std::lock_guard lock(mutex_);
  stopping_ = false;
  if (!worker_.joinable()) worker_ = std::thread([this] { worker_main(); });
  spdlog::info("notifier: posting to {} (at most {} per {} s)", url_redacted_, options_.rate_per_window,
               options_.rate_window.count() / 1000.0);
}

void WebhookNotifier::on_stop() {
  day_timer_.cancel();
  worker_stop();
  const NotifierStats s = stats();
  spdlog::info("notifier: stopped; {} sent, {} failed, {} dropped, {} coalesced, {} abandoned", s.sent, s.failed, s.dropped,
               s.coalesced, s.abandoned);
}

void WebhookNotifier::on_policy(const PolicyUpdated& e) {
  // The store names the fields that changed; the last mode seen covers a publisher that does not.
  const bool changed = lists_field(e.changed_fields, "risk_mode") || (risk_mode_ && *risk_mode_ != e.risk_mode);
  const std::optional<RiskMode> before = risk_mode_;
  risk_mode_ = e.risk_mode;
  if (!changed) return;
  std::string text = "Risk mode " + (before ? std::string(enum_name(*before)) + " -> " : std::string("now ")) +
                     std::string(enum_name(e.risk_mode)) + " (policy v" + std::to_string(e.version);
  if (!e.updated_by.empty()) text += " by " + e.updated_by;
  text += ")";
  if (!e.reason.empty()) text += ": " + e.reason;
  notify(std::move(text));
}

void WebhookNotifier::on_health(const HealthStatusChanged& e) {
  const std::string component = e.component.str();
  const TimeNs now = e.header.ts;
  auto it = health_alerts_.find(component);
  if (e.current == HealthLevel::healthy) {
    if (it == health_alerts_.end()) return;  // nothing was said, so there is nothing to take back
    health_alerts_.erase(it);
    notify("Health: " + component + " recovered (HEALTHY)" + (e.detail.empty() ? std::string() : ": " + e.detail));
    return;
  }
  // One alert per component per interval, unless it got worse (degraded -> failing).
  if (it != health_alerts_.end() && e.current <= it->second.level && now - it->second.at < options_.health_alert_interval)
    return;
  health_alerts_[component] = {e.current, now};
  std::string text = "Health: " + component + " " + std::string(enum_name(e.current)) + " (was " +
                     std::string(enum_name(e.previous)) + ")";
  if (e.error_count) text += ", " + std::to_string(e.error_count) + " errors";
  if (!e.detail.empty()) text += ": " + e.detail;
  notify(std::move(text));
}

void WebhookNotifier::on_day_boundary(TimeNs now) {
  std::string text = "Daily summary " + day_text(day_) + " (UTC): " + std::to_string(day_trades_) + " trades closed, realized PnL " +
                     fmt("%+.2f", day_pnl_);
  if (summary_) {
    try {
      const std::string extra = summary_();
      if (!extra.empty()) text += "\n" + extra;
    } catch (const std::exception& ex) {
      text += "\n(summary provider failed: " + std::string(ex.what()) + ")";
    }
  }
  notify(std::move(text));
  day_ = day_index(now);
  day_trades_ = 0;
  day_pnl_ = 0;
}

void WebhookNotifier::worker_stop() {
  {
    std::lock_guard lock(mutex_);
    if (!worker_.joinable()) return;
    stopping_ = true;
    stop_deadline_ = std::chrono::steady_clock::now() + options_.stop_deadline;
  }
  cv_.notify_all();
  worker_.join();
  worker_ = std::thread();
}

void WebhookNotifier::worker_main() {
  using steady = std::chrono::steady_clock;
  std::deque<steady::time_point> posts;  // start times of the posts in the current rate window
  const auto limit = static_cast<std::size_t>(options_.rate_per_window);
  std::unique_lock lock(mutex_);
  auto past_deadline = [&] { return stopping_ && steady::now() >= stop_deadline_; };
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() || past_deadline()) break;
    const auto now = steady::now();
    while (!posts.empty() && now - posts.front() >= options_.rate_window) posts.pop_front();
    if (posts.size() >= limit) {
      auto until = posts.front() + options_.rate_window;
      if (stopping_) until = std::min(until, stop_deadline_);
      cv_.wait_until(lock, until);  // new messages or a stop wake it early; the loop re-checks
      continue;
    }
    // The last post of a full window carries everything still waiting, so no more than `limit` posts go out.
    std::vector<std::string> batch;
    if (limit - posts.size() == 1 && queue_.size() > 1) {
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
      stats_.coalesced += batch.size();
    } else {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    posts.push_back(steady::now());
    post_with_retries(webhook_body(batch.size() == 1 ? batch.front() : combine(batch), options_.username), batch.size());
    lock.lock();
  }
  if (!queue_.empty()) {
    stats_.abandoned += queue_.size();
    spdlog::warn("notifier: stop deadline passed; {} messages not sent", queue_.size());
    queue_.clear();
  }
}

bool WebhookNotifier::post_with_retries(const std::string& body, std::size_t messages) {
  using steady = std::chrono::steady_clock;
  auto cancelled = [this] {
    std::lock_guard lock(mutex_);
    return stopping_ && steady::now() >= stop_deadline_;
  };
  auto backoff = options_.backoff_initial;
  for (int attempt = 1;; ++attempt) {
    auto deadline = steady::now() + options_.request_timeout;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        if (steady::now() >= stop_deadline_) {
          stats_.abandoned += messages;
          return false;
        }
        deadline = std::min(deadline, stop_deadline_);
      }
    }
    const HttpPostResult r = poster_->post(body, deadline, cancelled);
    if (r.status >= 200 && r.status < 300) {
      std::lock_guard lock(mutex_);
      ++stats_.sent;
      return true;
    }
    const bool retryable = r.status == 0 || r.status == 429 || r.status >= 500 || r.status == 408;
    if (r.status == 0 && cancelled()) {
      std::lock_guard lock(mutex_);
      stats_.abandoned += messages;
      return false;
    }
    const std::string what = r.status ? "HTTP " + std::to_string(r.status) : r.error;
    if (!retryable || attempt >= options_.max_attempts) {
      spdlog::warn("notifier: post to {} failed after {} attempt(s): {}; {} message(s) dropped", url_redacted_, attempt, what,
                   messages);
      std::lock_guard lock(mutex_);
      ++stats_.failed;
      return false;
    }
    auto wait = std::min(backoff, options_.backoff_max);
    if (r.status == 429 && r.retry_after) wait = std::min(*r.retry_after, options_.backoff_max);
    backoff *= 2;
    spdlog::debug("notifier: post to {} failed ({}); retry {} in {} ms", url_redacted_, what, attempt, wait.count());
    std::unique_lock lock(mutex_);
    ++stats_.retries;
    const auto until = steady::now() + wait;
    // A stop does not cut a backoff short unless the backoff would end after the stop deadline.
    cv_.wait_until(lock, until, [&] { return stopping_ && stop_deadline_ <= until; });
    if (stopping_ && steady::now() >= stop_deadline_) {
      stats_.abandoned += messages;
      return false;
    }
  }
}

std::unique_ptr<WebhookNotifier> webhook_notifier_from_config(EventBus& bus, const Config& config, SummaryProvider summary) {
  if (config.notify_webhook_url.empty()) return nullptr;
  return std::make_unique<WebhookNotifier>(bus, NotifierOptions::from_config(config), std::move(summary));
}

}  // namespace qtos::api
