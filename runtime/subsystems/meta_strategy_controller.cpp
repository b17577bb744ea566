// MSC AI: regime -> risk mode (with hysteresis) -> policy, through the policy store's compare-and-set.
#include "runtime/subsystems/meta_strategy_controller.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace qtos {
namespace {

SubsystemMode msc_mode(const Config& config) {
  if (!config.msc_enabled) return SubsystemMode::off;
  // OBSERVATION caps every subsystem at OBSERVE, as Config does for those with a QT_AI_<X>_MODE.
  if (config.stage == IntegrationStage::observation) return SubsystemMode::observe;
  return config.msc_auto_mode ? SubsystemMode::enforced : SubsystemMode::advisory;
}

const MscOptions& checked(const MscOptions& o) {
  if (o.update_interval_s <= 0)
    throw std::invalid_argument("MSC-AI: update interval " + std::to_string(o.update_interval_s) + " s must be > 0 (QT_MSC_UPDATE_INTERVAL)");
  for (std::int64_t v : {o.aggressive_after_s, o.aggressive_exit_after_s, o.calm_after_s, o.health_hold_s})
    if (v < 0) throw std::invalid_argument("MSC-AI: hysteresis hold " + std::to_string(v) + " s must be >= 0");
  for (const RiskModeScale* s : {&o.aggressive, &o.defensive})
    if (!(std::isfinite(s->min_confidence_shift) && s->max_risk_scale > 0 && std::isfinite(s->max_risk_scale) &&
          s->max_positions_scale >= 0 && std::isfinite(s->max_positions_scale)))
      throw std::invalid_argument("MSC-AI: a risk-mode scale must have a finite confidence shift, max_risk_scale > 0 and max_positions_scale >= 0");
  o.detector.check();
  return o;
}

std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : ",") + x;
  return "{" + out + "}";
}

bool alarming(Regime r) { return r == Regime::high_volatility || r == Regime::crash; }

/// "min_confidence 0.6 -> 0.7, max_open_positions 5 -> 2" for the MSC-managed fields that differ.
std::string policy_diff(const Policy& a, const Policy& b) {
  std::string out;
  auto add = [&](std::string_view name, const std::string& from, const std::string& to) {
    if (from == to) return;
    out += (out.empty() ? "" : ", ") + std::string(name) + " " + from + " -> " + to;
  };
  add("min_confidence", num(a.min_confidence), num(b.min_confidence));
  add("max_risk_per_trade", num(a.max_risk_per_trade), num(b.max_risk_per_trade));
  add("max_open_positions", std::to_string(a.max_open_positions), std::to_string(b.max_open_positions));
  add("blocked_strategies", join(a.blocked_strategies), join(b.blocked_strategies));
  for (const auto& [k, v] : b.extra) {
    const auto it = a.extra.find(k);
    add(k, it == a.extra.end() ? "-" : it->second, v);
  }
  for (const auto& [k, v] : a.extra)
    if (!b.extra.count(k)) add(k, v, "-");
  return out.empty() ? "no setting changes" : out;
}

}  // namespace

std::map<Regime, std::map<std::string, std::string>> MscOptions::default_weights() {
  return {
      {Regime::trending_up, {{"opp_ranker.weight.trend", "1.5"}}},
      {Regime::trending_down, {{"opp_ranker.weight.trend", "1.5"}}},
      {Regime::ranging, {{"opp_ranker.weight.trend", "0.5"}}},
      {Regime::high_volatility, {{"opp_ranker.weight.volatility", "0.5"}, {"opp_ranker.weight.liquidity", "1.5"}}},
      {Regime::crash, {{"opp_ranker.weight.trend", "0.5"}, {"opp_ranker.weight.volatility", "0.5"}, {"opp_ranker.weight.liquidity", "2"}}},
  };
}

MscOptions MscOptions::from_config(const Config& config) {
  MscOptions o;
  o.update_interval_s = config.msc_update_interval;
  return o;
}

// ---- hysteresis ------------------------------------------------------------------------------------------------------

RiskModeHysteresis::RiskModeHysteresis(const MscOptions& o)
    : aggressive_after_(o.aggressive_after_s * kNsPerSecond),
      aggressive_exit_after_(o.aggressive_exit_after_s * kNsPerSecond),
      calm_after_(o.calm_after_s * kNsPerSecond),
      health_hold_(o.health_hold_s * kNsPerSecond) {}

