// TBB backend of the indicators and ranking features (parallel over symbols), the argument checks shared by every
// backend, and the serial double-precision reference of the consistency suite.
#include <stdexcept>
#include <string>
#include <type_traits>

#include <tbb/parallel_for.h>

#include "cpu/backend/indicator_backend.hpp"

namespace qtos {

using kernels::IndicatorKind;
using kernels::IndicatorParams;
using kernels::PanelView;

std::string_view indicator_name(IndicatorKind kind) {
  switch (kind) {
    case IndicatorKind::sma: return "sma";
    case IndicatorKind::ema: return "ema";
    case IndicatorKind::rsi: return "rsi";
    case IndicatorKind::atr: return "atr";
    case IndicatorKind::dmi: return "dmi";
    case IndicatorKind::bbands: return "bbands";
    case IndicatorKind::macd: return "macd";
    case IndicatorKind::roc: return "roc";
    case IndicatorKind::rvol: return "rvol";
    case IndicatorKind::dollar_volume: return "dollar_volume";
    case IndicatorKind::spread: return "spread";
    case IndicatorKind::max_drawdown: return "max_drawdown";
  }
  return "?";
}

std::vector<std::string> indicator_output_names(IndicatorKind kind) {
  switch (kind) {
    case IndicatorKind::dmi: return {"plus_di", "minus_di", "adx"};
    case IndicatorKind::bbands: return {"middle", "upper", "lower", "width", "percent_b"};
    case IndicatorKind::macd: return {"macd", "signal", "histogram"};
    case IndicatorKind::roc: return {"roc", "momentum"};
    case IndicatorKind::dollar_volume: return {"dollar_volume", "dollar_volume_z"};
    default: return {std::string(indicator_name(kind))};
  }
}

std::int32_t indicator_lookback(IndicatorKind kind, const IndicatorParams& p, int output) {
  const std::int32_t n = p.period;
  switch (kind) {
    case IndicatorKind::sma:
    case IndicatorKind::ema:
    case IndicatorKind::bbands:
    case IndicatorKind::dollar_volume:
    case IndicatorKind::max_drawdown: return n - 1;
    case IndicatorKind::rsi:
    case IndicatorKind::atr:
    case IndicatorKind::roc:
    case IndicatorKind::rvol:
    case IndicatorKind::spread: return n;
    case IndicatorKind::dmi: return output == 2 ? 2 * n - 1 : n;
    case IndicatorKind::macd: return output == 0 ? p.period2 - 1 : p.period2 + p.period3 - 2;
  }
  return 0;
}

namespace {

void require(bool ok, const std::string& what, std::int32_t value, const std::string& expected) {
  if (!ok) throw std::invalid_argument(what + " = " + std::to_string(value) + ": expected " + expected);
}

}  // namespace

void indicator_params_check(IndicatorKind kind, const IndicatorParams& p) {
  const std::string name(indicator_name(kind));
  switch (kind) {
    case IndicatorKind::macd:
      require(p.period >= 2, name + " fast period", p.period, "an integer >= 2");
      require(p.period2 > p.period && p.period2 <= 100000, name + " slow period", p.period2,
              "an integer above the fast period (" + std::to_string(p.period) + ") and <= 100000");
      require(p.period3 >= 1 && p.period3 <= 100000, name + " signal period", p.period3, "an integer in [1, 100000]");
      return;
    case IndicatorKind::rvol:
    case IndicatorKind::bbands:
      require(p.period >= 2 && p.period <= 100000, name + " period", p.period, "an integer in [2, 100000]");
      if (kind == IndicatorKind::bbands && !(p.k > 0.0 && p.k < 100.0))
        throw std::invalid_argument("bbands k = " + std::to_string(p.k) + ": expected a number in (0, 100)");
      return;
    case IndicatorKind::max_drawdown:
      require(p.period >= 1 && p.period <= kernels::kMaxDrawdownWindowMax, name + " period", p.period,
              "an integer in [1, " + std::to_string(kernels::kMaxDrawdownWindowMax) + "]");
      return;
    default:
      require(p.period >= 1 && p.period <= 100000, name + " period", p.period, "an integer in [1, 100000]");
  }
}

void feature_params_check(const kernels::FeatureParams& p) {
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

template <class T, class Out>
void series_symbol(const PanelView& p, std::int32_t s, IndicatorKind kind, const IndicatorParams& params, Out* out) {
  const std::int64_t base = p.at(s, 0);
  const std::int64_t plane = static_cast<std::int64_t>(p.n_symbols) * p.stride;
  kernels::indicator_dispatch<T>(kind, params, [&](auto& st) {
    using State = std::remove_reference_t<decltype(st)>;
    kernels::indicator_row_run<T, State, Out>(st, p.high + base, p.low + base, p.close + base, p.quote_volume + base,
                                              p.n_bars, out + base, plane);
  });
}

template <class T>
kernels::FeatureRow features_symbol(const PanelView& p, std::int32_t s, const kernels::FeatureParams& params,
                                    std::int32_t t_begin, std::int32_t t_end) {
  kernels::FeatureState<T> st;
  st.init(params);
  const std::int64_t base = p.at(s, t_begin);
  const std::int32_t len = t_end - t_begin;
  kernels::features_row_run(st, p.high + base, p.low + base, p.close + base, p.quote_volume + base, len, t_begin);
  return st.row;
}

class IndicatorCpu final : public IndicatorBackend {
 public:
  std::string_view name() const override { return "cpu"; }

 protected:
  void series_run(const PanelView& panel, IndicatorKind kind, const IndicatorParams& params,
                  std::span<float> out) const override {
    tbb::parallel_for(tbb::blocked_range<std::int32_t>(0, panel.n_symbols), [&](const auto& r) {
      for (std::int32_t s = r.begin(); s != r.end(); ++s) series_symbol<float, float>(panel, s, kind, params, out.data());
    });
  }
  void features_run(const PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                    std::int32_t t_end, std::span<kernels::FeatureRow> out) const override {
    tbb::parallel_for(tbb::blocked_range<std::int32_t>(0, panel.n_symbols), [&](const auto& r) {
      for (std::int32_t s = r.begin(); s != r.end(); ++s)
        out[static_cast<std::size_t>(s)] = features_symbol<float>(panel, s, params, t_begin, t_end);
    });
  }
};

}  // namespace

std::unique_ptr<IndicatorBackend> detail::indicator_cpu_backend() { return std::make_unique<IndicatorCpu>(); }

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
