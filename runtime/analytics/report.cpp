#include "runtime/analytics/report.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <string_view>

#include <boost/json.hpp>

#include "runtime/analytics/metrics.hpp"
#include "runtime/util/result.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos {
namespace {

constexpr TimeNs kNsPerDay = 86'400'000'000'000;
constexpr TimeNs kNsPerMinute = 60'000'000'000;

// ---- text ------------------------------------------------------------------------------------------------------

/// `v` with `decimals` digits after the point, locale-free; "n/a" for NaN, "inf"/"-inf", and never "-0".
std::string num(double v, int decimals) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[400];  // the longest fixed form of a double (about 1.8e308) fits
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  if (r.ec != std::errc()) return "n/a";
  std::string s(buf, r.ptr);
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

/// An SVG coordinate (one decimal).
std::string xy(double v) { return num(v, 1); }

std::string pct(double fraction, int decimals = 2) { return std::isfinite(fraction) ? num(fraction * 100.0, decimals) + " %" : num(fraction, 0); }

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

/// "2024-01-01 00:00" (UTC) for a Unix ns time.
std::string time_label(TimeNs ts) {
  TimeNs days = ts / kNsPerDay;
  if (ts % kNsPerDay < 0) --days;
  const TimeNs minutes = (ts - days * kNsPerDay) / kNsPerMinute;
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u %02lld:%02lld", static_cast<long long>(y), m, d,
                static_cast<long long>(minutes / 60), static_cast<long long>(minutes % 60));
  return buf;
}

// ---- order counts ------------------------------------------------------------------------------------------------

struct OrderCounts {
  std::int64_t total = 0;
  std::map<std::string, std::int64_t> by_status;  // every status, in name order
  std::map<std::string, std::int64_t> denials;    // by reason name
  std::map<std::int32_t, std::int64_t> rejections; // by venue code
  std::int64_t denied = 0, rejected = 0;
};

OrderCounts order_counts(const std::vector<OrderRecord>& orders) {
  OrderCounts c;
  for (std::size_t i = 0; i < EnumNames<OrderStatus>::kCount; ++i) c.by_status[std::string(EnumNames<OrderStatus>::kNames[i])] = 0;
  for (const auto& o : orders) {
    // A denial that repeated is one row standing for 1 + repeats decisions.
    const std::int64_t n = 1 + static_cast<std::int64_t>(o.repeats);
    c.total += n;
    c.by_status[std::string(enum_name(o.status))] += n;
    if (o.status == OrderStatus::denied) {
      c.denied += n;
      c.denials[o.deny_reason ? std::string(enum_name(*o.deny_reason)) : std::string("UNKNOWN")] += n;
    } else if (o.status == OrderStatus::rejected) {
      ++c.rejected;
      ++c.rejections[o.venue_code];
    }
  }
  return c;
}

/// Everything both renderings show, computed once.
struct Computed {
  SystemMetrics system;
  std::vector<StrategyMetrics> strategies, models, symbols;
  OrderCounts orders;
  std::vector<double> equity, drawdown, exposure;
  std::vector<TimeNs> ts;
  DrawdownPeriod worst;
};

Computed compute(const ReportInput& in) {
  Computed c;
  const TimeNs span = metrics_span(in.equity, in.trades);
  c.system = system_metrics(in.equity, in.trades, in.initial_equity, in.bars_per_year);
  c.strategies = metrics_by_strategy(in.trades, span);
  c.models = metrics_by_model(in.trades, span);
  c.symbols = metrics_by_symbol(in.trades, span);
  c.orders = order_counts(in.orders);
  c.equity.reserve(in.equity.size());
  c.exposure.reserve(in.equity.size());
  c.ts.reserve(in.equity.size());
  for (const auto& p : in.equity) {
    c.equity.push_back(p.equity);
    c.exposure.push_back(p.exposure);
    c.ts.push_back(p.ts);
  }
  c.drawdown = drawdown_series(c.equity);
  c.worst = drawdown_worst(c.equity);
  return c;
}

// ---- JSON --------------------------------------------------------------------------------------------------------

boost::json::value jnum(double v) { return std::isfinite(v) ? boost::json::value(v) : boost::json::value(nullptr); }

boost::json::object group_json(const StrategyMetrics& m, const char* id_key) {
  boost::json::object o;
  o[id_key] = m.strategy_id;
  o["total_trades"] = m.total_trades;
  o["win_rate"] = jnum(m.win_rate);
  o["avg_profit"] = jnum(m.avg_profit);
  o["sharpe_ratio"] = jnum(m.sharpe_ratio);
  o["max_drawdown"] = jnum(m.max_drawdown);
  return o;
}

boost::json::array groups_json(const std::vector<StrategyMetrics>& groups, const char* id_key) {
  boost::json::array a;
  for (const auto& g : groups) a.emplace_back(group_json(g, id_key));
  return a;
}

}  // namespace

