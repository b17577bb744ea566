#include "api/http/handler.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "api/http/dashboard.hpp"
#include "cpu/util/enum_names.hpp"

#ifndef QTOS_VERSION
#define QTOS_VERSION "0.0.0"
#endif

namespace qtos::api {

namespace json = boost::json;
using http::status;
using http::verb;

/// What a route function sees: the request taken apart and checked.
struct RouteContext {
  ControlPlane& plane;                                   ///< the services
  const ApiSettings& settings;                           ///< limits
  const Request& request;                                ///< the raw request
  std::vector<std::string> params;                       ///< decoded path parameters, in order
  std::map<std::string, std::string, std::less<>> query; ///< decoded query parameters (the last of a repeated name)
  json::object body;                                     ///< the parsed body (empty object when none)
  Actor actor;                                           ///< "api" and the request's reason
};

namespace {

// True when `s` is well-formed UTF-8 (JSON strings must be; a quoted path segment could be anything).
bool utf8_valid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) n = 2;
    else if (c >= 0xf0 && c <= 0xf4) n = 3;
    else return false;
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) return false;  // overlong, surrogates
    if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) return false;  // overlong, above U+10FFFF
    i += n + 1;
  }
  return true;
}

// A message or field name safe to put in a JSON string: bytes of broken UTF-8 become '?'.
std::string json_safe(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  std::string out(s);
  for (auto& ch : out)
    if (static_cast<unsigned char>(ch) >= 0x80) ch = '?';
  return out;
}

// An early exit with a status inside handle_request (validation deep in a route); never escapes handle_request.
struct ApiError {
  status code;
  std::string error;
  std::string message;
  std::string field;
};

[[noreturn]] void fail(status s, std::string error, std::string message, std::string field = {}) {
  throw ApiError{s, std::move(error), std::move(message), std::move(field)};
}
[[noreturn]] void fail_field(std::string field, std::string expected, const json::value* got) {
  std::string msg = "field '" + field + "': expected " + expected;
  if (got) {
    std::string text = json::serialize(*got);
    if (text.size() > 80) text = text.substr(0, 80) + "...";
    msg += ", got " + text;
  }
  fail(status::unprocessable_entity, "invalid", std::move(msg), std::move(field));
}

Response make_response(status s, const Request& req, std::string body, std::string_view content_type) {
  Response res{s, req.version()};
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response json_response(status s, const Request& req, const json::value& v) {
  return make_response(s, req, json::serialize(v), "application/json");
}

Response error_json(status s, unsigned version, std::string_view code, std::string_view message, std::string_view field) {
  json::object o;
  o["error"] = code;
  o["message"] = json_safe(message);
  if (!field.empty()) o["field"] = json_safe(field);
  Response res{s, version};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  if (s == status::unauthorized) res.set(http::field::www_authenticate, "Bearer");
  res.body() = json::serialize(o);
  res.prepare_payload();
  return res;
}

Response from_result(const RouteContext& c, const Result<json::value>& r, status ok = status::ok) {
  if (r) return json_response(ok, c.request, r.value());
  const auto code = r.error().code;
  return error_json(http_status_of(code), c.request.version(), error_code_name(code), r.error().message, {});
}

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Percent-decodes a path segment or query component; nullopt on a broken escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char ch = in[i];
    if (ch == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (ch == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string_view verb_name(verb v) {
  const auto s = http::to_string(v);
  return std::string_view(s.data(), s.size());
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// ---- query parameters ----------------------------------------------------------------------------------------

std::uint64_t query_u64(const RouteContext& c, std::string_view name, std::uint64_t fallback, std::uint64_t lo,
                        std::uint64_t hi) {
  const auto it = c.query.find(name);
  if (it == c.query.end()) return fallback;
  const auto v = parse_u64(it->second);
  if (!v || *v < lo || *v > hi) {
    std::string got = it->second.size() > 40 ? it->second.substr(0, 40) + "..." : it->second;
    fail(status::unprocessable_entity, "invalid",
         "query '" + std::string(name) + "': expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
             "], got \"" + got + "\"",
         std::string(name));
  }
  return *v;
}

std::size_t query_limit(const RouteContext& c) {
  return static_cast<std::size_t>(query_u64(c, "limit", c.settings.list_limit_default, 1, c.settings.list_limit_max));
}

// ---- body fields ---------------------------------------------------------------------------------------------

const json::value* body_field(const RouteContext& c, std::string_view key) { return c.body.if_contains(key); }

std::optional<std::string> opt_string(const RouteContext& c, std::string_view key, std::size_t max_len = 1000) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  if (!v->is_string() || v->get_string().size() > max_len)
    fail_field(std::string(key), "a string of at most " + std::to_string(max_len) + " characters", v);
  return std::string(v->get_string());
}

std::optional<bool> opt_bool(const RouteContext& c, std::string_view key) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) fail_field(std::string(key), "true or false", v);
  return v->get_bool();
}

std::optional<double> opt_number(const RouteContext& c, std::string_view key) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) fail_field(std::string(key), "a number", v);
  const double d = v->to_number<double>();
  if (!std::isfinite(d)) fail_field(std::string(key), "a finite number", v);
  return d;
}

