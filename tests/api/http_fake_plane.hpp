#pragma once
/// @file A ControlPlane over plain in-memory state, for the HTTP handler and server tests and the fuzz target.
/// Header-only (the fuzz target builds it with clang, without the runtime library). Thread-safe: the server tests call
/// it from the I/O threads while the test thread appends events.

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/http/control_plane.hpp"
#include "api/http/handler.hpp"

namespace qtos::api::testing {

/// The in-memory services. An id or name "missing" is unknown everywhere (404); every other one exists.
class FakeControlPlane : public ControlPlane {
 public:
  /// The policy's rule check (set to policy_validate in tests that link the runtime); null checks nothing.
  Result<Unit> (*validate)(const Policy&) = nullptr;
  std::atomic<bool> is_ready{true};      ///< what ready() answers
  std::atomic<int> control_calls{0};     ///< control methods called (successful or not)
  std::atomic<int> state_changes{0};     ///< control methods that changed something

  FakeControlPlane() {
    policy_.version = 1;
    policy_.updated_by = "test";
    policy_.reason = "initial";
    history_.push_back(policy_);
  }

  /// Adds an event (the SSE and /events tests).
  void event_add(std::string type, boost::json::value data) {
    std::lock_guard lock(mutex_);
    events_.push_back(ApiEvent{events_.size() + 1, std::move(type), std::move(data)});
  }
  /// The current policy.
  Policy policy_now() const {
    std::lock_guard lock(mutex_);
    return policy_;
  }
  /// The brake's state.
  bool brake() const {
    std::lock_guard lock(mutex_);
    return brake_;
  }
  /// The last actor of a control call.
  Actor last_actor() const {
    std::lock_guard lock(mutex_);
    return actor_;
  }
  /// The last mode set for a subsystem (OFF when never set).
  SubsystemMode mode(Subsystem s) const {
    std::lock_guard lock(mutex_);
    const auto it = modes_.find(s);
    return it == modes_.end() ? SubsystemMode::off : it->second;
  }
  /// The stage.
  IntegrationStage stage() const {
    std::lock_guard lock(mutex_);
    return stage_;
  }

  bool ready() const override { return is_ready; }

  boost::json::value health_ai() override {
    std::lock_guard lock(mutex_);
    boost::json::object services;
    for (std::size_t i = 0; i < kSubsystemCount; ++i) {
      const auto s = static_cast<Subsystem>(i);
      const auto it = modes_.find(s);
      services[std::string("AI-") + std::string(enum_name(s))] = boost::json::object{
          {"state", "RUNNING"}, {"mode", enum_name(it == modes_.end() ? SubsystemMode::off : it->second)}};
    }
    return boost::json::object{{"initialized", true},
                               {"integration_stage", enum_name(stage_)},
                               {"services", std::move(services)},
                               {"emergency_brake", brake_}};
  }
  boost::json::value policy() override {
    std::lock_guard lock(mutex_);
    return policy_json(policy_);
  }
  boost::json::value policy_history(std::uint64_t from_version, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    boost::json::array out;
    for (const auto& p : history_)
      if (p.version >= from_version && out.size() < limit) out.push_back(policy_json(p));
    return out;
  }
  boost::json::value opportunities() override {
    return boost::json::array{boost::json::object{{"symbol", "BTCUSDT"}, {"score", 0.9}},
                              boost::json::object{{"symbol", "ETHUSDT"}, {"score", 0.7}}};
  }
  boost::json::value strategies() override { return boost::json::array{boost::json::object{{"id", "s1"}}}; }
  Result<boost::json::value> strategy(std::string_view id) override {
    if (id == "missing") return Error{ErrorCode::not_found, "no strategy 'missing'"};
    return boost::json::value(boost::json::object{{"id", id}, {"stage", "LIVE"}});
  }
  boost::json::value models() override { return boost::json::array{boost::json::object{{"name", "m1"}}}; }
  boost::json::value positions() override {
    std::lock_guard lock(mutex_);
    boost::json::array out;
    for (const auto& s : closed_) out.push_back(boost::json::object{{"closed", s}});
    return out;
  }
  boost::json::value orders(std::size_t limit) override {
    last_limit = limit;
    return boost::json::array{};
  }
  Result<boost::json::value> order(std::string_view id) override {
    if (id == "missing") return Error{ErrorCode::not_found, "no order 'missing'"};
    return boost::json::value(boost::json::object{{"id", id}, {"trace", boost::json::array{"entry_consider"}}});
  }
  boost::json::value trades(std::size_t limit) override {
    last_limit = limit;
    return boost::json::array{};
  }
  boost::json::value analytics_system() override { return boost::json::object{{"equity", 10000.0}}; }
  boost::json::value analytics_strategies() override { return boost::json::object{}; }
  std::vector<ApiEvent> events_since(std::uint64_t since, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<ApiEvent> out;
    for (const auto& e : events_)
      if (e.id > since && out.size() < limit) out.push_back(e);
    return out;
  }
  std::string metrics_text() override {
    return "# HELP qtos_orders_total Orders sent.\n# TYPE qtos_orders_total counter\nqtos_orders_total 3\n";
  }
  boost::json::value locks() override {
    std::lock_guard lock(mutex_);
    boost::json::array out;
    for (const auto& l : released_) out.push_back(boost::json::object{{"released", l}});
    return out;
  }
  Result<boost::json::value> job(std::string_view id) override {
    std::lock_guard lock(mutex_);
    const auto it = jobs_.find(std::string(id));
    if (id != "x1" && it == jobs_.end()) return Error{ErrorCode::not_found, "no job"};
    return boost::json::value(
        boost::json::object{{"id", id}, {"state", it == jobs_.end() ? "RUNNING" : it->second}, {"progress", 0.5}});
  }

