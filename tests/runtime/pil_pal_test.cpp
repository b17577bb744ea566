// The Position Intelligence Layer (PIL) and the Profit Amplification Layer (PAL): each classification rule and each
// amplification rule at its threshold, the interval cache, the once-only rules, the portfolio gate and AI-HFOS refusing
// a scale-in, what each mode applies through the hook pipeline, and whole replays where OBSERVE changes nothing and
// ENFORCED changes the trades.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/hooks.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/subsystems/position_intelligence.hpp"
#include "runtime/subsystems/profit_amplification.hpp"
#include "runtime/util/rng.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace pil_pal_test {

using test::TempDir;

constexpr TimeNs kT0 = 1'704'067'200'000'000'000;  // 2024-01-01T00:00:00Z

Config config_with(Subsystem s, SubsystemMode m) {
  Config c;
  c.max_daily_dd_pct = 100;
  c.max_open_dd_pct = 100;
  auto& sc = c.subsystems[static_cast<std::size_t>(s)];
  sc.enabled = m != SubsystemMode::off;
  sc.mode = m;
  return c;
}

struct Rig {
  SimClock clock{kT0};
  EventBus bus{clock};
  std::vector<SubsystemDecided> decided;
  Subscription sub = bus.subscribe<SubsystemDecided>("test", [this](const SubsystemDecided& e) { decided.push_back(e); });
  Rig() { bus.bind_owner_thread(); }
};

/// A long BTCUSDT position entered at 100 with its stop at 98 (1R = 2), now at `r` after a best of `peak_r`.
PositionSnapshot snap(double r, double peak_r = -1e9, bool signal = true, std::int32_t bars = 5, std::uint64_t id = 1) {
  PositionSnapshot p;
  p.position_id = id;
  p.strategy = "s1";
  p.symbol = "BTCUSDT";
  p.side = Side::buy;
  p.qty = 1;
  p.entry_price = 100;
  p.initial_risk = 2;
  p.r_multiple = r;
  p.mark_price = 100 + 2 * r;
  p.stop_price = 98;
  p.take_price = 106;
  peak_r = std::max(peak_r, std::max(r, 0.0));
  p.drawdown_pct = (peak_r - r) * 2 / 100 * 100;  // percent of the entry value
  p.bars_held = bars;
  p.notional = p.qty * p.mark_price;
  p.signal_present = signal;
  return p;
}

PositionClass classify(const PositionSnapshot& p) { return position_classify(p, PositionIntelligenceOptions{}).label; }

// ---- PIL: the rules --------------------------------------------------------------------------------------------

TEST(Pil, EachLabelFromItsRule) {
  EXPECT_EQ(classify(snap(2.5)), PositionClass::strong_winner);
  EXPECT_EQ(classify(snap(2.0, 2.5)), PositionClass::strong_winner) << "gave back 0.5 of 2.5R: 20% <= 25%";
  EXPECT_EQ(classify(snap(2.5, 4.0)), PositionClass::winner) << "gave back 1.5 of 4R: too much for STRONG";
  EXPECT_EQ(classify(snap(1.0)), PositionClass::winner);
  EXPECT_EQ(classify(snap(0.99)), PositionClass::neutral);
  EXPECT_EQ(classify(snap(-0.2)), PositionClass::neutral);
  EXPECT_EQ(classify(snap(-0.25)), PositionClass::loser);
  EXPECT_EQ(classify(snap(-0.9)), PositionClass::loser) << "a large loss while the entry signal still fires is no TOXIC";
  // TOXIC needs the thesis gone, and one of: a large loss, a long losing hold, most of a winner's peak given back.
  EXPECT_EQ(classify(snap(-0.75, 0, false)), PositionClass::toxic);
  EXPECT_EQ(classify(snap(-0.74, 0, false)), PositionClass::loser);
  EXPECT_EQ(classify(snap(-0.1, 0, false, 48)), PositionClass::toxic);
  EXPECT_EQ(classify(snap(-0.1, 0, false, 47)), PositionClass::neutral);
  EXPECT_EQ(classify(snap(0.1, 0, false, 480)), PositionClass::neutral) << "not losing: time alone is not toxic";
  EXPECT_EQ(classify(snap(0.5, 2.0, false)), PositionClass::toxic) << "gave back 1.5 of a 2R peak";
  EXPECT_EQ(classify(snap(0.5, 2.0, true)), PositionClass::neutral) << "the same with the thesis intact";
  EXPECT_EQ(classify(snap(0.6, 2.0, false)), PositionClass::neutral) << "gave back 70% < 75%";
  EXPECT_EQ(classify(snap(0.2, 0.9, false)), PositionClass::neutral) << "a peak below 1R was never a winner";
}