std::vector<std::size_t> downsample_minmax(std::span<const double> values, std::size_t max_points) {
  QTOS_ASSERT(max_points >= 4, "downsample_minmax keeps at least the ends and one bucket's min and max");
  const std::size_t n = values.size();
  std::vector<std::size_t> out;
  if (n <= max_points) {
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = i;
    return out;
  }
  const std::size_t buckets = (max_points - 2) / 2;
  out.reserve(max_points);
  out.push_back(0);
  // Buckets split the inner points 1 .. n-2.
  const std::size_t inner = n - 2;
  for (std::size_t b = 0; b < buckets; ++b) {
    const std::size_t lo = 1 + b * inner / buckets, hi = 1 + (b + 1) * inner / buckets;
    std::size_t imin = hi, imax = hi;
    for (std::size_t i = lo; i < hi; ++i) {
      const double v = values[i];
      if (std::isnan(v)) continue;
      if (imin == hi || v < values[imin]) imin = i;
      if (imax == hi || v > values[imax]) imax = i;
    }
    if (imin == hi) {  // all NaN: keep the bucket's first point so the gap shows
      if (lo < hi) out.push_back(lo);
      continue;
    }
    out.push_back(std::min(imin, imax));
    if (imin != imax) out.push_back(std::max(imin, imax));
  }
  out.push_back(n - 1);
  return out;
}

std::string report_json(const ReportInput& in) {
  const Computed c = compute(in);
  boost::json::object root;
  root["title"] = in.title;
  boost::json::object run;
  for (const auto& [k, v] : in.run_info) run[k] = v;
  root["run"] = std::move(run);

  const auto& s = c.system;
  boost::json::object m;
  m["equity"] = jnum(s.equity);
  m["daily_pnl"] = jnum(s.daily_pnl);
  m["total_trades"] = s.total_trades;
  m["active_positions"] = s.active_positions;
  m["regime"] = enum_name(s.regime);
  m["risk_mode"] = enum_name(s.risk_mode);
  m["total_return"] = jnum(s.total_return);
  m["sharpe_ratio"] = jnum(s.sharpe_ratio);
  m["max_drawdown"] = jnum(s.max_drawdown);
  m["win_rate"] = jnum(s.win_rate);
  m["profit_factor"] = jnum(s.profit_factor);
  m["fees"] = jnum(s.fees);
  m["initial_equity"] = jnum(in.initial_equity);
  m["bars_per_year"] = jnum(in.bars_per_year);
  root["metrics"] = std::move(m);

  boost::json::object worst;
  worst["depth"] = jnum(c.worst.depth);
  if (c.worst.depth > 0) {
    worst["peak_ts"] = c.ts[c.worst.peak];
    worst["trough_ts"] = c.ts[c.worst.trough];
    worst["recovery_ts"] = c.worst.recovery == DrawdownPeriod::kNotRecovered ? boost::json::value(nullptr)
                                                                              : boost::json::value(c.ts[c.worst.recovery]);
  }
  root["worst_drawdown"] = std::move(worst);

  root["strategies"] = groups_json(c.strategies, "strategy_id");
  root["models"] = groups_json(c.models, "strategy_id");
  root["symbols"] = groups_json(c.symbols, "symbol");

  boost::json::object orders;
  orders["total"] = c.orders.total;
  orders["denied"] = c.orders.denied;
  orders["rejected"] = c.orders.rejected;
  boost::json::object by_status;
  for (const auto& [k, v] : c.orders.by_status) by_status[k] = v;
  orders["by_status"] = std::move(by_status);
  boost::json::object rejections;
  for (const auto& [code, n] : c.orders.rejections) rejections[std::to_string(code)] = n;
  orders["rejections_by_code"] = std::move(rejections);
  root["orders"] = std::move(orders);
  boost::json::object denials;
  for (const auto& [k, v] : c.orders.denials) denials[k] = v;
  root["denials_by_reason"] = std::move(denials);

  boost::json::object curve;
  curve["points"] = static_cast<std::int64_t>(c.equity.size());
  boost::json::array ts, eq, dd, ex;
  for (std::size_t i : downsample_minmax(c.equity)) {
    ts.emplace_back(c.ts[i]);
    eq.emplace_back(jnum(c.equity[i]));
    dd.emplace_back(jnum(c.drawdown[i]));
    ex.emplace_back(jnum(c.exposure[i]));
  }
  curve["ts"] = std::move(ts);
  curve["equity"] = std::move(eq);
  curve["drawdown"] = std::move(dd);
  curve["exposure"] = std::move(ex);
  root["equity_curve"] = std::move(curve);
  return boost::json::serialize(root);
}

// ---- HTML / SVG --------------------------------------------------------------------------------------------------

namespace {

constexpr double kW = 1200, kL = 84, kR = 16, kT = 30, kB = 28;

/// A chart's mapping from time and value to SVG coordinates.
struct Frame {
  TimeNs t0 = 0, t1 = 1;
  double v0 = 0, v1 = 1;
  double h = 240;
  double x(TimeNs t) const {
    const double f = static_cast<double>(t - t0) / static_cast<double>(t1 - t0);
    return kL + std::clamp(f, 0.0, 1.0) * (kW - kL - kR);
  }
  double y(double v) const {
    const double f = (v1 - v) / (v1 - v0);
    return kT + std::clamp(std::isfinite(f) ? f : 0.0, 0.0, 1.0) * (h - kT - kB);
  }
};

/// A time range that is never empty.
void frame_times(Frame& f, TimeNs t0, TimeNs t1) {
  f.t0 = t0;
  f.t1 = t1 > t0 ? t1 : t0 + 1;
}

/// A value range around [lo, hi] with a margin; never empty.
void frame_values(Frame& f, double lo, double hi, bool pad_low = true) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  double pad = (hi - lo) * 0.05;
  if (!(pad > 0)) pad = std::max(std::fabs(hi) * 0.01, 1e-9);
  f.v0 = pad_low ? lo - pad : lo;
  f.v1 = hi + pad;
}

