// The flows that join the AI subsystems, each an end-to-end replay checked from its event log in order: a policy
// update from a planted trend, a planted crash, a strategy promotion, and the stages side by side; and health_ai().
// (Flow 4, model retraining, is tests/models/flow_retrain_test.cpp; flow 5, self-healing, is in healing_aelm_test.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <limits>
#include <optional>
#include <stdexcept>
#include <set>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/analytics/metrics.hpp"
#include "runtime/bus/event_log.hpp"
#include "runtime/exchange/paper_exchange.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/services/strategy_generator.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/subsystems/ai_hfos.hpp"
#include "runtime/subsystems/meta_strategy_controller.hpp"
#include "runtime/subsystems/subsystem_set.hpp"
#include "runtime/util/rng.hpp"
#include "tests/runtime/test_util.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace flows_test {

using test::TempDir;

/// The configuration of a stage, with extra QT_* settings, as `qtos` would load it.
Config stage_config(IntegrationStage stage, std::map<std::string, std::string> extra = {}) {
  ConfigSources src;
  src.environment = std::move(extra);
  src.environment["QT_AI_INTEGRATION_STAGE"] = std::string(stage_name(stage));
  return config_load(src);
}

std::vector<AnyEvent> event_log(const std::string& path) { return test::event_log_read(path); }

/// Strategies with a stop that trade on the market (long-biased ones first: a crash hurts them).
std::vector<LiveStrategy> trading_strategies(const MarketPanel& panel, std::size_t n, std::uint64_t seed) {
  test::GenomePick pick;
  pick.want = n;
  pick.min_trades = 40;
  pick.seed = seed;
  pick.tries = 2000;
  pick.accept = [](kernels::Genome& g) { return g.stop_atr > 0.0f; };
  return test::trading_strategies(panel, pick);
}

ReplayOptions replay_options(const std::string& ledger, const std::string& events, std::int32_t t_begin) {
  ReplayOptions o;
  o.t_begin = t_begin;
  o.exchange.market = MarketKind::linear_perpetual;
  o.exchange.initial_balance = 10'000;
  o.executor.leverage = 2;
  o.ledger_path = ledger;
  o.event_log_path = events;
  return o;
}

// ---- Flow 1: a planted trend -> TRENDING_UP -> AGGRESSIVE -> policy -> thresholds and limits follow -> analytics ----

