// The Meta Strategy Controller: the regime detector (unit cases and its confusion matrix on the synthetic market's
// labelled regimes), the risk-mode hysteresis, policy updates through a real PolicyStore, the health alert, and every
// mode in a replay (OBSERVE changes nothing, ADVISORY publishes without writing, ENFORCED changes the trading).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/subsystems/meta_strategy_controller.hpp"
#include "runtime/subsystems/regime_detector.hpp"
#include "runtime/util/rng.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace msc_test {

// ---- the detector ------------------------------------------------------------------------------------------------

/// A panel of `symbols` x `bars` hourly bars whose log returns are drift + vol x N(0,1) (a common factor share `common`).
MarketPanel toy_panel(std::int32_t symbols, std::int32_t bars, double drift, double vol, double common, std::uint64_t seed) {
  std::vector<std::string> names;
  for (std::int32_t s = 0; s < symbols; ++s) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "T%dUSDT", s);
    names.emplace_back(buf);
  }
  MarketPanel p(names, bars, 0, 3'600'000);
  Rng rng(seed);
  std::vector<double> factor(static_cast<std::size_t>(bars));
  for (auto& f : factor) f = rng.normal();
  for (std::int32_t s = 0; s < symbols; ++s) {
    auto c = p.series_mut(Column::close, s);
    double lp = std::log(100.0);
    for (std::int32_t t = 0; t < bars; ++t) {
      lp += drift + vol * (std::sqrt(common) * factor[static_cast<std::size_t>(t)] + std::sqrt(1 - common) * rng.normal());
      c[static_cast<std::size_t>(t)] = static_cast<float>(std::exp(lp));
    }
  }
  p.valid_ranges_recompute();
  return p;
}

MarketConditions run_to_end(const MarketPanel& p, RegimeDetectorOptions o = {}) {
  RegimeDetector d(o);
  for (std::int32_t t = 0; t < p.n_bars(); ++t) d.on_panel_bar(p, t);
  return d.analyze();
}

TEST(MscRegimeDetector, CleanUpTrendIsTrendingUp) {
  const MarketConditions c = run_to_end(toy_panel(20, 1000, 0.002, 0.01, 0.5, 1));
  EXPECT_EQ(c.regime, Regime::trending_up) << c.describe();
  EXPECT_GT(c.trend, 1.0);
  EXPECT_GT(c.breadth, 0.9);
  EXPECT_GT(c.confidence, 0.5);
  EXPECT_NEAR(c.correlation, 0.5, 0.15);
  EXPECT_EQ(c.symbols, 20);
}

TEST(MscRegimeDetector, FlatNoiseIsRanging) {
  const MarketConditions c = run_to_end(toy_panel(20, 1000, 0.0, 0.01, 0.3, 2));
  EXPECT_EQ(c.regime, Regime::ranging) << c.describe();
  EXPECT_NEAR(c.volatility_ratio, 1.0, 0.3);
  EXPECT_NEAR(c.correlation, 0.3, 0.15);
}

TEST(MscRegimeDetector, ACrashIsCrashAndAVolatileChopIsVolatile) {
  // 900 calm bars, then 12 bars of a joint fall at five times the volatility.
  MarketPanel p = toy_panel(20, 912, 0.0, 0.01, 0.4, 3);
  Rng rng(9);
  for (std::int32_t s = 0; s < p.n_symbols(); ++s) {
    auto c = p.series_mut(Column::close, s);
    for (std::int32_t t = 900; t < 912; ++t) c[static_cast<std::size_t>(t)] = c[static_cast<std::size_t>(t - 1)] * static_cast<float>(std::exp(-0.03 + 0.01 * rng.normal()));
  }
  MarketConditions c = run_to_end(p);
  EXPECT_EQ(c.regime, Regime::crash) << c.describe();
  EXPECT_LT(c.fast_breadth, 0.1);
  // The same volatility without the fall: VOLATILE, not CRASH.
  MarketPanel q = toy_panel(20, 912, 0.0, 0.01, 0.4, 3);
  for (std::int32_t s = 0; s < q.n_symbols(); ++s) {
    auto c2 = q.series_mut(Column::close, s);
    for (std::int32_t t = 900; t < 912; ++t)
      c2[static_cast<std::size_t>(t)] = c2[static_cast<std::size_t>(t - 1)] * static_cast<float>(std::exp((t % 2 ? 0.04 : -0.04) + 0.01 * rng.normal()));
  }
  c = run_to_end(q);
  EXPECT_EQ(c.regime, Regime::high_volatility) << c.describe();
}

