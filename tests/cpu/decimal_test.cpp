// Decimal-quoted prices (FX at 4 decimals): RSI and DMI/ADX taken at the quotes' precision equal an exact-decimal
// computation of the same algorithm (tests/cpu/decimal_reference.py, Python's decimal), and the float backtester behind
// `evolve` and the double one behind `backtest-strategy` agree where a close equals a band exactly in decimal.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/backtest/feature_state.hpp"
#include "cpu/indicators/streaming.hpp"
#include "cpu/kernels/strategy.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/util/rng.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace decimal_test {

using kernels::CondKind;
using kernels::Genome;
using testing::OwnedPanel;

/// "1.1932" from 11932 ticks of 0.0001.
std::string quote(std::int64_t ticks) {
  return std::to_string(ticks / 10000) + "." + std::to_string(10000 + ticks % 10000).substr(1);
}

/// A 4-decimal random walk in ticks of 0.0001 around 1.19 with many unchanged closes (as imported: decimal text parsed
/// to float), so that closes equal their moving averages exactly in decimal.
OwnedPanel decimal_panel(std::int32_t n_symbols, std::int32_t n_bars, std::uint64_t seed) {
  OwnedPanel p = testing::synthetic_panel(n_symbols, n_bars, seed, false);
  std::mt19937_64 rng(seed);
  std::discrete_distribution<int> step({1, 2, 3, 8, 3, 2, 1});  // -3..+3 ticks, unchanged most often
  std::uniform_int_distribution<int> wick(0, 3);
  for (std::int32_t s = 0; s < n_symbols; ++s) {
    std::int64_t ticks = 11900 + 37 * s;
    for (std::int32_t t = 0; t < n_bars; ++t) {
      const std::int64_t open = ticks;
      ticks += step(rng) - 3;
      const std::int64_t hi = std::max(open, ticks) + wick(rng), lo = std::min(open, ticks) - wick(rng);
      const auto o = static_cast<std::size_t>(s * p.stride + t);
      // As an import parses "1.1932": the decimal text to the nearest float.
      p.open[o] = std::stof(quote(open));
      p.high[o] = std::stof(quote(hi));
      p.low[o] = std::stof(quote(lo));
      p.close[o] = std::stof(quote(ticks));
    }
  }
  return p;
}

TEST(DecimalPrices, DecimalsAreInferredFromTheQuotes) {
  const std::vector<float> fx = {1.1932f, 1.1930f, 1.2f, 1.19f};
  EXPECT_EQ(price_decimals_infer(fx, fx, fx), 4);
  const std::vector<float> stock = {412.5f, 413.25f, 410.0f};
  EXPECT_EQ(price_decimals_infer(stock, stock, stock), 2);
  const std::vector<float> whole = {100.0f, 101.0f, NAN};
  EXPECT_EQ(price_decimals_infer(whole, whole, whole), 0);
  const std::vector<float> walk = {101.739136f, 99.1200409f, 100.515533f};  // a random walk's floats, not quotes
  EXPECT_EQ(price_decimals_infer(walk, walk, walk), -1);
  const std::vector<float> empty;
  EXPECT_EQ(price_decimals_infer(empty, empty, empty), -1);
}

