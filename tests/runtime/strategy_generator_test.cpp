// StrategyGeneratorAI on a simulated clock and a real bus: shadow strategies paper-trade the bar stream, a good one
// is promoted to LIVE after the shadow period, a losing live one is retired, a blocked one stays, OBSERVE changes
// nothing; events and the repository record it all.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/config.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/services/strategy_generator.hpp"
#include "runtime/util/rng.hpp"
#include "tests/runtime/test_util.hpp"

namespace qtos {
namespace strategy_generator_test {

using kernels::CondKind;
using kernels::Genome;

constexpr std::int64_t kT0Ms = 1'704'067'200'000LL;
constexpr std::int32_t kBars = 24 * 20;  // 20 days of hourly bars
constexpr std::int32_t kSymbols = 3;

/// A steady uptrend with noise (+0.4% per hour, 0.2% noise): trend-following longs win, shorts lose. Symbol 1 misses
/// a few hours on day 3.
MarketPanel trending_market() {
  MarketPanel p({"AAAUSDT", "BBBUSDT", "CCCUSDT"}, kBars, kT0Ms, 3'600'000);
  Rng rng(11);
  for (std::int32_t s = 0; s < kSymbols; ++s) {
    double price = 100.0 * (s + 1);
    auto o = p.series_mut(Column::open, s), h = p.series_mut(Column::high, s), l = p.series_mut(Column::low, s),
         c = p.series_mut(Column::close, s), v = p.series_mut(Column::volume, s);
    for (std::int32_t t = 0; t < kBars; ++t) {
      const double open = price;
      price *= std::exp(0.004 + 0.002 * rng.normal());
      if (s == 1 && t >= 72 && t < 76) continue;
      const auto i = static_cast<std::size_t>(t);
      o[i] = static_cast<float>(open);
      c[i] = static_cast<float>(price);
      h[i] = static_cast<float>(std::max(open, price) * 1.001);
      l[i] = static_cast<float>(std::min(open, price) * 0.999);
      v[i] = 1000.0f;
    }
  }
  p.valid_ranges_recompute();
  return p;
}

Genome momentum(bool is_long, std::int32_t hold) {
  Genome g;
  g.entry[0] = {static_cast<std::int32_t>(CondKind::mom_up), 0, 0, 0.0f};
  g.side = is_long ? 0 : 1;
  g.max_hold = hold;
  return kernels::genome_normalize(g);
}

void publish_bar(EventBus& bus, const MarketPanel& p, std::int32_t s, std::int32_t t) {
  if (!p.has_bar(s, t)) return;
  MarketBarClosed b;
  b.symbol = p.symbols()[static_cast<std::size_t>(s)];
  b.interval_s = 3600;
  b.open_time = p.time_ms(t) * kNsPerMillisecond;
  b.open = p.series(Column::open, s)[static_cast<std::size_t>(t)];
  b.high = p.series(Column::high, s)[static_cast<std::size_t>(t)];
  b.low = p.series(Column::low, s)[static_cast<std::size_t>(t)];
  b.close = p.series(Column::close, s)[static_cast<std::size_t>(t)];
  b.volume = 1000.0;
  bus.publish("feed", b);
}

struct Fixture {
  test::TempDir dir;
  SimClock clock{kT0Ms * kNsPerMillisecond};
  EventBus bus{clock};
  std::unique_ptr<PolicyStore> policy;
  StrategyRepository repo{dir.file("s.db")};
  std::unique_ptr<BacktestBackend> backend = detail::backtest_cpu_backend();
  MarketPanel panel = trending_market();
  Genome good = momentum(true, 3), bad = momentum(false, 3), blocked = momentum(true, 4);
  std::vector<StrategyPromoted> promoted;
  std::vector<StrategyRetired> retired;
  Subscription s1 = bus.subscribe<StrategyPromoted>("test", [this](const StrategyPromoted& e) { promoted.push_back(e); });
  Subscription s2 = bus.subscribe<StrategyRetired>("test", [this](const StrategyRetired& e) { retired.push_back(e); });

