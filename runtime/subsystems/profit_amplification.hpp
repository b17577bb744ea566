#pragma once
/// @file The Profit Amplification Layer (PAL): makes more of the winners. From QT_AI_PAL_MIN_R it holds a winner longer
/// (EXTEND_HOLD: the stop trailed to lock in part of the gain, the target widened, once per R step); from
/// QT_AI_PAL_MIN_R_SCALE_IN it adds to it once (SCALE_IN) while its entry signal still fires and the Portfolio Balancer
/// and AI-HFOS allow; it takes part of the profit once (PARTIAL_TAKE_PROFIT) at QT_AI_PAL_PARTIAL_R, or earlier when
/// the thesis is gone. OBSERVE logs "would"; ADVISORY logs and publishes the recommendation; ENFORCED acts.
/// (QT_AI_PAL_ENABLED, QT_AI_PAL_MODE, QT_AI_PAL_ANALYSIS_INTERVAL; docs/subsystems/PAL.md.)

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "runtime/subsystems/ai_subsystem.hpp"
#include "runtime/subsystems/position_intelligence.hpp"

namespace qtos {

/// The thresholds and sizes of the amplification.
struct ProfitAmplificationOptions {
  std::int64_t interval_s = 900;    ///< QT_AI_PAL_ANALYSIS_INTERVAL: a position is analysed at most this often
  double min_r = 1.0;               ///< QT_AI_PAL_MIN_R: EXTEND_HOLD from this R
  double min_r_scale_in = 1.5;      ///< QT_AI_PAL_MIN_R_SCALE_IN: SCALE_IN from this R
  double partial_r = 3.0;           ///< QT_AI_PAL_PARTIAL_R: PARTIAL_TAKE_PROFIT at this R
  double step_r = 1.0;              ///< EXTEND_HOLD is decided once per this many R of the peak
  double lock_fraction = 0.5;       ///< EXTEND_HOLD's stop locks this fraction of the peak's whole steps (0.5R at 1R)
  double extend_r = 1.0;            ///< EXTEND_HOLD widens the target by this many R per step
  double scale_in_fraction = 0.5;   ///< SCALE_IN adds this fraction of the position, once per position
  double partial_fraction = 0.5;    ///< PARTIAL_TAKE_PROFIT closes this fraction, once per position
  double default_risk_pct = 2.0;    ///< one R of a position without a stop, percent of its entry price (as PIL)
  /// The options of `config` (interval, min_r, min_r_scale_in, partial_r; the rest at their defaults).
  static ProfitAmplificationOptions from_config(const Config& config);
};

/// What PAL has done with one open position.
struct AmplificationState {
  std::int32_t step = 0;           ///< the last EXTEND_HOLD step decided (0: none); steps only rise, a scale-in included
  bool scaled_in = false;          ///< SCALE_IN decided (once per position)
  bool partial_taken = false;      ///< PARTIAL_TAKE_PROFIT decided (once per position)
  std::string blocked;             ///< why the last SCALE_IN was refused ("" : not refused)
  TimeNs analysed_at = -1;         ///< clock time of the last analysis (-1: never)
};

/// The PAL subsystem: answers post_trade_amplification_check. Bus owner thread.
class ProfitAmplification final : public AiSubsystem {
 public:
  /// Named "PAL", mode from config.subsystem(Subsystem::pal) (OFF when disabled). `gate`: the Portfolio Balancer (null:
  /// no portfolio limit besides the Risk OS); `hfos`: AI-HFOS (null: always NORMAL); `pil`: PIL's labels (null: not
  /// consulted); each must outlive this. Throws std::invalid_argument naming an option out of range.
  ProfitAmplification(EventBus& bus, const Config& config, ProfitAmplificationOptions options, const PortfolioGate* gate = nullptr,
                      const HfosDirectiveSource* hfos = nullptr, const PositionIntelligence* pil = nullptr, std::string log_dir = "");

  bool answers(Hook hook) const override { return hook == Hook::post_trade_amplification_check; }
  /// At most one action per analysis, in this order: PARTIAL_TAKE_PROFIT, EXTEND_HOLD, SCALE_IN; nothing (no opinion)
  /// when there is nothing new to do.
  std::optional<AmplificationAnswer> amplification_check(const PositionSnapshot& p, const AmplificationAnswer& current,
                                                         std::string& why) override;

  /// The state of the open positions, by position id.
  const std::map<std::uint64_t, AmplificationState>& positions() const { return positions_; }
  /// EXTEND_HOLD decisions so far.
  std::uint64_t extend_holds() const { return extend_holds_; }
  /// SCALE_IN decisions so far.
  std::uint64_t scale_ins() const { return scale_ins_; }
  /// SCALE_IN refusals (PBA, AI-HFOS or PIL) so far.
  std::uint64_t scale_ins_blocked() const { return scale_ins_blocked_; }
  /// PARTIAL_TAKE_PROFIT decisions so far.
  std::uint64_t partial_takes() const { return partial_takes_; }
  /// The options in force.
  const ProfitAmplificationOptions& options() const { return options_; }

 protected:
  /// Forgets closed positions.
  void on_start() override;

 private:
  /// "would " (OBSERVE), "recommend " (ADVISORY) or "" (acting).
  const char* verb() const;
  /// Why a SCALE_IN may not happen now ("" : it may).
  std::string scale_in_refusal(const PositionSnapshot& p, double add_notional) const;

  ProfitAmplificationOptions options_;
  const PortfolioGate* gate_;
  const HfosDirectiveSource* hfos_;
  const PositionIntelligence* pil_;
  std::map<std::uint64_t, AmplificationState> positions_;
  std::uint64_t extend_holds_ = 0, scale_ins_ = 0, scale_ins_blocked_ = 0, partial_takes_ = 0;
};

}  // namespace qtos
