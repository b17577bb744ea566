#include "runtime/services/strategy_generator.hpp"

#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/policy/policy.hpp"

namespace qtos {

namespace {

constexpr double kNsPerDay = 86'400.0 * 1e9;

StrategyStage stage_of(StrategyStatus s) {
  switch (s) {
    case StrategyStatus::backtest: return StrategyStage::candidate;
    case StrategyStatus::shadow: return StrategyStage::shadow;
    case StrategyStatus::live: return StrategyStage::live;
    case StrategyStatus::retired: return StrategyStage::retired;
  }
  return StrategyStage::candidate;
}

std::int64_t to_ms(TimeNs t) { return t / kNsPerMillisecond; }

std::string metrics_text(const BacktestMetrics& m, double days) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"days\":%.3f,\"sharpe\":%.6g,\"win_rate\":%.6g,\"trades\":%.0f,\"total_return\":%.6g,\"max_drawdown\":%.6g}", days,
                std::isfinite(m.sharpe) ? m.sharpe : 0.0, m.win_rate, m.trades, m.total_return, m.max_drawdown);
  return buf;
}

}  // namespace

StrategyGeneratorOptions strategy_generator_options(const Config& config) {
  StrategyGeneratorOptions o;
  o.shadow_days = static_cast<double>(config.sg_shadow_days);
  o.promote_min_sharpe = config.sg_promote_min_sharpe;
  o.promote_min_win_rate = config.sg_promote_min_win_rate;
  o.min_trades = static_cast<double>(config.sg_promote_min_trades);
  o.live_floor_sharpe = config.sg_live_floor_sharpe;
  o.review_period = config.sg_review_interval * TimeNs{1'000'000'000};
  o.gaps = config.gaps;
  return o;
}

SubsystemMode strategy_generator_mode(const Config& config) { return config.sg_enabled ? SubsystemMode::enforced : SubsystemMode::off; }

StrategyGeneratorAI::StrategyGeneratorAI(EventBus& bus, SubsystemMode mode, StrategyRepository& repo, const PolicyStore& policy,
                                         const BacktestBackend& backend, StrategyGeneratorOptions options)
    : Service("strategy-generator", mode, bus), repo_(repo), policy_(policy), backend_(backend), opt_(options), rng_(options.seed, 0x56), clock_(bus.clock()) {}

kernels::Genome StrategyGeneratorAI::generate_strategy() { return genome_random(rng_); }

BacktestMetrics StrategyGeneratorAI::backtest_strategy(const MarketPanel& panel, const kernels::Genome& genome, std::int32_t t_begin,
                                                       std::int32_t t_end) const {
  const StrategyFeatures f = strategy_features_compute(panel.view(), false, opt_.gaps);
  const std::vector<kernels::Genome> one = {kernels::genome_normalize(genome)};
  BacktestRequest r;
  r.panel = panel.view();
  r.features = &f;
  r.genomes = one;
  r.costs = opt_.costs;
  r.t_begin = t_begin;
  r.t_end = t_end;
  return backtest_metrics(backend_.run(r).genome.at(0), opt_.costs.bars_per_year);
}

EvolveResult StrategyGeneratorAI::evolve_population(const MarketPanel& panel, const EvolveOptions& options) {
  if (options.validation_end == options.validation_begin)
    throw std::invalid_argument("evolve_population: no validation window (validation_begin == validation_end == " +
                                std::to_string(options.validation_begin) +
                                "); the generator selects on a validation window and reports on an untouched test window");
  const StrategyFeatures f = strategy_features_compute(panel.view(), false, opt_.gaps);
  EvolveResult r = evolve(panel.view(), f, backend_, options);
  const std::int64_t now = to_ms(clock_.now());
  auto num = [](double v) { return std::isfinite(v) ? boost::json::value(v) : boost::json::value(nullptr); };
  for (const auto& h : r.hall_of_fame) {
    StrategyRecord rec;
    rec.genome = h.genome;
    rec.generation = h.generation;
    rec.origin = "StrategyGeneratorAI evolve seed " + std::to_string(options.seed);
    rec.gaps = gap_policy_text(opt_.gaps);
    for (std::uint64_t p : h.parents) rec.parents.push_back(genome_id_of_hash(p));
    const boost::json::object m{
        {"selected", &h == &r.hall_of_fame.front()},
        {"search", evolve_search_name(options.search)},
        {"trials", r.trials},
        {"train", {{"sharpe", num(h.train.sharpe)}, {"trades", h.train.trades}, {"deflated_sharpe", h.train_dsr}}},
        {"validation", {{"sharpe", num(h.validation.sharpe)}, {"trades", h.validation.trades}, {"deflated_sharpe", h.validation_dsr}}},
        {"test", {{"sharpe", num(h.test.sharpe)}, {"total_return", num(h.test.total_return)}, {"trades", h.test.trades},
                  {"deflated_sharpe", h.test_dsr}}}};
    rec.backtest_metrics = boost::json::serialize(m);
    repo_.upsert(rec, now);
  }
  return r;
}

std::optional<std::string> shadow_entry_refusal(const StrategyRecord& rec) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(rec.backtest_metrics, ec);
  const boost::json::object* o = ec ? nullptr : v.if_object();
  const boost::json::value* selected = o ? o->if_contains("selected") : nullptr;
  if (selected == nullptr || !selected->is_bool() || !selected->as_bool())
    return "strategy " + rec.id + " was not the selected strategy of a train/validation/test search (only the one chosen on the "
           "validation window, with its test window reported, may go to SHADOW)";
  const boost::json::value* test = o->if_contains("test");
  const boost::json::value* sharpe = test && test->is_object() ? test->as_object().if_contains("sharpe") : nullptr;
  if (sharpe == nullptr || !sharpe->is_number() || !(sharpe->to_number<double>() > 0.0))
    return "strategy " + rec.id + "'s test-window Sharpe is " +
           (sharpe && sharpe->is_number() ? std::to_string(sharpe->to_number<double>()) : std::string("missing")) +
           ": expected above 0 on the window the search never saw";
  return std::nullopt;
}

