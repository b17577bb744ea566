#pragma once
/// @file The one way long work stops early: a stop token polled at safe points. SIGINT and SIGTERM (once
/// stop_signals_install() ran) and an API cancel request it; work that sees it finishes the unit in hand, writes what is
/// complete, marks it partial and returns. A second SIGINT/SIGTERM kills the process at once (the default action).

#include <atomic>
#include <memory>

namespace qtos {

/// Requests a stop; shared by the tokens made from it. Thread-safe; request() is async-signal-safe.
class StopSource {
 public:
  StopSource() : state_(std::make_shared<std::atomic<int>>(0)) {}
  /// Asks the work to stop; `signal` is the signal that asked (0: a cancel from code or the API). The first request
  /// wins.
  void request(int signal = 0) const {
    int expected = 0;
    state_->compare_exchange_strong(expected, signal == 0 ? -1 : signal);
  }
  /// True once a stop was requested.
  bool requested() const { return state_->load(std::memory_order_relaxed) != 0; }
  /// A token that observes this source.
  class StopToken token() const;

 private:
  friend class StopToken;
  friend void stop_signals_install();
  std::shared_ptr<std::atomic<int>> state_;
};

void stop_signals_install();

/// A view of a StopSource, cheap to copy and poll. A default-constructed token never stops.
class StopToken {
 public:
  StopToken() = default;
  /// True once a stop was requested (relaxed load: polled in loops).
  bool stop_requested() const { return state_ && state_->load(std::memory_order_relaxed) != 0; }
  /// The signal that requested the stop (SIGINT, SIGTERM), 0 for a cancel from code, -1 when none was requested.
  int signal() const {
    const int s = state_ ? state_->load() : 0;
    return s == 0 ? -1 : (s < 0 ? 0 : s);
  }

 private:
  friend class StopSource;
  explicit StopToken(std::shared_ptr<std::atomic<int>> s) : state_(std::move(s)) {}
  std::shared_ptr<std::atomic<int>> state_;
};

inline StopToken StopSource::token() const { return StopToken(state_); }

/// The process's stop source, requested by SIGINT/SIGTERM after stop_signals_install().
const StopSource& process_stop_source();
/// A token of the process's stop source.
inline StopToken process_stop_token() { return process_stop_source().token(); }
/// Installs SIGINT and SIGTERM handlers that request the process stop; a second signal restores the default action and
/// re-raises it (a user who presses Ctrl-C twice gets the process killed). Idempotent.
void stop_signals_install();
/// The conventional exit status after a stop by `signal`: 130 for SIGINT, 143 for SIGTERM, 1 otherwise.
int stop_exit_code(int signal);

}  // namespace qtos
