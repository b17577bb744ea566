// The trading core end to end: the event-driven OS against the vectorised backtester (trade for trade), determinism,
// OBSERVE changing nothing, ENFORCED changing something, the brake, the fail-safe and the decision trace.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/util/rng.hpp"
#include "runtime/predict/predictor.hpp"
#include "runtime/bus/event_log.hpp"
#include "runtime/util/checkpoint.hpp"
#include "tests/support/crash_child.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace executor_test {

namespace fs = std::filesystem;

using test::TempDir;

constexpr double kFee = 0.0004, kSlip = 0.0002, kSlipSpread = 0.5, kCapital = 10'000;

MarketPanel test_market(std::int32_t symbols = 6, std::int32_t bars = 1200, double gap_rate = 0.0) {
  SynthOptions o;
  o.n_symbols = symbols;
  o.n_bars = bars;
  o.seed = 7;
  o.late_listing_fraction = 0;
  o.gap_rate = gap_rate;
  o.planted_momentum = 0.15;
  return synth_generate(o).panel;
}

Config quiet_config() {
  Config c;
  c.max_daily_dd_pct = 100;
  c.max_open_dd_pct = 100;
  return c;
}

/// Limits that never bind, so both engines see the same trades.
ReplayOptions alike_options(const std::string& ledger) {
  ReplayOptions o = test::unbounded_replay_options(ledger);
  o.exchange.initial_balance = kCapital;
  o.exchange.taker_fee = kFee;
  o.exchange.slippage = kSlip;
  o.exchange.slippage_spread = kSlipSpread;
  return o;
}

struct Trade {
  std::int32_t symbol, entry_bar, exit_bar, dir;
  double entry_price, exit_price, pnl;
  std::string reason;
};

std::string reason_of(kernels::ExitReason r) {
  switch (r) {
    case kernels::ExitReason::signal: return "SIGNAL_EXIT";
    case kernels::ExitReason::stop: return "STOP_LOSS";
    case kernels::ExitReason::target: return "TAKE_PROFIT";
    case kernels::ExitReason::trail: return "TRAILING_STOP";
    case kernels::ExitReason::max_hold: return "MAX_HOLD";
    case kernels::ExitReason::end: return "END_OF_REPLAY";
    case kernels::ExitReason::gap: return "GAP";
  }
  return "?";
}

std::vector<Trade> backtester_trades(const MarketPanel& panel, const kernels::Genome& g, std::int32_t t_begin) {
  const StrategyFeatures f = strategy_features_compute(panel.view(), true);
  const std::vector<kernels::Genome> one = {g};
  BacktestRequest req;
  req.panel = panel.view();
  req.features = &f;
  req.genomes = one;
  req.costs.fee = kFee;
  req.costs.slippage = kSlip;
  req.costs.slippage_spread = kSlipSpread;
  req.costs.capital = kCapital;
  req.t_begin = t_begin;
  std::vector<Trade> out;
  for (const auto& t : backtest_trades(req, 0))
    out.push_back({t.symbol, t.trade.entry_bar, t.trade.exit_bar, t.trade.dir, t.trade.entry_price, t.trade.exit_price, t.trade.pnl,
                   reason_of(t.trade.reason)});
  std::sort(out.begin(), out.end(), [](const Trade& a, const Trade& b) { return std::tie(a.symbol, a.entry_bar) < std::tie(b.symbol, b.entry_bar); });
  return out;
}

std::vector<Trade> ledger_trades(const MarketPanel& panel, const std::string& path) {
  const Ledger ledger(path, store::OpenMode::existing);
  std::vector<Trade> out;
  const TimeNs t0 = panel.t0_ms() * kNsPerMillisecond, iv = panel.interval_ms() * kNsPerMillisecond;
  for (const ClosedTrade& t : ledger.trades())
    out.push_back({panel.symbol_index(t.symbol.view()), static_cast<std::int32_t>((t.entry_time - t0) / iv),
                   static_cast<std::int32_t>((t.exit_time - t0) / iv), t.side == Side::buy ? 1 : -1, t.entry_price, t.exit_price, t.pnl,
                   std::string(enum_name(t.reason))});
  std::sort(out.begin(), out.end(), [](const Trade& a, const Trade& b) { return std::tie(a.symbol, a.entry_bar) < std::tie(b.symbol, b.entry_bar); });
  return out;
}

void expect_same_trades(const std::vector<Trade>& want, const std::vector<Trade>& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const Trade &a = want[i], &b = got[i];
    SCOPED_TRACE(what + " trade " + std::to_string(i) + " symbol " + std::to_string(a.symbol) + " entry bar " + std::to_string(a.entry_bar));
    EXPECT_EQ(a.symbol, b.symbol);
    EXPECT_EQ(a.entry_bar, b.entry_bar);
    EXPECT_EQ(a.exit_bar, b.exit_bar);
    EXPECT_EQ(a.dir, b.dir);
    EXPECT_EQ(a.reason, b.reason);
    // The same double expressions in both engines: equal to the last bit.
    EXPECT_EQ(a.entry_price, b.entry_price);
    EXPECT_EQ(a.exit_price, b.exit_price);
    EXPECT_EQ(a.pnl, b.pnl);
  }
}

/// Genomes of every shape (stops, targets, trails, max hold, shorts, both sides) that trade on the market.
std::vector<kernels::Genome> trading_genomes(const MarketPanel& panel, std::size_t want) {
  test::GenomePick pick;
  pick.want = want;
  return test::trading_genomes(panel, pick);
}

