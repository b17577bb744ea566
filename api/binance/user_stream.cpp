#include "api/binance/user_stream.hpp"

#include <stdexcept>

#include <boost/json.hpp>


namespace qtos::binance {

namespace json = boost::json;

struct UserStream::Impl {
  std::unique_ptr<HttpsClient> rest;
  std::unique_ptr<WsSession> session;
  bool started = false;
};

UserStream::UserStream(UserStreamOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  if (!options_.on_event) throw std::invalid_argument("user stream: no on_event callback");
  if (options_.api_key.empty()) throw std::invalid_argument("user stream: empty API key");
  if (options_.market == MarketKind::spot && options_.signer == nullptr)
    throw std::invalid_argument("user stream: spot subscribes with a signature: a signer is required");
  if (!options_.now_ms)
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  const bool spot = options_.market == MarketKind::spot;
  if (!spot) impl_->rest = std::make_unique<HttpsClient>(options_.rest);
  Impl& im = *impl_;
  const auto note = [this](const std::string& s) {
    if (options_.on_note) options_.on_note(s);
  };
  WsSessionOptions w;
  w.name = "user stream";
  w.endpoint = options_.ws;
  w.reconnect = options_.reconnect;
  w.on_note = options_.on_note;
  if (spot) {
    w.target = [] { return std::string("/ws-api/v3"); };
    w.hello = [this] {
      const std::string key = options_.api_key, ts = std::to_string(options_.now_ms());
      const std::string sig = options_.signer->sign(ws_api_payload({{"apiKey", key}, {"timestamp", ts}}));
      return json::serialize(json::object{
          {"id", "qtos-user-stream"},
          {"method", "userDataStream.subscribe.signature"},
          {"params", json::object{{"apiKey", key}, {"timestamp", std::stoll(ts)}, {"signature", sig}}}});
    };
    w.hello_check = [](const std::string& answer) {
      json::error_code ec;
      const json::value v = json::parse(answer, ec);
      const json::value* status = !ec && v.is_object() ? v.as_object().if_contains("status") : nullptr;
      if (status == nullptr || !status->is_number() || status->to_number<int>() != 200)
        throw std::runtime_error("subscription refused: " + answer.substr(0, 300));
    };
  } else {
    // A fresh listenKey for every connection: an expired one is the usual reason to be here.
    w.target = [this, &im] {
      const HttpReply r = im.rest->request("POST", "/fapi/v1/listenKey", {{"X-MBX-APIKEY", options_.api_key}}, options_.rest_timeout);
      json::error_code ec;
      const json::value v = r.transport == Transport::ok && r.status == 200 ? json::parse(r.body, ec) : json::value();
      const json::value* key = !ec && v.is_object() ? v.as_object().if_contains("listenKey") : nullptr;
      if (key == nullptr || !key->is_string())
        throw std::runtime_error("listenKey not granted (" + (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error) + ")");
      return "/ws/" + std::string(key->as_string());
    };
    w.periodic_every = options_.keepalive;
    w.periodic = [this, &im, note] {
      const HttpReply r = im.rest->request("PUT", "/fapi/v1/listenKey", {{"X-MBX-APIKEY", options_.api_key}}, options_.rest_timeout);
      if (r.transport != Transport::ok || r.status != 200) note("listenKey keep-alive failed; the stream will be renewed if it expires");
    };
  }
  // Events may have been missed while the stream was away: the owner reconciles.
  w.on_open = [this](std::uint64_t n) {
    if (n > 1 && options_.on_reconnected) options_.on_reconnected();
  };
  w.on_text = [this](const std::string& text) {
    if (text.find("\"listenKeyExpired\"") != std::string::npos) throw std::runtime_error("listenKey expired");
    if (text.find("\"serverShutdown\"") != std::string::npos) throw std::runtime_error("the server is shutting down");
    options_.on_event(text);
  };
  im.session = std::make_unique<WsSession>(std::move(w));  // checks the back-off and the CA file
}

UserStream::~UserStream() { stop(); }

void UserStream::start() {
  if (impl_->started) return;
  impl_->started = true;
  impl_->session->start();
}

void UserStream::stop() { impl_->session->stop(); }

std::uint64_t UserStream::connects() const { return impl_->session->connects(); }

}  // namespace qtos::binance