std::optional<std::int64_t> opt_integer(const RouteContext& c, std::string_view key) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v->get_uint64());
  fail_field(std::string(key), "an integer", v);
}

std::optional<std::uint64_t> opt_unsigned(const RouteContext& c, std::string_view key) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
  fail_field(std::string(key), "a non-negative integer", v);
}

std::optional<std::set<std::string>> opt_string_set(const RouteContext& c, std::string_view key) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  if (!v->is_array()) fail_field(std::string(key), "an array of strings", v);
  std::set<std::string> out;
  for (const auto& e : v->get_array()) {
    if (!e.is_string() || e.get_string().empty()) fail_field(std::string(key), "an array of non-empty strings", v);
    out.emplace(e.get_string());
  }
  return out;
}

std::optional<std::map<std::string, std::string>> opt_string_map(const RouteContext& c, std::string_view key) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  if (!v->is_object()) fail_field(std::string(key), "an object of strings", v);
  std::map<std::string, std::string> out;
  for (const auto& kv : v->get_object()) {
    if (!kv.value().is_string()) fail_field(std::string(key), "an object whose values are strings", v);
    out.emplace(std::string(kv.key()), std::string(kv.value().get_string()));
  }
  return out;
}

template <class E>
std::optional<E> opt_enum(const RouteContext& c, std::string_view key) {
  const auto* v = body_field(c, key);
  if (!v) return std::nullopt;
  const auto e = v->is_string() ? enum_parse<E>(std::string_view(v->get_string())) : std::nullopt;
  if (!e) fail_field(std::string(key), enum_names_joined<E>(), v);
  return e;
}

template <class T>
T required(std::optional<T> v, std::string_view key) {
  if (!v) fail_field(std::string(key), "a value (the field is required)", nullptr);
  return std::move(*v);
}

// ---- path parameters -----------------------------------------------------------------------------------------

std::optional<Subsystem> subsystem_parse(std::string_view name) {
  // Accept the health view's names too ("AI-HFOS", "self-healing").
  std::string n(name);
  if (n.size() > 3 && iequals(n.substr(0, 3), "ai-")) n = n.substr(3);
  std::replace(n.begin(), n.end(), '-', '_');
  return enum_parse<Subsystem>(n);
}

// ---- routes --------------------------------------------------------------------------------------------------

