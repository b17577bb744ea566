#pragma once
// Helpers shared by the runtime tests: one sample of every event type (and the shared temporary directory).

#include <unistd.h>

#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/bus/event_log.hpp"
#include "runtime/bus/events.hpp"
#include "tests/support/run_command.hpp"

namespace qtos::test {


/// One event of every type, in EventType order, with non-default payloads (headers left for the bus to stamp).
inline std::vector<AnyEvent> sample_events() {
  std::vector<AnyEvent> v;
  v.emplace_back(MarketBarClosed{.symbol = "BTCUSDT", .interval_s = 60, .open_time = 1'700'000'000'000'000'000,
                                 .open = 100.5, .high = 101.25, .low = 99.75, .close = 100.0, .volume = 12.5,
                                 .quote_volume = 1251.75, .trades = 37});
  v.emplace_back(OpportunitiesUpdated{.top = {{"BTCUSDT", 0.9, 1e9}, {"ETHUSDT", 0.7, 5e8}}, .universe_size = 120});
  v.emplace_back(RegimeChanged{.symbol = "ETHUSDT", .previous = Regime::ranging, .current = Regime::trending_up,
                               .confidence = 0.8});
  v.emplace_back(PolicyUpdated{.version = 7, .previous_version = 6, .risk_mode = RiskMode::defensive,
                               .changed_fields = "risk_mode,max_leverage", .updated_by = "msc-ai",
                               .reason = "drawdown \"rising\"\nfast"});
  v.emplace_back(StrategyPromoted{.strategy = "ema-cross-12-26", .from = StrategyStage::shadow,
                                  .to = StrategyStage::live, .fitness = 1.75});
  v.emplace_back(StrategyRetired{.strategy = "rsi-mean-rev", .reason = "sharpe below 0.5 for 14 days"});
  v.emplace_back(ModelPromoted{.model = "xgb-direction", .version = 4, .previous_version = 3, .validation_score = 0.61});
  v.emplace_back(HealthStatusChanged{.component = "executor", .previous = HealthLevel::healthy,
                                     .current = HealthLevel::degraded, .error_count = 3, .detail = "slow exchange"});
  v.emplace_back(SignalGenerated{.strategy = "ema-cross-12-26", .symbol = "BTCUSDT", .side = Side::sell,
                                 .confidence = 0.72, .price = 100.0, .stop_loss = 102.0, .take_profit = 95.0});
  v.emplace_back(OrderSubmitted{.order_id = 42, .strategy = "ema-cross-12-26", .symbol = "BTCUSDT", .side = Side::sell,
                                .type = OrderType::limit, .qty = 0.25, .price = 100.5, .leverage = 2});
  v.emplace_back(OrderDenied{.order_id = 43, .strategy = "rsi-mean-rev", .symbol = "SOLUSDT", .side = Side::buy,
                             .qty = 10, .price = 20.5, .reason = DenyReason::max_open_positions, .policy_version = 7,
                             .detail = "5 of 5 positions open"});
  v.emplace_back(OrderFilled{.order_id = 42, .symbol = "BTCUSDT", .side = Side::sell, .qty = 0.25, .price = 100.4,
                             .fee = 0.01, .remaining_qty = 0});
  v.emplace_back(OrderRejected{.order_id = 44, .symbol = "BTCUSDT", .side = Side::buy, .qty = 1, .exchange_code = -2019,
                               .message = "Margin is insufficient."});
  v.emplace_back(PositionOpened{.position_id = 9, .strategy = "ema-cross-12-26", .symbol = "BTCUSDT", .side = Side::sell,
                                .qty = 0.25, .entry_price = 100.4, .leverage = 2});
  v.emplace_back(PositionClosed{.position_id = 9, .symbol = "BTCUSDT", .side = Side::sell, .qty = 0.25,
                                .entry_price = 100.4, .exit_price = 95.0, .realized_pnl = 1.35,
                                .reason = CloseReason::take_profit});
  v.emplace_back(RiskLimitBreached{.limit = RiskLimit::daily_drawdown, .value = 5.5, .threshold = 5.0, .policy_version = 7});
  v.emplace_back(EmergencyBrakeChanged{.engaged = true, .actor = "operator", .reason = "exchange outage"});
  v.emplace_back(ServiceStateChanged{.service = "self-healing", .previous = ServiceState::running,
                                     .current = ServiceState::degraded, .mode = SubsystemMode::protective,
                                     .reason = "2 checks failing"});
  v.emplace_back(UniverseSuggested{.universe = {"BTCUSDT", "ETHUSDT"},
                                   .filtered = {{"DOGEUSDT", "blacklisted"}, {"XRPUSDT", "beyond top_n_universe (2)"}},
                                   .policy_version = 7});
  v.emplace_back(SubsystemDecided{.subsystem = "PIL", .mode = SubsystemMode::advisory, .action = "CLASSIFY", .symbol = "BTCUSDT",
                                  .detail = "BTCUSDT classified as WINNER (2.5R, 0% DD)", .applied = true});
  return v;
}

/// Every event of an event log, in order; throws std::runtime_error with the reader's message on a damaged record.
inline std::vector<AnyEvent> event_log_read(const std::string& path) {
  EventLogReader r(path);
  std::vector<AnyEvent> out;
  for (;;) {
    auto e = r.next();
    if (!e.ok()) throw std::runtime_error(e.error().message);
    if (!e.value()) break;
    out.push_back(std::move(*e.value()));
  }
  return out;
}

}  // namespace qtos::test
