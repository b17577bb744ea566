#pragma once
/// @file StrategyGeneratorAI: generates, backtests and evolves strategies into the repository, paper-trades the SHADOW
/// and LIVE ones on the bar stream, promotes a shadow strategy that beats the thresholds over the shadow period,
/// retires a live one that falls below the floor, and publishes StrategyPromoted / StrategyRetired
/// (docs/EVOLUTION.md).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cpu/backtest/backtest.hpp"
#include "cpu/backtest/feature_state.hpp"
#include "cpu/kernels/strategy.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/service/service.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/strategy/strategy_repository.hpp"

namespace qtos {

/// Thresholds and costs of the generator.
struct StrategyGeneratorOptions {
  double promote_min_sharpe = 2.0;     ///< a shadow strategy needs an annualised Sharpe above this (QT_SG_PROMOTE_MIN_SHARPE)
  double promote_min_win_rate = 0.65;  ///< and a win rate above this (QT_SG_PROMOTE_MIN_WIN_RATE)
  double min_trades = 10;              ///< and at least this many closed paper trades (QT_SG_PROMOTE_MIN_TRADES)
  double shadow_days = 7;              ///< observed at least this long (QT_SG_SHADOW_DAYS)
  double live_floor_sharpe = 0.0;      ///< a live strategy below this Sharpe after shadow_days is retired (QT_SG_LIVE_FLOOR_SHARPE)
  TimeNs review_period = 3'600'000'000'000;  ///< how often the promotion rules run (1 hour; QT_SG_REVIEW_INTERVAL)
  kernels::BacktestCosts costs;        ///< paper-trading costs; capital per symbol sub-account
  std::uint64_t seed = 1;              ///< generate_strategy's random stream
  kernels::GapPolicy gaps{};           ///< the backtests' gap policy (QT_GAPS), recorded with each strategy it stores
  std::map<std::string, std::int32_t> price_decimals;  ///< per symbol: quote decimals of the shadow features (RSI, ADX)
};

/// Options from the configuration: QT_SG_SHADOW_DAYS, QT_SG_PROMOTE_MIN_SHARPE, QT_SG_PROMOTE_MIN_WIN_RATE,
/// QT_SG_PROMOTE_MIN_TRADES, QT_SG_LIVE_FLOOR_SHARPE, QT_SG_REVIEW_INTERVAL, QT_GAPS; costs and seed keep their defaults.
StrategyGeneratorOptions strategy_generator_options(const Config& config);
/// The service's mode from the configuration: ENFORCED when QT_SG_AI_ENABLED, OFF otherwise.
SubsystemMode strategy_generator_mode(const Config& config);

/// What evaluate_shadow_strategy found.
struct ShadowEvaluation {
  std::string id;                ///< the strategy
  StrategyStatus status = StrategyStatus::shadow;  ///< its stage
  BacktestMetrics metrics;       ///< paper-trading metrics since tracking began (positions marked at the last close)
  double days = 0;               ///< days tracked
  bool period_elapsed = false;   ///< days >= shadow_days
  bool beats_thresholds = false; ///< Sharpe, win rate and trade count above the promotion thresholds
  bool allowed_by_policy = true; ///< not blocked, and allowed when the policy has an allow-list
};

/// Why a BACKTEST record may not go to SHADOW, or nullopt when it may: it must be the selected strategy of a
/// train/validation/test search (backtest metrics with "selected": true) with a test-window Sharpe above 0.
std::optional<std::string> shadow_entry_refusal(const StrategyRecord& rec);

/// The Strategy Generator AI service (bus owner thread; not thread-safe).
class StrategyGeneratorAI final : public Service {
 public:
  /// In `mode` (OFF: not started; OBSERVE: evaluates and logs, changes nothing; ADVISORY/ENFORCED: promotes and
  /// retires). `repo`, `policy` and `backend` must outlive the service.
  StrategyGeneratorAI(EventBus& bus, SubsystemMode mode, StrategyRepository& repo, const PolicyStore& policy,
                      const BacktestBackend& backend, StrategyGeneratorOptions options);

  /// A new random valid genome from the service's seeded stream.
  kernels::Genome generate_strategy();
  /// One genome over bars [t_begin, t_end) of a panel (t_end -1: the end).
  BacktestMetrics backtest_strategy(const MarketPanel& panel, const kernels::Genome& genome, std::int32_t t_begin = 0,
                                    std::int32_t t_end = -1) const;
  /// Runs the search with its three windows (throws std::invalid_argument without a validation window) and stores its
  /// hall of fame in the repository (status BACKTEST; the selected one marked "selected", each with its train,
  /// validation and test figures); returns the result.
  EvolveResult evolve_population(const MarketPanel& panel, const EvolveOptions& options);
  /// Paper-trading figures of a SHADOW or LIVE strategy and whether it may be promoted; nullopt when untracked.
  std::optional<ShadowEvaluation> evaluate_shadow_strategy(const std::string& id) const;
  /// Moves a strategy one stage on (BACKTEST -> SHADOW -> LIVE), records the reason and publishes StrategyPromoted.
  /// BACKTEST -> SHADOW is refused (conflict) unless shadow_entry_refusal passes.
  Result<StrategyRecord> promote_strategy(const std::string& id, const std::string& reason);
  /// Retires a strategy, records the reason and publishes StrategyRetired.
  Result<StrategyRecord> retire_strategy(const std::string& id, const std::string& reason);
  /// Applies the promotion and retirement rules now (also run every review_period). Returns the ids acted on (or,
  /// in OBSERVE, that would have been).
  std::vector<std::string> review();
  /// Strategies paper-traded now.
  std::size_t tracked_count() const { return tracked_.size(); }

 protected:
  void on_start() override;

 private:
  struct Tracked {
    kernels::Genome genome;
    StrategyStatus status = StrategyStatus::shadow;
    TimeNs since = 0;
    std::map<std::string, kernels::BacktestState<double>> accounts;  // per symbol
  };
  struct SymbolFeed {
    StrategyFeatureState features;
    TimeNs last_open = -1;
    double values[kernels::kStrategyFeatureCount] = {};
  };
  void on_bar(const MarketBarClosed& bar);
  SymbolFeed& symbol_feed(const std::string& symbol);
  void sync_with_repository();
  void feed(const std::string& symbol, double o, double h, double l, double c);

  StrategyRepository& repo_;
  const PolicyStore& policy_;
  const BacktestBackend& backend_;
  StrategyGeneratorOptions opt_;
  Rng rng_;
  std::map<std::string, Tracked> tracked_;    // by strategy id
  std::map<std::string, SymbolFeed> symbols_;  // by symbol
  std::int32_t bar_index_ = 0;
  Clock& clock_;
};

}  // namespace qtos
