// AI-HFOS: the system risk mode from drawdowns, health, regime, exposure and execution quality, and one directive.
#include "runtime/subsystems/ai_hfos.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace qtos {

namespace {

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", v);
  return b;
}
std::string num2(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}
std::string limit_text(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g%%", v);
  return b;
}
void join(std::string& into, const std::string& part) {
  if (!into.empty()) into += ", ";
  into += part;
}
bool alarming(Regime r) { return r == Regime::crash || r == Regime::high_volatility; }
bool trending(Regime r) { return r == Regime::trending_up || r == Regime::trending_down; }

}  // namespace

HfosOptions HfosOptions::from_config(const Config& c) {
  HfosOptions o;
  o.safe_dd_fraction = c.hfos_safe_dd;
  o.critical_dd_fraction = c.hfos_critical_dd;
  o.max_reject_rate = c.hfos_max_reject_rate;
  o.safe_size_scale = c.hfos_safe_scale;
  o.critical_size_scale = c.hfos_critical_scale;
  o.max_trade_pct = c.hfos_max_trade_pct;
  if (!(o.safe_dd_fraction < o.critical_dd_fraction))
    throw std::invalid_argument("QT_AI_HFOS_SAFE_DD (" + std::to_string(o.safe_dd_fraction) + ") must be below QT_AI_HFOS_CRITICAL_DD (" +
                                std::to_string(o.critical_dd_fraction) + ")");
  return o;
}

std::pair<SystemRiskMode, std::string> hfos_classify(const HfosInputs& in, SystemRiskMode current, const HfosOptions& o) {
  using M = SystemRiskMode;
  const double daily = in.max_daily_drawdown_pct > 0 ? std::max(0.0, in.daily_drawdown_pct) / in.max_daily_drawdown_pct : 0;
  const double open = in.max_open_drawdown_pct > 0 ? std::max(0.0, in.open_drawdown_pct) / in.max_open_drawdown_pct : 0;
  const double usage = std::max(daily, open);
  const std::string dd_text = daily >= open ? "daily DD " + pct(in.daily_drawdown_pct) + " of " + limit_text(in.max_daily_drawdown_pct)
                                            : "open DD " + pct(in.open_drawdown_pct) + " of " + limit_text(in.max_open_drawdown_pct);
  // The mode in force keeps its triggers lowered by the hysteresis: it is left only when they have fallen clearly.
  const double h_crit = current >= M::critical ? o.hysteresis : 0.0;
  const double h_safe = current >= M::safe ? o.hysteresis : 0.0;

  std::string why;
  if (usage >= o.critical_dd_fraction - h_crit) join(why, dd_text);
  if (!in.failing.empty()) join(why, in.failing + " failing");
  if (in.trading_state == "HALTED") join(why, "Risk OS halted");
  if (!why.empty()) return {M::critical, why};

  if (usage >= o.safe_dd_fraction - h_safe) join(why, dd_text);
  if (alarming(in.regime)) join(why, "regime " + std::string(enum_name(in.regime)));
  const double reject_limit = o.max_reject_rate * (current >= M::safe ? 0.5 : 1.0);
  if (in.reject_rate >= reject_limit && in.reject_rate > 0) join(why, "reject rate " + pct(100 * in.reject_rate));
  const double exposure_limit = (o.safe_exposure_fraction - h_safe) * in.max_leverage;
  if (in.max_leverage > 0 && in.exposure >= exposure_limit) join(why, "exposure " + num2(in.exposure) + "x of " + num2(in.max_leverage) + "x");
  if (in.trading_state == "REDUCING") join(why, "Risk OS reducing");
  if (!why.empty()) return {M::safe, why};

  const bool calm = usage < o.aggressive_dd_fraction && in.degraded.empty() && in.reject_rate < o.max_reject_rate / 4 &&
                    in.exposure < 0.5 * in.max_leverage && in.policy_risk_mode != RiskMode::defensive;
  if (trending(in.regime) && calm) return {M::aggressive, "regime " + std::string(enum_name(in.regime)) + ", " + dd_text + ", healthy"};
  std::string normal = dd_text;
  if (!in.degraded.empty()) join(normal, in.degraded + " degraded");
  return {M::normal, normal};
}