TEST(Flows, APlantedTrendMakesMscAggressiveAndThePolicyLimitsFollow) {
  SynthOptions so;
  so.n_symbols = 16;
  so.n_bars = 1600;
  so.seed = 21;
  so.late_listing_fraction = 0;
  so.gap_rate = 0;
  so.planted_momentum = 0.15;
  so.regime_schedule = {{0, SynthRegime::ranging}, {700, SynthRegime::trend_up}};
  const MarketPanel panel = synth_generate(so).panel;
  const auto strategies = trading_strategies(panel, 3, 5);
  ASSERT_EQ(strategies.size(), 3u);
  TempDir dir;
  // AUTONOMY: PBA enforces the policy's position limit too; MSC writes the policy every hour of replay time.
  const Config cfg = stage_config(IntegrationStage::autonomy,
                                  {{"QT_MSC_ENABLED", "true"}, {"QT_MSC_AUTO_MODE", "true"}, {"QT_MSC_UPDATE_INTERVAL", "3600"}});
  ReplayOptions o = replay_options(dir.file("f1.db"), dir.file("f1.qel"), 300);
  Policy p = policy_from_config(cfg);
  p.max_open_positions = 4;
  p.max_risk_per_trade = 1.0;
  p.min_confidence = 0.5;
  o.policy = p;
  std::shared_ptr<SubsystemSet> set;
  o.subsystem_factory = subsystem_set_factory(&set);
  replay_run(panel, cfg, strategies, {}, o);
  ASSERT_TRUE(set);

  // In order: RegimeChanged TRENDING_UP after the planted shift -> PolicyUpdated AGGRESSIVE by MSC-AI -> positions beyond
  // the NORMAL limit, only while (or within the fill's bar after) an AGGRESSIVE policy is in force.
  const TimeNs shift = panel.time_ms(700) * kNsPerMillisecond;
  const TimeNs bar = panel.interval_ms() * kNsPerMillisecond;
  TimeNs trending_at = -1, aggressive_at = -1, aggressive_until = -1;
  std::uint64_t aggressive_version = 0;
  RiskMode mode = RiskMode::normal;
  int open = 0, most_after = 0;
  for (const AnyEvent& e : event_log(dir.file("f1.qel"))) {
    if (const auto* r = std::get_if<RegimeChanged>(&e); r && r->symbol.empty() && r->current == Regime::trending_up && trending_at < 0 &&
                                                          r->header.ts >= shift)
      trending_at = r->header.ts;
    if (const auto* u = std::get_if<PolicyUpdated>(&e)) {
      if (u->risk_mode == RiskMode::aggressive && aggressive_at < 0 && trending_at >= 0) {
        EXPECT_EQ(u->updated_by, "MSC-AI");
        EXPECT_NE(u->changed_fields.find("max_open_positions"), std::string::npos) << u->changed_fields;
        aggressive_at = u->header.ts;
        aggressive_version = u->version;
      }
      if (mode == RiskMode::aggressive && u->risk_mode != RiskMode::aggressive) aggressive_until = u->header.ts;
      mode = u->risk_mode;
    }
    if (const auto* po = std::get_if<PositionOpened>(&e)) {
      ++open;
      // The Risk OS and PBA follow the policy: more than 4 only under AGGRESSIVE (6), or filled at the bar after it ended.
      EXPECT_LE(open, 6) << "at " << po->header.ts;
      if (open > 4) {
        EXPECT_TRUE(mode == RiskMode::aggressive || po->header.ts <= aggressive_until + bar) << "position " << open << " at " << po->header.ts;
      }
      if (aggressive_at >= 0) most_after = std::max(most_after, open);
    }
    if (std::holds_alternative<PositionClosed>(e)) --open;
  }
  ASSERT_GE(trending_at, shift) << "no TRENDING_UP after the planted trend";
  ASSERT_GT(aggressive_at, trending_at) << "MSC never went AGGRESSIVE after the trend";
  EXPECT_GT(most_after, 4) << "the AGGRESSIVE limit was never used";

  const Ledger l(dir.file("f1.db"), store::OpenMode::existing);
  // The executor decided under the new policy version from its first decision after the update (thresholds reloaded).
  bool under_new = false;
  for (const OrderRecord& rec : l.orders())
    if (rec.created > aggressive_at && rec.policy_version >= aggressive_version) under_new = true;
  EXPECT_TRUE(under_new);
  // Analytics logs the change: the equity points carry the risk mode.
  bool logged = false;
  for (const EquityPoint& pt : l.equity_curve())
    if (pt.ts >= aggressive_at && pt.risk_mode == RiskMode::aggressive) logged = true;
  EXPECT_TRUE(logged);
}

// ---- Flow 2: a planted crash -> CRASH -> DEFENSIVE, SAFE/CRITICAL -> smaller, fewer -> a smaller crash drawdown ----

/// Two momentum longs (ROC(n) > 0 in, ROC(n) < 0 out) without a stop: fully invested in a rising market when it breaks.
std::vector<LiveStrategy> momentum_longs() {
  std::vector<LiveStrategy> out;
  for (std::int32_t period : {0, 1}) {
    kernels::Genome g{};
    g.entry[0] = {static_cast<std::int32_t>(kernels::CondKind::mom_up), period, 0, 0.0f};
    g.exit_rule = {static_cast<std::int32_t>(kernels::CondKind::mom_down), period, 0, 0.0f};
    g.side = 0;
    g.size = 0.9f;
    g = kernels::genome_normalize(g);
    out.push_back(LiveStrategy{genome_id(g), g, 0.0, {}});
  }
  return out;
}

