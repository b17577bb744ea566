// handle_request without sockets: every route and every error status it decides (413/431 over a socket are in
// http_server_test.cpp).

#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include <boost/json.hpp>

#include "api/http/handler.hpp"
#include "runtime/policy/policy.hpp"
#include "tests/api/http_fake_plane.hpp"

namespace qtos::api {
namespace http_handler_test {

namespace json = boost::json;
using testing::FakeControlPlane;
using testing::make_request;
using testing::test_settings;
using http::verb;

struct Answer {
  unsigned status;
  json::value body;
  Response raw;
};

class HttpHandler : public ::testing::Test {
 protected:
  HttpHandler() { plane.validate = &policy_validate; }

  Answer call(const Request& req) {
    auto res = handle_request(plane, settings, req);
    Answer a{res.result_int(), {}, res};
    const auto ct = res[http::field::content_type];
    if (ct == "application/json") {
      boost::system::error_code ec;
      a.body = json::parse(res.body(), ec);
      EXPECT_FALSE(ec) << "not JSON: " << res.body();
    }
    return a;
  }
  Answer call(verb m, std::string_view target, std::string_view body = {}, bool auth = true) {
    return call(make_request(m, target, body, auth));
  }
  static std::string error_of(const Answer& a) { return std::string(a.body.at("error").as_string()); }

  FakeControlPlane plane;
  ApiSettings settings = test_settings();
};

TEST_F(HttpHandler, HealthAnswersAlwaysAndSaysWhetherReady) {
  auto a = call(verb::get, "/health");
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.body.at("status"), "ok");
  plane.is_ready = false;
  a = call(verb::get, "/health");
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.body.at("ready"), false);
}

TEST_F(HttpHandler, HealthAiHasTheDesignShape) {
  const auto a = call(verb::get, "/health/ai");
  ASSERT_EQ(a.status, 200u);
  for (const auto* key : {"initialized", "integration_stage", "services", "emergency_brake"})
    EXPECT_TRUE(a.body.as_object().contains(key)) << key;
  EXPECT_EQ(a.body.at("services").at("AI-HFOS").at("state"), "RUNNING");
}

TEST_F(HttpHandler, EveryReadRouteAnswersJson) {
  for (const auto* target : {"/policy", "/policy/history", "/opportunities", "/strategies", "/strategies/s1", "/models",
                             "/positions", "/orders", "/orders/o1", "/trades", "/analytics/system",
                             "/analytics/strategies", "/events", "/locks", "/jobs/x1", "/openapi.json"}) {
    const auto a = call(verb::get, target, {}, false);
    EXPECT_EQ(a.status, 200u) << target << ": " << a.raw.body();
    EXPECT_EQ(a.raw[http::field::content_type], "application/json") << target;
    EXPECT_EQ(a.raw[http::field::cache_control], "no-store") << target;
  }
  EXPECT_EQ(call(verb::get, "/opportunities").body.as_array().at(0).at("symbol"), "BTCUSDT");
}

TEST_F(HttpHandler, OrderCarriesItsDecisionTrace) {
  const auto a = call(verb::get, "/orders/o-17");
  ASSERT_EQ(a.status, 200u);
  EXPECT_EQ(a.body.at("id"), "o-17");
  EXPECT_TRUE(a.body.at("trace").is_array());
}

TEST_F(HttpHandler, UnknownIdsAre404) {
  for (const auto* target : {"/strategies/missing", "/orders/missing", "/jobs/missing"}) {
    const auto a = call(verb::get, target);
    EXPECT_EQ(a.status, 404u) << target;
    EXPECT_EQ(error_of(a), "not_found");
    EXPECT_FALSE(a.body.at("message").as_string().empty());
  }
}

TEST_F(HttpHandler, UnknownPathsAre404) {
  for (const auto* target : {"/nope", "/index.html", "/health/", "/strategies/s1/extra", "//health", "/strategies/"})
    EXPECT_EQ(call(verb::get, target).status, 404u) << target;
}

