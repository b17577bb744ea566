// TBB backend of the indicators and ranking features (parallel over symbols), the argument checks shared by every
// backend, and the serial double-precision reference of the consistency suite.
#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <tbb/parallel_for.h>

#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backend/indicator_lanes.hpp"
#include "cpu/util/parallel.hpp"

namespace qtos {

using kernels::IndicatorKind;
using kernels::IndicatorParams;
using kernels::PanelView;

std::string_view indicator_name(IndicatorKind kind) {
  std::string_view name = "?";
  kernels::indicator_visit(kind, [&](auto tag) { name = decltype(tag)::type::kName; });
  return name;
}

std::vector<std::string> indicator_output_names(IndicatorKind kind) {
  std::vector<std::string> names;
  kernels::indicator_visit(kind, [&](auto tag) {
    for (const char* n : decltype(tag)::type::kOutputNames) names.emplace_back(n);
  });
  return names;
}

std::int32_t indicator_lookback(IndicatorKind kind, const IndicatorParams& p, int output) {
  std::int32_t lookback = 0;
  kernels::indicator_visit(kind, [&](auto tag) { lookback = decltype(tag)::type::lookback(p, output); });
  return lookback;
}

kernels::IndicatorInputs indicator_inputs(IndicatorKind kind) {
  auto inputs = kernels::IndicatorInputs::close;
  kernels::indicator_visit(kind, [&](auto tag) { inputs = decltype(tag)::type::kInputs; });
  return inputs;
}

std::span<const kernels::IndicatorParamSpec> indicator_param_specs(IndicatorKind kind) {
  std::span<const kernels::IndicatorParamSpec> specs;
  kernels::indicator_visit(kind, [&](auto tag) { specs = decltype(tag)::type::kParams; });
  return specs;
}

IndicatorParams indicator_defaults(IndicatorKind kind) {
  IndicatorParams p;
  kernels::indicator_visit(kind, [&](auto tag) { p = decltype(tag)::type::kDefaults; });
  return p;
}

namespace {

void require(bool ok, const std::string& what, std::int32_t value, const std::string& expected) {
  if (!ok) throw std::invalid_argument(what + " = " + std::to_string(value) + ": expected " + expected);
}

std::string integer_text(double x) { return std::to_string(static_cast<std::int64_t>(x)); }

}  // namespace

kernels::GapPolicy gap_policy_parse(std::string_view text, std::string_view what) {
  const auto fail = [&] {
    return std::invalid_argument(std::string(what) + " '" + std::string(text) +
                                 "': expected skip or reset-after:N (N an integer in [0, 1000000])");
  };
  if (text == "skip") return kernels::gap_skip();
  constexpr std::string_view kPrefix = "reset-after:";
  if (!text.starts_with(kPrefix)) throw fail();
  const std::string_view digits = text.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 7) throw fail();
  std::int32_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') throw fail();
    n = n * 10 + (c - '0');
  }
  if (n > 1000000) throw fail();
  return kernels::gap_reset_after(n);
}

std::string gap_policy_text(kernels::GapPolicy gaps) {
  return gaps.skips_all() ? std::string("skip") : "reset-after:" + std::to_string(gaps.reset_after);
}

void gap_policy_check(kernels::GapPolicy gaps) {
  if (gaps.reset_after < -1)
    throw std::invalid_argument("gap policy reset_after = " + std::to_string(gaps.reset_after) +
                                ": expected -1 (skip) or a bar count >= 0");
}

std::int32_t price_decimals_infer(std::span<const float> high, std::span<const float> low, std::span<const float> close) {
  float largest = 0.0f;
  bool any = false;
  for (const auto col : {high, low, close})
    for (float p : col)
      if (std::isfinite(p)) {
        largest = std::max(largest, std::fabs(p));
        any = true;
      }
  if (!any || largest == 0.0f) return -1;
  const double largest_step = std::ldexp(1.0, std::ilogb(largest) - 23);  // a float step at the largest price
  double scale = 1.0;
  for (std::int32_t k = 0; k <= 9; ++k, scale *= 10.0) {
    // The grid must be much wider than a float step, or any float would fit it (8 steps: a value that is not a quote
    // fits by chance with probability 1/8, so a whole series of them never does).
    if (1.0 / scale < 8.0 * largest_step) return -1;
    bool fits = true;
    for (const auto col : {high, low, close}) {
      for (float p : col) {
        if (!std::isfinite(p) || p == 0.0f) continue;
        const double x = static_cast<double>(p) * scale;
        const double half_step = 0.5 * std::ldexp(1.0, std::ilogb(p) - 23) * scale;
        if (std::fabs(x - std::floor(x + 0.5)) > half_step * (1 + 1e-9) + 1e-12) {
          fits = false;
          break;
        }
      }
      if (!fits) break;
    }
    if (fits) return k;
  }
  return -1;
}