Response r_dashboard(RouteContext& c) {
  auto res = make_response(status::ok, c.request, std::string(dashboard_html()), "text/html; charset=utf-8");
  res.set("Content-Security-Policy", kDashboardCsp);
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  return res;
}
Response r_health(RouteContext& c) {
  const bool ready = c.plane.ready();
  json::object o;
  o["status"] = ready ? "ok" : "unavailable";
  o["ready"] = ready;
  return json_response(status::ok, c.request, o);
}
Response r_health_ai(RouteContext& c) { return json_response(status::ok, c.request, c.plane.health_ai()); }
Response r_policy(RouteContext& c) { return json_response(status::ok, c.request, c.plane.policy()); }
Response r_policy_history(RouteContext& c) {
  const auto from = query_u64(c, "from_version", 1, 1, UINT64_MAX);
  return json_response(status::ok, c.request, c.plane.policy_history(from, query_limit(c)));
}
Response r_policy_put(RouteContext& c) {
  const auto expected = required(opt_unsigned(c, "expected_version"), "expected_version");
  PolicyPatch p;
  p.risk_mode = opt_enum<RiskMode>(c, "risk_mode");
  p.allowed_strategies = opt_string_set(c, "allowed_strategies");
  p.blocked_strategies = opt_string_set(c, "blocked_strategies");
  p.min_confidence = opt_number(c, "min_confidence");
  p.max_risk_per_trade = opt_number(c, "max_risk_per_trade");
  p.max_open_positions = opt_integer(c, "max_open_positions");
  p.max_leverage = opt_number(c, "max_leverage");
  p.max_daily_drawdown_pct = opt_number(c, "max_daily_drawdown_pct");
  p.max_open_drawdown_pct = opt_number(c, "max_open_drawdown_pct");
  p.top_n_universe = opt_integer(c, "top_n_universe");
  p.extra = opt_string_map(c, "extra");
  return from_result(c, c.plane.policy_update(p, expected, c.actor));
}
Response r_risk_mode(RouteContext& c) {
  const auto mode = required(opt_enum<RiskMode>(c, "risk_mode"), "risk_mode");
  return from_result(c, c.plane.risk_mode_set(mode, c.actor));
}
Response r_brake(RouteContext& c) {
  const bool on = required(opt_bool(c, "on"), "on");
  return from_result(c, c.plane.emergency_brake_set(on, c.actor));
}
Response r_subsystem_mode(RouteContext& c) {
  const auto s = subsystem_parse(c.params[0]);
  if (!s)
    fail(status::not_found, "not_found", "no subsystem '" + c.params[0] + "'; expected " + enum_names_joined<Subsystem>());
  const auto mode = required(opt_enum<SubsystemMode>(c, "mode"), "mode");
  return from_result(c, c.plane.subsystem_mode_set(*s, mode, c.actor));
}
Response r_stage(RouteContext& c) {
  const auto stage = required(opt_enum<IntegrationStage>(c, "stage"), "stage");
  return from_result(c, c.plane.stage_set(stage, c.actor));
}
Response r_opportunities(RouteContext& c) { return json_response(status::ok, c.request, c.plane.opportunities()); }
Response r_strategies(RouteContext& c) { return json_response(status::ok, c.request, c.plane.strategies()); }
Response r_strategy(RouteContext& c) { return from_result(c, c.plane.strategy(c.params[0])); }
Response r_strategy_promote(RouteContext& c) { return from_result(c, c.plane.strategy_promote(c.params[0], c.actor)); }
Response r_strategy_retire(RouteContext& c) { return from_result(c, c.plane.strategy_retire(c.params[0], c.actor)); }
Response r_models(RouteContext& c) { return json_response(status::ok, c.request, c.plane.models()); }
Response r_model_promote(RouteContext& c) { return from_result(c, c.plane.model_promote(c.params[0], c.actor)); }
Response r_positions(RouteContext& c) { return json_response(status::ok, c.request, c.plane.positions()); }
Response r_position_close(RouteContext& c) { return from_result(c, c.plane.position_close(c.params[0], c.actor)); }
Response r_orders(RouteContext& c) { return json_response(status::ok, c.request, c.plane.orders(query_limit(c))); }
Response r_order(RouteContext& c) { return from_result(c, c.plane.order(c.params[0])); }
Response r_trades(RouteContext& c) { return json_response(status::ok, c.request, c.plane.trades(query_limit(c))); }
Response r_analytics_system(RouteContext& c) {
  return json_response(status::ok, c.request, c.plane.analytics_system());
}
Response r_analytics_strategies(RouteContext& c) {
  return json_response(status::ok, c.request, c.plane.analytics_strategies());
}
Response r_events(RouteContext& c) {
  const auto since = query_u64(c, "since", 0, 0, UINT64_MAX);
  const auto events = c.plane.events_since(since, query_limit(c));
  json::array arr;
  std::uint64_t last = since;
  for (const auto& e : events) {
    arr.push_back(json::object{{"id", e.id}, {"type", e.type}, {"data", e.data}});
    last = std::max(last, e.id);
  }
  return json_response(status::ok, c.request, json::object{{"events", std::move(arr)}, {"last_id", last}});
}
Response r_events_stream(RouteContext& c) {
  query_u64(c, "since", 0, 0, UINT64_MAX);  // checked here so the session can trust it
  const auto it = c.request.find("Last-Event-ID");
  if (it != c.request.end() && !parse_u64(std::string_view(it->value().data(), it->value().size())))
    fail(status::unprocessable_entity, "invalid", "header 'Last-Event-ID': expected a non-negative integer",
         "Last-Event-ID");
  // The session writes the events after this header (api/http/server.cpp); the body stays empty.
  Response res{status::ok, c.request.version()};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  return res;
}
Response r_metrics(RouteContext& c) {
  return make_response(status::ok, c.request, c.plane.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
}
Response r_openapi(RouteContext& c) { return json_response(status::ok, c.request, openapi_document()); }
Response r_locks(RouteContext& c) { return json_response(status::ok, c.request, c.plane.locks()); }
Response r_lock_delete(RouteContext& c) { return from_result(c, c.plane.lock_delete(c.params[0], c.actor)); }
Response r_job(RouteContext& c) { return from_result(c, c.plane.job(c.params[0])); }
Response r_job_cancel(RouteContext& c) { return from_result(c, c.plane.job_cancel(c.params[0], c.actor)); }
template <JobKind K>
Response r_job_start(RouteContext& c) {
  json::object params;
  if (const auto* p = body_field(c, "params")) {
    if (!p->is_object()) fail_field("params", "an object", p);
    params = p->get_object();
  }
  return from_result(c, c.plane.job_start(K, params, c.actor), status::accepted);
}

// ---- the table -----------------------------------------------------------------------------------------------

constexpr std::string_view kReasonProp = R"J("reason": {"type": "string", "maxLength": 1000, "description": "why (recorded with the change)"})J";

const std::vector<unsigned> kGet = {200, 400, 403, 503};
const std::vector<unsigned> kGetQuery = {200, 400, 403, 422, 503};
const std::vector<unsigned> kGetId = {200, 400, 403, 404, 503};
const std::vector<unsigned> kControl = {200, 400, 401, 403, 413, 422, 503};
const std::vector<unsigned> kControlId = {200, 400, 401, 403, 404, 413, 422, 503};

// A job start: 202 with its id, 409 while the running jobs are at their cap.
const std::vector<unsigned> kJobStart = {202, 400, 401, 403, 409, 413, 422, 503};

std::vector<RouteSpec> build_routes() {
  const QueryParamSpec limit{"limit", "at most this many items (default 100)"};
  const std::string reason_only = std::string(R"J({"type": "object", "additionalProperties": false, "properties": {)J") +
                                  std::string(kReasonProp) + "}}";
  static const std::string kReasonOnly = reason_only;
  static const std::string kPolicyPut =
      std::string(R"J({"type": "object", "additionalProperties": false, "required": ["expected_version"], "properties": {
    "expected_version": {"type": "integer", "minimum": 0, "description": "the version this change was made against (409 when it moved)"},
    "risk_mode": {"type": "string", "enum": ["AGGRESSIVE", "NORMAL", "DEFENSIVE"]},
    "allowed_strategies": {"type": "array", "items": {"type": "string"}},
    "blocked_strategies": {"type": "array", "items": {"type": "string"}},
    "min_confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "max_risk_per_trade": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "max_open_positions": {"type": "integer", "minimum": 0},
    "max_leverage": {"type": "number", "minimum": 1, "maximum": 125},
    "max_daily_drawdown_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    "max_open_drawdown_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    "top_n_universe": {"type": "integer", "minimum": 1},
    "extra": {"type": "object", "additionalProperties": {"type": "string"}},
    )J") + std::string(kReasonProp) + "}}";
  static const std::string kRiskMode =
      std::string(R"J({"type": "object", "additionalProperties": false, "required": ["risk_mode"], "properties": {
    "risk_mode": {"type": "string", "enum": ["AGGRESSIVE", "NORMAL", "DEFENSIVE"]}, )J") + std::string(kReasonProp) + "}}";
  static const std::string kBrake =
      std::string(R"J({"type": "object", "additionalProperties": false, "required": ["on"], "properties": {
    "on": {"type": "boolean", "description": "true engages the brake, false releases it"}, )J") +
      std::string(kReasonProp) + "}}";
  static const std::string kMode =
      std::string(R"J({"type": "object", "additionalProperties": false, "required": ["mode"], "properties": {
    "mode": {"type": "string", "enum": ["OFF", "OBSERVE", "ADVISORY", "ENFORCED", "PROTECTIVE"]}, )J") +
      std::string(kReasonProp) + "}}";
  static const std::string kStage =
      std::string(R"J({"type": "object", "additionalProperties": false, "required": ["stage"], "properties": {
    "stage": {"type": "string", "enum": ["OBSERVATION", "PARTIAL", "COORDINATION", "AUTONOMY"]}, )J") +
      std::string(kReasonProp) + "}}";
  static const std::string kJob =
      std::string(R"J({"type": "object", "additionalProperties": false, "properties": {
    "params": {"type": "object", "description": "the job's options (as the CLI verb's)"}, )J") +
      std::string(kReasonProp) + "}}";

  auto get = [](std::string_view path, std::string_view op, std::string_view summary, RouteFn fn,
                std::vector<unsigned> statuses = kGet, std::vector<QueryParamSpec> query = {},
                std::string_view content_type = "application/json") {
    RouteSpec r{verb::get, path, op, summary};
    r.query = std::move(query);
    r.content_type = content_type;
    r.statuses = std::move(statuses);
    r.fn = fn;
    return r;
  };
  auto control = [](verb m, std::string_view path, std::string_view op, std::string_view summary, RouteFn fn,
                    std::string_view schema, bool body_required, std::vector<unsigned> statuses) {
    RouteSpec r{m, path, op, summary};
    r.mutating = true;
    r.body_schema = schema;
    r.body_required = body_required;
    r.content_type = "application/json";
    r.statuses = std::move(statuses);
    r.fn = fn;
    return r;
  };
  auto with = [](std::vector<unsigned> base, std::initializer_list<unsigned> more) {
    base.insert(base.end(), more);
    std::sort(base.begin(), base.end());
    return base;
  };

  std::vector<RouteSpec> t;
  t.push_back(get("/", "dashboard",
                  "The dashboard: one self-contained HTML page over the read routes, the event stream and the controls",
                  r_dashboard, {200, 400, 403}, {}, "text/html"));
  t.push_back(get("/health", "health", "Liveness: always 200 while the process serves; says whether it is ready",
                  r_health, {200, 400, 403}));
  t.push_back(get("/health/ai", "healthAi", "The AI subsystems' health: stage, services and their states, brake",
                  r_health_ai));
  t.push_back(get("/policy", "policyGet", "The current policy with its version", r_policy));
  t.push_back(control(verb::put, "/policy", "policyPut",
                      "Changes policy fields when the policy is still at expected_version (409 otherwise)", r_policy_put,
                      kPolicyPut, true, with(kControl, {409})));
  t.push_back(get("/policy/history", "policyHistory", "Stored policy versions, oldest first", r_policy_history,
                  kGetQuery, {{"from_version", "first version to list (default 1)"}, limit}));
  t.push_back(control(verb::post, "/policy/risk-mode", "policyRiskMode", "Sets the risk mode", r_risk_mode, kRiskMode,
                      true, with(kControl, {409})));
  t.push_back(control(verb::post, "/emergency-brake", "emergencyBrake", "Engages or releases the emergency brake",
                      r_brake, kBrake, true, kControl));
  t.push_back(control(verb::post, "/subsystems/{name}/mode", "subsystemMode",
                      "Sets an AI subsystem's mode at once (OFF rolls it back)", r_subsystem_mode, kMode, true,
                      kControlId));
  t.push_back(control(verb::post, "/stage", "stageSet", "Moves to another integration stage", r_stage, kStage, true,
                      kControl));
  t.push_back(get("/opportunities", "opportunities", "The latest ranked opportunities", r_opportunities));
  t.push_back(get("/strategies", "strategies", "Every known strategy with its stage", r_strategies));
  t.push_back(get("/strategies/{id}", "strategyGet", "One strategy", r_strategy, kGetId));
  t.push_back(control(verb::post, "/strategies/{id}/promote", "strategyPromote", "Promotes a strategy (shadow to live)",
                      r_strategy_promote, kReasonOnly, false, kControlId));
  t.push_back(control(verb::post, "/strategies/{id}/retire", "strategyRetire", "Retires a strategy",
                      r_strategy_retire, kReasonOnly, false, kControlId));
  t.push_back(get("/models", "models", "The model registry", r_models));
  t.push_back(control(verb::post, "/models/{name}/promote", "modelPromote", "Makes a model's shadow version active",
                      r_model_promote, kReasonOnly, false, kControlId));
  t.push_back(get("/positions", "positions", "Open positions", r_positions));
  t.push_back(control(verb::post, "/positions/{symbol}/close", "positionClose",
                      "Forces an exit of a position, through the Risk OS", r_position_close, kReasonOnly, false,
                      kControlId));
  t.push_back(get("/orders", "orders", "The newest orders", r_orders, kGetQuery, {limit}));
  t.push_back(get("/orders/{id}", "orderGet", "One order with its decision trace", r_order, kGetId));
  t.push_back(get("/trades", "trades", "The newest closed trades", r_trades, kGetQuery, {limit}));
  t.push_back(get("/analytics/system", "analyticsSystem", "Equity, PnL, drawdown and counts", r_analytics_system));
  t.push_back(get("/analytics/strategies", "analyticsStrategies", "Per-strategy analytics", r_analytics_strategies));
  t.push_back(get("/events", "events", "Events after an id, oldest first", r_events, kGetQuery,
                  {{"since", "list events with a larger id (default 0)"}, limit}));
  t.push_back(get("/events/stream", "eventsStream",
                  "Server-sent events from ?since= or the Last-Event-ID header onwards, until the server stops",
                  r_events_stream, kGetQuery, {{"since", "stream events with a larger id (default 0)"}},
                  "text/event-stream"));
  t.push_back(get("/metrics", "metrics", "Prometheus metrics (text exposition format 0.0.4)", r_metrics, kGet, {},
                  "text/plain"));
  t.push_back(get("/openapi.json", "openapi", "This document", r_openapi));
  t.push_back(get("/locks", "locks", "The stop-loss guard's and cooldowns' active locks", r_locks));
  t.push_back(control(verb::delete_, "/locks/{id}", "lockDelete", "Releases a lock", r_lock_delete, {}, false,
                      {200, 400, 401, 403, 404, 503}));
  t.push_back(control(verb::post, "/jobs/rank", "jobRank", "Starts a ranking job; answers its id",
                      r_job_start<JobKind::rank>, kJob, false, kJobStart));
  t.push_back(control(verb::post, "/jobs/evolve", "jobEvolve", "Starts an evolution job; answers its id",
                      r_job_start<JobKind::evolve>, kJob, false, kJobStart));
  t.push_back(control(verb::post, "/jobs/retrain", "jobRetrain", "Starts a retraining job; answers its id",
                      r_job_start<JobKind::retrain>, kJob, false, kJobStart));
  t.push_back(get("/jobs/{id}", "jobGet", "A job's state and progress", r_job, kGetId));
  t.push_back(control(verb::delete_, "/jobs/{id}", "jobCancel", "Asks a job to stop at its next safe point",
                      r_job_cancel, {}, false, {200, 400, 401, 403, 404, 503}));
  return t;
}

