// Indicators: hand-computed cases, independent scalar references at 1e-9 relative (double), documented lookbacks,
// streaming == batch, gap handling and parameter errors.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backend/indicator_lanes.hpp"
#include "cpu/indicators/reference.hpp"
#include "cpu/indicators/streaming.hpp"
#include "cpu/registry/backends.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace indicators_test {

using kernels::IndicatorKind;
using kernels::IndicatorParams;
using testing::OwnedPanel;

/// A one-symbol panel from explicit bars (quote volume = close * 1000).
OwnedPanel panel_of(const std::vector<double>& h, const std::vector<double>& l, const std::vector<double>& c) {
  OwnedPanel p = testing::synthetic_panel(1, static_cast<std::int32_t>(c.size()), 1, false);
  for (std::size_t t = 0; t < c.size(); ++t) {
    p.high[t] = static_cast<float>(h[t]);
    p.low[t] = static_cast<float>(l[t]);
    p.close[t] = static_cast<float>(c[t]);
    p.qvol[t] = static_cast<float>(c[t] * 1000.0);
  }
  return p;
}

/// Output j of symbol s from a serial double run.
std::vector<double> run_serial(const OwnedPanel& p, IndicatorKind kind, const IndicatorParams& prm, int j, std::int32_t s = 0) {
  std::vector<double> out(indicator_out_size(kind, p.view()));
  indicator_series_serial(p.view(), kind, prm, out);
  const std::size_t plane = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
  std::vector<double> r;
  for (std::int32_t t = 0; t < p.n_bars; ++t) r.push_back(out[static_cast<std::size_t>(j) * plane + static_cast<std::size_t>(s * p.stride + t)]);
  return r;
}

IndicatorParams period(int n) {
  IndicatorParams p;
  p.period = n;
  return p;
}

/// 1e-9 relative; `unit_scale` outputs (%b, z-scores: ratios of differences, naturally on a scale of 1) are compared
/// at 1e-9 relative to max(|value|, 1), since a %b near 0 is the small difference of two nearly equal prices.
void expect_series(const std::vector<double>& got, const std::vector<double>& want, const std::string& what,
                   bool unit_scale = false) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t t = 0; t < want.size(); ++t) {
    if (std::isnan(want[t])) {
      EXPECT_TRUE(std::isnan(got[t])) << what << " t=" << t << " got " << got[t];
    } else {
      const double scale = unit_scale ? std::max(std::fabs(want[t]), 1.0) : std::fabs(want[t]);
      EXPECT_NEAR(got[t], want[t], 1e-9 * scale + 1e-12) << what << " t=" << t;
    }
  }
}

const std::vector<double> kUp = {1, 2, 3, 4, 5, 6};

TEST(IndicatorsByHand, SmaEmaRocOnAStraightLine) {
  const auto p = panel_of(kUp, kUp, kUp);
  const double n = NAN;
  expect_series(run_serial(p, IndicatorKind::sma, period(3), 0), {n, n, 2, 3, 4, 5}, "sma3");
  // EMA(3): k = 0.5, seed = SMA(1,2,3) = 2 at bar 2, then (4-2)/2+2 = 3, 4, 5.
  expect_series(run_serial(p, IndicatorKind::ema, period(3), 0), {n, n, 2, 3, 4, 5}, "ema3");
  expect_series(run_serial(p, IndicatorKind::roc, period(2), 0), {n, n, 200, 100, 200.0 / 3, 50}, "roc2");
  expect_series(run_serial(p, IndicatorKind::roc, period(2), 1), {n, n, 2, 2, 2, 2}, "mom2");
}

TEST(IndicatorsByHand, WilderRsi) {
  const std::vector<double> c = {1, 2, 3, 2};
  const auto p = panel_of(c, c, c);
  // changes +1, +1, -1; seed gain (1+1)/2 = 1, loss 0 -> 100; then gain (1*1+0)/2 = .5, loss (0+1)/2 = .5 -> 50.
  expect_series(run_serial(p, IndicatorKind::rsi, period(2), 0), {NAN, NAN, 100, 50}, "rsi2");
}

TEST(IndicatorsByHand, WilderAtrUsesTrueRange) {
  const auto p = panel_of({10, 11, 12, 12}, {9, 10, 10, 11}, {9.5, 10.5, 11, 11.5});
  // TR1 = max(1, |11-9.5|, |10-9.5|) = 1.5; TR2 = max(2, 1.5, .5) = 2 -> ATR(2) at bar 2 = 1.75;
  // TR3 = max(1, |12-11|, 0) = 1 -> (1.75*1 + 1)/2 = 1.375.
  expect_series(run_serial(p, IndicatorKind::atr, period(2), 0), {NAN, NAN, 1.75, 1.375}, "atr2");
}

