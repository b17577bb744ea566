// The live run: the replay's composition on a live clock, with the Binance connector for the venue, its kline stream
// for the bars and its user data stream for order events, all marshalled to the owner thread.
#include "api/serve/live_run.hpp"

#if defined(QTOS_HAVE_BINANCE)

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "api/binance/kline_feed.hpp"
#include "api/binance/user_stream.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/bus/event_log.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/risk/risk_os.hpp"
#include "runtime/util/checkpoint.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {

namespace json = boost::json;

std::string live_stream_url(MarketKind market, binance::Env env) {
  if (market == MarketKind::spot)
    return env == binance::Env::testnet ? "wss://stream.testnet.binance.vision" : "wss://stream.binance.com:9443";
  return env == binance::Env::testnet ? "wss://fstream.binancefuture.com" : "wss://fstream.binance.com";
}

std::string live_ws_api_url(binance::Env env) {
  return env == binance::Env::testnet ? "wss://ws-api.testnet.binance.vision" : "wss://ws-api.binance.com";
}

binance::HttpEndpoint live_endpoint_parse(const std::string& url, const std::string& what) {
  // The WebSocket schemes are the HTTP ones upgraded: wss:// is TLS like https://, ws:// is plain like http://.
  if (url.rfind("wss://", 0) == 0) return binance::http_endpoint_parse("https://" + url.substr(6), what);
  if (url.rfind("ws://", 0) == 0) return binance::http_endpoint_parse("http://" + url.substr(5), what);
  return binance::http_endpoint_parse(url, what);
}

std::string live_client_prefix(const std::string& run_dir) {
  std::string name = std::filesystem::path(run_dir).filename().string();
  if (name.empty()) name = std::filesystem::path(run_dir).parent_path().filename().string();
  std::string clean;
  for (char c : name)
    if (std::isalnum(static_cast<unsigned char>(c))) clean.push_back(c);
  if (clean.size() > 12) clean = clean.substr(clean.size() - 12);
  return "q" + clean;
}

namespace {

/// Milliseconds since the epoch (the system clock: the venue's times are wall-clock times).
std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// The venue as the executor sees it: the connector, except that a USD-M market order sized in quote (the executor's
/// market entries; the paper venue derives the quantity at the fill) is sent with a base quantity, which is all USD-M
/// takes: the quote amount at the symbol's last close, truncated to the step. Everything else goes straight through.
class BaseSizedMarkets final : public Exchange {
 public:
  BaseSizedMarkets(binance::BinanceExchange& venue, const std::map<std::string, double>& last_close) : venue_(venue), last_close_(last_close) {}
  std::string name() const override { return venue_.name(); }
  MarketKind market() const override { return venue_.market(); }
  bool simulated() const override { return venue_.simulated(); }
  std::string quote_asset() const override { return venue_.quote_asset(); }
  Result<SymbolFilters> filters(const Symbol& symbol) const override { return venue_.filters(symbol); }
  SubmitResult submit(const OrderRequest& order) override {
    if (venue_.market() == MarketKind::spot || !(order.quote_qty > 0) || order.qty > 0) return venue_.submit(order);
    const auto it = last_close_.find(order.symbol.str());
    if (it == last_close_.end() || !(it->second > 0))
      return SubmitResult{SubmitOutcome::rejected, -1013, "denied locally, not sent: no price of " + order.symbol.str() + " yet to size the order in base"};
    OrderRequest o = order;
    const auto f = venue_.filters(o.symbol);
    o.qty = qty_to_step(o.quote_qty / it->second, f.ok() ? f.value().step_size : 0.0);
    o.quote_qty = 0;
    return venue_.submit(o);
  }
  SubmitResult cancel(std::uint64_t order_id) override { return venue_.cancel(order_id); }
  SubmitResult amend_stop(std::uint64_t order_id, double stop_price) override { return venue_.amend_stop(order_id, stop_price); }
  std::optional<OrderState> query(std::uint64_t order_id) const override { return venue_.query(order_id); }
  std::vector<OrderState> open_orders() const override { return venue_.open_orders(); }
  std::vector<VenuePosition> positions() const override { return venue_.positions(); }
  std::vector<Balance> balances() const override { return venue_.balances(); }
  double equity() const override { return venue_.equity(); }
  double quote_free() const override { return venue_.quote_free(); }
  void listener_set(ExchangeListener* listener) override { venue_.listener_set(listener); }

