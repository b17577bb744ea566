#pragma once
// One HTTP/1.1 request to a server on loopback, on a fresh connection, read to its end: what the tests of `qtos serve`
// send to the API. Plain sockets on purpose: the client is not the code under test.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/time.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <boost/json.hpp>

namespace qtos::test {

/// A response: status 0 when nothing answered; a chunked body already joined.
struct HttpReply {
  int status = 0;    ///< HTTP status
  std::string head;  ///< the status line and the headers
  std::string body;  ///< the body
  /// A header's value ("" when absent; the name is matched without regard to case).
  std::string header(std::string name) const {
    std::string lower = head;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const auto at = lower.find("\r\n" + name + ":");
    if (at == std::string::npos) return {};
    auto from = at + 3 + name.size();
    while (from < head.size() && head[from] == ' ') ++from;
    return head.substr(from, head.find("\r\n", from) - from);
  }
  /// The body as JSON (null when it is not JSON).
  boost::json::value json() const {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec);
    return ec ? boost::json::value(nullptr) : v;
  }
};

/// `method target` to 127.0.0.1:`port` with a bearer `token` when given and a JSON `body` (sent with its length for
/// POST and PUT, and whenever it is not empty).
inline HttpReply http(std::uint16_t port, const std::string& method, const std::string& target, const std::string& token = {},
                      const std::string& body = {}) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval limit{10, 0};  // a server that stops answering fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {};
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  HttpReply r;
  if (in.size() > 12) r.status = std::atoi(in.c_str() + 9);
  const auto at = in.find("\r\n\r\n");
  if (at != std::string::npos) r.head = in.substr(0, at), r.body = in.substr(at + 4);
  if (in.find("Transfer-Encoding: chunked") != std::string::npos) {  // keep only the chunks' data
    std::string plain;
    for (std::size_t pos = 0; pos < r.body.size();) {
      const std::size_t eol = r.body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const std::size_t n = std::stoul(r.body.substr(pos, eol - pos), nullptr, 16);
      if (n == 0) break;
      plain += r.body.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    r.body = plain;
  }
  return r;
}

}  // namespace qtos::test
