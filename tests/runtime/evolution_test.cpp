// Genetic search: operators keep genomes valid, the search is deterministic per seed, finds a planted momentum edge
// out of sample, and on a pure random walk its best genome's deflated Sharpe is not significant.
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/strategy/deflated_sharpe.hpp"
#include "runtime/strategy/evolution.hpp"

namespace qtos {
namespace {

using kernels::Genome;

TEST(DeflatedSharpe, NormalQuantilesInvertTheCdf) {
  for (double x : {-6.0, -3.0, -1.5, -0.3, 0.0, 0.7, 2.0, 4.5}) EXPECT_NEAR(norm_ppf(norm_cdf(x)), x, 1e-9) << x;
  EXPECT_NEAR(norm_ppf(0.975), 1.959963984540054, 1e-12);
  EXPECT_THROW(norm_ppf(0.0), std::invalid_argument);
  EXPECT_THROW(norm_ppf(1.5), std::invalid_argument);
}

TEST(DeflatedSharpe, MatchesTheWorkedExample) {
  // Bailey & Lopez de Prado (2014), section 5: annualised SR 2.5 over 1250 daily returns, skew -3, kurtosis 10,
  // 100 trials whose annualised Sharpe estimates have variance 0.5; the paper reports DSR ~ 0.90.
  const double sr = 2.5 / std::sqrt(250.0), var = 0.5 / 250.0;
  const double sr0 = expected_max_sharpe(100, var);
  EXPECT_NEAR(sr0, 0.1132, 2e-4);  // the paper's SR0 in daily units
  EXPECT_NEAR(deflated_sharpe(sr, 1250, -3, 10, 100, var), 0.90, 0.01);
  // More trials, more deflation; one trial leaves the probabilistic Sharpe against zero.
  EXPECT_LT(deflated_sharpe(sr, 1250, -3, 10, 10000, var), deflated_sharpe(sr, 1250, -3, 10, 100, var));
  EXPECT_DOUBLE_EQ(deflated_sharpe(sr, 1250, 0, 3, 1, var), probabilistic_sharpe(sr, 1250, 0, 3, 0.0));
  EXPECT_DOUBLE_EQ(probabilistic_sharpe(0.0, 1000, 0, 3, 0.0), 0.5);
}

TEST(GeneticOperators, KeepGenomesValidAndDeterministic) {
  Rng a(3), b(3);
  for (int i = 0; i < 500; ++i) {
    const Genome x = genome_random(a), y = genome_random(a);
    const Genome m = genome_mutate(x, a, 0.5, 0.5), c = genome_crossover(x, y, a);
    for (const Genome& g : {x, y, m, c}) {
      const Genome n = kernels::genome_normalize(g);
      EXPECT_EQ(std::memcmp(&n, &g, sizeof(Genome)), 0) << genome_encode(g);
    }
    // Crossover takes every block from one of the parents.
    EXPECT_TRUE(c.side == x.side || c.side == y.side);
    EXPECT_TRUE(c.max_hold == x.max_hold || c.max_hold == y.max_hold);
    const Genome x2 = genome_random(b), y2 = genome_random(b);
    EXPECT_EQ(genome_hash(x), genome_hash(x2));
    EXPECT_EQ(genome_hash(y), genome_hash(y2));
    genome_mutate(x2, b, 0.5, 0.5);
    genome_crossover(x2, y2, b);
  }
  std::vector<Genome> same(10, genome_random(a)), varied;
  for (int i = 0; i < 10; ++i) varied.push_back(genome_random(a));
  EXPECT_DOUBLE_EQ(population_diversity(same), 0.1);
  EXPECT_GT(population_diversity(varied), 0.5);
}

struct Market {
  SynthMarket m;
  StrategyFeatures f;
};

Market market(double planted, bool random_walk, std::uint64_t seed) {
  SynthOptions o;
  o.n_symbols = 8;
  o.n_bars = 3000;
  o.seed = seed;
  o.planted_momentum = planted;
  o.random_walk = random_walk;
  o.late_listing_fraction = 0.0;
  Market mk{synth_generate(o), {}};
  mk.f = strategy_features_compute(mk.m.panel.view());
  return mk;
}

EvolveOptions options(std::uint64_t seed) {
  EvolveOptions o;
  o.population = 48;
  o.generations = 8;
  o.seed = seed;
  o.train_begin = 0;
  o.train_end = 2000;
  o.test_begin = 2000;
  o.test_end = 3000;
  return o;
}

TEST(Evolution, SameSeedSameHallOfFame) {
  const Market mk = market(0.0, false, 5);
  auto cpu = detail::backtest_cpu_backend();
  std::vector<GenerationReport> reps;
  const EvolveResult a = evolve(mk.m.panel.view(), mk.f, *cpu, options(9), [&](const GenerationReport& r) { reps.push_back(r); });
  const EvolveResult b = evolve(mk.m.panel.view(), mk.f, *cpu, options(9));
  const EvolveResult c = evolve(mk.m.panel.view(), mk.f, *cpu, options(10));
  ASSERT_EQ(a.hall_of_fame.size(), 10u);
  ASSERT_EQ(reps.size(), 8u);
  for (std::size_t i = 0; i < a.hall_of_fame.size(); ++i) {
    EXPECT_EQ(a.hall_of_fame[i].hash, b.hall_of_fame[i].hash);
    EXPECT_EQ(a.hall_of_fame[i].test.sharpe, b.hall_of_fame[i].test.sharpe);
  }
  EXPECT_NE(a.hall_of_fame[0].hash, c.hall_of_fame[0].hash);
  // Elitism: the best train fitness never falls; trials grow and never exceed population x generations.
  for (std::size_t g = 1; g < reps.size(); ++g) EXPECT_GE(reps[g].best_fitness, reps[g - 1].best_fitness);
  EXPECT_GE(a.trials, 48);
  EXPECT_LE(a.trials, 48 * 8);
  // The hall of fame is ranked out of sample and holds distinct genomes.
  std::set<std::uint64_t> ids;
  for (std::size_t i = 0; i < a.hall_of_fame.size(); ++i) {
    ids.insert(a.hall_of_fame[i].hash);
    if (i > 0) { EXPECT_GE(a.hall_of_fame[i - 1].test.sharpe, a.hall_of_fame[i].test.sharpe); }
  }
  EXPECT_EQ(ids.size(), a.hall_of_fame.size());
}

TEST(Evolution, FindsAPlantedMomentumEdgeOutOfSample) {
  const Market mk = market(0.15, false, 17);
  auto cpu = detail::backtest_cpu_backend();
  const EvolveResult r = evolve(mk.m.panel.view(), mk.f, *cpu, options(1));
  const HallOfFameEntry& best = r.hall_of_fame.front();
  SCOPED_TRACE(genome_rules(best.genome));
  EXPECT_GT(best.test.trades, 20);
  EXPECT_GT(best.test.sharpe, 2.0);
  EXPECT_GT(best.test.total_return, 0.05);
  EXPECT_GT(probabilistic_sharpe(best.test.sr_bar, best.test.observations, best.test.skew, best.test.kurtosis, 0.0), 0.99);
  // It trades the pattern, not the path: on the same noise without the planted momentum (the generator draws the
  // same random numbers), the same rules lose most of their out-of-sample Sharpe.
  const Market twin = market(0.0, false, 17);
  const std::vector<Genome> one = {best.genome};
  BacktestRequest req;
  req.panel = twin.m.panel.view();
  req.features = &twin.f;
  req.genomes = one;
  req.t_begin = 2000;
  req.t_end = 3000;
  const BacktestMetrics without = backtest_metrics(cpu->run(req).genome[0], req.costs.bars_per_year);
  EXPECT_LT(without.sharpe, 0.5 * best.test.sharpe);
}

TEST(Evolution, RandomWalkBestIsNotSignificant) {
  const Market mk = market(0.0, true, 23);
  auto cpu = detail::backtest_cpu_backend();
  const EvolveResult r = evolve(mk.m.panel.view(), mk.f, *cpu, options(1));
  ASSERT_FALSE(r.hall_of_fame.empty());
  for (const auto& h : r.hall_of_fame) EXPECT_LT(h.deflated_sharpe, 0.95) << genome_rules(h.genome);
  // The search itself did find in-sample "edges": the deflation is what exposes them.
  EXPECT_GT(r.hall_of_fame.front().train.sharpe, 0.0);
}

TEST(Evolution, BadOptionsAreNamed) {
  const Market mk = market(0.0, false, 5);
  auto cpu = detail::backtest_cpu_backend();
  EvolveOptions o = options(1);
  o.test_begin = 1500;  // overlaps the train window
  try {
    evolve(mk.m.panel.view(), mk.f, *cpu, o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("test window"), std::string::npos) << e.what();
  }
  o = options(1);
  o.population = 2;
  EXPECT_THROW(evolve(mk.m.panel.view(), mk.f, *cpu, o), std::invalid_argument);
}

}  // namespace
}  // namespace qtos
