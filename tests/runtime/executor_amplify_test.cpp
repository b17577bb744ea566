// The executor's side of the amplification and execution answers: a stop moved in the position's favour (never
// loosened), a new target, TWAP slices, and the entry thesis in the position snapshot.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/analytics/metrics.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/util/rng.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace executor_amplify_test {

using test::TempDir;

MarketPanel market() {
  SynthOptions o;
  o.n_symbols = 6;
  o.n_bars = 900;
  o.seed = 7;
  o.late_listing_fraction = 0;
  o.planted_momentum = 0.15;
  return synth_generate(o).panel;
}

/// Strategies with a stop and a target (no trailing stop of their own) that trade on the market.
std::vector<LiveStrategy> strategies(const MarketPanel& panel) {
  test::GenomePick pick;
  pick.tries = 600;
  pick.accept = [](kernels::Genome& g) {
    g.trail_atr = 0.0f;  // a trailing-stop exit then comes only from a stop a subsystem moved
    return g.stop_atr > 0.0f && g.take_atr > 0.0f;
  };
  return test::trading_strategies(panel, pick);
}

ReplayOptions options(const std::string& ledger) { return test::unbounded_replay_options(ledger); }

Config quiet() {
  Config c;
  c.max_daily_dd_pct = 100;
  c.max_open_dd_pct = 100;
  return c;
}

/// Answers the amplification and order-type hooks with what a test asks, and records the snapshots it saw.
class Amplifier final : public TradingSubsystem {
 public:
  enum class Stop { none, breakeven, looser };
  Stop stop = Stop::none;
  bool widen_target = false;
  std::int32_t slices = 1;
  std::vector<PositionSnapshot> seen;
  std::string name() const override { return "PAL"; }
  SubsystemMode mode() const override { return SubsystemMode::enforced; }
  bool answers(Hook h) const override {
    return h == Hook::post_trade_amplification_check || (slices > 1 && h == Hook::execution_order_type_selection);
  }
  std::optional<AmplificationAnswer> amplification_check(const PositionSnapshot& p, const AmplificationAnswer& v, std::string& why) override {
    seen.push_back(p);
    AmplificationAnswer a = v;
    const double dir = p.side == Side::buy ? 1.0 : -1.0;
    if (p.r_multiple >= 0.5 && stop == Stop::breakeven) a.stop_price = p.entry_price, why = "lock the entry";
    if (stop == Stop::looser && p.stop_price > 0) a.stop_price = p.stop_price - dir * p.initial_risk, why = "looser";
    if (widen_target && p.take_price > 0) a.take_price = p.take_price + dir * 2 * p.initial_risk, why = "let it run";
    return a;
  }
  std::optional<OrderTypeAnswer> order_type_selection(const TradeCandidate&, const OrderTypeAnswer& v, std::string& why) override {
    OrderTypeAnswer a = v;
    a.slices = slices;
    why = "TWAP";
    return a;
  }
};

struct Outcome {
  std::vector<ClosedTrade> trades;
  std::vector<OrderRecord> orders;
};

Outcome run(const MarketPanel& panel, const std::vector<LiveStrategy>& s, const std::shared_ptr<Amplifier>& amp, TempDir& dir,
        const std::string& name) {
  std::vector<std::shared_ptr<TradingSubsystem>> subs;
  if (amp) subs.push_back(amp);
  replay_run(panel, quiet(), s, subs, options(dir.file(name + ".db")));
  const Ledger l(dir.file(name + ".db"), store::OpenMode::existing);
  return {l.trades(), l.orders()};
}

bool same(const std::vector<ClosedTrade>& a, const std::vector<ClosedTrade>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].entry_time != b[i].entry_time || a[i].exit_time != b[i].exit_time || a[i].pnl != b[i].pnl) return false;
  return true;
}

TEST(ExecutorAmplify, AStopMovedToTheEntryLocksItAndALooserOneIsIgnored) {
  const MarketPanel panel = market();
  const auto s = strategies(panel);
  ASSERT_EQ(s.size(), 2u);
  TempDir dir;
  const Outcome base = run(panel, s, nullptr, dir, "base");
  ASSERT_GT(base.trades.size(), 10u);
  // Looser: never applied, so the run equals the baseline to the last bit.
  auto looser = std::make_shared<Amplifier>();
  looser->stop = Amplifier::Stop::looser;
  EXPECT_TRUE(same(base.trades, run(panel, s, looser, dir, "looser").trades));
  EXPECT_FALSE(looser->seen.empty());
  // Breakeven once at +0.5R: some trade now ends at its entry price by a trailing stop, and the run differs.
  auto lock = std::make_shared<Amplifier>();
  lock->stop = Amplifier::Stop::breakeven;
  const Outcome locked = run(panel, s, lock, dir, "locked");
  EXPECT_FALSE(same(base.trades, locked.trades));
  int locked_exits = 0, near_entry = 0;
  for (const ClosedTrade& t : locked.trades) {
    if (t.reason != CloseReason::trailing_stop) continue;
    ++locked_exits;
    // Out at the entry price, up to slippage and a gap through the stop.
    near_entry += std::abs(t.exit_price - t.entry_price) / t.entry_price < 0.005;
  }
  EXPECT_GT(locked_exits, 0);
  EXPECT_GE(near_entry * 4, locked_exits * 3) << near_entry << " of " << locked_exits;
}

