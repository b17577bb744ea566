#include "runtime/util/stop_token.hpp"

#include <signal.h>

namespace qtos {
namespace {

// The handler may only touch a lock-free atomic: the state is allocated once, before any handler is installed.
std::atomic<int>* g_state = nullptr;

extern "C" void stop_signal_handler(int sig) {
  int expected = 0;
  if (g_state && g_state->compare_exchange_strong(expected, sig)) return;
  // Second signal: the default action (terminate) now.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

const StopSource& process_stop_source() {
  static const StopSource source;
  return source;
}

void stop_signals_install() {
  static std::atomic<int>* const installed = [] {
    std::atomic<int>* state = process_stop_source().state_.get();
    static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");
    g_state = state;
    struct sigaction sa {};
    sa.sa_handler = stop_signal_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    return state;
  }();
  (void)installed;
}

int stop_exit_code(int signal) {
  if (signal == SIGINT) return 130;
  if (signal == SIGTERM) return 143;
  return 1;
}

}  // namespace qtos
