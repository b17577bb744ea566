// The HTTP API's requests/s and p99 latency on loopback (GET /health and GET /opportunities, keep-alive), beside a
// minimal Beast server (no routing, limits, auth or JSON building; it answers the very same bytes) in the same run.
// The load comes from `wrk` when it is installed (Debian package wrk), else from a small built-in generator.
// Target (issue 12): >= 20,000 requests/s with p99 <= 5 ms.
//
// Usage: bench_http [--seconds=5] [--connections=32] [--server-threads=2] [--load=wrk|builtin]
//        bench_http --serve=qtos|minimal [--port=8080]   (serve until killed, for an external load generator)
// scripts/bench_http.sh runs it (optionally while the replay benchmark runs beside it).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "api/http/handler.hpp"
#include "api/http/server.hpp"

namespace {

using namespace qtos;
using namespace qtos::api;
namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

// ---- the services: static answers, as a plane would give between two bars ----------------------------------------

class StaticPlane : public ControlPlane {
 public:
  StaticPlane() {
    boost::json::array ops;
    const char* syms[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
                          "LINKUSDT", "DOTUSDT", "TRXUSDT", "MATICUSDT", "LTCUSDT", "BCHUSDT", "ATOMUSDT", "NEARUSDT",
                          "APTUSDT", "ARBUSDT", "OPUSDT", "FILUSDT"};
    double score = 0.95;
    for (const char* s : syms) {
      ops.push_back(boost::json::object{{"symbol", s}, {"score", score}, {"trend", 0.4}, {"volatility", 0.02},
                                        {"liquidity", 1.0e9}, {"regime", "TRENDING_UP"}});
      score -= 0.02;
    }
    opportunities_ = std::move(ops);
  }
  bool ready() const override { return true; }
  boost::json::value health_ai() override { return boost::json::object{{"initialized", true}}; }
  boost::json::value policy() override { return boost::json::object{{"version", 1}}; }
  boost::json::value policy_history(std::uint64_t, std::size_t) override { return boost::json::array{}; }
  boost::json::value opportunities() override { return opportunities_; }
  boost::json::value strategies() override { return boost::json::array{}; }
  Result<boost::json::value> strategy(std::string_view) override { return Error{ErrorCode::not_found, "none"}; }
  boost::json::value models() override { return boost::json::array{}; }
  boost::json::value positions() override { return boost::json::array{}; }
  boost::json::value orders(std::size_t) override { return boost::json::array{}; }
  Result<boost::json::value> order(std::string_view) override { return Error{ErrorCode::not_found, "none"}; }
  boost::json::value trades(std::size_t) override { return boost::json::array{}; }
  boost::json::value analytics_system() override { return boost::json::object{}; }
  boost::json::value analytics_strategies() override { return boost::json::object{}; }
  std::vector<ApiEvent> events_since(std::uint64_t, std::size_t) override { return {}; }
  std::string metrics_text() override { return ""; }
  boost::json::value locks() override { return boost::json::array{}; }
  Result<boost::json::value> job(std::string_view) override { return Error{ErrorCode::not_found, "none"}; }
  Result<boost::json::value> policy_update(const PolicyPatch&, std::uint64_t, const Actor&) override { return no(); }
  Result<boost::json::value> risk_mode_set(RiskMode, const Actor&) override { return no(); }
  Result<boost::json::value> emergency_brake_set(bool, const Actor&) override { return no(); }
  Result<boost::json::value> subsystem_mode_set(Subsystem, SubsystemMode, const Actor&) override { return no(); }
  Result<boost::json::value> stage_set(IntegrationStage, const Actor&) override { return no(); }
  Result<boost::json::value> strategy_promote(std::string_view, const Actor&) override { return no(); }
  Result<boost::json::value> strategy_retire(std::string_view, const Actor&) override { return no(); }
  Result<boost::json::value> model_promote(std::string_view, const Actor&) override { return no(); }
  Result<boost::json::value> position_close(std::string_view, const Actor&) override { return no(); }
  Result<boost::json::value> lock_delete(std::string_view, const Actor&) override { return no(); }
  Result<boost::json::value> job_start(JobKind, const boost::json::object&, const Actor&) override { return no(); }
  Result<boost::json::value> job_cancel(std::string_view, const Actor&) override { return no(); }