const std::vector<RouteSpec>& routes() {
  static const std::vector<RouteSpec> kRoutes = build_routes();
  return kRoutes;
}

// The property names each route's body schema allows (unknown fields answer 422), parsed once from the table.
const std::vector<std::set<std::string, std::less<>>>& body_fields() {
  static const auto kFields = [] {
    std::vector<std::set<std::string, std::less<>>> out;
    for (const auto& r : routes()) {
      std::set<std::string, std::less<>> names;
      if (!r.body_schema.empty()) {
        const auto schema = json::parse(r.body_schema);
        for (const auto& kv : schema.at("properties").as_object()) names.emplace(kv.key());
      }
      out.push_back(std::move(names));
    }
    return out;
  }();
  return kFields;
}

std::vector<std::string_view> pattern_segments(std::string_view pattern) { return split(pattern.substr(1), '/'); }

// Each route's pattern split into segments once (the router runs on every request).
const std::vector<std::vector<std::string_view>>& route_segments() {
  static const auto kSegs = [] {
    std::vector<std::vector<std::string_view>> out;
    for (const auto& r : routes()) out.push_back(pattern_segments(r.path));
    return out;
  }();
  return kSegs;
}

// Matches decoded path segments against route `i`'s pattern; fills the parameters.
bool route_match(std::size_t i, const std::vector<std::string>& segs, std::vector<std::string>& params) {
  const auto& ps = route_segments()[i];
  if (ps.size() != segs.size()) return false;
  for (std::size_t k = 0; k < ps.size(); ++k) {
    const bool param = !ps[k].empty() && ps[k].front() == '{';
    if (param ? segs[k].empty() : ps[k] != segs[k]) return false;
  }
  params.clear();
  for (std::size_t k = 0; k < ps.size(); ++k)
    if (!ps[k].empty() && ps[k].front() == '{') params.push_back(segs[k]);
  return true;
}

