// AI-HFOS and the Portfolio Balancer: the rules on hand-built inputs (modes, hysteresis, directives, limits, clusters,
// trims), then replays: OBSERVE equals the baseline, ADVISORY changes sizes only, ENFORCED denies and trims.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/exchange/paper_exchange.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/subsystems/ai_hfos.hpp"
#include "runtime/subsystems/portfolio_balancer.hpp"
#include "runtime/util/rng.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace hfos_pba_test {

using test::TempDir;

// ---------------------------------------------------------------------------------------------------------------
// Rigs

struct Rig {
  SimClock clock{0};
  EventBus bus{clock};
  Config config;
  std::unique_ptr<PolicyStore> policy;
  std::vector<SubsystemDecided> decided;
  Subscription sub;
  explicit Rig(SubsystemMode hfos = SubsystemMode::enforced, SubsystemMode pba = SubsystemMode::enforced, Policy p = {}) {
    bus.bind_owner_thread();
    config.subsystems[static_cast<std::size_t>(Subsystem::hfos)] = SubsystemConfig{true, hfos};
    config.subsystems[static_cast<std::size_t>(Subsystem::pba)] = SubsystemConfig{true, pba};
    policy = std::make_unique<PolicyStore>(std::make_unique<MemoryPolicyBackend>(), clock, &bus, p);
    sub = bus.subscribe<SubsystemDecided>("test", [this](const SubsystemDecided& e) { decided.push_back(e); });
  }
  template <class E>
  void send(E e) {
    bus.publish(SourceName("test"), std::move(e));
  }
  bool said(const std::string& text) const {
    for (const auto& d : decided)
      if (d.detail.find(text) != std::string::npos) return true;
    return false;
  }
};

SystemSnapshot snapshot(double daily_dd, Regime regime = Regime::unknown) {
  SystemSnapshot s;
  s.equity = 10'000;
  s.daily_drawdown_pct = daily_dd;
  s.regime = regime;
  s.trading_state = "ACTIVE";
  return s;
}

TradeCandidate candidate(const std::string& symbol, Side side = Side::buy, double quote = 0) {
  TradeCandidate c;
  c.strategy = "s1";
  c.symbol = symbol;
  c.side = side;
  c.confidence = 0.9;
  c.price = 100;
  c.quote_qty = quote;
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// AI-HFOS rules

TEST(HfosRules, DrawdownRegimeHealthExecutionAndExposureSetTheMode) {
  const HfosOptions o;
  using M = SystemRiskMode;
  HfosInputs in;  // limits: daily 5%, open 10%, leverage 3
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::normal);
  in.daily_drawdown_pct = 2.6;
  auto [mode, why] = hfos_classify(in, M::normal, o);
  EXPECT_EQ(mode, M::safe);
  EXPECT_EQ(why, "daily DD 2.6% of 5%");
  in.daily_drawdown_pct = 4.0;  // 80% of the limit
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::critical);
  in.daily_drawdown_pct = 0;
  in.open_drawdown_pct = 8.5;  // open drawdown counts the same way
  EXPECT_EQ(hfos_classify(in, M::normal, o), std::make_pair(M::critical, std::string("open DD 8.5% of 10%")));
  in.open_drawdown_pct = 0.5;
  in.regime = Regime::crash;
  EXPECT_EQ(hfos_classify(in, M::normal, o), std::make_pair(M::safe, std::string("regime CRASH")));
  in.regime = Regime::high_volatility;
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::safe);
  in.regime = Regime::trending_up;  // trending, a small drawdown, healthy: AGGRESSIVE
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::aggressive);
  in.degraded = "PIL";
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::normal) << "a degraded component rules AGGRESSIVE out";
  in.degraded.clear();
  in.policy_risk_mode = RiskMode::defensive;
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::normal) << "a DEFENSIVE policy rules AGGRESSIVE out";
  in.policy_risk_mode = RiskMode::normal;
  in.failing = "executor";
  EXPECT_EQ(hfos_classify(in, M::normal, o), std::make_pair(M::critical, std::string("executor failing")));
  in.failing.clear();
  in.reject_rate = 0.25;
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::safe);
  in.reject_rate = 0;
  in.exposure = 2.8;  // of 3x
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::safe);
  in.exposure = 0;
  in.trading_state = "HALTED";
  EXPECT_EQ(hfos_classify(in, M::normal, o).first, M::critical);
}

