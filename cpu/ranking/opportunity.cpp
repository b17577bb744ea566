// Opportunity scoring: filters, robust cross-sectional z-scores, weighted criteria, ranking and explanations.
#include "cpu/ranking/opportunity.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include <tbb/parallel_for.h>

#include "cpu/util/parallel.hpp"

namespace qtos {

using kernels::Feature;

std::string_view criterion_name(Criterion c) { return enum_name(c); }

std::string_view filter_reason_name(FilterReason r) { return enum_name(r); }

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void weights_check(const RankWeights& w) {
  for (int c = 0; c < kCriterionCount; ++c) {
    const double v = w.weight[static_cast<std::size_t>(c)];
    if (!(v >= 0.0) || !std::isfinite(v))
      throw std::invalid_argument("weight." + std::string(criterion_name(static_cast<Criterion>(c))) + " = " +
                                  fmt("%g", v) + ": expected a finite number >= 0");
  }
  if (!(w.volatility_band >= 0.0) || !std::isfinite(w.volatility_band))
    throw std::invalid_argument("volatility_band = " + fmt("%g", w.volatility_band) + ": expected a finite number >= 0");
}

double safe_log(double x) { return std::log(std::max(x, 1e-12)); }

double mean2(double a, double b) { return 0.5 * (a + b); }

/// Volatility preference: no penalty within +-band robust-z of the median, linear penalty outside.
double band_score(double z, double band) {
  const double outside = std::fabs(z) - band;
  return outside > 0.0 ? -outside : 0.0;  // +0.0 inside the band, not -0.0
}

}  // namespace

RankWeights rank_weights_from_policy(const std::map<std::string, double>& values) {
  RankWeights w;
  for (const auto& [key, value] : values) {
    bool known = false;
    for (int c = 0; c < kCriterionCount; ++c) {
      if (key == "weight." + std::string(criterion_name(static_cast<Criterion>(c)))) {
        w.weight[static_cast<std::size_t>(c)] = value;
        known = true;
      }
    }
    if (key == "volatility_band") {
      w.volatility_band = value;
      known = true;
    }
    if (!known)
      throw std::invalid_argument("ranking policy key '" + key +
                                  "' is unknown; expected weight.trend, weight.volatility, weight.liquidity, "
                                  "weight.performance, weight.model or volatility_band");
  }
  weights_check(w);
  return w;
}

std::span<const SymbolScore> Ranking::top(std::size_t n) const {
  return std::span<const SymbolScore>(rows.data(), std::min(n, static_cast<std::size_t>(eligible)));
}

const SymbolScore* Ranking::find(std::string_view symbol) const {
  for (const auto& r : rows)
    if (r.symbol == symbol) return &r;
  return nullptr;
}

std::vector<double> robust_z(std::span<const double> values) {
  std::vector<double> finite;
  finite.reserve(values.size());
  for (double v : values)
    if (std::isfinite(v)) finite.push_back(v);
  std::vector<double> z(values.size(), kNan);
  if (finite.empty()) return z;
  auto median_of = [](std::vector<double>& v) {
    const std::size_t m = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m), v.end());
    double med = v[m];
    if (v.size() % 2 == 0) med = 0.5 * (med + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m)));
    return med;
  };
  const double med = median_of(finite);
  double mean_abs = 0.0;
  for (double& v : finite) {
    v = std::fabs(v - med);
    mean_abs += v;
  }
  mean_abs /= static_cast<double>(finite.size());
  const double mad = median_of(finite);
  const double scale = mad > 0.0 ? 1.4826 * mad : 1.2533 * mean_abs;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    z[i] = scale > 0.0 ? std::clamp((values[i] - med) / scale, -3.0, 3.0) : 0.0;
  }
  return z;
}

