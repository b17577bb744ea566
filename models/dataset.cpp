// Datasets over a feature table: sample selection, the split in time, the normaliser and window gathering.
#include "models/features.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace qtos::models {

std::vector<SampleRef> samples_select(const FeatureTable& tab, std::int32_t t_begin, std::int32_t t_end, bool need_target,
                                      std::int32_t window) {
  if (window < 0) window = tab.spec.window;
  if (window < 1 || window > tab.spec.window)
    throw std::invalid_argument("samples_select: window " + std::to_string(window) + " (expected 1.." +
                                std::to_string(tab.spec.window) + ")");
  std::vector<SampleRef> out;
  const std::int32_t lo = std::max(t_begin, tab.t_begin + window - 1);
  const std::int32_t hi = std::min(t_end, tab.t_begin + tab.n_bars);
  for (std::int32_t t = lo; t < hi; ++t) {
    for (std::int32_t s = 0; s < tab.n_symbols; ++s) {
      if (need_target && !std::isfinite(tab.forward[static_cast<std::size_t>(tab.at(s, t))])) continue;
      const std::int32_t first = tab.window_begin(s, t, window);
      bool ok = first >= 0;
      for (std::int32_t u = first; ok && u <= t; ++u) {
        if (!tab.present[static_cast<std::size_t>(tab.at(s, u))]) continue;  // a closure: not a bar of the window
        const float* r = tab.row(s, u);
        for (std::int32_t f = 0; f < tab.n_features; ++f)
          if (!std::isfinite(r[f])) {
            ok = false;
            break;
          }
      }
      if (ok) out.push_back({s, t});
    }
  }
  return out;
}

TimeSplit split_by_time(const FeatureTable& tab, double train_fraction, double val_fraction) {
  if (!(train_fraction > 0.0) || !(val_fraction > 0.0) || train_fraction + val_fraction >= 1.0)
    throw std::invalid_argument("split_by_time: fractions train " + std::to_string(train_fraction) + ", validation " +
                                std::to_string(val_fraction) + " must be positive and sum to less than 1");
  const auto all = samples_select(tab, tab.t_begin, tab.t_begin + tab.n_bars, true);
  if (all.empty()) throw std::invalid_argument("no bar has both complete features and a target (the data is shorter than the features' warm-up plus the horizon)");
  const std::int32_t first = all.front().t, last = all.back().t;
  TimeSplit sp;
  sp.purge = tab.spec.horizon;
  const std::int32_t usable = last - first + 1 - 2 * sp.purge;
  const auto n_train = static_cast<std::int32_t>(usable * train_fraction);
  const auto n_val = static_cast<std::int32_t>(usable * val_fraction);
  const std::int32_t n_test = usable - n_train - n_val;
  if (n_train < 1 || n_val < 1 || n_test < 1)
    throw std::invalid_argument(std::to_string(last - first + 1) +
                                " bars with targets are too few for train/validation/test periods with a purge of " +
                                std::to_string(sp.purge) + " bars");
  sp.train_begin = first;
  sp.train_end = first + n_train;
  sp.val_begin = sp.train_end + sp.purge;
  sp.val_end = sp.val_begin + n_val;
  sp.test_begin = sp.val_end + sp.purge;
  sp.test_end = last + 1;
  return sp;
}

Normalizer Normalizer::fit(const FeatureTable& tab, std::span<const SampleRef> samples) {
  const auto nf = static_cast<std::size_t>(tab.n_features);
  std::vector<double> sum(nf, 0.0), sumsq(nf, 0.0);
  for (const auto& sr : samples) {
    const float* r = tab.row(sr.s, sr.t);
    for (std::size_t f = 0; f < nf; ++f) {
      sum[f] += r[f];
      sumsq[f] += static_cast<double>(r[f]) * r[f];
    }
  }
  Normalizer nz;
  nz.mean.resize(nf);
  nz.inv_std.resize(nf);
  const double n = std::max<double>(1.0, static_cast<double>(samples.size()));
  for (std::size_t f = 0; f < nf; ++f) {
    const double m = sum[f] / n;
    const double sd = std::sqrt(std::max(0.0, sumsq[f] / n - m * m));
    nz.mean[f] = static_cast<float>(m);
    nz.inv_std[f] = sd > 1e-12 ? static_cast<float>(1.0 / sd) : 0.0F;
  }
  return nz;
}

void Normalizer::apply(const float* in, float* out) const {
  for (std::size_t f = 0; f < mean.size(); ++f) out[f] = std::clamp((in[f] - mean[f]) * inv_std[f], -clip, clip);
}

void windows_gather(const FeatureTable& tab, const Normalizer& norm, std::span<const SampleRef> samples,
                    std::int32_t window, std::span<float> out) {
  const auto nf = static_cast<std::size_t>(tab.n_features);
  const auto w = static_cast<std::size_t>(window);
  if (out.size() != samples.size() * w * nf || norm.mean.size() != nf || window > tab.spec.window)
    throw std::invalid_argument("windows_gather: output of " + std::to_string(out.size()) + " floats does not fit " +
                                std::to_string(samples.size()) + " samples x " + std::to_string(window) + " bars x " +
                                std::to_string(nf) + " features");
  for (const auto& sr : samples)
    if (sr.s < 0 || sr.s >= tab.n_symbols || sr.t < tab.t_begin || sr.t >= tab.t_begin + tab.n_bars ||
        tab.window_begin(sr.s, sr.t, window) < 0)
      throw std::invalid_argument("windows_gather: sample (symbol " + std::to_string(sr.s) + ", bar " + std::to_string(sr.t) +
                                  ") with a window of " + std::to_string(window) + " present bars is not inside the table's bars [" +
                                  std::to_string(tab.t_begin) + ", " + std::to_string(tab.t_begin + tab.n_bars) + ")");
  for (std::size_t i = 0; i < samples.size(); ++i) {
    // The window's bars, oldest first: the last `window` present bars up to the sample's (closures passed over).
    std::size_t k = w;
    for (std::int32_t u = samples[i].t; k > 0; --u)
      if (tab.present[static_cast<std::size_t>(tab.at(samples[i].s, u))]) norm.apply(tab.row(samples[i].s, u), out.data() + (i * w + --k) * nf);
  }
}

}  // namespace qtos::models