TEST(HfosRules, EachModeHasItsDirective) {
  const HfosOptions o;
  const HfosDirective a = hfos_directive_for(SystemRiskMode::aggressive, o), n = hfos_directive_for(SystemRiskMode::normal, o),
                      s = hfos_directive_for(SystemRiskMode::safe, o), c = hfos_directive_for(SystemRiskMode::critical, o);
  EXPECT_EQ(a.size_scale, 1.0);
  EXPECT_DOUBLE_EQ(a.confidence_threshold, -0.05);
  EXPECT_EQ(n.size_scale, 1.0);
  EXPECT_EQ(n.preferred_order_type, OrderType::market);
  EXPECT_EQ(s.size_scale, 0.75);
  EXPECT_DOUBLE_EQ(s.confidence_threshold, 0.10);
  EXPECT_EQ(s.preferred_order_type, OrderType::limit);
  EXPECT_TRUE(s.allow_new_trades);
  EXPECT_EQ(c.size_scale, 0.6);
  EXPECT_FALSE(c.allow_new_trades);
}

TEST(AiHfosTest, HysteresisHoldsSafeUntilTheDrawdownClearlyFallsForTwoTicks) {
  Rig r;
  AiHfos h(r.bus, r.config, *r.policy, HfosOptions{});
  ASSERT_TRUE(h.start());
  std::string why;
  auto a = h.ai_hfos_coordination(snapshot(2.6), {}, why);
  ASSERT_TRUE(a);
  EXPECT_EQ(h.decided().mode, SystemRiskMode::safe);
  EXPECT_EQ(a->size_scale, 0.75);
  EXPECT_NEAR(a->threshold_shift, 0.10, 1e-12);
  EXPECT_FALSE(a->block_entries) << "new trades are refused by the risk check (SYSTEM_RISK), not by the executor's block";
  EXPECT_NEAR(h.directive().confidence_threshold, 0.70, 1e-12);
  EXPECT_EQ(h.directive().preferred_order_type, OrderType::limit);
  EXPECT_TRUE(r.said("System risk mode NORMAL -> SAFE (daily DD 2.6% of 5%)"));
  EXPECT_TRUE(r.said("Adjusting confidence threshold: 0.60 -> 0.70"));
  EXPECT_TRUE(r.said("Adjusting position size scale: 100% -> 75%"));
  h.ai_hfos_coordination(snapshot(2.3), {}, why);  // below 50% of the limit, not below 40%: stays
  EXPECT_EQ(h.decided().mode, SystemRiskMode::safe);
  h.ai_hfos_coordination(snapshot(1.0), {}, why);  // clearly calmer, once
  EXPECT_EQ(h.decided().mode, SystemRiskMode::safe);
  h.ai_hfos_coordination(snapshot(1.0), {}, why);  // the same snapshot again: nothing new, does not count
  EXPECT_EQ(h.decided().mode, SystemRiskMode::safe);
  h.ai_hfos_coordination(snapshot(0.9), {}, why);  // twice
  EXPECT_EQ(h.decided().mode, SystemRiskMode::normal);
  EXPECT_TRUE(r.said("Adjusting confidence threshold: 0.70 -> 0.60"));
  h.ai_hfos_coordination(snapshot(2.4), {}, why);
  EXPECT_EQ(h.decided().mode, SystemRiskMode::normal);
  h.ai_hfos_coordination(snapshot(2.5), {}, why);  // escalation is at once
  EXPECT_EQ(h.decided().mode, SystemRiskMode::safe);
  EXPECT_EQ(h.mode_changes(), 3u);
}

TEST(AiHfosTest, AFailingComponentBlocksNewTradesAtOnceWithSystemRisk) {
  Rig r;
  AiHfos h(r.bus, r.config, *r.policy, HfosOptions{});
  ASSERT_TRUE(h.start());
  std::string why;
  h.ai_hfos_coordination(snapshot(0), {}, why);
  EXPECT_FALSE(h.risk_check(candidate("BTCUSDT"), {}, why));
  r.send(HealthStatusChanged{.component = "executor", .previous = HealthLevel::healthy, .current = HealthLevel::failing, .detail = "stuck"});
  EXPECT_EQ(h.decided().mode, SystemRiskMode::critical) << "between ticks: the event escalates";
  auto deny = h.risk_check(candidate("BTCUSDT"), {}, why);
  ASSERT_TRUE(deny);
  EXPECT_FALSE(deny->allow);
  EXPECT_EQ(deny->reason, DenyReason::system_risk);
  EXPECT_NE(why.find("executor failing"), std::string::npos) << why;
  EXPECT_TRUE(r.said("Blocking new trades (CRITICAL)"));
  r.send(HealthStatusChanged{.component = "executor", .previous = HealthLevel::failing, .current = HealthLevel::healthy});
  EXPECT_EQ(h.decided().mode, SystemRiskMode::critical) << "an event never calms";
  h.ai_hfos_coordination(snapshot(0.1), {}, why);
  h.ai_hfos_coordination(snapshot(0.2), {}, why);
  EXPECT_EQ(h.decided().mode, SystemRiskMode::normal);
  EXPECT_FALSE(h.risk_check(candidate("BTCUSDT"), {}, why));
}