 private:
  static Error no() { return Error{ErrorCode::unsupported, "read-only benchmark"}; }
  boost::json::value opportunities_;
};

// ---- the peer: a minimal asynchronous Beast server answering fixed bytes per path ---------------------------------

class MinimalServer {
 public:
  MinimalServer(std::map<std::string, std::string> bodies, std::size_t threads, std::uint16_t port)
      : bodies_(std::move(bodies)), acceptor_(net::make_strand(ioc_)) {
    const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
    accept();
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }
  ~MinimalServer() {
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket s, const std::map<std::string, std::string>& b) : stream(std::move(s)), bodies(b) {}
    void read() {
      req = {};
      http::async_read(stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return;
        const auto it = self->bodies.find(std::string(self->req.target()));
        self->res = {it == self->bodies.end() ? http::status::not_found : http::status::ok, self->req.version()};
        self->res.set(http::field::content_type, "application/json");
        self->res.body() = it == self->bodies.end() ? std::string("{}") : it->second;
        self->res.keep_alive(self->req.keep_alive());
        self->res.prepare_payload();
        http::async_write(self->stream, self->res, [self](beast::error_code ec2, std::size_t) {
          if (!ec2 && self->res.keep_alive()) self->read();
        });
      });
    }
    beast::tcp_stream stream;
    const std::map<std::string, std::string>& bodies;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };
  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      std::make_shared<Session>(std::move(s), bodies_)->read();
      accept();
    });
  }
  std::map<std::string, std::string> bodies_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
};

// ---- load ---------------------------------------------------------------------------------------------------------

struct Figures {
  double rps = 0;
  double p99_ms = 0;
  bool ok = false;
};

double to_ms(const std::string& v) {
  const double x = std::atof(v.c_str());
  if (v.find("us") != std::string::npos) return x / 1000.0;
  if (v.find("ms") != std::string::npos) return x;
  if (v.find('s') != std::string::npos) return x * 1000.0;
  return x;
}

Figures run_wrk(std::uint16_t port, const std::string& path, int seconds, int connections) {
  const std::string cmd = "wrk -t2 -c" + std::to_string(connections) + " -d" + std::to_string(seconds) +
                          "s --latency http://127.0.0.1:" + std::to_string(port) + path + " 2>&1";
  Figures f;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return f;
  char line[512];
  bool errors = false;
  while (std::fgets(line, sizeof line, p)) {
    std::string s(line);
    if (s.find("Requests/sec:") != std::string::npos) f.rps = std::atof(s.substr(s.find(':') + 1).c_str());
    if (s.find(" 99%") != std::string::npos) f.p99_ms = to_ms(s.substr(s.find('%') + 1));
    if (s.find("Non-2xx") != std::string::npos || s.find("Socket errors") != std::string::npos) {
      errors = true;
      std::fprintf(stderr, "  wrk: %s", line);
    }
  }
  f.ok = ::pclose(p) == 0 && f.rps > 0 && !errors;
  return f;
}