double nice_step(double range, int target) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/// Opens an <svg> with its background, title, horizontal grid with value labels and time labels.
void chart_open(std::string& out, const std::string& id, const std::string& title, const Frame& f, const std::string& unit,
                double scale = 1.0) {
  out += "<svg id=\"" + esc(id) + "\" class=\"chart\" viewBox=\"0 0 " + xy(kW) + " " + xy(f.h) +
         "\" width=\"100%\" role=\"img\" aria-label=\"" + esc(title) + "\">\n";
  out += "<rect x=\"0\" y=\"0\" width=\"" + xy(kW) + "\" height=\"" + xy(f.h) + "\" fill=\"#ffffff\"/>\n";
  out += "<text x=\"" + xy(kL) + "\" y=\"18\" class=\"ct\">" + esc(title) + "</text>\n";
  const double plot_bottom = f.h - kB;
  out += "<rect x=\"" + xy(kL) + "\" y=\"" + xy(kT) + "\" width=\"" + xy(kW - kL - kR) + "\" height=\"" + xy(plot_bottom - kT) +
         "\" fill=\"none\" stroke=\"#c8ccd2\"/>\n";
  // Value grid.
  const double range = (f.v1 - f.v0) * scale;
  if (range > 0 && std::isfinite(range)) {
    const double step = nice_step(range, 4);
    const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step))), 0, 8);
    const double first = std::ceil(f.v0 * scale / step) * step;
    for (int k = 0; k < 12; ++k) {
      const double v = first + k * step;
      if (v > f.v1 * scale + step * 1e-9) break;
      const double y = f.y(v / scale);
      out += "<line x1=\"" + xy(kL) + "\" y1=\"" + xy(y) + "\" x2=\"" + xy(kW - kR) + "\" y2=\"" + xy(y) +
             "\" stroke=\"#eceef1\"/><text x=\"" + xy(kL - 6) + "\" y=\"" + xy(y + 4) + "\" class=\"yl\">" + num(v, decimals) +
             esc(unit) + "</text>\n";
    }
  }
  // Time labels.
  for (int k = 0; k <= 4; ++k) {
    const TimeNs t = f.t0 + static_cast<TimeNs>(static_cast<double>(f.t1 - f.t0) * k / 4.0);
    const double x = f.x(t);
    const char* anchor = k == 0 ? "start" : k == 4 ? "end" : "middle";
    out += "<text x=\"" + xy(x) + "\" y=\"" + xy(f.h - 8) + "\" class=\"xl\" text-anchor=\"" + anchor + "\">" + time_label(t) +
           "</text>\n";
  }
}

/// A polyline through the kept points (a NaN breaks nothing: it is skipped).
std::string polyline_points(const Frame& f, std::span<const TimeNs> ts, std::span<const double> v, std::span<const std::size_t> keep) {
  std::string pts;
  pts.reserve(keep.size() * 14);
  for (std::size_t i : keep) {
    if (!std::isfinite(v[i])) continue;
    if (!pts.empty()) pts.push_back(' ');
    pts += xy(f.x(ts[i])) + "," + xy(f.y(v[i]));
  }
  return pts;
}

void empty_note(std::string& out, const Frame& f, const char* text) {
  out += "<text x=\"" + xy(kW / 2) + "\" y=\"" + xy(f.h / 2) + "\" class=\"note\" text-anchor=\"middle\">" + text + "</text>\n";
}

std::pair<double, double> min_max(std::span<const double> v) {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  for (double x : v)
    if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  return {lo, hi};
}

void chart_equity(std::string& out, const ReportInput& in, const Computed& c) {
  Frame f;
  if (!c.ts.empty()) frame_times(f, c.ts.front(), c.ts.back());
  auto [lo, hi] = min_max(c.equity);
  if (in.initial_equity > 0 && std::isfinite(lo)) lo = std::min(lo, in.initial_equity), hi = std::max(hi, in.initial_equity);
  frame_values(f, lo, hi);
  chart_open(out, "chart-equity", "Equity", f, "");
  if (c.equity.empty()) {
    empty_note(out, f, "no equity points");
    out += "</svg>\n";
    return;
  }
  if (in.initial_equity > 0) {
    const double y = f.y(in.initial_equity);
    out += "<line x1=\"" + xy(kL) + "\" y1=\"" + xy(y) + "\" x2=\"" + xy(kW - kR) + "\" y2=\"" + xy(y) +
           "\" stroke=\"#9aa1ab\" stroke-dasharray=\"4 4\"><title>initial equity " + num(in.initial_equity, 2) + "</title></line>\n";
  }
  const auto keep = downsample_minmax(c.equity);
  out += "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"1.5\" points=\"" + polyline_points(f, c.ts, c.equity, keep) +
         "\"/>\n</svg>\n";
}

void chart_drawdown(std::string& out, const Computed& c) {
  Frame f;
  if (!c.ts.empty()) frame_times(f, c.ts.front(), c.ts.back());
  // Drawn below zero, in percent of the peak.
  std::vector<double> neg(c.drawdown.size());
  for (std::size_t i = 0; i < neg.size(); ++i) neg[i] = -c.drawdown[i];
  const double deepest = c.worst.depth;
  f.v0 = -(deepest > 0 ? deepest * 1.05 : 0.01);
  f.v1 = 0;
  chart_open(out, "chart-drawdown", "Drawdown (worst " + pct(deepest) + ")", f, " %", 100.0);
  if (neg.empty()) {
    empty_note(out, f, "no equity points");
    out += "</svg>\n";
    return;
  }
  const auto keep = downsample_minmax(neg);
  const std::string pts = polyline_points(f, c.ts, neg, keep);
  const double y0 = f.y(0);
  out += "<polygon fill=\"#f4b4b4\" stroke=\"#c0392b\" stroke-width=\"1\" points=\"" + xy(f.x(c.ts[keep.front()])) + "," + xy(y0) +
         " " + pts + " " + xy(f.x(c.ts[keep.back()])) + "," + xy(y0) + "\"/>\n";
  if (deepest > 0) {
    const double x = f.x(c.ts[c.worst.trough]);
    out += "<circle cx=\"" + xy(x) + "\" cy=\"" + xy(f.y(-deepest)) + "\" r=\"3.5\" fill=\"#7b241c\"><title>worst drawdown " +
           pct(deepest) + " at " + time_label(c.ts[c.worst.trough]) + "</title></circle>\n";
  }
  out += "</svg>\n";
}

