#include "api/http/server.hpp"

// Design: asynchronous Beast on an io_context run by a few threads, one strand per connection. Event streams stay
// open for hours and idle keep-alive connections wait a minute: a thread per connection would spend a thread on each
// of them, while the asynchronous form spends a few hundred bytes. handle_request runs on the strand and may block
// briefly while the ControlPlane awaits the bus thread; with several I/O threads other connections go on meanwhile.

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "runtime/config/config.hpp"
#include "runtime/util/atomic_file.hpp"

namespace qtos::api {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

class Session;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(ControlPlane& p, ServerSettings s) : plane(p), settings(std::move(s)), acceptor(net::make_strand(ioc)) {}

  ControlPlane& plane;
  ServerSettings settings;
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint16_t> bound_port{0};

  std::mutex mutex;  // guards sessions and wakes stop() when the last connection closes
  std::condition_variable drained;
  std::vector<std::weak_ptr<Session>> sessions;
  std::atomic<std::size_t> live{0};

  void accept();
  void session_opened(const std::shared_ptr<Session>& s);
  void session_closed();
};

namespace {

// A canned answer for a connection over the cap: no session, one small write, then close.
void refuse_busy(tcp::socket socket) {
  auto res = error_response(http::status::service_unavailable, "unavailable", "too many connections; retry shortly");
  res.keep_alive(false);
  error_code ec;
  http::write(socket, res, ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Server::Impl> server)
      : stream_(std::move(socket)), server_(std::move(server)), timer_(stream_.get_executor()) {}
  ~Session() { server_->session_closed(); }

  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->wait_request(); });
  }

  // Posted by Server::stop(): drop what is idle or streaming; a response being written finishes first.
  /// With no I/O thread running (after the server's threads joined): cancels the timer and closes the socket at once, so
  /// the pending operations complete (aborted) on the next poll and release the session.
  void force_close() {
    timer_.cancel();
    error_code ec;
    stream_.socket().close(ec);
  }
  void stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::writing) return;  // on_write sees `stopping` and closes
      self->timer_.cancel();
      error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.socket().close(ec);
    });
  }

 private:
  enum class State { idle, reading, writing, streaming, closing };
  const ServerSettings& cfg() const { return server_->settings; }

  void wait_request() {
    if (server_->stopping) return close();
    if (buffer_.size() > 0) {  // pipelined: the next request's bytes are already here
      ++burst_;
      return read_request();
    }
    burst_ = 0;
    state_ = State::idle;
    stream_.expires_after(cfg().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, std::size_t n) {
      if (ec) return self->close();  // idle timeout, peer closed, or stop()
      self->buffer_.commit(n);
      self->read_request();
    });
  }

  void read_request() {
    state_ = State::reading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(cfg().header_limit));
    parser_->body_limit(cfg().api.body_limit);  // set before a byte of the body is read
    // Our own timer, not the stream's expiry: tcp_stream closes the socket on expiry, and we still want to say 408.
    stream_.expires_never();
    const auto gen = ++read_gen_;
    timer_.expires_after(cfg().read_timeout);
    timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (ec || self->read_gen_ != gen || self->state_ != State::reading) return;
      self->read_timed_out_ = true;
      error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    ++read_gen_;  // a timer that fires from now on belongs to no read
    timer_.cancel();
    if (read_timed_out_ && !server_->stopping)
      return write_error(http::status::request_timeout, "timeout", "the request took too long to arrive");
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) return close();
    if (ec == http::error::header_limit)
      return write_error(http::status::request_header_fields_too_large, "header_too_large",
                         "the request line and headers exceed " + std::to_string(cfg().header_limit) + " bytes");
    if (ec == http::error::body_limit)
      return write_error(http::status::payload_too_large, "payload_too_large",
                         "the body exceeds " + std::to_string(cfg().api.body_limit) + " bytes");
    if (ec == http::error::partial_message) return close();
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category())  // any other parse error
      return write_error(http::status::bad_request, "bad_request", "malformed HTTP request: " + ec.message());
    if (ec) return close();

    const Request& req = parser_->get();
    Response res;
    if (server_->stopping) {
      res = error_response(http::status::service_unavailable, "unavailable", "the server is stopping", req.version());
    } else {
      res = handle_request(server_->plane, cfg().api, req);
    }
    if (response_is_event_stream(res)) return start_stream(req);
    bool keep = req.keep_alive() && !server_->stopping;
    if (keep && buffer_.size() > 0 && burst_ + 1 >= cfg().max_pipelined) keep = false;  // the pipelining cap
    res.keep_alive(keep);
    write(std::move(res));
  }

  void write_error(http::status s, std::string_view code, std::string message) {
    auto res = error_response(s, code, message, parser_ && parser_->is_header_done() ? parser_->get().version() : 11);
    res.keep_alive(false);
    write(std::move(res));
  }

  void write(Response res) {
    state_ = State::writing;
    res_ = std::make_shared<Response>(std::move(res));
    stream_.expires_after(cfg().write_timeout);
    http::async_write(stream_, *res_, [self = shared_from_this()](error_code ec, std::size_t) {
      const bool keep = self->res_->keep_alive();
      self->res_.reset();
      if (ec) return self->close();
      if (!keep || self->server_->stopping) return self->lingering_close();
      self->wait_request();
    });
  }

  // Half-closes and reads what the client still sends for a moment, so that our last answer (413, 431) is not
  // destroyed by a reset when unread bytes remain in the socket.
  void lingering_close() {
    state_ = State::closing;
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    buffer_.clear();
    stream_.expires_after(std::chrono::milliseconds(500));
    drain();
  }
  void drain() {
    if (drained_ > 1024 * 1024) return close();
    stream_.async_read_some(net::buffer(scratch_), [self = shared_from_this()](error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec) return self->close();
      self->drain();
    });
  }

  void close() {
    state_ = State::closing;
    timer_.cancel();
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  // ---- server-sent events ----

  void start_stream(const Request& req) {
    state_ = State::streaming;
    stream_last_ = event_stream_since(req);
    // A response without a length ends when the connection does: the stream never reuses the connection.
    out_ =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n: stream opened\n\n";
    stream_write();
  }

  void stream_write() {
    last_frame_ = std::chrono::steady_clock::now();
    stream_.expires_after(cfg().write_timeout);
    net::async_write(stream_, net::buffer(out_), [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec || self->server_->stopping) return self->close();
      self->stream_poll();
    });
  }

  void stream_poll() {
    if (server_->stopping) return close();
    std::vector<ApiEvent> events;
    try {
      events = server_->plane.events_since(stream_last_, 256);
    } catch (const std::exception&) {
      return close();  // the services are going away; the client reconnects with Last-Event-ID
    }
    if (!events.empty()) {
      out_.clear();
      for (const auto& e : events) {
        out_ += sse_format(e);
        stream_last_ = std::max(stream_last_, e.id);
      }
      return stream_write();
    }
    if (std::chrono::steady_clock::now() - last_frame_ >= cfg().sse_heartbeat) {
      out_ = ": keep-alive\n\n";
      return stream_write();
    }
    stream_.expires_never();
    timer_.expires_after(cfg().sse_poll);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec) return self->close();
      self->stream_poll();
    });
  }

  beast::tcp_stream stream_;
  std::shared_ptr<Server::Impl> server_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<Response> res_;
  State state_ = State::idle;
  std::uint64_t read_gen_ = 0;  // which read the read timer belongs to
  bool read_timed_out_ = false;
  std::size_t burst_ = 0;  // requests answered from bytes that were already buffered, in a row
  std::array<char, 4096> scratch_{};
  std::size_t drained_ = 0;
  std::uint64_t stream_last_ = 0;
  std::string out_;
  std::chrono::steady_clock::time_point last_frame_{};
};

