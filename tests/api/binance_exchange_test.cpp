// The Binance connector against a fake venue on loopback (TLS with a generated certificate): start-up and
// reconciliation, local denials, and one test per fault (timeout, reset, 5xx, -1006/-1007, transient "no such order",
// 429, 418, clock skew, duplicate and out-of-order fills), each ending with the ledger and the venue's position
// compared: nothing lost, nothing doubled, nothing resent.
#include <gtest/gtest.h>

#include <algorithm>

#include <chrono>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/binance/binance_exchange.hpp"
#include "runtime/analytics/ledger.hpp"
#include "tests/api/binance_fake_server.hpp"

namespace qtos::binance {
namespace binance_exchange_test {

using test::FakeBinance;
using test::FakeFault;

constexpr const char* kKey = "test-api-key";
constexpr const char* kSecret = "test-secret-key";
constexpr const char* kOrder = "POST /fapi/v1/order";
constexpr const char* kLookup = "GET /fapi/v1/order";

/// What the executor keeps, reduced to the ledger: orders with their states, fills as the listener delivers them.
struct Book final : ExchangeListener {
  Ledger ledger{":memory:"};
  int fill_calls = 0;
  double net = 0;  // signed base quantity filled
  std::uint64_t next_id = 0;

  void on_fill(const Fill& f) override {
    ++fill_calls;
    net += f.side == Side::buy ? f.qty : -f.qty;
    ledger.fill_add(FillRecord{f, "s1"});
  }
  void on_order_update(const OrderState& s) override { status_set(s.request.order_id, s.status, s.reason); }
  void status_set(std::uint64_t id, OrderStatus st, const std::string& detail) {
    auto rec = ledger.order_get(id);
    ASSERT_TRUE(rec.has_value()) << "an update for an order the ledger does not hold: " << id;
    rec->status = st;
    rec->detail = detail;
    ledger.order_put(*rec);
  }
  /// Submits like the executor: the order goes into the ledger with the outcome's state.
  SubmitResult send(BinanceExchange& ex, Side side, double qty, OrderType type = OrderType::market, double price = 0,
                    bool reduce_only = false) {
    OrderRecord rec;
    rec.request.order_id = ++next_id;
    rec.request.client_order_id = order_client_id(rec.request.order_id);
    rec.request.strategy = "s1";
    rec.request.symbol = "BTCUSDT";
    rec.request.side = side;
    rec.request.type = type;
    rec.request.qty = qty;
    rec.request.price = type == OrderType::limit ? price : 0;
    rec.request.stop_price = type == OrderType::stop_market ? price : 0;
    rec.request.reduce_only = reduce_only;
    const SubmitResult r = ex.submit(rec.request);
    rec.status = r.outcome == SubmitOutcome::accepted ? OrderStatus::accepted
                 : r.outcome == SubmitOutcome::unknown ? OrderStatus::pending_new
                                                       : OrderStatus::rejected;
    rec.venue_code = r.code;
    rec.detail = r.message;
    ledger.order_put(rec);
    return r;
  }
  /// The executor's reconciliation of an order with an unknown outcome.
  void settle(BinanceExchange& ex, std::uint64_t id) {
    const auto s = ex.query(id);
    if (!s) {
      status_set(id, OrderStatus::expired, "the venue does not know the order (never placed)");
      return;
    }
    status_set(id, s->status, s->reason);
  }
  /// Orders the ledger holds as live at the venue (anything but rejected, expired-unplaced or denied).
  std::size_t placed() const {
    std::size_t n = 0;
    for (const OrderRecord& o : ledger.orders())
      n += o.status != OrderStatus::rejected && o.status != OrderStatus::expired && o.status != OrderStatus::pending_new;
    return n;
  }
  double ledger_net() const {
    double q = 0;
    for (const FillRecord& f : ledger.fills()) q += f.fill.side == Side::buy ? f.fill.qty : -f.fill.qty;
    return q;
  }
};

class BinanceExchangeTest : public ::testing::Test {
 protected:
  BinanceOptions options(bool futures = true) const {
    BinanceOptions o;
    o.market = futures ? MarketKind::linear_perpetual : MarketKind::spot;
    o.env = Env::testnet;
    o.rest = HttpEndpoint{"localhost", fake_->port(), true, fake_->ca_file()};
    o.api_key = kKey;
    o.symbols = {"BTCUSDT"};
    o.timeout = std::chrono::milliseconds(400);
    o.lookup_attempts = 3;
    o.lookup_pause = std::chrono::milliseconds(5);
    o.leverage = 3;
    o.health_alert = [this](const std::string& s) { alerts_.push_back(s); };
    o.account_max_age = account_max_age_;
    return o;
  }
  std::unique_ptr<BinanceExchange> connect(bool futures = true, bool start = true) {
    if (!fake_) fake_ = std::make_unique<FakeBinance>(futures, kKey, kSecret);
    fake_->price_set("BTCUSDT", 100.0);
    auto ex = std::make_unique<BinanceExchange>(options(futures), Signer::hmac(kSecret));
    ex->listener_set(&book_);
    if (start) {
      const auto s = ex->start();
      EXPECT_TRUE(s.ok()) << s.error().message;
    }
    return ex;
  }
  /// The end state every fault test checks: the ledger's fills equal the venue's position, each fill applied once,
  /// and the venue holds exactly the orders the ledger says were placed.
  void expect_consistent(BinanceExchange& ex) {
    ex.poll();
    EXPECT_DOUBLE_EQ(book_.ledger_net(), fake_->position("BTCUSDT"));
    EXPECT_DOUBLE_EQ(book_.net, fake_->position("BTCUSDT"));
    EXPECT_EQ(static_cast<std::size_t>(book_.fill_calls), fake_->trades().size());
    EXPECT_EQ(book_.placed(), fake_->orders().size());
  }

