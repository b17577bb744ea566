// MarketOpportunityRanker and UniverseOS on a simulated clock and a real bus: bars in, OpportunitiesUpdated out,
// policy weights, modes, and the executor's universe filter.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/ranking/panel_ranking.hpp"
#include "runtime/services/opportunity_ranker.hpp"
#include "runtime/services/universe_os.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace {

constexpr std::int32_t kSymbols = 24;
constexpr std::int32_t kBars = 260;

/// A synthetic hourly market (late listings, a gap, a delisting) whose quote volume is exactly what the ranker
/// derives from a bar event (volume x close), which synth_generate's panels do not satisfy (their quote volume uses
/// the bar's typical price).
MarketPanel market() {
  const testing::OwnedPanel o = testing::synthetic_panel(kSymbols, kBars, 5);
  std::vector<std::string> names;
  for (std::int32_t s = 0; s < kSymbols; ++s) {
    std::string name = std::to_string(100 + s);  // appended, not "S" + ...: GCC 12 warns falsely (-Wrestrict)
    name.append("USDT");
    names.push_back("S" + name);
  }
  MarketPanel p(names, kBars, 1'704'067'200'000LL, 3'600'000);
  for (std::int32_t s = 0; s < kSymbols; ++s) {
    const std::size_t base = static_cast<std::size_t>(s * o.stride);
    auto copy = [&](Column c, const std::vector<float>& src) {
      auto dst = p.series_mut(c, s);
      for (std::size_t t = 0; t < dst.size(); ++t) dst[t] = src[base + t];
    };
    copy(Column::open, o.open);
    copy(Column::high, o.high);
    copy(Column::low, o.low);
    copy(Column::close, o.close);
    copy(Column::volume, o.volume);
    copy(Column::trades, o.trades);
    auto q = p.series_mut(Column::quote_volume, s);
    for (std::size_t t = 0; t < q.size(); ++t) {
      const float v = o.volume[base + t], c = o.close[base + t];
      q[t] = std::isnan(c) ? 0.0f : static_cast<float>(static_cast<double>(v) * static_cast<double>(c));
    }
  }
  p.valid_ranges_recompute();
  return p;
}

void publish_bar(EventBus& bus, const MarketPanel& p, std::int32_t s, std::int32_t t) {
  if (!p.has_bar(s, t)) return;
  MarketBarClosed b;
  b.symbol = p.symbols()[static_cast<std::size_t>(s)];
  b.interval_s = static_cast<std::int32_t>(p.interval_ms() / 1000);
  b.open_time = p.time_ms(t) * kNsPerMillisecond;
  b.open = p.series(Column::open, s)[static_cast<std::size_t>(t)];
  b.high = p.series(Column::high, s)[static_cast<std::size_t>(t)];
  b.low = p.series(Column::low, s)[static_cast<std::size_t>(t)];
  b.close = p.series(Column::close, s)[static_cast<std::size_t>(t)];
  b.volume = p.series(Column::volume, s)[static_cast<std::size_t>(t)];
  bus.publish("feed", b);
}

struct Fixture {
  SimClock clock{1'704'067'200'000LL * kNsPerMillisecond};
  EventBus bus{clock};
  PolicyStore policy{std::make_unique<MemoryPolicyBackend>(), clock, &bus};
  Config config;
  MarketPanel panel = market();
  Fixture() {
    config.opp_ranker_enabled = true;
    config.opp_ranker_top_n = 5;
    config.opp_ranker_update_interval = 3600;
  }
  RankerOptions options() const {
    RankerOptions o;
    o.symbols = panel.symbols();
    return o;
  }
};

TEST(OpportunityRankerService, StreamingStateFromBarEventsRanksLikeTheBatchOverThePanel) {
  Fixture f;
  MarketOpportunityRanker ranker(f.bus, f.config, f.policy, f.options());
  ASSERT_TRUE(ranker.start());
  for (std::int32_t t = 0; t < kBars; ++t)
    for (std::int32_t s = 0; s < kSymbols; ++s) publish_bar(f.bus, f.panel, s, t);
  MarketBarClosed stranger;
  stranger.symbol = "NOTLISTEDUSDT";
  f.bus.publish("feed", stranger);
  EXPECT_EQ(ranker.bars_ignored(), 1);
  // The last interval is applied once every symbol reported it (or the next interval starts).
  const std::int32_t bar = static_cast<std::int32_t>(ranker.bars_applied()) - 1;
  ASSERT_GE(bar, kBars - 2);

  auto backends = indicator_backends();
  RankRequest req;
  req.bar = bar;
  const Ranking want = panel_rank(f.panel, req, *backends.back());
  const Ranking got = ranker.rank_all_symbols();
  ASSERT_EQ(got.eligible, want.eligible);
  EXPECT_GT(got.eligible, kSymbols / 2);
  for (std::size_t i = 0; i < want.rows.size(); ++i) {
    EXPECT_EQ(got.rows[i].symbol, want.rows[i].symbol) << i;
    EXPECT_EQ(got.rows[i].score, want.rows[i].score) << i;
    EXPECT_EQ(got.rows[i].reason, want.rows[i].reason) << i;
  }
  const SymbolScore one = ranker.score_symbol(want.rows[2].symbol);
  EXPECT_EQ(one.rank, 3);
  EXPECT_THROW(ranker.score_symbol("NOTLISTEDUSDT"), std::invalid_argument);
  EXPECT_EQ(ranker.get_top_n_opportunities().size(), 5u);
  EXPECT_EQ(ranker.get_top_n_opportunities(2).size(), 2u);
}