void Server::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [self = shared_from_this()](error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !self->acceptor.is_open()) return;
    if (!ec) {
      if (self->stopping) {
        error_code ignored;
        socket.close(ignored);
      } else if (self->live.load() >= self->settings.max_connections) {
        refuse_busy(std::move(socket));
      } else {
        auto s = std::make_shared<Session>(std::move(socket), self);
        self->session_opened(s);
        s->run();
      }
    }
    self->accept();
  });
}

void Server::Impl::session_opened(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mutex);
  live.fetch_add(1);
  sessions.erase(std::remove_if(sessions.begin(), sessions.end(), [](const auto& w) { return w.expired(); }),
                 sessions.end());
  sessions.push_back(s);
}

void Server::Impl::session_closed() {
  std::lock_guard lock(mutex);
  live.fetch_sub(1);
  drained.notify_all();
}

bool address_is_loopback(const std::string& address) {
  if (address == "localhost") return true;
  error_code ec;
  const auto a = net::ip::make_address(address, ec);
  return !ec && a.is_loopback();
}

Server::Server(ControlPlane& plane, ServerSettings settings) {
  if (!address_is_loopback(settings.address) && settings.api.token.empty())
    throw std::invalid_argument("HTTP API: refusing to bind the non-loopback address '" + settings.address +
                                "' without a token (set QT_API_TOKEN, or bind 127.0.0.1)");
  if (settings.threads == 0 || settings.header_limit == 0 || settings.api.body_limit == 0 ||
      settings.max_connections == 0 || settings.max_pipelined == 0)
    throw std::invalid_argument("HTTP API: threads, header_limit, body_limit, max_connections and max_pipelined must "
                                "be at least 1");
  // A non-loopback bind is reached by that address: admit it as a Host (the token still guards every change).
  if (!address_is_loopback(settings.address) && settings.address != "0.0.0.0" && settings.address != "::")
    settings.api.allowed_hosts.push_back(settings.address);
  impl_ = std::make_shared<Impl>(plane, std::move(settings));
}

