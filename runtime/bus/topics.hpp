#pragma once
/// @file Every topic name of the event bus, in one place. Topics are dot-separated segments; subscribers may match
/// them with patterns where `*` stands for exactly one segment and `#` for any number of trailing segments.

#include <string_view>

namespace qtos::topics {

inline constexpr std::string_view kMarketBarClosed = "market.bar_closed";          ///< MarketBarClosed
inline constexpr std::string_view kMarketOpportunities = "market.opportunities";   ///< OpportunitiesUpdated
inline constexpr std::string_view kMarketRegime = "market.regime";                 ///< RegimeChanged
inline constexpr std::string_view kPolicyUpdated = "policy.updated";               ///< PolicyUpdated
inline constexpr std::string_view kStrategiesPromoted = "strategies.promoted";     ///< StrategyPromoted
inline constexpr std::string_view kStrategiesRetired = "strategies.retired";       ///< StrategyRetired
inline constexpr std::string_view kModelsPromoted = "models.promoted";             ///< ModelPromoted
inline constexpr std::string_view kHealthStatus = "health.status";                 ///< HealthStatusChanged
inline constexpr std::string_view kSignalsGenerated = "signals.generated";         ///< SignalGenerated
inline constexpr std::string_view kOrdersSubmitted = "orders.submitted";           ///< OrderSubmitted
inline constexpr std::string_view kOrdersDenied = "orders.denied";                 ///< OrderDenied
inline constexpr std::string_view kOrdersFilled = "orders.filled";                 ///< OrderFilled
inline constexpr std::string_view kOrdersRejected = "orders.rejected";             ///< OrderRejected
inline constexpr std::string_view kPositionsOpened = "positions.opened";           ///< PositionOpened
inline constexpr std::string_view kPositionsClosed = "positions.closed";           ///< PositionClosed
inline constexpr std::string_view kRiskLimitBreached = "risk.limit_breached";      ///< RiskLimitBreached
inline constexpr std::string_view kControlEmergencyBrake = "control.emergency_brake";  ///< EmergencyBrakeChanged
inline constexpr std::string_view kServicesLifecycle = "services.lifecycle";       ///< ServiceStateChanged
inline constexpr std::string_view kUniverseSuggested = "universe.suggested";       ///< UniverseSuggested
inline constexpr std::string_view kSubsystemsDecided = "subsystems.decided";       ///< SubsystemDecided

}  // namespace qtos::topics
