// The paper exchange: the backtester's fill rules bit for bit (slippage from the spread proxy, stops before targets,
// gaps through a stop), orders placed from a fill callback on the same bar, venue rejections with their codes,
// filters, partial fills, spot and perpetual accounts (margin, liquidation, funding), the lost-answer fault seam.
#include "runtime/exchange/paper_exchange.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/strategy.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/exchange/exchange.hpp"

namespace qtos {
namespace paper_exchange_test {

constexpr TimeNs kT0 = 1'704'067'200LL * kNsPerSecond;  // 2024-01-01T00:00:00Z
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kSlip = 0.0002;   // the default fixed slippage
constexpr double kTaker = 0.0004;  // the default taker fee
constexpr double kMaker = 0.0002;  // the default maker fee

/// Bar i of a symbol (i-th interval after kT0).
MarketBarClosed bar_at(const char* symbol, std::int64_t i, double o, double h, double l, double c, double volume = 1000,
                       std::int32_t interval_s = 60) {
  MarketBarClosed b;
  b.symbol = symbol;
  b.interval_s = interval_s;
  b.open_time = kT0 + i * interval_s * kNsPerSecond;
  b.open = o;
  b.high = h;
  b.low = l;
  b.close = c;
  b.volume = volume;
  return b;
}

MarketBarClosed btc(std::int64_t i, double o, double h, double l, double c, double volume = 1000) {
  return bar_at("BTCUSDT", i, o, h, l, c, volume);
}

OrderRequest order(std::uint64_t id, OrderType type, Side side, double qty) {
  OrderRequest r;
  r.order_id = id;
  r.client_order_id = order_client_id(id);
  r.strategy = "test";
  r.symbol = "BTCUSDT";
  r.side = side;
  r.type = type;
  r.qty = qty;
  return r;
}
OrderRequest market(std::uint64_t id, Side side, double qty) { return order(id, OrderType::market, side, qty); }
OrderRequest limit(std::uint64_t id, Side side, double qty, double price) {
  OrderRequest r = order(id, OrderType::limit, side, qty);
  r.price = price;
  return r;
}
OrderRequest stop(std::uint64_t id, Side side, double qty, double stop_price, bool reduce_only = true) {
  OrderRequest r = order(id, OrderType::stop_market, side, qty);
  r.stop_price = stop_price;
  r.reduce_only = reduce_only;
  return r;
}
OrderRequest take(std::uint64_t id, Side side, double qty, double stop_price) {
  OrderRequest r = order(id, OrderType::take_profit_market, side, qty);
  r.stop_price = stop_price;
  r.reduce_only = true;
  return r;
}

/// Records what the venue reports; `fill_hook` runs inside on_fill (an executor reacting to a fill).
struct Recorder final : ExchangeListener {
  std::vector<Fill> fills;
  std::vector<OrderState> updates;
  std::function<void(const Fill&)> fill_hook;
  void on_fill(const Fill& f) override {
    fills.push_back(f);
    if (fill_hook) fill_hook(f);
  }
  void on_order_update(const OrderState& s) override { updates.push_back(s); }
};

double buy_px(double base, double slip = kSlip) { return base * (1 + slip); }
double sell_px(double base, double slip = kSlip) { return base * (1 - slip); }

class PaperExchangeTest : public ::testing::Test {
 protected:
  PaperExchange& make(PaperExchangeConfig c = {}) {
    ex_ = std::make_unique<PaperExchange>(std::move(c), clock_);
    ex_->listener_set(&rec_);
    return *ex_;
  }
  PaperExchangeConfig spot_config() {
    PaperExchangeConfig c;
    c.market = MarketKind::spot;
    return c;
  }
  /// Submits and expects acceptance.
  void accept(const OrderRequest& r) {
    const SubmitResult s = ex_->submit(r);
    ASSERT_EQ(s.outcome, SubmitOutcome::accepted) << s.code << " " << s.message;
  }
  /// Submits and expects a rejection with `code`; returns the message.
  std::string refused(const OrderRequest& r, std::int32_t code) {
    const SubmitResult s = ex_->submit(r);
    EXPECT_EQ(s.outcome, SubmitOutcome::rejected);
    EXPECT_EQ(s.code, code) << s.message;
    return s.message;
  }
  /// A long (buy > 0) or short position of |qty| opened at bar 1's open (100): bar 0 lists the symbol.
  void open_position(double qty) {
    ex_->on_bar(btc(0, 100, 101, 99, 100));
    accept(market(1, qty > 0 ? Side::buy : Side::sell, std::abs(qty)));
    ex_->on_bar(btc(1, 100, 101, 99, 100));
    ASSERT_EQ(rec_.fills.size(), 1u);
  }

