// `qtos serve`: the operating system running — a recorded or synthetic market replayed at a chosen speed through the
// whole trading system (executor, Risk OS, the AI subsystems, the strategy generator, the ranker, the paper exchange,
// the ledger), with the HTTP control API and its dashboard. What `make run` starts.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/cli_checks.hpp"
#include "api/http/server.hpp"
#include "api/notify/webhook_notifier.hpp"
#include "api/redis/scale_out_node.hpp"
#include "api/serve/command_queue.hpp"
#include "api/serve/serve_plane.hpp"
#include "api/verbs.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/executor/replay.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/services/opportunity_ranker.hpp"
#include "runtime/services/strategy_generator.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/subsystems/subsystem_set.hpp"
#include "runtime/util/atomic_file.hpp"
#include "runtime/util/stop_token.hpp"
#include "runtime/util/time_format.hpp"
#if defined(QTOS_HAVE_BINANCE)
#include <spdlog/spdlog.h>

#include "api/binance/exchange_factory.hpp"
#include "api/serve/live_run.hpp"
#include "runtime/data/interval.hpp"
#endif

namespace qtos::api {
namespace {

struct ServeArgs {
  std::string data, state_dir, address = "127.0.0.1";
  std::int64_t port = 8080;
  double speed = 3600;
  std::int32_t symbols = 30, bars = 3000, max_bars = -1, warmup = 300;
  std::uint64_t seed = 7;
  double capital = 10'000;
  bool new_run = false;
  std::string exchange, env;  // --exchange, --env (QT_EXCHANGE, QT_BINANCE_ENV)
  bool replay_options = false;  // --data or --speed given (a replay's options)
  std::string node;  // --node: this node's name in a Redis deployment (default HOST-PID)
};

/// The configuration of the service: the environment and .env as always, with the demo's defaults where they say
/// nothing (stage COORDINATION, MSC writing the policy, the strategy generator and the ranker on).
Config serve_config(CliContext& ctx, const ServeArgs& a) {
  ConfigSources src = ConfigSources::from_process_environment();
  if (!ctx.env_file.empty() || std::filesystem::exists(".env")) {
    const std::string env = ctx.env_file.empty() ? ".env" : ctx.env_file;
    src.env_file = env_file_read(env);
    src.env_file_path = env;
  }
  auto set_default = [&](const char* name, const char* value) {
    if (!src.environment.count(name) && !src.env_file.count(name)) src.environment[name] = value;
  };
  set_default("QT_AI_INTEGRATION_STAGE", "COORDINATION");
  set_default("QT_MSC_ENABLED", "true");
  set_default("QT_MSC_AUTO_MODE", "true");
  set_default("QT_MSC_UPDATE_INTERVAL", "3600");
  set_default("QT_SG_AI_ENABLED", "true");
  set_default("QT_SG_SHADOW_DAYS", "3");
  set_default("QT_SG_PROMOTE_MIN_SHARPE", "1.0");
  set_default("QT_SG_PROMOTE_MIN_WIN_RATE", "0.4");
  set_default("QT_OPP_RANKER_ENABLED", "true");
  if (!a.state_dir.empty()) src.environment["QT_STATE_DIR"] = a.state_dir;
  if (!a.exchange.empty()) src.environment["QT_EXCHANGE"] = a.exchange;
  if (!a.env.empty()) src.environment["QT_BINANCE_ENV"] = a.env;
  return config_load(src);
}

/// The embedded default market, or the data directory's.
std::shared_ptr<const MarketPanel> serve_market(const ServeArgs& a, std::string& what) {
  if (!a.data.empty()) {
    what = a.data;
    return std::make_shared<const MarketPanel>(panel_load(panel_path(a.data)));
  }
  SynthOptions o;
  o.n_symbols = a.symbols;
  o.n_bars = a.bars;
  o.seed = a.seed;
  o.planted_momentum = 0.15;
  what = "the embedded synthetic market (" + std::to_string(a.symbols) + " symbols x " + std::to_string(a.bars) + " hourly bars, seed " +
         std::to_string(a.seed) + ")";
  return std::make_shared<const MarketPanel>(synth_generate(o).panel);
}

/// The strategy repository: its LIVE strategies trade. An empty one is seeded by a short genetic search on the warm-up
/// bars: the best two go LIVE, the next two SHADOW (the generator promotes them when they earn it).
void repository_seed(StrategyRepository& repo, const MarketPanel& panel, std::int32_t train_end, std::uint64_t seed) {
  if (repo.count() > 0) return;
  const kernels::PanelView view = panel.view();
  const StrategyFeatures f = strategy_features_compute(view, true);
  EvolveOptions o;
  o.population = 40;
  o.generations = 4;
  o.seed = seed;
  o.train_begin = 0;
  o.train_end = std::max<std::int32_t>(2, train_end * 7 / 10);
  o.test_begin = o.train_end;
  o.test_end = train_end;
  o.hall_of_fame = 4;
  o.min_trades = 10;
  const auto backend = ::qtos::detail::backtest_cpu_backend();
  const EvolveResult r = evolve(view, f, *backend, o);
  const std::int64_t now_ms = panel.time_ms(0);
  for (std::size_t i = 0; i < r.hall_of_fame.size(); ++i) {
    StrategyRecord rec;
    rec.genome = r.hall_of_fame[i].genome;
    rec.origin = "qtos serve: the demo's first search";
    rec.generation = r.hall_of_fame[i].generation;
    const auto n = [](double v) { return std::isfinite(v) ? boost::json::value(v) : boost::json::value(nullptr); };
    rec.backtest_metrics = boost::json::serialize(boost::json::object{
        {"fitness", n(r.hall_of_fame[i].fitness)},
        {"in_sample", {{"sharpe", n(r.hall_of_fame[i].train.sharpe)}, {"trades", r.hall_of_fame[i].train.trades}}},
        {"out_of_sample", {{"sharpe", n(r.hall_of_fame[i].test.sharpe)}, {"trades", r.hall_of_fame[i].test.trades}}}});
    repo.upsert(rec, now_ms);
    const std::string id = genome_id(rec.genome);
    (void)repo.transition(id, StrategyStatus::shadow, "demo: out-of-sample rank " + std::to_string(i + 1), now_ms);
    if (i < 2) (void)repo.transition(id, StrategyStatus::live, "demo: trades from the start", now_ms);
  }
}

/// The run a start continues: the state directory's current run, when it has a checkpoint and has not finished.
struct ResumePoint {
  std::string dir;        // state/runs/<stamp>
  std::int64_t bar = 0;   // the first bar time it replays
};

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

/// The unfinished run named by `state_dir`/current_run, or nothing (none, finished, or killed before its first commit).
/// Throws UsageError when it was recorded on another market than `market_text` (resuming would mix two markets).
std::optional<ResumePoint> resume_point(const std::string& state_dir, const std::string& market_text) {
  const std::string current = state_dir + "/current_run";
  if (!std::filesystem::exists(current)) return std::nullopt;
  const std::string name = file_text(current);
  if (name.empty() || name.find('/') != std::string::npos) throw UsageError(current + ": expected the name of a run under " + state_dir + "/runs, found '" + name + "'");
  ResumePoint p{state_dir + "/runs/" + name, 0};
  if (!std::filesystem::exists(p.dir + "/ledger.db")) return std::nullopt;
  const Ledger ledger(p.dir + "/ledger.db", store::OpenMode::existing);
  const auto checkpoint = ledger.meta_get("checkpoint");
  if (ledger.meta_get("finished") || !checkpoint) return std::nullopt;
  const auto market = ledger.meta_get("market");
  if (market != market_text)
    throw UsageError("the unfinished run " + p.dir + " replays " + market.value_or("an unknown market") + ", not " + market_text +
                     ": start with the same market options to resume it, or with --new-run to start a new run");
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(*checkpoint, ec);
  const boost::json::value* t = !ec && v.is_object() ? v.get_object().if_contains("t") : nullptr;
  if (t == nullptr || !t->is_int64()) throw std::runtime_error(p.dir + "/ledger.db: the checkpoint is damaged (no bar); start with --new-run");
  p.bar = t->get_int64() + 1;
  return p;
}

std::string utc_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

/// Feeds the API's event ring and latest ranking from the bus (a service, so the replay starts and stops it).
class ApiFeed final : public Service {
 public:
  ApiFeed(EventBus& bus, ServePlane& plane) : Service("api", SubsystemMode::enforced, bus), plane_(plane) {}