bool origin_allowed(const ApiSettings& s, std::string_view origin) {
  return std::any_of(s.allowed_origins.begin(), s.allowed_origins.end(),
                     [&](const std::string& o) { return iequals(o, origin); });
}

// The dashboard's own requests. A browser sends Origin even on a same-origin POST, so the page GET / serves would be
// refused by the rule above. An Origin is this server's own when it is exactly "http://" + the request's Host (same
// host and port) and that Host is a loopback name: a page of any other site, or of another local port, still differs
// and is refused (CSRF), and a rebinding name never gets this far (the Host check). A dashboard reached through a
// non-loopback name must be listed in allowed_origins.
bool origin_is_this_loopback_server(std::string_view origin, std::string_view host) {
  constexpr std::string_view kHttp = "http://";
  if (origin.size() <= kHttp.size() || !iequals(origin.substr(0, kHttp.size()), kHttp)) return false;
  const auto authority = origin.substr(kHttp.size());
  return iequals(authority, host) && host_is_loopback(authority);
}

bool host_allowed(const ApiSettings& s, std::string_view host) {
  if (host_is_loopback(host)) return true;
  return std::any_of(s.allowed_hosts.begin(), s.allowed_hosts.end(), [&](const std::string& h) {
    if (iequals(h, host)) return true;
    // "name" also admits "name:port"
    return host.size() > h.size() && host[h.size()] == ':' && iequals(h, host.substr(0, h.size()));
  });
}

