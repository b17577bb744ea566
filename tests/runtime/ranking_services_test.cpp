// MarketOpportunityRanker and UniverseOS on a simulated clock and a real bus: bars in, OpportunitiesUpdated out,
// the bar's quote volume (or its volume x close estimate), policy weights, modes, UniverseSuggested, and the
// executor's universe filter.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/data/bar_event.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/ranking/panel_ranking.hpp"
#include "runtime/services/opportunity_ranker.hpp"
#include "runtime/services/universe_os.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace ranking_services_test {

constexpr std::int32_t kSymbols = 24;
constexpr std::int32_t kBars = 260;

/// A synthetic hourly market (late listings, a gap, a delisting) whose quote volume deliberately differs from
/// volume x close, by a factor that varies with the symbol (0.25 .. 2.55), so a ranker that estimated dollar volume
/// from base volume would rank differently from the batch over the panel. `quote_factor0` scales symbol 0 again.
MarketPanel market(double quote_factor0 = 1.0) {
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
    const double factor = (0.25 + 0.1 * s) * (s == 0 ? quote_factor0 : 1.0);
    auto q = p.series_mut(Column::quote_volume, s);
    for (std::size_t t = 0; t < q.size(); ++t) {
      const float v = o.volume[base + t], c = o.close[base + t];
      q[t] = std::isnan(c) ? 0.0f : static_cast<float>(static_cast<double>(v) * static_cast<double>(c) * factor);
    }
  }
  p.valid_ranges_recompute();
  return p;
}

/// Publishes bar t of symbol s as the panel-to-bus conversion does (quote volume and trades included);
/// `strip_quote_volume` imitates a feed that knows base volume only.
void publish_bar(EventBus& bus, const MarketPanel& p, std::int32_t s, std::int32_t t, bool strip_quote_volume = false) {
  auto b = market_bar_from_panel(p, s, t);
  if (!b) return;
  if (strip_quote_volume) {
    b->quote_volume = kUnknownQuoteVolume;
    b->trades = kUnknownTrades;
  }
  bus.publish("feed", *b);
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
  EXPECT_EQ(ranker.bars_quote_volume_estimated(), 0);  // every bar carried its quote volume
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

TEST(PanelBarEvent, CarriesQuoteVolumeAndTrades) {
  const MarketPanel p = market();
  const std::int32_t s = 3, t = p.last_bar(3);
  const auto b = market_bar_from_panel(p, s, t);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->symbol.str(), p.symbols()[3]);
  EXPECT_EQ(b->interval_s, 3600);
  EXPECT_EQ(b->open_time, p.time_ms(t) * kNsPerMillisecond);
  EXPECT_EQ(b->close, p.series(Column::close, s)[static_cast<std::size_t>(t)]);
  EXPECT_TRUE(b->quote_volume_known());
  EXPECT_EQ(b->quote_volume, p.series(Column::quote_volume, s)[static_cast<std::size_t>(t)]);
  EXPECT_NE(b->quote_volume, b->volume * b->close);
  EXPECT_EQ(b->trades, std::llround(p.series(Column::trades, s)[static_cast<std::size_t>(t)]));
  for (std::int32_t u = 0; u < kBars; ++u)  // no event for a bar the symbol does not have
    EXPECT_EQ(market_bar_from_panel(p, 0, u).has_value(), p.has_bar(0, u)) << u;
  EXPECT_THROW(market_bar_from_panel(p, kSymbols, 0), std::invalid_argument);
  EXPECT_THROW(market_bar_from_panel(p, 0, kBars), std::invalid_argument);
}

