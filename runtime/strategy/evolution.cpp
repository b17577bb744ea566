#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
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

const char* evolve_objective_name(EvolveObjective o) { return o == EvolveObjective::pareto ? "pareto" : "sharpe"; }

EvolveObjective evolve_objective_parse(const std::string& text, const std::string& what) {
  if (text == "sharpe") return EvolveObjective::sharpe;
  if (text == "pareto") return EvolveObjective::pareto;
  throw std::invalid_argument(what + " '" + text + "': expected sharpe or pareto");
}

std::string genome_id_of_hash(std::uint64_t hash) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash));
  return buf;
}

std::vector<std::int32_t> pareto_fronts(const std::vector<ObjectivePoint>& pts) {
  // Deb's fast non-dominated sort: O(N^2) comparisons, fronts peeled one after another.
  const std::size_t n = pts.size();
  auto dominates = [&](std::size_t i, std::size_t j) {
    return pts[i].a >= pts[j].a && pts[i].b >= pts[j].b && (pts[i].a > pts[j].a || pts[i].b > pts[j].b);
  };
  std::vector<std::vector<std::size_t>> dominated(n);
  std::vector<std::int32_t> count(n, 0), front(n, -1);
  std::vector<std::size_t> current;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      if (i == j) continue;
      if (dominates(i, j)) dominated[i].push_back(j);
      else if (dominates(j, i)) ++count[i];
    }
    if (count[i] == 0) current.push_back(i);
  }
  for (std::int32_t f = 0; !current.empty(); ++f) {
    std::vector<std::size_t> next;
    for (std::size_t i : current) {
      front[i] = f;
      for (std::size_t j : dominated[i])
        if (--count[j] == 0) next.push_back(j);
    }
    current = std::move(next);
  }
  return front;
}

std::vector<double> crowding_distance(const std::vector<ObjectivePoint>& pts, const std::vector<std::int32_t>& front) {
  if (front.size() != pts.size()) throw std::invalid_argument("crowding_distance: one front index per point expected");
  const std::size_t n = pts.size();
  std::vector<double> d(n, 0.0);
  std::map<std::int32_t, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < n; ++i) members[front[i]].push_back(i);
  const double inf = std::numeric_limits<double>::infinity();
  for (auto& [f, idx] : members) {
    for (double ObjectivePoint::*obj : {&ObjectivePoint::a, &ObjectivePoint::b}) {
      std::stable_sort(idx.begin(), idx.end(), [&](std::size_t x, std::size_t y) { return pts[x].*obj < pts[y].*obj; });
      const double lo = pts[idx.front()].*obj, hi = pts[idx.back()].*obj;
      d[idx.front()] = inf;
      d[idx.back()] = inf;
      if (hi > lo)
        for (std::size_t k = 1; k + 1 < idx.size(); ++k) d[idx[k]] += (pts[idx[k + 1]].*obj - pts[idx[k - 1]].*obj) / (hi - lo);
    }
  }
  return d;
}