 protected:
  void on_start() override {
    subscribe_topics("#", [this](const EventRef& e) {
      // The feed carries the system's decisions and state changes; market data and raw signals (every bar, every
      // symbol) would drown them: the event log (events.qel) keeps everything.
      if (e.type() == EventType::market_bar_closed || e.type() == EventType::signal_generated) return;
      const AnyEvent any = e.to_any();
      if (const auto* r = std::get_if<OpportunitiesUpdated>(&any)) plane_.ranking_set(*r);
      plane_.events().add(any);
    });
  }

 private:
  ServePlane& plane_;
};

/// The node of a Redis deployment (QT_REDIS_URL) as a service of the run: built when the run's services start (on the
/// bus owner thread, once the policy store on Redis exists) and torn down when they stop, before the bus goes.
class ScaleOutService final : public Service {
 public:
  /// `backend` is the run's policy backend on Redis (set when the run's PolicyStore was built; the store owns it).
  ScaleOutService(EventBus& bus, PolicyStore& policy, const redis::ScaleOutOptions& options, redis::RedisPolicyBackend* const& backend)
      : Service("scale-out", SubsystemMode::enforced, bus), policy_(policy), options_(options), backend_(backend) {}
  /// The node while the service runs (null otherwise). Bus owner thread.
  const redis::ScaleOutNode* node() const { return node_.get(); }

