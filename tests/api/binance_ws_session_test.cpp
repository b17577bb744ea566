// The WebSocket session under the kline feed and the user stream, against the fake venue (TLS): failed attempts back
// off exponentially with jitter up to the cap, a connection that worked starts the back-off again from its minimum, a
// refused hello is not a connection, the periodic task runs only while a connection is open, and stop() cuts a long
// back-off short.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/binance/ws_session.hpp"
#include "tests/api/binance_fake_server.hpp"
#include "tests/support/eventually.hpp"

namespace qtos::binance {
namespace binance_ws_session_test {

using std::chrono::milliseconds;

/// The delays in the session's notes ("... reconnecting in N ms").
struct Notes {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(const std::string& s) {
    std::lock_guard l(mu);
    lines.push_back(s);
  }
  std::vector<long> delays() {
    std::lock_guard l(mu);
    std::vector<long> d;
    for (const std::string& s : lines)
      if (const auto p = s.find("reconnecting in "); p != std::string::npos) d.push_back(std::stol(s.substr(p + 16)));
    return d;
  }
  std::size_t size() {
    std::lock_guard l(mu);
    return lines.size();
  }
};

TEST(WsSession, BackoffDoublesFromTheMinimumUpToTheCapWithJitterInItsUpperHalf) {
  EXPECT_EQ(ws_backoff_delay(milliseconds(500), milliseconds(30'000), 1, 1.0), milliseconds(500));
  EXPECT_EQ(ws_backoff_delay(milliseconds(500), milliseconds(30'000), 2, 1.0), milliseconds(1000));
  EXPECT_EQ(ws_backoff_delay(milliseconds(500), milliseconds(30'000), 4, 1.0), milliseconds(4000));
  EXPECT_EQ(ws_backoff_delay(milliseconds(500), milliseconds(30'000), 7, 1.0), milliseconds(30'000));  // 32 s capped
  EXPECT_EQ(ws_backoff_delay(milliseconds(500), milliseconds(30'000), 1000, 1.0), milliseconds(30'000));
  EXPECT_EQ(ws_backoff_delay(milliseconds(500), milliseconds(30'000), 3, 0.5), milliseconds(1000));
  EXPECT_EQ(ws_backoff_delay(milliseconds(500), milliseconds(30'000), 3, 0.1), milliseconds(1000));  // jitter >= 0.5
}

TEST(WsSession, FailuresBackOffAndAConnectionThatWorkedStartsAgainFromTheMinimum) {
  test::FakeBinance fake(true, "k", "s");
  Notes notes;
  std::mutex mu;
  int attempts = 0, fail_first = 4;
  std::vector<std::string> texts;
  std::vector<std::uint64_t> opens;
  WsSessionOptions o;
  o.name = "test stream";
  o.endpoint = HttpEndpoint{"localhost", fake.port(), true, fake.ca_file()};
  o.reconnect.backoff_min = milliseconds(8);
  o.reconnect.backoff_max = milliseconds(5000);  // long: a connection dropped at once never counts as open "for backoff_max"
  o.reconnect.idle_timeout = milliseconds(10'000);
  o.target = [&] {
    std::lock_guard l(mu);
    if (++attempts <= fail_first) throw std::runtime_error("listenKey not granted (HTTP 503)");
    return std::string("/ws/abc");
  };
  o.on_open = [&](std::uint64_t n) {
    std::lock_guard l(mu);
    opens.push_back(n);
  };
  o.on_text = [&](const std::string& t) {
    std::lock_guard l(mu);
    texts.push_back(t);
  };
  o.on_note = [&](const std::string& s) { notes.add(s); };
  std::atomic<int> periodic{0};
  o.periodic_every = milliseconds(2);
  o.periodic = [&] { ++periodic; };
  WsSession s(o);
  // Open `n` times, on both sides: the fake lists a connection (and can drop it) just after the client sees it open.
  const auto opened = [&](std::uint64_t n) { return s.connects() == n && fake.ws_targets().size() == n; };
  s.start();
  ASSERT_TRUE(test::eventually([&] { return opened(1); }));
  EXPECT_TRUE(test::eventually([&] { return periodic.load() >= 2; }));  // a keep-alive while the connection is open
  // Four failed attempts: 8, 16, 32, 64 ms before jitter, each in [50%, 100%] of its step.
  const std::vector<long> first = notes.delays();
  ASSERT_EQ(first.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    const long step = 8L << i;
    EXPECT_GE(first[i], step / 2) << i;
    EXPECT_LE(first[i], step) << i;
  }
  {
    std::lock_guard l(notes.mu);
    EXPECT_NE(notes.lines[0].find("test stream lost (listenKey not granted (HTTP 503))"), std::string::npos) << notes.lines[0];
  }
  fake.ws_send("{\"e\":\"hello\"}");
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard l(mu);
    return texts.size() == 1;
  }));
  // The connection worked (a frame read): after a drop the next attempt waits the minimum again, not the cap.
  fake.ws_drop();
  ASSERT_TRUE(test::eventually([&] { return opened(2); }));
  const std::vector<long> after = notes.delays();
  ASSERT_EQ(after.size(), 5u);
  EXPECT_LE(after[4], 8);
  // A connection that read nothing before it dropped did not work: the back-off grows again.
  fake.ws_drop();
  ASSERT_TRUE(test::eventually([&] { return opened(3); }));
  fake.ws_drop();
  ASSERT_TRUE(test::eventually([&] { return opened(4); }));
  const std::vector<long> grown = notes.delays();
  ASSERT_EQ(grown.size(), 7u);
  EXPECT_GE(grown[5], 16 / 2);
  EXPECT_GE(grown[6], 32 / 2);
  s.stop();
  const int after_stop = periodic.load();
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(periodic.load(), after_stop);
  std::lock_guard l(mu);
  EXPECT_EQ(opens, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(texts, std::vector<std::string>{"{\"e\":\"hello\"}"});
}

TEST(WsSession, ARefusedHelloIsNotAConnectionAndThePeriodicTaskRunsOnlyWhileOpen) {
  test::FakeBinance fake(true, "k", "s");
  Notes notes;
  std::atomic<int> periodic{0};
  WsSessionOptions o;
  o.endpoint = HttpEndpoint{"localhost", fake.port(), true, fake.ca_file()};
  o.reconnect.backoff_min = milliseconds(5);
  o.reconnect.backoff_max = milliseconds(20);
  o.target = [] { return std::string("/ws-api/v3"); };
  // A subscription with a bad signature: the fake answers status 400, as the venue does.
  o.hello = [] {
    return std::string("{\"id\":\"1\",\"method\":\"userDataStream.subscribe.signature\",\"params\":{\"apiKey\":\"k\","
                       "\"timestamp\":1,\"signature\":\"00\"}}");
  };
  o.hello_check = [](const std::string& answer) {
    if (answer.find("\"status\":200") == std::string::npos) throw std::runtime_error("subscription refused: " + answer.substr(0, 80));
  };
  o.on_text = [](const std::string&) {};
  o.periodic_every = milliseconds(1);
  o.periodic = [&] { ++periodic; };
  o.on_note = [&](const std::string& s) { notes.add(s); };
  WsSession s(o);
  s.start();
  ASSERT_TRUE(test::eventually([&] { return notes.size() >= 3; }));
  s.stop();
  EXPECT_EQ(s.connects(), 0u);
  EXPECT_EQ(periodic.load(), 0);  // never open, never run
  std::lock_guard l(notes.mu);
  EXPECT_NE(notes.lines[0].find("subscription refused"), std::string::npos) << notes.lines[0];
}

TEST(WsSession, StopCutsALongBackoffShortAndBadOptionsAreNamed) {
  test::FakeBinance fake(true, "k", "s");
  WsSessionOptions o;
  o.name = "kline stream";
  o.endpoint = HttpEndpoint{"localhost", fake.port(), true, fake.ca_file()};
  o.reconnect.backoff_min = milliseconds(60'000);
  o.reconnect.backoff_max = milliseconds(60'000);
  std::atomic<int> attempts{0};
  o.target = [&]() -> std::string {
    ++attempts;
    throw std::runtime_error("down");
  };
  o.on_text = [](const std::string&) {};
  {
    WsSession s(o);
    s.start();
    ASSERT_TRUE(test::eventually([&] { return attempts.load() == 1; }));
    const auto t0 = std::chrono::steady_clock::now();
    s.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));  // not the minute of back-off
  }
  WsSessionOptions bad = o;
  bad.reconnect.backoff_min = milliseconds(0);
  try {
    WsSession s(bad);
    FAIL() << "a zero back-off was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kline stream: back-off"), std::string::npos) << e.what();
  }
  bad = o;
  bad.on_text = nullptr;
  EXPECT_THROW(WsSession{bad}, std::invalid_argument);
  bad = o;
  bad.endpoint.ca_file = "/nonexistent/ca.pem";
  try {
    WsSession s(bad);
    FAIL() << "a missing CA file was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ca.pem"), std::string::npos) << e.what();
  }
}

}  // namespace binance_ws_session_test
}  // namespace qtos::binance
