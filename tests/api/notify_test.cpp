// WebhookNotifier against a local HTTP server: the messages events produce, retries, Retry-After, the rate limit,
// a bus that never waits for the network, the stop deadline, TLS, and the URL's validation and secrecy.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "api/notify/http_post.hpp"
#include "api/notify/webhook_notifier.hpp"
#include "api/notify/webhook_url.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/config.hpp"

namespace qtos::api {
namespace notify_test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A one-thread HTTP/1.1 server on 127.0.0.1:0 that records each request's body and answers from a script
// (status, extra header lines, a delay), then 200 once the script is spent.
struct Reply {
  int status = 200;
  std::string headers;  // extra "Name: value\r\n" lines
  std::chrono::milliseconds delay{0};
};

class TestServer {
 public:
  struct Request {
    std::string body;
    std::string raw_head;  // the first bytes as received (a TLS ClientHello is not HTTP)
    steady::time_point at;
  };

  TestServer() : TestServer(std::vector<Reply>{}) {}
  explicit TestServer(std::vector<Reply> script, Reply after = Reply{}) : script_(std::move(script)), after_(std::move(after)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 64) != 0)
      throw std::runtime_error("test server: bind/listen failed");
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  std::string url(const std::string& scheme = "http") const {
    return scheme + "://127.0.0.1:" + std::to_string(port_) + "/api/webhooks/42/s3cr3t-token";
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // Waits until `n` requests were answered (or `timeout`).
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 5s) const {
    const auto until = steady::now() + timeout;
    while (steady::now() < until) {
      if (requests().size() >= n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return requests().size() >= n;
  }
  std::vector<std::string> contents() const {
    std::vector<std::string> out;
    for (const auto& r : requests()) {
      boost::system::error_code ec;
      const auto v = boost::json::parse(r.body, ec);
      if (!ec && v.is_object() && v.as_object().contains("content")) out.emplace_back(v.at("content").as_string());
    }
    return out;
  }

 private:
  bool sleep_unless_stopped(std::chrono::milliseconds d) {
    const auto until = steady::now() + d;
    while (steady::now() < until)
      if (stop_) return false;
      else std::this_thread::sleep_for(5ms);
    return true;
  }
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      handle(c);
      ::close(c);
    }
  }
  void handle(int c) {
    std::string data;
    char buf[4096];
    const auto give_up = steady::now() + 3s;
    std::size_t head_end = std::string::npos;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos && steady::now() < give_up && !stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      data.append(buf, static_cast<std::size_t>(n));
      if (data.size() >= 3 && static_cast<unsigned char>(data[0]) == 0x16) break;  // TLS: record it, answer nothing
    }
    Request req{.body = {}, .raw_head = data.substr(0, 16), .at = steady::now()};
    if (head_end == std::string::npos) {
      std::lock_guard lock(mutex_);
      raw_only_.push_back(req);
      requests_.push_back(req);
      return;
    }
    std::size_t length = 0;
    if (auto pos = data.find("Content-Length: "); pos != std::string::npos) length = std::stoul(data.substr(pos + 16));
    while (data.size() < head_end + 4 + length && !stop_) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      data.append(buf, static_cast<std::size_t>(n));
    }
    req.body = data.substr(head_end + 4, length);
    Reply reply = after_;
    {
      std::lock_guard lock(mutex_);
      if (next_ < script_.size()) reply = script_[next_++];
    }
    if (!sleep_unless_stopped(reply.delay)) return;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(req);
    }
    const std::string res = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n" + reply.headers +
                            "Content-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!::send(c, res.data(), res.size(), MSG_NOSIGNAL);
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::vector<Reply> script_;
  Reply after_;
  std::size_t next_ = 0;
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  std::vector<Request> raw_only_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

constexpr TimeNs kDay = 86400 * kNsPerSecond;
constexpr TimeNs k2024 = 1704067200 * kNsPerSecond;  // 2024-01-01T00:00:00Z

NotifierOptions fast_options(const std::string& url) {
  NotifierOptions o;
  o.url = url;
  o.backoff_initial = 20ms;
  o.backoff_max = 2s;
  o.request_timeout = 2s;
  o.stop_deadline = 3s;
  return o;
}

struct Rig {
  explicit Rig(NotifierOptions o, SummaryProvider summary = {}, TimeNs start = k2024 + 12 * 3600 * kNsPerSecond)
      : clock(start), bus(clock), notifier(bus, std::move(o), std::move(summary)) {
    EXPECT_TRUE(notifier.start());
  }
  SimClock clock;
  EventBus bus;
  WebhookNotifier notifier;
};

