#pragma once
/// @file Work for the bus owner thread from other threads (the HTTP API): a command is a closure run on the owner
/// thread between two bars, where it may touch bus-owned state; the caller waits for its result with a deadline.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

namespace qtos::api {

/// A multi-producer queue of closures drained by one owner thread.
class CommandQueue {
 public:
  /// Queues `fn`; false when the queue is closed (the service is stopping).
  bool post(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return false;
      queue_.push_back(std::move(fn));
    }
    ready_.notify_one();
    return true;
  }
  /// Runs `fn` on the owner thread and returns its result, or nothing when the queue is closed or the owner did not
  /// get to it within `timeout` (the closure then still runs later, or never when closed: it must own its captures).
  template <class F>
  auto call(F fn, std::chrono::milliseconds timeout) -> std::optional<std::invoke_result_t<F>> {
    using R = std::invoke_result_t<F>;
    auto promise = std::make_shared<std::promise<R>>();
    std::future<R> result = promise->get_future();
    if (!post([promise, fn = std::move(fn)]() mutable {
          try {
            promise->set_value(fn());
          } catch (...) {
            promise->set_exception(std::current_exception());
          }
        }))
      return std::nullopt;
    if (result.wait_for(timeout) != std::future_status::ready) return std::nullopt;
    return result.get();  // rethrows what the command threw
  }
  /// Owner thread: runs every queued command, waiting for more until `deadline`. Returns how many ran.
  std::size_t run_until(std::chrono::steady_clock::time_point deadline) {
    std::size_t ran = 0;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        if (!ready_.wait_until(lock, deadline, [&] { return !queue_.empty() || closed_; })) return ran;
        if (queue_.empty()) return ran;  // closed
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
      ++ran;
    }
  }
  /// Owner thread: runs what is queued now, without waiting.
  std::size_t run_pending() { return run_until(std::chrono::steady_clock::now()); }
  /// Refuses new commands and wakes the owner; queued ones are dropped (their callers time out).
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      queue_.clear();
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool closed_ = false;
};

}  // namespace qtos::api