HfosDirective hfos_directive_for(SystemRiskMode mode, const HfosOptions& o) {
  HfosDirective d;
  d.mode = mode;
  switch (mode) {
    case SystemRiskMode::aggressive:
      d.size_scale = 1.0;
      d.confidence_threshold = o.aggressive_threshold_shift;
      break;
    case SystemRiskMode::normal:
      break;
    case SystemRiskMode::safe:
      d.size_scale = o.safe_size_scale;
      d.confidence_threshold = o.safe_threshold_shift;
      d.preferred_order_type = OrderType::limit;
      break;
    case SystemRiskMode::critical:
      d.size_scale = o.critical_size_scale;
      d.confidence_threshold = o.critical_threshold_shift;
      d.allow_new_trades = false;
      d.preferred_order_type = OrderType::limit;
      break;
  }
  return d;  // confidence_threshold holds the shift until the caller adds the policy's base
}

AiHfos::AiHfos(EventBus& bus, const Config& config, const PolicyStore& policy, HfosOptions options, std::string log_dir)
    : AiSubsystem("AI-HFOS", config.subsystem(Subsystem::hfos).active() ? config.subsystem(Subsystem::hfos).mode : SubsystemMode::off, bus,
                  std::move(log_dir)),
      config_(config),
      policy_(policy),
      options_(options) {
  if (!(options_.critical_size_scale > 0 && options_.critical_size_scale <= options_.safe_size_scale && options_.safe_size_scale <= 1))
    throw std::invalid_argument("AI-HFOS: size scales must satisfy 0 < critical (" + std::to_string(options_.critical_size_scale) +
                                ") <= safe (" + std::to_string(options_.safe_size_scale) + ") <= 1");
  directive_.confidence_threshold = config_.orchestrator_enabled ? policy_.get().min_confidence : 0.0;
}

AiHfos::AiHfos(EventBus& bus, const Config& config, const PolicyStore& policy, std::string log_dir)
    : AiHfos(bus, config, policy, HfosOptions::from_config(config), std::move(log_dir)) {}

bool AiHfos::answers(Hook hook) const {
  return hook == Hook::periodic_ai_hfos_coordination || hook == Hook::pre_trade_risk_check || hook == Hook::pre_trade_position_sizing;
}

void AiHfos::on_start() {
  subscribe<HealthStatusChanged>([this](const HealthStatusChanged& e) {
    const std::string who = e.component.str();
    if (who == name()) return;  // its own health is not an input
    const bool was_failing = health_.count(who) && health_[who] == HealthLevel::failing;
    health_[who] = e.current;
    dirty_ = true;
    if (was_failing != (e.current == HealthLevel::failing)) evaluate(false);
  });
  subscribe<RegimeChanged>([this](const RegimeChanged& e) {
    if (!e.symbol.empty()) {
      symbol_regime_[e.symbol] = e.current;
      return;
    }
    regime_ = e.current;
    dirty_ = true;
    evaluate(false);
  });
  subscribe<OrderSubmitted>([this](const OrderSubmitted&) { order_outcome(false); });
  subscribe<OrderRejected>([this](const OrderRejected&) { order_outcome(true); });
  subscribe<PolicyUpdated>([this](const PolicyUpdated&) {
    dirty_ = true;
    evaluate(false);
  });
}

void AiHfos::order_outcome(bool rejected) {
  const TimeNs now = clock().now();
  orders_.emplace_back(now, rejected);
  rejected_in_window_ += rejected;
  dirty_ = true;
  while (!orders_.empty() && orders_.front().first < now - options_.execution_window) {
    rejected_in_window_ -= orders_.front().second;
    orders_.pop_front();
  }
  if (rejected) evaluate(false);  // a burst of rejects escalates before the next tick
}

double AiHfos::reject_rate() const {
  if (static_cast<std::int64_t>(orders_.size()) < options_.min_orders) return 0;
  return static_cast<double>(rejected_in_window_) / static_cast<double>(orders_.size());
}