TEST(AiHfosTest, SafeCapsOneTradeAndASymbolInItsOwnCrashIsScaledOnce) {
  Rig r;
  AiHfos h(r.bus, r.config, *r.policy, HfosOptions{});
  ASSERT_TRUE(h.start());
  std::string why;
  EXPECT_FALSE(h.position_sizing(candidate("BTCUSDT"), SizingAnswer{5000}, why)) << "NORMAL: no cap";
  h.ai_hfos_coordination(snapshot(2.6), {}, why);
  auto cap = h.position_sizing(candidate("BTCUSDT"), SizingAnswer{5000}, why);
  ASSERT_TRUE(cap);
  EXPECT_DOUBLE_EQ(cap->quote_qty, 2000) << "20% of equity 10000";
  EXPECT_FALSE(h.position_sizing(candidate("BTCUSDT"), SizingAnswer{1500}, why));
  r.send(RegimeChanged{.symbol = "ETHUSDT", .previous = Regime::ranging, .current = Regime::crash, .confidence = 0.9});
  auto eth = h.risk_check(candidate("ETHUSDT"), {}, why);
  ASSERT_TRUE(eth);
  EXPECT_TRUE(eth->allow);
  EXPECT_EQ(eth->size_scale, 0.75);
  EXPECT_FALSE(h.risk_check(candidate("BTCUSDT"), {}, why));
  r.send(RegimeChanged{.previous = Regime::ranging, .current = Regime::crash, .confidence = 0.9});
  EXPECT_FALSE(h.risk_check(candidate("ETHUSDT"), {}, why)) << "the market's crash is in the global scale already: not twice";
}

TEST(AiHfosTest, ObserveIssuesNothingAdvisoryIssuesTheSoftPartOnly) {
  for (SubsystemMode m : {SubsystemMode::observe, SubsystemMode::advisory}) {
    Rig r(m);
    AiHfos h(r.bus, r.config, *r.policy, HfosOptions{});
    ASSERT_TRUE(h.start());
    std::string why;
    h.ai_hfos_coordination(snapshot(4.5), {}, why);
    EXPECT_EQ(h.decided().mode, SystemRiskMode::critical);
    EXPECT_TRUE(h.directive().allow_new_trades) << "blocking is ENFORCED's";
    if (m == SubsystemMode::observe) {
      EXPECT_EQ(h.directive().mode, SystemRiskMode::normal);
      EXPECT_EQ(h.directive().preferred_order_type, OrderType::market);
      EXPECT_TRUE(r.said("Would change system risk mode NORMAL -> CRITICAL (daily DD 4.5% of 5%)"));
      for (const auto& d : r.decided) EXPECT_FALSE(d.applied);
    } else {
      EXPECT_EQ(h.directive().mode, SystemRiskMode::critical);
      EXPECT_EQ(h.directive().size_scale, 0.6);
      EXPECT_TRUE(r.said("Would be Blocking new trades (CRITICAL)"));
    }
  }
}

TEST(AiHfosTest, ABurstOfVenueRejectsMakesItSafe) {
  Rig r;
  AiHfos h(r.bus, r.config, *r.policy, HfosOptions{});
  ASSERT_TRUE(h.start());
  for (int i = 0; i < 10; ++i) r.send(OrderSubmitted{.order_id = static_cast<std::uint64_t>(i), .symbol = "BTCUSDT"});
  EXPECT_EQ(h.decided().mode, SystemRiskMode::normal);
  for (int i = 0; i < 4; ++i) r.send(OrderRejected{.order_id = 100u + i, .symbol = "BTCUSDT", .exchange_code = -2010});
  EXPECT_NEAR(h.reject_rate(), 4.0 / 14.0, 1e-12);
  EXPECT_EQ(h.decided().mode, SystemRiskMode::safe);
  r.clock.advance_by(2 * 3600 * kNsPerSecond);  // the window moves on
  r.send(OrderSubmitted{.order_id = 200, .symbol = "BTCUSDT"});
  EXPECT_EQ(h.reject_rate(), 0.0);
}

