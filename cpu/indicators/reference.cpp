// Scalar references, deliberately written without the step states: each follows the textbook formula over arrays.
#include "cpu/indicators/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qtos::reference {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

Series nans(std::size_t n) { return Series(n, kNan); }

double tr_of(double h, double l, double prev_c) {
  return std::max({h - l, std::fabs(h - prev_c), std::fabs(l - prev_c)});
}

double cs_pair(double ha, double la, double hb, double lb) {
  const double beta = std::pow(std::log(ha / la), 2) + std::pow(std::log(hb / lb), 2);
  const double gamma = std::pow(std::log(std::max(ha, hb) / std::min(la, lb)), 2);
  const double c = 3.0 - 2.0 * std::sqrt(2.0);
  const double alpha = (std::sqrt(2.0 * beta) - std::sqrt(beta)) / c - std::sqrt(gamma / c);
  const double s = 2.0 * (std::exp(alpha) - 1.0) / (1.0 + std::exp(alpha));
  return std::max(s, 0.0);
}

}  // namespace

Series sma(std::span<const double> x, int n) {
  Series out = nans(x.size());
  for (std::size_t t = static_cast<std::size_t>(n - 1); t < x.size(); ++t) {
    double s = 0.0;
    for (int j = 0; j < n; ++j) s += x[t - static_cast<std::size_t>(j)];
    out[t] = s / n;
  }
  return out;
}

Series ema(std::span<const double> x, int n) {
  Series out = nans(x.size());
  if (x.size() < static_cast<std::size_t>(n)) return out;
  const double k = 2.0 / (n + 1);
  double s = 0.0;
  for (int j = 0; j < n; ++j) s += x[static_cast<std::size_t>(j)];
  double v = s / n;
  out[static_cast<std::size_t>(n - 1)] = v;
  for (std::size_t t = static_cast<std::size_t>(n); t < x.size(); ++t) {
    v = (x[t] - v) * k + v;
    out[t] = v;
  }
  return out;
}

Series rsi(std::span<const double> x, int n) {
  Series out = nans(x.size());
  if (x.size() <= static_cast<std::size_t>(n)) return out;
  double gain = 0.0, loss = 0.0;
  for (int t = 1; t <= n; ++t) {
    const double d = x[static_cast<std::size_t>(t)] - x[static_cast<std::size_t>(t - 1)];
    if (d > 0) gain += d; else loss -= d;
  }
  gain /= n;
  loss /= n;
  auto value = [&] { return gain + loss != 0.0 ? 100.0 * gain / (gain + loss) : 0.0; };
  out[static_cast<std::size_t>(n)] = value();
  for (std::size_t t = static_cast<std::size_t>(n) + 1; t < x.size(); ++t) {
    const double d = x[t] - x[t - 1];
    gain = (gain * (n - 1) + (d > 0 ? d : 0.0)) / n;
    loss = (loss * (n - 1) + (d < 0 ? -d : 0.0)) / n;
    out[t] = value();
  }
  return out;
}

Series atr(std::span<const double> h, std::span<const double> l, std::span<const double> c, int n) {
  Series out = nans(c.size());
  if (c.size() <= static_cast<std::size_t>(n)) return out;
  double a = 0.0;
  for (int t = 1; t <= n; ++t) a += tr_of(h[static_cast<std::size_t>(t)], l[static_cast<std::size_t>(t)], c[static_cast<std::size_t>(t - 1)]);
  a /= n;
  out[static_cast<std::size_t>(n)] = a;
  for (std::size_t t = static_cast<std::size_t>(n) + 1; t < c.size(); ++t) {
    a = (a * (n - 1) + tr_of(h[t], l[t], c[t - 1])) / n;
    out[t] = a;
  }
  return out;
}

