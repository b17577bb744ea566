// The hook pipeline: asking subsystems in order, applying answers by mode, the decision trace and the fail-safe.
#include "runtime/executor/hooks.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <mutex>

#include <time.h>

#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

namespace qtos {

namespace {

std::string num(double v) { return decision_number(v); }

// ---- per-answer text and merge: soft parts apply from ADVISORY, hard parts from ENFORCED ----

std::string text(const UniverseAnswer& a) { return a.tradable ? "tradable" : "excluded"; }
UniverseAnswer merge(const UniverseAnswer& cur, const UniverseAnswer& p, bool, bool hard) {
  UniverseAnswer r = cur;
  if (hard) r.tradable = p.tradable;
  return r;
}

std::string text(const ConfidenceAnswer& a) { return "threshold " + num(a.threshold) + ", confidence " + num(a.confidence); }
ConfidenceAnswer merge(const ConfidenceAnswer& cur, const ConfidenceAnswer& p, bool soft, bool) {
  ConfidenceAnswer r = cur;
  if (soft && std::isfinite(p.threshold) && std::isfinite(p.confidence)) {
    r.threshold = std::clamp(p.threshold, 0.0, 1.0);
    r.confidence = std::clamp(p.confidence, 0.0, 1.0);
  }
  return r;
}

std::string text(const CheckAnswer& a) {
  return a.allow ? (a.size_scale == 1 ? std::string("allow") : "allow, size x" + num(a.size_scale))
                 : "deny " + std::string(enum_name(a.reason));
}
CheckAnswer merge(const CheckAnswer& cur, const CheckAnswer& p, bool soft, bool hard) {
  CheckAnswer r = cur;
  if (hard && !p.allow) {
    r.allow = false;
    r.reason = p.reason;
  }
  if (soft && std::isfinite(p.size_scale) && p.size_scale >= 0 && p.size_scale <= 1) r.size_scale = cur.size_scale * p.size_scale;
  return r;
}

std::string text(const SizingAnswer& a) { return "quote " + num(a.quote_qty); }
SizingAnswer merge(const SizingAnswer& cur, const SizingAnswer& p, bool soft, bool) {
  SizingAnswer r = cur;
  if (soft && std::isfinite(p.quote_qty) && p.quote_qty >= 0) r.quote_qty = p.quote_qty;
  return r;
}

std::string text(const OrderTypeAnswer& a) {
  return (a.type == OrderType::limit ? "LIMIT " + num(a.limit_price) : std::string(enum_name(a.type))) +
         (a.slices > 1 ? " in " + std::to_string(a.slices) + " slices" : "");
}
OrderTypeAnswer merge(const OrderTypeAnswer& cur, const OrderTypeAnswer& p, bool soft, bool) {
  OrderTypeAnswer r = cur;
  const bool valid = (p.type == OrderType::market || (p.type == OrderType::limit && std::isfinite(p.limit_price) && p.limit_price > 0)) &&
                     p.slices >= 1 && p.slices <= 1000;
  if (soft && valid) r = p;
  return r;
}

std::string text(const SlippageAnswer& a) {
  return num(a.slippage_bps) + " bps" + (a.cancel_remaining ? ", cancel the rest" : "");
}
SlippageAnswer merge(const SlippageAnswer& cur, const SlippageAnswer& p, bool, bool hard) {
  SlippageAnswer r = cur;
  if (hard) r.cancel_remaining = r.cancel_remaining || p.cancel_remaining;
  return r;
}

std::string text(const ClassificationAnswer& a) {
  return (a.label.empty() ? std::string("unclassified") : a.label) + (a.exit ? ", exit" : "");
}
ClassificationAnswer merge(const ClassificationAnswer& cur, const ClassificationAnswer& p, bool soft, bool hard) {
  ClassificationAnswer r = cur;
  if (soft) r.label = p.label;
  if (hard) r.exit = r.exit || p.exit;
  return r;
}

std::string text(const AmplificationAnswer& a) {
  std::string t = "scale in " + num(a.scale_in) + ", take partial " + num(a.take_partial);
  if (a.stop_price > 0) t += ", stop " + num(a.stop_price);
  if (a.take_price > 0) t += ", target " + num(a.take_price);
  return t;
}
AmplificationAnswer merge(const AmplificationAnswer& cur, const AmplificationAnswer& p, bool, bool hard) {
  AmplificationAnswer r = cur;
  if (hard && std::isfinite(p.scale_in) && std::isfinite(p.take_partial) && std::isfinite(p.stop_price) && std::isfinite(p.take_price)) {
    r.scale_in = std::clamp(p.scale_in, 0.0, 1.0);
    r.take_partial = std::clamp(p.take_partial, 0.0, 1.0);
    if (p.stop_price > 0) r.stop_price = p.stop_price;
    if (p.take_price > 0) r.take_price = p.take_price;
  }
  return r;
}

std::string text(const HealingAnswer& a) { return a.pause_entries ? "pause entries" : "trading"; }
HealingAnswer merge(const HealingAnswer& cur, const HealingAnswer& p, bool, bool hard) {
  HealingAnswer r = cur;
  if (hard) r.pause_entries = p.pause_entries;
  return r;
}

std::string text(const CoordinationAnswer& a) {
  return "threshold shift " + num(a.threshold_shift) + ", size x" + num(a.size_scale) + (a.block_entries ? ", block entries" : "");
}
CoordinationAnswer merge(const CoordinationAnswer& cur, const CoordinationAnswer& p, bool soft, bool hard) {
  CoordinationAnswer r = cur;
  if (soft && std::isfinite(p.threshold_shift) && std::isfinite(p.size_scale) && p.size_scale >= 0) {
    r.threshold_shift = std::clamp(p.threshold_shift, -1.0, 1.0);
    r.size_scale = std::min(p.size_scale, 10.0);
  }
  if (hard) r.block_entries = p.block_entries;
  return r;
}

/// Monotonic microseconds from the coarse clock: a few milliseconds of resolution, far below the 50 ms budget, at a
/// fraction of the cost of the precise clock (two reads per hook call, on every decision).
std::int64_t coarse_now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

/// What a failing protective or enhancing hook falls back to.
template <class V>
V failed_value(Hook hook, const V& given) {
  if constexpr (std::is_same_v<V, CheckAnswer>) {
    if (hook_protective(hook)) {
      CheckAnswer r = given;
      r.allow = false;
      r.reason = DenyReason::fail_safe;
      return r;
    }
  }
  return given;
}

std::string subject(const TradeCandidate& c) { return std::string(c.symbol.view()) + " " + std::string(enum_name(c.side)); }
std::string subject(const PositionSnapshot& p) { return std::string(p.symbol.view()) + " position " + std::to_string(p.position_id); }
std::string subject(const SystemSnapshot&) { return "system"; }

}  // namespace

bool hook_protective(Hook hook) { return hook == Hook::pre_trade_risk_check || hook == Hook::pre_trade_portfolio_check; }

HookPipeline::HookPipeline(EventBus& bus, HookOptions options) : bus_(bus), options_(std::move(options)) {}
HookPipeline::~HookPipeline() {
  for (auto& [name, log] : logs_)
    if (log) log->flush();
}

void HookPipeline::add(std::shared_ptr<TradingSubsystem> subsystem) {
  if (!subsystem) throw std::invalid_argument("HookPipeline::add: null subsystem");
  for (const auto& s : subsystems_)
    if (s->name() == subsystem->name()) throw std::invalid_argument("HookPipeline::add: a subsystem named '" + s->name() + "' is already there");
  subsystems_.push_back(std::move(subsystem));
}

bool HookPipeline::active(Hook hook) const {
  for (const auto& s : subsystems_)
    if (s->mode() != SubsystemMode::off && s->answers(hook)) return true;
  return false;
}

std::shared_ptr<spdlog::logger> subsystem_log(const std::string& log_dir, const std::string& name) {
  if (log_dir.empty()) return nullptr;
  std::string file = name;
  for (char& ch : file) ch = (ch == '-' || ch == ' ') ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const std::string path = log_dir + "/ai_subsystem_" + file + ".log";
  // One open file per path: the pipeline and the subsystem append to the same log without interleaving partial lines.
  // Not registered with spdlog by name: several pipelines (tests, replays) may log to the same name.
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<spdlog::logger>> open;
  std::lock_guard lock(mutex);
  if (auto log = open[path].lock()) return log;
  std::filesystem::create_directories(log_dir);
  auto log = std::make_shared<spdlog::logger>("ai_subsystem_" + file, std::make_shared<spdlog::sinks::basic_file_sink_mt>(path));
  log->set_pattern("%v");
  log->flush_on(spdlog::level::info);  // an operator tails these files: each decision is there when it is made
  open[path] = log;
  return log;
}

void HookPipeline::log_line(TradingSubsystem& s, const std::string& line) {
  // With a decision log the line goes there (an operator tails it); the console shows it only at debug level.
  if (options_.log_dir.empty()) {
    spdlog::info("{}", line);
    return;
  }
  spdlog::debug("{}", line);
  auto& log = logs_[s.name()];
  if (!log) log = subsystem_log(options_.log_dir, s.name());
  log->info("{}", line);
}

void HookPipeline::failure(TradingSubsystem& s, Hook hook, const std::string& what) {
  ++failures_;
  const std::uint64_t count = ++errors_[s.name()];
  HealthStatusChanged h;
  h.component = SourceName(s.name().substr(0, SourceName::kCapacity));
  h.previous = count == 1 ? HealthLevel::healthy : HealthLevel::degraded;
  h.current = HealthLevel::degraded;
  h.error_count = count;
  h.detail = std::string(enum_name(hook)) + ": " + what + (options_.fail_safe ? (hook_protective(hook) ? " (fail-safe: denied)" : " (fail-safe: baseline kept)") : "");
  bus_.publish(SourceName("hooks"), std::move(h));
}

template <class V, class Ctx, class Call>
V HookPipeline::run(Hook hook, const Ctx& ctx, V value, DecisionTrace* trace, Call call) {
  for (const auto& sp : subsystems_) {
    TradingSubsystem& s = *sp;
    const SubsystemMode mode = s.mode();
    if (mode == SubsystemMode::off || !s.answers(hook)) continue;
    std::string reason;
    std::optional<V> answer;
    std::string error;
    const std::int64_t t0 = coarse_now_us();
    try {
      answer = call(s, ctx, value, reason);
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    const auto took = std::chrono::microseconds(coarse_now_us() - t0);
    if (error.empty() && took > options_.budget)
      error = "took " + std::to_string(took.count() / 1000) + " ms, over its budget of " + std::to_string(options_.budget.count() / 1000) + " ms";
    if (!error.empty()) {
      if (!options_.fail_safe) throw std::runtime_error("[" + s.name() + "] " + std::string(enum_name(hook)) + ": " + error);
      failure(s, hook, error);
      const V fallback = failed_value(hook, value);
      if (trace)
        trace->push_back(DecisionStep{std::string(enum_name(hook)), s.name(), mode, text(value), text(fallback), true, "fail-safe: " + error});
      log_line(s, "[" + s.name() + "] " + std::string(mode_name(mode)) + " mode - " + std::string(enum_name(hook)) + " failed (" +
                      error + "): " + (hook_protective(hook) ? "denied" : "baseline kept"));
      value = fallback;
      if constexpr (std::is_same_v<V, CheckAnswer>)
        if (!value.allow) return value;
      continue;
    }
    if (!answer) continue;  // no opinion
    const bool soft = mode == SubsystemMode::advisory || mode == SubsystemMode::enforced || mode == SubsystemMode::protective;
    const bool hard = mode == SubsystemMode::enforced || mode == SubsystemMode::protective;
    const V applied = merge(value, *answer, soft, hard);
    const std::string before = text(value), proposed = text(*answer), after = text(applied);
    if (trace) trace->push_back(DecisionStep{std::string(enum_name(hook)), s.name(), mode, before, mode == SubsystemMode::observe ? proposed : after,
                                             mode != SubsystemMode::observe, reason});
    if (proposed != before) {
      // The same decision on the same subject as last time (a denial while the book stays full, a directive every tick)
      // is logged once, with how often it repeated when it changes: the log stays a record an operator can read.
      const std::string subj = subject(ctx);
      std::string line = mode == SubsystemMode::observe
                             ? "[" + s.name() + "] OBSERVE mode - would " + std::string(enum_name(hook)) + " " + subj + ": " + before + " -> " +
                                   proposed + (reason.empty() ? "" : " (" + reason + ")")
                             : "[" + s.name() + "] " + std::string(mode_name(mode)) + " mode - " + std::string(enum_name(hook)) + " " + subj +
                                   ": " + before + " -> " + after + (after != proposed ? " (asked " + proposed + ")" : "") +
                                   (reason.empty() ? "" : " (" + reason + ")");
      LastLine& last = last_lines_[s.name() + '\x1f' + std::string(enum_name(hook)) + '\x1f' + subj];
      if (line == last.text) {
        ++last.repeats;
      } else {
        log_line(s, last.repeats > 0 ? line + " [the previous decision repeated " + std::to_string(last.repeats) + " more times]" : line);
        last.text = std::move(line);
        last.repeats = 0;
      }
    }
    value = applied;
    if constexpr (std::is_same_v<V, CheckAnswer>)
      if (!value.allow) return value;  // a denial ends the check
  }
  return value;
}

#define QTOS_HOOK_CALL(H, FN, CTX, V)                                                                          \
  V HookPipeline::FN(const CTX& c, V v, DecisionTrace* trace) {                                               \
    return run(Hook::H, c, v, trace, [](TradingSubsystem& s, const CTX& x, const V& cur, std::string& why) { \
      return s.FN(x, cur, why);                                                                             \
    });                                                                                                     \
  }
QTOS_HOOK_CALL(pre_trade_universe_filter, universe_filter, TradeCandidate, UniverseAnswer)
QTOS_HOOK_CALL(pre_trade_confidence_adjustment, confidence_adjustment, TradeCandidate, ConfidenceAnswer)
QTOS_HOOK_CALL(pre_trade_risk_check, risk_check, TradeCandidate, CheckAnswer)
QTOS_HOOK_CALL(pre_trade_portfolio_check, portfolio_check, TradeCandidate, CheckAnswer)
QTOS_HOOK_CALL(pre_trade_position_sizing, position_sizing, TradeCandidate, SizingAnswer)
QTOS_HOOK_CALL(execution_order_type_selection, order_type_selection, TradeCandidate, OrderTypeAnswer)
QTOS_HOOK_CALL(execution_slippage_check, slippage_check, TradeCandidate, SlippageAnswer)
QTOS_HOOK_CALL(post_trade_position_classification, position_classification, PositionSnapshot, ClassificationAnswer)
QTOS_HOOK_CALL(post_trade_amplification_check, amplification_check, PositionSnapshot, AmplificationAnswer)
QTOS_HOOK_CALL(periodic_self_healing_check, self_healing_check, SystemSnapshot, HealingAnswer)
QTOS_HOOK_CALL(periodic_ai_hfos_coordination, ai_hfos_coordination, SystemSnapshot, CoordinationAnswer)
#undef QTOS_HOOK_CALL

}  // namespace qtos