  std::unique_ptr<FakeBinance> fake_;
  std::chrono::milliseconds account_max_age_{1000};
  Book book_;
  mutable std::vector<std::string> alerts_;
};

TEST_F(BinanceExchangeTest, StartsReconciledAndTradesOverOneReusedTlsConnection) {
  auto ex = connect();
  EXPECT_FALSE(ex->halted());
  EXPECT_EQ(ex->name(), "binance-futures-testnet");
  const SubmitResult r = book_.send(*ex, Side::buy, 0.0505);  // truncated to the step: 0.050
  ASSERT_EQ(r.outcome, SubmitOutcome::accepted) << r.message;
  ASSERT_EQ(fake_->orders().size(), 1u);
  EXPECT_DOUBLE_EQ(fake_->orders()[0].qty, 0.050);
  EXPECT_EQ(fake_->orders()[0].client_id, "qt-1");
  expect_consistent(*ex);
  EXPECT_DOUBLE_EQ(fake_->position("BTCUSDT"), 0.050);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::filled);
  // Leverage and margin type once per symbol, before its first order; a reduce-only exit carries reduceOnly.
  ASSERT_EQ(book_.send(*ex, Side::sell, 0.050, OrderType::market, 0, true).outcome, SubmitOutcome::accepted);
  EXPECT_TRUE(fake_->orders()[1].reduce_only);
  EXPECT_EQ(fake_->count("POST /fapi/v1/leverage"), 1);
  EXPECT_EQ(fake_->count("POST /fapi/v1/marginType"), 1);
  expect_consistent(*ex);
  EXPECT_DOUBLE_EQ(fake_->position("BTCUSDT"), 0.0);
  EXPECT_EQ(ex->http().connects(), 1u) << "every request should reuse the first connection";
  EXPECT_GT(ex->rate().used.at("used-weight-1m"), 0);
}

TEST_F(BinanceExchangeTest, FilterViolationsAreDeniedLocallyBeforeAnyNetworkCall) {
  auto ex = connect();
  const std::size_t before = fake_->requests().size();
  SubmitResult r = book_.send(*ex, Side::buy, 0.0004);  // below LOT_SIZE minQty 0.001 and truncates to 0
  EXPECT_EQ(r.outcome, SubmitOutcome::rejected);
  EXPECT_EQ(r.code, -1013);
  EXPECT_NE(r.message.find("LOT_SIZE"), std::string::npos) << r.message;
  r = book_.send(*ex, Side::buy, 0.02);  // 0.02 x 100 = 2 < MIN_NOTIONAL 5
  EXPECT_EQ(r.outcome, SubmitOutcome::rejected);
  EXPECT_NE(r.message.find("MIN_NOTIONAL"), std::string::npos) << r.message;
  EXPECT_EQ(fake_->requests().size(), before) << "a local denial sends nothing";
  // A limit price is rounded to the tick (0.10) and sent as decimal text.
  r = book_.send(*ex, Side::buy, 0.1, OrderType::limit, 99.96);
  ASSERT_EQ(r.outcome, SubmitOutcome::accepted) << r.message;
  EXPECT_DOUBLE_EQ(fake_->orders().back().price, 100.0);
}

TEST_F(BinanceExchangeTest, TradingIsHaltedUntilReconciliationSucceeds) {
  auto ex = connect(true, false);
  EXPECT_TRUE(ex->halted());
  const SubmitResult r = book_.send(*ex, Side::buy, 0.1);
  EXPECT_EQ(r.outcome, SubmitOutcome::rejected);
  EXPECT_NE(r.message.find("halted"), std::string::npos);
  EXPECT_TRUE(fake_->requests().empty());
  // A failed reconciliation keeps it halted.
  fake_->fault("GET /fapi/v1/openOrders", FakeFault{FakeFault::Kind::http_status, false, 0, 503});
  ASSERT_TRUE(ex->time_sync().ok());
  EXPECT_FALSE(ex->reconcile({}).ok());
  EXPECT_TRUE(ex->halted());
  ASSERT_TRUE(ex->reconcile({}).ok());
  EXPECT_FALSE(ex->halted());
}

TEST_F(BinanceExchangeTest, TimeoutLeavesTheOrderPendingAndTheLookupFindsItWithoutResending) {
  auto ex = connect();
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::delay, true, 700});
  const SubmitResult r = book_.send(*ex, Side::buy, 0.1);
  ASSERT_EQ(r.outcome, SubmitOutcome::unknown) << r.message;
  EXPECT_NE(r.message.find("timeout"), std::string::npos) << r.message;
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::pending_new);
  book_.settle(*ex, 1);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::filled);
  EXPECT_EQ(fake_->count(kOrder), 1) << "never resent";
  expect_consistent(*ex);
  EXPECT_DOUBLE_EQ(book_.net, 0.1);
}