// ---------------------------------------------------------------------------------------------------------------
// PBA rules

struct PbaRig : Rig {
  PaperExchange venue{PaperExchangeConfig{}, clock};  // equity 10000, nothing held
  TimeNs t = 0;
  explicit PbaRig(SubsystemMode mode = SubsystemMode::enforced, Policy p = {}) : Rig(SubsystemMode::off, mode, p) {}
  void bar(const std::string& symbol, double close) {
    send(MarketBarClosed{.symbol = symbol, .interval_s = 3600, .open_time = t, .open = close, .high = close, .low = close, .close = close, .volume = 1});
  }
  void fill(const std::string& symbol, Side side, double qty, double price) {
    send(OrderFilled{.order_id = 1, .symbol = symbol, .side = side, .qty = qty, .price = price});
  }
};

TEST(PbaTest, LimitsOnHandBuiltPositions) {
  Policy p;
  p.max_open_positions = 2;
  PbaRig r(SubsystemMode::enforced, p);
  PbaOptions o;
  o.max_symbol_exposure_pct = 20;
  o.max_gross_exposure = 0.5;
  o.max_net_exposure = 1.0;
  PortfolioBalancer pba(r.bus, r.config, *r.policy, r.venue, o);
  ASSERT_TRUE(pba.start());
  r.bar("BTCUSDT", 100);
  r.bar("ETHUSDT", 10);
  r.bar("SOLUSDT", 1);
  r.fill("BTCUSDT", Side::buy, 15, 100);  // 1500: 15% of equity
  const PbaBreach b = pba.tightest("BTCUSDT", Side::buy, 1000);
  EXPECT_EQ(b.reason, DenyReason::exposure_limit);
  EXPECT_DOUBLE_EQ(b.fit, 0.5);
  EXPECT_EQ(b.text, "BTCUSDT exposure 15% / 20% limit (entry ~10%)");
  std::string why;
  auto cut = pba.position_sizing(candidate("BTCUSDT", Side::buy), SizingAnswer{1000}, why);
  ASSERT_TRUE(cut);
  EXPECT_DOUBLE_EQ(cut->quote_qty, 500) << "cut to the headroom";
  EXPECT_TRUE(pba.tightest("BTCUSDT", Side::sell, 1000).fit >= 1) << "a sell reduces the long";
  // The cut entry is on its way (500 reserved on BTCUSDT until it fills): with 2800 of ETHUSDT, gross 48%.
  r.fill("ETHUSDT", Side::buy, 280, 10);
  EXPECT_DOUBLE_EQ(pba.gross_notional(), 4300) << "positions only";
  std::string limit;
  EXPECT_FALSE(pba.add_allowed("ETHUSDT", 100, limit));
  EXPECT_EQ(limit, "ETHUSDT exposure 28% / 20% limit (entry ~1%)");
  // A third position: the policy allows two.
  auto full = pba.portfolio_check(candidate("SOLUSDT"), {}, why);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->reason, DenyReason::max_open_positions);
  EXPECT_EQ(why, "open positions 2 / 2 limit");
  // A policy update (MSC) applies at the next check; the gross limit binds then.
  auto v = r.policy->current()->version;
  ASSERT_TRUE(r.policy->update(v, [](Policy& q) { q.max_open_positions = 5; }, "more room", "test"));
  auto gross = pba.portfolio_check(candidate("SOLUSDT", Side::buy, 1000), {}, why);
  ASSERT_TRUE(gross);
  EXPECT_FALSE(gross->allow);
  EXPECT_EQ(gross->reason, DenyReason::exposure_limit);
  EXPECT_EQ(why, "gross exposure 48% / 50% limit (entry ~10%)");
  EXPECT_FALSE(pba.portfolio_check(candidate("SOLUSDT", Side::buy, 500), {}, why)) << "40% of the entry fits: allowed, cut by sizing";
  auto sol = pba.position_sizing(candidate("SOLUSDT", Side::buy), SizingAnswer{500}, why);
  ASSERT_TRUE(sol);
  EXPECT_DOUBLE_EQ(sol->quote_qty, 200);
  // The entry on its way counts until it fills: the gross limit is now full.
  EXPECT_LT(pba.tightest("XRPUSDT", Side::buy, 100).fit, 1e-9);
}

