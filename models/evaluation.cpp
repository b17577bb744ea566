#include "models/evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>
#include <vector>

#include <boost/json.hpp>

#include "models/json_fields.hpp"

namespace qtos::models {

template <>
struct json::JsonFields<Metrics> {
  static constexpr auto fields = std::make_tuple(
      json::member("samples", &Metrics::samples), json::member("directional_accuracy", &Metrics::directional_accuracy),
      json::member("rank_ic", &Metrics::rank_ic), json::member("calibration_error", &Metrics::calibration_error),
      json::member("sharpe", &Metrics::sharpe), json::member("mse", &Metrics::mse));
};

namespace {

std::vector<double> ranks_average(std::span<const float> v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::sort(idx.begin(), idx.end(), [&](std::size_t i, std::size_t j) { return v[i] < v[j]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double avg = 0.5 * static_cast<double>(i + j);
    for (std::size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}


}  // namespace

double spearman(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size() || a.size() < 3) return 0.0;
  const auto ra = ranks_average(a), rb = ranks_average(b);
  const double n = static_cast<double>(a.size());
  const double mean = (n - 1.0) / 2.0;
  double sab = 0.0, saa = 0.0, sbb = 0.0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return saa > 0.0 && sbb > 0.0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

Metrics metrics_evaluate(std::span<const float> pred, std::span<const float> prob_up, std::span<const float> realised,
                         std::span<const SampleRef> samples, std::int32_t horizon, double periods_per_year) {
  if (pred.size() != samples.size() || prob_up.size() != samples.size() || realised.size() != samples.size())
    throw std::invalid_argument("metrics_evaluate: " + std::to_string(pred.size()) + " predictions, " +
                                std::to_string(prob_up.size()) + " probabilities, " + std::to_string(realised.size()) +
                                " outcomes and " + std::to_string(samples.size()) + " samples must agree");
  if (horizon < 1) throw std::invalid_argument("metrics_evaluate: horizon " + std::to_string(horizon) + " (expected >= 1)");
  Metrics m;
  m.samples = static_cast<std::int64_t>(samples.size());
  if (samples.empty()) return m;
  double hits = 0.0, se = 0.0;
  constexpr int kBins = 10;
  double bin_p[kBins] = {}, bin_y[kBins] = {}, bin_n[kBins] = {};
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const double p = pred[i], y = realised[i];
    hits += (p == 0.0 || y == 0.0) ? 0.5 : ((p > 0.0) == (y > 0.0) ? 1.0 : 0.0);
    se += (p - y) * (p - y);
    const int b = std::clamp(static_cast<int>(prob_up[i] * kBins), 0, kBins - 1);
    bin_p[b] += prob_up[i];
    bin_y[b] += y > 0.0 ? 1.0 : 0.0;
    bin_n[b] += 1.0;
  }
  const double n = static_cast<double>(samples.size());
  m.directional_accuracy = hits / n;
  m.mse = se / n;
  for (int b = 0; b < kBins; ++b)
    if (bin_n[b] > 0.0) m.calibration_error += std::abs(bin_p[b] - bin_y[b]) / n;
  m.rank_ic = spearman(pred, realised);

  // Long/short rule on non-overlapping H-bar periods: equal weight, position sign(prediction).
  std::map<std::int32_t, std::pair<double, int>> by_bar;
  const std::int32_t t_first = std::min_element(samples.begin(), samples.end(), [](auto x, auto y) { return x.t < y.t; })->t;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if ((samples[i].t - t_first) % horizon != 0) continue;
    const double pos = pred[i] > 0.0F ? 1.0 : (pred[i] < 0.0F ? -1.0 : 0.0);
    auto& [sum, cnt] = by_bar[samples[i].t];
    sum += pos * realised[i];
    cnt += 1;
  }
  std::vector<double> rets;
  for (const auto& [t, sc] : by_bar) rets.push_back(sc.first / sc.second);
  if (rets.size() >= 2) {
    const double mean = std::accumulate(rets.begin(), rets.end(), 0.0) / static_cast<double>(rets.size());
    double var = 0.0;
    for (double r : rets) var += (r - mean) * (r - mean);
    const double sd = std::sqrt(var / static_cast<double>(rets.size() - 1));
    m.sharpe = sd > 0.0 ? mean / sd * std::sqrt(periods_per_year) : 0.0;
  }
  return m;
}

std::string Metrics::to_json() const { return boost::json::serialize(json::to_object(*this)); }

Metrics Metrics::from_json(const std::string& text) { return from_json_object(json::parse_object(text, "metrics JSON")); }

Metrics Metrics::from_json_object(const boost::json::object& o) {
  Metrics m;
  json::from_object(o, m, "metrics JSON");
  return m;
}

}  // namespace qtos::models