TEST_F(BinanceExchangeTest, ConnectionResetAfterTheVenueTookTheOrderIsReconciled) {
  auto ex = connect();
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::reset, true});
  ASSERT_EQ(book_.send(*ex, Side::sell, 0.2).outcome, SubmitOutcome::unknown);
  book_.settle(*ex, 1);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::filled);
  EXPECT_EQ(fake_->count(kOrder), 1);
  expect_consistent(*ex);
  EXPECT_DOUBLE_EQ(fake_->position("BTCUSDT"), -0.2);
}

TEST_F(BinanceExchangeTest, Http5xxWithoutTheOrderIsDeclaredNotPlacedAfterRepeatedLookups) {
  auto ex = connect();
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::http_status, false, 0, 502});
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::unknown);
  book_.settle(*ex, 1);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::expired);
  EXPECT_EQ(fake_->count(kLookup), 3) << "'no such order' is asked lookup_attempts times";
  ASSERT_FALSE(ex->audit().empty());
  EXPECT_NE(ex->audit().back().find("declared not placed"), std::string::npos);
  EXPECT_EQ(fake_->count(kOrder), 1);
  expect_consistent(*ex);
  EXPECT_DOUBLE_EQ(fake_->position("BTCUSDT"), 0.0);
}

TEST_F(BinanceExchangeTest, VenueTimeoutCode1007IsUnknownNotARejection) {
  auto ex = connect();
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::http_status, true, 0, 408, -1007,
                                 "Timeout waiting for response from backend server. Send status unknown; execution status unknown."});
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::unknown);
  book_.settle(*ex, 1);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::filled);
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, VenueUnknownErrorCode1006WithoutTheOrderEndsNotPlaced) {
  auto ex = connect();
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::http_status, false, 0, 400, -1006, "An unexpected response was received from the message bus."});
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::unknown);
  book_.settle(*ex, 1);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::expired);
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, TransientNoSuchOrderIsAskedAgainUntilTheOrderShowsUp) {
  auto ex = connect();
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::reset, true});
  fake_->fault(kLookup, FakeFault{FakeFault::Kind::not_found});
  fake_->fault(kLookup, FakeFault{FakeFault::Kind::not_found});
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::unknown);
  book_.settle(*ex, 1);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::filled);
  EXPECT_EQ(fake_->count(kLookup), 3);
  expect_consistent(*ex);
  EXPECT_DOUBLE_EQ(book_.net, 0.1);
}

