#include "api/notify/webhook_url.hpp"

#include <cctype>
#include <charconv>

#include "runtime/config/config.hpp"

namespace qtos::api {

std::string WebhookUrl::redacted() const {
  const bool v6 = host.find(':') != std::string::npos;
  return std::string(tls ? "https://" : "http://") + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/...";
}

WebhookUrl webhook_url_parse(std::string_view url, std::string_view variable) {
  // The message names the scheme and host at most: the rest of a webhook URL is a credential.
  auto bad = [&](std::string_view why) -> ConfigError {
    return ConfigError(std::string(variable) + " is not a webhook URL (" + std::string(why) +
                       "): expected http(s)://host[:port]/path");
  };
  for (unsigned char ch : url)
    if (ch <= 0x20 || ch == 0x7f) throw bad("it contains whitespace or a control character");
  WebhookUrl u;
  std::string_view rest;
  if (url.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    throw bad("the scheme must be http:// or https://");
  }
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) throw bad("there is no path");
  std::string_view authority = rest.substr(0, slash);
  std::string_view target = rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) throw bad("user info is not allowed");
  if (target.find('#') != std::string_view::npos) throw bad("a fragment is not allowed");
  std::string_view port_text;
  if (authority.starts_with('[')) {  // IPv6 literal
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw bad("an unterminated IPv6 literal");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') throw bad("junk after the IPv6 literal");
      port_text = after.substr(1);
      if (port_text.empty()) throw bad("an empty port");
    }
  } else {
    const std::size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) throw bad("an empty port");
    }
    for (char ch : u.host)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_'))
        throw bad("the host has a character other than letters, digits, '-', '.' and '_'");
  }
  if (u.host.empty()) throw bad("the host is empty");
  u.port = u.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || value == 0 || value > 65535)
      throw bad("the port must be a number in 1..65535");
    u.port = static_cast<std::uint16_t>(value);
  }
  if (target.size() < 2) throw bad("the path is empty");
  u.target = std::string(target);
  return u;
}

}  // namespace qtos::api
