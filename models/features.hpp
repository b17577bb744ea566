#pragma once
/// @file Features and targets over a market panel, the time split with purge gaps, and train-only normalisation.
/// No LibTorch here: features are plain float arrays so tests and the runtime can build them cheaply.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cpu/kernels/gaps.hpp"
#include "cpu/kernels/panel_view.hpp"

namespace boost::json {
class object;
}  // namespace boost::json

namespace qtos::models {

/// What the feature builder computes. Two specs that differ produce incompatible inputs: a model is refused at load
/// when its spec differs from the current one (see FeatureSpec::differences).
struct FeatureSpec {
  std::int32_t version = 2;                             ///< bumped whenever the computation itself changes
  std::vector<std::int32_t> return_lags{1, 2, 4, 8, 16};  ///< bars of each lagged log return (volatility-normalised)
  std::int32_t vol_window = 20;     ///< 1-bar log returns in the realised-volatility estimate (RvolState)
  std::int32_t volume_window = 20;  ///< bars in the volume baseline
  std::int32_t rsi_period = 14;     ///< Wilder period of the RSI (RsiState)
  std::int32_t atr_period = 14;     ///< Wilder period of the ATR (AtrState)
  std::int32_t adx_period = 14;     ///< Wilder period of +DI, -DI and the ADX (DmiState)
  std::int32_t bbands_period = 20;  ///< Bollinger window, k = 2, population std (BbandsState)
  std::int32_t spread_window = 20;  ///< pairs of bars in the Corwin-Schultz spread proxy (SpreadState)
  bool cross_sectional_ranks = true;  ///< add ranks of the shortest and longest lagged return across symbols
  std::int32_t horizon = 4;         ///< H: the target is the log return from bar t to bar t+H
  std::int32_t window = 16;         ///< bars of history per sample for the sequence models
  /// What a missing bar does to the features, as for every other consumer of the panel (cpu/kernels/gaps.hpp): under
  /// skip (the default) the states carry over closures and lags and windows count present bars; under reset-after:N
  /// they restart after a gap longer than N bars. Recorded so that a model is never served features computed under
  /// another policy; a spec written without the field was computed under reset-after:0.
  kernels::GapPolicy gaps = kernels::gap_skip();

  /// Number of features per bar.
  std::int32_t n_features() const;
  /// Feature names in column order.
  std::vector<std::string> names() const;
  /// Bars of history before the first bar whose features are defined (the longest indicator lookback, lag or window):
  /// features of bar t need warmup() present bars before it since the states' last restart (under skip: any
  /// warmup() present bars before it; under reset-after:0: bars t - warmup() .. t all present).
  std::int32_t warmup() const;
  /// Throws std::invalid_argument naming the bad field when the spec cannot be built.
  void validate() const;
  /// Empty when equal; otherwise a description of every field that differs ("horizon 4 vs 8; ...").
  std::string differences(const FeatureSpec& other) const;
  /// A compact JSON text of the spec.
  std::string to_json() const;
  /// Parses to_json()'s output; throws std::invalid_argument naming the missing or bad field.
  static FeatureSpec from_json(const std::string& text);
  /// The same from an already parsed JSON object (a field of a larger document).
  static FeatureSpec from_json_object(const boost::json::object& o);
  friend bool operator==(const FeatureSpec&, const FeatureSpec&) = default;
};

/// Features of bars [t_begin, t_end) of every symbol. Element (s, t, f) is x[((s * n_bars) + (t - t_begin)) * n_features + f].
/// NaN marks a feature that is not defined (missing bars, not enough history).
struct FeatureTable {
  FeatureSpec spec;          ///< what was built
  std::int32_t n_symbols = 0;  ///< symbols, in panel order
  std::int32_t t_begin = 0;  ///< first panel bar covered
  std::int32_t n_bars = 0;   ///< bars covered
  std::int32_t n_features = 0;  ///< spec.n_features()
  std::vector<float> x;        ///< features, [symbol][bar][feature]
  std::vector<float> forward;  ///< target: log(close[t+H] / close[t]), t+H counted as features_build says; NaN when
                               ///< that bar is beyond the panel or missing
  std::vector<float> scale;    ///< realised volatility at t times sqrt(H): the unit the networks predict in
  std::vector<std::uint8_t> present;  ///< 1 where bar (s, t) exists: a sample's window counts these bars only

  /// First bar of the window of `window` present bars of symbol s ending at bar t (a closure inside it is passed
  /// over), or -1 when the table holds fewer. Under reset-after:N a window across a restart holds the restart's
  /// warm-up rows (NaN), so such a window is never complete; under reset-after:0 it is bars t - window + 1 .. t.
  std::int32_t window_begin(std::int32_t s, std::int32_t t, std::int32_t window) const;

