// The TBB backend of population backtests: genomes in groups of eight SIMD lanes, their signals built by columns,
// the shared step run over the bars once per group and symbol.
#include "cpu/backtest/backtest.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include "cpu/backtest/backtest_detail.hpp"
#include "cpu/kernels/strategy.hpp"
#include "cpu/util/parallel.hpp"

namespace qtos {

using detail::feature_plane;
using kernels::BacktestAccum;
using kernels::Genome;
using kernels::PanelView;
using kernels::StrategyFeature;

namespace {

// The lane form of the step: eight genomes in the lanes of GCC vector types (one AVX2 register of floats, one AVX-512
// register of doubles; GCC splits them into narrower registers where the CPU has none that wide). Sixteen lanes
// measured 5x slower: g++ lowers 128-byte vectors of doubles element by element.
constexpr int kLanes = 8;
typedef float VF __attribute__((vector_size(4 * kLanes)));
typedef std::int32_t VI __attribute__((vector_size(4 * kLanes)));
typedef double VD __attribute__((vector_size(8 * kLanes)));
typedef std::int64_t VL __attribute__((vector_size(8 * kLanes)));
typedef std::uint8_t VB __attribute__((vector_size(kLanes)));

/// The genome fields the step reads, one genome per lane.
struct GenomeLanes {
  VF stop_atr, take_atr, trail_atr, size;
  VI max_hold;
};

/// Lane arithmetic of kernels::BacktestLaneState for kLanes genomes (see kernels::ScalarLanes).
struct VecLanes {
  using S = float;
  using F = VF;
  using I = VI;
  using M = VI;
  using D = VD;
  using MD = VL;
  static constexpr bool kScalar = false;
  [[gnu::always_inline]] static F bc(S x) { return F{} + x; }
  [[gnu::always_inline]] static I bi(std::int32_t x) { return I{} + x; }
  [[gnu::always_inline]] static F to_f(I x) { return __builtin_convertvector(x, VF); }
  [[gnu::always_inline]] static D to_d(F x) { return __builtin_convertvector(x, VD); }
  [[gnu::always_inline]] static D i_to_d(I x) { return __builtin_convertvector(x, VD); }
  [[gnu::always_inline]] static MD wide(M m) { return __builtin_convertvector(m, VL); }
  [[gnu::always_inline]] static F abs(F x) { return x < 0.0f ? -x : x; }
  [[gnu::always_inline]] static M lnot(M m) { return ~m; }
  [[gnu::always_inline]] static bool any(M m) {
    std::uint64_t w[sizeof(M) / 8];
    std::memcpy(w, &m, sizeof w);
    std::uint64_t x = 0;
    for (std::uint64_t v : w) x |= v;
    return x != 0;
  }
  /// The kLanes signal bytes of one bar.
  [[gnu::always_inline]] static I load_signals(const std::uint8_t* p) {
    VB b;
    std::memcpy(&b, p, sizeof b);
    return __builtin_convertvector(b, VI);
  }
  /// Lane `i` of a lane accumulator.
  static kernels::BacktestAccum extract(const kernels::BacktestAccumT<VD>& a, int i) {
    kernels::BacktestAccum o;
    o.n = a.n[i]; o.sum = a.sum[i]; o.sum2 = a.sum2[i]; o.sum3 = a.sum3[i]; o.sum4 = a.sum4[i]; o.down2 = a.down2[i];
    o.ret_sum = a.ret_sum[i]; o.accounts = a.accounts[i]; o.max_dd = a.max_dd[i]; o.trades = a.trades[i]; o.wins = a.wins[i];
    o.gross_win = a.gross_win[i]; o.gross_loss = a.gross_loss[i]; o.trade_ret_sum = a.trade_ret_sum[i];
    o.bars_in_pos = a.bars_in_pos[i];
    return o;
  }
};

// The lane kernel is compiled for AVX-512 (x86-64-v4), AVX2 (v3) and baseline x86-64; the loader picks the best the
// CPU has (GCC function multi-versioning), so one binary runs everywhere and uses the wide registers where they are.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define QTOS_LANE_CLONES [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
#else
#define QTOS_LANE_CLONES
#endif


/// One shape of compiled condition over n bars: lhs = scale * a [/ close], rhs = (b or cst) + (k * c or 0), compared
/// as kernels::condition_run<float> does. The shape is a template so that each loop is branch-free and vectorises.
template <bool HasB, bool HasC, bool DivClose, bool Above>
[[gnu::always_inline]] inline void condition_loop(const float* __restrict a, const float* __restrict b, const float* __restrict cp,
                                                  const float* __restrict close, float scale, float cst, float kk, std::int32_t n,
                                                  std::uint8_t* __restrict out) {
  for (std::int32_t k = 0; k < n; ++k) {
    float lhs = scale * a[k];
    if constexpr (DivClose) lhs = lhs / close[k];
    float rhs = HasB ? b[k] : cst;
    rhs = rhs + (HasC ? kk * cp[k] : 0.0f);
    out[k] = Above ? kernels::rule_above(lhs, rhs) : kernels::rule_below(lhs, rhs);
  }
}

/// A compiled condition (kernels::condition_compile, the one definition of the rules) over n bars into out[k] (0/1);
/// the program's shape picks the loop. The consistency suite holds the backends equal.
[[gnu::always_inline]] inline void condition_series(const kernels::Condition& c, const float* close, const float* f0, std::int64_t ps, std::int32_t n,
                      std::uint8_t* out) {
  const kernels::CondProgram p = kernels::condition_compile(c);
  if (p.cmp == 0) {
    for (std::int32_t k = 0; k < n; ++k) out[k] = 0;
    return;
  }
  const float* a = p.a < 0 ? close : f0 + p.a * ps;
  const float* b = p.b < 0 ? nullptr : f0 + p.b * ps;
  const float* cp = p.c_plane < 0 ? nullptr : f0 + p.c_plane * ps;
  const int shape = (b ? 1 : 0) | (cp ? 2 : 0) | (p.div_close ? 4 : 0) | (p.cmp > 0 ? 8 : 0);
  switch (shape) {
#define QTOS_CONDITION_SHAPE(S)                                                                                     \
  case S:                                                                                                           \
    condition_loop<(S & 1) != 0, (S & 2) != 0, (S & 4) != 0, (S & 8) != 0>(a, b, cp, close, p.scale, p.c, p.k, n, out); \
    return;
    QTOS_CONDITION_SHAPE(0) QTOS_CONDITION_SHAPE(1) QTOS_CONDITION_SHAPE(2) QTOS_CONDITION_SHAPE(3)
    QTOS_CONDITION_SHAPE(4) QTOS_CONDITION_SHAPE(5) QTOS_CONDITION_SHAPE(6) QTOS_CONDITION_SHAPE(7)
    QTOS_CONDITION_SHAPE(8) QTOS_CONDITION_SHAPE(9) QTOS_CONDITION_SHAPE(10) QTOS_CONDITION_SHAPE(11)
    QTOS_CONDITION_SHAPE(12) QTOS_CONDITION_SHAPE(13) QTOS_CONDITION_SHAPE(14) QTOS_CONDITION_SHAPE(15)
#undef QTOS_CONDITION_SHAPE
  }
}

/// Scratch of the bulk form, reused across the cells of a task.
struct BulkScratch {
  std::vector<std::uint8_t> a, b, m;  ///< condition series of one genome
  std::vector<std::uint8_t> sig;      ///< signals of a lane group, bar-major: sig[k * kLanes + lane]
};

/// What every lane group of a symbol shares over the window, computed once per run (not once per task): valid-bar
/// counts and the last valid bar (for the all-lanes-idle skip), which bars are stepped under the gap policy, the bar
/// that closes the window and the slippage of fills on each bar.
struct WindowTables {
  std::int32_t n = 0;                      ///< bars in the window
  std::vector<std::int32_t> valid_before;  ///< per symbol n + 1: valid bars in [0, k) of the window
  std::vector<std::int32_t> last_valid;    ///< per symbol n: the last valid bar <= k, -1 when none
  std::vector<std::uint8_t> stepped;       ///< per symbol n: 1 when the step runs on bar k (kernels::BacktestGapCursor)
  std::vector<std::int32_t> last;          ///< per symbol: the window bar that closes the positions (backtest_last_bar)
  std::vector<float> slip;                 ///< per symbol n: fill_slippage of fills on bar k

