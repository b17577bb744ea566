#include "runtime/config/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <set>
#include <sstream>

#include "cpu/backend/indicator_backend.hpp"

extern char** environ;

namespace qtos {
namespace {

using M = SubsystemMode;
// The stage preset table of the foundation issue: rows are subsystems, columns stages; OFF means disabled.
constexpr std::array<std::array<M, 4>, kSubsystemCount> kPresets = {{
    {M::off, M::advisory, M::enforced, M::enforced},         // HFOS
    {M::off, M::off, M::advisory, M::enforced},              // PIL
    {M::off, M::off, M::advisory, M::enforced},              // PBA
    {M::off, M::advisory, M::advisory, M::enforced},         // PAL
    {M::off, M::observe, M::protective, M::protective},      // SELF_HEALING
    {M::off, M::off, M::advisory, M::enforced},              // MODEL_SUPERVISOR
    {M::off, M::off, M::advisory, M::enforced},              // UNIVERSE_OS
    {M::off, M::advisory, M::enforced, M::enforced},         // AELM
    {M::off, M::off, M::off, M::advisory},                   // RETRAINING
}};

std::string upper(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::toupper(c); });
  return r;
}

std::string trim(std::string_view s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::optional<bool> parse_bool(std::string_view text) {
  const std::string u = upper(trim(text));
  if (u == "TRUE" || u == "1" || u == "YES" || u == "ON") return true;
  if (u == "FALSE" || u == "0" || u == "NO" || u == "OFF") return false;
  return std::nullopt;
}

std::optional<std::int64_t> parse_int(std::string_view text) {
  const std::string t = trim(text);
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view text) {
  const std::string t = trim(text);
  double v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<SubsystemMode> parse_mode(std::string_view text) {
  const std::string u = upper(trim(text));
  for (auto m : {M::off, M::observe, M::advisory, M::enforced, M::protective})
    if (u == mode_name(m)) return m;
  return std::nullopt;
}

std::string fmt_double(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// One scalar variable: how to parse it into the Config and how to show its effective value.
struct Spec {
  std::string name;
  std::string allowed;  // shown in errors
  std::function<bool(Config&, std::string_view)> apply;  // false when the text is not allowed
  std::function<std::string(const Config&)> show;
  bool secret = false;
};

Spec bool_spec(std::string name, bool Config::*field) {
  return {std::move(name), "true|false (also 1/0, yes/no, on/off)",
          [field](Config& c, std::string_view t) {
            auto v = parse_bool(t);
            if (v) c.*field = *v;
            return v.has_value();
          },
          [field](const Config& c) { return std::string(c.*field ? "true" : "false"); }};
}

Spec int_spec(std::string name, std::int64_t Config::*field, std::int64_t lo, std::int64_t hi, std::string unit = "") {
  std::string allowed = "an integer" + unit + " in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return {std::move(name), std::move(allowed),
          [=](Config& c, std::string_view t) {
            auto v = parse_int(t);
            if (!v || *v < lo || *v > hi) return false;
            c.*field = *v;
            return true;
          },
          [field](const Config& c) { return std::to_string(c.*field); }};
}

Spec interval_spec(std::string name, std::int64_t Config::*field) {
  return int_spec(std::move(name), field, 1, 30LL * 86400, " of seconds");
}

Spec double_spec(std::string name, double Config::*field, double lo_exclusive, double hi, std::string what) {
  return {std::move(name), std::move(what),
          [=](Config& c, std::string_view t) {
            auto v = parse_double(t);
            if (!v || !(*v > lo_exclusive) || *v > hi) return false;
            c.*field = *v;
            return true;
          },
          [field](const Config& c) { return fmt_double(c.*field); }};
}

// A number in the closed range [lo, hi] (thresholds that may be 0 or negative).
Spec double_range_spec(std::string name, double Config::*field, double lo, double hi, std::string what) {
  return {std::move(name), std::move(what),
          [=](Config& c, std::string_view t) {
            auto v = parse_double(t);
            if (!v || *v < lo || *v > hi) return false;
            c.*field = *v;
            return true;
          },
          [field](const Config& c) { return fmt_double(c.*field); }};
}

std::vector<Spec> make_specs() {
  std::vector<Spec> s;
  s.push_back(interval_spec("QT_AI_HFOS_UPDATE_INTERVAL", &Config::hfos_update_interval));
  s.push_back(interval_spec("QT_AI_PIL_CLASSIFICATION_INTERVAL", &Config::pil_classification_interval));
  s.push_back(interval_spec("QT_AI_PBA_REBALANCE_INTERVAL", &Config::pba_rebalance_interval));
  s.push_back(interval_spec("QT_AI_PAL_ANALYSIS_INTERVAL", &Config::pal_analysis_interval));
  s.push_back(interval_spec("QT_AI_SELF_HEALING_CHECK_INTERVAL", &Config::self_healing_check_interval));
  s.push_back(interval_spec("QT_AI_MODEL_SUPERVISOR_EVAL_INTERVAL", &Config::model_supervisor_eval_interval));
  s.push_back(double_spec("QT_AI_PAL_MIN_R", &Config::pal_min_r, 0.0, 100.0, "a number of R multiples in (0, 100]"));
  s.push_back(double_spec("QT_AI_PAL_MIN_R_SCALE_IN", &Config::pal_min_r_scale_in, 0.0, 100.0, "a number of R multiples in (0, 100]"));
  s.push_back(bool_spec("QT_AI_UNIVERSE_DYNAMIC", &Config::universe_dynamic));
  s.push_back(bool_spec("QT_AI_AELM_SMART_EXEC", &Config::aelm_smart_exec));
  s.push_back(bool_spec("QT_AI_RETRAINING_AUTO_DEPLOY", &Config::retraining_auto_deploy));
  s.push_back(bool_spec("QT_AI_RISK_OS_ENABLED", &Config::risk_os_enabled));
  s.push_back(bool_spec("QT_AI_ORCHESTRATOR_ENABLED", &Config::orchestrator_enabled));
  s.push_back(bool_spec("QT_AI_EMERGENCY_BRAKE", &Config::emergency_brake));
  s.push_back(bool_spec("QT_AI_FAIL_SAFE", &Config::fail_safe));
  s.push_back(double_spec("QT_AI_MAX_DAILY_DD", &Config::max_daily_dd_pct, 0.0, 100.0, "a percentage in (0, 100]"));
  s.push_back(double_spec("QT_AI_MAX_OPEN_DD", &Config::max_open_dd_pct, 0.0, 100.0, "a percentage in (0, 100]"));
  Spec notional = double_spec("QT_RISK_MAX_NOTIONAL", &Config::risk_max_notional, 0.0, 1e15, "a quote amount in (0, 1e15]");
  notional.show = [](const Config& c) {  // "1000000", not the "1e+06" of the short form
    std::ostringstream os;
    os << std::setprecision(15) << c.risk_max_notional;
    return os.str();
  };
  s.push_back(std::move(notional));
  s.push_back(double_spec("QT_RISK_PRICE_COLLAR_PCT", &Config::risk_price_collar_pct, 0.0, 100.0, "a percentage in (0, 100]"));
  s.push_back(int_spec("QT_RISK_MAX_ORDERS_PER_MIN", &Config::risk_max_orders_per_min, 1, 1'000'000, " of orders"));
  s.push_back(int_spec("QT_RISK_STOP_COOLDOWN_S", &Config::risk_stop_cooldown_s, 0, 30LL * 86400, " of seconds"));
  s.push_back(int_spec("QT_RISK_STOP_GUARD_COUNT", &Config::risk_stop_guard_count, 0, 1000, " of stop-outs"));
  s.push_back(int_spec("QT_RISK_STOP_GUARD_WINDOW_S", &Config::risk_stop_guard_window_s, 1, 30LL * 86400, " of seconds"));
  s.push_back(int_spec("QT_RISK_STOP_GUARD_LOCK_S", &Config::risk_stop_guard_lock_s, 1, 30LL * 86400, " of seconds"));
  s.push_back(bool_spec("QT_MSC_ENABLED", &Config::msc_enabled));
  s.push_back(interval_spec("QT_MSC_UPDATE_INTERVAL", &Config::msc_update_interval));
  s.push_back(bool_spec("QT_MSC_AUTO_MODE", &Config::msc_auto_mode));
  s.push_back(bool_spec("QT_SG_AI_ENABLED", &Config::sg_enabled));
  s.push_back(int_spec("QT_SG_POPULATION_SIZE", &Config::sg_population_size, 2, 10'000'000));
  s.push_back(int_spec("QT_SG_GENERATIONS", &Config::sg_generations, 1, 1'000'000));
  s.push_back(int_spec("QT_SG_SHADOW_DAYS", &Config::sg_shadow_days, 1, 3650, " of days"));
  s.push_back(double_range_spec("QT_SG_PROMOTE_MIN_SHARPE", &Config::sg_promote_min_sharpe, -10.0, 50.0,
                                "an annualised Sharpe ratio in [-10, 50]"));
  s.push_back(double_range_spec("QT_SG_PROMOTE_MIN_WIN_RATE", &Config::sg_promote_min_win_rate, 0.0, 1.0, "a fraction in [0, 1]"));
  s.push_back(int_spec("QT_SG_PROMOTE_MIN_TRADES", &Config::sg_promote_min_trades, 0, 1'000'000, " of trades"));
  s.push_back(double_range_spec("QT_SG_LIVE_FLOOR_SHARPE", &Config::sg_live_floor_sharpe, -50.0, 50.0,
                                "an annualised Sharpe ratio in [-50, 50]"));
  s.push_back(interval_spec("QT_SG_REVIEW_INTERVAL", &Config::sg_review_interval));
  s.push_back(bool_spec("QT_CLM_ENABLED", &Config::clm_enabled));
  s.push_back({"QT_CLM_RETRAIN_SCHEDULE", "a 5-field cron expression such as '0 2 * * 0'",
               [](Config& c, std::string_view t) {
                 try {
                   c.clm_retrain_schedule = CronSchedule::parse(trim(t));
                   return true;
                 } catch (const std::invalid_argument&) {
                   return false;
                 }
               },
               [](const Config& c) { return c.clm_retrain_schedule.text(); }});
  s.push_back(int_spec("QT_CLM_SHADOW_DAYS", &Config::clm_shadow_days, 1, 3650, " of days"));
  s.push_back(bool_spec("QT_OPP_RANKER_ENABLED", &Config::opp_ranker_enabled));
  s.push_back(int_spec("QT_OPP_RANKER_TOP_N", &Config::opp_ranker_top_n, 1, 100'000));
  s.push_back(interval_spec("QT_OPP_RANKER_UPDATE_INTERVAL", &Config::opp_ranker_update_interval));
  s.push_back(bool_spec("QT_ANALYTICS_ENABLED", &Config::analytics_enabled));
  s.push_back({"QT_STATE_DIR", "a non-empty directory path",
               [](Config& c, std::string_view t) {
                 if (trim(t).empty()) return false;
                 c.state_dir = trim(t);
                 return true;
               },
               [](const Config& c) { return c.state_dir; }});
  s.push_back({"QT_DEVICE", "auto, cpu or cuda",
               [](Config& c, std::string_view t) {
                 try {
                   c.device = device_parse(trim(t), "QT_DEVICE");
                   return true;
                 } catch (const std::invalid_argument&) {
                   return false;
                 }
               },
               [](const Config& c) { return std::string(device_name(c.device)); }});
  s.push_back({"QT_API_TOKEN", "a token of at least 16 characters",
               [](Config& c, std::string_view t) {
                 if (trim(t).size() < 16) return false;
                 c.api_token = trim(t);
                 return true;
               },
               [](const Config& c) { return c.api_token.empty() ? std::string("(unset)") : std::string("(set, hidden)"); },
               true});
  s.push_back({"QT_EXCHANGE", "paper, binance-spot-testnet, binance-futures-testnet, binance-spot or binance-futures",
               [](Config& c, std::string_view t) {
                 std::string v = trim(t);
                 std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return ch == '_' ? '-' : std::tolower(ch); });
                 for (auto e : {ExchangeKind::paper, ExchangeKind::binance_spot_testnet, ExchangeKind::binance_futures_testnet,
                                ExchangeKind::binance_spot, ExchangeKind::binance_futures})
                   if (v == exchange_name(e)) {
                     c.exchange = e;
                     return true;
                   }
                 return false;
               },
               [](const Config& c) { return std::string(exchange_name(c.exchange)); }});
  // Position Intelligence Layer (PIL) and Profit Amplification Layer (PAL)
  s.push_back(double_range_spec("QT_AI_PIL_TOXIC_R", &Config::pil_toxic_r, -100.0, 0.0, "a number of R multiples in [-100, 0]"));
  s.push_back(int_spec("QT_AI_PIL_TOXIC_BARS", &Config::pil_toxic_bars, 1, 1'000'000, " of bars"));
  s.push_back(double_spec("QT_AI_PAL_PARTIAL_R", &Config::pal_partial_r, 0.0, 100.0, "a number of R multiples in (0, 100]"));
  // AI-HFOS (runtime/subsystems/ai_hfos.hpp)
  s.push_back(double_spec("QT_AI_HFOS_SAFE_DD", &Config::hfos_safe_dd, 0.0, 1.0, "a fraction of the drawdown limit in (0, 1]"));
  s.push_back(double_spec("QT_AI_HFOS_CRITICAL_DD", &Config::hfos_critical_dd, 0.0, 1.0, "a fraction of the drawdown limit in (0, 1]"));
  s.push_back(double_spec("QT_AI_HFOS_MAX_REJECT_RATE", &Config::hfos_max_reject_rate, 0.0, 1.0, "a fraction in (0, 1]"));
  s.push_back(double_range_spec("QT_AI_HFOS_SAFE_SCALE", &Config::hfos_safe_scale, 0.6, 1.0, "a size scale in [0.6, 1]"));
  s.push_back(double_range_spec("QT_AI_HFOS_CRITICAL_SCALE", &Config::hfos_critical_scale, 0.6, 1.0, "a size scale in [0.6, 1]"));
  s.push_back(double_spec("QT_AI_HFOS_MAX_TRADE_PCT", &Config::hfos_max_trade_pct, 0.0, 1000.0, "a percentage of equity in (0, 1000]"));
  // Portfolio Balancer AI (runtime/subsystems/portfolio_balancer.hpp)
  s.push_back(double_spec("QT_AI_PBA_MAX_GROSS_EXPOSURE", &Config::pba_max_gross_exposure, 0.0, 125.0, "a multiple of equity in (0, 125]"));
  s.push_back(double_spec("QT_AI_PBA_MAX_NET_EXPOSURE", &Config::pba_max_net_exposure, 0.0, 125.0, "a multiple of equity in (0, 125]"));
  s.push_back(double_spec("QT_AI_PBA_MAX_SYMBOL_EXPOSURE_PCT", &Config::pba_max_symbol_exposure_pct, 0.0, 12500.0,
                          "a percentage of equity in (0, 12500]"));
  s.push_back(double_spec("QT_AI_PBA_MAX_CLUSTER_EXPOSURE_PCT", &Config::pba_max_cluster_exposure_pct, 0.0, 12500.0,
                          "a percentage of equity in (0, 12500]"));
  s.push_back(double_spec("QT_AI_PBA_CLUSTER_CORRELATION", &Config::pba_cluster_correlation, 0.0, 1.0, "a correlation in (0, 1]"));
  s.push_back(int_spec("QT_AI_PBA_CORRELATION_WINDOW", &Config::pba_correlation_window, 8, 10'000, " of bars"));
  // Self-Healing
  s.push_back(int_spec("QT_AI_SELF_HEALING_STALE_BARS", &Config::self_healing_stale_bars, 1, 1000, " of bar intervals"));
  s.push_back(double_spec("QT_AI_SELF_HEALING_MAX_ERROR_RATE", &Config::self_healing_max_error_rate, 0.0, 1.0, "a fraction in (0, 1]"));
  s.push_back(int_spec("QT_AI_SELF_HEALING_RESUME_CHECKS", &Config::self_healing_resume_checks, 1, 1000, " of checks"));
  s.push_back(int_spec("QT_AI_SELF_HEALING_MAX_RESTARTS", &Config::self_healing_max_restarts, 0, 100, " of restarts"));
  s.push_back(double_spec("QT_AI_SELF_HEALING_MAX_LATENCY_S", &Config::self_healing_max_latency_s, 0.0, 86400.0, "seconds in (0, 86400]"));
  s.push_back(double_spec("QT_AI_SELF_HEALING_MAX_CLOCK_DRIFT_MS", &Config::self_healing_max_clock_drift_ms, 0.0, 3.6e6,
                          "milliseconds in (0, 3600000]"));
  // Execution Layer Manager
  s.push_back(double_spec("QT_AI_AELM_MAX_PARTICIPATION", &Config::aelm_max_participation, 0.0, 1.0, "a fraction in (0, 1]"));
  s.push_back(int_spec("QT_AI_AELM_MAX_SLICES", &Config::aelm_max_slices, 1, 1000, " of slices"));
  s.push_back(double_spec("QT_AI_AELM_MAX_SLIPPAGE_BPS", &Config::aelm_max_slippage_bps, 0.0, 10000.0, "basis points in (0, 10000]"));
  s.push_back(int_spec("QT_AI_AELM_COOLDOWN_BARS", &Config::aelm_cooldown_bars, 0, 100000, " of bars"));
  s.push_back(double_spec("QT_AI_AELM_LIMIT_VOLATILITY_PCT", &Config::aelm_limit_volatility_pct, 0.0, 100.0, "a percentage in (0, 100]"));
  s.push_back(double_spec("QT_AI_AELM_LIMIT_SPREAD_BPS", &Config::aelm_limit_spread_bps, 0.0, 10000.0, "basis points in (0, 10000]"));
  // Notifications: the webhook URL carries a token, so it is a secret (shown as scheme and host only).
  s.push_back({"QT_NOTIFY_WEBHOOK_URL", "http(s)://host[:port]/path (or empty: no notifications)",
               [](Config& c, std::string_view t) {
                 const std::string v = trim(t);
                 const std::size_t scheme = v.starts_with("https://") ? 8 : v.starts_with("http://") ? 7 : 0;
                 if (v.empty()) return c.notify_webhook_url.clear(), true;
                 // The full check (port, characters) is webhook_url_parse() in api/notify, run when the notifier starts.
                 const std::size_t slash = scheme ? v.find('/', scheme) : std::string::npos;
                 if (slash == std::string::npos || slash == scheme || slash + 1 >= v.size() ||
                     v.find_first_of(" \t@#", scheme) != std::string::npos)
                   return false;
                 const std::string authority = v.substr(scheme, slash - scheme);
                 const std::size_t colon = authority.rfind(':');
                 if (colon != std::string::npos && authority.back() != ']') {
                   const auto port = parse_int(authority.substr(colon + 1));
                   if (colon == 0 || !port || *port < 1 || *port > 65535) return false;
                 }
                 c.notify_webhook_url = v;
                 return true;
               },
               [](const Config& c) {
                 if (c.notify_webhook_url.empty()) return std::string("(unset)");
                 const std::size_t slash = c.notify_webhook_url.find('/', c.notify_webhook_url.find("//") + 2);
                 return c.notify_webhook_url.substr(0, slash) + "/... (path hidden)";
               },
               true});
  s.push_back(int_spec("QT_NOTIFY_RATE_PER_MIN", &Config::notify_rate_per_min, 1, 600, " of posts"));
  // Binance connector (api/binance/, docs/EXCHANGE.md). QT_BINANCE_ENV picks the environment of a binance-spot or
  // binance-futures QT_EXCHANGE (applied after it: specs are applied in order); keys are secrets, never shown.
  s.push_back({"QT_BINANCE_ENV", "testnet or mainnet (matching a QT_EXCHANGE that already names one)",
               [](Config& c, std::string_view t) {
                 const std::string v = trim(t);
                 if (v != "testnet" && v != "mainnet") return false;
                 const bool testnet = v == "testnet";
                 c.binance_env = v;
                 switch (c.exchange) {
                   case ExchangeKind::paper: return true;
                   case ExchangeKind::binance_spot:
                   case ExchangeKind::binance_spot_testnet:
                     if (c.exchange == ExchangeKind::binance_spot_testnet && !testnet) return false;
                     c.exchange = testnet ? ExchangeKind::binance_spot_testnet : ExchangeKind::binance_spot;
                     return true;
                   case ExchangeKind::binance_futures:
                   case ExchangeKind::binance_futures_testnet:
                     if (c.exchange == ExchangeKind::binance_futures_testnet && !testnet) return false;
                     c.exchange = testnet ? ExchangeKind::binance_futures_testnet : ExchangeKind::binance_futures;
                     return true;
                 }
                 return false;
               },
               [](const Config& c) { return c.binance_env.empty() ? std::string("(from QT_EXCHANGE)") : c.binance_env; }});
  const auto secret_spec = [](std::string name, std::string Config::*field, std::string what) {
    return Spec{std::move(name), std::move(what),
                [field](Config& c, std::string_view t) {
                  c.*field = trim(t);
                  return true;
                },
                [field](const Config& c) { return (c.*field).empty() ? std::string("(unset)") : std::string("(set, hidden)"); }, true};
  };
  s.push_back(secret_spec("QT_BINANCE_API_KEY", &Config::binance_api_key, "the API key"));
  s.push_back(secret_spec("QT_BINANCE_API_SECRET", &Config::binance_api_secret, "the API secret (HMAC keys)"));
  s.push_back({"QT_BINANCE_KEY_ENV", "testnet or mainnet: where QT_BINANCE_API_KEY was created",
               [](Config& c, std::string_view t) {
                 const std::string v = trim(t);
                 if (v != "testnet" && v != "mainnet") return false;
                 c.binance_key_env = v;
                 return true;
               },
               [](const Config& c) { return c.binance_key_env.empty() ? std::string("(unset)") : c.binance_key_env; }});
  s.push_back({"QT_BINANCE_KEY_FILE", "a path to a key file readable only by its owner (mode 0600)",
               [](Config& c, std::string_view t) {
                 c.binance_key_file = trim(t);
                 return !c.binance_key_file.empty();
               },
               [](const Config& c) { return c.binance_key_file.empty() ? std::string("(unset)") : c.binance_key_file; }});
  s.push_back({"QT_BINANCE_SYMBOLS", "comma-separated exchange symbols (BTCUSDT,ETHUSDT)",
               [](Config& c, std::string_view t) {
                 c.binance_symbols.clear();
                 std::string cur;
                 for (char ch : std::string(t) + ",") {
                   if (ch == ',') {
                     cur = trim(cur);
                     if (!cur.empty()) c.binance_symbols.push_back(cur);
                     cur.clear();
                   } else if (std::isalnum(static_cast<unsigned char>(ch)) || ch == ' ' || ch == '_' || ch == '-') {
                     cur.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
                   } else {
                     return false;
                   }
                 }
                 return !c.binance_symbols.empty();
               },
               [](const Config& c) {
                 std::string out;
                 for (const auto& x : c.binance_symbols) out += (out.empty() ? "" : ",") + x;
                 return out.empty() ? std::string("(all listed)") : out;
               }});
  s.push_back(int_spec("QT_BINANCE_RECV_WINDOW_MS", &Config::binance_recv_window_ms, 1, 60'000, " of milliseconds"));
  s.push_back(int_spec("QT_BINANCE_DEAD_MAN_S", &Config::binance_dead_man_s, 0, 3'600, " of seconds (0: off)"));
  // The live run (`qtos serve --exchange binance-*`): its kline interval, and the venue's addresses for operations and
  // tests (a local fake venue, a proxy): unset means Binance's own for QT_EXCHANGE/QT_BINANCE_ENV.
  s.push_back({"QT_BINANCE_INTERVAL", "a kline interval: 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h or 1d",
               [](Config& c, std::string_view t) {
                 static const std::set<std::string> ok = {"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"};
                 if (!ok.count(trim(t))) return false;
                 c.binance_interval = trim(t);
                 return true;
               },
               [](const Config& c) { return c.binance_interval; }});
  const auto url_spec = [](std::string name, std::string Config::*field, std::string schemes) {
    return Spec{std::move(name), "a URL " + schemes + "host[:port] (unset: Binance's)",
                [field, schemes](Config& c, std::string_view t) {
                  const std::string v = trim(t);
                  bool ok = false;
                  for (const char* p : {"https://", "http://", "wss://", "ws://"})
                    ok = ok || (v.rfind(p, 0) == 0 && v.size() > std::string(p).size() && schemes.find(p) != std::string::npos);
                  if (ok) c.*field = v;
                  return ok;
                },
                [field](const Config& c) { return (c.*field).empty() ? std::string("(Binance's)") : c.*field; }};
  };
  s.push_back(url_spec("QT_BINANCE_REST_URL", &Config::binance_rest_url, "https:// or http:// (loopback tests)"));
  s.push_back(url_spec("QT_BINANCE_STREAM_URL", &Config::binance_stream_url, "wss:// or https://"));
  s.push_back(url_spec("QT_BINANCE_WS_API_URL", &Config::binance_ws_api_url, "wss:// or https://"));
  s.push_back({"QT_BINANCE_CA_FILE", "a PEM file of certificates to trust for the venue (tests: a local fake venue's)",
               [](Config& c, std::string_view t) {
                 c.binance_ca_file = trim(t);
                 return !c.binance_ca_file.empty();
               },
               [](const Config& c) { return c.binance_ca_file.empty() ? std::string("(the system store)") : c.binance_ca_file; }});
  // Markets that close: what a missing bar does to indicators, features and backtests
  s.push_back({"QT_GAPS", "skip or reset-after:N (N an integer in [0, 1000000])",
               [](Config& c, std::string_view t) {
                 try {
                   c.gaps = gap_policy_parse(trim(t), "QT_GAPS");
                   return true;
                 } catch (const std::invalid_argument&) {
                   return false;
                 }
               },
               [](const Config& c) { return gap_policy_text(c.gaps); }});
  // Scale-out: the URL may carry a password, so it is a secret (shown without it). The full check (port, database)
  // is redis_url_parse() in api/redis, run when a verb connects.
  s.push_back({"QT_REDIS_URL", "redis://[:password@]host[:port][/db] (or empty: one node, SQLite)",
               [](Config& c, std::string_view t) {
                 const std::string v = trim(t);
                 if (v.empty()) return c.redis_url.clear(), true;
                 if (!v.starts_with("redis://") || v.size() == 8 || v.find_first_of(" \t") != std::string::npos) return false;
                 c.redis_url = v;
                 return true;
               },
               [](const Config& c) {
                 if (c.redis_url.empty()) return std::string("(unset)");
                 const std::size_t at = c.redis_url.rfind('@');
                 return at == std::string::npos ? c.redis_url : "redis://***" + c.redis_url.substr(at);
               },
               true});
  return s;
}

const std::vector<Spec>& specs() {
  static const std::vector<Spec> s = make_specs();
  return s;
}

}  // namespace

SubsystemMode stage_preset(Subsystem subsystem, IntegrationStage stage) {
  return kPresets[static_cast<std::size_t>(subsystem)][static_cast<std::size_t>(stage)];
}

std::string_view stage_name(IntegrationStage s) { return enum_name(s); }
std::string_view mode_name(SubsystemMode m) { return enum_name(m); }
std::string_view subsystem_name(Subsystem s) { return enum_name(s); }
std::string_view exchange_name(ExchangeKind e) { return enum_name(e); }
std::string_view source_name(ValueSource s) { return enum_name(s); }
bool exchange_is_simulated(ExchangeKind e) {
  return e == ExchangeKind::paper || e == ExchangeKind::binance_spot_testnet || e == ExchangeKind::binance_futures_testnet;
}

ConfigSources ConfigSources::from_process_environment() {
  ConfigSources s;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("QT_", 0) != 0) continue;
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    s.environment.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return s;
}

std::map<std::string, std::string> env_file_read(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ConfigError(".env file '" + path + "' is a directory; expected a file of QT_NAME=VALUE lines");
  std::ifstream in(path);
  if (!in) throw ConfigError(".env file '" + path + "' cannot be read");
  std::map<std::string, std::string> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t.rfind("export ", 0) == 0) t = trim(t.substr(7));
    const auto eq = t.find('=');
    const std::string key = eq == std::string::npos ? "" : trim(t.substr(0, eq));
    const bool key_ok = !key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
    if (!key_ok)
      throw ConfigError(path + ":" + std::to_string(lineno) + ": expected KEY=VALUE, got '" + line + "'");
    std::string value = trim(t.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')) {
      if (value.back() != value.front())
        throw ConfigError(path + ":" + std::to_string(lineno) + ": unterminated quote in value of " + key);
      value = value.substr(1, value.size() - 2);
    } else if (auto hash = value.find(" #"); hash != std::string::npos) {
      value = trim(value.substr(0, hash));  // trailing comment on an unquoted value
    }
    if (key.rfind("QT_", 0) == 0) out[key] = value;
  }
  return out;
}

std::vector<std::string> config_known_names() {
  std::vector<std::string> names = {"QT_AI_INTEGRATION_STAGE"};
  for (std::size_t i = 0; i < kSubsystemCount; ++i) {
    const std::string x(enum_name(static_cast<Subsystem>(i)));
    names.push_back("QT_AI_" + x + "_ENABLED");
    names.push_back("QT_AI_" + x + "_MODE");
  }
  for (const auto& s : specs()) names.push_back(s.name);
  return names;
}

Config config_load(const ConfigSources& src) {
  Config c;
  std::vector<std::string> errors;
  const std::string file_label = src.env_file_path.empty() ? std::string(".env file") : src.env_file_path;
  auto lookup = [&](const std::string& name) -> std::optional<std::pair<std::string, ValueSource>> {
    if (auto it = src.environment.find(name); it != src.environment.end()) return std::pair{it->second, ValueSource::environment};
    if (auto it = src.env_file.find(name); it != src.env_file.end()) return std::pair{it->second, ValueSource::env_file};
    return std::nullopt;
  };
  auto bad = [&](const std::string& name, const std::string& value, ValueSource from, const std::string& allowed) {
    errors.push_back(name + "='" + value + "' (from " + (from == ValueSource::env_file ? file_label : "environment") +
                     ") is not allowed: expected " + allowed);
  };

  // Stage first: it decides the presets.
  if (auto v = lookup("QT_AI_INTEGRATION_STAGE")) {
    const std::string u = upper(trim(v->first));
    bool found = false;
    for (auto st : {IntegrationStage::observation, IntegrationStage::partial, IntegrationStage::coordination, IntegrationStage::autonomy})
      if (u == stage_name(st)) {
        c.stage = st;
        found = true;
      }
    if (!found) bad("QT_AI_INTEGRATION_STAGE", v->first, v->second, "OBSERVATION, PARTIAL, COORDINATION or AUTONOMY");
    c.entries["QT_AI_INTEGRATION_STAGE"] = {std::string(stage_name(c.stage)), v->second};
  } else {
    c.entries["QT_AI_INTEGRATION_STAGE"] = {std::string(stage_name(c.stage)), ValueSource::default_value};
  }

  for (const auto& s : specs()) {
    ValueSource from = ValueSource::default_value;
    if (auto v = lookup(s.name)) {
      from = v->second;
      if (!s.apply(c, v->first)) bad(s.name, s.secret ? std::string("(hidden)") : v->first, v->second, s.allowed);
    }
    c.entries[s.name] = {s.show(c), from};
  }

  // Subsystems: preset, then explicit flag and mode, then the stage rules.
  const auto stage_col = static_cast<std::size_t>(c.stage);
  for (std::size_t i = 0; i < kSubsystemCount; ++i) {
    const std::string x(enum_name(static_cast<Subsystem>(i)));
    const std::string en_name = "QT_AI_" + x + "_ENABLED", mode_name_var = "QT_AI_" + x + "_MODE";
    SubsystemConfig& sc = c.subsystems[i];
    const M preset = kPresets[i][stage_col];
    sc.enabled = preset != M::off;
    sc.mode = preset;
    sc.source = preset != M::off ? ValueSource::stage_preset : ValueSource::default_value;
    ValueSource en_from = sc.source;
    if (auto v = lookup(en_name)) {
      en_from = v->second;
      if (auto b = parse_bool(v->first)) {
        sc.enabled = *b;
        if (sc.enabled && sc.mode == M::off) sc.source = v->second;
      } else {
        bad(en_name, v->first, v->second, "true|false (also 1/0, yes/no, on/off)");
      }
    }
    if (auto v = lookup(mode_name_var)) {
      if (auto m = parse_mode(v->first)) {
        if (*m == M::protective && static_cast<Subsystem>(i) != Subsystem::self_healing) {
          bad(mode_name_var, v->first, v->second, "OFF, OBSERVE, ADVISORY or ENFORCED (PROTECTIVE is for SELF_HEALING only)");
        } else if (!sc.enabled) {
          c.warnings.push_back(mode_name_var + "=" + v->first + " has no effect: " + x + " is not enabled (set " + en_name + "=true)");
          sc.note = "mode ignored: not enabled";
        } else {
          sc.mode = *m;
          sc.source = v->second;
        }
      } else {
        bad(mode_name_var, v->first, v->second,
            static_cast<Subsystem>(i) == Subsystem::self_healing ? "OFF, OBSERVE, ADVISORY, ENFORCED or PROTECTIVE"
                                                                  : "OFF, OBSERVE, ADVISORY or ENFORCED");
      }
    }
    if (sc.enabled && sc.mode == M::off && !lookup(mode_name_var)) {
      sc.mode = M::observe;  // enabled with no mode and no preset: the safest active mode
      sc.note = "enabled without a mode: OBSERVE";
    }
    if (!sc.enabled) sc.mode = M::off;
    if (sc.enabled && sc.mode == M::off) {
      sc.enabled = false;
      sc.note = "mode OFF";
    }
    if (c.stage == IntegrationStage::observation && sc.mode > M::observe) {
      sc.note = "capped at OBSERVE by stage OBSERVATION (asked " + std::string(mode_name(sc.mode)) + ")";
      sc.mode = M::observe;
      sc.source = ValueSource::stage_cap;
    }
    c.entries[en_name] = {sc.enabled ? "true" : "false", en_from};
    c.entries[mode_name_var] = {std::string(mode_name(sc.mode)), sc.source};
  }

  if (c.stage == IntegrationStage::autonomy && !exchange_is_simulated(c.exchange))
    errors.push_back("QT_AI_INTEGRATION_STAGE=AUTONOMY is refused with QT_EXCHANGE=" + std::string(exchange_name(c.exchange)) +
                     ": AUTONOMY runs only against paper or a testnet exchange");

  // Unknown names: an error when it looks like a typo of a known one, a warning otherwise (Qt also reads QT_*).
  const auto known = config_known_names();
  auto check_unknown = [&](const std::map<std::string, std::string>& m, const std::string& where) {
    for (const auto& [name, value] : m) {
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      std::string best;
      std::size_t best_d = 1000;
      for (const auto& k : known) {
        const std::size_t d = edit_distance(name, k);
        if (d < best_d) best_d = d, best = k;
      }
      const std::size_t limit = std::max<std::size_t>(2, name.size() / 8);
      if (best_d <= limit)
        errors.push_back(name + " (from " + where + ") is not a qtos setting: did you mean " + best + "?");
      else
        c.warnings.push_back(name + " (from " + where + ") is not a qtos setting; ignored");
    }
  };
  check_unknown(src.environment, "environment");
  check_unknown(src.env_file, file_label);

  if (!errors.empty()) {
    std::string msg = "invalid configuration:";
    for (const auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
  return c;
}

}  // namespace qtos
