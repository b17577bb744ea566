// `qtos serve` through the real binary: the dashboard address printed first, the OS trading behind the API, the brake,
// the risk mode, a policy update with its version, the stage and a subsystem's mode driven over HTTP and seen in
// /health/ai, /policy and /events, Prometheus metrics, a job, and a clean stop on SIGTERM (exit 0, the ledger intact).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <set>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "runtime/analytics/ledger.hpp"
#include "runtime/bus/event_log.hpp"
#include "tests/support/crash_child.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_request.hpp"
#include "tests/support/qtos_process.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace serve_test {

namespace json = boost::json;
using test::TempDir;

using Reply = test::HttpReply;
using test::http;

/// The demo's market, small: 10 symbols x 2000 hourly bars, 300 of them warm-up.
const std::vector<std::string> kDemo = {"--symbols", "10", "--bars", "2000", "--warmup", "300"};

class Serve : public ::testing::Test {
 protected:
  void SetUp() override { launch({"--speed", "3600"}); }
  /// Starts `qtos serve` on the fixture's state directory with the demo market and `args`, and waits until it trades.
  void launch(const std::vector<std::string>& args, bool wait_ready = true) {
    port_ = 0;
    std::vector<std::string> argv = {"serve", "--state-dir", dir_.file("state"), "--port", "0"};
    argv.insert(argv.end(), kDemo.begin(), kDemo.end());
    argv.insert(argv.end(), args.begin(), args.end());
    proc_.reset();
    proc_.emplace(argv, test::QtosProcessOptions{.capture_stderr = false});  // stdout: what the user reads first
    port_ = proc_->dashboard_port();
    ASSERT_NE(port_, 0) << proc_->output();
    token_ = test::slurp(dir_.file("state") + "/api_token");
    while (!token_.empty() && (token_.back() == '\n' || token_.back() == '\r' || token_.back() == ' ')) token_.pop_back();
    ASSERT_FALSE(token_.empty());
    // Ready once the warm-up is over and the OS trades.
    if (wait_ready && !test::eventually([&] { return http(port_, "GET", "/health/ai").status == 200; }, std::chrono::seconds(30),
                                        std::chrono::milliseconds(100)))
      FAIL() << "never ready";
  }
  void TearDown() override { kill9(); }
  /// SIGKILL (nothing flushed, nothing finished).
  void kill9() {
    if (proc_) proc_->kill9();
  }
  /// The exit status once it exits on its own (-1 when it did not within `seconds`).
  int wait_exit(int seconds) { return proc_->wait_exit(std::chrono::seconds(seconds)); }
  /// What it printed (all of it once it has exited).
  std::string output() const { return proc_ ? proc_->output() : std::string(); }
  /// SIGTERM, then the exit status (-1 when it did not exit within 20 s).
  int terminate() { return proc_->terminate(); }

  TempDir dir_;
  std::optional<test::QtosProcess> proc_;
  std::uint16_t port_ = 0;
  std::string token_;
};

json::value body_json(const Reply& r) { return r.json(); }

