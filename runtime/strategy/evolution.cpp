// The search: evolve() loops evaluate -> select -> breed over the generations (random search: evaluate -> draw), then
// builds the hall of fame from every trial, ranks it on the validation window and only then tests it. The steps live in evolution_evaluate.cpp, evolution_select.cpp, evolution_breed.cpp and
// evolution_hall_of_fame.cpp; walk-forward folds in evolution_walk_forward.cpp.
#include "runtime/strategy/evolution.hpp"

#include <chrono>
#include <stdexcept>
#include <string>

#include "runtime/strategy/evolution_detail.hpp"

namespace qtos {

namespace {

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
  const bool has_validation = o.validation_end != o.validation_begin;
  if (has_validation && (o.validation_begin < o.train_end || o.validation_end <= o.validation_begin + 1))
    bad("validation window [" + std::to_string(o.validation_begin) + ", " + std::to_string(o.validation_end) +
        ") must hold at least 2 bars and start at or after the train window's end (" + std::to_string(o.train_end) + ")");
  const std::int32_t before_test = has_validation ? o.validation_end : o.train_end;
  if (o.test_begin < before_test || o.test_end <= o.test_begin + 1 || o.test_end > panel.n_bars)
    bad("test window [" + std::to_string(o.test_begin) + ", " + std::to_string(o.test_end) +
        ") must hold at least 2 bars, start at or after the " + (has_validation ? "validation" : "train") + " window's end (" +
        std::to_string(before_test) + ") and end within the data's " + std::to_string(panel.n_bars) + " bars");
  if (!(o.complexity_penalty >= 0 && o.complexity_penalty <= 10)) bad("complexity_penalty " + std::to_string(o.complexity_penalty) + ": expected 0 to 10");

}

}  // namespace

EvolveResult evolve(const kernels::PanelView& panel, const StrategyFeatures& features, const BacktestBackend& backend,
                    const EvolveOptions& opt, const std::function<void(const GenerationReport&)>& on_generation) {
  options_check(panel, opt);
  const auto started = std::chrono::steady_clock::now();
  Rng rng(opt.seed, 0x5eed);
  EvolveResult result;
  detail::TrialCache tried;

  BacktestRequest train;
  train.panel = panel;
  train.features = &features;
  train.costs = opt.costs;
  train.t_begin = opt.train_begin;
  train.t_end = opt.train_end;

  detail::Population pop = detail::population_random(static_cast<std::size_t>(opt.population), rng);
  for (std::int32_t gen = 0; gen < opt.generations; ++gen) {
    const detail::Evaluation ev = detail::population_evaluate(pop, gen, backend, train, opt, tried);
    const GenerationReport rep = detail::generation_report(gen, pop, ev, tried, panel.n_symbols, opt);
    result.bar_steps += rep.bar_steps;
    result.seconds += rep.seconds;
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
    if (opt.search == EvolveSearch::random) {
      pop = detail::population_untried(static_cast<std::size_t>(opt.population), rng, tried);
      continue;
    }
    const detail::Selection sel = detail::selection_rank(pop, ev.fitness, tried, opt);
    pop = detail::population_breed(pop, sel, opt, rng);
  }

  detail::trial_sharpe_moments(tried, result);
  detail::hall_of_fame_select_and_test(detail::hall_of_fame_pick(tried, opt), backend, train, opt, result);
  return result;
}

}  // namespace qtos
