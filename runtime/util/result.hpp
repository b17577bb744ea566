#pragma once
/// @file Expected outcomes as values (house style rule 3): a `Result<T>` holds a value or an `Error`.

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

/// A bug: aborts with the condition, the message and the place. Active in every build type.
#define QTOS_ASSERT(cond, msg)                                                                           \
  do {                                                                                                   \
    if (!(cond)) {                                                                                       \
      std::fprintf(stderr, "qtos: assertion failed: %s (%s) at %s:%d\n", #cond, msg, __FILE__, __LINE__); \
      std::abort();                                                                                      \
    }                                                                                                    \
  } while (0)

namespace qtos {

/// What kind of expected failure an Error is: code branches on this, a person reads the message.
enum class ErrorCode : std::uint8_t {
  bad_bar, bad_state, bad_transition, blocked, broken_model, cancelled, conflict, corrupt, invalid, invalid_policy, load_failed, no_job, no_model, not_enough_data, not_enough_history, not_found, rule_failed, shadow_incomplete, stopped, storage, training_failed, unsupported
};

/// The stable name of an error code ("conflict", "not_found"), as logs and the API show it.
constexpr std::string_view error_code_name(ErrorCode c) {
  constexpr std::string_view kNames[] = {"bad_bar", "bad_state", "bad_transition", "blocked", "broken_model", "cancelled", "conflict", "corrupt", "invalid", "invalid_policy", "load_failed", "no_job", "no_model", "not_enough_data", "not_enough_history", "not_found", "rule_failed", "shadow_incomplete", "stopped", "storage", "training_failed", "unsupported"};
  const auto i = static_cast<std::size_t>(c);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : std::string_view("?");
}
/// Compares a code with its name (for tests and logs that hold names).
constexpr bool operator==(ErrorCode c, std::string_view name) { return error_code_name(c) == name; }
/// Writes the code's name.
inline std::ostream& operator<<(std::ostream& os, ErrorCode c) { return os << error_code_name(c); }

/// An expected failure: a machine-readable code and a message for a person.
struct Error {
  ErrorCode code;       ///< what kind of failure (code branches on it)
  std::string message;  ///< what happened, naming the input
};

/// A value or an Error (a small stand-in for C++23 std::expected).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor): ergonomic return
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  /// True when a value is held.
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  /// The value; asserts that one is held.
  T& value() & {
    QTOS_ASSERT(ok(), "Result::value() on an error");
    return std::get<0>(v_);
  }
  const T& value() const& {
    QTOS_ASSERT(ok(), "Result::value() on an error");
    return std::get<0>(v_);
  }
  T&& value() && {
    QTOS_ASSERT(ok(), "Result::value() on an error");
    return std::get<0>(std::move(v_));
  }
  /// The error; asserts that one is held.
  const Error& error() const {
    QTOS_ASSERT(!ok(), "Result::error() on a value");
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

/// Result of an operation with no value.
struct Unit {};

}  // namespace qtos
