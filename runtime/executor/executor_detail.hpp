#pragma once
/// @file The executor's private records (a position as it manages it, an order still working), shared by its two
/// translation units: executor.cpp (the trading) and executor_checkpoint.cpp (restart state).

#include <cstdint>
#include <string>

#include "runtime/executor/executor.hpp"

namespace qtos {

struct EventDrivenExecutor::Position {
  PositionRecord rec;
  std::size_t strategy = SIZE_MAX;  // index into the engine's strategies; SIZE_MAX: a model position
  kernels::Genome genome{};         // exit parameters (stops, target, trail, max hold)
  double atr_signal = 0;            // ATR at the signal bar
  double best = 0;                  // best price since entry (trailing stop)
  double stop_fixed = 0;            // the fixed stop from the entry fill (0: none)
  double initial_risk = 0;          // |entry - initial stop| (R multiple)
  double entry_cash = 0;            // the sleeve's cash before the entry (trade return)
  double peak_profit = 0;           // best open profit (classification drawdown)
  std::uint64_t entry_order = 0, stop_order = 0, take_order = 0, exit_order = 0;
  OrderPurpose stop_purpose = OrderPurpose::stop_loss;
  bool entered = false;             // the entry has filled (at least partly)
  double exit_fill_value = 0, exit_fill_qty = 0, exit_fees = 0;  // exit fills so far (average exit price, fees)
  std::string classification;
  std::uint32_t slot = 0;           // the symbol's slot (its sleeve: the slot's sleeve of `strategy`)
  double stop_lock = 0;             // a stop a subsystem moved in the position's favour: stops never protect less
  double take_set = 0;              // a target a subsystem set, replacing the genome's (0: the genome's)
  std::int32_t slices_left = 0;     // TWAP: child orders still to send, one a bar once the last has filled
  double slice_qty = 0;             // TWAP: base quantity of each child order
  std::int32_t slices_total = 0;    // TWAP: child orders in all
};

struct EventDrivenExecutor::Working {
  OrderRecord rec;
  TradeCandidate candidate;        // entries: what the hooks saw
  double expected_price = 0;       // the last close when it was decided
  std::int32_t unknown_cycles = 0; // cycles its outcome has been unknown
};

}  // namespace qtos
