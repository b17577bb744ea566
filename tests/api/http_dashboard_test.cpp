// The dashboard, GET /: the page and its headers (self-contained: nothing loaded from elsewhere), the rule that lets
// its controls through (this server's own loopback Origin, and no other); then, with Debian's chromium on PATH, the
// page in headless Chromium against the real Server over a fake ControlPlane holding data: the charts and tables are
// drawn with the data, the brake pulled from the page's own button reaches the plane (GET /health/ai shows it), and a
// screenshot is kept in build/test-artifacts/dashboard.png.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/json.hpp>

#include "api/http/dashboard.hpp"
#include "api/http/server.hpp"
#include "runtime/clock/clock.hpp"
#include "tests/api/http_fake_plane.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_request.hpp"
#include "tests/support/qtos_process.hpp"
#include "tests/support/run_command.hpp"

namespace qtos::api {
namespace http_dashboard_test {

namespace json = boost::json;
using http::verb;
using testing::FakeControlPlane;
using testing::kTestToken;
using testing::make_request;

constexpr std::int64_t kDayNs = 86'400'000'000'000;
constexpr std::int64_t kT0 = 1'735'689'600'000'000'000;  // 2025-01-01

// The fake plane with something to show: an equity curve with a drawdown, two positions, twelve ranked symbols with
// sub-scores, three generations of strategies, two models, three policy versions and a few events. The brake is the
// base fake's: emergency_brake_set flips health_ai()'s "emergency_brake".
class DashboardPlane : public FakeControlPlane {
 public:
  static constexpr int kPoints = 60;

  DashboardPlane() {
    const bool versions = risk_mode_set(RiskMode::defensive, Actor{"msc", "volatility up"}) &&
                          risk_mode_set(RiskMode::normal, Actor{"msc", "calm again"});
    if (!versions) throw std::logic_error("DashboardPlane: the fake refused a risk mode");
    control_calls = 0;
    state_changes = 0;
    event_add("PolicyUpdated", json::object{{"version", 3}, {"previous_version", 2}, {"risk_mode", "NORMAL"},
                                            {"changed_fields", "risk_mode"}, {"updated_by", "msc"}, {"reason", "calm"}});
    event_add("PositionOpened", json::object{{"position_id", 7}, {"strategy", "trend-17"}, {"symbol", "BTCUSDT"},
                                             {"side", "BUY"}, {"qty", 0.05}, {"entry_price", 94000.0}, {"leverage", 2.0}});
    event_add("SubsystemDecided", json::object{{"subsystem", "AI-HFOS"}, {"mode", "ENFORCED"},
                                               {"action", "SET_DIRECTIVE"}, {"symbol", ""},
                                               {"detail", "system risk NORMAL -> SAFE"}, {"applied", true}});
    event_add("SubsystemDecided", json::object{{"subsystem", "PIL"}, {"mode", "OBSERVE"}, {"action", "CLASSIFY"},
                                               {"symbol", "ETHUSDT"}, {"detail", "would label LOSER"},
                                               {"applied", false}});
  }