  Result<boost::json::value> policy_update(const PolicyPatch& patch, std::uint64_t expected_version,
                                           const Actor& actor) override {
    std::lock_guard lock(mutex_);
    ++control_calls;
    actor_ = actor;
    if (expected_version != policy_.version)
      return Error{ErrorCode::conflict, "the policy is at version " + std::to_string(policy_.version)};
    Policy next = policy_;
    patch.apply(next);
    if (validate) {
      if (auto r = validate(next); !r) return r.error();
    }
    next.version = policy_.version + 1;
    next.updated_by = actor.name;
    next.reason = actor.reason;
    policy_ = next;
    history_.push_back(next);
    ++state_changes;
    return policy_json(policy_);
  }
  Result<boost::json::value> risk_mode_set(RiskMode mode, const Actor& actor) override {
    PolicyPatch p;
    p.risk_mode = mode;
    return policy_update(p, policy_now().version, actor);
  }
  Result<boost::json::value> emergency_brake_set(bool on, const Actor& actor) override {
    return change(actor, [&] { brake_ = on; }, boost::json::object{{"emergency_brake", on}});
  }
  Result<boost::json::value> subsystem_mode_set(Subsystem s, SubsystemMode m, const Actor& actor) override {
    if (m == SubsystemMode::protective && s != Subsystem::self_healing) {
      ++control_calls;
      return Error{ErrorCode::invalid, "PROTECTIVE is Self-Healing's alone"};
    }
    return change(actor, [&] { modes_[s] = m; }, boost::json::object{{"mode", enum_name(m)}});
  }
  Result<boost::json::value> stage_set(IntegrationStage st, const Actor& actor) override {
    return change(actor, [&] { stage_ = st; }, boost::json::object{{"stage", enum_name(st)}});
  }
  Result<boost::json::value> strategy_promote(std::string_view id, const Actor& actor) override {
    return by_id(id, actor, "promoted");
  }
  Result<boost::json::value> strategy_retire(std::string_view id, const Actor& actor) override {
    return by_id(id, actor, "retired");
  }
  Result<boost::json::value> model_promote(std::string_view name, const Actor& actor) override {
    return by_id(name, actor, "promoted");
  }
  Result<boost::json::value> position_close(std::string_view symbol, const Actor& actor) override {
    std::lock_guard lock(mutex_);
    ++control_calls;
    actor_ = actor;
    if (symbol == "missing") return Error{ErrorCode::not_found, "no open position"};
    closed_.emplace_back(symbol);
    ++state_changes;
    return boost::json::value(boost::json::object{{"symbol", symbol}, {"closing", true}});
  }
  Result<boost::json::value> lock_delete(std::string_view id, const Actor& actor) override {
    std::lock_guard lock(mutex_);
    ++control_calls;
    actor_ = actor;
    if (id == "missing") return Error{ErrorCode::not_found, "no lock"};
    released_.emplace_back(id);
    ++state_changes;
    return boost::json::value(boost::json::object{{"released", id}});
  }
  Result<boost::json::value> job_start(JobKind kind, const boost::json::object& params, const Actor& actor) override {
    std::lock_guard lock(mutex_);
    ++control_calls;
    actor_ = actor;
    const std::string id = "job-" + std::to_string(jobs_.size() + 1);
    jobs_[id] = "RUNNING";
    last_params = params;
    ++state_changes;
    return boost::json::value(boost::json::object{{"id", id}, {"kind", enum_name(kind)}});
  }
  Result<boost::json::value> job_cancel(std::string_view id, const Actor& actor) override {
    std::lock_guard lock(mutex_);
    ++control_calls;
    actor_ = actor;
    if (id == "x1") jobs_.try_emplace("x1", "RUNNING");
    const auto it = jobs_.find(std::string(id));
    if (it == jobs_.end()) return Error{ErrorCode::not_found, "no job"};
    it->second = "CANCELLING";
    ++state_changes;
    return boost::json::value(boost::json::object{{"id", id}, {"state", "CANCELLING"}});
  }

