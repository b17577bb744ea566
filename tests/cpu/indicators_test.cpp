// Indicators: hand-computed cases, independent scalar references at 1e-9 relative (double), documented lookbacks,
// streaming == batch, gap handling and parameter errors.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/indicators/reference.hpp"
#include "cpu/indicators/streaming.hpp"
#include "cpu/registry/backends.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace {

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

}  // namespace
}  // namespace qtos