LiveStrategy live(const kernels::Genome& g) { return LiveStrategy{genome_id(g), g, 0.0, {}}; }

/// `n` strategies that trade on the market.
std::vector<LiveStrategy> live_strategies(const MarketPanel& panel, std::size_t n) {
  std::vector<LiveStrategy> out;
  for (const auto& g : trading_genomes(panel, n)) out.push_back(live(g));
  return out;
}

TEST(Executor, CrossEngineEqualityWithTheVectorisedBacktester) {
  const MarketPanel panel = test_market();
  auto genomes = trading_genomes(panel, 12);
  ASSERT_GE(genomes.size(), 10u);
  // A short maximum hold and no exit rule: the time exit is exercised too.
  genomes.push_back(kernels::genome_normalize(genome_decode("g1:1,0,2,0,0,0,0,0,0,0,0,0,0,1,2,0,0,6,0.5", "test")));
  std::size_t with_stop = 0, with_trail = 0, with_take = 0, with_hold = 0, shorts = 0, total = 0;
  for (const auto& g : genomes) {
    TempDir dir;
    for (std::int32_t t_begin : {0, 300}) {
      const std::string ledger = dir.file("ledger" + std::to_string(t_begin) + ".db");
      ReplayOptions o = alike_options(ledger);
      o.t_begin = t_begin;
      const ReplayResult r = replay_run(panel, quiet_config(), {live(g)}, {}, o);
      EXPECT_EQ(r.stats.denied, 0u) << genome_rules(g);
      if (r.stats.denied > 0 || r.stats.rejected > 0) {
        const Ledger dl(ledger, store::OpenMode::existing);
        int shown = 0;
        for (const auto& rec : dl.orders())
          if ((rec.status == OrderStatus::denied || rec.status == OrderStatus::rejected) && shown++ < 3)
            ADD_FAILURE() << "first refusals: " << enum_name(rec.status) << " " << (rec.deny_reason ? enum_name(*rec.deny_reason) : "") << " " << rec.detail
                          << " purpose " << enum_name(rec.purpose);
      }
      EXPECT_EQ(r.stats.rejected, 0u) << genome_rules(g);
      const auto want = backtester_trades(panel, g, t_begin);
      const auto got = ledger_trades(panel, ledger);
      expect_same_trades(want, got, genome_encode(g) + " from bar " + std::to_string(t_begin));
      for (const auto& t : want) {
        total += 1;
        with_stop += t.reason == "STOP_LOSS";
        with_trail += t.reason == "TRAILING_STOP";
        with_take += t.reason == "TAKE_PROFIT";
        with_hold += t.reason == "MAX_HOLD";
        shorts += t.dir < 0;
      }
    }
  }
  // The comparison covered every way out of a trade, and both directions.
  EXPECT_GT(total, 200u);
  EXPECT_GT(with_stop, 0u);
  EXPECT_GT(with_trail, 0u);
  EXPECT_GT(with_take, 0u);
  EXPECT_GT(with_hold, 0u);
  EXPECT_GT(shorts, 0u);
}

TEST(Executor, ReplayIsDeterministic) {
  const MarketPanel panel = test_market(5, 800);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 3);
  TempDir dir;
  std::vector<std::vector<EquityPoint>> curves;
  std::vector<std::vector<Trade>> trades;
  for (int run = 0; run < 2; ++run) {
    const std::string ledger = dir.file("l" + std::to_string(run) + ".db");
    ReplayOptions o = alike_options(ledger);
    o.policy->max_open_positions = 3;  // strategies compete: denials too must repeat
    replay_run(panel, quiet_config(), strategies, {}, o);
    const Ledger l(ledger, store::OpenMode::existing);
    curves.push_back(l.equity_curve());
    trades.push_back(ledger_trades(panel, ledger));
  }
  ASSERT_EQ(curves[0].size(), curves[1].size());
  // One point per bar time, in order: a cycle is ended once.
  ASSERT_EQ(curves[0].size(), static_cast<std::size_t>(panel.n_bars()));
  for (std::size_t i = 1; i < curves[0].size(); ++i) EXPECT_LT(curves[0][i - 1].ts, curves[0][i].ts);
  for (std::size_t i = 0; i < curves[0].size(); ++i) {
    EXPECT_EQ(curves[0][i].ts, curves[1][i].ts);
    EXPECT_EQ(curves[0][i].equity, curves[1][i].equity);
  }
  expect_same_trades(trades[0], trades[1], "second run");
}

/// Lets only one hook of a Meddler through (so a test exercises that hook alone).
template <Hook H>
class OnlyHook final : public TradingSubsystem {
 public:
  explicit OnlyHook(std::shared_ptr<TradingSubsystem> m) : m_(std::move(m)) {}
  std::string name() const override { return m_->name(); }
  SubsystemMode mode() const override { return m_->mode(); }
  bool answers(Hook h) const override { return h == H; }
  std::optional<CheckAnswer> risk_check(const TradeCandidate& c, const CheckAnswer& v, std::string& why) override {
    return m_->risk_check(c, v, why);
  }
  std::optional<SizingAnswer> position_sizing(const TradeCandidate& c, const SizingAnswer& v, std::string& why) override {
    return m_->position_sizing(c, v, why);
  }

 private:
  std::shared_ptr<TradingSubsystem> m_;
};

/// Half of the symbols, chosen by a hash of the name.
bool odd(std::string_view symbol) { return std::hash<std::string_view>{}(symbol) % 2 == 1; }

