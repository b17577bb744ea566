// The Execution Layer Manager: order type, TWAP slicing and the slippage check (docs/subsystems/AELM.md).
#include "runtime/subsystems/execution_layer.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cpu/kernels/indicators.hpp"
#include "runtime/executor/decision_trace.hpp"

namespace qtos {

namespace {

std::string num(double v) { return decision_number(v); }

void option_check(bool ok, const char* name, double value, const char* expected) {
  if (!ok) throw std::invalid_argument(std::string("AELM option ") + name + ": " + num(value) + " is out of range; expected " + expected);
}

}  // namespace

ExecutionLayerOptions ExecutionLayerOptions::from_config(const Config& config) {
  ExecutionLayerOptions o;
  o.smart_exec = config.aelm_smart_exec;
  o.max_participation = config.aelm_max_participation;
  o.max_slices = config.aelm_max_slices;
  o.max_slippage_bps = config.aelm_max_slippage_bps;
  o.cooldown_bars = config.aelm_cooldown_bars;
  o.limit_volatility_pct = config.aelm_limit_volatility_pct;
  o.limit_spread_bps = config.aelm_limit_spread_bps;
  return o;
}

ExecutionLayerManager::ExecutionLayerManager(EventBus& bus, const Config& config, ExecutionLayerOptions options,
                                             const HfosDirectiveSource* hfos, std::string log_dir)
    : AiSubsystem("AELM", config.subsystem(Subsystem::aelm).active() ? config.subsystem(Subsystem::aelm).mode : SubsystemMode::off, bus,
                  std::move(log_dir)),
      options_(options),
      hfos_(hfos) {
  option_check(options_.max_participation > 0 && options_.max_participation <= 1, "max_participation", options_.max_participation, "(0, 1]");
  option_check(options_.max_slices >= 1 && options_.max_slices <= 1000, "max_slices", static_cast<double>(options_.max_slices), "1..1000");
  option_check(options_.max_slippage_bps > 0, "max_slippage_bps", options_.max_slippage_bps, "> 0");
  option_check(options_.cooldown_bars >= 0, "cooldown_bars", static_cast<double>(options_.cooldown_bars), ">= 0");
  option_check(options_.limit_volatility_pct > 0, "limit_volatility_pct", options_.limit_volatility_pct, "> 0");
  option_check(options_.limit_spread_bps > 0, "limit_spread_bps", options_.limit_spread_bps, "> 0");
  option_check(options_.window >= 1, "window", options_.window, ">= 1");
}

void ExecutionLayerManager::on_start() {
  subscribe<MarketBarClosed>([this](const MarketBarClosed& b) { on_bar(b); });
}

void ExecutionLayerManager::on_bar(const MarketBarClosed& b) {
  if (!(b.close > 0) || !(b.high >= b.low) || !(b.low > 0)) return;
  State& s = symbols_[b.symbol];
  ExecutionMarket& m = s.m;
  ++m.bars;
  // A running mean over the first `window` bars, then Wilder's average: O(1) a bar.
  const double k = 1.0 / static_cast<double>(std::min<std::int64_t>(m.bars, options_.window));
  const double tr = m.bars > 1 ? std::max({b.high - b.low, std::abs(b.high - m.close), std::abs(b.low - m.close)}) : b.high - b.low;
  m.atr_pct += (100.0 * tr / b.close - m.atr_pct) * k;
  // Bars carry no quotes: the spread is the Corwin-Schultz estimate from the highs and lows of consecutive bars.
  if (m.bars > 1) {
    const double cs = kernels::corwin_schultz(s.prev_high, s.prev_low, b.high, b.low);
    const double kk = 1.0 / static_cast<double>(std::min<std::int64_t>(m.bars - 1, options_.window));
    m.spread_bps += (1e4 * cs - m.spread_bps) * kk;
  }
  const double qv = b.quote_volume_known() ? b.quote_volume : b.volume * b.close;
  if (std::isfinite(qv) && qv >= 0) m.quote_volume += (qv - m.quote_volume) * k;
  m.close = b.close;
  if (m.cooldown_until > 0 && m.bars >= m.cooldown_until) {  // the cooldown ended with this bar
    m.cooldown_until = 0;
    cooling_.erase(std::remove(cooling_.begin(), cooling_.end(), b.symbol), cooling_.end());
  }
  s.prev_high = b.high;
  s.prev_low = b.low;
}

const ExecutionMarket* ExecutionLayerManager::market(const Symbol& symbol) const {
  const auto it = symbols_.find(symbol);
  return it == symbols_.end() ? nullptr : &it->second.m;
}

OrderTypeAnswer ExecutionLayerManager::order_type_choose(const TradeCandidate& c, std::string& why) const {
  OrderTypeAnswer a;
  const ExecutionMarket* m = market(c.symbol);
  const double price = c.price > 0 ? c.price : (m != nullptr ? m->close : 0.0);
  const HfosDirective* d = hfos_ != nullptr ? &hfos_->directive() : nullptr;
  if (d != nullptr && d->preferred_order_type == OrderType::limit) {
    a.type = OrderType::limit;
    why = d->mode >= SystemRiskMode::safe ? "Enforcing LIMIT orders (" + std::string(enum_name(d->mode)) + " mode active)"
                                          : "Enforcing LIMIT orders (AI-HFOS prefers LIMIT" + (d->reason.empty() ? "" : ": " + d->reason) + ")";
  } else if (m != nullptr && m->bars >= options_.window && m->atr_pct > options_.limit_volatility_pct) {
    a.type = OrderType::limit;
    why = "LIMIT: volatility ATR " + num(m->atr_pct) + "% > " + num(options_.limit_volatility_pct) + "%";
  } else if (m != nullptr && m->bars >= options_.window && m->spread_bps > options_.limit_spread_bps) {
    a.type = OrderType::limit;
    why = "LIMIT: spread proxy " + num(m->spread_bps) + " bps > " + num(options_.limit_spread_bps) + " bps";
  } else {
    why = m != nullptr ? "MARKET: ATR " + num(m->atr_pct) + "%, spread proxy " + num(m->spread_bps) + " bps" : "MARKET: no bar seen";
  }
  if (a.type == OrderType::limit) {
    if (price > 0) {
      a.limit_price = price;  // the maker side: at the last close, never through the book
      why += ", at the last close " + num(price);
    } else {
      a.type = OrderType::market;  // no price to rest at
      why += "; no price known: MARKET";
    }
  }
  if (options_.smart_exec && m != nullptr && m->quote_volume > 0 && c.quote_qty > 0) {
    const double per_bar = options_.max_participation * m->quote_volume;
    if (c.quote_qty > per_bar) {
      const double want = std::ceil(c.quote_qty / per_bar);
      a.slices = static_cast<std::int32_t>(std::min(want, static_cast<double>(options_.max_slices)));
      why += "; TWAP in " + std::to_string(a.slices) + " slices: " + num(c.quote_qty) + " > " + num(options_.max_participation * 100) +
             "% of the average bar quote volume " + num(m->quote_volume) + (want > static_cast<double>(options_.max_slices) ? " (capped)" : "");
    }
  }
  return a;
}

std::optional<OrderTypeAnswer> ExecutionLayerManager::order_type_selection(const TradeCandidate& c, const OrderTypeAnswer&, std::string& why) {
  const OrderTypeAnswer a = order_type_choose(c, why);
  const std::string would = soft() ? "" : "would: ";
  // Decisions on change only: AI-HFOS's preference system-wide, and each symbol's type or slicing.
  const bool hfos_limit = hfos_ != nullptr && hfos_->directive().preferred_order_type == OrderType::limit;
  if (hfos_limit != hfos_limit_) {
    hfos_limit_ = hfos_limit;
    decide("ORDER_TYPE", would + (hfos_limit ? why.substr(0, why.find(", at the last close")) : "AI-HFOS allows MARKET orders again"), soft());
  }
  State& s = symbols_[c.symbol];
  if (a.type != s.last_type || (a.slices > 1) != (s.last_slices > 1)) {
    if (!hfos_limit || a.slices > 1) decide(a.slices > 1 ? "SLICE" : "ORDER_TYPE", would + std::string(c.symbol.view()) + " " + why, soft(), c.symbol);
    s.last_type = a.type;
    s.last_slices = a.slices;
  }
  return a;
}

std::optional<SlippageAnswer> ExecutionLayerManager::slippage_check(const TradeCandidate& c, const SlippageAnswer& current, std::string& why) {
  const double bps = current.slippage_bps;
  if (!(bps > options_.max_slippage_bps)) return std::nullopt;  // within the cap: no opinion
  ++breaches_;
  why = "slippage " + num(bps) + " bps > cap " + num(options_.max_slippage_bps) + " bps";
  // The executor passes no candidate for a scale-in or a TWAP child order (an empty symbol): the rest is still
  // cancelled, but there is no symbol to cool down.
  std::string cooldown = "symbol unknown: no cooldown";
  if (!c.symbol.empty()) {
    // Counted in every mode; the pipeline applies the cooldown's denial only in ENFORCED.
    State& s = symbols_[c.symbol];
    s.m.cooldown_until = s.m.bars + options_.cooldown_bars;
    if (std::find(cooling_.begin(), cooling_.end(), c.symbol) == cooling_.end()) cooling_.push_back(c.symbol);
    cooldown = "no entry for " + std::to_string(options_.cooldown_bars) + " bars";
  }
  decide("SLIPPAGE_BREACH",
         std::string(hard() ? "" : "would: ") + (c.symbol.empty() ? std::string("an added") : std::string(c.symbol.view())) + " entry filled " +
             num(bps) + " bps from the expected price (cap " + num(options_.max_slippage_bps) + "): rest cancelled, " + cooldown,
         hard(), c.symbol);
  return SlippageAnswer{bps, true};
}

std::optional<CheckAnswer> ExecutionLayerManager::risk_check(const TradeCandidate& c, const CheckAnswer&, std::string& why) {
  const auto it = symbols_.find(c.symbol);
  if (it == symbols_.end() || it->second.m.bars >= it->second.m.cooldown_until) return std::nullopt;
  why = "slippage cooldown: " + std::to_string(it->second.m.cooldown_until - it->second.m.bars) + " bars left";
  return CheckAnswer{false, DenyReason::slippage_cooldown, 1};
}

}  // namespace qtos
