// The one backend registry: lists, picking by device, and a request an accelerator declines (`supports` false)
// running on the TBB backend instead. Fake accelerators stand in for CUDA, so this runs on any machine.
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/device.hpp"
#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backend/smoke_backend.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/kernels/strategy.hpp"
#include "cpu/registry/backends.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace registry_test {

using kernels::IndicatorKind;
using kernels::IndicatorParams;
using kernels::PanelView;

constexpr float kFakeValue = 42.0f;

/// Calls that reached a fake accelerator's own run.
struct Calls {
  std::atomic<int> runs{0};
};

/// An accelerator named "cuda" that takes panels of at most `max_symbols` symbols and fills every output with 42.
class FakeIndicators final : public IndicatorBackend {
 public:
  FakeIndicators(std::int32_t max_symbols, Calls& calls, bool available = true)
      : max_symbols_(max_symbols), calls_(calls), available_(available) {}
  std::string_view name() const override { return "cuda"; }
  bool available() const override { return available_; }
  bool supports(const IndicatorRequest& r) const override { return r.panel.n_symbols <= max_symbols_; }

 protected:
  void series_run(const PanelView&, IndicatorKind, const IndicatorParams&, std::span<float> out) const override {
    ++calls_.runs;
    for (float& x : out) x = kFakeValue;
  }
  void features_run(const PanelView&, const kernels::FeatureParams&, std::int32_t, std::int32_t,
                    std::span<kernels::FeatureRow> out) const override {
    ++calls_.runs;
    for (auto& row : out) row = kernels::FeatureRow{};
  }

 private:
  std::int32_t max_symbols_;
  Calls& calls_;
  bool available_;
};

/// An accelerator that takes populations of at most `max_genomes` genomes and returns empty accumulators.
class FakeBacktest final : public BacktestBackend {
 public:
  FakeBacktest(std::size_t max_genomes, Calls& calls) : max_genomes_(max_genomes), calls_(calls) {}
  std::string_view name() const override { return "cuda"; }
  bool supports(const BacktestRequest& r) const override { return r.genomes.size() <= max_genomes_; }

 protected:
  void run_checked(const BacktestRequest& r, BacktestResult& out) const override {
    ++calls_.runs;
    out.genome.assign(r.genomes.size(), kernels::BacktestAccum{});
  }

 private:
  std::size_t max_genomes_;
  Calls& calls_;
};

/// An accelerator that takes series of at most `max_n` prices and writes 42.
class FakeSmoke final : public SmokeBackend {
 public:
  FakeSmoke(std::size_t max_n, Calls& calls) : max_n_(max_n), calls_(calls) {}
  std::string_view name() const override { return "cuda"; }
  bool supports(std::span<const float> close) const override { return close.size() <= max_n_; }
  void log_returns(std::span<const float>, std::span<float> out) const override {
    ++calls_.runs;
    for (float& x : out) x = kFakeValue;
  }

 private:
  std::size_t max_n_;
  Calls& calls_;
};

/// True when a and b hold the same floats, NaN matching NaN.
bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

std::vector<float> series_of(const IndicatorBackend& b, const PanelView& v, IndicatorKind kind, IndicatorParams params) {
  std::vector<float> out(indicator_out_size(kind, v));
  b.series(v, kind, params, out);
  return out;
}

TEST(BackendRegistry, ListsTheAcceleratorFirstThenTbb) {
  Calls calls;
  const auto list = detail::indicator_backends_with(std::make_unique<FakeIndicators>(2, calls));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]->name(), "cuda");
  EXPECT_EQ(list[1]->name(), "cpu");
  EXPECT_EQ(detail::indicator_backends_with(nullptr).size(), 1u);
  // The real lists end with TBB whatever the build.
  EXPECT_EQ(indicator_backends().back()->name(), "cpu");
  EXPECT_EQ(backtest_backends().back()->name(), "cpu");
  EXPECT_EQ(smoke_backends().back()->name(), "cpu");
}

TEST(BackendRegistry, DeclinedIndicatorRequestRunsOnTbb) {
  Calls calls;
  const auto list = detail::indicator_backends_with(std::make_unique<FakeIndicators>(2, calls));
  const IndicatorBackend& picked = backend_select(list, DeviceKind::cuda);
  EXPECT_EQ(picked.name(), "cuda");
  const auto tbb = detail::indicator_cpu_backend();
  IndicatorParams params;
  params.period = 14;

  // Five symbols: declined, so the result is TBB's and the accelerator never ran.
  const auto big = testing::synthetic_panel(5, 200, 11);
  EXPECT_TRUE(same_floats(series_of(picked, big.view(), IndicatorKind::rsi, params),
                          series_of(*tbb, big.view(), IndicatorKind::rsi, params)));
  std::vector<kernels::FeatureRow> rows(5), want(5);
  picked.features(big.view(), kernels::FeatureParams{}, 0, 199, rows);
  tbb->features(big.view(), kernels::FeatureParams{}, 0, 199, want);
  for (std::size_t s = 0; s < rows.size(); ++s) {
    EXPECT_EQ(rows[s].last_bar, want[s].last_bar) << s;
    EXPECT_EQ(rows[s].history, want[s].history) << s;
  }
  EXPECT_EQ(calls.runs, 0);

  // Two symbols: taken by the accelerator.
  const auto small = testing::synthetic_panel(2, 200, 12);
  const auto got = series_of(picked, small.view(), IndicatorKind::rsi, params);
  EXPECT_EQ(calls.runs, 1);
  for (float x : got) ASSERT_EQ(x, kFakeValue);
}