RiskMode RiskModeHysteresis::step(Regime regime, TimeNs now) {
  if (regime == Regime::unknown) return mode_;
  if (regime == Regime::trending_up) {
    if (!up_since_) up_since_ = now;
    not_up_since_.reset();
  } else {
    up_since_.reset();
    if (!not_up_since_) not_up_since_ = now;
  }
  if (alarming(regime))
    calm_since_.reset();
  else if (!calm_since_)
    calm_since_ = now;
  // Into DEFENSIVE at once; out of it only after a calm spell and the health hold.
  if (alarming(regime) || now < hold_until_) return mode_ = RiskMode::defensive;
  if (mode_ == RiskMode::defensive) {
    if (!calm_since_ || now - *calm_since_ < calm_after_) return mode_;
    mode_ = RiskMode::normal;
    if (up_since_) up_since_ = now;  // straight from DEFENSIVE to AGGRESSIVE would be a jump: the trend must hold anew
  }
  // AGGRESSIVE only once the up-trend has held; back to NORMAL only once it has been gone a while.
  if (mode_ == RiskMode::normal && up_since_ && now - *up_since_ >= aggressive_after_) mode_ = RiskMode::aggressive;
  if (mode_ == RiskMode::aggressive && not_up_since_ && now - *not_up_since_ >= aggressive_exit_after_) mode_ = RiskMode::normal;
  return mode_;
}

RiskMode RiskModeHysteresis::health_alert(TimeNs now) {
  hold_until_ = std::max(hold_until_, now + health_hold_);
  calm_since_ = now;  // the calm spell that ends DEFENSIVE counts from the alert
  return mode_ = RiskMode::defensive;
}

// ---- the controller ----------------------------------------------------------------------------------------------------

MetaStrategyController::MetaStrategyController(EventBus& bus, const Config& config, PolicyStore& policy, MscOptions options,
                                               std::string log_dir)
    : AiSubsystem("MSC-AI", msc_mode(config), bus, std::move(log_dir)),
      policy_(policy),
      options_(checked(options)),
      detector_(options_.detector),
      hysteresis_(options_),
      base_(*policy.current()) {}

// The base MSC scales is the operator's: for each field MSC manages, the value the newest writer other than MSC gave
// it (the seed policy first), read from the policy's history, never MSC's own adjusted values. So a restart does not
// take the current policy, which MSC may have scaled, for its starting point (before, each restart in DEFENSIVE halved
// the risk budget again and each in AGGRESSIVE raised it again), and an operator's change of a managed field made while
// MSC holds a mode is kept as the new base instead of being overwritten at the next change. The strategies MSC blocked
// are found the same way: added by an MSC version and not decided on since by another writer.
void MetaStrategyController::base_follow() {
  auto h = policy_.history(following_ ? followed_.version + 1 : 1);
  if (!h.ok()) return;  // the store is away: what is known stands (a write would fail as well)
  std::set<std::string> managed_extra;
  for (const auto& [r, keys] : options_.weights_by_regime)
    for (const auto& [k, v] : keys) managed_extra.insert(k);
  for (const Policy& v : h.value()) {
    if (!following_) {  // the oldest version kept: the seed
      base_ = v;
      blocked_.clear();
      followed_ = v;
      following_ = true;
      continue;
    }
    const Policy& prev = followed_;
    std::set<std::string> added, removed;
    std::set_difference(v.blocked_strategies.begin(), v.blocked_strategies.end(), prev.blocked_strategies.begin(),
                        prev.blocked_strategies.end(), std::inserter(added, added.end()));
    std::set_difference(prev.blocked_strategies.begin(), prev.blocked_strategies.end(), v.blocked_strategies.begin(),
                        v.blocked_strategies.end(), std::inserter(removed, removed.end()));
    if (v.updated_by == Service::name()) {
      blocked_.insert(added.begin(), added.end());
      for (const auto& id : removed) blocked_.erase(id);
    } else {
      if (v.min_confidence != prev.min_confidence) base_.min_confidence = v.min_confidence;
      if (v.max_risk_per_trade != prev.max_risk_per_trade) base_.max_risk_per_trade = v.max_risk_per_trade;
      if (v.max_open_positions != prev.max_open_positions) base_.max_open_positions = v.max_open_positions;
      for (const auto& k : managed_extra) {
        const auto now = v.extra.find(k), before = prev.extra.find(k);
        const bool changed = (now == v.extra.end()) != (before == prev.extra.end()) ||
                             (now != v.extra.end() && now->second != before->second);
        if (!changed) continue;
        if (now == v.extra.end())
          base_.extra.erase(k);
        else
          base_.extra[k] = now->second;
      }
      for (const auto& id : added) blocked_.erase(id);  // another writer decided about these strategies
      for (const auto& id : removed) blocked_.erase(id);
    }
    followed_ = v;
  }
}