std::vector<std::int32_t> panel_price_decimals(const kernels::PanelView& panel) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(std::max(panel.n_symbols, 0)), -1);
  const auto n = static_cast<std::size_t>(std::max(panel.n_bars, 0));
  for (std::int32_t s = 0; s < panel.n_symbols; ++s) {
    const auto row = [&](const float* c) { return std::span<const float>(c + panel.at(s, 0), n); };
    out[static_cast<std::size_t>(s)] = price_decimals_infer(row(panel.high), row(panel.low), row(panel.close));
  }
  return out;
}

std::int32_t panel_price_decimals_common(const kernels::PanelView& panel) {
  const auto n = static_cast<std::size_t>(std::max(panel.n_bars, 0));
  std::vector<float> all;
  all.reserve(3 * n * static_cast<std::size_t>(std::max(panel.n_symbols, 0)));
  for (std::int32_t s = 0; s < panel.n_symbols; ++s)
    for (const float* c : {panel.high, panel.low, panel.close}) all.insert(all.end(), c + panel.at(s, 0), c + panel.at(s, 0) + n);
  return price_decimals_infer(all, {}, {});
}

void indicator_params_check(IndicatorKind kind, const IndicatorParams& p) {
  gap_policy_check(p.gaps);
  if (p.price_decimals < -1 || p.price_decimals > 9)
    throw std::invalid_argument("price_decimals = " + std::to_string(p.price_decimals) +
                                ": expected -1 (prices as stored) or 0 to 9");
  if (static_cast<int>(kind) < 0 || static_cast<int>(kind) >= kernels::kIndicatorKindCount)
    throw std::invalid_argument("indicator kind " + std::to_string(static_cast<int>(kind)) + ": expected one of the " +
                                std::to_string(kernels::kIndicatorKindCount) + " families");
  const std::string name(indicator_name(kind));
  const auto specs = indicator_param_specs(kind);
  for (const kernels::IndicatorParamSpec& s : specs) {
    const double v = kernels::param_value(p, s.field);
    if (s.field == kernels::IndicatorParamField::k) {
      if (!(v > s.min && v < s.max))
        throw std::invalid_argument(name + " " + s.label + " = " + std::to_string(v) + ": expected a number in (" +
                                    integer_text(s.min) + ", " + integer_text(s.max) + ")");
      continue;
    }
    const auto value = static_cast<std::int32_t>(v);
    if (s.above >= 0) {
      const kernels::IndicatorParamSpec& base = specs[static_cast<std::size_t>(s.above)];
      const double floor = kernels::param_value(p, base.field);
      require(v > floor && v <= s.max, name + " " + s.label, value,
              "an integer above the " + std::string(base.label) + " (" + integer_text(floor) + ") and <= " +
                  integer_text(s.max));
    } else {
      require(v >= s.min && v <= s.max, name + " " + s.label, value,
              "an integer in [" + integer_text(s.min) + ", " + integer_text(s.max) + "]");
    }
  }
}

void feature_params_check(const kernels::FeatureParams& p) {
  gap_policy_check(p.gaps);
  require(p.price_decimals >= -1 && p.price_decimals <= 9, "price_decimals", p.price_decimals, "-1 (as stored) or 0..9");
  require(p.ema_fast >= 1 && p.ema_fast < p.ema_slow, "ema_fast", p.ema_fast, "an integer in [1, ema_slow)");
  require(p.ema_slow <= 100000, "ema_slow", p.ema_slow, "an integer <= 100000");
  require(p.adx >= 1 && p.adx <= 100000, "adx window", p.adx, "an integer in [1, 100000]");
  require(p.atr >= 1 && p.atr <= 100000, "atr window", p.atr, "an integer in [1, 100000]");
  require(p.bbands >= 2 && p.bbands <= 100000, "bbands window", p.bbands, "an integer in [2, 100000]");
  require(p.momentum >= 1 && p.momentum <= 100000, "momentum window", p.momentum, "an integer in [1, 100000]");
  require(p.liquidity >= 1 && p.liquidity <= kernels::kLiquidityWindowMax, "liquidity window", p.liquidity,
          "an integer in [1, " + std::to_string(kernels::kLiquidityWindowMax) + "]");
  require(p.drawdown >= 2 && p.drawdown <= kernels::kMaxDrawdownWindowMax, "drawdown window", p.drawdown,
          "an integer in [2, " + std::to_string(kernels::kMaxDrawdownWindowMax) + "]");
}