TEST_F(Serve, TheOsTradesBehindTheApiAndIsDrivenOverHttp) {
  EXPECT_EQ(output().rfind("qtos serve: dashboard http://127.0.0.1:", 0) == std::string::npos &&
                output().find("\nqtos serve: dashboard") == std::string::npos,
            false)
      << output();
  // Reads.
  Reply r = http(port_, "GET", "/health");
  EXPECT_EQ(r.status, 200);
  json::value ai = body_json(http(port_, "GET", "/health/ai"));
  ASSERT_TRUE(ai.is_object()) << r.body;
  EXPECT_EQ(ai.at("integration_stage").as_string(), "COORDINATION");
  EXPECT_EQ(ai.at("emergency_brake").as_bool(), false);
  EXPECT_EQ(ai.at("services").at("AI-HFOS").at("mode").as_string(), "ENFORCED");
  EXPECT_EQ(ai.at("services").at("MSC-AI").at("mode").as_string(), "ENFORCED");
  // It trades: orders appear within a few seconds of replay.
  bool traded = false;
  for (int i = 0; i < 100 && !traded; ++i) {
    const json::value orders = body_json(http(port_, "GET", "/orders?limit=5"));
    traded = orders.is_array() && !orders.as_array().empty();
    if (!traded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(traded);
  const json::value system = body_json(http(port_, "GET", "/analytics/system"));
  ASSERT_TRUE(system.is_object());
  EXPECT_GT(system.at("equity").to_number<double>(), 0);
  EXPECT_FALSE(system.at("curve").as_array().empty());
  EXPECT_TRUE(body_json(http(port_, "GET", "/strategies")).is_array());
  EXPECT_TRUE(body_json(http(port_, "GET", "/positions")).is_array());
  const Reply metrics = http(port_, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  for (const char* m : {"qtos_equity ", "qtos_orders_total{outcome=\"submitted\"}", "qtos_subsystem_decisions_total{subsystem=\"PIL\"}",
                        "qtos_bus_queue_depth "})
    EXPECT_NE(metrics.body.find(m), std::string::npos) << m;

  // The brake: refused without the token, applied with it, seen in /health/ai and the event feed.
  EXPECT_EQ(http(port_, "POST", "/emergency-brake", "", R"({"on": true})").status, 401);
  r = http(port_, "POST", "/emergency-brake", token_, R"({"on": true, "reason": "serve test"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ai = body_json(http(port_, "GET", "/health/ai"));
  EXPECT_EQ(ai.at("emergency_brake").as_bool(), true);
  EXPECT_EQ(ai.at("trading_state").as_string(), "HALTED");
  const json::value events = body_json(http(port_, "GET", "/events?since=0&limit=10000"));
  bool brake_event = false;
  for (const auto& e : events.at("events").as_array())
    brake_event = brake_event || (e.at("type").as_string() == "EmergencyBrakeChanged" && e.at("data").at("engaged").as_bool());
  EXPECT_TRUE(brake_event);
  r = http(port_, "POST", "/emergency-brake", token_, R"({"on": false, "reason": "serve test over"})");
  EXPECT_EQ(r.status, 200) << r.body;

  // The policy: a stale version is a conflict and changes nothing; the current one applies; the risk mode too.
  json::value policy = body_json(http(port_, "GET", "/policy"));
  const std::uint64_t version = policy.at("version").to_number<std::uint64_t>();
  r = http(port_, "PUT", "/policy", token_, R"({"expected_version": 1, "max_open_positions": 3})");
  if (version != 1) {
    EXPECT_EQ(r.status, 409) << r.body;
  }
  // MSC may write the policy between a read and a write: a conflict is retried with the version read again.
  auto put = [&](const std::string& fields) {
    Reply out;
    for (int i = 0; i < 5; ++i) {
      const std::uint64_t v = body_json(http(port_, "GET", "/policy")).at("version").to_number<std::uint64_t>();
      out = http(port_, "PUT", "/policy", token_, R"({"expected_version": )" + std::to_string(v) + ", " + fields + "}");
      if (out.status != 409) break;
    }
    return out;
  };
  r = put(R"("max_open_positions": -2)");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_NE(r.body.find("max_open_positions"), std::string::npos) << r.body;
  const json::value after_bad = body_json(http(port_, "GET", "/policy"));
  EXPECT_GE(after_bad.at("max_open_positions").to_number<std::int64_t>(), 0);  // the store unchanged by the bad value
  r = put(R"("max_open_positions": 3)");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(http(port_, "GET", "/policy")).at("max_open_positions").to_number<std::int64_t>(), 3);
  r = http(port_, "POST", "/policy/risk-mode", token_, R"({"risk_mode": "DEFENSIVE"})");
  EXPECT_EQ(r.status, 200) << r.body;
  r = http(port_, "POST", "/policy/risk-mode", token_, R"({"risk_mode": "YOLO"})");
  EXPECT_EQ(r.status, 422) << r.body;

  // The stage and a subsystem's mode, seen in /health/ai at once.
  r = http(port_, "POST", "/stage", token_, R"({"stage": "PARTIAL"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ai = body_json(http(port_, "GET", "/health/ai"));
  EXPECT_EQ(ai.at("integration_stage").as_string(), "PARTIAL");
  EXPECT_EQ(ai.at("services").at("PIL").at("mode").as_string(), "OFF");
  EXPECT_EQ(ai.at("services").at("AI-HFOS").at("mode").as_string(), "ADVISORY");
  r = http(port_, "POST", "/subsystems/PIL/mode", token_, R"({"mode": "ENFORCED"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(http(port_, "GET", "/health/ai")).at("services").at("PIL").at("mode").as_string(), "ENFORCED");

  // A job: a ranking of the data up to now.
  r = http(port_, "POST", "/jobs/rank", token_, R"({})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string job = std::string(body_json(r).at("id").as_string());
  json::value j;
  for (int i = 0; i < 100; ++i) {
    j = body_json(http(port_, "GET", "/jobs/" + job));
    if (j.is_object() && j.at("state").as_string() != "RUNNING") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("state").as_string(), "DONE") << json::serialize(j);
  EXPECT_FALSE(j.at("result").at("top").as_array().empty());

  // Opportunities carry the ranker's sub-scores.
  json::value opp;
  for (int i = 0; i < 100; ++i) {
    opp = body_json(http(port_, "GET", "/opportunities"));
    if (opp.is_object() && !opp.at("top").as_array().empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(opp.is_object() && !opp.at("top").as_array().empty()) << json::serialize(opp);
  const json::object& best = opp.at("top").as_array()[0].as_object();
  EXPECT_EQ(best.at("rank").to_number<int>(), 1);
  for (const char* c : {"trend", "volatility", "liquidity", "performance"}) EXPECT_TRUE(best.at("sub_scores").as_object().contains(c)) << c;

  // Models: a retrain job on the bars replayed so far registers a CANDIDATE; promotions move it to SHADOW, then ACTIVE,
  // and the promotion to ACTIVE reaches the event feed.
  EXPECT_TRUE(body_json(http(port_, "GET", "/models")).at("models").as_array().empty());
  EXPECT_FALSE(std::filesystem::exists(dir_.file("state") + "/models/registry.db")) << "a GET created the registry";
  EXPECT_EQ(http(port_, "POST", "/jobs/retrain", token_, R"({"params": {"model": "svm"}})").status, 422);
  EXPECT_EQ(http(port_, "POST", "/models/mlp/promote", token_, "{}").status, 404);
  r = http(port_, "POST", "/jobs/retrain", token_, R"({"params": {"model": "mlp", "epochs": 1, "name": "serve_mlp"}})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string retrain = std::string(body_json(r).at("id").as_string());
  json::value rj;
  for (int i = 0; i < 600; ++i) {
    rj = body_json(http(port_, "GET", "/jobs/" + retrain));
    if (rj.is_object() && rj.at("state").as_string() != "RUNNING") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(rj.at("state").as_string(), "DONE") << json::serialize(rj);
  // At most two jobs at once beside the trading loop: a third start is refused with the reason, then cancels free it.
  std::vector<std::string> slow;
  for (int i = 0; i < 2; ++i) {
    r = http(port_, "POST", "/jobs/evolve", token_, R"({"params": {"population": 400, "generations": 1000}})");
    ASSERT_EQ(r.status, 202) << r.body;
    slow.push_back(std::string(body_json(r).at("id").as_string()));
  }
  r = http(port_, "POST", "/jobs/rank", token_, "{}");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("DELETE /jobs/"), std::string::npos) << r.body;
  for (const std::string& id : slow) EXPECT_EQ(http(port_, "DELETE", "/jobs/" + id, token_).status, 200);
  for (const std::string& id : slow)
    for (int i = 0; i < 200 && body_json(http(port_, "GET", "/jobs/" + id)).at("state").as_string() == "RUNNING"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(rj.at("result").at("status").as_string(), "CANDIDATE");
  json::value models = body_json(http(port_, "GET", "/models"));
  ASSERT_EQ(models.at("models").as_array().size(), 1u) << json::serialize(models);
  EXPECT_EQ(models.at("models").as_array()[0].at("name").as_string(), "serve_mlp");
  r = http(port_, "POST", "/models/serve_mlp/promote", token_, "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(r).at("status").as_string(), "SHADOW");
  r = http(port_, "POST", "/models/serve_mlp/promote", token_, "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_json(r).at("status").as_string(), "ACTIVE");
  bool promoted = false;
  for (std::uint64_t since = 0;;) {  // page through the feed
    const json::value page = body_json(http(port_, "GET", "/events?since=" + std::to_string(since) + "&limit=10000"));
    ASSERT_TRUE(page.is_object());
    const json::array& feed = page.at("events").as_array();
    if (feed.empty()) break;
    for (const auto& e : feed)
      promoted = promoted || (e.at("type").as_string() == "ModelPromoted" && e.at("data").at("model").as_string() == "serve_mlp");
    since = feed.back().at("id").to_number<std::uint64_t>();
  }
  EXPECT_TRUE(promoted);
  EXPECT_EQ(http(port_, "POST", "/models/serve_mlp/promote", token_, "{}").status, 404);  // nothing left to promote

  // A clean stop: SIGTERM finishes the bar, flushes the ledger, exits 0.
  EXPECT_EQ(terminate(), 0);
  const std::string rest = output();
  EXPECT_NE(rest.find("stopped by SIGTERM"), std::string::npos) << rest.substr(rest.size() > 2000 ? rest.size() - 2000 : 0);
  for (const auto& run : std::filesystem::directory_iterator(dir_.file("state") + "/runs")) test::expect_sqlite_intact((run.path() / "ledger.db").string());
  test::expect_sqlite_intact(dir_.file("state") + "/policy.db");
}


TEST_F(Serve, ASigkilledServiceResumesItsRunWithNothingLostOrDoubled) {
  // Trading for a while: orders and open positions in the ledger, then SIGKILL (no flush, no clean stop).
  bool busy = false;
  for (int i = 0; i < 200 && !busy; ++i) {
    const json::value pos = body_json(http(port_, "GET", "/positions"));
    const json::value trades = body_json(http(port_, "GET", "/trades"));
    busy = pos.is_array() && !pos.as_array().empty() && trades.is_array() && trades.as_array().size() >= 2;
    if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(busy) << "no open position and two trades within 20 s";
  kill9();
  const std::string run = test::slurp(dir_.file("state") + "/current_run");
  ASSERT_FALSE(run.empty());
  const std::string run_dir = dir_.file("state") + "/runs/" + run.substr(0, run.find('\n'));
  std::map<std::uint64_t, OrderStatus> before;  // what the killed process had committed
  std::vector<std::uint64_t> open_before;
  {
    const Ledger l(run_dir + "/ledger.db", store::OpenMode::existing);
    for (const OrderRecord& o : l.orders()) before[o.request.order_id] = o.status;
    for (const PositionRecord& p : l.positions()) open_before.push_back(p.position_id);
  }
  ASSERT_FALSE(before.empty());

  // Another market on the same state directory is refused before anything starts: resuming would mix two markets.
  const test::CommandResult other = test::run_qtos("serve --state-dir '" + dir_.file("state") + "' --port 0 --symbols 10 --bars 2000 --warmup 300 --seed 8",
                                                   dir_.path());
  EXPECT_EQ(other.exit_code, 2) << other.out << other.err;
  EXPECT_NE(other.err.find("--new-run"), std::string::npos) << other.err;

  // Started again on the same state directory, as fast as it goes: the same run continues to the end of the market.
  launch({"--speed", "0"}, false);
  ASSERT_EQ(wait_exit(120), 0) << output();
  kill9();  // (reaps nothing: it has exited; ends the output)
  EXPECT_NE(output().find("resuming run " + run_dir + " at bar"), std::string::npos) << output();
  EXPECT_NE(output().find("market replay finished"), std::string::npos) << output();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.file("state") + "/runs"), std::filesystem::directory_iterator{}), 1)
      << "a second run was started";

  const Ledger l(run_dir + "/ledger.db", store::OpenMode::existing);
  EXPECT_TRUE(l.meta_get("finished").has_value());
  // Nothing lost: every order committed before the kill is still there, none went back to an earlier state, and every
  // position open at the kill was closed by the resumed run.
  std::map<std::uint64_t, OrderStatus> after;
  for (const OrderRecord& o : l.orders()) after[o.request.order_id] = o.status;
  for (const auto& [id, status] : before) {
    ASSERT_TRUE(after.count(id)) << "order " << id << " lost";
    if (order_status_final(status)) {
      EXPECT_EQ(after[id], status) << "order " << id;
    }
  }
  EXPECT_TRUE(l.positions().empty());
  std::set<std::uint64_t> closed;
  for (const ClosedTrade& t : l.trades()) EXPECT_TRUE(closed.insert(t.position_id).second) << "position " << t.position_id << " closed twice";
  for (std::uint64_t id : open_before) EXPECT_TRUE(closed.count(id)) << "position " << id << " open at the kill was never closed";
  // Nothing doubled: one equity point per bar time, in order; each fill once.
  const std::vector<EquityPoint> curve = l.equity_curve();
  EXPECT_EQ(curve.size(), 2000u);
  for (std::size_t i = 1; i < curve.size(); ++i) ASSERT_LT(curve[i - 1].ts, curve[i].ts) << i;
  std::set<std::uint64_t> fills;
  for (const FillRecord& f : l.fills()) EXPECT_TRUE(fills.insert(f.fill.fill_id).second) << "fill " << f.fill.fill_id << " twice";
  // The event log: ids rising across the restart, every order submitted once, every bar time's bars once.
  EventLogReader reader(run_dir + "/events.qel");
  std::uint64_t last_id = 0, bars = 0;
  std::set<std::uint64_t> submitted;
  std::set<std::pair<std::string, TimeNs>> bar_keys;
  for (;;) {
    auto r = reader.next();
    ASSERT_TRUE(r.ok());
    if (!r.value()) break;
    std::visit(
        [&](const auto& e) {
          using E = std::decay_t<decltype(e)>;
          EXPECT_GT(e.header.id, last_id);
          last_id = e.header.id;
          if constexpr (std::is_same_v<E, MarketBarClosed>) {
            ++bars;
            EXPECT_TRUE(bar_keys.insert({e.symbol.str(), e.open_time}).second) << e.symbol.str() << " bar at " << e.open_time << " twice";
          }
          if constexpr (std::is_same_v<E, OrderSubmitted>) {
            EXPECT_TRUE(submitted.insert(e.order_id).second) << "order " << e.order_id << " submitted twice";
          }
        },
        *r.value());
  }
  EXPECT_GT(bars, 10u * 1500u);
  test::expect_sqlite_intact(run_dir + "/ledger.db");

  // The next start begins a new run: this one has finished.
  launch({"--speed", "3600", "--max-bars", "5"});
  EXPECT_EQ(output().find("resuming"), std::string::npos) << output();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.file("state") + "/runs"), std::filesystem::directory_iterator{}), 2);
}

}  // namespace serve_test
}  // namespace qtos