Server::~Server() { stop(); }

void Server::start() {
  auto& s = impl_->settings;
  error_code ec;
  const auto address = s.address == "localhost" ? net::ip::make_address("127.0.0.1", ec) : net::ip::make_address(s.address, ec);
  if (ec) throw std::runtime_error("HTTP API: '" + s.address + "' is not an IP address: " + ec.message());
  const tcp::endpoint ep(address, s.port);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("HTTP API: cannot listen on " + s.address + ":" + std::to_string(s.port) + ": " +
                             ec.message());
  impl_->bound_port = acc.local_endpoint().port();
  impl_->accept();
  for (std::size_t i = 0; i < s.threads; ++i) impl_->threads.emplace_back([impl = impl_] { impl->ioc.run(); });
  spdlog::info("HTTP API listening on http://{}:{} ({} threads)", s.address, impl_->bound_port.load(), s.threads);
}

void Server::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  auto impl = impl_;
  if (impl->threads.empty()) return;  // never started
  net::post(impl->acceptor.get_executor(), [impl] {
    error_code ec;
    impl->acceptor.close(ec);
  });
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(impl->mutex);
    for (const auto& w : impl->sessions)
      if (auto s = w.lock()) open.push_back(std::move(s));
  }
  for (const auto& s : open) s->stop();
  open.clear();
  {
    std::unique_lock lock(impl->mutex);
    impl->drained.wait_for(lock, impl->settings.stop_grace, [&] { return impl->live.load() == 0; });
  }
  impl->ioc.stop();
  for (auto& t : impl->threads) t.join();
  impl->threads.clear();
  // Sessions still referenced by operations the stopped context never completed (a write in flight, a timer) would keep
  // the context and themselves alive in a cycle: close them now (no thread runs the context) and let the aborted
  // operations complete, which releases every session.
  {
    std::lock_guard lock(impl->mutex);
    for (const auto& w : impl->sessions)
      if (auto s = w.lock()) s->force_close();
  }
  impl->ioc.restart();
  impl->ioc.poll();
  spdlog::info("HTTP API stopped");
}

std::uint16_t Server::port() const { return impl_->bound_port.load(); }

std::size_t Server::connections() const { return impl_->live.load(); }

// ---- the token file ------------------------------------------------------------------------------------------

namespace {

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  std::size_t got = 0;
  while (got < bytes) {
    const auto n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("HTTP API: no random bytes for the token: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char ch : raw) {
    out.push_back(kHex[ch >> 4]);
    out.push_back(kHex[ch & 15]);
  }
  return out;
}

}  // namespace

std::string api_token_load_or_create(const std::string& state_dir) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(state_dir) / "api_token").string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
      ::close(fd);
      throw std::runtime_error("HTTP API: " + path + " can be read by others; run `chmod 600 " + path +
                               "` or remove it to have a new token made");
    }
    std::string text;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < 4096) text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(text.begin());
    if (text.empty()) throw std::runtime_error("HTTP API: " + path + " is empty; remove it to have a new token made");
    return text;
  }
  if (errno != ENOENT) throw std::runtime_error("HTTP API: cannot read " + path + ": " + std::strerror(errno));

  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) throw std::runtime_error("HTTP API: cannot create " + state_dir + ": " + ec.message());
  const std::string token = random_hex(32);
  // Created 0600 from the first byte (AtomicFile's temporaries are 0644), then committed by the project's helper.
  const std::string tmp = atomic_temp_name(path);
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) throw std::runtime_error("HTTP API: cannot write " + path + ": " + std::strerror(errno));
  const std::string content = token + "\n";
  const bool written = ::fchmod(out, 0600) == 0 &&
                       ::write(out, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  const int err = errno;
  ::close(out);
  if (!written) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("HTTP API: cannot write " + path + ": " + std::strerror(err));
  }
  try {
    atomic_commit(tmp, path);
  } catch (const WriteError& e) {
    throw std::runtime_error(std::string("HTTP API: ") + e.what());
  }
  spdlog::info("HTTP API: a new token was written to {} (mode 0600)", path);
  return token;
}

std::string api_token_resolve(const Config& config) {
  if (!config.api_token.empty()) return config.api_token;
  return api_token_load_or_create(config.state_dir);
}

}  // namespace qtos::api