std::string_view header(const Request& req, http::field f) {
  const auto it = req.find(f);
  if (it == req.end()) return {};
  return std::string_view(it->value().data(), it->value().size());
}

bool has_header(const Request& req, http::field f) { return req.find(f) != req.end(); }

Response dispatch(ControlPlane& plane, const ApiSettings& settings, const Request& req) {
  // 1. Framing and Host, before anything is routed: a rebinding page must learn nothing, not even a 404.
  if (has_header(req, http::field::content_length) && has_header(req, http::field::transfer_encoding))
    fail(status::bad_request, "bad_request", "both Content-Length and Transfer-Encoding are set");
  if (!has_header(req, http::field::host)) fail(status::bad_request, "bad_request", "the Host header is required");
  if (!host_allowed(settings, header(req, http::field::host)))
    fail(status::forbidden, "forbidden", "Host is not a loopback name (DNS rebinding is refused)");

  // 2. Target: origin-form only, path segments percent-decoded, query parsed.
  const std::string_view target(req.target().data(), req.target().size());
  if (target.empty() || target.front() != '/')
    fail(status::bad_request, "bad_request", "the request target must be a path starting with '/'");
  const auto qpos = target.find('?');
  const auto path = target.substr(0, qpos);
  std::vector<std::string> segs;
  for (const auto s : split(path.substr(1), '/')) {
    auto d = percent_decode(s, false);
    if (!d) fail(status::bad_request, "bad_request", "a broken percent-escape in the path");
    if (!utf8_valid(*d)) fail(status::bad_request, "bad_request", "the path is not UTF-8");
    segs.push_back(std::move(*d));
  }
  std::map<std::string, std::string, std::less<>> query;
  if (qpos != std::string_view::npos) {
    for (const auto part : split(target.substr(qpos + 1), '&')) {
      if (part.empty()) continue;
      const auto eq = part.find('=');
      auto k = percent_decode(part.substr(0, eq), true);
      auto v = percent_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
      if (!k || !v) fail(status::bad_request, "bad_request", "a broken percent-escape in the query");
      if (!utf8_valid(*k) || !utf8_valid(*v)) fail(status::bad_request, "bad_request", "the query is not UTF-8");
      query[std::move(*k)] = std::move(*v);
    }
  }

  // 3. Route: the path decides 404, the method 405 (with Allow).
  const auto& table = routes();
  std::vector<std::string> params;
  const RouteSpec* route = nullptr;
  std::size_t index = 0;
  std::set<std::string_view> allow;
  for (std::size_t i = 0; i < table.size(); ++i) {
    std::vector<std::string> p;
    if (!route_match(i, segs, p)) continue;
    allow.insert(verb_name(table[i].method));
    if (!route && table[i].method == req.method()) {
      route = &table[i];
      index = i;
      params = std::move(p);
    }
  }
  if (allow.empty()) fail(status::not_found, "not_found", "no route for this path");
  if (!route) {
    std::string allowed;
    for (const auto m : allow) allowed += (allowed.empty() ? "" : ", ") + std::string(m);
    auto res = error_json(status::method_not_allowed, req.version(), "method_not_allowed",
                          "this path accepts " + allowed, {});
    res.set(http::field::allow, allowed);
    return res;
  }

  // 4. State-changing routes: no browser Origin, then the token.
  if (route->mutating) {
    if (has_header(req, http::field::origin) && !origin_allowed(settings, header(req, http::field::origin)) &&
        !origin_is_this_loopback_server(header(req, http::field::origin), header(req, http::field::host)))
      fail(status::forbidden, "forbidden",
           "a state-changing request may not carry a foreign Origin (only this server's own dashboard may send one)");
    const auto auth = header(req, http::field::authorization);
    constexpr std::string_view kBearer = "Bearer ";
    const bool bearer = auth.size() > kBearer.size() && iequals(auth.substr(0, kBearer.size()), kBearer);
    if (!bearer) fail(status::unauthorized, "unauthorized", "this route needs 'Authorization: Bearer <token>'");
    if (settings.token.empty() || !token_equal(auth.substr(kBearer.size()), settings.token))
      fail(status::unauthorized, "unauthorized", "the token is wrong");
  }

  // 5. Availability: only liveness and the (static) dashboard answer while the services start or stop.
  if (route->fn != &r_health && route->fn != &r_dashboard && !plane.ready())
    fail(status::service_unavailable, "unavailable", "the services are starting or stopping; retry shortly");

  RouteContext c{plane, settings, req, std::move(params), std::move(query), {}, {}};

  // 6. Body: size, JSON under the depth limit, an object with known fields.
  if (route->mutating && !route->body_schema.empty()) {
    if (req.body().size() > settings.body_limit)
      fail(status::payload_too_large, "payload_too_large",
           "the body is larger than " + std::to_string(settings.body_limit) + " bytes");
    if (req.body().empty()) {
      if (route->body_required) fail(status::bad_request, "bad_request", "this route needs a JSON object body");
    } else {
      json::parse_options opt;
      opt.max_depth = settings.json_depth_limit;
      boost::system::error_code ec;
      auto v = json::parse(req.body(), ec, {}, opt);
      if (ec) fail(status::bad_request, "bad_request", "malformed JSON: " + ec.message());
      if (!v.is_object()) fail_field("body", "a JSON object", &v);
      c.body = std::move(v.get_object());
      const auto& allowed = body_fields()[index];
      for (const auto& kv : c.body)
        if (!allowed.count(std::string_view(kv.key())))
          fail(status::unprocessable_entity, "invalid", "unknown field '" + std::string(kv.key()) + "'",
               std::string(kv.key()));
    }
    if (auto r = opt_string(c, "reason")) c.actor.reason = std::move(*r);
  }
  if (c.actor.reason.empty()) c.actor.reason = std::string(verb_name(req.method())) + " " + std::string(path);

  return route->fn(c);
}

