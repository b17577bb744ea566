#include "cpu/backend/device.hpp"

#include <algorithm>
#include <cctype>

#if QTOS_HAVE_CUDA
#include "cuda/cuda_backends.hpp"
#endif

namespace qtos {

DeviceKind device_parse(std::string_view text, std::string_view what) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "auto") return DeviceKind::auto_select;
  if (lower == "cpu") return DeviceKind::cpu;
  if (lower == "cuda" || lower == "gpu") return DeviceKind::cuda;
  throw std::invalid_argument(std::string(what) + ": '" + std::string(text) + "' is not a device; expected auto, cpu or cuda");
}

std::string_view device_name(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::auto_select: return "auto";
    case DeviceKind::cpu: return "cpu";
    case DeviceKind::cuda: return "cuda";
  }
  return "?";
}

const DeviceReport& device_report() {
  static const DeviceReport report = [] {
#if QTOS_HAVE_CUDA
    return cuda::devices_query();
#else
    DeviceReport r;
    r.cuda_error = "built without CUDA";
    return r;
#endif
  }();
  return report;
}

}  // namespace qtos