TEST(Pil, ShortsAndPositionsWithoutAStop) {
  PositionSnapshot p = snap(0);
  p.side = Side::sell;
  p.mark_price = 95;  // a short from 100: +5 = 2.5R
  p.r_multiple = 2.5;
  EXPECT_EQ(classify(p), PositionClass::strong_winner);
  // Without a stop, one R is 2% of the entry: 100 -> 98.4 is -0.8R.
  PositionSnapshot q = snap(0, 0, false);
  q.initial_risk = 0;
  q.r_multiple = 0;
  q.stop_price = 0;
  q.mark_price = 98.4;
  const PositionAssessment a = position_classify(q, PositionIntelligenceOptions{});
  EXPECT_NEAR(a.r.r, -0.8, 1e-12);
  EXPECT_EQ(a.label, PositionClass::toxic);
  // An executor that fills r_multiple but not initial_risk: the unit comes from the two.
  PositionSnapshot s = snap(1.5);
  s.initial_risk = 0;
  EXPECT_NEAR(position_r(s, 2.0).unit, 2.0, 1e-12);
}

TEST(Pil, OptionsFromConfigAndBadOptionsNamed) {
  Config c;
  c.pil_classification_interval = 60;
  c.pil_toxic_r = -1.5;
  c.pil_toxic_bars = 12;
  const auto o = PositionIntelligenceOptions::from_config(c);
  EXPECT_EQ(o.interval_s, 60);
  EXPECT_EQ(o.toxic_r, -1.5);
  EXPECT_EQ(o.toxic_bars, 12);
  Rig rig;
  PositionIntelligenceOptions bad;
  bad.toxic_r = 0.5;
  try {
    PositionIntelligence pil(rig.bus, c, bad);
    FAIL() << "accepted toxic_r 0.5";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("toxic_r 0.5"), std::string::npos) << e.what();
  }
  ConfigSources src;
  src.environment = {{"QT_AI_PIL_TOXIC_R", "-1"}, {"QT_AI_PIL_TOXIC_BARS", "24"}, {"QT_AI_PAL_PARTIAL_R", "4"}};
  const Config loaded = config_load(src);
  EXPECT_EQ(loaded.pil_toxic_r, -1.0);
  EXPECT_EQ(loaded.pil_toxic_bars, 24);
  EXPECT_EQ(loaded.pal_partial_r, 4.0);
  src.environment = {{"QT_AI_PIL_TOXIC_R", "0.5"}};
  EXPECT_THROW(config_load(src), ConfigError);
}

// ---- PIL: the cache, the decisions and the modes ------------------------------------------------------------