  SimClock clock_{kT0};
  Recorder rec_;
  std::unique_ptr<PaperExchange> ex_;
};

// ---- filters and the free functions ------------------------------------------------------------------------------

TEST(PaperExchangeFilters, PriceToTickRoundsToTheNearestTick) {
  EXPECT_EQ(price_to_tick(100.126, 0.01), 100.13);
  EXPECT_EQ(price_to_tick(100.124, 0.01), 100.12);
  EXPECT_EQ(price_to_tick(0.3, 0.1), 0.3);
  EXPECT_EQ(price_to_tick(12.3, 0.5), 12.5);
  EXPECT_EQ(price_to_tick(1234.0, 5), 1235.0);
  const double x = 100.12345678901;
  EXPECT_EQ(price_to_tick(x, 0), x);
}

TEST(PaperExchangeFilters, QtyToStepTruncatesAndKeepsDecimalRatiosWhole) {
  EXPECT_EQ(qty_to_step(0.3, 0.1), 0.3);  // 0.3 / 0.1 is 2.9999999999999996 in binary: still 3 steps
  EXPECT_EQ(std::round(qty_to_step(0.3, 0.1) / 0.1), 3.0);
  EXPECT_EQ(qty_to_step(0.7, 0.1), 0.7);
  EXPECT_EQ(qty_to_step(0.15, 0.1), 0.1);  // truncated, never rounded up
  EXPECT_EQ(qty_to_step(0.0019, 0.001), 0.001);
  EXPECT_EQ(qty_to_step(9.99800039992, 0.001), 9.998);
  EXPECT_EQ(qty_to_step(-0.25, 0.1), -0.2);  // towards zero
  const double q = 1000.0 / 100.02;
  EXPECT_EQ(qty_to_step(q, 0), q);  // step 0: unchanged, bit for bit
}

TEST(PaperExchangeFilters, ViolationsNameTheFilter) {
  SymbolFilters f;
  f.tick_size = 0.01;
  f.step_size = 0.001;
  f.min_qty = 0.001;
  f.max_qty = 100;
  f.min_notional = 5;
  EXPECT_FALSE(filters_violation(f, 0.3, 100.1).has_value());
  EXPECT_FALSE(filters_violation(f, 0.05, 100.0).has_value());  // notional exactly 5
  const auto starts = [](const std::optional<std::string>& v, const std::string& prefix) {
    return v.has_value() && v->rfind(prefix, 0) == 0;
  };
  EXPECT_TRUE(starts(filters_violation(f, 1, 100.005), "PRICE_FILTER"));
  EXPECT_TRUE(starts(filters_violation(f, 0.0015, 10000), "LOT_SIZE"));
  EXPECT_EQ(*filters_violation(f, 0.0015, 10000), "LOT_SIZE: quantity 0.0015 is not a multiple of step 0.001");
  EXPECT_TRUE(starts(filters_violation(f, 0.0005, 100000), "LOT_SIZE"));
  EXPECT_TRUE(starts(filters_violation(f, 101, 100), "LOT_SIZE"));
  EXPECT_EQ(*filters_violation(f, 0.042, 100), "MIN_NOTIONAL: 4.2 < 5");
  EXPECT_FALSE(filters_violation(SymbolFilters{}, 0.0000123, 1e-9).has_value());  // no rules
}

TEST(PaperExchangeFilters, ClientOrderIdIsDerivedFromTheOrderId) {
  EXPECT_EQ(order_client_id(42), "qt-42");
  EXPECT_EQ(order_client_id(42), order_client_id(42));
}

// ---- configuration -----------------------------------------------------------------------------------------------

TEST(PaperExchangeConfigCheck, OutOfRangeFieldsAreNamed) {
  SimClock clock(kT0);
  const auto throws_naming = [&](const std::function<void(PaperExchangeConfig&)>& edit, const std::string& field) {
    PaperExchangeConfig c;
    edit(c);
    try {
      PaperExchange ex(c, clock);
      ADD_FAILURE() << field << ": no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  throws_naming([](auto& c) { c.taker_fee = 0.1; }, "taker_fee");
  throws_naming([](auto& c) { c.maker_fee = -0.001; }, "maker_fee");
  throws_naming([](auto& c) { c.slippage = kNaN; }, "slippage");
  throws_naming([](auto& c) { c.slippage_spread = 11; }, "slippage_spread");
  throws_naming([](auto& c) { c.impact = -1; }, "impact");
  throws_naming([](auto& c) { c.participation = 1.5; }, "participation");
  throws_naming([](auto& c) { c.initial_balance = 0; }, "initial_balance");
  throws_naming([](auto& c) { c.max_leverage = 0.5; }, "max_leverage");
  throws_naming([](auto& c) { c.maintenance_margin = 0.5; }, "maintenance_margin");
  throws_naming([](auto& c) { c.filters.step_size = -0.1; }, "filters.step_size");
  EXPECT_NO_THROW(PaperExchange(PaperExchangeConfig{}, clock));
}

// ---- fill rules --------------------------------------------------------------------------------------------------

TEST_F(PaperExchangeTest, MarketBuyFillsAtTheNextOpenWithSlippageAndTakerFee) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(market(1, Side::buy, 1));
  EXPECT_TRUE(rec_.fills.empty());
  ex.on_bar(btc(1, 102, 103, 101, 102.5));
  ASSERT_EQ(rec_.fills.size(), 1u);
  const Fill& f = rec_.fills[0];
  EXPECT_EQ(f.order_id, 1u);
  EXPECT_EQ(f.fill_id, 1u);
  EXPECT_EQ(f.price, 102.0 * (1 + 0.0002));
  EXPECT_EQ(f.qty, 1.0);
  EXPECT_EQ(f.fee, (1.0 * f.price) * kTaker);
  EXPECT_FALSE(f.maker);
  EXPECT_EQ(f.ts, btc(1, 0, 0, 0, 0).open_time);
  EXPECT_EQ(f.remaining_qty, 0.0);
  const auto q = ex.query(1);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->status, OrderStatus::filled);
  EXPECT_EQ(q->avg_price, f.price);
  EXPECT_EQ(q->fee, f.fee);
  ASSERT_EQ(ex.positions().size(), 1u);
  EXPECT_EQ(ex.positions()[0].qty, 1.0);
  EXPECT_EQ(ex.positions()[0].entry_price, f.price);
  EXPECT_EQ(ex.positions()[0].mark_price, 102.5);
  EXPECT_EQ(ex.last_price("BTCUSDT"), 102.5);
}

TEST_F(PaperExchangeTest, MarketSellFillsBelowTheOpenAndOpensAShort) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(market(1, Side::sell, 2));
  ex.on_bar(btc(1, 98, 99, 97, 98));
  ASSERT_EQ(rec_.fills.size(), 1u);
  EXPECT_EQ(rec_.fills[0].price, sell_px(98));
  EXPECT_EQ(rec_.fills[0].side, Side::sell);
  ASSERT_EQ(ex.positions().size(), 1u);
  EXPECT_EQ(ex.positions()[0].qty, -2.0);
}

TEST_F(PaperExchangeTest, SlippageUsesTheSpreadProxyOfThePreviousBarAndRestartsAfterAGap) {
  PaperExchangeConfig c;
  c.slippage_spread = 0.5;
  c.gaps = kernels::gap_reset_after(0);  // the restart after a gap (the default skip carries the proxy over it)
  PaperExchange& ex = make(c);
  kernels::BacktestCosts costs;
  costs.slippage = c.slippage;
  costs.slippage_spread = c.slippage_spread;
  kernels::SpreadState<double> ref;  // fed the same bars, as cpu/backtest/feature_state.hpp feeds it
  ref.init(kernels::IndicatorParams{kernels::kStrategySpreadPeriod, 26, 9, 2.0});
  double spread = kNaN;
  std::vector<MarketBarClosed> bars;
  for (int i = 0; i < 30; ++i) {
    const double mid = 100 + 3 * std::sin(i * 0.7) + 0.1 * i;
    bars.push_back(btc(i, mid, mid * (1 + 0.004 + 0.002 * (i % 3)), mid * (1 - 0.003 - 0.001 * (i % 4)), mid + 0.2));
  }
  for (int i = 0; i < 25; ++i) {
    ex.on_bar(bars[i]);
    spread = ref.update(bars[i].high, bars[i].low, 0.0);
  }
  ASSERT_TRUE(std::isfinite(spread));
  accept(market(1, Side::buy, 1));
  ex.on_bar(bars[25]);
  ASSERT_EQ(rec_.fills.size(), 1u);
  const double slip = kernels::fill_slippage<double>(costs, spread);
  EXPECT_GT(slip, kSlip);
  EXPECT_EQ(rec_.fills[0].price, bars[25].open * (1 + slip));  // bit for bit the backtester's expression
  ex.on_bar(bars[26]);
  // Bar 27 is missing: the proxy restarts, so a fill on bar 28 pays the fixed part only.
  accept(market(2, Side::sell, 1));
  ex.on_bar(bars[28]);
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, bars[28].open * (1 - kSlip));
  // The proxy is back once enough bars followed the gap (the reference restarts at the gap too).
  ref.reset();
  spread = ref.update(bars[28].high, bars[28].low, 0.0);
  for (int i = 29; i < 29 + 22; ++i) {
    const double mid = 100 + 0.05 * i;
    const MarketBarClosed b = btc(i, mid, mid * 1.003, mid * 0.996, mid);
    if (i == 29 + 21) accept(market(3, Side::buy, 1));
    ex.on_bar(b);
    if (i == 29 + 21) {
      ASSERT_EQ(rec_.fills.size(), 3u);
      ASSERT_TRUE(std::isfinite(spread));
      EXPECT_EQ(rec_.fills[2].price, b.open * (1 + kernels::fill_slippage<double>(costs, spread)));
    }
    spread = ref.update(b.high, b.low, 0.0);
  }
}