TEST(IndicatorsByHand, WilderDirectionalMovementAndAdx) {
  const auto p = panel_of({10, 11, 12, 13}, {9, 10, 11, 12}, {9.5, 10.5, 11.5, 12.5});
  // +DM = 1 and TR = 1.5 every bar; n = 2: sums over bar 1 (1, 1.5), then S - S/2 + x:
  // bar 2: +DM 1.5, TR 2.25 -> +DI 66.67; bar 3: 1.75 / 2.625 -> 66.67. -DI = 0, DX = 100, ADX(bar 3) = 100.
  const double di = 200.0 / 3.0;
  expect_series(run_serial(p, IndicatorKind::dmi, period(2), 0), {NAN, NAN, di, di}, "+di");
  expect_series(run_serial(p, IndicatorKind::dmi, period(2), 1), {NAN, NAN, 0, 0}, "-di");
  expect_series(run_serial(p, IndicatorKind::dmi, period(2), 2), {NAN, NAN, NAN, 100}, "adx");
}

TEST(IndicatorsByHand, BollingerUsesPopulationStd) {
  const std::vector<double> c = {1, 2, 3};
  const auto p = panel_of(c, c, c);
  const double sd = std::sqrt(2.0 / 3.0);  // population: divisor 3, not 2
  expect_series(run_serial(p, IndicatorKind::bbands, period(3), 0), {NAN, NAN, 2}, "middle");
  expect_series(run_serial(p, IndicatorKind::bbands, period(3), 1), {NAN, NAN, 2 + 2 * sd}, "upper");
  expect_series(run_serial(p, IndicatorKind::bbands, period(3), 2), {NAN, NAN, 2 - 2 * sd}, "lower");
  expect_series(run_serial(p, IndicatorKind::bbands, period(3), 3), {NAN, NAN, 2 * sd}, "width");
  expect_series(run_serial(p, IndicatorKind::bbands, period(3), 4), {NAN, NAN, (3 - (2 - 2 * sd)) / (4 * sd)}, "%b");
}

TEST(IndicatorsByHand, MacdStartsBothEmasAtTheSlowSeed) {
  const auto p = panel_of(kUp, kUp, kUp);
  IndicatorParams m;
  m.period = 2;
  m.period2 = 3;
  m.period3 = 2;
  // slow EMA(3) seed 2 at bar 2; fast EMA(2) seed = SMA(2,3) = 2.5 at bar 2 -> line .5; bar 3: slow 3, fast
  // (4-2.5)*2/3+2.5 = 3.5 -> .5; signal EMA(2) seed = mean(.5,.5) at bar 3; histogram 0. As in TA-Lib the line is
  // printed from bar 3 only, once the signal exists (lookback s+g-2).
  const double n = NAN;
  expect_series(run_serial(p, IndicatorKind::macd, m, 0), {n, n, n, .5, .5, .5}, "line");
  expect_series(run_serial(p, IndicatorKind::macd, m, 1), {n, n, n, .5, .5, .5}, "signal");
  expect_series(run_serial(p, IndicatorKind::macd, m, 2), {n, n, n, 0, 0, 0}, "hist");
}

TEST(IndicatorsByHand, CorwinSchultzOfIdenticalBarsIsTwoRangeOverSum) {
  // Identical bars: beta = 2g^2, gamma = g^2 with g = ln(H/L), so alpha = g and S = 2(H-L)/(H+L).
  const auto p = panel_of({101, 101, 101}, {99, 99, 99}, {100, 100, 100});
  expect_series(run_serial(p, IndicatorKind::spread, period(2), 0), {NAN, NAN, 0.02}, "spread");
}

TEST(IndicatorsByHand, MaxDrawdownOverTheWindow) {
  const std::vector<double> c = {10, 8, 9, 12, 6, 7};
  const auto p = panel_of(c, c, c);
  // windows of 3: {10,8,9} .2; {8,9,12} 0; {9,12,6} .5; {12,6,7} .5
  expect_series(run_serial(p, IndicatorKind::max_drawdown, period(3), 0), {NAN, NAN, .2, 0, .5, .5}, "mdd3");
}

TEST(IndicatorsByHand, OnBalanceVolumeAddsOnUpClosesAndSubtractsOnDownCloses) {
  // TA-Lib OBV: starts at the first volume; +v on a higher close, -v on a lower one, unchanged on an equal one.
  const std::vector<double> c = {10, 11, 11, 10, 12};
  expect_series(reference::obv(c, std::vector<double>{5, 3, 4, 2, 6}), {5, 8, 8, 6, 12}, "reference obv");
  const auto p = panel_of(c, c, c);  // quote volume = close * 1000
  expect_series(run_serial(p, IndicatorKind::obv, IndicatorParams{}, 0), {10000, 21000, 21000, 11000, 23000}, "obv");
}

