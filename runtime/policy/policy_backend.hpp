#pragma once
/// @file Storage behind the PolicyStore. A backend keeps the append-only history of policies and enforces the
/// compare-and-set at the storage level, so two processes (or two nodes, with the Redis backend a later issue
/// adds through this same interface: WATCH/MULTI or a Lua script) can never both write version N+1.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/policy/policy.hpp"
#include "runtime/util/result.hpp"

namespace qtos {

/// Raised when a policy store cannot start: unreadable or corrupt storage, an unknown schema. Never swallowed.
class PolicyStoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Durable history of policies. Implementations are thread-safe.
class PolicyBackend {
 public:
  virtual ~PolicyBackend() = default;
  /// Where the policy lives, for messages (e.g. "sqlite:/var/qtos/policy.db").
  virtual std::string describe() const = 0;
  /// The newest stored policy, nullopt when none was ever stored; an error when storage fails or holds garbage.
  virtual Result<std::optional<Policy>> load_latest() = 0;
  /// Appends `next` atomically if and only if the newest stored version is `next.version - 1`; otherwise an
  /// error with code "conflict" naming both versions. Other failures: code "storage".
  virtual Result<Unit> append(const Policy& next) = 0;
  /// Stored policies with version >= `from_version`, oldest first, at most `limit` of them.
  virtual Result<std::vector<Policy>> history(std::uint64_t from_version, std::size_t limit) = 0;
};

/// A backend in memory (tests, and runs that need no persistence).
class MemoryPolicyBackend final : public PolicyBackend {
 public:
  /// "memory".
  std::string describe() const override { return "memory"; }
  /// The newest policy, if any.
  Result<std::optional<Policy>> load_latest() override;
  /// Compare-and-set append.
  Result<Unit> append(const Policy& next) override;
  /// Stored policies from `from_version`.
  Result<std::vector<Policy>> history(std::uint64_t from_version, std::size_t limit) override;

 private:
  mutable std::mutex mutex_;
  std::vector<Policy> history_;
};

/// The embedded default: SQLite in WAL mode with synchronous=FULL, one row per version.
class SqlitePolicyBackend final : public PolicyBackend {
 public:
  /// Opens or creates the database at `path`, checks `PRAGMA integrity_check`, and creates the schema when new.
  /// Throws PolicyStoreError naming the path and SQLite's message when the file cannot be opened, is not a
  /// database, fails the integrity check, or has a newer schema.
  explicit SqlitePolicyBackend(std::string path);
  ~SqlitePolicyBackend() override;
  SqlitePolicyBackend(const SqlitePolicyBackend&) = delete;
  SqlitePolicyBackend& operator=(const SqlitePolicyBackend&) = delete;
  /// "sqlite:<path>".
  std::string describe() const override { return "sqlite:" + path_; }
  /// The newest stored policy.
  Result<std::optional<Policy>> load_latest() override;
  /// BEGIN IMMEDIATE; check the newest version; INSERT; COMMIT (fsync'd by the WAL with synchronous=FULL).
  Result<Unit> append(const Policy& next) override;
  /// Stored policies from `from_version`.
  Result<std::vector<Policy>> history(std::uint64_t from_version, std::size_t limit) override;

 private:
  struct Db;
  std::string path_;
  std::mutex mutex_;
  std::unique_ptr<Db> db_;
};

}  // namespace qtos