TEST(PbaTest, AdvisoryCutsButNeverBelowAQuarterAndDeniesNothing) {
  PbaRig r(SubsystemMode::advisory);
  PbaOptions o;
  o.max_symbol_exposure_pct = 20;
  PortfolioBalancer pba(r.bus, r.config, *r.policy, r.venue, o);
  ASSERT_TRUE(pba.start());
  r.bar("BTCUSDT", 100);
  r.fill("BTCUSDT", Side::buy, 19.5, 100);
  std::string why;
  auto cut = pba.position_sizing(candidate("BTCUSDT"), SizingAnswer{1000}, why);
  ASSERT_TRUE(cut);
  EXPECT_DOUBLE_EQ(cut->quote_qty, 250) << "ADVISORY floors the cut at min_scale";
  // The check's answer is a denial, which the pipeline applies only in ENFORCED.
  HookPipeline pipeline(r.bus);
  auto shared = std::shared_ptr<PortfolioBalancer>(&pba, [](PortfolioBalancer*) {});
  pipeline.add(shared);
  EXPECT_TRUE(pipeline.portfolio_check(candidate("BTCUSDT", Side::buy, 1000), CheckAnswer{}, nullptr).allow);
}

/// Bars of six symbols: A1..A3 move with one factor, B1, B2 with another, C on its own.
void correlated_market(PbaRig& r, int bars) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> z(0, 0.01);
  std::map<std::string, double> px = {{"A1", 100}, {"A2", 50}, {"A3", 20}, {"B1", 10}, {"B2", 5}, {"C1", 1}};
  for (int t = 0; t < bars; ++t) {
    r.t = static_cast<TimeNs>(t) * 3600 * kNsPerSecond;
    const double f1 = z(rng), f2 = z(rng);
    for (auto& [s, p] : px) {
      const double own = 0.3 * z(rng);
      p *= 1 + (s[0] == 'A' ? f1 : s[0] == 'B' ? f2 : z(rng)) + own;
      r.bar(s + "USDT", p);
    }
  }
}

TEST(PbaTest, ClustersFollowReturnCorrelationAndCapTheirExposure) {
  PbaRig r;
  PbaOptions o;
  o.max_cluster_exposure_pct = 40;
  o.max_symbol_exposure_pct = 100;
  PortfolioBalancer pba(r.bus, r.config, *r.policy, r.venue, o);
  ASSERT_TRUE(pba.start());
  correlated_market(r, 80);
  pba.clusters_update();
  const std::vector<std::vector<std::string>> want = {{"A1USDT", "A2USDT", "A3USDT"}, {"B1USDT", "B2USDT"}};
  EXPECT_EQ(pba.clusters(), want);
  EXPECT_EQ(pba.cluster_of("C1USDT"), -1);
  EXPECT_NE(pba.cluster_of("A1USDT"), pba.cluster_of("B1USDT"));
  EXPECT_TRUE(r.said("2 correlation clusters"));
  // Two entries of the A cluster at 15% each (on their way: reserved, counted as positions): a third A entry meets the
  // cluster cap; a B entry does not.
  std::string why;
  ASSERT_FALSE(pba.position_sizing(candidate("A1USDT"), SizingAnswer{1500}, why));
  ASSERT_FALSE(pba.position_sizing(candidate("A2USDT"), SizingAnswer{1500}, why));
  const PbaBreach b = pba.tightest("A3USDT", Side::buy, 1500);
  EXPECT_EQ(b.reason, DenyReason::cluster_limit);
  EXPECT_NEAR(b.fit, 1000.0 / 1500.0, 1e-9);
  EXPECT_NE(b.text.find("cluster A1USDT+2 exposure 30% / 40% limit"), std::string::npos) << b.text;
  EXPECT_GE(pba.tightest("B1USDT", Side::buy, 1500).fit, 1.0);
  ASSERT_FALSE(pba.position_sizing(candidate("A3USDT"), SizingAnswer{900}, why));
  auto deny = pba.portfolio_check(candidate("A3USDT", Side::buy, 1500), {}, why);
  ASSERT_TRUE(deny);
  EXPECT_EQ(deny->reason, DenyReason::cluster_limit);
}

