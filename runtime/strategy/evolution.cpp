#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/deflated_sharpe.hpp"

namespace qtos {

using kernels::CondKind;
using kernels::Condition;
using kernels::GeneRanges;
using kernels::Genome;

namespace {

std::int32_t pick(Rng& rng, std::int32_t n) { return static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(n))); }

/// Range of a condition's level, by kind (lo == hi: no level).
std::pair<float, float> level_range(std::int32_t kind) {
  switch (static_cast<CondKind>(kind)) {
    case CondKind::close_above_bb:
    case CondKind::close_below_bb: return {GeneRanges::bbk_lo, GeneRanges::bbk_hi};
    case CondKind::rsi_below:
    case CondKind::rsi_above: return {GeneRanges::rsi_lo, GeneRanges::rsi_hi};
    case CondKind::adx_above:
    case CondKind::adx_below: return {GeneRanges::adx_lo, GeneRanges::adx_hi};
    case CondKind::vol_high:
    case CondKind::vol_low: return {GeneRanges::vol_lo, GeneRanges::vol_hi};
    default: return {0.0f, 0.0f};
  }
}

Condition condition_random(Rng& rng) {
  Condition c;
  c.kind = 1 + pick(rng, kernels::kCondKindCount - 1);
  c.p0 = pick(rng, 6);
  c.p1 = pick(rng, 6);
  const auto [lo, hi] = level_range(c.kind);
  // RSI levels drawn where they mean something: below 50 for "below", above 50 for "above".
  if (c.kind == static_cast<std::int32_t>(CondKind::rsi_below)) c.level = static_cast<float>(rng.uniform(10, 50));
  else if (c.kind == static_cast<std::int32_t>(CondKind::rsi_above)) c.level = static_cast<float>(rng.uniform(50, 90));
  else if (c.kind == static_cast<std::int32_t>(CondKind::vol_high) || c.kind == static_cast<std::int32_t>(CondKind::vol_low))
    c.level = static_cast<float>(std::exp(rng.uniform(std::log(0.1), std::log(5.0))));
  else c.level = static_cast<float>(rng.uniform(lo, hi));
  return kernels::condition_normalize(c);
}

Condition condition_mutate(Condition c, Rng& rng, double rate) {
  if (rng.uniform() < rate) c.p0 = pick(rng, 6);
  if (rng.uniform() < rate) c.p1 = pick(rng, 6);
  const auto [lo, hi] = level_range(c.kind);
  if (hi > lo && rng.uniform() < rate) c.level += static_cast<float>(0.1 * (hi - lo) * rng.normal());
  return kernels::condition_normalize(c);
}

float optional_random(Rng& rng, double p_on, float lo, float hi) {
  return rng.uniform() < p_on ? static_cast<float>(rng.uniform(lo, hi)) : 0.0f;
}

float optional_mutate(float v, Rng& rng, double rate, float lo, float hi) {
  if (v > 0 && rng.uniform() < rate) v += static_cast<float>(0.1 * (hi - lo) * rng.normal());
  return v > 0 ? std::clamp(v, lo, hi) : 0.0f;
}

}  // namespace

Genome genome_random(Rng& rng) {
  Genome g;
  g.entry[0] = condition_random(rng);
  const double u = rng.uniform();
  g.op = static_cast<std::int32_t>(u < 0.4 ? kernels::EntryOp::single : (u < 0.8 ? kernels::EntryOp::and_op : kernels::EntryOp::or_op));
  g.entry[1] = condition_random(rng);
  g.exit_rule = rng.uniform() < 0.3 ? Condition{} : condition_random(rng);
  g.side = pick(rng, 3);
  g.stop_atr = optional_random(rng, 0.5, GeneRanges::stop_lo, GeneRanges::stop_hi);
  g.take_atr = optional_random(rng, 0.4, GeneRanges::take_lo, GeneRanges::take_hi);
  g.trail_atr = optional_random(rng, 0.3, GeneRanges::trail_lo, GeneRanges::trail_hi);
  g.max_hold = rng.uniform() < 0.4 ? 5 + pick(rng, 196) : 0;
  g.size = static_cast<float>(rng.uniform(0.2, 1.0));
  return kernels::genome_normalize(g);
}