TEST(WebhookUrl, ParsesHttpAndHttpsAndRejectsTheRestNamingTheVariableNotTheToken) {
  const auto a = webhook_url_parse("http://127.0.0.1:8080/hook/abc?x=1");
  EXPECT_FALSE(a.tls);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 8080);
  EXPECT_EQ(a.target, "/hook/abc?x=1");
  const auto b = webhook_url_parse("https://discord.com/api/webhooks/1/tok");
  EXPECT_TRUE(b.tls);
  EXPECT_EQ(b.port, 443);
  EXPECT_EQ(b.redacted(), "https://discord.com:443/...");
  EXPECT_EQ(webhook_url_parse("http://[::1]:9/x").host, "::1");
  for (const char* bad : {"ftp://h/x/tok", "discord.com/api/tok", "http://h", "http://h/", "http:///tok", "http://u:p@h/tok",
                          "http://h:0/tok", "http://h:99999/tok", "http://h:/tok", "http://h:8x/tok", "http://h o/tok",
                          "http://h/tok#frag", "http://h/to k", "http://h!/tok"}) {
    try {
      webhook_url_parse(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("QT_NOTIFY_WEBHOOK_URL"), std::string::npos) << m;
      EXPECT_EQ(m.find("tok"), std::string::npos) << "the message echoes the URL: " << m;
    }
  }
  EXPECT_THROW(WebhookNotifier(*std::make_unique<EventBus>(*std::make_unique<SimClock>()), fast_options("http://h")),
               ConfigError);
}

TEST(WebhookUrl, ConfigLoadValidatesAndMasksTheUrl) {
  ConfigSources src;
  src.environment["QT_NOTIFY_WEBHOOK_URL"] = "gopher://hooks.example/abc/s3cr3t";
  try {
    config_load(src);
    ADD_FAILURE() << "a gopher URL was accepted";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("QT_NOTIFY_WEBHOOK_URL"), std::string::npos) << m;
    EXPECT_EQ(m.find("s3cr3t"), std::string::npos) << m;
  }
  src.environment["QT_NOTIFY_WEBHOOK_URL"] = "http://h:70000/abc/s3cr3t";
  EXPECT_THROW(config_load(src), ConfigError);
  src.environment["QT_NOTIFY_WEBHOOK_URL"] = "https://discord.com/api/webhooks/1/s3cr3t";
  src.environment["QT_NOTIFY_RATE_PER_MIN"] = "5";
  const Config c = config_load(src);
  EXPECT_EQ(c.notify_webhook_url, "https://discord.com/api/webhooks/1/s3cr3t");
  EXPECT_EQ(c.notify_rate_per_min, 5);
  const std::string shown = c.entries.at("QT_NOTIFY_WEBHOOK_URL").value;
  EXPECT_EQ(shown.find("s3cr3t"), std::string::npos) << shown;
  EXPECT_NE(shown.find("discord.com"), std::string::npos) << shown;
  EXPECT_EQ(config_load(ConfigSources{}).entries.at("QT_NOTIFY_WEBHOOK_URL").value, "(unset)");
  EXPECT_EQ(NotifierOptions::from_config(c).rate_per_window, 5);
  EventBus bus(*std::make_unique<SimClock>());
  EXPECT_EQ(webhook_notifier_from_config(bus, config_load(ConfigSources{})), nullptr);
}

TEST(WebhookNotifier, BodyIsDiscordJsonCutAt2000Characters) {
  const auto v = boost::json::parse(webhook_body("say \"hi\"\n", "qtos"));
  EXPECT_EQ(v.at("content").as_string(), "say \"hi\"\n");
  EXPECT_EQ(v.at("username").as_string(), "qtos");
  const auto w = boost::json::parse(webhook_body(std::string(5000, 'x'), "qtos"));
  EXPECT_EQ(w.at("content").as_string().size(), 2000u);
}

