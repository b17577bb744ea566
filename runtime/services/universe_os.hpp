#pragma once
/// @file UniverseOS: turns the ranker's OpportunitiesUpdated, a blacklist and the policy into the tradable universe.
/// OBSERVE logs "would filter N symbols" and publishes nothing; ADVISORY publishes the suggested universe as
/// UniverseSuggested (and keeps it in last_decision()) without filtering anything; ENFORCED installs it, and the
/// executor's universe filter (`tradable`) then refuses every other symbol.
/// (QT_AI_UNIVERSE_OS_ENABLED, QT_AI_UNIVERSE_OS_MODE, QT_AI_UNIVERSE_DYNAMIC.)

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/bus/events.hpp"
#include "runtime/config/config.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/service/service.hpp"

namespace qtos {

/// The fixed inputs of the universe.
struct UniverseOptions {
  std::set<std::string> blacklist;         ///< never tradable
  std::vector<std::string> static_universe;  ///< the universe when QT_AI_UNIVERSE_DYNAMIC is false
};

/// One decision of UniverseOS.
struct UniverseDecision {
  SubsystemMode mode = SubsystemMode::off;
  std::vector<std::string> universe;  ///< the proposed tradable symbols, best first
  /// Symbols that were candidates but are not in the universe, with why ("blacklisted", "beyond top_n_universe",
  /// "not in the ranking").
  std::vector<std::pair<std::string, std::string>> filtered;
  std::uint64_t policy_version = 0;  ///< the policy the decision was taken under
  bool applied = false;              ///< true only in ENFORCED
};

/// The universe service (bus owner thread).
class UniverseOS final : public Service {
 public:
  /// Mode from QT_AI_UNIVERSE_OS_ENABLED/_MODE (OFF when disabled); `policy` must outlive the service. Throws
  /// std::invalid_argument naming a static-universe symbol that is empty or longer than a Symbol holds.
  UniverseOS(EventBus& bus, const Config& config, const PolicyStore& policy, UniverseOptions options);

  /// The executor's universe filter: in ENFORCED, true only for symbols of the installed universe (none before the
  /// first ranking arrives, so nothing trades on a universe never decided); in every other mode, true.
  bool tradable(std::string_view symbol) const;
  /// The last decision (empty universe before the first OpportunitiesUpdated).
  const UniverseDecision& last_decision() const { return last_; }
  /// Decisions taken so far.
  std::uint64_t decisions() const { return decisions_; }
  /// Computes the decision for a ranking without acting on it (pure; exposed for tests and the API).
  UniverseDecision decide(const OpportunitiesUpdated& ranking) const;

 protected:
  void on_start() override;

 private:
  void on_opportunities(const OpportunitiesUpdated& ev);

  const Config& config_;
  const PolicyStore& policy_;
  UniverseOptions options_;
  bool dynamic_ = false;
  UniverseDecision last_;
  std::shared_ptr<const std::set<std::string>> enforced_;  // the installed universe (ENFORCED only)
  std::uint64_t decisions_ = 0;
};

}  // namespace qtos