TEST_F(HttpHandler, WrongMethodIs405WithAllow) {
  auto a = call(verb::post, "/health");
  EXPECT_EQ(a.status, 405u);
  EXPECT_EQ(a.raw[http::field::allow], "GET");
  a = call(verb::patch, "/policy");
  EXPECT_EQ(a.status, 405u);
  EXPECT_EQ(a.raw[http::field::allow], "GET, PUT");
  a = call(verb::post, "/jobs/j9");  // only /jobs/{id} matches: GET and DELETE
  EXPECT_EQ(a.status, 405u);
  EXPECT_EQ(a.raw[http::field::allow], "DELETE, GET");
  EXPECT_EQ(error_of(a), "method_not_allowed");
}

TEST_F(HttpHandler, ListLimitsAreCheckedAndPassedOn) {
  EXPECT_EQ(call(verb::get, "/orders?limit=7").status, 200u);
  EXPECT_EQ(plane.last_limit, 7u);
  EXPECT_EQ(call(verb::get, "/trades").status, 200u);
  EXPECT_EQ(plane.last_limit, settings.list_limit_default);
  for (const auto* target : {"/orders?limit=0", "/orders?limit=-1", "/trades?limit=abc", "/trades?limit=99999999",
                             "/events?since=x", "/policy/history?from_version=0"}) {
    const auto a = call(verb::get, target);
    EXPECT_EQ(a.status, 422u) << target;
    EXPECT_FALSE(a.body.at("field").as_string().empty()) << target;
  }
}

TEST_F(HttpHandler, EventsListsThoseAfterAnId) {
  for (int i = 0; i < 5; ++i) plane.event_add("PolicyUpdated", json::object{{"n", i}});
  const auto a = call(verb::get, "/events?since=3");
  ASSERT_EQ(a.status, 200u);
  const auto& ev = a.body.at("events").as_array();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].at("id"), 4);
  EXPECT_EQ(ev[1].at("type"), "PolicyUpdated");
  EXPECT_EQ(a.body.at("last_id"), 5);
  EXPECT_EQ(call(verb::get, "/events?since=2&limit=1").body.at("events").as_array().size(), 1u);
}

TEST_F(HttpHandler, EventStreamRouteOpensAStreamAndChecksWhereToResume) {
  auto req = make_request(verb::get, "/events/stream?since=4");
  auto res = handle_request(plane, settings, req);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_TRUE(response_is_event_stream(res));
  EXPECT_EQ(event_stream_since(req), 4u);
  req.set("Last-Event-ID", "9");
  EXPECT_EQ(event_stream_since(req), 9u);  // the header wins: the browser's reconnect
  req.set("Last-Event-ID", "nine");
  EXPECT_EQ(call(req).status, 422u);
  EXPECT_EQ(call(verb::get, "/events/stream?since=-1").status, 422u);
  EXPECT_FALSE(response_is_event_stream(handle_request(plane, settings, make_request(verb::get, "/events"))));
}

TEST_F(HttpHandler, SseFramesCarryIdTypeAndData) {
  EXPECT_EQ(sse_format(ApiEvent{12, "OrderDenied", json::object{{"reason", "RISK_MODE"}}}),
            "id: 12\nevent: OrderDenied\ndata: {\"reason\":\"RISK_MODE\"}\n\n");
  EXPECT_EQ(sse_format(ApiEvent{1, "A\nid: 99", json::value(nullptr)}), "id: 1\nevent: Aid: 99\ndata: null\n\n");
}