  // The shape of api/serve's ServePlane: `curve` as points with ISO-8601 times.
  json::value analytics_system() override {
    json::array curve;
    double last = 0;
    for (int i = 0; i < kPoints; ++i) {
      // drift up, a 6% dip around day 30, recovered by the end
      const double dip = i >= 25 && i <= 40 ? -600.0 * std::sin((i - 25) * 3.14159265 / 15.0) : 0.0;
      last = 10'000.0 + 8.0 * i + 60.0 * std::sin(i * 0.7) + dip;
      curve.push_back(json::object{{"ts", time_format(kT0 + i * kDayNs)}, {"equity", last}, {"risk_mode", "NORMAL"}});
    }
    return json::object{{"equity", last},        {"initial_equity", 10'000.0}, {"daily_pnl", 42.5},
                        {"total_return", 0.045}, {"max_drawdown", 0.061},      {"trades", 38},
                        {"open_positions", 2},   {"trading_state", "ACTIVE"},  {"curve", std::move(curve)}};
  }
  json::value positions() override {
    return json::array{json::object{{"symbol", "BTCUSDT"}, {"side", "BUY"}, {"qty", 0.05}, {"entry_price", 94000.0},
                                    {"mark_price", 95210.0}, {"unrealized_pnl", 60.5}, {"strategy", "trend-17"},
                                    {"class", "WINNER"}},
                       json::object{{"symbol", "ETHUSDT"}, {"side", "SELL"}, {"qty", 1.2}, {"entry_price", 3400.0},
                                    {"mark_price", 3421.0}, {"unrealized_pnl", -25.2}, {"strategy", "revert-3"},
                                    {"class", "LOSER"}}};
  }
  // The shape of ServePlane's, with sub-scores.
  json::value opportunities() override {
    json::array out;
    for (int i = 0; i < 12; ++i) {
      const double s = 0.95 - 0.05 * i;
      out.push_back(json::object{{"symbol", "SYM" + std::to_string(i) + "USDT"},
                                 {"score", s},
                                 {"volume_24h", 1.0e8 / (i + 1)},
                                 {"sub_scores", json::object{{"trend", s * 0.9}, {"liquidity", 1.0 - 0.03 * i},
                                                             {"volatility", 0.4 + 0.02 * i}}}});
    }
    return json::object{{"universe_size", 40}, {"ranked_at", time_format(kT0)}, {"top", std::move(out)}};
  }
  json::value strategies() override {
    json::array out;
    for (int g = 1; g <= 3; ++g)
      for (int k = 0; k < 4; ++k)
        out.push_back(json::object{{"id", std::to_string(g) + "-" + std::to_string(k)},
                                   {"stage", g == 3 && k == 0 ? "LIVE" : "SHADOW"},
                                   {"generation", g},
                                   {"fitness", 0.3 * g + 0.1 * k},
                                   {"hall_of_fame", g == 3 && k >= 2}});
    return out;
  }
  json::value models() override {
    return json::array{
        json::object{{"name", "ranker"}, {"active", "v4"}, {"shadow", "v5"},
                     {"metrics", json::object{{"ic", 0.061}, {"hit_rate", 0.54}}}},
        json::object{{"name", "regime"}, {"active", "v2"}, {"shadow", nullptr},
                     {"metrics", json::object{{"accuracy", 0.71}}}}};
  }
};

// ---- the page itself --------------------------------------------------------------------------------------------

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

TEST(HttpDashboard, ServesOneSelfContainedPage) {
  FakeControlPlane plane;
  const auto settings = testing::test_settings();
  const auto res = handle_request(plane, settings, make_request(verb::get, "/", {}, false));
  ASSERT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res[http::field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(res[http::field::cache_control], "no-store");
  EXPECT_EQ(res["X-Frame-Options"], "DENY");
  const std::string csp(res["Content-Security-Policy"]);
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  const std::string page = res.body();
  EXPECT_EQ(page, std::string(dashboard_html()));
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("</html>"), std::string::npos);
  for (const auto* id : {"equity-chart", "drawdown-chart", "positions", "opportunities", "policy", "risk-timeline",
                         "subsystems", "fitness-chart", "hall-of-fame", "strategies", "models", "events",
                         "brake-toggle", "risk-mode-select", "stage-select", "control-msg"})
    EXPECT_NE(page.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  // Nothing from another host: the only URL in the page is the SVG namespace's name (an identifier, never fetched),
  // and no element or rule that loads a resource.
  const std::regex url(R"((https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,})");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), url); it != std::sregex_iterator(); ++it)
    EXPECT_EQ(it->str(), "http://www.w3.org") << "a URL to another host in the page";
  EXPECT_EQ(count(page, "http://www.w3.org/2000/svg"), 1u);
  for (const auto* loader : {"<script src", "<link", "@import", "url(", "<img", "<iframe", "src=\"http"})
    EXPECT_EQ(page.find(loader), std::string::npos) << loader;
  // The token is kept per tab and sent as a header, never put in a URL.
  EXPECT_NE(page.find("sessionStorage"), std::string::npos);
  EXPECT_NE(page.find("Authorization: 'Bearer '"), std::string::npos);
  EXPECT_EQ(page.find("token="), std::string::npos);

