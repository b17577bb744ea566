#pragma once
/// @file Exact JSON encodings for checkpoints (a run's state at a bar boundary, restored after a restart): a double
/// as its IEEE-754 bits (a decimal text may not round-trip through every parser: a restored run must continue bit for
/// bit) and a trivially copyable struct of numbers as the hex of its bytes.

#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <boost/json.hpp>

namespace qtos::ckpt {

/// The layout of what checkpoints hold. Raw-byte fields (feature states, genomes) are exact only within one layout:
/// bump this whenever a checkpointed struct or field changes, so that an old checkpoint is refused, never misread.
/// 2: the feature states gained the gap policy's fields.
inline constexpr std::int64_t kVersion = 2;

/// Throws std::runtime_error naming `where` when `state` was written in another layout than this build's.
inline void version_check(const boost::json::object& state, const std::string& where) {
  const boost::json::value* v = state.if_contains("version");
  const std::int64_t got = v != nullptr && v->is_int64() ? v->get_int64() : -1;
  if (got != kVersion)
    throw std::runtime_error("the checkpoint in " + where + " has layout " + std::to_string(got) + "; this build reads layout " +
                             std::to_string(kVersion) + " only (written by another version of qtos): start a new run (qtos serve --new-run)");
}

/// A double, exactly.
inline boost::json::value num(double v) { return boost::json::value(std::bit_cast<std::uint64_t>(v)); }

/// The double of num(); throws std::runtime_error naming `what` when the value is not one.
inline double num_get(const boost::json::value& v, std::string_view what) {
  if (!v.is_uint64() && !(v.is_int64() && v.get_int64() >= 0))
    throw std::runtime_error("checkpoint: " + std::string(what) + " is not an encoded number");
  return std::bit_cast<double>(v.is_uint64() ? v.get_uint64() : static_cast<std::uint64_t>(v.get_int64()));
}

/// The bytes of a trivially copyable value, as hex.
template <class T>
std::string pod(const T& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  std::string out(2 * sizeof(T), '0');
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return out;
}

/// The value pod() encoded; throws std::runtime_error naming `what` when the text does not hold a T.
template <class T>
T pod_get(const boost::json::value& v, std::string_view what) {
  static_assert(std::is_trivially_copyable_v<T>);
  const boost::json::string* s = v.if_string();
  if (s == nullptr || s->size() != 2 * sizeof(T))
    throw std::runtime_error("checkpoint: " + std::string(what) + " is not " + std::to_string(sizeof(T)) + " encoded bytes");
  auto nibble = [&](char c) -> unsigned {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    throw std::runtime_error("checkpoint: " + std::string(what) + " holds a character that is not hex");
  };
  unsigned char bytes[sizeof(T)];
  for (std::size_t i = 0; i < sizeof(T); ++i) bytes[i] = static_cast<unsigned char>(nibble((*s)[2 * i]) << 4 | nibble((*s)[2 * i + 1]));
  T out;
  std::memcpy(&out, bytes, sizeof(T));
  return out;
}

/// Member `key` of object `o`; throws std::runtime_error naming it when absent.
inline const boost::json::value& at(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  if (v == nullptr) throw std::runtime_error("checkpoint: '" + std::string(key) + "' is missing");
  return *v;
}

/// Member `key` as an object / array / string / integer / bool; throws std::runtime_error naming it otherwise.
inline const boost::json::object& obj(const boost::json::object& o, std::string_view key) {
  const boost::json::value& v = at(o, key);
  if (!v.is_object()) throw std::runtime_error("checkpoint: '" + std::string(key) + "' is not an object");
  return v.get_object();
}
inline const boost::json::array& arr(const boost::json::object& o, std::string_view key) {
  const boost::json::value& v = at(o, key);
  if (!v.is_array()) throw std::runtime_error("checkpoint: '" + std::string(key) + "' is not a list");
  return v.get_array();
}
inline std::string str(const boost::json::object& o, std::string_view key) {
  const boost::json::value& v = at(o, key);
  if (!v.is_string()) throw std::runtime_error("checkpoint: '" + std::string(key) + "' is not a string");
  return std::string(v.get_string());
}
inline std::int64_t i64(const boost::json::object& o, std::string_view key) {
  const boost::json::value& v = at(o, key);
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) return static_cast<std::int64_t>(v.get_uint64());
  throw std::runtime_error("checkpoint: '" + std::string(key) + "' is not an integer");
}
inline std::uint64_t u64(const boost::json::object& o, std::string_view key) {
  const boost::json::value& v = at(o, key);
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  throw std::runtime_error("checkpoint: '" + std::string(key) + "' is not a count");
}
inline bool flag(const boost::json::object& o, std::string_view key) {
  const boost::json::value& v = at(o, key);
  if (!v.is_bool()) throw std::runtime_error("checkpoint: '" + std::string(key) + "' is not true or false");
  return v.get_bool();
}
inline double dbl(const boost::json::object& o, std::string_view key) { return num_get(at(o, key), key); }

}  // namespace qtos::ckpt