TEST(Flows, APlantedCrashIsMetDefensivelyAndTheCrashDrawdownIsSmaller) {
  SynthOptions so;
  so.n_symbols = 16;
  so.n_bars = 1400;
  so.seed = 33;
  so.late_listing_fraction = 0;
  so.gap_rate = 0;
  so.planted_momentum = 0.15;
  constexpr std::int32_t kCrash = 900, kCrashBars = 60;
  so.regime_schedule = {{0, SynthRegime::trend_up}, {kCrash, SynthRegime::shock}, {kCrash + kCrashBars, SynthRegime::ranging}};
  const MarketPanel panel = synth_generate(so).panel;
  const auto strategies = momentum_longs();
  const TimeNs crash = panel.time_ms(kCrash) * kNsPerMillisecond, hour = 3600 * kNsPerSecond;
  TempDir dir;
  struct Run {
    double crash_drawdown = 0;  // from the best equity of the day before the crash to the worst of the 4.5 days after it
    std::vector<AnyEvent> events;
    double crash_entry_notional = 0;
  };
  auto run = [&](const std::string& name, bool subsystems) {
    const Config cfg = subsystems ? stage_config(IntegrationStage::autonomy,
                                                 {{"QT_MSC_ENABLED", "true"}, {"QT_MSC_AUTO_MODE", "true"}, {"QT_MSC_UPDATE_INTERVAL", "3600"}})
                                  : Config{};
    ReplayOptions o = replay_options(dir.file(name + ".db"), dir.file(name + ".qel"), 300);
    Policy p = policy_from_config(cfg);
    p.max_open_positions = 8;
    p.max_risk_per_trade = 1.0;
    p.min_confidence = 0.5;
    p.max_daily_drawdown_pct = 1.0;  // a tight daily limit: AI-HFOS's SAFE and CRITICAL are fractions of it
    o.policy = p;
    if (subsystems) o.subsystem_factory = subsystem_set_factory();
    replay_run(panel, cfg, strategies, {}, o);
    const Ledger l(dir.file(name + ".db"), store::OpenMode::existing);
    Run r;
    double before = 0, after = std::numeric_limits<double>::infinity();
    for (const EquityPoint& pt : l.equity_curve()) {
      if (pt.ts <= crash && pt.ts > crash - 24 * hour) before = std::max(before, pt.equity);
      if (pt.ts > crash && pt.ts < crash + 108 * hour) after = std::min(after, pt.equity);
    }
    r.crash_drawdown = 1 - after / before;
    for (const OrderRecord& rec : l.orders())
      if (rec.purpose == OrderPurpose::entry && rec.status == OrderStatus::filled && rec.created >= crash && rec.created < crash + kCrashBars * hour)
        r.crash_entry_notional += rec.filled_qty * rec.avg_price;
    r.events = event_log(dir.file(name + ".qel"));
    return r;
  };
  const Run off = run("off", false);
  const Run on = run("on", true);
  // In order: CRASH (or VOLATILE) -> DEFENSIVE by MSC-AI -> AI-HFOS SAFE (then CRITICAL when the drawdown grows).
  TimeNs alarm_at = -1, defensive_at = -1, safe_at = -1, critical_at = -1;
  std::size_t blocked = 0;
  for (const AnyEvent& e : on.events) {
    if (const auto* r = std::get_if<RegimeChanged>(&e);
        r && r->symbol.empty() && (r->current == Regime::crash || r->current == Regime::high_volatility) && r->header.ts >= crash && alarm_at < 0)
      alarm_at = r->header.ts;
    if (const auto* u = std::get_if<PolicyUpdated>(&e); u && u->risk_mode == RiskMode::defensive && alarm_at >= 0 && defensive_at < 0)
      defensive_at = u->header.ts;
    if (const auto* d = std::get_if<SubsystemDecided>(&e); d && d->subsystem.view() == "AI-HFOS" && d->header.ts >= crash) {
      if (d->detail.find("-> SAFE") != std::string::npos && safe_at < 0) safe_at = d->header.ts;
      if (d->detail.find("-> CRITICAL") != std::string::npos && critical_at < 0) critical_at = d->header.ts;
    }
    if (const auto* o = std::get_if<OrderDenied>(&e); o && o->header.ts >= crash && o->reason == DenyReason::system_risk) ++blocked;
  }
  ASSERT_GE(alarm_at, crash) << "no CRASH or VOLATILE regime after the planted crash";
  ASSERT_GE(defensive_at, alarm_at) << "MSC-AI did not go DEFENSIVE";
  ASSERT_GE(safe_at, crash) << "AI-HFOS did not go SAFE";
  if (critical_at >= 0) {
    EXPECT_GE(critical_at, safe_at);
    EXPECT_GT(blocked, 0u);
  }
  std::printf("[ crash flow ] crash drawdown: subsystems off %.2f%%, AUTONOMY %.2f%% (%.0f%% smaller); entries in the crash %.0f vs %.0f quote; "
              "AI-HFOS SAFE after %.0f h, CRITICAL %s, %zu SYSTEM_RISK denials\n",
              100 * off.crash_drawdown, 100 * on.crash_drawdown, 100 * (1 - on.crash_drawdown / off.crash_drawdown), on.crash_entry_notional,
              off.crash_entry_notional, static_cast<double>(safe_at - crash) / static_cast<double>(hour), critical_at >= 0 ? "yes" : "no", blocked);
  ::testing::Test::RecordProperty("crash_drawdown_off_pct", std::to_string(100 * off.crash_drawdown));
  ::testing::Test::RecordProperty("crash_drawdown_on_pct", std::to_string(100 * on.crash_drawdown));
  // The crash costs less with the subsystems: at least a fifth less (measured: see the line above).
  EXPECT_LT(on.crash_drawdown, off.crash_drawdown * 0.8);
  EXPECT_LT(on.crash_entry_notional, off.crash_entry_notional);
}