/// A subsystem that answers every hook and would change everything.
class Meddler final : public TradingSubsystem {
 public:
  Meddler(std::string name, SubsystemMode mode) : name_(std::move(name)), mode_(mode) {}
  std::string name() const override { return name_; }
  SubsystemMode mode() const override { return mode_; }
  bool answers(Hook) const override { return true; }
  bool throw_in_risk = false, throw_in_sizing = false;
  int calls = 0;
  std::optional<UniverseAnswer> universe_filter(const TradeCandidate& c, const UniverseAnswer&, std::string& why) override {
    ++calls;
    why = "odd symbols only";
    return UniverseAnswer{odd(c.symbol.view())};
  }
  std::optional<ConfidenceAnswer> confidence_adjustment(const TradeCandidate& c, const ConfidenceAnswer& v, std::string& why) override {
    why = "demanding";
    return ConfidenceAnswer{std::min(1.0, v.threshold + 0.3), c.confidence * 0.9};
  }
  std::optional<CheckAnswer> risk_check(const TradeCandidate&, const CheckAnswer& v, std::string& why) override {
    if (throw_in_risk) throw std::runtime_error("risk model crashed");
    why = "halve";
    CheckAnswer a = v;
    a.size_scale = 0.5;
    return a;
  }
  std::optional<SizingAnswer> position_sizing(const TradeCandidate&, const SizingAnswer& v, std::string& why) override {
    if (throw_in_sizing) throw std::runtime_error("sizing model crashed");
    why = "smaller";
    return SizingAnswer{v.quote_qty * 0.6};
  }
  std::optional<ClassificationAnswer> position_classification(const PositionSnapshot& p, const ClassificationAnswer&, std::string& why) override {
    why = "impatient";
    return ClassificationAnswer{p.r_multiple > 0 ? "WINNER" : "LOSER", p.bars_held > 3};
  }
  std::optional<AmplificationAnswer> amplification_check(const PositionSnapshot& p, const AmplificationAnswer&, std::string& why) override {
    why = "add to winners";
    return AmplificationAnswer{p.r_multiple > 0.0 && p.bars_held == 2 ? 0.5 : 0.0, 0.0};
  }
  std::optional<CoordinationAnswer> ai_hfos_coordination(const SystemSnapshot&, const CoordinationAnswer&, std::string& why) override {
    why = "careful";
    return CoordinationAnswer{0.1, 0.5, false};
  }

 private:
  std::string name_;
  SubsystemMode mode_;
};

TEST(Executor, ObserveChangesNothingEnforcedChangesTrades) {
  const MarketPanel panel = test_market(6, 900);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 2);
  TempDir dir;
  Config cfg = quiet_config();
  cfg.hfos_update_interval = 3600;
  auto run = [&](const std::string& name, std::vector<std::shared_ptr<TradingSubsystem>> subs) {
    ReplayOptions o = alike_options(dir.file(name + ".db"));
    o.log_dir = dir.file("logs");
    replay_run(panel, cfg, strategies, subs, o);
    return ledger_trades(panel, dir.file(name + ".db"));
  };
  const auto off = run("off", {});
  ASSERT_GT(off.size(), 20u);
  auto observer = std::make_shared<Meddler>("AI-HFOS", SubsystemMode::observe);
  const auto observed = run("observe", {observer, std::make_shared<Meddler>("PIL", SubsystemMode::observe)});
  expect_same_trades(off, observed, "OBSERVE");
  EXPECT_GT(observer->calls, 0);
  // The OBSERVE decisions were logged as "would" in the subsystem's own file.
  std::ifstream log(dir.file("logs") + "/ai_subsystem_ai_hfos.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("[AI-HFOS] OBSERVE mode - would pre_trade_confidence_adjustment"), std::string::npos) << text.substr(0, 300);
  // ADVISORY: sizes change (soft), the same entries happen.
  const auto advised = run("advisory", {std::make_shared<Meddler>("PBA", SubsystemMode::advisory)});
  ASSERT_FALSE(advised.empty());
  EXPECT_NE(off.size() == advised.size() && off[0].pnl == advised[0].pnl, true);
  // ENFORCED: the universe filter and the classification exits apply; no trade on an even-numbered symbol.
  const auto enforced = run("enforced", {std::make_shared<Meddler>("PIL", SubsystemMode::enforced)});
  ASSERT_FALSE(enforced.empty());
  for (const auto& t : enforced) EXPECT_TRUE(odd(panel.symbols()[static_cast<std::size_t>(t.symbol)])) << t.symbol;
  const Ledger l(dir.file("enforced.db"), store::OpenMode::existing);
  std::size_t universe_denials = 0;
  for (const auto& o : l.orders(OrderQuery{OrderStatus::denied}))
    if (o.deny_reason == DenyReason::universe_filter) {
      ++universe_denials;
      ASSERT_FALSE(o.trace.empty());
      EXPECT_EQ(o.trace.back().subsystem, "PIL");
      EXPECT_EQ(o.trace.back().hook, "pre_trade_universe_filter");
    }
  EXPECT_GT(universe_denials, 0u);
  // Amplification ENFORCED: a winner at its second bar gets a second entry, half its size, on the same position.
  std::map<std::uint64_t, int> entries_per_position;
  for (const auto& o : l.orders())
    if (o.purpose == OrderPurpose::entry && o.status == OrderStatus::filled) ++entries_per_position[o.position_id];
  int scaled = 0;
  for (const auto& [id, n] : entries_per_position) scaled += n > 1;
  EXPECT_GT(scaled, 0);
}