  /// Index of (s, t) in forward/scale (t is a panel bar).
  std::int64_t at(std::int32_t s, std::int32_t t) const { return static_cast<std::int64_t>(s) * n_bars + (t - t_begin); }
  /// Features of (s, t).
  const float* row(std::int32_t s, std::int32_t t) const { return x.data() + at(s, t) * n_features; }
  float* row(std::int32_t s, std::int32_t t) { return x.data() + at(s, t) * n_features; }
};

namespace detail {
/// Indicator columns of every row: rsi, log_atr, adx, di_diff, bb_pctb, log_bb_width, log_spread.
inline constexpr std::int32_t kIndicatorFeatures = 7;
struct CarryImpl;
}  // namespace detail
class FeatureCarry;

/// Builds features for panel bars [t_begin, t_end) (t_end = -1: to the last bar). Features at bar t read only bars
/// <= t of every symbol; `forward` alone reads ahead, to the bar H steps on (under skip the H-th present bar; under
/// reset-after:N a gap longer than N passes at its calendar length, so reset-after:0 reads bar t+H). The indicator
/// states of a symbol always run from panel bar 0 (over missing bars as spec.gaps says), whatever t_begin is, so the
/// features of a bar are bit-identical whatever range they are built in. With `carry`, the states saved by the previous call (at its t_begin and after its last bar)
/// are reused when the panel's columns and the spec are the same, the saved bar is not after t_begin, and each
/// symbol's last consumed bar is unchanged; the carry then holds this call's. Throws std::invalid_argument on a bad
/// spec or range.
FeatureTable features_build(const kernels::PanelView& panel, const FeatureSpec& spec, std::int32_t t_begin = 0,
                            std::int32_t t_end = -1, FeatureCarry* carry = nullptr);

/// The first bar that the windows of `window` present bars ending at bars [t_begin, t_end) reach, over every symbol
/// (t_begin when none reaches further): the range features_build must cover for the samples of those bars.
std::int32_t features_window_first_bar(const kernels::PanelView& panel, std::int32_t t_begin, std::int32_t t_end,
                                       std::int32_t window);

/// The indicator states of every symbol as of a bar, kept between features_build calls so that inference on the
/// next bar advances them by one bar instead of replaying the symbol's history. An optimisation only: a build with a
/// carry gives bit-identical features to one without. Not thread-safe (one builder at a time).
class FeatureCarry {
 public:
  FeatureCarry();
  ~FeatureCarry();
  FeatureCarry(FeatureCarry&&) noexcept;
  FeatureCarry& operator=(FeatureCarry&&) noexcept;
  FeatureCarry(const FeatureCarry&) = delete;
  FeatureCarry& operator=(const FeatureCarry&) = delete;
  /// Forgets the states (the next build starts from bar 0).
  void clear();
  /// Bars replayed by the last build that used this carry, summed over symbols (tests and benchmarks).
  std::int64_t bars_replayed() const;

 private:
  friend struct detail::CarryImpl;
  friend FeatureTable features_build(const kernels::PanelView&, const FeatureSpec&, std::int32_t, std::int32_t,
                                     FeatureCarry*);
  std::unique_ptr<detail::CarryImpl> impl_;
};

/// One training or evaluation sample: a symbol at a bar.
struct SampleRef {
  std::int32_t s = 0;  ///< symbol index
  std::int32_t t = 0;  ///< panel bar
};

/// Samples at bars [t_begin, t_end) whose whole window of `window` present bars (-1: `spec.window`; see
/// FeatureTable::window_begin) has finite features (and, when `need_target`, a finite target). Ordered by bar, then
/// symbol.
std::vector<SampleRef> samples_select(const FeatureTable& table, std::int32_t t_begin, std::int32_t t_end,
                                      bool need_target, std::int32_t window = -1);

/// Bars of the three periods, half-open, in time order with `purge` bars left out between them.
struct TimeSplit {
  std::int32_t train_begin = 0, train_end = 0;  ///< training bars
  std::int32_t val_begin = 0, val_end = 0;      ///< validation bars
  std::int32_t test_begin = 0, test_end = 0;    ///< test bars
  std::int32_t purge = 0;  ///< bars dropped between periods (= horizon: no target overlaps the next period)
};

/// Splits the bars that have samples with targets into train/validation/test by time, leaving H bars out between
/// them so that no training target's window reaches into validation and none of validation's into test.
/// Throws std::invalid_argument when there are too few bars for three non-empty periods.
TimeSplit split_by_time(const FeatureTable& table, double train_fraction = 0.6, double val_fraction = 0.2);

/// Per-feature affine normalisation fitted on training samples only, then clipped to [-clip, clip].
struct Normalizer {
  std::vector<float> mean;     ///< per feature, over the training samples
  std::vector<float> inv_std;  ///< per feature: 1 / standard deviation (0 for a constant feature)
  float clip = 5.0F;           ///< normalised values are clipped to [-clip, clip]
  /// Fits on the last-bar features of `samples` (the training set).
  static Normalizer fit(const FeatureTable& table, std::span<const SampleRef> samples);
  /// Normalises one row of `mean.size()` features from `in` into `out` (NaN stays NaN).
  void apply(const float* in, float* out) const;
};

/// Copies the normalised window of `window` present bars ending at each sample into `out` ([n][window][n_features]).
void windows_gather(const FeatureTable& table, const Normalizer& norm, std::span<const SampleRef> samples,
                    std::int32_t window, std::span<float> out);

}  // namespace qtos::models