TEST(MscRegimeDetector, UnknownWhileWarmingUpAndStaleSymbolsLeftOut) {
  const MarketPanel p = toy_panel(5, 1000, 0.002, 0.01, 0.5, 4);
  RegimeDetector d;
  for (std::int32_t t = 0; t < 200; ++t) d.on_panel_bar(p, t);
  EXPECT_EQ(d.analyze().regime, Regime::unknown);
  EXPECT_EQ(d.analyze().symbols, 0);
  for (std::int32_t t = 200; t < 1000; ++t) d.on_panel_bar(p, t);
  EXPECT_EQ(d.analyze().symbols, 5);
  // Only one symbol keeps trading: the four others go stale and the detector has too few symbols.
  const std::int32_t s0 = d.symbol_index("T0USDT");
  for (std::int32_t t = 1000; t < 1010; ++t) d.on_close(s0, t, 100.0 + t);
  EXPECT_EQ(d.analyze().symbols, 1);
  EXPECT_EQ(d.analyze().regime, Regime::unknown);
  EXPECT_THROW(d.on_close(99, 2000, 1.0), std::invalid_argument);
  RegimeDetectorOptions bad;
  bad.long_vol_window = 10;
  EXPECT_THROW(RegimeDetector{bad}, std::invalid_argument);
}

// ---- the confusion matrix on the synthetic market -------------------------------------------------------------------

/// Rows: the synthetic market's label; columns: the detected regime (UNKNOWN, TRENDING_UP, TRENDING_DOWN, RANGING,
/// VOLATILE, LOW_VOLATILITY, CRASH).
struct Confusion {
  std::array<std::array<std::int64_t, 7>, 4> n{};
  std::int64_t row(int r) const {
    std::int64_t s = 0;
    for (auto v : n[static_cast<std::size_t>(r)]) s += v;
    return s;
  }
  double recall(int r, std::initializer_list<Regime> good) const {
    std::int64_t hit = 0;
    for (Regime g : good) hit += n[static_cast<std::size_t>(r)][static_cast<std::size_t>(g)];
    return row(r) ? static_cast<double>(hit) / static_cast<double>(row(r)) : 0.0;
  }
  double up() const { return recall(0, {Regime::trending_up}); }
  double down() const { return recall(1, {Regime::trending_down}); }
  double ranging() const { return recall(2, {Regime::ranging}); }
  double shock() const { return recall(3, {Regime::high_volatility, Regime::crash}); }
  /// Mean recall over the labels that occur (a seed may have no shock at all).
  double balanced() const {
    const double rec[] = {up(), down(), ranging(), shock()};
    double sum = 0;
    int rows = 0;
    for (int r = 0; r < 4; ++r)
      if (row(r)) sum += rec[r], ++rows;
    return rows ? sum / rows : 0.0;
  }
  std::string text() const {
    std::string out = "truth \\ detected   TRENDING_UP TRENDING_DOWN  RANGING VOLATILE    CRASH  recall\n";
    const Regime cols[] = {Regime::trending_up, Regime::trending_down, Regime::ranging, Regime::high_volatility, Regime::crash};
    const double rec[] = {up(), down(), ranging(), shock()};
    for (int r = 0; r < 4; ++r) {
      char buf[200];
      int k = std::snprintf(buf, sizeof buf, "%-18s", synth_regime_name(static_cast<SynthRegime>(r)));
      for (Regime c : cols) k += std::snprintf(buf + k, sizeof buf - static_cast<std::size_t>(k), " %12lld",
                                               static_cast<long long>(n[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)]));
      std::snprintf(buf + k, sizeof buf - static_cast<std::size_t>(k), "  %5.1f%%\n", 100 * rec[r]);
      out += buf;
    }
    char buf[80];
    std::snprintf(buf, sizeof buf, "balanced accuracy %.1f%%\n", 100 * balanced());
    return out + buf;
  }
};

/// The detector run over a synthetic market (30 symbols x 4000 hourly bars by default), read every `every` bars after
/// the warm-up, against the market's own label of that bar.
Confusion confusion(std::uint64_t seed, const RegimeDetectorOptions& o = {}, std::int32_t symbols = 30, std::int32_t bars = 4000,
                    std::int32_t every = 1) {
  SynthOptions so;
  so.n_symbols = symbols;
  so.n_bars = bars;
  so.seed = seed;
  const SynthMarket m = synth_generate(so);
  RegimeDetector d(o);
  Confusion cm;
  for (std::int32_t t = 0; t < bars; ++t) {
    d.on_panel_bar(m.panel, t);
    if (t % every) continue;
    const MarketConditions& c = d.analyze();
    if (c.regime == Regime::unknown) continue;
    ++cm.n[static_cast<std::size_t>(m.regimes[static_cast<std::size_t>(t)])][static_cast<std::size_t>(c.regime)];
  }
  return cm;
}

