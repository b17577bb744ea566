// The Profit Amplification Layer: EXTEND_HOLD, SCALE_IN and PARTIAL_TAKE_PROFIT for winners, once each (per step for
// EXTEND_HOLD), with the Portfolio Balancer and AI-HFOS able to refuse a scale-in.
#include "runtime/subsystems/profit_amplification.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace qtos {

namespace {

/// A number for a decision sentence: two decimals at most ("1.5", "0").
std::string r_text(double v) {
  std::string s = fmt::format("{:.2f}", v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

/// A price for a decision sentence (six significant digits).
std::string price_text(double v) { return fmt::format("{:.6g}", v); }

/// A percentage of a fraction ("50%").
std::string pct_text(double fraction) { return r_text(fraction * 100.0) + "%"; }

}  // namespace

ProfitAmplificationOptions ProfitAmplificationOptions::from_config(const Config& config) {
  ProfitAmplificationOptions o;
  o.interval_s = config.pal_analysis_interval;
  o.min_r = config.pal_min_r;
  o.min_r_scale_in = config.pal_min_r_scale_in;
  o.partial_r = config.pal_partial_r;
  return o;
}

ProfitAmplification::ProfitAmplification(EventBus& bus, const Config& config, ProfitAmplificationOptions options, const PortfolioGate* gate,
                                         const HfosDirectiveSource* hfos, const PositionIntelligence* pil, std::string log_dir)
    : AiSubsystem("PAL", config.subsystem(Subsystem::pal).mode, bus, std::move(log_dir)),
      options_(options),
      gate_(gate),
      hfos_(hfos),
      pil_(pil) {
  const auto& o = options_;
  if (o.interval_s < 0) throw std::invalid_argument("PAL: interval_s " + std::to_string(o.interval_s) + " must be >= 0");
  for (const auto& [name, v] : {std::pair{"min_r", o.min_r}, {"min_r_scale_in", o.min_r_scale_in}, {"partial_r", o.partial_r},
                                {"step_r", o.step_r}, {"extend_r", o.extend_r}, {"default_risk_pct", o.default_risk_pct}})
    if (!(v > 0 && std::isfinite(v))) throw std::invalid_argument(std::string("PAL: ") + name + " " + r_text(v) + " must be > 0");
  for (const auto& [name, v] : {std::pair{"lock_fraction", o.lock_fraction}, {"scale_in_fraction", o.scale_in_fraction},
                                {"partial_fraction", o.partial_fraction}})
    if (!(v > 0 && v <= 1)) throw std::invalid_argument(std::string("PAL: ") + name + " " + r_text(v) + " must be a fraction in (0, 1]");
}

void ProfitAmplification::on_start() {
  subscribe<PositionClosed>([this](const PositionClosed& ev) { positions_.erase(ev.position_id); });
}

const char* ProfitAmplification::verb() const {
  if (hard()) return "";
  return soft() ? "recommend " : "would ";
}

std::string ProfitAmplification::scale_in_refusal(const PositionSnapshot& p, double add_notional) const {
  // Protective beats enhancing: AI-HFOS in SAFE/CRITICAL, or with new trades stopped, stops every scale-in.
  if (hfos_ != nullptr) {
    const HfosDirective& d = hfos_->directive();
    if (d.mode == SystemRiskMode::safe || d.mode == SystemRiskMode::critical)
      return "AI-HFOS in " + std::string(enum_name(d.mode));
    if (!d.allow_new_trades) return "AI-HFOS allows no new trades";
  }
  if (pil_ != nullptr) {
    const auto label = pil_->label(p.position_id);
    if (label && *label != PositionClass::winner && *label != PositionClass::strong_winner)
      return "PIL labels it " + std::string(enum_name(*label));
  }
  if (gate_ != nullptr) {
    std::string why;
    if (!gate_->add_allowed(p.symbol, add_notional, why)) return "PBA: " + (why.empty() ? std::string("refused") : why);
  }
  return {};
}

std::optional<AmplificationAnswer> ProfitAmplification::amplification_check(const PositionSnapshot& p, const AmplificationAnswer&,
                                                                            std::string& why) {
  // Every rule starts at MIN_R: a position below it is not analysed (nor kept in the table), so it is analysed at once
  // when it gets there.
  const PositionR pr = position_r(p, options_.default_risk_pct);
  if (!(pr.unit > 0) || pr.r < options_.min_r) return std::nullopt;
  const TimeNs now = clock().now();
  AmplificationState& s = positions_[p.position_id];
  if (s.analysed_at >= 0 && now - s.analysed_at < options_.interval_s * kNsPerSecond) return std::nullopt;
  s.analysed_at = now;
  const double r = pr.r, dir = p.side == Side::buy ? 1.0 : -1.0;
  const std::string sym(p.symbol.view());
  const std::string at = " at " + r_text(r) + "R";

  // 1. PARTIAL_TAKE_PROFIT: once, at partial_r, or as soon as the thesis is gone while in profit.
  if (!s.partial_taken && (r >= options_.partial_r || !p.signal_present)) {
    s.partial_taken = true;
    ++partial_takes_;
    AmplificationAnswer a;
    a.take_partial = options_.partial_fraction;
    why = "PARTIAL_TAKE_PROFIT" + at + (p.signal_present ? "" : ", thesis gone");
    decide("PARTIAL_TAKE_PROFIT", std::string(verb()) + "PARTIAL_TAKE_PROFIT " + sym + at + ": close " + pct_text(a.take_partial) +
                                      (p.signal_present ? "" : " (thesis gone)"),
           hard(), p.symbol);
    return a;
  }

  // 2. EXTEND_HOLD: once per whole step of the peak, the stop locks part of the gain and the target moves out.
  const auto step = static_cast<std::int32_t>(std::floor(pr.peak_r / options_.step_r));
  if (step >= 1 && step > s.step) {
    s.step = step;
    AmplificationAnswer a;
    const double lock_r = options_.lock_fraction * step * options_.step_r;
    const double stop = p.entry_price + dir * lock_r * pr.unit;
    // Only a stop that protects more than the current one and still lies behind the mark.
    if (lock_r < r && (p.stop_price <= 0 || dir * (stop - p.stop_price) > 0)) a.stop_price = stop;
    // Only an existing target is widened: a position without one has nothing capping it.
    if (p.take_price > 0) {
      const double take = p.take_price + dir * options_.extend_r * pr.unit;
      if (dir * (take - p.mark_price) > 0) a.take_price = take;
    }
    if (a.stop_price > 0 || a.take_price > 0) {
      ++extend_holds_;
      std::string text = std::string(verb()) + "EXTEND_HOLD " + sym + at + ":";
      if (a.stop_price > 0)
        text += " stop " + (p.stop_price > 0 ? price_text(p.stop_price) : std::string("none")) + " -> " + price_text(a.stop_price) +
                " (locks " + r_text(lock_r) + "R)";
      if (a.take_price > 0)
        text += std::string(a.stop_price > 0 ? "," : "") + " target " + price_text(p.take_price) + " -> " + price_text(a.take_price);
      why = "EXTEND_HOLD step " + std::to_string(step) + at;
      decide("EXTEND_HOLD", text, hard(), p.symbol);
      return a;
    }
  }

  // 3. SCALE_IN: once per position, at min_r_scale_in, while the entry signal still fires and nothing protective objects.
  if (!s.scaled_in && !s.partial_taken && r >= options_.min_r_scale_in && p.signal_present) {
    const double notional = p.notional > 0 ? p.notional : p.qty * p.mark_price;
    const double add = options_.scale_in_fraction * notional;
    const std::string refusal = scale_in_refusal(p, add);
    if (!refusal.empty()) {
      if (refusal != s.blocked) {  // one decision per distinct refusal, not one per bar
        s.blocked = refusal;
        ++scale_ins_blocked_;
        decide("SCALE_IN_BLOCKED", "no SCALE_IN " + sym + at + ": " + refusal, false, p.symbol);
      }
      return std::nullopt;
    }
    s.scaled_in = true;
    s.blocked.clear();
    ++scale_ins_;
    AmplificationAnswer a;
    a.scale_in = options_.scale_in_fraction;
    why = "SCALE_IN" + at + ", signal present";
    decide("SCALE_IN", std::string(verb()) + "SCALE_IN " + sym + at + ": add " + pct_text(a.scale_in) + " (" + price_text(add) +
                           " quote), signal present" + (gate_ != nullptr ? ", PBA allows" : ""),
           hard(), p.symbol);
    return a;
  }
  return std::nullopt;
}

}  // namespace qtos
