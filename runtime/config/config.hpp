#pragma once
/// @file The one typed configuration of qtos, read from the environment and an optional .env file.
/// Variable names are those of the design documents; see docs/CONFIG.md for the whole table.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/backend/device.hpp"
#include "cpu/kernels/gaps.hpp"
#include "cpu/util/enum_names.hpp"
#include "runtime/clock/cron.hpp"

namespace qtos {

/// How far the AI subsystems may act on trades.
enum class IntegrationStage { observation, partial, coordination, autonomy };
QTOS_ENUM_NAMES(IntegrationStage, "OBSERVATION", "PARTIAL", "COORDINATION", "AUTONOMY");
/// What a subsystem may do: nothing, log, soft adjustments, block/force; PROTECTIVE is Self-Healing's alone.
enum class SubsystemMode { off, observe, advisory, enforced, protective };
QTOS_ENUM_NAMES(SubsystemMode, "OFF", "OBSERVE", "ADVISORY", "ENFORCED", "PROTECTIVE");
/// The subsystems with an enabled flag and a mode (QT_AI_<X>_ENABLED / QT_AI_<X>_MODE).
enum class Subsystem { hfos, pil, pba, pal, self_healing, model_supervisor, universe_os, aelm, retraining };
QTOS_ENUM_NAMES(Subsystem, "HFOS", "PIL", "PBA", "PAL", "SELF_HEALING", "MODEL_SUPERVISOR", "UNIVERSE_OS", "AELM", "RETRAINING");
inline constexpr std::size_t kSubsystemCount = EnumNames<Subsystem>::kCount;
/// Where orders go.
enum class ExchangeKind { paper, binance_spot_testnet, binance_futures_testnet, binance_spot, binance_futures };
QTOS_ENUM_NAMES(ExchangeKind, "paper", "binance-spot-testnet", "binance-futures-testnet", "binance-spot", "binance-futures");
/// Where an effective value came from, in increasing precedence (a stage cap is applied last).
enum class ValueSource { default_value, stage_preset, env_file, environment, stage_cap };
QTOS_ENUM_NAMES(ValueSource, "default", "stage preset", ".env file", "environment", "stage cap");

std::string_view stage_name(IntegrationStage s);          ///< "OBSERVATION", ...
std::string_view mode_name(SubsystemMode m);              ///< "OFF", "OBSERVE", ...
std::string_view subsystem_name(Subsystem s);             ///< "HFOS", "SELF_HEALING", ...
std::string_view exchange_name(ExchangeKind e);           ///< "paper", "binance-spot-testnet", ...
std::string_view source_name(ValueSource s);              ///< "default", "stage preset", ".env file", ...
/// True for the paper exchange and the Binance testnets.
bool exchange_is_simulated(ExchangeKind e);
/// The mode a stage's preset gives a subsystem (before any explicit QT_AI_<X>_MODE), e.g. AI-HFOS ENFORCED in
/// COORDINATION; the table is docs/CONFIG.md's.
SubsystemMode stage_preset(Subsystem subsystem, IntegrationStage stage);

/// A subsystem's effective switch and mode.
struct SubsystemConfig {
  bool enabled = false;
  SubsystemMode mode = SubsystemMode::off;  ///< OFF whenever !enabled
  ValueSource source = ValueSource::default_value;  ///< where the mode came from
  std::string note;  ///< why the effective value differs from what was asked, if it does
  /// True when the subsystem runs at all.
  bool active() const { return enabled && mode != SubsystemMode::off; }
};

/// The effective configuration. Plain data; build it with config_load().
struct Config {
  IntegrationStage stage = IntegrationStage::observation;
  std::array<SubsystemConfig, kSubsystemCount> subsystems{};