std::vector<Series> dmi(std::span<const double> h, std::span<const double> l, std::span<const double> c, int n) {
  const std::size_t len = c.size();
  std::vector<Series> out(3, nans(len));
  std::vector<double> pdm(len, 0.0), mdm(len, 0.0), tr(len, 0.0);
  for (std::size_t t = 1; t < len; ++t) {
    const double up = h[t] - h[t - 1], down = l[t - 1] - l[t];
    if (down > 0 && up < down) mdm[t] = down;
    else if (up > 0 && up > down) pdm[t] = up;
    tr[t] = tr_of(h[t], l[t], c[t - 1]);
  }
  double sp = 0.0, sm = 0.0, st = 0.0;
  for (int t = 1; t < n && static_cast<std::size_t>(t) < len; ++t) {
    sp += pdm[static_cast<std::size_t>(t)];
    sm += mdm[static_cast<std::size_t>(t)];
    st += tr[static_cast<std::size_t>(t)];
  }
  std::vector<double> dx(len, kNan);
  for (std::size_t t = static_cast<std::size_t>(n); t < len; ++t) {
    sp = sp - sp / n + pdm[t];
    sm = sm - sm / n + mdm[t];
    st = st - st / n + tr[t];
    const double p = st != 0.0 ? 100.0 * sp / st : 0.0;
    const double m = st != 0.0 ? 100.0 * sm / st : 0.0;
    out[0][t] = p;
    out[1][t] = m;
    if (st != 0.0 && p + m != 0.0) dx[t] = 100.0 * std::fabs(m - p) / (p + m);  // NaN: undefined
  }
  const std::size_t first = static_cast<std::size_t>(2 * n - 1);
  if (len <= first) return out;
  double adx = 0.0;
  for (std::size_t t = static_cast<std::size_t>(n); t <= first; ++t) adx += std::isnan(dx[t]) ? 0.0 : dx[t];
  adx /= n;
  out[2][first] = adx;
  for (std::size_t t = first + 1; t < len; ++t) {
    if (!std::isnan(dx[t])) adx = (adx * (n - 1) + dx[t]) / n;
    out[2][t] = adx;
  }
  return out;
}

std::vector<Series> bbands(std::span<const double> x, int n, double k) {
  std::vector<Series> out(5, nans(x.size()));
  for (std::size_t t = static_cast<std::size_t>(n - 1); t < x.size(); ++t) {
    double mean = 0.0;
    for (int j = 0; j < n; ++j) mean += x[t - static_cast<std::size_t>(j)];
    mean /= n;
    double var = 0.0;
    for (int j = 0; j < n; ++j) var += std::pow(x[t - static_cast<std::size_t>(j)] - mean, 2);
    const double sd = std::sqrt(var / n);
    const double up = mean + k * sd, lo = mean - k * sd;
    out[0][t] = mean;
    out[1][t] = up;
    out[2][t] = lo;
    out[3][t] = (up - lo) / mean;
    out[4][t] = up != lo ? (x[t] - lo) / (up - lo) : kNan;
  }
  return out;
}

std::vector<Series> macd(std::span<const double> x, int fast, int slow, int signal) {
  const std::size_t len = x.size();
  std::vector<Series> out(3, nans(len));
  const std::size_t s0 = static_cast<std::size_t>(slow - 1);
  if (len <= s0) return out;
  // TA-Lib starts both EMAs at bar slow-1: each is seeded with the SMA of its own period ending there.
  auto seeded = [&](int n) {
    Series e = nans(len);
    double s = 0.0;
    for (int j = 0; j < n; ++j) s += x[s0 - static_cast<std::size_t>(j)];
    e[s0] = s / n;
    const double k = 2.0 / (n + 1);
    for (std::size_t t = s0 + 1; t < len; ++t) e[t] = (x[t] - e[t - 1]) * k + e[t - 1];
    return e;
  };
  const Series ef = seeded(fast), es = seeded(slow);
  Series line(len - s0);
  for (std::size_t t = s0; t < len; ++t) {
    out[0][t] = ef[t] - es[t];
    line[t - s0] = out[0][t];
  }
  const Series sig = ema(line, signal);
  for (std::size_t t = s0; t < len; ++t) {
    out[1][t] = sig[t - s0];
    out[2][t] = std::isnan(sig[t - s0]) ? kNan : out[0][t] - sig[t - s0];
    if (std::isnan(sig[t - s0])) out[0][t] = kNan;  // TA-Lib prints the line only once the signal exists
  }
  return out;
}

std::vector<Series> roc(std::span<const double> x, int n) {
  std::vector<Series> out(2, nans(x.size()));
  for (std::size_t t = static_cast<std::size_t>(n); t < x.size(); ++t) {
    const double old = x[t - static_cast<std::size_t>(n)];
    out[0][t] = old != 0.0 ? (x[t] / old - 1.0) * 100.0 : 0.0;
    out[1][t] = x[t] - old;
  }
  return out;
}

