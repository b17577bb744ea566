// The trading ledger: every record type round-trips exactly (doubles bit for bit, a decision trace with unicode and
// quotes), a fill reported twice is stored once, order reads filter and come newest first, writes are batched into
// cycles that a kill -9 never splits, and a file that is not a ledger (or is missing, damaged or newer) is named.
#include "runtime/analytics/ledger.hpp"

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/policy/policy_backend.hpp"
#include "tests/runtime/test_util.hpp"
#include "tests/support/crash_child.hpp"

namespace qtos {
namespace ledger_test {

using ::testing::HasSubstr;

constexpr TimeNs kT0 = 1'700'000'000'000'000'000;

DecisionTrace sample_trace() {
  return {
      {.hook = "pre_trade_position_sizing", .subsystem = "PBA", .mode = SubsystemMode::advisory, .before = "qty 0.5",
       .after = "qty 0.3", .applied = true, .reason = "drawdown \"rising\" \\ cut size — 减仓 ✓"},
      {.hook = "risk_os", .subsystem = "RISK_OS", .mode = SubsystemMode::enforced, .before = "notional 1e6",
       .after = "denied", .applied = false, .reason = "line\nbreak\ttab \x01 ctrl, emoji \xF0\x9F\x93\x89"},
      {.hook = "", .subsystem = "", .mode = SubsystemMode::off, .before = "", .after = "", .applied = false, .reason = ""},
  };
}

OrderRecord sample_order(std::uint64_t id) {
  OrderRecord o;
  o.request.order_id = id;
  o.request.client_order_id = "qt-" + std::to_string(id);
  o.request.strategy = "ema-cross-12-26";
  o.request.symbol = "BTCUSDT";
  o.request.side = Side::sell;
  o.request.type = OrderType::stop_market;
  o.request.qty = 0.1 + 0.2;                        // 0.30000000000000004
  o.request.quote_qty = 1.0 / 3.0;
  o.request.price = 123456.78901234567;
  o.request.stop_price = std::numeric_limits<double>::denorm_min();
  o.request.reduce_only = true;
  o.request.leverage = 2.5;
  o.request.tif = TimeInForce::ioc;
  o.purpose = OrderPurpose::trailing_stop;
  o.position_id = 77;
  o.status = OrderStatus::partially_filled;
  o.filled_qty = 1e-300;
  o.avg_price = std::numeric_limits<double>::max();
  o.fee = -0.000123456789;
  o.created = kT0 + 1;
  o.updated = kT0 + 999;
  o.deny_reason = DenyReason::price_collar;
  o.venue_code = -2010;
  o.detail = "venue said: \"no\"";
  o.policy_version = 42;
  o.confidence = 0.7234567891234567;
  o.trace = sample_trace();
  return o;
}

// Doubles compare with ==: a round trip must be exact, not close.
void expect_same(const OrderRecord& a, const OrderRecord& b) {
  EXPECT_EQ(a.request.order_id, b.request.order_id);
  EXPECT_EQ(a.request.client_order_id, b.request.client_order_id);
  EXPECT_EQ(a.request.strategy, b.request.strategy);
  EXPECT_EQ(a.request.symbol, b.request.symbol);
  EXPECT_EQ(a.request.side, b.request.side);
  EXPECT_EQ(a.request.type, b.request.type);
  EXPECT_EQ(a.request.qty, b.request.qty);
  EXPECT_EQ(a.request.quote_qty, b.request.quote_qty);
  EXPECT_EQ(a.request.price, b.request.price);
  EXPECT_EQ(a.request.stop_price, b.request.stop_price);
  EXPECT_EQ(a.request.reduce_only, b.request.reduce_only);
  EXPECT_EQ(a.request.leverage, b.request.leverage);
  EXPECT_EQ(a.request.tif, b.request.tif);
  EXPECT_EQ(a.purpose, b.purpose);
  EXPECT_EQ(a.position_id, b.position_id);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.filled_qty, b.filled_qty);
  EXPECT_EQ(a.avg_price, b.avg_price);
  EXPECT_EQ(a.fee, b.fee);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.updated, b.updated);
  EXPECT_EQ(a.deny_reason, b.deny_reason);
  EXPECT_EQ(a.venue_code, b.venue_code);
  EXPECT_EQ(a.detail, b.detail);
  EXPECT_EQ(a.policy_version, b.policy_version);
  EXPECT_EQ(a.confidence, b.confidence);
  EXPECT_EQ(a.trace, b.trace);
}