// Accepts the loopback forms of a Host value: localhost, 127.x.y.z, [::1], with an optional :port.
bool host_name_is_loopback(std::string_view h) {
  if (iequals(h, "localhost") || iequals(h, "localhost.")) return true;
  if (h == "[::1]") return true;
  const auto parts = split(h, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (const auto p : parts) {
    const auto v = parse_u64(p);
    if (!v || *v > 255 || p.size() > 3) return false;
  }
  return true;
}

}  // namespace

bool host_is_loopback(std::string_view host) {
  if (host.empty()) return false;
  std::string_view name = host;
  if (name.front() == '[') {
    const auto close = name.find(']');
    if (close == std::string_view::npos) return false;
    const auto rest = name.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !parse_u64(rest.substr(1)))) return false;
    name = name.substr(0, close + 1);
  } else if (const auto colon = name.rfind(':'); colon != std::string_view::npos) {
    if (!parse_u64(name.substr(colon + 1))) return false;
    name = name.substr(0, colon);
  }
  return host_name_is_loopback(name);
}

bool token_equal(std::string_view presented, std::string_view expected) {
  // Every byte of `expected` is visited whatever `presented` holds, so the time says nothing about the token.
  unsigned diff = presented.size() != expected.size() ? 1u : 0u;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned>(p ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

http::status http_status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::conflict:
      return status::conflict;
    case ErrorCode::not_found:
    case ErrorCode::no_job:
    case ErrorCode::no_model:
      return status::not_found;
    case ErrorCode::storage:
    case ErrorCode::stopped:
    case ErrorCode::cancelled:
      return status::service_unavailable;
    default:
      return status::unprocessable_entity;  // invalid, invalid_policy, bad_state, bad_transition, blocked, unsupported...
  }
}

Response error_response(http::status s, std::string_view code, std::string_view message, unsigned version) {
  return error_json(s, version, code, message, {});
}

namespace {

Response answer(ControlPlane& plane, const ApiSettings& settings, const Request& request) {
  try {
    return dispatch(plane, settings, request);
  } catch (const ApiError& e) {
    return error_json(e.code, request.version(), e.error, e.message, e.field);
  } catch (const PlaneUnavailable& e) {
    return error_json(status::service_unavailable, request.version(), "unavailable", e.what(), {});
  } catch (const std::exception&) {
    // A ControlPlane bug: say nothing about it to the caller (the plane logs its own failures).
    return error_json(status::internal_server_error, request.version(), "internal", "internal error", {});
  } catch (...) {
    return error_json(status::internal_server_error, request.version(), "internal", "internal error", {});
  }
}

}  // namespace

Response handle_request(ControlPlane& plane, const ApiSettings& settings, const Request& request) {
  auto res = answer(plane, settings, request);
  // Messages quote the request (a field name, an id): a token pasted there by mistake must not come back out.
  if (!settings.token.empty() && res.body().find(settings.token) != std::string::npos) {
    auto& body = res.body();
    for (auto at = body.find(settings.token); at != std::string::npos; at = body.find(settings.token, at))
      body.replace(at, settings.token.size(), "[redacted]");
    res.prepare_payload();
  }
  return res;
}