TEST(DecimalPrices, RsiAndAdxMatchAnExactDecimalComputation) {
  // A 4-decimal series with many ties: equal up and down moves of the high and low (which decide the side of a bar's
  // directional movement) and unchanged closes.
  std::mt19937_64 rng(23);
  std::discrete_distribution<int> step({1, 2, 3, 6, 3, 2, 1});
  std::uniform_int_distribution<int> wick(0, 2);
  const std::int32_t n_bars = 1200;
  std::vector<std::int64_t> hi(n_bars), lo(n_bars), cl(n_bars);
  std::int64_t ticks = 11932;
  for (std::int32_t t = 0; t < n_bars; ++t) {
    const std::int64_t open = ticks;
    ticks += step(rng) - 3;
    hi[static_cast<std::size_t>(t)] = std::max(open, ticks) + wick(rng);
    lo[static_cast<std::size_t>(t)] = std::min(open, ticks) - wick(rng);
    cl[static_cast<std::size_t>(t)] = ticks;
  }
  OwnedPanel p = testing::synthetic_panel(1, n_bars, 1, false);
  const auto dir = std::filesystem::temp_directory_path() / ("qtos_decimal_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream in(dir / "bars.csv");
    for (std::int32_t t = 0; t < n_bars; ++t) {
      const auto u = static_cast<std::size_t>(t);
      in << quote(hi[u]) << ',' << quote(lo[u]) << ',' << quote(cl[u]) << '\n';
      p.high[u] = std::stof(quote(hi[u]));  // as an import parses the quotes
      p.low[u] = std::stof(quote(lo[u]));
      p.close[u] = std::stof(quote(cl[u]));
    }
  }
  const std::string script = std::string(QTOS_SOURCE_DIR) + "/tests/cpu/decimal_reference.py";
  const std::string cmd = "python3 '" + script + "' 14 < '" + (dir / "bars.csv").string() + "' > '" +
                          (dir / "exact.csv").string() + "' 2> '" + (dir / "err.txt").string() + "'";
  if (std::system("python3 -c 'import decimal' > /dev/null 2>&1") != 0) GTEST_SKIP() << "python3 is not installed";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<std::vector<double>> exact(4, std::vector<double>(n_bars, NAN));  // rsi, +DI, -DI, ADX
  {
    std::ifstream out(dir / "exact.csv");
    std::string line;
    for (std::int32_t t = 0; t < n_bars && std::getline(out, line); ++t) {
      std::stringstream cells(line);
      std::string cell;
      for (int j = 0; j < 4 && std::getline(cells, cell, ','); ++j)
        if (!cell.empty()) exact[static_cast<std::size_t>(j)][static_cast<std::size_t>(t)] = std::stod(cell);
    }
  }
  std::filesystem::remove_all(dir);
  const std::int32_t decimals = price_decimals_infer(p.high, p.low, p.close);
  ASSERT_EQ(decimals, 4);
  // Worst relative error of our RSI and DMI (double, serial) against the exact values.
  const auto worst = [&](std::int32_t price_decimals) {
    kernels::IndicatorParams prm;
    prm.period = 14;
    prm.price_decimals = price_decimals;
    std::vector<double> rsi(indicator_out_size(kernels::IndicatorKind::rsi, p.view()));
    std::vector<double> dmi(indicator_out_size(kernels::IndicatorKind::dmi, p.view()));
    indicator_series_serial(p.view(), kernels::IndicatorKind::rsi, prm, rsi);
    indicator_series_serial(p.view(), kernels::IndicatorKind::dmi, prm, dmi);
    std::vector<double> w(4, 0.0);
    std::size_t compared = 0;
    for (std::int32_t t = 0; t < n_bars; ++t) {
      const auto u = static_cast<std::size_t>(t);
      const double got[4] = {rsi[u], dmi[u], dmi[static_cast<std::size_t>(p.stride) + u],
                             dmi[2 * static_cast<std::size_t>(p.stride) + u]};
      for (std::size_t j = 0; j < 4; ++j) {
        const double want = exact[j][u];
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(got[j])) << "output " << j << " t=" << t;
          continue;
        }
        ++compared;
        w[j] = std::max(w[j], std::fabs(got[j] - want) / std::max(std::fabs(want), 1e-3));
      }
    }
    EXPECT_GT(compared, 4000u);
    return w;
  };
  const auto at_precision = worst(decimals);
  for (std::size_t j = 0; j < 4; ++j) EXPECT_LT(at_precision[j], 1e-12) << "output " << j;  // the issue asks 2e-5
  // Taken as stored, the float rounding of the quotes breaks the ties: ADX is off by far more (measured: ~40%).
  EXPECT_GT(worst(-1)[3], 1e-3);
}

/// A panel of decimal-quoted series with many ties (4 decimals) and the exact-decimal RSI, +DI, -DI, ADX of each symbol
/// at `period` (tests/cpu/decimal_reference.py): exact[s][output][t], NaN inside the lookback.
struct DecimalMarket {
  OwnedPanel panel;
  std::vector<std::vector<std::vector<double>>> exact;
};

