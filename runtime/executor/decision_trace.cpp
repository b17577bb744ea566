#include "runtime/executor/decision_trace.hpp"

#include <charconv>
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

namespace {
/// Appends `text` as a JSON string: quotes, backslashes and control characters escaped, UTF-8 passed through (what
/// Boost.JSON's parser reads back byte for byte).
void json_string_append(std::string& out, std::string_view text) {
  out += '"';
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}
}  // namespace

std::string decision_number(double value) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

std::string decision_trace_json(const DecisionTrace& trace) {
  // Written directly (an order's trace is serialised on the replay's hot path); parsed back with Boost.JSON.
  std::string out;
  out.reserve(64 + trace.size() * 160);
  out += '[';
  for (std::size_t i = 0; i < trace.size(); ++i) {
    const DecisionStep& s = trace[i];
    if (i > 0) out += ',';
    out += "{\"hook\":";
    json_string_append(out, s.hook);
    out += ",\"subsystem\":";
    json_string_append(out, s.subsystem);
    out += ",\"mode\":";
    json_string_append(out, enum_name(s.mode));
    out += ",\"before\":";
    json_string_append(out, s.before);
    out += ",\"after\":";
    json_string_append(out, s.after);
    out += s.applied ? ",\"applied\":true" : ",\"applied\":false";
    out += ",\"reason\":";
    json_string_append(out, s.reason);
    out += '}';
  }
  out += ']';
  return out;
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