void chart_exposure(std::string& out, const Computed& c) {
  Frame f;
  if (!c.ts.empty()) frame_times(f, c.ts.front(), c.ts.back());
  auto [lo, hi] = min_max(c.exposure);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  frame_values(f, std::min(lo, 0.0), std::max(hi, 0.0), lo < 0);
  chart_open(out, "chart-exposure", "Exposure (gross notional / equity)", f, " %", 100.0);
  if (c.exposure.empty()) {
    empty_note(out, f, "no equity points");
    out += "</svg>\n";
    return;
  }
  const auto keep = downsample_minmax(c.exposure);
  const std::string pts = polyline_points(f, c.ts, c.exposure, keep);
  const double y0 = f.y(0);
  out += "<polygon fill=\"#cfe3f7\" stroke=\"none\" points=\"" + xy(f.x(c.ts[keep.front()])) + "," + xy(y0) + " " + pts + " " +
         xy(f.x(c.ts[keep.back()])) + "," + xy(y0) + "\"/>\n";
  out += "<polyline fill=\"none\" stroke=\"#2e6da4\" stroke-width=\"1.2\" points=\"" + pts + "\"/>\n</svg>\n";
}

/// The colour of a state in the timeline (stable per name; unknown names grey).
const char* state_colour(std::string_view s) {
  static const std::map<std::string_view, const char*> kColours = {
      {"AGGRESSIVE", "#e67e22"},     {"NORMAL", "#3b82c4"},         {"DEFENSIVE", "#8e44ad"},
      {"ACTIVE", "#27ae60"},         {"REDUCING", "#f1c40f"},       {"HALTED", "#c0392b"},
      {"UNKNOWN", "#bdc3c7"},        {"TRENDING_UP", "#16a085"},    {"TRENDING_DOWN", "#d35400"},
      {"RANGING", "#7f8c8d"},        {"VOLATILE", "#e74c3c"}, {"LOW_VOLATILITY", "#5dade2"}, {"CRASH", "#4a235a"}};
  const auto it = kColours.find(s);
  return it == kColours.end() ? "#95a5a6" : it->second;
}

/// A row of coloured bands: runs of equal state from one point's time to the next point's. More than
/// kReportMaxPoints runs are merged into as many equal time buckets, each taking its most frequent state (ties: the
/// one seen first in the bucket).
void timeline_row(std::string& out, const Frame& f, std::span<const TimeNs> ts, const std::vector<std::string>& state, double y,
                  double h, const std::string& label, std::map<std::string, const char*>& legend) {
  out += "<text x=\"" + xy(kL - 6) + "\" y=\"" + xy(y + h / 2 + 4) + "\" class=\"yl\">" + esc(label) + "</text>\n";
  struct Band {
    TimeNs from, to;
    std::string state;
  };
  std::vector<Band> bands;
  const std::size_t n = ts.size();
  for (std::size_t i = 0; i < n; ++i) {
    const TimeNs to = i + 1 < n ? ts[i + 1] : ts[i];
    if (!bands.empty() && bands.back().state == state[i]) bands.back().to = to;
    else bands.push_back({ts[i], to, state[i]});
  }
  if (bands.size() > kReportMaxPoints) {
    std::vector<Band> merged;
    const std::size_t buckets = kReportMaxPoints;
    std::size_t i = 0;
    for (std::size_t b = 0; b < buckets && i < n; ++b) {
      const TimeNs end = f.t0 + static_cast<TimeNs>(static_cast<double>(f.t1 - f.t0) * static_cast<double>(b + 1) / buckets);
      std::vector<std::pair<std::string, std::size_t>> counts;  // in order of first sight
      const TimeNs from = ts[i];
      while (i < n && (ts[i] <= end || b + 1 == buckets)) {
        auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& p) { return p.first == state[i]; });
        if (it == counts.end()) counts.emplace_back(state[i], 1);
        else ++it->second;
        ++i;
      }
      if (counts.empty()) continue;
      const auto best = std::max_element(counts.begin(), counts.end(), [](const auto& a, const auto& b2) { return a.second < b2.second; });
      const TimeNs to = i < n ? ts[i] : ts[n - 1];
      if (!merged.empty() && merged.back().state == best->first) merged.back().to = to;
      else merged.push_back({from, to, best->first});
    }
    bands = std::move(merged);
  }
  for (const auto& b : bands) {
    const double x0 = f.x(b.from), x1 = f.x(b.to);
    const char* colour = state_colour(b.state);
    legend.emplace(b.state.empty() ? "(none)" : b.state, colour);
    out += "<rect x=\"" + xy(x0) + "\" y=\"" + xy(y) + "\" width=\"" + xy(std::max(x1 - x0, 0.5)) + "\" height=\"" + xy(h) +
           "\" fill=\"" + colour + "\"><title>" + esc(label) + ": " + esc(b.state) + " from " + time_label(b.from) + " to " +
           time_label(b.to) + "</title></rect>\n";
  }
}