/// Empty when python3 cannot run the reference.
std::optional<DecimalMarket> decimal_market(std::int32_t n_symbols, std::int32_t n_bars, std::int32_t period) {
  if (std::system("python3 -c 'import decimal' > /dev/null 2>&1") != 0) return std::nullopt;
  DecimalMarket m{testing::synthetic_panel(n_symbols, n_bars, 1, false), {}};
  std::mt19937_64 rng(29);
  std::discrete_distribution<int> step({1, 2, 3, 6, 3, 2, 1});
  std::uniform_int_distribution<int> wick(0, 2);
  const auto dir = std::filesystem::temp_directory_path() / ("qtos_decimal_all_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (std::int32_t s = 0; s < n_symbols; ++s) {
    std::int64_t ticks = 11932 + 101 * s;
    {
      std::ofstream in(dir / "bars.csv");
      for (std::int32_t t = 0; t < n_bars; ++t) {
        const std::int64_t open = ticks;
        ticks += step(rng) - 3;
        const std::int64_t hi = std::max(open, ticks) + wick(rng), lo = std::min(open, ticks) - wick(rng);
        in << quote(hi) << ',' << quote(lo) << ',' << quote(ticks) << '\n';
        const auto u = static_cast<std::size_t>(s * m.panel.stride + t);
        m.panel.high[u] = std::stof(quote(hi));  // as an import parses the quotes
        m.panel.low[u] = std::stof(quote(lo));
        m.panel.close[u] = std::stof(quote(ticks));
        m.panel.open[u] = std::stof(quote(open));
      }
    }
    const std::string cmd = "python3 '" + std::string(QTOS_SOURCE_DIR) + "/tests/cpu/decimal_reference.py' " + std::to_string(period) +
                            " < '" + (dir / "bars.csv").string() + "' > '" + (dir / "exact.csv").string() + "'";
    if (std::system(cmd.c_str()) != 0) return std::nullopt;
    std::vector<std::vector<double>> ex(4, std::vector<double>(static_cast<std::size_t>(n_bars), NAN));
    std::ifstream out(dir / "exact.csv");
    std::string line;
    for (std::int32_t t = 0; t < n_bars && std::getline(out, line); ++t) {
      std::stringstream cells(line);
      std::string cell;
      for (std::size_t j = 0; j < 4 && std::getline(cells, cell, ','); ++j)
        if (!cell.empty()) ex[j][static_cast<std::size_t>(t)] = std::stod(cell);
    }
    m.exact.push_back(std::move(ex));
  }
  std::filesystem::remove_all(dir);
  return m;
}

/// Worst relative error (denominator at least 1e-3) of got(s, output, t) against the exact values, per output; a value
/// where the exact one is NaN must be NaN too.
template <class Got>
std::vector<double> worst_error(const DecimalMarket& m, Got&& got) {
  std::vector<double> w(4, 0.0);
  for (std::size_t s = 0; s < m.exact.size(); ++s)
    for (std::size_t j = 0; j < 4; ++j)
      for (std::size_t t = 0; t < m.exact[s][j].size(); ++t) {
        const double want = m.exact[s][j][t];
        const double g = got(static_cast<std::int32_t>(s), static_cast<int>(j), static_cast<std::int32_t>(t));
        if (std::isnan(g)) continue;  // a form that leaves an output out (the feature bank has no DI planes)
        if (std::isnan(want)) {
          ADD_FAILURE() << "a value inside the lookback: symbol " << s << " output " << j << " bar " << t;
          return w;
        }
        w[j] = std::max(w[j], std::fabs(g - want) / std::max(std::fabs(want), 1e-3));
      }
  return w;
}

