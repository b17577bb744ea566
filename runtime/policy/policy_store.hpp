#pragma once
/// @file The policy store: the one source of global policy. Reads come from an in-process cache (lock-free for
/// PolicyView); updates are compare-and-set on the version, validated, durably appended to the backend's history,
/// and published as PolicyUpdated.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/policy/policy.hpp"
#include "runtime/policy/policy_backend.hpp"
#include "runtime/util/result.hpp"

namespace qtos {

/// Keeps the current policy and its history. Thread-safe.
class PolicyStore {
 public:
  /// Loads the newest policy from `backend`. An empty backend is seeded with `initial` as version 1 (author
  /// "system"); when another writer seeds it first (a conflict), the store starts on that writer's policy. Throws
  /// PolicyStoreError when the backend cannot be read or holds a policy that breaks a rule, and
  /// std::invalid_argument when `initial` breaks a rule. `bus` (optional) receives PolicyUpdated; `clock` stamps
  /// updates. Both must outlive the store.
  PolicyStore(std::unique_ptr<PolicyBackend> backend, Clock& clock, EventBus* bus = nullptr, Policy initial = {});

  /// The current policy (a shared immutable snapshot). Any thread.
  std::shared_ptr<const Policy> current() const {
    std::lock_guard<std::mutex> lock(current_mutex_);
    return current_;
  }
  /// The current version (one atomic load). Any thread.
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }

  /// Applies `mutation` to a copy of the policy at `expected_version` and stores it as the next version. Errors
  /// (values): "conflict" when the policy is no longer at `expected_version` (another writer won; nothing is
  /// lost, re-read and retry), "invalid_policy" naming the broken field (nothing stored), "storage" when the
  /// backend failed. Throws std::invalid_argument when `reason` or `author` is empty. The PolicyUpdated of an
  /// accepted change is published synchronously on the bus owner thread and posted from other threads.
  Result<std::shared_ptr<const Policy>> update(std::uint64_t expected_version,
                                               const std::function<void(Policy&)>& mutation, std::string_view reason,
                                               std::string_view author);
  /// Stored versions >= `from_version`, oldest first.
  Result<std::vector<Policy>> history(std::uint64_t from_version = 1, std::size_t limit = SIZE_MAX) const;
  /// Re-reads the newest policy from the backend (written by another process); returns true when it changed.
  Result<bool> refresh();
  /// The backend's description.
  std::string describe() const { return backend_->describe(); }

 private:
  void install(std::shared_ptr<const Policy> p);
  std::unique_ptr<PolicyBackend> backend_;
  Clock& clock_;
  EventBus* bus_;
  std::mutex write_mutex_;
  // A plain mutex, not std::atomic<shared_ptr>: libstdc++ 12's lock-bit implementation is opaque to TSan, and hot
  // readers use PolicyView, which only loads version_.
  mutable std::mutex current_mutex_;
  std::shared_ptr<const Policy> current_;
  std::atomic<std::uint64_t> version_{0};
};

/// A per-thread read handle: get() costs one atomic load while the policy is unchanged. Not thread-safe itself:
/// give each reading thread its own view.
class PolicyView {
 public:
  /// Views `store`, which must outlive the view.
  explicit PolicyView(const PolicyStore& store) : store_(store), snapshot_(store.current()) {}
  /// The current policy; valid until the next get() on this view.
  const Policy& get() {
    if (store_.version() != snapshot_->version) snapshot_ = store_.current();
    return *snapshot_;
  }

 private:
  const PolicyStore& store_;
  std::shared_ptr<const Policy> snapshot_;
};

}  // namespace qtos
