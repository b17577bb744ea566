#pragma once
/// @file Ranking a MarketPanel as of one bar: features on a backend, then the opportunity ranking library.
/// Shared by `qtos rank` and the MarketOpportunityRanker service.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/kernels/features.hpp"
#include "cpu/ranking/opportunity.hpp"
#include "runtime/data/market_panel.hpp"

namespace qtos {

/// Bars of history the features are computed over (from `bar - kRankHistoryBars + 1`): ten times the slowest EMA,
/// after which the seed's weight ((1 - 2/51)^500 < 1e-8) no longer shows in a float.
inline constexpr std::int32_t kRankHistoryBars = 2520;

/// Everything a ranking needs besides the panel.
struct RankRequest {
  std::int32_t bar = -1;                   ///< evaluation bar; -1 = the last bar of the panel
  kernels::FeatureParams features;         ///< indicator windows
  RankWeights weights;                     ///< from the policy
  RankFilters filters;                     ///< before ranking
  std::vector<double> predictions;         ///< model column, one per symbol, or empty
};

/// Features of every symbol as of `bar` on `backend` (history limited to kRankHistoryBars).
std::vector<kernels::FeatureRow> panel_features(const MarketPanel& panel, std::int32_t bar, const IndicatorBackend& backend,
                                                const kernels::FeatureParams& params);

/// Ranks every symbol of `panel` as of `request.bar`. Throws std::invalid_argument when the panel is empty or the
/// bar is outside it.
Ranking panel_rank(const MarketPanel& panel, const RankRequest& request, const IndicatorBackend& backend);

}  // namespace qtos