HfosInputs AiHfos::inputs_from(const SystemSnapshot& s) {
  const Policy& p = policy_.get();
  HfosInputs in;
  in.daily_drawdown_pct = s.daily_drawdown_pct;
  in.open_drawdown_pct = s.open_drawdown_pct;
  in.max_daily_drawdown_pct = p.max_daily_drawdown_pct;
  in.max_open_drawdown_pct = p.max_open_drawdown_pct;
  in.exposure = s.exposure;
  in.max_leverage = p.max_leverage;
  in.regime = regime_;
  in.policy_risk_mode = p.risk_mode;
  if (!s.trading_state.empty()) in.trading_state = s.trading_state;
  // The components' health: the bus's reports, and the snapshot's where the executor gives them.
  auto note = [&](const std::string& who, HealthLevel level) {
    if (who == name()) return;
    if (level == HealthLevel::failing && in.failing.empty()) in.failing = who;
    if (level == HealthLevel::degraded && in.degraded.empty()) in.degraded = who;
  };
  for (const auto& [who, level] : health_) note(who, level);
  for (const auto& [who, level] : s.health) note(who, level);
  in.reject_rate = reject_rate();
  return in;
}

void AiHfos::evaluate(bool periodic) {
  const HfosInputs in = inputs_from(last_snapshot_);
  const SystemRiskMode current = directive_.mode;
  auto [target, why] = hfos_classify(in, current, options_);
  SystemRiskMode next = current;
  if (target > current) {
    next = target;  // escalation at once
    calm_count_ = 0;
  } else if (target < current) {
    // A calmer mode must hold for calm_ticks periodic evaluations with new inputs in a row; an event never calms.
    if (periodic && ++calm_count_ >= options_.calm_ticks) {
      next = target;
      calm_count_ = 0;
    }
  } else {
    calm_count_ = 0;
  }

  HfosDirective d = hfos_directive_for(next, options_);
  const double base = config_.orchestrator_enabled ? policy_.get().min_confidence : 0.0;
  d.confidence_threshold = std::clamp(base + d.confidence_threshold, 0.0, 1.0);
  d.issued_at = clock().now();
  d.reason = next == target ? why : directive_.reason;
  const bool observe = !soft();
  if (next != current) {
    ++mode_changes_;
    decide("SET_MODE", std::string(observe ? "Would change system risk mode " : "System risk mode ") + std::string(enum_name(current)) + " -> " +
                           std::string(enum_name(next)) + " (" + d.reason + ")",
           soft());
  }
  if (d.confidence_threshold != directive_.confidence_threshold)
    decide("SET_THRESHOLD", std::string(observe ? "Would adjust" : "Adjusting") + " confidence threshold: " + num2(directive_.confidence_threshold) +
                                " -> " + num2(d.confidence_threshold),
           soft());
  if (d.size_scale != directive_.size_scale)
    decide("SET_SIZE_SCALE", std::string(observe ? "Would adjust" : "Adjusting") + " position size scale: " +
                                 std::to_string(static_cast<int>(std::lround(100 * directive_.size_scale))) + "% -> " +
                                 std::to_string(static_cast<int>(std::lround(100 * d.size_scale))) + "%",
           soft());
  if (d.allow_new_trades != directive_.allow_new_trades)
    decide(d.allow_new_trades ? "ALLOW_TRADES" : "BLOCK_TRADES",
           std::string(hard() ? "" : "Would be ") + (d.allow_new_trades ? "Allowing new trades again" : "Blocking new trades") + " (" +
               std::string(enum_name(next)) + ")",
           hard());
  if (d.preferred_order_type != directive_.preferred_order_type)
    decide("SET_ORDER_TYPE", std::string(observe ? "Would prefer " : "Preferring ") + std::string(enum_name(d.preferred_order_type)) + " orders",
           soft());
  directive_ = std::move(d);
}

