// Breeding: random genomes, mutation and crossover, and the next generation with its lineage (tournament winners'
// children, distinct by hash).
#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/evolution_detail.hpp"

namespace qtos {

using detail::Parents;
using kernels::CondKind;
using kernels::Condition;
using kernels::GeneRanges;
using kernels::Genome;

namespace {

constexpr auto pick = detail::rng_pick;

/// Period indices are drawn over the longest table a condition indexes (p0: EMA, RSI, BB, ADX or ROC; p1: EMA or
/// BB band); condition_normalize folds the draw into the kind's own table.
constexpr std::int32_t kPeriodPick = std::max({kernels::kEmaCount, kernels::kRsiCount, kernels::kBbCount, kernels::kAdxCount,
                                               kernels::kRocCount, kernels::kBbBandCount});
static_assert(kPeriodPick == kernels::kEmaCount, "the EMA table is the longest a period index ranges over");
/// Range of a drawn max-hold, in bars (when the gene is switched on).
constexpr std::int32_t kMaxHoldDrawLo = 5, kMaxHoldDrawHi = 200;
/// Kinds of structural mutation in genome_mutate (the cases of its switch).
constexpr std::int32_t kStructureMutationCount = 8;

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
  c.p0 = pick(rng, kPeriodPick);
  c.p1 = pick(rng, kPeriodPick);
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
  if (rng.uniform() < rate) c.p0 = pick(rng, kPeriodPick);
  if (rng.uniform() < rate) c.p1 = pick(rng, kPeriodPick);
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
  g.side = pick(rng, kernels::kSideCount);
  g.stop_atr = optional_random(rng, 0.5, GeneRanges::stop_lo, GeneRanges::stop_hi);
  g.take_atr = optional_random(rng, 0.4, GeneRanges::take_lo, GeneRanges::take_hi);
  g.trail_atr = optional_random(rng, 0.3, GeneRanges::trail_lo, GeneRanges::trail_hi);
  g.max_hold = rng.uniform() < 0.4 ? kMaxHoldDrawLo + pick(rng, kMaxHoldDrawHi - kMaxHoldDrawLo + 1) : 0;
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
    switch (pick(rng, kStructureMutationCount)) {
      case 0: g.entry[0] = condition_random(rng); break;
      case 1: g.entry[1] = condition_random(rng); if (g.op == 0) g.op = 1; break;
      case 2: g.op = pick(rng, kernels::kEntryOpCount); if (g.entry[1].kind == 0) g.entry[1] = condition_random(rng); break;
      case 3: g.exit_rule = g.exit_rule.kind == 0 ? condition_random(rng) : Condition{}; break;
      case 4: g.side = pick(rng, kernels::kSideCount); break;
      case 5: g.stop_atr = g.stop_atr > 0 ? 0.0f : static_cast<float>(rng.uniform(GeneRanges::stop_lo, GeneRanges::stop_hi)); break;
      case 6: g.take_atr = g.take_atr > 0 ? 0.0f : static_cast<float>(rng.uniform(GeneRanges::take_lo, GeneRanges::take_hi)); break;
      default: g.max_hold = g.max_hold > 0 ? 0 : kMaxHoldDrawLo + pick(rng, kMaxHoldDrawHi - kMaxHoldDrawLo + 1); break;
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

std::string genome_id_of_hash(std::uint64_t hash) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash));
  return buf;
}

namespace detail {

void Population::push_unique(Genome g, Parents lineage, Rng& rng) {
  for (int tries = 0; hashes.count(genome_hash(g)) != 0; ++tries) {
    if (tries < 8) {
      g = genome_mutate(g, rng, 0.5, 1.0);
    } else {
      g = genome_random(rng);
      lineage.clear();
    }
  }
  hashes.insert(genome_hash(g));
  genomes.push_back(g);
  parents.push_back(std::move(lineage));
}

Population population_random(std::size_t size, Rng& rng) {
  Population pop;
  while (pop.size() < size) pop.push_unique(genome_random(rng), {}, rng);
  return pop;
}

Population population_untried(std::size_t size, Rng& rng, const TrialCache& tried) {
  Population pop;
  while (pop.size() < size) {
    Genome g = genome_random(rng);
    // The grammar holds far more genomes than any search tries; the cap only guards a degenerate stream.
    for (int tries = 0; tries < 1000 && tried.count(genome_hash(g)) != 0; ++tries) g = genome_random(rng);
    pop.push_unique(g, {}, rng);
  }
  return pop;
}

Population population_breed(const Population& pop, const Selection& sel, const EvolveOptions& opt, Rng& rng) {
  const auto P = static_cast<std::size_t>(opt.population);
  Population next;
  for (std::int32_t e = 0; e < opt.elite; ++e) {
    const std::size_t i = sel.order[static_cast<std::size_t>(e)];
    next.push_unique(pop.genomes[i], pop.parents[i], rng);
  }
  while (next.size() < P) {
    const std::size_t a = sel.tournament(rng, opt.population, opt.tournament);
    Parents parents{genome_hash(pop.genomes[a])};
    Genome child = pop.genomes[a];
    if (rng.uniform() < opt.crossover_rate) {
      const std::size_t b = sel.tournament(rng, opt.population, opt.tournament);
      child = genome_crossover(pop.genomes[a], pop.genomes[b], rng);
      if (genome_hash(pop.genomes[b]) != parents[0]) parents.push_back(genome_hash(pop.genomes[b]));
    }
    next.push_unique(genome_mutate(child, rng, opt.mutation_rate, opt.structure_rate), std::move(parents), rng);
  }
  return next;
}

}  // namespace detail

}  // namespace qtos
