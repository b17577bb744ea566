// libFuzzer target for handle_request (built with clang by tests/fuzz/CMakeLists.txt). The first byte picks a mode:
// 'G' (or anything else): the rest is raw bytes of a request, parsed by Beast's parser under the server's limits;
// 'B': the rest is the JSON body of an authenticated PUT /policy; 'R': the next byte picks a route of the table and
// the rest is its body. Invariants checked on every answer: no crash or sanitizer report, never a 500 from the fake
// services, every error body is JSON with "error" and "message", and the token never appears in a response.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/json/src.hpp>  // Boost.JSON compiled into the target, instrumented like the handler

#include "api/http/handler.hpp"
#include "tests/api/http_fake_plane.hpp"

namespace {

using namespace qtos::api;

void check(const Response& res) {
  if (res.result_int() >= 500 && res.result_int() != 503) std::abort();
  for (const auto& f : res)
    if (std::string_view(f.value().data(), f.value().size()).find(testing::kTestToken) != std::string_view::npos)
      std::abort();
  if (res.body().find(testing::kTestToken) != std::string::npos) std::abort();
  if (res.result_int() >= 400) {
    boost::system::error_code ec;
    const auto v = boost::json::parse(res.body(), ec);
    if (ec || !v.is_object() || !v.as_object().contains("error") || !v.as_object().contains("message")) std::abort();
  }
}

std::string concrete(std::string_view pattern) {
  std::string out(pattern);
  while (true) {
    const auto at = out.find('{');
    if (at == std::string::npos) return out;
    out.replace(at, out.find('}') - at + 1, "HFOS");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The fake keeps what it is told (jobs, closed positions): start afresh now and then so memory stays flat.
  static auto fake = std::make_unique<testing::FakeControlPlane>();
  if (fake->state_changes > 1000) fake = std::make_unique<testing::FakeControlPlane>();
  auto& plane = *fake;
  static const ApiSettings settings = testing::test_settings();
  if (size == 0) return 0;
  const char mode = static_cast<char>(data[0]);
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  if (mode == 'B') {
    check(handle_request(plane, settings, testing::make_request(http::verb::put, "/policy", rest)));
    return 0;
  }
  if (mode == 'R' && !rest.empty()) {
    const auto routes = api_routes();
    const auto& r = routes[static_cast<unsigned char>(rest[0]) % routes.size()];
    check(handle_request(plane, settings, testing::make_request(r.method, concrete(r.path), rest.substr(1))));
    return 0;
  }
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(settings.body_limit);
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
  if (ec == http::error::need_more && parser.got_some()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;  // the server answers these itself (400, 413, 431) without the handler
  check(handle_request(plane, settings, parser.get()));
  return 0;
}