TEST(WebhookNotifier, EventsBecomeMessages) {
  TestServer server;
  Rig rig(fast_options(server.url()));
  rig.bus.publish("sg", StrategyPromoted{.strategy = "ema_x_17", .from = StrategyStage::shadow, .to = StrategyStage::live, .fitness = 2.5});
  rig.bus.publish("sg", StrategyRetired{.strategy = "rsi_3", .reason = "live Sharpe -0.4 below the floor 0"});
  rig.bus.publish("clm", ModelPromoted{.model = "signal_mlp", .version = 4, .previous_version = 3, .validation_score = 0.61});
  rig.bus.publish("api", EmergencyBrakeChanged{.engaged = true, .actor = "operator", .reason = "exchange outage"});
  rig.bus.publish("healing", HealthStatusChanged{.component = "executor", .previous = HealthLevel::healthy,
                                                 .current = HealthLevel::failing, .error_count = 7, .detail = "venue rejects"});
  ASSERT_TRUE(server.wait_for(5));
  const auto c = server.contents();
  ASSERT_EQ(c.size(), 5u);
  EXPECT_EQ(c[0], "Strategy ema_x_17 promoted SHADOW -> LIVE (fitness 2.500)");
  EXPECT_EQ(c[1], "Strategy rsi_3 retired: live Sharpe -0.4 below the floor 0");
  EXPECT_EQ(c[2], "Model signal_mlp promoted to v4 (was v3, validation score 0.6100)");
  EXPECT_EQ(c[3], "EMERGENCY BRAKE ENGAGED: trading halted (by operator): exchange outage");
  EXPECT_EQ(c[4], "Health: executor FAILING (was HEALTHY), 7 errors: venue rejects");
  const auto body = boost::json::parse(server.requests()[0].body);
  EXPECT_EQ(body.at("username").as_string(), "qtos");
  rig.notifier.stop();
  EXPECT_EQ(rig.notifier.stats().sent, 5u);
  EXPECT_EQ(rig.notifier.stats().failed, 0u);
}

TEST(WebhookNotifier, RiskModeIsReportedOnlyWhenItChanges) {
  TestServer server;
  Rig rig(fast_options(server.url()));
  auto policy = [&](std::uint64_t v, RiskMode m, std::string fields) {
    rig.bus.publish("policy", PolicyUpdated{.version = v, .previous_version = v - 1, .risk_mode = m,
                                            .changed_fields = std::move(fields), .updated_by = "msc", .reason = "r" + std::to_string(v)});
  };
  policy(2, RiskMode::normal, "max_leverage");                // no change of mode
  policy(3, RiskMode::defensive, "max_leverage, risk_mode");  // the store says so
  policy(4, RiskMode::defensive, "max_open_positions");       // same mode
  policy(5, RiskMode::aggressive, "");                        // a publisher that lists nothing: the last mode seen
  rig.notifier.stop();
  const auto c = server.contents();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], "Risk mode NORMAL -> DEFENSIVE (policy v3 by msc): r3");
  EXPECT_EQ(c[1], "Risk mode DEFENSIVE -> AGGRESSIVE (policy v5 by msc): r5");
}

TEST(WebhookNotifier, HealthAlertsAreRateLimitedPerComponentUnlessWorse) {
  TestServer server;
  NotifierOptions o = fast_options(server.url());
  o.health_alert_interval = 15 * 60 * kNsPerSecond;
  Rig rig(o);
  auto health = [&](const char* who, HealthLevel from, HealthLevel to) {
    rig.bus.publish("svc", HealthStatusChanged{.component = who, .previous = from, .current = to, .error_count = 0, .detail = ""});
  };
  using H = HealthLevel;
  health("feed", H::healthy, H::degraded);   // alert
  rig.clock.advance_by(60 * kNsPerSecond);
  health("feed", H::healthy, H::degraded);   // within 15 min, not worse: quiet
  health("exchange", H::healthy, H::degraded);  // another component: alert
  health("feed", H::degraded, H::failing);   // worse: alert
  rig.clock.advance_by(5 * 60 * kNsPerSecond);
  health("feed", H::failing, H::degraded);   // better, within the interval: quiet
  rig.clock.advance_by(20 * 60 * kNsPerSecond);
  health("feed", H::healthy, H::degraded);   // interval passed: alert
  health("feed", H::degraded, H::healthy);   // recovery after an alert: said
  health("never_alerted", H::degraded, H::healthy);  // nothing was said: quiet
  rig.notifier.stop();
  const auto c = server.contents();
  ASSERT_EQ(c.size(), 5u) << ::testing::PrintToString(c);
  EXPECT_EQ(c[0], "Health: feed DEGRADED (was HEALTHY)");
  EXPECT_EQ(c[1], "Health: exchange DEGRADED (was HEALTHY)");
  EXPECT_EQ(c[2], "Health: feed FAILING (was DEGRADED)");
  EXPECT_EQ(c[3], "Health: feed DEGRADED (was HEALTHY)");
  EXPECT_EQ(c[4], "Health: feed recovered (HEALTHY)");
}

