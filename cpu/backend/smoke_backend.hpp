#pragma once
/// @file The smoke computation behind the backend interface: log returns of one price series.

#include <memory>
#include <span>
#include <vector>

#include "cpu/backend/device.hpp"

namespace qtos {

/// Computes out[i] = log_return_at(close, i) on one backend.
class SmokeBackend : public BackendBase {
 public:
  /// Whether this backend takes a series of `close.size()` prices; the registry runs a declined one on TBB.
  virtual bool supports(std::span<const float> close) const {
    (void)close;
    return true;
  }
  /// `out.size()` must equal `close.size()`.
  virtual void log_returns(std::span<const float> close, std::span<float> out) const = 0;
};

namespace detail {
/// The TBB backend (listed by the registry, cpu/registry/backends.hpp, after CUDA).
std::unique_ptr<SmokeBackend> smoke_cpu_backend();
}  // namespace detail

/// The plain serial reference the consistency suite compares every backend against.
void smoke_log_returns_reference(std::span<const float> close, std::span<float> out);

}  // namespace qtos