Series rvol(std::span<const double> x, int n) {
  Series out = nans(x.size());
  for (std::size_t t = static_cast<std::size_t>(n); t < x.size(); ++t) {
    std::vector<double> r;
    for (std::size_t j = t + 1 - static_cast<std::size_t>(n); j <= t; ++j) r.push_back(std::log(x[j] / x[j - 1]));
    double mean = 0.0;
    for (double v : r) mean += v;
    mean /= n;
    double var = 0.0;
    for (double v : r) var += (v - mean) * (v - mean);
    out[t] = std::sqrt(var / (n - 1));
  }
  return out;
}

std::vector<Series> dollar_volume(std::span<const double> q, int n) {
  std::vector<Series> out(2, nans(q.size()));
  for (std::size_t t = static_cast<std::size_t>(n - 1); t < q.size(); ++t) {
    double sum = 0.0;
    for (int j = 0; j < n; ++j) sum += q[t - static_cast<std::size_t>(j)];
    const double mean = sum / n;
    double var = 0.0;
    for (int j = 0; j < n; ++j) var += std::pow(q[t - static_cast<std::size_t>(j)] - mean, 2);
    const double sd = std::sqrt(var / n);
    out[0][t] = sum;
    out[1][t] = sd > 0.0 ? (q[t] - mean) / sd : 0.0;
  }
  return out;
}

Series spread(std::span<const double> h, std::span<const double> l, int n) {
  Series out = nans(h.size());
  for (std::size_t t = static_cast<std::size_t>(n); t < h.size(); ++t) {
    double s = 0.0;
    for (std::size_t j = t + 1 - static_cast<std::size_t>(n); j <= t; ++j) s += cs_pair(h[j - 1], l[j - 1], h[j], l[j]);
    out[t] = s / n;
  }
  return out;
}

Series max_drawdown(std::span<const double> x, int n) {
  Series out = nans(x.size());
  for (std::size_t t = static_cast<std::size_t>(n - 1); t < x.size(); ++t) {
    double peak = x[t + 1 - static_cast<std::size_t>(n)], mdd = 0.0;
    for (std::size_t j = t + 1 - static_cast<std::size_t>(n); j <= t; ++j) {
      peak = std::max(peak, x[j]);
      mdd = std::max(mdd, 1.0 - x[j] / peak);
    }
    out[t] = mdd;
  }
  return out;
}

Series obv(std::span<const double> x, std::span<const double> v) {
  // TA-Lib's loop: the running total starts at the first volume; each later bar adds or subtracts its volume by the
  // direction of its close.
  Series out = nans(x.size());
  if (x.empty()) return out;
  double total = v[0], prev = x[0];
  for (std::size_t t = 0; t < x.size(); ++t) {
    if (x[t] > prev) total += v[t];
    else if (x[t] < prev) total -= v[t];
    out[t] = total;
    prev = x[t];
  }
  return out;
}

// No default: a family without a reference here is a -Wswitch error.
std::vector<Series> series(kernels::IndicatorKind kind, const kernels::IndicatorParams& p, std::span<const double> h,
                           std::span<const double> l, std::span<const double> c, std::span<const double> q) {
  using kernels::IndicatorKind;
  switch (kind) {
    case IndicatorKind::sma: return {sma(c, p.period)};
    case IndicatorKind::ema: return {ema(c, p.period)};
    case IndicatorKind::rsi: return {rsi(c, p.period)};
    case IndicatorKind::atr: return {atr(h, l, c, p.period)};
    case IndicatorKind::dmi: return dmi(h, l, c, p.period);
    case IndicatorKind::bbands: return bbands(c, p.period, p.k);
    case IndicatorKind::macd: return macd(c, p.period, p.period2, p.period3);
    case IndicatorKind::roc: return roc(c, p.period);
    case IndicatorKind::rvol: return {rvol(c, p.period)};
    case IndicatorKind::dollar_volume: return dollar_volume(q, p.period);
    case IndicatorKind::spread: return {spread(h, l, p.period)};
    case IndicatorKind::max_drawdown: return {max_drawdown(c, p.period)};
    case IndicatorKind::obv: return {obv(c, q)};
  }
  return {};
}

}  // namespace qtos::reference