namespace {

struct Evaluated {
  Genome genome;
  std::int32_t generation = 0;
  BacktestMetrics train;
  double fitness = 0;
  std::vector<std::uint64_t> parents;
};

/// The two objectives of pareto selection; a genome below min_trades is pushed behind every trading one.
ObjectivePoint objective_point(const Evaluated& e, double min_trades) {
  if (e.train.trades < min_trades || !std::isfinite(e.train.total_return)) return {-1e9 + e.train.trades, -1e9};
  return {e.train.total_return, -e.train.max_drawdown};
}

void options_check(const kernels::PanelView& panel, const EvolveOptions& o) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("evolve: " + m); };
  if (o.population < 4 || o.population > 1'000'000) bad("--population " + std::to_string(o.population) + ": expected 4 to 1000000");
  if (o.generations < 1 || o.generations > 100'000) bad("--generations " + std::to_string(o.generations) + ": expected 1 to 100000");
  if (o.tournament < 1 || o.tournament > o.population) bad("tournament size " + std::to_string(o.tournament) + ": expected 1 to the population");
  if (o.elite < 0 || o.elite >= o.population) bad("elite " + std::to_string(o.elite) + ": expected 0 to population - 1");
  if (o.hall_of_fame < 1) bad("hall of fame size must be >= 1");
  if (!(o.time_budget_seconds >= 0)) bad("time budget must be >= 0 seconds");
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
  const auto started = std::chrono::steady_clock::now();
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
  using Parents = std::vector<std::uint64_t>;
  // De-duplicate by hash: a genome equal to one already in `into` is mutated again (same parents), then replaced by
  // a random one (no parents).
  auto push_unique = [&](std::vector<Genome>& into, std::vector<Parents>& into_parents, std::set<std::uint64_t>& hashes, Genome g,
                         Parents parents) {
    for (int tries = 0; hashes.count(genome_hash(g)) != 0; ++tries) {
      if (tries < 8) {
        g = genome_mutate(g, rng, 0.5, 1.0);
      } else {
        g = genome_random(rng);
        parents.clear();
      }
    }
    hashes.insert(genome_hash(g));
    into.push_back(g);
    into_parents.push_back(std::move(parents));
  };
  std::vector<Genome> pop;
  std::vector<Parents> pop_parents;  // lineage of each population member when it was made
  {
    std::set<std::uint64_t> hashes;
    while (pop.size() < P) push_unique(pop, pop_parents, hashes, genome_random(rng), {});
  }

  std::vector<double> fit(P);
  for (std::int32_t gen = 0; gen < opt.generations; ++gen) {
    // Evaluate the genomes never seen before (elites and re-discoveries come from the cache and keep their lineage).
    std::vector<Genome> fresh;
    std::vector<const Parents*> fresh_parents;
    for (std::size_t i = 0; i < P; ++i)
      if (tried.count(genome_hash(pop[i])) == 0) {
        fresh.push_back(pop[i]);
        fresh_parents.push_back(&pop_parents[i]);
      }
    req.genomes = fresh;
    const auto t0 = std::chrono::steady_clock::now();
    const BacktestResult br = backend.run(req);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (std::size_t i = 0; i < fresh.size(); ++i) {
      Evaluated e{fresh[i], gen, backtest_metrics(br.genome[i], opt.costs.bars_per_year), 0.0, *fresh_parents[i]};
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
    result.generations_completed = gen + 1;
    if (on_generation) on_generation(rep);
    if (gen + 1 == opt.generations) break;
    if (opt.stop.stop_requested()) {  // the safe point: every generation so far is complete and cached
      result.partial = true;
      break;
    }
    if (opt.time_budget_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() >= opt.time_budget_seconds)
      break;

    // Selection order: train fitness, or (pareto) front first, then crowding distance.
    std::vector<std::int32_t> front(P, 0);
    std::vector<double> crowd(P, 0.0);
    if (opt.objective == EvolveObjective::pareto) {
      std::vector<ObjectivePoint> pts(P);
      for (std::size_t i = 0; i < P; ++i) pts[i] = objective_point(tried.at(genome_hash(pop[i])), opt.min_trades);
      front = pareto_fronts(pts);
      crowd = crowding_distance(pts, front);
    }
    auto better = [&](std::size_t a, std::size_t b) {
      if (opt.objective == EvolveObjective::pareto) return front[a] != front[b] ? front[a] < front[b] : crowd[a] > crowd[b];
      return fit[a] > fit[b];
    };

    // Next generation: elites, then tournament-selected parents, crossover and mutation.
    std::vector<std::size_t> order(P);
    for (std::size_t i = 0; i < P; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), better);
    auto tournament = [&]() -> std::size_t {
      std::size_t best = static_cast<std::size_t>(pick(rng, opt.population));
      for (std::int32_t k = 1; k < opt.tournament; ++k) {
        const auto c = static_cast<std::size_t>(pick(rng, opt.population));
        if (better(c, best)) best = c;
      }
      return best;
    };
    std::vector<Genome> next;
    std::vector<Parents> next_parents;
    std::set<std::uint64_t> next_hashes;
    for (std::int32_t e = 0; e < opt.elite; ++e) {
      const std::size_t i = order[static_cast<std::size_t>(e)];
      push_unique(next, next_parents, next_hashes, pop[i], pop_parents[i]);
    }
    while (next.size() < P) {
      const std::size_t a = tournament();
      Parents parents{genome_hash(pop[a])};
      Genome child = pop[a];
      if (rng.uniform() < opt.crossover_rate) {
        const std::size_t b = tournament();
        child = genome_crossover(pop[a], pop[b], rng);
        if (genome_hash(pop[b]) != parents[0]) parents.push_back(genome_hash(pop[b]));
      }
      push_unique(next, next_parents, next_hashes, genome_mutate(child, rng, opt.mutation_rate, opt.structure_rate), std::move(parents));
    }
    pop = std::move(next);
    pop_parents = std::move(next_parents);
  }

  // Deflation: the variance of the per-bar train Sharpe over every distinct genome that traded.
  result.trials = static_cast<std::int64_t>(tried.size());
  {
    double n = 0, s = 0, s2 = 0;
    for (const auto& [h, e] : tried)
      if (e.train.trades > 0) { n += 1; s += e.train.sr_bar; s2 += e.train.sr_bar * e.train.sr_bar; }
    result.sr_variance = n > 1 ? std::max(0.0, (s2 - s * s / n) / (n - 1)) : 0.0;
    result.sr_mean = n > 0 ? s / n : 0.0;
    result.sr_count = static_cast<std::int64_t>(n);
  }

  // Hall of fame: best train fitness (ties by hash), or (pareto) the first front of every trial, most spread first;
  // then judged out of sample only.
  std::vector<const Evaluated*> all;
  for (const auto& [h, e] : tried) all.push_back(&e);
  if (opt.objective == EvolveObjective::pareto) {
    std::vector<ObjectivePoint> pts;
    for (const Evaluated* e : all) pts.push_back(objective_point(*e, opt.min_trades));
    const auto front = pareto_fronts(pts);
    const auto crowd = crowding_distance(pts, front);
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < all.size(); ++i)
      if (front[i] == 0) idx.push_back(i);
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return crowd[a] > crowd[b]; });
    std::vector<const Evaluated*> first;
    for (std::size_t i : idx) first.push_back(all[i]);
    all = std::move(first);
  } else {
    std::stable_sort(all.begin(), all.end(), [](const Evaluated* a, const Evaluated* b) { return a->fitness > b->fitness; });
  }
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
    h.parents = all[i]->parents;
    h.test_accum = test.genome[i];
    result.hall_of_fame.push_back(h);
  }
  std::stable_sort(result.hall_of_fame.begin(), result.hall_of_fame.end(),
                   [](const HallOfFameEntry& a, const HallOfFameEntry& b) { return a.test.sharpe > b.test.sharpe; });
  return result;
}

