#include "runtime/executor/decision_trace.hpp"

#include <stdexcept>
#include <string_view>

#include <boost/json.hpp>

#include "cpu/util/enum_names.hpp"

namespace qtos {
namespace {

constexpr std::string_view kWhat = "decision trace";

std::string step_what(std::size_t i) { return std::string(kWhat) + " step " + std::to_string(i + 1); }

const boost::json::value& need(const boost::json::object& o, std::string_view key, std::size_t i) {
  const auto* v = o.if_contains(key);
  if (!v) throw std::invalid_argument(step_what(i) + ": missing field '" + std::string(key) + "'");
  return *v;
}

std::string need_string(const boost::json::object& o, std::string_view key, std::size_t i) {
  const auto& v = need(o, key, i);
  if (!v.is_string()) throw std::invalid_argument(step_what(i) + ": field '" + std::string(key) + "' is not a string");
  return std::string(v.get_string());
}

}  // namespace

std::string decision_trace_json(const DecisionTrace& trace) {
  if (trace.empty()) return "[]";  // the common case on the hot path: no allocation by the JSON library
  boost::json::array a;
  a.reserve(trace.size());
  for (const auto& s : trace) {
    boost::json::object o;
    o.reserve(7);
    // Inserted in the documented order: boost::json::object keeps insertion order when serialised.
    o.emplace("hook", s.hook);
    o.emplace("subsystem", s.subsystem);
    o.emplace("mode", enum_name(s.mode));
    o.emplace("before", s.before);
    o.emplace("after", s.after);
    o.emplace("applied", s.applied);
    o.emplace("reason", s.reason);
    a.emplace_back(std::move(o));
  }
  return boost::json::serialize(a);
}

DecisionTrace decision_trace_parse(const std::string& json) {
  boost::json::value v;
  boost::system::error_code ec;
  v = boost::json::parse(json, ec);
  if (ec)
    throw std::invalid_argument(std::string(kWhat) + " is not valid JSON (" + ec.message() + "): '" + json.substr(0, 80) +
                                (json.size() > 80 ? "...'" : "'"));
  if (!v.is_array()) throw std::invalid_argument(std::string(kWhat) + ": expected a JSON array of steps");
  const auto& a = v.get_array();
  DecisionTrace out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_object()) throw std::invalid_argument(step_what(i) + ": expected a JSON object");
    const auto& o = a[i].get_object();
    DecisionStep s;
    s.hook = need_string(o, "hook", i);
    s.subsystem = need_string(o, "subsystem", i);
    const std::string mode = need_string(o, "mode", i);
    const auto m = enum_parse<SubsystemMode>(mode);
    if (!m) throw std::invalid_argument(step_what(i) + ": field 'mode' is '" + mode + "'; expected " + enum_names_joined<SubsystemMode>());
    s.mode = *m;
    s.before = need_string(o, "before", i);
    s.after = need_string(o, "after", i);
    const auto& applied = need(o, "applied", i);
    if (!applied.is_bool()) throw std::invalid_argument(step_what(i) + ": field 'applied' is not a boolean");
    s.applied = applied.get_bool();
    s.reason = need_string(o, "reason", i);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace qtos