TEST_F(HttpHandler, MetricsArePrometheusText) {
  const auto a = call(verb::get, "/metrics");
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.raw[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(a.raw.body().find("# TYPE qtos_orders_total counter"), std::string::npos);
}

TEST_F(HttpHandler, PolicyPutAppliesTheFieldsAndBumpsTheVersion) {
  const auto a = call(verb::put, "/policy",
                      R"({"expected_version": 1, "risk_mode": "defensive", "min_confidence": 0.7,
                          "allowed_strategies": ["s1", "s2"], "reason": "storm ahead"})");
  ASSERT_EQ(a.status, 200u) << a.raw.body();
  EXPECT_EQ(a.body.at("version"), 2);
  const auto p = plane.policy_now();
  EXPECT_EQ(p.risk_mode, RiskMode::defensive);
  EXPECT_DOUBLE_EQ(p.min_confidence, 0.7);
  EXPECT_EQ(p.allowed_strategies.size(), 2u);
  EXPECT_EQ(p.reason, "storm ahead");
  EXPECT_EQ(p.updated_by, "api");
  EXPECT_EQ(call(verb::get, "/policy/history").body.as_array().size(), 2u);
}

TEST_F(HttpHandler, PolicyPutAgainstAStaleVersionIs409) {
  ASSERT_EQ(call(verb::put, "/policy", R"({"expected_version": 1, "min_confidence": 0.5})").status, 200u);
  const auto a = call(verb::put, "/policy", R"({"expected_version": 1, "min_confidence": 0.9})");
  EXPECT_EQ(a.status, 409u);
  EXPECT_EQ(error_of(a), "conflict");
  EXPECT_DOUBLE_EQ(plane.policy_now().min_confidence, 0.5);
}

TEST_F(HttpHandler, InvalidPolicyValuesAre422NamingTheFieldAndChangeNothing) {
  const Policy before = plane.policy_now();
  struct Case {
    const char* body;
    const char* field;  // "" when the store's rule check names it in the message only
  };
  for (const auto& c : {Case{R"({"expected_version": 1, "risk_mode": "YOLO"})", "risk_mode"},
                        Case{R"({"expected_version": 1, "min_confidence": "high"})", "min_confidence"},
                        Case{R"({"expected_version": 1, "max_open_positions": 2.5})", "max_open_positions"},
                        Case{R"({"expected_version": 1, "allowed_strategies": "s1"})", "allowed_strategies"},
                        Case{R"({"expected_version": 1, "extra": {"k": 1}})", "extra"},
                        Case{R"({"expected_version": -1})", "expected_version"},
                        Case{R"({"risk_mode": "NORMAL"})", "expected_version"},
                        Case{R"({"expected_version": 1, "colour": "blue"})", "colour"},
                        Case{R"({"expected_version": 1, "reason": 5})", "reason"},
                        Case{R"({"expected_version": 1, "max_open_positions": -1})", ""},
                        Case{R"({"expected_version": 1, "max_leverage": 500})", ""},
                        Case{R"({"expected_version": 1, "min_confidence": 1.5})", ""}}) {
    const auto a = call(verb::put, "/policy", c.body);
    EXPECT_EQ(a.status, 422u) << c.body << " -> " << a.raw.body();
    if (*c.field) {
      EXPECT_EQ(a.body.at("field"), c.field) << c.body;
      EXPECT_NE(a.body.at("message").as_string().find(c.field), json::string::npos);
    } else {
      EXPECT_EQ(error_of(a), "invalid_policy") << c.body;
    }
  }
  EXPECT_EQ(plane.policy_now(), before);
  const auto yolo = call(verb::post, "/policy/risk-mode", R"({"risk_mode": "YOLO"})");
  EXPECT_EQ(yolo.status, 422u);
  EXPECT_NE(yolo.body.at("message").as_string().find("AGGRESSIVE, NORMAL or DEFENSIVE"), json::string::npos);
  EXPECT_EQ(plane.policy_now(), before);
}

TEST_F(HttpHandler, MalformedJsonIs400) {
  for (const auto* body : {"{", "{\"expected_version\": 1,}", "nul", "{\"a\":1} trailing", "\xff\xfe"})
    EXPECT_EQ(call(verb::put, "/policy", body).status, 400u) << body;
  EXPECT_EQ(plane.control_calls, 0);
}

TEST_F(HttpHandler, JsonDeeperThanTheLimitIs400) {
  std::string deep = R"({"expected_version": 1, "extra": )";
  for (int i = 0; i < 40; ++i) deep += "[";
  for (int i = 0; i < 40; ++i) deep += "]";
  deep += "}";
  const auto a = call(verb::put, "/policy", deep);
  EXPECT_EQ(a.status, 400u);
  EXPECT_EQ(error_of(a), "bad_request");
}

