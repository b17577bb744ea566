#pragma once
/// @file MarketOpportunityRanker: keeps the streaming feature state of every symbol from MarketBarClosed events,
/// re-ranks on its interval timer (QT_OPP_RANKER_UPDATE_INTERVAL) with weights from the policy, and publishes the
/// TOP_N (QT_OPP_RANKER_TOP_N) as OpportunitiesUpdated. Dollar volume is the bar's quote_volume; only a bar whose
/// publisher did not know it (NaN) falls back to volume x close.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cpu/indicators/streaming.hpp"
#include "cpu/ranking/opportunity.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/config/config.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/service/service.hpp"

namespace qtos {

/// Policy `extra` keys the ranker reads its weights from: "opp_ranker.weight.trend", "opp_ranker.weight.volatility",
/// "opp_ranker.weight.liquidity", "opp_ranker.weight.performance", "opp_ranker.weight.model",
/// "opp_ranker.volatility_band". Throws std::invalid_argument naming a key whose value is not a number >= 0.
RankWeights rank_weights_from_policy_extra(const std::map<std::string, std::string>& extra);

/// What the ranker ranks and how.
struct RankerOptions {
  std::vector<std::string> symbols;  ///< the universe it follows (bars of other symbols are counted and ignored)
  kernels::FeatureParams features;   ///< indicator windows
  RankFilters filters;               ///< before ranking
};

/// The opportunity ranker service (runs on the bus owner thread).
class MarketOpportunityRanker final : public Service {
 public:
  /// Enabled by QT_OPP_RANKER_ENABLED (mode ENFORCED: it only publishes, it has no soft mode; OFF otherwise);
  /// `policy` must outlive the service. Throws std::invalid_argument on an empty or duplicated symbol list.
  MarketOpportunityRanker(EventBus& bus, const Config& config, const PolicyStore& policy, RankerOptions options);

  /// Replays the last bars of `panel` (same symbols, in order) into the streaming state, so ranking can start at
  /// once; the next bar expected is the one after the panel's last.
  void warm_up(const MarketPanel& panel);
  /// Ranks every symbol on the current streaming state with the current policy weights.
  Ranking rank_all_symbols() const;
  /// One symbol's score, sub-scores and filter reason; throws std::invalid_argument for an unknown symbol.
  SymbolScore score_symbol(const std::string& symbol) const;
  /// The best `n` (default: QT_OPP_RANKER_TOP_N) ranked symbols.
  std::vector<SymbolScore> get_top_n_opportunities(std::optional<std::size_t> n = {}) const;
  /// Ranks and publishes OpportunitiesUpdated (top N with score and 24h dollar volume; universe_size = ranked count).
  void publish_rankings();

  /// Bars consumed into the streaming state (complete intervals).
  std::int64_t bars_applied() const { return engine_.last_bar() + 1; }
  /// Bars ignored: unknown symbol, or an interval that was already closed.
  std::int64_t bars_ignored() const { return bars_ignored_; }
  /// Bars whose quote volume was unknown (NaN) and was estimated as volume x close.
  std::int64_t bars_quote_volume_estimated() const { return bars_quote_volume_estimated_; }
  /// The last ranking published (empty before the first).
  const std::optional<Ranking>& last_ranking() const { return last_; }

 protected:
  void on_start() override;

 private:
  void on_bar(const MarketBarClosed& bar);
  void flush_pending();
  void clear_pending();

  const Config& config_;
  const PolicyStore& policy_;
  RankerOptions options_;
  std::map<std::string, std::int32_t, std::less<>> index_;
  FeatureEngine engine_;
  std::int64_t interval_ms_ = 0;       // from the first bar (or the warm-up panel)
  std::int64_t pending_open_ms_ = -1;  // open time of the interval being collected
  std::int32_t pending_count_ = 0;
  std::vector<float> high_, low_, close_, quote_volume_;  // the interval being collected, NaN = not yet seen
  std::int64_t bars_ignored_ = 0;
  std::int64_t bars_quote_volume_estimated_ = 0;
  std::optional<Ranking> last_;
};

}  // namespace qtos