TEST(DecimalPrices, EveryBackendAndTheStreamingFormsMatchTheExactDecimalComputation) {
  // Nine symbols: one block of eight SIMD lanes and a row, on every backend, at the precision each runs in.
  const auto market = decimal_market(9, 320, 14);
  if (!market) GTEST_SKIP() << "python3 is not installed";
  const DecimalMarket& m = *market;
  const kernels::PanelView v = m.panel.view();
  kernels::IndicatorParams prm;
  prm.period = 14;
  prm.price_decimals = 4;
  const auto plane = static_cast<std::size_t>(v.n_symbols) * static_cast<std::size_t>(v.stride);
  const auto at = [&](std::int32_t s, std::int32_t t) { return static_cast<std::size_t>(v.at(s, t)); };
  auto report = [](const std::string& what, const std::vector<double>& w) {
    std::printf("%-28s rsi %.2e  +di %.2e  -di %.2e  adx %.2e\n", what.c_str(), w[0], w[1], w[2], w[3]);
  };
  for (const auto& backend : indicator_backends()) {
    std::vector<float> rsi(indicator_out_size(kernels::IndicatorKind::rsi, v)), dmi(indicator_out_size(kernels::IndicatorKind::dmi, v));
    backend->series(v, kernels::IndicatorKind::rsi, prm, rsi);
    backend->series(v, kernels::IndicatorKind::dmi, prm, dmi);
    const auto w = worst_error(m, [&](std::int32_t s, int j, std::int32_t t) {
      return j == 0 ? double(rsi[at(s, t)]) : double(dmi[static_cast<std::size_t>(j - 1) * plane + at(s, t)]);
    });
    report(std::string(backend->name()) + " (float)", w);
    for (std::size_t j = 0; j < 4; ++j) EXPECT_LT(w[j], 2e-5) << backend->name() << " output " << j;
  }
  {
    std::vector<double> rsi(indicator_out_size(kernels::IndicatorKind::rsi, v)), dmi(indicator_out_size(kernels::IndicatorKind::dmi, v));
    indicator_series_serial(v, kernels::IndicatorKind::rsi, prm, rsi);
    indicator_series_serial(v, kernels::IndicatorKind::dmi, prm, dmi);
    const auto w = worst_error(m, [&](std::int32_t s, int j, std::int32_t t) {
      return j == 0 ? rsi[at(s, t)] : dmi[static_cast<std::size_t>(j - 1) * plane + at(s, t)];
    });
    report("serial (double)", w);
    for (std::size_t j = 0; j < 4; ++j) EXPECT_LT(w[j], 1e-12) << "serial output " << j;
  }
  const auto streamed = [&](auto zero) {
    using T = decltype(zero);
    std::vector<double> rsi(plane, NAN), dmi(3 * plane, NAN);
    for (std::int32_t s = 0; s < v.n_symbols; ++s) {
      IndicatorStream<T> a(kernels::IndicatorKind::rsi, prm), b(kernels::IndicatorKind::dmi, prm);
      for (std::int32_t t = 0; t < v.n_bars; ++t) {
        const auto i = at(s, t);
        rsi[i] = double(a.update(v.high[i], v.low[i], v.close[i], v.quote_volume[i])[0]);
        const auto o = b.update(v.high[i], v.low[i], v.close[i], v.quote_volume[i]);
        for (std::size_t j = 0; j < 3; ++j) dmi[j * plane + i] = double(o[j]);
      }
    }
    return worst_error(m, [&](std::int32_t s, int j, std::int32_t t) {
      return j == 0 ? rsi[at(s, t)] : dmi[static_cast<std::size_t>(j - 1) * plane + at(s, t)];
    });
  };
  const auto sf = streamed(0.0F), sd = streamed(0.0);
  report("streaming (float)", sf);
  report("streaming (double)", sd);
  for (std::size_t j = 0; j < 4; ++j) {
    EXPECT_LT(sf[j], 2e-5) << "streaming float output " << j;
    EXPECT_LT(sd[j], 1e-12) << "streaming double output " << j;
  }

  // The strategy feature bank infers each symbol's decimals: its RSI(14) and ADX(14) planes, the float ones the
  // backtest backends read and the double ones of the serial reference.
  const StrategyFeatures bank = strategy_features_compute(v, true);
  EXPECT_EQ(bank.price_decimals, std::vector<std::int32_t>(9, 4));
  const auto rsi_plane = static_cast<std::size_t>(kernels::StrategyFeature::rsi0) + 1, adx_plane = static_cast<std::size_t>(kernels::StrategyFeature::adx0) + 1;
  ASSERT_EQ(kernels::kRsiPeriods[1], 14);
  ASSERT_EQ(kernels::kAdxPeriods[1], 14);
  const auto bank_error = [&](const auto& planes) {
    return worst_error(m, [&](std::int32_t s, int j, std::int32_t t) {
      if (j == 1 || j == 2) return double(NAN);  // the bank has no DI planes
      const std::size_t p = j == 0 ? rsi_plane : adx_plane;
      return double(planes[p * static_cast<std::size_t>(bank.plane_size) + at(s, t)]);
    });
  };
  const auto bf = bank_error(bank.f32), bd = bank_error(bank.f64);
  report("feature bank (float planes)", bf);
  report("feature bank (double)", bd);
  for (std::size_t j : {0U, 3U}) {
    EXPECT_LT(bf[j], 2e-5) << "feature bank float output " << j;
    EXPECT_LT(bd[j], 1e-12) << "feature bank double output " << j;
  }
  // The live form of the bank (the executor's, given the same decimals) is the batch bank bar for bar.
  StrategyFeatureState live({}, bank.price_decimals[3]);
  double row[kernels::kStrategyFeatureCount];
  for (std::int32_t t = 0; t < v.n_bars; ++t) {
    live.update(v.high[at(3, t)], v.low[at(3, t)], v.close[at(3, t)], row);
    for (std::size_t p : {rsi_plane, adx_plane}) {
      const double b = bank.f64[p * static_cast<std::size_t>(bank.plane_size) + at(3, t)];
      ASSERT_TRUE(b == row[p] || (std::isnan(b) && std::isnan(row[p]))) << t;
    }
  }

  // The ranking features' ADX(14) (float rows) on every backend, with the panel's common decimals.
  kernels::FeatureParams fp;
  fp.price_decimals = panel_price_decimals_common(v);
  EXPECT_EQ(fp.price_decimals, 4);
  for (const auto& backend : indicator_backends()) {
    std::vector<double> adx(plane, NAN);
    for (std::int32_t t_end : {100, 211, v.n_bars - 1}) {
      std::vector<kernels::FeatureRow> rows(static_cast<std::size_t>(v.n_symbols));
      backend->features(v, fp, 0, t_end, rows);
      for (std::int32_t s = 0; s < v.n_symbols; ++s) adx[at(s, t_end)] = rows[static_cast<std::size_t>(s)].get(kernels::Feature::adx);
    }
    const auto w = worst_error(m, [&](std::int32_t s, int j, std::int32_t t) { return j == 3 ? adx[at(s, t)] : double(NAN); });
    report(std::string(backend->name()) + " ranking adx", w);
    EXPECT_GT(w[3], 0.0);  // compared (an exact float match is not expected)
    EXPECT_LT(w[3], 2e-5) << backend->name();
  }
}