// One blocking keep-alive connection per thread, requests one after another; latencies merged for the p99.
Figures run_builtin(std::uint16_t port, const std::string& path, int seconds, int connections) {
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  std::vector<std::vector<float>> lat(static_cast<std::size_t>(connections));
  std::atomic<bool> stop{false}, failed{false};
  std::vector<std::thread> ts;
  for (int c = 0; c < connections; ++c)
    ts.emplace_back([&, c] {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        failed = true;
        ::close(fd);
        return;
      }
      std::string buf;
      char tmp[16384];
      while (!stop) {
        const auto t0 = std::chrono::steady_clock::now();
        if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) break;
        std::size_t need = std::string::npos;
        while (true) {
          const auto he = buf.find("\r\n\r\n");
          if (he != std::string::npos && need == std::string::npos) {
            const auto cl = buf.find("Content-Length: ");
            if (buf.compare(9, 3, "200") != 0) failed = true;
            need = he + 4 + (cl != std::string::npos && cl < he ? std::strtoul(buf.c_str() + cl + 16, nullptr, 10) : 0);
          }
          if (need != std::string::npos && buf.size() >= need) break;
          const auto n = ::recv(fd, tmp, sizeof tmp, 0);
          if (n <= 0) {
            failed = true;
            ::close(fd);
            return;
          }
          buf.append(tmp, static_cast<std::size_t>(n));
        }
        buf.erase(0, need);
        lat[static_cast<std::size_t>(c)].push_back(
            std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      ::close(fd);
    });
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : ts) t.join();
  std::vector<float> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  Figures f;
  if (all.empty()) return f;
  std::sort(all.begin(), all.end());
  f.rps = static_cast<double>(all.size()) / seconds;
  f.p99_ms = all[static_cast<std::size_t>(0.99 * static_cast<double>(all.size() - 1))];
  f.ok = !failed;
  return f;
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]).rfind(prefix, 0) == 0) return std::string(argv[i]).substr(prefix.size());
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const int seconds = std::stoi(arg(argc, argv, "seconds", "5"));
  const int connections = std::stoi(arg(argc, argv, "connections", "32"));
  const auto threads = static_cast<std::size_t>(std::stoul(arg(argc, argv, "server-threads", "2")));
  const bool have_wrk = std::system("command -v wrk >/dev/null 2>&1") == 0;
  const std::string load = arg(argc, argv, "load", have_wrk ? "wrk" : "builtin");
  const std::string serve = arg(argc, argv, "serve", "");

  StaticPlane plane;
  ServerSettings settings;
  settings.port = static_cast<std::uint16_t>(std::stoi(arg(argc, argv, "port", serve.empty() ? "0" : "8080")));
  settings.threads = threads;
  settings.max_connections = 1024;
  settings.api.token = "bench-token-not-used-by-gets";

  // The peer answers the same bytes the API does for each path.
  std::map<std::string, std::string> bodies;
  for (const char* path : {"/health", "/opportunities"}) {
    Request req{http::verb::get, path, 11};
    req.set(http::field::host, "127.0.0.1");
    bodies[path] = handle_request(plane, settings.api, req).body();
  }

  if (!serve.empty()) {
    std::optional<Server> qs;
    std::optional<MinimalServer> ms;
    if (serve == "minimal") ms.emplace(bodies, threads, settings.port);
    else (qs.emplace(plane, settings), qs->start());
    std::printf("serving %s on 127.0.0.1:%u\n", serve.c_str(), serve == "minimal" ? ms->port() : qs->port());
    std::fflush(stdout);
    while (true) std::this_thread::sleep_for(std::chrono::hours(1));
  }

  Server qtos_server(plane, settings);
  qtos_server.start();
  MinimalServer minimal(bodies, threads, 0);

  std::printf("HTTP API on loopback: GET, keep-alive, %d connections, %d s per run, %zu server threads, load: %s\n",
              connections, seconds, threads, load.c_str());
  std::printf("%-16s %14s %10s %18s %10s %10s\n", "route", "qtos req/s", "p99 ms", "minimal Beast r/s", "p99 ms",
              "qtos/peer");
  bool all_ok = true, target = true;
  for (const std::string path : {"/health", "/opportunities"}) {
    auto run = [&](std::uint16_t port) {
      return load == "wrk" ? run_wrk(port, path, seconds, connections) : run_builtin(port, path, seconds, connections);
    };
    const Figures q = run(qtos_server.port());
    const Figures m = run(minimal.port());
    all_ok = all_ok && q.ok && m.ok;
    target = target && q.rps >= 20000 && q.p99_ms <= 5.0;
    std::printf("%-16s %14.0f %10.2f %18.0f %10.2f %9.0f%%%s\n", path.c_str(), q.rps, q.p99_ms, m.rps, m.p99_ms,
                m.rps > 0 ? 100.0 * q.rps / m.rps : 0.0, q.ok && m.ok ? "" : "  (errors: see above)");
  }
  std::printf("target >= 20000 req/s and p99 <= 5 ms: %s\n", target ? "met" : "NOT met");
  qtos_server.stop();
  return all_ok ? 0 : 1;
}