TEST_F(PaperExchangeTest, ImpactAddsSizeOverBarVolume) {
  PaperExchangeConfig c;
  c.impact = 0.1;
  PaperExchange& ex = make(c);
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(market(1, Side::buy, 2));
  ex.on_bar(btc(1, 100, 101, 99, 100, 50));
  ASSERT_EQ(rec_.fills.size(), 1u);
  EXPECT_EQ(rec_.fills[0].price, 100.0 * (1 + (0.0002 + 0.1 * 2.0 / 50.0)));
  // No volume: no impact term.
  accept(market(2, Side::sell, 2));
  ex.on_bar(btc(2, 100, 101, 99, 100, 0));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, sell_px(100));
}

TEST_F(PaperExchangeTest, QuoteQtySizesTheOrderAtTheFillPrice) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  OrderRequest r = market(1, Side::buy, 0);
  r.quote_qty = 1000;
  accept(r);
  ex.on_bar(btc(1, 100, 101, 99, 100));
  ASSERT_EQ(rec_.fills.size(), 1u);
  const double px = buy_px(100);
  EXPECT_EQ(rec_.fills[0].price, px);
  EXPECT_EQ(rec_.fills[0].qty, 1000 / px);  // step 0: the plain quotient
  EXPECT_EQ(rec_.fills[0].fee, (rec_.fills[0].qty * px) * kTaker);

  PaperExchangeConfig c;
  c.filters.step_size = 0.001;
  PaperExchange& stepped = make(c);
  rec_.fills.clear();
  stepped.on_bar(btc(0, 100, 101, 99, 100));
  accept(r);
  stepped.on_bar(btc(1, 100, 101, 99, 100));
  ASSERT_EQ(rec_.fills.size(), 1u);
  EXPECT_EQ(rec_.fills[0].qty, 9.998);  // 1000 / 100.02 = 9.99800..., truncated to the step
}

TEST_F(PaperExchangeTest, LimitOrdersFillAtTheLimitOrTheOpenWithTheMakerFee) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(limit(1, Side::buy, 1, 99));
  ex.on_bar(btc(1, 100, 101, 99.5, 100));  // not reached
  EXPECT_TRUE(rec_.fills.empty());
  ex.on_bar(btc(2, 100, 101, 98, 100));
  ASSERT_EQ(rec_.fills.size(), 1u);
  EXPECT_EQ(rec_.fills[0].price, 99.0);  // no slippage on a limit
  EXPECT_TRUE(rec_.fills[0].maker);
  EXPECT_EQ(rec_.fills[0].fee, (1.0 * 99.0) * kMaker);
  // A bar opening through the limit fills at the open, the better price.
  accept(limit(2, Side::buy, 1, 99));
  ex.on_bar(btc(3, 97, 98, 96, 97));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, 97.0);
  accept(limit(3, Side::sell, 1, 105));
  ex.on_bar(btc(4, 103, 106, 102, 104));
  ASSERT_EQ(rec_.fills.size(), 3u);
  EXPECT_EQ(rec_.fills[2].price, 105.0);
  accept(limit(4, Side::sell, 1, 105));
  ex.on_bar(btc(5, 107, 108, 106, 107));
  ASSERT_EQ(rec_.fills.size(), 4u);
  EXPECT_EQ(rec_.fills[3].price, 107.0);
  EXPECT_EQ(rec_.fills[3].fee, (1.0 * 107.0) * kMaker);
}

TEST_F(PaperExchangeTest, IocLimitExpiresWhenNotFilledOnItsBar) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  OrderRequest r = limit(1, Side::buy, 1, 90);
  r.tif = TimeInForce::ioc;
  accept(r);
  ex.on_bar(btc(1, 100, 101, 99, 100));
  EXPECT_TRUE(rec_.fills.empty());
  ASSERT_EQ(rec_.updates.size(), 1u);
  EXPECT_EQ(rec_.updates[0].status, OrderStatus::expired);
  EXPECT_NE(rec_.updates[0].reason.find("IOC"), std::string::npos);
  EXPECT_TRUE(ex.open_orders().empty());
}

TEST_F(PaperExchangeTest, SellStopTriggersOnTheLowAndFillsAtTheStopOrTheGappedOpen) {
  make();
  open_position(2);
  accept(stop(2, Side::sell, 1, 95));
  ex_->on_bar(btc(2, 99, 100, 94.5, 96));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, sell_px(95));
  EXPECT_EQ(rec_.fills[1].fee, (1.0 * rec_.fills[1].price) * kTaker);
  accept(stop(3, Side::sell, 1, 95));
  ex_->on_bar(btc(3, 93, 94, 90, 92));  // gaps through the stop: the open, the worse price
  ASSERT_EQ(rec_.fills.size(), 3u);
  EXPECT_EQ(rec_.fills[2].price, sell_px(93));
  EXPECT_TRUE(ex_->positions().empty());
}

TEST_F(PaperExchangeTest, BuyStopOfAShortTriggersOnTheHigh) {
  make();
  open_position(-2);
  accept(stop(2, Side::buy, 1, 105));
  ex_->on_bar(btc(2, 101, 106, 100, 104));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, buy_px(105));
  accept(stop(3, Side::buy, 1, 105));
  ex_->on_bar(btc(3, 107, 108, 106, 107));
  ASSERT_EQ(rec_.fills.size(), 3u);
  EXPECT_EQ(rec_.fills[2].price, buy_px(107));
}

TEST_F(PaperExchangeTest, TakeProfitTriggersOnTheFavourableSide) {
  make();
  open_position(2);
  accept(take(2, Side::sell, 1, 110));
  ex_->on_bar(btc(2, 105, 111, 104, 108));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, sell_px(110));
  accept(take(3, Side::sell, 1, 110));
  ex_->on_bar(btc(3, 112, 113, 111, 112));  // opened beyond the target: the open, the better price
  ASSERT_EQ(rec_.fills.size(), 3u);
  EXPECT_EQ(rec_.fills[2].price, sell_px(112));

  make();
  rec_.fills.clear();
  open_position(-2);
  accept(take(2, Side::buy, 1, 90));
  ex_->on_bar(btc(2, 95, 96, 89, 91));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, buy_px(90));
  accept(take(3, Side::buy, 1, 90));
  ex_->on_bar(btc(3, 88, 89, 87, 88));
  ASSERT_EQ(rec_.fills.size(), 3u);
  EXPECT_EQ(rec_.fills[2].price, buy_px(88));
}

