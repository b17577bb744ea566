// The gap policy (cpu/kernels/gaps.hpp) on a market that closes: under `skip` every indicator, the ranking features and
// the backtests on a panel with planted closures (weekends, holidays, an exchange outage) equal the same computations on
// the panel with the closures removed, bar for bar, on every backend; `reset-after:0` reproduces the historical
// restart-after-every-gap rule exactly; `reset-after:N` bridges gaps of up to N bars.
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/indicators/streaming.hpp"
#include "cpu/kernels/gaps.hpp"
#include "cpu/registry/backends.hpp"
#include "tests/support/synthetic_panel.hpp"

namespace qtos {
namespace gaps_test {

using kernels::GapPolicy;
using kernels::IndicatorKind;
using kernels::IndicatorParams;
using testing::OwnedPanel;

/// A market that closes, and the same market with its closures removed.
struct ClosedMarket {
  OwnedPanel grid;                          ///< calendar grid: closures are missing bars
  OwnedPanel compressed;                    ///< per symbol the bars that exist, in order, then NaN
  std::vector<std::vector<std::int32_t>> at;  ///< per symbol: grid bar of each compressed bar
};

/// Whether grid bar t of symbol s is a closure: symbol 0 trades weekdays (5 x 24 bars, a weekend of 48) with a holiday;
/// symbol 1 trades 6 bars a day on weekdays (a 4-hour FX-like shape: 30 of 42 bars a week); symbol 2 is 24/7 with an
/// exchange outage of 17 bars; symbol 3 lists late and has single missing bars; symbol 4 has no closure at all.
bool closed(std::int32_t s, std::int32_t t) {
  switch (s % 5) {
    case 0: return (t / 24) % 7 >= 5 || (t >= 24 * 16 && t < 24 * 17);
    case 1: return (t / 6) % 7 >= 5;
    case 2: return t >= 300 && t < 317;
    case 3: return t < 37 || t % 29 == 0;
    default: return false;
  }
}

ClosedMarket closed_market(std::int32_t n_symbols, std::int32_t n_bars, std::uint64_t seed) {
  ClosedMarket m;
  m.grid = testing::synthetic_panel(n_symbols, n_bars, seed, false);
  m.compressed = m.grid;
  m.at.resize(static_cast<std::size_t>(n_symbols));
  OwnedPanel& g = m.grid;
  OwnedPanel& c = m.compressed;
  std::vector<float>* gcols[] = {&g.open, &g.high, &g.low, &g.close, &g.volume, &g.qvol, &g.trades};
  std::vector<float>* ccols[] = {&c.open, &c.high, &c.low, &c.close, &c.volume, &c.qvol, &c.trades};
  for (std::int32_t s = 0; s < n_symbols; ++s) {
    std::int32_t k = 0;
    for (std::int32_t t = 0; t < n_bars; ++t) {
      const auto o = static_cast<std::size_t>(s * g.stride + t);
      if (closed(s, t)) {
        for (int j = 0; j < 4; ++j) (*gcols[j])[o] = NAN;
        for (int j = 4; j < 7; ++j) (*gcols[j])[o] = 0.0f;
        continue;
      }
      const auto to = static_cast<std::size_t>(s * c.stride + k);
      for (int j = 0; j < 7; ++j) (*ccols[j])[to] = (*gcols[j])[o];
      m.at[static_cast<std::size_t>(s)].push_back(t);
      ++k;
    }
    for (std::int32_t t = k; t < n_bars; ++t) {
      const auto to = static_cast<std::size_t>(s * c.stride + t);
      for (int j = 0; j < 4; ++j) (*ccols[j])[to] = NAN;
      for (int j = 4; j < 7; ++j) (*ccols[j])[to] = 0.0f;
    }
  }
  return m;
}

/// Equal, or both NaN.
template <class T>
bool same(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

/// Output planes of one run: every backend (float), the serial reference (double), the streaming forms (both).
struct Runs {
  std::vector<std::vector<float>> backend;  ///< per registered backend
  std::vector<std::string> names;           ///< their names
  std::vector<double> serial;               ///< serial double reference
  std::vector<double> stream_d;             ///< IndicatorStream<double>
  std::vector<float> stream_f;              ///< IndicatorStream<float>
};

Runs run_everywhere(const OwnedPanel& p, IndicatorKind kind, const IndicatorParams& prm) {
  Runs r;
  const std::size_t size = indicator_out_size(kind, p.view());
  for (const auto& b : indicator_backends()) {
    r.backend.emplace_back(size);
    r.names.emplace_back(b->name());
    b->series(p.view(), kind, prm, r.backend.back());
  }
  r.serial.resize(size);
  indicator_series_serial(p.view(), kind, prm, r.serial);
  r.stream_d.assign(size, NAN);
  r.stream_f.assign(size, NAN);
  const std::size_t plane = static_cast<std::size_t>(p.n_symbols) * static_cast<std::size_t>(p.stride);
  for (std::int32_t s = 0; s < p.n_symbols; ++s) {
    IndicatorStream<double> sd(kind, prm);
    IndicatorStream<float> sf(kind, prm);
    for (std::int32_t t = 0; t < p.n_bars; ++t) {
      const auto o = static_cast<std::size_t>(s * p.stride + t);
      const auto vd = sd.update(p.high[o], p.low[o], p.close[o], p.qvol[o]);
      const auto vf = sf.update(p.high[o], p.low[o], p.close[o], p.qvol[o]);
      for (std::size_t j = 0; j < vd.size(); ++j) {
        r.stream_d[j * plane + o] = vd[j];
        r.stream_f[j * plane + o] = vf[j];
      }
    }
  }
  return r;
}

std::vector<IndicatorParams> gap_params(IndicatorKind kind, GapPolicy gaps) {
  std::vector<IndicatorParams> v;
  if (kind == IndicatorKind::macd) {
    IndicatorParams a;
    a.period = 12;
    v.push_back(a);
  } else {
    for (int n : {3, 14, 50}) {
      IndicatorParams p;
      p.period = n;
      v.push_back(p);
    }
  }
  for (auto& p : v) p.gaps = gaps;
  return v;
}

class GapsPerKind : public ::testing::TestWithParam<int> {};

TEST_P(GapsPerKind, SkipEqualsTheMarketWithItsClosuresRemovedOnEveryBackend) {
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const ClosedMarket m = closed_market(5, 700, 17);
  const std::size_t gplane = static_cast<std::size_t>(m.grid.n_symbols) * static_cast<std::size_t>(m.grid.stride);
  const std::size_t cplane = static_cast<std::size_t>(m.compressed.n_symbols) * static_cast<std::size_t>(m.compressed.stride);
  for (const auto& prm : gap_params(kind, kernels::gap_skip())) {
    const Runs g = run_everywhere(m.grid, kind, prm);
    const Runs c = run_everywhere(m.compressed, kind, prm);
    std::size_t values = 0;
    for (std::int32_t s = 0; s < m.grid.n_symbols; ++s) {
      const auto& at = m.at[static_cast<std::size_t>(s)];
      std::size_t k = 0;
      for (std::int32_t t = 0; t < m.grid.n_bars; ++t) {
        const bool exists = k < at.size() && at[k] == t;
        for (int j = 0; j < kernels::indicator_output_count(kind); ++j) {
          const std::size_t go = static_cast<std::size_t>(j) * gplane + static_cast<std::size_t>(s * m.grid.stride + t);
          const std::size_t co = static_cast<std::size_t>(j) * cplane + static_cast<std::size_t>(s * m.compressed.stride) + k;
          const std::string where = std::string(indicator_name(kind)) + " period " + std::to_string(prm.period) +
                                    " output " + std::to_string(j) + " s=" + std::to_string(s) + " t=" + std::to_string(t);
          if (!exists) {  // a closure: no value
            ASSERT_TRUE(std::isnan(g.serial[go])) << where;
            for (const auto& b : g.backend) ASSERT_TRUE(std::isnan(b[go])) << where;
            ASSERT_TRUE(std::isnan(g.stream_d[go]) && std::isnan(g.stream_f[go])) << where;
            continue;
          }
          values += std::isnan(c.serial[co]) ? 0 : 1;
          ASSERT_TRUE(same(g.serial[go], c.serial[co])) << where << " serial " << g.serial[go] << " vs " << c.serial[co];
          ASSERT_TRUE(same(g.stream_d[go], c.stream_d[co])) << where << " streaming double";
          ASSERT_TRUE(same(g.stream_f[go], c.stream_f[co])) << where << " streaming float";
          for (std::size_t b = 0; b < g.backend.size(); ++b)
            ASSERT_TRUE(same(g.backend[b][go], c.backend[b][co]))
                << where << " backend " << g.names[b] << " " << g.backend[b][go] << " vs " << c.backend[b][co];
        }
        if (exists) ++k;
      }
    }
    EXPECT_GT(values, 1000u) << "the closures must not hide the values";
  }
}

/// The historical driver, written out here: every missing bar resets the state, lags are bars t-k.
template <class T>
std::vector<T> restart_after_every_gap(const OwnedPanel& p, IndicatorKind kind, const IndicatorParams& prm) {
  std::vector<T> out(indicator_out_size(kind, p.view()), T(NAN));
  const std::int64_t plane = static_cast<std::int64_t>(p.n_symbols) * p.stride;
  for (std::int32_t s = 0; s < p.n_symbols; ++s) {
    const std::int64_t base = s * p.stride;
    kernels::indicator_dispatch<T>(kind, prm, [&](auto& st) {
      using State = std::remove_reference_t<decltype(st)>;
      T o[State::kOutputs];
      for (std::int32_t t = 0; t < p.n_bars; ++t) {
        if (!kernels::bar_valid_for<State>(p.high.data() + base, p.low.data() + base, p.close.data() + base, t)) {
          st.reset();
          continue;
        }
        st.step(kernels::RowHist{p.high.data() + base, p.low.data() + base, p.close.data() + base, p.qvol.data() + base, t}, o);
        for (int j = 0; j < State::kOutputs; ++j) out[static_cast<std::size_t>(j * plane + base + t)] = o[j];
      }
    });
  }
  return out;
}

TEST_P(GapsPerKind, ResetAfterZeroReproducesTheRestartAfterEveryGapRule) {
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const ClosedMarket m = closed_market(5, 500, 23);
  for (const auto& prm : gap_params(kind, kernels::gap_reset_after(0))) {
    const auto want = restart_after_every_gap<double>(m.grid, kind, prm);
    const auto want_f = restart_after_every_gap<float>(m.grid, kind, prm);
    const Runs got = run_everywhere(m.grid, kind, prm);
    for (std::size_t i = 0; i < want.size(); ++i) {
      if (static_cast<std::int64_t>(i) % m.grid.stride >= m.grid.n_bars) continue;  // the row's padding
      ASSERT_TRUE(same(got.serial[i], want[i])) << indicator_name(kind) << " i=" << i;
      ASSERT_TRUE(same(got.stream_d[i], want[i])) << indicator_name(kind) << " streaming i=" << i;
      ASSERT_TRUE(same(got.stream_f[i], want_f[i])) << indicator_name(kind) << " streaming float i=" << i;
      for (std::size_t b = 0; b < got.backend.size(); ++b)
        ASSERT_TRUE(same(got.backend[b][i], want_f[i])) << indicator_name(kind) << " " << got.names[b] << " i=" << i;
    }
  }
}

TEST_P(GapsPerKind, ResetAfterNBridgesGapsOfUpToNBars) {
  // Symbol 3 misses single bars (bridged by reset-after:1, so equal to skip there); symbol 2's 17-bar outage is longer
  // than 1 bar (so equal to reset-after:0 there); symbol 4 never closes (all policies agree).
  const auto kind = static_cast<IndicatorKind>(GetParam());
  const ClosedMarket m = closed_market(5, 500, 29);
  const std::size_t plane = static_cast<std::size_t>(m.grid.n_symbols) * static_cast<std::size_t>(m.grid.stride);
  IndicatorParams prm = gap_params(kind, kernels::gap_reset_after(1)).back();
  std::vector<double> one(indicator_out_size(kind, m.grid.view())), skip(one.size()), zero(one.size());
  indicator_series_serial(m.grid.view(), kind, prm, one);
  prm.gaps = kernels::gap_skip();
  indicator_series_serial(m.grid.view(), kind, prm, skip);
  prm.gaps = kernels::gap_reset_after(0);
  indicator_series_serial(m.grid.view(), kind, prm, zero);
  bool differs = false;
  for (int j = 0; j < kernels::indicator_output_count(kind); ++j)
    for (std::int32_t t = 0; t < m.grid.n_bars; ++t) {
      const auto at = [&](std::int32_t s) { return static_cast<std::size_t>(j) * plane + static_cast<std::size_t>(s * m.grid.stride + t); };
      ASSERT_TRUE(same(one[at(3)], skip[at(3)])) << "t=" << t;
      ASSERT_TRUE(same(one[at(2)], zero[at(2)])) << "t=" << t;
      ASSERT_TRUE(same(one[at(4)], skip[at(4)]) && same(one[at(4)], zero[at(4)])) << "t=" << t;
      differs = differs || !same(skip[at(2)], zero[at(2)]);
    }
  EXPECT_TRUE(differs) << "the outage must matter to some policy";
}

INSTANTIATE_TEST_SUITE_P(AllKinds, GapsPerKind, ::testing::Range(0, kernels::kIndicatorKindCount),
                         [](const auto& test_info) { return std::string(indicator_name(static_cast<IndicatorKind>(test_info.param))); });

TEST(GapPolicyText, ParsesPrintsAndNamesBadInput) {
  EXPECT_EQ(gap_policy_parse("skip"), kernels::gap_skip());
  EXPECT_EQ(gap_policy_parse("reset-after:0"), kernels::gap_reset_after(0));
  EXPECT_EQ(gap_policy_parse("reset-after:12"), kernels::gap_reset_after(12));
  EXPECT_EQ(gap_policy_text(kernels::gap_reset_after(12)), "reset-after:12");
  EXPECT_EQ(gap_policy_text(kernels::gap_skip()), "skip");
  for (const char* bad : {"", "Skip", "reset-after:", "reset-after:-1", "reset-after:1x", "reset-after 3", "reset"}) {
    try {
      gap_policy_parse(bad, "--gaps");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--gaps '" + std::string(bad) + "': expected skip or reset-after:N"),
                std::string::npos)
          << e.what();
    }
  }
  IndicatorParams p;
  p.gaps.reset_after = -2;
  EXPECT_THROW(indicator_params_check(IndicatorKind::sma, p), std::invalid_argument);
}

// ---- ranking features -------------------------------------------------------------------------------------------

TEST(GapsRankingFeatures, SkipEqualsTheCompressedMarketOnBatchAndIncrementalForms) {
  const ClosedMarket m = closed_market(5, 600, 31);
  kernels::FeatureParams fp;  // default skip
  const std::int32_t S = m.grid.n_symbols;
  std::vector<std::vector<kernels::FeatureRow>> grid_rows, comp_rows;
  std::vector<std::string> names;
  FeatureEngine engine(S, fp);
  engine.replay(m.grid.view(), 0, 400);
  for (std::int32_t t = 401; t < m.grid.n_bars; ++t) engine.advance_from(m.grid.view(), t);
  for (const auto& b : indicator_backends()) {
    names.emplace_back(b->name());
    grid_rows.emplace_back(static_cast<std::size_t>(S));
    b->features(m.grid.view(), fp, 0, m.grid.n_bars - 1, grid_rows.back());
  }
  names.emplace_back("serial");
  grid_rows.emplace_back(static_cast<std::size_t>(S));
  features_serial(m.grid.view(), fp, 0, m.grid.n_bars - 1, grid_rows.back());
  names.emplace_back("incremental");
  grid_rows.push_back(engine.rows());
  for (std::int32_t s = 0; s < S; ++s) {
    const auto& at = m.at[static_cast<std::size_t>(s)];
    const auto n = static_cast<std::int32_t>(at.size());
    // The compressed row ends at its last existing bar: the features there are the grid's as of its last valid bar.
    std::vector<kernels::FeatureRow> c(static_cast<std::size_t>(S));
    features_serial(m.compressed.view(), fp, 0, n - 1, c);
    std::vector<kernels::FeatureRow> cf(static_cast<std::size_t>(S));
    indicator_backends().back()->features(m.compressed.view(), fp, 0, n - 1, cf);
    for (std::size_t r = 0; r < grid_rows.size(); ++r) {
      const auto& g = grid_rows[r][static_cast<std::size_t>(s)];
      const auto& want = names[r] == "serial" ? c[static_cast<std::size_t>(s)] : cf[static_cast<std::size_t>(s)];
      EXPECT_EQ(g.history, n) << names[r] << " s=" << s;
      EXPECT_EQ(g.last_bar, at.back()) << names[r] << " s=" << s;
      for (int k = 0; k < kernels::kFeatureCount; ++k)
        EXPECT_TRUE(same(g.value[k], want.value[k])) << names[r] << " feature " << k << " s=" << s << ": " << g.value[k]
                                                     << " vs " << want.value[k];
    }
  }
}

// ---- backtests -------------------------------------------------------------------------------------------------------

std::vector<kernels::Genome> gap_genomes() {
  using kernels::CondKind;
  const auto k = [](CondKind c) { return static_cast<std::int32_t>(c); };
  std::vector<kernels::Genome> gs;
  kernels::Genome a;  // RSI mean reversion, exit rule and stop
  a.entry[0] = {k(CondKind::rsi_below), 1, 0, 40.0f};
  a.exit_rule = {k(CondKind::rsi_above), 1, 0, 55.0f};
  a.stop_atr = 2.0f;
  gs.push_back(a);
  kernels::Genome b;  // trend, both sides, trailing stop and target
  b.entry[0] = {k(CondKind::ma_above), 0, 2, 0.0f};
  b.side = 2;
  b.trail_atr = 2.5f;
  b.take_atr = 5.0f;
  gs.push_back(b);
  kernels::Genome c;  // short breakouts with a time exit
  c.entry[0] = {k(CondKind::close_below_bb), 1, 2, 1.0f};
  c.side = 1;
  c.max_hold = 9;
  gs.push_back(c);
  for (auto& g : gs) g = kernels::genome_normalize(g);
  return gs;
}

TEST(GapsBacktest, SkipMakesTheSameTradesAsTheCompressedMarket) {
  const ClosedMarket m = closed_market(5, 900, 37);
  // One symbol at a time: each symbol's compressed row has its own length, and the capital is split per symbol.
  for (std::int32_t s = 0; s < m.grid.n_symbols; ++s) {
    const auto& at = m.at[static_cast<std::size_t>(s)];
    OwnedPanel g1 = testing::synthetic_panel(1, m.grid.n_bars, 1, false);
    OwnedPanel c1 = testing::synthetic_panel(1, static_cast<std::int32_t>(at.size()), 1, false);
    auto copy_row = [](const OwnedPanel& from, std::int32_t row, OwnedPanel& to) {
      std::vector<float> OwnedPanel::*cols[] = {&OwnedPanel::open, &OwnedPanel::high, &OwnedPanel::low,
                                                      &OwnedPanel::close, &OwnedPanel::volume, &OwnedPanel::qvol,
                                                      &OwnedPanel::trades};
      for (auto col : cols) {
        std::vector<float>& dst = to.*col;
        for (std::int32_t t = 0; t < to.n_bars; ++t)
          dst[static_cast<std::size_t>(t)] = (from.*col)[static_cast<std::size_t>(row * from.stride + t)];
      }
    };
    copy_row(m.grid, s, g1);
    copy_row(m.compressed, s, c1);
    const StrategyFeatures fg = strategy_features_compute(g1.view(), true);
    const StrategyFeatures fc = strategy_features_compute(c1.view(), true);
    const auto gs = gap_genomes();
    kernels::BacktestCosts costs;
    costs.slippage_spread = 0.5;  // the spread proxy of the previous existing bar must carry over the closure too
    BacktestRequest rg{g1.view(), &fg, gs, costs};
    BacktestRequest rc{c1.view(), &fc, gs, costs};
    std::size_t trades = 0;
    for (std::size_t i = 0; i < gs.size(); ++i) {
      kernels::BacktestAccum ag, ac;
      const auto tg = backtest_trades(rg, i, &ag);
      const auto tc = backtest_trades(rc, i, &ac);
      ASSERT_EQ(tg.size(), tc.size()) << "symbol " << s << " genome " << i;
      trades += tg.size();
      for (std::size_t j = 0; j < tg.size(); ++j) {
        EXPECT_EQ(tg[j].trade.entry_bar, at[static_cast<std::size_t>(tc[j].trade.entry_bar)]) << "s=" << s << " trade " << j;
        EXPECT_EQ(tg[j].trade.exit_bar, at[static_cast<std::size_t>(tc[j].trade.exit_bar)]) << "s=" << s << " trade " << j;
        EXPECT_EQ(tg[j].trade.reason, tc[j].trade.reason);
        EXPECT_EQ(tg[j].trade.entry_price, tc[j].trade.entry_price);
        EXPECT_EQ(tg[j].trade.exit_price, tc[j].trade.exit_price);
        EXPECT_EQ(tg[j].trade.pnl, tc[j].trade.pnl);
      }
      EXPECT_EQ(ag.n, ac.n);
      EXPECT_EQ(ag.sum, ac.sum);
      EXPECT_EQ(ag.trades, ac.trades);
      // The float backends on the grid equal themselves on the compressed market.
      for (const auto& b : backtest_backends()) {
        BacktestRequest one_g = rg, one_c = rc;
        one_g.genomes = std::span(gs).subspan(i, 1);
        one_c.genomes = std::span(gs).subspan(i, 1);
        const auto x = b->run(one_g).genome[0];
        const auto y = b->run(one_c).genome[0];
        EXPECT_EQ(x.n, y.n) << b->name();
        EXPECT_EQ(x.trades, y.trades) << b->name();
        EXPECT_EQ(x.sum, y.sum) << b->name();
        EXPECT_EQ(x.ret_sum, y.ret_sum) << b->name();
      }
    }
    EXPECT_GT(trades, 5u) << "symbol " << s;
  }
}

TEST(GapsBacktest, SkipHoldsAPositionAcrossTheClosureAndFillsAtTheNextBarThatExists) {
  // A long position open over a weekend of symbol 0: under skip it is held (no `gap` exit), under reset-after:0 the
  // missing bar flattens it at the last close.
  const ClosedMarket m = closed_market(1, 600, 41);
  kernels::Genome g;
  g.entry[0] = {static_cast<std::int32_t>(kernels::CondKind::mom_up), 0, 0, 0.0f};
  g.max_hold = 30;
  g = kernels::genome_normalize(g);
  const std::vector<kernels::Genome> gs{g};
  const StrategyFeatures skip = strategy_features_compute(m.grid.view(), true);
  const StrategyFeatures zero = strategy_features_compute(m.grid.view(), true, kernels::gap_reset_after(0));
  const auto ts = backtest_trades(BacktestRequest{m.grid.view(), &skip, gs}, 0);
  const auto tz = backtest_trades(BacktestRequest{m.grid.view(), &zero, gs}, 0);
  bool held_over = false, gap_exit = false;
  for (const auto& t : ts) {
    EXPECT_NE(t.trade.reason, kernels::ExitReason::gap);
    EXPECT_FALSE(closed(0, t.trade.entry_bar) || closed(0, t.trade.exit_bar));
    for (std::int32_t b = t.trade.entry_bar; b < t.trade.exit_bar; ++b) held_over = held_over || closed(0, b);
  }
  for (const auto& t : tz) gap_exit = gap_exit || t.trade.reason == kernels::ExitReason::gap;
  EXPECT_TRUE(held_over);
  EXPECT_TRUE(gap_exit);
}

}  // namespace gaps_test
}  // namespace qtos
