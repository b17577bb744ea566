#pragma once
/// @file Indicators and ranking features behind the backend interface (TBB on CPU, CUDA on the GPU).
/// Both backends run the QTOS_HD states of cpu/kernels/indicators.hpp and cpu/kernels/features.hpp.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/backend/device.hpp"
#include "cpu/kernels/features.hpp"
#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/panel_view.hpp"

namespace qtos {

/// Lower-case name of an indicator family ("sma", "dmi", ...).
std::string_view indicator_name(kernels::IndicatorKind kind);
/// Names of the outputs of a family, in output order ("middle", "upper", ... for bbands).
std::vector<std::string> indicator_output_names(kernels::IndicatorKind kind);
/// Leading bars without a value of output `output` of a family with these parameters.
std::int32_t indicator_lookback(kernels::IndicatorKind kind, const kernels::IndicatorParams& params, int output = 0);
/// The panel columns a family reads (its state's `kInputs`).
kernels::IndicatorInputs indicator_inputs(kernels::IndicatorKind kind);
/// The parameters a family reads and their ranges, in order (empty for one without parameters).
std::span<const kernels::IndicatorParamSpec> indicator_param_specs(kernels::IndicatorKind kind);
/// A family's default parameters (the CLI's defaults).
kernels::IndicatorParams indicator_defaults(kernels::IndicatorKind kind);
/// Throws std::invalid_argument naming the parameter and the allowed range when `params` do not suit `kind`.
void indicator_params_check(kernels::IndicatorKind kind, const kernels::IndicatorParams& params);
/// Throws std::invalid_argument naming the window when a feature window is out of range.
void feature_params_check(const kernels::FeatureParams& params);

/// Parses a gap policy: "skip" or "reset-after:N" (N an integer in [0, 1000000]); throws std::invalid_argument naming
/// `what` (the option or variable it came from) and the accepted forms.
kernels::GapPolicy gap_policy_parse(std::string_view text, std::string_view what = "gap policy");
/// The text form of a gap policy ("skip", "reset-after:3"), as gap_policy_parse reads it.
std::string gap_policy_text(kernels::GapPolicy gaps);
/// Throws std::invalid_argument when a gap policy is malformed (reset_after below -1).
void gap_policy_check(kernels::GapPolicy gaps);

/// The decimals the quotes of these price columns were written with: the smallest k in [0, 9] such that every finite
/// value is the float nearest a multiple of 10^-k (and 10^-k is at least 8 float steps of the largest price, so that
/// the multiple is unambiguous); -1 when there is none (prices that are not decimal quotes). The value of
/// IndicatorParams::price_decimals that makes RSI and DMI exact on decimal data.
std::int32_t price_decimals_infer(std::span<const float> high, std::span<const float> low, std::span<const float> close);
/// price_decimals_infer of each symbol of a panel (its bars [0, n_bars)), in panel order.
std::vector<std::int32_t> panel_price_decimals(const kernels::PanelView& panel);
/// One decimals value for every symbol of a panel: the finest of them when every symbol is decimal-quoted and the grid
/// is unambiguous at every price (price_decimals_infer over all symbols' prices together), else -1.
std::int32_t panel_price_decimals_common(const kernels::PanelView& panel);

/// Floats one indicator run writes: outputs * n_symbols * stride (output j of (s, t) at j*plane + s*stride + t).
std::size_t indicator_out_size(kernels::IndicatorKind kind, const kernels::PanelView& panel);

/// Every output of a family as a series_batch mask (bit j asks for output j).
std::uint32_t indicator_all_outputs(kernels::IndicatorKind kind);
/// Floats one series_batch run writes: n_params * (outputs asked for) * n_symbols * stride.
std::size_t indicator_batch_out_size(kernels::IndicatorKind kind, const kernels::PanelView& panel, std::size_t n_params,
                                     std::uint32_t outputs);

/// What an indicator backend is asked to run, as far as choosing a backend needs to know.
struct IndicatorRequest {
  kernels::PanelView panel;                    ///< the market
  std::optional<kernels::IndicatorKind> kind;  ///< the family of a series() call; empty for features()
};

/// Runs indicators and ranking features over a whole panel on one backend.
class IndicatorBackend : public BackendBase {
 public:
  /// Whether this backend takes `request`; the registry runs a declined one on the TBB backend. TBB takes all.
  virtual bool supports(const IndicatorRequest& request) const {
    (void)request;
    return true;
  }
  /// Every output of `kind` for every symbol and bar into `out` (indicator_out_size floats, same layout as the
  /// panel, one plane per output). Checks the arguments, then forwards to the backend.
  void series(const kernels::PanelView& panel, kernels::IndicatorKind kind, const kernels::IndicatorParams& params,
              std::span<float> out) const;
  /// Several parameter sets of one family in one call (e.g. the periods of a feature grid), only the outputs in
  /// `outputs` (bit j asks for output j; indicator_all_outputs for all): the r-th output asked for of parameter set i
  /// is plane i * popcount(outputs) + r of `out` (indicator_batch_out_size floats), each plane laid out as series()
  /// lays out an output, with the same values. The CPU backend transposes each block of symbols once for all the sets
  /// and writes only the planes asked for. Checks the arguments, then forwards to the backend.
  void series_batch(const kernels::PanelView& panel, kernels::IndicatorKind kind,
                    std::span<const kernels::IndicatorParams> params, std::uint32_t outputs, std::span<float> out) const;
  /// Features of every symbol as of bar `t_end`, running the states over bars [t_begin, t_end].
  void features(const kernels::PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                std::int32_t t_end, std::span<kernels::FeatureRow> out) const;

 protected:
  /// Backend part of series(); arguments already checked and the panel non-empty.
  virtual void series_run(const kernels::PanelView& panel, kernels::IndicatorKind kind,
                          const kernels::IndicatorParams& params, std::span<float> out) const = 0;
  /// Backend part of series_batch(); arguments already checked and the panel non-empty. This default runs series_run
  /// per parameter set into a scratch of every output and copies the planes asked for.
  virtual void series_batch_run(const kernels::PanelView& panel, kernels::IndicatorKind kind,
                                std::span<const kernels::IndicatorParams> params, std::uint32_t outputs,
                                std::span<float> out) const;
  /// Backend part of features(); arguments already checked and the panel non-empty.
  virtual void features_run(const kernels::PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                            std::int32_t t_end, std::span<kernels::FeatureRow> out) const = 0;
};

namespace detail {
/// The TBB backend (the registry, cpu/registry/backends.hpp, lists it after CUDA; tests and benchmarks use it alone).
std::unique_ptr<IndicatorBackend> indicator_cpu_backend();
}  // namespace detail

/// Plain serial double-precision run of the same states: what the consistency suite compares backends with.
/// `out` has indicator_out_size doubles.
void indicator_series_serial(const kernels::PanelView& panel, kernels::IndicatorKind kind,
                             const kernels::IndicatorParams& params, std::span<double> out);

/// Serial double-precision features (same layout as IndicatorBackend::features).
void features_serial(const kernels::PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                     std::int32_t t_end, std::span<kernels::FeatureRow> out);

}  // namespace qtos
