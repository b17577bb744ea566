// Consistency suite: every indicator backend (TBB float, CUDA float) against the serial double run of the same
// states, on panel sizes 0, 1, 31, 32, 33 and more than one CUDA block of symbols and one 32-bar tile of bars.
// Tolerance: |float - double| <= 2e-4 * |double| + 2e-4 * (largest |double| of that output plane), i.e. relative
// to the value, with an absolute floor scaled to the output (MACD lines and z-scores cross zero).
#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/registry/backends.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace indicators_consistency_test {

using kernels::IndicatorKind;
using kernels::IndicatorParams;

constexpr double kRel = 2e-4;

IndicatorParams params_of(IndicatorKind kind) {
  IndicatorParams p;
  p.period = kind == IndicatorKind::macd ? 12 : 14;
  return p;
}

/// Compares bars [0, n_bars) of every symbol (the row padding up to the stride is not part of the output).
void expect_close(std::span<const float> got, std::span<const double> want, const kernels::PanelView& v,
                  const std::string& what) {
  const std::size_t plane = static_cast<std::size_t>(v.n_symbols) * static_cast<std::size_t>(v.stride);
  if (plane == 0) return;
  for (std::size_t j = 0; j * plane < want.size(); ++j) {
    double scale = 0.0;
    for (std::int32_t s = 0; s < v.n_symbols; ++s)
      for (std::int32_t t = 0; t < v.n_bars; ++t) {
        const double w = want[j * plane + static_cast<std::size_t>(v.at(s, t))];
        if (!std::isnan(w)) scale = std::max(scale, std::fabs(w));
      }
    int bad = 0;
    for (std::int32_t s = 0; s < v.n_symbols && bad < 5; ++s) {
      for (std::int32_t t = 0; t < v.n_bars && bad < 5; ++t) {
        const std::size_t i = j * plane + static_cast<std::size_t>(v.at(s, t));
        const double w = want[i];
        const double g = got[i];
        const bool ok = std::isnan(w) ? std::isnan(g) : std::fabs(g - w) <= kRel * std::fabs(w) + kRel * scale;
        if (!ok) ++bad;
        EXPECT_TRUE(ok) << what << " output " << j << " symbol " << s << " bar " << t << ": " << g << " vs " << w;
      }
    }
  }
}

class IndicatorConsistency : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(IndicatorConsistency, EveryBackendMatchesSerialDouble) {
  const auto [n_symbols, n_bars] = GetParam();
  const auto panel = testing::synthetic_panel(n_symbols, n_bars, 1234);
  const auto view = panel.view();
  int ran = 0;
  for (const auto& backend : indicator_backends()) {
    if (!backend->available()) continue;
    ++ran;
    for (int k = 0; k < kernels::kIndicatorKindCount; ++k) {
      const auto kind = static_cast<IndicatorKind>(k);
      const auto prm = params_of(kind);
      std::vector<double> want(indicator_out_size(kind, view));
      indicator_series_serial(view, kind, prm, want);
      std::vector<float> got(want.size(), -12345.0f);
      backend->series(view, kind, prm, got);
      expect_close(got, want, view, std::string(backend->name()) + " " + std::string(indicator_name(kind)) + " " +
                       std::to_string(n_symbols) + "x" + std::to_string(n_bars));
    }
    if (n_bars == 0) continue;
    const kernels::FeatureParams fp;
    std::vector<kernels::FeatureRow> want(static_cast<std::size_t>(n_symbols)), got(want.size());
    features_serial(view, fp, 0, n_bars - 1, want);
    backend->features(view, fp, 0, n_bars - 1, got);
    for (std::size_t s = 0; s < want.size(); ++s) {
      EXPECT_EQ(got[s].history, want[s].history) << backend->name() << " symbol " << s;
      EXPECT_EQ(got[s].last_bar, want[s].last_bar) << backend->name() << " symbol " << s;
      for (int f = 0; f < kernels::kFeatureCount; ++f) {
        const double w = want[s].value[f], g = got[s].value[f];
        if (std::isnan(w)) {
          EXPECT_TRUE(std::isnan(g)) << backend->name() << " feature " << f << " symbol " << s;
        } else {
          // Features are O(1) quantities or, for dollar volume and close, compared relatively.
          EXPECT_NEAR(g, w, kRel * std::fabs(w) + 1e-4) << backend->name() << " feature " << f << " symbol " << s;
        }
      }
    }
  }
  EXPECT_GE(ran, 1) << "the CPU backend must always run";
}

INSTANTIATE_TEST_SUITE_P(Sizes, IndicatorConsistency,
                         ::testing::Values(std::make_tuple(0, 100), std::make_tuple(1, 0), std::make_tuple(1, 1),
                                           std::make_tuple(1, 31), std::make_tuple(31, 32), std::make_tuple(32, 33),
                                           std::make_tuple(33, 130), std::make_tuple(130, 300)),
                         [](const auto& test_info) {
                           return std::to_string(std::get<0>(test_info.param)) + "x" + std::to_string(std::get<1>(test_info.param));
                         });

TEST(IndicatorConsistencyCuda, CpuFloatAndCudaFloatAgreeOrSkip) {
  if (device_report().cuda_devices == 0) GTEST_SKIP() << "no CUDA device: " << device_report().cuda_error;
  auto backends = indicator_backends();
  auto& gpu = backend_select(backends, DeviceKind::cuda);
  auto& cpu = backend_select(backends, DeviceKind::cpu);
  const auto panel = testing::synthetic_panel(300, 1000, 77);
  for (int k = 0; k < kernels::kIndicatorKindCount; ++k) {
    const auto kind = static_cast<IndicatorKind>(k);
    std::vector<float> a(indicator_out_size(kind, panel.view())), b(a.size());
    cpu.series(panel.view(), kind, params_of(kind), a);
    gpu.series(panel.view(), kind, params_of(kind), b);
    std::vector<double> ad(a.begin(), a.end());
    expect_close(b, ad, panel.view(), "cuda vs cpu " + std::string(indicator_name(kind)));
  }
}

}  // namespace indicators_consistency_test
}  // namespace qtos