  std::atomic<std::size_t> last_limit{0};  ///< the limit the last list read was given
  boost::json::object last_params;         ///< the parameters of the last job_start

  /// A policy as JSON (the fields the tests read).
  static boost::json::value policy_json(const Policy& p) {
    boost::json::array allowed(p.allowed_strategies.begin(), p.allowed_strategies.end());
    return boost::json::object{{"version", p.version},
                               {"risk_mode", enum_name(p.risk_mode)},
                               {"allowed_strategies", std::move(allowed)},
                               {"min_confidence", p.min_confidence},
                               {"max_open_positions", p.max_open_positions},
                               {"updated_by", p.updated_by},
                               {"reason", p.reason}};
  }

 private:
  template <class F>
  Result<boost::json::value> change(const Actor& actor, F&& f, boost::json::value answer) {
    std::lock_guard lock(mutex_);
    ++control_calls;
    actor_ = actor;
    f();
    ++state_changes;
    return answer;
  }
  Result<boost::json::value> by_id(std::string_view id, const Actor& actor, std::string_view what) {
    std::lock_guard lock(mutex_);
    ++control_calls;
    actor_ = actor;
    if (id == "missing") return Error{ErrorCode::not_found, "no '" + std::string(id) + "'"};
    if (id == "retired") return Error{ErrorCode::bad_transition, "already retired"};
    ++state_changes;
    return boost::json::value(boost::json::object{{"id", id}, {"state", what}});
  }

  mutable std::mutex mutex_;
  Policy policy_;
  std::vector<Policy> history_;
  std::vector<ApiEvent> events_;
  bool brake_ = false;
  IntegrationStage stage_ = IntegrationStage::observation;
  std::map<Subsystem, SubsystemMode> modes_;
  std::vector<std::string> closed_, released_;
  std::map<std::string, std::string> jobs_;
  Actor actor_;
};

/// The token every test uses.
inline constexpr std::string_view kTestToken = "test-token-0123456789abcdef";

/// A request with Host 127.0.0.1:8080, the test token when `auth`, and a JSON body when not empty.
inline Request make_request(http::verb method, std::string_view target, std::string_view body = {}, bool auth = true) {
  Request req{method, std::string(target), 11};
  req.set(http::field::host, "127.0.0.1:8080");
  if (auth) req.set(http::field::authorization, "Bearer " + std::string(kTestToken));
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
    req.prepare_payload();
  }
  return req;
}

/// Settings with the test token.
inline ApiSettings test_settings() {
  ApiSettings s;
  s.token = std::string(kTestToken);
  return s;
}

}  // namespace qtos::api::testing
