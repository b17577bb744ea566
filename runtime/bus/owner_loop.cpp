#include "runtime/bus/owner_loop.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace qtos {

std::uint64_t bus_run(EventBus& bus, LiveClock& clock, const std::atomic<bool>& stop, std::chrono::nanoseconds max_sleep) {
  if (max_sleep.count() <= 0)
    throw std::invalid_argument("bus_run: max_sleep " + std::to_string(max_sleep.count()) + " ns must be > 0");
  bus.bind_owner_thread();
  std::uint64_t delivered = 0;
  while (!stop.load(std::memory_order_acquire)) {
    clock.run_due();
    delivered += bus.drain();
    std::chrono::nanoseconds sleep = max_sleep;
    if (const auto due = clock.next_due()) sleep = std::min(sleep, std::chrono::nanoseconds(std::max<TimeNs>(0, *due - clock.now())));
    if (sleep.count() > 0) delivered += bus.wait_and_drain(sleep);
  }
  delivered += bus.drain();
  return delivered;
}

}  // namespace qtos