TEST_F(PaperExchangeTest, StopFillsBeforeTheTargetOnTheSameBarAndTheTargetExpires) {
  make();
  open_position(1);
  accept(stop(2, Side::sell, 1, 95));
  accept(take(3, Side::sell, 1, 105));
  ex_->on_bar(btc(2, 100, 106, 94, 100));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].order_id, 2u);
  EXPECT_EQ(rec_.fills[1].price, sell_px(95));
  ASSERT_EQ(rec_.updates.size(), 1u);
  EXPECT_EQ(rec_.updates[0].request.order_id, 3u);
  EXPECT_EQ(rec_.updates[0].status, OrderStatus::expired);
  EXPECT_FALSE(rec_.updates[0].reason.empty());
  EXPECT_TRUE(ex_->positions().empty());
  EXPECT_TRUE(ex_->open_orders().empty());
}

TEST_F(PaperExchangeTest, MarketOnCloseFillsAtTheClose) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(order(1, OrderType::market_on_close, Side::buy, 1));
  ex.on_bar(btc(1, 100, 103, 99, 102));
  ASSERT_EQ(rec_.fills.size(), 1u);
  EXPECT_EQ(rec_.fills[0].price, buy_px(102));
  EXPECT_EQ(rec_.fills[0].fee, (1.0 * rec_.fills[0].price) * kTaker);
  accept(order(2, OrderType::market_on_close, Side::sell, 1));
  ex.on_bar(btc(2, 102, 104, 101, 103));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, sell_px(103));
  EXPECT_EQ(rec_.fills[1].ts, btc(2, 0, 0, 0, 0).open_time);
}

TEST_F(PaperExchangeTest, StopPlacedInsideTheEntryFillCallbackIsCheckedOnTheSameBar) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  std::optional<SubmitResult> stop_answer, market_answer;
  rec_.fill_hook = [&](const Fill& f) {
    if (f.order_id != 1) return;
    stop_answer = ex.submit(stop(2, Side::sell, f.qty, f.price - 2));
    market_answer = ex.submit(market(3, Side::buy, 1));  // a market order placed now waits for the next open
  };
  accept(market(1, Side::buy, 1));
  ex.on_bar(btc(1, 100, 101, 97, 99));
  ASSERT_TRUE(stop_answer && market_answer);
  EXPECT_EQ(stop_answer->outcome, SubmitOutcome::accepted);
  EXPECT_EQ(market_answer->outcome, SubmitOutcome::accepted);
  ASSERT_EQ(rec_.fills.size(), 2u);
  const double entry = buy_px(100);
  EXPECT_EQ(rec_.fills[1].order_id, 2u);
  EXPECT_EQ(rec_.fills[1].price, sell_px(entry - 2));
  EXPECT_EQ(rec_.fills[1].ts, rec_.fills[0].ts);
  ASSERT_EQ(ex.open_orders().size(), 1u);
  EXPECT_EQ(ex.open_orders()[0].request.order_id, 3u);
  ex.on_bar(btc(2, 99, 100, 98, 99));
  ASSERT_EQ(rec_.fills.size(), 3u);
  EXPECT_EQ(rec_.fills[2].order_id, 3u);
  EXPECT_EQ(rec_.fills[2].price, buy_px(99));
}

TEST_F(PaperExchangeTest, CancelInsideACallbackAndCancelOfAFinalOrder) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(market(1, Side::buy, 1));
  accept(limit(2, Side::buy, 1, 99));
  std::optional<SubmitResult> cancelled;
  rec_.fill_hook = [&](const Fill& f) {
    if (f.order_id == 1) cancelled = ex.cancel(2);  // cancelled before its phase on this bar
  };
  ex.on_bar(btc(1, 100, 101, 98, 100));
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->outcome, SubmitOutcome::accepted);
  ASSERT_EQ(rec_.fills.size(), 1u);
  EXPECT_EQ(ex.query(2)->status, OrderStatus::canceled);
  EXPECT_EQ(ex.cancel(2).code, -2011);
  EXPECT_EQ(ex.cancel(1).code, -2011);  // filled
  const SubmitResult unknown = ex.cancel(999);
  EXPECT_EQ(unknown.outcome, SubmitOutcome::rejected);
  EXPECT_EQ(unknown.code, -2011);
  EXPECT_EQ(unknown.message, "Unknown order sent.");
}

// ---- rejections --------------------------------------------------------------------------------------------------

TEST_F(PaperExchangeTest, RejectsInvalidOrdersWithVenueCodes) {
  PaperExchange& ex = make();
  EXPECT_EQ(refused(market(1, Side::buy, 1), -1121), "Invalid symbol.");  // no bar yet
  EXPECT_FALSE(ex.filters("BTCUSDT").ok());
  EXPECT_EQ(ex.filters("BTCUSDT").error().code, ErrorCode::not_found);
  ex.on_bar(btc(0, 100, 101, 99, 100));
  EXPECT_TRUE(ex.filters("BTCUSDT").ok());
  const auto names = [](const std::string& message, const std::string& field) {
    return message.find(field) != std::string::npos;
  };
  EXPECT_TRUE(names(refused(market(1, Side::buy, kNaN), -1013), "qty"));
  EXPECT_TRUE(names(refused(market(1, Side::buy, -1), -1013), "qty"));
  EXPECT_TRUE(names(refused(market(1, Side::buy, std::numeric_limits<double>::infinity()), -1013), "qty"));
  EXPECT_TRUE(names(refused(limit(1, Side::buy, 1, -5), -1013), "price"));
  EXPECT_TRUE(names(refused(stop(1, Side::sell, 1, kNaN), -1013), "stop_price"));
  EXPECT_TRUE(names(refused(order(1, OrderType::limit, Side::buy, 1), -1102), "'price'"));
  EXPECT_TRUE(names(refused(order(1, OrderType::stop_market, Side::sell, 1), -1102), "stop_price"));
  EXPECT_TRUE(names(refused(order(1, OrderType::take_profit_market, Side::sell, 1), -1102), "stop_price"));
  EXPECT_TRUE(names(refused(market(1, Side::buy, 0), -1102), "quote_qty"));  // neither
  OrderRequest both = market(1, Side::buy, 1);
  both.quote_qty = 100;
  EXPECT_TRUE(names(refused(both, -1102), "quote_qty"));
  OrderRequest quote_limit = limit(1, Side::buy, 0, 99);
  quote_limit.quote_qty = 100;
  EXPECT_TRUE(names(refused(quote_limit, -1102), "quote_qty"));
  OrderRequest lev = market(1, Side::buy, 1);
  lev.leverage = 0.5;
  refused(lev, -4028);
  lev.leverage = 200;
  EXPECT_TRUE(names(refused(lev, -4028), "200"));
  lev.leverage = 125;
  accept(lev);
  EXPECT_EQ(refused(market(1, Side::buy, 1), -4116), "ClientOrderId is duplicated.");
  OrderRequest same_client = market(2, Side::buy, 1);
  same_client.client_order_id = order_client_id(1);
  refused(same_client, -4116);
  EXPECT_EQ(refused(market(3, Side::buy, 1000), -2019), "Margin is insufficient.");
  EXPECT_FALSE(ex.query(3).has_value());  // a rejected order is not kept
}

