// The user data stream against the fake venue: USD-M through a listenKey, spot through a signed WebSocket API
// subscription; events reach the connector once per trade, and a dropped stream reconnects (a new listenKey) and asks
// the owner to reconcile.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/binance/binance_exchange.hpp"
#include "api/binance/user_stream.hpp"
#include "tests/api/binance_fake_server.hpp"
#include "tests/support/eventually.hpp"

namespace qtos::binance {
namespace binance_user_stream_test {

struct Events {
  std::mutex mu;
  std::vector<std::string> texts;
  int reconnects = 0;
  std::size_t size() {
    std::lock_guard l(mu);
    return texts.size();
  }
};

struct Fills final : ExchangeListener {
  int fills = 0;
  double qty = 0;
  void on_fill(const Fill& f) override { ++fills, qty += f.qty; }
  void on_order_update(const OrderState&) override {}
};

std::string fill_event(std::int64_t trade_id) {
  std::string s =
      "{\"e\":\"ORDER_TRADE_UPDATE\",\"o\":{\"s\":\"BTCUSDT\",\"c\":\"qt-1\",\"S\":\"BUY\",\"x\":\"TRADE\",\"X\":\"PARTIALLY_FILLED\","
      "\"i\":7,\"l\":\"0.1\",\"z\":\"0.1\",\"L\":\"90\",\"n\":\"0\",\"N\":\"USDT\",\"T\":1,\"t\":";
  s += std::to_string(trade_id);
  s += ",\"m\":true}}";
  return s;
}

TEST(BinanceUserStream, FuturesListenKeyEventsReachTheConnectorOnceAndADropReconnects) {
  test::FakeBinance fake(true, "k", "s");
  fake.price_set("BTCUSDT", 100);
  BinanceOptions bo;
  bo.rest = HttpEndpoint{"localhost", fake.port(), true, fake.ca_file()};
  bo.api_key = "k";
  bo.symbols = {"BTCUSDT"};
  BinanceExchange ex(bo, Signer::hmac("s"));
  Fills fills;
  ex.listener_set(&fills);
  ASSERT_TRUE(ex.start().ok());
  OrderRequest r;
  r.order_id = 1;
  r.symbol = "BTCUSDT";
  r.type = OrderType::limit;
  r.price = 90;
  r.qty = 0.3;
  ASSERT_EQ(ex.submit(r).outcome, SubmitOutcome::accepted);

  Events ev;
  UserStreamOptions o;
  o.market = MarketKind::linear_perpetual;
  o.ws = bo.rest;
  o.rest = bo.rest;
  o.api_key = "k";
  o.reconnect.backoff_min = std::chrono::milliseconds(10);
  o.reconnect.backoff_max = std::chrono::milliseconds(40);
  o.on_event = [&](const std::string& t) {
    std::lock_guard l(ev.mu);
    ev.texts.push_back(t);
  };
  o.on_reconnected = [&] {
    std::lock_guard l(ev.mu);
    ++ev.reconnects;
  };
  UserStream us(o);
  us.start();
  // The fake records a target once its side of the handshake is done, which may come just after the client's.
  ASSERT_TRUE(test::eventually([&] { return us.connects() == 1 && fake.ws_targets().size() == 1; }));
  EXPECT_EQ(fake.count("POST /fapi/v1/listenKey"), 1);
  EXPECT_EQ(fake.ws_targets().back(), "/ws/lk1");
  fake.ws_send(fill_event(11));
  fake.ws_send(fill_event(11));  // the venue repeats itself
  ASSERT_TRUE(test::eventually([&] { return ev.size() == 2; }));
  fake.ws_drop();
  ASSERT_TRUE(test::eventually([&] { return us.connects() == 2 && fake.ws_targets().size() == 2; }));
  EXPECT_EQ(fake.ws_targets().back(), "/ws/lk2") << "a new listenKey for the new connection";
  fake.ws_send(fill_event(11));  // replayed after the reconnect
  ASSERT_TRUE(test::eventually([&] { return ev.size() == 3; }));
  us.stop();
  {
    std::lock_guard l(ev.mu);
    EXPECT_EQ(ev.reconnects, 1);
    for (const std::string& t : ev.texts) ex.user_event(t);  // the owner thread applies them
  }
  EXPECT_EQ(fills.fills, 1);
  EXPECT_DOUBLE_EQ(fills.qty, 0.1);
}

TEST(BinanceUserStream, SpotSubscribesWithASignatureTheVenueAccepts) {
  test::FakeBinance fake(false, "k", "s");
  const Signer signer = Signer::hmac("s");
  Events ev;
  UserStreamOptions o;
  o.market = MarketKind::spot;
  o.ws = HttpEndpoint{"localhost", fake.port(), true, fake.ca_file()};
  o.api_key = std::string(1, 'k');  // not `= "k"`: GCC 12 warns falsely (-Wrestrict) on that assignment here
  o.signer = &signer;
  o.reconnect.backoff_min = std::chrono::milliseconds(10);
  o.reconnect.backoff_max = std::chrono::milliseconds(40);
  o.on_event = [&](const std::string& t) {
    std::lock_guard l(ev.mu);
    ev.texts.push_back(t);
  };
  UserStream us(o);
  us.start();
  ASSERT_TRUE(test::eventually([&] { return us.connects() == 1 && fake.ws_targets().size() == 1; }));
  EXPECT_EQ(fake.ws_targets().back(), "/ws-api/v3");
  fake.ws_send("{\"subscriptionId\":0,\"event\":{\"e\":\"executionReport\",\"s\":\"BTCUSDT\",\"c\":\"qt-1\"}}");
  ASSERT_TRUE(test::eventually([&] { return ev.size() == 1; }));
  us.stop();
  // A wrong secret is refused by the venue: the stream never counts as connected.
  test::FakeBinance strict(false, "k", "other");
  UserStreamOptions bad = o;
  bad.ws.port = strict.port();
  bad.ws.ca_file = strict.ca_file();
  UserStream refused(bad);
  refused.start();
  ASSERT_TRUE(test::eventually([&] { return strict.ws_targets().size() >= 2; }));
  EXPECT_EQ(refused.connects(), 0u);
  refused.stop();
}

}  // namespace binance_user_stream_test
}  // namespace qtos::binance
