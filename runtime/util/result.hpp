#pragma once
/// @file Expected outcomes as values (house style rule 3): a `Result<T>` holds a value or an `Error`.

#include <cstdlib>
#include <cstdio>
#include <string>
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

/// An expected failure: a machine-readable code and a message for a person.
struct Error {
  std::string code;     ///< stable identifier, e.g. "conflict", "not_found"
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
