#pragma once
/// @file The interface through which runtime/ asks a model for predictions; models/ implements it (LibTorch stays there).

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/kernels/panel_view.hpp"
#include "runtime/util/result.hpp"

namespace qtos {

/// Predictions for every symbol of a panel at one bar, in the panel's symbol order.
struct Predictions {
  std::int32_t bar = -1;                ///< the bar the predictions were made at (only bars <= bar were read)
  std::int32_t horizon = 0;             ///< bars ahead the prediction is about
  std::vector<float> expected_return;   ///< predicted log return over `horizon` bars; NaN where no prediction
  std::vector<float> prob_up;           ///< predicted probability that that return is positive; NaN where none
  /// Number of symbols with a prediction.
  std::int32_t count_valid() const;
};

/// A source of batched predictions (one model, or an ensemble of models). Implementations are thread-safe:
/// predict() may be called from several threads at once.
class Predictor {
 public:
  virtual ~Predictor() = default;
  /// A short name for logs and the API.
  virtual std::string name() const = 0;
  /// Bars ahead the predictions are about.
  virtual std::int32_t horizon() const = 0;
  /// Predictions for all symbols at bar `t`, reading only bars <= t. An error (not an exception) when no model is
  /// loaded or the panel does not have enough history at `t`; symbols lacking history get NaN.
  virtual Result<Predictions> predict(const kernels::PanelView& panel, std::int32_t t) const = 0;
};

inline std::int32_t Predictions::count_valid() const {
  std::int32_t n = 0;
  for (float v : expected_return) n += (v == v) ? 1 : 0;  // NaN != NaN
  return n;
}

}  // namespace qtos
