// Selection: train fitness or NSGA-II pareto order (non-dominated fronts, crowding distance) and tournaments.
#include "runtime/strategy/evolution.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/evolution_detail.hpp"

namespace qtos {

const char* evolve_objective_name(EvolveObjective o) { return o == EvolveObjective::pareto ? "pareto" : "sharpe"; }

EvolveObjective evolve_objective_parse(const std::string& text, const std::string& what) {
  if (text == "sharpe") return EvolveObjective::sharpe;
  if (text == "pareto") return EvolveObjective::pareto;
  throw std::invalid_argument(what + " '" + text + "': expected sharpe or pareto");
}

const char* evolve_search_name(EvolveSearch s) { return s == EvolveSearch::random ? "random" : "genetic"; }

EvolveSearch evolve_search_parse(const std::string& text, const std::string& what) {
  if (text == "genetic") return EvolveSearch::genetic;
  if (text == "random") return EvolveSearch::random;
  throw std::invalid_argument(what + " '" + text + "': expected genetic or random");
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

namespace detail {

ObjectivePoint objective_point(const Evaluated& e, double min_trades) {
  if (e.train.trades < min_trades || !std::isfinite(e.train.total_return)) return {-1e9 + e.train.trades, -1e9};
  return {e.train.total_return, -e.train.max_drawdown};
}

bool Selection::better(std::size_t a, std::size_t b) const {
  if (objective == EvolveObjective::pareto) return front[a] != front[b] ? front[a] < front[b] : crowd[a] > crowd[b];
  return fitness[a] > fitness[b];
}

std::size_t Selection::tournament(Rng& rng, std::int32_t population, std::int32_t size) const {
  std::size_t best = static_cast<std::size_t>(rng_pick(rng, population));
  for (std::int32_t k = 1; k < size; ++k) {
    const auto c = static_cast<std::size_t>(rng_pick(rng, population));
    if (better(c, best)) best = c;
  }
  return best;
}

Selection selection_rank(const Population& pop, std::vector<double> fitness, const TrialCache& tried, const EvolveOptions& opt) {
  const std::size_t P = pop.size();
  Selection sel;
  sel.objective = opt.objective;
  sel.fitness = std::move(fitness);
  sel.front.assign(P, 0);
  sel.crowd.assign(P, 0.0);
  if (opt.objective == EvolveObjective::pareto) {
    std::vector<ObjectivePoint> pts(P);
    for (std::size_t i = 0; i < P; ++i) pts[i] = objective_point(tried.at(genome_hash(pop.genomes[i])), opt.min_trades);
    sel.front = pareto_fronts(pts);
    sel.crowd = crowding_distance(pts, sel.front);
  }
  sel.order.resize(P);
  for (std::size_t i = 0; i < P; ++i) sel.order[i] = i;
  std::stable_sort(sel.order.begin(), sel.order.end(), [&](std::size_t a, std::size_t b) { return sel.better(a, b); });
  return sel;
}

}  // namespace detail

}  // namespace qtos