  Fixture() {
    Policy initial;
    initial.blocked_strategies = {genome_id(blocked)};
    policy = std::make_unique<PolicyStore>(std::make_unique<MemoryPolicyBackend>(), clock, &bus, initial);
    for (const Genome& g : {good, bad, blocked}) {
      StrategyRecord r;
      r.genome = g;
      r.origin = "test";
      r.backtest_metrics = R"({"selected":true,"test":{"sharpe":1.5}})";  // as a train/validation/test search stores it
      repo.upsert(r, kT0Ms);
    }
    // The losing strategy is already live.
    EXPECT_TRUE(repo.transition(genome_id(bad), StrategyStatus::shadow, "setup", kT0Ms));
    EXPECT_TRUE(repo.transition(genome_id(bad), StrategyStatus::live, "setup", kT0Ms));
  }

  void replay() {
    for (std::int32_t t = 0; t < kBars; ++t) {
      clock.advance_to((panel.time_ms(t) + 3'600'000) * kNsPerMillisecond);  // the bar closes; timers due run first
      for (std::int32_t s = 0; s < kSymbols; ++s) publish_bar(bus, panel, s, t);
    }
  }
};

TEST(StrategyGeneratorAI, PromotesAfterShadowRetiresBelowFloorRespectsPolicy) {
  Fixture f;
  StrategyGeneratorOptions opt;
  opt.shadow_days = 7;
  StrategyGeneratorAI sg(f.bus, SubsystemMode::enforced, f.repo, *f.policy, *f.backend, opt);
  ASSERT_TRUE(sg.start());
  EXPECT_EQ(sg.tracked_count(), 1u);  // the live one
  ASSERT_TRUE(sg.promote_strategy(genome_id(f.good), "out-of-sample Sharpe ok"));
  ASSERT_TRUE(sg.promote_strategy(genome_id(f.blocked), "out-of-sample Sharpe ok"));
  EXPECT_EQ(sg.tracked_count(), 3u);
  ASSERT_EQ(f.promoted.size(), 2u);
  EXPECT_EQ(f.promoted[0].from, StrategyStage::candidate);
  EXPECT_EQ(f.promoted[0].to, StrategyStage::shadow);

  // Half-way through the shadow period nothing may be promoted yet, however good it looks.
  for (std::int32_t t = 0; t < 24 * 3; ++t) {
    f.clock.advance_to((f.panel.time_ms(t) + 3'600'000) * kNsPerMillisecond);
    for (std::int32_t s = 0; s < kSymbols; ++s) publish_bar(f.bus, f.panel, s, t);
  }
  const auto early = sg.evaluate_shadow_strategy(genome_id(f.good));
  ASSERT_TRUE(early);
  EXPECT_FALSE(early->period_elapsed);
  EXPECT_TRUE(early->beats_thresholds) << early->metrics.sharpe << " " << early->metrics.win_rate;
  EXPECT_EQ(f.repo.get(genome_id(f.good))->status, StrategyStatus::shadow);

  for (std::int32_t t = 24 * 3; t < kBars; ++t) {
    f.clock.advance_to((f.panel.time_ms(t) + 3'600'000) * kNsPerMillisecond);
    for (std::int32_t s = 0; s < kSymbols; ++s) publish_bar(f.bus, f.panel, s, t);
  }
  const auto good = f.repo.get(genome_id(f.good));
  EXPECT_EQ(good->status, StrategyStatus::live);
  EXPECT_NE(good->shadow_metrics.find("\"sharpe\""), std::string::npos) << good->shadow_metrics;
  const auto h = f.repo.history(good->id);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_NE(h[1].reason.find("win rate"), std::string::npos) << h[1].reason;
  // Promoted once the 7 days were over, within one review period (1 hour).
  EXPECT_GE(h[1].at_ms - h[0].at_ms, 7 * 86'400'000LL);
  EXPECT_LE(h[1].at_ms - h[0].at_ms, 7 * 86'400'000LL + 3'600'000LL);

  EXPECT_EQ(f.repo.get(genome_id(f.bad))->status, StrategyStatus::retired);
  ASSERT_EQ(f.retired.size(), 1u);
  EXPECT_EQ(std::string(f.retired[0].strategy.view()), genome_id(f.bad));
  EXPECT_NE(f.retired[0].reason.find("below the floor"), std::string::npos) << f.retired[0].reason;

  const auto blocked = f.repo.get(genome_id(f.blocked));
  EXPECT_EQ(blocked->status, StrategyStatus::shadow);  // as good as the promoted one, but blocked by the policy
  const auto eb = sg.evaluate_shadow_strategy(blocked->id);
  ASSERT_TRUE(eb);
  EXPECT_TRUE(eb->beats_thresholds && eb->period_elapsed);
  EXPECT_FALSE(eb->allowed_by_policy);
  EXPECT_EQ(sg.promote_strategy(blocked->id, "manual").error().code, "blocked");

  ASSERT_EQ(f.promoted.size(), 3u);
  EXPECT_EQ(f.promoted[2].to, StrategyStage::live);
  EXPECT_GT(f.promoted[2].fitness, 2.0);
}

TEST(StrategyGeneratorAI, ObserveModeEvaluatesAndChangesNothing) {
  Fixture f;
  ASSERT_TRUE(f.repo.transition(genome_id(f.good), StrategyStatus::shadow, "setup", kT0Ms));
  StrategyGeneratorOptions opt;
  StrategyGeneratorAI sg(f.bus, SubsystemMode::observe, f.repo, *f.policy, *f.backend, opt);
  ASSERT_TRUE(sg.start());
  f.replay();
  EXPECT_EQ(f.repo.get(genome_id(f.good))->status, StrategyStatus::shadow);
  EXPECT_EQ(f.repo.get(genome_id(f.bad))->status, StrategyStatus::live);
  EXPECT_TRUE(f.promoted.empty());
  EXPECT_TRUE(f.retired.empty());
  const auto would = sg.review();
  EXPECT_EQ(would.size(), 2u);  // it would promote the good one and retire the bad one
}

TEST(StrategyGeneratorAI, ConfigurationSetsModeAndShadowPeriod) {
  Config c;
  EXPECT_EQ(strategy_generator_mode(c), SubsystemMode::off);  // QT_SG_AI_ENABLED defaults to false
  c.sg_enabled = true;
  c.sg_shadow_days = 3;
  EXPECT_EQ(strategy_generator_mode(c), SubsystemMode::enforced);
  EXPECT_EQ(strategy_generator_options(c).shadow_days, 3.0);
  c.sg_promote_min_sharpe = 1.25;
  c.sg_promote_min_win_rate = 0.5;
  c.sg_promote_min_trades = 30;
  c.sg_live_floor_sharpe = -0.25;
  c.sg_review_interval = 900;
  const StrategyGeneratorOptions o = strategy_generator_options(c);
  EXPECT_EQ(o.promote_min_sharpe, 1.25);
  EXPECT_EQ(o.promote_min_win_rate, 0.5);
  EXPECT_EQ(o.min_trades, 30.0);
  EXPECT_EQ(o.live_floor_sharpe, -0.25);
  EXPECT_EQ(o.review_period, TimeNs{900} * 1'000'000'000);
  Fixture f;
  StrategyGeneratorAI off(f.bus, strategy_generator_mode(Config{}), f.repo, *f.policy, *f.backend, StrategyGeneratorOptions{});
  EXPECT_FALSE(off.start());  // OFF: not started, nothing tracked
  EXPECT_EQ(off.tracked_count(), 0u);
}

TEST(StrategyGeneratorAI, ThresholdsComeFromQtVariables) {
  ConfigSources src;
  src.environment = {{"QT_SG_PROMOTE_MIN_SHARPE", "1.8"},  {"QT_SG_PROMOTE_MIN_WIN_RATE", "0.6"}, {"QT_SG_PROMOTE_MIN_TRADES", "12"},
                     {"QT_SG_LIVE_FLOOR_SHARPE", "0.3"},   {"QT_SG_REVIEW_INTERVAL", "120"},     {"QT_SG_SHADOW_DAYS", "5"}};
  const StrategyGeneratorOptions o = strategy_generator_options(config_load(src));
  EXPECT_EQ(o.promote_min_sharpe, 1.8);
  EXPECT_EQ(o.promote_min_win_rate, 0.6);
  EXPECT_EQ(o.min_trades, 12.0);
  EXPECT_EQ(o.live_floor_sharpe, 0.3);
  EXPECT_EQ(o.review_period, TimeNs{120} * 1'000'000'000);
  EXPECT_EQ(o.shadow_days, 5.0);
  src.environment = {{"QT_SG_PROMOTE_MIN_WIN_RATE", "65%"}};
  try {
    config_load(src);
    FAIL() << "65% accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("QT_SG_PROMOTE_MIN_WIN_RATE='65%'"), std::string::npos) << e.what();
  }
}

TEST(StrategyGeneratorAI, GeneratesBacktestsAndEvolvesIntoTheRepository) {
  Fixture f;
  StrategyGeneratorAI sg(f.bus, SubsystemMode::enforced, f.repo, *f.policy, *f.backend, StrategyGeneratorOptions{});
  const Genome g = sg.generate_strategy();
  EXPECT_EQ(genome_hash(g), genome_hash(kernels::genome_normalize(g)));
  const BacktestMetrics m = sg.backtest_strategy(f.panel, f.good);
  EXPECT_GT(m.trades, 50);
  EXPECT_GT(m.total_return, 0.0);
  EXPECT_LT(sg.backtest_strategy(f.panel, f.bad).total_return, 0.0);
  EvolveOptions eo;
  eo.population = 12;
  eo.generations = 2;
  eo.hall_of_fame = 4;
  eo.min_trades = 5;
  eo.train_end = 240;
  eo.test_begin = 300;
  eo.test_end = kBars;
  // The generator selects on a validation window: without one it refuses to run.
  try {
    sg.evolve_population(f.panel, eo);
    FAIL() << "ran without a validation window";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no validation window"), std::string::npos) << e.what();
  }
  eo.validation_begin = 240;
  eo.validation_end = 300;
  const EvolveResult r = sg.evolve_population(f.panel, eo);
  ASSERT_EQ(r.hall_of_fame.size(), 4u);
  for (const auto& h : r.hall_of_fame) {
    const auto rec = f.repo.get(genome_id(h.genome));
    ASSERT_TRUE(rec);
    for (const char* key : {"\"train\"", "\"validation\"", "\"test\"", "deflated_sharpe"})
      EXPECT_NE(rec->backtest_metrics.find(key), std::string::npos) << key << " in " << rec->backtest_metrics;
    const bool selected = &h == &r.hall_of_fame.front();
    EXPECT_EQ(rec->backtest_metrics.find("\"selected\":true") != std::string::npos, selected) << rec->backtest_metrics;
    // Only the selected strategy may go to SHADOW (on this trending market its test Sharpe is positive).
    const auto p = sg.promote_strategy(rec->id, "selected on validation");
    if (selected) {
      EXPECT_GT(h.test.sharpe, 0.0);
      EXPECT_TRUE(p) << p.error().message;
    } else {
      ASSERT_FALSE(p);
      EXPECT_EQ(p.error().code, "conflict");
      EXPECT_NE(p.error().message.find("was not the selected strategy of a train/validation/test search"), std::string::npos)
          << p.error().message;
    }
  }
}

TEST(StrategyGeneratorAI, ShadowEntryNeedsTheSelectedStrategyWithAPositiveTestSharpe) {
  StrategyRecord rec;
  rec.id = "abcd";
  rec.backtest_metrics = "";
  EXPECT_TRUE(shadow_entry_refusal(rec));  // no metrics at all (stored by hand)
  rec.backtest_metrics = R"({"selected":false,"test":{"sharpe":3}})";
  EXPECT_TRUE(shadow_entry_refusal(rec));
  rec.backtest_metrics = R"({"selected":true,"test":{"sharpe":-0.4}})";
  const auto why = shadow_entry_refusal(rec);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("test-window Sharpe is -0.4"), std::string::npos) << *why;
  rec.backtest_metrics = R"({"selected":true,"test":{"sharpe":0.8}})";
  EXPECT_FALSE(shadow_entry_refusal(rec));
}

}  // namespace strategy_generator_test
}  // namespace qtos