/// The gap-free stretches [a, b) of symbol s's bars.
std::vector<std::pair<std::int32_t, std::int32_t>> segments(const OwnedPanel& p, std::int32_t s) {
  std::vector<std::pair<std::int32_t, std::int32_t>> out;
  std::int32_t a = -1;
  for (std::int32_t t = 0; t <= p.n_bars; ++t) {
    const bool ok = t < p.n_bars && !std::isnan(p.close[static_cast<std::size_t>(s * p.stride + t)]);
    if (ok && a < 0) a = t;
    if (!ok && a >= 0) {
      out.emplace_back(a, t);
      a = -1;
    }
  }
  return out;
}

std::vector<IndicatorParams> params_for(IndicatorKind kind) {
  std::vector<IndicatorParams> v;
  if (kind == IndicatorKind::macd) {
    IndicatorParams a;  // 12/26/9
    a.period = 12;
    IndicatorParams b;
    b.period = 3;
    b.period2 = 7;
    b.period3 = 4;
    return {a, b};
  }
  for (int n : {2, 5, 14, 40}) {
    IndicatorParams p = period(n);
    if (kind == IndicatorKind::bbands) p.k = n == 5 ? 1.5 : 2.0;
    v.push_back(p);
  }
  return v;
}

class IndicatorsVsReference : public ::testing::TestWithParam<int> {};

/// The bars of symbol s that exist, as one stretch of grid positions.
std::vector<std::int32_t> existing(const OwnedPanel& p, std::int32_t s) {
  std::vector<std::int32_t> out;
  for (std::int32_t t = 0; t < p.n_bars; ++t)
    if (!std::isnan(p.close[static_cast<std::size_t>(s * p.stride + t)])) out.push_back(t);
  return out;
}

/// Column `col` of symbol s at the grid positions `at`, as doubles.
std::vector<double> gather(const OwnedPanel& p, const std::vector<float>& col, std::int32_t s, const std::vector<std::int32_t>& at) {
  std::vector<double> r;
  for (std::int32_t t : at) r.push_back(col[static_cast<std::size_t>(s * p.stride + t)]);
  return r;
}

TEST_P(IndicatorsVsReference, MatchesIndependentReferenceInDoubleSkippingGaps) {
  // Under skip the reference runs over the bars that exist, one stretch per symbol.
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const OwnedPanel p = testing::synthetic_panel(12, 300, 42);
  for (const auto& prm : params_for(kind)) {
    std::vector<double> out(indicator_out_size(kind, p.view()));
    indicator_series_serial(p.view(), kind, prm, out);
    const std::size_t plane = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
    for (std::int32_t s = 0; s < p.n_symbols; ++s) {
      const auto at = existing(p, s);
      const auto ref = reference::series(kind, prm, gather(p, p.high, s, at), gather(p, p.low, s, at),
                                         gather(p, p.close, s, at), gather(p, p.qvol, s, at));
      for (std::size_t j = 0; j < ref.size(); ++j) {
        std::vector<double> want(static_cast<std::size_t>(p.n_bars), NAN);
        for (std::size_t i = 0; i < at.size(); ++i) want[static_cast<std::size_t>(at[i])] = ref[j][i];
        std::vector<double> got;
        for (std::int32_t t = 0; t < p.n_bars; ++t) got.push_back(out[j * plane + static_cast<std::size_t>(s * p.stride + t)]);
        const bool unit_scale = (kind == IndicatorKind::bbands && j == 4) || (kind == IndicatorKind::dollar_volume && j == 1);
        expect_series(got, want, std::string(indicator_name(kind)) + " period " + std::to_string(prm.period) + " output " +
                                     std::to_string(j) + " symbol " + std::to_string(s), unit_scale);
      }
    }
  }
}

TEST_P(IndicatorsVsReference, MatchesIndependentReferenceInDoubleRestartingAfterGaps) {
  // Under reset-after:0 the reference runs over each gap-free stretch on its own.
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const OwnedPanel p = testing::synthetic_panel(12, 300, 42);
  for (auto prm : params_for(kind)) {
    prm.gaps = kernels::gap_reset_after(0);
    std::vector<double> out(indicator_out_size(kind, p.view()));
    indicator_series_serial(p.view(), kind, prm, out);
    const std::size_t plane = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
    for (std::int32_t s = 0; s < p.n_symbols; ++s) {
      std::vector<std::vector<double>> want(static_cast<std::size_t>(kernels::indicator_output_count(kind)),
                                            std::vector<double>(static_cast<std::size_t>(p.n_bars), NAN));
      for (auto [a, b] : segments(p, s)) {
        const auto ref = reference::series(kind, prm, p.row(p.high, s, a, b), p.row(p.low, s, a, b), p.row(p.close, s, a, b),
                                      p.row(p.qvol, s, a, b));
        for (std::size_t j = 0; j < ref.size(); ++j)
          for (std::int32_t t = a; t < b; ++t) want[j][static_cast<std::size_t>(t)] = ref[j][static_cast<std::size_t>(t - a)];
      }
      for (std::size_t j = 0; j < want.size(); ++j) {
        std::vector<double> got;
        for (std::int32_t t = 0; t < p.n_bars; ++t) got.push_back(out[j * plane + static_cast<std::size_t>(s * p.stride + t)]);
        const bool unit_scale = (kind == IndicatorKind::bbands && j == 4) || (kind == IndicatorKind::dollar_volume && j == 1);
        expect_series(got, want[j], std::string(indicator_name(kind)) + " period " + std::to_string(prm.period) +
                                        " output " + std::to_string(j) + " symbol " + std::to_string(s), unit_scale);
      }
    }
  }
}

