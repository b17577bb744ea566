// The event-driven executor: signals through the hooks and the Risk OS to the exchange, fills into positions and
// the ledger, and the position monitor. docs/TRADING.md describes the flow.
#include "runtime/executor/executor.hpp"
#include "runtime/executor/executor_detail.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "cpu/strategy/genome_text.hpp"

namespace qtos {

namespace {

constexpr std::int32_t kAtrPlane = static_cast<std::int32_t>(kernels::StrategyFeature::atr);
/// The fee rate an entry's funding check leaves room for (a venue charging more rejects the rest, named).
constexpr double kFeeHeadroom = 0.005;

std::string num(double v) { return decision_number(v); }


double signed_qty(Side side, double qty) { return side == Side::buy ? qty : -qty; }
Side opposite(Side s) { return s == Side::buy ? Side::sell : Side::buy; }

CloseReason close_reason(OrderPurpose p) {
  switch (p) {
    case OrderPurpose::stop_loss: return CloseReason::stop_loss;
    case OrderPurpose::take_profit: return CloseReason::take_profit;
    case OrderPurpose::trailing_stop: return CloseReason::trailing_stop;
    case OrderPurpose::risk_exit: return CloseReason::risk_exit;
    case OrderPurpose::end_of_replay: return CloseReason::end_of_replay;
    case OrderPurpose::manual: return CloseReason::manual;
    case OrderPurpose::subsystem_exit: return CloseReason::subsystem_exit;
    case OrderPurpose::entry:
    case OrderPurpose::exit: break;
  }
  return CloseReason::signal_exit;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// AITradingEngine

namespace {
/// The feature planes a genome's rules read (its conditions and their mirrors), and the ATR its stops and the model
/// path use.
std::uint32_t genome_planes(const kernels::Genome& g) {
  std::uint32_t planes = 1u << kAtrPlane;
  for (const kernels::Condition& c : {g.entry[0], g.entry[1], g.exit_rule})
    for (const kernels::Condition& x : {c, kernels::condition_mirror(c)}) {
      const kernels::CondProgram p = kernels::condition_compile(x);
      for (const std::int32_t plane : {p.a, p.b, p.c_plane})
        if (plane >= 0) planes |= 1u << plane;
    }
  return planes;
}
}  // namespace

void AITradingEngine::strategy_add(LiveStrategy strategy, bool mid_run) {
  const kernels::Genome n = kernels::genome_normalize(strategy.genome);
  if (std::memcmp(&n, &strategy.genome, sizeof n) != 0)
    throw std::invalid_argument("strategy " + strategy.id + ": the genome is not normalised");
  if (!(strategy.capital >= 0) || !std::isfinite(strategy.capital))
    throw std::invalid_argument("strategy " + strategy.id + ": capital " + num(strategy.capital) + " must be >= 0");
  for (const auto& s : strategies_)
    if (s.id == strategy.id) throw std::invalid_argument("strategy " + strategy.id + " is already trading");
  if (!mid_run)
    for (const SymbolState& st : symbols_)  // its indicators would have missed the bars so far
      if (st.seen) throw std::logic_error("strategy " + strategy.id + ": strategies are added before the first bar");
  enabled_.push_back(1);
  strategy_symbols_.emplace_back(strategy.symbols.begin(), strategy.symbols.end());
  for (SymbolState& st : symbols_) {  // symbols seen before the strategy came
    st.traded_by.push_back(strategy_symbols_.back().empty() || strategy_symbols_.back().count(st.symbol.str()) > 0);
    if (st.traded_by.back()) st.planes |= genome_planes(strategy.genome);
  }
  strategies_.push_back(std::move(strategy));
}

std::uint32_t AITradingEngine::slot_find(const Symbol& symbol) const {
  const auto it = slots_.find(symbol);
  return it == slots_.end() ? kNoSlot : it->second;
}

std::uint32_t AITradingEngine::slot_intern(const Symbol& symbol) {
  const auto [it, fresh] = slots_.try_emplace(symbol, static_cast<std::uint32_t>(symbols_.size()));
  if (fresh) {
    SymbolState& st = symbols_.emplace_back();
    st.symbol = symbol;
    if (const auto d = decimals_.find(symbol.str()); d != decimals_.end()) st.features = StrategyFeatureState({}, d->second);
    st.traded_by.resize(strategies_.size());
    st.planes = 1u << kAtrPlane;
    for (std::size_t i = 0; i < strategies_.size(); ++i) {
      st.traded_by[i] = strategy_symbols_[i].empty() || strategy_symbols_[i].count(symbol.str()) > 0;
      if (st.traded_by[i]) st.planes |= genome_planes(strategies_[i].genome);
    }
  }
  return it->second;
}

std::uint32_t AITradingEngine::bar_update(const MarketBarClosed& bar) {
  const std::uint32_t slot = slot_intern(bar.symbol);
  SymbolState& st = symbols_[slot];
  const TimeNs interval = static_cast<TimeNs>(bar.interval_s) * kNsPerSecond;
  // Missing bars (a closure) are skipped or restart the indicators as the gap policy says, as in the batch feature bank.
  if (st.seen && bar.open_time != st.open_time + interval && interval > 0 &&
      gaps_.resets(static_cast<std::int32_t>(std::min<TimeNs>((bar.open_time - st.open_time) / interval - 1, 1 << 30))))
    st.features.reset();
  st.features.update(bar.high, bar.low, bar.close, st.f, st.planes);  // only what its strategies read
  st.close = bar.close;
  st.open_time = bar.open_time;
  st.seen = true;
  return slot;
}

std::size_t AITradingEngine::strategy_index(const std::string& id) const {
  for (std::size_t i = 0; i < strategies_.size(); ++i)
    if (strategies_[i].id == id) return i;
  return SIZE_MAX;
}

double AITradingEngine::atr(std::uint32_t slot) const { return slot < symbols_.size() ? symbols_[slot].f[kAtrPlane] : 0.0; }

std::uint32_t AITradingEngine::rule_signals(std::size_t strategy, std::uint32_t slot, double* atr) const {
  const SymbolState& st = symbols_[slot];
  const double* f = st.f;
  if (atr != nullptr) *atr = f[kAtrPlane];
  return kernels::signals_eval<double>(strategies_[strategy].genome, st.close, [f](std::int32_t p) { return f[p]; });
}

void AITradingEngine::signals_for(std::uint32_t slot, std::vector<TradingSignal>& out, std::size_t skip) const {
  const SymbolState& st = symbols_[slot];
  if (!st.seen) return;
  for (std::size_t i = 0; i < strategies_.size(); ++i) {
    if (i == skip || !trades(i, slot) || enabled_[i] == 0) continue;
    double atr = 0;
    const std::uint32_t sig = rule_signals(i, slot, &atr);
    if ((sig & (kernels::kSignalLong | kernels::kSignalShort)) == 0) continue;
    const kernels::Genome& g = strategies_[i].genome;
    const bool atr_ok = std::isfinite(atr) && atr > 0;
    if (!atr_ok && (g.stop_atr > 0.0f || g.take_atr > 0.0f || g.trail_atr > 0.0f)) continue;  // stops need a defined ATR
    TradingSignal s;
    s.strategy = strategies_[i].id;
    s.symbol = st.symbol;
    s.side = (sig & kernels::kSignalLong) != 0 ? Side::buy : Side::sell;
    s.confidence = 1.0;  // a rule fires or it does not
    s.source = "strategy";
    s.atr = std::isfinite(atr) ? atr : 0.0;
    s.strategy_index = i;
    out.push_back(std::move(s));
  }
}

std::vector<TradingSignal> AITradingEngine::get_trading_signals(const std::vector<Symbol>& symbols) const {
  std::vector<TradingSignal> out;
  for (const Symbol& sym : symbols) {
    const std::uint32_t slot = slot_find(sym);
    if (slot != kNoSlot) signals_for(slot, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Executor state

EventDrivenExecutor::EventDrivenExecutor(const Config& config, EventBus& bus, Exchange& exchange, RiskOS& risk, PolicyStore& policy,
                                         Ledger& ledger, HookPipeline& hooks, AITradingEngine& engine, ExecutorOptions options)
    : Service("executor", SubsystemMode::enforced, bus),
      config_(config),
      exchange_(exchange),
      risk_(risk),
      policy_store_(policy),
      policy_(policy),
      ledger_(ledger),
      hooks_(hooks),
      engine_(engine),
      options_(options) {
  if (options_.commit_every < 1)
    throw std::invalid_argument("executor: commit_every " + std::to_string(options_.commit_every) + " must be >= 1");
  if (!(options_.leverage >= 1) || !std::isfinite(options_.leverage))
    throw std::invalid_argument("executor: leverage " + num(options_.leverage) + " must be >= 1");
  if (config.stage == IntegrationStage::autonomy && !exchange.simulated())
    throw std::invalid_argument("stage AUTONOMY needs the paper exchange or a testnet; the exchange is " + exchange.name());
  last_order_id_ = ledger_.order_id_max();
  last_position_id_ = ledger_.position_id_max();
}

EventDrivenExecutor::~EventDrivenExecutor() { exchange_.listener_set(nullptr); }

EventDrivenExecutor::SymbolSlot& EventDrivenExecutor::slot(std::uint32_t index) {
  if (index >= slots_.size()) slots_.resize(index + 1);
  return slots_[index];
}

void EventDrivenExecutor::position_set(std::uint32_t slot_index, std::unique_ptr<Position> p) {
  ++state_version_;
  SymbolSlot& s = slot(slot_index);
  if (!s.position) ++open_positions_;
  s.position = std::move(p);
}

void EventDrivenExecutor::position_erase(std::uint32_t slot_index) {
  ++state_version_;
  SymbolSlot& s = slot(slot_index);
  if (s.position) --open_positions_;
  s.position.reset();
}

template <class F>
void EventDrivenExecutor::positions_each(F&& f) {
  for (SymbolSlot& s : slots_)
    if (s.position) f(*s.position);
}

EventDrivenExecutor::Sleeve& EventDrivenExecutor::sleeve_of(const Position& p) { return sleeve(p.slot, p.strategy); }

// Every way into the executor (a bar, a fill, an order update, the end of a cycle) goes through here: an error that
// escapes (the ledger cannot be written, a bug) stops trading rather than letting the executor, the ledger and the
// venue drift apart. The venue keeps the protective orders already placed.
template <class F>
void EventDrivenExecutor::guarded(const char* what, F&& f) {
  if (state() == ServiceState::faulted) return;
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("executor: {} failed: {}; trading stopped", what, e.what());
    fault(std::string(what) + " failed: " + e.what() + "; trading stopped (orders resting at the venue stay there)");
  }
}

void EventDrivenExecutor::on_bar(const MarketBarClosed& bar) {
  guarded("a bar", [&] { bar_process(bar); });
}
void EventDrivenExecutor::on_fill(const Fill& fill) {
  guarded("a fill", [&] { fill_process(fill); });
}
void EventDrivenExecutor::on_order_update(const OrderState& order) {
  guarded("an order update", [&] { order_update_process(order); });
}
void EventDrivenExecutor::cycle_end() {
  guarded("the end of a cycle", [&] { cycle_process(); });
}

void EventDrivenExecutor::on_start() {
  exchange_.listener_set(this);
  initial_equity_ = exchange_.equity();
  day_start_equity_ = initial_equity_;
  // Strategies without an explicit allocation share the initial equity equally.
  std::size_t unallocated = 0;
  double allocated = 0;
  for (const auto& s : engine_.strategies()) {
    if (s.capital > 0) allocated += s.capital;
    else ++unallocated;
  }
  share_ = unallocated > 0 ? std::max(0.0, initial_equity_ - allocated) / static_cast<double>(unallocated) : 0;
  if (config_.emergency_brake) risk_.brake_set(true, "config", "QT_AI_EMERGENCY_BRAKE=true at start");
  subscribe<MarketBarClosed>([this](const MarketBarClosed& b) { on_bar(b); });
  subscribe<OpportunitiesUpdated>([this](const OpportunitiesUpdated& o) {
    for (SymbolSlot& s : slots_) s.in_universe = false;
    const auto n = static_cast<std::size_t>(std::max<std::int64_t>(1, policy_.get().top_n_universe));
    universe_size_ = 0;
    for (std::size_t i = 0; i < o.top.size() && i < n; ++i, ++universe_size_) slot(o.top[i].symbol).in_universe = true;
    universe_known_ = true;
    ++state_version_;
  });
  subscribe<RegimeChanged>([this](const RegimeChanged& r) {
    if (r.symbol.empty()) regime_ = r.current;
  });
  if (strategy_lookup_) {
    subscribe<StrategyPromoted>([this](const StrategyPromoted& e) {
      guarded("a strategy promotion", [&] { strategy_promoted(e); });
    });
    subscribe<StrategyRetired>([this](const StrategyRetired& e) {
      const std::size_t i = engine_.strategy_index(e.strategy.str());
      if (i == SIZE_MAX || !engine_.strategy_enabled(i)) return;
      engine_.strategy_enabled_set(i, false);
      ++state_version_;
      spdlog::info("executor: strategy {} retired ({}): no new entries, open positions keep their exits", e.strategy.view(), e.reason);
    });
  }
  if (hooks_.active(Hook::periodic_self_healing_check))
    every(config_.self_healing_check_interval * kNsPerSecond, [this](TimeNs now) { periodic_healing(now); });
  if (hooks_.active(Hook::periodic_ai_hfos_coordination))
    every(config_.hfos_update_interval * kNsPerSecond, [this](TimeNs now) { periodic_coordination(now); });
  if (options_.check_interval > 0)
    every(options_.check_interval, [this](TimeNs) { cycle_end(); });
}

void EventDrivenExecutor::on_stop() {
  denial_runs_flush(true);
  ledger_.commit();
  exchange_.listener_set(nullptr);
}

EventDrivenExecutor::Sleeve& EventDrivenExecutor::sleeve(std::uint32_t slot_index, std::size_t strategy) {
  SymbolSlot& s = slot(slot_index);
  const bool model = strategy == SIZE_MAX;  // the model source's sleeve is its own (strategies may join mid-run)
  if (!model && s.sleeves.size() <= strategy) {
    s.sleeves.resize(strategy + 1);
    s.sleeve_set.resize(strategy + 1, 0);
  }
  Sleeve& sl = model ? s.model_sleeve : s.sleeves[strategy];
  std::uint8_t& set = model ? s.model_sleeve_set : s.sleeve_set[strategy];
  if (set == 0) {
    // The strategy's capital split equally over its symbols, as the vectorised backtester splits it.
    double capital = share_;
    std::size_t n_symbols = std::max<std::uint32_t>(1, engine_.slot_count());
    if (!model) {
      const LiveStrategy& ls = engine_.strategies()[strategy];
      if (ls.capital > 0) capital = ls.capital;
      if (!ls.symbols.empty()) n_symbols = ls.symbols.size();
    }
    sl.cash = capital / static_cast<double>(n_symbols);
    set = 1;
  }
  return sl;
}

void EventDrivenExecutor::strategy_promoted(const StrategyPromoted& e) {
  if (e.to != StrategyStage::live) return;
  const std::string id = e.strategy.str();
  if (const std::size_t i = engine_.strategy_index(id); i != SIZE_MAX) {
    engine_.strategy_enabled_set(i, true);  // promoted again after a retirement
    ++state_version_;
    return;
  }
  std::optional<LiveStrategy> s = strategy_lookup_(id);
  if (!s) {
    spdlog::warn("executor: strategy {} was promoted to LIVE but is not in the repository; not traded", id);
    return;
  }
  if (s->capital <= 0) s->capital = share_ > 0 ? share_ : initial_equity_;
  engine_.strategy_add(std::move(*s), true);
  ++state_version_;
  spdlog::info("executor: strategy {} promoted to LIVE: trading from the next bar", id);
}

void EventDrivenExecutor::final_bar_set(TimeNs open_time) {
  final_open_ = open_time;
  positions_each([this](Position& p) {
    if (p.entered && p.exit_order == 0) exit_submit(p, OrderPurpose::end_of_replay, OrderType::market_on_close);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Bars

void EventDrivenExecutor::bar_process(const MarketBarClosed& bar) {
  ++stats_.bars;
  const TimeNs close_time = bar.open_time + static_cast<TimeNs>(bar.interval_s) * kNsPerSecond;
  if (cycle_open_ && close_time > cycle_time_) cycle_process();  // a live feed moved on without an explicit end
  cycle_time_ = close_time;
  cycle_open_ = true;
  const std::uint32_t si = engine_.bar_update(bar);
  SymbolSlot& sl = slot(si);
  sl.last_price = bar.close;
  if (close_time < trading_from_) return;  // warm-up
  const bool final_bar = final_open_ >= 0 && bar.open_time >= final_open_;

  if (sl.position && sl.position->entered) monitor(*sl.position, bar);
  if (final_bar) return;  // the run ends at this bar's close: no new decision

  // The holding strategy's exits first (its own bar step), then every strategy's entry signals.
  Position* held = sl.position.get();  // (monitor() may have submitted, never erased)
  if (held != nullptr && held->strategy != SIZE_MAX && held->entered && held->exit_order == 0)
    strategy_exits(*held, held->strategy, engine_.rule_signals(held->strategy, si, nullptr));
  signals_.clear();
  // A strategy in its position (or entering it) takes no entry: its rules are not evaluated again.
  engine_.signals_for(si, signals_, held != nullptr ? held->strategy : SIZE_MAX);
  for (TradingSignal& s : signals_) {
    held = slots_[si].position.get();
    if (held != nullptr && held->strategy == s.strategy_index) continue;  // (its exit may have been decided above)
    if (denial_fold(si, s.strategy_index, s.side)) {
      // The same denial as at its last decision here, under the same state: no pipeline, the signal still published.
      ++stats_.signals;
      const kernels::Genome& g = engine_.strategies()[s.strategy_index].genome;
      const double dir = s.side == Side::buy ? 1.0 : -1.0, price = slots_[si].last_price;
      signal_event(s.strategy, s.symbol, s.side, s.confidence, price, g.stop_atr > 0.0f ? price - dir * g.stop_atr * s.atr : 0.0,
                   g.take_atr > 0.0f ? price + dir * g.take_atr * s.atr : 0.0);
      continue;
    }
    entry_consider(std::move(s));
  }
}

void EventDrivenExecutor::scale_in(Position& p, double qty, double price, DecisionTrace trace) {
  OrderRecord rec = reduce_order(p, OrderType::market, OrderPurpose::entry, qty, 0.0);
  rec.request.side = p.rec.side;  // the position's own side: it adds
  rec.request.reduce_only = false;
  rec.created = rec.updated = clock().now();
  rec.policy_version = policy_.get().version;
  rec.trace = std::move(trace);
  RiskOrder ro;
  ro.strategy = p.rec.strategy.str();
  ro.symbol = p.rec.symbol;
  ro.side = p.rec.side;
  ro.qty = qty;
  ro.last_price = price;
  ro.stop_loss = p.rec.stop_price;
  ro.leverage = p.rec.leverage;
  ro.adds = true;
  if (auto denial = risk_.check(ro, risk_account(&p.rec.symbol), policy_.get())) {
    rec.trace.push_back({"risk_os", "RISK_OS", SubsystemMode::enforced, "", std::string(enum_name(denial->reason)), true, denial->detail});
    return deny(std::move(rec), denial->reason, denial->detail);
  }
  rec.trace.push_back({"risk_os", "RISK_OS", SubsystemMode::enforced, "", "pass", true, std::string(enum_name(risk_.state()))});
  if (!risk_.order_sent()) return deny(std::move(rec), DenyReason::runaway, "orders sent would exceed orders intended: trading halted");
  // What the execution hooks see of an added order (the slippage check cools its symbol down on a breach).
  TradeCandidate c;
  c.strategy = p.rec.strategy.str();
  c.symbol = p.rec.symbol;
  c.side = p.rec.side;
  c.confidence = 1.0;
  c.price = price;
  c.stop_loss = p.rec.stop_price;
  c.take_profit = p.rec.take_price;
  c.quote_qty = qty * price;
  c.leverage = p.rec.leverage;
  c.source = p.strategy == SIZE_MAX ? "model" : "strategy";
  p.entry_order = submit(std::move(rec), &c);  // checked above: submit() checks only exits
}

void EventDrivenExecutor::strategy_exits(Position& p, std::size_t strategy, std::uint32_t sig) {
  const kernels::Genome& g = engine_.strategies()[strategy].genome;
  const bool is_long = p.rec.side == Side::buy;
  const bool exit_rule = (is_long && (sig & kernels::kSignalExitLong) != 0) || (!is_long && (sig & kernels::kSignalExitShort) != 0);
  const bool max_hold = g.max_hold > 0 && p.rec.bars_held >= g.max_hold;
  if (max_hold || exit_rule) exit_submit(p, OrderPurpose::exit);
}

void EventDrivenExecutor::stop_move(Position& p, double stop, OrderPurpose purpose) {
  if (stop == p.rec.stop_price && purpose == p.stop_purpose) return;
  const double trigger = tick_round(p.rec.symbol, stop);
  auto w = working_.find(p.stop_order);
  if (w == working_.end()) {
    // No stop at the venue yet (a strategy without stops whose stop a subsystem sets): place one.
    if (p.stop_order != 0) return;
    p.rec.stop_price = stop;
    p.stop_purpose = purpose;
    p.stop_order = submit(reduce_order(p, OrderType::stop_market, purpose, p.rec.qty, trigger), nullptr);
    return;
  }
  // Moved at the venue in place: the order keeps its id, and its ledger row is written when it ends (the venue holds the
  // live trigger; a restart reads it back from there).
  if (exchange_.amend_stop(p.stop_order, trigger).outcome == SubmitOutcome::accepted) {
    w->second->rec.request.stop_price = trigger;
    w->second->rec.purpose = purpose;
    w->second->rec.updated = clock().now();
    p.rec.stop_price = stop;
    p.stop_purpose = purpose;
  }
}

void EventDrivenExecutor::take_move(Position& p, double take) {
  if (take == p.rec.take_price) return;
  const double trigger = tick_round(p.rec.symbol, take);
  auto w = working_.find(p.take_order);
  if (w == working_.end()) {
    if (p.take_order != 0) return;
    p.rec.take_price = take;
    p.take_order = submit(reduce_order(p, OrderType::take_profit_market, OrderPurpose::take_profit, p.rec.qty, trigger), nullptr);
    return;
  }
  if (exchange_.amend_stop(p.take_order, trigger).outcome == SubmitOutcome::accepted) {
    w->second->rec.request.stop_price = trigger;
    w->second->rec.updated = clock().now();
    p.rec.take_price = take;
  }
}

void EventDrivenExecutor::monitor(Position& p, const MarketBarClosed& bar) {
  ++p.rec.bars_held;
  const bool is_long = p.rec.side == Side::buy;
  const double dirp = is_long ? 1.0 : -1.0;
  // Trailing: the best price of the bars so far, the stop for the next bar from it (the backtester's rule).
  p.best = is_long ? (bar.high > p.best ? bar.high : p.best) : (bar.low < p.best ? bar.low : p.best);
  const kernels::Genome& g = p.genome;
  if (g.trail_atr > 0.0f && p.exit_order == 0) {
    const double trail = p.best - dirp * g.trail_atr * p.atr_signal;
    const bool stop_on = g.stop_atr > 0.0f;
    const bool use_trail = !stop_on || dirp * (trail - p.stop_fixed) > 0;
    double stop = use_trail ? trail : p.stop_fixed;
    OrderPurpose purpose = use_trail ? OrderPurpose::trailing_stop : OrderPurpose::stop_loss;
    if (p.stop_lock > 0 && dirp * (p.stop_lock - stop) > 0) stop = p.stop_lock, purpose = OrderPurpose::trailing_stop;
    stop_move(p, stop, purpose);
  }
  // TWAP: the next child order of a sliced entry, once the previous one has filled.
  if (p.slices_left > 0 && p.entry_order == 0 && p.exit_order == 0) {
    --p.slices_left;
    DecisionTrace trace;
    trace.push_back({"execution_order_type_selection", "BASELINE", SubsystemMode::enforced, "",
                     "slice " + std::to_string(p.slices_total - p.slices_left) + " of " + std::to_string(p.slices_total), true,
                     "TWAP child order of the entry"});
    scale_in(p, p.slice_qty, bar.close, std::move(trace));
    return;
  }
  // Post-trade hooks on the open position (only when some subsystem answers them).
  if (hooks_.active(Hook::post_trade_position_classification) || hooks_.active(Hook::post_trade_amplification_check)) {
    PositionSnapshot snap;
    snap.position_id = p.rec.position_id;
    snap.strategy = p.rec.strategy.str();
    snap.symbol = p.rec.symbol;
    snap.side = p.rec.side;
    snap.qty = p.rec.qty;
    snap.entry_price = p.rec.entry_price;
    snap.mark_price = bar.close;
    snap.stop_price = p.rec.stop_price;
    snap.take_price = p.rec.take_price;
    snap.initial_risk = p.initial_risk;
    snap.notional = p.rec.qty * bar.close;
    const double profit = (bar.close - p.rec.entry_price) * dirp;
    snap.r_multiple = p.initial_risk > 0 ? profit / p.initial_risk : 0;
    p.peak_profit = std::max(p.peak_profit, profit);
    snap.drawdown_pct = p.rec.entry_price > 0 ? 100.0 * (p.peak_profit - profit) / p.rec.entry_price : 0;
    snap.bars_held = p.rec.bars_held;
    if (p.strategy != SIZE_MAX) {
      const std::uint32_t sig = engine_.rule_signals(p.strategy, p.slot, nullptr);
      snap.signal_present = (sig & (is_long ? kernels::kSignalLong : kernels::kSignalShort)) != 0;
    } else {
      snap.signal_present = slot(p.slot).model_dir == (is_long ? 1 : -1);
    }
    DecisionTrace trace;
    const ClassificationAnswer c = hooks_.position_classification(snap, ClassificationAnswer{p.classification, false}, &trace);
    p.classification = c.label;
    if (c.exit && p.exit_order == 0) {
      exit_submit(p, OrderPurpose::subsystem_exit);
      return;
    }
    const AmplificationAnswer a = hooks_.amplification_check(snap, AmplificationAnswer{}, &trace);
    if (p.exit_order != 0) return;
    // A stop moved in the position's favour (never loosened, never beyond the mark) and a new target beyond the mark.
    if (a.stop_price > 0 && (p.rec.stop_price <= 0 || dirp * (a.stop_price - p.rec.stop_price) > 0) && dirp * (bar.close - a.stop_price) > 0) {
      p.stop_lock = a.stop_price;
      stop_move(p, a.stop_price, OrderPurpose::trailing_stop);
    }
    if (a.take_price > 0 && dirp * (a.take_price - bar.close) > 0) {
      p.take_set = a.take_price;
      take_move(p, a.take_price);
    }
    if (a.scale_in > 0 && p.entry_order == 0) {
      scale_in(p, p.rec.qty * a.scale_in, bar.close, std::move(trace));
      return;
    }
    if (a.take_partial > 0) {
      // A partial take: reduce-only market order for that fraction of the position.
      OrderRecord rec = reduce_order(p, OrderType::market, OrderPurpose::exit, p.rec.qty * a.take_partial, 0.0);
      rec.trace = trace;
      submit(std::move(rec), nullptr);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Entries

void EventDrivenExecutor::signal_event(std::string_view strategy, const Symbol& symbol, Side side, double confidence, double price,
                                       double stop_loss, double take_profit) {
  SignalGenerated ev;
  ev.strategy = StrategyId(strategy.substr(0, StrategyId::kCapacity));
  ev.symbol = symbol;
  ev.side = side;
  ev.confidence = confidence;
  ev.price = price;
  ev.stop_loss = stop_loss;
  ev.take_profit = take_profit;
  publish(std::move(ev));
}

void EventDrivenExecutor::entry_consider(TradingSignal signal) {
  ++stats_.signals;
  const Policy& policy = policy_.get();
  const std::uint32_t si = engine_.slot_intern(signal.symbol);
  const double price = slot(si).last_price;
  const bool from_strategy = signal.source == "strategy";
  std::size_t strategy_index = SIZE_MAX;
  kernels::Genome genome{};
  if (from_strategy) {
    strategy_index = signal.strategy_index < engine_.strategies().size() ? signal.strategy_index : engine_.strategy_index(signal.strategy);
    if (strategy_index == SIZE_MAX) throw std::invalid_argument("executor: a signal from strategy " + signal.strategy + ", which is not trading");
    genome = engine_.strategies()[strategy_index].genome;
  } else {
    genome.stop_atr = static_cast<float>(options_.model_stop_atr);
    genome.take_atr = static_cast<float>(options_.model_take_atr);
    genome.max_hold = std::max<std::int32_t>(1, signal.horizon);
  }
  const double dir = signal.side == Side::buy ? 1.0 : -1.0;
  if (!from_strategy) {
    if (signal.atr == 0) signal.atr = engine_.atr(si);
    if (!(std::isfinite(signal.atr) && signal.atr > 0)) return;  // no ATR yet: no stop to size against
  }
  const double stop_loss = genome.stop_atr > 0.0f ? price - dir * genome.stop_atr * signal.atr : 0.0;
  const double take_profit = genome.take_atr > 0.0f ? price + dir * genome.take_atr * signal.atr : 0.0;
  signal_event(signal.strategy, signal.symbol, signal.side, signal.confidence, price, stop_loss, take_profit);
  if (denial_fold(si, strategy_index, signal.side)) return;
  TradeCandidate c;
  c.strategy = signal.strategy;
  c.symbol = signal.symbol;
  c.side = signal.side;
  c.confidence = signal.confidence;
  c.price = price;
  c.stop_loss = stop_loss;
  c.take_profit = take_profit;
  c.leverage = options_.leverage;
  c.source = signal.source;
  OrderRecord rec;
  rec.request.order_id = next_order_id();
  rec.request.client_order_id = order_client_id(rec.request.order_id);
  rec.request.strategy = StrategyId(signal.strategy.substr(0, StrategyId::kCapacity));
  rec.request.symbol = signal.symbol;
  rec.request.side = signal.side;
  rec.request.type = OrderType::market;
  rec.request.leverage = options_.leverage;
  rec.purpose = OrderPurpose::entry;
  rec.created = rec.updated = clock().now();
  rec.policy_version = policy.version;
  rec.confidence = signal.confidence;
  DecisionTrace& trace = rec.trace;

  // 1. Universe filter.
  UniverseAnswer u{!universe_known_ || slot(si).in_universe};
  trace.push_back({"pre_trade_universe_filter", "BASELINE", SubsystemMode::enforced, "", u.tradable ? "tradable" : "excluded", true,
                   universe_known_ ? "top " + std::to_string(universe_size_) + " of the last ranking" : "every symbol (no ranking yet)"});
  u = hooks_.universe_filter(c, u, &trace);
  if (!u.tradable) return deny(std::move(rec), DenyReason::universe_filter, signal.symbol.str() + " is not in the tradable universe");
  // 2. Confidence threshold.
  const double base_threshold = config_.orchestrator_enabled ? policy.min_confidence : 0.0;
  ConfidenceAnswer conf{std::clamp(base_threshold + coordination_.threshold_shift, 0.0, 1.0), signal.confidence};
  conf = hooks_.confidence_adjustment(c, conf, &trace);
  rec.confidence = c.confidence = conf.confidence;
  if (conf.confidence < conf.threshold)
    return deny(std::move(rec), DenyReason::low_confidence, "confidence " + num(conf.confidence) + " < threshold " + num(conf.threshold));
  if (pause_entries_) return deny(std::move(rec), DenyReason::service_degraded, "self-healing paused new entries");
  if (coordination_.block_entries) return deny(std::move(rec), DenyReason::system_risk, "AI-HFOS blocks new entries");
  // 3. Risk and portfolio checks of the subsystems.
  CheckAnswer risk = hooks_.risk_check(c, CheckAnswer{}, &trace);
  if (!risk.allow) return deny(std::move(rec), risk.reason, "pre_trade_risk_check denied");
  CheckAnswer port = hooks_.portfolio_check(c, CheckAnswer{}, &trace);
  if (!port.allow) return deny(std::move(rec), port.reason, "pre_trade_portfolio_check denied");
  // 4. Sizing: a strategy spends its genome's fraction of its sleeve (as in its backtest); a model risks the policy's
  // fraction of equity at its stop, capped at an equal share of the leveraged equity per open position.
  double quote = 0;
  std::string basis;
  if (from_strategy) {
    const Sleeve& sl = sleeve(si, strategy_index);
    quote = static_cast<double>(genome.size) * sl.cash;
    basis = "size " + num(genome.size) + " x sleeve cash " + num(sl.cash);
  } else {
    const double equity = exchange_.equity();
    const double stop_dist = genome.stop_atr * signal.atr;
    const double cap = equity * options_.leverage / static_cast<double>(std::max<std::int64_t>(1, policy.max_open_positions));
    quote = stop_dist > 0 ? std::min(cap, policy.max_risk_per_trade * equity / stop_dist * price) : 0.0;
    basis = "risk " + num(policy.max_risk_per_trade) + " of equity at a " + num(genome.stop_atr) + " ATR stop, cap " + num(cap);
  }
  const double scale = risk.size_scale * port.size_scale * coordination_.size_scale;
  if (scale != 1.0) quote *= scale;
  trace.push_back({"pre_trade_position_sizing", "BASELINE", SubsystemMode::enforced, "", "quote " + num(quote), true, basis});
  c.quote_qty = quote;
  SizingAnswer size = hooks_.position_sizing(c, SizingAnswer{quote}, &trace);
  // What the account can fund: the venue's free margin at this leverage, with room for a fee of up to 0.5%. Never ask
  // for more (the venue would reject it); the cap is a decision of its own in the trace.
  const double free = exchange_.quote_free();
  const double fundable = free > 0 ? free * options_.leverage / (1.0 + kFeeHeadroom * options_.leverage) : 0.0;
  if (!(fundable > 0))
    return deny(std::move(rec), DenyReason::insufficient_balance, "no free margin: free " + num(free) + " " + exchange_.quote_asset());
  if (size.quote_qty > fundable) {
    trace.push_back({"pre_trade_position_sizing", "BASELINE", SubsystemMode::enforced, "quote " + num(size.quote_qty), "quote " + num(fundable),
                     true, "capped at what the free margin funds: free " + num(free) + " x leverage " + num(options_.leverage)});
    size.quote_qty = fundable;
  }
  c.quote_qty = size.quote_qty;
  // 5. Order type.
  OrderTypeAnswer type = hooks_.order_type_selection(c, OrderTypeAnswer{}, &trace);
  rec.request.type = type.type;
  // TWAP: the first of `slices` equal child orders now, the others one a bar as each fills (EventDrivenExecutor::monitor).
  const std::int32_t slices = std::max<std::int32_t>(1, type.slices);
  const double order_quote = size.quote_qty / static_cast<double>(slices);
  if (type.type == OrderType::limit) {
    rec.request.price = tick_round(signal.symbol, type.limit_price);  // on the venue's tick
    rec.request.qty = rec.request.price > 0 ? order_quote / rec.request.price : 0.0;
  } else {
    rec.request.quote_qty = order_quote;
  }
  // 6. The Risk OS, always on.
  RiskOrder ro;
  ro.strategy = signal.strategy;
  ro.symbol = signal.symbol;
  ro.side = signal.side;
  ro.type = rec.request.type;
  ro.qty = rec.request.qty;
  ro.quote_qty = rec.request.quote_qty;
  ro.price = rec.request.price;
  ro.last_price = price;
  ro.stop_loss = c.stop_loss;
  ro.leverage = rec.request.leverage;
  const RiskAccount account = risk_account(&signal.symbol);
  if (auto denial = risk_.check(ro, account, policy)) {
    trace.push_back({"risk_os", "RISK_OS", SubsystemMode::enforced, "", std::string(enum_name(denial->reason)), true, denial->detail});
    return deny(std::move(rec), denial->reason, denial->detail);
  }
  trace.push_back({"risk_os", "RISK_OS", SubsystemMode::enforced, "", "pass", true, std::string(enum_name(risk_.state()))});
  if (!risk_.order_sent()) return deny(std::move(rec), DenyReason::runaway, "orders sent would exceed orders intended: trading halted");

  auto pos = std::make_unique<Position>();
  pos->rec.position_id = ++last_position_id_;
  pos->rec.strategy = rec.request.strategy;
  pos->rec.symbol = signal.symbol;
  pos->rec.side = signal.side;
  pos->rec.leverage = rec.request.leverage;
  pos->strategy = strategy_index;
  pos->genome = genome;
  pos->atr_signal = signal.atr;
  pos->slot = si;
  if (slices > 1) {
    pos->slices_total = slices;
    pos->slices_left = slices - 1;
    pos->slice_qty = price > 0 ? order_quote / price : 0.0;
  }
  rec.position_id = pos->rec.position_id;
  Position& p = *pos;
  position_set(si, std::move(pos));
  denial_run_end(si, strategy_index);  // a decision other than the repeated denial
  p.entry_order = submit(std::move(rec), &c);
  if (p.entry_order == 0) position_erase(si);  // rejected by the venue
}

void EventDrivenExecutor::deny(OrderRecord rec, DenyReason reason, const std::string& detail) {
  ++stats_.denied;
  rec.status = OrderStatus::denied;
  rec.deny_reason = reason;
  rec.detail = detail;
  rec.updated = clock().now();
  // The same strategy denied on the same symbol and side for the same reason as at its last decision there (a rule that
  // keeps firing while the symbol is held, or while the book is full): one denial that repeats, not a row and an event
  // a bar. An order for that strategy and symbol ends the run.
  const std::size_t strategy = engine_.strategy_index(rec.request.strategy.str());
  const std::uint64_t key = (std::uint64_t{engine_.slot_intern(rec.request.symbol)} << 32) |
                            (strategy == SIZE_MAX ? 0xFFFFFFFFull : static_cast<std::uint64_t>(strategy));
  auto run = denial_runs_.find(key);
  if (run != denial_runs_.end() && run->second.rec.deny_reason == reason && run->second.rec.request.side == rec.request.side &&
      rec.request.order_id == last_order_id_) {
    --last_order_id_;  // the id drawn for this decision is not used
    ++stats_.denials_repeated;
    DenialRun& r = run->second;
    ++r.rec.repeats;
    r.rec.updated = rec.updated;
    r.dirty = true;
    // Decided again under the state of now: the next bar may repeat it without the pipeline if nothing changes.
    r.state_version = state_version_;
    r.policy_version = rec.policy_version;
    r.risk_state = risk_.state();
    return;
  }
  if (run != denial_runs_.end()) {
    if (run->second.dirty) ledger_.order_put(run->second.rec);
    denial_runs_.erase(run);
  }
  ledger_.order_put(rec);
  OrderDenied ev;
  ev.order_id = rec.request.order_id;
  ev.strategy = rec.request.strategy;
  ev.symbol = rec.request.symbol;
  ev.side = rec.request.side;
  ev.qty = rec.request.qty;
  ev.price = rec.request.price;
  ev.reason = reason;
  ev.policy_version = rec.policy_version;
  ev.detail = detail;
  publish(std::move(ev));
  denial_runs_.emplace(key, DenialRun{std::move(rec), false, state_version_, policy_.get().version, risk_.state()});
}

namespace {
/// Denials decided by the executor's and the Risk OS's state alone (positions, lists, universe, brake, drawdown state),
/// not by the bar's price, the equity, the time or the signal's confidence: while that state is unchanged, the
/// decision repeats.
bool denial_state_only(DenyReason r) {
  switch (r) {
    case DenyReason::duplicate_position:
    case DenyReason::max_open_positions:
    case DenyReason::strategy_blocked:
    case DenyReason::strategy_not_allowed:
    case DenyReason::universe_filter:
    case DenyReason::emergency_brake:
    case DenyReason::trading_halted:
    case DenyReason::runaway:
    case DenyReason::daily_drawdown:
    case DenyReason::open_drawdown:
    case DenyReason::service_degraded:
    case DenyReason::hook_blocked:
    case DenyReason::system_risk:
      return true;
    default:
      return false;
  }
}
}  // namespace

void EventDrivenExecutor::denial_run_end(std::uint32_t slot_index, std::size_t strategy) {
  const std::uint64_t key = (std::uint64_t{slot_index} << 32) | (strategy == SIZE_MAX ? 0xFFFFFFFFull : static_cast<std::uint64_t>(strategy));
  const auto run = denial_runs_.find(key);
  if (run == denial_runs_.end()) return;
  if (run->second.dirty) ledger_.order_put(run->second.rec);
  denial_runs_.erase(run);
}

bool EventDrivenExecutor::denial_fold(std::uint32_t slot_index, std::size_t strategy, Side side) {
  // Only a strategy's signals: its confidence is constant (a model's varies bar to bar, and with it the threshold check).
  if (!options_.fold_repeated_denials || strategy == SIZE_MAX) return false;
  const std::uint64_t key = (std::uint64_t{slot_index} << 32) | (strategy == SIZE_MAX ? 0xFFFFFFFFull : static_cast<std::uint64_t>(strategy));
  const auto run = denial_runs_.find(key);
  if (run == denial_runs_.end()) return false;
  DenialRun& r = run->second;
  // The same denial as at the last decision for this strategy and symbol, under the same state: decided without
  // running the pipeline again (a subsystem answering a pre-trade hook could decide otherwise, so none may be active).
  if (r.rec.request.side != side || !r.rec.deny_reason || !denial_state_only(*r.rec.deny_reason) ||
      r.state_version != state_version_ || r.policy_version != policy_.get().version || r.risk_state != risk_.state())
    return false;
  // (The order type is chosen after every check that can deny for the state alone, so it cannot change such a denial.)
  for (Hook h : {Hook::pre_trade_universe_filter, Hook::pre_trade_confidence_adjustment, Hook::pre_trade_risk_check,
                 Hook::pre_trade_portfolio_check, Hook::pre_trade_position_sizing})
    if (hooks_.active(h)) return false;
  ++stats_.denied;
  ++stats_.denials_repeated;
  ++stats_.denials_decided_again;
  ++r.rec.repeats;
  r.rec.updated = clock().now();
  r.dirty = true;
  return true;
}

void EventDrivenExecutor::denial_runs_flush(bool all) {
  for (auto it = denial_runs_.begin(); it != denial_runs_.end();) {
    if (it->second.dirty) {
      ledger_.order_put(it->second.rec);
      it->second.dirty = false;
    }
    if (all) it = denial_runs_.erase(it);
    else ++it;
  }
}

std::uint64_t EventDrivenExecutor::submit(OrderRecord rec, const TradeCandidate* candidate) {
  if (rec.purpose == OrderPurpose::entry) ++state_version_;  // the Risk OS's entry-rate window moves
  if (rec.created == 0) rec.created = rec.updated = clock().now();
  if (rec.policy_version == 0) rec.policy_version = policy_.get().version;
  if (rec.purpose != OrderPurpose::entry) {
    // Exits, stops and targets pass the Risk OS too (only invalid values or a runaway halt stop them).
    RiskOrder ro;
    ro.strategy = rec.request.strategy.str();
    ro.symbol = rec.request.symbol;
    ro.side = rec.request.side;
    ro.type = rec.request.type;
    ro.qty = rec.request.qty;
    ro.price = rec.request.type == OrderType::limit ? rec.request.price : rec.request.stop_price;
    ro.last_price = slot(rec.request.symbol).last_price;
    ro.leverage = rec.request.leverage;
    ro.reduces = true;
    if (auto denial = risk_.check(ro, risk_account(nullptr), policy_.get())) {
      rec.trace.push_back({"risk_os", "RISK_OS", SubsystemMode::enforced, "", std::string(enum_name(denial->reason)), true, denial->detail});
      deny(std::move(rec), denial->reason, denial->detail);
      return 0;
    }
    if (!risk_.order_sent()) {
      deny(std::move(rec), DenyReason::runaway, "orders sent would exceed orders intended: trading halted");
      return 0;
    }
  }
  ++stats_.orders;
  const SubmitResult r = exchange_.submit(rec.request);
  rec.updated = clock().now();
  const std::uint64_t id = rec.request.order_id;
  if (r.outcome == SubmitOutcome::rejected) {
    ++stats_.rejected;
    rec.status = OrderStatus::rejected;
    rec.venue_code = r.code;
    rec.detail = r.message;
    ledger_.order_put(rec);
    OrderRejected ev;
    ev.order_id = id;
    ev.symbol = rec.request.symbol;
    ev.side = rec.request.side;
    ev.qty = rec.request.qty;
    ev.exchange_code = r.code;
    ev.message = r.message;
    publish(std::move(ev));
    return 0;
  }
  if (r.outcome == SubmitOutcome::unknown) {
    ++stats_.unknown;
    rec.detail = "outcome unknown: " + r.message + " (reconciled with the venue later; never resent)";
  }
  // A fill may already have arrived inside submit() (never for the paper exchange, possible for a live venue).
  auto& w = working_[id];
  if (!w) {
    w = std::make_unique<Working>();
    rec.status = r.outcome == SubmitOutcome::unknown ? OrderStatus::pending_new : OrderStatus::accepted;
    w->rec = std::move(rec);
  }
  if (candidate != nullptr) w->candidate = *candidate;
  w->expected_price = slot(w->rec.request.symbol).last_price;
  ledger_.order_put(w->rec);
  OrderSubmitted ev;
  ev.order_id = id;
  ev.strategy = w->rec.request.strategy;
  ev.symbol = w->rec.request.symbol;
  ev.side = w->rec.request.side;
  ev.type = w->rec.request.type;
  ev.qty = w->rec.request.qty;
  ev.price = w->rec.request.type == OrderType::limit ? w->rec.request.price : w->rec.request.stop_price;
  ev.leverage = w->rec.request.leverage;
  publish(std::move(ev));
  return id;
}

Result<std::uint64_t> EventDrivenExecutor::position_exit(const Symbol& symbol, const std::string& reason) {
  const std::uint32_t si = engine_.slot_find(symbol);
  Position* p = si < slots_.size() ? slots_[si].position.get() : nullptr;
  if (p == nullptr || !p->entered) return Error{ErrorCode::not_found, symbol.str() + " has no open position"};
  if (p->exit_order != 0)
    return Error{ErrorCode::bad_state, symbol.str() + ": its exit (order " + std::to_string(p->exit_order) + ") is already on its way"};
  OrderRecord rec = reduce_order(*p, OrderType::market, OrderPurpose::manual, p->rec.qty, 0.0);
  rec.trace.push_back({"manual", "OPERATOR", SubsystemMode::enforced, "", "exit", true, reason});
  p->exit_order = submit(std::move(rec), nullptr);
  if (p->exit_order == 0) return Error{ErrorCode::blocked, symbol.str() + ": the exit was refused (see the ledger)"};
  ++state_version_;
  return p->exit_order;
}

void EventDrivenExecutor::exit_submit(Position& p, OrderPurpose purpose, OrderType type) {
  p.exit_order = submit(reduce_order(p, type, purpose, p.rec.qty, 0.0), nullptr);
}

OrderRecord EventDrivenExecutor::reduce_order(const Position& p, OrderType type, OrderPurpose purpose, double qty, double trigger) {
  OrderRecord rec;
  rec.request.order_id = next_order_id();
  rec.request.client_order_id = order_client_id(rec.request.order_id);
  rec.request.strategy = p.rec.strategy;
  rec.request.symbol = p.rec.symbol;
  rec.request.side = opposite(p.rec.side);
  rec.request.type = type;
  rec.request.qty = qty;
  rec.request.stop_price = trigger;
  rec.request.reduce_only = true;
  rec.request.leverage = p.rec.leverage;
  rec.purpose = purpose;
  rec.position_id = p.rec.position_id;
  return rec;
}

double EventDrivenExecutor::tick_round(const Symbol& symbol, double price) {
  SymbolSlot& s = slot(symbol);
  if (s.tick < 0) {
    const auto f = exchange_.filters(symbol);
    s.tick = f.ok() ? f.value().tick_size : 0.0;
  }
  return s.tick > 0 ? price_to_tick(price, s.tick) : price;
}

void EventDrivenExecutor::protective_place(Position& p) {
  const kernels::Genome& g = p.genome;
  const bool is_long = p.rec.side == Side::buy;
  const double dirp = is_long ? 1.0 : -1.0;
  const double fill = p.rec.entry_price;
  const bool stop_on = g.stop_atr > 0.0f;
  // The backtester's expressions, so both engines place the same stops.
  p.stop_fixed = stop_on ? fill - dirp * g.stop_atr * p.atr_signal : 0.0;
  double take = g.take_atr > 0.0f ? fill + dirp * g.take_atr * p.atr_signal : 0.0;
  double stop = p.stop_fixed;
  p.stop_purpose = OrderPurpose::stop_loss;
  if (g.trail_atr > 0.0f) {
    const double trail = p.best - dirp * g.trail_atr * p.atr_signal;
    if (!stop_on || dirp * (trail - p.stop_fixed) > 0) {
      stop = trail;
      p.stop_purpose = OrderPurpose::trailing_stop;
    }
  }
  // The risk of the first entry: a scale-in or a further fill keeps the R of the position's thesis.
  if (p.initial_risk == 0) p.initial_risk = (stop_on || g.trail_atr > 0.0f) ? std::abs(fill - stop) : 0.0;
  take = p.take_set > 0 ? p.take_set : take;
  if (p.stop_lock > 0 && (stop == 0 || dirp * (p.stop_lock - stop) > 0)) {
    stop = p.stop_lock;
    p.stop_purpose = OrderPurpose::trailing_stop;
  }
  auto place = [&](OrderType type, double trigger, OrderPurpose purpose) -> std::uint64_t {
    return submit(reduce_order(p, type, purpose, p.rec.qty, tick_round(p.rec.symbol, trigger)), nullptr);
  };
  if (stop_on || g.trail_atr > 0.0f || p.stop_lock > 0) {
    p.rec.stop_price = stop;
    p.stop_order = place(OrderType::stop_market, stop, p.stop_purpose);
  }
  if (take > 0) {
    p.rec.take_price = take;
    p.take_order = place(OrderType::take_profit_market, take, OrderPurpose::take_profit);
  }
}

void EventDrivenExecutor::protective_cancel(Position& p) {
  for (std::uint64_t* id : {&p.stop_order, &p.take_order, &p.exit_order}) {
    if (*id == 0) continue;
    auto w = working_.find(*id);
    if (w != working_.end()) {
      exchange_.cancel(*id);
      w->second->rec.status = OrderStatus::canceled;
      w->second->rec.updated = clock().now();
      w->second->rec.detail = "position closed";
      ledger_.order_put(w->second->rec);
      working_.erase(w);
    }
    *id = 0;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Fills and order updates

void EventDrivenExecutor::fill_process(const Fill& fill) {
  ++stats_.fills;
  if (fill.order_id == 0) {  // a liquidation by the venue
    Position* held = slot(fill.symbol).position.get();
    if (held == nullptr) return;
    Position& p = *held;
    Sleeve& sl = sleeve_of(p);
    sl.cash = sl.cash + (signed_qty(p.rec.side, fill.qty) * fill.price - fill.fee);
    ledger_.fill_add(FillRecord{fill, p.rec.strategy});
    position_close(p, fill.price, CloseReason::liquidation, fill.ts);
    return;
  }
  auto wit = working_.find(fill.order_id);
  if (wit == working_.end()) {
    spdlog::warn("executor: a fill for order {} that is not working (ignored after recording)", fill.order_id);
    ledger_.fill_add(FillRecord{fill, StrategyId{}});
    return;
  }
  Working& w = *wit->second;
  OrderRecord& rec = w.rec;
  const double before = rec.filled_qty;
  rec.filled_qty += fill.qty;
  rec.avg_price = (rec.avg_price * before + fill.price * fill.qty) / rec.filled_qty;
  rec.fee += fill.fee;
  rec.status = fill.remaining_qty > 0 ? OrderStatus::partially_filled : OrderStatus::filled;
  rec.updated = clock().now();
  ledger_.fill_add(FillRecord{fill, rec.request.strategy});
  {
    OrderFilled ev;
    ev.order_id = fill.order_id;
    ev.symbol = fill.symbol;
    ev.side = fill.side;
    ev.qty = fill.qty;
    ev.price = fill.price;
    ev.fee = fill.fee;
    ev.remaining_qty = fill.remaining_qty;
    publish(std::move(ev));
  }
  // Slippage check against the price the decision saw.
  if (rec.purpose == OrderPurpose::entry && hooks_.active(Hook::execution_slippage_check) && w.expected_price > 0) {
    const double bps = (fill.price - w.expected_price) / w.expected_price * 1e4 * (fill.side == Side::buy ? 1.0 : -1.0);
    const SlippageAnswer s = hooks_.slippage_check(w.candidate, SlippageAnswer{bps, false}, &rec.trace);
    if (s.cancel_remaining && fill.remaining_qty > 0) {
      exchange_.cancel(fill.order_id);
      rec.status = OrderStatus::canceled;
      rec.detail = "rest cancelled by the slippage check";
    }
  }
  const std::uint64_t order_id = fill.order_id;
  const OrderPurpose purpose = rec.purpose;
  Position* p = slot(fill.symbol).position.get();
  if (p != nullptr && p->rec.position_id != rec.position_id) p = nullptr;
  const bool done = order_status_final(rec.status);
  ledger_.order_put(rec);
  if (done) working_.erase(wit);  // `w` and `rec` are gone from here on

  if (p == nullptr) return;
  Sleeve& sl = sleeve_of(*p);
  const double sq = signed_qty(fill.side, fill.qty);
  if (purpose == OrderPurpose::entry) {
    // A strategy's return is on its sleeve (as in its backtest); a model's on the account it trades.
    if (!p->entered) p->entry_cash = p->strategy == SIZE_MAX ? exchange_.equity() : sl.cash;
    // The backtester's cash update: cash - (q * fill + fee).
    sl.cash = sl.cash - (sq * fill.price + fill.fee);
    const double old_qty = p->rec.qty;
    p->rec.qty += fill.qty;
    p->rec.entry_price = old_qty > 0 ? (p->rec.entry_price * old_qty + fill.price * fill.qty) / p->rec.qty : fill.price;
    p->rec.entry_fee += fill.fee;
    if (!p->entered) {
      p->entered = true;
      p->rec.entry_time = fill.ts;
      p->best = fill.price;
      PositionOpened ev;
      ev.position_id = p->rec.position_id;
      ev.strategy = p->rec.strategy;
      ev.symbol = p->rec.symbol;
      ev.side = p->rec.side;
      ev.qty = p->rec.qty;
      ev.entry_price = p->rec.entry_price;
      ev.leverage = p->rec.leverage;
      publish(std::move(ev));
    } else {
      // A further part of the entry: the protective orders follow the new size.
      protective_cancel(*p);
    }
    if (done) p->entry_order = 0;
    protective_place(*p);
    ledger_.position_put(p->rec);
    if (final_open_ >= 0 && fill.ts >= final_open_ && p->exit_order == 0) exit_submit(*p, OrderPurpose::end_of_replay, OrderType::market_on_close);
    return;
  }
  // An exit, stop, target or risk exit: the backtester's cash update, cash + (q * fill - fee) with q the position's
  // signed quantity (the part this fill closes).
  sl.cash = sl.cash + (signed_qty(p->rec.side, fill.qty) * fill.price - fill.fee);
  p->exit_fill_value += fill.price * fill.qty;
  p->exit_fill_qty += fill.qty;
  p->exit_fees += fill.fee;
  p->rec.qty -= fill.qty;
  if (order_id == p->stop_order && done) p->stop_order = 0;
  if (order_id == p->take_order && done) p->take_order = 0;
  if (order_id == p->exit_order && done) p->exit_order = 0;
  if (p->rec.qty <= 1e-12 * p->exit_fill_qty) {  // exact for whole exits; tolerant of partial-fill rounding
    if (purpose == OrderPurpose::stop_loss || purpose == OrderPurpose::trailing_stop) {
      risk_.stop_out(p->rec.symbol);  // cooldown and guard
      ++state_version_;
    }
    CloseReason reason = close_reason(purpose);
    if (purpose == OrderPurpose::exit && p->genome.max_hold > 0 && p->rec.bars_held >= p->genome.max_hold) reason = CloseReason::max_hold;
    // One exit fill: its price exactly; several: their quantity-weighted average.
    const double exit_price = p->exit_fill_qty == fill.qty ? fill.price : p->exit_fill_value / p->exit_fill_qty;
    position_close(*p, exit_price, reason, fill.ts);
  } else {
    ledger_.position_put(p->rec);
  }
}

void EventDrivenExecutor::position_close(Position& p, double exit_price, CloseReason reason, TimeNs ts) {
  ++stats_.trades;
  protective_cancel(p);
  const Sleeve& sl = sleeve_of(p);
  ClosedTrade t;
  t.position_id = p.rec.position_id;
  t.strategy = p.rec.strategy;
  t.symbol = p.rec.symbol;
  t.side = p.rec.side;
  t.qty = p.exit_fill_qty;
  t.entry_price = p.rec.entry_price;
  t.exit_price = exit_price;
  t.fees = p.rec.entry_fee + p.exit_fees;
  if (p.strategy != SIZE_MAX) {
    t.pnl = sl.cash - p.entry_cash;  // the backtester's trade P&L: sleeve cash after the exit minus before the entry
  } else {
    const double dir = p.rec.side == Side::buy ? 1.0 : -1.0;
    t.pnl = dir * (p.exit_fill_value - p.rec.entry_price * p.exit_fill_qty) - t.fees;
  }
  t.ret = p.entry_cash != 0 ? t.pnl / p.entry_cash : 0.0;
  t.entry_time = p.rec.entry_time;
  t.exit_time = ts;
  t.reason = reason;
  t.classification = p.classification;
  ledger_.trade_add(t);
  PositionClosed ev;
  ev.position_id = t.position_id;
  ev.symbol = t.symbol;
  ev.side = t.side;
  ev.qty = t.qty;
  ev.entry_price = t.entry_price;
  ev.exit_price = t.exit_price;
  ev.realized_pnl = t.pnl;
  ev.reason = reason;
  publish(std::move(ev));
  position_erase(p.slot);  // `p` is gone
}

void EventDrivenExecutor::order_update_process(const OrderState& order) {
  const std::uint64_t id = order.request.order_id;
  auto wit = working_.find(id);
  if (wit == working_.end()) return;
  OrderRecord& rec = wit->second->rec;
  rec.status = order.status;
  rec.updated = clock().now();
  if (!order.reason.empty()) rec.detail = order.reason;
  ledger_.order_put(rec);
  if (!order_status_final(order.status)) return;
  const std::uint64_t position_id = rec.position_id;
  const OrderPurpose purpose = rec.purpose;
  const bool filled_some = rec.filled_qty > 0;
  working_.erase(wit);
  Position* p = slot(order.request.symbol).position.get();
  if (p == nullptr || p->rec.position_id != position_id) return;
  if (p->stop_order == id) p->stop_order = 0;
  if (p->take_order == id) p->take_order = 0;
  if (p->exit_order == id) p->exit_order = 0;
  if (purpose == OrderPurpose::entry) {
    p->entry_order = 0;
    if (!p->entered && !filled_some) position_erase(p->slot);  // the entry ended without a fill: no position
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Cycles, accounts, periodic hooks

double EventDrivenExecutor::open_loss() const {
  double loss = 0;
  for (const SymbolSlot& sl : slots_) {
    const Position* p = sl.position.get();
    if (p == nullptr || !p->entered) continue;
    const double pnl = (sl.last_price - p->rec.entry_price) * signed_qty(p->rec.side, p->rec.qty);
    if (pnl < 0) loss -= pnl;
  }
  return loss;
}

RiskAccount EventDrivenExecutor::risk_account(const Symbol* symbol) const {
  RiskAccount a;
  a.equity = exchange_.equity();
  a.day_start_equity = day_start_equity_;
  a.open_loss = open_loss();
  a.open_positions = static_cast<std::int64_t>(open_positions_);
  if (symbol != nullptr) {
    const std::uint32_t si = engine_.slot_find(*symbol);
    a.symbol_has_position = si < slots_.size() && slots_[si].position != nullptr;
  }
  return a;
}

SystemSnapshot EventDrivenExecutor::system_snapshot() {
  SystemSnapshot s;
  s.now = clock().now();
  s.equity = exchange_.equity();
  s.daily_drawdown_pct = day_start_equity_ > 0 ? 100.0 * (day_start_equity_ - s.equity) / day_start_equity_ : 0;
  s.open_drawdown_pct = s.equity > 0 ? 100.0 * open_loss() / s.equity : 0;
  double gross = 0;
  for (const SymbolSlot& sl : slots_)
    if (sl.position) gross += sl.position->rec.qty * sl.last_price;
  s.exposure = s.equity > 0 ? gross / s.equity : 0;
  s.open_positions = static_cast<std::int64_t>(open_positions_);
  s.risk_mode = policy_.get().risk_mode;
  s.regime = regime_;
  s.trading_state = std::string(enum_name(risk_.state()));
  s.hook_failures = hooks_.failures();
  return s;
}

void EventDrivenExecutor::periodic_healing(TimeNs) {
  DecisionTrace trace;
  // Asked from "not paused": Self-Healing answers its whole state each time, so a pause ends when it is lowered to
  // OBSERVE or OFF, not at the next restart.
  const HealingAnswer h = hooks_.self_healing_check(system_snapshot(), HealingAnswer{}, &trace);
  if (h.pause_entries != pause_entries_) ++state_version_;
  pause_entries_ = h.pause_entries;
}

void EventDrivenExecutor::periodic_coordination(TimeNs) {
  DecisionTrace trace;
  coordination_ = hooks_.ai_hfos_coordination(system_snapshot(), CoordinationAnswer{}, &trace);
  ++state_version_;
}

void EventDrivenExecutor::cycle_process() {
  if (!cycle_open_) return;  // no bar since the last end: nothing to decide, mark or commit twice
  cycle_open_ = false;
  ++stats_.cycles;
  // Model signals for the bars that closed at this time (decided at the close, filled at the next open).
  const bool final_bar = final_open_ >= 0 && cycle_time_ > final_open_;
  if (engine_.model_source() != nullptr && cycle_time_ >= trading_from_ && !final_bar) {
    for (SymbolSlot& sl : slots_) sl.model_dir = 0;  // a symbol without a signal now has no model thesis
    for (const TradingSignal& s : engine_.model_source()->signals(cycle_time_)) {
      SymbolSlot& sl = slot(s.symbol);
      sl.model_dir = s.side == Side::buy ? 1 : -1;
      if (!sl.position) entry_consider(s);  // a held symbol (one-way venue) takes no new entry
    }
  }
  if (!final_bar)  // a model's position exits after its horizon
    positions_each([this](Position& p) {
      if (p.strategy == SIZE_MAX && p.entered && p.exit_order == 0 && p.genome.max_hold > 0 && p.rec.bars_held >= p.genome.max_hold)
        exit_submit(p, OrderPurpose::exit);
    });
  // Drawdowns and the Risk OS.
  const double equity = exchange_.equity();
  const std::int64_t day = cycle_time_ / (86'400 * kNsPerSecond);
  if (day != day_) {
    day_ = day;
    day_start_equity_ = equity;
  }
  if (risk_.mark(risk_account(nullptr), policy_.get())) {
    // Open drawdown limit: close the worst open position (one per cycle while the breach lasts).
    Position* worst = nullptr;
    double worst_pnl = std::numeric_limits<double>::infinity();
    for (SymbolSlot& sl : slots_) {
      Position* p = sl.position.get();
      if (p == nullptr || !p->entered || p->exit_order != 0) continue;
      const double pnl = (sl.last_price - p->rec.entry_price) * signed_qty(p->rec.side, p->rec.qty);
      if (pnl < worst_pnl) worst_pnl = pnl, worst = p;
    }
    if (worst != nullptr) exit_submit(*worst, OrderPurpose::risk_exit);
  }
  // Orders with an unknown outcome: ask the venue after a few cycles, never resend.
  std::vector<std::uint64_t> unknown;
  for (auto& [id, w] : working_)
    if (w->rec.status == OrderStatus::pending_new && ++w->unknown_cycles >= options_.reconcile_cycles) unknown.push_back(id);
  for (std::uint64_t id : unknown) {
    auto truth = exchange_.query(id);
    if (truth) {
      order_update_process(*truth);
    } else {
      OrderState gone;
      gone.request = working_.at(id)->rec.request;
      gone.status = OrderStatus::expired;
      gone.reason = "the venue does not know the order after " + std::to_string(options_.reconcile_cycles) + " cycles (never sent)";
      order_update_process(gone);
    }
  }
  // The equity curve.
  const SystemSnapshot snap = system_snapshot();
  EquityPoint e;
  e.ts = cycle_time_;
  e.equity = equity;
  e.cash = exchange_.quote_free();
  e.exposure = snap.exposure;
  e.open_positions = static_cast<std::int32_t>(open_positions_);
  e.risk_mode = snap.risk_mode;
  e.regime = regime_;
  e.trading_state = snap.trading_state;
  ledger_.equity_add(e);
  if (++uncommitted_cycles_ >= options_.commit_every) {
    denial_runs_flush(false);
    if (before_commit_) before_commit_();
    ledger_.commit();
    uncommitted_cycles_ = 0;
  }
}

}  // namespace qtos
