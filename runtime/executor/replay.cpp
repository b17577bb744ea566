// The full-system replay: the composition of bus, clock, policy, Risk OS, hooks, paper exchange, executor and ledger
// over a recorded panel.
#include "runtime/executor/replay.hpp"

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

#include "cpu/backend/indicator_backend.hpp"
#include "runtime/bus/event_log.hpp"
#include "runtime/data/bar_event.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/risk/risk_os.hpp"
#include "runtime/util/checkpoint.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos {

namespace {

/// Model signals from a Predictor over the replayed panel: the bar that closed at a time, every symbol at once.
class PanelModelSignals final : public ModelSignalSource {
 public:
  PanelModelSignals(const MarketPanel& panel, const Predictor& predictor, std::string name, double min_edge)
      : panel_(panel), view_(panel.view()), predictor_(predictor), name_("model:" + std::move(name)), min_edge_(min_edge) {}
  std::string name() const override { return name_; }
  std::vector<TradingSignal> signals(TimeNs close_time) override {
    std::vector<TradingSignal> out;
    const std::int64_t open_ms = close_time / kNsPerMillisecond - panel_.interval_ms();
    const std::int32_t t = panel_.bar_at_or_before(open_ms);
    if (t < 0 || panel_.time_ms(t) != open_ms) return out;
    auto pred = predictor_.predict(view_, t);
    if (!pred.ok()) return out;  // not enough history yet, or no model: no signal
    const Predictions& p = pred.value();
    for (std::int32_t s = 0; s < panel_.n_symbols(); ++s) {
      const float prob = p.prob_up[static_cast<std::size_t>(s)];
      if (!(prob == prob) || std::abs(prob - 0.5f) < min_edge_ || !panel_.has_bar(s, t)) continue;
      TradingSignal sig;
      sig.strategy = name_;
      sig.symbol = panel_.symbols()[static_cast<std::size_t>(s)];
      sig.side = prob > 0.5f ? Side::buy : Side::sell;
      sig.confidence = prob > 0.5f ? prob : 1.0 - prob;
      sig.source = "model";
      sig.horizon = p.horizon;
      sig.atr = 0;  // the executor takes the ATR from the symbol's feature state
      out.push_back(std::move(sig));
    }
    return out;
  }

 private:
  const MarketPanel& panel_;
  kernels::PanelView view_;
  const Predictor& predictor_;
  std::string name_;
  double min_edge_;
};

}  // namespace

RunServices::RunServices(const ReplaySubsystemFactory& factory, ReplayContext context, HookPipeline& hooks, std::string run)
    : run_(std::move(run)) {
  if (!factory) return;
  try {
    built_ = factory(context);
    services_ = context.services;
    auto start = [&](Service& service, const std::string& name) {
      if (service.state() != ServiceState::running && service.state() != ServiceState::degraded && service.mode() != SubsystemMode::off &&
          !service.start())
        throw std::runtime_error(run_ + ": " + name + " did not start: " + service.last_reason());
    };
    for (const auto& s : built_) {
      hooks.add(s);
      if (auto* service = dynamic_cast<Service*>(s.get())) start(*service, "subsystem " + s->name());
    }
    for (const auto& s : services_) start(*s, "service " + s->name());
  } catch (...) {
    stop_all();  // what started stops before the exception leaves the run (no destructor runs for this object)
    throw;
  }
}

RunServices::~RunServices() { stop_all(); }

void RunServices::stop_all() {
  auto stop = [this](Service* service) {
    if (service != nullptr && service->state() != ServiceState::stopped && service->state() != ServiceState::created)
      service->stop(run_ + " finished");
  };
  for (auto& s : built_) stop(dynamic_cast<Service*>(s.get()));
  for (auto& s : services_) stop(s.get());
}

std::map<std::string, std::int32_t> symbol_price_decimals(const MarketPanel& panel) {
  const std::vector<std::int32_t> decimals = panel_price_decimals(panel.view());
  std::map<std::string, std::int32_t> out;
  for (std::size_t s = 0; s < decimals.size(); ++s) out[panel.symbols()[s]] = decimals[s];
  return out;
}