TEST_P(IndicatorsVsReference, FirstValueAppearsExactlyAfterTheDocumentedLookback) {
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const OwnedPanel p = testing::synthetic_panel(1, 200, 7, false);
  for (const auto& prm : params_for(kind)) {
    for (int j = 0; j < kernels::indicator_output_count(kind); ++j) {
      const auto v = run_serial(p, kind, prm, j);
      std::int32_t first = -1;
      for (std::int32_t t = 0; t < p.n_bars && first < 0; ++t)
        if (!std::isnan(v[static_cast<std::size_t>(t)])) first = t;
      EXPECT_EQ(first, indicator_lookback(kind, prm, j)) << indicator_name(kind) << " output " << j << " period " << prm.period;
    }
  }
}

TEST_P(IndicatorsVsReference, StreamingFormEqualsBatchBarForBar) {
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const OwnedPanel p = testing::synthetic_panel(12, 250, 9);
  auto backends = indicator_backends();
  const IndicatorBackend& cpu = *backends.back();
  ASSERT_EQ(cpu.name(), "cpu");
  for (const auto& prm : params_for(kind)) {
    std::vector<double> batch(indicator_out_size(kind, p.view()));
    indicator_series_serial(p.view(), kind, prm, batch);
    std::vector<float> batch_f(batch.size());
    cpu.series(p.view(), kind, prm, batch_f);
    const std::size_t plane = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
    for (std::int32_t s = 0; s < p.n_symbols; ++s) {
      IndicatorStream<double> stream(kind, prm);
      IndicatorStream<float> stream_f(kind, prm);
      for (std::int32_t t = 0; t < p.n_bars; ++t) {
        const std::size_t o = static_cast<std::size_t>(s * p.stride + t);
        const auto v = stream.update(p.high[o], p.low[o], p.close[o], p.qvol[o]);
        const auto vf = stream_f.update(p.high[o], p.low[o], p.close[o], p.qvol[o]);
        for (std::size_t j = 0; j < v.size(); ++j) {
          const double b = batch[j * plane + o];
          const float bf = batch_f[j * plane + o];
          // Same operations in the same order: bit-identical, NaN where the batch has NaN.
          if (std::isnan(b)) EXPECT_TRUE(std::isnan(v[j])) << indicator_name(kind) << " s=" << s << " t=" << t;
          else EXPECT_EQ(v[j], b) << indicator_name(kind) << " output " << j << " s=" << s << " t=" << t;
          if (std::isnan(bf)) EXPECT_TRUE(std::isnan(vf[j]));
          else EXPECT_EQ(vf[j], bf) << indicator_name(kind) << " float output " << j << " s=" << s << " t=" << t;
        }
      }
    }
  }
}

/// Every output plane of a serial double run.
std::vector<double> run_all(const OwnedPanel& p, IndicatorKind kind, const IndicatorParams& prm) {
  std::vector<double> out(indicator_out_size(kind, p.view()));
  indicator_series_serial(p.view(), kind, prm, out);
  return out;
}

/// Equal values, NaN where NaN.
bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::isnan(a[i]) != std::isnan(b[i]) || (!std::isnan(a[i]) && a[i] != b[i])) return false;
  return true;
}