  // periodic intervals, seconds
  std::int64_t hfos_update_interval = 60;
  std::int64_t pil_classification_interval = 300;
  std::int64_t pba_rebalance_interval = 600;
  std::int64_t pal_analysis_interval = 900;
  std::int64_t self_healing_check_interval = 120;
  std::int64_t model_supervisor_eval_interval = 3600;
  double pal_min_r = 1.0;
  double pal_min_r_scale_in = 1.5;
  // Position Intelligence Layer (PIL) and Profit Amplification Layer (PAL), docs/subsystems/PIL.md and PAL.md
  double pil_toxic_r = -0.75;              ///< QT_AI_PIL_TOXIC_R: at or below this R with the thesis gone: TOXIC
  std::int64_t pil_toxic_bars = 48;        ///< QT_AI_PIL_TOXIC_BARS: this many bars losing with the thesis gone: TOXIC
  double pal_partial_r = 3.0;              ///< QT_AI_PAL_PARTIAL_R: take part of the profit at this R
  bool universe_dynamic = false;
  bool aelm_smart_exec = false;
  bool retraining_auto_deploy = false;

  // protection
  bool risk_os_enabled = true;
  bool orchestrator_enabled = true;
  bool emergency_brake = false;
  bool fail_safe = true;
  double max_daily_dd_pct = 5.0;
  double max_open_dd_pct = 10.0;

  // Risk OS limits (runtime/risk/risk_os.hpp, docs/TRADING.md)
  double risk_max_notional = 1'000'000;       ///< QT_RISK_MAX_NOTIONAL: quote notional per order
  double risk_price_collar_pct = 10.0;        ///< QT_RISK_PRICE_COLLAR_PCT: limit/stop price band around the last price
  std::int64_t risk_max_orders_per_min = 600; ///< QT_RISK_MAX_ORDERS_PER_MIN: entries per 60 s of the clock
  std::int64_t risk_stop_cooldown_s = 0;      ///< QT_RISK_STOP_COOLDOWN_S: no entry on a stopped-out symbol (0: off)
  std::int64_t risk_stop_guard_count = 0;     ///< QT_RISK_STOP_GUARD_COUNT: stop-outs that lock all entries (0: off)
  std::int64_t risk_stop_guard_window_s = 3600;  ///< QT_RISK_STOP_GUARD_WINDOW_S: window the stop-outs are counted in
  std::int64_t risk_stop_guard_lock_s = 3600;    ///< QT_RISK_STOP_GUARD_LOCK_S: how long the lock lasts

  // Meta Strategy Controller, Strategy Generator, Continuous Learning, Opportunity Ranker, Analytics
  bool msc_enabled = false;
  std::int64_t msc_update_interval = 300;
  bool msc_auto_mode = false;
  bool sg_enabled = false;
  std::int64_t sg_population_size = 50;
  std::int64_t sg_generations = 100;
  std::int64_t sg_shadow_days = 7;
  double sg_promote_min_sharpe = 2.0;     ///< annualised shadow Sharpe a strategy must beat to go LIVE
  double sg_promote_min_win_rate = 0.65;  ///< shadow win rate it must beat
  std::int64_t sg_promote_min_trades = 10;  ///< closed shadow trades it needs at least
  double sg_live_floor_sharpe = 0.0;      ///< a LIVE strategy below this Sharpe is retired
  std::int64_t sg_review_interval = 3600; ///< seconds between promotion/retirement reviews
  bool clm_enabled = false;
  CronSchedule clm_retrain_schedule = CronSchedule::parse("0 2 * * 0");
  std::int64_t clm_shadow_days = 7;
  bool opp_ranker_enabled = false;
  std::int64_t opp_ranker_top_n = 20;
  std::int64_t opp_ranker_update_interval = 3600;
  bool analytics_enabled = false;

  // AI-HFOS (runtime/subsystems/ai_hfos.hpp, docs/subsystems/AI-HFOS.md)
  double hfos_safe_dd = 0.5;          ///< QT_AI_HFOS_SAFE_DD: drawdown as a fraction of the policy's limit that means SAFE
  double hfos_critical_dd = 0.8;      ///< QT_AI_HFOS_CRITICAL_DD: ... that means CRITICAL (no new trades)
  double hfos_max_reject_rate = 0.2;  ///< QT_AI_HFOS_MAX_REJECT_RATE: venue rejects / orders over the last hour: SAFE
  double hfos_safe_scale = 0.75;      ///< QT_AI_HFOS_SAFE_SCALE: position-size scale in SAFE
  double hfos_critical_scale = 0.6;   ///< QT_AI_HFOS_CRITICAL_SCALE: position-size scale in CRITICAL
  double hfos_max_trade_pct = 20;     ///< QT_AI_HFOS_MAX_TRADE_PCT: one trade's cap in SAFE, percent of equity