void chart_timeline(std::string& out, const ReportInput& in, const Computed& c) {
  Frame f;
  f.h = 170;
  if (!c.ts.empty()) frame_times(f, c.ts.front(), c.ts.back());
  out += "<svg id=\"chart-timeline\" class=\"chart\" viewBox=\"0 0 " + xy(kW) + " " + xy(f.h) +
         "\" width=\"100%\" role=\"img\" aria-label=\"Risk mode, trading state and regime over time\">\n";
  out += "<rect x=\"0\" y=\"0\" width=\"" + xy(kW) + "\" height=\"" + xy(f.h) + "\" fill=\"#ffffff\"/>\n";
  out += "<text x=\"" + xy(kL) + "\" y=\"18\" class=\"ct\">Risk mode, trading state and regime</text>\n";
  if (in.equity.empty()) {
    empty_note(out, f, "no equity points");
    out += "</svg>\n";
    return;
  }
  std::vector<std::string> risk, trading, regime;
  risk.reserve(in.equity.size());
  trading.reserve(in.equity.size());
  regime.reserve(in.equity.size());
  for (const auto& p : in.equity) {
    risk.emplace_back(enum_name(p.risk_mode));
    trading.push_back(p.trading_state);
    regime.emplace_back(enum_name(p.regime));
  }
  std::map<std::string, const char*> legend;
  timeline_row(out, f, c.ts, risk, kT, 22, "risk mode", legend);
  timeline_row(out, f, c.ts, trading, kT + 28, 22, "trading state", legend);
  timeline_row(out, f, c.ts, regime, kT + 56, 22, "regime", legend);
  for (int k = 0; k <= 4; ++k) {
    const TimeNs t = f.t0 + static_cast<TimeNs>(static_cast<double>(f.t1 - f.t0) * k / 4.0);
    const char* anchor = k == 0 ? "start" : k == 4 ? "end" : "middle";
    out += "<text x=\"" + xy(f.x(t)) + "\" y=\"" + xy(kT + 96) + "\" class=\"xl\" text-anchor=\"" + anchor + "\">" + time_label(t) +
           "</text>\n";
  }
  double x = kL;
  double y = kT + 118;
  for (const auto& [name, colour] : legend) {
    const double w = 32 + 8.5 * static_cast<double>(name.size());
    if (x + w > kW - kR) x = kL, y += 18;
    out += "<rect x=\"" + xy(x) + "\" y=\"" + xy(y - 10) + "\" width=\"12\" height=\"12\" fill=\"" + colour + "\"/><text x=\"" +
           xy(x + 16) + "\" y=\"" + xy(y) + "\" class=\"lg\">" + esc(name) + "</text>\n";
    x += w;
  }
  out += "</svg>\n";
}

/// The id of a symbol's trade chart: "chart-trades-" and the symbol with anything but [A-Za-z0-9_-] as '_'.
std::string trades_chart_id(const std::string& symbol) {
  std::string id = "chart-trades-";
  for (char ch : symbol) id.push_back(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ? ch : '_');
  return id;
}

void chart_trades(std::string& out, const PriceSeries& ps, const std::vector<ClosedTrade>& all_trades) {
  Frame f;
  f.h = 280;
  const std::size_t n = std::min(ps.times.size(), ps.closes.size());
  if (n > 0) frame_times(f, ps.times.front(), ps.times[n - 1]);
  std::vector<const ClosedTrade*> trades;
  for (const auto& t : all_trades)
    if (t.symbol.view() == ps.symbol && n > 0 && t.exit_time >= f.t0 && t.entry_time <= f.t1) trades.push_back(&t);
  const std::span<const double> closes(ps.closes.data(), n);
  const std::span<const TimeNs> times(ps.times.data(), n);
  auto [lo, hi] = min_max(closes);
  frame_values(f, lo, hi);
  // Markers sit on the close line (the close of the last bar at or before the fill); the fill prices are in the tooltip.
  auto close_at = [&](TimeNs t) {
    const auto it = std::upper_bound(times.begin(), times.end(), t);
    return closes[it == times.begin() ? 0 : static_cast<std::size_t>(it - times.begin()) - 1];
  };
  // At most kReportMaxPoints / 2 trades (two markers each), every k-th in exit order when there are more.
  const std::size_t max_trades = kReportMaxPoints / 2;
  const std::size_t stride = trades.size() > max_trades ? (trades.size() + max_trades - 1) / max_trades : 1;
  std::string title = ps.symbol + ": close and trades (" + std::to_string(trades.size()) + " trade" + (trades.size() == 1 ? "" : "s");
  if (stride > 1) title += ", every " + std::to_string(stride) + "th shown";
  title += ")";
  chart_open(out, trades_chart_id(ps.symbol), title, f, "");
  if (n == 0) {
    empty_note(out, f, "no prices");
    out += "</svg>\n";
    return;
  }
  const auto keep = downsample_minmax(closes);
  out += "<polyline fill=\"none\" stroke=\"#4a5568\" stroke-width=\"1.2\" points=\"" + polyline_points(f, times, closes, keep) +
         "\"/>\n";
  for (std::size_t k = 0; k < trades.size(); k += stride) {
    const auto& t = *trades[k];
    const double ex = f.x(t.entry_time), ey = f.y(close_at(t.entry_time)), xx = f.x(t.exit_time), xy_ = f.y(close_at(t.exit_time));
    const bool long_side = t.side == Side::buy;
    const bool won = t.pnl > 0;
    const std::string tip = "position " + std::to_string(t.position_id) + " " + esc(t.strategy.view()) + " " +
                            (long_side ? "long " : "short ") + num(t.qty, 6) + " @ " + num(t.entry_price, 4) + " -> " +
                            num(t.exit_price, 4) + ", pnl " + num(t.pnl, 2) + " (" + std::string(enum_name(t.reason)) + ")";
    out += "<line x1=\"" + xy(ex) + "\" y1=\"" + xy(ey) + "\" x2=\"" + xy(xx) + "\" y2=\"" + xy(xy_) + "\" stroke=\"" +
           (won ? "#27ae60" : "#c0392b") + "\" stroke-dasharray=\"3 2\" stroke-width=\"1\"/>\n";
    // Entry: a triangle pointing the way of the bet. Exit: a circle, green for a win, red for a loss.
    const double d = long_side ? 6 : -6;
    out += "<polygon class=\"entry\" fill=\"" + std::string(long_side ? "#1e8449" : "#a93226") + "\" points=\"" + xy(ex) + "," +
           xy(ey - d) + " " + xy(ex - 5) + "," + xy(ey + d * 0.7) + " " + xy(ex + 5) + "," + xy(ey + d * 0.7) + "\"><title>entry: " +
           tip + "</title></polygon>\n";
    out += "<circle class=\"exit\" cx=\"" + xy(xx) + "\" cy=\"" + xy(xy_) + "\" r=\"4\" fill=\"" + (won ? "#2ecc71" : "#e74c3c") +
           "\" stroke=\"#1b2631\" stroke-width=\"0.8\"><title>exit: " + tip + "</title></circle>\n";
  }
  out += "</svg>\n";
}