TEST_F(HttpHandler, NonObjectBodyIs422AndMissingRequiredBodyIs400) {
  EXPECT_EQ(call(verb::put, "/policy", "[1, 2]").status, 422u);
  EXPECT_EQ(call(verb::post, "/emergency-brake").status, 400u);
  EXPECT_EQ(call(verb::post, "/strategies/s1/promote").status, 200u);  // its body is optional
}

TEST_F(HttpHandler, BothContentLengthAndChunkedIs400) {
  auto req = make_request(verb::post, "/emergency-brake", R"({"on": true})");
  req.set(http::field::transfer_encoding, "chunked");
  const auto a = call(req);
  EXPECT_EQ(a.status, 400u);
  EXPECT_FALSE(plane.brake());
}

TEST_F(HttpHandler, BodyOverTheLimitIs413) {
  settings.body_limit = 64;
  const std::string body = R"({"expected_version": 1, "reason": ")" + std::string(100, 'x') + "\"}";
  const auto a = call(verb::put, "/policy", body);
  EXPECT_EQ(a.status, 413u);
  EXPECT_EQ(error_of(a), "payload_too_large");
}

// Every state-changing route of the table: no token and a wrong token are 401, and nothing reaches the services.
TEST_F(HttpHandler, EveryStateChangingRouteNeedsTheToken) {
  int mutating = 0;
  for (const auto& r : api_routes()) {
    if (!r.mutating) continue;
    ++mutating;
    std::string target(r.path);
    for (const auto* p : {"{id}", "{name}", "{symbol}"})
      if (const auto at = target.find(p); at != std::string::npos) target.replace(at, std::strlen(p), "HFOS");
    auto req = make_request(r.method, target, R"({})", false);
    auto a = call(req);
    EXPECT_EQ(a.status, 401u) << target;
    EXPECT_EQ(a.raw[http::field::www_authenticate], "Bearer");
    req.set(http::field::authorization, "Bearer wrong-token-0123456789abc");
    EXPECT_EQ(call(req).status, 401u) << target;
    req.set(http::field::authorization, "Basic " + std::string(testing::kTestToken));
    EXPECT_EQ(call(req).status, 401u) << target;
  }
  EXPECT_EQ(mutating, 14);
  EXPECT_EQ(plane.control_calls, 0);
  settings.token.clear();  // no token configured: no control at all
  EXPECT_EQ(call(verb::post, "/emergency-brake", R"({"on": true})").status, 401u);
}

TEST_F(HttpHandler, BearerSchemeIsCaseInsensitive) {
  auto req = make_request(verb::post, "/emergency-brake", R"({"on": true})", false);
  req.set(http::field::authorization, "bearer " + std::string(testing::kTestToken));
  EXPECT_EQ(call(req).status, 200u);
  EXPECT_TRUE(plane.brake());
}

TEST_F(HttpHandler, NonLoopbackHostIs403) {
  for (const auto* host : {"evil.example", "evil.example:8080", "10.0.0.1:8080", "127.0.0.1.evil.example",
                           "localhost.evil.example", "[::2]:8080", "127.0.0.256", "localhost:http"}) {
    auto req = make_request(verb::get, "/health");
    req.set(http::field::host, host);
    const auto a = call(req);
    EXPECT_EQ(a.status, 403u) << host;
    EXPECT_EQ(error_of(a), "forbidden");
    auto post = make_request(verb::post, "/emergency-brake", R"({"on": true})");
    post.set(http::field::host, host);
    EXPECT_EQ(call(post).status, 403u) << host;
  }
  auto no_host = make_request(verb::get, "/health");
  no_host.erase(http::field::host);
  EXPECT_EQ(call(no_host).status, 400u);
  EXPECT_FALSE(plane.brake());
  settings.allowed_hosts = {"trader.lan"};
  auto lan = make_request(verb::get, "/health");
  lan.set(http::field::host, "trader.lan:8080");
  EXPECT_EQ(call(lan).status, 200u);
}

