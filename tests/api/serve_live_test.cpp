// `qtos serve --exchange binance-futures --env testnet` through the real binary against the fake venue on loopback
// (TLS, its certificate trusted through QT_BINANCE_CA_FILE, its URLs through QT_BINANCE_REST_URL/QT_BINANCE_STREAM_URL):
// it reconciles before trading, warms up on bars read over REST, trades the bars of the kline stream, its orders reach
// the venue and their fills the ledger; SIGTERM stops it with exit 0; a restart continues the same run (same
// client-order-id prefix, the checkpoint's positions) and reconciles without sending anything twice. The venue's
// trade queries fail throughout, so every fill in the ledger came through the user data stream.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "tests/api/binance_fake_server.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/qtos_process.hpp"
#include "tests/support/run_command.hpp"

#if defined(QTOS_HAVE_BINANCE)

namespace qtos {
namespace serve_live_test {

namespace json = boost::json;
constexpr std::int64_t kHour = 3'600'000;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A strategy that trades every other bar on a rising market: long while ROC > 0, out after one bar.
kernels::Genome busy_genome() {
  kernels::Genome g;
  g.entry[0].kind = static_cast<std::int32_t>(kernels::CondKind::mom_up);
  g.op = static_cast<std::int32_t>(kernels::EntryOp::single);
  g.side = static_cast<std::int32_t>(kernels::Side::long_only);
  g.max_hold = 1;
  g.stop_atr = 2.0f;  // a stop bounds the risk per trade (the policy refuses an entry with its whole notional at risk)
  g.size = 0.2f;
  return kernels::genome_normalize(g);
}

class ServeLive : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.price_set("BTCUSDT", 100.0);
    // Fills reach the ledger through the user data stream only: the venue pushes each trade, and every REST trade
    // query fails (a fill applied from REST would hide a broken stream path).
    fake_.user_events_set(true);
    fake_.marketable_limits_set(true);
    test::FakeFault down;
    down.kind = test::FakeFault::Kind::http_status;
    down.status = 503;
    for (int i = 0; i < 200; ++i) fake_.fault("GET /fapi/v1/userTrades", down);
    now_open_ = wall_ms() / kHour * kHour;
    // 60 closed hourly bars before now, rising: the warm-up read over REST.
    for (int i = 60; i >= 1; --i) fake_.kline_add("BTCUSDT", now_open_ - i * kHour, kHour, 90.0 + (60 - i) * 0.1);
    std::filesystem::create_directories(dir_.file("state"));
    StrategyRepository repo(dir_.file("state") + "/strategies.db");
    StrategyRecord rec;
    rec.genome = busy_genome();
    rec.origin = "serve_live_test";
    repo.upsert(rec, 0);
    const std::string id = genome_id(rec.genome);
    ASSERT_TRUE(repo.transition(id, StrategyStatus::shadow, "test", 0).ok());
    ASSERT_TRUE(repo.transition(id, StrategyStatus::live, "test", 0).ok());
  }
  void TearDown() override {
    if (proc_) proc_->kill9();
  }

