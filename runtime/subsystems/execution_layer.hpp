#pragma once
/// @file The Execution Layer Manager (AELM): chooses each entry's order type (MARKET, or LIMIT at the last close when
/// AI-HFOS prefers LIMIT or the symbol's volatility or spread is high), slices large entries into TWAP child orders
/// under a volume participation cap (QT_AI_AELM_SMART_EXEC), and checks every entry fill's slippage: above
/// QT_AI_AELM_MAX_SLIPPAGE_BPS the fill is flagged, the rest of the order cancelled and the symbol cooled down for
/// QT_AI_AELM_COOLDOWN_BARS bars (entries denied SLIPPAGE_COOLDOWN). docs/subsystems/AELM.md has the rules.

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/subsystems/ai_subsystem.hpp"

namespace qtos {

/// AELM's thresholds (QT_AI_AELM_*).
struct ExecutionLayerOptions {
  bool smart_exec = false;             ///< QT_AI_AELM_SMART_EXEC: slice large entries
  double max_participation = 0.05;     ///< QT_AI_AELM_MAX_PARTICIPATION: largest slice / average bar quote volume
  std::int64_t max_slices = 10;        ///< QT_AI_AELM_MAX_SLICES
  double max_slippage_bps = 30;        ///< QT_AI_AELM_MAX_SLIPPAGE_BPS
  std::int64_t cooldown_bars = 12;     ///< QT_AI_AELM_COOLDOWN_BARS
  double limit_volatility_pct = 4.0;   ///< QT_AI_AELM_LIMIT_VOLATILITY_PCT: ATR as % of price above which entries go LIMIT
  double limit_spread_bps = 100;       ///< QT_AI_AELM_LIMIT_SPREAD_BPS: spread proxy above which entries go LIMIT
  std::int32_t window = 14;            ///< bars the volatility, spread and volume averages span

  /// The options from the configuration.
  static ExecutionLayerOptions from_config(const Config& config);
};

/// What AELM knows about one symbol, from its bars.
struct ExecutionMarket {
  double close = 0;          ///< last close
  double atr_pct = 0;        ///< average true range, % of the close (Wilder average over `window` bars)
  double spread_bps = 0;     ///< Corwin-Schultz spread proxy of consecutive bars, bps (same average)
  double quote_volume = 0;   ///< average bar quote volume (volume x close where the feed has no quote volume)
  std::int64_t bars = 0;     ///< bars seen
  std::int64_t cooldown_until = 0;  ///< no entry while bars < this (a slippage breach)
};

/// The Execution Layer Manager. Owner thread, like the bus.
class ExecutionLayerManager final : public AiSubsystem {
 public:
  /// Mode from QT_AI_AELM_ENABLED/_MODE (OFF when disabled). `hfos` (may be null) must outlive it. Throws
  /// std::invalid_argument naming an option that is out of range.
  ExecutionLayerManager(EventBus& bus, const Config& config, ExecutionLayerOptions options, const HfosDirectiveSource* hfos = nullptr,
                        std::string log_dir = "");

  /// The symbol's market as AELM sees it (null before its first bar).
  const ExecutionMarket* market(const Symbol& symbol) const;
  /// The order type, limit price and slices it would choose for `candidate` now, and why (pure; the hook's answer).
  OrderTypeAnswer order_type_choose(const TradeCandidate& candidate, std::string& why) const;
  /// Slippage breaches so far.
  std::uint64_t breaches() const { return breaches_; }

  /// The risk check only while some symbol cools down: an idle one would keep the executor from folding repeated
  /// denials.
  bool answers(Hook hook) const override {
    return hook == Hook::execution_order_type_selection || hook == Hook::execution_slippage_check ||
           (hook == Hook::pre_trade_risk_check && !cooling_.empty());
  }
  std::optional<OrderTypeAnswer> order_type_selection(const TradeCandidate& c, const OrderTypeAnswer& current, std::string& why) override;
  std::optional<SlippageAnswer> slippage_check(const TradeCandidate& c, const SlippageAnswer& current, std::string& why) override;
  std::optional<CheckAnswer> risk_check(const TradeCandidate& c, const CheckAnswer& current, std::string& why) override;

 protected:
  void on_start() override;

 private:
  struct State {
    ExecutionMarket m;
    double prev_high = 0, prev_low = 0;
    OrderType last_type = OrderType::market;  // the last answer for the symbol (decisions are taken on change)
    std::int32_t last_slices = 1;
  };
  void on_bar(const MarketBarClosed& bar);

  ExecutionLayerOptions options_;
  const HfosDirectiveSource* hfos_;
  std::unordered_map<Symbol, State, FixedStringHash> symbols_;
  std::vector<Symbol> cooling_;  // symbols in a cooldown (few: erased as each ends)
  bool hfos_limit_ = false;  // AI-HFOS preferred LIMIT at the last answer
  std::uint64_t breaches_ = 0;
};

}  // namespace qtos
