// The server over loopback sockets: limits (413 before the body is read, 431), timeouts (408, idle close), keep-alive,
// the pipelining and connection caps, server-sent events with resume, graceful stop; and the token file.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>

#include "api/http/server.hpp"
#include "runtime/config/config.hpp"
#include "tests/api/http_fake_plane.hpp"

namespace qtos::api {
namespace http_server_test {

using testing::FakeControlPlane;
using Clock = std::chrono::steady_clock;
using HttpResponse = http::response<http::string_body>;

// A blocking loopback client with a receive timeout, reading raw bytes so that a test sees exactly what was sent.
class Client {
 public:
  explicit Client(std::uint16_t port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // Reads once; false on EOF, error or timeout.
  bool read_some() {
    char buf[8192];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = n == 0 || errno == ECONNRESET;
      return false;
    }
    buf_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  // The next complete response, or nullopt when the connection ended (or timed out) first.
  std::optional<HttpResponse> response() {
    while (true) {
      if (auto r = parse()) return r;
      if (!read_some()) return parse_at_eof();
    }
  }
  // Every response until the server closes the connection.
  std::vector<HttpResponse> responses_until_close() {
    std::vector<HttpResponse> out;
    while (auto r = response()) out.push_back(std::move(*r));
    return out;
  }
  // Waits for the server to close; true when it did (not a timeout).
  bool closed_by_server() {
    while (read_some()) {
    }
    return eof_;
  }
  // Reads until `text` arrived; false on close or timeout.
  bool wait_for(std::string_view text) {
    while (buf_.find(text) == std::string::npos)
      if (!read_some()) return false;
    return true;
  }
  const std::string& raw() const { return buf_; }

 private:
  std::optional<HttpResponse> parse(bool eof = false) {
    http::response_parser<http::string_body> p;
    p.eager(true);
    boost::system::error_code ec;
    std::size_t used = 0;
    while (!p.is_done()) {
      const auto n = p.put(boost::asio::buffer(buf_.data() + used, buf_.size() - used), ec);
      used += n;
      if (ec == http::error::need_more || (!ec && n == 0)) {
        if (!eof) return std::nullopt;
        p.put_eof(ec);
        if (ec || !p.is_done()) return std::nullopt;
        break;
      }
      if (ec) return std::nullopt;
    }
    buf_.erase(0, used);
    return p.release();
  }
  std::optional<HttpResponse> parse_at_eof() { return buf_.empty() ? std::nullopt : parse(true); }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

std::string get(std::string_view target, std::string_view extra = {}) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra) + "\r\n";
}

class HttpServer : public ::testing::Test {
 protected:
  HttpServer() {
    settings.port = 0;
    settings.api = testing::test_settings();
  }
  void start() {
    server.emplace(plane, settings);
    server->start();
    ASSERT_NE(server->port(), 0);
  }
  double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

  FakeControlPlane plane;
  ServerSettings settings;
  std::optional<Server> server;
};

TEST_F(HttpServer, AnswersAndKeepsTheConnectionAlive) {
  start();
  Client c(server->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    c.send(get("/health"));
    auto r = c.response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->result_int(), 200u);
    EXPECT_TRUE(r->keep_alive());
    EXPECT_NE(r->body().find("\"ok\""), std::string::npos);
  }
  c.send(get("/opportunities", "Connection: close\r\n"));
  auto r = c.response();
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->keep_alive());
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpServer, PipelinedRequestsAreAnsweredInOrderUpToTheCap) {
  settings.max_pipelined = 4;
  start();
  {
    Client c(server->port());
    std::string burst;
    for (int i = 0; i < 3; ++i) burst += get(i == 1 ? "/orders/o7" : "/health");
    c.send(burst);
    for (int i = 0; i < 3; ++i) {
      auto r = c.response();
      ASSERT_TRUE(r);
      EXPECT_EQ(r->result_int(), 200u);
      EXPECT_TRUE(r->keep_alive());
      if (i == 1) {
        EXPECT_NE(r->body().find("o7"), std::string::npos);  // in order
      }
    }
  }
  Client c(server->port());
  std::string burst;
  for (int i = 0; i < 10; ++i) burst += get("/health");
  c.send(burst);
  const auto rs = c.responses_until_close();
  ASSERT_EQ(rs.size(), 4u);
  EXPECT_FALSE(rs.back().keep_alive());
}