FillRecord sample_fill(std::uint64_t order_id, std::uint64_t fill_id, double qty) {
  FillRecord f;
  f.fill = {.order_id = order_id, .fill_id = fill_id, .symbol = "ETHUSDT", .side = Side::buy, .qty = qty, .price = 2000.0 / 3.0,
            .fee = 0.1 + 0.7, .maker = true, .ts = kT0 + static_cast<TimeNs>(fill_id), .remaining_qty = 1.0 / 7.0};
  f.strategy = "rsi-mean-rev";
  return f;
}

ClosedTrade sample_trade(std::uint64_t position_id, TimeNs exit_time) {
  return {.position_id = position_id, .strategy = "model:xgb-direction", .symbol = "SOLUSDT", .side = Side::sell,
          .qty = 12.345678901234567, .entry_price = 20.1, .exit_price = 19.9, .fees = 0.011, .pnl = 2.4691357802469134,
          .ret = 0.0024691357802469134, .entry_time = exit_time - 3600, .exit_time = exit_time,
          .reason = CloseReason::trailing_stop, .classification = "WINNER"};
}

PositionRecord sample_position(std::uint64_t position_id) {
  return {.position_id = position_id, .strategy = "ema-cross-12-26", .symbol = "BTCUSDT", .side = Side::buy, .qty = 0.015,
          .entry_price = 43210.98765, .entry_fee = 0.0648, .entry_time = kT0 + 5, .stop_price = 42000.5, .take_price = 0,
          .leverage = 3, .bars_held = 17};
}

EquityPoint sample_point(TimeNs ts, double equity) {
  return {.ts = ts, .equity = equity, .cash = equity * 0.6, .exposure = 0.4 + 1e-12, .open_positions = 2,
          .risk_mode = RiskMode::defensive, .regime = Regime::high_volatility, .trading_state = "REDUCING"};
}

TEST(DecisionTrace, JsonRoundTripsUnicodeQuotesAndControlCharacters) {
  const DecisionTrace t = sample_trace();
  const std::string json = decision_trace_json(t);
  EXPECT_EQ(decision_trace_parse(json), t);
  EXPECT_EQ(decision_trace_json({}), "[]");
  EXPECT_TRUE(decision_trace_parse("[]").empty());
  // The documented field order.
  EXPECT_EQ(json.find("{\"hook\":"), 1u);
  EXPECT_LT(json.find("\"subsystem\""), json.find("\"mode\""));
  EXPECT_LT(json.find("\"applied\""), json.find("\"reason\""));
}

TEST(DecisionTrace, ParseNamesWhatIsMalformed) {
  auto message = [](const std::string& json) {
    try {
      decision_trace_parse(json);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_THAT(message("{not json"), HasSubstr("not valid JSON"));
  EXPECT_THAT(message("{}"), HasSubstr("expected a JSON array"));
  EXPECT_THAT(message("[1]"), HasSubstr("step 1: expected a JSON object"));
  EXPECT_THAT(message(R"([{"hook":"h","subsystem":"s","mode":"LOUD","before":"","after":"","applied":true,"reason":""}])"),
              HasSubstr("field 'mode' is 'LOUD'; expected OFF"));
  EXPECT_THAT(message(R"([{"hook":"h","subsystem":"s","mode":"OFF","before":"","after":"","applied":1,"reason":""}])"),
              HasSubstr("'applied' is not a boolean"));
  EXPECT_THAT(message(R"([{"hook":"h","subsystem":"s","mode":"OFF","before":"","applied":true,"reason":""}])"),
              HasSubstr("missing field 'after'"));
}

TEST(Ledger, AnOrderRoundTripsEveryFieldExactly) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  const OrderRecord order = sample_order(5);
  OrderRecord plain = sample_order(6);
  plain.deny_reason.reset();
  plain.trace.clear();
  plain.status = OrderStatus::denied;
  {
    Ledger ledger(path);
    EXPECT_EQ(ledger.path(), path);
    ledger.order_put(order);
    ledger.order_put(plain);
    expect_same(*ledger.order_get(5), order);  // visible to this ledger before the commit
    ledger.commit();
  }
  Ledger again(path, store::OpenMode::existing);
  expect_same(*again.order_get(5), order);
  expect_same(*again.order_get(6), plain);
  EXPECT_FALSE(again.order_get(7).has_value());
  // A replace keeps one row per order id.
  OrderRecord filled = order;
  filled.status = OrderStatus::filled;
  filled.filled_qty = 0.30000000000000004;
  again.order_put(filled);
  again.commit();
  expect_same(*again.order_get(5), filled);
  EXPECT_EQ(again.orders().size(), 2u);
}

TEST(Ledger, DeniedOrdersStoreTheReasonByName) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  {
    Ledger ledger(path);
    OrderRecord o = sample_order(1);
    o.status = OrderStatus::denied;
    o.deny_reason = DenyReason::max_open_positions;
    ledger.order_put(o);
    ledger.commit();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT status, deny_reason, side, purpose, trace FROM orders", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "DENIED");
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 1)), "MAX_OPEN_POSITIONS");
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 2)), "SELL");
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 3)), "TRAILING_STOP");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 4))), decision_trace_json(sample_trace()));
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST(Ledger, NaNAndInfinityRoundTrip) {
  Ledger ledger(":memory:");
  OrderRecord o = sample_order(1);
  o.confidence = std::numeric_limits<double>::quiet_NaN();
  o.avg_price = std::numeric_limits<double>::infinity();
  o.fee = -std::numeric_limits<double>::infinity();
  ledger.order_put(o);
  const auto back = ledger.order_get(1);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(std::isnan(back->confidence));
  EXPECT_EQ(back->avg_price, o.avg_price);
  EXPECT_EQ(back->fee, o.fee);
}

