#include "models/evaluation.hpp"

#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

namespace qtos::models {
namespace evaluation_test {

TEST(Evaluation, SpearmanOfMonotoneAndReversedAndTies) {
  const std::vector<float> a{1, 2, 3, 4, 5}, b{10, 20, 30, 40, 500}, c{5, 4, 3, 2, 1}, k{1, 1, 1, 1, 1};
  EXPECT_DOUBLE_EQ(spearman(a, b), 1.0);
  EXPECT_DOUBLE_EQ(spearman(a, c), -1.0);
  EXPECT_DOUBLE_EQ(spearman(a, k), 0.0);
  const std::vector<float> x{1, 2, 2, 3}, y{1, 3, 2, 4};
  EXPECT_NEAR(spearman(x, y), 0.9486832980505138, 1e-12);  // scipy.stats.spearmanr
}

TEST(Evaluation, PerfectAndInvertedPredictions) {
  std::vector<SampleRef> s;
  std::vector<float> y, p, up;
  for (int t = 0; t < 40; ++t)
    for (int k = 0; k < 3; ++k) {
      s.push_back({k, t});
      const float v = ((t * 7 + k * 3) % 11 - 5) * 0.001F + 0.0001F;
      y.push_back(v);
      p.push_back(v);
      up.push_back(v > 0 ? 1.0F : 0.0F);
    }
  const auto m = metrics_evaluate(p, up, y, s, 2, 100.0);
  EXPECT_EQ(m.samples, 120);
  EXPECT_DOUBLE_EQ(m.directional_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(m.rank_ic, 1.0);
  EXPECT_DOUBLE_EQ(m.calibration_error, 0.0);
  EXPECT_DOUBLE_EQ(m.mse, 0.0);
  EXPECT_GT(m.sharpe, 0.0);
  std::vector<float> neg(p.size()), half(p.size(), 0.5F);
  for (std::size_t i = 0; i < p.size(); ++i) neg[i] = -p[i];
  const auto w = metrics_evaluate(neg, half, y, s, 2, 100.0);
  EXPECT_DOUBLE_EQ(w.directional_accuracy, 0.0);
  EXPECT_DOUBLE_EQ(w.rank_ic, -1.0);
  EXPECT_LT(w.sharpe, 0.0);
  EXPECT_NEAR(w.sharpe, -m.sharpe, 1e-9);
  // prob 0.5 everywhere: calibration error = |0.5 - fraction up|.
  double ups = 0;
  for (float v : y) ups += v > 0 ? 1 : 0;
  EXPECT_NEAR(w.calibration_error, std::abs(0.5 - ups / 120.0), 1e-12);
}

TEST(Evaluation, JsonRoundTripAndBadInput) {
  Metrics m;
  m.samples = 7;
  m.directional_accuracy = 0.625;
  m.rank_ic = -0.125;
  m.sharpe = 1.5;
  const auto back = Metrics::from_json(m.to_json());
  EXPECT_EQ(back.samples, 7);
  EXPECT_DOUBLE_EQ(back.directional_accuracy, 0.625);
  EXPECT_DOUBLE_EQ(back.rank_ic, -0.125);
  EXPECT_DOUBLE_EQ(back.sharpe, 1.5);
  EXPECT_THROW(Metrics::from_json("{}"), std::invalid_argument);
  const std::vector<float> one{1.0F};
  const std::vector<SampleRef> none;
  EXPECT_THROW(metrics_evaluate(one, one, one, none, 1, 1.0), std::invalid_argument);
}

}  // namespace evaluation_test
}  // namespace qtos::models