TEST_F(PaperExchangeTest, FilterFailuresAreRejectedWithTheFilterName) {
  PaperExchangeConfig c;
  c.filters.tick_size = 0.01;
  c.filters.step_size = 0.001;
  c.filters.min_qty = 0.001;
  c.filters.min_notional = 5;
  c.symbol_filters["ETHUSDT"] = SymbolFilters{0.1, 0.01, 0.01, 0, 10};
  PaperExchange& ex = make(c);
  ex.on_bar(btc(0, 100, 101, 99, 100));
  ex.on_bar(bar_at("ETHUSDT", 0, 50, 51, 49, 50));
  EXPECT_EQ(refused(limit(1, Side::buy, 1, 100.005), -1013).rfind("Filter failure: PRICE_FILTER", 0), 0u);
  EXPECT_EQ(refused(market(1, Side::buy, 0.0015), -1013).rfind("Filter failure: LOT_SIZE", 0), 0u);
  EXPECT_EQ(refused(market(1, Side::buy, 0.0005), -1013).rfind("Filter failure: LOT_SIZE", 0), 0u);
  EXPECT_EQ(refused(market(1, Side::buy, 0.01), -1013).rfind("Filter failure: MIN_NOTIONAL", 0), 0u);
  OrderRequest quote = market(1, Side::buy, 0);
  quote.quote_qty = 4;
  EXPECT_EQ(refused(quote, -1013).rfind("Filter failure: MIN_NOTIONAL", 0), 0u);
  accept(market(1, Side::buy, 0.3));  // 0.3 is 3 steps of 0.001... and of 0.1
  OrderRequest eth = market(2, Side::buy, 0.1);
  eth.symbol = "ETHUSDT";
  EXPECT_EQ(refused(eth, -1013).rfind("Filter failure: MIN_NOTIONAL", 0), 0u);  // 5 < 10: the symbol's own filters
  eth.qty = 0.3;
  accept(eth);
  EXPECT_EQ(ex.filters("ETHUSDT").value().min_notional, 10.0);
}

TEST_F(PaperExchangeTest, SpotRefusesShortsAndBuysBeyondTheBalance) {
  PaperExchange& ex = make(spot_config());
  ex.on_bar(btc(0, 100, 101, 99, 100));
  EXPECT_EQ(refused(market(1, Side::sell, 1), -2010), "Account has insufficient balance for requested action.");
  EXPECT_EQ(refused(market(1, Side::buy, 100), -2010), "Account has insufficient balance for requested action.");
  OrderRequest lev = market(1, Side::buy, 1);
  lev.leverage = 2;
  refused(lev, -4028);
  accept(market(1, Side::buy, 2));
  ex.on_bar(btc(1, 100, 101, 99, 100));
  refused(market(2, Side::sell, 3), -2010);  // more than held
  accept(market(2, Side::sell, 2));
  // The held funds of a working buy count: two buys that fit alone do not fit together.
  accept(market(3, Side::buy, 60));
  refused(market(4, Side::buy, 60), -2010);
}

TEST_F(PaperExchangeTest, PerpetualMarginIsCheckedWithLeverageAndWorkingOrders) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  refused(market(1, Side::buy, 200), -2019);  // 20000 notional on 10000 at 1x
  OrderRequest lev = market(1, Side::buy, 200);
  lev.leverage = 5;
  accept(lev);  // 4000 margin + 8 fee
  OrderRequest second = market(2, Side::sell, 500);
  second.leverage = 5;
  refused(second, -2019);  // the position is flat: all 500 open, 10000 + 20 > the 5992 not held by the buy
  second.qty = 250;
  accept(second);  // 5000 + 10 fits
  OrderRequest reduce = market(3, Side::sell, 1000);
  reduce.reduce_only = true;
  accept(reduce);  // reduce-only orders hold no margin
}

// ---- partial fills, reduce-only, liquidation ---------------------------------------------------------------------

TEST_F(PaperExchangeTest, ParticipationCapsEachBarAndTheRestWorksAtTheNextOpen) {
  PaperExchangeConfig c;
  c.participation = 0.1;
  c.filters.step_size = 0.1;
  PaperExchange& ex = make(c);
  ex.on_bar(btc(0, 100, 101, 99, 100, 5));
  accept(market(1, Side::buy, 1.2));
  ex.on_bar(btc(1, 100, 101, 99, 100, 5));  // at most 0.5 of 5
  ASSERT_EQ(rec_.fills.size(), 1u);
  EXPECT_EQ(rec_.fills[0].qty, 0.5);
  EXPECT_NEAR(rec_.fills[0].remaining_qty, 0.7, 1e-12);
  EXPECT_EQ(ex.query(1)->status, OrderStatus::partially_filled);
  ASSERT_EQ(ex.open_orders().size(), 1u);
  ex.on_bar(btc(2, 101, 102, 100, 101, 0));  // no volume: nothing
  EXPECT_EQ(rec_.fills.size(), 1u);
  ex.on_bar(btc(3, 102, 103, 101, 102, 5));
  ex.on_bar(btc(4, 103, 104, 102, 103, 5));
  ASSERT_EQ(rec_.fills.size(), 3u);
  EXPECT_EQ(rec_.fills[1].price, buy_px(102));
  EXPECT_EQ(rec_.fills[1].qty, 0.5);
  EXPECT_EQ(rec_.fills[2].price, buy_px(103));
  EXPECT_NEAR(rec_.fills[2].qty, 0.2, 1e-12);
  EXPECT_EQ(rec_.fills[2].remaining_qty, 0.0);
  const auto q = ex.query(1);
  EXPECT_EQ(q->status, OrderStatus::filled);
  EXPECT_NEAR(q->filled_qty, 1.2, 1e-12);
  EXPECT_NEAR(q->avg_price, (0.5 * buy_px(100) + 0.5 * buy_px(102) + 0.2 * buy_px(103)) / 1.2, 1e-9);
  EXPECT_NEAR(ex.positions()[0].qty, 1.2, 1e-12);
}