void MetaStrategyController::on_start() {
  following_ = false;
  base_follow();
  subscribe<MarketBarClosed>([this](const MarketBarClosed& bar) { on_bar(bar); });
  subscribe<HealthStatusChanged>([this](const HealthStatusChanged& ev) { handle_health_alert(ev); });
  every(options_.update_interval_s * kNsPerSecond, [this](TimeNs) { update(); });
}

void MetaStrategyController::on_bar(const MarketBarClosed& bar) {
  detector_.set_bar_length(static_cast<std::int64_t>(bar.interval_s) * kNsPerSecond);
  detector_.on_close(bar.symbol.view(), bar.open_time, bar.close);
}

const MarketConditions& MetaStrategyController::analyze_market_conditions() {
  // No bar since the last reading: the same reading (a replay's clock runs the timer many times between two bars).
  if (detector_.bars() != analyzed_bars_) {
    raw_ = detector_.analyze();
    analyzed_bars_ = detector_.bars();
  }
  conditions_ = raw_;
  const TimeNs now = clock().now();
  Regime reading = conditions_.regime;
  // A trend is left only when it has clearly faded (half the entry threshold, breadth back to even): a reading that
  // hovers at the threshold is not a new regime every hour.
  const RegimeDetectorOptions& d = options_.detector;
  if (reading == Regime::ranging && regime_ == Regime::trending_up && conditions_.trend >= d.trend_t / 2 && conditions_.breadth >= 0.5)
    reading = regime_;
  if (reading == Regime::ranging && regime_ == Regime::trending_down && conditions_.trend <= -d.trend_t / 2 && conditions_.breadth <= 0.5)
    reading = regime_;
  // An UNKNOWN reading (warm-up, too few fresh symbols) keeps the last regime rather than announcing a blind spot.
  if (reading == Regime::unknown || reading == regime_) {
    candidate_ = Regime::unknown;
    return conditions_;
  }
  // A new calm regime is adopted once it has been read without a break for `confirm_after_s`; an alarming one
  // (VOLATILE, CRASH) at once: protection does not wait.
  const bool alarming = reading == Regime::crash || reading == Regime::high_volatility;
  if (reading != candidate_) candidate_ = reading, candidate_since_ = now;
  // (The first regime after the warm-up is adopted at once: a reading is better than none.)
  if (!alarming && regime_ != Regime::unknown && now - candidate_since_ < options_.confirm_after_s * kNsPerSecond) return conditions_;
  candidate_ = Regime::unknown;
  conditions_.regime = reading;
  const Regime previous = regime_;
  regime_ = conditions_.regime;
  const std::string text = "Regime " + std::string(enum_name(previous)) + " -> " + std::string(enum_name(regime_)) + " (" +
                           conditions_.describe() + ", confidence " + num(std::round(conditions_.confidence * 100) / 100) + ")";
  if (mode() == SubsystemMode::observe) {
    decide("CLASSIFY", "would publish " + text, false);
    return conditions_;
  }
  publish(RegimeChanged{.symbol = {}, .previous = previous, .current = regime_, .confidence = conditions_.confidence});
  decide("CLASSIFY", text, true);
  return conditions_;
}

RiskMode MetaStrategyController::determine_optimal_risk_mode(const MarketConditions& conditions) {
  // The confirmed regime (a flickering reading is not a regime); UNKNOWN while none has been confirmed yet.
  (void)conditions;
  return hysteresis_.step(regime_, clock().now());
}

Policy MetaStrategyController::target_policy(const Policy& current, RiskMode mode, Regime regime) const {
  Policy p = current;
  p.risk_mode = mode;
  const RiskModeScale identity;
  const RiskModeScale& s = mode == RiskMode::aggressive ? options_.aggressive : mode == RiskMode::defensive ? options_.defensive : identity;
  p.min_confidence = std::clamp(base_.min_confidence + s.min_confidence_shift, 0.0, 1.0);
  p.max_risk_per_trade = std::min(1.0, base_.max_risk_per_trade * s.max_risk_scale);
  p.max_open_positions = base_.max_open_positions == 0
                             ? 0
                             : std::max<std::int64_t>(1, std::llround(static_cast<double>(base_.max_open_positions) * s.max_positions_scale));
  // Strategies: drop what MSC blocked before, block what this regime blocks (never one the operator allow-listed).
  for (const auto& id : blocked_) p.blocked_strategies.erase(id);
  if (const auto it = options_.blocked_by_regime.find(regime); it != options_.blocked_by_regime.end())
    for (const auto& id : it->second)
      if (!id.empty() && !p.allowed_strategies.count(id)) p.blocked_strategies.insert(id);
  // Ranking weights: this regime's keys; every other key MSC manages goes back to the starting policy's value.
  for (const auto& [r, keys] : options_.weights_by_regime)
    for (const auto& [k, v] : keys) {
      if (const auto b = base_.extra.find(k); b != base_.extra.end())
        p.extra[k] = b->second;
      else
        p.extra.erase(k);
    }
  if (const auto it = options_.weights_by_regime.find(regime); it != options_.weights_by_regime.end())
    for (const auto& [k, v] : it->second) p.extra[k] = v;
  return p;
}