TEST(Ledger, AFillReportedTwiceIsStoredOnce) {
  Ledger ledger(":memory:");
  ledger.fill_add(sample_fill(1, 100, 0.25));
  ledger.fill_add(sample_fill(2, 101, 0.5));
  ledger.fill_add(sample_fill(1, 102, 0.75));
  ledger.fill_add(sample_fill(1, 100, 9.0));  // the venue reports fill 100 again
  ledger.commit();
  ledger.fill_add(sample_fill(1, 102, 9.0));  // and again after a commit
  ledger.commit();
  const auto all = ledger.fills();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].fill.fill_id, 100u);
  EXPECT_EQ(all[0].fill.qty, 0.25);
  EXPECT_EQ(all[1].fill.fill_id, 101u);
  EXPECT_EQ(all[2].fill.fill_id, 102u);
  EXPECT_EQ(all[2].fill.qty, 0.75);
  const auto of1 = ledger.fills(1);
  ASSERT_EQ(of1.size(), 2u);
  const FillRecord want = sample_fill(1, 102, 0.75);
  const auto& got = of1[1];
  EXPECT_EQ(got.strategy, want.strategy);
  EXPECT_EQ(got.fill.order_id, want.fill.order_id);
  EXPECT_EQ(got.fill.symbol, want.fill.symbol);
  EXPECT_EQ(got.fill.side, want.fill.side);
  EXPECT_EQ(got.fill.price, want.fill.price);
  EXPECT_EQ(got.fill.fee, want.fill.fee);
  EXPECT_EQ(got.fill.maker, want.fill.maker);
  EXPECT_EQ(got.fill.ts, want.fill.ts);
  EXPECT_EQ(got.fill.remaining_qty, want.fill.remaining_qty);
  EXPECT_TRUE(ledger.fills(3).empty());
}

