#pragma once
/// @file The Meta Strategy Controller (MSC AI): reads the market regime across the universe on its interval, picks the
/// risk mode with hysteresis, and sets the policy through the policy store (risk mode, min confidence, max risk, max
/// positions, strategies blocked by regime, opportunity-score weights). It answers no hook: it acts through the policy.
/// Modes: OFF (QT_MSC_ENABLED=false), ADVISORY (QT_MSC_AUTO_MODE=false: RegimeChanged and a recommended policy, nothing
/// written), ENFORCED (QT_MSC_AUTO_MODE=true: the policy is updated), OBSERVE (stage OBSERVATION: "would" decisions in
/// its log only, no RegimeChanged, no policy change). docs/subsystems/MSC.md.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "runtime/policy/policy_store.hpp"
#include "runtime/subsystems/ai_subsystem.hpp"
#include "runtime/subsystems/regime_detector.hpp"

namespace qtos {

/// How a risk mode moves the starting policy's settings (never its leverage or drawdown limits).
struct RiskModeScale {
  double min_confidence_shift = 0;  ///< added to min_confidence (then clamped to [0, 1])
  double max_risk_scale = 1;        ///< multiplies max_risk_per_trade (then capped at 1)
  double max_positions_scale = 1;   ///< multiplies max_open_positions (rounded; at least 1 unless the start is 0)
};

/// The options of MSC AI.
struct MscOptions {
  std::int64_t update_interval_s = 300;  ///< QT_MSC_UPDATE_INTERVAL: seconds between analyses
  RegimeDetectorOptions detector;        ///< the regime detector's windows and thresholds
  /// Hysteresis: AGGRESSIVE only after TRENDING_UP has held this long.
  std::int64_t aggressive_after_s = 6 * 3600;
  /// Hysteresis: AGGRESSIVE falls back to NORMAL after this long without TRENDING_UP.
  std::int64_t aggressive_exit_after_s = 6 * 3600;
  /// A new calm regime (TRENDING_UP, TRENDING_DOWN, RANGING) is adopted once it has been read without a break for this
  /// long; VOLATILE and CRASH at the first reading. A trend is left only when it has faded to half its entry threshold.
  std::int64_t confirm_after_s = 6 * 3600;
  /// Hysteresis: DEFENSIVE is left only after this long without VOLATILE or CRASH (and after a health hold).
  std::int64_t calm_after_s = 12 * 3600;
  /// A health alert holds DEFENSIVE at least this long.
  std::int64_t health_hold_s = 4 * 3600;
  RiskModeScale aggressive{-0.05, 1.25, 1.5};  ///< AGGRESSIVE from the starting policy
  RiskModeScale defensive{0.10, 0.5, 0.5};     ///< DEFENSIVE from the starting policy
  /// Strategy ids blocked while the market is in a regime (added to blocked_strategies; default: none).
  std::map<Regime, std::set<std::string>> blocked_by_regime;
  /// Policy `extra` keys the OpportunityRanker reads ("opp_ranker.weight.trend", ...), per regime; a key not set for
  /// the current regime keeps the starting policy's value.
  std::map<Regime, std::map<std::string, std::string>> weights_by_regime = default_weights();
  /// Components whose DEGRADED health is an alert too (FAILING from any component always is).
  std::set<std::string> critical_components = {"executor", "risk-os", "policy-store", "exchange", "hooks"};
  /// The default weights: trends favour the trend score, VOLATILE and CRASH favour liquidity over volatility.
  static std::map<Regime, std::map<std::string, std::string>> default_weights();
  /// QT_MSC_UPDATE_INTERVAL; the rest keeps its defaults.
  static MscOptions from_config(const Config& config);
};

/// The risk mode from the regime over time, with hysteresis so that it does not flap (rules in docs/subsystems/MSC.md).
class RiskModeHysteresis {
 public:
  /// Starts in NORMAL with `options`' hold times.
  explicit RiskModeHysteresis(const MscOptions& options);
  /// The mode after seeing `regime` at `now` (clock ns, non-decreasing); UNKNOWN keeps the mode.
  RiskMode step(Regime regime, TimeNs now);
  /// Holds DEFENSIVE from `now` for the health hold; returns the mode (DEFENSIVE).
  RiskMode health_alert(TimeNs now);
  /// The mode now.
  RiskMode mode() const { return mode_; }