TEST_F(HttpHandler, LoopbackHostsAreAccepted) {
  for (const auto* host : {"localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:1", "127.1.2.3:65535", "[::1]",
                           "[::1]:8080"})
    EXPECT_TRUE(host_is_loopback(host)) << host;
  for (const auto* host : {"", "[::1", "[::1]x", "::1", "127.0.0", "0.0.0.0", "localhost:"})
    EXPECT_FALSE(host_is_loopback(host)) << host;
}

TEST_F(HttpHandler, OriginOnAStateChangingRouteIs403) {
  auto req = make_request(verb::post, "/emergency-brake", R"({"on": true})");
  req.set(http::field::origin, "http://127.0.0.1:9090");  // another local port: another origin (this server's own is
  const auto a = call(req);                                // accepted: tests/api/http_dashboard_test.cpp)
  EXPECT_EQ(a.status, 403u);
  EXPECT_FALSE(plane.brake());
  auto get = make_request(verb::get, "/policy");
  get.set(http::field::origin, "http://evil.example");
  EXPECT_EQ(call(get).status, 200u);  // a read may be asked from a page; CORS keeps its answer from it
  settings.allowed_origins = {"http://127.0.0.1:9090"};  // a page elsewhere, when it is allowed explicitly
  EXPECT_EQ(call(req).status, 200u);
  EXPECT_TRUE(plane.brake());
}

TEST_F(HttpHandler, NotReadyIs503ExceptLiveness) {
  plane.is_ready = false;
  for (const auto& r : api_routes()) {
    if (r.path == "/health" || r.path == "/") continue;  // liveness; the static dashboard page
    std::string target(r.path);
    for (const auto* p : {"{id}", "{name}", "{symbol}"})
      if (const auto at = target.find(p); at != std::string::npos) target.replace(at, std::strlen(p), "HFOS");
    const auto a = call(verb::get == r.method ? make_request(r.method, target)
                                              : make_request(r.method, target, R"({"on": true})"));
    EXPECT_EQ(a.status, 503u) << target;
  }
  EXPECT_EQ(plane.control_calls, 0);
}