TEST(PbaTest, RebalanceTrimsWhatPriceMovesPushedOverTheLimitOnce) {
  PbaRig r;
  PbaOptions o;
  o.max_symbol_exposure_pct = 20;
  PortfolioBalancer pba(r.bus, r.config, *r.policy, r.venue, o);
  ASSERT_TRUE(pba.start());
  r.bar("BTCUSDT", 100);
  r.fill("BTCUSDT", Side::buy, 18, 100);  // 18%
  pba.rebalance();
  EXPECT_EQ(pba.trim_pending("BTCUSDT"), 0.0);
  r.t += 3600 * kNsPerSecond;
  r.bar("BTCUSDT", 130);  // 23.4%
  pba.rebalance();
  EXPECT_NEAR(pba.trim_pending("BTCUSDT"), 1 - 18.0 / 23.4, 1e-12) << "back to 90% of the limit";
  EXPECT_TRUE(r.said("Trimming BTCUSDT by 23%: BTCUSDT exposure 23% / 20% limit"));
  PositionSnapshot p;
  p.symbol = "BTCUSDT";
  p.qty = 18;
  p.mark_price = 130;
  std::string why;
  auto a = pba.amplification_check(p, AmplificationAnswer{0.5, 0, 0, 0}, why);
  ASSERT_TRUE(a);
  EXPECT_NEAR(a->take_partial, 1 - 18.0 / 23.4, 1e-12);
  EXPECT_EQ(a->scale_in, 0.0) << "protective beats enhancing";
  EXPECT_FALSE(pba.amplification_check(p, AmplificationAnswer{}, why)) << "issued once";
  pba.rebalance();
  EXPECT_EQ(pba.trim_pending("BTCUSDT"), 0.0) << "the trim is on its way: not decided again before it fills";
  r.fill("BTCUSDT", Side::sell, 18 * (1 - 18.0 / 23.4), 130);
  pba.rebalance();
  EXPECT_EQ(pba.trim_pending("BTCUSDT"), 0.0);
  EXPECT_EQ(pba.trims(), 1u);
}

// ---------------------------------------------------------------------------------------------------------------
// Replays

constexpr double kCapital = 10'000;

MarketPanel test_market(std::int32_t symbols = 6, std::int32_t bars = 900) {
  SynthOptions o;
  o.n_symbols = symbols;
  o.n_bars = bars;
  o.seed = 7;
  o.late_listing_fraction = 0;
  o.gap_rate = 0;
  o.planted_momentum = 0.15;
  return synth_generate(o).panel;
}

std::vector<LiveStrategy> strategies_for(const MarketPanel& panel, std::size_t want) {
  test::GenomePick pick;
  pick.want = want;
  return test::trading_strategies(panel, pick);
}

ReplayOptions replay_options(const std::string& ledger) {
  ReplayOptions o = test::unbounded_replay_options(ledger);
  o.exchange.initial_balance = kCapital;
  return o;
}

Config config_with(Subsystem s, SubsystemMode m) {
  Config c;
  c.max_daily_dd_pct = 100;
  c.max_open_dd_pct = 100;
  if (m != SubsystemMode::off) c.subsystems[static_cast<std::size_t>(s)] = SubsystemConfig{true, m};
  return c;
}

struct Outcome {
  ReplayResult result;
  std::map<DenyReason, std::uint64_t> denials;
  double entry_notional = 0;  // filled entries, quote
  std::size_t entries = 0;
  std::size_t entries_after = 0;  // filled entries created at or after `after`
  std::size_t pba_partials = 0;   // exit orders that carry a PBA trim in their trace
  std::vector<ClosedTrade> trades;
};

Outcome outcome_of(const std::string& path, const ReplayResult& r, TimeNs after) {
  Outcome o;
  o.result = r;
  const Ledger l(path, store::OpenMode::existing);
  for (const auto& rec : l.orders()) {
    if (rec.status == OrderStatus::denied && rec.deny_reason) o.denials[*rec.deny_reason] += 1 + rec.repeats;
    if (rec.purpose == OrderPurpose::entry && rec.filled_qty > 0) {
      ++o.entries;
      o.entry_notional += rec.filled_qty * rec.avg_price;
      o.entries_after += rec.created >= after;
    }
    if (rec.purpose == OrderPurpose::exit)
      for (const auto& s : rec.trace) o.pba_partials += s.subsystem == "PBA" && s.hook == "post_trade_amplification_check";
  }
  o.trades = l.trades();
  return o;
}