TEST(Executor, DecisionTraceExplainsTheSize) {
  const MarketPanel panel = test_market(4, 700);
  const auto genomes = trading_genomes(panel, 1);
  TempDir dir;
  ReplayOptions o = alike_options(dir.file("l.db"));
  replay_run(panel, quiet_config(), {live(genomes[0])}, {std::make_shared<Meddler>("PBA", SubsystemMode::advisory)}, o);
  const Ledger l(dir.file("l.db"), store::OpenMode::existing);
  bool found = false;
  for (const auto& rec : l.orders()) {
    if (rec.purpose != OrderPurpose::entry || rec.status != OrderStatus::filled) continue;
    found = true;
    // BASELINE sizing, then the risk check's halving and the sizing hook's 60%, then the Risk OS: in that order.
    std::vector<std::string> hooks;
    for (const auto& s : rec.trace) hooks.push_back(s.hook + "/" + s.subsystem);
    const auto pos = [&](const std::string& h) { return std::find(hooks.begin(), hooks.end(), h) - hooks.begin(); };
    EXPECT_LT(pos("pre_trade_risk_check/PBA"), pos("pre_trade_position_sizing/BASELINE"));
    EXPECT_LT(pos("pre_trade_position_sizing/BASELINE"), pos("pre_trade_position_sizing/PBA"));
    EXPECT_LT(pos("pre_trade_position_sizing/PBA"), pos("risk_os/RISK_OS"));
    EXPECT_LT(pos("risk_os/RISK_OS"), static_cast<std::ptrdiff_t>(hooks.size()));
    const auto& sizing = rec.trace[static_cast<std::size_t>(pos("pre_trade_position_sizing/PBA"))];
    EXPECT_TRUE(sizing.applied);
    EXPECT_EQ(sizing.reason, "smaller");
    EXPECT_NE(sizing.before, sizing.after);
    EXPECT_EQ(rec.request.quote_qty, std::stod(sizing.after.substr(6)));  // the trace prints the exact double
    break;
  }
  EXPECT_TRUE(found);
}

TEST(Executor, FailSafeDeniesProtectiveHooksAndKeepsTheBaselineElsewhere) {
  const MarketPanel panel = test_market(4, 700);
  const auto genomes = trading_genomes(panel, 1);
  TempDir dir;
  // A sizing model that throws: enhancing, so the baseline size stands and the trades equal the run without it.
  auto sizing = std::make_shared<Meddler>("PBA", SubsystemMode::enforced);
  sizing->throw_in_sizing = true;

  std::uint64_t health_events = 0;
  ReplayOptions o = alike_options(dir.file("a.db"));
  Subscription sub;  // released with the run's bus (a subscription holds the bus weakly)
  o.before_bar = [&](std::int32_t t, ReplayControl& control) {
    if (t == 0) sub = control.bus.subscribe<HealthStatusChanged>("test", [&](const HealthStatusChanged&) { ++health_events; });
  };
  replay_run(panel, quiet_config(), {live(genomes[0])}, {std::make_shared<OnlyHook<Hook::pre_trade_position_sizing>>(sizing)}, o);
  EXPECT_GT(health_events, 0u);
  replay_run(panel, quiet_config(), {live(genomes[0])}, {}, alike_options(dir.file("b.db")));
  expect_same_trades(ledger_trades(panel, dir.file("b.db")), ledger_trades(panel, dir.file("a.db")), "throwing sizing hook");
  // A risk check that throws: protective, so every entry is denied FAIL_SAFE.
  auto risk = std::make_shared<Meddler>("RISK", SubsystemMode::enforced);
  risk->throw_in_risk = true;

  const ReplayResult r = replay_run(panel, quiet_config(), {live(genomes[0])}, {std::make_shared<OnlyHook<Hook::pre_trade_risk_check>>(risk)}, alike_options(dir.file("c.db")));
  EXPECT_EQ(r.stats.trades, 0u);
  EXPECT_GT(r.stats.denied, 0u);
  const Ledger l(dir.file("c.db"), store::OpenMode::existing);
  for (const auto& rec : l.orders(OrderQuery{OrderStatus::denied})) EXPECT_EQ(rec.deny_reason, DenyReason::fail_safe);
}

TEST(Executor, BrakeMidRunStopsEntriesAndLetsExitsThrough) {
  const MarketPanel panel = test_market(6, 900);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 2);
  TempDir dir;
  ReplayOptions o = alike_options(dir.file("l.db"));
  o.before_bar = [](std::int32_t t, ReplayControl& control) {
    if (t == 450) control.risk.brake_set(true, "operator", "test");
  };
  replay_run(panel, quiet_config(), strategies, {}, o);
  const Ledger l(dir.file("l.db"), store::OpenMode::existing);
  const TimeNs brake_at = (panel.t0_ms() + 450 * panel.interval_ms()) * kNsPerMillisecond;
  std::size_t exits_after = 0, brake_denials = 0;
  for (const auto& rec : l.orders()) {
    if (rec.created < brake_at) continue;
    if (rec.purpose == OrderPurpose::entry) {
      EXPECT_EQ(rec.status, OrderStatus::denied) << rec.request.order_id;
      brake_denials += rec.deny_reason == DenyReason::emergency_brake;
    } else if (rec.status == OrderStatus::filled) {
      ++exits_after;
    }
  }
  EXPECT_GT(brake_denials, 0u);
  EXPECT_GT(exits_after, 0u);
  // Everything that was open at the brake got out by the end.
  EXPECT_TRUE(l.positions().empty());
}

