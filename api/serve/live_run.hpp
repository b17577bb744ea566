#pragma once
/// @file The live run: the trading core of a replay (bus, Policy store, Risk OS, hooks, executor, ledger, event log)
/// on a live clock, trading the Binance connector with bars from its kline stream and order events from its user data
/// stream. Everything the core owns is touched on the calling (owner) thread only: the feed's and the stream's threads
/// post their events to the CommandQueue, which the owner drains between its timers. Trading stays HALTED until the
/// venue is reconciled, at start and after every reconnect of the user stream (or a 418 ban's end). The run's state
/// goes into the ledger's meta "checkpoint" at every commit; a restart on the same run directory continues from it
/// and the venue's reconciliation brings what happened meanwhile (fills, ended orders) before trading resumes. The
/// checkpoint is also written between cycles when the venue changed the executor's state (fills arrive between bars).
/// USD-M takes only base quantities: a market order the executor sizes in quote is sent with the quantity that amount
/// buys at the symbol's last close, truncated to the step.
/// Built only with OpenSSL (QTOS_HAVE_BINANCE).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/binance/binance_exchange.hpp"
#include "api/binance/https_client.hpp"
#include "api/serve/command_queue.hpp"
#include "runtime/config/config.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos::api {

/// Where the live run's streams connect (REST for the back-fill and the listenKey, WebSocket hosts).
struct LiveEndpoints {
  binance::HttpEndpoint rest;    ///< the venue's REST host (kline back-fill, USD-M listenKey)
  binance::HttpEndpoint stream;  ///< market streams (and the USD-M user data stream)
  binance::HttpEndpoint ws_api;  ///< spot: the WebSocket API host of the user data stream subscription
};

/// The WebSocket hosts of a venue (market streams, spot WebSocket API) for `market` and `env`: wss:// URLs.
std::string live_stream_url(MarketKind market, binance::Env env);
/// The spot WebSocket API host for `env` (wss:// URL).
std::string live_ws_api_url(binance::Env env);
/// Parses a `wss://host[:port]` or `https://host[:port]` URL; throws std::invalid_argument naming `what`.
binance::HttpEndpoint live_endpoint_parse(const std::string& url, const std::string& what);

/// The newClientOrderId prefix of a run directory: "q" and the last 12 characters of its name that fit the venue's
/// alphabet (a run directory keeps its prefix across restarts; a new run gets a new one).
std::string live_client_prefix(const std::string& run_dir);

/// How a live run runs.
struct LiveOptions {
  std::string run_dir;                     ///< ledger.db, events.qel and logs/ live here
  std::vector<std::string> symbols;        ///< traded symbols (upper case)
  std::string interval = "1h";             ///< kline interval
  std::int32_t warmup = 300;               ///< closed bars read over REST at a fresh start (indicators warm up; not traded)
  LiveEndpoints endpoints;                 ///< where the streams connect
  std::string api_key;                     ///< the user stream's key (never logged)
  const binance::Signer* signer = nullptr; ///< spot: signs the user stream subscription (outlives the run)
  ExecutorOptions executor;                ///< commit_every is forced to 1; check_interval defaults to 1 s
  std::chrono::milliseconds poll_interval{2000};       ///< the connector's poll() (fills and states by REST, dead-man switch)
  std::chrono::milliseconds reconcile_retry{5000};     ///< pause between failed reconciliations
  std::chrono::milliseconds stream_backoff_min{500};   ///< first reconnect delay of the streams
  std::optional<Policy> policy;            ///< the starting policy when the store is empty (default: policy_from_config)
  std::function<std::unique_ptr<PolicyBackend>()> policy_backend;  ///< where the policy lives (default: in memory)
  ReplaySubsystemFactory subsystem_factory;  ///< subsystems on the run's bus (ReplayContext::panel: an empty panel of the symbols)
  /// Strategies promoted to LIVE during the run (EventDrivenExecutor::strategies_follow); empty: only `strategies`.
  std::function<std::optional<LiveStrategy>(const std::string& id)> strategy_lookup;
  /// Owner thread, once the run's objects exist and before the first bar (bind an API to them).
  std::function<void(ReplayControl& control)> on_bound;
  /// Owner thread: trading allowed (true: reconciled) or halted (false), on every change.
  std::function<void(bool trading)> on_trading;
  CommandQueue* commands = nullptr;        ///< the owner's queue (API commands and the streams' events); required
  StopToken stop;                          ///< SIGINT/SIGTERM: stops at the next turn of the loop
  std::chrono::milliseconds max_run{0};    ///< tests: stop after this long (0: until stopped)
};

/// What a live run did.
struct LiveResult {
  ExecutorStats stats;               ///< the executor's counts
  std::uint64_t bars = 0;            ///< bars published (warm-up included)
  std::uint64_t user_events = 0;     ///< user-stream events applied to a working order
  std::uint64_t reconciliations = 0; ///< successful reconciliations
  std::uint64_t imported = 0;        ///< open orders of ours the ledger did not know (cancelled: their decision was lost)
  double initial_equity = 0;         ///< the venue's equity at the executor's start
  double final_equity = 0;           ///< at the end
  bool resumed = false;              ///< continued a run directory's checkpoint
  bool stopped = false;              ///< stopped by the stop token (not by max_run)
};

/// Runs live on the calling thread until `options.stop` (or max_run): `strategies` trade on `exchange` (built by
/// make_exchange, not started: the run starts it once its executor listens). A run directory whose ledger holds a
/// checkpoint is resumed (the `strategies` argument is then ignored: the checkpoint's engine has them). Throws
/// std::invalid_argument naming the option when the options cannot run, std::runtime_error when the executor faults.
LiveResult live_run(const Config& config, binance::BinanceExchange& exchange, const std::vector<LiveStrategy>& strategies,
                    const LiveOptions& options);

}  // namespace qtos::api
