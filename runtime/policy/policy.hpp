#pragma once
/// @file The global trading policy: risk mode, strategy lists, thresholds and limits, with its version and
/// provenance. One source of truth, kept by PolicyStore (runtime/policy/policy_store.hpp).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/bus/events.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/config.hpp"
#include "runtime/util/result.hpp"

namespace qtos {

/// The policy every trading decision is taken under.
struct Policy {
  RiskMode risk_mode = RiskMode::normal;        ///< AGGRESSIVE / NORMAL / DEFENSIVE
  std::set<std::string> allowed_strategies;     ///< when not empty, only these strategies may trade
  std::set<std::string> blocked_strategies;     ///< these strategies may never trade
  double min_confidence = 0.6;                  ///< signals below this confidence are denied, in [0, 1]
  double max_risk_per_trade = 0.01;             ///< fraction of equity at risk per trade, in (0, 1]
  std::int64_t max_open_positions = 5;          ///< >= 0 (0 blocks every new position)
  double max_leverage = 3.0;                    ///< in [1, 125]
  double max_daily_drawdown_pct = 5.0;          ///< percent, in (0, 100]
  double max_open_drawdown_pct = 10.0;          ///< percent, in (0, 100]
  std::int64_t top_n_universe = 20;             ///< symbols the universe keeps, >= 1
  std::map<std::string, std::string> extra;     ///< further named settings for later subsystems

  std::uint64_t version = 0;  ///< 1 for the first stored policy, +1 per accepted update
  TimeNs updated_at = 0;      ///< clock time of the update
  std::string updated_by;     ///< who made the update
  std::string reason;         ///< why

  /// Field-wise equality, provenance included.
  friend bool operator==(const Policy&, const Policy&) = default;
};

/// The rule-checked names of the Policy fields, in declaration order.
inline constexpr std::string_view kPolicyFieldNames[] = {
    "risk_mode", "allowed_strategies", "blocked_strategies", "min_confidence", "max_risk_per_trade",
    "max_open_positions", "max_leverage", "max_daily_drawdown_pct", "max_open_drawdown_pct", "top_n_universe", "extra"};

/// Checks every rule; the error (code "invalid_policy") names the first broken field, its value and the rule.
Result<Unit> policy_validate(const Policy& policy);
/// Names of the rule-checked fields that differ between `a` and `b` (provenance ignored), in declaration order.
std::vector<std::string> policy_changed_fields(const Policy& a, const Policy& b);
/// True when `strategy` may trade under `policy` (not blocked, and allowed when an allow-list is set).
bool policy_allows_strategy(const Policy& policy, std::string_view strategy);
/// The starting policy from the configuration (drawdown limits, universe size); version 0, no provenance.
Policy policy_from_config(const Config& config);
/// Parses "AGGRESSIVE" / "NORMAL" / "DEFENSIVE" (any case); throws std::invalid_argument naming the text.
RiskMode risk_mode_parse(std::string_view text);

}  // namespace qtos