void StrategyGeneratorAI::on_start() {
  sync_with_repository();
  subscribe<MarketBarClosed>([this](const MarketBarClosed& b) { on_bar(b); });
  every(opt_.review_period, [this](TimeNs) { review(); });
}

void StrategyGeneratorAI::sync_with_repository() {
  std::set<std::string> seen;
  for (StrategyStatus st : {StrategyStatus::shadow, StrategyStatus::live})
    for (const auto& rec : repo_.list(st)) {
      seen.insert(rec.id);
      auto it = tracked_.find(rec.id);
      if (it == tracked_.end()) {
        tracked_.emplace(rec.id, Tracked{rec.genome, st, clock_.now(), {}});
      } else if (it->second.status != st) {
        // A stage change restarts the observation: LIVE performance is judged on LIVE bars only.
        it->second = Tracked{rec.genome, st, clock_.now(), {}};
      }
    }
  for (auto it = tracked_.begin(); it != tracked_.end();) it = seen.count(it->first) ? std::next(it) : tracked_.erase(it);
}

StrategyGeneratorAI::SymbolFeed& StrategyGeneratorAI::symbol_feed(const std::string& symbol) {
  auto [it, fresh] = symbols_.try_emplace(symbol);
  if (fresh)  // RSI and ADX at the symbol's quote precision, as in the backtest's feature bank
    if (const auto d = opt_.price_decimals.find(symbol); d != opt_.price_decimals.end()) it->second.features = StrategyFeatureState({}, d->second);
  return it->second;
}

void StrategyGeneratorAI::feed(const std::string& symbol, double o, double h, double l, double c) {
  SymbolFeed& sf = symbol_feed(symbol);
  // Fills on this bar pay the slippage of the previous bar's spread proxy, as in the backtest.
  const double slip = kernels::fill_slippage<double>(opt_.costs, sf.values[static_cast<std::int32_t>(kernels::StrategyFeature::spread)]);
  sf.features.update(h, l, c, sf.values);
  const auto f = [&sf](std::int32_t p) { return sf.values[p]; };
  const double atr = sf.values[static_cast<std::int32_t>(kernels::StrategyFeature::atr)];
  kernels::NoTradeSink sink;
  for (auto& [id, tr] : tracked_) {
    auto [it, fresh] = tr.accounts.try_emplace(symbol);
    if (fresh) it->second.init(opt_.costs.capital);
    const std::uint32_t sig = std::isfinite(c) ? kernels::signals_eval<double>(tr.genome, c, f) : 0u;
    it->second.step(tr.genome, opt_.costs, bar_index_, o, h, l, c, static_cast<std::int32_t>(sig), atr, slip, false, sink);
  }
}

void StrategyGeneratorAI::on_bar(const MarketBarClosed& bar) {
  const std::string symbol(bar.symbol.view());
  SymbolFeed& sf = symbol_feed(symbol);
  const TimeNs interval = static_cast<TimeNs>(bar.interval_s) * 1'000'000'000;
  // A missing interval is a gap: one missing bar flattens paper positions and restarts the indicators.
  if (sf.last_open >= 0 && bar.open_time - sf.last_open > interval) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    feed(symbol, nan, nan, nan, nan);
  }
  sf.last_open = bar.open_time;
  ++bar_index_;
  feed(symbol, bar.open, bar.high, bar.low, bar.close);
}

