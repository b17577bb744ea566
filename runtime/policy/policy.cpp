#include "runtime/policy/policy.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace qtos {
namespace {

std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

Error invalid(std::string_view field, const std::string& value, std::string_view rule) {
  return Error{ErrorCode::invalid_policy, std::string(field) + " = " + value + " is refused: " + std::string(rule)};
}

}  // namespace

Result<Unit> policy_validate(const Policy& p) {
  auto in_range = [](double v, double lo, double hi, bool lo_open) {
    return std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
  };
  if (static_cast<std::size_t>(p.risk_mode) >= EnumNames<RiskMode>::kCount)
    return invalid("risk_mode", std::to_string(static_cast<int>(p.risk_mode)), "must be AGGRESSIVE, NORMAL or DEFENSIVE");
  if (!in_range(p.min_confidence, 0.0, 1.0, false))
    return invalid("min_confidence", num(p.min_confidence), "must be in [0, 1]");
  if (!in_range(p.max_risk_per_trade, 0.0, 1.0, true))
    return invalid("max_risk_per_trade", num(p.max_risk_per_trade), "must be a fraction of equity in (0, 1]");
  if (p.max_open_positions < 0)
    return invalid("max_open_positions", std::to_string(p.max_open_positions), "must be >= 0");
  if (!in_range(p.max_leverage, 1.0, 125.0, false))
    return invalid("max_leverage", num(p.max_leverage), "must be in [1, 125]");
  if (!in_range(p.max_daily_drawdown_pct, 0.0, 100.0, true))
    return invalid("max_daily_drawdown_pct", num(p.max_daily_drawdown_pct), "must be a percentage in (0, 100]");
  if (!in_range(p.max_open_drawdown_pct, 0.0, 100.0, true))
    return invalid("max_open_drawdown_pct", num(p.max_open_drawdown_pct), "must be a percentage in (0, 100]");
  if (p.top_n_universe < 1) return invalid("top_n_universe", std::to_string(p.top_n_universe), "must be >= 1");
  for (const auto& s : p.allowed_strategies)
    if (s.empty()) return invalid("allowed_strategies", "{\"\"}", "strategy names must not be empty");
  for (const auto& s : p.blocked_strategies) {
    if (s.empty()) return invalid("blocked_strategies", "{\"\"}", "strategy names must not be empty");
    if (p.allowed_strategies.count(s))
      return invalid("blocked_strategies", "'" + s + "'", "strategy '" + s + "' is also in allowed_strategies; it must be in at most one");
  }
  for (const auto& [k, v] : p.extra)
    if (k.empty()) return invalid("extra", "\"\"=\"" + v + "\"", "keys must not be empty");
  return Unit{};
}

std::vector<std::string> policy_changed_fields(const Policy& a, const Policy& b) {
  std::vector<std::string> out;
  auto check = [&](std::string_view name, bool differs) {
    if (differs) out.emplace_back(name);
  };
  check("risk_mode", a.risk_mode != b.risk_mode);
  check("allowed_strategies", a.allowed_strategies != b.allowed_strategies);
  check("blocked_strategies", a.blocked_strategies != b.blocked_strategies);
  check("min_confidence", a.min_confidence != b.min_confidence);
  check("max_risk_per_trade", a.max_risk_per_trade != b.max_risk_per_trade);
  check("max_open_positions", a.max_open_positions != b.max_open_positions);
  check("max_leverage", a.max_leverage != b.max_leverage);
  check("max_daily_drawdown_pct", a.max_daily_drawdown_pct != b.max_daily_drawdown_pct);
  check("max_open_drawdown_pct", a.max_open_drawdown_pct != b.max_open_drawdown_pct);
  check("top_n_universe", a.top_n_universe != b.top_n_universe);
  check("extra", a.extra != b.extra);
  return out;
}

bool policy_allows_strategy(const Policy& policy, std::string_view strategy) {
  const std::string s(strategy);
  if (policy.blocked_strategies.count(s)) return false;
  return policy.allowed_strategies.empty() || policy.allowed_strategies.count(s) != 0;
}

Policy policy_from_config(const Config& config) {
  Policy p;
  p.max_daily_drawdown_pct = config.max_daily_dd_pct;
  p.max_open_drawdown_pct = config.max_open_dd_pct;
  p.top_n_universe = config.opp_ranker_top_n;
  return p;
}

RiskMode risk_mode_parse(std::string_view text) {
  std::string upper;
  for (char c : text) upper.push_back(static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c));
  for (std::size_t i = 0; i < EnumNames<RiskMode>::kCount; ++i)
    if (upper == EnumNames<RiskMode>::kNames[i]) return static_cast<RiskMode>(i);
  throw std::invalid_argument("risk mode '" + std::string(text) + "' is not one of AGGRESSIVE, NORMAL, DEFENSIVE");
}

}  // namespace qtos
