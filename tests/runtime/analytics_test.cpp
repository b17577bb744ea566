// Analytics: metrics against hand-computed values on a small fixture, drawdown detection, deterministic downsampling,
// the JSON report (parsed with Boost.JSON) and the HTML report (five charts, self-contained, byte-identical across
// calls, bounded on long runs), and a headless browser rendering of the page when chromium is installed.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/analytics/metrics.hpp"
#include "runtime/analytics/report.hpp"
#include "runtime/util/atomic_file.hpp"
#include "runtime/util/time_format.hpp"
#include "tests/runtime/test_util.hpp"

namespace qtos {
namespace analytics_test {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr TimeNs kHour = 3'600'000'000'000;
const TimeNs kDay2 = days_from_civil(2024, 1, 1) * 24 * kHour;  // 2024-01-01 00:00 UTC

// ---- the fixture -------------------------------------------------------------------------------------------------
// Equity 100 -> 110 -> 99 -> 108.9 (returns +10 %, -10 %, +10 %), the first point on the previous UTC day; five trades.

std::vector<EquityPoint> fixture_curve() {
  return {
      {.ts = kDay2 - kHour, .equity = 100, .cash = 100, .exposure = 0, .open_positions = 0, .risk_mode = RiskMode::normal,
       .regime = Regime::unknown, .trading_state = "ACTIVE"},
      {.ts = kDay2 + kHour, .equity = 110, .cash = 60, .exposure = 0.5, .open_positions = 1, .risk_mode = RiskMode::aggressive,
       .regime = Regime::trending_up, .trading_state = "ACTIVE"},
      {.ts = kDay2 + 2 * kHour, .equity = 99, .cash = 80, .exposure = 0.25, .open_positions = 1,
       .risk_mode = RiskMode::defensive, .regime = Regime::high_volatility, .trading_state = "REDUCING"},
      {.ts = kDay2 + 3 * kHour, .equity = 108.9, .cash = 108.9, .exposure = 0, .open_positions = 0,
       .risk_mode = RiskMode::defensive, .regime = Regime::ranging, .trading_state = "HALTED"},
  };
}

ClosedTrade trade(std::uint64_t id, const char* strategy, const char* symbol, double pnl, double ret, TimeNs entry, TimeNs exit) {
  return {.position_id = id, .strategy = strategy, .symbol = symbol, .side = pnl > 5 ? Side::buy : Side::sell, .qty = 1,
          .entry_price = 100, .exit_price = 100 + pnl, .fees = 1, .pnl = pnl, .ret = ret, .entry_time = entry, .exit_time = exit,
          .reason = CloseReason::signal_exit, .classification = ""};
}

std::vector<ClosedTrade> fixture_trades() {
  const TimeNs h = kHour / 4;
  return {
      trade(1, "ema", "BTCUSDT", 10, 0.01, kDay2 - kHour, kDay2),
      trade(2, "model:xgb", "ETHUSDT", -4, -0.002, kDay2 - kHour + h, kDay2 + h),
      trade(3, "ema", "BTCUSDT", -5, -0.005, kDay2, kDay2 + kHour + h),
      trade(4, "model:xgb", "ETHUSDT", 2, 0.001, kDay2 + kHour, kDay2 + 2 * kHour),
      trade(5, "ema", "ETHUSDT", 20, 0.02, kDay2 + kHour + h, kDay2 + 3 * kHour),
  };
}

OrderRecord order(std::uint64_t id, OrderStatus status, std::optional<DenyReason> reason = std::nullopt, std::int32_t code = 0) {
  OrderRecord o;
  o.request.order_id = id;
  o.status = status;
  o.deny_reason = reason;
  o.venue_code = code;
  return o;
}

PriceSeries prices(const char* symbol, double base) {
  PriceSeries p{symbol, {}, {}};
  for (TimeNs t = kDay2 - kHour; t <= kDay2 + 3 * kHour; t += kHour / 2) {
    p.times.push_back(t);
    p.closes.push_back(base + std::sin(static_cast<double>(p.times.size())) * base * 0.05);
  }
  return p;
}

ReportInput fixture_input() {
  ReportInput in;
  in.title = "Replay <sample> & \"friends\"";
  in.run_info = {{"seed", "42"}, {"data", "data/sample"}, {"stage", "AUTONOMY"}, {"exchange", "paper"}};
  in.equity = fixture_curve();
  in.trades = fixture_trades();
  in.orders = {order(1, OrderStatus::filled),
               order(2, OrderStatus::filled),
               order(3, OrderStatus::denied, DenyReason::low_confidence),
               order(4, OrderStatus::denied, DenyReason::low_confidence),
               order(5, OrderStatus::denied, DenyReason::max_open_positions),
               order(6, OrderStatus::rejected, std::nullopt, -2010),
               order(7, OrderStatus::rejected, std::nullopt, -2010),
               order(8, OrderStatus::rejected, std::nullopt, -1013),
               order(9, OrderStatus::denied)};
  in.orders[4].repeats = 6;  // MAX_OPEN_POSITIONS denied 7 times in a row: one row
  in.prices = {prices("BTCUSDT", 40000), prices("ETHUSDT", 2000)};
  in.initial_equity = 100;
  in.bars_per_year = 100;
  return in;
}

constexpr double kTradesPerYearEma = 3.0 / (4.0 / (365.25 * 24.0));  // 3 trades over the curve's 4 hours
constexpr double kTradesPerYearModel = 2.0 / (4.0 / (365.25 * 24.0));

// ---- metrics -----------------------------------------------------------------------------------------------------

TEST(Analytics, SystemMetricsMatchHandComputedValues) {
  const auto curve = fixture_curve();
  const auto trades = fixture_trades();
  const SystemMetrics m = system_metrics(curve, trades, 100, 100);
  EXPECT_DOUBLE_EQ(m.equity, 108.9);
  EXPECT_NEAR(m.daily_pnl, 8.9, 1e-12);          // since 2024-01-01 00:00, whose last earlier point is 100
  EXPECT_NEAR(m.total_return, 0.089, 1e-12);
  // Returns 0.1, -0.1, 0.1: mean 1/30, sample sd 1/sqrt(75); x sqrt(100).
  EXPECT_NEAR(m.sharpe_ratio, 5.0 / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(m.max_drawdown, 0.1, 1e-12);       // 110 -> 99
  EXPECT_EQ(m.total_trades, 5);
  EXPECT_DOUBLE_EQ(m.win_rate, 0.6);
  EXPECT_DOUBLE_EQ(m.profit_factor, 32.0 / 9.0);  // (10 + 2 + 20) / (4 + 5)
  EXPECT_DOUBLE_EQ(m.fees, 5);
  EXPECT_EQ(m.active_positions, 0);
  EXPECT_EQ(m.risk_mode, RiskMode::defensive);
  EXPECT_EQ(m.regime, Regime::ranging);
}

TEST(Analytics, SystemMetricsOfEmptyAndOneSidedRecords) {
  const SystemMetrics empty = system_metrics({}, {}, 1000, 365);
  EXPECT_EQ(empty.equity, 1000);
  EXPECT_EQ(empty.total_return, 0);
  EXPECT_EQ(empty.sharpe_ratio, 0);
  EXPECT_EQ(empty.max_drawdown, 0);
  EXPECT_EQ(empty.profit_factor, 0);
  EXPECT_EQ(empty.win_rate, 0);
  std::vector<ClosedTrade> wins = {trade(1, "ema", "BTCUSDT", 3, 0.003, 0, 10)};
  EXPECT_TRUE(std::isinf(system_metrics({}, wins, 1000, 365).profit_factor));
  // The whole curve within one day: the day's P&L is measured from the initial equity.
  auto curve = fixture_curve();
  curve.erase(curve.begin());
  EXPECT_NEAR(system_metrics(curve, {}, 100, 100).daily_pnl, 8.9, 1e-12);
}

TEST(Analytics, GroupMetricsPerStrategyModelAndSymbol) {
  const auto trades = fixture_trades();
  const TimeNs span = metrics_span(fixture_curve(), trades);
  EXPECT_EQ(span, 4 * kHour);

  const auto strategies = metrics_by_strategy(trades, span);
  ASSERT_EQ(strategies.size(), 1u);
  const auto& ema = strategies[0];
  EXPECT_EQ(ema.strategy_id, "ema");
  EXPECT_EQ(ema.total_trades, 3);
  EXPECT_DOUBLE_EQ(ema.win_rate, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(ema.avg_profit, 25.0 / 3.0);
  // Returns 0.01, -0.005, 0.02: mean 1/120, sample sd sqrt(57)/600, so mean/sd = 5/sqrt(57).
  EXPECT_NEAR(ema.sharpe_ratio, 5.0 / std::sqrt(57.0) * std::sqrt(kTradesPerYearEma), 1e-9);
  // Allocation |10 / 0.01| = 1000; P&L 10 (peak) -> 5: (10 - 5) / (1000 + 10).
  EXPECT_NEAR(ema.max_drawdown, 5.0 / 1010.0, 1e-15);

  const auto models = metrics_by_model(trades, span);
  ASSERT_EQ(models.size(), 1u);
  const auto& xgb = models[0];
  EXPECT_EQ(xgb.strategy_id, "model:xgb");
  EXPECT_EQ(xgb.total_trades, 2);
  EXPECT_DOUBLE_EQ(xgb.win_rate, 0.5);
  EXPECT_DOUBLE_EQ(xgb.avg_profit, -1);
  // Returns -0.002, 0.001: mean -0.0005, sd 0.0015 x sqrt(2).
  EXPECT_NEAR(xgb.sharpe_ratio, -1.0 / (3.0 * std::sqrt(2.0)) * std::sqrt(kTradesPerYearModel), 1e-9);
  // Allocation |-4 / -0.002| = 2000; P&L 0 (peak) -> -4: 4 / 2000.
  EXPECT_NEAR(xgb.max_drawdown, 0.002, 1e-15);

  const auto symbols = metrics_by_symbol(trades, span);
  ASSERT_EQ(symbols.size(), 2u);
  EXPECT_EQ(symbols[0].strategy_id, "BTCUSDT");
  EXPECT_EQ(symbols[0].total_trades, 2);
  EXPECT_DOUBLE_EQ(symbols[0].avg_profit, 2.5);
  EXPECT_EQ(symbols[1].strategy_id, "ETHUSDT");
  EXPECT_EQ(symbols[1].total_trades, 3);
  EXPECT_DOUBLE_EQ(symbols[1].win_rate, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(symbols[1].avg_profit, 6);
  EXPECT_NEAR(symbols[1].max_drawdown, 0.002, 1e-15);

  EXPECT_TRUE(strategy_is_model("model:xgb"));
  EXPECT_FALSE(strategy_is_model("ema-model:x"));
  // One trade or no span: no Sharpe.
  EXPECT_EQ(trade_metrics("one", std::span(trades).first(1), span).sharpe_ratio, 0);
  EXPECT_EQ(trade_metrics("nospan", trades, 0).sharpe_ratio, 0);
}

TEST(Analytics, DrawdownSeriesAndTheWorstPeriod) {
  const std::vector<double> eq = {100, 120, 90, 130, 65, 70};
  const auto dd = drawdown_series(eq);
  ASSERT_EQ(dd.size(), eq.size());
  EXPECT_EQ(dd[0], 0);
  EXPECT_EQ(dd[1], 0);
  EXPECT_DOUBLE_EQ(dd[2], 0.25);
  EXPECT_EQ(dd[3], 0);
  EXPECT_DOUBLE_EQ(dd[4], 0.5);
  EXPECT_DOUBLE_EQ(dd[5], 60.0 / 130.0);
  EXPECT_DOUBLE_EQ(drawdown_max(eq), 0.5);
  const DrawdownPeriod w = drawdown_worst(eq);
  EXPECT_DOUBLE_EQ(w.depth, 0.5);
  EXPECT_EQ(w.peak, 3u);
  EXPECT_EQ(w.trough, 4u);
  EXPECT_EQ(w.recovery, DrawdownPeriod::kNotRecovered);

  const std::vector<double> recovered = {100, 80, 90, 100, 95, 120};
  const DrawdownPeriod r = drawdown_worst(recovered);
  EXPECT_DOUBLE_EQ(r.depth, 0.2);
  EXPECT_EQ(r.peak, 0u);
  EXPECT_EQ(r.trough, 1u);
  EXPECT_EQ(r.recovery, 3u);
  EXPECT_EQ(drawdown_worst(std::vector<double>{1, 2, 3}).depth, 0);
  EXPECT_TRUE(drawdown_series({}).empty());
}

TEST(Analytics, SharpeRatioEdgeCases) {
  EXPECT_EQ(sharpe_ratio(std::vector<double>{0.1}, 252), 0);
  EXPECT_EQ(sharpe_ratio(std::vector<double>{0.01, 0.01, 0.01}, 252), 0);  // sd 0
  EXPECT_NEAR(sharpe_ratio(std::vector<double>{0.01, 0.03}, 4), 0.02 / std::sqrt(0.0002) * 2, 1e-12);
}

TEST(Analytics, DownsamplingKeepsTheEndsAndEveryBucketsExtremes) {
  std::vector<double> v(100'001);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<double>(i) * 0.001) * 100 + static_cast<double>(i % 7);
  v[54'321] = 1e6;   // a spike
  v[77'777] = -1e6;  // a crash
  const auto keep = downsample_minmax(v);
  ASSERT_LE(keep.size(), kReportMaxPoints);
  EXPECT_GT(keep.size(), kReportMaxPoints / 2);
  EXPECT_EQ(keep.front(), 0u);
  EXPECT_EQ(keep.back(), v.size() - 1);
  EXPECT_TRUE(std::is_sorted(keep.begin(), keep.end()));
  EXPECT_EQ(std::adjacent_find(keep.begin(), keep.end()), keep.end());
  EXPECT_NE(std::find(keep.begin(), keep.end(), 54'321u), keep.end());
  EXPECT_NE(std::find(keep.begin(), keep.end(), 77'777u), keep.end());
  EXPECT_EQ(downsample_minmax(v), keep);
  const std::vector<double> small = {3, 1, 2};
  EXPECT_EQ(downsample_minmax(small), (std::vector<std::size_t>{0, 1, 2}));
}

// ---- report: JSON ------------------------------------------------------------------------------------------------

TEST(Report, JsonParsesAndHoldsTheRightNumbers) {
  const ReportInput in = fixture_input();
  const std::string text = report_json(in);
  EXPECT_EQ(report_json(in), text);
  const boost::json::value v = boost::json::parse(text);
  const auto& root = v.as_object();
  EXPECT_EQ(root.at("title").as_string(), in.title);
  // Run info in the given order.
  const auto& run = root.at("run").as_object();
  std::vector<std::string> keys;
  for (const auto& kv : run) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"seed", "data", "stage", "exchange"}));
  EXPECT_EQ(run.at("data").as_string(), "data/sample");

  const SystemMetrics sm = system_metrics(in.equity, in.trades, in.initial_equity, in.bars_per_year);
  const auto& m = root.at("metrics").as_object();
  EXPECT_EQ(m.at("equity").to_number<double>(), sm.equity);
  EXPECT_EQ(m.at("sharpe_ratio").as_double(), sm.sharpe_ratio);  // full precision survives the text
  EXPECT_NEAR(m.at("sharpe_ratio").as_double(), 5.0 / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(m.at("max_drawdown").as_double(), 0.1, 1e-12);
  EXPECT_NEAR(m.at("daily_pnl").as_double(), 8.9, 1e-12);
  EXPECT_EQ(m.at("total_trades").as_int64(), 5);
  EXPECT_EQ(m.at("risk_mode").as_string(), "DEFENSIVE");
  EXPECT_EQ(m.at("regime").as_string(), "RANGING");
  EXPECT_DOUBLE_EQ(m.at("profit_factor").as_double(), 32.0 / 9.0);
  EXPECT_DOUBLE_EQ(m.at("fees").as_double(), 5);

  const auto& strategies = root.at("strategies").as_array();
  ASSERT_EQ(strategies.size(), 1u);
  EXPECT_EQ(strategies[0].at("strategy_id").as_string(), "ema");
  EXPECT_EQ(strategies[0].at("total_trades").as_int64(), 3);
  EXPECT_NEAR(strategies[0].at("max_drawdown").as_double(), 5.0 / 1010.0, 1e-15);
  const auto& models = root.at("models").as_array();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].at("strategy_id").as_string(), "model:xgb");
  const auto& symbols = root.at("symbols").as_array();
  ASSERT_EQ(symbols.size(), 2u);
  EXPECT_EQ(symbols[1].at("symbol").as_string(), "ETHUSDT");
  EXPECT_DOUBLE_EQ(symbols[1].at("avg_profit").as_double(), 6);

  const auto& orders = root.at("orders").as_object();
  EXPECT_EQ(orders.at("total").as_int64(), 15);
  EXPECT_EQ(orders.at("denied").as_int64(), 10);
  EXPECT_EQ(orders.at("rejected").as_int64(), 3);
  EXPECT_EQ(orders.at("by_status").at("FILLED").as_int64(), 2);
  EXPECT_EQ(orders.at("by_status").at("CANCELED").as_int64(), 0);
  EXPECT_EQ(orders.at("rejections_by_code").at("-2010").as_int64(), 2);
  EXPECT_EQ(orders.at("rejections_by_code").at("-1013").as_int64(), 1);
  const auto& denials = root.at("denials_by_reason").as_object();
  EXPECT_EQ(denials.size(), 3u);
  EXPECT_EQ(denials.at("LOW_CONFIDENCE").as_int64(), 2);
  EXPECT_EQ(denials.at("MAX_OPEN_POSITIONS").as_int64(), 7);
  EXPECT_EQ(denials.at("UNKNOWN").as_int64(), 1);

  const auto& curve = root.at("equity_curve").as_object();
  EXPECT_EQ(curve.at("points").as_int64(), 4);
  ASSERT_EQ(curve.at("equity").as_array().size(), 4u);
  EXPECT_EQ(curve.at("equity").as_array()[2].to_number<double>(), 99);
  EXPECT_NEAR(curve.at("drawdown").as_array()[2].as_double(), 0.1, 1e-12);
  EXPECT_EQ(curve.at("ts").as_array()[0].as_int64(), kDay2 - kHour);
  EXPECT_EQ(curve.at("exposure").as_array()[1].as_double(), 0.5);
  const auto& worst = root.at("worst_drawdown").as_object();
  EXPECT_EQ(worst.at("peak_ts").as_int64(), kDay2 + kHour);
  EXPECT_EQ(worst.at("trough_ts").as_int64(), kDay2 + 2 * kHour);
  EXPECT_TRUE(worst.at("recovery_ts").is_null());
}

TEST(Report, JsonWritesNonFiniteNumbersAsNull) {
  ReportInput in;
  in.trades = {trade(1, "ema", "BTCUSDT", 3, 0.003, 0, 10)};  // wins only: an infinite profit factor
  in.initial_equity = 1000;
  const auto v = boost::json::parse(report_json(in));
  EXPECT_TRUE(v.at("metrics").at("profit_factor").is_null());
  EXPECT_EQ(v.at("equity_curve").at("points").as_int64(), 0);
}

// ---- report: HTML ------------------------------------------------------------------------------------------------

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

TEST(Report, HtmlHasTheFiveChartsAndFetchesNothing) {
  const ReportInput in = fixture_input();
  const std::string html = report_html(in);
  EXPECT_EQ(report_html(in), html) << "two renderings of the same input differ";
  for (const char* id : {"chart-equity", "chart-drawdown", "chart-exposure", "chart-timeline", "chart-trades-BTCUSDT",
                         "chart-trades-ETHUSDT"})
    EXPECT_THAT(html, HasSubstr(std::string("<svg id=\"") + id + "\"")) << id;
  for (const char* remote : {"http://", "https://", "<script", "<link", "@import", "url(", "<img", "<iframe"})
    EXPECT_THAT(html, Not(HasSubstr(remote))) << remote;
  EXPECT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("Replay &lt;sample&gt; &amp; &quot;friends&quot;"));
  EXPECT_THAT(html, Not(HasSubstr("<sample>")));
  // Metric tables and denials.
  EXPECT_THAT(html, HasSubstr("<td>LOW_CONFIDENCE</td><td>2</td>"));
  EXPECT_THAT(html, HasSubstr("<td>-2010</td><td>2</td>"));
  EXPECT_THAT(html, HasSubstr("<td>max drawdown</td><td>10.00 %</td>"));
  EXPECT_THAT(html, HasSubstr("<td>model:xgb</td><td>2</td><td>50.0 %</td>"));
  EXPECT_THAT(html, HasSubstr("<td>seed</td><td>42</td>"));
  // Every trade has an entry and an exit marker on its symbol's chart; the timeline shows each state.
  EXPECT_EQ(count(html, "class=\"entry\""), 5u);
  EXPECT_EQ(count(html, "class=\"exit\""), 5u);
  for (const char* state : {"HALTED", "REDUCING", "ACTIVE", "DEFENSIVE", "AGGRESSIVE", "NORMAL"})
    EXPECT_THAT(html, HasSubstr(std::string(">") + state + "</text>")) << "legend lacks " << state;
}

TEST(Report, HtmlOfALongRunStaysBoundedAndDeterministic) {
  ReportInput in;
  in.title = "long";
  in.initial_equity = 1000;
  in.bars_per_year = 525960;
  const std::size_t n = 200'000;
  in.equity.reserve(n);
  PriceSeries ps{"BTCUSDT", {}, {}};
  for (std::size_t i = 0; i < n; ++i) {
    const TimeNs ts = kDay2 + static_cast<TimeNs>(i) * 60'000'000'000;
    const double x = static_cast<double>(i);
    in.equity.push_back({.ts = ts, .equity = 1000 + 50 * std::sin(x / 5000) + (i % 97 == 0 ? 30 : 0), .cash = 500,
                         .exposure = 0.5 + 0.4 * std::sin(x / 777), .open_positions = static_cast<std::int32_t>(i % 5),
                         .risk_mode = i % 2 ? RiskMode::defensive : RiskMode::normal,  // flaps every bar
                         .regime = Regime::ranging, .trading_state = i % 3 ? "ACTIVE" : "REDUCING"});
    ps.times.push_back(ts);
    ps.closes.push_back(40000 + 1000 * std::sin(x / 3000));
  }
  for (std::uint64_t k = 0; k < 3000; ++k) {
    const TimeNs entry = kDay2 + static_cast<TimeNs>(k * 60) * 60'000'000'000;
    in.trades.push_back(trade(k + 1, "ema", "BTCUSDT", k % 2 ? 4.0 : -3.0, k % 2 ? 0.004 : -0.003, entry,
                              entry + 30 * 60'000'000'000));
  }
  in.prices = {ps};
  const std::string html = report_html(in);
  EXPECT_EQ(report_html(in), html);
  EXPECT_LT(html.size(), 3'000'000u) << "the page grows with the run instead of staying bounded";
  // Every polyline holds at most kReportMaxPoints points.
  std::size_t polylines = 0;
  for (auto at = html.find("points=\""); at != std::string::npos; at = html.find("points=\"", at + 1)) {
    const auto end = html.find('"', at + 8);
    const std::string pts = html.substr(at + 8, end - at - 8);
    EXPECT_LE(static_cast<std::size_t>(std::count(pts.begin(), pts.end(), ' ')) + 1, kReportMaxPoints + 2);
    ++polylines;
  }
  EXPECT_GE(polylines, 4u);
  // The timeline's three rows: at most kReportMaxPoints bands each.
  const auto tl = html.find("<svg id=\"chart-timeline\"");
  const std::string timeline = html.substr(tl, html.find("</svg>", tl) - tl);
  EXPECT_LE(count(timeline, "<rect"), 3 * kReportMaxPoints + 20);
  // At most kReportMaxPoints / 2 trades drawn.
  EXPECT_LE(count(html, "class=\"entry\""), kReportMaxPoints / 2);
  EXPECT_GT(count(html, "class=\"entry\""), 0u);
  const auto v = boost::json::parse(report_json(in));
  EXPECT_LE(v.at("equity_curve").at("equity").as_array().size(), kReportMaxPoints);
  EXPECT_EQ(v.at("equity_curve").at("points").as_int64(), static_cast<std::int64_t>(n));
}

TEST(Report, HtmlOfAnEmptyRunStillRendersEveryChart) {
  ReportInput in;
  in.title = "empty";
  const std::string html = report_html(in);
  for (const char* id : {"chart-equity", "chart-drawdown", "chart-exposure", "chart-timeline"})
    EXPECT_THAT(html, HasSubstr(std::string("<svg id=\"") + id + "\"")) << id;
  EXPECT_THAT(html, HasSubstr("no price series given"));
  EXPECT_THAT(html, Not(HasSubstr("nan")));
}

// ---- report: a real browser ----------------------------------------------------------------------------------------

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Screenshots `html_path` with headless chromium into `png_path`; returns the exit status (and the log on failure).
int screenshot(const std::string& chromium, const std::string& html_path, const std::string& png_path, const std::string& work,
               std::string& log) {
  const std::string cmd = "timeout 180 '" + chromium + "' --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir='" +
                          work + "/profile' --screenshot='" + png_path + "' --window-size=1280,2400 'file://" + html_path +
                          "' >'" + work + "/chromium.log' 2>&1";
  const int status = std::system(cmd.c_str());
  log = slurp(work + "/chromium.log");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Report, HeadlessChromiumRendersThePage) {
  std::string chromium = find_on_path("chromium");
  if (chromium.empty()) chromium = find_on_path("chromium-browser");
  if (chromium.empty()) GTEST_SKIP() << "no chromium on PATH (Debian: apt-get install chromium)";
  test::TempDir dir;
  const std::string work = dir.file("");
  const std::string html = dir.file("report.html"), blank = dir.file("blank.html");
  const std::string png = dir.file("report.png"), blank_png = dir.file("blank.png");
  atomic_write(html, report_html(fixture_input()));
  atomic_write(blank, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>blank</title></head><body></body></html>\n");
  std::string log;
  ASSERT_EQ(screenshot(chromium, blank, blank_png, work, log), 0) << log;
  ASSERT_EQ(screenshot(chromium, html, png, work, log), 0) << log;
  ASSERT_TRUE(std::filesystem::exists(png)) << log;
  const auto size = std::filesystem::file_size(png), blank_size = std::filesystem::file_size(blank_png);
  const std::string bytes = slurp(png);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  EXPECT_GT(size, 3 * blank_size) << "the report rendered like a blank page (" << size << " vs " << blank_size << " bytes)";
  // Kept for a person to look at.
  const std::string artifacts = std::string(QTOS_SOURCE_DIR) + "/build/test-artifacts";
  std::filesystem::create_directories(artifacts);
  atomic_write(artifacts + "/report.png", bytes);
  atomic_write(artifacts + "/report.html", slurp(html));
  std::printf("[ report ] screenshot %s (%zu bytes; a blank page: %zu)\n", (artifacts + "/report.png").c_str(),
              static_cast<std::size_t>(size), static_cast<std::size_t>(blank_size));
}

}  // namespace analytics_test
}  // namespace qtos
