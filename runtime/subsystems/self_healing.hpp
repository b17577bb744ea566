#pragma once
/// @file Self-Healing: every QT_AI_SELF_HEALING_CHECK_INTERVAL it runs named health checks (market-data staleness,
/// venue error rate and fill latency, bus queue depth and handler errors, model inference failures, subsystem faults,
/// clock drift) and acts on them: RECONNECT a stale feed, RESTART_COMPONENT a faulted watched service,
/// SWITCH_TO_SAFE_MODE (policy risk mode DEFENSIVE) and PAUSE_TRADING, and RESUME once every check has been clear for
/// QT_AI_SELF_HEALING_RESUME_CHECKS consecutive checks. OBSERVE and ADVISORY log what they would do; ENFORCED and
/// PROTECTIVE act. docs/subsystems/SELF_HEALING.md has the rules.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/policy/policy_store.hpp"
#include "runtime/subsystems/ai_subsystem.hpp"

namespace qtos {

/// The outcome of one health check.
enum class CheckState : std::uint8_t { ok, warn, fail, not_applicable };
QTOS_ENUM_NAMES(CheckState, "OK", "WARN", "FAIL", "N/A");

/// One named health check as last evaluated.
struct HealthCheck {
  std::string name;                            ///< "market_data", "exchange_errors", ...
  CheckState state = CheckState::not_applicable;  ///< its state
  double value = 0;                            ///< the value that decided it (units in `detail`)
  double limit = 0;                            ///< the limit it was compared with
  std::string detail;                          ///< the sentence: "newest bar 4.0 intervals old (limit 3)"
};

/// Self-Healing's thresholds (QT_AI_SELF_HEALING_*).
struct SelfHealingOptions {
  std::int64_t check_interval_s = 120;  ///< QT_AI_SELF_HEALING_CHECK_INTERVAL
  std::int64_t stale_bars = 3;          ///< QT_AI_SELF_HEALING_STALE_BARS
  double max_error_rate = 0.5;          ///< QT_AI_SELF_HEALING_MAX_ERROR_RATE
  std::int64_t resume_checks = 2;       ///< QT_AI_SELF_HEALING_RESUME_CHECKS
  std::int64_t max_restarts = 3;        ///< QT_AI_SELF_HEALING_MAX_RESTARTS
  double max_latency_s = 30;            ///< QT_AI_SELF_HEALING_MAX_LATENCY_S (beyond one bar interval)
  double max_clock_drift_ms = 1000;     ///< QT_AI_SELF_HEALING_MAX_CLOCK_DRIFT_MS
  std::int32_t window_checks = 5;       ///< checks the error rate, latency and model failures are counted over
  std::int64_t min_orders = 5;          ///< orders in the window before the error rate counts
  std::int64_t model_failures_fail = 3; ///< model failures in the window that fail the check (1 warns)
  double queue_warn = 0.5;              ///< bus queue depth / capacity that warns
  double queue_fail = 0.9;              ///< and that fails

  /// The options from the configuration.
  static SelfHealingOptions from_config(const Config& config);
};

/// The Self-Healing subsystem. Owner thread, like the bus.
class SelfHealing final : public AiSubsystem {
 public:
  /// Mode from QT_AI_SELF_HEALING_ENABLED/_MODE (OFF when disabled). `policy` (may be null: SAFE mode is then only
  /// logged) must outlive it. Throws std::invalid_argument naming an option that is out of range.
  SelfHealing(EventBus& bus, const Config& config, SelfHealingOptions options, PolicyStore* policy = nullptr,
              std::string log_dir = "");
  ~SelfHealing() override;

  /// Registers how to reconnect `component` (a feed): returns true when the reconnection succeeded. Without one, a
  /// stale feed goes straight to PAUSE_TRADING.
  void reconnect_register(std::string component, std::function<bool()> reconnect);
  /// Watches `service` (which must outlive this subsystem): when faulted it is restarted (Service::start()) at most
  /// max_restarts times, the wait between attempts doubling from one check interval.
  void watch(Service& service);

  /// Runs every check and the actions they call for at clock time `now`; a second call at the same time does nothing
  /// (the timer and the hook both call it, whichever comes first).
  void checks_run(TimeNs now);
  /// The checks as last evaluated, in a fixed order.
  const std::vector<HealthCheck>& checks() const { return checks_; }
  /// True while new entries are paused (in OBSERVE/ADVISORY: would be paused).
  bool paused() const { return paused_; }
  /// True while the policy was switched to DEFENSIVE by this subsystem (OBSERVE/ADVISORY: would be).
  bool safe_mode() const { return safe_mode_; }

  bool answers(Hook hook) const override { return hook == Hook::periodic_self_healing_check; }
  std::optional<HealingAnswer> self_healing_check(const SystemSnapshot& s, const HealingAnswer& current,
                                                  std::string& reason) override;

 protected:
  void on_start() override;

 private:
  struct Watched {
    Service* service = nullptr;
    std::int64_t attempts = 0;  // restarts since it was last healthy for resume_checks checks
    TimeNs next_attempt = 0;    // no restart before this clock time (backoff)
    std::int64_t healthy_checks = 0;
    bool gave_up = false;
  };
  struct WindowCounts {  // what happened during one check interval
    std::int64_t submitted = 0, rejected = 0, model_failures = 0;
    TimeNs worst_latency = 0;
  };

  void check_market_data(TimeNs now, HealthCheck& c);
  void check_exchange_errors(HealthCheck& c);
  void check_exchange_latency(TimeNs now, HealthCheck& c);
  void check_bus(HealthCheck& c);
  void check_models(HealthCheck& c);
  void check_subsystems(TimeNs now, HealthCheck& c);
  void check_clock(TimeNs now, HealthCheck& c);
  void act(TimeNs now);
  bool reconnect_all(const std::string& why);
  void safe_mode_enter(const std::string& why);
  void safe_mode_leave();
  void safe_mode_adopt();
  static constexpr const char* kPolicyAuthor = "self-healing";  ///< updated_by of its policy versions
  void pause(const std::string& why);

  SelfHealingOptions options_;
  PolicyStore* policy_;
  std::map<std::string, std::function<bool()>> reconnects_;
  std::vector<Watched> watched_;
  std::vector<HealthCheck> checks_;
  TimeNs last_check_ = -1;

  // inputs gathered from the bus between checks
  TimeNs newest_close_ = 0;     // close time of the newest bar seen (0: none yet)
  TimeNs bar_interval_ = 0;     // learnt from the bars
  std::deque<WindowCounts> window_;  // the last window_checks intervals, newest at the back
  std::unordered_map<std::uint64_t, TimeNs> market_submits_;  // MARKET orders waiting for a first fill
  std::map<std::string, ServiceState> service_states_;  // from ServiceStateChanged (ourselves excepted)
  std::map<std::string, HealthLevel> component_health_;  // from HealthStatusChanged
  std::uint64_t hook_errors_seen_ = 0;   // HealthStatusChanged of the hook pipeline since the last check
  std::uint64_t last_hook_failures_ = 0;  // SystemSnapshot::hook_failures at the last hook call
  std::uint64_t hook_failures_new_ = 0;
  std::uint64_t last_handler_errors_ = 0;

  // what it decided
  bool paused_ = false;
  bool safe_mode_ = false;
  std::string pause_reason_;
  std::int64_t clear_checks_ = 0;
  bool reconnect_tried_ = false;        // a reconnect of this stale episode already ran (and said it worked)
  RiskMode restore_mode_ = RiskMode::normal;
  std::uint64_t safe_version_ = 0;      // the policy version our DEFENSIVE switch produced (0: none)
};

}  // namespace qtos
