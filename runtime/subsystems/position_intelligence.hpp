#pragma once
/// @file The Position Intelligence Layer (PIL): classifies every open position as STRONG_WINNER, WINNER, NEUTRAL, LOSER
/// or TOXIC from its R multiple, the profit it gave back from its peak, its time in trade and whether its entry signal
/// still fires. OBSERVE logs "would classify"; ADVISORY labels the position (the label reaches the ledger's trade);
/// ENFORCED also exits TOXIC positions. (QT_AI_PIL_ENABLED, QT_AI_PIL_MODE, QT_AI_PIL_CLASSIFICATION_INTERVAL,
/// QT_AI_PIL_TOXIC_R, QT_AI_PIL_TOXIC_BARS; docs/subsystems/PIL.md.)

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "cpu/util/enum_names.hpp"
#include "runtime/subsystems/ai_subsystem.hpp"

namespace qtos {

/// The class of an open position, from best to worst.
enum class PositionClass : std::uint8_t { strong_winner, winner, neutral, loser, toxic };
QTOS_ENUM_NAMES(PositionClass, "STRONG_WINNER", "WINNER", "NEUTRAL", "LOSER", "TOXIC");

/// A position's progress in units of its initial risk (R).
struct PositionR {
  double r = 0;           ///< open profit / unit
  double peak_r = 0;      ///< the best open profit so far / unit (>= r)
  double giveback_r = 0;  ///< peak_r - r (>= 0)
  double unit = 0;        ///< one R in price
};

/// The R view of a snapshot: the unit is the initial risk; without one (a position with no stop, or a snapshot from an
/// executor that does not fill initial_risk) it is derived from r_multiple and the open profit, else it is
/// `default_risk_pct` of the entry price. The peak comes from drawdown_pct (percent of entry value).
PositionR position_r(const PositionSnapshot& p, double default_risk_pct);

/// The thresholds of the classification.
struct PositionIntelligenceOptions {
  std::int64_t interval_s = 300;           ///< QT_AI_PIL_CLASSIFICATION_INTERVAL: a position is re-classified this often
  double strong_winner_r = 2.0;            ///< STRONG_WINNER from this R ...
  double strong_winner_max_giveback = 0.25;  ///< ... having given back at most this fraction of its peak R
  double winner_r = 1.0;                   ///< WINNER from this R
  double loser_r = -0.25;                  ///< LOSER at or below this R (NEUTRAL between it and winner_r)
  double toxic_r = -0.75;                  ///< QT_AI_PIL_TOXIC_R: TOXIC at or below this R with the thesis gone
  std::int32_t toxic_bars = 48;            ///< QT_AI_PIL_TOXIC_BARS: TOXIC after this many bars at R < 0, thesis gone
  double toxic_giveback = 0.75;            ///< TOXIC: a winner (peak >= winner_r) gave back this fraction, thesis gone
  double default_risk_pct = 2.0;           ///< one R of a position without a stop, percent of its entry price
  /// The options of `config` (the interval, toxic_r and toxic_bars; the rest at their defaults).
  static PositionIntelligenceOptions from_config(const Config& config);
};

/// One classification: the class and what decided it.
struct PositionAssessment {
  PositionClass label = PositionClass::neutral;  ///< the class
  PositionR r;                                    ///< the R view it was decided on
  const char* why = "";                           ///< the rule that decided it ("thesis gone at -0.8R", ...)
};

/// Classifies `p` under `o` (pure). Rules in order: TOXIC (thesis gone and: r <= toxic_r; or bars_held >= toxic_bars
/// with r < 0; or a peak >= winner_r of which >= toxic_giveback was given back), STRONG_WINNER, WINNER, LOSER, NEUTRAL.
PositionAssessment position_classify(const PositionSnapshot& p, const PositionIntelligenceOptions& o);

/// The label PIL gives an open position.
struct PositionLabel {
  Symbol symbol;                                  ///< the position's symbol
  PositionClass label = PositionClass::neutral;   ///< its current class
  double r = 0;                                   ///< R at the classification
  double drawdown_pct = 0;                        ///< drawdown from the peak at the classification, % of entry value
  TimeNs classified_at = 0;                       ///< clock time of the classification
};

/// The PIL subsystem: answers post_trade_position_classification. Bus owner thread.
class PositionIntelligence final : public AiSubsystem {
 public:
  /// Named "PIL", mode from config.subsystem(Subsystem::pil) (OFF when disabled); decisions also to
  /// `<log_dir>/ai_subsystem_pil.log`. Throws std::invalid_argument naming an option out of range.
  PositionIntelligence(EventBus& bus, const Config& config, PositionIntelligenceOptions options, std::string log_dir = "");

  bool answers(Hook hook) const override { return hook == Hook::post_trade_position_classification; }
  /// The label of the position (cached for the interval; a TOXIC crossing is taken at once), exit = TOXIC; no opinion
  /// while the label is the one answered before (and not TOXIC), so an unchanged position costs the pipeline nothing.
  std::optional<ClassificationAnswer> position_classification(const PositionSnapshot& p, const ClassificationAnswer& current,
                                                              std::string& why) override;

  /// The label of an open position, if it has been classified.
  std::optional<PositionClass> label(std::uint64_t position_id) const;
  /// The current labels of the open positions, by position id.
  const std::map<std::uint64_t, PositionLabel>& labels() const { return labels_; }
  /// Open positions per class (health).
  std::array<std::int64_t, EnumNames<PositionClass>::kCount> counts() const;
  /// TOXIC exits answered in ENFORCED so far.
  std::uint64_t toxic_exits() const { return toxic_exits_; }
  /// The options in force.
  const PositionIntelligenceOptions& options() const { return options_; }

 protected:
  /// Forgets closed positions.
  void on_start() override;

 private:
  PositionIntelligenceOptions options_;
  std::map<std::uint64_t, PositionLabel> labels_;
  std::uint64_t toxic_exits_ = 0;
};

}  // namespace qtos