TEST_F(PaperExchangeTest, ReduceOnlyWithNothingToReduceExpiresAndIsCappedAtThePosition) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  OrderRequest r = market(1, Side::sell, 1);
  r.reduce_only = true;
  accept(r);
  ex.on_bar(btc(1, 100, 101, 99, 100));
  EXPECT_TRUE(rec_.fills.empty());
  ASSERT_EQ(rec_.updates.size(), 1u);
  EXPECT_EQ(rec_.updates[0].status, OrderStatus::expired);
  EXPECT_NE(rec_.updates[0].reason.find("reduce-only"), std::string::npos);

  accept(market(2, Side::buy, 1));
  ex.on_bar(btc(2, 100, 101, 99, 100));
  OrderRequest big = market(3, Side::sell, 2);
  big.reduce_only = true;
  accept(big);
  ex.on_bar(btc(3, 100, 101, 99, 100));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].qty, 1.0);  // capped: never a short
  EXPECT_EQ(rec_.fills[1].remaining_qty, 1.0);
  ASSERT_EQ(rec_.updates.size(), 2u);
  EXPECT_EQ(rec_.updates[1].status, OrderStatus::expired);
  EXPECT_EQ(ex.query(3)->filled_qty, 1.0);
  EXPECT_TRUE(ex.positions().empty());
}

TEST_F(PaperExchangeTest, IsolatedLongIsLiquidatedAtItsLiquidationPrice) {
  PaperExchangeConfig c;
  c.maintenance_margin = 0.005;
  PaperExchange& ex = make(c);
  ex.on_bar(btc(0, 100, 101, 99, 100));
  OrderRequest r = market(1, Side::buy, 10);
  r.leverage = 10;
  accept(r);
  ex.on_bar(btc(1, 100, 101, 99, 100));
  const double entry = buy_px(100);
  const double liq = entry * (1 - 1 / 10.0 + 0.005);
  ASSERT_EQ(ex.positions().size(), 1u);
  EXPECT_EQ(ex.positions()[0].liquidation_price, liq);
  EXPECT_NEAR(ex.positions()[0].margin, 10 * entry / 10, 1e-9);
  accept(stop(2, Side::sell, 10, 80));  // below the liquidation price: never reached
  const double equity_before = ex.equity();
  ex.on_bar(btc(2, 95, 96, 89, 92));
  ASSERT_EQ(rec_.fills.size(), 2u);
  const Fill& f = rec_.fills[1];
  EXPECT_EQ(f.order_id, 0u);  // venue-initiated
  EXPECT_EQ(f.price, liq);
  EXPECT_EQ(f.side, Side::sell);
  EXPECT_EQ(f.qty, 10.0);
  EXPECT_EQ(f.fee, 10 * liq * kTaker);
  ASSERT_EQ(rec_.updates.size(), 1u);
  EXPECT_EQ(rec_.updates[0].request.order_id, 2u);
  EXPECT_EQ(rec_.updates[0].status, OrderStatus::expired);
  EXPECT_TRUE(ex.positions().empty());
  // The loss is the isolated margin less the maintenance part, plus the fee.
  EXPECT_NEAR(ex.equity(), equity_before - 10 * (100 - liq) - f.fee, 1e-6);
  EXPECT_EQ(ex.balances()[0].locked, 0.0);
}

TEST_F(PaperExchangeTest, ShortLiquidationPriceIsAboveTheEntry) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  OrderRequest r = market(1, Side::sell, 10);
  r.leverage = 20;
  accept(r);
  ex.on_bar(btc(1, 100, 101, 99, 100));
  const double entry = sell_px(100);
  const double liq = entry * (1 + 1 / 20.0 - 0.005);
  EXPECT_EQ(ex.positions()[0].liquidation_price, liq);
  ex.on_bar(btc(2, 100, 104, 99, 103));  // below liq (104.5)
  EXPECT_EQ(rec_.fills.size(), 1u);
  ex.on_bar(btc(3, 103, 105, 102, 104));
  ASSERT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(rec_.fills[1].price, liq);
  EXPECT_EQ(rec_.fills[1].side, Side::buy);
}

// ---- fault seam, funding, accounting -----------------------------------------------------------------------------

TEST_F(PaperExchangeTest, LostAnswersAreUnknownAndQueryShowsTheTruth) {
  PaperExchangeConfig c;
  c.lose_answer_every = 2;
  PaperExchange& ex = make(c);
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(market(1, Side::buy, 1));
  const SubmitResult lost = ex.submit(market(2, Side::buy, 1));
  EXPECT_EQ(lost.outcome, SubmitOutcome::unknown);
  EXPECT_EQ(lost.message, "timeout: no answer");
  const auto truth = ex.query(2);
  ASSERT_TRUE(truth.has_value());
  EXPECT_EQ(truth->status, OrderStatus::accepted);
  EXPECT_EQ(truth->request.client_order_id, "qt-2");
  refused(market(2, Side::buy, 1), -4116);  // a blind resend is refused, never traded twice
  const SubmitResult lost_reject = ex.submit(market(4, Side::buy, kNaN));
  EXPECT_EQ(lost_reject.outcome, SubmitOutcome::unknown);
  EXPECT_FALSE(ex.query(4).has_value());  // the venue refused it: it does not know it
  ex.on_bar(btc(1, 100, 101, 99, 100));
  EXPECT_EQ(rec_.fills.size(), 2u);
  EXPECT_EQ(ex.query(2)->status, OrderStatus::filled);
}