  explicit WindowTables(const BacktestRequest& r) : n(r.t_end - r.t_begin) {
    const PanelView& p = r.panel;
    const auto un = static_cast<std::size_t>(n), S = static_cast<std::size_t>(p.n_symbols);
    valid_before.resize((un + 1) * S);
    last_valid.resize(un * S);
    stepped.resize(un * S);
    last.resize(S);
    slip.resize(un * S);
    const float* spread = r.features->f32.data() + feature_plane(StrategyFeature::spread) * r.features->plane_size;
    qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, p.n_symbols), [&](const tbb::blocked_range<std::int32_t>& br) {
      for (std::int32_t s = br.begin(); s != br.end(); ++s) {
        std::int32_t* vb = valid_before.data() + static_cast<std::size_t>(s) * (un + 1);
        std::int32_t* lv = last_valid.data() + static_cast<std::size_t>(s) * un;
        std::uint8_t* st = stepped.data() + static_cast<std::size_t>(s) * un;
        float* sl = slip.data() + static_cast<std::size_t>(s) * un;
        const std::int64_t at0 = p.at(s, r.t_begin);
        kernels::BacktestGapCursor<float> gaps{r.features->gaps};
        const std::int32_t prev = detail::backtest_prev_valid(p, s, r.t_begin);
        gaps.start(prev, r.t_begin, prev >= 0 ? spread[p.at(s, prev)] : kernels::qnan<float>());
        std::int32_t count = 0, lastv = -1;
        for (std::int32_t k = 0; k < n; ++k) {
          vb[k] = count;
          const std::int64_t i = at0 + k;
          const bool valid = kernels::backtest_bar_valid(p.open[i], p.high[i], p.low[i], p.close[i]);
          st[k] = gaps.on_bar(valid) ? 1 : 0;
          sl[k] = kernels::fill_slippage<float>(r.costs, gaps.fill_spread());
          if (valid) {
            ++count;
            lastv = k;
            gaps.passed(spread[i]);
          }
          lv[k] = lastv;
        }
        vb[n] = count;
        last[static_cast<std::size_t>(s)] = kernels::backtest_last_bar(r.features->gaps, lastv, n - 1);
      }
    });
  }
  const std::int32_t* valid_before_of(std::int32_t s) const { return valid_before.data() + static_cast<std::size_t>(s) * (static_cast<std::size_t>(n) + 1); }
  const std::int32_t* last_valid_of(std::int32_t s) const { return last_valid.data() + static_cast<std::size_t>(s) * static_cast<std::size_t>(n); }
  const std::uint8_t* stepped_of(std::int32_t s) const { return stepped.data() + static_cast<std::size_t>(s) * static_cast<std::size_t>(n); }
  const float* slip_of(std::int32_t s) const { return slip.data() + static_cast<std::size_t>(s) * static_cast<std::size_t>(n); }
};