const HfosDirective& AiHfos::directive() const {
  // What the other subsystems may act on: nothing in OBSERVE (the default directive), the soft parts in ADVISORY.
  if (!soft()) {
    effective_ = HfosDirective{};
    effective_.confidence_threshold = config_.orchestrator_enabled ? policy_.get().min_confidence : 0.0;
    return effective_;
  }
  effective_ = directive_;
  if (!hard()) effective_.allow_new_trades = true;
  return effective_;
}

namespace {
constexpr TimeNs kQuietTick = 3600 * kNsPerSecond;  // an unchanged snapshot counts as a new tick this often
}  // namespace

std::optional<CoordinationAnswer> AiHfos::ai_hfos_coordination(const SystemSnapshot& s, const CoordinationAnswer&, std::string& why) {
  // A tick with nothing new (a replay's clock fires the timer many times between two bars) answers as the last one did
  // and does not count towards calming down — but once an hour of clock time it does, so a quiet book (nothing trades
  // while entries are blocked: nothing changes) still calms down.
  const bool same = have_snapshot_ && !dirty_ && s.now < last_snapshot_.now + kQuietTick && s.daily_drawdown_pct == last_snapshot_.daily_drawdown_pct &&
                    s.open_drawdown_pct == last_snapshot_.open_drawdown_pct && s.exposure == last_snapshot_.exposure &&
                    s.equity == last_snapshot_.equity && s.regime == last_snapshot_.regime && s.trading_state == last_snapshot_.trading_state &&
                    s.open_positions == last_snapshot_.open_positions && s.health == last_snapshot_.health;
  if (!same) {
    last_snapshot_ = s;
    have_snapshot_ = true;
    if (s.regime != Regime::unknown) regime_ = s.regime;
    evaluate(true);
    dirty_ = false;
  }
  const double base = config_.orchestrator_enabled ? policy_.get().min_confidence : 0.0;
  CoordinationAnswer a;
  a.threshold_shift = directive_.confidence_threshold - base;
  a.size_scale = directive_.size_scale;
  // New trades are refused both by the executor's block (held until the next tick) and by the risk check (live between
  // ticks, when an event escalates the mode); both deny with SYSTEM_RISK: docs/subsystems/AI-HFOS.md.
  a.block_entries = !directive_.allow_new_trades;
  why = std::string(enum_name(directive_.mode)) + ": " + directive_.reason;
  return a;
}

std::optional<CheckAnswer> AiHfos::risk_check(const TradeCandidate& c, const CheckAnswer&, std::string& why) {
  if (!directive_.allow_new_trades) {
    why = "system risk " + std::string(enum_name(directive_.mode)) + ": no new trades (" + directive_.reason + ")";
    return CheckAnswer{false, DenyReason::system_risk, 1.0};
  }
  // The global scale is the coordination answer's; a candidate is scaled again only for what that scale does not know:
  // its own symbol in a crash or volatility shock while the market as a whole is not.
  if (!alarming(regime_) && !symbol_regime_.empty()) {
    const auto it = symbol_regime_.find(c.symbol);
    if (it != symbol_regime_.end() && alarming(it->second)) {
      why = c.symbol.str() + " regime " + std::string(enum_name(it->second));
      return CheckAnswer{true, DenyReason::system_risk, options_.symbol_regime_scale};
    }
  }
  return std::nullopt;
}

std::optional<SizingAnswer> AiHfos::position_sizing(const TradeCandidate& c, const SizingAnswer& v, std::string& why) {
  if (directive_.mode < SystemRiskMode::safe || !(last_snapshot_.equity > 0)) return std::nullopt;
  const double pct_cap = options_.max_trade_pct * (directive_.mode == SystemRiskMode::critical ? 0.5 : 1.0);
  const double cap = pct_cap / 100.0 * last_snapshot_.equity;
  if (!(v.quote_qty > cap)) return std::nullopt;
  (void)c;
  why = std::string(enum_name(directive_.mode)) + ": one trade at most " + limit_text(pct_cap) + " of equity (" + num2(cap) + ")";
  return SizingAnswer{cap};
}

}  // namespace qtos