TEST_F(PaperExchangeTest, FundingIsChargedAtEightHourBoundaries) {
  PaperExchangeConfig c;
  c.funding_rate_8h = 0.0001;
  PaperExchange& ex = make(c);
  const auto hour_bar = [](std::int64_t i) { return bar_at("BTCUSDT", i, 100, 100.5, 99.5, 100, 1000, 3600); };
  ex.on_bar(hour_bar(4));  // 04:00-05:00
  accept(market(1, Side::buy, 3));
  ex.on_bar(hour_bar(5));
  ex.on_bar(hour_bar(6));
  const double before = ex.equity();
  ex.on_bar(hour_bar(7));  // 07:00-08:00 crosses 08:00
  EXPECT_NEAR(ex.equity(), before - 3 * 100 * 0.0001, 1e-9);
  const double after = ex.equity();
  ex.on_bar(hour_bar(8));  // no boundary inside 08:00-09:00
  EXPECT_EQ(ex.equity(), after);

  PaperExchange& shorts = make(c);
  shorts.on_bar(hour_bar(14));
  accept(market(1, Side::sell, 3));
  shorts.on_bar(hour_bar(15));  // 15:00-16:00 crosses 16:00: the short receives
  EXPECT_NEAR(shorts.equity(), 10'000 - 3 * sell_px(100) * kTaker + 3 * 100 * 0.0001 + 3 * (sell_px(100) - 100), 1e-9);
}

TEST_F(PaperExchangeTest, RoundTripWalletChangeIsPnlMinusFees) {
  PaperExchange& ex = make();
  ex.on_bar(btc(0, 100, 101, 99, 100));
  const auto wallet = [&] {
    const auto b = ex.balances();
    EXPECT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].asset, "USDT");
    return b[0].free + b[0].locked;
  };
  const double w0 = wallet();
  EXPECT_EQ(w0, 10'000.0);
  EXPECT_EQ(ex.equity(), 10'000.0);
  accept(market(1, Side::buy, 2));
  ex.on_bar(btc(1, 100, 104, 99, 103));
  const auto pos = ex.positions();
  ASSERT_EQ(pos.size(), 1u);
  EXPECT_NEAR(ex.equity(), wallet() + pos[0].unrealized_pnl, 1e-9);
  EXPECT_NEAR(pos[0].unrealized_pnl, 2 * (103 - buy_px(100)), 1e-9);
  EXPECT_NEAR(ex.balances()[0].locked, 2 * buy_px(100), 1e-9);  // the 1x margin
  accept(market(2, Side::sell, 2));
  ex.on_bar(btc(2, 105, 106, 104, 105));
  ASSERT_EQ(rec_.fills.size(), 2u);
  const double pnl = 2 * (rec_.fills[1].price - rec_.fills[0].price);
  const double fees = rec_.fills[0].fee + rec_.fills[1].fee;
  EXPECT_NEAR(wallet() - w0, pnl - fees, 1e-9);
  EXPECT_EQ(ex.equity(), wallet());
  EXPECT_EQ(ex.balances()[0].locked, 0.0);
}

TEST_F(PaperExchangeTest, SpotRoundTripMovesCashAndHoldings) {
  PaperExchange& ex = make(spot_config());
  ex.on_bar(btc(0, 100, 101, 99, 100));
  accept(market(1, Side::buy, 2));
  ex.on_bar(btc(1, 100, 104, 99, 103));
  const auto b = ex.balances();
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].asset, "BTC");  // by asset
  EXPECT_EQ(b[0].free, 2.0);
  EXPECT_EQ(b[1].asset, "USDT");
  const double px = buy_px(100);
  EXPECT_EQ(b[1].free, 10'000 - (2 * px + (2 * px) * kTaker));
  EXPECT_EQ(ex.equity(), b[1].free + 2 * 103.0);
  accept(market(2, Side::sell, 2));
  EXPECT_EQ(ex.balances()[0].locked, 2.0);  // held by the working sell
  ex.on_bar(btc(2, 105, 106, 104, 105));
  ASSERT_EQ(rec_.fills.size(), 2u);
  const double pnl = 2 * (rec_.fills[1].price - rec_.fills[0].price);
  EXPECT_NEAR(ex.equity() - 10'000, pnl - rec_.fills[0].fee - rec_.fills[1].fee, 1e-9);
  EXPECT_EQ(ex.balances().size(), 1u);
}

TEST_F(PaperExchangeTest, ListingsAreOrderedDeterministically) {
  PaperExchange& ex = make();
  for (const char* s : {"SOLUSDT", "BTCUSDT", "ETHUSDT"}) ex.on_bar(bar_at(s, 0, 100, 101, 99, 100));
  std::uint64_t id = 10;
  for (const char* s : {"SOLUSDT", "BTCUSDT", "ETHUSDT"}) {
    OrderRequest r = market(id--, Side::buy, 1);
    r.symbol = s;
    accept(r);
    OrderRequest l = limit(100 + id, Side::buy, 1, 50);
    l.symbol = s;
    accept(l);
  }
  const auto open = ex.open_orders();
  ASSERT_EQ(open.size(), 6u);
  for (std::size_t i = 1; i < open.size(); ++i) EXPECT_LT(open[i - 1].request.order_id, open[i].request.order_id);
  for (const char* s : {"SOLUSDT", "BTCUSDT", "ETHUSDT"}) ex.on_bar(bar_at(s, 1, 100, 101, 99, 100));
  const auto pos = ex.positions();
  ASSERT_EQ(pos.size(), 3u);
  EXPECT_EQ(pos[0].symbol.view(), "BTCUSDT");
  EXPECT_EQ(pos[1].symbol.view(), "ETHUSDT");
  EXPECT_EQ(pos[2].symbol.view(), "SOLUSDT");
  std::vector<std::uint64_t> fill_ids;
  for (const Fill& f : rec_.fills) fill_ids.push_back(f.fill_id);
  EXPECT_EQ(fill_ids, (std::vector<std::uint64_t>{1, 2, 3}));
}

// ---- determinism and the backtester --------------------------------------------------------------------------------

/// A deterministic bar series: a random walk with occasional gaps of the open (small LCG, no library distribution).
struct Walk {
  std::uint64_t s;
  double px = 100;
  double uniform() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  MarketBarClosed next(const char* symbol, std::int64_t i) {
    const double jump = uniform() < 0.08 ? (uniform() - 0.5) * 8 : 0;
    const double o = px + jump;
    const double c = o + (uniform() - 0.5) * 3;
    const double h = std::max(o, c) + uniform() * 1.5;
    const double l = std::min(o, c) - uniform() * 1.5;
    px = c;
    return bar_at(symbol, i, o, h, l, c, 50 + 100 * uniform());
  }
};

std::vector<Fill> scripted_run(std::uint64_t seed, double* equity) {
  SimClock clock(kT0);
  PaperExchangeConfig c;
  c.slippage_spread = 0.5;
  c.impact = 0.01;
  c.participation = 0.05;
  c.filters.step_size = 0.001;
  PaperExchange ex(c, clock);
  Recorder rec;
  ex.listener_set(&rec);
  Walk walks[2] = {{seed}, {seed ^ 0x9e3779b97f4a7c15ULL}};
  const char* symbols[2] = {"BTCUSDT", "ETHUSDT"};
  std::uint64_t id = 0;
  rec.fill_hook = [&](const Fill& f) {
    if (f.order_id % 3 == 0 && f.order_id != 0) {
      OrderRequest s = stop(1'000'000 + f.order_id, f.side == Side::buy ? Side::sell : Side::buy, f.qty,
                            f.side == Side::buy ? f.price - 2 : f.price + 2);
      s.symbol = f.symbol;
      (void)ex.submit(s);
    }
  };
  for (std::int64_t i = 0; i < 300; ++i) {
    for (int k = 0; k < 2; ++k) {
      ex.on_bar(walks[k].next(symbols[k], i));
      const double u = walks[k].uniform();
      OrderRequest r =
          market(++id, u < 0.5 ? Side::buy : Side::sell, 0.5 + std::floor(walks[k].uniform() * 3000) / 1000);
      r.symbol = symbols[k];
      const double v = walks[k].uniform();
      if (v < 0.2) {
        r.type = OrderType::limit;
        r.price = std::round(ex.last_price(r.symbol) * (r.side == Side::buy ? 0.99 : 1.01));
      } else if (v < 0.3) {
        r.type = OrderType::market_on_close;
      } else if (v < 0.4) {
        r.type = OrderType::take_profit_market;
        r.stop_price = std::round(ex.last_price(r.symbol) * (r.side == Side::buy ? 0.98 : 1.02));
        r.reduce_only = true;
      } else if (v < 0.5) {
        r.qty = 0;
        r.quote_qty = 200;
      }
      (void)ex.submit(r);
      if (walks[k].uniform() < 0.1 && id > 5) (void)ex.cancel(id - 5);
    }
  }
  *equity = ex.equity();
  return rec.fills;
}

TEST(PaperExchangeDeterminism, SameInputsGiveTheSameFillsBitForBit) {
  double e1 = 0, e2 = 0;
  const std::vector<Fill> a = scripted_run(7, &e1);
  const std::vector<Fill> b = scripted_run(7, &e2);
  ASSERT_GT(a.size(), 50u);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].order_id, b[i].order_id);
    EXPECT_EQ(a[i].fill_id, b[i].fill_id);
    EXPECT_EQ(a[i].symbol, b[i].symbol);
    EXPECT_EQ(a[i].qty, b[i].qty);
    EXPECT_EQ(a[i].price, b[i].price);
    EXPECT_EQ(a[i].fee, b[i].fee);
    EXPECT_EQ(a[i].ts, b[i].ts);
  }
  EXPECT_EQ(e1, e2);
  double e3 = 0;
  const std::vector<Fill> c = scripted_run(8, &e3);
  EXPECT_FALSE(c.size() == a.size() && e3 == e1);  // a different seed trades differently
}

