#pragma once
/// @file Reading required fields of JSON documents (model metadata, feature specs, metrics) with errors that name
/// the document and the field. One implementation for every models/ file that parses JSON.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include <boost/json.hpp>

namespace qtos::models::json {

/// Parses `text` as a JSON object; throws std::invalid_argument beginning with `what` otherwise.
inline boost::json::object parse_object(const std::string& text, std::string_view what) {
  boost::json::value v;
  try {
    v = boost::json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string(what) + " does not parse as JSON: " + e.what());
  }
  if (!v.is_object()) throw std::invalid_argument(std::string(what) + ": expected a JSON object");
  return std::move(v.as_object());
}

/// Field `key` of `o`; throws naming `what` and the key when it is missing.
inline const boost::json::value& field(const boost::json::object& o, const char* key, std::string_view what) {
  const auto* v = o.if_contains(key);
  if (!v) throw std::invalid_argument(std::string(what) + ": missing field '" + key + "'");
  return *v;
}

/// An integer field.
inline std::int64_t field_int(const boost::json::object& o, const char* key, std::string_view what) {
  const auto& v = field(o, key, what);
  if (!v.is_int64() && !v.is_uint64()) throw std::invalid_argument(std::string(what) + ": field '" + key + "' is not an integer");
  return v.to_number<std::int64_t>();
}

/// A numeric field (integer or floating point).
inline double field_number(const boost::json::object& o, const char* key, std::string_view what) {
  const auto& v = field(o, key, what);
  if (!v.is_number()) throw std::invalid_argument(std::string(what) + ": field '" + key + "' is not a number");
  return v.to_number<double>();
}

/// A boolean field.
inline bool field_bool(const boost::json::object& o, const char* key, std::string_view what) {
  const auto& v = field(o, key, what);
  if (!v.is_bool()) throw std::invalid_argument(std::string(what) + ": field '" + key + "' is not a boolean");
  return v.as_bool();
}

/// A string field.
inline std::string field_string(const boost::json::object& o, const char* key, std::string_view what) {
  const auto& v = field(o, key, what);
  if (!v.is_string()) throw std::invalid_argument(std::string(what) + ": field '" + key + "' is not a string");
  return std::string(v.as_string());
}

/// An object field.
inline const boost::json::object& field_object(const boost::json::object& o, const char* key, std::string_view what) {
  const auto& v = field(o, key, what);
  if (!v.is_object()) throw std::invalid_argument(std::string(what) + ": field '" + key + "' is not an object");
  return v.as_object();
}

/// An array field.
inline const boost::json::array& field_array(const boost::json::object& o, const char* key, std::string_view what) {
  const auto& v = field(o, key, what);
  if (!v.is_array()) throw std::invalid_argument(std::string(what) + ": field '" + key + "' is not an array");
  return v.as_array();
}

// ---- field lists: a struct's JSON form written once --------------------------------------------------------------
// A struct lists its fields once, as the events do with QTOS_EVENT_FIELDS, by specialising JsonFields in the .cpp that
// reads and writes it (headers stay free of Boost.JSON):
//   template <> struct json::JsonFields<TimeSplit> {
//     static constexpr auto fields = std::make_tuple(json::member("train_begin", &TimeSplit::train_begin), ...);
//   };
// then to_object(split) writes it and from_object(o, split, "model metadata") reads it back, naming a missing or
// mistyped field. Supported members: integers, floating point, bool, std::string, std::vector<float> and any struct
// with its own JsonFields (a nested object).

/// The field list of T; specialise it next to T's reader and writer.
template <class T>
struct JsonFields;

/// One member of a field list: its JSON key and the pointer to the member.
template <class T, class M>
struct Member {
  const char* key;  ///< JSON key
  M T::*ptr;        ///< the member
};

/// A field-list entry.
template <class T, class M>
constexpr Member<T, M> member(const char* key, M T::*ptr) {
  return {key, ptr};
}

template <class T>
concept HasJsonFields = requires { JsonFields<T>::fields; };

template <class T>
boost::json::object to_object(const T& value);
template <class T>
void from_object(const boost::json::object& o, T& value, std::string_view what);

namespace detail {

template <class V>
boost::json::value value_write(const V& v) {
  if constexpr (HasJsonFields<V>) {
    return to_object(v);
  } else if constexpr (std::is_same_v<V, std::vector<float>>) {
    boost::json::array a;
    for (float x : v) a.emplace_back(static_cast<double>(x));
    return a;
  } else if constexpr (std::is_same_v<V, float>) {
    return static_cast<double>(v);
  } else {
    return boost::json::value_from(v);
  }
}

template <class V>
void value_read(const boost::json::object& o, const char* key, std::string_view what, V& out) {
  if constexpr (HasJsonFields<V>) {
    from_object(field_object(o, key, what), out, std::string(what) + " '" + key + "'");
  } else if constexpr (std::is_same_v<V, std::vector<float>>) {
    out.clear();
    for (const auto& x : field_array(o, key, what)) {
      if (!x.is_number()) throw std::invalid_argument(std::string(what) + ": '" + key + "' holds a non-number");
      out.push_back(static_cast<float>(x.to_number<double>()));
    }
  } else if constexpr (std::is_same_v<V, bool>) {
    out = field_bool(o, key, what);
  } else if constexpr (std::is_same_v<V, std::string>) {
    out = field_string(o, key, what);
  } else if constexpr (std::is_floating_point_v<V>) {
    out = static_cast<V>(field_number(o, key, what));
  } else if constexpr (std::is_unsigned_v<V>) {
    const auto& v = field(o, key, what);
    if (!v.is_uint64() && !(v.is_int64() && v.as_int64() >= 0))
      throw std::invalid_argument(std::string(what) + ": field '" + key + "' is not a non-negative integer");
    out = static_cast<V>(v.to_number<std::uint64_t>());
  } else {
    static_assert(std::is_integral_v<V>, "unsupported member type in a JSON field list");
    out = static_cast<V>(field_int(o, key, what));
  }
}

}  // namespace detail

/// T as a JSON object, field by field in its list's order.
template <class T>
boost::json::object to_object(const T& value) {
  boost::json::object o;
  std::apply([&](const auto&... m) { ((o[m.key] = detail::value_write(value.*(m.ptr))), ...); }, JsonFields<T>::fields);
  return o;
}

/// Reads every listed field of T from `o`; throws std::invalid_argument naming `what` and the field when one is
/// missing or of the wrong type. Keys that are not listed are ignored.
template <class T>
void from_object(const boost::json::object& o, T& value, std::string_view what) {
  std::apply([&](const auto&... m) { (detail::value_read(o, m.key, what, value.*(m.ptr)), ...); }, JsonFields<T>::fields);
}

}  // namespace qtos::models::json