/// The entry rule (terms combined) over n bars into out.
[[gnu::always_inline]] inline void entry_series(const kernels::Condition* terms, std::int32_t op, const float* close, const float* f0, std::int64_t ps,
                  std::int32_t n, std::uint8_t* out, std::uint8_t* tmp) {
  condition_series(terms[0], close, f0, ps, n, out);
  if (op == static_cast<std::int32_t>(kernels::EntryOp::single)) return;
  condition_series(terms[1], close, f0, ps, n, tmp);
  if (op == static_cast<std::int32_t>(kernels::EntryOp::and_op))
    for (std::int32_t k = 0; k < n; ++k) out[k] &= tmp[k];
  else
    for (std::int32_t k = 0; k < n; ++k) out[k] |= tmp[k];
}

/// signals_eval of genome g over the whole window by columns (vectorised comparisons), written to lane `lane` of the
/// group's bar-major signal array.
[[gnu::always_inline]] inline void signals_series(const BacktestRequest& r, const float* feats, const Genome& g, std::int32_t s, BulkScratch& w, int lane) {
  using namespace kernels;
  const PanelView& p = r.panel;
  const std::int64_t ps = r.features->plane_size;
  const std::int32_t n = r.t_end - r.t_begin;
  const auto un = static_cast<std::size_t>(n);
  w.a.resize(un); w.b.resize(un); w.m.resize(un);
  const std::int64_t at0 = p.at(s, r.t_begin);
  const float* close = p.close + at0;
  const float* f0 = feats + at0;
  std::uint8_t* a = w.a.data();
  std::uint8_t* b = w.b.data();
  std::uint8_t* m = w.m.data();
  std::uint8_t* sig = w.sig.data() + lane;
  entry_series(g.entry, g.op, close, f0, ps, n, a, b);  // the rule
  if (g.side == static_cast<std::int32_t>(Side::both)) {
    const Condition mirror[2] = {condition_mirror(g.entry[0]), condition_mirror(g.entry[1])};
    entry_series(mirror, g.op, close, f0, ps, n, m, b);
    for (std::int32_t k = 0; k < n; ++k)  // long: rule and not mirror; short: mirror and not rule (into b)
      b[k] = static_cast<std::uint8_t>((a[k] & !m[k]) * kSignalLong + (m[k] & !a[k]) * kSignalShort);
    condition_series(g.exit_rule, close, f0, ps, n, a);
    condition_series(condition_mirror(g.exit_rule), close, f0, ps, n, m);
    for (std::int32_t k = 0; k < n; ++k)
      sig[k * kLanes] = static_cast<std::uint8_t>(b[k] | a[k] * kSignalExitLong | m[k] * kSignalExitShort);
  } else {
    const bool shorts = g.side == static_cast<std::int32_t>(Side::short_only);
    const std::uint8_t in = shorts ? kSignalShort : kSignalLong, out = shorts ? kSignalExitShort : kSignalExitLong;
    condition_series(g.exit_rule, close, f0, ps, n, b);
    for (std::int32_t k = 0; k < n; ++k) sig[k * kLanes] = static_cast<std::uint8_t>(a[k] * in | b[k] * out);
  }
}

