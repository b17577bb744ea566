// UniverseOS: rankings + blacklist + policy -> the tradable universe, acted on according to the mode.
#include "runtime/services/universe_os.hpp"

#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace qtos {
namespace {

SubsystemMode universe_mode(const Config& config) {
  const auto& sub = config.subsystem(Subsystem::universe_os);
  return sub.active() ? sub.mode : SubsystemMode::off;
}

std::string join(const std::vector<std::string>& v, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) out += (i ? ", " : "") + v[i];
  if (v.size() > max) out += ", ...";
  return out;
}

}  // namespace

UniverseOS::UniverseOS(EventBus& bus, const Config& config, const PolicyStore& policy, UniverseOptions options)
    : Service("universe-os", universe_mode(config), bus),
      config_(config),
      policy_(policy),
      options_(std::move(options)),
      dynamic_(config.universe_dynamic) {
  for (const auto& sym : options_.static_universe)
    if (sym.empty() || sym.size() > Symbol::kCapacity)
      throw std::invalid_argument("UniverseOS: static universe symbol '" + sym + "' must be 1 to " +
                                  std::to_string(Symbol::kCapacity) + " characters");
}

void UniverseOS::on_start() {
  subscribe<OpportunitiesUpdated>([this](const OpportunitiesUpdated& ev) { on_opportunities(ev); });
}

UniverseDecision UniverseOS::decide(const OpportunitiesUpdated& ranking) const {
  const auto policy = policy_.current();
  UniverseDecision d;
  d.mode = mode();
  d.policy_version = policy->version;
  const auto cap = static_cast<std::size_t>(std::max<std::int64_t>(policy->top_n_universe, 1));
  std::vector<std::string> candidates;
  if (dynamic_) {
    for (const auto& o : ranking.top) candidates.push_back(o.symbol.str());
  } else {
    // A static universe keeps its members in ranking order; members the ranker did not list come last.
    std::set<std::string> ranked;
    for (const auto& o : ranking.top) {
      const std::string s = o.symbol.str();
      ranked.insert(s);
      if (std::find(options_.static_universe.begin(), options_.static_universe.end(), s) != options_.static_universe.end())
        candidates.push_back(s);
    }
    for (const auto& s : options_.static_universe)
      if (!ranked.count(s)) candidates.push_back(s);
  }
  for (const auto& s : candidates) {
    if (options_.blacklist.count(s)) {
      d.filtered.emplace_back(s, "blacklisted");
    } else if (d.universe.size() >= cap) {
      d.filtered.emplace_back(s, "beyond top_n_universe (" + std::to_string(cap) + ")");
    } else {
      d.universe.push_back(s);
    }
  }
  return d;
}

void UniverseOS::on_opportunities(const OpportunitiesUpdated& ev) {
  UniverseDecision d = decide(ev);
  ++decisions_;
  switch (d.mode) {
    case SubsystemMode::observe:
      spdlog::info("universe-os (OBSERVE): would filter {} symbols and trade {} ({})", d.filtered.size(),
                   d.universe.size(), join(d.universe, 8));
      break;
    case SubsystemMode::advisory: {
      spdlog::info("universe-os (ADVISORY): suggested universe of {} symbols: {}", d.universe.size(), join(d.universe, 20));
      UniverseSuggested suggestion;
      suggestion.universe.assign(d.universe.begin(), d.universe.end());
      for (const auto& [sym, why] : d.filtered) suggestion.filtered.push_back(UniverseExclusion{sym, why});
      suggestion.policy_version = d.policy_version;
      publish(std::move(suggestion));  // from inside the OpportunitiesUpdated handler: delivered right after it
      break;
    }
    case SubsystemMode::enforced:
    case SubsystemMode::protective:
      enforced_ = std::make_shared<const std::set<std::string>>(d.universe.begin(), d.universe.end());
      d.applied = true;
      spdlog::info("universe-os (ENFORCED): universe of {} symbols installed, {} filtered", d.universe.size(),
                   d.filtered.size());
      break;
    case SubsystemMode::off:
      break;
  }
  last_ = std::move(d);
}

bool UniverseOS::tradable(std::string_view symbol) const {
  if (mode() != SubsystemMode::enforced && mode() != SubsystemMode::protective) return true;
  if (state() != ServiceState::running && state() != ServiceState::degraded) return true;  // not acting: no filter
  return enforced_ && enforced_->count(std::string(symbol)) > 0;
}

}  // namespace qtos