std::size_t indicator_out_size(IndicatorKind kind, const PanelView& panel) {
  return static_cast<std::size_t>(kernels::indicator_output_count(kind)) * static_cast<std::size_t>(panel.n_symbols) *
         static_cast<std::size_t>(panel.stride);
}

std::uint32_t indicator_all_outputs(IndicatorKind kind) {
  return (std::uint32_t{1} << kernels::indicator_output_count(kind)) - 1;
}

std::size_t indicator_batch_out_size(IndicatorKind kind, const PanelView& panel, std::size_t n_params,
                                     std::uint32_t outputs) {
  return n_params * static_cast<std::size_t>(std::popcount(outputs & indicator_all_outputs(kind))) *
         static_cast<std::size_t>(panel.n_symbols) * static_cast<std::size_t>(panel.stride);
}

namespace {

void panel_check(const PanelView& panel, const char* what) {
  if (panel.n_symbols < 0 || panel.n_bars < 0 || panel.stride < panel.n_bars)
    throw std::invalid_argument(std::string(what) + ": panel shape is inconsistent (n_symbols " +
                                std::to_string(panel.n_symbols) + ", n_bars " + std::to_string(panel.n_bars) +
                                ", stride " + std::to_string(panel.stride) + ")");
  if (panel.n_symbols > 0 && panel.n_bars > 0 &&
      (panel.high == nullptr || panel.low == nullptr || panel.close == nullptr || panel.quote_volume == nullptr))
    throw std::invalid_argument(std::string(what) + ": panel lacks a high, low, close or quote_volume column");
}

}  // namespace

void IndicatorBackend::series(const PanelView& panel, IndicatorKind kind, const IndicatorParams& params,
                              std::span<float> out) const {
  panel_check(panel, "indicator series");
  indicator_params_check(kind, params);
  const std::size_t need = indicator_out_size(kind, panel);
  if (out.size() != need)
    throw std::invalid_argument("indicator series: out has " + std::to_string(out.size()) + " floats; expected " +
                                std::to_string(need) + " (outputs x n_symbols x stride)");
  if (need == 0 || panel.n_bars == 0) return;
  series_run(panel, kind, params, out);
}

void IndicatorBackend::series_batch(const PanelView& panel, IndicatorKind kind, std::span<const IndicatorParams> params,
                                    std::uint32_t outputs, std::span<float> out) const {
  panel_check(panel, "indicator batch");
  if (params.empty()) throw std::invalid_argument("indicator batch: no parameter sets (expected at least one)");
  for (std::size_t i = 0; i < params.size(); ++i) {
    try {
      indicator_params_check(kind, params[i]);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("indicator batch: parameter set " + std::to_string(i) + ": " + e.what());
    }
  }
  const std::uint32_t all = indicator_all_outputs(kind);
  if (outputs == 0 || (outputs & ~all) != 0)
    throw std::invalid_argument("indicator batch: outputs mask " + std::to_string(outputs) + " for " +
                                std::string(indicator_name(kind)) + "; expected a non-empty subset of bits 0.." +
                                std::to_string(kernels::indicator_output_count(kind) - 1) + " (one per output)");
  const std::size_t need = indicator_batch_out_size(kind, panel, params.size(), outputs);
  if (out.size() != need)
    throw std::invalid_argument("indicator batch: out has " + std::to_string(out.size()) + " floats; expected " +
                                std::to_string(need) + " (parameter sets x outputs asked for x n_symbols x stride)");
  if (need == 0 || panel.n_bars == 0) return;
  series_batch_run(panel, kind, params, outputs, out);
}

void IndicatorBackend::series_batch_run(const PanelView& panel, IndicatorKind kind,
                                        std::span<const IndicatorParams> params, std::uint32_t outputs,
                                        std::span<float> out) const {
  const std::size_t plane = static_cast<std::size_t>(panel.n_symbols) * static_cast<std::size_t>(panel.stride);
  std::vector<float> all(indicator_out_size(kind, panel));
  std::size_t at = 0;
  for (const IndicatorParams& prm : params) {
    series_run(panel, kind, prm, all);
    for (int j = 0; j < kernels::indicator_output_count(kind); ++j, outputs >>= 0)
      if ((outputs >> j) & 1u) {
        std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(j * plane), plane, out.begin() + static_cast<std::ptrdiff_t>(at));
        at += plane;
      }
  }
}