TEST(BackendRegistry, DeclinedBacktestRunsOnTbb) {
  Calls calls;
  const auto list = detail::backtest_backends_with(std::make_unique<FakeBacktest>(1, calls));
  const BacktestBackend& picked = backend_select(list, DeviceKind::auto_select);
  EXPECT_EQ(picked.name(), "cuda");
  const auto panel = testing::synthetic_panel(3, 300, 21);
  const StrategyFeatures features = strategy_features_compute(panel.view());
  kernels::Genome g;  // long whenever ATR/close is above 0.1%: trades on every symbol
  g.entry[0] = {static_cast<std::int32_t>(kernels::CondKind::vol_high), 0, 0, 0.1f};
  g.max_hold = 3;
  const std::vector<kernels::Genome> genomes(4, kernels::genome_normalize(g));
  BacktestRequest r;
  r.panel = panel.view();
  r.features = &features;
  r.genomes = genomes;

  const BacktestResult got = picked.run(r);  // four genomes: declined
  const BacktestResult want = detail::backtest_cpu_backend()->run(r);
  EXPECT_EQ(calls.runs, 0);
  ASSERT_EQ(got.genome.size(), want.genome.size());
  for (std::size_t i = 0; i < got.genome.size(); ++i) {
    EXPECT_EQ(got.genome[i].trades, want.genome[i].trades) << i;
    EXPECT_EQ(got.genome[i].ret_sum, want.genome[i].ret_sum) << i;
  }
  EXPECT_GT(want.genome[0].n, 0.0);  // TBB really ran: bar returns were recorded

  r.genomes = std::span<const kernels::Genome>(genomes).first(1);  // one genome: taken
  EXPECT_EQ(picked.run(r).genome[0].n, 0.0);
  EXPECT_EQ(calls.runs, 1);
}

TEST(BackendRegistry, DeclinedSmokeRequestRunsOnTbb) {
  Calls calls;
  const auto list = detail::smoke_backends_with(std::make_unique<FakeSmoke>(4, calls));
  const SmokeBackend& picked = backend_select(list, DeviceKind::cuda);
  const std::vector<float> close = {100, 101, 99, 102, 103, 101, 100, 104};
  std::vector<float> got(close.size()), want(close.size());
  picked.log_returns(close, got);
  detail::smoke_cpu_backend()->log_returns(close, want);
  EXPECT_EQ(calls.runs, 0);
  EXPECT_TRUE(same_floats(got, want));
  picked.log_returns(std::span<const float>(close).first(4), std::span<float>(got).first(4));
  EXPECT_EQ(calls.runs, 1);
  EXPECT_EQ(got[0], kFakeValue);
}

TEST(BackendRegistry, UnavailableAcceleratorIsSkippedByAutoAndAnErrorByName) {
  Calls calls;
  const auto list = detail::indicator_backends_with(std::make_unique<FakeIndicators>(100, calls, false));
  EXPECT_EQ(backend_select(list, DeviceKind::auto_select).name(), "cpu");
  EXPECT_EQ(backend_select(list, DeviceKind::cpu).name(), "cpu");
  EXPECT_THROW(backend_select(list, DeviceKind::cuda), std::runtime_error);
}

// `--device cuda` on a machine without a device (or a build without CUDA) is the documented error, naming the flag
// and the reason; `--device auto` quietly takes TBB. The same for every computation's list.
TEST(BackendRegistry, DeviceCudaWithoutADeviceIsAnErrorAndAutoTakesTbb) {
  const DeviceReport& report = device_report();
  if (report.cuda_devices > 0) GTEST_SKIP() << "a CUDA device is present: " << report.cuda_name;
  const DeviceKind cuda = device_parse("cuda");
  const std::string expected = report.cuda_compiled ? "--device cuda: no usable CUDA device ("
                                                    : "--device cuda: this build has no CUDA backends";
  auto expect_error = [&](auto&& list) {
    EXPECT_EQ(backend_select(list, DeviceKind::auto_select).name(), "cpu");
    try {
      backend_select(list, cuda);
      ADD_FAILURE() << "--device cuda was accepted without a device";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(expected, 0), 0u) << e.what();
    }
  };
  expect_error(indicator_backends());
  expect_error(backtest_backends());
  expect_error(smoke_backends());
  EXPECT_FALSE(report.cuda_error.empty());
}

}  // namespace registry_test
}  // namespace qtos
