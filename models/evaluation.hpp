#pragma once
/// @file Out-of-sample evaluation of return predictions: direction, rank IC, calibration and a long/short Sharpe.

#include <cstdint>
#include <span>
#include <string>

#include "models/features.hpp"

namespace boost::json {
class object;
}  // namespace boost::json

namespace qtos::models {

/// Evaluation of one set of predictions against realised forward returns.
struct Metrics {
  std::int64_t samples = 0;           ///< (symbol, bar) pairs evaluated
  double directional_accuracy = 0.0;  ///< fraction where sign(prediction) == sign(realised); a zero counts half
  double rank_ic = 0.0;               ///< Spearman correlation of prediction and realised return, pooled over samples
  double calibration_error = 0.0;     ///< expected calibration error of prob_up over 10 equal-width bins
  double sharpe = 0.0;                ///< annualised Sharpe of the long/short rule (see metrics_evaluate)
  double mse = 0.0;                   ///< mean squared error of the predicted return
  /// Compact JSON text.
  std::string to_json() const;
  /// Parses to_json()'s output; throws std::invalid_argument naming a missing field.
  static Metrics from_json(const std::string& text);
  /// The same from an already parsed JSON object (a field of a larger document).
  static Metrics from_json_object(const boost::json::object& o);
};

/// Evaluates predictions (`pred_return`, `prob_up`) of `samples` against `realised` log returns over `horizon` bars.
/// The long/short rule holds sign(prediction) of every symbol with equal weight for H bars from the bars
/// t_first, t_first + H, ... (non-overlapping periods); `periods_per_year` = bars per year / H annualises it.
/// Throws std::invalid_argument when the spans differ in length.
Metrics metrics_evaluate(std::span<const float> pred_return, std::span<const float> prob_up, std::span<const float> realised,
                         std::span<const SampleRef> samples, std::int32_t horizon, double periods_per_year);

/// Spearman rank correlation (average ranks for ties); 0 when either side is constant or has fewer than 3 values.
double spearman(std::span<const float> a, std::span<const float> b);

}  // namespace qtos::models