TEST(MscRegimeDetector, ConfusionMatrixOnTheSyntheticMarketsLabelledRegimes) {
  // Seeds 1-4 were used to tune the defaults; 5-8 were not. 30 symbols x 20000 hourly bars each (shocks are rare:
  // about 2 a year, 36 bars long).
  std::string report;
  std::array<Confusion, 2> sets;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    const Confusion cm = confusion(seed, {}, 30, 20000, 2);
    Confusion& into = sets[seed <= 4 ? 0 : 1];
    for (std::size_t r = 0; r < 4; ++r)
      for (std::size_t c = 0; c < 7; ++c) into.n[r][c] += cm.n[r][c];
    // Better than chance (25% balanced) on every single seed.
    EXPECT_GT(cm.balanced(), 0.40) << "seed " << seed << "\n" << cm.text();
  }
  report += "seeds 1-4 (tuned on):\n";
  report += sets[0].text();
  report += "seeds 5-8 (held out):\n";
  report += sets[1].text();
  std::printf("%s", report.c_str());
  RecordProperty("confusion_matrix", report);  // into the test log (--gtest_output=xml)
  for (const Confusion& cm : sets) {
    // Floors a broken detector fails: one that always says RANGING scores 25% balanced and 0% on the others.
    EXPECT_GT(cm.balanced(), 0.50) << cm.text();
    EXPECT_GT(cm.up(), 0.28) << cm.text();
    EXPECT_GT(cm.down(), 0.22) << cm.text();
    EXPECT_GT(cm.ranging(), 0.60) << cm.text();
    EXPECT_GT(cm.shock(), 0.70) << cm.text();
  }
}

// ---- the risk-mode hysteresis --------------------------------------------------------------------------------------

constexpr TimeNs kHour = 3600 * kNsPerSecond;

TEST(MscHysteresis, BorderlineInputsDoNotFlap) {
  MscOptions o;  // AGGRESSIVE after 6 h of TRENDING_UP, out after 2 h without; DEFENSIVE left after 12 h calm
  o.aggressive_exit_after_s = 2 * 3600;
  RiskModeHysteresis h(o);
  int changes = 0;
  RiskMode last = h.mode();
  auto step = [&](Regime r, TimeNs t) {
    const RiskMode m = h.step(r, t);
    changes += m != last;
    last = m;
    return m;
  };
  // A trend that flickers on and off every hour never makes AGGRESSIVE.
  for (int i = 0; i < 48; ++i) step(i % 2 ? Regime::ranging : Regime::trending_up, i * kHour);
  EXPECT_EQ(changes, 0);
  EXPECT_EQ(h.mode(), RiskMode::normal);
  // A trend that holds 6 h does; a flicker then does not undo it.
  TimeNs t = 48 * kHour;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(step(Regime::trending_up, t + i * kHour), RiskMode::normal);
  EXPECT_EQ(step(Regime::trending_up, t + 6 * kHour), RiskMode::aggressive);
  t += 7 * kHour;
  for (int i = 0; i < 24; ++i) EXPECT_EQ(step(i % 2 ? Regime::trending_up : Regime::ranging, t + i * kHour), RiskMode::aggressive);
  t += 24 * kHour;
  EXPECT_EQ(step(Regime::ranging, t), RiskMode::aggressive);
  EXPECT_EQ(step(Regime::ranging, t + 2 * kHour), RiskMode::normal);
  EXPECT_EQ(changes, 2);
  // VOLATILE is DEFENSIVE at once; alternating VOLATILE and calm stays DEFENSIVE; 12 calm hours end it.
  t += 3 * kHour;
  EXPECT_EQ(step(Regime::high_volatility, t), RiskMode::defensive);
  for (int i = 1; i <= 24; ++i) EXPECT_EQ(step(i % 2 ? Regime::ranging : Regime::crash, t + i * kHour), RiskMode::defensive);
  t += 25 * kHour;
  for (int i = 0; i < 12; ++i) EXPECT_EQ(step(Regime::trending_down, t + i * kHour), RiskMode::defensive) << i;
  EXPECT_EQ(step(Regime::trending_down, t + 12 * kHour), RiskMode::normal);
  EXPECT_EQ(changes, 4);
  EXPECT_EQ(step(Regime::unknown, t + 13 * kHour), RiskMode::normal);
  // A health alert holds DEFENSIVE through a trend, then the calm spell counts from the alert.
  t += 14 * kHour;
  EXPECT_EQ(h.health_alert(t), RiskMode::defensive);
  EXPECT_EQ(step(Regime::trending_up, t + 3 * kHour), RiskMode::defensive);
  EXPECT_EQ(step(Regime::trending_up, t + 11 * kHour), RiskMode::defensive);
  EXPECT_EQ(step(Regime::trending_up, t + 12 * kHour), RiskMode::normal);
}