TEST_F(BinanceExchangeTest, Http429HonoursRetryAfterButCancelsStillGoOut) {
  auto ex = connect();
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1, OrderType::limit, 90.0).outcome, SubmitOutcome::accepted);
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::http_status, false, 0, 429, -1003, "Too many requests.", 30});
  SubmitResult r = book_.send(*ex, Side::buy, 0.1);
  EXPECT_EQ(r.outcome, SubmitOutcome::rejected);
  EXPECT_EQ(fake_->count(kOrder), 2);
  r = book_.send(*ex, Side::buy, 0.1);
  EXPECT_EQ(r.outcome, SubmitOutcome::rejected);
  EXPECT_NE(r.message.find("Retry-After"), std::string::npos) << r.message;
  EXPECT_EQ(fake_->count(kOrder), 2) << "nothing is sent before Retry-After";
  EXPECT_EQ(ex->cancel(1).outcome, SubmitOutcome::accepted);
  EXPECT_EQ(fake_->orders()[0].status, "CANCELED");
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, Http418PullsTheBrakeRaisesAnAlertAndStillCancels) {
  auto ex = connect();
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1, OrderType::limit, 90.0).outcome, SubmitOutcome::accepted);
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::http_status, false, 0, 418, -1003, "Way too many requests; IP banned.", 120});
  EXPECT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::rejected);
  EXPECT_TRUE(ex->halted());
  EXPECT_NE(ex->halt_reason().find("418"), std::string::npos);
  ASSERT_EQ(alerts_.size(), 1u);
  EXPECT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::rejected);
  EXPECT_EQ(fake_->count(kOrder), 2);
  EXPECT_EQ(ex->cancel(1).outcome, SubmitOutcome::accepted);
  EXPECT_FALSE(ex->reconcile({}).ok()) << "the ban (Retry-After 120 s) is not over";
  EXPECT_TRUE(ex->halted());
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, AShortBanEndsWithAReconciliation) {
  auto ex = connect();
  fake_->fault(kOrder, FakeFault{FakeFault::Kind::http_status, false, 0, 418, -1003, "Way too many requests; IP banned.", 0});
  EXPECT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::rejected);
  EXPECT_TRUE(ex->halted());
  ASSERT_TRUE(ex->reconcile({}).ok());
  EXPECT_FALSE(ex->halted());
  EXPECT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::accepted);
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, ClockSkewResynchronisesOnMinus1021AndSendsOnce) {
  auto ex = connect();
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::accepted);
  fake_->skew_set(20'000);  // the venue's clock jumps 20 s ahead: our timestamps fall outside recvWindow
  const SubmitResult r = book_.send(*ex, Side::buy, 0.1);
  ASSERT_EQ(r.outcome, SubmitOutcome::accepted) << r.message;
  EXPECT_NEAR(static_cast<double>(ex->clock_offset_ms()), 20'000.0, 1'000.0);
  EXPECT_EQ(fake_->count(kOrder), 3) << "the second: one refused by the venue before processing, one carried out";
  EXPECT_EQ(fake_->orders().size(), 2u);
  bool noted = false;
  for (const std::string& a : ex->audit()) noted = noted || a.find("-1021") != std::string::npos;
  EXPECT_TRUE(noted);
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, DuplicateAndOutOfOrderFillsAreAppliedOnce) {
  auto ex = connect();
  fake_->price_set("BTCUSDT", 100.0, 3);
  fake_->duplicate_trades_set(true);
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.3).outcome, SubmitOutcome::accepted);
  ex->poll();
  ex->poll();
  EXPECT_EQ(book_.fill_calls, 3);
  const auto s = ex->query(1);
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->filled_qty, 0.3);
  EXPECT_EQ(s->status, OrderStatus::filled);
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, ReconcileImportsOrdersTheLedgerDoesNotKnowAndReportsVanishedOnes) {
  auto first = connect();
  ASSERT_EQ(book_.send(*first, Side::buy, 0.1, OrderType::limit, 90.0).outcome, SubmitOutcome::accepted);
  first.reset();
  // A new process: the ledger of the old run knows order 1 (open) and order 7 (which the venue never saw).
  auto ex = connect(true, false);
  ASSERT_TRUE(ex->time_sync().ok());
  OrderRequest ghost;
  ghost.order_id = 7;
  ghost.symbol = "BTCUSDT";
  auto rep = ex->reconcile({ghost});
  ASSERT_TRUE(rep.ok()) << rep.error().message;
  ASSERT_EQ(rep.value().imported.size(), 1u);
  EXPECT_EQ(rep.value().imported[0].request.order_id, 1u);
  ASSERT_EQ(rep.value().unknown.size(), 1u);
  EXPECT_EQ(rep.value().unknown[0], 7u);
  EXPECT_FALSE(ex->halted());
  // The adopted order can be cancelled by its internal id.
  EXPECT_EQ(ex->cancel(1).outcome, SubmitOutcome::accepted);
}