TEST(WebhookNotifier, DailySummaryAtMidnightUtcOnTheBusClock) {
  TestServer server;
  Rig rig(fast_options(server.url()), [] { return std::string("equity 10,007.00, drawdown 0.4%"); }, k2024 + 23 * 3600 * kNsPerSecond);
  rig.bus.publish("exec", PositionClosed{.position_id = 1, .symbol = "BTCUSDT", .realized_pnl = 10.0});
  rig.bus.publish("exec", PositionClosed{.position_id = 2, .symbol = "ETHUSDT", .realized_pnl = -3.0});
  rig.clock.advance_to(k2024 + kDay - kNsPerSecond);
  EXPECT_EQ(rig.notifier.stats().queued, 0u);  // not before midnight
  rig.clock.advance_to(k2024 + kDay + 60 * kNsPerSecond);
  rig.bus.publish("exec", PositionClosed{.position_id = 3, .symbol = "BTCUSDT", .realized_pnl = 1.0});
  rig.clock.advance_to(k2024 + 2 * kDay);
  rig.notifier.stop();
  const auto c = server.contents();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], "Daily summary 2024-01-01 (UTC): 2 trades closed, realized PnL +7.00\nequity 10,007.00, drawdown 0.4%");
  EXPECT_EQ(c[1], "Daily summary 2024-01-02 (UTC): 1 trades closed, realized PnL +1.00\nequity 10,007.00, drawdown 0.4%");
}

TEST(WebhookNotifier, RetriesAfter5xxWithBackoff) {
  TestServer server(std::vector<Reply>{{.status = 500}, {.status = 503}});
  Rig rig(fast_options(server.url()));
  const auto t0 = steady::now();
  rig.notifier.notify("hello");
  ASSERT_TRUE(server.wait_for(3));
  const auto r = server.requests();
  EXPECT_EQ(r[0].body, r[2].body);
  // Backoff 20 ms, then 40 ms.
  EXPECT_GE(r[1].at - r[0].at, 15ms);
  EXPECT_GE(r[2].at - r[1].at, 35ms);
  EXPECT_LT(steady::now() - t0, 2s);
  rig.notifier.stop();
  const auto s = rig.notifier.stats();
  EXPECT_EQ(s.sent, 1u);
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.failed, 0u);
}

TEST(WebhookNotifier, GivesUpAfterMaxAttemptsAndOn4xx) {
  TestServer server(std::vector<Reply>{{.status = 500}, {.status = 500}, {.status = 400}});
  NotifierOptions o = fast_options(server.url());
  o.max_attempts = 2;
  Rig rig(o);
  rig.notifier.notify("first");   // 500, 500: given up
  rig.notifier.notify("second");  // 400: not retried
  rig.notifier.notify("third");   // 200
  ASSERT_TRUE(server.wait_for(4));
  rig.notifier.stop();
  const auto s = rig.notifier.stats();
  EXPECT_EQ(s.failed, 2u);
  EXPECT_EQ(s.retries, 1u);
  EXPECT_EQ(s.sent, 1u);
  EXPECT_EQ(server.requests().size(), 4u);
}

TEST(WebhookNotifier, HonoursRetryAfterOn429) {
  TestServer server(std::vector<Reply>{{.status = 429, .headers = "Retry-After: 1\r\n"}});
  Rig rig(fast_options(server.url()));
  rig.notifier.notify("hello");
  ASSERT_TRUE(server.wait_for(2, 5s));
  const auto r = server.requests();
  EXPECT_GE(r[1].at - r[0].at, 950ms);  // not the 20 ms backoff
  EXPECT_LT(r[1].at - r[0].at, 1800ms);
  rig.notifier.stop();
  EXPECT_EQ(rig.notifier.stats().sent, 1u);
}