TEST(Pil, LabelsAreCachedForTheIntervalButToxicIsTakenAtOnce) {
  Rig rig;
  PositionIntelligence pil(rig.bus, config_with(Subsystem::pil, SubsystemMode::advisory), PositionIntelligenceOptions{});
  ASSERT_TRUE(pil.start());
  std::string why;
  EXPECT_EQ(pil.position_classification(snap(1.2), {}, why)->label, "WINNER");
  rig.clock.advance_by(60 * kNsPerSecond);
  EXPECT_FALSE(pil.position_classification(snap(0.2, 1.2), {}, why).has_value()) << "within 300 s: the cached label, unchanged";
  EXPECT_EQ(pil.label(1), PositionClass::winner);
  rig.clock.advance_by(240 * kNsPerSecond);
  EXPECT_EQ(pil.position_classification(snap(0.2, 1.2), {}, why)->label, "NEUTRAL") << "300 s on: classified again";
  rig.clock.advance_by(10 * kNsPerSecond);
  const auto toxic = pil.position_classification(snap(-0.8, 1.2, false), {}, why);
  EXPECT_EQ(toxic->label, "TOXIC") << "a crossing into TOXIC does not wait for the interval";
  EXPECT_TRUE(toxic->exit);
  rig.clock.advance_by(10 * kNsPerSecond);
  EXPECT_TRUE(pil.position_classification(snap(-0.5, 1.2, true), {}, why)->exit) << "TOXIC stays an exit within the interval";
  // One decision per label change, each published with the symbol.
  ASSERT_EQ(rig.decided.size(), 3u);
  EXPECT_EQ(rig.decided[0].detail, "BTCUSDT classified as WINNER (1.2R, 0% DD)");
  EXPECT_EQ(rig.decided[0].symbol.str(), "BTCUSDT");
  EXPECT_TRUE(rig.decided[0].applied) << "ADVISORY applies labels";
  EXPECT_EQ(rig.decided[2].action, "EXIT");
  EXPECT_FALSE(rig.decided[2].applied) << "ADVISORY does not exit";
  EXPECT_EQ(rig.decided[2].detail, "BTCUSDT classified as TOXIC (-0.8R, 4% DD, thesis gone): would exit");
  EXPECT_EQ(pil.decisions(), 3u);
  EXPECT_EQ(pil.toxic_exits(), 0u);
  // The table of labels, and a closed position is forgotten.
  ASSERT_EQ(pil.labels().size(), 1u);
  EXPECT_EQ(pil.label(1), PositionClass::toxic);
  EXPECT_EQ(pil.counts()[static_cast<std::size_t>(PositionClass::toxic)], 1);
  rig.bus.publish(SourceName("executor"), PositionClosed{.position_id = 1, .symbol = "BTCUSDT"});
  EXPECT_TRUE(pil.labels().empty());
  EXPECT_FALSE(pil.label(1).has_value());
}