TEST(Ledger, TradesPositionsEquityAndMetaRoundTrip) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  {
    Ledger ledger(path);
    ledger.position_put(sample_position(1));
    ledger.position_put(sample_position(2));
    PositionRecord moved = sample_position(2);
    moved.stop_price = 42500.25;
    moved.bars_held = 18;
    ledger.position_put(moved);  // replaces
    ledger.position_put(sample_position(3));
    ledger.position_remove(3);
    ledger.position_remove(99);  // absent: no effect
    ledger.trade_add(sample_trade(1, kT0 + 7200));  // closes position 1
    ledger.trade_add(sample_trade(9, kT0 + 3600));  // exited earlier: listed first
    ledger.equity_add(sample_point(kT0 + 120, 10010.5));
    ledger.equity_add(sample_point(kT0 + 60, 1e4 / 3.0));
    ledger.meta_put("seed", "7");
    ledger.meta_put("data", "data/sample — ünïcode \"quoted\"");
    ledger.meta_put("seed", "8");
    ledger.commit();
  }
  Ledger ledger(path, store::OpenMode::existing);
  const auto positions = ledger.positions();
  ASSERT_EQ(positions.size(), 1u);
  const auto& p = positions[0];
  const PositionRecord want = sample_position(2);
  EXPECT_EQ(p.position_id, 2u);
  EXPECT_EQ(p.strategy, want.strategy);
  EXPECT_EQ(p.symbol, want.symbol);
  EXPECT_EQ(p.side, want.side);
  EXPECT_EQ(p.qty, want.qty);
  EXPECT_EQ(p.entry_price, want.entry_price);
  EXPECT_EQ(p.entry_fee, want.entry_fee);
  EXPECT_EQ(p.entry_time, want.entry_time);
  EXPECT_EQ(p.stop_price, 42500.25);
  EXPECT_EQ(p.take_price, want.take_price);
  EXPECT_EQ(p.leverage, want.leverage);
  EXPECT_EQ(p.bars_held, 18);

  const auto trades = ledger.trades();
  ASSERT_EQ(trades.size(), 2u);
  EXPECT_EQ(trades[0].position_id, 9u);
  EXPECT_EQ(trades[1].position_id, 1u);
  const ClosedTrade wt = sample_trade(1, kT0 + 7200);
  const auto& t = trades[1];
  EXPECT_EQ(t.strategy, wt.strategy);
  EXPECT_EQ(t.symbol, wt.symbol);
  EXPECT_EQ(t.side, wt.side);
  EXPECT_EQ(t.qty, wt.qty);
  EXPECT_EQ(t.entry_price, wt.entry_price);
  EXPECT_EQ(t.exit_price, wt.exit_price);
  EXPECT_EQ(t.fees, wt.fees);
  EXPECT_EQ(t.pnl, wt.pnl);
  EXPECT_EQ(t.ret, wt.ret);
  EXPECT_EQ(t.entry_time, wt.entry_time);
  EXPECT_EQ(t.exit_time, wt.exit_time);
  EXPECT_EQ(t.reason, wt.reason);
  EXPECT_EQ(t.classification, wt.classification);

  const auto curve = ledger.equity_curve();
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_EQ(curve[0].ts, kT0 + 60);  // time order
  EXPECT_EQ(curve[0].equity, 1e4 / 3.0);
  const EquityPoint we = sample_point(kT0 + 60, 1e4 / 3.0);
  EXPECT_EQ(curve[0].cash, we.cash);
  EXPECT_EQ(curve[0].exposure, we.exposure);
  EXPECT_EQ(curve[0].open_positions, we.open_positions);
  EXPECT_EQ(curve[0].risk_mode, we.risk_mode);
  EXPECT_EQ(curve[0].regime, we.regime);
  EXPECT_EQ(curve[0].trading_state, we.trading_state);
  EXPECT_EQ(curve[1].equity, 10010.5);

  EXPECT_EQ(ledger.meta_get("seed"), "8");
  EXPECT_EQ(ledger.meta_get("data"), "data/sample — ünïcode \"quoted\"");
  EXPECT_FALSE(ledger.meta_get("stage").has_value());
}

