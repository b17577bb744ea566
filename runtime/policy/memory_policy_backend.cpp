#include <algorithm>

#include "runtime/policy/policy_backend.hpp"

namespace qtos {

Result<std::optional<Policy>> MemoryPolicyBackend::load_latest() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (history_.empty()) return std::optional<Policy>{};
  return std::optional<Policy>(history_.back());
}

Result<Unit> MemoryPolicyBackend::append(const Policy& next) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::uint64_t latest = history_.empty() ? 0 : history_.back().version;
  if (next.version != latest + 1)
    return Error{ErrorCode::conflict, "policy version " + std::to_string(next.version) + " cannot follow stored version " +
                                 std::to_string(latest)};
  history_.push_back(next);
  return Unit{};
}

Result<std::vector<Policy>> MemoryPolicyBackend::history(std::uint64_t from_version, std::size_t limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Policy> out;
  for (const auto& p : history_) {
    if (out.size() >= limit) break;
    if (p.version >= from_version) out.push_back(p);
  }
  return out;
}

}  // namespace qtos
