// The feature spec: names, warm-up, validation, differences and its JSON form.
#include "models/features.hpp"
#include "models/json_fields.hpp"
#include "cpu/backend/indicator_backend.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>

#include <boost/json.hpp>

namespace qtos::models {

namespace {

std::string lags_text(const std::vector<std::int32_t>& lags) {
  std::string s = "[";
  for (std::size_t i = 0; i < lags.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(lags[i]);
  }
  return s + "]";
}

}  // namespace

std::int32_t FeatureSpec::n_features() const {
  return static_cast<std::int32_t>(return_lags.size()) + 3 + detail::kIndicatorFeatures + (cross_sectional_ranks ? 2 : 0);
}

std::vector<std::string> FeatureSpec::names() const {
  std::vector<std::string> n;
  for (auto k : return_lags) n.push_back("ret_" + std::to_string(k));
  n.insert(n.end(), {"log_vol", "volume_ratio", "range", "rsi", "log_atr", "adx", "di_diff", "bb_pctb", "log_bb_width",
                     "log_spread"});
  if (cross_sectional_ranks) {
    n.push_back("rank_ret_" + std::to_string(return_lags.front()));
    n.push_back("rank_ret_" + std::to_string(return_lags.back()));
  }
  return n;
}

std::int32_t FeatureSpec::warmup() const {
  const std::int32_t max_lag = return_lags.empty() ? 0 : *std::max_element(return_lags.begin(), return_lags.end());
  // Each state's lookback (docs/INDICATORS.md): RSI n, ATR n, ADX 2n-1, Bollinger n-1, spread n, rvol n, volume n-1.
  return std::max({max_lag, vol_window, volume_window - 1, rsi_period, atr_period, 2 * adx_period - 1, bbands_period - 1,
                   spread_window});
}

void FeatureSpec::validate() const {
  auto bad = [](const std::string& field, const std::string& what) {
    throw std::invalid_argument("feature spec: " + field + " " + what);
  };
  if (return_lags.empty()) bad("return_lags", "is empty (expected at least one lag)");
  for (auto k : return_lags)
    if (k < 1 || k > 10000) bad("return_lags", "contains " + std::to_string(k) + " (expected 1..10000)");
  if (!std::is_sorted(return_lags.begin(), return_lags.end())) bad("return_lags", lags_text(return_lags) + " is not ascending");
  if (vol_window < 2 || vol_window > 10000) bad("vol_window", "= " + std::to_string(vol_window) + " (expected 2..10000)");
  if (volume_window < 1 || volume_window > 10000)
    bad("volume_window", "= " + std::to_string(volume_window) + " (expected 1..10000)");
  auto period = [&](const char* field, std::int32_t v, std::int32_t lo, std::int32_t hi) {
    if (v < lo || v > hi)
      bad(field, "= " + std::to_string(v) + " (expected " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  };
  period("rsi_period", rsi_period, 1, 10000);
  period("atr_period", atr_period, 1, 10000);
  period("adx_period", adx_period, 1, 5000);
  period("bbands_period", bbands_period, 2, 10000);
  period("spread_window", spread_window, 1, 10000);
  if (horizon < 1 || horizon > 10000) bad("horizon", "= " + std::to_string(horizon) + " (expected 1..10000)");
  if (window < 1 || window > 4096) bad("window", "= " + std::to_string(window) + " (expected 1..4096)");
  if (gaps.reset_after < -1) bad("gaps", "reset_after = " + std::to_string(gaps.reset_after) + " (expected skip or reset-after:N, N >= 0)");
}

std::string FeatureSpec::differences(const FeatureSpec& o) const {
  std::ostringstream d;
  auto field = [&](const char* name, const std::string& a, const std::string& b) {
    if (a != b) d << (d.tellp() > 0 ? "; " : "") << name << " " << a << " vs " << b;
  };
  field("version", std::to_string(version), std::to_string(o.version));
  field("return_lags", lags_text(return_lags), lags_text(o.return_lags));
  field("vol_window", std::to_string(vol_window), std::to_string(o.vol_window));
  field("volume_window", std::to_string(volume_window), std::to_string(o.volume_window));
  field("rsi_period", std::to_string(rsi_period), std::to_string(o.rsi_period));
  field("atr_period", std::to_string(atr_period), std::to_string(o.atr_period));
  field("adx_period", std::to_string(adx_period), std::to_string(o.adx_period));
  field("bbands_period", std::to_string(bbands_period), std::to_string(o.bbands_period));
  field("spread_window", std::to_string(spread_window), std::to_string(o.spread_window));
  field("cross_sectional_ranks", cross_sectional_ranks ? "true" : "false", o.cross_sectional_ranks ? "true" : "false");
  field("horizon", std::to_string(horizon), std::to_string(o.horizon));
  field("window", std::to_string(window), std::to_string(o.window));
  field("gaps", gap_policy_text(gaps), gap_policy_text(o.gaps));
  return d.str();
}

std::string FeatureSpec::to_json() const {
  boost::json::object o;
  o["version"] = version;
  boost::json::array lags;
  for (auto k : return_lags) lags.emplace_back(k);
  o["return_lags"] = std::move(lags);
  o["vol_window"] = vol_window;
  o["volume_window"] = volume_window;
  o["rsi_period"] = rsi_period;
  o["atr_period"] = atr_period;
  o["adx_period"] = adx_period;
  o["bbands_period"] = bbands_period;
  o["spread_window"] = spread_window;
  o["cross_sectional_ranks"] = cross_sectional_ranks;
  o["horizon"] = horizon;
  o["window"] = window;
  o["gaps"] = gap_policy_text(gaps);
  return boost::json::serialize(o);
}

FeatureSpec FeatureSpec::from_json(const std::string& text) {
  return from_json_object(json::parse_object(text, "feature spec JSON"));
}

FeatureSpec FeatureSpec::from_json_object(const boost::json::object& o) {
  constexpr std::string_view what = "feature spec JSON";
  const auto json_int = [&](const char* key) { return static_cast<std::int32_t>(json::field_int(o, key, what)); };
  FeatureSpec s;
  s.version = json_int("version");
  s.return_lags.clear();
  for (const auto& k : json::field_array(o, "return_lags", what)) {
    if (!k.is_int64()) throw std::invalid_argument("feature spec JSON: 'return_lags' holds a non-integer");
    s.return_lags.push_back(static_cast<std::int32_t>(k.as_int64()));
  }
  s.vol_window = json_int("vol_window");
  s.volume_window = json_int("volume_window");
  // Version 1 specs had no indicator features: they parse (with today's periods) so that loading an old model fails
  // on the version difference, with the usual message, rather than on a missing field.
  if (s.version >= 2) {
    s.rsi_period = json_int("rsi_period");
    s.atr_period = json_int("atr_period");
    s.adx_period = json_int("adx_period");
    s.bbands_period = json_int("bbands_period");
    s.spread_window = json_int("spread_window");
  }
  s.cross_sectional_ranks = json::field_bool(o, "cross_sectional_ranks", what);
  s.horizon = json_int("horizon");
  s.window = json_int("window");
  // A spec written before the gap policy was recorded was computed restarting after every gap.
  s.gaps = kernels::gap_reset_after(0);
  if (const auto* g = o.if_contains("gaps")) {
    if (!g->is_string()) throw std::invalid_argument("feature spec JSON: 'gaps' is not a string (expected skip or reset-after:N)");
    s.gaps = gap_policy_parse(std::string(g->as_string()), "feature spec JSON 'gaps'");
  }
  return s;
}

}  // namespace qtos::models
