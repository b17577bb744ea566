#pragma once
/// @file Population backtests behind the backend interface: the feature bank, metrics, the serial double
/// reference and the TBB backend (docs/EVOLUTION.md).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cpu/backend/device.hpp"
#include "cpu/kernels/panel_view.hpp"
#include "cpu/kernels/strategy.hpp"
#include "cpu/util/enum_names.hpp"

namespace qtos {

namespace kernels {
// The kernels include nothing of the project; the exit reasons' names are listed here, beside their one reader.
QTOS_ENUM_NAMES(ExitReason, "signal", "stop", "target", "trail", "max_hold", "gap", "end");
}  // namespace kernels

/// The indicator series every genome may read, computed once per symbol (kStrategyFeatureCount planes, each laid
/// out like a panel column: plane p of (s, t) at p * plane_size + s * stride + t).
struct StrategyFeatures {
  std::uint64_t id = 0;         ///< unique per strategy_features_compute call in this process (0: built by hand);
                                ///< a device backend keeps the bank resident between runs while the id is the same
  std::int64_t plane_size = 0;  ///< n_symbols * stride
  std::vector<float> f32;       ///< float planes (backends)
  std::vector<double> f64;      ///< double planes (serial reference); empty unless asked for
  kernels::GapPolicy gaps{};    ///< the gap policy of the indicators, which the backtests over this bank follow too
  std::vector<std::int32_t> price_decimals;  ///< per symbol: the decimals RSI and ADX took price changes at (-1: none)
};

/// Computes the feature bank of a panel (parallel over symbols, deterministic) under gap policy `gaps` (default skip:
/// the indicators carry over missing bars; reset-after:N restarts them after longer gaps). RSI and ADX take price
/// changes at each symbol's own quote precision (panel_price_decimals), as `qtos indicators` does.
StrategyFeatures strategy_features_compute(const kernels::PanelView& panel, bool with_double = false,
                                           kernels::GapPolicy gaps = {});

/// Performance figures of one genome (pooled over its symbols) or one (genome, symbol) sub-account.
struct BacktestMetrics {
  double total_return = 0;   ///< mean over sub-accounts of final / initial equity - 1
  double sharpe = 0;         ///< annualised: mean / std of bar returns * sqrt(bars per year); 0 when std is 0
  double sortino = 0;        ///< annualised: mean / sqrt(mean of min(r,0)^2) * sqrt(bars per year)
  double max_drawdown = 0;   ///< worst sub-account peak-to-trough fall, fraction
  double win_rate = 0;       ///< winning trades / trades (0 without trades)
  double trades = 0;         ///< closed trades
  double profit_factor = 0;  ///< gross profit / gross loss (infinity when there are wins and no losses)
  double avg_trade = 0;      ///< mean trade return (P&L / equity before the entry)
  double exposure = 0;       ///< fraction of valid bars that closed in a position
  double observations = 0;   ///< bar returns pooled
  double sr_bar = 0;         ///< non-annualised Sharpe per bar (the deflated Sharpe works in these units)
  double skew = 0;           ///< skewness of the bar returns
  double kurtosis = 3;       ///< kurtosis (not excess) of the bar returns
};

/// Metrics from an accumulator.
BacktestMetrics backtest_metrics(const kernels::BacktestAccum& acc, double bars_per_year);

/// One population backtest: every genome on every symbol over bars [t_begin, t_end).
struct BacktestRequest {
  kernels::PanelView panel;                    ///< the market
  const StrategyFeatures* features = nullptr;  ///< its feature bank (strategy_features_compute)
  std::span<const kernels::Genome> genomes;    ///< the population (normalised genomes)
  kernels::BacktestCosts costs;                ///< fees, slippage, capital, annualisation
  std::int32_t t_begin = 0;                    ///< first bar of the window
  std::int32_t t_end = -1;                     ///< one past the last bar; -1: the panel's end
  bool per_symbol = false;                     ///< also return each (genome, symbol) accumulator
};

/// What a backtest returns.
struct BacktestResult {
  std::vector<kernels::BacktestAccum> genome;         ///< one per genome, merged over symbols in symbol order
  std::vector<kernels::BacktestAccum> genome_symbol;  ///< genome-major P x S, when per_symbol was asked
};

/// Throws std::invalid_argument naming the field when a request is malformed (window, feature bank, genomes,
/// costs); fills in t_end = -1.
BacktestRequest backtest_request_check(BacktestRequest req);

/// A population-backtest backend.
class BacktestBackend : public BackendBase {
 public:
  /// Whether this backend takes `request`; the registry runs a declined one on the TBB backend. TBB takes all.
  virtual bool supports(const BacktestRequest& request) const {
    (void)request;
    return true;
  }
  /// Checks the request, then runs it. Float arithmetic in the step, double accumulators.
  BacktestResult run(const BacktestRequest& req) const;

 protected:
  /// Backend part of run(); the request is checked and has at least one genome and one symbol.
  virtual void run_checked(const BacktestRequest& req, BacktestResult& out) const = 0;
};

/// Plain serial double-precision run of the same step function (the consistency reference); needs f64 planes.
BacktestResult backtest_serial(const BacktestRequest& req);

/// A trade of one genome with its symbol.
struct TradeRecord {
  std::int32_t symbol = 0;    ///< symbol index
  kernels::TradeEvent trade;  ///< the trade
};

/// One genome over every symbol in double precision with its trade list (needs f64 planes).
std::vector<TradeRecord> backtest_trades(const BacktestRequest& req, std::size_t genome_index,
                                         kernels::BacktestAccum* accum_out = nullptr);

/// Lower-case name of an exit reason ("stop", "target", ...).
const char* exit_reason_name(kernels::ExitReason r);

namespace detail {
/// The TBB backend (the registry, cpu/registry/backends.hpp, lists it after CUDA; tests and benchmarks use it alone).
std::unique_ptr<BacktestBackend> backtest_cpu_backend();
}  // namespace detail

}  // namespace qtos