TEST_F(BinanceExchangeTest, DeadManSwitchIsArmedPerSymbolByPoll) {
  fake_ = std::make_unique<FakeBinance>(true, kKey, kSecret);
  BinanceOptions o = options();
  o.dead_man_seconds = 60;
  BinanceExchange ex(o, Signer::hmac(kSecret));
  ASSERT_TRUE(ex.start().ok());
  ex.poll();
  ex.poll();  // re-armed only after a third of the countdown
  EXPECT_EQ(fake_->count("POST /fapi/v1/countdownCancelAll"), 1);
}

TEST_F(BinanceExchangeTest, AFailedAccountReadIsNeverAnEmptyAccountAndReconcileNeedsAFreshOne) {
  account_max_age_ = std::chrono::milliseconds(0);  // every read asks the venue (and meets the faults below)
  auto ex = connect();
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.05).outcome, SubmitOutcome::accepted);
  const double equity = ex->equity(), free = ex->quote_free();
  const auto positions = ex->positions();
  ASSERT_GT(equity, 0);
  ASSERT_EQ(positions.size(), 1u);
  // A 5xx on the account and on the positions: the last good reads stand (a zero equity would be a 100% drawdown to
  // the Risk OS; an empty position list would hide an open position), and the connector says so once.
  for (int i = 0; i < 2; ++i) fake_->fault("GET /fapi/v3/account", FakeFault{FakeFault::Kind::http_status, false, 0, 503});
  fake_->fault("GET /fapi/v3/positionRisk", FakeFault{FakeFault::Kind::http_status, false, 0, 503});
  EXPECT_DOUBLE_EQ(ex->equity(), equity);
  EXPECT_DOUBLE_EQ(ex->quote_free(), free);
  const auto stale = ex->positions();
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_DOUBLE_EQ(stale[0].qty, positions[0].qty);
  const auto& audit = ex->audit();
  EXPECT_EQ(std::count_if(audit.begin(), audit.end(), [](const std::string& a) { return a.find("reading the account") != std::string::npos; }),
            1);
  // A reconciliation that cannot read the account fails and leaves trading halted; the next one succeeds.
  fake_->fault("GET /fapi/v3/account", FakeFault{FakeFault::Kind::http_status, false, 0, 503});
  const auto failed = ex->reconcile({});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("account"), std::string::npos) << failed.error().message;
  EXPECT_TRUE(ex->halted());
  const auto again = ex->reconcile({});
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_FALSE(ex->halted());
  ASSERT_EQ(again.value().positions.size(), 1u);
}