 protected:
  void on_start() override {
    if (backend_ == nullptr) throw std::logic_error("scale-out: the run's policy store is not on Redis");
    node_ = std::make_unique<redis::ScaleOutNode>(options_, policy_, *backend_, bus());
  }
  void on_stop() override { node_.reset(); }

 private:
  PolicyStore& policy_;
  const redis::ScaleOutOptions& options_;
  redis::RedisPolicyBackend* const& backend_;
  std::unique_ptr<redis::ScaleOutNode> node_;
};

/// `qtos serve` with QT_REDIS_URL: the node's settings, after checking that the shared policy can be loaded. Without
/// it a node would either refuse to trade later or trade on a policy the other nodes do not share: refused at start,
/// naming the variable. Once running, a Redis outage only degrades the node (docs/SCALE_OUT.md).
std::optional<redis::ScaleOutOptions> serve_redis(const Config& config, const ServeArgs& a) {
  if (config.redis_url.empty()) {
    if (!a.node.empty()) throw UsageError("--node " + a.node + ": names this node in a Redis deployment, and QT_REDIS_URL is unset");
    return std::nullopt;
  }
  redis::ScaleOutOptions so;
  try {
    so.url = redis::redis_url_parse(config.redis_url, "QT_REDIS_URL");
  } catch (const std::invalid_argument& e) {
    throw ConfigError(e.what());
  }
  so.node = a.node.empty() ? redis::host_name() + "-" + std::to_string(::getpid()) : a.node;
  redis::RedisPolicyBackend probe(so.url, so.queue.ns, so.node, so.queue.redis);
  if (auto p = probe.load_latest(); !p.ok())
    throw ConfigError("QT_REDIS_URL=" + so.url.text() + ": the shared policy cannot be loaded (" + p.error().message +
                      "): start Redis, or unset QT_REDIS_URL to run as one node on " + config.state_dir + "/policy.db");
  return so;
}

/// `qtos serve --exchange binance-*`: the OS trading the venue live (api/serve/live_run.hpp) behind the same API.
/// The OS a `qtos serve` run composes on the run's bus, whether it replays a market or trades a venue: the AI
/// subsystems, the API's event feed, the strategy generator, the ranker over `symbols` and the notifier. One
/// definition for both paths, so that the replay and the live run never differ in what runs.
struct ServeOs {
  std::shared_ptr<SubsystemSet> subsystems;
  std::shared_ptr<StrategyGeneratorAI> generator;
  std::shared_ptr<MarketOpportunityRanker> ranker;
  std::shared_ptr<const BacktestBackend> backtest = ::qtos::detail::backtest_cpu_backend();
  std::optional<redis::ScaleOutOptions> redis;         ///< a node of a Redis deployment (QT_REDIS_URL)
  redis::RedisPolicyBackend* redis_backend = nullptr;  ///< the run's policy backend on Redis (its PolicyStore owns it)
  std::shared_ptr<ScaleOutService> scale_out;          ///< the node, while the run's services run