  /// Starts the binary against the fake venue (a clean environment: nothing of the user's QT_* settings).
  void launch() {
    const std::string url = "localhost:" + std::to_string(fake_.port());
    proc_.reset();
    proc_.emplace(std::vector<std::string>{"serve", "--exchange", "binance-futures", "--env", "testnet", "--state-dir", dir_.file("state"),
                                           "--port", "0", "--warmup", "50"},
                  test::QtosProcessOptions{
                      .env = {"PATH=/usr/bin:/bin", "HOME=" + dir_.path().string(), "QT_BINANCE_API_KEY=live-key",
                              "QT_BINANCE_API_SECRET=live-secret", "QT_BINANCE_KEY_ENV=testnet", "QT_BINANCE_SYMBOLS=BTCUSDT",
                              "QT_BINANCE_REST_URL=https://" + url, "QT_BINANCE_STREAM_URL=wss://" + url,
                              "QT_BINANCE_CA_FILE=" + fake_.ca_file(), "QT_SG_AI_ENABLED=false", "QT_OPP_RANKER_ENABLED=false"},
                      .inherit_env = false});
  }
  std::string text() const { return proc_ ? proc_->output() : std::string(); }
  /// Waits until the output holds `what` `times` times (false after 20 s).
  bool wait_for(const std::string& what, int times = 1) const { return proc_->wait_for(what, times); }
  /// SIGTERM, then the exit status (-1 when it did not exit within 20 s).
  int terminate() { return proc_->terminate(); }
  /// Waits until the fake has accepted `n` WebSocket connections.
  bool wait_streams(std::size_t n) {
    return test::eventually([&] { return fake_.ws_targets().size() >= n; }, std::chrono::seconds(10));
  }
  /// Pushes the closed hourly bar `i` (0 = the bar opening at the hour of the test's start) over the kline stream, and
  /// waits until the venue has seen the orders it should cause (the strategy enters on one bar and exits on the next).
  void push_bar(int i) {
    const double close = 96.0 + i * 0.1;
    const json::object k{{"t", now_open_ + i * kHour}, {"T", now_open_ + (i + 1) * kHour - 1}, {"s", "BTCUSDT"}, {"i", "1h"},
                         {"o", std::to_string(close - 0.05)}, {"h", std::to_string(close + 0.5)}, {"l", std::to_string(close - 0.5)},
                         {"c", std::to_string(close)}, {"v", "10"}, {"q", "1000"}, {"n", 50}, {"x", true}};
    const std::size_t before = fake_.orders().size();
    fake_.price_set("BTCUSDT", close);
    fake_.ws_send(json::serialize(json::object{{"stream", "btcusdt@kline_1h"}, {"data", json::object{{"e", "kline"}, {"s", "BTCUSDT"}, {"k", k}}}}));
    // Every bar makes orders here: an entry (a limit order, then its protective stop once the fill is in) when flat,
    // the exit (the stop cancelled, a market order) after one bar. Wait for the first, then for 300 ms of quiet.
    for (int w = 0; w < 500 && fake_.orders().size() == before; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::size_t n = fake_.orders().size();
    for (int quiet = 0; quiet < 30;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (fake_.orders().size() != n) {
        n = fake_.orders().size();
        quiet = 0;
      } else {
        ++quiet;
      }
    }
  }
  std::string run_dir() {
    std::string name = test::slurp(dir_.file("state") + "/current_live_run");
    while (!name.empty() && name.back() == '\n') name.pop_back();
    return dir_.file("state") + "/runs/" + name;
  }
  /// The ledger's fills per client order id, and the net position they make.
  void expect_ledger_matches_venue(const std::string& prefix) {
    const Ledger ledger(run_dir() + "/ledger.db", store::OpenMode::existing);
    std::map<std::int64_t, double> venue_filled;  // venue order id -> traded quantity
    for (const test::FakeTrade& t : fake_.trades()) venue_filled[t.order_id] += t.qty;
    std::set<std::string> client_ids;
    double ledger_net = 0;
    for (const test::FakeOrder& o : fake_.orders()) {
      EXPECT_TRUE(client_ids.insert(o.client_id).second) << "client id sent twice: " << o.client_id;
      ASSERT_EQ(o.client_id.rfind(prefix + "-", 0), 0u) << o.client_id;
      const std::uint64_t id = std::stoull(o.client_id.substr(prefix.size() + 1));
      const auto rec = ledger.order_get(id);
      ASSERT_TRUE(rec.has_value()) << "the venue's order " << o.client_id << " is not in the ledger";
      double filled = 0;
      for (const FillRecord& f : ledger.fills(id)) filled += f.fill.qty;
      EXPECT_NEAR(filled, venue_filled[o.order_id], 1e-9) << o.client_id;
      ledger_net += (o.side == "BUY" ? 1 : -1) * filled;
    }
    EXPECT_NEAR(ledger_net, fake_.position("BTCUSDT"), 1e-9);
    double open_qty = 0;
    for (const PositionRecord& p : ledger.positions()) open_qty += p.side == Side::buy ? p.qty : -p.qty;
    EXPECT_NEAR(open_qty, fake_.position("BTCUSDT"), 1e-9) << "the ledger's open positions against the venue's";
  }

  test::FakeBinance fake_{true, "live-key", "live-secret"};
  test::TempDir dir_;
  std::int64_t now_open_ = 0;
  std::optional<test::QtosProcess> proc_;
};

TEST_F(ServeLive, TradesTheFakeVenueStopsOnSigtermAndResumesWithoutDuplicates) {
  launch();
  ASSERT_TRUE(wait_for("venue reconciled: trading")) << text();
  ASSERT_TRUE(wait_streams(2)) << "the kline stream and the user stream";
  std::set<std::string> targets;
  for (const std::string& t : fake_.ws_targets()) targets.insert(t.substr(0, t.find('?')) + (t.find("kline_1h") != std::string::npos ? "+kline" : ""));
  EXPECT_EQ(targets, (std::set<std::string>{"/stream+kline", "/ws/lk1"})) << "the kline stream and the user stream (listenKey lk1)";
  // The warm-up is read once the kline stream is open (the fake sees the stream's handshake first).
  EXPECT_TRUE(test::eventually([&] { return fake_.count("GET /fapi/v1/klines") >= 1; })) << "the warm-up is read over REST";
  EXPECT_EQ(fake_.orders().size(), 0u) << "warm-up bars (closed before the start) do not trade";
  for (int i = 0; i < 3; ++i) push_bar(i);
  EXPECT_EQ(fake_.orders().size(), 5u) << "entry + stop, exit, entry + stop\n" << text();
  // Both streams dropped: the user stream comes back with a new listenKey and the venue is reconciled again before
  // trading resumes.
  fake_.ws_drop();
  ASSERT_TRUE(wait_for("trading halted until the venue is reconciled")) << text();
  ASSERT_TRUE(wait_for("venue reconciled: trading", 2)) << text();
  ASSERT_TRUE(wait_streams(4)) << "both streams reconnect";
  EXPECT_EQ(fake_.ws_targets().size(), 4u);
  for (int i = 3; i < 5; ++i) push_bar(i);
  const std::size_t first_orders = fake_.orders().size();
  EXPECT_EQ(first_orders, 8u) << "exit, entry + stop\n" << text();
  EXPECT_GT(fake_.position("BTCUSDT"), 0.0) << "the entry of the fifth bar is open at the stop";
  const test::FakeOrder resting = fake_.orders().back();
  EXPECT_EQ(resting.type, "STOP_MARKET");
  EXPECT_EQ(resting.status, "NEW");
  EXPECT_EQ(terminate(), 0) << text();
  const std::string prefix = text().substr(text().find("client order ids ") + 17, text().find("-<n>") - text().find("client order ids ") - 17);
  ASSERT_FALSE(prefix.empty());
  expect_ledger_matches_venue(prefix);
  EXPECT_EQ(fake_.count("GET /fapi/v1/openOrders"), 3) << "start(), the owner's reconciliation and the one after the reconnect";

  // A restart continues the run: reconciled before trading, nothing sent again, the open position exits on the next bar.
  const std::size_t ws_before = fake_.ws_targets().size();
  launch();
  ASSERT_TRUE(wait_for("venue reconciled: trading")) << text();
  EXPECT_NE(text().find("(resumed)"), std::string::npos) << text();
  EXPECT_NE(text().find("client order ids " + prefix + "-<n>"), std::string::npos) << "the run keeps its prefix";
  ASSERT_TRUE(wait_streams(ws_before + 2));
  EXPECT_EQ(fake_.orders().size(), first_orders) << "a restart sends nothing by itself";
  for (int i = 5; i < 8; ++i) push_bar(i);
  EXPECT_EQ(fake_.orders().size(), first_orders + 4) << "exit, entry + stop, exit\n" << text();
  for (const test::FakeOrder& o : fake_.orders())
    if (o.client_id == resting.client_id) {
      EXPECT_EQ(o.status, "CANCELED") << "the stop resting across the restart is cancelled by the exit";
    }
  EXPECT_EQ(fake_.position("BTCUSDT"), 0.0);
  EXPECT_EQ(terminate(), 0) << text();
  EXPECT_EQ(text().find("Duplicate order"), std::string::npos) << text();
  expect_ledger_matches_venue(prefix);
}

TEST_F(ServeLive, ReplayOptionsAndMissingSymbolsAreRefused) {
  const std::string url = "https://localhost:" + std::to_string(fake_.port());
  std::map<std::string, std::string> env = {{"QT_BINANCE_API_KEY", "live-key"}, {"QT_BINANCE_API_SECRET", "live-secret"},
                                            {"QT_BINANCE_KEY_ENV", "testnet"}, {"QT_BINANCE_REST_URL", url},
                                            {"QT_BINANCE_CA_FILE", fake_.ca_file()}};
  const std::string base = "serve --exchange binance-futures --env testnet --port 0 --state-dir '" + dir_.file("state") + "'";
  auto r = test::run_qtos(base, dir_.path(), env);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("QT_BINANCE_SYMBOLS"), std::string::npos) << r.out << r.err;
  env["QT_BINANCE_SYMBOLS"] = "BTCUSDT";
  r = test::run_qtos(base + " --speed 60", dir_.path(), env);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("--data and --speed"), std::string::npos) << r.out << r.err;
  env["QT_BINANCE_KEY_ENV"] = "mainnet";
  r = test::run_qtos(base, dir_.path(), env);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("mainnet API key"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(fake_.orders().size(), 0u);
}

}  // namespace serve_live_test
}  // namespace qtos

#endif  // QTOS_HAVE_BINANCE