TEST(Ledger, OrdersFilterLimitAndComeNewestFirst) {
  Ledger ledger(":memory:");
  for (std::uint64_t id = 1; id <= 12; ++id) {
    OrderRecord o = sample_order(id);
    o.request.symbol = id % 2 ? "BTCUSDT" : "ETHUSDT";
    o.request.strategy = id % 3 ? "ema" : "rsi";
    o.status = id % 4 == 0 ? OrderStatus::denied : OrderStatus::filled;
    ledger.order_put(o);
  }
  ledger.commit();
  auto ids = [](const std::vector<OrderRecord>& v) {
    std::vector<std::uint64_t> out;
    for (const auto& o : v) out.push_back(o.request.order_id);
    return out;
  };
  using V = std::vector<std::uint64_t>;
  EXPECT_EQ(ids(ledger.orders()), (V{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(ids(ledger.orders({.limit = 3})), (V{12, 11, 10}));
  EXPECT_EQ(ids(ledger.orders({.limit = 0})), V{});
  EXPECT_EQ(ids(ledger.orders({.status = OrderStatus::denied})), (V{12, 8, 4}));
  EXPECT_EQ(ids(ledger.orders({.symbol = "BTCUSDT"})), (V{11, 9, 7, 5, 3, 1}));
  EXPECT_EQ(ids(ledger.orders({.strategy = "rsi"})), (V{12, 9, 6, 3}));
  EXPECT_EQ(ids(ledger.orders({.status = OrderStatus::filled, .symbol = "ETHUSDT", .strategy = "ema", .limit = 2})), (V{10, 2}));
  EXPECT_EQ(ids(ledger.orders({.status = OrderStatus::canceled})), V{});
}

TEST(Ledger, TheHighestIdsContinueTheNumberingAfterARestart) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  {
    Ledger ledger(path);
    EXPECT_EQ(ledger.order_id_max(), 0u);
    EXPECT_EQ(ledger.position_id_max(), 0u);
    OrderRecord o = sample_order(41);
    o.position_id = 30;
    ledger.order_put(o);
    ledger.order_put(sample_order(7));
    ledger.position_put(sample_position(12));
    ledger.trade_add(sample_trade(25, kT0));
    ledger.commit();
  }
  Ledger ledger(path);
  EXPECT_EQ(ledger.order_id_max(), 41u);
  EXPECT_EQ(ledger.position_id_max(), 77u);  // order 7 is for position 77 (sample_order)
  ledger.position_put(sample_position(90));
  EXPECT_EQ(ledger.position_id_max(), 90u);
}

TEST(Ledger, WritesAreBatchedUntilCommitAndAnUncommittedCycleIsRolledBack) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  Ledger writer(path);
  writer.commit();  // nothing to commit: no effect
  writer.order_put(sample_order(1));
  writer.equity_add(sample_point(kT0, 100));
  {
    Ledger reader(path, store::OpenMode::existing);
    EXPECT_TRUE(reader.orders().empty()) << "another connection saw an uncommitted cycle";
    EXPECT_TRUE(reader.equity_curve().empty());
  }
  writer.commit();
  {
    Ledger reader(path, store::OpenMode::existing);
    EXPECT_EQ(reader.orders().size(), 1u);
    EXPECT_EQ(reader.equity_curve().size(), 1u);
  }
  {
    Ledger crashed(path);  // the writer holds no transaction between cycles, so another writer may begin one
    crashed.order_put(sample_order(2));
    crashed.meta_put("half", "cycle");
  }  // closed without commit(): the cycle is rolled back
  EXPECT_EQ(writer.orders().size(), 1u);
  EXPECT_FALSE(writer.meta_get("half").has_value());
}

// The child of the kill -9 test: cycles of an order, a fill, an equity point and the cycle number, each committed and
// then acknowledged on the pipe. Never returns.
[[noreturn]] void ledger_writer_child(const std::string& path, int ack_fd) {
  try {
    Ledger ledger(path);
    for (std::uint64_t cycle = 1;; ++cycle) {
      OrderRecord o = sample_order(cycle);
      o.detail = std::string(200, 'd');  // rows big enough that cycles span pages
      ledger.order_put(o);
      ledger.fill_add(sample_fill(cycle, cycle, 0.5));
      ledger.equity_add(sample_point(kT0 + static_cast<TimeNs>(cycle), 1000.0 + static_cast<double>(cycle)));
      ledger.meta_put("cycle", std::to_string(cycle));
      ledger.commit();
      if (::write(ack_fd, &cycle, sizeof cycle) != static_cast<ssize_t>(sizeof cycle)) _exit(4);
    }
  } catch (...) {
    _exit(2);
  }
}

TEST(Ledger, SigkillBetweenCommitsLeavesAWholeNumberOfCommittedCycles) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  const std::uint64_t last_acked = test::sigkill_after_acks(300, [&](int ack_fd) { ledger_writer_child(path, ack_fd); });
  ASSERT_GE(last_acked, 300u);

  // A plain connection first: the file is intact (it also recovers the WAL, as a restart would).
  test::expect_sqlite_intact(path);

  Ledger ledger(path, store::OpenMode::existing);
  const auto orders = ledger.orders();
  const auto fills = ledger.fills();
  const auto curve = ledger.equity_curve();
  const std::uint64_t cycles = orders.size();
  EXPECT_GE(cycles, last_acked) << "an acknowledged (committed) cycle was lost";
  EXPECT_LE(cycles, last_acked + 1) << "more cycles stored than the child could have committed";
  // Whole cycles only: every table holds the same cycles 1..N.
  EXPECT_EQ(fills.size(), cycles);
  EXPECT_EQ(curve.size(), cycles);
  EXPECT_EQ(ledger.meta_get("cycle"), std::to_string(cycles));
  EXPECT_EQ(ledger.order_id_max(), cycles);
  ASSERT_FALSE(curve.empty());
  EXPECT_EQ(curve.back().equity, 1000.0 + static_cast<double>(cycles));
}