TEST(ExecutorAmplify, AWiderTargetIsAmendedAtTheVenue) {
  const MarketPanel panel = market();
  const auto s = strategies(panel);
  TempDir dir;
  const Outcome base = run(panel, s, nullptr, dir, "base");
  auto wide = std::make_shared<Amplifier>();
  wide->widen_target = true;
  const Outcome widened = run(panel, s, wide, dir, "wide");
  std::size_t base_targets = 0, wide_targets = 0;
  for (const ClosedTrade& t : base.trades) base_targets += t.reason == CloseReason::take_profit;
  for (const ClosedTrade& t : widened.trades) wide_targets += t.reason == CloseReason::take_profit;
  // Widened every bar by 2R, a target is (almost) never reached.
  EXPECT_GT(base_targets, 0u);
  EXPECT_LT(wide_targets, base_targets);
  // The target orders kept their ids: amended in place, not cancelled and replaced.
  for (const OrderRecord& o : widened.orders) {
    if (o.purpose == OrderPurpose::take_profit) {
      EXPECT_NE(o.status, OrderStatus::rejected) << o.detail;
    }
  }
}

TEST(ExecutorAmplify, TwapSlicesAnEntryIntoChildOrdersOneABar) {
  const MarketPanel panel = market();
  const auto s = strategies(panel);
  TempDir dir;
  const Outcome base = run(panel, s, nullptr, dir, "base");
  auto twap = std::make_shared<Amplifier>();
  twap->slices = 3;
  const Outcome sliced = run(panel, s, twap, dir, "twap");
  std::map<std::uint64_t, std::vector<const OrderRecord*>> entries;
  for (const OrderRecord& o : sliced.orders)
    if (o.purpose == OrderPurpose::entry && o.status == OrderStatus::filled) entries[o.position_id].push_back(&o);
  ASSERT_FALSE(entries.empty());
  for (auto& [id, list] : entries)
    std::sort(list.begin(), list.end(), [](const OrderRecord* a, const OrderRecord* b) { return a->created < b->created; });
  int three = 0;
  for (const auto& [id, list] : entries) {
    EXPECT_LE(list.size(), 3u);
    if (list.size() == 3) {
      ++three;
      // One a bar, in order; each child about a third of the whole (the later ones at their own bar's price).
      EXPECT_LT(list[0]->created, list[1]->created);
      EXPECT_LT(list[1]->created, list[2]->created);
      EXPECT_NEAR(list[1]->filled_qty / list[0]->filled_qty, 1.0, 0.2);
    }
  }
  EXPECT_GT(three, 0);
  // The run's first entry (the same state in both runs: nothing traded before it) is a third of the unsliced one.
  const OrderRecord* first = nullptr;
  for (const auto& [id, list] : entries)
    if (first == nullptr || list[0]->created < first->created) first = list[0];
  const OrderRecord* base_first = nullptr;
  for (const OrderRecord& o : base.orders)
    if (o.purpose == OrderPurpose::entry && o.status == OrderStatus::filled && (base_first == nullptr || o.created < base_first->created))
      base_first = &o;
  ASSERT_NE(base_first, nullptr);
  ASSERT_EQ(first->created, base_first->created);
  EXPECT_NEAR(first->request.quote_qty * 3, base_first->request.quote_qty, 1e-9 * base_first->request.quote_qty);
}

TEST(ExecutorAmplify, TheSnapshotSaysWhetherTheEntryThesisStillHolds) {
  const MarketPanel panel = market();
  const auto s = strategies(panel);
  TempDir dir;
  auto watch = std::make_shared<Amplifier>();
  run(panel, s, watch, dir, "watch");
  std::set<bool> thesis;
  for (const PositionSnapshot& p : watch->seen) {
    thesis.insert(p.signal_present);
    EXPECT_GT(p.notional, 0);
    EXPECT_NEAR(p.notional, p.qty * p.mark_price, 1e-9 * p.notional);
    EXPECT_GT(p.initial_risk, 0);  // every strategy here has a stop
  }
  EXPECT_EQ(thesis.size(), 2u);  // both: rules that keep firing, and rules that stopped
}

}  // namespace executor_amplify_test
}  // namespace qtos

