#pragma once
/// @file The decision trace: the ordered hook decisions that shaped an order or a denial (hook, subsystem, mode,
/// value before -> after, reason). Stored with the order in the ledger and printed by `qtos orders show ID`.

#include <string>
#include <vector>

#include "runtime/config/config.hpp"

namespace qtos {

/// One decision of one subsystem (or of the baseline, or of the Risk OS) at one hook.
struct DecisionStep {
  std::string hook;       ///< e.g. "pre_trade_position_sizing"; "risk_os" for the Risk OS checks
  std::string subsystem;  ///< e.g. "PBA", "BASELINE", "RISK_OS"
  SubsystemMode mode = SubsystemMode::off;  ///< the subsystem's mode when it answered
  std::string before;     ///< the value it was given, as text ("qty 0.5", "threshold 0.45")
  std::string after;      ///< its answer ("qty 0.3"); equal to before when it kept the value
  bool applied = false;   ///< false: OBSERVE (logged only) or a fail-safe fallback
  std::string reason;     ///< why, in the subsystem's words
  friend bool operator==(const DecisionStep&, const DecisionStep&) = default;
};

/// The trace of one order or denial, in decision order.
using DecisionTrace = std::vector<DecisionStep>;

/// A number as a trace shows it: the shortest text that reads back as the same double ("0.5", "373.17085938313846").
std::string decision_number(double value);

/// The trace as JSON text: [{"hook":..,"subsystem":..,"mode":..,"before":..,"after":..,"applied":..,"reason":..}].
std::string decision_trace_json(const DecisionTrace& trace);
/// Parses decision_trace_json() output; throws std::invalid_argument naming what is malformed.
DecisionTrace decision_trace_parse(const std::string& json);

}  // namespace qtos