// ---- the controller on a bus -----------------------------------------------------------------------------------------

/// Fails the next append with a conflict once armed, as when another process wrote first.
class FlakyBackend final : public PolicyBackend {
 public:
  std::string describe() const override { return "flaky"; }
  Result<std::optional<Policy>> load_latest() override { return inner_.load_latest(); }
  Result<Unit> append(const Policy& next) override {
    if (conflicts_ > 0) {
      --conflicts_;
      return Error{ErrorCode::conflict, "another writer"};
    }
    return inner_.append(next);
  }
  Result<std::vector<Policy>> history(std::uint64_t from, std::size_t limit) override { return inner_.history(from, limit); }
  int conflicts_ = 0;

 private:
  MemoryPolicyBackend inner_;
};

Policy start_policy() {
  Policy p;
  p.min_confidence = 0.6;
  p.max_risk_per_trade = 0.02;
  p.max_open_positions = 6;
  p.max_leverage = 3;
  p.blocked_strategies = {"operator-blocked"};
  p.extra = {{"opp_ranker.weight.liquidity", "1.2"}};
  return p;
}

Config msc_config(SubsystemMode mode) {
  Config c;
  c.msc_enabled = true;
  c.msc_auto_mode = mode == SubsystemMode::enforced;
  c.stage = mode == SubsystemMode::observe ? IntegrationStage::observation : IntegrationStage::partial;
  c.msc_update_interval = 3600;
  return c;
}

struct MscRig {
  SimClock clock{0};
  EventBus bus{clock};
  FlakyBackend* backend = nullptr;
  std::unique_ptr<PolicyStore> store;
  std::vector<RegimeChanged> regimes;
  std::vector<PolicyUpdated> updates;
  std::vector<SubsystemDecided> decided;
  std::vector<Subscription> subs;
  explicit MscRig() {
    bus.bind_owner_thread();
    auto b = std::make_unique<FlakyBackend>();
    backend = b.get();
    store = std::make_unique<PolicyStore>(std::move(b), clock, &bus, start_policy());
    subs.push_back(bus.subscribe<RegimeChanged>("test", [this](const RegimeChanged& e) { regimes.push_back(e); }));
    subs.push_back(bus.subscribe<PolicyUpdated>("test", [this](const PolicyUpdated& e) { updates.push_back(e); }));
    subs.push_back(bus.subscribe<SubsystemDecided>("test", [this](const SubsystemDecided& e) { decided.push_back(e); }));
  }
};

/// 900 calm bars, then 12 bars of a joint fall, then calm again until `bars`.
MarketPanel crash_panel(std::int32_t bars) {
  MarketPanel p = toy_panel(12, bars, 0.0, 0.01, 0.4, 5);
  Rng rng(11);
  for (std::int32_t s = 0; s < p.n_symbols(); ++s) {
    auto c = p.series_mut(Column::close, s);
    double shift = 0;
    for (std::int32_t t = 900; t < bars; ++t) {
      if (t < 912) shift += -0.03 + 0.01 * rng.normal();
      c[static_cast<std::size_t>(t)] *= static_cast<float>(std::exp(shift));
    }
  }
  return p;
}