std::optional<ShadowEvaluation> StrategyGeneratorAI::evaluate_shadow_strategy(const std::string& id) const {
  const auto it = tracked_.find(id);
  if (it == tracked_.end()) return std::nullopt;
  const Tracked& tr = it->second;
  kernels::BacktestAccum acc;
  for (const auto& [sym, st] : tr.accounts) {
    kernels::BacktestState<double> copy = st;  // positions still open count at their last mark
    copy.finish();
    acc.merge(copy.acc);
  }
  ShadowEvaluation e;
  e.id = id;
  e.status = tr.status;
  e.metrics = backtest_metrics(acc, opt_.costs.bars_per_year);
  e.days = static_cast<double>(clock_.now() - tr.since) / kNsPerDay;
  e.period_elapsed = e.days >= opt_.shadow_days;
  e.beats_thresholds = e.metrics.sharpe > opt_.promote_min_sharpe && e.metrics.win_rate > opt_.promote_min_win_rate &&
                       e.metrics.trades >= opt_.min_trades;
  e.allowed_by_policy = policy_allows_strategy(*policy_.current(), id);
  return e;
}

Result<StrategyRecord> StrategyGeneratorAI::promote_strategy(const std::string& id, const std::string& reason) {
  const auto rec = repo_.get(id);
  if (!rec) return Error{ErrorCode::not_found, "promote: no strategy '" + id + "' in the repository"};
  if (rec->status == StrategyStatus::backtest)
    if (const auto why = shadow_entry_refusal(*rec)) return Error{ErrorCode::conflict, "promote: " + *why};
  if (rec->status == StrategyStatus::shadow && !policy_allows_strategy(*policy_.current(), rec->id))
    return Error{ErrorCode::blocked, "promote: the policy does not allow strategy " + rec->id + " to trade live"};
  const StrategyStatus to = rec->status == StrategyStatus::backtest ? StrategyStatus::shadow : StrategyStatus::live;
  if (const auto ev = evaluate_shadow_strategy(rec->id); ev && to == StrategyStatus::live)
    (void)repo_.record_stage_metrics(rec->id, StrategyStatus::shadow, metrics_text(ev->metrics, ev->days));
  auto res = repo_.transition(rec->id, to, reason, to_ms(clock_.now()));
  if (!res) return res;
  StrategyPromoted ev;
  ev.strategy = rec->id;
  ev.from = stage_of(rec->status);
  ev.to = stage_of(to);
  const auto shadow = evaluate_shadow_strategy(rec->id);
  ev.fitness = shadow ? shadow->metrics.sharpe : 0.0;
  publish(ev);
  sync_with_repository();
  return res;
}

Result<StrategyRecord> StrategyGeneratorAI::retire_strategy(const std::string& id, const std::string& reason) {
  const auto rec = repo_.get(id);
  if (!rec) return Error{ErrorCode::not_found, "retire: no strategy '" + id + "' in the repository"};
  if (const auto ev = evaluate_shadow_strategy(rec->id); ev && rec->status == StrategyStatus::live)
    (void)repo_.record_stage_metrics(rec->id, StrategyStatus::live, metrics_text(ev->metrics, ev->days));
  auto res = repo_.transition(rec->id, StrategyStatus::retired, reason, to_ms(clock_.now()));
  if (!res) return res;
  StrategyRetired ev;
  ev.strategy = rec->id;
  ev.reason = reason;
  publish(ev);
  sync_with_repository();
  return res;
}

std::vector<std::string> StrategyGeneratorAI::review() {
  sync_with_repository();
  std::vector<std::string> acted;
  std::vector<std::pair<std::string, ShadowEvaluation>> evals;
  for (const auto& [id, tr] : tracked_)
    if (auto e = evaluate_shadow_strategy(id)) evals.emplace_back(id, *e);
  const bool apply = mode() == SubsystemMode::advisory || mode() == SubsystemMode::enforced;
  for (const auto& [id, e] : evals) {
    char why[200];
    if (e.status == StrategyStatus::shadow && e.period_elapsed && e.beats_thresholds && e.allowed_by_policy) {
      std::snprintf(why, sizeof why, "shadow %.1f days: Sharpe %.2f > %.2f, win rate %.2f > %.2f, %.0f trades", e.days,
                    e.metrics.sharpe, opt_.promote_min_sharpe, e.metrics.win_rate, opt_.promote_min_win_rate, e.metrics.trades);
      acted.push_back(id);
      if (apply) {
        const auto r = promote_strategy(id, why);
        if (!r) spdlog::warn("strategy-generator: promote {} failed: {}", id, r.error().message);
      } else {
        spdlog::info("strategy-generator (observe): would promote {} to LIVE ({})", id, why);
      }
    } else if (e.status == StrategyStatus::live && e.period_elapsed && e.metrics.sharpe < opt_.live_floor_sharpe) {
      std::snprintf(why, sizeof why, "live %.1f days: Sharpe %.2f below the floor %.2f", e.days, e.metrics.sharpe, opt_.live_floor_sharpe);
      acted.push_back(id);
      if (apply) {
        const auto r = retire_strategy(id, why);
        if (!r) spdlog::warn("strategy-generator: retire {} failed: {}", id, r.error().message);
      } else {
        spdlog::info("strategy-generator (observe): would retire {} ({})", id, why);
      }
    }
  }
  return acted;
}

}  // namespace qtos
