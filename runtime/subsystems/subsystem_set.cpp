// The AI subsystems composed on one bus, and the health_ai() view of them.
#include "runtime/subsystems/subsystem_set.hpp"

#include <algorithm>
#include <cctype>

#include <boost/json.hpp>

#include "runtime/subsystems/ai_hfos.hpp"
#include "runtime/subsystems/execution_layer.hpp"
#include "runtime/subsystems/meta_strategy_controller.hpp"
#include "runtime/subsystems/portfolio_balancer.hpp"
#include "runtime/subsystems/position_intelligence.hpp"
#include "runtime/subsystems/profit_amplification.hpp"
#include "runtime/subsystems/self_healing.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos {

SubsystemSet::SubsystemSet(const SubsystemDeps& d) {
  const Config& c = d.config;
  hfos = std::make_shared<AiHfos>(d.bus, c, d.policy, d.log_dir);
  pba = std::make_shared<PortfolioBalancer>(d.bus, c, d.policy, d.exchange, d.log_dir);
  pil = std::make_shared<PositionIntelligence>(d.bus, c, PositionIntelligenceOptions::from_config(c), d.log_dir);
  pal = std::make_shared<ProfitAmplification>(d.bus, c, ProfitAmplificationOptions::from_config(c), pba.get(), hfos.get(), pil.get(), d.log_dir);
  aelm = std::make_shared<ExecutionLayerManager>(d.bus, c, ExecutionLayerOptions::from_config(c), hfos.get(), d.log_dir);
  healing = std::make_shared<SelfHealing>(d.bus, c, SelfHealingOptions::from_config(c), &d.policy, d.log_dir);
  msc = std::make_shared<MetaStrategyController>(d.bus, c, d.policy, MscOptions::from_config(c), d.log_dir);
  all_ = {hfos, pba, pil, pal, aelm, healing, msc};
  // Self-Healing restarts any other subsystem that faults.
  for (const auto& s : all_)
    if (s != healing) healing->watch(*s);
}

SubsystemSet::~SubsystemSet() = default;

std::vector<std::shared_ptr<TradingSubsystem>> SubsystemSet::pipeline_order() const {
  return {all_.begin(), all_.end()};
}

AiSubsystem* SubsystemSet::find(std::string_view name) const {
  auto upper = [](std::string_view s) {
    std::string r(s);
    for (char& ch : r) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return r;
  };
  const std::string want = upper(name);
  for (const auto& s : all_)
    if (upper(s->name()) == want) return s.get();
  return nullptr;
}

std::vector<std::string> SubsystemSet::start() {
  std::vector<std::string> failed;
  for (const auto& s : all_) {
    if (s->mode() == SubsystemMode::off || s->state() == ServiceState::running || s->state() == ServiceState::degraded) continue;
    if (!s->start()) failed.push_back(s->name() + ": " + s->last_reason());
  }
  return failed;
}

void SubsystemSet::stop(std::string_view reason) {
  for (const auto& s : all_)
    if (s->state() != ServiceState::stopped && s->state() != ServiceState::created) s->stop(reason);
}

HealthAi health_ai(const SubsystemSet& set, IntegrationStage stage, bool emergency_brake) {
  HealthAi h;
  h.integration_stage = stage;
  h.emergency_brake = emergency_brake;
  h.initialized = true;
  for (const auto& s : set.all()) {
    h.services.push_back(s->status());
    const SubsystemStatus& st = h.services.back();
    if (st.mode != SubsystemMode::off && !st.initialized) h.initialized = false;
  }
  return h;
}

std::string health_ai_json(const HealthAi& h) {
  boost::json::object root;
  root["initialized"] = h.initialized;
  root["integration_stage"] = std::string(stage_name(h.integration_stage));
  boost::json::object services;
  for (const SubsystemStatus& s : h.services) {
    boost::json::object o;
    o["initialized"] = s.initialized;
    o["mode"] = std::string(mode_name(s.mode));
    o["state"] = std::string(enum_name(s.state));
    o["decisions"] = s.decisions;
    o["applied"] = s.applied;
    o["last_decision"] = s.last_decision;
    o["last_decision_at"] = s.last_decision_at > 0 ? boost::json::value(time_format(s.last_decision_at)) : boost::json::value(nullptr);
    o["error_count"] = s.errors;
    boost::json::object actions;
    for (const auto& [k, v] : s.actions) actions[k] = v;
    o["actions"] = std::move(actions);
    services[s.name] = std::move(o);
  }
  root["services"] = std::move(services);
  root["emergency_brake"] = h.emergency_brake;
  return boost::json::serialize(root);
}

ReplaySubsystemFactory subsystem_set_factory(std::shared_ptr<SubsystemSet>* out) {
  return [out](ReplayContext& ctx) {
    auto set = std::make_shared<SubsystemSet>(SubsystemDeps{ctx.config, ctx.bus, ctx.policy, ctx.exchange, ctx.log_dir});
    if (out != nullptr) *out = set;
    // The set owns the subsystems; the pipeline's pointers share that ownership, and the replay stops them at its end.
    std::vector<std::shared_ptr<TradingSubsystem>> order = set->pipeline_order();
    return order;
  };
}

}  // namespace qtos
