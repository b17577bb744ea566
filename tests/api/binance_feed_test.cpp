// The live kline feed against the fake venue's WebSocket (TLS): closed klines become MarketBarClosed once and in
// order, open ones are not delivered, a dropped connection is reopened after a short jittered back-off and the bars
// missed meanwhile come from REST, and a hole inside the stream is filled from REST before the bar after it.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/binance/kline_feed.hpp"
#include "tests/api/binance_fake_server.hpp"
#include "tests/support/eventually.hpp"

namespace qtos::binance {
namespace binance_feed_test {

constexpr std::int64_t kH = 3'600'000;

std::string kline_event(const std::string& sym, std::int64_t open_ms, double close, bool closed) {
  return "{\"stream\":\"" + std::string("btcusdt@kline_1h") + "\",\"data\":{\"e\":\"kline\",\"E\":1,\"s\":\"" + sym +
         "\",\"k\":{\"t\":" + std::to_string(open_ms) + ",\"T\":" + std::to_string(open_ms + kH - 1) + ",\"s\":\"" + sym +
         "\",\"i\":\"1h\",\"o\":\"" + std::to_string(close - 0.5) + "\",\"c\":\"" + std::to_string(close) + "\",\"h\":\"" +
         std::to_string(close + 1) + "\",\"l\":\"" + std::to_string(close - 1) + "\",\"v\":\"10\",\"n\":50,\"x\":" +
         (closed ? "true" : "false") + ",\"q\":\"1000\"}}}";
}

struct Bars {
  std::mutex mu;
  std::vector<std::int64_t> opens;  // ms
  std::vector<double> closes;
  std::size_t size() {
    std::lock_guard l(mu);
    return opens.size();
  }
};

TEST(BinanceKlineFeed, StreamTarget) {
  EXPECT_EQ(kline_stream_target({"BTCUSDT", "ETHUSDT"}, "1h", false), "/stream?streams=btcusdt@kline_1h/ethusdt@kline_1h");
  EXPECT_EQ(kline_stream_target({"BTCUSDT"}, "1m", true), "/stream?streams=btcusdt@kline_1m/btcusdt@bookTicker");
}

TEST(BinanceKlineFeed, ClosedBarsOnceInOrderThroughDropsAndHoles) {
  test::FakeBinance fake(true, "k", "s");
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::int64_t t0 = (now / kH - 20) * kH;  // 20 hours ago: every bar below is closed
  Bars bars;
  std::vector<BookTicker> books;
  KlineFeedOptions o;
  o.market = MarketKind::linear_perpetual;
  o.ws = HttpEndpoint{"localhost", fake.port(), true, fake.ca_file()};
  o.rest = o.ws;
  o.symbols = {"BTCUSDT"};
  o.interval = "1h";
  o.book_tickers = true;
  o.reconnect.backoff_min = std::chrono::milliseconds(10);
  o.reconnect.backoff_max = std::chrono::milliseconds(40);
  std::mutex note_mu;
  std::string notes;  // reconnects and back-fill failures, shown when a wait fails
  o.on_note = [&](const std::string& n) {
    std::lock_guard l(note_mu);
    notes += n + "\n";
  };
  const auto shown = [&] {
    std::string out;
    {
      std::lock_guard l(bars.mu);
      for (const std::int64_t open : bars.opens) out += std::to_string((open - t0) / kH) + "h ";
    }
    std::lock_guard l(note_mu);
    return out + "\n" + notes;
  };
  o.on_bar = [&](const MarketBarClosed& b) {
    std::lock_guard l(bars.mu);
    bars.opens.push_back(b.open_time / kNsPerMillisecond);
    bars.closes.push_back(b.close);
  };
  std::mutex book_mu;
  o.on_book = [&](const BookTicker& t) {
    std::lock_guard l(book_mu);
    books.push_back(t);
  };
  KlineFeed feed(o);
  feed.start();
  ASSERT_TRUE(test::eventually([&] { return fake.ws_targets().size() == 1; }));
  EXPECT_EQ(fake.ws_targets()[0], "/stream?streams=btcusdt@kline_1h/btcusdt@bookTicker");

  fake.ws_send(kline_event("BTCUSDT", t0, 100, false));  // still open: not a bar
  fake.ws_send(kline_event("BTCUSDT", t0, 101, true));
  fake.ws_send(kline_event("BTCUSDT", t0, 101, true));   // a repeat
  fake.ws_send("{\"stream\":\"btcusdt@bookTicker\",\"data\":{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"100.1\",\"B\":\"1\",\"a\":\"100.2\",\"A\":\"1\"}}");
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard l(book_mu);
    return !books.empty();
  }));
  ASSERT_EQ(bars.size(), 1u);
  EXPECT_DOUBLE_EQ(bars.closes[0], 101);

  // The connection drops; two bars close meanwhile; the reconnect reads them from REST.
  fake.kline_add("BTCUSDT", t0 + kH, kH, 102);
  fake.kline_add("BTCUSDT", t0 + 2 * kH, kH, 103);
  fake.ws_drop();
  ASSERT_TRUE(test::eventually([&] { return fake.ws_targets().size() == 2 && bars.size() == 3; })) << bars.size() << " bars; notes:\n" << shown();
  // The venue's REST has every closed bar, the streamed ones too: the reconnect's back-fill may still be reading
  // pages when this bar closes, and then takes it from REST (a fake whose REST lacked it would make it look lost).
  fake.kline_add("BTCUSDT", t0 + 3 * kH, kH, 104);
  fake.ws_send(kline_event("BTCUSDT", t0 + 3 * kH, 104, true));
  // A hole inside the stream (t0+4h never streamed): filled from REST before t0+5h.
  fake.kline_add("BTCUSDT", t0 + 4 * kH, kH, 105);
  fake.ws_send(kline_event("BTCUSDT", t0 + 5 * kH, 106, true));
  ASSERT_TRUE(test::eventually([&] { return bars.size() == 6; })) << bars.size() << " bars; notes:\n" << shown();
  feed.stop();
  std::lock_guard l(bars.mu);
  for (std::size_t i = 0; i < bars.opens.size(); ++i) {
    EXPECT_EQ(bars.opens[i], t0 + static_cast<std::int64_t>(i) * kH) << i;
    EXPECT_DOUBLE_EQ(bars.closes[i], 101.0 + static_cast<double>(i)) << i;
  }
  EXPECT_EQ(feed.connects(), 2u);
  // 1h, 2h and 4h from REST; 3h too when the reconnect's back-fill read it before the stream delivered it.
  EXPECT_GE(feed.backfilled(), 3u);
  EXPECT_LE(feed.backfilled(), 4u);
}

}  // namespace binance_feed_test
}  // namespace qtos::binance
