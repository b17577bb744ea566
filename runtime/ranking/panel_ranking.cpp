// Ranking a MarketPanel as of one bar.
#include "runtime/ranking/panel_ranking.hpp"

#include <algorithm>
#include <stdexcept>

namespace qtos {

std::vector<kernels::FeatureRow> panel_features(const MarketPanel& panel, std::int32_t bar, const IndicatorBackend& backend,
                                                const kernels::FeatureParams& params) {
  if (panel.n_symbols() == 0 || panel.n_bars() == 0)
    throw std::invalid_argument("the panel is empty (" + std::to_string(panel.n_symbols()) + " symbols x " +
                                std::to_string(panel.n_bars()) + " bars); nothing to rank");
  if (bar < 0 || bar >= panel.n_bars())
    throw std::invalid_argument("bar " + std::to_string(bar) + " is outside the panel's " + std::to_string(panel.n_bars()) +
                                " bars");
  std::vector<kernels::FeatureRow> rows(static_cast<std::size_t>(panel.n_symbols()));
  backend.features(panel.view(), params, std::max(0, bar - kRankHistoryBars + 1), bar, rows);
  return rows;
}

Ranking panel_rank(const MarketPanel& panel, const RankRequest& request, const IndicatorBackend& backend) {
  const std::int32_t bar = request.bar < 0 ? panel.n_bars() - 1 : request.bar;
  const auto rows = panel_features(panel, bar, backend, request.features);
  return opportunity_rank(rows, panel.symbols(), bar, request.weights, request.filters, request.predictions);
}

}  // namespace qtos