TEST(MscController, EnforcedCrashGoesDefensiveThroughThePolicyStoreAndBackWhenCalm) {
  MscRig rig;
  MscOptions o;
  o.calm_after_s = 0;
  o.confirm_after_s = 0;  // (the confirmation of a calm regime: MscController.ACalmRegimeIsAdoptedOnlyOnceItHolds)
  o.blocked_by_regime[Regime::crash] = {"momentum-1"};
  MetaStrategyController msc(rig.bus, msc_config(SubsystemMode::enforced), *rig.store, o);
  ASSERT_EQ(msc.mode(), SubsystemMode::enforced);
  EXPECT_FALSE(msc.answers(Hook::pre_trade_risk_check));
  ASSERT_TRUE(msc.start());
  const MarketPanel p = crash_panel(960);
  for (std::int32_t t = 0; t < 900; ++t) msc.detector().on_panel_bar(p, t);
  msc.update();
  ASSERT_EQ(msc.regime(), Regime::ranging);
  for (std::int32_t t = 900; t < 912; ++t) msc.detector().on_panel_bar(p, t);
  rig.clock.advance_by(kHour);
  rig.backend->conflicts_ = 1;  // another writer wins the first try: MSC re-reads and retries once
  msc.update();
  EXPECT_EQ(msc.regime(), Regime::crash);
  EXPECT_EQ(msc.risk_mode(), RiskMode::defensive);
  ASSERT_EQ(rig.regimes.size(), 2u);
  EXPECT_EQ(rig.regimes[1].previous, Regime::ranging);
  EXPECT_EQ(rig.regimes[1].current, Regime::crash);
  EXPECT_TRUE(rig.regimes[1].symbol.empty());
  ASSERT_EQ(rig.updates.size(), 2u);  // RANGING's weights, then the crash
  const PolicyUpdated& u = rig.updates[1];
  EXPECT_EQ(u.updated_by, "MSC-AI");
  EXPECT_EQ(u.risk_mode, RiskMode::defensive);
  EXPECT_EQ(u.changed_fields, "risk_mode,blocked_strategies,min_confidence,max_risk_per_trade,max_open_positions,extra");
  EXPECT_NE(u.reason.find("Regime CRASH ("), std::string::npos) << u.reason;
  EXPECT_NE(u.reason.find("risk mode NORMAL -> DEFENSIVE"), std::string::npos) << u.reason;
  auto pol = rig.store->current();
  EXPECT_EQ(pol->risk_mode, RiskMode::defensive);
  EXPECT_DOUBLE_EQ(pol->min_confidence, 0.7);
  EXPECT_DOUBLE_EQ(pol->max_risk_per_trade, 0.01);
  EXPECT_EQ(pol->max_open_positions, 3);
  EXPECT_EQ(pol->max_leverage, 3);  // never loosened, never touched
  EXPECT_EQ(pol->blocked_strategies, (std::set<std::string>{"momentum-1", "operator-blocked"}));
  EXPECT_EQ(pol->extra.at("opp_ranker.weight.liquidity"), "2");
  EXPECT_EQ(msc.policy_updates(), 2u);
  EXPECT_EQ(msc.status().errors, 0u);
  // Calm again: back to NORMAL, the starting settings, MSC's block lifted, the operator's kept.
  for (std::int32_t t = 912; t < 960; ++t) msc.detector().on_panel_bar(p, t);
  rig.clock.advance_by(kHour);
  msc.update();
  EXPECT_EQ(msc.risk_mode(), RiskMode::normal) << msc.last_decision();
  pol = rig.store->current();
  EXPECT_EQ(pol->max_open_positions, 6);
  EXPECT_DOUBLE_EQ(pol->min_confidence, 0.6);
  EXPECT_EQ(pol->blocked_strategies, (std::set<std::string>{"operator-blocked"}));
  EXPECT_EQ(pol->extra.at("opp_ranker.weight.liquidity"), "1.2");  // the starting value, restored
  // Two conflicts in a row: counted as an error (not thrown), and the policy is unchanged.
  rig.backend->conflicts_ = 2;
  const auto before = rig.store->version();
  rig.bus.publish(SourceName("test"), HealthStatusChanged{.component = "risk-os", .current = HealthLevel::failing});
  EXPECT_EQ(rig.store->version(), before);
  EXPECT_EQ(msc.status().errors, 1u);
}