 private:
  TimeNs aggressive_after_, aggressive_exit_after_, calm_after_, health_hold_;
  RiskMode mode_ = RiskMode::normal;
  std::optional<TimeNs> up_since_, not_up_since_, calm_since_;
  TimeNs hold_until_ = 0;
};

/// MSC AI (bus owner thread). Name "MSC-AI".
class MetaStrategyController final : public AiSubsystem {
 public:
  /// Mode from QT_MSC_ENABLED / QT_MSC_AUTO_MODE, capped at OBSERVE in stage OBSERVATION; `policy` must outlive it.
  /// Throws std::invalid_argument naming a bad option (interval <= 0, a detector option out of range).
  MetaStrategyController(EventBus& bus, const Config& config, PolicyStore& policy, MscOptions options = {}, std::string log_dir = "");

  bool answers(Hook) const override { return false; }

  /// Reads the universe now (the detector's features and regime); publishes RegimeChanged when the regime changed
  /// (not in OBSERVE).
  const MarketConditions& analyze_market_conditions();
  /// The risk mode for `conditions` at the clock's now, through the hysteresis.
  RiskMode determine_optimal_risk_mode(const MarketConditions& conditions);
  /// Brings the policy to the risk mode and regime in force: ENFORCED writes it (compare-and-set, one retry on a
  /// conflict); ADVISORY recommends it; OBSERVE logs what it would write. Returns true when the store was updated.
  bool update_policy(const std::string& reason);
  /// A serious HealthStatusChanged (FAILING, or DEGRADED from a critical component) moves to DEFENSIVE at once.
  void handle_health_alert(const HealthStatusChanged& ev);
  /// One update: analyse, pick the mode, update the policy when the mode or the regime changed.
  void update();

  /// The regime last detected.
  Regime regime() const { return regime_; }
  /// The risk mode MSC holds (what it writes or recommends).
  RiskMode risk_mode() const { return hysteresis_.mode(); }
  /// The detector (tests feed it directly).
  RegimeDetector& detector() { return detector_; }
  /// The policy MSC would have for `mode` in `regime`, from `current` (pure).
  Policy target_policy(const Policy& current, RiskMode mode, Regime regime) const;
  /// Policy updates MSC wrote.
  std::uint64_t policy_updates() const { return policy_updates_; }

 protected:
  void on_start() override;

 private:
  void on_bar(const MarketBarClosed& bar);
  /// Folds the policy versions written since the last call into base_ and blocked_ (see the .cpp).
  void base_follow();

  PolicyStore& policy_;
  MscOptions options_;
  RegimeDetector detector_;
  RiskModeHysteresis hysteresis_;
  Policy base_;                      // the operator's values the risk-mode table is derived from (base_follow)
  std::set<std::string> blocked_;    // strategy ids MSC itself added to blocked_strategies
  Policy followed_;                  // the newest policy version folded into base_ and blocked_
  bool following_ = false;           // followed_ holds a version
  MarketConditions conditions_;
  MarketConditions raw_;             // the detector's last reading (analysed once per new bar)
  Regime regime_ = Regime::unknown;
  Regime candidate_ = Regime::unknown;   // a calm regime read but not yet confirmed
  TimeNs candidate_since_ = 0;           // read without a break since
  Regime applied_regime_ = Regime::unknown;    // regime of the last policy written or recommended
  RiskMode applied_mode_ = RiskMode::normal;   // risk mode of the last policy written or recommended
  std::uint64_t policy_updates_ = 0;
  std::uint64_t analyzed_bars_ = UINT64_MAX;
};

}  // namespace qtos
