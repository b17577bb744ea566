#include "cpu/backend/device.hpp"

#include <algorithm>
#include <cctype>

namespace qtos {

DeviceKind device_parse(std::string_view text, std::string_view what) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "auto") return DeviceKind::auto_select;
  if (lower == "cpu") return DeviceKind::cpu;
  if (lower == "cuda" || lower == "gpu") return DeviceKind::cuda;
  throw std::invalid_argument(std::string(what) + ": '" + std::string(text) + "' is not a device; expected auto, cpu or cuda");
}

std::string_view device_name(DeviceKind kind) { return enum_name(kind); }

}  // namespace qtos
