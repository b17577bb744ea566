#pragma once
/// @file The owner loop of a live process: fire due timers, deliver posted events, sleep until the next of the two.

#include <atomic>
#include <chrono>

#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"

namespace qtos {

/// Makes the calling thread the owner of `bus` and runs it until `stop` is set: fires due timers of `clock`, then
/// drains posted events, sleeping at most `max_sleep` (and never past the next timer) when idle. Returns the
/// number of events delivered.
std::uint64_t bus_run(EventBus& bus, LiveClock& clock, const std::atomic<bool>& stop,
                      std::chrono::nanoseconds max_sleep = std::chrono::milliseconds(10));

}  // namespace qtos
