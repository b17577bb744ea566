#pragma once
/// @file The services behind the HTTP API, as one abstract interface: one method per route. handle_request
/// (api/http/handler.hpp) parses, authenticates and validates a request and then calls exactly one of these.
///
/// Threading contract: handle_request runs on the server's I/O threads, several at once. The real implementation
/// (`qtos serve`) must not touch bus-owned state from those threads: every method marshals its work onto the bus
/// owner thread (EventBus::post of a command holding a promise) and waits for the answer, so each call sees one
/// consistent state between two events. A method must be safe to call from any thread, concurrently.
///
/// Errors: reads that take an id return Result; control methods return Result<boost::json::value>. The ErrorCode
/// picks the HTTP status (api/http/handler.hpp, http_status_of): invalid / invalid_policy / bad_state /
/// bad_transition / blocked -> 422, conflict -> 409, not_found / no_job / no_model -> 404, unsupported -> 422,
/// storage / stopped / cancelled -> 503. A control method that fails must leave the state unchanged.
/// Nothing here ever carries the API token.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "runtime/bus/events.hpp"
#include "runtime/config/config.hpp"
#include "runtime/policy/policy.hpp"
#include "runtime/util/result.hpp"

namespace qtos::api {

/// One event as /events and /events/stream show it; ids increase by at least one from event to event.
struct ApiEvent {
  std::uint64_t id = 0;        ///< position in the event log (1-based); SSE `id:` and Last-Event-ID
  std::string type;            ///< event type name, e.g. "PolicyUpdated" (SSE `event:`)
  boost::json::value data;     ///< the event's fields
};

/// The fields of a `PUT /policy`; each absent field keeps its current value. Types and enum names are checked by
/// the handler; the policy's rules (ranges) by the store (policy_validate), whose "invalid_policy" becomes 422.
struct PolicyPatch {
  std::optional<RiskMode> risk_mode;                           ///< AGGRESSIVE / NORMAL / DEFENSIVE
  std::optional<std::set<std::string>> allowed_strategies;     ///< replaces the allow-list
  std::optional<std::set<std::string>> blocked_strategies;     ///< replaces the block-list
  std::optional<double> min_confidence;                        ///< [0, 1]
  std::optional<double> max_risk_per_trade;                    ///< (0, 1]
  std::optional<std::int64_t> max_open_positions;              ///< >= 0
  std::optional<double> max_leverage;                          ///< [1, 125]
  std::optional<double> max_daily_drawdown_pct;                ///< (0, 100]
  std::optional<double> max_open_drawdown_pct;                 ///< (0, 100]
  std::optional<std::int64_t> top_n_universe;                  ///< >= 1
  std::optional<std::map<std::string, std::string>> extra;     ///< replaces the extra settings