TEST(Pil, ThroughThePipelineObserveLogsAdvisoryLabelsEnforcedExits) {
  TempDir dir;
  const std::string logs = (dir.path() / "logs").string();
  for (SubsystemMode mode : {SubsystemMode::observe, SubsystemMode::advisory, SubsystemMode::enforced}) {
    SCOPED_TRACE(std::string(mode_name(mode)));
    Rig rig;
    HookPipeline hooks(rig.bus, HookOptions{true, std::chrono::microseconds(50'000), logs});
    auto pil = std::make_shared<PositionIntelligence>(rig.bus, config_with(Subsystem::pil, mode), PositionIntelligenceOptions{}, logs);
    ASSERT_TRUE(pil->start());
    hooks.add(pil);
    const ClassificationAnswer win = hooks.position_classification(snap(2.5), ClassificationAnswer{}, nullptr);
    const ClassificationAnswer toxic = hooks.position_classification(snap(-0.9, 0, false, 5, 2), ClassificationAnswer{}, nullptr);
    EXPECT_EQ(win.label, mode == SubsystemMode::observe ? "" : "STRONG_WINNER");
    EXPECT_EQ(toxic.label, mode == SubsystemMode::observe ? "" : "TOXIC");
    EXPECT_EQ(toxic.exit, mode == SubsystemMode::enforced);
    EXPECT_EQ(pil->toxic_exits(), mode == SubsystemMode::enforced ? 1u : 0u);
  }
  std::ifstream f(logs + "/ai_subsystem_pil.log");
  const std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("[PIL] OBSERVE mode - would classify BTCUSDT as STRONG_WINNER (2.5R, 0% DD)"), std::string::npos) << log;
  EXPECT_NE(log.find("[PIL] ADVISORY mode - BTCUSDT classified as STRONG_WINNER (2.5R, 0% DD)"), std::string::npos) << log;
  EXPECT_NE(log.find("[PIL] ENFORCED mode - BTCUSDT classified as TOXIC (-0.9R, 1.8% DD, thesis gone): exit"), std::string::npos) << log;
}

// ---- PAL: the rules -----------------------------------------------------------------------------------------

/// A gate that refuses while `refuse` is set, and records what it was asked.
class FakeGate final : public PortfolioGate {
 public:
  bool refuse = false;
  mutable std::vector<double> asked;
  bool add_allowed(const Symbol&, double add_notional, std::string& why) const override {
    asked.push_back(add_notional);
    if (refuse) why = "exposure 25% / 20% limit";
    return !refuse;
  }
};

/// A fixed AI-HFOS directive.
class FakeHfos final : public HfosDirectiveSource {
 public:
  HfosDirective d;
  const HfosDirective& directive() const override { return d; }
};

/// PAL's options for rule tests: every bar analysed.
ProfitAmplificationOptions every_bar() {
  ProfitAmplificationOptions o;
  o.interval_s = 0;
  return o;
}

struct PalRig : Rig {
  FakeGate gate;
  FakeHfos hfos;
  ProfitAmplification pal;
  explicit PalRig(SubsystemMode mode = SubsystemMode::enforced, ProfitAmplificationOptions o = every_bar())
      : pal(bus, config_with(Subsystem::pal, mode), o, &gate, &hfos) {
    pal.start();
  }
  std::optional<AmplificationAnswer> ask(const PositionSnapshot& p) {
    std::string why;
    return pal.amplification_check(p, AmplificationAnswer{}, why);
  }
};

TEST(Pal, ExtendHoldAtMinROncePerStep) {
  PalRig r;
  EXPECT_FALSE(r.ask(snap(0.99)).has_value()) << "below QT_AI_PAL_MIN_R: nothing";
  const auto a = r.ask(snap(1.0));
  ASSERT_TRUE(a.has_value());
  EXPECT_DOUBLE_EQ(a->stop_price, 101) << "entry + 0.5R";
  EXPECT_DOUBLE_EQ(a->take_price, 108) << "the target 106 widened by 1R";
  EXPECT_EQ(a->scale_in, 0);
  EXPECT_EQ(a->take_partial, 0);
  EXPECT_FALSE(r.ask(snap(1.3)).has_value()) << "the same step: decided once";
  PositionSnapshot two = snap(2.1);
  two.stop_price = 101;
  two.take_price = 108;
  const auto b = r.ask(two);
  ASSERT_TRUE(b.has_value());
  EXPECT_DOUBLE_EQ(b->stop_price, 102) << "the stop rises with the peak: 1R locked at the second step";
  EXPECT_DOUBLE_EQ(b->take_price, 110);
  EXPECT_EQ(r.pal.extend_holds(), 2u);
  EXPECT_EQ(r.decided.back().action, "EXTEND_HOLD");
  EXPECT_TRUE(r.decided.back().applied);
  EXPECT_EQ(r.decided.back().detail, "EXTEND_HOLD BTCUSDT at 2.1R: stop 101 -> 102 (locks 1R), target 108 -> 110");
  // A stop already tighter than the lock is kept; a position without a target gets none.
  PalRig t;
  PositionSnapshot tight = snap(1.2, -1e9, true, 5, 7);
  tight.stop_price = 101.5;
  tight.take_price = 0;
  EXPECT_FALSE(t.ask(tight).has_value());
}

TEST(Pal, ScaleInAtItsThresholdOncePerPosition) {
  PalRig r;
  ASSERT_TRUE(r.ask(snap(1.4)).has_value());  // EXTEND_HOLD, step 1
  EXPECT_FALSE(r.ask(snap(1.49)).has_value()) << "below QT_AI_PAL_MIN_R_SCALE_IN";
  const auto gone = r.ask(snap(1.6, 1.6, false));
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->scale_in, 0) << "no scale-in once the entry signal is gone (a partial take instead)";
  EXPECT_EQ(gone->take_partial, 0.5);
  PalRig s;
  ASSERT_TRUE(s.ask(snap(1.4)).has_value());
  const auto a = s.ask(snap(1.5));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->scale_in, 0.5);
  EXPECT_EQ(a->stop_price, 0);
  ASSERT_EQ(s.gate.asked.size(), 1u);
  EXPECT_DOUBLE_EQ(s.gate.asked[0], 0.5 * 103) << "half the position's notional asked of PBA";
  EXPECT_FALSE(s.ask(snap(1.8)).has_value()) << "once per position";
  EXPECT_EQ(s.pal.scale_ins(), 1u);
  EXPECT_EQ(s.decided.back().detail, "SCALE_IN BTCUSDT at 1.5R: add 50% (51.5 quote), signal present, PBA allows");
  // The fill moves the average entry (R keeps the first entry's risk): the steps go on from where they were.
  PositionSnapshot after = snap(1.2);
  after.entry_price = 101;
  after.mark_price = 101 + 2 * 1.2;
  EXPECT_FALSE(s.ask(after).has_value()) << "step 1 was decided before the scale-in";
  after.r_multiple = 2.0;
  after.mark_price = 105;
  const auto b = s.ask(after);
  ASSERT_TRUE(b.has_value());
  EXPECT_DOUBLE_EQ(b->stop_price, 103) << "step 2 on the new entry: 101 + 1R";
}