TEST_F(BinanceExchangeTest, OneCyclesAccountReadsAskTheVenueOnceUntilSomethingChanges) {
  constexpr const char* kAccount = "GET /fapi/v3/account";
  constexpr const char* kPositions = "GET /fapi/v3/positionRisk";
  account_max_age_ = std::chrono::milliseconds(1000);
  auto ex = connect();
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.05).outcome, SubmitOutcome::accepted);
  // What one bar's cycle asks (Risk OS, Portfolio Balancer, sizing): one account read, one positions read.
  int account = fake_->count(kAccount), positions = fake_->count(kPositions);
  const double equity = ex->equity();
  EXPECT_DOUBLE_EQ(ex->equity(), equity);
  EXPECT_GT(ex->quote_free(), 0);
  EXPECT_FALSE(ex->balances().empty());
  ASSERT_EQ(ex->positions().size(), 1u);
  ASSERT_EQ(ex->positions().size(), 1u);
  EXPECT_EQ(fake_->count(kAccount), account + 1);
  EXPECT_EQ(fake_->count(kPositions), positions + 1);
  // An order sent makes the next read ask the venue: the position it opened is seen at once.
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.05).outcome, SubmitOutcome::accepted);
  ASSERT_EQ(ex->positions().size(), 1u);
  EXPECT_DOUBLE_EQ(ex->positions()[0].qty, 0.1);
  EXPECT_NE(ex->equity(), 0);
  EXPECT_EQ(fake_->count(kAccount), account + 2);
  EXPECT_EQ(fake_->count(kPositions), positions + 2);
  // So does any user-stream event (an ACCOUNT_UPDATE is not an order's, and still news for the account).
  EXPECT_FALSE(ex->user_event(R"({"e":"ACCOUNT_UPDATE","E":1,"a":{"m":"ORDER","B":[],"P":[]}})"));
  ex->equity();
  EXPECT_EQ(fake_->count(kAccount), account + 3);
  // And age: a read older than account_max_age asks again.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ex->equity();
  ex->equity();
  EXPECT_EQ(fake_->count(kAccount), account + 4);
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, SpotOrdersPositionsAndBalances) {
  auto ex = connect(false);
  EXPECT_EQ(ex->name(), "binance-spot-testnet");
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.1).outcome, SubmitOutcome::accepted);
  EXPECT_EQ(fake_->count("POST /api/v3/order"), 1);
  ex->poll();
  const auto pos = ex->positions();
  ASSERT_EQ(pos.size(), 1u);
  EXPECT_DOUBLE_EQ(pos[0].qty, 0.1);
  EXPECT_GT(ex->quote_free(), 0);
  EXPECT_EQ(fake_->count("POST /fapi/v1/leverage"), 0);
  expect_consistent(*ex);
}

TEST_F(BinanceExchangeTest, UnsafeOptionsAreRefusedAtStartUp) {
  fake_ = std::make_unique<FakeBinance>(true, kKey, kSecret);
  BinanceOptions o = options();
  o.rest = HttpEndpoint{"fapi.binance.com", 443, true, ""};  // mainnet host, testnet key
  EXPECT_THROW(BinanceExchange(o, Signer::hmac(kSecret)), std::invalid_argument);
  o.env = Env::mainnet;
  o.rest.tls = false;
  EXPECT_THROW(BinanceExchange(o, Signer::hmac(kSecret)), std::invalid_argument);
  o = options();
  o.recv_window_ms = 60'001;
  EXPECT_THROW(BinanceExchange(o, Signer::hmac(kSecret)), std::invalid_argument);
  o = options();
  o.client_prefix = "bad prefix";
  EXPECT_THROW(BinanceExchange(o, Signer::hmac(kSecret)), std::invalid_argument);
  o = options();
  o.account_max_age = std::chrono::milliseconds(-1);
  EXPECT_THROW(BinanceExchange(o, Signer::hmac(kSecret)), std::invalid_argument);
}

