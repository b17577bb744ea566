#include "runtime/strategy/deflated_sharpe.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace qtos {

double norm_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double norm_ppf(double p) {
  if (!(p > 0.0 && p < 1.0)) throw std::invalid_argument("norm_ppf: p = " + std::to_string(p) + " must be in (0, 1)");
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
  const double lo = 0.02425;
  double x;
  if (p < lo) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - lo) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  // One Halley step takes the 1e-9 approximation to machine precision.
  const double e = norm_cdf(x) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

double expected_max_sharpe(double trials, double sr_variance) {
  if (!(trials > 1.0) || !(sr_variance > 0.0)) return 0.0;
  const double g = 0.5772156649015329;
  return std::sqrt(sr_variance) * ((1 - g) * norm_ppf(1 - 1 / trials) + g * norm_ppf(1 - 1 / (trials * M_E)));
}

double probabilistic_sharpe(double sr, double n, double skew, double kurtosis, double sr0) {
  if (!(n >= 2)) return 0.5;
  const double denom = 1 - skew * sr + (kurtosis - 1) / 4 * sr * sr;
  // The variance term is positive for any real return distribution; guard against rounding with tiny samples.
  return norm_cdf((sr - sr0) * std::sqrt(n - 1) / std::sqrt(denom > 1e-12 ? denom : 1e-12));
}

double deflated_sharpe(double sr, double n, double skew, double kurtosis, double trials, double sr_variance) {
  return probabilistic_sharpe(sr, n, skew, kurtosis, expected_max_sharpe(trials, sr_variance));
}

}  // namespace qtos