TEST_P(IndicatorsVsReference, ReadsExactlyTheColumnsItsInputsTraitNames) {
  // The CUDA kernel loads only the columns a state declares in kInputs: a column read but not declared would read as
  // NaN or 0 on the GPU alone. Here an undeclared column is spoiled (the output must not move) and a declared one
  // perturbed (the output must move), on the CPU, for every family.
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const auto inputs = indicator_inputs(kind);
  const OwnedPanel p = testing::synthetic_panel(6, 120, 5);
  const IndicatorParams prm = params_for(kind)[1];
  const auto base = run_all(p, kind, prm);
  auto wobble = [](std::size_t i) { return 1.0 + 0.01 * std::sin(0.7 * static_cast<double>(i)); };
  auto check = [&](kernels::IndicatorInputs column, const char* what, auto&& spoil, auto&& perturb) {
    OwnedPanel q = p;
    const bool declared = kernels::inputs_include(inputs, column);
    for (std::size_t i = 0; i < q.close.size(); ++i) declared ? perturb(q, i) : spoil(q, i);
    const bool same = same_values(run_all(q, kind, prm), base);
    EXPECT_EQ(same, !declared) << indicator_name(kind) << (declared ? " declares " : " does not declare ") << what
                               << (same ? " but ignores it" : " but reads it");
  };
  check(kernels::IndicatorInputs::close, "the close", [](OwnedPanel& q, std::size_t i) { q.close[i] *= 2.0f; },
        [&](OwnedPanel& q, std::size_t i) { q.close[i] *= static_cast<float>(wobble(i)); });
  check(kernels::IndicatorInputs::range, "high and low",
        [](OwnedPanel& q, std::size_t i) { q.high[i] = q.low[i] = NAN; },
        [&](OwnedPanel& q, std::size_t i) { q.high[i] *= static_cast<float>(1.0 + 0.5 * (wobble(i) - 0.99)); });
  check(kernels::IndicatorInputs::volume, "the quote volume", [](OwnedPanel& q, std::size_t i) { q.qvol[i] = NAN; },
        [&](OwnedPanel& q, std::size_t i) { q.qvol[i] *= static_cast<float>(30.0 * (wobble(i) - 0.98)); });
}

INSTANTIATE_TEST_SUITE_P(AllKinds, IndicatorsVsReference, ::testing::Range(0, kernels::kIndicatorKindCount),
                         [](const auto& test_info) { return std::string(indicator_name(static_cast<IndicatorKind>(test_info.param))); });

TEST(IndicatorParams, BadValuesNameTheParameterAndTheRange) {
  try {
    indicator_params_check(IndicatorKind::sma, period(0));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sma period = 0: expected an integer in [1, 100000]"), std::string::npos) << e.what();
  }
  IndicatorParams m;
  m.period = 26;
  m.period2 = 12;
  EXPECT_THROW(indicator_params_check(IndicatorKind::macd, m), std::invalid_argument);
  EXPECT_THROW(indicator_params_check(IndicatorKind::rvol, period(1)), std::invalid_argument);
  EXPECT_THROW(indicator_params_check(IndicatorKind::max_drawdown, period(5000)), std::invalid_argument);
  EXPECT_THROW(IndicatorStream<double>(IndicatorKind::ema, period(-3)), std::invalid_argument);
}

TEST(IndicatorTraits, FamilyAndOutputNamesAreUniqueSoTheCliCanOfferEach) {
  std::map<std::string, int> owner;  // name -> family; a single-output family's output may repeat its own name
  for (int k = 0; k < kernels::kIndicatorKindCount; ++k) {
    const auto kind = static_cast<IndicatorKind>(k);
    std::vector<std::string> names = {std::string(indicator_name(kind))};
    for (const auto& o : indicator_output_names(kind))
      if (o != names.front()) names.push_back(o);
    for (const auto& n : names) {
      const auto [it, fresh] = owner.emplace(n, k);
      EXPECT_TRUE(fresh) << "'" << n << "' names both " << indicator_name(static_cast<IndicatorKind>(it->second))
                         << " and " << indicator_name(kind);
    }
    EXPECT_EQ(static_cast<int>(indicator_output_names(kind).size()), kernels::indicator_output_count(kind));
    EXPECT_NO_THROW(indicator_params_check(kind, indicator_defaults(kind))) << indicator_name(kind);
  }
}

TEST(IndicatorBackendCpu, RejectsAnOutputBufferOfTheWrongSize) {
  const OwnedPanel p = testing::synthetic_panel(3, 40, 1);
  auto backends = indicator_backends();
  std::vector<float> out(10);
  EXPECT_THROW(backends.back()->series(p.view(), IndicatorKind::bbands, period(5), out), std::invalid_argument);
}

TEST(IndicatorGaps, UnderResetAfterZeroAMissingBarRestartsTheLookback) {
  std::vector<double> c(30);
  for (std::size_t t = 0; t < c.size(); ++t) c[t] = 100.0 + static_cast<double>(t);
  c[12] = NAN;
  const auto p = panel_of(c, c, c);
  IndicatorParams prm = period(5);
  prm.gaps = kernels::gap_reset_after(0);
  const auto v = run_serial(p, IndicatorKind::sma, prm, 0);
  EXPECT_DOUBLE_EQ(v[11], 100 + 9.0);
  for (int t = 12; t <= 16; ++t) EXPECT_TRUE(std::isnan(v[static_cast<std::size_t>(t)])) << t;  // gap + 4 bars of lookback
  EXPECT_DOUBLE_EQ(v[17], 100 + 15.0);
}