TEST(MscController, ARestartScalesTheOperatorsPolicyNotMscsOwnAdjustments) {
  MscRig rig;
  MscOptions o;
  o.calm_after_s = 0;
  o.confirm_after_s = 0;
  o.blocked_by_regime[Regime::crash] = {"momentum-1"};
  const MarketPanel p = crash_panel(960);
  {
    MetaStrategyController msc(rig.bus, msc_config(SubsystemMode::enforced), *rig.store, o);
    ASSERT_TRUE(msc.start());
    for (std::int32_t t = 0; t < 900; ++t) msc.detector().on_panel_bar(p, t);
    msc.update();
    for (std::int32_t t = 900; t < 912; ++t) msc.detector().on_panel_bar(p, t);
    rig.clock.advance_by(kHour);
    msc.update();
    ASSERT_EQ(msc.risk_mode(), RiskMode::defensive);
    ASSERT_EQ(rig.store->current()->max_open_positions, 3);
  }
  // While the policy is DEFENSIVE, the operator sets the position limit to 4: that is the operator's value now.
  ASSERT_TRUE(rig.store->update(rig.store->version(), [](Policy& q) { q.max_open_positions = 4; }, "operator: four", "operator").ok());
  // A restart: a new controller on the same policy store, warming up again on the calm part of the market.
  MetaStrategyController again(rig.bus, msc_config(SubsystemMode::enforced), *rig.store, o);
  ASSERT_TRUE(again.start());
  for (std::int32_t t = 0; t < 900; ++t) again.detector().on_panel_bar(p, t);
  rig.clock.advance_by(kHour);
  again.update();
  ASSERT_EQ(again.regime(), Regime::ranging);
  auto pol = rig.store->current();
  EXPECT_EQ(pol->risk_mode, RiskMode::normal);
  EXPECT_DOUBLE_EQ(pol->min_confidence, 0.6) << "DEFENSIVE's 0.7 taken for the base";
  EXPECT_DOUBLE_EQ(pol->max_risk_per_trade, 0.02) << "DEFENSIVE's 0.01 taken for the base";
  EXPECT_EQ(pol->max_open_positions, 4) << "the operator's value";
  EXPECT_EQ(pol->blocked_strategies, (std::set<std::string>{"operator-blocked"})) << "the block the first MSC added is lifted";
  EXPECT_EQ(pol->extra.at("opp_ranker.weight.liquidity"), "1.2");
  // A crash again scales the operator's values once: 4 positions halved, the risk budget halved once.
  for (std::int32_t t = 900; t < 912; ++t) again.detector().on_panel_bar(p, t);
  rig.clock.advance_by(kHour);
  again.update();
  ASSERT_EQ(again.risk_mode(), RiskMode::defensive);
  pol = rig.store->current();
  EXPECT_EQ(pol->max_open_positions, 2);
  EXPECT_DOUBLE_EQ(pol->max_risk_per_trade, 0.01);
  EXPECT_DOUBLE_EQ(pol->min_confidence, 0.7);
  EXPECT_EQ(pol->blocked_strategies, (std::set<std::string>{"momentum-1", "operator-blocked"}));
}

TEST(MscController, ACalmRegimeIsAdoptedOnlyOnceItHoldsAndACrashAtOnce) {
  MscRig rig;
  MetaStrategyController msc(rig.bus, msc_config(SubsystemMode::enforced), *rig.store);  // confirm_after_s: 6 h
  ASSERT_TRUE(msc.start());
  const MarketPanel p = crash_panel(960);
  for (std::int32_t t = 0; t < 900; ++t) msc.detector().on_panel_bar(p, t);
  msc.update();
  ASSERT_EQ(msc.regime(), Regime::ranging);  // the first regime: at once
  for (std::int32_t t = 900; t < 912; ++t) msc.detector().on_panel_bar(p, t);
  rig.clock.advance_by(kHour);
  msc.update();
  EXPECT_EQ(msc.regime(), Regime::crash);  // alarming: at once
  // Calm readings again (from the first hour on): RANGING is adopted only once they have lasted 6 h.
  for (std::int32_t t = 912; t < 960; ++t) msc.detector().on_panel_bar(p, t);
  for (int h = 1; h <= 6; ++h) {
    rig.clock.advance_by(kHour);
    msc.update();
    EXPECT_EQ(msc.regime(), Regime::crash) << h << " h of calm readings";
  }
  rig.clock.advance_by(kHour);
  msc.update();
  // The calm reading (the week's window still holds the fall: TRENDING_DOWN here) replaces CRASH.
  EXPECT_NE(msc.regime(), Regime::crash);
  EXPECT_NE(msc.regime(), Regime::high_volatility);
  EXPECT_NE(msc.regime(), Regime::unknown);
}

