#pragma once
/// @file The HTTP API as a pure function: handle_request(plane, settings, request) -> response. It routes (path
/// parameters, query strings, 405 with Allow), checks Host and Origin (DNS rebinding, browser CSRF), the Bearer token
/// of state-changing routes (constant time), parses JSON bodies under a depth limit, validates them (422 naming the
/// field and what was expected) and calls one ControlPlane method. No sockets, no clocks, no globals: the server
/// (api/http/server.hpp) only does I/O around it, and tests and the fuzz target call it directly.
///
/// Every error is a JSON body {"error": code, "message": text} (plus "field" for a 422 of a body field). The route
/// table below is the only list of routes: the router, GET /openapi.json and the test that walks the routes all
/// read it, so they cannot drift apart.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include "api/http/control_plane.hpp"

namespace qtos::api {

namespace http = boost::beast::http;
/// A request as the server hands it over (whole body read, under the body limit).
using Request = http::request<http::string_body>;
/// A response; the server adds keep-alive and writes it.
using Response = http::response<http::string_body>;

/// What handle_request needs besides the services. Plain data; the server fills it from ServerSettings.
struct ApiSettings {
  std::string token;                       ///< Bearer token of state-changing routes; empty: every one answers 401
  std::size_t body_limit = 64 * 1024;      ///< bytes; a larger body answers 413 (the server stops reading first)
  std::size_t json_depth_limit = 32;       ///< nesting depth of a JSON body; deeper answers 400
  std::size_t list_limit_default = 100;    ///< `limit` of list routes when not given
  std::size_t list_limit_max = 10'000;     ///< largest `limit` accepted (larger answers 422)
  std::vector<std::string> allowed_hosts;  ///< Host names accepted besides the loopback ones (a non-loopback bind)
  std::vector<std::string> allowed_origins;///< Origins a state-changing route accepts (none: any Origin is 403)
};

/// Answers one request. Never throws for any input (a bug in a ControlPlane surfaces as 500 with no detail).
Response handle_request(ControlPlane& plane, const ApiSettings& settings, const Request& request);

/// A query parameter of a route, for the router's checks and the OpenAPI document.
struct QueryParamSpec {
  std::string_view name;         ///< e.g. "limit"
  std::string_view description;  ///< one line
};

struct RouteContext;
/// The function behind a route (internal to handler.cpp; exposed only so the table is one list).
using RouteFn = Response (*)(RouteContext&);

/// One route: method, path pattern (`{name}` segments are parameters) and what the OpenAPI document says about it.
struct RouteSpec {
  http::verb method;                        ///< GET, PUT, POST or DELETE
  std::string_view path;                    ///< e.g. "/strategies/{id}/promote"
  std::string_view operation_id;            ///< unique, e.g. "strategyPromote"
  std::string_view summary;                 ///< one line
  bool mutating = false;                    ///< changes state: token required, Origin refused
  std::vector<QueryParamSpec> query;        ///< accepted query parameters
  std::string_view body_schema;             ///< JSON Schema of the body as JSON text; empty: no body
  bool body_required = false;               ///< a body must be sent
  std::string_view content_type;            ///< of a 200 answer
  std::vector<unsigned> statuses;           ///< every status the route can answer
  RouteFn fn = nullptr;                     ///< the handler
};

/// Every route, in the order the router tries them (literal paths before parameterised ones at equal length).
std::span<const RouteSpec> api_routes();

/// The OpenAPI 3.0 document of every route (what GET /openapi.json serves).
boost::json::value openapi_document();

/// True when `host` (a Host header value, with or without a port) names a loopback address: localhost,
/// 127.0.0.0/8 or [::1].
bool host_is_loopback(std::string_view host);

/// Compares a presented token with the expected one in time that depends only on the expected token's length.
bool token_equal(std::string_view presented, std::string_view expected);

/// True when `response` (from handle_request) opens a server-sent-events stream the session must keep writing.
bool response_is_event_stream(const Response& response);
/// Where an event stream resumes: the Last-Event-ID header, else ?since=, else 0 (call after handle_request said
/// 200 to the request; then both are valid numbers).
std::uint64_t event_stream_since(const Request& request);
/// One event in the text/event-stream format: `id:`, `event:` and `data:` lines and a blank line.
std::string sse_format(const ApiEvent& event);

/// The HTTP status an ErrorCode of the ControlPlane maps to (see control_plane.hpp).
http::status http_status_of(ErrorCode code);

/// A JSON error response {"error": code, "message": message} with `status`, for the server's own errors (413, 431).
Response error_response(http::status status, std::string_view code, std::string_view message, unsigned version = 11);

}  // namespace qtos::api
