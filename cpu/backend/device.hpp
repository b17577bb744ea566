#pragma once
/// @file Device selection shared by every computation (`--device auto|cpu|cuda`, `QT_DEVICE`).

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/util/enum_names.hpp"

namespace qtos {

/// Which backend a caller asks for.
enum class DeviceKind { auto_select, cpu, cuda };
QTOS_ENUM_NAMES(DeviceKind, "auto", "cpu", "cuda");

/// Parses "auto", "cpu" or "cuda" (case-insensitive); throws std::invalid_argument naming `what` otherwise.
DeviceKind device_parse(std::string_view text, std::string_view what = "--device");

/// Lower-case name of a device kind.
std::string_view device_name(DeviceKind kind);

/// What this build and this machine offer (device_report() in cpu/registry/backends.hpp fills it in).
struct DeviceReport {
  bool cuda_compiled = false;   ///< the binary contains the CUDA backends
  int cuda_devices = 0;         ///< devices the CUDA runtime sees (0 without a driver)
  std::string cuda_name;        ///< name of device 0, empty when none
  std::string cuda_error;       ///< why no device is usable, empty when one is
  int sm_count = 0;             ///< streaming multiprocessors of device 0
  int sm_clock_khz = 0;         ///< their peak clock
  int fp32_lanes_per_sm = 0;    ///< FP32 lanes per SM (128 from compute capability 8.6 on, 64 before)
  std::uint64_t global_mem_bytes = 0;  ///< global memory of device 0 (what a CUDA backend may ever hold)
};

/// Common base of every backend: a name ("cpu", "cuda") and whether it can run at all on this machine. Each family
/// (IndicatorBackend, BacktestBackend, SmokeBackend) adds `supports(request)`: whether this backend takes that
/// request; the registry (cpu/registry/backends.hpp) sends a declined request to the TBB backend.
class BackendBase {
 public:
  virtual ~BackendBase() = default;
  /// "cpu" or "cuda".
  virtual std::string_view name() const = 0;
  /// True when the backend can run here (the CUDA one needs a device).
  virtual bool available() const { return true; }
};

}  // namespace qtos