Genome genome_mutate(const Genome& in, Rng& rng, double rate, double structure_rate) {
  Genome g = in;
  g.entry[0] = condition_mutate(g.entry[0], rng, rate);
  if (g.op != static_cast<std::int32_t>(kernels::EntryOp::single)) g.entry[1] = condition_mutate(g.entry[1], rng, rate);
  if (g.exit_rule.kind != 0) g.exit_rule = condition_mutate(g.exit_rule, rng, rate);
  g.stop_atr = optional_mutate(g.stop_atr, rng, rate, GeneRanges::stop_lo, GeneRanges::stop_hi);
  g.take_atr = optional_mutate(g.take_atr, rng, rate, GeneRanges::take_lo, GeneRanges::take_hi);
  g.trail_atr = optional_mutate(g.trail_atr, rng, rate, GeneRanges::trail_lo, GeneRanges::trail_hi);
  if (g.max_hold > 0 && rng.uniform() < rate) g.max_hold = std::max(1, static_cast<std::int32_t>(g.max_hold * std::exp(0.3 * rng.normal())));
  if (rng.uniform() < rate) g.size = static_cast<float>(g.size + 0.1 * rng.normal());
  if (rng.uniform() < structure_rate) {
    switch (pick(rng, 8)) {
      case 0: g.entry[0] = condition_random(rng); break;
      case 1: g.entry[1] = condition_random(rng); if (g.op == 0) g.op = 1; break;
      case 2: g.op = pick(rng, 3); if (g.entry[1].kind == 0) g.entry[1] = condition_random(rng); break;
      case 3: g.exit_rule = g.exit_rule.kind == 0 ? condition_random(rng) : Condition{}; break;
      case 4: g.side = pick(rng, 3); break;
      case 5: g.stop_atr = g.stop_atr > 0 ? 0.0f : static_cast<float>(rng.uniform(GeneRanges::stop_lo, GeneRanges::stop_hi)); break;
      case 6: g.take_atr = g.take_atr > 0 ? 0.0f : static_cast<float>(rng.uniform(GeneRanges::take_lo, GeneRanges::take_hi)); break;
      default: g.max_hold = g.max_hold > 0 ? 0 : 5 + pick(rng, 196); break;
    }
  }
  return kernels::genome_normalize(g);
}

Genome genome_crossover(const Genome& a, const Genome& b, Rng& rng) {
  auto from = [&](const Genome& x, const Genome& y) -> const Genome& { return rng.uniform() < 0.5 ? x : y; };
  Genome c = a;
  c.entry[0] = from(a, b).entry[0];
  const Genome& second = from(a, b);  // the second term travels with its operator
  c.entry[1] = second.entry[1];
  c.op = second.op;
  c.exit_rule = from(a, b).exit_rule;
  c.side = from(a, b).side;
  c.stop_atr = from(a, b).stop_atr;
  c.take_atr = from(a, b).take_atr;
  c.trail_atr = from(a, b).trail_atr;
  c.max_hold = from(a, b).max_hold;
  c.size = from(a, b).size;
  return kernels::genome_normalize(c);
}

double population_diversity(const std::vector<Genome>& pop) {
  if (pop.empty()) return 0.0;
  std::set<std::tuple<std::int32_t, std::int32_t, std::int32_t, std::int32_t, std::int32_t>> sigs;
  for (const Genome& g : pop) sigs.insert({g.entry[0].kind, g.op, g.entry[1].kind, g.exit_rule.kind, g.side});
  return static_cast<double>(sigs.size()) / static_cast<double>(pop.size());
}

double evolve_fitness(const BacktestMetrics& m, double min_trades) {
  if (m.trades < min_trades || !std::isfinite(m.sharpe)) return -100.0 + m.trades;
  return m.sharpe;
}