void IndicatorBackend::features(const PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                                std::int32_t t_end, std::span<kernels::FeatureRow> out) const {
  panel_check(panel, "features");
  feature_params_check(params);
  if (out.size() != static_cast<std::size_t>(panel.n_symbols))
    throw std::invalid_argument("features: out has " + std::to_string(out.size()) + " rows; expected n_symbols = " +
                                std::to_string(panel.n_symbols));
  if (panel.n_symbols == 0) return;
  if (t_begin < 0 || t_end < t_begin || t_end >= panel.n_bars)
    throw std::invalid_argument("features: bar range [" + std::to_string(t_begin) + ", " + std::to_string(t_end) +
                                "] is not inside the panel's " + std::to_string(panel.n_bars) + " bars");
  features_run(panel, params, t_begin, t_end, out);
}

namespace {

/// Per-thread scratch of row positions for the gap cursor (one int per bar; touched only after a skipped gap).
std::int32_t* gap_scratch(std::int64_t n) {
  thread_local std::vector<std::int32_t> scratch;
  if (static_cast<std::int64_t>(scratch.size()) < n) scratch.resize(static_cast<std::size_t>(n));
  return scratch.data();
}

template <class T, class Out>
void series_symbol(const PanelView& p, std::int32_t s, IndicatorKind kind, const IndicatorParams& params, Out* out) {
  const std::int64_t base = p.at(s, 0);
  const std::int64_t plane = static_cast<std::int64_t>(p.n_symbols) * p.stride;
  std::int32_t* scratch = gap_scratch(p.n_bars);
  kernels::indicator_dispatch<T>(kind, params, [&](auto& st) {
    using State = std::remove_reference_t<decltype(st)>;
    kernels::indicator_row_run<T, State, Out>(st, p.high + base, p.low + base, p.close + base, p.quote_volume + base,
                                              p.n_bars, out + base, plane, params.gaps, scratch);
  });
}

template <class T>
kernels::FeatureRow features_symbol(const PanelView& p, std::int32_t s, const kernels::FeatureParams& params,
                                    std::int32_t t_begin, std::int32_t t_end) {
  kernels::FeatureState<T> st;
  st.init(params);
  const std::int64_t base = p.at(s, t_begin);
  const std::int32_t len = t_end - t_begin;
  kernels::features_row_run(st, p.high + base, p.low + base, p.close + base, p.quote_volume + base, len, t_begin,
                            gap_scratch(len + 1));
  return st.row;
}

class IndicatorCpu final : public IndicatorBackend {
 public:
  std::string_view name() const override { return "cpu"; }