  // A static page: served while the services start (the page then shows their 503s), and described by the OpenAPI
  // document like every route.
  const auto doc = json::parse(handle_request(plane, settings, make_request(verb::get, "/openapi.json")).body());
  EXPECT_EQ(doc.at("paths").at("/").at("get").at("responses").at("200").at("content").as_object().count("text/html"), 1u);
  plane.is_ready = false;
  EXPECT_EQ(handle_request(plane, settings, make_request(verb::get, "/")).result_int(), 200u);
  EXPECT_EQ(handle_request(plane, settings, make_request(verb::post, "/", "{}")).result_int(), 405u);
  EXPECT_EQ(plane.control_calls, 0);
}

// A browser sends Origin on the page's own POSTs; only exactly this loopback server's origin passes, and the token
// is still needed. Other sites, other local ports, other schemes, a name that differs from Host: 403, unchanged.
TEST(HttpDashboard, ControlsAcceptOnlyThisServersOwnOrigin) {
  FakeControlPlane plane;
  auto settings = testing::test_settings();
  auto brake = [&](std::string host, std::string origin, bool auth = true) {
    auto req = make_request(verb::post, "/emergency-brake", R"({"on": true, "reason": "dashboard"})", auth);
    req.set(http::field::host, host);
    req.set(http::field::origin, origin);
    return handle_request(plane, settings, req).result_int();
  };
  for (const auto& [host, origin] : std::vector<std::pair<std::string, std::string>>{
           {"127.0.0.1:8080", "http://127.0.0.1:8080"},
           {"localhost:8080", "http://localhost:8080"},
           {"LOCALHOST:8080", "http://localhost:8080"},
           {"[::1]:8080", "http://[::1]:8080"},
           {"127.0.0.1", "http://127.0.0.1"}}) {
    EXPECT_EQ(brake(host, origin), 200u) << host << " " << origin;
  }
  const int accepted = plane.state_changes;
  EXPECT_EQ(accepted, 5);
  for (const auto& [host, origin] : std::vector<std::pair<std::string, std::string>>{
           {"127.0.0.1:8080", "http://evil.example"},
           {"127.0.0.1:8080", "http://evil.example:8080"},
           {"127.0.0.1:8080", "http://127.0.0.1:9090"},      // another local port is another origin
           {"127.0.0.1:8080", "http://localhost:8080"},      // the same machine by another name: not this page
           {"127.0.0.1:8080", "https://127.0.0.1:8080"},     // the API speaks plain HTTP only
           {"127.0.0.1:8080", "http://127.0.0.1"},
           {"127.0.0.1:8080", "http://127.0.0.1:8080/"},
           {"127.0.0.1:8080", "http://127.0.0.1:8080.evil.example"},
           {"127.0.0.1:8080", "null"},                        // a sandboxed frame or a file:// page
           {"127.0.0.1:8080", ""},
           {"127.0.0.1:8080", "http://"}}) {
    EXPECT_EQ(brake(host, origin), 403u) << host << " " << origin;
  }
  EXPECT_EQ(brake("127.0.0.1:8080", "http://127.0.0.1:8080", false), 401u);  // the origin is no credential
  // A non-loopback name is not "this server" by itself: the operator lists the dashboard's origin.
  settings.allowed_hosts = {"trader.lan"};
  EXPECT_EQ(brake("trader.lan:8080", "http://trader.lan:8080"), 403u);
  EXPECT_EQ(plane.state_changes, accepted);
  settings.allowed_origins = {"http://trader.lan:8080"};
  EXPECT_EQ(brake("trader.lan:8080", "http://trader.lan:8080"), 200u);
}

// ---- in a browser -----------------------------------------------------------------------------------------------
//
// Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ended by a
// NUL byte, commands on fd 3, answers and events on fd 4), in real time. Simpler drivers do not work here: the
// --dump-dom and --screenshot flags act either at the load event (before the page has fetched anything) or after
// a --virtual-time-budget, and virtual time stands still while a request is open, which the page's event stream
// always is. Over the protocol the test clicks the page's own button and answers its own token prompt.

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return {};
  std::string p = path;
  std::size_t start = 0;
  while (start <= p.size()) {
    const auto end = p.find(':', start);
    const std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return {};
}

std::string base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (const char c : in) {
    const int v = val(c);
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// One headless Chromium with one page; every call fails the test (and returns null) on an error or after 20 s.
class Browser {
 public:
  std::string prompt_answer;  ///< typed into a prompt() the page opens (the token); empty: the prompt is dismissed
  int prompts = 0;            ///< prompts the page opened

  Browser(const std::string& chromium, const std::string& work) : log_(work + "/chromium.log") {
    int to[2], from[2];
    if (::pipe(to) != 0 || ::pipe(from) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      // fds 3 and 4 as the protocol wants them, by way of fds out of the way of both
      const int r = ::fcntl(to[0], F_DUPFD, 10), w = ::fcntl(from[1], F_DUPFD, 10);
      ::dup2(r, 3);
      ::dup2(w, 4);
      const int logfd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
      ::close_range(5, ~0u, 0);  // nothing else of the test process (the server's sockets) reaches the browser
      const std::string profile = "--user-data-dir=" + work + "/profile";
      ::execl("/usr/bin/timeout", "timeout", "120", chromium.c_str(), "--headless", "--no-sandbox", "--disable-gpu",
              "--no-first-run", "--disable-extensions", "--remote-debugging-pipe", profile.c_str(), "about:blank",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(to[0]);
    ::close(from[1]);
    out_ = to[1];
    in_ = from[0];
    const auto target = call("Target.createTarget", {{"url", "about:blank"}}, false);
    if (target.is_null()) return;
    const auto attached = call("Target.attachToTarget", {{"targetId", target.at("targetId")}, {"flatten", true}}, false);
    if (attached.is_null()) return;
    session_ = std::string(attached.at("sessionId").as_string());
    call("Page.enable", {});
    call("Emulation.setDeviceMetricsOverride",
         {{"width", 1500}, {"height", 2000}, {"deviceScaleFactor", 1}, {"mobile", false}});
  }
  ~Browser() {
    if (pid_ > 0) {
      if (!session_.empty()) send("Browser.close", {}, false);
      for (int i = 0; i < 50; ++i) {  // 5 s to close, then it is killed
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) break;
        if (i == 49) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, nullptr, 0);
        }
        ::usleep(100'000);
      }
    }
    if (out_ >= 0) ::close(out_);
    if (in_ >= 0) ::close(in_);
  }
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;

  bool ok() const { return !session_.empty(); }
  std::string log() const { return test::slurp(log_); }

  // A protocol command on the page (or the browser); its result, or null after an error.
  json::value call(const std::string& method, json::object params, bool on_page = true) {
    const auto id = send(method, std::move(params), on_page);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      const auto msg = receive(deadline);
      if (!msg.is_object()) break;
      const auto& o = msg.as_object();
      if (const auto* m = o.if_contains("method")) {
        if (m->as_string() == "Page.javascriptDialogOpening") {
          ++prompts;
          json::object answer{{"accept", !prompt_answer.empty()}};
          if (!prompt_answer.empty()) answer["promptText"] = prompt_answer;
          send("Page.handleJavaScriptDialog", std::move(answer), true);
        }
        continue;
      }
      if (o.contains("id") && o.at("id").as_int64() == id) {
        if (o.contains("error")) {
          ADD_FAILURE() << method << ": " << json::serialize(o.at("error"));
          return nullptr;
        }
        return o.at("result");
      }
    }
    ADD_FAILURE() << method << ": no answer from chromium within 20 s\n" << log();
    return nullptr;
  }
  // A JavaScript expression's value in the page (promises awaited).
  json::value eval(const std::string& expression) {
    const auto r = call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}});
    if (!r.is_object() || r.as_object().contains("exceptionDetails")) {
      ADD_FAILURE() << expression << ": " << (r.is_null() ? "no result" : json::serialize(r));
      return nullptr;
    }
    const auto& v = r.at("result").as_object();
    return v.contains("value") ? v.at("value") : json::value(nullptr);
  }
  // Waits (real time) until `expression` is true in the page; false after `seconds`.
  bool wait_for(const std::string& expression, double seconds = 20) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      const auto v = eval("!!(" + expression + ")");
      if (v.is_bool() && v.as_bool()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string text(const std::string& id) {
    const auto v = eval("(document.getElementById('" + id + "') || {}).outerHTML || ''");
    return v.is_string() ? std::string(v.as_string()) : std::string();
  }

 private:
  using Clock = std::chrono::steady_clock;

  std::int64_t send(const std::string& method, json::object params, bool on_page) {
    json::object msg{{"id", ++next_id_}, {"method", method}, {"params", std::move(params)}};
    if (on_page) msg["sessionId"] = session_;
    std::string bytes = json::serialize(msg);
    bytes.push_back('\0');
    std::string_view rest = bytes;
    while (!rest.empty()) {
      const auto n = ::write(out_, rest.data(), rest.size());
      if (n <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    return next_id_;
  }
  json::value receive(Clock::time_point deadline) {
    while (true) {
      if (const auto end = buffer_.find('\0'); end != std::string::npos) {
        const std::string msg = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        boost::system::error_code ec;
        auto v = json::parse(msg, ec);
        return ec ? json::value(nullptr) : v;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return nullptr;
      pollfd p{in_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) return nullptr;
      char buf[65536];
      const auto n = ::read(in_, buf, sizeof buf);
      if (n <= 0) return nullptr;
      buffer_.append(buf, static_cast<std::size_t>(n));
    }
  }

  std::string log_;
  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
  std::int64_t next_id_ = 0;
  std::string session_, buffer_;
};

class HttpDashboardBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium = find_on_path("chromium");
    if (chromium.empty()) chromium = find_on_path("chromium-browser");
    if (chromium.empty()) GTEST_SKIP() << "no chromium on PATH (Debian: apt-get install chromium)";
    ServerSettings settings;
    settings.port = 0;
    settings.api = testing::test_settings();
    server.emplace(plane, settings);
    server->start();
    ASSERT_NE(server->port(), 0);
    url = "http://127.0.0.1:" + std::to_string(server->port()) + "/";
    browser.emplace(chromium, dir.file(""));
    ASSERT_TRUE(browser->ok()) << browser->log();
    browser->call("Page.navigate", {{"url", url}});
    ASSERT_TRUE(browser->wait_for("document.body && document.body.dataset.ready === '1'")) << browser->log();
  }
  void TearDown() override {
    browser.reset();
    if (server) server->stop();
  }
  bool brake_via_api() {
    const auto a = test::http(server->port(), "GET", "/health/ai");
    EXPECT_EQ(a.status, 200);
    return a.status == 200 && json::parse(a.body).at("emergency_brake").as_bool();
  }

  DashboardPlane plane;
  std::optional<Server> server;
  test::TempDir dir;
  std::optional<Browser> browser;
  std::string chromium, url;
};

TEST_F(HttpDashboardBrowser, ChartsAndTablesAreDrawnWithTheData) {
  const auto page = test::http(server->port(), "GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.body, std::string(dashboard_html()));
  auto& b = *browser;

  // The charts: one path point per curve point, drawn from the data.
  const auto equity = b.text("equity-chart");
  EXPECT_NE(equity.find("data-points=\"" + std::to_string(DashboardPlane::kPoints) + "\""), std::string::npos) << equity;
  ASSERT_NE(equity.find("class=\"series\""), std::string::npos) << equity;
  const auto d = b.eval("document.querySelector('#equity-chart path.series').getAttribute('d')");
  ASSERT_TRUE(d.is_string());
  EXPECT_EQ(count(std::string(d.as_string()), " L"), static_cast<std::size_t>(DashboardPlane::kPoints - 1));
  EXPECT_NE(equity.find("2025-01-01 00:00"), std::string::npos) << equity;  // a time axis from the ISO times
  const auto drawdown = b.text("drawdown-chart");
  EXPECT_NE(drawdown.find("class=\"series\""), std::string::npos) << drawdown;
  EXPECT_NE(drawdown.find("Drawdown (worst -"), std::string::npos) << drawdown;  // the dip is drawn
  const auto fitness = b.text("fitness-chart");
  EXPECT_NE(fitness.find("data-points=\"3\""), std::string::npos) << fitness;
  EXPECT_EQ(count(fitness, "class=\"series\""), 2u);
  const auto timeline = b.text("risk-timeline");
  EXPECT_EQ(count(timeline, "class=\"seg\""), 3u) << timeline;  // versions 1..3
  EXPECT_NE(timeline.find("DEFENSIVE"), std::string::npos);
  // Drawn, not just present: the equity chart has a real size on the screen.
  const auto width = b.eval("document.getElementById('equity-chart').getBoundingClientRect().width");
  EXPECT_GT(width.is_number() ? width.to_number<double>() : 0.0, 500.0);

  // The tables.
  const auto positions = b.text("positions");
  EXPECT_EQ(count(positions, "class=\"row\""), 2u) << positions;
  EXPECT_NE(positions.find("BTCUSDT"), std::string::npos);
  EXPECT_NE(positions.find("WINNER"), std::string::npos);
  const auto opportunities = b.text("opportunities");
  EXPECT_EQ(count(opportunities, "class=\"row\""), 10u) << opportunities;  // the top 10 of 12
  EXPECT_NE(opportunities.find("liquidity"), std::string::npos);          // a sub-score column
  EXPECT_EQ(opportunities.find("SYM11USDT"), std::string::npos);
  const auto subsystems = b.text("subsystems");
  EXPECT_EQ(count(subsystems, "class=\"row\""), kSubsystemCount) << subsystems;
  EXPECT_NE(subsystems.find("AI-HFOS"), std::string::npos);
  EXPECT_NE(subsystems.find("SET_DIRECTIVE"), std::string::npos);  // its last decision, from the events
  EXPECT_NE(b.text("policy").find("NORMAL"), std::string::npos);
  EXPECT_EQ(count(b.text("hall-of-fame"), "class=\"row\""), 2u);
  EXPECT_EQ(count(b.text("strategies"), "class=\"row\""), 12u);
  const auto models = b.text("models");
  EXPECT_EQ(count(models, "class=\"row\""), 2u);
  EXPECT_NE(models.find("hit_rate"), std::string::npos);
  const auto events = b.text("events");
  EXPECT_EQ(count(events, "class=\"event"), 4u) << events;
  EXPECT_NE(events.find("SubsystemDecided"), std::string::npos);
  EXPECT_NE(b.text("brake-state").find(">released<"), std::string::npos);

  // Live: the event stream is open, and a new event shows up with the subsystem's new last decision.
  EXPECT_TRUE(b.wait_for("document.getElementById('conn').textContent === 'live'", 10)) << b.text("conn");
  plane.event_add("SubsystemDecided", json::object{{"subsystem", "AI-HFOS"}, {"mode", "ENFORCED"},
                                                   {"action", "SET_RISK_MODE"}, {"symbol", ""},
                                                   {"detail", "system risk SAFE -> CRITICAL"}, {"applied", true}});
  EXPECT_TRUE(b.wait_for("document.querySelectorAll('#events li.event').length === 5", 10)) << b.text("events");
  EXPECT_TRUE(b.wait_for("document.getElementById('subsystems').textContent.includes('SET_RISK_MODE')", 10));
  EXPECT_EQ(b.prompts, 0);  // reads need no token
  EXPECT_EQ(plane.control_calls, 0);
}

// The brake, pulled through the page: the test clicks the page's own button and answers its token prompt, so the
// request goes through the page's click handler, its fetch with the Bearer header and the browser's own Origin, to
// the server and the plane; GET /health/ai then shows the brake engaged, and so does the page.
TEST_F(HttpDashboardBrowser, PullingTheBrakeFromThePageEngagesIt) {
  auto& b = *browser;
  ASSERT_FALSE(brake_via_api());
  // A wrong token: the server's 401 and its message are shown, nothing changes, and the token is forgotten.
  b.prompt_answer = "wrong-token";
  b.eval("document.getElementById('brake-toggle').click()");
  ASSERT_TRUE(b.wait_for("document.getElementById('control-msg').dataset.status === '401'")) << b.text("control-msg");
  EXPECT_NE(b.text("control-msg").find("the token is wrong"), std::string::npos);
  EXPECT_EQ(b.prompts, 1);
  EXPECT_FALSE(brake_via_api());
  EXPECT_EQ(plane.state_changes, 0);
  EXPECT_TRUE(b.eval("sessionStorage.length === 0").as_bool());

  b.prompt_answer = std::string(kTestToken);
  b.eval("document.getElementById('brake-toggle').click()");
  ASSERT_TRUE(b.wait_for("document.getElementById('control-msg').dataset.status === '200'")) << b.text("control-msg");
  EXPECT_EQ(b.prompts, 2);
  EXPECT_TRUE(brake_via_api());
  EXPECT_TRUE(plane.brake());
  EXPECT_EQ(plane.last_actor().reason, "dashboard");
  EXPECT_EQ(plane.state_changes, 1);
  EXPECT_TRUE(b.wait_for("document.getElementById('brake-state').textContent === 'ENGAGED'")) << b.text("brake-state");
  EXPECT_EQ(b.eval("location.href").as_string(), url);  // the token is in no URL

  // The token is asked once per tab: the next control uses the stored one.
  b.eval("document.getElementById('risk-mode-select').value = 'DEFENSIVE'; "
         "document.getElementById('risk-mode-apply').click()");
  ASSERT_TRUE(b.wait_for("document.getElementById('control-msg').textContent.includes('DEFENSIVE: done')"))
      << b.text("control-msg");
  EXPECT_EQ(b.prompts, 2);
  EXPECT_EQ(plane.policy_now().risk_mode, RiskMode::defensive);
  EXPECT_EQ(plane.state_changes, 2);
}

TEST_F(HttpDashboardBrowser, ScreenshotIsKept) {
  auto& b = *browser;
  const auto shot = [&] {
    const auto r = b.call("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", true}});
    return r.is_object() ? base64_decode(r.at("data").as_string()) : std::string();
  };
  const std::string png = shot();
  b.eval("document.body.replaceChildren(); document.head.replaceChildren(); true");  // the same window, blank
  const std::string blank = shot();
  ASSERT_GE(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  EXPECT_GT(png.size(), 10 * blank.size()) << "the dashboard rendered like a blank page (" << png.size() << " vs "
                                           << blank.size() << " bytes)";
  const std::string artifacts = std::string(QTOS_SOURCE_DIR) + "/build/test-artifacts";
  std::filesystem::create_directories(artifacts);
  std::ofstream(artifacts + "/dashboard.png", std::ios::binary) << png;
  std::printf("[ dashboard ] screenshot %s (%zu bytes; a blank page: %zu)\n", (artifacts + "/dashboard.png").c_str(),
              png.size(), blank.size());
}

// The dashboard against a running `qtos serve` (the real binary, the real OS behind the API): the charts and tables
// drawn from its data, the brake pulled from the page seen in /health/ai, a screenshot kept.
TEST(HttpDashboardServe, ThePageDrivesTheRunningOs) {
  std::string chromium = find_on_path("chromium");
  if (chromium.empty()) chromium = find_on_path("chromium-browser");
  if (chromium.empty()) GTEST_SKIP() << "no chromium on PATH (Debian: apt-get install chromium)";
  test::TempDir dir;
  test::QtosProcess serve({"serve", "--state-dir", dir.file("state"), "--port", "0", "--speed", "3600", "--symbols", "10", "--bars", "2000",
                           "--warmup", "300"},
                          {.capture_stderr = false});
  const std::uint16_t port = serve.dashboard_port();
  ASSERT_NE(port, 0) << serve.output();
  std::string token = test::slurp(dir.file("state") + "/api_token");
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  ASSERT_TRUE(test::eventually([&] { return test::http(port, "GET", "/health/ai").status == 200; }, std::chrono::seconds(30),
                                std::chrono::milliseconds(100)))
      << "never ready\n" << serve.output();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  Browser b(chromium, dir.file(""));
  ASSERT_TRUE(b.ok()) << b.log();
  b.call("Page.navigate", {{"url", url}});
  ASSERT_TRUE(b.wait_for("document.body && document.body.dataset.ready === '1'")) << b.log();
  // Drawn from the running OS's data: the equity curve, the subsystems, the policy.
  ASSERT_TRUE(b.wait_for("document.querySelector('#equity-chart path.series') !== null")) << b.text("equity-chart");
  EXPECT_NE(b.text("subsystems").find("AI-HFOS"), std::string::npos) << b.text("subsystems");
  EXPECT_NE(b.text("subsystems").find("MSC-AI"), std::string::npos);
  EXPECT_NE(b.text("policy").find("max_open_positions"), std::string::npos);
  // The brake, pulled from the page with the service's token, stops the OS's entries.
  b.prompt_answer = token;
  b.eval("document.getElementById('brake-toggle').click()");
  ASSERT_TRUE(b.wait_for("document.getElementById('control-msg').dataset.status === '200'")) << b.text("control-msg");
  const auto ai = test::http(port, "GET", "/health/ai");
  ASSERT_EQ(ai.status, 200);
  EXPECT_TRUE(ai.json().at("emergency_brake").as_bool());
  EXPECT_EQ(ai.json().at("trading_state").as_string(), "HALTED");
  const auto r = b.call("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", true}});
  ASSERT_TRUE(r.is_object());
  const std::string png = base64_decode(r.at("data").as_string());
  EXPECT_GT(png.size(), 50'000u);
  const std::string artifacts = std::string(QTOS_SOURCE_DIR) + "/build/test-artifacts";
  std::filesystem::create_directories(artifacts);
  std::ofstream(artifacts + "/dashboard-serve.png", std::ios::binary) << png;
  // A clean stop.
  EXPECT_EQ(serve.terminate(), 0) << serve.output();
}

}  // namespace http_dashboard_test
}  // namespace qtos::api