Ranking opportunity_rank(std::span<const kernels::FeatureRow> features, std::span<const std::string> symbols,
                         std::int32_t bar, const RankWeights& weights, const RankFilters& filters,
                         std::span<const double> predictions) {
  if (features.size() != symbols.size())
    throw std::invalid_argument("opportunity_rank: " + std::to_string(features.size()) + " feature rows for " +
                                std::to_string(symbols.size()) + " symbols");
  if (!predictions.empty() && predictions.size() != symbols.size())
    throw std::invalid_argument("opportunity_rank: " + std::to_string(predictions.size()) + " predictions for " +
                                std::to_string(symbols.size()) + " symbols");
  if (filters.min_bars < 1)
    throw std::invalid_argument("min_bars = " + std::to_string(filters.min_bars) + ": expected >= 1");
  if (filters.stale_bars < 0)
    throw std::invalid_argument("stale_bars = " + std::to_string(filters.stale_bars) + ": expected >= 0");
  weights_check(weights);

  Ranking out;
  out.bar = bar;
  const std::size_t n = symbols.size();
  std::vector<SymbolScore> all(n);
  std::vector<std::size_t> eligible;
  for (std::size_t i = 0; i < n; ++i) {
    SymbolScore& r = all[i];
    r.symbol = symbols[i];
    r.index = static_cast<std::int32_t>(i);
    r.features = features[i];
    r.prediction = predictions.empty() ? kNan : predictions[i];
    r.sub.fill(kNan);
    const auto& f = features[i];
    bool complete = true;
    for (float v : f.value) complete = complete && std::isfinite(v);
    if (filters.blacklist.count(r.symbol)) {
      r.reason = FilterReason::blacklisted;
      r.reason_text = "on the blacklist";
    } else if (!filters.whitelist.empty() && !filters.whitelist.count(r.symbol)) {
      r.reason = FilterReason::not_whitelisted;
      r.reason_text = "not on the whitelist";
    } else if (f.last_bar < 0) {
      r.reason = FilterReason::no_data;
      r.reason_text = "no bar at or before the evaluation bar";
    } else if (bar - f.last_bar > filters.stale_bars) {
      r.reason = FilterReason::stale;
      r.reason_text = "last bar is " + std::to_string(bar - f.last_bar) + " bars old (max " +
                      std::to_string(filters.stale_bars) + ")";
    } else if (f.history < filters.min_bars || !complete) {
      r.reason = FilterReason::insufficient_history;
      r.reason_text = f.history < filters.min_bars
                          ? std::to_string(f.history) + " consecutive bars of history (need " +
                                std::to_string(filters.min_bars) + ")"
                          : "some features are still inside their lookback after " + std::to_string(f.history) +
                                " bars (raise min_bars to the feature warmup)";
    } else if (f.get(Feature::dollar_volume) < filters.min_dollar_volume) {
      r.reason = FilterReason::low_dollar_volume;
      r.reason_text = "dollar volume " + fmt("%.6g", f.get(Feature::dollar_volume)) + " per bar < min " +
                      fmt("%.6g", filters.min_dollar_volume);
    } else if (f.get(Feature::spread) > filters.max_spread) {
      r.reason = FilterReason::wide_spread;
      r.reason_text = "spread proxy " + fmt("%.4g", f.get(Feature::spread)) + " > max " + fmt("%.4g", filters.max_spread);
    } else {
      eligible.push_back(i);
    }
  }

  const std::size_t m = eligible.size();
  auto feat = [&](std::size_t k, Feature f) { return static_cast<double>(all[eligible[k]].features.get(f)); };
  // The nine normalised inputs; each column is independent, so they are normalised in parallel.
  enum Col { adx, align, atr, bbw, dv, spread, roc, dd, pred, kCols };
  std::array<std::vector<double>, kCols> z;
  qtos::parallel_for(0, static_cast<int>(kCols), [&](int c) {
    std::vector<double> v(m);
    for (std::size_t k = 0; k < m; ++k) {
      switch (c) {
        case adx: v[k] = feat(k, Feature::adx); break;
        case align: v[k] = std::fabs(feat(k, Feature::ma_alignment)); break;
        case atr: v[k] = safe_log(feat(k, Feature::atr_pct)); break;
        case bbw: v[k] = safe_log(feat(k, Feature::bb_width)); break;
        case dv: v[k] = safe_log(feat(k, Feature::dollar_volume)); break;
        case spread: v[k] = feat(k, Feature::spread); break;
        case roc: v[k] = feat(k, Feature::roc); break;
        case dd: v[k] = feat(k, Feature::drawdown); break;
        default: v[k] = all[eligible[k]].prediction; break;
      }
    }
    z[static_cast<std::size_t>(c)] = robust_z(v);
  });
  const auto& z_adx = z[adx];
  const auto& z_align = z[align];
  const auto& z_atr = z[atr];
  const auto& z_bbw = z[bbw];
  const auto& z_dv = z[dv];
  const auto& z_spread = z[spread];
  const auto& z_roc = z[roc];
  const auto& z_dd = z[dd];
  const auto& z_pred = z[pred];
  bool any_prediction = false;
  for (double v : z_pred) any_prediction = any_prediction || std::isfinite(v);

  for (std::size_t k = 0; k < m; ++k) {
    SymbolScore& r = all[eligible[k]];
    r.sub[static_cast<std::size_t>(Criterion::trend)] = mean2(z_adx[k], z_align[k]);
    r.sub[static_cast<std::size_t>(Criterion::volatility)] =
        mean2(band_score(z_atr[k], weights.volatility_band), band_score(z_bbw[k], weights.volatility_band));
    r.sub[static_cast<std::size_t>(Criterion::liquidity)] = mean2(z_dv[k], -z_spread[k]);
    r.sub[static_cast<std::size_t>(Criterion::performance)] = mean2(z_roc[k], -z_dd[k]);
    r.sub[static_cast<std::size_t>(Criterion::model)] = any_prediction ? z_pred[k] : kNan;
    double num = 0.0, den = 0.0;
    for (int c = 0; c < kCriterionCount; ++c) {
      const double w = weights.weight[static_cast<std::size_t>(c)];
      const double v = r.sub[static_cast<std::size_t>(c)];
      if (w > 0.0 && std::isfinite(v)) {
        num += w * v;
        den += w;
      }
    }
    r.score = den > 0.0 ? num / den : 0.0;
  }

  std::vector<std::size_t> order = eligible;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (all[a].score != all[b].score) return all[a].score > all[b].score;
    return all[a].symbol < all[b].symbol;
  });
  out.rows.reserve(n);
  for (std::size_t k = 0; k < order.size(); ++k) {
    all[order[k]].rank = static_cast<std::int32_t>(k + 1);
    out.rows.push_back(std::move(all[order[k]]));
  }
  for (auto& r : all)
    if (!r.eligible()) out.rows.push_back(std::move(r));
  out.eligible = static_cast<std::int32_t>(m);
  return out;
}