 private:
  binance::BinanceExchange& venue_;
  const std::map<std::string, double>& last_close_;
};

}  // namespace

LiveResult live_run(const Config& config, binance::BinanceExchange& exchange, const std::vector<LiveStrategy>& strategies,
                    const LiveOptions& options) {
  if (options.commands == nullptr) throw std::invalid_argument("live run: no command queue (LiveOptions::commands)");
  if (options.symbols.empty()) throw std::invalid_argument("live run: no symbols (QT_BINANCE_SYMBOLS, e.g. BTCUSDT)");
  if (options.run_dir.empty()) throw std::invalid_argument("live run: no run directory");
  if (options.warmup < 0) throw std::invalid_argument("live run: warm-up " + std::to_string(options.warmup) + " bars must be >= 0");
  const std::int64_t interval_ms = interval_parse_ms(options.interval, "QT_BINANCE_INTERVAL");
  CommandQueue& commands = *options.commands;
  std::filesystem::create_directories(options.run_dir);
  const std::string ledger_path = options.run_dir + "/ledger.db", events_path = options.run_dir + "/events.qel",
                    log_dir = options.run_dir + "/logs";

  LiveClock clock;
  EventBus bus(clock);
  bus.bind_owner_thread();
  LiveResult result;
  PolicyStore policy(options.policy_backend ? options.policy_backend() : std::make_unique<MemoryPolicyBackend>(), clock, &bus,
                     options.policy ? *options.policy : policy_from_config(config));
  RiskOS risk(RiskLimits::from_config(config), bus);
  Ledger ledger(ledger_path);
  // A restart on the same run directory: the state at its last commit.
  json::object resume;
  if (const auto text = ledger.meta_get("checkpoint")) {
    boost::system::error_code ec;
    json::value v = json::parse(*text, ec);
    if (ec || !v.is_object()) throw std::runtime_error("live run: the checkpoint in " + ledger_path + " is not a JSON object");
    resume = std::move(v.get_object());
    ckpt::version_check(resume, ledger_path);
    result.resumed = true;
    bus.ids_continue_after(ckpt::u64(resume, "last_event_id"));
    event_log_truncate(events_path, ckpt::u64(resume, "event_log_bytes"));
  }
  HookOptions hook_options;
  hook_options.fail_safe = config.fail_safe;
  hook_options.log_dir = log_dir;
  HookPipeline hooks(bus, hook_options);

  std::map<std::string, double> last_close;  // per symbol: the newest bar's close (sizes USD-M market orders in base)
  BaseSizedMarkets venue(exchange, last_close);
  // Subsystems and services, as in a replay: started now, stopped before the bus ends on every path out.
  const MarketPanel panel(options.symbols, 1, wall_ms() / interval_ms * interval_ms, interval_ms);  // no history: a live market
  std::vector<std::shared_ptr<Service>> services;
  const RunServices run_services(options.subsystem_factory, ReplayContext{config, bus, policy, risk, venue, panel, log_dir, services}, hooks,
                                 "live run");

  AITradingEngine engine;
  std::map<std::string, std::int64_t> last_open;  // per symbol: the open time (ms) of the newest bar published
  if (!resume.empty()) {
    engine.restore(ckpt::obj(resume, "engine"));
    for (const auto& [sym, v] : ckpt::obj(resume, "last_open")) last_open[std::string(sym)] = v.to_number<std::int64_t>();
  } else {
    for (LiveStrategy s : strategies) {
      if (s.symbols.empty()) s.symbols = options.symbols;
      engine.strategy_add(std::move(s));
    }
  }
  EventRecorder recorder(bus, events_path, kNsPerSecond);
  if (!resume.empty()) risk.restore(ckpt::obj(resume, "risk"));

  ExecutorOptions eo = options.executor;
  eo.commit_every = 1;  // every cycle durable: a restart continues from the last one
  if (eo.check_interval <= 0) eo.check_interval = kNsPerSecond;
  // The venue's time is learnt before the executor reads its equity (a signed request).
  if (auto s = exchange.time_sync(); !s.ok()) spdlog::warn("live: the venue's clock could not be read yet: {}", s.error().message);
  EventDrivenExecutor executor(config, bus, venue, risk, policy, ledger, hooks, engine, eo);
  if (options.strategy_lookup) executor.strategies_follow(options.strategy_lookup);
  // Bars that closed before this start only warm the indicators up: a decision on a stale bar is not taken.
  const TimeNs started = clock.now();
  executor.trading_from(started);
  if (!executor.start()) throw std::runtime_error("live run: the executor did not start: " + executor.last_reason());
  if (!resume.empty()) {
    executor.restore(ckpt::obj(resume, "executor"));
    ledger.meta_put("resumed_at", time_format(started));
  } else {
    std::string syms;
    for (const auto& s : options.symbols) syms += (syms.empty() ? "" : ",") + s;
    ledger.meta_put("live", exchange.name() + " " + syms + " " + options.interval);
    ledger.meta_put("stage", std::string(stage_name(config.stage)));
  }
  result.initial_equity = executor.initial_equity();
  // The checkpoint, written in the transaction of every commit: the executor's at each cycle's end, and the live
  // run's own between cycles (fills and order updates arrive between bars; the executor commits only with a bar).
  const auto checkpoint_write = [&] {
    recorder.flush(true);  // durable before the commit that names its length
    json::object lo;
    for (const auto& [sym, t] : last_open) lo[sym] = t;
    const json::object state{{"version", ckpt::kVersion},
                             {"live", true},
                             {"last_event_id", bus.last_id()},
                             {"event_log_bytes", recorder.file_bytes()},
                             {"last_open", lo},
                             {"engine", engine.checkpoint()},
                             {"executor", executor.checkpoint()},
                             {"risk", risk.checkpoint()}};
    ledger.meta_put("checkpoint", json::serialize(state));
  };
  executor.before_commit_set(checkpoint_write);
  bool dirty = false;                // the venue changed the executor's state since the last commit
  bool bar_open = false;             // a bar was published and its cycle has not ended yet
  std::uint64_t cycles_at_bar = 0;   // the executor's cycles when it was published
  const auto commit_between_cycles = [&] {
    if (bar_open && executor.stats().cycles > cycles_at_bar) bar_open = false;
    if (!dirty || bar_open) return;  // mid-cycle: the cycle's end commits it
    checkpoint_write();
    ledger.commit();
    dirty = false;
  };
  if (options.on_bound) {
    ReplayControl control{risk, policy, bus, executor, venue};
    options.on_bound(control);
  }

  // Reconciliation: at start, after every reconnect of the user stream, and while the connector is halted (a 418's
  // brake is released by a reconciliation after its Retry-After). Until one succeeds the connector refuses orders.
  bool started_venue = false, need_reconcile = true, trading = false;
  // The venue's clock offset for the streams' threads (the connector's own copy is the owner thread's).
  std::atomic<std::int64_t> offset_ms{exchange.clock_offset_ms()};
  auto next_try = std::chrono::steady_clock::now();
  const auto trading_set = [&](bool on) {
    if (on == trading) return;
    trading = on;
    if (options.on_trading) options.on_trading(on);
  };
  const auto reconcile = [&] {
    next_try = std::chrono::steady_clock::now() + options.reconcile_retry;
    if (!started_venue) {
      auto s = exchange.start();  // clock, the symbols' rules, a first reconciliation (the executor listens already)
      if (!s.ok()) {
        spdlog::warn("live: {} did not start: {}; trading stays halted, retrying in {} ms", exchange.name(), s.error().message,
                     options.reconcile_retry.count());
        return;
      }
      started_venue = true;
    }
    std::vector<OrderRequest> working;
    for (const OrderRecord& r : ledger.orders())
      if (r.request.order_id != 0 && !order_status_final(r.status)) working.push_back(r.request);
    auto rep = exchange.reconcile(working);
    offset_ms.store(exchange.clock_offset_ms());
    if (!rep.ok()) {
      spdlog::warn("live: reconciliation failed: {}; trading stays halted, retrying in {} ms", rep.error().message, options.reconcile_retry.count());
      return;
    }
    // Orders of ours that the ledger never recorded: placed by a cycle whose commit was lost (a kill between the
    // request and the commit). Their decision is gone, so they are cancelled rather than adopted.
    for (const OrderState& o : rep.value().imported) {
      ++result.imported;
      const SubmitResult c = exchange.cancel(o.request.order_id);
      spdlog::warn("live: open order {} ({} {}) is ours but not in the ledger: cancelled ({})", o.request.client_order_id,
                   o.request.symbol.view(), std::string(enum_name(o.request.side)),
                   c.outcome == SubmitOutcome::accepted ? std::string("accepted") : c.message);
    }
    for (std::uint64_t id : rep.value().unknown) spdlog::warn("live: order {} of the ledger is unknown to the venue", id);
    std::map<std::string, double> at_venue;
    for (const VenuePosition& p : rep.value().positions) at_venue[p.symbol.str()] = p.qty;
    for (const PositionRecord& p : ledger.positions()) {
      const double want = p.side == Side::buy ? p.qty : -p.qty;
      const double have = at_venue.count(p.symbol.str()) ? at_venue[p.symbol.str()] : 0.0;
      if (std::abs(want - have) > 1e-9 * std::max(1.0, std::abs(want)))
        spdlog::warn("live: {} position: the ledger holds {}, the venue {}", p.symbol.view(), want, have);
    }
    ++result.reconciliations;
    need_reconcile = false;
    next_try = std::chrono::steady_clock::now();  // only failures wait before the next attempt
    spdlog::info("live: reconciled with {} ({} working orders checked, {} positions at the venue): trading", exchange.name(), working.size(),
                 rep.value().positions.size());
    dirty = true;  // what the reconciliation applied is committed with a checkpoint
  };

  // Bars: published on the owner thread; a cycle ends when every symbol has its bar of that time (the check
  // interval ends the others).
  std::map<std::int64_t, std::size_t> pending_bars;  // open time (ms) -> symbols with their bar
  const auto on_bar = [&](const MarketBarClosed& b) {
    const std::int64_t open_ms = b.open_time / kNsPerMillisecond;
    auto it = last_open.find(b.symbol.str());
    if (it != last_open.end() && open_ms <= it->second) return;  // a restart's back-fill may repeat the last bar
    last_open[b.symbol.str()] = open_ms;
    exchange.reference_price_set(b.symbol, b.close);
    last_close[b.symbol.str()] = b.close;
    cycles_at_bar = executor.stats().cycles;
    bar_open = true;
    bus.publish(SourceName("binance"), b);
    ++result.bars;
    if (++pending_bars[open_ms] >= options.symbols.size()) {
      pending_bars.erase(pending_bars.begin(), pending_bars.upper_bound(open_ms));
      executor.cycle_end();
    }
  };

  binance::KlineFeedOptions fo;
  fo.market = exchange.market();
  fo.ws = options.endpoints.stream;
  fo.rest = options.endpoints.rest;
  fo.symbols = options.symbols;
  fo.interval = options.interval;
  fo.reconnect.backoff_min = options.stream_backoff_min;
  fo.reconnect.backoff_max = std::max(options.stream_backoff_min, std::chrono::milliseconds(30'000));
  fo.now_ms = [&offset_ms] { return wall_ms() + offset_ms.load(); };
  fo.on_bar = [&commands, &on_bar](const MarketBarClosed& b) { commands.post([&on_bar, b] { on_bar(b); }); };
  fo.on_note = [](const std::string& s) { spdlog::info("live: kline feed: {}", s); };
  binance::KlineFeed feed(fo);

  binance::UserStreamOptions uo;
  uo.market = exchange.market();
  uo.ws = exchange.market() == MarketKind::spot ? options.endpoints.ws_api : options.endpoints.stream;
  uo.rest = options.endpoints.rest;
  uo.api_key = options.api_key;
  uo.signer = options.signer;
  uo.reconnect.backoff_min = options.stream_backoff_min;
  uo.reconnect.backoff_max = fo.reconnect.backoff_max;
  uo.now_ms = fo.now_ms;
  uo.on_event = [&commands, &exchange, &result, &dirty](const std::string& text) {
    commands.post([&exchange, &result, &dirty, text] {
      if (exchange.user_event(text)) {
        ++result.user_events;
        dirty = true;
      }
    });
  };
  uo.on_reconnected = [&commands, &need_reconcile] { commands.post([&need_reconcile] { need_reconcile = true; }); };
  uo.on_note = [](const std::string& s) { spdlog::info("live: user stream: {}", s); };
  binance::UserStream user_stream(uo);

  // The timers of the loop: the connector's pump (fills and states by REST, the dead-man switch's re-arm).
  Timer poll_timer = clock.schedule_every(options.poll_interval.count() * kNsPerMillisecond, [&](TimeNs) {
    if (started_venue) {
      exchange.poll();
      dirty = true;
    }
  });

  // Streams: the user stream first (no event is missed between the reconciliation and the stream), then the bars
  // (a fresh run reads `warmup` closed bars over REST first; a restart reads the bars it missed).
  user_stream.start();
  std::map<std::string, std::int64_t> since = last_open;
  if (since.empty() && options.warmup > 0) {
    const std::int64_t now_open = (wall_ms() + offset_ms.load()) / interval_ms * interval_ms;
    for (const auto& s : options.symbols) since[s] = now_open - static_cast<std::int64_t>(options.warmup + 1) * interval_ms;
  }
  feed.start(since);

  const auto t0 = std::chrono::steady_clock::now();
  std::string fault;
  for (;;) {
    if (options.stop.stop_requested()) {
      result.stopped = true;
      break;
    }
    if (options.max_run.count() > 0 && std::chrono::steady_clock::now() - t0 >= options.max_run) break;
    if ((need_reconcile || exchange.halted()) && std::chrono::steady_clock::now() >= next_try) {
      need_reconcile = true;
      trading_set(false);
      reconcile();
    }
    trading_set(!need_reconcile && !exchange.halted());
    // Wait for the streams' events and the API's commands until the next timer (at most 100 ms: the stop is polled).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    if (const auto due = clock.next_due()) {
      const auto in = std::chrono::nanoseconds(std::max<TimeNs>(0, *due - clock.now()));
      deadline = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(in));
    }
    commands.run_until(deadline);
    bus.drain();  // events other threads posted (a Redis node's subscription: another node's policy change)
    clock.run_due();
    commit_between_cycles();
    if (executor.state() == ServiceState::faulted) {
      fault = executor.last_reason();
      break;
    }
  }
  // A clean stop: no more events, the last cycle committed with its checkpoint; orders resting at the venue stay
  // there (the strategies' stops and targets; the dead-man switch, when armed, cancels them if qtos stays away).
  feed.stop();
  user_stream.stop();
  poll_timer.cancel();
  commands.run_pending();  // events already queued by the streams
  trading_set(false);
  if (fault.empty()) {
    executor.cycle_end();
    dirty = true;
    bar_open = false;
    commit_between_cycles();
  }
  executor.before_commit_set({});
  executor.stop("live run finished");
  ledger.commit();
  recorder.flush(true);
  result.stats = executor.stats();
  result.final_equity = exchange.equity();
  if (!fault.empty()) throw std::runtime_error("live run stopped: " + fault + " (the ledger " + ledger_path + " holds what was done)");
  return result;
}

}  // namespace qtos::api

#endif  // QTOS_HAVE_BINANCE