// ---- tables ------------------------------------------------------------------------------------------------------

void table_row(std::string& out, std::initializer_list<std::string> cells, bool header = false) {
  out += "<tr>";
  for (const auto& cell : cells) out += (header ? "<th>" : "<td>") + cell + (header ? "</th>" : "</td>");
  out += "</tr>\n";
}

void groups_table(std::string& out, const char* heading, const char* id_label, const std::vector<StrategyMetrics>& groups) {
  out += "<h2>" + std::string(heading) + "</h2>\n";
  if (groups.empty()) {
    out += "<p class=\"note\">none</p>\n";
    return;
  }
  out += "<table>\n";
  table_row(out, {id_label, "trades", "win rate", "avg profit", "Sharpe", "max drawdown"}, true);
  for (const auto& g : groups)
    table_row(out, {esc(g.strategy_id), std::to_string(g.total_trades), pct(g.win_rate, 1), num(g.avg_profit, 2), num(g.sharpe_ratio, 2),
                    pct(g.max_drawdown)});
  out += "</table>\n";
}

constexpr std::string_view kStyle = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1240px; color: #1b2631; background: #f6f7f9; }
h1 { font-size: 24px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 22px 0 8px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin-bottom: 6px; }
th, td { border: 1px solid #d5d8dc; padding: 4px 10px; text-align: right; }
th { background: #eef1f4; }
td:first-child, th:first-child { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.chart { display: block; margin: 8px 0 14px; border: 1px solid #d5d8dc; }
.chart text { font-family: system-ui, sans-serif; }
.ct { font-size: 14px; font-weight: 600; fill: #1b2631; }
.yl { font-size: 11px; fill: #566573; text-anchor: end; }
.xl { font-size: 11px; fill: #566573; }
.lg { font-size: 12px; fill: #1b2631; }
.note { font-size: 13px; fill: #7f8c8d; color: #7f8c8d; }
)css";

}  // namespace

std::string report_html(const ReportInput& in) {
  const Computed c = compute(in);
  const auto& s = c.system;
  std::string out;
  out.reserve(256 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + esc(in.title) + "</title>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n<h1>" + esc(in.title) + "</h1>\n";

  out += "<div class=\"grid\">\n<div>\n<h2>Run</h2>\n<table>\n";
  for (const auto& [k, v] : in.run_info) table_row(out, {esc(k), esc(v)});
  table_row(out, {"initial equity", num(in.initial_equity, 2)});
  table_row(out, {"equity points", std::to_string(in.equity.size())});
  if (!c.ts.empty()) table_row(out, {"period", time_label(c.ts.front()) + " to " + time_label(c.ts.back()) + " UTC"});
  out += "</table>\n</div>\n<div>\n<h2>Metrics</h2>\n<table>\n";
  table_row(out, {"equity", num(s.equity, 2)});
  table_row(out, {"total return", pct(s.total_return)});
  table_row(out, {"daily P&amp;L", num(s.daily_pnl, 2)});
  table_row(out, {"Sharpe (annualised)", num(s.sharpe_ratio, 2)});
  table_row(out, {"max drawdown", pct(s.max_drawdown)});
  table_row(out, {"win rate", pct(s.win_rate, 1)});
  table_row(out, {"profit factor", num(s.profit_factor, 2)});
  table_row(out, {"trades", std::to_string(s.total_trades)});
  table_row(out, {"fees", num(s.fees, 2)});
  table_row(out, {"open positions", std::to_string(s.active_positions)});
  table_row(out, {"risk mode", std::string(enum_name(s.risk_mode))});
  table_row(out, {"regime", std::string(enum_name(s.regime))});
  out += "</table>\n</div>\n<div>\n<h2>Orders</h2>\n<table>\n";
  table_row(out, {"status", "orders"}, true);
  for (const auto& [k, v] : c.orders.by_status)
    if (v > 0) table_row(out, {esc(k), std::to_string(v)});
  table_row(out, {"total", std::to_string(c.orders.total)});
  out += "</table>\n</div>\n<div>\n<h2>Denials by reason</h2>\n";
  if (c.orders.denials.empty()) {
    out += "<p class=\"note\">none</p>\n";
  } else {
    out += "<table>\n";
    table_row(out, {"reason", "denials"}, true);
    for (const auto& [k, v] : c.orders.denials) table_row(out, {esc(k), std::to_string(v)});
    out += "</table>\n";
  }
  out += "<h2>Rejections by venue code</h2>\n";
  if (c.orders.rejections.empty()) {
    out += "<p class=\"note\">none</p>\n";
  } else {
    out += "<table>\n";
    table_row(out, {"code", "rejections"}, true);
    for (const auto& [k, v] : c.orders.rejections) table_row(out, {std::to_string(k), std::to_string(v)});
    out += "</table>\n";
  }
  out += "</div>\n</div>\n";

  out += "<h2>Equity</h2>\n";
  chart_equity(out, in, c);
  out += "<h2>Drawdown</h2>\n";
  chart_drawdown(out, c);
  out += "<h2>Exposure</h2>\n";
  chart_exposure(out, c);
  out += "<h2>Risk mode and trading state</h2>\n";
  chart_timeline(out, in, c);
  out += "<h2>Trades on price</h2>\n<div id=\"chart-trades\">\n";
  if (in.prices.empty()) out += "<p class=\"note\">no price series given</p>\n";
  for (const auto& ps : in.prices) chart_trades(out, ps, in.trades);
  out += "</div>\n";

  groups_table(out, "Strategies", "strategy", c.strategies);
  groups_table(out, "Models", "model", c.models);
  groups_table(out, "Symbols", "symbol", c.symbols);
  out += "</body>\n</html>\n";
  return out;
}


// ---- stage comparison --------------------------------------------------------------------------------------------

namespace {

const char* run_colour(std::size_t i) {
  static const char* kColours[] = {"#7f8c8d", "#1f6feb", "#27ae60", "#e67e22", "#8e44ad", "#c0392b", "#16a085"};
  return kColours[i % (sizeof kColours / sizeof kColours[0])];
}

void legend(std::string& out, std::span<const StageRun> runs) {
  double x = kL + 8;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    out += "<rect x=\"" + xy(x) + "\" y=\"" + xy(kT + 6) + "\" width=\"14\" height=\"4\" fill=\"" + run_colour(i) + "\"/><text x=\"" +
           xy(x + 18) + "\" y=\"" + xy(kT + 12) + "\" class=\"lg\">" + esc(runs[i].name) + "</text>\n";
    x += 30 + 8.0 * static_cast<double>(runs[i].name.size());
  }
}

/// Equity (or drawdown, negated, in percent) of every run on one chart.
void chart_runs(std::string& out, std::span<const StageRun> runs, const std::vector<Computed>& cs, bool drawdown) {
  Frame f;
  TimeNs t0 = 0, t1 = 0;
  bool any = false;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Computed& c : cs) {
    if (c.ts.empty()) continue;
    t0 = any ? std::min(t0, c.ts.front()) : c.ts.front();
    t1 = any ? std::max(t1, c.ts.back()) : c.ts.back();
    any = true;
    const auto [a, b] = min_max(drawdown ? std::span<const double>(c.drawdown) : std::span<const double>(c.equity));
    lo = std::min(lo, drawdown ? -b : a);
    hi = std::max(hi, drawdown ? -a : b);
  }
  frame_times(f, t0, t1);
  if (drawdown) {
    f.v0 = std::isfinite(lo) && lo < 0 ? lo * 1.05 : -0.01;
    f.v1 = 0;
  } else {
    frame_values(f, lo, hi);
  }
  f.h = 300;
  chart_open(out, drawdown ? "chart-stage-drawdown" : "chart-stage-equity", drawdown ? "Drawdown" : "Equity", f, drawdown ? " %" : "",
             drawdown ? 100.0 : 1.0);
  if (!any) {
    empty_note(out, f, "no equity points");
    out += "</svg>\n";
    return;
  }
  for (std::size_t i = 0; i < cs.size(); ++i) {
    const Computed& c = cs[i];
    if (c.ts.empty()) continue;
    std::vector<double> v = drawdown ? c.drawdown : c.equity;
    if (drawdown)
      for (double& x : v) x = -x;
    const auto keep = downsample_minmax(v, 1200);
    out += "<polyline class=\"run\" data-run=\"" + esc(runs[i].name) + "\" fill=\"none\" stroke=\"" + run_colour(i) +
           "\" stroke-width=\"1.5\" points=\"" + polyline_points(f, c.ts, v, keep) + "\"/>\n";
  }
  legend(out, runs);
  out += "</svg>\n";
}

}  // namespace

std::string stage_comparison_json(std::span<const StageRun> runs) {
  boost::json::array arr;
  for (const StageRun& r : runs) {
    const Computed c = compute(r.report);
    boost::json::object o;
    o["name"] = r.name;
    o["total_return"] = jnum(c.system.total_return);
    o["sharpe_ratio"] = jnum(c.system.sharpe_ratio);
    o["max_drawdown"] = jnum(c.system.max_drawdown);
    o["trades"] = c.system.total_trades;
    o["win_rate"] = jnum(c.system.win_rate);
    o["equity"] = jnum(c.system.equity);
    o["orders"] = c.orders.total;
    o["denied"] = c.orders.denied;
    boost::json::object denials;
    for (const auto& [k, v] : c.orders.denials) denials[k] = v;
    o["denials"] = std::move(denials);
    boost::json::object subs;
    for (const auto& [name, actions] : r.decisions) {
      boost::json::object a;
      std::uint64_t total = 0;
      for (const auto& [k, v] : actions) a[k] = v, total += v;
      boost::json::object sub;
      sub["decisions"] = total;
      const auto it = r.applied.find(name);
      sub["applied"] = it == r.applied.end() ? 0 : it->second;
      sub["actions"] = std::move(a);
      subs[name] = std::move(sub);
    }
    o["subsystems"] = std::move(subs);
    arr.push_back(std::move(o));
  }
  boost::json::object root;
  root["runs"] = std::move(arr);
  return boost::json::serialize(root);
}

std::string stage_comparison_html(const std::string& title, const std::vector<std::pair<std::string, std::string>>& run_info,
                                  std::span<const StageRun> runs) {
  std::vector<Computed> cs;
  cs.reserve(runs.size());
  for (const StageRun& r : runs) cs.push_back(compute(r.report));
  std::string out;
  out.reserve(512 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + esc(title) + "</title>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n<h1>" + esc(title) + "</h1>\n";
  out += "<p class=\"note\">The same data, strategies and costs under the baseline (every subsystem off) and each integration "
         "stage. OBSERVATION should equal the baseline; each later stage differs only in what its subsystems may change.</p>\n";
  out += "<div class=\"grid\">\n<div>\n<h2>Run</h2>\n<table>\n";
  for (const auto& [k, v] : run_info) table_row(out, {esc(k), esc(v)});
  out += "</table>\n</div>\n</div>\n";

  auto row = [&](const std::string& label, auto cell) {
    out += "<tr><td>" + label + "</td>";
    for (std::size_t i = 0; i < runs.size(); ++i) out += "<td>" + cell(i) + "</td>";
    out += "</tr>\n";
  };
  auto header = [&](const std::string& first) {
    out += "<tr><th>" + first + "</th>";
    for (const StageRun& r : runs) out += "<th>" + esc(r.name) + "</th>";
    out += "</tr>\n";
  };
  out += "<h2>Results</h2>\n<table id=\"stage-metrics\">\n";
  header("metric");
  row("total return", [&](std::size_t i) { return pct(cs[i].system.total_return); });
  row("Sharpe (annualised)", [&](std::size_t i) { return num(cs[i].system.sharpe_ratio, 2); });
  row("max drawdown", [&](std::size_t i) { return pct(cs[i].system.max_drawdown); });
  row("trades", [&](std::size_t i) { return std::to_string(cs[i].system.total_trades); });
  row("win rate", [&](std::size_t i) { return pct(cs[i].system.win_rate, 1); });
  row("final equity", [&](std::size_t i) { return num(cs[i].system.equity, 2); });
  row("orders", [&](std::size_t i) { return std::to_string(cs[i].orders.total); });
  row("denials", [&](std::size_t i) { return std::to_string(cs[i].orders.denied); });
  out += "</table>\n";

  out += "<h2>Equity</h2>\n";
  chart_runs(out, runs, cs, false);
  out += "<h2>Drawdown</h2>\n";
  chart_runs(out, runs, cs, true);

  std::set<std::string> reasons;
  for (const Computed& c : cs)
    for (const auto& [k, v] : c.orders.denials) reasons.insert(k);
  out += "<h2>Denials by reason</h2>\n";
  if (reasons.empty()) {
    out += "<p class=\"note\">none</p>\n";
  } else {
    out += "<table id=\"stage-denials\">\n";
    header("reason");
    for (const std::string& reason : reasons)
      row(esc(reason), [&](std::size_t i) {
        const auto it = cs[i].orders.denials.find(reason);
        return std::to_string(it == cs[i].orders.denials.end() ? 0 : it->second);
      });
    out += "</table>\n";
  }

  std::set<std::string> subsystems;
  for (const StageRun& r : runs)
    for (const auto& [k, v] : r.decisions) subsystems.insert(k);
  out += "<h2>Subsystem decisions (applied / taken)</h2>\n";
  if (subsystems.empty()) {
    out += "<p class=\"note\">none</p>\n";
  } else {
    out += "<table id=\"stage-decisions\">\n";
    header("subsystem / action");
    for (const std::string& name : subsystems) {
      std::set<std::string> actions;
      for (const StageRun& r : runs)
        if (auto it = r.decisions.find(name); it != r.decisions.end())
          for (const auto& [a, n] : it->second) actions.insert(a);
      row("<b>" + esc(name) + "</b>", [&](std::size_t i) {
        const auto it = runs[i].decisions.find(name);
        if (it == runs[i].decisions.end()) return std::string("&mdash;");
        std::uint64_t total = 0;
        for (const auto& [a, n] : it->second) total += n;
        const auto ap = runs[i].applied.find(name);
        return std::to_string(ap == runs[i].applied.end() ? 0 : ap->second) + " / " + std::to_string(total);
      });
      for (const std::string& action : actions)
        row("&nbsp;&nbsp;" + esc(action), [&](std::size_t i) {
          const auto it = runs[i].decisions.find(name);
          if (it == runs[i].decisions.end()) return std::string("&mdash;");
          const auto a = it->second.find(action);
          return std::to_string(a == it->second.end() ? 0 : a->second);
        });
    }
    out += "</table>\n";
  }
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace qtos