TEST_F(HttpServer, HeadersOverTheLimitAre431) {
  settings.header_limit = 1024;
  start();
  Client c(server->port());
  c.send(get("/health", "X-Pad: " + std::string(2000, 'a') + "\r\n"));
  auto r = c.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 431u);
  EXPECT_NE(r->body().find("header_too_large"), std::string::npos);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpServer, BodyOverTheLimitIs413BeforeTheBodyIsSent) {
  start();
  Client c(server->port());
  // Only the headers: the answer must come from Content-Length alone, before a byte of the body.
  c.send("PUT /policy HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + std::string(testing::kTestToken) +
         "\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n");
  auto r = c.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 413u);
  EXPECT_EQ(plane.control_calls, 0);
  // and a body sent in full, over the limit, is refused too (the answer is not lost to a reset)
  Client c2(server->port());
  const std::string body(70 * 1024, ' ');
  c2.send("PUT /policy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  r = c2.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 413u);
}

TEST_F(HttpServer, MalformedFramingIs400) {
  start();
  {
    Client c(server->port());
    c.send("POST /emergency-brake HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n"
           "c\r\n{\"on\": true}\r\n0\r\n\r\n");
    auto r = c.response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 400u);
    EXPECT_TRUE(c.closed_by_server());
  }
  Client c(server->port());
  c.send("NOT AN HTTP REQUEST\r\n\r\n");
  auto r = c.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 400u);
  EXPECT_FALSE(plane.brake());
}

TEST_F(HttpServer, ASlowRequestIs408AndClosed) {
  settings.read_timeout = std::chrono::milliseconds(200);
  start();
  Client c(server->port());
  const auto t0 = Clock::now();
  c.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");  // never finished
  auto r = c.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 408u);
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_LT(seconds_since(t0), 2.0);
}

TEST_F(HttpServer, AnIdleConnectionIsClosed) {
  settings.idle_timeout = std::chrono::milliseconds(200);
  start();
  Client c(server->port());
  c.send(get("/health"));
  ASSERT_TRUE(c.response());
  const auto t0 = Clock::now();
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_GE(seconds_since(t0), 0.15);
  EXPECT_LT(seconds_since(t0), 2.0);
}

TEST_F(HttpServer, ConnectionsOverTheCapGet503) {
  settings.max_connections = 2;
  start();
  Client a(server->port()), b(server->port());
  for (Client* c : {&a, &b}) {
    c->send(get("/health"));
    ASSERT_TRUE(c->response());
  }
  EXPECT_EQ(server->connections(), 2u);
  Client third(server->port());
  auto r = third.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503u);
  EXPECT_TRUE(third.closed_by_server());
  a.send(get("/health"));  // the first ones are still served
  ASSERT_TRUE(a.response());
}