  /// Where the run's policy lives: Redis, shared by every node, or SQLite under the state directory.
  std::function<std::unique_ptr<PolicyBackend>()> policy_backend(const Config& config) {
    if (redis) return [this] { return redis::scale_out_policy_backend(*redis, redis_backend); };
    return [&config] { return std::make_unique<SqlitePolicyBackend>(config.state_dir + "/policy.db"); };
  }
  /// The factory a replay or a live run calls on its bus; `plane`, `repo` and `this` must outlive the run.
  ReplaySubsystemFactory factory(ServePlane& plane, StrategyRepository& repo, std::vector<std::string> symbols) {
    return [this, &plane, &repo, symbols = std::move(symbols)](ReplayContext& c) {
      // The node first: its bridge mirrors what the others publish from their start.
      if (redis) {
        scale_out = std::make_shared<ScaleOutService>(c.bus, c.policy, *redis, redis_backend);
        c.services.push_back(scale_out);
      }
      subsystems = std::make_shared<SubsystemSet>(SubsystemDeps{c.config, c.bus, c.policy, c.exchange, c.log_dir});
      c.services.push_back(std::make_shared<ApiFeed>(c.bus, plane));
      generator = std::make_shared<StrategyGeneratorAI>(c.bus, strategy_generator_mode(c.config), repo, c.policy, *backtest,
                                                        strategy_generator_options(c.config));
      c.services.push_back(generator);
      RankerOptions ro;
      ro.symbols = symbols;
      ranker = std::make_shared<MarketOpportunityRanker>(c.bus, c.config, c.policy, ro);
      c.services.push_back(ranker);
      if (auto notifier = webhook_notifier_from_config(c.bus, c.config)) c.services.push_back(std::shared_ptr<Service>(std::move(notifier)));
      return subsystems->pipeline_order();
    };
  }
  /// What the API reaches of the running OS.
  ServeBinding binding(const Config& config, ReplayControl& control) const {
    return ServeBinding{&config, &control.bus, &control.policy, &control.risk, &control.exchange, &control.executor, subsystems.get(),
                        generator.get(), ranker.get(), scale_out ? scale_out->node() : nullptr};
  }
};

/// The demo's policy where the configuration says nothing more: room for eight positions, 5% risk per trade.
Policy serve_policy(const Config& config) {
  Policy demo = policy_from_config(config);
  demo.max_open_positions = 8;
  demo.max_risk_per_trade = 0.05;
  demo.min_confidence = 0.5;
  demo.max_leverage = 3;
  return demo;
}

/// The repository's view for promotions: a strategy promoted to LIVE starts trading.
std::function<std::optional<LiveStrategy>(const std::string&)> repo_lookup(StrategyRepository& repo) {
  return [&repo](const std::string& id) -> std::optional<LiveStrategy> {
    const auto r = repo.get(id);
    if (!r || r->status != StrategyStatus::live) return std::nullopt;
    return LiveStrategy{r->id, r->genome, 0.0, {}};
  };
}

void serve_live(CliContext& ctx, const ServeArgs& a, const Config& config, const StopToken& stop, const std::string& token,
                std::optional<redis::ScaleOutOptions> redis) {
#if defined(QTOS_HAVE_BINANCE)
  const std::string exchange_text = std::string(exchange_name(config.exchange));
  if (a.replay_options)
    throw UsageError("--data and --speed choose a market to replay; with QT_EXCHANGE=" + exchange_text +
                     " the market is the venue's, live: QT_BINANCE_SYMBOLS and QT_BINANCE_INTERVAL (drop --data/--speed)");
  if (config.binance_symbols.empty())
    throw ConfigError("QT_BINANCE_SYMBOLS: unset: a live run needs the symbols it trades (e.g. QT_BINANCE_SYMBOLS=BTCUSDT)");
  const binance::Env env = exchange_is_simulated(config.exchange) ? binance::Env::testnet : binance::Env::mainnet;
  const MarketKind market_kind = (config.exchange == ExchangeKind::binance_spot || config.exchange == ExchangeKind::binance_spot_testnet)
                                     ? MarketKind::spot
                                     : MarketKind::linear_perpetual;
  // The run directory: the unfinished live run continues (its ledger, its checkpoint, its client-order-id prefix);
  // --new-run starts another.
  const std::string pointer = config.state_dir + "/current_live_run";
  std::string run_dir;
  if (!a.new_run && std::filesystem::exists(pointer)) {
    const std::string name = file_text(pointer);
    if (name.empty() || name.find('/') != std::string::npos)
      throw UsageError(pointer + ": expected the name of a run under " + config.state_dir + "/runs, found '" + name + "'");
    if (std::filesystem::exists(config.state_dir + "/runs/" + name + "/ledger.db")) run_dir = config.state_dir + "/runs/" + name;
  }
  const bool resuming = !run_dir.empty();
  std::string new_name;  // a new run: created once the venue's configuration has been accepted
  if (!resuming) {
    new_name = "live-" + utc_stamp();
    for (int i = 2; std::filesystem::exists(config.state_dir + "/runs/" + new_name); ++i) new_name = "live-" + utc_stamp() + "-" + std::to_string(i);
    run_dir = config.state_dir + "/runs/" + new_name;
  }
  const auto endpoint = [&](const std::string& url, const std::string& fallback, const char* what) {
    binance::HttpEndpoint e;
    try {
      e = live_endpoint_parse(url.empty() ? fallback : url, what);
    } catch (const std::invalid_argument& x) {
      throw ConfigError(x.what());
    }
    e.ca_file = config.binance_ca_file;
    return e;
  };
  LiveOptions lo;
  lo.endpoints.rest = endpoint(config.binance_rest_url, binance::rest_url(market_kind, env), "QT_BINANCE_REST_URL");
  lo.endpoints.stream = endpoint(config.binance_stream_url, live_stream_url(market_kind, env), "QT_BINANCE_STREAM_URL");
  lo.endpoints.ws_api = endpoint(config.binance_ws_api_url, live_ws_api_url(env), "QT_BINANCE_WS_API_URL");
  for (const auto* e : {&lo.endpoints.stream, &lo.endpoints.ws_api})
    if (const auto host_env = binance::env_of_host(e->host); host_env && *host_env != env)
      throw ConfigError("QT_BINANCE_STREAM_URL/QT_BINANCE_WS_API_URL: the host " + e->host + " belongs to " + std::string(enum_name(*host_env)) +
                        ", not to QT_EXCHANGE=" + exchange_text);
  binance::ExchangeFactoryOptions fo;
  fo.rest = lo.endpoints.rest;
  fo.client_prefix = live_client_prefix(run_dir);
  fo.leverage = 2;
  fo.health_alert = [](const std::string& s) { spdlog::error("exchange health alert: {}", s); };
  std::unique_ptr<Exchange> made = binance::make_exchange(config, fo);  // ConfigError on every refusal
  auto* exchange = dynamic_cast<binance::BinanceExchange*>(made.get());
  if (exchange == nullptr) throw std::logic_error("make_exchange: QT_EXCHANGE=" + exchange_text + " did not give the Binance connector");
  const binance::ApiKeys keys = binance::api_keys_load(config);
  if (!resuming) {
    std::filesystem::create_directories(run_dir);
    atomic_write(pointer, new_name + "\n");
  }
  std::optional<binance::Signer> signer;
  if (market_kind == MarketKind::spot)
    signer = keys.private_pem.empty() ? binance::Signer::hmac(keys.secret) : binance::Signer::ed25519_pem(keys.private_pem);

  CommandQueue commands;
  const std::int64_t interval_ms = interval_parse_ms(config.binance_interval, "QT_BINANCE_INTERVAL");
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  // The API's jobs read a panel of the run's market: a live run has none recorded (jobs find no bars).
  auto market = std::make_shared<const MarketPanel>(config.binance_symbols, 1, now_ms / interval_ms * interval_ms, interval_ms);
  const std::string repo_path = config.state_dir + "/strategies.db";
  ServePlane plane(commands, run_dir + "/ledger.db", repo_path, config.state_dir + "/models", market, config.stage);
  if (redis) plane.redis_set(ServeRedis{redis->url, redis->queue, redis->node, ""});  // a live market has no file for workers
  ServerSettings settings;
  settings.address = a.address;
  settings.port = static_cast<std::uint16_t>(a.port);
  settings.api.token = token;
  Server server(plane, settings);
  server.start();
  std::printf("qtos serve: dashboard http://%s:%u/   (API token in %s/api_token, or QT_API_TOKEN)\n",
              a.address.find(':') != std::string::npos ? ("[" + a.address + "]").c_str() : a.address.c_str(), static_cast<unsigned>(server.port()),
              config.state_dir.c_str());
  std::fflush(stdout);

  StrategyRepository repo(repo_path);
  std::vector<LiveStrategy> strategies;
  for (const StrategyRecord& r : repo.list(StrategyStatus::live)) strategies.push_back(LiveStrategy{r.id, r.genome, 0.0, {}});
  std::string symbols_text;
  for (const auto& s : config.binance_symbols) symbols_text += (symbols_text.empty() ? "" : ",") + s;
  std::printf("live: %s %s, %s %s bars; stage %s; %zu LIVE strategies in %s%s\n", exchange->name().c_str(), std::string(enum_name(env)).c_str(),
              symbols_text.c_str(), config.binance_interval.c_str(), std::string(stage_name(config.stage)).c_str(), strategies.size(),
              repo_path.c_str(), strategies.empty() ? " (none: nothing trades until one is promoted)" : "");
  std::printf("run: %s%s; client order ids %s-<n>; trading starts once the venue is reconciled; Ctrl-C stops cleanly\n", run_dir.c_str(),
              resuming ? " (resumed)" : "", fo.client_prefix.c_str());
  std::fflush(stdout);

  lo.run_dir = run_dir;
  lo.symbols = config.binance_symbols;
  lo.interval = config.binance_interval;
  lo.warmup = a.warmup;
  lo.api_key = keys.api_key;
  lo.signer = signer ? &*signer : nullptr;
  lo.executor.leverage = 2;
  lo.executor.check_interval = kNsPerSecond;
  lo.commands = &commands;
  lo.stop = stop;
  lo.policy = serve_policy(config);
  ServeOs os;
  os.redis = std::move(redis);
  lo.policy_backend = os.policy_backend(config);
  lo.subsystem_factory = os.factory(plane, repo, config.binance_symbols);
  lo.strategy_lookup = repo_lookup(repo);
  lo.on_bound = [&](ReplayControl& control) {
    plane.bind(os.binding(config, control));
    plane.ready_set(true);
  };
  lo.on_trading = [](bool trading) {
    std::printf("%s\n", trading ? "venue reconciled: trading" : "trading halted until the venue is reconciled");
    std::fflush(stdout);
  };
  const auto shutdown = [&] {
    plane.ready_set(false);
    commands.close();
    plane.bind(std::nullopt);
    server.stop();
    plane.jobs_stop();
  };
  LiveResult r;
  try {
    r = live_run(config, *exchange, strategies, lo);
  } catch (...) {
    shutdown();
    throw;
  }
  shutdown();
  std::printf("%s: %llu bars, %llu orders, %llu denied, %llu rejected, %llu fills, %llu trades; %llu reconciliations; equity %.2f -> %.2f; "
              "ledger %s/ledger.db\n",
              r.stopped ? (std::string("stopped by ") + stop_signal_name(stop.signal())).c_str() : "live run ended",
              static_cast<unsigned long long>(r.bars), static_cast<unsigned long long>(r.stats.orders),
              static_cast<unsigned long long>(r.stats.denied), static_cast<unsigned long long>(r.stats.rejected),
              static_cast<unsigned long long>(r.stats.fills), static_cast<unsigned long long>(r.stats.trades),
              static_cast<unsigned long long>(r.reconciliations), r.initial_equity, r.final_equity, run_dir.c_str());
  ctx.exit_code = 0;
#else
  (void)ctx, (void)a, (void)stop, (void)token, (void)redis;
  throw UsageError("QT_EXCHANGE=" + std::string(exchange_name(config.exchange)) +
                   ": this build has no Binance connector (it needs OpenSSL); use --exchange paper");
#endif
}

}  // namespace

void verbs_serve_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "run the operating system: a market replayed in real time or faster, every subsystem, the HTTP API "
                                          "and the dashboard (Ctrl-C stops it cleanly)");
  cmd->add_option("--data", a->data, "data directory (DIR/panel.qtp) to replay (default: the embedded synthetic market)");
  cmd->add_option("--state-dir", a->state_dir, "state directory: policy, strategies, API token, runs (default: QT_STATE_DIR, state)");
  cmd->add_option("--speed", a->speed, "simulated seconds per second: 60 = one hour a minute, 3600 = one hourly bar a second; 0 = as fast as possible")
      ->check(number_range(0, 1e9))
      ->capture_default_str();
  cmd->add_option("--address", a->address, "address the API binds (a non-loopback one needs QT_API_TOKEN)")->capture_default_str();
  cmd->add_option("--port", a->port, "API port (0: any free port, printed)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--symbols", a->symbols, "embedded market: symbols")->check(CLI::Range(1, 10'000))->capture_default_str();
  cmd->add_option("--bars", a->bars, "embedded market: hourly bars")->check(CLI::Range(400, 1'000'000))->capture_default_str();
  cmd->add_option("--seed", a->seed, "embedded market and the demo search: seed")->capture_default_str()->check(unsigned_integer());
  cmd->add_option("--warmup", a->warmup, "bars replayed at once before trading starts (indicators warm up)")->check(CLI::Range(1, 100'000))
      ->capture_default_str();
  cmd->add_option("--max-bars", a->max_bars, "stop after this many bars of trading (default: the end of the data)")->check(CLI::Range(1, 100'000'000));
  cmd->add_option("--capital", a->capital, "initial balance of the paper exchange")->check(number_range(0, 1e15, true))->capture_default_str();
  cmd->add_flag("--new-run", a->new_run, "start a new run even when the state directory's last run can be resumed");
  cmd->add_option("--exchange", a->exchange, "the venue: paper (a replayed market) or binance-spot / binance-futures (live; QT_EXCHANGE)")
      ->check(CLI::IsMember({"paper", "binance-spot", "binance-futures"}));
  cmd->add_option("--node", a->node, "this node's name in a Redis deployment (QT_REDIS_URL): policy history, heartbeat, job keys "
                                     "(default HOST-PID)");
  cmd->add_option("--env", a->env, "Binance environment: testnet or mainnet (QT_BINANCE_ENV)")->check(CLI::IsMember({"testnet", "mainnet"}));
  cmd->callback([a, &ctx, cmd] {
    stop_signals_install();
    const StopToken stop = process_stop_token();
    const Config config = serve_config(ctx, *a);
    std::filesystem::create_directories(config.state_dir);
    const std::string token = api_token_resolve(config);
    // A damaged or foreign policy database, or a shared policy that cannot be loaded, is refused before anything else
    // is started or written.
    std::optional<redis::ScaleOutOptions> redis = serve_redis(config, *a);
    if (!redis) { const SqlitePolicyBackend probe(config.state_dir + "/policy.db"); }
    if (config.exchange != ExchangeKind::paper) {
      a->replay_options = !a->data.empty() || cmd->count("--speed") > 0;
      serve_live(ctx, *a, config, stop, token, std::move(redis));
      return;
    }

    // The API first: the dashboard's address is the first thing printed; it answers 503 until the OS runs.
    CommandQueue commands;
    std::string market_text;
    const std::shared_ptr<const MarketPanel> market = serve_market(*a, market_text);
    if (a->warmup >= market->n_bars())
      throw UsageError("--warmup " + std::to_string(a->warmup) + ": the market has only " + std::to_string(market->n_bars()) + " bars");
    // A restart continues the unfinished run (positions, orders, the venue and the bar reached come from its last
    // checkpoint); otherwise a new run starts and becomes the current one.
    const std::optional<ResumePoint> resume = a->new_run ? std::nullopt : resume_point(config.state_dir, market_text);
    std::string run_dir;
    if (resume) {
      run_dir = resume->dir;
    } else {
      std::string name = utc_stamp();
      for (int i = 2; std::filesystem::exists(config.state_dir + "/runs/" + name); ++i) name = utc_stamp() + "-" + std::to_string(i);
      run_dir = config.state_dir + "/runs/" + name;
      std::filesystem::create_directories(run_dir);
      {
        Ledger ledger(run_dir + "/ledger.db");
        ledger.meta_put("market", market_text);
        ledger.commit();
      }
      atomic_write(config.state_dir + "/current_run", name + "\n");
    }
    const std::string repo_path = config.state_dir + "/strategies.db";
    ServePlane plane(commands, run_dir + "/ledger.db", repo_path, config.state_dir + "/models", market, config.stage);
    ServerSettings settings;
    settings.address = a->address;
    settings.port = static_cast<std::uint16_t>(a->port);
    settings.api.token = token;
    if (redis)
      plane.redis_set(ServeRedis{redis->url, redis->queue, redis->node, a->data.empty() ? "" : std::filesystem::absolute(a->data).string()});
    Server server(plane, settings);
    server.start();
    std::printf("qtos serve: dashboard http://%s:%u/   (API token in %s/api_token, or QT_API_TOKEN)\n",
                a->address.find(':') != std::string::npos ? ("[" + a->address + "]").c_str() : a->address.c_str(),
                static_cast<unsigned>(server.port()), config.state_dir.c_str());
    std::fflush(stdout);

    StrategyRepository repo(repo_path);
    repository_seed(repo, *market, a->warmup, a->seed);
    std::printf("market: %s; stage %s; %lld LIVE and %lld SHADOW strategies in %s\n", market_text.c_str(),
                std::string(stage_name(config.stage)).c_str(), static_cast<long long>(repo.list(StrategyStatus::live).size()),
                static_cast<long long>(repo.list(StrategyStatus::shadow).size()), repo_path.c_str());
    if (resume)
      std::printf("resuming run %s at bar %lld: positions, orders, the venue and the Risk OS as at its last commit\n", run_dir.c_str(),
                  static_cast<long long>(resume->bar));
    std::printf("run: %s (ledger, events, decision logs); speed %g simulated s per s; Ctrl-C stops at the end of the bar\n", run_dir.c_str(),
                a->speed);
    if (redis)
      std::printf("scale-out: node %s on %s: the policy is shared there; jobs go to its live workers%s\n", redis->node.c_str(),
                  redis->url.text().c_str(), a->data.empty() ? " only with --data (the embedded market is not a file they can load)" : "");
    std::fflush(stdout);

    std::vector<LiveStrategy> strategies;
    for (const StrategyRecord& r : repo.list(StrategyStatus::live)) strategies.push_back(LiveStrategy{r.id, r.genome, 0.0, {}});

    const std::int32_t t_begin = a->warmup;
    const std::int32_t t_end = a->max_bars > 0 ? std::min(market->n_bars(), t_begin + a->max_bars) : market->n_bars();
    ReplayOptions o;
    o.t_begin = t_begin;
    o.t_end = t_end;
    o.exchange.market = MarketKind::linear_perpetual;
    o.exchange.initial_balance = a->capital;
    o.executor.leverage = 2;
    o.executor.commit_every = 1;  // a live service: every bar durable, and a point a restart continues from
    o.checkpoint = true;
    o.resume = resume.has_value();
    o.ledger_path = run_dir + "/ledger.db";
    o.event_log_path = run_dir + "/events.qel";
    o.log_dir = run_dir + "/logs";
    o.stop = stop;
    o.policy = serve_policy(config);
    ServeOs os;
    os.redis = std::move(redis);
    o.policy_backend = os.policy_backend(config);
    o.subsystem_factory = os.factory(plane, repo, market->symbols());
    o.strategy_lookup = repo_lookup(repo);
    // Pacing: bar t (from t_begin) is published when its simulated time is due on the wall clock; the API's commands
    // run on this thread while it waits. Warm-up bars go at once.
    auto wall0 = std::chrono::steady_clock::now();
    const double bar_s = static_cast<double>(market->interval_ms()) / 1000.0;
    bool bound = false;
    std::int32_t pace_from = -1;  // the first trading bar of this process (a resumed run paces from where it resumed)
    o.before_bar = [&](std::int32_t t, ReplayControl& control) {
      if (!bound) {
        plane.bind(os.binding(config, control));
        bound = true;
      }
      if (t >= t_begin && pace_from < 0) {
        pace_from = t;
        wall0 = std::chrono::steady_clock::now();
        plane.ready_set(true);
      }
      plane.bar_set(t);
      // The node's subscription posts other nodes' policy changes to the bus: delivered here, between bars.
      const auto deliver_posted = [&] {
        if (os.redis) control.bus.drain();
      };
      if (t < t_begin || a->speed <= 0) {
        commands.run_pending();
        deliver_posted();
        return;
      }
      const auto due = wall0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(t - pace_from) * bar_s / a->speed));
      while (!stop.stop_requested()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= due) break;
        commands.run_until(std::min(due, now + std::chrono::milliseconds(100)));
        deliver_posted();
      }
      commands.run_pending();
      deliver_posted();
    };
    ReplayResult r;
    try {
      r = replay_run(*market, config, strategies, {}, o);
    } catch (...) {
      plane.ready_set(false);
      commands.close();
      plane.bind(std::nullopt);
      server.stop();
      plane.jobs_stop();
      throw;
    }
    // The run's objects are gone: nothing may reach them any more.
    plane.ready_set(false);
    commands.close();
    plane.bind(std::nullopt);
    server.stop();
    plane.jobs_stop();
    std::printf("%s after %d bars: %llu orders, %llu denied, %llu trades; equity %.2f -> %.2f; ledger %s\n",
                r.stopped ? (std::string("stopped by ") + stop_signal_name(stop.signal())).c_str() : "market replay finished", r.bars_done,
                static_cast<unsigned long long>(r.stats.orders), static_cast<unsigned long long>(r.stats.denied),
                static_cast<unsigned long long>(r.stats.trades), r.initial_equity, r.final_equity, o.ledger_path.c_str());
    ctx.exit_code = 0;  // a stop by SIGINT/SIGTERM is the normal end of a service
  });
}

}  // namespace qtos::api
