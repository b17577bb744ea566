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
  /// `out.size()` must equal `close.size()`.
  virtual void log_returns(std::span<const float> close, std::span<float> out) const = 0;
};

/// Every backend compiled in, CUDA first when present (whether or not a device is available).
std::vector<std::unique_ptr<SmokeBackend>> smoke_backends();

/// The plain serial reference the consistency suite compares every backend against.
void smoke_log_returns_reference(std::span<const float> close, std::span<float> out);

}  // namespace qtos