TEST(Executor, UnknownOutcomesAreReconciledNotResent) {
  const MarketPanel panel = test_market(4, 700);
  const auto genomes = trading_genomes(panel, 1);
  TempDir dir;
  ReplayOptions o = alike_options(dir.file("lost.db"));
  o.exchange.lose_answer_every = 3;
  const ReplayResult r = replay_run(panel, quiet_config(), {live(genomes[0])}, {}, o);
  EXPECT_GT(r.stats.unknown, 0u);
  replay_run(panel, quiet_config(), {live(genomes[0])}, {}, alike_options(dir.file("ok.db")));
  // The venue took every order whose answer was lost: the trades are the same, and nothing was sent twice.
  expect_same_trades(ledger_trades(panel, dir.file("ok.db")), ledger_trades(panel, dir.file("lost.db")), "lost answers");
  const Ledger l(dir.file("lost.db"), store::OpenMode::existing);
  for (const auto& rec : l.orders()) EXPECT_NE(rec.status, OrderStatus::pending_new) << rec.request.order_id;
}

TEST(Executor, RiskOsDenialsReachTheLedgerWithTheirReason) {
  const MarketPanel panel = test_market(6, 900);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 2);
  TempDir dir;
  ReplayOptions o = alike_options(dir.file("l.db"));
  o.policy->max_open_positions = 1;
  const ReplayResult r = replay_run(panel, quiet_config(), strategies, {}, o);
  EXPECT_GT(r.stats.denied, 0u);
  const Ledger l(dir.file("l.db"), store::OpenMode::existing);
  std::size_t max_open = 0;
  for (const auto& rec : l.orders(OrderQuery{OrderStatus::denied})) {
    max_open += rec.deny_reason == DenyReason::max_open_positions;
    EXPECT_FALSE(rec.detail.empty());
  }
  EXPECT_GT(max_open, 0u);
  // A denial that repeats bar after bar is one row with a count: every denial is accounted for, none twice.
  std::uint64_t rows = 0, repeats = 0;
  for (const auto& rec : l.orders(OrderQuery{OrderStatus::denied})) ++rows, repeats += rec.repeats;
  EXPECT_GT(repeats, 0u);
  EXPECT_EQ(rows + repeats, r.stats.denied);
  EXPECT_EQ(repeats, r.stats.denials_repeated);
  // Order ids stay dense: the ids of folded denials are not used.
  EXPECT_EQ(l.order_id_max(), static_cast<std::uint64_t>(l.orders().size()));
  // Never more than one position at a time.
  auto trades = l.trades();
  std::sort(trades.begin(), trades.end(), [](const ClosedTrade& a, const ClosedTrade& b) { return a.entry_time < b.entry_time; });
  for (std::size_t i = 1; i < trades.size(); ++i) EXPECT_GE(trades[i].entry_time, trades[i - 1].exit_time);
}

TEST(Executor, FoldingRepeatedDenialsChangesNothingInTheLedger) {
  const MarketPanel panel = test_market(6, 900);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 3);
  TempDir dir;
  std::vector<ReplayResult> results;
  for (bool fold : {false, true}) {
    ReplayOptions o = alike_options(dir.file(fold ? "fold.db" : "full.db"));
    o.policy->max_open_positions = 2;  // a full book and held symbols: denials that repeat bar after bar
    o.executor.fold_repeated_denials = fold;
    results.push_back(replay_run(panel, quiet_config(), strategies, {}, o));
  }
  EXPECT_EQ(results[0].stats.denied, results[1].stats.denied);
  EXPECT_GT(results[1].stats.denials_repeated, 100u);
  const Ledger a(dir.file("full.db"), store::OpenMode::existing), b(dir.file("fold.db"), store::OpenMode::existing);
  const auto oa = a.orders(), ob = b.orders();
  ASSERT_EQ(oa.size(), ob.size());
  for (std::size_t i = 0; i < oa.size(); ++i) {
    SCOPED_TRACE("order " + std::to_string(oa[i].request.order_id));
    EXPECT_EQ(oa[i].request.order_id, ob[i].request.order_id);
    EXPECT_EQ(oa[i].status, ob[i].status);
    EXPECT_EQ(oa[i].deny_reason, ob[i].deny_reason);
    EXPECT_EQ(oa[i].repeats, ob[i].repeats);
    EXPECT_EQ(oa[i].created, ob[i].created);
    EXPECT_EQ(oa[i].updated, ob[i].updated);
    EXPECT_EQ(oa[i].trace, ob[i].trace);
    EXPECT_EQ(oa[i].detail, ob[i].detail);
  }
  expect_same_trades(ledger_trades(panel, dir.file("full.db")), ledger_trades(panel, dir.file("fold.db")), "folded denials");
}

