// Self-Healing: named health checks on a timer, and the recovery actions they call for (docs/subsystems/SELF_HEALING.md).
#include "runtime/subsystems/self_healing.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "runtime/executor/decision_trace.hpp"

namespace qtos {

namespace {

std::string num(double v) { return decision_number(v); }

/// True for a component whose failures are model inference failures (the CLM service, a model supervisor, a
/// predictor): "clm", "model...", "...predict...".
bool model_component(std::string_view name) {
  std::string n(name);
  for (char& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return n.rfind("clm", 0) == 0 || n.rfind("model", 0) == 0 || n.find("predict") != std::string::npos;
}

void option_check(bool ok, const char* name, double value, const char* expected) {
  if (!ok) throw std::invalid_argument(std::string("self-healing option ") + name + ": " + num(value) + " is out of range; expected " + expected);
}

constexpr const char* kCheckNames[] = {"market_data", "exchange_errors", "exchange_latency", "bus", "models", "subsystems", "clock_drift"};
enum CheckIndex { kMarketData, kExchangeErrors, kExchangeLatency, kBus, kModels, kSubsystems, kClockDrift, kCheckCount };

}  // namespace

SelfHealingOptions SelfHealingOptions::from_config(const Config& config) {
  SelfHealingOptions o;
  o.check_interval_s = config.self_healing_check_interval;
  o.stale_bars = config.self_healing_stale_bars;
  o.max_error_rate = config.self_healing_max_error_rate;
  o.resume_checks = config.self_healing_resume_checks;
  o.max_restarts = config.self_healing_max_restarts;
  o.max_latency_s = config.self_healing_max_latency_s;
  o.max_clock_drift_ms = config.self_healing_max_clock_drift_ms;
  return o;
}

SelfHealing::SelfHealing(EventBus& bus, const Config& config, SelfHealingOptions options, PolicyStore* policy, std::string log_dir)
    : AiSubsystem("SELF_HEALING", config.subsystem(Subsystem::self_healing).active() ? config.subsystem(Subsystem::self_healing).mode : SubsystemMode::off,
                  bus, std::move(log_dir)),
      options_(options),
      policy_(policy) {
  option_check(options_.check_interval_s >= 1, "check_interval_s", static_cast<double>(options_.check_interval_s), ">= 1");
  option_check(options_.stale_bars >= 1, "stale_bars", static_cast<double>(options_.stale_bars), ">= 1");
  option_check(options_.max_error_rate > 0 && options_.max_error_rate <= 1, "max_error_rate", options_.max_error_rate, "(0, 1]");
  option_check(options_.resume_checks >= 1, "resume_checks", static_cast<double>(options_.resume_checks), ">= 1");
  option_check(options_.max_restarts >= 0, "max_restarts", static_cast<double>(options_.max_restarts), ">= 0");
  option_check(options_.max_latency_s > 0, "max_latency_s", options_.max_latency_s, "> 0");
  option_check(options_.max_clock_drift_ms > 0, "max_clock_drift_ms", options_.max_clock_drift_ms, "> 0");
  option_check(options_.window_checks >= 1, "window_checks", options_.window_checks, ">= 1");
  option_check(options_.queue_warn > 0 && options_.queue_warn <= options_.queue_fail && options_.queue_fail <= 1, "queue_warn",
               options_.queue_warn, "0 < queue_warn <= queue_fail <= 1");
  for (const char* n : kCheckNames) checks_.push_back(HealthCheck{n, CheckState::not_applicable, 0, 0, "not run yet"});
}

SelfHealing::~SelfHealing() = default;

void SelfHealing::reconnect_register(std::string component, std::function<bool()> reconnect) {
  if (component.empty() || !reconnect) throw std::invalid_argument("SelfHealing::reconnect_register: a component name and a callback are required");
  reconnects_[std::move(component)] = std::move(reconnect);
}

void SelfHealing::watch(Service& service) {
  for (const Watched& w : watched_)
    if (w.service == &service) return;
  watched_.push_back(Watched{&service});
}

void SelfHealing::on_start() {
  window_.assign(1, WindowCounts{});
  safe_mode_adopt();
  last_handler_errors_ = bus().metrics().handler_errors;
  subscribe<MarketBarClosed>([this](const MarketBarClosed& b) {
    const TimeNs interval = static_cast<TimeNs>(b.interval_s) * kNsPerSecond;
    if (interval > 0) bar_interval_ = interval;
    const TimeNs close = b.open_time + interval;
    if (close > newest_close_) newest_close_ = close;
  });
  subscribe<OrderSubmitted>([this](const OrderSubmitted& o) {
    ++window_.back().submitted;
    if (o.type == OrderType::market) market_submits_[o.order_id] = o.header.ts;
  });
  subscribe<OrderRejected>([this](const OrderRejected& o) {
    ++window_.back().rejected;
    market_submits_.erase(o.order_id);
  });
  subscribe<OrderFilled>([this](const OrderFilled& f) {
    const auto it = market_submits_.find(f.order_id);
    if (it == market_submits_.end()) return;
    window_.back().worst_latency = std::max(window_.back().worst_latency, f.header.ts - it->second);
    market_submits_.erase(it);
  });
  subscribe<ServiceStateChanged>([this](const ServiceStateChanged& s) {
    if (s.service.view() != Service::name()) service_states_[std::string(s.service.view())] = s.current;
  });
  subscribe<HealthStatusChanged>([this](const HealthStatusChanged& h) {
    if (h.header.source.view() == "hooks") ++hook_errors_seen_;  // the pipeline's fail-safe fallbacks
    if (h.component.view() == Service::name()) return;
    component_health_[std::string(h.component.view())] = h.current;
    if (h.current != HealthLevel::healthy && (model_component(h.component.view()) || model_component(h.detail))) ++window_.back().model_failures;
  });
  every(options_.check_interval_s * kNsPerSecond, [this](TimeNs now) { checks_run(now); });
}

std::optional<HealingAnswer> SelfHealing::self_healing_check(const SystemSnapshot& s, const HealingAnswer&, std::string& reason) {
  if (s.hook_failures > last_hook_failures_) hook_failures_new_ += s.hook_failures - last_hook_failures_;
  last_hook_failures_ = s.hook_failures;
  for (const auto& [component, level] : s.health) component_health_[component] = level;
  checks_run(s.now);
  reason = paused_ ? "paused: " + pause_reason_ : "every check clear of FAIL";
  return HealingAnswer{paused_};
}

// ---------------------------------------------------------------------------------------------------------------
// The checks

void SelfHealing::check_market_data(TimeNs now, HealthCheck& c) {
  if (newest_close_ == 0 || bar_interval_ <= 0) {
    c.state = CheckState::not_applicable;
    c.detail = "no bar seen yet";
    return;
  }
  c.value = static_cast<double>(now - newest_close_) / static_cast<double>(bar_interval_);
  c.limit = static_cast<double>(options_.stale_bars);
  c.state = c.value > c.limit ? CheckState::fail : CheckState::ok;
  c.detail = "newest bar closed " + num(c.value) + " bar intervals ago (limit " + num(c.limit) + ")";
}

void SelfHealing::check_exchange_errors(HealthCheck& c) {
  std::int64_t submitted = 0, rejected = 0;
  for (const WindowCounts& w : window_) submitted += w.submitted, rejected += w.rejected;
  const std::int64_t orders = submitted + rejected;
  c.value = orders > 0 ? static_cast<double>(rejected) / static_cast<double>(orders) : 0.0;
  c.limit = options_.max_error_rate;
  c.detail = std::to_string(rejected) + " of " + std::to_string(orders) + " orders rejected by the venue over the last " +
             std::to_string(window_.size()) + " checks (limit " + num(c.limit) + ")";
  if (orders < options_.min_orders) {
    c.state = CheckState::ok;
    c.detail += ": too few orders to judge";
    return;
  }
  c.state = c.value > c.limit ? CheckState::fail : CheckState::ok;
}

void SelfHealing::check_exchange_latency(TimeNs now, HealthCheck& c) {
  TimeNs worst = 0;
  bool any = false;
  for (const WindowCounts& w : window_)
    if (w.worst_latency > 0) worst = std::max(worst, w.worst_latency), any = true;
  // MARKET orders still waiting count with their age; one forgotten for a whole window is dropped (an expiry the bus
  // does not report).
  const TimeNs horizon = static_cast<TimeNs>(options_.window_checks) * options_.check_interval_s * kNsPerSecond;
  for (auto it = market_submits_.begin(); it != market_submits_.end();) {
    const TimeNs age = now - it->second;
    if (age > horizon) {
      it = market_submits_.erase(it);
      continue;
    }
    worst = std::max(worst, age);
    any = true;
    ++it;
  }
  // A venue that fills at the next bar's open (the paper exchange) takes one bar interval by design: the limit is
  // that interval plus QT_AI_SELF_HEALING_MAX_LATENCY_S.
  c.limit = options_.max_latency_s + static_cast<double>(bar_interval_) / kNsPerSecond;
  if (!any) {  // OK rather than N/A: a quiet spell between orders is no change of health worth a decision
    c.state = CheckState::ok;
    c.value = 0;
    c.detail = "no MARKET order in the window";
    return;
  }
  c.value = static_cast<double>(worst) / kNsPerSecond;
  c.state = c.value > c.limit ? CheckState::warn : CheckState::ok;
  c.detail = "slowest MARKET order submit-to-fill " + num(c.value) + " s (limit " + num(c.limit) + " s)";
}

void SelfHealing::check_bus(HealthCheck& c) {
  const BusMetrics m = bus().metrics();
  const std::uint64_t errors = m.handler_errors - std::min(m.handler_errors, last_handler_errors_);
  last_handler_errors_ = m.handler_errors;
  c.value = m.queue_capacity > 0 ? static_cast<double>(m.queue_depth) / static_cast<double>(m.queue_capacity) : 0.0;
  c.limit = options_.queue_fail;
  c.detail = "queue " + std::to_string(m.queue_depth) + " of " + std::to_string(m.queue_capacity) + ", " + std::to_string(errors) +
             " handler errors since the last check";
  c.state = c.value >= options_.queue_fail ? CheckState::fail : c.value >= options_.queue_warn ? CheckState::warn : CheckState::ok;
  if (errors > 0) {
    c.state = CheckState::fail;
    std::string who;
    for (const SubscriberStats& s : bus().subscribers())
      if (s.errors > 0) who += (who.empty() ? "" : ", ") + s.name + " (" + s.last_error + ")";
    if (!who.empty()) c.detail += ": " + who;
  }
}

void SelfHealing::check_models(HealthCheck& c) {
  std::int64_t failures = 0;
  for (const WindowCounts& w : window_) failures += w.model_failures;
  c.value = static_cast<double>(failures);
  c.limit = static_cast<double>(options_.model_failures_fail);
  c.state = failures >= options_.model_failures_fail ? CheckState::fail : failures > 0 ? CheckState::warn : CheckState::ok;
  c.detail = std::to_string(failures) + " model inference failures over the last " + std::to_string(window_.size()) + " checks (limit " +
             std::to_string(options_.model_failures_fail) + ")";
}

void SelfHealing::check_subsystems(TimeNs, HealthCheck& c) {
  std::string faulted;
  std::int64_t n = 0;
  std::map<std::string, bool> named;
  for (const Watched& w : watched_)
    if (w.service->state() == ServiceState::faulted) {
      named[w.service->name()] = true;
      faulted += (faulted.empty() ? "" : ", ") + w.service->name() + " faulted (" + w.service->last_reason() + ")";
      ++n;
    }
  for (const auto& [name, state] : service_states_)
    if (state == ServiceState::faulted && !named.count(name)) {
      named[name] = true;
      faulted += (faulted.empty() ? "" : ", ") + name + " faulted";
      ++n;
    }
  for (const auto& [name, level] : component_health_)
    if (level == HealthLevel::failing && !named.count(name)) {
      named[name] = true;
      faulted += (faulted.empty() ? "" : ", ") + name + " failing";
      ++n;
    }
  const std::uint64_t hook_errors = std::max(hook_errors_seen_, hook_failures_new_);
  hook_errors_seen_ = hook_failures_new_ = 0;
  c.value = static_cast<double>(n);
  c.limit = 0;
  if (n > 0) {
    c.state = CheckState::fail;
    c.detail = faulted;
  } else if (hook_errors > 0) {
    c.state = CheckState::warn;
    c.detail = std::to_string(hook_errors) + " hook failures (fail-safe fallbacks) since the last check";
  } else {
    c.state = CheckState::ok;
    c.detail = "no component faulted";
  }
}

void SelfHealing::check_clock(TimeNs now, HealthCheck& c) {
  if (dynamic_cast<const LiveClock*>(&clock()) == nullptr) {
    c.state = CheckState::not_applicable;
    c.detail = "simulated clock: drift not applicable";
    return;
  }
  const TimeNs system = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  c.value = std::abs(static_cast<double>(now - system)) / kNsPerMillisecond;
  c.limit = options_.max_clock_drift_ms;
  c.state = c.value > c.limit ? CheckState::warn : CheckState::ok;
  c.detail = "bus clock " + num(c.value) + " ms from the system clock (limit " + num(c.limit) + " ms)";
}

void SelfHealing::checks_run(TimeNs now) {
  if (now == last_check_) return;
  last_check_ = now;
  std::vector<HealthCheck> next = checks_;
  check_market_data(now, next[kMarketData]);
  check_exchange_errors(next[kExchangeErrors]);
  check_exchange_latency(now, next[kExchangeLatency]);
  check_bus(next[kBus]);
  check_models(next[kModels]);
  check_subsystems(now, next[kSubsystems]);
  check_clock(now, next[kClockDrift]);
  for (std::size_t i = 0; i < next.size(); ++i)
    if (next[i].state != checks_[i].state)
      decide("CHECK", next[i].name + ": " + std::string(enum_name(checks_[i].state)) + " -> " + std::string(enum_name(next[i].state)) + " (" +
                          next[i].detail + ")",
             false);
  checks_ = std::move(next);
  act(now);
  window_.emplace_back();
  while (window_.size() > static_cast<std::size_t>(options_.window_checks)) window_.pop_front();
}

// ---------------------------------------------------------------------------------------------------------------
// The actions

void SelfHealing::pause(const std::string& why) {
  clear_checks_ = 0;
  if (paused_) return;
  paused_ = true;
  pause_reason_ = why;
  decide("PAUSE_TRADING", (hard() ? "Pausing new entries: " : "would pause new entries: ") + why, hard());
}

bool SelfHealing::reconnect_all(const std::string& why) {
  if (reconnects_.empty()) {
    decide("RECONNECT", std::string(hard() ? "" : "would: ") + "cannot reconnect (" + why + "): no reconnect registered", false);
    return false;
  }
  bool all = true;
  for (const auto& [component, reconnect] : reconnects_) {
    if (!hard()) {
      decide("RECONNECT", "would reconnect " + component + " (" + why + ")", false);
      all = false;  // not run: its outcome is unknown, so the pause that would follow a failure is logged too
      continue;
    }
    bool ok = false;
    std::string error;
    try {
      ok = reconnect();
    } catch (const std::exception& e) {
      error = e.what();
    }
    decide("RECONNECT", "Reconnecting " + component + " (" + why + "): " + (ok ? "reconnected" : "failed" + (error.empty() ? "" : ": " + error)),
           true);
    all = all && ok;
  }
  return all;
}

void SelfHealing::safe_mode_enter(const std::string& why) {
  if (safe_mode_) return;
  safe_mode_ = true;
  safe_version_ = 0;
  if (!hard()) {
    decide("SWITCH_TO_SAFE_MODE", "would switch to SAFE mode: policy risk mode -> DEFENSIVE (" + why + ")", false);
    return;
  }
  if (policy_ == nullptr) {
    decide("SWITCH_TO_SAFE_MODE", "SAFE mode (" + why + "): no policy store, risk mode unchanged", false);
    return;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto cur = policy_->current();
    if (cur->risk_mode == RiskMode::defensive) {
      decide("SWITCH_TO_SAFE_MODE", "SAFE mode (" + why + "): policy already DEFENSIVE", false);
      return;
    }
    restore_mode_ = cur->risk_mode;
    auto r = policy_->update(cur->version, [](Policy& p) { p.risk_mode = RiskMode::defensive; }, "self-healing SAFE mode: " + why, kPolicyAuthor);
    if (r.ok()) {
      safe_version_ = r.value()->version;
      decide("SWITCH_TO_SAFE_MODE", "Switching to SAFE mode: policy risk mode " + std::string(enum_name(restore_mode_)) +
                                        " -> DEFENSIVE, version " + std::to_string(safe_version_) + " (" + why + ")",
             true);
      return;
    }
    if (r.error().code != ErrorCode::conflict) {
      error("SAFE mode: policy update failed: " + r.error().message);
      return;
    }
  }
  error("SAFE mode: the policy kept changing under the update (two conflicts)");
}

// A SAFE mode this service switched to before a restart is its own still: when the policy's newest version is its
// switch to DEFENSIVE (nobody changed the policy since), the restarted service holds SAFE mode and the pause with it,
// and restores the risk mode the switch replaced once every check has been clear for resume_checks checks, as it
// would have without the restart. (Before, the policy stayed DEFENSIVE until someone else changed it.)
void SelfHealing::safe_mode_adopt() {
  if (!hard() || policy_ == nullptr) return;
  const auto cur = policy_->current();
  if (cur->updated_by != kPolicyAuthor || cur->risk_mode != RiskMode::defensive || cur->version < 2) return;
  const auto before = policy_->history(cur->version - 1, 1);
  if (!before.ok() || before.value().empty()) return;
  safe_mode_ = true;
  safe_version_ = cur->version;
  restore_mode_ = before.value().front().risk_mode;
  pause("SAFE mode from before the restart (policy version " + std::to_string(cur->version) + ": " + cur->reason + ")");
}

void SelfHealing::safe_mode_leave() {
  safe_mode_ = false;
  if (!hard() || policy_ == nullptr || safe_version_ == 0) return;
  const auto cur = policy_->current();
  const std::uint64_t ours = safe_version_;
  safe_version_ = 0;
  if (cur->version != ours) {
    decide("SWITCH_TO_SAFE_MODE", "Leaving SAFE mode: the policy changed since our switch (version " + std::to_string(cur->version) +
                                      "): risk mode left " + std::string(enum_name(cur->risk_mode)),
           false);
    return;
  }
  const RiskMode back = restore_mode_;
  auto r = policy_->update(cur->version, [back](Policy& p) { p.risk_mode = back; }, "self-healing: every check clear", kPolicyAuthor);
  if (r.ok())
    decide("SWITCH_TO_SAFE_MODE", "Leaving SAFE mode: policy risk mode DEFENSIVE -> " + std::string(enum_name(back)), true);
  else
    error("leaving SAFE mode: policy update failed: " + r.error().message);
}

void SelfHealing::act(TimeNs now) {
  const TimeNs interval = options_.check_interval_s * kNsPerSecond;
  // Faulted watched services: restart with a doubling wait, a limited number of times.
  for (Watched& w : watched_) {
    Service& s = *w.service;
    if (s.state() != ServiceState::faulted) {
      if (w.attempts > 0 && ++w.healthy_checks >= options_.resume_checks) w.attempts = 0, w.gave_up = false;
      continue;
    }
    w.healthy_checks = 0;
    if (w.gave_up || now < w.next_attempt) continue;
    if (w.attempts >= options_.max_restarts) {
      w.gave_up = true;
      decide("RESTART_COMPONENT", std::string(hard() ? "" : "would: ") + s.name() + " still faulted after " + std::to_string(w.attempts) + " restarts: giving up (" + s.last_reason() + ")",
             false);
      continue;
    }
    ++w.attempts;
    w.next_attempt = now + interval * (TimeNs{1} << std::min<std::int64_t>(w.attempts, 20));
    const std::string what = "restart " + s.name() + " (attempt " + std::to_string(w.attempts) + "/" + std::to_string(options_.max_restarts) +
                             ", faulted: " + s.last_reason() + ")";
    if (!hard()) {
      decide("RESTART_COMPONENT", "would " + what, false);
      continue;
    }
    const bool ok = s.start();
    decide("RESTART_COMPONENT", "Restarting " + s.name() + " (attempt " + std::to_string(w.attempts) + "/" + std::to_string(options_.max_restarts) +
                                    "): " + (ok ? "running" : "failed: " + s.last_reason()),
           true);
  }
  // The data feed: reconnect once per stale episode, pause when that cannot help or did not.
  const HealthCheck& data = checks_[kMarketData];
  if (data.state == CheckState::fail) {
    if (!reconnect_tried_) {
      reconnect_tried_ = true;
      if (!reconnect_all("market data stale: " + data.detail)) pause("market data stale: " + data.detail);
    } else {
      pause("market data still stale after RECONNECT: " + data.detail);
    }
  } else {
    reconnect_tried_ = false;
  }
  // A venue that rejects too much, or several checks failing at once: SAFE mode and a pause.
  std::int64_t failing = 0;
  std::string which;
  for (const HealthCheck& c : checks_)
    if (c.state == CheckState::fail) ++failing, which += (which.empty() ? "" : ", ") + c.name;
  if (checks_[kExchangeErrors].state == CheckState::fail || failing >= 2) {
    const std::string why = failing >= 2 ? std::to_string(failing) + " checks failing (" + which + ")" : "exchange errors: " + checks_[kExchangeErrors].detail;
    safe_mode_enter(why);
    pause(why);
  }
  // RESUME after every check has been clear of FAIL for resume_checks consecutive checks.
  if (!paused_) return;
  if (failing > 0) {
    clear_checks_ = 0;
    return;
  }
  if (++clear_checks_ < options_.resume_checks) return;
  const std::string was = pause_reason_;
  paused_ = false;
  pause_reason_.clear();
  clear_checks_ = 0;
  decide("RESUME", (hard() ? "Resuming new entries: every check clear for " : "would resume new entries: every check clear for ") +
                       std::to_string(options_.resume_checks) + " checks (paused for: " + was + ")",
         hard());
  if (safe_mode_) safe_mode_leave();
}

}  // namespace qtos
