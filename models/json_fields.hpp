#pragma once
/// @file Reading required fields of JSON documents (model metadata, feature specs, metrics) with errors that name
/// the document and the field. One implementation for every models/ file that parses JSON.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

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

}  // namespace qtos::models::json