TEST(IndicatorGaps, UnderSkipTheLookbackCountsTheBarsThatExist) {
  std::vector<double> c(30);
  for (std::size_t t = 0; t < c.size(); ++t) c[t] = 100.0 + static_cast<double>(t);
  c[12] = NAN;
  const auto p = panel_of(c, c, c);
  const auto v = run_serial(p, IndicatorKind::sma, period(5), 0);
  EXPECT_DOUBLE_EQ(v[11], 100 + 9.0);
  EXPECT_TRUE(std::isnan(v[12]));                  // no value at the missing bar
  EXPECT_DOUBLE_EQ(v[13], (108 + 109 + 110 + 111 + 113) / 5.0);  // the five bars that exist up to bar 13
  EXPECT_DOUBLE_EQ(v[17], (113 + 114 + 115 + 116 + 117) / 5.0);
}

// The lane form (eight symbols in SIMD lanes, the step states on a lane type) computes what the row form computes, bit
// for bit: the same IEEE operations per lane. Panels of 29 symbols (three lane blocks and five symbols left over) and
// 203 bars (a partial tile at the end).
std::vector<float> run_backend(const OwnedPanel& p, IndicatorKind kind, const IndicatorParams& prm) {
  std::vector<float> out(indicator_out_size(kind, p.view()));
  const auto backends = indicator_backends();
  for (const auto& b : backends)
    if (b->name() == "cpu") b->series(p.view(), kind, prm, out);
  return out;
}

std::vector<float> run_rows(const OwnedPanel& p, IndicatorKind kind, const IndicatorParams& prm) {
  std::vector<float> out(indicator_out_size(kind, p.view()));
  detail::indicator_series_rows(p.view(), kind, prm, out);
  return out;
}

/// Equal floats, NaN equal to NaN; names the first difference.
void expect_same(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i]) && std::isnan(got[i])) continue;
    ASSERT_EQ(got[i], want[i]) << what << " at " << i;
  }
}

const IndicatorKind kLaneKinds[] = {IndicatorKind::sma, IndicatorKind::ema,    IndicatorKind::rsi, IndicatorKind::atr,
                                    IndicatorKind::dmi, IndicatorKind::bbands, IndicatorKind::macd};

TEST(IndicatorLanes, EveryLaneFamilyEqualsTheRowFormBitForBit) {
  const OwnedPanel p = testing::synthetic_panel(29, 203, 7, false);
  for (IndicatorKind kind : kLaneKinds) {
    ASSERT_TRUE(detail::indicator_has_lanes(kind));
    for (const auto& prm : params_for(kind)) {
      // The lanes really run on a clean block (not a silent fallback to the rows).
      std::vector<float> block(indicator_out_size(kind, p.view()));
      EXPECT_TRUE(detail::indicator_lanes_block(p.view(), 8, kind, prm, block.data()));
      expect_same(run_backend(p, kind, prm), run_rows(p, kind, prm),
                  std::string(indicator_name(kind)) + " period " + std::to_string(prm.period));
    }
  }
}

TEST(IndicatorLanes, DecimalQuotesOnThePriceGridEqualTheRowForm) {
  // RSI, ATR and DMI with price changes taken on a 4-decimal grid (many exact ties).
  OwnedPanel p = testing::synthetic_panel(16, 150, 3, false);
  for (auto* col : {&p.high, &p.low, &p.close})
    for (float& x : *col) x = static_cast<float>(std::round(static_cast<double>(x) * 100.0) / 100.0);
  for (IndicatorKind kind : {IndicatorKind::rsi, IndicatorKind::dmi}) {
    IndicatorParams prm = period(14);
    prm.price_decimals = 2;
    expect_same(run_backend(p, kind, prm), run_rows(p, kind, prm), std::string(indicator_name(kind)) + " on a grid");
  }
}