ReplayResult replay_run(const MarketPanel& panel, const Config& config, const std::vector<LiveStrategy>& strategies,
                        const std::vector<std::shared_ptr<TradingSubsystem>>& subsystems, const ReplayOptions& options) {
  const std::int32_t t_end = options.t_end < 0 ? panel.n_bars() : options.t_end;
  if (options.t_begin < 0 || options.t_begin >= t_end || t_end > panel.n_bars())
    throw std::invalid_argument("replay window: bars [" + std::to_string(options.t_begin) + ", " + std::to_string(t_end) +
                                ") must be a non-empty part of the panel's " + std::to_string(panel.n_bars()) + " bars");
  const TimeNs interval = panel.interval_ms() * kNsPerMillisecond;
  const auto open_of = [&](std::int32_t t) { return panel.time_ms(t) * kNsPerMillisecond; };

  SimClock clock(open_of(0));
  EventBus bus(clock);
  bus.bind_owner_thread();
  ReplayResult result;

  std::vector<std::vector<std::optional<MarketBarClosed>>> bars;  // built once per bar time, per symbol
  if (options.publish_only) {
    // The ceiling: the same bars published to a bus with no subscriber.
    for (std::int32_t t = 0; t < t_end; ++t) {
      clock.advance_to(open_of(t) + interval);
      for (std::int32_t s = 0; s < panel.n_symbols(); ++s)
        if (auto b = market_bar_from_panel(panel, s, t)) {
          bus.publish(SourceName("replay"), std::move(*b));
          ++result.symbol_bars;
        }
      result.bars_done = t + 1;
    }
    result.events = bus.metrics().published;
    return result;
  }

  PolicyStore policy(options.policy_backend ? options.policy_backend() : std::make_unique<MemoryPolicyBackend>(), clock, &bus,
                     options.policy ? *options.policy : policy_from_config(config));
  RiskOS risk(options.risk_limits ? *options.risk_limits : RiskLimits::from_config(config), bus);
  Ledger ledger(options.ledger_path);
  // A resumed run: the state at its last commit, and the clock at that bar's close (timers of the services started
  // below count from there).
  boost::json::object resume;
  std::int32_t t_first = 0;
  if (options.resume) {
    const auto text = ledger.meta_get("checkpoint");
    if (!text) throw std::runtime_error("resume: the ledger " + options.ledger_path + " holds no checkpoint (a run recorded without checkpoints)");
    if (ledger.meta_get("finished")) throw std::runtime_error("resume: the run in " + options.ledger_path + " has finished");
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(*text, ec);
    if (ec || !v.is_object()) throw std::runtime_error("resume: the checkpoint in " + options.ledger_path + " is not a JSON object");
    resume = std::move(v.get_object());
    ckpt::version_check(resume, options.ledger_path);
    const std::int64_t t_done = ckpt::i64(resume, "t");
    if (t_done < 0 || t_done + 1 >= t_end)
      throw std::runtime_error("resume: the checkpoint is at bar " + std::to_string(t_done) + ", outside the window's " + std::to_string(t_end) +
                               " bars (another market or window than the run's?)");
    if (ckpt::i64(resume, "bar_open") != open_of(static_cast<std::int32_t>(t_done)))
      throw std::runtime_error("resume: the checkpoint's bar " + std::to_string(t_done) + " opened at " + time_format(ckpt::i64(resume, "bar_open")) +
                               " but the market's opens at " + time_format(open_of(static_cast<std::int32_t>(t_done))) + ": another market than the run's");
    t_first = static_cast<std::int32_t>(t_done) + 1;
    result.resumed_from = t_first;
    clock.advance_to(open_of(static_cast<std::int32_t>(t_done)) + interval);
    bus.ids_continue_after(ckpt::u64(resume, "last_event_id"));
    if (!options.event_log_path.empty()) event_log_truncate(options.event_log_path, ckpt::u64(resume, "event_log_bytes"));
  }
  HookOptions hook_options;
  hook_options.fail_safe = config.fail_safe;
  hook_options.log_dir = options.log_dir;
  HookPipeline hooks(bus, hook_options);
  for (const auto& s : subsystems) hooks.add(s);
  PaperExchangeConfig venue_config = options.exchange;
  venue_config.gaps = config.gaps;  // the venue's spread proxy treats a closure as the strategies' features do (QT_GAPS)
  PaperExchange exchange(venue_config, clock);
  // Subsystems built on this bus: started now, stopped before the bus ends, on every path out of the replay.
  std::vector<std::shared_ptr<Service>> services;
  const RunServices run_services(options.subsystem_factory,
                                 ReplayContext{config, bus, policy, risk, exchange, panel, options.log_dir, services}, hooks, "replay");
  AITradingEngine engine;
  engine.gaps_set(config.gaps);
  engine.price_decimals_set(symbol_price_decimals(panel));  // as the batch feature bank behind evolve
  if (options.resume) {
    engine.restore(ckpt::obj(resume, "engine"));
  } else {
    for (LiveStrategy s : strategies) {
      if (s.symbols.empty()) s.symbols = panel.symbols();  // the backtester splits the capital over every symbol
      engine.strategy_add(std::move(s));
    }
  }
  std::unique_ptr<PanelModelSignals> models;
  if (options.predictor != nullptr) {
    models = std::make_unique<PanelModelSignals>(panel, *options.predictor,
                                                 options.predictor_name.empty() ? options.predictor->name() : options.predictor_name,
                                                 options.model_min_edge);
    engine.model_source_set(models.get());
  }
  // The venue sees each bar before the executor does: fills at the bar's open come before decisions at its close.
  Subscription venue = bus.subscribe<MarketBarClosed>("paper_exchange", [&](const MarketBarClosed& b) { exchange.on_bar(b); });
  std::unique_ptr<EventRecorder> recorder;
  if (!options.event_log_path.empty()) recorder = std::make_unique<EventRecorder>(bus, options.event_log_path, 0);
  if (options.resume) {
    exchange.restore(ckpt::obj(resume, "exchange"));
    risk.restore(ckpt::obj(resume, "risk"));
  }
  EventDrivenExecutor executor(config, bus, exchange, risk, policy, ledger, hooks, engine, options.executor);
  if (options.strategy_lookup) executor.strategies_follow(options.strategy_lookup);
  executor.trading_from(open_of(options.t_begin) + interval);
  if (!executor.start()) throw std::runtime_error("replay: the executor did not start: " + executor.last_reason());
  if (options.resume) {
    executor.restore(ckpt::obj(resume, "executor"));
    ledger.meta_put("resumed_at", time_format(open_of(t_first)));
  } else {
    ledger.meta_put("data_t0", time_format(open_of(0)));
    ledger.meta_put("window", "[" + std::to_string(options.t_begin) + ", " + std::to_string(t_end) + ")");
    ledger.meta_put("stage", std::string(stage_name(config.stage)));
  }
  result.initial_equity = executor.initial_equity();
  std::int32_t t_now = t_first;  // the bar time in progress (the checkpoint names the last one committed)
  if (options.checkpoint)
    executor.before_commit_set([&] {
      std::uint64_t log_bytes = 0;
      if (recorder) {
        recorder->flush(true);  // durable before the commit that names its length
        log_bytes = recorder->file_bytes();
      }
      const boost::json::object state{{"version", ckpt::kVersion},
                                      {"t", t_now},
                                      {"bar_open", open_of(t_now)},
                                      {"last_event_id", bus.last_id()},
                                      {"event_log_bytes", log_bytes},
                                      {"engine", engine.checkpoint()},
                                      {"executor", executor.checkpoint()},
                                      {"exchange", exchange.checkpoint()},
                                      {"risk", risk.checkpoint()}};
      ledger.meta_put("checkpoint", boost::json::serialize(state));
    });

  const kernels::PanelView view = panel.view();
  for (std::int32_t t = t_first; t < t_end; ++t) {
    t_now = t;
    if (options.stop.stop_requested()) {
      result.stopped = true;
      break;
    }
    clock.advance_to(open_of(t) + interval);
    if (options.before_bar) {
      ReplayControl control{risk, policy, bus, executor, exchange};
      options.before_bar(t, control);
    }
    if (t == t_end - 1) executor.final_bar_set(open_of(t));
    for (std::int32_t s = 0; s < panel.n_symbols(); ++s) {
      const std::int64_t at = view.at(s, t);
      const double o = view.open[at], h = view.high[at], l = view.low[at], c = view.close[at];
      if (!(std::isfinite(o) && std::isfinite(h) && std::isfinite(l) && std::isfinite(c))) continue;  // a missing bar
      auto b = market_bar_from_panel(panel, s, t);
      if (!b) continue;
      bus.publish(SourceName("replay"), std::move(*b));
      ++result.symbol_bars;
    }
    executor.cycle_end();
    // A replay's outputs must be whole: a subscriber that failed (the venue, the event log on a full disk) ends it.
    if (bus.metrics().handler_errors > 0)
      for (const SubscriberStats& sub : bus.subscribers())
        if (sub.errors > 0)
          throw std::runtime_error("replay stopped at " + time_format(open_of(t)) + ": " + sub.name + " failed: " + sub.last_error +
                                   " (the ledger " + options.ledger_path + " holds the bars before)");
    if (executor.state() == ServiceState::faulted)
      throw std::runtime_error("replay stopped at " + time_format(open_of(t)) + ": " + executor.last_reason() + " (the ledger " +
                               options.ledger_path + " holds the bars before)");
    result.bars_done = t + 1;
    if (options.progress) options.progress(t + 1, t_end);
  }
  if (!result.stopped) ledger.meta_put("finished", time_format(open_of(t_end - 1) + interval));  // nothing left to resume
  executor.before_commit_set({});
  executor.stop("replay finished");
  ledger.commit();
  if (recorder) recorder->flush(true);
  result.stats = executor.stats();
  result.final_equity = exchange.equity();
  result.events = bus.metrics().published;
  return result;
}

}  // namespace qtos