namespace qtos {
namespace executor_amplify_test {

TEST(ExecutorPromotion, APromotedStrategyTradesFromItsPromotionAndARetiredOneTakesNoNewEntry) {
  const MarketPanel panel = market();
  const auto s = strategies(panel);
  ASSERT_FALSE(s.empty());
  const LiveStrategy promoted = s[0];
  TempDir dir;
  ReplayOptions o = options(dir.file("p.db"));
  int lookups = 0;
  o.strategy_lookup = [&](const std::string& id) -> std::optional<LiveStrategy> {
    ++lookups;
    if (id == promoted.id) return promoted;
    return std::nullopt;
  };
  const std::int32_t promote_at = 300, retire_at = 650;
  o.before_bar = [&](std::int32_t t, ReplayControl& c) {
    if (t == promote_at) {
      c.bus.publish(SourceName("sg"), StrategyPromoted{.strategy = StrategyId(promoted.id), .from = StrategyStage::shadow, .to = StrategyStage::live, .fitness = 2.5});
      c.bus.publish(SourceName("sg"), StrategyPromoted{.strategy = "not-in-the-repo", .from = StrategyStage::shadow, .to = StrategyStage::live, .fitness = 1});
    }
    if (t == retire_at) c.bus.publish(SourceName("sg"), StrategyRetired{.strategy = StrategyId(promoted.id), .reason = "below the floor"});
  };
  // Nothing trades at first: the replay starts with no strategy at all.
  replay_run(panel, quiet(), {}, {}, o);
  EXPECT_EQ(lookups, 2);
  const Ledger l(dir.file("p.db"), store::OpenMode::existing);
  const TimeNs promoted_time = panel.time_ms(promote_at) * kNsPerMillisecond;
  const TimeNs retired_time = (panel.time_ms(retire_at) + panel.interval_ms()) * kNsPerMillisecond;
  const auto trades = l.trades();
  ASSERT_GT(trades.size(), 2u);
  for (const ClosedTrade& t : trades) {
    EXPECT_EQ(t.strategy.str(), promoted.id);
    EXPECT_GT(t.entry_time, promoted_time);
    EXPECT_LE(t.entry_time, retired_time);  // retired: no entry after it (open positions kept their exits)
  }
  // Analytics tracks it as any other strategy.
  const auto by_strategy = metrics_by_strategy(trades, retired_time - promoted_time);
  ASSERT_EQ(by_strategy.size(), 1u);
  EXPECT_EQ(by_strategy[0].strategy_id, promoted.id);
}

}  // namespace executor_amplify_test
}  // namespace qtos

namespace qtos {
namespace executor_amplify_test {

TEST(ExecutorManualExit, AnOperatorClosesAPositionThroughTheRiskOsOnce) {
  const MarketPanel panel = market();
  const auto s = strategies(panel);
  TempDir dir;
  ReplayOptions o = options(dir.file("m.db"));
  std::string closed_symbol;
  std::uint64_t exit_id = 0;
  int tries = 0;
  o.before_bar = [&](std::int32_t t, ReplayControl& c) {
    if (t < 400 || exit_id != 0) return;
    const auto held = c.exchange.positions();
    if (held.empty()) return;
    ++tries;
    EXPECT_EQ(c.executor.position_exit(Symbol("NOSUCHUSDT"), "test").error().code, ErrorCode::not_found);
    const auto r = c.executor.position_exit(held.front().symbol, "operator: reduce risk before the news");
    ASSERT_TRUE(r.ok()) << r.error().message;
    exit_id = r.value();
    closed_symbol = held.front().symbol.str();
    // A second request while the first is on its way is refused, not doubled.
    EXPECT_EQ(c.executor.position_exit(held.front().symbol, "again").error().code, ErrorCode::bad_state);
  };
  replay_run(panel, quiet(), s, {}, o);
  ASSERT_NE(exit_id, 0u);
  const Ledger l(dir.file("m.db"), store::OpenMode::existing);
  const auto rec = l.order_get(exit_id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->purpose, OrderPurpose::manual);
  EXPECT_EQ(rec->status, OrderStatus::filled);
  ASSERT_FALSE(rec->trace.empty());
  EXPECT_EQ(rec->trace.front().reason, "operator: reduce risk before the news");
  bool manual = false;
  for (const ClosedTrade& t : l.trades()) manual = manual || (t.symbol.str() == closed_symbol && t.reason == CloseReason::manual);
  EXPECT_TRUE(manual);
}

}  // namespace executor_amplify_test
}  // namespace qtos