void expect_same(const Outcome& a, const Outcome& b) {
  ASSERT_EQ(a.trades.size(), b.trades.size());
  for (std::size_t i = 0; i < a.trades.size(); ++i) {
    EXPECT_EQ(a.trades[i].symbol, b.trades[i].symbol);
    EXPECT_EQ(a.trades[i].entry_time, b.trades[i].entry_time);
    EXPECT_EQ(a.trades[i].exit_time, b.trades[i].exit_time);
    EXPECT_EQ(a.trades[i].qty, b.trades[i].qty);
    EXPECT_EQ(a.trades[i].pnl, b.trades[i].pnl);
  }
  EXPECT_EQ(a.result.final_equity, b.result.final_equity);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.entry_notional, b.entry_notional);
  EXPECT_EQ(a.denials, b.denials);
}

/// A market whose second half is a crash (the regime classifier's view), and a component that fails at bar 600 when
/// `failing` is set.
struct HfosRun {
  const MarketPanel& panel;
  const std::vector<LiveStrategy>& strategies;
  std::shared_ptr<AiHfos> hfos;
  TimeNs at_bar(std::int32_t t) const { return panel.t0_ms() * kNsPerMillisecond + static_cast<TimeNs>(t) * panel.interval_ms() * kNsPerMillisecond; }
  Outcome run(const std::string& path, SubsystemMode mode, bool failing) {
    const Config cfg = config_with(Subsystem::hfos, mode);
    ReplayOptions o = replay_options(path);
    o.before_bar = [failing](std::int32_t t, ReplayControl& c) {
      if (t == 450) c.bus.publish(SourceName("regime"), RegimeChanged{.previous = Regime::ranging, .current = Regime::crash, .confidence = 0.9});
      if (failing && t == 600)
        c.bus.publish(SourceName("test"), HealthStatusChanged{.component = "exchange", .previous = HealthLevel::healthy,
                                                              .current = HealthLevel::failing, .detail = "no answers"});
    };
    if (mode != SubsystemMode::off)
      o.subsystem_factory = [this](ReplayContext& ctx) {
        hfos = std::make_shared<AiHfos>(ctx.bus, ctx.config, ctx.policy, HfosOptions{}, ctx.log_dir);
        return std::vector<std::shared_ptr<TradingSubsystem>>{hfos};
      };
    const ReplayResult r = replay_run(panel, cfg, strategies, {}, o);
    return outcome_of(path, r, at_bar(601));
  }
};

TEST(HfosReplay, ObserveEqualsTheBaseline) {
  const MarketPanel panel = test_market();
  const auto strategies = strategies_for(panel, 2);
  ASSERT_EQ(strategies.size(), 2u);
  TempDir dir;
  HfosRun run{panel, strategies, nullptr};
  const Outcome base = run.run(dir.file("base.db"), SubsystemMode::off, true);
  const Outcome observe = run.run(dir.file("observe.db"), SubsystemMode::observe, true);
  ASSERT_GT(base.entries, 0u);
  expect_same(base, observe);
  EXPECT_EQ(run.hfos->decided().mode, SystemRiskMode::critical) << "it decided, and changed nothing";
  EXPECT_GT(run.hfos->decisions(), 0u);
}

TEST(HfosReplay, AdvisoryShrinksSizesInACrashAndDeniesNothing) {
  const MarketPanel panel = test_market();
  const auto strategies = strategies_for(panel, 2);
  TempDir dir;
  HfosRun run{panel, strategies, nullptr};
  const Outcome base = run.run(dir.file("base.db"), SubsystemMode::off, true);
  const Outcome advisory = run.run(dir.file("advisory.db"), SubsystemMode::advisory, true);
  EXPECT_EQ(advisory.denials.count(DenyReason::system_risk), 0u);
  EXPECT_EQ(advisory.denials.count(DenyReason::hook_blocked), 0u);
  EXPECT_GT(advisory.entries_after, 0u) << "CRITICAL blocks nothing in ADVISORY";
  EXPECT_LT(advisory.entry_notional / advisory.entries, 0.95 * base.entry_notional / base.entries)
      << "entries after the crash are 75% (SAFE), then 60% (CRITICAL), of their size";
}