TEST_F(HttpHandler, ControlRoutesReachTheServices) {
  auto a = call(verb::post, "/policy/risk-mode", R"({"risk_mode": "AGGRESSIVE", "reason": "calm market"})");
  EXPECT_EQ(a.status, 200u) << a.raw.body();
  EXPECT_EQ(plane.policy_now().risk_mode, RiskMode::aggressive);
  EXPECT_EQ(plane.last_actor().reason, "calm market");

  a = call(verb::post, "/emergency-brake", R"({"on": true, "reason": "exchange outage"})");
  EXPECT_EQ(a.status, 200u);
  EXPECT_TRUE(plane.brake());
  EXPECT_EQ(plane.last_actor().reason, "exchange outage");
  EXPECT_EQ(call(verb::post, "/emergency-brake", R"({"on": "yes"})").status, 422u);
  EXPECT_TRUE(plane.brake());
  EXPECT_EQ(call(verb::post, "/emergency-brake", R"({"on": false})").status, 200u);
  EXPECT_FALSE(plane.brake());
  EXPECT_EQ(plane.last_actor().reason, "POST /emergency-brake");  // the default reason names the route

  EXPECT_EQ(call(verb::post, "/subsystems/AI-HFOS/mode", R"({"mode": "OFF"})").status, 200u);
  EXPECT_EQ(call(verb::post, "/subsystems/pba/mode", R"({"mode": "enforced"})").status, 200u);
  EXPECT_EQ(plane.mode(Subsystem::pba), SubsystemMode::enforced);
  EXPECT_EQ(call(verb::post, "/subsystems/self-healing/mode", R"({"mode": "PROTECTIVE"})").status, 200u);
  EXPECT_EQ(plane.mode(Subsystem::self_healing), SubsystemMode::protective);
  EXPECT_EQ(call(verb::post, "/subsystems/HFOS/mode", R"({"mode": "PROTECTIVE"})").status, 422u);  // the plane says no
  EXPECT_EQ(call(verb::post, "/subsystems/HFOS/mode", R"({"mode": "LOUD"})").status, 422u);
  EXPECT_EQ(call(verb::post, "/subsystems/NOPE/mode", R"({"mode": "OFF"})").status, 404u);

  EXPECT_EQ(call(verb::post, "/stage", R"({"stage": "COORDINATION"})").status, 200u);
  EXPECT_EQ(plane.stage(), IntegrationStage::coordination);
  EXPECT_EQ(call(verb::post, "/stage", R"({"stage": "MAXIMUM"})").status, 422u);
  EXPECT_EQ(plane.stage(), IntegrationStage::coordination);

  EXPECT_EQ(call(verb::post, "/strategies/s1/promote").status, 200u);
  EXPECT_EQ(call(verb::post, "/strategies/s1/retire", R"({"reason": "decayed"})").status, 200u);
  EXPECT_EQ(call(verb::post, "/strategies/retired/retire").status, 422u);
  EXPECT_EQ(call(verb::post, "/strategies/missing/promote").status, 404u);
  EXPECT_EQ(call(verb::post, "/models/m1/promote").status, 200u);
  EXPECT_EQ(call(verb::post, "/models/missing/promote").status, 404u);

  EXPECT_EQ(call(verb::post, "/positions/BTCUSDT/close", R"({"reason": "manual exit"})").status, 200u);
  EXPECT_EQ(call(verb::get, "/positions").body.as_array().size(), 1u);
  EXPECT_EQ(call(verb::post, "/positions/missing/close").status, 404u);

  EXPECT_EQ(call(verb::delete_, "/locks/sl-guard-1").status, 200u);
  EXPECT_EQ(call(verb::get, "/locks").body.as_array().size(), 1u);
  EXPECT_EQ(call(verb::delete_, "/locks/missing").status, 404u);
}

TEST_F(HttpHandler, JobsStartReportAndCancel) {
  auto a = call(verb::post, "/jobs/evolve", R"({"params": {"generations": 5}})");
  ASSERT_EQ(a.status, 202u) << a.raw.body();
  const std::string id(a.body.at("id").as_string());
  EXPECT_EQ(a.body.at("kind"), "evolve");
  EXPECT_EQ(plane.last_params.at("generations"), 5);
  EXPECT_EQ(call(verb::post, "/jobs/rank").status, 202u);
  EXPECT_EQ(call(verb::post, "/jobs/retrain", R"({"params": 3})").status, 422u);
  a = call(verb::get, "/jobs/" + id);
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.body.at("progress"), 0.5);
  EXPECT_EQ(call(verb::delete_, "/jobs/" + id).status, 200u);
  EXPECT_EQ(call(verb::get, "/jobs/" + id).body.at("state"), "CANCELLING");
  EXPECT_EQ(call(verb::delete_, "/jobs/missing").status, 404u);
}

TEST_F(HttpHandler, PathParametersArePercentDecoded) {
  EXPECT_EQ(call(verb::get, "/strategies/a%2Fb%20c").body.at("id"), "a/b c");
  EXPECT_EQ(call(verb::get, "/strategies/a%2").status, 400u);
  EXPECT_EQ(call(verb::get, "/orders?limit=%3").status, 400u);
  EXPECT_EQ(call(verb::get, "/orders?limit=%33").status, 200u);
  EXPECT_EQ(plane.last_limit, 3u);
  EXPECT_EQ(call(verb::get, "http://127.0.0.1/health").status, 400u);  // absolute-form is not served
  EXPECT_EQ(call(verb::get, "/strategies/%C3%A9t%C3%A9").body.at("id"), "\xc3\xa9t\xc3\xa9");  // UTF-8 is fine
  EXPECT_EQ(call(verb::get, "/strategies/%FF").status, 400u);  // a JSON answer could not quote it
  EXPECT_EQ(call(verb::get, "/events?since=3%EF").status, 400u);
}