  // Portfolio Balancer AI (runtime/subsystems/portfolio_balancer.hpp, docs/subsystems/PBA.md)
  double pba_max_gross_exposure = 2.0;       ///< QT_AI_PBA_MAX_GROSS_EXPOSURE: gross notional, multiple of equity
  double pba_max_net_exposure = 1.5;         ///< QT_AI_PBA_MAX_NET_EXPOSURE: |long - short| notional, multiple of equity
  double pba_max_symbol_exposure_pct = 20;   ///< QT_AI_PBA_MAX_SYMBOL_EXPOSURE_PCT: one symbol, percent of equity
  double pba_max_cluster_exposure_pct = 40;  ///< QT_AI_PBA_MAX_CLUSTER_EXPOSURE_PCT: one correlation cluster, percent
  double pba_cluster_correlation = 0.7;      ///< QT_AI_PBA_CLUSTER_CORRELATION: return correlation that joins a cluster
  std::int64_t pba_correlation_window = 64;  ///< QT_AI_PBA_CORRELATION_WINDOW: bars of returns the correlation uses

  // the project's own
  std::string state_dir = "state";
  DeviceKind device = DeviceKind::auto_select;
  std::string api_token;
  ExchangeKind exchange = ExchangeKind::paper;

  // Self-Healing (runtime/subsystems/self_healing.hpp, docs/subsystems/SELF_HEALING.md)
  std::int64_t self_healing_stale_bars = 3;        ///< QT_AI_SELF_HEALING_STALE_BARS: market data older than this many bar intervals is stale
  double self_healing_max_error_rate = 0.5;        ///< QT_AI_SELF_HEALING_MAX_ERROR_RATE: venue rejections / orders above this fail
  std::int64_t self_healing_resume_checks = 2;     ///< QT_AI_SELF_HEALING_RESUME_CHECKS: consecutive clear checks before RESUME
  std::int64_t self_healing_max_restarts = 3;      ///< QT_AI_SELF_HEALING_MAX_RESTARTS: restarts of a faulted service before giving up
  double self_healing_max_latency_s = 30;          ///< QT_AI_SELF_HEALING_MAX_LATENCY_S: submit-to-fill time (beyond one bar) that warns
  double self_healing_max_clock_drift_ms = 1000;   ///< QT_AI_SELF_HEALING_MAX_CLOCK_DRIFT_MS: live clock vs system clock that warns

  // Execution Layer Manager (runtime/subsystems/execution_layer.hpp, docs/subsystems/AELM.md)
  double aelm_max_participation = 0.05;            ///< QT_AI_AELM_MAX_PARTICIPATION: largest slice, fraction of the average bar quote volume
  std::int64_t aelm_max_slices = 10;               ///< QT_AI_AELM_MAX_SLICES: most TWAP slices of one entry
  double aelm_max_slippage_bps = 30;               ///< QT_AI_AELM_MAX_SLIPPAGE_BPS: an entry fill worse than this breaches
  std::int64_t aelm_cooldown_bars = 12;            ///< QT_AI_AELM_COOLDOWN_BARS: bars without entries on a symbol after a breach
  double aelm_limit_volatility_pct = 4.0;          ///< QT_AI_AELM_LIMIT_VOLATILITY_PCT: ATR % of price above which entries go LIMIT
  double aelm_limit_spread_bps = 100;              ///< QT_AI_AELM_LIMIT_SPREAD_BPS: spread proxy above which entries go LIMIT