TEST(OpportunityRankerService, PublishesTopNOnItsIntervalTimer) {
  Fixture f;
  MarketOpportunityRanker ranker(f.bus, f.config, f.policy, f.options());
  ranker.warm_up(f.panel);
  std::vector<OpportunitiesUpdated> seen;
  auto sub = f.bus.subscribe<OpportunitiesUpdated>("test", [&](const OpportunitiesUpdated& e) { seen.push_back(e); });
  ASSERT_TRUE(ranker.start());
  f.clock.advance_by(3599 * kNsPerSecond);
  EXPECT_TRUE(seen.empty());
  f.clock.advance_by(1 * kNsPerSecond);
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(seen[0].top.size(), 5u);
  const Ranking& r = *ranker.last_ranking();
  EXPECT_EQ(seen[0].universe_size, static_cast<std::uint32_t>(r.eligible));
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(seen[0].top[i].symbol.str(), r.rows[i].symbol);
    EXPECT_DOUBLE_EQ(seen[0].top[i].score, r.rows[i].score);
    EXPECT_GT(seen[0].top[i].volume_24h, 0.0);
    if (i > 0) {
      EXPECT_GE(seen[0].top[i - 1].score, seen[0].top[i].score);
    }
  }
  f.clock.advance_by(2 * 3600 * kNsPerSecond);
  EXPECT_EQ(seen.size(), 3u);
}

TEST(OpportunityRankerService, WeightsComeFromThePolicyAndABadOneDegradesTheService) {
  Fixture f;
  MarketOpportunityRanker ranker(f.bus, f.config, f.policy, f.options());
  ranker.warm_up(f.panel);
  ASSERT_TRUE(ranker.start());
  const auto ok = f.policy.update(f.policy.version(), [](Policy& p) {
    p.extra["opp_ranker.weight.trend"] = "0";
    p.extra["opp_ranker.weight.volatility"] = "0";
    p.extra["opp_ranker.weight.liquidity"] = "0";
    p.extra["opp_ranker.weight.model"] = "0";
  }, "performance only", "test");
  ASSERT_TRUE(ok.ok());
  const Ranking r = ranker.rank_all_symbols();
  for (std::int32_t i = 0; i < r.eligible; ++i)
    EXPECT_DOUBLE_EQ(r.rows[static_cast<std::size_t>(i)].score,
                     r.rows[static_cast<std::size_t>(i)].sub[static_cast<std::size_t>(Criterion::performance)]);

  ASSERT_TRUE(f.policy.update(f.policy.version(), [](Policy& p) { p.extra["opp_ranker.weight.trend"] = "lots"; },
                              "typo", "test").ok());
  try {
    (void)ranker.rank_all_symbols();
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'opp_ranker.weight.trend' = 'lots'"), std::string::npos) << e.what();
  }
  f.clock.advance_by(3600 * kNsPerSecond);
  EXPECT_EQ(ranker.state(), ServiceState::degraded);
}

TEST(OpportunityRankerService, DisabledMeansOff) {
  Fixture f;
  f.config.opp_ranker_enabled = false;
  MarketOpportunityRanker ranker(f.bus, f.config, f.policy, f.options());
  EXPECT_EQ(ranker.mode(), SubsystemMode::off);
  EXPECT_FALSE(ranker.start());
  RankerOptions dup = f.options();
  dup.symbols.push_back(dup.symbols.front());
  EXPECT_THROW(MarketOpportunityRanker(f.bus, f.config, f.policy, dup), std::invalid_argument);
}

OpportunitiesUpdated ranking_of(const std::vector<std::string>& symbols) {
  OpportunitiesUpdated e;
  double score = 1.0;
  for (const auto& s : symbols) {
    Opportunity o;
    o.symbol = s;
    o.score = score;
    score -= 0.1;
    e.top.push_back(o);
  }
  e.universe_size = static_cast<std::uint32_t>(symbols.size());
  return e;
}