// The vectorised backtester's bar step (stops and targets from ATR multiples, entries sized from cash) and the paper
// exchange driven like the executor drives it produce the same trades and the same cash, bit for bit.
TEST(PaperExchangeBacktest, ReproducesTheBacktesterTradeForTrade) {
  kernels::BacktestCosts costs;
  costs.fee = 0.0004;
  costs.slippage = 0.0002;
  costs.slippage_spread = 0.5;
  kernels::Genome g{};
  g.stop_atr = 2.0f;
  g.take_atr = 3.0f;
  g.size = 0.5f;
  const double atr = 1.25;
  std::vector<MarketBarClosed> bars;
  Walk walk{12345};
  for (std::int64_t i = 0; i < 400; ++i) bars.push_back(walk.next("BTCUSDT", i));
  const auto signal = [](std::size_t t) { return t % 6 == 3; };

  // The backtester.
  kernels::BacktestState<double> st;
  st.init(10'000);
  std::vector<kernels::TradeEvent> trades;
  auto sink = [&](const kernels::TradeEvent& e) { trades.push_back(e); };
  kernels::SpreadState<double> spread;
  spread.init(kernels::IndicatorParams{kernels::kStrategySpreadPeriod, 26, 9, 2.0});
  double prev = kNaN;
  for (std::size_t t = 0; t < bars.size(); ++t) {
    const MarketBarClosed& b = bars[t];
    const std::int32_t sig = signal(t) ? static_cast<std::int32_t>(kernels::kSignalLong) : 0;
    st.step(g, costs, static_cast<std::int32_t>(t), b.open, b.high, b.low, b.close, sig, atr,
            kernels::fill_slippage<double>(costs, prev), false, sink);
    prev = spread.update(b.high, b.low, 0.0);
  }

  // The paper exchange, with an executor that places the stop and the target on the entry fill.
  SimClock clock(kT0);
  PaperExchangeConfig c;
  c.taker_fee = costs.fee;
  c.slippage = costs.slippage;
  c.slippage_spread = costs.slippage_spread;
  PaperExchange ex(c, clock);
  Recorder rec;
  ex.listener_set(&rec);
  std::uint64_t id = 0, entry_id = 0, stop_id = 0, take_id = 0;
  struct Trade {
    double entry = 0, exit = 0, pnl = 0;
  };
  std::vector<Trade> venue_trades;
  double entry_equity = 0;
  bool in_position = false;
  rec.fill_hook = [&](const Fill& f) {
    if (f.order_id == entry_id) {
      venue_trades.push_back({f.price, 0, 0});
      const double dir = 1.0;
      stop_id = ++id;
      take_id = ++id;
      ASSERT_EQ(ex.submit(stop(stop_id, Side::sell, f.qty, f.price - dir * g.stop_atr * atr)).outcome,
                SubmitOutcome::accepted);
      ASSERT_EQ(ex.submit(take(take_id, Side::sell, f.qty, f.price + dir * g.take_atr * atr)).outcome,
                SubmitOutcome::accepted);
    } else if (f.order_id == stop_id || f.order_id == take_id) {
      venue_trades.back().exit = f.price;
      (void)ex.cancel(f.order_id == stop_id ? take_id : stop_id);
      in_position = false;
    }
  };
  for (std::size_t t = 0; t < bars.size(); ++t) {
    ex.on_bar(bars[t]);
    if (!venue_trades.empty() && venue_trades.back().exit != 0 && venue_trades.back().pnl == 0)
      venue_trades.back().pnl = ex.equity() - entry_equity;
    if (!in_position && signal(t)) {
      entry_equity = ex.equity();
      OrderRequest r = market(++id, Side::buy, 0);
      r.quote_qty = g.size * entry_equity;  // the backtester's size x cash
      entry_id = id;
      ASSERT_EQ(ex.submit(r).outcome, SubmitOutcome::accepted);
      in_position = true;
    }
  }

  ASSERT_GE(trades.size(), 20u);
  bool stops = false, targets = false, same_bar = false;
  for (const auto& e : trades) {
    stops = stops || e.reason == kernels::ExitReason::stop;
    targets = targets || e.reason == kernels::ExitReason::target;
    same_bar = same_bar || e.entry_bar == e.exit_bar;
  }
  EXPECT_TRUE(stops && targets && same_bar) << "the series should exercise stops, targets and same-bar exits";
  const std::size_t closed = venue_trades.back().exit == 0 ? venue_trades.size() - 1 : venue_trades.size();
  ASSERT_EQ(closed, trades.size());
  for (std::size_t i = 0; i < trades.size(); ++i) {
    EXPECT_EQ(venue_trades[i].entry, trades[i].entry_price) << "trade " << i;
    EXPECT_EQ(venue_trades[i].exit, trades[i].exit_price) << "trade " << i;
    EXPECT_EQ(venue_trades[i].pnl, trades[i].pnl) << "trade " << i;
  }
  EXPECT_EQ(ex.equity(), st.cash + st.qty * bars.back().close);
}

}  // namespace paper_exchange_test
}  // namespace qtos