  // Notifications (api/notify/webhook_notifier.hpp, README "Deployment")
  std::string notify_webhook_url;            ///< QT_NOTIFY_WEBHOOK_URL: http(s)://host[:port]/path; empty: no notifications (secret)
  std::int64_t notify_rate_per_min = 20;     ///< QT_NOTIFY_RATE_PER_MIN: posts per minute; more are combined into one

  // Binance connector (api/binance/, docs/EXCHANGE.md)
  std::string binance_env;                   ///< QT_BINANCE_ENV: testnet|mainnet ("" : as QT_EXCHANGE says)
  std::string binance_api_key;               ///< QT_BINANCE_API_KEY (secret)
  std::string binance_api_secret;            ///< QT_BINANCE_API_SECRET (secret)
  std::string binance_key_env;               ///< QT_BINANCE_KEY_ENV: the environment the key belongs to
  std::string binance_key_file;              ///< QT_BINANCE_KEY_FILE: key file (mode 0600) instead of the two variables
  std::vector<std::string> binance_symbols;  ///< QT_BINANCE_SYMBOLS: symbols traded (empty: all listed)
  std::int64_t binance_recv_window_ms = 5000;  ///< QT_BINANCE_RECV_WINDOW_MS: recvWindow of signed requests
  std::int64_t binance_dead_man_s = 0;       ///< QT_BINANCE_DEAD_MAN_S: USD-M countdown cancel-all (0: off)
  std::string binance_interval = "1h";       ///< QT_BINANCE_INTERVAL: kline interval of the live run
  std::string binance_rest_url;              ///< QT_BINANCE_REST_URL: REST base instead of the venue's ("" : Binance's)
  std::string binance_stream_url;            ///< QT_BINANCE_STREAM_URL: market/user stream host ("" : Binance's)
  std::string binance_ws_api_url;            ///< QT_BINANCE_WS_API_URL: spot WebSocket API host ("" : Binance's)
  std::string binance_ca_file;               ///< QT_BINANCE_CA_FILE: PEM bundle to trust instead of the system store
  // Markets that close (cpu/kernels/gaps.hpp, docs/INDICATORS.md)
  kernels::GapPolicy gaps{};                 ///< QT_GAPS: skip (default) or reset-after:N: --gaps' default, qtos serve's policy
  // Scale-out (api/redis, docs/SCALE_OUT.md)
  std::string redis_url;  ///< QT_REDIS_URL: redis://[:password@]host[:port][/db] for workers and shared state; empty: one node, SQLite (secret)

  /// One row per known variable: its effective value as text (secrets masked) and where it came from.
  struct Entry {
    std::string value;
    ValueSource source = ValueSource::default_value;
  };
  std::map<std::string, Entry> entries;
  /// Non-fatal findings (an unknown QT_* name far from any known one, a mode given to a disabled subsystem).
  std::vector<std::string> warnings;

  /// The effective settings of one subsystem.
  const SubsystemConfig& subsystem(Subsystem s) const { return subsystems[static_cast<std::size_t>(s)]; }
};

/// Raised when the configuration is unusable; the message lists every bad variable with its value and what is allowed.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Name/value pairs from each source.
struct ConfigSources {
  std::map<std::string, std::string> environment;  ///< QT_* variables of the process
  std::map<std::string, std::string> env_file;     ///< QT_* lines of the .env file
  std::string env_file_path;                       ///< for messages
  /// Captures the QT_* variables of this process's environment.
  static ConfigSources from_process_environment();
};

/// Reads a .env file: `KEY=VALUE` lines, optional `export `, `#` comments, single or double quotes.
/// Throws ConfigError naming the file and line of a malformed line, or when the file cannot be read.
std::map<std::string, std::string> env_file_read(const std::string& path);

/// Builds the effective configuration: defaults < stage preset < .env file < environment, then the stage rules
/// (OBSERVATION caps every subsystem at OBSERVE; AUTONOMY needs a simulated exchange). Throws ConfigError listing
/// every bad value; an unknown QT_* name within a small edit distance of a known one is an error too.
Config config_load(const ConfigSources& sources);

/// Every variable name config_load() knows, in table order.
std::vector<std::string> config_known_names();

}  // namespace qtos