TEST(DecimalPrices, FloatAndDoubleBacktestsAgreeWhereACloseTiesItsBand) {
  const OwnedPanel p = decimal_panel(4, 1500, 5);
  const StrategyFeatures f = strategy_features_compute(p.view(), true);
  // Genomes whose rules compare the close with a Bollinger middle (an SMA, which the close equals exactly whenever
  // the window is flat in decimal), plus random ones.
  std::vector<Genome> gs;
  for (std::int32_t period = 0; period < kernels::kBbCount; ++period)
    for (std::int32_t side = 0; side < 3; ++side) {
      Genome g;
      g.entry[0] = {static_cast<std::int32_t>(CondKind::close_above_bb), period, 0, 1.0f};
      g.exit_rule = {static_cast<std::int32_t>(CondKind::close_below_bb), period, 0, 1.0f};
      g.side = side;
      gs.push_back(kernels::genome_normalize(g));
    }
  Rng r(17);
  for (int i = 0; i < 200; ++i) {
    Genome g;
    g.entry[0] = {static_cast<std::int32_t>(r.next() % 13), static_cast<std::int32_t>(r.next() % 6),
                  static_cast<std::int32_t>(r.next() % 6), static_cast<float>(r.uniform(0, 100))};
    g.exit_rule = {static_cast<std::int32_t>(r.next() % 13), static_cast<std::int32_t>(r.next() % 6),
                   static_cast<std::int32_t>(r.next() % 6), static_cast<float>(r.uniform(0, 100))};
    g.side = static_cast<std::int32_t>(r.next() % 3);
    g.max_hold = static_cast<std::int32_t>(r.next() % 60);
    gs.push_back(kernels::genome_normalize(g));
  }
  BacktestRequest req;
  req.panel = p.view();
  req.features = &f;
  req.genomes = gs;
  req.t_begin = 60;
  const BacktestResult ref = backtest_serial(req);
  for (const auto& backend : backtest_backends()) {
    const BacktestResult got = backend->run(req);
    int trade_mismatch = 0;
    double worst_return = 0;
    for (std::size_t g = 0; g < gs.size(); ++g) {
      if (g < 9) {
        EXPECT_EQ(got.genome[g].trades, ref.genome[g].trades) << backend->name() << " band genome " << g;
      }
      if (got.genome[g].trades != ref.genome[g].trades) {
        ++trade_mismatch;
        continue;
      }
      const BacktestMetrics a = backtest_metrics(got.genome[g], req.costs.bars_per_year);
      const BacktestMetrics b = backtest_metrics(ref.genome[g], req.costs.bars_per_year);
      worst_return = std::max(worst_return, std::fabs(a.total_return - b.total_return));
      if (g < 9) {
        EXPECT_GT(ref.genome[g].trades, 20) << "the band genomes must trade";
      }
    }
    // Without the tie band 20 of these 209 genomes changed their trade count (worst return 5.8e-4); with it two do, EMA
    // crossings of ~1,400 trades whose EMAs nearly touch (no decimal tie), within the documented 1%. The returns of the
    // others differ by float equity arithmetic, which grows with the trade count (docs/EVOLUTION.md: measured 1.2e-4 for
    // genomes of 200 to 480 trades here).
    EXPECT_LE(trade_mismatch, static_cast<int>(gs.size()) / 100) << backend->name();
    EXPECT_LT(worst_return, 2e-4) << backend->name();
  }
}

}  // namespace decimal_test
}  // namespace qtos