std::vector<FoldWindow> walk_forward_windows(std::int32_t n_bars, const WalkForwardOptions& o) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("evolve: " + m); };
  if (o.folds < 1 || o.folds > 100) bad("--folds " + std::to_string(o.folds) + ": expected 1 to 100");
  if (o.purge < 0) bad("--purge " + std::to_string(o.purge) + ": expected >= 0 bars");
  const std::int32_t end = o.end < 0 ? n_bars : o.end;
  if (o.begin < 0 || end > n_bars || end <= o.begin)
    bad("walk-forward window [" + std::to_string(o.begin) + ", " + std::to_string(end) + ") must lie within the data's " +
        std::to_string(n_bars) + " bars");
  const std::int32_t n = end - o.begin, block = n / (o.folds + 1);
  auto block_begin = [&](std::int32_t j) { return o.begin + j * block; };
  std::vector<FoldWindow> out;
  for (std::int32_t k = 1; k <= o.folds; ++k) {
    FoldWindow w;
    w.test_begin = block_begin(k);
    w.test_end = k == o.folds ? end : block_begin(k + 1);
    w.train_begin = o.rolling ? block_begin(k - 1) : o.begin;
    w.train_end = w.test_begin - o.purge;
    if (w.train_end - w.train_begin < o.min_train_bars || w.test_end - w.test_begin < o.min_test_bars)
      bad("--folds " + std::to_string(o.folds) + " with --purge " + std::to_string(o.purge) + (o.rolling ? " --rolling" : "") +
          " on " + std::to_string(n) + " bars: fold " + std::to_string(k) + " would train on " +
          std::to_string(std::max(0, w.train_end - w.train_begin)) + " bars and test on " + std::to_string(w.test_end - w.test_begin) +
          "; expected at least " + std::to_string(o.min_train_bars) + " and " + std::to_string(o.min_test_bars) +
          " (fewer --folds, a smaller --purge or more data)");
    out.push_back(w);
  }
  return out;
}