TEST(IndicatorLanes, ABlockWithAMissingBarRunsRowByRowUnderTheGapPolicy) {
  OwnedPanel p = testing::synthetic_panel(24, 120, 5, false);
  p.close[static_cast<std::size_t>(10 * p.stride + 50)] = NAN;  // symbol 10, block 1: a closure
  p.high[static_cast<std::size_t>(20 * p.stride + 70)] = NAN;   // symbol 20, block 2: a missing high (range readers)
  for (IndicatorKind kind : kLaneKinds) {
    std::vector<float> block(indicator_out_size(kind, p.view()));
    EXPECT_FALSE(detail::indicator_lanes_block(p.view(), 8, kind, period(5), block.data())) << indicator_name(kind);
    const bool range = kind == IndicatorKind::atr || kind == IndicatorKind::dmi;
    EXPECT_EQ(detail::indicator_lanes_block(p.view(), 16, kind, period(5), block.data()), !range) << indicator_name(kind);
    for (const auto gaps : {kernels::gap_skip(), kernels::gap_reset_after(0)}) {
      IndicatorParams prm = params_for(kind)[1];
      prm.gaps = gaps;
      expect_same(run_backend(p, kind, prm), run_rows(p, kind, prm),
                  std::string(indicator_name(kind)) + " " + gap_policy_text(gaps));
    }
  }
  // Two blocks advance together, or the clean one alone: blocks 1 (a closure) and 2 (clean for the close-only
  // families) from symbol 8; block 2 equals the rows and block 1 is left untouched for the rows to fill.
  for (IndicatorKind kind : {IndicatorKind::sma, IndicatorKind::bbands, IndicatorKind::macd}) {
    const IndicatorParams prm = params_for(kind)[1];
    const std::int64_t plane = static_cast<std::int64_t>(p.n_symbols) * p.stride;
    std::vector<float> got(indicator_out_size(kind, p.view()), -1.0f);
    std::vector<float*> planes;
    for (int j = 0; j < kernels::indicator_output_count(kind); ++j) planes.push_back(got.data() + j * plane);
    EXPECT_EQ(detail::indicator_lanes_blocks(p.view(), 8, 2, kind, std::span(&prm, 1), planes.data()), 2u);
    EXPECT_EQ(detail::indicator_lanes_blocks(p.view(), 0, 2, kind, std::span(&prm, 1), planes.data()), 1u);
    const auto want = run_rows(p, kind, prm);
    for (int j = 0; j < kernels::indicator_output_count(kind); ++j)
      for (std::int32_t s = 0; s < 24; ++s)
        for (std::int32_t t = 0; t < p.n_bars; ++t) {
          const auto i = static_cast<std::size_t>(j * plane + s * p.stride + t);
          if (s >= 8 && s < 16) {
            ASSERT_EQ(got[i], -1.0f) << indicator_name(kind) << " wrote the block with a gap";
          } else if (!(std::isnan(got[i]) && std::isnan(want[i]))) {
            ASSERT_EQ(got[i], want[i]) << indicator_name(kind) << " symbol " << s << " bar " << t;
          }
        }
  }
  // Families without a lane form always run by rows.
  std::vector<float> block(indicator_out_size(IndicatorKind::obv, p.view()));
  EXPECT_FALSE(detail::indicator_lanes_block(p.view(), 0, IndicatorKind::obv, IndicatorParams{}, block.data()));
}

// A view whose stride is not a whole number of 64-byte lines (a view built by hand): the lanes store bar by bar,
// never a streaming line at an address it does not fit, and still equal the rows.
TEST(IndicatorLanes, AStrideOfPartialLinesEqualsTheRowForm) {
  const OwnedPanel src = testing::synthetic_panel(17, 150, 11, false);
  const std::int64_t stride = 153;  // neither a multiple of 16 nor of 4 floats
  OwnedPanel p = src;
  p.stride = stride;
  for (auto* col : {&p.high, &p.low, &p.close, &p.qvol}) col->assign(static_cast<std::size_t>(17 * stride), NAN);
  for (std::int32_t s = 0; s < 17; ++s)
    for (std::int32_t t = 0; t < 150; ++t) {
      const auto from = static_cast<std::size_t>(s * src.stride + t), to = static_cast<std::size_t>(s * stride + t);
      p.high[to] = src.high[from];
      p.low[to] = src.low[from];
      p.close[to] = src.close[from];
      p.qvol[to] = src.qvol[from];
    }
  for (IndicatorKind kind : kLaneKinds) {
    std::vector<float> block(indicator_out_size(kind, p.view()));
    EXPECT_TRUE(detail::indicator_lanes_block(p.view(), 8, kind, params_for(kind)[1], block.data()));
    expect_same(run_backend(p, kind, params_for(kind)[1]), run_rows(p, kind, params_for(kind)[1]),
                std::string(indicator_name(kind)) + " at stride 153");
  }
}

/// series_batch on the CPU backend (or `backend`) with `params` and `outputs`.
std::vector<float> run_batch(const OwnedPanel& p, IndicatorKind kind, const std::vector<IndicatorParams>& params,
                             std::uint32_t outputs, const IndicatorBackend* backend = nullptr) {
  std::vector<float> out(indicator_batch_out_size(kind, p.view(), params.size(), outputs));
  const auto backends = indicator_backends();
  for (const auto& b : backends)
    if (!backend && b->name() == "cpu") backend = b.get();
  backend->series_batch(p.view(), kind, params, outputs, out);
  return out;
}