TEST(Pal, NoScaleInWhenThePortfolioGateRefusesOrHfosIsSafe) {
  PalRig r;
  r.gate.refuse = true;
  ASSERT_TRUE(r.ask(snap(1.0)).has_value());  // EXTEND_HOLD first
  EXPECT_FALSE(r.ask(snap(1.6)).has_value());
  EXPECT_FALSE(r.ask(snap(1.7)).has_value());
  EXPECT_EQ(r.pal.scale_ins(), 0u);
  EXPECT_EQ(r.pal.scale_ins_blocked(), 1u) << "one decision per refusal, not one per bar";
  EXPECT_EQ(r.decided.back().action, "SCALE_IN_BLOCKED");
  EXPECT_EQ(r.decided.back().detail, "no SCALE_IN BTCUSDT at 1.6R: PBA: exposure 25% / 20% limit");
  EXPECT_FALSE(r.decided.back().applied);
  // Protective beats enhancing: AI-HFOS in SAFE or CRITICAL, or stopping new trades, refuses before PBA is asked.
  r.gate.refuse = false;
  r.gate.asked.clear();
  for (auto [mode, allow] : {std::pair{SystemRiskMode::safe, true}, {SystemRiskMode::critical, true}, {SystemRiskMode::normal, false}}) {
    r.hfos.d.mode = mode;
    r.hfos.d.allow_new_trades = allow;
    EXPECT_FALSE(r.ask(snap(1.6)).has_value());
  }
  EXPECT_TRUE(r.gate.asked.empty());
  EXPECT_EQ(r.pal.scale_ins_blocked(), 4u);
  EXPECT_EQ(r.decided.back().detail, "no SCALE_IN BTCUSDT at 1.6R: AI-HFOS allows no new trades");
  // Back to NORMAL with the gate open: the scale-in happens.
  r.hfos.d = HfosDirective{};
  ASSERT_TRUE(r.ask(snap(1.6)).has_value());
  EXPECT_EQ(r.pal.scale_ins(), 1u);
}

TEST(Pal, NoScaleInWhilePilDoesNotCallItAWinner) {
  Rig rig;
  PositionIntelligence pil(rig.bus, config_with(Subsystem::pil, SubsystemMode::enforced), PositionIntelligenceOptions{});
  ProfitAmplification pal(rig.bus, config_with(Subsystem::pal, SubsystemMode::enforced), every_bar(), nullptr, nullptr, &pil);
  std::string why;
  pil.position_classification(snap(0.5), {}, why);  // NEUTRAL, cached for 300 s
  ASSERT_TRUE(pal.amplification_check(snap(1.0), {}, why).has_value());  // EXTEND_HOLD needs no label
  EXPECT_FALSE(pal.amplification_check(snap(1.6), {}, why).has_value());
  EXPECT_EQ(pal.last_decision(), "no SCALE_IN BTCUSDT at 1.6R: PIL labels it NEUTRAL");
  rig.clock.advance_by(300 * kNsPerSecond);
  pil.position_classification(snap(1.6), {}, why);  // WINNER
  EXPECT_EQ(pal.amplification_check(snap(1.6), {}, why)->scale_in, 0.5);
}

TEST(Pal, PartialTakeAtPartialROrWhenTheThesisIsGone) {
  PalRig r;
  EXPECT_FALSE(r.ask(snap(-1)).has_value());
  const auto a = r.ask(snap(3.0));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->take_partial, 0.5) << "first: the partial take";
  EXPECT_EQ(a->scale_in, 0);
  const auto b = r.ask(snap(3.0));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->take_partial, 0) << "once per position";
  EXPECT_DOUBLE_EQ(b->stop_price, 103) << "then EXTEND_HOLD at step 3: 1.5R locked";
  EXPECT_FALSE(r.ask(snap(3.2)).has_value()) << "no scale-in after a partial take";
  EXPECT_EQ(r.pal.partial_takes(), 1u);
  // The thesis gone while at least MIN_R: the partial take comes early.
  PalRig t;
  EXPECT_FALSE(t.ask(snap(0.9, 0.9, false)).has_value());
  EXPECT_EQ(t.ask(snap(1.0, 1.0, false))->take_partial, 0.5);
  EXPECT_EQ(t.decided.back().detail, "PARTIAL_TAKE_PROFIT BTCUSDT at 1R: close 50% (thesis gone)");
}

