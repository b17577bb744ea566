// Restart state of the signal engine and the executor (runtime/util/checkpoint.hpp): exact JSON of everything a run
// carries from one bar cycle to the next, written before each commit and restored after a restart.
#include <stdexcept>
#include <string>

#include "runtime/executor/executor.hpp"
#include "runtime/executor/executor_detail.hpp"
#include "runtime/util/checkpoint.hpp"

namespace qtos {
namespace {

using boost::json::array;
using boost::json::object;
using boost::json::value;

const object& as_object(const value& v, const char* what) {
  if (!v.is_object()) throw std::runtime_error(std::string("checkpoint: ") + what + " is not an object");
  return v.get_object();
}

std::int64_t index_ckpt(std::size_t i) { return i == SIZE_MAX ? -1 : static_cast<std::int64_t>(i); }
std::size_t index_restore(std::int64_t i) { return i < 0 ? SIZE_MAX : static_cast<std::size_t>(i); }

object candidate_ckpt(const TradeCandidate& c) {
  return {{"strategy", c.strategy},           {"symbol", c.symbol.str()},         {"side", static_cast<int>(c.side)},
          {"confidence", ckpt::num(c.confidence)}, {"price", ckpt::num(c.price)},       {"stop_loss", ckpt::num(c.stop_loss)},
          {"take_profit", ckpt::num(c.take_profit)}, {"quote_qty", ckpt::num(c.quote_qty)}, {"leverage", ckpt::num(c.leverage)},
          {"source", c.source}};
}

TradeCandidate candidate_restore(const object& o) {
  TradeCandidate c;
  c.strategy = ckpt::str(o, "strategy");
  c.symbol = Symbol(ckpt::str(o, "symbol"));
  c.side = static_cast<Side>(ckpt::i64(o, "side"));
  c.confidence = ckpt::dbl(o, "confidence");
  c.price = ckpt::dbl(o, "price");
  c.stop_loss = ckpt::dbl(o, "stop_loss");
  c.take_profit = ckpt::dbl(o, "take_profit");
  c.quote_qty = ckpt::dbl(o, "quote_qty");
  c.leverage = ckpt::dbl(o, "leverage");
  c.source = ckpt::str(o, "source");
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// The engine

object AITradingEngine::checkpoint() const {
  array strategies;
  for (std::size_t i = 0; i < strategies_.size(); ++i) {
    const LiveStrategy& s = strategies_[i];
    array symbols;
    for (const std::string& sym : s.symbols) symbols.push_back(value(sym));
    strategies.push_back(object{{"id", s.id},
                                {"genome", ckpt::pod(s.genome)},
                                {"capital", ckpt::num(s.capital)},
                                {"symbols", std::move(symbols)},
                                {"enabled", enabled_[i] != 0}});
  }
  array symbols;
  for (const SymbolState& st : symbols_) {
    array f, traded;
    for (double x : st.f) f.push_back(ckpt::num(x));
    for (std::uint8_t t : st.traded_by) traded.push_back(t != 0);
    symbols.push_back(object{{"symbol", st.symbol.str()},
                             {"features", ckpt::pod(st.features)},
                             {"f", std::move(f)},
                             {"close", ckpt::num(st.close)},
                             {"open_time", st.open_time},
                             {"seen", st.seen},
                             {"traded_by", std::move(traded)},
                             {"planes", st.planes}});
  }
  return {{"strategies", std::move(strategies)}, {"symbols", std::move(symbols)}};
}

void AITradingEngine::restore(const object& state) {
  if (!strategies_.empty() || !symbols_.empty()) throw std::logic_error("AITradingEngine::restore: the engine already has strategies or bars");
  for (const value& v : ckpt::arr(state, "strategies")) {
    const object& o = as_object(v, "a strategy");
    LiveStrategy s;
    s.id = ckpt::str(o, "id");
    s.genome = ckpt::pod_get<kernels::Genome>(ckpt::at(o, "genome"), "genome of " + s.id);
    s.capital = ckpt::dbl(o, "capital");
    for (const value& sym : ckpt::arr(o, "symbols")) {
      if (!sym.is_string()) throw std::runtime_error("checkpoint: a symbol of strategy " + s.id + " is not a string");
      s.symbols.emplace_back(sym.get_string());
    }
    const bool enabled = ckpt::flag(o, "enabled");
    strategy_add(std::move(s));
    enabled_.back() = enabled ? 1 : 0;
  }
  for (const value& v : ckpt::arr(state, "symbols")) {
    const object& o = as_object(v, "a symbol");
    const std::uint32_t slot = slot_intern(Symbol(ckpt::str(o, "symbol")));
    SymbolState& st = symbols_[slot];
    st.features = ckpt::pod_get<StrategyFeatureState>(ckpt::at(o, "features"), "features of " + st.symbol.str());
    const array& f = ckpt::arr(o, "f");
    if (f.size() != std::size(st.f)) throw std::runtime_error("checkpoint: features of " + st.symbol.str() + " have the wrong count");
    for (std::size_t i = 0; i < f.size(); ++i) st.f[i] = ckpt::num_get(f[i], "a feature");
    st.close = ckpt::dbl(o, "close");
    st.open_time = ckpt::i64(o, "open_time");
    st.seen = ckpt::flag(o, "seen");
    const array& traded = ckpt::arr(o, "traded_by");
    if (traded.size() != strategies_.size()) throw std::runtime_error("checkpoint: traded_by of " + st.symbol.str() + " has the wrong count");
    for (std::size_t i = 0; i < traded.size(); ++i) st.traded_by[i] = traded[i].is_bool() && traded[i].get_bool() ? 1 : 0;
    st.planes = static_cast<std::uint32_t>(ckpt::u64(o, "planes"));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The executor

object EventDrivenExecutor::checkpoint() const {
  array slots;
  for (const SymbolSlot& s : slots_) {
    array sleeves;
    for (std::size_t i = 0; i < s.sleeves.size(); ++i)
      sleeves.push_back(object{{"cash", ckpt::num(s.sleeves[i].cash)}, {"set", s.sleeve_set[i] != 0}});
    object slot{{"last_price", ckpt::num(s.last_price)},
                {"tick", ckpt::num(s.tick)},
                {"in_universe", s.in_universe},
                {"sleeves", std::move(sleeves)},
                {"model_sleeve", ckpt::num(s.model_sleeve.cash)},
                {"model_sleeve_set", s.model_sleeve_set != 0},
                {"model_dir", s.model_dir}};
    if (const Position* p = s.position.get()) {
      const PositionRecord& r = p->rec;
      slot["position"] = object{
          {"id", r.position_id},         {"strategy_id", r.strategy.str()},   {"symbol", r.symbol.str()},
          {"side", static_cast<int>(r.side)}, {"qty", ckpt::num(r.qty)},       {"entry_price", ckpt::num(r.entry_price)},
          {"entry_fee", ckpt::num(r.entry_fee)}, {"entry_time", r.entry_time}, {"stop_price", ckpt::num(r.stop_price)},
          {"take_price", ckpt::num(r.take_price)}, {"leverage", ckpt::num(r.leverage)}, {"bars_held", r.bars_held},
          {"strategy", index_ckpt(p->strategy)}, {"genome", ckpt::pod(p->genome)}, {"atr_signal", ckpt::num(p->atr_signal)},
          {"best", ckpt::num(p->best)},       {"stop_fixed", ckpt::num(p->stop_fixed)}, {"initial_risk", ckpt::num(p->initial_risk)},
          {"entry_cash", ckpt::num(p->entry_cash)}, {"peak_profit", ckpt::num(p->peak_profit)}, {"entry_order", p->entry_order},
          {"stop_order", p->stop_order},     {"take_order", p->take_order},       {"exit_order", p->exit_order},
          {"stop_purpose", static_cast<int>(p->stop_purpose)}, {"entered", p->entered},
          {"exit_fill_value", ckpt::num(p->exit_fill_value)}, {"exit_fill_qty", ckpt::num(p->exit_fill_qty)},
          {"exit_fees", ckpt::num(p->exit_fees)}, {"classification", p->classification}, {"slot", p->slot},
          {"stop_lock", ckpt::num(p->stop_lock)}, {"take_set", ckpt::num(p->take_set)}, {"slices_left", p->slices_left},
          {"slice_qty", ckpt::num(p->slice_qty)}, {"slices_total", p->slices_total}};
    }
    slots.push_back(std::move(slot));
  }
  array working;
  for (const auto& [id, w] : working_)
    working.push_back(object{{"id", id},
                             {"candidate", candidate_ckpt(w->candidate)},
                             {"expected_price", ckpt::num(w->expected_price)},
                             {"unknown_cycles", w->unknown_cycles}});
  array denials;
  for (const auto& [key, run] : denial_runs_)
    denials.push_back(object{{"key", key},
                             {"order_id", run.rec.request.order_id},
                             {"state_version", run.state_version},
                             {"policy_version", run.policy_version},
                             {"risk_state", static_cast<int>(run.risk_state)}});
  return {{"slots", std::move(slots)},
          {"working", std::move(working)},
          {"denials", std::move(denials)},
          {"stats", ckpt::pod(stats_)},
          {"universe_size", universe_size_},
          {"universe_known", universe_known_},
          {"regime", static_cast<int>(regime_)},
          {"state_version", state_version_},
          {"last_order_id", last_order_id_},
          {"last_position_id", last_position_id_},
          {"initial_equity", ckpt::num(initial_equity_)},
          {"day_start_equity", ckpt::num(day_start_equity_)},
          {"share", ckpt::num(share_)},
          {"day", day_},
          {"pause_entries", pause_entries_},
          {"coordination", ckpt::pod(coordination_)}};
}

void EventDrivenExecutor::restore(const object& state) {
  slots_.clear();
  open_positions_ = 0;
  for (const value& v : ckpt::arr(state, "slots")) {
    const object& o = as_object(v, "a symbol slot");
    SymbolSlot& s = slots_.emplace_back();
    s.last_price = ckpt::dbl(o, "last_price");
    s.tick = ckpt::dbl(o, "tick");
    s.in_universe = ckpt::flag(o, "in_universe");
    for (const value& sv : ckpt::arr(o, "sleeves")) {
      const object& so = as_object(sv, "a sleeve");
      s.sleeves.push_back(Sleeve{ckpt::dbl(so, "cash")});
      s.sleeve_set.push_back(ckpt::flag(so, "set") ? 1 : 0);
    }
    s.model_sleeve.cash = ckpt::dbl(o, "model_sleeve");
    s.model_sleeve_set = ckpt::flag(o, "model_sleeve_set") ? 1 : 0;
    s.model_dir = static_cast<std::int8_t>(ckpt::i64(o, "model_dir"));
    if (const value* pv = o.if_contains("position")) {
      const object& po = as_object(*pv, "a position");
      auto p = std::make_unique<Position>();
      PositionRecord& r = p->rec;
      r.position_id = ckpt::u64(po, "id");
      r.strategy = StrategyId(ckpt::str(po, "strategy_id"));
      r.symbol = Symbol(ckpt::str(po, "symbol"));
      r.side = static_cast<Side>(ckpt::i64(po, "side"));
      r.qty = ckpt::dbl(po, "qty");
      r.entry_price = ckpt::dbl(po, "entry_price");
      r.entry_fee = ckpt::dbl(po, "entry_fee");
      r.entry_time = ckpt::i64(po, "entry_time");
      r.stop_price = ckpt::dbl(po, "stop_price");
      r.take_price = ckpt::dbl(po, "take_price");
      r.leverage = ckpt::dbl(po, "leverage");
      r.bars_held = static_cast<std::int32_t>(ckpt::i64(po, "bars_held"));
      p->strategy = index_restore(ckpt::i64(po, "strategy"));
      if (p->strategy != SIZE_MAX && p->strategy >= engine_.strategies().size())
        throw std::runtime_error("checkpoint: position " + std::to_string(r.position_id) + " names a strategy the engine does not have");
      p->genome = ckpt::pod_get<kernels::Genome>(ckpt::at(po, "genome"), "a position's genome");
      p->atr_signal = ckpt::dbl(po, "atr_signal");
      p->best = ckpt::dbl(po, "best");
      p->stop_fixed = ckpt::dbl(po, "stop_fixed");
      p->initial_risk = ckpt::dbl(po, "initial_risk");
      p->entry_cash = ckpt::dbl(po, "entry_cash");
      p->peak_profit = ckpt::dbl(po, "peak_profit");
      p->entry_order = ckpt::u64(po, "entry_order");
      p->stop_order = ckpt::u64(po, "stop_order");
      p->take_order = ckpt::u64(po, "take_order");
      p->exit_order = ckpt::u64(po, "exit_order");
      p->stop_purpose = static_cast<OrderPurpose>(ckpt::i64(po, "stop_purpose"));
      p->entered = ckpt::flag(po, "entered");
      p->exit_fill_value = ckpt::dbl(po, "exit_fill_value");
      p->exit_fill_qty = ckpt::dbl(po, "exit_fill_qty");
      p->exit_fees = ckpt::dbl(po, "exit_fees");
      p->classification = ckpt::str(po, "classification");
      p->slot = static_cast<std::uint32_t>(ckpt::u64(po, "slot"));
      p->stop_lock = ckpt::dbl(po, "stop_lock");
      p->take_set = ckpt::dbl(po, "take_set");
      p->slices_left = static_cast<std::int32_t>(ckpt::i64(po, "slices_left"));
      p->slice_qty = ckpt::dbl(po, "slice_qty");
      p->slices_total = static_cast<std::int32_t>(ckpt::i64(po, "slices_total"));
      s.position = std::move(p);
      ++open_positions_;
    }
  }
  working_.clear();
  for (const value& v : ckpt::arr(state, "working")) {
    const object& o = as_object(v, "a working order");
    const std::uint64_t id = ckpt::u64(o, "id");
    auto rec = ledger_.order_get(id);
    if (!rec) throw std::runtime_error("checkpoint: working order " + std::to_string(id) + " is not in the ledger " + ledger_.path());
    auto w = std::make_unique<Working>();
    w->rec = std::move(*rec);
    w->candidate = candidate_restore(ckpt::obj(o, "candidate"));
    w->expected_price = ckpt::dbl(o, "expected_price");
    w->unknown_cycles = static_cast<std::int32_t>(ckpt::i64(o, "unknown_cycles"));
    working_.emplace(id, std::move(w));
  }
  denial_runs_.clear();
  for (const value& v : ckpt::arr(state, "denials")) {
    const object& o = as_object(v, "a denial");
    const std::uint64_t id = ckpt::u64(o, "order_id");
    auto rec = ledger_.order_get(id);
    if (!rec) throw std::runtime_error("checkpoint: denial " + std::to_string(id) + " is not in the ledger " + ledger_.path());
    denial_runs_.emplace(ckpt::u64(o, "key"), DenialRun{std::move(*rec), false, ckpt::u64(o, "state_version"), ckpt::u64(o, "policy_version"),
                                                       static_cast<TradingState>(ckpt::i64(o, "risk_state"))});
  }
  stats_ = ckpt::pod_get<ExecutorStats>(ckpt::at(state, "stats"), "stats");
  universe_size_ = ckpt::u64(state, "universe_size");
  universe_known_ = ckpt::flag(state, "universe_known");
  regime_ = static_cast<Regime>(ckpt::i64(state, "regime"));
  state_version_ = ckpt::u64(state, "state_version");
  last_order_id_ = ckpt::u64(state, "last_order_id");
  last_position_id_ = ckpt::u64(state, "last_position_id");
  initial_equity_ = ckpt::dbl(state, "initial_equity");
  day_start_equity_ = ckpt::dbl(state, "day_start_equity");
  share_ = ckpt::dbl(state, "share");
  day_ = ckpt::i64(state, "day");
  pause_entries_ = ckpt::flag(state, "pause_entries");
  coordination_ = ckpt::pod_get<CoordinationAnswer>(ckpt::at(state, "coordination"), "coordination");
}

}  // namespace qtos
