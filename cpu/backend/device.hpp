#pragma once
/// @file Device selection shared by every computation (`--device auto|cpu|cuda`, `QT_DEVICE`).

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace qtos {

/// Which backend a caller asks for.
enum class DeviceKind { auto_select, cpu, cuda };

/// Parses "auto", "cpu" or "cuda" (case-insensitive); throws std::invalid_argument naming `what` otherwise.
DeviceKind device_parse(std::string_view text, std::string_view what = "--device");

/// Lower-case name of a device kind.
std::string_view device_name(DeviceKind kind);

/// What this build and this machine offer.
struct DeviceReport {
  bool cuda_compiled = false;   ///< the binary contains the CUDA backends
  int cuda_devices = 0;         ///< devices the CUDA runtime sees (0 without a driver)
  std::string cuda_name;        ///< name of device 0, empty when none
  std::string cuda_error;       ///< why no device is usable, empty when one is
  int sm_count = 0;             ///< streaming multiprocessors of device 0
  int sm_clock_khz = 0;         ///< their peak clock
  int fp32_lanes_per_sm = 0;    ///< FP32 lanes per SM (128 from compute capability 8.6 on, 64 before)
};

/// Queries the CUDA runtime once per process (cached); never throws.
const DeviceReport& device_report();

/// Common base of every backend: a name ("cpu", "cuda") and whether it can run at all on this machine.
class BackendBase {
 public:
  virtual ~BackendBase() = default;
  /// "cpu" or "cuda".
  virtual std::string_view name() const = 0;
  /// True when the backend can run here (the CUDA one needs a device).
  virtual bool available() const { return true; }
};

/// Picks a backend from a list ordered by preference (CUDA first). `auto` takes the first available one;
/// `cpu`/`cuda` take that one or throw std::runtime_error saying why it cannot run.
template <class Backend>
Backend& backend_select(const std::vector<std::unique_ptr<Backend>>& backends, DeviceKind kind) {
  for (const auto& b : backends) {
    if (!b->available()) continue;
    if (kind == DeviceKind::auto_select || b->name() == device_name(kind)) return *b;
  }
  if (kind == DeviceKind::cuda) {
    const auto& r = device_report();
    throw std::runtime_error(!r.cuda_compiled ? "--device cuda: this build has no CUDA backends (built with QTOS_CUDA=OFF)"
                                              : "--device cuda: no usable CUDA device (" + r.cuda_error + ")");
  }
  throw std::runtime_error("no backend available for device '" + std::string(device_name(kind)) + "'");
}

}  // namespace qtos