TEST_F(HttpServer, EventStreamSendsNewEventsAndResumesFromLastEventId) {
  settings.sse_poll = std::chrono::milliseconds(10);
  start();
  for (int i = 1; i <= 3; ++i) plane.event_add("PolicyUpdated", boost::json::object{{"n", i}});
  Client c(server->port());
  c.send(get("/events/stream", "Last-Event-ID: 1\r\n"));
  ASSERT_TRUE(c.wait_for("id: 3\n"));
  EXPECT_NE(c.raw().find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_EQ(c.raw().find("id: 1\n"), std::string::npos);  // resumed after 1
  EXPECT_NE(c.raw().find("id: 2\nevent: PolicyUpdated\ndata: {\"n\":2}\n\n"), std::string::npos);
  plane.event_add("EmergencyBrakeChanged", boost::json::object{{"on", true}});
  ASSERT_TRUE(c.wait_for("id: 4\nevent: EmergencyBrakeChanged\n"));

  Client q(server->port());
  q.send(get("/events/stream?since=3"));
  ASSERT_TRUE(q.wait_for("id: 4\n"));
  EXPECT_EQ(q.raw().find("id: 3\n"), std::string::npos);
}

TEST_F(HttpServer, StopFinishesInFlightRequestsAndClosesIdleOnesAndStreams) {
  struct Slow : FakeControlPlane {
    boost::json::value opportunities() override {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return FakeControlPlane::opportunities();
    }
  } slow;
  server.emplace(slow, settings);
  server->start();
  Client idle(server->port()), stream(server->port()), busy(server->port());
  idle.send(get("/health"));
  ASSERT_TRUE(idle.response());
  stream.send(get("/events/stream"));
  ASSERT_TRUE(stream.wait_for("stream opened"));
  busy.send(get("/opportunities"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the slow request is in flight
  const auto t0 = Clock::now();
  server->stop();
  EXPECT_LT(seconds_since(t0), 3.0);
  auto r = busy.response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  EXPECT_FALSE(r->keep_alive());
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_TRUE(stream.closed_by_server());
  EXPECT_EQ(server->connections(), 0u);
  Client late(server->port(), 500);
  EXPECT_FALSE(late.connected() && late.response());  // no longer accepting
}

TEST_F(HttpServer, RefusesANonLoopbackBindWithoutAToken) {
  settings.address = "0.0.0.0";
  settings.api.token.clear();
  EXPECT_THROW(Server(plane, settings), std::invalid_argument);
  settings.api.token = std::string(testing::kTestToken);
  EXPECT_NO_THROW(Server(plane, settings));
  EXPECT_TRUE(address_is_loopback("127.0.0.1"));
  EXPECT_TRUE(address_is_loopback("::1"));
  EXPECT_TRUE(address_is_loopback("localhost"));
  EXPECT_FALSE(address_is_loopback("0.0.0.0"));
  EXPECT_FALSE(address_is_loopback("192.168.1.10"));
}

TEST_F(HttpServer, DefaultsBindLoopbackWithTheIssuesLimits) {
  const ServerSettings d;
  EXPECT_EQ(d.address, "127.0.0.1");
  EXPECT_EQ(d.api.body_limit, 64u * 1024u);
  EXPECT_GT(d.api.json_depth_limit, 0u);
}

class HttpApiToken : public ::testing::Test {
 protected:
  HttpApiToken() {
    dir = std::filesystem::temp_directory_path() /
          ("qtos-http-token-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
  }
  ~HttpApiToken() override { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
};

TEST_F(HttpApiToken, IsCreatedOwnerOnlyAndReused) {
  const auto token = api_token_load_or_create((dir / "state").string());
  EXPECT_EQ(token.size(), 64u);
  EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "state" / "api_token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(api_token_load_or_create((dir / "state").string()), token);
  EXPECT_NE(api_token_load_or_create((dir / "other").string()), token);
  for (const auto& e : std::filesystem::directory_iterator(dir / "state"))
    EXPECT_EQ(e.path().filename(), "api_token");  // no temporary left
}

TEST_F(HttpApiToken, ATokenFileOthersCanReadIsRefused) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "api_token") << "some-token-that-is-long-enough\n";
  ::chmod((dir / "api_token").c_str(), 0644);
  EXPECT_THROW(api_token_load_or_create(dir.string()), std::runtime_error);
  ::chmod((dir / "api_token").c_str(), 0600);
  EXPECT_EQ(api_token_load_or_create(dir.string()), "some-token-that-is-long-enough");
}

TEST_F(HttpApiToken, TheEnvironmentsTokenWinsAndNoFileIsMade) {
  Config config;
  config.state_dir = dir.string();
  config.api_token = "from-the-environment-0123";
  EXPECT_EQ(api_token_resolve(config), "from-the-environment-0123");
  EXPECT_FALSE(std::filesystem::exists(dir / "api_token"));
  config.api_token.clear();
  EXPECT_EQ(api_token_resolve(config).size(), 64u);
}

}  // namespace http_server_test
}  // namespace qtos::api