 protected:
  // Chunks of two blocks of eight symbols: in SIMD lanes (indicator_lanes.hpp) when the family has a lane form and
  // none of a block's bars is missing, else row by row under the gap policy (the same values: the lanes run the same
  // states). `row(s)` runs symbol s by rows.
  template <class Row>
  static void run_chunks(const PanelView& panel, IndicatorKind kind, std::span<const IndicatorParams> params,
                         float* const* planes, const Row& row) {
    const std::int32_t lanes = detail::kIndicatorLanes, chunk = 2 * lanes;
    const bool has_lanes = detail::indicator_has_lanes(kind);
    const std::int32_t chunks = (panel.n_symbols + chunk - 1) / chunk;
    qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, chunks), [&](const auto& r) {
      for (std::int32_t c = r.begin(); c != r.end(); ++c) {
        const std::int32_t s0 = c * chunk, s1 = std::min(s0 + chunk, panel.n_symbols);
        const int n_blocks = has_lanes ? (s1 - s0) / lanes : 0;
        const unsigned done = n_blocks > 0 ? detail::indicator_lanes_blocks(panel, s0, n_blocks, kind, params, planes) : 0;
        for (std::int32_t s = s0; s < s1; ++s)
          if (!((done >> ((s - s0) / lanes)) & 1u)) row(s);
      }
    });
  }
  void series_run(const PanelView& panel, IndicatorKind kind, const IndicatorParams& params,
                  std::span<float> out) const override {
    const std::int64_t plane = static_cast<std::int64_t>(panel.n_symbols) * panel.stride;
    std::vector<float*> planes(static_cast<std::size_t>(kernels::indicator_output_count(kind)));
    for (std::size_t j = 0; j < planes.size(); ++j) planes[j] = out.data() + static_cast<std::int64_t>(j) * plane;
    run_chunks(panel, kind, std::span(&params, 1), planes.data(),
               [&](std::int32_t s) { series_symbol<float, float>(panel, s, kind, params, out.data()); });
  }
  // The batch: the lane blocks transposed once for all the parameter sets; a block with a missing bar, the symbols
  // left over and the families without lanes run row by row per set, into a per-thread row of every output, of which
  // the planes asked for are copied.
  void series_batch_run(const PanelView& panel, IndicatorKind kind, std::span<const IndicatorParams> params,
                        std::uint32_t outputs, std::span<float> out) const override {
    const int n_out = kernels::indicator_output_count(kind);
    const std::int64_t plane = static_cast<std::int64_t>(panel.n_symbols) * panel.stride;
    std::vector<float*> planes(params.size() * static_cast<std::size_t>(n_out), nullptr);
    std::int64_t next = 0;
    for (std::size_t i = 0; i < params.size(); ++i)
      for (int j = 0; j < n_out; ++j)
        if ((outputs >> j) & 1u) planes[i * static_cast<std::size_t>(n_out) + static_cast<std::size_t>(j)] = out.data() + plane * next++;
    run_chunks(panel, kind, params, planes.data(), [&](std::int32_t s) {
      thread_local std::vector<float> row;
      row.resize(static_cast<std::size_t>(n_out) * static_cast<std::size_t>(panel.n_bars));
      std::int32_t* scratch = gap_scratch(panel.n_bars);
      const std::int64_t base = panel.at(s, 0);
      for (std::size_t i = 0; i < params.size(); ++i) {
        kernels::indicator_dispatch<float>(kind, params[i], [&](auto& st) {
          using State = std::remove_reference_t<decltype(st)>;
          kernels::indicator_row_run<float, State, float>(st, panel.high + base, panel.low + base, panel.close + base,
                                                          panel.quote_volume + base, panel.n_bars, row.data(),
                                                          panel.n_bars, params[i].gaps, scratch);
        });
        for (int j = 0; j < n_out; ++j)
          if (float* dst = planes[i * static_cast<std::size_t>(n_out) + static_cast<std::size_t>(j)])
            std::copy_n(row.data() + static_cast<std::ptrdiff_t>(j) * panel.n_bars, panel.n_bars, dst + base);
      }
    });
  }
  void features_run(const PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                    std::int32_t t_end, std::span<kernels::FeatureRow> out) const override {
    qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, panel.n_symbols), [&](const auto& r) {
      for (std::int32_t s = r.begin(); s != r.end(); ++s)
        out[static_cast<std::size_t>(s)] = features_symbol<float>(panel, s, params, t_begin, t_end);
    });
  }
};

}  // namespace

std::unique_ptr<IndicatorBackend> detail::indicator_cpu_backend() { return std::make_unique<IndicatorCpu>(); }

void detail::indicator_series_rows(const PanelView& panel, IndicatorKind kind, const IndicatorParams& params,
                                   std::span<float> out) {
  qtos::parallel_for(tbb::blocked_range<std::int32_t>(0, panel.n_symbols), [&](const auto& r) {
    for (std::int32_t s = r.begin(); s != r.end(); ++s) series_symbol<float, float>(panel, s, kind, params, out.data());
  });
}

void indicator_series_serial(const PanelView& panel, IndicatorKind kind, const IndicatorParams& params,
                             std::span<double> out) {
  panel_check(panel, "indicator series");
  indicator_params_check(kind, params);
  if (out.size() != indicator_out_size(kind, panel))
    throw std::invalid_argument("indicator_series_serial: out has the wrong size");
  for (std::int32_t s = 0; s < panel.n_symbols; ++s) series_symbol<double, double>(panel, s, kind, params, out.data());
}

void features_serial(const PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                     std::int32_t t_end, std::span<kernels::FeatureRow> out) {
  panel_check(panel, "features");
  feature_params_check(params);
  if (out.size() != static_cast<std::size_t>(panel.n_symbols))
    throw std::invalid_argument("features_serial: out has the wrong size");
  for (std::int32_t s = 0; s < panel.n_symbols; ++s)
    out[static_cast<std::size_t>(s)] = features_symbol<double>(panel, s, params, t_begin, t_end);
}

}  // namespace qtos