TEST(Executor, APolicyChangeMidRunAppliesAtOnce) {
  const MarketPanel panel = test_market(6, 900);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 2);
  TempDir dir;
  ReplayOptions o = alike_options(dir.file("l.db"));
  std::uint64_t version = 0;
  o.before_bar = [&](std::int32_t t, ReplayControl& control) {
    if (t != 450) return;
    auto r = control.policy.update(control.policy.version(), [](Policy& p) { p.max_open_positions = 0; },
                                   "operator closes the book", "test");
    ASSERT_TRUE(r.ok());
    version = r.value()->version;
  };
  replay_run(panel, quiet_config(), strategies, {}, o);
  const Ledger l(dir.file("l.db"), store::OpenMode::existing);
  const TimeNs at = (panel.t0_ms() + 450 * panel.interval_ms()) * kNsPerMillisecond;
  std::size_t after = 0;
  for (const auto& rec : l.orders()) {
    if (rec.purpose != OrderPurpose::entry || rec.created < at) continue;
    ++after;
    EXPECT_EQ(rec.status, OrderStatus::denied);  // a book of zero positions (or a symbol already held)
    EXPECT_TRUE(rec.deny_reason == DenyReason::max_open_positions || rec.deny_reason == DenyReason::duplicate_position);
    EXPECT_EQ(rec.policy_version, version) << "decided under the new policy";
  }
  EXPECT_GT(after, 0u);
}

/// Predicts "up with probability 0.8" for the first symbol and "down, 0.3" for the second at every bar with enough
/// history, nothing for the others: the model path of the executor, without a network.
class FakePredictor final : public Predictor {
 public:
  std::string name() const override { return "fake"; }
  std::int32_t horizon() const override { return 5; }
  Result<Predictions> predict(const kernels::PanelView& panel, std::int32_t t) const override {
    if (t < 30) return Error{ErrorCode::not_enough_history, "fake: 30 bars of history"};
    Predictions p;
    p.bar = t;
    p.horizon = 5;
    p.expected_return.assign(static_cast<std::size_t>(panel.n_symbols), std::numeric_limits<float>::quiet_NaN());
    p.prob_up = p.expected_return;
    p.prob_up[0] = 0.8f;
    p.prob_up[1] = 0.3f;
    p.expected_return[0] = 0.01f;
    p.expected_return[1] = -0.01f;
    return p;
  }
};

TEST(Executor, ModelSignalsTradeThroughTheSamePipeline) {
  const MarketPanel panel = test_market(4, 400);
  TempDir dir;
  FakePredictor model;
  ReplayOptions o = alike_options(dir.file("l.db"));
  o.predictor = &model;
  o.policy->min_confidence = 0.75;  // the first symbol's 0.8 passes, the second's 0.7 does not
  o.policy->max_risk_per_trade = 0.01;
  const ReplayResult r = replay_run(panel, quiet_config(), {}, {}, o);
  EXPECT_GT(r.stats.trades, 10u);
  const Ledger l(dir.file("l.db"), store::OpenMode::existing);
  for (const auto& t : l.trades()) {
    EXPECT_EQ(t.strategy.str(), "model:fake");
    EXPECT_EQ(t.symbol.str(), panel.symbols()[0]) << "only the confident symbol trades";
    EXPECT_EQ(t.side, Side::buy);
    const TimeNs held = t.exit_time - t.entry_time;
    EXPECT_LE(held, 6 * panel.interval_ms() * kNsPerMillisecond) << "exits by its 5-bar horizon, or earlier at a stop or target";
    // The P&L from the fills, the return on the account's equity at the entry.
    EXPECT_NEAR(t.pnl, (t.exit_price - t.entry_price) * t.qty - t.fees, 1e-9 * std::abs(t.entry_price * t.qty));
    EXPECT_NE(t.ret, 0.0);
    EXPECT_LT(std::abs(t.ret), 0.5);
  }
  std::size_t low_confidence = 0;
  for (const auto& rec : l.orders(OrderQuery{OrderStatus::denied}))
    if (rec.deny_reason == DenyReason::low_confidence) {
      ++low_confidence;
      EXPECT_EQ(rec.request.symbol.str(), panel.symbols()[1]);
      EXPECT_NE(rec.detail.find("confidence 0.69999"), std::string::npos) << rec.detail;  // 1 - 0.3f
    }
  EXPECT_GT(low_confidence, 0u);
}

TEST(Executor, AnEntryIsCappedAtWhatTheFreeMarginFunds) {
  // Full-size sleeves at leverage 1: the fee would take an entry past the cash; the executor asks for what the margin
  // funds, the venue rejects nothing, and the trace says why the size is smaller.
  const MarketPanel panel = test_market(4, 700);
  TempDir dir;
  ReplayOptions o = alike_options(dir.file("l.db"));
  o.executor.leverage = 1;
  kernels::Genome g = genome_decode("g1:1,0,2,0,0,0,0,0,0,2,0,2,0,0,2,3,2,48,1", "test");
  const ReplayResult r = replay_run(panel, quiet_config(), {live(kernels::genome_normalize(g))}, {}, o);
  EXPECT_GT(r.stats.trades, 5u);
  EXPECT_EQ(r.stats.rejected, 0u);
  const Ledger l(dir.file("l.db"), store::OpenMode::existing);
  bool capped = false;
  for (const auto& rec : l.orders())
    for (const auto& s : rec.trace) capped = capped || s.reason.find("capped at what the free margin funds") != std::string::npos;
  EXPECT_TRUE(capped);
}