std::span<const RouteSpec> api_routes() { return routes(); }

bool response_is_event_stream(const Response& response) {
  if (response.result() != status::ok) return false;
  const auto it = response.find(http::field::content_type);
  return it != response.end() && std::string_view(it->value().data(), it->value().size()) == "text/event-stream";
}

std::uint64_t event_stream_since(const Request& request) {
  const auto it = request.find("Last-Event-ID");
  if (it != request.end()) {
    if (const auto v = parse_u64(std::string_view(it->value().data(), it->value().size()))) return *v;
  }
  const std::string_view target(request.target().data(), request.target().size());
  const auto q = target.find('?');
  if (q == std::string_view::npos) return 0;
  std::uint64_t since = 0;
  for (const auto part : split(target.substr(q + 1), '&')) {
    if (part.substr(0, 6) == "since=")
      if (const auto v = parse_u64(part.substr(6))) since = *v;
  }
  return since;
}

std::string sse_format(const ApiEvent& event) {
  std::string out = "id: " + std::to_string(event.id) + "\n";
  // A type name never holds a line break; strip any so a frame cannot be split.
  std::string type = event.type;
  type.erase(std::remove_if(type.begin(), type.end(), [](char ch) { return ch == '\n' || ch == '\r'; }), type.end());
  if (!type.empty()) out += "event: " + type + "\n";
  out += "data: " + json::serialize(event.data) + "\n\n";  // serialized JSON has no raw line breaks
  return out;
}

json::value openapi_document() {
  json::object paths;
  const json::object error_ref{{"$ref", "#/components/schemas/Error"}};
  for (const auto& r : routes()) {
    json::object op;
    op["operationId"] = r.operation_id;
    op["summary"] = r.summary;
    json::array parameters;
    for (const auto seg : pattern_segments(r.path)) {
      if (seg.empty() || seg.front() != '{') continue;
      parameters.push_back(json::object{{"name", seg.substr(1, seg.size() - 2)},
                                        {"in", "path"},
                                        {"required", true},
                                        {"schema", json::object{{"type", "string"}}}});
    }
    for (const auto& q : r.query)
      parameters.push_back(json::object{{"name", q.name},
                                        {"in", "query"},
                                        {"required", false},
                                        {"description", q.description},
                                        {"schema", json::object{{"type", "integer"}, {"minimum", 0}}}});
    if (r.fn == &r_events_stream)
      parameters.push_back(json::object{{"name", "Last-Event-ID"},
                                        {"in", "header"},
                                        {"required", false},
                                        {"description", "resume after this event id"},
                                        {"schema", json::object{{"type", "integer"}, {"minimum", 0}}}});
    if (!parameters.empty()) op["parameters"] = std::move(parameters);
    if (!r.body_schema.empty())
      op["requestBody"] = json::object{
          {"required", r.body_required},
          {"content", json::object{{"application/json", json::object{{"schema", json::parse(r.body_schema)}}}}}};
    if (r.mutating) op["security"] = json::array{json::object{{"bearer", json::array{}}}};
    json::object responses;
    for (const unsigned s : r.statuses) {
      const auto st = static_cast<status>(s);
      const auto reason = http::obsolete_reason(st);
      json::object resp{{"description", std::string_view(reason.data(), reason.size())}};
      if (s < 300) {
        json::object schema = r.content_type == "application/json" ? json::object{{"type", "object"}}
                                                                   : json::object{{"type", "string"}};
        resp["content"] = json::object{{r.content_type, json::object{{"schema", std::move(schema)}}}};
      } else {
        resp["content"] = json::object{{"application/json", json::object{{"schema", error_ref}}}};
      }
      responses[std::to_string(s)] = std::move(resp);
    }
    op["responses"] = std::move(responses);
    std::string method(verb_name(r.method));
    std::transform(method.begin(), method.end(), method.begin(), [](unsigned char ch) { return std::tolower(ch); });
    auto& item = paths[r.path];
    if (!item.is_object()) item = json::object{};
    item.as_object()[method] = std::move(op);
  }
  json::object error_schema{
      {"type", "object"},
      {"required", json::array{"error", "message"}},
      {"properties", json::object{{"error", json::object{{"type", "string"}}},
                                  {"message", json::object{{"type", "string"}}},
                                  {"field", json::object{{"type", "string"}}}}}};
  return json::object{
      {"openapi", "3.0.3"},
      {"info", json::object{{"title", "qtos control API"}, {"version", QTOS_VERSION},
                            {"description", "Local control API of the qtos trading OS. State-changing routes need "
                                            "'Authorization: Bearer <token>' (the token file in the state folder)."}}},
      {"servers", json::array{json::object{{"url", "http://127.0.0.1:8080"}}}},
      {"paths", std::move(paths)},
      {"components", json::object{{"securitySchemes",
                                   json::object{{"bearer", json::object{{"type", "http"}, {"scheme", "bearer"}}}}},
                                  {"schemas", json::object{{"Error", std::move(error_schema)}}}}}};
}

}  // namespace qtos::api