struct UniverseFixture {
  SimClock clock{0};
  EventBus bus{clock};
  PolicyStore policy{std::make_unique<MemoryPolicyBackend>(), clock, &bus};
  Config config;
  explicit UniverseFixture(SubsystemMode mode, bool dynamic = true) {
    auto& u = config.subsystems[static_cast<std::size_t>(Subsystem::universe_os)];
    u.enabled = mode != SubsystemMode::off;
    u.mode = mode;
    config.universe_dynamic = dynamic;
    EXPECT_TRUE(policy.update(policy.version(), [](Policy& p) { p.top_n_universe = 3; }, "small universe", "test").ok());
  }
};

TEST(UniverseOSService, ObserveOnlyReportsWhatItWouldFilter) {
  UniverseFixture f(SubsystemMode::observe);
  UniverseOS uos(f.bus, f.config, f.policy, {{"BUSDT"}, {}});
  ASSERT_TRUE(uos.start());
  f.bus.publish("ranker", ranking_of({"AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"}));
  const auto& d = uos.last_decision();
  EXPECT_EQ(d.universe, (std::vector<std::string>{"AUSDT", "CUSDT", "DUSDT"}));
  ASSERT_EQ(d.filtered.size(), 2u);
  EXPECT_EQ(d.filtered[0], (std::pair<std::string, std::string>{"BUSDT", "blacklisted"}));
  EXPECT_EQ(d.filtered[1].first, "EUSDT");
  EXPECT_NE(d.filtered[1].second.find("beyond top_n_universe (3)"), std::string::npos);
  EXPECT_FALSE(d.applied);
  EXPECT_TRUE(uos.tradable("EUSDT"));  // OBSERVE changes nothing
  EXPECT_TRUE(uos.tradable("BUSDT"));
}

TEST(UniverseOSService, AdvisorySuggestsWithoutBlocking) {
  UniverseFixture f(SubsystemMode::advisory);
  UniverseOS uos(f.bus, f.config, f.policy, {{}, {}});
  ASSERT_TRUE(uos.start());
  f.bus.publish("ranker", ranking_of({"AUSDT", "BUSDT", "CUSDT", "DUSDT"}));
  EXPECT_EQ(uos.last_decision().universe.size(), 3u);
  EXPECT_EQ(uos.last_decision().mode, SubsystemMode::advisory);
  EXPECT_TRUE(uos.tradable("DUSDT"));
  EXPECT_EQ(uos.decisions(), 1u);
}

TEST(UniverseOSService, EnforcedMakesTheUniverseFilterRefuseOthers) {
  UniverseFixture f(SubsystemMode::enforced);
  UniverseOS uos(f.bus, f.config, f.policy, {{"BUSDT"}, {}});
  ASSERT_TRUE(uos.start());
  EXPECT_FALSE(uos.tradable("AUSDT"));  // no universe decided yet: nothing trades
  f.bus.publish("ranker", ranking_of({"AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"}));
  EXPECT_TRUE(uos.last_decision().applied);
  EXPECT_TRUE(uos.tradable("AUSDT"));
  EXPECT_TRUE(uos.tradable("DUSDT"));
  EXPECT_FALSE(uos.tradable("BUSDT"));
  EXPECT_FALSE(uos.tradable("EUSDT"));
  // A new policy cap applies at the next ranking.
  ASSERT_TRUE(f.policy.update(f.policy.version(), [](Policy& p) { p.top_n_universe = 1; }, "defensive", "msc").ok());
  f.bus.publish("ranker", ranking_of({"DUSDT", "AUSDT"}));
  EXPECT_TRUE(uos.tradable("DUSDT"));
  EXPECT_FALSE(uos.tradable("AUSDT"));
}

TEST(UniverseOSService, StaticUniverseKeepsItsMembersInRankingOrder) {
  UniverseFixture f(SubsystemMode::enforced, /*dynamic=*/false);
  UniverseOS uos(f.bus, f.config, f.policy, {{"BUSDT"}, {"ZUSDT", "CUSDT", "BUSDT"}});
  ASSERT_TRUE(uos.start());
  f.bus.publish("ranker", ranking_of({"AUSDT", "BUSDT", "CUSDT"}));
  EXPECT_EQ(uos.last_decision().universe, (std::vector<std::string>{"CUSDT", "ZUSDT"}));
  EXPECT_FALSE(uos.tradable("AUSDT"));
}

TEST(UniverseOSService, DisabledMeansOff) {
  UniverseFixture f(SubsystemMode::off);
  UniverseOS uos(f.bus, f.config, f.policy, {});
  EXPECT_FALSE(uos.start());
  EXPECT_TRUE(uos.tradable("AUSDT"));
}

}  // namespace
}  // namespace qtos