/// A venue that says it is real money (everything else is the paper venue's): for the AUTONOMY check only.
class RealVenue final : public Exchange {
 public:
  explicit RealVenue(Clock& clock) : paper_(PaperExchangeConfig{}, clock) {}
  std::string name() const override { return "binance-futures"; }
  MarketKind market() const override { return paper_.market(); }
  bool simulated() const override { return false; }
  std::string quote_asset() const override { return paper_.quote_asset(); }
  Result<SymbolFilters> filters(const Symbol& s) const override { return paper_.filters(s); }
  SubmitResult submit(const OrderRequest& o) override { return paper_.submit(o); }
  SubmitResult cancel(std::uint64_t id) override { return paper_.cancel(id); }
  SubmitResult amend_stop(std::uint64_t id, double stop) override { return paper_.amend_stop(id, stop); }
  std::optional<OrderState> query(std::uint64_t id) const override { return paper_.query(id); }
  std::vector<OrderState> open_orders() const override { return paper_.open_orders(); }
  std::vector<VenuePosition> positions() const override { return paper_.positions(); }
  std::vector<Balance> balances() const override { return paper_.balances(); }
  double equity() const override { return paper_.equity(); }
  double quote_free() const override { return paper_.quote_free(); }
  void listener_set(ExchangeListener* l) override { paper_.listener_set(l); }

 private:
  PaperExchange paper_;
};

TEST(Executor, AutonomyIsRefusedOnARealVenue) {
  SimClock clock(0);
  EventBus bus(clock);
  bus.bind_owner_thread();
  PolicyStore policy(std::make_unique<MemoryPolicyBackend>(), clock, &bus);
  RiskOS risk(RiskLimits{}, bus);
  Ledger ledger(":memory:");
  HookPipeline hooks(bus);
  AITradingEngine engine;
  RealVenue venue(clock);
  Config cfg;
  cfg.stage = IntegrationStage::autonomy;
  try {
    EventDrivenExecutor executor(cfg, bus, venue, risk, policy, ledger, hooks, engine);
    FAIL() << "AUTONOMY accepted on a real venue";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("stage AUTONOMY needs the paper exchange or a testnet; the exchange is binance-futures"),
              std::string::npos)
        << e.what();
  }
  cfg.stage = IntegrationStage::coordination;  // below AUTONOMY the venue may be real
  EXPECT_NO_THROW(EventDrivenExecutor(cfg, bus, venue, risk, policy, ledger, hooks, engine));
}

TEST(Executor, AReplayWindowOutsideThePanelIsNamed) {
  const MarketPanel panel = test_market(2, 100);
  ReplayOptions o;
  o.t_begin = 100;
  try {
    replay_run(panel, quiet_config(), {}, {}, o);
    FAIL() << "an empty window was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("replay window: bars [100, 100) must be a non-empty part of the panel's 100 bars"),
              std::string::npos)
        << e.what();
  }
}


// ---------------------------------------------------------------------------------------------------------------
// Restart: a run killed with SIGKILL continues from its last commit as if it had never stopped.

/// What a run left in its event log: ids, and the orders and fills in order.
struct LogSummary {
  std::vector<std::uint64_t> ids;
  std::uint64_t bars = 0;
  std::vector<std::uint64_t> submitted, filled;
};

LogSummary log_summary(const std::string& path) {
  LogSummary out;
  EventLogReader reader(path);
  for (;;) {
    auto r = reader.next();
    EXPECT_TRUE(r.ok()) << path;
    if (!r.ok() || !r.value()) break;
    std::visit(
        [&](const auto& e) {
          using E = std::decay_t<decltype(e)>;
          out.ids.push_back(e.header.id);
          if constexpr (std::is_same_v<E, MarketBarClosed>) ++out.bars;
          if constexpr (std::is_same_v<E, OrderSubmitted>) out.submitted.push_back(e.order_id);
          if constexpr (std::is_same_v<E, OrderFilled>) out.filled.push_back(e.order_id);
        },
        *r.value());
  }
  return out;
}