TEST(HfosReplay, EnforcedDeniesNewTradesWithSystemRiskWhenAComponentFails) {
  const MarketPanel panel = test_market();
  const auto strategies = strategies_for(panel, 2);
  TempDir dir;
  HfosRun run{panel, strategies, nullptr};
  const Outcome base = run.run(dir.file("base.db"), SubsystemMode::off, true);
  const Outcome enforced = run.run(dir.file("enforced.db"), SubsystemMode::enforced, true);
  ASSERT_GT(base.entries_after, 0u);
  EXPECT_EQ(enforced.entries_after, 0u) << "no entry after the failure";
  ASSERT_TRUE(enforced.denials.count(DenyReason::system_risk));
  EXPECT_GT(enforced.denials.at(DenyReason::system_risk), 0u);
}

struct PbaRun {
  const MarketPanel& panel;
  const std::vector<LiveStrategy>& strategies;
  PbaOptions options;
  std::shared_ptr<PortfolioBalancer> pba;
  Outcome run(const std::string& path, SubsystemMode mode) {
    const Config cfg = config_with(Subsystem::pba, mode);
    ReplayOptions o = replay_options(path);
    if (mode != SubsystemMode::off)
      o.subsystem_factory = [this](ReplayContext& ctx) {
        pba = std::make_shared<PortfolioBalancer>(ctx.bus, ctx.config, ctx.policy, ctx.exchange, options, ctx.log_dir);
        return std::vector<std::shared_ptr<TradingSubsystem>>{pba};
      };
    const ReplayResult r = replay_run(panel, cfg, strategies, {}, o);
    return outcome_of(path, r, 0);
  }
};

PbaOptions tight_limits() {
  PbaOptions o;
  o.max_symbol_exposure_pct = 2;   // below most entries of the baseline
  o.max_gross_exposure = 0.06;     // three such positions
  o.rebalance_interval_s = 3600;
  return o;
}

TEST(PbaReplay, ObserveEqualsTheBaseline) {
  const MarketPanel panel = test_market();
  const auto strategies = strategies_for(panel, 2);
  TempDir dir;
  PbaRun run{panel, strategies, tight_limits(), nullptr};
  const Outcome base = run.run(dir.file("base.db"), SubsystemMode::off);
  const Outcome observe = run.run(dir.file("observe.db"), SubsystemMode::observe);
  ASSERT_GT(base.entries, 0u);
  expect_same(base, observe);
  EXPECT_GT(run.pba->decisions(), 0u) << "it would have acted";
}

TEST(PbaReplay, AdvisoryCutsEntriesAndDeniesNothing) {
  const MarketPanel panel = test_market();
  const auto strategies = strategies_for(panel, 2);
  TempDir dir;
  PbaRun run{panel, strategies, tight_limits(), nullptr};
  const Outcome base = run.run(dir.file("base.db"), SubsystemMode::off);
  const Outcome advisory = run.run(dir.file("advisory.db"), SubsystemMode::advisory);
  EXPECT_EQ(advisory.denials.count(DenyReason::exposure_limit), 0u);
  EXPECT_EQ(advisory.denials.count(DenyReason::cluster_limit), 0u);
  EXPECT_EQ(advisory.denials.count(DenyReason::max_open_positions), 0u);
  EXPECT_EQ(advisory.pba_partials, 0u) << "trims are ENFORCED's";
  EXPECT_LT(advisory.entry_notional / advisory.entries, 0.8 * base.entry_notional / base.entries);
}

TEST(PbaReplay, EnforcedDeniesOverTheLimitAndTrimsWhatGrewOverIt) {
  const MarketPanel panel = test_market();
  const auto strategies = strategies_for(panel, 2);
  TempDir dir;
  PbaRun run{panel, strategies, tight_limits(), nullptr};
  const Outcome base = run.run(dir.file("base.db"), SubsystemMode::off);
  const Outcome enforced = run.run(dir.file("enforced.db"), SubsystemMode::enforced);
  ASSERT_TRUE(enforced.denials.count(DenyReason::exposure_limit));
  EXPECT_GT(enforced.denials.at(DenyReason::exposure_limit), 0u);
  EXPECT_LT(enforced.entry_notional, base.entry_notional);
  EXPECT_GT(run.pba->trims(), 0u);
  EXPECT_GT(enforced.pba_partials, 0u) << "a trim is a partial take in the ledger, with PBA in its trace";
}

}  // namespace hfos_pba_test
}  // namespace qtos
