// The Position Intelligence Layer: the classification rules, the per-position label cache and the TOXIC exit.
#include "runtime/subsystems/position_intelligence.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace qtos {

namespace {

/// A number for a decision sentence: two decimals at most, no trailing zeros ("2.5", "0", "-0.75").
std::string short_number(double v) {
  std::string s = fmt::format("{:.2f}", v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

}  // namespace

PositionR position_r(const PositionSnapshot& p, double default_risk_pct) {
  PositionR out;
  const double dir = p.side == Side::buy ? 1.0 : -1.0;
  const double profit = dir * (p.mark_price - p.entry_price);
  if (p.initial_risk > 0) {
    out.unit = p.initial_risk;
  } else if (p.r_multiple != 0 && profit != 0 && profit / p.r_multiple > 0) {
    out.unit = profit / p.r_multiple;  // an executor that fills r_multiple but not initial_risk
  } else {
    out.unit = p.entry_price * default_risk_pct / 100.0;
  }
  if (!(out.unit > 0) || !std::isfinite(out.unit)) return PositionR{};
  out.r = p.initial_risk > 0 || p.r_multiple != 0 ? p.r_multiple : profit / out.unit;
  out.giveback_r = std::max(0.0, p.drawdown_pct / 100.0 * p.entry_price / out.unit);
  out.peak_r = out.r + out.giveback_r;
  return out;
}

PositionIntelligenceOptions PositionIntelligenceOptions::from_config(const Config& config) {
  PositionIntelligenceOptions o;
  o.interval_s = config.pil_classification_interval;
  o.toxic_r = config.pil_toxic_r;
  o.toxic_bars = static_cast<std::int32_t>(std::clamp<std::int64_t>(config.pil_toxic_bars, 1, 1'000'000));
  return o;
}

PositionAssessment position_classify(const PositionSnapshot& p, const PositionIntelligenceOptions& o) {
  PositionAssessment a;
  a.r = position_r(p, o.default_risk_pct);
  const double r = a.r.r;
  if (!p.signal_present) {
    if (r <= o.toxic_r) {
      a.label = PositionClass::toxic;
      a.why = "thesis gone at a large loss";
      return a;
    }
    if (p.bars_held >= o.toxic_bars && r < 0) {
      a.label = PositionClass::toxic;
      a.why = "thesis gone, losing too long";
      return a;
    }
    if (a.r.peak_r >= o.winner_r && a.r.giveback_r >= o.toxic_giveback * a.r.peak_r) {
      a.label = PositionClass::toxic;
      a.why = "thesis gone, most of the peak given back";
      return a;
    }
  }
  if (r >= o.strong_winner_r && a.r.giveback_r <= o.strong_winner_max_giveback * a.r.peak_r) {
    a.label = PositionClass::strong_winner;
    a.why = "running, little given back";
  } else if (r >= o.winner_r) {
    a.label = PositionClass::winner;
    a.why = "in profit";
  } else if (r <= o.loser_r) {
    a.label = PositionClass::loser;
    a.why = p.signal_present ? "losing, thesis holds" : "losing, thesis gone";
  } else {
    a.label = PositionClass::neutral;
    a.why = "near entry";
  }
  return a;
}

PositionIntelligence::PositionIntelligence(EventBus& bus, const Config& config, PositionIntelligenceOptions options, std::string log_dir)
    : AiSubsystem("PIL", config.subsystem(Subsystem::pil).mode, bus, std::move(log_dir)), options_(options) {
  const auto& o = options_;
  if (o.interval_s < 0) throw std::invalid_argument("PIL: interval_s " + std::to_string(o.interval_s) + " must be >= 0");
  if (!(o.winner_r > 0 && o.strong_winner_r >= o.winner_r))
    throw std::invalid_argument("PIL: strong_winner_r " + short_number(o.strong_winner_r) + " and winner_r " + short_number(o.winner_r) +
                                " must satisfy strong_winner_r >= winner_r > 0");
  if (!(o.toxic_r <= o.loser_r && o.loser_r < o.winner_r))
    throw std::invalid_argument("PIL: toxic_r " + short_number(o.toxic_r) + " and loser_r " + short_number(o.loser_r) +
                                " must satisfy toxic_r <= loser_r < winner_r");
  if (o.toxic_bars < 1) throw std::invalid_argument("PIL: toxic_bars " + std::to_string(o.toxic_bars) + " must be >= 1");
  if (!(o.toxic_giveback > 0 && o.toxic_giveback <= 1) || !(o.strong_winner_max_giveback >= 0 && o.strong_winner_max_giveback <= 1))
    throw std::invalid_argument("PIL: toxic_giveback " + short_number(o.toxic_giveback) + " and strong_winner_max_giveback " +
                                short_number(o.strong_winner_max_giveback) + " must be fractions in (0, 1] and [0, 1]");
  if (!(o.default_risk_pct > 0 && o.default_risk_pct <= 100))
    throw std::invalid_argument("PIL: default_risk_pct " + short_number(o.default_risk_pct) + " must be in (0, 100]");
}

void PositionIntelligence::on_start() {
  subscribe<PositionClosed>([this](const PositionClosed& ev) { labels_.erase(ev.position_id); });
}

std::optional<ClassificationAnswer> PositionIntelligence::position_classification(const PositionSnapshot& p, const ClassificationAnswer&,
                                                                                  std::string& why) {
  const TimeNs now = clock().now();
  const PositionAssessment a = position_classify(p, options_);
  auto it = labels_.find(p.position_id);
  const bool known = it != labels_.end();
  // Re-classified once per interval; a crossing into TOXIC is taken at once (an exit should not wait for the cache).
  const bool due = !known || now - it->second.classified_at >= options_.interval_s * kNsPerSecond;
  if (known && !due && a.label != PositionClass::toxic) {
    const PositionClass held = it->second.label;
    if (held != PositionClass::toxic) return std::nullopt;  // the label the executor holds already: nothing to change
    return ClassificationAnswer{std::string(enum_name(held)), true};  // TOXIC stays an exit until the position is gone
  }
  if (!known) it = labels_.emplace(p.position_id, PositionLabel{p.symbol}).first;
  PositionLabel& l = it->second;
  const bool changed = !known || l.label != a.label;
  l.label = a.label;
  l.r = a.r.r;
  l.drawdown_pct = p.drawdown_pct;
  l.classified_at = now;
  const bool toxic = a.label == PositionClass::toxic;
  if (changed) {
    const std::string name(enum_name(a.label));
    const std::string sym(p.symbol.view());
    std::string text = (mode() == SubsystemMode::observe ? "would classify " + sym + " as " : sym + " classified as ") + name + " (" +
                       short_number(a.r.r) + "R, " + short_number(p.drawdown_pct) + "% DD" + (p.signal_present ? "" : ", thesis gone") + ")";
    if (toxic) {
      text += hard() ? ": exit" : ": would exit";
      if (hard()) ++toxic_exits_;
    }
    decide(toxic ? "EXIT" : "CLASSIFY", text, toxic ? hard() : soft(), p.symbol);
    why = std::string(name) + ": " + a.why;
  }
  if (!changed && !toxic) return std::nullopt;
  return ClassificationAnswer{std::string(enum_name(a.label)), toxic};
}

std::optional<PositionClass> PositionIntelligence::label(std::uint64_t position_id) const {
  auto it = labels_.find(position_id);
  if (it == labels_.end()) return std::nullopt;
  return it->second.label;
}

std::array<std::int64_t, EnumNames<PositionClass>::kCount> PositionIntelligence::counts() const {
  std::array<std::int64_t, EnumNames<PositionClass>::kCount> out{};
  for (const auto& [id, l] : labels_) ++out[static_cast<std::size_t>(l.label)];
  return out;
}

}  // namespace qtos