TEST(MscController, HealthAlertMovesToDefensiveAtOnceAndHoldsIt) {
  MscRig rig;
  MetaStrategyController msc(rig.bus, msc_config(SubsystemMode::enforced), *rig.store);
  ASSERT_TRUE(msc.start());
  const MarketPanel p = toy_panel(12, 900, 0.0, 0.01, 0.4, 6);
  for (std::int32_t t = 0; t < 900; ++t) msc.detector().on_panel_bar(p, t);
  msc.update();
  ASSERT_EQ(msc.risk_mode(), RiskMode::normal);
  const std::size_t n = rig.updates.size();
  // DEGRADED from a component that is not critical: no alert.
  rig.bus.publish(SourceName("test"), HealthStatusChanged{.component = "PIL", .current = HealthLevel::degraded});
  EXPECT_EQ(msc.risk_mode(), RiskMode::normal);
  // DEGRADED from the executor: DEFENSIVE at once.
  rig.bus.publish(SourceName("test"), HealthStatusChanged{.component = "executor", .current = HealthLevel::degraded, .detail = "slow venue"});
  EXPECT_EQ(msc.risk_mode(), RiskMode::defensive);
  ASSERT_EQ(rig.updates.size(), n + 1);
  EXPECT_EQ(rig.updates.back().reason.rfind("health alert: executor", 0), 0u) << rig.updates.back().reason;
  EXPECT_EQ(rig.store->current()->risk_mode, RiskMode::defensive);
  // FAILING from anyone is an alert too (already DEFENSIVE: the hold is extended, nothing rewritten).
  rig.bus.publish(SourceName("test"), HealthStatusChanged{.component = "PIL", .current = HealthLevel::failing});
  EXPECT_EQ(rig.updates.size(), n + 1);
  EXPECT_EQ(rig.decided.back().action, "HEALTH_ALERT");
  // Held through calm markets for the hold and the calm spell after it.
  rig.clock.advance_by(3 * kHour);
  msc.update();
  EXPECT_EQ(msc.risk_mode(), RiskMode::defensive);
  rig.clock.advance_by(10 * kHour);
  msc.update();
  EXPECT_EQ(msc.risk_mode(), RiskMode::normal);
  EXPECT_EQ(rig.store->current()->risk_mode, RiskMode::normal);
}

TEST(MscController, AdvisoryPublishesTheRegimeAndRecommendsButWritesNothing) {
  MscRig rig;
  MetaStrategyController msc(rig.bus, msc_config(SubsystemMode::advisory), *rig.store);
  ASSERT_EQ(msc.mode(), SubsystemMode::advisory);
  ASSERT_TRUE(msc.start());
  const MarketPanel p = crash_panel(912);
  for (std::int32_t t = 0; t < 912; ++t) msc.detector().on_panel_bar(p, t);
  msc.update();
  ASSERT_EQ(rig.regimes.size(), 1u);
  EXPECT_EQ(rig.regimes[0].current, Regime::crash);
  EXPECT_EQ(rig.store->version(), 1u);
  EXPECT_TRUE(rig.updates.empty());
  bool recommended = false;
  for (const auto& d : rig.decided)
    if (d.action == "RECOMMEND_POLICY") {
      recommended = true;
      EXPECT_FALSE(d.applied);
      EXPECT_EQ(d.subsystem, SourceName("MSC-AI"));
      EXPECT_NE(d.detail.find("max_open_positions 6 -> 3"), std::string::npos) << d.detail;
    }
  EXPECT_TRUE(recommended);
}

TEST(MscController, ObserveLogsWouldDecisionsAndPublishesNoRegime) {
  MscRig rig;
  test::TempDir dir;
  MetaStrategyController msc(rig.bus, msc_config(SubsystemMode::observe), *rig.store, {}, dir.path().string());
  ASSERT_EQ(msc.mode(), SubsystemMode::observe);
  ASSERT_TRUE(msc.start());
  const MarketPanel p = crash_panel(912);
  for (std::int32_t t = 0; t < 912; ++t) msc.detector().on_panel_bar(p, t);
  msc.update();
  EXPECT_EQ(msc.regime(), Regime::crash);
  EXPECT_TRUE(rig.regimes.empty());
  EXPECT_TRUE(rig.updates.empty());
  EXPECT_EQ(rig.store->version(), 1u);
  ASSERT_FALSE(rig.decided.empty());
  for (const auto& d : rig.decided) EXPECT_FALSE(d.applied);
  EXPECT_EQ(msc.last_decision().rfind("would apply: Regime CRASH", 0), 0u) << msc.last_decision();
  // Off when not enabled.
  Config off = msc_config(SubsystemMode::enforced);
  off.msc_enabled = false;
  MetaStrategyController none(rig.bus, off, *rig.store);
  EXPECT_EQ(none.mode(), SubsystemMode::off);
  MscOptions bad;
  bad.update_interval_s = 0;
  EXPECT_THROW(MetaStrategyController(rig.bus, off, *rig.store, bad), std::invalid_argument);
}

// ---- replays -----------------------------------------------------------------------------------------------------------

struct ReplayRun {
  ReplayResult result;
  std::vector<OrderRecord> orders;
  std::vector<ClosedTrade> trades;
  std::vector<Policy> history;
};

std::vector<LiveStrategy> trading_strategies(const MarketPanel& panel, std::size_t want) {
  test::GenomePick pick;
  pick.want = want;
  pick.min_trades = 20;
  return test::trading_strategies(panel, pick);
}