/// The first bar k in [from, to) at which some lane of the group has an entry signal, or `to`.
std::int32_t next_entry_bar(const std::uint8_t* sig, std::int32_t from, std::int32_t to) {
  static_assert(kLanes % 8 == 0, "whole 8-byte words per bar");
  constexpr std::uint64_t kEntryBits = 0x0101010101010101ull * (kernels::kSignalLong | kernels::kSignalShort);
  for (std::int32_t k = from; k < to; ++k) {
    std::uint64_t w[kLanes / 8];
    std::memcpy(w, sig + static_cast<std::ptrdiff_t>(k) * kLanes, sizeof w);
    std::uint64_t x = 0;
    for (std::uint64_t v : w) x |= v;
    if ((x & kEntryBits) != 0) return k;
  }
  return to;
}

/// Runs a group of up to kLanes genomes on symbol s: their signals by columns, then the shared step over the bars
/// with one genome per SIMD lane. Compiled for AVX-512, AVX2 and baseline x86-64, chosen at load time (the signal
/// builders above are forced inline so that their comparisons use the wide registers too).
QTOS_LANE_CLONES void run_group(const BacktestRequest& r, const WindowTables& wt, const float* feats, const Genome* genomes, int count,
                                std::int32_t s, BulkScratch& w, BacktestAccum* out) {
  using namespace kernels;
  const PanelView& p = r.panel;
  const std::int64_t ps = r.features->plane_size;
  const std::int32_t n = r.t_end - r.t_begin;
  w.sig.resize(static_cast<std::size_t>(n) * kLanes);
  GenomeLanes gl{};
  for (int lane = 0; lane < kLanes; ++lane) {
    const Genome& g = genomes[lane < count ? lane : 0];  // spare lanes repeat the first genome; their results are dropped
    if (lane < count) {
      signals_series(r, feats, g, s, w, lane);
    } else {
      for (std::size_t k = 0; k < static_cast<std::size_t>(n); ++k) w.sig[k * kLanes + static_cast<std::size_t>(lane)] = w.sig[k * kLanes];
    }
    gl.stop_atr[lane] = g.stop_atr;
    gl.take_atr[lane] = g.take_atr;
    gl.trail_atr[lane] = g.trail_atr;
    gl.size[lane] = g.size;
    gl.max_hold[lane] = g.max_hold;
  }
  const std::int64_t at0 = p.at(s, r.t_begin);
  const float* open = p.open + at0;
  const float* high = p.high + at0;
  const float* low = p.low + at0;
  const float* close = p.close + at0;
  const float* atr = feats + at0 + feature_plane(StrategyFeature::atr) * ps;
  const float* slip = wt.slip_of(s);
  const std::int32_t* valid_before = wt.valid_before_of(s);
  const std::int32_t* last_valid = wt.last_valid_of(s);
  const std::uint8_t* sig = w.sig.data();
  const std::uint8_t* stepped = wt.stepped_of(s);
  const std::int32_t last = wt.last[static_cast<std::size_t>(s)];
  BacktestLaneState<VecLanes> st;
  st.init(float(r.costs.capital / p.n_symbols));
  NoTradeSink sink;
  for (std::int32_t k = 0; k <= last; ++k) {
    if (!stepped[k]) continue;  // a missing bar the gap policy skips
    st.step(gl, r.costs, r.t_begin + k, open[k], high[k], low[k], close[k], VecLanes::load_signals(sig + static_cast<std::ptrdiff_t>(k) * kLanes),
            atr[k], slip[k], k == last, sink);
    // Every lane idle (flat, nothing pending, equity marked): up to the next bar where some lane may enter (or the
    // last bar) the step would only count each valid bar (r = 0), remember its close and do nothing on a missing
    // one, in every lane, so do exactly that here.
    if (st.started && !VecLanes::any((st.pos != 0) | (st.pending != 0) | (st.cash != st.eq_prev))) {
      const std::int32_t j = next_entry_bar(sig, k + 1, last);
      if (j > k + 1) {
        st.acc.n += static_cast<double>(valid_before[j] - valid_before[k + 1]);
        const std::int32_t lv = last_valid[j - 1];
        if (lv > k) st.last_close = close[lv];
        k = j - 1;
      }
    }
  }
  st.finish();
  for (int lane = 0; lane < count; ++lane) out[lane] = VecLanes::extract(st.acc, lane);
}