bool MetaStrategyController::update_policy(const std::string& reason) {
  base_follow();
  const RiskMode mode_wanted = hysteresis_.mode();
  const auto current = policy_.current();
  const Policy target = target_policy(*current, mode_wanted, regime_);
  applied_mode_ = mode_wanted;
  applied_regime_ = regime_;
  const std::string diff = policy_diff(*current, target);
  if (policy_changed_fields(*current, target).empty()) return false;
  switch (mode()) {
    case SubsystemMode::off:
      return false;
    case SubsystemMode::observe:
      decide("UPDATE_POLICY", "would apply: " + reason + "; " + diff, false);
      return false;
    case SubsystemMode::advisory:
      decide("RECOMMEND_POLICY", reason + "; recommended, not applied (QT_MSC_AUTO_MODE=false): " + diff, false);
      return false;
    case SubsystemMode::enforced:
    case SubsystemMode::protective:
      break;
  }
  std::string last_error;
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A conflict means another writer (the operator, the API) got in first: re-read and apply to its policy once.
    std::set<std::string> others_blocked;
    auto r = policy_.update(
        policy_.version(),
        [&](Policy& p) {
          others_blocked = p.blocked_strategies;
          for (const auto& id : blocked_) others_blocked.erase(id);
          const Policy t = target_policy(p, mode_wanted, regime_);
          p.risk_mode = t.risk_mode;
          p.min_confidence = t.min_confidence;
          p.max_risk_per_trade = t.max_risk_per_trade;
          p.max_open_positions = t.max_open_positions;
          p.blocked_strategies = t.blocked_strategies;
          p.extra = t.extra;
        },
        reason, "MSC-AI");
    if (r.ok()) {
      blocked_.clear();
      for (const auto& id : r.value()->blocked_strategies)
        if (!others_blocked.count(id)) blocked_.insert(id);
      ++policy_updates_;
      decide("UPDATE_POLICY", reason + "; policy v" + std::to_string(r.value()->version) + ": " + diff, true);
      return true;
    }
    last_error = r.error().message;
    if (r.error().code != ErrorCode::conflict) break;
  }
  error("policy update refused: " + last_error + " (" + reason + ")");
  return false;
}

void MetaStrategyController::handle_health_alert(const HealthStatusChanged& ev) {
  const std::string component = ev.component.str();
  if (component == Service::name()) return;  // its own health is not the market's business
  const bool serious = ev.current == HealthLevel::failing ||
                       (ev.current == HealthLevel::degraded && options_.critical_components.count(component) != 0);
  if (!serious) return;
  const RiskMode before = hysteresis_.mode();
  hysteresis_.health_alert(clock().now());
  const std::string reason = "health alert: " + component + " " + std::string(enum_name(ev.current)) +
                             (ev.detail.empty() ? "" : " (" + ev.detail + ")") + ": risk mode " + std::string(enum_name(before)) +
                             " -> DEFENSIVE, held " + std::to_string(options_.health_hold_s) + " s";
  if (before == RiskMode::defensive && applied_mode_ == RiskMode::defensive) {
    decide("HEALTH_ALERT", (mode() == SubsystemMode::observe ? "would hold: " : "") + reason, false);
    return;
  }
  update_policy(reason);
}

void MetaStrategyController::update() {
  const Regime before = regime_;
  const MarketConditions& c = analyze_market_conditions();
  const RiskMode wanted = determine_optimal_risk_mode(c);
  if (wanted == applied_mode_ && regime_ == applied_regime_) return;
  std::string reason = "Regime " + std::string(enum_name(regime_)) + " (" + c.describe() + "): risk mode " +
                       std::string(enum_name(applied_mode_)) + " -> " + std::string(enum_name(wanted));
  if (wanted == applied_mode_) reason = "Regime " + std::string(enum_name(before)) + " -> " + std::string(enum_name(regime_)) + " (" +
                                         c.describe() + "): risk mode " + std::string(enum_name(wanted)) + " kept";
  update_policy(reason);
}

}  // namespace qtos