ReplayRun msc_replay(const MarketPanel& panel, const std::vector<LiveStrategy>& strategies, std::optional<SubsystemMode> mode,
                     const std::string& dir, const std::string& name) {
  Config cfg = msc_config(mode.value_or(SubsystemMode::observe));
  cfg.max_daily_dd_pct = 100;
  cfg.max_open_dd_pct = 100;
  ReplayOptions o = test::unbounded_replay_options(dir + "/" + name + ".db");
  o.log_dir = dir + "/logs";
  o.policy->max_risk_per_trade = Policy{}.max_risk_per_trade;
  o.policy->max_open_positions = 4;
  ReplayRun run;
  if (mode)
    o.subsystem_factory = [](ReplayContext& c) -> std::vector<std::shared_ptr<TradingSubsystem>> {
      return {std::make_shared<MetaStrategyController>(c.bus, c.config, c.policy, MscOptions::from_config(c.config), c.log_dir)};
    };
  o.before_bar = [&](std::int32_t t, ReplayControl& c) {
    if (t == panel.n_bars() - 1) run.history = c.policy.history().value();
  };
  run.result = replay_run(panel, cfg, strategies, {}, o);
  const Ledger l(o.ledger_path, store::OpenMode::existing);
  run.orders = l.orders();
  run.trades = l.trades();
  return run;
}

TEST(MscReplay, ObserveEqualsTheBaselineEnforcedChangesThePolicyAndTheTrading) {
  SynthOptions so;
  so.n_symbols = 8;
  so.n_bars = 1500;
  so.seed = 5;
  so.late_listing_fraction = 0;
  so.planted_momentum = 0.15;
  const MarketPanel panel = synth_generate(so).panel;
  const auto strategies = trading_strategies(panel, 3);
  ASSERT_EQ(strategies.size(), 3u);
  test::TempDir dir;
  const ReplayRun base = msc_replay(panel, strategies, std::nullopt, dir.path().string(), "base");
  ASSERT_GT(base.trades.size(), 20u);
  // OBSERVE: the same orders, trades and equity, and no policy written.
  const ReplayRun observed = msc_replay(panel, strategies, SubsystemMode::observe, dir.path().string(), "observe");
  EXPECT_EQ(observed.result.final_equity, base.result.final_equity);
  EXPECT_EQ(observed.result.stats.denied, base.result.stats.denied);
  ASSERT_EQ(observed.orders.size(), base.orders.size());
  for (std::size_t i = 0; i < base.orders.size(); ++i) {
    EXPECT_EQ(observed.orders[i].status, base.orders[i].status) << i;
    EXPECT_EQ(observed.orders[i].deny_reason, base.orders[i].deny_reason) << i;
    EXPECT_EQ(observed.orders[i].request.quote_qty, base.orders[i].request.quote_qty) << i;
  }
  ASSERT_EQ(observed.trades.size(), base.trades.size());
  for (std::size_t i = 0; i < base.trades.size(); ++i) EXPECT_EQ(observed.trades[i].pnl, base.trades[i].pnl) << i;
  EXPECT_EQ(observed.history.size(), 1u);
  std::ifstream log(dir.path().string() + "/logs/ai_subsystem_msc_ai.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("[MSC-AI] OBSERVE mode - would"), std::string::npos) << text.substr(0, 300);
  // ENFORCED: MSC's updates in the policy history, and the book size they set changes what trades.
  const ReplayRun enforced = msc_replay(panel, strategies, SubsystemMode::enforced, dir.path().string(), "enforced");
  std::size_t by_msc = 0;
  std::set<std::int64_t> books;
  for (const Policy& p : enforced.history) {
    by_msc += p.updated_by == "MSC-AI";
    books.insert(p.max_open_positions);
  }
  EXPECT_GT(by_msc, 0u);
  EXPECT_GT(books.size(), 1u);
  auto max_open_denials = [](const ReplayRun& r) {
    std::uint64_t n = 0;
    for (const auto& o : r.orders)
      if (o.status == OrderStatus::denied && o.deny_reason == DenyReason::max_open_positions) n += 1 + o.repeats;
    return n;
  };
  EXPECT_NE(max_open_denials(enforced), max_open_denials(base));
  EXPECT_NE(enforced.result.final_equity, base.result.final_equity);
  std::printf("MSC replay: %zu policy updates by MSC-AI; max_open_positions denials %llu (baseline %llu); equity %.2f (baseline %.2f)\n",
              by_msc, static_cast<unsigned long long>(max_open_denials(enforced)), static_cast<unsigned long long>(max_open_denials(base)),
              enforced.result.final_equity, base.result.final_equity);
}
}  // namespace msc_test
}  // namespace qtos