/// The planes series() writes for each parameter set, the outputs of `outputs` in order: what series_batch must equal.
std::vector<float> one_by_one(const OwnedPanel& p, IndicatorKind kind, const std::vector<IndicatorParams>& params,
                              std::uint32_t outputs) {
  const std::size_t plane = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
  std::vector<float> want;
  for (const auto& prm : params) {
    const auto all = run_backend(p, kind, prm);
    for (int j = 0; j < kernels::indicator_output_count(kind); ++j)
      if ((outputs >> j) & 1u) want.insert(want.end(), all.begin() + static_cast<std::ptrdiff_t>(j * plane),
                                           all.begin() + static_cast<std::ptrdiff_t>((j + 1) * plane));
  }
  return want;
}

// Every family, all its outputs and subsets (the first and the last; the first; all but the last: the lanes store a
// prefix of the outputs and drop the arithmetic of the rest), on a clean panel (lane blocks, the
// symbols left over) and one with closures, late listings and delistings (blocks that run by rows): the batch equals
// one series() per parameter set, plane for plane and bit for bit.
TEST(IndicatorBatch, EqualsOneSeriesPerParameterSetForEveryFamily) {
  const OwnedPanel clean = testing::synthetic_panel(29, 203, 7, false);
  const OwnedPanel gappy = testing::synthetic_panel(29, 203, 8, true);
  for (int k = 0; k < kernels::kIndicatorKindCount; ++k) {
    const auto kind = static_cast<IndicatorKind>(k);
    const std::uint32_t all = indicator_all_outputs(kind);
    const int n_out = kernels::indicator_output_count(kind);
    const std::uint32_t ends = 1u | (1u << (n_out - 1));
    std::vector<IndicatorParams> params = params_for(kind);
    for (const OwnedPanel* p : {&clean, &gappy})
      for (const std::uint32_t outputs : {all, ends, 1u, all >> 1})
        if (outputs != 0)
            expect_same(run_batch(*p, kind, params, outputs), one_by_one(*p, kind, params, outputs),
                      std::string(indicator_name(kind)) + " outputs " + std::to_string(outputs) +
                          (p == &gappy ? " with gaps" : ""));
  }
}

/// A backend with only series_run (the CPU backend's): series_batch through the interface's default.
class SeriesOnly final : public IndicatorBackend {
 public:
  std::string_view name() const override { return "series-only"; }
  bool available() const override { return true; }

 protected:
  void series_run(const kernels::PanelView& panel, IndicatorKind kind, const IndicatorParams& params,
                  std::span<float> out) const override {
    detail::indicator_cpu_backend()->series(panel, kind, params, out);
  }
  void features_run(const kernels::PanelView&, const kernels::FeatureParams&, std::int32_t, std::int32_t,
                    std::span<kernels::FeatureRow>) const override {}
};

TEST(IndicatorBatch, TheInterfaceDefaultEqualsTheLanes) {
  const OwnedPanel p = testing::synthetic_panel(20, 90, 4, true);
  const SeriesOnly backend;
  for (IndicatorKind kind : {IndicatorKind::bbands, IndicatorKind::dmi, IndicatorKind::roc}) {
    const auto params = params_for(kind);
    const std::uint32_t outputs = kernels::indicator_output_count(kind) > 1 ? indicator_all_outputs(kind) & ~1u : 1u;
    expect_same(run_batch(p, kind, params, outputs, &backend), run_batch(p, kind, params, outputs),
                std::string(indicator_name(kind)));
  }
}

TEST(IndicatorBatch, BadArgumentsAreRefusedNamingThem) {
  const OwnedPanel p = testing::synthetic_panel(9, 40, 2, false);
  const auto backend = detail::indicator_cpu_backend();
  const auto kind = IndicatorKind::bbands;
  const std::vector<IndicatorParams> two = {period(5), period(1)};  // Bollinger needs a period of at least 2
  std::vector<float> out(indicator_batch_out_size(kind, p.view(), 2, 7));
  const auto message = [&](std::span<const IndicatorParams> prm, std::uint32_t outputs, std::span<float> o) {
    try {
      backend->series_batch(p.view(), kind, prm, outputs, o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({}, 7, out).find("no parameter sets"), std::string::npos);
  EXPECT_NE(message(two, 7, out).find("parameter set 1"), std::string::npos);
  const std::vector<IndicatorParams> ok = {period(5), period(20)};
  EXPECT_NE(message(ok, 0, out).find("outputs mask 0"), std::string::npos);
  EXPECT_NE(message(ok, 32, out).find("bits 0..4"), std::string::npos);
  EXPECT_NE(message(ok, 3, out).find("expected " + std::to_string(out.size() * 2 / 3)), std::string::npos);
  EXPECT_EQ(message(ok, 7, out), "no error");
}

}  // namespace indicators_test
}  // namespace qtos