TEST(Pal, AnalysedOncePerIntervalAndForgetsClosedPositions) {
  ProfitAmplificationOptions o;  // 900 s
  PalRig r(SubsystemMode::enforced, o);
  ASSERT_TRUE(r.ask(snap(1.0)).has_value());
  r.clock.advance_by(600 * kNsPerSecond);
  EXPECT_FALSE(r.ask(snap(3.5)).has_value()) << "within the interval: not analysed";
  r.clock.advance_by(300 * kNsPerSecond);
  EXPECT_EQ(r.ask(snap(3.5))->take_partial, 0.5);
  EXPECT_EQ(r.pal.positions().size(), 1u);
  r.bus.publish(SourceName("executor"), PositionClosed{.position_id = 1, .symbol = "BTCUSDT"});
  EXPECT_TRUE(r.pal.positions().empty());
}

TEST(Pal, ThroughThePipelineOnlyEnforcedActs) {
  for (SubsystemMode mode : {SubsystemMode::observe, SubsystemMode::advisory, SubsystemMode::enforced}) {
    SCOPED_TRACE(std::string(mode_name(mode)));
    PalRig r(mode);
    HookPipeline hooks(r.bus);
    hooks.add(std::shared_ptr<TradingSubsystem>(&r.pal, [](TradingSubsystem*) {}));
    const AmplificationAnswer a = hooks.amplification_check(snap(3.0), AmplificationAnswer{}, nullptr);
    EXPECT_EQ(a.take_partial, mode == SubsystemMode::enforced ? 0.5 : 0.0);
    ASSERT_EQ(r.decided.size(), 1u);
    EXPECT_EQ(r.decided[0].applied, mode == SubsystemMode::enforced);
    const std::string lead = mode == SubsystemMode::observe ? "would " : mode == SubsystemMode::advisory ? "recommend " : "";
    EXPECT_EQ(r.decided[0].detail, lead + "PARTIAL_TAKE_PROFIT BTCUSDT at 3R: close 50%");
    EXPECT_EQ(r.decided[0].mode, mode);
  }
}

// ---- whole replays ----------------------------------------------------------------------------------------------

MarketPanel replay_market() {
  SynthOptions o;
  o.n_symbols = 6;
  o.n_bars = 900;
  o.seed = 7;
  o.late_listing_fraction = 0;
  o.gap_rate = 0;
  o.planted_momentum = 0.15;
  return synth_generate(o).panel;
}

/// Two strategies (every exit shape: stops, targets, trails, max hold) that trade on the market.
std::vector<LiveStrategy> replay_strategies(const MarketPanel& panel) { return test::trading_strategies(panel, {}); }

/// Trend followers whose entry rule is a state that lasts (EMA(fast) above EMA(slow), both sides): their thesis holds
/// through a trend, so a winner can still have its signal when PAL considers adding to it.
std::vector<LiveStrategy> trend_strategies() {
  std::vector<LiveStrategy> out;
  for (auto [fast, slow] : {std::pair{1, 3}, {0, 2}}) {
    kernels::Genome g;
    g.entry[0] = kernels::Condition{static_cast<std::int32_t>(kernels::CondKind::ma_above), fast, slow, 0.0f};
    g.op = static_cast<std::int32_t>(kernels::EntryOp::single);
    g.side = static_cast<std::int32_t>(kernels::Side::both);
    g.stop_atr = 2.0f;
    g.take_atr = 8.0f;
    g.size = 0.5f;
    g = kernels::genome_normalize(g);
    out.push_back(LiveStrategy{genome_id(g), g, 0.0, {}});
  }
  return out;
}

ReplayOptions replay_options(const std::string& ledger) {
  ReplayOptions o = test::unbounded_replay_options(ledger);
  o.exchange.taker_fee = 0.0004;
  o.exchange.slippage = 0.0002;
  return o;
}

/// What a replay left in its ledger.
struct Outcome {
  std::vector<ClosedTrade> trades;
  std::vector<EquityPoint> equity;
  std::vector<OrderRecord> orders;
};