WalkForwardResult evolve_walk_forward(const kernels::PanelView& panel, const StrategyFeatures& features,
                                      const BacktestBackend& backend, const WalkForwardOptions& opt,
                                      const std::function<void(std::int32_t, const GenerationReport&)>& on_generation) {
  const std::vector<FoldWindow> windows = walk_forward_windows(panel.n_bars, opt);
  WalkForwardResult r;
  kernels::BacktestAccum pooled;
  double compounded = 1.0, worst_dd = 0.0, is_sum = 0.0;
  double n_all = 0, s_all = 0, ss_all = 0;  // pooled moments of the per-bar train Sharpe over every fold's trials
  for (std::size_t k = 0; k < windows.size(); ++k) {
    const auto fold = static_cast<std::int32_t>(k + 1);
    EvolveOptions eo = opt.evolve;
    eo.seed = opt.evolve.seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(fold));
    eo.train_begin = windows[k].train_begin;
    eo.train_end = windows[k].train_end;
    eo.test_begin = windows[k].test_begin;
    eo.test_end = windows[k].test_end;
    EvolveResult er = evolve(panel, features, backend, eo, [&](const GenerationReport& g) {
      if (on_generation) on_generation(fold, g);
    });
    FoldReport f;
    f.fold = fold;
    f.window = windows[k];
    f.trials = er.trials;
    // The genome deployed on block k is picked before block k is seen: the best train fitness of the hall of fame.
    const auto chosen = std::max_element(er.hall_of_fame.begin(), er.hall_of_fame.end(),
                                         [](const HallOfFameEntry& a, const HallOfFameEntry& b) { return a.fitness < b.fitness; });
    f.chosen = *chosen;
    f.best_oos_sharpe = er.hall_of_fame.front().test.sharpe;
    pooled.merge(chosen->test_accum);
    compounded *= 1.0 + chosen->test.total_return;
    worst_dd = std::max(worst_dd, chosen->test.max_drawdown);
    is_sum += chosen->train.sharpe;
    // Pool the train-Sharpe moments: n, sum and sum of squares recovered from each fold's mean and variance.
    const double n = static_cast<double>(er.sr_count);
    n_all += n;
    s_all += n * er.sr_mean;
    ss_all += (n > 1 ? er.sr_variance * (n - 1) : 0.0) + n * er.sr_mean * er.sr_mean;
    r.trials += er.trials;
    r.bar_steps += er.bar_steps;
    r.seconds += er.seconds;
    r.folds.push_back(f);
    const bool stopped = er.partial || (opt.evolve.stop.stop_requested() && k + 1 < windows.size());
    if (!er.partial) ++r.folds_completed;
    if (k + 1 == windows.size() || stopped) {
      r.partial = stopped;
      r.last = std::move(er);
      break;
    }
  }
  r.pooled_oos = backtest_metrics(pooled, opt.evolve.costs.bars_per_year);
  r.pooled_oos.total_return = compounded - 1.0;
  r.pooled_oos.max_drawdown = worst_dd;
  r.mean_is_sharpe = is_sum / static_cast<double>(r.folds.size());
  r.efficiency = r.mean_is_sharpe > 0 ? r.pooled_oos.sharpe / r.mean_is_sharpe : std::numeric_limits<double>::quiet_NaN();
  r.sr_variance = n_all > 1 ? std::max(0.0, (ss_all - s_all * s_all / n_all) / (n_all - 1)) : 0.0;
  r.deflated_sharpe = r.pooled_oos.trades > 0
                          ? deflated_sharpe(r.pooled_oos.sr_bar, r.pooled_oos.observations, r.pooled_oos.skew, r.pooled_oos.kurtosis,
                                            static_cast<double>(r.trials), r.sr_variance)
                          : 0.0;
  return r;
}

}  // namespace qtos
