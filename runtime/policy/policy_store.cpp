#include "runtime/policy/policy_store.hpp"

#include <stdexcept>

#include <spdlog/spdlog.h>

namespace qtos {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

PolicyStore::PolicyStore(std::unique_ptr<PolicyBackend> backend, Clock& clock, EventBus* bus, Policy initial)
    : backend_(std::move(backend)), clock_(clock), bus_(bus) {
  if (!backend_) throw std::invalid_argument("PolicyStore: the backend is null");
  auto latest = backend_->load_latest();
  if (!latest.ok())
    throw PolicyStoreError("cannot load the policy from " + backend_->describe() + ": " + latest.error().message);
  if (latest.value()) {
    Policy p = std::move(*latest.value());
    if (auto ok = policy_validate(p); !ok.ok())
      throw PolicyStoreError("the stored policy version " + std::to_string(p.version) + " in " + backend_->describe() +
                             " breaks a rule: " + ok.error().message);
    install(std::make_shared<const Policy>(std::move(p)));
    return;
  }
  if (auto ok = policy_validate(initial); !ok.ok())
    throw std::invalid_argument("PolicyStore: the initial policy breaks a rule: " + ok.error().message);
  initial.version = 1;
  initial.updated_at = clock_.now();
  initial.updated_by = "system";
  initial.reason = "initial policy";
  if (auto r = backend_->append(initial); !r.ok()) {
    // Seeding is a compare-and-set like every write: another process or node that seeded the same empty backend at
    // the same moment won, and its stored policy is the one to run on (every node starts on one policy).
    if (r.error().code == ErrorCode::conflict) {
      auto stored = backend_->load_latest();
      if (stored.ok() && stored.value()) {
        Policy p = std::move(*stored.value());
        if (auto ok = policy_validate(p); !ok.ok())
          throw PolicyStoreError("the policy version " + std::to_string(p.version) + " another writer seeded in " + backend_->describe() +
                                 " breaks a rule: " + ok.error().message);
        spdlog::info("policy: another writer seeded {} first; starting on its version {}", backend_->describe(), p.version);
        install(std::make_shared<const Policy>(std::move(p)));
        return;
      }
    }
    throw PolicyStoreError("cannot store the initial policy in " + backend_->describe() + ": " + r.error().message);
  }
  install(std::make_shared<const Policy>(std::move(initial)));
}

void PolicyStore::install(std::shared_ptr<const Policy> p) {
  const std::uint64_t v = p->version;
  {
    std::lock_guard<std::mutex> lock(current_mutex_);
    current_ = std::move(p);
  }
  version_.store(v, std::memory_order_release);
}

Result<std::shared_ptr<const Policy>> PolicyStore::update(std::uint64_t expected_version,
                                                          const std::function<void(Policy&)>& mutation,
                                                          std::string_view reason, std::string_view author) {
  if (reason.empty()) throw std::invalid_argument("PolicyStore::update: reason is empty; every change needs a why");
  if (author.empty()) throw std::invalid_argument("PolicyStore::update: author is empty; every change needs a who");
  if (!mutation) throw std::invalid_argument("PolicyStore::update: the mutation is empty");
  std::unique_lock<std::mutex> lock(write_mutex_);
  const std::shared_ptr<const Policy> cur = current();
  if (cur->version != expected_version)
    return Error{ErrorCode::conflict, "policy update by '" + std::string(author) + "' expected version " +
                                 std::to_string(expected_version) + " but the current version is " +
                                 std::to_string(cur->version)};
  Policy next = *cur;
  mutation(next);
  next.version = cur->version + 1;
  next.updated_at = clock_.now();
  next.updated_by = std::string(author);
  next.reason = std::string(reason);
  if (auto ok = policy_validate(next); !ok.ok())
    return Error{ErrorCode::invalid_policy, "policy update by '" + std::string(author) + "' refused: " + ok.error().message};
  if (auto r = backend_->append(next); !r.ok()) {
    if (r.error().code == ErrorCode::conflict) {
      // Another process or node wrote first: adopt its policy so the caller can re-read and retry.
      if (auto latest = backend_->load_latest(); latest.ok() && latest.value())
        install(std::make_shared<const Policy>(std::move(*latest.value())));
      return Error{ErrorCode::conflict, "policy update by '" + std::string(author) + "' lost the race: " + r.error().message};
    }
    return r.error();
  }
  const std::vector<std::string> changed = policy_changed_fields(*cur, next);
  auto installed = std::make_shared<const Policy>(std::move(next));
  install(installed);
  lock.unlock();
  spdlog::info("policy v{} by {}: {} ({})", installed->version, installed->updated_by, installed->reason, join(changed));
  // Published after the lock is released: a post that waits for room in a full queue must never hold a lock the
  // bus owner may need. Concurrent writers' events can therefore arrive out of version order; `version` decides.
  if (bus_) {
    PolicyUpdated ev{.version = installed->version,
                     .previous_version = cur->version,
                     .risk_mode = installed->risk_mode,
                     .changed_fields = join(changed),
                     .updated_by = installed->updated_by,
                     .reason = installed->reason};
    if (bus_->on_owner_thread())
      bus_->publish(SourceName("policy-store"), std::move(ev));
    else
      bus_->post(SourceName("policy-store"), std::move(ev));
  }
  return installed;
}

Result<std::vector<Policy>> PolicyStore::history(std::uint64_t from_version, std::size_t limit) const {
  return backend_->history(from_version, limit);
}

Result<bool> PolicyStore::refresh() {
  std::lock_guard<std::mutex> lock(write_mutex_);
  auto latest = backend_->load_latest();
  if (!latest.ok()) return latest.error();
  if (!latest.value() || latest.value()->version == version()) return false;
  install(std::make_shared<const Policy>(std::move(*latest.value())));
  return true;
}

}  // namespace qtos
