// The CUDA backends' device-memory reuse and launch limits, against TBB: a panel's device copy follows the panel's
// identity (PanelView::id), and a backtest over more symbols than one grid row (65,535) covers every symbol.
// Both skip without a device.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/registry/backends.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace cuda_hygiene_test {

using kernels::IndicatorKind;

/// True when every bar of every symbol agrees to 2e-4 of the larger magnitude (NaN matching NaN).
::testing::AssertionResult series_close(const std::vector<float>& got, const std::vector<float>& want,
                                        const kernels::PanelView& v) {
  for (std::int32_t s = 0; s < v.n_symbols; ++s)
    for (std::int32_t t = 0; t < v.n_bars; ++t) {
      const auto i = static_cast<std::size_t>(v.at(s, t));
      const double g = got[i], w = want[i];
      const bool ok = std::isnan(w) ? std::isnan(g) : std::fabs(g - w) <= 2e-4 * std::max(1.0, std::fabs(w));
      if (!ok)
        return ::testing::AssertionFailure() << "symbol " << s << " bar " << t << ": " << g << " vs " << w;
    }
  return ::testing::AssertionSuccess();
}

TEST(CudaResidency, PanelCopyFollowsThePanelId) {
  if (device_report().cuda_devices == 0) GTEST_SKIP() << "no CUDA device: " << device_report().cuda_error;
  auto backends = indicator_backends();
  const IndicatorBackend& gpu = backend_select(backends, DeviceKind::cuda);
  const auto cpu = detail::indicator_cpu_backend();
  testing::OwnedPanel p = testing::synthetic_panel(40, 300, 5);
  kernels::IndicatorParams params;
  params.period = 14;
  auto run = [&](const IndicatorBackend& b, const kernels::PanelView& v) {
    std::vector<float> out(indicator_out_size(IndicatorKind::atr, v));
    b.series(v, IndicatorKind::atr, params, out);
    return out;
  };
  kernels::PanelView v = p.view();
  v.id = 0xC0FFEE01;
  EXPECT_TRUE(series_close(run(gpu, v), run(*cpu, v), v)) << "first copy";
  // Same host memory, new contents, new id: the device copy is refreshed (a pointer key would have kept the old one).
  for (auto* col : {&p.high, &p.low, &p.close})
    for (float& x : *col) x *= 3.0f;
  v.id = 0xC0FFEE02;
  EXPECT_TRUE(series_close(run(gpu, v), run(*cpu, v), v)) << "after a change of contents";
  // Fewer leading symbols of the same panel reuse the copy; a slice further in is copied again.
  kernels::PanelView prefix = v;
  prefix.n_symbols = 7;
  EXPECT_TRUE(series_close(run(gpu, prefix), run(*cpu, prefix), prefix)) << "prefix";
  kernels::PanelView slice = v;
  const std::int64_t off = 9 * v.stride;
  slice.high += off;
  slice.low += off;
  slice.close += off;
  slice.quote_volume += off;
  slice.open += off;
  slice.n_symbols = 3;
  EXPECT_TRUE(series_close(run(gpu, slice), run(*cpu, slice), slice)) << "slice";
  // A hand-built view (id 0) is copied every call.
  for (float& x : p.close) x *= 0.5f;
  kernels::PanelView anon = p.view();
  EXPECT_TRUE(series_close(run(gpu, anon), run(*cpu, anon), anon)) << "id 0";
}

TEST(CudaTiling, BacktestCoversMoreSymbolsThanOneGridRow) {
  if (device_report().cuda_devices == 0) GTEST_SKIP() << "no CUDA device: " << device_report().cuda_error;
  auto backends = backtest_backends();
  const BacktestBackend& gpu = backend_select(backends, DeviceKind::cuda);
  const auto cpu = detail::backtest_cpu_backend();
  constexpr std::int32_t kS = 65535 + 70;  // two launches over gridDim.y
  const testing::OwnedPanel p = testing::synthetic_panel(kS, 48, 9, false);
  const StrategyFeatures f = strategy_features_compute(p.view());
  kernels::Genome g;
  g.entry[0] = {static_cast<std::int32_t>(kernels::CondKind::mom_up), 0, 0, 0.0f};
  g.max_hold = 4;
  const std::vector<kernels::Genome> gs = {kernels::genome_normalize(g)};
  BacktestRequest r;
  r.panel = p.view();
  r.features = &f;
  r.genomes = gs;
  r.per_symbol = true;
  const BacktestResult a = gpu.run(r), b = cpu->run(r);
  ASSERT_EQ(a.genome_symbol.size(), static_cast<std::size_t>(kS));
  for (std::int32_t s : {0, 65534, 65535, kS - 1}) {
    const auto i = static_cast<std::size_t>(s);
    EXPECT_EQ(a.genome_symbol[i].n, b.genome_symbol[i].n) << "symbol " << s;
    EXPECT_GT(a.genome_symbol[i].n, 0.0) << "symbol " << s << " was not run";
  }
  EXPECT_EQ(a.genome[0].n, b.genome[0].n);
  EXPECT_EQ(a.genome[0].accounts, b.genome[0].accounts);
}

}  // namespace cuda_hygiene_test
}  // namespace qtos
