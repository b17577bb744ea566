#pragma once
/// @file AI-HFOS, the supreme coordinator: every QT_AI_HFOS_UPDATE_INTERVAL it turns the system snapshot (drawdowns,
/// exposure, regime, Risk OS state), the components' health and the recent execution quality into one system risk mode
/// (AGGRESSIVE / NORMAL / SAFE / CRITICAL) and one directive for every subsystem: a confidence threshold, a position-size
/// scale (60%-100%), whether new trades are allowed, a preferred order type. It answers the coordination hook (threshold
/// shift and size scale, applied from ADVISORY), the pre-trade risk check (SYSTEM_RISK denial in ENFORCED when new
/// trades are not allowed) and the sizing hook (a per-trade cap in SAFE and CRITICAL). docs/subsystems/AI-HFOS.md has
/// the rules and the precedence between subsystems.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "runtime/bus/events.hpp"
#include "runtime/config/config.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/subsystems/ai_subsystem.hpp"

namespace qtos {

/// The thresholds and directives of AI-HFOS (QT_AI_HFOS_*; docs/subsystems/AI-HFOS.md).
struct HfosOptions {
  double safe_dd_fraction = 0.5;      ///< QT_AI_HFOS_SAFE_DD: drawdown, as a fraction of the policy's limit, that means SAFE
  double critical_dd_fraction = 0.8;  ///< QT_AI_HFOS_CRITICAL_DD: ... that means CRITICAL
  double aggressive_dd_fraction = 0.2;  ///< AGGRESSIVE only below this drawdown fraction
  double hysteresis = 0.1;            ///< a mode is left only when its trigger has fallen this far below its threshold
  std::int32_t calm_ticks = 2;        ///< consecutive calmer ticks with new inputs before the mode steps down
  double max_reject_rate = 0.2;       ///< QT_AI_HFOS_MAX_REJECT_RATE: venue rejects / orders sent over the window: SAFE
  std::int64_t min_orders = 10;       ///< the reject rate counts only over at least this many orders
  TimeNs execution_window = 3600 * kNsPerSecond;  ///< orders older than this leave the reject rate
  double safe_exposure_fraction = 0.9;  ///< exposure at this fraction of the policy's max leverage: SAFE
  double safe_size_scale = 0.75;      ///< QT_AI_HFOS_SAFE_SCALE: position-size scale in SAFE
  double critical_size_scale = 0.6;   ///< QT_AI_HFOS_CRITICAL_SCALE: and in CRITICAL
  double aggressive_threshold_shift = -0.05;  ///< confidence threshold shift in AGGRESSIVE
  double safe_threshold_shift = 0.10;         ///< in SAFE
  double critical_threshold_shift = 0.20;     ///< in CRITICAL
  double max_trade_pct = 20;          ///< QT_AI_HFOS_MAX_TRADE_PCT: one trade's quote cap in SAFE, percent of equity
                                      ///< (half of it in CRITICAL)
  double symbol_regime_scale = 0.75;  ///< a candidate on a symbol in its own CRASH/VOLATILE regime (the market's is not)

  /// The options from the configuration (QT_AI_HFOS_*).
  static HfosOptions from_config(const Config& config);
};

/// What AI-HFOS decides the system risk mode from.
struct HfosInputs {
  double daily_drawdown_pct = 0;       ///< fall since the start of the UTC day, percent
  double open_drawdown_pct = 0;        ///< unrealised loss, percent of equity
  double max_daily_drawdown_pct = 5;   ///< the policy's limits
  double max_open_drawdown_pct = 10;
  double exposure = 0;                 ///< gross notional / equity
  double max_leverage = 3;             ///< the policy's
  Regime regime = Regime::unknown;     ///< the market's regime
  RiskMode policy_risk_mode = RiskMode::normal;  ///< the policy's risk posture
  std::string trading_state = "ACTIVE";  ///< the Risk OS state
  std::string failing;                 ///< a failing component ("" : none)
  std::string degraded;                ///< a degraded component ("" : none)
  double reject_rate = 0;              ///< venue rejects / orders over the window (0 below min_orders)
};

/// The mode for `in` given the mode in force (its thresholds are lowered by the hysteresis so it does not flap), and the
/// reason in words ("daily DD 2.6% of 5%"). Pure.
std::pair<SystemRiskMode, std::string> hfos_classify(const HfosInputs& in, SystemRiskMode current, const HfosOptions& o);

/// The directive of a mode: scale, threshold shift, new trades, order type (threshold and reason left to the caller).
HfosDirective hfos_directive_for(SystemRiskMode mode, const HfosOptions& o);

/// AI-HFOS ("AI-HFOS"; QT_AI_HFOS_ENABLED / QT_AI_HFOS_MODE). Owner thread.
class AiHfos final : public AiSubsystem, public HfosDirectiveSource {
 public:
  /// Mode from the configuration (OFF when disabled); `policy` (limits, base confidence) must outlive it.
  AiHfos(EventBus& bus, const Config& config, const PolicyStore& policy, HfosOptions options, std::string log_dir = "");
  /// As above with HfosOptions::from_config(config).
  AiHfos(EventBus& bus, const Config& config, const PolicyStore& policy, std::string log_dir = "");

  bool answers(Hook hook) const override;
  std::optional<CoordinationAnswer> ai_hfos_coordination(const SystemSnapshot& s, const CoordinationAnswer& v, std::string& why) override;
  std::optional<CheckAnswer> risk_check(const TradeCandidate& c, const CheckAnswer& v, std::string& why) override;
  std::optional<SizingAnswer> position_sizing(const TradeCandidate& c, const SizingAnswer& v, std::string& why) override;

  /// The directive the other subsystems act on: the default one in OFF and OBSERVE, the decided one from ADVISORY (new
  /// trades allowed unless ENFORCED).
  const HfosDirective& directive() const override;
  /// The directive decided, whatever the mode (NORMAL, scale 1, before the first evaluation).
  const HfosDirective& decided() const { return directive_; }
  /// The reject rate over the execution window (0 below the minimum count of orders).
  double reject_rate() const;
  /// Mode changes so far.
  std::uint64_t mode_changes() const { return mode_changes_; }

 protected:
  void on_start() override;

 private:
  HfosInputs inputs_from(const SystemSnapshot& s);
  void evaluate(bool periodic);
  void order_outcome(bool rejected);

  const Config& config_;
  mutable PolicyView policy_;  // get() refreshes its snapshot
  HfosOptions options_;
  HfosDirective directive_;
  mutable HfosDirective effective_;  // directive()'s answer
  std::int32_t calm_count_ = 0;
  std::uint64_t mode_changes_ = 0;
  SystemSnapshot last_snapshot_;
  bool have_snapshot_ = false;
  bool dirty_ = false;  // an input changed by an event since the last tick
  Regime regime_ = Regime::unknown;                       // the market's, from RegimeChanged
  std::unordered_map<Symbol, Regime, FixedStringHash> symbol_regime_;  // per symbol, from RegimeChanged
  std::map<std::string, HealthLevel> health_;             // components' health, from HealthStatusChanged
  std::deque<std::pair<TimeNs, bool>> orders_;            // (time, rejected) of the orders over the window
  std::uint64_t rejected_in_window_ = 0;
};

}  // namespace qtos