class BacktestCpu final : public BacktestBackend {
 public:
  std::string_view name() const override { return "cpu"; }

 protected:
  void run_checked(const BacktestRequest& r, BacktestResult& out) const override {
    const std::size_t P = r.genomes.size(), S = static_cast<std::size_t>(r.panel.n_symbols);
    out.genome_symbol.assign(P * S, BacktestAccum{});
    const float* feats = r.features->f32.data();
    // Lane groups x symbols: each (genome, symbol) cell is written by exactly one task, so the result does not
    // depend on the schedule; the merge over symbols runs afterwards in symbol order.
    const std::size_t groups = (P + kLanes - 1) / kLanes;
    const WindowTables wt(r);
    qtos::parallel_for(tbb::blocked_range2d<std::size_t>(0, groups, 2, 0, S, 1), [&](const tbb::blocked_range2d<std::size_t>& br) {
      BulkScratch scratch;
      BacktestAccum cell[kLanes];
      for (std::size_t s = br.cols().begin(); s != br.cols().end(); ++s)
        for (std::size_t grp = br.rows().begin(); grp != br.rows().end(); ++grp) {
          const std::size_t g0 = grp * kLanes;
          const int count = static_cast<int>(std::min<std::size_t>(kLanes, P - g0));
          run_group(r, wt, feats, r.genomes.data() + g0, count, static_cast<std::int32_t>(s), scratch, cell);
          for (int lane = 0; lane < count; ++lane) out.genome_symbol[(g0 + static_cast<std::size_t>(lane)) * S + s] = cell[lane];
        }
    });
    detail::backtest_merge_genomes(r, out);
  }
};

}  // namespace

namespace detail {
std::unique_ptr<BacktestBackend> backtest_cpu_backend() { return std::make_unique<BacktestCpu>(); }
}  // namespace detail

}  // namespace qtos