/// PIL and PAL in the modes asked (OFF: not built), built on the replay's bus; kept to read their counts.
struct Built {
  std::shared_ptr<PositionIntelligence> pil;
  std::shared_ptr<ProfitAmplification> pal;
};

struct ReplayRig {
  MarketPanel panel = replay_market();
  std::vector<LiveStrategy> strategies = replay_strategies(panel);
  TempDir dir;

  Outcome run(const std::string& name, SubsystemMode pil_mode, SubsystemMode pal_mode, Built* built = nullptr) {
    Config cfg = config_with(Subsystem::pil, pil_mode);
    cfg.subsystems[static_cast<std::size_t>(Subsystem::pal)] = config_with(Subsystem::pal, pal_mode).subsystem(Subsystem::pal);
    ReplayOptions o = replay_options(dir.file(name + ".db"));
    o.log_dir = dir.file("logs-" + name);
    o.subsystem_factory = [&, pil_mode, pal_mode](ReplayContext& ctx) {
      std::vector<std::shared_ptr<TradingSubsystem>> out;
      std::shared_ptr<PositionIntelligence> pil;
      if (pil_mode != SubsystemMode::off) {
        pil = std::make_shared<PositionIntelligence>(ctx.bus, ctx.config, PositionIntelligenceOptions::from_config(ctx.config), ctx.log_dir);
        out.push_back(pil);
      }
      std::shared_ptr<ProfitAmplification> pal;
      if (pal_mode != SubsystemMode::off) {
        pal = std::make_shared<ProfitAmplification>(ctx.bus, ctx.config, ProfitAmplificationOptions::from_config(ctx.config), nullptr,
                                                    nullptr, pil.get(), ctx.log_dir);
        out.push_back(pal);
      }
      if (built != nullptr) *built = Built{pil, pal};
      return out;
    };
    replay_run(panel, cfg, strategies, {}, o);
    const Ledger l(dir.file(name + ".db"), store::OpenMode::existing);
    return Outcome{l.trades(), l.equity_curve(), l.orders()};
  }
};

/// The same trades (entry, exit, prices, P&L, reason) and the same equity curve, bit for bit.
void expect_same_result(const Outcome& want, const Outcome& got, bool labels_too) {
  ASSERT_EQ(want.trades.size(), got.trades.size());
  for (std::size_t i = 0; i < want.trades.size(); ++i) {
    const ClosedTrade &a = want.trades[i], &b = got.trades[i];
    SCOPED_TRACE("trade " + std::to_string(i));
    EXPECT_EQ(a.symbol, b.symbol);
    EXPECT_EQ(a.entry_time, b.entry_time);
    EXPECT_EQ(a.exit_time, b.exit_time);
    EXPECT_EQ(a.qty, b.qty);
    EXPECT_EQ(a.entry_price, b.entry_price);
    EXPECT_EQ(a.exit_price, b.exit_price);
    EXPECT_EQ(a.pnl, b.pnl);
    EXPECT_EQ(a.reason, b.reason);
    if (labels_too) {
      EXPECT_EQ(a.classification, b.classification);
    }
  }
  ASSERT_EQ(want.equity.size(), got.equity.size());
  for (std::size_t i = 0; i < want.equity.size(); ++i) EXPECT_EQ(want.equity[i].equity, got.equity[i].equity) << "equity point " << i;
}

TEST(PilPalReplay, ObserveChangesNothing) {
  ReplayRig rig;
  ASSERT_EQ(rig.strategies.size(), 2u);
  const Outcome base = rig.run("base", SubsystemMode::off, SubsystemMode::off);
  ASSERT_GT(base.trades.size(), 20u);
  Built built;
  const Outcome observed = rig.run("observe", SubsystemMode::observe, SubsystemMode::observe, &built);
  expect_same_result(base, observed, true);
  for (const ClosedTrade& t : observed.trades) EXPECT_EQ(t.classification, "") << "OBSERVE labels nothing";
  // It still worked out what it would have done.
  EXPECT_GT(built.pil->decisions(), 0u);
  EXPECT_GT(built.pal->decisions(), 0u);
  EXPECT_GT(built.pil->toxic_exits() + built.pal->scale_ins() + built.pal->partial_takes(), 0u);
}