TEST(Ledger, AnotherStoresFileIsRefusedNamingThePathAndWhatWasExpected) {
  test::TempDir dir;
  const std::string path = dir.file("policy.db");
  { SqlitePolicyBackend policy(path); }
  try {
    Ledger ledger(path);
    FAIL() << "a policy database was opened as a ledger";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("policy database"));
    EXPECT_THAT(e.what(), HasSubstr("expected a qtos trading ledger"));
  }
  // A SQLite file of someone else (tables, no application id) and a file that is not a database at all.
  const std::string foreign = dir.file("foreign.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE orders (id INTEGER)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  try {
    Ledger ledger(foreign);
    FAIL() << "a foreign SQLite file was opened as a ledger";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(foreign));
    EXPECT_THAT(e.what(), HasSubstr("foreign schema"));
  }
  const std::string text = dir.file("notes.txt");
  std::ofstream(text) << std::string(5000, 'x');
  try {
    Ledger ledger(text);
    FAIL() << "a text file was opened as a ledger";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(text));
    EXPECT_TRUE(e.damaged());
  }
}

TEST(Ledger, ExistingModeOnAMissingFileFailsAndCreatesNothing) {
  test::TempDir dir;
  const std::string path = dir.file("missing.db");
  try {
    Ledger ledger(path, store::OpenMode::existing);
    FAIL() << "a missing ledger was opened";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("does not exist"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Ledger, ADamagedLedgerFailsLoudlyNamingThePath) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  {
    Ledger ledger(path);
    for (std::uint64_t id = 1; id <= 400; ++id) {
      OrderRecord o = sample_order(id);
      o.detail = std::string(300, 'z');
      ledger.order_put(o);
    }
    ledger.commit();
  }  // closing checkpoints the WAL into the file
  const auto size = std::filesystem::file_size(path);
  ASSERT_GT(size, 4096u * 8);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    for (std::uint64_t page = 3; page * 4096 < size - 4096; page += 2) {
      f.seekp(static_cast<std::streamoff>(page * 4096));
      const std::string junk(4096, '\x5a');
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
  }
  try {
    Ledger ledger(path, store::OpenMode::existing);
    (void)ledger.orders();
    FAIL() << "a damaged ledger read as if healthy";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_TRUE(e.damaged()) << e.what();
  }
}

TEST(Ledger, ALedgerOfANewerVersionIsRefused) {
  test::TempDir dir;
  const std::string path = dir.file("ledger.db");
  { Ledger ledger(path); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 2", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    Ledger ledger(path);
    FAIL() << "a newer ledger was opened";
  } catch (const store::StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("newer"));
  }
}

TEST(Ledger, InMemoryLedgersAreIndependentAndLeaveNoFile) {
  test::TempDir dir;
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());  // a file named ":memory:" would appear here if one were created
  {
    Ledger a(":memory:"), b(":memory:");
    EXPECT_EQ(a.path(), ":memory:");
    a.order_put(sample_order(1));
    a.commit();
    EXPECT_EQ(a.orders().size(), 1u);
    EXPECT_TRUE(b.orders().empty());
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  std::filesystem::current_path(cwd);
}

// The replay's hot path: a few thousand orders and fills, one equity point per bar time, a commit per cycle. Prints the
// rate; asserts only a bound no healthy build misses (sanitizer builds included).
TEST(Ledger, HotPathWritesAreFast) {
  test::TempDir dir;
  Ledger ledger(dir.file("ledger.db"));
  const int cycles = 20000;
  OrderRecord o = sample_order(1);
  o.trace.clear();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= cycles; ++i) {
    if (i % 10 == 0) {
      o.request.order_id = static_cast<std::uint64_t>(i);
      ledger.order_put(o);
      ledger.fill_add(sample_fill(o.request.order_id, static_cast<std::uint64_t>(i), 0.1));
    }
    ledger.equity_add(sample_point(kT0 + i, 1000.0 + i));
    ledger.commit();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ ledger ] %d cycles (equity point + commit, an order and a fill every 10th) in %.3f s: %.0f cycles/s\n", cycles, s,
              cycles / s);
  EXPECT_LT(s, 30.0);
  EXPECT_EQ(ledger.equity_curve().size(), static_cast<std::size_t>(cycles));
}

}  // namespace ledger_test
}  // namespace qtos
