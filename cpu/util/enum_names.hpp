#pragma once
/// @file One enum-name facility for every enum: the names of an enum's values are listed once, with
/// QTOS_ENUM_NAMES(E, "a", "b", ...) right after the enum (in its namespace), and enum_name / enum_parse /
/// enum_names_joined read them. Values must be 0, 1, 2, ... in the order of the names.

#include <array>
#include <cctype>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace qtos {

/// Lists the names of enum E's values in order, in E's own namespace (found there by argument-dependent lookup).
#define QTOS_ENUM_NAMES(E, ...)                                                              \
  [[maybe_unused]] constexpr auto qtos_enum_names(E) {                                     \
    return std::to_array<std::string_view>({__VA_ARGS__});                                 \
  }                                                                                        \
  static_assert(true, "a QTOS_ENUM_NAMES line ends with a semicolon")

/// Names of an enum's values, indexed by the underlying value (listed by QTOS_ENUM_NAMES).
template <class E>
struct EnumNames {
  static constexpr auto kArray = qtos_enum_names(E{});
  static constexpr std::size_t kCount = kArray.size();  ///< number of values
  static constexpr const std::string_view* kNames = kArray.data();  ///< kNames[i]: the name of value i
};

/// The name of an enum value, or "?" for a value outside the enum.
template <class E>
constexpr std::string_view enum_name(E e) {
  const auto i = static_cast<std::size_t>(e);
  return i < EnumNames<E>::kCount ? EnumNames<E>::kNames[i] : std::string_view("?");
}

/// The value named `text` (ASCII case-insensitive), or nullopt.
template <class E>
std::optional<E> enum_parse(std::string_view text) {
  for (std::size_t i = 0; i < EnumNames<E>::kCount; ++i) {
    const std::string_view n = EnumNames<E>::kNames[i];
    if (n.size() != text.size()) continue;
    bool same = true;
    for (std::size_t k = 0; k < n.size() && same; ++k)
      same = std::tolower(static_cast<unsigned char>(n[k])) == std::tolower(static_cast<unsigned char>(text[k]));
    if (same) return static_cast<E>(i);
  }
  return std::nullopt;
}

/// Every name, joined with `sep` and `last` before the last one (for "expected A, B or C" messages and --help texts).
template <class E>
std::string enum_names_joined(std::string_view sep = ", ", std::string_view last = " or ") {
  std::string out;
  for (std::size_t i = 0; i < EnumNames<E>::kCount; ++i) {
    if (i) out += i + 1 == EnumNames<E>::kCount ? last : sep;
    out += EnumNames<E>::kNames[i];
  }
  return out;
}

}  // namespace qtos