TEST(PilPalReplay, PilAdvisoryLabelsPositionsTradesStayTheSame) {
  ReplayRig rig;
  const Outcome base = rig.run("base", SubsystemMode::off, SubsystemMode::off);
  Built built;
  const Outcome advised = rig.run("advisory", SubsystemMode::advisory, SubsystemMode::off, &built);
  expect_same_result(base, advised, false);
  std::map<std::string, int> labels;
  for (const ClosedTrade& t : advised.trades) ++labels[t.classification];
  EXPECT_EQ(labels[""], 0) << "every trade was held at least one bar, so classified";
  EXPECT_GE(labels.size(), 3u) << "more than one class seen";
  EXPECT_GT(labels["TOXIC"], 0) << "TOXIC positions exist, and ADVISORY lets them run";
  EXPECT_EQ(built.pil->toxic_exits(), 0u);
}

TEST(PilPalReplay, PilEnforcedClosesToxicPositions) {
  ReplayRig rig;
  const Outcome base = rig.run("base", SubsystemMode::off, SubsystemMode::off);
  Built built;
  const Outcome enforced = rig.run("enforced", SubsystemMode::enforced, SubsystemMode::off, &built);
  EXPECT_GT(built.pil->toxic_exits(), 0u);
  // A TOXIC position is closed by a market exit at the next bar (the ledger reads SUBSYSTEM_EXIT), and earlier than it
  // closed without PIL.
  std::map<std::pair<std::string, TimeNs>, TimeNs> base_exit;
  for (const ClosedTrade& t : base.trades) base_exit[{t.symbol.str(), t.entry_time}] = t.exit_time;
  int toxic = 0, earlier = 0;
  for (const ClosedTrade& t : enforced.trades) {
    if (t.classification != "TOXIC") continue;
    ++toxic;
    EXPECT_TRUE(t.reason == CloseReason::subsystem_exit || t.reason == CloseReason::end_of_replay) << enum_name(t.reason);
    auto it = base_exit.find({t.symbol.str(), t.entry_time});
    if (it != base_exit.end() && t.exit_time < it->second) ++earlier;
  }
  EXPECT_GT(toxic, 0);
  EXPECT_GT(earlier, 0) << "the same position, closed sooner";
  EXPECT_NE(base.equity.back().equity, enforced.equity.back().equity);
}

TEST(PilPalReplay, PalAdvisoryChangesNothingEnforcedAmplifies) {
  ReplayRig rig;
  rig.strategies = trend_strategies();
  const Outcome base = rig.run("base", SubsystemMode::off, SubsystemMode::off);
  Built advisory;
  expect_same_result(base, rig.run("advisory", SubsystemMode::off, SubsystemMode::advisory, &advisory), true);
  EXPECT_GT(advisory.pal->decisions(), 0u) << "it recommended";
  Built built;
  const Outcome enforced = rig.run("enforced", SubsystemMode::off, SubsystemMode::enforced, &built);
  EXPECT_GT(built.pal->extend_holds(), 0u);
  EXPECT_GT(built.pal->scale_ins(), 0u);
  EXPECT_GT(built.pal->partial_takes(), 0u);
  // In the ledger: positions with a second entry (the scale-in), positions reduced before they closed (the partial take),
  // stops moved into profit (trailing-stop exits above the entry).
  std::map<std::uint64_t, int> entries, exits;
  for (const OrderRecord& o : enforced.orders) {
    if (o.status != OrderStatus::filled) continue;
    if (o.purpose == OrderPurpose::entry) {
      ++entries[o.position_id];
    } else {
      ++exits[o.position_id];
    }
  }
  int scaled = 0, reduced = 0;
  for (const auto& [id, n] : entries) scaled += n > 1;
  for (const auto& [id, n] : exits) reduced += n > 1;
  EXPECT_GT(scaled, 0);
  EXPECT_GT(reduced, 0);
  EXPECT_NE(base.equity.back().equity, enforced.equity.back().equity);
  // PIL and PAL together: both act, and PAL reads PIL's labels.
  Built both;
  rig.run("both", SubsystemMode::enforced, SubsystemMode::enforced, &both);
  EXPECT_GT(both.pil->toxic_exits(), 0u);
  EXPECT_GT(both.pal->decisions(), 0u);
}

}  // namespace pil_pal_test
}  // namespace qtos