std::string ranking_explain(const Ranking& ranking, std::string_view symbol, const RankWeights& weights) {
  const SymbolScore* r = ranking.find(symbol);
  if (!r) throw std::invalid_argument("explain: symbol '" + std::string(symbol) + "' is not in the ranking");
  std::ostringstream os;
  os << r->symbol << " at bar " << ranking.bar << ": ";
  if (!r->eligible()) {
    os << "filtered (" << filter_reason_name(r->reason) << "): " << r->reason_text << "\n";
    return os.str();
  }
  const auto& f = r->features;
  os << "rank " << r->rank << " of " << ranking.eligible << ", score " << fmt("%+.4f", r->score) << "\n";
  os << "  inputs: close " << fmt("%.6g", f.get(Feature::close)) << ", ADX " << fmt("%.2f", f.get(Feature::adx))
     << ", EMA alignment " << fmt("%+.4f", f.get(Feature::ma_alignment)) << ", ATR% "
     << fmt("%.4f", 100.0 * f.get(Feature::atr_pct)) << ", Bollinger width " << fmt("%.4f", f.get(Feature::bb_width))
     << ", dollar volume/bar " << fmt("%.6g", f.get(Feature::dollar_volume)) << ", spread "
     << fmt("%.5f", f.get(Feature::spread)) << ", ROC% " << fmt("%+.3f", f.get(Feature::roc)) << ", max drawdown "
     << fmt("%.4f", f.get(Feature::drawdown)) << "\n";
  double den = 0.0;
  for (int c = 0; c < kCriterionCount; ++c) {
    const double w = weights.weight[static_cast<std::size_t>(c)];
    if (w > 0.0 && std::isfinite(r->sub[static_cast<std::size_t>(c)])) den += w;
  }
  for (int c = 0; c < kCriterionCount; ++c) {
    const double w = weights.weight[static_cast<std::size_t>(c)];
    const double v = r->sub[static_cast<std::size_t>(c)];
    os << "  " << criterion_name(static_cast<Criterion>(c)) << ": ";
    if (!std::isfinite(v)) {
      os << "absent (no input), not counted\n";
      continue;
    }
    os << "sub-score " << fmt("%+.4f", v) << " x weight " << fmt("%g", w);
    if (w > 0.0 && den > 0.0) os << " -> contributes " << fmt("%+.4f", w * v / den);
    os << "\n";
  }
  return os.str();
}

}  // namespace qtos