  /// Writes the present fields into `policy` (what PolicyStore::update's mutation does).
  void apply(Policy& policy) const {
    if (risk_mode) policy.risk_mode = *risk_mode;
    if (allowed_strategies) policy.allowed_strategies = *allowed_strategies;
    if (blocked_strategies) policy.blocked_strategies = *blocked_strategies;
    if (min_confidence) policy.min_confidence = *min_confidence;
    if (max_risk_per_trade) policy.max_risk_per_trade = *max_risk_per_trade;
    if (max_open_positions) policy.max_open_positions = *max_open_positions;
    if (max_leverage) policy.max_leverage = *max_leverage;
    if (max_daily_drawdown_pct) policy.max_daily_drawdown_pct = *max_daily_drawdown_pct;
    if (max_open_drawdown_pct) policy.max_open_drawdown_pct = *max_open_drawdown_pct;
    if (top_n_universe) policy.top_n_universe = *top_n_universe;
    if (extra) policy.extra = *extra;
  }
};

/// The long jobs the API can start.
enum class JobKind { rank, evolve, retrain };
QTOS_ENUM_NAMES(JobKind, "rank", "evolve", "retrain");

/// Thrown by a read whose backing store cannot be reached now (the shared policy on Redis while Redis is away): the
/// handler answers 503 with the message, as a retryable condition, not 500.
struct PlaneUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Who asks and why, for the policy history and the logs ("api" plus the caller's reason).
struct Actor {
  std::string name = "api";  ///< author recorded with the change
  std::string reason;        ///< the request's "reason", or a default naming the route
};

/// The services behind the HTTP API (see the file comment for the threading and error contracts).
class ControlPlane {
 public:
  virtual ~ControlPlane() = default;

  // ---- state ----
  /// False while the services start or stop: every route but GET /health then answers 503.
  virtual bool ready() const = 0;

  // ---- reads (GET; never change state) ----
  /// GET /health/ai: {"initialized", "integration_stage", "services": {name: {...,"state"}}, "emergency_brake"}.
  virtual boost::json::value health_ai() = 0;
  /// GET /policy: the current policy with its version.
  virtual boost::json::value policy() = 0;
  /// GET /policy/history: stored versions >= from_version, oldest first, at most `limit`.
  virtual boost::json::value policy_history(std::uint64_t from_version, std::size_t limit) = 0;
  /// GET /opportunities: the latest ranked opportunities.
  virtual boost::json::value opportunities() = 0;
  /// GET /strategies: every known strategy with its stage.
  virtual boost::json::value strategies() = 0;
  /// GET /strategies/{id}: one strategy; not_found when unknown.
  virtual Result<boost::json::value> strategy(std::string_view id) = 0;
  /// GET /models: the model registry (active and shadow versions).
  virtual boost::json::value models() = 0;
  /// GET /positions: open positions.
  virtual boost::json::value positions() = 0;
  /// GET /orders: the newest orders, at most `limit`.
  virtual boost::json::value orders(std::size_t limit) = 0;
  /// GET /orders/{id}: one order with its decision trace; not_found when unknown.
  virtual Result<boost::json::value> order(std::string_view id) = 0;
  /// GET /trades: the newest closed trades, at most `limit`.
  virtual boost::json::value trades(std::size_t limit) = 0;
  /// GET /analytics/system: equity, PnL, drawdown, counts.
  virtual boost::json::value analytics_system() = 0;
  /// GET /analytics/strategies: per-strategy analytics.
  virtual boost::json::value analytics_strategies() = 0;
  /// GET /events and /events/stream: events with id > `since`, oldest first, at most `limit`.
  virtual std::vector<ApiEvent> events_since(std::uint64_t since, std::size_t limit) = 0;
  /// GET /metrics: Prometheus text exposition format (version 0.0.4).
  virtual std::string metrics_text() = 0;
  /// GET /locks: the stop-loss guard's and cooldowns' active locks.
  virtual boost::json::value locks() = 0;
  /// GET /jobs/{id}: a job's state and progress; not_found when unknown.
  virtual Result<boost::json::value> job(std::string_view id) = 0;

  // ---- control (state-changing; the handler has checked the token, Host and Origin) ----
  /// PUT /policy: applies `patch` when the policy is still at `expected_version`; conflict (409) otherwise,
  /// invalid_policy (422) when a rule is broken. Returns the new policy.
  virtual Result<boost::json::value> policy_update(const PolicyPatch& patch, std::uint64_t expected_version,
                                                   const Actor& actor) = 0;
  /// POST /policy/risk-mode: sets only the risk mode (on the current version).
  virtual Result<boost::json::value> risk_mode_set(RiskMode mode, const Actor& actor) = 0;
  /// POST /emergency-brake: engages (`on`) or releases the brake.
  virtual Result<boost::json::value> emergency_brake_set(bool on, const Actor& actor) = 0;
  /// POST /subsystems/{name}/mode: changes a subsystem's mode at once (applies at its next hook call).
  virtual Result<boost::json::value> subsystem_mode_set(Subsystem subsystem, SubsystemMode mode, const Actor& actor) = 0;
  /// POST /stage: moves to another integration stage (its presets of modes).
  virtual Result<boost::json::value> stage_set(IntegrationStage stage, const Actor& actor) = 0;
  /// POST /strategies/{id}/promote: shadow -> live; not_found, bad_transition (422).
  virtual Result<boost::json::value> strategy_promote(std::string_view id, const Actor& actor) = 0;
  /// POST /strategies/{id}/retire: retires a strategy; not_found, bad_transition (422).
  virtual Result<boost::json::value> strategy_retire(std::string_view id, const Actor& actor) = 0;
  /// POST /models/{name}/promote: makes the shadow version active; not_found / no_model (404).
  virtual Result<boost::json::value> model_promote(std::string_view name, const Actor& actor) = 0;
  /// POST /positions/{symbol}/close: a forced exit that goes through the Risk OS; not_found when flat.
  virtual Result<boost::json::value> position_close(std::string_view symbol, const Actor& actor) = 0;
  /// DELETE /locks/{id}: releases a lock; not_found when unknown.
  virtual Result<boost::json::value> lock_delete(std::string_view id, const Actor& actor) = 0;
  /// POST /jobs/{kind}: starts a job with the body's parameters; returns {"id": ...}.
  virtual Result<boost::json::value> job_start(JobKind kind, const boost::json::object& params, const Actor& actor) = 0;
  /// DELETE /jobs/{id}: asks the job to stop at its next safe point; not_found when unknown.
  virtual Result<boost::json::value> job_cancel(std::string_view id, const Actor& actor) = 0;
};

}  // namespace qtos::api