TEST_F(BinanceExchangeTest, AnUntrustedCertificateIsRefused) {
  fake_ = std::make_unique<FakeBinance>(true, kKey, kSecret);
  BinanceOptions o = options();
  o.rest.ca_file.clear();  // the system store does not trust the fake's certificate
  BinanceExchange ex(o, Signer::hmac(kSecret));
  const auto s = ex.start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not sent"), std::string::npos) << s.error().message;
  EXPECT_TRUE(fake_->requests().empty());
}

}  // namespace binance_exchange_test
}  // namespace qtos::binance

namespace qtos::binance {
namespace binance_exchange_test {

std::string trade_update(const std::string& cid, std::int64_t trade_id, double last, double cum, const std::string& status,
                         const std::string& exec = "TRADE") {
  return "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"T\":1,\"o\":{\"s\":\"BTCUSDT\",\"c\":\"" + cid +
         "\",\"S\":\"BUY\",\"o\":\"LIMIT\",\"q\":\"0.300\",\"p\":\"90\",\"x\":\"" + exec + "\",\"X\":\"" + status +
         "\",\"i\":4242,\"l\":\"" + std::to_string(last) + "\",\"z\":\"" + std::to_string(cum) + "\",\"L\":\"90\",\"n\":\"0.01\",\"N\":\"USDT\",\"T\":5,\"t\":" +
         std::to_string(trade_id) + ",\"m\":true}}";
}

TEST_F(BinanceExchangeTest, UserStreamFillsAreAppliedOnceAndCumulativeQuantityNeverDecreases) {
  auto ex = connect();
  ASSERT_EQ(book_.send(*ex, Side::buy, 0.3, OrderType::limit, 90.0).outcome, SubmitOutcome::accepted);
  // Out of order (the second trade first), duplicated, then a stale NEW report after the fills.
  EXPECT_TRUE(ex->user_event(trade_update("qt-1", 902, 0.1, 0.2, "PARTIALLY_FILLED")));
  EXPECT_TRUE(ex->user_event(trade_update("qt-1", 901, 0.1, 0.1, "PARTIALLY_FILLED")));
  EXPECT_TRUE(ex->user_event(trade_update("qt-1", 902, 0.1, 0.2, "PARTIALLY_FILLED")));
  EXPECT_TRUE(ex->user_event(trade_update("qt-1", 0, 0, 0, "NEW", "NEW")));
  EXPECT_EQ(book_.fill_calls, 2);
  EXPECT_DOUBLE_EQ(book_.net, 0.2);
  auto s = ex->open_orders();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].status, OrderStatus::partially_filled) << "a stale NEW does not undo a partial fill";
  EXPECT_DOUBLE_EQ(s[0].filled_qty, 0.2);
  // The WebSocket API wraps spot events; the last fill, then its duplicate, then a late copy of an early one.
  EXPECT_TRUE(ex->user_event("{\"subscriptionId\":0,\"event\":" + trade_update("qt-1", 903, 0.1, 0.3, "FILLED") + "}"));
  EXPECT_TRUE(ex->user_event(trade_update("qt-1", 903, 0.1, 0.3, "FILLED")));
  EXPECT_TRUE(ex->user_event(trade_update("qt-1", 901, 0.1, 0.1, "PARTIALLY_FILLED")));
  EXPECT_EQ(book_.fill_calls, 3);
  EXPECT_DOUBLE_EQ(book_.net, 0.3);
  EXPECT_EQ(book_.ledger.order_get(1)->status, OrderStatus::filled);
  EXPECT_TRUE(ex->open_orders().empty());
  // Someone else's order, and an unknown event type, are not ours.
  EXPECT_FALSE(ex->user_event(trade_update("web_abc", 1, 0.1, 0.1, "FILLED")));
  EXPECT_FALSE(ex->user_event("{\"e\":\"ACCOUNT_UPDATE\"}"));
}

}  // namespace binance_exchange_test
}  // namespace qtos::binance
