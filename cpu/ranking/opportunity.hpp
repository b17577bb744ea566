#pragma once
/// @file Opportunity scoring and ranking: filters, cross-sectional robust z-scores, policy weights, sub-scores.
/// A pure library over per-symbol features (cpu/kernels/features.hpp); see docs/INDICATORS.md for the definitions.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/kernels/features.hpp"
#include "cpu/util/enum_names.hpp"

namespace qtos {

/// The five criteria of the design documents.
enum class Criterion { trend, volatility, liquidity, performance, model };
QTOS_ENUM_NAMES(Criterion, "trend", "volatility", "liquidity", "performance", "model");
/// Number of criteria.
inline constexpr int kCriterionCount = 5;
/// Lower-case name of a criterion ("trend", ...).
std::string_view criterion_name(Criterion c);

/// Why a symbol is not ranked.
enum class FilterReason { none, blacklisted, not_whitelisted, no_data, stale, insufficient_history, low_dollar_volume,
                          wide_spread };
QTOS_ENUM_NAMES(FilterReason, "none", "blacklisted", "not_whitelisted", "no_data", "stale", "insufficient_history",
                "low_dollar_volume", "wide_spread");
/// Stable lower-case code of a reason ("stale", "low_dollar_volume", ...).
std::string_view filter_reason_name(FilterReason r);

/// Weights of the criteria (from the policy, so the Meta Strategy Controller can shift them by risk mode) and the
/// width of the volatility band. Weights are >= 0 and need not sum to 1; the score divides by their sum.
struct RankWeights {
  std::array<double, kCriterionCount> weight{1.0, 1.0, 1.0, 1.0, 1.0};  ///< indexed by Criterion
  double volatility_band = 1.0;  ///< robust z within +-band of the universe median scores best (no penalty)
  /// The weight of one criterion.
  double get(Criterion c) const { return weight[static_cast<std::size_t>(c)]; }
};

/// Reads weights from policy key/values: "weight.trend", "weight.volatility", "weight.liquidity",
/// "weight.performance", "weight.model", "volatility_band"; missing keys keep the defaults. Throws
/// std::invalid_argument naming the key and value for an unknown key or a negative/non-finite number.
RankWeights rank_weights_from_policy(const std::map<std::string, double>& values);

/// Filters applied before ranking; a filtered symbol carries the first reason that applies (in the enum's order).
struct RankFilters {
  std::int32_t min_bars = 60;          ///< consecutive bars of history needed (>= the features' warmup)
  double min_dollar_volume = 0.0;      ///< minimum mean quote volume per bar over the liquidity window
  double max_spread = 0.05;            ///< maximum spread proxy (fraction of price)
  std::int32_t stale_bars = 3;         ///< a symbol whose last bar is more than this many bars old is stale
  std::set<std::string> blacklist;     ///< never ranked
  std::set<std::string> whitelist;     ///< when not empty, only these are ranked
};

/// One symbol's place in the ranking.
struct SymbolScore {
  std::string symbol;                      ///< exchange symbol
  std::int32_t index = -1;                 ///< position in the panel
  FilterReason reason = FilterReason::none;
  std::string reason_text;                 ///< for a person: what was measured and the limit
  std::int32_t rank = 0;                   ///< 1 = best; 0 when filtered
  double score = 0.0;                      ///< weighted mean of the sub-scores (robust-z units)
  std::array<double, kCriterionCount> sub{};  ///< per-criterion sub-scores (NaN: criterion absent)
  kernels::FeatureRow features{};          ///< the raw inputs
  double prediction = 0.0;                 ///< model prediction input (NaN when absent)
  /// True when the symbol was ranked.
  bool eligible() const { return reason == FilterReason::none; }
};

/// Result: ranked symbols first (best first, ties by symbol name), then the filtered ones in panel order.
struct Ranking {
  std::vector<SymbolScore> rows;  ///< ranked best first, then filtered
  std::int32_t eligible = 0;  ///< number of ranked symbols
  std::int32_t bar = -1;      ///< the evaluation bar
  /// The best `n` ranked symbols (fewer when fewer are eligible).
  std::span<const SymbolScore> top(std::size_t n) const;
  /// The row of `symbol`, or nullptr.
  const SymbolScore* find(std::string_view symbol) const;
};

/// Robust z-score of every finite value: (x - median) / (1.4826 * MAD), falling back to the mean absolute deviation
/// (x 1.2533) when the MAD is 0, and 0 when both are 0; clipped to [-3, 3]. NaN inputs give NaN.
std::vector<double> robust_z(std::span<const double> values);

/// Ranks the symbols as of bar `bar` from their features. `predictions` (one per symbol, NaN = none) is optional;
/// the model criterion counts only when at least one eligible symbol has a prediction and its weight is > 0.
/// Throws std::invalid_argument when the sizes disagree or a weight is negative.
Ranking opportunity_rank(std::span<const kernels::FeatureRow> features, std::span<const std::string> symbols,
                         std::int32_t bar, const RankWeights& weights, const RankFilters& filters,
                         std::span<const double> predictions = {});

/// Several lines explaining one symbol's score: raw inputs, sub-scores, weights and contributions, or its filter.
std::string ranking_explain(const Ranking& ranking, std::string_view symbol, const RankWeights& weights);

}  // namespace qtos