namespace {

struct Evaluated {
  Genome genome;
  std::int32_t generation = 0;
  BacktestMetrics train;
  double fitness = 0;
};

void options_check(const kernels::PanelView& panel, const EvolveOptions& o) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("evolve: " + m); };
  if (o.population < 4 || o.population > 1'000'000) bad("--population " + std::to_string(o.population) + ": expected 4 to 1000000");
  if (o.generations < 1 || o.generations > 100'000) bad("--generations " + std::to_string(o.generations) + ": expected 1 to 100000");
  if (o.tournament < 1 || o.tournament > o.population) bad("tournament size " + std::to_string(o.tournament) + ": expected 1 to the population");
  if (o.elite < 0 || o.elite >= o.population) bad("elite " + std::to_string(o.elite) + ": expected 0 to population - 1");
  if (o.hall_of_fame < 1) bad("hall of fame size must be >= 1");
  if (o.train_begin < 0 || o.train_end <= o.train_begin + 1)
    bad("train window [" + std::to_string(o.train_begin) + ", " + std::to_string(o.train_end) + ") must hold at least 2 bars");
  if (o.test_begin < o.train_end || o.test_end <= o.test_begin + 1 || o.test_end > panel.n_bars)
    bad("test window [" + std::to_string(o.test_begin) + ", " + std::to_string(o.test_end) +
        ") must hold at least 2 bars, start at or after the train window's end (" + std::to_string(o.train_end) +
        ") and end within the data's " + std::to_string(panel.n_bars) + " bars");
}

}  // namespace