// ---- Flow 3: a shadow strategy beats the thresholds -> StrategyPromoted -> the executor trades it -> analytics ----

TEST(Flows, AShadowStrategyIsPromotedAndTradedFromItsPromotion) {
  SynthOptions so;
  so.n_symbols = 6;
  so.n_bars = 1200;
  so.seed = 4;
  so.late_listing_fraction = 0;
  so.gap_rate = 0;
  so.planted_momentum = 0.25;
  so.regime_schedule = {{0, SynthRegime::trend_up}};
  const MarketPanel panel = synth_generate(so).panel;
  // A strategy LIVE from the start beside the candidate.
  const auto strategies = trading_strategies(panel, 1, 17);
  ASSERT_EQ(strategies.size(), 1u);
  // The shadow candidate: the best of a few random genomes on this market (a strategy that earns its promotion).
  kernels::Genome good{};
  {
    Rng rng(29);
    const StrategyFeatures f = strategy_features_compute(panel.view(), true);
    const auto backend = detail::backtest_cpu_backend();
    double best = -1e9;
    for (int i = 0; i < 300; ++i) {
      const kernels::Genome g = genome_random(rng);
      const std::vector<kernels::Genome> one = {g};
      BacktestRequest req;
      req.panel = panel.view();
      req.features = &f;
      req.genomes = one;
      const BacktestMetrics m = backtest_metrics(backend->run(req).genome[0], 8766);
      if (m.trades >= 60 && m.sharpe > best) best = m.sharpe, good = g;
    }
    ASSERT_GT(best, 1.0);
  }
  const std::string good_id = genome_id(good);
  TempDir dir;
  StrategyRepository repo(dir.file("s.db"));
  StrategyRecord rec;
  rec.genome = good;
  rec.origin = "test";
  repo.upsert(rec, panel.time_ms(0));
  ASSERT_TRUE(repo.transition(good_id, StrategyStatus::shadow, "out-of-sample ok", panel.time_ms(0)));
  const auto backend = detail::backtest_cpu_backend();
  StrategyGeneratorOptions sgo;
  sgo.shadow_days = 10;
  sgo.promote_min_sharpe = 0.5;
  sgo.promote_min_win_rate = 0.3;
  sgo.min_trades = 10;
  ReplayOptions o = replay_options(dir.file("f3.db"), dir.file("f3.qel"), 100);
  o.strategy_lookup = [&](const std::string& id) -> std::optional<LiveStrategy> {
    const auto r = repo.get(id);
    if (!r || r->status != StrategyStatus::live) return std::nullopt;
    return LiveStrategy{r->id, r->genome, 0.0, {}};
  };
  std::shared_ptr<StrategyGeneratorAI> sg;
  o.subsystem_factory = [&](ReplayContext& ctx) {
    sg = std::make_shared<StrategyGeneratorAI>(ctx.bus, SubsystemMode::enforced, repo, ctx.policy, *backend, sgo);
    ctx.services.push_back(sg);
    return std::vector<std::shared_ptr<TradingSubsystem>>{};
  };
  replay_run(panel, Config{}, strategies, {}, o);
  ASSERT_EQ(repo.get(good_id)->status, StrategyStatus::live) << "the shadow strategy was not promoted";

  // In order: StrategyPromoted to LIVE -> the first order of the strategy -> its trades in the ledger.
  TimeNs promoted_at = -1, first_order_at = -1;
  for (const AnyEvent& e : event_log(dir.file("f3.qel"))) {
    if (const auto* p = std::get_if<StrategyPromoted>(&e); p && p->to == StrategyStage::live && p->strategy.view() == good_id)
      promoted_at = p->header.ts;
    if (const auto* s = std::get_if<OrderSubmitted>(&e); s && s->strategy.view() == good_id && first_order_at < 0) {
      EXPECT_GE(promoted_at, 0) << "an order of the strategy before its promotion";
      first_order_at = s->header.ts;
    }
  }
  ASSERT_GE(promoted_at, panel.time_ms(0) * kNsPerMillisecond + 10 * 86'400 * kNsPerSecond);  // after the shadow period
  ASSERT_GT(first_order_at, promoted_at);
  const Ledger l(dir.file("f3.db"), store::OpenMode::existing);
  const auto trades = l.trades();
  std::size_t its = 0;
  for (const ClosedTrade& t : trades) {
    if (t.strategy.view() != good_id) continue;
    ++its;
    EXPECT_GT(t.entry_time, promoted_at);
  }
  EXPECT_GT(its, 5u);
  // Analytics tracks it beside the strategy that traded from the start.
  bool tracked = false;
  for (const StrategyMetrics& m : metrics_by_strategy(trades, panel.time_ms(panel.n_bars() - 1) * kNsPerMillisecond))
    tracked = tracked || (m.strategy_id == good_id && m.total_trades == static_cast<std::int64_t>(its));
  EXPECT_TRUE(tracked);
}

// ---- Flow 6: the same replay under each stage; OBSERVATION equals the baseline, each later stage only what it may ----

struct StageOutcome {
  std::vector<ClosedTrade> trades;
  std::map<DenyReason, std::uint64_t> denials;
  std::map<std::uint64_t, int> entries_per_position;
  std::size_t limit_entries = 0, subsystem_exits = 0, partial_exits = 0;
  double final_equity = 0;
};

TEST(Flows, EachStageDiffersFromTheBaselineOnlyInWhatItsPresetsAllow) {
  SynthOptions so;
  so.n_symbols = 10;
  so.n_bars = 1200;
  so.seed = 8;
  so.late_listing_fraction = 0;
  so.gap_rate = 0;
  so.planted_momentum = 0.15;
  so.regime_schedule = {{0, SynthRegime::trend_up}, {700, SynthRegime::shock}, {740, SynthRegime::ranging}};
  const MarketPanel panel = synth_generate(so).panel;
  const auto strategies = trading_strategies(panel, 3, 12);
  TempDir dir;
  auto run = [&](const std::string& name, std::optional<IntegrationStage> stage) {
    const Config cfg = stage ? stage_config(*stage) : Config{};
    ReplayOptions o = replay_options(dir.file(name + ".db"), dir.file(name + ".qel"), 200);
    Policy p = policy_from_config(cfg);
    p.max_open_positions = 6;
    p.max_risk_per_trade = 1.0;
    p.min_confidence = 0.5;
    o.policy = p;
    if (stage) o.subsystem_factory = subsystem_set_factory();
    const ReplayResult r = replay_run(panel, cfg, strategies, {}, o);
    const Ledger l(dir.file(name + ".db"), store::OpenMode::existing);
    StageOutcome s;
    s.trades = l.trades();
    s.final_equity = r.final_equity;
    for (const OrderRecord& rec : l.orders()) {
      if (rec.status == OrderStatus::denied && rec.deny_reason) s.denials[*rec.deny_reason] += 1 + rec.repeats;
      if (rec.purpose == OrderPurpose::entry && rec.status == OrderStatus::filled) {
        ++s.entries_per_position[rec.position_id];
        s.limit_entries += rec.request.type == OrderType::limit;
      }
      if (rec.purpose == OrderPurpose::exit && rec.status == OrderStatus::filled && rec.filled_qty > 0) ++s.partial_exits;
    }
    for (const ClosedTrade& t : s.trades) s.subsystem_exits += t.reason == CloseReason::subsystem_exit;
    return s;
  };
  const StageOutcome base = run("baseline", std::nullopt);
  ASSERT_GT(base.trades.size(), 30u);
  // OBSERVATION: every subsystem off or observing: the baseline to the last bit.
  const StageOutcome obs = run("observation", IntegrationStage::observation);
  ASSERT_EQ(obs.trades.size(), base.trades.size());
  for (std::size_t i = 0; i < base.trades.size(); ++i) {
    EXPECT_EQ(obs.trades[i].entry_time, base.trades[i].entry_time);
    EXPECT_EQ(obs.trades[i].pnl, base.trades[i].pnl);
  }
  EXPECT_EQ(obs.final_equity, base.final_equity);
  EXPECT_EQ(obs.denials, base.denials);
  // A subsystem's hard decisions: none before its preset enforces it.
  auto hard_denials = [](const StageOutcome& s) {
    std::uint64_t n = 0;
    for (DenyReason r : {DenyReason::system_risk, DenyReason::exposure_limit, DenyReason::cluster_limit, DenyReason::slippage_cooldown,
                         DenyReason::service_degraded, DenyReason::universe_filter, DenyReason::hook_blocked})
      if (auto it = s.denials.find(r); it != s.denials.end()) n += it->second;
    return n;
  };
  auto scaled_in = [](const StageOutcome& s) {
    int n = 0;
    for (const auto& [id, k] : s.entries_per_position) n += k > 1;
    return n;
  };
  // PARTIAL: AI-HFOS, PAL and AELM advise, Self-Healing observes: sizes, thresholds and order types may change;
  // nothing is denied by a subsystem, no position is exited, scaled into or trimmed by one.
  const StageOutcome partial = run("partial", IntegrationStage::partial);
  EXPECT_EQ(hard_denials(partial), 0u);
  EXPECT_EQ(partial.subsystem_exits, 0u);
  EXPECT_EQ(scaled_in(partial), 0);
  // COORDINATION: AI-HFOS and AELM enforce, Self-Healing protects; PIL, PBA and PAL still only advise: no PIL exit, no
  // PBA denial or trim, no PAL scale-in.
  const StageOutcome coordination = run("coordination", IntegrationStage::coordination);
  EXPECT_EQ(coordination.subsystem_exits, 0u);
  EXPECT_EQ(coordination.denials.count(DenyReason::exposure_limit) + coordination.denials.count(DenyReason::cluster_limit), 0u);
  EXPECT_EQ(scaled_in(coordination), 0);
  // AUTONOMY: everything enforced: PIL exits TOXIC positions, and the run differs from the baseline.
  const StageOutcome autonomy = run("autonomy", IntegrationStage::autonomy);
  EXPECT_GT(autonomy.subsystem_exits, 0u);
  EXPECT_NE(autonomy.final_equity, base.final_equity);
}

// ---- health_ai() ----

TEST(Flows, HealthAiReportsEveryServiceInTheDesignShape) {
  SimClock clock(1'704'067'200LL * kNsPerSecond);
  EventBus bus(clock);
  PolicyStore policy(std::make_unique<MemoryPolicyBackend>(), clock, &bus, Policy{});
  PaperExchange venue(PaperExchangeConfig{}, clock);
  const Config cfg = stage_config(IntegrationStage::coordination);
  SubsystemSet set(SubsystemDeps{cfg, bus, policy, venue, ""});
  HealthAi before = health_ai(set, cfg.stage, false);
  EXPECT_FALSE(before.initialized);  // active subsystems not started yet
  EXPECT_TRUE(set.start().empty());
  const HealthAi h = health_ai(set, cfg.stage, true);
  EXPECT_TRUE(h.initialized);
  ASSERT_EQ(h.services.size(), 7u);
  EXPECT_EQ(h.services[0].name, "AI-HFOS");
  EXPECT_EQ(h.services[0].mode, SubsystemMode::enforced);
  EXPECT_EQ(h.services[6].name, "MSC-AI");
  EXPECT_EQ(h.services[6].mode, SubsystemMode::off);  // QT_MSC_ENABLED is false
  const std::string json = health_ai_json(h);
  for (const char* key : {"\"initialized\":true", "\"integration_stage\":\"COORDINATION\"", "\"emergency_brake\":true", "\"AI-HFOS\":{",
                          "\"SELF_HEALING\":{", "\"mode\":\"PROTECTIVE\"", "\"state\":\"RUNNING\"", "\"error_count\":0"})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
  ASSERT_NE(set.find("pil"), nullptr);
  EXPECT_EQ(set.find("pil")->name(), "PIL");
  EXPECT_EQ(set.find("nope"), nullptr);
  set.stop("test done");
}

}  // namespace flows_test
}  // namespace qtos
