#pragma once
// Polling for a condition another thread makes true: returns as soon as it holds, so a generous limit costs nothing
// when the code is right and keeps a loaded machine (a sanitizer build, parallel tests) from failing a correct run.

#include <chrono>
#include <thread>

namespace qtos::test {

/// Polls `pred` every `every` until it holds (true) or `limit` has passed (false; `pred` is asked once more then).
template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds limit = std::chrono::seconds(15),
                std::chrono::milliseconds every = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

}  // namespace qtos::test