// The same bars reach two buses: one carries the exchange's quote volume, the other comes from a feed that knows
// base volume only (quote volume NaN). Symbol 0's real quote volume is 1/4000 of volume x close, so a dollar-volume
// floor between the two values filters it only where the event's quote volume is used, and its liquidity sub-score
// is lower there.
TEST(OpportunityRankerService, DollarVolumeIsTheBarsQuoteVolumeFallingBackToVolumeTimesClose) {
  Fixture f;
  f.panel = market(/*quote_factor0=*/1e-3);
  const std::string sym0 = f.panel.symbols()[0];
  EventBus feed_without_qv(f.clock);
  PolicyStore policy2{std::make_unique<MemoryPolicyBackend>(), f.clock, &feed_without_qv};

  RankerOptions floored = f.options();
  MarketOpportunityRanker real(f.bus, f.config, f.policy, f.options());
  MarketOpportunityRanker est(feed_without_qv, f.config, policy2, f.options());
  ASSERT_TRUE(real.start());
  ASSERT_TRUE(est.start());
  for (std::int32_t t = 0; t < kBars; ++t)
    for (std::int32_t s = 0; s < kSymbols; ++s) {
      publish_bar(f.bus, f.panel, s, t);
      publish_bar(feed_without_qv, f.panel, s, t, /*strip_quote_volume=*/true);
    }
  EXPECT_EQ(real.bars_quote_volume_estimated(), 0);
  EXPECT_GT(est.bars_quote_volume_estimated(), static_cast<std::int64_t>(kSymbols) * (kBars / 2));

  const SymbolScore with_qv = real.score_symbol(sym0);
  const SymbolScore with_est = est.score_symbol(sym0);
  ASSERT_TRUE(with_qv.eligible()) << with_qv.reason_text;
  ASSERT_TRUE(with_est.eligible()) << with_est.reason_text;
  const double dv_real = with_qv.features.get(kernels::Feature::dollar_volume);
  const double dv_est = with_est.features.get(kernels::Feature::dollar_volume);
  // Exactly the batch ranking over the panel's quote-volume column.
  auto backends = indicator_backends();
  RankRequest req;
  req.bar = static_cast<std::int32_t>(real.bars_applied()) - 1;
  const Ranking want = panel_rank(f.panel, req, *backends.back());
  EXPECT_EQ(dv_real, want.find(sym0)->features.get(kernels::Feature::dollar_volume));
  EXPECT_EQ(with_qv.score, want.find(sym0)->score);
  EXPECT_NEAR(dv_real / dv_est, 0.25e-3, 0.25e-3 * 1e-4);  // the panel's quote/(volume x close) factor of symbol 0
  const auto liq = static_cast<std::size_t>(Criterion::liquidity);
  EXPECT_LT(with_qv.sub[liq], with_est.sub[liq]);
  EXPECT_NE(with_qv.score, with_est.score);

  // A floor between the two: filtered where the quote volume is used, ranked where it was estimated.
  floored.filters.min_dollar_volume = std::sqrt(dv_real * dv_est);
  MarketOpportunityRanker real_floor(f.bus, f.config, f.policy, floored);
  MarketOpportunityRanker est_floor(feed_without_qv, f.config, policy2, floored);
  ASSERT_TRUE(real_floor.start());
  ASSERT_TRUE(est_floor.start());
  for (std::int32_t t = 0; t < kBars; ++t)
    for (std::int32_t s = 0; s < kSymbols; ++s) {
      publish_bar(f.bus, f.panel, s, t);
      publish_bar(feed_without_qv, f.panel, s, t, /*strip_quote_volume=*/true);
    }
  const SymbolScore filtered = real_floor.score_symbol(sym0);
  EXPECT_EQ(filtered.reason, FilterReason::low_dollar_volume) << filtered.reason_text;
  EXPECT_TRUE(est_floor.score_symbol(sym0).eligible());
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

/// Every event the bus delivers after construction, except the service's own lifecycle and health reports.
struct BusTap {
  std::vector<AnyEvent> events;
  Subscription sub;
  explicit BusTap(EventBus& bus)
      : sub(bus.subscribe_topics("tap", "#", [this](const EventRef& e) {
          if (e.type() != EventType::service_state_changed && e.type() != EventType::health_status_changed)
            events.push_back(e.to_any());
        })) {}
  std::vector<UniverseSuggested> suggestions() const {
    std::vector<UniverseSuggested> out;
    for (const auto& e : events)
      if (const auto* u = std::get_if<UniverseSuggested>(&e)) out.push_back(*u);
    return out;
  }
};

TEST(UniverseOSService, ObserveOnlyReportsWhatItWouldFilter) {
  UniverseFixture f(SubsystemMode::observe);
  UniverseOS uos(f.bus, f.config, f.policy, {{"BUSDT"}, {}});
  ASSERT_TRUE(uos.start());
  BusTap tap(f.bus);
  f.bus.publish("ranker", ranking_of({"AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"}));
  ASSERT_EQ(tap.events.size(), 1u);  // the ranking itself: OBSERVE publishes nothing
  EXPECT_TRUE(tap.suggestions().empty());
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

TEST(UniverseOSService, AdvisoryPublishesTheSuggestedUniverse) {
  UniverseFixture f(SubsystemMode::advisory);
  UniverseOS uos(f.bus, f.config, f.policy, {{"BUSDT"}, {}});
  ASSERT_TRUE(uos.start());
  BusTap tap(f.bus);
  f.bus.publish("ranker", ranking_of({"AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"}));
  ASSERT_EQ(tap.events.size(), 2u);  // the ranking, then (re-entrantly, right after it) the suggestion
  EXPECT_EQ(event_type(tap.events[0]), EventType::opportunities_updated);
  const auto suggested = tap.suggestions();
  ASSERT_EQ(suggested.size(), 1u);
  const UniverseSuggested& u = suggested[0];
  EXPECT_EQ(u.header.source.str(), "universe-os");
  EXPECT_GT(u.header.id, event_header(tap.events[0]).id);
  EXPECT_EQ(u.universe, (std::vector<Symbol>{"AUSDT", "CUSDT", "DUSDT"}));
  ASSERT_EQ(u.filtered.size(), 2u);
  EXPECT_EQ(u.filtered[0], (UniverseExclusion{"BUSDT", "blacklisted"}));
  EXPECT_EQ(u.filtered[1].symbol.str(), "EUSDT");
  EXPECT_EQ(u.filtered[1].reason, "beyond top_n_universe (3)");
  EXPECT_EQ(u.policy_version, f.policy.version());
  EXPECT_EQ(u.policy_version, uos.last_decision().policy_version);
  EXPECT_FALSE(uos.last_decision().applied);
  // A suggestion only: every symbol stays tradable, the blacklisted and the capped ones included.
  EXPECT_TRUE(uos.tradable("BUSDT"));
  EXPECT_TRUE(uos.tradable("EUSDT"));
  // One suggestion per ranking.
  f.bus.publish("ranker", ranking_of({"EUSDT"}));
  ASSERT_EQ(tap.suggestions().size(), 2u);
  EXPECT_EQ(tap.suggestions()[1].universe, (std::vector<Symbol>{"EUSDT"}));
  EXPECT_TRUE(tap.suggestions()[1].filtered.empty());
}

TEST(UniverseOSService, EnforcedInstallsWithoutPublishingASuggestion) {
  UniverseFixture f(SubsystemMode::enforced);
  UniverseOS uos(f.bus, f.config, f.policy, {{"BUSDT"}, {}});
  ASSERT_TRUE(uos.start());
  BusTap tap(f.bus);
  f.bus.publish("ranker", ranking_of({"AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"}));
  EXPECT_EQ(tap.events.size(), 1u);
  EXPECT_TRUE(tap.suggestions().empty());
  EXPECT_TRUE(uos.last_decision().applied);
  EXPECT_FALSE(uos.tradable("EUSDT"));
}

TEST(UniverseOSService, StaticUniverseSymbolsMustFitTheEvent) {
  UniverseFixture f(SubsystemMode::advisory, /*dynamic=*/false);
  try {
    UniverseOS uos(f.bus, f.config, f.policy, {{}, {"AUSDT", "AVERYLONGSYMBOLNAMEUSDT"}});
    FAIL() << "accepted a 23-character symbol";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("AVERYLONGSYMBOLNAMEUSDT"), std::string::npos) << e.what();
  }
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

}  // namespace ranking_services_test
}  // namespace qtos