TEST_F(HttpHandler, GetNeverChangesState) {
  for (const auto& r : api_routes()) {
    if (r.method != verb::get) continue;
    std::string target(r.path);
    if (const auto at = target.find('{'); at != std::string::npos) target.replace(at, target.find('}') - at + 1, "x1");
    EXPECT_EQ(call(verb::get, target, R"({"on": true})").status, 200u) << target;  // a body on a GET is ignored
  }
  EXPECT_EQ(plane.control_calls, 0);
  EXPECT_EQ(plane.state_changes, 0);
}

TEST_F(HttpHandler, TheTokenNeverAppearsInAResponse) {
  std::vector<Request> reqs;
  for (const auto& r : api_routes()) {
    std::string target(r.path);
    if (const auto at = target.find('{'); at != std::string::npos) target.replace(at, target.find('}') - at + 1, "x1");
    reqs.push_back(make_request(r.method, target, R"({"expected_version": 1, "on": true})"));
    reqs.push_back(make_request(r.method, target, "{bad"));
    auto wrong = make_request(r.method, target, "{}");
    wrong.set(http::field::authorization, "Bearer " + std::string(testing::kTestToken) + "x");
    reqs.push_back(wrong);
  }
  // a token pasted into a field name or an id is quoted by messages and answers: it comes back redacted
  const std::string tok(testing::kTestToken);
  reqs.push_back(make_request(verb::put, "/policy", "{\"expected_version\": 1, \"" + tok + "\": 1}"));
  reqs.push_back(make_request(verb::get, "/strategies/" + tok));
  reqs.push_back(make_request(verb::post, "/subsystems/" + tok + "/mode", R"({"mode": "OFF"})"));
  for (const auto& req : reqs) {
    const auto res = handle_request(plane, settings, req);
    std::ostringstream all;
    for (const auto& f : res) all << f.name_string() << ": " << f.value() << "\n";
    all << res.body();
    EXPECT_EQ(all.str().find(testing::kTestToken), std::string::npos) << req.target();
  }
}

TEST_F(HttpHandler, TokenComparisonIsExact) {
  EXPECT_TRUE(token_equal("abc", "abc"));
  EXPECT_FALSE(token_equal("abd", "abc"));
  EXPECT_FALSE(token_equal("ab", "abc"));
  EXPECT_FALSE(token_equal("abcd", "abc"));
  EXPECT_FALSE(token_equal("", "abc"));
  EXPECT_TRUE(token_equal("", ""));
}

TEST_F(HttpHandler, ErrorCodesMapToStatuses) {
  EXPECT_EQ(http_status_of(ErrorCode::invalid), http::status::unprocessable_entity);
  EXPECT_EQ(http_status_of(ErrorCode::invalid_policy), http::status::unprocessable_entity);
  EXPECT_EQ(http_status_of(ErrorCode::conflict), http::status::conflict);
  EXPECT_EQ(http_status_of(ErrorCode::not_found), http::status::not_found);
  EXPECT_EQ(http_status_of(ErrorCode::storage), http::status::service_unavailable);
  EXPECT_EQ(http_status_of(ErrorCode::stopped), http::status::service_unavailable);
  EXPECT_EQ(http_status_of(ErrorCode::unsupported), http::status::unprocessable_entity);
}

// A ControlPlane that throws is a bug there: 500 with nothing of the exception's text.
TEST_F(HttpHandler, AThrowingPlaneIs500WithoutDetail) {
  struct Throwing : FakeControlPlane {
    boost::json::value opportunities() override { throw std::runtime_error("secret internals"); }
  } throwing;
  const auto res = handle_request(throwing, settings, make_request(verb::get, "/opportunities"));
  EXPECT_EQ(res.result_int(), 500u);
  EXPECT_EQ(res.body().find("secret"), std::string::npos);
}

}  // namespace http_handler_test
}  // namespace qtos::api
