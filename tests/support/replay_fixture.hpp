#pragma once
// What the replay tests share: replay options whose policy and risk limits never bind, so a test sees only what the
// engine or the subsystem under test changes, and a seeded pick of random genomes that trade on a market.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/executor/executor.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/util/rng.hpp"

namespace qtos::test {

/// Perpetuals, 10,000 of capital, leverage 2 (margin for a sleeve that spends all its cash plus the fee), no fees
/// unless the test sets them; a policy and risk limits that never bind: every signal becomes an order.
inline ReplayOptions unbounded_replay_options(const std::string& ledger) {
  ReplayOptions o;
  o.exchange.market = MarketKind::linear_perpetual;
  o.exchange.initial_balance = 10'000;
  o.executor.leverage = 2;
  o.ledger_path = ledger;
  Policy p;
  p.max_risk_per_trade = 1.0;
  p.max_open_positions = 1000;
  p.max_leverage = 10;
  p.max_daily_drawdown_pct = 100;
  p.max_open_drawdown_pct = 100;
  p.min_confidence = 0.5;
  o.policy = p;
  RiskLimits r;
  r.max_notional_per_order = 1e12;
  r.max_orders_per_minute = 1'000'000;
  r.price_collar_pct = 1e6;
  o.risk_limits = r;
  return o;
}

/// Which random genomes a test wants.
struct GenomePick {
  std::size_t want = 2;              ///< how many
  std::size_t min_trades = 8;        ///< backtest trades each must make on the whole market
  std::uint64_t seed = 2024;         ///< the draws
  int tries = 400;                   ///< draws at most
  std::function<bool(kernels::Genome&)> accept;  ///< may edit a draw; false passes it over (unset: every draw)
};

/// Up to `pick.want` seeded random genomes that make at least `pick.min_trades` trades on `panel`.
inline std::vector<kernels::Genome> trading_genomes(const MarketPanel& panel, const GenomePick& pick) {
  Rng rng(pick.seed);
  std::vector<kernels::Genome> out;
  const StrategyFeatures f = strategy_features_compute(panel.view(), true);
  for (int tries = 0; tries < pick.tries && out.size() < pick.want; ++tries) {
    kernels::Genome g = genome_random(rng);
    if (pick.accept && !pick.accept(g)) continue;
    const std::vector<kernels::Genome> one = {g};
    BacktestRequest req;
    req.panel = panel.view();
    req.features = &f;
    req.genomes = one;
    if (backtest_trades(req, 0).size() >= pick.min_trades) out.push_back(g);
  }
  return out;
}

/// The same genomes as LIVE strategies (no fitness, no history).
inline std::vector<LiveStrategy> trading_strategies(const MarketPanel& panel, const GenomePick& pick) {
  std::vector<LiveStrategy> out;
  for (const kernels::Genome& g : trading_genomes(panel, pick)) out.push_back(LiveStrategy{genome_id(g), g, 0.0, {}});
  return out;
}

}  // namespace qtos::test
