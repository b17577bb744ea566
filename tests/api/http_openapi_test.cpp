// GET /openapi.json against the router: every route is documented, every documented operation answers, every
// status the route gives for an error it meets is among its documented responses, and other methods are 405.

#include <gtest/gtest.h>

#include <set>

#include <boost/json.hpp>

#include "api/http/handler.hpp"
#include "runtime/policy/policy.hpp"
#include "tests/api/http_fake_plane.hpp"

namespace qtos::api {
namespace http_openapi_test {

namespace json = boost::json;
using testing::FakeControlPlane;
using testing::make_request;
using http::verb;

// A path with its parameters filled in with values the fake plane knows.
std::string concrete(std::string path) {
  while (true) {
    const auto at = path.find('{');
    if (at == std::string::npos) return path;
    const auto name = path.substr(at, path.find('}') - at + 1);
    path.replace(at, name.size(), path.rfind("/subsystems", 0) == 0 ? "HFOS" : "x1");
  }
}

// A minimal valid body from a request-body schema: the required fields, with the enum's first value, a boolean,
// version 1 or an empty object.
std::string body_from_schema(const json::object& op) {
  if (!op.contains("requestBody")) return {};
  const auto& schema = op.at("requestBody").at("content").at("application/json").at("schema").as_object();
  json::object body;
  if (const auto* req = schema.if_contains("required")) {
    for (const auto& name : req->as_array()) {
      const auto& prop = schema.at("properties").at(name.as_string()).as_object();
      const std::string_view type = prop.at("type").as_string();
      if (prop.contains("enum")) body[name.as_string()] = prop.at("enum").as_array().at(0);
      else if (type == "boolean") body[name.as_string()] = true;
      else if (type == "integer") body[name.as_string()] = 1;
      else body[name.as_string()] = json::object{};
    }
  }
  return json::serialize(body);
}

verb verb_of(std::string_view m) { return http::string_to_verb(boost::beast::string_view(m.data(), m.size())); }

std::string upper(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

class HttpOpenApi : public ::testing::Test {
 protected:
  HttpOpenApi() {
    plane.validate = &policy_validate;
    const auto res = handle_request(plane, settings, make_request(verb::get, "/openapi.json"));
    EXPECT_EQ(res.result_int(), 200u);
    doc = json::parse(res.body());
  }
  const json::object& paths() const { return doc.at("paths").as_object(); }
  static bool documents(const json::object& op, unsigned status) {
    return op.at("responses").as_object().contains(std::to_string(status));
  }

  FakeControlPlane plane;
  ApiSettings settings = testing::test_settings();
  json::value doc;
};

TEST_F(HttpOpenApi, IsOpenApi3WithEveryRoute) {
  EXPECT_EQ(std::string_view(doc.at("openapi").as_string()).substr(0, 2), "3.");
  std::size_t ops = 0;
  for (const auto& kv : paths()) ops += kv.value().as_object().size();
  EXPECT_EQ(ops, api_routes().size());
  std::set<std::string> operation_ids;
  for (const auto& r : api_routes()) {
    std::string method(http::to_string(r.method));
    for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const auto* item = paths().if_contains(r.path);
    ASSERT_TRUE(item) << r.path;
    const auto* op = item->as_object().if_contains(method);
    ASSERT_TRUE(op) << method << " " << r.path;
    EXPECT_TRUE(operation_ids.insert(std::string(op->at("operationId").as_string())).second) << r.path;
    EXPECT_EQ(op->as_object().contains("security"), r.mutating) << r.path;
    EXPECT_EQ(op->as_object().contains("requestBody"), !r.body_schema.empty()) << r.path;
    // each {param} of the path is a documented path parameter
    std::size_t path_params = 0, documented = 0;
    for (const char ch : r.path) path_params += ch == '{';
    if (const auto* ps = op->as_object().if_contains("parameters"))
      for (const auto& p : ps->as_array()) documented += p.at("in") == "path";
    EXPECT_EQ(documented, path_params) << r.path;
  }
  // the issue's list of routes, every one present
  for (const auto* route : {"GET /health", "GET /health/ai", "GET /policy", "GET /policy/history", "GET /opportunities",
                            "GET /strategies", "GET /strategies/{id}", "GET /models", "GET /positions", "GET /orders",
                            "GET /orders/{id}", "GET /trades", "GET /analytics/system", "GET /analytics/strategies",
                            "GET /events", "GET /events/stream", "GET /metrics", "GET /openapi.json", "PUT /policy",
                            "POST /policy/risk-mode", "POST /emergency-brake", "POST /subsystems/{name}/mode",
                            "POST /stage", "POST /strategies/{id}/promote", "POST /strategies/{id}/retire",
                            "POST /models/{name}/promote", "POST /positions/{symbol}/close", "GET /locks",
                            "DELETE /locks/{id}", "POST /jobs/rank", "POST /jobs/evolve", "POST /jobs/retrain",
                            "GET /jobs/{id}", "DELETE /jobs/{id}"}) {
    const std::string_view s(route);
    const auto sp = s.find(' ');
    std::string method(s.substr(0, sp));
    for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const auto* item = paths().if_contains(s.substr(sp + 1));
    EXPECT_TRUE(item && item->as_object().contains(method)) << route;
  }
}

// Walks the document: each operation, called with its path filled in and a minimal body built from its schema,
// answers a documented 2xx; the error statuses it gives are documented too.
TEST_F(HttpOpenApi, EveryDocumentedOperationAnswersAsDocumented) {
  for (const auto& item : paths()) {
    const std::string target = concrete(std::string(item.key()));
    for (const auto& kv : item.value().as_object()) {
      const auto& op = kv.value().as_object();
      const auto m = verb_of(upper(std::string(kv.key())));
      const std::string body = body_from_schema(op);
      SCOPED_TRACE(std::string(kv.key()) + " " + target + " " + body);
      const auto res = handle_request(plane, settings, make_request(m, target, body));
      EXPECT_LT(res.result_int(), 300u) << res.body();
      EXPECT_TRUE(documents(op, res.result_int()));

      auto bad_host = make_request(m, target, body);
      bad_host.set(http::field::host, "evil.example");
      EXPECT_TRUE(documents(op, handle_request(plane, settings, bad_host).result_int()));
      auto no_auth = make_request(m, target, body, false);
      EXPECT_TRUE(documents(op, handle_request(plane, settings, no_auth).result_int()));
      if (item.key() != "/health") {
        plane.is_ready = false;
        EXPECT_TRUE(documents(op, handle_request(plane, settings, make_request(m, target, body)).result_int()));
        plane.is_ready = true;
      }
      if (op.contains("requestBody")) {
        EXPECT_TRUE(documents(op, handle_request(plane, settings, make_request(m, target, "{bad")).result_int()));
        EXPECT_TRUE(
            documents(op, handle_request(plane, settings, make_request(m, target, R"({"zzz": 1})")).result_int()));
      }
      if (target.find("x1") != std::string::npos || target.find("HFOS") != std::string::npos) {
        std::string missing = target;
        missing.replace(missing.find(target.find("x1") != std::string::npos ? "x1" : "HFOS"),
                        target.find("x1") != std::string::npos ? 2 : 4, "missing");
        const auto r = handle_request(plane, settings, make_request(m, missing, body));
        EXPECT_EQ(r.result_int(), 404u) << missing;
        EXPECT_TRUE(documents(op, 404));
      }
      if (const auto* ps = op.if_contains("parameters"))
        for (const auto& p : ps->as_array())
          if (p.at("in") == "query") {
            const auto r = handle_request(
                plane, settings, make_request(m, target + "?" + std::string(p.at("name").as_string()) + "=zz", body));
            EXPECT_EQ(r.result_int(), 422u);
            EXPECT_TRUE(documents(op, 422));
          }
    }
  }
}

// True when a documented path pattern matches a concrete path.
bool pattern_matches(std::string_view pattern, std::string_view path) {
  while (!pattern.empty() && !path.empty()) {
    const auto pe = pattern.find('/', 1), te = path.find('/', 1);
    const auto ps = pattern.substr(0, pe), ts = path.substr(0, te);
    if (ps != ts && !(ps.size() > 2 && ps[1] == '{' && ts.size() > 1)) return false;
    pattern = pe == std::string_view::npos ? std::string_view{} : pattern.substr(pe);
    path = te == std::string_view::npos ? std::string_view{} : path.substr(te);
  }
  return pattern.empty() && path.empty();
}

TEST_F(HttpOpenApi, UndocumentedMethodsAre405WithTheDocumentedAllow) {
  for (const auto& item : paths()) {
    const std::string target = concrete(std::string(item.key()));
    std::set<std::string> documented;  // every method some documented pattern accepts on this concrete path
    for (const auto& other : paths())
      if (pattern_matches(other.key(), target))
        for (const auto& kv : other.value().as_object()) documented.insert(upper(std::string(kv.key())));
    std::string expected_allow;
    for (const auto& d : documented) expected_allow += (expected_allow.empty() ? "" : ", ") + d;
    for (const auto m : {verb::get, verb::put, verb::post, verb::delete_, verb::patch, verb::head, verb::options}) {
      const std::string name(http::to_string(m));
      if (documented.count(name)) continue;
      const auto res = handle_request(plane, settings, make_request(m, target, "{}"));
      EXPECT_EQ(res.result_int(), 405u) << name << " " << target;
      EXPECT_EQ(res[http::field::allow], expected_allow) << name << " " << target;
    }
  }
  EXPECT_EQ(plane.control_calls, 0);
}

}  // namespace http_openapi_test
}  // namespace qtos::api