TEST(WebhookNotifier, RateLimitCombinesTheExcessIntoOneMessage) {
  TestServer server;
  NotifierOptions o = fast_options(server.url());
  o.rate_per_window = 3;
  o.rate_window = 400ms;
  Rig rig(o);
  for (int i = 0; i < 12; ++i) rig.notifier.notify("event " + std::to_string(i));
  // All 12 texts arrive, in fewer than 12 posts, never more than 3 per 400 ms.
  const auto until = steady::now() + 5s;
  auto all_there = [&] {
    std::string joined;
    for (const auto& c : server.contents()) joined += c + "\n";
    for (int i = 0; i < 12; ++i)
      if (joined.find("event " + std::to_string(i) + "\n") == std::string::npos) return false;
    return true;
  };
  while (!all_there() && steady::now() < until) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(all_there()) << ::testing::PrintToString(server.contents());
  // A second burst while the window is full waits for it to slide.
  const std::size_t before = server.requests().size();
  for (int i = 12; i < 16; ++i) rig.notifier.notify("event " + std::to_string(i));
  ASSERT_TRUE(server.wait_for(before + 1));
  EXPECT_GE(server.requests()[before].at - server.requests()[0].at, 300ms);  // 400 ms less scheduling slack
  rig.notifier.stop();
  const auto r = server.requests();
  EXPECT_LT(r.size(), 12u);
  // Server-side arrival times: the 400 ms window less scheduling slack.
  for (std::size_t i = 3; i < r.size(); ++i) EXPECT_GE(r[i].at - r[i - 3].at, 300ms) << "post " << i;
  bool combined = false;
  for (const auto& c : server.contents()) combined |= c.find("events (rate-limited, combined):") != std::string::npos;
  EXPECT_TRUE(combined);
  EXPECT_GE(rig.notifier.stats().coalesced, 2u);
  EXPECT_EQ(rig.notifier.stats().dropped, 0u);
}

TEST(WebhookNotifier, TheBusNeverWaitsForAHangingServerAndStopKeepsItsDeadline) {
  TestServer server(std::vector<Reply>{}, Reply{.status = 200, .headers = "", .delay = 3000ms});
  NotifierOptions o = fast_options(server.url());
  o.queue_capacity = 8;
  o.stop_deadline = 300ms;
  Rig rig(o);
  const auto t0 = steady::now();
  for (int i = 0; i < 200; ++i)
    rig.bus.publish("sg", StrategyRetired{.strategy = std::to_string(i), .reason = "floor"});
  const auto publish_time = steady::now() - t0;
  EXPECT_LT(publish_time, 100ms);  // 200 events while the first post hangs for 3 s
  const auto s = rig.notifier.stats();
  EXPECT_EQ(s.queued, 200u);
  EXPECT_GE(s.dropped, 200u - 8u - 1u);  // the oldest went; at most one is in flight
  EXPECT_LE(rig.notifier.pending(), 8u);
  const auto t1 = steady::now();
  rig.notifier.stop();
  EXPECT_LT(steady::now() - t1, 1500ms);  // the deadline (300 ms), not the server's 3 s
  const auto after = rig.notifier.stats();
  EXPECT_EQ(after.sent, 0u);
  EXPECT_GE(after.abandoned, 8u);
  EXPECT_EQ(after.dropped + after.abandoned + after.sent + after.failed, 200u);
}

TEST(WebhookNotifier, StopFlushesWhatIsQueued) {
  TestServer server;
  Rig rig(fast_options(server.url()));
  for (int i = 0; i < 5; ++i) rig.notifier.notify(std::to_string(i));
  rig.notifier.stop();
  EXPECT_EQ(server.requests().size(), 5u);
  const auto s = rig.notifier.stats();
  EXPECT_EQ(s.sent, 5u);
  EXPECT_EQ(s.abandoned, 0u);
  // A restart starts a new worker.
  ASSERT_TRUE(rig.notifier.start());
  rig.notifier.notify("again");
  rig.notifier.stop();
  EXPECT_EQ(server.contents().back(), "again");
}

TEST(WebhookNotifier, HttpsSpeaksTlsAndFailsAgainstAPlainServer) {
  if (!http_post_tls_available()) GTEST_SKIP() << "built without OpenSSL";
  TestServer server;
  NotifierOptions o = fast_options(server.url("https"));
  o.max_attempts = 1;
  Rig rig(o);
  rig.notifier.notify("secret alert");
  ASSERT_TRUE(server.wait_for(1));
  rig.notifier.stop();
  const auto r = server.requests();
  ASSERT_FALSE(r.empty());
  ASSERT_FALSE(r[0].raw_head.empty());
  EXPECT_EQ(static_cast<unsigned char>(r[0].raw_head[0]), 0x16) << "not a TLS handshake record";
  EXPECT_TRUE(r[0].body.empty());
  EXPECT_EQ(rig.notifier.stats().failed, 1u);
  EXPECT_EQ(rig.notifier.stats().sent, 0u);
}

}  // namespace notify_test
}  // namespace qtos::api
