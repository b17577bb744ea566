// The control plane of `qtos serve`: the HTTP API's reads and controls as commands on the bus owner thread.
#include "api/serve/serve_plane.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "api/redis/job_kinds.hpp"
#include "cpu/backend/device.hpp"
#include "cpu/ranking/opportunity.hpp"
#include "cpu/registry/backends.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "models/evaluation.hpp"
#include "models/features.hpp"
#include "models/model.hpp"
#include "models/registry.hpp"
#include "runtime/analytics/metrics.hpp"
#include "runtime/bus/event_log.hpp"
#include "runtime/ranking/panel_ranking.hpp"
#include "runtime/strategy/evolution.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {

namespace json = boost::json;

namespace {

constexpr std::chrono::milliseconds kCommandTimeout{5'000};

json::value num(double v) { return std::isfinite(v) ? json::value(v) : json::value(nullptr); }
json::value when(TimeNs t) { return t > 0 ? json::value(time_format(t)) : json::value(nullptr); }

json::object policy_json(const Policy& p) {
  json::object o;
  o["version"] = p.version;
  o["risk_mode"] = std::string(enum_name(p.risk_mode));
  json::array allowed, blocked;
  for (const auto& s : p.allowed_strategies) allowed.emplace_back(s);
  for (const auto& s : p.blocked_strategies) blocked.emplace_back(s);
  o["allowed_strategies"] = std::move(allowed);
  o["blocked_strategies"] = std::move(blocked);
  o["min_confidence"] = p.min_confidence;
  o["max_risk_per_trade"] = p.max_risk_per_trade;
  o["max_open_positions"] = p.max_open_positions;
  o["max_leverage"] = p.max_leverage;
  o["max_daily_drawdown_pct"] = p.max_daily_drawdown_pct;
  o["max_open_drawdown_pct"] = p.max_open_drawdown_pct;
  o["top_n_universe"] = p.top_n_universe;
  json::object extra;
  for (const auto& [k, v] : p.extra) extra[k] = v;
  o["extra"] = std::move(extra);
  o["updated_at"] = when(p.updated_at);
  o["updated_by"] = p.updated_by;
  o["reason"] = p.reason;
  return o;
}

json::object order_json(const OrderRecord& r, bool with_trace) {
  json::object o;
  o["id"] = r.request.order_id;
  o["client_order_id"] = r.request.client_order_id;
  o["strategy"] = r.request.strategy.str();
  o["symbol"] = r.request.symbol.str();
  o["side"] = std::string(enum_name(r.request.side));
  o["type"] = std::string(enum_name(r.request.type));
  o["purpose"] = std::string(enum_name(r.purpose));
  o["status"] = std::string(enum_name(r.status));
  o["qty"] = r.request.qty;
  o["quote_qty"] = r.request.quote_qty;
  o["price"] = r.request.price;
  o["stop_price"] = r.request.stop_price;
  o["filled_qty"] = r.filled_qty;
  o["avg_price"] = num(r.avg_price);
  o["fee"] = r.fee;
  o["position_id"] = r.position_id;
  o["created"] = when(r.created);
  o["updated"] = when(r.updated);
  o["deny_reason"] = r.deny_reason ? json::value(std::string(enum_name(*r.deny_reason))) : json::value(nullptr);
  o["repeats"] = r.repeats;
  o["venue_code"] = r.venue_code;
  o["detail"] = r.detail;
  o["policy_version"] = r.policy_version;
  o["confidence"] = r.confidence;
  if (with_trace) {
    json::array trace;
    for (const DecisionStep& s : r.trace)
      trace.push_back(json::object{{"hook", s.hook},
                                   {"subsystem", s.subsystem},
                                   {"mode", std::string(mode_name(s.mode))},
                                   {"before", s.before},
                                   {"after", s.after},
                                   {"applied", s.applied},
                                   {"reason", s.reason}});
    o["trace"] = std::move(trace);
  }
  return o;
}

json::object trade_json(const ClosedTrade& t) {
  return json::object{{"position_id", t.position_id},
                      {"strategy", t.strategy.str()},
                      {"symbol", t.symbol.str()},
                      {"side", std::string(enum_name(t.side))},
                      {"qty", t.qty},
                      {"entry_price", t.entry_price},
                      {"exit_price", t.exit_price},
                      {"fees", t.fees},
                      {"pnl", t.pnl},
                      {"return", num(t.ret)},
                      {"entry_time", when(t.entry_time)},
                      {"exit_time", when(t.exit_time)},
                      {"reason", std::string(enum_name(t.reason))},
                      {"classification", t.classification}};
}

json::object strategy_json(const StrategyRecord& r) {
  json::object o{{"id", r.id},
                 {"status", std::string(enum_name(r.status))},
                 {"rules", r.rules},
                 {"genome", genome_encode(r.genome)},
                 {"generation", r.generation},
                 {"origin", r.origin},
                 {"created_ms", r.created_ms},
                 {"updated_ms", r.updated_ms}};
  for (const auto& [key, text] : {std::pair{"backtest_metrics", &r.backtest_metrics}, std::pair{"shadow_metrics", &r.shadow_metrics},
                                  std::pair{"live_metrics", &r.live_metrics}}) {
    boost::system::error_code ec;
    json::value v = text->empty() ? json::value(nullptr) : json::parse(*text, ec);
    o[key] = ec ? json::value(*text) : v;
  }
  return o;
}

json::object metrics_json(const StrategyMetrics& m) {
  return json::object{{"strategy", m.strategy_id},     {"trades", m.total_trades}, {"win_rate", m.win_rate},
                      {"avg_profit", m.avg_profit},    {"sharpe", num(m.sharpe_ratio)}, {"max_drawdown", m.max_drawdown}};
}

Error unavailable() { return Error{ErrorCode::stopped, "the OS is not running (starting or stopping)"}; }

/// A policy change on a node whose Redis is unreachable is refused before it is tried: the node keeps the last shared
/// policy rather than diverging from the other nodes, and the bus thread never waits on a dead connection.
std::optional<Error> redis_refusal(const ServeBinding& b) {
  if (b.scale_out == nullptr || !b.scale_out->degraded()) return std::nullopt;
  const json::value h = b.scale_out->health_json();
  const json::value* why = h.as_object().if_contains("error");
  return Error{ErrorCode::storage, "the shared policy store (Redis, QT_REDIS_URL) is unreachable" +
                                       (why != nullptr && why->is_string() && !why->as_string().empty() ? ": " + std::string(why->as_string()) : std::string()) +
                                       "; policy changes are refused until it is back (this node keeps policy version " +
                                       std::to_string(b.policy->version()) + ")"};
}

/// A worker's hex-float text (exact_double) as a JSON number (null when it is not finite or not a number).
json::value hex_number(const json::value& v) {
  if (!v.is_string()) return v;
  try {
    return num(redis::exact_double_parse(std::string(v.as_string()), "result"));
  } catch (const std::invalid_argument&) {
    return json::value(nullptr);
  }
}

}  // namespace

// ---- the event ring -------------------------------------------------------------------------------------------------

void EventRing::add(const AnyEvent& event) {
  ApiEvent e;
  e.id = event_header(event).id;
  e.type = std::string(event_type_name(event_type(event)));
  json::object data = event_json(event);
  data["ts"] = time_format(event_header(event).ts);
  data["source"] = event_header(event).source.str();
  e.data = std::move(data);
  std::lock_guard lock(mutex_);
  ++types_[e.type];
  if (const auto* d = std::get_if<OrderDenied>(&event)) ++denials_[std::string(enum_name(d->reason))];
  events_.push_back(std::move(e));
  while (events_.size() > capacity_) events_.pop_front();
}

std::vector<ApiEvent> EventRing::since(std::uint64_t since, std::size_t limit) const {
  std::lock_guard lock(mutex_);
  std::vector<ApiEvent> out;
  auto it = std::upper_bound(events_.begin(), events_.end(), since, [](std::uint64_t s, const ApiEvent& e) { return s < e.id; });
  for (; it != events_.end() && out.size() < limit; ++it) out.push_back(*it);
  return out;
}

std::map<std::string, std::uint64_t> EventRing::type_counts() const {
  std::lock_guard lock(mutex_);
  return types_;
}

std::map<std::string, std::uint64_t> EventRing::denial_counts() const {
  std::lock_guard lock(mutex_);
  return denials_;
}

// ---- the plane ------------------------------------------------------------------------------------------------------

ServePlane::ServePlane(CommandQueue& commands, std::string ledger_path, std::string repo_path, std::string models_dir,
                       std::shared_ptr<const MarketPanel> market, IntegrationStage stage)
    : commands_(commands),
      ledger_path_(std::move(ledger_path)),
      repo_path_(std::move(repo_path)),
      models_dir_(std::move(models_dir)),
      market_(std::move(market)),
      stage_(stage) {}

ServePlane::~ServePlane() { jobs_stop(); }

void ServePlane::bind(std::optional<ServeBinding> binding) {
  binding_ = binding;
  if (!binding_) ledger_.reset();
}

void ServePlane::ranking_set(const OpportunitiesUpdated& ranking) { ranking_ = ranking; }

template <class F>
auto ServePlane::on_owner(F fn) {
  auto r = commands_.call(
      [this, fn = std::move(fn)]() mutable {
        if (!binding_) throw std::runtime_error("the OS is not running");
        return fn(*binding_);
      },
      kCommandTimeout);
  if (!r) throw std::runtime_error("the OS did not answer within 5 s (stopping?)");
  return std::move(*r);
}

template <class F>
Result<json::value> ServePlane::on_owner_result(F fn) {
  auto r = commands_.call(
      [this, fn = std::move(fn)]() mutable -> Result<json::value> {
        if (!binding_) return unavailable();
        return fn(*binding_);
      },
      kCommandTimeout);
  if (!r) return unavailable();
  return std::move(*r);
}

Ledger& ServePlane::ledger() {
  if (!ledger_) ledger_ = std::make_unique<Ledger>(ledger_path_, store::OpenMode::existing);
  return *ledger_;
}

json::value ServePlane::health_ai() {
  json::value out = on_owner([this](ServeBinding& b) {
    json::value v = json::parse(health_ai_json(::qtos::health_ai(*b.subsystems, stage_, b.risk->brake_engaged())));
    v.as_object()["trading_state"] = std::string(enum_name(b.risk->state()));
    if (b.scale_out != nullptr) v.as_object()["scale_out"] = b.scale_out->health_json();
    return v;
  });
  // The heartbeats are read on this thread (a Redis round trip never runs on the bus thread).
  if (redis_reader_) {
    auto list = redis::heartbeats_list(*redis_reader_, redis::JobKeys::of(redis_->queue.ns), redis_->queue.heartbeat_every);
    out.as_object()["workers"] = list.ok() ? redis::heartbeats_json(list.value()) : json::value(json::object{{"error", list.error().message}});
  }
  return out;
}

json::value ServePlane::policy() {
  return on_owner([](ServeBinding& b) { return json::value(policy_json(*b.policy->current())); });
}

json::value ServePlane::policy_history(std::uint64_t from_version, std::size_t limit) {
  return on_owner([=](ServeBinding& b) {
    json::array out;
    auto h = b.policy->history(std::max<std::uint64_t>(1, from_version), limit);
    if (!h.ok() && h.error().code == ErrorCode::storage && b.scale_out != nullptr)
      throw PlaneUnavailable("the policy history is on the shared store (Redis, QT_REDIS_URL), which is unreachable now: " +
                             h.error().message + "; retry when /health/ai shows scale_out ok");
    if (!h.ok()) throw std::runtime_error(h.error().message);
    for (const Policy& p : h.value()) out.push_back(policy_json(p));
    return json::value(std::move(out));
  });
}

json::value ServePlane::opportunities() {
  return on_owner([this](ServeBinding& b) {
    // The ranker's last ranking has each symbol's sub-scores (robust-z units; null: the criterion is absent).
    const Ranking* ranking = b.ranker != nullptr && b.ranker->last_ranking() ? &*b.ranker->last_ranking() : nullptr;
    json::array top;
    for (const Opportunity& o : ranking_.top) {
      json::object row{{"symbol", o.symbol.str()}, {"score", num(o.score)}, {"volume_24h", num(o.volume_24h)}};
      if (ranking != nullptr)
        for (const SymbolScore& r : ranking->rows)
          if (r.symbol == o.symbol.view()) {
            json::object sub;
            for (int c = 0; c < kCriterionCount; ++c) sub[enum_name(static_cast<Criterion>(c))] = num(r.sub[static_cast<std::size_t>(c)]);
            row["rank"] = r.rank;
            row["sub_scores"] = std::move(sub);
            break;
          }
      top.push_back(std::move(row));
    }
    return json::value(json::object{{"universe_size", ranking_.universe_size}, {"ranked_at", when(ranking_.header.ts)}, {"top", std::move(top)}});
  });
}

json::value ServePlane::strategies() {
  return on_owner([this](ServeBinding&) {
    json::array out;
    const StrategyRepository repo(repo_path_, store::OpenMode::existing);
    for (const StrategyRecord& r : repo.list()) out.push_back(strategy_json(r));
    return json::value(std::move(out));
  });
}

Result<json::value> ServePlane::strategy(std::string_view id) {
  return on_owner_result([this, id = std::string(id)](ServeBinding&) -> Result<json::value> {
    const StrategyRepository repo(repo_path_, store::OpenMode::existing);
    const auto r = repo.get(id);
    if (!r) return Error{ErrorCode::not_found, "no strategy '" + id + "'"};
    json::object o = strategy_json(*r);
    json::array history;
    for (const StrategyTransition& t : repo.history(r->id))
      history.push_back(json::object{{"from", std::string(enum_name(t.from))}, {"to", std::string(enum_name(t.to))}, {"at_ms", t.at_ms}, {"reason", t.reason}});
    o["history"] = std::move(history);
    return json::value(std::move(o));
  });
}

json::value ServePlane::models() {
  // The registry is thread-safe and shared with `qtos retrain` and `qtos models` (SQLite WAL): read from this thread.
  // A GET creates nothing: without a registry yet, the list is empty.
  if (!std::filesystem::exists(std::filesystem::path(models_dir_) / "registry.db"))
    return json::value(json::object{{"registry", models_dir_}, {"models", json::array{}}});
  const models::ModelRegistry registry(models_dir_, models::RegistryOptions{store::OpenMode::existing});
  json::array out;
  for (const models::ModelRecord& r : registry.list()) {
    json::object metrics;
    for (const auto& [stage, text] : r.stage_metrics) {
      boost::system::error_code ec;
      json::value m = json::parse(text, ec);
      metrics[stage] = ec ? json::value(nullptr) : std::move(m);
    }
    out.push_back(json::object{{"name", r.name},
                               {"version", r.version},
                               {"status", std::string(models::model_status_name(r.status))},
                               {"kind", r.kind},
                               {"parent_version", r.parent_version},
                               {"created_ms", r.created_ms},
                               {"updated_ms", r.updated_ms},
                               {"metrics", std::move(metrics)}});
  }
  return json::value(json::object{{"registry", registry.root()}, {"models", std::move(out)}});
}

json::value ServePlane::positions() {
  return on_owner([](ServeBinding& b) {
    json::array out;
    for (const VenuePosition& p : b.exchange->positions())
      out.push_back(json::object{{"symbol", p.symbol.str()},
                                 {"qty", p.qty},
                                 {"side", p.qty >= 0 ? "LONG" : "SHORT"},
                                 {"entry_price", p.entry_price},
                                 {"mark_price", p.mark_price},
                                 {"unrealized_pnl", p.unrealized_pnl},
                                 {"leverage", p.leverage},
                                 {"liquidation_price", p.liquidation_price}});
    return json::value(std::move(out));
  });
}

json::value ServePlane::orders(std::size_t limit) {
  return on_owner([this, limit](ServeBinding&) {
    json::array out;
    OrderQuery q;
    q.limit = static_cast<std::int64_t>(limit);
    for (const OrderRecord& r : ledger().orders(q)) out.push_back(order_json(r, false));
    return json::value(std::move(out));
  });
}

Result<json::value> ServePlane::order(std::string_view id) {
  std::uint64_t n = 0;
  for (char c : id) {
    if (c < '0' || c > '9' || n > UINT64_MAX / 10) return Error{ErrorCode::not_found, "no order '" + std::string(id) + "'"};
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return on_owner_result([this, n](ServeBinding&) -> Result<json::value> {
    const auto r = ledger().order_get(n);
    if (!r) return Error{ErrorCode::not_found, "no order " + std::to_string(n)};
    return json::value(order_json(*r, true));
  });
}

json::value ServePlane::trades(std::size_t limit) {
  return on_owner([this, limit](ServeBinding&) {
    const auto all = ledger().trades();
    json::array out;
    for (std::size_t i = all.size() > limit ? all.size() - limit : 0; i < all.size(); ++i) out.push_back(trade_json(all[i]));
    return json::value(std::move(out));
  });
}

json::value ServePlane::analytics_system() {
  return on_owner([this](ServeBinding& b) {
    const auto curve = ledger().equity_curve();
    const auto trades = ledger().trades();
    const double initial = curve.empty() ? b.exchange->equity() : curve.front().equity;
    const SystemMetrics m = system_metrics(curve, trades, initial, 8766);
    std::vector<double> equity;
    equity.reserve(curve.size());
    for (const EquityPoint& p : curve) equity.push_back(p.equity);
    const std::vector<double> dd = drawdown_series(equity);
    // The curves for the dashboard, at most 500 points each.
    json::array points;
    const std::size_t step = std::max<std::size_t>(1, curve.size() / 500);
    for (std::size_t i = 0; i < curve.size(); i += step)
      points.push_back(json::object{{"ts", time_format(curve[i].ts)},
                                    {"equity", curve[i].equity},
                                    {"drawdown", dd[i]},
                                    {"risk_mode", std::string(enum_name(curve[i].risk_mode))}});
    return json::value(json::object{{"equity", b.exchange->equity()},
                                    {"initial_equity", initial},
                                    {"daily_pnl", m.daily_pnl},
                                    {"total_return", m.total_return},
                                    {"sharpe", num(m.sharpe_ratio)},
                                    {"max_drawdown", m.max_drawdown},
                                    {"drawdown", dd.empty() ? 0.0 : dd.back()},
                                    {"trades", m.total_trades},
                                    {"win_rate", m.win_rate},
                                    {"open_positions", static_cast<std::int64_t>(b.exchange->positions().size())},
                                    {"fees", m.fees},
                                    {"risk_mode", std::string(enum_name(b.policy->current()->risk_mode))},
                                    {"trading_state", std::string(enum_name(b.risk->state()))},
                                    {"bar", bar_.load()},
                                    {"curve", std::move(points)}});
  });
}

json::value ServePlane::analytics_strategies() {
  return on_owner([this](ServeBinding&) {
    const auto trades = ledger().trades();
    const TimeNs span = trades.empty() ? 0 : trades.back().exit_time - trades.front().entry_time;
    json::array out;
    for (const StrategyMetrics& m : metrics_by_strategy(trades, span)) out.push_back(metrics_json(m));
    return json::value(std::move(out));
  });
}

std::vector<ApiEvent> ServePlane::events_since(std::uint64_t since, std::size_t limit) { return events_.since(since, limit); }

std::string ServePlane::metrics_text() {
  return on_owner([this](ServeBinding& b) {
    std::string out;
    auto metric = [&](const std::string& name, const std::string& help, const char* type) {
      out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    auto line = [&](const std::string& name, double v, const std::string& labels = {}) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + buf + "\n";
    };
    const BusMetrics bm = b.bus->metrics();
    metric("qtos_bus_events_published_total", "events dispatched on the bus", "counter");
    line("qtos_bus_events_published_total", static_cast<double>(bm.published));
    metric("qtos_bus_events_dropped_total", "market-data events dropped because the post queue was full", "counter");
    line("qtos_bus_events_dropped_total", static_cast<double>(bm.dropped));
    metric("qtos_bus_handler_errors_total", "subscriber handlers that threw", "counter");
    line("qtos_bus_handler_errors_total", static_cast<double>(bm.handler_errors));
    metric("qtos_bus_queue_depth", "events waiting in the post queue", "gauge");
    line("qtos_bus_queue_depth", static_cast<double>(bm.queue_depth));
    const ExecutorStats& st = b.executor->stats();
    metric("qtos_orders_total", "orders by outcome", "counter");
    line("qtos_orders_total", static_cast<double>(st.orders), "outcome=\"submitted\"");
    line("qtos_orders_total", static_cast<double>(st.denied), "outcome=\"denied\"");
    line("qtos_orders_total", static_cast<double>(st.rejected), "outcome=\"rejected\"");
    line("qtos_orders_total", static_cast<double>(st.unknown), "outcome=\"unknown\"");
    metric("qtos_fills_total", "fills", "counter");
    line("qtos_fills_total", static_cast<double>(st.fills));
    metric("qtos_trades_total", "closed trades", "counter");
    line("qtos_trades_total", static_cast<double>(st.trades));
    metric("qtos_denials_total", "denials by reason (published OrderDenied events)", "counter");
    for (const auto& [reason, n] : events_.denial_counts()) line("qtos_denials_total", static_cast<double>(n), "reason=\"" + reason + "\"");
    metric("qtos_equity", "account equity (quote)", "gauge");
    line("qtos_equity", b.exchange->equity());
    const double initial = b.executor->initial_equity();
    metric("qtos_pnl", "equity minus the initial equity (quote)", "gauge");
    line("qtos_pnl", b.exchange->equity() - initial);
    metric("qtos_open_positions", "open positions", "gauge");
    line("qtos_open_positions", static_cast<double>(b.exchange->positions().size()));
    metric("qtos_emergency_brake", "1 while the brake is engaged", "gauge");
    line("qtos_emergency_brake", b.risk->brake_engaged() ? 1 : 0);
    metric("qtos_subsystem_decisions_total", "decisions per AI subsystem", "counter");
    for (const auto& s : b.subsystems->all()) {
      const SubsystemStatus ss = s->status();
      line("qtos_subsystem_decisions_total", static_cast<double>(ss.decisions), "subsystem=\"" + ss.name + "\"");
    }
    metric("qtos_subsystem_errors_total", "errors per AI subsystem", "counter");
    for (const auto& s : b.subsystems->all()) {
      const SubsystemStatus ss = s->status();
      line("qtos_subsystem_errors_total", static_cast<double>(ss.errors), "subsystem=\"" + ss.name + "\"");
    }
    metric("qtos_bus_dispatch_seconds", "dispatch time of sampled events (quantiles)", "summary");
    for (double q : {0.5, 0.99})
      line("qtos_bus_dispatch_seconds", static_cast<double>(bm.dispatch_ns.percentile(q)) * 1e-9, "quantile=\"" + std::to_string(q).substr(0, 4) + "\"");
    metric("qtos_replay_bar", "the bar the service is at", "gauge");
    line("qtos_replay_bar", bar_.load());
    return out;
  });
}

json::value ServePlane::locks() {
  return on_owner([](ServeBinding& b) {
    json::array out;
    for (const RiskOS::Lock& l : b.risk->locks()) out.push_back(json::object{{"id", l.id}, {"until", when(l.until)}, {"reason", l.reason}});
    return json::value(std::move(out));
  });
}

Result<json::value> ServePlane::policy_update(const PolicyPatch& patch, std::uint64_t expected_version, const Actor& actor) {
  return on_owner_result([=](ServeBinding& b) -> Result<json::value> {
    if (auto refused = redis_refusal(b)) return *refused;
    auto r = b.policy->update(expected_version, [&](Policy& p) { patch.apply(p); }, actor.reason, actor.name);
    if (!r.ok()) return r.error();
    return json::value(policy_json(*r.value()));
  });
}

Result<json::value> ServePlane::risk_mode_set(RiskMode mode, const Actor& actor) {
  return on_owner_result([=](ServeBinding& b) -> Result<json::value> {
    if (auto refused = redis_refusal(b)) return *refused;
    auto r = b.policy->update(b.policy->version(), [&](Policy& p) { p.risk_mode = mode; }, actor.reason, actor.name);
    if (!r.ok()) return r.error();
    return json::value(policy_json(*r.value()));
  });
}

Result<json::value> ServePlane::emergency_brake_set(bool on, const Actor& actor) {
  return on_owner_result([=](ServeBinding& b) -> Result<json::value> {
    b.risk->brake_set(on, actor.name, actor.reason);
    return json::value(json::object{{"emergency_brake", b.risk->brake_engaged()}, {"trading_state", std::string(enum_name(b.risk->state()))}});
  });
}

Result<json::value> ServePlane::subsystem_mode_set(Subsystem subsystem, SubsystemMode mode, const Actor& actor) {
  return on_owner_result([=](ServeBinding& b) -> Result<json::value> {
    std::string name(subsystem_name(subsystem));
    if (subsystem == Subsystem::hfos) name = "AI-HFOS";
    AiSubsystem* s = b.subsystems->find(name);
    if (s == nullptr) return Error{ErrorCode::unsupported, name + " does not run in this service"};
    if (mode == SubsystemMode::protective && subsystem != Subsystem::self_healing)
      return Error{ErrorCode::invalid, "PROTECTIVE is Self-Healing's mode only"};
    const SubsystemMode before = s->mode();
    s->set_mode(mode, actor.name + ": " + actor.reason);
    // A subsystem raised from OFF starts now (its subscriptions and timers).
    if (mode != SubsystemMode::off && s->state() != ServiceState::running && s->state() != ServiceState::degraded) s->start();
    return json::value(json::object{{"subsystem", s->name()}, {"mode", std::string(mode_name(s->mode()))}, {"previous", std::string(mode_name(before))},
                                    {"state", std::string(enum_name(s->state()))}});
  });
}

Result<json::value> ServePlane::stage_set(IntegrationStage stage, const Actor& actor) {
  return on_owner_result([=, this](ServeBinding& b) -> Result<json::value> {
    if (stage == IntegrationStage::autonomy && !exchange_is_simulated(b.config->exchange))
      return Error{ErrorCode::blocked, "AUTONOMY runs only against paper or a testnet exchange"};
    json::object modes;
    for (std::size_t i = 0; i < kSubsystemCount; ++i) {
      const auto sub = static_cast<Subsystem>(i);
      std::string name(subsystem_name(sub));
      if (sub == Subsystem::hfos) name = "AI-HFOS";
      AiSubsystem* s = b.subsystems->find(name);
      if (s == nullptr) continue;
      const SubsystemMode mode = stage_preset(sub, stage);
      if (mode != s->mode()) s->set_mode(mode, actor.name + ": stage " + std::string(stage_name(stage)));
      if (mode != SubsystemMode::off && s->state() != ServiceState::running && s->state() != ServiceState::degraded) s->start();
      modes[s->name()] = std::string(mode_name(s->mode()));
    }
    stage_ = stage;
    return json::value(json::object{{"integration_stage", std::string(stage_name(stage))}, {"modes", std::move(modes)}});
  });
}

Result<json::value> ServePlane::strategy_promote(std::string_view id, const Actor& actor) {
  return on_owner_result([=, id = std::string(id)](ServeBinding& b) -> Result<json::value> {
    if (b.generator == nullptr) return Error{ErrorCode::unsupported, "the strategy generator does not run in this service"};
    auto r = b.generator->promote_strategy(id, actor.name + ": " + actor.reason);
    if (!r.ok()) return r.error();
    return json::value(strategy_json(r.value()));
  });
}

Result<json::value> ServePlane::strategy_retire(std::string_view id, const Actor& actor) {
  return on_owner_result([=, id = std::string(id)](ServeBinding& b) -> Result<json::value> {
    if (b.generator == nullptr) return Error{ErrorCode::unsupported, "the strategy generator does not run in this service"};
    auto r = b.generator->retire_strategy(id, actor.name + ": " + actor.reason);
    if (!r.ok()) return r.error();
    return json::value(strategy_json(r.value()));
  });
}

Result<json::value> ServePlane::model_promote(std::string_view name_view, const Actor& actor) {
  const std::string name(name_view);
  if (!models::model_name_valid(name) || !std::filesystem::exists(std::filesystem::path(models_dir_) / "registry.db"))
    return Error{ErrorCode::no_model, "no model '" + name + "'"};
  models::ModelRegistry registry(models_dir_, models::RegistryOptions{store::OpenMode::existing});
  // The newest SHADOW version becomes ACTIVE; without one, the newest CANDIDATE moves on to SHADOW (one stage at a time,
  // as `qtos models promote` moves it).
  std::optional<models::ModelRecord> pick;
  for (const models::ModelRecord& r : registry.list(name))
    if (r.status == models::ModelStatus::shadow) pick = r;
  if (!pick)
    for (const models::ModelRecord& r : registry.list(name))
      if (r.status == models::ModelStatus::candidate) pick = r;
  if (!pick) return Error{ErrorCode::no_model, "model '" + name + "' has no SHADOW or CANDIDATE version to promote"};
  const std::optional<models::ModelRecord> before = registry.active(name);
  auto done = registry.promote(name, pick->version);
  if (!done.ok()) return done.error();
  const models::ModelRecord& r = done.value();
  if (r.status == models::ModelStatus::active) {
    double score = 0;
    if (const auto it = r.stage_metrics.find("CANDIDATE"); it != r.stage_metrics.end()) {
      try {
        score = models::Metrics::from_json(it->second).rank_ic;
      } catch (const std::exception&) {
        score = 0;  // metrics of an older layout: the promotion stands, the event carries no score
      }
    }
    // Announced on the bus (the owner thread publishes): the event feed, the notifier and the subsystems see it.
    const std::uint32_t previous = before ? static_cast<std::uint32_t>(before->version) : 0;
    (void)on_owner_result([&](ServeBinding& b) -> Result<json::value> {
      b.bus->publish(SourceName("api"), ModelPromoted{.model = StrategyId(name), .version = static_cast<std::uint32_t>(r.version),
                                                     .previous_version = previous, .validation_score = score});
      return json::value(nullptr);
    });
  }
  spdlog::info("api: {} promoted model {} v{} to {}", actor.name, name, r.version, models::model_status_name(r.status));
  return json::value(json::object{{"name", name}, {"version", r.version}, {"status", std::string(models::model_status_name(r.status))}});
}

Result<json::value> ServePlane::position_close(std::string_view symbol, const Actor& actor) {
  if (symbol.empty() || symbol.size() > Symbol::kCapacity) return Error{ErrorCode::not_found, "no position in '" + std::string(symbol) + "'"};
  return on_owner_result([=, sym = Symbol(symbol)](ServeBinding& b) -> Result<json::value> {
    auto r = b.executor->position_exit(sym, actor.name + ": " + actor.reason);
    if (!r.ok()) return r.error();
    return json::value(json::object{{"symbol", sym.str()}, {"exit_order", r.value()}});
  });
}

Result<json::value> ServePlane::lock_delete(std::string_view id, const Actor&) {
  return on_owner_result([id = std::string(id)](ServeBinding& b) -> Result<json::value> {
    if (!b.risk->lock_release(id)) return Error{ErrorCode::not_found, "no lock '" + id + "' in force"};
    return json::value(json::object{{"released", id}});
  });
}

// ---- jobs -------------------------------------------------------------------------------------------------------------

Result<json::value> ServePlane::job_start(JobKind kind, const json::object& params, const Actor&) {
  auto job = std::make_shared<ServeJob>();
  job->kind = kind;
  const std::int32_t upto = std::max<std::int32_t>(2, bar_.load());
  std::int64_t top = 20, population = 40, generations = 5;
  auto int_param = [&](const char* key, std::int64_t& out, std::int64_t lo, std::int64_t hi) -> std::optional<Error> {
    const auto it = params.find(key);
    if (it == params.end()) return std::nullopt;
    if (!it->value().is_int64() || it->value().as_int64() < lo || it->value().as_int64() > hi)
      return Error{ErrorCode::invalid, std::string(key) + ": expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi)};
    out = it->value().as_int64();
    return std::nullopt;
  };
  if (auto e = int_param("top", top, 1, 10'000)) return *e;
  if (auto e = int_param("population", population, 4, 10'000)) return *e;
  if (auto e = int_param("generations", generations, 1, 1'000)) return *e;
  // retrain: the model kind, its registry name, epochs and seed (the same defaults as `qtos retrain`).
  std::int64_t epochs = 20, seed = 42;
  if (auto e = int_param("epochs", epochs, 1, 10'000)) return *e;
  if (auto e = int_param("seed", seed, 0, INT64_MAX)) return *e;
  std::string model_text = "mlp", name;
  auto text_param = [&](const char* key, std::string& out) -> std::optional<Error> {
    const auto it = params.find(key);
    if (it == params.end()) return std::nullopt;
    if (!it->value().is_string()) return Error{ErrorCode::invalid, std::string(key) + ": expected a string"};
    out = std::string(it->value().as_string());
    return std::nullopt;
  };
  if (auto e = text_param("model", model_text)) return *e;
  if (auto e = text_param("name", name)) return *e;
  models::ModelKind model_kind = models::ModelKind::mlp;
  if (kind == JobKind::retrain) {
    try {
      model_kind = models::model_kind_parse(model_text, "model");
    } catch (const std::invalid_argument& e) {
      return Error{ErrorCode::invalid, e.what()};
    }
    if (name.empty()) name = model_text;
    if (!models::model_name_valid(name)) return Error{ErrorCode::invalid, "name: '" + name + "' is not [A-Za-z0-9_-]{1,31}"};
  }
  // With Redis, a job goes to the `qtos worker` processes while at least one is alive and they can load the market
  // (serve --data: a data directory); otherwise it runs here, as on a single node. Looked at before the lock: a Redis
  // round trip.
  const std::size_t workers = live_workers();
  const std::int32_t bars = std::min(upto, market_->n_bars());
  if (workers > 0 && kind == JobKind::evolve) job->runs_on = "workers";
  if (kind == JobKind::retrain) job->trained_on_bars = std::max(1, bars - 4);  // as below: targets stop at the bar reached
  {
    std::lock_guard lock(jobs_mutex_);
    // Jobs share the machine with the trading loop: a bounded number run at once, the rest are refused (not queued),
    // so that a burst of requests cannot starve the OS of its cores. A job queued to the workers takes no core here.
    const auto running = std::count_if(jobs_.begin(), jobs_.end(), [](const auto& kv) {
      return kv.second->state.load() == 0 && kv.second->redis_key.empty();
    });
    if (running >= kMaxRunningJobs)
      return Error{ErrorCode::conflict, std::to_string(running) + " jobs are running (at most " + std::to_string(kMaxRunningJobs) +
                                            " at once): wait for one to finish or cancel it (DELETE /jobs/{id})"};
    job->id = "job-" + std::to_string(++next_job_);
    jobs_[job->id] = job;
  }
  const std::shared_ptr<const MarketPanel> market = market_;
  const std::string repo_path = repo_path_, models_dir = models_dir_;
  const kernels::GapPolicy gaps = gaps_;
  PopulationEvaluator evaluator;  // evolve on the workers: each generation split over them (the search stays here)
  if (workers > 0) {
    const std::string key = redis_->node + ":" + job->id + ":" + std::to_string(redis::redis_now_ms());
    if (kind == JobKind::evolve) {
      auto client = std::make_shared<redis::JobClient>(redis_->url, redis_->queue, key);
      evaluator = redis::redis_population_evaluator(client, redis::DistributedEvolveOptions{.run_id = key, .data = redis_->data, .chunks = workers});
    } else {
      json::object payload{{"data", redis_->data}};
      if (kind == JobKind::rank) {
        payload["bar"] = bars - 1;
        payload["top"] = top;
      } else {
        // As here: trained on the bars replayed so far, the same features and network.
        payload["model"] = model_text;
        payload["name"] = name;
        payload["registry"] = std::filesystem::absolute(models_dir).string();
        payload["epochs"] = epochs;
        payload["seed"] = seed;
        payload["horizon"] = 4;
        payload["window"] = 16;
        payload["hidden"] = 32;
        payload["layers"] = 1;
        payload["t_end"] = job->trained_on_bars;
        payload["gaps"] = gap_policy_text(gaps);  // the run's policy, recorded in the model
      }
      const std::string kind_text(kind == JobKind::rank ? redis::kJobRank : redis::kJobRetrain);
      auto queued = redis_jobs_->enqueue(key, kind_text, json::serialize(payload));
      if (queued.ok()) {
        {
          std::lock_guard lock(jobs_mutex_);  // GET /jobs/{id} may already read the job
          job->runs_on = "workers";
          job->redis_key = key;
        }
        return json::value(json::object{{"id", job->id}, {"kind", std::string(enum_name(kind))}, {"runs_on", "workers"}, {"redis_key", key}});
      }
      // Redis went away between the look at the heartbeats and the enqueue: the job runs here.
      spdlog::warn("api: job {} runs in this process: it could not be queued to the workers: {}", job->id, queued.error().message);
    }
  }
  job->worker = std::thread([=] {
    try {
      if (job->kind == JobKind::retrain) {
        // Trained on the bars replayed so far: no target reads past the bar the run has reached.
        models::FeatureSpec spec;
        spec.horizon = 4;
        spec.window = 16;
        spec.gaps = gaps;  // the run's policy, recorded in the model
        const std::int32_t t_end = std::min(upto, market->n_bars()) - spec.horizon;
        const models::FeatureTable table = models::features_build(market->view(), spec, 0, std::max(1, t_end));
        const models::TimeSplit split = models::split_by_time(table);
        models::ModelHyper hyper;
        hyper.hidden = 32;
        hyper.d_model = 32;
        hyper.layers = 1;
        hyper.heads = 4;
        hyper.patch = 4;
        models::TrainOptions opts;
        opts.epochs = static_cast<std::int32_t>(epochs);
        opts.seed = static_cast<std::uint64_t>(seed);
        opts.device = DeviceKind::auto_select;
        opts.t0_ms = market->t0_ms();
        opts.interval_ms = market->interval_ms();
        opts.stop = job->stop.token();
        opts.on_epoch = [job, epochs](const models::EpochReport& r) { job->progress = static_cast<double>(r.epoch) / static_cast<double>(epochs); };
        auto trained = models::model_train(table, split, model_kind, hyper, opts);
        if (!trained.ok() && trained.error().code == ErrorCode::stopped) {
          job->state = 3;  // cancelled: nothing registered
          return;
        }
        if (!trained.ok()) throw std::runtime_error(trained.error().message);
        models::ModelRegistry registry(models_dir);
        const models::ModelRecord rec = registry.register_candidate(name, *trained.value());
        const models::ModelMeta& m = trained.value()->meta();
        job->result = json::object{{"name", rec.name},
                                   {"version", rec.version},
                                   {"status", std::string(models::model_status_name(rec.status))},
                                   {"trained_on_bars", t_end},
                                   {"epochs_run", m.epochs_run},
                                   {"validation", json::parse(m.val.to_json())},
                                   {"test", json::parse(m.test.to_json())}};
      } else if (job->kind == JobKind::rank) {
        RankRequest req;
        req.bar = std::min(upto, market->n_bars()) - 1;
        req.features.gaps = gaps;
        req.features.price_decimals = panel_price_decimals_common(market->view());
        const auto backends = indicator_backends();
        const Ranking r = panel_rank(*market, req, backend_select(backends, DeviceKind::cpu));
        json::array out;
        for (const SymbolScore& e : r.top(static_cast<std::size_t>(top)))
          out.push_back(json::object{{"rank", e.rank}, {"symbol", e.symbol}, {"score", num(e.score)}});
        job->result = json::object{{"bar", req.bar}, {"eligible", r.eligible}, {"top", std::move(out)}};
      } else {
        const kernels::PanelView view = market->view();
        const StrategyFeatures f = strategy_features_compute(view, true, gaps);
        EvolveOptions o;
        o.population = static_cast<std::int32_t>(population);
        o.generations = static_cast<std::int32_t>(generations);
        o.train_begin = 0;
        o.train_end = std::max<std::int32_t>(2, upto * 7 / 10);
        o.test_begin = o.train_end;
        o.test_end = upto;
        o.hall_of_fame = 5;
        o.stop = job->stop.token();
        o.evaluator = evaluator;
        const auto backend = ::qtos::detail::backtest_cpu_backend();
        const EvolveResult r = evolve(view, f, *backend, o, [job, g = o.generations](const GenerationReport& rep) {
          job->progress = static_cast<double>(rep.generation + 1) / g;
        });
        json::array hof;
        for (const auto& h : r.hall_of_fame) hof.push_back(json::object{{"id", genome_id(h.genome)}, {"rules", genome_rules(h.genome)},
                                                                        {"train_sharpe", num(h.train.sharpe)}, {"test_sharpe", num(h.test.sharpe)}});
        job->result = json::object{{"generations", static_cast<std::int64_t>(r.generations.size())}, {"hall_of_fame", std::move(hof)}};
      }
      job->progress = 1;
      job->state = job->stop.requested() ? 3 : 1;
    } catch (const std::exception& e) {
      job->error = e.what();
      job->state = 2;
    }
  });
  return json::value(json::object{{"id", job->id}, {"kind", std::string(enum_name(kind))}, {"runs_on", job->runs_on}});
}

Result<json::value> ServePlane::job(std::string_view id) {
  std::shared_ptr<ServeJob> job;
  std::string redis_key, runs_on;
  {
    std::lock_guard lock(jobs_mutex_);
    const auto it = jobs_.find(std::string(id));
    if (it == jobs_.end()) return Error{ErrorCode::no_job, "no job '" + std::string(id) + "'"};
    job = it->second;
    redis_key = job->redis_key;
    runs_on = job->runs_on;
  }
  if (!redis_key.empty()) return redis_job_state(*job, redis_key);
  static constexpr const char* kStates[] = {"RUNNING", "DONE", "FAILED", "CANCELLED"};
  const int state = job->state.load();
  json::object o{{"id", job->id}, {"kind", std::string(enum_name(job->kind))}, {"state", kStates[state]}, {"progress", job->progress.load()},
                 {"runs_on", runs_on}};
  if (state == 1) o["result"] = job->result;
  if (state == 2) o["error"] = job->error;
  return json::value(std::move(o));
}

Result<json::value> ServePlane::job_cancel(std::string_view id, const Actor&) {
  std::lock_guard lock(jobs_mutex_);
  const auto it = jobs_.find(std::string(id));
  if (it == jobs_.end()) return Error{ErrorCode::no_job, "no job '" + std::string(id) + "'"};
  if (!it->second->redis_key.empty())
    return Error{ErrorCode::unsupported, "job '" + it->second->id + "' is queued to the Redis workers (key " + it->second->redis_key +
                                             ") and cannot be cancelled from here; its result is kept for a day"};
  it->second->stop.request();
  return json::value(json::object{{"id", it->second->id}, {"cancel", "requested"}});
}

void ServePlane::redis_set(ServeRedis r) {
  redis_jobs_ = std::make_unique<redis::JobClient>(r.url, r.queue, r.node + "-api");
  redis_reader_ = std::make_unique<redis::RedisClient>(r.url, r.queue.redis);
  redis_ = std::move(r);
}

std::size_t ServePlane::live_workers() {
  if (!redis_reader_ || redis_->data.empty()) return 0;
  auto list = redis::heartbeats_list(*redis_reader_, redis::JobKeys::of(redis_->queue.ns), redis_->queue.heartbeat_every);
  if (!list.ok()) return 0;  // Redis unreachable: jobs run here
  std::size_t n = 0;
  for (const redis::Heartbeat& hb : list.value()) n += hb.alive && hb.role == "worker";
  return n;
}

Result<json::value> ServePlane::redis_job_state(const ServeJob& job, const std::string& key) {
  auto outcome = redis_jobs_->outcome(key);
  if (!outcome.ok())
    return Error{ErrorCode::storage, "job '" + job.id + "' runs on the Redis workers (key " + key +
                                         "), and Redis (QT_REDIS_URL) is unreachable: " + outcome.error().message};
  json::object o{{"id", job.id}, {"kind", std::string(enum_name(job.kind))}, {"runs_on", "workers"}, {"redis_key", key}};
  if (!outcome.value()) {
    // Queued, running, or failed once and waiting for another delivery: RUNNING, with the queue's own state beside.
    auto h = redis_jobs_->redis().command({"HMGET", redis_jobs_->keys().job(key), "state", "worker", "deliveries"});
    o["state"] = "RUNNING";
    o["progress"] = 0.0;
    if (h.ok() && h.value().elements.size() == 3) {
      o["queue_state"] = h.value().elements[0].str;
      o["worker"] = h.value().elements[1].str;
      o["deliveries"] = h.value().elements[2].str.empty() ? 0 : std::atoll(h.value().elements[2].str.c_str());
    }
    return json::value(std::move(o));
  }
  const redis::JobOutcome& out = *outcome.value();
  if (!out.ok) {
    o["state"] = "FAILED";
    o["progress"] = 0.0;
    o["error"] = "dead-lettered to " + redis_jobs_->keys().dead + " after repeated failures on the workers: " + out.error;
    return json::value(std::move(o));
  }
  o["state"] = "DONE";
  o["progress"] = 1.0;
  boost::system::error_code ec;
  json::value r = json::parse(out.result, ec);
  if (ec || !r.is_object()) {
    o["state"] = "FAILED";
    o["error"] = "the workers stored a result that is not a JSON object";
    return json::value(std::move(o));
  }
  // The same shape as a job run here: numbers as numbers (the workers send hex floats, exact to the bit).
  json::object& res = r.as_object();
  if (job.kind == JobKind::rank) {
    if (json::value* top = res.if_contains("top"); top != nullptr && top->is_array())
      for (json::value& row : top->as_array())
        if (row.is_object() && row.as_object().contains("score")) row.as_object()["score"] = hex_number(row.as_object()["score"]);
    if (const json::value* n = res.if_contains("ranked")) res["eligible"] = *n;
  } else if (job.kind == JobKind::retrain) {
    for (const char* k : {"val_accuracy", "test_accuracy"})
      if (json::value* v = res.if_contains(k)) *v = hex_number(*v);
    res["status"] = "CANDIDATE";
    res["trained_on_bars"] = job.trained_on_bars;
  }
  o["result"] = std::move(r);
  return json::value(std::move(o));
}

void ServePlane::jobs_stop() {
  std::map<std::string, std::shared_ptr<ServeJob>> jobs;
  {
    std::lock_guard lock(jobs_mutex_);
    jobs = jobs_;
  }
  for (auto& [id, job] : jobs) job->stop.request();
  for (auto& [id, job] : jobs)
    if (job->worker.joinable()) job->worker.join();
}

}  // namespace qtos::api
