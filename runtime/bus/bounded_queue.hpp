#pragma once
/// @file A bounded lock-free multi-producer queue (Vyukov's array queue with per-cell sequence numbers). Any number
/// of threads push; one thread (the bus owner) pops. A push never allocates and never takes a lock.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace qtos::detail {

/// Fixed-capacity MPSC queue of T; capacity is a power of two.
template <class T>
class BoundedQueue {
 public:
  /// `capacity` must be a power of two >= 2 (std::invalid_argument otherwise).
  explicit BoundedQueue(std::size_t capacity) : mask_(capacity - 1), cells_(std::make_unique<Cell[]>(capacity)) {
    if (capacity < 2 || (capacity & (capacity - 1)) != 0)
      throw std::invalid_argument("bus queue capacity " + std::to_string(capacity) + " must be a power of two >= 2");
    for (std::size_t i = 0; i < capacity; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;
  ~BoundedQueue() {
    T sink;
    while (try_pop(sink)) {
    }
  }

  /// Claims a cell and constructs the element in place with `make(void* storage, std::size_t position)`; returns
  /// false when full (without calling `make`). Any thread. `make` must not throw.
  template <class Make>
  bool try_emplace(Make&& make) {
    std::size_t pos = enqueue_pos_.load(std::memory_order_relaxed);
    Cell* cell;
    for (;;) {
      cell = &cells_[pos & mask_];
      const std::size_t seq = cell->seq.load(std::memory_order_acquire);
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
      if (dif == 0) {
        // seq_cst: the bus's sleep/wake handshake relies on this claim being ordered with the owner's flag.
        if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) break;
      } else if (dif < 0) {
        return false;
      } else {
        pos = enqueue_pos_.load(std::memory_order_relaxed);
      }
    }
    make(static_cast<void*>(cell->storage), pos);
    cell->seq.store(pos + 1, std::memory_order_release);
    return true;
  }

  /// Moves `value` in and returns true, or returns false (leaving `value` untouched) when full. Any thread.
  bool try_push(T& value) {
    return try_emplace([&value](void* storage, std::size_t) { ::new (storage) T(std::move(value)); });
  }

  /// Calls `use(T&)` on the oldest element in place, then destroys it and frees its cell (even when `use` throws);
  /// returns false when empty. Consumer thread only.
  template <class Use>
  bool try_consume(Use&& use) {
    const std::size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    Cell& cell = cells_[pos & mask_];
    const std::size_t seq = cell.seq.load(std::memory_order_acquire);
    if (static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1) < 0) return false;
    T* item = std::launder(reinterpret_cast<T*>(cell.storage));
    struct Release {
      BoundedQueue* q;
      Cell& cell;
      T* item;
      std::size_t pos;
      ~Release() {
        item->~T();
        q->dequeue_pos_.store(pos + 1, std::memory_order_relaxed);
        cell.seq.store(pos + q->mask_ + 1, std::memory_order_release);
      }
    } release{this, cell, item, pos};
    use(*item);
    return true;
  }

  /// Moves the oldest element into `out` and returns true, or returns false when empty. Consumer thread only.
  bool try_pop(T& out) {
    return try_consume([&out](T& item) { out = std::move(item); });
  }

  /// Elements ever pushed (claimed). Any thread.
  std::size_t pushed() const { return enqueue_pos_.load(std::memory_order_relaxed); }

  /// Elements claimed by producers and not yet popped (approximate while producers run). Any thread.
  std::size_t size_approx() const {
    const std::size_t tail = enqueue_pos_.load(std::memory_order_seq_cst);
    const std::size_t head = dequeue_pos_.load(std::memory_order_seq_cst);
    return tail >= head ? tail - head : 0;
  }
  /// Maximum number of elements.
  std::size_t capacity() const { return mask_ + 1; }

 private:
  struct Cell {
    std::atomic<std::size_t> seq{0};
    alignas(T) unsigned char storage[sizeof(T)];
  };
  const std::size_t mask_;
  std::unique_ptr<Cell[]> cells_;
  alignas(64) std::atomic<std::size_t> enqueue_pos_{0};
  alignas(64) std::atomic<std::size_t> dequeue_pos_{0};
};

}  // namespace qtos::detail