TEST(Executor, AKilledRunResumesFromItsLastCommitAsIfNeverStopped) {
  const MarketPanel panel = test_market(5, 800);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 3);
  ASSERT_EQ(strategies.size(), 3u);
  TempDir dir;
  const auto options = [&](const std::string& name) {
    ReplayOptions o = alike_options(dir.file(name + ".db"));
    o.policy->max_open_positions = 2;  // strategies compete: folded denials cross the restart too
    o.executor.commit_every = 1;
    o.checkpoint = true;
    o.event_log_path = dir.file(name + ".qel");
    return o;
  };
  const ReplayResult whole = replay_run(panel, quiet_config(), strategies, {}, options("whole"));
  ASSERT_GE(whole.stats.trades, 5u);
  ASSERT_GT(whole.stats.denied, 0u);

  // The same run, killed with SIGKILL somewhere after bar 400 (it slows down there so that it cannot finish first).
  const std::uint64_t acked = test::sigkill_after_acks(400, [&](int fd) {
    ReplayOptions o = options("killed");
    o.before_bar = [fd](std::int32_t t, ReplayControl&) {
      const auto v = static_cast<std::uint64_t>(t);
      if (::write(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) _exit(3);
      if (t >= 400) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    };
    replay_run(panel, quiet_config(), strategies, {}, o);
  });
  ASSERT_GE(acked, 400u);
  test::expect_sqlite_intact(dir.file("killed.db"));

  ReplayOptions o = options("killed");
  o.resume = true;
  const ReplayResult rest = replay_run(panel, quiet_config(), {}, {}, o);  // the strategies come from the checkpoint
  EXPECT_GE(rest.resumed_from, 400);
  EXPECT_LE(rest.resumed_from, static_cast<std::int32_t>(acked) + 1);
  EXPECT_EQ(rest.final_equity, whole.final_equity);

  // Nothing lost, nothing doubled: the same trades, equity curve, orders and fills, to the last bit.
  expect_same_trades(ledger_trades(panel, dir.file("whole.db")), ledger_trades(panel, dir.file("killed.db")), "resumed run");
  const Ledger a(dir.file("whole.db"), store::OpenMode::existing), b(dir.file("killed.db"), store::OpenMode::existing);
  const auto ca = a.equity_curve(), cb = b.equity_curve();
  ASSERT_EQ(ca.size(), cb.size());
  for (std::size_t i = 0; i < ca.size(); ++i) {
    EXPECT_EQ(ca[i].ts, cb[i].ts) << i;
    EXPECT_EQ(ca[i].equity, cb[i].equity) << i;
  }
  const auto oa = a.orders(), ob = b.orders();
  ASSERT_EQ(oa.size(), ob.size());
  for (std::size_t i = 0; i < oa.size(); ++i) {
    SCOPED_TRACE("order " + std::to_string(oa[i].request.order_id));
    EXPECT_EQ(oa[i].request.order_id, ob[i].request.order_id);
    EXPECT_EQ(oa[i].status, ob[i].status);
    EXPECT_EQ(oa[i].purpose, ob[i].purpose);
    EXPECT_EQ(oa[i].request.qty, ob[i].request.qty);
    EXPECT_EQ(oa[i].filled_qty, ob[i].filled_qty);
    EXPECT_EQ(oa[i].avg_price, ob[i].avg_price);
    EXPECT_EQ(oa[i].repeats, ob[i].repeats);
    EXPECT_EQ(oa[i].deny_reason, ob[i].deny_reason);
  }
  const auto fa = a.fills(), fb = b.fills();
  ASSERT_EQ(fa.size(), fb.size());
  for (std::size_t i = 0; i < fa.size(); ++i) EXPECT_EQ(fa[i].fill.fill_id, fb[i].fill.fill_id);
  EXPECT_TRUE(b.meta_get("finished").has_value());
  EXPECT_TRUE(b.meta_get("resumed_at").has_value());

  // The event log: what was recorded after the last checkpoint was cut; ids continue; every bar, order and fill once.
  const LogSummary la = log_summary(dir.file("whole.qel")), lb = log_summary(dir.file("killed.qel"));
  for (std::size_t i = 1; i < lb.ids.size(); ++i) ASSERT_LT(lb.ids[i - 1], lb.ids[i]) << "record " << i;
  EXPECT_EQ(la.bars, lb.bars);
  EXPECT_EQ(la.submitted, lb.submitted);
  EXPECT_EQ(la.filled, lb.filled);

  // A finished run is not resumed.
  try {
    replay_run(panel, quiet_config(), {}, {}, o);
    ADD_FAILURE() << "a finished run was resumed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("has finished"), std::string::npos) << e.what();
  }
}

TEST(Executor, ResumeNamesWhatItCannotContinue) {
  const MarketPanel panel = test_market(3, 500);
  const std::vector<LiveStrategy> strategies = live_strategies(panel, 1);
  TempDir dir;
  // A ledger recorded without checkpoints.
  ReplayOptions plain = alike_options(dir.file("plain.db"));
  plain.t_end = 300;
  replay_run(panel, quiet_config(), strategies, {}, plain);
  ReplayOptions o = alike_options(dir.file("plain.db"));
  o.resume = true;
  try {
    replay_run(panel, quiet_config(), {}, {}, o);
    ADD_FAILURE() << "a ledger without a checkpoint was resumed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no checkpoint"), std::string::npos) << e.what();
  }
  // A run stopped half-way, resumed on another market.
  ReplayOptions half = alike_options(dir.file("half.db"));
  half.executor.commit_every = 1;
  half.checkpoint = true;
  StopSource stop;
  half.stop = stop.token();
  half.before_bar = [&](std::int32_t t, ReplayControl&) {
    if (t == 250) stop.request();
  };
  const ReplayResult r = replay_run(panel, quiet_config(), strategies, {}, half);
  ASSERT_TRUE(r.stopped);
  SynthOptions other;
  other.n_symbols = 3;
  other.n_bars = 500;
  other.seed = 7;
  other.t0_ms = panel.t0_ms() + 3'600'000;
  const MarketPanel shifted = synth_generate(other).panel;
  ReplayOptions again = alike_options(dir.file("half.db"));
  again.resume = true;
  try {
    replay_run(shifted, quiet_config(), {}, {}, again);
    ADD_FAILURE() << "a run was resumed on another market";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another market"), std::string::npos) << e.what();
  }
  // A checkpoint of another layout (another qtos version) is refused, never misread.
  std::string saved;
  {
    Ledger l(dir.file("half.db"), store::OpenMode::existing);
    saved = *l.meta_get("checkpoint");
    std::string old_layout = saved;
    const std::string now = "\"version\":" + std::to_string(ckpt::kVersion);
    ASSERT_NE(old_layout.find(now), std::string::npos);
    old_layout.replace(old_layout.find(now), now.size(), "\"version\":1");
    l.meta_put("checkpoint", old_layout);
    l.commit();
  }
  try {
    replay_run(panel, quiet_config(), {}, {}, again);
    ADD_FAILURE() << "a checkpoint of another layout was restored";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("layout 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--new-run"), std::string::npos) << e.what();
  }
  {
    Ledger l(dir.file("half.db"), store::OpenMode::existing);
    l.meta_put("checkpoint", saved);
    l.commit();
  }
  // On its own market it continues to the end.
  const ReplayResult rest = replay_run(panel, quiet_config(), {}, {}, again);
  EXPECT_EQ(rest.resumed_from, 251);  // bar 250 was the last one committed
  EXPECT_EQ(rest.bars_done, 500);
}

}  // namespace executor_test
}  // namespace qtos