EvolveResult evolve(const kernels::PanelView& panel, const StrategyFeatures& features, const BacktestBackend& backend,
                    const EvolveOptions& opt, const std::function<void(const GenerationReport&)>& on_generation) {
  options_check(panel, opt);
  Rng rng(opt.seed, 0x5eed);
  EvolveResult result;
  std::map<std::uint64_t, Evaluated> tried;  // ordered: iteration order is part of the result

  BacktestRequest req;
  req.panel = panel;
  req.features = &features;
  req.costs = opt.costs;
  req.t_begin = opt.train_begin;
  req.t_end = opt.train_end;

  const auto P = static_cast<std::size_t>(opt.population);
  // De-duplicate by hash: a genome equal to one already in `into` is mutated again, then replaced by a random one.
  auto push_unique = [&](std::vector<Genome>& into, std::set<std::uint64_t>& hashes, Genome g) {
    for (int tries = 0; hashes.count(genome_hash(g)) != 0; ++tries)
      g = tries < 8 ? genome_mutate(g, rng, 0.5, 1.0) : genome_random(rng);
    hashes.insert(genome_hash(g));
    into.push_back(g);
  };
  std::vector<Genome> pop;
  {
    std::set<std::uint64_t> hashes;
    while (pop.size() < P) push_unique(pop, hashes, genome_random(rng));
  }

  std::vector<double> fit(P);
  for (std::int32_t gen = 0; gen < opt.generations; ++gen) {
    // Evaluate the genomes never seen before (elites and re-discoveries come from the cache).
    std::vector<Genome> fresh;
    for (const Genome& g : pop)
      if (tried.count(genome_hash(g)) == 0) fresh.push_back(g);
    req.genomes = fresh;
    const auto t0 = std::chrono::steady_clock::now();
    const BacktestResult br = backend.run(req);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (std::size_t i = 0; i < fresh.size(); ++i) {
      Evaluated e{fresh[i], gen, backtest_metrics(br.genome[i], opt.costs.bars_per_year), 0.0};
      e.fitness = evolve_fitness(e.train, opt.min_trades);
      tried.emplace(genome_hash(fresh[i]), e);
    }
    for (std::size_t i = 0; i < P; ++i) fit[i] = tried.at(genome_hash(pop[i])).fitness;

    GenerationReport rep;
    rep.generation = gen;
    std::vector<double> sorted = fit;
    std::sort(sorted.begin(), sorted.end());
    rep.best_fitness = sorted.back();
    rep.median_fitness = P % 2 ? sorted[P / 2] : 0.5 * (sorted[P / 2 - 1] + sorted[P / 2]);
    rep.diversity = population_diversity(pop);
    rep.trials = static_cast<std::int64_t>(tried.size());
    rep.bar_steps = static_cast<double>(fresh.size()) * panel.n_symbols * (opt.train_end - opt.train_begin);
    rep.seconds = secs;
    result.bar_steps += rep.bar_steps;
    result.seconds += secs;
    result.generations.push_back(rep);
    if (on_generation) on_generation(rep);
    if (gen + 1 == opt.generations) break;

    // Next generation: elites, then tournament-selected parents, crossover and mutation.
    std::vector<std::size_t> order(P);
    for (std::size_t i = 0; i < P; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return fit[a] > fit[b]; });
    auto tournament = [&]() -> const Genome& {
      std::size_t best = static_cast<std::size_t>(pick(rng, opt.population));
      for (std::int32_t k = 1; k < opt.tournament; ++k) {
        const auto c = static_cast<std::size_t>(pick(rng, opt.population));
        if (fit[c] > fit[best]) best = c;
      }
      return pop[best];
    };
    std::vector<Genome> next;
    std::set<std::uint64_t> next_hashes;
    for (std::int32_t e = 0; e < opt.elite; ++e) push_unique(next, next_hashes, pop[order[static_cast<std::size_t>(e)]]);
    while (next.size() < P) {
      const Genome& a = tournament();
      Genome child = rng.uniform() < opt.crossover_rate ? genome_crossover(a, tournament(), rng) : a;
      push_unique(next, next_hashes, genome_mutate(child, rng, opt.mutation_rate, opt.structure_rate));
    }
    pop = std::move(next);
  }

  // Deflation: the variance of the per-bar train Sharpe over every distinct genome that traded.
  result.trials = static_cast<std::int64_t>(tried.size());
  {
    double n = 0, s = 0, s2 = 0;
    for (const auto& [h, e] : tried)
      if (e.train.trades > 0) { n += 1; s += e.train.sr_bar; s2 += e.train.sr_bar * e.train.sr_bar; }
    result.sr_variance = n > 1 ? std::max(0.0, (s2 - s * s / n) / (n - 1)) : 0.0;
  }

  // Hall of fame: best train fitness (ties by hash), then judged out of sample only.
  std::vector<const Evaluated*> all;
  for (const auto& [h, e] : tried) all.push_back(&e);
  std::stable_sort(all.begin(), all.end(), [](const Evaluated* a, const Evaluated* b) { return a->fitness > b->fitness; });
  all.resize(std::min(all.size(), static_cast<std::size_t>(opt.hall_of_fame)));
  std::vector<Genome> hof;
  for (const Evaluated* e : all) hof.push_back(e->genome);
  req.genomes = hof;
  req.t_begin = opt.test_begin;
  req.t_end = opt.test_end;
  const BacktestResult test = backend.run(req);
  for (std::size_t i = 0; i < hof.size(); ++i) {
    HallOfFameEntry h;
    h.genome = hof[i];
    h.hash = genome_hash(hof[i]);
    h.generation = all[i]->generation;
    h.fitness = all[i]->fitness;
    h.train = all[i]->train;
    h.test = backtest_metrics(test.genome[i], opt.costs.bars_per_year);
    h.deflated_sharpe = h.test.trades > 0 ? deflated_sharpe(h.test.sr_bar, h.test.observations, h.test.skew, h.test.kurtosis,
                                                            static_cast<double>(result.trials), result.sr_variance)
                                          : 0.0;
    result.hall_of_fame.push_back(h);
  }
  std::stable_sort(result.hall_of_fame.begin(), result.hall_of_fame.end(),
                   [](const HallOfFameEntry& a, const HallOfFameEntry& b) { return a.test.sharpe > b.test.sharpe; });
  return result;
}

}  // namespace qtos
